/**
 * NaN and Inf containment: one NaN (and, separately, one +Inf) injected into one row / channel /
 * group / slice must make exactly that row's outputs non-finite, as in PyTorch, and leave every
 * other row finite and equal to the CPU reference. Forward and backward (the bad value in dy),
 * on the default, the row-fused and the general (reduce/finalize/apply) kernels.
 *
 * For every output and every element the GPU's finite/non-finite pattern must equal the CPU
 * reference's; the pattern must be confined to the bad slice; for a NaN the whole bad slice must be
 * non-finite (an Inf can legitimately give finite values in its row, e.g. rmsNorm: rstd = 0); the
 * finite elements must match the reference within relative L2 1e-4. Shapes are chosen so that
 * the general kernels split each reduction into more than one partial on this adapter, with the
 * bad value in a later chunk.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNorms, Tensor, type Norms } from '../src/index.ts';
import { expectClose, gpuNorms, sameDevice, TEST_ADAPTER_CLASS } from './util/gpu.ts';
import { makeRng } from './util/rng.ts';

interface HostIn {
  data: Float32Array;
  shape: number[];
}
type T = Record<string, Tensor | null>;
type Bad = 'NaN' | 'Inf';

const numel = (s: number[]): number => s.reduce((a, b) => a * b, 1);
const randn = (seed: number, shape: number[], mean = 0, std = 1): HostIn => ({ data: makeRng(seed).fill(numel(shape), mean, std), shape });
const uniform = (seed: number, shape: number[], lo: number, hi: number): HostIn => {
  const r = makeRng(seed);
  const data = new Float32Array(numel(shape));
  for (let i = 0; i < data.length; i++) data[i] = lo + (hi - lo) * r.uniform();
  return { data, shape };
};
const withBad = (h: HostIn, index: number, bad: Bad): HostIn => {
  const data = Float32Array.from(h.data);
  data[index] = bad === 'NaN' ? NaN : Infinity;
  return { data, shape: h.shape };
};

interface Case {
  name: string;
  /** Host inputs (may use the CPU backend, e.g. for saved statistics of clean data). */
  inputs(cpu: Norms): Promise<Record<string, HostIn | null>>;
  call(n: Norms, t: T): object;
  /** Inputs updated in place (batchNorm running stats): checked like outputs. */
  mutated?: string[];
  /** Per output: whether element i lies in the slice that holds the bad value. */
  slice: Record<string, (i: number) => boolean>;
  /** Whole bad slice must be non-finite (per output); default: every output in `slice`. */
  whole?: string[];
}

let cpu: Norms;
const gpus: Record<string, Norms> = {};
beforeAll(async () => {
  cpu = await createNorms({ backend: 'cpu' });
  gpus.auto = await gpuNorms();
  for (const variant of ['fused', 'general'] as const) {
    gpus[variant] = await sameDevice(gpus.auto, { poisonOutputs: true, variant, adapterClass: TEST_ADAPTER_CLASS });
  }
});
afterAll(() => {
  gpus.fused?.destroy();
  gpus.general?.destroy();
  gpus.auto?.destroy();
  cpu?.destroy();
});

function upload(n: Norms, ins: Record<string, HostIn | null>): T {
  const t: T = {};
  for (const [k, v] of Object.entries(ins)) t[k] = v ? n.tensor(v.data, v.shape) : null;
  return t;
}

async function readAll(n: Norms, out: object, ins: T, mutated: string[]): Promise<Record<string, Float32Array>> {
  const r: Record<string, Float32Array> = {};
  for (const [k, v] of Object.entries(out)) if (v instanceof Tensor) r[k] = await n.read(v);
  for (const k of mutated) r[k] = await n.read(ins[k]!);
  return r;
}

function destroyAll(...objs: object[]): void {
  for (const o of objs) for (const v of Object.values(o)) if (v instanceof Tensor) v.destroy();
}

/** One output: the finite/non-finite pattern of `g` equals the reference's and stays in the bad slice. */
function checkOutput(label: string, g: Float32Array, w: Float32Array, inSlice: (i: number) => boolean, whole: boolean): void {
  expect(g.length, `${label}: length`).toBe(w.length);
  let badSeen = 0;
  let sliceSize = 0;
  const gf: number[] = [], wf: number[] = [];
  const wrong: string[] = [];
  for (let i = 0; i < w.length; i++) {
    const gFin = Number.isFinite(g[i]!), wFin = Number.isFinite(w[i]!);
    if (inSlice(i)) sliceSize++;
    if (!wFin && !inSlice(i)) wrong.push(`[${i}] reference non-finite outside the bad slice: ${w[i]}`);
    if (gFin !== wFin && wrong.length < 8) wrong.push(`[${i}] gpu ${g[i]} vs cpu ${w[i]}${inSlice(i) ? ' (bad slice)' : ''}`);
    if (!gFin) {
      if (inSlice(i)) badSeen++;
      else if (wrong.length < 8 && wFin) wrong.push(`[${i}] non-finite ${g[i]} outside the bad slice`);
    }
    if (gFin && wFin) {
      gf.push(g[i]!);
      wf.push(w[i]!);
    }
  }
  expect(wrong.join('\n'), `${label}: finite/non-finite pattern`).toBe('');
  if (sliceSize > 0) expect(badSeen, `${label}: no non-finite value in the bad slice`).toBeGreaterThan(0);
  if (whole) expect(badSeen, `${label}: the whole bad slice is non-finite`).toBe(sliceSize);
  if (wf.length) expectClose(`${label} (finite elements)`, Float32Array.from(gf), Float32Array.from(wf), 1e-4);
}

async function runCase(c: Case, variant: string): Promise<void> {
  const gpu = gpus[variant]!;
  const label = `${c.name} [${variant}]`;
  const live = gpu.stats().liveBuffers;
  const ins = await c.inputs(cpu);
  const cin = upload(cpu, ins);
  const gin = upload(gpu, ins);
  const cout = c.call(cpu, cin);
  const gout = c.call(gpu, gin);
  try {
    const want = await readAll(cpu, cout, cin, c.mutated ?? []);
    const got = await readAll(gpu, gout, gin, c.mutated ?? []);
    expect(Object.keys(got).sort(), `${label}: outputs`).toEqual(Object.keys(want).sort());
    expect(Object.keys(c.slice).sort(), `${label}: every output has a slice rule`).toEqual(Object.keys(want).sort());
    const failures: string[] = [];
    for (const [k, w] of Object.entries(want)) {
      try {
        checkOutput(`${label}: ${k}`, got[k]!, w, c.slice[k]!, (c.whole ?? Object.keys(c.slice)).includes(k));
      } catch (e) {
        failures.push((e as Error).message);
      }
    }
    // Every output is checked, so one report shows them all.
    if (failures.length) throw new Error(`${failures.length} output(s) wrong:\n${failures.join('\n')}`);
  } finally {
    destroyAll(gout, gin);
  }
  expect(gpu.stats().liveBuffers, `${label}: buffers left`).toBe(live);
}

// ---- cases ----

const CASES: Case[] = [];

for (const bad of ['NaN', 'Inf'] as Bad[]) {
  const nan = bad === 'NaN';
  // Row norms: 6 rows of 5000 (two partials per row in the general kernels), bad value in row 3.
  const R = 6, K = 5000, r = 3, j = 4500;
  const rowOf = (i: number): boolean => Math.floor(i / K) === r;
  const colJ = (i: number): boolean => i === j;
  const xRow = randn(11, [R, K], 0.5, 2);
  const w = randn(12, [K], 1, 0.5), b = randn(13, [K], 0.2, 0.5);
  CASES.push({
    name: `layerNorm [${R}, ${K}]: ${bad} in x row ${r}`,
    inputs: async () => ({ x: withBad(xRow, r * K + j, bad), w, b }),
    call: (n, t) => n.layerNorm(t.x!, { normalizedShape: [K], weight: t.w, bias: t.b }),
    slice: { y: rowOf, mean: (i) => i === r, rstd: (i) => i === r },
  });
  CASES.push({
    name: `rmsNorm [${R}, ${K}]: ${bad} in x row ${r}`,
    inputs: async () => ({ x: withBad(xRow, r * K + j, bad), w }),
    call: (n, t) => n.rmsNorm(t.x!, { normalizedShape: [K], weight: t.w }),
    // Inf: sum of squares Inf, rstd = 0 (finite); y = x·0 = 0 except Inf·0 = NaN.
    slice: { y: rowOf, rstd: nan ? (i) => i === r : () => false },
    whole: nan ? ['y', 'rstd'] : [],
  });
  // Backward: the bad value in dy at (r, j): dx row r, dweight/dbias column j.
  const dyRow = randn(14, [R, K], 0.1, 1);
  const lnStats = async (c: Norms) => {
    const x = c.tensor(xRow.data, xRow.shape);
    const f = c.layerNorm(x, { normalizedShape: [K] });
    const out = { mean: { data: await c.read(f.mean), shape: [R] }, rstd: { data: await c.read(f.rstd), shape: [R] } };
    destroyAll(f, { x });
    return out;
  };
  CASES.push({
    name: `layerNormBackward [${R}, ${K}]: ${bad} in dy row ${r}`,
    inputs: async (c) => ({ dy: withBad(dyRow, r * K + j, bad), x: xRow, ...(await lnStats(c)), w, b }),
    call: (n, t) => n.layerNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, { normalizedShape: [K], weight: t.w, bias: t.b }),
    slice: { dx: rowOf, dweight: colJ, dbias: colJ },
  });
  CASES.push({
    name: `rmsNormBackward [${R}, ${K}]: ${bad} in dy row ${r}`,
    inputs: async (c) => {
      const x = c.tensor(xRow.data, xRow.shape);
      const f = c.rmsNorm(x, { normalizedShape: [K] });
      const rstd = { data: await c.read(f.rstd), shape: [R] };
      destroyAll(f, { x });
      return { dy: withBad(dyRow, r * K + j, bad), x: xRow, rstd, w };
    },
    call: (n, t) => n.rmsNormBackward(t.dy!, t.x!, t.rstd!, { normalizedShape: [K], weight: t.w }),
    slice: { dx: rowOf, dweight: colJ },
  });
  if (nan) {
    // NaN in x (with the NaN statistics of the forward): dx row r and every dweight column are
    // NaN (x̂ of row r enters each column sum) but dbias = Σ dy stays finite.
    CASES.push({
      name: `layerNormBackward [${R}, ${K}]: NaN in x row ${r} (and its saved stats)`,
      inputs: async (c) => {
        const xb = withBad(xRow, r * K + j, 'NaN');
        const x = c.tensor(xb.data, xb.shape);
        const f = c.layerNorm(x, { normalizedShape: [K] });
        const out = { dy: dyRow, x: xb, mean: { data: await c.read(f.mean), shape: [R] }, rstd: { data: await c.read(f.rstd), shape: [R] }, w, b };
        destroyAll(f, { x });
        return out;
      },
      call: (n, t) => n.layerNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, { normalizedShape: [K], weight: t.w, bias: t.b }),
      slice: { dx: rowOf, dweight: () => true, dbias: () => false },
      whole: ['dx', 'dweight'],
    });
  }

  // Batch norm: [4, 5, 40, 40], M = 6400 per channel (two partials), bad value in channel 2.
  const N = 4, C = 5, S = 1600, c0 = 2, n0 = 3, s0 = 1000;
  const chan = (i: number): boolean => Math.floor(i / S) % C === c0;
  const at = n0 * C * S + c0 * S + s0;
  const xb = randn(21, [N, C, 40, 40], 0.3, 1.5);
  const bw = randn(22, [C], 1, 0.3), bb = randn(23, [C], 0, 0.3);
  const rm = randn(24, [C], 0, 0.2), rv = uniform(25, [C], 0.5, 2);
  CASES.push({
    name: `batchNorm training [4, 5, 40, 40]: ${bad} in channel ${c0}`,
    inputs: async () => ({ x: withBad(xb, at, bad), w: bw, b: bb, rm, rv }),
    call: (n, t) => n.batchNorm(t.x!, { training: true, weight: t.w, bias: t.b, runningMean: t.rm, runningVar: t.rv }),
    mutated: ['rm', 'rv'],
    slice: { y: chan, saveMean: (i) => i === c0, saveInvstd: (i) => i === c0, rm: (i) => i === c0, rv: (i) => i === c0 },
  });
  CASES.push({
    name: `batchNorm eval [4, 5, 40, 40]: ${bad} in x at one element`,
    inputs: async () => ({ x: withBad(xb, at, bad), w: bw, b: bb, rm, rv }),
    call: (n, t) => n.batchNorm(t.x!, { training: false, weight: t.w, bias: t.b, runningMean: t.rm, runningVar: t.rv }),
    slice: { y: (i) => i === at, saveMean: () => false, saveInvstd: () => false },
    whole: ['y'],
  });
  const dyb = randn(26, [N, C, 40, 40], 0, 1);
  CASES.push({
    name: `batchNormBackward training [4, 5, 40, 40]: ${bad} in dy channel ${c0}`,
    inputs: async (c) => {
      const x = c.tensor(xb.data, xb.shape);
      const f = c.batchNorm(x, { training: true });
      const out = { dy: withBad(dyb, at, bad), x: xb, w: bw, b: bb, sm: { data: await c.read(f.saveMean), shape: [C] }, si: { data: await c.read(f.saveInvstd), shape: [C] } };
      destroyAll(f, { x });
      return out;
    },
    call: (n, t) => n.batchNormBackward(t.dy!, t.x!, { training: true, weight: t.w, bias: t.b, saveMean: t.sm, saveInvstd: t.si }),
    slice: { dx: chan, dweight: (i) => i === c0, dbias: (i) => i === c0 },
  });

  // Group norm: [3, 6, 50, 50], 3 groups of 2 channels (5000 per group), bad value in (n 1, c 3) = group (1, 1).
  const gN = 3, gC = 6, gS = 2500, G = 3, gn0 = 1, gc0 = 3, gs0 = 2400;
  const gat = gn0 * gC * gS + gc0 * gS + gs0;
  const grp = (i: number): boolean => Math.floor(i / (gC * gS)) === gn0 && Math.floor((Math.floor(i / gS) % gC) / (gC / G)) === Math.floor(gc0 / (gC / G));
  const gStat = (i: number): boolean => i === gn0 * G + Math.floor(gc0 / (gC / G));
  const xg = randn(31, [gN, gC, 50, 50], -0.4, 1.2);
  const gw = randn(32, [gC], 1, 0.3), gb = randn(33, [gC], 0, 0.3);
  CASES.push({
    name: `groupNorm [3, 6, 50, 50] G=3: ${bad} in group (1, 1)`,
    inputs: async () => ({ x: withBad(xg, gat, bad), w: gw, b: gb }),
    call: (n, t) => n.groupNorm(t.x!, { numGroups: G, weight: t.w, bias: t.b }),
    slice: { y: grp, mean: gStat, rstd: gStat },
  });
  const dyg = randn(34, [gN, gC, 50, 50], 0, 1);
  const gnStats = async (c: Norms, groups: number) => {
    const x = c.tensor(xg.data, xg.shape);
    const f = c.groupNorm(x, { numGroups: groups });
    const out = { mean: { data: await c.read(f.mean), shape: [gN, groups] }, rstd: { data: await c.read(f.rstd), shape: [gN, groups] } };
    destroyAll(f, { x });
    return out;
  };
  CASES.push({
    name: `groupNormBackward [3, 6, 50, 50] G=3: ${bad} in dy at (1, 3)`,
    inputs: async (c) => ({ dy: withBad(dyg, gat, bad), x: xg, ...(await gnStats(c, G)), w: gw, b: gb }),
    call: (n, t) => n.groupNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, { numGroups: G, weight: t.w, bias: t.b }),
    slice: { dx: grp, dweight: (i) => i === gc0, dbias: (i) => i === gc0 },
  });
  // Instance norm (groups of one channel).
  const inst = (i: number): boolean => Math.floor(i / gS) === gn0 * gC + gc0;
  CASES.push({
    name: `instanceNorm [3, 6, 50, 50]: ${bad} in (1, 3)`,
    inputs: async () => ({ x: withBad(xg, gat, bad), w: gw, b: gb }),
    call: (n, t) => n.instanceNorm(t.x!, { weight: t.w, bias: t.b }),
    slice: { y: inst, mean: (i) => i === gn0 * gC + gc0, rstd: (i) => i === gn0 * gC + gc0 },
  });
  CASES.push({
    name: `instanceNormBackward [3, 6, 50, 50]: ${bad} in dy at (1, 3)`,
    inputs: async (c) => ({ dy: withBad(dyg, gat, bad), x: xg, ...(await gnStats(c, gC)), w: gw, b: gb }),
    call: (n, t) => n.instanceNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, { weight: t.w, bias: t.b }),
    slice: { dx: inst, dweight: (i) => i === gc0, dbias: (i) => i === gc0 },
  });

  // Weight norm, dim 0: v [5, 6000] (two partials per slice), bad value in slice 3.
  const D = 5, M = 6000, d0 = 3, m0 = 5000;
  const v0 = randn(41, [D, M], 0, 1);
  const g0 = randn(42, [D, 1], 1, 0.5);
  const sl0 = (i: number): boolean => Math.floor(i / M) === d0;
  CASES.push({
    name: `weightNorm v [5, 6000] dim 0: ${bad} in slice ${d0}`,
    inputs: async () => ({ v: withBad(v0, d0 * M + m0, bad), g: g0 }),
    call: (n, t) => n.weightNorm(t.v!, t.g!, { dim: 0 }),
    // Inf: norm Inf; w = g·v/Inf = 0 except Inf/Inf = NaN.
    slice: { w: sl0, norms: (i) => i === d0 },
    whole: nan ? ['w', 'norms'] : ['norms'],
  });
  // dim 1: slices are columns of v [4000, 7]; bad value at (3000, 4).
  const v1 = randn(43, [4000, 7], 0, 1);
  const g1 = randn(44, [1, 7], 1, 0.5);
  CASES.push({
    name: `weightNorm v [4000, 7] dim 1: ${bad} in column 4`,
    inputs: async () => ({ v: withBad(v1, 3000 * 7 + 4, bad), g: g1 }),
    call: (n, t) => n.weightNorm(t.v!, t.g!, { dim: 1 }),
    slice: { w: (i) => i % 7 === 4, norms: (i) => i === 4 },
    whole: nan ? ['w', 'norms'] : ['norms'],
  });
  const dw0 = randn(45, [D, M], 0, 1);
  CASES.push({
    name: `weightNormBackward v [5, 6000] dim 0: ${bad} in dw slice ${d0}`,
    inputs: async (c) => {
      const v = c.tensor(v0.data, v0.shape), g = c.tensor(g0.data, g0.shape);
      const f = c.weightNorm(v, g, { dim: 0 });
      const norms = { data: await c.read(f.norms), shape: [D, 1] };
      destroyAll(f, { v, g });
      return { dw: withBad(dw0, d0 * M + m0, bad), v: v0, g: g0, norms };
    },
    call: (n, t) => n.weightNormBackward(t.dw!, t.v!, t.g!, t.norms!, { dim: 0 }),
    slice: { dv: sl0, dg: (i) => i === d0 },
  });
}

describe('NaN / Inf stay in their row, channel, group or slice', () => {
  for (const c of CASES) {
    for (const variant of ['auto', 'fused', 'general']) it(`${c.name} [${variant}]`, () => runCase(c, variant));
  }
});
