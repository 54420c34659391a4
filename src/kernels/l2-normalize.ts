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
 * Tensors past one storage binding are bound in ranges cut between lanes (memory.ts lanes):
 * a range of k neighbouring lanes spans (runs - 1)·groups + k elements (float32 bytes: float16
 * outputs go through a float32 temporary). One lane's span must leave room for many lanes in a
 * binding, or the op would run as a dispatch per few lanes: at most three quarters of a binding
 * (less the offset alignment), so each range takes at least a quarter of a binding's lanes.
 * Along the last dim a lane is a row; along dim 0 a lane spans nearly all of x, so a tensor past
 * one binding is a LimitError there unless it has few elements along dim 0 (x [2, K]: K·4 bytes
 * under three quarters of a binding).
 */
function checkLaneSpan(g: Planner, op: string, a: LpGeom & { x: Tensor }): void {
  const span = ((a.runs - 1) * a.groups + 1) * 4;
  const room = Math.floor(((g.bindLimit - g.ctx.device.limits.minStorageBufferOffsetAlignment) * 3) / 4);
  if (Math.ceil((a.x.size * 4) / 16) * 16 > g.bindLimit && span > room) {
    throw new LimitError(
      `x: ${op} along dim ${a.dim} of shape ${fmtShape(a.x.shape)}: one lane spans ${span} bytes from its first element to its last, more than ${room} bytes (three quarters of a storage binding of ${g.bindLimit} bytes, less its offset alignment); tensors past one binding are split between lanes`,
      'x',
    );
  }
}

export function l2Normalize(g: Planner, a: LpNormalizeArgs): Planned<LpNormalizeOut> {
  const y = g.alloc(a.x.shape, a.x.dtype, 'y');
  // Empty lanes (x [3, 0] along dim 1): their norm is 0, written here as no kernel runs.
  if (a.x.size === 0) return { out: { y, norms: g.filled(a.normShape, 'norms', 0) }, plan: null };
  const norms = g.alloc(a.normShape, 'float32', 'norms');
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
