// finalize.wgsl: per-group merges of the partials written by reduce.wgsl, and the small
// per-group (or per-channel) computations that follow them.
//
// One invocation handles one group j < outputs and merges its partials, found at
// PART[4*(j*groupStride + c*partialStride)] for partialBegin <= c < partials (partialBegin = 0
// but for blocks of weight_bias_grads ACCUM):
// Chan's merge for WELFORD, roots of sums of squares for SUMSQ, plain sums otherwise.
// `partials` is at most a few hundred, so the sequential merge is short; the long reductions were split
// by reduce.wgsl. Modes (one compiled in):
//   FIN_STATS   mean = s + m, rstd = 1/sqrt(M2/n + eps), and LO = (s, m) pairs for the apply
//               step (see reduce.wgsl); RUNNING: batch-norm running update
//   FIN_CAST    float32 -> float16 copy of a small per-group output, one u32 word per invocation
//               (per-group results are computed in f32 and packed here, so that no two
//               invocations share a word)
//   FIN_RMS     rstd = 1/sqrt(sum x^2 / n + eps)
//   FIN_WN      norm = sqrt(sum v^2), scale = g / norm
//   FIN_BWD     backward coefficients (alpha, beta, gamma, mu) for BWD_APPLY in apply.wgsl, and
//               optionally dweight/dbias per group (batch norm)
//   FIN_BWD_WN  weight-norm backward coefficients and dg
//   FIN_SUMS    merged sums written out (group norm per (n, c))
//   FIN_MERGE   blocks of partialsPerBlock partials merged into one (blocksPerGroup per group)
//   FIN_DWDB    dweight = sum g*xhat, dbias = sum g (layer-norm columns, group-norm channels);
//               ACCUM: added to the values already stored
//   FIN_GN      group-norm coefficients per (n, g) from the per-(n, c) sums
//
// Entry points: name, then the sections (roles) it compiles in. Flags the host may set follow.
//#entry finalize_mean_rstd FIN_STATS WELFORD
//#entry finalize_rms FIN_RMS SUMSQ
//#entry finalize_weight_norm FIN_WN SUMSQ
//#entry grad_coefficients FIN_BWD
//#entry weight_norm_grad_coefficients FIN_BWD_WN
//#entry grad_sums FIN_SUMS
//#entry group_grad_coefficients FIN_GN
//#entry weight_bias_grads FIN_DWDB
//#entry merge_welford FIN_MERGE WELFORD
//#entry merge_sumsq FIN_MERGE SUMSQ
//#entry merge_sums FIN_MERGE
//#entry cast_half FIN_CAST
//#entry modulation_grad_sums FIN_MODS
//#flag RUNNING      batch-norm running statistics updated in place (RM, RV)
//#flag W_BY_J       the weight of group j multiplies the coefficients (W)
//#flag DW           dweight is written (DW)
//#flag DB           dbias is written (DB)
//#flag GATE_SUMS    weight_bias_grads writes the fourth sum (dgate: sum dresidual * x) as DW
//#flag ACCUM        add to the values already stored (blocks of one reduction)
//#flag MS_SCALED    modulation_grad_sums: the partials are of dy before the scale (SC): dweight/dbias terms times scaleOffset + scale
//#flag MS_DSC       modulation_grad_sums writes dscale (DSC)
//#flag MS_DSH       modulation_grad_sums writes dshift (DSH)
//#flag MS_DGT       modulation_grad_sums writes dgate (DGT)
//#flag GN_KR        group_grad_coefficients stores each group's k * rstd (KR, the saved mean's rounding, see FIN_GN); weight_bias_grads takes KR * sum dy out of each per-(n, c) sum of dy*xhat
//#flag GN_BLOCK     group_grad_coefficients over one block of a group's channels (channelBegin, channelsPerBlock)

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
fn weight_norm_out(j: u32) {
  let r = merged(j);
  let nrm = select(sqrt(r.y), -r.y * sqrt(r.x), q_is_root(r.y));
  NORMS_st(j, nrm);
  SCALE_st(j, G_ld(j) / nrm);
}
//#endif

//#if FIN_BWD
fn grad_coefficients_out(j: u32) {
  var r = merged(j);
  //#if EVAL_STATS
  // Batch-norm eval: rstd and mean from the running statistics (FIN_EVAL folded in).
  let rs = 1.0 / sqrt(RV_ld(j) + P.eps);
  var mu = RM_ld(j);
  //#else
  let rs = RSTD_ld(j);
  var mu = 0.0;
  //#if HAS_MEAN
  mu = MEAN_ld(j);
  //#endif
  //#endif
  var wj = 1.0;
  //#if W_BY_J
  wj = W_ld(j);
  //#endif
  //#if EVAL
  COEF_st4(4u * j, vec4f(rs, 0.0, 0.0, mu));
  //#else
  // x's own mean is mu + k (k: the saved mean's rounding, recovered from the sum of x - mu), so
  // xhat = ((x - mu) - k) * rs: sum g*xhat gets -k*rs*sum g, and dx's beta absorbs -gamma*k*rs.
  // dx = rs * (g + beta + gamma * xhat): rs, the factor that may be huge or tiny, comes last, so
  // no intermediate leaves float32's normal range when dx is inside it (WGSL may flush subnormals).
  var beta = 0.0;
  var k = 0.0;
  //#if HAS_MEAN
  k = mean_fix(r.w, r.x, mu);
  r.z -= (k * rs) * r.y;
  beta = -wj * r.y / r.x;
  //#endif
  let gamma = -(wj * r.z / r.x);
  COEF_st4(4u * j, vec4f(rs, beta - gamma * (k * rs), gamma, mu));
  //#if HAS_CORR
  CORR_st(j, k);
  //#endif
  //#endif
  //#if DW
  DW_st(j, r.z);
  //#endif
  //#if DB
  DB_st(j, r.y);
  //#endif
}
//#endif

//#if FIN_BWD_WN
fn weight_norm_grad_out(j: u32) {
  let r = merged(j);
  let nrm = NORMS_ld(j);
  let gj = G_ld(j);
  // dv = (g/|v|) * (dw - (s/|v|) * (v/|v|)) = alpha * (dw + gamma * xhat) with alpha = g/|v|,
  // gamma = -s/|v| and xhat = v * (1/|v|) (apply.wgsl xhat4 with WN_XHAT): no factor of 1/g.
  COEF_st4(4u * j, vec4f(gj / nrm, 0.0, -(r.z / nrm), 1.0 / nrm));
  DG_st(j, r.z / nrm);
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

//#if FIN_DWDB
fn weight_bias_out(j: u32) {
  // ACCUM: added to what an earlier step over other partials stored (blocks of rows of sums).
  var r = merged(j);
  //#if ACCUM
  //#if DW
  r.z += DW_ld(j);
  //#endif
  //#if DB
  r.y += DB_ld(j);
  //#endif
  //#endif
  //#if DW
  //#if GATE_SUMS
  DW_st(j, r.w);
  //#else
  DW_st(j, r.z);
  //#endif
  //#endif
  //#if DB
  DB_st(j, r.y);
  //#endif
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

//#if FIN_GN
fn group_coefficients_out(j: u32) {
  // j = n*numGroups + g; the group's channels are g*Cg .. (g+1)*Cg - 1 (Cg = channelsPerGroup).
  // GN_BLOCK: only channels channelBegin .. + channelsPerBlock - 1 (groups whose sums are past a
  // binding), the coefficients being linear in the sums given the count Cg*spatial; ACCUM adds
  // them to the earlier blocks'.
  let n = j / P.numGroups;
  let g = j - n * P.numGroups;
  var cnt = 0.0;
  var sg = 0.0;
  var sgx = 0.0;
  var sdev = 0.0;
  //#if GN_BLOCK
  let cA = g * P.channelsPerGroup + P.channelBegin;
  let cB = g * P.channelsPerGroup + min(P.channelBegin + P.channelsPerBlock, P.channelsPerGroup);
  //#else
  let cA = g * P.channelsPerGroup;
  let cB = (g + 1u) * P.channelsPerGroup;
  //#endif
  for (var c = cA; c < cB; c += 1u) {
    let s = PART_ld4(4u * (n * P.channels + c));
    var w = 1.0;
    //#if W_BY_J
    w = W_ld(c);
    //#endif
    cnt += s.x;
    sg += w * s.y;
    sgx += w * s.z;
    sdev += s.w;
  }
  //#if GN_BLOCK
  cnt = f32(P.channelsPerGroup) * f32(P.spatial);
  //#endif
  let rs = RSTD_ld(j);
  let mu = MEAN_ld(j);
  // The saved mean's rounding k, recovered from the sums of x - mu (as FIN_BWD; not for groups
  // whose sums come in blocks, GN_BLOCK, where one block does not see the whole group): the
  // per-channel sums of dy*xhat need k * rstd times their sum of dy taken out for dweight: stored
  // per group (KR, GN_KR) for weight_bias_grads, the sums themselves left as they are.
  var k = 0.0;
  //#if GN_BLOCK
  //#else
  k = mean_fix(sdev, cnt, mu);
  sgx -= (k * rs) * sg;
  //#endif
  //#if GN_KR
  KR_st(j, k * rs);
  //#endif
  let gamma = -sgx / cnt;
  var cf = vec4f(rs, -sg / cnt - gamma * (k * rs), gamma, mu);
  //#if ACCUM
  let prev = COEF_ld4(4u * j);
  cf.y += prev.y;
  cf.z += prev.z;
  //#endif
  COEF_st4(4u * j, cf);
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

//#if grad_coefficients
@compute @workgroup_size(WG)
fn grad_coefficients(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = out_index(lid, wid, nwg);
  if (j < P.outputs) { grad_coefficients_out(j); }
}
//#endif

//#if weight_norm_grad_coefficients
@compute @workgroup_size(WG)
fn weight_norm_grad_coefficients(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = out_index(lid, wid, nwg);
  if (j < P.outputs) { weight_norm_grad_out(j); }
}
//#endif

//#if grad_sums
@compute @workgroup_size(WG)
fn grad_sums(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = out_index(lid, wid, nwg);
  if (j < P.outputs) { sums_out(j); }
}
//#endif

//#if group_grad_coefficients
@compute @workgroup_size(WG)
fn group_grad_coefficients(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = out_index(lid, wid, nwg);
  if (j < P.outputs) { group_coefficients_out(j); }
}
//#endif

//#if weight_bias_grads
@compute @workgroup_size(WG)
fn weight_bias_grads(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = out_index(lid, wid, nwg);
  if (j < P.outputs) { weight_bias_out(j); }
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

//#if modulation_grad_sums
// The modulation's gradients of a modulated layer/RMS-norm backward from the column partials of its
// row kernel (MOD_SUMS in rows.wgsl / apply.wgsl): column d < outputs (K columns) has partials
// PART[4*(d*partials + b)] = (rows, sum dy, sum dy*xhat, sum (dx + dsum)*x) for blocks b < partials,
// blocksPerRun blocks per run of rows, run u using modulation row u % modMod; dy is the gradient as
// given (before the scale). Per modulation row m and column d, with S the sums over m's runs and
// n = xhat*w + b the norm's output:
//   dshift = S(dy),  dscale = w * S(dy*xhat) + b * S(dy),  dgate = S((dx + dsum)*x),
// and over the rows, each run's sums times its factor f = scaleOffset + scale (MS_SCALED, else 1):
//   dweight = sum_m f * S(dy*xhat),  dbias = sum_m f * S(dy).
// One invocation per column; fixed order (deterministic).
@compute @workgroup_size(WG)
fn modulation_grad_sums(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let d = inv_index(lid, wid, nwg);
  if (d >= P.outputs) { return; }
  let K = P.outputs;
  let runs = P.partials / P.blocksPerRun;
  var w = 1.0;
  var bias = 0.0;
  //#if HAS_W
  w = W_ld(d);
  //#endif
  //#if HAS_B
  bias = B_ld(d);
  //#endif
  var dw = 0.0;
  var db = 0.0;
  for (var m = 0u; m < P.modMod; m += 1u) {
    var s = vec3f(0.0);
    for (var u = m; u < runs; u += P.modMod) {
      for (var b = u * P.blocksPerRun; b < (u + 1u) * P.blocksPerRun; b += 1u) { s += PART_ld4(4u * (d * P.partials + b)).yzw; }
    }
    let i = m * K + d;
    var f = 1.0;
    //#if MS_SCALED
    f = P.scaleOffset + SC_ld(i);
    //#endif
    dw += f * s.y;
    db += f * s.x;
    //#if MS_DSC
    DSC_st(i, w * s.y + bias * s.x);
    //#endif
    //#if MS_DSH
    DSH_st(i, s.x);
    //#endif
    //#if MS_DGT
    DGT_st(i, s.z);
    //#endif
  }
  //#if DW
  DW_st(d, dw);
  //#endif
  //#if DB
  DB_st(d, db);
  //#endif
}
//#endif
