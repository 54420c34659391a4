struct Params {
  outer: u32,
  groups: u32,
  runs: u32,
  runLength: u32,
  chunks: u32,
  chunkLength: u32,
  chunksPerRun: u32,
  groupsPerStat: u32,
  eps: f32,
  weightDiv: u32,
  weightMod: u32,
  rowsPerBlock: u32,
  blocks: u32,
  blocksPerRun: u32,
  modInner: u32,
  modDiv: u32,
  modMod: u32,
  scaleOffset: f32,
  invocationBegin: u32,
  invocationEnd: u32,
  elementBegin: u32,
  elementEnd: u32,
  wordOffset1: u32,
  wordOffset2: u32,
  wordOffset3: u32,
  wordOffset4: u32,
  wordOffset5: u32,
  wordOffset6: u32,
  wordOffset7: u32,
  wordOffset8: u32,
  wordOffset9: u32,
  wordOffset10: u32,
  wordOffset11: u32,
  wordOffset12: u32,
  opaqueZero: u32,
}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
fn X_w(w: u32) -> u32 { return w; }
fn X_ld(i: u32) -> f32 { return X[i]; }
fn X_ld4(i: u32) -> vec4f { return vec4f(X[i], X[i + 1u], X[i + 2u], X[i + 3u]); }
@group(0) @binding(2) var<storage, read> W: array<f32>;
fn W_w(w: u32) -> u32 { return w; }
fn W_ld(i: u32) -> f32 { return W[i]; }
fn W_ld4(i: u32) -> vec4f { return vec4f(W[i], W[i + 1u], W[i + 2u], W[i + 3u]); }
@group(0) @binding(3) var<storage, read> DY: array<f32>;
fn DY_w(w: u32) -> u32 { return w; }
fn DY_ld(i: u32) -> f32 { return DY[i]; }
fn DY_ld4(i: u32) -> vec4f { return vec4f(DY[i], DY[i + 1u], DY[i + 2u], DY[i + 3u]); }
@group(0) @binding(4) var<storage, read_write> DX: array<f32>;
fn DX_w(w: u32) -> u32 { return w; }
fn DX_ld(i: u32) -> f32 { return DX[i]; }
fn DX_ld4(i: u32) -> vec4f { return vec4f(DX[i], DX[i + 1u], DX[i + 2u], DX[i + 3u]); }
fn DX_st(i: u32, v: f32) { DX[i] = v; }
fn DX_st2(i: u32, v: vec2f) { DX[i] = v.x; DX[i + 1u] = v.y; }
fn DX_st4(i: u32, v: vec4f) { DX[i] = v.x; DX[i + 1u] = v.y; DX[i + 2u] = v.z; DX[i + 3u] = v.w; }
@group(0) @binding(5) var<storage, read> MEAN: array<f32>;
fn MEAN_w(w: u32) -> u32 { return w; }
fn MEAN_ld(i: u32) -> f32 { return MEAN[i]; }
fn MEAN_ld4(i: u32) -> vec4f { return vec4f(MEAN[i], MEAN[i + 1u], MEAN[i + 2u], MEAN[i + 3u]); }
@group(0) @binding(6) var<storage, read> RSTD: array<f32>;
fn RSTD_w(w: u32) -> u32 { return w; }
fn RSTD_ld(i: u32) -> f32 { return RSTD[i]; }
fn RSTD_ld4(i: u32) -> vec4f { return vec4f(RSTD[i], RSTD[i + 1u], RSTD[i + 2u], RSTD[i + 3u]); }
@group(0) @binding(7) var<storage, read_write> PART: array<f32>;
fn PART_w(w: u32) -> u32 { return w; }
fn PART_ld(i: u32) -> f32 { return PART[i]; }
fn PART_ld4(i: u32) -> vec4f { return vec4f(PART[i], PART[i + 1u], PART[i + 2u], PART[i + 3u]); }
fn PART_st(i: u32, v: f32) { PART[i] = v; }
fn PART_st2(i: u32, v: vec2f) { PART[i] = v.x; PART[i + 1u] = v.y; }
fn PART_st4(i: u32, v: vec4f) { PART[i] = v.x; PART[i + 1u] = v.y; PART[i + 2u] = v.z; PART[i + 3u] = v.w; }
override WG: u32 = 64u;
// common.wgsl: helpers shared by every kernel family.
//
// Flags of every kernel (the binding accessors are generated from them, see device/wgsl.ts):
//#file common
//#flag ALIGNED   quad loads/stores at multiples of 4 elements (vec4 accessors)
//#flag WINDOW    bindings are ranges of larger buffers; invocations [invocationBegin, invocationEnd) (kernels/window.ts)
//#flag HAS_W     weight is bound (W)
//#flag HAS_B     bias is bound (B)
//#flag SILU      y * sigmoid(y) after the affine step
//#flag HAS_MEAN  the saved mean is bound (MEAN; RM with EVAL_STATS)
//#flag EVAL_STATS batch-norm eval: statistics from the running ones, rstd = 1/sqrt(RV + eps)
//#flag EVAL      batch-norm eval backward: dx = dy * w * invstd, no batch terms
//#flag HAS_CORR  the rows' mean corrections (CORR: written by grad_coefficients, read by column_grad_partials)

// Evaluation order that survives the compiler. WGSL lets an implementation reassociate and fuse
// floating-point operations (Mesa's lavapipe does; Metal compiles with fast math): (a + b) - a may
// become b, (x - s) - m may become x - (s + m), and a sum of x_i - s over unrolled terms may become
// (sum x_i) - n * s. Where a result depends on one rounding order, the intermediate goes through
// hold(): an integer XOR with P.opaqueZero, a uniform that the host sets to 0 but that no compiler
// can know, so the value is unchanged bit for bit and no floating-point rewrite (reassociation, a
// fused multiply-add) can reach across it. The rules built on it (docs/NUMERICS.md):
//   - a deviation from a shift or a mean is formed once, held: dev(x, s) = hold(x - s); with a mean
//     carried as the pair s + m, the deviation is dev(x, s) - m (x - s exact by Sterbenz's lemma
//     near the mean, then one rounding);
//   - a split sum (Fast2Sum) holds its sum and the recovered part, so its error term is exact.
fn hold(v: f32) -> f32 { return bitcast<f32>(bitcast<u32>(v) ^ P.opaqueZero); }
fn hold4(v: vec4f) -> vec4f { return bitcast<vec4f>(bitcast<vec4u>(v) ^ vec4u(P.opaqueZero)); }
fn dev4(x: vec4f, s: vec4f) -> vec4f { return hold4(x - s); }

fn factor_split(f: f32) -> vec2f {
  let b = bitcast<u32>(f);
  let ex = b & 0x7f800000u;
  // Normal and at least 2^-100 (exponent field 27), or 0 (or Inf, NaN): as it is.
  if (ex >= (27u << 23u) || (b & 0x7fffffffu) == 0u) { return vec2f(f, 1.0); }
  // Subnormal: the significand's bits times 2^-149 * 2^24; normal: f * 2^24 (exact).
  var a = f * 0x1p24;
  if (ex == 0u) { a = f32(b & 0x7fffffu) * 0x1p-125; }
  return vec2f(select(a, -a, (b >> 31u) == 1u && ex == 0u), 0x1p-24);
}
// A mean (or its float32 pair's high part) scaled by a group's p, held: every kernel that forms
// x * p - mean * p takes the scaled mean from here.
fn mean_scaled(mu: f32, p: f32) -> f32 { return hold(mu * p); }

// The rounding of a saved float32 mean mu, recovered by a backward pass from x's own sum of
// x - mu over n elements: k = that sum / n when it is within two ulps of mu (so mu is x's mean
// rounded to float32, as the forward returned it), else 0 (a caller's mean is taken as given).
fn mean_fix(sum_dev: f32, n: f32, mu: f32) -> f32 {
  let k = sum_dev / n;
  return select(0.0, k, abs(k) <= abs(mu) * 0x1p-22);
}
// modulate.wgsl: modulation and the gated residual (adaLN of DiT/SD3/Flux, AdaGN of diffusion
// UNets), compiled in front of the reduce, apply and rows kernels. They are wrappers of the
// binding accessors, so every kernel that reads X and DY and writes Y and DX takes them without
// a change of its own:
//
//   forward   sum = R + gate ⊙ x  (GATE_X: X_ld* return gate ⊙ XG; the kernel adds R with RESIDUAL)
//             y   = act(n ⊙ (scaleOffset + scale) + shift)  (MOD_OUT: Y_st* store that into YM,
//                   n being what the kernel computed: the normalized value after weight and bias)
//   backward  x   = R + gate ⊙ XG  (SUM_X: the forward's sum, recomputed from its inputs; HALF_SUM
//                   rounds it to half as the forward's stored sum)
//             g   = dy ⊙ (scaleOffset + scale)  (MOD_DY: DY_ld* read DYM)
//             DX_st* (DX_OUT): t = v + dsum (HAS_DS), DR = t (HAS_DR: the residual stream's
//                   gradient), DXM = gate ⊙ t (MOD_GT) or t
//
// The modulation tensors (scale SC, shift SH, gate GT) broadcast to x: element e uses index
//   m(e) = ((e / modInner / modDiv) % modMod) * modInner + e % modInner
// (layer/RMS norm x [B, T, D], scale [B, 1, D]: modInner = D, modDiv = T, modMod = B; group norm
// [N, C] channels first: modInner = 1, modDiv = spatial, modMod = N*C; channels last: modInner = C,
// modDiv = spatial, modMod = N). A quad of x uses one vec4 load where its four indices are
// consecutive and aligned (modInner % 4 == 0), one scalar load where they are the same, else four.
//
//#file modulate
//#flag MOD_OUT      Y_st*: the modulated output (YM), with MOD_SC / MOD_SH / MOD_SILU
//#flag MOD_SC       scale is bound (SC)
//#flag MOD_SH       shift is bound (SH)
//#flag MOD_GT       gate is bound (GT)
//#flag MOD_SILU     SiLU after the modulation (groupNorm activation 'silu')
//#flag GATE_X       X_ld*: gate ⊙ XG (forward)
//#flag SUM_X        X_ld*: R + (gate ⊙) XG (backward: the forward's sum)
//#flag MOD_DY       DY_ld*: DYM ⊙ (scaleOffset + scale)
//#flag DX_OUT       DX_st*: dsum added (HAS_DS), the residual's gradient (HAS_DR), times gate (MOD_GT), into DXM
//#flag HAS_DS       the gradient reaching the forward's sum from later layers is bound (DS)
//#flag HAS_DR       the residual stream's gradient is written (DR)
//#flag MOD_QUADS    every quad lies in one row of consecutive indices, or in one run (ALIGNED kernels; set when settled)
//#flag MOD_RUNS     modInner = 1: runs of modDiv elements share one index (group norm, channels first)
//#flag MOD_ROWS     the kernel sets each row's index offset (mod_row; layer/RMS-norm row kernels)
//#flag MOD_SUMS     the backward row kernels' blocks of rows lie in one run of rows sharing a modulation row (mod_block) and their column partials are of the gradient as given (dy_raw4), with dgate's sum (dx_store_gate4): modulation_grad_sums (finalize-grad.wgsl) makes dscale, dshift, dgate, dweight and dbias of them

fn mod_row(j: u32) {}

// accumulate.wgsl: the accumulators' interface, the walks that feed them and the careful rescan,
// shared by the partial reductions (reduce.wgsl), the row-fused kernels (fused-rows.wgsl,
// apply-grad.wgsl) and the careful per-row path of the one-workgroup-per-row kernels (rows.wgsl).
// A kernel compiles in one accumulator, chosen by its entry point's sections:
//   WELFORD  Welford (welford.wgsl): result (n, s, m, q), the mean as the unevaluated sum s + m
//            (x - mean keeps its precision at large offsets), q = M2.
//   SUMSQ    SumSq (sum-sq.wgsl): result (n, q, 0, 0), q = sum x^2: RMS norm and weight norm.
//   BWD      GradSums (grad-sums.wgsl): result (n, sum g, sum g*xhat, sum (x - mean[s])) with
//            g = dy * w[a], xhat = (x - mean[s]) * rstd[s].
// q is the plain sum of squares, or, for a chunk whose fast sums were non-finite or tiny and that
// was recomputed by the careful rescan (below), minus its root mean square (q_root in
// common.wgsl; the root of a mean square is finite for any finite data).
//
// The interface, the same in every accumulator (`Acc` names the struct compiled in). The state is
// the caller's: a function variable (`var a = acc_new(j);`) passed by pointer; nothing outside
// the accumulator's functions reads its fields.
//   acc_new(j) -> Acc            empty, for group j (GradSums: holding group j's saved mean and
//                                rstd; the others keep nothing per group)
//   acc4(a, e, i), acc1(a, e, i) feed the quad (element) of x at index e; i is its position in
//                                the row (the weight's index with W_BY_I)
//   acc_recenter(a)              after a block of quads (Welford: the lanes' shifts move to their
//                                running means; the others do nothing)
//   acc_result(a) -> vec4f       the lanes merged, as above
//   reduce_range(a, j, k0, k1)   feed group j's elements [k0, k1) in logical order (below)
//   reduce_interleaved(a, j, c)  feed chunk c of group j's interleaved quads (INTERLEAVE)
//   checked_range(a, j, k0, k1), checked_interleaved(a, j, c) -> vec4f
//                                acc_result after that walk, recomputed by the careful rescan of
//                                the same elements when suspect (BWD: acc_result)
// Channels-last partials (reduce.wgsl; Welford and GradSums) feed one element per lane, each lane
// its own channel: acc_lanes(a, x) (GradSums: acc_lanes(a, x, g), the lanes' saved statistics
// given to acc_new_lanes(mean, rstd)), and read each lane's result with acc_lanes_result(a).
// Welford and SumSq also have what the rescan uses: acc_scalar(a, x) (one element),
// acc_suspect(r), nonfinite_result, bad_term and unscale.
//
//#file accumulate
// Sections (chosen by entry points) and the flags the host may set:
//#section WELFORD SUMSQ BWD
//#flag RESIDUAL     x = X + R (the fused residual add)
//#flag HALF_SUM     float16 x + residual rounded to half, as the stored sum is
//#flag INTERLEAVE   chunk c takes quads c, c + chunks, ... of its group (coalesced loads on GPUs)
//#flag STRIDED      INTERLEAVE over strided groups (runs > 1, runLength % 4 == 0)

// The normalized input: x, or x + residual when fused with a residual add.
fn xv4(e: u32) -> vec4f {
  return X_ld4(e);
}
fn xv1(e: u32) -> f32 {
  return X_ld(e);
}

// grad-sums.wgsl: the backward's sums accumulator (section BWD: the gradient sums of every norm's
// backward), behind the interface of accumulate.wgsl.
//
//#file accumulator
// Flags the host may set:
//#flag HAS_RSTD     the saved rstd is bound (RSTD; RV with EVAL_STATS)
//#flag W_BY_I       g = dy * w[i], the weight per position in a row
//#flag RSTD_RECIP   RSTD holds a norm |v|; the factor is its reciprocal (weight-norm backward)

// sum-sq.wgsl: the sum-of-squares accumulator (section SUMSQ: RMS norm and weight norm), behind
// the interface of accumulate.wgsl.
//#file accumulator

// welford.wgsl: the Welford accumulator (section WELFORD: layer, group, instance and batch norm
// statistics), behind the interface of accumulate.wgsl.
//#file accumulator

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

const NV = 2u;

const NSUMS = 1u;
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
}
// An entry point's start: the subgroup lane and size kept for the sums; returns the workgroup's
// linear index (uniform across the workgroup).
fn enter(w: WorkgroupIds, l: LaneIds) -> u32 {
  return w.wid.y * w.nwg.x + w.wid.x;
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

fn w_quad(a: u32, n: u32) -> vec4f {
  if (n == 4u) { return W_ld4(a); }
  var v = vec4f(1.0);
  for (var i = 0u; i < n; i += 1u) { v[i] = W_ld(a + i); }
  return v;
}

fn hsum(v: vec4f) -> f32 { return (v.x + v.y) + (v.z + v.w); }

// rows-grad.wgsl: the layer/RMS-norm backward on GPU-class adapters, one workgroup per block of
// rows, each row in registers. Part of the rows family: compiled after rows.wgsl, whose NV, wg_sum,
// quad helpers and entry-point plumbing (enter, WorkgroupIds, LaneIds) it uses.
//
// Entry point and flags:
//#file rows
//#entry workgroup_rows_grad ROWS_BWD memory=workgroupRows
//#flag DWDB         workgroup_rows_grad also writes its block's column partials (PART)

// Layer-norm and RMS-norm backward on GPU-class adapters (entry point workgroup_rows_grad): one
// workgroup handles the block of rows [b*L, min((b+1)*L, rows)) (b: the workgroup's linear index,
// L = P.rowsPerBlock rows per block, P.blocks of them), one row after the other. Per row, as the
// forward: invocation t holds the quads q = t + k*WG, k < NV, of x and dy in registers (each
// read once), then three workgroup sums (wg_sum3, subgroups or the tree as wg_sum)
//   sum g, sum g*xhat, sum (x - mu)      with g = dy * w, xhat = (x - mu) * rstd
// (mu, rstd: the saved statistics, mu = 0 without HAS_MEAN), and dx from the same registers
// with FIN_BWD's coefficients: the saved mean's float32 rounding k = mean_fix(sum (x - mu), K, mu)
// (k = 0 when mu is not within two ulps of x's mean: a caller's mean is taken as given),
//   sum g*xhat -= k * rstd * sum g,  beta = -sum g / K,  gamma = -sum g*xhat / K,
//   dx = rstd * (g + (beta - gamma * k * rstd) + gamma * ((x - mu) * rstd))  (rstd last: no
//   intermediate below float32's normal range when dx is inside it)
// (gamma multiplies xhat: no rstd^2 that could overflow or underflow). With DWDB each invocation
// also adds dy and dy * ((x - mu) - k) * rstd of its quads over the block's rows in registers and
// writes them once per block as column partials PART[4*(col*P.blocks + b)] = (rows, sum dy,
// sum dy*xhat, 0), which finalize-grad.wgsl's weight_bias_grads adds up per column (dweight, dbias): x and dy
// are read once in all. MOD_SUMS (modulated layer/RMS norm, with DWDB): blocks within one run of rows
// sharing a modulation row (mod_block), dy the gradient as given (scaled here by dy_factor4), and
// the fourth sum dgate's, (rows, sum dy, sum dy*xhat, sum (dx + dsum)*x): modulation_grad_sums
// (finalize-grad.wgsl) makes dscale, dshift, dgate, dweight and dbias of them.
var<workgroup> red3: array<vec3f, WG>;

// The sum of v over the workgroup, in every invocation (the same value in each). Begins with a
// barrier, so that a block's rows may reuse red3 one after the other.
fn wg_sum3(v: vec3f, t: u32) -> vec3f {
  workgroupBarrier();
  red3[t] = v;
  for (var h = WG / 2u; h > 0u; h >>= 1u) {
    workgroupBarrier();
    if (t < h) { red3[t] += red3[t + h]; }
  }
  workgroupBarrier();
  return red3[0];
}

fn dy_quad(e: u32, n: u32) -> vec4f {
  if (n == 4u) { return DY_ld4(e); }
  var v = vec4f(0.0);
  for (var i = 0u; i < n; i += 1u) { v[i] = DY_ld(e + i); }
  return v;
}
fn dx_store(e: u32, n: u32, v: vec4f) {
  if (n == 4u) { DX_st4(e, v); return; }
  for (var i = 0u; i < n; i += 1u) { DX_st(e + i, v[i]); }
}

@compute @workgroup_size(WG)
fn workgroup_rows_grad(w: WorkgroupIds, l: LaneIds) {
  let t = l.t;
  // (Uniform across the workgroup.)
  let b = enter(w, l);
  let r0 = b * P.rowsPerBlock;
  let r1 = min(r0 + P.rowsPerBlock, P.groups);
  if (r0 >= P.groups) { return; }
  let K = P.runLength;
  let Kf = f32(K);
  var xs: array<vec4f, NV>;
  // dy as given (MOD_SUMS: before the modulation's scale).
  var gs: array<vec4f, NV>;
  var cdy: array<vec4f, NV>;
  var cdx: array<vec4f, NV>;
  for (var k = 0u; k < NV; k += 1u) { cdy[k] = vec4f(0.0); cdx[k] = vec4f(0.0); }
  for (var j = r0; j < r1; j += 1u) {
    mod_row(j);
    let base = j * K;
    var mu = 0.0;
    mu = MEAN_ld(j);
    // rstd = rs * pr (factor_split: a subnormal rstd is never an operand), x and mu scaled by pr.
    let fs = factor_split(RSTD_ld(j));
    let rs = fs.x;
    let pr = fs.y;
    mu = mean_scaled(mu, pr);
    var acc = vec3f(0.0);
    for (var k = 0u; k < NV; k += 1u) {
      let q = t + k * WG;
      let n = quad_len(q, K);
      let x = load_quad(base + 4u * q, n);
      xs[k] = x;
      let dy = dy_quad(base + 4u * q, n);
      gs[k] = dy;
      var g = dy;
      if (n > 0u) { g *= w_quad(4u * q, n); }
      let msk = quad_mask(q, K);
      let dv = select(vec4f(0.0), dev4(x * pr, vec4f(mu)), msk);
      let gz = select(vec4f(0.0), g, msk);
      acc += vec3f(hsum(gz), hsum(gz * hold4(dv * rs)), hsum(dv));
    }
    var r = wg_sum3(acc, t);
    var beta = 0.0;
    var kf = 0.0;
    kf = mean_fix(r.z, Kf, mu);
    r.y -= (kf * rs) * r.x;
    beta = -r.x / Kf;
    let gamma = -r.y / Kf;
    let c = beta - gamma * (kf * rs);
    for (var k = 0u; k < NV; k += 1u) {
      let q = t + k * WG;
      let n = quad_len(q, K);
      if (n == 0u) { continue; }
      let e = base + 4u * q;
      let dy = gs[k];
      var g = dy;
      g *= w_quad(4u * q, n);
      let dv = dev4(xs[k] * pr, vec4f(mu));
      let dx = hold4((g + c + gamma * hold4(dv * rs)) * pr) * rs;
      dx_store(e, n, dx);
      cdy[k] += dy;
      cdx[k] += dy * hold4((dv - kf) * rs);
    }
  }
  let nr = f32(r1 - r0);
  for (var k = 0u; k < NV; k += 1u) {
    let q = t + k * WG;
    let n = quad_len(q, K);
    for (var i = 0u; i < n; i += 1u) {
      var gt = 0.0;
      PART_st4(4u * ((4u * q + i) * P.blocks + b), vec4f(nr, cdy[k][i], cdx[k][i], gt));
    }
  }
}
