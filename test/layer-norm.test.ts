/**
 * layerNorm / layerNormBackward on the webgpu backend (Dawn in Node; SwiftShader without a GPU)
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
const rms = false;

describe('layerNorm parity, default variant', () => {
  const cases: RowCase[] = [];
  // Every row length with 1 and 7 rows, weight and bias.
  LENGTHS.forEach((K, i) => {
    for (const rows of [1, 7]) cases.push({ lead: [rows], normalizedShape: [K], weight: true, bias: true, seed: 100 + 2 * i + rows });
  });
  // Very long rows (one such case here, one in the discrete-GPU split below).
  cases.push({ lead: [3], normalizedShape: [1000003], weight: true, bias: true, seed: 202 });
  // 4096 rows (as [4, 1024] leading dims), lengths up to 1000.
  [1, 4, 65, 256, 1000].forEach((K, i) => cases.push({ lead: [4, 1024], normalizedShape: [K], weight: true, bias: true, seed: 300 + i }));
  // Affine combinations.
  cases.push({ lead: [7], normalizedShape: [257], weight: true, seed: 401 });
  cases.push({ lead: [7], normalizedShape: [257], bias: true, seed: 402 });
  cases.push({ lead: [7], normalizedShape: [257], seed: 403 });
  cases.push({ lead: [1], normalizedShape: [65537], bias: true, seed: 404 });
  // Large mean offset: x = 1e4 + N(0, 1).
  cases.push({ lead: [7], normalizedShape: [1000], weight: true, bias: true, mean: 1e4, std: 1, seed: 501 });
  cases.push({ lead: [1], normalizedShape: [65537], weight: true, bias: true, mean: 1e4, std: 1, seed: 502 });
  cases.push({ lead: [4, 1024], normalizedShape: [64], mean: 1e4, std: 1, seed: 503 });
  // Row-fused backward with dweight/dbias summed per block of rows (CPU adapters, >= 2048 rows):
  // a last block shorter than the others, weight only, bias only, 3-D.
  cases.push({ lead: [2100], normalizedShape: [12], weight: true, bias: true, seed: 504 });
  cases.push({ lead: [3001], normalizedShape: [8], weight: true, seed: 505 });
  cases.push({ lead: [2049], normalizedShape: [20], bias: true, mean: 1e4, std: 1, seed: 506 });
  cases.push({ lead: [2, 1100], normalizedShape: [2, 6], weight: true, bias: true, seed: 507 });
  // normalizedShape of rank 2 and 3; stats of rank 0.
  cases.push({ lead: [5], normalizedShape: [6, 7], weight: true, bias: true, seed: 601 });
  cases.push({ lead: [2, 3], normalizedShape: [4, 5], weight: true, bias: true, seed: 602 });
  cases.push({ lead: [2], normalizedShape: [3, 4, 5], weight: true, seed: 603 });
  cases.push({ lead: [], normalizedShape: [6, 7], weight: true, bias: true, seed: 604 });
  // Blocks of 4 rows sharing the weights (CPU adapters, >= 64 rows of whole quads): a last block
  // of 1, 2 and 3 rows, weight only, bias only, an offset mean, and the fused residual add.
  cases.push({ lead: [65], normalizedShape: [128], weight: true, bias: true, seed: 511 });
  cases.push({ lead: [66], normalizedShape: [12], weight: true, seed: 512 });
  cases.push({ lead: [67], normalizedShape: [256], bias: true, mean: 1e4, std: 1, seed: 513 });
  cases.push({ lead: [64], normalizedShape: [768], weight: true, bias: true, residual: true, seed: 514 });
  // A custom eps, and a fused residual add.
  cases.push({ lead: [7], normalizedShape: [768], weight: true, bias: true, eps: 1e-3, std: 0.01, seed: 701 });
  cases.push({ lead: [7], normalizedShape: [768], weight: true, bias: true, residual: true, seed: 702 });
  for (const c of cases) it(describeRowCase(c), () => rowNormParity(B.gpu, B.cpu, rms, c));
});

for (const variant of ['fused', 'general'] as const) {
  describe(`layerNorm parity, variant '${variant}'`, () => {
    const cases: RowCase[] = [1, 3, 64, 65, 768, 4096, 65537].map((K, i) => ({ lead: [7], normalizedShape: [K], weight: true, bias: true, seed: 800 + i }));
    cases.push({ lead: [4, 1024], normalizedShape: [65], weight: true, bias: true, seed: 811 });
    cases.push({ lead: [7], normalizedShape: [257], seed: 812 });
    cases.push({ lead: [7], normalizedShape: [1000], weight: true, bias: true, mean: 1e4, std: 1, seed: 813 });
    cases.push({ lead: [5], normalizedShape: [6, 7], weight: true, bias: true, seed: 814 });
    cases.push({ lead: [7], normalizedShape: [768], weight: true, bias: true, residual: true, seed: 815 });
    for (const c of cases) it(describeRowCase(c), () => rowNormParity(B[variant], B.cpu, rms, c));
  });
}

describe('layerNorm parity, discrete-GPU work split (many partials, general kernels)', () => {
  const cases: RowCase[] = [
    { lead: [1], normalizedShape: [65537], weight: true, bias: true, seed: 900 },
    { lead: [1], normalizedShape: [1000003], seed: 901 },
    { lead: [7], normalizedShape: [4096], weight: true, bias: true, seed: 902 },
    { lead: [4, 1024], normalizedShape: [256], weight: true, bias: true, seed: 903 },
    { lead: [7], normalizedShape: [257], seed: 904 },
    { lead: [1], normalizedShape: [65537], weight: true, bias: true, mean: 1e4, std: 1, seed: 905 },
    { lead: [7], normalizedShape: [768], weight: true, bias: true, residual: true, seed: 906 },
  ];
  for (const c of cases) it(describeRowCase(c), () => rowNormParity(B.gpuSplit, B.cpu, rms, c));
});
