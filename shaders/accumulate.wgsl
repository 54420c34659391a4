// accumulate.wgsl: the accumulators under every statistic, shared by the partial reductions
// (reduce.wgsl), the row-fused kernels (fused-rows.wgsl, apply-grad.wgsl) and the careful per-row
// path of the one-workgroup-per-row kernels (rows.wgsl). A kernel compiles in one accumulator,
// chosen by its entry point's sections; reduce_range / reduce_interleaved walk a chunk of a group
// with it.
//
// Accumulators (one is compiled in), each a struct (`Acc` names the one compiled in):
//   WELFORD  Welford: Welford with a shift that follows the running mean, so the mean is the
//            unevaluated sum s + m and x - mean keeps its precision at large offsets (with
//            1e4 + N(0, 1) in f32 a rounded mean alone is off by up to half an ulp of 1e4,
//            ~5e-4 sigma); result (n, s, m, q), q = M2 (see q_root in common.wgsl). Per vec4
//            lane with a shared count, lanes merged by Chan.
//   SUMSQ    SumSq: result (n, q, 0, 0), q = sum x^2: RMS norm and weight norm.
//   BWD      GradSums: result (n, sum g, sum g*xhat, sum (x - mean[s])) with g = dy * w[a],
//            xhat = (x - mean[s]) * rstd[s].
// q is the plain sum of squares, or, for a chunk whose fast sums were non-finite or tiny and that
// was recomputed by a careful rescan, minus its root mean square (q_root in common.wgsl; the
// root of a mean square is finite for any finite data). The rescan works in a power-of-two
// scale and sums Inf/NaN as PyTorch's sums would, so any finite input gives finite statistics
// wherever float32 can hold them.
//
// The interface, the same in every section. The state is the caller's: a function variable
// (`var a = acc_new(j);`) passed by pointer; nothing outside these functions reads its fields.
//   acc_new(j) -> Acc            empty, for group j (GradSums: holding group j's saved mean and
//                                rstd; the others keep nothing per group)
//   acc4(a, e, i), acc1(a, e, i) feed the quad (element) of x at index e; i is its position in
//                                the row (the weight's index with W_BY_I)
//   acc_recenter(a)              after a block of quads (Welford: the lanes' shifts move to their
//                                running means; the others do nothing)
//   acc_result(a) -> vec4f       the lanes merged, as above
//   reduce_range(a, j, k0, k1)   feed group j's elements [k0, k1) in logical order (below)
//   reduce_interleaved(a, j, c)  feed chunk c of group j's interleaved quads (INTERLEAVE)
//   checked_range(a, j, k0, k1), checked_interleaved(a, j, c) -> vec4f
//                                acc_result after that walk, recomputed by the careful rescan of
//                                the same elements when suspect (WELFORD, SUMSQ; BWD: acc_result)
// Channels-last partials (reduce.wgsl, WELFORD and BWD) feed one element per lane, each lane its
// own channel: acc_lanes(a, x) (BWD: acc_lanes(a, x, g), with acc_new_lanes(mean, rstd) holding
// each lane's saved statistics), and read each lane's result alone with acc_lanes_result(a). Only the WELFORD and
// SUMSQ accumulators have acc_scalar(a, x) (one element, the rescan's step), acc_suspect(r) and
// the rescan (Rescan, below).
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
// Four vec4 lanes with a shared count, and one scalar lane (the elements past the last whole
// quad; the rescan). A lane's mean is the unevaluated sum shift + offset: every 4 quads (every
// element in the scalar lane) the shift moves to the running mean (shift + offset rounded) and
// offset keeps the rounding error (split_sum, common.wgsl), so x - shift is the deviation from a
// recent running mean: exact (Sterbenz) for elements near the mean whatever the offset, and never
// computed against a far element for long (an outlier first in a group does not spoil the rest;
// the few elements before a recentre carry a rounding that is damped like any early Welford step).
// The mean stays the unevaluated sum, so x - mean keeps its precision at large offsets.
struct Welford {
  count: f32,        // elements per vec4 lane
  shift: vec4f,      // per lane: the shift, a recent running mean rounded
  offset: vec4f,     // per lane: the mean of x - shift
  m2: vec4f,         // per lane: the sum of squared deviations from the lane's mean (M2)
  tail_count: f32,   // the scalar lane's count, shift, offset and M2
  tail_shift: f32,
  tail_offset: f32,
  tail_m2: f32,
}
alias Acc = Welford;
fn acc_new(j: u32) -> Acc { return Acc(0.0, vec4f(0.0), vec4f(0.0), vec4f(0.0), 0.0, 0.0, 0.0, 0.0); }
fn acc4(a: ptr<function, Acc>, e: u32, i: u32) { acc_lanes(a, xv4(e)); }
// One Welford step per lane (channels-last statistics feed a quad of channels here, CL_PARTIALS).
fn acc_lanes(a: ptr<function, Acc>, x: vec4f) {
  let v = dev4(x, (*a).shift);
  (*a).count += 1.0;
  let d = v - (*a).offset;
  (*a).offset += d * (1.0 / (*a).count);
  (*a).m2 += d * (v - (*a).offset);
}
// The lanes' shifts moved to their running means (every 4 quads: an element is never more than
// a few steps behind, and the rounding of x - shift of those few is damped like any early step).
fn acc_recenter(a: ptr<function, Acc>) {
  let r = split_sum4((*a).shift, (*a).offset);
  (*a).shift = r[0];
  (*a).offset = r[1];
}
fn acc_scalar(a: ptr<function, Acc>, x: f32) {
  let v = dev(x, (*a).tail_shift);
  (*a).tail_count += 1.0;
  let d = v - (*a).tail_offset;
  let m = (*a).tail_offset + d / (*a).tail_count;
  (*a).tail_m2 += d * (v - m);
  let r = split_sum((*a).tail_shift, m);
  (*a).tail_shift = r.x;
  (*a).tail_offset = r.y;
}
fn acc1(a: ptr<function, Acc>, e: u32, i: u32) { acc_scalar(a, xv1(e)); }
// The lanes merged (Chan, common.wgsl), as (n, s, m, M2).
fn acc_result(a: ptr<function, Acc>) -> vec4f {
  var r = vec4f((*a).tail_count, (*a).tail_shift, (*a).tail_offset, (*a).tail_m2);
  r = chan(r, vec4f((*a).count, (*a).shift.x, (*a).offset.x, (*a).m2.x));
  r = chan(r, vec4f((*a).count, (*a).shift.y, (*a).offset.y, (*a).m2.y));
  r = chan(r, vec4f((*a).count, (*a).shift.z, (*a).offset.z, (*a).m2.z));
  r = chan(r, vec4f((*a).count, (*a).shift.w, (*a).offset.w, (*a).m2.w));
  return vec4f(r.xyz, clamp0(r.w));
}
// Each lane alone, as (n, s, m, M2): what acc_result gives for a lane when the others are empty.
fn acc_lanes_result(a: ptr<function, Acc>) -> array<vec4f, 4> {
  let n = (*a).count;
  let s = (*a).shift;
  let m = (*a).offset;
  let q = (*a).m2;
  return array<vec4f, 4>(vec4f(n, s.x, m.x, clamp0(q.x)), vec4f(n, s.y, m.y, clamp0(q.y)), vec4f(n, s.z, m.z, clamp0(q.z)), vec4f(n, s.w, m.w, clamp0(q.w)));
}
// The spread needs the careful rescan (see Rescan): non-finite statistics (an Inf or NaN in the
// data, or squares past f32) or an M2 so small that squares may have underflowed.
fn acc_suspect(r: vec4f) -> bool { return r.x > 0.0 && (!finite(r.y) || !finite(r.z) || m2_suspect(r.w)); }
// A chunk holding non-finite elements: their sum is the mean (as PyTorch's sum gives it), M2 NaN.
fn nonfinite_result(n: f32, bad: f32) -> vec4f { return vec4f(n, bad, 0.0, nan_f32(n)); }
fn bad_term(x: f32) -> f32 { return x; }
// A rescanned (scaled by 2^-e) result back in scale, its spread as the root -S (see q_root).
fn unscale(r: vec4f, e: i32) -> vec4f { return vec4f(r.x, ldexp(r.y, e), ldexp(r.z, e), q_from_root(ldexp(sqrt(r.w / r.x), e))); }
//#endif

//#if SUMSQ
struct SumSq {
  count: f32,        // elements
  squares: vec4f,    // per vec4 lane: the sum of x^2
  tail: f32,         // the scalar lane's sum of x^2
}
alias Acc = SumSq;
fn acc_new(j: u32) -> Acc { return Acc(0.0, vec4f(0.0), 0.0); }
fn acc4(a: ptr<function, Acc>, e: u32, i: u32) { let v = xv4(e); (*a).squares += v * v; (*a).count += 4.0; }
fn acc_recenter(a: ptr<function, Acc>) {}
fn acc_scalar(a: ptr<function, Acc>, v: f32) { (*a).tail += v * v; (*a).count += 1.0; }
fn acc1(a: ptr<function, Acc>, e: u32, i: u32) { acc_scalar(a, xv1(e)); }
// (n, sum x^2, 0, 0).
fn acc_result(a: ptr<function, Acc>) -> vec4f {
  let q = (*a).squares;
  return vec4f((*a).count, (q.x + q.y) + (q.z + q.w) + (*a).tail, 0.0, 0.0);
}
fn acc_suspect(r: vec4f) -> bool { return r.x > 0.0 && m2_suspect(r.y); }
fn nonfinite_result(n: f32, bad: f32) -> vec4f { return vec4f(n, bad, 0.0, 0.0); }
fn bad_term(x: f32) -> f32 { return abs(x); }
fn unscale(r: vec4f, e: i32) -> vec4f { return vec4f(r.x, q_from_root(ldexp(sqrt(r.y / r.x), e)), 0.0, 0.0); }
//#endif

//#if WELFORD || SUMSQ
// The careful rescan of a chunk (or row) whose fast statistics are suspect (acc_suspect): pass 0
// finds the largest finite |x| and sums the non-finite elements; pass 1 accumulates x * 2^-e (e
// the exponent of that maximum, an exact scaling) into the caller's accumulator, emptied first,
// so no square over- or underflows, and the result is scaled back. Only data with Inf/NaN, huge
// or tiny magnitudes (or a constant chunk) pays for it. Used as: var rs = rescan_begin(); walk;
// if (rescan_mid(&rs, a)) { walk }; rescan_end(&rs, a, n), each step of a walk rescan_elem(&rs, a, x).
struct Rescan {
  phase: u32,        // 0 or 1: the pass
  amax: f32,         // pass 0: the largest finite |x|
  bad: f32,          // pass 0: the sum of the non-finite elements' bad_term
  bad_count: f32,    // pass 0: how many non-finite elements
  exp: i32,          // pass 1: the exponent of amax (x is scaled by 2^-exp)
}
fn rescan_begin() -> Rescan { return Rescan(0u, 0.0, 0.0, 0.0, 0); }
fn rescan_elem(rs: ptr<function, Rescan>, a: ptr<function, Acc>, x: f32) {
  if ((*rs).phase == 0u) {
    if (finite(x)) { (*rs).amax = max((*rs).amax, abs(x)); } else { (*rs).bad += bad_term(x); (*rs).bad_count += 1.0; }
  } else {
    // ldexp, not a multiplication by 2^-e: that factor is subnormal (flushed to 0 on GPUs) for e > 126.
    acc_scalar(a, ldexp(x, -(*rs).exp));
  }
}
// (WELFORD and SUMSQ keep nothing per group: acc_new's group is any.)
fn rescan_mid(rs: ptr<function, Rescan>, a: ptr<function, Acc>) -> bool {
  if ((*rs).bad_count > 0.0 || (*rs).amax == 0.0) { return false; }
  (*rs).exp = frexp((*rs).amax).exp;
  *a = acc_new(0u);
  (*rs).phase = 1u;
  return true;
}
fn rescan_end(rs: ptr<function, Rescan>, a: ptr<function, Acc>, n: f32) -> vec4f {
  if ((*rs).bad_count > 0.0) { return nonfinite_result(n, (*rs).bad); }
  if ((*rs).phase == 0u) { return vec4f(n, 0.0, 0.0, 0.0); }
  return unscale(acc_result(a), (*rs).exp);
}
// Elements of group j with logical index k in [k0, k1) (the order of reduce_range), one by one.
fn rescan_walk(rs: ptr<function, Rescan>, a: ptr<function, Acc>, j: u32, k0: u32, k1: u32) {
  for (var k = k0; k < k1; k += 1u) {
    let o = k / P.runLength;
    rescan_elem(rs, a, xv1((o * P.groups + j) * P.runLength + k - o * P.runLength));
  }
}
// The statistics of group j's elements [k0, k1), rescanned when the fast ones are suspect.
fn checked_range(a: ptr<function, Acc>, j: u32, k0: u32, k1: u32) -> vec4f {
  let r = acc_result(a);
  if (!acc_suspect(r)) { return r; }
  var rs = rescan_begin();
  rescan_walk(&rs, a, j, k0, k1);
  if (rescan_mid(&rs, a)) { rescan_walk(&rs, a, j, k0, k1); }
  return rescan_end(&rs, a, r.x);
}
//#endif

//#if BWD
// The sums are taken against saved statistics (mean, rstd) per lane: a group's (index
// s = j / groupsPerStat, the same in all four lanes; mean 0 without HAS_MEAN, rstd 1 without
// HAS_RSTD), or, channels-last, each lane's channel's (acc_new_lanes). W_BY_I: g = dy * w[i]
// (weight per position in a layer-norm row; other norms apply their weight per group in
// finalize.wgsl). The fourth sum, of x - mean, tells the finalize step how far the saved
// (float32-rounded) mean is from x's own mean.
struct GradSums {
  count: f32,        // elements (acc_lanes: elements per lane)
  sum_g: vec4f,      // per vec4 lane: sum g
  sum_gxhat: vec4f,  // per vec4 lane: sum g*xhat
  sum_dev: vec4f,    // per vec4 lane: sum (x - mean)
  tail_g: f32,       // the scalar lane's three sums
  tail_gxhat: f32,
  tail_dev: f32,
  mean: vec4f,       // the saved statistics, per lane
  rstd: vec4f,
}
alias Acc = GradSums;
fn acc_new(j: u32) -> Acc {
  let s = j / P.groupsPerStat;
  var mean = 0.0;
  var rstd = 1.0;
  //#if HAS_MEAN
  mean = mean_at(s);
  //#endif
  //#if HAS_RSTD
  rstd = rstd_at(s);
  //#endif
  return acc_new_lanes(vec4f(mean), vec4f(rstd));
}
fn acc_new_lanes(mean: vec4f, rstd: vec4f) -> Acc { return Acc(0.0, vec4f(0.0), vec4f(0.0), vec4f(0.0), 0.0, 0.0, 0.0, mean, rstd); }
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
// The group's saved (mean, rstd), as the sums use them (lane 0's of acc_new_lanes).
fn acc_saved(a: ptr<function, Acc>) -> vec2f { return vec2f((*a).mean.x, (*a).rstd.x); }
fn acc_recenter(a: ptr<function, Acc>) {}
fn acc4(a: ptr<function, Acc>, e: u32, i: u32) {
  var g = DY_ld4(e);
  //#if W_BY_I
  g *= W_ld4(i);
  //#endif
  let dv = dev4(xv4(e), (*a).mean);
  (*a).sum_g += g;
  (*a).sum_gxhat += g * hold4(dv * (*a).rstd);
  (*a).sum_dev += dv;
  (*a).count += 4.0;
}
// One element per lane, g its gradient (channels-last: a lane per channel).
fn acc_lanes(a: ptr<function, Acc>, x: vec4f, g: vec4f) {
  let dv = dev4(x, (*a).mean);
  (*a).sum_g += g;
  (*a).sum_gxhat += g * hold4(dv * (*a).rstd);
  (*a).sum_dev += dv;
  (*a).count += 1.0;
}
fn acc1(a: ptr<function, Acc>, e: u32, i: u32) {
  var g = DY_ld(e);
  //#if W_BY_I
  g *= W_ld(i);
  //#endif
  let dv = dev(xv1(e), (*a).mean.x);
  (*a).tail_g += g;
  (*a).tail_gxhat += g * hold(dv * (*a).rstd.x);
  (*a).tail_dev += dv;
  (*a).count += 1.0;
}
// (n, sum g, sum g*xhat, sum (x - mean)).
fn acc_result(a: ptr<function, Acc>) -> vec4f {
  let g = (*a).sum_g;
  let h = (*a).sum_gxhat;
  let c = (*a).sum_dev;
  return vec4f((*a).count, (g.x + g.y) + (g.z + g.w) + (*a).tail_g, (h.x + h.y) + (h.z + h.w) + (*a).tail_gxhat, (c.x + c.y) + (c.z + c.w) + (*a).tail_dev);
}
// Each lane alone (channels-last), as (n, sum g, sum g*xhat, sum (x - mean)).
fn acc_lanes_result(a: ptr<function, Acc>) -> array<vec4f, 4> {
  let n = (*a).count;
  let g = (*a).sum_g;
  let h = (*a).sum_gxhat;
  let c = (*a).sum_dev;
  return array<vec4f, 4>(vec4f(n, g.x, h.x, c.x), vec4f(n, g.y, h.y, c.y), vec4f(n, g.z, h.z, c.z), vec4f(n, g.w, h.w, c.w));
}
fn checked_range(a: ptr<function, Acc>, j: u32, k0: u32, k1: u32) -> vec4f { return acc_result(a); }
//#endif

//#if WELFORD || SUMSQ || BWD
// Feed the elements of group j with logical index k in [k0, k1) to the accumulator, four at a
// time within each contiguous segment.
fn reduce_range(a: ptr<function, Acc>, j: u32, k0: u32, k1: u32) {
  let inner = P.runLength;
  var o = k0 / inner;
  var i = k0 - o * inner;
  var left = k1 - k0;
  loop {
    if (left == 0u) { break; }
    let len = min(inner - i, left);
    let base = (o * P.groups + j) * inner;
    var p = i;
    let end = i + len;
    //#if WELFORD
    // The shifts start at the first quad; then blocks of 4 quads, the shifts moved to the
    // running means after each (acc_recenter).
    if ((*a).count == 0.0 && p + 4u <= end) {
      acc4(a, base + p, p);
      acc_recenter(a);
      p += 4u;
    }
    for (; p + 16u <= end; p += 16u) {
      acc4(a, base + p, p);
      acc4(a, base + p + 4u, p + 4u);
      acc4(a, base + p + 8u, p + 8u);
      acc4(a, base + p + 12u, p + 12u);
      acc_recenter(a);
    }
    //#endif
    for (; p + 4u <= end; p += 4u) { acc4(a, base + p, p); }
    acc_recenter(a);
    for (; p < end; p += 1u) { acc1(a, base + p, p); }
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
fn reduce_interleaved(a: ptr<function, Acc>, j: u32, c: u32) {
  let K = P.runs * P.runLength;
  let base = j * K;
  let nq = K / 4u;
  var q = c;
  //#if WELFORD
  if (q < nq) {
    acc4(a, quad_at(j, q), 4u * q);
    acc_recenter(a);
    q += P.chunks;
  }
  for (; q + 3u * P.chunks < nq; q += 4u * P.chunks) {
    acc4(a, quad_at(j, q), 4u * q);
    acc4(a, quad_at(j, q + P.chunks), 4u * (q + P.chunks));
    acc4(a, quad_at(j, q + 2u * P.chunks), 4u * (q + 2u * P.chunks));
    acc4(a, quad_at(j, q + 3u * P.chunks), 4u * (q + 3u * P.chunks));
    acc_recenter(a);
  }
  //#endif
  for (; q < nq; q += P.chunks) { acc4(a, quad_at(j, q), 4u * q); }
  acc_recenter(a);
  if (c == 0u) {
    for (var i = 4u * nq; i < K; i += 1u) { acc1(a, base + i, i); }
  }
}
//#if WELFORD || SUMSQ
// The same elements as reduce_interleaved, one by one (the careful rescan).
fn rescan_walk_interleaved(rs: ptr<function, Rescan>, a: ptr<function, Acc>, j: u32, c: u32) {
  let K = P.runs * P.runLength;
  let base = j * K;
  let nq = K / 4u;
  for (var q = c; q < nq; q += P.chunks) {
    let e = quad_at(j, q);
    for (var i = e; i < e + 4u; i += 1u) { rescan_elem(rs, a, xv1(i)); }
  }
  if (c == 0u) {
    for (var i = 4u * nq; i < K; i += 1u) { rescan_elem(rs, a, xv1(base + i)); }
  }
}
fn checked_interleaved(a: ptr<function, Acc>, j: u32, c: u32) -> vec4f {
  let r = acc_result(a);
  if (!acc_suspect(r)) { return r; }
  var rs = rescan_begin();
  rescan_walk_interleaved(&rs, a, j, c);
  if (rescan_mid(&rs, a)) { rescan_walk_interleaved(&rs, a, j, c); }
  return rescan_end(&rs, a, r.x);
}
//#else
fn checked_interleaved(a: ptr<function, Acc>, j: u32, c: u32) -> vec4f { return acc_result(a); }
//#endif
//#endif
