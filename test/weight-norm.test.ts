/**
 * weightNorm / weightNormBackward on the GPU (Dawn in Node, NaN-poisoned outputs) against the
 * float64 CPU reference backend: every rank 1–5, every dim (negative dims and dim null included),
 * sizes that are not multiples of 4, one large conv weight and one wide strided case, and a zero
 * slice (PyTorch gives NaN there: no eps). The CPU reference itself is checked against finite
 * differences in cpu-reference.test.ts, not here.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createNorms, type Norms, type Tensor } from '../src/index.ts';
import { gpuNorms, expectClose } from './util/gpu.ts';
import { makeRng } from './util/rng.ts';

const TOL = 1e-4;

let gpu: Norms;
let cpu: Norms;

beforeAll(async () => {
  gpu = await gpuNorms();
  cpu = await createNorms({ backend: 'cpu' });
});
afterAll(() => {
  gpu?.destroy();
  cpu?.destroy();
});

const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

/** g's PyTorch shape: v's size on dim, 1 elsewhere (all ones for dim null). */
function gShapeOf(shape: readonly number[], dim: number | null): number[] {
  if (dim === null) return shape.map(() => 1);
  const d = dim < 0 ? dim + shape.length : dim;
  return shape.map((n, i) => (i === d ? n : 1));
}

interface Inputs {
  v: Float32Array;
  g: Float32Array;
  dw: Float32Array;
  gShape: number[];
}

function makeInputs(seed: number, shape: readonly number[], dim: number | null, gShape = gShapeOf(shape, dim)): Inputs {
  const rng = makeRng(seed);
  const n = numel(shape);
  const v = rng.fill(n);
  const g = new Float32Array(numel(gShape));
  for (let i = 0; i < g.length; i++) g[i] = 0.25 + 2 * rng.uniform(); // random, positive
  const dw = rng.fill(n);
  return { v, g, dw, gShape };
}

interface Result {
  w: Float32Array;
  norms: Float32Array;
  dv: Float32Array;
  dg: Float32Array;
  normsDtype: string;
  normsShape: readonly number[];
  dgShape: readonly number[];
}

/** Forward and backward on one backend; every tensor it made is destroyed afterwards. */
async function runBoth(n: Norms, inp: Inputs, shape: readonly number[], dim: number | null | undefined): Promise<Result> {
  const made: Tensor[] = [];
  const t = (d: Float32Array, s: readonly number[]): Tensor => {
    const x = n.tensor(d, s);
    made.push(x);
    return x;
  };
  const v = t(inp.v, shape);
  const g = t(inp.g, inp.gShape);
  const dw = t(inp.dw, shape);
  const opts = dim === undefined ? {} : { dim };
  const f = n.weightNorm(v, g, opts);
  const b = n.weightNormBackward(dw, v, g, f.norms, opts);
  made.push(f.w, f.norms, b.dv, b.dg);
  try {
    return {
      w: await n.read(f.w),
      norms: await n.read(f.norms),
      dv: await n.read(b.dv),
      dg: await n.read(b.dg),
      normsDtype: f.norms.dtype,
      normsShape: f.norms.shape,
      dgShape: b.dg.shape,
    };
  } finally {
    for (const x of made) x.destroy();
  }
}

async function check(label: string, shape: readonly number[], dim: number | null | undefined, seed: number, inp?: Inputs): Promise<void> {
  const effDim = dim === undefined ? 0 : dim;
  const input = inp ?? makeInputs(seed, shape, effDim);
  const got = await runBoth(gpu, input, shape, dim);
  const ref = await runBoth(cpu, input, shape, dim);
  expect(got.normsDtype).toBe('float32');
  expect([...got.normsShape]).toEqual([...input.gShape]);
  expect([...got.dgShape]).toEqual([...input.gShape]);
  expectClose(`${label} w`, got.w, ref.w, TOL);
  expectClose(`${label} norms`, got.norms, ref.norms, TOL);
  if (sliceSize(shape, effDim) === 1) {
    // Every slice holds one element: dv = (g/|v|)·(dw − v·dw·v/v²) is exactly 0, and the GPU's
    // float32 rounding residue (~5e-7·|g·dw/v|, as PyTorch's float32 would give) over a zero
    // reference is no relative error. Measure it against the scale of dv's terms instead.
    expectAbsClose(`${label} dv`, got.dv, ref.dv, dvScale(input, shape, effDim), TOL);
  } else {
    expectClose(`${label} dv`, got.dv, ref.dv, TOL);
  }
  expectClose(`${label} dg`, got.dg, ref.dg, TOL);
}

/** Elements per weight-norm slice. */
function sliceSize(shape: readonly number[], dim: number | null): number {
  if (dim === null) return numel(shape);
  const d = dim < 0 ? dim + shape.length : dim;
  return numel(shape) / shape[d]!;
}

/** ‖(g/‖v‖)·dw‖ in float64: the size of the terms whose difference is dv. */
function dvScale(inp: Inputs, shape: readonly number[], dim: number | null): number {
  const d = dim === null ? -1 : dim < 0 ? dim + shape.length : dim;
  const D = d < 0 ? 1 : shape[d]!;
  const inner = d < 0 ? numel(shape) : numel(shape.slice(d + 1));
  const nv = new Float64Array(D);
  for (let i = 0; i < inp.v.length; i++) nv[Math.floor(i / inner) % D] += inp.v[i]! ** 2;
  let s = 0;
  for (let i = 0; i < inp.v.length; i++) {
    const j = Math.floor(i / inner) % D;
    s += ((inp.g[j]! / Math.sqrt(nv[j]!)) * inp.dw[i]!) ** 2;
  }
  return Math.sqrt(s);
}

/** ‖got − ref‖ / scale ≤ tol, and no NaN (poisoned, unwritten outputs are NaN). */
function expectAbsClose(name: string, got: Float32Array, ref: Float32Array, scale: number, tol: number): void {
  expect(got.length).toBe(ref.length);
  let num = 0;
  for (let i = 0; i < ref.length; i++) {
    if (!Number.isFinite(got[i]!)) throw new Error(`${name}: element ${i} is ${got[i]}`);
    num += (got[i]! - ref[i]!) ** 2;
  }
  const err = Math.sqrt(num) / scale;
  if (!(err <= tol)) throw new Error(`${name}: ‖got − ref‖ / ${scale.toExponential(3)} = ${err.toExponential(3)} > ${tol}`);
}

const SHAPES: number[][] = [[5], [6, 7], [3, 5, 7], [2, 3, 4, 5], [2, 3, 2, 3, 5]];

describe('weightNorm GPU vs CPU, every rank and every dim', () => {
  for (const shape of SHAPES) {
    const r = shape.length;
    const dims: (number | null)[] = [];
    for (let d = -r; d < r; d++) dims.push(d);
    dims.push(null);
    it(`v [${shape.join(', ')}]: dims ${dims.map(String).join(', ')}`, async () => {
      let seed = 100 * r;
      for (const dim of dims) await check(`[${shape.join(', ')}] dim ${String(dim)}`, shape, dim, seed++);
    });
  }

  it('dim omitted means dim 0', async () => {
    await check('[6, 7] default dim', [6, 7], undefined, 7);
  });

  it('a 1-D g of length D is accepted (same result as the PyTorch-shaped g)', async () => {
    const shape = [3, 5, 7];
    const inp = makeInputs(11, shape, 1);
    const flat = { ...inp, gShape: [5] };
    const got = await runBoth(gpu, flat, shape, 1);
    const ref = await runBoth(cpu, inp, shape, 1);
    expectClose('1-D g w', got.w, ref.w, TOL);
    expectClose('1-D g norms', got.norms, ref.norms, TOL);
    expectClose('1-D g dv', got.dv, ref.dv, TOL);
    expectClose('1-D g dg', got.dg, ref.dg, TOL);
  });
});

describe('weightNorm, large shapes', () => {
  it('[512, 512, 3, 3] dim 0 (conv weight, 2.4M elements)', async () => {
    await check('[512, 512, 3, 3] dim 0', [512, 512, 3, 3], 0, 4242);
  });

  it('[64, 4096] dim 1 (strided slices, 4096 norms of 64)', async () => {
    await check('[64, 4096] dim 1', [64, 4096], 1, 4243);
  });
});

describe('weightNorm, a zero slice', () => {
  // No eps in PyTorch's weight norm: ‖v‖ = 0 gives w = 0·(g/0) = NaN for that slice, and in the
  // backward dg = 0/0 and dv = (g/0)·(dw − 0·NaN) are NaN too. Every other slice stays finite.
  for (const [shape, dim, zero] of [
    [[6, 7], 0, 2],
    [[3, 5, 7], 1, 4],
    [[2, 3, 4, 5], -1, 0],
  ] as [number[], number, number][]) {
    it(`v [${shape.join(', ')}] dim ${dim}, slice ${zero} all zero`, async () => {
      const inp = makeInputs(77 + zero, shape, dim);
      const d = dim < 0 ? dim + shape.length : dim;
      const inner = numel(shape.slice(d + 1));
      const D = shape[d]!;
      let zeroed = 0;
      for (let i = 0; i < inp.v.length; i++) {
        if (Math.floor(i / inner) % D === zero) {
          inp.v[i] = 0;
          zeroed++;
        }
      }
      const got = await runBoth(gpu, inp, shape, dim);
      const ref = await runBoth(cpu, inp, shape, dim);
      // The reference really has NaN exactly on the zero slice (else this test proves nothing).
      expect(ref.w.filter(Number.isNaN).length).toBe(zeroed);
      expect(ref.norms[zero]).toBe(0);
      expect(got.norms[zero]).toBe(0);
      // relativeL2 treats NaN at matching positions as equal and any other NaN as a failure.
      expectClose('zero slice w', got.w, ref.w, TOL);
      expectClose('zero slice norms', got.norms, ref.norms, TOL);
      expectClose('zero slice dv', got.dv, ref.dv, TOL);
      expectClose('zero slice dg', got.dg, ref.dg, TOL);
      // The other slices are finite on the GPU (a NaN could also be poison left unwritten).
      for (let i = 0; i < got.w.length; i++) {
        if (Math.floor(i / inner) % D !== zero && !Number.isFinite(got.w[i]!)) throw new Error(`w[${i}] = ${got.w[i]} outside the zero slice`);
      }
    });
  }
});
