/**
 * l2Normalize / l2NormalizeBackward (PyTorch F.normalize) on the webgpu backend, both kernel
 * classes, against the float64 CPU reference; the reference against an independent float64
 * formula (forward) and central finite differences (backward, both sides of the eps clamp);
 * tensors past one storage binding in bound ranges.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShapeError, ValueError, type DType, type Norms } from '../src/index.ts';
import { closeBackends, host, numel, openBackends, parity, randn, type Backends, type HostIn } from './util/parity.ts';
import { TOLERANCE } from './catalog.js';
import { countWindowed, ON_WASM } from './util/gpu.ts';

let B: Backends;
beforeAll(async () => {
  B = await openBackends();
});
afterAll(() => closeBackends(B));

interface Case {
  shape: number[];
  dim?: number;
  p?: number;
  eps?: number;
  dtype?: DType;
  /** 'huge': |x| ~ 1e30 (squares past float32); 'tiny': ~1e-30 (squares below it); 'zero-lane': one lane of zeros; 'nan': a NaN and an Inf in lanes; 'overflow': |x| ~ 1e38, so the norm itself is past float32 (norms Inf) while y is not; 'near-max': |x| ~ 3e37, norms past 2^126 but finite (1/‖x‖ subnormal, quotients by ‖x‖ outside the range where WGSL bounds a division's error) */
  data?: 'huge' | 'tiny' | 'zero-lane' | 'nan' | 'clamped' | 'overflow' | 'near-max';
  seed: number;
}

function input(c: Case): HostIn {
  const x = randn(c.seed, c.shape, 0.1, 1);
  if (c.data === 'huge') x.data.forEach((v, i) => (x.data[i] = v * 1e30));
  if (c.data === 'tiny') x.data.forEach((v, i) => (x.data[i] = v * 1e-30));
  if (c.data === 'zero-lane') for (let i = 0; i < c.shape[c.shape.length - 1]!; i++) x.data[i] = 0;
  if (c.data === 'nan') {
    x.data[0] = NaN;
    x.data[x.data.length - 1] = Infinity;
  }
  if (c.data === 'clamped') x.data.forEach((v, i) => (x.data[i] = i % 3 === 0 ? v * 1e-5 : v));
  // (p 1 sums |x|: 3e36 keeps a lane of 40 under float32's largest value.)
  if (c.data === 'near-max') x.data.forEach((v, i) => (x.data[i] = Math.fround((c.p === 1 ? 3e36 : 3e37) * v)));
  if (c.data === 'overflow') x.data.forEach((v, i) => (x.data[i] = Math.fround((v < 0 ? -1 : 1) * (1 + 0.5 * (Math.abs(v) % 1)) * 1e38)));
  return c.dtype ? { ...x, dtype: c.dtype } : x;
}

const describeCase = (c: Case): string => `x [${c.shape}] dim ${c.dim ?? 1} p ${c.p ?? 2}${c.eps !== undefined ? ` eps ${c.eps}` : ''}${c.dtype ? ` ${c.dtype}` : ''}${c.data ? ` ${c.data}` : ''}`;

const CASES: Case[] = [
  { shape: [2, 5, 7], seed: 1 },
  { shape: [4, 768], dim: -1, seed: 2 },
  { shape: [4, 768], dim: 0, seed: 3 },
  { shape: [3, 4, 5, 6], dim: 2, seed: 4 },
  { shape: [3, 4, 5, 6], dim: 2, p: 1, seed: 5 },
  { shape: [2, 9, 3], p: 3, seed: 6 },
  { shape: [2, 9, 3], p: 0.5, seed: 7 },
  { shape: [70001], dim: 0, seed: 8 },
  { shape: [3, 17, 5], dtype: 'float16', seed: 9 },
  { shape: [5, 33], dim: -1, dtype: 'float16', p: 1, seed: 10 },
  { shape: [2, 64], dim: -1, data: 'huge', seed: 11 },
  { shape: [2, 64], dim: -1, data: 'tiny', eps: 0, seed: 12 },
  { shape: [3, 8], dim: -1, data: 'zero-lane', seed: 13 },
  { shape: [3, 8], dim: -1, data: 'nan', seed: 14 },
  // Norms past float32 (the float32 norms are Inf; y = x / ‖x‖ is not 0): p 2 and 1, along the
  // last dim and a middle one.
  { shape: [3, 64], dim: -1, data: 'overflow', seed: 19 },
  { shape: [2, 5, 3], dim: 1, p: 1, data: 'overflow', seed: 20 },
  // Norms past 2^126, finite: forward and backward (dy scaled by 1e6 so that dx ~ dy/‖x‖ is in
  // float32's normal range), p 2 and 1, the last dim and a middle one.
  { shape: [3, 64], dim: -1, data: 'near-max', seed: 21 },
  { shape: [2, 40, 3], dim: 1, p: 1, data: 'near-max', seed: 22 },
  // Lanes on both sides of the clamp: a few lanes with |x| ~ 1e-5 under eps = 1e-4.
  { shape: [6, 3, 2], dim: 1, eps: 1e-4, data: 'clamped', seed: 15 },
  { shape: [7], dim: 0, seed: 16 },
  // Empty lanes: their norms are 0 (written without a kernel; the outputs are poisoned first).
  { shape: [3, 0], dim: 1, seed: 17 },
  { shape: [2, 0, 3], dim: 1, seed: 18 },
];

async function caseParity(n: Norms, label: string, c: Case): Promise<void> {
  const tol = c.dtype === 'float16' ? TOLERANCE.float16 : TOLERANCE.float32;
  const o = { ...(c.dim !== undefined ? { dim: c.dim } : {}), ...(c.p !== undefined ? { p: c.p } : {}), ...(c.eps !== undefined ? { eps: c.eps } : {}) };
  const x = input(c);
  const ref = await parity(`${label} forward`, n, B.cpu, { x }, (m, t) => m.l2Normalize(t.x!, o), { tol });
  const rank = c.shape.length;
  const dim = ((c.dim ?? 1) + rank) % rank;
  if (c.data === 'overflow') {
    // y = x / ‖x‖_p computed here in float64, independently of the reference: no lane's y is 0.
    const p = c.p ?? 2;
    const inner = c.shape.slice(dim + 1).reduce((a, b) => a * b, 1);
    const len = c.shape[dim]!;
    const got = await n.read(n.l2Normalize(n.tensor(x.data, c.shape), o).y);
    for (let e = 0; e < x.data.length; e++) {
      const base = Math.floor(e / (inner * len)) * inner * len + (e % inner);
      let s = 0;
      for (let d = 0; d < len; d++) s += Math.abs(x.data[base + d * inner]!) ** p;
      const want = x.data[e]! / s ** (1 / p);
      expect(Math.abs(got[e]! - want), `${label}: y[${e}] = ${got[e]}, want ${want}`).toBeLessThan(1e-5 * Math.abs(want));
    }
    return; // (the backward of norms past float32: norms = Inf is not a norm of x)
  }
  const normShape = c.shape.map((d, i) => (i === dim ? 1 : d));
  const dy = randn(c.seed + 100, c.shape);
  if (c.data === 'near-max') dy.data.forEach((v, i) => (dy.data[i] = 1e6 * v));
  await parity(`${label} backward`, n, B.cpu, { dy: c.dtype ? { ...dy, dtype: c.dtype } : dy, x, norms: host(ref.norms!, normShape) }, (m, t) => m.l2NormalizeBackward(t.dy!, t.x!, t.norms!, o), { tol });
}

describe('l2Normalize parity', () => {
  for (const c of CASES) {
    it(describeCase(c), async () => {
      for (const [name, n] of [['auto', B.gpu], ['gpu class', B.gpuSplit]] as const) await caseParity(n, `${describeCase(c)} [${name}]`, c);
    });
  }
});

describe.skipIf(ON_WASM)('l2Normalize on tensors past one storage binding (bound ranges)', () => {
  // Bindings capped at 4 KiB (1024 float32): x, y, dy and dx are bound in ranges, cut between
  // lanes; both kernel classes. Each case asserts that dispatches were windowed.
  const capped: [string, Norms][] = [];
  beforeAll(async () => {
    const { createNorms } = await import('../src/index.ts');
    for (const adapterClass of ['auto', 'gpu'] as const) {
      capped.push([`4 KiB bindings, ${adapterClass} class`, await createNorms({ backend: 'webgpu', device: B.gpu.device!, poisonOutputs: true, maxBindingBytes: 4096, adapterClass })]);
    }
  });
  afterAll(() => {
    for (const [, n] of capped) n.destroy();
  });
  const windowedCases: Case[] = [
    { shape: [40, 96], dim: -1, seed: 40 },
    { shape: [6, 7, 50], dim: 1, seed: 41 },
    { shape: [6, 30, 20], dim: 1, p: 1, seed: 42 },
    { shape: [4, 30, 20], dim: 1, dtype: 'float16', seed: 43 },
    { shape: [2, 600], dim: 0, seed: 45 },
    { shape: [12, 3, 5, 16], dim: 2, eps: 1e-4, data: 'clamped', seed: 44 },
  ];
  for (const c of windowedCases) {
    it(describeCase(c), async () => {
      for (const [name, n] of capped) {
        const count = countWindowed(n);
        try {
          await caseParity(n, `${describeCase(c)} [${name}]`, c);
        } finally {
          count.stop();
        }
        expect(count.get(), `${describeCase(c)} [${name}]: windowed dispatches`).toBeGreaterThan(1);
      }
    });
  }
  it('a lane longer than a binding (dim 0 of [2, 30, 70]: 2101 elements apart) is a LimitError naming x, dim and shape, and allocates nothing', async () => {
    const [, n] = capped[0]!;
    const before = n.stats().liveBuffers;
    const x = n.tensor(new Float32Array(2 * 30 * 70).fill(1), [2, 30, 70]);
    expect(() => n.l2Normalize(x, { dim: 0 })).toThrow(/x: l2Normalize along dim 0 of shape \[2, 30, 70\]: one lane spans 8404 bytes/);
    expect(n.stats().liveBuffers).toBe(before + 1);
    // Lanes that fit a binding but take most of it (dim 0 of [2, 1000]: 4004 bytes of 4096) would
    // run a dispatch per few lanes: the same LimitError.
    const x2 = n.tensor(new Float32Array(2000).fill(1), [2, 1000]);
    expect(() => n.l2Normalize(x2, { dim: 0 })).toThrow(/x: l2Normalize along dim 0 of shape \[2, 1000\]: one lane spans 4004 bytes/);
    x.destroy();
    x2.destroy();
  });
});

describe('the float64 reference of l2Normalize', () => {
  /** Independent: y = x / max(‖x‖_p, eps) along dim 1 of [A, D, C], in float64. */
  function forward(x: Float64Array, A: number, D: number, C: number, p: number, eps: number): Float64Array {
    const y = new Float64Array(x.length);
    for (let a = 0; a < A; a++) {
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += Math.abs(x[(a * D + d) * C + c]!) ** p;
        const den = Math.max(s ** (1 / p), eps);
        for (let d = 0; d < D; d++) y[(a * D + d) * C + c] = x[(a * D + d) * C + c]! / den;
      }
    }
    return y;
  }

  for (const p of [1, 2, 3]) {
    it(`p = ${p}: forward matches the formula, backward matches central differences (lanes on both sides of eps)`, async () => {
      const [A, D, C] = [2, 4, 3];
      const eps = 0.05;
      const xs = randn(200 + p, [A, D, C], 0, 1);
      // Lane (0, c = 0) small enough to be clamped.
      for (let d = 0; d < D; d++) xs.data[d * C] = xs.data[d * C]! * 0.004;
      const dys = randn(300 + p, [A, D, C]);
      const x = Float64Array.from(xs.data);
      const dy = Float64Array.from(dys.data);
      const cpu = B.cpu;
      const xt = cpu.tensor(xs.data, xs.shape);
      const r = cpu.l2Normalize(xt, { dim: 1, p, eps });
      const y = await cpu.read(r.y);
      const want = forward(x, A, D, C, p, eps);
      for (let i = 0; i < y.length; i++) expect(Math.abs(y[i]! - want[i]!)).toBeLessThan(1e-6 * (1 + Math.abs(want[i]!)));
      const dx = await cpu.read(cpu.l2NormalizeBackward(cpu.tensor(dys.data, dys.shape), xt, r.norms, { dim: 1, p, eps }).dx);
      for (let i = 0; i < x.length; i++) {
        const h = 1e-6;
        const save = x[i]!;
        x[i] = save + h;
        const a = forward(x, A, D, C, p, eps).reduce((s, v, k) => s + v * dy[k]!, 0);
        x[i] = save - h;
        const b = forward(x, A, D, C, p, eps).reduce((s, v, k) => s + v * dy[k]!, 0);
        x[i] = save;
        const fd = (a - b) / (2 * h);
        expect(Math.abs(dx[i]! - fd), `dx[${i}]: ${dx[i]} vs ${fd}`).toBeLessThan(1e-4 * (1 + Math.abs(fd)));
      }
    });
  }
});

describe('l2Normalize arguments', () => {
  it('names the argument and the shapes', () => {
    const n = B.gpu;
    const x = n.tensor(new Float32Array(24), [2, 3, 4]);
    expect(() => n.l2Normalize(x, { dim: 3 })).toThrow(ValueError);
    expect(() => n.l2Normalize(x, { p: 0 })).toThrow(/p: expected a finite number > 0/);
    expect(() => n.l2Normalize(x, { eps: -1 })).toThrow(/eps/);
    expect(() => n.l2Normalize(x, { dimm: 1 } as never)).toThrow(/did you mean dim/);
    const norms = n.tensor(new Float32Array(8), [2, 4]);
    expect(() => n.l2NormalizeBackward(x, x, norms, { dim: 1 })).toThrow(ShapeError);
    expect(numel([2, 1, 4])).toBe(8);
  });
});
