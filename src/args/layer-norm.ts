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
