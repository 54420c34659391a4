/**
 * createNorms({ verify: true }): every op also runs the CPU reference and compares. A correct
 * GPU result passes (awaiting the result object and reading outputs), a wrong one (injected by
 * patching the internal GPU backend) rejects with a ParityError naming the op, the output and
 * its shape.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNorms, ParityError, type Norms, type Tensor } from '../src/index.ts';
import { OPS } from '../src/op-table.ts';
import type { GpuBackend } from '../src/kernels/gpu.ts';
import type { Planned } from '../src/kernels/plan.ts';
import { gpuNorms, expectClose, ON_WASM } from './util/gpu.ts';
import { fmt, numel, randn, uniform } from './util/parity.ts';

let norms: Norms;
let cpu: Norms;
beforeAll(async () => {
  norms = await gpuNorms({ verify: true });
  cpu = await createNorms({ backend: 'cpu' });
});
afterAll(() => {
  norms?.destroy();
  cpu?.destroy();
});

const LN = { shape: [7, 257], ns: [257] };
const lnInputs = () => ({ x: randn(5000, LN.shape, 0.5, 2), w: randn(5001, LN.ns, 1, 0.5), b: randn(5002, LN.ns, 0, 0.5) });

/** The CPU reference's layerNorm outputs for lnInputs(). */
async function lnReference(): Promise<Record<'y' | 'mean' | 'rstd', Float32Array>> {
  const i = lnInputs();
  const r = cpu.layerNorm(cpu.tensor(i.x.data, LN.shape), { normalizedShape: LN.ns, weight: cpu.tensor(i.w.data, LN.ns), bias: cpu.tensor(i.b.data, LN.ns) });
  return { y: await cpu.read(r.y), mean: await cpu.read(r.mean), rstd: await cpu.read(r.rstd) };
}

function lnOnGpu() {
  const i = lnInputs();
  const x = norms.tensor(i.x.data, LN.shape);
  const weight = norms.tensor(i.w.data, LN.ns);
  const bias = norms.tensor(i.b.data, LN.ns);
  const out = norms.layerNorm(x, { normalizedShape: LN.ns, weight, bias });
  return { out, inputs: [x, weight, bias] };
}

type Method = 'layerNorm' | 'layerNormBackward' | 'rmsNorm' | 'rmsNormBackward' | 'groupNorm' | 'groupNormBackward' | 'instanceNorm' | 'instanceNormBackward' | 'batchNorm' | 'batchNormBackward';
type Args<K extends Method> = Parameters<(typeof OPS)[K]['cpu']>[1];
type Out<K extends Method> = ReturnType<(typeof OPS)[K]['cpu']>;

/**
 * Replaces op `name`'s entry for the instance's backend (webgpu or wasm) in the op table for the
 * duration of `body`: `impl` gets the original (run to completion on that backend) and the
 * resolved arguments. The reference the check runs stays the original.
 */
async function patched<K extends Method>(name: K, impl: (orig: (a: Args<K>) => Out<K>, a: Args<K>) => Out<K>, body: () => Promise<void>): Promise<void> {
  const entry = OPS[name] as unknown as Record<'webgpu' | 'wasm', (b: unknown, a: Args<K>) => unknown>;
  const kind = norms.backend === 'wasm' ? 'wasm' : 'webgpu';
  const orig = entry[kind];
  entry[kind] =
    kind === 'webgpu'
      ? (g, a) => ({ out: impl((b) => (g as GpuBackend).run(orig(g, b) as Planned<Out<K>>), a), plan: null })
      : (w, a) => impl((b) => orig(w, b) as Out<K>, a);
  try {
    await body();
  } finally {
    entry[kind] = orig;
  }
}

async function expectParityError(p: Promise<unknown>, op: string, output: string, shape: number[]): Promise<ParityError> {
  let err: unknown;
  try {
    await within(p, `${op}: the promise expected to reject with a ParityError on ${output}`);
  } catch (e) {
    err = e;
  }
  expect((err as Error)?.message ?? '', 'settled').not.toMatch(/did not settle/);
  expect(err, `${op}.${output}: expected a ParityError`).toBeInstanceOf(ParityError);
  const e = err as ParityError;
  expect(e.op).toBe(op);
  expect(e.output).toBe(output);
  expect([...e.shape]).toEqual(shape);
  expect(e.relativeError).toBeGreaterThan(1e-4);
  expect(e.message).toContain(op);
  expect(e.message).toContain(output);
  expect(e.message).toContain(fmt(shape));
  return e;
}

/**
 * `p`, or a rejection after `ms`: a verify check that never settles must fail the test quickly
 * instead of hanging until the test timeout. Small ops settle in well under a second once their
 * pipelines exist, but the first op of a kernel class on lavapipe compiles them first (llvmpipe
 * takes seconds per one-workgroup-per-row pipeline on a loaded 2-core machine: a 5 s bound failed
 * there once), hence 30 s.
 */
function within<T>(p: T, what: string, ms = 30_000): Promise<Awaited<T>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`${what} did not settle within ${ms / 1000}s (verify check never completes?)`)), ms);
  });
  // The verified result object is a thenable: Promise.resolve adopts it.
  return Promise.race([Promise.resolve(p) as Promise<Awaited<T>>, t]).finally(() => clearTimeout(timer));
}

const destroy = (...ts: (Tensor | null | undefined)[]) => ts.forEach((t) => t?.destroy());

describe('verify: true passes on correct results', () => {
  it('is on for the webgpu backend (and ignored on the cpu backend)', async () => {
    expect(norms.verify).toBe(true);
    expect(norms.backend).toBe(ON_WASM ? 'wasm' : 'webgpu');
    const c = await createNorms({ backend: 'cpu', verify: true });
    expect(c.verify).toBe(false);
    c.destroy();
  });

  it('layerNorm: the result object resolves and the outputs match the CPU reference', async () => {
    const ref = await lnReference();
    const { out, inputs } = lnOnGpu();
    const settled = await within(out, 'await layerNorm(...) result'); // thenable: resolves once the check passed
    expect(Object.keys(settled).sort()).toEqual(['mean', 'rstd', 'y']);
    expect(settled.y).toBe(out.y);
    for (const k of ['y', 'mean', 'rstd'] as const) expectClose(`verified ${k}`, await within(norms.read(out[k]), `read(${k})`), ref[k], 1e-4);
    destroy(out.y, out.mean, out.rstd, ...inputs);
  });

  it('layerNormBackward, rmsNorm, groupNorm (+ backward) and training batchNorm (running stats) pass', async () => {
    const made: Tensor[] = [];
    const t = (d: { data: Float32Array; shape: number[] }) => {
      const r = norms.tensor(d.data, d.shape);
      made.push(r);
      return r;
    };
    const x = t(randn(5100, [7, 65], 0.5, 2));
    const ln = await within(norms.layerNorm(x, { normalizedShape: [65] }), 'layerNorm');
    const lb = await within(norms.layerNormBackward(t(randn(5101, [7, 65])), x, ln.mean, ln.rstd, { normalizedShape: [65], weight: t(randn(5102, [65], 1, 0.5)) }), 'layerNormBackward');
    const rn = await within(norms.rmsNorm(x, { normalizedShape: [65], weight: t(randn(5103, [65], 1, 0.5)) }), 'rmsNorm');
    const xc = t(randn(5104, [2, 6, 4, 5], -1, 3));
    const gn = await within(norms.groupNorm(xc, { numGroups: 3, weight: t(randn(5105, [6], 1, 0.5)), bias: t(randn(5106, [6])) }), 'groupNorm');
    const gb = await within(norms.groupNormBackward(t(randn(5107, [2, 6, 4, 5])), xc, gn.mean, gn.rstd, { numGroups: 3, weight: t(randn(5108, [6], 1, 0.5)) }), 'groupNormBackward');
    const rm = t(randn(5109, [6]));
    const rv = t(uniform(5110, [6], 0.5, 2));
    const bn = await within(norms.batchNorm(xc, { training: true, runningMean: rm, runningVar: rv, momentum: 0.2 }), 'batchNorm');
    for (const o of [ln, lb, rn, gn, gb, bn] as Record<string, Tensor | null>[]) {
      for (const v of Object.values(o)) {
        if (!v || v.size === 0) continue;
        const got = await within(norms.read(v), `read(${fmt(v.shape)})`);
        expect(got.every(Number.isFinite), 'finite output').toBe(true);
        made.push(v);
      }
    }
    expect(await within(norms.read(rm), 'read(runningMean)')).not.toEqual(randn(5109, [6]).data); // updated in place, and verified
    destroy(...made);
  });
});

describe('verify: true detects a wrong GPU result', () => {
  // Each public op, with its op-table entry's first output (on this backend) replaced by zeros.
  const OPS: { op: string; method: Method; call: (t: (d: { data: Float32Array; shape: number[] }) => Tensor) => object }[] = [
    { op: 'layerNorm', method: 'layerNorm', call: (t) => norms.layerNorm(t(randn(5400, [5, 33])), { normalizedShape: [33], weight: t(randn(5401, [33])) }) },
    {
      op: 'layerNorm',
      method: 'layerNorm',
      call: (t) => norms.layerNorm(t(randn(5430, [5, 33])), { normalizedShape: [33], residual: t(randn(5431, [5, 33])), bias: t(randn(5432, [33])) }),
    },
    { op: 'rmsNorm', method: 'rmsNorm', call: (t) => norms.rmsNorm(t(randn(5402, [5, 33])), { normalizedShape: [33] }) },
    {
      op: 'layerNormBackward',
      method: 'layerNormBackward',
      call: (t) => norms.layerNormBackward(t(randn(5403, [5, 33])), t(randn(5404, [5, 33])), t(randn(5405, [5])), t(uniform(5406, [5], 0.5, 2)), { normalizedShape: [33], bias: t(randn(5407, [33])) }),
    },
    {
      op: 'rmsNormBackward',
      method: 'rmsNormBackward',
      call: (t) => norms.rmsNormBackward(t(randn(5408, [5, 33])), t(randn(5409, [5, 33])), t(uniform(5410, [5], 0.5, 2)), { normalizedShape: [33], weight: t(randn(5411, [33])) }),
    },
    { op: 'groupNorm', method: 'groupNorm', call: (t) => norms.groupNorm(t(randn(5412, [2, 4, 7])), { numGroups: 2 }) },
    { op: 'instanceNorm', method: 'instanceNorm', call: (t) => norms.instanceNorm(t(randn(5413, [2, 4, 7])), { weight: t(randn(5414, [4])) }) },
    {
      op: 'groupNormBackward',
      method: 'groupNormBackward',
      call: (t) => norms.groupNormBackward(t(randn(5415, [2, 4, 7])), t(randn(5416, [2, 4, 7])), t(randn(5417, [2, 2])), t(uniform(5418, [2, 2], 0.5, 2)), { numGroups: 2 }),
    },
    {
      op: 'instanceNormBackward',
      method: 'instanceNormBackward',
      call: (t) => norms.instanceNormBackward(t(randn(5419, [2, 4, 7])), t(randn(5420, [2, 4, 7])), t(randn(5421, [2, 4])), t(uniform(5422, [2, 4], 0.5, 2)), { bias: t(randn(5423, [4])) }),
    },
    { op: 'batchNorm', method: 'batchNorm', call: (t) => norms.batchNorm(t(randn(5424, [3, 4, 7])), { training: true, bias: t(randn(5425, [4])) }) },
    {
      op: 'batchNormBackward',
      method: 'batchNormBackward',
      call: (t) => norms.batchNormBackward(t(randn(5426, [3, 4, 7])), t(randn(5427, [3, 4, 7])), { training: true, saveMean: t(randn(5428, [4])), saveInvstd: t(uniform(5429, [4], 0.5, 2)) }),
    },
  ];
  OPS.forEach(({ op, method, call }, i) => {
    it(`${op}${i === 1 ? ' with residual' : ''}: a zeroed first output makes read() of every output and awaiting the result reject with ParityError`, async () => {
      let first = '';
      let shape: number[] = [];
      await patched(
        method,
        (orig, a) => {
          const r = (orig as unknown as (a: unknown) => Record<string, Tensor | null>)(a);
          first = 'y' in r ? 'y' : 'dx';
          const t = r[first]!;
          shape = [...t.shape];
          t.destroy();
          return { ...r, [first]: norms.tensor(new Float32Array(t.size), t.shape, t.dtype) } as never;
        },
        async () => {
          const made: Tensor[] = [];
          const out = call((d) => {
            const t = norms.tensor(d.data, d.shape);
            made.push(t);
            return t;
          }) as Record<string, Tensor | null>;
          expect(first, 'the patched op-table entry ran').not.toBe('');
          const e = await expectParityError(norms.read(out[first]!), op, first, shape);
          expect(e.relativeError).toBeCloseTo(1, 5); // all zeros: ‖0 − ref‖/‖ref‖ = 1
          for (const [k, v] of Object.entries(out)) if (v && k !== first) await expectParityError(norms.read(v), op, first, shape);
          await expectParityError(Promise.resolve(out), op, first, shape); // the result object is a thenable
          destroy(...made, ...Object.values(out));
        },
      );
    });
  });

  it('the tolerance is relative L2 1e-4: the reference itself and ref·(1 + 1e-6) pass, ref·(1 + 1e-3) fails', async () => {
    const ref = await lnReference();
    for (const [scale, ok] of [[1, true], [1 + 1e-6, true], [1 + 1e-3, false]] as const) {
      await patched(
        'layerNorm',
        (orig, a) => {
          const r = orig(a);
          r.rstd.destroy();
          return { ...r, rstd: norms.tensor(ref.rstd.map((v) => v * scale), a.statShape) };
        },
        async () => {
          const { out, inputs } = lnOnGpu();
          if (ok) expectClose(`rstd scaled by ${scale}`, await within(norms.read(out.rstd), 'read(rstd)'), ref.rstd.map((v) => v * scale), 1e-5);
          else {
            const e = await expectParityError(norms.read(out.rstd), 'layerNorm', 'rstd', [7]);
            expect(e.relativeError).toBeCloseTo(1e-3, 6);
          }
          destroy(out.y, out.mean, out.rstd, ...inputs);
        },
      );
    }
  });

  it('a wrong in-place running-stats update rejects with ParityError(batchNorm, runningMean)', async () => {
    await patched(
      'batchNorm',
      (orig, a) => {
        const r = orig(a);
        // Corrupt the updated running mean after the op's own update.
        if (norms._wasm) norms._wasm.values(a.runningMean!).fill(123);
        else norms.device!.queue.writeBuffer(a.runningMean!._buffer!, 0, new Float32Array(a.C).fill(123));
        return r;
      },
      async () => {
        const x = norms.tensor(randn(5200, [4, 3, 5]).data, [4, 3, 5]);
        const rm = norms.tensor([0, 0.5, 1], [3]);
        const rv = norms.tensor([1, 1, 2], [3]);
        const out = norms.batchNorm(x, { training: true, runningMean: rm, runningVar: rv });
        await expectParityError(norms.read(out.y), 'batchNorm', 'runningMean', [3]);
        destroy(x, rm, rv, out.y, out.saveMean, out.saveInvstd);
      },
    );
  });

  it('a wrong gradient rejects with ParityError(groupNormBackward, dweight)', async () => {
    await patched(
      'groupNormBackward',
      (orig, a) => {
        const r = orig(a);
        r.dweight?.destroy();
        return { ...r, dweight: norms.tensor(new Float32Array(a.C).fill(1), [a.C]) };
      },
      async () => {
        const shape = [2, 4, 3, 3];
        const x = norms.tensor(randn(5300, shape).data, shape);
        const dy = norms.tensor(randn(5301, shape).data, shape);
        const w = norms.tensor([1, 2, 3, 4], [4]);
        const f = await within(norms.groupNorm(x, { numGroups: 2 }), 'groupNorm');
        const out = norms.groupNormBackward(dy, x, f.mean, f.rstd, { numGroups: 2, weight: w });
        await expectParityError(norms.read(out.dx), 'groupNormBackward', 'dweight', [4]);
        destroy(x, dy, w, f.y, f.mean, f.rstd, out.dx, out.dweight, out.dbias);
      },
    );
  });
});
