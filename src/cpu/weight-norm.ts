/**
 * Float64 reference of weightNorm and weightNormBackward (docs/SEMANTICS.md): one L2 norm per
 * slice of v along dim (no eps).
 */
import type { CpuHost, HostTensor } from './host.ts';
import type { WeightNormArgs, WeightNormBwdArgs, WeightNormBwdOut, WeightNormOut } from '../args/weight-norm.ts';
import { type AnyTensor, groupSum, mapAll, round, t64 } from './common.ts';
import { alongDim, statOf } from '../grouping.ts';

/** Weight-norm slices along dim (null: one slice holding all of v). */
const slices = (v: AnyTensor, dim: number | null) => alongDim(v.shape, dim);

/** w = v · (g / ‖v‖) per slice; no eps, so ‖v‖ = 0 gives NaN as in PyTorch. */
export function weightNorm64(v: AnyTensor, g: AnyTensor, o: { dim: number | null }) {
  const sg = slices(v, o.dim);
  const norms = groupSum(sg, (i) => v.data[i] ** 2).map(Math.sqrt);
  const w = mapAll(v.data.length, (i) => {
    const j = statOf(sg, i);
    return v.data[i] * (g.data[j] / norms[j]);
  });
  return { w: t64(w, v.shape), norms: t64(norms, g.shape) };
}

/** s = Σ dw·v per slice; dg = s/‖v‖; dv = (g/‖v‖)·(dw − v·s/‖v‖²). */
export function weightNormBackward64(
  dw: AnyTensor,
  v: AnyTensor,
  g: AnyTensor,
  norms: AnyTensor,
  o: { dim: number | null },
) {
  const sg = slices(v, o.dim);
  const n = norms.data;
  const s = groupSum(sg, (i) => dw.data[i] * v.data[i]);
  const dg = s.map((sj, j) => sj / n[j]);
  const dv = mapAll(v.data.length, (i) => {
    const j = statOf(sg, i);
    return (g.data[j] / n[j]) * (dw.data[i] - v.data[i] * (s[j] / (n[j] * n[j])));
  });
  return { dv: t64(dv, v.shape), dg: t64(dg, g.shape) };
}

export function weightNorm(
  v: HostTensor,
  g: HostTensor,
  o: { dim: number | null },
): { w: HostTensor; norms: HostTensor } {
  return round(weightNorm64(v, g, o));
}

export function weightNormBackward(
  dw: HostTensor,
  v: HostTensor,
  g: HostTensor,
  norms: HostTensor,
  o: { dim: number | null },
): { dv: HostTensor; dg: HostTensor } {
  return round(weightNormBackward64(dw, v, g, norms, o));
}

// ---- the ops on the cpu backend (resolved arguments in, tensors out), as the op table calls them ----

export function weightNormOp(c: CpuHost, a: WeightNormArgs): WeightNormOut {
  const r = weightNorm(c.h(a.v), c.h(a.g), { dim: a.dim });
  return { w: c.out(r.w, a.v.dtype), norms: c.out(r.norms, 'float32') };
}

export function weightNormBackwardOp(c: CpuHost, a: WeightNormBwdArgs): WeightNormBwdOut {
  const r = weightNormBackward(c.h(a.dw), c.h(a.v), c.h(a.g), c.h(a.norms), { dim: a.dim });
  return { dv: c.out(r.dv, a.v.dtype), dg: c.out(r.dg, a.g.dtype) };
}
