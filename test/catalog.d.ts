// Types of test/catalog.js (the one catalogue of ops, their examples, generator and tolerances
// shared by test/, bench/, e2e/ and the demo page). A new op needs no edit here: OpName follows
// the library's op table and an op's own options pass through CaseOptions' index signature.
import type { DType, Norms, Tensor } from '../src/index.ts';
import type { OPS } from '../src/op-table.ts';

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

/** The ops: the forward ops of the library's op table (src/op-table.ts), by name. */
export type OpName = Exclude<keyof typeof OPS, `${string}Backward`>;
export type Dir = 'fwd' | 'bwd';

/**
 * Options of a case that are not tensors: the keys more than one op reads, and (index signature)
 * an op's own keys (numGroups, training, p...), documented at its entry in catalog.js.
 */
export interface CaseOptions {
  /** Row ops: the normalized trailing dims (default the last dim). */
  normalizedShape?: number[];
  /** Row ops' forward: a residual added before the norm (the sum is an output). */
  residual?: boolean;
  /** Channel ops: x is [N, *spatial, C]. */
  channelsLast?: boolean;
  /** Group and instance norm: the fused activation. */
  activation?: 'silu' | null;
  eps?: number;
  /** The op's dim (its default and null's meaning at its entry). */
  dim?: number | null;
  /** false: no weight. */
  weight?: boolean;
  /** false: no bias. */
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
  /** An op's own options. */
  [key: string]: unknown;
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

/** A case of the catalogue suite (test/catalog.test.ts), seeded by the hash of its test's name. */
export interface SuiteExample {
  shape: number[];
  dtype?: DType;
  opts?: CaseOptions;
  /** The directions run, each checked alone (the backward from the reference's statistics). */
  dirs: Dir[];
}

/** A benchmark row (bench/cases.mjs turns it into a case: id, minimal bytes; fields described there). */
export interface BenchRow {
  dir: Dir;
  shape: number[];
  dtype?: DType;
  opts?: CaseOptions;
  /** Peer libraries asked to run it in the browser run ('ort', 'tfjs'). */
  peers?: string[];
  /** The workload it stands for ('transformer', 'unet', ...). */
  tag?: string;
  /** Storage bindings capped at this many bytes (bound ranges). */
  bindingBytes?: number;
  /** Other ways to compute it, timed with ours (bench/variants.mjs). */
  variants?: string[];
  /** On a CPU-class adapter, also count the GPU kernel class's traffic. */
  gpuClassTraffic?: boolean;
}

/** A case of the e2e parity page (e2e/parity.js). */
export interface ParityExample {
  /** Shown on the page and by e2e/run.mjs; starts with the op's name. */
  name: string;
  shape: number[];
  dtype?: DType;
  opts?: CaseOptions;
  /** Also the backward, from the forward's own outputs. */
  backward?: boolean;
  /** Run only with ?extended=1 (e2e/run.mjs --extended). */
  extended?: boolean;
  /** Each input's distribution, drawn in this key order; the keys are the op's inputs. */
  data: Record<string, Distribution>;
  /** The generator's seed (default hashSeed(name)). */
  seed?: number;
}

/** A case of the e2e wasm page (e2e/wasm.js), seeded by the hash of its id. */
export interface WasmExample {
  dir: Dir;
  shape: number[];
  dtype?: DType;
  opts?: CaseOptions;
}

/** An op's examples: the cases each harness runs of it. */
export interface Examples {
  /** The catalogue suite (test/catalog.test.ts). */
  suite: SuiteExample[];
  /** The benchmark's full list (bench/cases.mjs fullCases). */
  benchFull: BenchRow[];
  /** The benchmark's --quick list (bench/cases.mjs quickCases). */
  benchQuick: BenchRow[];
  /** The e2e parity page (e2e/parity.js). */
  parity: ParityExample[];
  /** The e2e wasm page (e2e/wasm.js). */
  wasm: WasmExample[];
}
export type ExampleKind = keyof Examples;

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
  /**
   * The op's own bits of a benchmark case's id (bench/cases.mjs) and table name (bench/format.mjs
   * caseName), e.g. 'G=32', 'train', 'dim=0'; absent or '': none. Saved results and
   * bench/compare.mjs match rows by id: keep the strings stable.
   */
  label?(opts: CaseOptions): string;
  examples: Examples;
}

export const CATALOG: Readonly<Record<OpName, CatalogEntry>>;
export const OP_NAMES: OpName[];
export const EXAMPLE_KINDS: readonly ExampleKind[];
export function opEntry(op: string): CatalogEntry;
/** The examples of one kind of every op, op by op, as cases { op, ...example } (fresh copies). */
export function examples<K extends ExampleKind>(kind: K): (Examples[K][number] & { op: OpName })[];

export interface CaseSpec {
  inputs: (InputSpec & Distribution)[];
  derive?: (N: Norms, T: Tensors) => Outputs;
  call: (N: Norms, T: Tensors) => Outputs;
  main: string;
  mutated: string[];
}
export function spec(c: Case, dir?: Dir, data?: Record<string, Distribution>): CaseSpec;
export function runChain(N: Norms, T: Tensors, c: Case, backward?: boolean): Outputs;
