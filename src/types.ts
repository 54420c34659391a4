/**
 * The public option and result types of the {@link Norms} ops and of {@link createNorms}, with
 * their docstrings; re-exported by index.ts (the API reference documents them from here).
 */
import type { Tensor } from './tensor.ts';

/** Options of {@link createNorms}. Every key is optional; an unknown key throws a `ValueError`. */
export interface CreateNormsOptions {
  /**
   * Which implementation runs the ops. `'auto'` (default): WebGPU when a hardware adapter is
   * found, else `'wasm'` (also for CPU-emulated adapters such as SwiftShader or llvmpipe, where
   * the wasm kernels are several times faster; `norms.note` says which and why). `'webgpu'`:
   * WebGPU on whatever adapter is found (CPU-emulated ones included), or a `DeviceError`.
   * `'wasm'`: float32 WebAssembly kernels (SIMD128 where the engine has it) on the CPU, no GPU
   * objects. `'cpu'`: the float64 CPU reference (slow; for checking results).
   */
  backend?: 'auto' | 'webgpu' | 'wasm' | 'cpu';
  /**
   * wasm backend: the most threads an op may use (workers sharing the module's memory: Node's
   * worker_threads, or Web Workers on a cross-origin isolated page). `'auto'` (default): the
   * machine's cores, at most 4. `1`: none. Ops whose tensors are smaller than `threadMinBytes`
   * always run on the calling thread; results are the same bits for any number of threads.
   * Workers start at the first op large enough to use them (that op, and any op until they are
   * up, runs on one thread).
   */
  threads?: number | 'auto';
  /** wasm backend: the smallest op (bytes its kernels read) split over threads. Default 4 MiB. */
  threadMinBytes?: number;
  /** wasm backend: false forces the scalar build (no SIMD128), as on an engine without SIMD. Default true. */
  simd?: boolean;
  /**
   * A `GPUDevice` to share (e.g. ONNX Runtime Web's or TensorFlow.js's), so tensors can wrap its
   * buffers without a copy. The caller keeps ownership: `norms.destroy()` does not destroy it.
   */
  device?: GPUDevice;
  /**
   * A `navigator.gpu` stand-in to request the adapter from. Default: `navigator.gpu` (browsers).
   * In Node: `create([])` from the `webgpu` package (Dawn).
   */
  gpu?: GPU;
  /**
   * Also run the CPU reference on every op (webgpu backend) and compare: `read()` of an output,
   * and awaiting an op's result object, reject with a `ParityError` when the relative L2 error
   * exceeds 1e-4 (float32 outputs) or 2e-3 (float16 outputs). Default false. Slow: for tests.
   */
  verify?: boolean;
  /** Testing aid: fill every new output buffer with NaN before the kernels write it. Default false. */
  poisonOutputs?: boolean;
  /**
   * Testing aid: force the row-fused or the general (reduce/finalize/apply) kernels. Default `'auto'`.
   * `'fused'` takes rows of up to 8192 elements (longer ones keep the partials and their merge: one
   * invocation's sequential sums would lose precision there).
   */
  variant?: 'auto' | 'fused' | 'general';
  /**
   * Cap on the bytes of one storage binding (default and maximum: the device's
   * maxStorageBufferBindingSize). Tensors larger than this are processed in bound ranges;
   * tests set it small to exercise that on small tensors. At least 4 × minStorageBufferOffsetAlignment
   * (a `ValueError` otherwise).
   */
  maxBindingBytes?: number;
  /**
   * Which kernel family to run (webgpu backend). `'auto'` (default): detected from the adapter
   * (CPU adapters such as SwiftShader get the row-fused kernels and few long invocations;
   * GPUs get many short invocations with coalesced loads). `'cpu'` / `'gpu'` force one, e.g. to
   * test the discrete-GPU work split on SwiftShader. Results are the same within float32
   * rounding; only speed differs. A `ValueError` for any other value.
   */
  adapterClass?: 'auto' | 'cpu' | 'gpu';
  /**
   * Record what every op dispatches, for {@link Norms.profile}: per kernel its name, workgroups,
   * the tensor bytes it reads and writes, and (where the device has `'timestamp-query'`, requested
   * when this instance creates the device) its GPU time; with timestamps each kernel runs in a
   * compute pass of its own. Default false. Nothing is recorded on the cpu backend.
   */
  profile?: boolean;
  /**
   * How float16 tensors are accessed in the kernels (webgpu backend). `'auto'` (default): as
   * WGSL `f16` where the device has `'shader-f16'` (requested when this instance creates the
   * device; a caller's device must have been created with it), else packed two halves per u32
   * word and converted in the shader. `'packed'` forces the packed path (comparisons, or a driver
   * whose f16 support misbehaves); `'native'` requires `'shader-f16'` (a `ValueError` without it).
   * Both paths accumulate in f32 and round results to half the same IEEE way (NaN, ±Inf, overflow
   * past 65520), so results are the same; `norms.float16` and the profile records say which ran.
   */
  float16?: 'auto' | 'native' | 'packed';
}

/**
 * Options of {@link Norms.layerNorm} (PyTorch `torch.nn.functional.layer_norm`). Tensors are of
 * the same dtype as x; weight and bias have shape `normalizedShape`.
 */
export interface LayerNormOptions {
  /** The trailing dims of x to normalize over, e.g. `[768]` for x `[batch, tokens, 768]`. Must match x's last dims (`ShapeError`). */
  normalizedShape: readonly number[];
  /** Elementwise scale γ, shape `normalizedShape`. Default: none (γ = 1). */
  weight?: Tensor | null;
  /** Elementwise shift β, shape `normalizedShape`. Default: none (β = 0). */
  bias?: Tensor | null;
  /** Added to the variance before the square root. Default 1e-5. Any finite number (`ValueError` otherwise). */
  eps?: number;
  /**
   * Fused residual add: normalizes s = x + residual (shape and dtype of x) and also returns s as
   * `sum`. Not in PyTorch's op; equal to `layer_norm(x + residual)`.
   */
  residual?: Tensor | null;
  /**
   * Modulation (adaLN of DiT / SD3 / Flux / PixArt; adaRMS): y = n ⊙ (scaleOffset + scale) + shift,
   * n the normalized output after weight and bias, in the same pass over x. Shape: x's rank (or
   * fewer dims, 1s assumed in front), trailing dims `normalizedShape`, each leading dim 1 or x's
   * (x `[B, T, D]`: `[B, 1, D]` per sample, `[B, T, D]` per token, `[1, 1, D]` shared); the
   * leading dims it keeps must be consecutive. float32 or float16 whatever x's dtype. scale, shift
   * and gate given together must have one shape (`ShapeError`). Default: none.
   */
  scale?: Tensor | null;
  /** Added after the scale, as {@link LayerNormOptions.scale} (shape, dtype). Default: none. */
  shift?: Tensor | null;
  /** The 1 of `(1 + scale)`: y = n ⊙ (scaleOffset + scale) + shift. Default 1 (0: a plain scale, as Lumina's). A finite number (`ValueError`). */
  scaleOffset?: number;
  /**
   * Gated residual (adaLN-Zero's gate; needs `residual`, else `ValueError`): the norm's input is
   * sum = residual + gate ⊙ x, returned as `sum`. Shape as scale. Default: none (gate 1).
   */
  gate?: Tensor | null;
}

/** Options of {@link Norms.rmsNorm} (PyTorch `torch.nn.functional.rms_norm`; there is no bias). */
export interface RmsNormOptions {
  /** The trailing dims of x to normalize over. Must match x's last dims (`ShapeError`). */
  normalizedShape: readonly number[];
  /** Elementwise scale, shape `normalizedShape`. Default: none. */
  weight?: Tensor | null;
  /** Added to mean(x²). Default 1.1920929e-7 (float32 epsilon, also for float16 data, as PyTorch). */
  eps?: number;
  /** Fused residual add, as in {@link LayerNormOptions.residual}. */
  residual?: Tensor | null;
  /** Not accepted: rmsNorm has no bias (a given bias throws `ValueError`). */
  bias?: null;
  /** Modulation, as {@link LayerNormOptions.scale} (adaRMS: LTX-2's scale and shift, Lumina's scale with scaleOffset 0). */
  scale?: Tensor | null;
  /** As {@link LayerNormOptions.shift}. */
  shift?: Tensor | null;
  /** As {@link LayerNormOptions.scaleOffset}. Default 1. */
  scaleOffset?: number;
  /** As {@link LayerNormOptions.gate}. */
  gate?: Tensor | null;
}

/**
 * The modulation options of {@link Norms.layerNormBackward} and {@link Norms.rmsNormBackward}:
 * the forward's scale, shift, scaleOffset, gate and residual, and dsum.
 */
export interface ModulationBackwardOptions {
  /** The forward's scale: dy is scaled by (scaleOffset + scale), and `dscale` (shape and dtype of scale) is returned. */
  scale?: Tensor | null;
  /** The forward's shift: `dshift` (its shape and dtype) is returned. */
  shift?: Tensor | null;
  /** As given to the forward. Default 1. */
  scaleOffset?: number;
  /** The forward's gate (with residual): `dgate` (its shape and dtype) is returned, and dx is gate ⊙ d(sum). */
  gate?: Tensor | null;
  /**
   * The forward's residual: then x is the forward's x (not its sum; the sum is recomputed from x,
   * residual and gate), dx is the gradient of x, and `dresidual`, the gradient of the residual
   * stream (d(sum), shape and dtype of x), is returned as well. Without it, x is the norm's input
   * and dx its gradient, as before.
   */
  residual?: Tensor | null;
  /**
   * The gradient that reaches the forward's `sum` (or, without residual, the norm's input) from
   * elsewhere, e.g. the next block through the residual stream: added to d(sum) before the gate.
   * Shape of x, float32 or x's dtype. Default: none.
   */
  dsum?: Tensor | null;
}

/** Options of {@link Norms.layerNormBackward}: the forward's, without eps (and with dsum). */
export interface LayerNormBackwardOptions extends ModulationBackwardOptions {
  /** As given to the forward. */
  normalizedShape: readonly number[];
  /** The forward's weight; when given, `dweight` is returned. */
  weight?: Tensor | null;
  /** The forward's bias; when given, `dbias` is returned. */
  bias?: Tensor | null;
}

/** Options of {@link Norms.rmsNormBackward}. */
export interface RmsNormBackwardOptions extends ModulationBackwardOptions {
  /** As given to the forward. */
  normalizedShape: readonly number[];
  /** The forward's weight; when given, `dweight` is returned. */
  weight?: Tensor | null;
}

/**
 * Options of {@link Norms.batchNorm} (PyTorch `torch.nn.functional.batch_norm`). Every
 * per-channel tensor has shape `[C]`; running statistics are float32.
 */
export interface BatchNormOptions {
  /** true: normalize by this batch's statistics (and update the running ones); false: by runningMean/runningVar. Required. */
  training: boolean;
  /** Per-channel scale γ, shape `[C]`. Default: none. */
  weight?: Tensor | null;
  /** Per-channel shift β, shape `[C]`. Default: none. */
  bias?: Tensor | null;
  /**
   * Running mean, float32 `[C]`: read in eval; in training updated in place on the GPU,
   * rm = (1 − m)·rm + m·mean. Give both running tensors or neither; eval needs both (`ValueError`).
   */
  runningMean?: Tensor | null;
  /** Running variance, float32 `[C]`: rv = (1 − m)·rv + m·var·n/(n − 1) (unbiased, n = N·spatial). */
  runningVar?: Tensor | null;
  /** The running-average factor m. Default 0.1. `null`: cumulative average, m = 1/(numBatchesTracked + 1). */
  momentum?: number | null;
  /** Added to the variance. Default 1e-5. */
  eps?: number;
  /** Batches seen before this one (the caller keeps the count, as PyTorch's module does); used when momentum is null. Default 0. */
  numBatchesTracked?: number;
  /**
   * Memory layout of x (and dy): false (default) `[N, C, *spatial]`; true `[N, *spatial, C]`
   * (NHWC, as TensorFlow.js and ONNX Runtime Web's channels-last kernels keep activations). Read
   * in place, no transpose; per-channel tensors stay `[C]` and saved statistics keep their shapes.
   */
  channelsLast?: boolean;
}

/** Options of {@link Norms.batchNormBackward}: the forward's tensors and mode. */
export interface BatchNormBackwardOptions {
  /** The forward's mode. Required. */
  training: boolean;
  /** The forward's weight; when given, `dweight` is returned. */
  weight?: Tensor | null;
  /** The forward's bias; when given, `dbias` is returned. */
  bias?: Tensor | null;
  /** Eval: the running mean the forward used (required in eval). */
  runningMean?: Tensor | null;
  /** Eval: the running variance the forward used (required in eval). */
  runningVar?: Tensor | null;
  /** Training: the forward's `saveMean` (required in training). */
  saveMean?: Tensor | null;
  /** Training: the forward's `saveInvstd` (required in training). */
  saveInvstd?: Tensor | null;
  /** Eval: the forward's eps (recomputes 1/sqrt(runningVar + eps)). Default 1e-5. */
  eps?: number;
  /** As given to the forward: x and dy are `[N, *spatial, C]` when true. Default false. */
  channelsLast?: boolean;
}

/** Options of {@link Norms.groupNorm} (PyTorch `torch.nn.functional.group_norm`). */
export interface GroupNormOptions {
  /** G, the number of groups; must divide C (`ValueError`). */
  numGroups: number;
  /** Per-channel scale, shape `[C]`. Default: none. */
  weight?: Tensor | null;
  /** Per-channel shift, shape `[C]`. Default: none. */
  bias?: Tensor | null;
  /** Added to the variance. Default 1e-5. */
  eps?: number;
  /** Fused activation applied last (after the affine map and the modulation): `'silu'` gives y·sigmoid(y); its backward is groupNormBackward with the same option. Default none. */
  activation?: 'silu' | null;
  /**
   * Modulation (ADM's scale-shift norm, diffusers' AdaGroupNorm): y = act(n ⊙ (scaleOffset + scale) + shift)
   * per (sample, channel). Shape `[N, C]` or `[N, C, 1, ...]` (channelsLast: also `[N, 1, ..., 1, C]`);
   * N may be 1 (one value per channel for the whole batch). float32 or float16 whatever x's dtype. Default: none.
   */
  scale?: Tensor | null;
  /** As scale's shape and dtype: added after the scale. Default: none. */
  shift?: Tensor | null;
  /** y = n ⊙ (scaleOffset + scale) + shift. Default 1. */
  scaleOffset?: number;
  /**
   * Memory layout of x (and dy): false (default) `[N, C, *spatial]`; true `[N, *spatial, C]`
   * (NHWC, as TensorFlow.js and ONNX Runtime Web's channels-last kernels keep activations). Read
   * in place, no transpose; per-channel tensors stay `[C]` and saved statistics keep their shapes.
   */
  channelsLast?: boolean;
}

/** Options of {@link Norms.groupNormBackward}. */
export interface GroupNormBackwardOptions {
  /** As given to the forward. */
  numGroups: number;
  /** The forward's activation: `'silu'` takes its gradient out of dy first (x and the saved statistics recompute the activation's input). Default none. */
  activation?: 'silu' | null;
  /** The forward's scale: `dscale` (shape and dtype of scale) is returned. */
  scale?: Tensor | null;
  /** The forward's shift: `dshift` is returned. */
  shift?: Tensor | null;
  /** As given to the forward. Default 1. */
  scaleOffset?: number;
  /** The forward's weight; when given, `dweight` is returned. */
  weight?: Tensor | null;
  /** The forward's bias; when given, `dbias` is returned. */
  bias?: Tensor | null;
  /** As given to the forward: x and dy are `[N, *spatial, C]` when true. Default false. */
  channelsLast?: boolean;
}

/** Options of {@link Norms.instanceNorm} (PyTorch `torch.nn.functional.instance_norm` with use_input_stats). */
export interface InstanceNormOptions {
  /** Per-channel scale, shape `[C]`. Default: none (PyTorch's affine=False). */
  weight?: Tensor | null;
  /** Per-channel shift, shape `[C]`. Default: none. */
  bias?: Tensor | null;
  /** Added to the variance. Default 1e-5. */
  eps?: number;
  /**
   * Memory layout of x (and dy): false (default) `[N, C, *spatial]`; true `[N, *spatial, C]`
   * (NHWC, as TensorFlow.js and ONNX Runtime Web's channels-last kernels keep activations). Read
   * in place, no transpose; per-channel tensors stay `[C]` and saved statistics keep their shapes.
   */
  channelsLast?: boolean;
}

/** Options of {@link Norms.instanceNormBackward}. */
export interface InstanceNormBackwardOptions {
  /** The forward's weight; when given, `dweight` is returned. */
  weight?: Tensor | null;
  /** The forward's bias; when given, `dbias` is returned. */
  bias?: Tensor | null;
  /** As given to the forward: x and dy are `[N, *spatial, C]` when true. Default false. */
  channelsLast?: boolean;
}

/** Options of {@link Norms.weightNorm} and {@link Norms.weightNormBackward} (PyTorch `torch._weight_norm`). */
export interface WeightNormOptions {
  /**
   * The dim of v that keeps its own norm (one norm per index along it, over all other dims).
   * Negative counts from the end. `null`: one norm over all of v. Default 0.
   */
  dim?: number | null;
}

/** What {@link Norms.layerNorm} returns. */
export type LayerNormResult = {
  /** The normalized output: shape and dtype of x. */
  y: Tensor;
  /** Per-row mean, float32, shape = the leading dims of x (those before normalizedShape). */
  mean: Tensor;
  /** Per-row 1/sqrt(var + eps) (biased variance), float32, the shape of mean. */
  rstd: Tensor;
  /** With `residual` only: s = x + residual, shape and dtype of x. */
  sum?: Tensor;
};

/** What {@link Norms.rmsNorm} returns. */
export type RmsNormResult = {
  /** The normalized output: shape and dtype of x. */
  y: Tensor;
  /** Per-row 1/sqrt(mean(x²) + eps), float32, shape = the leading dims of x. */
  rstd: Tensor;
  /** With `residual` only: s = x + residual. */
  sum?: Tensor;
};

/** What {@link Norms.groupNorm} and {@link Norms.instanceNorm} return. */
export type GroupNormResult = {
  /** The normalized output: shape and dtype of x. */
  y: Tensor;
  /** Per-group mean, float32 `[N, G]` (instanceNorm: `[N, C]`). */
  mean: Tensor;
  /** Per-group 1/sqrt(var + eps), float32, the shape of mean. */
  rstd: Tensor;
};

/** What {@link Norms.batchNorm} returns. */
export type BatchNormResult = {
  /** The normalized output: shape and dtype of x. */
  y: Tensor;
  /** Training: this batch's per-channel mean, float32 `[C]`. Eval: empty, `[0]` (as PyTorch). */
  saveMean: Tensor;
  /** Training: per-channel 1/sqrt(var + eps) (biased variance), float32 `[C]`. Eval: `[0]`. */
  saveInvstd: Tensor;
};

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

/** What {@link Norms.rmsNormBackward} returns. */
export type RmsNormBackwardResult = {
  /** Gradient with respect to x: shape and dtype of x. */
  dx: Tensor;
  /** Gradient with respect to weight, or null when no weight was given. */
  dweight: Tensor | null;
  /** As in {@link BackwardResult}. */
  dscale?: Tensor;
  /** As in {@link BackwardResult}. */
  dshift?: Tensor;
  /** As in {@link BackwardResult}. */
  dgate?: Tensor;
  /** As in {@link BackwardResult}. */
  dresidual?: Tensor;
};

/** What {@link Norms.weightNorm} returns. */
export type WeightNormResult = {
  /** w = g · v / ‖v‖: shape and dtype of v. */
  w: Tensor;
  /** ‖v‖ per slice, float32, the shape of g. */
  norms: Tensor;
};

/** What {@link Norms.weightNormBackward} returns. */
export type WeightNormBackwardResult = {
  /** Gradient with respect to v: shape and dtype of v. */
  dv: Tensor;
  /** Gradient with respect to g: shape and dtype of g. */
  dg: Tensor;
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

/** Options of {@link Norms.l2Normalize} and {@link Norms.l2NormalizeBackward} (PyTorch `F.normalize`). */
export interface L2NormalizeOptions {
  /** The dim to normalize over; negative counts from the end. Default 1 (as PyTorch). */
  dim?: number;
  /** The exponent of the norm: any finite number > 0 (2: Euclidean, 1: sum of absolute values). Default 2. */
  p?: number;
  /** Lower bound of the divisor: y = x / max(‖x‖_p, eps). A finite number >= 0. Default 1e-12. */
  eps?: number;
}

/** What {@link Norms.l2Normalize} returns. */
export type L2NormalizeResult = {
  /** x / max(‖x‖_p, eps): shape and dtype of x. */
  y: Tensor;
  /** ‖x‖_p over dim, float32, x's shape with 1 on dim (before the clamp). */
  norms: Tensor;
};

/** What {@link Norms.l2NormalizeBackward} returns. */
export type L2NormalizeBackwardResult = {
  /** Gradient with respect to x: shape and dtype of x. */
  dx: Tensor;
};
