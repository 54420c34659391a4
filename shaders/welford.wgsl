// welford.wgsl: the Welford accumulator (section WELFORD: layer, group, instance and batch norm
// statistics), behind the interface of accumulate.wgsl.
//#file accumulator

//#if WELFORD
// The mean as a pair: with 1e4 + N(0, 1) in f32 a rounded mean alone is off by up to half an ulp
// of 1e4 (~5e-4 sigma). Four vec4 lanes with a shared count, and one scalar lane (the elements
// past the last whole quad; the rescan). A lane's mean is the unevaluated sum shift + offset:
// every 4 quads (every element in the scalar lane) the shift moves to the running mean (shift +
// offset rounded) and offset keeps the rounding error (split_sum, common.wgsl), so x - shift is
// the deviation from a recent running mean: exact (Sterbenz) for elements near the mean whatever
// the offset, and never computed against a far element for long (an outlier first in a group does
// not spoil the rest; the few elements before a recentre carry a rounding that is damped like any
// early Welford step). The lanes are merged by Chan (common.wgsl).
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
fn unscale(r: vec4f, e: i32) -> vec4f { return vec4f(r.x, ldexp_wide(r.y, e), ldexp_wide(r.z, e), q_from_root(ldexp_wide(sqrt(r.w / r.x), e))); }
//#endif
