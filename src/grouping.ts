/**
 * The one vocabulary of every reduction in the library: a `Grouping`. The CPU reference, the
 * argument geometries and the GPU plans describe which elements a statistic (or an affine
 * parameter) covers with it, and the kernels' uniforms carry its fields under the same names
 * (`runs`, `groups`, `runLength`; `outer` where a kernel takes one).
 *
 * x is viewed row-major as [outer, runs, groups, runLength]. Statistic s = o·groups + j
 * (o < outer, j < groups) reduces the runs·runLength elements
 *
 *     ((o·runs + r)·groups + j)·runLength + i        r < runs, i < runLength:
 *
 * `runs` runs of `runLength` contiguous elements, one run every groups·runLength elements. A run
 * of one element is a strided lane: "reduce over a middle dim" is a grouping with runLength 1.
 *
 * | what                                        | outer       | runs        | groups | runLength    |
 * |---------------------------------------------|-------------|-------------|--------|--------------|
 * | layer/RMS norm, rows of K                   | 1           | 1           | rows   | K            |
 * | group norm [N, C, *S] (instance: G = C)     | 1           | 1           | N·G    | (C/G)·S      |
 * | group norm channels last [N, *S, C]         | N           | S           | G      | C/G          |
 * | batch norm [N, C, *S]                       | 1           | N           | C      | S            |
 * | batch norm channels last                    | 1           | N·S         | C      | 1 (lanes)    |
 * | weight norm along dim d of v                | 1           | ∏ v[:d]     | v[d]   | ∏ v[d+1:]    |
 * | l2Normalize along dim d (F.normalize)       | ∏ x[:d]     | x[d]        | ∏ x[d+1:] | 1 (lanes) |
 * | affine index of layer norm (per position)   | 1           | rows        | K      | 1            |
 * | affine index of channel norms               | 1           | N (N·S)     | C      | S (1)        |
 *
 * (A view with runs = 1 and outer > 1 is the same as one with outer·groups groups: the GPU's
 * general kernels take outer = 1, the channels-last and lane kernels an outer of their own.)
 */
export interface Grouping {
  /** Independent blocks, each with its own `groups` statistics. */
  outer: number;
  /** Runs per statistic (the strided dim). */
  runs: number;
  /** Statistics per block. */
  groups: number;
  /** Contiguous elements per run. */
  runLength: number;
}

/** A grouping from its four fields (see the table above). */
export const grouping = (outer: number, runs: number, groups: number, runLength: number): Grouping => ({ outer, runs, groups, runLength });

/** Elements per statistic. */
export const groupSize = (g: Grouping): number => g.runs * g.runLength;

/** Number of statistics. */
export const statCount = (g: Grouping): number => g.outer * g.groups;

/** Number of elements the grouping covers. */
export const elementCount = (g: Grouping): number => g.outer * g.runs * g.groups * g.runLength;

/** The statistic element idx belongs to. */
export function statOf(g: Grouping, idx: number): number {
  const run = Math.floor(idx / g.runLength);
  const j = run % g.groups;
  const o = Math.floor(run / (g.groups * g.runs));
  return o * g.groups + j;
}

/**
 * Slices of a tensor of `shape` along `dim`: one statistic per index along dim over everything
 * else (weight norm); dim null: one statistic over all of it.
 */
export function alongDim(shape: readonly number[], dim: number | null): Grouping {
  const n = shape.reduce((a, b) => a * b, 1);
  if (dim === null) return grouping(1, 1, 1, n);
  return grouping(1, prod(shape.slice(0, dim)), shape[dim]!, prod(shape.slice(dim + 1)));
}

/** Lanes along `dim`: one statistic per position of the other dims, over the elements along dim (F.normalize). */
export function lanesAlong(shape: readonly number[], dim: number): Grouping {
  return grouping(prod(shape.slice(0, dim)), shape[dim]!, prod(shape.slice(dim + 1)), 1);
}

const prod = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
