/**
 * Rows far shorter than a workgroup on the GPU class (`adapterClass: 'gpu'`): they take one
 * invocation per row (policy.ts SHORT_ROW), so many of them finish in a moment even on
 * SwiftShader, where a 64-invocation workgroup per 3-element row took ~10.8 s for [65536, 3]
 * (and 8.4M such rows did not finish in 10 minutes). Parity against the CPU reference for layer
 * and RMS norm forward and backward and group/instance norm with tiny groups, and the kernels
 * each op asked for.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNorms, type Norms } from '../src/index.ts';
import { SHORT_ROW } from '../src/kernels/policy.ts';
import { gpuNorms } from './util/gpu.ts';
import { channelNormParity, rowNormParity } from './util/parity.ts';

let gpu: Norms;
let cpu: Norms;
const asked: string[] = [];
beforeAll(async () => {
  gpu = await gpuNorms({ adapterClass: 'gpu' });
  cpu = await createNorms({ backend: 'cpu' });
  const ctx = gpu._gpu!.ctx as unknown as { kernel: (s: { label: string }) => unknown };
  const orig = ctx.kernel.bind(ctx);
  ctx.kernel = (s) => (asked.push(s.label.replace(/^webgpu-norm\./, '').replace(/\[.*$/, '')), orig(s));
});
afterAll(() => {
  gpu?.destroy();
  cpu?.destroy();
});

/** The entry points `fn` asked for, in order, once each. */
async function kernelsOf(fn: () => Promise<void>): Promise<string[]> {
  asked.length = 0;
  await fn();
  return [...new Set(asked)];
}

/** Runs `fn` and fails if it took longer than `seconds` (generous: a 2-core machine shared with other runs). */
async function within(seconds: number, fn: () => Promise<void>): Promise<void> {
  const t0 = performance.now();
  await fn();
  const s = (performance.now() - t0) / 1000;
  expect(s, `took ${s.toFixed(1)} s`).toBeLessThan(seconds);
}

describe('GPU class, rows much shorter than a workgroup', () => {
  it('layerNorm [65536, 3] +w +b, forward and backward: one invocation per row, against the CPU reference in seconds', async () => {
    expect(gpu._gpu!.ctx.isCpuAdapter).toBe(false);
    const used = await kernelsOf(() =>
      within(30, () => rowNormParity(gpu, cpu, false, { lead: [65536], normalizedShape: [3], weight: true, bias: true, seed: 190501 })),
    );
    expect(used.filter((k) => k.startsWith('workgroup_rows'))).toEqual([]);
    expect(used).toEqual(expect.arrayContaining(['fused_rows_welford', 'fused_rows_grad']));
  });

  it('rmsNorm [65536, 3] +w, forward and backward', async () => {
    const used = await kernelsOf(() => within(30, () => rowNormParity(gpu, cpu, true, { lead: [65536], normalizedShape: [3], weight: true, seed: 190502 })));
    expect(used).toEqual(expect.arrayContaining(['fused_rows_sumsq', 'fused_rows_grad']));
    expect(used.filter((k) => k.startsWith('workgroup_rows'))).toEqual([]);
  });

  it.each([1, 2, 17, 32, 63])('rows of %i: layerNorm (1e4 offset, residual) and rmsNorm, forward and backward', async (K) => {
    expect(K).toBeLessThan(SHORT_ROW);
    const used = await kernelsOf(async () => {
      await rowNormParity(gpu, cpu, false, { lead: [8, 513], normalizedShape: [K], weight: true, bias: true, mean: 1e4, std: 1, seed: 190510 + K });
      await rowNormParity(gpu, cpu, false, { lead: [2049], normalizedShape: [K], residual: true, seed: 190570 + K });
      await rowNormParity(gpu, cpu, true, { lead: [4097], normalizedShape: [K], weight: true, seed: 190630 + K });
    });
    expect(used.filter((k) => k.startsWith('workgroup_rows'))).toEqual([]);
  });

  it('rows of 64 and 65 keep a workgroup per row (the bound), with the same parity', async () => {
    for (const K of [SHORT_ROW, SHORT_ROW + 1]) {
      const used = await kernelsOf(() => rowNormParity(gpu, cpu, false, { lead: [300], normalizedShape: [K], weight: true, bias: true, seed: 190700 + K }));
      expect(used).toEqual(expect.arrayContaining(['workgroup_rows_welford', 'workgroup_rows_grad']));
    }
  });

  it('float16 short rows (even: row-fused; odd: partials)', async () => {
    for (const K of [2, 3, 62]) {
      const used = await kernelsOf(async () => {
        const n = 4099;
        const x = gpu.tensor(new Float32Array(n * K).map((_, i) => Math.sin(i * 0.37) * 3 + 0.5), [n, K], 'float16');
        const xc = cpu.tensor(await gpu.read(x), [n, K], 'float16');
        const g = gpu.layerNorm(x, { normalizedShape: [K] });
        const c = cpu.layerNorm(xc, { normalizedShape: [K] });
        const [gy, cy] = [await gpu.read(g.y), await cpu.read(c.y)];
        let num = 0, den = 0;
        for (let i = 0; i < cy.length; i++) (num += (gy[i]! - cy[i]!) ** 2), (den += cy[i]! ** 2);
        expect(Math.sqrt(num / den), `float16 K=${K}`).toBeLessThanOrEqual(2e-3);
        for (const t of [x, g.y, g.mean, g.rstd]) t.destroy();
      });
      expect(used.filter((k) => k.startsWith('workgroup_rows'))).toEqual([]);
    }
  });

  it('groupNorm and instanceNorm with tiny groups, forward and backward', async () => {
    const used = await kernelsOf(async () => {
      // Groups of Cg * S = 2 * 2, 1 * 3, 3 * 5 elements; 1e4 offset in one.
      await within(30, () => channelNormParity(gpu, cpu, { shape: [512, 32, 2, 1], G: 16, weight: true, bias: true, seed: 190801 }));
      await channelNormParity(gpu, cpu, { shape: [64, 48, 3], G: 48, weight: true, bias: true, mean: 1e4, seed: 190802 });
      await channelNormParity(gpu, cpu, { shape: [256, 12, 5], G: 4, weight: true, seed: 190803 });
      await channelNormParity(gpu, cpu, { shape: [1024, 16, 3], G: null, weight: true, bias: true, seed: 190804 });
    });
    expect(used).toContain('fused_rows_welford');
    expect(used.filter((k) => k.startsWith('workgroup_rows'))).toEqual([]);
  });
});
