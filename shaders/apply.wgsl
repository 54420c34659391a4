// apply.wgsl: the normalize step, elementwise (accumulate.wgsl is compiled in front of this file).
// The apply family's other files (every `//#file apply`: the row-fused forward, its backward, the
// modulated norms' own passes...) follow it and share the index maps and helpers below.
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
// Kernel (its entry point is declared below):
//   APPLY         normalize_elements: y = (x - mean[s]) * rstd[s] * w[a] + b[a]  (SILU: y * sigmoid(y);
//                 RESIDUAL: x = X + R, also written to S; EVAL_STATS: batch-norm eval, mean and
//                 rstd = 1/sqrt(var + eps) from the running statistics RM/RV, so eval is this one
//                 dispatch on both adapter classes). One invocation handles the 4
//                 elements 4t..4t+3 (BLOCK: the blockLength elements from blockLength*t), so
//                 with float16 storage every u32 word has one writer.
//
// Entry points: name, the sections (roles) it compiles in, its memory model (kernels/memory.ts).
// Flags the host may set follow.
//#file apply
//#entry normalize_elements APPLY memory=elements
//#flag A_VEC        the weights of a quad are consecutive (weightDiv == 1)
//#flag BLOCK        blocks of blockLength elements (a multiple of 16) per invocation
//#flag MEAN_PAIR    the mean comes as the pair (s, m) in LO, an unevaluated sum (finalize_mean_rstd)
//#flag SCALE_PAIR   the factor comes as the pair (a, p) in RSTD, rstd = a * p (finalize_weight_norm)
//#flag CLAST        channels-last x: group (e / statDiv) * numGroups + (e % channels) / channelsPerGroup, weight e % channels
//#flag S_LANES      channels-last quads whose lanes have their own statistics
//#flag S_VEC        S_LANES with one channel per group (the lanes' statistics consecutive)
//#flag CL_BLOCK     channels-last: a quad of channels in 4 rows per invocation

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
// st = (s, m, a, p) (scaled_stats in common.wgsl): the group's mean is the unevaluated sum
// (st.x + st.y) / p (see accumulate.wgsl), so x - mean keeps its precision at large offsets, and
// rstd = a * p, applied to x * p so that a subnormal rstd is never an operand.
// The normalized value of x with st, held before a weight multiplies it (docs/NUMERICS.md rule 3):
// the deviation from the pair mean held first (rule 1); without a pair (APPLY without MEAN_PAIR:
// a plain mean, or none) one subtraction and one product, held once.
fn normalized4(x: vec4f, st: vec4f) -> vec4f {
  //#if APPLY
  //#if MEAN_PAIR
  return hold4((dev4(x * st.w, vec4f(st.x)) - st.y) * st.z);
  //#else
  return hold4((x * st.w - st.x) * st.z);
  //#endif
  //#else
  return hold4((dev4(x * st.w, vec4f(st.x)) - st.y) * st.z);
  //#endif
}
fn normalized1(x: f32, st: vec4f) -> f32 {
  //#if APPLY
  //#if MEAN_PAIR
  return hold((dev(x * st.w, st.x) - st.y) * st.z);
  //#else
  return hold((x * st.w - st.x) * st.z);
  //#endif
  //#else
  return hold((dev(x * st.w, st.x) - st.y) * st.z);
  //#endif
}
fn y4(x: vec4f, e: u32, st: vec4f) -> vec4f {
  var y = normalized4(x, st);
  //#if HAS_W
  y *= wq(e);
  //#endif
  //#if HAS_B
  y += bq(e);
  //#endif
  return activate4(y);
}
fn y1(x: f32, e: u32, st: vec4f) -> f32 {
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
fn stats(s: u32) -> vec4f {
  //#if SCALE_PAIR
  // Weight norm: g/|v| as the pair (a, p) from finalize_weight_norm, no mean.
  return vec4f(0.0, 0.0, RSTD_ld(2u * s), RSTD_ld(2u * s + 1u));
  //#else
  //#if MEAN_PAIR
  // The mean as the pair (s, m) from finalize.wgsl.
  return scaled_stats(LO_ld(2u * s), LO_ld(2u * s + 1u), RSTD_ld(s));
  //#else
  //#if EVAL_STATS
  // Batch-norm eval in one dispatch: the running statistics read here (FIN_EVAL folded in),
  // rstd = 1/sqrt(runningVar + eps) exactly as finalize.wgsl's FIN_EVAL computes it (at least
  // 5e-20: the running variance is a float32), scaled by eval_stats where the mean is huge.
  return eval_stats(RM_ld(s), 1.0 / sqrt(RV_ld(s) + P.eps));
  //#else
  //#if HAS_MEAN
  return scaled_stats(MEAN_ld(s), 0.0, RSTD_ld(s));
  //#else
  return scaled_stats(0.0, 0.0, RSTD_ld(s));
  //#endif
  //#endif
  //#endif
  //#endif
}
//#endif

//#if APPLY
//#if CLAST
// The statistics of each lane of the aligned quad at e (S_LANES: the lanes' own groups; else the
// quad's one group), and y of a quad x with them and the quad's weights wv and biases bv.
struct St4 { s: vec4f, m: vec4f, r: vec4f, p: vec4f }
fn stats4(e: u32) -> St4 {
  //#if S_LANES
  let s = lane_s(e);
  let a = stats(s.x);
  let b = stats(s.y);
  let c = stats(s.z);
  let d = stats(s.w);
  return St4(vec4f(a.x, b.x, c.x, d.x), vec4f(a.y, b.y, c.y, d.y), vec4f(a.z, b.z, c.z, d.z), vec4f(a.w, b.w, c.w, d.w));
  //#else
  let a = stats(s_of(e));
  return St4(vec4f(a.x), vec4f(a.y), vec4f(a.z), vec4f(a.w));
  //#endif
}
fn y4_st(x: vec4f, st: St4, wv: vec4f, bv: vec4f) -> vec4f {
  var y = hold4((dev4(x * st.p, st.s) - st.m) * st.r);
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
