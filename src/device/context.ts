/**
 * The WebGPU device layer: adapter and device acquisition, pipeline cache, labelled buffers with
 * byte accounting, uniform upload, and GPU errors turned into thrown (rejected) errors.
 */
import { DeviceError, DeviceLostError } from '../errors.ts';
import { bindingsWGSL, type BindingDecl, type UniformLayout } from './wgsl.ts';

// WebGPU's flag namespaces are globals in a browser but not in Node (unless the caller installs
// the `webgpu` package's globals). The library uses its own copies of the spec values.
export const BufferUsage = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80, QUERY_RESOLVE: 0x200 } as const;
const MapModeRead = 0x1;

export interface AcquireOptions {
  device?: GPUDevice;
  gpu?: GPU;
}

/** Resolve a device: the caller's, or a new one from options.gpu / navigator.gpu. Null when no adapter. */
export interface Acquired {
  device: GPUDevice;
  adapterInfo: AdapterSummary;
  owned: boolean;
  /** Kept alive with the device: in Node, a collected GPU instance takes its devices down with it. */
  keepAlive: unknown[];
}

export async function acquireDevice(opts: AcquireOptions): Promise<Acquired | null> {
  if (opts.device) return { device: opts.device, adapterInfo: summarize(opts.device.adapterInfo), owned: false, keepAlive: [] };
  const gpu = opts.gpu ?? (typeof navigator !== 'undefined' ? (navigator as Navigator & { gpu?: GPU }).gpu : undefined);
  if (!gpu) return null;
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) return null;
  const wanted: GPUFeatureName[] = ['subgroups', 'timestamp-query', 'shader-f16'];
  const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
  const L = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: L.maxStorageBufferBindingSize,
    maxBufferSize: L.maxBufferSize,
    maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: L.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: L.maxComputeWorkgroupSizeX,
    maxStorageBuffersPerShaderStage: L.maxStorageBuffersPerShaderStage,
  };
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'webgpu-norm' });
  } catch (e) {
    throw new DeviceError(`requestDevice failed: ${(e as Error).message}`);
  }
  return { device, adapterInfo: summarize(adapter.info), owned: true, keepAlive: [gpu, adapter] };
}

/** What the adapter says about itself (GPUAdapterInfo; empty strings where it says nothing). */
export interface AdapterSummary {
  /** e.g. `'nvidia'`, `'google'` (SwiftShader). */
  vendor: string;
  /** e.g. `'swiftshader'`, `'hopper'`. */
  architecture: string;
  /** Device name or id, often empty in browsers. */
  device: string;
  /** Driver description, often empty in browsers. */
  description: string;
}

function summarize(info: GPUAdapterInfo | undefined): AdapterSummary {
  return {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    device: info?.device ?? '',
    description: info?.description ?? '',
  };
}

/** A compiled kernel: the pipeline and the binding declarations it was built from. */
export interface Kernel {
  pipeline: GPUComputePipeline;
  /** The pipeline's bind group layout, fetched once. */
  layout: GPUBindGroupLayout;
  bindings: readonly BindingDecl[];
  uniforms: UniformLayout<string>;
  workgroupSize: number;
  label: string;
}

export interface KernelSource {
  /** Pipeline cache key: kernel name plus compile-time choices only (never shapes). */
  key: string;
  label: string;
  bindings: readonly BindingDecl[];
  uniforms: UniformLayout<string>;
  /** WGSL after the generated declarations (built only when the pipeline is not cached yet). */
  body: () => string;
  workgroupSize: number;
  constants?: Record<string, number>;
  /** Every quad access starts at a multiple of 4 (lets float16 quads load two whole words). */
  aligned?: boolean;
  /** Bindings are ranges of their buffers, starting at the uniform word offsets w1..wn. */
  window?: boolean;
  /** The compute entry point (default 'main'). */
  entryPoint?: string;
  /** WGSL extensions the body uses (`enable` directives, e.g. 'subgroups'); the device must have the feature. */
  enables?: readonly string[];
}

/** A bound range of a buffer (offset a multiple of minStorageBufferOffsetAlignment). */
export interface BoundRange {
  buffer: GPUBuffer;
  offset: number;
  size: number;
}

export interface Dispatch {
  kernel: Kernel;
  /** Whole buffers, or bound ranges of them (windowed kernels). */
  buffers: readonly (GPUBuffer | BoundRange)[];
  params: Record<string, number>;
  /** Total workgroups; split across x/y when past the per-dimension limit. */
  workgroups: number;
}

/** One kernel dispatch of an op, in {@link Norms.profile}'s records. */
export interface KernelProfile {
  /** The kernel: its family and compile-time flags, e.g. `apply[APPLY,COMP,ALIGNED]`. */
  name: string;
  /** Workgroups dispatched. */
  workgroups: number;
  /** Tensor bytes the kernel reads (the elements its invocations touch, not the bound sizes). */
  bytesRead: number;
  /** Tensor bytes it writes. */
  bytesWritten: number;
  /** GPU time of the kernel's compute pass in milliseconds (devices with `'timestamp-query'`). */
  gpuMs?: number;
}

/** One op's kernels, in {@link Norms.profile}'s records. */
export interface OpProfile {
  /** The op, e.g. `'layerNorm'`, `'rmsNormBackward'`. */
  op: string;
  /** The kernels it dispatched, in order. */
  kernels: KernelProfile[];
}

interface Profiler {
  records: OpProfile[];
  /** Readbacks of GPU timestamps of submitted batches. */
  timings: Promise<void>[];
  /** The device has timestamp-query: each dispatch gets a pass with timestamp writes. */
  timestamps: boolean;
}

/** Ops recorded into one command buffer, submitted together by flush(). */
interface Batch {
  enc: GPUCommandEncoder;
  /** Every buffer the recorded passes bind. */
  used: Set<GPUBuffer>;
  ops: number;
  passes: number;
  /** Evicted uniform buffers the passes may use: destroyed after the submit. */
  evicted: GPUBuffer[];
  /** Buffers released while used (pool full), staging buffers: destroyed after the submit. */
  toDestroy: { destroy(): void }[];
  /** The submit's validation and out-of-memory errors. */
  result: Promise<[GPUError | null, GPUError | null]>;
  settle: (r: Promise<[GPUError | null, GPUError | null]>) => void;
  timing: { querySet: GPUQuerySet; n: number; kernels: [KernelProfile, number][] } | null;
}

const MAX_DIM = 65535;

const isRange = (b: GPUBuffer | BoundRange): b is BoundRange => (b as Partial<BoundRange>).buffer !== undefined && typeof (b as Partial<BoundRange>).offset === 'number';

function lruGet<V>(m: Map<string, V>, k: string): V | undefined {
  const v = m.get(k);
  if (v !== undefined) {
    m.delete(k);
    m.set(k, v);
  }
  return v;
}

/** Insert; returns the evicted oldest value when the map grew past `max`. */
function lruSet<V>(m: Map<string, V>, k: string, v: V, max: number): V | undefined {
  m.set(k, v);
  if (m.size <= max) return undefined;
  const [oldK, oldV] = m.entries().next().value as [string, V];
  m.delete(oldK);
  return oldV;
}

/** Split a 1-D workgroup count into x·y ≥ n with x ≤ 65535 (kernels linearize wid.x + wid.y·nwg.x). */
export function grid(n: number): [number, number] {
  if (n <= MAX_DIM) return [Math.max(n, 1), 1];
  const y = Math.ceil(n / MAX_DIM);
  return [Math.ceil(n / y), y];
}

/**
 * One `norms.encode()` call: the passes it recorded into the caller's command encoder. Until the
 * caller's submit of that encoder is seen (see {@link GpuContext.probe}), every buffer the passes
 * use stays out of the pool (a later op would otherwise reuse it, and its queue work would run
 * before the caller's command buffer) and evicted uniform buffers stay alive.
 */
export class EncodeSession {
  /** Storage and uniform buffers the recorded passes use. */
  readonly used = new Set<GPUBuffer>();
  /** Storage buffers the recorded passes write. */
  readonly written = new Set<GPUBuffer>();
  /** Released while pending: back to the pool once the caller's submit is seen. */
  readonly held: GPUBuffer[] = [];
  /** Evicted uniform buffers the passes use: destroyed once the caller's submit is seen. */
  readonly evicted: GPUBuffer[] = [];
  /** 4 bytes set to 1 at creation; the caller's command buffer clears it (the last command recorded). */
  marker: GPUBuffer | null = null;
  submitted = false;
  /** A background probe in flight. */
  polling = false;
  constructor(readonly encoder: GPUCommandEncoder) {}
}

/** The message of every error about work recorded by encode() that has not run. */
export const NOT_SUBMITTED =
  'recorded by norms.encode() into a command encoder that had not been submitted: call device.queue.submit([encoder.finish()]) first ' +
  '(if it was submitted, that submit failed WebGPU validation, e.g. a destroyed buffer: see the error scope around your submit)';

export class GpuContext {
  readonly device: GPUDevice;
  readonly adapter: AdapterSummary;
  /** The kernel family: detected from the adapter, or set by createNorms({ adapterClass }). */
  isCpuAdapter: boolean;
  private readonly pipelines = new Map<string, Kernel>();
  private readonly owned: boolean;
  lost: GPUDeviceLostInfo | null = null;
  private lostError: DeviceLostError | null = null;
  liveBuffers = 0;
  liveBytes = 0;
  private destroyed = false;

  constructor(device: GPUDevice, adapter: AdapterSummary, owned: boolean, readonly keepAlive: unknown[] = []) {
    this.device = device;
    this.adapter = adapter;
    this.owned = owned;
    const arch = `${adapter.vendor} ${adapter.architecture} ${adapter.description}`.toLowerCase();
    this.isCpuAdapter = /swiftshader|llvmpipe|lavapipe|cpu/.test(arch) || arch.trim() === '';
    device.lost.then((info) => {
      this.lost = info;
      if (!this.destroyed) this.lostError = new DeviceLostError(`GPU device lost (${info.reason}): ${info.message}. Call createNorms again to recover.`);
      // Settle the pending batch's promises (with DeviceLostError).
      this.flush();
    });
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
    const hit = this.pipelines.get(src.key);
    if (hit) return hit;
    const code = `${(src.enables ?? []).map((e) => `enable ${e};\n`).join('')}${src.uniforms.wgsl()}\n${bindingsWGSL(src.bindings, src.aligned, src.window)}\noverride WG: u32 = 64u;\n${src.body()}`;
    const d = this.device;
    d.pushErrorScope('validation');
    const module = d.createShaderModule({ code, label: src.label });
    // The layout comes from the binding declarations, not from the shader's use of them: a
    // variant that leaves a binding unused (batch-norm eval dx reads no x) keeps the same bind group.
    const COMPUTE = 0x4; // GPUShaderStage.COMPUTE (the globals need not exist, e.g. in Node)
    const layout = d.createBindGroupLayout({
      label: `${src.label}.layout`,
      entries: [
        { binding: 0, visibility: COMPUTE, buffer: { type: 'uniform' } },
        ...src.bindings.map((b, k): GPUBindGroupLayoutEntry => ({ binding: k + 1, visibility: COMPUTE, buffer: { type: b.access === 'read' ? 'read-only-storage' : 'storage' } })),
      ],
    });
    const pipeline = d.createComputePipeline({
      label: src.label,
      layout: d.createPipelineLayout({ label: `${src.label}.pipelineLayout`, bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: src.entryPoint ?? 'main', constants: { WG: src.workgroupSize, ...(src.constants ?? {}) } },
    });
    const err = d.popErrorScope();
    err.then((e) => {
      if (e) {
        this.pipelines.delete(src.key);
        // Surface compile errors with the WGSL message: kept here and thrown by the submission
        // that uses the pipeline (its error scope catches the invalid pipeline).
        module.getCompilationInfo?.().then((info) => {
          const msgs = info.messages.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('\n');
          this.compileErrors.set(src.key, `${e.message}\n${msgs}`);
        });
      }
    });
    const k: Kernel = { pipeline, layout, bindings: src.bindings, uniforms: src.uniforms, workgroupSize: src.workgroupSize, label: src.label };
    this.pipelines.set(src.key, k);
    return k;
  }
  readonly compileErrors = new Map<string, string>();

  /**
   * Storage buffers (STORAGE | COPY_SRC | COPY_DST), 16-byte padded. Released ones are kept in a
   * bounded pool by exact size and handed out again: reuse is safe because every use is ordered
   * on the one queue. liveBuffers/liveBytes count what tensors and in-flight temporaries hold;
   * pooledBuffers/pooledBytes what the pool holds (at most POOL_BYTES; freed by destroy()).
   */
  createBuffer(bytes: number, label: string): GPUBuffer {
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    const free = this.pool.get(size);
    let buf = free?.pop();
    if (buf) {
      this.pooledBuffers--;
      this.pooledBytes -= size;
      this.ours.add(buf);
    } else {
      buf = this.device.createBuffer({ size, usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST, label });
      this.ours.add(buf);
    }
    this.liveBuffers++;
    this.liveBytes += size;
    return buf;
  }

  releaseBuffer(buf: GPUBuffer): void {
    // Used by passes recorded by encode() that may not have run yet: kept (and counted live) until then.
    const s = this.holder(buf);
    if (s) {
      s.held.push(buf);
      return;
    }
    this.recycle(buf);
  }

  private recycle(buf: GPUBuffer): void {
    this.liveBuffers--;
    this.liveBytes -= buf.size;
    if (this.destroyed || this.pooledBytes + buf.size > GpuContext.POOL_BYTES) {
      // Used by the unsubmitted batch: destroyed right after its submit.
      if (this.batch?.used.has(buf)) this.batch.toDestroy.push(buf);
      else buf.destroy();
      return;
    }
    const list = this.pool.get(buf.size) ?? [];
    list.push(buf);
    this.pool.set(buf.size, list);
    this.pooledBuffers++;
    this.pooledBytes += buf.size;
  }

  static POOL_BYTES = 256 * 1024 * 1024;
  private readonly pool = new Map<number, GPUBuffer[]>();
  pooledBuffers = 0;
  pooledBytes = 0;

  /**
   * Uniform buffers and bind groups are cached (bounded, least recently used first out): a
   * uniform buffer by its contents (it is never written again), a bind group by its kernel,
   * uniform buffer and storage buffers. Repeated ops on the same shapes and pooled buffers then
   * create no WebGPU objects but the command encoder: per-op host work is what bounds small and
   * medium ops on a discrete GPU.
   */
  private readonly uniformCache = new Map<string, GPUBuffer>();
  private readonly bindCache = new Map<string, GPUBindGroup>();
  private readonly evicted: GPUBuffer[] = [];
  private readonly ids = new WeakMap<object, number>();
  private nextId = 1;
  private idOf(o: object): number {
    let id = this.ids.get(o);
    if (id === undefined) this.ids.set(o, (id = this.nextId++));
    return id;
  }

  private bindGroup(x: Dispatch, rec?: EncodeSession, errs?: Promise<GPUError | null>[]): GPUBindGroup {
    const d = this.device;
    // Cache misses create objects whose validation errors (a buffer without STORAGE usage, of
    // another device) belong to this op: caught by a scope of their own (hits create nothing).
    let scoped = false;
    const scope = () => {
      if (scoped || !errs) return;
      scoped = true;
      d.pushErrorScope('validation');
    };
    const bytes = new Uint32Array(x.kernel.uniforms.pack(x.params));
    const ukey = bytes.join(',');
    let ub = lruGet(this.uniformCache, ukey);
    if (ub) rec?.used.add(ub);
    if (!ub) {
      scope();
      ub = d.createBuffer({ size: bytes.byteLength, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST, label: `${x.kernel.label}.params` });
      d.queue.writeBuffer(ub, 0, bytes);
      // An evicted buffer may still be used by submitted work (destroy() waits for that) or by
      // this submission: destroyed once it is submitted.
      const old = lruSet(this.uniformCache, ukey, ub, 512);
      if (old) this.evicted.push(old);
      rec?.used.add(ub);
    }
    const bkey = `${this.idOf(x.kernel)}|${this.idOf(ub)}|${x.buffers.map((b) => (isRange(b) ? `${this.idOf(b.buffer)}@${b.offset}+${b.size}` : this.idOf(b))).join(',')}`;
    let bg = lruGet(this.bindCache, bkey);
    if (!bg) {
      scope();
      bg = d.createBindGroup({
        label: `${x.kernel.label}.bind`,
        layout: x.kernel.layout,
        entries: [{ binding: 0, resource: { buffer: ub } }, ...x.buffers.map((b, k) => ({ binding: k + 1, resource: isRange(b) ? { buffer: b.buffer, offset: b.offset, size: b.size } : { buffer: b } }))],
      });
      lruSet(this.bindCache, bkey, bg, 1024);
    }
    if (scoped) errs!.push(d.popErrorScope().catch(() => null));
    return bg;
  }

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
  /**
   * A buffer of ours handed to the caller (`tensor.buffer`): from now on ops that bind it are
   * submitted at once, as for wrapped buffers, so that the caller's own queue work (another
   * engine reading a zero-copy view, say) sees every update in order. Back in ours when a tensor
   * gets it from the pool again.
   */
  disown(buf: GPUBuffer): void {
    this.flush();
    this.ours.delete(buf);
  }

  submit(label: string, dispatches: readonly Dispatch[], kernels?: KernelProfile[]): Promise<void> {
    this.checkAlive();
    const d = this.device;
    const live = dispatches.filter((x) => x.workgroups > 0);
    for (const x of live) {
      if (x.buffers.length !== x.kernel.bindings.length) throw new Error(`${x.kernel.label}: ${x.buffers.length} buffers for ${x.kernel.bindings.length} bindings`);
    }
    if (kernels && this.profiler) this.profiler.records.push({ op: label, kernels });
    // Inside norms.encode(): the pass goes into the caller's encoder and nothing is submitted.
    const rec = this.recording;
    if (rec) return this.submitRecorded(label, live, rec);
    const conflicts = this.conflicts(live);
    const foreign = live.some((x) => x.buffers.some((b) => !this.ours.has(isRange(b) ? b.buffer : b)));
    const alone = conflicts.length > 0 || foreign;
    if (alone) this.flush();
    let b = this.openBatch();
    const stamps = this.profiler?.timestamps ? kernels : undefined;
    if (stamps && b.timing && b.timing.n + 2 * live.length > GpuContext.MAX_QUERIES && b.timing.n > 0) {
      this.flush();
      b = this.openBatch();
    }
    const enc = b.enc;
    const errs: Promise<GPUError | null>[] = [];
    // Work recorded by encode() that this op depends on (or overwrites) must be in a command
    // buffer the caller submitted before this one: checked by a probe in this command buffer.
    const probes = conflicts.map((s) => this.probe(s, enc));
    const run = (x: Dispatch, pass: GPUComputePassEncoder) => {
      pass.setPipeline(x.kernel.pipeline);
      pass.setBindGroup(0, this.bindGroup(x, undefined, errs));
      for (const buf of x.buffers) b.used.add(isRange(buf) ? buf.buffer : buf);
      const [gx, gy] = grid(x.workgroups);
      pass.dispatchWorkgroups(gx, gy);
    };
    if (live.length && stamps && live.length === stamps.length) {
      // One pass per dispatch, its start and end written as GPU timestamps (profile()).
      const t = (b.timing ??= this.newTiming());
      live.forEach((x, i) => {
        const q = t.n + 2 * i < GpuContext.MAX_QUERIES ? t.n + 2 * i : -1;
        const pass = enc.beginComputePass(q < 0 ? { label } : { label, timestampWrites: { querySet: t.querySet, beginningOfPassWriteIndex: q, endOfPassWriteIndex: q + 1 } });
        run(x, pass);
        pass.end();
        if (q >= 0) t.kernels.push([stamps[i]!, q]);
      });
      t.n = Math.min(GpuContext.MAX_QUERIES, t.n + 2 * live.length);
      b.passes += live.length;
    } else if (live.length) {
      const pass = enc.beginComputePass({ label });
      for (const x of live) run(x, pass);
      pass.end();
      b.passes++;
    }
    b.ops++;
    for (const e of this.evicted.splice(0)) b.evicted.push(e);
    if (alone || b.passes >= GpuContext.MAX_BATCH_PASSES) this.flush();
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
    if (live.length) {
      const pass = rec.encoder.beginComputePass({ label });
      for (const x of live) {
        pass.setPipeline(x.kernel.pipeline);
        pass.setBindGroup(0, this.bindGroup(x, rec));
        x.buffers.forEach((b, k) => {
          const buf = isRange(b) ? b.buffer : b;
          rec.used.add(buf);
          if (x.kernel.bindings[k]?.access !== 'read') rec.written.add(buf);
        });
        const [gx, gy] = grid(x.workgroups);
        pass.dispatchWorkgroups(gx, gy);
      }
      pass.end();
    }
    for (const b of this.evicted.splice(0)) {
      const h = this.holder(b);
      if (h) h.evicted.push(b);
      else b.destroy();
    }
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

  // ---- batching ----

  /** Passes after which a batch is submitted without waiting for the end of the task. */
  static MAX_BATCH_PASSES = 256;
  /** Timestamp queries per batch (profile with timestamp-query): two per dispatch. */
  static MAX_QUERIES = 1024;
  /** The ops recorded since the last submit, or null. */
  private batch: Batch | null = null;
  /** Buffers this context created (storage buffers of tensors and temporaries). */
  private readonly ours = new WeakSet<GPUBuffer>();
  /** Submits counted (tests, benchmarks). */
  submits = 0;

  private openBatch(): Batch {
    if (this.batch) return this.batch;
    let settle!: (r: Promise<[GPUError | null, GPUError | null]>) => void;
    const result = new Promise<[GPUError | null, GPUError | null]>((res) => (settle = res));
    const b: Batch = {
      enc: this.device.createCommandEncoder({ label: 'webgpu-norm.batch' }),
      used: new Set(),
      ops: 0,
      passes: 0,
      evicted: [],
      toDestroy: [],
      result,
      settle,
      timing: null,
    };
    this.batch = b;
    // An idle program still runs its work: submitted at the end of the current task.
    queueMicrotask(() => {
      if (this.batch === b) this.flush();
    });
    return b;
  }

  /** Submit the pending batch (one command buffer, one pair of error scopes). */
  flush(): void {
    const b = this.batch;
    if (!b) return;
    this.batch = null;
    const d = this.device;
    let readback: GPUBuffer | null = null;
    if (b.timing && b.timing.kernels.length) {
      const t = b.timing;
      const bytes = t.n * 8;
      const resolve = d.createBuffer({ size: bytes, usage: BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC, label: 'webgpu-norm.profile.resolve' });
      readback = d.createBuffer({ size: bytes, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'webgpu-norm.profile.readback' });
      b.enc.resolveQuerySet(t.querySet, 0, t.n, resolve, 0);
      b.enc.copyBufferToBuffer(resolve, 0, readback, 0, bytes);
      b.toDestroy.push(resolve);
    }
    d.pushErrorScope('out-of-memory');
    d.pushErrorScope('validation');
    try {
      d.queue.submit([b.enc.finish()]);
      this.submits++;
    } catch {
      // (a destroyed device: the pops below, and settleLoss, report it)
    }
    const v = d.popErrorScope().catch(() => null);
    const m = d.popErrorScope().catch(() => null);
    b.settle(Promise.all([v, m]));
    if (b.timing) {
      const t = b.timing;
      if (readback && this.profiler) {
        const rb = readback;
        const job = Promise.all([v, m])
          .then(([ve, me]) => (ve || me ? undefined : rb.mapAsync(MapModeRead)))
          .then(() => {
            if (rb.mapState !== 'mapped') return;
            const ts = new BigUint64Array(rb.getMappedRange());
            for (const [k, q] of t.kernels) {
              const dt = Number(ts[q + 1]! - ts[q]!) / 1e6;
              if (ts[q + 1]! >= ts[q]! && Number.isFinite(dt)) k.gpuMs = dt;
            }
          })
          .catch(() => {})
          .finally(() => {
            rb.destroy();
            t.querySet.destroy();
          });
        this.profiler.timings.push(job);
      } else {
        readback?.destroy();
        b.toDestroy.push(t.querySet);
      }
    }
    for (const e of b.evicted) {
      const h = this.holder(e);
      if (h) h.evicted.push(e);
      else e.destroy();
    }
    for (const x of b.toDestroy) x.destroy();
  }

  private newTiming(): NonNullable<Batch['timing']> {
    const querySet = this.device.createQuerySet({ type: 'timestamp', count: GpuContext.MAX_QUERIES, label: 'webgpu-norm.profile.timestamps' });
    return { querySet, n: 0, kernels: [] };
  }

  /**
   * queue.writeBuffer in batch order: a write to a buffer the pending batch uses would run before
   * the batch (queue writes precede the later submit), so it is recorded into the batch as a copy
   * from a staging buffer instead. Other buffers are written at once.
   */
  writeBuffer(buf: GPUBuffer, offset: number, data: ArrayBufferView): void {
    const b = this.batch;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (!b || !b.used.has(buf)) {
      this.device.queue.writeBuffer(buf, offset, bytes.buffer, bytes.byteOffset, bytes.byteLength);
      return;
    }
    const size = Math.ceil(bytes.byteLength / 4) * 4;
    if (size === 0) return;
    const staging = this.device.createBuffer({ size, usage: BufferUsage.COPY_SRC, mappedAtCreation: true, label: 'webgpu-norm.upload' });
    new Uint8Array(staging.getMappedRange()).set(bytes);
    staging.unmap();
    b.enc.copyBufferToBuffer(staging, 0, buf, offset, size);
    b.toDestroy.push(staging);
  }

  // ---- profile ----

  /** Set by createNorms({ profile: true }). */
  profiler: Profiler | null = null;

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

  // ---- norms.encode(): recording into the caller's command encoder ----

  /** The encode() call in progress, if any. */
  recording: EncodeSession | null = null;
  /** Sessions whose command buffer the caller has not been seen to submit yet. */
  private pending: EncodeSession[] = [];

  beginEncode(encoder: GPUCommandEncoder): void {
    this.checkAlive();
    if (this.recording) throw new Error('encode() is already recording');
    // Ops issued before encode() run before the caller's command buffer.
    this.flush();
    this.recording = new EncodeSession(encoder);
  }

  /**
   * Ends the recording: the last command in the caller's encoder clears the session's marker, so a
   * probe (a copy of the marker in a later command buffer of ours) tells whether the caller's
   * command buffer was submitted before it. Probed in the background (a few times, shortly after),
   * by every read or op that needs the recorded results, and at the next encode().
   */
  endEncode(): void {
    const s = this.recording;
    this.recording = null;
    if (!s || s.used.size === 0 || this.destroyed) return;
    const d = this.device;
    const marker = d.createBuffer({ size: 4, usage: BufferUsage.COPY_SRC | BufferUsage.COPY_DST, mappedAtCreation: true, label: 'webgpu-norm.encode-marker' });
    new Uint32Array(marker.getMappedRange()).fill(1);
    marker.unmap();
    d.pushErrorScope('validation');
    s.encoder.clearBuffer(marker);
    d.popErrorScope().catch(() => {}); // a finished encoder: its ops' own scopes already reported it
    s.marker = marker;
    for (const p of this.pending) this.poll(p);
    this.pending.push(s);
    this.poll(s);
  }

  /** The recording or pending session whose passes use `buf`. */
  private holder(buf: GPUBuffer): EncodeSession | undefined {
    if (this.recording?.used.has(buf)) return this.recording;
    return this.pending.find((s) => s.used.has(buf));
  }

  /** Pending sessions that write a buffer these dispatches use, or use one they write. */
  private conflicts(live: readonly Dispatch[]): EncodeSession[] {
    if (!this.pending.length) return [];
    return this.pending.filter((s) =>
      live.some((x) =>
        x.buffers.some((b, k) => {
          const buf = isRange(b) ? b.buffer : b;
          return s.written.has(buf) || (x.kernel.bindings[k]?.access !== 'read' && s.used.has(buf));
        }),
      ),
    );
  }

  /**
   * Records into `enc` (a command buffer of ours, submitted right after) a copy of the session's
   * marker; the returned function maps it once submitted: true when the caller's command buffer
   * was submitted before `enc` (it cleared the marker), which also releases what the session held.
   */
  private probe(s: EncodeSession, enc: GPUCommandEncoder): () => Promise<boolean> {
    if (s.submitted || !s.marker) return async () => true;
    const staging = this.device.createBuffer({ size: 4, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'webgpu-norm.encode-probe' });
    enc.copyBufferToBuffer(s.marker, 0, staging, 0, 4);
    return async () => {
      try {
        await staging.mapAsync(MapModeRead);
        const ran = new Uint32Array(staging.getMappedRange())[0] === 0;
        if (ran) this.confirm(s);
        return ran;
      } finally {
        staging.destroy();
      }
    };
  }

  private static POLL_MS = [0, 10, 100, 1000];

  /** Background probes, so that a session whose results nobody reads still gives its buffers back. */
  private poll(s: EncodeSession, attempt = 0): void {
    if (s.submitted || s.polling || this.destroyed || attempt >= GpuContext.POLL_MS.length) return;
    s.polling = true;
    const timer = setTimeout(() => {
      if (s.submitted || this.destroyed || this.lostError) {
        s.polling = false;
        return;
      }
      const enc = this.device.createCommandEncoder({ label: 'webgpu-norm.encode-probe' });
      const check = this.probe(s, enc);
      this.device.queue.submit([enc.finish()]);
      check().then(
        (ran) => {
          s.polling = false;
          if (!ran) this.poll(s, attempt + 1);
        },
        () => (s.polling = false),
      );
    }, GpuContext.POLL_MS[attempt]);
    (timer as { unref?: () => void }).unref?.();
  }

  /** The caller's command buffer of `s` was submitted: its buffers may be reused. */
  private confirm(s: EncodeSession): void {
    if (s.submitted) return;
    s.submitted = true;
    this.pending = this.pending.filter((p) => p !== s);
    s.marker?.destroy();
    s.marker = null;
    const held = s.held.splice(0);
    const evicted = s.evicted.splice(0);
    s.used.clear();
    s.written.clear();
    for (const b of held) this.releaseBuffer(b); // another pending session may still hold it
    for (const b of evicted) {
      const h = this.holder(b);
      if (h) h.evicted.push(b);
      else b.destroy();
    }
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
      const probes = this.pending.filter((s) => s.written.has(buf)).map((s) => this.probe(s, enc));
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
    for (const ub of this.uniformCache.values()) ub.destroy();
    this.uniformCache.clear();
    this.bindCache.clear();
    for (const list of this.pool.values()) for (const b of list) b.destroy();
    this.pool.clear();
    this.pooledBuffers = 0;
    this.pooledBytes = 0;
    // Passes recorded by encode() and not submitted yet become invalid (the caller's submit fails).
    for (const s of this.pending) {
      s.marker?.destroy();
      for (const b of [...s.held, ...s.evicted]) b.destroy();
    }
    this.pending = [];
    this.pipelines.clear();
    if (this.owned) this.device.destroy();
  }
}
