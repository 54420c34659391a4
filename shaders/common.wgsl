// common.wgsl: helpers shared by every kernel family.

// Invocation index in the kernel's whole index space: the 2-D grid linearized (dispatches past
// 65,535 workgroups per dimension), plus the first invocation t0 of a windowed dispatch (0 for
// the others; windowed kernels also stop at t1, see kernels/window.ts).
fn inv_index(lid: vec3u, wid: vec3u, nwg: vec3u) -> u32 { return (wid.y * nwg.x + wid.x) * WG + lid.x + P.t0; }

// Chan's merge of two (n, mean, M2, -) partials.
fn chan(a: vec4f, b: vec4f) -> vec4f {
  let n = a.x + b.x;
  if (b.x == 0.0) { return a; }
  if (a.x == 0.0) { return b; }
  let d = b.y - a.y;
  let f = b.x / n;
  return vec4f(n, a.y + d * f, a.z + b.z + d * d * a.x * f, 0.0);
}


// max(v, 0) that keeps NaN (WGSL's max may return either operand for NaN): a NaN in a group
// must make its statistics NaN, as in PyTorch.
fn clamp0(v: f32) -> f32 { return select(v, 0.0, v < 0.0); }
