/**
 * The backward passes of layer norm and RMS norm on the GPU: workgroup_rows_grad (GPU class),
 * fused_rows_grad (CPU class; GPU class, short rows), or grad_partials + grad_coefficients +
 * grad_elements; dweight/dbias from column partials (weight_bias_grads). For a modulated
 * backward (modulate.ts) the row kernels can also sum the modulation's gradients per block.
 */
import type { Tensor } from '../tensor.ts';
import type * as O from '../ops.ts';
import type { LayerNormBwdArgs, RmsNormBwdArgs, RmsNormBwdOut } from '../args/layer-norm.ts';
import { WG } from './source.ts';
import { f32, tb, type Bind, type Planned, type Planner, type Step } from './plan.ts';
import { applyWorkgroups, chunking, chunks, rowsBwdBlocks, rowsKernel, wantFused, wantRows, windowed } from './policy.ts';
import { dwdbStep, emptyBackward, gradOuts, rowMaps } from './steps.ts';
import { elementBytes } from '../tensor.ts';
import type { RowStat } from './layer-norm.ts';

type RowBwdArgs = Omit<LayerNormBwdArgs, 'mean'> & { mean: Tensor | null };

/**
 * Column partials of a modulated backward's row kernel (MOD_SUMS, modulate.wgsl): PART holds
 * (rows, sum dy, sum dy*xhat, sum (dx + dsum)*x) per column and block, `blocks` blocks in runs of
 * `blocksPerRun` (a run: the rows sharing one modulation row); modulation_grad_sums makes dscale,
 * dshift, dgate, dweight and dbias of them (modulate.ts).
 */
export interface ModSums {
  part: GPUBuffer;
  blocks: number;
  blocksPerRun: number;
}

/** A backward plan, with the modulation's column partials when it was asked for them and could. */
export type RowBwdPlanned<R> = Planned<R> & { sums?: ModSums };

/**
 * `modRuns` (modulated backward, modulate.ts): runs of that many consecutive rows share one
 * modulation row; where the kernel allows (rows of whole quads, the row kernels), its blocks of
 * rows keep within runs and their column partials are the modulation's sums (`sums`), and
 * dweight/dbias are left to modulation_grad_sums.
 */
export function layerNormBackward(g: Planner, a: LayerNormBwdArgs, modRuns = 0): RowBwdPlanned<O.BwdOut> {
  return rowNormBackward(g, a, 'meanVar', modRuns);
}

export function rmsNormBackward(g: Planner, a: RmsNormBwdArgs, modRuns = 0): RowBwdPlanned<RmsNormBwdOut> {
  const { out, plan, sums } = rowNormBackward(g, { ...a, mean: null, bias: null }, 'rms', modRuns);
  return { out: { dx: out.dx, dweight: out.dweight }, plan, sums };
}

/** Blocks of at most `L` rows within runs of R rows: rows per block, blocks per run, blocks in all. */
function runBlocks(rows: number, R: number, L: number): { L: number; perRun: number; blocks: number } {
  const perRun = Math.ceil(R / Math.max(1, Math.min(L, R)));
  const Lr = Math.ceil(R / perRun);
  return { L: Lr, perRun, blocks: (rows / R) * perRun };
}

function rowNormBackward(g: Planner, a: RowBwdArgs, stat: RowStat, modRuns = 0): RowBwdPlanned<O.BwdOut> {
  const op = stat === 'rms' ? 'rmsNormBackward' : 'layerNormBackward';
  if (a.x.size === 0) return { out: emptyBackward(g, a), plan: null };
  const { dy, x, mean, rstd, weight, bias, rows, K } = a;
  const dx = g.alloc(x.shape, x.dtype, 'dx');
  const dweight = weight ? g.alloc(weight.shape, weight.dtype, 'dweight') : null;
  const dbias = bias ? g.alloc(bias.shape, bias.dtype, 'dbias') : null;
  const out = { dx, dweight, dbias };
  const steps: Step[] = [];
  const temps: GPUBuffer[] = [];
  const plan = { op, steps, temps, outputs: [dx, dweight, dbias] };
  const stats: Bind[] = [...(mean ? [tb('MEAN', mean)] : []), tb('RSTD', rstd)];
  const sflags = [...(mean ? ['HAS_MEAN'] : []), 'HAS_RSTD'];
  const wb: Bind[] = weight ? [tb('W', weight)] : [];
  const win = windowed(g, x);
  // Modulation sums (rows of whole quads; runs of rows a whole number of times in x).
  const maxBlocks = Math.floor(g.bindLimit / (16 * Math.max(K, 1)));
  const ms = modRuns > 0 && K % 4 === 0 && rows % modRuns === 0 && !win ? modRuns : 0;
  const cols = !!(dweight || dbias);
  // (The column partials within one binding: the rows kernel is not windowed.)
  const rp = wantRows(g, K, x.dtype, win);
  let blocks = rp && rowsBwdBlocks(rows, x.dtype, cols, cols ? maxBlocks : rows);
  let perRun = 0;
  // The modulation's sums: the column-partial blocks, kept within runs (when they fit a binding).
  const colBlocks = rp && ms ? rowsBwdBlocks(rows, x.dtype, true, maxBlocks) : null;
  if (colBlocks) {
    const rb = runBlocks(rows, ms, colBlocks.L);
    if (rb.blocks <= maxBlocks) (blocks = { L: rb.L, P: rb.blocks }), (perRun = rb.perRun);
  }
  if (rp && blocks) {
    // One workgroup per block of rows, x and dy in registers (rows-grad.wgsl workgroup_rows_grad);
    // the blocks' column partials added up per column by weight_bias_grads (or, MOD_SUMS, by
    // the modulated backward's modulation_grad_sums).
    const { L: RB, P: nb } = blocks;
    const rk = rowsKernel(g, rp, K);
    const part = cols || perRun ? g.temp(K * nb * 16, 'colpartials') : null;
    if (part) temps.push(part);
    steps.push({
      entry: 'workgroup_rows_grad',
      flags: [...rk.flags, ...(mean ? ['HAS_MEAN'] : []), ...(weight ? ['HAS_W'] : []), ...(part ? ['DWDB'] : []), ...(perRun ? ['MOD_SUMS'] : [])],
      binds: [tb('DY', dy), tb('X', x), ...wb, ...stats, tb('DX', dx, true), ...(part ? [f32('PART', part, true)] : [])],
      p: { runs: 1, groups: rows, runLength: K, rowsPerBlock: RB, blocks: nb, weightDiv: 1, weightMod: Math.max(K, 1), ...(perRun ? { blocksPerRun: perRun, modDiv: ms } : {}) },
      workgroups: nb,
      wg: rk.wg,
      enables: rk.enables,
    });
    if (part && perRun) return { out, plan, sums: { part, blocks: nb, blocksPerRun: perRun } };
    if (part) {
      const { dw, db, post } = gradOuts(g, dweight, dbias, temps);
      steps.push(dwdbStep(part, K, nb, nb, 1, dw, db), ...post);
    }
    return { out, plan };
  }
  const { chunks: P, chunkLength: L, chunksPerRun: Pi } = chunks(g, 1, rows, K, win, x.dtype);
  const fused = wantFused(g, P, K, x.dtype, win);
  // Row-fused with dweight/dbias: blocks of RB rows per invocation also sum the columns of
  // their block (COLS_FUSED), instead of a separate pass over dy and x. Only with rows enough
  // for blocks of 8..16 rows and still a few hundred invocations, and rows of whole quads; on
  // CPU-class adapters (or forced): on the GPU class (short rows, SHORT_ROW) a block per 16 rows
  // leaves few invocations and rows / 16 partials per column for weight_bias_grads to add in
  // one invocation, where the column kernels keep many invocations and about a thousand.
  let RB = Math.min(16, Math.floor(rows / 256));
  let colsFused = fused && cols && K % 4 === 0 && RB >= 8 && !win && (g.ctx.isCpuAdapter || g.variant === 'fused');
  // Modulation sums: blocks within runs, as COLS_FUSED's blocks (8..16 rows and still a few
  // hundred invocations; with fewer rows the partials would outweigh x, and the second pass of
  // modulation_grad_partials is cheaper: measured at [2, 256, 1152] on both CPU adapters).
  let mb: ReturnType<typeof runBlocks> | null = null;
  if (fused && ms && Math.floor(rows / 256) >= 8) {
    mb = runBlocks(rows, ms, Math.min(16, Math.floor(rows / 256)));
    if (mb.blocks <= maxBlocks) (colsFused = true), (RB = mb.L);
    else mb = null;
  }
  // With a separate dweight/dbias pass, the rows' mean corrections k (the saved mean's
  // rounding, recovered from the row sums: see FIN_BWD) go to it through CORR.
  const corr = mean && cols && !colsFused ? g.temp(Math.max(rows, 1) * 4, 'corr') : null;
  if (corr) temps.push(corr);
  const corrOut: Bind[] = corr ? [f32('CORR', corr, true)] : [];
  const corrFlag = corr ? ['HAS_CORR'] : [];
  if (fused) {
    const step: Step = {
      entry: 'fused_rows_grad',
      flags: [...sflags, ...corrFlag, ...(weight ? ['HAS_W', 'W_BY_I'] : [])],
      binds: [tb('DY', dy), tb('X', x), ...wb, ...stats, tb('DX', dx, true), ...corrOut],
      p: { runs: 1, groups: rows, runLength: K, groupsPerStat: 1, ...rowMaps(rows, K) },
      workgroups: Math.ceil(rows / WG),
    };
    steps.push(step);
    if (colsFused) {
      // One invocation per block of RB rows, also writing its block's column partials.
      const nb = mb ? mb.blocks : Math.ceil(rows / RB);
      const part = g.temp(K * nb * 16, 'colpartials');
      temps.push(part);
      step.flags.push('COLS_FUSED');
      step.binds.push(f32('PART', part, true));
      step.p = { ...step.p, rowsPerBlock: RB, blocks: nb };
      step.workgroups = Math.ceil(nb / WG);
      if (mb) {
        step.flags.push('MOD_SUMS');
        step.p = { ...step.p, blocksPerRun: mb.perRun, modDiv: ms };
        return { out, plan, sums: { part, blocks: nb, blocksPerRun: mb.perRun } };
      }
      const { dw, db, post } = gradOuts(g, dweight, dbias, temps);
      steps.push(dwdbStep(part, K, nb, nb, 1, dw, db), ...post);
    }
  } else {
    const part = g.temp(rows * P * 16, 'partials');
    const coef = g.temp(rows * 16, 'coef');
    temps.push(part, coef);
    steps.push({
      entry: 'grad_partials',
      flags: [...sflags, ...(weight ? ['W_BY_I'] : [])],
      binds: [tb('DY', dy), tb('X', x), ...wb, ...stats, f32('PART', part, true)],
      p: { runs: 1, groups: rows, runLength: K, chunks: P, chunkLength: L, chunksPerRun: Pi, groupsPerStat: 1 },
      workgroups: Math.ceil((rows * P) / WG),
    });
    steps.push({
      entry: 'grad_coefficients',
      flags: [...(mean ? ['HAS_MEAN'] : []), ...corrFlag],
      binds: [f32('PART', part), ...(mean ? [tb('MEAN', mean)] : []), tb('RSTD', rstd), f32('COEF', coef, true), ...corrOut],
      p: { outputs: rows, partials: P, groupStride: P, partialStride: 1 },
      workgroups: Math.ceil(rows / WG),
    });
    steps.push({
      entry: 'grad_elements',
      flags: weight ? ['HAS_W'] : [],
      binds: [tb('DY', dy), tb('X', x), ...wb, f32('COEF', coef), tb('DX', dx, true)],
      p: { elements: x.size, ...rowMaps(rows, K) },
      workgroups: applyWorkgroups(x.size),
    });
  }
  if (cols && !colsFused) steps.push(...columnSteps(g, a, win, sflags, stats, corr, dweight, dbias, temps));
  return { out, plan };
}

/**
 * dweight/dbias of a layer/RMS-norm backward as sums over rows: columns, 16 (K % 16 == 0) or 4
 * per invocation, over chunks of rows (column_grad_partials), then weight_bias_grads.
 */
function columnSteps(g: Planner, a: RowBwdArgs, win: boolean, sflags: string[], stats: Bind[], corr: GPUBuffer | null, dweight: Tensor | null, dbias: Tensor | null, temps: GPUBuffer[]): Step[] {
  const { dy, x, rows, K } = a;
  const steps: Step[] = [];
  const cw = K % 16 === 0 ? 16 : 4;
  const nq = Math.ceil(K / cw);
  // Each step of a column block's loop reads cw values of two rows: short chunks suffice.
  let c = chunking(g.ctx, nq, rows, 64);
  let blockRows = rows;
  // Windowed: chunks of rows within an eighth of a binding, and blocks of rows with few
  // enough chunks that one invocation's partials (cw columns, P apart) fit half of one; the
  // blocks' dweight/dbias are added up (ACCUM).
  if (win) {
    const maxP = Math.max(1, Math.floor(g.bindLimit / (32 * cw)));
    const L = Math.max(1, Math.min(c.L, Math.floor(g.bindLimit / (8 * K * elementBytes(x.dtype)))));
    blockRows = Math.min(rows, L * maxP);
    c = { L, P: Math.ceil(blockRows / L) };
  }
  const part = g.temp(K * c.P * 16, 'colpartials');
  temps.push(part);
  const { dw, db, post } = gradOuts(g, dweight, dbias, temps);
  // (At least one block: zero rows still write dweight = dbias = 0.)
  for (let r0 = 0; r0 === 0 || r0 < rows; r0 += Math.max(blockRows, 1)) {
    const r1 = Math.min(rows, r0 + blockRows);
    const P = Math.ceil((r1 - r0) / c.L);
    steps.push({
      entry: 'column_grad_partials',
      flags: [...sflags, ...(corr ? ['HAS_CORR'] : []), ...(cw === 16 ? ['COLS16'] : [])],
      binds: [tb('DY', dy), tb('X', x), ...stats, ...(corr ? [f32('CORR', corr)] : []), f32('PART', part, true)],
      p: { rowEnd: r1, rowBegin: r0, columns: K, chunks: P, chunkLength: c.L },
      workgroups: Math.ceil((nq * P) / WG),
    });
    steps.push(dwdbStep(part, K, P, P, 1, dw, db, r0 > 0));
  }
  steps.push(...post);
  return steps;
}
