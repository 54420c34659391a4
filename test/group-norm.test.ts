/**
 * groupNorm (forward and backward) on the webgpu backend (Dawn in Node; SwiftShader without a
 * GPU) against the float64 CPU reference: every output within relative L2 1e-4. instanceNorm
 * (groupNorm with G = C) has its own file, instance-norm.test.ts.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import { closeBackends, channelNormParity, describeChannelCase as name, openBackends, type Backends, type ChannelCase } from './util/parity.ts';

let B: Backends;
beforeAll(async () => {
  B = await openBackends();
});
afterAll(() => closeBackends(B));

describe('groupNorm parity, default variant', () => {
  const cases: ChannelCase[] = [
    // A diffusion-UNet sized input with G = 1, 8 and 32 (= C).
    ...[1, 8, 32].map((G, i): ChannelCase => ({ shape: [2, 32, 64, 64], G, weight: true, bias: true, seed: 3000 + i })),
    { shape: [8, 3, 5, 5], G: 3, weight: true, bias: true, seed: 3010 },
    { shape: [8, 3, 5, 5], G: 1, weight: true, bias: true, seed: 3011 },
    ...[2, 3, 6].map((G, i): ChannelCase => ({ shape: [4, 6, 9, 11], G, weight: true, bias: true, seed: 3020 + i })),
    // N = 1, C = 1, no spatial dims, 1-D and 3-D spatial.
    { shape: [1, 6, 9, 11], G: 3, weight: true, bias: true, seed: 3030 },
    { shape: [4, 1, 9, 11], G: 1, weight: true, bias: true, seed: 3031 },
    { shape: [4, 6], G: 2, weight: true, bias: true, seed: 3032 },
    { shape: [4, 6, 17], G: 3, weight: true, bias: true, seed: 3033 },
    { shape: [1, 2, 4, 4, 4], G: 1, weight: true, bias: true, seed: 3034 },
    { shape: [1, 2, 4, 4, 4], G: 2, weight: true, bias: true, seed: 3035 },
    // Affine combinations, a custom eps.
    { shape: [4, 6, 9, 11], G: 3, seed: 3040 },
    { shape: [4, 6, 9, 11], G: 3, weight: true, seed: 3041 },
    { shape: [4, 6, 9, 11], G: 2, bias: true, seed: 3042 },
    { shape: [8, 3, 5, 5], G: 3, weight: true, bias: true, eps: 1e-2, std: 0.05, seed: 3043 },
    // Large mean offset: x = 1e4 + N(0, 1).
    { shape: [4, 6, 9, 11], G: 2, weight: true, bias: true, mean: 1e4, std: 1, seed: 3050 },
    // Fused SiLU (forward only).
    { shape: [2, 32, 16, 16], G: 8, weight: true, bias: true, silu: true, seed: 3060 },
    { shape: [4, 6, 9, 11], G: 3, silu: true, seed: 3061 },
    { shape: [4, 6], G: 2, weight: true, bias: true, silu: true, seed: 3062 },
  ];
  for (const c of cases) it(name(c), () => channelNormParity(B.gpu, B.cpu, c));
});

for (const variant of ['fused', 'general'] as const) {
  describe(`groupNorm parity, variant '${variant}'`, () => {
    const cases: ChannelCase[] = [
      { shape: [8, 3, 5, 5], G: 3, weight: true, bias: true, seed: 3200 },
      { shape: [4, 6, 9, 11], G: 2, weight: true, bias: true, seed: 3201 },
      { shape: [2, 32, 16, 16], G: 8, weight: true, bias: true, seed: 3202 },
      { shape: [4, 6], G: 2, weight: true, bias: true, seed: 3203 },
      { shape: [1, 2, 4, 4, 4], G: 1, seed: 3204 },
      { shape: [4, 6, 9, 11], G: 2, weight: true, bias: true, mean: 1e4, std: 1, seed: 3205 },
      { shape: [2, 32, 16, 16], G: 8, weight: true, bias: true, silu: true, seed: 3206 },
    ];
    for (const c of cases) it(name(c), () => channelNormParity(B[variant], B.cpu, c));
  });
}

describe('groupNorm parity, discrete-GPU work split (many partials, general kernels)', () => {
  const cases: ChannelCase[] = [
    { shape: [2, 32, 64, 64], G: 8, weight: true, bias: true, seed: 3300 },
    { shape: [4, 6, 9, 11], G: 2, weight: true, bias: true, mean: 1e4, std: 1, seed: 3301 },
    { shape: [4, 6], G: 2, weight: true, bias: true, seed: 3302 },
    { shape: [1, 2, 4, 4, 4], G: 1, seed: 3303 },
    { shape: [2, 32, 16, 16], G: 8, weight: true, bias: true, silu: true, seed: 3304 },
  ];
  for (const c of cases) it(name(c), () => channelNormParity(B.gpuSplit, B.cpu, c));
});
