// rows.wgsl: layer/RMS-norm and group/instance-norm forward on GPU-class adapters, one workgroup
// per row (or group), the row held in registers, and what the family's kernels share (workgroup
// sums, quad loads, the entry points' builtins); the backward is in rows-grad.wgsl, compiled after
// this file (common.wgsl and the accumulators are compiled in front of it).
//
// One workgroup normalizes one contiguous row j (the workgroup's linear index, j < P.groups) of
// K = P.runLength elements at X[j*K ..] (+ R with RESIDUAL; the sum is also written to S).
// One invocation (t = local index < WG) holds the quads q = t + k*WG, k < NV, of its row in NV
// vec4 registers (elements 4q .. 4q+3, zeros past K): x is read once, y written once, and
// neighbouring invocations touch neighbouring quads. Bounds: K <= 4 * NV * WG, NV in
// {1, 2, 4, 8, 16}; float16 rows have K even (each u32 word of halves has one writer). The host
// picks WG and NV (policy.ts rowsPlan: WG from maxComputeInvocationsPerWorkgroup, at most 256;
// rows past the register capacity keep to the reduce/finalize/apply kernels).
//
// Statistics, exact two-pass from the registers (WELFORD: layer norm):
//   s  = (sum x) / K                 the f32-rounded mean from a first workgroup sum;
//   m  = (sum (x - s)) / K           the rest, so that the mean is the unevaluated pair s + m
//                                    (x - mean keeps f32 precision at offsets like 1e4 + N(0, 1));
//   M2 = sum ((x - s) - m)^2          the spread about that mean.
// SUMSQ (RMS norm): one sum of x^2. Workgroup sums (wg_sum) use subgroupAdd and one partial per
// subgroup in workgroup memory with SUBGROUPS (the device's 'subgroups' feature; subgroups taken
// as consecutive runs of local indices, as Vulkan/Metal/D3D lay them out for 1-D workgroups), else
// a tree in workgroup memory.
// Suspect fast statistics (non-finite: an Inf or NaN in the row, or squares past f32; or a sum of
// squares below 2^-100, where squares may have underflowed) are recomputed by invocation 0 with the
// careful per-row path of accumulate.wgsl (Welford with a following shift, then the scaled rescan;
// Inf/NaN summed as PyTorch's sums), the same results the row-fused kernel gives.
// PER_CH (group/instance norm, channels-first): a row is one (n, g) group of Cg = C/G channels of
// S = P.weightDiv contiguous elements each (K = Cg * S, the row starting at a channel boundary), and
// the weight/bias of element e (index in X) are those of channel (e / P.weightDiv) % P.weightMod
// (weightMod = C). SILU: y * sigmoid(y) after the affine step, as normalize_elements has it.
//
// Entry points: name, the sections (roles) it compiles in, its memory model (kernels/memory.ts).
// Flags the host may set follow.
//#file rows
//#entry workgroup_rows_welford ROWS_FWD WELFORD memory=workgroupRows
//#entry workgroup_rows_sumsq ROWS_FWD SUMSQ memory=workgroupRows
//#flag NV1          quads per invocation (NV = 1, 2, 4, 8 or 16; one of them)
//#flag NV2
//#flag NV4
//#flag NV8
//#flag NV16
//#flag SUBGROUPS    workgroup sums by subgroupAdd (the device has 'subgroups')
//#flag PER_CH       group norm: a row is an (n, g) group, weights per channel

//#if NV1
const NV = 1u;
//#endif
//#if NV2
const NV = 2u;
//#endif
//#if NV4
const NV = 4u;
//#endif
//#if NV8
const NV = 8u;
//#endif
//#if NV16
const NV = 16u;
//#endif

//#if WELFORD
const NSUMS = 3u;
//#else
const NSUMS = 1u;
//#endif
// One slot of WG floats per workgroup sum (each written once: no barrier between the sums).
var<workgroup> red: array<f32, NSUMS * WG>;
// The careful path's statistics, from invocation 0 to the workgroup.
var<workgroup> careful: vec4f;

var<private> sg_lane: u32;
var<private> sg_size: u32;

// The builtins of the entry points here: the workgroup's (uniform: the barriers depend on them)
// and the invocation's (with SUBGROUPS its lane and the subgroup size too).
struct WorkgroupIds {
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
}
struct LaneIds {
  @builtin(local_invocation_index) t: u32,
  //#if SUBGROUPS
  @builtin(subgroup_invocation_id) lane: u32,
  @builtin(subgroup_size) sgs: u32,
  //#endif
}
// An entry point's start: the subgroup lane and size kept for the sums; returns the workgroup's
// linear index (uniform across the workgroup).
fn enter(w: WorkgroupIds, l: LaneIds) -> u32 {
  //#if SUBGROUPS
  sg_lane = l.lane;
  sg_size = l.sgs;
  //#endif
  return w.wid.y * w.nwg.x + w.wid.x;
}
//#if PER_CH
// The row's first element in X (w_quad/b_quad get positions in the row).
var<private> row0: u32;
// The channel of position a in the row: (e / S) % C for its index e in X.
fn ch_of(a: u32) -> u32 { return ((row0 + a) / P.weightDiv) % P.weightMod; }
//#endif

// The sum of v over the workgroup, in every invocation (the same value in each), through slot.
fn wg_sum(v: f32, t: u32, slot: u32) -> f32 {
  let o = slot * WG;
  //#if SUBGROUPS
  let sv = subgroupAdd(v);
  if (sg_lane == 0u) { red[o + t / sg_size] = sv; }
  workgroupBarrier();
  let nsg = (WG + sg_size - 1u) / sg_size;
  var r = 0.0;
  for (var i = 0u; i < nsg; i += 1u) { r += red[o + i]; }
  return r;
  //#else
  red[o + t] = v;
  for (var h = WG / 2u; h > 0u; h >>= 1u) {
    workgroupBarrier();
    if (t < h) { red[o + t] += red[o + t + h]; }
  }
  workgroupBarrier();
  return red[o];
  //#endif
}

// Valid elements of the row's quad q: 0..4.
fn quad_len(q: u32, K: u32) -> u32 { return min(K - min(4u * q, K), 4u); }
// The lanes of quad q inside the row.
fn quad_mask(q: u32, K: u32) -> vec4<bool> { return vec4u(4u * q) + vec4u(0u, 1u, 2u, 3u) < vec4u(K); }

fn load_quad(e: u32, n: u32) -> vec4f {
  if (n == 4u) { return xv4(e); }
  var v = vec4f(0.0);
  for (var i = 0u; i < n; i += 1u) { v[i] = xv1(e + i); }
  return v;
}

//#if HAS_W
fn w_quad(a: u32, n: u32) -> vec4f {
  //#if PER_CH
  // One channel for the whole quad (S % 4 == 0, or the quad inside one channel): one load.
  if (n == 4u && ch_of(a) == ch_of(a + 3u)) { return vec4f(W_ld(ch_of(a))); }
  var wc = vec4f(1.0);
  for (var i = 0u; i < n; i += 1u) { wc[i] = W_ld(ch_of(a + i)); }
  return wc;
  //#else
  if (n == 4u) { return W_ld4(a); }
  var v = vec4f(1.0);
  for (var i = 0u; i < n; i += 1u) { v[i] = W_ld(a + i); }
  return v;
  //#endif
}
//#endif
//#if HAS_B
fn b_quad(a: u32, n: u32) -> vec4f {
  //#if PER_CH
  if (n == 4u && ch_of(a) == ch_of(a + 3u)) { return vec4f(B_ld(ch_of(a))); }
  var bc = vec4f(0.0);
  for (var i = 0u; i < n; i += 1u) { bc[i] = B_ld(ch_of(a + i)); }
  return bc;
  //#else
  if (n == 4u) { return B_ld4(a); }
  var v = vec4f(0.0);
  for (var i = 0u; i < n; i += 1u) { v[i] = B_ld(a + i); }
  return v;
  //#endif
}
//#endif

//#if WELFORD || SUMSQ
fn store_quad(e: u32, n: u32, y: vec4f) {
  if (n == 4u) { Y_st4(e, y); return; }
  for (var i = 0u; i < n; i += 1u) { Y_st(e + i, y[i]); }
}
//#if RESIDUAL
fn store_sum(e: u32, n: u32, x: vec4f) {
  if (n == 4u) { S_st4(e, x); return; }
  for (var i = 0u; i < n; i += 1u) { S_st(e + i, x[i]); }
}
//#endif

//#endif

fn hsum(v: vec4f) -> f32 { return (v.x + v.y) + (v.z + v.w); }

//#if ROWS_FWD
//#if workgroup_rows_welford
@compute @workgroup_size(WG)
fn workgroup_rows_welford(w: WorkgroupIds, l: LaneIds) {
//#endif
//#if workgroup_rows_sumsq
@compute @workgroup_size(WG)
fn workgroup_rows_sumsq(w: WorkgroupIds, l: LaneIds) {
//#endif
  let t = l.t;
  // (Uniform across the workgroup: every invocation returns, or none.)
  let j = enter(w, l);
  if (j >= P.groups) { return; }
  let K = P.runLength;
  let base = j * K;
  //#if PER_CH
  row0 = base;
  //#endif
  let Kf = f32(K);
  var xs: array<vec4f, NV>;
  var s1 = 0.0;
  for (var k = 0u; k < NV; k += 1u) {
    let q = t + k * WG;
    let x = load_quad(base + 4u * q, quad_len(q, K));
    xs[k] = x;
    s1 += hsum(x);
    //#if RESIDUAL
    store_sum(base + 4u * q, quad_len(q, K), x);
    //#endif
  }
  //#if WELFORD
  let s = wg_sum(s1, t, 0u) / Kf;
  var s2 = 0.0;
  for (var k = 0u; k < NV; k += 1u) {
    let q = t + k * WG;
    s2 += hsum(select(vec4f(0.0), dev4(xs[k], vec4f(s)), quad_mask(q, K)));
  }
  let m = wg_sum(s2, t, 1u) / Kf;
  var s3 = 0.0;
  for (var k = 0u; k < NV; k += 1u) {
    let q = t + k * WG;
    let d = select(vec4f(0.0), dev4(xs[k], vec4f(s)) - m, quad_mask(q, K));
    s3 += dot(d, d);
  }
  let M2 = wg_sum(s3, t, 2u);
  let suspect = !finite(s) || !finite(m) || m2_suspect(M2);
  var st = vec3f(s, m, 0.0);
  if (!suspect) { st.z = q_rstd(Kf, M2, P.eps); }
  //#else
  var s3 = 0.0;
  for (var k = 0u; k < NV; k += 1u) { s3 += dot(xs[k], xs[k]); }
  let Q = wg_sum(s3, t, 0u);
  let suspect = m2_suspect(Q);
  var st = vec3f(0.0, 0.0, 0.0);
  if (!suspect) { st.z = q_rstd(Kf, Q, P.eps); }
  //#endif
  // The careful path (rare): invocation 0 redoes the row's statistics from memory.
  if (suspect && t == 0u) {
    var a = acc_new(j);
    reduce_range(&a, j, 0u, K);
    careful = checked_range(&a, j, 0u, K);
  }
  workgroupBarrier();
  if (suspect) {
    let r = careful;
    //#if WELFORD
    st = vec3f(r.y, r.z, q_rstd(r.x, r.w, P.eps));
    //#else
    st = vec3f(0.0, 0.0, q_rstd(r.x, r.y, P.eps));
    //#endif
  }
  if (t == 0u) {
    //#if WELFORD
    MEAN_st(j, st.x + st.y);
    //#endif
    RSTD_st(j, st.z);
  }
  let sc = scaled_stats(st.x, st.y, st.z);
  for (var k = 0u; k < NV; k += 1u) {
    let q = t + k * WG;
    let n = quad_len(q, K);
    if (n == 0u) { continue; }
    var y = hold4((dev4(xs[k] * sc.w, vec4f(sc.x)) - sc.y) * sc.z);
    //#if HAS_W
    y *= w_quad(4u * q, n);
    //#endif
    //#if HAS_B
    y += b_quad(4u * q, n);
    //#endif
    //#if SILU
    y = y / (1.0 + exp(-y));
    //#endif
    store_quad(base + 4u * q, n, y);
  }
}
//#endif
