/**
 * Float64 reference of groupNorm and instanceNorm (group norm with G = C), forward and backward
 * (docs/SEMANTICS.md): one group per (sample, group of C/G channels), affine index the channel.
 */
import type { CpuHost, HostTensor } from './host.ts';
import * as O from '../ops.ts';
import type { GroupNormArgs, GroupNormBwdArgs, GroupNormOut, InstanceNormArgs, InstanceNormBwdArgs } from '../args/group-norm.ts';
import { instanceAsGroupNorm, instanceAsGroupNormBackward } from '../args/group-norm.ts';
import { modBackward, modOut } from './modulate.ts';
import { type AnyTensor, centeredStats, channels, dataOf, grouping, normApply, normBackward, opt64, round, t64 } from './common.ts';

/**
 * Group norm: stats per (n, g) over a contiguous run of (C/G)·S elements ([1, 1, N·G, (C/G)·S]);
 * channels last: the group's C/G channels in each of the S rows of sample n ([N, S, G, C/G]);
 * affine per channel.
 */
function groupGroupings(x: AnyTensor, G: number, channelsLast = false) {
  const { N, C, S, cg } = channels(x, channelsLast);
  const Cg = C / G;
  if (channelsLast) return { N, C, sg: grouping(N, S, G, Cg), cg };
  return { N, C, sg: grouping(1, 1, N * G, Cg * S), cg };
}

export function groupNorm64(
  x: AnyTensor,
  o: { numGroups: number; weight: AnyTensor | null; bias: AnyTensor | null; eps: number; channelsLast?: boolean },
) {
  const { N, sg, cg } = groupGroupings(x, o.numGroups, o.channelsLast);
  const { mean, rstd } = centeredStats(x.data, sg, o.eps);
  const y = normApply(x.data, mean, rstd, sg, cg, dataOf(o.weight), dataOf(o.bias));
  const statShape = [N, o.numGroups];
  return { y: t64(y, x.shape), mean: t64(mean, statShape), rstd: t64(rstd, statShape) };
}

export function groupNormBackward64(
  dy: AnyTensor,
  x: AnyTensor,
  mean: AnyTensor,
  rstd: AnyTensor,
  o: { numGroups: number; weight: AnyTensor | null; bias: AnyTensor | null; channelsLast?: boolean },
) {
  const { C, sg, cg } = groupGroupings(x, o.numGroups, o.channelsLast);
  const r = normBackward(dy.data, x.data, mean.data, rstd.data, sg, cg, dataOf(o.weight), true, !!o.weight, !!o.bias);
  return { dx: t64(r.dx, x.shape), dweight: opt64(r.dweight, [C]), dbias: opt64(r.dbias, [C]) };
}

export function instanceNorm64(x: AnyTensor, o: { weight: AnyTensor | null; bias: AnyTensor | null; eps: number; channelsLast?: boolean }) {
  return groupNorm64(x, { ...o, numGroups: channels(x, o.channelsLast).C });
}

export function instanceNormBackward64(
  dy: AnyTensor,
  x: AnyTensor,
  mean: AnyTensor,
  rstd: AnyTensor,
  o: { weight: AnyTensor | null; bias: AnyTensor | null; channelsLast?: boolean },
) {
  return groupNormBackward64(dy, x, mean, rstd, { ...o, numGroups: channels(x, o.channelsLast).C });
}

export function groupNorm(
  x: HostTensor,
  o: { numGroups: number; weight: HostTensor | null; bias: HostTensor | null; eps: number; channelsLast?: boolean },
): { y: HostTensor; mean: HostTensor; rstd: HostTensor } {
  return round(groupNorm64(x, o));
}

export function groupNormBackward(
  dy: HostTensor,
  x: HostTensor,
  mean: HostTensor,
  rstd: HostTensor,
  o: { numGroups: number; weight: HostTensor | null; bias: HostTensor | null; channelsLast?: boolean },
): { dx: HostTensor; dweight: HostTensor | null; dbias: HostTensor | null } {
  return round(groupNormBackward64(dy, x, mean, rstd, o));
}

export function instanceNorm(
  x: HostTensor,
  o: { weight: HostTensor | null; bias: HostTensor | null; eps: number; channelsLast?: boolean },
): { y: HostTensor; mean: HostTensor; rstd: HostTensor } {
  return round(instanceNorm64(x, o));
}

export function instanceNormBackward(
  dy: HostTensor,
  x: HostTensor,
  mean: HostTensor,
  rstd: HostTensor,
  o: { weight: HostTensor | null; bias: HostTensor | null; channelsLast?: boolean },
): { dx: HostTensor; dweight: HostTensor | null; dbias: HostTensor | null } {
  return round(instanceNormBackward64(dy, x, mean, rstd, o));
}

// ---- the ops on the cpu backend (resolved arguments in, tensors out), as the op table calls them ----

export function groupNormOp(c: CpuHost, a: GroupNormArgs): GroupNormOut {
  const r = groupNorm64(c.h(a.x), { numGroups: a.G, weight: c.h(a.weight), bias: c.h(a.bias), eps: a.eps, channelsLast: a.channelsLast });
  return { y: modOut(c, a, r.y, a.silu), mean: c.out64(r.mean.data, r.mean.shape, 'float32'), rstd: c.out64(r.rstd.data, r.rstd.shape, 'float32') };
}

export function groupNormBackwardOp(c: CpuHost, a: GroupNormBwdArgs): O.ModBwdOut {
  const { sg, cg } = groupGroupings(c.h(a.x), a.G, a.channelsLast);
  return modBackward(c, { ...a, gate: null, residual: null, dsum: null }, a.mean, a.bias, { sg, ag: cg }, a.silu, (dy, x) =>
    groupNormBackward64(dy, x, c.h(a.mean), c.h(a.rstd), { numGroups: a.G, weight: c.h(a.weight), bias: c.h(a.bias), channelsLast: a.channelsLast }),
  );
}

export function instanceNormOp(c: CpuHost, a: InstanceNormArgs): GroupNormOut {
  return groupNormOp(c, instanceAsGroupNorm(a));
}

export function instanceNormBackwardOp(c: CpuHost, a: InstanceNormBwdArgs): O.BwdOut {
  const { dx, dweight, dbias } = groupNormBackwardOp(c, instanceAsGroupNormBackward(a));
  return { dx, dweight, dbias };
}
