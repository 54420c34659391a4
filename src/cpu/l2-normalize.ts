/**
 * Float64 reference of l2Normalize (PyTorch `F.normalize`: y = x / max(‖x‖_p over dim, eps)) and
 * its backward: where the norm n >= eps, dx = (dy − s·sign(y)|y|^(p−1)) / n with y = x / n and
 * s = Σ dy·y over the lane; where the clamp took eps (its gradient is zero), dx = dy / eps.
 */
import type { Arr } from './common.ts';
import type { LpGeom, LpNormalizeArgs, LpNormalizeBwdArgs, LpNormalizeOut } from '../args/l2-normalize.ts';
import type { Tensor } from '../tensor.ts';
import type { CpuHost } from './host.ts';

function forEachLane(g: LpGeom, f: (at: (d: number) => number, lane: number) => void): void {
  for (let o = 0; o < g.outer; o++) {
    for (let i = 0; i < g.groups; i++) f((d) => (o * g.runs + d) * g.groups + i, o * g.groups + i);
  }
}

/** ‖v‖_p in float64, scaled by the largest |v| (no overflow for large p); NaN anywhere: NaN. */
function lpNorm(vals: number[], p: number): number {
  let m = 0;
  for (const v of vals) {
    if (Number.isNaN(v)) return NaN;
    m = Math.max(m, Math.abs(v));
  }
  if (m === 0 || !Number.isFinite(m)) return m;
  let s = 0;
  for (const v of vals) s += (Math.abs(v) / m) ** p;
  return m * s ** (1 / p);
}

export function l2Normalize64(x: Arr, g: LpGeom): { y: Float64Array; norms: Float64Array } {
  const y = new Float64Array(x.length);
  const norms = new Float64Array(g.outer * g.groups);
  forEachLane(g, (at, lane) => {
    const vals = Array.from({ length: g.runs }, (_, d) => x[at(d)]!);
    const n = lpNorm(vals, g.p);
    norms[lane] = n;
    const den = Math.max(n, g.eps);
    for (let d = 0; d < g.runs; d++) y[at(d)] = x[at(d)]! / (Number.isNaN(n) ? NaN : den);
  });
  return { y, norms };
}

export function l2NormalizeBackward64(dy: Arr, x: Arr, norms: Arr, g: LpGeom): Float64Array {
  const dx = new Float64Array(x.length);
  const dpow = (a: number): number => (g.p === 2 ? a : g.p === 1 ? Math.sign(a) : a === 0 ? 0 : Math.sign(a) * Math.abs(a) ** (g.p - 1));
  forEachLane(g, (at, lane) => {
    const n = norms[lane]!;
    if (n < g.eps) {
      for (let d = 0; d < g.runs; d++) dx[at(d)] = dy[at(d)]! / g.eps;
      return;
    }
    let s = 0;
    for (let d = 0; d < g.runs; d++) s += dy[at(d)]! * (x[at(d)]! / n);
    for (let d = 0; d < g.runs; d++) dx[at(d)] = (dy[at(d)]! - s * dpow(x[at(d)]! / n)) / n;
  });
  return dx;
}

// ---- the ops on the cpu backend (resolved arguments in, tensors out), as the op table calls them ----

export function l2NormalizeOp(c: CpuHost, a: LpNormalizeArgs): LpNormalizeOut {
  const r = l2Normalize64(a.x._data!, a);
  return { y: c.out64(r.y, a.x.shape, a.x.dtype), norms: c.out64(r.norms, a.normShape, 'float32') };
}

export function l2NormalizeBackwardOp(c: CpuHost, a: LpNormalizeBwdArgs): { dx: Tensor } {
  return { dx: c.out64(l2NormalizeBackward64(a.dy._data!, a.x._data!, a.norms._data!, a), a.x.shape, a.x.dtype) };
}
