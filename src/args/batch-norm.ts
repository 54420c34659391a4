/**
 * batchNorm and batchNormBackward's arguments: their checks and their resolved form (BatchNormArgs...,
 * what every backend receives). Checks: the training/eval mode, the per-channel
 * tensors, running and saved statistics, momentum, resolved into the channel geometry.
 */
import { ValueError, fmtShape } from '../errors.ts';
import type { Tensor } from '../tensor.ts';
import type { ChannelGeom } from '../validate.ts';
import {
  channelGeom,
  checkChannelsLast,
  checkEps,
  checkOptions,
  checkTensor,
  describeValue,
  expectDtype,
  expectFloat32,
  expectShape,
  optTensor,
} from '../validate.ts';

// ---- Public option and result types (re-exported by index.ts; the API reference documents them from here)

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

/** What {@link Norms.batchNorm} returns. */
export type BatchNormResult = {
  /** The normalized output: shape and dtype of x. */
  y: Tensor;
  /** Training: this batch's per-channel mean, float32 `[C]`. Eval: empty, `[0]` (as PyTorch). */
  saveMean: Tensor;
  /** Training: per-channel 1/sqrt(var + eps) (biased variance), float32 `[C]`. Eval: `[0]`. */
  saveInvstd: Tensor;
};

// ---- Argument checks


// ---- the resolved arguments every backend receives, and its outputs ----

/** What batch norm's forward and backward both take: x, the mode, the affine and running tensors. */
interface BatchNormTensors extends ChannelGeom {
  x: Tensor;
  training: boolean;
  weight: Tensor | null;
  bias: Tensor | null;
  runningMean: Tensor | null;
  runningVar: Tensor | null;
  eps: number;
}

export interface BatchNormArgs extends BatchNormTensors {
  /** Resolved momentum (null already turned into 1/(numBatchesTracked+1)). */
  momentum: number;
}

export interface BatchNormOut { y: Tensor; saveMean: Tensor; saveInvstd: Tensor }

export interface BatchNormBwdArgs extends BatchNormTensors {
  dy: Tensor;
  saveMean: Tensor | null;
  saveInvstd: Tensor | null;
}

/** The options each op accepts (any other key is a ValueError naming the nearest of these). */
const KEYS = {
  batchNorm: ['training', 'weight', 'bias', 'runningMean', 'runningVar', 'momentum', 'eps', 'numBatchesTracked', 'channelsLast'],
  batchNormBackward: ['training', 'weight', 'bias', 'runningMean', 'runningVar', 'saveMean', 'saveInvstd', 'eps', 'channelsLast'],
} as const satisfies Record<string, readonly string[]>;

/** batchNorm(x, options). `owner`: the Norms instance the tensors must belong to. */
export function batchNormArgs(owner: object, x: unknown, options: unknown): BatchNormArgs {
  const o = checkOptions(options, 'batchNorm', KEYS.batchNorm);
  const xt = checkTensor(x, 'x', owner);
  const geom = channelGeom(xt, 'x', 'batchNorm', 3, checkChannelsLast(o.channelsLast));
  const training = checkTraining(o.training);
  const weight = optTensor(o.weight, 'weight', owner);
  const bias = optTensor(o.bias, 'bias', owner);
  const runningMean = optTensor(o.runningMean, 'runningMean', owner);
  const runningVar = optTensor(o.runningVar, 'runningVar', owner);
  for (const [t, n] of [[weight, 'weight'], [bias, 'bias'], [runningMean, 'runningMean'], [runningVar, 'runningVar']] as const) expectShape(t, n, [geom.C], 'one per channel');
  expectFloat32(runningMean, 'runningMean');
  expectFloat32(runningVar, 'runningVar');
  if ((runningMean === null) !== (runningVar === null)) throw new ValueError('runningMean/runningVar: give both or neither', runningMean ? 'runningVar' : 'runningMean');
  if (!training && !runningMean) throw new ValueError('runningMean: eval-mode batchNorm needs runningMean and runningVar', 'runningMean');
  // Exactly one value per channel is an error (PyTorch); an empty batch gives an empty y.
  if (training && geom.N * geom.S === 1) throw new ValueError(`x: expected more than 1 value per channel when training, got input of shape ${fmtShape(xt.shape)}`, 'x');
  const eps = checkEps(o.eps ?? 1e-5);
  let momentum: number;
  if (o.momentum === null) {
    const nbt = o.numBatchesTracked ?? 0;
    if (typeof nbt !== 'number' || !Number.isInteger(nbt) || nbt < 0) throw new ValueError(`numBatchesTracked: expected an integer >= 0, got ${describeValue(nbt)}`, 'numBatchesTracked');
    momentum = 1 / (nbt + 1);
  } else {
    const m = o.momentum ?? 0.1;
    if (typeof m !== 'number' || !Number.isFinite(m)) throw new ValueError(`momentum: expected a finite number or null, got ${describeValue(m)}`, 'momentum');
    momentum = m;
  }
  // Named properties first, spreads last (see rowArgs in layer-norm.ts).
  return { x: xt, training, weight, bias, runningMean, runningVar, momentum, eps, ...geom };
}

function checkTraining(t: unknown): boolean {
  if (typeof t !== 'boolean') throw new ValueError(`training: expected true or false, got ${describeValue(t)}`, 'training');
  return t;
}

/** batchNormBackward(dy, x, options). */
export function batchNormBackwardArgs(owner: object, dy: unknown, x: unknown, options: unknown): BatchNormBwdArgs {
  const o = checkOptions(options, 'batchNormBackward', KEYS.batchNormBackward);
  const dyt = checkTensor(dy, 'dy', owner);
  const xt = checkTensor(x, 'x', owner);
  const geom = channelGeom(xt, 'x', 'batchNormBackward', 3, checkChannelsLast(o.channelsLast));
  const training = checkTraining(o.training);
  expectShape(dyt, 'dy', xt.shape, 'the shape of x');
  expectDtype(dyt, 'dy', xt.dtype, 'x');
  const t: Record<string, Tensor | null> = {};
  for (const n of ['weight', 'bias', 'runningMean', 'runningVar', 'saveMean', 'saveInvstd']) {
    t[n] = optTensor(o[n], n, owner);
    // Eval: saveMean/saveInvstd are unused; the eval forward's empty [0] ones are accepted.
    const evalSave = !training && (n === 'saveMean' || n === 'saveInvstd');
    if (evalSave && t[n] && t[n]!.shape.length === 1 && t[n]!.shape[0] === 0) t[n] = null;
    expectShape(t[n]!, n, [geom.C], evalSave ? 'one per channel, or [0] as the eval forward returns' : 'one per channel');
    if (n !== 'weight' && n !== 'bias') expectFloat32(t[n]!, n);
    if (evalSave) t[n] = null;
  }
  if (training && (!t.saveMean || !t.saveInvstd)) throw new ValueError(`${t.saveMean ? 'saveInvstd' : 'saveMean'}: training batchNormBackward needs saveMean and saveInvstd from the forward`, t.saveMean ? 'saveInvstd' : 'saveMean');
  if (!training && (!t.runningMean || !t.runningVar)) throw new ValueError(`${t.runningMean ? 'runningVar' : 'runningMean'}: eval batchNormBackward needs runningMean and runningVar`, t.runningMean ? 'runningVar' : 'runningMean');
  return {
    dy: dyt, x: xt, training,
    weight: t.weight!, bias: t.bias!, runningMean: t.runningMean!, runningVar: t.runningVar!, saveMean: t.saveMean!, saveInvstd: t.saveInvstd!,
    eps: checkEps(o.eps ?? 1e-5), ...geom,
  };
}
