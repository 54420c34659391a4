/**
 * Tensors larger than one storage binding, processed in bound ranges (src/kernels/window.ts).
 *
 * SwiftShader's binding limit equals its buffer limit, so the tests cap the binding size with
 * `maxBindingBytes` (down to a few KiB) and run every op, forward and backward, float32 and
 * float16, on shapes that exercise each way of cutting the work: rows and groups that span many
 * windows, strided batch-norm channels (chunk-major order, and chunks within runs when one
 * sample of all channels is past the window), layer-norm weight columns, group-norm per-channel
 * sums in blocks of rows, weight norm along every dim. Every output against the float64 CPU
 * reference (outputs NaN-poisoned first), and the op must really have been split: the number of
 * windowed dispatches is counted. Each case runs with the work split as on this CPU adapter and
 * as on a discrete GPU.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNorms, relativeL2, ValueError, type DType, type Norms } from '../src/index.ts';
import { countWindowed, gpuNorms } from './util/gpu.ts';
import { failIf, fmt, parityReport, randn, uniform, type HostIn, type RefResult } from './util/parity.ts';

let base: Norms;
let cpu: Norms;
const capped = new Map<string, Norms>();
beforeAll(async () => {
  base = await gpuNorms();
  cpu = await createNorms({ backend: 'cpu' });
});
afterAll(() => {
  for (const n of capped.values()) n.destroy();
  base?.destroy();
  cpu?.destroy();
});

/**
 * How the work is split: as on this CPU adapter, or (gpuSplit) as on a discrete GPU (many short
 * chunks per group), which is what a browser's 128 MiB-limited GPU device gets.
 */
type Split = 'cpu split' | 'gpu split';
const SPLITS: Split[] = ['cpu split', 'gpu split'];

/** A webgpu Norms on the shared device whose storage bindings are capped at `bytes`. */
async function withLimit(bytes: number, split: Split): Promise<Norms> {
  const key = `${bytes}|${split}`;
  let n = capped.get(key);
  if (!n) {
    n = await createNorms({ backend: 'webgpu', device: base.device!, poisonOutputs: true, maxBindingBytes: bytes, adapterClass: split === 'gpu split' ? 'gpu' : 'auto' });
    capped.set(key, n);
  }
  return n;
}

const as = (h: HostIn, dtype: DType): HostIn => ({ ...h, dtype });
const f32 = (data: Float32Array, shape: number[]): HostIn => ({ data, shape });
const tolOf = (dtype: DType) => (dtype === 'float16' ? 2e-3 : 1e-4);

/** Runs `body` with the windowed-dispatch counter on; fails unless something was split. */
async function split(n: Norms, label: string, body: () => Promise<string[]>): Promise<void> {
  const c = countWindowed(n);
  let failures: string[];
  try {
    failures = await body();
  } finally {
    c.stop();
  }
  failIf(failures);
  expect(c.get(), `${label}: windowed dispatches`).toBeGreaterThan(1);
}

describe('tensors past one storage binding (capped binding size)', () => {
  const rowCases: { shape: number[]; k: number; limit: number; dtype: DType; rms?: boolean; residual?: boolean; mean?: number }[] = [
    { shape: [300, 300], k: 1, limit: 8192, dtype: 'float32' },
    { shape: [300, 300], k: 1, limit: 8192, dtype: 'float16' },
    { shape: [7, 33, 17], k: 2, limit: 4096, dtype: 'float32', residual: true },
    { shape: [5, 5, 331], k: 1, limit: 4096, dtype: 'float16', residual: true },
    // Rows of many windows, the weight too (rows a multiple of 4: quads never straddle rows).
    { shape: [3, 70000], k: 1, limit: 16384, dtype: 'float32', mean: 1e4 },
    { shape: [3, 70000], k: 1, limit: 16384, dtype: 'float16' },
    // Rows not a multiple of 4 whose weight is past a binding: ranges end inside straddling quads.
    { shape: [3, 70001], k: 1, limit: 16384, dtype: 'float32' },
    { shape: [3, 70001], k: 1, limit: 16384, dtype: 'float16', residual: true },
    { shape: [7, 33, 17], k: 2, limit: 2048, dtype: 'float16' },
    { shape: [3, 70001], k: 1, limit: 524288, dtype: 'float32' },
    { shape: [4100, 3], k: 1, limit: 16384, dtype: 'float32' },
    { shape: [300, 300], k: 1, limit: 8192, dtype: 'float32', rms: true },
    // Many short rows: dweight/dbias in blocks of rows, added up.
    { shape: [20000, 3, 3], k: 2, limit: 16384, dtype: 'float32', rms: true },
    { shape: [9000, 20], k: 1, limit: 16384, dtype: 'float16' },
    // Row-fused blocks of 4 rows over bound ranges (the blocks a small part of a binding).
    { shape: [2001, 32], k: 1, limit: 16384, dtype: 'float32' },
    { shape: [1003, 64], k: 1, limit: 16384, dtype: 'float32', residual: true },
    { shape: [2, 50000], k: 1, limit: 8192, dtype: 'float16', rms: true, residual: true },
  ];
  for (const how of SPLITS) for (const c of rowCases) {
    const op = c.rms ? 'rmsNorm' : 'layerNorm';
    const label = `${op} ${fmt(c.shape)} normalized over the last ${c.k} ${c.dtype}${c.residual ? ' +residual' : ''}, bindings ≤ ${c.limit} B, ${how}`;
    it(label, async () => {
      const n = await withLimit(c.limit, how);
      const normalizedShape = c.shape.slice(-c.k);
      const x = as(randn(1, c.shape, c.mean ?? 0.3, 2), c.dtype);
      const residual = c.residual ? as(randn(2, c.shape, 0, 1), c.dtype) : null;
      const weight = as(randn(3, normalizedShape, 1, 0.5), c.dtype);
      const bias = c.rms ? null : as(randn(4, normalizedShape, 0, 0.5), c.dtype);
      const tol = tolOf(c.dtype);
      await split(n, label, async () => {
        const F = await parityReport(`${label}: forward`, n, cpu, { x, residual, weight, bias }, (m, t) =>
          c.rms
            ? m.rmsNorm(t.x!, { normalizedShape, weight: t.weight, residual: t.residual })
            : m.layerNorm(t.x!, { normalizedShape, weight: t.weight, bias: t.bias, residual: t.residual }),
          { tol },
        );
        const xs = c.residual ? as(f32(F.ref.sum!, c.shape), c.dtype) : x;
        const lead = c.shape.slice(0, -c.k);
        const ins = { dy: as(randn(5, c.shape, 0, 1), c.dtype), x: xs, mean: c.rms ? null : f32(F.ref.mean!, lead), rstd: f32(F.ref.rstd!, lead), weight, bias };
        const B = await parityReport(`${label}: backward`, n, cpu, ins, (m, t) =>
          c.rms
            ? m.rmsNormBackward(t.dy!, t.x!, t.rstd!, { normalizedShape, weight: t.weight })
            : m.layerNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, { normalizedShape, weight: t.weight, bias: t.bias }),
          { tol },
        );
        return [...F.failures, ...B.failures];
      });
    });
  }

  const bnCases: { shape: number[]; limit: number; dtype: DType; training: boolean; mean?: number }[] = [
    { shape: [8, 16, 30, 31], limit: 65536, dtype: 'float32', training: true, mean: 1e3 },
    { shape: [8, 16, 30, 31], limit: 16384, dtype: 'float16', training: true },
    { shape: [2, 3, 5001], limit: 4096, dtype: 'float32', training: true },
    { shape: [3, 2, 20003], limit: 16384, dtype: 'float16', training: true },
    { shape: [3000, 7], limit: 4096, dtype: 'float32', training: true },
    { shape: [4, 3000], limit: 4096, dtype: 'float32', training: true },
    // Channel slices past half of a 1 KiB binding: chunks within runs, thousands of partials per
    // channel, merged in blocks (partials of partials) before the statistics.
    { shape: [100, 2, 200], limit: 1024, dtype: 'float32', training: true },
    { shape: [64, 3, 300], limit: 1024, dtype: 'float16', training: true },
    { shape: [8, 16, 30, 31], limit: 16384, dtype: 'float32', training: false },
  ];
  for (const how of SPLITS) for (const c of bnCases) {
    const label = `batchNorm ${c.training ? 'training' : 'eval'} ${fmt(c.shape)} ${c.dtype}, bindings ≤ ${c.limit} B, ${how}`;
    it(label, async () => {
      const n = await withLimit(c.limit, how);
      const C = c.shape[1]!;
      const x = as(randn(11, c.shape, c.mean ?? 0.5, 2), c.dtype);
      const weight = as(randn(12, [C], 1, 0.5), c.dtype);
      const bias = as(randn(13, [C], 0, 0.5), c.dtype);
      const runningMean = randn(14, [C], 0, 1);
      const runningVar = uniform(15, [C], 0.5, 2);
      const tol = tolOf(c.dtype);
      await split(n, label, async () => {
        const F = await parityReport(`${label}: forward`, n, cpu, { x, weight, bias, runningMean, runningVar }, (m, t) =>
          m.batchNorm(t.x!, { training: c.training, weight: t.weight, bias: t.bias, runningMean: t.runningMean, runningVar: t.runningVar }),
          { tol, mutated: c.training ? ['runningMean', 'runningVar'] : [] },
        );
        const ref: RefResult = F.ref;
        const ins = {
          dy: as(randn(16, c.shape, 0, 1), c.dtype),
          x,
          weight,
          bias,
          runningMean,
          runningVar,
          saveMean: c.training ? f32(ref.saveMean!, [C]) : null,
          saveInvstd: c.training ? f32(ref.saveInvstd!, [C]) : null,
        };
        const B = await parityReport(`${label}: backward`, n, cpu, ins, (m, t) =>
          m.batchNormBackward(t.dy!, t.x!, { training: c.training, weight: t.weight, bias: t.bias, runningMean: t.runningMean, runningVar: t.runningVar, saveMean: t.saveMean, saveInvstd: t.saveInvstd }),
          { tol },
        );
        return [...F.failures, ...B.failures];
      });
    });
  }

  const gnCases: { shape: number[]; G: number | null; limit: number; dtype: DType }[] = [
    { shape: [4, 32, 20, 20], G: 8, limit: 8192, dtype: 'float32' },
    { shape: [4, 32, 20, 20], G: 8, limit: 8192, dtype: 'float16' },
    { shape: [2, 4, 30000], G: 2, limit: 16384, dtype: 'float32' },
    { shape: [600, 64, 3], G: 4, limit: 16384, dtype: 'float32' },
    { shape: [300, 40, 5], G: null, limit: 8192, dtype: 'float16' },
    // One group of 3000 channels: its per-channel sums in blocks of channels.
    { shape: [2, 3000, 3], G: 1, limit: 16384, dtype: 'float32' },
    // Per-channel weights past a binding, groups of few channels (row-fused on CPU adapters): one
    // invocation binds its group's weights only (random parity seed 26313, case 1177).
    { shape: [1, 246179, 1, 2], G: 1423, limit: 16384, dtype: 'float32' },
    { shape: [3, 6000, 2], G: 1000, limit: 4096, dtype: 'float16' },
    { shape: [2, 5000, 3], G: null, limit: 4096, dtype: 'float32' },
  ];
  for (const how of SPLITS) for (const c of gnCases) {
    const op = c.G === null ? 'instanceNorm' : 'groupNorm';
    const label = `${op} ${fmt(c.shape)}${c.G ? ` G=${c.G}` : ''} ${c.dtype}, bindings ≤ ${c.limit} B, ${how}`;
    it(label, async () => {
      const n = await withLimit(c.limit, how);
      const [N, C] = c.shape as [number, number];
      const G = c.G ?? C;
      const x = as(randn(21, c.shape, 0.5, 2), c.dtype);
      const weight = as(randn(22, [C], 1, 0.5), c.dtype);
      const bias = as(randn(23, [C], 0, 0.5), c.dtype);
      const tol = tolOf(c.dtype);
      await split(n, label, async () => {
        const F = await parityReport(`${label}: forward`, n, cpu, { x, weight, bias }, (m, t) =>
          c.G === null ? m.instanceNorm(t.x!, { weight: t.weight, bias: t.bias }) : m.groupNorm(t.x!, { numGroups: c.G, weight: t.weight, bias: t.bias }),
          { tol },
        );
        const ins = { dy: as(randn(24, c.shape, 0, 1), c.dtype), x, mean: f32(F.ref.mean!, [N, G]), rstd: f32(F.ref.rstd!, [N, G]), weight, bias };
        const B = await parityReport(`${label}: backward`, n, cpu, ins, (m, t) =>
          c.G === null
            ? m.instanceNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, { weight: t.weight, bias: t.bias })
            : m.groupNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, { numGroups: c.G, weight: t.weight, bias: t.bias }),
          { tol },
        );
        return [...F.failures, ...B.failures];
      });
    });
  }

  const wnCases: { shape: number[]; dim: number | null; limit: number; dtype: DType }[] = [
    { shape: [64, 32, 3, 3], dim: 0, limit: 8192, dtype: 'float32' },
    { shape: [64, 32, 3, 3], dim: 1, limit: 8192, dtype: 'float16' },
    { shape: [64, 32, 3, 3], dim: -1, limit: 8192, dtype: 'float32' },
    { shape: [64, 32, 3, 3], dim: null, limit: 8192, dtype: 'float32' },
    { shape: [3, 20000], dim: 1, limit: 16384, dtype: 'float32' },
    { shape: [20000, 3], dim: 0, limit: 16384, dtype: 'float16' },
    { shape: [50, 4, 300], dim: 1, limit: 1024, dtype: 'float32' },
  ];
  for (const how of SPLITS) for (const c of wnCases) {
    const label = `weightNorm ${fmt(c.shape)} dim ${c.dim} ${c.dtype}, bindings ≤ ${c.limit} B, ${how}`;
    it(label, async () => {
      const n = await withLimit(c.limit, how);
      const rank = c.shape.length;
      const dim = c.dim === null ? null : c.dim < 0 ? c.dim + rank : c.dim;
      const gShape = c.shape.map((d, i) => (i === dim ? d : 1));
      const v = as(randn(31, c.shape, 0, 1), c.dtype);
      const g = as(randn(32, gShape, 1, 0.5), c.dtype);
      const tol = tolOf(c.dtype);
      await split(n, label, async () => {
        const F = await parityReport(`${label}: forward`, n, cpu, { v, g }, (m, t) => m.weightNorm(t.v!, t.g!, { dim: c.dim }), { tol });
        const ins = { dw: as(randn(33, c.shape, 0, 1), c.dtype), v, g, norms: f32(F.ref.norms!, gShape) };
        const B = await parityReport(`${label}: backward`, n, cpu, ins, (m, t) => m.weightNormBackward(t.dw!, t.v!, t.g!, t.norms!, { dim: c.dim }), { tol });
        return [...F.failures, ...B.failures];
      });
    });
  }

  it("a caller's buffer past the binding (wrap), larger than its tensor, with verify: true", async () => {
    const shape = [300, 301];
    const x = randn(41, shape, 2, 3);
    const n = await createNorms({ backend: 'webgpu', device: base.device!, poisonOutputs: true, maxBindingBytes: 8192, verify: true });
    try {
      // The tensor is the buffer's first 300·301 floats; the buffer has 1000 more.
      const buf = base.device!.createBuffer({ size: (x.data.length + 1000) * 4, usage: 0x80 | 0x4 | 0x8 });
      base.device!.queue.writeBuffer(buf, 0, new Float32Array(x.data));
      const before = await n.read(n.wrap(buf, shape));
      const c = countWindowed(n);
      const out = n.layerNorm(n.wrap(buf, shape), { normalizedShape: [301] });
      const y = await n.read(out.y); // verify: true compares with the CPU reference (ParityError otherwise)
      c.stop();
      expect(c.get()).toBeGreaterThan(1);
      const ref = cpu.layerNorm(cpu.tensor(x.data, shape), { normalizedShape: [301] });
      expect(relativeL2(y, await cpu.read(ref.y))).toBeLessThan(1e-4);
      expect(await n.read(n.wrap(buf, shape)), "the caller's buffer is unchanged").toEqual(before);
      buf.destroy();
    } finally {
      n.destroy();
    }
  });

  it('a binding limit below 4 × minStorageBufferOffsetAlignment, or not an integer, is a ValueError naming maxBindingBytes', async () => {
    for (const bad of [100, 1e4 + 0.5, Number.NaN, -4096]) {
      const err = await createNorms({ backend: 'webgpu', device: base.device!, maxBindingBytes: bad }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, `maxBindingBytes ${bad}`).toBeInstanceOf(ValueError);
      expect((err as ValueError).argument).toBe('maxBindingBytes');
    }
  });
});
