/**
 * The README's "Diffusion transformer blocks" example, run as written: the two adaLN-Zero norms of
 * one DiT block, forward and backward, on the webgpu backend and on the float64 CPU reference,
 * every tensor compared. (The sublayers are stand-ins: attention and the MLP are the identity here,
 * so their backward passes hand the gradient through.)
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createNorms, type Norms, type Tensor } from '../src/index.ts';
import { expectClose, gpuNorms } from './util/gpu.ts';
import { randn } from './util/parity.ts';

let gpu: Norms;
let cpu: Norms;
beforeAll(async () => {
  gpu = await gpuNorms();
  cpu = await createNorms({ backend: 'cpu' });
});
afterAll(() => {
  gpu?.destroy();
  cpu?.destroy();
});

const B = 2;
const T = 16;
const D = 72;

/** One DiT block's norms, as in the README; returns every tensor worth comparing. */
function ditBlock(norms: Norms, x: Tensor, mod: Record<'shiftMsa' | 'scaleMsa' | 'gateMsa' | 'shiftMlp' | 'scaleMlp', Tensor>, dOut: Tensor, dMlpOut: Tensor) {
  const { shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp } = mod;
  // --- README example (forward) ---
  // x: [B, T, D] tokens; shiftMsa ... gateMlp: [B, 1, D], the adaLN modulation of the conditioning.
  const ln1 = norms.layerNorm(x, { normalizedShape: [D], eps: 1e-6, scale: scaleMsa, shift: shiftMsa });
  const attnOut = ln1.y; // attention(ln1.y) in a real block
  // x2 = x + gateMsa ⊙ attnOut, normalized and modulated in the same pass:
  const ln2 = norms.layerNorm(attnOut, { normalizedShape: [D], eps: 1e-6, residual: x, gate: gateMsa, scale: scaleMlp, shift: shiftMlp });
  const mlpOut = ln2.y; // mlp(ln2.y); the block's output is x3 = ln2.sum + gateMlp ⊙ mlpOut
  // --- README example (backward) ---
  // dOut: the gradient of x3. Through x3 = x2 + gateMlp ⊙ mlpOut: d x2 = dOut and d mlpOut = gateMlp ⊙ dOut
  // (when the next block's first norm takes x3 as residual + gate, its backward returns exactly
  // these two: its dresidual and its dx). dMlpOut then goes through mlp's backward (identity here).
  const g2 = norms.layerNormBackward(dMlpOut, attnOut, ln2.mean, ln2.rstd, {
    normalizedShape: [D], residual: x, gate: gateMsa, scale: scaleMlp, shift: shiftMlp, dsum: dOut,
  });
  // g2.dx: d attnOut; g2.dresidual: d x2 (= d x through the stream); g2.dgate / dscale / dshift: d gateMsa, scaleMlp, shiftMlp
  const dLn1 = g2.dx; // through attention's backward in a real block
  const g1 = norms.layerNormBackward(dLn1, x, ln1.mean, ln1.rstd, { normalizedShape: [D], scale: scaleMsa, shift: shiftMsa, dsum: g2.dresidual });
  // g1.dx: the total gradient of x; g1.dscale / dshift: d scaleMsa, shiftMsa
  // --- end of the example ---
  return { h1: ln1.y, h2: ln2.y, x2: ln2.sum!, dAttn: g2.dx, dX: g1.dx, dGateMsa: g2.dgate!, dScaleMlp: g2.dscale!, dShiftMlp: g2.dshift!, dScaleMsa: g1.dscale!, dShiftMsa: g1.dshift!, dX2: g2.dresidual! };
}

it('one DiT block: the README example on the GPU matches the float64 reference', async () => {
  const shape = [B, T, D];
  const m = [B, 1, D];
  const host = {
    x: randn(900, shape, 0, 1),
    dOut: randn(901, shape),
    shiftMsa: randn(902, m, 0, 0.3),
    scaleMsa: randn(903, m, 0, 0.3),
    gateMsa: randn(904, m, 0, 0.5),
    shiftMlp: randn(905, m, 0, 0.3),
    scaleMlp: randn(906, m, 0, 0.3),
    gateMlp: randn(907, m, 0, 0.5),
  };
  // d mlpOut = gateMlp ⊙ dOut (the next block's norm computes it; here on the host).
  const dMlp = Float32Array.from(host.dOut.data, (v, e) => v * host.gateMlp.data[Math.floor(e / (T * D)) * D + (e % D)]!);
  const run = (n: Norms) => {
    const t = (k: keyof typeof host) => n.tensor(host[k].data, host[k].shape);
    return ditBlock(n, t('x'), { shiftMsa: t('shiftMsa'), scaleMsa: t('scaleMsa'), gateMsa: t('gateMsa'), shiftMlp: t('shiftMlp'), scaleMlp: t('scaleMlp') }, t('dOut'), n.tensor(dMlp, shape));
  };
  const got = run(gpu);
  const want = run(cpu);
  for (const k of Object.keys(want) as (keyof typeof want)[]) {
    expect([...got[k].shape], k).toEqual([...want[k].shape]);
    expectClose(k, await gpu.read(got[k]), await cpu.read(want[k]), 1e-4);
  }
});
