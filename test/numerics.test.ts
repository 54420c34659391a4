/**
 * Numerics on hard inputs (drawn from public bug reports about normalization kernels), on every
 * kernel family of the webgpu backend (default choice, row-fused, general partials + merge, the
 * discrete-GPU split, bound ranges of 4 KiB) and on the CPU backend, against float64 formulas
 * written here (independent of src/cpu/reference.ts):
 *
 *  1. outliers anywhere in a group (first, middle, last, several) at up to 6e4 standard
 *     deviations: every output within 1e-5 relative L2 of float64 (the statistics too);
 *  2. backward at large mean offsets with the statistics our forward returned: dx, dweight,
 *     dbias within 1e-4 of float64 (PyTorch's own float32 numbers for the layer-norm example);
 *  3. sums of squares past float32's range, and squares that underflow: finite, correct results;
 *  4. ±Inf in a batch-norm channel: saveMean/runningMean ±Inf (NaN for both signs), y,
 *     saveInvstd and runningVar NaN, as PyTorch's batch_norm gives.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNorms, type Norms, type Tensor } from '../src/index.ts';
import { closeBackends, openBackends, type Backends } from './util/parity.ts';
import { ON_WASM, sameDevice } from './util/gpu.ts';
import { makeRng } from './util/rng.ts';

let b: Backends;
let windowed: Norms;
let impls: { name: string; n: Norms }[] = [];

beforeAll(async () => {
  b = await openBackends();
  windowed = await sameDevice(b.gpu, { poisonOutputs: true, maxBindingBytes: 4096 });
  impls = [
    { name: 'webgpu', n: b.gpu },
    { name: 'webgpu row-fused', n: b.fused },
    { name: 'webgpu general', n: b.general },
    { name: 'webgpu gpu-split', n: b.gpuSplit },
    { name: 'webgpu 4 KiB ranges', n: windowed },
    { name: 'cpu', n: b.cpu },
  ];
}, 60_000);
afterAll(() => {
  windowed?.destroy();
  closeBackends(b);
});

// ---- float64 formulas ----

/** Groups of a normalization: stats group and affine channel of element i. */
interface Layout {
  groups: number;
  channels: number;
  group: (i: number) => number;
  channel: (i: number) => number;
}
const rowsLayout = (rows: number, K: number): Layout => ({ groups: rows, channels: K, group: (i) => Math.floor(i / K), channel: (i) => i % K });
const groupLayout = (N: number, C: number, S: number, G: number): Layout => ({
  groups: N * G,
  channels: C,
  group: (i) => Math.floor(i / ((C / G) * S)),
  channel: (i) => Math.floor(i / S) % C,
});
const batchLayout = (C: number, S: number): Layout => ({ groups: C, channels: C, group: (i) => Math.floor(i / S) % C, channel: (i) => Math.floor(i / S) % C });

/** Two-pass mean and biased variance per group, in float64. */
function stats64(x: Float32Array, L: Layout) {
  const cnt = new Float64Array(L.groups);
  const sum = new Float64Array(L.groups);
  for (let i = 0; i < x.length; i++) (cnt[L.group(i)] += 1), (sum[L.group(i)] += x[i]!);
  const mean = sum.map((s, j) => s / cnt[j]!);
  const ss = new Float64Array(L.groups);
  for (let i = 0; i < x.length; i++) ss[L.group(i)] += (x[i]! - mean[L.group(i)]!) ** 2;
  const variance = ss.map((s, j) => s / cnt[j]!);
  return { cnt, mean, variance };
}

function forward64(x: Float32Array, L: Layout, eps: number, w?: Float32Array, bias?: Float32Array) {
  const { cnt, mean, variance } = stats64(x, L);
  const rstd = variance.map((v) => 1 / Math.sqrt(v + eps));
  const y = Float64Array.from(x, (v, i) => {
    const j = L.group(i);
    const c = L.channel(i);
    return (v - mean[j]!) * rstd[j]! * (w ? w[c]! : 1) + (bias ? bias[c]! : 0);
  });
  return { cnt, mean, variance, rstd, y };
}

/** Backward with x's own float64 statistics: dx, dweight, dbias. */
function backward64(dy: Float32Array, x: Float32Array, L: Layout, eps: number, w?: Float32Array) {
  const { cnt, mean, rstd } = forward64(x, L, eps);
  const xhat = Float64Array.from(x, (v, i) => (v - mean[L.group(i)]!) * rstd[L.group(i)]!);
  const g = Float64Array.from(dy, (d, i) => d * (w ? w[L.channel(i)]! : 1));
  const sg = new Float64Array(L.groups);
  const sgx = new Float64Array(L.groups);
  const dweight = new Float64Array(L.channels);
  const dbias = new Float64Array(L.channels);
  for (let i = 0; i < x.length; i++) {
    const j = L.group(i);
    sg[j] += g[i]!;
    sgx[j] += g[i]! * xhat[i]!;
    dweight[L.channel(i)] += dy[i]! * xhat[i]!;
    dbias[L.channel(i)] += dy[i]!;
  }
  const dx = Float64Array.from(x, (_, i) => {
    const j = L.group(i);
    return rstd[j]! * (g[i]! - sg[j]! / cnt[j]! - (xhat[i]! * sgx[j]!) / cnt[j]!);
  });
  return { dx, dweight, dbias };
}

function relL2(got: Float32Array, want: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) (num += (got[i]! - want[i]!) ** 2), (den += want[i]! ** 2);
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** Reads every output and collects the ones past their tolerance (every output is checked). */
async function check(n: Norms, label: string, outs: [string, Tensor | null | undefined, ArrayLike<number>, number][], flushSubnormals = false): Promise<string[]> {
  const bad: string[] = [];
  for (const [name, t, want0, tol] of outs) {
    if (!t) {
      bad.push(`${label}: ${name} missing`);
      continue;
    }
    // WGSL may flush subnormal results: with flushSubnormals only results in float32's normal
    // range are compared (subnormals taken as 0 on both sides).
    const flush = (v: number) => (flushSubnormals && Math.abs(v) < 2 ** -126 ? 0 : v);
    const got = (await n.read(t)).map(flush);
    const want = Array.from(want0, flush);
    const err = relL2(got, want);
    if (!(err <= tol) || got.length !== want.length) bad.push(`${label}: ${name} relative L2 ${err.toExponential(2)} > ${tol} (got[0..3] ${Array.from(got.slice(0, 3))}, want ${Array.from(want).slice(0, 3)})`);
  }
  return bad;
}

const rng = (seed: number) => makeRng(seed);
const withAt = (x: Float32Array, at: number[], v: number | number[]): Float32Array => {
  const out = Float32Array.from(x);
  at.forEach((i, k) => (out[i] = Array.isArray(v) ? v[k]! : v));
  return out;
};

// ---- 1. outliers ----

describe('outliers anywhere in a group: statistics exact to float32 rounding, every output within 1e-5 of float64', () => {
  const TOL = 1e-5;

  // batchNorm training [64, 3, 1024], channels N(1, 0.5²), outliers at 30000 (6e4 sigma).
  const N = 64, C = 3, S = 1024;
  const base = rng(101).fill(N * C * S, 1, 0.5);
  const at = (n: number, c: number, s: number) => (n * C + c) * S + s;
  const bnCases: [string, Float32Array][] = [
    ['first element of each channel', withAt(base, [0, 1, 2].map((c) => at(0, c, 0)), 30000)],
    ['last element of each channel', withAt(base, [0, 1, 2].map((c) => at(N - 1, c, S - 1)), 30000)],
    ['middle, -30000', withAt(base, [0, 1, 2].map((c) => at(31, c, 517)), -30000)],
    ['several (first, 3rd, a middle one; both signs)', withAt(base, [at(0, 0, 0), at(0, 0, 1), at(0, 0, 2), at(40, 1, 0), at(0, 2, 0), at(20, 2, 9)], [30000, -20000, 30000, 25000, -30000, 30000])],
  ];
  for (const [what, x] of bnCases) {
    it(`batchNorm training [64, 3, 1024], outliers: ${what}`, async () => {
      const L = batchLayout(C, S);
      const w = Float32Array.from([1.5, -0.5, 2]);
      const bias = Float32Array.from([0.1, 0.2, -0.3]);
      const rm0 = Float32Array.from([0.5, -1, 2]);
      const rv0 = Float32Array.from([1, 2, 0.5]);
      const dyH = rng(7).fill(x.length);
      const f = forward64(x, L, 1e-5, w, bias);
      const bw = backward64(dyH, x, L, 1e-5, w);
      const rm = Array.from(rm0, (r, c) => 0.9 * r + 0.1 * f.mean[c]!);
      const rv = Array.from(rv0, (r, c) => 0.9 * r + (0.1 * f.variance[c]! * f.cnt[c]!) / (f.cnt[c]! - 1));
      const bad: string[] = [];
      for (const { name, n } of impls) {
        const t = { x: n.tensor(x, [N, C, S]), w: n.tensor(w, [C]), b: n.tensor(bias, [C]), rm: n.tensor(rm0, [C]), rv: n.tensor(rv0, [C]), dy: n.tensor(dyH, [N, C, S]) };
        const o = n.batchNorm(t.x, { training: true, weight: t.w, bias: t.b, runningMean: t.rm, runningVar: t.rv });
        const g = n.batchNormBackward(t.dy, t.x, { training: true, weight: t.w, bias: t.b, saveMean: o.saveMean, saveInvstd: o.saveInvstd });
        // The first case is the reported one: PyTorch float32 is off by 3.8e-8 (y) and 2.3e-8
        // (saveMean) there; the target is at most 10x that (real binding sizes: with 4 KiB
        // bindings, a test-only setting, 512 partials per channel add their rounding: y 4.2e-7).
        const first = what.startsWith('first') && !name.includes('KiB');
        bad.push(
          ...(await check(n, name, [
            ['y', o.y, f.y, first ? 3.8e-7 : TOL],
            ['saveMean', o.saveMean, f.mean, first ? 2.3e-7 : TOL],
            ['saveInvstd', o.saveInvstd, f.rstd, TOL],
            ['runningMean', t.rm, rm, TOL],
            ['runningVar', t.rv, rv, TOL],
            ['dx', g.dx, bw.dx, TOL],
            ['dweight', g.dweight, bw.dweight, TOL],
            ['dbias', g.dbias, bw.dbias, TOL],
          ])),
        );
        for (const v of [...Object.values(t), ...Object.values(o), ...Object.values(g)]) v?.destroy();
      }
      expect(bad).toEqual([]);
    });
  }

  // layerNorm [4, 4000], rows N(2, 1), an outlier at -8000 (the row means are near zero: PyTorch
  // float32's mean is off by 2e-5 relative there; the target is 10x that for the mean).
  const R = 4, K = 4000;
  const lbase = rng(202).fill(R * K, 2, 1);
  const lnCases: [string, Float32Array][] = [
    ['first element of each row', withAt(lbase, [0, 1, 2, 3].map((r) => r * K), -8000)],
    ['last element of each row', withAt(lbase, [0, 1, 2, 3].map((r) => r * K + K - 1), -8000)],
    ['middle', withAt(lbase, [0, 1, 2, 3].map((r) => r * K + 1999), -8000)],
    ['several per row', withAt(lbase, [0, 1, 2, K, K + 3001, 2 * K + 5, 3 * K + 3998], [-8000, 9000, -8000, 8000, -8000, 7000, -9000])],
  ];
  for (const [what, x] of lnCases) {
    it(`layerNorm [4, 4000] (+ weight, bias, and backward), outliers: ${what}`, async () => {
      const L = rowsLayout(R, K);
      const w = rng(3).fill(K, 1, 0.2);
      const bias = rng(4).fill(K, 0, 0.2);
      const dyH = rng(5).fill(R * K);
      const f = forward64(x, L, 1e-5, w, bias);
      const bw = backward64(dyH, x, L, 1e-5, w);
      const bad: string[] = [];
      for (const { name, n } of impls) {
        const t = { x: n.tensor(x, [R, K]), w: n.tensor(w, [K]), b: n.tensor(bias, [K]), dy: n.tensor(dyH, [R, K]) };
        const o = n.layerNorm(t.x, { normalizedShape: [K], weight: t.w, bias: t.b });
        const g = n.layerNormBackward(t.dy, t.x, o.mean, o.rstd, { normalizedShape: [K], weight: t.w, bias: t.b });
        bad.push(
          ...(await check(n, name, [
            ['y', o.y, f.y, TOL],
            ['mean', o.mean, f.mean, 2e-4],
            ['rstd', o.rstd, f.rstd, TOL],
            ['dx', g.dx, bw.dx, TOL],
            ['dweight', g.dweight, bw.dweight, TOL],
            ['dbias', g.dbias, bw.dbias, TOL],
          ])),
        );
        for (const v of [...Object.values(t), ...Object.values(o), ...Object.values(g)]) v?.destroy();
      }
      expect(bad).toEqual([]);
    });
  }

  // groupNorm [2, 8, 500], G = 2, N(0, 1), the first element of each sample ±5000; and
  // instanceNorm [2, 3, 700] with outliers first and last in each (n, c).
  const gnx = withAt(rng(303).fill(2 * 8 * 500), [0, 8 * 500], [5000, -5000]);
  const inx = withAt(rng(304).fill(2 * 3 * 700, 3, 1), [0, 699, 700, 1399 + 700, 3 * 700 + 350], [-4000, 6000, 5000, -5000, 9000]);
  it('groupNorm [2, 8, 500] G=2, first element of each sample ±5000 (+ backward)', async () => {
    const L = groupLayout(2, 8, 500, 2);
    const w = rng(8).fill(8, 1, 0.3);
    const bias = rng(9).fill(8, 0, 0.3);
    const dyH = rng(10).fill(gnx.length);
    const f = forward64(gnx, L, 1e-5, w, bias);
    const bw = backward64(dyH, gnx, L, 1e-5, w);
    const bad: string[] = [];
    for (const { name, n } of impls) {
      const t = { x: n.tensor(gnx, [2, 8, 500]), w: n.tensor(w, [8]), b: n.tensor(bias, [8]), dy: n.tensor(dyH, [2, 8, 500]) };
      const o = n.groupNorm(t.x, { numGroups: 2, weight: t.w, bias: t.b });
      const g = n.groupNormBackward(t.dy, t.x, o.mean, o.rstd, { numGroups: 2, weight: t.w, bias: t.b });
      bad.push(...(await check(n, name, [['y', o.y, f.y, TOL], ['mean', o.mean, f.mean, TOL], ['rstd', o.rstd, f.rstd, TOL], ['dx', g.dx, bw.dx, TOL], ['dweight', g.dweight, bw.dweight, TOL], ['dbias', g.dbias, bw.dbias, TOL]])));
      for (const v of [...Object.values(t), ...Object.values(o), ...Object.values(g)]) v?.destroy();
    }
    expect(bad).toEqual([]);
  });
  it('instanceNorm [2, 3, 700], outliers first, last and in the middle of channels (+ backward)', async () => {
    const L = groupLayout(2, 3, 700, 3);
    const dyH = rng(11).fill(inx.length);
    const f = forward64(inx, L, 1e-5);
    const bw = backward64(dyH, inx, L, 1e-5);
    const bad: string[] = [];
    for (const { name, n } of impls) {
      const t = { x: n.tensor(inx, [2, 3, 700]), dy: n.tensor(dyH, [2, 3, 700]) };
      const o = n.instanceNorm(t.x, {});
      const g = n.instanceNormBackward(t.dy, t.x, o.mean, o.rstd, {});
      bad.push(...(await check(n, name, [['y', o.y, f.y, TOL], ['mean', o.mean, f.mean, TOL], ['rstd', o.rstd, f.rstd, TOL], ['dx', g.dx, bw.dx, TOL]])));
      for (const v of [...Object.values(t), ...Object.values(o), ...Object.values(g)]) v?.destroy();
    }
    expect(bad).toEqual([]);
  });
});

// ---- 2. backward at large mean offsets ----

describe('backward at large mean offsets, with the statistics the forward returned: within 1e-4 of float64', () => {
  const TOL = 1e-4;

  it('layerNorm backward on [10000, 10000.001, 10000.002, 10000.003] matches float64 [239.28, -356.15, 94.60, 22.26]', async () => {
    const x = Float32Array.from([10000, 10000.001, 10000.002, 10000.003]);
    const dyH = Float32Array.from([1, -1, 0.5, 0.25]);
    const bw = backward64(dyH, x, rowsLayout(1, 4), 1e-5);
    // The float64 formula agrees with the numbers computed independently for the issue.
    expect(Array.from(bw.dx, (v) => Math.round(v * 100) / 100)).toEqual([239.28, -356.15, 94.6, 22.26]);
    const bad: string[] = [];
    for (const { name, n } of impls) {
      const t = { x: n.tensor(x, [1, 4]), dy: n.tensor(dyH, [1, 4]), w: n.tensor(Float32Array.from([1, 1, 1, 1]), [4]), b: n.tensor(new Float32Array(4), [4]) };
      const o = n.layerNorm(t.x, { normalizedShape: [4] });
      const g = n.layerNormBackward(t.dy, t.x, o.mean, o.rstd, { normalizedShape: [4], weight: t.w, bias: t.b });
      bad.push(...(await check(n, name, [['dx', g.dx, bw.dx, TOL], ['dweight', g.dweight, bw.dweight, TOL], ['dbias', g.dbias, bw.dbias, TOL]])));
      for (const v of [...Object.values(t), ...Object.values(o), ...Object.values(g)]) v?.destroy();
    }
    expect(bad).toEqual([]);
  });

  const bnOffset: [string, number[], Float32Array][] = [
    ['[8, 1], x = 3e4 + 0.01 z', [8, 1], Float32Array.from(rng(12).fill(8), (z) => 3e4 + 0.01 * z)],
    [
      '[16, 3, 40], channel means 3e4 / -5e3 / 1e5, sigma 0.01 / 0.1 / 1',
      [16, 3, 40],
      Float32Array.from(rng(13).fill(16 * 3 * 40), (z, i) => {
        const c = Math.floor(i / 40) % 3;
        return [3e4, -5e3, 1e5][c]! + [0.01, 0.1, 1][c]! * z;
      }),
    ],
  ];
  for (const [what, shape, x] of bnOffset) {
    it(`batchNorm training backward ${what}`, async () => {
      const C = shape[1]!;
      const S = x.length / (shape[0]! * C);
      const L = batchLayout(C, S);
      const w = rng(14).fill(C, 1, 0.3);
      const bias = rng(15).fill(C);
      const dyH = rng(16).fill(x.length);
      const bw = backward64(dyH, x, L, 1e-5, w);
      const bad: string[] = [];
      for (const { name, n } of impls) {
        const t = { x: n.tensor(x, shape), dy: n.tensor(dyH, shape), w: n.tensor(w, [C]), b: n.tensor(bias, [C]) };
        const o = n.batchNorm(t.x, { training: true, weight: t.w, bias: t.b });
        const g = n.batchNormBackward(t.dy, t.x, { training: true, weight: t.w, bias: t.b, saveMean: o.saveMean, saveInvstd: o.saveInvstd });
        bad.push(...(await check(n, name, [['dx', g.dx, bw.dx, TOL], ['dweight', g.dweight, bw.dweight, TOL], ['dbias', g.dbias, bw.dbias, TOL]])));
        for (const v of [...Object.values(t), ...Object.values(o), ...Object.values(g)]) v?.destroy();
      }
      expect(bad).toEqual([]);
    });
  }

  it('groupNorm and layerNorm (rows past the row-fused block size) backward at mean 1e4, sigma 1e-2', async () => {
    const gx = Float32Array.from(rng(17).fill(3 * 4 * 50), (z) => 1e4 + 0.01 * z);
    const lx = Float32Array.from(rng(18).fill(2100 * 8), (z, i) => 1e4 * (1 + (i % 3)) + 0.05 * z);
    const cases = [
      { shape: [3, 4, 50], L: groupLayout(3, 4, 50, 2), x: gx, C: 4, run: (n: Norms, t: Record<string, Tensor>) => {
        const o = n.groupNorm(t.x!, { numGroups: 2, weight: t.w, bias: t.b });
        return { o, g: n.groupNormBackward(t.dy!, t.x!, o.mean, o.rstd, { numGroups: 2, weight: t.w, bias: t.b }) };
      } },
      { shape: [2100, 8], L: rowsLayout(2100, 8), x: lx, C: 8, run: (n: Norms, t: Record<string, Tensor>) => {
        const o = n.layerNorm(t.x!, { normalizedShape: [8], weight: t.w, bias: t.b });
        return { o, g: n.layerNormBackward(t.dy!, t.x!, o.mean, o.rstd, { normalizedShape: [8], weight: t.w, bias: t.b }) };
      } },
    ];
    const bad: string[] = [];
    for (const c of cases) {
      const w = rng(19).fill(c.C, 1, 0.3);
      const dyH = rng(20).fill(c.x.length);
      const bw = backward64(dyH, c.x, c.L, 1e-5, w);
      for (const { name, n } of impls) {
        const t = { x: n.tensor(c.x, c.shape), dy: n.tensor(dyH, c.shape), w: n.tensor(w, [c.C]), b: n.tensor(new Float32Array(c.C), [c.C]) };
        const { o, g } = c.run(n, t);
        bad.push(...(await check(n, `${name} [${c.shape}]`, [['dx', g.dx, bw.dx, TOL], ['dweight', g.dweight, bw.dweight, TOL], ['dbias', g.dbias, bw.dbias, TOL]])));
        for (const v of [...Object.values(t), ...Object.values(o), ...Object.values(g)]) (v as Tensor | null)?.destroy();
      }
    }
    expect(bad).toEqual([]);
  });

  it('a caller-supplied mean far from x’s own mean is used as given (PyTorch semantics)', async () => {
    const x = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const dyH = Float32Array.from([1, -1, 0.5, 0.25, 0, 2]);
    const mean = Float32Array.from([3]); // x's mean is 3.5
    const rstd = Float32Array.from([0.5]);
    // dx = rstd/K·(K·g − Σg − x̂·Σ(g·x̂)) with x̂ = (x − 3)·0.5.
    const xh = Array.from(x, (v) => (v - 3) * 0.5);
    const sg = dyH.reduce((a, v) => a + v, 0);
    const sgx = xh.reduce((a, v, i) => a + v * dyH[i]!, 0);
    const want = Array.from(dyH, (g, i) => (0.5 / 6) * (6 * g - sg - xh[i]! * sgx));
    const bad: string[] = [];
    for (const { name, n } of impls) {
      const t = { x: n.tensor(x, [1, 6]), dy: n.tensor(dyH, [1, 6]), m: n.tensor(mean, [1]), r: n.tensor(rstd, [1]) };
      const g = n.layerNormBackward(t.dy, t.x, t.m, t.r, { normalizedShape: [6] });
      bad.push(...(await check(n, name, [['dx', g.dx, want, 1e-6]])));
      for (const v of [...Object.values(t), ...Object.values(g)]) v?.destroy();
    }
    expect(bad).toEqual([]);
  });
});

// ---- 3. magnitudes past float32's squares ----

describe('sums of squares past float32: finite inputs give finite, correct results', () => {
  const TOL = 1e-5;
  interface Mag { what: string; run: (n: Norms) => Promise<string[]> }
  const cases: Mag[] = [
    {
      what: 'rmsNorm on eight values 1e19: y = 1, rstd = 1e-19',
      run: async (n) => {
        const x = n.tensor(new Float32Array(8).fill(1e19), [1, 8]);
        const o = n.rmsNorm(x, { normalizedShape: [8] });
        return check(n, 'rmsNorm 1e19', [['y', o.y, new Array(8).fill(1), TOL], ['rstd', o.rstd, [1e-19], TOL]]);
      },
    },
    {
      what: 'rmsNorm on 1e-25·z with eps 0 (squares underflow): y = z / rms(z)',
      run: async (n) => {
        const z = rng(21).fill(37);
        const x = Float32Array.from(z, (v) => v * 1e-25);
        const f = forward64(x, rowsLayout(1, 37), 0);
        const ms = x.reduce((a, v) => a + v * v, 0) / 37;
        const o = n.rmsNorm(n.tensor(x, [1, 37]), { normalizedShape: [37], eps: 0 });
        void f;
        return check(n, 'rmsNorm 1e-25', [['y', o.y, Array.from(x, (v) => v / Math.sqrt(ms)), TOL], ['rstd', o.rstd, [1 / Math.sqrt(ms)], TOL]]);
      },
    },
    {
      what: 'weightNorm v = [1e20, 1, 1] (dim null), g = 2: w = [2, 2e-20, 2e-20], norms = 1e20',
      run: async (n) => {
        const o = n.weightNorm(n.tensor([1e20, 1, 1], [3]), n.tensor([2], []), { dim: null });
        return check(n, 'weightNorm 1e20', [['w', o.w, [2, 2e-20, 2e-20], TOL], ['norms', o.norms, [1e20], TOL]]);
      },
    },
    {
      what: 'weightNorm v = 1e-30·[1, 2, 2] per slice (dim 0): norms 3e-30, w = g·v/norm',
      run: async (n) => {
        const v = Float32Array.from([1, 2, 2, -2, 1, 2], (a) => a * 1e-30);
        const o = n.weightNorm(n.tensor(v, [2, 3]), n.tensor([3, 6], [2, 1]), { dim: 0 });
        return check(n, 'weightNorm 1e-30', [['w', o.w, [1, 2, 2, -4, 2, 4], TOL], ['norms', o.norms, [3e-30, 3e-30], TOL]]);
      },
    },
    {
      what: 'layerNorm on 16 values alternating 1e19, 2e19: y = ∓1',
      run: async (n) => {
        const x = Float32Array.from({ length: 16 }, (_, i) => (i % 2 ? 2e19 : 1e19));
        const o = n.layerNorm(n.tensor(x, [1, 16]), { normalizedShape: [16] });
        return check(n, 'layerNorm 1e19', [['y', o.y, Array.from(x, (v) => (v > 1.5e19 ? 1 : -1)), TOL], ['mean', o.mean, [1.5e19], TOL], ['rstd', o.rstd, [2e-19], TOL]]);
      },
    },
    {
      what: 'groupNorm on [[1e30, -1e30], [2e30, -2e30]], one group per sample: y = ±1',
      run: async (n) => {
        const o = n.groupNorm(n.tensor([1e30, -1e30, 2e30, -2e30], [2, 2]), { numGroups: 1 });
        return check(n, 'groupNorm 1e30', [['y', o.y, [1, -1, 1, -1], TOL], ['mean', o.mean, [0, 0], TOL], ['rstd', o.rstd, [1e-30, 5e-31], TOL]]);
      },
    },
    {
      what: 'batchNorm training on channels at 1e25 and 1e-25 scale, eps 0',
      run: async (n) => {
        const z = rng(22).fill(4 * 2 * 9);
        const x = Float32Array.from(z, (v, i) => v * (Math.floor(i / 9) % 2 ? 1e-25 : 1e25));
        const f = forward64(x, batchLayout(2, 9), 0);
        const o = n.batchNorm(n.tensor(x, [4, 2, 9]), { training: true, eps: 0 });
        return check(n, 'batchNorm 1e±25', [['y', o.y, f.y, TOL], ['saveMean', o.saveMean, f.mean, TOL], ['saveInvstd', o.saveInvstd, f.rstd, TOL]]);
      },
    },
    {
      what: 'layerNorm on 4096 values 1e37·z (even sqrt(M2) is past float32; the standard deviation is not) and the mean of [3e38, -3e38, 3e38]',
      run: async (n) => {
        const x = Float32Array.from(rng(27).fill(4096), (v) => v * 1e37);
        const f = forward64(x, rowsLayout(1, 4096), 1e-5);
        const o = n.layerNorm(n.tensor(x, [1, 4096]), { normalizedShape: [4096] });
        const o2 = n.layerNorm(n.tensor([3e38, -3e38, 3e38], [1, 3]), { normalizedShape: [3] });
        return check(n, 'layerNorm 1e37', [['y', o.y, f.y, TOL], ['mean', o.mean, f.mean, TOL], ['rstd', o.rstd, f.rstd, TOL], ['mean of ±3e38', o2.mean, [1e38], TOL]]);
      },
    },
    {
      what: 'layerNorm rows of 1e-22·z with eps 0 (a thousand per row: general and split kernels too)',
      run: async (n) => {
        const x = Float32Array.from(rng(23).fill(3 * 1000, 0.5), (v) => v * 1e-22);
        const f = forward64(x, rowsLayout(3, 1000), 0);
        const o = n.layerNorm(n.tensor(x, [3, 1000]), { normalizedShape: [1000], eps: 0 });
        return check(n, 'layerNorm 1e-22', [['y', o.y, f.y, TOL], ['mean', o.mean, f.mean, TOL], ['rstd', o.rstd, f.rstd, TOL]]);
      },
    },
  ];
  for (const c of cases) {
    it(c.what, async () => {
      const bad: string[] = [];
      for (const { name, n } of impls) {
        const before = n.stats().liveBuffers;
        bad.push(...(await c.run(n)).map((s) => `${name}: ${s}`));
        void before;
      }
      expect(bad).toEqual([]);
    });
  }
});

// ---- 5. results in float32's normal range from intermediates that would not be ----

/** RMS-norm backward in float64 (x's own rstd): dx = rstd * (g - xhat * mean(g * xhat)), xhat = x * rstd. */
function rmsBackward64(dy: Float32Array, x: Float32Array, rows: number, K: number, eps: number, w?: Float32Array) {
  const dx = new Float64Array(x.length);
  const dweight = new Float64Array(K);
  for (let r = 0; r < rows; r++) {
    let ms = 0;
    for (let i = 0; i < K; i++) ms += x[r * K + i]! ** 2;
    const rstd = 1 / Math.sqrt(ms / K + eps);
    let sgx = 0;
    for (let i = 0; i < K; i++) sgx += dy[r * K + i]! * (w ? w[i]! : 1) * x[r * K + i]! * rstd;
    for (let i = 0; i < K; i++) {
      const e = r * K + i;
      const xh = x[e]! * rstd;
      dx[e] = rstd * (dy[e]! * (w ? w[i]! : 1) - (xh * sgx) / K);
      dweight[i] += dy[e]! * xh;
    }
  }
  return { dx, dweight };
}

describe('backward at x near 3e37 (rstd near 3e-38): dx in the normal range is not lost to subnormal intermediates', () => {
  // WGSL may flush subnormal values: rstd * g alone would be subnormal for |g| < 0.35, so the
  // kernels apply rstd last. dx (its values in float32's normal range: about 70 % of them here;
  // subnormal results may be flushed) and the other outputs within 1e-4 of float64.
  const TOL = 1e-4;
  const big = (seed: number, n: number) => Float32Array.from(rng(seed).fill(n), (z) => 3e37 * z);
  it('rmsNorm [3, 100] and [2, 4096] with weight', async () => {
    const bad: string[] = [];
    for (const [rows, K] of [[3, 100], [2, 4096]] as const) {
      const x = big(31, rows * K);
      const dyH = rng(32).fill(rows * K);
      const w = rng(33).fill(K, 1, 0.2);
      const eps = 1.1920929e-7;
      const bw = rmsBackward64(dyH, x, rows, K, eps, w);
      for (const { name, n } of impls) {
        const t = { x: n.tensor(x, [rows, K]), dy: n.tensor(dyH, [rows, K]), w: n.tensor(w, [K]) };
        const o = n.rmsNorm(t.x, { normalizedShape: [K], weight: t.w });
        const g = n.rmsNormBackward(t.dy, t.x, o.rstd, { normalizedShape: [K], weight: t.w });
        bad.push(...(await check(n, `${name} [${rows}, ${K}]`, [['dx', g.dx, bw.dx, TOL], ['dweight', g.dweight, bw.dweight, TOL]], true)));
        for (const v of [...Object.values(t), ...Object.values(o), ...Object.values(g)]) (v as Tensor | null)?.destroy();
      }
    }
    expect(bad).toEqual([]);
  });
  const cases = [
    { what: 'layerNorm [3, 100]', shape: [3, 100], L: rowsLayout(3, 100), C: 100, run: (n: Norms, t: Record<string, Tensor>) => {
      const o = n.layerNorm(t.x!, { normalizedShape: [100], weight: t.w, bias: t.b });
      return { o, g: n.layerNormBackward(t.dy!, t.x!, o.mean, o.rstd, { normalizedShape: [100], weight: t.w, bias: t.b }) };
    } },
    { what: 'groupNorm [2, 6, 50] G=3', shape: [2, 6, 50], L: groupLayout(2, 6, 50, 3), C: 6, run: (n: Norms, t: Record<string, Tensor>) => {
      const o = n.groupNorm(t.x!, { numGroups: 3, weight: t.w, bias: t.b });
      return { o, g: n.groupNormBackward(t.dy!, t.x!, o.mean, o.rstd, { numGroups: 3, weight: t.w, bias: t.b }) };
    } },
    { what: 'instanceNorm [2, 3, 40]', shape: [2, 3, 40], L: groupLayout(2, 3, 40, 3), C: 3, run: (n: Norms, t: Record<string, Tensor>) => {
      const o = n.instanceNorm(t.x!, { weight: t.w, bias: t.b });
      return { o, g: n.instanceNormBackward(t.dy!, t.x!, o.mean, o.rstd, { weight: t.w, bias: t.b }) };
    } },
    { what: 'batchNorm training [4, 3, 25]', shape: [4, 3, 25], L: batchLayout(3, 25), C: 3, run: (n: Norms, t: Record<string, Tensor>) => {
      const o = n.batchNorm(t.x!, { training: true, weight: t.w, bias: t.b });
      return { o, g: n.batchNormBackward(t.dy!, t.x!, { training: true, weight: t.w, bias: t.b, saveMean: o.saveMean, saveInvstd: o.saveInvstd }) };
    } },
  ];
  for (const c of cases) {
    it(`${c.what} with weight and bias`, async () => {
      const size = c.shape.reduce((a, b) => a * b, 1);
      const x = big(34, size);
      const dyH = rng(35).fill(size);
      const w = rng(36).fill(c.C, 1, 0.2);
      const bw = backward64(dyH, x, c.L, 1e-5, w);
      const bad: string[] = [];
      for (const { name, n } of impls) {
        const t = { x: n.tensor(x, c.shape), dy: n.tensor(dyH, c.shape), w: n.tensor(w, [c.C]), b: n.tensor(new Float32Array(c.C), [c.C]) };
        const { o, g } = c.run(n, t);
        bad.push(...(await check(n, name, [['dx', g.dx, bw.dx, TOL], ['dweight', g.dweight, bw.dweight, TOL], ['dbias', g.dbias, bw.dbias, TOL]], true)));
        for (const v of [...Object.values(t), ...Object.values(o), ...Object.values(g)]) (v as Tensor | null)?.destroy();
      }
      expect(bad).toEqual([]);
    });
  }
});

describe('data whose spread passes float32 (rstd or g/‖v‖ subnormal, deviations x − mean past float32): outputs within 1e-4 of float64', () => {
  // 'spread': x about 1.2e38·z (clamped to ±3.3e38): the standard deviation is past 2^126 ≈ 8.5e37,
  // so rstd is a subnormal number, which WGSL lets an implementation flush to 0 wherever it is an
  // operand or a result. 'outliers': x near −3e38 with every 50th (or 2000th) element +3.3e38: x − mean
  // is past float32's largest value (6.3e38) while rstd may be normal. y, the saved statistics and
  // dweight are O(1) or normal and must be right; dx's values are about rstd·dy (subnormal
  // results, which may be flushed: compared in the normal range, and dy is scaled by 1e6 so that
  // most of them are normal).
  const TOL = 1e-4;
  const clamp = (v: number) => Math.max(-3.3e38, Math.min(3.3e38, v));
  const data = {
    spread: (seed: number, n: number) => Float32Array.from(rng(seed).fill(n), (z) => clamp(1.2e38 * z)),
    outliers: (seed: number, n: number) => Float32Array.from(rng(seed).fill(n), (z, i) => (i % (n > 1000 ? 2000 : 50) === 7 ? 3.3e38 : clamp(-3e38 + 1e36 * z))),
  };
  const cases = [
    { what: 'layerNorm [3, 100]', shape: [3, 100], L: rowsLayout(3, 100), C: 100, rms: false, run: (n: Norms, t: Record<string, Tensor>) => {
      const o = n.layerNorm(t.x!, { normalizedShape: [100], weight: t.w, bias: t.b });
      return { y: o.y, mean: o.mean, rstd: o.rstd, g: n.layerNormBackward(t.dy!, t.x!, o.mean, o.rstd, { normalizedShape: [100], weight: t.w, bias: t.b }), o };
    } },
    { what: 'layerNorm [2, 4096]', shape: [2, 4096], L: rowsLayout(2, 4096), C: 4096, rms: false, run: (n: Norms, t: Record<string, Tensor>) => {
      const o = n.layerNorm(t.x!, { normalizedShape: [4096], weight: t.w, bias: t.b });
      return { y: o.y, mean: o.mean, rstd: o.rstd, g: n.layerNormBackward(t.dy!, t.x!, o.mean, o.rstd, { normalizedShape: [4096], weight: t.w, bias: t.b }), o };
    } },
    { what: 'rmsNorm [3, 100]', shape: [3, 100], L: rowsLayout(3, 100), C: 100, rms: true, run: (n: Norms, t: Record<string, Tensor>) => {
      const o = n.rmsNorm(t.x!, { normalizedShape: [100], weight: t.w });
      return { y: o.y, mean: null, rstd: o.rstd, g: n.rmsNormBackward(t.dy!, t.x!, o.rstd, { normalizedShape: [100], weight: t.w }), o };
    } },
    { what: 'groupNorm [2, 6, 50] G=3', shape: [2, 6, 50], L: groupLayout(2, 6, 50, 3), C: 6, rms: false, run: (n: Norms, t: Record<string, Tensor>) => {
      const o = n.groupNorm(t.x!, { numGroups: 3, weight: t.w, bias: t.b });
      return { y: o.y, mean: o.mean, rstd: o.rstd, g: n.groupNormBackward(t.dy!, t.x!, o.mean, o.rstd, { numGroups: 3, weight: t.w, bias: t.b }), o };
    } },
    { what: 'instanceNorm [2, 3, 40]', shape: [2, 3, 40], L: groupLayout(2, 3, 40, 3), C: 3, rms: false, run: (n: Norms, t: Record<string, Tensor>) => {
      const o = n.instanceNorm(t.x!, { weight: t.w, bias: t.b });
      return { y: o.y, mean: o.mean, rstd: o.rstd, g: n.instanceNormBackward(t.dy!, t.x!, o.mean, o.rstd, { weight: t.w, bias: t.b }), o };
    } },
    { what: 'batchNorm training [4, 3, 25]', shape: [4, 3, 25], L: batchLayout(3, 25), C: 3, rms: false, run: (n: Norms, t: Record<string, Tensor>) => {
      const o = n.batchNorm(t.x!, { training: true, weight: t.w, bias: t.b });
      return { y: o.y, mean: o.saveMean, rstd: o.saveInvstd, g: n.batchNormBackward(t.dy!, t.x!, { training: true, weight: t.w, bias: t.b, saveMean: o.saveMean, saveInvstd: o.saveInvstd }), o };
    } },
    { what: 'batchNorm training channels-last [4, 5, 3]', shape: [4, 5, 3], L: { groups: 3, channels: 3, group: (i: number) => i % 3, channel: (i: number) => i % 3 }, C: 3, rms: false, run: (n: Norms, t: Record<string, Tensor>) => {
      const o = n.batchNorm(t.x!, { training: true, weight: t.w, bias: t.b, channelsLast: true });
      return { y: o.y, mean: o.saveMean, rstd: o.saveInvstd, g: n.batchNormBackward(t.dy!, t.x!, { training: true, weight: t.w, bias: t.b, saveMean: o.saveMean, saveInvstd: o.saveInvstd, channelsLast: true }), o };
    } },
  ];
  for (const c of cases) for (const kind of ['spread', 'outliers'] as const) {
    it(`${c.what}, ${kind}: y, mean, rstd, dx, dweight, dbias`, async () => {
      const size = c.shape.reduce((a, b) => a * b, 1);
      const x = data[kind](41, size);
      const dyH = Float32Array.from(rng(42).fill(size), (v) => 1e6 * v);
      const w = rng(43).fill(c.C, 1, 0.2);
      const bias = rng(44).fill(c.C, 0, 0.5);
      const eps = c.rms ? 1.1920929e-7 : 1e-5;
      let want: { y: ArrayLike<number>; mean: ArrayLike<number> | null; rstd: ArrayLike<number>; dx: ArrayLike<number>; dweight: ArrayLike<number>; dbias: ArrayLike<number> | null };
      if (c.rms) {
        const K = c.C;
        const rows = size / K;
        const rstd = Array.from({ length: rows }, (_, r) => 1 / Math.sqrt(x.slice(r * K, r * K + K).reduce((a, v) => a + v * v, 0) / K + eps));
        const bw = rmsBackward64(dyH, x, rows, K, eps, w);
        want = { y: Array.from(x, (v, i) => v * rstd[Math.floor(i / K)]! * w[i % K]!), mean: null, rstd, dx: bw.dx, dweight: bw.dweight, dbias: null };
      } else {
        const f = forward64(x, c.L, eps, w, bias);
        const bw = backward64(dyH, x, c.L, eps, w);
        want = { y: f.y, mean: f.mean, rstd: f.rstd, ...bw };
      }
      const bad: string[] = [];
      for (const { name, n } of impls) {
        const t = { x: n.tensor(x, c.shape), dy: n.tensor(dyH, c.shape), w: n.tensor(w, [c.C]), b: n.tensor(bias, [c.C]) };
        const r = c.run(n, t);
        const outs: [string, Tensor | null | undefined, ArrayLike<number>, number][] = [['y', r.y, want.y, TOL], ['dx', r.g.dx, want.dx, TOL], ['dweight', r.g.dweight, want.dweight, TOL]];
        if (want.mean) outs.push(['mean', r.mean, want.mean, TOL]);
        if (want.dbias) outs.push(['dbias', (r.g as { dbias?: Tensor | null }).dbias, want.dbias, TOL]);
        bad.push(...(await check(n, `${name} ${c.what}`, outs, true)));
        // The saved rstd itself (subnormal for 'spread'), to float32's precision (2^-149 absolute).
        const got = await n.read(r.rstd!);
        for (let j = 0; j < got.length; j++) if (!(Math.abs(got[j]! - want.rstd[j]!) <= 2 ** -149 + 1e-6 * want.rstd[j]!)) bad.push(`${name} ${c.what}: rstd[${j}] = ${got[j]}, float64 ${want.rstd[j]}`);
        for (const v of [...Object.values(t), ...Object.values(r.o), ...Object.values(r.g)]) (v as Tensor | null)?.destroy();
      }
      expect(bad).toEqual([]);
    });
  }
  it('layerNorm modulated per sample ([2, 3, 100], scale and shift [2, 1, 100]), outliers: y, dscale, dshift, dweight', async () => {
    const [B, T, D] = [2, 3, 100];
    const x = data.outliers(47, B * T * D);
    const dyH = rng(48).fill(B * T * D);
    const w = rng(49).fill(D, 1, 0.2);
    const sc = rng(50).fill(B * D, 0, 0.5);
    const sh = rng(51).fill(B * D, 0, 0.5);
    const eps = 1e-6;
    // n = LN(x)·w, z = n·(1 + scale) + shift; dscale = Σ_t dy·n, dshift = Σ_t dy, dweight = Σ dy·(1 + scale)·x̂.
    const f = forward64(x, rowsLayout(B * T, D), eps);
    const xhat = Array.from(x, (v, i) => (v - f.mean[Math.floor(i / D)]!) * f.rstd[Math.floor(i / D)]!);
    const mi = (i: number) => Math.floor(i / (T * D)) * D + (i % D);
    const y = xhat.map((h, i) => h * w[i % D]! * (1 + sc[mi(i)]!) + sh[mi(i)]!);
    const dscale = new Float64Array(B * D);
    const dshift = new Float64Array(B * D);
    const dweight = new Float64Array(D);
    xhat.forEach((h, i) => {
      dscale[mi(i)] += dyH[i]! * h * w[i % D]!;
      dshift[mi(i)] += dyH[i]!;
      dweight[i % D] += dyH[i]! * (1 + sc[mi(i)]!) * h;
    });
    const bad: string[] = [];
    for (const { name, n } of impls) {
      const t = { x: n.tensor(x, [B, T, D]), dy: n.tensor(dyH, [B, T, D]), w: n.tensor(w, [D]), sc: n.tensor(sc, [B, 1, D]), sh: n.tensor(sh, [B, 1, D]) };
      const o = n.layerNorm(t.x, { normalizedShape: [D], weight: t.w, eps, scale: t.sc, shift: t.sh });
      const g = n.layerNormBackward(t.dy, t.x, o.mean, o.rstd, { normalizedShape: [D], weight: t.w, scale: t.sc, shift: t.sh });
      bad.push(...(await check(n, `${name} modulated`, [['y', o.y, y, TOL], ['dscale', g.dscale, dscale, TOL], ['dshift', g.dshift, dshift, TOL], ['dweight', g.dweight, dweight, TOL]], true)));
      for (const v of [...Object.values(t), ...Object.values(o), ...Object.values(g)]) (v as Tensor | null)?.destroy();
    }
    expect(bad).toEqual([]);
  });
  it('groupNorm with scale, shift [N, C] and SiLU (AdaGN), spread and outliers: forward and backward as the float64 reference', async () => {
    // Against the cpu backend (the float64 reference) on the same float32 inputs: the SiLU
    // backward's composition is long, and what is checked here is that no kernel of the
    // modulated, activated path loses a group of huge spread.
    const [N, C, S, G] = [2, 6, 40, 3];
    const ref = impls.find((i) => i.name === 'cpu')!.n;
    const bad: string[] = [];
    for (const kind of ['spread', 'outliers'] as const) {
      const x = data[kind](52, N * C * S);
      const dyH = Float32Array.from(rng(53).fill(N * C * S), (v) => 1e6 * v);
      const w = rng(54).fill(C, 1, 0.2);
      const bias = rng(55).fill(C, 0, 0.5);
      const sc = rng(56).fill(N * C, 0, 0.5);
      const sh = rng(57).fill(N * C, 0, 0.5);
      const run = (n: Norms) => {
        const t = { x: n.tensor(x, [N, C, S]), dy: n.tensor(dyH, [N, C, S]), w: n.tensor(w, [C]), b: n.tensor(bias, [C]), sc: n.tensor(sc, [N, C, 1]), sh: n.tensor(sh, [N, C, 1]) };
        const opts = { numGroups: G, weight: t.w, bias: t.b, scale: t.sc, shift: t.sh, activation: 'silu' as const };
        const o = n.groupNorm(t.x, opts);
        const g = n.groupNormBackward(t.dy, t.x, o.mean, o.rstd, opts);
        return { t, o, g };
      };
      const want = run(ref);
      const wv = { y: await ref.read(want.o.y), dx: await ref.read(want.g.dx), dweight: await ref.read(want.g.dweight!), dbias: await ref.read(want.g.dbias!), dscale: await ref.read(want.g.dscale!), dshift: await ref.read(want.g.dshift!) };
      for (const { name, n } of impls) {
        if (n === ref) continue;
        const r = run(n);
        bad.push(...(await check(n, `${name} AdaGN ${kind}`, [['y', r.o.y, wv.y, TOL], ['dx', r.g.dx, wv.dx, TOL], ['dweight', r.g.dweight, wv.dweight, TOL], ['dbias', r.g.dbias, wv.dbias, TOL], ['dscale', r.g.dscale, wv.dscale, TOL], ['dshift', r.g.dshift, wv.dshift, TOL]], true)));
        for (const v of [...Object.values(r.t), ...Object.values(r.o), ...Object.values(r.g)]) (v as Tensor | null)?.destroy();
      }
    }
    expect(bad).toEqual([]);
  });
  // Batch-norm eval subtracts running statistics that need not describe x: data near +2.5e38 with
  // running means near −2.5e38 make x − runningMean (about 5e38) pass float32 though rstd is
  // normal (running variances up to 2e38): y is about 5e19 and must be right, as dweight.
  // The last two cases mix such channels with running means just below and at 2^100 and small
  // ones, on shapes whose quads and channel runs take the vector paths.
  const few = { rm: [-2.4e38, -2e38, -3e38], rv: [1e38, 3e37, 2e38] };
  const mixed = { rm: [-2.4e38, 2 ** 99, -(2 ** 100), 0.5, -3e38, 1e3, 2 ** 100, -2e38], rv: [1e38, 1e30, 1e30, 1e30, 2e38, 1e30, 1e30, 3e37] };
  for (const [what, shape, channel, stats] of [
    ['NCHW [4, 3, 25]', [4, 3, 25], (i: number) => Math.floor(i / 25) % 3, few],
    ['channels-last [4, 5, 3]', [4, 5, 3], (i: number) => i % 3, few],
    ['NCHW [2, 8, 64], mixed channels', [2, 8, 64], (i: number) => Math.floor(i / 64) % 8, mixed],
    ['channels-last [2, 16, 8], mixed channels', [2, 16, 8], (i: number) => i % 8, mixed],
  ] as const) {
    it(`batchNorm eval ${what}, data and running mean near float32's largest values of opposite signs: y, dx, dweight, dbias`, async () => {
      const size = shape.reduce((a, b) => a * b, 1);
      const C = stats.rm.length, eps = 1e-5;
      const x = Float32Array.from(rng(60).fill(size), (z) => clamp(2.5e38 + 3e37 * z));
      const dyH = rng(61).fill(size);
      const w = rng(62).fill(C, 1, 0.2), bias = rng(63).fill(C, 0, 0.5);
      const rm = Float32Array.from(stats.rm), rv = Float32Array.from(stats.rv);
      const r = Array.from(rv, (v) => 1 / Math.sqrt(v + eps));
      const y = Array.from(x, (v, i) => (v - rm[channel(i)]!) * r[channel(i)]! * w[channel(i)]! + bias[channel(i)]!);
      const dx = Array.from(dyH, (g, i) => g * w[channel(i)]! * r[channel(i)]!);
      const dweight = new Array<number>(C).fill(0), dbias = new Array<number>(C).fill(0);
      for (let i = 0; i < size; i++) {
        dweight[channel(i)]! += dyH[i]! * (x[i]! - rm[channel(i)]!) * r[channel(i)]!;
        dbias[channel(i)]! += dyH[i]!;
      }
      const bad: string[] = [];
      for (const { name, n } of impls) {
        const channelsLast = what.startsWith('channels-last');
        const t = { x: n.tensor(x, shape), dy: n.tensor(dyH, shape), w: n.tensor(w, [C]), b: n.tensor(bias, [C]), rm: n.tensor(rm, [C]), rv: n.tensor(rv, [C]) };
        const opts = { training: false, weight: t.w, bias: t.b, runningMean: t.rm, runningVar: t.rv, eps, channelsLast };
        const o = n.batchNorm(t.x, opts);
        const g = n.batchNormBackward(t.dy, t.x, opts);
        bad.push(...(await check(n, `${name} batchNorm eval ${what}`, [['y', o.y, y, TOL], ['dx', g.dx, dx, TOL], ['dweight', g.dweight, dweight, TOL], ['dbias', g.dbias, dbias, TOL]])));
        for (const v of [...Object.values(t), ...Object.values(o), ...Object.values(g)]) (v as Tensor | null)?.destroy();
      }
      expect(bad).toEqual([]);
    });
  }
  // weightNorm: ‖v‖ past 2^126·|g| (g/‖v‖ subnormal), and ‖v‖ past float32 (norms Inf): w = g·v/‖v‖ is O(1).
  for (const [what, shape, dim, scale] of [
    ['‖v‖ about 2e38 per row of [3, 40] (dim 0)', [3, 40], 0, 3e37],
    ['‖v‖ about 2e38 per column of [40, 3] (dim 1)', [40, 3], 1, 3e37],
    ['‖v‖ past float32 per row of [3, 40] (dim 0)', [3, 40], 0, 2e38],
    ['v about 1e-30 with g about 1e30 (g/‖v‖ past float32) per row of [3, 40] (dim 0)', [3, 40], 0, 1e-30],
  ] as const) {
    it(`weightNorm, ${what}: w within 1e-4 of float64`, async () => {
      const [R, Cc] = shape;
      const v = Float32Array.from(rng(45).fill(R * Cc), (z) => Math.max(-3.3e38, Math.min(3.3e38, scale * z)));
      const slices = dim === 0 ? R : Cc;
      const slice = (i: number) => (dim === 0 ? Math.floor(i / Cc) : i % Cc);
      const g = Float32Array.from(rng(46).fill(slices), (z) => (scale < 1 ? 1e30 : 1) * (0.5 + Math.abs(z)));
      const nrm = new Float64Array(slices);
      for (let i = 0; i < v.length; i++) nrm[slice(i)] += v[i]! ** 2;
      for (let j = 0; j < slices; j++) nrm[j] = Math.sqrt(nrm[j]!);
      const want = Array.from(v, (a, i) => (g[slice(i)]! * a) / nrm[slice(i)]!);
      const bad: string[] = [];
      for (const { name, n } of impls) {
        const gs = dim === 0 ? [R, 1] : [1, Cc];
        const o = n.weightNorm(n.tensor(v, [R, Cc]), n.tensor(g, gs), { dim });
        bad.push(...(await check(n, `${name} weightNorm ${what}`, [['w', o.w, want, TOL]], true)));
        const norms = await n.read(o.norms);
        for (let j = 0; j < slices; j++) if (!(Math.abs(norms[j]! - nrm[j]!) <= 1e-6 * nrm[j]!) && !(nrm[j]! > 3.4028234663852886e38 && norms[j] === Infinity)) bad.push(`${name}: norms[${j}] = ${norms[j]}, float64 ${nrm[j]}`);
      }
      expect(bad).toEqual([]);
    });
  }
});

// ---- 4. ±Inf in a batch-norm channel ----

describe('±Inf in a batch-norm channel, as PyTorch: mean ±Inf (NaN with both), y / invstd / running var NaN', () => {
  const cases: [string, number[], number][] = [
    ['+Inf', [Infinity], Infinity],
    ['-Inf', [-Infinity], -Infinity],
    ['+Inf and -Inf', [Infinity, -Infinity], NaN],
    ['two +Inf', [Infinity, Infinity], Infinity],
  ];
  for (const [what, vals, mean] of cases) {
    it(`${what} in channel 1 of [6, 3, 50] (the other channels unaffected)`, async () => {
      const x0 = rng(24).fill(6 * 3 * 50, 2, 1);
      const x = withAt(x0, vals.map((_, k) => (k * 2 + 3) * 3 * 50 + 50 + 17 * k), vals);
      const f = forward64(x0, batchLayout(3, 50), 1e-5);
      const bad: string[] = [];
      for (const { name, n } of impls) {
        const rm = n.tensor([0, 0, 0], [3]);
        const rv = n.tensor([1, 1, 1], [3]);
        const o = n.batchNorm(n.tensor(x, [6, 3, 50]), { training: true, runningMean: rm, runningVar: rv });
        const [sm, si, y, rmv, rvv] = await Promise.all([n.read(o.saveMean), n.read(o.saveInvstd), n.read(o.y), n.read(rm), n.read(rv)]);
        const same = (a: number, e: number) => Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e));
        if (!same(sm[1]!, mean)) bad.push(`${name}: saveMean[1] = ${sm[1]}, expected ${mean}`);
        if (!same(rmv[1]!, Number.isNaN(mean) ? NaN : mean)) bad.push(`${name}: runningMean[1] = ${rmv[1]}`);
        if (!Number.isNaN(si[1]!)) bad.push(`${name}: saveInvstd[1] = ${si[1]}, expected NaN`);
        if (!Number.isNaN(rvv[1]!)) bad.push(`${name}: runningVar[1] = ${rvv[1]}, expected NaN`);
        for (let i = 0; i < y.length; i++) if (Math.floor(i / 50) % 3 === 1 && !Number.isNaN(y[i]!)) bad.push(`${name}: y[${i}] = ${y[i]} in the bad channel`);
        for (const c of [0, 2]) {
          if (Math.abs(sm[c]! - f.mean[c]!) > 1e-5 * Math.abs(f.mean[c]!)) bad.push(`${name}: saveMean[${c}] = ${sm[c]}`);
          if (Math.abs(si[c]! - f.rstd[c]!) > 1e-5 * f.rstd[c]!) bad.push(`${name}: saveInvstd[${c}] = ${si[c]}`);
        }
      }
      expect(bad.slice(0, 10)).toEqual([]);
    });
  }
});

// ---- 5. float16 outputs: IEEE halves for NaN, ±Inf and values past 65504 ----

describe('float16 outputs are IEEE halves for NaN, ±Inf and values past 65504 (no corruption of the other half of a word)', () => {
  it('rmsNorm rows with an Inf at each of the four positions of a quad: every other y exactly 0, the Inf one NaN', async () => {
    const K = 12;
    const x = Float32Array.from({ length: 4 * K }, (_, i) => 1 + (i % 5) * 0.25);
    for (let r = 0; r < 4; r++) x[r * K + r] = r % 2 ? -Infinity : Infinity;
    const bad: string[] = [];
    for (const { name, n } of impls) {
      const o = n.rmsNorm(n.tensor(x, [4, K], 'float16'), { normalizedShape: [K] });
      const y = await n.read(o.y);
      for (let i = 0; i < y.length; i++) {
        const inf = Math.floor(i / K) === i % K;
        if (inf ? !Number.isNaN(y[i]!) : !Object.is(Math.abs(y[i]!), 0)) bad.push(`${name}: y[${i}] = ${y[i]}`);
      }
    }
    expect(bad.slice(0, 10)).toEqual([]);
  });
  it('layerNorm with a NaN in one row: that row NaN, the neighbouring halves of other rows exact', async () => {
    const K = 6; // rows of 6 halves: row boundaries fall inside u32 words
    const x = rng(25).fill(5 * K);
    x[2 * K + 5] = NaN;
    const f = forward64(Float32Array.from(x, (v, i) => (Math.floor(i / K) === 2 ? 0 : v)), rowsLayout(5, K), 1e-5);
    const bad: string[] = [];
    for (const { name, n } of impls) {
      const o = n.layerNorm(n.tensor(x, [5, K], 'float16'), { normalizedShape: [K] });
      const y = await n.read(o.y);
      for (let i = 0; i < y.length; i++) {
        if (Math.floor(i / K) === 2) {
          if (!Number.isNaN(y[i]!)) bad.push(`${name}: y[${i}] = ${y[i]} in the NaN row`);
        } else if (!(Math.abs(y[i]! - f.y[i]!) <= 2e-3 * Math.max(1, Math.abs(f.y[i]!)))) bad.push(`${name}: y[${i}] = ${y[i]}, want ${f.y[i]}`);
      }
    }
    expect(bad.slice(0, 10)).toEqual([]);
  });
  it('y past 65504 in float16 is ±Inf (IEEE rounding), 65519 rounds to 65504', async () => {
    // x̂ = ±1 (two values per row), weight scales it: 70000 -> Inf, 65519 -> 65504, -1e5 -> -Inf.
    const x = Float32Array.from([1, -1, 2, -2, 3, -3]);
    const w = Float32Array.from([70000, 65519]);
    const want = [Infinity, -65504, Infinity, -65504, Infinity, -65504];
    const bad: string[] = [];
    for (const { name, n } of impls) {
      const o = n.layerNorm(n.tensor(x, [3, 2], 'float16'), { normalizedShape: [2], weight: n.tensor(w, [2], 'float32'), eps: 0 });
      const y = Array.from(await n.read(o.y));
      if (y.join() !== want.join()) bad.push(`${name}: y = ${y}`);
    }
    expect(bad).toEqual([]);
  });
});

describe.skipIf(ON_WASM)("createNorms({ adapterClass }) picks the kernel family (the contract's option)", () => {
  it("'gpu' on SwiftShader splits like a discrete GPU, 'cpu' like a CPU adapter; same results", async () => {
    const x = rng(26).fill(64 * 300, 3, 2);
    const f = forward64(x, rowsLayout(64, 300), 1e-5);
    const counts: Record<string, number> = {};
    for (const cls of ['cpu', 'gpu'] as const) {
      const n = await createNorms({ backend: 'webgpu', device: b.gpu.device!, poisonOutputs: true, adapterClass: cls });
      expect(n._gpu!.ctx.isCpuAdapter).toBe(cls === 'cpu');
      // Count dispatches: the CPU class runs one row-fused kernel, the GPU class one workgroup per row
      // (rows.wgsl); with that kernel off, partials + merge + apply.
      const ctx = n._gpu!.ctx as unknown as { submit: (l: string, d: unknown[]) => Promise<void> };
      const orig = ctx.submit.bind(ctx);
      let k = 0;
      ctx.submit = (l, d) => ((k += d.length), orig(l, d));
      const o = n.layerNorm(n.tensor(x, [64, 300]), { normalizedShape: [300] });
      expect(await check(n, cls, [['y', o.y, f.y, 1e-5], ['mean', o.mean, f.mean, 1e-5], ['rstd', o.rstd, f.rstd, 1e-5]])).toEqual([]);
      counts[cls] = k;
      n.destroy();
    }
    expect(counts.cpu).toBe(1);
    expect(counts.gpu).toBe(1);
  });
});
