/**
 * Bad input on both backends (the float64 CPU reference and WebGPU in Node), in two tables:
 *
 * 1. One table over every op: each case builds valid inputs for one op, breaks exactly one
 *    thing, and asserts:
 *   - the op throws synchronously (read(): rejects) an error of exactly the expected class,
 *   - `err.argument` names the broken argument and the message mentions it,
 *   - no GPU buffer was allocated (stats() unchanged: no partially written output exists),
 *   - every input tensor (of every instance involved) reads back bit-identical to what was
 *     uploaded (batchNorm's running stats included: a rejected call must not update them).
 *    A second table covers zero-size dims: whatever the library does (empty outputs of the right
 *    shapes, or an error), both backends must do the same, with the same values.
 *
 * 2. Shared fixtures per op (wrong shapes, dtypes, destroyed tensors, tensors of another
 *    instance or backend): every op throws the right typed error, naming the argument and
 *    showing the shapes (or the bad value), before anything is allocated or written; all input
 *    tensors (running statistics included) read back unchanged afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createNorms,
  DeviceError,
  DTypeError,
  NormError,
  ShapeError,
  Tensor,
  TensorError,
  ValueError,
  relativeL2,
  type DType,
  type Norms,
} from '../src/index.ts';
import { gpuNorms, ON_WASM, sameDevice } from './util/gpu.ts';
import { fmt, numel } from './util/parity.ts';
import { makeRng } from './util/rng.ts';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Args = Record<string, any>;
type ErrClass = abstract new (...a: any[]) => NormError;
type BackendName = 'cpu' | 'webgpu';

interface Env {
  /** The instance under test. */
  n: Norms;
  /** A second instance of the same backend (webgpu: sharing n's GPUDevice). */
  other: Norms;
  /** An instance of the other backend. */
  foreign: Norms;
}

/** A tensor a case created, with the host data it was created from. */
interface Tracked {
  t: Tensor;
  owner: Norms;
  host: Float32Array;
}

/** What a case builder gets: tensor factories on each instance that remember the uploaded data. */
class Ctx {
  readonly tracked: Tracked[] = [];
  private seed = 1;
  constructor(readonly env: Env) {}
  private make(owner: Norms, shape: number[], dtype: DType = 'float32', positive = false): Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    const r = makeRng(1000 + this.seed++);
    const host = new Float32Array(n);
    for (let i = 0; i < n; i++) host[i] = positive ? 0.5 + r.uniform() : r.normal();
    const t = owner.tensor(host, shape, dtype);
    this.tracked.push({ t, owner, host });
    return t;
  }
  m = (shape: number[], dtype?: DType, positive?: boolean): Tensor => this.make(this.env.n, shape, dtype, positive);
  mOther = (shape: number[], dtype?: DType): Tensor => this.make(this.env.other, shape, dtype);
  mForeign = (shape: number[], dtype?: DType): Tensor => this.make(this.env.foreign, shape, dtype);
}

// ---------------------------------------------------------------------------------------------
// Valid calls of every op: tensor arguments (with shapes) and scalar options.

interface TensorArg {
  shape: number[];
  /** Required positional argument (a missing one is a TensorError), else an optional option. */
  required?: boolean;
  /** Not passed by default (an optional input such as residual). */
  absent?: boolean;
  /** Saved statistics / variances: positive values. */
  positive?: boolean;
  /** Must match the data dtype or be float32: a float16 one is a DTypeError. */
  dtypeChecked?: boolean;
  /** The argument whose shape defines the others (skip the generic wrong-shape case). */
  primary?: boolean;
}

interface OpSpec {
  tensors: Record<string, TensorArg>;
  opts: Args;
  call(n: Norms, a: Args): unknown;
}

const ROWS_X = [2, 3, 8];
const OPS: Record<string, OpSpec> = {
  layerNorm: {
    tensors: { x: { shape: ROWS_X, required: true, primary: true }, weight: { shape: [8] }, bias: { shape: [8] }, residual: { shape: ROWS_X, absent: true, dtypeChecked: true } },
    opts: { normalizedShape: [8], eps: 1e-5 },
    call: (n, a) => n.layerNorm(a.x, { normalizedShape: a.normalizedShape, weight: a.weight, bias: a.bias, residual: a.residual, eps: a.eps }),
  },
  layerNormBackward: {
    tensors: {
      dy: { shape: ROWS_X, required: true, dtypeChecked: true },
      x: { shape: ROWS_X, required: true, primary: true },
      mean: { shape: [2, 3], required: true, dtypeChecked: true },
      rstd: { shape: [2, 3], required: true, positive: true, dtypeChecked: true },
      weight: { shape: [8] },
      bias: { shape: [8] },
    },
    opts: { normalizedShape: [8] },
    call: (n, a) => n.layerNormBackward(a.dy, a.x, a.mean, a.rstd, { normalizedShape: a.normalizedShape, weight: a.weight, bias: a.bias }),
  },
  rmsNorm: {
    tensors: { x: { shape: ROWS_X, required: true, primary: true }, weight: { shape: [8] }, residual: { shape: ROWS_X, absent: true, dtypeChecked: true } },
    opts: { normalizedShape: [8], eps: 1e-6 },
    call: (n, a) => n.rmsNorm(a.x, { normalizedShape: a.normalizedShape, weight: a.weight, residual: a.residual, eps: a.eps, ...(a.bias !== undefined ? { bias: a.bias } : {}) } as any),
  },
  rmsNormBackward: {
    tensors: {
      dy: { shape: ROWS_X, required: true, dtypeChecked: true },
      x: { shape: ROWS_X, required: true, primary: true },
      rstd: { shape: [2, 3], required: true, positive: true, dtypeChecked: true },
      weight: { shape: [8] },
    },
    opts: { normalizedShape: [8] },
    call: (n, a) => n.rmsNormBackward(a.dy, a.x, a.rstd, { normalizedShape: a.normalizedShape, weight: a.weight }),
  },
  batchNorm: {
    tensors: {
      x: { shape: [2, 3, 4], required: true, primary: true },
      weight: { shape: [3] },
      bias: { shape: [3] },
      runningMean: { shape: [3], dtypeChecked: true },
      runningVar: { shape: [3], positive: true, dtypeChecked: true },
    },
    opts: { training: true, momentum: 0.1, eps: 1e-5 },
    call: (n, a) =>
      n.batchNorm(a.x, {
        training: a.training, weight: a.weight, bias: a.bias, runningMean: a.runningMean, runningVar: a.runningVar,
        momentum: a.momentum, eps: a.eps, ...(a.numBatchesTracked !== undefined ? { numBatchesTracked: a.numBatchesTracked } : {}),
      }),
  },
  batchNormBackward: {
    tensors: {
      dy: { shape: [2, 3, 4], required: true, dtypeChecked: true },
      x: { shape: [2, 3, 4], required: true, primary: true },
      weight: { shape: [3] },
      bias: { shape: [3] },
      saveMean: { shape: [3], dtypeChecked: true },
      saveInvstd: { shape: [3], positive: true, dtypeChecked: true },
      runningMean: { shape: [3], absent: true, dtypeChecked: true },
      runningVar: { shape: [3], absent: true, positive: true, dtypeChecked: true },
    },
    opts: { training: true, eps: 1e-5 },
    call: (n, a) =>
      n.batchNormBackward(a.dy, a.x, {
        training: a.training, weight: a.weight, bias: a.bias, saveMean: a.saveMean, saveInvstd: a.saveInvstd,
        runningMean: a.runningMean, runningVar: a.runningVar, eps: a.eps,
      }),
  },
  groupNorm: {
    tensors: { x: { shape: [2, 4, 3], required: true, primary: true }, weight: { shape: [4] }, bias: { shape: [4] } },
    opts: { numGroups: 2, eps: 1e-5 },
    call: (n, a) => n.groupNorm(a.x, { numGroups: a.numGroups, weight: a.weight, bias: a.bias, eps: a.eps, ...(a.activation !== undefined ? { activation: a.activation } : {}) }),
  },
  groupNormBackward: {
    tensors: {
      dy: { shape: [2, 4, 3], required: true, dtypeChecked: true },
      x: { shape: [2, 4, 3], required: true, primary: true },
      mean: { shape: [2, 2], required: true, dtypeChecked: true },
      rstd: { shape: [2, 2], required: true, positive: true, dtypeChecked: true },
      weight: { shape: [4] },
      bias: { shape: [4] },
    },
    opts: { numGroups: 2 },
    call: (n, a) => n.groupNormBackward(a.dy, a.x, a.mean, a.rstd, { numGroups: a.numGroups, weight: a.weight, bias: a.bias }),
  },
  instanceNorm: {
    tensors: { x: { shape: [2, 3, 5], required: true, primary: true }, weight: { shape: [3] }, bias: { shape: [3] } },
    opts: { eps: 1e-5 },
    call: (n, a) => n.instanceNorm(a.x, { weight: a.weight, bias: a.bias, eps: a.eps }),
  },
  instanceNormBackward: {
    tensors: {
      dy: { shape: [2, 3, 5], required: true, dtypeChecked: true },
      x: { shape: [2, 3, 5], required: true, primary: true },
      mean: { shape: [2, 3], required: true, dtypeChecked: true },
      rstd: { shape: [2, 3], required: true, positive: true, dtypeChecked: true },
      weight: { shape: [3] },
      bias: { shape: [3] },
    },
    opts: {},
    call: (n, a) => n.instanceNormBackward(a.dy, a.x, a.mean, a.rstd, { weight: a.weight, bias: a.bias }),
  },
  weightNorm: {
    tensors: { v: { shape: [4, 6], required: true, primary: true }, g: { shape: [4, 1], required: true } },
    opts: { dim: 0 },
    call: (n, a) => n.weightNorm(a.v, a.g, { dim: a.dim }),
  },
  weightNormBackward: {
    tensors: {
      dw: { shape: [4, 6], required: true, dtypeChecked: true },
      v: { shape: [4, 6], required: true, primary: true },
      g: { shape: [4, 1], required: true },
      norms: { shape: [4, 1], required: true, positive: true, dtypeChecked: true },
    },
    opts: { dim: 0 },
    call: (n, a) => n.weightNormBackward(a.dw, a.v, a.g, a.norms, { dim: a.dim }),
  },
};

/** Valid arguments for `op` on ctx.env.n (optional `absent` tensors left out). */
function validArgs(ctx: Ctx, op: string): Args {
  const spec = OPS[op]!;
  const a: Args = { ...spec.opts };
  for (const [name, t] of Object.entries(spec.tensors)) if (!t.absent) a[name] = ctx.m(t.shape, 'float32', t.positive);
  return a;
}

// ---------------------------------------------------------------------------------------------
// The table.

interface BadCase {
  name: string;
  err: ErrClass;
  /** The argument the error must name (any of a list where the blame is shared). */
  arg: string | string[];
  /** Builds the inputs (through ctx) and returns the call that must fail. */
  build(ctx: Ctx): () => unknown;
  /** The call returns a promise that must reject (read()); ops must throw synchronously. */
  async?: boolean;
  only?: BackendName;
}

const CASES: BadCase[] = [];

/** A case on `op`: valid args, then `patch` breaks one thing. */
function opCase(op: string, what: string, err: ErrClass, arg: string | string[], patch: (a: Args, ctx: Ctx) => void, only?: BackendName): void {
  CASES.push({
    name: `${op}: ${what}`,
    err,
    arg,
    only,
    build: (ctx) => {
      const a = validArgs(ctx, op);
      patch(a, ctx);
      return () => OPS[op]!.call(ctx.env.n, a);
    },
  });
}

// Generic cases for every tensor argument of every op.
for (const [op, spec] of Object.entries(OPS)) {
  for (const [name, t] of Object.entries(spec.tensors)) {
    opCase(op, `${name} destroyed`, TensorError, name, (a, c) => {
      a[name] = c.m(t.shape, 'float32', t.positive);
      a[name].destroy();
    });
    opCase(op, `${name} from another instance of the same backend`, TensorError, name, (a, c) => (a[name] = c.mOther(t.shape)));
    opCase(op, `${name} from the other backend`, TensorError, name, (a, c) => (a[name] = c.mForeign(t.shape)));
    opCase(op, `${name} a Float32Array`, TensorError, name, (a) => (a[name] = new Float32Array(t.shape.reduce((p, d) => p * d, 1))));
    opCase(op, `${name} a plain object shaped like a tensor`, TensorError, name, (a) => (a[name] = { shape: t.shape, dtype: 'float32', size: 1, destroyed: false }));
    opCase(op, `${name} a number`, TensorError, name, (a) => (a[name] = 3));
    if (t.required) {
      opCase(op, `${name} null`, TensorError, name, (a) => (a[name] = null));
      opCase(op, `${name} undefined`, TensorError, name, (a) => (a[name] = undefined));
    }
    if (!t.primary) {
      const bad = [...t.shape.slice(0, -1), t.shape[t.shape.length - 1]! + 1];
      opCase(op, `${name} of shape [${bad}] (wrong last dim)`, ShapeError, name, (a, c) => (a[name] = c.m(bad, 'float32', t.positive)));
      const extra = [...t.shape, 1];
      opCase(op, `${name} of shape [${extra}] (extra dim)`, ShapeError, name, (a, c) => (a[name] = c.m(extra, 'float32', t.positive)));
    }
    if (t.dtypeChecked) opCase(op, `${name} float16 with float32 data`, DTypeError, name, (a, c) => (a[name] = c.m(t.shape, 'float16', t.positive)));
  }
  opCase(op, 'options null', ValueError, 'options', (a) => {
    // Every op takes its options object last; replace it by null through a wrapper below.
    a.__options = null;
  });
}

// Options replaced wholesale (null / a number) need the raw call: patch OPS calls for __options.
for (const spec of Object.values(OPS)) {
  const call = spec.call;
  spec.call = (n, a) => {
    if (!('__options' in a)) return call(n, a);
    // Re-issue the call with the options argument replaced: capture what call() would pass.
    const proxy = new Proxy(n, {
      get(target, prop, recv) {
        const v = Reflect.get(target, prop, recv);
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => (v as (...x: unknown[]) => unknown).apply(target, [...args.slice(0, -1), a.__options]);
      },
    });
    return call(proxy, a);
  };
}
for (const op of Object.keys(OPS)) opCase(op, 'options a number', ValueError, 'options', (a) => (a.__options = 5));

// Row norms.
for (const op of ['layerNorm', 'rmsNorm', 'layerNormBackward', 'rmsNormBackward']) {
  const fwd = !op.endsWith('Backward');
  opCase(op, 'normalizedShape [2.5]', ShapeError, 'normalizedShape', (a) => (a.normalizedShape = [2.5]));
  opCase(op, 'normalizedShape [-8]', ShapeError, 'normalizedShape', (a) => (a.normalizedShape = [-8]));
  opCase(op, 'normalizedShape [NaN]', ShapeError, 'normalizedShape', (a) => (a.normalizedShape = [NaN]));
  opCase(op, 'normalizedShape [Infinity]', ShapeError, 'normalizedShape', (a) => (a.normalizedShape = [Infinity]));
  opCase(op, "normalizedShape ['8']", ShapeError, 'normalizedShape', (a) => (a.normalizedShape = ['8']));
  opCase(op, 'normalizedShape []', ShapeError, 'normalizedShape', (a) => (a.normalizedShape = []));
  opCase(op, 'normalizedShape a number', ShapeError, 'normalizedShape', (a) => (a.normalizedShape = 8));
  opCase(op, 'normalizedShape missing', ShapeError, 'normalizedShape', (a) => (a.normalizedShape = undefined));
  opCase(op, 'normalizedShape [7] (x does not end with it)', ShapeError, ['x', 'normalizedShape'], (a) => (a.normalizedShape = [7]));
  opCase(op, 'normalizedShape [4, 3, 8] longer than x', ShapeError, ['x', 'normalizedShape'], (a) => (a.normalizedShape = [4, 3, 8]));
  opCase(op, 'x of rank 1 [8] with normalizedShape [3, 8]', ShapeError, ['x', 'normalizedShape'], (a, c) => {
    a.normalizedShape = [3, 8];
    a.x = c.m([8]);
  });
  if (fwd) {
    for (const eps of [NaN, Infinity, -Infinity, '1e-5']) {
      opCase(op, `eps ${typeof eps === 'string' ? `'${eps}'` : String(eps)}`, ValueError, 'eps', (a) => (a.eps = eps));
    }
  }
}
opCase('rmsNorm', 'bias given (rmsNorm has none)', ValueError, 'bias', (a, c) => (a.bias = c.m([8])));
opCase('layerNormBackward', 'mean of shape [6] (flattened)', ShapeError, 'mean', (a, c) => (a.mean = c.m([6])));
opCase('rmsNormBackward', 'rstd of shape [6] (flattened)', ShapeError, 'rstd', (a, c) => (a.rstd = c.m([6], 'float32', true)));
opCase('layerNormBackward', 'x float16, dy float32', DTypeError, 'dy', (a, c) => (a.x = c.m(ROWS_X, 'float16')));

// Channel norms.
for (const op of ['batchNorm', 'batchNormBackward', 'groupNorm', 'groupNormBackward', 'instanceNorm', 'instanceNormBackward']) {
  opCase(op, 'x of rank 1', ShapeError, 'x', (a, c) => {
    a.x = c.m([4]);
    if (a.dy) a.dy = c.m([4]);
  });
  opCase(op, 'x of rank 0', ShapeError, 'x', (a, c) => {
    a.x = c.m([]);
    if (a.dy) a.dy = c.m([]);
  });
  if (!op.endsWith('Backward') || op === 'batchNormBackward') {
    for (const eps of [NaN, -Infinity, Infinity, '0.1']) opCase(op, `eps ${String(eps)}`, ValueError, 'eps', (a) => (a.eps = eps));
  }
}
for (const op of ['batchNorm', 'batchNormBackward']) {
  opCase(op, 'x of rank 6 (more than 3 spatial dims)', ShapeError, 'x', (a, c) => {
    a.x = c.m([2, 3, 2, 2, 2, 2]);
    if (a.dy) a.dy = c.m([2, 3, 2, 2, 2, 2]);
  });
  for (const tr of [undefined, 1, 'true', null]) opCase(op, `training ${String(tr)}`, ValueError, 'training', (a) => (a.training = tr));
}
opCase('batchNorm', 'runningMean without runningVar', ValueError, 'runningVar', (a) => (a.runningVar = null));
opCase('batchNorm', 'runningVar without runningMean', ValueError, 'runningMean', (a) => (a.runningMean = null));
opCase('batchNorm', 'eval without running stats', ValueError, 'runningMean', (a) => {
  a.training = false;
  a.runningMean = null;
  a.runningVar = null;
});
opCase('batchNorm', 'training with one value per channel [1, 3]', ValueError, 'x', (a, c) => (a.x = c.m([1, 3])));
opCase('batchNorm', 'training with one value per channel [1, 3, 1, 1]', ValueError, 'x', (a, c) => (a.x = c.m([1, 3, 1, 1])));
for (const m of [NaN, Infinity, '0.1']) opCase('batchNorm', `momentum ${String(m)}`, ValueError, 'momentum', (a) => (a.momentum = m));
for (const nbt of [-1, 1.5, NaN]) {
  opCase('batchNorm', `numBatchesTracked ${nbt} with momentum null`, ValueError, 'numBatchesTracked', (a) => {
    a.momentum = null;
    a.numBatchesTracked = nbt;
  });
}
opCase('batchNormBackward', 'training without saveMean', ValueError, 'saveMean', (a) => (a.saveMean = null));
opCase('batchNormBackward', 'training without saveInvstd', ValueError, 'saveInvstd', (a) => (a.saveInvstd = null));
opCase('batchNormBackward', 'eval without runningMean', ValueError, 'runningMean', (a, c) => {
  a.training = false;
  a.runningVar = c.m([3], 'float32', true);
});
opCase('batchNormBackward', 'eval without runningVar', ValueError, 'runningVar', (a, c) => {
  a.training = false;
  a.runningMean = c.m([3]);
});
for (const op of ['groupNorm', 'groupNormBackward']) {
  for (const g of [3, 0, -2, 2.5, NaN, '2', undefined, 8]) {
    opCase(op, `numGroups ${String(g)} for 4 channels`, ValueError, 'numGroups', (a) => (a.numGroups = g));
  }
}
opCase('groupNorm', "activation 'relu'", ValueError, 'activation', (a) => (a.activation = 'relu'));
opCase('groupNormBackward', 'mean [2, 4] for numGroups 2', ShapeError, 'mean', (a, c) => (a.mean = c.m([2, 4])));
opCase('groupNormBackward', 'rstd [4] (flattened)', ShapeError, 'rstd', (a, c) => (a.rstd = c.m([4], 'float32', true)));
opCase('instanceNorm', 'one spatial element per channel [2, 3]', ValueError, 'x', (a, c) => (a.x = c.m([2, 3])));
opCase('instanceNorm', 'one spatial element per channel [2, 3, 1, 1]', ValueError, 'x', (a, c) => (a.x = c.m([2, 3, 1, 1])));
opCase('instanceNorm', 'one spatial element per channel, empty batch [0, 3, 1] (as PyTorch)', ValueError, 'x', (a, c) => (a.x = c.m([0, 3, 1])));
opCase('groupNorm', 'one value per group in the batch [1, 2, 1], numGroups 2', ValueError, 'x', (a, c) => {
  a.x = c.m([1, 2, 1]);
  a.weight = c.m([2]);
  a.bias = c.m([2]);
});
opCase('groupNorm', 'one value per group in the batch [1, 4], numGroups 4', ValueError, 'x', (a, c) => {
  a.x = c.m([1, 4]);
  a.numGroups = 4;
  a.weight = null;
  a.bias = null;
});
opCase('instanceNormBackward', 'mean [2, 1] (group-norm shaped)', ShapeError, 'mean', (a, c) => (a.mean = c.m([2, 1])));

// Weight norm.
for (const op of ['weightNorm', 'weightNormBackward']) {
  for (const d of [2, -3, 7, 0.5, NaN, '0', Infinity]) opCase(op, `dim ${String(d)} for v of rank 2`, ValueError, 'dim', (a) => (a.dim = d));
  opCase(op, 'g [4, 2]', ShapeError, 'g', (a, c) => (a.g = c.m([4, 2])));
  opCase(op, 'g [5] (1-D, wrong size)', ShapeError, 'g', (a, c) => (a.g = c.m([5])));
  opCase(op, 'g [1, 4] (ones on the wrong dim)', ShapeError, 'g', (a, c) => (a.g = c.m([1, 4])));
  opCase(op, 'dim null with g [4, 1]', ShapeError, 'g', (a) => (a.dim = null));
  opCase(op, 'dim 1 with g [4, 1]', ShapeError, 'g', (a) => (a.dim = 1));
}
opCase('weightNorm', 'v of rank 0', ShapeError, 'v', (a, c) => {
  a.v = c.m([]);
  a.g = c.m([]);
});
opCase('weightNormBackward', 'norms [4] with g [4, 1]', ShapeError, 'norms', (a, c) => (a.norms = c.m([4], 'float32', true)));
opCase('weightNormBackward', 'v float16, dw float32', DTypeError, 'dw', (a, c) => (a.v = c.m([4, 6], 'float16')));

// tensor(), wrap() and read().
function apiCase(name: string, err: ErrClass, arg: string, build: (ctx: Ctx) => () => unknown, extra: Partial<BadCase> = {}): void {
  CASES.push({ name, err, arg, build, ...extra });
}
const data8 = new Float32Array(8);
for (const shape of [[2.5, 3.2], [-8], [NaN], [Infinity], [8, -1, -1], ['8'], [null]] as unknown[][]) {
  apiCase(`tensor: shape ${JSON.stringify(shape)}`, ShapeError, 'shape', (c) => () => c.env.n.tensor(data8, shape as number[]));
}
apiCase('tensor: shape a number', ShapeError, 'shape', (c) => () => c.env.n.tensor(data8, 8 as unknown as number[]));
apiCase('tensor: shape null', ShapeError, 'shape', (c) => () => c.env.n.tensor(data8, null as unknown as number[]));
apiCase('tensor: 8 values for shape [3, 3]', ShapeError, 'data', (c) => () => c.env.n.tensor(data8, [3, 3]));
apiCase('tensor: 8 values for shape [] (one element)', ShapeError, 'data', (c) => () => c.env.n.tensor(data8, []));
apiCase('tensor: data null', ShapeError, 'data', (c) => () => c.env.n.tensor(null as unknown as Float32Array, [8]));
for (const dt of ['float64', 'int32', 'f32', 'FLOAT32', 'half', '', null]) {
  apiCase(`tensor: dtype ${JSON.stringify(dt)}`, DTypeError, 'dtype', (c) => () => c.env.n.tensor(data8, [8], dt as DType));
}
apiCase('read: destroyed tensor', TensorError, 'tensor', (c) => {
  const t = c.m([4]);
  t.destroy();
  return () => c.env.n.read(t);
}, { async: true });
apiCase('read: tensor of another instance', TensorError, 'tensor', (c) => {
  const t = c.mOther([4]);
  return () => c.env.n.read(t);
}, { async: true });
apiCase('read: tensor of the other backend', TensorError, 'tensor', (c) => {
  const t = c.mForeign([4]);
  return () => c.env.n.read(t);
}, { async: true });
apiCase('read: a Float32Array', TensorError, 'tensor', (c) => () => c.env.n.read(new Float32Array(4) as unknown as Tensor), { async: true });
// wrap() exists on the webgpu backend only.
const STORAGE_COPY = 0x80 | 0x4 | 0x8;
apiCase('wrap: buffer too small for the shape', ShapeError, 'buffer', (c) => {
  const buf = c.env.n.device!.createBuffer({ size: 16, usage: STORAGE_COPY });
  return () => c.env.n.wrap(buf, [8]);
}, { only: 'webgpu' });
apiCase('wrap: not a GPUBuffer', TensorError, 'buffer', (c) => () => c.env.n.wrap(new Float32Array(8) as unknown as GPUBuffer, [8]), { only: 'webgpu' });
apiCase('wrap: shape [-8]', ShapeError, 'shape', (c) => {
  const buf = c.env.n.device!.createBuffer({ size: 64, usage: STORAGE_COPY });
  return () => c.env.n.wrap(buf, [-8]);
}, { only: 'webgpu' });
apiCase("wrap: dtype 'float64'", DTypeError, 'dtype', (c) => {
  const buf = c.env.n.device!.createBuffer({ size: 64, usage: STORAGE_COPY });
  return () => c.env.n.wrap(buf, [8], 'float64' as DType);
}, { only: 'webgpu' });

// ---------------------------------------------------------------------------------------------
// Runner.

const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** Every live tracked tensor, read back through its own instance. */
async function snapshot(ctx: Ctx): Promise<(Float32Array | null)[]> {
  return Promise.all(ctx.tracked.map((k) => (k.t.destroyed ? null : k.owner.read(k.t))));
}

function describeTracked(k: Tracked, i: number): string {
  return `input #${i} shape [${k.t.shape}] ${k.t.dtype}`;
}

/** Inputs must read back bit-identical to `before`, and float32 ones equal to the uploaded data. */
function expectUnchanged(label: string, ctx: Ctx, before: (Float32Array | null)[], after: (Float32Array | null)[]): void {
  ctx.tracked.forEach((k, i) => {
    const b = before[i], a = after[i];
    if (!b || !a) return;
    const what = `${label}: ${describeTracked(k, i)}`;
    expect([...bits(a)], `${what} changed by the failed call`).toEqual([...bits(b)]);
    if (k.t.dtype === 'float32') expect([...bits(a)], `${what} differs from the uploaded data`).toEqual([...bits(k.host)]);
  });
}

function checkError(label: string, e: unknown, c: { err: ErrClass; arg: string | string[] }): void {
  if (!(e instanceof NormError)) throw new Error(`${label}: expected ${c.err.name}, got a non-NormError: ${String(e)}`, { cause: e });
  expect(e, `${label}: error class (got ${e.name}: ${e.message})`).toBeInstanceOf(c.err);
  expect(e.name, `${label}: exact error class (${e.message})`).toBe(c.err.name);
  const args = Array.isArray(c.arg) ? c.arg : [c.arg];
  expect(args, `${label}: err.argument (${e.message})`).toContain(e.argument);
  expect(e.message, `${label}: the message names the argument`).toContain(e.argument!);
}

let gpuEnv: Env;
let cpuEnv: Env;
beforeAll(async () => {
  const gpu = await gpuNorms();
  const gpu2 = await sameDevice(gpu, { poisonOutputs: true });
  const cpu = await createNorms({ backend: 'cpu' });
  const cpu2 = await createNorms({ backend: 'cpu' });
  gpuEnv = { n: gpu, other: gpu2, foreign: cpu };
  cpuEnv = { n: cpu, other: cpu2, foreign: gpu };
});
afterAll(() => {
  gpuEnv?.other.destroy();
  gpuEnv?.n.destroy();
  cpuEnv?.n.destroy();
  cpuEnv?.other.destroy();
});
const envOf = (b: BackendName): Env => (b === 'cpu' ? cpuEnv : gpuEnv);

function freeAll(ctx: Ctx): void {
  for (const k of ctx.tracked) k.t.destroy();
}

async function runBad(backend: BackendName, c: BadCase): Promise<void> {
  const env = envOf(backend);
  const label = `[${backend}] ${c.name}`;
  const ctx = new Ctx(env);
  const statsBefore = env.n.stats();
  try {
    const call = c.build(ctx);
    const before = await snapshot(ctx);
    const liveBefore = env.n.stats();
    let thrown: unknown = undefined;
    let threw = false;
    let result: unknown;
    try {
      result = call();
    } catch (e) {
      threw = true;
      thrown = e;
    }
    if (c.async) {
      expect(threw, `${label}: read() must reject, not throw synchronously`).toBe(false);
      try {
        await result;
      } catch (e) {
        threw = true;
        thrown = e;
      }
    } else if (!threw) {
      // The op accepted the input: free what it returned, then fail.
      if (result && typeof result === 'object') for (const v of Object.values(result)) if (v instanceof Tensor) v.destroy();
      throw new Error(`${label}: expected ${c.err.name} naming ${String(c.arg)}, but the call returned ${result && typeof result === 'object' ? Object.keys(result).join(', ') : String(result)}`);
    }
    expect(threw, `${label}: must fail`).toBe(true);
    checkError(label, thrown, c);
    expect(env.n.stats(), `${label}: GPU buffers allocated by the failed call`).toEqual(liveBefore);
    expectUnchanged(label, ctx, before, await snapshot(ctx));
  } finally {
    freeAll(ctx);
  }
  expect(env.n.stats(), `${label}: buffers left after freeing the inputs`).toEqual(statsBefore);
}

describe('bad input: one table over every op, both backends', () => {
  for (const backend of ['cpu', 'webgpu'] as const) {
    describe(backend, () => {
      for (const c of CASES) {
        if (c.only && (c.only !== backend || (ON_WASM && c.only === 'webgpu'))) continue;
        it(c.name, () => runBad(backend, c));
      }
    });
  }
  it('covers every op', () => {
    for (const op of Object.keys(OPS)) expect(CASES.filter((c) => c.name.startsWith(`${op}:`)).length, op).toBeGreaterThan(10);
  });
});

// ---------------------------------------------------------------------------------------------
// Zero-size dims: the same outcome on both backends.

interface ZeroCase {
  name: string;
  op: string;
  tensors: Record<string, number[]>;
  opts?: Args;
}

const ZERO: ZeroCase[] = [
  { name: 'layerNorm x [0, 8]', op: 'layerNorm', tensors: { x: [0, 8], weight: [8], bias: [8] } },
  { name: 'layerNorm x [2, 0, 8]', op: 'layerNorm', tensors: { x: [2, 0, 8], weight: [8], bias: [8] } },
  { name: 'layerNorm x [3, 0] normalizedShape [0]', op: 'layerNorm', tensors: { x: [3, 0], weight: [0], bias: [0] }, opts: { normalizedShape: [0] } },
  { name: 'layerNormBackward x [0, 8]', op: 'layerNormBackward', tensors: { dy: [0, 8], x: [0, 8], mean: [0], rstd: [0], weight: [8], bias: [8] } },
  { name: 'layerNormBackward x [3, 0] normalizedShape [0]', op: 'layerNormBackward', tensors: { dy: [3, 0], x: [3, 0], mean: [3], rstd: [3], weight: [0], bias: [0] }, opts: { normalizedShape: [0] } },
  { name: 'rmsNorm x [0, 8]', op: 'rmsNorm', tensors: { x: [0, 8], weight: [8] } },
  { name: 'rmsNorm x [3, 0] normalizedShape [0]', op: 'rmsNorm', tensors: { x: [3, 0], weight: [0] }, opts: { normalizedShape: [0] } },
  { name: 'rmsNormBackward x [0, 8]', op: 'rmsNormBackward', tensors: { dy: [0, 8], x: [0, 8], rstd: [0], weight: [8] } },
  { name: 'batchNorm training x [0, 3, 4]', op: 'batchNorm', tensors: { x: [0, 3, 4], weight: [3], bias: [3], runningMean: [3], runningVar: [3] } },
  { name: 'batchNorm training x [2, 3, 0]', op: 'batchNorm', tensors: { x: [2, 3, 0], weight: [3], bias: [3] } },
  { name: 'batchNorm training x [2, 0, 4] (no channels)', op: 'batchNorm', tensors: { x: [2, 0, 4], weight: [0], bias: [0], runningMean: [0], runningVar: [0] } },
  { name: 'batchNorm eval x [0, 3, 4]', op: 'batchNorm', tensors: { x: [0, 3, 4], weight: [3], bias: [3], runningMean: [3], runningVar: [3] }, opts: { training: false } },
  { name: 'batchNormBackward training x [0, 3, 4]', op: 'batchNormBackward', tensors: { dy: [0, 3, 4], x: [0, 3, 4], weight: [3], bias: [3], saveMean: [3], saveInvstd: [3] } },
  { name: 'batchNormBackward eval x [0, 3, 4]', op: 'batchNormBackward', tensors: { dy: [0, 3, 4], x: [0, 3, 4], weight: [3], bias: [3], runningMean: [3], runningVar: [3] }, opts: { training: false } },
  { name: 'groupNorm x [0, 4, 3]', op: 'groupNorm', tensors: { x: [0, 4, 3], weight: [4], bias: [4] } },
  { name: 'groupNorm x [2, 4, 0]', op: 'groupNorm', tensors: { x: [2, 4, 0], weight: [4], bias: [4] } },
  { name: 'groupNormBackward x [0, 4, 3]', op: 'groupNormBackward', tensors: { dy: [0, 4, 3], x: [0, 4, 3], mean: [0, 2], rstd: [0, 2], weight: [4], bias: [4] } },
  { name: 'groupNormBackward x [2, 4, 0]', op: 'groupNormBackward', tensors: { dy: [2, 4, 0], x: [2, 4, 0], mean: [2, 2], rstd: [2, 2], weight: [4], bias: [4] } },
  { name: 'instanceNorm x [0, 3, 5]', op: 'instanceNorm', tensors: { x: [0, 3, 5], weight: [3], bias: [3] } },
  { name: 'instanceNorm x [2, 3, 0]', op: 'instanceNorm', tensors: { x: [2, 3, 0], weight: [3], bias: [3] } },
  { name: 'instanceNormBackward x [0, 3, 5]', op: 'instanceNormBackward', tensors: { dy: [0, 3, 5], x: [0, 3, 5], mean: [0, 3], rstd: [0, 3], weight: [3], bias: [3] } },
  { name: 'weightNorm v [0, 6] dim 0', op: 'weightNorm', tensors: { v: [0, 6], g: [0, 1] } },
  { name: 'weightNorm v [4, 0] dim 0', op: 'weightNorm', tensors: { v: [4, 0], g: [4, 1] } },
  { name: 'weightNorm v [4, 0] dim null', op: 'weightNorm', tensors: { v: [4, 0], g: [1, 1] }, opts: { dim: null } },
  { name: 'weightNormBackward v [0, 6] dim 0', op: 'weightNormBackward', tensors: { dw: [0, 6], v: [0, 6], g: [0, 1], norms: [0, 1] } },
  { name: 'weightNormBackward v [4, 0] dim 0', op: 'weightNormBackward', tensors: { dw: [4, 0], v: [4, 0], g: [4, 1], norms: [4, 1] } },
];

type Outcome =
  | { ok: true; outputs: Record<string, { shape: number[]; dtype: DType; data: Float32Array } | null> }
  | { ok: false; name: string; argument: string | undefined; message: string };

async function runZero(env: Env, c: ZeroCase): Promise<{ outcome: Outcome; ctx: Ctx; before: (Float32Array | null)[] }> {
  const ctx = new Ctx(env);
  const spec = OPS[c.op]!;
  const a: Args = { ...spec.opts, ...(c.opts ?? {}) };
  for (const [name, shape] of Object.entries(c.tensors)) a[name] = ctx.m(shape, 'float32', spec.tensors[name]?.positive);
  const before = await snapshot(ctx);
  let outcome: Outcome;
  let out: Record<string, unknown> | null = null;
  try {
    out = spec.call(env.n, a) as Record<string, unknown>;
    const outputs: Record<string, { shape: number[]; dtype: DType; data: Float32Array } | null> = {};
    for (const [k, v] of Object.entries(out)) {
      if (v === null) outputs[k] = null;
      else if (v instanceof Tensor) outputs[k] = { shape: [...v.shape], dtype: v.dtype, data: await env.n.read(v) };
    }
    outcome = { ok: true, outputs };
  } catch (e) {
    if (!(e instanceof Error)) throw e;
    outcome = { ok: false, name: e.name, argument: (e as NormError).argument, message: e.message };
  } finally {
    if (out) for (const v of Object.values(out)) if (v instanceof Tensor) v.destroy();
  }
  return { outcome, ctx, before };
}

describe('zero-size dims: both backends agree', () => {
  for (const c of ZERO) {
    it(c.name, async () => {
      const gStats = gpuEnv.n.stats();
      const cpu = await runZero(cpuEnv, c);
      const gpu = await runZero(gpuEnv, c);
      try {
        const o = { cpu: cpu.outcome, gpu: gpu.outcome };
        const show = (x: Outcome): string => (x.ok ? `ok: ${Object.entries(x.outputs).map(([k, v]) => `${k} ${v ? `[${v.shape}] ${v.dtype}` : 'null'}`).join(', ')}` : `${x.name}(${x.argument}): ${x.message}`);
        const label = `${c.name}\n  cpu: ${show(o.cpu)}\n  gpu: ${show(o.gpu)}`;
        expect(o.gpu.ok, `${label}\n  succeeds on one backend only`).toBe(o.cpu.ok);
        if (!o.cpu.ok && !o.gpu.ok) {
          expect(o.gpu.name, label).toBe(o.cpu.name);
          expect(o.gpu.argument, label).toBe(o.cpu.argument);
          expect(o.cpu.name, `${label}\n  must be a typed NormError`).not.toBe('Error');
          expect(['ShapeError', 'ValueError'], `${label}\n  a zero-size dim is a shape or value problem`).toContain(o.cpu.name);
        } else if (o.cpu.ok && o.gpu.ok) {
          expect(Object.keys(o.gpu.outputs).sort(), label).toEqual(Object.keys(o.cpu.outputs).sort());
          for (const [k, co] of Object.entries(o.cpu.outputs)) {
            const go = o.gpu.outputs[k]!;
            expect(go === null, `${label}\n  ${k} null on one backend only`).toBe(co === null);
            if (!co || !go) continue;
            expect(go.shape, `${label}\n  shape of ${k}`).toEqual(co.shape);
            expect(go.dtype, `${label}\n  dtype of ${k}`).toBe(co.dtype);
            expect(go.data.length, `${label}\n  length of ${k}`).toBe(co.data.length);
            const err = relativeL2(go.data, co.data);
            expect(err, `${label}\n  ${k}: gpu [${[...go.data]}] vs cpu [${[...co.data]}]`).toBeLessThanOrEqual(1e-4);
          }
        }
        // Inputs unchanged on both backends (running stats included).
        expectUnchanged(`[cpu] ${c.name}`, cpu.ctx, cpu.before, await snapshot(cpu.ctx));
        expectUnchanged(`[webgpu] ${c.name}`, gpu.ctx, gpu.before, await snapshot(gpu.ctx));
      } finally {
        freeAll(cpu.ctx);
        freeAll(gpu.ctx);
      }
      expect(gpuEnv.n.stats(), `${c.name}: GPU buffers left behind`).toEqual(gStats);
    });
  }
});

// Keep DeviceError referenced for the type import list (wrap on the cpu backend).
it('wrap on the cpu backend is a DeviceError', async () => {
  expect(() => cpuEnv.n.wrap({ size: 64 } as GPUBuffer, [4])).toThrow(DeviceError);
});

// ---- 2. shared fixtures per op ----

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
const ARG_CASES: Record<string, Case[]> = {
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
      other = backend === 'webgpu' ? await sameDevice(n, { poisonOutputs: true }) : await createNorms({ backend: 'cpu' });
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

    for (const [op, cases] of Object.entries(ARG_CASES)) {
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
