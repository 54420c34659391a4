/**
 * The op table: every public op registered once, with its argument checks (src/args/), its
 * float64 reference on the cpu backend (src/cpu/), its plan on the webgpu backend (src/kernels/),
 * its kernels on the wasm backend (src/wasm/), the inputs it updates in place, and the shape of
 * its public result. The facade (`Norms` in index.ts: one line per op, under its docstring), the
 * `verify` path (verify.ts: the same entry on the reference) and the backends read this table;
 * the test catalogue (test/catalog.js) lists the same names (test/catalog.test.ts checks it).
 *
 * To add an op: its functions in those four directories, one entry here, its method in
 * index.ts. docs/ARCHITECTURE.md, "To add a norm", lists the files.
 */
import type { Tensor } from './tensor.ts';
import type * as O from './ops.ts';
import type { BatchNormArgs, BatchNormOut } from './args/batch-norm.ts';
import type { GroupNormOut } from './args/group-norm.ts';
import type { LpNormalizeOut } from './args/l2-normalize.ts';
import type { LayerNormOut, RmsNormBwdOut, RmsNormOut } from './args/layer-norm.ts';
import type { WeightNormBwdOut, WeightNormOut } from './args/weight-norm.ts';
import type { CpuBackend } from './cpu/backend.ts';
import type { CpuHost } from './cpu/host.ts';
import type { GpuBackend } from './kernels/gpu.ts';
import type { Planned, Planner } from './kernels/plan.ts';
import type { WasmBackend } from './wasm/backend.ts';
import type { WasmContext } from './wasm/context.ts';
import { layerNormArgs, layerNormBackwardArgs, rmsNormArgs, rmsNormBackwardArgs } from './args/layer-norm.ts';
import { groupNormArgs, groupNormBackwardArgs, instanceNormArgs, instanceNormBackwardArgs } from './args/group-norm.ts';
import { batchNormArgs, batchNormBackwardArgs } from './args/batch-norm.ts';
import { weightNormArgs, weightNormBackwardArgs } from './args/weight-norm.ts';
import { l2NormalizeArgs, l2NormalizeBackwardArgs } from './args/l2-normalize.ts';
import * as cpuRows from './cpu/layer-norm.ts';
import * as cpuGroups from './cpu/group-norm.ts';
import * as cpuBatch from './cpu/batch-norm.ts';
import * as cpuWeight from './cpu/weight-norm.ts';
import * as cpuLp from './cpu/l2-normalize.ts';
import * as gpuMod from './kernels/modulated.ts';
import * as gpuGroups from './kernels/group-norm.ts';
import * as gpuBatch from './kernels/batch-norm.ts';
import * as gpuWeight from './kernels/weight-norm.ts';
import * as gpuLp from './kernels/l2-normalize.ts';
import * as wasmRows from './wasm/rows.ts';
import * as wasmChannels from './wasm/channels.ts';
import * as wasmWeight from './wasm/weight-norm.ts';
import * as wasmLp from './wasm/l2-normalize.ts';
import { withSpreadCheck, type SpreadCheck } from './wasm/spread.ts';

/** The three backends, told apart by `kind`. */
export type AnyBackend = CpuBackend | GpuBackend | WasmBackend;

/**
 * One op. `I`: the public arguments after the owner (checked as unknown), `A`: the resolved
 * arguments every backend receives, `R`: the backends' outputs, `P`: the public result.
 */
export interface OpDef<I extends unknown[], A extends object, R extends object, P extends object> {
  /** The public name, as in errors and ParityError messages. */
  readonly name: string;
  /** Checks the public arguments (typed errors naming the argument and shapes) and resolves them. */
  readonly args: (owner: object, ...inputs: I) => A;
  /** The arguments the op updates in place (batch norm's running statistics), checked by verify too. */
  readonly mutated?: (a: A) => string[];
  readonly cpu: (c: CpuHost, a: A) => R;
  readonly webgpu: (g: Planner, a: A) => Planned<R>;
  readonly wasm: (w: WasmContext, a: A) => R;
  /** Where the wasm backend finds the saved rstd, for groups of huge spread (src/wasm/spread.ts). */
  readonly spread?: SpreadCheck<A, R>;
  /** The public result from the backend's outputs (optional outputs left out where absent). */
  readonly result: (r: R) => P;
}

/** Runs op `op` on backend `b` with resolved arguments `a`; the public result. */
export function runOp<A extends object, R extends object, P extends object>(b: AnyBackend, op: OpDef<never, A, R, P>, a: A): P {
  switch (b.kind) {
    case 'cpu':
      return op.result(op.cpu(b, a));
    case 'webgpu':
      return op.result(b.run(op.webgpu(b, a)));
    case 'wasm':
      return op.result(withSpreadCheck(b, a, op.wasm, op.cpu, op.spread, op.mutated?.(a) ?? []));
  }
}

/** An entry, its types inferred and checked against each other; its name is its key in OPS. */
const op = <I extends unknown[], A extends object, R extends object, P extends object>(d: Omit<OpDef<I, A, R, P>, 'name'>) => d;

/** The entries with their names (the keys). */
function named<T extends Record<string, object>>(entries: T): { [K in keyof T]: T[K] & { readonly name: K } } {
  return Object.fromEntries(Object.entries(entries).map(([name, e]) => [name, { ...e, name }])) as { [K in keyof T]: T[K] & { readonly name: K } };
}

const asIs = <R extends object>(r: R): R => r;

/** A forward's result with the fused residual's `sum` only where it was computed. */
function withSum<T extends object>(r: T, sum: Tensor | null): T & { sum?: Tensor } {
  return sum ? { ...r, sum } : r;
}

/** A backward's result with the modulation's gradients only where their tensors were given. */
function withGrads<T extends O.ModGradsOut>(r: T) {
  const { dscale, dshift, dgate, dresidual, ...rest } = r;
  const extra: { dscale?: Tensor; dshift?: Tensor; dgate?: Tensor; dresidual?: Tensor } = {};
  if (dscale) extra.dscale = dscale;
  if (dshift) extra.dshift = dshift;
  if (dgate) extra.dgate = dgate;
  if (dresidual) extra.dresidual = dresidual;
  // One spread, then assignments: V8 (Node 20) builds { ...a, ...b } on a slow path.
  return Object.assign({ ...rest }, extra);
}

export const OPS = named({
  layerNorm: op({
    args: layerNormArgs,
    cpu: cpuRows.layerNormOp,
    webgpu: gpuMod.layerNorm,
    wasm: wasmRows.layerNorm,
    spread: { output: (r) => r.rstd },
    result: (r: LayerNormOut) => withSum({ y: r.y, mean: r.mean, rstd: r.rstd }, r.sum),
  }),
  rmsNorm: op({
    args: rmsNormArgs,
    cpu: cpuRows.rmsNormOp,
    webgpu: gpuMod.rmsNorm,
    wasm: wasmRows.rmsNorm,
    result: (r: RmsNormOut) => withSum({ y: r.y, rstd: r.rstd }, r.sum),
  }),
  layerNormBackward: op({
    args: layerNormBackwardArgs,
    cpu: cpuRows.layerNormBackwardOp,
    webgpu: gpuMod.layerNormBackward,
    wasm: wasmRows.layerNormBackward,
    spread: { input: (a) => a.rstd },
    result: withGrads<O.ModBwdOut>,
  }),
  rmsNormBackward: op({
    args: rmsNormBackwardArgs,
    cpu: cpuRows.rmsNormBackwardOp,
    webgpu: gpuMod.rmsNormBackward,
    wasm: wasmRows.rmsNormBackward,
    result: withGrads<RmsNormBwdOut & O.ModGradsOut>,
  }),
  groupNorm: op({
    args: groupNormArgs,
    cpu: cpuGroups.groupNormOp,
    webgpu: gpuMod.groupNorm,
    wasm: wasmChannels.groupNorm,
    spread: { output: (r) => r.rstd },
    result: asIs<GroupNormOut>,
  }),
  groupNormBackward: op({
    args: groupNormBackwardArgs,
    cpu: cpuGroups.groupNormBackwardOp,
    webgpu: gpuMod.groupNormBackward,
    wasm: wasmChannels.groupNormBackward,
    spread: { input: (a) => a.rstd },
    result: withGrads<O.ModBwdOut>,
  }),
  instanceNorm: op({
    args: instanceNormArgs,
    cpu: cpuGroups.instanceNormOp,
    webgpu: gpuGroups.instanceNorm,
    wasm: wasmChannels.instanceNorm,
    spread: { output: (r) => r.rstd },
    result: asIs<GroupNormOut>,
  }),
  instanceNormBackward: op({
    args: instanceNormBackwardArgs,
    cpu: cpuGroups.instanceNormBackwardOp,
    webgpu: gpuGroups.instanceNormBackward,
    wasm: wasmChannels.instanceNormBackward,
    spread: { input: (a) => a.rstd },
    result: asIs<O.BwdOut>,
  }),
  batchNorm: op({
    args: batchNormArgs,
    mutated: (a: BatchNormArgs) => (a.training ? ['runningMean', 'runningVar'] : []),
    cpu: cpuBatch.batchNormOp,
    webgpu: gpuBatch.batchNorm,
    wasm: wasmChannels.batchNorm,
    spread: { output: (r) => r.saveInvstd, mean: (a) => (a.training ? null : a.runningMean) },
    result: asIs<BatchNormOut>,
  }),
  batchNormBackward: op({
    args: batchNormBackwardArgs,
    cpu: cpuBatch.batchNormBackwardOp,
    webgpu: gpuBatch.batchNormBackward,
    wasm: wasmChannels.batchNormBackward,
    spread: { input: (a) => (a.training ? a.saveInvstd : null), mean: (a) => (a.training ? null : a.runningMean) },
    result: asIs<O.BwdOut>,
  }),
  weightNorm: op({
    args: weightNormArgs,
    cpu: cpuWeight.weightNormOp,
    webgpu: gpuWeight.weightNorm,
    wasm: wasmWeight.weightNorm,
    result: asIs<WeightNormOut>,
  }),
  weightNormBackward: op({
    args: weightNormBackwardArgs,
    cpu: cpuWeight.weightNormBackwardOp,
    webgpu: gpuWeight.weightNormBackward,
    wasm: wasmWeight.weightNormBackward,
    result: asIs<WeightNormBwdOut>,
  }),
  l2Normalize: op({
    args: l2NormalizeArgs,
    cpu: cpuLp.l2NormalizeOp,
    webgpu: gpuLp.l2Normalize,
    wasm: wasmLp.l2Normalize,
    result: asIs<LpNormalizeOut>,
  }),
  l2NormalizeBackward: op({
    args: l2NormalizeBackwardArgs,
    cpu: cpuLp.l2NormalizeBackwardOp,
    webgpu: gpuLp.l2NormalizeBackward,
    wasm: wasmLp.l2NormalizeBackward,
    result: asIs<{ dx: Tensor }>,
  }),
});

/** The public ops' names. */
export type OpName = keyof typeof OPS;
