/**
 * The shared mechanism of the float64 CPU reference (docs/SEMANTICS.md has the formulas). All
 * norms reduce over the same kind of index set, a `Grouping` (src/grouping.ts, the vocabulary the
 * GPU plans and uniforms use too): layer/RMS-norm rows, group-norm
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
import { type Grouping, grouping, groupSize, statCount, statOf } from '../grouping.ts';

export { type Grouping, grouping, groupSize, statOf } from '../grouping.ts';

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

/** Per-statistic sums of f over each statistic's elements (src/grouping.ts), in float64, run by run. */
export function groupSum(g: Grouping, f: (idx: number, s: number) => number): Float64Array {
  const out = new Float64Array(statCount(g));
  for (let o = 0; o < g.outer; o++) {
    for (let r = 0; r < g.runs; r++) {
      for (let j = 0; j < g.groups; j++) {
        const base = ((o * g.runs + r) * g.groups + j) * g.runLength;
        const s = o * g.groups + j;
        let acc = 0;
        for (let i = 0; i < g.runLength; i++) acc += f(base + i, s);
        out[s] += acc;
      }
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
    const j = statOf(sg, i);
    const c = statOf(ag, i);
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
    const j = statOf(sg, i);
    return (x[i] - (mu ? mu[j] : 0)) * rstd[j];
  });
  const g = w ? mapAll(dy.length, (i) => dy[i] * w[statOf(ag, i)]) : dy;
  const sumG = statsFromX && mean ? groupSum(sg, (i) => g[i]) : null;
  const sumGX = statsFromX ? groupSum(sg, (i) => g[i] * xhat[i]) : null;
  const dx = mapAll(x.length, (i) => {
    const j = statOf(sg, i);
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

/** [N, C, *spatial] → the per-channel grouping [1, N, C, S]; channels last, [N, *spatial, C] → [1, N·S, C, 1]. */
export function channels(x: AnyTensor, channelsLast = false) {
  const r = x.shape.length;
  const N = x.shape[0];
  const C = channelsLast ? x.shape[r - 1] : x.shape[1];
  const S = numel(channelsLast ? x.shape.slice(1, r - 1) : x.shape.slice(2));
  return { N, C, S, cg: channelsLast ? grouping(1, N * S, C, 1) : grouping(1, N, C, S) };
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
