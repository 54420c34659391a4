/**
 * CPU reference for every norm, forward and backward, following PyTorch (see SEMANTICS.md).
 *
 * Plain loops, float64 accumulation (JS numbers), two-pass statistics. Inputs are assumed
 * already validated. The public functions round their outputs to Float32Array; `__f64` exposes
 * the same implementations with Float64Array outputs (and float64 inputs accepted), which the
 * finite-difference tests use.
 *
 * All norms reduce over the same kind of index set (see `Grouping`): layer/RMS-norm rows,
 * group-norm (n, g) groups, instance-norm (n, c), batch-norm channels and weight-norm slices.
 * One statistics helper, one apply step and one backward step serve them all.
 */
import { type HostTensor, numel } from './host';

type Arr = Float32Array | Float64Array;
/** A tensor with float32 or float64 data (inputs of the float64 variants). */
export interface AnyTensor {
  data: Arr;
  shape: readonly number[];
}
export interface F64Tensor {
  data: Float64Array;
  shape: readonly number[];
}

// ---------------------------------------------------------------------------------------------
// Shared mechanism

/**
 * Group j (j < D) is the index set { o·D·inner + j·inner + i : o < outer, i < inner }.
 * Rows: (1, rows, K). Group norm: (1, N·G, (C/G)·S). Channels: (N, C, S). Weight-norm slices
 * along dim d: (prod(shape[:d]), shape[d], prod(shape[d+1:])). Every element belongs to exactly
 * one group, namely floor(idx / inner) mod D.
 */
interface Grouping {
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
const grouping = (outer: number, D: number, inner: number): Grouping => ({ outer, D, inner });
const groupSize = (g: Grouping): number => g.outer * g.inner;
const groupOf = (g: Grouping, idx: number): number =>
  g.cl ? Math.floor(idx / g.cl.sample) * g.cl.G + Math.floor((idx % g.cl.C) / g.cl.Cg) : Math.floor(idx / g.inner) % g.D;

/** Per-group sums of f over each group's index set, in float64. */
function groupSum(g: Grouping, f: (idx: number, j: number) => number): Float64Array {
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

function mapAll(n: number, f: (idx: number) => number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = f(i);
  return out;
}

/**
 * Two-pass mean and biased variance per group; rstd = 1/sqrt(var + eps). Over zero elements
 * (K = 0) the mean is 0 and the variance 0/0 = NaN, so rstd is NaN, as in PyTorch.
 */
function centeredStats(x: Arr, g: Grouping, eps: number) {
  const K = groupSize(g);
  const mean = groupSum(g, (i) => x[i]).map((s) => (K === 0 ? 0 : s / K));
  const variance = groupSum(g, (i, j) => (x[i] - mean[j]) ** 2).map((s) => s / K);
  const rstd = variance.map((v) => 1 / Math.sqrt(v + eps));
  return { mean, variance, rstd };
}

/** y = (x − mean[group]) · rstd[group] · w[aff] + b[aff]; mean null means 0 (RMS norm). */
function normApply(
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
function normBackward(
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

const t64 = (data: Float64Array, shape: readonly number[]): F64Tensor => ({ data, shape: [...shape] });
const opt64 = (data: Float64Array | null, shape: readonly number[]): F64Tensor | null =>
  data ? t64(data, shape) : null;
const dataOf = (t: AnyTensor | null): Arr | null => (t ? t.data : null);

/** Rows grouping for layer/RMS norm: (1, rows, K) for stats, (rows, K, 1) for the affine index. */
function rows(x: AnyTensor, normalizedShape: readonly number[]) {
  const K = numel(normalizedShape);
  const lead = x.shape.slice(0, x.shape.length - normalizedShape.length);
  const R = numel(lead);
  return { lead, sg: grouping(1, R, K), ag: grouping(R, K, 1) };
}

/** [N, C, *spatial] → channel grouping (N, C, S); channels last, [N, *spatial, C] → (N·S, C, 1). */
function channels(x: AnyTensor, channelsLast = false) {
  const r = x.shape.length;
  const N = x.shape[0];
  const C = channelsLast ? x.shape[r - 1] : x.shape[1];
  const S = numel(channelsLast ? x.shape.slice(1, r - 1) : x.shape.slice(2));
  return { N, C, S, cg: channelsLast ? grouping(N * S, C, 1) : grouping(N, C, S) };
}

/** Weight-norm slices along dim (null: one slice holding all of v). */
function slices(v: AnyTensor, dim: number | null): Grouping {
  if (dim === null) return grouping(1, 1, numel(v.shape));
  return grouping(numel(v.shape.slice(0, dim)), v.shape[dim], numel(v.shape.slice(dim + 1)));
}

// ---------------------------------------------------------------------------------------------
// Float64 implementations

function layerNorm64(
  x: AnyTensor,
  o: { normalizedShape: readonly number[]; weight: AnyTensor | null; bias: AnyTensor | null; eps: number },
) {
  const { lead, sg, ag } = rows(x, o.normalizedShape);
  const { mean, rstd } = centeredStats(x.data, sg, o.eps);
  const y = normApply(x.data, mean, rstd, sg, ag, dataOf(o.weight), dataOf(o.bias));
  return { y: t64(y, x.shape), mean: t64(mean, lead), rstd: t64(rstd, lead) };
}

function layerNormBackward64(
  dy: AnyTensor,
  x: AnyTensor,
  mean: AnyTensor,
  rstd: AnyTensor,
  o: { normalizedShape: readonly number[]; weight: AnyTensor | null; bias: AnyTensor | null },
) {
  const { sg, ag } = rows(x, o.normalizedShape);
  const r = normBackward(dy.data, x.data, mean.data, rstd.data, sg, ag, dataOf(o.weight), true, !!o.weight, !!o.bias);
  return {
    dx: t64(r.dx, x.shape),
    dweight: opt64(r.dweight, o.normalizedShape),
    dbias: opt64(r.dbias, o.normalizedShape),
  };
}

function rmsNorm64(x: AnyTensor, o: { normalizedShape: readonly number[]; weight: AnyTensor | null; eps: number }) {
  const { lead, sg, ag } = rows(x, o.normalizedShape);
  const K = groupSize(sg);
  const rstd = groupSum(sg, (i) => x.data[i] ** 2).map((s) => 1 / Math.sqrt(s / K + o.eps));
  const y = normApply(x.data, null, rstd, sg, ag, dataOf(o.weight), null);
  return { y: t64(y, x.shape), rstd: t64(rstd, lead) };
}

function rmsNormBackward64(
  dy: AnyTensor,
  x: AnyTensor,
  rstd: AnyTensor,
  o: { normalizedShape: readonly number[]; weight: AnyTensor | null },
) {
  const { sg, ag } = rows(x, o.normalizedShape);
  const r = normBackward(dy.data, x.data, null, rstd.data, sg, ag, dataOf(o.weight), true, !!o.weight, false);
  return { dx: t64(r.dx, x.shape), dweight: opt64(r.dweight, o.normalizedShape) };
}

export interface BatchNormOpts<T> {
  training: boolean;
  weight: T | null;
  bias: T | null;
  runningMean: T | null;
  runningVar: T | null;
  momentum: number | null;
  eps: number;
  numBatchesTracked: number;
  /** x is [N, *spatial, C] (default false: [N, C, *spatial]). */
  channelsLast?: boolean;
}

function batchNorm64(x: AnyTensor, o: BatchNormOpts<AnyTensor>) {
  const { N, C, S, cg } = channels(x, o.channelsLast);
  const w = dataOf(o.weight);
  const b = dataOf(o.bias);
  if (!o.training) {
    const rv = o.runningVar!.data;
    const invstd = mapAll(C, (c) => 1 / Math.sqrt(rv[c] + o.eps));
    const y = normApply(x.data, o.runningMean!.data, invstd, cg, cg, w, b);
    return { y: t64(y, x.shape), saveMean: t64(new Float64Array(0), [0]), saveInvstd: t64(new Float64Array(0), [0]) };
  }
  const { mean, variance, rstd } = centeredStats(x.data, cg, o.eps);
  const y = normApply(x.data, mean, rstd, cg, cg, w, b);
  // Running update (in place): momentum null means the cumulative average 1/(batches seen).
  const m = o.momentum ?? 1 / (o.numBatchesTracked + 1);
  const n = N * S;
  const rm = o.runningMean?.data;
  const rvar = o.runningVar?.data;
  // An empty batch leaves the running statistics untouched (PyTorch).
  for (let c = 0; c < C && n > 0; c++) {
    if (rm) rm[c] = (1 - m) * rm[c] + m * mean[c];
    if (rvar) rvar[c] = (1 - m) * rvar[c] + (m * variance[c] * n) / (n - 1);
  }
  return { y: t64(y, x.shape), saveMean: t64(mean, [C]), saveInvstd: t64(rstd, [C]) };
}

export interface BatchNormBackwardOpts<T> {
  training: boolean;
  weight: T | null;
  bias: T | null;
  runningMean: T | null;
  runningVar: T | null;
  saveMean: T | null;
  saveInvstd: T | null;
  eps: number;
  /** x and dy are [N, *spatial, C] (default false). */
  channelsLast?: boolean;
}

function batchNormBackward64(dy: AnyTensor, x: AnyTensor, o: BatchNormBackwardOpts<AnyTensor>) {
  const { C, cg } = channels(x, o.channelsLast);
  let mean: Arr;
  let invstd: Arr;
  if (o.training) {
    mean = o.saveMean!.data;
    invstd = o.saveInvstd!.data;
  } else {
    const rv = o.runningVar!.data;
    mean = o.runningMean!.data;
    invstd = mapAll(C, (c) => 1 / Math.sqrt(rv[c] + o.eps));
  }
  const r = normBackward(dy.data, x.data, mean, invstd, cg, cg, dataOf(o.weight), o.training, !!o.weight, !!o.bias);
  return { dx: t64(r.dx, x.shape), dweight: opt64(r.dweight, [C]), dbias: opt64(r.dbias, [C]) };
}

/**
 * Group norm: stats per (n, g) over a contiguous run of (C/G)·S elements; affine per channel.
 * Channels last: the group's C/G channels in each of the S rows of sample n (see Grouping.cl).
 */
function groupGroupings(x: AnyTensor, G: number, channelsLast = false) {
  const { N, C, S, cg } = channels(x, channelsLast);
  const Cg = C / G;
  if (channelsLast) return { N, C, sg: { outer: S, D: N * G, inner: Cg, cl: { sample: S * C, C, Cg, G } }, cg };
  return { N, C, sg: grouping(1, N * G, Cg * S), cg };
}

function groupNorm64(
  x: AnyTensor,
  o: { numGroups: number; weight: AnyTensor | null; bias: AnyTensor | null; eps: number; channelsLast?: boolean },
) {
  const { N, sg, cg } = groupGroupings(x, o.numGroups, o.channelsLast);
  const { mean, rstd } = centeredStats(x.data, sg, o.eps);
  const y = normApply(x.data, mean, rstd, sg, cg, dataOf(o.weight), dataOf(o.bias));
  const statShape = [N, o.numGroups];
  return { y: t64(y, x.shape), mean: t64(mean, statShape), rstd: t64(rstd, statShape) };
}

function groupNormBackward64(
  dy: AnyTensor,
  x: AnyTensor,
  mean: AnyTensor,
  rstd: AnyTensor,
  o: { numGroups: number; weight: AnyTensor | null; bias: AnyTensor | null; channelsLast?: boolean },
) {
  const { C, sg, cg } = groupGroupings(x, o.numGroups, o.channelsLast);
  const r = normBackward(dy.data, x.data, mean.data, rstd.data, sg, cg, dataOf(o.weight), true, !!o.weight, !!o.bias);
  return { dx: t64(r.dx, x.shape), dweight: opt64(r.dweight, [C]), dbias: opt64(r.dbias, [C]) };
}

function instanceNorm64(x: AnyTensor, o: { weight: AnyTensor | null; bias: AnyTensor | null; eps: number; channelsLast?: boolean }) {
  return groupNorm64(x, { ...o, numGroups: channels(x, o.channelsLast).C });
}

function instanceNormBackward64(
  dy: AnyTensor,
  x: AnyTensor,
  mean: AnyTensor,
  rstd: AnyTensor,
  o: { weight: AnyTensor | null; bias: AnyTensor | null; channelsLast?: boolean },
) {
  return groupNormBackward64(dy, x, mean, rstd, { ...o, numGroups: channels(x, o.channelsLast).C });
}

/** w = v · (g / ‖v‖) per slice; no eps, so ‖v‖ = 0 gives NaN as in PyTorch. */
function weightNorm64(v: AnyTensor, g: AnyTensor, o: { dim: number | null }) {
  const sg = slices(v, o.dim);
  const norms = groupSum(sg, (i) => v.data[i] ** 2).map(Math.sqrt);
  const w = mapAll(v.data.length, (i) => {
    const j = groupOf(sg, i);
    return v.data[i] * (g.data[j] / norms[j]);
  });
  return { w: t64(w, v.shape), norms: t64(norms, g.shape) };
}

/** s = Σ dw·v per slice; dg = s/‖v‖; dv = (g/‖v‖)·(dw − v·s/‖v‖²). */
function weightNormBackward64(
  dw: AnyTensor,
  v: AnyTensor,
  g: AnyTensor,
  norms: AnyTensor,
  o: { dim: number | null },
) {
  const sg = slices(v, o.dim);
  const n = norms.data;
  const s = groupSum(sg, (i) => dw.data[i] * v.data[i]);
  const dg = s.map((sj, j) => sj / n[j]);
  const dv = mapAll(v.data.length, (i) => {
    const j = groupOf(sg, i);
    return (g.data[j] / n[j]) * (dw.data[i] - v.data[i] * (s[j] / (n[j] * n[j])));
  });
  return { dv: t64(dv, v.shape), dg: t64(dg, g.shape) };
}

/** Float64 variants: same semantics, Float64Array outputs, float32 or float64 inputs. */
export const __f64 = {
  layerNorm: layerNorm64,
  layerNormBackward: layerNormBackward64,
  rmsNorm: rmsNorm64,
  rmsNormBackward: rmsNormBackward64,
  batchNorm: batchNorm64,
  batchNormBackward: batchNormBackward64,
  groupNorm: groupNorm64,
  groupNormBackward: groupNormBackward64,
  instanceNorm: instanceNorm64,
  instanceNormBackward: instanceNormBackward64,
  weightNorm: weightNorm64,
  weightNormBackward: weightNormBackward64,
};

// ---------------------------------------------------------------------------------------------
// Public float32 API

type Rounded<R> = {
  [K in keyof R]: R[K] extends F64Tensor ? HostTensor : R[K] extends F64Tensor | null ? HostTensor | null : never;
};

/** Round every tensor of a result to float32. */
function round<R extends Record<string, F64Tensor | null>>(r: R): Rounded<R> {
  const out: Record<string, HostTensor | null> = {};
  for (const [k, t] of Object.entries(r)) out[k] = t ? { data: Float32Array.from(t.data), shape: [...t.shape] } : null;
  return out as Rounded<R>;
}

export function layerNorm(
  x: HostTensor,
  o: { normalizedShape: readonly number[]; weight: HostTensor | null; bias: HostTensor | null; eps: number },
): { y: HostTensor; mean: HostTensor; rstd: HostTensor } {
  return round(layerNorm64(x, o));
}

export function layerNormBackward(
  dy: HostTensor,
  x: HostTensor,
  mean: HostTensor,
  rstd: HostTensor,
  o: { normalizedShape: readonly number[]; weight: HostTensor | null; bias: HostTensor | null },
): { dx: HostTensor; dweight: HostTensor | null; dbias: HostTensor | null } {
  return round(layerNormBackward64(dy, x, mean, rstd, o));
}

export function rmsNorm(
  x: HostTensor,
  o: { normalizedShape: readonly number[]; weight: HostTensor | null; eps: number },
): { y: HostTensor; rstd: HostTensor } {
  return round(rmsNorm64(x, o));
}

export function rmsNormBackward(
  dy: HostTensor,
  x: HostTensor,
  rstd: HostTensor,
  o: { normalizedShape: readonly number[]; weight: HostTensor | null },
): { dx: HostTensor; dweight: HostTensor | null } {
  return round(rmsNormBackward64(dy, x, rstd, o));
}

/** Training mode updates o.runningMean / o.runningVar in place (when given). */
export function batchNorm(
  x: HostTensor,
  o: BatchNormOpts<HostTensor>,
): { y: HostTensor; saveMean: HostTensor; saveInvstd: HostTensor } {
  return round(batchNorm64(x, o));
}

export function batchNormBackward(
  dy: HostTensor,
  x: HostTensor,
  o: BatchNormBackwardOpts<HostTensor>,
): { dx: HostTensor; dweight: HostTensor | null; dbias: HostTensor | null } {
  return round(batchNormBackward64(dy, x, o));
}

export function groupNorm(
  x: HostTensor,
  o: { numGroups: number; weight: HostTensor | null; bias: HostTensor | null; eps: number; channelsLast?: boolean },
): { y: HostTensor; mean: HostTensor; rstd: HostTensor } {
  return round(groupNorm64(x, o));
}

export function groupNormBackward(
  dy: HostTensor,
  x: HostTensor,
  mean: HostTensor,
  rstd: HostTensor,
  o: { numGroups: number; weight: HostTensor | null; bias: HostTensor | null; channelsLast?: boolean },
): { dx: HostTensor; dweight: HostTensor | null; dbias: HostTensor | null } {
  return round(groupNormBackward64(dy, x, mean, rstd, o));
}

export function instanceNorm(
  x: HostTensor,
  o: { weight: HostTensor | null; bias: HostTensor | null; eps: number; channelsLast?: boolean },
): { y: HostTensor; mean: HostTensor; rstd: HostTensor } {
  return round(instanceNorm64(x, o));
}

export function instanceNormBackward(
  dy: HostTensor,
  x: HostTensor,
  mean: HostTensor,
  rstd: HostTensor,
  o: { weight: HostTensor | null; bias: HostTensor | null; channelsLast?: boolean },
): { dx: HostTensor; dweight: HostTensor | null; dbias: HostTensor | null } {
  return round(instanceNormBackward64(dy, x, mean, rstd, o));
}

export function weightNorm(
  v: HostTensor,
  g: HostTensor,
  o: { dim: number | null },
): { w: HostTensor; norms: HostTensor } {
  return round(weightNorm64(v, g, o));
}

export function weightNormBackward(
  dw: HostTensor,
  v: HostTensor,
  g: HostTensor,
  norms: HostTensor,
  o: { dim: number | null },
): { dv: HostTensor; dg: HostTensor } {
  return round(weightNormBackward64(dw, v, g, norms, o));
}
