/**
 * norms.wrap(): zero-copy tensors over a caller's GPUBuffer (Dawn in Node, NaN-poisoned outputs).
 * Buffers are made on norms.device directly, as another library sharing the device would; the
 * GPUBufferUsage / GPUMapMode globals may not exist in Node, so the flags are numeric.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createNorms, ShapeError, TensorError, type Norms, type Tensor } from '../src/index.ts';
import { packHalves, roundToHalf } from '../src/half.ts';
import { gpuNorms, expectClose } from './util/gpu.ts';
import { makeRng } from './util/rng.ts';

const MAP_READ = 0x1;
const COPY_SRC = 0x4;
const COPY_DST = 0x8;
const STORAGE = 0x80;
const MAP_MODE_READ = 0x1;

let gpu: Norms;
let cpu: Norms;
let device: GPUDevice;
const callerBuffers: GPUBuffer[] = [];

beforeAll(async () => {
  gpu = await gpuNorms();
  cpu = await createNorms({ backend: 'cpu' });
  if (!gpu.device) throw new Error('webgpu backend without a device');
  device = gpu.device;
});
afterAll(() => {
  for (const b of callerBuffers) b.destroy();
  gpu?.destroy();
  cpu?.destroy();
});

/** A caller-owned storage buffer, as another library would make it. */
function callerBuffer(size: number): GPUBuffer {
  const b = device.createBuffer({ size, usage: STORAGE | COPY_SRC | COPY_DST });
  callerBuffers.push(b);
  return b;
}

/** queue.writeBuffer of host data at offset 0. */
function write(buf: GPUBuffer, data: Float32Array | Uint32Array): void {
  device.queue.writeBuffer(buf, 0, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
}

/** Read a caller buffer's first `bytes` back through a mappable staging buffer (no library code). */
async function readRaw(buf: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
  const staging = device.createBuffer({ size: bytes, usage: MAP_READ | COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(buf, 0, staging, 0, bytes);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(MAP_MODE_READ);
  const out = staging.getMappedRange().slice(0);
  staging.unmap();
  staging.destroy();
  return out;
}

/** CPU layerNorm of host data over the last dim (weight and bias optional), as Float32Array. */
async function cpuLayerNorm(data: Float32Array, shape: number[], w: Float32Array | null, b: Float32Array | null, dtype: 'float32' | 'float16' = 'float32') {
  const K = shape[shape.length - 1]!;
  const x = cpu.tensor(data, shape, dtype);
  const r = cpu.layerNorm(x, { normalizedShape: [K], weight: w && cpu.tensor(w, [K]), bias: b && cpu.tensor(b, [K]) });
  return { y: await cpu.read(r.y), mean: await cpu.read(r.mean), rstd: await cpu.read(r.rstd) };
}

describe('wrap a caller buffer', () => {
  it('float32: written with queue.writeBuffer, wrapped, normalized; then a copy of the output into a caller buffer, wrapped and normalized again', async () => {
    const shape = [6, 129];
    const n = 6 * 129;
    const bytes = n * 4;
    const rng = makeRng(8001);
    const x = rng.fill(n, 2, 3);
    const w = rng.fill(129, 1, 0.5);
    const b = rng.fill(129, 0, 0.5);

    const buf = callerBuffer(bytes);
    write(buf, x);
    const xt = gpu.wrap(buf, shape);
    expect(xt.shape).toEqual(shape);
    expect(xt.dtype).toBe('float32');
    expect(xt.buffer).toBe(buf);
    const weight = gpu.tensor(w, [129]);
    const bias = gpu.tensor(b, [129]);
    const first = gpu.layerNorm(xt, { normalizedShape: [129], weight, bias });
    const ref1 = await cpuLayerNorm(x, shape, w, b);
    expectClose('wrapped input y', await gpu.read(first.y), ref1.y, 1e-4);
    expectClose('wrapped input mean', await gpu.read(first.mean), ref1.mean, 1e-4);
    expectClose('wrapped input rstd', await gpu.read(first.rstd), ref1.rstd, 1e-4);
    // Reading a wrapped tensor gives the caller's data back.
    expectClose('read(wrapped)', await gpu.read(xt), x, 0);

    // The output of an op copied into a second caller buffer with the caller's own encoder.
    const buf2 = callerBuffer(bytes);
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(first.y.buffer!, 0, buf2, 0, bytes);
    device.queue.submit([enc.finish()]);
    const yt = gpu.wrap(buf2, shape);
    const second = gpu.layerNorm(yt, { normalizedShape: [129] });
    const ref2 = await cpuLayerNorm(ref1.y, shape, null, null);
    expectClose('copy of y, wrapped, normalized again: y', await gpu.read(second.y), ref2.y, 1e-4);
    expectClose('copy of y, wrapped, normalized again: rstd', await gpu.read(second.rstd), ref2.rstd, 1e-4);

    // The backward through wrapped tensors as well (dy in a caller buffer).
    const dy = rng.fill(n);
    const bufDy = callerBuffer(bytes);
    write(bufDy, dy);
    const bw = gpu.layerNormBackward(gpu.wrap(bufDy, shape), xt, first.mean, first.rstd, { normalizedShape: [129], weight, bias });
    const cx = cpu.tensor(x, shape);
    const cw = cpu.tensor(w, [129]);
    const cb = cpu.tensor(b, [129]);
    const cf = cpu.layerNorm(cx, { normalizedShape: [129], weight: cw, bias: cb });
    const cbw = cpu.layerNormBackward(cpu.tensor(dy, shape), cx, cf.mean, cf.rstd, { normalizedShape: [129], weight: cw, bias: cb });
    expectClose('wrapped dy: dx', await gpu.read(bw.dx), await cpu.read(cbw.dx), 1e-4);
    expectClose('wrapped dy: dweight', await gpu.read(bw.dweight!), await cpu.read(cbw.dweight!), 1e-4);
    expectClose('wrapped dy: dbias', await gpu.read(bw.dbias!), await cpu.read(cbw.dbias!), 1e-4);

    // The caller's input buffer was only read.
    expectClose('caller buffer untouched', new Float32Array(await readRaw(buf, bytes)), x, 0);
    for (const t of [weight, bias, first.y, first.mean, first.rstd, second.y, second.mean, second.rstd, bw.dx, bw.dweight!, bw.dbias!]) t.destroy();
  });

  it('a wrapped buffer larger than the shape needs (only the leading bytes are used)', async () => {
    const rng = makeRng(8002);
    const x = rng.fill(35);
    const buf = callerBuffer(1024);
    write(buf, rng.fill(256, 50, 10)); // junk after the tensor
    write(buf, x);
    const r = gpu.layerNorm(gpu.wrap(buf, [5, 7]), { normalizedShape: [7] });
    const ref = await cpuLayerNorm(x, [5, 7], null, null);
    expectClose('oversized wrapped buffer y', await gpu.read(r.y), ref.y, 1e-4);
    r.y.destroy(), r.mean.destroy(), r.rstd.destroy();
  });

  it('float16: packed halves written with packHalves, odd element count, wrapped and normalized', async () => {
    const shape = [3, 7, 9]; // 189 halves: the last u32 word holds one element and padding
    const n = 189;
    const rng = makeRng(8003);
    const x = rng.fill(n, 1, 2);
    const words = packHalves(x);
    expect(words.length).toBe(95);
    const buf = callerBuffer(words.byteLength); // 380 bytes, a multiple of 4
    write(buf, words);
    const xt = gpu.wrap(buf, shape, 'float16');
    expect(xt.dtype).toBe('float16');
    expectClose('read(wrapped f16)', await gpu.read(xt), roundToHalf(x), 0);
    const r = gpu.layerNorm(xt, { normalizedShape: [7, 9] });
    const cx = cpu.tensor(x, shape, 'float16');
    const cr = cpu.layerNorm(cx, { normalizedShape: [7, 9] });
    expect(r.y.dtype).toBe('float16');
    // 1e-3: one half ulp is ~4.9e-4 relative; the GPU's float32 result and the CPU's float64 one
    // can round to neighbouring halves (see float16.test.ts).
    expectClose('wrapped f16 y', await gpu.read(r.y), await cpu.read(cr.y), 1e-3);
    expectClose('wrapped f16 mean', await gpu.read(r.mean), await cpu.read(cr.mean), 1e-4);
    expectClose('wrapped f16 rstd', await gpu.read(r.rstd), await cpu.read(cr.rstd), 1e-4);
    // The padding half of the caller's last word is left as the caller wrote it (0).
    const raw = new Uint32Array(await readRaw(buf, words.byteLength));
    expect(raw[94]! >>> 16).toBe(0);
    expect([...raw]).toEqual([...words]);
    r.y.destroy(), r.mean.destroy(), r.rstd.destroy();
  });
});

describe('wrap: bad buffers and ownership', () => {
  it('a buffer too small for the shape throws ShapeError naming the buffer', () => {
    const small = callerBuffer(64); // 16 float32
    expect(() => gpu.wrap(small, [17])).toThrow(ShapeError);
    expect(() => gpu.wrap(small, [5, 4])).toThrow(ShapeError);
    // float16: 33 halves need 17 words = 68 bytes.
    expect(() => gpu.wrap(small, [33], 'float16')).toThrow(ShapeError);
    try {
      gpu.wrap(small, [3, 6]);
      throw new Error('no error');
    } catch (e) {
      expect(e).toBeInstanceOf(ShapeError);
      expect((e as ShapeError).argument).toBe('buffer');
      expect((e as Error).message).toContain('[3, 6]');
    }
    // Exactly big enough is fine.
    gpu.wrap(small, [16]).destroy();
    gpu.wrap(small, [32], 'float16').destroy();
    gpu.wrap(small, [31], 'float16').destroy();
  });

  it('destroying a wrapped tensor leaves the caller buffer alive and usable', async () => {
    const rng = makeRng(8004);
    const x = rng.fill(40);
    const buf = callerBuffer(160);
    write(buf, x);
    const before = gpu.stats();
    const t = gpu.wrap(buf, [4, 10]);
    expect(gpu.stats().liveBuffers).toBe(before.liveBuffers); // wrap allocates nothing
    t.destroy();
    expect(t.destroyed).toBe(true);
    expect(gpu.stats().liveBuffers).toBe(before.liveBuffers);
    // The destroyed tensor is unusable ...
    expect(() => gpu.layerNorm(t, { normalizedShape: [10] })).toThrow(TensorError);
    // ... but the buffer is not: the caller can still read and write it, and wrap it again.
    expectClose('caller buffer after destroy', new Float32Array(await readRaw(buf, 160)), x, 0);
    const x2 = rng.fill(40, -1, 2);
    write(buf, x2);
    const again = gpu.wrap(buf, [4, 10]);
    const r = gpu.layerNorm(again, { normalizedShape: [10] });
    const ref = await cpuLayerNorm(x2, [4, 10], null, null);
    expectClose('re-wrapped after destroy: y', await gpu.read(r.y), ref.y, 1e-4);
    for (const tt of [again, r.y, r.mean, r.rstd] as Tensor[]) tt.destroy();
    expectClose('caller buffer after the second destroy', new Float32Array(await readRaw(buf, 160)), x2, 0);
  });

  it('wrap on the cpu backend is an error (it has no GPU buffers)', () => {
    const buf = callerBuffer(16);
    expect(() => cpu.wrap(buf, [4])).toThrow();
  });
});
