/**
 * Argument checks shared by every op's checks (src/args/) and the facade. Everything is checked
 * before any work is encoded, so a bad call writes nothing. Each error names the argument, the
 * expected and the actual shape.
 */
import { alongDim, type Grouping } from './grouping.ts';
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

/** A value as an error message shows it: its type, and the value itself where short (`string "1e-5"`). */
export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return `${typeof v} ${String(v)}${typeof v === 'bigint' ? 'n' : ''}`;
  if (typeof v === 'function') return 'a function';
  if (typeof v === 'symbol') return 'a symbol';
  return describe(v);
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

/**
 * tensor()'s data: an array or a typed array of numbers, converted to float32. A non-number
 * element (a string from a parsed file, undefined from a hole) would become NaN unnoticed, so
 * the first one is named by its index.
 */
export function checkData(data: unknown): ArrayLike<number> {
  const isView = ArrayBuffer.isView(data);
  if (data === null || typeof data !== 'object' || typeof (data as ArrayLike<unknown>).length !== 'number' || data instanceof DataView) {
    throw new ShapeError(`data: expected an array or a typed array of numbers, got ${describeValue(data)}`, 'data');
  }
  if (isView) {
    if (data instanceof BigInt64Array || data instanceof BigUint64Array) throw new DTypeError(`data: expected numbers, got a ${data.constructor.name} (bigint elements)`, 'data');
    return data as unknown as ArrayLike<number>;
  }
  const a = data as ArrayLike<unknown>;
  for (let i = 0; i < a.length; i++) {
    if (typeof a[i] !== 'number') throw new DTypeError(`data[${i}]: expected a number, got ${describeValue(a[i])} (the first non-number of ${a.length} elements)`, 'data');
  }
  return a as ArrayLike<number>;
}

export function checkEps(eps: unknown, arg = 'eps'): number {
  if (typeof eps !== 'number') throw new ValueError(`${arg}: expected a number, got ${describeValue(eps)}`, arg);
  // Any finite eps, of either sign, as PyTorch accepts (rstd is NaN where var + eps < 0).
  if (!Number.isFinite(eps)) throw new ValueError(`${arg}: expected a finite number, got ${String(eps)}`, arg);
  return eps;
}

/**
 * An options object: undefined (no options) or a plain object whose every key is one of `known`.
 * A misspelled key would otherwise be ignored silently (an unweighted norm for `wieght`), so an
 * unknown key is a ValueError naming it and the nearest known one.
 */
export function checkOptions(o: unknown, op: string, known: readonly string[]): Record<string, unknown> {
  if (o === undefined) return {};
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new ValueError(`${op}: options must be an object, got ${describeValue(o)}`, 'options');
  for (const key of Object.keys(o)) {
    if (!known.includes(key)) {
      const near = nearest(key, known);
      const hint = near === null ? `${op} takes no options` : `did you mean ${near.name}?${near.distance > Math.max(1, Math.floor(key.length / 3)) ? ` (options of ${op}: ${known.join(', ')})` : ''}`;
      throw new ValueError(`${key}: unknown option of ${op}; ${hint}`, key);
    }
  }
  return o as Record<string, unknown>;
}

/** The known name closest to `key` by edit distance, case ignored (ties: the first listed). */
function nearest(key: string, known: readonly string[]): { name: string; distance: number } | null {
  let best: { name: string; distance: number } | null = null;
  for (const name of known) {
    const distance = editDistance(key.toLowerCase(), name.toLowerCase());
    if (!best || distance < best.distance) best = { name, distance };
  }
  return best;
}

/** Edit distance: insertions, deletions, substitutions and swaps of neighbours each count 1. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
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
  /** x (and dy) are [N, *spatial, C] rather than [N, C, *spatial]. */
  channelsLast: boolean;
}

/** The `channelsLast` option: a boolean, default false. */
export function checkChannelsLast(v: unknown): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw new ValueError(`channelsLast: expected true or false, got ${describeValue(v)}`, 'channelsLast');
  return v;
}

export function channelGeom(x: Tensor, arg: string, op: string, maxSpatial = Infinity, channelsLast = false): ChannelGeom {
  const layout = channelsLast ? '[N, *spatial, C]' : '[N, C, *spatial]';
  if (x.shape.length < 2) throw new ShapeError(`${arg}: ${op} expects ${layout} (rank >= 2), got ${fmtShape(x.shape)}`, arg);
  if (x.shape.length - 2 > maxSpatial) throw new ShapeError(`${arg}: ${op} supports at most ${maxSpatial} spatial dims, got ${fmtShape(x.shape)}`, arg);
  const r = x.shape.length;
  if (channelsLast) return { N: x.shape[0]!, C: x.shape[r - 1]!, S: numel(x.shape.slice(1, r - 1)), channelsLast };
  return { N: x.shape[0]!, C: x.shape[1]!, S: numel(x.shape.slice(2)), channelsLast };
}

/** Weight norm's slices along dim as a Grouping (src/grouping.ts): [1, ∏ v[:dim], v[dim], ∏ v[dim+1:]]. */
export interface SliceGeom extends Grouping {
  dim: number | null;
  /** g's shape: v's size on dim, 1 elsewhere (all ones for dim null). */
  gShape: number[];
}

export function sliceGeom(v: Tensor, dimArg: unknown): SliceGeom {
  const rank = v.shape.length;
  if (rank < 1) throw new ShapeError(`v: weightNorm expects rank >= 1, got ${fmtShape(v.shape)}`, 'v');
  if (dimArg === null) return { ...alongDim(v.shape, null), dim: null, gShape: v.shape.map(() => 1) };
  if (typeof dimArg !== 'number' || !Number.isInteger(dimArg) || dimArg < -rank || dimArg >= rank) {
    throw new ValueError(`dim: expected an integer in [${-rank}, ${rank - 1}] or null for v of shape ${fmtShape(v.shape)}, got ${describeValue(dimArg)}`, 'dim');
  }
  const dim = dimArg < 0 ? dimArg + rank : dimArg;
  return {
    ...alongDim(v.shape, dim),
    dim,
    gShape: v.shape.map((d, i) => (i === dim ? d : 1)),
  };
}
