/**
 * The cpu backend: tensors as host Float32Arrays and every op on the float64 reference (each
 * norm's file in src/cpu/ holds its reference and its op on resolved arguments; src/op-table.ts
 * says which op is which function).
 */
import type { Tensor, DType } from '../tensor.ts';
import { CpuHost } from './host.ts';

export class CpuBackend extends CpuHost {
  readonly kind = 'cpu' as const;

  tensor(data: Float32Array, shape: readonly number[], dtype: DType): Tensor {
    return this.make(Float32Array.from(data), shape, dtype);
  }
  async read(t: Tensor): Promise<Float32Array> {
    return Float32Array.from(t._data!);
  }
  destroy(): void {}
}
