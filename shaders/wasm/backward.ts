// AssemblyScript: backward kernels. With g = dy·w and d = x − μ (μ the saved mean, 0 for RMS
// and weight norm), the gradient sums are Σg, Σg·d and Σd (rows_gsums, cols_gsums); the host turns
// them into per-group coefficients and dx = outer·((g + β) + γ·x̂), x̂ = (d − k)·r, is applied by
// rows_dx / cols_dx (k: the saved mean's rounding, recovered from x; NUMERICS.md).
import { BLOCK, ROW_BLOCK, SHORT_ROW, pi, pp, at, ld, st, hsum, wide, narrow, rA, rB, rC } from './common';

/** gradSums in float64 (exact for any float32 inputs) into rA, rB, rC: written inline where it is called. */
// @ts-ignore: decorator
@inline function gradSums64(dy: usize, x: usize, n: i32, mu: f32, w: usize, wStep: i32): void {
  let sa: f64 = 0, sb: f64 = 0, sc: f64 = 0;
  for (let j = 0; j < n; j++) {
    const g = <f64>ld(dy, j) * <f64>ld(w, j * wStep);
    const d = <f64>ld(x, j) - <f64>mu;
    sa += g;
    sb += g * d;
    sc += d;
  }
  rA = sa;
  rB = sb;
  rC = sc;
}

/** Σg, Σg·d, Σd over n contiguous elements, w per element (wStep 1) or one value (0); float64 again past float32. */
function gradSums(dy: usize, x: usize, n: i32, mu: f32, w: usize, wStep: i32): void {
  let i = 0;
  let sa: f64 = 0, sb: f64 = 0, sc: f64 = 0;
  if (ASC_FEATURE_SIMD) {
    const vm = f32x4.splat(mu);
    let a = f32x4.splat(0), b = f32x4.splat(0), c = f32x4.splat(0);
    if (wStep == 0) {
      const vw = f32x4.splat(ld(w, 0));
      for (; i + 4 <= n; i += 4) {
        const g = f32x4.mul(v128.load(at(dy, i)), vw);
        const d = f32x4.sub(v128.load(at(x, i)), vm);
        a = f32x4.add(a, g);
        b = f32x4.add(b, f32x4.mul(g, d));
        c = f32x4.add(c, d);
      }
    } else {
      let a1 = f32x4.splat(0), b1 = f32x4.splat(0), c1 = f32x4.splat(0);
      for (; i + 8 <= n; i += 8) {
        const pd = at(dy, i), px = at(x, i), pw = at(w, i);
        const g0 = f32x4.mul(v128.load(pd), v128.load(pw)), g1 = f32x4.mul(v128.load(pd, 16), v128.load(pw, 16));
        const d0 = f32x4.sub(v128.load(px), vm), d1 = f32x4.sub(v128.load(px, 16), vm);
        a = f32x4.add(a, g0);
        a1 = f32x4.add(a1, g1);
        b = f32x4.add(b, f32x4.mul(g0, d0));
        b1 = f32x4.add(b1, f32x4.mul(g1, d1));
        c = f32x4.add(c, d0);
        c1 = f32x4.add(c1, d1);
      }
      for (; i + 4 <= n; i += 4) {
        const g = f32x4.mul(v128.load(at(dy, i)), v128.load(at(w, i)));
        const d = f32x4.sub(v128.load(at(x, i)), vm);
        a = f32x4.add(a, g);
        b = f32x4.add(b, f32x4.mul(g, d));
        c = f32x4.add(c, d);
      }
      a = f32x4.add(a, a1);
      b = f32x4.add(b, b1);
      c = f32x4.add(c, c1);
    }
    sa = hsum(a);
    sb = hsum(b);
    sc = hsum(c);
  }
  for (; i < n; i++) {
    const g = ld(dy, i) * ld(w, i * wStep);
    const d = ld(x, i) - mu;
    sa += <f64>g;
    sb += <f64>(g * d);
    sc += <f64>d;
  }
  if (!(Math.abs(sa) < Infinity && Math.abs(sb) < Infinity && Math.abs(sc) < Infinity)) {
    gradSums64(dy, x, n, mu, w, wStep);
    return;
  }
  rA = sa;
  rB = sb;
  rC = sc;
}

/**
 * Gradient sums of rows of K. p: 0 dy, 1 x, 2 K, 3 mu (float32 per row), 4 w (per element, or
 * per row when 5 is 1), 5 wPerRow, 6 out (float64 triples per row).
 */
export function rows_gsums(p: usize, begin: i32, end: i32): void {
  const dy = pp(p, 0), x = pp(p, 1), K = pi(p, 2), mu = pp(p, 3), w = pp(p, 4), perRow = pi(p, 5), out = pp(p, 6);
  for (let r = begin; r < end; r++) {
    const off = <usize>r * <usize>K * 4;
    let a: f64 = 0, b: f64 = 0, c: f64 = 0;
    for (let k = 0; k < K; k += BLOCK) {
      const n = min(BLOCK, K - k);
      if (perRow) gradSums(at(dy + off, k), at(x + off, k), n, ld(mu, r), at(w, r), 0);
      else gradSums(at(dy + off, k), at(x + off, k), n, ld(mu, r), at(w, k), 1);
      a += rA;
      b += rB;
      c += rC;
    }
    const o = out + <usize>r * 24;
    store<f64>(o, a);
    store<f64>(o, b, 8);
    store<f64>(o, c, 16);
  }
}

/**
 * Gradient sums of columns, x and dy as [O, M, C], g = dy (the host applies w per channel).
 * Task t: o = t / chunks, 16 columns. p: 0 dy, 1 x, 2 O, 3 M, 4 C, 5 mu (float32 per (o, c)),
 * 6 out (float64 triples per (o, c)).
 */
export function cols_gsums(p: usize, begin: i32, end: i32): void {
  const dy = pp(p, 0), x = pp(p, 1), M = pi(p, 3), C = pi(p, 4), mu = pp(p, 5), out = pp(p, 6);
  const chunks = (C + 15) >> 4;
  const stride = <usize>C * 4;
  for (let t = begin; t < end; t++) {
    const o = t / chunks;
    const c0 = (t % chunks) << 4;
    const c1 = min(C, c0 + 16);
    const base = <usize>o * <usize>M * stride;
    for (let c = c0; c < c1; c++) {
      const e = out + <usize>(o * C + c) * 24;
      store<f64>(e, 0);
      store<f64>(e, 0, 8);
      store<f64>(e, 0, 16);
    }
    // Blocks of ROW_BLOCK rows: the chunk's columns read a block's rows (in cache) four at a time.
    for (let m0 = 0; m0 < M; m0 += ROW_BLOCK) {
      const n = min(ROW_BLOCK, M - m0);
      const q0 = base + <usize>m0 * stride;
      let c = c0;
      if (ASC_FEATURE_SIMD) {
        for (; c + 4 <= c1; c += 4) colGrad4(dy, x, q0 + (<usize>c << 2), stride, n, at(mu, o * C + c), out + <usize>(o * C + c) * 24);
      }
      for (; c < c1; c++) colGrad1(dy, x, q0 + (<usize>c << 2), stride, n, ld(mu, o * C + c), out + <usize>(o * C + c) * 24);
    }
  }
}

/** One column's sums over one block of n rows (float32, float64 again past float32), added to its float64 triple at e. */
function colGrad1(dy: usize, x: usize, q: usize, stride: usize, n: i32, m: f32, e: usize): void {
  let fa: f32 = 0, fb: f32 = 0, fc: f32 = 0;
  for (let i = 0; i < n; i++) {
    const g = load<f32>(dy + q + <usize>i * stride);
    const d = load<f32>(x + q + <usize>i * stride) - m;
    fa += g;
    fb += g * d;
    fc += d;
  }
  if (!(Math.abs(fa) < Infinity && Math.abs(fb) < Infinity && Math.abs(fc) < Infinity)) {
    colGrad1Redo(dy, x, q, stride, n, m, e);
    return;
  }
  store<f64>(e, load<f64>(e) + <f64>fa);
  store<f64>(e, load<f64>(e, 8) + <f64>fb, 8);
  store<f64>(e, load<f64>(e, 16) + <f64>fc, 16);
}

/** colGrad1 for four adjacent columns in float32 lanes (each lane the same operations in the same order). */
function colGrad4(dy: usize, x: usize, q: usize, stride: usize, n: i32, mus: usize, e: usize): void {
  const vm = v128.load(mus);
  let fa = f32x4.splat(0), fb = f32x4.splat(0), fc = f32x4.splat(0);
  for (let i = 0; i < n; i++) {
    const off = q + <usize>i * stride;
    const g = v128.load(dy + off);
    const d = f32x4.sub(v128.load(x + off), vm);
    fa = f32x4.add(fa, g);
    fb = f32x4.add(fb, f32x4.mul(g, d));
    fc = f32x4.add(fc, d);
  }
  for (let l = 0; l < 4; l++) {
    let la: f32, lb: f32, lc: f32;
    if (l == 0) { la = f32x4.extract_lane(fa, 0); lb = f32x4.extract_lane(fb, 0); lc = f32x4.extract_lane(fc, 0); }
    else if (l == 1) { la = f32x4.extract_lane(fa, 1); lb = f32x4.extract_lane(fb, 1); lc = f32x4.extract_lane(fc, 1); }
    else if (l == 2) { la = f32x4.extract_lane(fa, 2); lb = f32x4.extract_lane(fb, 2); lc = f32x4.extract_lane(fc, 2); }
    else { la = f32x4.extract_lane(fa, 3); lb = f32x4.extract_lane(fb, 3); lc = f32x4.extract_lane(fc, 3); }
    const el = e + <usize>l * 24;
    if (!(Math.abs(la) < Infinity && Math.abs(lb) < Infinity && Math.abs(lc) < Infinity)) {
      colGrad1Redo(dy, x, q + (<usize>l << 2), stride, n, ld(mus, l), el);
    } else {
      store<f64>(el, load<f64>(el) + <f64>la);
      store<f64>(el, load<f64>(el, 8) + <f64>lb, 8);
      store<f64>(el, load<f64>(el, 16) + <f64>lc, 16);
    }
  }
}

/** colGrad1's float64 sums (a lane whose float32 sums left the float32 range). */
function colGrad1Redo(dy: usize, x: usize, q: usize, stride: usize, n: i32, m: f32, e: usize): void {
  let a: f64 = 0, b: f64 = 0, c: f64 = 0;
  for (let i = 0; i < n; i++) {
    const g = <f64>load<f32>(dy + q + <usize>i * stride);
    const d = <f64>load<f32>(x + q + <usize>i * stride) - <f64>m;
    a += g;
    b += g * d;
    c += d;
  }
  store<f64>(e, load<f64>(e) + a);
  store<f64>(e, load<f64>(e, 8) + b, 8);
  store<f64>(e, load<f64>(e, 16) + c, 16);
}

/** x̂ = ((x − μ) − k)·r; kind 2: μ and k are +0, whose subtractions change no bit and are left out. */
// @ts-ignore: decorator
@inline function xhat(v: v128, vmu: v128, vk: v128, vr: v128, kind: i32): v128 {
  if (kind == 2) return f32x4.mul(v, vr);
  return f32x4.mul(f32x4.sub(f32x4.sub(v, vmu), vk), vr);
}

/** dxRun's loop with w per element and dweight partials only; returns the elements done. */
// @ts-ignore: decorator
@inline function dxWeightOnly(dy: usize, x: usize, dx: usize, n: i32, vmu: v128, vk: v128, vr: v128, vo: v128, vbe: v128, vga: v128, w: usize, dwp: usize, kind: i32): i32 {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const pd = at(dy, i), px = at(x, i), pw = at(w, i), pa = at(dwp, i);
    const d0 = v128.load(pd), d1 = v128.load(pd, 16);
    const h0 = xhat(v128.load(px), vmu, vk, vr, kind);
    const h1 = xhat(v128.load(px, 16), vmu, vk, vr, kind);
    const g0 = f32x4.mul(d0, v128.load(pw)), g1 = f32x4.mul(d1, v128.load(pw, 16));
    v128.store(at(dx, i), f32x4.mul(vo, f32x4.add(f32x4.add(g0, vbe), f32x4.mul(vga, h0))));
    v128.store(at(dx, i), f32x4.mul(vo, f32x4.add(f32x4.add(g1, vbe), f32x4.mul(vga, h1))), 16);
    v128.store(pa, f32x4.add(v128.load(pa), f32x4.mul(d0, h0)));
    v128.store(pa, f32x4.add(v128.load(pa, 16), f32x4.mul(d1, h1)), 16);
  }
  return i;
}

/** dxRun's scalar loop over elements [i, n): written inline where it is called. */
// @ts-ignore: decorator
@inline function dxScalar(dy: usize, x: usize, dx: usize, i: i32, n: i32, mu: f32, k: f32, r: f32, outer: f32, beta: f32, gamma: f32, w: usize, wStep: i32, dwp: usize, dbp: usize): void {
  for (; i < n; i++) {
    const d = ld(dy, i);
    const xh = ((ld(x, i) - mu) - k) * r;
    st(dx, i, outer * ((d * ld(w, i * wStep) + beta) + gamma * xh));
    if (dwp) st(dwp, i, ld(dwp, i) + d * xh);
    if (dbp) st(dbp, i, ld(dbp, i) + d);
  }
}

/** dx over n elements: outer·((g + β) + γ·x̂), g = dy·w, x̂ = ((x − μ) − k)·r. */
function dxRun(dy: usize, x: usize, dx: usize, n: i32, mu: f32, k: f32, r: f32, outer: f32, beta: f32, gamma: f32, w: usize, wStep: i32, dwp: usize, dbp: usize): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    const vmu = f32x4.splat(mu), vk = f32x4.splat(k), vr = f32x4.splat(r), vo = f32x4.splat(outer), vbe = f32x4.splat(beta), vga = f32x4.splat(gamma);
    const vw = f32x4.splat(ld(w, 0));
    if (wStep && dwp && !dbp) {
      // RMS norm (or no bias): w per element, dweight partials only.
      if (reinterpret<u32>(mu) == 0 && reinterpret<u32>(k) == 0) i = dxWeightOnly(dy, x, dx, n, vmu, vk, vr, vo, vbe, vga, w, dwp, 2);
      else i = dxWeightOnly(dy, x, dx, n, vmu, vk, vr, vo, vbe, vga, w, dwp, 0);
    } else if (wStep && dwp) {
      // Layer norm: w per element, dweight/dbias partials of the row block.
      for (; i + 8 <= n; i += 8) {
        const pd = at(dy, i), px = at(x, i), pw = at(w, i), pa = at(dwp, i), pb = at(dbp, i);
        const d0 = v128.load(pd), d1 = v128.load(pd, 16);
        const h0 = f32x4.mul(f32x4.sub(f32x4.sub(v128.load(px), vmu), vk), vr);
        const h1 = f32x4.mul(f32x4.sub(f32x4.sub(v128.load(px, 16), vmu), vk), vr);
        const g0 = f32x4.mul(d0, v128.load(pw)), g1 = f32x4.mul(d1, v128.load(pw, 16));
        v128.store(at(dx, i), f32x4.mul(vo, f32x4.add(f32x4.add(g0, vbe), f32x4.mul(vga, h0))));
        v128.store(at(dx, i), f32x4.mul(vo, f32x4.add(f32x4.add(g1, vbe), f32x4.mul(vga, h1))), 16);
        v128.store(pa, f32x4.add(v128.load(pa), f32x4.mul(d0, h0)));
        v128.store(pa, f32x4.add(v128.load(pa, 16), f32x4.mul(d1, h1)), 16);
        v128.store(pb, f32x4.add(v128.load(pb), d0));
        v128.store(pb, f32x4.add(v128.load(pb, 16), d1), 16);
      }
    } else if (!wStep && !dwp) {
      // One weight for the run, no partials (planes, weight-norm slices).
      for (; i + 8 <= n; i += 8) {
        const pd = at(dy, i), px = at(x, i);
        const h0 = f32x4.mul(f32x4.sub(f32x4.sub(v128.load(px), vmu), vk), vr);
        const h1 = f32x4.mul(f32x4.sub(f32x4.sub(v128.load(px, 16), vmu), vk), vr);
        const g0 = f32x4.mul(v128.load(pd), vw), g1 = f32x4.mul(v128.load(pd, 16), vw);
        v128.store(at(dx, i), f32x4.mul(vo, f32x4.add(f32x4.add(g0, vbe), f32x4.mul(vga, h0))));
        v128.store(at(dx, i), f32x4.mul(vo, f32x4.add(f32x4.add(g1, vbe), f32x4.mul(vga, h1))), 16);
      }
    }
    for (; i + 4 <= n; i += 4) {
      const d = v128.load(at(dy, i));
      const xh = f32x4.mul(f32x4.sub(f32x4.sub(v128.load(at(x, i)), vmu), vk), vr);
      const g = f32x4.mul(d, wStep ? v128.load(at(w, i)) : vw);
      v128.store(at(dx, i), f32x4.mul(vo, f32x4.add(f32x4.add(g, vbe), f32x4.mul(vga, xh))));
      if (dwp) v128.store(at(dwp, i), f32x4.add(v128.load(at(dwp, i)), f32x4.mul(d, xh)));
      if (dbp) v128.store(at(dbp, i), f32x4.add(v128.load(at(dbp, i)), d));
    }
  }
  dxScalar(dy, x, dx, i, n, mu, k, r, outer, beta, gamma, w, wStep, dwp, dbp);
}

/**
 * dx of rows of K, in tasks of RB rows. p: 0 dy, 1 x, 2 dx, 3 K, 4 R, 5 RB, 6 coef (float32
 * arrays μ, k, r, outer, β, γ, each of R), 7 w (per element, or per row when 8 is 1), 8 wPerRow,
 * 9 dweight partials (0: none; float32 [tasks, K], task t sums its RB rows of dy·x̂), 10 dbias partials.
 */
export function rows_dx(p: usize, begin: i32, end: i32): void {
  const dy = pp(p, 0), x = pp(p, 1), dx = pp(p, 2), K = pi(p, 3), R = pi(p, 4), RB = pi(p, 5), cf = pp(p, 6);
  const w = pp(p, 7), perRow = pi(p, 8), dwp = pp(p, 9), dbp = pp(p, 10);
  for (let t = begin; t < end; t++) {
    const pw = dwp ? dwp + <usize>t * <usize>K * 4 : 0;
    const pb = dbp ? dbp + <usize>t * <usize>K * 4 : 0;
    if (pw) {
      memory.fill(pw, 0, <usize>K * 4);
      memory.fill(pb, 0, <usize>K * 4);
    }
    const r1 = min(R, (t + 1) * RB);
    for (let r = t * RB; r < r1; r++) {
      const off = <usize>r * <usize>K * 4;
      dxRun(dy + off, x + off, dx + off, K, ld(cf, r), ld(cf, R + r), ld(cf, 2 * R + r), ld(cf, 3 * R + r), ld(cf, 4 * R + r), ld(cf, 5 * R + r),
        perRow ? at(w, r) : w, perRow ? 0 : 1, pw, pb);
    }
  }
}

/**
 * Fused layer/RMS-norm backward of rows of K, in tasks of RB rows: each row's gradient sums (as
 * rows_gsums), its coefficients (as gradCoefs in src/wasm/context.ts, float64, then rounded to
 * float32), then its dx (as rows_dx) while the row is still in cache.
 * p: 0 dy, 1 x, 2 dx, 3 K, 4 R, 5 RB, 6 mean (float32 per row; 0: none, RMS norm), 7 rstd
 * (float32 per row), 8 w (per element), 9 dweight partials (0: none; float32 [tasks, K]), 10 dbias
 * partials (0: none).
 */
export function rows_bwd(p: usize, begin: i32, end: i32): void {
  const dy = pp(p, 0), x = pp(p, 1), dx = pp(p, 2), K = pi(p, 3), R = pi(p, 4), RB = pi(p, 5), meanp = pp(p, 6), rstdp = pp(p, 7);
  const w = pp(p, 8), dwp = pp(p, 9), dbp = pp(p, 10);
  const centered = meanp != 0;
  const fk = <f64>K;
  for (let t = begin; t < end; t++) {
    const pw = dwp ? dwp + <usize>t * <usize>K * 4 : 0;
    const pb = dbp ? dbp + <usize>t * <usize>K * 4 : 0;
    if (pw) memory.fill(pw, 0, <usize>K * 4);
    if (pb) memory.fill(pb, 0, <usize>K * 4);
    const r1 = min(R, (t + 1) * RB);
    for (let r = t * RB; r < r1; r++) {
      const off = <usize>r * <usize>K * 4;
      const mu: f32 = centered ? ld(meanp, r) : 0;
      let sa: f64 = 0, sb: f64 = 0, sc: f64 = 0;
      if (K < SHORT_ROW) {
        // Short rows: the sums in float64 and dx below written inline (gradSums64, dxScalar),
        // where the calls cost more than the arithmetic.
        gradSums64(dy + off, x + off, K, mu, w, 1);
        sa = rA;
        sb = rB;
        sc = rC;
      } else {
        for (let k = 0; k < K; k += BLOCK) {
          gradSums(at(dy + off, k), at(x + off, k), min(BLOCK, K - k), mu, at(w, k), 1);
          sa += rA;
          sb += rB;
          sc += rC;
        }
      }
      const rs = ld(rstdp, r);
      let kf: f64 = 0;
      if (centered && K > 0) {
        const kk = sc / fk;
        if (Math.abs(kk) <= Math.abs(<f64>mu) * 2.384185791015625e-7) kf = <f64>(<f32>kk);
      }
      const sgx = <f64>rs * (sb - kf * sa);
      const beta: f64 = centered ? -sa / fk : 0;
      const gamma = -sgx / fk;
      if (K < SHORT_ROW) dxScalar(dy + off, x + off, dx + off, 0, K, mu, <f32>kf, rs, rs, <f32>beta, <f32>gamma, w, 1, pw, pb);
      else dxRun(dy + off, x + off, dx + off, K, mu, <f32>kf, rs, rs, <f32>beta, <f32>gamma, w, 1, pw, pb);
    }
  }
}

const ONE: usize = memory.data<f32>([1.0]);

/**
 * Fused group/instance-norm backward, NCHW: task q = group (n, g), its Cg planes of S contiguous
 * elements. Per plane the gradient sums of dy (as rows_gsums with g = dy), the group's
 * coefficients from them and the weights (as groupBackward and gradCoefs in src/wasm/, float64,
 * rounded to float32), then dx per plane (as rows_dx) while the group is in cache.
 * p: 0 dy, 1 x, 2 dx, 3 S, 4 G, 5 Cg, 6 mean (float32 per group), 7 rstd (per group), 8 w
 * (float32 per channel), 9 out (float64 per plane: Σdy, Σdy·(x − μ)), 10 kout (float64 per group: k).
 */
export function groups_bwd(p: usize, begin: i32, end: i32): void {
  const dy = pp(p, 0), x = pp(p, 1), dx = pp(p, 2), S = pi(p, 3), G = pi(p, 4), Cg = pi(p, 5);
  const meanp = pp(p, 6), rstdp = pp(p, 7), w = pp(p, 8), out = pp(p, 9), kout = pp(p, 10);
  const C = G * Cg;
  const fk = <f64>Cg * <f64>S;
  for (let q = begin; q < end; q++) {
    const n = q / G, g = q % G;
    const mu = ld(meanp, q), rs = ld(rstdp, q);
    let sa: f64 = 0, sb: f64 = 0, sc: f64 = 0;
    for (let j = 0; j < Cg; j++) {
      const pl = n * C + g * Cg + j;
      const off = <usize>pl * <usize>S * 4;
      let a: f64 = 0, b: f64 = 0, c: f64 = 0;
      for (let k = 0; k < S; k += BLOCK) {
        gradSums(at(dy + off, k), at(x + off, k), min(BLOCK, S - k), mu, ONE, 0);
        a += rA;
        b += rB;
        c += rC;
      }
      store<f64>(out + (<usize>pl << 4), a);
      store<f64>(out + (<usize>pl << 4), b, 8);
      const wc = <f64>ld(w, g * Cg + j);
      sa += wc * a;
      sb += wc * b;
      sc += c;
    }
    let kf: f64 = 0;
    if (fk > 0) {
      const kk = sc / fk;
      if (Math.abs(kk) <= Math.abs(<f64>mu) * 2.384185791015625e-7) kf = <f64>(<f32>kk);
    }
    const sgx = <f64>rs * (sb - kf * sa);
    const beta = -sa / fk;
    const gamma = -sgx / fk;
    store<f64>(kout + (<usize>q << 3), kf);
    for (let j = 0; j < Cg; j++) {
      const off = <usize>(n * C + g * Cg + j) * <usize>S * 4;
      dxRun(dy + off, x + off, dx + off, S, mu, <f32>kf, rs, rs, <f32>beta, <f32>gamma, at(w, g * Cg + j), 0, 0, 0);
    }
  }
}

/**
 * dx of channels-last rows of C, task = row t of O·M. p: 0 dy, 1 x, 2 dx, 3 M, 4 C, 5 O, 6 coef
 * (float32 arrays μ, k, r, outer, β, γ, each O·C), 7 w (per channel C).
 */
export function cols_dx(p: usize, begin: i32, end: i32): void {
  const dy = pp(p, 0), x = pp(p, 1), dx = pp(p, 2), M = pi(p, 3), C = pi(p, 4), O = pi(p, 5), cf = pp(p, 6), w = pp(p, 7);
  const P = O * C;
  let t = begin;
  while (t < end) {
    // The rows sharing o, as apply_cols: narrow rows (C ≤ 64) four at a time, each quad of
    // coefficients loaded once for the four; the coefficient row found once per run of rows.
    const o = t / M;
    const t1 = min(end, (o + 1) * M);
    const oc = o * C;
    const tm = at(cf, oc), tk = at(cf, P + oc), tr = at(cf, 2 * P + oc), to = at(cf, 3 * P + oc), tb = at(cf, 4 * P + oc), tg = at(cf, 5 * P + oc);
    if (ASC_FEATURE_SIMD && C <= 64) {
      const row = <usize>C * 4;
      for (; t + 4 <= t1; t += 4) {
        const off = <usize>t * row;
        let c = 0;
        for (; c + 4 <= C; c += 4) {
          const vm = v128.load(at(tm, c)), vk = v128.load(at(tk, c)), vr = v128.load(at(tr, c)), vo = v128.load(at(to, c));
          const vb = v128.load(at(tb, c)), vg = v128.load(at(tg, c)), vw = v128.load(at(w, c));
          for (let k: usize = 0; k < 4; k++) colDx4(dy + off + k * row, x + off + k * row, dx + off + k * row, c, vm, vk, vr, vo, vb, vg, vw);
        }
        for (let k: usize = 0; k < 4; k++) colDxScalar(dy + off + k * row, x + off + k * row, dx + off + k * row, c, C, tm, tk, tr, to, tb, tg, w);
      }
    }
    for (; t < t1; t++) {
      const off = <usize>t * <usize>C * 4;
      let c = 0;
      if (ASC_FEATURE_SIMD) {
        for (; c + 4 <= C; c += 4) {
          colDx4(dy + off, x + off, dx + off, c, v128.load(at(tm, c)), v128.load(at(tk, c)), v128.load(at(tr, c)), v128.load(at(to, c)), v128.load(at(tb, c)), v128.load(at(tg, c)), v128.load(at(w, c)));
        }
      }
      colDxScalar(dy + off, x + off, dx + off, c, C, tm, tk, tr, to, tb, tg, w);
    }
  }
}

/** cols_dx on the quad at column c of one row: outer·((dy·w + β) + γ·x̂), x̂ = ((x − μ) − k)·r. */
// @ts-ignore: decorator
@inline function colDx4(dy: usize, x: usize, dx: usize, c: i32, vm: v128, vk: v128, vr: v128, vo: v128, vb: v128, vg: v128, vw: v128): void {
  const xh = f32x4.mul(f32x4.sub(f32x4.sub(v128.load(at(x, c)), vm), vk), vr);
  const g = f32x4.mul(v128.load(at(dy, c)), vw);
  v128.store(at(dx, c), f32x4.mul(vo, f32x4.add(f32x4.add(g, vb), f32x4.mul(vg, xh))));
}

/** cols_dx's scalar loop over columns [c, C) of one row. */
// @ts-ignore: decorator
@inline function colDxScalar(dy: usize, x: usize, dx: usize, c: i32, C: i32, tm: usize, tk: usize, tr: usize, to: usize, tb: usize, tg: usize, w: usize): void {
  for (; c < C; c++) {
    const xh = ((ld(x, c) - ld(tm, c)) - ld(tk, c)) * ld(tr, c);
    st(dx, c, ld(to, c) * ((ld(dy, c) * ld(w, c) + ld(tb, c)) + ld(tg, c) * xh));
  }
}

/**
 * Column sums in float64 of float32 [B, K] partials into float32 [K]. Task = column.
 * p: 0 src, 1 B, 2 K, 3 dst. Each column is summed b = 0, 1, … in float64 and rounded once, on
 * every build; the SIMD build takes 8 columns (then 4) at a time in float64 pairs (the scalar
 * loop cost ~3.5 ns per column at B = 1, most of a [1, 4096] layer-norm backward).
 */
export function sum_partials(p: usize, begin: i32, end: i32): void {
  const src = pp(p, 0), B = pi(p, 1), K = pi(p, 2), dst = pp(p, 3);
  let i = begin;
  if (ASC_FEATURE_SIMD) {
    const row = <usize>K * 4;
    for (; i + 8 <= end; i += 8) {
      let a0 = f64x2.splat(0), a1 = f64x2.splat(0), a2 = f64x2.splat(0), a3 = f64x2.splat(0);
      let q = at(src, i);
      for (let b = 0; b < B; b++) {
        const v0 = v128.load(q), v1 = v128.load(q, 16);
        a0 = f64x2.add(a0, wide(v0, 0));
        a1 = f64x2.add(a1, wide(v0, 1));
        a2 = f64x2.add(a2, wide(v1, 0));
        a3 = f64x2.add(a3, wide(v1, 1));
        q += row;
      }
      v128.store(at(dst, i), narrow(a0, a1));
      v128.store(at(dst, i), narrow(a2, a3), 16);
    }
    for (; i + 4 <= end; i += 4) {
      let a0 = f64x2.splat(0), a1 = f64x2.splat(0);
      let q = at(src, i);
      for (let b = 0; b < B; b++) {
        const v = v128.load(q);
        a0 = f64x2.add(a0, wide(v, 0));
        a1 = f64x2.add(a1, wide(v, 1));
        q += row;
      }
      v128.store(at(dst, i), narrow(a0, a1));
    }
  }
  for (; i < end; i++) {
    let s: f64 = 0;
    for (let b = 0; b < B; b++) s += <f64>ld(src, b * K + i);
    st(dst, i, <f32>s);
  }
}
