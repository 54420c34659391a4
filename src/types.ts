/**
 * The public types several ops share: the backward ops' result, and the instance's statistics.
 * Each op's own option and result types are beside its argument checks (`src/args/<norm>.ts`);
 * index.ts re-exports them all (the API reference documents them from there).
 */
import type { Tensor } from './tensor.ts';

/** What the layer/RMS/group/instance/batch-norm backward ops return. */
export type BackwardResult = {
  /** Gradient of the loss with respect to x: shape and dtype of x. */
  dx: Tensor;
  /** Gradient with respect to weight (shape and dtype of weight), or null when no weight was given. */
  dweight: Tensor | null;
  /** Gradient with respect to bias (shape and dtype of bias), or null when no bias was given (always null for rmsNorm). */
  dbias: Tensor | null;
  /** With `scale` only: the gradient of scale (its shape and dtype), summed over the dims it broadcasts over. */
  dscale?: Tensor;
  /** With `shift` only: the gradient of shift, summed over the dims it broadcasts over. */
  dshift?: Tensor;
  /** With `gate` only: the gradient of gate, summed over the dims it broadcasts over. */
  dgate?: Tensor;
  /** With `residual` only: the gradient of the residual stream, d(sum) (+ dsum), shape and dtype of x. */
  dresidual?: Tensor;
};

/** Statistics of what this instance allocated on the GPU (wasm backend: in its memory; 0 on the cpu backend). */
export interface NormsStats {
  /** GPU buffers held by live tensors and in-flight temporaries (wasm backend: live tensors). */
  liveBuffers: number;
  /** Bytes of those buffers. */
  liveBytes: number;
}

/** Released GPU buffers a {@link Norms} instance keeps for reuse. */
export interface PoolStats {
  /** Buffers in the pool. */
  pooledBuffers: number;
  /** Their bytes (at most 256 MiB). */
  pooledBytes: number;
}
