/**
 * Plans as data: an op builds its whole plan (kernels by entry point, flags, bindings, uniforms,
 * workgroups, temporaries) before anything is encoded; encode.ts only encodes it. Tests build
 * plans for a shape and assert on them without encoding (GpuBackend.planOnly).
 */
import type { DType, Tensor } from '../tensor.ts';
import type { BoundRange, GpuContext } from '../device/context.ts';
import type { ParamValues } from './source.ts';

/** One binding of a step: the WGSL name (X, Y, PART, ...), the buffer, its element type, whether written. */
export interface Bind {
  name: string;
  t: GPUBuffer;
  dtype: DType;
  rw?: boolean;
}

/** One windowed dispatch: invocations [t0, t1), the bound ranges, the uniform fields (window.ts). */
export interface WindowDispatch {
  t0: number;
  t1: number;
  buffers: (GPUBuffer | BoundRange)[];
  params: Record<string, number>;
}

/** One kernel dispatch of a plan (several when windowed). */
export interface Step {
  /** The shader entry point, named for what the kernel does: e.g. `welford_partials`, `normalize_elements`. */
  entry: string;
  /** Orthogonal features declared in the shader's header (HAS_W, RESIDUAL, WINDOW, ...). */
  flags: string[];
  binds: Bind[];
  /** Uniform values (source.ts LAYOUTS: the step's family packs the fields it declares). */
  p: ParamValues;
  workgroups: number;
  /** Workgroup size when not WG (the one-workgroup-per-row kernels). */
  wg?: number;
  /** WGSL extensions the kernel enables ('subgroups'). */
  enables?: string[];
  /** Set when settled: the bound-range dispatches of a step past one storage binding. */
  windows?: WindowDispatch[];
}

/** An op's complete plan: its steps in order, the temporaries released after submission, and the outputs. */
export interface Plan {
  op: string;
  steps: Step[];
  temps: GPUBuffer[];
  outputs: (Tensor | null)[];
}

export const f32 = (name: string, t: GPUBuffer, rw = false): Bind => ({ name, t, dtype: 'float32', rw });
export const tb = (name: string, t: Tensor, rw = false): Bind => ({ name, t: t._buffer!, dtype: t.dtype, rw });

/** What the plan builders need from the backend: the device, its binding limit, the test switches, allocation. */
export interface Planner {
  readonly ctx: GpuContext;
  /** Bytes of one storage binding (a multiple of 4): larger buffers are bound in ranges. */
  readonly bindLimit: number;
  /** Tests: force the row-fused ('fused') or split ('general') kernels. */
  readonly variant: 'auto' | 'fused' | 'general';
  /** Tests: 'off' keeps GPU-class adapters off the one-workgroup-per-row kernels. */
  readonly rowsKernel: 'auto' | 'off';
  /** Tests: false makes the rows kernels use the workgroup tree instead of subgroup sums. */
  readonly useSubgroups: boolean;
  /** Tests: fewer storage bindings per kernel than the device allows (modulated plans then split). */
  readonly maxStorageBindings?: number;
  /** A new output tensor (poisoned with NaN when the backend poisons). */
  alloc(shape: readonly number[], dtype: DType, label: string): Tensor;
  /** A new tensor holding `value` everywhere. */
  filled(shape: readonly number[], label: string, value: number, dtype?: DType): Tensor;
  /** A temporary buffer of the plan (released after submission). */
  temp(bytes: number, label: string): GPUBuffer;
}

/** What an op's plan builder returns: its outputs, and the plan that computes them (null: nothing to run). */
export interface Planned<R> {
  out: R;
  plan: Plan | null;
}
