// grad-sums.wgsl: the backward's sums accumulator (section BWD: the gradient sums of every norm's
// backward), behind the interface of accumulate.wgsl.
//
//#file accumulator
// Flags the host may set:
//#flag HAS_RSTD     the saved rstd is bound (RSTD; RV with EVAL_STATS)
//#flag W_BY_I       g = dy * w[i], the weight per position in a row
//#flag RSTD_RECIP   RSTD holds a norm |v|; the factor is its reciprocal (weight-norm backward)

//#if BWD
// The sums are taken against saved statistics (mean, rstd) per lane: a group's (index
// s = j / groupsPerStat, the same in all four lanes; mean 0 without HAS_MEAN, rstd 1 without
// HAS_RSTD), or, channels-last, each lane's channel's (acc_new_lanes). W_BY_I: g = dy * w[i]
// (weight per position in a layer-norm row; other norms apply their weight per group in
// finalize-grad.wgsl). The fourth sum, of x - mean, tells the finalize step how far the saved
// (float32-rounded) mean is from x's own mean.
struct GradSums {
  count: f32,        // elements (acc_lanes: elements per lane)
  sum_g: vec4f,      // per vec4 lane: sum g
  sum_gxhat: vec4f,  // per vec4 lane: sum g*xhat
  sum_dev: vec4f,    // per vec4 lane: sum (x - mean)
  tail_g: f32,       // the scalar lane's three sums
  tail_gxhat: f32,
  tail_dev: f32,
  mean: vec4f,       // the saved statistics per lane, as applied (scaled_stats in common.wgsl):
  rstd: vec4f,       // mean * p, rstd = a * p as a (normal), and p; the sums are of the scaled
  p: vec4f,          // deviations x * p - mean * p (k, recovered from them, is in those units)
}
alias Acc = GradSums;
fn acc_new(j: u32) -> Acc {
  let sv = saved_of(j);
  return acc_new_lanes(vec4f(sv.x), vec4f(sv.y));
}
// Group j's saved (mean, rstd) as stored (mean 0 without HAS_MEAN, rstd 1 without HAS_RSTD).
fn saved_of(j: u32) -> vec2f {
  let s = j / P.groupsPerStat;
  var mean = 0.0;
  var rstd = 1.0;
  //#if HAS_MEAN
  mean = mean_at(s);
  //#endif
  //#if HAS_RSTD
  rstd = rstd_at(s);
  //#endif
  return vec2f(mean, rstd);
}
// A lane's saved (mean, rstd) as the sums apply them: scaled_stats, or in batch-norm eval's
// backward eval_stats (a running mean past 2^100 scales the data too).
fn saved_scaled(mu: f32, r: f32) -> vec4f {
  //#if EVAL_STATS
  return eval_stats(mu, r);
  //#else
  return scaled_stats(mu, 0.0, r);
  //#endif
}
fn acc_new_lanes(mean: vec4f, rstd: vec4f) -> Acc {
  let a = saved_scaled(mean.x, rstd.x);
  let b = saved_scaled(mean.y, rstd.y);
  let c = saved_scaled(mean.z, rstd.z);
  let d = saved_scaled(mean.w, rstd.w);
  return Acc(0.0, vec4f(0.0), vec4f(0.0), vec4f(0.0), 0.0, 0.0, 0.0, vec4f(a.x, b.x, c.x, d.x), vec4f(a.z, b.z, c.z, d.z), vec4f(a.w, b.w, c.w, d.w));
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
  //#if RSTD_RECIP
  // Weight norm: RSTD holds |v|, the factor is 1/|v| (x-hat = v/|v|: the sum of dw * v/|v| is dg
  // itself, of bounded terms, where a sum of dw * v may pass float32).
  return quot_exact(1.0, RSTD_ld(s));
  //#else
  return RSTD_ld(s);
  //#endif
  //#endif
}
//#endif
// The group's saved (mean, rstd) as the sums use them (lane 0's of acc_new_lanes): (mean * p, a).
fn acc_saved(a: ptr<function, Acc>) -> vec2f { return vec2f((*a).mean.x, (*a).rstd.x); }
fn acc_recenter(a: ptr<function, Acc>) {}
fn acc4(a: ptr<function, Acc>, e: u32, i: u32) {
  var g = DY_ld4(e);
  //#if W_BY_I
  g *= W_ld4(i);
  //#endif
  let dv = dev4(xv4(e) * (*a).p, (*a).mean);
  (*a).sum_g += g;
  (*a).sum_gxhat += g * hold4(dv * (*a).rstd);
  (*a).sum_dev += dv;
  (*a).count += 4.0;
}
// One element per lane, g its gradient (channels-last: a lane per channel).
fn acc_lanes(a: ptr<function, Acc>, x: vec4f, g: vec4f) {
  let dv = dev4(x * (*a).p, (*a).mean);
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
  let dv = dev(xv1(e) * (*a).p.x, (*a).mean.x);
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
