/**
 * The modulation's gradients of a modulated backward (modulate.ts): dscale, dshift and dgate
 * (and, with the scale folded in, dweight and dbias) as deterministic sums over the broadcast
 * dims, either from the row kernels' per-block column sums (MOD_SUMS: modulation_grad_sums,
 * finalize-grad.wgsl) or in a pass of their own (modulation_grad_partials, then weight_bias_grads).
 */
import type { Tensor } from '../tensor.ts';
import type * as O from '../ops.ts';
import { WG } from './source.ts';
import { f32, tb, type Bind, type Planner, type Step } from './plan.ts';
import { windowed } from './policy.ts';
import { dwdbStep, groupOut } from './steps.ts';
import type { ModSums } from './layer-norm-backward.ts';

/** What a modulated backward needs beside the norm's own backward arguments. */
export type ModBwdArgs = O.Modulation & O.ModBackward & { x: Tensor; dy: Tensor };

/**
 * Whether the norm's statistics are per row of the modulation's inner run (layer/RMS norm, the
 * modulation broadcast over whole rows), with weights per column.
 */
export const rowNorm = (norm: { flags: string[]; p: Record<string, number> }, a: O.Modulation): boolean =>
  norm.p.statDiv === Math.max(a.modGeom?.inner ?? 0, 1) && norm.p.weightDiv === 1 && !norm.flags.includes('CLAST');

/** Fewest rows per modulation row for the row kernels' sums (fewer: one partial per row or so, use modulation_grad_partials). */
export const MIN_RUN = 4;

/**
 * dscale, dshift, dgate and (with the modulation's scale folded in) dweight and dbias from the
 * row kernel's column partials (modulation_grad_sums, finalize-grad.wgsl).
 */
export function modSumsSteps(
  g: Planner,
  a: ModBwdArgs,
  sums: ModSums,
  norm: { binds: Bind[]; flags: string[]; p: Record<string, number> },
  outs: { dscale: Tensor | null; dshift: Tensor | null; dgate: Tensor | null; dweight?: Tensor | null; dbias?: Tensor | null },
  temps: GPUBuffer[],
): Step[] {
  const post: Step[] = [];
  const K = norm.p.statDiv!;
  const flags: string[] = [];
  const binds: Bind[] = [f32('PART', sums.part)];
  const out = (t: Tensor | null, name: string, flag: string) => {
    if (t) binds.push(groupOut(g, name, t, temps, post)), flags.push(flag);
  };
  if (a.scale) binds.push(tb('SC', a.scale)), flags.push('MS_SCALED');
  // dscale = w * sum dy*xhat + b * sum dy: the weight and bias only then.
  if (outs.dscale) for (const b of norm.binds) if (b.name === 'W' || b.name === 'B') binds.push(b), flags.push(b.name === 'W' ? 'HAS_W' : 'HAS_B');
  out(outs.dscale, 'DSC', 'MS_DSC');
  out(outs.dshift, 'DSH', 'MS_DSH');
  out(outs.dgate, 'DGT', 'MS_DGT');
  out(outs.dweight ?? null, 'DW', 'DW');
  out(outs.dbias ?? null, 'DB', 'DB');
  const step: Step = {
    entry: 'modulation_grad_sums',
    flags,
    binds,
    p: { outputs: K, partials: sums.blocks, blocksPerRun: sums.blocksPerRun, modMod: Math.max(a.modGeom!.mod, 1), scaleOffset: a.scaleOffset },
    workgroups: Math.ceil(K / WG),
  };
  return [step, ...post];
}

/** Rows of the broadcast dims one modulation_grad_partials invocation sums. */
const MOD_CHUNK = 256;

export function modGradSteps(
  g: Planner,
  a: ModBwdArgs,
  dy: Tensor,
  xb: Bind,
  sumBinds: Bind[],
  sumFlags: string[],
  norm: { binds: Bind[]; flags: string[]; p: Record<string, number> },
  mp: Record<string, number>,
  outs: { dscale: Tensor | null; dshift: Tensor | null; dgate: Tensor | null },
  dresidual: Bind | null,
  temps: GPUBuffer[],
): Step[] {
  const t = (a.scale ?? a.shift ?? a.gate)!;
  const M = t.size;
  const U = Math.max(1, Math.round(a.x.size / Math.max(M, 1)));
  // Windowed (x past one binding): chunks whose rows fit a sixteenth of one; a chunk of u spans
  // about L rows of modInner elements (L * modMod when runs are shorter than a chunk).
  const geo = a.modGeom ?? { inner: 1, div: 1, mod: 1 };
  const spread = Math.max(geo.inner, 1) * (geo.div >= MOD_CHUNK ? 1 : Math.max(geo.mod, 1));
  const cap = windowed(g, a.x) ? Math.max(1, Math.floor(g.bindLimit / (16 * 4 * spread))) : MOD_CHUNK;
  const L = Math.min(U, MOD_CHUNK, cap);
  const Pc = Math.ceil(U / L);
  const direct = Pc === 1;
  const noDy = sumFlags.includes('MG_NO_DY');
  // Row norms: no index maps per element.
  const rowsMap = rowNorm(norm, a);
  const flags = [...norm.flags, ...sumFlags, ...(rowsMap && outs.dscale ? ['MG_ROWS'] : []), ...(rowsMap && sumFlags.includes('MOD_GT') ? ['MOD_ROWS'] : []), ...(outs.dscale ? ['MG_SC'] : []), ...(outs.dgate ? ['MG_GT'] : []), ...(direct ? ['MG_DIRECT'] : [])];
  const binds: Bind[] = [...(noDy ? [] : [tb('DY', dy)]), xb, ...sumBinds, ...norm.binds];
  if (outs.dgate && dresidual) binds.push({ ...dresidual, name: 'DRT', rw: false });
  const steps: Step[] = [];
  const p = { ...norm.p, ...mp, groups: M, chunks: Pc, chunkLength: L, runLength: U };
  const post: Step[] = [];
  if (direct) {
    if (outs.dscale) binds.push(groupOut(g, 'DSC', outs.dscale, temps, post));
    if (outs.dshift) binds.push(groupOut(g, 'DSH', outs.dshift, temps, post)), flags.push('MG_SH');
    if (outs.dgate) binds.push(groupOut(g, 'DGT', outs.dgate, temps, post));
    steps.push({ entry: 'modulation_grad_partials', flags, binds, p, workgroups: Math.ceil(M / WG) });
    return [...steps, ...post];
  }
  const part = g.temp(M * Pc * 16, 'modpartials');
  temps.push(part);
  binds.push(f32('PART', part, true));
  steps.push({ entry: 'modulation_grad_partials', flags, binds, p, workgroups: Math.ceil((M * Pc) / WG) });
  // (count, Σ dy, Σ dy ⊙ n, Σ dresidual ⊙ x) per partial: dshift and dscale as dbias and dweight.
  const dw = outs.dscale && groupOut(g, 'DW', outs.dscale, temps, post);
  const db = outs.dshift && groupOut(g, 'DB', outs.dshift, temps, post);
  if (dw || db) steps.push(dwdbStep(part, M, Pc, Pc, 1, dw, db));
  if (outs.dgate) {
    const dg = groupOut(g, 'DW', outs.dgate, temps, post);
    const st = dwdbStep(part, M, Pc, Pc, 1, dg, null);
    st.flags.push('GATE_SUMS');
    steps.push(st);
  }
  return [...steps, ...post];
}
