/**
 * The WebAssembly backend's allocator over the module's linear memory: first fit over a list of
 * free blocks kept sorted by address and merged with their neighbours on free, 64-byte aligned
 * blocks (a cache line; v128 loads need 16), the memory grown by whole pages when no block fits.
 * Below HEAP_BASE: the kernels' static data (from 1024) and the thread control block.
 */
import { LimitError } from '../errors.ts';

/** First address the allocator hands out. */
export const HEAP_BASE = 65536;
/** Address of the thread pool's control block (Int32 words; below HEAP_BASE, above static data). */
export const CONTROL_BASE = 32768;
const ALIGN = 64;
const PAGE = 65536;

export class Heap {
  /** Free blocks [address, bytes], sorted by address, never adjacent. */
  private free: [number, number][] = [];
  private top = HEAP_BASE;
  private readonly sizes = new Map<number, number>();
  /** Bytes currently handed out. */
  usedBytes = 0;

  constructor(
    private readonly memory: WebAssembly.Memory,
    private readonly maxPages: number,
  ) {}

  /** A block of at least `bytes` bytes (64-byte aligned); LimitError past the memory's maximum. */
  alloc(bytes: number): number {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    let ptr = -1;
    for (let i = 0; i < this.free.length; i++) {
      const [a, n] = this.free[i]!;
      if (n < size) continue;
      ptr = a;
      if (n === size) this.free.splice(i, 1);
      else this.free[i] = [a + size, n - size];
      break;
    }
    if (ptr < 0) {
      // Extend the top, absorbing a free block that ends there.
      const last = this.free[this.free.length - 1];
      if (last && last[0] + last[1] === this.top) {
        this.free.pop();
        this.top = last[0];
      }
      ptr = this.top;
      this.ensure(ptr + size);
      this.top = ptr + size;
    }
    this.sizes.set(ptr, size);
    this.usedBytes += size;
    return ptr;
  }

  /** Returns a block from alloc(). */
  release(ptr: number): void {
    const size = this.sizes.get(ptr);
    if (size === undefined) return;
    this.sizes.delete(ptr);
    this.usedBytes -= size;
    // Insert sorted, merging with the neighbours.
    let lo = 0, hi = this.free.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.free[mid]![0] < ptr) lo = mid + 1;
      else hi = mid;
    }
    let start = ptr, end = ptr + size;
    const prev = this.free[lo - 1];
    const next = this.free[lo];
    let from = lo, count = 0;
    if (prev && prev[0] + prev[1] === start) {
      start = prev[0];
      from = lo - 1;
      count++;
    }
    if (next && next[0] === end) {
      end = next[0] + next[1];
      count++;
    }
    if (end === this.top) {
      this.free.splice(from, count);
      this.top = start;
    } else {
      this.free.splice(from, count, [start, end - start]);
    }
  }

  /** Bytes below the top (handed out or free inside). */
  get extent(): number {
    return this.top;
  }

  private ensure(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const pages = Math.ceil((end - have) / PAGE);
    const cur = have / PAGE;
    if (cur + pages > this.maxPages) {
      throw new LimitError(`wasm backend: ${end} bytes of tensors and temporaries exceed the WebAssembly memory's maximum of ${this.maxPages * PAGE} bytes`, 'memory');
    }
    // Grow a little ahead (an eighth), so that a run of growing allocations does not grow page by page.
    const ahead = Math.min(this.maxPages - cur, Math.max(pages, Math.ceil(cur / 8)));
    this.memory.grow(ahead);
  }
}
