/**
 * Bad input, table-driven over every op, on both backends (the float64 CPU reference and WebGPU
 * in Node). One table of cases; each case builds valid inputs for one op, breaks exactly one
 * thing, and asserts:
 *   - the op throws synchronously (read(): rejects) an error of exactly the expected class,
 *   - `err.argument` names the broken argument and the message mentions it,
 *   - no GPU buffer was allocated (stats() unchanged: no partially written output exists),
 *   - every input tensor (of every instance involved) reads back bit-identical to what was
 *     uploaded (batchNorm's running stats included: a rejected call must not update them).
 * A second table covers zero-size dims: whatever the library does (empty outputs of the right
 * shapes, or an error), both backends must do the same, with the same values.
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
import { gpuNorms } from './util/gpu.ts';
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
  const gpu2 = await createNorms({ backend: 'webgpu', device: gpu.device!, poisonOutputs: true });
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
        if (c.only && c.only !== backend) continue;
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
