/**
 * Plans as data: an op's settled plan (entry points, flags, bindings, workgroups, windows) built
 * without encoding anything (GpuBackend.planOnly), asserted per adapter class and shape. The
 * kernels the plans name are checked for results elsewhere; here: which kernels, how many
 * dispatches, which tensors each binds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Norms, Tensor } from '../src/index.ts';
import type { Plan } from '../src/kernels/plan.ts';
import { SHORT_ROW } from '../src/kernels/policy.ts';
import { settle } from '../src/kernels/settle.ts';
import { WG } from '../src/kernels/source.ts';
import { gpuNorms } from './util/gpu.ts';

let cpuClass: Norms;
let gpuClass: Norms;
let windowedNorms: Norms;
beforeAll(async () => {
  cpuClass = await gpuNorms({ adapterClass: 'cpu' });
  gpuClass = await gpuNorms({ adapterClass: 'gpu' });
  windowedNorms = await gpuNorms({ adapterClass: 'cpu', maxBindingBytes: 16384 });
});
afterAll(() => {
  for (const n of [cpuClass, gpuClass, windowedNorms]) n?.destroy();
});

const zeros = (n: Norms, shape: number[]): Tensor => n.tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);

/** The plans of the ops `fn` issues on `n`, with nothing submitted. */
function plans(n: Norms, fn: () => unknown): Plan[] {
  const ctx = n._gpu!.ctx;
  n.flush();
  const before = ctx.submits;
  const out = n._gpu!.planOnly(fn);
  n.flush();
  expect(ctx.submits, 'planOnly submits nothing').toBe(before);
  return out;
}
const entries = (p: Plan): string[] => p.steps.map((s) => s.entry);
const dispatches = (p: Plan): number => p.steps.reduce((a, s) => a + (s.windows ? s.windows.length : 1), 0);
const bound = (p: Plan, k: number): string[] => p.steps[k]!.binds.map((b) => b.name);

describe('layerNorm forward plans', () => {
  it('CPU class, one chunk per row: one row-fused dispatch reading x once', () => {
    const x = zeros(cpuClass, [64, 768]);
    const w = zeros(cpuClass, [768]);
    const [p] = plans(cpuClass, () => cpuClass.layerNorm(x, { normalizedShape: [768], weight: w }));
    expect(p!.op).toBe('layerNorm');
    expect(entries(p!)).toEqual(['fused_rows_welford']);
    expect(dispatches(p!)).toBe(1);
    expect(bound(p!, 0)).toEqual(['X', 'W', 'Y', 'MEAN', 'RSTD']);
    expect(p!.steps[0]!.flags).toContain('HAS_W');
  });

  it('CPU class, rows sharing weights: blocks of 4 rows per invocation (ROW_BLOCK), but not without weights or under 64 rows', () => {
    const rowsOf = (n: number, affine: boolean) => {
      const x = zeros(cpuClass, [n, 768]);
      const w = zeros(cpuClass, [768]);
      const [p] = plans(cpuClass, () => cpuClass.rmsNorm(x, { normalizedShape: [768], ...(affine ? { weight: w } : {}) }));
      return p!.steps[0]!;
    };
    const s = rowsOf(67, true);
    expect(s.entry).toBe('fused_rows_sumsq');
    expect(s.flags).toContain('ROW_BLOCK');
    expect(s.p.rowsPerBlock).toBe(4);
    expect(s.workgroups).toBe(1); // ceil(ceil(67 / 4) / 64)
    expect(rowsOf(67, false).flags).not.toContain('ROW_BLOCK');
    expect(rowsOf(63, true).flags).not.toContain('ROW_BLOCK');
  });

  it('elementwise blocks: up to 256 elements per invocation on the CPU class while 256 invocations remain, 16 on the GPU class', () => {
    const block = (n: Norms, shape: number[]) => {
      const x = zeros(n, shape);
      const w = zeros(n, [shape[1]!]);
      const [p] = plans(n, () => n.batchNorm(x, { training: false, weight: w, runningMean: w, runningVar: w }));
      const s = p!.steps.find((t) => t.entry === 'normalize_elements')!;
      return s.flags.includes('BLOCK') ? [s.p.blockLength, s.workgroups] : [0, s.workgroups];
    };
    expect(block(cpuClass, [2, 16, 64, 64])).toEqual([256, 8]); // 131072 / 256 / 64
    expect(block(cpuClass, [2, 4, 56, 56])).toEqual([64, 7]); // spatial 3136 = 64 * 49
    expect(block(cpuClass, [2, 4, 8, 8])).toEqual([16, 1]); // 512 elements: 16 keeps 32 invocations
    expect(block(cpuClass, [2, 4, 5, 5])[0]).toBe(0); // spatial 25: quads cross channels
    expect(block(gpuClass, [2, 16, 64, 64])).toEqual([16, 128]);
  });

  it('CPU class, few long rows: partials, their merge, then the elementwise normalize', () => {
    const x = zeros(cpuClass, [4, 4000]);
    const [p] = plans(cpuClass, () => cpuClass.layerNorm(x, { normalizedShape: [4000] }));
    expect(entries(p!)).toEqual(['welford_partials', 'finalize_mean_rstd', 'normalize_elements']);
    expect(p!.steps[2]!.flags).toContain('MEAN_PAIR');
    expect(p!.temps.length).toBe(2); // partials and LO
  });

  it.each([
    [1, 768],
    [64, 768],
    [3, 1001],
    [2, 8192],
  ])('GPU class, rows of %i x %i (<= 8192 float32): one workgroup per row, one dispatch, x read once', (rows, K) => {
    const x = zeros(gpuClass, [rows, K]);
    const [p] = plans(gpuClass, () => gpuClass.layerNorm(x, { normalizedShape: [K] }));
    expect(entries(p!)).toEqual(['workgroup_rows_welford']);
    expect(dispatches(p!)).toBe(1);
    expect(p!.steps[0]!.workgroups).toBe(rows);
    expect(bound(p!, 0).filter((b) => b === 'X')).toHaveLength(1);
  });

  it('GPU class, rows past the register path (8200 float32): the split kernels', () => {
    const x = zeros(gpuClass, [2, 8200]);
    const [p] = plans(gpuClass, () => gpuClass.rmsNorm(x, { normalizedShape: [8200] }));
    expect(p!.op).toBe('rmsNorm');
    expect(entries(p!)).toEqual(['sumsq_partials', 'finalize_rms', 'normalize_elements']);
    // Discrete GPUs: interleaved chunks (coalesced loads).
    expect(p!.steps[0]!.flags).toContain('INTERLEAVE');
  });

  it('a windowed op (x past one storage binding): bound-range dispatches, every step WINDOW', () => {
    const x = zeros(windowedNorms, [64, 300]); // 76800 bytes against 16 KiB bindings
    const w = zeros(windowedNorms, [300]);
    const [p] = plans(windowedNorms, () => windowedNorms.layerNorm(x, { normalizedShape: [300], weight: w }));
    expect(p!.steps.length).toBeGreaterThanOrEqual(1);
    const big = p!.steps.filter((s) => s.binds.some((b) => b.t.size > 16384));
    expect(big.length).toBeGreaterThan(0);
    for (const s of big) {
      expect(s.flags).toContain('WINDOW');
      expect(s.windows!.length).toBeGreaterThan(1);
      for (const w of s.windows!) for (const b of w.buffers) expect('size' in b ? b.size : 0).toBeLessThanOrEqual(16384);
    }
    expect(dispatches(p!)).toBeGreaterThan(p!.steps.length);
  });
});

describe('GPU class, short rows: one invocation per row below SHORT_ROW elements, one workgroup per row from it', () => {
  const LENGTHS = [1, 3, 17, 63, 64, 65];
  const rows = 1000;
  it('the bound is 64 elements (the smallest workgroup of the rows kernels)', () => {
    expect(SHORT_ROW).toBe(64);
  });

  it.each(LENGTHS)('layerNorm and rmsNorm forward, rows of %i', (K) => {
    const short = K < SHORT_ROW;
    const x = zeros(gpuClass, [rows, K]);
    const w = zeros(gpuClass, [K]);
    const [ln, rn] = plans(gpuClass, () => {
      gpuClass.layerNorm(x, { normalizedShape: [K], weight: w, bias: w });
      gpuClass.rmsNorm(x, { normalizedShape: [K] });
    });
    expect(entries(ln!)).toEqual([short ? 'fused_rows_welford' : 'workgroup_rows_welford']);
    expect(entries(rn!)).toEqual([short ? 'fused_rows_sumsq' : 'workgroup_rows_sumsq']);
    if (short) {
      // WG invocations per workgroup, one row each (blocks of 4 rows sharing weights of whole quads).
      expect(rn!.steps[0]!.workgroups).toBe(Math.ceil(rows / WG));
      expect(ln!.steps[0]!.workgroups).toBe(Math.ceil(rows / (K % 4 === 0 ? 4 : 1) / WG));
      expect(rn!.steps[0]!.wg).toBeUndefined();
    } else {
      expect(ln!.steps[0]!.workgroups).toBe(rows);
      expect(rn!.steps[0]!.wg).toBe(64);
    }
  });

  it.each(LENGTHS)('layerNorm and rmsNorm backward, rows of %i, with and without dweight/dbias', (K) => {
    const short = K < SHORT_ROW;
    const [x, dy] = [zeros(gpuClass, [rows, K]), zeros(gpuClass, [rows, K])];
    const [m, r, w] = [zeros(gpuClass, [rows]), zeros(gpuClass, [rows]), zeros(gpuClass, [K])];
    const [plain, affine, rms] = plans(gpuClass, () => {
      gpuClass.layerNormBackward(dy, x, m, r, { normalizedShape: [K] });
      gpuClass.layerNormBackward(dy, x, m, r, { normalizedShape: [K], weight: w, bias: w });
      gpuClass.rmsNormBackward(dy, x, r, { normalizedShape: [K], weight: w });
    });
    if (short) {
      expect(entries(plain!)).toEqual(['fused_rows_grad']);
      expect(plain!.steps[0]!.workgroups).toBe(Math.ceil(rows / WG));
      // dweight/dbias: the column kernels (many invocations), not row blocks (COLS_FUSED).
      expect(entries(affine!)).toEqual(['fused_rows_grad', 'column_grad_partials', 'weight_bias_grads']);
      expect(entries(rms!)).toEqual(['fused_rows_grad', 'column_grad_partials', 'weight_bias_grads']);
      expect(affine!.steps[0]!.flags).not.toContain('COLS_FUSED');
    } else {
      expect(entries(plain!)).toEqual(['workgroup_rows_grad']);
      expect(plain!.steps[0]!.workgroups).toBe(rows);
      expect(entries(affine!)).toEqual(['workgroup_rows_grad', 'weight_bias_grads']);
      expect(entries(rms!)).toEqual(['workgroup_rows_grad', 'weight_bias_grads']);
    }
  });

  it.each(LENGTHS)('groupNorm and instanceNorm forward, groups of %i elements (channels-first)', (K) => {
    const short = K < SHORT_ROW;
    // groupNorm: 2 channels of K / 2 (odd K: 1 channel of K) per group; instanceNorm: a channel of K.
    const Cg = K % 2 === 0 ? 2 : 1;
    const xg = zeros(gpuClass, [4, 8 * Cg, K / Cg]);
    // (instanceNorm needs 2 or more spatial elements.)
    const xi = zeros(gpuClass, [4, 8, Math.max(K, 2)]);
    const w = zeros(gpuClass, [8 * Cg]);
    const [gn, inorm] = plans(gpuClass, () => {
      gpuClass.groupNorm(xg, { numGroups: 8, weight: w, bias: w });
      gpuClass.instanceNorm(xi);
    });
    expect(entries(gn!)).toEqual([short ? 'fused_rows_welford' : 'workgroup_rows_welford']);
    expect(entries(inorm!)).toEqual([short ? 'fused_rows_welford' : 'workgroup_rows_welford']);
    expect(gn!.steps[0]!.workgroups).toBe(short ? 1 : 32);
  });

  it('the CPU class keeps its row blocks of column sums (COLS_FUSED) for the same short rows', () => {
    const [x, dy] = [zeros(cpuClass, [4096, 16]), zeros(cpuClass, [4096, 16])];
    const [m, r, w] = [zeros(cpuClass, [4096]), zeros(cpuClass, [4096]), zeros(cpuClass, [16])];
    const [p] = plans(cpuClass, () => cpuClass.layerNormBackward(dy, x, m, r, { normalizedShape: [16], weight: w, bias: w }));
    expect(entries(p!)).toEqual(['fused_rows_grad', 'weight_bias_grads']);
    expect(p!.steps[0]!.flags).toContain('COLS_FUSED');
  });

  it('float16 rows of odd length (no row-fused kernel: two rows would share a word): partials, one chunk per row', () => {
    const x = gpuClass.tensor(new Float32Array(rows * 3), [rows, 3], 'float16');
    const [p] = plans(gpuClass, () => gpuClass.layerNorm(x, { normalizedShape: [3] }));
    expect(entries(p!)).toEqual(['welford_partials', 'finalize_mean_rstd', 'normalize_elements']);
    expect(p!.steps[0]!.p.chunks).toBe(1);
  });
});

describe('other plans', () => {
  it('layerNorm backward, GPU class: one pass over x and dy, then the column sums', () => {
    const [x, dy] = [zeros(gpuClass, [512, 768]), zeros(gpuClass, [512, 768])];
    const [m, r, w, b] = [zeros(gpuClass, [512]), zeros(gpuClass, [512]), zeros(gpuClass, [768]), zeros(gpuClass, [768])];
    const [p] = plans(gpuClass, () => gpuClass.layerNormBackward(dy, x, m, r, { normalizedShape: [768], weight: w, bias: b }));
    expect(entries(p!)).toEqual(['workgroup_rows_grad', 'weight_bias_grads']);
    expect(p!.steps[0]!.flags).toEqual(expect.arrayContaining(['HAS_MEAN', 'HAS_W', 'DWDB']));
  });

  it.each(['cpu', 'gpu'] as const)('batchNorm eval (%s class): one elementwise dispatch reading the running statistics', (cls) => {
    const n = cls === 'cpu' ? cpuClass : gpuClass;
    const x = zeros(n, [8, 16, 5, 5]);
    const [rm, rv] = [zeros(n, [16]), zeros(n, [16])];
    const [p] = plans(n, () => n.batchNorm(x, { training: false, runningMean: rm, runningVar: rv }));
    expect(entries(p!)).toEqual(['normalize_elements']);
    expect(p!.steps[0]!.flags).toContain('EVAL_STATS');
    expect(bound(p!, 0)).toEqual(['X', 'Y', 'RM', 'RV']);
  });

  it('no kernel writes into a buffer it reads as input: group norm\'s coefficients leave the per-channel sums as they are (the mean correction goes to dweight apart)', () => {
    for (const n of [cpuClass, gpuClass, windowedNorms]) {
      const x = zeros(n, [2, 8, 24, 24]);
      const w = zeros(n, [8]);
      const f = n.groupNorm(x, { numGroups: 4, weight: w, bias: w });
      const ps = plans(n, () => n.groupNormBackward(zeros(n, [2, 8, 24, 24]), x, f.mean, f.rstd, { numGroups: 4, weight: w, bias: w }));
      const steps = ps.flatMap((p) => p.steps);
      expect(steps.map((s) => s.entry)).toContain('group_grad_coefficients');
      for (const s of steps) {
        const written = new Set(s.binds.filter((b) => b.rw).map((b) => b.t));
        for (const b of s.binds) if (!b.rw) expect(written.has(b.t), `${s.entry} ${b.name}`).toBe(false);
        if (s.entry === 'group_grad_coefficients' || s.entry === 'weight_bias_grads') expect(s.binds.find((b) => b.name === 'PART')!.rw ?? false, s.entry).toBe(false);
      }
    }
  });
  it('group norm\'s backward adds the partials of each (n, c) up (grad_sums) only when there are several; one partial is the sum itself', () => {
    const seen = new Set<boolean>();
    for (const n of [cpuClass, gpuClass]) {
      for (const shape of [[2, 8, 2, 2], [2, 8, 256, 256]]) {
        const x = zeros(n, shape);
        const f = n.groupNorm(x, { numGroups: 4 });
        const steps = plans(n, () => n.groupNormBackward(zeros(n, shape), x, f.mean, f.rstd, { numGroups: 4 })).flatMap((p) => p.steps);
        const partials = steps.find((s) => s.entry === 'grad_partials')!;
        const P = partials.p.chunks!;
        expect(steps.some((s) => s.entry === 'grad_sums'), `[${shape.join(", ")}] P = ${P}`).toBe(P > 1);
        seen.add(P > 1);
        // With one partial the coefficients read the partials' buffer.
        const coef = steps.find((s) => s.entry === 'group_grad_coefficients')!;
        if (P === 1) expect(coef.binds.find((b) => b.name === 'PART')!.t).toBe(partials.binds.find((b) => b.name === 'PART')!.t);
      }
    }
    expect([...seen].sort()).toEqual([false, true]);
  });
  it('uniforms are typed when a plan is settled: a field the family lacks, or one the kernel reads and the step leaves unset, throws before anything is encoded', () => {
    const g = cpuClass._gpu!;
    const x = zeros(cpuClass, [4, 8]);
    const step = (p: Record<string, number>) => ({ entry: 'normalize_elements', flags: [], binds: [{ name: 'X', t: x._buffer!, dtype: 'float32' as const, rw: false }], p, workgroups: 1 });
    const plan = (p: Record<string, number>) => ({ op: 'test', steps: [step(p)], temps: [], outputs: [] });
    const full = { elements: 32, statDiv: 8, statMod: 4, weightDiv: 1, weightMod: 8 };
    expect(() => settle(g, plan(full))).not.toThrow();
    expect(() => settle(g, plan({ ...full, runLengthh: 8 }))).toThrow(/uniforms: runLengthh is not a field of the apply kernels/);
    const { statMod: _left, ...missing } = full;
    expect(() => settle(g, plan(missing))).toThrow(/uniforms: step normalize_elements \[[^\]]*\] reads statMod but does not set it/);
  });
  it('instanceNorm has its own name in the plan; its kernels are group norm\'s with one channel per group', () => {
    const x = zeros(cpuClass, [2, 3, 64]);
    const [p] = plans(cpuClass, () => cpuClass.instanceNorm(x));
    expect(p!.op).toBe('instanceNorm');
    expect(p!.steps[0]!.entry).toMatch(/welford/);
  });

  it('weightNorm: sum-of-squares partials, the norms, the scaled copy', () => {
    const [v, g] = [zeros(cpuClass, [512, 4, 3, 3]), zeros(cpuClass, [512, 1, 1, 1])];
    const [p] = plans(cpuClass, () => cpuClass.weightNorm(v, g));
    expect(entries(p!)).toEqual(['sumsq_partials', 'finalize_weight_norm', 'normalize_elements']);
  });

  it('what planOnly allocated (outputs, temporaries) is released', () => {
    const x = zeros(cpuClass, [4, 4000]);
    const live = cpuClass.stats();
    const [p] = plans(cpuClass, () => cpuClass.layerNorm(x, { normalizedShape: [4000] }));
    expect(p!.temps.length).toBeGreaterThan(0);
    expect(cpuClass.stats()).toEqual(live);
  });
});
