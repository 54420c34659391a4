/**
 * Strict inputs, table-driven, on both backends: every options object rejects an unknown key
 * (ValueError naming the key and the nearest known one), tensor() rejects non-numeric data
 * naming the index of the first bad element, and a wrong-typed scalar option names the type it
 * got. Nothing is allocated by a rejected call.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNorms, DTypeError, NormError, ShapeError, ValueError, type Norms, type Tensor } from '../src/index.ts';
import { gpuNorms } from './util/gpu.ts';

type ErrClass = abstract new (...a: never[]) => NormError;
/* eslint-disable @typescript-eslint/no-explicit-any */
type Call = (n: Norms, t: Record<string, Tensor>) => unknown;

/** Valid inputs for every op: rows x [2, 4]; channels xc [2, 4, 3] with 2 groups; weight norm v [4, 3]. */
function fixtures(n: Norms): Record<string, Tensor> {
  const f = (shape: number[], v = 0.5) => n.tensor(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => v + (i % 7) * 0.25), shape);
  return {
    x: f([2, 4]), dy: f([2, 4]), w: f([4]), b: f([4]), mean: f([2]), rstd: f([2], 1),
    xc: f([2, 4, 3]), dyc: f([2, 4, 3]), wc: f([4]), bc: f([4]), rm: f([4]), rv: f([4], 1),
    gmean: f([2, 2]), grstd: f([2, 2], 1), imean: f([2, 4]), irstd: f([2, 4], 1),
    v: f([4, 3]), g: f([4, 1], 1), norms: f([4, 1], 1), dw: f([4, 3]),
  };
}

/** Each op with valid options; `o` is merged into them. */
const OPS: Record<string, (o: Record<string, unknown>) => Call> = {
  layerNorm: (o) => (n, t) => n.layerNorm(t.x!, { normalizedShape: [4], weight: t.w, ...o } as any),
  rmsNorm: (o) => (n, t) => n.rmsNorm(t.x!, { normalizedShape: [4], ...o } as any),
  layerNormBackward: (o) => (n, t) => n.layerNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, { normalizedShape: [4], ...o } as any),
  rmsNormBackward: (o) => (n, t) => n.rmsNormBackward(t.dy!, t.x!, t.rstd!, { normalizedShape: [4], ...o } as any),
  batchNorm: (o) => (n, t) => n.batchNorm(t.xc!, { training: false, runningMean: t.rm, runningVar: t.rv, ...o } as any),
  batchNormBackward: (o) => (n, t) => n.batchNormBackward(t.dyc!, t.xc!, { training: false, runningMean: t.rm, runningVar: t.rv, ...o } as any),
  groupNorm: (o) => (n, t) => n.groupNorm(t.xc!, { numGroups: 2, ...o } as any),
  groupNormBackward: (o) => (n, t) => n.groupNormBackward(t.dyc!, t.xc!, t.gmean!, t.grstd!, { numGroups: 2, ...o } as any),
  instanceNorm: (o) => (n, t) => n.instanceNorm(t.xc!, { ...o } as any),
  instanceNormBackward: (o) => (n, t) => n.instanceNormBackward(t.dyc!, t.xc!, t.imean!, t.irstd!, { ...o } as any),
  weightNorm: (o) => (n, t) => n.weightNorm(t.v!, t.g!, { ...o } as any),
  weightNormBackward: (o) => (n, t) => n.weightNormBackward(t.dw!, t.v!, t.g!, t.norms!, { ...o } as any),
};

interface Case {
  name: string;
  call: Call;
  cls: ErrClass;
  argument: string;
  /** The whole message, or a pattern it must match. */
  message: string | RegExp;
}

const cases: Case[] = [];
const add = (name: string, call: Call, cls: ErrClass, argument: string, message: string | RegExp) => cases.push({ name, call, cls, argument, message });

// ---- unknown option keys: a misspelling of each op's options, and one far from any ----
const TYPOS: [op: string, key: string, near: string][] = [
  ['layerNorm', 'wieght', 'weight'],
  ['layerNorm', 'Bias', 'bias'],
  ['layerNorm', 'normalizedShapes', 'normalizedShape'],
  ['layerNorm', 'epsilon', 'eps'],
  ['rmsNorm', 'residul', 'residual'],
  ['layerNormBackward', 'eps', 'bias'],
  ['rmsNormBackward', 'weights', 'weight'],
  ['batchNorm', 'runing_mean', 'runningMean'],
  ['batchNorm', 'momentun', 'momentum'],
  ['batchNorm', 'numBatchTracked', 'numBatchesTracked'],
  ['batchNormBackward', 'saveInvStd', 'saveInvstd'],
  ['batchNormBackward', 'traning', 'training'],
  ['groupNorm', 'num_groups', 'numGroups'],
  ['groupNorm', 'activaton', 'activation'],
  ['groupNormBackward', 'wieght', 'weight'],
  ['instanceNorm', 'esp', 'eps'],
  ['instanceNormBackward', 'bais', 'bias'],
  ['weightNorm', 'dims', 'dim'],
  ['weightNormBackward', 'axis', 'dim'],
];
for (const [op, key, near] of TYPOS) {
  add(`${op}: unknown option ${key}`, OPS[op]!({ [key]: 1 }), ValueError, key, new RegExp(`^${key}: unknown option of ${op}; did you mean ${near}\\?`));
}
add('layerNorm: the issue\'s example, exactly', OPS.layerNorm!({ wieght: 1 }), ValueError, 'wieght', 'wieght: unknown option of layerNorm; did you mean weight?');
add('layerNorm: a key far from every option lists them', OPS.layerNorm!({ channelsLast: true }), ValueError, 'channelsLast', /^channelsLast: unknown option of layerNorm; did you mean .*\? \(options of layerNorm: normalizedShape, weight, bias, eps, residual, scale, shift, scaleOffset, gate\)$/);
add('layerNorm: an unknown key set to undefined is still unknown', OPS.layerNorm!({ wieght: undefined }), ValueError, 'wieght', /did you mean weight\?/);
add('groupNorm: options given as an array', (n, t) => n.groupNorm(t.xc!, [2] as any), ValueError, 'options', 'groupNorm: options must be an object, got an array');
add('weightNorm: options given as a number', (n, t) => n.weightNorm(t.v!, t.g!, 0 as any), ValueError, 'options', 'weightNorm: options must be an object, got number 0');

// ---- wrong types name the type they got ----
for (const op of ['layerNorm', 'rmsNorm', 'batchNorm', 'batchNormBackward', 'groupNorm', 'instanceNorm']) {
  add(`${op}: eps as a string`, OPS[op]!({ eps: '1e-5' }), ValueError, 'eps', 'eps: expected a number, got string "1e-5"');
}
add('groupNorm: numGroups as a string', OPS.groupNorm!({ numGroups: '2' }), ValueError, 'numGroups', 'numGroups: expected a positive integer, got string "2"');
add('batchNorm: training as a string', OPS.batchNorm!({ training: 'false' }), ValueError, 'training', 'training: expected true or false, got string "false"');
add('batchNorm: momentum as a string', OPS.batchNorm!({ momentum: '0.1' }), ValueError, 'momentum', 'momentum: expected a finite number or null, got string "0.1"');
add('batchNorm: numBatchesTracked as a string', OPS.batchNorm!({ training: true, momentum: null, numBatchesTracked: '3' }), ValueError, 'numBatchesTracked', 'numBatchesTracked: expected an integer >= 0, got string "3"');
add('groupNorm: activation as a boolean', OPS.groupNorm!({ activation: true }), ValueError, 'activation', "activation: expected 'silu' or null, got boolean true");
add('weightNorm: dim as a string', OPS.weightNorm!({ dim: '0' }), ValueError, 'dim', /^dim: expected an integer in \[-2, 1\] or null for v of shape \[4, 3\], got string "0"$/);

// ---- tensor(data) ----
add('tensor: strings', (n) => n.tensor(['a', 'b'] as any, [2]), DTypeError, 'data', 'data[0]: expected a number, got string "a" (the first non-number of 2 elements)');
add('tensor: a string among numbers', (n) => n.tensor([1, 2, '3', 4] as any, [4]), DTypeError, 'data', /^data\[2\]: expected a number, got string "3"/);
add('tensor: a hole', (n) => n.tensor([1, , 3] as any, [3]), DTypeError, 'data', /^data\[1\]: expected a number, got undefined/);
add('tensor: null element', (n) => n.tensor([0, 0, 0, null] as any, [4]), DTypeError, 'data', /^data\[3\]: expected a number, got null/);
add('tensor: boolean element', (n) => n.tensor([true, 1] as any, [2]), DTypeError, 'data', /^data\[0\]: expected a number, got boolean true/);
add('tensor: bigint typed array', (n) => n.tensor(new BigInt64Array(2) as any, [2]), DTypeError, 'data', /BigInt64Array/);
add('tensor: a string as data', (n) => n.tensor('ab' as any, [2]), ShapeError, 'data', 'data: expected an array or a typed array of numbers, got string "ab"');
add('tensor: dtype misspelled', (n) => n.tensor([1, 2], [2], 'f16' as any), DTypeError, 'dtype', `dtype: expected 'float32' or 'float16', got string "f16"`);

describe.each(['cpu', 'webgpu'] as const)('strict inputs, %s backend', (backend) => {
  let n: Norms;
  let t: Record<string, Tensor>;
  beforeAll(async () => {
    n = backend === 'cpu' ? await createNorms({ backend: 'cpu' }) : await gpuNorms();
    t = fixtures(n);
  });
  afterAll(() => n?.destroy());

  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const before = n.stats();
    let err: unknown = null;
    try {
      c.call(n, t);
    } catch (e) {
      err = e;
    }
    expect(err, 'the call did not throw').toBeInstanceOf(c.cls);
    const e = err as NormError;
    expect(e.argument).toBe(c.argument);
    if (typeof c.message === 'string') expect(e.message).toBe(c.message);
    else expect(e.message).toMatch(c.message);
    expect(n.stats()).toEqual(before);
  });

  it('every op still accepts its documented options', async () => {
    const calls: Call[] = [
      OPS.layerNorm!({ bias: t.b, eps: 1e-5, residual: null }),
      OPS.rmsNorm!({ weight: t.w, eps: 1e-6 }),
      OPS.layerNormBackward!({ weight: t.w, bias: t.b }),
      OPS.rmsNormBackward!({ weight: t.w }),
      OPS.batchNorm!({ training: true, weight: t.wc, bias: t.bc, momentum: null, eps: 1e-5, numBatchesTracked: 2 }),
      OPS.batchNormBackward!({ weight: t.wc, bias: t.bc, saveMean: null, saveInvstd: null, eps: 1e-5 }),
      OPS.groupNorm!({ weight: t.wc, bias: t.bc, eps: 1e-5, activation: 'silu' }),
      OPS.groupNormBackward!({ weight: t.wc, bias: t.bc }),
      OPS.instanceNorm!({ weight: t.wc, bias: t.bc, eps: 1e-5 }),
      OPS.instanceNormBackward!({ weight: t.wc, bias: t.bc }),
      OPS.weightNorm!({ dim: 0 }),
      OPS.weightNormBackward!({ dim: 0 }),
    ];
    for (const call of calls) {
      const out = call(n, t) as Record<string, Tensor | null>;
      for (const v of Object.values(out)) if (v) expect((await n.read(v)).length).toBe(v.size);
    }
  });
});

describe('strict inputs: createNorms', () => {
  const table: [name: string, options: Record<string, unknown>, argument: string, message: string | RegExp][] = [
    ['a misspelled key', { backnd: 'cpu' }, 'backnd', 'backnd: unknown option of createNorms; did you mean backend?'],
    ['another', { verfy: true, backend: 'cpu' }, 'verfy', 'verfy: unknown option of createNorms; did you mean verify?'],
    ['a key of an op', { eps: 1e-5, backend: 'cpu' }, 'eps', /^eps: unknown option of createNorms; did you mean .*\? \(options of createNorms: backend, device, gpu, verify, poisonOutputs, variant, maxBindingBytes, adapterClass, profile, float16, threads, threadMinBytes, simd\)$/],
    ['backend of the wrong type', { backend: 1 }, 'backend', "backend: expected 'auto', 'webgpu', 'wasm' or 'cpu', got number 1"],
    ['verify as a string', { backend: 'cpu', verify: 'yes' }, 'verify', 'verify: expected true or false, got string "yes"'],
    ['variant misspelled', { backend: 'cpu', variant: 'fast' }, 'variant', "variant: expected 'auto', 'fused' or 'general', got string \"fast\""],
    ['adapterClass misspelled', { backend: 'cpu', adapterClass: 'discrete' }, 'adapterClass', "adapterClass: expected 'auto', 'cpu' or 'gpu', got string \"discrete\""],
    ['float16 misspelled', { backend: 'cpu', float16: 'f16' }, 'float16', "float16: expected 'auto', 'native' or 'packed', got string \"f16\""],
    ['gpu as a string', { gpu: 'webgpu' }, 'gpu', /^gpu: expected a GPU .*, got string "webgpu"$/],
  ];
  it.each(table)('%s', async (_name, options, argument, message) => {
    const err = await createNorms(options as any).then(
      (n) => {
        n.destroy();
        return null;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ValueError);
    expect((err as ValueError).argument).toBe(argument);
    if (typeof message === 'string') expect((err as Error).message).toBe(message);
    else expect((err as Error).message).toMatch(message);
  });
});
