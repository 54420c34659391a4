/**
 * Bad input on both backends: every op throws the right typed error, naming the argument and
 * showing the shapes (or the bad value), before anything is allocated or written; all input
 * tensors (running statistics included) read back unchanged afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNorms, DTypeError, NormError, ShapeError, TensorError, ValueError, type Norms, type Tensor } from '../src/index.ts';
import { gpuNorms } from './util/gpu.ts';
import { fmt, numel } from './util/parity.ts';
import { makeRng } from './util/rng.ts';

type ErrorClass = typeof ShapeError | typeof DTypeError | typeof ValueError | typeof TensorError;

/** Input fixtures: name -> shape (dtype float32 unless listed in F16). */
const SHAPES: Record<string, number[]> = {
  // rows: x [4, 6] normalized over [6]
  x: [4, 6],
  dy: [4, 6],
  w: [6],
  b: [6],
  mean: [4],
  rstd: [4],
  w5: [5],
  b46: [4, 6],
  dy64: [6, 4],
  mean6: [6],
  rstd41: [4, 1],
  mean16: [4],
  rstd16: [4],
  res5: [4, 5],
  // channels: x [2, 6, 5] (N = 2, C = 6, spatial 5), groups G = 3
  xc: [2, 6, 5],
  dyc: [2, 6, 5],
  dyc2: [2, 6, 4],
  x1: [12],
  x16: [1, 6],
  x6d: [1, 2, 1, 1, 1, 2],
  xs1: [2, 6, 1],
  wc: [6],
  bc: [6],
  w3: [3],
  b61: [6, 1],
  rm: [6],
  rv: [6],
  rm5: [5],
  rv16: [6],
  sm: [6],
  si: [6],
  sm5: [5],
  si16: [6],
  sm16: [6],
  gmean: [2, 3],
  grstd: [2, 3],
  gmean22: [2, 2],
  grstd32: [3, 2],
  gmean16: [2, 3],
  grstd16: [2, 3],
  imean: [2, 6],
  irstd: [2, 6],
  imean23: [2, 3],
  irstd16: [2, 6],
  imean16: [2, 6],
};
const F16 = new Set(['mean16', 'rstd16', 'rv16', 'si16', 'sm16', 'gmean16', 'grstd16', 'irstd16', 'imean16']);
/** Positive data (variances, rstd) for these; N(0.5, 2) for the rest. */
const POSITIVE = /^(rstd|rv|si|grstd|irstd)/;

interface Fixture {
  n: Norms;
  t: Record<string, Tensor>;
  /** The same names made by another createNorms instance of the same backend. */
  foreign: Record<string, Tensor>;
  /** The same names, destroyed. */
  dead: Record<string, Tensor>;
  data: Record<string, Float32Array>;
}

function makeData(): Record<string, Float32Array> {
  const rng = makeRng(4242);
  const out: Record<string, Float32Array> = {};
  for (const [k, s] of Object.entries(SHAPES)) {
    const d = rng.fill(numel(s), 0.5, 2);
    if (POSITIVE.test(k)) for (let i = 0; i < d.length; i++) d[i] = 0.5 + Math.abs(d[i]!);
    out[k] = d;
  }
  return out;
}

function makeTensors(n: Norms, data: Record<string, Float32Array>): Record<string, Tensor> {
  const t: Record<string, Tensor> = {};
  for (const [k, s] of Object.entries(SHAPES)) t[k] = n.tensor(data[k]!, s, F16.has(k) ? 'float16' : 'float32');
  return t;
}

interface Case {
  what: string;
  call: (f: Fixture) => unknown;
  cls: ErrorClass;
  arg: string;
  /** Substrings the message must contain besides the argument name (shapes, the bad value). */
  shows: string[];
}

const ROW_NS = { normalizedShape: [6] };
const CASES: Record<string, Case[]> = {
  layerNorm: [
    { what: 'x/normalizedShape mismatch', call: ({ n, t }) => n.layerNorm(t.x!, { normalizedShape: [5] }), cls: ShapeError, arg: 'x', shows: ['[4, 6]', '[5]'] },
    { what: 'normalizedShape longer than x', call: ({ n, t }) => n.layerNorm(t.x!, { normalizedShape: [3, 4, 6] }), cls: ShapeError, arg: 'x', shows: ['[4, 6]', '[3, 4, 6]'] },
    { what: 'weight of the wrong shape', call: ({ n, t }) => n.layerNorm(t.x!, { ...ROW_NS, weight: t.w5, bias: t.b }), cls: ShapeError, arg: 'weight', shows: ['[6]', '[5]'] },
    { what: 'bias of the wrong shape', call: ({ n, t }) => n.layerNorm(t.x!, { ...ROW_NS, weight: t.w, bias: t.b46 }), cls: ShapeError, arg: 'bias', shows: ['[6]', '[4, 6]'] },
    { what: 'residual of the wrong shape', call: ({ n, t }) => n.layerNorm(t.x!, { ...ROW_NS, residual: t.res5 }), cls: ShapeError, arg: 'residual', shows: ['[4, 6]', '[4, 5]'] },
    { what: 'destroyed x', call: ({ n, dead }) => n.layerNorm(dead.x!, ROW_NS), cls: TensorError, arg: 'x', shows: ['[4, 6]', 'destroyed'] },
    { what: 'destroyed bias', call: ({ n, t, dead }) => n.layerNorm(t.x!, { ...ROW_NS, weight: t.w, bias: dead.b }), cls: TensorError, arg: 'bias', shows: ['[6]', 'destroyed'] },
    { what: 'x from another instance', call: ({ n, foreign }) => n.layerNorm(foreign.x!, ROW_NS), cls: TensorError, arg: 'x', shows: ['[4, 6]', 'another'] },
    { what: 'weight from another instance', call: ({ n, t, foreign }) => n.layerNorm(t.x!, { ...ROW_NS, weight: foreign.w }), cls: TensorError, arg: 'weight', shows: ['[6]', 'another'] },
    { what: 'eps Infinity', call: ({ n, t }) => n.layerNorm(t.x!, { ...ROW_NS, eps: Infinity }), cls: ValueError, arg: 'eps', shows: ['Infinity'] },
    { what: 'eps NaN', call: ({ n, t }) => n.layerNorm(t.x!, { ...ROW_NS, eps: NaN }), cls: ValueError, arg: 'eps', shows: ['NaN'] },
  ],
  layerNormBackward: [
    { what: 'x/normalizedShape mismatch', call: ({ n, t }) => n.layerNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, { normalizedShape: [4] }), cls: ShapeError, arg: 'x', shows: ['[4, 6]', '[4]'] },
    { what: 'dy of the wrong shape', call: ({ n, t }) => n.layerNormBackward(t.dy64!, t.x!, t.mean!, t.rstd!, ROW_NS), cls: ShapeError, arg: 'dy', shows: ['[4, 6]', '[6, 4]'] },
    { what: 'mean of the wrong shape', call: ({ n, t }) => n.layerNormBackward(t.dy!, t.x!, t.mean6!, t.rstd!, ROW_NS), cls: ShapeError, arg: 'mean', shows: ['[4]', '[6]'] },
    { what: 'rstd of the wrong shape', call: ({ n, t }) => n.layerNormBackward(t.dy!, t.x!, t.mean!, t.rstd41!, ROW_NS), cls: ShapeError, arg: 'rstd', shows: ['[4]', '[4, 1]'] },
    { what: 'mean float16', call: ({ n, t }) => n.layerNormBackward(t.dy!, t.x!, t.mean16!, t.rstd!, ROW_NS), cls: DTypeError, arg: 'mean', shows: ['float16', 'float32'] },
    { what: 'rstd float16', call: ({ n, t }) => n.layerNormBackward(t.dy!, t.x!, t.mean!, t.rstd16!, ROW_NS), cls: DTypeError, arg: 'rstd', shows: ['float16', 'float32'] },
    { what: 'weight of the wrong shape', call: ({ n, t }) => n.layerNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, { ...ROW_NS, weight: t.w5 }), cls: ShapeError, arg: 'weight', shows: ['[6]', '[5]'] },
    { what: 'bias of the wrong shape', call: ({ n, t }) => n.layerNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, { ...ROW_NS, bias: t.b46 }), cls: ShapeError, arg: 'bias', shows: ['[6]', '[4, 6]'] },
    { what: 'destroyed rstd', call: ({ n, t, dead }) => n.layerNormBackward(t.dy!, t.x!, t.mean!, dead.rstd!, ROW_NS), cls: TensorError, arg: 'rstd', shows: ['[4]', 'destroyed'] },
    { what: 'mean from another instance', call: ({ n, t, foreign }) => n.layerNormBackward(t.dy!, t.x!, foreign.mean!, t.rstd!, ROW_NS), cls: TensorError, arg: 'mean', shows: ['[4]', 'another'] },
    { what: 'dy from another instance', call: ({ n, t, foreign }) => n.layerNormBackward(foreign.dy!, t.x!, t.mean!, t.rstd!, ROW_NS), cls: TensorError, arg: 'dy', shows: ['[4, 6]', 'another'] },
  ],
  rmsNorm: [
    { what: 'x/normalizedShape mismatch', call: ({ n, t }) => n.rmsNorm(t.x!, { normalizedShape: [4] }), cls: ShapeError, arg: 'x', shows: ['[4, 6]', '[4]'] },
    { what: 'weight of the wrong shape', call: ({ n, t }) => n.rmsNorm(t.x!, { ...ROW_NS, weight: t.w5 }), cls: ShapeError, arg: 'weight', shows: ['[6]', '[5]'] },
    { what: 'a bias (rmsNorm has none)', call: ({ n, t }) => n.rmsNorm(t.x!, { ...ROW_NS, bias: t.b } as never), cls: ValueError, arg: 'bias', shows: ['rmsNorm'] },
    { what: 'destroyed x', call: ({ n, dead }) => n.rmsNorm(dead.x!, ROW_NS), cls: TensorError, arg: 'x', shows: ['[4, 6]', 'destroyed'] },
    { what: 'weight from another instance', call: ({ n, t, foreign }) => n.rmsNorm(t.x!, { ...ROW_NS, weight: foreign.w }), cls: TensorError, arg: 'weight', shows: ['[6]', 'another'] },
    { what: 'eps -Infinity', call: ({ n, t }) => n.rmsNorm(t.x!, { ...ROW_NS, eps: -Infinity }), cls: ValueError, arg: 'eps', shows: ['-Infinity'] },
    { what: 'eps NaN', call: ({ n, t }) => n.rmsNorm(t.x!, { ...ROW_NS, eps: NaN }), cls: ValueError, arg: 'eps', shows: ['NaN'] },
  ],
  rmsNormBackward: [
    { what: 'x/normalizedShape mismatch', call: ({ n, t }) => n.rmsNormBackward(t.dy!, t.x!, t.rstd!, { normalizedShape: [2, 6] }), cls: ShapeError, arg: 'x', shows: ['[4, 6]', '[2, 6]'] },
    { what: 'dy of the wrong shape', call: ({ n, t }) => n.rmsNormBackward(t.dy64!, t.x!, t.rstd!, ROW_NS), cls: ShapeError, arg: 'dy', shows: ['[4, 6]', '[6, 4]'] },
    { what: 'rstd of the wrong shape', call: ({ n, t }) => n.rmsNormBackward(t.dy!, t.x!, t.mean6!, ROW_NS), cls: ShapeError, arg: 'rstd', shows: ['[4]', '[6]'] },
    { what: 'rstd float16', call: ({ n, t }) => n.rmsNormBackward(t.dy!, t.x!, t.rstd16!, ROW_NS), cls: DTypeError, arg: 'rstd', shows: ['float16', 'float32'] },
    { what: 'weight of the wrong shape', call: ({ n, t }) => n.rmsNormBackward(t.dy!, t.x!, t.rstd!, { ...ROW_NS, weight: t.w5 }), cls: ShapeError, arg: 'weight', shows: ['[6]', '[5]'] },
    { what: 'destroyed dy', call: ({ n, t, dead }) => n.rmsNormBackward(dead.dy!, t.x!, t.rstd!, ROW_NS), cls: TensorError, arg: 'dy', shows: ['[4, 6]', 'destroyed'] },
    { what: 'rstd from another instance', call: ({ n, t, foreign }) => n.rmsNormBackward(t.dy!, t.x!, foreign.rstd!, ROW_NS), cls: TensorError, arg: 'rstd', shows: ['[4]', 'another'] },
  ],
  batchNorm: [
    { what: 'rank < 2', call: ({ n, t }) => n.batchNorm(t.x1!, { training: true }), cls: ShapeError, arg: 'x', shows: ['[12]'] },
    { what: 'more than 3 spatial dims', call: ({ n, t }) => n.batchNorm(t.x6d!, { training: true }), cls: ShapeError, arg: 'x', shows: ['[1, 2, 1, 1, 1, 2]'] },
    { what: 'weight of the wrong shape', call: ({ n, t }) => n.batchNorm(t.xc!, { training: true, weight: t.w5, runningMean: t.rm, runningVar: t.rv }), cls: ShapeError, arg: 'weight', shows: ['[6]', '[5]'] },
    { what: 'bias of the wrong shape', call: ({ n, t }) => n.batchNorm(t.xc!, { training: true, bias: t.b61, runningMean: t.rm, runningVar: t.rv }), cls: ShapeError, arg: 'bias', shows: ['[6]', '[6, 1]'] },
    { what: 'runningMean of the wrong shape', call: ({ n, t }) => n.batchNorm(t.xc!, { training: true, runningMean: t.rm5, runningVar: t.rv }), cls: ShapeError, arg: 'runningMean', shows: ['[6]', '[5]'] },
    { what: 'runningVar float16', call: ({ n, t }) => n.batchNorm(t.xc!, { training: true, runningMean: t.rm, runningVar: t.rv16 }), cls: DTypeError, arg: 'runningVar', shows: ['float16'] },
    { what: 'one value per channel in training', call: ({ n, t }) => n.batchNorm(t.x16!, { training: true, runningMean: t.rm, runningVar: t.rv }), cls: ValueError, arg: 'x', shows: ['[1, 6]'] },
    { what: 'eval without running stats', call: ({ n, t }) => n.batchNorm(t.xc!, { training: false, weight: t.wc }), cls: ValueError, arg: 'runningMean', shows: ['runningVar'] },
    { what: 'destroyed x', call: ({ n, t, dead }) => n.batchNorm(dead.xc!, { training: true, runningMean: t.rm, runningVar: t.rv }), cls: TensorError, arg: 'x', shows: ['[2, 6, 5]', 'destroyed'] },
    { what: 'destroyed runningVar', call: ({ n, t, dead }) => n.batchNorm(t.xc!, { training: true, runningMean: t.rm, runningVar: dead.rv }), cls: TensorError, arg: 'runningVar', shows: ['[6]', 'destroyed'] },
    { what: 'runningMean from another instance', call: ({ n, t, foreign }) => n.batchNorm(t.xc!, { training: true, runningMean: foreign.rm, runningVar: t.rv }), cls: TensorError, arg: 'runningMean', shows: ['[6]', 'another'] },
    { what: 'eps Infinity', call: ({ n, t }) => n.batchNorm(t.xc!, { training: true, runningMean: t.rm, runningVar: t.rv, eps: Infinity }), cls: ValueError, arg: 'eps', shows: ['Infinity'] },
    { what: 'eps NaN', call: ({ n, t }) => n.batchNorm(t.xc!, { training: true, runningMean: t.rm, runningVar: t.rv, eps: NaN }), cls: ValueError, arg: 'eps', shows: ['NaN'] },
    { what: 'momentum NaN', call: ({ n, t }) => n.batchNorm(t.xc!, { training: true, runningMean: t.rm, runningVar: t.rv, momentum: NaN }), cls: ValueError, arg: 'momentum', shows: ['NaN'] },
  ],
  batchNormBackward: [
    { what: 'rank < 2', call: ({ n, t }) => n.batchNormBackward(t.x1!, t.x1!, { training: true, saveMean: t.sm, saveInvstd: t.si }), cls: ShapeError, arg: 'x', shows: ['[12]'] },
    { what: 'dy of the wrong shape', call: ({ n, t }) => n.batchNormBackward(t.dyc2!, t.xc!, { training: true, saveMean: t.sm, saveInvstd: t.si }), cls: ShapeError, arg: 'dy', shows: ['[2, 6, 5]', '[2, 6, 4]'] },
    { what: 'saveMean missing', call: ({ n, t }) => n.batchNormBackward(t.dyc!, t.xc!, { training: true, saveInvstd: t.si }), cls: ValueError, arg: 'saveMean', shows: ['training'] },
    { what: 'saveInvstd missing', call: ({ n, t }) => n.batchNormBackward(t.dyc!, t.xc!, { training: true, saveMean: t.sm }), cls: ValueError, arg: 'saveInvstd', shows: ['training'] },
    { what: 'saveMean of the wrong shape', call: ({ n, t }) => n.batchNormBackward(t.dyc!, t.xc!, { training: true, saveMean: t.sm5, saveInvstd: t.si }), cls: ShapeError, arg: 'saveMean', shows: ['[6]', '[5]'] },
    { what: 'saveMean float16', call: ({ n, t }) => n.batchNormBackward(t.dyc!, t.xc!, { training: true, saveMean: t.sm16, saveInvstd: t.si }), cls: DTypeError, arg: 'saveMean', shows: ['float16'] },
    { what: 'saveInvstd float16', call: ({ n, t }) => n.batchNormBackward(t.dyc!, t.xc!, { training: true, saveMean: t.sm, saveInvstd: t.si16 }), cls: DTypeError, arg: 'saveInvstd', shows: ['float16'] },
    { what: 'weight of the wrong shape', call: ({ n, t }) => n.batchNormBackward(t.dyc!, t.xc!, { training: true, saveMean: t.sm, saveInvstd: t.si, weight: t.w3 }), cls: ShapeError, arg: 'weight', shows: ['[6]', '[3]'] },
    { what: 'eval without running stats', call: ({ n, t }) => n.batchNormBackward(t.dyc!, t.xc!, { training: false, saveMean: t.sm, saveInvstd: t.si }), cls: ValueError, arg: 'runningMean', shows: ['runningVar'] },
    { what: 'runningMean of the wrong shape (eval)', call: ({ n, t }) => n.batchNormBackward(t.dyc!, t.xc!, { training: false, runningMean: t.rm5, runningVar: t.rv }), cls: ShapeError, arg: 'runningMean', shows: ['[6]', '[5]'] },
    { what: 'eps Infinity (eval)', call: ({ n, t }) => n.batchNormBackward(t.dyc!, t.xc!, { training: false, runningMean: t.rm, runningVar: t.rv, eps: Infinity }), cls: ValueError, arg: 'eps', shows: ['Infinity'] },
    { what: 'eps NaN (eval)', call: ({ n, t }) => n.batchNormBackward(t.dyc!, t.xc!, { training: false, runningMean: t.rm, runningVar: t.rv, eps: NaN }), cls: ValueError, arg: 'eps', shows: ['NaN'] },
    { what: 'destroyed saveMean', call: ({ n, t, dead }) => n.batchNormBackward(t.dyc!, t.xc!, { training: true, saveMean: dead.sm, saveInvstd: t.si }), cls: TensorError, arg: 'saveMean', shows: ['[6]', 'destroyed'] },
    { what: 'dy from another instance', call: ({ n, t, foreign }) => n.batchNormBackward(foreign.dyc!, t.xc!, { training: true, saveMean: t.sm, saveInvstd: t.si }), cls: TensorError, arg: 'dy', shows: ['[2, 6, 5]', 'another'] },
  ],
  groupNorm: [
    { what: 'numGroups not dividing C', call: ({ n, t }) => n.groupNorm(t.xc!, { numGroups: 4 }), cls: ValueError, arg: 'numGroups', shows: ['4', '6'] },
    { what: 'numGroups 0', call: ({ n, t }) => n.groupNorm(t.xc!, { numGroups: 0 }), cls: ValueError, arg: 'numGroups', shows: ['0'] },
    { what: 'numGroups not an integer', call: ({ n, t }) => n.groupNorm(t.xc!, { numGroups: 1.5 }), cls: ValueError, arg: 'numGroups', shows: ['1.5'] },
    { what: 'rank < 2', call: ({ n, t }) => n.groupNorm(t.x1!, { numGroups: 3 }), cls: ShapeError, arg: 'x', shows: ['[12]'] },
    { what: 'weight of the wrong shape', call: ({ n, t }) => n.groupNorm(t.xc!, { numGroups: 3, weight: t.w3, bias: t.bc }), cls: ShapeError, arg: 'weight', shows: ['[6]', '[3]'] },
    { what: 'bias of the wrong shape', call: ({ n, t }) => n.groupNorm(t.xc!, { numGroups: 3, weight: t.wc, bias: t.b61 }), cls: ShapeError, arg: 'bias', shows: ['[6]', '[6, 1]'] },
    { what: 'unknown activation', call: ({ n, t }) => n.groupNorm(t.xc!, { numGroups: 3, activation: 'relu' as never }), cls: ValueError, arg: 'activation', shows: ['relu'] },
    { what: 'destroyed x', call: ({ n, dead }) => n.groupNorm(dead.xc!, { numGroups: 3 }), cls: TensorError, arg: 'x', shows: ['[2, 6, 5]', 'destroyed'] },
    { what: 'bias from another instance', call: ({ n, t, foreign }) => n.groupNorm(t.xc!, { numGroups: 3, bias: foreign.bc }), cls: TensorError, arg: 'bias', shows: ['[6]', 'another'] },
    { what: 'eps -Infinity', call: ({ n, t }) => n.groupNorm(t.xc!, { numGroups: 3, eps: -Infinity }), cls: ValueError, arg: 'eps', shows: ['-Infinity'] },
    { what: 'eps NaN', call: ({ n, t }) => n.groupNorm(t.xc!, { numGroups: 3, eps: NaN }), cls: ValueError, arg: 'eps', shows: ['NaN'] },
  ],
  groupNormBackward: [
    { what: 'numGroups not dividing C', call: ({ n, t }) => n.groupNormBackward(t.dyc!, t.xc!, t.gmean!, t.grstd!, { numGroups: 4 }), cls: ValueError, arg: 'numGroups', shows: ['4', '6'] },
    { what: 'rank < 2', call: ({ n, t }) => n.groupNormBackward(t.x1!, t.x1!, t.gmean!, t.grstd!, { numGroups: 3 }), cls: ShapeError, arg: 'x', shows: ['[12]'] },
    { what: 'dy of the wrong shape', call: ({ n, t }) => n.groupNormBackward(t.dyc2!, t.xc!, t.gmean!, t.grstd!, { numGroups: 3 }), cls: ShapeError, arg: 'dy', shows: ['[2, 6, 5]', '[2, 6, 4]'] },
    { what: 'mean of the wrong shape', call: ({ n, t }) => n.groupNormBackward(t.dyc!, t.xc!, t.gmean22!, t.grstd!, { numGroups: 3 }), cls: ShapeError, arg: 'mean', shows: ['[2, 3]', '[2, 2]'] },
    { what: 'rstd of the wrong shape', call: ({ n, t }) => n.groupNormBackward(t.dyc!, t.xc!, t.gmean!, t.grstd32!, { numGroups: 3 }), cls: ShapeError, arg: 'rstd', shows: ['[2, 3]', '[3, 2]'] },
    { what: 'mean float16', call: ({ n, t }) => n.groupNormBackward(t.dyc!, t.xc!, t.gmean16!, t.grstd!, { numGroups: 3 }), cls: DTypeError, arg: 'mean', shows: ['float16', 'float32'] },
    { what: 'rstd float16', call: ({ n, t }) => n.groupNormBackward(t.dyc!, t.xc!, t.gmean!, t.grstd16!, { numGroups: 3 }), cls: DTypeError, arg: 'rstd', shows: ['float16', 'float32'] },
    { what: 'weight of the wrong shape', call: ({ n, t }) => n.groupNormBackward(t.dyc!, t.xc!, t.gmean!, t.grstd!, { numGroups: 3, weight: t.w3 }), cls: ShapeError, arg: 'weight', shows: ['[6]', '[3]'] },
    { what: 'destroyed mean', call: ({ n, t, dead }) => n.groupNormBackward(t.dyc!, t.xc!, dead.gmean!, t.grstd!, { numGroups: 3 }), cls: TensorError, arg: 'mean', shows: ['[2, 3]', 'destroyed'] },
    { what: 'rstd from another instance', call: ({ n, t, foreign }) => n.groupNormBackward(t.dyc!, t.xc!, t.gmean!, foreign.grstd!, { numGroups: 3 }), cls: TensorError, arg: 'rstd', shows: ['[2, 3]', 'another'] },
  ],
  instanceNorm: [
    { what: 'rank < 2', call: ({ n, t }) => n.instanceNorm(t.x1!), cls: ShapeError, arg: 'x', shows: ['[12]'] },
    { what: 'spatial size 1', call: ({ n, t }) => n.instanceNorm(t.xs1!), cls: ValueError, arg: 'x', shows: ['[2, 6, 1]', 'more than 1'] },
    { what: 'weight of the wrong shape', call: ({ n, t }) => n.instanceNorm(t.xc!, { weight: t.w3 }), cls: ShapeError, arg: 'weight', shows: ['[6]', '[3]'] },
    { what: 'bias of the wrong shape', call: ({ n, t }) => n.instanceNorm(t.xc!, { bias: t.b61 }), cls: ShapeError, arg: 'bias', shows: ['[6]', '[6, 1]'] },
    { what: 'destroyed weight', call: ({ n, t, dead }) => n.instanceNorm(t.xc!, { weight: dead.wc }), cls: TensorError, arg: 'weight', shows: ['[6]', 'destroyed'] },
    { what: 'x from another instance', call: ({ n, foreign }) => n.instanceNorm(foreign.xc!), cls: TensorError, arg: 'x', shows: ['[2, 6, 5]', 'another'] },
    { what: 'eps Infinity', call: ({ n, t }) => n.instanceNorm(t.xc!, { eps: Infinity }), cls: ValueError, arg: 'eps', shows: ['Infinity'] },
    { what: 'eps NaN', call: ({ n, t }) => n.instanceNorm(t.xc!, { eps: NaN }), cls: ValueError, arg: 'eps', shows: ['NaN'] },
  ],
  instanceNormBackward: [
    { what: 'rank < 2', call: ({ n, t }) => n.instanceNormBackward(t.x1!, t.x1!, t.imean!, t.irstd!), cls: ShapeError, arg: 'x', shows: ['[12]'] },
    { what: 'dy of the wrong shape', call: ({ n, t }) => n.instanceNormBackward(t.dyc2!, t.xc!, t.imean!, t.irstd!), cls: ShapeError, arg: 'dy', shows: ['[2, 6, 5]', '[2, 6, 4]'] },
    { what: 'mean of the wrong shape', call: ({ n, t }) => n.instanceNormBackward(t.dyc!, t.xc!, t.imean23!, t.irstd!), cls: ShapeError, arg: 'mean', shows: ['[2, 6]', '[2, 3]'] },
    { what: 'rstd of the wrong shape', call: ({ n, t }) => n.instanceNormBackward(t.dyc!, t.xc!, t.imean!, t.gmean!), cls: ShapeError, arg: 'rstd', shows: ['[2, 6]', '[2, 3]'] },
    { what: 'mean float16', call: ({ n, t }) => n.instanceNormBackward(t.dyc!, t.xc!, t.imean16!, t.irstd!), cls: DTypeError, arg: 'mean', shows: ['float16', 'float32'] },
    { what: 'rstd float16', call: ({ n, t }) => n.instanceNormBackward(t.dyc!, t.xc!, t.imean!, t.irstd16!), cls: DTypeError, arg: 'rstd', shows: ['float16', 'float32'] },
    { what: 'bias of the wrong shape', call: ({ n, t }) => n.instanceNormBackward(t.dyc!, t.xc!, t.imean!, t.irstd!, { bias: t.w3 }), cls: ShapeError, arg: 'bias', shows: ['[6]', '[3]'] },
    { what: 'destroyed x', call: ({ n, t, dead }) => n.instanceNormBackward(t.dyc!, dead.xc!, t.imean!, t.irstd!), cls: TensorError, arg: 'x', shows: ['[2, 6, 5]', 'destroyed'] },
    { what: 'mean from another instance', call: ({ n, t, foreign }) => n.instanceNormBackward(t.dyc!, t.xc!, foreign.imean!, t.irstd!), cls: TensorError, arg: 'mean', shows: ['[2, 6]', 'another'] },
  ],
};

/** Runs one case; returns a description of what went wrong, or null. */
function runCase(f: Fixture, c: Case): string | null {
  const live = f.n.stats().liveBuffers;
  let err: unknown = undefined;
  let returned: unknown = undefined;
  try {
    returned = c.call(f);
  } catch (e) {
    err = e;
  }
  if (err === undefined) return `did not throw (returned ${returned && typeof returned === 'object' ? `{${Object.keys(returned).join(', ')}}` : String(returned)})`;
  const problems: string[] = [];
  const e = err as NormError;
  if (!(e instanceof c.cls)) problems.push(`threw ${(e as Error)?.name ?? typeof e} instead of ${c.cls.name}`);
  if (!(e instanceof NormError)) problems.push('not a NormError');
  if (e?.argument !== c.arg) problems.push(`argument ${String(e?.argument)} instead of ${c.arg}`);
  const msg = String((e as Error)?.message);
  for (const s of [c.arg, ...c.shows]) if (!msg.includes(s)) problems.push(`message lacks "${s}"`);
  if (f.n.stats().liveBuffers !== live) problems.push(`allocated ${f.n.stats().liveBuffers - live} GPU buffer(s)`);
  return problems.length ? `${problems.join('; ')} — message: ${msg}` : null;
}

for (const backend of ['webgpu', 'cpu'] as const) {
  describe(`bad input, ${backend} backend`, () => {
    let f: Fixture;
    let other: Norms;
    /** Contents of every live input right after upload (float16 inputs are stored rounded). */
    const initial: Record<string, Float32Array> = {};

    beforeAll(async () => {
      const n = backend === 'webgpu' ? await gpuNorms() : await createNorms({ backend: 'cpu' });
      other = backend === 'webgpu' ? await createNorms({ backend: 'webgpu', device: n.device!, poisonOutputs: true }) : await createNorms({ backend: 'cpu' });
      const data = makeData();
      const dead = makeTensors(n, data);
      for (const t of Object.values(dead)) t.destroy();
      f = { n, t: makeTensors(n, data), foreign: makeTensors(other, data), dead, data };
      for (const [k, t] of Object.entries(f.t)) initial[k] = await n.read(t);
      for (const k of Object.keys(SHAPES)) if (!F16.has(k)) expect(initial[k], `upload of ${k}`).toEqual(data[k]);
    });
    afterAll(() => {
      // `other` shares the device of f.n on the webgpu backend: destroy it first.
      other?.destroy();
      f?.n.destroy();
    });

    for (const [op, cases] of Object.entries(CASES)) {
      it(`${op}: ${cases.length} bad calls throw typed errors naming the argument; inputs unchanged`, async () => {
        const live = f.n.stats().liveBuffers;
        const failures: string[] = [];
        for (const c of cases) {
          const p = runCase(f, c);
          if (p) failures.push(`${op}, ${c.what}: ${p}`);
        }
        // Let any GPU work a bad call might have enqueued land, then read every input back.
        for (const [k, t] of Object.entries(f.t)) {
          const now = await f.n.read(t);
          if (!now.every((v, i) => Object.is(v, initial[k]![i]))) failures.push(`${op}: input ${k} ${fmt(t.shape)} changed`);
        }
        expect(f.n.stats().liveBuffers, 'GPU buffers after the bad calls').toBe(live);
        expect(failures, failures.join('\n')).toEqual([]);
      });
    }

    it('a tensor from the other backend is a TensorError naming the argument', async () => {
      const o = backend === 'webgpu' ? await createNorms({ backend: 'cpu' }) : await gpuNorms();
      try {
        const x = o.tensor(f.data.x!, SHAPES.x!);
        const failures: string[] = [];
        for (const c of [
          { what: 'layerNorm x', call: () => f.n.layerNorm(x, ROW_NS), arg: 'x' },
          { what: 'rmsNorm x', call: () => f.n.rmsNorm(x, ROW_NS), arg: 'x' },
          { what: 'layerNormBackward dy', call: () => f.n.layerNormBackward(x, f.t.x!, f.t.mean!, f.t.rstd!, ROW_NS), arg: 'dy' },
        ]) {
          const p = runCase(f, { what: c.what, call: c.call, cls: TensorError, arg: c.arg, shows: ['[4, 6]'] });
          if (p) failures.push(`${c.what}: ${p}`);
        }
        expect(failures, failures.join('\n')).toEqual([]);
        expect(await o.read(x)).toEqual(f.data.x);
      } finally {
        o.destroy();
      }
    });

    it('reading a destroyed tensor, or a tensor of another instance, is a TensorError', async () => {
      await expect(f.n.read(f.dead.x!)).rejects.toBeInstanceOf(TensorError);
      await expect(f.n.read(f.foreign.x!)).rejects.toBeInstanceOf(TensorError);
    });
  });
}
