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
fn pack_half2(v: vec2f) -> u32 {
  let b = bitcast<vec2u>(v);
  let m = b & vec2u(0x7fffffffu);
  let ok = m <= vec2u(0x477fe000u);
  let w = pack2x16float(select(vec2f(0.0), v, ok));
  let big = select(vec2u(0x7bffu), vec2u(0x7c00u), m >= vec2u(0x477ff000u));
  let special = ((b >> vec2u(16u)) & vec2u(0x8000u)) | select(big, vec2u(0x7e00u), m > vec2u(0x7f800000u));
  let h = select(special, vec2u(w & 0xffffu, w >> 16u), ok);
  return h.x | (h.y << 16u);
}
@group(0) @binding(1) var<storage, read> X: array<u32>;
fn X_w(w: u32) -> u32 { return w; }
fn X_ld(i: u32) -> f32 { let h = unpack2x16float(X[i >> 1u]); return select(h.x, h.y, (i & 1u) == 1u); }
fn X_ld4(i: u32) -> vec4f { let w = i >> 1u; let a = unpack2x16float(X[w]); let b = unpack2x16float(X[w + 1u]); let c = unpack2x16float(X[w + 2u]); let odd = (i & 1u) == 1u; return select(vec4f(a, b), vec4f(a.y, b, c.x), odd); }
@group(0) @binding(2) var<storage, read> W: array<f32>;
fn W_w(w: u32) -> u32 { return w; }
fn W_ld(i: u32) -> f32 { return W[i]; }
fn W_ld4(i: u32) -> vec4f { return vec4f(W[i], W[i + 1u], W[i + 2u], W[i + 3u]); }
@group(0) @binding(3) var<storage, read> B: array<f32>;
fn B_w(w: u32) -> u32 { return w; }
fn B_ld(i: u32) -> f32 { return B[i]; }
fn B_ld4(i: u32) -> vec4f { return vec4f(B[i], B[i + 1u], B[i + 2u], B[i + 3u]); }
@group(0) @binding(4) var<storage, read_write> Y: array<u32>;
fn Y_w(w: u32) -> u32 { return w; }
fn Y_ld(i: u32) -> f32 { let h = unpack2x16float(Y[i >> 1u]); return select(h.x, h.y, (i & 1u) == 1u); }
fn Y_ld4(i: u32) -> vec4f { let w = i >> 1u; let a = unpack2x16float(Y[w]); let b = unpack2x16float(Y[w + 1u]); let c = unpack2x16float(Y[w + 2u]); let odd = (i & 1u) == 1u; return select(vec4f(a, b), vec4f(a.y, b, c.x), odd); }
fn Y_st(i: u32, v: f32) { let w = i >> 1u; let h = unpack2x16float(Y[w]); Y[w] = pack_half2(select(vec2f(v, h.y), vec2f(h.x, v), (i & 1u) == 1u)); }
fn Y_st2(i: u32, v: vec2f) { Y[i >> 1u] = pack_half2(v); }
fn Y_st4(i: u32, v: vec4f) { let w = i >> 1u; Y[w] = pack_half2(v.xy); Y[w + 1u] = pack_half2(v.zw); }
@group(0) @binding(5) var<storage, read_write> MEAN: array<f32>;
fn MEAN_w(w: u32) -> u32 { return w; }
fn MEAN_ld(i: u32) -> f32 { return MEAN[i]; }
fn MEAN_ld4(i: u32) -> vec4f { return vec4f(MEAN[i], MEAN[i + 1u], MEAN[i + 2u], MEAN[i + 3u]); }
fn MEAN_st(i: u32, v: f32) { MEAN[i] = v; }
fn MEAN_st2(i: u32, v: vec2f) { MEAN[i] = v.x; MEAN[i + 1u] = v.y; }
fn MEAN_st4(i: u32, v: vec4f) { MEAN[i] = v.x; MEAN[i + 1u] = v.y; MEAN[i + 2u] = v.z; MEAN[i + 3u] = v.w; }
@group(0) @binding(6) var<storage, read_write> RSTD: array<f32>;
fn RSTD_w(w: u32) -> u32 { return w; }
fn RSTD_ld(i: u32) -> f32 { return RSTD[i]; }
fn RSTD_ld4(i: u32) -> vec4f { return vec4f(RSTD[i], RSTD[i + 1u], RSTD[i + 2u], RSTD[i + 3u]); }
fn RSTD_st(i: u32, v: f32) { RSTD[i] = v; }
fn RSTD_st2(i: u32, v: vec2f) { RSTD[i] = v.x; RSTD[i + 1u] = v.y; }
fn RSTD_st4(i: u32, v: vec4f) { RSTD[i] = v.x; RSTD[i + 1u] = v.y; RSTD[i + 2u] = v.z; RSTD[i + 3u] = v.w; }
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

// Whether v is finite, from its bits (compilers may fold NaN comparisons; bits are exact).
fn finite(v: f32) -> bool { return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u; }
// x * 2^e for any e a kernel meets (|e| <= 378), in steps whose result WGSL defines: its ldexp may
// return 0 for e2 <= -127 whatever e1 is, and an indeterminate value for e2 > 128. The steps have
// one sign, so an intermediate neither overflows nor underflows where the result does not. Every
// scaling by a power of two in the kernels goes through here (the shader test checks).
fn ldexp_wide(x: f32, e: i32) -> f32 {
  let a = clamp(e, -126, 126);
  let b = clamp(e - a, -126, 126);
  return ldexp(ldexp(ldexp(x, a), b), e - a - b);
}
// A quiet NaN made at run time (a constant NaN is a shader-creation error in WGSL).
fn nan_f32(v: f32) -> f32 { return bitcast<f32>(0x7fc00000u | (bitcast<u32>(v) & 0u)); }

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
// (s, e) with s = a + b rounded and s + e = a + b exactly (Fast2Sum: |a| >= |b|, or a is a shift
// of which b is the small rest).
fn split_sum(a: f32, b: f32) -> vec2f {
  let s = hold(a + b);
  return vec2f(s, b - hold(s - a));
}
fn split_sum4(a: vec4f, b: vec4f) -> array<vec4f, 2> {
  let s = hold4(a + b);
  return array<vec4f, 2>(s, b - hold4(s - a));
}

// Chan's merge of two Welford partials (n, s, m, M2): the mean is the unevaluated sum s + m (s the
// rounded mean, m the small rest). The merged mean is re-split (split_sum) so that s + m stays
// exact to ~2^-48. A non-finite mean (an Inf or NaN in the data) is the sum of the two, as a
// plain sum would give (+Inf with -Inf: NaN), with M2 NaN.
fn chan(a: vec4f, b: vec4f) -> vec4f {
  if (b.x == 0.0) { return a; }
  if (a.x == 0.0) { return b; }
  let n = a.x + b.x;
  if (!finite(a.y) || !finite(b.y)) { return vec4f(n, a.y + b.y, 0.0, nan_f32(n)); }
  let f = b.x / n;
  let d = dev(b.y, a.y) + (b.z - a.z);
  let sm = split_sum(a.y, a.z + d * f);
  return vec4f(n, sm.x, sm.y, a.w + b.w + d * d * a.x * f);
}
// A partial's sum of squares q (M2 of WELFORD, sum x^2 of SUMSQ) is stored plainly when the fast
// sums were fine, and as -S, S = sqrt(q / n) (a standard deviation, a root mean square: finite
// for any finite data), when the chunk needed the careful rescan. (The plain form keeps full
// precision for ordinary data; S = 0 is stored as q = +0.)
fn q_is_root(q: f32) -> bool { return (bitcast<u32>(q) >> 31u) == 1u; }
// q in root form from S (S = 0 as the plain +0).
fn q_from_root(s: f32) -> f32 { return select(-s, 0.0, s == 0.0); }
// rstd = 1/sqrt(q / n + eps) from an encoded q: directly for the plain form (as precise as it
// gets; a plain q is finite and not tiny), through rstd_of (no overflow or underflow) for a root.
fn q_rstd(n: f32, q: f32, eps: f32) -> f32 {
  if (q_is_root(q)) { return rstd_of(-q, eps); }
  return 1.0 / sqrt(q / n + eps);
}
// Whether a merged M2 (or sum of squares) needs the careful merge: not finite, or so small that
// squares may have underflowed.
fn m2_suspect(q: f32) -> bool { return !finite(q) || q < 0x1p-100; }

// rstd = 1/sqrt(var + eps) from the standard deviation, without overflow or underflow of var:
// past 2^+-60 the sum is taken in a scale where std is about 1 (eps may be of either sign; var +
// eps <= 0 gives Inf or NaN, as in PyTorch).
fn rstd_of(sd: f32, eps: f32) -> f32 {
  if ((sd >= 0x1p-60 && sd <= 0x1p60) || sd == 0.0 || !finite(sd)) { return 1.0 / sqrt(sd * sd + eps); }
  let fe = frexp(sd);
  let e2 = ldexp_wide(eps, -2 * fe.exp);
  if (!finite(e2)) { return 1.0 / sqrt(eps); }
  return ldexp_exact(1.0 / sqrt(fe.fract * fe.fract + e2), -fe.exp);
}

// Factors of huge spreads. A factor f that scales a group's deviations (rstd, or weight norm's
// g/|v|) is tiny where the group's spread is huge: subnormal past 2^126 (data near float32's
// largest values: f >= 2^-130 for finite data, so f keeps at least 19 bits), and WGSL lets an
// implementation flush a subnormal operand or result to 0; and there a deviation x - mean itself
// may pass float32 (x = 3e38, mean = -1e38). Such a factor is made from its bits where it is saved
// (ldexp_exact), and never multiplied by: factor_split gives f = a * p, a and p normal, p = 1
// where f >= 2^-100 and 2^-24 below, and a kernel works on the group's data scaled by p (x * p,
// mean * p: exact, powers of two; values that underflow there are below 2^-102 and vanish beside
// a spread past 2^100), with a as the factor; a product by f of anything else (dx = rstd * t) is
// hold(t * p) * a (docs/NUMERICS.md). A deviation that overflows means a spread past 2^112 (for
// groups up to 2^32 elements), so scaled by p it is back in range.
fn ldexp_exact(x: f32, e: i32) -> f32 {
  let fe = frexp(x);
  if (fe.exp + e > -126 || !finite(x) || x == 0.0) { return ldexp_wide(x, e); }
  // Subnormal (or 0): its significand in units of 2^-149, rounded to nearest even, as bits.
  let m = round(ldexp_wide(abs(x), e + 149));
  return bitcast<f32>(u32(m) | (bitcast<u32>(x) & 0x80000000u));
}
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

// max(v, 0) that keeps NaN (WGSL's max may return either operand for NaN): a NaN in a group
// must make its statistics NaN, as in PyTorch.
fn clamp0(v: f32) -> f32 { return select(v, 0.0, v < 0.0); }

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

// The careful rescan of a chunk (or row) whose fast statistics are suspect (acc_suspect): pass 0
// finds the largest finite |x| and sums the non-finite elements; pass 1 accumulates x * 2^-e (e
// the exponent of that maximum, an exact scaling) into the caller's accumulator, emptied first,
// so no square over- or underflows, and the result is scaled back. It sums Inf/NaN as PyTorch's
// sums would, so any finite input gives finite statistics wherever float32 can hold them. Only
// data with Inf/NaN, huge or tiny magnitudes (or a constant chunk) pays for it. Used as: var rs = rescan_begin(); walk;
// if (rescan_mid(&rs, a)) { walk }; rescan_end(&rs, a, n), each step of a walk rescan_elem(&rs, a, x).
struct Rescan {
  phase: u32,        // 0 or 1: the pass
  amax: f32,         // pass 0: the largest finite |x|
  bad: f32,          // pass 0: the sum of the non-finite elements' bad_term
  bad_count: f32,    // pass 0: how many non-finite elements
  exp: i32,          // pass 1: the exponent of amax (x is scaled by 2^-exp)
}
fn rescan_begin() -> Rescan { return Rescan(0u, 0.0, 0.0, 0.0, 0); }
fn rescan_elem(rs: ptr<function, Rescan>, a: ptr<function, Acc>, x: f32) {
  if ((*rs).phase == 0u) {
    if (finite(x)) { (*rs).amax = max((*rs).amax, abs(x)); } else { (*rs).bad += bad_term(x); (*rs).bad_count += 1.0; }
  } else {
    // ldexp_wide, not a multiplication by 2^-e: that factor is subnormal (flushed to 0 on GPUs) for e > 126.
    acc_scalar(a, ldexp_wide(x, -(*rs).exp));
  }
}
// (WELFORD and SUMSQ keep nothing per group: acc_new's group is any.)
fn rescan_mid(rs: ptr<function, Rescan>, a: ptr<function, Acc>) -> bool {
  if ((*rs).bad_count > 0.0 || (*rs).amax == 0.0) { return false; }
  (*rs).exp = frexp((*rs).amax).exp;
  *a = acc_new(0u);
  (*rs).phase = 1u;
  return true;
}
fn rescan_end(rs: ptr<function, Rescan>, a: ptr<function, Acc>, n: f32) -> vec4f {
  if ((*rs).bad_count > 0.0) { return nonfinite_result(n, (*rs).bad); }
  if ((*rs).phase == 0u) { return vec4f(n, 0.0, 0.0, 0.0); }
  return unscale(acc_result(a), (*rs).exp);
}
// Elements of group j with logical index k in [k0, k1) (the order of reduce_range), one by one.
fn rescan_walk(rs: ptr<function, Rescan>, a: ptr<function, Acc>, j: u32, k0: u32, k1: u32) {
  for (var k = k0; k < k1; k += 1u) {
    let o = k / P.runLength;
    rescan_elem(rs, a, xv1((o * P.groups + j) * P.runLength + k - o * P.runLength));
  }
}
// The statistics of group j's elements [k0, k1), rescanned when the fast ones are suspect.
fn checked_range(a: ptr<function, Acc>, j: u32, k0: u32, k1: u32) -> vec4f {
  let r = acc_result(a);
  if (!acc_suspect(r)) { return r; }
  var rs = rescan_begin();
  rescan_walk(&rs, a, j, k0, k1);
  if (rescan_mid(&rs, a)) { rescan_walk(&rs, a, j, k0, k1); }
  return rescan_end(&rs, a, r.x);
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
    // The shifts start at the first quad; then blocks of 4 quads, the shifts moved to the
    // running means after each (acc_recenter).
    if ((*a).count == 0.0 && p + 4u <= end) {
      acc4(a, base + p, p);
      acc_recenter(a);
      p += 4u;
    }
    for (; p + 16u <= end; p += 16u) {
      acc4(a, base + p, p);
      acc4(a, base + p + 4u, p + 4u);
      acc4(a, base + p + 8u, p + 8u);
      acc4(a, base + p + 12u, p + 12u);
      acc_recenter(a);
    }
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

// sum-sq.wgsl: the sum-of-squares accumulator (section SUMSQ: RMS norm and weight norm), behind
// the interface of accumulate.wgsl.
//#file accumulator

// welford.wgsl: the Welford accumulator (section WELFORD: layer, group, instance and batch norm
// statistics), behind the interface of accumulate.wgsl.
//#file accumulator

// The mean as a pair: with 1e4 + N(0, 1) in f32 a rounded mean alone is off by up to half an ulp
// of 1e4 (~5e-4 sigma). Four vec4 lanes with a shared count, and one scalar lane (the elements
// past the last whole quad; the rescan). A lane's mean is the unevaluated sum shift + offset:
// every 4 quads (every element in the scalar lane) the shift moves to the running mean (shift +
// offset rounded) and offset keeps the rounding error (split_sum, common.wgsl), so x - shift is
// the deviation from a recent running mean: exact (Sterbenz) for elements near the mean whatever
// the offset, and never computed against a far element for long (an outlier first in a group does
// not spoil the rest; the few elements before a recentre carry a rounding that is damped like any
// early Welford step). The lanes are merged by Chan (common.wgsl).
struct Welford {
  count: f32,        // elements per vec4 lane
  shift: vec4f,      // per lane: the shift, a recent running mean rounded
  offset: vec4f,     // per lane: the mean of x - shift
  m2: vec4f,         // per lane: the sum of squared deviations from the lane's mean (M2)
  tail_count: f32,   // the scalar lane's count, shift, offset and M2
  tail_shift: f32,
  tail_offset: f32,
  tail_m2: f32,
}
alias Acc = Welford;
fn acc_new(j: u32) -> Acc { return Acc(0.0, vec4f(0.0), vec4f(0.0), vec4f(0.0), 0.0, 0.0, 0.0, 0.0); }
fn acc4(a: ptr<function, Acc>, e: u32, i: u32) { acc_lanes(a, xv4(e)); }
// One Welford step per lane (channels-last statistics feed a quad of channels here, CL_PARTIALS).
fn acc_lanes(a: ptr<function, Acc>, x: vec4f) {
  let v = dev4(x, (*a).shift);
  (*a).count += 1.0;
  let d = v - (*a).offset;
  (*a).offset += d * (1.0 / (*a).count);
  (*a).m2 += d * (v - (*a).offset);
}
// The lanes' shifts moved to their running means (every 4 quads: an element is never more than
// a few steps behind, and the rounding of x - shift of those few is damped like any early step).
fn acc_recenter(a: ptr<function, Acc>) {
  let r = split_sum4((*a).shift, (*a).offset);
  (*a).shift = r[0];
  (*a).offset = r[1];
}
fn acc_scalar(a: ptr<function, Acc>, x: f32) {
  let v = dev(x, (*a).tail_shift);
  (*a).tail_count += 1.0;
  let d = v - (*a).tail_offset;
  let m = (*a).tail_offset + d / (*a).tail_count;
  (*a).tail_m2 += d * (v - m);
  let r = split_sum((*a).tail_shift, m);
  (*a).tail_shift = r.x;
  (*a).tail_offset = r.y;
}
fn acc1(a: ptr<function, Acc>, e: u32, i: u32) { acc_scalar(a, xv1(e)); }
// The lanes merged (Chan, common.wgsl), as (n, s, m, M2).
fn acc_result(a: ptr<function, Acc>) -> vec4f {
  var r = vec4f((*a).tail_count, (*a).tail_shift, (*a).tail_offset, (*a).tail_m2);
  r = chan(r, vec4f((*a).count, (*a).shift.x, (*a).offset.x, (*a).m2.x));
  r = chan(r, vec4f((*a).count, (*a).shift.y, (*a).offset.y, (*a).m2.y));
  r = chan(r, vec4f((*a).count, (*a).shift.z, (*a).offset.z, (*a).m2.z));
  r = chan(r, vec4f((*a).count, (*a).shift.w, (*a).offset.w, (*a).m2.w));
  return vec4f(r.xyz, clamp0(r.w));
}
// The spread needs the careful rescan (see Rescan): non-finite statistics (an Inf or NaN in the
// data, or squares past f32) or an M2 so small that squares may have underflowed.
fn acc_suspect(r: vec4f) -> bool { return r.x > 0.0 && (!finite(r.y) || !finite(r.z) || m2_suspect(r.w)); }
// A chunk holding non-finite elements: their sum is the mean (as PyTorch's sum gives it), M2 NaN.
fn nonfinite_result(n: f32, bad: f32) -> vec4f { return vec4f(n, bad, 0.0, nan_f32(n)); }
fn bad_term(x: f32) -> f32 { return x; }
// A rescanned (scaled by 2^-e) result back in scale, its spread as the root -S (see q_root).
fn unscale(r: vec4f, e: i32) -> vec4f { return vec4f(r.x, ldexp_wide(r.y, e), ldexp_wide(r.z, e), q_from_root(ldexp_wide(sqrt(r.w / r.x), e))); }
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

const NV = 4u;

const NSUMS = 3u;
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

// The sum of v over the workgroup, in every invocation (the same value in each), through slot.
fn wg_sum(v: f32, t: u32, slot: u32) -> f32 {
  let o = slot * WG;
  red[o + t] = v;
  for (var h = WG / 2u; h > 0u; h >>= 1u) {
    workgroupBarrier();
    if (t < h) { red[o + t] += red[o + t + h]; }
  }
  workgroupBarrier();
  return red[o];
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
fn b_quad(a: u32, n: u32) -> vec4f {
  if (n == 4u) { return B_ld4(a); }
  var v = vec4f(0.0);
  for (var i = 0u; i < n; i += 1u) { v[i] = B_ld(a + i); }
  return v;
}

fn store_quad(e: u32, n: u32, y: vec4f) {
  if (n == 4u) { Y_st4(e, y); return; }
  for (var i = 0u; i < n; i += 1u) { Y_st(e + i, y[i]); }
}

fn hsum(v: vec4f) -> f32 { return (v.x + v.y) + (v.z + v.w); }

@compute @workgroup_size(WG)
fn workgroup_rows_welford(w: WorkgroupIds, l: LaneIds) {
  let t = l.t;
  // (Uniform across the workgroup: every invocation returns, or none.)
  let j = enter(w, l);
  if (j >= P.groups) { return; }
  let K = P.runLength;
  let base = j * K;
  let Kf = f32(K);
  var xs: array<vec4f, NV>;
  var s1 = 0.0;
  for (var k = 0u; k < NV; k += 1u) {
    let q = t + k * WG;
    let x = load_quad(base + 4u * q, quad_len(q, K));
    xs[k] = x;
    s1 += hsum(x);
  }
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
  // The careful path (rare): invocation 0 redoes the row's statistics from memory.
  if (suspect && t == 0u) {
    var a = acc_new(j);
    reduce_range(&a, j, 0u, K);
    careful = checked_range(&a, j, 0u, K);
  }
  workgroupBarrier();
  if (suspect) {
    let r = careful;
    st = vec3f(r.y, r.z, q_rstd(r.x, r.w, P.eps));
  }
  if (t == 0u) {
    MEAN_st(j, st.x + st.y);
    RSTD_st(j, st.z);
  }
  let sc = scaled_stats(st.x, st.y, st.z);
  for (var k = 0u; k < NV; k += 1u) {
    let q = t + k * WG;
    let n = quad_len(q, K);
    if (n == 0u) { continue; }
    var y = hold4((dev4(xs[k] * sc.w, vec4f(sc.x)) - sc.y) * sc.z);
    y *= w_quad(4u * q, n);
    y += b_quad(4u * q, n);
    store_quad(base + 4u * q, n, y);
  }
}
// rows-grad.wgsl: the layer/RMS-norm backward on GPU-class adapters, one workgroup per block of
// rows, each row in registers. Part of the rows family: compiled after rows.wgsl, whose NV, wg_sum,
// quad helpers and entry-point plumbing (enter, WorkgroupIds, LaneIds) it uses.
//
// Entry point and flags:
//#file rows
//#entry workgroup_rows_grad ROWS_BWD memory=workgroupRows
//#flag DWDB         workgroup_rows_grad also writes its block's column partials (PART)
