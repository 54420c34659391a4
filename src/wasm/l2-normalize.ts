/**
 * l2Normalize (PyTorch `F.normalize`) on the wasm backend. Lanes along `dim`: the Grouping
 * [outer, runs, groups, 1] (src/grouping.ts): x as [outer, runs, groups], a lane per (o, i).
 * p = 2: the sums of squares of rows (groups = 1: rows_stats) or of columns (cols_stats), then y = x·(1/max(‖x‖, eps)) with the normalize kernels; the backward is
 * the norms' dx form with x̂ = x/‖x‖, γ = −Σ dy·x̂ (and dy/eps where the clamp took eps). Other p:
 * the float64 loops of the reference on the module's memory (correct, not fast).
 */
import type { LpGeom, LpNormalizeArgs, LpNormalizeBwdArgs, LpNormalizeOut } from '../args/l2-normalize.ts';
import type { WasmContext } from './context.ts';
import { rowStats } from './channels.ts';
import { l2Normalize64, l2NormalizeBackward64 } from '../cpu/l2-normalize.ts';

const lanes = (a: LpGeom): number => a.outer * a.groups;

/** Σx² per lane (float64). */
function sumsq(b: WasmContext, a: LpNormalizeArgs): Float64Array {
  if (a.groups === 1) return rowStats(b, a.x, a.outer, a.runs, 1).sum;
  const out = b.temp(lanes(a) * 24);
  b.run('cols_stats', [a.x._ptr, a.outer, a.runs, a.groups, 1, out], a.outer * Math.ceil(a.groups / 16), a.x.size);
  const v = b.m.f64(out, 3 * lanes(a));
  return Float64Array.from({ length: lanes(a) }, (_, l) => v[3 * l + 1]!);
}

export function l2Normalize(b: WasmContext, a: LpNormalizeArgs): LpNormalizeOut {
  const y = b.out(a.x.shape, a.x.dtype);
  const norms = b.out(a.normShape, 'float32');
  if (a.p !== 2) {
    const r = l2Normalize64(b.values(a.x), a);
    b.values(y).set(r.y);
    b.values(norms).set(r.norms);
    b.roundHalf(y);
    return { y, norms };
  }
  const n = sumsq(b, a).map(Math.sqrt);
  b.values(norms).set(n);
  const L = lanes(a);
  const tab = new Float32Array(5 * L);
  for (let l = 0; l < L; l++) {
    const inv = Number.isNaN(n[l]!) ? NaN : 1 / Math.max(n[l]!, a.eps);
    // 1/‖x‖ past float32 (a norm below 2^-64): as 2^64 · (2^-64/‖x‖), two finite factors (every
    // |x| in the lane is at most ‖x‖, so x·2^64 stays finite).
    const split = inv > 2 ** 64;
    tab[2 * L + l] = split ? 2 ** 64 : inv;
    tab[3 * L + l] = split ? inv * 2 ** -64 : 1;
  }
  const tp = b.f32Temp(tab);
  if (a.groups === 1) b.run('apply_planes', [a.x._ptr, y._ptr, a.runs, tp, L, 0], L, a.x.size);
  else b.run('apply_cols', [a.x._ptr, y._ptr, a.runs, a.groups, tp, a.outer, 0], a.outer * a.runs, a.x.size);
  b.roundHalf(y);
  return { y, norms };
}

export function l2NormalizeBackward(b: WasmContext, a: LpNormalizeBwdArgs): { dx: LpNormalizeOut['y'] } {
  const dx = b.out(a.x.shape, a.x.dtype);
  const nv = b.values(a.norms).slice();
  if (a.p !== 2) {
    b.values(dx).set(l2NormalizeBackward64(b.values(a.dy), b.values(a.x), nv, a));
    b.roundHalf(dx);
    return { dx };
  }
  const L = lanes(a);
  const out = b.temp(L * 24);
  const zeros = b.fill(L, 0);
  if (a.groups === 1) b.run('rows_gsums', [a.dy._ptr, a.x._ptr, a.runs, zeros, b.fill(L, 1), 1, out], L, 2 * a.x.size);
  else b.run('cols_gsums', [a.dy._ptr, a.x._ptr, a.outer, a.runs, a.groups, zeros, out], a.outer * Math.ceil(a.groups / 16), 2 * a.x.size);
  const v = b.m.f64(out, 3 * L);
  const cf = new Float32Array(6 * L);
  for (let l = 0; l < L; l++) {
    const n = nv[l]!;
    if (n < a.eps) {
      cf[3 * L + l] = 1 / a.eps; // dx = dy / eps: the clamp's gradient is zero
      continue;
    }
    cf[2 * L + l] = 1 / n;
    cf[3 * L + l] = 1 / n;
    cf[5 * L + l] = -v[3 * l + 1]! / n;
  }
  const coef = b.f32Temp(cf);
  if (a.groups === 1) b.run('rows_dx', [a.dy._ptr, a.x._ptr, dx._ptr, a.runs, L, 1, coef, b.fill(L, 1), 1, 0, 0], L, 2 * a.x.size);
  else b.run('cols_dx', [a.dy._ptr, a.x._ptr, dx._ptr, a.runs, a.groups, a.outer, coef, b.fill(a.groups, 1)], a.outer * a.runs, 2 * a.x.size);
  b.roundHalf(dx);
  return { dx };
}
