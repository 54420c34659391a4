/**
 * l2Normalize and l2NormalizeBackward's arguments (PyTorch `F.normalize`), their resolved form
 * (LpNormalizeArgs..., what every backend receives) and their checks: dim, p, eps,
 * resolved into the lanes along dim both backends take.
 */
import { ShapeError, ValueError, fmtShape } from '../errors.ts';
import type { Tensor } from '../tensor.ts';
import { lanesAlong, type Grouping } from '../grouping.ts';
import { checkOptions, checkTensor, describeValue, expectDtype, expectFloat32, expectShape } from '../validate.ts';

// ---- Public option and result types (re-exported by index.ts; the API reference documents them from here)

/** Options of {@link Norms.l2Normalize} and {@link Norms.l2NormalizeBackward} (PyTorch `F.normalize`). */
export interface L2NormalizeOptions {
  /** The dim to normalize over; negative counts from the end. Default 1 (as PyTorch). */
  dim?: number;
  /** The exponent of the norm: any finite number > 0 (2: Euclidean, 1: sum of absolute values). Default 2. */
  p?: number;
  /** Lower bound of the divisor: y = x / max(‖x‖_p, eps). A finite number >= 0. Default 1e-12. */
  eps?: number;
}

/** What {@link Norms.l2Normalize} returns. */
export type L2NormalizeResult = {
  /** x / max(‖x‖_p, eps): shape and dtype of x. */
  y: Tensor;
  /** ‖x‖_p over dim, float32, x's shape with 1 on dim (before the clamp). */
  norms: Tensor;
};

/** What {@link Norms.l2NormalizeBackward} returns. */
export type L2NormalizeBackwardResult = {
  /** Gradient with respect to x: shape and dtype of x. */
  dx: Tensor;
};

// ---- Argument checks


// ---- the resolved arguments every backend receives, and its outputs ----

/**
 * Lp normalization along `dim` (PyTorch `F.normalize`): the lanes along dim as a Grouping
 * (src/grouping.ts) [outer = ∏ x[:dim], runs = x[dim], groups = ∏ x[dim+1:], runLength = 1]:
 * lane (o, i) holds the elements (o·runs + d)·groups + i; y = x / max(‖lane‖_p, eps).
 */
export interface LpGeom extends Grouping {
  dim: number;
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

/** The options each op accepts (any other key is a ValueError naming the nearest of these). */
const KEYS = {
  l2Normalize: ['dim', 'p', 'eps'],
  l2NormalizeBackward: ['dim', 'p', 'eps'],
} as const satisfies Record<string, readonly string[]>;

type Opts = Record<string, unknown>;

/** Lanes along `dim` (LpGeom); the norms' shape is x's with 1 on dim. */
function lanes(x: Tensor, o: Opts, op: string): LpGeom {
  const rank = x.shape.length;
  if (rank < 1) throw new ShapeError(`x: ${op} expects rank >= 1, got ${fmtShape(x.shape)}`, 'x');
  const dimArg = o.dim === undefined ? 1 : o.dim;
  if (typeof dimArg !== 'number' || !Number.isInteger(dimArg) || dimArg < -rank || dimArg >= rank) {
    throw new ValueError(`dim: expected an integer in [${-rank}, ${rank - 1}] for x of shape ${fmtShape(x.shape)}, got ${describeValue(dimArg)}`, 'dim');
  }
  const dim = dimArg < 0 ? dimArg + rank : dimArg;
  const p = o.p === undefined ? 2 : o.p;
  if (typeof p !== 'number' || !Number.isFinite(p) || p <= 0) throw new ValueError(`p: expected a finite number > 0, got ${describeValue(p)}`, 'p');
  const eps = o.eps === undefined ? 1e-12 : o.eps;
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps < 0) throw new ValueError(`eps: expected a finite number >= 0, got ${describeValue(eps)}`, 'eps');
  return {
    ...lanesAlong(x.shape, dim),
    dim,
    normShape: x.shape.map((d, i) => (i === dim ? 1 : d)),
    p,
    eps,
  };
}

/** l2Normalize(x, options). `owner`: the Norms instance the tensors must belong to. */
export function l2NormalizeArgs(owner: object, x: unknown, options: unknown = {}): LpNormalizeArgs {
  const o = checkOptions(options, 'l2Normalize', KEYS.l2Normalize);
  const xt = checkTensor(x, 'x', owner);
  return { ...lanes(xt, o, 'l2Normalize'), x: xt };
}

/** l2NormalizeBackward(dy, x, norms, options). */
export function l2NormalizeBackwardArgs(owner: object, dy: unknown, x: unknown, norms: unknown, options: unknown = {}): LpNormalizeBwdArgs {
  const o = checkOptions(options, 'l2NormalizeBackward', KEYS.l2NormalizeBackward);
  const dyt = checkTensor(dy, 'dy', owner);
  const xt = checkTensor(x, 'x', owner);
  const nt = checkTensor(norms, 'norms', owner);
  const geom = lanes(xt, o, 'l2NormalizeBackward');
  expectShape(dyt, 'dy', xt.shape, 'the shape of x');
  expectDtype(dyt, 'dy', xt.dtype, 'x');
  expectShape(nt, 'norms', geom.normShape, 'the shape of x with 1 on dim');
  expectFloat32(nt, 'norms');
  return { ...geom, dy: dyt, x: xt, norms: nt };
}
