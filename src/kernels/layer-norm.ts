/**
 * Layer norm and RMS norm on the GPU (PyTorch `layer_norm` / `rms_norm` and their backwards):
 * rows of K = prod(normalizedShape) elements. Forward, by adapter class and shape (policy.ts):
 * - GPU class, rows of SHORT_ROW (64) elements up to the register capacity: one workgroup per
 *   row, one dispatch (workgroup_rows_welford / workgroup_rows_sumsq, rows.wgsl);
 * - CPU class with one chunk per row, and GPU class with rows shorter than SHORT_ROW: one
 *   invocation per row (fused_rows_welford / _sumsq);
 * - otherwise partials, their merge (finalize_mean_rstd / finalize_rms), normalize_elements.
 * The backward passes are in layer-norm-backward.ts.
 */
import type { Tensor } from '../tensor.ts';
import type * as O from '../ops.ts';
import type { LayerNormArgs, LayerNormOut, RmsNormArgs, RmsNormOut } from '../args/layer-norm.ts';
import { WG } from './source.ts';
import { f32, tb, type Bind, type Planned, type Planner, type Step } from './plan.ts';
import { applyWorkgroups, chunks, rowsKernel, wantFused, wantRows, windowed } from './policy.ts';
import { affineBinds, meanVarSteps, residualFlags, rowMaps, statsStep } from './steps.ts';
import { elementBytes } from '../tensor.ts';

/** The statistic of a row norm: mean and variance (layer norm) or the mean square (RMS norm). */
export type RowStat = Exclude<O.Statistic, 'sumsq'>;
type RowOut = { y: Tensor; mean: Tensor | null; rstd: Tensor; sum: Tensor | null };

export function layerNorm(g: Planner, a: LayerNormArgs): Planned<LayerNormOut> {
  const { out, plan } = rowNorm(g, a, 'meanVar');
  return { out: { ...out, mean: out.mean! }, plan };
}

export function rmsNorm(g: Planner, a: RmsNormArgs): Planned<RmsNormOut> {
  const { out, plan } = rowNorm(g, { ...a, bias: null }, 'rms');
  return { out: { y: out.y, rstd: out.rstd, sum: out.sum }, plan };
}

function rowNorm(g: Planner, a: LayerNormArgs, stat: RowStat): Planned<RowOut> {
  const rms = stat === 'rms';
  const op = rms ? 'rmsNorm' : 'layerNorm';
  // Empty x (no rows, or rows of zero elements): no kernel runs; the statistics are those of a
  // reduction over nothing, as in PyTorch: mean 0, rstd NaN (variance or mean square 0/0).
  if (a.x.size === 0) {
    const e = (label: string) => g.alloc(a.x.shape, a.x.dtype, label);
    return { out: { y: e('y'), mean: rms ? null : g.filled(a.statShape, 'mean', 0), rstd: g.filled(a.statShape, 'rstd', NaN), sum: a.residual ? e('sum') : null }, plan: null };
  }
  const { x, residual, weight, bias, rows, K } = a;
  const y = g.alloc(x.shape, x.dtype, 'y');
  const mean = rms ? null : g.alloc(a.statShape, 'float32', 'mean');
  const rstd = g.alloc(a.statShape, 'float32', 'rstd');
  const sum = residual ? g.alloc(x.shape, x.dtype, 'sum') : null;
  const win = windowed(g, x);
  const ch = chunks(g, 1, rows, K, win, x.dtype);
  const { affine, aflags } = affineBinds(weight, bias);
  const resid = residualFlags(x, residual);
  const xr: Bind[] = [tb('X', x), ...(residual ? [tb('R', residual)] : [])];
  const outB: Bind[] = [tb('Y', y, true), ...(sum ? [tb('S', sum, true)] : [])];
  const stats: Bind[] = [...(mean ? [tb('MEAN', mean, true)] : []), tb('RSTD', rstd, true)];
  const steps: Step[] = [];
  const temps: GPUBuffer[] = [];
  const rp = wantRows(g, K, x.dtype, win);
  if (rp) {
    // One workgroup per row, the row in registers: one dispatch, x read once (rows.wgsl).
    const rk = rowsKernel(g, rp, K);
    steps.push({
      entry: rms ? 'workgroup_rows_sumsq' : 'workgroup_rows_welford',
      flags: [...rk.flags, ...aflags, ...resid],
      binds: [...xr, ...affine, ...outB, ...stats],
      p: { runs: 1, groups: rows, runLength: K, eps: a.eps, weightDiv: 1, weightMod: Math.max(K, 1) },
      workgroups: rows,
      wg: rk.wg,
      enables: rk.enables,
    });
  } else if (wantFused(g, ch.chunks, K, x.dtype, win)) {
    // Rows of whole quads with a weight or bias: blocks of 4 rows per invocation, so each quad of
    // the weights is loaded once per block (ROW_BLOCK), while 64 rows still make 16 invocations;
    // windowed, while a block is a small part of one binding.
    const blockFits = !win || 4 * K * elementBytes(x.dtype) * 16 <= g.bindLimit;
    const block = blockFits && K % 4 === 0 && affine.length > 0 && rows >= 64 ? 4 : 1;
    steps.push({
      entry: rms ? 'fused_rows_sumsq' : 'fused_rows_welford',
      flags: [...aflags, ...resid, ...(block > 1 ? ['ROW_BLOCK'] : [])],
      binds: [...xr, ...affine, ...outB, ...stats],
      p: { runs: 1, groups: rows, runLength: K, eps: a.eps, ...rowMaps(rows, K), rowsPerBlock: block },
      workgroups: Math.ceil(rows / block / WG),
    });
  } else {
    const grp = { runs: 1, groups: rows, runLength: K };
    let lo: GPUBuffer | null = null;
    if (rms) {
      const part = g.temp(rows * ch.chunks * 16, 'partials');
      temps.push(part);
      steps.push(statsStep(x, residual, grp, 'sumsq_partials', part, ch));
      steps.push({
        entry: 'finalize_rms',
        flags: [],
        binds: [f32('PART', part), tb('RSTD', rstd, true)],
        p: { outputs: rows, partials: ch.chunks, groupStride: ch.chunks, partialStride: 1, eps: a.eps },
        workgroups: Math.ceil(rows / WG),
      });
    } else {
      const mv = meanVarSteps(g, x, residual, grp, ch, { mean: mean!._buffer!, rstd: rstd._buffer! }, { eps: a.eps }, temps);
      steps.push(...mv.steps);
      lo = mv.lo;
    }
    steps.push({
      entry: 'normalize_elements',
      flags: [...aflags, ...resid, ...(lo ? ['MEAN_PAIR'] : [])],
      binds: [...xr, ...affine, ...outB, ...(lo ? [f32('LO', lo)] : []), tb('RSTD', rstd)],
      p: { elements: x.size, ...rowMaps(rows, K) },
      workgroups: applyWorkgroups(x.size),
    });
  }
  return { out: { y, mean, rstd, sum }, plan: { op, steps, temps, outputs: [y, mean, rstd, sum] } };
}
