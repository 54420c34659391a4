/** Dispatches and what they bind: uniform buffers (packed params) and bind groups, both cached. */
import { BufferUsage } from './buffers.ts';
import type { Kernel } from './pipelines.ts';

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

export const isRange = (b: GPUBuffer | BoundRange): b is BoundRange => (b as Partial<BoundRange>).buffer !== undefined && typeof (b as Partial<BoundRange>).offset === 'number';

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
 * Uniform buffers and bind groups are cached (bounded, least recently used first out): a
 * uniform buffer by its contents (it is never written again), a bind group by its kernel,
 * uniform buffer and storage buffers. Repeated ops on the same shapes and pooled buffers then
 * create no WebGPU objects but the command encoder: per-op host work is what bounds small and
 * medium ops on a discrete GPU.
 */
export class BindingCache {
  private readonly uniformCache = new Map<string, GPUBuffer>();
  private readonly bindCache = new Map<string, GPUBindGroup>();
  private readonly evicted: GPUBuffer[] = [];
  private readonly ids = new WeakMap<object, number>();
  private nextId = 1;

  constructor(private readonly device: GPUDevice) {}

  private idOf(o: object): number {
    let id = this.ids.get(o);
    if (id === undefined) this.ids.set(o, (id = this.nextId++));
    return id;
  }

  bindGroup(x: Dispatch, rec?: { used: Set<GPUBuffer> }, errs?: Promise<GPUError | null>[]): GPUBindGroup {
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

  /** The uniform buffers evicted since the last call: the caller destroys them once the passes that may use them are submitted. */
  takeEvicted(): GPUBuffer[] {
    return this.evicted.splice(0);
  }

  destroy(): void {
    for (const ub of this.uniformCache.values()) ub.destroy();
    this.uniformCache.clear();
    this.bindCache.clear();
  }
}
