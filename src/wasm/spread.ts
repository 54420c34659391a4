/**
 * Groups of huge spread on the wasm backend. The wasm kernels form deviations x − mean in
 * float32, and where a group's standard deviation passes 2^100 (data near float32's largest
 * values: x = 3e38 in a group whose mean is −1e38) such a deviation may pass float32's range
 * (WebAssembly keeps subnormals, so a tiny rstd itself is exact there; the WebGPU kernels scale
 * such groups by 2^-24 instead, shaders/common.wgsl factor_split). An op whose saved rstd (an input
 * of a backward, or an output of a forward) has a value below 2^-100 is therefore computed by the
 * float64 reference (src/cpu/) on the same arguments, its results written to wasm tensors: exact,
 * and slow only for data no model has. Ops without a mean (RMS norm, weight norm, l2Normalize)
 * form no deviation and are never redone. Batch-norm eval subtracts running statistics that need
 * not describe x: there a running mean past 2^100 (data of the opposite sign near float32's
 * largest values make x − mean pass float32 with rstd normal) sends the op to the reference too.
 */
import { Tensor } from '../tensor.ts';
import { CpuBackend } from '../cpu/backend.ts';
import type { CpuHost } from '../cpu/host.ts';
import type { WasmContext } from './context.ts';

/** Factors below this (standard deviations past 2^100) send an op to the float64 reference. */
export const HUGE_SPREAD_RSTD = 2 ** -100;
/** Running means at least this large (in magnitude) send a batch-norm eval op to the float64 reference. */
export const HUGE_RUNNING_MEAN = 2 ** 100;

/** How an op exposes its saved rstd to the check (absent: never redone). */
export interface SpreadCheck<A, R> {
  /** A backward's saved rstd among its arguments. */
  readonly input?: (a: A) => Tensor | null | undefined;
  /** A forward's saved rstd among its outputs. */
  readonly output?: (r: R) => Tensor | null | undefined;
  /** A mean subtracted as given (batch-norm eval's running mean) among the arguments. */
  readonly mean?: (a: A) => Tensor | null | undefined;
}

/** Whether any value of t passes `test` (false for no tensor or an empty one). */
function anyValue(b: WasmContext, t: Tensor | null | undefined, test: (v: number) => boolean): boolean {
  if (!t || t.size === 0) return false;
  const v = b.values(t);
  for (let i = 0; i < v.length; i++) if (test(v[i]!)) return true;
  return false;
}
const hugeSpread = (v: number) => v < HUGE_SPREAD_RSTD;
const hugeMean = (v: number) => Math.abs(v) >= HUGE_RUNNING_MEAN;

/**
 * Runs `wasm` on b, or, where check finds a huge spread, the float64 reference `cpu` (in-place
 * arguments `mutated` restored first and updated by the reference instead).
 */
export function withSpreadCheck<A extends object, R extends object>(
  b: WasmContext,
  a: A,
  wasm: (b: WasmContext, a: A) => R,
  cpu: (c: CpuHost, a: A) => R,
  check: SpreadCheck<A, R> | undefined,
  mutated: string[],
): R {
  if (!check) return wasm(b, a);
  if ((check.input && anyValue(b, check.input(a), hugeSpread)) || (check.mean && anyValue(b, check.mean(a), hugeMean))) return viaReference(b, a, cpu, mutated);
  const args = a as Record<string, unknown>;
  const saved = mutated.map((k) => (args[k] instanceof Tensor ? Float32Array.from(b.values(args[k] as Tensor)) : null));
  const r = wasm(b, a);
  if (!check.output || !anyValue(b, check.output(r), hugeSpread)) return r;
  for (const v of Object.values(r)) if (v instanceof Tensor) v.destroy();
  mutated.forEach((k, i) => saved[i] && b.values(args[k] as Tensor).set(saved[i]!));
  return viaReference(b, a, cpu, mutated);
}

function viaReference<A extends object, R extends object>(b: WasmContext, a: A, cpu: (c: CpuHost, a: A) => R, mutated: string[]): R {
  const ref = new CpuBackend({});
  const args = a as Record<string, unknown>;
  const refArgs: Record<string, unknown> = { ...args };
  for (const [k, v] of Object.entries(args)) if (v instanceof Tensor) refArgs[k] = ref.tensor(b.values(v), v.shape, v.dtype);
  const r = cpu(ref, refArgs as A) as Record<string, unknown>;
  for (const k of mutated) if (args[k] instanceof Tensor) b.values(args[k] as Tensor).set((refArgs[k] as Tensor)._data!);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) out[k] = v instanceof Tensor ? b.tensor(v._data!, v.shape, v.dtype) : v;
  return out as R;
}
