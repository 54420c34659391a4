/**
 * Float64 reference of layerNorm and rmsNorm, forward and backward (docs/SEMANTICS.md): one
 * group per row of the trailing `normalizedShape` elements, affine index the element of the row.
 */
import type { CpuHost, HostTensor } from './host.ts';
import type * as O from '../ops.ts';
import type { LayerNormArgs, LayerNormBwdArgs, LayerNormOut, RmsNormArgs, RmsNormBwdArgs, RmsNormBwdOut, RmsNormOut } from '../args/layer-norm.ts';
import { modBackward, modOut, rowInput } from './modulate.ts';
import { numel } from './host.ts';
import { type AnyTensor, centeredStats, dataOf, grouping, groupSize, groupSum, normApply, normBackward, opt64, round, t64 } from './common.ts';

/** Rows grouping for layer/RMS norm: [1, 1, rows, K] for the statistics, [1, rows, K, 1] for the affine index. */
function rows(x: AnyTensor, normalizedShape: readonly number[]) {
  const K = numel(normalizedShape);
  const lead = x.shape.slice(0, x.shape.length - normalizedShape.length);
  const R = numel(lead);
  return { lead, sg: grouping(1, 1, R, K), ag: grouping(1, R, K, 1) };
}

export function layerNorm64(
  x: AnyTensor,
  o: { normalizedShape: readonly number[]; weight: AnyTensor | null; bias: AnyTensor | null; eps: number },
) {
  const { lead, sg, ag } = rows(x, o.normalizedShape);
  const { mean, rstd } = centeredStats(x.data, sg, o.eps);
  const y = normApply(x.data, mean, rstd, sg, ag, dataOf(o.weight), dataOf(o.bias));
  return { y: t64(y, x.shape), mean: t64(mean, lead), rstd: t64(rstd, lead) };
}

export function layerNormBackward64(
  dy: AnyTensor,
  x: AnyTensor,
  mean: AnyTensor,
  rstd: AnyTensor,
  o: { normalizedShape: readonly number[]; weight: AnyTensor | null; bias: AnyTensor | null },
) {
  const { sg, ag } = rows(x, o.normalizedShape);
  const r = normBackward(dy.data, x.data, mean.data, rstd.data, sg, ag, dataOf(o.weight), true, !!o.weight, !!o.bias);
  return {
    dx: t64(r.dx, x.shape),
    dweight: opt64(r.dweight, o.normalizedShape),
    dbias: opt64(r.dbias, o.normalizedShape),
  };
}

export function rmsNorm64(x: AnyTensor, o: { normalizedShape: readonly number[]; weight: AnyTensor | null; eps: number }) {
  const { lead, sg, ag } = rows(x, o.normalizedShape);
  const K = groupSize(sg);
  const rstd = groupSum(sg, (i) => x.data[i] ** 2).map((s) => 1 / Math.sqrt(s / K + o.eps));
  const y = normApply(x.data, null, rstd, sg, ag, dataOf(o.weight), null);
  return { y: t64(y, x.shape), rstd: t64(rstd, lead) };
}

export function rmsNormBackward64(
  dy: AnyTensor,
  x: AnyTensor,
  rstd: AnyTensor,
  o: { normalizedShape: readonly number[]; weight: AnyTensor | null },
) {
  const { sg, ag } = rows(x, o.normalizedShape);
  const r = normBackward(dy.data, x.data, null, rstd.data, sg, ag, dataOf(o.weight), true, !!o.weight, false);
  return { dx: t64(r.dx, x.shape), dweight: opt64(r.dweight, o.normalizedShape) };
}

export function layerNorm(
  x: HostTensor,
  o: { normalizedShape: readonly number[]; weight: HostTensor | null; bias: HostTensor | null; eps: number },
): { y: HostTensor; mean: HostTensor; rstd: HostTensor } {
  return round(layerNorm64(x, o));
}

export function layerNormBackward(
  dy: HostTensor,
  x: HostTensor,
  mean: HostTensor,
  rstd: HostTensor,
  o: { normalizedShape: readonly number[]; weight: HostTensor | null; bias: HostTensor | null },
): { dx: HostTensor; dweight: HostTensor | null; dbias: HostTensor | null } {
  return round(layerNormBackward64(dy, x, mean, rstd, o));
}

export function rmsNorm(
  x: HostTensor,
  o: { normalizedShape: readonly number[]; weight: HostTensor | null; eps: number },
): { y: HostTensor; rstd: HostTensor } {
  return round(rmsNorm64(x, o));
}

export function rmsNormBackward(
  dy: HostTensor,
  x: HostTensor,
  rstd: HostTensor,
  o: { normalizedShape: readonly number[]; weight: HostTensor | null },
): { dx: HostTensor; dweight: HostTensor | null } {
  return round(rmsNormBackward64(dy, x, rstd, o));
}

// ---- the ops on the cpu backend (resolved arguments in, tensors out), as the op table calls them ----

export function layerNormOp(c: CpuHost, a: LayerNormArgs): LayerNormOut {
  const { x, sum } = rowInput(c, a);
  const r = layerNorm64(x, { normalizedShape: a.normalizedShape, weight: c.h(a.weight), bias: c.h(a.bias), eps: a.eps });
  return { y: modOut(c, a, r.y, false), mean: c.out64(r.mean.data, r.mean.shape, 'float32'), rstd: c.out64(r.rstd.data, r.rstd.shape, 'float32'), sum };
}

export function rmsNormOp(c: CpuHost, a: RmsNormArgs): RmsNormOut {
  const { x, sum } = rowInput(c, a);
  const r = rmsNorm64(x, { normalizedShape: a.normalizedShape, weight: c.h(a.weight), eps: a.eps });
  return { y: modOut(c, a, r.y, false), rstd: c.out64(r.rstd.data, r.rstd.shape, 'float32'), sum };
}

export function layerNormBackwardOp(c: CpuHost, a: LayerNormBwdArgs): O.ModBwdOut {
  return modBackward(c, a, a.mean, a.bias, rows(c.h(a.x), a.normalizedShape), false, (dy, x) =>
    layerNormBackward64(dy, x, c.h(a.mean), c.h(a.rstd), { normalizedShape: a.normalizedShape, weight: c.h(a.weight), bias: c.h(a.bias) }),
  );
}

export function rmsNormBackwardOp(c: CpuHost, a: RmsNormBwdArgs): RmsNormBwdOut & O.ModGradsOut {
  const { dbias: _none, ...rest } = modBackward(c, a, null, null, rows(c.h(a.x), a.normalizedShape), false, (dy, x) =>
    rmsNormBackward64(dy, x, c.h(a.rstd), { normalizedShape: a.normalizedShape, weight: c.h(a.weight) }),
  );
  return rest;
}
