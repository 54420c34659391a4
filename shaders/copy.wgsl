// copy.wgsl: the yardstick. One invocation copies one vec4; kernels are reported as a ratio to
// this copy's bandwidth on the same adapter in the same run.
// SRC and DST are array<vec4f> bindings.
//#file copy
//#entry copy memory=copy

@compute @workgroup_size(WG)
fn copy(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = (wid.y * nwg.x + wid.x) * WG + lid.x;
  if (i >= P.elements) { return; }
  DST[i] = SRC[i];
}
