/**
 * The shared mechanism of the float64 CPU reference (docs/SEMANTICS.md has the formulas). All
 * norms reduce over the same kind of index set, a `Grouping`: layer/RMS-norm rows, group-norm
 * (n, g) groups, instance-norm (n, c), batch-norm channels and weight-norm slices. One
 * statistics helper, one apply step and one backward step serve them all; each norm family's
 * file (layer-norm.ts, group-norm.ts, batch-norm.ts, weight-norm.ts) only says how its elements
 * group. Its `…64` functions return Float64Array results (float64 inputs accepted: the
 * finite-difference tests use them); the exported float32 ones round them with `round`.
 *
 * Plain loops, float64 accumulation (JS numbers), two-pass statistics. Inputs are assumed
 * already validated.
 */
import { numel } from './host.ts';
import type { HostTensor } from './host.ts';

export type Arr = Float32Array | Float64Array;
/** A tensor with float32 or float64 data (inputs of the float64 variants). */
export interface AnyTensor {
  data: Arr;
  shape: readonly number[];
}
export interface F64Tensor {
  data: Float64Array;
  shape: readonly number[];
}

/**
 * Group j (j < D) is the index set { o·D·inner + j·inner + i : o < outer, i < inner }.
 * Rows: (1, rows, K). Group norm: (1, N·G, (C/G)·S). Channels: (N, C, S). Weight-norm slices
 * along dim d: (prod(shape[:d]), shape[d], prod(shape[d+1:])). Every element belongs to exactly
 * one group, namely floor(idx / inner) mod D.
 */
export interface Grouping {
  outer: number;
  D: number;
  inner: number;
  /**
   * Channels-last group norm (x as [N, S, C]): group j = n·G + g holds the Cg channels
   * g·Cg .. g·Cg + Cg − 1 of every row of sample n (outer = S rows of inner = Cg elements), so
   * element idx belongs to floor(idx / (S·C))·G + floor((idx mod C) / Cg).
   */
  cl?: { sample: number; C: number; Cg: number; G: number };
}
export const grouping = (outer: number, D: number, inner: number): Grouping => ({ outer, D, inner });
export const groupSize = (g: Grouping): number => g.outer * g.inner;
export const groupOf = (g: Grouping, idx: number): number =>
  g.cl ? Math.floor(idx / g.cl.sample) * g.cl.G + Math.floor((idx % g.cl.C) / g.cl.Cg) : Math.floor(idx / g.inner) % g.D;

/** Per-group sums of f over each group's index set, in float64. */
export function groupSum(g: Grouping, f: (idx: number, j: number) => number): Float64Array {
  const out = new Float64Array(g.D);
  if (g.cl) {
    // Every element in memory order, added to its group's sum.
    const n = g.D * g.outer * g.inner;
    for (let idx = 0; idx < n; idx++) {
      const j = groupOf(g, idx);
      out[j] += f(idx, j);
    }
    return out;
  }
  for (let o = 0; o < g.outer; o++) {
    for (let j = 0; j < g.D; j++) {
      const base = (o * g.D + j) * g.inner;
      let s = 0;
      for (let i = 0; i < g.inner; i++) s += f(base + i, j);
      out[j] += s;
    }
  }
  return out;
}

export function mapAll(n: number, f: (idx: number) => number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = f(i);
  return out;
}

/**
 * Two-pass mean and biased variance per group; rstd = 1/sqrt(var + eps). Over zero elements
 * (K = 0) the mean is 0 and the variance 0/0 = NaN, so rstd is NaN, as in PyTorch.
 */
export function centeredStats(x: Arr, g: Grouping, eps: number) {
  const K = groupSize(g);
  const mean = groupSum(g, (i) => x[i]).map((s) => (K === 0 ? 0 : s / K));
  const variance = groupSum(g, (i, j) => (x[i] - mean[j]) ** 2).map((s) => s / K);
  const rstd = variance.map((v) => 1 / Math.sqrt(v + eps));
  return { mean, variance, rstd };
}

/** y = (x − mean[group]) · rstd[group] · w[aff] + b[aff]; mean null means 0 (RMS norm). */
export function normApply(
  x: Arr,
  mean: Arr | null,
  rstd: Arr,
  sg: Grouping,
  ag: Grouping,
  w: Arr | null,
  b: Arr | null,
): Float64Array {
  return mapAll(x.length, (i) => {
    const j = groupOf(sg, i);
    const c = groupOf(ag, i);
    let v = (x[i] - (mean ? mean[j] : 0)) * rstd[j];
    if (w) v *= w[c];
    if (b) v += b[c];
    return v;
  });
}

/** mean[j] + k[j], k[j] = mean(x − mean[j]) over group j, where |k[j]| <= 2^-22·|mean[j]|. */
function recoverMean(x: Arr, mean: Arr, sg: Grouping): Float64Array {
  const K = groupSize(sg);
  const dev = groupSum(sg, (i, j) => x[i] - mean[j]);
  return Float64Array.from(mean, (m, j) => {
    const k = dev[j] / K;
    return Math.abs(k) <= Math.abs(m) * 2 ** -22 ? m + k : m;
  });
}

/**
 * Backward of normApply. With g = dy·w and K the group size:
 *   statsFromX, centered:   dx = rstd/K · (K·g − Σg − x̂·Σ(g·x̂))   (layer/group/instance/batch-train)
 *   statsFromX, mean null:  dx = rstd/K · (K·g − x̂·Σ(g·x̂))         (RMS norm)
 *   fixed stats:            dx = rstd · g                           (batch norm eval)
 * dweight[c] = Σ dy·x̂, dbias[c] = Σ dy over the affine groups.
 */
export function normBackward(
  dy: Arr,
  x: Arr,
  mean: Arr | null,
  rstd: Arr,
  sg: Grouping,
  ag: Grouping,
  w: Arr | null,
  statsFromX: boolean,
  wantDw: boolean,
  wantDb: boolean,
) {
  const K = groupSize(sg);
  // A saved mean within two float32 ulps of x's own mean is that mean rounded to float32 (what a
  // forward pass returns): x's mean is recovered from x, so x − mean keeps its precision at large
  // offsets. Any other mean (a caller's own) is used as given, as PyTorch does.
  const mu = statsFromX && mean && K > 0 ? recoverMean(x, mean, sg) : mean;
  const xhat = mapAll(x.length, (i) => {
    const j = groupOf(sg, i);
    return (x[i] - (mu ? mu[j] : 0)) * rstd[j];
  });
  const g = w ? mapAll(dy.length, (i) => dy[i] * w[groupOf(ag, i)]) : dy;
  const sumG = statsFromX && mean ? groupSum(sg, (i) => g[i]) : null;
  const sumGX = statsFromX ? groupSum(sg, (i) => g[i] * xhat[i]) : null;
  const dx = mapAll(x.length, (i) => {
    const j = groupOf(sg, i);
    let t = g[i];
    if (sumG) t -= sumG[j] / K;
    if (sumGX) t -= (xhat[i] * sumGX[j]) / K;
    return t * rstd[j];
  });
  const dweight = wantDw ? groupSum(ag, (i) => dy[i] * xhat[i]) : null;
  const dbias = wantDb ? groupSum(ag, (i) => dy[i]) : null;
  return { dx, dweight, dbias };
}

export const t64 = (data: Float64Array, shape: readonly number[]): F64Tensor => ({ data, shape: [...shape] });
export const opt64 = (data: Float64Array | null, shape: readonly number[]): F64Tensor | null =>
  data ? t64(data, shape) : null;
export const dataOf = (t: AnyTensor | null): Arr | null => (t ? t.data : null);

/** [N, C, *spatial] → channel grouping (N, C, S); channels last, [N, *spatial, C] → (N·S, C, 1). */
export function channels(x: AnyTensor, channelsLast = false) {
  const r = x.shape.length;
  const N = x.shape[0];
  const C = channelsLast ? x.shape[r - 1] : x.shape[1];
  const S = numel(channelsLast ? x.shape.slice(1, r - 1) : x.shape.slice(2));
  return { N, C, S, cg: channelsLast ? grouping(N * S, C, 1) : grouping(N, C, S) };
}

export type Rounded<R> = {
  [K in keyof R]: R[K] extends F64Tensor ? HostTensor : R[K] extends F64Tensor | null ? HostTensor | null : never;
};

/** Round every tensor of a result to float32. */
export function round<R extends Record<string, F64Tensor | null>>(r: R): Rounded<R> {
  const out: Record<string, HostTensor | null> = {};
  for (const [k, t] of Object.entries(r)) out[k] = t ? { data: Float32Array.from(t.data), shape: [...t.shape] } : null;
  return out as Rounded<R>;
}
