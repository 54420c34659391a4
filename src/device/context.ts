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
    const code = `${src.uniforms.wgsl()}\n${bindingsWGSL(src.bindings, src.aligned, src.window)}\noverride WG: u32 = 64u;\n${src.body()}`;
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
      compute: { module, entryPoint: 'main', constants: { WG: src.workgroupSize, ...(src.constants ?? {}) } },
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
    } else {
      buf = this.device.createBuffer({ size, usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST, label });
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
      buf.destroy();
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

  private bindGroup(x: Dispatch, rec?: EncodeSession): GPUBindGroup {
    const d = this.device;
    const bytes = new Uint32Array(x.kernel.uniforms.pack(x.params));
    const ukey = bytes.join(',');
    let ub = lruGet(this.uniformCache, ukey);
    if (ub) rec?.used.add(ub);
    if (!ub) {
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
      bg = d.createBindGroup({
        label: `${x.kernel.label}.bind`,
        layout: x.kernel.layout,
        entries: [{ binding: 0, resource: { buffer: ub } }, ...x.buffers.map((b, k) => ({ binding: k + 1, resource: isRange(b) ? { buffer: b.buffer, offset: b.offset, size: b.size } : { buffer: b } }))],
      });
      lruSet(this.bindCache, bkey, bg, 1024);
    }
    return bg;
  }

  /** Encode dispatches into one compute pass and submit. The promise rejects on GPU errors. */
  submit(label: string, dispatches: readonly Dispatch[]): Promise<void> {
    this.checkAlive();
    const d = this.device;
    const live = dispatches.filter((x) => x.workgroups > 0);
    for (const x of live) {
      if (x.buffers.length !== x.kernel.bindings.length) throw new Error(`${x.kernel.label}: ${x.buffers.length} buffers for ${x.kernel.bindings.length} bindings`);
    }
    // Inside norms.encode(): the pass goes into the caller's encoder and nothing is submitted.
    const rec = this.recording;
    d.pushErrorScope('out-of-memory');
    d.pushErrorScope('validation');
    const enc = rec ? rec.encoder : d.createCommandEncoder({ label });
    // Work recorded by encode() that this op depends on (or overwrites) must be in a command
    // buffer the caller submitted before this one: checked by a probe in this command buffer.
    const probes = rec ? [] : this.conflicts(live).map((s) => this.probe(s, enc));
    if (live.length) {
      const pass = enc.beginComputePass({ label });
      for (const x of live) {
        pass.setPipeline(x.kernel.pipeline);
        pass.setBindGroup(0, this.bindGroup(x, rec ?? undefined));
        if (rec) {
          x.buffers.forEach((b, k) => {
            const buf = isRange(b) ? b.buffer : b;
            rec.used.add(buf);
            if (x.kernel.bindings[k]?.access !== 'read') rec.written.add(buf);
          });
        }
        const [gx, gy] = grid(x.workgroups);
        pass.dispatchWorkgroups(gx, gy);
      }
      pass.end();
    }
    if (!rec) d.queue.submit([enc.finish()]);
    for (const b of this.evicted.splice(0)) {
      const h = this.holder(b);
      if (h) h.evicted.push(b);
      else b.destroy();
    }
    const v = d.popErrorScope();
    const m = d.popErrorScope();
    const ran = Promise.all(probes.map((p) => p()));
    return Promise.all([v, m, ran]).then(async ([ve, me, r]) => {
      await this.settleLoss();
      if (this.lostError) throw this.lostError;
      const e = ve ?? me;
      if (e) {
        const extra = [...this.compileErrors.values()].join('\n');
        throw new DeviceError(`${label}: WebGPU ${ve ? 'validation' : 'out-of-memory'} error: ${e.message}${extra ? `\n${extra}` : ''}`);
      }
      if (r.includes(false)) throw new DeviceError(`${label}: an input was ${NOT_SUBMITTED}`);
    });
  }

  // ---- norms.encode(): recording into the caller's command encoder ----

  /** The encode() call in progress, if any. */
  recording: EncodeSession | null = null;
  /** Sessions whose command buffer the caller has not been seen to submit yet. */
  private pending: EncodeSession[] = [];

  beginEncode(encoder: GPUCommandEncoder): void {
    this.checkAlive();
    if (this.recording) throw new Error('encode() is already recording');
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
