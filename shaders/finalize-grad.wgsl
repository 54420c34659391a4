// finalize-grad.wgsl: the backward's per-group steps after the partials are merged (merge_range,
// out_index and the uniform fields as in finalize.wgsl, compiled in front of this file): the
// coefficients of the dx kernels and dweight/dbias, and the modulated norms' modulation gradients.
// Modes (one compiled in):
//   FIN_BWD     backward coefficients (alpha, beta, gamma, mu) for BWD_APPLY in apply.wgsl, and
//               optionally dweight/dbias per group (batch norm)
//   FIN_BWD_WN  weight-norm backward coefficients and dg
//   FIN_DWDB    dweight = sum g*xhat, dbias = sum g (layer-norm columns, group-norm channels);
//               ACCUM: added to the values already stored
//   FIN_GN      group-norm coefficients per (n, g) from the per-(n, c) sums
//   FIN_MODS    dscale, dshift, dgate, dweight and dbias of a modulated layer/RMS norm from its row
//               kernel's column partials
//
// Entry points: name, the sections (roles) it compiles in, its memory model (kernels/memory.ts).
// Flags the host may set follow.
//#file finalize
//#entry grad_coefficients FIN_BWD memory=perGroup
//#entry weight_norm_grad_coefficients FIN_BWD_WN memory=perGroup
//#entry group_grad_coefficients FIN_GN memory=groupCoefficients
//#entry weight_bias_grads FIN_DWDB memory=perGroup
//#entry modulation_grad_sums FIN_MODS memory=outputs
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
  // The sums are of x * p - mu * p with rstd = a * p (grad-sums.wgsl, factor_split): k is in
  // those units, and k * rstd = k * a.
  var beta = 0.0;
  var k = 0.0;
  let ka = factor_split(rs);
  //#if HAS_MEAN
  k = mean_fix(r.w, r.x, mu * ka.y);
  r.z -= (k * ka.x) * r.y;
  beta = -wj * r.y / r.x;
  //#endif
  let gamma = -(wj * r.z / r.x);
  COEF_st4(4u * j, vec4f(rs, beta - gamma * (k * ka.x), gamma, mu));
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
  // dg = sum dw * (v/|v|), summed so by grad_partials (RSTD_RECIP). Quotients by |v| past 2^126
  // are subnormal or out of the range where WGSL bounds a division's error: quot_exact; the dx
  // step splits g/|v| and 1/|v| (factor_split).
  // (|v| = 0: dg = s/|v| = 0/0, NaN, as the reference gives, also for an empty slice.)
  let dg = select(r.z, nan_f32(nrm), nrm == 0.0);
  COEF_st4(4u * j, vec4f(quot_exact(gj, nrm), 0.0, -dg, quot_exact(1.0, nrm)));
  DG_st(j, dg);
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
  // (k in the units of x * p, rstd = a * p: FIN_BWD.)
  var k = 0.0;
  let ka = factor_split(rs);
  //#if GN_BLOCK
  //#else
  k = mean_fix(sdev, cnt, mu * ka.y);
  sgx -= (k * ka.x) * sg;
  //#endif
  //#if GN_KR
  KR_st(j, k * ka.x);
  //#endif
  let gamma = -sgx / cnt;
  var cf = vec4f(rs, -sg / cnt - gamma * (k * ka.x), gamma, mu);
  //#if ACCUM
  let prev = COEF_ld4(4u * j);
  cf.y += prev.y;
  cf.z += prev.z;
  //#endif
  COEF_st4(4u * j, cf);
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

//#if modulation_grad_sums
// The modulation's gradients of a modulated layer/RMS-norm backward from the column partials of its
// row kernel (MOD_SUMS in rows-grad.wgsl / apply-grad.wgsl): column d < outputs (K columns) has partials
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
