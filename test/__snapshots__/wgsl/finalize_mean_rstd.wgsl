struct Params {
  outputs: u32,
  partials: u32,
  partialBegin: u32,
  groupStride: u32,
  partialStride: u32,
  partialsPerBlock: u32,
  blocksPerGroup: u32,
  eps: f32,
  momentum: f32,
  elements: u32,
  channels: u32,
  numGroups: u32,
  channelsPerGroup: u32,
  channelBegin: u32,
  channelsPerBlock: u32,
  spatial: u32,
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
@group(0) @binding(1) var<storage, read> PART: array<f32>;
fn PART_w(w: u32) -> u32 { return w; }
fn PART_ld(i: u32) -> f32 { return PART[i]; }
fn PART_ld4(i: u32) -> vec4f { return vec4f(PART[i], PART[i + 1u], PART[i + 2u], PART[i + 3u]); }
@group(0) @binding(2) var<storage, read_write> MEAN: array<f32>;
fn MEAN_w(w: u32) -> u32 { return w; }
fn MEAN_ld(i: u32) -> f32 { return MEAN[i]; }
fn MEAN_ld4(i: u32) -> vec4f { return vec4f(MEAN[i], MEAN[i + 1u], MEAN[i + 2u], MEAN[i + 3u]); }
fn MEAN_st(i: u32, v: f32) { MEAN[i] = v; }
fn MEAN_st2(i: u32, v: vec2f) { MEAN[i] = v.x; MEAN[i + 1u] = v.y; }
fn MEAN_st4(i: u32, v: vec4f) { MEAN[i] = v.x; MEAN[i + 1u] = v.y; MEAN[i + 2u] = v.z; MEAN[i + 3u] = v.w; }
@group(0) @binding(3) var<storage, read_write> RSTD: array<f32>;
fn RSTD_w(w: u32) -> u32 { return w; }
fn RSTD_ld(i: u32) -> f32 { return RSTD[i]; }
fn RSTD_ld4(i: u32) -> vec4f { return vec4f(RSTD[i], RSTD[i + 1u], RSTD[i + 2u], RSTD[i + 3u]); }
fn RSTD_st(i: u32, v: f32) { RSTD[i] = v; }
fn RSTD_st2(i: u32, v: vec2f) { RSTD[i] = v.x; RSTD[i + 1u] = v.y; }
fn RSTD_st4(i: u32, v: vec4f) { RSTD[i] = v.x; RSTD[i + 1u] = v.y; RSTD[i + 2u] = v.z; RSTD[i + 3u] = v.w; }
@group(0) @binding(4) var<storage, read_write> LO: array<f32>;
fn LO_w(w: u32) -> u32 { return w; }
fn LO_ld(i: u32) -> f32 { return LO[i]; }
fn LO_ld4(i: u32) -> vec4f { return vec4f(LO[i], LO[i + 1u], LO[i + 2u], LO[i + 3u]); }
fn LO_st(i: u32, v: f32) { LO[i] = v; }
fn LO_st2(i: u32, v: vec2f) { LO[i] = v.x; LO[i + 1u] = v.y; }
fn LO_st4(i: u32, v: vec4f) { LO[i] = v.x; LO[i + 1u] = v.y; LO[i + 2u] = v.z; LO[i + 3u] = v.w; }
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

// sqrt(a^2 + b^2) for a, b >= 0 without overflow or underflow of the squares (NaN and Inf pass
// through: a + b): both scaled by the power of two of the larger (exact; not a division by it,
// whose error WGSL bounds only below 2^126).
fn hyp2(a: f32, b: f32) -> f32 {
  let m = max(a, b);
  if (!(m > 0.0) || !finite(m)) { return a + b; }
  let e = frexp(m).exp;
  let x = ldexp_wide(a, -e);
  let y = ldexp_wide(b, -e);
  return ldexp_wide(sqrt(x * x + y * y), e);
}

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
fn dev(x: f32, s: f32) -> f32 { return hold(x - s); }
// (s, e) with s = a + b rounded and s + e = a + b exactly (Fast2Sum: |a| >= |b|, or a is a shift
// of which b is the small rest).
fn split_sum(a: f32, b: f32) -> vec2f {
  let s = hold(a + b);
  return vec2f(s, b - hold(s - a));
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
// S of an encoded q over n elements.
fn q_root(n: f32, q: f32) -> f32 {
  if (q_is_root(q)) { return -q; }
  return sqrt(q / n);
}
// q in root form from S (S = 0 as the plain +0).
fn q_from_root(s: f32) -> f32 { return select(-s, 0.0, s == 0.0); }
// rstd = 1/sqrt(q / n + eps) from an encoded q: directly for the plain form (as precise as it
// gets; a plain q is finite and not tiny), through rstd_of (no overflow or underflow) for a root.
fn q_rstd(n: f32, q: f32, eps: f32) -> f32 {
  if (q_is_root(q)) { return rstd_of(-q, eps); }
  return 1.0 / sqrt(q / n + eps);
}
// Chan's merge of Welford partials whose q is in root form (n, s, m, S), without overflow or
// underflow of M2: the careful path of merges whose plain M2 is not finite or tiny (m2_suspect).
fn chan_root(a: vec4f, b: vec4f) -> vec4f {
  if (b.x == 0.0) { return a; }
  if (a.x == 0.0) { return b; }
  let n = a.x + b.x;
  if (!finite(a.y) || !finite(b.y)) { return vec4f(n, a.y + b.y, 0.0, nan_f32(n)); }
  let f = b.x / n;
  let d = dev(b.y, a.y) + (b.z - a.z);
  let sm = split_sum(a.y, a.z + d * f);
  let fa = a.x / n;
  return vec4f(n, sm.x, sm.y, hyp2(hyp2(sqrt(fa) * a.w, sqrt(f) * b.w), abs(d) * sqrt(fa * f)));
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

// finalize.wgsl: per-group merges of the partials written by reduce.wgsl, and the small
// per-group (or per-channel) computations that follow them.
//
// One invocation handles one group j < outputs and merges its partials, found at
// PART[4*(j*groupStride + c*partialStride)] for partialBegin <= c < partials (partialBegin = 0
// but for blocks of weight_bias_grads ACCUM):
// Chan's merge for WELFORD, roots of sums of squares for SUMSQ, plain sums otherwise.
// `partials` is at most a few hundred, so the sequential merge is short; the long reductions were split
// by reduce.wgsl. Modes (one compiled in; the backward's are in finalize-grad.wgsl, compiled after
// this file with merge_range and out_index):
//   FIN_STATS   mean = s + m, rstd = 1/sqrt(M2/n + eps), and LO = (s, m) pairs for the apply
//               step (see reduce.wgsl); RUNNING: batch-norm running update
//   FIN_CAST    float32 -> float16 copy of a small per-group output, one u32 word per invocation
//               (per-group results are computed in f32 and packed here, so that no two
//               invocations share a word)
//   FIN_RMS     rstd = 1/sqrt(sum x^2 / n + eps)
//   FIN_WN      norm = sqrt(sum v^2), scale = g / norm
//   FIN_SUMS    merged sums written out (group norm per (n, c))
//   FIN_MERGE   blocks of partialsPerBlock partials merged into one (blocksPerGroup per group)
//
// Entry points: name, the sections (roles) it compiles in, its memory model (kernels/memory.ts).
// Flags the host may set follow.
//#file finalize
//#entry finalize_mean_rstd FIN_STATS WELFORD memory=perGroup
//#entry finalize_rms FIN_RMS SUMSQ memory=perGroup
//#entry finalize_weight_norm FIN_WN SUMSQ memory=perGroup
//#entry grad_sums FIN_SUMS memory=perGroup
//#entry merge_welford FIN_MERGE WELFORD memory=merge
//#entry merge_sumsq FIN_MERGE SUMSQ memory=merge
//#entry merge_sums FIN_MERGE memory=merge
//#entry cast_half FIN_CAST memory=perGroup
//#flag RUNNING      batch-norm running statistics updated in place (RM, RV)

// Partials ca <= c < cb of group j, merged. WELFORD and SUMSQ partials carry their sums of
// squares q encoded (plain, or minus a root mean square for rescanned chunks: q_root in
// common.wgsl) and so does the merge: plain sums when every partial is plain and the sum is
// not suspect (full precision), else again with hypot steps on the roots (no overflow or
// underflow).
fn part_at(j: u32, c: u32) -> vec4f { return PART_ld4(4u * (j * P.groupStride + c * P.partialStride)); }
fn merge_range(j: u32, ca: u32, cb: u32) -> vec4f {
  var r = vec4f(0.0);
  var root = false;
  for (var c = ca; c < cb; c += 1u) {
    let p = part_at(j, c);
    root = root || q_is_root(p.w);
    r = chan(r, p);
  }
  if (r.x > 0.0 && (root || m2_suspect(r.w))) {
    r = vec4f(0.0);
    for (var c = ca; c < cb; c += 1u) {
      let p = part_at(j, c);
      r = chan_root(r, vec4f(p.xyz, q_root(p.x, p.w)));
    }
    return vec4f(r.xyz, q_from_root(r.w));
  }
  return r;
}
fn merged(j: u32) -> vec4f { return merge_range(j, P.partialBegin, P.partials); }

// One function per kernel role: the output of group (or block, or word) j < outputs; the entry
// points below call the role their `//#entry` line names. Invocation j's index, or P.outputs
// (none) past a windowed dispatch's invocations:
fn out_index(lid: vec3u, wid: vec3u, nwg: vec3u) -> u32 {
  let j = inv_index(lid, wid, nwg);
  return j;
}

fn mean_rstd_out(j: u32) {
  let r = merged(j);
  // (n, s, m, R): the mean is s + m; the apply step gets the pair (x - mean keeps its precision).
  let mean = r.y + r.z;
  MEAN_st(j, mean);
  RSTD_st(j, q_rstd(r.x, r.w, P.eps));
  LO_st(2u * j, r.y);
  LO_st(2u * j + 1u, r.z);
}

@compute @workgroup_size(WG)
fn finalize_mean_rstd(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = out_index(lid, wid, nwg);
  if (j < P.outputs) { mean_rstd_out(j); }
}

// finalize-grad.wgsl: the backward's per-group steps after the partials are merged (merge_range,
// out_index and the uniform fields as in finalize.wgsl, compiled in front of this file): the
// coefficients of the dx kernels and dweight/dbias, and the modulated norms' modulation gradients.
// Modes (one compiled in):
//   FIN_BWD     backward coefficients (alpha, beta, gamma, mu) for BWD_APPLY in apply.wgsl, and
//               optionally dweight/dbias per group (batch norm)
//   FIN_BWD_WN  weight-norm backward coefficients and dg
//   FIN_DWDB    dweight = sum g*xhat, dbias = sum g (layer-norm columns, group-norm channels);
//               ACCUM: added to the values already stored
//   FIN_GN      group-norm coefficients per (n, g) from the per-(n, c) sums
//   FIN_MODS    dscale, dshift, dgate, dweight and dbias of a modulated layer/RMS norm from its row
//               kernel's column partials
//
// Entry points: name, the sections (roles) it compiles in, its memory model (kernels/memory.ts).
// Flags the host may set follow.
//#file finalize
//#entry grad_coefficients FIN_BWD memory=perGroup
//#entry weight_norm_grad_coefficients FIN_BWD_WN memory=perGroup
//#entry group_grad_coefficients FIN_GN memory=groupCoefficients
//#entry weight_bias_grads FIN_DWDB memory=perGroup
//#entry modulation_grad_sums FIN_MODS memory=outputs
//#flag W_BY_J       the weight of group j multiplies the coefficients (W)
//#flag DW           dweight is written (DW)
//#flag DB           dbias is written (DB)
//#flag GATE_SUMS    weight_bias_grads writes the fourth sum (dgate: sum dresidual * x) as DW
//#flag ACCUM        add to the values already stored (blocks of one reduction)
//#flag MS_SCALED    modulation_grad_sums: the partials are of dy before the scale (SC): dweight/dbias terms times scaleOffset + scale
//#flag MS_DSC       modulation_grad_sums writes dscale (DSC)
//#flag MS_DSH       modulation_grad_sums writes dshift (DSH)
//#flag MS_DGT       modulation_grad_sums writes dgate (DGT)
//#flag GN_KR        group_grad_coefficients stores each group's k * rstd (KR, the saved mean's rounding, see FIN_GN); weight_bias_grads takes KR * sum dy out of each per-(n, c) sum of dy*xhat
//#flag GN_BLOCK     group_grad_coefficients over one block of a group's channels (channelBegin, channelsPerBlock)
