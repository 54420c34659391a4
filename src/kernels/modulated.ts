/**
 * The layer, RMS and group norm ops on the webgpu backend, as the op table (src/op-table.ts)
 * calls them: the norm's own plan (layer-norm.ts, group-norm.ts), wrapped by modulate.ts where
 * the arguments ask for scale, shift, gate, a residual with its gradient (dsum) or SiLU's
 * gradient. Without them, the norm's plan as it is.
 */
import type { Tensor } from '../tensor.ts';
import * as O from '../ops.ts';
import type { GroupNormArgs, GroupNormBwdArgs, GroupNormOut } from '../args/group-norm.ts';
import type { LayerNormArgs, LayerNormBwdArgs, LayerNormOut, RmsNormArgs, RmsNormBwdArgs, RmsNormBwdOut, RmsNormOut } from '../args/layer-norm.ts';
import { tb, type Bind, type Planned, type Planner } from './plan.ts';
import * as layer from './layer-norm.ts';
import * as layerBwd from './layer-norm-backward.ts';
import * as group from './group-norm.ts';
import { modulateBackward, modulateForward, modulated } from './modulate.ts';
import { channelMaps, channelsLast, clMaps, rowMaps } from './steps.ts';

/** The saved statistics, weight and bias of a row norm, and their index maps, for the modulation's gradients. */
function rowStats(a: RmsNormBwdArgs, mean: LayerNormBwdArgs['mean'] | null, bias: LayerNormBwdArgs['bias'] | null) {
  const binds: Bind[] = [...(mean ? [tb('MEAN', mean)] : []), tb('RSTD', a.rstd), ...(a.weight ? [tb('W', a.weight)] : []), ...(bias ? [tb('B', bias)] : [])];
  const flags = [...(mean ? ['HAS_MEAN'] : []), ...(a.weight ? ['HAS_W'] : []), ...(bias ? ['HAS_B'] : [])];
  return { binds, flags, p: rowMaps(a.rows, a.K) };
}

/** The same for group norm: statistics per (n, g), weight and bias per channel (channels first or last). */
function groupStats(a: GroupNormBwdArgs) {
  const { N, C, S, G } = a;
  const binds: Bind[] = [tb('MEAN', a.mean), tb('RSTD', a.rstd), ...(a.weight ? [tb('W', a.weight)] : []), ...(a.bias ? [tb('B', a.bias)] : [])];
  const cl = channelsLast(a);
  const flags = ['HAS_MEAN', ...(a.weight ? ['HAS_W'] : []), ...(a.bias ? ['HAS_B'] : []), ...(cl ? ['CLAST'] : [])];
  const p: Record<string, number> = cl ? clMaps(a.x.size, S * C, C, G) : channelMaps(N, C, S, G);
  return { binds, flags, p };
}

export function layerNorm(g: Planner, a: LayerNormArgs): Planned<LayerNormOut> {
  return modulateForward(g, 'layerNorm', (b) => layer.layerNorm(g, { ...a, ...b }), a);
}

export function rmsNorm(g: Planner, a: RmsNormArgs): Planned<RmsNormOut> {
  return modulateForward(g, 'rmsNorm', (b) => layer.rmsNorm(g, { ...a, ...b }), a);
}

export function layerNormBackward(g: Planner, a: LayerNormBwdArgs): Planned<O.ModBwdOut> {
  if (!O.hasModBackward(a)) return withNoGrads(layerBwd.layerNormBackward(g, a));
  return modulateBackward(g, 'layerNormBackward', a, (dy, x, runs) => layerBwd.layerNormBackward(g, { ...a, dy, x }, runs), rowStats(a, a.mean, a.bias), false);
}

export function rmsNormBackward(g: Planner, a: RmsNormBwdArgs): Planned<RmsNormBwdOut & O.ModGradsOut> {
  if (!O.hasModBackward(a)) return withNoGrads(layerBwd.rmsNormBackward(g, a));
  const p = modulateBackward(g, 'rmsNormBackward', a, (dy, x, runs) => {
    const r = layerBwd.rmsNormBackward(g, { ...a, dy, x }, runs);
    return { out: { ...r.out, dbias: null }, plan: r.plan, sums: r.sums };
  }, rowStats(a, null, null), false);
  const { dbias: _none, ...out } = p.out;
  return { out, plan: p.plan };
}

export function groupNorm(g: Planner, a: GroupNormArgs): Planned<GroupNormOut> {
  return modulateForward(g, 'groupNorm', (b) => group.groupNorm(g, { ...a, ...b }), { ...a, residual: null });
}

export function groupNormBackward(g: Planner, a: GroupNormBwdArgs): Planned<O.ModBwdOut> {
  if (!modulated(a) && !a.silu) return withNoGrads(group.groupNormBackward(g, a));
  const m = { ...a, residual: null, dsum: null };
  return modulateBackward(g, 'groupNormBackward', m, (dy, x) => group.groupNormBackward(g, { ...a, dy, x }), groupStats(a), a.silu);
}

/** An unmodulated backward's plan with the modulation's gradients null. */
function withNoGrads<R extends { dx: Tensor }>(p: Planned<R>): Planned<R & O.ModGradsOut> {
  return { out: { ...p.out, ...O.NO_MOD_GRADS }, plan: p.plan };
}
