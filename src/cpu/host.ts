/** A plain host-side tensor used by the CPU reference: row-major float32 data plus its shape. */
export interface HostTensor {
  data: Float32Array;
  shape: readonly number[];
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function host(data: Float32Array, shape: readonly number[]): HostTensor {
  return { data, shape: [...shape] };
}
