/**
 * norms.encode(): ops recorded into the caller's GPUCommandEncoder, submitted by the caller (Dawn
 * in Node, NaN-poisoned outputs). Results against the CPU backend; reads before the submit; a
 * destroyed input; buffers kept out of the pool until the submit; invalid use. Flags are numeric
 * (the GPUBufferUsage globals may not exist in Node).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createNorms, DeviceError, TensorError, ValueError, type Norms, type Tensor } from '../src/index.ts';
import { gpuNorms, expectClose } from './util/gpu.ts';
import { makeRng } from './util/rng.ts';

const MAP_READ = 0x1;
const COPY_SRC = 0x4;
const COPY_DST = 0x8;
const STORAGE = 0x80;

let gpu: Norms;
let cpu: Norms;
let device: GPUDevice;
const callerBuffers: GPUBuffer[] = [];

beforeAll(async () => {
  gpu = await gpuNorms();
  cpu = await createNorms({ backend: 'cpu' });
  device = gpu.device!;
});
afterAll(() => {
  for (const b of callerBuffers) b.destroy();
  gpu?.destroy();
  cpu?.destroy();
});

function callerBuffer(size: number, usage = STORAGE | COPY_SRC | COPY_DST): GPUBuffer {
  const b = device.createBuffer({ size, usage });
  callerBuffers.push(b);
  return b;
}
function write(buf: GPUBuffer, data: Float32Array): void {
  device.queue.writeBuffer(buf, 0, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
}
async function readRaw(buf: GPUBuffer, bytes: number): Promise<Float32Array> {
  const staging = device.createBuffer({ size: bytes, usage: MAP_READ | COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(buf, 0, staging, 0, bytes);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(1);
  const out = new Float32Array(staging.getMappedRange().slice(0));
  staging.destroy();
  return out;
}
const submit = (enc: GPUCommandEncoder) => device.queue.submit([enc.finish()]);
const notSubmitted = /had not been submitted/;
const settle = () => new Promise((r) => setTimeout(r, 200));

describe('norms.encode: ops recorded into the caller\'s encoder', () => {
  it('several ops and the caller\'s own copies in one command buffer, checked against the CPU backend', async () => {
    const rng = makeRng(13001);
    const [R, K] = [6, 96];
    const [N, C, S] = [4, 8, 10];
    const x = rng.fill(R * K, 2, 3);
    const w = rng.fill(K, 1, 0.5);
    const b = rng.fill(K, 0, 0.5);
    const dy = rng.fill(R * K);
    const xb = rng.fill(N * C * S, -1, 2);
    const gb = rng.fill(C, 1, 0.2);
    const rm = rng.fill(C, 0, 0.1);
    const rv = rng.fill(C, 1, 0.1).map(Math.abs);

    // The caller's source buffer, copied by the caller's own command into the buffer we read.
    const src = callerBuffer(R * K * 4);
    write(src, x);
    const xBuf = callerBuffer(R * K * 4);
    const outBuf = callerBuffer(R * K * 4);
    const weight = gpu.tensor(w, [K]);
    const bias = gpu.tensor(b, [K]);
    const dyT = gpu.tensor(dy, [R, K]);
    const xbT = gpu.tensor(xb, [N, C, S]);
    const gbT = gpu.tensor(gb, [C]);
    const runningMean = gpu.tensor(rm, [C]);
    const runningVar = gpu.tensor(rv, [C]);
    const liveBefore = gpu.stats().liveBuffers;

    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(src, 0, xBuf, 0, R * K * 4);
    const r = gpu.encode(enc, () => {
      const xt = gpu.wrap(xBuf, [R, K]);
      const ln = gpu.layerNorm(xt, { normalizedShape: [K], weight, bias });
      const rms = gpu.rmsNorm(ln.y, { normalizedShape: [K], weight });
      const bw = gpu.layerNormBackward(dyT, xt, ln.mean, ln.rstd, { normalizedShape: [K], weight, bias });
      const bn = gpu.batchNorm(xbT, { training: true, weight: gbT, runningMean, runningVar });
      const gn = gpu.groupNorm(bn.y, { numGroups: 4, weight: gbT });
      return { ln, rms, bw, bn, gn };
    });
    // The caller's copy of one of our outputs, recorded after our passes.
    enc.copyBufferToBuffer(r.rms.y.buffer!, 0, outBuf, 0, R * K * 4);
    await expect(gpu.read(r.ln.y)).rejects.toThrow(notSubmitted);
    submit(enc);

    const cx = cpu.tensor(x, [R, K]);
    const cw = cpu.tensor(w, [K]);
    const cbias = cpu.tensor(b, [K]);
    const cln = cpu.layerNorm(cx, { normalizedShape: [K], weight: cw, bias: cbias });
    const crms = cpu.rmsNorm(cln.y, { normalizedShape: [K], weight: cw });
    const cbw = cpu.layerNormBackward(cpu.tensor(dy, [R, K]), cx, cln.mean, cln.rstd, { normalizedShape: [K], weight: cw, bias: cbias });
    const cgb = cpu.tensor(gb, [C]);
    const crm = cpu.tensor(rm, [C]);
    const crv = cpu.tensor(rv, [C]);
    const cbn = cpu.batchNorm(cpu.tensor(xb, [N, C, S]), { training: true, weight: cgb, runningMean: crm, runningVar: crv });
    const cgn = cpu.groupNorm(cbn.y, { numGroups: 4, weight: cgb });
    const pairs: [string, Tensor, Tensor][] = [
      ['layerNorm y', r.ln.y, cln.y], ['layerNorm mean', r.ln.mean, cln.mean], ['layerNorm rstd', r.ln.rstd, cln.rstd],
      ['rmsNorm y', r.rms.y, crms.y], ['dx', r.bw.dx, cbw.dx], ['dweight', r.bw.dweight!, cbw.dweight!], ['dbias', r.bw.dbias!, cbw.dbias!],
      ['batchNorm y', r.bn.y, cbn.y], ['saveMean', r.bn.saveMean, cbn.saveMean], ['saveInvstd', r.bn.saveInvstd, cbn.saveInvstd],
      ['runningMean', runningMean, crm], ['runningVar', runningVar, crv], ['groupNorm y', r.gn.y, cgn.y],
    ];
    for (const [name, g, c] of pairs) expectClose(name, await gpu.read(g), await cpu.read(c), 1e-4);
    expectClose('the caller\'s copy of rmsNorm y', await readRaw(outBuf, R * K * 4), await cpu.read(crms.y), 1e-4);

    // The temporaries went back to the pool once the submit was seen: only outputs stay live.
    await settle();
    const outputs = [r.ln.y, r.ln.mean, r.ln.rstd, r.rms.y, r.rms.rstd, r.bw.dx, r.bw.dweight!, r.bw.dbias!, r.bn.y, r.bn.saveMean, r.bn.saveInvstd, r.gn.y, r.gn.mean, r.gn.rstd];
    expect(gpu.stats().liveBuffers).toBe(liveBefore + outputs.length);
    for (const t of [...outputs, weight, bias, dyT, xbT, gbT, runningMean, runningVar]) t.destroy();
  });

  it('buffers used by the recorded passes are not reused before the caller submits', async () => {
    const rng = makeRng(13002);
    const [R, K] = [5, 64];
    const x = rng.fill(R * K, 1, 2);
    const xt = gpu.tensor(x, [R, K]);
    const enc = device.createCommandEncoder();
    let mid: GPUBuffer | null = null;
    const out = gpu.encode(enc, () => {
      const a = gpu.layerNorm(xt, { normalizedShape: [K] });
      const c = gpu.rmsNorm(a.y, { normalizedShape: [K] });
      mid = a.y.buffer;
      // Destroyed inside fn: its buffer is read by the rmsNorm pass, which has not run.
      a.y.destroy(), a.mean.destroy(), a.rstd.destroy();
      return c;
    });
    // The input destroyed after recording, before the submit: its data must survive too.
    xt.destroy();
    // New tensors of the same sizes, made before the submit, must not get those buffers: their
    // writeBuffer runs before the caller's command buffer, which would then overwrite them.
    const fresh = rng.fill(R * K, -5, 1);
    const t1 = gpu.tensor(fresh, [R, K]);
    const t2 = gpu.tensor(fresh, [R, K]);
    expect([t1.buffer, t2.buffer]).not.toContain(mid);
    const plain = gpu.layerNorm(t1, { normalizedShape: [K] }); // a normal op before the submit
    submit(enc);
    const ca = cpu.layerNorm(cpu.tensor(x, [R, K]), { normalizedShape: [K] });
    const cc = cpu.rmsNorm(ca.y, { normalizedShape: [K] });
    expectClose('rmsNorm of a destroyed intermediate', await gpu.read(out.y), await cpu.read(cc.y), 1e-4);
    expectClose('tensor made before the submit', await gpu.read(t1), fresh, 0);
    expectClose('tensor made before the submit (2)', await gpu.read(t2), fresh, 0);
    const cp = cpu.layerNorm(cpu.tensor(fresh, [R, K]), { normalizedShape: [K] });
    expectClose('normal op before the submit', await gpu.read(plain.y), await cpu.read(cp.y), 1e-4);
    for (const t of [out.y, out.rstd, t1, t2, plain.y, plain.mean, plain.rstd]) t.destroy();
  });

  it('reads and ops that need the recorded results before the submit reject; after it they work', async () => {
    const rng = makeRng(13003);
    const x = rng.fill(4 * 32, 3, 1);
    const xt = gpu.tensor(x, [4, 32]);
    const enc = device.createCommandEncoder();
    const r = gpu.encode(enc, () => gpu.layerNorm(xt, { normalizedShape: [32] }));
    // A recorded op's input is not written by it: readable at once.
    expectClose('input of a recorded op', await gpu.read(xt), x, 0);
    const e = await gpu.read(r.y).then(() => null, (err: unknown) => err);
    expect(e).toBeInstanceOf(DeviceError);
    expect(String((e as Error).message)).toMatch(/read: this tensor was recorded by norms.encode\(\).*had not been submitted.*queue.submit/);
    // A normal op on a recorded output, before the submit, ran before it: its outputs reject.
    const early = gpu.rmsNorm(r.y, { normalizedShape: [32] });
    await expect(gpu.read(early.y)).rejects.toThrow(/rmsNorm.*an input was recorded by norms.encode\(\).*had not been submitted/);
    submit(enc);
    const cr = cpu.layerNorm(cpu.tensor(x, [4, 32]), { normalizedShape: [32] });
    expectClose('read after the submit', await gpu.read(r.y), await cpu.read(cr.y), 1e-4);
    const late = gpu.rmsNorm(r.y, { normalizedShape: [32] });
    const cl = cpu.rmsNorm(cr.y, { normalizedShape: [32] });
    expectClose('op after the submit', await gpu.read(late.y), await cpu.read(cl.y), 1e-4);
    for (const t of [xt, r.y, r.mean, r.rstd, early.y, early.rstd, late.y, late.rstd]) t.destroy();
  });

  it('a destroyed input: our tensor throws TensorError from the op; a caller buffer destroyed before the submit fails the caller\'s submit', async () => {
    const rng = makeRng(13004);
    const x = rng.fill(3 * 16);
    const ok = gpu.tensor(x, [3, 16]);
    const gone = gpu.tensor(x, [3, 16]);
    gone.destroy();
    const enc = device.createCommandEncoder();
    let first: ReturnType<Norms['layerNorm']> | null = null;
    expect(() =>
      gpu.encode(enc, () => {
        first = gpu.layerNorm(ok, { normalizedShape: [16] });
        return gpu.layerNorm(gone, { normalizedShape: [16] });
      }),
    ).toThrow(TensorError);
    // The first op's pass is in the encoder and valid: the caller may still submit it.
    device.pushErrorScope('validation');
    submit(enc);
    expect(await device.popErrorScope()).toBeNull();
    const c = cpu.layerNorm(cpu.tensor(x, [3, 16]), { normalizedShape: [16] });
    expectClose('op recorded before the failing one', await gpu.read(first!.y), await cpu.read(c.y), 1e-4);

    // A wrapped caller buffer destroyed between encode and submit: WebGPU rejects the submit
    // (caught by the caller's own error scope), nothing ran, and reads say so.
    const buf = callerBuffer(3 * 16 * 4);
    write(buf, x);
    const enc2 = device.createCommandEncoder();
    const r = gpu.encode(enc2, () => gpu.layerNorm(gpu.wrap(buf, [3, 16]), { normalizedShape: [16] }));
    buf.destroy();
    device.pushErrorScope('validation');
    submit(enc2);
    const err = await device.popErrorScope();
    expect(err).not.toBeNull();
    expect(err!.message).toMatch(/destroyed/i);
    await expect(gpu.read(r.y)).rejects.toThrow(notSubmitted);
    for (const t of [ok, first!.y, first!.mean, first!.rstd, r.y, r.mean, r.rstd]) t.destroy();
  });

  it('an encoder with a compute pass open: WebGPU reports it at the caller\'s finish()', async () => {
    const xt = gpu.tensor(makeRng(13005).fill(2 * 8), [2, 8]);
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    const r = gpu.encode(enc, () => gpu.layerNorm(xt, { normalizedShape: [8] }));
    pass.end();
    device.pushErrorScope('validation');
    const cb = enc.finish();
    device.queue.submit([cb]);
    expect(await device.popErrorScope()).not.toBeNull();
    await expect(gpu.read(r.y)).rejects.toThrow(notSubmitted);
    for (const t of [xt, r.y, r.mean, r.rstd]) t.destroy();
  });

  it('invalid use: cpu backend, a bad encoder or fn, nesting, an async fn, verify; a throwing fn leaves no recording behind', async () => {
    const enc = device.createCommandEncoder();
    expect(() => cpu.encode(enc, () => 1)).toThrow(DeviceError);
    expect(() => cpu.encode(enc, () => 1)).toThrow(/cpu backend has no GPU command encoder/);
    expect(() => gpu.encode({} as GPUCommandEncoder, () => 1)).toThrow(ValueError);
    expect(() => gpu.encode(enc, 5 as unknown as () => number)).toThrow(/fn: expected a function/);
    expect(() => gpu.encode(enc, () => gpu.encode(enc, () => 1))).toThrow(/do not nest/);
    expect(() => gpu.encode(enc, async () => 1)).toThrow(/returned a promise/);
    expect(() =>
      gpu.encode(enc, () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    // Nothing is recording now: an op runs and submits by itself.
    const xt = gpu.tensor([1, 2, 3, 4], [1, 4]);
    const r = gpu.layerNorm(xt, { normalizedShape: [4] });
    expect((await gpu.read(r.y))[3]).toBeCloseTo(1.3416, 3);
    submit(enc); // an empty command buffer
    const v = await gpuNorms({ verify: true, device });
    expect(() => v.encode(device.createCommandEncoder(), () => 1)).toThrow(/verify/);
    v.destroy();
    expect(gpu.encode(enc, () => 'no ops')).toBe('no ops');
    for (const t of [xt, r.y, r.mean, r.rstd]) t.destroy();
  });
});
