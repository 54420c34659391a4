/**
 * The two float16 paths: native (each u32 word of two halves read and written as a WGSL
 * vec2<f16>, devices with 'shader-f16') and packed (unpack2x16float / pack2x16float, any device),
 * and which one ran.
 *
 * 1. Selection and reporting: `norms.float16` and each float16 op's profile record say the path;
 *    'auto' is native exactly where the device has 'shader-f16'; `float16: 'packed'` forces the
 *    packed path; `float16: 'native'` on a device without the feature is a ValueError.
 * 2. IEEE-exact loads and stores on every path this adapter has, against the float64 CPU
 *    reference rounded to half, bit for bit (element by element, not an L2 bound):
 *    - loads: batch-norm eval with running mean 0, running var 1 and eps 0 is the identity
 *      (y = x, dx = dy; an rstd a few ulps off 1 still rounds back to the same half), fed NaN, ±Inf,
 *      ±65504, subnormal halves and seeded normals, over [3, 5, 7] (105 elements, channel runs of
 *      7 starting at odd offsets);
 *    - stores: layer norm with weight 0 and float32 bias b over odd rows ([5, 13]: every row
 *      after the first starts mid-word) gives y = half(b) exactly, for b = 65504, 65519, 65520,
 *      70000, -65520, ties to even in the normal and subnormal ranges, values that round to
 *      subnormals and to zero, ±Inf, NaN;
 *    - the fused residual sum rounded to half (x + r = 65519, 65520, ties), stored and normalized.
 *    NaN outputs must carry a NaN the kernel wrote (0x7e00 / 0xfe00), not the poison (0xffff).
 * Every GPU instance poisons its outputs (gpuNorms). The float16 parity suite
 * (float16.test.ts) runs once per path too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNorms, ValueError, type Norms, type Tensor } from '../src/index.ts';
import { __f64 } from '../src/cpu/reference.ts';
import { f16BitsToF32, f32ToF16Bits, roundToHalf } from '../src/half.ts';
import { bindingsWGSL, type BindingDecl } from '../src/device/wgsl.ts';
import { gpuNorms, float16Paths } from './util/gpu.ts';
import { makeRng } from './util/rng.ts';

const base = await gpuNorms();
const HAS_F16 = base.device!.features.has('shader-f16');
const PATHS = float16Paths(base);
base.destroy();

const h64 = (data: Float32Array | Float64Array, shape: readonly number[]) => ({ data, shape: [...shape] });

/** A float16 tensor's raw half bits (its buffer copied to a mappable one). */
async function halfBits(n: Norms, t: Tensor): Promise<Uint16Array> {
  await n.read(t); // the op has run
  const d = n.device!;
  const src = t.buffer!;
  const bytes = Math.ceil(t.shape.reduce((a, b) => a * b, 1) / 2) * 4;
  const rb = d.createBuffer({ size: bytes, usage: 0x0001 | 0x0008 }); // MAP_READ | COPY_DST
  const enc = d.createCommandEncoder();
  enc.copyBufferToBuffer(src, 0, rb, 0, bytes);
  d.queue.submit([enc.finish()]);
  await rb.mapAsync(0x0001);
  const out = new Uint16Array(rb.getMappedRange().slice(0));
  rb.destroy();
  return out;
}

const hex = (h: number) => `0x${h.toString(16).padStart(4, '0')}`;

/**
 * Every element's half bits equal the expected value rounded to half (NaN: any NaN the kernel
 * wrote, 0x7e00 or 0xfe00, never the poison 0xffff; ±0 are equal). Returns the mismatches.
 */
function bitExact(name: string, got: Uint16Array, want: ArrayLike<number>): string[] {
  const bad: string[] = [];
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = f32ToF16Bits(want[i]!);
    const ok = Number.isNaN(want[i]!) ? g === 0x7e00 || g === 0xfe00 : g === w || ((g | w) & 0x7fff) === 0;
    if (!ok) bad.push(`  ${name}[${i}]: got ${hex(g)} (${f16BitsToF32(g)}), expected ${hex(w)} (${f16BitsToF32(w)}) from ${want[i]}`);
  }
  return bad;
}

describe('float16 path selection and reporting', () => {
  it('the accessors of each path: native converts words as vec2<f16>, packed with (un)pack2x16float; same u32 words', () => {
    const decls: BindingDecl[] = [
      { name: 'X', access: 'read', dtype: 'float16' },
      { name: 'Y', access: 'read_write', dtype: 'float16' },
    ];
    const accessors = (src: string) => src.split('\n').filter((l) => /^fn [XY]_/.test(l)).join('\n');
    for (const [aligned, window] of [[false, false], [true, false], [false, true]]) {
      const nat = bindingsWGSL(decls, aligned, window, 'native');
      const pk = bindingsWGSL(decls, aligned, window, 'packed');
      for (const src of [nat, pk]) expect(src).toMatch(/var<storage, read> X: array<u32>;[\s\S]*var<storage, read_write> Y: array<u32>;/);
      expect(accessors(nat)).toMatch(/bitcast<vec2<f16>>/);
      expect(accessors(nat)).toMatch(/to_half2/);
      expect(accessors(nat)).not.toMatch(/unpack2x16float|pack_half2/);
      expect(accessors(pk)).not.toMatch(/f16/);
      expect(pk).not.toMatch(/fn to_half/);
    }
  });


  it(`'auto' is native exactly where the device has shader-f16 (this adapter: ${HAS_F16 ? 'has it' : 'has not'}); norms.float16 and the profile say so`, async () => {
    const n = await gpuNorms({ profile: true, float16: 'auto' });
    try {
      const want = HAS_F16 ? 'native' : 'packed';
      expect(n.float16).toBe(want);
      const x = n.tensor(makeRng(1).fill(6), [2, 3], 'float16');
      const x32 = n.tensor(makeRng(2).fill(6), [2, 3]);
      const a = n.layerNorm(x, { normalizedShape: [3] });
      const b = n.layerNorm(x32, { normalizedShape: [3] });
      await n.read(a.y);
      await n.read(b.y);
      const recs = await n.profile();
      expect(recs.map((r) => [r.op, r.float16])).toEqual([
        ['layerNorm', want],
        ['layerNorm', undefined], // float32 only: no float16 fact
      ]);
      for (const t of [x, x32, a.y, a.mean, a.rstd, b.y, b.mean, b.rstd]) t.destroy();
    } finally {
      n.destroy();
    }
  });

  it("float16: 'packed' forces the packed path; 'native' needs shader-f16; bad values and the cpu backend", async () => {
    const p = await gpuNorms({ profile: true, float16: 'packed' });
    try {
      expect(p.float16).toBe('packed');
      const x = p.tensor(makeRng(3).fill(5), [5], 'float16');
      const r = p.rmsNorm(x, { normalizedShape: [5] });
      await p.read(r.y);
      expect((await p.profile()).map((q) => q.float16)).toEqual(['packed']);
    } finally {
      p.destroy();
    }
    if (HAS_F16) {
      const nat = await gpuNorms({ float16: 'native' });
      expect(nat.float16).toBe('native');
      nat.destroy();
    } else {
      await expect(gpuNorms({ float16: 'native' })).rejects.toThrow(ValueError);
      await expect(gpuNorms({ float16: 'native' })).rejects.toThrow(/shader-f16/);
    }
    await expect(createNorms({ backend: 'cpu', float16: 'half' as never })).rejects.toThrow(/float16: expected 'auto', 'native' or 'packed'/);
    const c = await createNorms({ backend: 'cpu', float16: 'packed' });
    expect(c.float16).toBeNull();
    c.destroy();
  });
});

for (const path of PATHS) {
  describe(`float16 ${path}: IEEE-exact loads and stores`, () => {
    let n: Norms;
    beforeAll(async () => {
      n = await gpuNorms({ float16: path, profile: true });
      expect(n.float16).toBe(path);
    });
    afterAll(() => n?.destroy());

    /** The records since the last call: every op ran on `path`. */
    async function ranOn(): Promise<void> {
      const recs = await n.profile();
      expect(recs.length).toBeGreaterThan(0);
      for (const r of recs) expect(`${r.op}: ${r.float16}`).toBe(`${r.op}: ${path}`);
    }

    it('loads: batch-norm eval as the identity over NaN, ±Inf, ±65504, subnormal halves (y = x, dx = dy), odd channel runs', async () => {
      const shape = [3, 5, 7];
      const N = 105;
      const rng = makeRng(19_301);
      const special = [NaN, Infinity, -Infinity, 65504, -65504, 2 ** -24, -(2 ** -24), 3 * 2 ** -24, 1023 * 2 ** -24, 2 ** -14, -(2 ** -14) + 2 ** -24, 0, -0, 65472, 1 + 2 ** -10];
      const x = roundToHalf(rng.fill(N, 0, 100));
      const dy = roundToHalf(rng.fill(N, 0, 1e-3)); // many subnormal halves (below 6.1e-5)
      // Special values at both halves of words, at the ends of channel runs, and the last element.
      special.forEach((v, k) => {
        x[(k * 7 + 3) % N] = v;
        x[(k * 11 + 6) % N] = v;
        dy[(k * 13 + 1) % N] = v;
      });
      x[N - 1] = NaN;
      dy[N - 1] = -Infinity;
      const ones = new Float32Array(5).fill(1);
      const rm = n.tensor(new Float32Array(5), [5]);
      const rv = n.tensor(ones, [5]);
      const xt = n.tensor(x, shape, 'float16');
      const dyt = n.tensor(dy, shape, 'float16');
      const f = n.batchNorm(xt, { training: false, runningMean: rm, runningVar: rv, eps: 0 });
      const b = n.batchNormBackward(dyt, xt, { training: false, runningMean: rm, runningVar: rv, eps: 0 });
      const yBits = await halfBits(n, f.y);
      const dxBits = await halfBits(n, b.dx);
      await ranOn();
      // The float64 reference: the same identity.
      const r64 = { runningMean: h64(new Float64Array(5), [5]), runningVar: h64(Float64Array.from(ones), [5]), weight: null, bias: null, eps: 0 };
      const ref = __f64.batchNorm(h64(x, shape), { ...r64, training: false, momentum: 0.1, numBatchesTracked: 0 });
      const refB = __f64.batchNormBackward(h64(dy, shape), h64(x, shape), { ...r64, training: false, saveMean: null, saveInvstd: null });
      const bad = [...bitExact('y', yBits, ref.y.data), ...bitExact('dx', dxBits, refB.dx.data)];
      // And the reference is the identity on these halves.
      bad.push(...bitExact('y vs x', yBits, x), ...bitExact('dx vs dy', dxBits, dy));
      for (const t of [rm, rv, xt, dyt, f.y, f.saveMean, f.saveInvstd, b.dx]) t.destroy();
      expect(bad.slice(0, 20).join('\n')).toBe('');
    });

    it('stores: layer norm [5, 13], weight 0, float32 bias of overflow, ties and subnormals: y = half(bias) bit for bit', async () => {
      const K = 13;
      const bias = Float32Array.from([
        65504, 65519, 65520, 70000, -65520, -65519.5, // 65504, 65504, Inf, Inf, -Inf, -65504
        1 + 2 ** -11, // tie: 1 (even)
        1 + 3 * 2 ** -11, // tie: 1 + 2^-9 (even)
        3 * 2 ** -25, // subnormal tie: 2 * 2^-24 (even)
        2 ** -25, // tie at zero: 0
        2 ** -25 * 1.5, // 2^-24
        -Infinity,
        NaN,
      ]);
      const xs = makeRng(19_302).fill(5 * K, 3, 2);
      const xt = n.tensor(xs, [5, K], 'float16');
      const w = n.tensor(new Float32Array(K), [K]);
      const bt = n.tensor(bias, [K]);
      const f = n.layerNorm(xt, { normalizedShape: [K], weight: w, bias: bt });
      const yBits = await halfBits(n, f.y);
      await ranOn();
      const ref = __f64.layerNorm(h64(roundToHalf(xs), [5, K]), { normalizedShape: [K], weight: h64(new Float64Array(K), [K]), bias: h64(Float64Array.from(bias), [K]), eps: 1e-5 });
      const bad = bitExact('y', yBits, ref.y.data);
      const spelled = [0x7bff, 0x7bff, 0x7c00, 0x7c00, 0xfc00, 0xfbff, 0x3c00, 0x3c02, 0x0002, 0x0000, 0x0001, 0xfc00];
      for (let r = 0; r < 5; r++) spelled.forEach((h, k) => (yBits[r * K + k] === h ? null : bad.push(`  y[${r}, ${k}] = ${hex(yBits[r * K + k]!)}, expected ${hex(h)}`)));
      for (const t of [xt, w, bt, f.y, f.mean, f.rstd]) t.destroy();
      expect(bad.slice(0, 20).join('\n')).toBe('');
    });

    it('fused residual: the sum x + r rounded to half (65519 → 65504, 65520 → Inf, ties) is stored and normalized', async () => {
      const K = 7;
      // Row 0: finite sums with ties; row 1: a sum that overflows (its y is NaN); row 2: seeded.
      const x = Float32Array.from([65504, 1, 1, 2 ** -24, -65504, 0.5, 3, 65504, 1, 2, 3, 4, 5, 6, ...makeRng(19_303).fill(K)]);
      const r = Float32Array.from([15, 2 ** -11, 3 * 2 ** -11, 2 ** -24, 8, -0.25, -1, 16, 0, 0, 0, 0, 0, 0, ...makeRng(19_304).fill(K)]);
      const xh = roundToHalf(x);
      const rh = roundToHalf(r);
      const xt = n.tensor(xh, [3, K], 'float16');
      const rt = n.tensor(rh, [3, K], 'float16');
      const f = n.layerNorm(xt, { normalizedShape: [K], residual: rt });
      const sBits = await halfBits(n, f.sum!);
      const y = await n.read(f.y);
      await ranOn();
      const s = roundToHalf(Float32Array.from(xh, (v, i) => v + rh[i]!));
      const bad = bitExact('sum', sBits, s);
      for (const [i, h] of [[0, 0x7bff], [1, 0x3c00], [2, 0x3c02], [3, 0x0002], [4, 0xfbff], [7, 0x7c00]] as const) {
        if (sBits[i] !== h) bad.push(`  sum[${i}] = ${hex(sBits[i]!)}, expected ${hex(h)}`);
      }
      const ref = __f64.layerNorm(h64(s, [3, K]), { normalizedShape: [K], weight: null, bias: null, eps: 1e-5 });
      for (let i = 0; i < 3 * K; i++) {
        const g = y[i]!, e = Math.fround(ref.y.data[i]!);
        const ulp = 2 ** (Math.floor(Math.log2(Math.max(Math.abs(e), 2 ** -14))) - 10);
        if (Number.isNaN(e) ? !Number.isNaN(g) : !(Math.abs(g - e) <= ulp)) bad.push(`  y[${i}] = ${g}, expected ${e} within one half ulp`);
      }
      for (const t of [xt, rt, f.y, f.mean, f.rstd, f.sum!]) t.destroy();
      expect(bad.slice(0, 20).join('\n')).toBe('');
    });
  });
}
