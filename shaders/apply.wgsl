// apply.wgsl: the normalize step, forward and backward, elementwise or fused with the row
// statistics (reduce.wgsl is compiled in front of this file).
//
// Index maps (uniforms): element e uses the statistics (or backward coefficients) of group
// s = (e / sDiv) % sMod and the weight/bias at a = (e / aDiv) % aMod. Layer norm: s = row,
// a = position in the row; group norm: s = (n, g), a = channel; batch norm: s = a = channel;
// weight norm: s = slice along dim. Divisions are done once per span: a Cursor is then advanced
// (integer division is slow on CPU adapters, and a span crosses few group boundaries).
//
// Entry points (one compiled in):
//   APPLY         elementwise y = (x - mean[s]) * rstd[s] * w[a] + b[a]  (SILU: y * sigmoid(y);
//                 RESIDUAL: x = X + R, also written to S). One invocation handles a span of
//                 4*ITEMS consecutive elements starting at a multiple of 4, so with float16
//                 storage every u32 word has exactly one writer.
//   ROWFUSED      one invocation per contiguous row/group (outer = 1): its statistics through
//                 reduce_range, then the row normalized from cache. Chosen where invocations are
//                 cheap loops and barriers are not (CPU adapters), and rows are many.
//   BWD_APPLY     elementwise dx = alpha[s] * dy * w[a] + beta[s] + gamma[s] * (x - mu[s]),
//                 with (alpha, beta, gamma, mu) = COEF[s] from finalize.wgsl; spans as APPLY.
//   BWD_ROWFUSED  one invocation per row: the row's sums of g and g*xhat, then dx.

override ITEMS: u32 = 16u;

// Where an element sits: statistics group s at position ps in its run of sDiv elements, and
// weight index a at position pa in its run of aDiv elements.
struct Cursor {
  s: u32,
  ps: u32,
  a: u32,
  pa: u32,
}

fn cursor_at(e: u32) -> Cursor {
  let qs = e / P.sDiv;
  let qa = e / P.aDiv;
  return Cursor(qs % P.sMod, e - qs * P.sDiv, qa % P.aMod, e - qa * P.aDiv);
}

// Elements e..e+3 share one statistics group, and have the weights a..a+3 (aDiv = 1) or one
// weight a.
fn quad_ok(c: Cursor) -> bool {
  if (c.ps + 4u > P.sDiv) { return false; }
  //#if HAS_W || HAS_B
  if (P.aDiv == 1u) { return c.a + 4u <= P.aMod; }
  return c.pa + 4u <= P.aDiv;
  //#else
  return true;
  //#endif
}

// Advance by k: 1, or 4 after quad_ok.
fn advance(c: ptr<function, Cursor>, k: u32) {
  (*c).ps += k;
  if ((*c).ps >= P.sDiv) {
    (*c).ps = 0u;
    (*c).s += 1u;
    if ((*c).s == P.sMod) { (*c).s = 0u; }
  }
  if (P.aDiv == 1u) {
    (*c).a += k;
    if ((*c).a >= P.aMod) { (*c).a = 0u; }
  } else {
    (*c).pa += k;
    if ((*c).pa >= P.aDiv) {
      (*c).pa = 0u;
      (*c).a += 1u;
      if ((*c).a == P.aMod) { (*c).a = 0u; }
    }
  }
}

//#if HAS_W
fn w4(c: Cursor) -> vec4f {
  if (P.aDiv == 1u) { return W_ld4(c.a); }
  return vec4f(W_ld(c.a));
}
//#endif
//#if HAS_B
fn b4(c: Cursor) -> vec4f {
  if (P.aDiv == 1u) { return B_ld4(c.a); }
  return vec4f(B_ld(c.a));
}
//#endif

fn activate4(y: vec4f) -> vec4f {
  //#if SILU
  return y / (1.0 + exp(-y));
  //#else
  return y;
  //#endif
}

//#if APPLY || ROWFUSED
// The current group's mean as the unevaluated sum fs_m.x + fs_m.y (shift and small part, see
// reduce.wgsl) and its rstd; fs_s is the group they belong to.
var<private> fs_s: u32;
var<private> fs_m: vec2f;
var<private> fs_r: f32;

fn y4(x: vec4f, c: Cursor) -> vec4f {
  var y = ((x - fs_m.x) - fs_m.y) * fs_r;
  //#if HAS_W
  y *= w4(c);
  //#endif
  //#if HAS_B
  y += b4(c);
  //#endif
  return activate4(y);
}
fn y1(x: f32, c: Cursor) -> f32 {
  var y = ((x - fs_m.x) - fs_m.y) * fs_r;
  //#if HAS_W
  y *= W_ld(c.a);
  //#endif
  //#if HAS_B
  y += B_ld(c.a);
  //#endif
  return activate4(vec4f(y)).x;
}

//#if APPLY
fn load_stats(s: u32) {
  if (s == fs_s) { return; }
  fs_s = s;
  //#if COMP
  fs_m = vec2f(xv1(s * P.sDiv), LO_ld(s));
  //#else
  //#if HAS_MEAN
  fs_m = vec2f(MEAN_ld(s), 0.0);
  //#else
  fs_m = vec2f(0.0);
  //#endif
  //#endif
  fs_r = RSTD_ld(s);
}
//#endif

// Normalize elements [e0, e1) (statistics from buffers for APPLY, fixed for ROWFUSED).
fn fwd_span(e0: u32, e1: u32) {
  var c = cursor_at(e0);
  var e = e0;
  loop {
    if (e >= e1) { break; }
    //#if APPLY
    load_stats(c.s);
    //#endif
    if (e + 4u <= e1 && quad_ok(c)) {
      let x = xv4(e);
      //#if RESIDUAL
      S_st4(e, x);
      //#endif
      Y_st4(e, y4(x, c));
      advance(&c, 4u);
      e += 4u;
    } else {
      let x = xv1(e);
      //#if RESIDUAL
      S_st(e, x);
      //#endif
      Y_st(e, y1(x, c));
      advance(&c, 1u);
      e += 1u;
    }
  }
}
//#endif

//#if APPLY
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = (wid.y * nwg.x + wid.x) * WG + lid.x;
  let e0 = t * (4u * ITEMS);
  if (e0 >= P.n) { return; }
  fs_s = 0xffffffffu;
  fwd_span(e0, min(e0 + 4u * ITEMS, P.n));
}
//#endif

//#if ROWFUSED
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = (wid.y * nwg.x + wid.x) * WG + lid.x;
  if (j >= P.D) { return; }
  let K = P.inner;
  acc_reset();
  reduce_range(j, 0u, K);
  let r = acc_result();
  //#if WELFORD
  fs_m = vec2f(wshift, r.y);
  fs_r = 1.0 / sqrt(max(r.z / r.x, 0.0) + P.eps);
  MEAN_st(j, fs_m.x + fs_m.y);
  //#else
  fs_m = vec2f(0.0);
  fs_r = 1.0 / sqrt(r.y / r.x + P.eps);
  //#endif
  RSTD_st(j, fs_r);
  fwd_span(j * K, j * K + K);
}
//#endif

//#if BWD_APPLY || BWD_ROWFUSED
var<private> cf_s: u32;
var<private> cf: vec4f;

// Backward over elements [e0, e1) (coefficients from COEF for BWD_APPLY, fixed for the row).
fn bwd_span(e0: u32, e1: u32) {
  var c = cursor_at(e0);
  var e = e0;
  loop {
    if (e >= e1) { break; }
    //#if BWD_APPLY
    if (c.s != cf_s) { cf_s = c.s; cf = COEF_ld4(4u * c.s); }
    //#endif
    if (e + 4u <= e1 && quad_ok(c)) {
      var g = DY_ld4(e);
      //#if HAS_W
      g *= w4(c);
      //#endif
      DX_st4(e, cf.x * g + cf.y + cf.z * (X_ld4(e) - cf.w));
      advance(&c, 4u);
      e += 4u;
    } else {
      var g = DY_ld(e);
      //#if HAS_W
      g *= W_ld(c.a);
      //#endif
      DX_st(e, cf.x * g + cf.y + cf.z * (X_ld(e) - cf.w));
      advance(&c, 1u);
      e += 1u;
    }
  }
}
//#endif

//#if BWD_APPLY
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = (wid.y * nwg.x + wid.x) * WG + lid.x;
  let e0 = t * (4u * ITEMS);
  if (e0 >= P.n) { return; }
  cf_s = 0xffffffffu;
  bwd_span(e0, min(e0 + 4u * ITEMS, P.n));
}
//#endif

//#if BWD_ROWFUSED
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = (wid.y * nwg.x + wid.x) * WG + lid.x;
  if (j >= P.D) { return; }
  let K = P.inner;
  acc_reset();
  reduce_range(j, 0u, K);
  let r = acc_result();
  let rs = st_rstd;
  var beta = 0.0;
  //#if HAS_MEAN
  beta = -rs * r.y / r.x;
  //#endif
  cf = vec4f(rs, beta, -rs * rs * r.z / r.x, st_mean);
  bwd_span(j * K, j * K + K);
}
//#endif
