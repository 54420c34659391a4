/**
 * `channelsLast: true` for batchNorm, instanceNorm, groupNorm and their backward passes: x and dy
 * are [N, *spatial, C], read in place by the channels-last kernels (no transpose).
 *
 * Every case is checked twice: against the CPU reference called the same way (channels last),
 * and against the channels-first result of the same data, computed independently here by
 * transposing the input on the host and the outputs back (the CPU reference's channels-first
 * path, which the rest of the tests check against PyTorch's formulas). The CPU reference's two
 * layouts must agree too. Outputs are NaN-poisoned first; both adapter classes run (the work
 * split of this CPU adapter, and of a discrete GPU forced on the same device), float16, the
 * fused SiLU, and bound ranges (bindings capped by maxBindingBytes, so the kernels run windowed).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNorms, Tensor, ValueError, type DType, type Norms } from '../src/index.ts';
import { expectClose, ON_WASM, sameDevice } from './util/gpu.ts';
import { TOLERANCE } from './catalog.js';
import { closeBackends, fmt, numel, openBackends, randn, uniform, upload, type Backends, type HostIn } from './util/parity.ts';

let B: Backends;
const capped = new Map<string, Norms>();
beforeAll(async () => {
  B = await openBackends();
});
afterAll(() => {
  for (const n of capped.values()) n.destroy();
  closeBackends(B);
});

type Split = 'cpu split' | 'gpu split';

/** A webgpu Norms on the shared device with bindings capped at `bytes` (0: not capped). */
async function instance(split: Split, bytes = 0): Promise<Norms> {
  if (!bytes) return split === 'cpu split' ? B.gpu : B.gpuSplit;
  const key = `${bytes}|${split}`;
  let n = capped.get(key);
  if (!n) {
    n = await sameDevice(B.gpu, { poisonOutputs: true, maxBindingBytes: bytes });
    if (split === 'gpu split' && n._gpu) (n._gpu!.ctx as { isCpuAdapter: boolean }).isCpuAdapter = false;
    capped.set(key, n);
  }
  return n;
}

/** [N, C, *spatial] data to [N, *spatial, C] (back = false), or back from it. */
function transpose(data: Float32Array, shapeCF: readonly number[], back = false): Float32Array {
  const N = shapeCF[0]!;
  const C = shapeCF[1]!;
  const S = numel(shapeCF.slice(2));
  const out = new Float32Array(data.length);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      for (let s = 0; s < S; s++) {
        const first = (n * C + c) * S + s;
        const last = (n * S + s) * C + c;
        if (back) out[first] = data[last]!;
        else out[last] = data[first]!;
      }
    }
  }
  return out;
}
const lastShape = (shapeCF: readonly number[]): number[] => [shapeCF[0]!, ...shapeCF.slice(2), shapeCF[1]!];

/** Inputs and outputs laid out like x. */
const LAYOUT = new Set(['x', 'dy', 'y', 'dx']);

type Host = Record<string, { data: Float32Array; shape: number[] }>;

/**
 * Runs `call` on `n` and reads every output (and the inputs it updates in place), destroying
 * everything it made; the instance must hold no more buffers afterwards.
 */
async function runRead(n: Norms, ins: Record<string, HostIn | null>, call: (n: Norms, t: Record<string, Tensor | null>) => object, mutated: string[]): Promise<Host> {
  const before = n.stats().liveBuffers;
  const t = upload(n, ins);
  const out: Host = {};
  const made: Tensor[] = [];
  try {
    const r = call(n, t) as Record<string, unknown>;
    for (const [k, v] of Object.entries(r)) {
      if (v instanceof Tensor) made.push(v), (out[k] = { data: await n.read(v), shape: [...v.shape] });
    }
    for (const k of mutated) out[k] = { data: await n.read(t[k]!), shape: [...t[k]!.shape] };
  } finally {
    for (const v of [...made, ...Object.values(t)]) if (v) v.destroy();
  }
  expect(n.stats().liveBuffers, 'buffers left behind').toBe(before);
  return out;
}

/**
 * One op, channels last on `gpu` against (1) the CPU reference channels last and (2) the CPU
 * reference channels first on the host-transposed data (outputs transposed back). Inputs are
 * given channels first; x and dy are transposed for the channels-last calls.
 */
async function clCheck(
  label: string,
  gpu: Norms,
  shapeCF: number[],
  ins: Record<string, HostIn | null>,
  call: (n: Norms, t: Record<string, Tensor | null>, channelsLast: boolean) => object,
  opts: { mutated?: string[]; dtype?: DType } = {},
): Promise<Host> {
  const mutated = opts.mutated ?? [];
  const half = opts.dtype === 'float16';
  const tol = TOLERANCE[half ? 'float16' : 'float32'];
  const clIns: Record<string, HostIn | null> = {};
  for (const [k, v] of Object.entries(ins)) clIns[k] = v && LAYOUT.has(k) ? { ...v, data: transpose(v.data, shapeCF), shape: lastShape(shapeCF) } : v;
  const cf = await runRead(B.cpu, ins, (n, t) => call(n, t, false), mutated);
  const cpuCL = await runRead(B.cpu, clIns, (n, t) => call(n, t, true), mutated);
  const got = await runRead(gpu, clIns, (n, t) => call(n, t, true), mutated);
  expect(Object.keys(got).sort(), `${label}: outputs`).toEqual(Object.keys(cf).sort());
  expect(Object.keys(cpuCL).sort(), `${label}: outputs`).toEqual(Object.keys(cf).sort());
  const failures: string[] = [];
  const check = (name: string, a: Float32Array, b: Float32Array, t: number) => {
    try {
      if (b.length) expectClose(name, a, b, t);
      else expect(a.length, name).toBe(0);
    } catch (e) {
      failures.push((e as Error).message);
    }
  };
  for (const k of Object.keys(cf)) {
    const layout = LAYOUT.has(k);
    const want = layout ? transpose(cf[k]!.data, shapeCF) : cf[k]!.data;
    const shape = layout ? lastShape(shapeCF) : cf[k]!.shape;
    expect(got[k]!.shape, `${label}: shape of ${k}`).toEqual(shape);
    expect(cpuCL[k]!.shape, `${label}: cpu shape of ${k}`).toEqual(shape);
    check(`${label}: cpu channelsLast ${k} vs channels-first`, cpuCL[k]!.data, want, half ? 2e-4 : 1e-6);
    check(`${label}: ${k} ${fmt(shape)} vs the CPU reference (channels last)`, got[k]!.data, cpuCL[k]!.data, tol);
    check(`${label}: ${k} ${fmt(shape)} vs channels-first of the transposed input`, got[k]!.data, want, tol);
  }
  if (failures.length) throw new Error(`${failures.length} mismatch(es):\n${failures.join('\n')}`);
  return cf;
}

// ---- cases ----

interface Case {
  /** Channels-first shape [N, C, *spatial] of the data (the op gets its channels-last transpose). */
  shape: number[];
  weight?: boolean;
  bias?: boolean;
  mean?: number;
  std?: number;
  dtype?: DType;
  eps?: number;
  /** Hard input: x's data (channels first) changed in place; `hardName` says how. */
  hard?: (d: Float32Array) => void;
  hardName?: string;
  seed: number;
}
interface GnCase extends Case {
  /** numGroups; null: instanceNorm. */
  G: number | null;
  silu?: boolean;
}
interface BnCase extends Case {
  training: boolean;
  running?: boolean;
}

const desc = (c: Case) =>
  `x ${fmt(lastShape(c.shape))}${c.weight ? ' +w' : ''}${c.bias ? ' +b' : ''}${c.dtype === 'float16' ? ' f16' : ''}${c.mean !== undefined ? ` mean ${c.mean}` : ''}` +
  `${c.eps !== undefined ? ` eps ${c.eps}` : ''}${c.hardName ? ` ${c.hardName}` : ''}`;

/** x of a case: seeded N(mean, std²) data, then its hard-input change. */
function xOf(c: Case): HostIn {
  const x = randn(c.seed, c.shape, c.mean ?? 0.5, c.std ?? 2);
  c.hard?.(x.data);
  return withDtype(x, c.dtype)!;
}
const gnName = (c: GnCase) => `${c.G === null ? 'instanceNorm' : `groupNorm G=${c.G}`} ${desc(c)}${c.silu ? ' silu' : ''}`;
const bnName = (c: BnCase) => `batchNorm ${c.training ? 'train' : 'eval'} ${desc(c)}${c.running ? ' +running' : ''}`;

const withDtype = (h: HostIn | null, dtype?: DType): HostIn | null => (h && dtype ? { ...h, dtype } : h);

async function gnCase(gpu: Norms, c: GnCase): Promise<void> {
  const [N, C] = c.shape as [number, number];
  const G = c.G ?? C;
  const x = xOf(c);
  const eps = c.eps !== undefined ? { eps: c.eps } : {};
  const weight = c.weight ? withDtype(randn(c.seed + 1, [C], 1, 0.5), c.dtype) : null;
  const bias = c.bias ? withDtype(randn(c.seed + 2, [C], 0.25, 0.5), c.dtype) : null;
  const label = gnName(c);
  const F = await clCheck(`${label}: forward`, gpu, c.shape, { x, weight, bias }, (n, t, channelsLast) =>
    c.G === null
      ? n.instanceNorm(t.x!, { weight: t.weight, bias: t.bias, channelsLast, ...eps })
      : n.groupNorm(t.x!, { numGroups: c.G, weight: t.weight, bias: t.bias, channelsLast, ...eps, ...(c.silu ? { activation: 'silu' as const } : {}) }),
  );
  if (c.silu) return;
  const ins = {
    dy: withDtype(randn(c.seed + 3, c.shape, 0.1, 1), c.dtype),
    x,
    mean: { data: F.mean!.data, shape: [N, G] },
    rstd: { data: F.rstd!.data, shape: [N, G] },
    weight,
    bias,
  };
  await clCheck(`${label}: backward`, gpu, c.shape, ins, (n, t, channelsLast) =>
    c.G === null
      ? n.instanceNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, { weight: t.weight, bias: t.bias, channelsLast })
      : n.groupNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, { numGroups: c.G, weight: t.weight, bias: t.bias, channelsLast }),
  );
}

async function bnCase(gpu: Norms, c: BnCase): Promise<void> {
  const C = c.shape[1]!;
  const x = xOf(c);
  const eps = c.eps !== undefined ? { eps: c.eps } : {};
  const weight = c.weight ? withDtype(randn(c.seed + 1, [C], 1, 0.5), c.dtype) : null;
  const bias = c.bias ? withDtype(randn(c.seed + 2, [C], 0.25, 0.5), c.dtype) : null;
  const running = c.running || !c.training;
  const runningMean = running ? randn(c.seed + 4, [C], c.mean ?? 0.5, 0.5) : null;
  const runningVar = running ? uniform(c.seed + 5, [C], 0.5, 4) : null;
  const label = bnName(c);
  const F = await clCheck(
    `${label}: forward`,
    gpu,
    c.shape,
    { x, weight, bias, runningMean, runningVar },
    (n, t, channelsLast) => n.batchNorm(t.x!, { training: c.training, weight: t.weight, bias: t.bias, runningMean: t.runningMean, runningVar: t.runningVar, channelsLast, ...eps }),
    { mutated: c.training && running ? ['runningMean', 'runningVar'] : [], dtype: c.dtype },
  );
  const dy = withDtype(randn(c.seed + 3, c.shape, 0.1, 1), c.dtype);
  const saved: Record<string, HostIn> = c.training ? { saveMean: { data: F.saveMean!.data, shape: [C] }, saveInvstd: { data: F.saveInvstd!.data, shape: [C] } } : {};
  await clCheck(
    `${label}: backward`,
    gpu,
    c.shape,
    { dy, x, weight, bias, runningMean: c.training ? null : runningMean, runningVar: c.training ? null : runningVar, ...saved },
    (n, t, channelsLast) =>
      n.batchNormBackward(t.dy!, t.x!, {
        training: c.training,
        weight: t.weight,
        bias: t.bias,
        runningMean: t.runningMean,
        runningVar: t.runningVar,
        saveMean: t.saveMean ?? null,
        saveInvstd: t.saveInvstd ?? null,
        channelsLast,
        ...eps,
      }),
    { dtype: c.dtype },
  );
}

const BN: BnCase[] = [
  // C a multiple of 4, of 16, and not; N = 1; 1-D and 3-D spatial; one spatial element ([N, C]).
  { shape: [4, 8, 5, 7], training: true, weight: true, bias: true, running: true, seed: 9100 },
  { shape: [4, 6, 5, 7], training: true, weight: true, bias: true, running: true, seed: 9101 },
  { shape: [2, 16, 3, 5], training: true, weight: true, seed: 9102 },
  { shape: [1, 3, 17], training: true, bias: true, seed: 9103 },
  { shape: [1, 5, 2, 3, 4], training: true, weight: true, bias: true, seed: 9104 },
  { shape: [7, 5], training: true, weight: true, bias: true, running: true, seed: 9105 },
  { shape: [3, 1, 4, 4], training: true, weight: true, bias: true, seed: 9106 },
  { shape: [3, 7, 6, 6], training: true, seed: 9107 },
  // Large-ish reductions: many rows per channel, several partials each.
  { shape: [8, 64, 14, 14], training: true, weight: true, bias: true, running: true, seed: 9110 },
  { shape: [2, 9, 48, 48], training: true, weight: true, bias: true, seed: 9111 },
  // A large mean offset: x = 1e4 + N(0, 1).
  { shape: [4, 12, 9, 9], training: true, weight: true, bias: true, mean: 1e4, std: 1, seed: 9112 },
  // Eval.
  { shape: [4, 8, 5, 7], training: false, weight: true, bias: true, seed: 9120 },
  { shape: [4, 6, 5, 7], training: false, weight: true, bias: true, seed: 9121 },
  { shape: [2, 3, 11], training: false, seed: 9122 },
];

const GN: GnCase[] = [
  // Cg = 4 (one group per quad), 10 (quads across groups: per-lane statistics), 16 (blocks),
  // 2, 3 (C not a multiple of 4), 1 (G = C); N = 1; 1-D and 3-D spatial; [N, C].
  { shape: [2, 32, 8, 8], G: 8, weight: true, bias: true, seed: 9200 },
  { shape: [2, 40, 5, 7], G: 4, weight: true, bias: true, seed: 9201 },
  { shape: [2, 64, 4, 4], G: 4, weight: true, bias: true, seed: 9202 },
  { shape: [1, 6, 9, 11], G: 3, weight: true, bias: true, seed: 9203 },
  { shape: [4, 6, 17], G: 2, weight: true, bias: true, seed: 9204 },
  { shape: [3, 12, 2, 2, 2], G: 12, weight: true, bias: true, seed: 9205 },
  { shape: [4, 6], G: 2, weight: true, bias: true, seed: 9206 },
  { shape: [4, 8, 3, 3], G: 2, seed: 9207 },
  { shape: [4, 8, 3, 3], G: 1, bias: true, seed: 9208 },
  // Large-ish groups: many rows, several partials per channel.
  { shape: [2, 8, 40, 40], G: 2, weight: true, bias: true, seed: 9210 },
  { shape: [1, 20, 30, 31], G: 5, weight: true, bias: true, seed: 9211 },
  { shape: [2, 12, 9, 11], G: 3, weight: true, bias: true, mean: 1e4, std: 1, seed: 9212 },
  // Fused SiLU (forward only).
  { shape: [2, 32, 8, 8], G: 8, weight: true, bias: true, silu: true, seed: 9220 },
  { shape: [2, 40, 5, 7], G: 4, weight: true, bias: true, silu: true, seed: 9221 },
  { shape: [4, 6, 17], G: 3, silu: true, seed: 9222 },
  // instanceNorm.
  { shape: [2, 64, 8, 8], G: null, weight: true, bias: true, seed: 9230 },
  { shape: [4, 7, 9, 11], G: null, weight: true, bias: true, seed: 9231 },
  { shape: [1, 5, 3], G: null, seed: 9232 },
  { shape: [2, 12, 30, 30], G: null, weight: true, seed: 9233 },
];

const HALF_GN: GnCase[] = [
  { shape: [2, 32, 8, 8], G: 8, weight: true, bias: true, dtype: 'float16', seed: 9300 },
  { shape: [2, 40, 5, 7], G: 4, weight: true, bias: true, dtype: 'float16', seed: 9301 },
  { shape: [4, 6, 17], G: 3, weight: true, bias: true, dtype: 'float16', seed: 9302 },
  { shape: [2, 16, 6, 6], G: 4, weight: true, bias: true, silu: true, dtype: 'float16', seed: 9303 },
  { shape: [2, 7, 9, 11], G: null, weight: true, bias: true, dtype: 'float16', seed: 9304 },
];
const HALF_BN: BnCase[] = [
  { shape: [4, 8, 5, 7], training: true, weight: true, bias: true, running: true, dtype: 'float16', seed: 9310 },
  { shape: [4, 6, 5, 7], training: true, weight: true, bias: true, dtype: 'float16', seed: 9311 },
  { shape: [4, 6, 5, 7], training: false, weight: true, bias: true, dtype: 'float16', seed: 9312 },
];

for (const split of ['cpu split', 'gpu split'] as Split[]) {
  describe(`channelsLast, ${split}`, () => {
    for (const c of BN) it(bnName(c), async () => bnCase(await instance(split), c));
    for (const c of GN) it(gnName(c), async () => gnCase(await instance(split), c));
    for (const c of HALF_BN) it(bnName(c), async () => bnCase(await instance(split), c));
    for (const c of HALF_GN) it(gnName(c), async () => gnCase(await instance(split), c));
  });
}

/** Hard inputs (as test/numerics.test.ts and the random parity test draw them): the careful paths of the channels-last statistics. */
const at = (shape: number[], n: number, c: number, s: number) => (n * shape[1]! + c) * numel(shape.slice(2)) + s;
const HARD_BN: BnCase[] = [
  { shape: [4, 8, 6, 6], training: true, weight: true, bias: true, running: true, hardName: 'outliers 1e4 std', seed: 9500,
    hard: (d) => { d[at([4, 8, 6, 6], 1, 3, 7)] = 2e4; d[at([4, 8, 6, 6], 0, 3, 0)] = -2e4; d[at([4, 8, 6, 6], 3, 5, 35)] = 1e4; } },
  { shape: [4, 6, 5, 7], training: true, weight: true, bias: true, hardName: 'x 1e25', seed: 9501, hard: (d) => d.forEach((v, i) => (d[i] = v * 1e25)) },
  { shape: [4, 8, 5, 7], training: true, weight: true, bias: true, eps: 0, hardName: 'x 1e-25', seed: 9502, hard: (d) => d.forEach((v, i) => (d[i] = v * 1e-25)) },
  { shape: [3, 8, 4, 4], training: true, weight: true, bias: true, hardName: '+Inf in channel 2, channel 5 constant', seed: 9503,
    hard: (d) => { d[at([3, 8, 4, 4], 1, 2, 9)] = Infinity; for (let n = 0; n < 3; n++) for (let s = 0; s < 16; s++) d[at([3, 8, 4, 4], n, 5, s)] = 7.25; } },
];
const HARD_GN: GnCase[] = [
  { shape: [2, 40, 5, 7], G: 4, weight: true, bias: true, hardName: 'outliers 1e4 std', seed: 9510,
    hard: (d) => { d[at([2, 40, 5, 7], 1, 13, 4)] = 3e4; d[at([2, 40, 5, 7], 0, 0, 0)] = -2e4; } },
  { shape: [2, 32, 4, 4], G: 8, weight: true, bias: true, hardName: 'x 1e30', seed: 9511, hard: (d) => d.forEach((v, i) => (d[i] = v * 1e30)) },
  { shape: [2, 12, 5, 5], G: 3, weight: true, bias: true, eps: 0, hardName: 'x 1e-20', seed: 9512, hard: (d) => d.forEach((v, i) => (d[i] = v * 1e-20)) },
  { shape: [2, 8, 6, 6], G: null, weight: true, bias: true, hardName: '-Inf in (1, 3), (0, 6) constant', seed: 9513,
    hard: (d) => { d[at([2, 8, 6, 6], 1, 3, 20)] = -Infinity; for (let s = 0; s < 36; s++) d[at([2, 8, 6, 6], 0, 6, s)] = -3.5; } },
];
for (const split of ['cpu split', 'gpu split'] as Split[]) {
  describe(`channelsLast, hard inputs, ${split}`, () => {
    for (const c of HARD_BN) it(bnName(c), async () => bnCase(await instance(split), c));
    for (const c of HARD_GN) it(gnName(c), async () => gnCase(await instance(split), c));
  });
}

describe.skipIf(ON_WASM)('channelsLast, bound ranges (bindings capped)', () => {
  const cases: { bytes: number; bn?: BnCase; gn?: GnCase }[] = [
    { bytes: 1024, bn: { shape: [4, 6, 5, 7], training: true, weight: true, bias: true, running: true, seed: 9400 } },
    { bytes: 4096, bn: { shape: [8, 16, 12, 12], training: true, weight: true, bias: true, seed: 9401 } },
    { bytes: 1024, bn: { shape: [3, 300, 2, 2], training: true, weight: true, bias: true, seed: 9402 } },
    { bytes: 2048, bn: { shape: [4, 8, 5, 7], training: false, weight: true, bias: true, seed: 9403 } },
    { bytes: 1024, bn: { shape: [4, 6, 5, 7], training: true, weight: true, bias: true, dtype: 'float16', seed: 9404 } },
    { bytes: 1024, gn: { shape: [2, 40, 5, 7], G: 4, weight: true, bias: true, seed: 9410 } },
    { bytes: 4096, gn: { shape: [2, 32, 16, 16], G: 8, weight: true, bias: true, seed: 9411 } },
    { bytes: 1024, gn: { shape: [3, 6, 9, 11], G: 3, weight: true, bias: true, seed: 9412 } },
    { bytes: 1024, gn: { shape: [2, 300, 2, 3], G: 10, weight: true, bias: true, seed: 9413 } },
    { bytes: 2048, gn: { shape: [2, 32, 8, 8], G: 8, weight: true, bias: true, silu: true, seed: 9414 } },
    { bytes: 1024, gn: { shape: [2, 7, 9, 11], G: null, weight: true, bias: true, seed: 9415 } },
    { bytes: 1024, gn: { shape: [2, 40, 5, 7], G: 4, weight: true, bias: true, dtype: 'float16', seed: 9416 } },
  ];
  for (const split of ['cpu split', 'gpu split'] as Split[]) {
    for (const c of cases) {
      const name = `${c.bn ? bnName(c.bn) : gnName(c.gn!)} ≤${c.bytes} B, ${split}`;
      it(name, async () => {
        const n = await instance(split, c.bytes);
        const ctx = n._gpu!.ctx as unknown as { submit: (label: string, d: { buffers: unknown[] }[]) => Promise<void> };
        const orig = ctx.submit;
        let windowed = 0;
        ctx.submit = function (label, d) {
          windowed += d.filter((x) => x.buffers.some((b) => typeof (b as { offset?: unknown }).offset === 'number')).length;
          return orig.call(this, label, d);
        };
        try {
          if (c.bn) await bnCase(n, c.bn);
          else await gnCase(n, c.gn!);
        } finally {
          ctx.submit = orig;
        }
        expect(windowed, 'windowed dispatches').toBeGreaterThan(1);
      });
    }
  }
});

describe('channelsLast option', () => {
  it('is checked (a boolean) and accepted by the six ops only', async () => {
    for (const n of [B.gpu, B.cpu]) {
      const x = n.tensor(new Float32Array(24).map((_, i) => Math.sin(i)), [2, 3, 4]);
      expect(() => n.groupNorm(x, { numGroups: 2, channelsLast: 1 as unknown as boolean })).toThrow(ValueError);
      expect(() => n.groupNorm(x, { numGroups: 2, channelsLast: 'yes' as unknown as boolean })).toThrow(/channelsLast: expected true or false/);
      expect(() => n.layerNorm(x, { normalizedShape: [4], channelsLast: true } as never)).toThrow(/channelsLast: unknown option of layerNorm/);
      // [2, 3, 4] channels last has C = 4: numGroups 3 does not divide it.
      expect(() => n.groupNorm(x, { numGroups: 3, channelsLast: true })).toThrow(/does not divide the 4 channels/);
      const w = n.tensor([1, 2, 3], [3]);
      expect(() => n.batchNorm(x, { training: true, weight: w, channelsLast: true })).toThrow(/weight: expected shape \[4\]/);
      const r = n.batchNorm(x, { training: true, channelsLast: true });
      expect(r.y.shape).toEqual([2, 3, 4]);
      expect(r.saveMean.shape).toEqual([4]);
      const g = n.groupNorm(x, { numGroups: 2, channelsLast: true });
      expect(g.mean.shape).toEqual([2, 2]);
      for (const t of [x, w, r.y, r.saveMean, r.saveInvstd, g.y, g.mean, g.rstd]) t.destroy();
    }
  });

  it('instanceNorm channels last with one spatial element throws ValueError', () => {
    for (const n of [B.gpu, B.cpu]) {
      const x = n.tensor(new Float32Array(12).fill(1), [2, 1, 6]);
      expect(() => n.instanceNorm(x, { channelsLast: true })).toThrow(ValueError);
      x.destroy();
    }
  });
});
