/**
 * Host-side tensors of the CPU reference: `HostTensor` (row-major float32 data plus its shape),
 * and `CpuHost`, which turns the reference's float64 results into the library's `Tensor`s
 * (rounded to the output's dtype) for the cpu backend and for `verify`'s check.
 */
import { Tensor, type DType } from '../tensor.ts';
import { roundToHalf } from '../half.ts';

/** A plain host-side tensor used by the CPU reference: row-major float32 data plus its shape. */
export interface HostTensor {
  data: Float32Array;
  shape: readonly number[];
}

export { numel } from '../tensor.ts';

/**
 * Tensors on the host for one owner (the Norms instance): what each op's reference adapter
 * (`layerNormOp` in layer-norm.ts, ...) uses to read its resolved arguments and return outputs.
 */
export class CpuHost {
  constructor(protected readonly owner: object) {}

  /** A tensor holding `data` (rounded to float16 for float16). */
  make(data: Float32Array, shape: readonly number[], dtype: DType): Tensor {
    return new Tensor(this.owner, shape, dtype, { data: dtype === 'float16' ? roundToHalf(data) : data }, true);
  }
  /** A host tensor's data as a tensor of `dtype`. */
  out(h: HostTensor, dtype: DType): Tensor {
    return this.make(h.data, h.shape, dtype);
  }
  /** A float64 result rounded to `dtype` as a tensor of `shape`. */
  out64(data: Float64Array, shape: readonly number[], dtype: DType): Tensor {
    return this.make(Float32Array.from(data), shape, dtype);
  }
  /** A tensor's data and shape (null stays null). */
  h(t: Tensor): HostTensor;
  h(t: Tensor | null): HostTensor | null;
  h(t: Tensor | null): HostTensor | null {
    return t ? { data: t._data!, shape: t.shape } : null;
  }
  /** A tensor's data (null stays null). */
  d(t: Tensor | null): Float32Array | null {
    return t ? t._data! : null;
  }
}
