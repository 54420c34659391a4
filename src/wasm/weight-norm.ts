/**
 * Weight norm on the wasm backend. v is the Grouping [1, runs, groups, runLength] around `dim`
 * (src/grouping.ts); slice j is every (r, j, i).
 * Rows of `runLength` contiguous elements (sums of squares per row, merged over o here), or, when
 * dim is the last dim (runLength = 1), columns: v as [runs, groups] with one column per slice.
 * w = (v·(1/‖v‖))·g; backward dv = α·(dw + γ·x̂), α = g/‖v‖, γ = −Σ(dw·v)/‖v‖, x̂ = v/‖v‖
 * (docs/NUMERICS.md), with the dx kernels of the norms.
 */
import type { WeightNormArgs, WeightNormBwdArgs, WeightNormBwdOut, WeightNormOut } from '../args/weight-norm.ts';
import type { WasmContext } from './context.ts';
import { rowStats } from './channels.ts';
import type { SliceGeom } from '../validate.ts';

/** Columns when dim is the last of several dims; rows otherwise. */
const byColumns = (a: SliceGeom): boolean => a.runLength === 1 && a.runs > 1;

export function weightNorm(b: WasmContext, a: WeightNormArgs): WeightNormOut {
  const { runs, groups, runLength } = a;
  const w = b.out(a.v.shape, a.v.dtype);
  const norms = b.out(a.g.shape, 'float32');
  const cols = byColumns(a);
  const sq = new Float64Array(groups);
  if (cols) {
    const out = b.temp(groups * 24);
    b.run('cols_stats', [a.v._ptr, 1, runs, groups, 1, out], Math.ceil(groups / 16), a.v.size);
    const v = b.m.f64(out, 3 * groups);
    for (let j = 0; j < groups; j++) sq[j] = v[3 * j + 1]!;
  } else {
    const st = rowStats(b, a.v, runs * groups, runLength, 1);
    for (let r = 0; r < runs * groups; r++) sq[r % groups] += st.sum[r]!;
  }
  const nrm = sq.map(Math.sqrt);
  const g = b.values(a.g).slice();
  b.values(norms).set(nrm);
  const P = cols ? groups : runs * groups;
  const tab = new Float32Array(5 * P);
  for (let p = 0; p < P; p++) {
    tab[2 * P + p] = 1 / nrm[p % groups]!;
    tab[3 * P + p] = g[p % groups]!;
  }
  const tp = b.f32Temp(tab);
  if (cols) b.run('apply_cols', [a.v._ptr, w._ptr, runs, groups, tp, 1, 0], runs, a.v.size);
  else b.run('apply_planes', [a.v._ptr, w._ptr, runLength, tp, P, 0], P, a.v.size);
  b.roundHalf(w);
  return { w, norms };
}

export function weightNormBackward(b: WasmContext, a: WeightNormBwdArgs): WeightNormBwdOut {
  const { runs, groups, runLength } = a;
  const dv = b.out(a.v.shape, a.v.dtype);
  const dg = b.out(a.g.shape, a.g.dtype);
  const cols = byColumns(a);
  const P = cols ? groups : runs * groups;
  const out = b.temp(P * 24);
  const zeros = b.fill(P, 0);
  const s = new Float64Array(groups);
  if (cols) b.run('cols_gsums', [a.dw._ptr, a.v._ptr, 1, runs, groups, zeros, out], Math.ceil(groups / 16), 2 * a.v.size);
  else b.run('rows_gsums', [a.dw._ptr, a.v._ptr, runLength, zeros, b.fill(P, 1), 1, out], P, 2 * a.v.size);
  const v = b.m.f64(out, 3 * P);
  for (let p = 0; p < P; p++) s[p % groups] += v[3 * p + 1]!;
  const nrm = b.values(a.norms).slice();
  const g = b.values(a.g).slice();
  b.values(dg).set(s.map((sj, j) => sj / nrm[j]!));
  b.roundHalf(dg);
  const cf = new Float32Array(6 * P);
  for (let p = 0; p < P; p++) {
    const j = p % groups;
    cf[2 * P + p] = 1 / nrm[j]!;
    cf[3 * P + p] = g[j]! / nrm[j]!;
    cf[5 * P + p] = -s[j]! / nrm[j]!;
  }
  const coef = b.f32Temp(cf);
  const ones = b.fill(P, 1);
  if (cols) b.run('cols_dx', [a.dw._ptr, a.v._ptr, dv._ptr, runs, groups, 1, coef, ones], runs, 2 * a.v.size);
  else b.run('rows_dx', [a.dw._ptr, a.v._ptr, dv._ptr, runLength, P, 1, coef, ones, 1, 0, 0], P, 2 * a.v.size);
  b.roundHalf(dv);
  return { dv, dg };
}
