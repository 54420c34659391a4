// AssemblyScript: forward kernels. Tasks: rows (rows_fwd, rows_stats), planes (apply_planes),
// (outer, chunk of 16 columns) pairs (cols_stats), rows of C (apply_cols).
import { BLOCK, ROW_BLOCK, SHORT_ROW, SHORT_SIMD, sum64, sumsq64dev, pf, pi, pp, at, ld, st, hsum, redo, rSum, rM2, rowStats, rowBlocks, moments64, chanInto, siluRun, nrm, apply16, apply4, applyScalar } from './common';
import { CHUNK, roundHalfRun } from './elementwise';

/** applyRun's vector loops, one w and b for the run; returns the elements done. */
// @ts-ignore: decorator
@inline function applyConst(x: usize, y: usize, n: i32, vs: v128, vm: v128, vr: v128, vw: v128, vb: v128, kind: i32): i32 {
  let i = 0;
  for (; i + 16 <= n; i += 16) {
    const px = at(x, i), py = at(y, i);
    const t0 = nrm(v128.load(px), vs, vm, vr, kind);
    const t1 = nrm(v128.load(px, 16), vs, vm, vr, kind);
    const t2 = nrm(v128.load(px, 32), vs, vm, vr, kind);
    const t3 = nrm(v128.load(px, 48), vs, vm, vr, kind);
    v128.store(py, f32x4.add(f32x4.mul(t0, vw), vb));
    v128.store(py, f32x4.add(f32x4.mul(t1, vw), vb), 16);
    v128.store(py, f32x4.add(f32x4.mul(t2, vw), vb), 32);
    v128.store(py, f32x4.add(f32x4.mul(t3, vw), vb), 48);
  }
  for (; i + 4 <= n; i += 4) {
    v128.store(at(y, i), f32x4.add(f32x4.mul(nrm(v128.load(at(x, i)), vs, vm, vr, kind), vw), vb));
  }
  return i;
}

/** applyRun's vector loops, w and b per element; returns the elements done. */
// @ts-ignore: decorator
@inline function applyVec(x: usize, y: usize, n: i32, vs: v128, vm: v128, vr: v128, w: usize, b: usize, kind: i32): i32 {
  let i = 0;
  for (; i + 16 <= n; i += 16) apply16(at(x, i), at(y, i), at(w, i), at(b, i), vs, vm, vr, kind);
  for (; i + 4 <= n; i += 4) apply4(at(x, i), at(y, i), at(w, i), at(b, i), vs, vm, vr, kind);
  return i;
}

/**
 * y = ((x − s) − m)·r · w + b over n elements, (s, m) the mean as a float32 pair, r = rstd;
 * w and b per element (wStep 1) or one value (wStep 0).
 */
function applyRun(x: usize, y: usize, n: i32, s: f32, m: f32, r: f32, w: usize, b: usize, wStep: i32): void {
  let i = 0;
  if (ASC_FEATURE_SIMD && n >= 4) {
    const vs = f32x4.splat(s), vm = f32x4.splat(m), vr = f32x4.splat(r);
    // Subtracting +0 changes no bit (−0 − +0 is −0; a −0 is still subtracted): RMS norm has s and
    // m +0, batch-norm eval (a float32 running mean) m +0.
    const kind = reinterpret<u32>(m) != 0 ? 0 : reinterpret<u32>(s) != 0 ? 1 : 2;
    if (wStep == 0) {
      const vw = f32x4.splat(ld(w, 0)), vb = f32x4.splat(ld(b, 0));
      if (kind == 0) i = applyConst(x, y, n, vs, vm, vr, vw, vb, 0);
      else if (kind == 1) i = applyConst(x, y, n, vs, vm, vr, vw, vb, 1);
      else i = applyConst(x, y, n, vs, vm, vr, vw, vb, 2);
    } else {
      if (kind == 0) i = applyVec(x, y, n, vs, vm, vr, w, b, 0);
      else if (kind == 1) i = applyVec(x, y, n, vs, vm, vr, w, b, 1);
      else i = applyVec(x, y, n, vs, vm, vr, w, b, 2);
    }
  }
  applyScalar(x, y, i, n, s, m, r, w, b, wStep);
}

/**
 * rows_fwd on short rows with one weight per position (S = 0): K < SHORT_ROW, and in SIMD builds
 * 4 ≤ K < SHORT_SIMD. Float64 two-pass statistics (sum64, sumsq64dev: no float32 square to
 * overflow or flush, so nothing to redo) and the normalize, written inline: here the calls of the
 * general path cost more than the arithmetic (a row of 3 elements: ~70-100 ns through the calls,
 * ~20-35 ns inline; of 16 elements 45 ns through the general path's float32 lanes, measured here).
 */
function shortRowsFwd(x: usize, y: usize, K: i32, mode: i32, eps: f64, w: usize, b: usize, meanOut: usize, rstdOut: usize, silu: i32, half: i32, begin: i32, end: i32): void {
  for (let r = begin; r < end; r++) {
    const xr = x + <usize>r * <usize>K * 4;
    const yr = y + <usize>r * <usize>K * 4;
    let mean: f64 = 0, rstd: f64, stat: f64;
    if (mode == 0) {
      mean = sum64(xr, K) / <f64>K;
      rstd = 1 / Math.sqrt(sumsq64dev(xr, K, mean) / <f64>K + eps);
      stat = rstd;
    } else {
      const q = sumsq64dev(xr, K, 0);
      if (mode == 2) {
        stat = Math.sqrt(q);
        rstd = 1 / Math.max(stat, eps);
      } else {
        rstd = 1 / Math.sqrt(q / <f64>K + eps);
        stat = rstd;
      }
    }
    if (meanOut) st(meanOut, r, <f32>mean);
    st(rstdOut, r, <f32>stat);
    const sm = <f32>mean, mm = <f32>(mean - <f64>sm), rr = <f32>rstd;
    let i = 0;
    if (ASC_FEATURE_SIMD) {
      const vs = f32x4.splat(sm), vm = f32x4.splat(mm), vr = f32x4.splat(rr);
      if (mode == 0) for (; i + 4 <= K; i += 4) apply4(at(xr, i), at(yr, i), at(w, i), at(b, i), vs, vm, vr, 0);
      else for (; i + 4 <= K; i += 4) apply4(at(xr, i), at(yr, i), at(w, i), at(b, i), vs, vm, vr, 2);
    }
    applyScalar(xr, yr, i, K, sm, mm, rr, w, b, 1);
    if (silu) siluRun(yr, K);
    if (half) roundHalfRun(yr, K);
  }
}

/**
 * Row r's normalize, y = ((x − s) − m)·r · w + b over K elements (w and b per element), in the
 * loops that sum row r + 1 at xn (rowBlocks with fuse): rSum and rM2 become row r + 1's
 * statistics, bit for bit what rowStats(xn, K, mode) gives (mode 0 moments, 1 Σx²; K ≥ SHORT_ROW).
 * The next row streams in from memory while this one, in cache, is normalized and written.
 */
function applyAhead(xn: usize, x: usize, y: usize, K: i32, mode: i32, s: f32, m: f32, r: f32, w: usize, b: usize): void {
  const kind = reinterpret<u32>(m) != 0 ? 0 : reinterpret<u32>(s) != 0 ? 1 : 2;
  if (mode == 1) {
    if (kind == 0) rowBlocks(xn, K, 1, 1, x, y, w, b, s, m, r, 0);
    else if (kind == 1) rowBlocks(xn, K, 1, 1, x, y, w, b, s, m, r, 1);
    else rowBlocks(xn, K, 1, 1, x, y, w, b, s, m, r, 2);
  } else {
    if (kind == 0) rowBlocks(xn, K, 0, 1, x, y, w, b, s, m, r, 0);
    else if (kind == 1) rowBlocks(xn, K, 0, 1, x, y, w, b, s, m, r, 1);
    else rowBlocks(xn, K, 0, 1, x, y, w, b, s, m, r, 2);
  }
}

/**
 * Fused row forward (layer, RMS, group and instance norm in NCHW; l2Normalize along rows):
 * statistics of each row of K elements, then its normalized values while the row is in cache.
 * p: 0 x, 1 y, 2 K, 3 mode (0 mean/var, 1 RMS, 2 L2: y = x·(1/max(‖x‖, eps)) and the rstd
 * output holds ‖x‖; the host takes this mode only for K > 0 and eps ≥ 2^-64), 4 eps, 5 w, 6 b (per element when 7 is 0),
 * 7 S (> 0: w/b per channel run of S elements), 8 G, 9 Cg (row r = (n, g): its runs are channels
 * g·Cg + j), 10 silu, 11 mean out (0: none), 12 rstd out, 13 half (1: y rounded to binary16
 * values, row by row while in cache, as round_half would after the kernel).
 */
export function rows_fwd(p: usize, begin: i32, end: i32): void {
  const x = pp(p, 0), y = pp(p, 1), K = pi(p, 2), mode = pi(p, 3), eps = pf(p, 4);
  const w = pp(p, 5), b = pp(p, 6), S = pi(p, 7), G = pi(p, 8), Cg = pi(p, 9), silu = pi(p, 10);
  const meanOut = pp(p, 11), rstdOut = pp(p, 12), half = pi(p, 13);
  if (S == 0 && K > 0 && (K < SHORT_ROW || (ASC_FEATURE_SIMD && K >= 4 && K < SHORT_SIMD))) {
    shortRowsFwd(x, y, K, mode, eps, w, b, meanOut, rstdOut, silu, half, begin, end);
    return;
  }
  // SIMD builds, rows of one weight per element: row r + 1 is summed in row r's normalize loop
  // (applyAhead). The first row of a range is summed alone, so a row's bits never depend on the split.
  const pipe = ASC_FEATURE_SIMD && S == 0 && K >= SHORT_ROW;
  const smode = mode == 2 ? 1 : mode;
  let ahead = false;
  for (let r = begin; r < end; r++) {
    const xr = x + <usize>r * <usize>K * 4;
    const yr = y + <usize>r * <usize>K * 4;
    let mean: f64 = 0, rstd: f64, stat: f64 = 0;
    if (K == 0) {
      rstd = NaN;
    } else {
      // (Row r's statistics came with row r − 1's normalize when `ahead`.)
      if (!ahead) rowStats(xr, K, smode);
      if (mode == 2) {
        // f64.max: a NaN norm gives a NaN factor, as the reference.
        const norm = Math.sqrt(rSum);
        stat = norm;
        rstd = 1 / Math.max(norm, eps);
      } else if (mode == 1) {
        rstd = 1 / Math.sqrt(rSum / <f64>K + eps);
      } else {
        mean = rSum / <f64>K;
        rstd = 1 / Math.sqrt(rM2 / <f64>K + eps);
      }
    }
    if (meanOut) st(meanOut, r, <f32>mean);
    st(rstdOut, r, <f32>(mode == 2 ? stat : rstd));
    const s = <f32>mean;
    const m = <f32>(mean - <f64>s);
    ahead = pipe && r + 1 < end;
    if (ahead) {
      applyAhead(xr + <usize>K * 4, xr, yr, K, smode, s, m, <f32>rstd, w, b);
    } else if (S == 0) {
      applyRun(xr, yr, K, s, m, <f32>rstd, w, b, 1);
    } else {
      const c0 = (r % G) * Cg;
      for (let j = 0; j < Cg; j++) applyRun(at(xr, j * S), at(yr, j * S), S, s, m, <f32>rstd, at(w, c0 + j), at(b, c0 + j), 0);
    }
    if (silu) siluRun(yr, K);
    if (half) roundHalfRun(yr, K);
  }
}

/**
 * Statistics of rows of K elements (batch-norm planes, weight-norm slices).
 * p: 0 x, 1 K, 2 mode (0: Σx and Σ(x − mean)²; 1: Σx² and 0), 3 out (float64 pairs per row).
 */
export function rows_stats(p: usize, begin: i32, end: i32): void {
  const x = pp(p, 0), K = pi(p, 1), mode = pi(p, 2), out = pp(p, 3);
  for (let r = begin; r < end; r++) {
    rowStats(x + <usize>r * <usize>K * 4, K, mode);
    store<f64>(out + (<usize>r << 4), rSum);
    store<f64>(out + (<usize>r << 4), rM2, 8);
  }
}

/**
 * Statistics of columns: x as [O, M, C], one result per (o, c) over the M rows, in blocks of
 * ROW_BLOCK rows (two-pass inside a block, Chan's merge across blocks). Task t: o = t / chunks,
 * columns 16·(t mod chunks) .. +16.
 * p: 0 x, 1 O, 2 M, 3 C, 4 mode (0 moments, 1 Σx²), 5 out (float64 triples n, Σ, M2 per (o, c)).
 */
export function cols_stats(p: usize, begin: i32, end: i32): void {
  const x = pp(p, 0), M = pi(p, 2), C = pi(p, 3), mode = pi(p, 4), out = pp(p, 5);
  const chunks = (C + 15) >> 4;
  for (let t = begin; t < end; t++) {
    const o = t / chunks;
    const c0 = (t % chunks) << 4;
    const c1 = min(C, c0 + 16);
    for (let c = c0; c < c1; c++) {
      const a = out + (<usize>(o * C + c)) * 24;
      store<f64>(a, 0);
      store<f64>(a, 0, 8);
      store<f64>(a, 0, 16);
    }
    const xo = x + <usize>o * <usize>M * <usize>C * 4;
    for (let m0 = 0; m0 < M; m0 += ROW_BLOCK) {
      const n = min(ROW_BLOCK, M - m0);
      const xb = xo + <usize>m0 * <usize>C * 4;
      let c = c0;
      if (ASC_FEATURE_SIMD) {
        if (c + 16 <= c1) {
          colBlock16(at(xb, c), C, n, mode, out + (<usize>(o * C + c)) * 24);
          c += 16;
        }
        for (; c + 4 <= c1; c += 4) colBlock4(at(xb, c), C, n, mode, out + (<usize>(o * C + c)) * 24);
      }
      for (; c < c1; c++) colBlock1(at(xb, c), C, n, mode, out + (<usize>(o * C + c)) * 24);
    }
  }
}

function colBlock1(x: usize, C: i32, n: i32, mode: i32, acc: usize): void {
  if (mode == 1) {
    let q: f64 = 0;
    for (let i = 0; i < n; i++) {
      const v = <f64>ld(x, i * C);
      q += v * v;
    }
    store<f64>(acc, load<f64>(acc) + <f64>n);
    store<f64>(acc, load<f64>(acc, 8) + q, 8);
    return;
  }
  moments64(x, n, C);
  chanInto(acc, <f64>n, rSum, rM2);
}

/** Four adjacent columns of one block of n rows (row stride C elements), float32 lanes. */
function colBlock4(x: usize, C: i32, n: i32, mode: i32, acc: usize): void {
  const stride = <usize>C * 4;
  if (mode == 1) {
    let a = f32x4.splat(0);
    for (let i = 0; i < n; i++) {
      const v = v128.load(x + <usize>i * stride);
      a = f32x4.add(a, f32x4.mul(v, v));
    }
    colSq4(x, C, n, acc, a);
    return;
  }
  let s = f32x4.splat(0);
  for (let i = 0; i < n; i++) s = f32x4.add(s, v128.load(x + <usize>i * stride));
  const sh = f32x4.div(s, f32x4.splat(<f32>n));
  let d = f32x4.splat(0), q = f32x4.splat(0);
  for (let i = 0; i < n; i++) {
    const e = f32x4.sub(v128.load(x + <usize>i * stride), sh);
    d = f32x4.add(d, e);
    q = f32x4.add(q, f32x4.mul(e, e));
  }
  colMoments4(x, C, n, acc, s, sh, d, q);
}

/**
 * colBlock4 for sixteen adjacent columns: four vectors of lanes side by side (each lane the same
 * operations in the same order as colBlock4's), so the sums' latency chains run in parallel.
 */
function colBlock16(x: usize, C: i32, n: i32, mode: i32, acc: usize): void {
  const stride = <usize>C * 4;
  if (mode == 1) {
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    for (let i = 0; i < n; i++) {
      const r = x + <usize>i * stride;
      const v0 = v128.load(r), v1 = v128.load(r, 16), v2 = v128.load(r, 32), v3 = v128.load(r, 48);
      a0 = f32x4.add(a0, f32x4.mul(v0, v0));
      a1 = f32x4.add(a1, f32x4.mul(v1, v1));
      a2 = f32x4.add(a2, f32x4.mul(v2, v2));
      a3 = f32x4.add(a3, f32x4.mul(v3, v3));
    }
    colSq4(x, C, n, acc, a0);
    colSq4(at(x, 4), C, n, acc + 96, a1);
    colSq4(at(x, 8), C, n, acc + 192, a2);
    colSq4(at(x, 12), C, n, acc + 288, a3);
    return;
  }
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  for (let i = 0; i < n; i++) {
    const r = x + <usize>i * stride;
    s0 = f32x4.add(s0, v128.load(r));
    s1 = f32x4.add(s1, v128.load(r, 16));
    s2 = f32x4.add(s2, v128.load(r, 32));
    s3 = f32x4.add(s3, v128.load(r, 48));
  }
  const fn = f32x4.splat(<f32>n);
  const h0 = f32x4.div(s0, fn), h1 = f32x4.div(s1, fn), h2 = f32x4.div(s2, fn), h3 = f32x4.div(s3, fn);
  let d0 = f32x4.splat(0), d1 = f32x4.splat(0), d2 = f32x4.splat(0), d3 = f32x4.splat(0);
  let q0 = f32x4.splat(0), q1 = f32x4.splat(0), q2 = f32x4.splat(0), q3 = f32x4.splat(0);
  for (let i = 0; i < n; i++) {
    const r = x + <usize>i * stride;
    const e0 = f32x4.sub(v128.load(r), h0);
    const e1 = f32x4.sub(v128.load(r, 16), h1);
    const e2 = f32x4.sub(v128.load(r, 32), h2);
    const e3 = f32x4.sub(v128.load(r, 48), h3);
    d0 = f32x4.add(d0, e0);
    d1 = f32x4.add(d1, e1);
    d2 = f32x4.add(d2, e2);
    d3 = f32x4.add(d3, e3);
    q0 = f32x4.add(q0, f32x4.mul(e0, e0));
    q1 = f32x4.add(q1, f32x4.mul(e1, e1));
    q2 = f32x4.add(q2, f32x4.mul(e2, e2));
    q3 = f32x4.add(q3, f32x4.mul(e3, e3));
  }
  colMoments4(x, C, n, acc, s0, h0, d0, q0);
  colMoments4(at(x, 4), C, n, acc + 96, s1, h1, d1, q1);
  colMoments4(at(x, 8), C, n, acc + 192, s2, h2, d2, q2);
  colMoments4(at(x, 12), C, n, acc + 288, s3, h3, d3, q3);
}

/** Adds four columns' float32-lane Σx² (a) to their accumulators, each lane again in float64 where it left float32's range. */
function colSq4(x: usize, C: i32, n: i32, acc: usize, a: v128): void {
  for (let l = 0; l < 4; l++) {
    let q = <f64>f32x4.extract_lane(a, 0);
    if (l == 1) q = <f64>f32x4.extract_lane(a, 1);
    if (l == 2) q = <f64>f32x4.extract_lane(a, 2);
    if (l == 3) q = <f64>f32x4.extract_lane(a, 3);
    if (redo(q)) {
      q = 0;
      for (let i = 0; i < n; i++) {
        const v = <f64>ld(at(x, l), i * C);
        q += v * v;
      }
    }
    const e = acc + <usize>l * 24;
    store<f64>(e, load<f64>(e) + <f64>n);
    store<f64>(e, load<f64>(e, 8) + q, 8);
  }
}

/** Merges four columns' block moments (float32 lanes: Σx, shift, Σ(x − shift), Σ(x − shift)²) into their accumulators; float64 again per lane where needed. */
function colMoments4(x: usize, C: i32, n: i32, acc: usize, s: v128, sh: v128, d: v128, q: v128): void {
  for (let l = 0; l < 4; l++) {
    let sl: f64, shl: f64, dl: f64, ql: f64;
    if (l == 0) { sl = f32x4.extract_lane(s, 0); shl = f32x4.extract_lane(sh, 0); dl = f32x4.extract_lane(d, 0); ql = f32x4.extract_lane(q, 0); }
    else if (l == 1) { sl = f32x4.extract_lane(s, 1); shl = f32x4.extract_lane(sh, 1); dl = f32x4.extract_lane(d, 1); ql = f32x4.extract_lane(q, 1); }
    else if (l == 2) { sl = f32x4.extract_lane(s, 2); shl = f32x4.extract_lane(sh, 2); dl = f32x4.extract_lane(d, 2); ql = f32x4.extract_lane(q, 2); }
    else { sl = f32x4.extract_lane(s, 3); shl = f32x4.extract_lane(sh, 3); dl = f32x4.extract_lane(d, 3); ql = f32x4.extract_lane(q, 3); }
    let bs: f64, bq: f64;
    if (!(Math.abs(sl) < Infinity) || redo(ql)) {
      moments64(at(x, l), n, C);
      bs = rSum;
      bq = rM2;
    } else {
      bs = <f64>n * shl + dl;
      bq = Math.max(ql - (dl * dl) / <f64>n, 0);
    }
    chanInto(acc + <usize>l * 24, <f64>n, bs, bq);
  }
}

/**
 * Normalize planes (runs of S elements) with per-plane coefficients. p: 0 x, 1 y, 2 S, 3 tab
 * (float32 arrays s, m, r, w, b, each of P), 4 P, 5 silu.
 */
export function apply_planes(p: usize, begin: i32, end: i32): void {
  const x = pp(p, 0), y = pp(p, 1), S = pi(p, 2), tab = pp(p, 3), P = pi(p, 4), silu = pi(p, 5);
  for (let q = begin; q < end; q++) {
    const xq = x + <usize>q * <usize>S * 4, yq = y + <usize>q * <usize>S * 4;
    applyRun(xq, yq, S, ld(tab, q), ld(tab, P + q), ld(tab, 2 * P + q), at(tab, 3 * P + q), at(tab, 4 * P + q), 0);
    if (silu) siluRun(yq, S);
  }
}

/**
 * Normalize rows of C (channels last) with per-(o, c) coefficients. Task = row t of O·M; o = t / M.
 * p: 0 x, 1 y, 2 M, 3 C, 4 tab (float32 arrays s, m, r, w, b, each O·C), 5 O, 6 silu.
 */
export function apply_cols(p: usize, begin: i32, end: i32): void {
  const x = pp(p, 0), y = pp(p, 1), M = pi(p, 2), C = pi(p, 3), tab = pp(p, 4), O = pi(p, 5), silu = pi(p, 6);
  const P = O * C;
  let t = begin;
  while (t < end) {
    // The rows sharing o (one set of coefficients). Narrow rows (C ≤ 64: four rows in 1 KiB) four
    // at a time, each quad of coefficients loaded once for the four (the loop is bound by its
    // loads: 1.5-3x faster at C 16-64, measured here); wider rows one at a time (four rows' streams
    // measured 0.66-0.89x at C 128-512). The four rows' quads are written out: a helper per quad
    // or a loop over the rows measured 0.8-0.9x at C 16-64 (more address arithmetic per load).
    const o = t / M;
    const t1 = min(end, (o + 1) * M);
    const oc = o * C;
    const ts = at(tab, oc), tm = at(tab, P + oc), tr = at(tab, 2 * P + oc), tw = at(tab, 3 * P + oc), tb = at(tab, 4 * P + oc);
    if (ASC_FEATURE_SIMD && C <= 64) {
      for (; t + 4 <= t1; t += 4) {
        const xr = x + <usize>t * <usize>C * 4, yr = y + <usize>t * <usize>C * 4;
        const row = <usize>C * 4;
        let c = 0;
        for (; c + 4 <= C; c += 4) {
          const vs = v128.load(at(ts, c)), vm = v128.load(at(tm, c)), vr = v128.load(at(tr, c)), vw = v128.load(at(tw, c)), vb = v128.load(at(tb, c));
          const px = at(xr, c), py = at(yr, c);
          v128.store(py, f32x4.add(f32x4.mul(f32x4.mul(f32x4.sub(f32x4.sub(v128.load(px), vs), vm), vr), vw), vb));
          v128.store(py + row, f32x4.add(f32x4.mul(f32x4.mul(f32x4.sub(f32x4.sub(v128.load(px + row), vs), vm), vr), vw), vb));
          v128.store(py + 2 * row, f32x4.add(f32x4.mul(f32x4.mul(f32x4.sub(f32x4.sub(v128.load(px + 2 * row), vs), vm), vr), vw), vb));
          v128.store(py + 3 * row, f32x4.add(f32x4.mul(f32x4.mul(f32x4.sub(f32x4.sub(v128.load(px + 3 * row), vs), vm), vr), vw), vb));
        }
        for (let k: usize = 0; k < 4; k++) {
          applyColsScalar(xr + k * row, yr + k * row, c, C, ts, tm, tr, tw, tb);
          if (silu) siluRun(yr + k * row, C);
        }
      }
    }
    for (; t < t1; t++) {
      const xr = x + <usize>t * <usize>C * 4, yr = y + <usize>t * <usize>C * 4;
      let c = 0;
      if (ASC_FEATURE_SIMD) {
        for (; c + 4 <= C; c += 4) {
          const v = f32x4.mul(f32x4.sub(f32x4.sub(v128.load(at(xr, c)), v128.load(at(ts, c))), v128.load(at(tm, c))), v128.load(at(tr, c)));
          v128.store(at(yr, c), f32x4.add(f32x4.mul(v, v128.load(at(tw, c))), v128.load(at(tb, c))));
        }
      }
      applyColsScalar(xr, yr, c, C, ts, tm, tr, tw, tb);
      if (silu) siluRun(yr, C);
    }
  }
}

/** apply_cols' scalar loop over columns [c, C) of one row. */
// @ts-ignore: decorator
@inline function applyColsScalar(xr: usize, yr: usize, c: i32, C: i32, ts: usize, tm: usize, tr: usize, tw: usize, tb: usize): void {
  for (; c < C; c++) {
    const v = ((ld(xr, c) - ld(ts, c)) - ld(tm, c)) * ld(tr, c);
    st(yr, c, v * ld(tw, c) + ld(tb, c));
  }
}

/**
 * Normalize rows of K with per-row statistics and a per-element affine (the norm's output again
 * in a modulated backward). p: 0 x, 1 y, 2 K, 3 tab (float32 arrays s, m, r, each of R), 4 R, 5 w, 6 b.
 */
export function apply_rows(p: usize, begin: i32, end: i32): void {
  const x = pp(p, 0), y = pp(p, 1), K = pi(p, 2), tab = pp(p, 3), R = pi(p, 4), w = pp(p, 5), b = pp(p, 6);
  for (let r = begin; r < end; r++) {
    const off = <usize>r * <usize>K * 4;
    applyRun(x + off, y + off, K, ld(tab, r), ld(tab, R + r), ld(tab, 2 * R + r), w, b, 1);
  }
}

/**
 * l2Normalize's per-lane factors, from the lanes' sums of squares (float64, lane l's at slot
 * l·stride + offset: cols_stats' triples or rows_stats' pairs): ‖x‖ = √Σx² into the norms, and
 * y's factor 1/max(‖x‖, eps) into rows 2 and 3 of apply_planes / apply_cols' table (s, m, r, w, b
 * of L each; the caller zeroes the rest), as r, or past 2^64 (a norm below 2^-64) as the two
 * finite factors 2^64 and 2^-64/max(‖x‖, eps) (every |x| of the lane is at most its norm, so
 * x·2^64 stays finite). A NaN norm gives NaN factors (f64.max), as the reference.
 * p: 0 sums, 1 stride, 2 offset, 3 L, 4 eps, 5 norms out (float32), 6 table. Task: CHUNK lanes.
 */
export function lp_factors(p: usize, begin: i32, end: i32): void {
  const sums = pp(p, 0), stride = pi(p, 1), offset = pi(p, 2), L = pi(p, 3), eps = pf(p, 4);
  const norms = pp(p, 5), tab = pp(p, 6);
  const l1 = min(L, end * CHUNK);
  for (let l = begin * CHUNK; l < l1; l++) {
    const n = Math.sqrt(load<f64>(sums + ((<usize>(l * stride + offset)) << 3)));
    st(norms, l, <f32>n);
    const inv = 1 / Math.max(n, eps);
    const split = inv > 18446744073709551616.0;
    st(tab, 2 * L + l, split ? <f32>18446744073709551616.0 : <f32>inv);
    st(tab, 3 * L + l, split ? <f32>(inv * 5.421010862427522e-20) : <f32>1);
  }
}
