/**
 * The WebGPU device layer: one GpuContext per createNorms instance, composing the parts that
 * share its device — the pipeline cache (pipelines.ts), the buffer pool (buffers.ts), uniform and
 * bind group caches (bindings.ts), command-buffer batching (submit.ts), norms.encode() sessions
 * (sessions.ts) and the profiler (profiler.ts) — and turning GPU errors and device loss into
 * thrown (rejected) errors. Adapter and device acquisition: adapter.ts.
 */
import { DeviceError, DeviceLostError } from '../errors.ts';
import type { AdapterSummary } from './adapter.ts';
import { BindingCache, isRange, type Dispatch } from './bindings.ts';
import { BufferPool, BufferUsage, MapModeRead } from './buffers.ts';
import { PipelineCache, type Kernel, type KernelSource } from './pipelines.ts';
import { hasHalves, type HalfStorage } from './wgsl.ts';
import type { KernelProfile, OpProfile, Profiler } from './profiler.ts';
import { EncodeSession, EncodeSessions, NOT_SUBMITTED } from './sessions.ts';
import { Batcher } from './submit.ts';

export { acquireDevice, type AcquireOptions, type Acquired, type AdapterSummary } from './adapter.ts';
export { grid, type BoundRange, type Dispatch } from './bindings.ts';
export { BufferUsage } from './buffers.ts';
export type { Kernel, KernelSource } from './pipelines.ts';
export type { HalfStorage } from './wgsl.ts';
export type { KernelProfile, OpProfile } from './profiler.ts';
export { EncodeSession, NOT_SUBMITTED } from './sessions.ts';

/**
 * The kernel class an adapter gets from what it says about itself (createNorms adapterClass
 * 'auto'): 'cpu' for WebGPU implemented on the CPU, 'gpu' for the rest.
 *
 * CPU-emulated adapters: SwiftShader (Dawn and Chrome: vendor 'google', architecture
 * 'swiftshader', device 'swiftshader-device-subzero-', description 'SwiftShader driver 5.0.0')
 * and Mesa's llvmpipe Vulkan driver, lavapipe (Dawn: vendor 'mesa', architecture 'software',
 * device 'llvmpipe-llvm-15-0-6-256-bits-', description 'llvmpipe: Mesa 25.0.7 ... (LLVM 15.0.6)';
 * browsers hide device and description by default, so 'software' must suffice), and any adapter
 * that reports itself a fallback adapter (GPUAdapterInfo.isFallbackAdapter: both of those do).
 * A browser that tells nothing at all (every string empty) gets 'cpu' too, as before: the GPU
 * class on a CPU adapter measured 10-100x slower (below); the cost the other way round, the CPU
 * class on a real GPU, was not measured here (no GPU at hand).
 *
 * Why lavapipe takes the CPU class (measured on a 2-core machine with bench/compare.mjs
 * --adapter-class=cpu,gpu: both classes side by side in one process; table in bench/README.md):
 * lavapipe runs a workgroup as SIMD lanes on a CPU core, as SwiftShader does, and rewards what
 * SwiftShader rewards, one invocation per row and few barriers, if by smaller factors. CPU class
 * against GPU class, lavapipe (SwiftShader): layer norm [4096, 768] forward 11x (85x) faster,
 * [512, 4096] 2.7x (33x), backward [4096, 768] 5.3x (16x), instance norm [2, 64, 64, 64] 14x
 * (47x), group norm [2, 320, 64, 64] 1.4x (1.6x), training batch norm 1.5x (1.2x), layer norm
 * [65536, 3] 60-70x (before SHORT_ROW in policy.ts; with it both classes run the same kernel). The
 * GPU class wins only a single long row on lavapipe (layer norm [1, 4096] 1.4x faster; 2.8x
 * slower on SwiftShader), a fraction of a millisecond either way.
 */
export function adapterClassOf(info: AdapterSummary): 'cpu' | 'gpu' {
  if (info.isFallbackAdapter) return 'cpu';
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.toLowerCase();
  if (text.trim() === '') return 'cpu';
  if (/swiftshader|llvmpipe|lavapipe|softpipe|cpu/.test(text)) return 'cpu';
  return info.architecture.toLowerCase() === 'software' ? 'cpu' : 'gpu';
}

export class GpuContext {
  readonly device: GPUDevice;
  readonly adapter: AdapterSummary;
  /** The kernel family: detected from the adapter, or set by createNorms({ adapterClass }). */
  isCpuAdapter: boolean;
  private readonly pipelines: PipelineCache;
  private readonly owned: boolean;
  lost: GPUDeviceLostInfo | null = null;
  private lostError: DeviceLostError | null = null;
  private destroyed = false;
  private readonly pool: BufferPool;
  private readonly binds: BindingCache;
  private readonly sessions: EncodeSessions;
  private readonly batcher: Batcher;
  /** WGSL compile errors by pipeline key, appended to the errors of the submissions that fail. */
  readonly compileErrors: Map<string, string>;
  /** Set by createNorms({ profile: true }). */
  profiler: Profiler | null = null;
  /**
   * How kernels access float16 tensors: `'native'` (array<f16>) where the device has
   * 'shader-f16', else `'packed'` (pairs of halves in u32 words); createNorms({ float16 }) may
   * force 'packed'. Part of every pipeline key of a kernel with float16 bindings.
   */
  float16: HalfStorage;

  constructor(device: GPUDevice, adapter: AdapterSummary, owned: boolean, readonly keepAlive: unknown[] = []) {
    this.device = device;
    this.adapter = adapter;
    this.owned = owned;
    this.isCpuAdapter = adapterClassOf(adapter) === 'cpu';
    this.float16 = device.features.has('shader-f16') ? 'native' : 'packed';
    this.pipelines = new PipelineCache(device);
    this.compileErrors = this.pipelines.compileErrors;
    this.pool = new BufferPool(device);
    this.binds = new BindingCache(device);
    this.sessions = new EncodeSessions(device, {
      destroyed: () => this.destroyed,
      lost: () => this.lostError !== null,
      release: (buf) => this.releaseBuffer(buf),
    });
    this.batcher = new Batcher(device, this, this.sessions);
    device.lost.then((info) => {
      this.lost = info;
      if (!this.destroyed) this.lostError = new DeviceLostError(`GPU device lost (${info.reason}): ${info.message}. Call createNorms again to recover.`);
      // Settle the pending batch's promises (with DeviceLostError).
      this.flush();
    });
  }

  /** Passes after which a batch is submitted without waiting for the end of the task. */
  static get MAX_BATCH_PASSES(): number {
    return Batcher.MAX_BATCH_PASSES;
  }
  static set MAX_BATCH_PASSES(n: number) {
    Batcher.MAX_BATCH_PASSES = n;
  }
  /** Timestamp queries per batch (profile with timestamp-query): two per dispatch. */
  static get MAX_QUERIES(): number {
    return Batcher.MAX_QUERIES;
  }
  static set MAX_QUERIES(n: number) {
    Batcher.MAX_QUERIES = n;
  }
  /** The buffer pool's bound in bytes (every context). */
  static get POOL_BYTES(): number {
    return BufferPool.MAX_BYTES;
  }
  static set POOL_BYTES(n: number) {
    BufferPool.MAX_BYTES = n;
  }

  /**
   * Give a just-lost device's `lost` promise the chance to resolve, so that work that failed
   * because the device went away reports DeviceLostError rather than a generic error.
   */
  private async settleLoss(ms = 0): Promise<void> {
    if (this.lostError) return;
    await Promise.race([this.device.lost, new Promise((r) => setTimeout(r, ms))]);
    await Promise.resolve();
  }

  /** Throws DeviceLostError once the device is gone. */
  checkAlive(): void {
    if (this.lostError) throw this.lostError;
    if (this.destroyed) throw new DeviceError('this createNorms instance was destroyed');
  }

  kernel(src: KernelSource): Kernel {
    return this.pipelines.kernel(src);
  }

  // ---- buffers (the pool: buffers.ts) ----

  /** Tensors' and in-flight temporaries' buffers, and their bytes. */
  get liveBuffers(): number {
    return this.pool.liveBuffers;
  }
  get liveBytes(): number {
    return this.pool.liveBytes;
  }
  /** Released buffers kept for reuse, and their bytes. */
  get pooledBuffers(): number {
    return this.pool.pooledBuffers;
  }
  get pooledBytes(): number {
    return this.pool.pooledBytes;
  }

  /** A storage buffer (STORAGE | COPY_SRC | COPY_DST) of at least `bytes`, 16-byte padded, from the pool when it holds one. */
  createBuffer(bytes: number, label: string): GPUBuffer {
    return this.pool.create(bytes, label);
  }

  releaseBuffer(buf: GPUBuffer): void {
    // Used by passes recorded by encode() that may not have run yet: kept (and counted live) until then.
    const s = this.sessions.holder(buf);
    if (s) {
      s.held.push(buf);
      return;
    }
    // Not kept by the pool: destroyed now, or right after the submit of the batch that uses it.
    if (!this.pool.recycle(buf, this.destroyed)) this.batcher.discard(buf);
  }

  /**
   * A buffer of ours handed to the caller (`tensor.buffer`): from now on ops that bind it are
   * submitted at once, as for wrapped buffers, so that the caller's own queue work (another
   * engine reading a zero-copy view, say) sees every update in order. Back in ours when a tensor
   * gets it from the pool again.
   */
  disown(buf: GPUBuffer): void {
    this.flush();
    this.pool.ours.delete(buf);
  }

  // ---- submitting ops ----

  /**
   * Record an op's dispatches (one compute pass; with timestamps, one pass per dispatch) into the
   * pending batch, or into the caller's encoder inside norms.encode(). The promise rejects on GPU
   * errors: those of the op's own object creation, and those of the batch's command buffer (WebGPU
   * runs none of a command buffer that fails validation, so every op in it rejects).
   *
   * Batching: ops issued back to back share one command buffer, one submit and one pair of error
   * scopes. The batch is submitted by {@link flush}: at the end of the current task (a microtask),
   * before a read, before encode(), at device loss and destroy, when it holds MAX_BATCH_PASSES
   * passes, when `tensor.buffer` is taken (the caller may hand it to its own queue work), and right
   * after an op that binds a buffer we did not create (a wrapped buffer: its owner may destroy or
   * overwrite it as soon as the op returns) or that must probe an encode() session; those ops also
   * flush what was pending before them, so they get a command buffer of their own. Host writes to
   * a buffer the batch uses are recorded as copies into it ({@link writeBuffer}); buffers the batch
   * uses are destroyed only after its submit.
   */
  submit(label: string, dispatches: readonly Dispatch[], kernels?: KernelProfile[]): Promise<void> {
    this.checkAlive();
    const live = dispatches.filter((x) => x.workgroups > 0);
    for (const x of live) {
      if (x.buffers.length !== x.kernel.bindings.length) throw new Error(`${x.kernel.label}: ${x.buffers.length} buffers for ${x.kernel.bindings.length} bindings`);
    }
    if (kernels && this.profiler) {
      // float16: how the op's kernels accessed its float16 tensors (only ops that bind one).
      const halves = dispatches.filter((x) => hasHalves(x.kernel.bindings));
      const float16 = halves.length ? (halves.every((x) => x.kernel.half === 'native') ? 'native' : 'packed') : undefined;
      this.profiler.records.push(float16 ? { op: label, float16, kernels } : { op: label, kernels });
    }
    // Inside norms.encode(): the pass goes into the caller's encoder and nothing is submitted.
    const rec = this.recording;
    if (rec) return this.submitRecorded(label, live, rec);
    const conflicts = this.sessions.conflicts(live);
    const foreign = live.some((x) => x.buffers.some((b) => !this.pool.ours.has(isRange(b) ? b.buffer : b)));
    const alone = conflicts.length > 0 || foreign;
    if (alone) this.flush();
    const stamps = this.profiler?.timestamps ? kernels : undefined;
    const b = this.batcher.open(stamps ? 2 * live.length : 0);
    const errs: Promise<GPUError | null>[] = [];
    // Work recorded by encode() that this op depends on (or overwrites) must be in a command
    // buffer the caller submitted before this one: checked by a probe in this command buffer.
    const probes = conflicts.map((s) => this.sessions.probe(s, b.enc));
    this.batcher.record(b, label, live, stamps, (x) => this.binds.bindGroup(x, undefined, errs));
    for (const e of this.binds.takeEvicted()) b.evicted.push(e);
    if (alone || b.passes >= Batcher.MAX_BATCH_PASSES) this.flush();
    const batch = b;
    return Promise.all([batch.result, Promise.all(errs)]).then(async ([[ve, me], own]) => {
      // (The probes map their staging buffers: only after the submit.)
      const r = await Promise.all(probes.map((p) => p()));
      await this.settleLoss();
      if (this.lostError) throw this.lostError;
      const mine = own.find((e) => e);
      const e = mine ?? ve ?? me;
      if (e) {
        const extra = [...this.compileErrors.values()].join('\n');
        const shared = !mine && batch.ops > 1 ? ` (in a command buffer of ${batch.ops} ops submitted together: WebGPU ran none of them)` : '';
        throw new DeviceError(`${label}: WebGPU ${e === me ? 'out-of-memory' : 'validation'} error: ${e.message}${shared}${extra ? `\n${extra}` : ''}`);
      }
      if (r.includes(false)) throw new DeviceError(`${label}: an input was ${NOT_SUBMITTED}`);
    });
  }

  /** submit() inside norms.encode(): passes into the caller's encoder, nothing submitted. */
  private submitRecorded(label: string, live: readonly Dispatch[], rec: EncodeSession): Promise<void> {
    const d = this.device;
    d.pushErrorScope('out-of-memory');
    d.pushErrorScope('validation');
    this.sessions.record(rec, label, live, (x) => this.binds.bindGroup(x, rec));
    for (const b of this.binds.takeEvicted()) this.sessions.retire(b);
    const v = d.popErrorScope();
    const m = d.popErrorScope();
    return Promise.all([v, m]).then(async ([ve, me]) => {
      await this.settleLoss();
      if (this.lostError) throw this.lostError;
      const e = ve ?? me;
      if (e) {
        const extra = [...this.compileErrors.values()].join('\n');
        throw new DeviceError(`${label}: WebGPU ${ve ? 'validation' : 'out-of-memory'} error: ${e.message}${extra ? `\n${extra}` : ''}`);
      }
    });
  }

  // ---- batching (submit.ts) ----

  /** Submits counted (tests, benchmarks). */
  get submits(): number {
    return this.batcher.submits;
  }

  /** Submit the pending batch (one command buffer, one pair of error scopes). */
  flush(): void {
    this.batcher.flush();
  }

  /**
   * queue.writeBuffer in batch order: a write to a buffer the pending batch uses would run before
   * the batch (queue writes precede the later submit), so it is recorded into the batch as a copy
   * from a staging buffer instead. Other buffers are written at once.
   */
  writeBuffer(buf: GPUBuffer, offset: number, data: ArrayBufferView): void {
    this.batcher.writeBuffer(buf, offset, data);
  }

  // ---- profile (profiler.ts) ----

  enableProfile(): void {
    this.profiler = { records: [], timings: [], timestamps: this.device.features.has('timestamp-query') };
  }

  /** The records since the last call, with GPU times once their batches ran. */
  async takeProfile(): Promise<OpProfile[]> {
    const p = this.profiler;
    if (!p) return [];
    this.flush();
    const records = p.records.splice(0);
    const timings = p.timings.splice(0);
    await Promise.all(timings);
    return records;
  }

  // ---- norms.encode(): recording into the caller's command encoder (sessions.ts) ----

  /** The encode() call in progress, if any. */
  get recording(): EncodeSession | null {
    return this.sessions.recording;
  }

  beginEncode(encoder: GPUCommandEncoder): void {
    this.checkAlive();
    if (this.recording) throw new Error('encode() is already recording');
    // Ops issued before encode() run before the caller's command buffer.
    this.flush();
    this.sessions.recording = new EncodeSession(encoder);
  }

  /** Ends the recording; the caller's submit of its encoder is then probed for ({@link EncodeSessions.end}). */
  endEncode(): void {
    this.sessions.end();
  }

  /** Copy a buffer's first `bytes` to the host. */
  async readBytes(buf: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    this.checkAlive();
    this.flush();
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const staging = this.device.createBuffer({ size, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'webgpu-norm.readback' });
    try {
      const enc = this.device.createCommandEncoder({ label: 'readback' });
      // Written by passes recorded by encode(): they must have been submitted before this copy.
      const probes = this.sessions.writers(buf).map((s) => this.sessions.probe(s, enc));
      enc.copyBufferToBuffer(buf, 0, staging, 0, size);
      this.device.queue.submit([enc.finish()]);
      let ran: boolean[];
      try {
        ran = await Promise.all(probes.map((p) => p()));
        await staging.mapAsync(MapModeRead);
      } catch (e) {
        await this.settleLoss(100);
        if (this.lostError) throw this.lostError;
        throw new DeviceError(`readback failed: ${(e as Error).message}`);
      }
      if (ran.includes(false)) throw new DeviceError(`read: this tensor was ${NOT_SUBMITTED}`);
      return staging.getMappedRange().slice(0, bytes);
    } finally {
      staging.destroy();
    }
  }

  destroy(): void {
    if (this.destroyed) return;
    this.flush();
    this.destroyed = true;
    this.binds.destroy();
    this.pool.destroy();
    this.sessions.destroy();
    this.pipelines.clear();
    if (this.owned) this.device.destroy();
  }
}
