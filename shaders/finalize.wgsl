// finalize.wgsl: per-group merges of the partials written by reduce.wgsl, and the small
// per-group (or per-channel) computations that follow them.
//
// One invocation handles one group j < outputs and merges its partials, found at
// PART[4*(j*groupStride + c*partialStride)] for partialBegin <= c < partials (partialBegin = 0
// but for blocks of weight_bias_grads ACCUM):
// Chan's merge for WELFORD, roots of sums of squares for SUMSQ, plain sums otherwise.
// `partials` is at most a few hundred, so the sequential merge is short; the long reductions were split
// by reduce.wgsl. Modes (one compiled in; the backward's are in finalize-grad.wgsl, compiled after
// this file with merge_range and out_index):
//   FIN_STATS   mean = s + m, rstd = 1/sqrt(M2/n + eps), and LO = (s, m) pairs for the apply
//               step (see reduce.wgsl); RUNNING: batch-norm running update
//   FIN_CAST    float32 -> float16 copy of a small per-group output, one u32 word per invocation
//               (per-group results are computed in f32 and packed here, so that no two
//               invocations share a word)
//   FIN_RMS     rstd = 1/sqrt(sum x^2 / n + eps)
//   FIN_WN      norm = sqrt(sum v^2), scale = g / norm
//   FIN_SUMS    merged sums written out (group norm per (n, c))
//   FIN_MERGE   blocks of partialsPerBlock partials merged into one (blocksPerGroup per group)
//
// Entry points: name, the sections (roles) it compiles in, its memory model (kernels/memory.ts).
// Flags the host may set follow.
//#file finalize
//#entry finalize_mean_rstd FIN_STATS WELFORD memory=perGroup
//#entry finalize_rms FIN_RMS SUMSQ memory=perGroup
//#entry finalize_weight_norm FIN_WN SUMSQ memory=perGroup
//#entry grad_sums FIN_SUMS memory=perGroup
//#entry merge_welford FIN_MERGE WELFORD memory=merge
//#entry merge_sumsq FIN_MERGE SUMSQ memory=merge
//#entry merge_sums FIN_MERGE memory=merge
//#entry cast_half FIN_CAST memory=perGroup
//#flag RUNNING      batch-norm running statistics updated in place (RM, RV)

//#if FIN_STATS || FIN_RMS || FIN_WN || FIN_BWD || FIN_BWD_WN || FIN_SUMS || FIN_DWDB || FIN_MERGE
// Partials ca <= c < cb of group j, merged. WELFORD and SUMSQ partials carry their sums of
// squares q encoded (plain, or minus a root mean square for rescanned chunks: q_root in
// common.wgsl) and so does the merge: plain sums when every partial is plain and the sum is
// not suspect (full precision), else again with hypot steps on the roots (no overflow or
// underflow).
fn part_at(j: u32, c: u32) -> vec4f { return PART_ld4(4u * (j * P.groupStride + c * P.partialStride)); }
fn merge_range(j: u32, ca: u32, cb: u32) -> vec4f {
  var r = vec4f(0.0);
  var root = false;
  for (var c = ca; c < cb; c += 1u) {
    let p = part_at(j, c);
    //#if WELFORD
    root = root || q_is_root(p.w);
    r = chan(r, p);
    //#else
    //#if SUMSQ
    root = root || q_is_root(p.y);
    r = vec4f(r.x + p.x, r.y + p.y, 0.0, 0.0);
    //#else
    //#if GN_KR
    // Group norm's per-(n, c) sums (partial c = sample n of channel j): the group's correction.
    r += vec4f(p.x, p.y, p.z - KR_ld(c * P.numGroups + j / P.channelsPerGroup) * p.y, p.w);
    //#else
    r += p;
    //#endif
    //#endif
    //#endif
  }
  //#if WELFORD
  if (r.x > 0.0 && (root || m2_suspect(r.w))) {
    r = vec4f(0.0);
    for (var c = ca; c < cb; c += 1u) {
      let p = part_at(j, c);
      r = chan_root(r, vec4f(p.xyz, q_root(p.x, p.w)));
    }
    return vec4f(r.xyz, q_from_root(r.w));
  }
  //#endif
  //#if SUMSQ
  if (r.x > 0.0 && (root || m2_suspect(r.y))) {
    r = vec4f(0.0);
    for (var c = ca; c < cb; c += 1u) {
      let p = part_at(j, c);
      if (p.x == 0.0) { continue; }
      let n = r.x + p.x;
      r = vec4f(n, hyp2(sqrt(r.x / n) * r.y, sqrt(p.x / n) * q_root(p.x, p.y)), 0.0, 0.0);
    }
    return vec4f(r.x, q_from_root(r.y), 0.0, 0.0);
  }
  //#endif
  return r;
}
fn merged(j: u32) -> vec4f { return merge_range(j, P.partialBegin, P.partials); }
//#endif

// One function per kernel role: the output of group (or block, or word) j < outputs; the entry
// points below call the role their `//#entry` line names. Invocation j's index, or P.outputs
// (none) past a windowed dispatch's invocations:
fn out_index(lid: vec3u, wid: vec3u, nwg: vec3u) -> u32 {
  let j = inv_index(lid, wid, nwg);
  //#if WINDOW
  if (j >= P.invocationEnd) { return P.outputs; }
  //#endif
  return j;
}

//#if FIN_STATS
fn mean_rstd_out(j: u32) {
  let r = merged(j);
  // (n, s, m, R): the mean is s + m; the apply step gets the pair (x - mean keeps its precision).
  let mean = r.y + r.z;
  MEAN_st(j, mean);
  RSTD_st(j, q_rstd(r.x, r.w, P.eps));
  LO_st(2u * j, r.y);
  LO_st(2u * j + 1u, r.z);
  //#if RUNNING
  let m = P.momentum;
  // Unbiased variance M2 / (n - 1) (through the root when that is how the merge left it).
  let su = q_root(r.x, r.w) * sqrt(r.x / (r.x - 1.0));
  let vu = select(r.w / (r.x - 1.0), su * su, q_is_root(r.w));
  RM_st(j, (1.0 - m) * RM_ld(j) + m * mean);
  RV_st(j, (1.0 - m) * RV_ld(j) + m * vu);
  //#endif
}
//#endif

//#if FIN_RMS
fn rms_out(j: u32) {
  let r = merged(j);
  RSTD_st(j, q_rstd(r.x, r.y, P.eps));
}
//#endif

//#if FIN_WN
// norms = |v| and the factor g/|v| as the pair (a, p), g/|v| = a * p with a and p normal where
// it is outside float32's normal range (|v| past 2^126 |g|, or past float32 itself: the root form
// S = |v| / sqrt(n) stays finite; or g past 2^128 |v|), so that normalize_elements (SCALE_PAIR)
// applies it to v * p as a factor a without a subnormal or infinite operand and without losing
// its precision.
fn weight_norm_out(j: u32) {
  let r = merged(j);
  let root = q_is_root(r.y);
  let nrm = select(sqrt(r.y), -r.y * sqrt(r.x), root);
  NORMS_st(j, nrm);
  let g = G_ld(j);
  var f = vec2f(g / nrm, 1.0);
  let S = select(nrm, -r.y, root);
  if (g != 0.0 && finite(g) && S > 0.0 && finite(S)) {
    // g / (S * sqrt(n)) (sqrt(n) = 1 for the plain form) as (gf / (sf * sqrt(n))) * 2^(ge - se).
    let fg = frexp(g);
    let fs = frexp(S);
    let q = fg.fract / (fs.fract * select(1.0, sqrt(r.x), root));
    // a = q * 2^(e + k), p = 2^-k: k = 0 for factors in [2^-100, 2^100]; below, a near 2^-62
    // (k up to 126); above (g huge beside |v|), a near 2^62 (k down to -126: v * p stays in
    // range, |v| <= |v|-norm being tiny there).
    let e = fg.exp - fs.exp;
    var k = 0;
    if (e < -100) { k = min(-e - 62, 126); }
    if (e > 100) { k = max(62 - e, -126); }
    f = vec2f(ldexp_exact(q, e + k), ldexp_wide(1.0, -k));
  }
  SCALE_st(2u * j, f.x);
  SCALE_st(2u * j + 1u, f.y);
}
//#endif

//#if FIN_SUMS
fn sums_out(j: u32) {
  OUT_st4(4u * j, merged(j));
}
//#endif

//#if FIN_MERGE
fn merge_block_out(j: u32) {
  // Partials of partials: invocation j = g*blocksPerGroup + b merges partials c in [b*L, (b+1)*L)
  // (L = partialsPerBlock) of group g into OUT[4j], for groups with more partials than one
  // invocation may bind (windowed ops; see policy.ts mergeWide).
  let g = j / P.blocksPerGroup;
  let b = j - g * P.blocksPerGroup;
  OUT_st4(4u * j, merge_range(g, b * P.partialsPerBlock, min(b * P.partialsPerBlock + P.partialsPerBlock, P.partials)));
}
//#endif

//#if FIN_CAST
fn cast_half_out(j: u32) {
  // j = word index; elements 2j and 2j + 1.
  let a = SRC_ld(2u * j);
  var b = 0.0;
  if (2u * j + 1u < P.elements) { b = SRC_ld(2u * j + 1u); }
  OUT_st2(2u * j, vec2f(a, b));
}
//#endif

//#if finalize_mean_rstd
@compute @workgroup_size(WG)
fn finalize_mean_rstd(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = out_index(lid, wid, nwg);
  if (j < P.outputs) { mean_rstd_out(j); }
}
//#endif

//#if finalize_rms
@compute @workgroup_size(WG)
fn finalize_rms(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = out_index(lid, wid, nwg);
  if (j < P.outputs) { rms_out(j); }
}
//#endif

//#if finalize_weight_norm
@compute @workgroup_size(WG)
fn finalize_weight_norm(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = out_index(lid, wid, nwg);
  if (j < P.outputs) { weight_norm_out(j); }
}
//#endif

//#if grad_sums
@compute @workgroup_size(WG)
fn grad_sums(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = out_index(lid, wid, nwg);
  if (j < P.outputs) { sums_out(j); }
}
//#endif

//#if merge_welford
@compute @workgroup_size(WG)
fn merge_welford(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = out_index(lid, wid, nwg);
  if (j < P.outputs) { merge_block_out(j); }
}
//#endif

//#if merge_sumsq
@compute @workgroup_size(WG)
fn merge_sumsq(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = out_index(lid, wid, nwg);
  if (j < P.outputs) { merge_block_out(j); }
}
//#endif

//#if merge_sums
@compute @workgroup_size(WG)
fn merge_sums(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = out_index(lid, wid, nwg);
  if (j < P.outputs) { merge_block_out(j); }
}
//#endif

//#if cast_half
@compute @workgroup_size(WG)
fn cast_half(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = out_index(lid, wid, nwg);
  if (j < P.outputs) { cast_half_out(j); }
}
//#endif
