// rows-grad.wgsl: the layer/RMS-norm backward on GPU-class adapters, one workgroup per block of
// rows, each row in registers. Part of the rows family: compiled after rows.wgsl, whose NV, wg_sum,
// quad helpers and entry-point plumbing (enter, WorkgroupIds, LaneIds) it uses.
//
// Entry point and flags:
//#file rows
//#entry workgroup_rows_grad ROWS_BWD memory=workgroupRows
//#flag DWDB         workgroup_rows_grad also writes its block's column partials (PART)

//#if ROWS_BWD
// Layer-norm and RMS-norm backward on GPU-class adapters (entry point workgroup_rows_grad): one
// workgroup handles the block of rows [b*L, min((b+1)*L, rows)) (b: the workgroup's linear index,
// L = P.rowsPerBlock rows per block, P.blocks of them), one row after the other. Per row, as the
// forward: invocation t holds the quads q = t + k*WG, k < NV, of x and dy in registers (each
// read once), then three workgroup sums (wg_sum3, subgroups or the tree as wg_sum)
//   sum g, sum g*xhat, sum (x - mu)      with g = dy * w, xhat = (x - mu) * rstd
// (mu, rstd: the saved statistics, mu = 0 without HAS_MEAN), and dx from the same registers
// with FIN_BWD's coefficients: the saved mean's float32 rounding k = mean_fix(sum (x - mu), K, mu)
// (k = 0 when mu is not within two ulps of x's mean: a caller's mean is taken as given),
//   sum g*xhat -= k * rstd * sum g,  beta = -sum g / K,  gamma = -sum g*xhat / K,
//   dx = rstd * (g + (beta - gamma * k * rstd) + gamma * ((x - mu) * rstd))  (rstd last: no
//   intermediate below float32's normal range when dx is inside it)
// (gamma multiplies xhat: no rstd^2 that could overflow or underflow). With DWDB each invocation
// also adds dy and dy * ((x - mu) - k) * rstd of its quads over the block's rows in registers and
// writes them once per block as column partials PART[4*(col*P.blocks + b)] = (rows, sum dy,
// sum dy*xhat, 0), which finalize-grad.wgsl's weight_bias_grads adds up per column (dweight, dbias): x and dy
// are read once in all. MOD_SUMS (modulated layer/RMS norm, with DWDB): blocks within one run of rows
// sharing a modulation row (mod_block), dy the gradient as given (scaled here by dy_factor4), and
// the fourth sum dgate's, (rows, sum dy, sum dy*xhat, sum (dx + dsum)*x): modulation_grad_sums
// (finalize-grad.wgsl) makes dscale, dshift, dgate, dweight and dbias of them.
var<workgroup> red3: array<vec3f, WG>;

// The sum of v over the workgroup, in every invocation (the same value in each). Begins with a
// barrier, so that a block's rows may reuse red3 one after the other.
fn wg_sum3(v: vec3f, t: u32) -> vec3f {
  workgroupBarrier();
  //#if SUBGROUPS
  let sv = subgroupAdd(v);
  if (sg_lane == 0u) { red3[t / sg_size] = sv; }
  workgroupBarrier();
  let nsg = (WG + sg_size - 1u) / sg_size;
  var r = vec3f(0.0);
  for (var i = 0u; i < nsg; i += 1u) { r += red3[i]; }
  return r;
  //#else
  red3[t] = v;
  for (var h = WG / 2u; h > 0u; h >>= 1u) {
    workgroupBarrier();
    if (t < h) { red3[t] += red3[t + h]; }
  }
  workgroupBarrier();
  return red3[0];
  //#endif
}

fn dy_quad(e: u32, n: u32) -> vec4f {
  if (n == 4u) { return DY_ld4(e); }
  var v = vec4f(0.0);
  for (var i = 0u; i < n; i += 1u) { v[i] = DY_ld(e + i); }
  return v;
}
fn dx_store(e: u32, n: u32, v: vec4f) {
  if (n == 4u) { DX_st4(e, v); return; }
  for (var i = 0u; i < n; i += 1u) { DX_st(e + i, v[i]); }
}

//#if workgroup_rows_grad
@compute @workgroup_size(WG)
fn workgroup_rows_grad(w: WorkgroupIds, l: LaneIds) {
//#endif
  let t = l.t;
  // (Uniform across the workgroup.)
  let b = enter(w, l);
  //#if MOD_SUMS
  let rr = mod_block(b);
  let r0 = rr.x;
  let r1 = rr.y;
  //#else
  let r0 = b * P.rowsPerBlock;
  let r1 = min(r0 + P.rowsPerBlock, P.groups);
  //#endif
  if (r0 >= P.groups) { return; }
  let K = P.runLength;
  let Kf = f32(K);
  var xs: array<vec4f, NV>;
  // dy as given (MOD_SUMS: before the modulation's scale).
  var gs: array<vec4f, NV>;
  //#if DWDB
  var cdy: array<vec4f, NV>;
  var cdx: array<vec4f, NV>;
  for (var k = 0u; k < NV; k += 1u) { cdy[k] = vec4f(0.0); cdx[k] = vec4f(0.0); }
  //#endif
  //#if MOD_SUMS
  var cgt: array<vec4f, NV>;
  for (var k = 0u; k < NV; k += 1u) { cgt[k] = vec4f(0.0); }
  //#endif
  for (var j = r0; j < r1; j += 1u) {
    mod_row(j);
    let base = j * K;
    var mu = 0.0;
    //#if HAS_MEAN
    mu = MEAN_ld(j);
    //#endif
    // rstd = rs * pr (factor_split: a subnormal rstd is never an operand), x and mu scaled by pr.
    let fs = factor_split(RSTD_ld(j));
    let rs = fs.x;
    let pr = fs.y;
    mu = mean_scaled(mu, pr);
    var acc = vec3f(0.0);
    for (var k = 0u; k < NV; k += 1u) {
      let q = t + k * WG;
      let n = quad_len(q, K);
      let x = load_quad(base + 4u * q, n);
      xs[k] = x;
      //#if MOD_SUMS
      // (Rows of whole quads: n is 4 or 0.)
      var dr = vec4f(0.0);
      var dy = vec4f(0.0);
      if (n == 4u) {
        dr = dy_raw4(base + 4u * q);
        dy = dr * dy_factor4(base + 4u * q);
      }
      gs[k] = dr;
      //#else
      let dy = dy_quad(base + 4u * q, n);
      gs[k] = dy;
      //#endif
      var g = dy;
      //#if HAS_W
      if (n > 0u) { g *= w_quad(4u * q, n); }
      //#endif
      let msk = quad_mask(q, K);
      let dv = select(vec4f(0.0), dev4(x * pr, vec4f(mu)), msk);
      let gz = select(vec4f(0.0), g, msk);
      acc += vec3f(hsum(gz), hsum(gz * hold4(dv * rs)), hsum(dv));
    }
    var r = wg_sum3(acc, t);
    var beta = 0.0;
    var kf = 0.0;
    //#if HAS_MEAN
    kf = mean_fix(r.z, Kf, mu);
    r.y -= (kf * rs) * r.x;
    beta = -r.x / Kf;
    //#endif
    let gamma = -r.y / Kf;
    let c = beta - gamma * (kf * rs);
    for (var k = 0u; k < NV; k += 1u) {
      let q = t + k * WG;
      let n = quad_len(q, K);
      if (n == 0u) { continue; }
      let e = base + 4u * q;
      let dy = gs[k];
      //#if MOD_SUMS
      var g = dy * dy_factor4(e);
      //#else
      var g = dy;
      //#endif
      //#if HAS_W
      g *= w_quad(4u * q, n);
      //#endif
      let dv = dev4(xs[k] * pr, vec4f(mu));
      let dx = hold4((g + c + gamma * hold4(dv * rs)) * pr) * rs;
      //#if MOD_SUMS
      cgt[k] += dx_store_gate4(e, dx);
      //#else
      dx_store(e, n, dx);
      //#endif
      //#if DWDB
      cdy[k] += dy;
      cdx[k] += dy * hold4((dv - kf) * rs);
      //#endif
    }
  }
  //#if DWDB
  let nr = f32(r1 - r0);
  for (var k = 0u; k < NV; k += 1u) {
    let q = t + k * WG;
    let n = quad_len(q, K);
    for (var i = 0u; i < n; i += 1u) {
      var gt = 0.0;
      //#if MOD_SUMS
      gt = cgt[k][i];
      //#endif
      PART_st4(4u * ((4u * q + i) * P.blocks + b), vec4f(nr, cdy[k][i], cdx[k][i], gt));
    }
  }
  //#endif
}
//#endif
