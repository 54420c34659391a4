// apply.wgsl: the normalize step, forward and backward, elementwise or fused with the row
// statistics (accumulate.wgsl is compiled in front of this file).
//
// Index maps (uniforms): element e < elements uses the statistics (or backward coefficients) of
// group s = (e / statDiv) % statMod and the weight/bias at a = (e / weightDiv) % weightMod.
// Layer norm: s = row,
// a = position in the row; group norm: s = (n, g), a = channel; batch norm: s = a = channel;
// weight norm: s = slice along dim.
//
// ALIGNED (chosen on the host): statDiv is a multiple of 4, and the weights of a quad are either
// consecutive (weightDiv = 1, weightMod a multiple of 4: A_VEC) or one value (weightDiv a multiple
// of 4). Then a
// quad of 4 elements starting at a multiple of 4 never crosses a group or weight boundary and
// is handled with straight-line vector code: on CPU adapters (SwiftShader runs invocations as
// SIMD lanes) data-dependent branches cost about as much as the arithmetic. Otherwise each
// element is mapped on its own. BLOCK (also chosen on the host): the same holds for blocks of
// blockLength elements (16 on GPU-class adapters; on CPU adapters up to 256, the largest power of
// two the group and weight runs allow), and one invocation handles a block: its group statistics
// (or coefficients) and a broadcast weight are loaded, and its indices divided out, once per block
// (measured on SwiftShader: 16 elements ~1.6x faster than one quad per invocation; 64 and 256
// elements another ~1.25x and ~1.4x on group and batch norm).
//
// Kernels (their entry points are declared below):
//   APPLY         normalize_elements: y = (x - mean[s]) * rstd[s] * w[a] + b[a]  (SILU: y * sigmoid(y);
//                 RESIDUAL: x = X + R, also written to S; EVAL_STATS: batch-norm eval, mean and
//                 rstd = 1/sqrt(var + eps) from the running statistics RM/RV, so eval is this one
//                 dispatch on both adapter classes). One invocation handles the 4
//                 elements 4t..4t+3 (BLOCK: the blockLength elements from blockLength*t), so
//                 with float16 storage every u32 word has one writer.
//   ROWFUSED      fused_rows_welford / fused_rows_sumsq: one invocation per contiguous row/group (one run): its statistics through
//                 reduce_range, then the row normalized from cache. Chosen where invocations are
//                 cheap loops and barriers are not (CPU adapters), and rows are many.
//   BWD_APPLY     grad_elements: dx = alpha[s] * (dy * w[a] + beta[s] + gamma[s] * xhat), with
//                 xhat = (x - mu[s]) * alpha[s] and (alpha, beta, gamma, mu) = COEF[s] from
//                 finalize.wgsl (gamma multiplies xhat, not x - mu: no rstd^2 that could
//                 overflow or underflow); quads as APPLY.
//   BWD_ROWFUSED  fused_rows_grad: one invocation per row: the row's sums of g and g*xhat, then dx.
//
// Entry points: name, then the sections (roles) it compiles in. Flags the host may set follow.
//#entry normalize_elements APPLY
//#entry fused_rows_welford ROWFUSED WELFORD
//#entry fused_rows_sumsq ROWFUSED SUMSQ
//#entry grad_elements BWD_APPLY
//#entry fused_rows_grad BWD_ROWFUSED BWD
//#entry modulation_grad_partials MOD_GRAD
//#entry silu_grad_elements SILU_GRAD
//#entry gated_sum_elements GATED_SUM
//#entry lp_normalize_lanes LP_FWD
//#entry lp_normalize_grad_lanes LP_BWD
//#entry residual_grad_elements RESIDUAL_GRAD
//#flag A_VEC        the weights of a quad are consecutive (weightDiv == 1)
//#flag BLOCK        blocks of blockLength elements (a multiple of 16) per invocation
//#flag MEAN_PAIR    the mean comes as the pair (s, m) in LO, an unevaluated sum (finalize_mean_rstd)
//#flag CLAST        channels-last x: group (e / statDiv) * numGroups + (e % channels) / channelsPerGroup, weight e % channels
//#flag S_LANES      channels-last quads whose lanes have their own statistics
//#flag S_VEC        S_LANES with one channel per group (the lanes' statistics consecutive)
//#flag CL_BLOCK     channels-last: a quad of channels in 4 rows per invocation
//#flag WN_XHAT      weight-norm dv: xhat = v * COEF.w (1/|v|), no mean (see xhat4)
//#flag COLS_FUSED   fused_rows_grad over blocks of rowsPerBlock rows, also writing their column partials
//#flag SG_Z         silu_grad_elements stores z (no dy)
//#flag SG_FROM_Z    silu_grad_elements reads z from DZ (stored by an SG_Z pass)
//#flag MG_SC        modulation_grad_partials: dscale (sum dy * n) is wanted
//#flag MG_SH        modulation_grad_partials MG_DIRECT: dshift is written (DSH)
//#flag MG_GT        modulation_grad_partials: dgate (sum dresidual * x, DRT and XG) is wanted
//#flag MG_NO_DY     modulation_grad_partials without dy: dgate only (DRT, XG)
//#flag MG_ROWS      modulation_grad_partials of layer/RMS norm: statistics per row, weight and bias per column (no index maps)
//#flag MG_DIRECT    modulation_grad_partials: one chunk per modulation element, results written as they are (DSC, DSH, DGT)
//#flag ROW_BLOCK    fused_rows_welford/_sumsq over blocks of rowsPerBlock (<= 4) rows sharing their weights (weightMod = runLength, rows of whole quads)

fn a_of(e: u32) -> u32 { return (e / P.weightDiv) % P.weightMod; }

// The elements of the quad at e that this dispatch handles, one at a time (quads that may cross
// a group or weight boundary). A windowed dispatch handles elements [e0, e1) only: its ranges
// may cut a quad, so that no range needs the weights at both ends of a row (see window.ts).
fn elem_lo(e: u32) -> u32 {
  //#if WINDOW
  return max(e, P.elementBegin);
  //#else
  return e;
  //#endif
}
fn elem_hi(e: u32) -> u32 {
  //#if WINDOW
  return min(min(e + 4u, P.elements), P.elementEnd);
  //#else
  return min(e + 4u, P.elements);
  //#endif
}
fn s_of(e: u32) -> u32 {
  //#if CLAST
  // Channels last ([N, *spatial, C]): sample e / statDiv (statDiv = spatial*C; batch norm: all of
  // x), group of channel e % channels (numGroups groups of channelsPerGroup channels per sample).
  return (e / P.statDiv) * P.numGroups + (e % P.channels) / P.channelsPerGroup;
  //#else
  return (e / P.statDiv) % P.statMod;
  //#endif
}

//#if S_LANES
// Channels-last quads whose four channels may belong to different groups (Cg not a multiple of
// 4): the statistics (or backward coefficients) of each lane. S_VEC: one group per channel
// (batch and instance norm), so a quad's groups are 4 consecutive entries.
fn lane_s(e: u32) -> vec4u {
  //#if S_VEC
  let s0 = s_of(e);
  return vec4u(s0, s0 + 1u, s0 + 2u, s0 + 3u);
  //#else
  return vec4u(s_of(e), s_of(e + 1u), s_of(e + 2u), s_of(e + 3u));
  //#endif
}
//#endif

// Weights and biases of the aligned quad at e, and of one element.
//#if HAS_W
fn wq(e: u32) -> vec4f {
  //#if A_VEC
  return W_ld4(a_of(e));
  //#else
  return vec4f(W_ld(a_of(e)));
  //#endif
}
//#endif
//#if HAS_B
fn bq(e: u32) -> vec4f {
  //#if A_VEC
  return B_ld4(a_of(e));
  //#else
  return vec4f(B_ld(a_of(e)));
  //#endif
}
//#endif

fn activate4(y: vec4f) -> vec4f {
  //#if SILU
  return y / (1.0 + exp(-y));
  //#else
  return y;
  //#endif
}

//#if APPLY || ROWFUSED || MOD_GRAD || SILU_GRAD
// st = (s, m, rstd): the group's mean is the unevaluated sum st.x + st.y (see accumulate.wgsl), so
// x - mean keeps its precision at large offsets.
// The normalized value of x with st, held before a weight multiplies it (docs/NUMERICS.md rule 3):
// the deviation from the pair mean held first (rule 1); without a pair (APPLY without MEAN_PAIR:
// a plain mean, or none) one subtraction and one product, held once.
fn normalized4(x: vec4f, st: vec3f) -> vec4f {
  //#if APPLY
  //#if MEAN_PAIR
  return hold4((dev4(x, vec4f(st.x)) - st.y) * st.z);
  //#else
  return hold4((x - st.x) * st.z);
  //#endif
  //#else
  return hold4((dev4(x, vec4f(st.x)) - st.y) * st.z);
  //#endif
}
fn normalized1(x: f32, st: vec3f) -> f32 {
  //#if APPLY
  //#if MEAN_PAIR
  return hold((dev(x, st.x) - st.y) * st.z);
  //#else
  return hold((x - st.x) * st.z);
  //#endif
  //#else
  return hold((dev(x, st.x) - st.y) * st.z);
  //#endif
}
fn y4(x: vec4f, e: u32, st: vec3f) -> vec4f {
  var y = normalized4(x, st);
  //#if HAS_W
  y *= wq(e);
  //#endif
  //#if HAS_B
  y += bq(e);
  //#endif
  return activate4(y);
}
fn y1(x: f32, e: u32, st: vec3f) -> f32 {
  var y = normalized1(x, st);
  //#if HAS_W
  y *= W_ld(a_of(e));
  //#endif
  //#if HAS_B
  y += B_ld(a_of(e));
  //#endif
  return activate4(vec4f(y)).x;
}
//#endif

//#if APPLY || MG_SC || SILU_GRAD
fn stats(s: u32) -> vec3f {
  //#if MEAN_PAIR
  // The mean as the pair (s, m) from finalize.wgsl.
  return vec3f(LO_ld(2u * s), LO_ld(2u * s + 1u), RSTD_ld(s));
  //#else
  //#if EVAL_STATS
  // Batch-norm eval in one dispatch: the running statistics read here (FIN_EVAL folded in),
  // rstd = 1/sqrt(runningVar + eps) exactly as finalize.wgsl's FIN_EVAL computes it.
  return vec3f(RM_ld(s), 0.0, 1.0 / sqrt(RV_ld(s) + P.eps));
  //#else
  //#if HAS_MEAN
  return vec3f(MEAN_ld(s), 0.0, RSTD_ld(s));
  //#else
  return vec3f(0.0, 0.0, RSTD_ld(s));
  //#endif
  //#endif
  //#endif
}
//#endif

//#if APPLY
//#if CLAST
// The statistics of each lane of the aligned quad at e (S_LANES: the lanes' own groups; else the
// quad's one group), and y of a quad x with them and the quad's weights wv and biases bv.
struct St4 { s: vec4f, m: vec4f, r: vec4f }
fn stats4(e: u32) -> St4 {
  //#if S_LANES
  let s = lane_s(e);
  let a = stats(s.x);
  let b = stats(s.y);
  let c = stats(s.z);
  let d = stats(s.w);
  return St4(vec4f(a.x, b.x, c.x, d.x), vec4f(a.y, b.y, c.y, d.y), vec4f(a.z, b.z, c.z, d.z));
  //#else
  let a = stats(s_of(e));
  return St4(vec4f(a.x), vec4f(a.y), vec4f(a.z));
  //#endif
}
fn y4_st(x: vec4f, st: St4, wv: vec4f, bv: vec4f) -> vec4f {
  var y = hold4((dev4(x, st.s) - st.m) * st.r);
  //#if HAS_W
  y *= wv;
  //#endif
  //#if HAS_B
  y += bv;
  //#endif
  return activate4(y);
}
fn wq_or1(e: u32) -> vec4f {
  //#if HAS_W
  return wq(e);
  //#else
  return vec4f(1.0);
  //#endif
}
fn bq_or0(e: u32) -> vec4f {
  //#if HAS_B
  return bq(e);
  //#else
  return vec4f(0.0);
  //#endif
}
fn y4_lanes(x: vec4f, e: u32) -> vec4f { return y4_st(x, stats4(e), wq_or1(e), bq_or0(e)); }
//#endif

//#if normalize_elements
@compute @workgroup_size(WG)
fn normalize_elements(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
  let t = inv_index(lid, wid, nwg);
  //#if WINDOW
  if (t >= P.invocationEnd) { return; }
  //#endif
  //#if CL_BLOCK
  // Channels last: the quad of channels 4q .. 4q + 3 in 4 consecutive rows (of one sample), so
  // that its statistics and weights are loaded once for 4 quads.
  let nq = P.channels / 4u;
  let rb = t / nq;
  let e0 = rb * 4u * P.channels + 4u * (t - rb * nq);
  if (e0 >= P.elements) { return; }
  let st = stats4(e0);
  let wv = wq_or1(e0);
  let bv = bq_or0(e0);
  for (var k = 0u; k < 4u; k += 1u) {
    let e = e0 + k * P.channels;
    if (e >= P.elements) { break; }
    Y_st4(e, y4_st(xv4(e), st, wv, bv));
  }
  //#else
  //#if BLOCK
  let e0 = P.blockLength * t;
  if (e0 >= P.elements) { return; }
  let st = stats(s_of(e0));
  //#if A_VEC
  let a0 = a_of(e0);
  //#else
  //#if HAS_W
  let wb = vec4f(W_ld(a_of(e0)));
  //#endif
  //#if HAS_B
  let bb = vec4f(B_ld(a_of(e0)));
  //#endif
  //#endif
  for (var k = 0u; k < P.blockLength; k += 4u) {
    let e = e0 + k;
    let x = xv4(e);
    //#if RESIDUAL
    S_st4(e, x);
    //#endif
    var y = normalized4(x, st);
    //#if A_VEC
    //#if HAS_W
    y *= W_ld4(a0 + k);
    //#endif
    //#if HAS_B
    y += B_ld4(a0 + k);
    //#endif
    //#else
    //#if HAS_W
    y *= wb;
    //#endif
    //#if HAS_B
    y += bb;
    //#endif
    //#endif
    Y_st4(e, activate4(y));
  }
  //#else
  let e = 4u * t;
  if (e >= P.elements) { return; }
  //#if ALIGNED
  let x = xv4(e);
  //#if RESIDUAL
  S_st4(e, x);
  //#endif
  //#if S_LANES
  Y_st4(e, y4_lanes(x, e));
  //#else
  Y_st4(e, y4(x, e, stats(s_of(e))));
  //#endif
  //#else
  for (var k = elem_lo(e); k < elem_hi(e); k += 1u) {
    let x = xv1(k);
    //#if RESIDUAL
    S_st(k, x);
    //#endif
    Y_st(k, y1(x, k, stats(s_of(k))));
  }
  //#endif
  //#endif
  //#endif
}
//#endif

//#if ROWFUSED || BWD_ROWFUSED
// The accumulator's result over the whole of row j (accumulate.wgsl).
fn row_result(j: u32) -> vec4f {
  mod_row(j);
  acc_reset();
  reduce_range(j, 0u, P.runLength);
  return checked_range(j, 0u, P.runLength);
}
//#endif

//#if ROWFUSED
// Row j's statistics (s, m, rstd) for y4/y1, its mean and rstd stored.
fn row_stats(j: u32) -> vec3f {
  let r = row_result(j);
  //#if WELFORD
  let st = vec3f(r.y, r.z, q_rstd(r.x, r.w, P.eps));
  MEAN_st(j, st.x + st.y);
  //#else
  let st = vec3f(0.0, 0.0, q_rstd(r.x, r.y, P.eps));
  //#endif
  RSTD_st(j, st.z);
  return st;
}
//#if ROW_BLOCK
// Layer/RMS-norm rows share their weights: blocks of rows per invocation load each quad's weight
// and bias once for the block (on SwiftShader those loads cost about as much as the rest of the
// normalize step; a block of 4 rows measured ~1.4x faster than one row per invocation).
const RBF = 4u;
// y of the quad x with statistics st and the quad's weights wv and biases bv (1 and 0 when absent).
fn y4_wb(x: vec4f, st: vec3f, wv: vec4f, bv: vec4f) -> vec4f { return activate4(hold4((dev4(x, vec4f(st.x)) - st.y) * st.z) * wv + bv); }
//#endif
//#if fused_rows_welford
@compute @workgroup_size(WG)
fn fused_rows_welford(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
//#if fused_rows_sumsq
@compute @workgroup_size(WG)
fn fused_rows_sumsq(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
  let j = inv_index(lid, wid, nwg);
  let K = P.runLength;
  //#if ROW_BLOCK
  // Rows j*L .. j*L + L - 1 (L = rowsPerBlock <= RBF): their statistics row by row, then the
  // block quad by quad, each quad's weight and bias loaded once for the block's rows.
  //#if WINDOW
  if (j >= P.invocationEnd) { return; }
  //#endif
  let r0 = j * P.rowsPerBlock;
  if (r0 >= P.groups) { return; }
  let r1 = min(r0 + P.rowsPerBlock, P.groups);
  var sts: array<vec3f, RBF>;
  for (var r = r0; r < r1; r += 1u) { sts[r - r0] = row_stats(r); }
  for (var p = 0u; p < K; p += 4u) {
    var wv = vec4f(1.0);
    var bv = vec4f(0.0);
    //#if HAS_W
    wv = W_ld4(p);
    //#endif
    //#if HAS_B
    bv = B_ld4(p);
    //#endif
    for (var r = r0; r < r1; r += 1u) {
      mod_row(r);
      let e = r * K + p;
      let x = xv4(e);
      //#if RESIDUAL
      S_st4(e, x);
      //#endif
      Y_st4(e, y4_wb(x, sts[r - r0], wv, bv));
    }
  }
  //#else
  //#if WINDOW
  if (j >= P.invocationEnd) { return; }
  //#endif
  if (j >= P.groups) { return; }
  let st = row_stats(j);
  let base = j * K;
  //#if ALIGNED
  for (var p = 0u; p < K; p += 4u) {
    let x = xv4(base + p);
    //#if RESIDUAL
    S_st4(base + p, x);
    //#endif
    Y_st4(base + p, y4(x, base + p, st));
  }
  //#else
  for (var p = 0u; p < K; p += 1u) {
    let x = xv1(base + p);
    //#if RESIDUAL
    S_st(base + p, x);
    //#endif
    Y_st(base + p, y1(x, base + p, st));
  }
  //#endif
  //#endif
}
//#endif

//#if BWD_APPLY || BWD_ROWFUSED
// xhat of x with coefficients c = (alpha, beta, gamma, mu): dev(x, mu) * alpha, held, so that no
// compiler regroups gamma * (dev * alpha) into (gamma * alpha) * dev (a product that may be
// subnormal or overflow); weight norm (WN_XHAT): v / |v|, with c.w = 1/|v| and no mean.
fn xhat4(x: vec4f, c: vec4f) -> vec4f {
  //#if WN_XHAT
  return hold4(x * c.w);
  //#else
  return hold4(dev4(x, vec4f(c.w)) * c.x);
  //#endif
}
fn xhat1(x: f32, c: vec4f) -> f32 {
  //#if WN_XHAT
  return hold(x * c.w);
  //#else
  return hold(dev(x, c.w) * c.x);
  //#endif
}
// dx for the aligned quad at e and for one element, with c = (alpha, beta, gamma, mu).
fn dx4(e: u32, c: vec4f) -> vec4f {
  var g = DY_ld4(e);
  //#if HAS_W
  g *= wq(e);
  //#endif
  //#if EVAL
  // Batch-norm eval: dx = dy * w * invstd, x not involved (an Inf in x leaves dx finite).
  return c.x * g;
  //#else
  return c.x * (g + c.y + c.z * xhat4(X_ld4(e), c));
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
  return c.x * (g + c.y + c.z * xhat1(X_ld(e), c));
  //#endif
}
//#endif

//#if BWD_APPLY
//#if CLAST
// The backward coefficients (alpha, beta, gamma, mu) of each lane of the aligned quad at e
// (S_LANES: the lanes' own groups; else the quad's one group), and dx of the quad at e with them
// and the quad's weights wv.
struct Cf4 { al: vec4f, be: vec4f, ga: vec4f, mu: vec4f }
fn coef4(e: u32) -> Cf4 {
  //#if S_LANES
  let s = lane_s(e);
  let c0 = COEF_ld4(4u * s.x);
  let c1 = COEF_ld4(4u * s.y);
  let c2 = COEF_ld4(4u * s.z);
  let c3 = COEF_ld4(4u * s.w);
  return Cf4(vec4f(c0.x, c1.x, c2.x, c3.x), vec4f(c0.y, c1.y, c2.y, c3.y), vec4f(c0.z, c1.z, c2.z, c3.z), vec4f(c0.w, c1.w, c2.w, c3.w));
  //#else
  let c = COEF_ld4(4u * s_of(e));
  return Cf4(vec4f(c.x), vec4f(c.y), vec4f(c.z), vec4f(c.w));
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
  return c.al * (g + c.be + c.ga * hold4(dev4(X_ld4(e), c.mu) * c.al));
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
    DX_st4(e, c.x * (g + c.y + c.z * xhat4(X_ld4(e), c)));
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
// sum of x - mu (see FIN_BWD in finalize.wgsl).
var<private> row_k: f32;
fn row_coef(j: u32) -> vec4f {
  var r = row_result(j);
  let rs = st_rstd;
  var beta = 0.0;
  row_k = 0.0;
  //#if HAS_MEAN
  row_k = mean_fix(r.w, r.x, st_mean);
  let kr = row_k * rs;
  r.z -= kr * r.y;
  beta = -r.y / r.x;
  //#endif
  let gamma = -r.z / r.x;
  return vec4f(rs, beta - gamma * (row_k * rs), gamma, st_mean);
}

//#if COLS_FUSED
// One invocation per block of L = rowsPerBlock rows (L <= 16, rows a multiple of 4 long): each row's sums and
// coefficients first, then the block column quad by column quad, row by row (the block is in
// cache by then): dx, and the block's sums of dy and dy*xhat per column, written once as
// partials PART[4*(col*blocks + block)] for weight_bias_grads (layer-norm dweight/dbias without a second
// pass over dy and x). MOD_SUMS: blocks within one run of rows sharing a modulation row, sums of the
// gradient as given and of dgate's terms, for modulation_grad_sums (see rows.wgsl's workgroup_rows_grad).
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
  var cf: array<vec4f, RB>;
  var kf: array<f32, RB>;
  for (var r = r0; r < r1; r += 1u) {
    cf[r - r0] = row_coef(r);
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
      let xh = dev4(X_ld4(e), vec4f(c.w));
      //#if MOD_SUMS
      let dy = dy_raw4(e);
      sgt += dx_store_gate4(e, c.x * (dy * dy_factor4(e) * w + c.y + c.z * hold4(xh * c.x)));
      //#else
      let dy = DY_ld4(e);
      DX_st4(e, c.x * (dy * w + c.y + c.z * hold4(xh * c.x)));
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


//#if MOD_GRAD
// The modulation's gradients (modulate.wgsl): for modulation element m < groups (= its number
// of elements) and chunk c < chunks of the runLength elements of x that use it (chunkLength each),
// the partial (count, sum dy, sum dy * n, sum dresidual * x), n = the norm's output before the
// modulation (recomputed from x and the saved statistics, weight and bias); dy here is the
// gradient of the modulated output (after SiLU's, group norm). Invocation t: c = t / groups,
// m = t % groups (neighbouring invocations read neighbouring elements where modInner > 1).
// MG_DIRECT (one chunk): dscale, dshift, dgate written at m; else partials
// PART[4*(m*chunks + c)] for weight_bias_grads.
//#if modulation_grad_partials
@compute @workgroup_size(WG)
fn modulation_grad_partials(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
  let t = inv_index(lid, wid, nwg);
  //#if WINDOW
  if (t >= P.invocationEnd) { return; }
  //#endif
  if (t >= P.groups * P.chunks) { return; }
  let c = t / P.groups;
  let m = t - c * P.groups;
  let mr = m / P.modInner;
  let col = m - mr * P.modInner;
  let u0 = c * P.chunkLength;
  let u1 = min(u0 + P.chunkLength, P.runLength);
  var acc = vec4f(f32(u1 - u0), 0.0, 0.0, 0.0);
  // u = a * modDiv + i, stepped without dividing (CPU adapters divide lane by lane).
  var a = u0 / P.modDiv;
  var i = u0 - a * P.modDiv;
  for (var u = u0; u < u1; u += 1u) {
    let row = (a * P.modMod + mr) * P.modDiv + i;
    let e = row * P.modInner + col;
    mod_row_of(row, mr);
    i += 1u;
    if (i == P.modDiv) {
      i = 0u;
      a += 1u;
    }
    //#if MG_NO_DY
    //#else
    let dy = DY_ld(e);
    acc.y += dy;
    //#if MG_SC
    //#if MG_ROWS
    // Layer/RMS norm: the statistics are the row's, the weight and bias the column's.
    var n = normalized1(X_ld(e), stats(row));
    //#if HAS_W
    n *= W_ld(col);
    //#endif
    //#if HAS_B
    n += B_ld(col);
    //#endif
    acc.z += dy * n;
    //#else
    acc.z += dy * y1(X_ld(e), e, stats(s_of(e)));
    //#endif
    //#endif
    //#endif
    //#if MG_GT
    acc.w += DRT_ld(e) * XG_ld(e);
    //#endif
  }
  //#if MG_DIRECT
  //#if MG_SC
  DSC_st(m, acc.z);
  //#endif
  //#if MG_SH
  DSH_st(m, acc.y);
  //#endif
  //#if MG_GT
  DGT_st(m, acc.w);
  //#endif
  //#else
  PART_st4(4u * (m * P.chunks + c), acc);
  //#endif
}
//#endif

//#if SILU_GRAD
// Group norm with SiLU (and modulation): dz = dy * silu'(z), z the modulated affine output
// before the activation (recomputed from x and the saved statistics), into the f32 DZ that the
// rest of the backward takes as its dy. One invocation per quad of elements, each on its own.
// Devices with few storage bindings: SG_Z stores z into DZ, then SG_FROM_Z reads it back (dy and
// DZ bound only) and stores dz in its place.
//#if silu_grad_elements
@compute @workgroup_size(WG)
fn silu_grad_elements(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
  let t = inv_index(lid, wid, nwg);
  //#if WINDOW
  if (t >= P.invocationEnd) { return; }
  //#endif
  let e = 4u * t;
  if (e >= P.elements) { return; }
  for (var k = e; k < min(e + 4u, P.elements); k += 1u) {
    //#if SG_FROM_Z
    let z = DZ_ld(k);
    //#else
    let z = mod_affine1(k, y1(X_ld(k), k, stats(s_of(k))));
    //#endif
    //#if SG_Z
    DZ_st(k, z);
    //#else
    let sg = 1.0 / (1.0 + exp(-z));
    DZ_st(k, DY_ld(k) * (sg * (1.0 + z * (1.0 - sg))));
    //#endif
  }
}
//#endif

//#if GATED_SUM
// The gated residual's sum on its own (devices with few storage bindings; see kernels/modulate.ts):
// S = R + gate ⊙ X, one quad of elements per invocation (float16: whole words), each on its own.
//#if gated_sum_elements
@compute @workgroup_size(WG)
fn gated_sum_elements(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
  let t = inv_index(lid, wid, nwg);
  //#if WINDOW
  if (t >= P.invocationEnd) { return; }
  //#endif
  let e = 4u * t;
  if (e >= P.elements) { return; }
  for (var k = e; k < min(e + 4u, P.elements); k += 1u) {
    var x = X_ld(k);
    //#if MOD_GT
    x = gt1(k) * x;
    //#endif
    S_st(k, R_ld(k) + x);
  }
}
//#endif

//#if RESIDUAL_GRAD
// The residual's gradients on their own (devices with few storage bindings): t = DXN + DS,
// DR = t, DXN = gate ⊙ t (in place), one quad per invocation. (X, the forward's x, is bound for
// the accessors every apply kernel compiles; it is not read.)
//#if residual_grad_elements
@compute @workgroup_size(WG)
fn residual_grad_elements(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
  let t = inv_index(lid, wid, nwg);
  //#if WINDOW
  if (t >= P.invocationEnd) { return; }
  //#endif
  let e = 4u * t;
  if (e >= P.elements) { return; }
  for (var k = e; k < min(e + 4u, P.elements); k += 1u) {
    var v = DXN_ld(k);
    //#if HAS_DS
    v += DS_ld(k);
    //#endif
    //#if HAS_DR
    DR_st(k, v);
    //#endif
    //#if MOD_GT
    v *= gt1(k);
    //#endif
    DXN_st(k, v);
  }
}
//#endif

//#if LP_FWD || LP_BWD
// Lp normalization along a dim (PyTorch F.normalize): lane t < groups of runLength elements at
// (o * runLength + d) * channels + i, t = o * channels + i (a middle dim: neighbouring invocations
// read neighbouring elements; the last dim: one lane per row). One invocation per lane.
fn lane_e(t: u32, d: u32) -> u32 {
  let o = t / P.channels;
  return (o * P.runLength + d) * P.channels + (t - o * P.channels);
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
// |x|^p overflows or underflows), in blocks of 256 (a short sequential sum per block), the root
// scaled back by 2^k.
fn lane_norm(t: u32) -> f32 {
  var m = 0.0;
  var nan = false;
  for (var d = 0u; d < P.runLength; d += 1u) {
    let a = abs(X_ld(lane_e(t, d)));
    nan = nan || (bitcast<u32>(a) > 0x7f800000u);
    m = max(m, a);
  }
  // (NaN from a uniform: a constant NaN is a shader-creation error.)
  if (nan) { return bitcast<f32>(0x7fc00000u | P.opaqueZero); }
  if (!finite(m)) { return m; }
  if (m == 0.0) { return 0.0; }
  let k = frexp(m).exp;
  var blk = 0.0;
  var tot = 0.0;
  for (var d = 0u; d < P.runLength; d += 1u) {
    let a = ldexp(abs(X_ld(lane_e(t, d))), -k);
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
  return ldexp(r, k);
}

//#if lp_normalize_lanes
@compute @workgroup_size(WG)
fn lp_normalize_lanes(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
  let t = inv_index(lid, wid, nwg);
  if (t >= P.groups) { return; }
  let n = lane_norm(t);
  NORM_st(t, n);
  // max(NaN, eps) is indeterminate in WGSL: a NaN norm is kept (PyTorch's clamp_min keeps NaN).
  let den = select(max(n, P.eps), n, (bitcast<u32>(n) & 0x7fffffffu) > 0x7f800000u);
  for (var d = 0u; d < P.runLength; d += 1u) {
    let e = lane_e(t, d);
    Y_st(e, X_ld(e) / den);
  }
}
//#endif

//#if LP_BWD
// dx = (dy - s * |y|^(p-1) sign(y)) / n with y = x / n and s = sum dy * y over the lane, where the
// norm n >= eps (a NaN norm too: NaN follows); else (the clamp max(n, eps) took eps, whose
// gradient is zero) dx = dy / eps.
//#if lp_normalize_grad_lanes
@compute @workgroup_size(WG)
fn lp_normalize_grad_lanes(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
  let t = inv_index(lid, wid, nwg);
  if (t >= P.groups) { return; }
  let n = NORM_ld(t);
  if (n < P.eps) {
    for (var d = 0u; d < P.runLength; d += 1u) {
      let e = lane_e(t, d);
      DX_st(e, DY_ld(e) / P.eps);
    }
    return;
  }
  var blk = 0.0;
  var s = 0.0;
  for (var d = 0u; d < P.runLength; d += 1u) {
    let e = lane_e(t, d);
    blk += DY_ld(e) * (X_ld(e) / n);
    if ((d & 255u) == 255u) {
      s += blk;
      blk = 0.0;
    }
  }
  s += blk;
  for (var d = 0u; d < P.runLength; d += 1u) {
    let e = lane_e(t, d);
    DX_st(e, (DY_ld(e) - s * lp_dpow(X_ld(e) / n)) / n);
  }
}
//#endif
