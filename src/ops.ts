/** Validated, resolved arguments of each op, as both backends receive them. */
import type { Tensor, DType } from './tensor.ts';
import type { ChannelGeom, RowGeom, SliceGeom } from './validate.ts';

export interface LayerNormArgs extends RowGeom {
  x: Tensor;
  residual: Tensor | null;
  weight: Tensor | null;
  bias: Tensor | null;
  eps: number;
  /** rmsNorm: no mean subtraction, no bias. */
  rms: boolean;
}
export interface LayerNormOut { y: Tensor; mean: Tensor | null; rstd: Tensor; sum: Tensor | null }

export interface LayerNormBwdArgs extends RowGeom {
  dy: Tensor;
  x: Tensor;
  mean: Tensor | null;
  rstd: Tensor;
  weight: Tensor | null;
  bias: Tensor | null;
  rms: boolean;
}
export interface BwdOut { dx: Tensor; dweight: Tensor | null; dbias: Tensor | null }

export interface GroupNormArgs extends ChannelGeom {
  x: Tensor;
  G: number;
  weight: Tensor | null;
  bias: Tensor | null;
  eps: number;
  silu: boolean;
}
export interface GroupNormOut { y: Tensor; mean: Tensor; rstd: Tensor }

export interface GroupNormBwdArgs extends ChannelGeom {
  dy: Tensor;
  x: Tensor;
  mean: Tensor;
  rstd: Tensor;
  G: number;
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

/** What a backend implements; the public API validates and then calls exactly one of these. */
export interface Backend {
  readonly kind: 'webgpu' | 'cpu';
  tensor(data: Float32Array, shape: readonly number[], dtype: DType): Tensor;
  read(t: Tensor): Promise<Float32Array>;
  layerNorm(a: LayerNormArgs): LayerNormOut;
  layerNormBackward(a: LayerNormBwdArgs): BwdOut;
  groupNorm(a: GroupNormArgs): GroupNormOut;
  groupNormBackward(a: GroupNormBwdArgs): BwdOut;
  batchNorm(a: BatchNormArgs): BatchNormOut;
  batchNormBackward(a: BatchNormBwdArgs): BwdOut;
  weightNorm(a: WeightNormArgs): WeightNormOut;
  weightNormBackward(a: WeightNormBwdArgs): WeightNormBwdOut;
  destroy(): void;
}
