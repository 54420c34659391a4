/**
 * float16 storage for every op, forward and backward, on the GPU (Dawn in Node; SwiftShader has
 * no shader-f16, so halves travel packed two per u32 word) at odd sizes.
 *
 * Each output is checked twice:
 *  (a) against the CPU backend fed the same values (it rounds inputs and outputs to half, so both
 *      sides see identical half inputs): relative L2 ≤ 1e-3 for half outputs. Not 1e-4: one half
 *      ulp is 2^-11 ≈ 4.9e-4 relative, and wherever the GPU's float32 result and the float64 one
 *      fall on different sides of a half rounding boundary they differ by a full ulp; in a small
 *      output (dweight of 3 channels, dg of 7 slices) one such flip alone is ~1e-4 to 3e-4.
 *      Measured on SwiftShader: y ≤ 5.1e-5, dx ≤ 4.0e-5, w and dv 0 (bit-identical).
 *  (b) against the float64 reference (`__f64`) on the half-rounded inputs, not rounded at the end:
 *      relative L2 ≤ 2e-3. This is the half rounding of the output itself, ~2^-11/√3 ≈ 2.8e-4 RMS
 *      for values spread over a binade. Measured: y ≤ 2.3e-4, dx ≤ 2.3e-4, w ≤ 2.2e-4, dv ≤ 2.2e-4.
 * The run prints the largest error per output kind at the end.
 * On a device with 'shader-f16' every case runs twice: with halves loaded and stored as WGSL f16
 * (native) and with the packed path forced (createNorms({ float16: 'packed' })); elsewhere once,
 * packed. Each case asserts from the profile records that its ops ran on the path under test.
 * Saved statistics (mean, rstd, saveMean, saveInvstd, running stats, norms) are float32 tensors
 * whatever x is, and they are accumulated in float32 from the same half inputs, so they are held to
 * the float32 bound 1e-4 on both checks.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createNorms, relativeL2, type Norms, type Tensor, type DType } from '../src/index.ts';
import { __f64 } from '../src/cpu/reference.ts';
import { roundToHalf, f32ToF16Bits, f16BitsToF32 } from '../src/half.ts';
import { float16Paths, gpuNorms } from './util/gpu.ts';
import { makeRng } from './util/rng.ts';
import { TOLERANCE, TOLERANCE_HALF_VS_CPU } from './catalog.js';

const TOL_HALF_VS_CPU = TOLERANCE_HALF_VS_CPU; // 1e-3
const TOL_HALF_VS_F64 = TOLERANCE.float16; // 2e-3
const TOL_F32 = TOLERANCE.float32; // 1e-4

/** The float16 paths of this adapter (native and packed with 'shader-f16', else packed). */
const PATHS = await (async () => {
  const probe = await gpuNorms();
  const p = float16Paths(probe);
  probe.destroy();
  return p;
})();

/** The GPU instance of the path under test (set per path), with profiling to see the path ran. */
let gpu: Norms;
let path: 'native' | 'packed';
let cpu: Norms;
/** Largest relative L2 seen per (output kind, check): printed at the end for the report. */
const measured = new Map<string, number>();

beforeAll(async () => {
  cpu = await createNorms({ backend: 'cpu' });
});
afterAll(() => {
  cpu?.destroy();
  const rows = [...measured.entries()].sort().map(([k, v]) => `  ${k.padEnd(42)} ${v.toExponential(2)}`);
  console.log(`float16: largest relative L2 per output kind\n${rows.join('\n')}`);
});

/** The suites below, registered once per float16 path at the end of the file. */
const suites: (() => void)[] = [];
function suite(name: string, fn: () => void): void {
  suites.push(() => describe(name, fn));
}

const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
/** Values as the given dtype stores them. */
const q = (a: Float32Array, dt: DType): Float32Array => (dt === 'float16' ? roundToHalf(a) : a);
const h64 = (data: Float32Array | Float64Array, shape: readonly number[]) => ({ data, shape: [...shape] });

interface Got {
  data: Float32Array;
  dtype: DType;
  shape: readonly number[];
}
type Outs = Record<string, Tensor | null | undefined>;

/**
 * Run `build` on the GPU and on the CPU backend (it creates its inputs through the Norms it is
 * given, so both see the same values), read every returned tensor, destroy everything.
 */
async function both(build: (n: Norms, made: Tensor[]) => Outs): Promise<{ g: Record<string, Got>; c: Record<string, Got> }> {
  const once = async (n: Norms): Promise<Record<string, Got>> => {
    const made: Tensor[] = [];
    const outs = build(n, made);
    const r: Record<string, Got> = {};
    try {
      for (const [k, t] of Object.entries(outs)) if (t) r[k] = { data: await n.read(t), dtype: t.dtype, shape: t.shape };
    } finally {
      for (const t of Object.values(outs)) t?.destroy();
      for (const t of made) t.destroy();
    }
    return r;
  };
  const g = await once(gpu);
  // Every op with float16 tensors ran on the path under test.
  const recs = await gpu.profile();
  const off = recs.filter((r) => r.float16 !== undefined && r.float16 !== path).map((r) => `${r.op}: ${r.float16}`);
  if (gpu.backend === 'webgpu' && (off.length || !recs.some((r) => r.float16 === path))) throw new Error(`expected every float16 op on the ${path} path, got ${recs.map((r) => `${r.op}: ${r.float16}`).join(', ')}`);
  return { g, c: await once(cpu) };
}

function mk(n: Norms, made: Tensor[], data: Float32Array, shape: readonly number[], dt: DType = 'float32'): Tensor {
  const t = n.tensor(data, shape, dt);
  made.push(t);
  return t;
}

function note(key: string, err: number): void {
  const k = `${path}: ${key}`;
  measured.set(k, Math.max(measured.get(k) ?? 0, err));
}

function failRows(got: ArrayLike<number>, ref: ArrayLike<number>): string {
  const rows: string[] = [];
  for (let i = 0; i < ref.length && rows.length < 8; i++) {
    const g = got[i]!, r = ref[i]!;
    if (Number.isNaN(g) !== Number.isNaN(r) || Math.abs(g - r) > 4e-3 * Math.max(1, Math.abs(r))) rows.push(`  [${i}] got ${g} expected ${r}`);
  }
  return rows.join('\n');
}

function within(name: string, key: string, got: ArrayLike<number>, ref: ArrayLike<number>, tol: number): string | null {
  const err = got.length === ref.length ? relativeL2(got, ref) : Infinity;
  note(key, err);
  return err <= tol ? null : `${name}: relative L2 ${err.toExponential(3)} > ${tol} (len ${got.length} vs ${ref.length})\n${failRows(got, ref)}`;
}

/**
 * Collects every mismatch of a test (so one broken output does not hide the others) and fails the
 * test at the end with all of them.
 */
class Checks {
  private readonly errors: string[] = [];

  /**
   * One output: dtype and shape as expected, GPU vs CPU backend, GPU vs float64 reference.
   * `kind` names the output in the error table (y, dx, dweight, mean, ...).
   */
  out(label: string, kind: string, g: Got | undefined, c: Got | undefined, f64: ArrayLike<number> | null, dtype: DType): void {
    if (!g || !c) {
      this.errors.push(`${label} ${kind}: missing output (gpu ${!!g}, cpu ${!!c})`);
      return;
    }
    if (g.dtype !== dtype || c.dtype !== dtype) this.errors.push(`${label} ${kind}: dtype gpu ${g.dtype}, cpu ${c.dtype}, expected ${dtype}`);
    if (g.shape.join() !== c.shape.join()) this.errors.push(`${label} ${kind}: shape gpu [${g.shape.join(', ')}], cpu [${c.shape.join(', ')}]`);
    const half = dtype === 'float16';
    const tag = half ? `${kind} (f16)` : `${kind} (f32)`;
    this.push(within(`${label} ${kind}: gpu vs cpu backend`, `${tag} vs cpu`, g.data, c.data, half ? TOL_HALF_VS_CPU : TOL_F32));
    if (f64) this.push(within(`${label} ${kind}: gpu vs float64`, `${tag} vs f64`, g.data, f64, half ? TOL_HALF_VS_F64 : TOL_F32));
  }

  push(e: string | null): void {
    if (e) this.errors.push(e);
  }

  done(): void {
    if (this.errors.length) throw new Error(`${this.errors.length} mismatch(es):\n${this.errors.join('\n')}`);
  }
}

interface AffineSpec {
  weight: DType | null;
  bias: DType | null;
}

// ---------------------------------------------------------------------------------------------
// layer norm and RMS norm

interface RowCase extends AffineSpec {
  shape: number[];
  ns: number[];
  mean?: number;
}

// Mean-offset cases use mean 100, sigma 1, not the 1e4 of the float32 tests: half has 11
// significant bits, so near 1e4 its spacing is 8 and N(1e4, 1) would round to a handful of
// values (a nearly constant, meaningless input), while past 65504 it overflows to inf. Near 100
// the spacing is 1/16, so sigma 1 still spans ~30 distinct halves, and the offset is 100 sigma:
// single-pass E[x²]−E[x]² in f32 loses about 1e4·2^-24 ≈ 6e-4 of the unit variance per rounding,
// more than the float32 bound on rstd (1e-4) allows.
const LAYER_CASES: RowCase[] = [
  { shape: [7, 63], ns: [63], weight: 'float16', bias: 'float16' },
  { shape: [3, 257], ns: [257], weight: 'float32', bias: 'float32' },
  { shape: [3, 1001], ns: [1001], weight: null, bias: null },
  { shape: [5, 3, 7, 9], ns: [7, 9], weight: 'float16', bias: null },
  { shape: [9, 64], ns: [64], weight: 'float32', bias: 'float16' }, // even rows: the row-fused path
  { shape: [5, 257], ns: [257], weight: 'float16', bias: 'float16', mean: 100 },
  // >= 2048 rows: row-fused backward summing dweight/dbias per block of rows.
  { shape: [2100, 12], ns: [12], weight: 'float16', bias: 'float16' },
  // Blocks of 4 rows sharing the weights (>= 64 rows of whole quads), a last block of 3 rows.
  { shape: [67, 64], ns: [64], weight: 'float16', bias: 'float32' },
];

const RMS_CASES: RowCase[] = [
  { shape: [7, 63], ns: [63], weight: 'float16', bias: null },
  { shape: [3, 1001], ns: [1001], weight: 'float32', bias: null },
  { shape: [3, 257], ns: [257], weight: null, bias: null },
  { shape: [9, 64], ns: [64], weight: 'float16', bias: null },
  { shape: [5, 257], ns: [257], weight: 'float32', bias: null, mean: 100 },
  { shape: [2, 1100, 8], ns: [8], weight: 'float16', bias: null },
];

function rowInputs(seed: number, c: RowCase) {
  const rng = makeRng(seed);
  const n = numel(c.shape);
  const K = numel(c.ns);
  return {
    x: rng.fill(n, c.mean ?? 0, 1),
    dy: rng.fill(n),
    w: c.weight ? rng.fill(K, 1, 0.5) : null,
    b: c.bias ? rng.fill(K, 0, 0.5) : null,
  };
}

const label = (op: string, c: { shape: number[]; mean?: number }, extra = ''): string =>
  `${op} [${c.shape.join(', ')}]${extra}${c.mean ? ` mean ${c.mean}` : ''}`;

suite('float16 layerNorm / rmsNorm, forward and backward', () => {
  LAYER_CASES.forEach((c, k) => {
    it(`${label('layerNorm', c)} weight ${c.weight} bias ${c.bias}`, async () => {
      const L = label('layerNorm', c);
      const ck = new Checks();
      const inp = rowInputs(1000 + k, c);
      const { g, c: r } = await both((n, made) => {
        const x = mk(n, made, inp.x, c.shape, 'float16');
        const dy = mk(n, made, inp.dy, c.shape, 'float16');
        const weight = inp.w ? mk(n, made, inp.w, c.ns, c.weight!) : null;
        const bias = inp.b ? mk(n, made, inp.b, c.ns, c.bias!) : null;
        const f = n.layerNorm(x, { normalizedShape: c.ns, weight, bias });
        const bw = n.layerNormBackward(dy, x, f.mean, f.rstd, { normalizedShape: c.ns, weight, bias });
        return { ...f, ...bw };
      });
      const xh = h64(roundToHalf(inp.x), c.shape);
      const w64 = inp.w ? h64(q(inp.w, c.weight!), c.ns) : null;
      const b64 = inp.b ? h64(q(inp.b, c.bias!), c.ns) : null;
      const f = __f64.layerNorm(xh, { normalizedShape: c.ns, weight: w64, bias: b64, eps: 1e-5 });
      const bw = __f64.layerNormBackward(h64(roundToHalf(inp.dy), c.shape), xh, f.mean, f.rstd, { normalizedShape: c.ns, weight: w64, bias: b64 });
      ck.out(L, 'y', g.y, r.y, f.y.data, 'float16');
      ck.out(L, 'mean', g.mean, r.mean, f.mean.data, 'float32');
      ck.out(L, 'rstd', g.rstd, r.rstd, f.rstd.data, 'float32');
      ck.out(L, 'dx', g.dx, r.dx, bw.dx.data, 'float16');
      if (c.weight) ck.out(L, 'dweight', g.dweight, r.dweight, bw.dweight!.data, c.weight);
      else ck.push(g.dweight ? 'layerNorm: dweight returned without weight' : null);
      if (c.bias) ck.out(L, 'dbias', g.dbias, r.dbias, bw.dbias!.data, c.bias);
      else ck.push(g.dbias ? 'layerNorm: dbias returned without bias' : null);
      ck.done();
    });
  });

  RMS_CASES.forEach((c, k) => {
    it(`${label('rmsNorm', c)} weight ${c.weight}`, async () => {
      const L = label('rmsNorm', c);
      const ck = new Checks();
      const inp = rowInputs(2000 + k, c);
      const { g, c: r } = await both((n, made) => {
        const x = mk(n, made, inp.x, c.shape, 'float16');
        const dy = mk(n, made, inp.dy, c.shape, 'float16');
        const weight = inp.w ? mk(n, made, inp.w, c.ns, c.weight!) : null;
        const f = n.rmsNorm(x, { normalizedShape: c.ns, weight });
        const bw = n.rmsNormBackward(dy, x, f.rstd, { normalizedShape: c.ns, weight });
        return { ...f, ...bw };
      });
      const xh = h64(roundToHalf(inp.x), c.shape);
      const w64 = inp.w ? h64(q(inp.w, c.weight!), c.ns) : null;
      // rmsNorm's default eps is float32's epsilon also for half input (as in PyTorch).
      const f = __f64.rmsNorm(xh, { normalizedShape: c.ns, weight: w64, eps: 1.1920928955078125e-7 });
      const bw = __f64.rmsNormBackward(h64(roundToHalf(inp.dy), c.shape), xh, f.rstd, { normalizedShape: c.ns, weight: w64 });
      ck.out(L, 'y', g.y, r.y, f.y.data, 'float16');
      ck.out(L, 'rstd', g.rstd, r.rstd, f.rstd.data, 'float32');
      ck.out(L, 'dx', g.dx, r.dx, bw.dx.data, 'float16');
      if (c.weight) ck.out(L, 'dweight', g.dweight, r.dweight, bw.dweight!.data, c.weight);
      ck.done();
    });
  });
});

// ---------------------------------------------------------------------------------------------
// batch norm (training with running stats, then eval with the updated running stats)

interface ChanCase extends AffineSpec {
  shape: number[];
  mean?: number;
}

const BATCH_CASES: ChanCase[] = [
  { shape: [5, 3, 7, 9], weight: 'float16', bias: 'float16' },
  { shape: [7, 5], weight: 'float32', bias: null },
  { shape: [3, 5, 7, 1, 3], weight: null, bias: 'float32' },
  { shape: [4, 3, 5, 7], weight: 'float16', bias: 'float32', mean: 100 },
];

function chanInputs(seed: number, c: ChanCase) {
  const rng = makeRng(seed);
  const n = numel(c.shape);
  const C = c.shape[1]!;
  return {
    x: rng.fill(n, c.mean ?? 0, 1),
    dy: rng.fill(n),
    dy2: rng.fill(n),
    w: c.weight ? rng.fill(C, 1, 0.5) : null,
    b: c.bias ? rng.fill(C, 0, 0.5) : null,
    rm: rng.fill(C, c.mean ?? 0, 0.5),
    rv: Float32Array.from(rng.fill(C), (v) => 0.5 + Math.abs(v)),
  };
}

/** The float64 reference for a batchNorm case: training step (updating running stats), then eval. */
function batchRef(c: ChanCase, inp: ReturnType<typeof chanInputs>) {
  const C = c.shape[1]!;
  const xh = h64(roundToHalf(inp.x), c.shape);
  const w64 = inp.w ? h64(q(inp.w, c.weight!), [C]) : null;
  const b64 = inp.b ? h64(q(inp.b, c.bias!), [C]) : null;
  const rm = h64(Float64Array.from(inp.rm), [C]);
  const rv = h64(Float64Array.from(inp.rv), [C]);
  const base = { weight: w64, bias: b64, runningMean: rm, runningVar: rv, eps: 1e-5 };
  const tr = __f64.batchNorm(xh, { ...base, training: true, momentum: 0.1, numBatchesTracked: 0 }); // updates rm, rv
  const tb = __f64.batchNormBackward(h64(roundToHalf(inp.dy), c.shape), xh, { ...base, training: true, saveMean: tr.saveMean, saveInvstd: tr.saveInvstd });
  // Eval uses the updated running stats as they are stored (float32).
  const ev32 = { ...base, runningMean: h64(Float32Array.from(rm.data), [C]), runningVar: h64(Float32Array.from(rv.data), [C]) };
  const ev = __f64.batchNorm(xh, { ...ev32, training: false, momentum: 0.1, numBatchesTracked: 0 });
  const eb = __f64.batchNormBackward(h64(roundToHalf(inp.dy2), c.shape), xh, { ...ev32, training: false, saveMean: null, saveInvstd: null });
  return { tr, tb, rm, rv, ev, eb };
}

suite('float16 batchNorm, training and eval, forward and backward', () => {
  BATCH_CASES.forEach((c, k) => {
    const C = c.shape[1]!;
    /** Inputs on one backend; running stats are float32 tensors (they are statistics). */
    const setup = (n: Norms, made: Tensor[], inp: ReturnType<typeof chanInputs>) => ({
      x: mk(n, made, inp.x, c.shape, 'float16'),
      weight: inp.w ? mk(n, made, inp.w, [C], c.weight!) : null,
      bias: inp.b ? mk(n, made, inp.b, [C], c.bias!) : null,
      runningMean: mk(n, made, inp.rm, [C]),
      runningVar: mk(n, made, inp.rv, [C]),
    });

    it(`${label('batchNorm', c)} training, weight ${c.weight} bias ${c.bias}: y, saveMean/saveInvstd, running stats, backward`, async () => {
      const L = `${label('batchNorm', c)} train`;
      const ck = new Checks();
      const inp = chanInputs(3000 + k, c);
      const { g, c: r } = await both((n, made) => {
        const { x, weight, bias, runningMean, runningVar } = setup(n, made, inp);
        const tr = n.batchNorm(x, { training: true, weight, bias, runningMean, runningVar });
        const tb = n.batchNormBackward(mk(n, made, inp.dy, c.shape, 'float16'), x, { training: true, weight, bias, saveMean: tr.saveMean, saveInvstd: tr.saveInvstd });
        return { ...tr, ...tb, runningMean, runningVar };
      });
      const ref = batchRef(c, inp);
      ck.out(L, 'y', g.y, r.y, ref.tr.y.data, 'float16');
      ck.out(L, 'saveMean', g.saveMean, r.saveMean, ref.tr.saveMean.data, 'float32');
      ck.out(L, 'saveInvstd', g.saveInvstd, r.saveInvstd, ref.tr.saveInvstd.data, 'float32');
      ck.out(L, 'runningMean', g.runningMean, r.runningMean, ref.rm.data, 'float32');
      ck.out(L, 'runningVar', g.runningVar, r.runningVar, ref.rv.data, 'float32');
      ck.out(L, 'dx', g.dx, r.dx, ref.tb.dx.data, 'float16');
      if (c.weight) ck.out(L, 'dweight', g.dweight, r.dweight, ref.tb.dweight!.data, c.weight);
      if (c.bias) ck.out(L, 'dbias', g.dbias, r.dbias, ref.tb.dbias!.data, c.bias);
      ck.done();
    });

    it(`${label('batchNorm', c)} eval with the updated running stats, weight ${c.weight} bias ${c.bias}: y, backward`, async () => {
      const L = `${label('batchNorm', c)} eval`;
      const ck = new Checks();
      const inp = chanInputs(3000 + k, c);
      const { g, c: r } = await both((n, made) => {
        const { x, weight, bias, runningMean, runningVar } = setup(n, made, inp);
        const tr = n.batchNorm(x, { training: true, weight, bias, runningMean, runningVar });
        made.push(tr.y, tr.saveMean, tr.saveInvstd);
        const ev = n.batchNorm(x, { training: false, weight, bias, runningMean, runningVar });
        const eb = n.batchNormBackward(mk(n, made, inp.dy2, c.shape, 'float16'), x, { training: false, weight, bias, runningMean, runningVar });
        made.push(ev.saveMean, ev.saveInvstd);
        return { y: ev.y, ...eb };
      });
      const ref = batchRef(c, inp);
      ck.out(L, 'y', g.y, r.y, ref.ev.y.data, 'float16');
      ck.out(L, 'dx', g.dx, r.dx, ref.eb.dx.data, 'float16');
      if (c.weight) ck.out(L, 'dweight', g.dweight, r.dweight, ref.eb.dweight!.data, c.weight);
      if (c.bias) ck.out(L, 'dbias', g.dbias, r.dbias, ref.eb.dbias!.data, c.bias);
      ck.done();
    });
  });
});

// ---------------------------------------------------------------------------------------------
// group norm and instance norm

interface GroupCase extends ChanCase {
  G: number | null; // null: instanceNorm
}

const GROUP_CASES: GroupCase[] = [
  { shape: [4, 6, 5, 5], G: 3, weight: 'float16', bias: 'float16' },
  { shape: [5, 3, 7, 9], G: 3, weight: 'float32', bias: 'float32' },
  { shape: [3, 6, 7, 9], G: 2, weight: null, bias: null },
  { shape: [2, 4, 257], G: 1, weight: 'float16', bias: null },
  { shape: [4, 6, 5, 5], G: 3, weight: 'float16', bias: 'float32', mean: 100 },
  { shape: [5, 3, 7, 9], G: null, weight: null, bias: null },
  { shape: [4, 6, 5, 5], G: null, weight: 'float16', bias: 'float16' },
  { shape: [3, 5, 63], G: null, weight: 'float32', bias: 'float16', mean: 100 },
];

suite('float16 groupNorm / instanceNorm, forward and backward', () => {
  GROUP_CASES.forEach((c, k) => {
    const op = c.G === null ? 'instanceNorm' : 'groupNorm';
    it(`${label(op, c, c.G === null ? '' : ` G=${c.G}`)} weight ${c.weight} bias ${c.bias}`, async () => {
      const L = label(op, c, c.G === null ? '' : ` G=${c.G}`);
      const ck = new Checks();
      const C = c.shape[1]!;
      const inp = chanInputs(4000 + k, c);
      const { g, c: r } = await both((n, made) => {
        const x = mk(n, made, inp.x, c.shape, 'float16');
        const dy = mk(n, made, inp.dy, c.shape, 'float16');
        const weight = inp.w ? mk(n, made, inp.w, [C], c.weight!) : null;
        const bias = inp.b ? mk(n, made, inp.b, [C], c.bias!) : null;
        if (c.G === null) {
          const f = n.instanceNorm(x, { weight, bias });
          return { ...f, ...n.instanceNormBackward(dy, x, f.mean, f.rstd, { weight, bias }) };
        }
        const f = n.groupNorm(x, { numGroups: c.G, weight, bias });
        return { ...f, ...n.groupNormBackward(dy, x, f.mean, f.rstd, { numGroups: c.G, weight, bias }) };
      });
      const xh = h64(roundToHalf(inp.x), c.shape);
      const w64 = inp.w ? h64(q(inp.w, c.weight!), [C]) : null;
      const b64 = inp.b ? h64(q(inp.b, c.bias!), [C]) : null;
      const G = c.G ?? C;
      const f = __f64.groupNorm(xh, { numGroups: G, weight: w64, bias: b64, eps: 1e-5 });
      const bw = __f64.groupNormBackward(h64(roundToHalf(inp.dy), c.shape), xh, f.mean, f.rstd, { numGroups: G, weight: w64, bias: b64 });
      ck.out(L, 'y', g.y, r.y, f.y.data, 'float16');
      ck.out(L, 'mean', g.mean, r.mean, f.mean.data, 'float32');
      ck.out(L, 'rstd', g.rstd, r.rstd, f.rstd.data, 'float32');
      ck.push(g.mean && g.mean.shape.join() !== [c.shape[0], G].join() ? `${L} mean shape [${g.mean.shape.join(', ')}]` : null);
      ck.out(L, 'dx', g.dx, r.dx, bw.dx.data, 'float16');
      if (c.weight) ck.out(L, 'dweight', g.dweight, r.dweight, bw.dweight!.data, c.weight);
      if (c.bias) ck.out(L, 'dbias', g.dbias, r.dbias, bw.dbias!.data, c.bias);
      ck.done();
    });
  });
});

// ---------------------------------------------------------------------------------------------
// weight norm

const WN_CASES: { shape: number[]; dim: number | null; g: DType }[] = [
  { shape: [7, 63], dim: 0, g: 'float16' },
  { shape: [3, 5, 7], dim: 1, g: 'float32' },
  { shape: [257, 3], dim: -1, g: 'float16' },
  { shape: [3, 257], dim: null, g: 'float32' },
  { shape: [5, 3, 3, 3], dim: 0, g: 'float32' },
];

suite('float16 weightNorm, forward and backward', () => {
  WN_CASES.forEach((c, k) => {
    it(`weightNorm v [${c.shape.join(', ')}] dim ${String(c.dim)} g ${c.g}`, async () => {
      const L = `weightNorm [${c.shape.join(', ')}] dim ${String(c.dim)}`;
      const ck = new Checks();
      const d = c.dim === null ? null : c.dim < 0 ? c.dim + c.shape.length : c.dim;
      const gShape = c.shape.map((s, i) => (i === d ? s : 1));
      const rng = makeRng(5000 + k);
      const vIn = rng.fill(numel(c.shape));
      const dwIn = rng.fill(numel(c.shape));
      const gIn = Float32Array.from({ length: numel(gShape) }, () => 0.25 + 2 * rng.uniform());
      const { g, c: r } = await both((n, made) => {
        const v = mk(n, made, vIn, c.shape, 'float16');
        const dw = mk(n, made, dwIn, c.shape, 'float16');
        const gt = mk(n, made, gIn, gShape, c.g);
        const f = n.weightNorm(v, gt, { dim: c.dim });
        return { ...f, ...n.weightNormBackward(dw, v, gt, f.norms, { dim: c.dim }) };
      });
      const vh = h64(roundToHalf(vIn), c.shape);
      const g64 = h64(q(gIn, c.g), gShape);
      const f = __f64.weightNorm(vh, g64, { dim: d });
      const bw = __f64.weightNormBackward(h64(roundToHalf(dwIn), c.shape), vh, g64, f.norms, { dim: d });
      ck.out(L, 'w', g.w, r.w, f.w.data, 'float16');
      ck.out(L, 'norms', g.norms, r.norms, f.norms.data, 'float32');
      ck.out(L, 'dv', g.dv, r.dv, bw.dv.data, 'float16');
      ck.out(L, 'dg', g.dg, r.dg, bw.dg.data, c.g);
      ck.done();
    });
  });
});

// ---------------------------------------------------------------------------------------------
// neighbours: odd element counts, rows and groups that start mid-word

/** One half ulp at |r| (the spacing of halves in r's binade; subnormal spacing below 2^-14). */
function halfUlp(r: number): number {
  const a = Math.abs(r);
  if (a < 2 ** -14) return 2 ** -24;
  return 2 ** (Math.floor(Math.log2(a)) - 10);
}

/** Every element within one half ulp of the CPU backend's half result (which is correctly rounded). */
function eachWithinUlp(name: string, got: Float32Array, ref: Float32Array): string | null {
  if (got.length !== ref.length) return `${name}: length ${got.length} vs ${ref.length}`;
  const bad: string[] = [];
  for (let i = 0; i < ref.length; i++) {
    const g = got[i]!, r = ref[i]!;
    // got must itself be a half (a clobbered word half would generally still be one, so also compare)
    if (!Number.isFinite(g) || f16BitsToF32(f32ToF16Bits(g)) !== g || Math.abs(g - r) > halfUlp(r) * 1.0001) bad.push(`  [${i}] got ${g} expected ${r}`);
  }
  return bad.length ? `${name}: ${bad.length} of ${ref.length} elements off by more than one half ulp\n${bad.slice(0, 12).join('\n')}` : null;
}

suite('float16 neighbours: odd counts, no clobbered half words', () => {
  it('layerNorm [3, 5] float16: every element, the last one and its neighbours included (forward and backward)', async () => {
    const rng = makeRng(6001);
    const x = rng.fill(15), dy = rng.fill(15), w = rng.fill(5, 1, 0.5), b = rng.fill(5, 0, 0.5);
    const { g, c } = await both((n, made) => {
      const xt = mk(n, made, x, [3, 5], 'float16');
      const weight = mk(n, made, w, [5], 'float16');
      const bias = mk(n, made, b, [5], 'float16');
      const f = n.layerNorm(xt, { normalizedShape: [5], weight, bias });
      const bw = n.layerNormBackward(mk(n, made, dy, [3, 5], 'float16'), xt, f.mean, f.rstd, { normalizedShape: [5], weight, bias });
      return { y: f.y, dx: bw.dx, dweight: bw.dweight, dbias: bw.dbias };
    });
    const ck = new Checks();
    // The last element (the low half of the last word, whose high half is padding) and its
    // neighbours, spelled out first; then every element of every output.
    for (const i of [12, 13, 14]) {
      const gy = g.y!.data[i]!, cy = c.y!.data[i]!;
      ck.push(Math.abs(gy - cy) <= halfUlp(cy) ? null : `layerNorm [3, 5] y[${i}]: got ${gy}, expected ${cy}`);
    }
    for (const k of ['y', 'dx', 'dweight', 'dbias']) ck.push(eachWithinUlp(`layerNorm [3, 5] ${k}`, g[k]!.data, c[k]!.data));
    ck.done();
  });

  it('groupNorm [1, 3, 3] float16 G=3 and G=1: every element (forward and backward)', async () => {
    const rng = makeRng(6002);
    const x = rng.fill(9), dy = rng.fill(9), w = rng.fill(3, 1, 0.5), b = rng.fill(3, 0, 0.5);
    const ck = new Checks();
    for (const G of [3, 1]) {
      const { g, c } = await both((n, made) => {
        const xt = mk(n, made, x, [1, 3, 3], 'float16');
        const weight = mk(n, made, w, [3], 'float16');
        const bias = mk(n, made, b, [3], 'float16');
        const f = n.groupNorm(xt, { numGroups: G, weight, bias });
        const bw = n.groupNormBackward(mk(n, made, dy, [1, 3, 3], 'float16'), xt, f.mean, f.rstd, { numGroups: G, weight, bias });
        return { y: f.y, dx: bw.dx, dweight: bw.dweight, dbias: bw.dbias };
      });
      for (const k of ['y', 'dx', 'dweight', 'dbias']) ck.push(eachWithinUlp(`groupNorm [1, 3, 3] G=${G} ${k}`, g[k]!.data, c[k]!.data));
    }
    ck.done();
  });

  it('odd single rows and single elements per word boundary: rmsNorm [1, 7], instanceNorm [1, 3, 5], batchNorm [3, 1, 3], weightNorm [3, 3]', async () => {
    const rng = makeRng(6003);
    const x7 = rng.fill(7), x15 = rng.fill(15), x9 = rng.fill(9), g3 = Float32Array.from([0.5, 1.5, 2.5]);
    const { g, c } = await both((n, made) => {
      const rms = n.rmsNorm(mk(n, made, x7, [1, 7], 'float16'), { normalizedShape: [7] });
      const inst = n.instanceNorm(mk(n, made, x15, [1, 3, 5], 'float16'));
      const bn = n.batchNorm(mk(n, made, x9, [3, 1, 3], 'float16'), { training: true });
      const wn = n.weightNorm(mk(n, made, x9, [3, 3], 'float16'), mk(n, made, g3, [3, 1], 'float16'), { dim: 0 });
      made.push(rms.rstd, inst.mean, inst.rstd, bn.saveMean, bn.saveInvstd, wn.norms);
      return { rms: rms.y, inst: inst.y, bn: bn.y, wn: wn.w };
    });
    const ck = new Checks();
    for (const k of ['rms', 'inst', 'bn', 'wn']) ck.push(eachWithinUlp(`${k} neighbours`, g[k]!.data, c[k]!.data));
    ck.done();
  });
});

for (const p of PATHS) {
  describe(`float16 ${p}`, () => {
    beforeAll(async () => {
      path = p;
      gpu = await gpuNorms({ float16: p, profile: true });
      if (gpu.backend === 'webgpu') expect(gpu.float16).toBe(p);
    });
    afterAll(() => gpu?.destroy());
    for (const s of suites) s();
  });
}
