/**
 * Device loss and WebGPU validation failures, on instances of their own (never a shared device):
 * - device.destroy() with work in flight: pending reads reject with DeviceLostError; an op
 *   enqueued in the same tick (before the loss is reported) has reads that reject with
 *   DeviceLostError; once the loss is reported, ops, tensor() and read() throw / reject with it;
 * - createNorms again on the same `gpu` object works and computes correctly;
 * - a validation error from WebGPU (a wrapped buffer without STORAGE usage, a destroyed wrapped
 *   buffer, a buffer of another device) makes the read reject with a DeviceError carrying the
 *   WebGPU message; it never returns data, and the instance stays usable.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create } from 'webgpu';
import { createNorms, DeviceError, DeviceLostError, Tensor, type Norms } from '../src/index.ts';
import { expectClose } from './util/gpu.ts';
import { makeRng } from './util/rng.ts';

const STORAGE = 0x80, COPY_SRC = 0x4, COPY_DST = 0x8;

let gpu: GPU;
let cpu: Norms;
beforeAll(async () => {
  gpu = create([]);
  const adapter = await gpu.requestAdapter();
  if (!adapter) throw new Error(`No WebGPU adapter in Node (VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES ?? '(unset)'}); run through scripts/env.sh`);
  cpu = await createNorms({ backend: 'cpu' });
});
afterAll(() => cpu?.destroy());

const fresh = async (): Promise<Norms> => {
  const n = await createNorms({ gpu, backend: 'webgpu', poisonOutputs: true });
  expect(n.backend).toBe('webgpu');
  return n;
};

/** Settles a promise into { ok, value | error } without an unhandled rejection. */
async function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  try {
    return { ok: true, value: await p };
  } catch (error) {
    return { ok: false, error };
  }
}

function expectRejectedWith(label: string, r: { ok: boolean; error?: unknown; value?: unknown }, cls: typeof DeviceError): void {
  expect(r.ok, `${label}: must reject, got ${r.ok ? 'data' : ''}`).toBe(false);
  expect(r.error, `${label}: ${String(r.error)}`).toBeInstanceOf(cls);
}

function expectThrowsWith(label: string, f: () => unknown, cls: typeof DeviceError): void {
  let err: unknown = null;
  try {
    const r = f();
    if (r && typeof r === 'object') for (const v of Object.values(r)) if (v instanceof Tensor) v.destroy();
  } catch (e) {
    err = e;
  }
  expect(err, `${label}: must throw ${cls.name}`).toBeInstanceOf(cls);
}

/** A layerNorm forward + backward on [rows, K] checked against the CPU reference. */
async function checkWorks(n: Norms, seed: number, rows = 16, K = 300): Promise<void> {
  const xd = makeRng(seed).fill(rows * K, 0.5, 2);
  const dyd = makeRng(seed + 1).fill(rows * K, 0, 1);
  const wd = makeRng(seed + 2).fill(K, 1, 0.5);
  const bd = makeRng(seed + 3).fill(K, 0, 0.5);
  const run = async (m: Norms) => {
    const x = m.tensor(xd, [rows, K]), dy = m.tensor(dyd, [rows, K]), w = m.tensor(wd, [K]), b = m.tensor(bd, [K]);
    const f = m.layerNorm(x, { normalizedShape: [K], weight: w, bias: b });
    const g = m.layerNormBackward(dy, x, f.mean, f.rstd, { normalizedShape: [K], weight: w, bias: b });
    const out = { y: await m.read(f.y), rstd: await m.read(f.rstd), dx: await m.read(g.dx), dweight: await m.read(g.dweight!), dbias: await m.read(g.dbias!) };
    for (const t of [x, dy, w, b, f.y, f.mean, f.rstd, g.dx, g.dweight!, g.dbias!]) t.destroy();
    return out;
  };
  const got = await run(n);
  const want = await run(cpu);
  for (const k of Object.keys(want) as (keyof typeof want)[]) expectClose(`after recovery: ${k}`, got[k], want[k], 1e-4);
}

describe('device loss', () => {
  it('pending reads reject with DeviceLostError; later calls fail with it; createNorms on the same gpu recovers', async () => {
    const n = await fresh();
    const rows = 256, K = 16384; // 4M elements per op: long enough on any adapter that the reads are still pending
    const x = n.tensor(makeRng(1).fill(rows * K, 0, 1), [rows, K]);
    const w = n.tensor(makeRng(2).fill(K, 1, 0.1), [K]);
    const outs: Tensor[] = [];
    for (let i = 0; i < 6; i++) {
      const f = n.layerNorm(x, { normalizedShape: [K], weight: w });
      const g = n.rmsNormBackward(f.y, x, f.rstd, { normalizedShape: [K], weight: w });
      outs.push(f.y, f.mean, f.rstd, g.dx, g.dweight!);
    }
    const pending = outs.map((t) => settle(n.read(t)));
    n.device!.destroy();
    // An op enqueued right after the loss, before the device reports it.
    const late = n.rmsNorm(x, { normalizedShape: [K] });
    const lateReads = [settle(n.read(late.y)), settle(n.read(late.rstd))];
    const results = await Promise.all(pending);
    results.forEach((r, i) => expectRejectedWith(`pending read #${i}`, r, DeviceLostError));
    (await Promise.all(lateReads)).forEach((r, i) => expectRejectedWith(`read #${i} of an op enqueued right after the loss`, r, DeviceLostError));
    // The loss is now known: every entry point fails with DeviceLostError.
    const info = await n.device!.lost;
    expect(info.reason).toBe('destroyed');
    expectThrowsWith('layerNorm after the loss', () => n.layerNorm(x, { normalizedShape: [K] }), DeviceLostError);
    expectThrowsWith('rmsNormBackward after the loss', () => n.rmsNormBackward(x, x, late.rstd, { normalizedShape: [K] }), DeviceLostError);
    expectThrowsWith('groupNorm after the loss', () => n.groupNorm(x, { numGroups: 1 }), DeviceLostError);
    expectThrowsWith('tensor() after the loss', () => n.tensor(new Float32Array(4), [4]), DeviceLostError);
    expectRejectedWith('read of an input after the loss', await settle(n.read(x)), DeviceLostError);
    const err = (await settle(n.read(w))) as { ok: false; error: Error };
    expect(err.error.message, 'the message says how to recover').toMatch(/createNorms/);
    // Destroying tensors and the instance after the loss is harmless.
    for (const t of [...outs, x, w, late.y, late.rstd]) t.destroy();
    expect(() => n.destroy()).not.toThrow();

    // Recovery on the same GPU object.
    const m = await fresh();
    await checkWorks(m, 100);
    expect(m.stats().liveBuffers).toBe(0);
    m.destroy();
  });

  it('loss with nothing in flight: the next op throws DeviceLostError once reported, recovery works', async () => {
    const n = await fresh();
    const x = n.tensor(makeRng(3).fill(64, 0, 1), [4, 16]);
    const y = n.layerNorm(x, { normalizedShape: [16] }).y;
    await n.read(y);
    n.device!.destroy();
    await n.device!.lost;
    expectThrowsWith('weightNorm after the loss', () => n.weightNorm(x, x), DeviceLostError);
    expectThrowsWith('batchNorm after the loss', () => n.batchNorm(x, { training: true }), DeviceLostError);
    expectRejectedWith('read of a finished output after the loss', await settle(n.read(y)), DeviceLostError);
    n.destroy();
    // Two fresh instances on the same gpu, both working.
    const [a, b] = await Promise.all([fresh(), fresh()]);
    await checkWorks(a, 200);
    await checkWorks(b, 300, 3, 1000);
    a.destroy();
    b.destroy();
  });

  it('losing one device does not affect another instance on its own device', async () => {
    const a = await fresh();
    const b = await fresh();
    expect(a.device).not.toBe(b.device);
    const xa = a.tensor(new Float32Array(1024).fill(1), [1024]);
    a.device!.destroy();
    await a.device!.lost;
    await checkWorks(b, 400);
    xa.destroy();
    a.destroy();
    b.destroy();
  });
});

describe('WebGPU validation errors surface as DeviceError, never as data', () => {
  let n: Norms;
  beforeAll(async () => {
    n = await fresh();
  });
  afterAll(() => n?.destroy());

  async function expectValidationError(label: string, outs: Tensor[], pattern: RegExp): Promise<void> {
    for (const [i, t] of outs.entries()) {
      const r = await settle(n.read(t));
      expect(r.ok, `${label}: read of output #${i} returned data`).toBe(false);
      const e = (r as { error: unknown }).error;
      expect(e, `${label}: ${String(e)}`).toBeInstanceOf(DeviceError);
      expect(e, `${label}: a validation error is not a device loss`).not.toBeInstanceOf(DeviceLostError);
      expect((e as Error).message, `${label}: carries the WebGPU message`).toMatch(pattern);
    }
    for (const t of outs) t.destroy();
    // The instance keeps working.
    await checkWorks(n, 500);
  }

  it('a wrapped buffer without STORAGE usage used as input', async () => {
    const before = n.stats();
    const buf = n.device!.createBuffer({ size: 8 * 32 * 4, usage: COPY_SRC | COPY_DST });
    n.device!.queue.writeBuffer(buf, 0, makeRng(7).fill(8 * 32, 0, 1) as Float32Array<ArrayBuffer>);
    const x = n.wrap(buf, [8, 32]);
    // The wrapped data itself is readable (COPY_SRC).
    expect((await n.read(x)).length).toBe(256);
    const f = n.layerNorm(x, { normalizedShape: [32] });
    await expectValidationError('layerNorm of a non-STORAGE buffer', [f.y, f.mean, f.rstd], /usage|Storage|STORAGE/i);
    x.destroy();
    buf.destroy();
    expect(n.stats(), 'no buffer of the failed op left behind').toEqual(before);
  });

  it('a wrapped buffer the caller destroyed', async () => {
    const buf = n.device!.createBuffer({ size: 4 * 64 * 4, usage: STORAGE | COPY_SRC | COPY_DST });
    const v = n.wrap(buf, [4, 64]);
    const g = n.tensor(new Float32Array(4).fill(1), [4, 1]);
    buf.destroy();
    const f = n.weightNorm(v, g, { dim: 0 });
    await expectValidationError('weightNorm of a destroyed buffer', [f.w, f.norms], /destroy/i);
    g.destroy();
  });

  it('a buffer of another GPUDevice', async () => {
    const other = await fresh();
    const buf = other.device!.createBuffer({ size: 2 * 3 * 16 * 4, usage: STORAGE | COPY_SRC | COPY_DST });
    const x = n.wrap(buf, [2, 3, 16]);
    const f = n.batchNorm(x, { training: true });
    await expectValidationError('batchNorm of a buffer of another device', [f.y, f.saveMean, f.saveInvstd], /device|Device/);
    buf.destroy();
    other.destroy();
  });

  it('an input with a pending validation error makes the dependent op reject too', async () => {
    const buf = n.device!.createBuffer({ size: 4 * 32 * 4, usage: COPY_SRC | COPY_DST });
    const x = n.wrap(buf, [4, 32]);
    const f = n.layerNorm(x, { normalizedShape: [32] });
    // f.y never got written; an op on it must not silently compute from the poisoned buffer.
    const g = n.rmsNorm(f.y, { normalizedShape: [32] });
    const rf = await settle(n.read(f.y));
    expect(rf.ok).toBe(false);
    const rg = await settle(n.read(g.y));
    expect(rg.ok, 'an op whose input failed to compute returned data (NaN poison or garbage)').toBe(false);
    for (const t of [f.y, f.mean, f.rstd, g.y, g.rstd, x]) t.destroy();
    buf.destroy();
  });
});
