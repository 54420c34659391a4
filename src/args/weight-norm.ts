/**
 * weightNorm and weightNormBackward's arguments: their resolved form (WeightNormArgs..., what every
 * backend receives) and their checks: dim, and g's shape against v's.
 */
import { ShapeError, fmtShape } from '../errors.ts';
import type { Tensor } from '../tensor.ts';
import { checkOptions, checkTensor, expectDtype, expectFloat32, expectShape, sliceGeom, type SliceGeom } from '../validate.ts';

// ---- Public option and result types (re-exported by index.ts; the API reference documents them from here)

/** Options of {@link Norms.weightNorm} and {@link Norms.weightNormBackward} (PyTorch `torch._weight_norm`). */
export interface WeightNormOptions {
  /**
   * The dim of v that keeps its own norm (one norm per index along it, over all other dims).
   * Negative counts from the end. `null`: one norm over all of v. Default 0.
   */
  dim?: number | null;
}

/** What {@link Norms.weightNorm} returns. */
export type WeightNormResult = {
  /** w = g · v / ‖v‖: shape and dtype of v. */
  w: Tensor;
  /** ‖v‖ per slice, float32, the shape of g. */
  norms: Tensor;
};

/** What {@link Norms.weightNormBackward} returns. */
export type WeightNormBackwardResult = {
  /** Gradient with respect to v: shape and dtype of v. */
  dv: Tensor;
  /** Gradient with respect to g: shape and dtype of g. */
  dg: Tensor;
};

// ---- Argument checks


// ---- the resolved arguments every backend receives, and its outputs ----

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

/** The options each op accepts (any other key is a ValueError naming the nearest of these). */
const KEYS = {
  weightNorm: ['dim'],
  weightNormBackward: ['dim'],
} as const satisfies Record<string, readonly string[]>;

/** weightNorm(v, g, options). `owner`: the Norms instance the tensors must belong to. */
export function weightNormArgs(owner: object, v: unknown, g: unknown, options: unknown): WeightNormArgs {
  const o = checkOptions(options, 'weightNorm', KEYS.weightNorm);
  const vt = checkTensor(v, 'v', owner);
  const gt = checkTensor(g, 'g', owner);
  const geom = sliceGeom(vt, o.dim === undefined ? 0 : o.dim);
  expectG(gt, geom, vt);
  return { ...geom, v: vt, g: gt };
}

/** weightNormBackward(dw, v, g, norms, options). */
export function weightNormBackwardArgs(owner: object, dw: unknown, v: unknown, g: unknown, norms: unknown, options: unknown): WeightNormBwdArgs {
  const o = checkOptions(options, 'weightNormBackward', KEYS.weightNormBackward);
  const dwt = checkTensor(dw, 'dw', owner);
  const vt = checkTensor(v, 'v', owner);
  const gt = checkTensor(g, 'g', owner);
  const nt = checkTensor(norms, 'norms', owner);
  const geom = sliceGeom(vt, o.dim === undefined ? 0 : o.dim);
  expectG(gt, geom, vt);
  expectShape(dwt, 'dw', vt.shape, 'the shape of v');
  expectDtype(dwt, 'dw', vt.dtype, 'v');
  expectShape(nt, 'norms', gt.shape, "g's shape");
  expectFloat32(nt, 'norms');
  return { ...geom, dw: dwt, v: vt, g: gt, norms: nt };
}

function expectG(g: Tensor, geom: SliceGeom, v: Tensor): void {
  // g may have v's rank with ones (PyTorch's layout) or be 1-D [groups] / a scalar-shaped [] for dim null.
  if (g.size !== geom.groups || !(g.shape.length === geom.gShape.length || g.shape.length <= 1)) {
    throw new ShapeError(`g: expected shape ${fmtShape(geom.gShape)} for v of shape ${fmtShape(v.shape)}, got ${fmtShape(g.shape)}`, 'g');
  }
  if (g.shape.length === geom.gShape.length && !g.shape.every((d, i) => d === geom.gShape[i])) {
    throw new ShapeError(`g: expected shape ${fmtShape(geom.gShape)} for v of shape ${fmtShape(v.shape)}, got ${fmtShape(g.shape)}`, 'g');
  }
}
