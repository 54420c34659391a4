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
// a / b, correctly rounded where the quotient is subnormal, and accurate for any finite b (WGSL
// bounds the error of a division only for |b| in [2^-126, 2^126]): the significands divided,
// the exponents applied by ldexp_exact. Zero, Inf and NaN operands as a / b.
fn quot_exact(a: f32, b: f32) -> f32 {
  if (a == 0.0 || b == 0.0 || !finite(a) || !finite(b)) { return a / b; }
  let fa = frexp(a);
  let fb = frexp(b);
  return ldexp_exact(fa.fract / fb.fract, fa.exp - fb.exp);
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
fn mean_scaled4(mu: vec4f, p: vec4f) -> vec4f { return hold4(mu * p); }
// Batch-norm eval's running (mean, rstd) as scaled_stats gives a group's own. The running
// statistics need not describe x: data and running mean near float32's largest values of opposite
// signs make x - mean pass float32 with rstd normal (a group's own statistics cannot: there rstd
// is below 2^-100 first), so p = 2^-24 where |mean| >= 2^100, a = rstd * 2^24, else p = 1, as
// scaled_stats would give: rstd = 1/sqrt(runningVar + eps) is never below 2^-100 but 0 (a float32
// running variance is at most 2^128; eps finite), nor above 2^75 but Inf, so a is exact.
fn eval_stats(mu: f32, r: f32) -> vec4f {
  let big = abs(mu) >= 0x1p100;
  let p = select(1.0, 0x1p-24, big);
  return vec4f(mean_scaled(mu, p), 0.0, r * select(1.0, 0x1p24, big), p);
}

// max(v, 0) that keeps NaN (WGSL's max may return either operand for NaN): a NaN in a group
// must make its statistics NaN, as in PyTorch.
fn clamp0(v: f32) -> f32 { return select(v, 0.0, v < 0.0); }

// The rounding of a saved float32 mean mu, recovered by a backward pass from x's own sum of
// x - mu over n elements: k = that sum / n when it is within two ulps of mu (so mu is x's mean
// rounded to float32, as the forward returned it), else 0 (a caller's mean is taken as given).
fn mean_fix(sum_dev: f32, n: f32, mu: f32) -> f32 {
  let k = sum_dev / n;
  return select(0.0, k, abs(k) <= abs(mu) * 0x1p-22);
}
