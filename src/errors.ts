/** Typed errors. Every error names the argument it is about. */
export class NormError extends Error {
  constructor(message: string, readonly argument?: string) {
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
    readonly op: string,
    readonly output: string,
    readonly shape: readonly number[],
    readonly relativeError: number,
  ) {
    super(message, output);
  }
}

export function fmtShape(shape: readonly number[] | null | undefined): string {
  return shape ? `[${shape.join(', ')}]` : 'none';
}
