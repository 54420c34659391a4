/**
 * Modulated norms (adaLN / adaRMS / AdaGN) and the gated residual, forward and backward, on every
 * kernel variant of the webgpu backend against the float64 CPU reference; the reference itself
 * against an independent float64 composition written here (forward) and against central finite
 * differences of it (backward).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShapeError, ValueError, type DType, type Norms, type RmsNormBackwardOptions, type RmsNormOptions, type Tensor } from '../src/index.ts';
import { countWindowed, ON_WASM, sameDevice } from './util/gpu.ts';
import { closeBackends, host, numel, openBackends, parity, randn, uniform, type Backends, type HostIn } from './util/parity.ts';
import { TOLERANCE } from './catalog.js';

let B: Backends;
beforeAll(async () => {
  B = await openBackends();
});
afterAll(() => closeBackends(B));

const variants = (): [string, Norms][] => [
  ['auto', B.gpu],
  ['fused', B.fused],
  ['general', B.general],
  ['gpu class', B.gpuSplit],
];

interface RowCase {
  x: number[];
  normalizedShape: number[];
  mod: number[];
  scale?: boolean;
  shift?: boolean;
  gate?: boolean;
  weight?: boolean;
  bias?: boolean;
  rms?: boolean;
  dtype?: DType;
  modDtype?: DType;
  scaleOffset?: number;
  dsum?: boolean;
  /** 'dead': sample 0's scale is -1 everywhere; 'zero-gate': gate 0; 'large': |scale| ~ 1e3. */
  special?: 'dead' | 'zero-gate' | 'large';
  seed: number;
}

const withDtype = (h: HostIn, dtype?: DType): HostIn => (dtype ? { ...h, dtype } : h);

function rowInputs(c: RowCase) {
  const K = numel(c.normalizedShape);
  const md = c.modDtype ?? c.dtype;
  let scale = c.scale === false ? null : randn(c.seed + 1, c.mod, 0, 0.5);
  if (scale && c.special === 'dead') for (let i = 0; i < numel(c.mod) / (c.mod[0] ?? 1); i++) scale.data[i] = -1;
  if (scale && c.special === 'large') scale = randn(c.seed + 1, c.mod, 0, 1e3);
  const gate = c.gate ? (c.special === 'zero-gate' ? host(new Float32Array(numel(c.mod)), c.mod) : randn(c.seed + 3, c.mod, 0.5, 0.5)) : null;
  return {
    x: withDtype(randn(c.seed, c.x, 0.3, 1.5), c.dtype),
    residual: c.gate ? withDtype(randn(c.seed + 4, c.x, -1, 2), c.dtype) : null,
    weight: c.weight ? withDtype(randn(c.seed + 5, c.normalizedShape, 1, 0.3), md) : null,
    bias: c.bias && !c.rms ? withDtype(randn(c.seed + 6, c.normalizedShape, 0, 0.3), md) : null,
    scale: scale && withDtype(scale, md),
    shift: c.shift === false ? null : withDtype(randn(c.seed + 2, c.mod, 0, 0.5), md),
    gate: gate && withDtype(gate, md),
    dy: withDtype(randn(c.seed + 7, c.x), c.dtype),
    dsum: c.dsum ? withDtype(randn(c.seed + 8, c.x, 0, 0.5), c.dtype) : null,
    K,
  };
}

const describeRow = (c: RowCase): string =>
  `${c.rms ? 'rmsNorm' : 'layerNorm'} x [${c.x}] mod [${c.mod}]${c.scale === false ? '' : ' scale'}${c.shift === false ? '' : ' shift'}${c.gate ? ' gate' : ''}` +
  `${c.weight ? ' w' : ''}${c.bias ? ' b' : ''}${c.dtype ? ` ${c.dtype}` : ''}${c.modDtype ? ` params ${c.modDtype}` : ''}${c.scaleOffset !== undefined ? ` offset ${c.scaleOffset}` : ''}${c.special ? ` ${c.special}` : ''}${c.dsum ? ' dsum' : ''}`;

async function rowParity(n: Norms, label: string, c: RowCase): Promise<void> {
  const inp = rowInputs(c);
  const tol = c.dtype === 'float16' ? TOLERANCE.float16 : TOLERANCE.float32;
  const opts = (t: Record<string, Tensor | null>) => ({
    normalizedShape: c.normalizedShape,
    weight: t.weight,
    ...(c.rms ? {} : { bias: t.bias }),
    scale: t.scale,
    shift: t.shift,
    gate: t.gate,
    residual: t.residual,
    ...(c.scaleOffset !== undefined ? { scaleOffset: c.scaleOffset } : {}),
  });
  const fwdIn = { x: inp.x, residual: inp.residual, weight: inp.weight, bias: inp.bias, scale: inp.scale, shift: inp.shift, gate: inp.gate };
  const ref = await parity(`${label} forward`, n, B.cpu, fwdIn, (m, t) => (c.rms ? m.rmsNorm(t.x!, opts(t) as RmsNormOptions) : m.layerNorm(t.x!, opts(t))), { tol, tolByDtype: { float32: TOLERANCE.float32 } });
  const stats = c.rms ? { rstd: host(ref.rstd!, c.x.slice(0, c.x.length - c.normalizedShape.length)) } : {
    mean: host(ref.mean!, c.x.slice(0, c.x.length - c.normalizedShape.length)),
    rstd: host(ref.rstd!, c.x.slice(0, c.x.length - c.normalizedShape.length)),
  };
  const bwdIn = { ...fwdIn, dy: inp.dy, dsum: inp.dsum, ...stats };
  await parity(`${label} backward`, n, B.cpu, bwdIn, (m, t) => {
    const o = { ...opts(t), dsum: t.dsum };
    return c.rms ? m.rmsNormBackward(t.dy!, t.x!, t.rstd!, o as RmsNormBackwardOptions) : m.layerNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, o);
  }, { tol, tolByDtype: { float32: TOLERANCE.float32 } });
}

const ROW_CASES: RowCase[] = [
  // DiT-style: per-sample scale/shift [B, 1, D], odd D, no affine.
  { x: [2, 5, 7], normalizedShape: [7], mod: [2, 1, 7], seed: 10 },
  { x: [2, 5, 7], normalizedShape: [7], mod: [2, 1, 7], rms: true, weight: true, seed: 11 },
  // One token; per token [B, T, D]; shared [1, 1, D]; and fewer dims ([D]).
  { x: [3, 1, 16], normalizedShape: [16], mod: [3, 1, 16], weight: true, bias: true, seed: 12 },
  { x: [2, 3, 12], normalizedShape: [12], mod: [2, 3, 12], weight: true, bias: true, seed: 13 },
  { x: [2, 3, 12], normalizedShape: [12], mod: [1, 1, 12], seed: 14 },
  { x: [2, 3, 12], normalizedShape: [12], mod: [12], rms: true, seed: 15 },
  // Per token shared over the batch ([1, T, D]); a middle run of kept dims in rank 4.
  { x: [2, 3, 8], normalizedShape: [8], mod: [1, 3, 8], seed: 16 },
  { x: [2, 3, 4, 8], normalizedShape: [8], mod: [1, 3, 4, 8], weight: true, seed: 17 },
  // scale = -1 (a dead row), a zero gate (adaLN-Zero at initialisation), large |scale|.
  { x: [2, 4, 20], normalizedShape: [20], mod: [2, 1, 20], special: 'dead', seed: 18 },
  { x: [2, 4, 20], normalizedShape: [20], mod: [2, 1, 20], gate: true, special: 'zero-gate', seed: 19 },
  { x: [2, 4, 20], normalizedShape: [20], mod: [2, 1, 20], special: 'large', seed: 20 },
  // Gated residual with dsum from later layers; scale only / shift only; scaleOffset 0.
  { x: [2, 6, 24], normalizedShape: [24], mod: [2, 1, 24], gate: true, dsum: true, weight: true, bias: true, seed: 21 },
  { x: [2, 6, 24], normalizedShape: [24], mod: [2, 1, 24], gate: true, rms: true, dsum: true, seed: 22 },
  { x: [2, 6, 24], normalizedShape: [24], mod: [2, 1, 24], shift: false, scaleOffset: 0, rms: true, seed: 23 },
  { x: [2, 6, 24], normalizedShape: [24], mod: [2, 1, 24], scale: false, seed: 24 },
  // float16 activations with float32 parameters, and the other way round.
  { x: [2, 5, 36], normalizedShape: [36], mod: [2, 1, 36], gate: true, weight: true, bias: true, dtype: 'float16', modDtype: 'float32', seed: 25 },
  { x: [2, 5, 36], normalizedShape: [36], mod: [2, 1, 36], rms: true, weight: true, dtype: 'float16', modDtype: 'float32', seed: 26 },
  { x: [2, 5, 36], normalizedShape: [36], mod: [2, 5, 36], gate: true, modDtype: 'float16', seed: 27 },
  // Longer rows: the rows kernel (GPU class), many tokens per sample (partials of dscale), rows past one chunk.
  { x: [2, 300, 64], normalizedShape: [64], mod: [2, 1, 64], gate: true, weight: true, bias: true, seed: 28 },
  { x: [1, 3, 9000], normalizedShape: [9000], mod: [1, 1, 9000], weight: true, seed: 29 },
  // The row kernels' own sums of dscale/dshift/dgate (blocks within runs of tokens): runs that
  // blocks do not divide, runs repeating over a leading dim ([3, 2, T, D] with [1, 2, 1, D]).
  { x: [3, 37, 128], normalizedShape: [128], mod: [3, 1, 128], gate: true, dsum: true, weight: true, bias: true, seed: 31 },
  { x: [2, 45, 96], normalizedShape: [96], mod: [2, 1, 96], rms: true, weight: true, shift: false, seed: 32 },
  { x: [3, 2, 11, 64], normalizedShape: [64], mod: [1, 2, 1, 64], gate: true, weight: true, seed: 33 },
  // Enough rows for the CPU class's row blocks (2048 and more), runs the blocks do not divide.
  { x: [2, 1100, 16], normalizedShape: [16], mod: [2, 1, 16], gate: true, dsum: true, weight: true, bias: true, seed: 34 },
  { x: [3, 700, 20], normalizedShape: [20], mod: [3, 1, 20], rms: true, weight: true, seed: 35 },
];

describe('modulated layer/RMS norm backward plans', () => {
  // Per-sample modulation of rows of whole quads: the row kernel sums dscale, dshift, dgate as it
  // goes (MOD_SUMS) and one small kernel finishes them; no second pass over dy and x.
  it('sum the modulation\'s gradients inside the row kernels on both adapter classes', () => {
    for (const [name, n] of [['auto', B.gpu], ['gpu class', B.gpuSplit]] as const) {
      if (!n._gpu) continue;
      const t = (shape: number[]) => n.tensor(new Float32Array(numel(shape)), shape);
      const shape = [2, 1024, 128];
      const x = t(shape);
      const m = [2, 1, 128];
      const o = { normalizedShape: [128], weight: t([128]), bias: t([128]), residual: t(shape), gate: t(m), scale: t(m), shift: t(m) };
      const f = n.layerNorm(x, o);
      const plans = n._gpu.planOnly(() => n.layerNormBackward(t(shape), x, f.mean, f.rstd, { ...o, dsum: t(shape) }));
      const steps = plans.flatMap((p) => p.steps);
      const entries = steps.map((s) => s.entry);
      expect(entries, name).toContain('modulation_grad_sums');
      expect(entries, name).not.toContain('modulation_grad_partials');
      expect(steps.some((s) => s.flags.includes('MOD_SUMS')), name).toBe(true);
    }
  });
});

describe('modulated layer/RMS norm parity (every kernel variant)', () => {
  for (const c of ROW_CASES) {
    it(describeRow(c), async () => {
      for (const [name, n] of variants()) await rowParity(n, `${describeRow(c)} [${name}]`, c);
    });
  }
});

interface GroupCase {
  x: number[];
  G: number;
  mod: number[] | null;
  channelsLast?: boolean;
  silu?: boolean;
  weight?: boolean;
  bias?: boolean;
  dtype?: DType;
  modDtype?: DType;
  seed: number;
}

const describeGroup = (c: GroupCase): string =>
  `groupNorm x [${c.x}] G ${c.G}${c.mod ? ` mod [${c.mod}]` : ''}${c.channelsLast ? ' channelsLast' : ''}${c.silu ? ' silu' : ''}${c.weight ? ' w' : ''}${c.bias ? ' b' : ''}${c.dtype ? ` ${c.dtype}` : ''}${c.modDtype ? ` params ${c.modDtype}` : ''}`;

async function groupParity(n: Norms, label: string, c: GroupCase): Promise<void> {
  const C = c.channelsLast ? c.x[c.x.length - 1]! : c.x[1]!;
  const md = c.modDtype ?? c.dtype;
  const tol = c.dtype === 'float16' ? TOLERANCE.float16 : TOLERANCE.float32;
  const fwdIn = {
    x: withDtype(randn(c.seed, c.x, 0.5, 2), c.dtype),
    weight: c.weight ? withDtype(randn(c.seed + 1, [C], 1, 0.3), md) : null,
    bias: c.bias ? withDtype(randn(c.seed + 2, [C], 0, 0.3), md) : null,
    scale: c.mod ? withDtype(randn(c.seed + 3, c.mod, 0, 0.5), md) : null,
    shift: c.mod ? withDtype(randn(c.seed + 4, c.mod, 0, 0.5), md) : null,
  };
  const opts = (t: Record<string, Tensor | null>) => ({ numGroups: c.G, weight: t.weight, bias: t.bias, scale: t.scale, shift: t.shift, channelsLast: !!c.channelsLast, activation: c.silu ? ('silu' as const) : null });
  const ref = await parity(`${label} forward`, n, B.cpu, fwdIn, (m, t) => m.groupNorm(t.x!, { ...opts(t), eps: 1e-5 }), { tol, tolByDtype: { float32: TOLERANCE.float32 } });
  const N = c.x[0]!;
  const bwdIn = { ...fwdIn, dy: withDtype(randn(c.seed + 5, c.x), c.dtype), mean: host(ref.mean!, [N, c.G]), rstd: host(ref.rstd!, [N, c.G]) };
  await parity(`${label} backward`, n, B.cpu, bwdIn, (m, t) => m.groupNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, opts(t)), { tol, tolByDtype: { float32: TOLERANCE.float32 } });
}

const GROUP_CASES: GroupCase[] = [
  { x: [2, 8, 4, 4], G: 4, mod: [2, 8], weight: true, bias: true, seed: 40 },
  { x: [2, 8, 4, 4], G: 4, mod: [2, 8, 1, 1], silu: true, seed: 41 },
  { x: [2, 6, 3, 5], G: 3, mod: [1, 6], silu: true, weight: true, bias: true, seed: 42 },
  { x: [2, 6, 3, 5], G: 3, mod: null, silu: true, weight: true, bias: true, seed: 43 },
  { x: [2, 4, 4, 8], G: 2, mod: [2, 1, 1, 8], channelsLast: true, silu: true, weight: true, seed: 44 },
  { x: [2, 5, 3, 6], G: 3, mod: [2, 6], channelsLast: true, bias: true, seed: 45 },
  { x: [2, 8, 16, 16], G: 4, mod: [2, 8], silu: true, weight: true, bias: true, dtype: 'float16', modDtype: 'float32', seed: 46 },
  { x: [3, 16, 300], G: 8, mod: [3, 16], weight: true, bias: true, seed: 47 },
];

describe('modulated group norm and SiLU backward parity (every kernel variant)', () => {
  for (const c of GROUP_CASES) {
    it(describeGroup(c), async () => {
      for (const [name, n] of variants()) await groupParity(n, `${describeGroup(c)} [${name}]`, c);
    });
  }
});

// ---- the reference itself, against an independent float64 composition and finite differences ----

/** Independent float64 layer norm (or RMS norm) of rows of K, then the modulation, with the gated residual. */
function rowForward64(p: { x: Float64Array; residual: Float64Array | null; gate: Float64Array | null; scale: Float64Array | null; shift: Float64Array | null; w: Float64Array | null; b: Float64Array | null; K: number; T: number; o: number; rms: boolean; eps: number }): { y: Float64Array; sum: Float64Array } {
  const { K, T } = p;
  const n = p.x.length;
  const sum = new Float64Array(n);
  // modulation per (sample, column): rows are (sample, token), T tokens per sample.
  const m = (e: number) => Math.floor(e / (K * T)) * K + (e % K);
  for (let e = 0; e < n; e++) sum[e] = p.residual ? p.residual[e]! + (p.gate ? p.gate[m(e)]! : 1) * p.x[e]! : p.x[e]!;
  const y = new Float64Array(n);
  for (let r = 0; r < n / K; r++) {
    let mu = 0;
    if (!p.rms) {
      for (let i = 0; i < K; i++) mu += sum[r * K + i]!;
      mu /= K;
    }
    let v = 0;
    for (let i = 0; i < K; i++) v += (sum[r * K + i]! - mu) ** 2;
    const rs = 1 / Math.sqrt(v / K + p.eps);
    for (let i = 0; i < K; i++) {
      const e = r * K + i;
      let t = (sum[e]! - mu) * rs;
      if (p.w) t *= p.w[i]!;
      if (p.b) t += p.b[i]!;
      if (p.scale) t *= p.o + p.scale[m(e)]!;
      if (p.shift) t += p.shift[m(e)]!;
      y[e] = t;
    }
  }
  return { y, sum };
}

describe('the float64 reference of the modulated forms', () => {
  const K = 6;
  const T = 3;
  const shape = [2, T, K];
  const mod = [2, 1, K];
  const f = (h: HostIn) => Float64Array.from(h.data);
  const inputs = (seed: number) => ({
    x: randn(seed, shape, 0.2, 1),
    residual: randn(seed + 1, shape, 0, 1),
    gate: uniform(seed + 2, mod, -1, 1),
    scale: randn(seed + 3, mod, 0, 0.5),
    shift: randn(seed + 4, mod, 0, 0.5),
    w: randn(seed + 5, [K], 1, 0.2),
    b: randn(seed + 6, [K], 0, 0.2),
    dy: randn(seed + 7, shape),
    dsum: randn(seed + 8, shape, 0, 0.5),
  });

  for (const rms of [false, true]) {
    it(`${rms ? 'rmsNorm' : 'layerNorm'} forward matches an independent float64 composition`, async () => {
      const h = inputs(60);
      const cpu = B.cpu;
      const t = (x: HostIn) => cpu.tensor(x.data, x.shape);
      const o = { normalizedShape: [K], weight: t(h.w), scale: t(h.scale), shift: t(h.shift), gate: t(h.gate), residual: t(h.residual), scaleOffset: 0.75, ...(rms ? {} : { bias: t(h.b) }) };
      const r = rms ? cpu.rmsNorm(t(h.x), o as RmsNormOptions) : cpu.layerNorm(t(h.x), o);
      const want = rowForward64({ x: f(h.x), residual: f(h.residual), gate: f(h.gate), scale: f(h.scale), shift: f(h.shift), w: f(h.w), b: rms ? null : f(h.b), K, T, o: 0.75, rms, eps: rms ? 1.1920928955078125e-7 : 1e-5 });
      const y = await cpu.read(r.y);
      for (let i = 0; i < y.length; i++) expect(Math.abs(y[i]! - want.y[i]!)).toBeLessThan(1e-5 * (1 + Math.abs(want.y[i]!)));
    });

    it(`${rms ? 'rmsNormBackward' : 'layerNormBackward'} with gate, residual and dsum matches central differences in float64`, async () => {
      const h = inputs(70);
      const cpu = B.cpu;
      const t = (x: HostIn) => cpu.tensor(x.data, x.shape);
      const base = { x: f(h.x), residual: f(h.residual), gate: f(h.gate), scale: f(h.scale), shift: f(h.shift), w: f(h.w), b: rms ? null : f(h.b) };
      const dy = f(h.dy);
      const dsum = f(h.dsum);
      // loss = Σ y ⊙ dy + Σ sum ⊙ dsum
      const loss = (p: typeof base): number => {
        const r = rowForward64({ ...p, K, T, o: 1, rms, eps: rms ? 1.1920928955078125e-7 : 1e-5 });
        let s = 0;
        for (let i = 0; i < dy.length; i++) s += r.y[i]! * dy[i]! + r.sum[i]! * dsum[i]!;
        return s;
      };
      const numeric = (key: keyof typeof base): Float64Array => {
        const v = base[key]!;
        const g = new Float64Array(v.length);
        for (let i = 0; i < v.length; i++) {
          const hh = 1e-6 * Math.max(1, Math.abs(v[i]!));
          const save = v[i]!;
          v[i] = save + hh;
          const a = loss(base);
          v[i] = save - hh;
          const b = loss(base);
          v[i] = save;
          g[i] = (a - b) / (2 * hh);
        }
        return g;
      };
      const fo = { normalizedShape: [K], weight: t(h.w), scale: t(h.scale), shift: t(h.shift), gate: t(h.gate), residual: t(h.residual), ...(rms ? {} : { bias: t(h.b) }) };
      const x = t(h.x);
      const fwd = rms ? cpu.rmsNorm(x, fo as RmsNormOptions) : cpu.layerNorm(x, fo);
      const bo = { ...fo, dsum: t(h.dsum) };
      const r = rms
        ? cpu.rmsNormBackward(t(h.dy), x, fwd.rstd, bo as RmsNormBackwardOptions)
        : cpu.layerNormBackward(t(h.dy), x, (fwd as unknown as { mean: Tensor }).mean, fwd.rstd, bo);
      const pairs: [string, Tensor | null | undefined, keyof typeof base][] = [
        ['dx', r.dx, 'x'],
        ['dresidual', r.dresidual, 'residual'],
        ['dgate', r.dgate, 'gate'],
        ['dscale', r.dscale, 'scale'],
        ['dshift', r.dshift, 'shift'],
        ['dweight', r.dweight, 'w'],
        ...(rms ? [] : ([['dbias', (r as unknown as { dbias: Tensor | null }).dbias, 'b']] as [string, Tensor | null, keyof typeof base][])),
      ];
      for (const [name, got, key] of pairs) {
        expect(got, name).toBeTruthy();
        const g = await cpu.read(got!);
        const want = numeric(key);
        let num = 0;
        let den = 0;
        for (let i = 0; i < want.length; i++) (num += (g[i]! - want[i]!) ** 2), (den += want[i]! ** 2);
        expect(Math.sqrt(num / den), `${name} vs central differences`).toBeLessThan(1e-5);
      }
    });
  }

  it('groupNormBackward with SiLU and modulation matches central differences in float64', async () => {
    const cpu = B.cpu;
    const shape = [2, 4, 3];
    const G = 2;
    const h = { x: randn(80, shape, 0.3, 1), w: randn(81, [4], 1, 0.2), b: randn(82, [4], 0, 0.2), scale: randn(83, [2, 4], 0, 0.5), shift: randn(84, [2, 4], 0, 0.5), dy: randn(85, shape) };
    const f64 = (k: keyof typeof h) => Float64Array.from(h[k].data);
    const p = { x: f64('x'), w: f64('w'), b: f64('b'), scale: f64('scale'), shift: f64('shift') };
    const dy = f64('dy');
    const fwd = (q: typeof p): number => {
      let s = 0;
      for (let nn = 0; nn < 2; nn++) {
        for (let g = 0; g < G; g++) {
          const idx: number[] = [];
          for (let c = g * 2; c < g * 2 + 2; c++) for (let i = 0; i < 3; i++) idx.push(nn * 12 + c * 3 + i);
          const mu = idx.reduce((a, e) => a + q.x[e]!, 0) / idx.length;
          const v = idx.reduce((a, e) => a + (q.x[e]! - mu) ** 2, 0) / idx.length;
          const rs = 1 / Math.sqrt(v + 1e-5);
          for (const e of idx) {
            const c = Math.floor(e / 3) % 4;
            const z = ((q.x[e]! - mu) * rs * q.w[c]! + q.b[c]!) * (1 + q.scale[nn * 4 + c]!) + q.shift[nn * 4 + c]!;
            s += (z / (1 + Math.exp(-z))) * dy[e]!;
          }
        }
      }
      return s;
    };
    const t = (k: keyof typeof h) => cpu.tensor(h[k].data, h[k].shape);
    const o = { numGroups: G, weight: t('w'), bias: t('b'), scale: t('scale'), shift: t('shift'), activation: 'silu' as const };
    const x = t('x');
    const r0 = cpu.groupNorm(x, o);
    const r = cpu.groupNormBackward(t('dy'), x, r0.mean, r0.rstd, o);
    for (const [name, got, key] of [['dx', r.dx, 'x'], ['dweight', r.dweight, 'w'], ['dbias', r.dbias, 'b'], ['dscale', r.dscale, 'scale'], ['dshift', r.dshift, 'shift']] as const) {
      const v = p[key];
      const g = await cpu.read(got!);
      for (let i = 0; i < v.length; i++) {
        const hh = 1e-6;
        const save = v[i]!;
        v[i] = save + hh;
        const a = fwd(p);
        v[i] = save - hh;
        const b = fwd(p);
        v[i] = save;
        expect(Math.abs(g[i]! - (a - b) / (2 * hh)), `${name}[${i}]`).toBeLessThan(2e-5 * (1 + Math.abs(g[i]!)));
      }
    }
  });
});

describe('modulation arguments', () => {
  it('names the argument and the shapes', () => {
    const n = B.gpu;
    const x = n.tensor(new Float32Array(24), [2, 3, 4]);
    const s = n.tensor(new Float32Array(8), [2, 1, 4]);
    expect(() => n.layerNorm(x, { normalizedShape: [4], scale: n.tensor(new Float32Array(6), [2, 1, 3]) })).toThrow(ShapeError);
    expect(() => n.layerNorm(x, { normalizedShape: [4], scale: s, shift: n.tensor(new Float32Array(4), [1, 1, 4]) })).toThrow(/shift: expected shape \[2, 1, 4\]/);
    expect(() => n.layerNorm(x, { normalizedShape: [4], gate: s })).toThrow(ValueError);
    expect(() => n.layerNorm(x, { normalizedShape: [4], scale: s, scaleOffset: NaN })).toThrow(/scaleOffset/);
    // scaleOffset offsets scale: without one, anything but 1 is an error (not ignored), forward and backward, every op.
    const sh = n.tensor(new Float32Array(8), [2, 1, 4]);
    for (const v of [0.5, 0, -1]) {
      expect(() => n.layerNorm(x, { normalizedShape: [4], shift: sh, scaleOffset: v }), `layerNorm scaleOffset ${v}`).toThrow(/^scaleOffset: .*no scale is given; got scaleOffset/);
      expect(() => n.rmsNorm(x, { normalizedShape: [4], scaleOffset: v }), `rmsNorm scaleOffset ${v}`).toThrow(ValueError);
    }
    const f = n.layerNorm(x, { normalizedShape: [4], shift: sh, scaleOffset: 1 });
    const err = (() => {
      try {
        n.layerNormBackward(x, x, f.mean, f.rstd, { normalizedShape: [4], shift: sh, scaleOffset: 2 });
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(ValueError);
    expect((err as ValueError).argument).toBe('scaleOffset');
    const gx = n.tensor(new Float32Array(2 * 4 * 3), [2, 4, 3]);
    expect(() => n.groupNorm(gx, { numGroups: 2, shift: n.tensor(new Float32Array(8), [2, 4]), scaleOffset: 0 })).toThrow(/^scaleOffset: /);
    // 1 (the default, no effect) is accepted without scale, and the output is n + shift.
    expect(f.y.shape).toEqual([2, 3, 4]);
    expect(() => n.layerNorm(x, { normalizedShape: [4], scale: n.tensor(new Float32Array(8), [2, 4, 1]) })).toThrow(/scale/);
    const g = n.tensor(new Float32Array(2 * 4 * 3), [2, 4, 3]);
    expect(() => n.groupNorm(g, { numGroups: 2, scale: n.tensor(new Float32Array(8), [4, 2]) })).toThrow(/scale: expected shape \[2, 4\]/);
  });
});

describe('modulated ops with verify, profile and encode', () => {
  const shape = [2, 8, 16];
  const m = [2, 1, 16];
  const h = { x: randn(950, shape), r: randn(951, shape), s: randn(952, m, 0, 0.3), b: randn(953, m, 0, 0.3), g: randn(954, m, 0, 0.5), dy: randn(955, shape) };
  const call = (n: Norms) => {
    const t = (v: HostIn) => n.tensor(v.data, v.shape);
    const x = t(h.x);
    const o = { normalizedShape: [16], residual: t(h.r), gate: t(h.g), scale: t(h.s), shift: t(h.b) };
    const f = n.layerNorm(x, o);
    return { f, b: n.layerNormBackward(t(h.dy), x, f.mean, f.rstd, o) };
  };

  it('verify: true checks every output of the modulated forward and backward against the reference', async () => {
    const v = await sameDevice(B.gpu, { verify: true });
    try {
      const { f, b } = call(v);
      await f;
      await b;
      expect(Object.keys(b).sort()).toEqual(['dgate', 'dresidual', 'dscale', 'dshift', 'dweight', 'dbias', 'dx'].filter((k) => k in b).sort());
      expect(b.dgate && b.dscale && b.dshift && b.dresidual).toBeTruthy();
    } finally {
      v.destroy();
    }
  });

  it.skipIf(ON_WASM)('profile records the modulated kernels with their bytes; encode records them into the caller\'s encoder', async () => {
    const { createNorms } = await import('../src/index.ts');
    const p = await createNorms({ backend: 'webgpu', device: B.gpu.device!, profile: true });
    try {
      call(p);
      const rec = await p.profile();
      const fwd = rec.find((r) => r.op === 'layerNorm')!;
      const bwd = rec.find((r) => r.op === 'layerNormBackward')!;
      expect(fwd.kernels.every((k) => k.bytesRead > 0)).toBe(true);
      expect(bwd.kernels.some((k) => k.name.startsWith('modulation_grad_'))).toBe(true);
      const enc = p.device!.createCommandEncoder();
      const t = (v: HostIn) => p.tensor(v.data, v.shape);
      const x = t(h.x);
      const sc = t(h.s);
      const y = p.encode(enc, () => p.layerNorm(x, { normalizedShape: [16], scale: sc }).y);
      p.device!.queue.submit([enc.finish()]);
      const want = B.cpu.layerNorm(B.cpu.tensor(h.x.data, shape), { normalizedShape: [16], scale: B.cpu.tensor(h.s.data, m) }).y;
      expect(relL2(await p.read(y), await B.cpu.read(want))).toBeLessThan(1e-4);
    } finally {
      p.destroy();
    }
  });
});

function relL2(a: Float32Array, b: Float32Array): number {
  let n = 0;
  let d = 0;
  for (let i = 0; i < b.length; i++) (n += (a[i]! - b[i]!) ** 2), (d += b[i]! ** 2);
  return Math.sqrt(n / d);
}

describe.skipIf(ON_WASM)('modulated plans on a device with WebGPU\'s default 8 storage bindings per kernel (the sum and the residual\'s gradients as passes of their own)', () => {
  const narrow: [string, Norms][] = [];
  beforeAll(async () => {
    const { createNorms } = await import('../src/index.ts');
    for (const adapterClass of ['auto', 'gpu'] as const) {
      const n = await createNorms({ backend: 'webgpu', device: B.gpu.device!, poisonOutputs: true, adapterClass });
      n._gpu!.maxStorageBindings = 8;
      narrow.push([`8 bindings, ${adapterClass} class`, n]);
    }
  });
  afterAll(() => {
    for (const [, n] of narrow) n.destroy();
  });
  const cases = ROW_CASES.filter((c) => c.gate || c.dsum).concat([{ x: [2, 300, 64], normalizedShape: [64], mod: [2, 1, 64], gate: true, dsum: true, weight: true, bias: true, dtype: 'float16', modDtype: 'float32', seed: 30 }]);
  for (const c of cases) {
    it(describeRow(c), async () => {
      for (const [name, n] of narrow) await rowParity(n, `${describeRow(c)} [${name}]`, c);
    });
  }
  it('the plans fit 8 bindings', () => {
    const [, n] = narrow[0]!;
    const t = (shape: number[]) => n.tensor(new Float32Array(numel(shape)), shape);
    const x = t([2, 6, 24]);
    const m = [2, 1, 24];
    const o = { normalizedShape: [24], weight: t([24]), bias: t([24]), residual: t([2, 6, 24]), gate: t(m), scale: t(m), shift: t(m) };
    const plans = n._gpu!.planOnly(() => {
      const f = n.layerNorm(x, o);
      n.layerNormBackward(t([2, 6, 24]), x, f.mean, f.rstd, { ...o, dsum: t([2, 6, 24]) });
    });
    const entries = plans.flatMap((p) => p.steps.map((s) => s.entry));
    expect(entries).toContain('gated_sum_elements');
    expect(entries).toContain('residual_grad_elements');
    for (const p of plans) for (const s of p.steps) expect(s.binds.length, `${p.op} ${s.entry}`).toBeLessThanOrEqual(8);
  });
});

describe.skipIf(ON_WASM)('modulated ops past one storage binding (bound ranges, binding size capped)', () => {
  // x, dy, the residual and the per-token modulation past the cap: every kernel of the plan,
  // forward and backward, with both splits of the work (this adapter's and a discrete GPU's), and
  // with WebGPU's default 8 storage bindings (the gated sum and the residual's gradients apart).
  const capped: [string, Norms][] = [];
  beforeAll(async () => {
    const { createNorms } = await import('../src/index.ts');
    for (const adapterClass of ['auto', 'gpu'] as const) {
      for (const bindings of [undefined, 8]) {
        const n = await createNorms({ backend: 'webgpu', device: B.gpu.device!, poisonOutputs: true, maxBindingBytes: 4096, adapterClass });
        n._gpu!.maxStorageBindings = bindings;
        capped.push([`4 KiB bindings${bindings ? ', 8 bindings' : ''}, ${adapterClass} class`, n]);
      }
    }
  });
  afterAll(() => {
    for (const [, n] of capped) n.destroy();
  });
  async function windowedRuns(label: string, body: (n: Norms, name: string) => Promise<void>): Promise<void> {
    for (const [name, n] of capped) {
      const c = countWindowed(n);
      try {
        await body(n, `${label} [${name}]`);
      } finally {
        c.stop();
      }
      expect(c.get(), `${label} [${name}]: windowed dispatches`).toBeGreaterThan(1);
    }
  }
  const rows: RowCase[] = [
    { x: [2, 64, 16], normalizedShape: [16], mod: [2, 1, 16], gate: true, dsum: true, weight: true, bias: true, seed: 50 },
    { x: [2, 64, 16], normalizedShape: [16], mod: [2, 64, 16], rms: true, weight: true, gate: true, seed: 51 },
    { x: [3, 50, 20], normalizedShape: [20], mod: [1, 1, 20], dtype: 'float16', modDtype: 'float32', gate: true, dsum: true, seed: 52 },
    { x: [2, 4, 300], normalizedShape: [300], mod: [2, 1, 300], weight: true, seed: 53 },
  ];
  for (const c of rows) it(describeRow(c), () => windowedRuns(describeRow(c), (n, label) => rowParity(n, label, c)));
  const groups: GroupCase[] = [
    { x: [2, 8, 16, 16], G: 4, mod: [2, 8], silu: true, weight: true, bias: true, seed: 54 },
    { x: [2, 16, 16, 8], G: 4, mod: [2, 1, 1, 8], channelsLast: true, silu: true, weight: true, seed: 55 },
  ];
  for (const c of groups) it(describeGroup(c), () => windowedRuns(describeGroup(c), (n, label) => groupParity(n, label, c)));
});
