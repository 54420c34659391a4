/** Validated, resolved arguments of each op, as both backends receive them. */
import type { Tensor, DType } from './tensor.ts';
import type { ChannelGeom, RowGeom, SliceGeom } from './validate.ts';

/**
 * Which statistic a reduction computes: mean and variance (Welford; layer, group, instance and
 * batch norm), the mean square (RMS norm: no mean subtraction), or the plain sum of squares
 * (weight norm's L2 norm).
 */
export type Statistic = 'meanVar' | 'rms' | 'sumsq';

/**
 * Where the modulation tensors broadcast from: element e of x uses element
 * ((e / inner / div) % mod) * inner + e % inner of scale, shift and gate (all three share it).
 */
export interface ModGeom {
  inner: number;
  div: number;
  mod: number;
}

/**
 * Modulation (adaLN / AdaGN): y = act(n ⊙ (scaleOffset + scale) + shift), n the norm's output
 * after weight and bias; gate (layer/RMS norm with residual): sum = residual + gate ⊙ x.
 * modGeom is null when none of them is given.
 */
export interface Modulation {
  scale: Tensor | null;
  shift: Tensor | null;
  gate: Tensor | null;
  scaleOffset: number;
  modGeom: ModGeom | null;
}

/** No modulation (instance norm and batch norm have none). */
export const NO_MOD: Modulation = { scale: null, shift: null, gate: null, scaleOffset: 1, modGeom: null };

/**
 * A modulated backward's extra inputs: the forward's residual (x is then the forward's x, and
 * the sum is recomputed), and dsum, the gradient reaching the forward's sum from later layers.
 */
export interface ModBackward {
  residual: Tensor | null;
  dsum: Tensor | null;
}

/** The modulation's gradients, each null where its tensor was not given. */
export interface ModGradsOut {
  dscale: Tensor | null;
  dshift: Tensor | null;
  dgate: Tensor | null;
  dresidual: Tensor | null;
}

export interface RmsNormArgs extends RowGeom, Modulation {
  x: Tensor;
  residual: Tensor | null;
  weight: Tensor | null;
  eps: number;
}
export interface LayerNormArgs extends RmsNormArgs {
  bias: Tensor | null;
}
export interface LayerNormOut { y: Tensor; mean: Tensor; rstd: Tensor; sum: Tensor | null }
export interface RmsNormOut { y: Tensor; rstd: Tensor; sum: Tensor | null }

export interface RmsNormBwdArgs extends RowGeom, Modulation, ModBackward {
  dy: Tensor;
  x: Tensor;
  rstd: Tensor;
  weight: Tensor | null;
}
export interface LayerNormBwdArgs extends RmsNormBwdArgs {
  mean: Tensor;
  bias: Tensor | null;
}
export interface BwdOut { dx: Tensor; dweight: Tensor | null; dbias: Tensor | null }
export interface RmsNormBwdOut { dx: Tensor; dweight: Tensor | null }
/** A layer/RMS/group-norm backward with the modulation's gradients. */
export type ModBwdOut = BwdOut & ModGradsOut;

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

export interface BatchNormArgs extends ChannelGeom {
  x: Tensor;
  training: boolean;
  weight: Tensor | null;
  bias: Tensor | null;
  runningMean: Tensor | null;
  runningVar: Tensor | null;
  /** Resolved momentum (null already turned into 1/(numBatchesTracked+1)). */
  momentum: number;
  eps: number;
}
export interface BatchNormOut { y: Tensor; saveMean: Tensor; saveInvstd: Tensor }

export interface BatchNormBwdArgs extends ChannelGeom {
  dy: Tensor;
  x: Tensor;
  training: boolean;
  weight: Tensor | null;
  bias: Tensor | null;
  runningMean: Tensor | null;
  runningVar: Tensor | null;
  saveMean: Tensor | null;
  saveInvstd: Tensor | null;
  eps: number;
}

export interface WeightNormArgs extends SliceGeom {
  v: Tensor;
  g: Tensor;
}
export interface WeightNormOut { w: Tensor; norms: Tensor }

export interface WeightNormBwdArgs extends SliceGeom {
  dw: Tensor;
  v: Tensor;
  g: Tensor;
  norms: Tensor;
}
export interface WeightNormBwdOut { dv: Tensor; dg: Tensor }

/**
 * Lp normalization along `dim` (PyTorch `F.normalize`): lanes (o, i) of D elements at
 * (o*D + d)*inner + i; y = x / max(‖lane‖_p, eps).
 */
export interface LpGeom {
  dim: number;
  outer: number;
  D: number;
  inner: number;
  /** The norms' shape: x's with 1 on dim. */
  normShape: number[];
  p: number;
  eps: number;
}
export interface LpNormalizeArgs extends LpGeom {
  x: Tensor;
}
export interface LpNormalizeOut { y: Tensor; norms: Tensor }
export interface LpNormalizeBwdArgs extends LpGeom {
  dy: Tensor;
  x: Tensor;
  norms: Tensor;
}

/**
 * What every backend has besides its ops (src/op-table.ts runs an op on a backend by its `kind`):
 * tensors from host data, reading them back, freeing them.
 */
export interface Backend {
  readonly kind: 'webgpu' | 'wasm' | 'cpu';
  tensor(data: Float32Array, shape: readonly number[], dtype: DType): Tensor;
  read(t: Tensor): Promise<Float32Array>;
  destroy(): void;
}
