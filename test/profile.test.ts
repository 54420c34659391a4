/**
 * createNorms({ profile: true }) and norms.profile(): per op the kernels dispatched, their
 * workgroups, the tensor bytes they read and write (from the element ranges they touch), and GPU
 * times where the device has timestamp-query (SwiftShader has it). Layer norm forward on both
 * adapter classes, a windowed op against the same op unwindowed, and the option's checks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValueError, createNorms, type Norms, type OpProfile } from '../src/index.ts';
import { gpuNorms } from './util/gpu.ts';
import { makeRng } from './util/rng.ts';

const sum = (p: OpProfile, k: 'bytesRead' | 'bytesWritten') => p.kernels.reduce((a, x) => a + x[k], 0);

let cpuClass: Norms;
let gpuClass: Norms;
beforeAll(async () => {
  cpuClass = await gpuNorms({ profile: true, adapterClass: 'cpu' });
  gpuClass = await gpuNorms({ profile: true, adapterClass: 'gpu' });
});
afterAll(() => {
  cpuClass?.destroy();
  gpuClass?.destroy();
});

describe('profile', () => {
  const R = 64;
  const K = 768;

  it("layerNorm forward, adapterClass 'cpu': one dispatch reading x, writing y, mean and rstd", async () => {
    const n = cpuClass;
    const x = n.tensor(makeRng(1).fill(R * K), [R, K]);
    await n.profile(); // (drops nothing of interest: tensor() dispatches nothing)
    const f = n.layerNorm(x, { normalizedShape: [K] });
    const recs = await n.profile();
    expect(recs.map((r) => r.op)).toEqual(['layerNorm']);
    const [k] = recs[0]!.kernels;
    expect(recs[0]!.kernels).toHaveLength(1);
    expect(k!.name).toMatch(/^fused_rows_welford\[/);
    expect(k!.workgroups).toBeGreaterThan(0);
    expect(k!.bytesRead).toBe(R * K * 4);
    expect(k!.bytesWritten).toBe(R * K * 4 + 2 * R * 4);
    if (n.device!.features.has('timestamp-query')) {
      expect(typeof k!.gpuMs).toBe('number');
      expect(k!.gpuMs!).toBeGreaterThanOrEqual(0);
    }
    expect(await n.profile(), 'records since the last call').toEqual([]);
    for (const t of [x, f.y, f.mean, f.rstd]) t.destroy();
  });

  it("layerNorm forward, adapterClass 'gpu': x read, y/mean/rstd written, bounded traffic", async () => {
    const n = gpuClass;
    const x = n.tensor(makeRng(2).fill(R * K), [R, K]);
    const w = n.tensor(makeRng(3).fill(K, 1, 0.1), [K]);
    const f = n.layerNorm(x, { normalizedShape: [K], weight: w });
    const [p] = await n.profile();
    expect(p!.op).toBe('layerNorm');
    expect(p!.kernels.length).toBeGreaterThanOrEqual(1);
    const minRead = R * K * 4 + K * 4;
    const minWritten = R * K * 4 + 2 * R * 4;
    expect(sum(p!, 'bytesRead')).toBeGreaterThanOrEqual(minRead);
    expect(sum(p!, 'bytesWritten')).toBeGreaterThanOrEqual(minWritten);
    expect((sum(p!, 'bytesRead') + sum(p!, 'bytesWritten')) / (minRead + minWritten)).toBeLessThan(3);
    for (const k of p!.kernels) {
      expect(k.name).toMatch(/^[a-z_]+\[/);
      expect(k.workgroups).toBeGreaterThan(0);
    }
    for (const t of [x, w, f.y, f.mean, f.rstd]) t.destroy();
  });

  it("layerNorm/rmsNorm backward at [512, 768], adapterClass 'gpu': x and dy read once (traffic <= 1.1x minimal), 2 dispatches", async () => {
    const n = gpuClass;
    const [Rb, Kb] = [512, 768];
    const x = n.tensor(makeRng(4).fill(Rb * Kb), [Rb, Kb]);
    const dy = n.tensor(makeRng(5).fill(Rb * Kb), [Rb, Kb]);
    const w = n.tensor(makeRng(6).fill(Kb, 1, 0.1), [Kb]);
    const b = n.tensor(new Float32Array(Kb), [Kb]);
    const f = n.layerNorm(x, { normalizedShape: [Kb], weight: w, bias: b });
    const r = n.rmsNorm(x, { normalizedShape: [Kb], weight: w });
    await n.profile();
    const minimal = 3 * Rb * Kb * 4;
    const g = n.layerNormBackward(dy, x, f.mean, f.rstd, { normalizedShape: [Kb], weight: w, bias: b });
    const gr = n.rmsNormBackward(dy, x, r.rstd, { normalizedShape: [Kb], weight: w });
    const g0 = n.layerNormBackward(dy, x, f.mean, f.rstd, { normalizedShape: [Kb] });
    const [p, pr, p0] = await n.profile();
    expect([p!.op, pr!.op, p0!.op]).toEqual(['layerNormBackward', 'rmsNormBackward', 'layerNormBackward']);
    // The rows kernel (dx and column partials), then weight_bias_grads over the partials; without
    // dweight/dbias the rows kernel alone.
    expect(p!.kernels.map((k) => k.name.replace(/\[.*/, ''))).toEqual(['workgroup_rows_grad', 'weight_bias_grads']);
    expect(p!.kernels[0]!.name).toMatch(/^workgroup_rows_grad\[/);
    expect(p!.kernels[1]!.name).toMatch(/^weight_bias_grads\[/);
    expect(pr!.kernels).toHaveLength(2);
    expect(p0!.kernels).toHaveLength(1);
    expect(p0!.kernels[0]!.name).toMatch(/^workgroup_rows_grad\[/);
    for (const q of [p!, pr!, p0!]) {
      const moved = sum(q, 'bytesRead') + sum(q, 'bytesWritten');
      expect(moved / minimal, q.op).toBeLessThanOrEqual(1.1);
      expect(sum(q, 'bytesRead')).toBeGreaterThanOrEqual(2 * Rb * Kb * 4);
    }
    for (const t of [x, dy, w, b, f.y, f.mean, f.rstd, r.y, r.rstd, g.dx, g.dweight, g.dbias, gr.dx, gr.dweight, g0.dx]) t?.destroy();
  });

  it('a windowed op: more dispatches, bytes written and read within 2 % and 20 % of the unwindowed op', async () => {
    const data = makeRng(4).fill(R * K, 1, 2);
    const run = async (maxBindingBytes?: number) => {
      const n = await gpuNorms({ profile: true, adapterClass: 'cpu', variant: 'general', ...(maxBindingBytes ? { maxBindingBytes } : {}) });
      const x = n.tensor(data, [R, K]);
      n.layerNorm(x, { normalizedShape: [K] });
      const [p] = await n.profile();
      n.destroy();
      return p!;
    };
    const whole = await run();
    const win = await run(16 * 1024);
    expect(win.kernels.length).toBeGreaterThan(whole.kernels.length);
    expect(win.kernels.some((k) => k.name.includes('WINDOW'))).toBe(true);
    // x read twice (statistics, then normalize), y written once, whatever the windows.
    expect(sum(win, 'bytesRead')).toBeGreaterThanOrEqual(2 * R * K * 4);
    // (Window edges: a few partials counted twice, touched() being a superset there.)
    expect(sum(win, 'bytesWritten') / sum(whole, 'bytesWritten')).toBeGreaterThanOrEqual(1);
    expect(sum(win, 'bytesWritten') / sum(whole, 'bytesWritten')).toBeLessThan(1.02);
    expect(sum(win, 'bytesRead') / sum(whole, 'bytesRead')).toBeLessThan(1.2);
    expect(sum(win, 'bytesRead') / sum(whole, 'bytesRead')).toBeGreaterThanOrEqual(1);
  });

  it('without the option: an empty list; a non-boolean option is a ValueError', async () => {
    const n = await gpuNorms();
    const x = n.tensor([1, 2, 3, 4], [2, 2]);
    n.layerNorm(x, { normalizedShape: [2] });
    expect(await n.profile()).toEqual([]);
    n.destroy();
    await expect(createNorms({ backend: 'cpu', profile: 'yes' as unknown as boolean })).rejects.toThrow(ValueError);
    const c = await createNorms({ backend: 'cpu', profile: true });
    expect(await c.profile()).toEqual([]);
    c.destroy();
  });
});

describe('profile: channel norms', () => {
  const classes = () => [['cpu', cpuClass], ['gpu', gpuClass]] as const;
  for (const channelsLast of [false, true]) {
    it(`batchNorm eval forward is one dispatch reading x once on both classes${channelsLast ? ' (channelsLast)' : ''}`, async () => {
      for (const [cls, n] of classes()) {
        for (const shape of [[3, 5, 7, 9], [1, 1, 13], [2, 8, 16, 16]]) {
          const C = channelsLast ? shape.at(-1)! : shape[1]!;
          const size = shape.reduce((a, b) => a * b, 1);
          const x = n.tensor(makeRng(5).fill(size), shape);
          const rm = n.tensor(makeRng(6).fill(C), [C]);
          const rv = n.tensor(makeRng(7).fill(C, 1, 0.1), [C]);
          const w = n.tensor(makeRng(8).fill(C), [C]);
          const f = n.batchNorm(x, { training: false, runningMean: rm, runningVar: rv, weight: w, channelsLast });
          const dy = n.tensor(makeRng(9).fill(size), shape);
          const b = n.batchNormBackward(dy, x, { training: false, runningMean: rm, runningVar: rv, weight: w, channelsLast });
          const [pf, pb] = await n.profile();
          expect(pf!.kernels.map((k) => k.name), `${cls} ${shape}`).toHaveLength(1);
          expect(pf!.kernels[0]!.name).toMatch(/EVAL_STATS/);
          expect(sum(pf!, 'bytesRead')).toBeLessThanOrEqual(size * 4 + 3 * C * 4);
          expect(sum(pf!, 'bytesWritten')).toBe(size * 4);
          // Eval backward: partials (dweight), coefficients, dx; no separate statistics step.
          const roles = ['grad_partials', 'channels_last_grad_partials', 'grad_coefficients', 'grad_elements'];
          expect(pb!.kernels.filter((k) => !roles.includes(k.name.replace(/\[.*/, ''))), `${cls} ${shape}`).toEqual([]);
          expect(pb!.kernels.length).toBeLessThanOrEqual(3);
          for (const t of [x, rm, rv, w, f.y, dy, b.dx, b.dweight!]) t.destroy();
        }
      }
    });
  }
});

describe('profile: channel norms in training, GPU class', () => {
  /** Bytes a training forward must move: x read, y written, per-channel params read, statistics written (running ones read and written). */
  const minimal = (size: number, C: number, stats: number, running: boolean) => size * 4 * 2 + 2 * C * 4 + stats * 4 + (running ? 4 * C * 4 : 0);
  const moved = (p: OpProfile) => sum(p, 'bytesRead') + sum(p, 'bytesWritten');
  // Odd sizes, one sample, groups past the register path (the split kernels: x read twice),
  // channels last; each at least ~100 KiB so that per-group partials are a small part.
  const GROUP_CASES: [number[], number, boolean][] = [
    [[2, 64, 32, 32], 32, false],
    [[3, 6, 45, 47], 3, false],
    [[1, 4, 9001], 1, false],
    [[2, 33, 31, 12], 3, true],
  ];
  it.each(GROUP_CASES)('groupNorm %j G=%i (channelsLast %s): traffic <= 1.55x minimal, at most 3 dispatches', async (shape, G, channelsLast) => {
    const n = gpuClass;
    const C = channelsLast ? shape.at(-1)! : shape[1]!;
    const size = shape.reduce((a, b) => a * b, 1);
    const x = n.tensor(makeRng(11).fill(size), shape);
    const w = n.tensor(makeRng(12).fill(C), [C]);
    const b = n.tensor(makeRng(13).fill(C), [C]);
    const f = n.groupNorm(x, { numGroups: G, weight: w, bias: b, channelsLast });
    const [p] = await n.profile();
    const ratio = moved(p!) / minimal(size, C, 2 * shape[0]! * G, false);
    expect(ratio, `${shape} ${p!.kernels.map((k) => k.name).join(' ')}`).toBeLessThanOrEqual(1.55);
    expect(p!.kernels.length).toBeLessThanOrEqual(3);
    for (const t of [x, w, b, f.y, f.mean, f.rstd]) t.destroy();
  });

  it.each([[[2, 3, 77, 91]], [[1, 2, 10007]]])('instanceNorm %j: traffic <= 1.55x minimal', async (shape) => {
    const n = gpuClass;
    const C = shape[1]!;
    const size = shape.reduce((a, b) => a * b, 1);
    const x = n.tensor(makeRng(14).fill(size), shape);
    const f = n.instanceNorm(x);
    const [p] = await n.profile();
    expect(p!.op).toBe('instanceNorm');
    expect(moved(p!) / minimal(size, 0, 2 * shape[0]! * C, false), p!.kernels.map((k) => k.name).join(' ')).toBeLessThanOrEqual(1.55);
    for (const t of [x, f.y, f.mean, f.rstd]) t.destroy();
  });

  it.each([
    [[16, 4, 50, 50], false],
    [[7, 5, 33, 37], false],
    [[1, 3, 20011], false],
    [[4, 25, 25, 20], true],
  ])('batchNorm training %j (channelsLast %s), running statistics updated: traffic <= 1.55x minimal, 3 dispatches', async (shape, channelsLast) => {
    const n = gpuClass;
    const C = channelsLast ? shape.at(-1)! : shape[1]!;
    const size = shape.reduce((a, b) => a * b, 1);
    const x = n.tensor(makeRng(15).fill(size), shape);
    const [w, b, rm] = [16, 17, 18].map((s) => n.tensor(makeRng(s).fill(C), [C]));
    const rv = n.tensor(makeRng(19).fill(C, 1, 0.1), [C]);
    const f = n.batchNorm(x, { training: true, weight: w, bias: b, runningMean: rm, runningVar: rv, channelsLast });
    const [p] = await n.profile();
    expect(moved(p!) / minimal(size, C, 2 * C, true), p!.kernels.map((k) => k.name).join(' ')).toBeLessThanOrEqual(1.55);
    expect(p!.kernels).toHaveLength(3);
    for (const t of [x, w, b, rm, rv, f.y, f.saveMean, f.saveInvstd]) t.destroy();
  });
});
