/**
 * Large tensors and adapter limits:
 * - layerNorm over [300000, 512] float32 (614 MB) when the adapter allows such a buffer:
 *   y, mean and rstd of 50 random rows against a float64 reference computed here for those rows
 *   only, and no unwritten (NaN-poisoned) element anywhere in y;
 * - the same layerNorm, and the [2, 4, 8400000] batch norm below, on a second device created
 *   with WebGPU's default maxStorageBufferBindingSize (128 MiB) and the adapter's maxBufferSize:
 *   tensors past a real binding limit, processed in bound ranges (the batch norm's channel
 *   slices are past half a binding too: chunks within runs);
 * - dispatches past 65,535 workgroups in one dimension: layerNorm / layerNormBackward over
 *   [4200000, 1] (one row per invocation: 65,625 workgroups of 64), default and general kernels;
 *   training batchNorm forward + backward over [2, 4, 8400000] (67.2M elements, checked element
 *   by element against float64; its apply kernels take blocks of 128 elements per invocation on
 *   CPU adapters, 8,203 workgroups: the layer norm above is the case past 65,535 there);
 * - tensors and op outputs/temporaries past maxBufferSize: LimitError naming the limit, thrown
 *   before anything is allocated (stats().liveBytes unchanged), never data.
 * Big host and GPU buffers are freed as soon as each check is done.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNorms, LimitError, NormError, Tensor, type Norms } from '../src/index.ts';
import { create } from 'webgpu';
import { gpuNorms } from './util/gpu.ts';

let n: Norms;
let general: Norms;
/** On a device with the default 128 MiB storage binding limit (and the adapter's buffer limit). */
let bound128: Norms;
let keep: unknown[] = [];
beforeAll(async () => {
  n = await gpuNorms();
  general = await createNorms({ backend: 'webgpu', device: n.device!, poisonOutputs: true, variant: 'general' });
  const gpu = create([]);
  const adapter = await gpu.requestAdapter();
  if (!adapter) throw new Error('no WebGPU adapter');
  const device = await adapter.requestDevice({ requiredLimits: { maxBufferSize: adapter.limits.maxBufferSize } });
  keep = [gpu, adapter]; // a collected GPU instance takes its devices down in Node
  bound128 = await createNorms({ backend: 'webgpu', device, poisonOutputs: true });
});
afterAll(() => {
  bound128?.destroy();
  bound128?.device?.destroy();
  keep = [];
  general?.destroy();
  n?.destroy();
});

/** The device of `m` must bind less than `bytes` at once, or the check would not split anything. */
function expectPastBinding(m: Norms, bytes: number): void {
  const lim = m.device!.limits.maxStorageBufferBindingSize;
  if (!(bytes > lim)) throw new Error(`binding limit ${lim} >= ${bytes} bytes: this check needs a smaller binding limit`);
}

/** Fast seeded uniform [0, 1) stream (xorshift32); the tests need volume, not quality. */
function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

const limits = () => n.device!.limits;

function countNaN(a: Float32Array): number {
  let c = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== a[i]) c++;
  return c;
}

/** Relative L2 accumulator (got vs float64 reference), NaN never passes. */
class RelL2 {
  num = 0;
  den = 0;
  bad = 0;
  first = '';
  add(i: number, got: number, want: number): void {
    if (!Number.isFinite(got)) {
      if (!this.bad++) this.first = `[${i}] got ${got} expected ${want}`;
      return;
    }
    this.num += (got - want) ** 2;
    this.den += want * want;
  }
  check(label: string, tol = 1e-4): void {
    expect(this.bad, `${label}: ${this.bad} non-finite values, first ${this.first}`).toBe(0);
    const err = this.num === 0 ? 0 : Math.sqrt(this.num / Math.max(this.den, 1e-300));
    expect(err, `${label}: relative L2`).toBeLessThanOrEqual(tol);
  }
}

describe('large tensors', () => {
  it('layerNorm over [300000, 512] float32 (614 MB), sampled rows vs float64', () => bigLayerNorm(n));
  it('the same on a device with a 128 MiB storage binding limit (bound ranges)', async () => {
    expectPastBinding(bound128, 300_000 * 512 * 4);
    await bigLayerNorm(bound128);
  });
});

async function bigLayerNorm(n: Norms): Promise<void> {
  {
    const R = 300_000, K = 512;
    const bytes = R * K * 4;
    const L = n.device!.limits;
    console.log(`large: maxBufferSize ${L.maxBufferSize}, maxStorageBufferBindingSize ${L.maxStorageBufferBindingSize}`);
    if (bytes > L.maxBufferSize) {
      // The adapter cannot hold it: the library must say so with a LimitError, allocating nothing.
      const before = n.stats();
      expect(() => n.tensor(new Float32Array(R * K), [R, K])).toThrow(LimitError);
      expect(n.stats()).toEqual(before);
      return;
    }
    const t0 = performance.now();
    const rnd = xorshift(12345);
    const xh = new Float32Array(R * K);
    // Row r: offset (r mod 23) − 11 (large-ish, varies by row), scale 0.25 + (r mod 7).
    for (let r = 0; r < R; r++) {
      const mu = (r % 23) - 11, sc = 0.25 + (r % 7);
      const base = r * K;
      for (let j = 0; j < K; j++) xh[base + j] = mu + sc * (rnd() - 0.5);
    }
    const wh = new Float32Array(K), bh = new Float32Array(K);
    for (let j = 0; j < K; j++) {
      wh[j] = 0.5 + rnd();
      bh[j] = rnd() - 0.5;
    }
    const before = n.stats();
    const x = n.tensor(xh, [R, K]);
    const w = n.tensor(wh, [K]), b = n.tensor(bh, [K]);
    const f = n.layerNorm(x, { normalizedShape: [K], weight: w, bias: b });
    x.destroy(); // freed once the queued work is done
    const y = await n.read(f.y);
    const mean = await n.read(f.mean);
    const rstd = await n.read(f.rstd);
    const tGpu = performance.now();
    for (const t of [f.y, f.mean, f.rstd, w, b]) t.destroy();
    expect(n.stats(), 'everything freed').toEqual(before);
    expect(y.length).toBe(R * K);
    expect(countNaN(y), 'NaN (unwritten or poisoned) elements in y').toBe(0);
    // 50 random rows, the first and the last included.
    const rows = [0, R - 1];
    const pick = xorshift(99);
    while (rows.length < 50) rows.push(Math.floor(pick() * R));
    const ey = new RelL2(), em = new RelL2(), er = new RelL2();
    for (const r of rows) {
      const base = r * K;
      let s = 0;
      for (let j = 0; j < K; j++) s += xh[base + j]!;
      const mu = s / K;
      let v = 0;
      for (let j = 0; j < K; j++) v += (xh[base + j]! - mu) ** 2;
      const rs = 1 / Math.sqrt(v / K + 1e-5);
      em.add(r, mean[r]!, mu);
      er.add(r, rstd[r]!, rs);
      for (let j = 0; j < K; j++) ey.add(base + j, y[base + j]!, (xh[base + j]! - mu) * rs * wh[j]! + bh[j]!);
    }
    ey.check('y on the sampled rows');
    em.check('mean on the sampled rows');
    er.check('rstd on the sampled rows');
    console.log(`large: layerNorm [${R}, ${K}] upload+compute+read ${((tGpu - t0) / 1000).toFixed(1)} s (binding limit ${n.device!.limits.maxStorageBufferBindingSize})`);
  }
}

describe('dispatches past 65,535 workgroups in one dimension', () => {
  const ROWS = 4_200_000; // ceil(4.2M / 64) = 65,625 workgroups for one-row-per-invocation kernels
  for (const variant of ['auto', 'general'] as const) {
    // auto (one row per invocation here): forward and backward kernels each dispatch 65,625
    // workgroups; general: the reduce and finalize kernels do (forward only, to keep the time).
    const withBackward = variant === 'auto';
    it(`layerNorm${withBackward ? ' + backward' : ''} over [${ROWS}, 1] (${variant})`, async () => {
      const m = variant === 'auto' ? n : general;
      const before = m.stats();
      const rnd = xorshift(7);
      const xh = new Float32Array(ROWS), dyh = new Float32Array(ROWS);
      for (let i = 0; i < ROWS; i++) {
        xh[i] = (rnd() - 0.5) * 1000;
        dyh[i] = rnd() - 0.3;
      }
      const x = m.tensor(xh, [ROWS, 1]);
      const w = m.tensor([1.5], [1]), b = m.tensor([-0.25], [1]);
      const f = m.layerNorm(x, { normalizedShape: [1], weight: w, bias: b });
      const dy = withBackward ? m.tensor(dyh, [ROWS, 1]) : null;
      const g = dy ? m.layerNormBackward(dy, x, f.mean, f.rstd, { normalizedShape: [1] }) : null;
      const [y, mean, rstd] = await Promise.all([f.y, f.mean, f.rstd].map((t) => m.read(t)));
      const dx = g ? await m.read(g.dx) : null;
      for (const t of [x, dy, w, b, f.y, f.mean, f.rstd, g?.dx]) t?.destroy();
      expect(m.stats()).toEqual(before);
      // One element per row: mean = x exactly, x̂ = 0, y = bias, dx = 0.
      const wrong: string[] = [];
      const rs = Math.fround(1 / Math.sqrt(1e-5));
      for (let i = 0; i < ROWS && wrong.length < 5; i++) {
        if (mean[i] !== xh[i]) wrong.push(`mean[${i}] ${mean[i]} vs x ${xh[i]}`);
        if (!(Math.abs(rstd[i]! - rs) <= 1e-4 * rs)) wrong.push(`rstd[${i}] ${rstd[i]} vs ${rs}`);
        if (y[i] !== -0.25) wrong.push(`y[${i}] ${y[i]} vs bias -0.25`);
        if (dx && dx[i] !== 0) wrong.push(`dx[${i}] ${dx[i]} vs 0`);
      }
      expect(wrong.join('\n'), 'rows past the first 65,535 workgroups must be computed too').toBe('');
    });
  }

  it('training batchNorm forward + backward over [2, 4, 8400000] (67.2M elements)', () => bigBatchNorm(n));
  it('the same on a device with a 128 MiB storage binding limit (bound ranges)', async () => {
    expectPastBinding(bound128, 2 * 4 * 8_400_000 * 4);
    await bigBatchNorm(bound128);
  });
});

async function bigBatchNorm(n: Norms): Promise<void> {
  {
    const N = 2, C = 4, S = 8_400_000, total = N * C * S;
    const before = n.stats();
    const rnd = xorshift(31);
    const xh = new Float32Array(total);
    const dyh = new Float32Array(total);
    const off = [3, -2, 0.5, 10], sc = [1, 2, 0.5, 4];
    for (let i = 0; i < total; i++) {
      const c = Math.floor(i / S) % C;
      xh[i] = off[c]! + sc[c]! * (rnd() - 0.5);
      dyh[i] = rnd() - 0.5 + 0.1 * c;
    }
    const wh = Float32Array.from([1.5, 0.5, -1, 2]), bh = Float32Array.from([0.1, -0.2, 0.3, 0]);
    const x = n.tensor(xh, [N, C, S]);
    const w = n.tensor(wh, [C]), b = n.tensor(bh, [C]);
    const f = n.batchNorm(x, { training: true, weight: w, bias: b });
    const y = await n.read(f.y);
    const saveMean = await n.read(f.saveMean);
    const saveInvstd = await n.read(f.saveInvstd);
    f.y.destroy();
    // float64 per-channel statistics (two-pass).
    const M = N * S;
    const mu = new Float64Array(C), iv = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let k = 0; k < N; k++) for (let i = (k * C + c) * S, e = i + S; i < e; i++) s += xh[i]!;
      mu[c] = s / M;
      let v = 0;
      for (let k = 0; k < N; k++) for (let i = (k * C + c) * S, e = i + S; i < e; i++) v += (xh[i]! - mu[c]!) ** 2;
      iv[c] = 1 / Math.sqrt(v / M + 1e-5);
    }
    const em = new RelL2(), ei = new RelL2(), ey = new RelL2();
    for (let c = 0; c < C; c++) {
      em.add(c, saveMean[c]!, mu[c]!);
      ei.add(c, saveInvstd[c]!, iv[c]!);
    }
    em.check('saveMean');
    ei.check('saveInvstd');
    for (let i = 0; i < total; i++) {
      const c = Math.floor(i / S) % C;
      ey.add(i, y[i]!, (xh[i]! - mu[c]!) * iv[c]! * wh[c]! + bh[c]!);
    }
    ey.check('y (every element, the last workgroups included)');
    // Backward from the GPU's saved statistics: they are x's mean rounded to float32, so the
    // backward recovers x's own mean (float64 here) from x.
    const dy = n.tensor(dyh, [N, C, S]);
    const g = n.batchNormBackward(dy, x, { training: true, weight: w, bias: b, saveMean: f.saveMean, saveInvstd: f.saveInvstd });
    const dx = await n.read(g.dx);
    const dw = await n.read(g.dweight!), db = await n.read(g.dbias!);
    for (const t of [x, dy, w, b, f.saveMean, f.saveInvstd, g.dx, g.dweight!, g.dbias!]) t.destroy();
    expect(n.stats()).toEqual(before);
    const sdy = new Float64Array(C), sdyx = new Float64Array(C);
    for (let i = 0; i < total; i++) {
      const c = Math.floor(i / S) % C;
      sdy[c] += dyh[i]!;
      sdyx[c] += dyh[i]! * (xh[i]! - mu[c]!) * saveInvstd[c]!;
    }
    const edw = new RelL2(), edb = new RelL2(), edx = new RelL2();
    for (let c = 0; c < C; c++) {
      edw.add(c, dw[c]!, sdyx[c]!);
      edb.add(c, db[c]!, sdy[c]!);
    }
    edw.check('dweight');
    edb.check('dbias');
    for (let i = 0; i < total; i++) {
      const c = Math.floor(i / S) % C;
      const xhat = (xh[i]! - mu[c]!) * saveInvstd[c]!;
      edx.add(i, dx[i]!, wh[c]! * saveInvstd[c]! * (dyh[i]! - sdy[c]! / M - (xhat * sdyx[c]!) / M));
    }
    edx.check('dx (every element)');
  }
}

describe('past maxBufferSize: LimitError before allocating', () => {
  const HOST_MAX = 2 ** 31; // host arrays of this size are as far as this test goes
  const STORAGE_COPY = 0x80 | 0x4 | 0x8;

  it('tensor() of maxBufferSize + 16 bytes', () => {
    const max = limits().maxBufferSize;
    if (max + 16 > HOST_MAX) {
      console.log(`large: maxBufferSize ${max} too big for a host array here; tensor() limit check skipped`);
      return;
    }
    // maxBufferSize need not be a multiple of 16 (or of 4): every size below is derived with floor.
    const big4 = Math.floor(max / 4) + 4;
    const before = n.stats();
    let err: unknown = null;
    try {
      n.tensor(new Float32Array(big4), [big4]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LimitError);
    expect((err as Error).message).toMatch(/maxBufferSize/);
    expect((err as Error).message).toContain(String(max));
    expect(['data', 'shape'], `err.argument names an argument of tensor(): ${(err as LimitError).argument}`).toContain((err as LimitError).argument);
    expect(n.stats(), 'nothing allocated').toEqual(before);
    // Two dims whose product passes the limit (no overflow to a small number).
    const half8 = Math.floor(max / 8) + 2; // 2 * half8 float32 values: past max too, whatever max is
    expect(() => n.tensor(new Float32Array(2 * half8), [2, half8])).toThrow(LimitError);
    expect(n.stats()).toEqual(before);
  });

  it('an op whose float32 statistics pass the limit (float16 x [maxBufferSize/4 + 4, 1])', () => {
    const max = limits().maxBufferSize;
    const rows = 2 * Math.floor(max / 8) + 4; // x: rows·2 bytes (fits, a multiple of 4); mean/rstd: rows·4 bytes (do not)
    // The input is a caller's zero-filled GPU buffer (no host data needed).
    const buf = n.device!.createBuffer({ size: rows * 2, usage: STORAGE_COPY });
    const x = n.wrap(buf, [rows, 1], 'float16');
    const before = n.stats();
    for (const [name, call] of [
      ['layerNorm', () => n.layerNorm(x, { normalizedShape: [1] })],
      ['rmsNorm', () => n.rmsNorm(x, { normalizedShape: [1] })],
    ] as const) {
      let err: unknown = null;
      let out: object | null = null;
      try {
        out = call();
      } catch (e) {
        err = e;
      }
      if (out) for (const v of Object.values(out)) if (v instanceof Tensor) v.destroy();
      const leaked = n.stats().liveBytes - before.liveBytes;
      expect(err, `${name}: must throw LimitError synchronously`).toBeInstanceOf(LimitError);
      expect((err as Error).message).toMatch(/maxBufferSize/);
      expect(leaked, `${name}: bytes of outputs allocated before the limit was hit and never freed`).toBe(0);
    }
    x.destroy();
    buf.destroy();
  });

  it('an op whose temporary buffers would pass the limit (groupNormBackward over [1, maxBufferSize/16 + 4])', async () => {
    const max = limits().maxBufferSize;
    const C = Math.floor(max / 16) + 4; // x, dy: C·4 bytes, about max/4; per-(n, c) partials: at least C·16 bytes
    const buf = n.device!.createBuffer({ size: C * 4, usage: STORAGE_COPY });
    const x = n.wrap(buf, [1, C]);
    const dy = n.wrap(buf, [1, C]);
    const mean = n.tensor([0], [1, 1]);
    const rstd = n.tensor([0.5], [1, 1]);
    const before = n.stats();
    let err: unknown = null;
    let out: { dx: Tensor } | null = null;
    try {
      out = n.groupNormBackward(dy, x, mean, rstd, { numGroups: 1 });
    } catch (e) {
      err = e;
    }
    let readResult = 'not reached';
    if (out) {
      // Whatever else happens, no data may come back from a computation that could not run.
      try {
        const d = await n.read(out.dx);
        readResult = `returned ${d.length} values (first ${d[0]}, NaN ${countNaN(d)})`;
      } catch (e) {
        readResult = `rejected: ${(e as Error).name}: ${(e as Error).message.split('\n')[0]}`;
        expect(e, 'a rejection must be a typed NormError').toBeInstanceOf(NormError);
      }
      for (const v of Object.values(out)) if (v instanceof Tensor) v.destroy();
      expect(readResult, 'read of an output whose temporaries could not be allocated').toMatch(/^rejected/);
    }
    expect(err, `groupNormBackward must throw LimitError before allocating (read: ${readResult})`).toBeInstanceOf(LimitError);
    expect(n.stats()).toEqual(before);
    for (const t of [x, dy, mean, rstd]) t.destroy();
    buf.destroy();
  });
});
