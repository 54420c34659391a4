// accumulate.wgsl: the accumulators under every statistic, shared by the partial reductions
// (reduce.wgsl), the row-fused kernels (apply.wgsl) and the careful per-row path of the
// one-workgroup-per-row kernels (rows.wgsl). A kernel compiles in one accumulator, chosen by its
// entry point's sections; reduce_range / reduce_interleaved walk a chunk of a group with it.
//
// Accumulators (one is compiled in):
//   WELFORD  (n, s, m, q): Welford with a shift that follows the running mean, so the mean is
//            the unevaluated sum s + m and x - mean keeps its precision at large offsets (with
//            1e4 + N(0, 1) in f32 a rounded mean alone is off by up to half an ulp of 1e4,
//            ~5e-4 sigma); q = M2 (see q_root in common.wgsl). Per vec4 lane with a shared count, lanes merged by Chan.
//   SUMSQ    (n, q, 0, 0), q = sum x^2: RMS norm and weight norm.
//   BWD      (n, sum g, sum g*xhat, sum (x - mean[s])) with g = dy * w[a],
//            xhat = (x - mean[s]) * rstd[s].
// q is the plain sum of squares, or, for a chunk whose fast sums were non-finite or tiny and that
// was recomputed by a careful rescan, minus its root mean square (q_root in common.wgsl; the
// root of a mean square is finite for any finite data). The rescan works in a power-of-two
// scale and sums Inf/NaN as PyTorch's sums would, so any finite input gives finite statistics
// wherever float32 can hold them.
//
// Sections (chosen by entry points) and the flags the host may set:
//#section WELFORD SUMSQ BWD
//#flag RESIDUAL     x = X + R (the fused residual add)
//#flag HALF_SUM     float16 x + residual rounded to half, as the stored sum is
//#flag INTERLEAVE   chunk c takes quads c, c + chunks, ... of its group (coalesced loads on GPUs)
//#flag STRIDED      INTERLEAVE over strided groups (runs > 1, runLength % 4 == 0)
//#flag HAS_RSTD     the saved rstd is bound (RSTD; RV with EVAL_STATS)
//#flag W_BY_I       g = dy * w[i], the weight per position in a row

// The normalized input: x, or x + residual when fused with a residual add.
fn xv4(e: u32) -> vec4f {
  //#if RESIDUAL
  //#if HALF_SUM
  // float16 tensors: the sum is rounded to half, as the stored `sum` output is.
  let s = X_ld4(e) + R_ld4(e);
  return vec4f(unpack2x16float(pack_half2(s.xy)), unpack2x16float(pack_half2(s.zw)));
  //#else
  return X_ld4(e) + R_ld4(e);
  //#endif
  //#else
  return X_ld4(e);
  //#endif
}
fn xv1(e: u32) -> f32 {
  //#if RESIDUAL
  //#if HALF_SUM
  return unpack2x16float(pack_half2(vec2f(X_ld(e) + R_ld(e), 0.0))).x;
  //#else
  return X_ld(e) + R_ld(e);
  //#endif
  //#else
  return X_ld(e);
  //#endif
}

//#if WELFORD
// Per vec4 lane (and one scalar lane for the tail elements): count (shared), shift s, mean m of
// x - s, and M2. Every 4 quads (every element in the scalar lane) the shift moves to the running
// mean (s + m rounded) and m keeps the rounding error (split_sum, common.wgsl), so x - s is the deviation from
// a recent running mean: exact (Sterbenz) for elements near the mean whatever the offset, and
// never computed against a far element for long (an outlier first in a group does not spoil the
// rest; the few elements before a recentre carry a rounding that is damped like any early
// Welford step). The mean stays the unevaluated sum s + m, so x - mean keeps its precision at
// large offsets.
var<private> wn: f32;
var<private> ws: vec4f;
var<private> wm: vec4f;
var<private> wmq: vec4f;
var<private> sn: f32;
var<private> ss: f32;
var<private> sm: f32;
var<private> sq: f32;
fn acc_reset() { wn = 0.0; ws = vec4f(0.0); wm = vec4f(0.0); wmq = vec4f(0.0); sn = 0.0; ss = 0.0; sm = 0.0; sq = 0.0; }
fn acc_group(j: u32) {}
fn seg_begin(o: u32, j: u32) {}
fn acc4(e: u32, i: u32) { acc_v4(xv4(e)); }
// One Welford step per lane (channels-last statistics feed a quad of channels here, CL_PARTIALS).
fn acc_v4(x: vec4f) {
  let v = dev4(x, ws);
  wn += 1.0;
  let d = v - wm;
  wm += d * (1.0 / wn);
  wmq += d * (v - wm);
}
// The lanes' shifts moved to their running means (every 4 quads: an element is never more than
// a few steps behind, and the rounding of x - s of those few is damped like any early step).
fn acc_recenter() {
  let r = split_sum4(ws, wm);
  ws = r[0];
  wm = r[1];
}
fn acc_scalar(x: f32) {
  let v = dev(x, ss);
  sn += 1.0;
  let d = v - sm;
  let m = sm + d / sn;
  sq += d * (v - m);
  let r = split_sum(ss, m);
  ss = r.x;
  sm = r.y;
}
fn acc1(e: u32, i: u32) { acc_scalar(xv1(e)); }
// The lanes merged (Chan, common.wgsl), as (n, s, m, M2).
fn acc_result() -> vec4f {
  var r = vec4f(sn, ss, sm, sq);
  r = chan(r, vec4f(wn, ws.x, wm.x, wmq.x));
  r = chan(r, vec4f(wn, ws.y, wm.y, wmq.y));
  r = chan(r, vec4f(wn, ws.z, wm.z, wmq.z));
  r = chan(r, vec4f(wn, ws.w, wm.w, wmq.w));
  return vec4f(r.xyz, clamp0(r.w));
}
// The spread needs the careful rescan (see rescan_begin): non-finite statistics (an Inf or NaN in
// the data, or squares past f32) or an M2 so small that squares may have underflowed.
fn acc_suspect(r: vec4f) -> bool { return r.x > 0.0 && (!finite(r.y) || !finite(r.z) || m2_suspect(r.w)); }
// A chunk holding non-finite elements: their sum is the mean (as PyTorch's sum gives it), M2 NaN.
fn nonfinite_result(n: f32, bad: f32) -> vec4f { return vec4f(n, bad, 0.0, nan_f32(n)); }
fn bad_term(x: f32) -> f32 { return x; }
// A rescanned (scaled by 2^-e) result back in scale, its spread as the root -S (see q_root).
fn unscale(r: vec4f, e: i32) -> vec4f { return vec4f(r.x, ldexp(r.y, e), ldexp(r.z, e), q_from_root(ldexp(sqrt(r.w / r.x), e))); }
//#endif

//#if SUMSQ
var<private> q4: vec4f;
var<private> q1: f32;
var<private> qn: f32;
fn acc_reset() { q4 = vec4f(0.0); q1 = 0.0; qn = 0.0; }
fn acc_group(j: u32) {}
fn seg_begin(o: u32, j: u32) {}
fn acc4(e: u32, i: u32) { let v = xv4(e); q4 += v * v; qn += 4.0; }
fn acc_recenter() {}
fn acc_scalar(v: f32) { q1 += v * v; qn += 1.0; }
fn acc1(e: u32, i: u32) { acc_scalar(xv1(e)); }
// (n, sum x^2, 0, 0).
fn acc_result() -> vec4f { return vec4f(qn, (q4.x + q4.y) + (q4.z + q4.w) + q1, 0.0, 0.0); }
fn acc_suspect(r: vec4f) -> bool { return r.x > 0.0 && m2_suspect(r.y); }
fn nonfinite_result(n: f32, bad: f32) -> vec4f { return vec4f(n, bad, 0.0, 0.0); }
fn bad_term(x: f32) -> f32 { return abs(x); }
fn unscale(r: vec4f, e: i32) -> vec4f { return vec4f(r.x, q_from_root(ldexp(sqrt(r.y / r.x), e)), 0.0, 0.0); }
//#endif

//#if WELFORD || SUMSQ
// The careful rescan of a chunk (or row) whose fast statistics are suspect (acc_suspect): pass 0
// finds the largest finite |x| and sums the non-finite elements; pass 1 accumulates x * 2^-e (e
// the exponent of that maximum, an exact scaling) so no square over- or underflows, and the
// result is scaled back. Only data with Inf/NaN, huge or tiny magnitudes (or a constant chunk)
// pays for it. Used as: rescan_begin(); walk; if (rescan_mid()) { walk }; rescan_end(n).
var<private> rs_pass: u32;
var<private> rs_amax: f32;
var<private> rs_bad: f32;
var<private> rs_nbad: f32;
var<private> rs_exp: i32;
fn rescan_begin() { rs_pass = 0u; rs_amax = 0.0; rs_bad = 0.0; rs_nbad = 0.0; }
fn rescan_elem(x: f32) {
  if (rs_pass == 0u) {
    if (finite(x)) { rs_amax = max(rs_amax, abs(x)); } else { rs_bad += bad_term(x); rs_nbad += 1.0; }
  } else {
    // ldexp, not a multiplication by 2^-e: that factor is subnormal (flushed to 0 on GPUs) for e > 126.
    acc_scalar(ldexp(x, -rs_exp));
  }
}
fn rescan_mid() -> bool {
  if (rs_nbad > 0.0 || rs_amax == 0.0) { return false; }
  rs_exp = frexp(rs_amax).exp;
  acc_reset();
  rs_pass = 1u;
  return true;
}
fn rescan_end(n: f32) -> vec4f {
  if (rs_nbad > 0.0) { return nonfinite_result(n, rs_bad); }
  if (rs_pass == 0u) { return vec4f(n, 0.0, 0.0, 0.0); }
  return unscale(acc_result(), rs_exp);
}
// Elements of group j with logical index k in [k0, k1) (the order of reduce_range), one by one.
fn rescan_walk(j: u32, k0: u32, k1: u32) {
  for (var k = k0; k < k1; k += 1u) {
    let o = k / P.runLength;
    rescan_elem(xv1((o * P.groups + j) * P.runLength + k - o * P.runLength));
  }
}
// The statistics of group j's elements [k0, k1), rescanned when the fast ones are suspect.
fn checked_range(j: u32, k0: u32, k1: u32) -> vec4f {
  let r = acc_result();
  if (!acc_suspect(r)) { return r; }
  rescan_begin();
  rescan_walk(j, k0, k1);
  if (rescan_mid()) { rescan_walk(j, k0, k1); }
  return rescan_end(r.x);
}
//#endif

//#if BWD
// s: index of the saved statistics, fixed per segment; W_BY_I: g = dy * w[i] (weight per
// position in a layer-norm row; other norms apply their weight per group in finalize.wgsl). The fourth sum, of x - mean[s], tells
// the finalize step how far the saved (float32-rounded) mean is from x's own mean.
var<private> s_idx: u32;
var<private> g4: vec4f;
var<private> gx4: vec4f;
var<private> c4: vec4f;
var<private> g1: f32;
var<private> gx1: f32;
var<private> c1: f32;
var<private> bn: f32;
var<private> st_mean: f32;
var<private> st_rstd: f32;
fn acc_reset() { g4 = vec4f(0.0); gx4 = vec4f(0.0); c4 = vec4f(0.0); g1 = 0.0; gx1 = 0.0; c1 = 0.0; bn = 0.0; }
fn acc_group(j: u32) {}
fn acc_recenter() {}
fn seg_begin(o: u32, j: u32) {
  s_idx = j / P.groupsPerStat;
  st_mean = 0.0;
  st_rstd = 1.0;
  //#if HAS_MEAN
  st_mean = mean_at(s_idx);
  //#endif
  //#if HAS_RSTD
  st_rstd = rstd_at(s_idx);
  //#endif
}
// The saved statistics of group s; EVAL_STATS (batch-norm eval backward): the running
// statistics read directly, rstd = 1/sqrt(runningVar + eps) (no FIN_EVAL step).
//#if HAS_MEAN
fn mean_at(s: u32) -> f32 {
  //#if EVAL_STATS
  return RM_ld(s);
  //#else
  return MEAN_ld(s);
  //#endif
}
//#endif
//#if HAS_RSTD
fn rstd_at(s: u32) -> f32 {
  //#if EVAL_STATS
  return 1.0 / sqrt(RV_ld(s) + P.eps);
  //#else
  return RSTD_ld(s);
  //#endif
}
//#endif
fn acc4(e: u32, i: u32) {
  var g = DY_ld4(e);
  //#if W_BY_I
  g *= W_ld4(i);
  //#endif
  let dv = dev4(xv4(e), vec4f(st_mean));
  g4 += g;
  gx4 += g * hold4(dv * st_rstd);
  c4 += dv;
  bn += 4.0;
}
fn acc1(e: u32, i: u32) {
  var g = DY_ld(e);
  //#if W_BY_I
  g *= W_ld(i);
  //#endif
  let dv = dev(xv1(e), st_mean);
  g1 += g;
  gx1 += g * hold(dv * st_rstd);
  c1 += dv;
  bn += 1.0;
}
// (n, sum g, sum g*xhat, sum (x - mean)).
fn acc_result() -> vec4f {
  return vec4f(bn, (g4.x + g4.y) + (g4.z + g4.w) + g1, (gx4.x + gx4.y) + (gx4.z + gx4.w) + gx1, (c4.x + c4.y) + (c4.z + c4.w) + c1);
}
fn checked_range(j: u32, k0: u32, k1: u32) -> vec4f { return acc_result(); }
//#endif

//#if WELFORD || SUMSQ || BWD
// Feed the elements of group j with logical index k in [k0, k1) to the accumulator, four at a
// time within each contiguous segment.
fn reduce_range(j: u32, k0: u32, k1: u32) {
  let inner = P.runLength;
  var o = k0 / inner;
  var i = k0 - o * inner;
  var left = k1 - k0;
  acc_group(j);
  loop {
    if (left == 0u) { break; }
    let len = min(inner - i, left);
    let base = (o * P.groups + j) * inner;
    seg_begin(o, j);
    var p = i;
    let end = i + len;
    //#if WELFORD
    // The shifts start at the first quad; then blocks of 4 quads, the shifts moved to the
    // running means after each (acc_recenter).
    if (wn == 0.0 && p + 4u <= end) {
      acc4(base + p, p);
      acc_recenter();
      p += 4u;
    }
    for (; p + 16u <= end; p += 16u) {
      acc4(base + p, p);
      acc4(base + p + 4u, p + 4u);
      acc4(base + p + 8u, p + 8u);
      acc4(base + p + 12u, p + 12u);
      acc_recenter();
    }
    //#endif
    for (; p + 4u <= end; p += 4u) { acc4(base + p, p); }
    acc_recenter();
    for (; p < end; p += 1u) { acc1(base + p, p); }
    left -= len;
    o += 1u;
    i = 0u;
  }
}
//#endif

//#if INTERLEAVE
// GPUs: chunk c of group j takes the quads c, c + P, c + 2P, ... (P = chunks) of the group's
// logical index space (quad q = elements k = 4q .. 4q + 3, k = o*runLength + i), so that
// neighbouring threads (neighbouring c) read neighbouring quads (coalesced loads). Groups of one
// run: the tail elements past the last whole quad go to chunk 0. Strided groups (runs > 1, batch
// norm channels, weight-norm slices; chosen only when runLength % 4 == 0, STRIDED): a quad never
// crosses a run, its address is (o*groups + j)*runLength + 4q - o*runLength, and there is no tail.
// The Welford schedule is that of reduce_range: shifts recentred after the first quad, then
// after every 4 quads.
fn quad_at(j: u32, q: u32) -> u32 {
  //#if STRIDED
  let k = 4u * q;
  let o = k / P.runLength;
  return (o * P.groups + j) * P.runLength + (k - o * P.runLength);
  //#else
  return j * P.runLength + 4u * q;
  //#endif
}
fn reduce_interleaved(j: u32, c: u32) {
  let K = P.runs * P.runLength;
  let base = j * K;
  acc_group(j);
  seg_begin(0u, j);
  let nq = K / 4u;
  var q = c;
  //#if WELFORD
  if (q < nq) {
    acc4(quad_at(j, q), 4u * q);
    acc_recenter();
    q += P.chunks;
  }
  for (; q + 3u * P.chunks < nq; q += 4u * P.chunks) {
    acc4(quad_at(j, q), 4u * q);
    acc4(quad_at(j, q + P.chunks), 4u * (q + P.chunks));
    acc4(quad_at(j, q + 2u * P.chunks), 4u * (q + 2u * P.chunks));
    acc4(quad_at(j, q + 3u * P.chunks), 4u * (q + 3u * P.chunks));
    acc_recenter();
  }
  //#endif
  for (; q < nq; q += P.chunks) { acc4(quad_at(j, q), 4u * q); }
  acc_recenter();
  if (c == 0u) {
    for (var i = 4u * nq; i < K; i += 1u) { acc1(base + i, i); }
  }
}
//#if WELFORD || SUMSQ
// The same elements as reduce_interleaved, one by one (the careful rescan).
fn rescan_walk_interleaved(j: u32, c: u32) {
  let K = P.runs * P.runLength;
  let base = j * K;
  let nq = K / 4u;
  for (var q = c; q < nq; q += P.chunks) {
    let e = quad_at(j, q);
    for (var i = e; i < e + 4u; i += 1u) { rescan_elem(xv1(i)); }
  }
  if (c == 0u) {
    for (var i = 4u * nq; i < K; i += 1u) { rescan_elem(xv1(base + i)); }
  }
}
fn checked_interleaved(j: u32, c: u32) -> vec4f {
  let r = acc_result();
  if (!acc_suspect(r)) { return r; }
  rescan_begin();
  rescan_walk_interleaved(j, c);
  if (rescan_mid()) { rescan_walk_interleaved(j, c); }
  return rescan_end(r.x);
}
//#else
fn checked_interleaved(j: u32, c: u32) -> vec4f { return acc_result(); }
//#endif
//#endif
