/**
 * The webgpu backend: tensors on the device, and `run`, which takes the plan of an op (built by
 * its norm's module — layer-norm.ts, group-norm.ts, batch-norm.ts, weight-norm.ts,
 * l2-normalize.ts, modulated.ts — as src/op-table.ts says), completes it with settle.ts `settle`
 * and encodes it with encode.ts.
 */
import { Tensor, numel, storageBytes, type DType } from '../tensor.ts';
import type { Backend } from '../ops.ts';
import type { GpuContext } from '../device/context.ts';
import { kernel, params, WG } from './source.ts';
import { LimitError, ValueError } from '../errors.ts';
import { packHalves, unpackHalves } from '../half.ts';
import { profileName } from './traffic.ts';
import type { Plan, Planned, Planner } from './plan.ts';
import { settle } from './settle.ts';
import { encode } from './encode.ts';

export { chunking, rowsBwdBlocks, rowsPlan } from './policy.ts';

export class GpuBackend implements Backend, Planner {
  readonly kind = 'webgpu' as const;
  /** Fill new outputs with NaN before the kernels run (tests: an unwritten element cannot pass). */
  poison = false;
  /** Force a path for tests: 'fused' | 'general' | 'auto'. */
  variant: 'auto' | 'fused' | 'general' = 'auto';

  /** Bytes of one storage binding (a multiple of 4): larger buffers are bound in ranges. */
  bindLimit: number;

  /** Tests: the one-workgroup-per-row kernels on GPU-class adapters ('off': the split kernels). */
  rowsKernel: 'auto' | 'off' = 'auto';
  /** Tests: subgroup sums in those kernels where the device has 'subgroups' (false: the workgroup tree). */
  useSubgroups = true;
  /** Tests: fewer storage bindings per kernel than the device allows (modulated plans split as on a device with WebGPU's default 8). */
  maxStorageBindings: number | undefined = undefined;

  /** Submit the batched ops now (tensor.buffer handed out). */
  private readonly flush = (): void => this.ctx.flush();

  constructor(readonly ctx: GpuContext, private readonly owner: object) {
    this.bindLimit = Math.floor(ctx.device.limits.maxStorageBufferBindingSize / 4) * 4;
  }

  setBindingLimit(bytes: number): void {
    const align = this.ctx.device.limits.minStorageBufferOffsetAlignment;
    if (!Number.isInteger(bytes) || bytes < 4 * align) throw new ValueError(`maxBindingBytes: ${bytes} must be an integer of at least ${4 * align} bytes (4 × minStorageBufferOffsetAlignment)`, 'maxBindingBytes');
    this.bindLimit = Math.min(this.bindLimit, Math.floor(bytes / 4) * 4);
  }

  /** Plans recorded instead of encoded (planOnly). */
  private recorded: Plan[] | null = null;

  /** Runs an op's plan: settles it, then encodes it (or records it, inside planOnly). */
  run<R>({ out, plan }: Planned<R>): R {
    if (!plan) return out;
    settle(this, plan);
    if (this.recorded) this.recorded.push(plan);
    else encode(this.ctx, plan);
    return out;
  }

  /**
   * The settled plans of the ops `fn` issues, without encoding or submitting anything (tests:
   * assert on dispatches, entry points and bindings for a shape). The ops' outputs and
   * temporaries are released afterwards.
   */
  planOnly(fn: () => unknown): Plan[] {
    const outer = this.recorded;
    const plans: Plan[] = [];
    this.recorded = plans;
    try {
      this.transaction(() => {
        fn();
        throw PLAN_ONLY;
      });
    } catch (e) {
      if (e !== PLAN_ONLY) throw e;
    } finally {
      this.recorded = outer;
    }
    return plans;
  }

  // ---- tensors ----

  alloc(shape: readonly number[], dtype: DType, label: string): Tensor {
    const bytes = storageBytes(numel(shape), dtype);
    this.checkLimits(bytes, shape, label);
    const buf = this.ctx.createBuffer(bytes, `webgpu-norm.${label}[${shape.join('x')}]`);
    if (this.poison) this.ctx.writeBuffer(buf, 0, new Uint32Array(buf.size / 4).fill(0xffffffff));
    const t = new Tensor(this.owner, shape, dtype, { buffer: buf }, true);
    t._onDestroy = () => this.ctx.releaseBuffer(buf);
    t._onExport = () => this.ctx.disown(buf);
    this.made?.push(t);
    return t;
  }

  /**
   * Allocation transaction around one op: if the op throws after allocating (a temporary past a
   * device limit, say), everything it allocated is released, so a failed call leaves nothing.
   */
  private made: (Tensor | GPUBuffer)[] | null = null;
  transaction<R>(fn: () => R): R {
    const outer = this.made;
    this.made = [];
    try {
      const r = fn();
      // (Nested in another transaction: that one releases these too if it fails.)
      outer?.push(...this.made);
      return r;
    } catch (e) {
      for (const m of this.made) {
        if (m instanceof Tensor) m.destroy();
        else this.ctx.releaseBuffer(m);
      }
      throw e;
    } finally {
      this.made = outer;
    }
  }

  /**
   * A tensor must fit one buffer (maxBufferSize); one past a storage binding is bound in ranges
   * (window.ts). Element indices are u32.
   */
  checkLimits(bytes: number, shape: readonly number[], label: string): void {
    const max = this.ctx.device.limits.maxBufferSize;
    if (bytes > max) throw new LimitError(`${label}: ${bytes} bytes for shape [${shape.join(', ')}] exceed the device's maxBufferSize ${max}`, label);
    if (numel(shape) > 0xfffffff0) throw new LimitError(`${label}: shape [${shape.join(', ')}] has 2^32 elements or more (indices are u32)`, label);
  }

  tensor(data: Float32Array, shape: readonly number[], dtype: DType): Tensor {
    const t = this.alloc(shape, dtype, 'data');
    const src = dtype === 'float16' ? packHalves(data) : data;
    this.ctx.writeBuffer(t._buffer!, 0, src);
    return t;
  }

  /** A new tensor holding `value` everywhere (closed-form outputs of ops on an empty x). */
  filled(shape: readonly number[], label: string, value: number, dtype: DType = 'float32'): Tensor {
    const t = this.alloc(shape, dtype, label);
    if (t.size > 0) {
      const v = new Float32Array(t.size).fill(value);
      const src = dtype === 'float16' ? packHalves(v) : v;
      this.ctx.writeBuffer(t._buffer!, 0, src);
    }
    return t;
  }

  /** A temporary buffer of a plan (released after its submission). */
  temp(bytes: number, label: string): GPUBuffer {
    this.checkLimits(bytes, [bytes / 4], `temporary ${label}`);
    const b = this.ctx.createBuffer(bytes, `webgpu-norm.tmp.${label}`);
    this.made?.push(b);
    return b;
  }

  wrap(buffer: GPUBuffer, shape: readonly number[], dtype: DType): Tensor {
    this.checkLimits(storageBytes(numel(shape), dtype), shape, 'buffer');
    const t = new Tensor(this.owner, shape, dtype, { buffer }, false);
    t._onExport = this.flush;
    return t;
  }

  async read(t: Tensor): Promise<Float32Array> {
    const bytes = storageBytes(t.size, t.dtype);
    if (t.size === 0) return new Float32Array(0);
    const ab = await this.ctx.readBytes(t._buffer!, bytes);
    return t.dtype === 'float16' ? unpackHalves(new Uint32Array(ab), t.size) : new Float32Array(ab);
  }

  /** A vec4 copy of `n4` vec4s from src to dst: the bandwidth yardstick for the benchmarks. */
  copyKernel(src: GPUBuffer, dst: GPUBuffer, n4: number): Promise<void> {
    const k = kernel(this.ctx, 'copy', [], [
      { name: 'SRC', access: 'read', dtype: 'float32', vec4: true },
      { name: 'DST', access: 'read_write', dtype: 'float32', vec4: true },
    ]);
    const workgroups = Math.ceil(n4 / WG);
    const prof = this.ctx.profiler && workgroups > 0 ? [{ name: profileName(k.label), workgroups, bytesRead: n4 * 16, bytesWritten: n4 * 16 }] : undefined;
    return this.ctx.submit('copy', [{ kernel: k, buffers: [src, dst], params: params('copy', { elements: n4 }), workgroups }], prof);
  }

  destroy(): void {}
}

/** Thrown inside planOnly's transaction so that what the ops allocated is released. */
const PLAN_ONLY = Symbol('planOnly');
