/**
 * instanceNorm (forward and backward; groupNorm with one group per channel) on the webgpu
 * backend (Dawn in Node; SwiftShader without a GPU) against the float64 CPU reference: every
 * output within relative L2 1e-4; spatial size 1 rejected as PyTorch does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValueError } from '../src/index.ts';
import { closeBackends, channelNormParity, describeChannelCase as name, fmt, openBackends, randn, type Backends, type ChannelCase } from './util/parity.ts';

let B: Backends;
beforeAll(async () => {
  B = await openBackends();
});
afterAll(() => closeBackends(B));

describe('instanceNorm parity, default variant', () => {
  const cases: ChannelCase[] = [
    { shape: [2, 64, 8, 8], G: null, weight: true, bias: true, seed: 3100 },
    { shape: [2, 64, 8, 8], G: null, seed: 3101 },
    { shape: [4, 7, 9, 11], G: null, weight: true, bias: true, seed: 3102 },
    { shape: [4, 7, 9, 11], G: null, weight: true, seed: 3103 },
    { shape: [4, 7, 9, 11], G: null, bias: true, seed: 3104 },
    { shape: [1, 2, 4, 4, 4], G: null, weight: true, bias: true, seed: 3105 },
    { shape: [1, 2, 4, 4, 4], G: null, seed: 3106 },
    { shape: [3, 5, 7], G: null, weight: true, bias: true, seed: 3107 },
    { shape: [4, 7, 9, 11], G: null, weight: true, bias: true, mean: 1e4, std: 1, seed: 3108 },
  ];
  for (const c of cases) it(name(c), () => channelNormParity(B.gpu, B.cpu, c));

  it('spatial size 1 throws ValueError naming x and its shape (both backends, as PyTorch), allocating nothing', async () => {
    for (const n of [B.gpu, B.cpu]) {
      for (const shape of [[2, 3], [2, 3, 1], [2, 3, 1, 1]]) {
        const data = randn(3150, shape).data;
        const x = n.tensor(data, shape);
        const live = n.stats().liveBuffers;
        for (const call of [() => n.instanceNorm(x, {}), () => n.instanceNorm(x)]) {
          let err: unknown;
          try {
            call();
          } catch (e) {
            err = e;
          }
          expect(err, `${n.backend} ${fmt(shape)}`).toBeInstanceOf(ValueError);
          expect((err as ValueError).argument).toBe('x');
          expect((err as Error).message).toContain(fmt(shape));
        }
        expect(n.stats().liveBuffers).toBe(live);
        expect(await n.read(x)).toEqual(data);
        x.destroy();
      }
    }
  });
});

for (const variant of ['fused', 'general'] as const) {
  describe(`instanceNorm parity, variant '${variant}'`, () => {
    const cases: ChannelCase[] = [
      { shape: [2, 64, 8, 8], G: null, weight: true, bias: true, seed: 3207 },
      { shape: [4, 7, 9, 11], G: null, seed: 3208 },
    ];
    for (const c of cases) it(name(c), () => channelNormParity(B[variant], B.cpu, c));
  });
}

describe('instanceNorm parity, discrete-GPU work split (many partials, general kernels)', () => {
  const cases: ChannelCase[] = [
    { shape: [2, 64, 8, 8], G: null, weight: true, bias: true, seed: 3305 },
    { shape: [4, 7, 9, 11], G: null, seed: 3306 },
  ];
  for (const c of cases) it(name(c), () => channelNormParity(B.gpuSplit, B.cpu, c));
});
