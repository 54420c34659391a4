/** A plain host-side tensor used by the CPU reference: row-major float32 data plus its shape. */
export interface HostTensor {
  data: Float32Array;
  shape: readonly number[];
}

export { numel } from '../tensor.ts';
