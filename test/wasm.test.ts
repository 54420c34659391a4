/**
 * What only the wasm backend has (its parity against the float64 reference is checked by the
 * shared suites in the 'wasm' vitest project): the same output bits for one and two threads,
 * SIMD128 and scalar builds within float32 rounding of each other, float16 rounding identical to
 * the host's, the heap back to where it was after every op, memory growth past the initial pages,
 * the 'auto' selection rule, and its options' checks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create } from 'webgpu';
import { createNorms, relativeL2, ValueError, type Norms, type Tensor } from '../src/index.ts';
import { roundToHalf } from '../src/half.ts';
import { wasmNorms } from './util/gpu.ts';
import { makeRng } from './util/rng.ts';
import { draw, examples, hashSeed, makeRng as catalogRng, numel, spec } from './catalog.js';

let one: Norms, two: Norms, scalar: Norms;
beforeAll(async () => {
  // threadMinBytes 0: every op with more than one task is split over both threads.
  [one, two, scalar] = await Promise.all([wasmNorms({}, 'simd'), wasmNorms({}, 'threads'), wasmNorms({}, 'scalar')]);
});
afterAll(() => {
  for (const n of [one, two, scalar]) n?.destroy();
});

type Case = [name: string, run: (n: Norms, t: (seed: number, shape: number[], mean?: number, std?: number) => Tensor) => Record<string, Tensor | null | undefined>];

/** Every op, on shapes with many tasks (rows, planes, column chunks, row blocks) and offsets that need the careful sums; the catalogue's wasm examples are added below. */
const CASES: Case[] = [
  ['layerNorm + backward [300, 1000] +w +b mean 1e4', (n, t) => {
    const x = t(1, [300, 1000], 1e4, 1), w = t(2, [1000], 1, 0.5), b = t(3, [1000]);
    const f = n.layerNorm(x, { normalizedShape: [1000], weight: w, bias: b });
    return { ...f, ...n.layerNormBackward(t(4, [300, 1000]), x, f.mean, f.rstd, { normalizedShape: [1000], weight: w, bias: b }) };
  }],
  ['rmsNorm + residual + backward [64, 3000] +w', (n, t) => {
    const x = t(5, [64, 3000]), w = t(6, [3000], 1, 0.5);
    const f = n.rmsNorm(x, { normalizedShape: [3000], weight: w, residual: t(7, [64, 3000]) });
    return { ...f, ...n.rmsNormBackward(t(8, [64, 3000]), f.sum!, f.rstd, { normalizedShape: [3000], weight: w }) };
  }],
  ['groupNorm silu NCHW + backward [4, 32, 20, 20] G 8', (n, t) => {
    const x = t(9, [4, 32, 20, 20], 3, 2), w = t(10, [32], 1, 0.5), b = t(11, [32]);
    const f = n.groupNorm(x, { numGroups: 8, weight: w, bias: b, activation: 'silu' });
    const g = n.groupNorm(x, { numGroups: 8, weight: w, bias: b });
    return { silu: f.y, siluMean: f.mean, siluRstd: f.rstd, ...g, ...n.groupNormBackward(t(12, [4, 32, 20, 20]), x, g.mean, g.rstd, { numGroups: 8, weight: w, bias: b }) };
  }],
  ['groupNorm channelsLast + backward [3, 17, 19, 40] G 10', (n, t) => {
    const x = t(13, [3, 17, 19, 40], -2, 3), w = t(14, [40], 1, 0.5), b = t(15, [40]);
    const f = n.groupNorm(x, { numGroups: 10, weight: w, bias: b, channelsLast: true });
    return { ...f, ...n.groupNormBackward(t(16, [3, 17, 19, 40]), x, f.mean, f.rstd, { numGroups: 10, weight: w, bias: b, channelsLast: true }) };
  }],
  ['instanceNorm + backward [2, 24, 30, 30]', (n, t) => {
    const x = t(17, [2, 24, 30, 30], 100, 1);
    const f = n.instanceNorm(x, {});
    return { ...f, ...n.instanceNormBackward(t(18, [2, 24, 30, 30]), x, f.mean, f.rstd, {}) };
  }],
  ['groupNorm / instanceNorm NCHW on planes of 2048 and 4096, a weight per channel', (n, t) => {
    const x = t(52, [3, 8, 32, 64], 2, 3), w = t(53, [8], 1, 0.5), b = t(54, [8]);
    const g = n.groupNorm(x, { numGroups: 4, weight: w, bias: b });
    const s = n.groupNorm(x, { numGroups: 2, weight: w, bias: b, activation: 'silu' });
    const i = n.instanceNorm(t(55, [2, 6, 64, 64], -1, 2), { weight: t(56, [6], 1, 0.5), bias: t(57, [6]) });
    return { ...g, silu: s.y, siluMean: s.mean, siluRstd: s.rstd, inY: i.y, inMean: i.mean, inRstd: i.rstd };
  }],
  ['batchNorm train/eval NCHW + backward [8, 16, 24, 24]', (n, t) => {
    const x = t(19, [8, 16, 24, 24], 0.5, 2), w = t(20, [16], 1, 0.5), b = t(21, [16]);
    const rm = t(22, [16]), rv = n.tensor(new Float32Array(16).fill(1.5), [16]);
    const f = n.batchNorm(x, { training: true, weight: w, bias: b, runningMean: rm, runningVar: rv });
    const e = n.batchNorm(x, { training: false, weight: w, bias: b, runningMean: rm, runningVar: rv });
    const g = n.batchNormBackward(t(23, [8, 16, 24, 24]), x, { training: true, weight: w, bias: b, saveMean: f.saveMean, saveInvstd: f.saveInvstd });
    return { ...f, eval: e.y, evalMean: e.saveMean, evalInvstd: e.saveInvstd, rm, rv, ...g };
  }],
  ['batchNorm channelsLast + backward [8, 24, 24, 36]', (n, t) => {
    const x = t(24, [8, 24, 24, 36], 1e3, 1), w = t(25, [36], 1, 0.5);
    const f = n.batchNorm(x, { training: true, weight: w, channelsLast: true });
    return { ...f, ...n.batchNormBackward(t(26, [8, 24, 24, 36]), x, { training: true, weight: w, saveMean: f.saveMean, saveInvstd: f.saveInvstd, channelsLast: true }) };
  }],
  ['modulated layerNorm (residual, gate, scale, shift) + backward [4, 128, 512], mod [4, 1, 512]', (n, t) => {
    const x = t(40, [4, 128, 512]), w = t(41, [512], 1, 0.5);
    const o = { normalizedShape: [512], weight: w, residual: t(42, [4, 128, 512]), gate: t(43, [4, 1, 512]), scale: t(44, [4, 1, 512], 0, 0.3), shift: t(45, [4, 1, 512]) };
    const f = n.layerNorm(x, o);
    return { ...f, ...n.layerNormBackward(t(46, [4, 128, 512]), x, f.mean, f.rstd, { ...o, dsum: t(47, [4, 128, 512]) }) };
  }],
  ['modulated groupNorm silu (scale, shift [N, C]) + backward [2, 64, 24, 24] G 16', (n, t) => {
    const x = t(48, [2, 64, 24, 24]), o = { numGroups: 16, scale: t(49, [2, 64], 0, 0.3), shift: t(50, [2, 64]), activation: 'silu' as const };
    const f = n.groupNorm(x, o);
    return { ...f, ...n.groupNormBackward(t(51, [2, 64, 24, 24]), x, f.mean, f.rstd, o) };
  }],
  ['weightNorm dims 0, 1, last + backward [40, 30, 50]', (n, t) => {
    const v = t(27, [40, 30, 50]);
    const out: Record<string, Tensor> = {};
    for (const [dim, gs] of [[0, [40, 1, 1]], [1, [1, 30, 1]], [2, [1, 1, 50]]] as const) {
      const g = t(28 + dim, [...gs], 1, 0.5);
      const f = n.weightNorm(v, g, { dim });
      const bw = n.weightNormBackward(t(31 + dim, [40, 30, 50]), v, g, f.norms, { dim });
      Object.assign(out, { [`w${dim}`]: f.w, [`norms${dim}`]: f.norms, [`dv${dim}`]: bw.dv, [`dg${dim}`]: bw.dg });
    }
    return out;
  }],
];

/**
 * The catalogue's wasm examples of every op (test/catalog.js, also the e2e wasm page's), each a
 * backward with its forward where it has one: a new op is covered here by its catalogue entry.
 * Inputs, the saved forward outputs and the outputs are all returned (and so compared).
 */
for (const c of examples('wasm')) {
  const name = `${c.op} ${c.dir} [${c.shape.join(', ')}] ${c.dtype ?? 'float32'} ${JSON.stringify(c.opts ?? {})} (catalogue)`;
  CASES.push([name, (n) => {
    const s = spec(c, c.dir, undefined);
    const rng = catalogRng(hashSeed(name));
    const T: Record<string, Tensor> = {};
    for (const i of s.inputs) T[i.name] = n.tensor(draw(rng, numel(i.shape), i), i.shape, i.dtype);
    const derived = s.derive ? s.derive(n, T) : {};
    const out = s.call(n, { ...T, ...derived } as Record<string, Tensor>);
    const r: Record<string, Tensor | null | undefined> = {};
    for (const [k, t] of Object.entries(T)) r[`in:${k}`] = t;
    for (const [k, t] of Object.entries(derived)) r[`saved:${k}`] = t;
    for (const [k, t] of Object.entries(out)) r[k] = t;
    return r;
  }]);
}

async function outputs(n: Norms, run: Case[1]): Promise<Record<string, Float32Array>> {
  const made: Tensor[] = [];
  const t = (seed: number, shape: number[], mean = 0, std = 1): Tensor => {
    const x = n.tensor(makeRng(seed).fill(shape.reduce((a, b) => a * b, 1), mean, std), shape);
    made.push(x);
    return x;
  };
  const o = run(n, t);
  const r: Record<string, Float32Array> = {};
  for (const [k, v] of Object.entries(o)) if (v) r[k] = await n.read(v);
  for (const v of Object.values(o)) v?.destroy();
  for (const x of made) x.destroy();
  return r;
}

const bitsOf = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

describe('threads: the same bits for one and two threads', () => {
  for (const [name, run] of CASES) {
    it(name, async () => {
      const heap = [one, two].map((n) => n._wasm!.m.heap.usedBytes);
      const a = await outputs(one, run);
      const b = await outputs(two, run);
      expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
      for (const k of Object.keys(a)) {
        const diff = bitsOf(a[k]!).findIndex((v, i) => v !== bitsOf(b[k]!)[i]);
        expect(diff, `${name}: ${k} first differing element (1 vs 2 threads)`).toBe(-1);
      }
      // Every temporary and output went back to the heap.
      expect([one, two].map((n) => n._wasm!.m.heap.usedBytes), 'heap bytes in use after the case').toEqual(heap);
    });
  }
  it('the two-thread instance really ran on two threads', () => {
    expect(two._wasm!.m.build).toBe('simd-threads');
    expect(two._wasm!.m.threads).toBe(2);
    expect(two.note).toContain('up to 2 threads');
  });
});

describe('scalar and SIMD128 builds', () => {
  for (const [name, run] of CASES) {
    it(`${name}: within 1e-5 of each other`, async () => {
      const a = await outputs(one, run);
      const b = await outputs(scalar, run);
      for (const k of Object.keys(a)) expect(relativeL2(b[k]!, a[k]!), `${name}: ${k}`).toBeLessThanOrEqual(1e-5);
    });
  }
});

describe('float16 storage', () => {
  it('rounds like the host (ties to even, subnormals, ±Inf past 65520, NaN) over 2^20 bit patterns and every half ± 1 ulp', async () => {
    const r = makeRng(77);
    const n = 1 << 20;
    const bits = new Uint32Array(n + 3 * 65536);
    for (let i = 0; i < n; i++) bits[i] = Math.floor(r.uniform() * 2 ** 32) >>> 0;
    // Every half, and the float32 values either side of it (ties and near-ties).
    const f = new Float32Array(1), u = new Uint32Array(f.buffer);
    for (let h = 0; h < 65536; h++) {
      const e = (h >>> 10) & 0x1f, m = h & 0x3ff, s = h & 0x8000 ? -1 : 1;
      f[0] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1024 + m) * 2 ** (e - 25);
      bits[n + 3 * h] = u[0]! + 4096;
      bits[n + 3 * h + 1] = u[0]! + 4095;
      bits[n + 3 * h + 2] = u[0]! - 4096;
    }
    const data = new Float32Array(bits.buffer);
    for (const N of [one, scalar]) {
      const t = N.tensor(data, [data.length], 'float16');
      const got = await N.read(t);
      t.destroy();
      const want = roundToHalf(data);
      const bad = got.findIndex((g, i) => !(Object.is(g, want[i]) || (Number.isNaN(g) && Number.isNaN(want[i]!))));
      expect(bad, bad >= 0 ? `bits 0x${bits[bad]!.toString(16)}: got ${got[bad]}, want ${want[bad]}` : '').toBe(-1);
    }
  });
});

describe('memory', () => {
  it('grows past the initial pages for a 48 MiB tensor and reuses the space after destroy', async () => {
    const n = await wasmNorms();
    const rows = 12288, K = 1024;
    const x = n.tensor(makeRng(5).fill(rows * K, 0.5, 2), [rows, K]);
    const o = n.layerNorm(x, { normalizedShape: [K] });
    const y = await n.read(o.y);
    expect(y.length).toBe(rows * K);
    expect(Number.isFinite(y[rows * K - 1]!)).toBe(true);
    const extent = n._wasm!.m.heap.extent;
    for (const t of [x, o.y, o.mean, o.rstd]) t.destroy();
    expect(n.stats()).toEqual({ liveBuffers: 0, liveBytes: 0 });
    const x2 = n.tensor(new Float32Array(rows * K), [rows, K]);
    expect(n._wasm!.m.heap.extent, 'a tensor of the same size fits where the first ones were').toBeLessThanOrEqual(extent);
    x2.destroy();
    n.destroy();
  });
});

describe('memory growth inside an op', () => {
  it('a modulated backward whose temporaries grow the memory (views on it are taken after every allocation)', async () => {
    const n = await wasmNorms();
    const cpu = await createNorms({ backend: 'cpu' });
    const shape = [2, 512, 1536], m = [2, 1, 1536];
    const h = (seed: number, s: number[], std = 1) => makeRng(seed).fill(s.reduce((a, b) => a * b, 1), 0, std);
    const run = (N: Norms) => {
      const T = (seed: number, s: number[], std = 1) => N.tensor(h(seed, s, std), s);
      const x = T(70, shape);
      const o = { normalizedShape: [1536], weight: T(71, [1536]), residual: T(72, shape), gate: T(73, m), scale: T(74, m, 0.3), shift: T(75, m) };
      const f = N.layerNorm(x, o);
      return N.layerNormBackward(T(76, shape), x, f.mean, f.rstd, { ...o, dsum: T(77, shape) });
    };
    const before = n._wasm!.m.memory.buffer.byteLength;
    const got = run(n);
    expect(n._wasm!.m.memory.buffer.byteLength, 'the memory grew during the ops').toBeGreaterThan(before);
    const want = run(cpu);
    for (const k of ['dx', 'dweight', 'dscale', 'dshift', 'dgate', 'dresidual'] as const) {
      expect(relativeL2(await n.read(got[k]!), await cpu.read(want[k]!)), k).toBeLessThanOrEqual(1e-4);
    }
    n.destroy();
    cpu.destroy();
  });
});

describe("backend selection ('auto')", () => {
  it('a CPU-emulated adapter (SwiftShader) goes to wasm; a shared device, a forced kernel class or backend webgpu keep WebGPU', async () => {
    const gpu = create([]);
    const auto = await createNorms({ gpu });
    expect(auto.backend).toBe('wasm');
    expect(auto.note).toMatch(/CPU-emulated; using the wasm backend/);
    auto.destroy();
    const forced = await createNorms({ gpu, backend: 'webgpu' });
    expect(forced.backend).toBe('webgpu');
    const shared = await createNorms({ device: forced.device! });
    expect(shared.backend).toBe('webgpu');
    const cls = await createNorms({ gpu, adapterClass: 'cpu' });
    expect(cls.backend).toBe('webgpu');
    for (const n of [shared, cls, forced]) n.destroy();
  });
  it('no adapter goes to wasm (the float64 reference only on request)', async () => {
    const none = await createNorms({ gpu: { requestAdapter: async () => null } as unknown as GPU });
    expect(none.backend).toBe('wasm');
    expect(none.note).toMatch(/^no WebGPU adapter found; using the wasm backend/);
    none.destroy();
    const cpu = await createNorms({ backend: 'cpu' });
    expect(cpu.backend).toBe('cpu');
    cpu.destroy();
  });
});

describe('options', () => {
  it('threads, threadMinBytes and simd are checked', async () => {
    for (const [o, arg] of [[{ threads: 0 }, 'threads'], [{ threads: 1.5 }, 'threads'], [{ threads: 'all' }, 'threads'], [{ threadMinBytes: -1 }, 'threadMinBytes'], [{ simd: 'no' }, 'simd']] as const) {
      const e = await createNorms({ backend: 'wasm', ...(o as object) }).then(() => null, (err: unknown) => err);
      expect(e, JSON.stringify(o)).toBeInstanceOf(ValueError);
      expect((e as ValueError).argument).toBe(arg);
    }
    const n = await createNorms({ backend: 'wasm', threads: 1 });
    expect(n.note).toMatch(/^wasm backend requested; wasm build simd, one thread$/);
    n.destroy();
  });
});

describe('sum_partials: float64 column sums of float32 partials, the same bits as the sequential loop', () => {
  // The weight and bias gradients of the row backwards: SIMD builds sum 8, then 4 columns at a
  // time in pairs of float64 lanes; each column must be summed b = 0, 1, … in float64 and rounded
  // once, whatever range of columns a thread gets.
  for (const [B, K] of [[1, 4101], [37, 45], [130, 771], [3, 3]] as const) {
    it(`[${B}, ${K}]: SIMD, scalar and two-thread builds give Math.fround of the sequential float64 sum`, () => {
      const r = makeRng(95 + K);
      const src = r.fill(B * K);
      // Terms whose float32 sum would lose them: large and tiny values side by side.
      for (let i = 0; i < src.length; i += 7) src[i] = src[i]! * (i % 2 ? 1e30 : 1e-30);
      const want = new Float32Array(K);
      for (let i = 0; i < K; i++) {
        let t = 0;
        for (let b = 0; b < B; b++) t += src[b * K + i]!;
        want[i] = t;
      }
      for (const n of [one, scalar, two]) {
        const m = n._wasm!.m;
        const sp = m.heap.alloc(B * K * 4), dp = m.heap.alloc(K * 4);
        m.f32(sp, B * K).set(src);
        m.f32(dp, K).fill(NaN);
        m.run('sum_partials', [sp, B, K, dp], K, B * K);
        const got = Float32Array.from(m.f32(dp, K));
        m.heap.release(sp);
        m.heap.release(dp);
        const diff = bitsOf(got).findIndex((v, i) => v !== bitsOf(want)[i]);
        expect(diff, `[${B}, ${K}] ${m.build}: first column differing from the sequential sum`).toBe(-1);
      }
    });
  }
});

describe('short rows (4 to 63 elements: the float64 pairs-of-lanes loop of SIMD builds) against the float64 reference', () => {
  // Every length whose quads, pairs of quads and tails differ; rows at offsets, constant, with an
  // outlier, at 1e30 and 1e-30, with ±Inf and NaN.
  const Ks = [3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 24, 31, 33, 47, 63, 64];
  const rowKinds = (r: ReturnType<typeof makeRng>, K: number): Float32Array[] => [
    r.fill(K, 1e4, 1),
    r.fill(K, -3, 2),
    new Float32Array(K).fill(2.5),
    Float32Array.from(r.fill(K), (v, i) => (i === K - 1 ? 5e3 : v)),
    r.fill(K, 0, 1e30),
    r.fill(K, 1e-30, 1e-31),
    Float32Array.from(r.fill(K), (v, i) => (i === K >> 1 ? Infinity : v)),
    Float32Array.from(r.fill(K), (v, i) => (i === 1 ? NaN : v)),
  ];
  for (const K of Ks) {
    it(`K = ${K}: layerNorm, rmsNorm and l2Normalize rows, y and statistics within 1e-6 per row (NaN where the reference has NaN)`, async () => {
      const cpu = await createNorms({ backend: 'cpu' });
      const rows = rowKinds(makeRng(97 + K), K);
      const R = rows.length;
      const data = new Float32Array(R * K);
      rows.forEach((row, j) => data.set(row, j * K));
      const w = makeRng(98).fill(K, 1, 0.5), b = makeRng(99).fill(K);
      const ops = (n: Norms) => {
        const x = n.tensor(data, [R, K]), wt = n.tensor(w, [K]), bt = n.tensor(b, [K]);
        const ln = n.layerNorm(x, { normalizedShape: [K], weight: wt, bias: bt });
        const rms = n.rmsNorm(x, { normalizedShape: [K], weight: wt });
        const l2 = n.l2Normalize(x, { dim: -1 });
        return { lnY: ln.y, lnMean: ln.mean, lnRstd: ln.rstd, rmsY: rms.y, rmsRstd: rms.rstd, l2Y: l2.y, l2Norms: l2.norms };
      };
      const ref = ops(cpu);
      const bad: string[] = [];
      for (const n of [one, scalar]) {
        const got = ops(n);
        for (const [k, t] of Object.entries(got)) {
          const g = await n.read(t!), want = await cpu.read(ref[k as keyof typeof ref]!);
          const per = g.length / R;
          for (let j = 0; j < R; j++) {
            const gs = g.subarray(j * per, (j + 1) * per), ws = want.subarray(j * per, (j + 1) * per);
            const nanOk = gs.every((v, i) => Number.isNaN(v) === Number.isNaN(ws[i]!));
            const fin = ws.every((v) => Number.isFinite(v)) && gs.every((v) => Number.isFinite(v));
            const err = fin ? relativeL2(gs, ws) : 0;
            const same = fin || gs.every((v, i) => Object.is(v, ws[i]!) || (Number.isNaN(v) && Number.isNaN(ws[i]!)) || Math.abs(v - ws[i]!) <= 1e-6 * Math.abs(ws[i]!));
            if (!nanOk || !(err <= 1e-6) || !same) bad.push(`${n._wasm!.m.build} K=${K} ${k} row ${j}: err ${err}, got ${Array.from(gs.slice(0, 4))}, want ${Array.from(ws.slice(0, 4))}`);
          }
        }
      }
      cpu.destroy();
      expect(bad).toEqual([]);
    });
  }
});

describe('group and instance norm rows of whole blocks with a weight per channel (planes a multiple of 2048)', () => {
  // Every row (group) gets its own offset and spread, so a row normalized with another's
  // statistics, or a channel with another's weight, shows (a row pipeline that sums row r + 1
  // while it normalizes row r, as layer norm's, was tried here for these rows and measured
  // slower: 0.8x).
  const cases: [string, number[], number, 'silu' | undefined][] = [
    ['groupNorm [3, 6, 32, 64] G 2 (planes of 2048, 3 channels a row)', [3, 6, 32, 64], 2, undefined],
    ['groupNorm [2, 8, 64, 64] G 4 SiLU (planes of 4096)', [2, 8, 64, 64], 4, 'silu'],
    ['instanceNorm [2, 5, 64, 32] (rows of 2048)', [2, 5, 64, 32], 0, undefined],
  ];
  for (const [name, shape, G, activation] of cases) {
    it(`${name}: against the float64 reference, SIMD and scalar builds`, async () => {
      const cpu = await createNorms({ backend: 'cpu' });
      const [N, C] = shape as [number, number];
      const S = shape[2]! * shape[3]!, rows = G ? N * G : N * C, K = (N * C * S) / rows;
      const r = makeRng(93);
      const data = new Float32Array(N * C * S);
      for (let j = 0; j < rows; j++) data.set(r.fill(K, 10 * (j - 2) + j * j, 0.5 + j), j * K);
      data[5] = 40; // an outlier in the first row
      const wd = r.fill(C, 1, 0.5), bd = r.fill(C, 0, 1);
      const run = (n: Norms) => {
        const x = n.tensor(data, shape), weight = n.tensor(wd, [C]), bias = n.tensor(bd, [C]);
        return G ? n.groupNorm(x, { numGroups: G, weight, bias, activation }) : n.instanceNorm(x, { weight, bias });
      };
      const ref = run(cpu);
      for (const n of [one, scalar]) {
        const o = run(n);
        for (const k of ['y', 'mean', 'rstd'] as const) {
          expect(relativeL2(await n.read(o[k]), await cpu.read(ref[k])), `${name}: ${k} (${n._wasm!.m.build})`).toBeLessThanOrEqual(1e-5);
        }
      }
      cpu.destroy();
    });
  }
});

describe('block statistics: the one-pass shift is kept only when it is safe', () => {
  // The one-pass sums are shifted by a block's first element; an outlier there, a row of equal
  // values but one, or a large offset with a tiny spread must all take the two-pass path.
  const K = 2048 + 300;
  const rows: [string, (r: ReturnType<typeof makeRng>) => Float32Array][] = [
    ['outlier first in each block (1e4 and 3e3 in N(0, 1))', (r) => { const d = r.fill(K, 0, 1); d[0] = 1e4; d[2048] = 3e3; return d; }],
    ['equal values but one', () => { const d = new Float32Array(K).fill(3.25); d[K - 1] = 3.5; return d; }],
    ['offset 1e5, spread 1e-2', (r) => r.fill(K, 1e5, 1e-2)],
    ['1e30-sized values', (r) => r.fill(K, 0, 1e30)],
    ['1e-30-sized values, eps 0', (r) => r.fill(K, 1e-30, 1e-31)],
  ];
  for (const [name, make] of rows) {
    it(name, async () => {
      const cpu = await createNorms({ backend: 'cpu' });
      const data = make(makeRng(91));
      const eps = name.includes('eps 0') ? 0 : 1e-5;
      for (const n of [one, scalar, cpu]) expect(n.backend).not.toBe('webgpu');
      const ref = cpu.layerNorm(cpu.tensor(data, [1, K]), { normalizedShape: [K], eps });
      for (const n of [one, scalar]) {
        const o = n.layerNorm(n.tensor(data, [1, K]), { normalizedShape: [K], eps });
        for (const k of ['y', 'mean', 'rstd'] as const) {
          expect(relativeL2(await n.read(o[k]), await cpu.read(ref[k])), `${name}: ${k} (${n._wasm!.m.build})`).toBeLessThanOrEqual(1e-4);
        }
        // RMS norm's sum of squares on the same row (flushed or overflowing squares summed again in float64).
        const rr = cpu.rmsNorm(cpu.tensor(data, [1, K]), { normalizedShape: [K], eps });
        const ro = n.rmsNorm(n.tensor(data, [1, K]), { normalizedShape: [K], eps });
        for (const k of ['y', 'rstd'] as const) {
          expect(relativeL2(await n.read(ro[k]), await cpu.read(rr[k])), `${name}: rmsNorm ${k} (${n._wasm!.m.build})`).toBeLessThanOrEqual(1e-4);
        }
      }
      cpu.destroy();
    });
  }
});
