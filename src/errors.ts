/** Typed errors. Every error names the argument it is about. */

/** The base class of every error the library throws; `instanceof NormError` catches them all. */
export class NormError extends Error {
  constructor(
    message: string,
    /** The argument or option the error is about (`'x'`, `'weight'`, `'eps'`, `'data'`...), when there is one. */
    readonly argument?: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** A tensor of the wrong shape or rank, or dims that do not fit together. */
export class ShapeError extends NormError {}

/** A tensor of the wrong dtype, or an unknown dtype. */
export class DTypeError extends NormError {}

/** A bad scalar option (a non-finite eps, numGroups not dividing C, a dim out of range...) or one value per channel/group. */
export class ValueError extends NormError {}

/** A tensor that was destroyed, or belongs to another createNorms instance. */
export class TensorError extends NormError {}

/** No adapter, a device that could not be created, a validation or out-of-memory error from WebGPU. */
export class DeviceError extends NormError {}

/** The GPU device was lost; call createNorms again to recover. */
export class DeviceLostError extends DeviceError {}

/** A tensor past an adapter limit (maxBufferSize), or data one invocation needs past one binding. */
export class LimitError extends NormError {}

/** verify: true found the GPU result and the CPU reference disagreeing. */
export class ParityError extends NormError {
  constructor(
    message: string,
    /** The op that was checked, e.g. `'layerNorm'`. */
    readonly op: string,
    /** The output (or in-place updated input) that differed, e.g. `'dx'` or `'runningVar'`. */
    readonly output: string,
    /** That output's shape. */
    readonly shape: readonly number[],
    /** Its relative L2 error against the CPU reference (Infinity when NaN/Inf positions differ). */
    readonly relativeError: number,
  ) {
    super(message, output);
  }
}

/** A shape as error messages print it: `[2, 3]`, or `none`. */
export function fmtShape(shape: readonly number[] | null | undefined): string {
  return shape ? `[${shape.join(', ')}]` : 'none';
}
