/**
 * Fused forms on the GPU (Dawn in Node, NaN-poisoned outputs), with both the row-fused and the
 * general (reduce/finalize/apply) kernels forced through the `variant` option:
 *  - layerNorm / rmsNorm with `residual`: s = x + residual is normalized and returned as `sum`;
 *    checked against the CPU composition (s computed here, then the plain CPU layerNorm/rmsNorm),
 *    and the backward of the fused form, layerNormBackward(dy, sum, mean, rstd) (rms:
 *    rmsNormBackward(dy, sum, rstd)), against the CPU backward on s.
 *  - groupNorm with activation 'silu' against the CPU groupNorm followed by y·sigmoid(y) here.
 * Tolerances: relative L2 ≤ 1e-4 for float32 and for every float32 output (statistics); 1e-3 for
 * float16 outputs (one half ulp is 2^-11 ≈ 4.9e-4 relative, and the GPU's float32 result and the
 * CPU's float64 one can round to neighbouring halves; see float16.test.ts for measured levels).
 * float16 parameters (weight/bias) are covered in float16.test.ts; here they stay float32.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createNorms, relativeL2, type Norms, type Tensor, type DType } from '../src/index.ts';
import { roundToHalf } from '../src/half.ts';
import { gpuNorms, ON_WASM, TEST_SUBGROUPS } from './util/gpu.ts';
import { makeRng } from './util/rng.ts';
import { TOLERANCE, TOLERANCE_HALF_VS_CPU } from './catalog.js';

type Variant = 'fused' | 'general';
const VARIANTS: Variant[] = ['fused', 'general'];

// The variant is an option of createNorms, so each forced variant needs its own instance.
const gpus = {} as Record<Variant, Norms>;
let cpu: Norms;

beforeAll(async () => {
  for (const v of VARIANTS) gpus[v] = await gpuNorms({ variant: v });
  cpu = await createNorms({ backend: 'cpu' });
});
afterAll(() => {
  for (const v of VARIANTS) gpus[v]?.destroy();
  cpu?.destroy();
});

const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
const tolFor = (dt: DType): number => (dt === 'float16' ? TOLERANCE_HALF_VS_CPU : TOLERANCE.float32);

/** Collects every mismatch of a test so one broken output does not hide the others. */
class Checks {
  readonly errors: string[] = [];
  close(name: string, got: Float32Array, ref: ArrayLike<number>, tol: number): void {
    const err = got.length === ref.length ? relativeL2(got, ref) : Infinity;
    if (err <= tol) return;
    const rows: string[] = [];
    for (let i = 0; i < ref.length && rows.length < 6; i++) {
      const g = got[i]!, r = ref[i]!;
      if (Number.isNaN(g) !== Number.isNaN(r) || Math.abs(g - r) > 10 * tol * Math.max(1, Math.abs(r))) rows.push(`  [${i}] got ${g} expected ${r}`);
    }
    this.errors.push(`${name}: relative L2 ${err.toExponential(3)} > ${tol} (len ${got.length} vs ${ref.length})\n${rows.join('\n')}`);
  }
  dtype(name: string, t: Tensor | null | undefined, want: DType): void {
    if (!t) this.errors.push(`${name}: missing`);
    else if (t.dtype !== want) this.errors.push(`${name}: dtype ${t.dtype}, expected ${want}`);
  }
  done(): void {
    if (this.errors.length) throw new Error(`${this.errors.length} mismatch(es):\n${this.errors.join('\n')}`);
  }
}

// ---------------------------------------------------------------------------------------------
// residual add + layerNorm / rmsNorm

interface ResCase {
  shape: [number, number];
  affine: boolean;
}
const RES_CASES: ResCase[] = [
  { shape: [7, 65], affine: true },
  { shape: [64, 768], affine: true },
  { shape: [3, 1001], affine: false },
];

describe('residual-fused layerNorm / rmsNorm vs the CPU composition (x + residual, then the norm)', () => {
  for (const variant of VARIANTS) {
    for (const dtype of ['float32', 'float16'] as DType[]) {
      RES_CASES.forEach((c, k) => {
        const [rows, K] = c.shape;
        it(`${variant}, ${dtype}, [${rows}, ${K}]${c.affine ? ' with weight/bias' : ''}: forward (y, mean, rstd, sum) and backward`, async () => {
          const gpu = gpus[variant];
          const ck = new Checks();
          const tol = tolFor(dtype);
          const rng = makeRng(7000 + 10 * k + (dtype === 'float16' ? 5 : 0));
          const n = rows * K;
          const x = rng.fill(n, 0.5, 1);
          const res = rng.fill(n, -0.25, 2);
          const dy = rng.fill(n);
          const w = c.affine ? rng.fill(K, 1, 0.5) : null;
          const b = c.affine ? rng.fill(K, 0, 0.5) : null;
          const ns = [K];
          // The sum as stored: float32 add of the stored inputs, rounded to the storage dtype. The
          // composition normalizes that stored s (as the unfused x + residual, then the norm, would,
          // and as the CPU backend's residual path does), and the fused backward is fed `sum`, so
          // mean/rstd must be the statistics of the returned sum.
          const xs = dtype === 'float16' ? roundToHalf(x) : x;
          const rs = dtype === 'float16' ? roundToHalf(res) : res;
          const s32 = new Float32Array(n);
          for (let i = 0; i < n; i++) s32[i] = xs[i]! + rs[i]!;
          const s = dtype === 'float16' ? roundToHalf(s32) : s32;

          const made: Tensor[] = [];
          const g = <T extends Tensor | null | undefined>(t: T): T => {
            if (t) made.push(t);
            return t;
          };
          try {
            // GPU: fused forms.
            const gx = g(gpu.tensor(x, [rows, K], dtype));
            const gr = g(gpu.tensor(res, [rows, K], dtype));
            const gdy = g(gpu.tensor(dy, [rows, K], dtype));
            const gw = w ? g(gpu.tensor(w, ns)) : null;
            const gb = b ? g(gpu.tensor(b, ns)) : null;
            const lf = gpu.layerNorm(gx, { normalizedShape: ns, weight: gw, bias: gb, residual: gr });
            g(lf.y), g(lf.mean), g(lf.rstd), g(lf.sum);
            expect(lf.sum, 'layerNorm with residual returns sum').toBeDefined();
            const lb = gpu.layerNormBackward(gdy, lf.sum!, lf.mean, lf.rstd, { normalizedShape: ns, weight: gw, bias: gb });
            g(lb.dx), g(lb.dweight), g(lb.dbias);
            const rf = gpu.rmsNorm(gx, { normalizedShape: ns, weight: gw, residual: gr });
            g(rf.y), g(rf.rstd), g(rf.sum);
            expect(rf.sum, 'rmsNorm with residual returns sum').toBeDefined();
            const rb = gpu.rmsNormBackward(gdy, rf.sum!, rf.rstd, { normalizedShape: ns, weight: gw });
            g(rb.dx), g(rb.dweight);

            // CPU: the composition.
            const cs = g(cpu.tensor(s, [rows, K], dtype));
            const cdy = g(cpu.tensor(dy, [rows, K], dtype));
            const cw = w ? g(cpu.tensor(w, ns)) : null;
            const cb = b ? g(cpu.tensor(b, ns)) : null;
            const clf = cpu.layerNorm(cs, { normalizedShape: ns, weight: cw, bias: cb });
            const clb = cpu.layerNormBackward(cdy, cs, clf.mean, clf.rstd, { normalizedShape: ns, weight: cw, bias: cb });
            const crf = cpu.rmsNorm(cs, { normalizedShape: ns, weight: cw });
            const crb = cpu.rmsNormBackward(cdy, cs, crf.rstd, { normalizedShape: ns, weight: cw });
            for (const t of [clf.y, clf.mean, clf.rstd, clb.dx, clb.dweight, clb.dbias, crf.y, crf.rstd, crb.dx, crb.dweight]) g(t);

            const L = `${variant} ${dtype} [${rows}, ${K}]`;
            ck.dtype(`${L} layerNorm sum`, lf.sum, dtype);
            ck.dtype(`${L} layerNorm y`, lf.y, dtype);
            ck.dtype(`${L} layerNorm mean`, lf.mean, 'float32');
            ck.dtype(`${L} layerNorm rstd`, lf.rstd, 'float32');
            ck.dtype(`${L} rmsNorm sum`, rf.sum, dtype);
            ck.dtype(`${L} rmsNorm rstd`, rf.rstd, 'float32');
            ck.close(`${L} layerNorm sum`, await gpu.read(lf.sum!), s, tol);
            ck.close(`${L} layerNorm y`, await gpu.read(lf.y), await cpu.read(clf.y), tol);
            ck.close(`${L} layerNorm mean`, await gpu.read(lf.mean), await cpu.read(clf.mean), 1e-4);
            ck.close(`${L} layerNorm rstd`, await gpu.read(lf.rstd), await cpu.read(clf.rstd), 1e-4);
            ck.close(`${L} layerNorm dx`, await gpu.read(lb.dx), await cpu.read(clb.dx), tol);
            if (c.affine) {
              ck.close(`${L} layerNorm dweight`, await gpu.read(lb.dweight!), await cpu.read(clb.dweight!), 1e-4);
              ck.close(`${L} layerNorm dbias`, await gpu.read(lb.dbias!), await cpu.read(clb.dbias!), 1e-4);
            }
            ck.close(`${L} rmsNorm sum`, await gpu.read(rf.sum!), s, tol);
            ck.close(`${L} rmsNorm y`, await gpu.read(rf.y), await cpu.read(crf.y), tol);
            ck.close(`${L} rmsNorm rstd`, await gpu.read(rf.rstd), await cpu.read(crf.rstd), 1e-4);
            ck.close(`${L} rmsNorm dx`, await gpu.read(rb.dx), await cpu.read(crb.dx), tol);
            if (c.affine) ck.close(`${L} rmsNorm dweight`, await gpu.read(rb.dweight!), await cpu.read(crb.dweight!), 1e-4);
          } finally {
            for (const t of made) t.destroy();
          }
          ck.done();
        });
      });
    }
  }

  it('without residual there is no sum', async () => {
    const gpu = gpus.fused;
    const x = gpu.tensor(makeRng(7100).fill(14), [2, 7]);
    const r = gpu.layerNorm(x, { normalizedShape: [7] });
    const q = gpu.rmsNorm(x, { normalizedShape: [7] });
    expect(r.sum).toBeUndefined();
    expect(q.sum).toBeUndefined();
    for (const t of [x, r.y, r.mean, r.rstd, q.y, q.rstd]) t.destroy();
  });
});

// ---------------------------------------------------------------------------------------------
// groupNorm + SiLU

const silu = (v: number): number => v / (1 + Math.exp(-v));

const SILU_CASES: { shape: number[]; G: number; dtype: DType }[] = [
  { shape: [2, 32, 8, 8], G: 8, dtype: 'float32' },
  { shape: [1, 6, 5, 5], G: 3, dtype: 'float32' },
  { shape: [1, 6, 5, 5], G: 3, dtype: 'float16' },
  { shape: [1, 3, 7, 5], G: 3, dtype: 'float16' }, // odd groups of 35 and an odd element count
];

describe("groupNorm with activation 'silu' vs the CPU groupNorm followed by y·sigmoid(y)", () => {
  for (const variant of VARIANTS) {
    SILU_CASES.forEach((c, k) => {
      it(`${variant}, ${c.dtype}, [${c.shape.join(', ')}] G=${c.G}`, async () => {
        const gpu = gpus[variant];
        const ck = new Checks();
        const C = c.shape[1]!;
        const rng = makeRng(7200 + k);
        const x = rng.fill(numel(c.shape), 0.3, 1.5);
        const w = rng.fill(C, 1, 0.5);
        const b = rng.fill(C, 0, 1);
        const gx = gpu.tensor(x, c.shape, c.dtype);
        const gw = gpu.tensor(w, [C]);
        const gb = gpu.tensor(b, [C]);
        const out = gpu.groupNorm(gx, { numGroups: c.G, weight: gw, bias: gb, activation: 'silu' });
        // The reference: the plain CPU groupNorm in float32 on the values as stored, then SiLU
        // here in float64 (for float16 the GPU output is one half rounding of this).
        const xs = c.dtype === 'float16' ? roundToHalf(x) : x;
        const cx = cpu.tensor(xs, c.shape);
        const ref = cpu.groupNorm(cx, { numGroups: c.G, weight: cpu.tensor(w, [C]), bias: cpu.tensor(b, [C]) });
        const yRef = Float64Array.from(await cpu.read(ref.y), silu);
        const L = `${variant} ${c.dtype} [${c.shape.join(', ')}] G=${c.G}`;
        ck.dtype(`${L} y`, out.y, c.dtype);
        ck.dtype(`${L} mean`, out.mean, 'float32');
        ck.close(`${L} y`, await gpu.read(out.y), yRef, tolFor(c.dtype));
        // The statistics are those of the normalization, not of the activated output.
        ck.close(`${L} mean`, await gpu.read(out.mean), await cpu.read(ref.mean), 1e-4);
        ck.close(`${L} rstd`, await gpu.read(out.rstd), await cpu.read(ref.rstd), 1e-4);
        // The activation really did something (a plain groupNorm output would fail the check above).
        const plain = await cpu.read(ref.y);
        expect(relativeL2(plain, yRef)).toBeGreaterThan(0.1);
        for (const t of [gx, gw, gb, out.y, out.mean, out.rstd]) t.destroy();
        ck.done();
      });
    });
  }
});

describe.skipIf(ON_WASM)('the kernel class and subgroup setting of this test project', () => {
  it('reach the kernels: the GPU class takes the one-workgroup-per-row kernel, with subgroup sums unless the project turns them off', async () => {
    const n = await gpuNorms();
    const x = n.tensor(makeRng(7).fill(4 * 256), [4, 256]);
    const [p] = n._gpu!.planOnly(() => n.layerNorm(x, { normalizedShape: [256] }));
    const gpuClass = !n._gpu!.ctx.isCpuAdapter;
    expect(p!.steps[0]!.entry).toBe(gpuClass ? 'workgroup_rows_welford' : 'fused_rows_welford');
    if (gpuClass) expect(p!.steps[0]!.flags.includes('SUBGROUPS')).toBe(TEST_SUBGROUPS && n.device!.features.has('subgroups'));
    n.destroy();
  });
});
