/**
 * groupNorm / instanceNorm (forward and backward) on the webgpu backend (Dawn in Node;
 * SwiftShader without a GPU) against the float64 CPU reference: every output within relative
 * L2 1e-4.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValueError, type Norms } from '../src/index.ts';
import { closeBackends, failIf, fmt, openBackends, parityReport, randn, type Backends } from './util/parity.ts';

let B: Backends;
beforeAll(async () => {
  B = await openBackends();
});
afterAll(() => closeBackends(B));

interface GnCase {
  shape: number[];
  /** numGroups; null: instanceNorm. */
  G: number | null;
  weight?: boolean;
  bias?: boolean;
  silu?: boolean;
  eps?: number;
  mean?: number;
  std?: number;
  seed: number;
}

const name = (c: GnCase): string =>
  `x ${fmt(c.shape)}${c.G !== null ? ` G=${c.G}` : ''}${c.weight ? ' +w' : ''}${c.bias ? ' +b' : ''}` +
  `${c.silu ? ' silu (forward only)' : ''}${c.eps !== undefined ? ` eps ${c.eps}` : ''}${c.mean !== undefined ? ` mean ${c.mean}` : ''}`;

async function gnParity(gpu: Norms, c: GnCase): Promise<void> {
  const op = c.G === null ? 'instanceNorm' : 'groupNorm';
  const label = `${op} ${name(c)}`;
  const [N, C] = c.shape as [number, number];
  const G = c.G ?? C;
  const x = randn(c.seed, c.shape, c.mean ?? 0.5, c.std ?? 2);
  const weight = c.weight ? randn(c.seed + 1, [C], 1, 0.5) : null;
  const bias = c.bias ? randn(c.seed + 2, [C], 0.25, 0.5) : null;
  const eps = c.eps !== undefined ? { eps: c.eps } : {};
  const F = await parityReport(`${label}: forward`, gpu, B.cpu, { x, weight, bias }, (n, t) =>
    c.G === null
      ? n.instanceNorm(t.x!, { weight: t.weight, bias: t.bias, ...eps })
      : n.groupNorm(t.x!, { numGroups: c.G, weight: t.weight, bias: t.bias, ...(c.silu ? { activation: 'silu' as const } : {}), ...eps }),
  );
  expect(Object.keys(F.ref).sort()).toEqual(['mean', 'rstd', 'y']);
  expect(F.ref.mean!.length).toBe(N * G);
  if (c.silu) return failIf(F.failures);
  const ins = {
    dy: randn(c.seed + 3, c.shape, 0.1, 1),
    x,
    mean: { data: F.ref.mean!, shape: [N, G] },
    rstd: { data: F.ref.rstd!, shape: [N, G] },
    weight,
    bias,
  };
  const Bw = await parityReport(`${label}: backward`, gpu, B.cpu, ins, (n, t) =>
    c.G === null
      ? n.instanceNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, { weight: t.weight, bias: t.bias })
      : n.groupNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, { numGroups: c.G, weight: t.weight, bias: t.bias }),
  );
  expect(Object.keys(Bw.ref).sort()).toEqual(['dx', ...(weight ? ['dweight'] : []), ...(bias ? ['dbias'] : [])].sort());
  failIf([...F.failures, ...Bw.failures]);
}

describe('groupNorm parity, default variant', () => {
  const cases: GnCase[] = [
    // A diffusion-UNet sized input with G = 1, 8 and 32 (= C).
    ...[1, 8, 32].map((G, i): GnCase => ({ shape: [2, 32, 64, 64], G, weight: true, bias: true, seed: 3000 + i })),
    { shape: [8, 3, 5, 5], G: 3, weight: true, bias: true, seed: 3010 },
    { shape: [8, 3, 5, 5], G: 1, weight: true, bias: true, seed: 3011 },
    ...[2, 3, 6].map((G, i): GnCase => ({ shape: [4, 6, 9, 11], G, weight: true, bias: true, seed: 3020 + i })),
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
  for (const c of cases) it(name(c), () => gnParity(B.gpu, c));
});

describe('instanceNorm parity, default variant', () => {
  const cases: GnCase[] = [
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
  for (const c of cases) it(name(c), () => gnParity(B.gpu, c));

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
  describe(`groupNorm / instanceNorm parity, variant '${variant}'`, () => {
    const cases: GnCase[] = [
      { shape: [8, 3, 5, 5], G: 3, weight: true, bias: true, seed: 3200 },
      { shape: [4, 6, 9, 11], G: 2, weight: true, bias: true, seed: 3201 },
      { shape: [2, 32, 16, 16], G: 8, weight: true, bias: true, seed: 3202 },
      { shape: [4, 6], G: 2, weight: true, bias: true, seed: 3203 },
      { shape: [1, 2, 4, 4, 4], G: 1, seed: 3204 },
      { shape: [4, 6, 9, 11], G: 2, weight: true, bias: true, mean: 1e4, std: 1, seed: 3205 },
      { shape: [2, 32, 16, 16], G: 8, weight: true, bias: true, silu: true, seed: 3206 },
      { shape: [2, 64, 8, 8], G: null, weight: true, bias: true, seed: 3207 },
      { shape: [4, 7, 9, 11], G: null, seed: 3208 },
    ];
    for (const c of cases) it(name(c), () => gnParity(B[variant], c));
  });
}

describe('groupNorm / instanceNorm parity, discrete-GPU work split (many partials, general kernels)', () => {
  const cases: GnCase[] = [
    { shape: [2, 32, 64, 64], G: 8, weight: true, bias: true, seed: 3300 },
    { shape: [4, 6, 9, 11], G: 2, weight: true, bias: true, mean: 1e4, std: 1, seed: 3301 },
    { shape: [4, 6], G: 2, weight: true, bias: true, seed: 3302 },
    { shape: [1, 2, 4, 4, 4], G: 1, seed: 3303 },
    { shape: [2, 32, 16, 16], G: 8, weight: true, bias: true, silu: true, seed: 3304 },
    { shape: [2, 64, 8, 8], G: null, weight: true, bias: true, seed: 3305 },
    { shape: [4, 7, 9, 11], G: null, seed: 3306 },
  ];
  for (const c of cases) it(name(c), () => gnParity(B.gpuSplit, c));
});
