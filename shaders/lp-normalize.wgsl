// lp-normalize.wgsl: Lp normalization along a dim (PyTorch F.normalize; apply family), forward
// and backward, one invocation per lane.
//
// Entry points:
//#file apply
//#entry lp_normalize_lanes LP_FWD memory=lanes
//#entry lp_normalize_grad_lanes LP_BWD memory=lanes

//#if LP_FWD || LP_BWD
// Lp normalization along a dim (PyTorch F.normalize): the lanes of the Grouping
// [outer, runs, groups, 1] (src/grouping.ts). Lane t = o * groups + i < outer * groups holds the
// runs elements (o * runs + d) * groups + i, d < runs (a middle dim: neighbouring invocations read
// neighbouring elements; the last dim, groups = 1: one lane per row). One invocation per lane.
fn lane_e(t: u32, d: u32) -> u32 {
  let o = t / P.groups;
  return (o * P.runs + d) * P.groups + (t - o * P.groups);
}
// |a|^(p - 1) * sign(a): d|a|^p / da / p.
fn lp_dpow(a: f32) -> f32 {
  if (P.power == 2.0) { return a; }
  if (P.power == 1.0) { return sign(a); }
  if (a == 0.0) { return 0.0; }
  return sign(a) * pow(abs(a), P.power - 1.0);
}
//#endif

//#if LP_FWD
// ‖lane t‖_p: the lane's largest |x| first (NaN anywhere: NaN; an Inf: Inf), then the sum of
// (|x| * 2^-k)^p with 2^k near that largest value (scaling by a power of two is exact, and no
// |x|^p overflows or underflows), in blocks of 256 (a short sequential sum per block), the root r
// scaled back by 2^k: n = r * 2^k (Inf where that is past float32, r and k still finite).
struct LaneNorm { n: f32, r: f32, k: i32 }
fn lane_norm(t: u32) -> LaneNorm {
  var m = 0.0;
  var nan = false;
  for (var d = 0u; d < P.runs; d += 1u) {
    let a = abs(X_ld(lane_e(t, d)));
    nan = nan || (bitcast<u32>(a) > 0x7f800000u);
    m = max(m, a);
  }
  // (NaN from a uniform: a constant NaN is a shader-creation error.)
  if (nan) {
    let q = bitcast<f32>(0x7fc00000u | P.opaqueZero);
    return LaneNorm(q, q, 0);
  }
  if (!finite(m) || m == 0.0) { return LaneNorm(m, m, 0); }
  let k = frexp(m).exp;
  var blk = 0.0;
  var tot = 0.0;
  for (var d = 0u; d < P.runs; d += 1u) {
    let a = ldexp_wide(abs(X_ld(lane_e(t, d))), -k);
    var v = a;
    if (P.power == 2.0) { v = a * a; } else if (P.power != 1.0) { v = select(pow(a, P.power), 0.0, a == 0.0); }
    blk += v;
    if ((d & 255u) == 255u) {
      tot += blk;
      blk = 0.0;
    }
  }
  tot += blk;
  var r = tot;
  if (P.power == 2.0) { r = sqrt(tot); } else if (P.power != 1.0) { r = pow(tot, 1.0 / P.power); }
  return LaneNorm(ldexp_wide(r, k), r, k);
}

//#if lp_normalize_lanes
@compute @workgroup_size(WG)
fn lp_normalize_lanes(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
  let t = inv_index(lid, wid, nwg);
  if (t >= P.outer * P.groups) { return; }
  //#if WINDOW
  if (t >= P.invocationEnd) { return; }
  //#endif
  let ln = lane_norm(t);
  let n = ln.n;
  NORM_st(t, n);
  // max(NaN, eps) is indeterminate in WGSL: a NaN norm is kept (PyTorch's clamp_min keeps NaN).
  let isNan = (bitcast<u32>(n) & 0x7fffffffu) > 0x7f800000u;
  if (!isNan && n >= P.eps) {
    // x / n as (x * 2^-k) / r: the same quotient, and right where n is past float32 (a lane of
    // values near its largest: y is not 0).
    for (var d = 0u; d < P.runs; d += 1u) {
      let e = lane_e(t, d);
      Y_st(e, ldexp_wide(X_ld(e), -ln.k) / ln.r);
    }
    return;
  }
  let den = select(max(n, P.eps), n, isNan);
  for (var d = 0u; d < P.runs; d += 1u) {
    let e = lane_e(t, d);
    Y_st(e, X_ld(e) / den);
  }
}
//#endif

//#if LP_BWD
// dx = (dy - s * |y|^(p-1) sign(y)) / n with y = x / n and s = sum dy * y over the lane, where the
// norm n >= eps (a NaN norm too: NaN follows); else (the clamp max(n, eps) took eps, whose
// gradient is zero) dx = dy / eps.
// The gradient sum of lane t, s = sum dy * x / n, with quotients by the norm n as q(v) below.
// A norm outside [2^-125, 2^125] divides as (v * 2^-k) / r with n = r * 2^k, r in [0.5, 1)
// (frexp): there WGSL does not bound a division's error (GPUs' fast division returns 0 for
// divisors past 2^126). Inside, and for a norm of Inf or NaN as given, v / n as it is. `wide` is
// a constant at each call (the kernel's dx loops are written twice): measured as fast as before
// on SwiftShader, where a run-time choice per element measured 0.71x.
fn lane_grad_sum(t: u32, n: f32, r: f32, k: i32, wide: bool) -> f32 {
  var blk = 0.0;
  var s = 0.0;
  for (var d = 0u; d < P.runs; d += 1u) {
    let e = lane_e(t, d);
    if (wide) { blk += DY_ld(e) * (ldexp_wide(X_ld(e), -k) / r); } else { blk += DY_ld(e) * (X_ld(e) / n); }
    if ((d & 255u) == 255u) {
      s += blk;
      blk = 0.0;
    }
  }
  return s + blk;
}
//#if lp_normalize_grad_lanes
@compute @workgroup_size(WG)
fn lp_normalize_grad_lanes(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
  let t = inv_index(lid, wid, nwg);
  if (t >= P.outer * P.groups) { return; }
  //#if WINDOW
  if (t >= P.invocationEnd) { return; }
  //#endif
  let n = NORM_ld(t);
  if (n < P.eps) {
    for (var d = 0u; d < P.runs; d += 1u) {
      let e = lane_e(t, d);
      DX_st(e, DY_ld(e) / P.eps);
    }
    return;
  }
  let inside = (n >= 0x1p-125 && n <= 0x1p125) || !finite(n);
  if (inside) {
    let s = lane_grad_sum(t, n, n, 0, false);
    for (var d = 0u; d < P.runs; d += 1u) {
      let e = lane_e(t, d);
      DX_st(e, (DY_ld(e) - s * lp_dpow(X_ld(e) / n)) / n);
    }
    return;
  }
  let f = frexp(n);
  let s = lane_grad_sum(t, n, f.fract, f.exp, true);
  for (var d = 0u; d < P.runs; d += 1u) {
    let e = lane_e(t, d);
    DX_st(e, ldexp_wide(DY_ld(e) - s * lp_dpow(ldexp_wide(X_ld(e), -f.exp) / f.fract), -f.exp) / f.fract);
  }
}
//#endif
