/// <reference types="@webgpu/types" preserve="true" />
/**
 * webgpu-norm: normalization kernels for WebGPU with a PyTorch-exact CPU reference.
 * See README.md for the API in brief; shared/DESIGN.md is the contract.
 */
import { Tensor, DTYPES, numel, storageBytes, type DType } from './tensor.ts';
import { DeviceError, DTypeError, ParityError, ShapeError, TensorError, ValueError, fmtShape } from './errors.ts';
import { acquireDevice, GpuContext, type AdapterSummary } from './device/context.ts';
import { GpuBackend } from './kernels/gpu.ts';
import { CpuBackend } from './cpu/backend.ts';
import type * as O from './ops.ts';
import {
  channelGeom,
  checkData,
  checkEps,
  checkOptions,
  checkShapeArray,
  checkTensor,
  describeValue,
  expectDtype,
  expectFloat32,
  expectShape,
  optTensor,
  rowGeom,
  sliceGeom,
} from './validate.ts';

export { Tensor } from './tensor.ts';
export type { DType } from './tensor.ts';
export * from './errors.ts';
export type { AdapterSummary } from './device/context.ts';

export interface CreateNormsOptions {
  backend?: 'auto' | 'webgpu' | 'cpu';
  device?: GPUDevice;
  gpu?: GPU;
  verify?: boolean;
  /** Testing aid: fill every new output buffer with NaN before the kernels write it. */
  poisonOutputs?: boolean;
  /** Testing aid: force the row-fused or the general (reduce/finalize/apply) kernels. */
  variant?: 'auto' | 'fused' | 'general';
  /**
   * Cap on the bytes of one storage binding (default and maximum: the device's
   * maxStorageBufferBindingSize). Tensors larger than this are processed in bound ranges;
   * tests set it small to exercise that on small tensors.
   */
  maxBindingBytes?: number;
}

type Opts = Record<string, unknown>;

export interface LayerNormOptions {
  normalizedShape: readonly number[];
  weight?: Tensor | null;
  bias?: Tensor | null;
  eps?: number;
  /** Fused residual add: normalizes s = x + residual and also returns s as `sum`. */
  residual?: Tensor | null;
}
export interface RmsNormOptions {
  normalizedShape: readonly number[];
  weight?: Tensor | null;
  eps?: number;
  residual?: Tensor | null;
}
export interface BatchNormOptions {
  training: boolean;
  weight?: Tensor | null;
  bias?: Tensor | null;
  runningMean?: Tensor | null;
  runningVar?: Tensor | null;
  momentum?: number | null;
  eps?: number;
  numBatchesTracked?: number;
}
export interface BatchNormBackwardOptions {
  training: boolean;
  weight?: Tensor | null;
  bias?: Tensor | null;
  runningMean?: Tensor | null;
  runningVar?: Tensor | null;
  saveMean?: Tensor | null;
  saveInvstd?: Tensor | null;
  eps?: number;
}
export interface GroupNormOptions {
  numGroups: number;
  weight?: Tensor | null;
  bias?: Tensor | null;
  eps?: number;
  /** Fused activation applied after the affine map (forward only). */
  activation?: 'silu' | null;
}

/**
 * The keys each options object accepts; any other key is a ValueError naming it and the nearest
 * of these (a misspelled `wieght` must not silently give an unweighted norm).
 */
const OPTION_KEYS = {
  createNorms: ['backend', 'device', 'gpu', 'verify', 'poisonOutputs', 'variant', 'maxBindingBytes'],
  layerNorm: ['normalizedShape', 'weight', 'bias', 'eps', 'residual'],
  // 'bias' is listed so that it gets its own message ("rmsNorm has no bias").
  rmsNorm: ['normalizedShape', 'weight', 'bias', 'eps', 'residual'],
  layerNormBackward: ['normalizedShape', 'weight', 'bias'],
  rmsNormBackward: ['normalizedShape', 'weight'],
  batchNorm: ['training', 'weight', 'bias', 'runningMean', 'runningVar', 'momentum', 'eps', 'numBatchesTracked'],
  batchNormBackward: ['training', 'weight', 'bias', 'runningMean', 'runningVar', 'saveMean', 'saveInvstd', 'eps'],
  groupNorm: ['numGroups', 'weight', 'bias', 'eps', 'activation'],
  groupNormBackward: ['numGroups', 'weight', 'bias'],
  instanceNorm: ['weight', 'bias', 'eps'],
  instanceNormBackward: ['weight', 'bias'],
  weightNorm: ['dim'],
  weightNormBackward: ['dim'],
} as const satisfies Record<string, readonly string[]>;

/** Statistics of what this instance allocated on the GPU (0 on the cpu backend). */
export interface NormsStats {
  /** GPU buffers held by live tensors and in-flight temporaries, and their bytes. */
  liveBuffers: number;
  liveBytes: number;
}

const REL_TOL: Record<DType, number> = { float32: 1e-4, float16: 2e-3 };

export class Norms {
  readonly backend: 'webgpu' | 'cpu';
  readonly device: GPUDevice | null;
  /** Adapter description (webgpu backend), or null. */
  readonly adapter: AdapterSummary | null;
  /** Why the backend is what it is (e.g. "no WebGPU adapter found; using the CPU reference"). */
  readonly note: string;
  readonly verify: boolean;
  /** @internal */ readonly _impl: O.Backend;
  /** @internal */ readonly _gpu: GpuBackend | null;
  private readonly cpuRef: CpuBackend;
  private destroyed = false;

  /** @internal */
  constructor(ctx: GpuContext | null, opts: CreateNormsOptions, note: string) {
    this.cpuRef = new CpuBackend({});
    if (ctx) {
      const g = new GpuBackend(ctx, this);
      g.poison = !!opts.poisonOutputs;
      g.variant = opts.variant ?? 'auto';
      if (opts.maxBindingBytes !== undefined) g.setBindingLimit(opts.maxBindingBytes);
      this._gpu = g;
      this._impl = g;
      this.device = ctx.device;
      this.adapter = ctx.adapter;
    } else {
      this._gpu = null;
      this._impl = new CpuBackend(this);
      this.device = null;
      this.adapter = null;
    }
    this.backend = this._impl.kind;
    this.verify = !!opts.verify && this.backend === 'webgpu';
    this.note = note;
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

  tensor(data: ArrayLike<number>, shape: readonly number[], dtype?: DType): Tensor {
    this.alive();
    const dims = checkShapeArray(shape, 'shape');
    const dt = this.dtypeOf(dtype);
    checkData(data);
    if (data.length !== numel(dims)) throw new ShapeError(`data: ${data.length} values do not fill shape ${fmtShape(dims)} (${numel(dims)} elements)`, 'data');
    return this._impl.tensor(data instanceof Float32Array ? data : Float32Array.from(data), dims, dt);
  }

  /** A zero-copy view of a caller's GPUBuffer (usage STORAGE | COPY_SRC | COPY_DST) as a tensor. */
  wrap(buffer: GPUBuffer, shape: readonly number[], dtype?: DType): Tensor {
    this.alive();
    if (!this._gpu) throw new DeviceError('wrap: the cpu backend has no GPU buffers');
    const dims = checkShapeArray(shape, 'shape');
    const dt = this.dtypeOf(dtype);
    const need = storageBytes(numel(dims), dt);
    if (!buffer || typeof buffer.size !== 'number') throw new TensorError('buffer: expected a GPUBuffer', 'buffer');
    if (buffer.size < need) throw new ShapeError(`buffer: ${buffer.size} bytes cannot hold shape ${fmtShape(dims)} of ${dt} (${need} bytes)`, 'buffer');
    return this._gpu.wrap(buffer, dims, dt);
  }

  async read(t: Tensor): Promise<Float32Array> {
    checkTensor(t, 'tensor', this);
    if (t._pending) await t._pending;
    this.alive();
    return this._impl.read(t);
  }

  /** GPU buffers and bytes this instance currently holds. */
  stats(): NormsStats {
    const c = this._gpu?.ctx;
    return { liveBuffers: c?.liveBuffers ?? 0, liveBytes: c?.liveBytes ?? 0 };
  }

  /** Released buffers the library keeps for reuse (at most 256 MiB; freed by destroy()). */
  poolStats(): { pooledBuffers: number; pooledBytes: number } {
    const c = this._gpu?.ctx;
    return { pooledBuffers: c?.pooledBuffers ?? 0, pooledBytes: c?.pooledBytes ?? 0 };
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this._impl.destroy();
    this._gpu?.ctx.destroy();
  }

  // ---- ops ----

  layerNorm(x: Tensor, options: LayerNormOptions): { y: Tensor; mean: Tensor; rstd: Tensor; sum?: Tensor } {
    const a = this.rowArgs(x, options, false);
    return this.exec('layerNorm', a, (b, v) => {
      const r = b.layerNorm(v);
      return withSum({ y: r.y, mean: r.mean!, rstd: r.rstd }, r.sum);
    });
  }

  rmsNorm(x: Tensor, options: RmsNormOptions): { y: Tensor; rstd: Tensor; sum?: Tensor } {
    const a = this.rowArgs(x, options, true);
    return this.exec('rmsNorm', a, (b, v) => {
      const r = b.layerNorm(v);
      return withSum({ y: r.y, rstd: r.rstd }, r.sum);
    });
  }

  private rowArgs(xArg: Tensor, options: unknown, rms: boolean): O.LayerNormArgs {
    this.alive();
    const op = rms ? 'rmsNorm' : 'layerNorm';
    const o = checkOptions(options, op, OPTION_KEYS[op]);
    const x = checkTensor(xArg, 'x', this);
    const geom = rowGeom(x, o.normalizedShape);
    const weight = optTensor(o.weight, 'weight', this);
    const bias = rms ? null : optTensor(o.bias, 'bias', this);
    if (rms && o.bias != null) throw new ValueError('bias: rmsNorm has no bias', 'bias');
    const residual = optTensor(o.residual, 'residual', this);
    expectShape(weight, 'weight', geom.normalizedShape, 'normalizedShape');
    expectShape(bias, 'bias', geom.normalizedShape, 'normalizedShape');
    expectShape(residual, 'residual', x.shape, 'the shape of x');
    expectDtype(residual, 'residual', x.dtype, 'x');
    const eps = checkEps(o.eps ?? (rms ? 1.1920928955078125e-7 : 1e-5));
    return { ...geom, x, residual, weight, bias, eps, rms };
  }

  layerNormBackward(dy: Tensor, x: Tensor, mean: Tensor, rstd: Tensor, options: { normalizedShape: readonly number[]; weight?: Tensor | null; bias?: Tensor | null }): O.BwdOut {
    const a = this.rowBwdArgs(dy, x, mean, rstd, options, false);
    return this.exec('layerNormBackward', a, (b, v) => b.layerNormBackward(v));
  }

  rmsNormBackward(dy: Tensor, x: Tensor, rstd: Tensor, options: { normalizedShape: readonly number[]; weight?: Tensor | null }): { dx: Tensor; dweight: Tensor | null } {
    const a = this.rowBwdArgs(dy, x, null, rstd, options, true);
    return this.exec('rmsNormBackward', a, (b, v) => {
      const r = b.layerNormBackward(v);
      return { dx: r.dx, dweight: r.dweight };
    });
  }

  private rowBwdArgs(dyArg: Tensor, xArg: Tensor, meanArg: Tensor | null, rstdArg: Tensor, options: unknown, rms: boolean): O.LayerNormBwdArgs {
    this.alive();
    const op = rms ? 'rmsNormBackward' : 'layerNormBackward';
    const o = checkOptions(options, op, OPTION_KEYS[op]);
    const dy = checkTensor(dyArg, 'dy', this);
    const x = checkTensor(xArg, 'x', this);
    const mean = rms ? null : checkTensor(meanArg, 'mean', this);
    const rstd = checkTensor(rstdArg, 'rstd', this);
    const geom = rowGeom(x, o.normalizedShape);
    const weight = optTensor(o.weight, 'weight', this);
    const bias = rms ? null : optTensor(o.bias, 'bias', this);
    expectShape(dy, 'dy', x.shape, 'the shape of x');
    expectDtype(dy, 'dy', x.dtype, 'x');
    expectShape(mean, 'mean', geom.statShape, 'the leading dims of x');
    expectShape(rstd, 'rstd', geom.statShape, 'the leading dims of x');
    expectFloat32(mean, 'mean');
    expectFloat32(rstd, 'rstd');
    expectShape(weight, 'weight', geom.normalizedShape, 'normalizedShape');
    expectShape(bias, 'bias', geom.normalizedShape, 'normalizedShape');
    return { ...geom, dy, x, mean, rstd, weight, bias, rms };
  }

  groupNorm(x: Tensor, options: GroupNormOptions): { y: Tensor; mean: Tensor; rstd: Tensor } {
    this.alive();
    const o = checkOptions(options, 'groupNorm', OPTION_KEYS.groupNorm);
    const xt = checkTensor(x, 'x', this);
    const geom = channelGeom(xt, 'x', 'groupNorm');
    const G = this.numGroups(o.numGroups, geom.C);
    // As PyTorch's group_norm: one value per group in the whole batch is an error; N >= 2
    // with one value per group is not (y = bias), nor an empty batch.
    if (geom.N * (geom.C / G) * geom.S === 1) throw new ValueError(`x: groupNorm expects more than 1 value per group when training, got input of shape ${fmtShape(xt.shape)} with numGroups ${G}`, 'x');
    const a = this.gnArgs(xt, geom, G, o);
    return this.exec('groupNorm', a, (b, v) => b.groupNorm(v));
  }

  instanceNorm(x: Tensor, options: { weight?: Tensor | null; bias?: Tensor | null; eps?: number } = {}): { y: Tensor; mean: Tensor; rstd: Tensor } {
    this.alive();
    const o = checkOptions(options, 'instanceNorm', OPTION_KEYS.instanceNorm);
    const xt = checkTensor(x, 'x', this);
    const geom = channelGeom(xt, 'x', 'instanceNorm');
    // As PyTorch's instance_norm: one spatial element is an error whatever N is.
    if (geom.S === 1) throw new ValueError(`x: instanceNorm expects more than 1 spatial element per channel when training, got input of shape ${fmtShape(xt.shape)}`, 'x');
    const a = this.gnArgs(xt, geom, geom.C, o);
    return this.exec('instanceNorm', a, (b, v) => b.groupNorm(v));
  }

  private numGroups(g: unknown, C: number): number {
    if (typeof g !== 'number' || !Number.isInteger(g) || g < 1) throw new ValueError(`numGroups: expected a positive integer, got ${describeValue(g)}`, 'numGroups');
    if (C % g !== 0) throw new ValueError(`numGroups: ${g} does not divide the ${C} channels of x`, 'numGroups');
    return g;
  }

  private gnArgs(x: Tensor, geom: { N: number; C: number; S: number }, G: number, o: Opts): O.GroupNormArgs {
    const weight = optTensor(o.weight, 'weight', this);
    const bias = optTensor(o.bias, 'bias', this);
    expectShape(weight, 'weight', [geom.C], 'one per channel');
    expectShape(bias, 'bias', [geom.C], 'one per channel');
    const act = o.activation ?? null;
    if (act !== null && act !== 'silu') throw new ValueError(`activation: expected 'silu' or null, got ${describeValue(act)}`, 'activation');
    return { ...geom, x, G, weight, bias, eps: checkEps(o.eps ?? 1e-5), silu: act === 'silu' };
  }

  groupNormBackward(dy: Tensor, x: Tensor, mean: Tensor, rstd: Tensor, options: { numGroups: number; weight?: Tensor | null; bias?: Tensor | null }): O.BwdOut {
    this.alive();
    const o = checkOptions(options, 'groupNormBackward', OPTION_KEYS.groupNormBackward);
    const xt = checkTensor(x, 'x', this);
    const geom = channelGeom(xt, 'x', 'groupNormBackward');
    const G = this.numGroups(o.numGroups, geom.C);
    return this.exec('groupNormBackward', this.gnBwdArgs(dy, xt, mean, rstd, geom, G, o), (b, v) => b.groupNormBackward(v));
  }

  instanceNormBackward(dy: Tensor, x: Tensor, mean: Tensor, rstd: Tensor, options: { weight?: Tensor | null; bias?: Tensor | null } = {}): O.BwdOut {
    this.alive();
    const o = checkOptions(options, 'instanceNormBackward', OPTION_KEYS.instanceNormBackward);
    const xt = checkTensor(x, 'x', this);
    const geom = channelGeom(xt, 'x', 'instanceNormBackward');
    return this.exec('instanceNormBackward', this.gnBwdArgs(dy, xt, mean, rstd, geom, geom.C, o), (b, v) => b.groupNormBackward(v));
  }

  private gnBwdArgs(dyArg: Tensor, x: Tensor, meanArg: Tensor, rstdArg: Tensor, geom: { N: number; C: number; S: number }, G: number, o: Opts): O.GroupNormBwdArgs {
    const dy = checkTensor(dyArg, 'dy', this);
    const mean = checkTensor(meanArg, 'mean', this);
    const rstd = checkTensor(rstdArg, 'rstd', this);
    const weight = optTensor(o.weight, 'weight', this);
    const bias = optTensor(o.bias, 'bias', this);
    expectShape(dy, 'dy', x.shape, 'the shape of x');
    expectDtype(dy, 'dy', x.dtype, 'x');
    expectShape(mean, 'mean', [geom.N, G], '[N, numGroups]');
    expectShape(rstd, 'rstd', [geom.N, G], '[N, numGroups]');
    expectFloat32(mean, 'mean');
    expectFloat32(rstd, 'rstd');
    expectShape(weight, 'weight', [geom.C], 'one per channel');
    expectShape(bias, 'bias', [geom.C], 'one per channel');
    return { ...geom, dy, x, mean, rstd, G, weight, bias };
  }

  batchNorm(x: Tensor, options: BatchNormOptions): { y: Tensor; saveMean: Tensor; saveInvstd: Tensor } {
    this.alive();
    const o = checkOptions(options, 'batchNorm', OPTION_KEYS.batchNorm);
    const xt = checkTensor(x, 'x', this);
    const geom = channelGeom(xt, 'x', 'batchNorm', 3);
    const training = this.training(o.training);
    const weight = optTensor(o.weight, 'weight', this);
    const bias = optTensor(o.bias, 'bias', this);
    const runningMean = optTensor(o.runningMean, 'runningMean', this);
    const runningVar = optTensor(o.runningVar, 'runningVar', this);
    for (const [t, n] of [[weight, 'weight'], [bias, 'bias'], [runningMean, 'runningMean'], [runningVar, 'runningVar']] as const) expectShape(t, n, [geom.C], 'one per channel');
    expectFloat32(runningMean, 'runningMean');
    expectFloat32(runningVar, 'runningVar');
    if ((runningMean === null) !== (runningVar === null)) throw new ValueError('runningMean/runningVar: give both or neither', runningMean ? 'runningVar' : 'runningMean');
    if (!training && !runningMean) throw new ValueError('runningMean: eval-mode batchNorm needs runningMean and runningVar', 'runningMean');
    // Exactly one value per channel is an error (PyTorch); an empty batch gives an empty y.
    if (training && geom.N * geom.S === 1) throw new ValueError(`x: expected more than 1 value per channel when training, got input of shape ${fmtShape(xt.shape)}`, 'x');
    const eps = checkEps(o.eps ?? 1e-5);
    let momentum: number;
    if (o.momentum === null) {
      const nbt = o.numBatchesTracked ?? 0;
      if (typeof nbt !== 'number' || !Number.isInteger(nbt) || nbt < 0) throw new ValueError(`numBatchesTracked: expected an integer >= 0, got ${describeValue(nbt)}`, 'numBatchesTracked');
      momentum = 1 / (nbt + 1);
    } else {
      const m = o.momentum ?? 0.1;
      if (typeof m !== 'number' || !Number.isFinite(m)) throw new ValueError(`momentum: expected a finite number or null, got ${describeValue(m)}`, 'momentum');
      momentum = m;
    }
    const a: O.BatchNormArgs = { ...geom, x: xt, training, weight, bias, runningMean, runningVar, momentum, eps };
    return this.exec('batchNorm', a, (b, v) => b.batchNorm(v), training ? ['runningMean', 'runningVar'] : []);
  }

  private training(t: unknown): boolean {
    if (typeof t !== 'boolean') throw new ValueError(`training: expected true or false, got ${describeValue(t)}`, 'training');
    return t;
  }

  batchNormBackward(dy: Tensor, x: Tensor, options: BatchNormBackwardOptions): O.BwdOut {
    this.alive();
    const o = checkOptions(options, 'batchNormBackward', OPTION_KEYS.batchNormBackward);
    const dyt = checkTensor(dy, 'dy', this);
    const xt = checkTensor(x, 'x', this);
    const geom = channelGeom(xt, 'x', 'batchNormBackward', 3);
    const training = this.training(o.training);
    expectShape(dyt, 'dy', xt.shape, 'the shape of x');
    expectDtype(dyt, 'dy', xt.dtype, 'x');
    const t: Record<string, Tensor | null> = {};
    for (const n of ['weight', 'bias', 'runningMean', 'runningVar', 'saveMean', 'saveInvstd']) {
      t[n] = optTensor(o[n], n, this);
      // Eval: saveMean/saveInvstd are unused; the eval forward's empty [0] ones are accepted.
      const evalSave = !training && (n === 'saveMean' || n === 'saveInvstd');
      if (evalSave && t[n] && t[n]!.shape.length === 1 && t[n]!.shape[0] === 0) t[n] = null;
      expectShape(t[n]!, n, [geom.C], evalSave ? 'one per channel, or [0] as the eval forward returns' : 'one per channel');
      if (n !== 'weight' && n !== 'bias') expectFloat32(t[n]!, n);
      if (evalSave) t[n] = null;
    }
    if (training && (!t.saveMean || !t.saveInvstd)) throw new ValueError(`${t.saveMean ? 'saveInvstd' : 'saveMean'}: training batchNormBackward needs saveMean and saveInvstd from the forward`, t.saveMean ? 'saveInvstd' : 'saveMean');
    if (!training && (!t.runningMean || !t.runningVar)) throw new ValueError(`${t.runningMean ? 'runningVar' : 'runningMean'}: eval batchNormBackward needs runningMean and runningVar`, t.runningMean ? 'runningVar' : 'runningMean');
    const a: O.BatchNormBwdArgs = {
      ...geom, dy: dyt, x: xt, training,
      weight: t.weight!, bias: t.bias!, runningMean: t.runningMean!, runningVar: t.runningVar!, saveMean: t.saveMean!, saveInvstd: t.saveInvstd!,
      eps: checkEps(o.eps ?? 1e-5),
    };
    return this.exec('batchNormBackward', a, (b, v) => b.batchNormBackward(v));
  }

  weightNorm(v: Tensor, g: Tensor, options: { dim?: number | null } = {}): { w: Tensor; norms: Tensor } {
    this.alive();
    const o = checkOptions(options, 'weightNorm', OPTION_KEYS.weightNorm);
    const vt = checkTensor(v, 'v', this);
    const gt = checkTensor(g, 'g', this);
    const geom = sliceGeom(vt, o.dim === undefined ? 0 : o.dim);
    this.expectG(gt, geom, vt);
    return this.exec('weightNorm', { ...geom, v: vt, g: gt }, (b, a) => b.weightNorm(a));
  }

  private expectG(g: Tensor, geom: { gShape: number[]; D: number }, v: Tensor): void {
    // g may have v's rank with ones (PyTorch's layout) or be 1-D [D] / a scalar-shaped [] for dim null.
    if (g.size !== geom.D || !(g.shape.length === geom.gShape.length || g.shape.length <= 1)) {
      throw new ShapeError(`g: expected shape ${fmtShape(geom.gShape)} for v of shape ${fmtShape(v.shape)}, got ${fmtShape(g.shape)}`, 'g');
    }
    if (g.shape.length === geom.gShape.length && !g.shape.every((d, i) => d === geom.gShape[i])) {
      throw new ShapeError(`g: expected shape ${fmtShape(geom.gShape)} for v of shape ${fmtShape(v.shape)}, got ${fmtShape(g.shape)}`, 'g');
    }
  }

  weightNormBackward(dw: Tensor, v: Tensor, g: Tensor, norms: Tensor, options: { dim?: number | null } = {}): { dv: Tensor; dg: Tensor } {
    this.alive();
    const o = checkOptions(options, 'weightNormBackward', OPTION_KEYS.weightNormBackward);
    const dwt = checkTensor(dw, 'dw', this);
    const vt = checkTensor(v, 'v', this);
    const gt = checkTensor(g, 'g', this);
    const nt = checkTensor(norms, 'norms', this);
    const geom = sliceGeom(vt, o.dim === undefined ? 0 : o.dim);
    this.expectG(gt, geom, vt);
    expectShape(dwt, 'dw', vt.shape, 'the shape of v');
    expectDtype(dwt, 'dw', vt.dtype, 'v');
    expectShape(nt, 'norms', gt.shape, "g's shape");
    expectFloat32(nt, 'norms');
    return this.exec('weightNormBackward', { ...geom, dw: dwt, v: vt, g: gt, norms: nt }, (b, a) => b.weightNormBackward(a));
  }

  // ---- execution and verification ----

  private exec<A extends object, R extends object>(op: string, args: A, run: (b: O.Backend, a: A) => R, mutated: string[] = []): R {
    const gpu = this._gpu;
    if (!gpu) return run(this._impl, args);
    const inputs = Object.values(args).filter((v): v is Tensor => v instanceof Tensor);
    const out = gpu.transaction(() => (this.verify ? this.verified(op, args, run, mutated, gpu) : run(gpu, args)));
    // An output is only as good as the inputs it was computed from: a failed producer (GPU
    // validation error, verify mismatch) makes the dependent outputs reject as well.
    const upstream = inputs.map((t) => t._pending).filter((p): p is Promise<void> => p !== null);
    if (upstream.length) {
      for (const t of Object.values(out)) {
        if (t instanceof Tensor) {
          t._pending = Promise.all([t._pending, ...upstream]).then(() => {});
          t._pending.catch(() => {});
        }
      }
    }
    return out;
  }

  private verified<A extends object, R extends object>(op: string, args: A, run: (b: O.Backend, a: A) => R, mutated: string[], gpu: GpuBackend): R {
    // Snapshot every input on the GPU queue before the op runs (the op may update running stats).
    const snaps: [string, Tensor][] = [];
    for (const [k, v] of Object.entries(args)) if (v instanceof Tensor) snaps.push([k, v]);
    const hostIn = Promise.all(snaps.map(([, t]) => gpu.read(t)));
    const out = run(gpu, args);
    // The outputs' own completion (GPU error scopes), captured before read() is made to wait
    // for this check too: the check must not wait on itself.
    const ownDone = new Map<Tensor, Promise<void> | null>();
    for (const t of Object.values(out)) if (t instanceof Tensor) ownDone.set(t, t._pending);
    // In-place results are copied out right behind the op, before any later op can change them.
    const after = Promise.all(mutated.map((k) => (args as Record<string, Tensor | null>)[k]).map((t) => (t ? gpu.read(t) : Promise.resolve(null))));
    const check = (async () => {
      const data = await hostIn;
      const cpuArgs = { ...args } as Record<string, unknown>;
      snaps.forEach(([k, t], i) => (cpuArgs[k] = this.cpuRef.tensor(data[i]!, t.shape, t.dtype)));
      const ref = run(this.cpuRef, cpuArgs as A) as Record<string, Tensor | null>;
      const got = out as Record<string, Tensor | null>;
      for (const [name, t] of Object.entries(got)) {
        if (!(t instanceof Tensor) || !ref[name]) continue;
        await ownDone.get(t);
        compare(op, name, await gpu.read(t), ref[name]!._data!, t.shape, REL_TOL[t.dtype]);
      }
      const mutatedNow = await after;
      mutated.forEach((k, i) => {
        const r = cpuArgs[k] as Tensor | null;
        if (r && mutatedNow[i]) compare(op, k, mutatedNow[i]!, r._data!, r.shape, 1e-4);
      });
    })();
    check.catch(() => {});
    // read() of any output (and awaiting the result) reports a ParityError.
    for (const t of Object.values(out)) {
      if (t instanceof Tensor) {
        const prev = t._pending;
        t._pending = Promise.all([prev, check]).then(() => {});
        t._pending.catch(() => {});
      }
    }
    Object.defineProperty(out, 'then', {
      enumerable: false,
      configurable: true,
      value: (res: (v: R) => unknown, rej: (e: unknown) => unknown) => {
        const plain = { ...out } as R;
        return check.then(() => res(plain), rej);
      },
    });
    return out;
  }
}

function withSum<T extends object>(r: T, sum: Tensor | null): T & { sum?: Tensor } {
  return sum ? { ...r, sum } : r;
}

/** Relative L2 error ‖got − ref‖ / ‖ref‖ (NaN positions must match). */
export function relativeL2(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const g = got[i]!;
    const r = ref[i]!;
    if (Number.isNaN(r) || Number.isNaN(g)) {
      if (Number.isNaN(r) !== Number.isNaN(g)) return Infinity;
      continue;
    }
    if (!Number.isFinite(r) || !Number.isFinite(g)) {
      if (r !== g) return Infinity;
      continue;
    }
    num += (g - r) ** 2;
    den += r * r;
  }
  if (got.length !== ref.length) return Infinity;
  return num === 0 ? 0 : Math.sqrt(num / Math.max(den, 1e-300));
}

function compare(op: string, output: string, got: Float32Array, ref: Float32Array, shape: readonly number[], tol: number): void {
  const err = relativeL2(got, ref);
  if (!(err <= tol)) {
    throw new ParityError(`${op}: output ${output} of shape ${fmtShape(shape)} differs from the CPU reference: relative L2 error ${err.toExponential(3)} > ${tol}`, op, output, shape, err);
  }
}

/**
 * Create a norms instance. backend 'auto' (default) uses WebGPU when an adapter is found and
 * falls back to the CPU reference otherwise (see `norms.backend` and `norms.note`).
 */
export async function createNorms(options: CreateNormsOptions = {}): Promise<Norms> {
  checkOptions(options, 'createNorms', OPTION_KEYS.createNorms);
  for (const k of ['verify', 'poisonOutputs'] as const) {
    if (options[k] !== undefined && typeof options[k] !== 'boolean') throw new ValueError(`${k}: expected true or false, got ${describeValue(options[k])}`, k);
  }
  if (options.variant !== undefined && !['auto', 'fused', 'general'].includes(options.variant)) {
    throw new ValueError(`variant: expected 'auto', 'fused' or 'general', got ${describeValue(options.variant)}`, 'variant');
  }
  for (const k of ['device', 'gpu'] as const) {
    if (options[k] != null && typeof options[k] !== 'object') throw new ValueError(`${k}: expected a ${k === 'gpu' ? 'GPU (navigator.gpu, or create([]) from the webgpu package)' : 'GPUDevice'}, got ${describeValue(options[k])}`, k);
  }
  const want = options.backend ?? 'auto';
  if (!['auto', 'webgpu', 'cpu'].includes(want)) throw new ValueError(`backend: expected 'auto', 'webgpu' or 'cpu', got ${describeValue(want)}`, 'backend');
  if (want === 'cpu') return new Norms(null, options, 'cpu backend requested');
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
    return new Norms(null, options, `${msg}; using the CPU reference${nodeAdvice(options)}`);
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
