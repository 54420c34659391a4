// Types of test/catalog.js (the one catalogue of ops, generator and tolerances shared by test/,
// bench/, e2e/ and the demo page).
import type { DType, Norms, Tensor } from '../src/index.ts';

/** Seeded generator: uniform in [0, 1), N(0, 1) normals, float32 fills of N(mean, std²). */
export interface Rng {
  /** Uniform in [0, 1). */
  uniform(): number;
  /** Standard normal N(0, 1). */
  normal(): number;
  /** n values drawn from N(mean, std²), as float32. */
  fill(n: number, mean?: number, std?: number): Float32Array;
}

/** 'stream': normals one at a time, the spare sine kept across fills; 'pairs': fill() draws whole pairs (the pages' sequence). */
export type RngVariant = 'stream' | 'pairs';

export function mulberry32(seed: number): () => number;
export function fillPairs(uniform: () => number, n: number, mean?: number, std?: number): Float32Array;
export function makeRng(seed: number, variant?: RngVariant): Rng;
export function hashSeed(s: string): number;
export function numel(shape: readonly number[]): number;

/** How one input's host data is drawn. */
export interface Distribution {
  mean: number;
  std: number;
  /** |v| (running variances). */
  abs?: boolean;
  /** |v| + 0.1. */
  positive?: boolean;
}
export function draw(rng: Rng, n: number, d: Distribution): Float32Array;

export const TOLERANCE: Readonly<Record<DType, number>>;
export const TOLERANCE_HALF_VS_CPU: number;
export const TOLERANCE_BY_OP: Readonly<Partial<Record<OpName, Partial<Record<DType, number>>>>>;
export function tolerance(op: OpName | string, dtype?: DType): number;

export const DATA: Readonly<Record<string, Distribution>>;

export type OpName = 'layerNorm' | 'rmsNorm' | 'groupNorm' | 'instanceNorm' | 'batchNorm' | 'weightNorm' | 'l2Normalize';
export type Dir = 'fwd' | 'bwd';

/** Options of a case that are not tensors. */
export interface CaseOptions {
  normalizedShape?: number[];
  numGroups?: number;
  training?: boolean;
  running?: boolean;
  residual?: boolean;
  channelsLast?: boolean;
  activation?: 'silu' | null;
  eps?: number;
  momentum?: number | null;
  numBatchesTracked?: number;
  dim?: number | null;
  /** l2Normalize: the norm's p (1 or 2; default 2). */
  p?: number;
  weight?: boolean;
  bias?: boolean;
  /** Row ops: scale and shift per sample ([B, 1, D]), per token (x's shape) or shared ([1, 1, D]). */
  modulate?: 'sample' | 'token' | 'shared';
  /** Row ops with residual: a gate of scale's shape (sum = residual + gate ⊙ x). */
  gate?: boolean;
  /** Row ops: the modulation's scaleOffset (default 1). */
  scaleOffset?: number;
  /** Row ops: dtype of scale, shift and gate (default x's). */
  modDtype?: DType;
  /** Row ops' backward: pass a dsum (the gradient reaching sum from later layers). */
  dsum?: boolean;
}

export interface Case {
  op: OpName | string;
  shape: number[];
  dtype?: DType;
  dir?: Dir;
  opts?: CaseOptions;
}

export interface InputSpec {
  name: string;
  shape: number[];
  dtype: DType;
}

export type Tensors = Record<string, Tensor>;
export type Outputs = Record<string, Tensor | null | undefined>;

export interface CatalogEntry {
  /** The inputs of one direction, in the order their data is drawn. */
  inputs(c: Case, dir: Dir): InputSpec[];
  forward(N: Norms, T: Tensors, c: Case): Outputs;
  /** Names of the forward outputs the backward takes. */
  saved: string[];
  /** S: the saved forward outputs by name. */
  backward(N: Norms, T: Tensors, S: Outputs, c: Case): Outputs;
  main: Record<Dir, string>;
  /** Inputs the op updates in place. */
  mutated(c: Case, dir: Dir): string[];
}

export const CATALOG: Readonly<Record<OpName, CatalogEntry>>;
export const OP_NAMES: OpName[];
export function opEntry(op: string): CatalogEntry;

export interface CaseSpec {
  inputs: (InputSpec & Distribution)[];
  derive?: (N: Norms, T: Tensors) => Outputs;
  call: (N: Norms, T: Tensors) => Outputs;
  main: string;
  mutated: string[];
}
export function spec(c: Case, dir?: Dir, data?: Record<string, Distribution>): CaseSpec;
export function runChain(N: Norms, T: Tensors, c: Case, backward?: boolean): Outputs;
