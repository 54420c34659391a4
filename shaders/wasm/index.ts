// AssemblyScript entry of the WebAssembly backend's kernels (compiled by scripts/build-wasm.mjs
// three times: SIMD128, scalar, and SIMD128 on shared memory for threads). The memory is
// imported: the host (src/wasm/) owns it, allocates every tensor in it and passes pointers.
export { rows_fwd, rows_stats, cols_stats, apply_planes, apply_cols, apply_rows, lp_factors } from './forward';
export { gated_add, modulate, mod_grads, residual_grads } from './modulate';
export { rows_gsums, cols_gsums, rows_dx, rows_bwd, groups_bwd, cols_dx, sum_partials } from './backward';
export { add, round_half, copy } from './elementwise';
