// fused-rows.wgsl: layer/RMS-norm (and group-norm) forward with one invocation per row, the
// row's statistics through reduce_range (accumulate.wgsl) and the row normalized from cache: where
// invocations are cheap loops and barriers are not (CPU adapters), and rows are many. Part of the
// apply family (compiled after apply.wgsl, whose index maps and y4/y1 it uses).
//
//   ROWFUSED      fused_rows_welford / fused_rows_sumsq: one invocation per contiguous row/group
//                 (one run), or per block of rows sharing their weights (ROW_BLOCK).
//
// Entry points and flags:
//#file apply
//#entry fused_rows_welford ROWFUSED WELFORD memory=fusedRows
//#entry fused_rows_sumsq ROWFUSED SUMSQ memory=fusedRows
//#flag ROW_BLOCK    fused_rows_welford/_sumsq over blocks of rowsPerBlock (<= 4) rows sharing their weights (weightMod = runLength, rows of whole quads)

//#if ROWFUSED || BWD_ROWFUSED
// The result over the whole of row j of the accumulator a (accumulate.wgsl; a from acc_new(j)).
fn row_result(a: ptr<function, Acc>, j: u32) -> vec4f {
  mod_row(j);
  reduce_range(a, j, 0u, P.runLength);
  return checked_range(a, j, 0u, P.runLength);
}
//#endif

//#if ROWFUSED
// Row j's statistics (s, m, a, p) for y4/y1 (scaled_stats), its mean and rstd stored.
fn row_stats(j: u32) -> vec4f {
  var a = acc_new(j);
  let r = row_result(&a, j);
  //#if WELFORD
  let rstd = q_rstd(r.x, r.w, P.eps);
  MEAN_st(j, r.y + r.z);
  RSTD_st(j, rstd);
  return scaled_stats(r.y, r.z, rstd);
  //#else
  let rstd = q_rstd(r.x, r.y, P.eps);
  RSTD_st(j, rstd);
  return scaled_stats(0.0, 0.0, rstd);
  //#endif
}
//#if ROW_BLOCK
// Layer/RMS-norm rows share their weights: blocks of rows per invocation load each quad's weight
// and bias once for the block (on SwiftShader those loads cost about as much as the rest of the
// normalize step; a block of 4 rows measured ~1.4x faster than one row per invocation).
const RBF = 4u;
// y of the quad x with statistics st and the quad's weights wv and biases bv (1 and 0 when absent).
fn y4_wb(x: vec4f, st: vec4f, wv: vec4f, bv: vec4f) -> vec4f { return activate4(hold4((dev4(x * st.w, vec4f(st.x)) - st.y) * st.z) * wv + bv); }
//#endif
//#if fused_rows_welford
@compute @workgroup_size(WG)
fn fused_rows_welford(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
//#if fused_rows_sumsq
@compute @workgroup_size(WG)
fn fused_rows_sumsq(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
  let j = inv_index(lid, wid, nwg);
  let K = P.runLength;
  //#if ROW_BLOCK
  // Rows j*L .. j*L + L - 1 (L = rowsPerBlock <= RBF): their statistics row by row, then the
  // block quad by quad, each quad's weight and bias loaded once for the block's rows.
  //#if WINDOW
  if (j >= P.invocationEnd) { return; }
  //#endif
  let r0 = j * P.rowsPerBlock;
  if (r0 >= P.groups) { return; }
  let r1 = min(r0 + P.rowsPerBlock, P.groups);
  var sts: array<vec4f, RBF>;
  for (var r = r0; r < r1; r += 1u) { sts[r - r0] = row_stats(r); }
  for (var p = 0u; p < K; p += 4u) {
    var wv = vec4f(1.0);
    var bv = vec4f(0.0);
    //#if HAS_W
    wv = W_ld4(p);
    //#endif
    //#if HAS_B
    bv = B_ld4(p);
    //#endif
    for (var r = r0; r < r1; r += 1u) {
      mod_row(r);
      let e = r * K + p;
      let x = xv4(e);
      //#if RESIDUAL
      S_st4(e, x);
      //#endif
      Y_st4(e, y4_wb(x, sts[r - r0], wv, bv));
    }
  }
  //#else
  //#if WINDOW
  if (j >= P.invocationEnd) { return; }
  //#endif
  if (j >= P.groups) { return; }
  let st = row_stats(j);
  let base = j * K;
  //#if ALIGNED
  for (var p = 0u; p < K; p += 4u) {
    let x = xv4(base + p);
    //#if RESIDUAL
    S_st4(base + p, x);
    //#endif
    Y_st4(base + p, y4(x, base + p, st));
  }
  //#else
  for (var p = 0u; p < K; p += 1u) {
    let x = xv1(base + p);
    //#if RESIDUAL
    S_st(base + p, x);
    //#endif
    Y_st(base + p, y1(x, base + p, st));
  }
  //#endif
  //#endif
}
//#endif
