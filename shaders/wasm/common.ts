// AssemblyScript: helpers shared by every kernel of the WebAssembly backend.
//
// How work is split: every exported kernel is `name(p, begin, end)`. `p` points to its
// parameters, one float64 slot each (pointers, counts and scalars alike, written by the host in
// src/wasm/), and [begin, end) is a range of its tasks (rows, planes, column chunks or blocks of
// elements). A task's result never depends on which range it is run in, so any split of the
// tasks over threads gives the same bits.
//
// Numerics (docs/NUMERICS.md; WebAssembly evaluates every operation as written, no fast math):
// sums run in float32 lanes over blocks of at most BLOCK elements (ROW_BLOCK rows for columns),
// each block's lane sums are added in float64, and blocks merge in float64 (Chan's formula for
// moments). Moments are two-pass inside each block: the block mean s rounded to float32, then
// sums of d = x - s and d². A block whose float32 sums overflow, or whose sum of squares falls
// below 2^-100 (squares flushed or subnormal), is summed again in float64.

export const BLOCK: i32 = 2048;
export const ROW_BLOCK: i32 = 256;
export const TINY: f64 = 7.888609052210118e-31; // 2^-100
/** Rows shorter than this are summed in float64 by scalar loops (rowStats, rows_fwd, rows_bwd). */
export const SHORT_ROW: i32 = 16;
/**
 * SIMD builds: rows_fwd takes rows of 4 ≤ K < SHORT_SIMD elements (one weight per element) by
 * shortRowsFwd too, its float64 sums in pairs of lanes (sum64, sumsq64dev): float64 sums as the
 * scalar loops' (no float32 square to overflow or flush; the order of the additions differs, so
 * the builds agree to float32 rounding, not bit for bit), a vector per quad, and none of the
 * general path's per-row calls (which cost 45 ns of a 16-element row here). From 64 up the
 * general path's float32 lanes win.
 */
export const SHORT_SIMD: i32 = 64;

/** Parameter slot i of the block at p, as a float64, an int or a pointer. */
// @ts-ignore: decorator
@inline export function pf(p: usize, i: i32): f64 {
  return load<f64>(p + (<usize>i << 3));
}
// @ts-ignore: decorator
@inline export function pi(p: usize, i: i32): i32 {
  return <i32>load<f64>(p + (<usize>i << 3));
}
// @ts-ignore: decorator
@inline export function pp(p: usize, i: i32): usize {
  return <usize>load<f64>(p + (<usize>i << 3));
}
// @ts-ignore: decorator
@inline export function at(base: usize, i: i32): usize {
  return base + (<usize>i << 2);
}
// @ts-ignore: decorator
@inline export function ld(base: usize, i: i32): f32 {
  return load<f32>(base + (<usize>i << 2));
}
// @ts-ignore: decorator
@inline export function st(base: usize, i: i32, v: f32): void {
  store<f32>(base + (<usize>i << 2), v);
}
// @ts-ignore: decorator
@inline export function hsum(v: v128): f64 {
  return (<f64>f32x4.extract_lane(v, 0) + <f64>f32x4.extract_lane(v, 1)) + (<f64>f32x4.extract_lane(v, 2) + <f64>f32x4.extract_lane(v, 3));
}

/** Whether a float32-lane sum of squares must be redone in float64. */
// @ts-ignore: decorator
@inline export function redo(sq: f64): bool {
  return !(sq < Infinity) || sq < TINY;
}

// Results of the block helpers (each thread has its own instance, so its own globals).
export let rSum: f64 = 0;
export let rM2: f64 = 0;
export let rA: f64 = 0;
export let rB: f64 = 0;
export let rC: f64 = 0;

/** Σ x over n contiguous float32 (float32 lanes, float64 total). */
export function sumRun(x: usize, n: i32): f64 {
  let i = 0;
  let t: f64 = 0;
  if (ASC_FEATURE_SIMD) {
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    for (; i + 16 <= n; i += 16) {
      const q = at(x, i);
      a0 = f32x4.add(a0, v128.load(q));
      a1 = f32x4.add(a1, v128.load(q, 16));
      a2 = f32x4.add(a2, v128.load(q, 32));
      a3 = f32x4.add(a3, v128.load(q, 48));
    }
    for (; i + 4 <= n; i += 4) a0 = f32x4.add(a0, v128.load(at(x, i)));
    t = (hsum(a0) + hsum(a1)) + (hsum(a2) + hsum(a3));
  } else {
    let a0: f32 = 0, a1: f32 = 0, a2: f32 = 0, a3: f32 = 0;
    for (; i + 4 <= n; i += 4) {
      a0 += ld(x, i);
      a1 += ld(x, i + 1);
      a2 += ld(x, i + 2);
      a3 += ld(x, i + 3);
    }
    t = (<f64>a0 + <f64>a1) + (<f64>a2 + <f64>a3);
  }
  for (; i < n; i++) t += <f64>ld(x, i);
  return t;
}

/** Σx² of n contiguous float32, in float64 (exact for any float32: no overflow, no flushed squares). */
// @ts-ignore: decorator
@inline export function sumsq64(x: usize, n: i32): f64 {
  let t: f64 = 0;
  for (let i = 0; i < n; i++) {
    const v = <f64>ld(x, i);
    t += v * v;
  }
  return t;
}

/** Lanes 0-1 (half 0) or 2-3 (half 1) of a float32 quad as float64. */
// @ts-ignore: decorator
@inline export function wide(v: v128, half: i32): v128 {
  return f64x2.promote_low_f32x4(half ? f32x4.shuffle(v, v, 2, 3, 2, 3) : v);
}

/** Two float64 pairs rounded to float32, as one quad (lo's lanes first). */
// @ts-ignore: decorator
@inline export function narrow(lo: v128, hi: v128): v128 {
  return f32x4.shuffle(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
}

/**
 * Σ x over n contiguous float32, in float64 (exact up to float64 rounding, for any float32). SIMD
 * builds: four float64 accumulators by i mod 8 in pairs of lanes, then the tail in order.
 */
// @ts-ignore: decorator
@inline export function sum64(x: usize, n: i32): f64 {
  let i = 0;
  let t: f64 = 0;
  if (ASC_FEATURE_SIMD && n >= 4) {
    let a0 = f64x2.splat(0), a1 = f64x2.splat(0), a2 = f64x2.splat(0), a3 = f64x2.splat(0);
    for (; i + 8 <= n; i += 8) {
      const v0 = v128.load(at(x, i)), v1 = v128.load(at(x, i), 16);
      a0 = f64x2.add(a0, wide(v0, 0));
      a1 = f64x2.add(a1, wide(v0, 1));
      a2 = f64x2.add(a2, wide(v1, 0));
      a3 = f64x2.add(a3, wide(v1, 1));
    }
    if (i + 4 <= n) {
      const v0 = v128.load(at(x, i));
      a0 = f64x2.add(a0, wide(v0, 0));
      a1 = f64x2.add(a1, wide(v0, 1));
      i += 4;
    }
    const a = f64x2.add(f64x2.add(a0, a2), f64x2.add(a1, a3));
    t = f64x2.extract_lane(a, 0) + f64x2.extract_lane(a, 1);
  }
  for (; i < n; i++) t += <f64>ld(x, i);
  return t;
}

/** Σ (x − c)² over n contiguous float32, in float64 (c = 0: Σx²); the lanes as sum64's. */
// @ts-ignore: decorator
@inline export function sumsq64dev(x: usize, n: i32, c: f64): f64 {
  let i = 0;
  let t: f64 = 0;
  if (ASC_FEATURE_SIMD && n >= 4) {
    const vc = f64x2.splat(c);
    let a0 = f64x2.splat(0), a1 = f64x2.splat(0), a2 = f64x2.splat(0), a3 = f64x2.splat(0);
    for (; i + 8 <= n; i += 8) {
      const v0 = v128.load(at(x, i)), v1 = v128.load(at(x, i), 16);
      const d0 = f64x2.sub(wide(v0, 0), vc), d1 = f64x2.sub(wide(v0, 1), vc);
      const d2 = f64x2.sub(wide(v1, 0), vc), d3 = f64x2.sub(wide(v1, 1), vc);
      a0 = f64x2.add(a0, f64x2.mul(d0, d0));
      a1 = f64x2.add(a1, f64x2.mul(d1, d1));
      a2 = f64x2.add(a2, f64x2.mul(d2, d2));
      a3 = f64x2.add(a3, f64x2.mul(d3, d3));
    }
    if (i + 4 <= n) {
      const v0 = v128.load(at(x, i));
      const d0 = f64x2.sub(wide(v0, 0), vc), d1 = f64x2.sub(wide(v0, 1), vc);
      a0 = f64x2.add(a0, f64x2.mul(d0, d0));
      a1 = f64x2.add(a1, f64x2.mul(d1, d1));
      i += 4;
    }
    const a = f64x2.add(f64x2.add(a0, a2), f64x2.add(a1, a3));
    t = f64x2.extract_lane(a, 0) + f64x2.extract_lane(a, 1);
  }
  for (; i < n; i++) {
    const d = <f64>ld(x, i) - c;
    t += d * d;
  }
  return t;
}

/** Float64 two-pass moments of n contiguous float32: rSum = Σx, rM2 = Σ(x − mean)². */
export function moments64(x: usize, n: i32, stride: i32): void {
  let s: f64 = 0;
  for (let i = 0; i < n; i++) s += <f64>ld(x, i * stride);
  const mean = s / <f64>n;
  let q: f64 = 0;
  for (let i = 0; i < n; i++) {
    const d = <f64>ld(x, i * stride) - mean;
    q += d * d;
  }
  rSum = s;
  rM2 = q;
}

/** ((v − s) − m)·r; kind 1: m is +0, kind 2: s and m are +0, whose subtractions change no bit and are left out. */
// @ts-ignore: decorator
@inline export function nrm(v: v128, vs: v128, vm: v128, vr: v128, kind: i32): v128 {
  if (kind == 2) return f32x4.mul(v, vr);
  if (kind == 1) return f32x4.mul(f32x4.sub(v, vs), vr);
  return f32x4.mul(f32x4.sub(f32x4.sub(v, vs), vm), vr);
}

/** y = nrm(x)·w + b on the 16 elements at x, y, w, b. */
// @ts-ignore: decorator
@inline export function apply16(x: usize, y: usize, w: usize, b: usize, vs: v128, vm: v128, vr: v128, kind: i32): void {
  const t0 = nrm(v128.load(x), vs, vm, vr, kind);
  const t1 = nrm(v128.load(x, 16), vs, vm, vr, kind);
  const t2 = nrm(v128.load(x, 32), vs, vm, vr, kind);
  const t3 = nrm(v128.load(x, 48), vs, vm, vr, kind);
  v128.store(y, f32x4.add(f32x4.mul(t0, v128.load(w)), v128.load(b)));
  v128.store(y, f32x4.add(f32x4.mul(t1, v128.load(w, 16)), v128.load(b, 16)), 16);
  v128.store(y, f32x4.add(f32x4.mul(t2, v128.load(w, 32)), v128.load(b, 32)), 32);
  v128.store(y, f32x4.add(f32x4.mul(t3, v128.load(w, 48)), v128.load(b, 48)), 48);
}

/** y = nrm(x)·w + b on the 4 elements at x, y, w, b. */
// @ts-ignore: decorator
@inline export function apply4(x: usize, y: usize, w: usize, b: usize, vs: v128, vm: v128, vr: v128, kind: i32): void {
  v128.store(y, f32x4.add(f32x4.mul(nrm(v128.load(x), vs, vm, vr, kind), v128.load(w)), v128.load(b)));
}

/** The scalar form over elements [i, n): y = ((x − s) − m)·r · w + b, w and b per element (wStep 1) or one value (wStep 0). */
// @ts-ignore: decorator
@inline export function applyScalar(x: usize, y: usize, i: i32, n: i32, s: f32, m: f32, r: f32, w: usize, b: usize, wStep: i32): void {
  for (; i < n; i++) {
    const t = ((ld(x, i) - s) - m) * r;
    st(y, i, t * ld(w, i * wStep) + ld(b, i * wStep));
  }
}

/**
 * Statistics of one block of n ≤ BLOCK contiguous float32 at x, into rSum and rM2.
 *
 * mode 0, moments (rSum = Σx, rM2 = Σ(x − mean)²): first one pass shifted by the block's first
 * element x0, Σd and Σd² with d = x − x0, kept only when the shift is within two standard
 * deviations of the block mean ((Σd)²/n ≤ 4·M2: at most 2 bits lost to cancellation); otherwise
 * (an outlier first, a constant-ish block, sums past float32) twoPassMoments.
 * mode 1, rSum = Σx² (float32 lanes; float64 again past float32 or below 2^-100).
 *
 * fuse 1 (SIMD builds only): in the same loop, y = nrm(xa)·w + b over another n elements (w and b
 * per element; s, m, r the float32 mean pair and rstd; kind as nrm's). rows_fwd normalizes row r
 * so while the statistics of row r + 1 stream in: the two passes overlap, and the statistics are
 * these very operations in this order, so a row's bits do not depend on which path summed it.
 */
// @ts-ignore: decorator
@inline export function blockStats(x: usize, n: i32, mode: i32, fuse: i32, xa: usize, y: usize, w: usize, b: usize, s: f32, m: f32, r: f32, kind: i32): void {
  let i = 0; // elements of the fused normalize done by the vector loop
  if (mode == 1) {
    let t: f64 = 0;
    if (ASC_FEATURE_SIMD) {
      const vs = f32x4.splat(s), vm = f32x4.splat(m), vr = f32x4.splat(r);
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0);
      for (; i + 16 <= n; i += 16) {
        const q = at(x, i);
        const v0 = v128.load(q), v1 = v128.load(q, 16), v2 = v128.load(q, 32), v3 = v128.load(q, 48);
        a0 = f32x4.add(a0, f32x4.mul(v0, v0));
        a1 = f32x4.add(a1, f32x4.mul(v1, v1));
        a0 = f32x4.add(a0, f32x4.mul(v2, v2));
        a1 = f32x4.add(a1, f32x4.mul(v3, v3));
        if (fuse) apply16(at(xa, i), at(y, i), at(w, i), at(b, i), vs, vm, vr, kind);
      }
      let j = i;
      if (j + 8 <= n) {
        const q = at(x, j);
        const v0 = v128.load(q), v1 = v128.load(q, 16);
        a0 = f32x4.add(a0, f32x4.mul(v0, v0));
        a1 = f32x4.add(a1, f32x4.mul(v1, v1));
        j += 8;
      }
      if (j + 4 <= n) {
        const v0 = v128.load(at(x, j));
        a0 = f32x4.add(a0, f32x4.mul(v0, v0));
        j += 4;
      }
      t = hsum(a0) + hsum(a1);
      for (; j < n; j++) {
        const v = <f64>ld(x, j);
        t += v * v;
      }
    } else {
      let a0: f32 = 0, a1: f32 = 0;
      let j = 0;
      for (; j + 2 <= n; j += 2) {
        const v0 = ld(x, j), v1 = ld(x, j + 1);
        a0 += v0 * v0;
        a1 += v1 * v1;
      }
      t = <f64>a0 + <f64>a1;
      for (; j < n; j++) {
        const v = <f64>ld(x, j);
        t += v * v;
      }
    }
    if (redo(t)) t = sumsq64(x, n);
    rSum = t;
  } else {
    let kept = false;
    if (ASC_FEATURE_SIMD && n >= 64) {
      const vs = f32x4.splat(s), vm = f32x4.splat(m), vr = f32x4.splat(r);
      const x0 = ld(x, 0);
      const vh = f32x4.splat(x0);
      // Four accumulators, each taking a pair of quads per step (few enough registers that the
      // fused normalize's loop keeps its values in registers on x64).
      let d0 = f32x4.splat(0), d1 = f32x4.splat(0), q0 = f32x4.splat(0), q1 = f32x4.splat(0);
      for (; i + 16 <= n; i += 16) {
        const q = at(x, i);
        const e0 = f32x4.sub(v128.load(q), vh);
        const e1 = f32x4.sub(v128.load(q, 16), vh);
        const e2 = f32x4.sub(v128.load(q, 32), vh);
        const e3 = f32x4.sub(v128.load(q, 48), vh);
        d0 = f32x4.add(d0, f32x4.add(e0, e2));
        d1 = f32x4.add(d1, f32x4.add(e1, e3));
        q0 = f32x4.add(q0, f32x4.add(f32x4.mul(e0, e0), f32x4.mul(e2, e2)));
        q1 = f32x4.add(q1, f32x4.add(f32x4.mul(e1, e1), f32x4.mul(e3, e3)));
        if (fuse) apply16(at(xa, i), at(y, i), at(w, i), at(b, i), vs, vm, vr, kind);
      }
      let sd = hsum(d0) + hsum(d1);
      let sq = hsum(q0) + hsum(q1);
      for (let j = i; j < n; j++) {
        const e = ld(x, j) - x0;
        sd += <f64>e;
        sq += <f64>e * <f64>e;
      }
      const c = (sd * sd) / <f64>n;
      const m2 = sq - c;
      if (Math.abs(sd) < Infinity && !redo(sq) && c <= 4 * m2) {
        rSum = <f64>n * <f64>x0 + sd;
        rM2 = m2;
        kept = true;
      }
    }
    if (!kept) twoPassMoments(x, n);
  }
  if (fuse) {
    if (ASC_FEATURE_SIMD) {
      const vs = f32x4.splat(s), vm = f32x4.splat(m), vr = f32x4.splat(r);
      for (; i + 4 <= n; i += 4) apply4(at(xa, i), at(y, i), at(w, i), at(b, i), vs, vm, vr, kind);
    }
    applyScalar(xa, y, i, n, s, m, r, w, b, 1);
  }
}

/** Moments of one block of n ≤ BLOCK contiguous float32 into rSum = Σx, rM2 = Σ(x − mean)² (blockStats, mode 0). */
export function blockMoments(x: usize, n: i32): void {
  blockStats(x, n, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
}

/** Two-pass moments of one block (shift = the block mean in float32); float64 again past float32 or below 2^-100. */
function twoPassMoments(x: usize, n: i32): void {
  const s = sumRun(x, n);
  if (!(Math.abs(s) < Infinity)) {
    moments64(x, n, 1);
    return;
  }
  const sh = <f32>(s / <f64>n);
  let i = 0;
  let sd: f64 = 0, sq: f64 = 0;
  if (ASC_FEATURE_SIMD) {
    const vs = f32x4.splat(sh);
    let d0 = f32x4.splat(0), d1 = f32x4.splat(0), q0 = f32x4.splat(0), q1 = f32x4.splat(0);
    let d2 = f32x4.splat(0), d3 = f32x4.splat(0), q2 = f32x4.splat(0), q3 = f32x4.splat(0);
    for (; i + 16 <= n; i += 16) {
      const q = at(x, i);
      const e0 = f32x4.sub(v128.load(q), vs);
      const e1 = f32x4.sub(v128.load(q, 16), vs);
      const e2 = f32x4.sub(v128.load(q, 32), vs);
      const e3 = f32x4.sub(v128.load(q, 48), vs);
      d0 = f32x4.add(d0, e0);
      d1 = f32x4.add(d1, e1);
      d2 = f32x4.add(d2, e2);
      d3 = f32x4.add(d3, e3);
      q0 = f32x4.add(q0, f32x4.mul(e0, e0));
      q1 = f32x4.add(q1, f32x4.mul(e1, e1));
      q2 = f32x4.add(q2, f32x4.mul(e2, e2));
      q3 = f32x4.add(q3, f32x4.mul(e3, e3));
    }
    d0 = f32x4.add(d0, d2);
    d1 = f32x4.add(d1, d3);
    q0 = f32x4.add(q0, q2);
    q1 = f32x4.add(q1, q3);
    for (; i + 4 <= n; i += 4) {
      const e0 = f32x4.sub(v128.load(at(x, i)), vs);
      d0 = f32x4.add(d0, e0);
      q0 = f32x4.add(q0, f32x4.mul(e0, e0));
    }
    sd = hsum(d0) + hsum(d1);
    sq = hsum(q0) + hsum(q1);
  } else {
    let d0: f32 = 0, d1: f32 = 0, q0: f32 = 0, q1: f32 = 0;
    for (; i + 2 <= n; i += 2) {
      const e0 = ld(x, i) - sh;
      const e1 = ld(x, i + 1) - sh;
      d0 += e0;
      d1 += e1;
      q0 += e0 * e0;
      q1 += e1 * e1;
    }
    sd = <f64>d0 + <f64>d1;
    sq = <f64>q0 + <f64>q1;
  }
  for (; i < n; i++) {
    const e = ld(x, i) - sh;
    sd += <f64>e;
    sq += <f64>e * <f64>e;
  }
  if (redo(sq)) {
    moments64(x, n, 1);
    return;
  }
  rSum = <f64>n * <f64>sh + sd;
  rM2 = Math.max(sq - (sd * sd) / <f64>n, 0);
}

/** Σ x² of n contiguous float32 into rSum (blockStats, mode 1). */
export function blockSumsq(x: usize, n: i32): void {
  blockStats(x, n, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0);
}

/**
 * Row statistics over n contiguous float32, block by block. mode 0: rSum = Σx, rM2 = Σ(x − mean)²
 * (blocks merged by Chan's formula); mode 1: rSum = Σx² (rM2 = 0).
 */
export function rowStats(x: usize, n: i32, mode: i32): void {
  // Short rows (a norm over 3 coordinates, a head of 8): float64 two-pass moments straight away,
  // without the vector set-up and lane sums whose cost is per row (and exact where those may redo).
  if (n < SHORT_ROW) {
    if (mode == 1) {
      rSum = sumsq64(x, n);
      rM2 = 0;
    } else moments64(x, n, 1);
    return;
  }
  rowBlocks(x, n, mode, 0, 0, 0, 0, 0, 0, 0, 0, 0);
}

/**
 * rowStats' blocks (n ≥ SHORT_ROW): each block's statistics (blockStats), merged by Chan's formula
 * (mode 0) or added (mode 1), into rSum and rM2. With fuse 1, blockStats' fused normalize of
 * another row's elements (xa → y) runs in the same loops.
 */
// @ts-ignore: decorator
@inline export function rowBlocks(x: usize, n: i32, mode: i32, fuse: i32, xa: usize, y: usize, w: usize, b: usize, s: f32, m: f32, r: f32, kind: i32): void {
  let cn: f64 = 0, cs: f64 = 0, cq: f64 = 0;
  for (let k = 0; k < n; k += BLOCK) {
    const bk = min(BLOCK, n - k);
    if (mode == 1) {
      if (fuse) blockStats(at(x, k), bk, 1, 1, at(xa, k), at(y, k), at(w, k), at(b, k), s, m, r, kind);
      else blockSumsq(at(x, k), bk);
      cs += rSum;
      continue;
    }
    if (fuse) blockStats(at(x, k), bk, 0, 1, at(xa, k), at(y, k), at(w, k), at(b, k), s, m, r, kind);
    else blockMoments(at(x, k), bk);
    const bn = <f64>bk;
    if (cn == 0) {
      cs = rSum;
      cq = rM2;
    } else {
      const d = rSum / bn - cs / cn;
      cq = cq + rM2 + ((d * d) * cn * bn) / (cn + bn);
      cs += rSum;
    }
    cn += bn;
  }
  rSum = cs;
  rM2 = cq;
}

/** Chan's merge of (n, sum, M2) into the accumulator at acc (float64: n, sum, M2). */
export function chanInto(acc: usize, n: f64, s: f64, q: f64): void {
  const an = load<f64>(acc);
  if (an == 0) {
    store<f64>(acc, n);
    store<f64>(acc, s, 8);
    store<f64>(acc, q, 16);
    return;
  }
  const as = load<f64>(acc, 8);
  const d = s / n - as / an;
  store<f64>(acc, an + n);
  store<f64>(acc, as + s, 8);
  store<f64>(acc, load<f64>(acc, 16) + q + ((d * d) * an * n) / (an + n), 16);
}

/** SiLU in place over n float32: y / (1 + exp(−y)). */
export function siluRun(y: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const v = ld(y, i);
    st(y, i, v / (<f32>1 + Mathf.exp(-v)));
  }
}
