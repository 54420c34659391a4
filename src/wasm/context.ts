/**
 * The wasm backend's context: the module and its memory, tensors in it (float16 held as float32
 * rounded to half), the temporaries of one op, and the helpers the ops' plans use (rows.ts,
 * channels.ts, weight-norm.ts, l2-normalize.ts, modulate.ts). backend.ts adds the op methods.
 *
 * float16 tensors are held as float32 values rounded to half (4 bytes each, like the cpu
 * backend): the kernels read float32 throughout, and every float16 output is rounded to half
 * (ties to even) after the kernel that writes it.
 */
import { Tensor, type DType } from '../tensor.ts';
import { WasmModule, CHUNK, type Kernel, type WasmModuleOptions } from './module.ts';

/**
 * A float32 or float64 array of n values f(i), filled by a plain loop: the per-lane tables of the
 * host side (statistics, coefficients) are tens of thousands long for Lp norms along a middle dim,
 * where `TypedArray.from({ length }, f)` (the iterable path) costs ~100 ns per element here.
 */
export function tabulate<A extends Float32Array | Float64Array>(kind: { new (n: number): A }, n: number, f: (i: number) => number): A {
  const out = new kind(n);
  for (let i = 0; i < n; i++) out[i] = f(i);
  return out;
}

export class WasmContext {
  readonly m: WasmModule;
  /** Fill every new output with NaN before the kernels write it (tests: an unwritten element shows). */
  poison = false;
  private live = 0;
  private liveBytes = 0;
  private temps: number[] = [];
  private made: Tensor[] | null = null;

  constructor(protected readonly owner: object, o: WasmModuleOptions) {
    this.m = new WasmModule(o);
  }

  /** Live tensors and their bytes (Norms.stats()). */
  stats(): { liveBuffers: number; liveBytes: number } {
    return { liveBuffers: this.live, liveBytes: this.liveBytes };
  }

  private alloc(shape: readonly number[], dtype: DType): Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    const bytes = n * 4;
    const ptr = this.m.heap.alloc(bytes);
    const t = new Tensor(this.owner, shape, dtype, { ptr }, true);
    this.live++;
    this.liveBytes += bytes;
    t._onDestroy = () => {
      this.m.heap.release(ptr);
      this.live--;
      this.liveBytes -= bytes;
    };
    this.made?.push(t);
    return t;
  }

  tensor(data: Float32Array, shape: readonly number[], dtype: DType): Tensor {
    const t = this.alloc(shape, dtype);
    this.m.f32(t._ptr, t.size).set(data);
    this.roundHalf(t);
    return t;
  }

  async read(t: Tensor): Promise<Float32Array> {
    // A new array filled by set(): slice() of a view on the module's memory is many times slower.
    const out = new Float32Array(t.size);
    out.set(this.m.f32(t._ptr, t.size));
    return out;
  }

  /** Runs fn; a throw frees the outputs made inside it, and the temporaries are freed in any case. */
  transaction<T>(fn: () => T): T {
    const outer = this.made;
    this.made = [];
    const temps = this.temps.length;
    try {
      const r = fn();
      outer?.push(...this.made);
      return r;
    } catch (e) {
      for (const t of this.made) t.destroy();
      throw e;
    } finally {
      this.made = outer;
      for (const p of this.temps.splice(temps)) this.m.heap.release(p);
    }
  }

  // ---- helpers of the plans ----

  /** A new output tensor (NaN-filled when poisoning). */
  out(shape: readonly number[], dtype: DType): Tensor {
    const t = this.alloc(shape, dtype);
    if (this.poison) this.m.f32(t._ptr, t.size).fill(NaN);
    return t;
  }

  /** A float32 tensor in temporary memory (an intermediate: not counted in stats(), freed with the op's temporaries). */
  scratch(shape: readonly number[]): Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    return new Tensor(this.owner, shape, 'float32', { ptr: this.temp(n * 4) }, false);
  }

  /** A temporary of `bytes` bytes, freed when the op's transaction ends. */
  temp(bytes: number): number {
    const p = this.m.heap.alloc(bytes);
    this.temps.push(p);
    return p;
  }

  /** A temporary holding these float32 values (arrays concatenated). */
  f32Temp(...parts: ArrayLike<number>[]): number {
    // Views on the module's memory are copied first: the allocation may grow (and detach) it.
    parts = parts.map((p) => (ArrayBuffer.isView(p) && p.buffer === this.m.memory.buffer ? Array.from(p) : p));
    const n = parts.reduce((a, p) => a + p.length, 0);
    const p = this.temp(n * 4);
    const v = this.m.f32(p, n);
    let o = 0;
    for (const a of parts) {
      v.set(a, o);
      o += a.length;
    }
    return p;
  }

  /** A temporary of n float32 equal to v. */
  fill(n: number, v: number): number {
    const p = this.temp(n * 4);
    this.m.f32(p, n).fill(v);
    return p;
  }

  /** The host values of a (small) tensor. */
  values(t: Tensor): Float32Array {
    return this.m.f32(t._ptr, t.size);
  }

  run(kernel: Kernel, params: number[], tasks: number, work: number): void {
    this.m.run(kernel, params, tasks, work);
  }

  /** Rounds a float16 tensor's values to half in place (no-op for float32). */
  roundHalf(t: Tensor | null): void {
    if (!t || t.dtype !== 'float16' || t.size === 0) return;
    this.m.run('round_half', [t._ptr, t.size], Math.ceil(t.size / CHUNK), t.size);
  }

  destroy(): void {
    this.m.destroy();
  }
}

/**
 * Coefficients of dx = outer·((g + β) + γ·x̂), x̂ = ((x − μ) − k)·r, of one group of K elements
 * from its gradient sums sa = Σg, sb = Σg·(x − μ), sc = Σ(x − μ) (float64). `fromX`: the
 * statistics are x's own (k recovers the saved mean's rounding, β and γ are the projections);
 * false: fixed statistics (batch-norm eval), dx = r·g. `centered`: a mean was subtracted (not RMS).
 * Returns [k, Σg·x̂, β, γ].
 */
export function gradCoefs(sa: number, sb: number, sc: number, K: number, mu: number, r: number, fromX: boolean, centered: boolean): [number, number, number, number] {
  let k = 0;
  if (fromX && centered && K > 0) {
    const kk = sc / K;
    if (Math.abs(kk) <= Math.abs(mu) * 2 ** -22) k = Math.fround(kk);
  }
  const sgx = r * (sb - k * sa);
  if (!fromX) return [k, sgx, 0, 0];
  return [k, sgx, centered ? -sa / K : 0, -sgx / K];
}
