/**
 * One WebAssembly kernel module and its memory: which build runs (SIMD128 where the engine
 * validates it, else scalar; the shared-memory SIMD build when threads are possible), the heap
 * of tensors in its memory, and `run(kernel, params, tasks)`, which writes the parameters into
 * the memory and runs the kernel's tasks, split over the thread pool when the work is big enough.
 */
import { SIMD_WASM, SCALAR_WASM, SHARED_WASM, MAX_PAGES } from './binary.gen.ts';
import { Heap, CONTROL_BASE } from './heap.ts';
import { ThreadPool, threadsAvailable } from './threads.ts';

/** The kernels (shaders/wasm/index.ts), in the order the thread pool numbers them. */
export const KERNELS = [
  'rows_fwd', 'rows_stats', 'cols_stats', 'apply_planes', 'apply_cols',
  'rows_gsums', 'cols_gsums', 'rows_dx', 'cols_dx', 'sum_partials', 'add', 'round_half', 'copy',
  'apply_rows', 'gated_add', 'modulate', 'mod_grads', 'residual_grads', 'rows_bwd', 'groups_bwd', 'lp_factors',
] as const;
export type Kernel = (typeof KERNELS)[number];
type KernelFn = (p: number, begin: number, end: number) => void;

/** Elements per task of the elementwise kernels (CHUNK in shaders/wasm/elementwise.ts). */
export const CHUNK = 16384;

/** Which build: 'simd' (SIMD128), 'scalar', or 'simd-threads' (SIMD128 on shared memory). */
export type WasmBuild = 'simd' | 'scalar' | 'simd-threads';

function bytesOf(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

const compiled = new Map<string, WebAssembly.Module>();
function moduleOf(which: 'simd' | 'scalar' | 'shared'): WebAssembly.Module {
  let m = compiled.get(which);
  if (!m) {
    m = new WebAssembly.Module(bytesOf(which === 'simd' ? SIMD_WASM : which === 'scalar' ? SCALAR_WASM : SHARED_WASM) as BufferSource);
    compiled.set(which, m);
  }
  return m;
}

let simdOk: boolean | null = null;
/** Whether this engine validates the SIMD128 build (feature detection: WebAssembly.validate). */
export function simdSupported(): boolean {
  if (simdOk === null) simdOk = WebAssembly.validate(bytesOf(SIMD_WASM) as BufferSource);
  return simdOk;
}

/** Parameter slots per call (float64 each). */
const PARAM_SLOTS = 16;

export interface WasmModuleOptions {
  /** Threads to use at most (1: none). */
  threads: number;
  /** Force the scalar build (tests; engines without SIMD get it anyway). */
  scalar?: boolean;
  /** Smallest work (bytes read) that is split over threads. */
  threadMin: number;
}

export class WasmModule {
  readonly memory: WebAssembly.Memory;
  readonly heap: Heap;
  readonly build: WasmBuild;
  readonly threads: number;
  threadMin: number;
  private readonly fns: Record<Kernel, KernelFn>;
  /** The compiled module (workers instantiate it on the same memory). */
  private readonly module: WebAssembly.Module;
  private readonly params: number;
  private pool: ThreadPool | null = null;
  private poolStarting = false;

  constructor(o: WasmModuleOptions) {
    const simd = !o.scalar && simdSupported();
    let threads = simd && o.threads > 1 && threadsAvailable() ? o.threads : 1;
    let memory: WebAssembly.Memory | null = null;
    if (threads > 1) {
      try {
        memory = new WebAssembly.Memory({ initial: 2, maximum: MAX_PAGES, shared: true });
      } catch {
        threads = 1; // a shared memory of that maximum cannot be reserved here (32-bit hosts): one thread
      }
    }
    const shared = memory !== null;
    const mod = moduleOf(shared ? 'shared' : simd ? 'simd' : 'scalar');
    this.memory = memory ?? new WebAssembly.Memory({ initial: 2, maximum: MAX_PAGES });
    const inst = new WebAssembly.Instance(mod, { env: { memory: this.memory } });
    this.fns = inst.exports as unknown as Record<Kernel, KernelFn>;
    this.heap = new Heap(this.memory, MAX_PAGES);
    this.params = this.heap.alloc(PARAM_SLOTS * 8);
    this.build = shared ? 'simd-threads' : simd ? 'simd' : 'scalar';
    this.threads = threads;
    this.threadMin = o.threadMin;
    this.module = mod;
  }

  /** Float32 view of n elements at ptr (made anew: the memory may have grown). */
  f32(ptr: number, n: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, n);
  }
  f64(ptr: number, n: number): Float64Array {
    return new Float64Array(this.memory.buffer, ptr, n);
  }

  /**
   * Runs `kernel` over tasks [0, tasks) with `params` (numbers; pointers as numbers). `work`: the
   * float32 elements it reads (× 4 bytes against threadMin), which decides whether the tasks are split over the thread pool. Results do
   * not depend on the split.
   */
  run(kernel: Kernel, params: number[], tasks: number, work: number): void {
    if (tasks <= 0) return;
    const slots = this.f64(this.params, PARAM_SLOTS);
    for (let i = 0; i < params.length; i++) slots[i] = params[i]!;
    if (this.threads > 1 && work * 4 >= this.threadMin && tasks > 1) {
      const pool = this.readyPool();
      if (pool) {
        pool.run(KERNELS.indexOf(kernel), this.params, tasks, (b, e) => this.fns[kernel](this.params, b, e));
        return;
      }
    }
    this.fns[kernel](this.params, 0, tasks);
  }

  /** The pool when its workers are up; else starts it in the background (ops run on one thread meanwhile). */
  private readyPool(): ThreadPool | null {
    if (this.pool?.ready) return this.pool;
    if (!this.pool && !this.poolStarting) {
      this.poolStarting = true;
      this.pool = new ThreadPool(this.module, this.memory, this.threads - 1, CONTROL_BASE, KERNELS);
    }
    return null;
  }

  /** Starts the thread pool now and waits until its workers are up (benchmarks, tests); no-op without threads. */
  async startThreads(): Promise<void> {
    if (this.threads <= 1) return;
    this.readyPool();
    await this.pool!.started;
  }

  destroy(): void {
    this.pool?.terminate();
    this.pool = null;
  }
}
