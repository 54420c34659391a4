/// <reference types="@webgpu/types" preserve="true" />
/**
 * webgpu-norm: normalization kernels for WebGPU with a PyTorch-exact CPU reference.
 * README.md has the API in brief; docs/DESIGN.md the design and contract, docs/SEMANTICS.md
 * what each op computes; `npm run docs` builds the API reference from these docstrings.
 */
import { Tensor, DTYPES, numel, storageBytes, type DType } from './tensor.ts';
import { DeviceError, DTypeError, ShapeError, TensorError, ValueError, fmtShape } from './errors.ts';
import { acquireDevice, adapterClassOf, GpuContext, type AdapterSummary } from './device/context.ts';
import { GpuBackend } from './kernels/gpu.ts';
import { CpuBackend } from './cpu/backend.ts';
import { WasmBackend } from './wasm/backend.ts';
import { defaultThreads } from './wasm/threads.ts';
import { checkData, checkShapeArray, checkTensor, describeValue } from './validate.ts';
import { OpRunner } from './verify.ts';
import { OPS, type AnyBackend, type OpDef } from './op-table.ts';
import { createNormsArgs } from './args/create-norms.ts';

export { Tensor } from './tensor.ts';
export type { DType } from './tensor.ts';
export * from './errors.ts';
export type { AdapterSummary } from './device/context.ts';

// The public option and result types: each op's beside its argument checks (src/args/), the shared ones in types.ts.
export type { CreateNormsOptions } from './args/create-norms.ts';
export type { LayerNormOptions, RmsNormOptions, LayerNormBackwardOptions, RmsNormBackwardOptions, LayerNormResult, RmsNormResult, RmsNormBackwardResult } from './args/layer-norm.ts';
export type { ModulationBackwardOptions } from './args/modulation.ts';
export type { BatchNormOptions, BatchNormBackwardOptions, BatchNormResult } from './args/batch-norm.ts';
export type { GroupNormOptions, GroupNormBackwardOptions, InstanceNormOptions, InstanceNormBackwardOptions, GroupNormResult } from './args/group-norm.ts';
export type { WeightNormOptions, WeightNormResult, WeightNormBackwardResult } from './args/weight-norm.ts';
export type { L2NormalizeOptions, L2NormalizeResult, L2NormalizeBackwardResult } from './args/l2-normalize.ts';
export type { BackwardResult, NormsStats, PoolStats } from './types.ts';
import type { CreateNormsOptions } from './args/create-norms.ts';
import type { LayerNormOptions, RmsNormOptions, LayerNormBackwardOptions, RmsNormBackwardOptions, LayerNormResult, RmsNormResult, RmsNormBackwardResult } from './args/layer-norm.ts';
import type { BatchNormOptions, BatchNormBackwardOptions, BatchNormResult } from './args/batch-norm.ts';
import type { GroupNormOptions, GroupNormBackwardOptions, InstanceNormOptions, InstanceNormBackwardOptions, GroupNormResult } from './args/group-norm.ts';
import type { WeightNormOptions, WeightNormResult, WeightNormBackwardResult } from './args/weight-norm.ts';
import type { L2NormalizeOptions, L2NormalizeResult, L2NormalizeBackwardResult } from './args/l2-normalize.ts';
import type { BackwardResult, NormsStats, PoolStats } from './types.ts';

export type { KernelProfile, OpProfile } from './device/context.ts';
import type { OpProfile } from './device/context.ts';

/**
 * A set of normalization ops on one backend, made by {@link createNorms}. Tensors belong to the
 * instance that made them. Every op validates all its arguments first (a bad call throws a typed
 * {@link NormError} naming the argument, and writes nothing), then enqueues GPU work and returns
 * its output tensors at once; {@link Norms.read} waits for the data. Layout is PyTorch's: x is
 * `[N, C, *spatial]` for batch/group/instance norm; statistics are float32 whatever the data dtype.
 */
export class Norms {
  /**
   * `'webgpu'`, `'wasm'` (WebAssembly kernels on the CPU: asked for, or `'auto'` without a
   * hardware WebGPU adapter) or `'cpu'` (the float64 reference, only when asked for).
   */
  readonly backend: 'webgpu' | 'wasm' | 'cpu';
  /** The GPUDevice the ops run on (webgpu backend), or null. */
  readonly device: GPUDevice | null;
  /** Adapter description (webgpu backend), or null. */
  readonly adapter: AdapterSummary | null;
  /**
   * Why the backend is what it is, e.g. "WebGPU on nvidia ampere", "WebGPU adapter google
   * swiftshader is CPU-emulated; using the wasm backend (...)", or "no WebGPU adapter found; using
   * the wasm backend" followed, in Node, by what to do about it; on the wasm backend also which
   * build runs (SIMD128 or scalar) and with how many threads.
   */
  readonly note: string;
  /**
   * How the kernels access float16 tensors (webgpu backend): `'native'` as WGSL `f16` (the
   * device has `'shader-f16'`), `'packed'` as pairs of halves in u32 words; null on the cpu
   * backend. See {@link CreateNormsOptions.float16}.
   */
  readonly float16: 'native' | 'packed' | null;
  /** Whether every op is checked against the CPU reference ({@link CreateNormsOptions.verify}). */
  readonly verify: boolean;
  /** @internal */ readonly _impl: AnyBackend;
  /** @internal */ readonly _gpu: GpuBackend | null;
  /** @internal */ readonly _wasm: WasmBackend | null;
  private readonly ops: OpRunner;
  private destroyed = false;

  /** @internal */
  constructor(ctx: GpuContext | null, opts: CreateNormsOptions, note: string, wasm = false) {
    this._wasm = null;
    if (wasm) {
      const threads = opts.threads === undefined || opts.threads === 'auto' ? defaultThreads() : opts.threads;
      const w = new WasmBackend(this, { threads, scalar: opts.simd === false, threadMin: opts.threadMinBytes ?? 4 << 20 });
      w.poison = !!opts.poisonOutputs;
      this._wasm = w;
      this._gpu = null;
      this._impl = w;
      this.device = null;
      this.adapter = null;
      this.float16 = null;
      const m = w.m;
      note = `${note}; wasm build ${m.build}${m.threads > 1 ? `, up to ${m.threads} threads for ops reading at least ${m.threadMin} bytes` : ', one thread'}`;
    } else if (ctx) {
      const g = new GpuBackend(ctx, this);
      g.poison = !!opts.poisonOutputs;
      g.variant = opts.variant ?? 'auto';
      if (opts.maxBindingBytes !== undefined) g.setBindingLimit(opts.maxBindingBytes);
      if (opts.adapterClass === 'cpu' || opts.adapterClass === 'gpu') ctx.isCpuAdapter = opts.adapterClass === 'cpu';
      if (opts.profile) ctx.enableProfile();
      if (opts.float16 === 'packed') ctx.float16 = 'packed';
      if (opts.float16 === 'native' && ctx.float16 !== 'native') {
        throw new ValueError("float16: 'native' needs a device with the 'shader-f16' feature, which this one lacks (use 'auto' or 'packed')", 'float16');
      }
      this.float16 = ctx.float16;
      this._gpu = g;
      this._impl = g;
      this.device = ctx.device;
      this.adapter = ctx.adapter;
    } else {
      this._gpu = null;
      this._impl = new CpuBackend(this);
      this.device = null;
      this.adapter = null;
      this.float16 = null;
    }
    this.backend = this._impl.kind;
    this.verify = !!opts.verify && this.backend !== 'cpu';
    this.note = note;
    this.ops = new OpRunner(this._impl, this._gpu ?? this._wasm, this.verify);
  }

  private alive(): void {
    if (this.destroyed) throw new DeviceError('this createNorms instance was destroyed');
    this._gpu?.ctx.checkAlive();
  }

  private dtypeOf(d: unknown): DType {
    if (d === undefined) return 'float32';
    if (!DTYPES.includes(d as DType)) throw new DTypeError(`dtype: expected 'float32' or 'float16', got ${describeValue(d)}`, 'dtype');
    return d as DType;
  }

  /**
   * A new tensor holding a copy of `data` (row-major).
   * @param data numbers: an array or a typed array of `numel(shape)` elements (float16 rounds them to half).
   * @param shape dims, non-negative integers; `[]` is a scalar.
   * @param dtype `'float32'` (default) or `'float16'` (2 bytes per element, packed in pairs).
   * @throws ShapeError when data is not an array or its length does not fill shape; DTypeError for
   *   a non-numeric element (naming its index) or an unknown dtype; LimitError past maxBufferSize.
   */
  tensor(data: ArrayLike<number>, shape: readonly number[], dtype?: DType): Tensor {
    this.alive();
    const dims = checkShapeArray(shape, 'shape');
    const dt = this.dtypeOf(dtype);
    checkData(data);
    if (data.length !== numel(dims)) throw new ShapeError(`data: ${data.length} values do not fill shape ${fmtShape(dims)} (${numel(dims)} elements)`, 'data');
    return this._impl.tensor(data instanceof Float32Array ? data : Float32Array.from(data), dims, dt);
  }

  /**
   * A zero-copy view of a caller's GPUBuffer as a tensor (webgpu backend only). The buffer needs
   * usage STORAGE | COPY_SRC | COPY_DST and at least the tensor's bytes (4 per float32 element; float16:
   * 2, packed two halves per 32-bit word, low half first). `destroy()` of the tensor leaves the buffer alone.
   * @throws DeviceError on the cpu backend; ShapeError when the buffer is too small.
   */
  wrap(buffer: GPUBuffer, shape: readonly number[], dtype?: DType): Tensor {
    this.alive();
    if (!this._gpu) throw new DeviceError(`wrap: the ${this.backend} backend has no GPU buffers`);
    const dims = checkShapeArray(shape, 'shape');
    const dt = this.dtypeOf(dtype);
    const need = storageBytes(numel(dims), dt);
    if (!buffer || typeof buffer.size !== 'number') throw new TensorError('buffer: expected a GPUBuffer', 'buffer');
    if (buffer.size < need) throw new ShapeError(`buffer: ${buffer.size} bytes cannot hold shape ${fmtShape(dims)} of ${dt} (${need} bytes)`, 'buffer');
    return this._gpu.wrap(buffer, dims, dt);
  }

  /**
   * Waits for the work that produces `t` and copies it to the host.
   * @returns the values as float32 (float16 tensors are widened), row-major.
   * @throws (rejects) TensorError for a destroyed tensor or another instance's; DeviceLostError;
   *   DeviceError for a WebGPU validation error in the ops that made `t`; ParityError with `verify`.
   */
  async read(t: Tensor): Promise<Float32Array> {
    checkTensor(t, 'tensor', this);
    this._gpu?.ctx.flush();
    if (t._pending) await t._pending;
    this.alive();
    return this._impl.read(t);
  }

  /**
   * Records the ops that `fn` calls into the caller's command encoder instead of submitting them:
   * each op adds its compute pass(es) to `encoder`, in call order, after whatever the caller
   * recorded before, and nothing is submitted. The caller submits
   * (`device.queue.submit([encoder.finish()])`), so an engine can put its own commands and ours in
   * one command buffer. Returns what `fn` returns (the ops' output tensors, typically).
   *
   * - **Reading before the submit**: `read()` of a tensor written by recorded passes, and a later
   *   (not recorded) op that reads one, reject with a `DeviceError` saying the encoder "had not
   *   been submitted". How it is detected: the last command recorded into `encoder` clears a
   *   4-byte marker buffer that starts at 1; `read` copies the marker in the same command buffer
   *   as the data, so queue order tells exactly whether the caller's command buffer was submitted
   *   first. After the submit, `read` works as usual. A submit that failed WebGPU validation looks
   *   the same (its commands never ran).
   * - **Errors**: a bad argument throws from the op inside `fn` (typed, synchronously, out of
   *   `encode`), and the op records nothing; passes recorded by earlier ops in `fn` stay in the
   *   encoder (discard it, or submit them). WebGPU errors while we create objects for the passes
   *   (bind groups, pipelines) reject `read()` of the outputs with a `DeviceError`. Errors in the
   *   commands themselves (an encoder with an open pass, a buffer destroyed before the submit, an
   *   encoder of another device) are reported by WebGPU at the caller's `encoder.finish()` /
   *   `queue.submit()`: catch them with `device.pushErrorScope('validation')` around those calls.
   * - **Buffers**: temporaries of recorded ops, and buffers of tensors destroyed before the submit,
   *   are not reused until the submit is seen (checked in the background shortly after `encode`
   *   returns, at every read, and at the next `encode`); an encoder that is never submitted keeps
   *   them until `norms.destroy()`. Do not destroy the instance, or a wrapped buffer, before the
   *   caller's submit. Tensors made with `tensor()` inside `fn` are written at once (`writeBuffer`).
   * @param encoder a `GPUCommandEncoder` of this instance's device, open, with no pass open.
   * @param fn synchronous (a returned promise is a `ValueError`: ops after an `await` would not be
   *   recorded); `encode` does not nest.
   * @throws DeviceError on the cpu backend (it has no command encoder to record into); ValueError
   *   for a bad encoder or fn, a nested call, or with `verify: true` (its check reads the inputs
   *   before the caller's submit); whatever the ops in `fn` throw.
   * @example
   * ```js
   * const enc = device.createCommandEncoder();
   * enc.copyBufferToBuffer(src, 0, xBuffer, 0, bytes);                  // the caller's own commands
   * const { y } = norms.encode(enc, () => norms.layerNorm(norms.wrap(xBuffer, [rows, K]), { normalizedShape: [K] }));
   * device.queue.submit([enc.finish()]);                                 // the caller submits
   * const out = await norms.read(y);                                     // after the submit
   * ```
   */
  encode<T>(encoder: GPUCommandEncoder, fn: () => T): T {
    this.alive();
    if (!this._gpu) throw new DeviceError(`encode: the ${this.backend} backend has no GPU command encoder to record into (ops on it run at once on the host)`);
    if (!encoder || typeof encoder !== 'object' || typeof (encoder as Partial<GPUCommandEncoder>).beginComputePass !== 'function') {
      throw new ValueError(`encoder: expected a GPUCommandEncoder, got ${describeValue(encoder)}`, 'encoder');
    }
    if (typeof fn !== 'function') throw new ValueError(`fn: expected a function, got ${describeValue(fn)}`, 'fn');
    if (this.verify) throw new ValueError('encode: not available with verify: true (its check reads the inputs before the caller submits)', 'encoder');
    const ctx = this._gpu.ctx;
    if (ctx.recording) throw new ValueError('encode: already inside norms.encode() (calls do not nest)', 'encoder');
    ctx.beginEncode(encoder);
    let out: T;
    try {
      out = fn();
    } finally {
      ctx.endEncode();
    }
    if (out !== null && typeof out === 'object' && typeof (out as { then?: unknown }).then === 'function') {
      throw new ValueError('fn: returned a promise; encode needs a synchronous function (ops after an await would not be recorded)', 'fn');
    }
    return out;
  }

  /**
   * The kernels each op dispatched since the last call (with `createNorms({ profile: true })`;
   * otherwise, and on the cpu backend, an empty list). Submits pending work and waits for the GPU
   * times where the device has `'timestamp-query'`.
   * @example
   * ```js
   * const norms = await createNorms({ profile: true });
   * norms.layerNorm(x, { normalizedShape: [768] });
   * for (const { op, kernels } of await norms.profile()) console.log(op, kernels.map((k) => k.name));
   * ```
   */
  async profile(): Promise<OpProfile[]> {
    return (await this._gpu?.ctx.takeProfile()) ?? [];
  }

  /**
   * Submits the ops issued since the last submit now. Ops issued back to back are recorded into
   * one command buffer and submitted together at the end of the current task (a microtask), or
   * earlier: at a `read`, an `encode`, when `tensor.buffer` is taken, and right after an op that
   * binds a wrapped buffer. Call it before submitting queue work of your own that uses buffers of
   * ours taken earlier, or before `device.queue.onSubmittedWorkDone()`.
   */
  flush(): void {
    this._gpu?.ctx.flush();
  }

  /** GPU buffers and bytes this instance currently holds. */
  stats(): NormsStats {
    if (this._wasm) return this._wasm.stats();
    const c = this._gpu?.ctx;
    return { liveBuffers: c?.liveBuffers ?? 0, liveBytes: c?.liveBytes ?? 0 };
  }

  /** Released buffers the library keeps for reuse (at most 256 MiB; freed by destroy()). */
  poolStats(): PoolStats {
    const c = this._gpu?.ctx;
    return { pooledBuffers: c?.pooledBuffers ?? 0, pooledBytes: c?.pooledBytes ?? 0 };
  }

  /** Frees every tensor's buffer, the pool and (when this instance created it) the device. Idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this._impl.destroy();
    this._gpu?.ctx.destroy();
  }

  // ---- ops: each an entry of the op table (src/op-table.ts), run (and verified) by src/verify.ts ----

  /** Checks the arguments of op `op` (typed errors, nothing written) and runs it. */
  private run<I extends unknown[], A extends object, R extends object, P extends object>(op: OpDef<I, A, R, P>, ...inputs: I): P {
    this.alive();
    return this.ops.exec(op, op.args(this, ...inputs));
  }

  /**
   * Layer normalization over the trailing `normalizedShape` dims of x, as PyTorch's
   * `torch.nn.functional.layer_norm` (and `torch.native_layer_norm` for mean/rstd):
   * y = (x − mean) / sqrt(var + eps) · weight + bias, biased variance. With modulation (adaLN of
   * DiT / SD3 / Flux): y = n ⊙ (scaleOffset + scale) + shift, n the above; with a gate (adaLN-Zero's
   * gated residual) the input is sum = residual + gate ⊙ x (see {@link LayerNormOptions}).
   * @param x float32 or float16, shape `[...leading, ...normalizedShape]`.
   * @throws ShapeError (x does not end with normalizedShape, weight/bias/residual/scale/shift/gate shapes),
   *   DTypeError (residual's dtype), ValueError (eps, scaleOffset, a gate without residual, unknown option),
   *   LimitError (a modulated tensor past one storage binding), TensorError.
   */
  layerNorm(x: Tensor, options: LayerNormOptions): LayerNormResult {
    return this.run(OPS.layerNorm, x, options);
  }

  /**
   * RMS normalization, as PyTorch's `torch.nn.functional.rms_norm`:
   * y = x / sqrt(mean(x²) + eps) · weight, over the trailing `normalizedShape` dims.
   * @param x float32 or float16, shape `[...leading, ...normalizedShape]`.
   * @throws ShapeError, DTypeError, ValueError (eps, a bias, unknown option), TensorError.
   */
  rmsNorm(x: Tensor, options: RmsNormOptions): RmsNormResult {
    return this.run(OPS.rmsNorm, x, options);
  }

  /**
   * Gradients of {@link Norms.layerNorm}, as PyTorch's `native_layer_norm_backward`: x̂ is
   * recomputed from the saved mean/rstd. For the fused residual form pass the forward's `sum` as
   * x (the returned dx is then the gradient of both x and residual), or pass the forward's x with
   * its options (`residual`, `gate`, `scale`, `shift`): dx is then the gradient of x, and
   * `dresidual`, `dgate`, `dscale`, `dshift` come back too; `dsum` adds the gradient that reaches
   * the forward's sum from later layers (see {@link LayerNormBackwardOptions}).
   * @param dy gradient of y: shape and dtype of x.
   * @param x the forward's input.
   * @param mean the forward's mean (float32, leading dims of x).
   * @param rstd the forward's rstd (float32, leading dims of x).
   * @throws ShapeError, DTypeError, ValueError (unknown option), TensorError.
   */
  layerNormBackward(dy: Tensor, x: Tensor, mean: Tensor, rstd: Tensor, options: LayerNormBackwardOptions): BackwardResult {
    return this.run(OPS.layerNormBackward, dy, x, mean, rstd, options);
  }

  /**
   * Gradients of {@link Norms.rmsNorm} (PyTorch autograd of `rms_norm`):
   * dx = rstd·(dy·w) − rstd³/K · Σ(dy·w·x) · x; dweight = Σ_rows dy·x·rstd.
   * @param dy gradient of y: shape and dtype of x.
   * @param rstd the forward's rstd (float32, leading dims of x).
   * @throws ShapeError, DTypeError, ValueError, TensorError.
   */
  rmsNormBackward(dy: Tensor, x: Tensor, rstd: Tensor, options: RmsNormBackwardOptions): RmsNormBackwardResult {
    return this.run(OPS.rmsNormBackward, dy, x, rstd, options);
  }

  /**
   * Group normalization, as PyTorch's `torch.nn.functional.group_norm` (`native_group_norm` for
   * mean/rstd): statistics per (sample, group of C/G channels) over those channels' spatial elements.
   * Optional modulation per (sample, channel) (ADM's scale-shift norm, diffusers' AdaGroupNorm) and
   * SiLU, applied last: y = act(n ⊙ (scaleOffset + scale) + shift).
   * @param x float32 or float16, `[N, C, *spatial]` (`[N, *spatial, C]` with channelsLast).
   * @throws ShapeError (rank < 2, weight/bias not `[C]`), ValueError (numGroups not a positive
   *   divisor of C, one value per group in the whole batch, eps, activation, unknown option), TensorError.
   */
  groupNorm(x: Tensor, options: GroupNormOptions): GroupNormResult {
    return this.run(OPS.groupNorm, x, options);
  }

  /**
   * Instance normalization, as PyTorch's `torch.nn.functional.instance_norm` with batch
   * statistics: per (sample, channel) over the spatial dims (group norm with G = C).
   * @param x float32 or float16, `[N, C, *spatial]` (`[N, *spatial, C]` with channelsLast) with more than one spatial element.
   * @throws ShapeError, ValueError (one spatial element, eps, unknown option), TensorError.
   */
  instanceNorm(x: Tensor, options: InstanceNormOptions = {}): GroupNormResult {
    return this.run(OPS.instanceNorm, x, options);
  }

  /**
   * Gradients of {@link Norms.groupNorm}, as PyTorch's `native_group_norm_backward`, with the
   * forward's activation ('silu') and modulation taken into account when given (dscale, dshift).
   * @param dy gradient of y: shape and dtype of x.
   * @param mean the forward's mean, float32 `[N, G]`.
   * @param rstd the forward's rstd, float32 `[N, G]`.
   * @throws ShapeError, DTypeError, ValueError, TensorError.
   */
  groupNormBackward(dy: Tensor, x: Tensor, mean: Tensor, rstd: Tensor, options: GroupNormBackwardOptions): BackwardResult {
    return this.run(OPS.groupNormBackward, dy, x, mean, rstd, options);
  }

  /**
   * Gradients of {@link Norms.instanceNorm} (PyTorch autograd of `instance_norm`).
   * @param mean the forward's mean, float32 `[N, C]`.
   * @param rstd the forward's rstd, float32 `[N, C]`.
   * @throws ShapeError, DTypeError, ValueError, TensorError.
   */
  instanceNormBackward(dy: Tensor, x: Tensor, mean: Tensor, rstd: Tensor, options: InstanceNormBackwardOptions = {}): BackwardResult {
    return this.run(OPS.instanceNormBackward, dy, x, mean, rstd, options);
  }

  /**
   * Batch normalization, as PyTorch's `torch.nn.functional.batch_norm` (`native_batch_norm` for
   * saveMean/saveInvstd): per channel over N and the spatial dims (at most 3). Training also
   * updates runningMean/runningVar in place when given.
   * @param x float32 or float16, `[N, C]`, `[N, C, L]`, `[N, C, H, W]` or `[N, C, D, H, W]` (channelsLast: `[N, L, C]`, `[N, H, W, C]`, `[N, D, H, W, C]`).
   * @throws ShapeError (rank, per-channel shapes), DTypeError (running stats not float32),
   *   ValueError (one value per channel in training, eval without running stats, only one of them,
   *   eps, momentum, numBatchesTracked, unknown option), TensorError.
   */
  batchNorm(x: Tensor, options: BatchNormOptions): BatchNormResult {
    return this.run(OPS.batchNorm, x, options);
  }

  /**
   * Gradients of {@link Norms.batchNorm}, as PyTorch's `native_batch_norm_backward`: training uses
   * the batch statistics (saveMean/saveInvstd), eval the running ones.
   * @param dy gradient of y: shape and dtype of x.
   * @throws ShapeError, DTypeError, ValueError (missing saved/running statistics, unknown option), TensorError.
   */
  batchNormBackward(dy: Tensor, x: Tensor, options: BatchNormBackwardOptions): BackwardResult {
    return this.run(OPS.batchNormBackward, dy, x, options);
  }

  /**
   * Weight normalization, as PyTorch's `torch._weight_norm` (`_weight_norm_interface` for norms):
   * w = g · v / ‖v‖₂ with one norm per index along `dim`. No eps: a zero slice gives NaN.
   * @param v float32 or float16, any rank ≥ 1.
   * @param g v's size on dim and 1 elsewhere (PyTorch's layout), or 1-D `[v.shape[dim]]`; dim null: one element.
   * @throws ShapeError (g's shape), ValueError (dim out of range, unknown option), TensorError.
   */
  weightNorm(v: Tensor, g: Tensor, options: WeightNormOptions = {}): WeightNormResult {
    return this.run(OPS.weightNorm, v, g, options);
  }

  /**
   * Gradients of {@link Norms.weightNorm}, as PyTorch's `_weight_norm_interface_backward`.
   * @param dw gradient of w: shape and dtype of v.
   * @param norms the forward's norms (float32, the shape of g).
   * @throws ShapeError, DTypeError, ValueError, TensorError.
   */
  weightNormBackward(dw: Tensor, v: Tensor, g: Tensor, norms: Tensor, options: WeightNormOptions = {}): WeightNormBackwardResult {
    return this.run(OPS.weightNormBackward, dw, v, g, norms, options);
  }

  /**
   * Lp normalization along a dim, as PyTorch's `torch.nn.functional.normalize` (ONNX
   * `LpNormalization`): y = x / max(‖x‖_p over dim, eps), for embeddings (CLIP, sentence
   * encoders) and L2 QK-norm. The norm is computed without overflow or underflow of |x|^p (each
   * lane scaled by a power of two near its largest element); NaN in a lane gives NaN for it.
   * @param x float32 or float16, any rank >= 1.
   * @returns y (shape and dtype of x) and norms (float32, x's shape with 1 on dim: ‖x‖_p, before the clamp).
   * @throws ValueError (dim out of range, p not a finite number > 0, eps negative or not finite,
   *   unknown option), ShapeError (rank 0), LimitError (webgpu: x past one storage binding and a single
   *   lane along dim spanning more than a binding, e.g. dim 0 of such a tensor), TensorError.
   */
  l2Normalize(x: Tensor, options: L2NormalizeOptions = {}): L2NormalizeResult {
    return this.run(OPS.l2Normalize, x, options);
  }

  /**
   * Gradient of {@link Norms.l2Normalize} (PyTorch autograd of `F.normalize`): where the norm
   * n >= eps, dx = (dy − s·sign(y)|y|^(p−1)) / n with y = x/n and s = Σ dy·y over the lane; where
   * eps was taken (the clamp's gradient is zero), dx = dy / eps.
   * @param dy gradient of y: shape and dtype of x.
   * @param norms the forward's norms (float32, x's shape with 1 on dim).
   * @throws ShapeError, DTypeError, ValueError, LimitError, TensorError.
   */
  l2NormalizeBackward(dy: Tensor, x: Tensor, norms: Tensor, options: L2NormalizeOptions = {}): L2NormalizeBackwardResult {
    return this.run(OPS.l2NormalizeBackward, dy, x, norms, options);
  }
}

export { relativeL2 } from './verify.ts';

/**
 * Create a norms instance. backend 'auto' (default) uses WebGPU when a hardware adapter is found
 * and the wasm backend otherwise, CPU-emulated adapters (SwiftShader, llvmpipe) included (see
 * `norms.backend` and `norms.note`).
 * @throws (rejects) ValueError for an unknown or ill-typed option; DeviceError with
 *   `backend: 'webgpu'` when no adapter or device can be had.
 * @example
 * ```js
 * import { createNorms } from 'webgpu-norm';
 * const norms = await createNorms();          // browser: navigator.gpu
 * // Node: import { create } from 'webgpu'; await createNorms({ gpu: create([]) })
 * ```
 */
export async function createNorms(options: CreateNormsOptions = {}): Promise<Norms> {
  const want = createNormsArgs(options);
  if (want === 'cpu') return new Norms(null, options, 'cpu backend requested');
  if (want === 'wasm') return new Norms(null, options, 'wasm backend requested', true);
  let got: Awaited<ReturnType<typeof acquireDevice>> = null;
  let why = '';
  try {
    got = await acquireDevice(options);
  } catch (e) {
    if (want === 'webgpu') throw e;
    why = (e as Error).message;
  }
  if (!got) {
    const msg = why || (options.gpu || (typeof navigator !== 'undefined' && 'gpu' in navigator) ? 'no WebGPU adapter found' : 'WebGPU is not available (no navigator.gpu and no options.gpu)');
    if (want === 'webgpu') throw new DeviceError(`backend 'webgpu': ${msg}${nodeAdvice(options)}`);
    return new Norms(null, options, `${msg}; using the wasm backend${nodeAdvice(options)}`, true);
  }
  // The rule of 'auto' for CPU-emulated adapters (SwiftShader, llvmpipe): the wasm kernels run the
  // same ops several times faster on the same cores (README, "Backend selection"), so 'auto' takes
  // wasm there, unless the caller handed in a device to share or forced a kernel class.
  if (want === 'auto' && !options.device && !options.adapterClass && adapterClassOf(got.adapterInfo) === 'cpu') {
    const name = `${got.adapterInfo.vendor || 'unknown vendor'} ${got.adapterInfo.architecture}`.trim();
    if (got.owned) got.device.destroy();
    return new Norms(null, options, `WebGPU adapter ${name} is CPU-emulated; using the wasm backend (faster on the CPU; backend: 'webgpu' forces WebGPU)`, true);
  }
  const ctx = new GpuContext(got.device, got.adapterInfo, got.owned, got.keepAlive);
  try {
    return new Norms(ctx, options, `WebGPU on ${got.adapterInfo.vendor || 'unknown vendor'} ${got.adapterInfo.architecture}`.trim());
  } catch (e) {
    ctx.destroy(); // a bad option: release the device this call created
    throw e;
  }
}

/** Debian's chromium package installs SwiftShader, a CPU implementation of Vulkan, here. */
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/**
 * In Node, the `webgpu` package (Dawn) finds adapters through Vulkan: "no adapter" there almost
 * always means no Vulkan driver answered. Say why and what to do; nothing in the browser.
 */
function nodeAdvice(options: CreateNormsOptions): string {
  const proc = (globalThis as { process?: { versions?: { node?: string }; env?: Record<string, string | undefined> } }).process;
  if (!proc?.versions?.node || options.device) return '';
  if (!options.gpu) return ". In Node, pass a GPU from the 'webgpu' package: createNorms({ gpu: create([]) }) with import { create } from 'webgpu'";
  const icd = proc.env?.VK_ICD_FILENAMES || proc.env?.VK_DRIVER_FILES;
  if (icd) return `. Dawn (the 'webgpu' package) found no Vulkan device through VK_ICD_FILENAMES=${icd}: check that the file exists and that the Vulkan loader libvulkan.so.1 is installed (Debian: apt-get install libvulkan1)`;
  return (
    ". Dawn (the 'webgpu' package) runs on Vulkan and found no Vulkan device: install your GPU's Vulkan driver, " +
    `or run on the CPU through SwiftShader: VK_ICD_FILENAMES=${SWIFTSHADER_ICD} (Debian: apt-get install chromium libvulkan1)`
  );
}
