/**
 * groupNorm, instanceNorm and their backwards' arguments: their checks and their resolved form
 * (GroupNormArgs..., what every backend receives) (instance norm is group norm
 * with one channel per group), resolved into the channel geometry both backends take.
 */
import { ValueError, fmtShape } from '../errors.ts';
import type { Tensor } from '../tensor.ts';
import { NO_MOD, type Modulation } from '../ops.ts';
import {
  channelGeom,
  checkChannelsLast,
  checkEps,
  checkOptions,
  checkTensor,
  describeValue,
  expectDtype,
  expectFloat32,
  expectShape,
  optTensor,
  type ChannelGeom,
} from '../validate.ts';
import { MOD_KEYS, groupModulation } from './modulation.ts';

// ---- Public option and result types (re-exported by index.ts; the API reference documents them from here)

/** Options of {@link Norms.groupNorm} (PyTorch `torch.nn.functional.group_norm`). */
export interface GroupNormOptions {
  /** G, the number of groups; must divide C (`ValueError`). */
  numGroups: number;
  /** Per-channel scale, shape `[C]`. Default: none. */
  weight?: Tensor | null;
  /** Per-channel shift, shape `[C]`. Default: none. */
  bias?: Tensor | null;
  /** Added to the variance. Default 1e-5. */
  eps?: number;
  /** Fused activation applied last (after the affine map and the modulation): `'silu'` gives y·sigmoid(y); its backward is groupNormBackward with the same option. Default none. */
  activation?: 'silu' | null;
  /**
   * Modulation (ADM's scale-shift norm, diffusers' AdaGroupNorm): y = act(n ⊙ (scaleOffset + scale) + shift)
   * per (sample, channel). Shape `[N, C]` or `[N, C, 1, ...]` (channelsLast: also `[N, 1, ..., 1, C]`);
   * N may be 1 (one value per channel for the whole batch). float32 or float16 whatever x's dtype. Default: none.
   */
  scale?: Tensor | null;
  /** As scale's shape and dtype: added after the scale. Default: none. */
  shift?: Tensor | null;
  /** y = n ⊙ (scaleOffset + scale) + shift. Default 1. A finite number, and 1 when no scale is given (`ValueError`). */
  scaleOffset?: number;
  /**
   * Memory layout of x (and dy): false (default) `[N, C, *spatial]`; true `[N, *spatial, C]`
   * (NHWC, as TensorFlow.js and ONNX Runtime Web's channels-last kernels keep activations). Read
   * in place, no transpose; per-channel tensors stay `[C]` and saved statistics keep their shapes.
   */
  channelsLast?: boolean;
}

/** Options of {@link Norms.groupNormBackward}. */
export interface GroupNormBackwardOptions {
  /** As given to the forward. */
  numGroups: number;
  /** The forward's activation: `'silu'` takes its gradient out of dy first (x and the saved statistics recompute the activation's input). Default none. */
  activation?: 'silu' | null;
  /** The forward's scale: `dscale` (shape and dtype of scale) is returned. */
  scale?: Tensor | null;
  /** The forward's shift: `dshift` is returned. */
  shift?: Tensor | null;
  /** As given to the forward. Default 1 (`ValueError` as the forward's). */
  scaleOffset?: number;
  /** The forward's weight; when given, `dweight` is returned. */
  weight?: Tensor | null;
  /** The forward's bias; when given, `dbias` is returned. */
  bias?: Tensor | null;
  /** As given to the forward: x and dy are `[N, *spatial, C]` when true. Default false. */
  channelsLast?: boolean;
}

/** Options of {@link Norms.instanceNorm} (PyTorch `torch.nn.functional.instance_norm` with use_input_stats). */
export interface InstanceNormOptions {
  /** Per-channel scale, shape `[C]`. Default: none (PyTorch's affine=False). */
  weight?: Tensor | null;
  /** Per-channel shift, shape `[C]`. Default: none. */
  bias?: Tensor | null;
  /** Added to the variance. Default 1e-5. */
  eps?: number;
  /**
   * Memory layout of x (and dy): false (default) `[N, C, *spatial]`; true `[N, *spatial, C]`
   * (NHWC, as TensorFlow.js and ONNX Runtime Web's channels-last kernels keep activations). Read
   * in place, no transpose; per-channel tensors stay `[C]` and saved statistics keep their shapes.
   */
  channelsLast?: boolean;
}

/** Options of {@link Norms.instanceNormBackward}. */
export interface InstanceNormBackwardOptions {
  /** The forward's weight; when given, `dweight` is returned. */
  weight?: Tensor | null;
  /** The forward's bias; when given, `dbias` is returned. */
  bias?: Tensor | null;
  /** As given to the forward: x and dy are `[N, *spatial, C]` when true. Default false. */
  channelsLast?: boolean;
}

/** What {@link Norms.groupNorm} and {@link Norms.instanceNorm} return. */
export type GroupNormResult = {
  /** The normalized output: shape and dtype of x. */
  y: Tensor;
  /** Per-group mean, float32 `[N, G]` (instanceNorm: `[N, C]`). */
  mean: Tensor;
  /** Per-group 1/sqrt(var + eps), float32, the shape of mean. */
  rstd: Tensor;
};

// ---- Argument checks


// ---- the resolved arguments every backend receives, and its outputs ----

export interface GroupNormArgs extends ChannelGeom, Modulation {
  x: Tensor;
  G: number;
  weight: Tensor | null;
  bias: Tensor | null;
  eps: number;
  silu: boolean;
}

export interface GroupNormOut { y: Tensor; mean: Tensor; rstd: Tensor }

/** Instance norm: group norm with one channel per group (numGroups = C), no activation. */
export interface InstanceNormArgs extends ChannelGeom {
  x: Tensor;
  weight: Tensor | null;
  bias: Tensor | null;
  eps: number;
}

export interface GroupNormBwdArgs extends ChannelGeom, Modulation {
  dy: Tensor;
  x: Tensor;
  mean: Tensor;
  rstd: Tensor;
  G: number;
  weight: Tensor | null;
  bias: Tensor | null;
  /** The forward's activation was SiLU: its gradient is taken out of dy first. */
  silu: boolean;
}

export interface InstanceNormBwdArgs extends ChannelGeom {
  dy: Tensor;
  x: Tensor;
  mean: Tensor;
  rstd: Tensor;
  weight: Tensor | null;
  bias: Tensor | null;
}

/** The options each op accepts (any other key is a ValueError naming the nearest of these). */
const KEYS = {
  groupNorm: ['numGroups', 'weight', 'bias', 'eps', 'activation', 'channelsLast', ...MOD_KEYS],
  groupNormBackward: ['numGroups', 'weight', 'bias', 'activation', 'channelsLast', ...MOD_KEYS],
  instanceNorm: ['weight', 'bias', 'eps', 'channelsLast'],
  instanceNormBackward: ['weight', 'bias', 'channelsLast'],
} as const satisfies Record<string, readonly string[]>;

type Opts = Record<string, unknown>;

/** groupNorm(x, options). `owner`: the Norms instance the tensors must belong to. */
export function groupNormArgs(owner: object, x: unknown, options: unknown): GroupNormArgs {
  const o = checkOptions(options, 'groupNorm', KEYS.groupNorm);
  const xt = checkTensor(x, 'x', owner);
  const geom = channelGeom(xt, 'x', 'groupNorm', Infinity, checkChannelsLast(o.channelsLast));
  const G = numGroups(o.numGroups, geom.C);
  // As PyTorch's group_norm: one value per group in the whole batch is an error; N >= 2
  // with one value per group is not (y = bias), nor an empty batch.
  if (geom.N * (geom.C / G) * geom.S === 1) throw new ValueError(`x: groupNorm expects more than 1 value per group when training, got input of shape ${fmtShape(xt.shape)} with numGroups ${G}`, 'x');
  return gnArgs(owner, xt, geom, G, o);
}

/** instanceNorm(x, options). */
export function instanceNormArgs(owner: object, x: unknown, options: unknown): InstanceNormArgs {
  const o = checkOptions(options, 'instanceNorm', KEYS.instanceNorm);
  const xt = checkTensor(x, 'x', owner);
  const geom = channelGeom(xt, 'x', 'instanceNorm', Infinity, checkChannelsLast(o.channelsLast));
  // As PyTorch's instance_norm: one spatial element is an error whatever N is.
  if (geom.S === 1) throw new ValueError(`x: instanceNorm expects more than 1 spatial element per channel when training, got input of shape ${fmtShape(xt.shape)}`, 'x');
  const { G: _g, silu: _silu, scale: _s, shift: _h, gate: _t, scaleOffset: _o, modGeom: _m, ...a } = gnArgs(owner, xt, geom, geom.C, o);
  return a;
}

function numGroups(g: unknown, C: number): number {
  if (typeof g !== 'number' || !Number.isInteger(g) || g < 1) throw new ValueError(`numGroups: expected a positive integer, got ${describeValue(g)}`, 'numGroups');
  if (C % g !== 0) throw new ValueError(`numGroups: ${g} does not divide the ${C} channels of x`, 'numGroups');
  return g;
}

function gnArgs(owner: object, x: Tensor, geom: ChannelGeom, G: number, o: Opts): GroupNormArgs {
  const weight = optTensor(o.weight, 'weight', owner);
  const bias = optTensor(o.bias, 'bias', owner);
  expectShape(weight, 'weight', [geom.C], 'one per channel');
  expectShape(bias, 'bias', [geom.C], 'one per channel');
  const silu = activation(o.activation);
  const mod = groupModulation(owner, o, x, geom);
  // Named properties first, spreads last (see rowArgs in layer-norm.ts).
  return { x, G, weight, bias, eps: checkEps(o.eps ?? 1e-5), silu, ...geom, ...mod };
}

function activation(v: unknown): boolean {
  const act = v ?? null;
  if (act !== null && act !== 'silu') throw new ValueError(`activation: expected 'silu' or null, got ${describeValue(act)}`, 'activation');
  return act === 'silu';
}

/** groupNormBackward(dy, x, mean, rstd, options). */
export function groupNormBackwardArgs(owner: object, dy: unknown, x: unknown, mean: unknown, rstd: unknown, options: unknown): GroupNormBwdArgs {
  const o = checkOptions(options, 'groupNormBackward', KEYS.groupNormBackward);
  const xt = checkTensor(x, 'x', owner);
  const geom = channelGeom(xt, 'x', 'groupNormBackward', Infinity, checkChannelsLast(o.channelsLast));
  const G = numGroups(o.numGroups, geom.C);
  return gnBwdArgs(owner, dy, xt, mean, rstd, geom, G, o);
}

/** instanceNormBackward(dy, x, mean, rstd, options). */
export function instanceNormBackwardArgs(owner: object, dy: unknown, x: unknown, mean: unknown, rstd: unknown, options: unknown): InstanceNormBwdArgs {
  const o = checkOptions(options, 'instanceNormBackward', KEYS.instanceNormBackward);
  const xt = checkTensor(x, 'x', owner);
  const geom = channelGeom(xt, 'x', 'instanceNormBackward', Infinity, checkChannelsLast(o.channelsLast));
  const { G: _g, silu: _silu, scale: _s, shift: _h, gate: _t, scaleOffset: _o, modGeom: _m, ...a } = gnBwdArgs(owner, dy, xt, mean, rstd, geom, geom.C, o);
  return a;
}

function gnBwdArgs(owner: object, dyArg: unknown, x: Tensor, meanArg: unknown, rstdArg: unknown, geom: ChannelGeom, G: number, o: Opts): GroupNormBwdArgs {
  const dy = checkTensor(dyArg, 'dy', owner);
  const mean = checkTensor(meanArg, 'mean', owner);
  const rstd = checkTensor(rstdArg, 'rstd', owner);
  const weight = optTensor(o.weight, 'weight', owner);
  const bias = optTensor(o.bias, 'bias', owner);
  expectShape(dy, 'dy', x.shape, 'the shape of x');
  expectDtype(dy, 'dy', x.dtype, 'x');
  const statShape = G === geom.C && o.numGroups === undefined ? '[N, C]' : '[N, numGroups]';
  expectShape(mean, 'mean', [geom.N, G], statShape);
  expectShape(rstd, 'rstd', [geom.N, G], statShape);
  expectFloat32(mean, 'mean');
  expectFloat32(rstd, 'rstd');
  expectShape(weight, 'weight', [geom.C], 'one per channel');
  expectShape(bias, 'bias', [geom.C], 'one per channel');
  const mod = groupModulation(owner, o, x, geom);
  return { dy, x, mean, rstd, G, weight, bias, silu: activation(o.activation), ...geom, ...mod };
}

/**
 * Instance norm as group norm (how every backend runs it): one channel per group, no activation,
 * no modulation. (Named properties first, spreads last: V8's fast path.)
 */
export const instanceAsGroupNorm = (a: InstanceNormArgs): GroupNormArgs => ({ G: a.C, silu: false, ...a, ...NO_MOD });
export const instanceAsGroupNormBackward = (a: InstanceNormBwdArgs): GroupNormBwdArgs => ({ G: a.C, silu: false, ...a, ...NO_MOD });
