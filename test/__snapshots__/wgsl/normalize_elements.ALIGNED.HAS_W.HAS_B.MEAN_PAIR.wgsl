struct Params {
  elements: u32,
  statDiv: u32,
  statMod: u32,
  weightDiv: u32,
  weightMod: u32,
  blockLength: u32,
  channels: u32,
  numGroups: u32,
  channelsPerGroup: u32,
  outer: u32,
  groups: u32,
  runs: u32,
  runLength: u32,
  chunks: u32,
  chunkLength: u32,
  chunksPerRun: u32,
  groupsPerStat: u32,
  eps: f32,
  rowsPerBlock: u32,
  blocks: u32,
  blocksPerRun: u32,
  power: f32,
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
@group(0) @binding(3) var<storage, read> B: array<f32>;
fn B_w(w: u32) -> u32 { return w; }
fn B_ld(i: u32) -> f32 { return B[i]; }
fn B_ld4(i: u32) -> vec4f { return vec4f(B[i], B[i + 1u], B[i + 2u], B[i + 3u]); }
@group(0) @binding(4) var<storage, read> LO: array<f32>;
fn LO_w(w: u32) -> u32 { return w; }
fn LO_ld(i: u32) -> f32 { return LO[i]; }
fn LO_ld4(i: u32) -> vec4f { return vec4f(LO[i], LO[i + 1u], LO[i + 2u], LO[i + 3u]); }
@group(0) @binding(5) var<storage, read> RSTD: array<f32>;
fn RSTD_w(w: u32) -> u32 { return w; }
fn RSTD_ld(i: u32) -> f32 { return RSTD[i]; }
fn RSTD_ld4(i: u32) -> vec4f { return vec4f(RSTD[i], RSTD[i + 1u], RSTD[i + 2u], RSTD[i + 3u]); }
@group(0) @binding(6) var<storage, read_write> Y: array<f32>;
fn Y_w(w: u32) -> u32 { return w; }
fn Y_ld(i: u32) -> f32 { return Y[i]; }
fn Y_ld4(i: u32) -> vec4f { return vec4f(Y[i], Y[i + 1u], Y[i + 2u], Y[i + 3u]); }
fn Y_st(i: u32, v: f32) { Y[i] = v; }
fn Y_st2(i: u32, v: vec2f) { Y[i] = v.x; Y[i + 1u] = v.y; }
fn Y_st4(i: u32, v: vec4f) { Y[i] = v.x; Y[i + 1u] = v.y; Y[i + 2u] = v.z; Y[i + 3u] = v.w; }
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

// Invocation index in the kernel's whole index space: the 2-D grid linearized (dispatches past
// 65,535 workgroups per dimension), plus the first invocation (invocationBegin) of a windowed
// dispatch (0 for the others; windowed kernels also stop at invocationEnd, see kernels/window.ts).
fn inv_index(lid: vec3u, wid: vec3u, nwg: vec3u) -> u32 { return (wid.y * nwg.x + wid.x) * WG + lid.x + P.invocationBegin; }

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
// A group's statistics (s, m, rstd) as the kernels apply them: (s * p, m * p, a, p) with
// rstd = a * p (factor_split); the normalized value is then hold((dev(x * p, s * p) - m * p) * a).
// The scaled mean is held (mean_scaled), so that no compiler factors x * p - s * p into
// (x - s) * p, the deviation the scaling is there to keep inside float32.
fn scaled_stats(s: f32, m: f32, r: f32) -> vec4f {
  let f = factor_split(r);
  return vec4f(mean_scaled(s, f.y), m * f.y, f.x, f.y);
}
// A mean (or its float32 pair's high part) scaled by a group's p, held: every kernel that forms
// x * p - mean * p takes the scaled mean from here.
fn mean_scaled(mu: f32, p: f32) -> f32 { return hold(mu * p); }

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

fn s_of(e: u32) -> u32 {
  return (e / P.statDiv) % P.statMod;
}

// Weights and biases of the aligned quad at e, and of one element.
fn wq(e: u32) -> vec4f {
  return vec4f(W_ld(a_of(e)));
}
fn bq(e: u32) -> vec4f {
  return vec4f(B_ld(a_of(e)));
}

fn activate4(y: vec4f) -> vec4f {
  return y;
}

// st = (s, m, a, p) (scaled_stats in common.wgsl): the group's mean is the unevaluated sum
// (st.x + st.y) / p (see accumulate.wgsl), so x - mean keeps its precision at large offsets, and
// rstd = a * p, applied to x * p so that a subnormal rstd is never an operand.
// The normalized value of x with st, held before a weight multiplies it (docs/NUMERICS.md rule 3):
// the deviation from the pair mean held first (rule 1); without a pair (APPLY without MEAN_PAIR:
// a plain mean, or none) one subtraction and one product, held once.
fn normalized4(x: vec4f, st: vec4f) -> vec4f {
  return hold4((dev4(x * st.w, vec4f(st.x)) - st.y) * st.z);
}
fn y4(x: vec4f, e: u32, st: vec4f) -> vec4f {
  var y = normalized4(x, st);
  y *= wq(e);
  y += bq(e);
  return activate4(y);
}

fn stats(s: u32) -> vec4f {
  // The mean as the pair (s, m) from finalize.wgsl.
  return scaled_stats(LO_ld(2u * s), LO_ld(2u * s + 1u), RSTD_ld(s));
}

@compute @workgroup_size(WG)
fn normalize_elements(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = inv_index(lid, wid, nwg);
  let e = 4u * t;
  if (e >= P.elements) { return; }
  let x = xv4(e);
  Y_st4(e, y4(x, e, stats(s_of(e))));
}
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

// fused-rows.wgsl: layer/RMS-norm (and group-norm) forward with one invocation per row, the
// row's statistics through reduce_range (accumulate.wgsl) and the row normalized from cache: where
// invocations are cheap loops and barriers are not (CPU adapters), and rows are many. Part of the
// apply family (compiled after apply.wgsl, whose index maps and y4/y1 it uses).
//
//   ROWFUSED      fused_rows_welford / fused_rows_sumsq: one invocation per contiguous row/group
//                 (one run), or per block of rows sharing their weights (ROW_BLOCK).
//
// Entry points and flags:
//#file apply
//#entry fused_rows_welford ROWFUSED WELFORD memory=fusedRows
//#entry fused_rows_sumsq ROWFUSED SUMSQ memory=fusedRows
//#flag ROW_BLOCK    fused_rows_welford/_sumsq over blocks of rowsPerBlock (<= 4) rows sharing their weights (weightMod = runLength, rows of whole quads)

// lp-normalize.wgsl: Lp normalization along a dim (PyTorch F.normalize; apply family), forward
// and backward, one invocation per lane.
//
// Entry points:
//#file apply
//#entry lp_normalize_lanes LP_FWD memory=lanes
//#entry lp_normalize_grad_lanes LP_BWD memory=lanes

// modulate-grad.wgsl: the modulated norms' passes of their own (apply family; the accessor
// wrappers are modulate.wgsl's): the gradients of scale, shift and gate summed over the broadcast
// dims (modulation_grad_partials), SiLU's gradient for group norm (silu_grad_elements), and, on
// devices with few storage bindings, the gated sum and the residual's gradients
// (gated_sum_elements, residual_grad_elements).
//
// Entry points and flags:
//#file apply
//#entry modulation_grad_partials MOD_GRAD memory=modulation
//#entry silu_grad_elements SILU_GRAD memory=quads
//#entry gated_sum_elements GATED_SUM memory=quads
//#entry residual_grad_elements RESIDUAL_GRAD memory=quads
//#flag SG_Z         silu_grad_elements stores z (no dy)
//#flag SG_FROM_Z    silu_grad_elements reads z from DZ (stored by an SG_Z pass)
//#flag MG_SC        modulation_grad_partials: dscale (sum dy * n) is wanted
//#flag MG_SH        modulation_grad_partials MG_DIRECT: dshift is written (DSH)
//#flag MG_GT        modulation_grad_partials: dgate (sum dresidual * x, DRT and XG) is wanted
//#flag MG_NO_DY     modulation_grad_partials without dy: dgate only (DRT, XG)
//#flag MG_ROWS      modulation_grad_partials of layer/RMS norm: statistics per row, weight and bias per column (no index maps)
//#flag MG_DIRECT    modulation_grad_partials: one chunk per modulation element, results written as they are (DSC, DSH, DGT)
//#flag RG_OUT       residual_grad_elements: dx into DXO (DXN, the norm's dx in a float32 temp, only read)
