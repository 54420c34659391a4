/**
 * Seeded property test: random ops, shapes, options and dtypes, forward and backward, on the
 * webgpu backend (default / row-fused / general kernels, and storage bindings capped at 16 KiB
 * so that tensors are processed in bound ranges; NaN-poisoned outputs) against the
 * float64 CPU reference. Every output (and batchNorm's running stats, updated in place) must be
 * within relative L2 1e-4 (float32 outputs) or 2e-3 (float16 outputs).
 *
 *   WEBGPU_NORM_FUZZ=<n>    number of cases (default 200)
 *   WEBGPU_NORM_SEED=<s>    base seed (default 20240611); case i uses a seed derived from (s, i)
 *   WEBGPU_NORM_CASE=<i>    run only case i (replay a failure: the message prints seed and index)
 *   WEBGPU_NORM_WINDOW_BYTES=<b>  binding cap of the 'windowed' variant (default 16384)
 *
 * Shapes: ranks 1–5, dims 1–300 (log-uniform), at most ~200k elements; about one case in twelve
 * has one huge dim (20k–300k) with small others (at most ~600k elements). About one case in four
 * gets hard inputs (see FuzzCase.hard): outliers, magnitudes whose squares leave float32, ±Inf,
 * a zero-size batch dim; data means 0 to 1e4 cover large offsets.
 *
 * Backward is skipped (forward still runs) when the reduction is so short that the exact
 * gradient cancels to ~0 and no float32 implementation can meet a relative bound: a
 * mean-subtracting norm over 2 elements (dx ≡ 0 up to eps terms), RMS-norm over 1 element, a
 * weight-norm slice of 1 element.
 *
 * Reduction outputs whose exact value can cancel to ~0 (the mean of zero-mean data, dbias = Σ dy,
 * dweight = Σ dy·x̂, weightNorm's dg; also runningMean, which carries the mean) are measured as
 * ‖got − ref‖ / max(‖ref‖, scale·√len), scale being the value's natural size: the data's std for
 * means (an error of 1e-4·std in the mean is an error of 1e-4 in y), √(terms summed) for dy sums
 * (dy ~ N(0, 1), x̂ of unit scale), 1 for dg. Everything else is plain relative L2.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNorms, relativeL2, Tensor, type DType, type Norms } from '../src/index.ts';
import { gpuNorms, sameDevice, TEST_ADAPTER_CLASS } from './util/gpu.ts';
import { makeRng, type Rng } from './util/rng.ts';
import { TOLERANCE } from './catalog.js';

const COUNT = Number(process.env.WEBGPU_NORM_FUZZ ?? 200);
const SEED = Number(process.env.WEBGPU_NORM_SEED ?? 20240611);
const ONLY = process.env.WEBGPU_NORM_CASE !== undefined ? Number(process.env.WEBGPU_NORM_CASE) : null;
const CAP = 200_000;
/** Binding cap of the 'windowed' variant (tensors past it are processed in bound ranges). */
const WINDOW_BYTES = Number(process.env.WEBGPU_NORM_WINDOW_BYTES ?? 16384);
const HUGE_CAP = 600_000;
const TOL: Record<DType, number> = TOLERANCE;

type Op = 'layerNorm' | 'rmsNorm' | 'batchNorm' | 'groupNorm' | 'instanceNorm' | 'weightNorm';
type Variant = 'auto' | 'fused' | 'general' | 'windowed';

interface FuzzCase {
  index: number;
  op: Op;
  shape: number[];
  dtype: DType;
  variant: Variant;
  backward: boolean;
  /** x ~ N(mean, std²). */
  mean: number;
  std: number;
  weight: boolean;
  bias: boolean;
  eps?: number;
  /** layer/rms: normalizedShape = the last k dims. */
  k?: number;
  numGroups?: number;
  training?: boolean;
  running?: boolean;
  momentum?: number | null;
  numBatchesTracked?: number;
  dim?: number | null;
  /** weightNorm: g as 1-D [D] (or [] for dim null) instead of v's rank with ones. */
  gFlat?: boolean;
  dataSeed: number;
  /**
   * Hard inputs (about one case in four; drawn from their own generator so the other fields
   * stay what the seed always gave): outliers at 1e3–1e4 std, x scaled by 1e18–1e30 (squares
   * past float32) or 1e-20–1e-30 with eps 0 (squares that underflow), one ±Inf, or a zero-size
   * leading dim.
   */
  hard?: Hard;
  /** hard 'huge' / 'tiny' / 'extreme': the factor x is scaled by. */
  scale?: number;
  /**
   * batch/group/instance norm: x is [N, *spatial, C] (`channelsLast`); `shape` is then that
   * layout's shape. Drawn from its own generator (the other fields stay what the seed gave).
   */
  channelsLast?: boolean;
}
type Hard = 'outliers' | 'huge' | 'tiny' | 'extreme' | 'inf' | 'empty';

// ---- generation ----

const prod = (a: readonly number[]): number => a.reduce((p, d) => p * d, 1);
const pick = <T,>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r.uniform() * xs.length)]!;
const int = (r: Rng, lo: number, hi: number): number => lo + Math.floor(r.uniform() * (hi - lo + 1));
const logInt = (r: Rng, lo: number, hi: number): number => Math.min(hi, Math.floor(Math.exp(Math.log(lo) + r.uniform() * (Math.log(hi + 1) - Math.log(lo)))));

function shrink(d: number[], cap: number, keep = -1): void {
  while (prod(d) > cap) {
    let i = -1;
    for (let j = 0; j < d.length; j++) if (j !== keep && d[j]! > 1 && (i < 0 || d[j]! > d[i]!)) i = j;
    if (i < 0) break;
    d[i] = Math.max(1, Math.floor(d[i]! / 2));
  }
}

function genShape(r: Rng, minRank: number, maxRank: number): { shape: number[]; huge: boolean } {
  const rank = int(r, minRank, maxRank);
  if (r.uniform() < 1 / 12) {
    const d = Array.from({ length: rank }, () => int(r, 1, 3));
    const p = int(r, 0, rank - 1);
    d[p] = logInt(r, 20_000, 300_000);
    shrink(d, HUGE_CAP, p);
    return { shape: d, huge: true };
  }
  const d = Array.from({ length: rank }, () => logInt(r, 1, 300));
  shrink(d, CAP);
  return { shape: d, huge: false };
}

const divisors = (c: number): number[] => Array.from({ length: c }, (_, i) => i + 1).filter((g) => c % g === 0);

function genCase(index: number): FuzzCase {
  const r = makeRng((SEED ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  const op = pick<Op>(r, ['layerNorm', 'layerNorm', 'rmsNorm', 'rmsNorm', 'batchNorm', 'batchNorm', 'groupNorm', 'groupNorm', 'instanceNorm', 'weightNorm', 'weightNorm']);
  const dtype: DType = r.uniform() < 0.2 ? 'float16' : 'float32';
  const variant = pick<Variant>(r, ['auto', 'auto', 'auto', 'fused', 'general', 'windowed']);
  const f16 = dtype === 'float16';
  const u = r.uniform();
  const mean = u < 0.4 ? 0 : u < 0.7 ? 0.5 : u < 0.85 ? -3 : u < 0.95 || f16 ? 100 : 1e4;
  const std = mean === 1e4 ? 1 : pick(r, [1, 2, 0.5]);
  const eps = pick(r, [undefined, undefined, 1e-5, 1e-3, 1e-6, 0.1]);
  const c: FuzzCase = { index, op, shape: [], dtype, variant, backward: r.uniform() < 0.85, mean, std, weight: r.uniform() < 0.7, bias: r.uniform() < 0.6, dataSeed: int(r, 1, 2 ** 30) };
  switch (op) {
    case 'layerNorm':
    case 'rmsNorm': {
      const { shape } = genShape(r, 1, 5);
      c.shape = shape;
      c.k = int(r, 1, shape.length);
      c.eps = eps;
      if (op === 'rmsNorm') c.bias = false;
      const K = prod(shape.slice(shape.length - c.k));
      if (K < (op === 'rmsNorm' ? 2 : 3)) c.backward = false;
      break;
    }
    case 'batchNorm': {
      const { shape } = genShape(r, 2, 5);
      c.shape = shape;
      c.training = r.uniform() < 0.7;
      c.running = c.training ? r.uniform() < 0.6 : true;
      c.eps = eps;
      const m = pick<number | null | undefined>(r, [undefined, 0.1, 0.01, 0.5, 1, null]);
      if (m !== undefined) c.momentum = m;
      if (m === null) c.numBatchesTracked = int(r, 0, 10);
      const M = () => c.shape[0]! * prod(c.shape.slice(2));
      if (c.training && M() <= 1) c.shape[0] = 2;
      if (c.training && M() < 3) c.backward = false;
      break;
    }
    case 'groupNorm': {
      const { shape } = genShape(r, 2, 5);
      c.shape = shape;
      c.numGroups = pick(r, divisors(shape[1]!));
      // One value per group in the whole batch is an error (as PyTorch's group_norm).
      if (shape[0]! * (shape[1]! / c.numGroups) * prod(shape.slice(2)) === 1) shape[0] = 2;
      c.eps = eps;
      if ((shape[1]! / c.numGroups) * prod(shape.slice(2)) < 3) c.backward = false;
      break;
    }
    case 'instanceNorm': {
      const { shape, huge } = genShape(r, 3, 5);
      if (prod(shape.slice(2)) === 1) shape[shape.length - 1] = int(r, 2, 9);
      shrink(shape, huge ? HUGE_CAP : CAP, shape.length - 1);
      c.shape = shape;
      c.eps = eps;
      if (prod(shape.slice(2)) < 3) c.backward = false;
      break;
    }
    case 'weightNorm': {
      const { shape } = genShape(r, 1, 5);
      c.shape = shape;
      c.dim = r.uniform() < 0.2 ? null : int(r, -shape.length, shape.length - 1);
      c.gFlat = r.uniform() < 0.3;
      c.weight = c.bias = false;
      const D = c.dim === null ? 1 : shape[c.dim < 0 ? c.dim + shape.length : c.dim]!;
      if (prod(shape) / D < 2) c.backward = false;
      break;
    }
  }
  drawHard(c);
  drawLayout(c);
  return c;
}

/** Channels last for about two channel-op cases in five: the drawn [N, C, *spatial] shape becomes [N, *spatial, C]. */
function drawLayout(c: FuzzCase): void {
  if (c.op !== 'batchNorm' && c.op !== 'groupNorm' && c.op !== 'instanceNorm') return;
  const h = makeRng((SEED ^ Math.imul(c.index + 1, 0x27d4eb2f) ^ 0x165667b1) >>> 0);
  if (h.uniform() >= 0.4) return;
  c.channelsLast = true;
  c.shape = [c.shape[0]!, ...c.shape.slice(2), c.shape[1]!];
}

/** Channels and spatial size of a channel op's x (either layout). */
const chanGeom = (c: FuzzCase): { C: number; S: number } =>
  c.channelsLast ? { C: c.shape[c.shape.length - 1]!, S: prod(c.shape.slice(1, -1)) } : { C: c.shape[1]!, S: prod(c.shape.slice(2)) };

function drawHard(c: FuzzCase): void {
  const h = makeRng((SEED ^ Math.imul(c.index + 1, 0x85ebca6b) ^ 0x5bd1e995) >>> 0);
  if (h.uniform() >= 0.25) return;
  const f16 = c.dtype === 'float16';
  // float16 holds neither huge nor tiny magnitudes.
  const kinds: Hard[] = f16 ? ['outliers', 'inf', 'empty'] : ['outliers', 'outliers', 'huge', 'tiny', 'extreme', 'inf', 'empty'];
  c.hard = pick(h, kinds);
  if (c.hard === 'huge') c.scale = pick(h, [1e18, 1e25, 1e30]);
  // Data up to float32's largest values (clamped to ±3.3e38) and one element at the opposite
  // extreme: spreads past 2^126 (rstd subnormal) and deviations x − mean past float32.
  // (Not for batch-norm eval: its running statistics (mean 0, variance 1 here) do not describe such
  // data, so x̂ itself passes float32, an output out of range on every backend.)
  if (c.hard === 'extreme' && c.op === 'batchNorm' && !c.training) c.hard = 'huge';
  if (c.hard === 'huge') c.scale ??= pick(h, [1e18, 1e25, 1e30]);
  if (c.hard === 'extreme') c.scale = 3.3e38 / (Math.abs(c.mean) + 3 * c.std);
  if (c.hard === 'tiny') {
    c.scale = pick(h, [1e-20, 1e-25, 1e-30]);
    if (c.op !== 'weightNorm') c.eps = 0;
  }
  if (c.hard === 'empty') {
    // A zero-size leading (batch) dim; layer/RMS norm over all dims then reduces zero elements.
    c.shape = [0, ...c.shape.slice(1)];
    if (c.op === 'instanceNorm' && prod(c.shape.slice(2)) < 2) c.shape[c.shape.length - 1] = 2;
  }
}

/** The hard input of case c applied to x (outliers and Inf at seeded positions). */
function hardData(c: FuzzCase, x: Host): Host {
  if (!c.hard || c.hard === 'empty' || x.data.length === 0) return x;
  const d = Float32Array.from(x.data);
  const h = makeRng(c.dataSeed ^ 0x27d4eb2f);
  const at = () => Math.floor(h.uniform() * d.length);
  if (c.scale !== undefined) for (let i = 0; i < d.length; i++) d[i] = Math.max(-3.3e38, Math.min(3.3e38, d[i]! * c.scale));
  if (c.hard === 'extreme') d[at()] = c.mean > 0 ? -3.3e38 : 3.3e38;
  if (c.hard === 'outliers') {
    const k = 1 + Math.floor(h.uniform() * 4);
    for (let i = 0; i < k; i++) d[at()] = c.mean + (h.uniform() < 0.5 ? -1 : 1) * c.std * pick(h, [1e3, 1e4]);
  }
  if (c.hard === 'inf') d[at()] = h.uniform() < 0.5 ? Infinity : -Infinity;
  return { ...x, data: d };
}

const describeCase = (c: FuzzCase): string => {
  const o: string[] = [`#${c.index} ${c.op}${c.backward ? '+bwd' : ''} [${c.shape.join(', ')}] ${c.dtype} ${c.variant}`];
  if (c.k !== undefined) o.push(`ns [${c.shape.slice(c.shape.length - c.k).join(', ')}]`);
  if (c.numGroups !== undefined) o.push(`G ${c.numGroups}`);
  if (c.training !== undefined) o.push(c.training ? 'training' : 'eval');
  if (c.running) o.push('running');
  if (c.dim !== undefined) o.push(`dim ${c.dim}${c.gFlat ? ' flat g' : ''}`);
  if (c.weight) o.push('+w');
  if (c.bias) o.push('+b');
  if (c.hard) o.push(`hard: ${c.hard}${c.scale !== undefined ? ` ×${c.scale}` : ''}`);
  if (c.channelsLast) o.push('channels last');
  return o.join(' ');
};

// ---- running one case on both backends ----

interface Host {
  data: Float32Array;
  shape: number[];
  dtype: DType;
}
type Ins = Record<string, Host | null>;
type Ts = Record<string, Tensor | null>;

let cpu: Norms;
const gpus = {} as Record<Variant, Norms>;
beforeAll(async () => {
  cpu = await createNorms({ backend: 'cpu' });
  gpus.auto = await gpuNorms();
  const adapterClass = TEST_ADAPTER_CLASS;
  for (const v of ['fused', 'general'] as const) gpus[v] = await sameDevice(gpus.auto, { poisonOutputs: true, variant: v, adapterClass });
  // Storage bindings capped at WINDOW_BYTES: most cases' tensors are processed in bound ranges.
  gpus.windowed = await sameDevice(gpus.auto, { poisonOutputs: true, maxBindingBytes: WINDOW_BYTES, adapterClass });
});
afterAll(() => {
  gpus.fused?.destroy();
  gpus.general?.destroy();
  gpus.windowed?.destroy();
  gpus.auto?.destroy();
  cpu?.destroy();
});

const upload = (n: Norms, ins: Ins): Ts => Object.fromEntries(Object.entries(ins).map(([k, h]) => [k, h ? n.tensor(h.data, h.shape, h.dtype) : null]));
const free = (o: object): void => {
  for (const v of Object.values(o)) if (v instanceof Tensor) v.destroy();
};

/**
 * One call on both backends; returns the reference's host outputs (and mutated inputs) and the
 * list of mismatches (every output checked).
 */
async function both(
  stage: string,
  gpu: Norms,
  ins: Ins,
  call: (n: Norms, t: Ts) => object,
  mutated: string[] = [],
  floors: Record<string, number> = {},
): Promise<{ ref: Record<string, Float32Array>; failures: string[] }> {
  const failures: string[] = [];
  const ref: Record<string, Float32Array> = {};
  const live = gpu.stats().liveBuffers;
  const cin = upload(cpu, ins);
  const cout = call(cpu, cin);
  const gin = upload(gpu, ins);
  let gout: object = {};
  try {
    gout = call(gpu, gin);
    const ck = Object.keys(cout).sort(), gk = Object.keys(gout).sort();
    if (ck.join() !== gk.join()) failures.push(`${stage}: outputs {${gk}} vs reference {${ck}}`);
    const pairs: [string, Tensor | null, Tensor | null][] = ck.map((k) => [k, (cout as Ts)[k] ?? null, (gout as Ts)[k] ?? null]);
    for (const k of mutated) pairs.push([`${k} (updated in place)`, cin[k]!, gin[k]!]);
    for (const [k, c, g] of pairs) {
      if ((c === null) !== (g === null)) {
        failures.push(`${stage}: ${k} is ${g ? 'a tensor' : 'null'} on the gpu, ${c ? 'a tensor' : 'null'} on the cpu`);
        continue;
      }
      if (!c || !g) continue;
      if (c.shape.join() !== g.shape.join() || c.dtype !== g.dtype) {
        failures.push(`${stage}: ${k} is [${g.shape}] ${g.dtype} on the gpu, [${c.shape}] ${c.dtype} on the cpu`);
        continue;
      }
      const want = await cpu.read(c);
      ref[k.split(' ')[0]!] = want;
      let got: Float32Array;
      try {
        got = await gpu.read(g);
      } catch (e) {
        failures.push(`${stage}: read of ${k} failed: ${(e as Error).message.split('\n')[0]}`);
        continue;
      }
      const name = k.split(' ')[0]!;
      const err = errorOf(got, want, floors[name] ?? 0);
      const tol = TOL[c.dtype];
      if (!(err <= tol)) {
        let worst = 0;
        for (let i = 1; i < want.length; i++) if (!(Math.abs(got[i]! - want[i]!) <= Math.abs(got[worst]! - want[worst]!))) worst = i;
        const how = floors[name] ? `error ${err.toExponential(3)} (relative L2 ${relativeL2(got, want).toExponential(3)}, floor scale ${floors[name]!.toPrecision(3)})` : `relative L2 ${err.toExponential(3)}`;
        failures.push(`${stage}: ${k} [${c.shape}] ${how} > ${tol}; worst [${worst}] gpu ${got[worst]} vs cpu ${want[worst]}`);
      }
    }
  } finally {
    free(gout);
    free(gin);
  }
  if (gpu.stats().liveBuffers !== live) failures.push(`${stage}: ${gpu.stats().liveBuffers - live} GPU buffer(s) left behind`);
  return { ref, failures };
}

/** ‖got − ref‖ / max(‖ref‖, scale·√len); NaN or a non-finite mismatch is Infinity (relativeL2's rules). */
function errorOf(gotRaw: Float32Array, wantRaw: Float32Array, scale: number): number {
  // WGSL lets GPUs flush float32 subnormals (|v| < 2^-126) to zero: compare them as zeros.
  const flush = (a: Float32Array) => a.map((v) => (Math.abs(v) < 2 ** -126 ? 0 : v));
  const got = flush(gotRaw);
  const want = flush(wantRaw);
  const rel = relativeL2(got, want);
  if (!scale || rel === 0 || !Number.isFinite(rel)) return rel;
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) {
    // (Non-finite values match exactly here: relativeL2 is finite.)
    if (!Number.isFinite(want[i]!)) continue;
    num += (got[i]! - want[i]!) ** 2;
    den += want[i]! ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), scale * Math.sqrt(want.length));
}

function data(seed: number, shape: number[], dtype: DType, mean: number, std: number): Host {
  return { data: makeRng(seed).fill(prod(shape), mean, std), shape, dtype };
}
function positive(seed: number, shape: number[], lo: number, hi: number): Host {
  const r = makeRng(seed);
  const d = new Float32Array(prod(shape));
  for (let i = 0; i < d.length; i++) d[i] = lo + (hi - lo) * r.uniform();
  return { data: d, shape, dtype: 'float32' };
}

async function runCase(c: FuzzCase): Promise<string[]> {
  const gpu = gpus[c.variant];
  const dt = c.dtype;
  const s = c.dataSeed;
  const x = hardData(c, data(s, c.shape, dt, c.mean, c.std));
  // The data's scale, for the floors of outputs that can cancel to ~0.
  const sd = c.std * (c.scale ?? 1);
  const dy = data(s + 1, c.shape, dt, 0, 1);
  const eps = c.eps !== undefined ? { eps: c.eps } : {};
  const f32 = (d: Float32Array, shape: number[]): Host => ({ data: d, shape, dtype: 'float32' });
  const out: string[] = [];
  switch (c.op) {
    case 'layerNorm':
    case 'rmsNorm': {
      const rms = c.op === 'rmsNorm';
      const ns = c.shape.slice(c.shape.length - c.k!);
      const lead = c.shape.slice(0, c.shape.length - c.k!);
      const w = c.weight ? data(s + 2, ns, dt, 1, 0.5) : null;
      const b = c.bias ? data(s + 3, ns, dt, 0, 0.5) : null;
      const rows = Math.sqrt(prod(lead));
      const F = await both(
        'forward',
        gpu,
        { x, w, b },
        (n, t) => (rms ? n.rmsNorm(t.x!, { normalizedShape: ns, weight: t.w, ...eps }) : n.layerNorm(t.x!, { normalizedShape: ns, weight: t.w, bias: t.b, ...eps })),
        [],
        { mean: sd },
      );
      out.push(...F.failures);
      if (c.backward && F.ref.rstd) {
        const rstd = f32(F.ref.rstd, lead);
        const B = rms
          ? await both('backward', gpu, { dy, x, rstd, w }, (n, t) => n.rmsNormBackward(t.dy!, t.x!, t.rstd!, { normalizedShape: ns, weight: t.w }), [], { dweight: rows })
          : await both(
              'backward',
              gpu,
              { dy, x, mean: f32(F.ref.mean!, lead), rstd, w, b },
              (n, t) => n.layerNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, { normalizedShape: ns, weight: t.w, bias: t.b }),
              [],
              { dweight: rows, dbias: rows },
            );
        out.push(...B.failures);
      }
      break;
    }
    case 'batchNorm': {
      const { C, S } = chanGeom(c);
      const w = c.weight ? data(s + 2, [C], dt, 1, 0.5) : null;
      const b = c.bias ? data(s + 3, [C], dt, 0, 0.5) : null;
      const rm = c.running ? data(s + 4, [C], 'float32', c.mean, 0.5) : null;
      const rv = c.running ? positive(s + 5, [C], 0.5, 2 * c.std * c.std) : null;
      const layout = c.channelsLast ? { channelsLast: true } : {};
      const opts = {
        ...eps,
        ...(c.channelsLast ? { channelsLast: true } : {}),
        ...(c.momentum !== undefined ? { momentum: c.momentum } : {}),
        ...(c.numBatchesTracked !== undefined ? { numBatchesTracked: c.numBatchesTracked } : {}),
      };
      const F = await both(
        'forward',
        gpu,
        { x, w, b, rm, rv },
        (n, t) => n.batchNorm(t.x!, { training: c.training!, weight: t.w, bias: t.b, runningMean: t.rm, runningVar: t.rv, ...opts }),
        c.training && c.running ? ['rm', 'rv'] : [],
        { saveMean: sd, rm: sd },
      );
      out.push(...F.failures);
      if (c.backward) {
        const stats: Ins = c.training ? { sm: f32(F.ref.saveMean!, [C]), si: f32(F.ref.saveInvstd!, [C]) } : { rm, rv };
        const terms = Math.sqrt(c.shape[0]! * S);
        const B = await both(
          'backward',
          gpu,
          { dy, x, w, b, ...stats },
          (n, t) =>
            n.batchNormBackward(t.dy!, t.x!, {
              training: c.training!, weight: t.w, bias: t.b, ...eps, ...layout,
              ...(c.training ? { saveMean: t.sm, saveInvstd: t.si } : { runningMean: t.rm, runningVar: t.rv }),
            }),
          [],
          { dweight: terms, dbias: terms },
        );
        out.push(...B.failures);
      }
      break;
    }
    case 'groupNorm':
    case 'instanceNorm': {
      const N = c.shape[0]!;
      const { C, S } = chanGeom(c);
      const G = c.op === 'groupNorm' ? c.numGroups! : C;
      const layout = c.channelsLast ? { channelsLast: true } : {};
      const w = c.weight ? data(s + 2, [C], dt, 1, 0.5) : null;
      const b = c.bias ? data(s + 3, [C], dt, 0, 0.5) : null;
      const F = await both(
        'forward',
        gpu,
        { x, w, b },
        (n, t) => (c.op === 'groupNorm' ? n.groupNorm(t.x!, { numGroups: G, weight: t.w, bias: t.b, ...eps, ...layout }) : n.instanceNorm(t.x!, { weight: t.w, bias: t.b, ...eps, ...layout })),
        [],
        { mean: sd },
      );
      out.push(...F.failures);
      if (c.backward && F.ref.mean) {
        const ins: Ins = { dy, x, mean: f32(F.ref.mean, [N, G]), rstd: f32(F.ref.rstd!, [N, G]), w, b };
        const terms = Math.sqrt(N * S);
        const B = await both(
          'backward',
          gpu,
          ins,
          (n, t) =>
            c.op === 'groupNorm'
              ? n.groupNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, { numGroups: G, weight: t.w, bias: t.b, ...layout })
              : n.instanceNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, { weight: t.w, bias: t.b, ...layout }),
          [],
          { dweight: terms, dbias: terms },
        );
        out.push(...B.failures);
      }
      break;
    }
    case 'weightNorm': {
      const rank = c.shape.length;
      const dim = c.dim === null || c.dim === undefined ? null : c.dim < 0 ? c.dim + rank : c.dim;
      const D = dim === null ? 1 : c.shape[dim]!;
      const gShape = c.gFlat ? (dim === null ? [] : [D]) : c.shape.map((d, i) => (i === dim ? d : 1));
      const g = data(s + 2, gShape, dt, 1, 0.5);
      const F = await both('forward', gpu, { v: x, g }, (n, t) => n.weightNorm(t.v!, t.g!, { dim: c.dim }));
      out.push(...F.failures);
      if (c.backward && F.ref.norms) {
        const B = await both('backward', gpu, { dw: dy, v: x, g, norms: f32(F.ref.norms, gShape) }, (n, t) => n.weightNormBackward(t.dw!, t.v!, t.g!, t.norms!, { dim: c.dim }), [], { dg: 1 });
        out.push(...B.failures);
      }
      break;
    }
  }
  return out;
}

// ---- the cases ----

const indices = ONLY !== null ? [ONLY] : Array.from({ length: COUNT }, (_, i) => i);
const CASES = indices.map(genCase);

describe(`random GPU/CPU parity: ${CASES.length} case(s), seed ${SEED}`, () => {
  it('generator covers every op, both dtypes, every variant, huge dims and backward', () => {
    if (ONLY !== null || COUNT < 100) return;
    const ops = new Set(CASES.map((c) => c.op));
    expect([...ops].sort()).toEqual(['batchNorm', 'groupNorm', 'instanceNorm', 'layerNorm', 'rmsNorm', 'weightNorm']);
    expect(new Set(CASES.map((c) => c.dtype)).size).toBe(2);
    expect(new Set(CASES.map((c) => c.variant)).size).toBe(4);
    expect(CASES.some((c) => prod(c.shape) > CAP)).toBe(true);
    expect(CASES.filter((c) => c.backward).length).toBeGreaterThan(CASES.length / 2);
    expect(new Set(CASES.map((c) => c.hard).filter(Boolean)).size).toBe(6);
    expect(CASES.filter((c) => c.channelsLast).length).toBeGreaterThan(10);
    for (const c of CASES) {
      expect(c.shape.length).toBeGreaterThanOrEqual(1);
      expect(c.shape.length).toBeLessThanOrEqual(5);
      expect(prod(c.shape)).toBeLessThanOrEqual(HUGE_CAP);
    }
  });

  for (const c of CASES) {
    it(describeCase(c), async () => {
      const failures = await runCase(c);
      if (failures.length) {
        throw new Error(
          `random parity case failed: seed ${SEED}, case ${c.index}\n` +
            `replay: WEBGPU_NORM_SEED=${SEED} WEBGPU_NORM_CASE=${c.index} npx vitest run test/random-parity.test.ts\n` +
            `case: ${JSON.stringify(c)}\n` +
            failures.join('\n'),
        );
      }
    });
  }
});
