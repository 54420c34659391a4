/**
 * rmsNorm / rmsNormBackward on the webgpu backend (Dawn in Node; SwiftShader without a GPU)
 * against the float64 CPU reference: every output within relative L2 1e-4.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import { closeBackends, openBackends, rowNormParity, describeRowCase, type Backends, type RowCase } from './util/parity.ts';

let B: Backends;
beforeAll(async () => {
  B = await openBackends();
});
afterAll(() => closeBackends(B));

const LENGTHS = [1, 3, 4, 63, 64, 65, 255, 256, 257, 768, 1000, 4096, 65537];
const rms = true;

describe('rmsNorm parity, default variant', () => {
  const cases: RowCase[] = [];
  // Every row length with 1 and 7 rows, with a weight. Rows of one element get a large eps: with
  // K = 1, dx = dy·w·rstd·(1 − x²·rstd²) = dy·w·rstd·eps/(x² + eps), and with the default eps
  // (1.2e-7) the bracket is a cancellation down to ~1e-7, below float32 resolution, so no float32
  // kernel can reach 1e-4 relative there. The default eps at K = 1 is checked forward only.
  LENGTHS.forEach((K, i) => {
    for (const rows of [1, 7]) cases.push({ lead: [rows], normalizedShape: [K], weight: true, seed: 1100 + 2 * i + rows, ...(K === 1 ? { eps: 0.25 } : {}) });
  });
  cases.push({ lead: [7], normalizedShape: [1], weight: true, seed: 1199, backward: false });
  // Very long rows (one such case here, one in the discrete-GPU split below).
  cases.push({ lead: [3], normalizedShape: [1000003], weight: true, seed: 1202 });
  // 4096 rows (as [4, 1024] leading dims), lengths up to 1000.
  [1, 4, 65, 256, 1000].forEach((K, i) => cases.push({ lead: [4, 1024], normalizedShape: [K], weight: true, seed: 1300 + i }));
  // Without weight.
  cases.push({ lead: [7], normalizedShape: [257], seed: 1401 });
  cases.push({ lead: [1], normalizedShape: [65537], seed: 1402 });
  // Large mean offset: x = 1e4 + N(0, 1).
  cases.push({ lead: [7], normalizedShape: [1000], weight: true, mean: 1e4, std: 1, seed: 1501 });
  // Blocks of 4 rows sharing the weight (CPU adapters, >= 64 rows of whole quads): last blocks of
  // 1, 2 and 3 rows, and the fused residual add.
  cases.push({ lead: [65], normalizedShape: [128], weight: true, seed: 1511 });
  cases.push({ lead: [66], normalizedShape: [12], weight: true, mean: 1e4, std: 1, seed: 1512 });
  cases.push({ lead: [67], normalizedShape: [256], weight: true, residual: true, seed: 1513 });
  cases.push({ lead: [1], normalizedShape: [65537], weight: true, mean: 1e4, std: 1, seed: 1502 });
  cases.push({ lead: [4, 1024], normalizedShape: [64], mean: 1e4, std: 1, seed: 1503 });
  // normalizedShape of rank 2 and 3; stats of rank 0.
  cases.push({ lead: [5], normalizedShape: [6, 7], weight: true, seed: 1601 });
  cases.push({ lead: [2, 3], normalizedShape: [4, 5], weight: true, seed: 1602 });
  cases.push({ lead: [2], normalizedShape: [3, 4, 5], seed: 1603 });
  cases.push({ lead: [], normalizedShape: [6, 7], weight: true, seed: 1604 });
  // Tiny inputs where eps matters (default eps, then a custom one), and a fused residual add.
  cases.push({ lead: [7], normalizedShape: [768], weight: true, mean: 0, std: 3e-4, seed: 1701 });
  cases.push({ lead: [7], normalizedShape: [768], weight: true, eps: 1e-6, mean: 0, std: 1e-3, seed: 1702 });
  cases.push({ lead: [7], normalizedShape: [768], weight: true, residual: true, seed: 1703 });
  for (const c of cases) it(describeRowCase(c), () => rowNormParity(B.gpu, B.cpu, rms, c));
});

for (const variant of ['fused', 'general'] as const) {
  describe(`rmsNorm parity, variant '${variant}'`, () => {
    const cases: RowCase[] = [1, 3, 64, 65, 768, 4096, 65537].map((K, i) => ({ lead: [7], normalizedShape: [K], weight: true, seed: 1800 + i, ...(K === 1 ? { eps: 0.25 } : {}) }));
    cases.push({ lead: [4, 1024], normalizedShape: [65], weight: true, seed: 1811 });
    cases.push({ lead: [7], normalizedShape: [257], seed: 1812 });
    cases.push({ lead: [7], normalizedShape: [1000], weight: true, mean: 1e4, std: 1, seed: 1813 });
    cases.push({ lead: [5], normalizedShape: [6, 7], weight: true, seed: 1814 });
    cases.push({ lead: [7], normalizedShape: [768], weight: true, residual: true, seed: 1815 });
    for (const c of cases) it(describeRowCase(c), () => rowNormParity(B[variant], B.cpu, rms, c));
  });
}

describe('rmsNorm parity, discrete-GPU work split (many partials, general kernels)', () => {
  const cases: RowCase[] = [
    { lead: [1], normalizedShape: [65537], weight: true, seed: 1900 },
    { lead: [1], normalizedShape: [1000003], seed: 1901 },
    { lead: [7], normalizedShape: [4096], weight: true, seed: 1902 },
    { lead: [4, 1024], normalizedShape: [256], weight: true, seed: 1903 },
    { lead: [7], normalizedShape: [257], seed: 1904 },
    { lead: [1], normalizedShape: [65537], weight: true, mean: 1e4, std: 1, seed: 1905 },
    { lead: [7], normalizedShape: [768], weight: true, residual: true, seed: 1906 },
  ];
  for (const c of cases) it(describeRowCase(c), () => rowNormParity(B.gpuSplit, B.cpu, rms, c));
});
