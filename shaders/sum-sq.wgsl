// sum-sq.wgsl: the sum-of-squares accumulator (section SUMSQ: RMS norm and weight norm), behind
// the interface of accumulate.wgsl.
//#file accumulator

//#if SUMSQ
struct SumSq {
  count: f32,        // elements
  squares: vec4f,    // per vec4 lane: the sum of x^2
  tail: f32,         // the scalar lane's sum of x^2
}
alias Acc = SumSq;
fn acc_new(j: u32) -> Acc { return Acc(0.0, vec4f(0.0), 0.0); }
fn acc4(a: ptr<function, Acc>, e: u32, i: u32) { let v = xv4(e); (*a).squares += v * v; (*a).count += 4.0; }
fn acc_recenter(a: ptr<function, Acc>) {}
fn acc_scalar(a: ptr<function, Acc>, v: f32) { (*a).tail += v * v; (*a).count += 1.0; }
fn acc1(a: ptr<function, Acc>, e: u32, i: u32) { acc_scalar(a, xv1(e)); }
// (n, sum x^2, 0, 0).
fn acc_result(a: ptr<function, Acc>) -> vec4f {
  let q = (*a).squares;
  return vec4f((*a).count, (q.x + q.y) + (q.z + q.w) + (*a).tail, 0.0, 0.0);
}
fn acc_suspect(r: vec4f) -> bool { return r.x > 0.0 && m2_suspect(r.y); }
fn nonfinite_result(n: f32, bad: f32) -> vec4f { return vec4f(n, bad, 0.0, 0.0); }
fn bad_term(x: f32) -> f32 { return abs(x); }
fn unscale(r: vec4f, e: i32) -> vec4f { return vec4f(r.x, q_from_root(ldexp_wide(sqrt(r.y / r.x), e)), 0.0, 0.0); }
//#endif
