/**
 * No leaks: 10,000 layerNorm forward + backward calls on [4, 32] (every output destroyed) leave
 * stats() flat — the count after the first 100 calls equals the count at the end, and both equal
 * the inputs alone. The same for a few hundred calls of every other op (and failed calls, and
 * wrapped tensors). After norms.destroy(), a new instance works.
 *
 * Timing here (SwiftShader, 2 cores): the 10,000-call loop takes about 20 s; the queue is awaited
 * every 500 calls so that destroyed buffers are really freed along the way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNorms, DeviceError, ShapeError, Tensor, type Norms } from '../src/index.ts';
import { expectClose, gpuNorms } from './util/gpu.ts';
import { makeRng } from './util/rng.ts';

const CALLS = 10_000;
const SYNC_EVERY = 500;

let n: Norms;
let cpu: Norms;
beforeAll(async () => {
  n = await gpuNorms();
  cpu = await createNorms({ backend: 'cpu' });
});
afterAll(() => {
  n?.destroy();
  cpu?.destroy();
});

function destroyOutputs(o: object): void {
  for (const v of Object.values(o)) if (v instanceof Tensor) v.destroy();
}

describe('memory stays flat', () => {
  it(`${CALLS} layerNorm forward + backward calls on [4, 32]`, async () => {
    const start = n.stats();
    const x = n.tensor(makeRng(1).fill(128, 0.5, 2), [4, 32]);
    const dy = n.tensor(makeRng(2).fill(128, 0, 1), [4, 32]);
    const w = n.tensor(makeRng(3).fill(32, 1, 0.5), [32]);
    const b = n.tensor(makeRng(4).fill(32, 0, 0.5), [32]);
    const inputs = n.stats();
    expect(inputs.liveBuffers - start.liveBuffers).toBe(4);
    let after100 = { liveBuffers: -1, liveBytes: -1 };
    let last: Float32Array | null = null;
    const t0 = performance.now();
    for (let i = 1; i <= CALLS; i++) {
      const f = n.layerNorm(x, { normalizedShape: [32], weight: w, bias: b });
      const g = n.layerNormBackward(dy, x, f.mean, f.rstd, { normalizedShape: [32], weight: w, bias: b });
      if (i % SYNC_EVERY === 0 || i === CALLS) last = await n.read(g.dx); // waits for the queue
      destroyOutputs(f);
      destroyOutputs(g);
      if (i === 100) after100 = n.stats();
    }
    const ms = performance.now() - t0;
    const end = n.stats();
    expect(end, `stats after ${CALLS} calls vs after the first 100`).toEqual(after100);
    expect(end, 'stats at the end vs the inputs alone').toEqual(inputs);
    // The last backward still computed the right thing.
    const cx = cpu.tensor(makeRng(1).fill(128, 0.5, 2), [4, 32]);
    const cf = cpu.layerNorm(cx, { normalizedShape: [32], weight: cpu.tensor(makeRng(3).fill(32, 1, 0.5), [32]) });
    const cdx = cpu.layerNormBackward(cpu.tensor(makeRng(2).fill(128, 0, 1), [4, 32]), cx, cf.mean, cf.rstd, { normalizedShape: [32], weight: cpu.tensor(makeRng(3).fill(32, 1, 0.5), [32]) }).dx;
    expectClose('dx of the last call', last!, await cpu.read(cdx), 1e-4);
    for (const t of [x, dy, w, b]) t.destroy();
    expect(n.stats()).toEqual(start);
    console.log(`memory: ${CALLS} forward+backward calls in ${(ms / 1000).toFixed(1)} s; stats ${JSON.stringify(end)}`);
    expect(ms, 'the loop must stay fast (budget 60 s)').toBeLessThan(60_000);
  });

  it('every op, 200 calls each: flat after the first 20', async () => {
    const r = makeRng(9);
    const T = (shape: number[], lo = -1, hi = 1): Tensor => {
      const size = shape.reduce((a, c) => a * c, 1);
      const d = new Float32Array(size);
      for (let i = 0; i < size; i++) d[i] = lo + (hi - lo) * r.uniform();
      return n.tensor(d, shape);
    };
    const x4 = T([2, 6, 3, 5]), dy4 = T([2, 6, 3, 5]), c6 = T([6]), c6b = T([6]), rv6 = T([6], 0.5, 2), rm6 = T([6]);
    const x2 = T([5, 300]), dy2 = T([5, 300]), w300 = T([300]), st5 = T([5], 0.5, 2), st5b = T([5]);
    const gn = T([2, 3], 0.5, 2), gm = T([2, 3]), inm = T([2, 6], 0.5, 2), inmm = T([2, 6]);
    const g5 = T([5, 1], 0.5, 2), nr5 = T([5, 1], 0.5, 2), g11 = T([1, 1], 0.5, 2);
    const calls: [string, () => object][] = [
      ['rmsNorm', () => n.rmsNorm(x2, { normalizedShape: [300], weight: w300 })],
      ['rmsNorm residual', () => n.rmsNorm(x2, { normalizedShape: [300], residual: dy2 })],
      ['layerNorm residual', () => n.layerNorm(x2, { normalizedShape: [300], weight: w300, bias: w300, residual: dy2 })],
      ['rmsNormBackward', () => n.rmsNormBackward(dy2, x2, st5, { normalizedShape: [300], weight: w300 })],
      ['layerNormBackward', () => n.layerNormBackward(dy2, x2, st5b, st5, { normalizedShape: [300], weight: w300, bias: w300 })],
      ['batchNorm training', () => n.batchNorm(x4, { training: true, weight: c6, bias: c6b, runningMean: rm6, runningVar: rv6 })],
      ['batchNormBackward training', () => n.batchNormBackward(dy4, x4, { training: true, weight: c6, bias: c6b, saveMean: rm6, saveInvstd: rv6 })],
      ['groupNorm', () => n.groupNorm(x4, { numGroups: 3, weight: c6, bias: c6b })],
      ['groupNorm silu', () => n.groupNorm(x4, { numGroups: 3, activation: 'silu' })],
      ['groupNormBackward', () => n.groupNormBackward(dy4, x4, gm, gn, { numGroups: 3, weight: c6, bias: c6b })],
      ['instanceNorm', () => n.instanceNorm(x4, { weight: c6, bias: c6b })],
      ['instanceNormBackward', () => n.instanceNormBackward(dy4, x4, inmm, inm, { weight: c6, bias: c6b })],
      ['weightNorm', () => n.weightNorm(x2, g5, { dim: 0 })],
      ['weightNorm dim null', () => n.weightNorm(x2, g11, { dim: null })],
      ['weightNormBackward', () => n.weightNormBackward(dy2, x2, g5, nr5, { dim: 0 })],
    ];
    for (const [name, call] of calls) {
      let base: object | null = null;
      const before = n.stats();
      for (let i = 1; i <= 200; i++) {
        const out = call();
        if (i % 100 === 0) {
          const first = Object.values(out).find((v) => v instanceof Tensor) as Tensor;
          await n.read(first);
        }
        destroyOutputs(out);
        if (i === 20) base = n.stats();
      }
      const end = n.stats();
      expect(end, `${name}: after 200 calls vs after 20`).toEqual(base);
      expect(end, `${name}: after 200 calls vs before`).toEqual(before);
    }
  });

  it('failed calls, wrapped tensors and reads allocate nothing that stays', async () => {
    const x = n.tensor(new Float32Array(64).fill(1), [8, 8]);
    const before = n.stats();
    for (let i = 0; i < 500; i++) {
      expect(() => n.layerNorm(x, { normalizedShape: [7] })).toThrow(ShapeError);
      expect(() => n.tensor(new Float32Array(3), [4])).toThrow(ShapeError);
    }
    expect(n.stats(), 'after 1000 failed calls').toEqual(before);
    for (let i = 0; i < 200; i++) await n.read(x);
    expect(n.stats(), 'after 200 reads').toEqual(before);
    if (!n.device) return x.destroy(); // the wasm backend has no wrap()
    const buf = n.device!.createBuffer({ size: 256, usage: 0x80 | 0x4 | 0x8 });
    for (let i = 0; i < 200; i++) n.wrap(buf, [8, 8]).destroy();
    expect(n.stats(), 'after 200 wrap + destroy').toEqual(before);
    // Destroying a wrapped tensor leaves the caller's buffer usable.
    const wrapped = n.wrap(buf, [8, 8]);
    n.device!.queue.writeBuffer(buf, 0, new Float32Array(64).fill(2));
    expect([...(await n.read(wrapped))]).toEqual(new Array(64).fill(2));
    wrapped.destroy();
    buf.destroy();
    x.destroy();
  });

  it('after norms.destroy(), a new instance works and the old one refuses work', async () => {
    const a = await gpuNorms();
    const x = a.tensor(makeRng(5).fill(4 * 64, 0, 1), [4, 64]);
    const y = a.layerNorm(x, { normalizedShape: [64] }).y;
    await a.read(y);
    a.destroy();
    expect(() => a.layerNorm(x, { normalizedShape: [64] })).toThrow(DeviceError);
    expect(() => a.tensor(new Float32Array(4), [4])).toThrow(DeviceError);
    await expect(a.read(y)).rejects.toThrow(DeviceError);
    expect(() => a.destroy(), 'destroy twice').not.toThrow();
    const b = await gpuNorms();
    const xd = makeRng(6).fill(4 * 64, 0, 1);
    const bx = b.tensor(xd, [4, 64]);
    const by = b.layerNorm(bx, { normalizedShape: [64] }).y;
    const cy = cpu.layerNorm(cpu.tensor(xd, [4, 64]), { normalizedShape: [64] }).y;
    expectClose('layerNorm on the new instance', await b.read(by), await cpu.read(cy), 1e-4);
    // Many create/destroy cycles do not run out of anything.
    for (let i = 0; i < 20; i++) {
      const c = await gpuNorms();
      const t = c.tensor(xd, [4, 64]);
      const o = c.rmsNorm(t, { normalizedShape: [64] });
      expect((await c.read(o.y)).every(Number.isFinite)).toBe(true);
      c.destroy();
    }
    b.destroy();
  });
});
