/**
 * Argument checks shared by both backends. Everything is checked before any work is encoded,
 * so a bad call writes nothing. Each error names the argument, the expected and the actual shape.
 */
import { DTypeError, ShapeError, TensorError, ValueError, fmtShape } from './errors.ts';
import { Tensor, numel, type DType } from './tensor.ts';

export function checkTensor(t: unknown, arg: string, owner: object): Tensor {
  if (!(t instanceof Tensor)) throw new TensorError(`${arg}: expected a Tensor made by this createNorms instance, got ${describe(t)}`, arg);
  if (t._owner !== owner) throw new TensorError(`${arg}: tensor of shape ${fmtShape(t.shape)} belongs to another createNorms instance`, arg);
  t._check(arg);
  return t;
}

export function optTensor(t: unknown, arg: string, owner: object): Tensor | null {
  return t === undefined || t === null ? null : checkTensor(t, arg, owner);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? (v as object).constructor?.name ?? 'object' : typeof v;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function expectShape(t: Tensor | null, arg: string, expected: readonly number[], why: string): void {
  if (t && !sameShape(t.shape, expected)) throw new ShapeError(`${arg}: expected shape ${fmtShape(expected)} (${why}), got ${fmtShape(t.shape)}`, arg);
}

/** Saved statistics are float32 whatever the data dtype, as in PyTorch. */
export function expectFloat32(t: Tensor | null, arg: string): void {
  if (t && t.dtype !== 'float32') throw new DTypeError(`${arg}: saved statistics must be float32, got ${t.dtype} (shape ${fmtShape(t.shape)})`, arg);
}

export function expectDtype(t: Tensor | null, arg: string, dtype: DType, other: string): void {
  if (t && t.dtype !== dtype) throw new DTypeError(`${arg}: expected dtype ${dtype} (the dtype of ${other}), got ${t.dtype}`, arg);
}

export function checkShapeArray(shape: unknown, arg: string): number[] {
  if (!Array.isArray(shape) && !(ArrayBuffer.isView(shape) && !(shape instanceof DataView))) throw new ShapeError(`${arg}: expected an array of dims, got ${describe(shape)}`, arg);
  const dims = Array.from(shape as ArrayLike<number>);
  for (const d of dims) {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) throw new ShapeError(`${arg}: dims must be non-negative integers, got ${fmtShape(dims)}`, arg);
  }
  return dims;
}

export function checkEps(eps: unknown, arg = 'eps'): number {
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps < 0) throw new ValueError(`${arg}: expected a finite number >= 0, got ${String(eps)}`, arg);
  return eps;
}


export function checkOptions(o: unknown, op: string): Record<string, unknown> {
  if (o === undefined) return {};
  if (o === null || typeof o !== 'object') throw new ValueError(`${op}: options must be an object, got ${describe(o)}`, 'options');
  return o as Record<string, unknown>;
}

// ---- geometry per op ----

export interface RowGeom {
  rows: number;
  K: number;
  normalizedShape: number[];
  /** Shape of mean/rstd: the leading dims of x. */
  statShape: number[];
}

export function rowGeom(x: Tensor, normalizedShapeArg: unknown, arg = 'x'): RowGeom {
  const ns = checkShapeArray(normalizedShapeArg, 'normalizedShape');
  if (ns.length === 0) throw new ShapeError('normalizedShape: expected at least one dim, got []', 'normalizedShape');
  const r = x.shape.length - ns.length;
  if (r < 0 || !sameShape(x.shape.slice(r), ns)) {
    throw new ShapeError(`${arg}: shape ${fmtShape(x.shape)} does not end with normalizedShape ${fmtShape(ns)}`, arg);
  }
  const statShape = x.shape.slice(0, r);
  return { rows: numel(statShape), K: numel(ns), normalizedShape: ns, statShape };
}

export interface ChannelGeom {
  N: number;
  C: number;
  /** Product of the spatial dims (1 when there are none). */
  S: number;
}

export function channelGeom(x: Tensor, arg: string, op: string, maxSpatial = Infinity): ChannelGeom {
  if (x.shape.length < 2) throw new ShapeError(`${arg}: ${op} expects [N, C, *spatial] (rank >= 2), got ${fmtShape(x.shape)}`, arg);
  if (x.shape.length - 2 > maxSpatial) throw new ShapeError(`${arg}: ${op} supports at most ${maxSpatial} spatial dims, got ${fmtShape(x.shape)}`, arg);
  return { N: x.shape[0]!, C: x.shape[1]!, S: numel(x.shape.slice(2)) };
}

export interface SliceGeom {
  outer: number;
  D: number;
  inner: number;
  dim: number | null;
  /** g's shape: v's size on dim, 1 elsewhere (all ones for dim null). */
  gShape: number[];
}

export function sliceGeom(v: Tensor, dimArg: unknown): SliceGeom {
  const rank = v.shape.length;
  if (rank < 1) throw new ShapeError(`v: weightNorm expects rank >= 1, got ${fmtShape(v.shape)}`, 'v');
  if (dimArg === null) return { outer: 1, D: 1, inner: v.size, dim: null, gShape: v.shape.map(() => 1) };
  if (typeof dimArg !== 'number' || !Number.isInteger(dimArg) || dimArg < -rank || dimArg >= rank) {
    throw new ValueError(`dim: expected an integer in [${-rank}, ${rank - 1}] or null for v of shape ${fmtShape(v.shape)}, got ${String(dimArg)}`, 'dim');
  }
  const dim = dimArg < 0 ? dimArg + rank : dimArg;
  return {
    outer: numel(v.shape.slice(0, dim)),
    D: v.shape[dim]!,
    inner: numel(v.shape.slice(dim + 1)),
    dim,
    gShape: v.shape.map((d, i) => (i === dim ? d : 1)),
  };
}
