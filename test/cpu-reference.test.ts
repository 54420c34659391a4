import { describe, it, expect } from 'vitest';
import type { HostTensor } from '../src/cpu/host';
import {
  __f64,
  batchNorm,
  groupNorm,
  instanceNorm,
  layerNorm,
  layerNormBackward,
  rmsNorm,
  weightNorm,
} from '../src/cpu/reference';
import { f16BitsToF32, f32ToF16Bits, packHalves, roundToHalf, unpackHalves } from '../src/half.ts';
import { makeRng } from './util/rng';

// ---------------------------------------------------------------------------------------------
// helpers

const ht = (data: ArrayLike<number>, shape: number[]): HostTensor => ({ data: Float32Array.from(data), shape });
interface T64 {
  data: Float64Array;
  shape: number[];
}
const t64 = (data: ArrayLike<number>, shape: number[]): T64 => ({ data: Float64Array.from(data), shape });
const randT64 = (seed: number, shape: number[], mean = 0, std = 1): T64 =>
  t64(makeRng(seed).fill(shape.reduce((a, b) => a * b, 1), mean, std), shape);

const maxAbs = (a: ArrayLike<number>): number => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** |got − want| ≤ tol · max(1, max|want|) elementwise, and no NaN. */
function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol = 1e-6): void {
  expect(got.length).toBe(want.length);
  const scale = Math.max(1, maxAbs(want));
  for (let i = 0; i < want.length; i++) {
    expect(Number.isNaN(got[i])).toBe(false);
    if (Math.abs(got[i] - want[i]) > tol * scale) {
      throw new Error(`element ${i}: got ${got[i]}, want ${want[i]} (tol ${tol * scale})`);
    }
  }
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

/**
 * Central finite differences of loss() with respect to every element of every named input
 * (mutated in place and restored), compared with the analytic gradients.
 */
function fdCheck(
  inputs: Record<string, T64>,
  loss: () => number,
  grads: Record<string, ArrayLike<number> | undefined | null>,
  h = 1e-5,
  tol = 1e-6,
): void {
  for (const [name, t] of Object.entries(inputs)) {
    const g = grads[name];
    if (!g) throw new Error(`no analytic gradient for ${name}`);
    const fd = new Float64Array(t.data.length);
    for (let i = 0; i < t.data.length; i++) {
      const x0 = t.data[i];
      t.data[i] = x0 + h;
      const lp = loss();
      t.data[i] = x0 - h;
      const lm = loss();
      t.data[i] = x0;
      fd[i] = (lp - lm) / (2 * h);
    }
    const scale = Math.max(1e-3, maxAbs(fd));
    for (let i = 0; i < fd.length; i++) {
      if (!(Math.abs(g[i] - fd[i]) <= tol * scale)) {
        throw new Error(`d/d${name}[${i}]: analytic ${g[i]}, finite difference ${fd[i]}`);
      }
    }
  }
}

/** Independent two-pass mean / biased variance of a list. */
function meanVar(vals: number[]): { mean: number; variance: number } {
  const mean = vals.reduce((a, b) => a + b, 0) / vals.length;
  const variance = vals.reduce((a, b) => a + (b - mean) ** 2, 0) / vals.length;
  return { mean, variance };
}

// ---------------------------------------------------------------------------------------------
// forward vs straightforward formulas

describe('forward', () => {
  it('layerNorm [3, 5] with weight and bias', () => {
    const rng = makeRng(1);
    const x = ht(rng.fill(15), [3, 5]);
    const w = ht(rng.fill(5), [5]);
    const b = ht(rng.fill(5), [5]);
    const eps = 1e-5;
    const r = layerNorm(x, { normalizedShape: [5], weight: w, bias: b, eps });
    expect(r.y.shape).toEqual([3, 5]);
    expect(r.mean.shape).toEqual([3]);
    expect(r.rstd.shape).toEqual([3]);
    const y: number[] = [];
    for (let row = 0; row < 3; row++) {
      const vals = Array.from(x.data.subarray(row * 5, row * 5 + 5));
      const { mean, variance } = meanVar(vals);
      expect(r.mean.data[row]).toBeCloseTo(mean, 6);
      expect(r.rstd.data[row]).toBeCloseTo(1 / Math.sqrt(variance + eps), 5);
      for (let k = 0; k < 5; k++) y.push(((vals[k] - mean) / Math.sqrt(variance + eps)) * w.data[k] + b.data[k]);
    }
    expectClose(r.y.data, y);
  });

  it('layerNorm over all dims gives scalar-shaped stats; float32 output is the rounded float64 one', () => {
    const x = ht(makeRng(2).fill(6), [2, 3]);
    const r = layerNorm(x, { normalizedShape: [2, 3], weight: null, bias: null, eps: 1e-5 });
    expect(r.mean.shape).toEqual([]);
    expect(r.mean.data.length).toBe(1);
    const r64 = __f64.layerNorm(x, { normalizedShape: [2, 3], weight: null, bias: null, eps: 1e-5 });
    expect(Array.from(r.y.data)).toEqual(Array.from(Float32Array.from(r64.y.data)));
    expect(r.y.data).toBeInstanceOf(Float32Array);
  });

  it('rmsNorm [4, 6] with weight', () => {
    const rng = makeRng(3);
    const x = ht(rng.fill(24), [4, 6]);
    const w = ht(rng.fill(6), [6]);
    const eps = 1.1920929e-7;
    const r = rmsNorm(x, { normalizedShape: [6], weight: w, eps });
    expect(r.rstd.shape).toEqual([4]);
    const y: number[] = [];
    for (let row = 0; row < 4; row++) {
      const vals = Array.from(x.data.subarray(row * 6, row * 6 + 6));
      const ms = vals.reduce((a, v) => a + v * v, 0) / 6;
      expect(r.rstd.data[row]).toBeCloseTo(1 / Math.sqrt(ms + eps), 5);
      for (let k = 0; k < 6; k++) y.push((vals[k] / Math.sqrt(ms + eps)) * w.data[k]);
    }
    expectClose(r.y.data, y);
  });

  it('groupNorm [2, 6, 3], G = 3', () => {
    const rng = makeRng(4);
    const x = ht(rng.fill(36), [2, 6, 3]);
    const w = ht(rng.fill(6), [6]);
    const b = ht(rng.fill(6), [6]);
    const eps = 1e-5;
    const r = groupNorm(x, { numGroups: 3, weight: w, bias: b, eps });
    expect(r.mean.shape).toEqual([2, 3]);
    expect(r.rstd.shape).toEqual([2, 3]);
    const at = (n: number, c: number, s: number) => x.data[(n * 6 + c) * 3 + s];
    const y = new Array<number>(36);
    for (let n = 0; n < 2; n++) {
      for (let g = 0; g < 3; g++) {
        const vals: number[] = [];
        for (let c = 2 * g; c < 2 * g + 2; c++) for (let s = 0; s < 3; s++) vals.push(at(n, c, s));
        const { mean, variance } = meanVar(vals);
        expect(r.mean.data[n * 3 + g]).toBeCloseTo(mean, 6);
        expect(r.rstd.data[n * 3 + g]).toBeCloseTo(1 / Math.sqrt(variance + eps), 5);
        for (let c = 2 * g; c < 2 * g + 2; c++) {
          for (let s = 0; s < 3; s++) {
            y[(n * 6 + c) * 3 + s] = ((at(n, c, s) - mean) / Math.sqrt(variance + eps)) * w.data[c] + b.data[c];
          }
        }
      }
    }
    expectClose(r.y.data, y);
  });

  it('instanceNorm [2, 3, 2, 2] without affine', () => {
    const x = ht(makeRng(5).fill(24), [2, 3, 2, 2]);
    const r = instanceNorm(x, { weight: null, bias: null, eps: 1e-5 });
    expect(r.mean.shape).toEqual([2, 3]);
    const y: number[] = [];
    for (let nc = 0; nc < 6; nc++) {
      const vals = Array.from(x.data.subarray(nc * 4, nc * 4 + 4));
      const { mean, variance } = meanVar(vals);
      for (const v of vals) y.push((v - mean) / Math.sqrt(variance + 1e-5));
    }
    expectClose(r.y.data, y);
  });

  describe('batchNorm', () => {
    // x [4, 3, 2]: channel c holds x[n, c, s] for n < 4, s < 2 (8 values)
    const rng = makeRng(6);
    const xData = rng.fill(24);
    const w = ht(rng.fill(3), [3]);
    const b = ht(rng.fill(3), [3]);
    const eps = 1e-5;
    const channel = (c: number) => {
      const vals: number[] = [];
      for (let n = 0; n < 4; n++) for (let s = 0; s < 2; s++) vals.push(xData[(n * 3 + c) * 2 + s]);
      return vals;
    };
    const run = (training: boolean, momentum: number | null, numBatchesTracked: number) => {
      const runningMean = ht([0.5, -1, 2], [3]);
      const runningVar = ht([2, 0.5, 1.5], [3]);
      const x = ht(xData, [4, 3, 2]);
      const r = batchNorm(x, { training, weight: w, bias: b, runningMean, runningVar, momentum, eps, numBatchesTracked });
      return { ...r, runningMean, runningVar };
    };

    it('training: per-channel biased stats, y, running update with momentum 0.1', () => {
      const r = run(true, 0.1, 0);
      expect(r.saveMean.shape).toEqual([3]);
      expect(r.saveInvstd.shape).toEqual([3]);
      const rm0 = [0.5, -1, 2];
      const rv0 = [2, 0.5, 1.5];
      for (let c = 0; c < 3; c++) {
        const { mean, variance } = meanVar(channel(c));
        expect(r.saveMean.data[c]).toBeCloseTo(mean, 6);
        expect(r.saveInvstd.data[c]).toBeCloseTo(1 / Math.sqrt(variance + eps), 5);
        expect(r.runningMean.data[c]).toBeCloseTo(0.9 * rm0[c] + 0.1 * mean, 6);
        expect(r.runningVar.data[c]).toBeCloseTo(0.9 * rv0[c] + 0.1 * variance * (8 / 7), 6);
        for (let n = 0; n < 4; n++) {
          for (let s = 0; s < 2; s++) {
            const i = (n * 3 + c) * 2 + s;
            const want = ((xData[i] - mean) / Math.sqrt(variance + eps)) * w.data[c] + b.data[c];
            expect(r.y.data[i]).toBeCloseTo(want, 5);
          }
        }
      }
    });

    it('training, momentum null: cumulative average 1/(numBatchesTracked + 1)', () => {
      const first = run(true, null, 0); // m = 1: running stats become the batch stats
      const later = run(true, null, 3); // m = 1/4
      const rm0 = [0.5, -1, 2];
      const rv0 = [2, 0.5, 1.5];
      for (let c = 0; c < 3; c++) {
        const { mean, variance } = meanVar(channel(c));
        expect(first.runningMean.data[c]).toBeCloseTo(mean, 6);
        expect(first.runningVar.data[c]).toBeCloseTo((variance * 8) / 7, 6);
        expect(later.runningMean.data[c]).toBeCloseTo(0.75 * rm0[c] + 0.25 * mean, 6);
        expect(later.runningVar.data[c]).toBeCloseTo(0.75 * rv0[c] + (0.25 * variance * 8) / 7, 6);
      }
    });

    it('eval: running stats, empty save tensors, running stats untouched', () => {
      const r = run(false, 0.1, 0);
      expect(r.saveMean.shape).toEqual([0]);
      expect(r.saveMean.data.length).toBe(0);
      expect(r.saveInvstd.shape).toEqual([0]);
      expect(Array.from(r.runningMean.data)).toEqual(Array.from(Float32Array.from([0.5, -1, 2])));
      expect(Array.from(r.runningVar.data)).toEqual(Array.from(Float32Array.from([2, 0.5, 1.5])));
      const y = Array.from(xData, (v, i) => {
        const c = Math.floor(i / 2) % 3;
        return ((v - r.runningMean.data[c]) / Math.sqrt(r.runningVar.data[c] + eps)) * w.data[c] + b.data[c];
      });
      expectClose(r.y.data, y);
    });
  });

  describe('weightNorm', () => {
    // v [3, 4, 2]
    const v = ht(makeRng(7).fill(24), [3, 4, 2]);
    const at = (i: number, j: number, k: number) => v.data[(i * 4 + j) * 2 + k];
    const cases: { dim: number | null; gShape: number[]; slice: (i: number, j: number, k: number) => number }[] = [
      { dim: 0, gShape: [3, 1, 1], slice: (i) => i },
      { dim: 1, gShape: [1, 4, 1], slice: (_i, j) => j },
      { dim: 2, gShape: [1, 1, 2], slice: (_i, _j, k) => k },
      { dim: null, gShape: [], slice: () => 0 },
    ];
    for (const { dim, gShape, slice } of cases) {
      it(`dim ${dim}`, () => {
        const nSlices = gShape.reduce((a, b2) => a * b2, 1);
        const g = ht(makeRng(8).fill(nSlices), gShape);
        const r = weightNorm(v, g, { dim });
        expect(r.norms.shape).toEqual(gShape);
        const sq = new Array<number>(nSlices).fill(0);
        for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) for (let k = 0; k < 2; k++) sq[slice(i, j, k)] += at(i, j, k) ** 2;
        const norms = sq.map(Math.sqrt);
        expectClose(r.norms.data, norms);
        const w: number[] = [];
        for (let i = 0; i < 3; i++) {
          for (let j = 0; j < 4; j++) {
            for (let k = 0; k < 2; k++) w.push((g.data[slice(i, j, k)] * at(i, j, k)) / norms[slice(i, j, k)]);
          }
        }
        expectClose(r.w.data, w);
      });
    }

    it('zero slice gives NaN (no eps), like PyTorch', () => {
      const r = weightNorm(ht([0, 0, 1, 2], [2, 2]), ht([1, 1], [2, 1]), { dim: 0 });
      expect(r.norms.data[0]).toBe(0);
      expect(Number.isNaN(r.w.data[0])).toBe(true);
      expect(r.w.data[2]).toBeCloseTo(1 / Math.sqrt(5), 6);
    });
  });

  describe('large mean offset (x = 1e4 + N(0, 1))', () => {
    it('layerNorm: variance correct, never negative or NaN', () => {
      const x = ht(makeRng(9).fill(4 * 4096, 1e4, 1), [4, 4096]);
      const r = layerNorm(x, { normalizedShape: [4096], weight: null, bias: null, eps: 1e-5 });
      for (let row = 0; row < 4; row++) {
        const { variance } = meanVar(Array.from(x.data.subarray(row * 4096, (row + 1) * 4096)));
        expect(variance).toBeGreaterThan(0.9);
        expect(variance).toBeLessThan(1.1);
        expect(r.rstd.data[row]).toBeCloseTo(1 / Math.sqrt(variance + 1e-5), 5);
      }
      const { mean, variance } = meanVar(Array.from(r.y.data));
      expect(Math.abs(mean)).toBeLessThan(1e-4);
      expect(variance).toBeCloseTo(1, 4);
      expect(r.y.data.every((v) => Number.isFinite(v))).toBe(true);
    });

    it('batchNorm: invstd and running var correct', () => {
      const N = 64;
      const C = 3;
      const S = 16;
      const x = ht(makeRng(10).fill(N * C * S, 1e4, 1), [N, C, S]);
      const runningMean = ht([0, 0, 0], [3]);
      const runningVar = ht([1, 1, 1], [3]);
      const r = batchNorm(x, {
        training: true, weight: null, bias: null, runningMean, runningVar, momentum: 0.1, eps: 1e-5, numBatchesTracked: 0,
      });
      for (let c = 0; c < C; c++) {
        const vals: number[] = [];
        for (let n = 0; n < N; n++) for (let s = 0; s < S; s++) vals.push(x.data[(n * C + c) * S + s]);
        const { mean, variance } = meanVar(vals);
        expect(variance).toBeGreaterThan(0.8);
        expect(r.saveInvstd.data[c]).toBeCloseTo(1 / Math.sqrt(variance + 1e-5), 5);
        expect(runningMean.data[c]).toBeCloseTo(0.1 * mean, 3);
        const n = N * S;
        expect(runningVar.data[c]).toBeCloseTo(0.9 + (0.1 * variance * n) / (n - 1), 5);
      }
      expect(r.y.data.every((v) => Number.isFinite(v))).toBe(true);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// backward vs central finite differences (float64)

describe('backward vs finite differences', () => {
  const r = (seed: number, t: T64) => Float64Array.from(makeRng(seed).fill(t.data.length));

  for (const affine of [true, false]) {
    it(`layerNorm [2, 3, 4], normalizedShape [3, 4], affine ${affine}`, () => {
      const x = randT64(11, [2, 3, 4]);
      const weight = affine ? randT64(12, [3, 4]) : null;
      const bias = affine ? randT64(13, [3, 4]) : null;
      const dy = r(14, x);
      const o = { normalizedShape: [3, 4], weight, bias, eps: 1e-5 };
      const loss = () => dot(__f64.layerNorm(x, o).y.data, dy);
      const f = __f64.layerNorm(x, o);
      const g = __f64.layerNormBackward({ data: dy, shape: x.shape }, x, f.mean, f.rstd, o);
      expect(g.dx.shape).toEqual([2, 3, 4]);
      if (affine) {
        expect(g.dweight?.shape).toEqual([3, 4]);
        expect(g.dbias?.shape).toEqual([3, 4]);
        fdCheck({ x, weight: weight!, bias: bias! }, loss, { x: g.dx.data, weight: g.dweight?.data, bias: g.dbias?.data });
      } else {
        expect(g.dweight).toBeNull();
        expect(g.dbias).toBeNull();
        fdCheck({ x }, loss, { x: g.dx.data });
      }
    });
  }

  it('layerNorm weight only: dweight, no dbias', () => {
    const x = randT64(15, [3, 5]);
    const weight = randT64(16, [5]);
    const dy = r(17, x);
    const o = { normalizedShape: [5], weight, bias: null, eps: 1e-5 };
    const f = __f64.layerNorm(x, o);
    const g = __f64.layerNormBackward({ data: dy, shape: x.shape }, x, f.mean, f.rstd, o);
    expect(g.dbias).toBeNull();
    fdCheck({ x, weight }, () => dot(__f64.layerNorm(x, o).y.data, dy), { x: g.dx.data, weight: g.dweight?.data });
  });

  for (const affine of [true, false]) {
    it(`rmsNorm [3, 5], weight ${affine}`, () => {
      const x = randT64(18, [3, 5]);
      const weight = affine ? randT64(19, [5]) : null;
      const dy = r(20, x);
      const o = { normalizedShape: [5], weight, eps: 1.1920929e-7 };
      const f = __f64.rmsNorm(x, o);
      const g = __f64.rmsNormBackward({ data: dy, shape: x.shape }, x, f.rstd, o);
      const loss = () => dot(__f64.rmsNorm(x, o).y.data, dy);
      if (affine) fdCheck({ x, weight: weight! }, loss, { x: g.dx.data, weight: g.dweight?.data });
      else {
        expect(g.dweight).toBeNull();
        fdCheck({ x }, loss, { x: g.dx.data });
      }
    });
  }

  for (const shape of [[3, 2, 2, 2], [4, 3], [2, 3, 5]]) {
    it(`batchNorm training ${JSON.stringify(shape)}`, () => {
      const C = shape[1];
      const x = randT64(21, shape);
      const weight = randT64(22, [C]);
      const bias = randT64(23, [C]);
      const dy = r(24, x);
      const o = {
        training: true, weight, bias, runningMean: null, runningVar: null, momentum: 0.1, eps: 1e-5, numBatchesTracked: 0,
      };
      const f = __f64.batchNorm(x, o);
      const g = __f64.batchNormBackward({ data: dy, shape: x.shape }, x, {
        training: true, weight, bias, runningMean: null, runningVar: null, saveMean: f.saveMean, saveInvstd: f.saveInvstd, eps: 1e-5,
      });
      expect(g.dweight?.shape).toEqual([C]);
      fdCheck({ x, weight, bias }, () => dot(__f64.batchNorm(x, o).y.data, dy), {
        x: g.dx.data, weight: g.dweight?.data, bias: g.dbias?.data,
      });
    });
  }

  it('batchNorm training without affine, with running stats given', () => {
    const x = randT64(25, [3, 2, 4]);
    const dy = r(26, x);
    const fresh = () => ({
      training: true, weight: null, bias: null, runningMean: t64([0, 0], [2]), runningVar: t64([1, 1], [2]),
      momentum: null, eps: 1e-5, numBatchesTracked: 0,
    });
    const f = __f64.batchNorm(x, fresh());
    const g = __f64.batchNormBackward({ data: dy, shape: x.shape }, x, {
      training: true, weight: null, bias: null, runningMean: null, runningVar: null, saveMean: f.saveMean, saveInvstd: f.saveInvstd, eps: 1e-5,
    });
    expect(g.dweight).toBeNull();
    expect(g.dbias).toBeNull();
    fdCheck({ x }, () => dot(__f64.batchNorm(x, fresh()).y.data, dy), { x: g.dx.data });
  });

  it('batchNorm eval [3, 2, 3]', () => {
    const x = randT64(27, [3, 2, 3]);
    const weight = randT64(28, [2]);
    const bias = randT64(29, [2]);
    const runningMean = t64([0.3, -0.2], [2]);
    const runningVar = t64([0.8, 1.7], [2]);
    const dy = r(30, x);
    const o = { training: false, weight, bias, runningMean, runningVar, momentum: 0.1, eps: 1e-5, numBatchesTracked: 0 };
    const g = __f64.batchNormBackward({ data: dy, shape: x.shape }, x, {
      training: false, weight, bias, runningMean, runningVar, saveMean: null, saveInvstd: null, eps: 1e-5,
    });
    fdCheck({ x, weight, bias }, () => dot(__f64.batchNorm(x, o).y.data, dy), {
      x: g.dx.data, weight: g.dweight?.data, bias: g.dbias?.data,
    });
  });

  for (const [shape, G] of [[[2, 6, 3], 3], [[2, 4], 2], [[1, 4, 2, 2], 1], [[2, 6, 2, 1, 2], 6]] as [number[], number][]) {
    it(`groupNorm ${JSON.stringify(shape)} G=${G}`, () => {
      const C = shape[1];
      const x = randT64(31, shape);
      const weight = randT64(32, [C]);
      const bias = randT64(33, [C]);
      const dy = r(34, x);
      const o = { numGroups: G, weight, bias, eps: 1e-5 };
      const f = __f64.groupNorm(x, o);
      const g = __f64.groupNormBackward({ data: dy, shape: x.shape }, x, f.mean, f.rstd, o);
      expect(g.dweight?.shape).toEqual([C]);
      fdCheck({ x, weight, bias }, () => dot(__f64.groupNorm(x, o).y.data, dy), {
        x: g.dx.data, weight: g.dweight?.data, bias: g.dbias?.data,
      });
    });
  }

  it('groupNorm without affine', () => {
    const x = randT64(35, [2, 4, 3]);
    const dy = r(36, x);
    const o = { numGroups: 2, weight: null, bias: null, eps: 1e-5 };
    const f = __f64.groupNorm(x, o);
    const g = __f64.groupNormBackward({ data: dy, shape: x.shape }, x, f.mean, f.rstd, o);
    expect(g.dweight).toBeNull();
    fdCheck({ x }, () => dot(__f64.groupNorm(x, o).y.data, dy), { x: g.dx.data });
  });

  for (const shape of [[2, 3, 4], [2, 3, 2, 2]]) {
    it(`instanceNorm ${JSON.stringify(shape)}`, () => {
      const C = shape[1];
      const x = randT64(37, shape);
      const weight = randT64(38, [C]);
      const bias = randT64(39, [C]);
      const dy = r(40, x);
      const o = { weight, bias, eps: 1e-5 };
      const f = __f64.instanceNorm(x, o);
      expect(f.mean.shape).toEqual([2, 3]);
      const g = __f64.instanceNormBackward({ data: dy, shape: x.shape }, x, f.mean, f.rstd, o);
      fdCheck({ x, weight, bias }, () => dot(__f64.instanceNorm(x, o).y.data, dy), {
        x: g.dx.data, weight: g.dweight?.data, bias: g.dbias?.data,
      });
    });
  }

  const wnCases: [number | null, number[]][] = [
    [0, [3, 1, 1]],
    [1, [1, 4, 1]],
    [2, [1, 1, 2]],
    [null, []],
  ];
  for (const [dim, gShape] of wnCases) {
    it(`weightNorm v [3, 4, 2], dim ${dim}`, () => {
      const v = randT64(41, [3, 4, 2]);
      const g = randT64(42, gShape);
      const dw = r(43, v);
      const f = __f64.weightNorm(v, g, { dim });
      const b = __f64.weightNormBackward({ data: dw, shape: v.shape }, v, g, f.norms, { dim });
      expect(b.dv.shape).toEqual([3, 4, 2]);
      expect(b.dg.shape).toEqual(gShape);
      fdCheck({ v, g }, () => dot(__f64.weightNorm(v, g, { dim }).w.data, dw), { v: b.dv.data, g: b.dg.data });
    });
  }

  it('float32 wrapper agrees with the float64 backward', () => {
    const x = ht(makeRng(44).fill(12), [3, 4]);
    const dy = ht(makeRng(45).fill(12), [3, 4]);
    const o = { normalizedShape: [4], weight: ht([1, 2, 3, 4], [4]), bias: null, eps: 1e-5 };
    const f = layerNorm(x, o);
    const g32 = layerNormBackward(dy, x, f.mean, f.rstd, o);
    const g64 = __f64.layerNormBackward(dy, x, f.mean, f.rstd, o);
    expect(Array.from(g32.dx.data)).toEqual(Array.from(Float32Array.from(g64.dx.data)));
    expect(g32.dbias).toBeNull();
  });
});

// ---------------------------------------------------------------------------------------------
// half precision

describe('half', () => {
  it('exact bits', () => {
    expect(f32ToF16Bits(1)).toBe(0x3c00);
    expect(f32ToF16Bits(-2)).toBe(0xc000);
    expect(f32ToF16Bits(0)).toBe(0x0000);
    expect(f32ToF16Bits(-0)).toBe(0x8000);
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65519.99)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // tie with 2^16, goes to even → inf
    expect(f32ToF16Bits(1e6)).toBe(0x7c00);
    expect(f32ToF16Bits(-1e6)).toBe(0xfc00);
    expect(f32ToF16Bits(Infinity)).toBe(0x7c00);
    expect(f32ToF16Bits(-Infinity)).toBe(0xfc00);
    expect(f32ToF16Bits(2 ** -14)).toBe(0x0400); // smallest normal
    expect(f32ToF16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(f32ToF16Bits(1023 * 2 ** -24)).toBe(0x03ff); // largest subnormal
    expect(f32ToF16Bits(1023.5 * 2 ** -24)).toBe(0x0400); // tie → even (carries into normal)
    expect(f32ToF16Bits(2 ** -25)).toBe(0x0000); // tie between 0 and 2^-24 → 0
    expect(f32ToF16Bits(2 ** -25 * 1.0001)).toBe(0x0001);
    expect(f32ToF16Bits(3 * 2 ** -25)).toBe(0x0002); // 1.5 ulp → 2
    expect(f32ToF16Bits(2 ** -26)).toBe(0x0000);
    // ties to even in the normal range: ulp(1) = 2^-10
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00);
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f32ToF16Bits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01);
    expect(f32ToF16Bits(2 - 2 ** -12)).toBe(0x4000); // rounds up across the exponent
    const nan = f32ToF16Bits(NaN);
    expect(nan & 0x7c00).toBe(0x7c00);
    expect(nan & 0x03ff).not.toBe(0);
  });

  it('bits to float', () => {
    expect(f16BitsToF32(0x3c00)).toBe(1);
    expect(f16BitsToF32(0x7bff)).toBe(65504);
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24);
    expect(f16BitsToF32(0x0400)).toBe(2 ** -14);
    expect(f16BitsToF32(0x7c00)).toBe(Infinity);
    expect(f16BitsToF32(0xfc00)).toBe(-Infinity);
    expect(Number.isNaN(f16BitsToF32(0x7e00))).toBe(true);
    expect(Object.is(f16BitsToF32(0x8000), -0)).toBe(true);
    expect(f16BitsToF32(0xc000)).toBe(-2);
  });

  it('every non-NaN half round-trips exactly', () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = f16BitsToF32(h);
      if (Number.isNaN(v)) continue;
      if (f32ToF16Bits(v) !== h) throw new Error(`0x${h.toString(16)} → ${v} → 0x${f32ToF16Bits(v).toString(16)}`);
    }
  });

  it('roundToHalf returns a new rounded array', () => {
    const a = Float32Array.from([1 / 3, 70000, -1e-8, 2.5]);
    const out = roundToHalf(a);
    expect(out).not.toBe(a);
    expect(a[0]).toBe(Math.fround(1 / 3));
    expect(out[0]).toBe(f16BitsToF32(0x3555));
    expect(out[1]).toBe(Infinity);
    expect(Object.is(out[2], -0)).toBe(true);
    expect(out[3]).toBe(2.5);
  });

  it('packHalves / unpackHalves, odd length', () => {
    const a = Float32Array.from([1, -2, 0.5, 65504, 1 / 3]);
    const words = packHalves(a);
    expect(words.length).toBe(3);
    expect(words[0]).toBe((0x3c00 | (0xc000 << 16)) >>> 0);
    expect(words[0] & 0xffff).toBe(0x3c00);
    expect(words[0] >>> 16).toBe(0xc000);
    expect(words[2] >>> 16).toBe(0);
    expect(Array.from(unpackHalves(words, 5))).toEqual(Array.from(roundToHalf(a)));
    expect(unpackHalves(words, 4).length).toBe(4);
  });
});
