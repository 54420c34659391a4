/**
 * batchNorm / batchNormBackward on the webgpu backend (Dawn in Node; SwiftShader without a GPU)
 * against the float64 CPU reference: every output, and the running statistics the training
 * forward updates in place, within relative L2 1e-4.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValueError, type Norms } from '../src/index.ts';
import { expectClose } from './util/gpu.ts';
import { closeBackends, failIf, fmt, openBackends, parityReport, randn, uniform, type Backends, type HostIn } from './util/parity.ts';

let B: Backends;
beforeAll(async () => {
  B = await openBackends();
});
afterAll(() => closeBackends(B));

interface BnCase {
  shape: number[];
  weight?: boolean;
  bias?: boolean;
  /** Pass runningMean / runningVar (always given in eval). */
  running?: boolean;
  /** undefined: the default (0.1); null: cumulative average with numBatchesTracked. */
  momentum?: number | null;
  numBatchesTracked?: number;
  eps?: number;
  mean?: number;
  std?: number;
  seed: number;
}

const name = (c: BnCase): string =>
  `x ${fmt(c.shape)}${c.weight ? ' +w' : ''}${c.bias ? ' +b' : ''}${c.running ? ' +running' : ''}` +
  `${c.momentum !== undefined ? ` momentum ${c.momentum}` : ''}${c.numBatchesTracked !== undefined ? ` numBatchesTracked ${c.numBatchesTracked}` : ''}` +
  `${c.mean !== undefined ? ` mean ${c.mean}` : ''}${c.eps !== undefined ? ` eps ${c.eps}` : ''}`;

function inputs(c: BnCase, withRunning: boolean) {
  const C = c.shape[1]!;
  return {
    x: randn(c.seed, c.shape, c.mean ?? 0.5, c.std ?? 2),
    weight: c.weight ? randn(c.seed + 1, [C], 1, 0.5) : null,
    bias: c.bias ? randn(c.seed + 2, [C], 0.25, 0.5) : null,
    // Running stats near the batch's own (so that the update is not dominated by one term).
    runningMean: withRunning ? randn(c.seed + 3, [C], c.mean ?? 0.5, 1) : null,
    runningVar: withRunning ? uniform(c.seed + 4, [C], 0.5, 6) : null,
  };
}

const momentumOpts = (c: BnCase) => ({
  ...(c.momentum !== undefined ? { momentum: c.momentum } : {}),
  ...(c.numBatchesTracked !== undefined ? { numBatchesTracked: c.numBatchesTracked } : {}),
  ...(c.eps !== undefined ? { eps: c.eps } : {}),
});

/** Training forward (with the in-place running update) and training backward. */
async function trainParity(c: BnCase, gpu: Norms = B.gpu): Promise<void> {
  const label = `batchNorm training ${name(c)}`;
  const ins = inputs(c, !!c.running);
  const F = await parityReport(
    `${label}: forward`,
    gpu,
    B.cpu,
    ins,
    (n, t) => n.batchNorm(t.x!, { training: true, weight: t.weight, bias: t.bias, runningMean: t.runningMean, runningVar: t.runningVar, ...momentumOpts(c) }),
    { mutated: c.running ? ['runningMean', 'runningVar'] : [] },
  );
  const C = c.shape[1]!;
  expect(F.ref.saveMean!.length).toBe(C);
  expect(F.ref.saveInvstd!.length).toBe(C);
  const bins = {
    dy: randn(c.seed + 5, c.shape, 0.1, 1),
    x: ins.x,
    weight: ins.weight,
    bias: ins.bias,
    saveMean: { data: F.ref.saveMean!, shape: [C] } as HostIn,
    saveInvstd: { data: F.ref.saveInvstd!, shape: [C] } as HostIn,
  };
  const Bw = await parityReport(`${label}: backward`, gpu, B.cpu, bins, (n, t) =>
    n.batchNormBackward(t.dy!, t.x!, { training: true, weight: t.weight, bias: t.bias, saveMean: t.saveMean, saveInvstd: t.saveInvstd, ...(c.eps !== undefined ? { eps: c.eps } : {}) }),
  );
  expect(Object.keys(Bw.ref).sort()).toEqual(['dx', ...(c.weight ? ['dweight'] : []), ...(c.bias ? ['dbias'] : [])].sort());
  failIf([...F.failures, ...Bw.failures]);
}

/** Eval forward (running stats used and left unchanged) and eval backward. */
async function evalParity(c: BnCase, gpu: Norms = B.gpu): Promise<void> {
  const label = `batchNorm eval ${name(c)}`;
  const ins = inputs(c, true);
  const F = await parityReport(
    `${label}: forward`,
    gpu,
    B.cpu,
    ins,
    (n, t) => n.batchNorm(t.x!, { training: false, weight: t.weight, bias: t.bias, runningMean: t.runningMean, runningVar: t.runningVar, ...momentumOpts(c) }),
    { mutated: ['runningMean', 'runningVar'] },
  );
  expect(F.ref.runningMean).toEqual(ins.runningMean!.data);
  expect(F.ref.runningVar).toEqual(ins.runningVar!.data);
  const bins = { dy: randn(c.seed + 5, c.shape, 0.1, 1), x: ins.x, weight: ins.weight, bias: ins.bias, runningMean: ins.runningMean, runningVar: ins.runningVar };
  const Bw = await parityReport(
    `${label}: backward`,
    gpu,
    B.cpu,
    bins,
    (n, t) =>
      n.batchNormBackward(t.dy!, t.x!, { training: false, weight: t.weight, bias: t.bias, runningMean: t.runningMean, runningVar: t.runningVar, ...(c.eps !== undefined ? { eps: c.eps } : {}) }),
    { mutated: ['runningMean', 'runningVar'] },
  );
  expect(Object.keys(Bw.ref).sort()).toEqual(['dx', ...(c.weight ? ['dweight'] : []), ...(c.bias ? ['dbias'] : []), 'runningMean', 'runningVar'].sort());
  failIf([...F.failures, ...Bw.failures]);
}

const SHAPES = [
  [1, 1, 1, 2],
  [2, 3],
  [8, 3, 5, 5],
  [4, 7, 9, 11],
  [1, 2, 4, 4, 4],
];

/**
 * Two values per channel ([1, 1, 1, 2], [2, 3]) get a large eps in training: there x̂ = ±a with
 * 1 − a² = eps/(var + eps), and dx = w·invstd·(dy₁ − dy₂)/2·(1 − a²) is a cancellation that
 * with eps = 1e-5 falls below float32 resolution (no float32 kernel can reach 1e-4 relative).
 */
const twoPerChannel = (shape: number[]) => shape[0]! * shape.slice(2).reduce((a, b) => a * b, 1) === 2;

describe('batchNorm training parity', () => {
  const cases: BnCase[] = SHAPES.map((shape, i) => ({ shape, weight: true, bias: true, running: true, seed: 2000 + 10 * i, ...(twoPerChannel(shape) ? { eps: 0.5 } : {}) }));
  cases.push(
    // No spatial dims, more than two values per channel, default eps.
    { shape: [8, 3], weight: true, bias: true, running: true, seed: 2100 },
    // Without affine and without running stats.
    { shape: [2, 3], eps: 0.5, seed: 2101 },
    { shape: [8, 3, 5, 5], seed: 2102 },
    // Weight only / bias only, custom momentum.
    { shape: [4, 7, 9, 11], weight: true, running: true, momentum: 0.3, seed: 2103 },
    { shape: [1, 2, 4, 4, 4], bias: true, running: true, momentum: 0.75, seed: 2104 },
    // momentum null: cumulative average, m = 1 / (numBatchesTracked + 1).
    { shape: [8, 3, 5, 5], weight: true, bias: true, running: true, momentum: null, numBatchesTracked: 0, seed: 2105 },
    { shape: [4, 7, 9, 11], weight: true, bias: true, running: true, momentum: null, numBatchesTracked: 3, seed: 2106 },
    { shape: [2, 3], running: true, momentum: null, eps: 0.5, seed: 2107 },
    // A custom eps.
    { shape: [8, 3, 5, 5], weight: true, bias: true, running: true, eps: 1e-2, std: 0.05, seed: 2108 },
    // Large mean offset: x = 1e4 + N(0, 1).
    { shape: [8, 3, 5, 5], weight: true, bias: true, running: true, mean: 1e4, std: 1, seed: 2109 },
    { shape: [4, 7, 9, 11], running: true, mean: 1e4, std: 1, seed: 2110 },
    // A reduction of 1,000,000 elements per channel.
    { shape: [4, 2, 500, 500], weight: true, bias: true, running: true, seed: 2111 },
    // Elementwise blocks of 64 and 128 elements per invocation (CPU adapters: spatial 3136, 1024).
    { shape: [2, 4, 56, 56], weight: true, bias: true, running: true, seed: 2112 },
    { shape: [4, 8, 32, 32], weight: true, running: true, seed: 2113 },
  );
  for (const c of cases) it(name(c), () => trainParity(c));

  it('one value per channel in training throws ValueError naming x and its shape (both backends; eval accepts it, see the eval parity of [1, 3])', async () => {
    for (const n of [B.gpu, B.cpu]) {
      for (const shape of [[1, 3], [1, 3, 1, 1], [1, 2, 1, 1, 1]]) {
        const x = n.tensor(randn(2200, shape).data, shape);
        const rm = n.tensor([0.5, -1, 2].slice(0, shape[1]), [shape[1]!]);
        const rv = n.tensor([1, 2, 3].slice(0, shape[1]), [shape[1]!]);
        const live = n.stats().liveBuffers;
        let err: unknown;
        try {
          n.batchNorm(x, { training: true, runningMean: rm, runningVar: rv });
        } catch (e) {
          err = e;
        }
        expect(err, `${n.backend} ${fmt(shape)}`).toBeInstanceOf(ValueError);
        expect((err as ValueError).argument).toBe('x');
        expect((err as Error).message).toContain('x');
        expect((err as Error).message).toContain(fmt(shape));
        expect(n.stats().liveBuffers, 'nothing allocated').toBe(live);
        // Running stats untouched.
        expect(await n.read(rm)).toEqual(Float32Array.from([0.5, -1, 2].slice(0, shape[1])));
        expect(await n.read(rv)).toEqual(Float32Array.from([1, 2, 3].slice(0, shape[1])));
        for (const t of [x, rm, rv]) t.destroy();
      }
    }
  });
});

describe('batchNorm eval parity', () => {
  const cases: BnCase[] = SHAPES.map((shape, i) => ({ shape, weight: true, bias: true, seed: 2300 + 10 * i }));
  cases.push(
    { shape: [1, 3], weight: true, bias: true, seed: 2401 },
    { shape: [4, 7, 9, 11], seed: 2402 },
    { shape: [8, 3, 5, 5], weight: true, seed: 2403 },
    { shape: [8, 3, 5, 5], bias: true, eps: 1e-3, seed: 2404 },
    { shape: [4, 7, 9, 11], weight: true, bias: true, mean: 1e4, std: 1, seed: 2405 },
    // Elementwise blocks of 64 and 256 elements per invocation (CPU adapters).
    { shape: [2, 4, 56, 56], weight: true, bias: true, seed: 2406 },
    { shape: [2, 16, 64, 64], bias: true, seed: 2407 },
  );
  for (const c of cases) it(name(c), () => evalParity(c));
});

describe('batchNorm parity, discrete-GPU work split (many partials)', () => {
  const train: BnCase[] = [
    { shape: [8, 3, 5, 5], weight: true, bias: true, running: true, seed: 2600 },
    { shape: [16, 2, 100, 100], weight: true, bias: true, running: true, momentum: null, numBatchesTracked: 3, seed: 2601 },
    { shape: [4, 7, 9, 11], running: true, mean: 1e4, std: 1, seed: 2602 },
    { shape: [2, 3], eps: 0.5, seed: 2603 },
  ];
  for (const c of train) it(`training ${name(c)}`, () => trainParity(c, B.gpuSplit));
  const evals: BnCase[] = [{ shape: [4, 7, 9, 11], weight: true, bias: true, seed: 2604 }];
  for (const c of evals) it(`eval ${name(c)}`, () => evalParity(c, B.gpuSplit));
});

describe('batchNorm running statistics over several steps', () => {
  it('three training steps on the same running tensors match the CPU backend doing the same', async () => {
    const shape = [4, 3, 6, 6];
    const C = 3;
    const rm0 = randn(2500, [C], 0, 1).data;
    const rv0 = uniform(2501, [C], 0.5, 2).data;
    const g = { rm: B.gpu.tensor(rm0, [C]), rv: B.gpu.tensor(rv0, [C]) };
    const c = { rm: B.cpu.tensor(rm0, [C]), rv: B.cpu.tensor(rv0, [C]) };
    const steps: { momentum?: number | null; numBatchesTracked?: number }[] = [{}, { momentum: null, numBatchesTracked: 1 }, { momentum: 0.5 }];
    for (let s = 0; s < steps.length; s++) {
      const x = randn(2510 + s, shape, s - 1, 1 + s);
      const gx = B.gpu.tensor(x.data, shape);
      const cx = B.cpu.tensor(x.data, shape);
      const go = B.gpu.batchNorm(gx, { training: true, runningMean: g.rm, runningVar: g.rv, ...steps[s] });
      B.cpu.batchNorm(cx, { training: true, runningMean: c.rm, runningVar: c.rv, ...steps[s] });
      await B.gpu.read(go.y);
      for (const t of [gx, go.y, go.saveMean, go.saveInvstd]) t.destroy();
    }
    const failures: string[] = [];
    for (const k of ['rm', 'rv'] as const) {
      const want = await B.cpu.read(c[k]);
      const got = await B.gpu.read(g[k]);
      const before = k === 'rm' ? rm0 : rv0;
      expect(want).not.toEqual(before);
      try {
        expectClose(`running ${k} after 3 steps`, got, want, 1e-4);
      } catch (e) {
        failures.push((e as Error).message);
      }
    }
    g.rm.destroy();
    g.rv.destroy();
    failIf(failures);
  });
});
