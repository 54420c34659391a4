/**
 * What the ops' resolved arguments share (each op's own resolved form is in its file in src/args/):
 * the statistic of a reduction, the modulation and its broadcast, the backward outputs common to
 * several norms, and what every backend has besides its ops.
 */
import type { Tensor, DType } from './tensor.ts';

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

/** An unmodulated backward's modulation gradients: none. */
export const NO_MOD_GRADS: ModGradsOut = { dscale: null, dshift: null, dgate: null, dresidual: null };

/** Whether a layer/RMS-norm backward takes the modulated path: scale, shift, gate, the forward's residual or dsum. */
export const hasModBackward = (a: Modulation & ModBackward): boolean => !!(a.scale || a.shift || a.gate || a.residual || a.dsum);

export interface BwdOut { dx: Tensor; dweight: Tensor | null; dbias: Tensor | null }
/** A layer/RMS/group-norm backward with the modulation's gradients. */
export type ModBwdOut = BwdOut & ModGradsOut;

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
