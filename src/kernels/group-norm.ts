/**
 * Group norm and instance norm on the GPU (PyTorch `group_norm`; `instance_norm` with batch
 * statistics is group norm with one channel per group): statistics per (n, g) over Cg = C/G
 * channels of S spatial elements. Forward: workgroup_rows_welford with per-channel weights
 * (GPU class, group in registers), fused_rows_welford (CPU class; GPU class, groups of fewer than
 * SHORT_ROW = 64 elements: policy.ts), or partials + merge +
 * normalize_elements; channels-last x ([N, *spatial, C]): channels_last_welford_partials.
 * Backward (both classes; no workgroup per group, so short groups need no other mapping: a short
 * (n, c) run is one chunk, one invocation): per-(n, c) sums of dy and dy·x̂ (grad_partials, grad_sums), per-(n, g)
 * coefficients (group_grad_coefficients), grad_elements; dweight/dbias sum the per-(n, c) sums
 * over n (weight_bias_grads).
 */
import * as O from '../ops.ts';
import type { GroupNormArgs, GroupNormBwdArgs, GroupNormOut, InstanceNormArgs, InstanceNormBwdArgs } from '../args/group-norm.ts';
import { instanceAsGroupNorm, instanceAsGroupNormBackward } from '../args/group-norm.ts';
import { WG } from './source.ts';
import { f32, tb, type Bind, type Planned, type Planner, type Step } from './plan.ts';
import { applyWorkgroups, chunks, clChunks, rowsKernel, wantFused, wantRows, windowed } from './policy.ts';
import { affineBinds, channelMaps, channelsLast, clMaps, clMeanVarSteps, clReduceStep, dwdbStep, emptyBackward, gradOuts, meanVarSteps } from './steps.ts';

export function instanceNorm(g: Planner, a: InstanceNormArgs): Planned<GroupNormOut> {
  return named('instanceNorm', groupNorm(g, instanceAsGroupNorm(a)));
}

export function instanceNormBackward(g: Planner, a: InstanceNormBwdArgs): Planned<O.BwdOut> {
  return named('instanceNormBackward', groupNormBackward(g, instanceAsGroupNormBackward(a)));
}

const named = <R>(op: string, r: Planned<R>): Planned<R> => ({ out: r.out, plan: r.plan && { ...r.plan, op } });

export function groupNorm(g: Planner, a: GroupNormArgs): Planned<GroupNormOut> {
  // Empty x (no samples, or groups of zero elements): as layerNorm, mean 0 and rstd NaN.
  if (a.x.size === 0) return { out: { y: g.alloc(a.x.shape, a.x.dtype, 'y'), mean: g.filled([a.N, a.G], 'mean', 0), rstd: g.filled([a.N, a.G], 'rstd', NaN) }, plan: null };
  const { x, N, C, S, G, weight, bias } = a;
  const y = g.alloc(x.shape, x.dtype, 'y');
  const mean = g.alloc([N, G], 'float32', 'mean');
  const rstd = g.alloc([N, G], 'float32', 'rstd');
  const D = N * G;
  const K = (C / G) * S;
  const win = windowed(g, x);
  const ch = chunks(g, 1, D, K, win, x.dtype);
  const { affine, aflags } = affineBinds(weight, bias, a.silu ? ['SILU'] : []);
  const steps: Step[] = [];
  const temps: GPUBuffer[] = [];
  const stats = { mean: mean._buffer!, rstd: rstd._buffer! };
  const rp = channelsLast(a) ? null : wantRows(g, K, x.dtype, win);
  if (channelsLast(a)) {
    // [N, *spatial, C]: per-channel partials over chunks of rows, merged per group.
    const mv = clMeanVarSteps(g, x, clChunks(g, N, S, C, win, x.dtype), G, stats, { eps: a.eps }, temps);
    steps.push(...mv.steps, {
      entry: 'normalize_elements',
      flags: ['MEAN_PAIR', 'CLAST', ...aflags],
      binds: [tb('X', x), ...affine, tb('Y', y, true), f32('LO', mv.lo), tb('RSTD', rstd)],
      p: clMaps(x.size, S * C, C, G),
      workgroups: applyWorkgroups(x.size),
    });
  } else if (rp) {
    // One workgroup per (n, g) group, the group (Cg channels of S contiguous elements) in
    // registers: one dispatch, x read once (rows.wgsl with per-channel weights, PER_CH).
    const rk = rowsKernel(g, rp, K);
    steps.push({
      entry: 'workgroup_rows_welford',
      flags: ['PER_CH', ...rk.flags, ...aflags],
      binds: [tb('X', x), ...affine, tb('Y', y, true), tb('MEAN', mean, true), tb('RSTD', rstd, true)],
      p: { runs: 1, groups: D, runLength: K, eps: a.eps, weightDiv: S, weightMod: C },
      workgroups: D,
      wg: rk.wg,
      enables: rk.enables,
    });
  } else if (wantFused(g, ch.chunks, K, x.dtype, win)) {
    steps.push({
      entry: 'fused_rows_welford',
      flags: aflags,
      binds: [tb('X', x), ...affine, tb('Y', y, true), tb('MEAN', mean, true), tb('RSTD', rstd, true)],
      p: { runs: 1, groups: D, runLength: K, eps: a.eps, ...channelMaps(N, C, S, G) },
      workgroups: Math.ceil(D / WG),
    });
  } else {
    const mv = meanVarSteps(g, x, null, { runs: 1, groups: D, runLength: K }, ch, stats, { eps: a.eps }, temps);
    steps.push(...mv.steps, {
      entry: 'normalize_elements',
      flags: ['MEAN_PAIR', ...aflags],
      binds: [tb('X', x), ...affine, tb('Y', y, true), f32('LO', mv.lo), tb('RSTD', rstd)],
      p: { elements: x.size, ...channelMaps(N, C, S, G) },
      workgroups: applyWorkgroups(x.size),
    });
  }
  return { out: { y, mean, rstd }, plan: { op: 'groupNorm', steps, temps, outputs: [y, mean, rstd] } };
}

export function groupNormBackward(g: Planner, a: GroupNormBwdArgs): Planned<O.BwdOut> {
  if (a.x.size === 0) return { out: emptyBackward(g, a), plan: null };
  const { dy, x, mean, rstd, N, C, S, G, weight, bias } = a;
  const dx = g.alloc(x.shape, x.dtype, 'dx');
  const dweight = weight ? g.alloc(weight.shape, weight.dtype, 'dweight') : null;
  const dbias = bias ? g.alloc(bias.shape, bias.dtype, 'dbias') : null;
  const Cg = C / G;
  const NC = N * C;
  // Sums of dy and dy*xhat per (n, c) over the spatial dims; everything else follows from them.
  // Channels last: the same partials per (n, c), from quads of channels over chunks of rows.
  const cl = channelsLast(a) ? clChunks(g, N, S, C, windowed(g, x), x.dtype) : null;
  const { chunks: P, chunkLength: L, chunksPerRun: Pi } = cl ? { chunks: cl.chunks, chunkLength: cl.chunkLength, chunksPerRun: 1 } : chunks(g, 1, NC, S, windowed(g, x), x.dtype);
  const part = g.temp(NC * P * 16, 'partials');
  // The per-(n, c) sums: with one partial per (n, c) the partials are the sums (grad_sums would
  // copy them, 0 + p = p); else grad_sums adds them up.
  const sums = P === 1 ? part : g.temp(NC * 16, 'sums');
  const coef = g.temp(N * G * 16, 'coef');
  const wb: Bind[] = weight ? [tb('W', weight)] : [];
  // Coefficients per (n, g) from the group's per-channel sums; a group whose sums are past
  // half a binding (windowed) in blocks of channels, added up (GN_BLOCK, ACCUM).
  const Bc = Cg * 16 > g.bindLimit / 2 ? Math.max(1, Math.floor((g.bindLimit / 2 - 256) / 16)) : Cg;
  // With dweight: each group's k * rstd (the saved mean's rounding, see finalize-grad.wgsl FIN_GN),
  // which weight_bias_grads takes out of the per-(n, c) sums (GN_KR).
  const kr = dweight ? g.temp(Math.max(N * G, 1) * 4, 'kr') : null;
  const krOut: Bind[] = kr ? [f32('KR', kr, true)] : [];
  const gnCoef: Step[] = [];
  for (let c0 = 0; c0 === 0 || c0 < Cg; c0 += Math.max(Bc, 1)) {
    gnCoef.push({
      entry: 'group_grad_coefficients',
      flags: [...(weight ? ['W_BY_J'] : []), ...(Bc < Cg ? ['GN_BLOCK'] : []), ...(c0 > 0 ? ['ACCUM'] : []), ...(kr ? ['GN_KR'] : [])],
      binds: [f32('PART', sums), ...wb, tb('MEAN', mean), tb('RSTD', rstd), f32('COEF', coef, true), ...krOut],
      p: { outputs: N * G, numGroups: G, channelsPerGroup: Cg, channels: C, channelBegin: c0, channelsPerBlock: Bc, spatial: S },
      workgroups: Math.ceil((N * G) / WG),
    });
  }
  const bwdBinds = [tb('DY', dy), tb('X', x), tb('MEAN', mean), tb('RSTD', rstd), f32('PART', part, true)];
  const steps: Step[] = [
    cl
      ? clReduceStep(cl, 'channels_last_grad_partials', ['HAS_MEAN', 'HAS_RSTD'], bwdBinds, G, Cg)
      : {
          entry: 'grad_partials',
          flags: ['HAS_MEAN', 'HAS_RSTD'],
          binds: bwdBinds,
          p: { runs: 1, groups: NC, runLength: S, chunks: P, chunkLength: L, chunksPerRun: Pi, groupsPerStat: Cg },
          workgroups: Math.ceil((NC * P) / WG),
        },
    ...(sums === part
      ? []
      : [{
          entry: 'grad_sums',
          flags: [],
          binds: [f32('PART', part), f32('OUT', sums, true)],
          p: { outputs: NC, partials: P, groupStride: P, partialStride: 1 },
          workgroups: Math.ceil(NC / WG),
        }]),
    ...gnCoef,
    {
      entry: 'grad_elements',
      flags: [...(weight ? ['HAS_W'] : []), ...(cl ? ['CLAST'] : [])],
      binds: [tb('DY', dy), tb('X', x), ...wb, f32('COEF', coef), tb('DX', dx, true)],
      p: cl ? clMaps(x.size, S * C, C, G) : { elements: x.size, ...channelMaps(N, C, S, G) },
      workgroups: applyWorkgroups(x.size),
    },
  ];
  const temps = [part, ...(sums === part ? [] : [sums]), coef, ...(kr ? [kr] : [])];
  if (dweight || dbias) {
    const { dw, db, post } = gradOuts(g, dweight, dbias, temps);
    // dweight/dbias sum the per-(n, c) sums over n: a strided read of all of them per channel.
    // Past half a binding: blocks of rows of the sums (each bound as a range by window.ts),
    // added up (ACCUM).
    const rowBytes = C * 16;
    // (One row per block when a row is past half a binding: then ranges of channels.)
    const Nb = Math.max(1, Math.floor((g.bindLimit / 2 - 256) / rowBytes));
    const sumsStep = (n1: number, accum: boolean): Step => {
      const st = dwdbStep(sums, C, n1, 1, C, dw, db, accum);
      if (kr) st.flags.push('GN_KR'), st.binds.push(f32('KR', kr)), (st.p = { ...st.p, numGroups: G, channelsPerGroup: Cg });
      return st;
    };
    if (N * rowBytes <= g.bindLimit || Nb >= N) steps.push(sumsStep(N, false));
    else {
      for (let n0 = 0; n0 < N; n0 += Nb) {
        const st = sumsStep(Math.min(N, n0 + Nb), n0 > 0);
        st.p.partialBegin = n0;
        steps.push(st);
      }
    }
    steps.push(...post);
  }
  return { out: { dx, dweight, dbias }, plan: { op: 'groupNormBackward', steps, temps, outputs: [dx, dweight, dbias] } };
}
