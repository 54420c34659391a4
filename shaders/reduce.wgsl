// reduce.wgsl: grouped partial reductions, the one statistics mechanism under every norm.
//
// Group j (0 <= j < groups) is the index set e = (o*groups + j)*runLength + i for o < runs,
// i < runLength, in the logical order k = o*runLength + i. Layer/RMS-norm rows and
// group/instance-norm groups are groups of one run; batch-norm channels have runs = N,
// runLength = spatial; weight-norm slices along `dim` have runs = prod(dims before).
//
// One invocation reduces one chunk k in [c*L, min((c+1)*L, runs*runLength)) (L = chunkLength)
// of one group, t = j*chunks + c, and writes one partial (a vec4) to PART[4t..4t+3]. No
// barriers, no atomics: the partials are merged by finalize.wgsl, so a reduction of any length
// is split over many invocations and never summed sequentially end to end.
//
// The accumulators are in accumulate.wgsl (compiled in front of this file).
//
// Entry points: name, the sections (roles) it compiles in, its memory model (kernels/memory.ts).
// Flags the host may set follow.
//#file reduce
//#entry welford_partials PARTIALS WELFORD memory=partials
//#entry sumsq_partials PARTIALS SUMSQ memory=partials
//#entry grad_partials PARTIALS BWD memory=partials
//#entry column_grad_partials COLS memory=columns
//#entry channels_last_welford_partials CL_PARTIALS WELFORD memory=channelsLast
//#entry channels_last_grad_partials CL_PARTIALS BWD memory=channelsLast
//#flag CMAJOR       windowed chunks in chunk-major order (c*groups + j), so a dispatch reads a compact range
//#flag RUNS         chunks within contiguous runs of runLength elements (chunksPerRun per run)
//#flag COLS16       column_grad_partials: 16 columns per invocation (else 4)
//#flag CL4          channels-last: a quad of channels per invocation (else one)

//#if PARTIALS
//#if welford_partials
@compute @workgroup_size(WG)
fn welford_partials(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
//#if sumsq_partials
@compute @workgroup_size(WG)
fn sumsq_partials(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
//#if grad_partials
@compute @workgroup_size(WG)
fn grad_partials(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
  let t = inv_index(lid, wid, nwg);
  //#if WINDOW
  if (t >= P.invocationEnd) { return; }
  //#endif
  if (t >= P.groups * P.chunks) { return; }
  //#if CMAJOR
  // Chunk-major order (windowed strided groups): invocations t..t+groups-1 take chunk c of every
  // group, so a range of invocations reads a compact range of x.
  let c = t / P.groups;
  let j = t - c * P.groups;
  //#else
  let j = t / P.chunks;
  let c = t - j * P.chunks;
  //#endif
  var a = acc_new(j);
  //#if INTERLEAVE
  reduce_interleaved(&a, j, c);
  let r = checked_interleaved(&a, j, c);
  //#else
  //#if RUNS
  // chunksPerRun chunks of at most chunkLength per contiguous run, so that no chunk spans two runs.
  let q = c / P.chunksPerRun;
  let k0 = q * P.runLength + (c - q * P.chunksPerRun) * P.chunkLength;
  let k1 = min(k0 + P.chunkLength, (q + 1u) * P.runLength);
  //#else
  let k0 = c * P.chunkLength;
  let k1 = min(k0 + P.chunkLength, P.runs * P.runLength);
  //#endif
  if (k0 < k1) { reduce_range(&a, j, k0, k1); }
  let r = checked_range(&a, j, k0, max(k0, k1));
  //#endif
  PART_st4(4u * (j * P.chunks + c), r);
}
//#endif

//#if COLS
// Layer-norm dweight/dbias partials, one invocation per (block of columns q, chunk of rows c),
// t = c*nq + q (neighbouring lanes take neighbouring column blocks of the same rows): sums dy
// and dy*xhat over rows [rowBegin + c*L, min(rowBegin + (c+1)*L, rowEnd)) (L = chunkLength) for the CW columns
// CW*q .. CW*q + CW - 1 of the row (fewer at its end); xhat uses each row's saved mean/rstd.
// CW = 16 with COLS16 (row length a multiple of 16: four quads share the row's statistics and
// the loop), else 4. Neighbouring invocations read neighbouring columns, so loads stay
// contiguous across lanes.
// Rows are `columns` long. Writes PART[4*(col*chunks + c)].
//#if COLS16
const CW = 16u;
//#else
const CW = 4u;
//#endif
//#if column_grad_partials
@compute @workgroup_size(WG)
fn column_grad_partials(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
  let t = inv_index(lid, wid, nwg);
  //#if WINDOW
  if (t >= P.invocationEnd) { return; }
  //#endif
  let K = P.columns;
  let nq = (K + CW - 1u) / CW;
  if (t >= nq * P.chunks) { return; }
  let c = t / nq;
  let q = t - c * nq;
  let r0 = min(P.rowBegin + c * P.chunkLength, P.rowEnd);
  let r1 = min(r0 + P.chunkLength, P.rowEnd);
  let col = CW * q;
  let w = min(K - col, CW);
  // Sums of dy (g) and dy*xhat (h) for columns col + 4i .. col + 4i + 3 in gi, hi: explicit
  // accumulators (SwiftShader keeps dynamically indexed private arrays in memory).
  var g0 = vec4f(0.0);
  var h0 = vec4f(0.0);
  //#if COLS16
  var g1 = vec4f(0.0);
  var g2 = vec4f(0.0);
  var g3 = vec4f(0.0);
  var h1 = vec4f(0.0);
  var h2 = vec4f(0.0);
  var h3 = vec4f(0.0);
  //#endif
  for (var r = r0; r < r1; r += 1u) {
    var m = 0.0;
    //#if HAS_MEAN
    m = MEAN_ld(r);
    //#endif
    // (x - m) - k: the saved mean's rounding recovered by the backward's row sums (CORR).
    var k = 0.0;
    //#if HAS_CORR
    k = CORR_ld(r);
    //#endif
    // rstd = rs * pr (factor_split), applied to x and the mean scaled by pr (k is in those units).
    let fs = factor_split(RSTD_ld(r));
    let rs = fs.x;
    let pr = fs.y;
    m = mean_scaled(m, pr);
    let e = r * K + col;
    //#if COLS16
    let d0 = DY_ld4(e);
    let d1 = DY_ld4(e + 4u);
    let d2 = DY_ld4(e + 8u);
    let d3 = DY_ld4(e + 12u);
    g0 += d0;
    g1 += d1;
    g2 += d2;
    g3 += d3;
    h0 += d0 * hold4((dev4(X_ld4(e) * pr, vec4f(m)) - k) * rs);
    h1 += d1 * hold4((dev4(X_ld4(e + 4u) * pr, vec4f(m)) - k) * rs);
    h2 += d2 * hold4((dev4(X_ld4(e + 8u) * pr, vec4f(m)) - k) * rs);
    h3 += d3 * hold4((dev4(X_ld4(e + 12u) * pr, vec4f(m)) - k) * rs);
    //#else
    //#if ALIGNED
    let d = DY_ld4(e);
    g0 += d;
    h0 += d * hold4((dev4(X_ld4(e) * pr, vec4f(m)) - k) * rs);
    //#else
    for (var i = 0u; i < w; i += 1u) {
      let d = DY_ld(e + i);
      g0[i] += d;
      h0[i] += d * hold((dev(X_ld(e + i) * pr, m) - k) * rs);
    }
    //#endif
    //#endif
  }
  let n = f32(r1 - r0);
  for (var k = 0u; k < min(w, 4u); k += 1u) { PART_st4(4u * ((col + k) * P.chunks + c), vec4f(n, g0[k], h0[k], 0.0)); }
  //#if COLS16
  for (var k = 0u; k < 4u; k += 1u) {
    PART_st4(4u * ((col + 4u + k) * P.chunks + c), vec4f(n, g1[k], h1[k], 0.0));
    PART_st4(4u * ((col + 8u + k) * P.chunks + c), vec4f(n, g2[k], h2[k], 0.0));
    PART_st4(4u * ((col + 12u + k) * P.chunks + c), vec4f(n, g3[k], h3[k], 0.0));
  }
  //#endif
}
//#endif

//#if CL_PARTIALS
// Channels-last statistics (batch, instance and group norm of [N, *spatial, C]). x is the Grouping
// [outer = B, runs = R, groups = G, runLength = Cg] (src/grouping.ts): B samples of R rows of
// C = G*Cg channels (batch norm: B = 1, R = N*spatial, Cg = 1; group and instance norm: B = N,
// R = spatial). A channel's elements are C apart, so one invocation does not follow one
// channel: it takes CW consecutive channels (CL4: a quad, one accumulator lane per channel; else
// one channel, windowed kernels) over a chunk of rows [c*L, min((c+1)*L, R)) of sample b, with
// t = (b*P + c)*nq + q, nq = ceil(C / CW): neighbouring invocations read neighbouring quads of
// the same rows (contiguous across lanes). Each channel gets its own partial, at
// PART[4*((b*C + ch)*P + c)]: the P partials of (b, ch) are contiguous, and a group-norm group
// (b, g) is the Cg*P partials from (b*G + g)*Cg*P on (finalize.wgsl reads them as one group).
// The accumulators are those above, lane by lane: WELFORD (recentred every 4 rows, suspect lanes
// rescanned one by one) and BWD (with each lane's saved statistics, index b*G + ch/Cg).
// Uniforms: outer (B), runs (R), channels (C), chunks (P), chunkLength (L), numGroups (G),
// channelsPerGroup (Cg).
//#if CL4
const CW = 4u;
//#else
const CW = 1u;
//#endif
// Channels col .. col + CW - 1 of the row element e (= the row's start + col), w of them valid:
// the others repeat the last valid one (their lanes are not written out).
fn cl_x(e: u32, w: u32) -> vec4f {
  //#if ALIGNED
  return xv4(e);
  //#else
  //#if CL4
  return vec4f(xv1(e), xv1(e + min(1u, w - 1u)), xv1(e + min(2u, w - 1u)), xv1(e + min(3u, w - 1u)));
  //#else
  return vec4f(xv1(e));
  //#endif
  //#endif
}
//#if BWD
fn cl_dy(e: u32, w: u32) -> vec4f {
  //#if ALIGNED
  return DY_ld4(e);
  //#else
  //#if CL4
  return vec4f(DY_ld(e), DY_ld(e + min(1u, w - 1u)), DY_ld(e + min(2u, w - 1u)), DY_ld(e + min(3u, w - 1u)));
  //#else
  return vec4f(DY_ld(e));
  //#endif
  //#endif
}
fn cl_stat(b: u32, ch: u32) -> u32 { return b * P.numGroups + ch / P.channelsPerGroup; }
fn cl_step(a: ptr<function, Acc>, e: u32, w: u32) { acc_lanes(a, cl_x(e, w), cl_dy(e, w)); }
//#else
fn cl_step(a: ptr<function, Acc>, e: u32, w: u32) { acc_lanes(a, cl_x(e, w)); }
//#endif

//#if channels_last_welford_partials
@compute @workgroup_size(WG)
fn channels_last_welford_partials(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
//#if channels_last_grad_partials
@compute @workgroup_size(WG)
fn channels_last_grad_partials(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
//#endif
  let t = inv_index(lid, wid, nwg);
  //#if WINDOW
  if (t >= P.invocationEnd) { return; }
  //#endif
  let C = P.channels;
  let nq = (C + CW - 1u) / CW;
  if (t >= P.outer * P.chunks * nq) { return; }
  let bc = t / nq;
  let q = t - bc * nq;
  let b = bc / P.chunks;
  let c = bc - b * P.chunks;
  let col = q * CW;
  let w = min(C - col, CW);
  let r0 = min(c * P.chunkLength, P.runs);
  let r1 = min(r0 + P.chunkLength, P.runs);
  let base = b * P.runs * C + col;
  //#if BWD
  // Each lane's saved statistics, those of its channel's group.
  let wl = w - 1u;
  let mean = vec4f(mean_at(cl_stat(b, col)), mean_at(cl_stat(b, col + min(1u, wl))), mean_at(cl_stat(b, col + min(2u, wl))), mean_at(cl_stat(b, col + min(3u, wl))));
  let rstd = vec4f(rstd_at(cl_stat(b, col)), rstd_at(cl_stat(b, col + min(1u, wl))), rstd_at(cl_stat(b, col + min(2u, wl))), rstd_at(cl_stat(b, col + min(3u, wl))));
  var a = acc_new_lanes(mean, rstd);
  //#else
  var a = acc_new(0u);
  //#endif
  var r = r0;
  //#if WELFORD
  // The shifts start at the first row; then blocks of 4 rows, the shifts moved to the running
  // means after each (as reduce_range).
  if (r < r1) {
    cl_step(&a, base + r * C, w);
    acc_recenter(&a);
    r += 1u;
  }
  //#endif
  for (; r + 4u <= r1; r += 4u) {
    cl_step(&a, base + r * C, w);
    cl_step(&a, base + (r + 1u) * C, w);
    cl_step(&a, base + (r + 2u) * C, w);
    cl_step(&a, base + (r + 3u) * C, w);
    acc_recenter(&a);
  }
  for (; r < r1; r += 1u) { cl_step(&a, base + r * C, w); }
  acc_recenter(&a);
  // Every lane's partial first (a rescan empties the accumulator), then written out. (No
  // dynamically indexed lanes: SwiftShader would keep the accumulator in memory.)
  let p = acc_lanes_result(&a);
  let o = 4u * ((b * C + col) * P.chunks + c);
  let st = 4u * P.chunks;
  cl_out(&a, o, p[0], base, r0, r1);
  if (w > 1u) { cl_out(&a, o + st, p[1], base + 1u, r0, r1); }
  if (w > 2u) { cl_out(&a, o + 2u * st, p[2], base + 2u, r0, r1); }
  if (w > 3u) { cl_out(&a, o + 3u * st, p[3], base + 3u, r0, r1); }
}
// One channel's partial p, stored at PART[o]; WELFORD: rescanned carefully first when suspect
// (the channel's elements are e + i*C for rows i in [r0, r1); the rescan's pass 1 uses the
// accumulator a, whose lanes were read out).
fn cl_out(a: ptr<function, Acc>, o: u32, p: vec4f, e: u32, r0: u32, r1: u32) {
  var r = p;
  //#if WELFORD
  if (acc_suspect(r)) {
    var rs = rescan_begin();
    for (var i = r0; i < r1; i += 1u) { rescan_elem(&rs, a, xv1(e + i * P.channels)); }
    if (rescan_mid(&rs, a)) {
      for (var i = r0; i < r1; i += 1u) { rescan_elem(&rs, a, xv1(e + i * P.channels)); }
    }
    r = rescan_end(&rs, a, r.x);
  }
  //#endif
  PART_st4(o, r);
}
//#endif

