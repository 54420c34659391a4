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

export class GpuContext {
  readonly device: GPUDevice;
  readonly adapter: AdapterSummary;
  readonly isCpuAdapter: boolean;
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

  private bindGroup(x: Dispatch): GPUBindGroup {
    const d = this.device;
    const bytes = new Uint32Array(x.kernel.uniforms.pack(x.params));
    const ukey = bytes.join(',');
    let ub = lruGet(this.uniformCache, ukey);
    if (!ub) {
      ub = d.createBuffer({ size: bytes.byteLength, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST, label: `${x.kernel.label}.params` });
      d.queue.writeBuffer(ub, 0, bytes);
      // An evicted buffer may still be used by submitted work (destroy() waits for that) or by
      // this submission: destroyed once it is submitted.
      const old = lruSet(this.uniformCache, ukey, ub, 512);
      if (old) this.evicted.push(old);
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
    d.pushErrorScope('out-of-memory');
    d.pushErrorScope('validation');
    const enc = d.createCommandEncoder({ label });
    if (live.length) {
      const pass = enc.beginComputePass({ label });
      for (const x of live) {
        pass.setPipeline(x.kernel.pipeline);
        pass.setBindGroup(0, this.bindGroup(x));
        const [gx, gy] = grid(x.workgroups);
        pass.dispatchWorkgroups(gx, gy);
      }
      pass.end();
    }
    d.queue.submit([enc.finish()]);
    for (const b of this.evicted.splice(0)) b.destroy();
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

  /** Copy a buffer's first `bytes` to the host. */
  async readBytes(buf: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
    this.checkAlive();
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const staging = this.device.createBuffer({ size, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'webgpu-norm.readback' });
    try {
      const enc = this.device.createCommandEncoder({ label: 'readback' });
      enc.copyBufferToBuffer(buf, 0, staging, 0, size);
      this.device.queue.submit([enc.finish()]);
      try {
        await staging.mapAsync(MapModeRead);
      } catch (e) {
        await this.settleLoss(100);
        if (this.lostError) throw this.lostError;
        throw new DeviceError(`readback failed: ${(e as Error).message}`);
      }
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
    this.pipelines.clear();
    if (this.owned) this.device.destroy();
  }
}
