/**
 * How the facade runs an op: on the cpu backend straight through; on the webgpu backend inside
 * one command-buffer transaction, with outputs that wait for (and fail with) their inputs'
 * producers, and with `verify: true` also on the float64 CPU reference, output by output, a
 * mismatch raising a ParityError from `read()` of an output and from awaiting the result.
 */
import { Tensor, type DType } from './tensor.ts';
import { ParityError, fmtShape } from './errors.ts';
import { CpuBackend } from './cpu/backend.ts';
import { runOp, type AnyBackend, type OpDef } from './op-table.ts';

/** Parity tolerance (relative L2) of an output by its dtype; in-place updated inputs use 1e-4. */
const REL_TOL: Record<DType, number> = { float32: 1e-4, float16: 2e-3 };

/** A backend whose ops run inside an allocation transaction and can be checked (webgpu, wasm). */
export type CheckedBackend = Exclude<AnyBackend, CpuBackend>;


export class OpRunner {
  private readonly cpuRef = new CpuBackend({});

  /** `gpu`: the webgpu or wasm backend, or null on the cpu backend (then `impl` runs every op as is). */
  constructor(
    private readonly impl: AnyBackend,
    private readonly gpu: CheckedBackend | null,
    private readonly verify: boolean,
  ) {}

  /**
   * Runs op `op` of the table with resolved arguments `args`; with verify, also on the float64
   * reference, comparing every output and the args it updates in place (`op.mutated`).
   */
  exec<A extends object, R extends object, P extends object>(op: OpDef<never, A, R, P>, args: A): P {
    const gpu = this.gpu;
    if (!gpu) return runOp(this.impl, op, args);
    const inputs = Object.values(args).filter((v): v is Tensor => v instanceof Tensor);
    const out = gpu.transaction(() => (this.verify ? this.verified(op, args, gpu) : runOp(gpu, op, args)));
    // An output is only as good as the inputs it was computed from: a failed producer (GPU
    // validation error, verify mismatch) makes the dependent outputs reject as well.
    const upstream = inputs.map((t) => t._pending).filter((p): p is Promise<void> => p !== null);
    if (upstream.length) {
      for (const t of Object.values(out)) {
        if (t instanceof Tensor) {
          t._pending = Promise.all([t._pending, ...upstream]).then(() => {});
          t._pending.catch(() => {});
        }
      }
    }
    return out;
  }

  private verified<A extends object, R extends object, P extends object>(op: OpDef<never, A, R, P>, args: A, gpu: CheckedBackend): P {
    const mutated = op.mutated?.(args) ?? [];
    // Snapshot every input on the GPU queue before the op runs (the op may update running stats).
    const snaps: [string, Tensor][] = [];
    for (const [k, v] of Object.entries(args)) if (v instanceof Tensor) snaps.push([k, v]);
    const hostIn = Promise.all(snaps.map(([, t]) => gpu.read(t)));
    const out = runOp(gpu, op, args);
    // The outputs' own completion (GPU error scopes), captured before read() is made to wait
    // for this check too: the check must not wait on itself.
    const ownDone = new Map<Tensor, Promise<void> | null>();
    for (const t of Object.values(out)) if (t instanceof Tensor) ownDone.set(t, t._pending);
    // In-place results are copied out right behind the op, before any later op can change them.
    const after = Promise.all(mutated.map((k) => (args as Record<string, Tensor | null>)[k]).map((t) => (t ? gpu.read(t) : Promise.resolve(null))));
    const check = (async () => {
      const data = await hostIn;
      const cpuArgs = { ...args } as Record<string, unknown>;
      snaps.forEach(([k, t], i) => (cpuArgs[k] = this.cpuRef.tensor(data[i]!, t.shape, t.dtype)));
      const ref = runOp(this.cpuRef, op, cpuArgs as A) as Record<string, Tensor | null>;
      const got = out as Record<string, Tensor | null>;
      for (const [name, t] of Object.entries(got)) {
        if (!(t instanceof Tensor) || !ref[name]) continue;
        await ownDone.get(t);
        compare(op.name, name, await gpu.read(t), ref[name]!._data!, t.shape, REL_TOL[t.dtype]);
      }
      const mutatedNow = await after;
      mutated.forEach((k, i) => {
        const r = cpuArgs[k] as Tensor | null;
        if (r && mutatedNow[i]) compare(op.name, k, mutatedNow[i]!, r._data!, r.shape, 1e-4);
      });
    })();
    check.catch(() => {});
    // read() of any output (and awaiting the result) reports a ParityError.
    for (const t of Object.values(out)) {
      if (t instanceof Tensor) {
        const prev = t._pending;
        t._pending = Promise.all([prev, check]).then(() => {});
        t._pending.catch(() => {});
      }
    }
    Object.defineProperty(out, 'then', {
      enumerable: false,
      configurable: true,
      value: (res: (v: P) => unknown, rej: (e: unknown) => unknown) => {
        const plain = { ...out } as P;
        return check.then(() => res(plain), rej);
      },
    });
    return out;
  }
}

/**
 * Relative L2 error ‖got − ref‖₂ / ‖ref‖₂, the measure every parity check uses. NaN and ±Inf
 * positions must match exactly (else Infinity); arrays of different lengths give Infinity.
 */
export function relativeL2(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const g = got[i]!;
    const r = ref[i]!;
    if (Number.isNaN(r) || Number.isNaN(g)) {
      if (Number.isNaN(r) !== Number.isNaN(g)) return Infinity;
      continue;
    }
    if (!Number.isFinite(r) || !Number.isFinite(g)) {
      if (r !== g) return Infinity;
      continue;
    }
    num += (g - r) ** 2;
    den += r * r;
  }
  if (got.length !== ref.length) return Infinity;
  return num === 0 ? 0 : Math.sqrt(num / Math.max(den, 1e-300));
}

function compare(op: string, output: string, got: Float32Array, ref: Float32Array, shape: readonly number[], tol: number): void {
  const err = relativeL2(got, ref);
  if (!(err <= tol)) {
    throw new ParityError(`${op}: output ${output} of shape ${fmtShape(shape)} differs from the CPU reference: relative L2 error ${err.toExponential(3)} > ${tol}`, op, output, shape, err);
  }
}
