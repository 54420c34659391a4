/**
 * Group, instance and batch norm on the wasm backend, NCHW and channels last.
 *
 * - Group/instance norm NCHW: each (n, g) group is one contiguous row of (C/G)·S elements: the
 *   fused row kernel (rows_fwd) with a per-channel affine. Channels last: column statistics per
 *   (n, c) over the S rows (cols_stats), merged per group here, then apply_cols.
 * - Batch norm: statistics per plane (n, c) of S elements (rows_stats) merged over n here, or per
 *   column over N·S rows when channels last or S = 1 (the same layout); then apply_planes /
 *   apply_cols with per-channel coefficients.
 * - Group/instance-norm backward NCHW: one fused kernel per group (groups_bwd): its planes'
 *   gradient sums, the group's coefficients, then dx while the group is in cache.
 * - Other backwards: gradient sums per plane (rows_gsums) or per (o, c) column (cols_gsums) with
 *   g = dy, combined per group here with the weights (float64), then dx per plane or per row of C.
 * Merges run in float64 in a fixed order, so results do not depend on how kernels were split.
 */
import type { Tensor } from '../tensor.ts';
import * as O from '../ops.ts';
import type { BatchNormArgs, BatchNormBwdArgs, BatchNormOut } from '../args/batch-norm.ts';
import type { GroupNormArgs, GroupNormBwdArgs, GroupNormOut, InstanceNormArgs, InstanceNormBwdArgs } from '../args/group-norm.ts';
import { instanceAsGroupNorm, instanceAsGroupNormBackward } from '../args/group-norm.ts';
import { gradCoefs, tabulate, type WasmContext } from './context.ts';
import { hasMod, modulatedBackward, modulateInPlace } from './modulate.ts';
import type { ChannelGeom } from '../validate.ts';

/** Per-group moments from per-part triples: count, Σx, M2 (exact two-level merge in float64). */
function mergeMoments(cnt: ArrayLike<number>, sum: ArrayLike<number>, m2: ArrayLike<number>, parts: number[]): [number, number, number] {
  let n = 0, s = 0;
  for (const p of parts) {
    n += cnt[p]!;
    s += sum[p]!;
  }
  const mean = n > 0 ? s / n : 0;
  let q = 0;
  for (const p of parts) {
    if (cnt[p]! === 0) continue;
    const d = sum[p]! / cnt[p]! - mean;
    q += m2[p]! + cnt[p]! * d * d;
  }
  return [n, mean, q];
}

/** Column triples (count, Σ, M2 or Σx²) of x as [O, M, C] (float64 arrays of O·C). */
function colStats(b: WasmContext, x: Tensor, O: number, M: number, C: number, mode: 0 | 1) {
  const out = b.temp(O * C * 24);
  b.run('cols_stats', [x._ptr, O, M, C, mode, out], O * Math.ceil(C / 16), O * M * C);
  const v = b.m.f64(out, 3 * O * C);
  const pick = (k: number) => tabulate(Float64Array, O * C, (i) => v[3 * i + k]!);
  return { cnt: pick(0), sum: pick(1), m2: pick(2) };
}

/** Row pairs (Σ, M2 or Σx²) of P rows of S elements. */
export function rowStats(b: WasmContext, x: Tensor, P: number, S: number, mode: 0 | 1) {
  const out = b.temp(P * 16);
  b.run('rows_stats', [x._ptr, S, mode, out], P, P * S);
  const v = b.m.f64(out, 2 * P);
  return { cnt: new Float64Array(P).fill(S), sum: tabulate(Float64Array, P, (i) => v[2 * i]!), m2: tabulate(Float64Array, P, (i) => v[2 * i + 1]!) };
}

/** Coefficient table s, m, r, w, b (each of P) for apply_planes / apply_cols. */
function applyTab(P: number, mean: (i: number) => number, rstd: (i: number) => number, w: (i: number) => number, bias: (i: number) => number): Float32Array {
  const t = new Float32Array(5 * P);
  for (let i = 0; i < P; i++) {
    const mu = mean(i);
    const s = Math.fround(mu);
    t[i] = s;
    t[P + i] = mu - s;
    t[2 * P + i] = rstd(i);
    t[3 * P + i] = w(i);
    t[4 * P + i] = bias(i);
  }
  return t;
}

const vals = (b: WasmContext, t: Tensor | null, n: number, dflt: number): Float32Array => (t ? b.values(t).slice() : new Float32Array(n).fill(dflt));

export function groupNorm(b: WasmContext, a: GroupNormArgs): GroupNormOut {
  const { N, C, S, G } = a;
  const Cg = C / G;
  // With a modulation the activation comes after it (modulate), not in the norm's kernels.
  const mod = hasMod(a);
  const silu = a.silu && !mod;
  const y = b.out(a.x.shape, a.x.dtype);
  const mean = b.out([N, G], 'float32');
  const rstd = b.out([N, G], 'float32');
  if (!a.channelsLast) {
    const w = a.weight ? a.weight._ptr : b.fill(C, 1);
    const bias = a.bias ? a.bias._ptr : b.fill(C, 0);
    // float16 y without a modulation: rounded by the kernel, group by group while in cache.
    const half = !mod && y.dtype === 'float16' ? 1 : 0;
    b.run('rows_fwd', [a.x._ptr, y._ptr, Cg * S, 0, a.eps, w, bias, S, G, Cg, silu ? 1 : 0, mean._ptr, rstd._ptr, half], N * G, a.x.size);
    if (half) return { y, mean, rstd };
  } else {
    const st = colStats(b, a.x, N, S, C, 0);
    const mu = new Float64Array(N * G), rs = new Float64Array(N * G);
    for (let n = 0; n < N; n++) {
      for (let g = 0; g < G; g++) {
        const parts = Array.from({ length: Cg }, (_, j) => n * C + g * Cg + j);
        const [cnt, m, q] = mergeMoments(st.cnt, st.sum, st.m2, parts);
        mu[n * G + g] = m;
        rs[n * G + g] = cnt === 0 ? NaN : 1 / Math.sqrt(q / cnt + a.eps);
      }
    }
    b.values(mean).set(mu);
    b.values(rstd).set(rs);
    const wv = vals(b, a.weight, C, 1), bv = vals(b, a.bias, C, 0);
    const grp = (i: number) => Math.floor(i / C) * G + Math.floor((i % C) / Cg);
    const tab = b.f32Temp(applyTab(N * C, (i) => mu[grp(i)]!, (i) => rs[grp(i)]!, (i) => wv[i % C]!, (i) => bv[i % C]!));
    b.run('apply_cols', [a.x._ptr, y._ptr, S, C, tab, N, silu ? 1 : 0], N * S, a.x.size);
  }
  if (mod) modulateInPlace(b, y, a, a.silu);
  b.roundHalf(y);
  return { y, mean, rstd };
}

/**
 * dx per plane (NCHW: P = N·C planes of S) or per row of C (channels last, O outer blocks of M
 * rows), from per-(o, c) coefficient arrays of length O·C (index = plane).
 */
function applyDx(b: WasmContext, dy: Tensor, x: Tensor, dx: Tensor, cl: boolean, O: number, M: number, C: number, S: number, cf: Float32Array, w: Float32Array): void {
  const coef = b.f32Temp(cf);
  if (cl) {
    b.run('cols_dx', [dy._ptr, x._ptr, dx._ptr, M, C, O, coef, b.f32Temp(w)], O * M, 2 * x.size);
  } else {
    const P = O * C;
    const wp = b.f32Temp(tabulate(Float32Array, P, (p) => w[p % C]!));
    b.run('rows_dx', [dy._ptr, x._ptr, dx._ptr, S, P, 1, coef, wp, 1, 0, 0], P, 2 * x.size);
  }
  b.roundHalf(dx);
}

/** Gradient sums Σdy, Σdy·(x − μ), Σ(x − μ) per (o, c) (float64 arrays of O·C), μ per (o, c). */
function gradSums(b: WasmContext, dy: Tensor, x: Tensor, cl: boolean, O: number, M: number, C: number, S: number, mu: Float32Array) {
  const P = O * C;
  const out = b.temp(P * 24);
  const mup = b.f32Temp(mu);
  if (cl) b.run('cols_gsums', [dy._ptr, x._ptr, O, M, C, mup, out], O * Math.ceil(C / 16), 2 * x.size);
  else b.run('rows_gsums', [dy._ptr, x._ptr, S, mup, b.fill(P, 1), 1, out], P, 2 * x.size);
  const v = b.m.f64(out, 3 * P);
  const pick = (k: number) => tabulate(Float64Array, P, (i) => v[3 * i + k]!);
  return { sdy: pick(0), sdyd: pick(1), sd: pick(2) };
}

/** Group norm's output again from x and the saved statistics (float32 intermediate of a modulated backward). */
function normalizedGroups(b: WasmContext, a: GroupNormBwdArgs): Tensor {
  const { N, C, S, G } = a;
  const Cg = C / G;
  const n = b.scratch(a.x.shape);
  const mv = b.values(a.mean).slice(), rv = b.values(a.rstd).slice();
  const wv = vals(b, a.weight, C, 1), bv = vals(b, a.bias, C, 0);
  const grp = (i: number) => Math.floor(i / C) * G + Math.floor((i % C) / Cg);
  const tab = b.f32Temp(applyTab(N * C, (i) => mv[grp(i)]!, (i) => rv[grp(i)]!, (i) => wv[i % C]!, (i) => bv[i % C]!));
  if (a.channelsLast) b.run('apply_cols', [a.x._ptr, n._ptr, S, C, tab, N, 0], N * S, a.x.size);
  else b.run('apply_planes', [a.x._ptr, n._ptr, S, tab, N * C, 0], N * C, a.x.size);
  return n;
}

/** Instance norm: group norm with one channel per group, no activation, no modulation. */
export function instanceNorm(b: WasmContext, a: InstanceNormArgs): GroupNormOut {
  return groupNorm(b, instanceAsGroupNorm(a));
}

export function groupNormBackward(b: WasmContext, a: GroupNormBwdArgs): O.ModBwdOut {
  if (!hasMod(a) && !a.silu) return Object.assign(groupBackward(b, a), O.NO_MOD_GRADS);
  return modulatedBackward(b, { ...a, residual: null, dsum: null, gate: null }, a.silu, () => normalizedGroups(b, a), (dn, _x, f32) => groupBackward(b, { ...a, dy: dn }, f32));
}

/** Instance norm's backward: group norm's with one channel per group. */
export function instanceNormBackward(b: WasmContext, a: InstanceNormBwdArgs): O.BwdOut {
  const { dx, dweight, dbias } = groupNormBackward(b, instanceAsGroupNormBackward(a));
  return { dx, dweight, dbias };
}

/** The norm's backward (dy as given); f32: dx left float32. */
function groupBackward(b: WasmContext, a: GroupNormBwdArgs, f32 = false): O.BwdOut {
  const { N, C, S, G, channelsLast: cl } = a;
  const Cg = C / G;
  const P = N * C;
  const dx = b.out(a.x.shape, f32 ? 'float32' : a.x.dtype);
  const mv = b.values(a.mean).slice(), rv = b.values(a.rstd).slice();
  const w = vals(b, a.weight, C, 1);
  if (!cl) {
    // NCHW: one fused kernel per group (groups_bwd): the planes' gradient sums, the group's
    // coefficients, then dx while the group is in cache; dweight/dbias summed here over n.
    const out = b.temp(P * 16), kout = b.temp(N * G * 8);
    const wp = a.weight ? a.weight._ptr : b.fill(C, 1);
    b.run('groups_bwd', [a.dy._ptr, a.x._ptr, dx._ptr, S, G, Cg, a.mean._ptr, a.rstd._ptr, wp, out, kout], N * G, 2 * a.x.size);
    b.roundHalf(dx);
    const v = b.m.f64(out, 2 * P), kv = b.m.f64(kout, N * G);
    const dw = new Float64Array(C), db = new Float64Array(C);
    for (let n = 0; n < N; n++) {
      for (let c = 0; c < C; c++) {
        const p = n * C + c, q = n * G + Math.floor(c / Cg);
        if (Cg * S > 0) dw[c] += rv[q]! * (v[2 * p + 1]! - kv[q]! * v[2 * p]!);
        db[c] += v[2 * p]!;
      }
    }
    return { dx, dweight: a.weight ? perChannel(b, dw, a.weight) : null, dbias: a.bias ? perChannel(b, db, a.bias) : null };
  }
  const grp = (p: number) => Math.floor(p / C) * G + Math.floor((p % C) / Cg);
  const gs = gradSums(b, a.dy, a.x, cl, N, S, C, S, tabulate(Float32Array, P, (p) => mv[grp(p)]!));
  const cf = new Float32Array(6 * P);
  const dw = new Float64Array(C), db = new Float64Array(C);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < G; g++) {
      let sa = 0, sb = 0, sc = 0;
      for (let j = 0; j < Cg; j++) {
        const p = n * C + g * Cg + j;
        sa += w[g * Cg + j]! * gs.sdy[p]!;
        sb += w[g * Cg + j]! * gs.sdyd[p]!;
        sc += gs.sd[p]!;
      }
      const mu = mv[n * G + g]!, r = rv[n * G + g]!;
      const [k, , beta, gamma] = gradCoefs(sa, sb, sc, Cg * S, mu, r, true, true);
      for (let j = 0; j < Cg; j++) {
        const c = g * Cg + j, p = n * C + c;
        cf[p] = mu;
        cf[P + p] = k;
        cf[2 * P + p] = r;
        cf[3 * P + p] = r;
        cf[4 * P + p] = beta;
        cf[5 * P + p] = gamma;
        if (Cg * S > 0) dw[c] += r * (gs.sdyd[p]! - k * gs.sdy[p]!);
        db[c] += gs.sdy[p]!;
      }
    }
  }
  applyDx(b, a.dy, a.x, dx, cl, N, S, C, S, cf, w);
  return { dx, dweight: a.weight ? perChannel(b, dw, a.weight) : null, dbias: a.bias ? perChannel(b, db, a.bias) : null };
}

function perChannel(b: WasmContext, v: Float64Array, like: Tensor): Tensor {
  const t = b.out([v.length], like.dtype);
  b.values(t).set(v);
  b.roundHalf(t);
  return t;
}

/** Batch norm's layout: channels last, or NCHW with one spatial element (the same memory order). */
const columnar = (a: ChannelGeom): boolean => a.channelsLast || a.S === 1;

export function batchNorm(b: WasmContext, a: BatchNormArgs): BatchNormOut {
  const { N, C, S } = a;
  const cl = columnar(a);
  const y = b.out(a.x.shape, a.x.dtype);
  let mean: Float64Array, rstd: Float64Array, saveMean: Tensor, saveInvstd: Tensor;
  if (!a.training) {
    mean = Float64Array.from(b.values(a.runningMean!));
    rstd = Float64Array.from(b.values(a.runningVar!), (v) => 1 / Math.sqrt(v + a.eps));
    saveMean = b.out([0], 'float32');
    saveInvstd = b.out([0], 'float32');
  } else {
    const M = N * S;
    const st = cl ? colStats(b, a.x, 1, M, C, 0) : rowStats(b, a.x, N * C, S, 0);
    mean = new Float64Array(C);
    rstd = new Float64Array(C);
    const variance = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      const parts = cl ? [c] : Array.from({ length: N }, (_, n) => n * C + c);
      const [cnt, m, q] = mergeMoments(st.cnt, st.sum, st.m2, parts);
      mean[c] = m;
      variance[c] = q / cnt;
      rstd[c] = 1 / Math.sqrt(variance[c]! + a.eps);
    }
    saveMean = b.out([C], 'float32');
    saveInvstd = b.out([C], 'float32');
    b.values(saveMean).set(mean);
    b.values(saveInvstd).set(rstd);
    if (M > 0) {
      const mo = a.momentum;
      if (a.runningMean) {
        const rm = b.values(a.runningMean);
        for (let c = 0; c < C; c++) rm[c] = (1 - mo) * rm[c]! + mo * mean[c]!;
      }
      if (a.runningVar) {
        const rvv = b.values(a.runningVar);
        for (let c = 0; c < C; c++) rvv[c] = (1 - mo) * rvv[c]! + (mo * variance[c]! * M) / (M - 1);
      }
    }
  }
  const wv = vals(b, a.weight, C, 1), bv = vals(b, a.bias, C, 0);
  if (cl) {
    const tab = b.f32Temp(applyTab(C, (c) => mean[c]!, (c) => rstd[c]!, (c) => wv[c]!, (c) => bv[c]!));
    b.run('apply_cols', [a.x._ptr, y._ptr, N * S, C, tab, 1, 0], N * S, a.x.size);
  } else {
    const P = N * C;
    const tab = b.f32Temp(applyTab(P, (p) => mean[p % C]!, (p) => rstd[p % C]!, (p) => wv[p % C]!, (p) => bv[p % C]!));
    b.run('apply_planes', [a.x._ptr, y._ptr, S, tab, P, 0], P, a.x.size);
  }
  b.roundHalf(y);
  return { y, saveMean, saveInvstd };
}

export function batchNormBackward(b: WasmContext, a: BatchNormBwdArgs): O.BwdOut {
  const { N, C, S } = a;
  const cl = columnar(a);
  const dx = b.out(a.x.shape, a.x.dtype);
  const mu = a.training ? b.values(a.saveMean!).slice() : b.values(a.runningMean!).slice();
  const r64 = a.training ? Float64Array.from(b.values(a.saveInvstd!)) : Float64Array.from(b.values(a.runningVar!), (v) => 1 / Math.sqrt(v + a.eps));
  const w = vals(b, a.weight, C, 1);
  const O = cl ? 1 : N, M = cl ? N * S : S;
  const P = O * C;
  const gs = gradSums(b, a.dy, a.x, cl, O, M, C, S, tabulate(Float32Array, P, (p) => mu[p % C]!));
  const coefC = new Float64Array(6 * C);
  const dw = new Float64Array(C), db = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    let sdy = 0, sdyd = 0, sd = 0;
    for (let o = 0; o < O; o++) {
      sdy += gs.sdy[o * C + c]!;
      sdyd += gs.sdyd[o * C + c]!;
      sd += gs.sd[o * C + c]!;
    }
    const r = r64[c]!;
    const [k, , beta, gamma] = gradCoefs(w[c]! * sdy, w[c]! * sdyd, sd, N * S, mu[c]!, r, a.training, true);
    const row = [mu[c]!, k, r, r, beta, gamma];
    for (let i = 0; i < 6; i++) coefC[i * C + c] = row[i]!;
    dw[c] = N * S > 0 ? r * (sdyd - k * sdy) : 0;
    db[c] = sdy;
  }
  if (a.training) {
    const cf = new Float32Array(6 * P);
    for (let i = 0; i < 6; i++) for (let p = 0; p < P; p++) cf[i * P + p] = coefC[i * C + (p % C)]!;
    applyDx(b, a.dy, a.x, dx, cl, O, M, C, S, cf, w);
  } else {
    // Eval: dx = dy·invstd·w, which does not depend on x (an infinite x must not turn it into NaN).
    const tab = b.f32Temp(applyTab(P, () => 0, (p) => r64[p % C]!, (p) => w[p % C]!, () => 0));
    if (cl) b.run('apply_cols', [a.dy._ptr, dx._ptr, M, C, tab, 1, 0], M, a.x.size);
    else b.run('apply_planes', [a.dy._ptr, dx._ptr, S, tab, P, 0], P, a.x.size);
    b.roundHalf(dx);
  }
  return { dx, dweight: a.weight ? perChannel(b, dw, a.weight) : null, dbias: a.bias ? perChannel(b, db, a.bias) : null };
}
