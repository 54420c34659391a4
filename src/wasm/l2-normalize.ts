/**
 * l2Normalize (PyTorch `F.normalize`) on the wasm backend. Lanes along `dim`: the Grouping
 * [outer, runs, groups, 1] (src/grouping.ts): x as [outer, runs, groups], a lane per (o, i).
 * p = 2 along rows (groups = 1): one rows_fwd (mode 2: each row's sum of squares, then
 * y = x·(1/max(‖x‖, eps)) while the row is in cache), where that factor fits float32 (eps ≥ 2^-64);
 * else the sums of squares of rows (rows_stats) or of columns (cols_stats), each lane's factor from
 * them (lp_factors), then y with the normalize kernels. The backward is
 * the norms' dx form with x̂ = x/‖x‖, γ = −Σ dy·x̂ (and dy/eps where the clamp took eps). Other p:
 * the float64 loops of the reference on the module's memory (correct, not fast).
 */
import type { LpGeom, LpNormalizeArgs, LpNormalizeBwdArgs, LpNormalizeOut } from '../args/l2-normalize.ts';
import type { WasmContext } from './context.ts';
import { CHUNK } from './module.ts';
import { l2Normalize64, l2NormalizeBackward64 } from '../cpu/l2-normalize.ts';

const lanes = (a: LpGeom): number => a.outer * a.groups;

/** Σx² per lane (float64) in module memory: lane l's at slot l·stride + offset. */
function sumsq(b: WasmContext, a: LpNormalizeArgs): { sums: number; stride: number; offset: number } {
  if (a.groups === 1) {
    const sums = b.temp(a.outer * 16);
    b.run('rows_stats', [a.x._ptr, a.runs, 1, sums], a.outer, a.x.size);
    return { sums, stride: 2, offset: 0 };
  }
  const sums = b.temp(lanes(a) * 24);
  b.run('cols_stats', [a.x._ptr, a.outer, a.runs, a.groups, 1, sums], a.outer * Math.ceil(a.groups / 16), a.x.size);
  return { sums, stride: 3, offset: 1 };
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
  if (a.groups === 1 && a.runs > 0 && a.eps >= 2 ** -64) {
    const half = y.dtype === 'float16' ? 1 : 0;
    b.run('rows_fwd', [a.x._ptr, y._ptr, a.runs, 2, a.eps, b.fill(a.runs, 1), b.fill(a.runs, 0), 0, 1, 1, 0, 0, norms._ptr, half], a.outer, a.x.size);
    return { y, norms };
  }
  const L = lanes(a);
  const { sums, stride, offset } = sumsq(b, a);
  const tp = b.fill(5 * L, 0);
  b.run('lp_factors', [sums, stride, offset, L, a.eps, norms._ptr, tp], Math.ceil(L / CHUNK), L);
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
