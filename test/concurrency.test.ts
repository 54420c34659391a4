/**
 * Work queued without waiting: many ops enqueued before any read (chains that consume earlier
 * outputs included), reads in reverse order and concurrently; two createNorms instances sharing
 * one GPUDevice interleaving ops; inputs destroyed right after enqueueing; ownership checks
 * across instances on the same device. Every result is compared with the CPU reference running
 * the same sequence.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNorms, Tensor, TensorError, type Norms } from '../src/index.ts';
import { expectClose, gpuNorms } from './util/gpu.ts';
import { makeRng } from './util/rng.ts';

let A: Norms;
let B: Norms;
let cpu: Norms;
beforeAll(async () => {
  A = await gpuNorms();
  B = await createNorms({ backend: 'webgpu', device: A.device!, poisonOutputs: true });
  cpu = await createNorms({ backend: 'cpu' });
});
afterAll(() => {
  B?.destroy();
  A?.destroy();
  cpu?.destroy();
});

const numel = (s: number[]): number => s.reduce((a, b) => a * b, 1);
const data = (seed: number, shape: number[], mean = 0, std = 1): Float32Array => makeRng(seed).fill(numel(shape), mean, std);
const pos = (seed: number, n: number): Float32Array => {
  const r = makeRng(seed);
  return Float32Array.from({ length: n }, () => 0.5 + 1.5 * r.uniform());
};

/**
 * A program of ops over one instance: returns named output tensors (everything it wants checked)
 * and the tensors it created (to free). Run on a GPU instance and on the CPU backend.
 */
type Program = (n: Norms, seed: number) => { outs: [string, Tensor][]; made: Tensor[] };

const program: Program = (n, seed) => {
  const made: Tensor[] = [];
  const T = (d: Float32Array, shape: number[]): Tensor => {
    const t = n.tensor(d, shape);
    made.push(t);
    return t;
  };
  const outs: [string, Tensor][] = [];
  const keep = (name: string, o: object): void => {
    for (const [k, v] of Object.entries(o)) if (v instanceof Tensor) outs.push([`${name}.${k}`, v]);
  };
  // A chain: layerNorm -> rmsNorm of its y -> groupNorm of that -> backward through both.
  const x = T(data(seed, [8, 6, 5, 7], 0.5, 2), [8, 6, 5, 7]);
  const w = T(data(seed + 1, [35], 1, 0.3), [5, 7]);
  const b = T(data(seed + 2, [35], 0, 0.3), [5, 7]);
  const ln = n.layerNorm(x, { normalizedShape: [5, 7], weight: w, bias: b });
  keep('ln', ln);
  const rn = n.rmsNorm(ln.y, { normalizedShape: [7] });
  keep('rms(ln.y)', rn);
  const gn = n.groupNorm(rn.y, { numGroups: 3, weight: T(data(seed + 3, [6], 1, 0.3), [6]), bias: T(data(seed + 4, [6]), [6]) });
  keep('gn(rms.y)', gn);
  const dy = T(data(seed + 5, [8, 6, 5, 7]), [8, 6, 5, 7]);
  const gb = n.groupNormBackward(dy, rn.y, gn.mean, gn.rstd, { numGroups: 3 });
  keep('gnBwd', gb);
  const rb = n.rmsNormBackward(gb.dx, ln.y, rn.rstd, { normalizedShape: [7] });
  keep('rmsBwd(gnBwd.dx)', rb);
  const lb = n.layerNormBackward(rb.dx, x, ln.mean, ln.rstd, { normalizedShape: [5, 7], weight: w, bias: b });
  keep('lnBwd(rmsBwd.dx)', lb);
  // Two training batchNorm steps on the same running stats, enqueued back to back: the second
  // must see the first's update.
  const xb = T(data(seed + 6, [4, 6, 9], -1, 3), [4, 6, 9]);
  const rm = T(data(seed + 7, [6]), [6]);
  const rv = T(pos(seed + 8, 6), [6]);
  // (bn1 has an affine map so that bn1.y's channel means are not ~0: bn2's saveMean stays well-conditioned.)
  const bn1 = n.batchNorm(xb, { training: true, runningMean: rm, runningVar: rv, momentum: 0.3, weight: T(data(seed + 14, [6], 1, 0.3), [6]), bias: T(data(seed + 15, [6], 0.5, 1), [6]) });
  keep('bn1', bn1);
  const bn2 = n.batchNorm(bn1.y, { training: true, runningMean: rm, runningVar: rv, momentum: null, numBatchesTracked: 1 });
  keep('bn2(bn1.y)', bn2);
  outs.push(['runningMean after two steps', rm], ['runningVar after two steps', rv]);
  const bne = n.batchNormBackward(T(data(seed + 9, [4, 6, 9]), [4, 6, 9]), xb, { training: true, saveMean: bn1.saveMean, saveInvstd: bn1.saveInvstd, weight: rv });
  keep('bnBwd', bne);
  // Weight norm and instance norm on independent data, in between.
  const v = T(data(seed + 10, [12, 40]), [12, 40]);
  const g = T(data(seed + 11, [12, 1], 1, 0.5), [12, 1]);
  const wn = n.weightNorm(v, g, { dim: 0 });
  keep('wn', wn);
  keep('wnBwd', n.weightNormBackward(T(data(seed + 12, [12, 40]), [12, 40]), v, g, wn.norms, { dim: 0 }));
  keep('in', n.instanceNorm(T(data(seed + 13, [3, 4, 30], 2, 0.5), [3, 4, 30])));
  return { outs, made };
};

function freeAll(p: { outs: [string, Tensor][]; made: Tensor[] }): void {
  for (const [, t] of p.outs) t.destroy();
  for (const t of p.made) t.destroy();
}

async function expectProgramMatches(label: string, n: Norms, p: { outs: [string, Tensor][] }, ref: Map<string, Float32Array>, order: 'reverse' | 'concurrent'): Promise<void> {
  const reads: [string, Float32Array][] = [];
  if (order === 'reverse') {
    for (const [k, t] of [...p.outs].reverse()) reads.push([k, await n.read(t)]);
  } else {
    const all = await Promise.all(p.outs.map(([k, t]) => n.read(t).then((d) => [k, d] as [string, Float32Array])));
    reads.push(...all);
  }
  const failures: string[] = [];
  for (const [k, got] of reads) {
    try {
      expectClose(`${label}: ${k}`, got, ref.get(k)!, 1e-4);
    } catch (e) {
      failures.push((e as Error).message);
    }
  }
  if (failures.length) throw new Error(failures.join('\n'));
}

async function reference(seed: number): Promise<Map<string, Float32Array>> {
  const p = program(cpu, seed);
  const m = new Map<string, Float32Array>();
  for (const [k, t] of p.outs) m.set(k, await cpu.read(t));
  freeAll(p);
  return m;
}

describe('queued work', () => {
  it('20 programs (~300 ops, chains included) enqueued before any read; reads in reverse order', async () => {
    const before = A.stats().liveBuffers;
    const progs = Array.from({ length: 20 }, (_, i) => program(A, 1000 + 37 * i));
    for (let i = progs.length - 1; i >= 0; i--) await expectProgramMatches(`program ${i}`, A, progs[i]!, await reference(1000 + 37 * i), 'reverse');
    progs.forEach(freeAll);
    expect(A.stats().liveBuffers).toBe(before);
  });

  it('all reads issued at once, several reads of the same tensor', async () => {
    const p = program(A, 77);
    const ref = await reference(77);
    const [first] = p.outs;
    const same = await Promise.all(Array.from({ length: 8 }, () => A.read(first![1])));
    for (const d of same) expect([...d]).toEqual([...same[0]!]);
    await expectProgramMatches('concurrent reads', A, p, ref, 'concurrent');
    freeAll(p);
  });

  it('inputs and intermediate outputs destroyed right after enqueueing do not corrupt later results', async () => {
    const p = program(A, 555);
    const ref = await reference(555);
    // Destroy every input and every output except the final ones we read, before any read.
    const finals = new Set(['lnBwd(rmsBwd.dx).dx', 'lnBwd(rmsBwd.dx).dweight', 'bn2(bn1.y).y', 'wnBwd.dv', 'in.y']);
    for (const t of p.made) t.destroy();
    for (const [k, t] of p.outs) if (!finals.has(k)) t.destroy();
    const kept = { outs: p.outs.filter(([k]) => finals.has(k)) };
    expect(kept.outs.length).toBe(finals.size);
    await expectProgramMatches('after early destroy', A, kept, ref, 'concurrent');
    for (const [, t] of kept.outs) t.destroy();
  });
});

describe('two instances sharing one GPUDevice', () => {
  it('interleaved programs on A and B give the right results on both', async () => {
    expect(B.device).toBe(A.device);
    const a0 = A.stats().liveBuffers, b0 = B.stats().liveBuffers;
    const pa: ReturnType<Program>[] = [], pb: ReturnType<Program>[] = [];
    for (let i = 0; i < 6; i++) {
      pa.push(program(A, 2000 + i));
      pb.push(program(B, 3000 + i));
    }
    // Read B's in reverse first, then A's concurrently.
    for (let i = 5; i >= 0; i--) await expectProgramMatches(`B program ${i}`, B, pb[i]!, await reference(3000 + i), 'reverse');
    await Promise.all(pa.map(async (p, i) => expectProgramMatches(`A program ${i}`, A, p, await reference(2000 + i), 'concurrent')));
    pa.forEach(freeAll);
    pb.forEach(freeAll);
    expect(A.stats().liveBuffers).toBe(a0);
    expect(B.stats().liveBuffers).toBe(b0);
  });

  it("a tensor of instance A passed to instance B is a TensorError naming the argument", () => {
    const xa = A.tensor(data(1, [4, 8]), [4, 8]);
    const wa = A.tensor(data(2, [8]), [8]);
    const xb = B.tensor(data(1, [4, 8]), [4, 8]);
    const bStats = B.stats();
    const cases: [string, () => unknown][] = [
      ['x', () => B.layerNorm(xa, { normalizedShape: [8] })],
      ['weight', () => B.layerNorm(xb, { normalizedShape: [8], weight: wa })],
      ['x', () => B.rmsNorm(xa, { normalizedShape: [8] })],
      ['dy', () => B.layerNormBackward(xa, xb, xb, xb, { normalizedShape: [8] })],
      ['v', () => B.weightNorm(xa, xb)],
      ['x', () => B.batchNorm(xa, { training: true })],
      ['x', () => B.groupNorm(xa, { numGroups: 2 })],
    ];
    for (const [arg, f] of cases) {
      let err: unknown = null;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err, `B given A's ${arg}`).toBeInstanceOf(TensorError);
      expect((err as TensorError).argument).toBe(arg);
    }
    expect(B.stats()).toEqual(bStats);
    for (const t of [xa, wa, xb]) t.destroy();
  });

  it("B.read of A's tensor rejects with TensorError", async () => {
    const xa = A.tensor(data(3, [16]), [16]);
    await expect(B.read(xa)).rejects.toBeInstanceOf(TensorError);
    xa.destroy();
  });

  it('destroying B (not the owner of the device) leaves A working', async () => {
    const C = await createNorms({ backend: 'webgpu', device: A.device!, poisonOutputs: true });
    const pc = program(C, 4000);
    C.destroy();
    const p = program(A, 4001);
    await expectProgramMatches('A after C.destroy()', A, p, await reference(4001), 'concurrent');
    freeAll(p);
    for (const [, t] of pc.outs) t.destroy();
  });

  it('B with verify: true on the shared device, interleaved with A', async () => {
    const V = await createNorms({ backend: 'webgpu', device: A.device!, verify: true });
    const pv = program(V, 5000);
    const pa = program(A, 5001);
    await expectProgramMatches('verify instance', V, pv, await reference(5000), 'concurrent');
    await expectProgramMatches('A next to a verify instance', A, pa, await reference(5001), 'reverse');
    freeAll(pv);
    freeAll(pa);
    V.destroy();
  }, 60_000);
});
