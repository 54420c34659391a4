/**
 * GPU-vs-CPU parity helpers: run one op on the webgpu backend and on the float64 CPU reference
 * with the same host inputs, and compare every output (and every input the op updates in
 * place) by relative L2 error.
 */
import { expect } from 'vitest';
import { createNorms, Tensor, type Norms, type DType } from '../../src/index.ts';
import { expectClose, gpuNorms, testVariant, TEST_BACKEND, wasmNorms } from './gpu.ts';
import { makeRng, TOLERANCE } from '../catalog.js';

/** The contract's tolerance: relative L2 ≤ 1e-4 for every (float32) output. */
export const TOL = TOLERANCE.float32;

/** Host data and shape of one input. */
export interface HostIn {
  data: Float32Array;
  shape: number[];
  dtype?: DType;
}

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Seeded N(mean, std²) data of the given shape. */
export function randn(seed: number, shape: number[], mean = 0, std = 1): HostIn {
  return { data: makeRng(seed).fill(numel(shape), mean, std), shape };
}

/** Seeded U(lo, hi) data of the given shape (e.g. running variances, which must be > 0). */
export function uniform(seed: number, shape: number[], lo: number, hi: number): HostIn {
  const r = makeRng(seed);
  const data = new Float32Array(numel(shape));
  for (let i = 0; i < data.length; i++) data[i] = lo + (hi - lo) * r.uniform();
  return { data, shape };
}

export const host = (data: ArrayLike<number>, shape: number[]): HostIn => ({ data: Float32Array.from(data), shape });

/** A webgpu Norms (NaN-poisoned outputs) plus the CPU reference, and Norms forcing each kernel variant on the same device. */
export interface Backends {
  gpu: Norms;
  cpu: Norms;
  /** variant 'fused' / 'general' on the same GPUDevice (also NaN-poisoned). */
  fused: Norms;
  general: Norms;
  /**
   * variant 'auto' on the same device, told that its adapter is not a CPU one: it splits the
   * work as on a discrete GPU (one workgroup per row where rows fit its registers, the row-fused
   * kernels only for rows under SHORT_ROW elements, up to 65536 partials of >= 256 elements per
   * reduction), so that the split a real GPU gets is covered on SwiftShader too.
   */
  gpuSplit: Norms;
}

export async function openBackends(): Promise<Backends> {
  const cpu = await createNorms({ backend: 'cpu' });
  if (TEST_BACKEND === 'wasm') {
    // The wasm backend's three builds in the variants' places: SIMD128 on one thread, scalar, two threads.
    const [gpu, fused, general, gpuSplit] = await Promise.all([wasmNorms(), wasmNorms({}, 'simd'), wasmNorms({}, 'scalar'), wasmNorms({}, 'threads')]);
    return { gpu, cpu, fused, general, gpuSplit };
  }
  const gpu = await gpuNorms();
  const onDevice = (variant: 'fused' | 'general' | 'auto', adapterClass: 'auto' | 'gpu' = 'auto') =>
    createNorms({ backend: 'webgpu', device: gpu.device!, poisonOutputs: true, variant, adapterClass });
  const [fused, general, gpuSplit] = await Promise.all([onDevice('fused'), onDevice('general'), onDevice('auto', 'gpu').then(testVariant)]);
  for (const n of [fused, general, gpuSplit]) if (n.backend !== 'webgpu') throw new Error(`expected the webgpu backend, got ${n.backend}`);
  return { gpu, cpu, fused, general, gpuSplit };
}

export function closeBackends(b: Backends | undefined): void {
  if (!b) return;
  // The variant instances share gpu's device: destroy them first.
  b.fused.destroy();
  b.general.destroy();
  b.gpuSplit.destroy();
  b.gpu.destroy();
  b.cpu.destroy();
}

export type Inputs = Record<string, HostIn | null | undefined>;
export type TensorsOf<I> = { [K in keyof I]: Tensor | null };
type Outs = object;

/** Tensors on `n` for every non-null host input (null stays null). */
export function upload<I extends Inputs>(n: Norms, ins: I): TensorsOf<I> {
  const out = {} as Record<string, Tensor | null>;
  for (const [k, v] of Object.entries(ins)) out[k] = v ? n.tensor(v.data, v.shape, v.dtype) : null;
  return out as TensorsOf<I>;
}

function destroyAll(o: object): void {
  for (const v of Object.values(o)) if (v instanceof Tensor) v.destroy();
}

function tensorsOf(o: object): Record<string, Tensor | null> {
  const r: Record<string, Tensor | null> = {};
  for (const [k, v] of Object.entries(o)) if (v instanceof Tensor || v === null) r[k] = v;
  return r;
}

export interface ParityOptions {
  tol?: number;
  /** Per output dtype, over `tol` (mixed dtypes: a float32 output held to the float32 bar). */
  tolByDtype?: Partial<Record<DType, number>>;
  /** Inputs the op updates in place (batchNorm's running stats): compared after the op too. */
  mutated?: string[];
}

/** Host results of the CPU reference (outputs and mutated inputs), to feed later calls. */
export type RefResult = Record<string, Float32Array>;

/**
 * Runs `call` with the same inputs on `gpu` and on `cpu`. The GPU must return exactly the
 * outputs the CPU returns (same names, null where the CPU gives null, same shapes and dtypes),
 * each within `tol` relative L2; mutated inputs are compared after the op. All GPU tensors are
 * destroyed afterwards, and the GPU instance must hold no more buffers than before (no leaked
 * temporaries). Returns the CPU reference's host results and the list of outputs that failed
 * (every output is checked, so one report shows them all).
 */
export async function parityReport<I extends Inputs>(
  label: string,
  gpu: Norms,
  cpu: Norms,
  inputs: I,
  call: (n: Norms, t: TensorsOf<I>) => Outs,
  opts: ParityOptions = {},
): Promise<{ ref: RefResult; failures: string[] }> {
  const tol = opts.tol ?? TOL;
  const before = gpu.stats().liveBuffers;
  const cin = upload(cpu, inputs);
  const cout = tensorsOf(call(cpu, cin));
  const gin = upload(gpu, inputs);
  let gout: Record<string, Tensor | null> = {};
  const ref: RefResult = {};
  const failures: string[] = [];
  const check = (name: string, got: Float32Array, want: Float32Array, dtype: DType): void => {
    try {
      expectClose(name, got, want, opts.tolByDtype?.[dtype] ?? tol);
    } catch (e) {
      failures.push((e as Error).message);
    }
  };
  try {
    gout = tensorsOf(call(gpu, gin));
    const names = Object.keys(cout).sort();
    expect(Object.keys(gout).sort(), `${label}: output names`).toEqual(names);
    for (const k of names) {
      const c = cout[k]!;
      const g = gout[k]!;
      expect(g === null, `${label}: ${k} is null on the gpu iff on the cpu`).toBe(c === null);
      if (!c || !g) continue;
      expect([...g.shape], `${label}: shape of ${k}`).toEqual([...c.shape]);
      expect(g.dtype, `${label}: dtype of ${k}`).toBe(c.dtype);
      const want = await cpu.read(c);
      ref[k] = want;
      const got = await readOrFail(`${label}: ${k} ${fmt(g.shape)}`, gpu, g, failures);
      if (!got) continue;
      expect(got.length, `${label}: length of ${k}`).toBe(want.length);
      if (want.length > 0) check(`${label}: ${k} ${fmt(g.shape)}`, got, want, g.dtype);
    }
    for (const k of opts.mutated ?? []) {
      const c = (cin as Record<string, Tensor | null>)[k];
      const g = (gin as Record<string, Tensor | null>)[k];
      if (!c || !g) throw new Error(`${label}: mutated input ${k} not given`);
      const want = await cpu.read(c);
      ref[k] = want;
      const got = await readOrFail(`${label}: ${k} ${fmt(g.shape)} (updated in place)`, gpu, g, failures);
      if (got) check(`${label}: ${k} ${fmt(g.shape)} (updated in place)`, got, want, g.dtype);
    }
  } finally {
    destroyAll(gout);
    destroyAll(gin);
  }
  expect(gpu.stats().liveBuffers, `${label}: GPU buffers left behind`).toBe(before);
  return { ref, failures };
}

/** Reads a GPU tensor; a rejection (a GPU error) is recorded as a failure. */
async function readOrFail(name: string, gpu: Norms, t: Tensor, failures: string[]): Promise<Float32Array | null> {
  try {
    return await gpu.read(t);
  } catch (e) {
    failures.push(`${name}: read rejected with ${(e as Error).name}: ${(e as Error).message.split('\n').slice(0, 3).join(' | ')}`);
    return null;
  }
}

/** parityReport that fails the test with every mismatching output listed. */
export async function parity<I extends Inputs>(
  label: string,
  gpu: Norms,
  cpu: Norms,
  inputs: I,
  call: (n: Norms, t: TensorsOf<I>) => Outs,
  opts: ParityOptions = {},
): Promise<RefResult> {
  const r = await parityReport(label, gpu, cpu, inputs, call, opts);
  failIf(r.failures);
  return r.ref;
}

export function failIf(failures: string[]): void {
  if (failures.length) throw new Error(`${failures.length} output(s) differ from the CPU reference:\n${failures.join('\n')}`);
}

/** "[a, b, c]": how the library formats shapes in messages. */
export const fmt = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

// ---- row norms (layerNorm / rmsNorm): shared case runner ----

export interface RowCase {
  /** Leading dims of x (the shape of mean/rstd). */
  lead: number[];
  normalizedShape: number[];
  weight?: boolean;
  bias?: boolean;
  /** Mean and standard deviation of x (default 0.5, 2: seeded data with a non-zero mean). */
  mean?: number;
  std?: number;
  eps?: number;
  /** Also pass a residual (fused add; the op then returns `sum`). */
  residual?: boolean;
  /** Also check the backward (default true). */
  backward?: boolean;
  seed: number;
}

export const describeRowCase = (c: RowCase): string =>
  `x ${fmt([...c.lead, ...c.normalizedShape])} ns ${fmt(c.normalizedShape)}` +
  `${c.weight ? ' +w' : ''}${c.bias ? ' +b' : ''}${c.residual ? ' +residual' : ''}` +
  `${c.mean !== undefined ? ` mean ${c.mean}` : ''}${c.std !== undefined ? ` std ${c.std}` : ''}${c.eps !== undefined ? ` eps ${c.eps}` : ''}`;

/** Forward and backward parity of layerNorm (rms false) or rmsNorm (rms true) on `gpu`. */
export async function rowNormParity(gpu: Norms, cpu: Norms, rms: boolean, c: RowCase): Promise<void> {
  const op = rms ? 'rmsNorm' : 'layerNorm';
  const label = `${op} ${describeRowCase(c)}`;
  const ns = c.normalizedShape;
  const shape = [...c.lead, ...ns];
  const x = randn(c.seed, shape, c.mean ?? 0.5, c.std ?? 2);
  const weight = c.weight ? randn(c.seed + 1, ns, 1, 0.5) : null;
  const bias = c.bias && !rms ? randn(c.seed + 2, ns, 0.25, 0.5) : null;
  const residual = c.residual ? randn(c.seed + 4, shape, -0.5, 1) : null;
  const F = await parityReport(`${label}: forward`, gpu, cpu, { x, weight, bias, residual }, (n, t) =>
    rms
      ? n.rmsNorm(t.x!, { normalizedShape: ns, weight: t.weight, residual: t.residual, ...(c.eps !== undefined ? { eps: c.eps } : {}) })
      : n.layerNorm(t.x!, { normalizedShape: ns, weight: t.weight, bias: t.bias, residual: t.residual, ...(c.eps !== undefined ? { eps: c.eps } : {}) }),
  );
  const fwd = F.ref;
  expect(Object.keys(fwd).sort()).toEqual([...(rms ? [] : ['mean']), 'rstd', ...(residual ? ['sum'] : []), 'y'].sort());
  if (c.backward === false) return failIf(F.failures);
  // Backward from the reference's saved statistics (of x, or of x + residual), so that it is
  // checked on its own.
  const xb = residual ? { data: fwd.sum!, shape } : x;
  const dy = randn(c.seed + 3, shape, 0.1, 1);
  const rstd = { data: fwd.rstd!, shape: c.lead };
  const Bw = rms
    ? await parityReport(`${label}: backward`, gpu, cpu, { dy, x: xb, rstd, weight }, (n, t) =>
        n.rmsNormBackward(t.dy!, t.x!, t.rstd!, { normalizedShape: ns, weight: t.weight }),
      )
    : await parityReport(`${label}: backward`, gpu, cpu, { dy, x: xb, mean: { data: fwd.mean!, shape: c.lead }, rstd, weight, bias }, (n, t) =>
        n.layerNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, { normalizedShape: ns, weight: t.weight, bias: t.bias }),
      );
  const bwd = Bw.ref;
  expect(Object.keys(bwd).sort()).toEqual(['dx', ...(weight ? ['dweight'] : []), ...(bias ? ['dbias'] : [])].sort());
  failIf([...F.failures, ...Bw.failures]);
}

// ---- channel norms (groupNorm / instanceNorm): shared case runner ----

export interface ChannelCase {
  shape: number[];
  /** numGroups; null: instanceNorm. */
  G: number | null;
  weight?: boolean;
  bias?: boolean;
  silu?: boolean;
  eps?: number;
  mean?: number;
  std?: number;
  seed: number;
}

export const describeChannelCase = (c: ChannelCase): string =>
  `x ${fmt(c.shape)}${c.G !== null ? ` G=${c.G}` : ''}${c.weight ? ' +w' : ''}${c.bias ? ' +b' : ''}` +
  `${c.silu ? ' silu (forward only)' : ''}${c.eps !== undefined ? ` eps ${c.eps}` : ''}${c.mean !== undefined ? ` mean ${c.mean}` : ''}`;

/** Forward and backward parity of groupNorm (G a number) or instanceNorm (G null) on `gpu`. */
export async function channelNormParity(gpu: Norms, cpu: Norms, c: ChannelCase): Promise<void> {
  const op = c.G === null ? 'instanceNorm' : 'groupNorm';
  const label = `${op} ${describeChannelCase(c)}`;
  const [N, C] = c.shape as [number, number];
  const G = c.G ?? C;
  const x = randn(c.seed, c.shape, c.mean ?? 0.5, c.std ?? 2);
  const weight = c.weight ? randn(c.seed + 1, [C], 1, 0.5) : null;
  const bias = c.bias ? randn(c.seed + 2, [C], 0.25, 0.5) : null;
  const eps = c.eps !== undefined ? { eps: c.eps } : {};
  const F = await parityReport(`${label}: forward`, gpu, cpu, { x, weight, bias }, (n, t) =>
    c.G === null
      ? n.instanceNorm(t.x!, { weight: t.weight, bias: t.bias, ...eps })
      : n.groupNorm(t.x!, { numGroups: c.G, weight: t.weight, bias: t.bias, ...(c.silu ? { activation: 'silu' as const } : {}), ...eps }),
  );
  expect(Object.keys(F.ref).sort()).toEqual(['mean', 'rstd', 'y']);
  expect(F.ref.mean!.length).toBe(N * G);
  if (c.silu) return failIf(F.failures);
  const ins = {
    dy: randn(c.seed + 3, c.shape, 0.1, 1),
    x,
    mean: { data: F.ref.mean!, shape: [N, G] },
    rstd: { data: F.ref.rstd!, shape: [N, G] },
    weight,
    bias,
  };
  const Bw = await parityReport(`${label}: backward`, gpu, cpu, ins, (n, t) =>
    c.G === null
      ? n.instanceNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, { weight: t.weight, bias: t.bias })
      : n.groupNormBackward(t.dy!, t.x!, t.mean!, t.rstd!, { numGroups: c.G, weight: t.weight, bias: t.bias }),
  );
  expect(Object.keys(Bw.ref).sort()).toEqual(['dx', ...(weight ? ['dweight'] : []), ...(bias ? ['dbias'] : [])].sort());
  failIf([...F.failures, ...Bw.failures]);
}
