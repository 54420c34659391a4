/**
 * Which kernels an op gets, and how its reductions are split, per adapter and shape: the one
 * place where the adapter class (CPU adapters such as SwiftShader vs GPUs), the device's
 * limits and the binding limit shape a plan. `settle` (settle.ts) completes a plan before
 * encoding.
 */
import { elementBytes, storageBytes, type DType, type Tensor } from '../tensor.ts';
import type { GpuContext } from '../device/context.ts';
import { WG } from './source.ts';
import type { Planner } from './plan.ts';

/**
 * The one-workgroup-per-row layer/RMS/group-norm kernels (shaders/rows.wgsl) on GPU-class
 * adapters: the row in registers, NV quads per invocation. The rule, per adapter:
 * - WG: the largest power of two <= min(256, maxComputeInvocationsPerWorkgroup,
 *   maxComputeWorkgroupSizeX), and for short rows the smallest power of two >= ceil(K / 4)
 *   quads, but at least 64 (two or more warps/wavefronts, and a whole subgroup of any size).
 * - NV: the smallest power of two with 4 * NV * WG >= K; at most 8 for float32 (rows up to
 *   8192 with WG = 256: 32 floats of registers per invocation) and 16 for float16 (16384 halves).
 * - float16 rows of odd length are left to the other kernels (two rows would share a u32 word).
 * - Not for windowed ops (tensors past one storage binding) nor CPU adapters, whose invocations
 *   are SIMD lanes of one core and where barriers cost ~10x (they keep the row-fused kernels),
 *   nor rows under SHORT_ROW (64) elements (wantRows: one invocation per row instead).
 * - Subgroup sums where the device has 'subgroups' (any subgroup size; the partials of
 *   WG / subgroupSize subgroups are summed from workgroup memory), else a workgroup tree.
 */
export function rowsPlan(limits: { maxComputeInvocationsPerWorkgroup: number; maxComputeWorkgroupSizeX: number }, K: number, dtype: DType): { wg: number; nv: number } | null {
  if (K < 1 || (dtype === 'float16' && K % 2 !== 0)) return null;
  const cap = Math.min(256, limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX);
  if (cap < 64) return null;
  const wgMax = 2 ** Math.floor(Math.log2(cap));
  const pow2 = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(n, 1)));
  const nq = Math.ceil(K / 4);
  const wg = Math.min(wgMax, Math.max(64, pow2(nq)));
  const nv = pow2(Math.ceil(nq / wg));
  return nv <= (dtype === 'float16' ? 16 : 8) ? { wg, nv } : null;
}

/**
 * Blocks of rows of the GPU-class layer/RMS-norm backward (rows-grad.wgsl workgroup_rows_grad): L
 * rows per workgroup, P = ceil(rows / L) workgroups. Without dweight/dbias one row each. With
 * them each block writes a column partial row (16 bytes per column, read again by
 * weight_bias_grads: 32 bytes per column and block), kept within 1/12 of the minimal traffic
 * 3 * rows * K * elementBytes, so P <= rows * elementBytes / 128 (float32: a block per 32 rows),
 * at least 1 and at most 1024 (weight_bias_grads adds a column's partials in one invocation),
 * and at most maxP (the partials, 16 * K bytes per block, within one storage binding: the rows
 * kernel is never windowed); null when not even one block's partials fit.
 */
export function rowsBwdBlocks(rows: number, dtype: DType, cols: boolean, maxP = 1024): { L: number; P: number } | null {
  if (!cols) return { L: 1, P: Math.max(rows, 1) };
  if (maxP < 1) return null;
  const target = Math.max(1, Math.min(1024, maxP, Math.floor((rows * elementBytes(dtype)) / 128)));
  const L = Math.max(1, Math.ceil(rows / target));
  return { L, P: Math.max(1, Math.ceil(rows / L)) };
}

/** How a reduction of M elements per group over D groups is split into P chunks of L. */
export function chunking(ctx: GpuContext, D: number, M: number, minLength?: number): { P: number; L: number } {
  // CPU adapters: few, long invocations (each is a loop on a core), but enough of them to fill
  // several workgroups; with fewer than 16 groups of at least 4096 elements (a single long row,
  // say) shorter chunks, so that a group's chunks are reduced side by side rather than in a long
  // serial loop (layer/RMS norm [1, 4096] forward measured ~1.1x faster with 512 than 2048;
  // shorter groups keep one chunk, the row-fused kernels); GPUs: many threads.
  const target = ctx.isCpuAdapter ? 512 : 65536;
  const minL = minLength ?? (ctx.isCpuAdapter ? (D < 16 && M >= 4096 ? 512 : 2048) : 256);
  let P = Math.max(1, Math.ceil(target / Math.max(D, 1)));
  let L = Math.max(minL, Math.ceil(M / P), Math.ceil(M / 4096));
  L = Math.ceil(L / 4) * 4;
  P = Math.max(1, Math.ceil(M / L));
  // GPUs: at least a warp's worth of chunks per group (interleaved quad by quad, see reduce.wgsl)
  // while each chunk still has a few quads.
  if (!ctx.isCpuAdapter && P < 32 && M >= 64) {
    P = Math.min(32, Math.floor(M / 16));
    L = Math.ceil(Math.ceil(M / P) / 4) * 4;
    P = Math.ceil(M / L);
  }
  return { P, L };
}

/**
 * How a grouped reduction is split (the reduce kernels' uniforms of the same names): `chunks`
 * chunks per group of `chunkLength` elements; with RUNS, chunksPerRun per contiguous run
 * (chunks = runs * chunksPerRun); `flags` add the chunk order (CMAJOR) for windowed kernels.
 */
export interface Chunks { chunks: number; chunkLength: number; chunksPerRun: number; flags: string[] }

/** Whether an op's tensor is past one binding: then the op runs with windowed kernels. */
export function windowed(g: Planner, t: Tensor): boolean {
  return storageBytes(t.size, t.dtype) > g.bindLimit;
}

/**
 * Chunks of a reduction of M = runs * runLength elements per group over `groups` groups (a
 * Grouping with outer 1, src/grouping.ts). Windowed ops (elements of `dtype` past
 * one binding): chunks of at most an eighth of a binding; strided groups (runs > 1) in
 * chunk-major order, so consecutive invocations read a compact range, and chunks within runs
 * (RUNS) when a slice of all groups is too big for that.
 */
export function chunks(g: Planner, runs: number, groups: number, runLength: number, win: boolean, dtype: DType, minLength?: number): Chunks {
  const M = runs * runLength;
  let { P, L } = chunking(g.ctx, groups, M, minLength);
  const split = (P: number, L: number, Pi: number, flags: string[]): Chunks => ({ chunks: P, chunkLength: L, chunksPerRun: Pi, flags });
  if (!win) return split(P, L, 1, []);
  const eb = elementBytes(dtype);
  const maxL = Math.max(4, Math.floor(g.bindLimit / (8 * eb) / 4) * 4);
  if (L > maxL) (L = maxL), (P = Math.max(1, Math.ceil(M / L)));
  // (More partials per group than one invocation may bind are merged in blocks: mergeWide.)
  if (runs === 1) return split(P, L, 1, []);
  // Chunk-major: chunk c of every group spans the slices o of all groups it covers, at most
  // ceil(L / runLength) + 1 of them; keep that within half a binding.
  const slice = groups * runLength * eb;
  const Lc = Math.floor(((Math.floor(g.bindLimit / 2 / slice) - 1) * runLength) / 4) * 4;
  if (Lc >= 4) {
    L = Math.min(L, Lc);
    return split(Math.ceil(M / L), L, 1, ['CMAJOR']);
  }
  const Lr = Math.min(L, Math.ceil(runLength / 4) * 4);
  const Pi = Math.ceil(runLength / Lr);
  return split(runs * Pi, Lr, Pi, ['CMAJOR', 'RUNS']);
}

/**
 * Channels-last statistics (reduce.wgsl CL_PARTIALS): x as B samples of R rows of C channels (the
 * Grouping [outer = B, runs = R, G groups, C/G] of src/grouping.ts); P
 * chunks of L rows per sample; each invocation takes a quad of channels (CL4), or one channel in
 * windowed kernels (one partial per invocation, so bound ranges stay short).
 */
export interface ClChunks { outer: number; runs: number; channels: number; chunks: number; chunkLength: number; flags: string[] }

export function clChunks(g: Planner, B: number, R: number, C: number, win: boolean, dtype: DType): ClChunks {
  const CW = win ? 1 : 4;
  // CPU adapters: a few hundred invocations (quads of channels). GPUs: about 64K partials in
  // all, but chunks of at least 256 rows: each chunk writes a 16-byte partial per channel (read
  // again by the merge), so 16 / L bytes per element against x's 4 — at 256 rows under 3 % of
  // the minimal traffic (training forward stays within 1.55x of it: test/profile.test.ts).
  const cpu = g.ctx.isCpuAdapter;
  let P: number;
  let L: number;
  if (cpu) ({ P, L } = chunking(g.ctx, B * Math.ceil(C / CW), R, 512));
  else {
    L = Math.max(256, Math.ceil(R / Math.max(1, Math.ceil(65536 / (B * C)))));
    P = Math.max(1, Math.ceil(R / L));
  }
  if (win) {
    const maxL = Math.max(1, Math.floor(g.bindLimit / (8 * C * elementBytes(dtype))));
    if (L > maxL) (L = maxL), (P = Math.max(1, Math.ceil(R / L)));
  }
  const flags = [...(win ? [] : ['CL4']), ...(!win && C % 4 === 0 ? ['ALIGNED'] : [])];
  return { outer: B, runs: R, channels: C, chunks: P, chunkLength: L, flags };
}

/**
 * Short rows on GPU-class adapters: rows (layer/RMS norm, forward and backward) and groups
 * (group/instance norm forward, channels-first) of fewer than SHORT_ROW elements take one
 * invocation per row, the CPU class's row-fused kernels (apply.wgsl fused_rows_welford / _sumsq /
 * _grad, the same arithmetic), instead of a workgroup per row (rows.wgsl). The rule:
 * - K < 64: row-fused (one row per invocation, WG rows per workgroup); dweight/dbias of the
 *   backward by the column kernels (column_grad_partials + weight_bias_grads), which keep many
 *   invocations and about a thousand partials per column;
 * - 64 <= K <= the register capacity (rowsPlan): a workgroup per row.
 * Why 64: a workgroup per row keeps ceil(K / 4) of its invocations busy and it has at least 64
 * (rowsPlan), so under 64 elements at most 16 of 64 lanes work (a 3-element row: 1 of 64) while
 * each row still pays a workgroup's launch and its barriers; one invocation per row keeps every
 * lane busy and loops over at most 16 quads. From 64 elements a quarter or more of the workgroup
 * works and the workgroup's coalesced loads and shorter loops take over. No real GPU was at hand
 * to place the bound by measurement; that is the reasoning. What was measured (2-core VM,
 * bench/compare.mjs, adapterClass 'gpu', layer norm [65536, 3]): SwiftShader 32.5 s forward and
 * 11.0 s backward with a workgroup per row, 0.15 s and 0.11 s with this rule; lavapipe 1.31 s and
 * 0.99 s before, 25 ms and 17 ms after.
 */
export const SHORT_ROW = 64;

/** The longest row the forced row-fused variant takes in one invocation (see wantFused). */
export const FUSED_MAX_ROW = 8192;

/** Whether rows of K elements are short on the GPU class (see SHORT_ROW). */
export const shortRow = (K: number): boolean => K < SHORT_ROW;

/**
 * The one-workgroup-per-row kernels (see rowsPlan): GPU-class adapters, variant 'auto', not
 * windowed, rows of at least SHORT_ROW elements (shorter ones take the row-fused kernels).
 */
export function wantRows(g: Planner, K: number, dtype: DType, win: boolean): { wg: number; nv: number } | null {
  if (g.ctx.isCpuAdapter || g.variant !== 'auto' || g.rowsKernel === 'off' || win || shortRow(K)) return null;
  return rowsPlan(g.ctx.device.limits, K, dtype);
}

/** Subgroup sums in the rows kernels: the device has 'subgroups' (and tests did not turn them off). */
export function subgroups(g: Planner): boolean {
  return g.useSubgroups && g.ctx.device.features.has('subgroups');
}

/**
 * What a one-workgroup-per-row step (rows.wgsl) takes from the rule above: NV quads per
 * invocation, subgroup sums where used, quad loads for rows of whole quads; the workgroup size
 * and the extensions to enable.
 */
export function rowsKernel(g: Planner, rp: { wg: number; nv: number }, K: number): { flags: string[]; wg: number; enables: string[] } {
  const sub = subgroups(g);
  return { flags: [`NV${rp.nv}`, ...(sub ? ['SUBGROUPS'] : []), ...(K % 4 === 0 ? ['ALIGNED'] : [])], wg: rp.wg, enables: sub ? ['subgroups'] : [] };
}

/**
 * The row-fused kernels (one invocation per row): CPU adapters with one chunk per row, short
 * rows on GPU-class adapters (SHORT_ROW), or forced.
 */
export function wantFused(g: Planner, P: number, inner: number, dtype: DType, win: boolean): boolean {
  // Windowed ops: row-fused kernels bind whole rows, so a row must be a small part of a binding.
  if (g.variant === 'general' || (win && inner * elementBytes(dtype) * 8 > g.bindLimit)) return false;
  const ok = dtype === 'float32' || inner % 2 === 0;
  // Forced ('fused', a testing aid): rows of up to FUSED_MAX_ROW elements, or of one chunk. One
  // invocation sums a row in four lanes, each a sequential float32 sum: past a few thousand terms
  // a lane's rounding grows past the bar (an rmsNorm row of 137,592 float16 values: rstd 1.4e-4
  // off), so longer rows take the partials and their merge, as the design requires.
  if (g.variant === 'fused') return ok && (P === 1 || inner <= FUSED_MAX_ROW);
  return ok && P === 1 && (g.ctx.isCpuAdapter || shortRow(inner));
}

/** Elementwise kernels: one invocation per quad of 4 elements. */
export const applyWorkgroups = (n: number): number => Math.ceil(n / (4 * WG));
