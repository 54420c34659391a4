/**
 * Modulated norms on the GPU (adaLN of DiT/SD3/Flux, adaRMS, AdaGN of diffusion UNets): a norm's
 * plan, built by its own planner (layer-norm.ts, group-norm.ts), with its bindings rerouted
 * through the accessor wrappers of shaders/modulate.wgsl, so every kernel variant of the norm
 * (row kernels, row-fused, partials + apply, channels last) takes the modulation in the same
 * pass over x:
 * - forward: Y → YM with scale (SC) and shift (SH) applied on store (then SiLU, MOD_SILU); with a
 *   gate, X → XG read as gate ⊙ x (the kernels add the residual themselves);
 * - backward: DY → DYM read as dy ⊙ (scaleOffset + scale); with a residual, X → XG read as the
 *   forward's sum (residual + gate ⊙ x, recomputed); DX → DXM written as gate ⊙ (dx + dsum),
 *   and dx + dsum also as the residual's gradient (DR);
 * then dscale, dshift and dgate are sums over the broadcast dims (modulate-grads.ts: in the row
 * kernels' blocks, or modulation_grad_partials and weight_bias_grads; deterministic, no atomics),
 * and a SiLU before it (group norm) is taken out of dy first by silu_grad_elements.
 */
import { Tensor } from '../tensor.ts';
import type * as O from '../ops.ts';
import { LimitError } from '../errors.ts';
import { f32, tb, type Bind, type Plan, type Planned, type Planner, type Step } from './plan.ts';
import { applyWorkgroups } from './policy.ts';
import { groupOut } from './steps.ts';
import type { RowBwdPlanned } from './layer-norm-backward.ts';
import { MIN_RUN, modGradSteps, modSumsSteps, rowNorm, type ModBwdArgs } from './modulate-grads.ts';

/** Whether an op's arguments carry any modulation or gate. */
export const modulated = (a: O.Modulation): boolean => !!(a.scale || a.shift || a.gate);

/**
 * MOD_ROWS for the row-fused kernels whose rows are the modulation's inner runs (layer/RMS norm):
 * they set each row's index offset once instead of dividing per load (modulate.wgsl).
 */
function rowsFlag(s: Step, a: O.Modulation): void {
  if ((s.entry.startsWith('fused_rows_') || s.entry === 'workgroup_rows_grad') && a.modGeom && a.modGeom.inner === s.p.runLength && !s.flags.includes('MOD_ROWS')) s.flags.push('MOD_ROWS');
  else if (a.modGeom && a.modGeom.inner <= 1 && !s.flags.includes('MOD_RUNS')) s.flags.push('MOD_RUNS');
}

/** The uniform fields of modulate.wgsl. */
function modParams(a: O.Modulation): Record<string, number> {
  const m = a.modGeom ?? { inner: 1, div: 1, mod: 1 };
  return { modInner: Math.max(m.inner, 1), modDiv: Math.max(m.div, 1), modMod: Math.max(m.mod, 1), scaleOffset: a.scaleOffset };
}

function rename(s: Step, from: string, to: string): boolean {
  const b = s.binds.find((x) => x.name === from);
  if (!b) return false;
  b.name = to;
  return true;
}

function checkPlan(g: Planner, op: string, plan: Plan): void {
  const max = bindingLimit(g);
  for (const s of plan.steps) {
    if (s.binds.length > max) {
      throw new LimitError(`${op}: the ${s.entry} kernel needs ${s.binds.length} storage bindings with this modulation, the device allows ${max} (maxStorageBuffersPerShaderStage)`, 'x');
    }
  }
}

/**
 * The storage bindings a device allows per kernel (tests may lower it: GpuBackend.maxStorageBindings).
 * Modulated kernels bind up to 12; where that is too many (WebGPU's default is 8), the gated sum and
 * the residual's gradients run as passes of their own ("narrow" plans).
 */
function bindingLimit(g: Planner): number {
  return Math.min(g.ctx.device.limits.maxStorageBuffersPerShaderStage, g.maxStorageBindings ?? Infinity);
}

/** S = residual + gate ⊙ x as a pass of its own. */
function gatedSumStep(a: O.Modulation & { x: Tensor; residual: Tensor }, sum: Tensor): Step {
  return {
    entry: 'gated_sum_elements',
    flags: a.gate ? ['MOD_GT'] : [],
    binds: [tb('X', a.x), tb('R', a.residual), ...(a.gate ? [tb('GT', a.gate)] : []), tb('S', sum, true)],
    p: { ...modParams(a), elements: a.x.size },
    workgroups: applyWorkgroups(a.x.size),
  };
}

/**
 * A forward plan of layerNorm / rmsNorm / groupNorm with scale, shift and gate applied on its
 * reads of x and stores of y. `plan` is the norm's own planner (called once).
 */
export function modulateForward<R extends object>(g: Planner, op: string, plan: (a: O.Modulation & { x: Tensor; residual: Tensor | null }) => Planned<R>, a: O.Modulation & { x: Tensor; residual: Tensor | null }): Planned<R> {
  if (!modulated(a)) return plan(a);
  // Worst case of the norm's own kernels: X, R, W, B, Y, S, MEAN (or LO), RSTD; then GT, SC, SH.
  const wide = 8 + (a.gate ? 1 : 0) + (a.scale ? 1 : 0) + (a.shift ? 1 : 0);
  let pre: Step | null = null;
  let sum: Tensor | null = null;
  let r: Planned<R>;
  if (a.gate && a.residual && a.x.size > 0 && wide > bindingLimit(g)) {
    // Narrow: the gated sum first (into the `sum` output), then the norm of it.
    sum = g.alloc(a.x.shape, a.x.dtype, 'sum');
    pre = gatedSumStep({ ...a, residual: a.residual }, sum);
    r = plan({ ...a, x: sum, residual: null, gate: null });
    r = { out: { ...r.out, sum }, plan: r.plan };
  } else r = plan(a);
  if (!r.plan) return r;
  const mp = modParams(a);
  for (const s of r.plan.steps) {
    let touched = false;
    if (a.gate && !pre && rename(s, 'X', 'XG')) {
      s.binds.push(tb('GT', a.gate));
      s.flags.push('GATE_X', 'MOD_GT');
      touched = true;
    }
    const y = s.binds.find((b) => b.name === 'Y' && b.rw);
    if (y && (a.scale || a.shift)) {
      y.name = 'YM';
      s.flags.push('MOD_OUT');
      if (a.scale) s.binds.push(tb('SC', a.scale)), s.flags.push('MOD_SC');
      if (a.shift) s.binds.push(tb('SH', a.shift)), s.flags.push('MOD_SH');
      const k = s.flags.indexOf('SILU');
      if (k >= 0) s.flags.splice(k, 1, 'MOD_SILU');
      touched = true;
    }
    if (touched) {
      s.p = { ...s.p, ...mp };
      rowsFlag(s, a);
    }
  }
  if (pre) r.plan.steps.unshift(pre);
  if (sum) r.plan.outputs.push(sum);
  checkPlan(g, op, r.plan);
  return r;
}

/**
 * A backward plan of layerNorm / rmsNorm / groupNorm with the modulation's gradients: `run`
 * plans the norm's own backward for the given dy (the SiLU-free gradient, with group norm's
 * activation) and x (the norm's input, when narrow plans compute it first), and its plan is
 * rerouted through modulate.wgsl; `norm` are the bindings and index maps (statistics, weight,
 * bias) that modulation_grad_partials recomputes n with.
 */
export function modulateBackward<R extends { dx: Tensor }>(
  g: Planner,
  op: string,
  args: ModBwdArgs,
  run: (dy: Tensor, x: Tensor, modRuns: number) => RowBwdPlanned<R>,
  norm: { binds: Bind[]; flags: string[]; p: Record<string, number> },
  silu: boolean,
): Planned<R & O.ModGradsOut> {
  // One modulation row for all of x: a single run of every row (the same index map, and the
  // row kernels' sums see one run).
  const mg = args.modGeom;
  const a: ModBwdArgs = mg && mg.mod === 1 && mg.inner > 0 ? { ...args, modGeom: { ...mg, div: Math.max(1, args.x.size / mg.inner) } } : args;
  const { x, dy } = a;
  const zeros = (t: Tensor | null, label: string) => (t ? g.filled(t.shape, label, 0, t.dtype) : null);
  if (x.size === 0) {
    const r = run(dy, x, 0);
    return {
      out: { ...r.out, dscale: zeros(a.scale, 'dscale'), dshift: zeros(a.shift, 'dshift'), dgate: zeros(a.gate, 'dgate'), dresidual: a.residual ? g.alloc(x.shape, x.dtype, 'dresidual') : null },
      plan: r.plan,
    };
  }
  const mp = modParams(a);
  const pre: Step[] = [];
  const temps: GPUBuffer[] = [];
  const limit = bindingLimit(g);
  // Worst case of the norm's own kernels: DY, X, W, MEAN, RSTD, DX, PART (or CORR); then SC, R,
  // GT, DS, DR. Narrow: the sum and the residual's gradients as passes of their own.
  const wide = 7 + (a.scale ? 1 : 0) + (a.residual ? 2 : 0) + (a.gate ? 1 : 0) + (a.dsum ? 1 : 0);
  const mgWide = 2 + (a.residual ? 1 + (a.gate ? 2 : 0) : 0) + norm.binds.length + (a.scale ? 1 : 0) + (a.shift ? 1 : 0) + (a.gate ? 1 : 0);
  const narrow = wide > limit || mgWide > limit;
  let xin = x;
  if (narrow && a.residual) {
    const buf = g.temp(Math.ceil((x.size * (x.dtype === 'float16' ? 2 : 4)) / 4) * 4 + 4, 'sum');
    temps.push(buf);
    xin = new Tensor({}, x.shape, x.dtype, { buffer: buf }, false);
    pre.push(gatedSumStep({ ...a, residual: a.residual }, xin));
  }
  const wideSum = !narrow && !!a.residual;
  // The sum the norm normalized (with a residual, wide): its reads recomputed from x, residual and gate.
  const sumBinds: Bind[] = wideSum ? [tb('R', a.residual!), ...(a.gate ? [tb('GT', a.gate)] : [])] : [];
  const sumFlags = wideSum ? ['SUM_X', ...(a.gate ? ['MOD_GT'] : []), ...(x.dtype === 'float16' ? ['HALF_SUM'] : [])] : [];
  let gdy = dy;
  if (silu) {
    // dz = dy ⊙ silu'(z), z the modulated affine output before the activation, into an f32 temp.
    const buf = g.temp(Math.max(x.size, 1) * 4, 'dz');
    temps.push(buf);
    gdy = new Tensor({}, x.shape, 'float32', { buffer: buf }, false);
    const zStep: Step = {
      entry: 'silu_grad_elements',
      flags: [...norm.flags, ...(a.scale ? ['MOD_SC'] : []), ...(a.shift ? ['MOD_SH'] : []), ...((a.modGeom?.inner ?? 2) <= 1 ? ['MOD_RUNS'] : [])],
      binds: [tb('X', x), tb('DY', dy), ...norm.binds, ...(a.scale ? [tb('SC', a.scale)] : []), ...(a.shift ? [tb('SH', a.shift)] : []), f32('DZ', buf, true)],
      p: { ...norm.p, ...mp, elements: x.size },
      workgroups: applyWorkgroups(x.size),
    };
    if (zStep.binds.length > limit) {
      // Few bindings: z first (without dy), then dz from it in place.
      zStep.binds = zStep.binds.filter((b) => b.name !== 'DY');
      zStep.flags.push('SG_Z');
      pre.push(zStep, { ...zStep, flags: ['SG_FROM_Z'], binds: [tb('X', x), tb('DY', dy), f32('DZ', buf, true)], p: { elements: x.size } });
    } else pre.push(zStep);
  }
  // Layer/RMS norm whose modulation rows are runs of whole rows (adaLN: [B, 1, D] over [B, T, D]):
  // the row kernels sum dscale, dshift and dgate per block of rows as they go (MOD_SUMS).
  const modRuns = rowNorm(norm, a) && !narrow && !silu && (a.modGeom?.div ?? 0) >= MIN_RUN ? a.modGeom!.div : 0;
  const r = run(gdy, xin, modRuns);
  if (!r.plan) throw new Error(`${op}: no plan`);
  const dresidual = a.residual ? g.alloc(x.shape, x.dtype, 'dresidual') : null;
  // dgate sums t ⊙ x with t the residual's gradient as computed. Float16 x: dresidual holds t
  // rounded to half, so where dgate is summed from a stored t (not in the row kernels) the kernels
  // write t into a float32 temp, read by that sum and cast into dresidual after it.
  const castDr: Step[] = [];
  const drBind: Bind | null = !dresidual ? null : a.gate && dresidual.dtype === 'float16' && !r.sums ? groupOut(g, 'DR', dresidual, temps, castDr) : tb('DR', dresidual, true);
  const mid: Step[] = [];
  for (const s of r.plan.steps) {
    let touched = false;
    if (a.scale && rename(s, 'DY', 'DYM')) {
      s.binds.push(tb('SC', a.scale));
      s.flags.push('MOD_DY', 'MOD_SC');
      touched = true;
    }
    if (wideSum && rename(s, 'X', 'XG')) {
      s.binds.push(...sumBinds.filter((b) => !s.binds.some((c) => c.name === b.name)));
      s.flags.push(...sumFlags.filter((f) => !s.flags.includes(f)));
      touched = true;
    }
    const dx = s.binds.find((b) => b.name === 'DX' && b.rw);
    if (dx && !narrow && (a.residual || a.dsum)) {
      dx.name = 'DXM';
      s.flags.push('DX_OUT');
      if (a.dsum) s.binds.push(tb('DS', a.dsum)), s.flags.push('HAS_DS');
      if (drBind) s.binds.push({ ...drBind }), s.flags.push('HAS_DR');
      if (a.gate && !s.binds.some((b) => b.name === 'GT')) s.binds.push(tb('GT', a.gate));
      if (a.gate && !s.flags.includes('MOD_GT')) s.flags.push('MOD_GT');
      touched = true;
    }
    if (touched) {
      s.p = { ...s.p, ...mp };
      rowsFlag(s, a);
    }
  }
  if (narrow && (a.residual || a.dsum)) {
    // dx + dsum, the residual's gradient, and dx times the gate, in place on dx. Float16 x: the
    // norm's kernels write their dx into a float32 temp instead, and this pass the result into dx
    // (t rounded once, as in the fused kernels).
    let dxn = tb('DXN', r.out.dx, true);
    const out: Bind[] = [];
    if (r.out.dx.dtype === 'float16') {
      const buf = g.temp(Math.max(x.size, 1) * 4, 'dx.f32');
      temps.push(buf);
      for (const s of r.plan.steps) for (const b of s.binds) if (b.t === r.out.dx._buffer) Object.assign(b, { t: buf, dtype: 'float32' });
      dxn = f32('DXN', buf);
      out.push(tb('DXO', r.out.dx, true));
    }
    mid.push({
      entry: 'residual_grad_elements',
      flags: [...(a.dsum ? ['HAS_DS'] : []), ...(dresidual ? ['HAS_DR'] : []), ...(a.gate ? ['MOD_GT'] : []), ...(out.length ? ['RG_OUT'] : [])],
      binds: [tb('X', x), dxn, ...out, ...(a.dsum ? [tb('DS', a.dsum)] : []), ...(drBind ? [{ ...drBind }] : []), ...(a.gate ? [tb('GT', a.gate)] : [])],
      p: { ...mp, elements: x.size },
      workgroups: applyWorkgroups(x.size),
    });
  }
  // dscale = Σ dy ⊙ n, dshift = Σ dy, dgate = Σ dresidual ⊙ x over the broadcast dims.
  const dscale = a.scale ? g.alloc(a.scale.shape, a.scale.dtype, 'dscale') : null;
  const dshift = a.shift ? g.alloc(a.shift.shape, a.shift.dtype, 'dshift') : null;
  const dgate = a.gate ? g.alloc(a.gate.shape, a.gate.dtype, 'dgate') : null;
  const post: Step[] = [];
  const xb = wideSum ? tb('XG', x) : tb('X', xin);
  if (r.sums) post.push(...modSumsSteps(g, a, r.sums, norm, { dscale, dshift, dgate, ...(r.out as { dweight?: Tensor | null; dbias?: Tensor | null }) }, temps));
  else if (narrow) {
    if (dscale || dshift) post.push(...modGradSteps(g, a, gdy, xb, [], [], norm, mp, { dscale, dshift, dgate: null }, null, temps));
    if (dgate) post.push(...modGradSteps(g, a, gdy, tb('XG', x), [tb('X', x)], ['MG_NO_DY'], { binds: [], flags: [], p: {} }, mp, { dscale: null, dshift: null, dgate }, drBind, temps));
  } else if (dscale || dshift || dgate) post.push(...modGradSteps(g, a, gdy, xb, sumBinds, sumFlags, norm, mp, { dscale, dshift, dgate }, drBind, temps));
  const plan: Plan = { op, steps: [...pre, ...r.plan.steps, ...mid, ...post, ...castDr], temps: [...temps, ...r.plan.temps], outputs: [...r.plan.outputs, dresidual, dscale, dshift, dgate] };
  checkPlan(g, op, plan);
  return { out: { ...r.out, dscale, dshift, dgate, dresidual }, plan };
}
