// apply-grad.wgsl: the normalize step's backward (apply family: compiled with apply.wgsl and
// fused-rows.wgsl, whose helpers it uses).
//
//   BWD_APPLY     grad_elements: dx = alpha[s] * (dy * w[a] + beta[s] + gamma[s] * xhat), with
//                 xhat = (x - mu[s]) * alpha[s] and (alpha, beta, gamma, mu) = COEF[s] from
//                 finalize-grad.wgsl (gamma multiplies xhat, not x - mu: no rstd^2 that could
//                 overflow or underflow); quads as APPLY (apply.wgsl).
//   BWD_ROWFUSED  fused_rows_grad: one invocation per row: the row's sums of g and g*xhat, then dx
//                 (COLS_FUSED: blocks of rows, also their column partials).
//
// Entry points and flags:
//#file apply
//#entry grad_elements BWD_APPLY memory=elements
//#entry fused_rows_grad BWD_ROWFUSED BWD memory=fusedRows
//#flag WN_XHAT      weight-norm dv: xhat = v * COEF.w (1/|v|), no mean (see xhat4)
//#flag COLS_FUSED   fused_rows_grad over blocks of rowsPerBlock rows, also writing their column partials

//#if BWD_APPLY || BWD_ROWFUSED
// xhat of x with coefficients c = (alpha, beta, gamma, mu) and f = factor_split(alpha) (alpha =
// rstd may be subnormal: common.wgsl): dev(x * p, mu * p) * a, held, so that no compiler regroups
// gamma * (dev * alpha) into (gamma * alpha) * dev (a product that may be subnormal or overflow);
// weight norm (WN_XHAT): v / |v|, with c.w = 1/|v| (split the same way) and no mean.
fn xhat4(x: vec4f, c: vec4f, f: vec2f) -> vec4f {
  //#if WN_XHAT
  let fw = factor_split(c.w);
  return hold4(hold4(x * fw.y) * fw.x);
  //#else
  return hold4(dev4(x * f.y, vec4f(mean_scaled(c.w, f.y))) * f.x);
  //#endif
}
fn xhat1(x: f32, c: vec4f, f: vec2f) -> f32 {
  //#if WN_XHAT
  let fw = factor_split(c.w);
  return hold(hold(x * fw.y) * fw.x);
  //#else
  return hold(dev(x * f.y, mean_scaled(c.w, f.y)) * f.x);
  //#endif
}
// dx = alpha * t with alpha = a * p (f = factor_split(alpha)): t * p held, so that a subnormal
// alpha is never an operand.
fn times_alpha4(t: vec4f, f: vec2f) -> vec4f { return hold4(t * f.y) * f.x; }
fn times_alpha1(t: f32, f: vec2f) -> f32 { return hold(t * f.y) * f.x; }
// dx for the aligned quad at e and for one element, with c = (alpha, beta, gamma, mu).
fn dx4(e: u32, c: vec4f) -> vec4f {
  var g = DY_ld4(e);
  //#if HAS_W
  g *= wq(e);
  //#endif
  //#if EVAL
  // Batch-norm eval: dx = dy * w * invstd, x not involved (an Inf in x leaves dx finite; invstd
  // from the running variance is normal).
  return c.x * g;
  //#else
  let f = factor_split(c.x);
  return times_alpha4(g + c.y + c.z * xhat4(X_ld4(e), c, f), f);
  //#endif
}
fn dx1(e: u32, c: vec4f) -> f32 {
  var g = DY_ld(e);
  //#if HAS_W
  g *= W_ld(a_of(e));
  //#endif
  //#if EVAL
  return c.x * g;
  //#else
  let f = factor_split(c.x);
  return times_alpha1(g + c.y + c.z * xhat1(X_ld(e), c, f), f);
  //#endif
}
//#endif

//#if BWD_APPLY
//#if CLAST
// The backward coefficients (alpha, beta, gamma, mu) of each lane of the aligned quad at e
// (S_LANES: the lanes' own groups; else the quad's one group), and dx of the quad at e with them
// and the quad's weights wv.
// Also alpha split (factor_split): alpha = a * p, mu scaled by p.
struct Cf4 { al: vec4f, be: vec4f, ga: vec4f, mu: vec4f, a: vec4f, p: vec4f }
fn cf4_of(c0: vec4f, c1: vec4f, c2: vec4f, c3: vec4f) -> Cf4 {
  let f0 = factor_split(c0.x);
  let f1 = factor_split(c1.x);
  let f2 = factor_split(c2.x);
  let f3 = factor_split(c3.x);
  let p = vec4f(f0.y, f1.y, f2.y, f3.y);
  return Cf4(vec4f(c0.x, c1.x, c2.x, c3.x), vec4f(c0.y, c1.y, c2.y, c3.y), vec4f(c0.z, c1.z, c2.z, c3.z), mean_scaled4(vec4f(c0.w, c1.w, c2.w, c3.w), p), vec4f(f0.x, f1.x, f2.x, f3.x), p);
}
fn coef4(e: u32) -> Cf4 {
  //#if S_LANES
  let s = lane_s(e);
  let c0 = COEF_ld4(4u * s.x);
  let c1 = COEF_ld4(4u * s.y);
  let c2 = COEF_ld4(4u * s.z);
  let c3 = COEF_ld4(4u * s.w);
  return cf4_of(c0, c1, c2, c3);
  //#else
  let c = COEF_ld4(4u * s_of(e));
  return cf4_of(c, c, c, c);
  //#endif
}
fn dx4_cf(e: u32, c: Cf4, wv: vec4f) -> vec4f {
  var g = DY_ld4(e);
  //#if HAS_W
  g *= wv;
  //#endif
  //#if EVAL
  return c.al * g;
  //#else
  return hold4((g + c.be + c.ga * hold4(dev4(X_ld4(e) * c.p, c.mu) * c.a)) * c.p) * c.a;
  //#endif
}
fn wq_or1(e: u32) -> vec4f {
  //#if HAS_W
  return wq(e);
  //#else
  return vec4f(1.0);
  //#endif
}
fn dx4_lanes(e: u32) -> vec4f { return dx4_cf(e, coef4(e), wq_or1(e)); }
//#endif
//#if grad_elements
@compute @workgroup_size(WG)
fn grad_elements(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
  let t = inv_index(lid, wid, nwg);
  //#if WINDOW
  if (t >= P.invocationEnd) { return; }
  //#endif
  //#if CL_BLOCK
  // Channels last: 4 rows of a quad of channels (see APPLY).
  let nq = P.channels / 4u;
  let rb = t / nq;
  let e0 = rb * 4u * P.channels + 4u * (t - rb * nq);
  if (e0 >= P.elements) { return; }
  let cf = coef4(e0);
  let wv = wq_or1(e0);
  for (var k = 0u; k < 4u; k += 1u) {
    let e = e0 + k * P.channels;
    if (e >= P.elements) { break; }
    DX_st4(e, dx4_cf(e, cf, wv));
  }
  //#else
  //#if BLOCK
  let e0 = P.blockLength * t;
  if (e0 >= P.elements) { return; }
  let c = COEF_ld4(4u * s_of(e0));
  let f = factor_split(c.x);
  //#if A_VEC
  let a0 = a_of(e0);
  //#else
  //#if HAS_W
  let wb = vec4f(W_ld(a_of(e0)));
  //#endif
  //#endif
  for (var k = 0u; k < P.blockLength; k += 4u) {
    let e = e0 + k;
    var g = DY_ld4(e);
    //#if HAS_W
    //#if A_VEC
    g *= W_ld4(a0 + k);
    //#else
    g *= wb;
    //#endif
    //#endif
    //#if EVAL
    DX_st4(e, c.x * g);
    //#else
    DX_st4(e, times_alpha4(g + c.y + c.z * xhat4(X_ld4(e), c, f), f));
    //#endif
  }
  //#else
  let e = 4u * t;
  if (e >= P.elements) { return; }
  //#if ALIGNED
  //#if S_LANES
  DX_st4(e, dx4_lanes(e));
  //#else
  DX_st4(e, dx4(e, COEF_ld4(4u * s_of(e))));
  //#endif
  //#else
  for (var k = elem_lo(e); k < elem_hi(e); k += 1u) { DX_st(k, dx1(k, COEF_ld4(4u * s_of(k)))); }
  //#endif
  //#endif
  //#endif
}
//#endif

//#if BWD_ROWFUSED
// Row j's backward coefficients (alpha, beta, gamma, mu) for dx4/dx1, from its sums of g and
// g*xhat and its saved statistics; row_k is the saved mean's rounding recovered from the row's
// sum of x - mu (see FIN_BWD in finalize-grad.wgsl), in the units of x * p (acc_saved).
var<private> row_k: f32;
fn row_coef(j: u32) -> vec4f {
  // The saved statistics as stored (returned in the coefficients), and the accumulator on them.
  let sv = saved_of(j);
  var a = acc_new_lanes(vec4f(sv.x), vec4f(sv.y));
  var r = row_result(&a, j);
  let saved = acc_saved(&a);
  let rs = saved.y;
  var beta = 0.0;
  row_k = 0.0;
  //#if HAS_MEAN
  row_k = mean_fix(r.w, r.x, saved.x);
  let kr = row_k * rs;
  r.z -= kr * r.y;
  beta = -r.y / r.x;
  //#endif
  let gamma = -r.z / r.x;
  return vec4f(sv.y, beta - gamma * (row_k * rs), gamma, sv.x);
}

//#if COLS_FUSED
// One invocation per block of L = rowsPerBlock rows (L <= 16, rows a multiple of 4 long): each row's sums and
// coefficients first, then the block column quad by column quad, row by row (the block is in
// cache by then): dx, and the block's sums of dy and dy*xhat per column, written once as
// partials PART[4*(col*blocks + block)] for weight_bias_grads (layer-norm dweight/dbias without a second
// pass over dy and x). MOD_SUMS: blocks within one run of rows sharing a modulation row, sums of the
// gradient as given and of dgate's terms, for modulation_grad_sums (see rows-grad.wgsl's workgroup_rows_grad).
const RB = 16u;
//#if fused_rows_grad
@compute @workgroup_size(WG)
fn fused_rows_grad(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
  let blk = inv_index(lid, wid, nwg);
  //#if MOD_SUMS
  let rr = mod_block(blk);
  let r0 = rr.x;
  let r1 = rr.y;
  //#else
  let r0 = blk * P.rowsPerBlock;
  let r1 = min(r0 + P.rowsPerBlock, P.groups);
  //#endif
  if (r0 >= P.groups) { return; }
  let K = P.runLength;
  // Per row: (a, beta, gamma, mu * p) with alpha = a * p (factor_split), and p.
  var cf: array<vec4f, RB>;
  var kf: array<f32, RB>;
  var pf: array<f32, RB>;
  for (var r = r0; r < r1; r += 1u) {
    let c = row_coef(r);
    let f = factor_split(c.x);
    cf[r - r0] = vec4f(f.x, c.y, c.z, mean_scaled(c.w, f.y));
    pf[r - r0] = f.y;
    kf[r - r0] = row_k;
  }
  for (var p = 0u; p < K; p += 4u) {
    var w = vec4f(1.0);
    //#if HAS_W
    w = W_ld4(p);
    //#endif
    var sdy = vec4f(0.0);
    var sdx = vec4f(0.0);
    var sgt = vec4f(0.0);
    for (var r = r0; r < r1; r += 1u) {
      mod_row(r);
      let c = cf[r - r0];
      let e = r * K + p;
      let pr = pf[r - r0];
      let xh = dev4(X_ld4(e) * pr, vec4f(c.w));
      //#if MOD_SUMS
      let dy = dy_raw4(e);
      sgt += dx_store_gate4(e, hold4((dy * dy_factor4(e) * w + c.y + c.z * hold4(xh * c.x)) * pr) * c.x);
      //#else
      let dy = DY_ld4(e);
      DX_st4(e, hold4((dy * w + c.y + c.z * hold4(xh * c.x)) * pr) * c.x);
      //#endif
      sdy += dy;
      sdx += dy * hold4((xh - kf[r - r0]) * c.x);
    }
    let n = f32(r1 - r0);
    let o = 4u * (p * P.blocks + blk);
    let st = 4u * P.blocks;
    PART_st4(o, vec4f(n, sdy.x, sdx.x, sgt.x));
    PART_st4(o + st, vec4f(n, sdy.y, sdx.y, sgt.y));
    PART_st4(o + 2u * st, vec4f(n, sdy.z, sdx.z, sgt.z));
    PART_st4(o + 3u * st, vec4f(n, sdy.w, sdx.w, sgt.w));
  }
}
//#else
//#if fused_rows_grad
@compute @workgroup_size(WG)
fn fused_rows_grad(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
  let j = inv_index(lid, wid, nwg);
  //#if WINDOW
  if (j >= P.invocationEnd) { return; }
  //#endif
  if (j >= P.groups) { return; }
  let K = P.runLength;
  let c = row_coef(j);
  //#if HAS_CORR
  CORR_st(j, row_k);
  //#endif
  let base = j * K;
  //#if ALIGNED
  for (var p = 0u; p < K; p += 4u) { DX_st4(base + p, dx4(base + p, c)); }
  //#else
  for (var p = 0u; p < K; p += 1u) { DX_st(base + p, dx1(base + p, c)); }
  //#endif
}
//#endif
//#endif
