/**
 * Float64 reference of batchNorm and batchNormBackward (docs/SEMANTICS.md): one group per
 * channel over N and the spatial dims; eval mode normalizes by the running statistics, training
 * mode by the batch's and updates the running ones in place.
 */
import type { CpuHost, HostTensor } from './host.ts';
import type * as O from '../ops.ts';
import type { BatchNormArgs, BatchNormBwdArgs, BatchNormOut } from '../args/batch-norm.ts';
import { type Arr, type AnyTensor, centeredStats, channels, dataOf, mapAll, normApply, normBackward, opt64, round, t64 } from './common.ts';

export interface BatchNormOpts<T> {
  training: boolean;
  weight: T | null;
  bias: T | null;
  runningMean: T | null;
  runningVar: T | null;
  momentum: number | null;
  eps: number;
  numBatchesTracked: number;
  /** x is [N, *spatial, C] (default false: [N, C, *spatial]). */
  channelsLast?: boolean;
}

export function batchNorm64(x: AnyTensor, o: BatchNormOpts<AnyTensor>) {
  const { N, C, S, cg } = channels(x, o.channelsLast);
  const w = dataOf(o.weight);
  const b = dataOf(o.bias);
  if (!o.training) {
    const rv = o.runningVar!.data;
    const invstd = mapAll(C, (c) => 1 / Math.sqrt(rv[c] + o.eps));
    const y = normApply(x.data, o.runningMean!.data, invstd, cg, cg, w, b);
    return { y: t64(y, x.shape), saveMean: t64(new Float64Array(0), [0]), saveInvstd: t64(new Float64Array(0), [0]) };
  }
  const { mean, variance, rstd } = centeredStats(x.data, cg, o.eps);
  const y = normApply(x.data, mean, rstd, cg, cg, w, b);
  // Running update (in place): momentum null means the cumulative average 1/(batches seen).
  const m = o.momentum ?? 1 / (o.numBatchesTracked + 1);
  const n = N * S;
  const rm = o.runningMean?.data;
  const rvar = o.runningVar?.data;
  // An empty batch leaves the running statistics untouched (PyTorch).
  for (let c = 0; c < C && n > 0; c++) {
    if (rm) rm[c] = (1 - m) * rm[c] + m * mean[c];
    if (rvar) rvar[c] = (1 - m) * rvar[c] + (m * variance[c] * n) / (n - 1);
  }
  return { y: t64(y, x.shape), saveMean: t64(mean, [C]), saveInvstd: t64(rstd, [C]) };
}

export interface BatchNormBackwardOpts<T> {
  training: boolean;
  weight: T | null;
  bias: T | null;
  runningMean: T | null;
  runningVar: T | null;
  saveMean: T | null;
  saveInvstd: T | null;
  eps: number;
  /** x and dy are [N, *spatial, C] (default false). */
  channelsLast?: boolean;
}

export function batchNormBackward64(dy: AnyTensor, x: AnyTensor, o: BatchNormBackwardOpts<AnyTensor>) {
  const { C, cg } = channels(x, o.channelsLast);
  let mean: Arr;
  let invstd: Arr;
  if (o.training) {
    mean = o.saveMean!.data;
    invstd = o.saveInvstd!.data;
  } else {
    const rv = o.runningVar!.data;
    mean = o.runningMean!.data;
    invstd = mapAll(C, (c) => 1 / Math.sqrt(rv[c] + o.eps));
  }
  const r = normBackward(dy.data, x.data, mean, invstd, cg, cg, dataOf(o.weight), o.training, !!o.weight, !!o.bias);
  return { dx: t64(r.dx, x.shape), dweight: opt64(r.dweight, [C]), dbias: opt64(r.dbias, [C]) };
}

/** Training mode updates o.runningMean / o.runningVar in place (when given). */
export function batchNorm(
  x: HostTensor,
  o: BatchNormOpts<HostTensor>,
): { y: HostTensor; saveMean: HostTensor; saveInvstd: HostTensor } {
  return round(batchNorm64(x, o));
}

export function batchNormBackward(
  dy: HostTensor,
  x: HostTensor,
  o: BatchNormBackwardOpts<HostTensor>,
): { dx: HostTensor; dweight: HostTensor | null; dbias: HostTensor | null } {
  return round(batchNormBackward64(dy, x, o));
}

// ---- the ops on the cpu backend (resolved arguments in, tensors out), as the op table calls them ----

export function batchNormOp(c: CpuHost, a: BatchNormArgs): BatchNormOut {
  const r = batchNorm(c.h(a.x), {
    training: a.training,
    weight: c.h(a.weight),
    bias: c.h(a.bias),
    runningMean: c.h(a.runningMean),
    runningVar: c.h(a.runningVar),
    momentum: a.momentum,
    eps: a.eps,
    numBatchesTracked: 0,
    channelsLast: a.channelsLast,
  });
  return { y: c.out(r.y, a.x.dtype), saveMean: c.out(r.saveMean, 'float32'), saveInvstd: c.out(r.saveInvstd, 'float32') };
}

export function batchNormBackwardOp(c: CpuHost, a: BatchNormBwdArgs): O.BwdOut {
  const r = batchNormBackward(c.h(a.dy), c.h(a.x), {
    training: a.training,
    weight: c.h(a.weight),
    bias: c.h(a.bias),
    runningMean: c.h(a.runningMean),
    runningVar: c.h(a.runningVar),
    saveMean: c.h(a.saveMean),
    saveInvstd: c.h(a.saveInvstd),
    eps: a.eps,
    channelsLast: a.channelsLast,
  });
  return { dx: c.out(r.dx, a.x.dtype), dweight: r.dweight && c.out(r.dweight, a.weight!.dtype), dbias: r.dbias && c.out(r.dbias, a.bias!.dtype) };
}
