// apply.wgsl: the normalize step, forward and backward, elementwise or fused with the row
// statistics (reduce.wgsl is compiled in front of this file).
//
// Index maps (uniforms): the statistics (or backward coefficients) of element e are at
// s = (e / sDiv) % sMod, its weight and bias at a = (e / aDiv) % aMod. Layer norm: s = row,
// a = position in the row; group norm: s = (n, g), a = channel; batch norm: s = a = channel;
// weight norm: s = slice along dim.
//
// Entry points (one compiled in):
//   APPLY         elementwise y = (x - mean[s]) * rstd[s] * w[a] + b[a]  (SILU: y * sigmoid(y);
//                 RESIDUAL: x = X + R, and x is also written to S). One invocation handles ITEMS
//                 quads of 4 consecutive elements, strided by WG inside its workgroup's block;
//                 quads start at multiples of 4, so with float16 storage every u32 word has one
//                 writer.
//   ROWFUSED      one invocation per contiguous row (outer = 1): the row's statistics through
//                 reduce_range, then the row normalized from cache. Chosen where threads are
//                 cheap and barriers are not (CPU adapters), and rows are many.
//   BWD_APPLY     elementwise dx = alpha[s] * dy * w[a] + beta[s] + gamma[s] * (x - mu[s]),
//                 with (alpha, beta, gamma, mu) = COEF[s] from finalize.wgsl.
//   BWD_ROWFUSED  one invocation per row: the row's sums of g and g*xhat, then dx.

override ITEMS: u32 = 4u;

fn a_of(e: u32) -> u32 { return (e / P.aDiv) % P.aMod; }
fn s_of(e: u32) -> u32 { return (e / P.sDiv) % P.sMod; }

//#if HAS_W
// The weights of elements e..e+3, one vector load when they are consecutive or equal.
fn w4_at(e: u32) -> vec4f {
  let a0 = a_of(e);
  if (P.aDiv == 1u) {
    if (a0 + 3u < P.aMod) { return W_ld4(a0); }
  } else if ((e % P.aDiv) + 3u < P.aDiv) {
    return vec4f(W_ld(a0));
  }
  return vec4f(W_ld(a0), W_ld(a_of(e + 1u)), W_ld(a_of(e + 2u)), W_ld(a_of(e + 3u)));
}
//#endif
//#if HAS_B
fn b4_at(e: u32) -> vec4f {
  let a0 = a_of(e);
  if (P.aDiv == 1u) {
    if (a0 + 3u < P.aMod) { return B_ld4(a0); }
  } else if ((e % P.aDiv) + 3u < P.aDiv) {
    return vec4f(B_ld(a0));
  }
  return vec4f(B_ld(a0), B_ld(a_of(e + 1u)), B_ld(a_of(e + 2u)), B_ld(a_of(e + 3u)));
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
// y for the 4 elements at e (all in one statistics group); the group's mean is the unevaluated
// sum m.x + m.y (shift and small correction, see reduce.wgsl) and its rstd r; wpos is the
// position of e in its row when the weight is indexed by position (ROWFUSED layer norm).
fn norm4(e: u32, wpos: u32, x: vec4f, m: vec2f, r: f32) -> vec4f {
  var y = ((x - m.x) - m.y) * r;
  //#if HAS_W
  //#if A_IS_POS
  y *= W_ld4(wpos);
  //#else
  y *= w4_at(e);
  //#endif
  //#endif
  //#if HAS_B
  //#if A_IS_POS
  y += B_ld4(wpos);
  //#else
  y += b4_at(e);
  //#endif
  //#endif
  return activate4(y);
}
fn norm1(e: u32, wpos: u32, x: f32, m: vec2f, r: f32) -> f32 {
  var y = ((x - m.x) - m.y) * r;
  //#if HAS_W
  //#if A_IS_POS
  y *= W_ld(wpos);
  //#else
  y *= W_ld(a_of(e));
  //#endif
  //#endif
  //#if HAS_B
  //#if A_IS_POS
  y += B_ld(wpos);
  //#else
  y += B_ld(a_of(e));
  //#endif
  //#endif
  return activate4(vec4f(y)).x;
}
fn stat_mean(s: u32) -> vec2f {
  //#if COMP
  return vec2f(xv1(s * P.sDiv), LO_ld(s));
  //#else
  //#if HAS_MEAN
  return vec2f(MEAN_ld(s), 0.0);
  //#else
  return vec2f(0.0);
  //#endif
  //#endif
}
//#endif

//#if APPLY
fn apply1(e: u32) {
  let x = xv1(e);
  //#if RESIDUAL
  S_st(e, x);
  //#endif
  let s = s_of(e);
  Y_st(e, norm1(e, 0u, x, stat_mean(s), RSTD_ld(s)));
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let block = (wid.y * nwg.x + wid.x) * ITEMS;
  let nq = (P.n + 3u) / 4u;
  for (var m = 0u; m < ITEMS; m += 1u) {
    let q = (block + m) * WG + lid.x;
    if (q >= nq) { return; }
    let e = 4u * q;
    if (e + 4u <= P.n && (e % P.sDiv) + 3u < P.sDiv) {
      let x = xv4(e);
      //#if RESIDUAL
      S_st4(e, x);
      //#endif
      let s = s_of(e);
      Y_st4(e, norm4(e, 0u, x, stat_mean(s), RSTD_ld(s)));
    } else {
      for (var k = e; k < min(e + 4u, P.n); k += 1u) { apply1(k); }
    }
  }
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
  let mean = vec2f(wshift, r.y);
  let rstd = 1.0 / sqrt(max(r.z / r.x, 0.0) + P.eps);
  MEAN_st(j, mean.x + mean.y);
  //#else
  let mean = vec2f(0.0);
  let rstd = 1.0 / sqrt(r.y / r.x + P.eps);
  //#endif
  RSTD_st(j, rstd);
  let base = j * K;
  var p = 0u;
  for (; p + 4u <= K; p += 4u) {
    let x = xv4(base + p);
    //#if RESIDUAL
    S_st4(base + p, x);
    //#endif
    Y_st4(base + p, norm4(base + p, p, x, mean, rstd));
  }
  for (; p < K; p += 1u) {
    let x = xv1(base + p);
    //#if RESIDUAL
    S_st(base + p, x);
    //#endif
    Y_st(base + p, norm1(base + p, p, x, mean, rstd));
  }
}
//#endif

//#if BWD_APPLY || BWD_ROWFUSED
fn dx4(e: u32, wpos: u32, c: vec4f) -> vec4f {
  var g = DY_ld4(e);
  //#if HAS_W
  //#if A_IS_POS
  g *= W_ld4(wpos);
  //#else
  g *= w4_at(e);
  //#endif
  //#endif
  return c.x * g + c.y + c.z * (X_ld4(e) - c.w);
}
fn dx1(e: u32, wpos: u32, c: vec4f) -> f32 {
  var g = DY_ld(e);
  //#if HAS_W
  //#if A_IS_POS
  g *= W_ld(wpos);
  //#else
  g *= W_ld(a_of(e));
  //#endif
  //#endif
  return c.x * g + c.y + c.z * (X_ld(e) - c.w);
}
//#endif

//#if BWD_APPLY
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let block = (wid.y * nwg.x + wid.x) * ITEMS;
  let nq = (P.n + 3u) / 4u;
  for (var m = 0u; m < ITEMS; m += 1u) {
    let q = (block + m) * WG + lid.x;
    if (q >= nq) { return; }
    let e = 4u * q;
    if (e + 4u <= P.n && (e % P.sDiv) + 3u < P.sDiv) {
      DX_st4(e, dx4(e, 0u, COEF_ld4(4u * s_of(e))));
    } else {
      for (var k = e; k < min(e + 4u, P.n); k += 1u) { DX_st(k, dx1(k, 0u, COEF_ld4(4u * s_of(k)))); }
    }
  }
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
  let c = vec4f(rs, beta, -rs * rs * r.z / r.x, st_mean);
  let base = j * K;
  var p = 0u;
  for (; p + 4u <= K; p += 4u) { DX_st4(base + p, dx4(base + p, p, c)); }
  for (; p < K; p += 1u) { DX_st(base + p, dx1(base + p, p, c)); }
}
//#endif
