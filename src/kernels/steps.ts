/**
 * Step builders shared by the norms: statistics (partials and their merge into mean/rstd),
 * per-group gradient outputs, dweight/dbias sums, and the bindings and flags of an affine or
 * residual apply step. Each returns data (plan.ts Step); nothing is encoded here.
 */
import type { Grouping as FullGrouping } from '../grouping.ts';
import type { Tensor } from '../tensor.ts';
import type * as O from '../ops.ts';
import { WG } from './source.ts';
import { f32, tb, type Bind, type Planner, type Step } from './plan.ts';
import type { Chunks, ClChunks } from './policy.ts';

/** A grouped reduction's groups (the reduce kernels' uniforms of the same names; see accumulate.wgsl). */
/** The grouping of a reduction (src/grouping.ts); the general partial kernels take outer = 1. */
export type Grouping = Omit<FullGrouping, 'outer'>;

/** RESIDUAL (x + residual), and HALF_SUM: float16 sums are rounded to half, as the stored sum. */
export function residualFlags(x: Tensor, residual: Tensor | null): string[] {
  return residual ? ['RESIDUAL', ...(x.dtype === 'float16' ? ['HALF_SUM'] : [])] : [];
}

/** Weight and bias bindings of a forward apply step, and their flags. */
export function affineBinds(weight: Tensor | null, bias: Tensor | null, extra: string[] = []): { affine: Bind[]; aflags: string[] } {
  const affine: Bind[] = [];
  const aflags = [...extra];
  if (weight) affine.push(tb('W', weight)), aflags.push('HAS_W');
  if (bias) affine.push(tb('B', bias)), aflags.push('HAS_B');
  return { affine, aflags };
}

/**
 * Whether a channel op's x is channels-last in memory: with one spatial element or one channel
 * both layouts are the same bytes, and the channels-first kernels run.
 */
export const channelsLast = (a: { channelsLast: boolean; S: number; C: number }): boolean => a.channelsLast && a.S > 1 && a.C > 1;

/**
 * The apply steps' index maps (apply.wgsl): element e uses the statistics (or coefficients) at
 * (e / statDiv) % statMod and the weight at (e / weightDiv) % weightMod. Written here once per
 * layout of x, not per planner.
 *
 * rowMaps: rows of K elements, one statistic per row, the weights per position in the row
 * (layer and RMS norm: the Grouping [1, 1, rows, K]).
 */
export const rowMaps = (rows: number, K: number) => ({ statDiv: Math.max(K, 1), statMod: Math.max(rows, 1), weightDiv: 1, weightMod: Math.max(K, 1) });

/**
 * channelMaps: channels-first x [N, C, S], one statistic per (n, group of C/G channels), the
 * weights per channel (group and instance norm: the Grouping [N, 1, G, (C/G)·S]; batch norm,
 * one statistic per channel over every sample: N = 1, G = C, as (e / S) % C wraps the samples).
 */
export const channelMaps = (N: number, C: number, S: number, G: number) => ({
  statDiv: Math.max((C / G) * S, 1),
  statMod: Math.max(N * G, 1),
  weightDiv: Math.max(S, 1),
  weightMod: Math.max(C, 1),
});

/** clMaps: channels-last x (see s_of in apply.wgsl): group (e / statDiv)*G + (e % C)/Cg, weight e % C. */
export const clMaps = (n: number, sampleSize: number, C: number, G: number) => ({ elements: n, statDiv: Math.max(sampleSize, 1), numGroups: G, channels: C, channelsPerGroup: C / G, weightDiv: 1, weightMod: C });

/** Partials of a grouped reduction (welford_partials / sumsq_partials) of x (+ residual). */
export function statsStep(
  x: Tensor,
  residual: Tensor | null,
  g: Grouping,
  entry: 'welford_partials' | 'sumsq_partials',
  part: GPUBuffer,
  ch: Chunks,
): Step {
  const binds = [tb('X', x)];
  if (residual) binds.push(tb('R', residual));
  binds.push(f32('PART', part, true));
  return {
    entry,
    flags: [...ch.flags, ...residualFlags(x, residual)],
    binds,
    p: { ...g, chunks: ch.chunks, chunkLength: ch.chunkLength, chunksPerRun: ch.chunksPerRun },
    workgroups: Math.ceil((g.groups * ch.chunks) / WG),
  };
}

/** The statistics outputs of meanVarSteps: mean, rstd and (batch norm) the running statistics to update. */
export interface StatsOut { mean: GPUBuffer; rstd: GPUBuffer; running?: Bind[] }

/** finalize_mean_rstd over P partials per group: mean, rstd, LO (and RUNNING updates). */
function finalizeStep(part: GPUBuffer, lo: GPUBuffer, D: number, P: number, out: StatsOut, p: { eps: number; momentum?: number }): Step {
  const running = out.running ?? [];
  return {
    entry: 'finalize_mean_rstd',
    flags: running.length ? ['RUNNING'] : [],
    binds: [f32('PART', part), f32('MEAN', out.mean, true), f32('RSTD', out.rstd, true), f32('LO', lo, true), ...running],
    p: { outputs: D, partials: P, eps: p.eps, momentum: p.momentum ?? 0, groupStride: P, partialStride: 1 },
    workgroups: Math.ceil(D / WG),
  };
}

/**
 * Mean and rstd of D groups of x (+ residual): the partials, their merge into mean, rstd (and
 * the running statistics), and LO for the apply step: the mean as (s, m) pairs, an unevaluated
 * sum (see accumulate.wgsl); the apply step takes MEAN_PAIR.
 */
export function meanVarSteps(
  g: Planner,
  x: Tensor,
  residual: Tensor | null,
  grp: Grouping,
  ch: Chunks,
  out: StatsOut,
  p: { eps: number; momentum?: number },
  temps: GPUBuffer[],
): { steps: Step[]; lo: GPUBuffer } {
  const part = g.temp(grp.groups * ch.chunks * 16, 'partials');
  const lo = g.temp(grp.groups * 8, 'lo');
  temps.push(part, lo);
  return { steps: [statsStep(x, residual, grp, 'welford_partials', part, ch), finalizeStep(part, lo, grp.groups, ch.chunks, out, p)], lo };
}

/** The partials step of a channels-last reduction (statistics of group b*G + ch/Cg). */
export function clReduceStep(ch: ClChunks, entry: 'channels_last_welford_partials' | 'channels_last_grad_partials', flags: string[], binds: Bind[], G: number, Cg: number, eps = 0): Step {
  return {
    entry,
    flags: [...ch.flags, ...flags],
    binds,
    p: { outer: ch.outer, runs: ch.runs, channels: ch.channels, chunks: ch.chunks, chunkLength: ch.chunkLength, numGroups: G, channelsPerGroup: Cg, eps },
    workgroups: Math.ceil((ch.outer * ch.chunks * Math.ceil(ch.channels / (ch.flags.includes('CL4') ? 4 : 1))) / WG),
  };
}

/**
 * Mean and rstd of channels-last groups (b, g) of Cg channels (batch norm: B = 1, Cg = 1): the
 * per-channel partials, merged per group (its Cg*P partials are contiguous), and LO for the
 * apply step (as meanVarSteps).
 */
export function clMeanVarSteps(g: Planner, x: Tensor, ch: ClChunks, G: number, out: StatsOut, p: { eps: number; momentum?: number }, temps: GPUBuffer[]): { steps: Step[]; lo: GPUBuffer } {
  const Cg = ch.channels / G;
  const D = ch.outer * G;
  const part = g.temp(ch.outer * ch.channels * ch.chunks * 16, 'partials');
  const lo = g.temp(D * 8, 'lo');
  temps.push(part, lo);
  return { steps: [clReduceStep(ch, 'channels_last_welford_partials', [], [tb('X', x), f32('PART', part, true)], G, Cg), finalizeStep(part, lo, D, Cg * ch.chunks, out, p)], lo };
}

/**
 * A per-group output (dweight, dbias, dg) written one element per invocation. float16 ones are
 * computed into an f32 temp and packed by a cast_half step appended to `post`, because two
 * halves share a u32 word and two invocations must not store into one word.
 */
export function groupOut(g: Planner, name: string, t: Tensor, temps: GPUBuffer[], post: Step[]): Bind {
  if (t.dtype === 'float32') return tb(name, t, true);
  const tmp = g.temp(t.size * 4, `${name}.f32`);
  temps.push(tmp);
  const words = Math.ceil(t.size / 2);
  post.push({
    entry: 'cast_half',
    flags: [],
    binds: [f32('SRC', tmp), { name: 'OUT', t: t._buffer!, dtype: 'float16', rw: true }],
    p: { outputs: words, elements: t.size },
    workgroups: Math.ceil(words / WG),
  });
  return f32(name, tmp, true);
}

/** dweight/dbias bindings for a finalize step, and the cast steps float16 ones need after it. */
export function gradOuts(g: Planner, dweight: Tensor | null, dbias: Tensor | null, temps: GPUBuffer[]): { dw: Bind | null; db: Bind | null; post: Step[] } {
  const post: Step[] = [];
  const dw = dweight && groupOut(g, 'DW', dweight, temps, post);
  const db = dbias && groupOut(g, 'DB', dbias, temps, post);
  return { dw, db, post };
}

/**
 * dweight/dbias of D groups (weight_bias_grads) from P partials each at
 * PART[4*(j*groupStride + c*partialStride)] (ACCUM: added to the stored values; a block of them
 * starts at its step's partialBegin).
 */
export function dwdbStep(part: GPUBuffer, D: number, P: number, groupStride: number, partialStride: number, dw: Bind | null, db: Bind | null, accum = false): Step {
  return {
    entry: 'weight_bias_grads',
    flags: [...(dw ? ['DW'] : []), ...(db ? ['DB'] : []), ...(accum ? ['ACCUM'] : [])],
    binds: [f32('PART', part), ...(dw ? [dw] : []), ...(db ? [db] : [])],
    p: { outputs: D, partials: P, groupStride, partialStride },
    workgroups: Math.ceil(D / WG),
  };
}

/** Backward on an empty x: empty dx; dweight/dbias are sums over nothing: 0 (no kernel runs). */
export function emptyBackward(g: Planner, a: { x: Tensor; weight: Tensor | null; bias: Tensor | null }): O.BwdOut {
  const zeros = (t: Tensor | null, label: string) => (t ? g.filled(t.shape, label, 0, t.dtype) : null);
  return { dx: g.alloc(a.x.shape, a.x.dtype, 'dx'), dweight: zeros(a.weight, 'dweight'), dbias: zeros(a.bias, 'dbias') };
}
