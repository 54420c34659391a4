// accumulate.wgsl: the accumulators' interface, the walks that feed them and the careful rescan,
// shared by the partial reductions (reduce.wgsl), the row-fused kernels (fused-rows.wgsl,
// apply-grad.wgsl) and the careful per-row path of the one-workgroup-per-row kernels (rows.wgsl).
// A kernel compiles in one accumulator, chosen by its entry point's sections:
//   WELFORD  Welford (welford.wgsl): result (n, s, m, q), the mean as the unevaluated sum s + m
//            (x - mean keeps its precision at large offsets), q = M2.
//   SUMSQ    SumSq (sum-sq.wgsl): result (n, q, 0, 0), q = sum x^2: RMS norm and weight norm.
//   BWD      GradSums (grad-sums.wgsl): result (n, sum g, sum g*xhat, sum (x - mean[s])) with
//            g = dy * w[a], xhat = (x - mean[s]) * rstd[s].
// q is the plain sum of squares, or, for a chunk whose fast sums were non-finite or tiny and that
// was recomputed by the careful rescan (below), minus its root mean square (q_root in
// common.wgsl; the root of a mean square is finite for any finite data).
//
// The interface, the same in every accumulator (`Acc` names the struct compiled in). The state is
// the caller's: a function variable (`var a = acc_new(j);`) passed by pointer; nothing outside
// the accumulator's functions reads its fields.
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
//                                the same elements when suspect (BWD: acc_result)
// Channels-last partials (reduce.wgsl; Welford and GradSums) feed one element per lane, each lane
// its own channel: acc_lanes(a, x) (GradSums: acc_lanes(a, x, g), the lanes' saved statistics
// given to acc_new_lanes(mean, rstd)), and read each lane's result with acc_lanes_result(a).
// Welford and SumSq also have what the rescan uses: acc_scalar(a, x) (one element),
// acc_suspect(r), nonfinite_result, bad_term and unscale.
//
//#file accumulate
// Sections (chosen by entry points) and the flags the host may set:
//#section WELFORD SUMSQ BWD
//#flag RESIDUAL     x = X + R (the fused residual add)
//#flag HALF_SUM     float16 x + residual rounded to half, as the stored sum is
//#flag INTERLEAVE   chunk c takes quads c, c + chunks, ... of its group (coalesced loads on GPUs)
//#flag STRIDED      INTERLEAVE over strided groups (runs > 1, runLength % 4 == 0)

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


//#if WELFORD || SUMSQ
// The careful rescan of a chunk (or row) whose fast statistics are suspect (acc_suspect): pass 0
// finds the largest finite |x| and sums the non-finite elements; pass 1 accumulates x * 2^-e (e
// the exponent of that maximum, an exact scaling) into the caller's accumulator, emptied first,
// so no square over- or underflows, and the result is scaled back. It sums Inf/NaN as PyTorch's
// sums would, so any finite input gives finite statistics wherever float32 can hold them. Only
// data with Inf/NaN, huge or tiny magnitudes (or a constant chunk) pays for it. Used as: var rs = rescan_begin(); walk;
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
    // ldexp_wide, not a multiplication by 2^-e: that factor is subnormal (flushed to 0 on GPUs) for e > 126.
    acc_scalar(a, ldexp_wide(x, -(*rs).exp));
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
