/**
 * Weight norm on the GPU (PyTorch `torch._weight_norm`, Salimans & Kingma 2016): w = g · v/‖v‖
 * with one L2 norm per index along dim (the Grouping [1, runs, groups, runLength] of src/grouping.ts:
 * groups slices of runs runs of runLength elements). Forward:
 * sumsq_partials, finalize_weight_norm (norms and g/‖v‖), normalize_elements scaling v.
 * Backward: grad_partials (Σ dw·v/‖v‖ = dg), weight_norm_grad_coefficients, grad_elements.
 */
import type { WeightNormArgs, WeightNormBwdArgs, WeightNormBwdOut, WeightNormOut } from '../args/weight-norm.ts';
import { WG } from './source.ts';
import { f32, tb, type Planned, type Planner, type Step } from './plan.ts';
import { applyWorkgroups, chunks, windowed } from './policy.ts';
import { groupOut, statsStep } from './steps.ts';

export function weightNorm(g: Planner, a: WeightNormArgs): Planned<WeightNormOut> {
  // Empty slices (or none): ‖v‖ over nothing is 0; no kernel runs.
  if (a.v.size === 0) return { out: { w: g.alloc(a.v.shape, a.v.dtype, 'w'), norms: g.filled(a.g.shape, 'norms', 0) }, plan: null };
  const { v, runs, groups, runLength } = a;
  const w = g.alloc(v.shape, v.dtype, 'w');
  const norms = g.alloc(a.g.shape, 'float32', 'norms');
  const ch = chunks(g, runs, groups, runLength, windowed(g, v), v.dtype);
  const part = g.temp(groups * ch.chunks * 16, 'partials');
  // g/‖v‖ per slice as a pair (a, p), g/‖v‖ = a·p with both normal (finalize.wgsl weight_norm_out).
  const scale = g.temp(groups * 8, 'scale');
  const steps: Step[] = [
    statsStep(v, null, { runs, groups, runLength }, 'sumsq_partials', part, ch),
    {
      entry: 'finalize_weight_norm',
      flags: [],
      binds: [f32('PART', part), tb('G', a.g), tb('NORMS', norms, true), f32('SCALE', scale, true)],
      p: { outputs: groups, partials: ch.chunks, groupStride: ch.chunks, partialStride: 1 },
      workgroups: Math.ceil(groups / WG),
    },
    {
      entry: 'normalize_elements',
      flags: ['SCALE_PAIR'],
      binds: [tb('X', v), tb('Y', w, true), f32('RSTD', scale)],
      p: { elements: v.size, statDiv: runLength, statMod: groups },
      workgroups: applyWorkgroups(v.size),
    },
  ];
  return { out: { w, norms }, plan: { op: 'weightNorm', steps, temps: [part, scale], outputs: [w, norms] } };
}

export function weightNormBackward(g: Planner, a: WeightNormBwdArgs): Planned<WeightNormBwdOut> {
  const { dw, v, norms, runs, groups, runLength } = a;
  const dv = g.alloc(v.shape, v.dtype, 'dv');
  const dg = g.alloc(a.g.shape, a.g.dtype, 'dg');
  const ch = chunks(g, runs, groups, runLength, windowed(g, v), v.dtype);
  const { chunks: P, chunkLength: L, chunksPerRun: Pi } = ch;
  const part = g.temp(groups * P * 16, 'partials');
  const coef = g.temp(groups * 16, 'coef');
  const temps = [part, coef];
  const post: Step[] = [];
  const dgB = groupOut(g, 'DG', dg, temps, post);
  const steps: Step[] = [
    {
      // Σ dw·(v/‖v‖) = dg itself (RSTD_RECIP: the factor 1/‖v‖ from the norms): bounded terms,
      // where Σ dw·v may pass float32 (‖v‖ near or past float32's largest value).
      entry: 'grad_partials',
      flags: ['HAS_RSTD', 'RSTD_RECIP', ...ch.flags],
      binds: [tb('DY', dw), tb('X', v), tb('RSTD', norms), f32('PART', part, true)],
      p: { runs, groups, runLength, chunks: P, chunkLength: L, chunksPerRun: Pi, groupsPerStat: 1 },
      workgroups: Math.ceil((groups * P) / WG),
    },
    {
      entry: 'weight_norm_grad_coefficients',
      flags: [],
      binds: [f32('PART', part), tb('G', a.g), tb('NORMS', norms), f32('COEF', coef, true), dgB],
      p: { outputs: groups, partials: P, groupStride: P, partialStride: 1 },
      workgroups: Math.ceil(groups / WG),
    },
    {
      entry: 'grad_elements',
      // xhat = v / |v| (COEF = (g/|v|, 0, -dg, 1/|v|), finalize-grad.wgsl FIN_BWD_WN).
      flags: ['WN_XHAT'],
      binds: [tb('DY', dw), tb('X', v), f32('COEF', coef), tb('DX', dv, true)],
      p: { elements: v.size, statDiv: runLength, statMod: groups },
      workgroups: applyWorkgroups(v.size),
    },
    ...post,
  ];
  return { out: { dv, dg }, plan: { op: 'weightNormBackward', steps, temps, outputs: [dv, dg] } };
}
