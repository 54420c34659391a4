/** Buffer usage flags and the pool of storage buffers, with the live/pooled byte accounting. */

// WebGPU's flag namespaces are globals in a browser but not in Node (unless the caller installs
// the `webgpu` package's globals). The library uses its own copies of the spec values.
export const BufferUsage = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80, QUERY_RESOLVE: 0x200 } as const;
export const MapModeRead = 0x1;

/**
 * Storage buffers (STORAGE | COPY_SRC | COPY_DST), 16-byte padded. Released ones are kept in a
 * bounded pool by exact size and handed out again: reuse is safe because every use is ordered
 * on the one queue. liveBuffers/liveBytes count what tensors and in-flight temporaries hold;
 * pooledBuffers/pooledBytes what the pool holds (at most MAX_BYTES; freed by destroy()).
 */
export class BufferPool {
  /** The pool's bound in bytes, for every context (`GpuContext.POOL_BYTES`). */
  static MAX_BYTES = 256 * 1024 * 1024;
  private readonly free = new Map<number, GPUBuffer[]>();
  /** Buffers this context created (storage buffers of tensors and temporaries). */
  readonly ours = new WeakSet<GPUBuffer>();
  liveBuffers = 0;
  liveBytes = 0;
  pooledBuffers = 0;
  pooledBytes = 0;

  constructor(private readonly device: GPUDevice) {}

  create(bytes: number, label: string): GPUBuffer {
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    const free = this.free.get(size);
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

  /**
   * Counts `buf` released and keeps it for reuse; false when it is not kept (the context is
   * destroyed, or the pool is full): the caller destroys it.
   */
  recycle(buf: GPUBuffer, destroyed: boolean): boolean {
    this.liveBuffers--;
    this.liveBytes -= buf.size;
    if (destroyed || this.pooledBytes + buf.size > BufferPool.MAX_BYTES) return false;
    const list = this.free.get(buf.size) ?? [];
    list.push(buf);
    this.free.set(buf.size, list);
    this.pooledBuffers++;
    this.pooledBytes += buf.size;
    return true;
  }

  /** Destroys the pooled buffers. */
  destroy(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.pooledBuffers = 0;
    this.pooledBytes = 0;
  }
}
