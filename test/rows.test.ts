/**
 * The one-workgroup-per-row layer/RMS-norm forward (shaders/rows.wgsl), chosen on GPU-class
 * adapters (`adapterClass: 'gpu'` forces it on SwiftShader) for rows that fit its registers.
 * Every case runs twice: with subgroup sums (SwiftShader's Dawn has 'subgroups') and with the
 * workgroup-tree fallback. Checked against float64 formulas and the CPU reference, row by row
 * (rows of very different magnitudes in one tensor), with NaN-poisoned outputs; the kernel
 * actually used is asserted from the pipelines each op asks for. Rows of fewer than SHORT_ROW (64)
 * elements take the row-fused kernels instead (one invocation per row, policy.ts): the short
 * lengths here check that mapping on the GPU class the same way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNorms, relativeL2, type Norms, type Tensor } from '../src/index.ts';
import { rowsBwdBlocks, rowsPlan } from '../src/kernels/gpu.ts';
import { SHORT_ROW } from '../src/kernels/policy.ts';
import { gpuNorms } from './util/gpu.ts';
import { makeRng } from './util/rng.ts';
import { hardRows } from './util/hard-rows.ts';

let base: Norms;
let cpu: Norms;
/** 'sub': subgroup sums; 'tree': the workgroup-tree fallback. Both adapterClass 'gpu'. */
const inst: Record<'sub' | 'tree', Norms> = {} as never;
const kernelsAsked: Record<string, string[]> = { sub: [], tree: [] };

beforeAll(async () => {
  base = await gpuNorms();
  cpu = await createNorms({ backend: 'cpu' });
  for (const k of ['sub', 'tree'] as const) {
    const n = await createNorms({ backend: 'webgpu', device: base.device!, poisonOutputs: true, adapterClass: 'gpu' });
    const g = n._gpu!;
    g.useSubgroups = k === 'sub';
    const ctx = g.ctx as unknown as { kernel: (s: { label: string }) => unknown };
    const orig = ctx.kernel.bind(ctx);
    ctx.kernel = (s) => (kernelsAsked[k]!.push(s.label), orig(s));
    inst[k] = n;
  }
});
afterAll(() => {
  inst.sub?.destroy();
  inst.tree?.destroy();
  base?.destroy();
  cpu?.destroy();
});

const f32 = Math.fround;

/** float64 layer/RMS norm of rows of K (inputs as given: already float32 values). */
function ref64(x: Float32Array, K: number, eps: number, rms: boolean, w?: Float32Array | null, b?: Float32Array | null) {
  const rows = x.length / K;
  const y = new Float64Array(x.length);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    if (!rms) {
      for (let i = 0; i < K; i++) m += x[r * K + i]!;
      m /= K;
    }
    let v = 0;
    for (let i = 0; i < K; i++) v += (x[r * K + i]! - m) ** 2;
    v /= K;
    const rs = 1 / Math.sqrt(v + eps);
    mean[r] = m;
    rstd[r] = rs;
    for (let i = 0; i < K; i++) y[r * K + i] = (x[r * K + i]! - m) * rs * (w ? w[i]! : 1) + (b ? b[i]! : 0);
  }
  return { y, mean, rstd };
}

/** Per-row relative L2 errors over the rows; the worst one and where. */
function worstRow(got: Float32Array, want: ArrayLike<number>, K: number): { err: number; row: number } {
  let worst = { err: 0, row: -1 };
  for (let r = 0; r * K < want.length; r++) {
    const e = relativeL2(got.subarray(r * K, (r + 1) * K), Array.from({ length: K }, (_, i) => want[r * K + i]!));
    if (!(e <= worst.err)) worst = { err: e, row: r };
  }
  return worst;
}

type Op = { rms: boolean; w: boolean; b: boolean; res: boolean };
const OPS: Op[] = [
  { rms: false, w: true, b: true, res: false },
  { rms: false, w: true, b: false, res: true },
  { rms: true, w: true, b: false, res: false },
  { rms: true, w: false, b: false, res: true },
];
const opName = (o: Op) => `${o.rms ? 'rmsNorm' : 'layerNorm'}${o.w ? ' +w' : ''}${o.b ? ' +b' : ''}${o.res ? ' +residual' : ''}`;

function runOp(n: Norms, o: Op, x: Float32Array, r: Float32Array | null, w: Float32Array | null, b: Float32Array | null, rows: number, K: number, eps: number, dtype: 'float32' | 'float16' = 'float32') {
  const opts = {
    normalizedShape: [K],
    eps,
    ...(w ? { weight: n.tensor(w, [K]) } : {}),
    ...(b && !o.rms ? { bias: n.tensor(b, [K]) } : {}),
    ...(r ? { residual: n.tensor(r, [rows, K], dtype) } : {}),
  };
  const xt = n.tensor(x, [rows, K], dtype);
  const { bias, ...rmsOpts } = opts as typeof opts & { bias?: Tensor };
  const out = o.rms ? n.rmsNorm(xt, rmsOpts) : n.layerNorm(xt, { ...rmsOpts, ...(bias ? { bias } : {}) });
  return out as { y: Tensor; mean?: Tensor | null; rstd: Tensor; sum?: Tensor | null };
}

async function readAll(n: Norms, out: { y: Tensor; mean?: Tensor | null; rstd: Tensor; sum?: Tensor | null }) {
  const res = {
    y: await n.read(out.y),
    mean: out.mean ? await n.read(out.mean) : null,
    rstd: await n.read(out.rstd),
    sum: out.sum ? await n.read(out.sum) : null,
  };
  for (const t of Object.values(out)) if (t && typeof (t as Tensor).destroy === 'function') (t as Tensor).destroy();
  return res;
}

/** Elementwise relative error of per-row statistics (NaN/Inf must match exactly). */
function statErr(got: Float32Array, want: ArrayLike<number>, scale?: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const g = got[i]!, w = want[i]!;
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      if (!Object.is(g, w) && !(Number.isNaN(g) && Number.isNaN(w))) return Infinity;
      continue;
    }
    const d = Math.abs(g - w) / Math.max(Math.abs(w), scale ? Math.abs(scale[i]!) : 0, 1e-300);
    if (!(d <= worst)) worst = d;
  }
  return worst;
}

/** Asks which kernels `fn` compiles (or finds cached): the labels it passed to ctx.kernel. */
async function kernelsOf(k: 'sub' | 'tree', fn: () => Promise<void>): Promise<string[]> {
  kernelsAsked[k] = [];
  await fn();
  return kernelsAsked[k]!;
}

const LENGTHS = [1, 3, 4, 63, 64, 65, 255, 256, 257, 768, 1000, 4096, 8192];

describe('rowsPlan: the workgroup size and registers per adapter', () => {
  const L = { maxComputeInvocationsPerWorkgroup: 256, maxComputeWorkgroupSizeX: 256 };
  it('short rows take 64 invocations, long rows 256 with up to 8 (f32) or 16 (f16) quads each', () => {
    expect(rowsPlan(L, 1, 'float32')).toEqual({ wg: 64, nv: 1 });
    expect(rowsPlan(L, 256, 'float32')).toEqual({ wg: 64, nv: 1 });
    expect(rowsPlan(L, 257, 'float32')).toEqual({ wg: 128, nv: 1 });
    expect(rowsPlan(L, 768, 'float32')).toEqual({ wg: 256, nv: 1 });
    expect(rowsPlan(L, 4096, 'float32')).toEqual({ wg: 256, nv: 4 });
    expect(rowsPlan(L, 8192, 'float32')).toEqual({ wg: 256, nv: 8 });
    expect(rowsPlan(L, 8193, 'float32')).toBeNull();
    expect(rowsPlan(L, 16384, 'float16')).toEqual({ wg: 256, nv: 16 });
    expect(rowsPlan(L, 16386, 'float16')).toBeNull();
    expect(rowsPlan(L, 7, 'float16')).toBeNull();
    expect(rowsPlan({ maxComputeInvocationsPerWorkgroup: 128, maxComputeWorkgroupSizeX: 1024 }, 4096, 'float32')).toEqual({ wg: 128, nv: 8 });
    expect(rowsPlan({ maxComputeInvocationsPerWorkgroup: 1024, maxComputeWorkgroupSizeX: 1024 }, 8192, 'float32')).toEqual({ wg: 256, nv: 8 });
  });
});

describe.each(['sub', 'tree'] as const)('one workgroup per row (%s)', (k) => {
  it('uses the rows kernel, with subgroups only where asked', async () => {
    const n = inst[k];
    expect(n._gpu!.ctx.isCpuAdapter).toBe(false);
    const labels = await kernelsOf(k, async () => {
      await readAll(n, runOp(n, OPS[0]!, new Float32Array(2 * 768).fill(1), null, new Float32Array(768).fill(1), new Float32Array(768), 2, 768, 1e-5));
    });
    expect(labels.length).toBe(1);
    expect(labels[0]).toMatch(/^webgpu-norm\.workgroup_rows_welford\[/);
    expect(labels[0]!.includes('SUBGROUPS')).toBe(k === 'sub' && n.device!.features.has('subgroups'));
    // Longer rows than the registers hold: the split kernels.
    const long = await kernelsOf(k, async () => {
      await readAll(n, runOp(n, OPS[2]!, new Float32Array(8200).fill(1), null, null, null, 1, 8200, 1e-5));
    });
    expect(long.some((l) => l.startsWith('webgpu-norm.workgroup_rows'))).toBe(false);
  });

  it.each(LENGTHS)('K = %i: float64 formulas and the CPU reference, 1e4 offsets, outliers, weight/bias/residual', async (K) => {
    const n = inst[k];
    kernelsAsked[k] = [];
    const rows = K >= 4096 ? 4 : 9;
    const x = hardRows(K * 31 + 1, K, rows);
    const rng = makeRng(K * 17 + 5);
    const w = rng.fill(K, 1, 0.5);
    const b = rng.fill(K, 0, 0.5);
    const r = rng.fill(rows * K, 0, 1);
    const bad: string[] = [];
    for (const o of OPS) {
      const eps = 1e-5;
      const got = await readAll(n, runOp(n, o, x, o.res ? r : null, o.w ? w : null, o.b ? b : null, rows, K, eps));
      const want = await readAll(cpu, runOp(cpu, o, x, o.res ? r : null, o.w ? w : null, o.b ? b : null, rows, K, eps));
      const xs = o.res ? Float32Array.from(x, (v, i) => f32(v + r[i]!)) : x;
      const f = ref64(xs, K, eps, o.rms, o.w ? w : null, o.b ? b : null);
      const tag = `${opName(o)} K=${K}`;
      const y64 = worstRow(got.y, f.y, K);
      if (!(y64.err <= 2e-6)) bad.push(`${tag}: y vs float64 ${y64.err.toExponential(2)} (row ${y64.row})`);
      const yc = worstRow(got.y, want.y, K);
      if (!(yc.err <= 2e-6)) bad.push(`${tag}: y vs CPU reference ${yc.err.toExponential(2)} (row ${yc.row})`);
      const er = statErr(got.rstd, f.rstd);
      if (!(er <= 1e-6)) bad.push(`${tag}: rstd ${er.toExponential(2)}`);
      if (!o.rms) {
        // The mean to float32 rounding, relative to the row's spread where the mean is near 0.
        const em = statErr(got.mean!, f.mean, Array.from(f.rstd, (v) => 1 / v));
        if (!(em <= 1e-6)) bad.push(`${tag}: mean ${em.toExponential(2)}`);
      }
      if (o.res) expect(Array.from(got.sum!)).toEqual(Array.from(xs));
    }
    // Rows under SHORT_ROW elements: one invocation per row (the row-fused kernels) instead.
    const used = kernelsAsked[k]!.filter((l) => /^webgpu-norm\.(workgroup_rows|fused_rows)_/.test(l)).map((l) => l.slice(12).replace(/_(welford|sumsq)\[.*$/, ''));
    expect(new Set(used)).toEqual(new Set([K < SHORT_ROW ? 'fused_rows' : 'workgroup_rows']));
    expect(bad).toEqual([]);
  });

  it('many rows (past 65,535 workgroups in one dimension is large.test territory: here 3000 rows of 96)', async () => {
    const n = inst[k];
    const rows = 3000, K = 96;
    const x = hardRows(77, K, rows);
    const w = makeRng(78).fill(K, 1, 0.3);
    const got = await readAll(n, runOp(n, OPS[0]!, x, null, w, w, rows, K, 1e-5));
    const f = ref64(x, K, 1e-5, false, w, w);
    expect(worstRow(got.y, f.y, K).err).toBeLessThan(2e-6);
    expect(statErr(got.rstd, f.rstd)).toBeLessThan(1e-6);
  });

  it('rows with Inf/NaN, huge (1e19, 1e36) and tiny (1e-25, eps 0) magnitudes, zero rows: as the CPU reference', async () => {
    const n = inst[k];
    for (const K of [3, 64, 257, 1000, 4096]) {
      const rows = 8;
      const x = makeRng(K + 3).fill(rows * K, 0, 1);
      const put = (r: number, f: (v: number, i: number) => number) => { for (let i = 0; i < K; i++) x[r * K + i] = f32(f(x[r * K + i]!, i)); };
      put(1, (v, i) => (i === K >> 1 ? Infinity : v));
      put(2, (v, i) => (i === 0 ? -Infinity : i === K - 1 ? Infinity : v));
      put(3, (v, i) => (i === K - 1 ? NaN : v));
      put(4, (v) => v * 1e19);
      put(5, (v) => v * 1e-25);
      put(6, () => 0);
      // Sums past float32 (squares too) but a finite spread: the careful path's scaled rescan.
      put(7, (v) => v * 1e36);
      for (const o of [OPS[0]!, OPS[2]!]) {
        for (const eps of [1e-5, 0]) {
          const tag = `${opName(o)} K=${K} eps=${eps}`;
          const got = await readAll(n, runOp(n, o, x, null, o.w ? x.subarray(0, K).map(() => 1.5) : null, o.b ? new Float32Array(K).fill(0.25) : null, rows, K, eps));
          const want = await readAll(cpu, runOp(cpu, o, x, null, o.w ? x.subarray(0, K).map(() => 1.5) : null, o.b ? new Float32Array(K).fill(0.25) : null, rows, K, eps));
          const yc = worstRow(got.y, want.y, K);
          expect(yc.err, `${tag}: y (row ${yc.row})`).toBeLessThanOrEqual(1e-5);
          expect(statErr(got.rstd, want.rstd), `${tag}: rstd ${Array.from(got.rstd)} vs ${Array.from(want.rstd)}`).toBeLessThanOrEqual(1e-5);
          if (!o.rms) expect(statErr(got.mean!, want.mean!, Array.from(want.rstd, (v) => 1 / v)), `${tag}: mean ${Array.from(got.mean!)} vs ${Array.from(want.mean!)}`).toBeLessThanOrEqual(1e-5);
        }
      }
    }
  });

  it.each([2, 62, 258, 1000, 4096, 16384])('float16 K = %i (packed halves, f32 sums) vs the CPU reference', async (K) => {
    const n = inst[k];
    const rows = K >= 4096 ? 3 : 6;
    const x = hardRows(K + 11, K, rows).map((v) => Math.min(v, 6e4));
    const r = makeRng(K + 12).fill(rows * K, 0, 1);
    const w = makeRng(K + 13).fill(K, 1, 0.5);
    const labels = await kernelsOf(k, async () => {
      for (const o of OPS) {
        const got = await readAll(n, runOp(n, o, x, o.res ? r : null, o.w ? w : null, o.b ? w : null, rows, K, 1e-5, 'float16'));
        const want = await readAll(cpu, runOp(cpu, o, x, o.res ? r : null, o.w ? w : null, o.b ? w : null, rows, K, 1e-5, 'float16'));
        const tag = `${opName(o)} f16 K=${K}`;
        expect(worstRow(got.y, want.y, K).err, `${tag}: y`).toBeLessThanOrEqual(2e-3);
        expect(statErr(got.rstd, want.rstd), `${tag}: rstd`).toBeLessThanOrEqual(1e-5);
        if (got.sum) expect(Array.from(got.sum), `${tag}: sum`).toEqual(Array.from(want.sum!));
      }
    });
    expect(labels.filter((l) => l.startsWith(K < SHORT_ROW ? 'webgpu-norm.fused_rows' : 'webgpu-norm.workgroup_rows')).length).toBe(OPS.length);
  });
});

// ---- backward: one workgroup per block of rows (rows.wgsl norm_rows_bwd) ----

/** float64 layer/RMS-norm backward with x's exact statistics: dx, dweight, dbias. */
function bwd64(dy: Float32Array, x: Float32Array, K: number, eps: number, rms: boolean, w: Float32Array | null) {
  const rows = x.length / K;
  const f = ref64(x, K, eps, rms);
  const dx = new Float64Array(x.length);
  const scale = new Float64Array(x.length);
  const dw = new Float64Array(K);
  const db = new Float64Array(K);
  for (let r = 0; r < rows; r++) {
    const m = f.mean[r]!, rs = f.rstd[r]!;
    let sg = 0, sgx = 0;
    for (let i = 0; i < K; i++) {
      const e = r * K + i;
      const xh = (x[e]! - m) * rs;
      const g = dy[e]! * (w ? w[i]! : 1);
      sg += g;
      sgx += g * xh;
      dw[i] += dy[e]! * xh;
      db[i] += dy[e]!;
    }
    for (let i = 0; i < K; i++) {
      const e = r * K + i;
      const xh = (x[e]! - m) * rs;
      const g = dy[e]! * (w ? w[i]! : 1);
      dx[e] = rs * (g - (rms ? 0 : sg / K) - (xh * sgx) / K);
      scale[e] = rs * g;
    }
  }
  return { dx, dw, db, scale };
}

/**
 * Per-row relative L2 errors of dx against the larger of dx and rstd * g (the size of dx's terms:
 * where they cancel, as for K = 1 or 2, float32 keeps that much); the worst one and where.
 */
function worstDx(got: Float32Array, want: ArrayLike<number>, scale: ArrayLike<number>, K: number): { err: number; row: number } {
  let worst = { err: 0, row: -1 };
  for (let r = 0; r * K < want.length; r++) {
    let d = 0, a = 0, b = 0;
    for (let i = r * K; i < (r + 1) * K; i++) {
      d += (got[i]! - want[i]!) ** 2;
      a += want[i]! ** 2;
      b += scale[i]! ** 2;
    }
    const e = Math.sqrt(d) / Math.max(Math.sqrt(a), Math.sqrt(b), 1e-300);
    if (!(e <= worst.err)) worst = { err: e, row: r };
  }
  return worst;
}

/** Rows of N(0, 1), 1e4 + N(0, 1) and N(3, 0.01), in turn. */
function offsetRows(seed: number, K: number, rows: number): Float32Array {
  const x = makeRng(seed).fill(rows * K, 0, 1);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < K; i++) {
      const e = r * K + i;
      if (r % 3 === 1) x[e] = f32(1e4 + x[e]!);
      if (r % 3 === 2) x[e] = f32(3 + 0.01 * x[e]!);
    }
  }
  return x;
}

type BwdOp = { rms: boolean; w: boolean; b: boolean };
const BWD_OPS: BwdOp[] = [
  { rms: false, w: true, b: true },
  { rms: false, w: false, b: false },
  { rms: true, w: true, b: false },
  { rms: true, w: false, b: false },
];
const bwdName = (o: BwdOp) => `${o.rms ? 'rmsNorm' : 'layerNorm'}Backward${o.w ? ' +w' : ''}${o.b ? ' +b' : ''}`;

/** Forward (for the saved statistics) then backward on `n`; dx, dweight, dbias read back. */
async function runBwd(n: Norms, o: BwdOp, x: Float32Array, dy: Float32Array, w: Float32Array, rows: number, K: number, dtype: 'float32' | 'float16' = 'float32') {
  const xt = n.tensor(x, [rows, K], dtype);
  const dyt = n.tensor(dy, [rows, K], dtype);
  const wt = o.w ? n.tensor(w, [K], dtype) : null;
  const bt = o.b ? n.tensor(new Float32Array(K), [K], dtype) : null;
  const eps = 1e-5;
  const fw: { y: Tensor; mean?: Tensor | null; rstd: Tensor } = o.rms
    ? n.rmsNorm(xt, { normalizedShape: [K], eps, ...(wt ? { weight: wt } : {}) })
    : n.layerNorm(xt, { normalizedShape: [K], eps, ...(wt ? { weight: wt } : {}), ...(bt ? { bias: bt } : {}) });
  const opts = { normalizedShape: [K], ...(wt ? { weight: wt } : {}) };
  const g: { dx: Tensor; dweight: Tensor | null; dbias?: Tensor | null } = o.rms
    ? n.rmsNormBackward(dyt, xt, fw.rstd, opts)
    : n.layerNormBackward(dyt, xt, fw.mean!, fw.rstd, { ...opts, ...(bt ? { bias: bt } : {}) });
  const out = { dx: await n.read(g.dx), dw: g.dweight ? await n.read(g.dweight) : null, db: g.dbias ? await n.read(g.dbias) : null };
  for (const t of [xt, dyt, wt, bt, fw.y, fw.mean, fw.rstd, g.dx, g.dweight, g.dbias]) t?.destroy();
  return out;
}

const BWD_LENGTHS = [1, 3, 4, 63, 64, 65, 257, 768, 1000, 4096, 8192];

describe('rowsBwdBlocks: rows per workgroup of the backward', () => {
  it('one row each without dweight/dbias; with them a partial row per 32 (f32) or 64 (f16) rows, within one binding', () => {
    expect(rowsBwdBlocks(512, 'float32', false)).toEqual({ L: 1, P: 512 });
    expect(rowsBwdBlocks(512, 'float32', true)).toEqual({ L: 32, P: 16 });
    expect(rowsBwdBlocks(512, 'float16', true)).toEqual({ L: 64, P: 8 });
    expect(rowsBwdBlocks(3, 'float32', true)).toEqual({ L: 3, P: 1 });
    expect(rowsBwdBlocks(1 << 20, 'float32', true)).toEqual({ L: 1024, P: 1024 });
    expect(rowsBwdBlocks(3000, 'float32', true, 4)).toEqual({ L: 750, P: 4 });
    expect(rowsBwdBlocks(3000, 'float32', true, 0)).toBeNull();
  });
});

describe.each(['sub', 'tree'] as const)('backward, one workgroup per block of rows (%s)', (k) => {
  it.each(BWD_LENGTHS)('K = %i: float64 formulas and the CPU reference, 1e4 offsets with the forward\'s saved mean, weight/bias', async (K) => {
    const n = inst[k];
    const bad: string[] = [];
    for (const rows of K >= 4096 ? [1, 7] : [1, 40]) {
      const x = offsetRows(K * 13 + rows, K, rows);
      const dy = makeRng(K * 7 + rows).fill(rows * K, 0, 1);
      const w = makeRng(K * 5 + 1).fill(K, 1, 0.5);
      for (const o of BWD_OPS) {
        const labels = await kernelsOf(k, async () => {
          const got = await runBwd(n, o, x, dy, w, rows, K);
          const want = await runBwd(cpu, o, x, dy, w, rows, K);
          const f = bwd64(dy, x, K, 1e-5, o.rms, o.w ? w : null);
          const tag = `${bwdName(o)} K=${K} rows=${rows}`;
          const e64 = worstDx(got.dx, f.dx, f.scale, K);
          if (!(e64.err <= 1e-4)) bad.push(`${tag}: dx vs float64 ${e64.err.toExponential(2)} (row ${e64.row})`);
          const ec = worstDx(got.dx, want.dx, f.scale, K);
          if (!(ec.err <= 1e-4)) bad.push(`${tag}: dx vs CPU reference ${ec.err.toExponential(2)} (row ${ec.row})`);
          if (o.w) {
            const e = relativeL2(got.dw!, Array.from(f.dw));
            if (!(e <= 1e-4)) bad.push(`${tag}: dweight ${e.toExponential(2)}`);
          }
          if (o.b) {
            const e = relativeL2(got.db!, Array.from(f.db));
            if (!(e <= 1e-5)) bad.push(`${tag}: dbias ${e.toExponential(2)}`);
          }
        });
        // (Rows under SHORT_ROW elements: one invocation per row, fused_rows_grad.)
        const want = K < SHORT_ROW ? 'webgpu-norm.fused_rows_grad[' : 'webgpu-norm.workgroup_rows_grad[';
        if (!labels.some((l) => l.startsWith(want))) bad.push(`${bwdName(o)} K=${K}: no ${want.slice(12, -1)} kernel (${labels.join(' ')})`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('3000 rows of 96 and 300 rows of 1000: blocks of rows, column partials', async () => {
    const n = inst[k];
    for (const [rows, K] of [[3000, 96], [300, 1000]] as const) {
      const x = offsetRows(rows + K, K, rows);
      const dy = makeRng(rows * 3 + K).fill(rows * K, 0, 1);
      const w = makeRng(5).fill(K, 1, 0.5);
      const got = await runBwd(n, BWD_OPS[0]!, x, dy, w, rows, K);
      const f = bwd64(dy, x, K, 1e-5, false, w);
      expect(worstDx(got.dx, f.dx, f.scale, K).err, `dx [${rows}, ${K}]`).toBeLessThan(1e-4);
      expect(relativeL2(got.dw!, Array.from(f.dw)), `dweight [${rows}, ${K}]`).toBeLessThan(1e-4);
      expect(relativeL2(got.db!, Array.from(f.db)), `dbias [${rows}, ${K}]`).toBeLessThan(1e-5);
    }
  });

  it.each([2, 62, 258, 1000, 4096])('float16 K = %i (packed halves) vs the CPU reference', async (K) => {
    const n = inst[k];
    const rows = 6;
    const x = makeRng(K + 21).fill(rows * K, 0, 1);
    const dy = makeRng(K + 22).fill(rows * K, 0, 1);
    const w = makeRng(K + 23).fill(K, 1, 0.5);
    const labels = await kernelsOf(k, async () => {
      for (const o of BWD_OPS) {
        const got = await runBwd(n, o, x, dy, w, rows, K, 'float16');
        const want = await runBwd(cpu, o, x, dy, w, rows, K, 'float16');
        const tag = `${bwdName(o)} f16 K=${K}`;
        const f = bwd64(dy, x, K, 1e-5, o.rms, o.w ? w : null);
        expect(worstDx(got.dx, want.dx, f.scale, K).err, `${tag}: dx`).toBeLessThanOrEqual(3e-3);
        if (o.w) expect(relativeL2(got.dw!, Array.from(want.dw!)), `${tag}: dweight`).toBeLessThanOrEqual(3e-3);
        if (o.b) expect(relativeL2(got.db!, Array.from(want.db!)), `${tag}: dbias`).toBeLessThanOrEqual(3e-3);
      }
    });
    expect(labels.filter((l) => l.startsWith(K < SHORT_ROW ? 'webgpu-norm.fused_rows_grad[' : 'webgpu-norm.workgroup_rows_grad[')).length).toBe(BWD_OPS.length);
  });
});
