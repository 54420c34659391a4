/**
 * Lp normalization along a dim on the GPU (PyTorch `F.normalize`, ONNX `LpNormalization`): one
 * invocation per lane (lp_normalize_lanes / lp_normalize_grad_lanes in lp-normalize.wgsl) of the
 * Grouping [outer, runs, groups, 1] (src/grouping.ts, args LpGeom), the lanes of
 * a middle dim side by side in memory. float16 outputs are written as float32 and packed by a
 * cast_half step (steps.ts groupOut), because two lanes (or two rows) may share a u32 word of halves.
 */
import type { LpGeom, LpNormalizeArgs, LpNormalizeBwdArgs, LpNormalizeOut } from '../args/l2-normalize.ts';
import type { Tensor } from '../tensor.ts';
import { LimitError } from '../errors.ts';
import { WG } from './source.ts';
import { tb, type Planned, type Planner, type Step } from './plan.ts';
import { groupOut } from './steps.ts';
import { windowed } from './policy.ts';

const lanes = (a: LpGeom) => ({ outer: a.outer, runs: a.runs, groups: a.groups, eps: a.eps, power: a.p });

function checkWindow(g: Planner, op: string, ts: Tensor[]): void {
  for (const t of ts) {
    if (windowed(g, t)) throw new LimitError(`${op}: tensors larger than one storage binding (${t.size} elements of ${t.dtype}, limit ${g.bindLimit} bytes) are not supported yet`, 'x');
  }
}

export function l2Normalize(g: Planner, a: LpNormalizeArgs): Planned<LpNormalizeOut> {
  const y = g.alloc(a.x.shape, a.x.dtype, 'y');
  const norms = g.alloc(a.normShape, 'float32', 'norms');
  if (a.x.size === 0) return { out: { y, norms }, plan: null };
  checkWindow(g, 'l2Normalize', [a.x]);
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
  checkWindow(g, 'l2NormalizeBackward', [a.x, a.dy]);
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
