/**
 * The float64 CPU reference of every op, forward and backward, following PyTorch
 * (docs/SEMANTICS.md), as one module: the per-family files (layer-norm.ts, group-norm.ts,
 * batch-norm.ts, weight-norm.ts, over the shared mechanism in common.ts) re-exported, and
 * `__f64`, the same implementations with Float64Array outputs (float64 inputs accepted), which
 * the finite-difference tests use.
 */
import { layerNorm64, layerNormBackward64, rmsNorm64, rmsNormBackward64 } from './layer-norm.ts';
import { groupNorm64, groupNormBackward64, instanceNorm64, instanceNormBackward64 } from './group-norm.ts';
import { batchNorm64, batchNormBackward64 } from './batch-norm.ts';
import { weightNorm64, weightNormBackward64 } from './weight-norm.ts';

export type { AnyTensor, F64Tensor } from './common.ts';
export { layerNorm, layerNormBackward, rmsNorm, rmsNormBackward } from './layer-norm.ts';
export { groupNorm, groupNormBackward, instanceNorm, instanceNormBackward } from './group-norm.ts';
export { batchNorm, batchNormBackward, type BatchNormOpts, type BatchNormBackwardOpts } from './batch-norm.ts';
export { weightNorm, weightNormBackward } from './weight-norm.ts';

/** Float64 variants: same semantics, Float64Array outputs, float32 or float64 inputs. */
export const __f64 = {
  layerNorm: layerNorm64,
  layerNormBackward: layerNormBackward64,
  rmsNorm: rmsNorm64,
  rmsNormBackward: rmsNormBackward64,
  batchNorm: batchNorm64,
  batchNormBackward: batchNormBackward64,
  groupNorm: groupNorm64,
  groupNormBackward: groupNormBackward64,
  instanceNorm: instanceNorm64,
  instanceNormBackward: instanceNormBackward64,
  weightNorm: weightNorm64,
  weightNormBackward: weightNormBackward64,
};
