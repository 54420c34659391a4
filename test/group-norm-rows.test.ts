/**
 * Group/instance norm forward on GPU-class adapters (`adapterClass: 'gpu'` forces it on
 * SwiftShader): one workgroup per (n, g) group, the group's Cg * S contiguous elements held in
 * registers (shaders/rows.wgsl with per-channel weights, PER_CH). Every case runs with subgroup
 * sums and with the workgroup-tree fallback, NaN-poisoned outputs, against float64 formulas and
 * the CPU reference group by group; the kernel used and its traffic are asserted from
 * norms.profile(). Groups of fewer than SHORT_ROW (64) elements take the row-fused kernel instead
 * (one invocation per group, policy.ts), checked here the same way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNorms, relativeL2, type Norms, type Tensor } from '../src/index.ts';
import { SHORT_ROW } from '../src/kernels/policy.ts';
import { gpuNorms } from './util/gpu.ts';
import { makeRng } from './util/rng.ts';
import { hardRows } from './util/hard-rows.ts';

let base: Norms;
let cpu: Norms;
/** 'sub': subgroup sums; 'tree': the workgroup-tree fallback. Both adapterClass 'gpu', profiled. */
const inst: Record<'sub' | 'tree', Norms> = {} as never;

beforeAll(async () => {
  base = await gpuNorms();
  cpu = await createNorms({ backend: 'cpu' });
  for (const k of ['sub', 'tree'] as const) {
    const n = await createNorms({ backend: 'webgpu', device: base.device!, poisonOutputs: true, adapterClass: 'gpu', profile: true });
    n._gpu!.useSubgroups = k === 'sub';
    inst[k] = n;
  }
});
afterAll(() => {
  inst.sub?.destroy();
  inst.tree?.destroy();
  base?.destroy();
  cpu?.destroy();
});

const f32 = Math.fround;

interface Case {
  shape: number[];
  /** numGroups; null: instanceNorm (G = C). */
  G: number | null;
  w: boolean;
  b: boolean;
  silu: boolean;
}

/** float64 group norm of channels-first x (groups of Cg channels of S contiguous elements). */
function ref64(x: Float32Array, N: number, C: number, S: number, G: number, eps: number, w: Float32Array | null, b: Float32Array | null, silu: boolean) {
  const Cg = C / G;
  const K = Cg * S;
  const y = new Float64Array(x.length);
  const mean = new Float64Array(N * G);
  const rstd = new Float64Array(N * G);
  for (let j = 0; j < N * G; j++) {
    let m = 0;
    for (let i = 0; i < K; i++) m += x[j * K + i]!;
    m /= K;
    let v = 0;
    for (let i = 0; i < K; i++) v += (x[j * K + i]! - m) ** 2;
    const rs = 1 / Math.sqrt(v / K + eps);
    mean[j] = m;
    rstd[j] = rs;
    for (let i = 0; i < K; i++) {
      const c = (j % G) * Cg + Math.floor(i / S);
      let t = (x[j * K + i]! - m) * rs * (w ? w[c]! : 1) + (b ? b[c]! : 0);
      if (silu) t = t / (1 + Math.exp(-t));
      y[j * K + i] = t;
    }
  }
  return { y, mean, rstd };
}

/** Per-group relative L2 error (L2 over the group, relative to the reference's norm): the worst. */
function worstGroup(got: Float32Array, want: ArrayLike<number>, K: number): { err: number; group: number } {
  let worst = { err: 0, group: -1 };
  for (let r = 0; r * K < want.length; r++) {
    const e = relativeL2(got.subarray(r * K, (r + 1) * K), Array.from({ length: K }, (_, i) => want[r * K + i]!));
    if (!(e <= worst.err)) worst = { err: e, group: r };
  }
  return worst;
}

/** Elementwise relative error of per-group statistics (scale: a floor for the denominator). */
function statErr(got: Float32Array, want: ArrayLike<number>, scale?: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const g = got[i]!, w = want[i]!;
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      if (!Object.is(g, w) && !(Number.isNaN(g) && Number.isNaN(w))) return Infinity;
      continue;
    }
    const d = Math.abs(g - w) / Math.max(Math.abs(w), scale ? Math.abs(scale[i]!) : 0, 1e-300);
    if (!(d <= worst)) worst = d;
  }
  return worst;
}

function runOp(n: Norms, c: Case, x: Float32Array, w: Float32Array | null, b: Float32Array | null, eps: number, dtype: 'float32' | 'float16' = 'float32') {
  const C = c.shape[1]!;
  const xt = n.tensor(x, c.shape, dtype);
  const weight = w ? n.tensor(w, [C]) : null;
  const bias = b ? n.tensor(b, [C]) : null;
  const out = c.G === null
    ? n.instanceNorm(xt, { weight, bias, eps })
    : n.groupNorm(xt, { numGroups: c.G, weight, bias, eps, ...(c.silu ? { activation: 'silu' as const } : {}) });
  return { out, ins: [xt, weight, bias] };
}

async function readAll(n: Norms, r: { out: { y: Tensor; mean: Tensor; rstd: Tensor }; ins: (Tensor | null)[] }) {
  const res = { y: await n.read(r.out.y), mean: await n.read(r.out.mean), rstd: await n.read(r.out.rstd) };
  for (const t of [r.out.y, r.out.mean, r.out.rstd, ...r.ins]) t?.destroy();
  return res;
}

const CASES: Case[] = [
  { shape: [2, 8, 500], G: 2, w: true, b: true, silu: false },
  { shape: [2, 8, 500], G: 2, w: true, b: true, silu: true },
  { shape: [3, 6, 7, 9], G: 3, w: true, b: true, silu: false },
  { shape: [3, 6, 7, 9], G: 3, w: true, b: false, silu: true },
  { shape: [1, 32, 16, 16], G: 8, w: true, b: true, silu: false },
  { shape: [1, 32, 16, 16], G: 8, w: false, b: false, silu: true },
  { shape: [2, 3, 700], G: null, w: true, b: true, silu: false },
  { shape: [2, 3, 700], G: null, w: false, b: false, silu: false },
  { shape: [4, 5, 1, 3], G: null, w: true, b: true, silu: false },
  { shape: [4, 6, 2], G: 3, w: true, b: true, silu: true },
  { shape: [2, 4, 5, 5], G: 2, w: true, b: true, silu: false },
  { shape: [2, 9, 33], G: 3, w: true, b: false, silu: false },
  { shape: [1, 4, 2048], G: 1, w: true, b: true, silu: false },
];
const caseName = (c: Case) => `${c.G === null ? 'instanceNorm' : `groupNorm G=${c.G}`} [${c.shape.join(', ')}]${c.w ? ' +w' : ''}${c.b ? ' +b' : ''}${c.silu ? ' silu' : ''}`;

describe.each(['sub', 'tree'] as const)('group/instance norm, one workgroup per group (%s)', (k) => {
  it.each(CASES.map((c) => [caseName(c), c] as const))('%s: float64 formulas, CPU reference, one dispatch, x read once', async (_, c) => {
    const n = inst[k];
    const [N, C] = c.shape as [number, number];
    const S = c.shape.slice(2).reduce((a, v) => a * v, 1);
    const G = c.G ?? C;
    const K = (C / G) * S;
    const x = hardRows(N * C * S + 7, K, N * G);
    const rng = makeRng(C * 13 + S);
    const w = c.w ? rng.fill(C, 1, 0.5) : null;
    const b = c.b ? rng.fill(C, 0, 0.5) : null;
    const eps = 1e-5;
    await n.profile();
    const got = await readAll(n, runOp(n, c, x, w, b, eps));
    const [p] = await n.profile();
    const want = await readAll(cpu, runOp(cpu, c, x, w, b, eps));
    const f = ref64(x, N, C, S, G, eps, w, b, c.silu);
    // One dispatch, the rows kernel (groups under SHORT_ROW elements: the row-fused kernel, one
    // invocation per group), x read once: traffic ~1.0x the minimal bytes.
    expect(p!.kernels.map((q) => q.name)).toHaveLength(1);
    if (K < SHORT_ROW) expect(p!.kernels[0]!.name).toMatch(/^fused_rows_welford/);
    else {
      expect(p!.kernels[0]!.name).toMatch(/PER_CH/);
      expect(p!.kernels[0]!.name.includes('SUBGROUPS')).toBe(k === 'sub' && n.device!.features.has('subgroups'));
    }
    const minRead = x.length * 4 + ((w ? 1 : 0) + (b ? 1 : 0)) * C * 4;
    const minWritten = x.length * 4 + 2 * N * G * 4;
    const moved = p!.kernels[0]!.bytesRead + p!.kernels[0]!.bytesWritten;
    expect(moved / (minRead + minWritten)).toBeLessThanOrEqual(1.05);
    const y64 = worstGroup(got.y, f.y, K);
    expect(y64.err, `y vs float64 (group ${y64.group})`).toBeLessThanOrEqual(2e-6);
    const yc = worstGroup(got.y, want.y, K);
    expect(yc.err, `y vs CPU reference (group ${yc.group})`).toBeLessThanOrEqual(2e-6);
    expect(statErr(got.rstd, f.rstd), 'rstd').toBeLessThanOrEqual(1e-6);
    expect(statErr(got.mean, f.mean, Array.from(f.rstd, (v) => 1 / v)), 'mean').toBeLessThanOrEqual(1e-6);
  });

  it('groups with Inf/NaN, huge (1e36) and tiny (1e-25) values, zero groups: as the CPU reference (careful path)', async () => {
    const n = inst[k];
    for (const c of [{ shape: [1, 8, 3, 5], G: 8 }, { shape: [1, 16, 130], G: 8 }] as const) {
      const [, C, ...sp] = c.shape;
      const S = sp.reduce((a, v) => a * v, 1);
      const K = (C / c.G) * S;
      const x = makeRng(K + 3).fill(C * S, 0, 1);
      const put = (r: number, fn: (v: number, i: number) => number) => { for (let i = 0; i < K; i++) x[r * K + i] = f32(fn(x[r * K + i]!, i)); };
      put(1, (v, i) => (i === K >> 1 ? Infinity : v));
      put(2, (v, i) => (i === K - 1 ? NaN : v));
      put(3, (v) => v * 1e19);
      put(4, (v) => v * 1e-25);
      put(5, () => 0);
      put(6, (v) => v * 1e36);
      const cs: Case = { shape: [...c.shape], G: c.G, w: true, b: true, silu: false };
      const w = makeRng(5).fill(C, 1, 0.5);
      const b = makeRng(6).fill(C, 0, 0.5);
      for (const eps of [1e-5, 0]) {
        const got = await readAll(n, runOp(n, cs, x, w, b, eps));
        const want = await readAll(cpu, runOp(cpu, cs, x, w, b, eps));
        const yc = worstGroup(got.y, want.y, K);
        expect(yc.err, `[${c.shape}] eps=${eps}: y (group ${yc.group})`).toBeLessThanOrEqual(1e-5);
        expect(statErr(got.rstd, want.rstd), `rstd ${Array.from(got.rstd)} vs ${Array.from(want.rstd)}`).toBeLessThanOrEqual(1e-5);
        expect(statErr(got.mean, want.mean, Array.from(want.rstd, (v) => 1 / v)), `mean ${Array.from(got.mean)} vs ${Array.from(want.mean)}`).toBeLessThanOrEqual(1e-5);
      }
    }
  });

  it('float16 (packed halves, f32 sums), silu; groups past the registers and channelsLast keep the split kernels', async () => {
    const n = inst[k];
    const c: Case = { shape: [2, 6, 10, 10], G: 3, w: true, b: true, silu: true };
    const x = hardRows(91, 200, 6).map((v) => Math.min(v, 6e4));
    const w = makeRng(92).fill(6, 1, 0.5);
    const b = makeRng(93).fill(6, 0, 0.5);
    await n.profile();
    const got = await readAll(n, runOp(n, c, x, w, b, 1e-5, 'float16'));
    const [p] = await n.profile();
    expect(p!.kernels.map((q) => q.name)).toHaveLength(1);
    expect(p!.kernels[0]!.name).toMatch(/PER_CH/);
    const want = await readAll(cpu, runOp(cpu, c, x, w, b, 1e-5, 'float16'));
    expect(worstGroup(got.y, want.y, 200).err).toBeLessThanOrEqual(2e-3);
    expect(statErr(got.rstd, want.rstd)).toBeLessThanOrEqual(1e-5);
    // A group of 2 * 4100 > 8192 float32 elements: not the rows kernel.
    const big = await readAll(n, runOp(n, { shape: [1, 4, 4100], G: 2, w: false, b: false, silu: false }, makeRng(94).fill(4 * 4100), null, null, 1e-5));
    expect(big.y.length).toBe(4 * 4100);
    const [pb] = await n.profile();
    expect(pb!.kernels.some((q) => q.name.includes('PER_CH'))).toBe(false);
    const xl = n.tensor(makeRng(95).fill(2 * 5 * 6), [2, 5, 6]);
    const cl = n.groupNorm(xl, { numGroups: 3, channelsLast: true });
    await n.read(cl.y);
    const [pc] = await n.profile();
    expect(pc!.kernels.some((q) => q.name.includes('PER_CH'))).toBe(false);
    for (const t of [xl, cl.y, cl.mean, cl.rstd]) t.destroy();
  });
});
