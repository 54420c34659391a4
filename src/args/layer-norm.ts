/**
 * layerNorm, rmsNorm and their backwards' arguments, their resolved form (LayerNormArgs..., what
 * every backend receives) and their checks: every argument checked (in the
 * order the errors are reported) and resolved into the row geometry both backends take.
 */
import { ValueError } from '../errors.ts';
import type { Tensor } from '../tensor.ts';
import type { ModBackward, Modulation } from '../ops.ts';
import type { RowGeom } from '../validate.ts';
import { checkEps, checkOptions, checkTensor, expectDtype, expectFloat32, expectShape, optTensor, rowGeom } from '../validate.ts';
import { GATE_KEYS, MOD_BWD_KEYS, MOD_KEYS, modBackward, rowModulation } from './modulation.ts';
import type { ModulationBackwardOptions } from './modulation.ts';
import type { BackwardResult } from '../types.ts';

// ---- Public option and result types (re-exported by index.ts; the API reference documents them from here)

/**
 * Options of {@link Norms.layerNorm} (PyTorch `torch.nn.functional.layer_norm`). Tensors are of
 * the same dtype as x; weight and bias have shape `normalizedShape`.
 */
export interface LayerNormOptions {
  /** The trailing dims of x to normalize over, e.g. `[768]` for x `[batch, tokens, 768]`. Must match x's last dims (`ShapeError`). */
  normalizedShape: readonly number[];
  /** Elementwise scale γ, shape `normalizedShape`. Default: none (γ = 1). */
  weight?: Tensor | null;
  /** Elementwise shift β, shape `normalizedShape`. Default: none (β = 0). */
  bias?: Tensor | null;
  /** Added to the variance before the square root. Default 1e-5. Any finite number (`ValueError` otherwise). */
  eps?: number;
  /**
   * Fused residual add: normalizes s = x + residual (shape and dtype of x) and also returns s as
   * `sum`. Not in PyTorch's op; equal to `layer_norm(x + residual)`.
   */
  residual?: Tensor | null;
  /**
   * Modulation (adaLN of DiT / SD3 / Flux / PixArt; adaRMS): y = n ⊙ (scaleOffset + scale) + shift,
   * n the normalized output after weight and bias, in the same pass over x. Shape: x's rank (or
   * fewer dims, 1s assumed in front), trailing dims `normalizedShape`, each leading dim 1 or x's
   * (x `[B, T, D]`: `[B, 1, D]` per sample, `[B, T, D]` per token, `[1, 1, D]` shared); the
   * leading dims it keeps must be consecutive. float32 or float16 whatever x's dtype. scale, shift
   * and gate given together must have one shape (`ShapeError`). Default: none.
   */
  scale?: Tensor | null;
  /** Added after the scale, as {@link LayerNormOptions.scale} (shape, dtype). Default: none. */
  shift?: Tensor | null;
  /** The 1 of `(1 + scale)`: y = n ⊙ (scaleOffset + scale) + shift. Default 1 (0: a plain scale, as Lumina's). A finite number, and 1 when no scale is given (`ValueError`). */
  scaleOffset?: number;
  /**
   * Gated residual (adaLN-Zero's gate; needs `residual`, else `ValueError`): the norm's input is
   * sum = residual + gate ⊙ x, returned as `sum`. Shape as scale. Default: none (gate 1).
   */
  gate?: Tensor | null;
}

/** Options of {@link Norms.rmsNorm} (PyTorch `torch.nn.functional.rms_norm`; there is no bias). */
export interface RmsNormOptions {
  /** The trailing dims of x to normalize over. Must match x's last dims (`ShapeError`). */
  normalizedShape: readonly number[];
  /** Elementwise scale, shape `normalizedShape`. Default: none. */
  weight?: Tensor | null;
  /** Added to mean(x²). Default 1.1920929e-7 (float32 epsilon, also for float16 data, as PyTorch). */
  eps?: number;
  /** Fused residual add, as in {@link LayerNormOptions.residual}. */
  residual?: Tensor | null;
  /** Not accepted: rmsNorm has no bias (a given bias throws `ValueError`). */
  bias?: null;
  /** Modulation, as {@link LayerNormOptions.scale} (adaRMS: LTX-2's scale and shift, Lumina's scale with scaleOffset 0). */
  scale?: Tensor | null;
  /** As {@link LayerNormOptions.shift}. */
  shift?: Tensor | null;
  /** As {@link LayerNormOptions.scaleOffset}. Default 1. */
  scaleOffset?: number;
  /** As {@link LayerNormOptions.gate}. */
  gate?: Tensor | null;
}

/** Options of {@link Norms.layerNormBackward}: the forward's, without eps (and with dsum). */
export interface LayerNormBackwardOptions extends ModulationBackwardOptions {
  /** As given to the forward. */
  normalizedShape: readonly number[];
  /** The forward's weight; when given, `dweight` is returned. */
  weight?: Tensor | null;
  /** The forward's bias; when given, `dbias` is returned. */
  bias?: Tensor | null;
}

/** Options of {@link Norms.rmsNormBackward}. */
export interface RmsNormBackwardOptions extends ModulationBackwardOptions {
  /** As given to the forward. */
  normalizedShape: readonly number[];
  /** The forward's weight; when given, `dweight` is returned. */
  weight?: Tensor | null;
}

/** What {@link Norms.layerNorm} returns. */
export type LayerNormResult = {
  /** The normalized output: shape and dtype of x. */
  y: Tensor;
  /** Per-row mean, float32, shape = the leading dims of x (those before normalizedShape). */
  mean: Tensor;
  /** Per-row 1/sqrt(var + eps) (biased variance), float32, the shape of mean. */
  rstd: Tensor;
  /** With `residual` only: s = x + residual, shape and dtype of x. */
  sum?: Tensor;
};

/** What {@link Norms.rmsNorm} returns. */
export type RmsNormResult = {
  /** The normalized output: shape and dtype of x. */
  y: Tensor;
  /** Per-row 1/sqrt(mean(x²) + eps), float32, shape = the leading dims of x. */
  rstd: Tensor;
  /** With `residual` only: s = x + residual. */
  sum?: Tensor;
};

/** What {@link Norms.rmsNormBackward} returns. */
export type RmsNormBackwardResult = {
  /** Gradient with respect to x: shape and dtype of x. */
  dx: Tensor;
  /** Gradient with respect to weight, or null when no weight was given. */
  dweight: Tensor | null;
  /** As in {@link BackwardResult}. */
  dscale?: Tensor;
  /** As in {@link BackwardResult}. */
  dshift?: Tensor;
  /** As in {@link BackwardResult}. */
  dgate?: Tensor;
  /** As in {@link BackwardResult}. */
  dresidual?: Tensor;
};

// ---- Argument checks


// ---- the resolved arguments every backend receives, and its outputs ----

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

export interface RmsNormBwdOut { dx: Tensor; dweight: Tensor | null }

/** The options each op accepts (any other key is a ValueError naming the nearest of these). */
const KEYS = {
  layerNorm: ['normalizedShape', 'weight', 'bias', 'eps', 'residual', ...MOD_KEYS, ...GATE_KEYS],
  // 'bias' is listed so that it gets its own message ("rmsNorm has no bias").
  rmsNorm: ['normalizedShape', 'weight', 'bias', 'eps', 'residual', ...MOD_KEYS, ...GATE_KEYS],
  layerNormBackward: ['normalizedShape', 'weight', 'bias', ...MOD_KEYS, ...GATE_KEYS, ...MOD_BWD_KEYS],
  rmsNormBackward: ['normalizedShape', 'weight', ...MOD_KEYS, ...GATE_KEYS, ...MOD_BWD_KEYS],
} as const satisfies Record<string, readonly string[]>;

/** layerNorm(x, options). `owner`: the Norms instance the tensors must belong to. */
export function layerNormArgs(owner: object, x: unknown, options: unknown): LayerNormArgs {
  return rowArgs(owner, x, options, false);
}

/** rmsNorm(x, options): a bias is a ValueError. */
export function rmsNormArgs(owner: object, x: unknown, options: unknown): RmsNormArgs {
  const { bias: _none, ...a } = rowArgs(owner, x, options, true);
  return a;
}

function rowArgs(owner: object, xArg: unknown, options: unknown, rms: boolean): LayerNormArgs {
  const op = rms ? 'rmsNorm' : 'layerNorm';
  const o = checkOptions(options, op, KEYS[op]);
  const x = checkTensor(xArg, 'x', owner);
  const geom = rowGeom(x, o.normalizedShape);
  const weight = optTensor(o.weight, 'weight', owner);
  const bias = rms ? null : optTensor(o.bias, 'bias', owner);
  if (rms && o.bias != null) throw new ValueError('bias: rmsNorm has no bias', 'bias');
  const residual = optTensor(o.residual, 'residual', owner);
  expectShape(weight, 'weight', geom.normalizedShape, 'normalizedShape');
  expectShape(bias, 'bias', geom.normalizedShape, 'normalizedShape');
  expectShape(residual, 'residual', x.shape, 'the shape of x');
  expectDtype(residual, 'residual', x.dtype, 'x');
  const eps = checkEps(o.eps ?? (rms ? 1.1920928955078125e-7 : 1e-5));
  const mod = rowModulation(owner, o, x, geom.normalizedShape, residual);
  // Named properties first, spreads last: V8 (Node 20) builds `{ ...a, k }` on a slow path (µs per call).
  return { x, residual, weight, bias, eps, ...geom, ...mod };
}

/** layerNormBackward(dy, x, mean, rstd, options). */
export function layerNormBackwardArgs(owner: object, dy: unknown, x: unknown, mean: unknown, rstd: unknown, options: unknown): LayerNormBwdArgs {
  const { mean: m, ...a } = rowBwdArgs(owner, dy, x, mean, rstd, options, false);
  return { mean: m!, ...a };
}

/** rmsNormBackward(dy, x, rstd, options). */
export function rmsNormBackwardArgs(owner: object, dy: unknown, x: unknown, rstd: unknown, options: unknown): RmsNormBwdArgs {
  const { mean: _none, bias: _noBias, ...a } = rowBwdArgs(owner, dy, x, null, rstd, options, true);
  return a;
}

function rowBwdArgs(
  owner: object,
  dyArg: unknown,
  xArg: unknown,
  meanArg: unknown,
  rstdArg: unknown,
  options: unknown,
  rms: boolean,
): Omit<LayerNormBwdArgs, 'mean'> & { mean: Tensor | null } {
  const op = rms ? 'rmsNormBackward' : 'layerNormBackward';
  const o = checkOptions(options, op, KEYS[op]);
  const dy = checkTensor(dyArg, 'dy', owner);
  const x = checkTensor(xArg, 'x', owner);
  const mean = rms ? null : checkTensor(meanArg, 'mean', owner);
  const rstd = checkTensor(rstdArg, 'rstd', owner);
  const geom = rowGeom(x, o.normalizedShape);
  const weight = optTensor(o.weight, 'weight', owner);
  const bias = rms ? null : optTensor(o.bias, 'bias', owner);
  expectShape(dy, 'dy', x.shape, 'the shape of x');
  expectDtype(dy, 'dy', x.dtype, 'x');
  expectShape(mean, 'mean', geom.statShape, 'the leading dims of x');
  expectShape(rstd, 'rstd', geom.statShape, 'the leading dims of x');
  expectFloat32(mean, 'mean');
  expectFloat32(rstd, 'rstd');
  expectShape(weight, 'weight', geom.normalizedShape, 'normalizedShape');
  expectShape(bias, 'bias', geom.normalizedShape, 'normalizedShape');
  const mb = modBackward(owner, o, x);
  const mod = rowModulation(owner, o, x, geom.normalizedShape, mb.residual);
  return { dy, x, mean, rstd, weight, bias, ...geom, ...mb, ...mod };
}
