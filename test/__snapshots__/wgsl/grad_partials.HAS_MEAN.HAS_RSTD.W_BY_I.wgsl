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
  channels: u32,
  numGroups: u32,
  channelsPerGroup: u32,
  columns: u32,
  rowBegin: u32,
  rowEnd: u32,
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
@group(0) @binding(2) var<storage, read> MEAN: array<f32>;
fn MEAN_w(w: u32) -> u32 { return w; }
fn MEAN_ld(i: u32) -> f32 { return MEAN[i]; }
fn MEAN_ld4(i: u32) -> vec4f { return vec4f(MEAN[i], MEAN[i + 1u], MEAN[i + 2u], MEAN[i + 3u]); }
@group(0) @binding(3) var<storage, read> RSTD: array<f32>;
fn RSTD_w(w: u32) -> u32 { return w; }
fn RSTD_ld(i: u32) -> f32 { return RSTD[i]; }
fn RSTD_ld4(i: u32) -> vec4f { return vec4f(RSTD[i], RSTD[i + 1u], RSTD[i + 2u], RSTD[i + 3u]); }
@group(0) @binding(4) var<storage, read> DY: array<f32>;
fn DY_w(w: u32) -> u32 { return w; }
fn DY_ld(i: u32) -> f32 { return DY[i]; }
fn DY_ld4(i: u32) -> vec4f { return vec4f(DY[i], DY[i + 1u], DY[i + 2u], DY[i + 3u]); }
@group(0) @binding(5) var<storage, read> W: array<f32>;
fn W_w(w: u32) -> u32 { return w; }
fn W_ld(i: u32) -> f32 { return W[i]; }
fn W_ld4(i: u32) -> vec4f { return vec4f(W[i], W[i + 1u], W[i + 2u], W[i + 3u]); }
@group(0) @binding(6) var<storage, read_write> PART: array<f32>;
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
fn dev(x: f32, s: f32) -> f32 { return hold(x - s); }
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
fn xv1(e: u32) -> f32 {
  return X_ld(e);
}

// Feed the elements of group j with logical index k in [k0, k1) to the accumulator, four at a
// time within each contiguous segment.
fn reduce_range(a: ptr<function, Acc>, j: u32, k0: u32, k1: u32) {
  let inner = P.runLength;
  var o = k0 / inner;
  var i = k0 - o * inner;
  var left = k1 - k0;
  loop {
    if (left == 0u) { break; }
    let len = min(inner - i, left);
    let base = (o * P.groups + j) * inner;
    var p = i;
    let end = i + len;
    for (; p + 4u <= end; p += 4u) { acc4(a, base + p, p); }
    acc_recenter(a);
    for (; p < end; p += 1u) { acc1(a, base + p, p); }
    left -= len;
    o += 1u;
    i = 0u;
  }
}

// grad-sums.wgsl: the backward's sums accumulator (section BWD: the gradient sums of every norm's
// backward), behind the interface of accumulate.wgsl.
//
//#file accumulator
// Flags the host may set:
//#flag HAS_RSTD     the saved rstd is bound (RSTD; RV with EVAL_STATS)
//#flag W_BY_I       g = dy * w[i], the weight per position in a row
//#flag RSTD_RECIP   RSTD holds a norm |v|; the factor is its reciprocal (weight-norm backward)

// The sums are taken against saved statistics (mean, rstd) per lane: a group's (index
// s = j / groupsPerStat, the same in all four lanes; mean 0 without HAS_MEAN, rstd 1 without
// HAS_RSTD), or, channels-last, each lane's channel's (acc_new_lanes). W_BY_I: g = dy * w[i]
// (weight per position in a layer-norm row; other norms apply their weight per group in
// finalize-grad.wgsl). The fourth sum, of x - mean, tells the finalize step how far the saved
// (float32-rounded) mean is from x's own mean.
struct GradSums {
  count: f32,        // elements (acc_lanes: elements per lane)
  sum_g: vec4f,      // per vec4 lane: sum g
  sum_gxhat: vec4f,  // per vec4 lane: sum g*xhat
  sum_dev: vec4f,    // per vec4 lane: sum (x - mean)
  tail_g: f32,       // the scalar lane's three sums
  tail_gxhat: f32,
  tail_dev: f32,
  mean: vec4f,       // the saved statistics per lane, as applied (scaled_stats in common.wgsl):
  rstd: vec4f,       // mean * p, rstd = a * p as a (normal), and p; the sums are of the scaled
  p: vec4f,          // deviations x * p - mean * p (k, recovered from them, is in those units)
}
alias Acc = GradSums;
fn acc_new(j: u32) -> Acc {
  let sv = saved_of(j);
  return acc_new_lanes(vec4f(sv.x), vec4f(sv.y));
}
// Group j's saved (mean, rstd) as stored (mean 0 without HAS_MEAN, rstd 1 without HAS_RSTD).
fn saved_of(j: u32) -> vec2f {
  let s = j / P.groupsPerStat;
  var mean = 0.0;
  var rstd = 1.0;
  mean = mean_at(s);
  rstd = rstd_at(s);
  return vec2f(mean, rstd);
}
// A lane's saved (mean, rstd) as the sums apply them: scaled_stats, or in batch-norm eval's
// backward eval_stats (a running mean past 2^100 scales the data too).
fn saved_scaled(mu: f32, r: f32) -> vec4f {
  return scaled_stats(mu, 0.0, r);
}
fn acc_new_lanes(mean: vec4f, rstd: vec4f) -> Acc {
  let a = saved_scaled(mean.x, rstd.x);
  let b = saved_scaled(mean.y, rstd.y);
  let c = saved_scaled(mean.z, rstd.z);
  let d = saved_scaled(mean.w, rstd.w);
  return Acc(0.0, vec4f(0.0), vec4f(0.0), vec4f(0.0), 0.0, 0.0, 0.0, vec4f(a.x, b.x, c.x, d.x), vec4f(a.z, b.z, c.z, d.z), vec4f(a.w, b.w, c.w, d.w));
}
// The saved statistics of group s; EVAL_STATS (batch-norm eval backward): the running
// statistics read directly, rstd = 1/sqrt(runningVar + eps) (no FIN_EVAL step).
fn mean_at(s: u32) -> f32 {
  return MEAN_ld(s);
}
fn rstd_at(s: u32) -> f32 {
  return RSTD_ld(s);
}
fn acc_recenter(a: ptr<function, Acc>) {}
fn acc4(a: ptr<function, Acc>, e: u32, i: u32) {
  var g = DY_ld4(e);
  g *= W_ld4(i);
  let dv = dev4(xv4(e) * (*a).p, (*a).mean);
  (*a).sum_g += g;
  (*a).sum_gxhat += g * hold4(dv * (*a).rstd);
  (*a).sum_dev += dv;
  (*a).count += 4.0;
}
fn acc1(a: ptr<function, Acc>, e: u32, i: u32) {
  var g = DY_ld(e);
  g *= W_ld(i);
  let dv = dev(xv1(e) * (*a).p.x, (*a).mean.x);
  (*a).tail_g += g;
  (*a).tail_gxhat += g * hold(dv * (*a).rstd.x);
  (*a).tail_dev += dv;
  (*a).count += 1.0;
}
// (n, sum g, sum g*xhat, sum (x - mean)).
fn acc_result(a: ptr<function, Acc>) -> vec4f {
  let g = (*a).sum_g;
  let h = (*a).sum_gxhat;
  let c = (*a).sum_dev;
  return vec4f((*a).count, (g.x + g.y) + (g.z + g.w) + (*a).tail_g, (h.x + h.y) + (h.z + h.w) + (*a).tail_gxhat, (c.x + c.y) + (c.z + c.w) + (*a).tail_dev);
}
fn checked_range(a: ptr<function, Acc>, j: u32, k0: u32, k1: u32) -> vec4f { return acc_result(a); }
// sum-sq.wgsl: the sum-of-squares accumulator (section SUMSQ: RMS norm and weight norm), behind
// the interface of accumulate.wgsl.
//#file accumulator

// welford.wgsl: the Welford accumulator (section WELFORD: layer, group, instance and batch norm
// statistics), behind the interface of accumulate.wgsl.
//#file accumulator

// reduce.wgsl: grouped partial reductions, the one statistics mechanism under every norm.
//
// Group j (0 <= j < groups) is the index set e = (o*groups + j)*runLength + i for o < runs,
// i < runLength, in the logical order k = o*runLength + i. Layer/RMS-norm rows and
// group/instance-norm groups are groups of one run; batch-norm channels have runs = N,
// runLength = spatial; weight-norm slices along `dim` have runs = prod(dims before).
//
// One invocation reduces one chunk k in [c*L, min((c+1)*L, runs*runLength)) (L = chunkLength)
// of one group, t = j*chunks + c, and writes one partial (a vec4) to PART[4t..4t+3]. No
// barriers, no atomics: the partials are merged by finalize.wgsl, so a reduction of any length
// is split over many invocations and never summed sequentially end to end.
//
// The accumulators are in accumulate.wgsl (compiled in front of this file).
//
// Entry points: name, the sections (roles) it compiles in, its memory model (kernels/memory.ts).
// Flags the host may set follow.
//#file reduce
//#entry welford_partials PARTIALS WELFORD memory=partials
//#entry sumsq_partials PARTIALS SUMSQ memory=partials
//#entry grad_partials PARTIALS BWD memory=partials
//#entry column_grad_partials COLS memory=columns
//#entry channels_last_welford_partials CL_PARTIALS WELFORD memory=channelsLast
//#entry channels_last_grad_partials CL_PARTIALS BWD memory=channelsLast
//#flag CMAJOR       windowed chunks in chunk-major order (c*groups + j), so a dispatch reads a compact range
//#flag RUNS         chunks within contiguous runs of runLength elements (chunksPerRun per run)
//#flag COLS16       column_grad_partials: 16 columns per invocation (else 4)
//#flag CL4          channels-last: a quad of channels per invocation (else one)

@compute @workgroup_size(WG)
fn grad_partials(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = inv_index(lid, wid, nwg);
  if (t >= P.groups * P.chunks) { return; }
  let j = t / P.chunks;
  let c = t - j * P.chunks;
  var a = acc_new(j);
  let k0 = c * P.chunkLength;
  let k1 = min(k0 + P.chunkLength, P.runs * P.runLength);
  if (k0 < k1) { reduce_range(&a, j, k0, k1); }
  let r = checked_range(&a, j, k0, max(k0, k1));
  PART_st4(4u * (j * P.chunks + c), r);
}
