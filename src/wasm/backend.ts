/**
 * The wasm backend: every op on float32 WebAssembly kernels (shaders/wasm/, SIMD128 where the
 * engine has it) over tensors that live in the module's memory. The ops' plans are in rows.ts
 * (layer/RMS norm), channels.ts (group/instance/batch norm) and weight-norm.ts; this file holds
 * the tensors, the temporaries of one op, and the float16 rounding of outputs.
 *
 * float16 tensors are held as float32 values rounded to half (4 bytes each, like the cpu
 * backend): the kernels read float32 throughout, and every float16 output is rounded to half
 * (ties to even) after the kernel that writes it.
 */
import { Tensor, type DType } from '../tensor.ts';
import type * as O from '../ops.ts';
import { NO_MOD } from '../ops.ts';
import { WasmModule, CHUNK, type Kernel, type WasmModuleOptions } from './module.ts';
import * as rows from './rows.ts';
import * as channels from './channels.ts';
import * as wn from './weight-norm.ts';
import * as l2 from './l2-normalize.ts';

export class WasmBackend implements O.Backend {
  readonly kind = 'wasm' as const;
  readonly m: WasmModule;
  /** Fill every new output with NaN before the kernels write it (tests: an unwritten element shows). */
  poison = false;
  private live = 0;
  private liveBytes = 0;
  private temps: number[] = [];
  private made: Tensor[] | null = null;

  constructor(private readonly owner: object, o: WasmModuleOptions) {
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

  // ---- ops ----

  layerNorm(a: O.LayerNormArgs): O.LayerNormOut {
    return rows.layerNorm(this, a);
  }
  rmsNorm(a: O.RmsNormArgs): O.RmsNormOut {
    return rows.rmsNorm(this, a);
  }
  layerNormBackward(a: O.LayerNormBwdArgs): O.ModBwdOut {
    return rows.layerNormBackward(this, a);
  }
  rmsNormBackward(a: O.RmsNormBwdArgs): O.RmsNormBwdOut & O.ModGradsOut {
    return rows.rmsNormBackward(this, a);
  }
  groupNorm(a: O.GroupNormArgs): O.GroupNormOut {
    return channels.groupNorm(this, a);
  }
  groupNormBackward(a: O.GroupNormBwdArgs): O.ModBwdOut {
    return channels.groupNormBackward(this, a);
  }
  instanceNorm(a: O.InstanceNormArgs): O.GroupNormOut {
    return channels.groupNorm(this, { ...a, G: a.C, silu: false, ...NO_MOD });
  }
  instanceNormBackward(a: O.InstanceNormBwdArgs): O.BwdOut {
    const { dx, dweight, dbias } = channels.groupNormBackward(this, { ...a, G: a.C, silu: false, ...NO_MOD });
    return { dx, dweight, dbias };
  }
  batchNorm(a: O.BatchNormArgs): O.BatchNormOut {
    return channels.batchNorm(this, a);
  }
  batchNormBackward(a: O.BatchNormBwdArgs): O.BwdOut {
    return channels.batchNormBackward(this, a);
  }
  weightNorm(a: O.WeightNormArgs): O.WeightNormOut {
    return wn.weightNorm(this, a);
  }
  weightNormBackward(a: O.WeightNormBwdArgs): O.WeightNormBwdOut {
    return wn.weightNormBackward(this, a);
  }

  l2Normalize(a: O.LpNormalizeArgs): O.LpNormalizeOut {
    return l2.l2Normalize(this, a);
  }
  l2NormalizeBackward(a: O.LpNormalizeBwdArgs): { dx: Tensor } {
    return l2.l2NormalizeBackward(this, a);
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
