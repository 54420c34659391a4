/**
 * Lp normalization along a dim on the GPU (PyTorch `F.normalize`, ONNX `LpNormalization`): one
 * invocation per lane (lp_normalize_lanes / lp_normalize_grad_lanes in lp-normalize.wgsl) of the
 * Grouping [outer, runs, groups, 1] (src/grouping.ts, args LpGeom), the lanes of
 * a middle dim side by side in memory. float16 outputs are written as float32 and packed by a
 * cast_half step (steps.ts groupOut), because two lanes (or two rows) may share a u32 word of halves.
 */
import type { LpGeom, LpNormalizeArgs, LpNormalizeBwdArgs, LpNormalizeOut } from '../args/l2-normalize.ts';
import type { Tensor } from '../tensor.ts';
import { LimitError, fmtShape } from '../errors.ts';
import { WG } from './source.ts';
import { tb, type Planned, type Planner, type Step } from './plan.ts';
import { groupOut } from './steps.ts';

const lanes = (a: LpGeom) => ({ outer: a.outer, runs: a.runs, groups: a.groups, eps: a.eps, power: a.p });

/**
 * Tensors past one storage binding are bound in ranges cut between lanes (memory.ts lpLanes),
 * so one lane, (runs - 1)·groups + 1 elements from its first to its last, must fit a binding
 * (always along the last dim; along another dim unless a single lane spans more than a binding).
 */
function checkLaneSpan(g: Planner, op: string, a: LpGeom & { x: Tensor }): void {
  const span = ((a.runs - 1) * a.groups + 1) * 4;
  if (a.x.size * 4 > g.bindLimit && span > g.bindLimit) {
    throw new LimitError(
      `x: ${op} along dim ${a.dim} of shape ${fmtShape(a.x.shape)}: one lane spans ${span} bytes from its first element to its last, more than a storage binding (${g.bindLimit} bytes); tensors past one binding are split between lanes`,
      'x',
    );
  }
}

export function l2Normalize(g: Planner, a: LpNormalizeArgs): Planned<LpNormalizeOut> {
  const y = g.alloc(a.x.shape, a.x.dtype, 'y');
  const norms = g.alloc(a.normShape, 'float32', 'norms');
  if (a.x.size === 0) return { out: { y, norms }, plan: null };
  checkLaneSpan(g, 'l2Normalize', a);
  const temps: GPUBuffer[] = [];
  const post: Step[] = [];
  const yb = groupOut(g, 'Y', y, temps, post);
  const n = a.outer * a.groups;
  const steps: Step[] = [
    { entry: 'lp_normalize_lanes', flags: [], binds: [tb('X', a.x), yb, tb('NORM', norms, true)], p: lanes(a), workgroups: Math.ceil(n / WG) },
    ...post,
  ];
  return { out: { y, norms }, plan: { op: 'l2Normalize', steps, temps, outputs: [y, norms] } };
}

export function l2NormalizeBackward(g: Planner, a: LpNormalizeBwdArgs): Planned<{ dx: Tensor }> {
  const dx = g.alloc(a.x.shape, a.x.dtype, 'dx');
  if (a.x.size === 0) return { out: { dx }, plan: null };
  checkLaneSpan(g, 'l2NormalizeBackward', a);
  const temps: GPUBuffer[] = [];
  const post: Step[] = [];
  const db = groupOut(g, 'DX', dx, temps, post);
  const n = a.outer * a.groups;
  const steps: Step[] = [
    { entry: 'lp_normalize_grad_lanes', flags: [], binds: [tb('DY', a.dy), tb('X', a.x), tb('NORM', a.norms), db], p: lanes(a), workgroups: Math.ceil(n / WG) },
    ...post,
  ];
  return { out: { dx }, plan: { op: 'l2NormalizeBackward', steps, temps, outputs: [dx] } };
}
