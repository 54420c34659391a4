/**
 * Ops issued back to back go out in one command buffer (one submit): counted for 100 consecutive
 * ops; results against the CPU backend with intermediates destroyed and their buffers reused from
 * the pool between ops (also with the pool off, so buffers the batch uses are destroyed while it
 * is pending), tensor() uploads interleaved with the ops (writes into buffers the batch uses), a
 * validation error inside a batch (every op of that batch rejects, the ops before and after do
 * not), the flush before encode() and when tensor.buffer is taken, and flat memory stats.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNorms, DeviceError, Tensor, type Norms } from '../src/index.ts';
import { GpuContext } from '../src/device/context.ts';
import { expectClose, gpuNorms } from './util/gpu.ts';
import { makeRng } from './util/rng.ts';

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

/** Counts device.queue.submit calls while fn runs (and until its promise settles). */
async function countSubmits(norms: Norms, fn: () => Promise<void> | void): Promise<number> {
  const q = norms.device!.queue;
  const orig = q.submit;
  let count = 0;
  q.submit = function (this: GPUQueue, cbs: Iterable<GPUCommandBuffer>) {
    count++;
    return orig.call(this, cbs);
  };
  try {
    await fn();
  } finally {
    q.submit = orig;
  }
  return count;
}

const R = 8;
const K = 64;
const settle = (p: Promise<unknown>) => p.then(() => 'ok', (e) => e);

/** 100 chained ops, each intermediate destroyed once used (its buffer reused by a later op). */
function chain(m: Norms, x: Tensor, w: Tensor, ops = 100): Tensor {
  let cur = x;
  for (let i = 0; i < ops; i++) {
    const o = i % 2 ? m.rmsNorm(cur, { normalizedShape: [K], weight: w }) : m.layerNorm(cur, { normalizedShape: [K], weight: w });
    for (const [k, t] of Object.entries(o)) if (k !== 'y') (t as Tensor).destroy();
    if (cur !== x) cur.destroy();
    cur = o.y;
  }
  return cur;
}

describe('batching', () => {
  it('100 consecutive ops: one submit, results equal to the CPU backend, memory flat', async () => {
    const xd = makeRng(1).fill(R * K, 2, 1.5);
    const wd = makeRng(2).fill(K, 1, 0.3);
    const x = n.tensor(xd, [R, K]);
    const w = n.tensor(wd, [K]);
    await n.read(x);
    const before = n.stats();
    let y!: Tensor;
    const submits = await countSubmits(n, () => {
      y = chain(n, x, w);
    });
    expect(submits, '100 ops recorded into one command buffer, submitted once at the end of the task').toBe(1);
    const yc = chain(cpu, cpu.tensor(xd, [R, K]), cpu.tensor(wd, [K]));
    expectClose('100 chained ops', await n.read(y), await cpu.read(yc), 1e-4);
    expect(n.stats().liveBuffers, 'only y is new').toBe(before.liveBuffers + 1);
    // Again: stats stay flat, the pool is reused.
    y.destroy();
    const y2 = chain(n, x, w);
    await n.read(y2);
    y2.destroy();
    expect(n.stats()).toEqual(before);
    x.destroy();
    w.destroy();
  });

  it('counted: 100 ops then a read are at most 2 submits (batch + readback)', async () => {
    const x = n.tensor(makeRng(3).fill(R * K), [R, K]);
    const w = n.tensor(new Float32Array(K).fill(1), [K]);
    await n.read(x);
    const s = await countSubmits(n, async () => {
      const y = chain(n, x, w);
      await n.read(y);
      y.destroy();
    });
    expect(s).toBeLessThanOrEqual(2);
    x.destroy();
    w.destroy();
  });

  it('tensor() uploads interleaved with ops land in order (buffers the batch uses are written in it)', async () => {
    const xs: Float32Array[] = [];
    const outs: Tensor[] = [];
    let a = n.tensor(makeRng(10).fill(R * K, 1, 2), [R, K]);
    xs.push(await n.read(a));
    const s = await countSubmits(n, () => {
      for (let i = 0; i < 20; i++) {
        outs.push(n.layerNorm(a, { normalizedShape: [K] }).y);
        const tmp = n.rmsNorm(a, { normalizedShape: [K] });
        tmp.y.destroy();
        tmp.rstd.destroy(); // its buffers go back to the pool, used by the pending batch
        a.destroy();
        const d = makeRng(11 + i).fill(R * K, i, 1 + i / 4);
        xs.push(d);
        a = n.tensor(d, [R, K]); // likely a pooled buffer the batch still writes
      }
    });
    expect(s, 'no submit per upload').toBeLessThanOrEqual(1);
    for (let i = 0; i < 20; i++) {
      const ref = cpu.layerNorm(cpu.tensor(xs[i]!, [R, K]), { normalizedShape: [K] }).y;
      expectClose(`op ${i} after interleaved uploads`, await n.read(outs[i]!), await cpu.read(ref), 1e-4);
    }
    expectClose('the last upload', await n.read(a), xs[20]!, 0);
    for (const t of [...outs, a]) t.destroy();
  });

  it('pool off: buffers released while the batch uses them are destroyed only after its submit', async () => {
    const saved = GpuContext.POOL_BYTES;
    GpuContext.POOL_BYTES = 0;
    try {
      const m = await gpuNorms();
      const xd = makeRng(5).fill(R * K, -1, 3);
      const wd = makeRng(6).fill(K, 1, 0.2);
      const y = chain(m, m.tensor(xd, [R, K]), m.tensor(wd, [K]), 30);
      const yc = chain(cpu, cpu.tensor(xd, [R, K]), cpu.tensor(wd, [K]), 30);
      expectClose('30 ops, every intermediate destroyed at once', await m.read(y), await cpu.read(yc), 1e-4);
      expect(m.poolStats().pooledBuffers).toBe(0);
      m.destroy();
    } finally {
      GpuContext.POOL_BYTES = saved;
    }
  });

  it('a validation error inside a batch rejects the outputs of the ops in that batch only', async () => {
    const m = await gpuNorms();
    const x = m.tensor(makeRng(7).fill(R * K), [R, K]);
    const z = m.tensor(makeRng(8).fill(R * K), [R, K]);
    const before = m.layerNorm(x, { normalizedShape: [K] });
    // The internal buffer (not tensor.buffer: an exported buffer's ops are submitted alone).
    const raw = z._buffer!;
    m.flush(); // submits `before`
    const p = m.layerNorm(x, { normalizedShape: [K] });
    const q = m.rmsNorm(z, { normalizedShape: [K] });
    const r = m.layerNorm(x, { normalizedShape: [K] });
    raw.destroy(); // behind the library's back, before the batch is submitted
    await Promise.resolve();
    const after = m.layerNorm(x, { normalizedShape: [K] });
    const ref = await cpu.read(cpu.layerNorm(cpu.tensor(await m.read(x), [R, K]), { normalizedShape: [K] }).y);
    expectClose('the op submitted before', await m.read(before.y), ref, 1e-4);
    for (const [name, t] of [['p', p.y], ['q (uses the destroyed buffer)', q.y], ['r', r.y], ['p.mean', p.mean]] as const) {
      const e = await settle(m.read(t));
      expect(e, name).toBeInstanceOf(DeviceError);
      expect(String((e as Error).message), name).toMatch(/destroy/i);
    }
    expect(String(((await settle(m.read(p.y))) as Error).message)).toMatch(/3 ops submitted together/);
    expectClose('the op after', await m.read(after.y), ref, 1e-4);
    m.destroy();
  });

  it('a tensor whose buffer was handed out: later in-place updates are submitted at once (another engine reads them in queue order)', async () => {
    const xd = makeRng(11).fill(6 * 4 * 5, 2, 1);
    const rm = n.tensor([0, 0, 0, 0], [4]);
    const rv = n.tensor([1, 1, 1, 1], [4]);
    const raw = rm.buffer!; // handed to the caller (say, a zero-copy view in another engine)
    const dev = n.device!;
    n.batchNorm(n.tensor(xd, [6, 4, 5]), { training: true, runningMean: rm, runningVar: rv });
    // The caller's own copy, submitted right away with no flush of ours: it must see the update.
    const staging = dev.createBuffer({ size: 16, usage: 0x1 | 0x8 }); // MAP_READ | COPY_DST
    const e = dev.createCommandEncoder();
    e.copyBufferToBuffer(raw, 0, staging, 0, 16);
    dev.queue.submit([e.finish()]);
    await staging.mapAsync(0x1);
    const got = new Float32Array(staging.getMappedRange().slice(0));
    staging.destroy();
    const c = await cpu.read((() => {
      const crm = cpu.tensor([0, 0, 0, 0], [4]);
      cpu.batchNorm(cpu.tensor(xd, [6, 4, 5]), { training: true, runningMean: crm, runningVar: cpu.tensor([1, 1, 1, 1], [4]) });
      return crm;
    })());
    expectClose('runningMean seen by the caller', got, c, 1e-5);
  });

  it('pending ops are submitted before encode() and when tensor.buffer is taken', async () => {
    const xd = makeRng(9).fill(R * K, 1, 1);
    const x = n.tensor(xd, [R, K]);
    const ref = await cpu.read(cpu.layerNorm(cpu.tensor(xd, [R, K]), { normalizedShape: [K] }).y);
    // encode(): the batched op must run before the caller's command buffer.
    const a = n.layerNorm(x, { normalizedShape: [K] });
    const dev = n.device!;
    const enc = dev.createCommandEncoder();
    const b = n.encode(enc, () => n.rmsNorm(a.y, { normalizedShape: [K] }));
    dev.queue.submit([enc.finish()]);
    const refB = await cpu.read(cpu.rmsNorm(cpu.tensor(ref, [R, K]), { normalizedShape: [K] }).y);
    expectClose('encode after a batched op', await n.read(b.y), refB, 1e-4);
    // tensor.buffer: the caller's own copy, submitted right after, sees the result.
    const c = n.layerNorm(x, { normalizedShape: [K] });
    const staging = dev.createBuffer({ size: R * K * 4, usage: 0x1 | 0x8 }); // MAP_READ | COPY_DST
    const e2 = dev.createCommandEncoder();
    e2.copyBufferToBuffer(c.y.buffer!, 0, staging, 0, R * K * 4);
    dev.queue.submit([e2.finish()]);
    await staging.mapAsync(0x1);
    expectClose("the caller's copy of tensor.buffer", new Float32Array(staging.getMappedRange().slice(0)), ref, 1e-4);
    staging.destroy();
    for (const t of [x, a.y, a.mean, a.rstd, b.y, b.rstd, c.y, c.mean, c.rstd]) t.destroy();
  });
});
