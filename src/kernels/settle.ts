/**
 * Completing a plan before encoding (`settle`): merges of partials too wide for one binding, the
 * layout flags each step's shapes allow (ALIGNED, A_VEC, BLOCK, INTERLEAVE/STRIDED, CL_BLOCK,
 * MOD_QUADS) with its workgroups, and WINDOW with the bound-range dispatches of steps past one
 * storage binding (window.ts). The choices of kernels and splits are policy.ts's.
 */
import { WG, entryPoint, has, params, shaderSource } from './source.ts';
import { planWindows } from './window.ts';
import { f32, type Plan, type Planner, type Step } from './plan.ts';

/**
 * Whether every run of b elements starting at a multiple of b lies inside one statistics group
 * (statDiv % b == 0) and one weight run (weights consecutive, weightMod % b == 0, or one weight
 * for all of it, weightDiv % b == 0); see apply.wgsl.
 */
function runsFit(s: Step, b: number): boolean {
  const aDiv = s.p.weightDiv ?? 1;
  const affine = s.flags.includes('HAS_W') || s.flags.includes('HAS_B');
  return (s.p.statDiv ?? 1) % b === 0 && (!affine || (aDiv === 1 ? (s.p.weightMod ?? 1) % b === 0 : aDiv % b === 0));
}

/** ALIGNED: quads of 4 elements at multiples of 4 fit (runsFit); A_VEC: their weights are consecutive. */
function alignFlags(s: Step, win: boolean): string[] {
  if (s.flags.includes('CLAST')) return clAlignFlags(s, win);
  const out = runsFit(s, 4) ? ['ALIGNED'] : [];
  if ((s.flags.includes('HAS_W') || s.flags.includes('HAS_B')) && (s.p.weightDiv ?? 1) === 1) out.push('A_VEC');
  return out;
}

/**
 * Elements per invocation of an elementwise step (BLOCK), 0 for none: the largest of 16, 32, ...
 * that fits (runsFit: a block never crosses a group or a weight run), so the block's statistics
 * and broadcast weight are loaded and its indices divided out once. CPU adapters go up to 256
 * elements while 256 invocations remain (SwiftShader pays per invocation: 64-element blocks
 * measured ~1.25x faster than 16 on group and batch norm, 256 ~1.4x); GPU-class adapters keep
 * 16, so that neighbouring invocations read nearby memory.
 */
function blockLength(s: Step, cpu: boolean): number {
  const n = s.p.elements ?? 0;
  let b = 0;
  for (let c = 16; c <= (cpu ? 256 : 16) && runsFit(s, c) && (c === 16 || n / c >= 4 * WG); c *= 2) b = c;
  return b;
}

/** The elementwise kernels (normalize_elements, grad_elements), by the sections their entry points declare. */
const elementwise = (s: Step): boolean => has(s, 'APPLY') || has(s, 'BWD_APPLY');

/**
 * alignFlags for channels-last steps (statistics index s = (e / statDiv)*G + (e % C)/Cg, weights
 * a = e % C): rows of whole quads (C % 4 == 0) make every quad ALIGNED with consecutive weights;
 * its statistics are one group's when Cg % 4 == 0, else per lane (S_LANES; S_VEC when each
 * channel is its own group). CL_BLOCK (elementwise kernels, not windowed): an invocation takes a
 * quad of channels in 4 rows of one sample (rows per sample a multiple of 4, or one sample), its
 * statistics and weights loaded once.
 */
function clAlignFlags(s: Step, win: boolean): string[] {
  const C = s.p.channels ?? 1;
  const Cg = s.p.channelsPerGroup ?? 1;
  const affine = s.flags.includes('HAS_W') || s.flags.includes('HAS_B');
  const out: string[] = affine ? ['A_VEC'] : [];
  if (C % 4 !== 0) return out;
  out.push('ALIGNED');
  if (Cg % 4 !== 0) out.push('S_LANES', ...(Cg === 1 ? ['S_VEC'] : []));
  const rows = (s.p.statDiv ?? 1) / C;
  const oneSample = (s.p.statDiv ?? 1) >= (s.p.elements ?? 0);
  if (elementwise(s) && !win && (oneSample || rows % 4 === 0)) out.push('CL_BLOCK');
  return out;
}

const MERGES = new Map<string, boolean>();
/**
 * Whether an entry point merges a group's partials in one invocation: its text calls
 * finalize.wgsl's `merged` (read from the shader, so no list of such entries is kept).
 */
export function mergesPartials(entry: string): boolean {
  let m = MERGES.get(entry);
  if (m === undefined) MERGES.set(entry, (m = /\bmerged\(/.test(shaderSource(entry, []))));
  return m;
}

/**
 * Finalize steps whose groups have more partials than one invocation may bind (half a binding;
 * windowed ops with many chunks per group): blocks of partials are merged into partials of
 * partials first (merge_welford / merge_sumsq, as often as needed), and the step reads those.
 */
function mergeWide(g: Planner, plan: Plan): Step[] {
  const half = g.bindLimit / 2;
  const out: Step[] = [];
  for (const s of plan.steps) {
    const k = s.binds.findIndex((b) => b.name === 'PART');
    const P = s.p.partials ?? 1;
    if (k >= 0 && mergesPartials(s.entry) && P * 16 > half && (s.p.partialStride ?? 1) === 1 && (s.p.groupStride ?? 1) === P && !s.p.partialBegin) {
      const D = s.p.outputs ?? 1;
      const B = Math.max(2, Math.floor(half / 16));
      const entry = has(s, 'WELFORD') ? 'merge_welford' : has(s, 'SUMSQ') ? 'merge_sumsq' : 'merge_sums';
      let part = s.binds[k]!.t;
      let cur = P;
      while (cur * 16 > half) {
        const P2 = Math.ceil(cur / B);
        const next = g.temp(D * P2 * 16, 'merged');
        plan.temps.push(next);
        out.push({
          entry,
          flags: [],
          binds: [f32('PART', part), f32('OUT', next, true)],
          p: { outputs: D * P2, partials: cur, partialsPerBlock: B, blocksPerGroup: P2, groupStride: cur, partialStride: 1 },
          workgroups: Math.ceil((D * P2) / WG),
        });
        part = next;
        cur = P2;
      }
      s.binds = s.binds.map((b, i) => (i === k ? f32('PART', part) : b));
      s.p = { ...s.p, partials: cur, groupStride: cur };
    }
    out.push(s);
  }
  return out;
}

/**
 * Complete a plan before encoding: merges of wide partials, the layout flags each step's
 * shapes allow (ALIGNED, INTERLEAVE/STRIDED, A_VEC, BLOCK, CL_BLOCK) and its workgroups,
 * WINDOW and the bound-range dispatches of steps past one storage binding.
 */
export function settle(g: Planner, plan: Plan): Plan {
  plan.steps = mergeWide(g, plan);
  for (const s of plan.steps) {
    // A buffer past one storage binding: the step is dispatched over bound ranges (window.ts).
    const win = s.binds.some((b) => b.t.size > g.bindLimit);
    const reduce = has(s, 'PARTIALS');
    const columns = has(s, 'COLS');
    const outer = s.p.runs ?? 1;
    const inner = (columns ? s.p.columns : s.p.runLength) ?? 1;
    // Reductions over groups whose contiguous runs have a length divisible by 4 only read quads
    // at multiples of 4 (chunk lengths are multiples of 4 too).
    if ((reduce || columns) && inner % 4 === 0) s.flags = [...s.flags, 'ALIGNED'];
    // GPU-class adapters: chunks interleaved quad by quad (chunk c takes quads c, c + P, ... of
    // its group), so neighbouring invocations read neighbouring quads (coalesced loads); each
    // chunk then spans its whole group, so not in windowed kernels. Contiguous groups
    // (outer = 1: layer/RMS norm rows, group/instance norm groups, weight norm over dim 0), and
    // strided ones (batch-norm channels, weight-norm slices; STRIDED) whose runs of `inner`
    // hold whole quads (inner % 4 == 0); other strided groups keep contiguous chunks.
    if (reduce && (outer === 1 || inner % 4 === 0) && !g.ctx.isCpuAdapter && !win) {
      s.flags = [...s.flags, 'INTERLEAVE', ...(outer > 1 ? ['STRIDED'] : [])];
    }
    if (elementwise(s) || has(s, 'ROWFUSED') || has(s, 'BWD_ROWFUSED')) {
      s.flags = [...s.flags, ...alignFlags(s, win)];
      // Elementwise kernels: one invocation per quad, or per block of blockLength elements.
      const block = elementwise(s) && !s.flags.includes('CLAST') && s.flags.includes('ALIGNED') ? blockLength(s, g.ctx.isCpuAdapter) : 0;
      if (block > 0) {
        s.flags = [...s.flags, 'BLOCK'];
        s.p = { ...s.p, blockLength: block };
        s.workgroups = Math.ceil((s.p.elements ?? 0) / (block * WG));
      }
      if (s.flags.includes('CL_BLOCK')) s.workgroups = Math.ceil((Math.ceil((s.p.elements ?? 0) / (4 * s.p.channels!)) * s.p.channels!) / 4 / WG);
    }
    // Modulated kernels whose quads are aligned (ALIGNED: a row's length, or a run of one index,
    // is a multiple of 4): one load per quad of the modulation, chosen at compile time
    // (modulate.wgsl). Not the group-norm rows kernel: its rows are aligned, its channels not.
    if (s.flags.includes('ALIGNED') && ['MOD_SC', 'MOD_SH', 'MOD_GT'].some((f) => s.flags.includes(f)) && !s.flags.includes('PER_CH') && !s.flags.includes('MOD_QUADS')) {
      s.flags = [...s.flags, 'MOD_QUADS'];
    }
    if (win) {
      s.flags = [...s.flags, 'WINDOW'];
      s.windows = s.workgroups === 0 ? [] : planWindows(s, g.bindLimit, g.ctx.device.limits.minStorageBufferOffsetAlignment, plan.op);
    }
    // Uniforms typed at plan time (planOnly included): a field the step's family does not
    // declare, or one its kernel's text reads that the step left unset, is an error here.
    params(entryPoint(s.entry).family, s.p, s);
  }
  return plan;
}
