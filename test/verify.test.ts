/**
 * createNorms({ verify: true }): every op also runs the CPU reference and compares. A correct
 * GPU result passes (awaiting the result object and reading outputs), a wrong one (injected by
 * patching the internal GPU backend) rejects with a ParityError naming the op, the output and
 * its shape.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNorms, ParityError, type Norms, type Tensor } from '../src/index.ts';
import type * as O from '../src/ops.ts';
import { gpuNorms, expectClose } from './util/gpu.ts';
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

/** Replaces GpuBackend method `name` of `norms` with `impl` for the duration of `body`. */
async function patched<K extends 'layerNorm' | 'batchNorm' | 'groupNormBackward'>(
  name: K,
  impl: (orig: O.Backend[K], ...args: Parameters<O.Backend[K]>) => ReturnType<O.Backend[K]>,
  body: () => Promise<void>,
): Promise<void> {
  const gpu = norms._gpu!;
  const orig = gpu[name].bind(gpu) as O.Backend[K];
  (gpu as unknown as Record<string, unknown>)[name] = (...args: Parameters<O.Backend[K]>) => impl(orig, ...args);
  try {
    await body();
  } finally {
    delete (gpu as unknown as Record<string, unknown>)[name];
  }
  expect(gpu[name]).not.toBe(undefined);
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
 * (small ops settle in well under a second here) instead of hanging until the test timeout.
 */
function within<T>(p: T, what: string, ms = 5000): Promise<Awaited<T>> {
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
    expect(norms.backend).toBe('webgpu');
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
  it('y replaced by zeros: read(y), read(mean) and awaiting the result reject with ParityError(layerNorm, y, shape)', async () => {
    await patched(
      'layerNorm',
      (orig, a) => {
        const r = orig(a);
        r.y.destroy();
        return { ...r, y: norms.tensor(new Float32Array(numel(a.x.shape)), a.x.shape) };
      },
      async () => {
        const { out, inputs } = lnOnGpu();
        const e = await expectParityError(norms.read(out.y), 'layerNorm', 'y', LN.shape);
        expect(e.relativeError).toBeCloseTo(1, 5); // all zeros: ‖0 − ref‖/‖ref‖ = 1
        await expectParityError(norms.read(out.mean), 'layerNorm', 'y', LN.shape);
        await expectParityError(Promise.resolve(out), 'layerNorm', 'y', LN.shape);
        destroy(out.y, out.mean, out.rstd, ...inputs);
      },
    );
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
        norms.device!.queue.writeBuffer(a.runningMean!._buffer!, 0, new Float32Array(a.C).fill(123));
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
