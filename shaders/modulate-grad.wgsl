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

//#if MOD_GRAD
// The modulation's gradients (modulate.wgsl): for modulation element m < groups (= its number
// of elements) and chunk c < chunks of the runLength elements of x that use it (chunkLength each),
// the partial (count, sum dy, sum dy * n, sum dresidual * x), n = the norm's output before the
// modulation (recomputed from x and the saved statistics, weight and bias); dy here is the
// gradient of the modulated output (after SiLU's, group norm). Invocation t: c = t / groups,
// m = t % groups (neighbouring invocations read neighbouring elements where modInner > 1).
// MG_DIRECT (one chunk): dscale, dshift, dgate written at m; else partials
// PART[4*(m*chunks + c)] for weight_bias_grads.
//#if modulation_grad_partials
@compute @workgroup_size(WG)
fn modulation_grad_partials(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
  let t = inv_index(lid, wid, nwg);
  //#if WINDOW
  if (t >= P.invocationEnd) { return; }
  //#endif
  if (t >= P.groups * P.chunks) { return; }
  let c = t / P.groups;
  let m = t - c * P.groups;
  let mr = m / P.modInner;
  let col = m - mr * P.modInner;
  let u0 = c * P.chunkLength;
  let u1 = min(u0 + P.chunkLength, P.runLength);
  var acc = vec4f(f32(u1 - u0), 0.0, 0.0, 0.0);
  // u = a * modDiv + i, stepped without dividing (CPU adapters divide lane by lane).
  var a = u0 / P.modDiv;
  var i = u0 - a * P.modDiv;
  for (var u = u0; u < u1; u += 1u) {
    let row = (a * P.modMod + mr) * P.modDiv + i;
    let e = row * P.modInner + col;
    mod_row_of(row, mr);
    i += 1u;
    if (i == P.modDiv) {
      i = 0u;
      a += 1u;
    }
    //#if MG_NO_DY
    //#else
    let dy = DY_ld(e);
    acc.y += dy;
    //#if MG_SC
    //#if MG_ROWS
    // Layer/RMS norm: the statistics are the row's, the weight and bias the column's.
    var n = normalized1(X_ld(e), stats(row));
    //#if HAS_W
    n *= W_ld(col);
    //#endif
    //#if HAS_B
    n += B_ld(col);
    //#endif
    acc.z += dy * n;
    //#else
    acc.z += dy * y1(X_ld(e), e, stats(s_of(e)));
    //#endif
    //#endif
    //#endif
    //#if MG_GT
    acc.w += DRT_ld(e) * XG_ld(e);
    //#endif
  }
  //#if MG_DIRECT
  //#if MG_SC
  DSC_st(m, acc.z);
  //#endif
  //#if MG_SH
  DSH_st(m, acc.y);
  //#endif
  //#if MG_GT
  DGT_st(m, acc.w);
  //#endif
  //#else
  PART_st4(4u * (m * P.chunks + c), acc);
  //#endif
}
//#endif

//#if SILU_GRAD
// Group norm with SiLU (and modulation): dz = dy * silu'(z), z the modulated affine output
// before the activation (recomputed from x and the saved statistics), into the f32 DZ that the
// rest of the backward takes as its dy. One invocation per quad of elements, each on its own.
// Devices with few storage bindings: SG_Z stores z into DZ, then SG_FROM_Z reads it back (dy and
// DZ bound only) and stores dz in its place.
//#if silu_grad_elements
@compute @workgroup_size(WG)
fn silu_grad_elements(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
  let t = inv_index(lid, wid, nwg);
  //#if WINDOW
  if (t >= P.invocationEnd) { return; }
  //#endif
  let e = 4u * t;
  if (e >= P.elements) { return; }
  for (var k = e; k < min(e + 4u, P.elements); k += 1u) {
    //#if SG_FROM_Z
    let z = DZ_ld(k);
    //#else
    let z = mod_affine1(k, y1(X_ld(k), k, stats(s_of(k))));
    //#endif
    //#if SG_Z
    DZ_st(k, z);
    //#else
    let sg = 1.0 / (1.0 + exp(-z));
    DZ_st(k, DY_ld(k) * (sg * (1.0 + z * (1.0 - sg))));
    //#endif
  }
}
//#endif

//#if GATED_SUM
// The gated residual's sum on its own (devices with few storage bindings; see kernels/modulate.ts):
// S = R + gate ⊙ X, one quad of elements per invocation (float16: whole words), each on its own.
//#if gated_sum_elements
@compute @workgroup_size(WG)
fn gated_sum_elements(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
  let t = inv_index(lid, wid, nwg);
  //#if WINDOW
  if (t >= P.invocationEnd) { return; }
  //#endif
  let e = 4u * t;
  if (e >= P.elements) { return; }
  for (var k = e; k < min(e + 4u, P.elements); k += 1u) {
    var x = X_ld(k);
    //#if MOD_GT
    x = gt1(k) * x;
    //#endif
    S_st(k, R_ld(k) + x);
  }
}
//#endif

//#if RESIDUAL_GRAD
// The residual's gradients on their own (devices with few storage bindings): t = DXN + DS,
// DR = t, DXN = gate ⊙ t (in place; RG_OUT: into DXO, float16 x, whose norm's dx DXN is then a
// float32 temp so that t is not rounded before its sums), one quad per invocation. (X, the forward's x, is bound for
// the accessors every apply kernel compiles; it is not read.)
//#if residual_grad_elements
@compute @workgroup_size(WG)
fn residual_grad_elements(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
  let t = inv_index(lid, wid, nwg);
  //#if WINDOW
  if (t >= P.invocationEnd) { return; }
  //#endif
  let e = 4u * t;
  if (e >= P.elements) { return; }
  for (var k = e; k < min(e + 4u, P.elements); k += 1u) {
    var v = DXN_ld(k);
    //#if HAS_DS
    v += DS_ld(k);
    //#endif
    //#if HAS_DR
    DR_st(k, v);
    //#endif
    //#if MOD_GT
    v *= gt1(k);
    //#endif
    //#if RG_OUT
    DXO_st(k, v);
    //#else
    DXN_st(k, v);
    //#endif
  }
}
//#endif
