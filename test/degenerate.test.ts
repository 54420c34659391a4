/**
 * Degenerate shapes and special eps values, as PyTorch handles them (docs/SEMANTICS.md, "Edge
 * cases"), on the cpu backend and on WebGPU (default, row-fused, general and GPU-split kernels):
 *   - group norm with one value per group in the whole batch (N·(C/G)·spatial == 1) is a
 *     ValueError; N ≥ 2 with one value per group is not (x − mean = 0: y = bias);
 *   - batch norm training on an empty batch: empty y, running statistics untouched; only
 *     exactly one value per channel is an error; the backward on an empty batch;
 *   - reductions over zero elements (layer/RMS norm over a 0 dim, weight norm of empty slices,
 *     group/instance norm of empty groups): empty outputs, mean 0, rstd NaN, norms 0;
 *   - eps of either sign (PyTorch's own samples use eps = −0.5): NaN where var + eps < 0,
 *     Inf rstd where var + eps == 0; a non-finite eps is a ValueError;
 *   - batch norm eval: the backward takes what the eval forward returns (empty saved stats).
 * Expected values are float64 formulas written here, independent of src/cpu/reference.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNorms, ShapeError, ValueError, type Norms, type Tensor } from '../src/index.ts';
import { expectClose, sameDevice } from './util/gpu.ts';
import { closeBackends, fmt, openBackends, type Backends } from './util/parity.ts';
import { makeRng } from './util/rng.ts';

let B: Backends;
let all: [string, Norms][];
beforeAll(async () => {
  B = await openBackends();
  all = [
    ['cpu', B.cpu],
    ['webgpu', B.gpu],
    ['webgpu fused', B.fused],
    ['webgpu general', B.general],
    ['webgpu gpu-split', B.gpuSplit],
  ];
});
afterAll(() => closeBackends(B));

const prod = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
const f32 = (v: ArrayLike<number>): Float32Array => Float32Array.from(v);
const read = (n: Norms, t: Tensor | null | undefined): Promise<Float32Array> => n.read(t!);

/** Float64 statistics of the groups of x (group of element i: groupOf(i)): mean, biased variance. */
function stats64(x: ArrayLike<number>, groups: number, groupOf: (i: number) => number) {
  const cnt = new Float64Array(groups);
  const sum = new Float64Array(groups);
  for (let i = 0; i < x.length; i++) (cnt[groupOf(i)] += 1), (sum[groupOf(i)] += x[i]!);
  const mean = sum.map((s, g) => s / cnt[g]!);
  const ss = new Float64Array(groups);
  for (let i = 0; i < x.length; i++) ss[groupOf(i)] += (x[i]! - mean[groupOf(i)]!) ** 2;
  return { mean, variance: ss.map((s, g) => s / cnt[g]!) };
}

/** y = (x − mean)/sqrt(var + eps)·w[a] + b[a] in float64, with rstd = 1/sqrt(var + eps) per group. */
function norm64(x: ArrayLike<number>, groups: number, groupOf: (i: number) => number, eps: number, w?: (i: number) => number, b?: (i: number) => number) {
  const { mean, variance } = stats64(x, groups, groupOf);
  const rstd = variance.map((v) => 1 / Math.sqrt(v + eps));
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const g = groupOf(i);
    y[i] = (x[i]! - mean[g]!) * rstd[g]! * (w ? w(i) : 1) + (b ? b(i) : 0);
  }
  return { y, mean, rstd };
}

/** Relative L2 within tol, NaN and ±Inf at exactly the expected positions. */
function close(label: string, got: Float32Array, want: ArrayLike<number>, tol = 1e-5): void {
  expect(got.length, `${label}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    if (!Number.isFinite(w)) expect(got[i], `${label}[${i}]`).toBe(w);
    else expect(Number.isFinite(got[i]!), `${label}[${i}] = ${got[i]} (expected ${w})`).toBe(true);
  }
  expectClose(label, got, f32(want), tol);
}

/** Runs `call` expecting a typed error naming `arg`, with the given substrings, allocating nothing. */
function expectThrow(n: Norms, label: string, call: () => unknown, cls: typeof ShapeError | typeof ValueError, arg: string, shows: string[]): void {
  const before = n.stats();
  let err: unknown = null;
  try {
    call();
  } catch (e) {
    err = e;
  }
  expect(err, label).toBeInstanceOf(cls);
  expect((err as ValueError).argument, `${label}: argument`).toBe(arg);
  for (const s of [arg, ...shows]) expect((err as Error).message, `${label}: message`).toContain(s);
  expect(n.stats(), `${label}: nothing allocated`).toEqual(before);
}

function seeded(seed: number, n: number, mean: number, std: number): Float32Array {
  return makeRng(seed).fill(n, mean, std);
}

// ---------------------------------------------------------------------------------------------

describe('group norm with one value per group', () => {
  it('one value per group in the whole batch (N·(C/G)·spatial == 1) is a ValueError naming x and its shape', () => {
    for (const [name, n] of all) {
      for (const [shape, G] of [[[1, 2, 1], 2], [[1, 3], 3], [[1, 4, 1, 1], 4]] as [number[], number][]) {
        const x = n.tensor(seeded(1, prod(shape), 0, 1), shape);
        const C = shape[1]!;
        const w = n.tensor(seeded(2, C, 1, 0.5), [C]);
        expectThrow(n, `${name} groupNorm ${fmt(shape)} G ${G}`, () => n.groupNorm(x, { numGroups: G, weight: w, bias: w }), ValueError, 'x', [fmt(shape), 'more than 1 value per group']);
        x.destroy();
        w.destroy();
      }
      // instance norm: one spatial element is an error whatever N is (an empty batch too), as in PyTorch.
      for (const shape of [[2, 3, 1], [1, 3], [0, 3, 1]]) {
        const x = n.tensor(seeded(3, prod(shape), 0, 1), shape);
        expectThrow(n, `${name} instanceNorm ${fmt(shape)}`, () => n.instanceNorm(x), ValueError, 'x', [fmt(shape), 'more than 1 spatial element']);
        x.destroy();
      }
    }
  });

  it('N ≥ 2 with one value per group: y = bias (zeros without affine), mean = x, rstd = 1/sqrt(eps); backward dx = 0, dbias = Σ_n dy', async () => {
    for (const [name, n] of all) {
      for (const [shape, G] of [[[2, 2, 1], 2], [[3, 4], 4], [[2, 6, 1, 1], 6]] as [number[], number][]) {
        const [N, C] = shape as [number, number];
        const xs = seeded(11, N * C, 0.5, 2);
        const ws = seeded(12, C, 1, 0.5);
        const bs = seeded(13, C, 0, 0.5);
        const dys = seeded(14, N * C, 0, 1);
        const x = n.tensor(xs, shape);
        const w = n.tensor(ws, [C]);
        const b = n.tensor(bs, [C]);
        const dy = n.tensor(dys, shape);
        const label = `${name} groupNorm ${fmt(shape)} G ${G}`;
        const plain = n.groupNorm(x, { numGroups: G });
        close(`${label}: y without affine`, await read(n, plain.y), new Float64Array(N * C));
        const r = n.groupNorm(x, { numGroups: G, weight: w, bias: b });
        close(`${label}: y`, await read(n, r.y), Array.from({ length: N * C }, (_, i) => bs[i % C]!));
        close(`${label}: mean`, await read(n, r.mean), xs);
        close(`${label}: rstd`, await read(n, r.rstd), new Array(N * C).fill(1 / Math.sqrt(1e-5)));
        const g = n.groupNormBackward(dy, x, r.mean, r.rstd, { numGroups: G, weight: w, bias: b });
        const dx = await read(n, g.dx);
        expect([...dx].map((v) => v + 0), `${label}: dx (−0 counts as 0)`).toEqual(new Array(N * C).fill(0));
        close(`${label}: dweight`, await read(n, g.dweight), new Float64Array(C), 0);
        const db = new Float64Array(C);
        for (let i = 0; i < N * C; i++) db[i % C] += dys[i]!;
        close(`${label}: dbias`, await read(n, g.dbias), db);
        for (const t of [x, w, b, dy, plain.y, plain.mean, plain.rstd, r.y, r.mean, r.rstd, g.dx, g.dweight!, g.dbias!]) t.destroy();
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('batch norm on an empty batch', () => {
  it('training on [0, 3] and [0, 5, 9]: empty y, running statistics untouched, saveMean 0 and saveInvstd NaN per channel', async () => {
    for (const [name, n] of all) {
      for (const shape of [[0, 3], [0, 5, 9], [2, 4, 0]]) {
        const C = shape[1]!;
        const rmData = seeded(21, C, 0, 1);
        const rvData = f32(Array.from({ length: C }, (_, c) => 0.5 + c));
        const x = n.tensor([], shape);
        const rm = n.tensor(rmData, [C]);
        const rv = n.tensor(rvData, [C]);
        const w = n.tensor(seeded(22, C, 1, 0.5), [C]);
        const label = `${name} batchNorm training ${fmt(shape)}`;
        const r = n.batchNorm(x, { training: true, weight: w, bias: w, runningMean: rm, runningVar: rv, momentum: 0.5 });
        expect([...r.y.shape], `${label}: y shape`).toEqual(shape);
        expect((await read(n, r.y)).length).toBe(0);
        expect([...r.saveMean.shape]).toEqual([C]);
        expect([...(await read(n, r.saveMean))], `${label}: saveMean`).toEqual(new Array(C).fill(0));
        expect([...(await read(n, r.saveInvstd))], `${label}: saveInvstd`).toEqual(new Array(C).fill(NaN));
        expect([...(await read(n, rm))], `${label}: runningMean untouched`).toEqual([...rmData]);
        expect([...(await read(n, rv))], `${label}: runningVar untouched`).toEqual([...rvData]);
        // momentum null (cumulative average) leaves them untouched too.
        const r2 = n.batchNorm(x, { training: true, runningMean: rm, runningVar: rv, momentum: null, numBatchesTracked: 0 });
        expect([...(await read(n, rm))], `${label}: runningMean untouched (momentum null)`).toEqual([...rmData]);
        expect([...(await read(n, rv))], `${label}: runningVar untouched (momentum null)`).toEqual([...rvData]);
        // Backward on the empty batch, with what the forward returned: empty dx, dweight = dbias = 0.
        const dy = n.tensor([], shape);
        for (const training of [true, false]) {
          const g = n.batchNormBackward(dy, x, { training, weight: w, bias: w, runningMean: rm, runningVar: rv, saveMean: r.saveMean, saveInvstd: r.saveInvstd });
          expect([...g.dx.shape]).toEqual(shape);
          expect((await read(n, g.dx)).length).toBe(0);
          expect([...(await read(n, g.dweight))], `${label}: dweight (backward training ${training})`).toEqual(new Array(C).fill(0));
          expect([...(await read(n, g.dbias))], `${label}: dbias (backward training ${training})`).toEqual(new Array(C).fill(0));
          for (const t of [g.dx, g.dweight!, g.dbias!]) t.destroy();
        }
        for (const t of [x, rm, rv, w, dy, r.y, r.saveMean, r.saveInvstd, r2.y, r2.saveMean, r2.saveInvstd]) t.destroy();
      }
    }
  });

  it('float16 data and weights on an empty batch: dweight/dbias float16 zeros', async () => {
    for (const [name, n] of all) {
      const x = n.tensor([], [0, 3, 2], 'float16');
      const w = n.tensor([1, 2, 3], [3], 'float16');
      const r = n.batchNorm(x, { training: true, weight: w, bias: w });
      const g = n.batchNormBackward(x, x, { training: true, weight: w, bias: w, saveMean: r.saveMean, saveInvstd: r.saveInvstd });
      expect(g.dweight!.dtype).toBe('float16');
      expect([...(await read(n, g.dweight))], name).toEqual([0, 0, 0]);
      expect([...(await read(n, g.dbias))], name).toEqual([0, 0, 0]);
      for (const t of [x, w, r.y, r.saveMean, r.saveInvstd, g.dx, g.dweight!, g.dbias!]) t.destroy();
    }
  });

  it('exactly one value per channel is the error ([1, 3], [1, 2, 1, 1]); two values are fine', async () => {
    for (const [name, n] of all) {
      for (const shape of [[1, 3], [1, 2, 1, 1]]) {
        const x = n.tensor(seeded(31, prod(shape), 0, 1), shape);
        expectThrow(n, `${name} batchNorm training ${fmt(shape)}`, () => n.batchNorm(x, { training: true }), ValueError, 'x', [fmt(shape), 'more than 1 value per channel']);
        x.destroy();
      }
      const xs = f32([1, 3, -2, 5, 0.5, 0.25]);
      const x = n.tensor(xs, [1, 3, 2]);
      const r = n.batchNorm(x, { training: true });
      close(`${name} batchNorm [1, 3, 2]: y`, await read(n, r.y), norm64(xs, 3, (i) => Math.floor(i / 2), 1e-5).y);
      for (const t of [x, r.y, r.saveMean, r.saveInvstd]) t.destroy();
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('reductions over zero elements', () => {
  it('layerNorm over [0] and [3, 0]: empty y (and sum), mean 0, rstd NaN; backward: empty dx, empty dweight/dbias', async () => {
    for (const [name, n] of all) {
      for (const [shape, ns] of [[[3, 0], [0]], [[2, 3, 0], [3, 0]], [[4, 0, 2], [0, 2]]] as [number[], number[]][]) {
        const lead = shape.slice(0, shape.length - ns.length);
        const R = prod(lead);
        const label = `${name} layerNorm ${fmt(shape)} over ${fmt(ns)}`;
        const x = n.tensor([], shape);
        const w = n.tensor([], ns);
        const r = n.layerNorm(x, { normalizedShape: ns, weight: w, bias: w, residual: x });
        expect([...r.y.shape]).toEqual(shape);
        expect([...r.sum!.shape]).toEqual(shape);
        expect((await read(n, r.y)).length).toBe(0);
        expect([...r.mean.shape]).toEqual(lead);
        expect([...(await read(n, r.mean))], `${label}: mean`).toEqual(new Array(R).fill(0));
        expect([...(await read(n, r.rstd))], `${label}: rstd`).toEqual(new Array(R).fill(NaN));
        const g = n.layerNormBackward(x, x, r.mean, r.rstd, { normalizedShape: ns, weight: w, bias: w });
        expect([...g.dx.shape]).toEqual(shape);
        expect([...g.dweight!.shape]).toEqual(ns);
        expect((await read(n, g.dx)).length + (await read(n, g.dweight)).length + (await read(n, g.dbias)).length).toBe(0);
        const s = n.rmsNorm(x, { normalizedShape: ns, weight: w });
        expect([...(await read(n, s.rstd))], `${label}: rmsNorm rstd (mean of x² over nothing is NaN)`).toEqual(new Array(R).fill(NaN));
        const gs = n.rmsNormBackward(x, x, s.rstd, { normalizedShape: ns, weight: w });
        expect((await read(n, gs.dx)).length + (await read(n, gs.dweight)).length).toBe(0);
        for (const t of [x, w, r.y, r.mean, r.rstd, r.sum!, g.dx, g.dweight!, g.dbias!, s.y, s.rstd, gs.dx, gs.dweight!]) t.destroy();
      }
    }
  });

  it('weightNorm of empty slices: empty w, norms 0; backward: empty dv, dg = Σ(dw·v)/‖v‖ = 0/‖v‖', async () => {
    for (const [name, n] of all) {
      const cases: [number[], number | null, number[]][] = [
        [[2, 0], 0, [2, 1]],
        [[2, 0], null, [1, 1]],
        [[2, 0, 3], 2, [1, 1, 3]],
        [[2, 0], 1, [1, 0]],
      ];
      for (const [shape, dim, gShape] of cases) {
        const label = `${name} weightNorm ${fmt(shape)} dim ${dim}`;
        const D = prod(gShape);
        const v = n.tensor([], shape);
        const g = n.tensor(seeded(41, D, 1, 0.5), gShape);
        const r = n.weightNorm(v, g, { dim });
        expect([...r.w.shape]).toEqual(shape);
        expect([...r.norms.shape]).toEqual(gShape);
        expect([...(await read(n, r.norms))], `${label}: norms`).toEqual(new Array(D).fill(0));
        // With the forward's norms (0): 0/0 = NaN, as PyTorch; with a caller's non-zero norms: 0.
        const b = n.weightNormBackward(v, v, g, r.norms, { dim });
        expect([...b.dv.shape]).toEqual(shape);
        expect((await read(n, b.dv)).length).toBe(0);
        expect([...(await read(n, b.dg))], `${label}: dg with norms 0`).toEqual(new Array(D).fill(NaN));
        const norms = n.tensor(f32(Array.from({ length: D }, (_, j) => j + 1)), gShape);
        const b2 = n.weightNormBackward(v, v, g, norms, { dim });
        expect([...(await read(n, b2.dg))].map((v) => v + 0), `${label}: dg with norms > 0`).toEqual(new Array(D).fill(0));
        for (const t of [v, g, r.w, r.norms, b.dv, b.dg, norms, b2.dv, b2.dg]) t.destroy();
      }
    }
  });

  it('groupNorm / instanceNorm of empty groups: empty y, mean 0, rstd NaN; backward: dweight = dbias = 0', async () => {
    for (const [name, n] of all) {
      for (const [shape, G] of [[[2, 4, 0], 2], [[2, 3, 0], null], [[3, 0, 5], 1]] as [number[], number | null][]) {
        const [N, C] = shape as [number, number];
        const Gs = G ?? C;
        const label = `${name} ${G === null ? 'instanceNorm' : `groupNorm G ${G}`} ${fmt(shape)}`;
        const x = n.tensor([], shape);
        const w = n.tensor(seeded(51, C, 1, 0.5), [C]);
        const r = G === null ? n.instanceNorm(x, { weight: w, bias: w }) : n.groupNorm(x, { numGroups: G, weight: w, bias: w });
        expect([...r.y.shape]).toEqual(shape);
        expect([...r.mean.shape]).toEqual([N, Gs]);
        expect([...(await read(n, r.mean))], `${label}: mean`).toEqual(new Array(N * Gs).fill(0));
        expect([...(await read(n, r.rstd))], `${label}: rstd`).toEqual(new Array(N * Gs).fill(NaN));
        const b = G === null
          ? n.instanceNormBackward(x, x, r.mean, r.rstd, { weight: w, bias: w })
          : n.groupNormBackward(x, x, r.mean, r.rstd, { numGroups: G, weight: w, bias: w });
        expect((await read(n, b.dx)).length).toBe(0);
        expect([...(await read(n, b.dweight))], `${label}: dweight`).toEqual(new Array(C).fill(0));
        expect([...(await read(n, b.dbias))], `${label}: dbias`).toEqual(new Array(C).fill(0));
        for (const t of [x, w, r.y, r.mean, r.rstd, b.dx, b.dweight!, b.dbias!]) t.destroy();
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('eps of either sign', () => {
  // Row 0 spread (var ≫ 0.5), row 1 tight (var < 0.5: var + eps < 0 gives NaN). Every value
  // (and weight) is exact in float16 too.
  const lnX = f32([-3, 1.5, 4, -2, 0.25, 2.5, 0.125, -0.25, 0.375, 0.0625, -0.125, 0.25]);
  const lnW = f32([1.5, -0.5, 2, 0.75, 1, 1.25]);
  const lnB = f32([0, 0.5, -0.25, 1, -1, 0.125]);

  for (const dtype of ['float32', 'float16'] as const) {
    it(`layerNorm over [2, 3] of a [2, 2, 3] input with eps = −0.5 (PyTorch OpInfo sample), ${dtype}; rmsNorm likewise`, async () => {
      const tol = dtype === 'float16' ? 2e-3 : 1e-5;
      const want = norm64(lnX, 2, (i) => Math.floor(i / 6), -0.5, (i) => lnW[i % 6]!, (i) => lnB[i % 6]!);
      expect(Number.isNaN(want.rstd[1]!)).toBe(true);
      const ms = [0, 1].map((row) => lnX.slice(6 * row, 6 * row + 6).reduce((a, v) => a + v * v, 0) / 6);
      const rr = ms.map((m) => 1 / Math.sqrt(m - 0.5));
      expect(Number.isNaN(rr[1]!)).toBe(true);
      for (const [name, n] of all) {
        const x = n.tensor(lnX, [2, 2, 3], dtype);
        const w = n.tensor(lnW, [2, 3], dtype);
        const b = n.tensor(lnB, [2, 3], dtype);
        const r = n.layerNorm(x, { normalizedShape: [2, 3], weight: w, bias: b, eps: -0.5 });
        close(`${name}: y`, await read(n, r.y), want.y, tol);
        close(`${name}: mean`, await read(n, r.mean), want.mean);
        close(`${name}: rstd`, await read(n, r.rstd), want.rstd);
        const s = n.rmsNorm(x, { normalizedShape: [2, 3], weight: w, eps: -0.5 });
        close(`${name}: rmsNorm rstd`, await read(n, s.rstd), rr);
        close(`${name}: rmsNorm y`, await read(n, s.y), Array.from(lnX, (v, i) => v * rr[Math.floor(i / 6)]! * lnW[i % 6]!), tol);
        for (const t of [x, w, b, r.y, r.mean, r.rstd, s.y, s.rstd]) t.destroy();
      }
    });
  }

  it('groupNorm [2, 6, 3] with 2 groups and eps = −0.5 (PyTorch OpInfo sample); instanceNorm likewise', async () => {
    // Groups (n, g) of 9 values: (0, 0) and (1, 1) spread, (0, 1) and (1, 0) tight.
    const scale = [3, 0.2, 0.2, 3];
    const rng = makeRng(71);
    const xs = f32(Array.from({ length: 36 }, (_, i) => 0.5 + scale[Math.floor(i / 9)]! * rng.normal()));
    const ws = seeded(72, 6, 1, 0.5);
    const bs = seeded(73, 6, 0, 0.5);
    const want = norm64(xs, 4, (i) => Math.floor(i / 9), -0.5, (i) => ws[Math.floor(i / 3) % 6]!, (i) => bs[Math.floor(i / 3) % 6]!);
    expect(want.rstd.map((r) => (Number.isNaN(r) ? 1 : 0)).reduce((a, b) => a + b)).toBe(2);
    // instance norm: groups (n, c) of 3 values.
    const wantI = norm64(xs, 12, (i) => Math.floor(i / 3), -0.5);
    for (const [name, n] of all) {
      const x = n.tensor(xs, [2, 6, 3]);
      const w = n.tensor(ws, [6]);
      const b = n.tensor(bs, [6]);
      const r = n.groupNorm(x, { numGroups: 2, weight: w, bias: b, eps: -0.5 });
      close(`${name}: y`, await read(n, r.y), want.y);
      close(`${name}: mean`, await read(n, r.mean), want.mean);
      close(`${name}: rstd`, await read(n, r.rstd), want.rstd);
      const ri = n.instanceNorm(x, { eps: -0.5 });
      close(`${name}: instanceNorm y`, await read(n, ri.y), wantI.y);
      close(`${name}: instanceNorm rstd`, await read(n, ri.rstd), wantI.rstd);
      for (const t of [x, w, b, r.y, r.mean, r.rstd, ri.y, ri.mean, ri.rstd]) t.destroy();
    }
  });

  it('batchNorm training and eval with eps = −0.5 (running variance unaffected by eps); eval backward', async () => {
    // [4, 3, 2]: channel 1 tight (NaN in training).
    const scale = [2, 0.1, 1.5];
    const rng = makeRng(81);
    const xs = f32(Array.from({ length: 24 }, (_, i) => 1 + scale[Math.floor(i / 2) % 3]! * rng.normal()));
    const ch = (i: number) => Math.floor(i / 2) % 3;
    const want = norm64(xs, 3, ch, -0.5);
    const { variance } = stats64(xs, 3, ch);
    const rm0 = f32([0.5, -1, 2]);
    const rv0 = f32([1, 0.25, 0.5]);
    const m = 0.1;
    const wantRm = Array.from(rm0, (v, c) => (1 - m) * v + m * want.mean[c]!);
    const wantRv = Array.from(rv0, (v, c) => (1 - m) * v + (m * variance[c]! * 8) / 7);
    // eval: channel 1 NaN (0.25 − 0.5 < 0), channel 2 Inf invstd (0.5 − 0.5 = 0).
    const inv = Array.from(rv0, (v) => 1 / Math.sqrt(v - 0.5));
    const evalY = Array.from(xs, (v, i) => (v - rm0[ch(i)]!) * inv[ch(i)]!);
    const dys = seeded(82, 24, 0, 1);
    for (const [name, n] of all) {
      const x = n.tensor(xs, [4, 3, 2]);
      const rm = n.tensor(rm0, [3]);
      const rv = n.tensor(rv0, [3]);
      const r = n.batchNorm(x, { training: true, runningMean: rm, runningVar: rv, eps: -0.5 });
      close(`${name}: y`, await read(n, r.y), want.y);
      close(`${name}: saveMean`, await read(n, r.saveMean), want.mean);
      close(`${name}: saveInvstd`, await read(n, r.saveInvstd), want.rstd);
      close(`${name}: runningMean`, await read(n, rm), wantRm);
      close(`${name}: runningVar`, await read(n, rv), wantRv);
      const rm2 = n.tensor(rm0, [3]);
      const rv2 = n.tensor(rv0, [3]);
      const e = n.batchNorm(x, { training: false, runningMean: rm2, runningVar: rv2, eps: -0.5 });
      const ey = await read(n, e.y);
      // Channel 2: (x − rm)·Inf = ±Inf (x ≠ rm here).
      close(`${name}: eval y`, ey, evalY);
      const dy = n.tensor(dys, [4, 3, 2]);
      const g = n.batchNormBackward(dy, x, { training: false, runningMean: rm2, runningVar: rv2, eps: -0.5 });
      close(`${name}: eval dx`, await read(n, g.dx), Array.from(dys, (v, i) => v * inv[ch(i)]!));
      for (const t of [x, rm, rv, r.y, r.saveMean, r.saveInvstd, rm2, rv2, e.y, e.saveMean, e.saveInvstd, dy, g.dx]) t.destroy();
    }
  });

  it('var + eps == 0 gives rstd = +Inf (constant rows, eps 0), and NaN y where x − mean = 0', async () => {
    const xs = f32([2, 2, 2, 2, 1, -1, 1, -1]);
    for (const [name, n] of all) {
      const x = n.tensor(xs, [2, 4]);
      const r = n.layerNorm(x, { normalizedShape: [4], eps: 0 });
      close(`${name}: rstd`, await read(n, r.rstd), [Infinity, 1]);
      close(`${name}: y`, await read(n, r.y), [NaN, NaN, NaN, NaN, 1, -1, 1, -1]);
      // A constant row with a negative eps: NaN (var exactly 0 whatever the algorithm).
      const s = n.layerNorm(x, { normalizedShape: [4], eps: -1e-3 });
      close(`${name}: rstd (eps < 0)`, await read(n, s.rstd), [NaN, 1 / Math.sqrt(1 - 1e-3)]);
      for (const t of [x, r.y, r.mean, r.rstd, s.y, s.mean, s.rstd]) t.destroy();
    }
  });

  it('a non-finite eps is a ValueError naming eps on every op with an eps', () => {
    for (const [name, n] of all) {
      const x = n.tensor(seeded(91, 24, 0, 1), [2, 3, 4]);
      const rm = n.tensor([0, 0, 0], [3]);
      const rv = n.tensor([1, 1, 1], [3]);
      for (const eps of [NaN, Infinity, -Infinity]) {
        const calls: [string, () => unknown][] = [
          ['layerNorm', () => n.layerNorm(x, { normalizedShape: [4], eps })],
          ['rmsNorm', () => n.rmsNorm(x, { normalizedShape: [4], eps })],
          ['groupNorm', () => n.groupNorm(x, { numGroups: 3, eps })],
          ['instanceNorm', () => n.instanceNorm(x, { eps })],
          ['batchNorm', () => n.batchNorm(x, { training: true, eps })],
          ['batchNormBackward', () => n.batchNormBackward(x, x, { training: false, runningMean: rm, runningVar: rv, eps })],
        ];
        for (const [op, call] of calls) expectThrow(n, `${name} ${op} eps ${eps}`, call, ValueError, 'eps', [String(eps)]);
      }
      for (const t of [x, rm, rv]) t.destroy();
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('batch norm eval: the backward takes what the forward returns', () => {
  it('saveMean/saveInvstd of shape [0] from the eval forward (or none, or [C]) give the eval backward', async () => {
    const xs = seeded(101, 24, 0.5, 2);
    const dys = seeded(102, 24, 0, 1);
    const ws = f32([1.5, -0.5, 2]);
    const rm0 = f32([0.25, -1, 0.5]);
    const rv0 = f32([0.5, 2, 1.25]);
    const ch = (i: number) => Math.floor(i / 2) % 3;
    const inv = Array.from(rv0, (v) => 1 / Math.sqrt(v + 1e-5));
    const wantDx = Array.from(dys, (d, i) => d * ws[ch(i)]! * inv[ch(i)]!);
    const wantDw = new Float64Array(3);
    const wantDb = new Float64Array(3);
    for (let i = 0; i < 24; i++) (wantDw[ch(i)] += dys[i]! * (xs[i]! - rm0[ch(i)]!) * inv[ch(i)]!), (wantDb[ch(i)] += dys[i]!);
    for (const [name, n] of all) {
      const x = n.tensor(xs, [4, 3, 2]);
      const dy = n.tensor(dys, [4, 3, 2]);
      const w = n.tensor(ws, [3]);
      const rm = n.tensor(rm0, [3]);
      const rv = n.tensor(rv0, [3]);
      const f = n.batchNorm(x, { training: false, weight: w, bias: w, runningMean: rm, runningVar: rv });
      expect([...f.saveMean.shape]).toEqual([0]);
      expect([...f.saveInvstd.shape]).toEqual([0]);
      const full = n.tensor([9, 9, 9], [3]);
      for (const [what, saves] of [
        ['[0] from the forward', { saveMean: f.saveMean, saveInvstd: f.saveInvstd }],
        ['none', {}],
        ['[C] (unused)', { saveMean: full, saveInvstd: full }],
      ] as const) {
        const g = n.batchNormBackward(dy, x, { training: false, weight: w, bias: w, runningMean: rm, runningVar: rv, ...saves });
        close(`${name} ${what}: dx`, await read(n, g.dx), wantDx);
        close(`${name} ${what}: dweight`, await read(n, g.dweight), wantDw);
        close(`${name} ${what}: dbias`, await read(n, g.dbias), wantDb);
        for (const t of [g.dx, g.dweight!, g.dbias!]) t.destroy();
      }
      // Other shapes stay errors; training needs [C].
      const two = n.tensor([1, 1], [2]);
      expectThrow(n, `${name} eval saveMean [2]`, () => n.batchNormBackward(dy, x, { training: false, runningMean: rm, runningVar: rv, saveMean: two }), ShapeError, 'saveMean', ['[3]', '[0]', '[2]']);
      expectThrow(n, `${name} training saveMean [0]`, () => n.batchNormBackward(dy, x, { training: true, saveMean: f.saveMean, saveInvstd: f.saveInvstd }), ShapeError, 'saveMean', ['[3]', '[0]']);
      for (const t of [x, dy, w, rm, rv, f.y, f.saveMean, f.saveInvstd, full, two]) t.destroy();
    }
  });
});

const lnXForVerify = f32([-3, 1.5, 4, -2, 0.25, 2.5, 0.125, -0.25, 0.375, 0.0625, -0.125, 0.25]);

describe('verify: true agrees with the CPU reference on these cases', () => {
  it('zero-element reductions, empty batch, one value per group, eps < 0 (NaN and Inf outputs included)', async () => {
    const n = await sameDevice(B.gpu, { poisonOutputs: true, verify: true });
    try {
      const e = n.tensor([], [3, 0]);
      await n.layerNorm(e, { normalizedShape: [0] });
      await n.rmsNorm(e, { normalizedShape: [0] });
      await n.weightNorm(e, n.tensor([1, 2, 3], [3, 1]), { dim: 0 });
      const rm = n.tensor([0.5, 1, 2], [3]);
      const rv = n.tensor([1, 2, 3], [3]);
      await n.batchNorm(n.tensor([], [0, 3, 4]), { training: true, runningMean: rm, runningVar: rv });
      expect([...(await n.read(rm))]).toEqual([0.5, 1, 2]);
      await n.groupNorm(n.tensor([1, 2, 3, 4], [2, 2, 1]), { numGroups: 2, weight: n.tensor([1, 2], [2]) });
      await n.layerNorm(n.tensor(lnXForVerify, [2, 2, 3]), { normalizedShape: [2, 3], eps: -0.5 });
      await n.layerNorm(n.tensor([2, 2, 2, 2, 1, -1, 1, -1], [2, 4]), { normalizedShape: [4], eps: 0 });
    } finally {
      n.destroy();
    }
  });
});
