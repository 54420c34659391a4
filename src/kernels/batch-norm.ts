/**
 * Batch norm on the GPU (PyTorch `batch_norm` / `native_batch_norm` and its backward):
 * statistics per channel over N and the spatial dims. Training: partials over strided
 * channels (welford_partials; channels-last x: channels_last_welford_partials), merged with the
 * running-statistics update (finalize_mean_rstd RUNNING), normalize_elements. Eval: one
 * elementwise dispatch reading the running statistics (EVAL_STATS). Backward: grad_partials,
 * grad_coefficients (also dweight/dbias per channel), grad_elements.
 */
import type * as O from '../ops.ts';
import type { BatchNormArgs, BatchNormBwdArgs, BatchNormOut } from '../args/batch-norm.ts';
import { WG } from './source.ts';
import { f32, tb, type Bind, type Planned, type Planner, type Step } from './plan.ts';
import { applyWorkgroups, chunks, clChunks, windowed } from './policy.ts';
import { affineBinds, channelMaps, channelsLast, clMaps, clMeanVarSteps, clReduceStep, emptyBackward, gradOuts, meanVarSteps } from './steps.ts';

export function batchNorm(g: Planner, a: BatchNormArgs): Planned<BatchNormOut> {
  // Empty batch: empty y, running statistics untouched (PyTorch); training's saved statistics
  // are those of a reduction over nothing (mean 0, invstd NaN).
  if (a.x.size === 0) {
    const C = a.training ? a.C : 0;
    return { out: { y: g.alloc(a.x.shape, a.x.dtype, 'y'), saveMean: g.filled([C], 'saveMean', 0), saveInvstd: g.filled([C], 'saveInvstd', NaN) }, plan: null };
  }
  const { x, N, C, S, weight, bias, runningMean, runningVar } = a;
  const y = g.alloc(x.shape, x.dtype, 'y');
  const saveMean = g.alloc(a.training ? [C] : [0], 'float32', 'saveMean');
  const saveInvstd = g.alloc(a.training ? [C] : [0], 'float32', 'saveInvstd');
  const { affine, aflags } = affineBinds(weight, bias);
  const steps: Step[] = [];
  const temps: GPUBuffer[] = [];
  const cl = channelsLast(a);
  const clFlag = cl ? ['CLAST'] : [];
  // Channel of element e: (e / S) % C, or channels last e % C (one group per channel).
  const maps = cl ? clMaps(x.size, x.size, C, C) : { elements: x.size, ...channelMaps(1, C, S, C) };
  if (a.training) {
    const meanB = saveMean._buffer!;
    const rstdB = saveInvstd._buffer!;
    const win = windowed(g, x);
    const running = runningMean !== null && runningVar !== null ? [tb('RM', runningMean, true), tb('RV', runningVar, true)] : [];
    const stats = { mean: meanB, rstd: rstdB, running };
    const p = { eps: a.eps, momentum: a.momentum };
    // Channels last: x as one sample of N*spatial rows of C channels, one group per channel.
    const mv = cl
      ? clMeanVarSteps(g, x, clChunks(g, 1, N * S, C, win, x.dtype), C, stats, p, temps)
      : meanVarSteps(g, x, null, { runs: N, groups: C, runLength: S }, chunks(g, N, C, S, win, x.dtype), stats, p, temps);
    steps.push(...mv.steps, {
      entry: 'normalize_elements',
      flags: ['MEAN_PAIR', ...aflags, ...clFlag],
      binds: [tb('X', x), ...affine, tb('Y', y, true), f32('LO', mv.lo), f32('RSTD', rstdB)],
      p: maps,
      workgroups: applyWorkgroups(x.size),
    });
  } else {
    // Eval, both adapter classes: one elementwise dispatch; each quad (block) reads its
    // channel's running statistics and takes rstd = 1/sqrt(runningVar + eps) itself
    // (EVAL_STATS, apply.wgsl), no per-channel finalize step first.
    steps.push({
      entry: 'normalize_elements',
      flags: ['EVAL_STATS', ...aflags, ...clFlag],
      binds: [tb('X', x), ...affine, tb('Y', y, true), tb('RM', runningMean!), tb('RV', runningVar!)],
      p: { ...maps, eps: a.eps },
      workgroups: applyWorkgroups(x.size),
    });
  }
  return { out: { y, saveMean, saveInvstd }, plan: { op: 'batchNorm', steps, temps, outputs: [y, saveMean, saveInvstd, runningMean, runningVar] } };
}

export function batchNormBackward(g: Planner, a: BatchNormBwdArgs): Planned<O.BwdOut> {
  if (a.x.size === 0) return { out: emptyBackward(g, a), plan: null };
  const { dy, x, N, C, S, weight, bias } = a;
  const dx = g.alloc(x.shape, x.dtype, 'dx');
  const dweight = weight ? g.alloc(weight.shape, weight.dtype, 'dweight') : null;
  const dbias = bias ? g.alloc(bias.shape, bias.dtype, 'dbias') : null;
  const steps: Step[] = [];
  const temps: GPUBuffer[] = [];
  // Statistics: the saved ones (training), or in eval the running statistics read by the
  // reduce and finalize kernels themselves (EVAL_STATS: rstd = 1/sqrt(runningVar + eps) there);
  // dx = dy * w * invstd then comes from grad_coefficients.
  const stats: Bind[] = a.training ? [f32('MEAN', a.saveMean!._buffer!), f32('RSTD', a.saveInvstd!._buffer!)] : [tb('RM', a.runningMean!), tb('RV', a.runningVar!)];
  const evalFlags = a.training ? [] : ['EVAL_STATS'];
  // Channels last: x as one sample of N*spatial rows of C channels, one group per channel.
  const cl = channelsLast(a) ? clChunks(g, 1, N * S, C, windowed(g, x), x.dtype) : null;
  const ch = cl ? { chunks: cl.chunks, chunkLength: cl.chunkLength, chunksPerRun: 1, flags: [] } : chunks(g, N, C, S, windowed(g, x), x.dtype);
  const { chunks: P, chunkLength: L, chunksPerRun: Pi } = ch;
  const part = g.temp(C * P * 16, 'partials');
  const coef = g.temp(C * 16, 'coef');
  temps.push(part, coef);
  const wb: Bind[] = weight ? [tb('W', weight)] : [];
  const { dw, db, post } = gradOuts(g, dweight, dbias, temps);
  const bwdBinds = [tb('DY', dy), tb('X', x), ...stats, f32('PART', part, true)];
  steps.push(
    cl
      ? clReduceStep(cl, 'channels_last_grad_partials', ['HAS_MEAN', 'HAS_RSTD', ...evalFlags], bwdBinds, C, 1, a.eps)
      : {
          entry: 'grad_partials',
          flags: ['HAS_MEAN', 'HAS_RSTD', ...evalFlags, ...ch.flags],
          binds: bwdBinds,
          p: { runs: N, groups: C, runLength: S, chunks: P, chunkLength: L, chunksPerRun: Pi, groupsPerStat: 1, eps: a.eps },
          workgroups: Math.ceil((C * P) / WG),
        },
    {
      entry: 'grad_coefficients',
      flags: ['HAS_MEAN', ...evalFlags, ...(weight ? ['W_BY_J'] : []), ...(a.training ? [] : ['EVAL']), ...(dweight ? ['DW'] : []), ...(dbias ? ['DB'] : [])],
      binds: [f32('PART', part), ...wb, ...stats, f32('COEF', coef, true), ...(dw ? [dw] : []), ...(db ? [db] : [])],
      p: { outputs: C, partials: P, groupStride: P, partialStride: 1, eps: a.eps },
      workgroups: Math.ceil(C / WG),
    },
    ...post,
    {
      entry: 'grad_elements',
      flags: [...(weight ? ['HAS_W'] : []), ...(a.training ? [] : ['EVAL']), ...(cl ? ['CLAST'] : [])],
      binds: [tb('DY', dy), tb('X', x), ...wb, f32('COEF', coef), tb('DX', dx, true)],
      p: cl ? clMaps(x.size, x.size, C, C) : { elements: x.size, ...channelMaps(1, C, S, C) },
      workgroups: applyWorkgroups(x.size),
    },
  );
  return { out: { dx, dweight, dbias }, plan: { op: 'batchNormBackward', steps, temps, outputs: [dx, dweight, dbias] } };
}
