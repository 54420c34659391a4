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

//#if MOD_SC || MOD_SH || MOD_GT
//#if MOD_ROWS
// Row kernels of layer/RMS norm (modInner = the row length): the kernel calls mod_row(j) before
// it touches row j, and the index is e plus the row's offset. (Integer division, which CPU
// adapters run lane by lane, measured at about two thirds of a modulated row kernel's time on
// SwiftShader when done per load.)
var<private> mod_off: u32;
fn mod_row(j: u32) { mod_off = ((j / P.modDiv) % P.modMod) * P.modInner - j * P.modInner; }
fn mod_index(e: u32) -> u32 { return e + mod_off; }
// Row j whose modulation row the kernel knows (mr).
fn mod_row_of(j: u32, mr: u32) { mod_off = (mr - j) * P.modInner; }
//#else
fn mod_row(j: u32) {}
fn mod_row_of(j: u32, mr: u32) {}
fn mod_index(e: u32) -> u32 {
  let row = e / P.modInner;
  return ((row / P.modDiv) % P.modMod) * P.modInner + (e - row * P.modInner);
}
//#endif
// How the quad at e maps (kernels without MOD_QUADS): 0 one vec4 load at m(e), 1 one value for
// the quad, 2 four loads. (CPU adapters run every branch a lane may take: MOD_QUADS kernels,
// whose quads are aligned, choose at compile time instead.)
// (Chosen at compile time: CPU adapters run both sides of a branch, and divide lane by lane.)
fn mod_quad(e: u32) -> u32 {
  //#if MOD_RUNS
  return select(2u, 1u, e / P.modDiv == (e + 3u) / P.modDiv);
  //#else
  return select(2u, 0u, (P.modInner & 3u) == 0u && (e & 3u) == 0u);
  //#endif
}
//#else
fn mod_row(j: u32) {}
fn mod_row_of(j: u32, mr: u32) {}
//#endif

//#if MOD_SC
fn sc1(e: u32) -> f32 { return SC_ld(mod_index(e)); }
fn sc4(e: u32) -> vec4f {
  //#if MOD_QUADS
  //#if MOD_RUNS
  return vec4f(sc1(e));
  //#else
  return SC_ld4(mod_index(e));
  //#endif
  //#else
  let k = mod_quad(e);
  if (k == 0u) { return SC_ld4(mod_index(e)); }
  if (k == 1u) { return vec4f(sc1(e)); }
  return vec4f(sc1(e), sc1(e + 1u), sc1(e + 2u), sc1(e + 3u));
  //#endif
}
//#endif
//#if MOD_SH
fn sh1(e: u32) -> f32 { return SH_ld(mod_index(e)); }
fn sh4(e: u32) -> vec4f {
  //#if MOD_QUADS
  //#if MOD_RUNS
  return vec4f(sh1(e));
  //#else
  return SH_ld4(mod_index(e));
  //#endif
  //#else
  let k = mod_quad(e);
  if (k == 0u) { return SH_ld4(mod_index(e)); }
  if (k == 1u) { return vec4f(sh1(e)); }
  return vec4f(sh1(e), sh1(e + 1u), sh1(e + 2u), sh1(e + 3u));
  //#endif
}
//#endif
//#if MOD_GT
fn gt1(e: u32) -> f32 { return GT_ld(mod_index(e)); }
fn gt4(e: u32) -> vec4f {
  //#if MOD_QUADS
  //#if MOD_RUNS
  return vec4f(gt1(e));
  //#else
  return GT_ld4(mod_index(e));
  //#endif
  //#else
  let k = mod_quad(e);
  if (k == 0u) { return GT_ld4(mod_index(e)); }
  if (k == 1u) { return vec4f(gt1(e)); }
  return vec4f(gt1(e), gt1(e + 1u), gt1(e + 2u), gt1(e + 3u));
  //#endif
}
//#endif

// n ⊙ (scaleOffset + scale) + shift of the quad (or element) at e; the activation is the caller's.
fn mod_affine4(e: u32, n: vec4f) -> vec4f {
  var v = n;
  //#if MOD_SC
  v = v * (P.scaleOffset + sc4(e));
  //#endif
  //#if MOD_SH
  v = v + sh4(e);
  //#endif
  return v;
}
fn mod_affine1(e: u32, n: f32) -> f32 {
  var v = n;
  //#if MOD_SC
  v = v * (P.scaleOffset + sc1(e));
  //#endif
  //#if MOD_SH
  v = v + sh1(e);
  //#endif
  return v;
}

//#if MOD_OUT
fn mod_act4(v: vec4f) -> vec4f {
  //#if MOD_SILU
  return v / (1.0 + exp(-v));
  //#else
  return v;
  //#endif
}
fn Y_st4(e: u32, v: vec4f) { YM_st4(e, mod_act4(mod_affine4(e, v))); }
fn Y_st(e: u32, v: f32) { YM_st(e, mod_act4(vec4f(mod_affine1(e, v))).x); }
//#endif

//#if GATE_X
fn X_ld4(e: u32) -> vec4f { return gt4(e) * XG_ld4(e); }
fn X_ld(e: u32) -> f32 { return gt1(e) * XG_ld(e); }
//#endif

//#if SUM_X
// The forward's sum R + gate ⊙ x (float16: rounded to half, as the stored sum).
fn sum_round4(s: vec4f) -> vec4f {
  //#if HALF_SUM
  return vec4f(unpack2x16float(pack_half2(s.xy)), unpack2x16float(pack_half2(s.zw)));
  //#else
  return s;
  //#endif
}
fn X_ld4(e: u32) -> vec4f {
  var x = XG_ld4(e);
  //#if MOD_GT
  x = gt4(e) * x;
  //#endif
  return sum_round4(R_ld4(e) + x);
}
fn X_ld(e: u32) -> f32 {
  var x = XG_ld(e);
  //#if MOD_GT
  x = gt1(e) * x;
  //#endif
  return sum_round4(vec4f(R_ld(e) + x)).x;
}
//#endif

//#if MOD_DY
fn DY_ld4(e: u32) -> vec4f { return DYM_ld4(e) * (P.scaleOffset + sc4(e)); }
fn DY_ld(e: u32) -> f32 { return DYM_ld(e) * (P.scaleOffset + sc1(e)); }
//#endif

//#if DX_OUT
// t = v (+ dsum), the residual's gradient; stores DR = t and DXM = t (⊙ gate), returns t.
fn dx_out4(e: u32, v: vec4f) -> vec4f {
  var t = v;
  //#if HAS_DS
  t += DS_ld4(e);
  //#endif
  //#if HAS_DR
  DR_st4(e, t);
  //#endif
  //#if MOD_GT
  DXM_st4(e, t * gt4(e));
  //#else
  DXM_st4(e, t);
  //#endif
  return t;
}
fn DX_st4(e: u32, v: vec4f) { _ = dx_out4(e, v); }
fn DX_st(e: u32, v: f32) {
  var t = v;
  //#if HAS_DS
  t += DS_ld(e);
  //#endif
  //#if HAS_DR
  DR_st(e, t);
  //#endif
  //#if MOD_GT
  t *= gt1(e);
  //#endif
  DXM_st(e, t);
}
//#endif

//#if MOD_SUMS
// Block b of a backward row kernel: rows [r0, r1) of run u = b / blocksPerRun of the modDiv rows
// that share a modulation row, blocks of rowsPerBlock rows from the run's start (so that a block's
// column partials belong to one modulation row).
fn mod_block(b: u32) -> vec2u {
  let u = b / P.blocksPerRun;
  let r0 = u * P.modDiv + (b - u * P.blocksPerRun) * P.rowsPerBlock;
  return vec2u(r0, min(r0 + P.rowsPerBlock, (u + 1u) * P.modDiv));
}
// The gradient as given (dy of the modulated output), and the factor scaleOffset + scale the
// norm's own gradient is that times (1 without a scale).
fn dy_raw4(e: u32) -> vec4f {
  //#if MOD_DY
  return DYM_ld4(e);
  //#else
  return DY_ld4(e);
  //#endif
}
fn dy_factor4(e: u32) -> vec4f {
  //#if MOD_DY
  return P.scaleOffset + sc4(e);
  //#else
  return vec4f(1.0);
  //#endif
}
// dx stored as DX_st4 does, and the quad's term of dgate's sum, (dx + dsum) ⊙ x (0 without a gate).
fn dx_store_gate4(e: u32, v: vec4f) -> vec4f {
  //#if MOD_GT
  return dx_out4(e, v) * XG_ld4(e);
  //#else
  DX_st4(e, v);
  return vec4f(0.0);
  //#endif
}
//#endif
