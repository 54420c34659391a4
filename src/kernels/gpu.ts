/**
 * The webgpu backend: every norm as a short sequence of the generic kernels
 * (reduce -> finalize -> apply, or one row-fused kernel), encoded into one command buffer.
 */
import { Tensor, elementBytes, numel, storageBytes, type DType } from '../tensor.ts';
import type * as O from '../ops.ts';
import type { Dispatch, GpuContext, KernelProfile } from '../device/context.ts';
import type { BindingDecl } from '../device/wgsl.ts';
import { kernel, params, WG, type Family, type ParamValues } from './source.ts';
import { LimitError, ValueError } from '../errors.ts';
import { packHalves, unpackHalves } from '../cpu/half.ts';
import { planWindows } from './window.ts';
import { kernelProfile, profileName } from './traffic.ts';

type Bind = { name: string; t: GPUBuffer; dtype: DType; rw?: boolean };
interface Step {
  family: Family;
  flags: string[];
  binds: Bind[];
  p: ParamValues;
  workgroups: number;
  /** Workgroup size when not WG (the one-workgroup-per-row kernel). */
  wg?: number;
  /** WGSL extensions the step's kernel enables ('subgroups'). */
  enables?: string[];
}

/**
 * The one-workgroup-per-row layer/RMS-norm forward (shaders/rows.wgsl) on GPU-class adapters:
 * the row in registers, NV quads per invocation. The rule, per adapter:
 * - WG: the largest power of two <= min(256, maxComputeInvocationsPerWorkgroup,
 *   maxComputeWorkgroupSizeX), and for short rows the smallest power of two >= ceil(K / 4)
 *   quads, but at least 64 (two or more warps/wavefronts, and a whole subgroup of any size).
 * - NV: the smallest power of two with 4 * NV * WG >= K; at most 8 for float32 (rows up to
 *   8192 with WG = 256: 32 floats of registers per invocation) and 16 for float16 (16384 halves).
 * - float16 rows of odd length are left to the other kernels (two rows would share a u32 word).
 * - Not for windowed ops (tensors past one storage binding) nor CPU adapters, whose invocations
 *   are SIMD lanes of one core and where barriers cost ~10x (they keep the row-fused kernels).
 * - Subgroup sums where the device has 'subgroups' (any subgroup size; the partials of
 *   WG / subgroupSize subgroups are summed from workgroup memory), else a workgroup tree.
 */
export function rowsPlan(limits: { maxComputeInvocationsPerWorkgroup: number; maxComputeWorkgroupSizeX: number }, K: number, dtype: DType): { wg: number; nv: number } | null {
  if (K < 1 || (dtype === 'float16' && K % 2 !== 0)) return null;
  const cap = Math.min(256, limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX);
  if (cap < 64) return null;
  const wgMax = 2 ** Math.floor(Math.log2(cap));
  const pow2 = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(n, 1)));
  const nq = Math.ceil(K / 4);
  const wg = Math.min(wgMax, Math.max(64, pow2(nq)));
  const nv = pow2(Math.ceil(nq / wg));
  return nv <= (dtype === 'float16' ? 16 : 8) ? { wg, nv } : null;
}

/**
 * Blocks of rows of the GPU-class layer/RMS-norm backward (rows.wgsl norm_rows_bwd): L rows per
 * workgroup, P = ceil(rows / L) workgroups. Without dweight/dbias one row each. With them each
 * block writes a column partial row (16 bytes per column, read again by FIN_DWDB: 32 bytes per
 * column and block), kept within 1/12 of the minimal traffic 3 * rows * K * elementBytes, so
 * P <= rows * elementBytes / 128 (float32: a block per 32 rows), at least 1 and at most 1024
 * (FIN_DWDB adds a column's partials in one invocation), and at most maxP (the partials, 16 * K
 * bytes per block, within one storage binding: the rows kernel is never windowed); null when not
 * even one block's partials fit.
 */
export function rowsBwdBlocks(rows: number, dtype: DType, cols: boolean, maxP = 1024): { L: number; P: number } | null {
  if (!cols) return { L: 1, P: Math.max(rows, 1) };
  if (maxP < 1) return null;
  const target = Math.max(1, Math.min(1024, maxP, Math.floor((rows * elementBytes(dtype)) / 128)));
  const L = Math.max(1, Math.ceil(rows / target));
  return { L, P: Math.max(1, Math.ceil(rows / L)) };
}

/**
 * How a grouped reduction is split into chunks: P chunks per group of L elements; with RUNS,
 * Pi chunks per contiguous run of `inner` elements (P = outer * Pi); `flags` add the chunk order
 * (CMAJOR) for windowed kernels. See reduce.wgsl and window.ts.
 */
interface Chunks { P: number; L: number; Pi: number; flags: string[] }

/** RESIDUAL (x + residual), and HALF_SUM: float16 sums are rounded to half, as the stored sum. */
function residualFlags(x: Tensor, residual: Tensor | null): string[] {
  return residual ? ['RESIDUAL', ...(x.dtype === 'float16' ? ['HALF_SUM'] : [])] : [];
}

/**
 * ALIGNED: quads of 4 elements at multiples of 4 never cross a statistics group (sDiv % 4 == 0)
 * nor a weight boundary (weights consecutive, A_VEC, or constant over the quad); see apply.wgsl.
 */
function alignFlags(s: Step, win = false): string[] {
  if (s.flags.includes('CLAST')) return clAlignFlags(s, win);
  const sDiv = s.p.sDiv ?? 1;
  const aDiv = s.p.aDiv ?? 1;
  const aMod = s.p.aMod ?? 1;
  const affine = s.flags.includes('HAS_W') || s.flags.includes('HAS_B');
  const wOk = !affine || (aDiv === 1 ? aMod % 4 === 0 : aDiv % 4 === 0);
  const out = sDiv % 4 === 0 && wOk ? ['ALIGNED'] : [];
  if (affine && aDiv === 1) out.push('A_VEC');
  // Blocks of 16 elements for the elementwise kernels (not the row-fused ones).
  const blockW = !affine || (aDiv === 1 ? aMod % 16 === 0 : aDiv % 16 === 0);
  if ((s.flags.includes('APPLY') || s.flags.includes('BWD_APPLY')) && sDiv % 16 === 0 && blockW) out.push('BLOCK');
  return out;
}

/**
 * alignFlags for channels-last steps (statistics index s = (e / sDiv)*G + (e % C)/Cg, weights
 * a = e % C): rows of whole quads (C % 4 == 0) make every quad ALIGNED with consecutive weights;
 * its statistics are one group's when Cg % 4 == 0, else per lane (S_LANES; S_VEC when each
 * channel is its own group). CL_BLOCK (elementwise kernels, not windowed): an invocation takes a
 * quad of channels in 4 rows of one sample (rows per sample a multiple of 4, or one sample), its
 * statistics and weights loaded once.
 */
function clAlignFlags(s: Step, win: boolean): string[] {
  const C = s.p.C ?? 1;
  const Cg = s.p.Cg ?? 1;
  const affine = s.flags.includes('HAS_W') || s.flags.includes('HAS_B');
  const out: string[] = affine ? ['A_VEC'] : [];
  if (C % 4 !== 0) return out;
  out.push('ALIGNED');
  if (Cg % 4 !== 0) out.push('S_LANES', ...(Cg === 1 ? ['S_VEC'] : []));
  const rows = (s.p.sDiv ?? 1) / C;
  const oneSample = (s.p.sDiv ?? 1) >= (s.p.n ?? 0);
  if ((s.flags.includes('APPLY') || s.flags.includes('BWD_APPLY')) && !win && (oneSample || rows % 4 === 0)) out.push('CL_BLOCK');
  return out;
}

/**
 * Channels-last statistics (reduce.wgsl CL_PARTIALS): x as B samples of R rows of C channels; P chunks
 * of L rows per sample; each invocation takes a quad of channels (CL4), or one channel in windowed
 * kernels (one partial per invocation, so bound ranges stay short).
 */
interface ClChunks { B: number; R: number; C: number; P: number; L: number; flags: string[] }

/** Weight and bias bindings of a forward apply step, and their flags. */
function affineBinds(weight: Tensor | null, bias: Tensor | null, extra: string[] = []): { affine: Bind[]; aflags: string[] } {
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
const channelsLast = (a: { channelsLast: boolean; S: number; C: number }): boolean => a.channelsLast && a.S > 1 && a.C > 1;

/** Apply-step index maps of channels-last x (see s_of in apply.wgsl): group (e / sDiv)*G + (e % C)/Cg, weight e % C. */
const clMaps = (n: number, sampleSize: number, C: number, G: number) => ({ n, sDiv: Math.max(sampleSize, 1), G, C, Cg: C / G, aDiv: 1, aMod: C });

const f32 = (name: string, t: GPUBuffer, rw = false): Bind => ({ name, t, dtype: 'float32', rw });
const tb = (name: string, t: Tensor, rw = false): Bind => ({ name, t: t._buffer!, dtype: t.dtype, rw });

/** Finalize modes that merge a group's partials in one invocation (finalize.wgsl `merged`). */
const MERGED = ['FIN_STATS', 'FIN_RMS', 'FIN_WN', 'FIN_BWD', 'FIN_BWD_WN', 'FIN_SUMS', 'FIN_DWDB'];

/** How a reduction of M elements per group over D groups is split into P chunks of L. */
export function chunking(ctx: GpuContext, D: number, M: number, minLength?: number): { P: number; L: number } {
  // CPU adapters: few, long invocations (each is a loop on a core), but enough of them to fill
  // several workgroups; GPUs: many threads.
  const target = ctx.isCpuAdapter ? 512 : 65536;
  const minL = minLength ?? (ctx.isCpuAdapter ? 2048 : 256);
  let P = Math.max(1, Math.ceil(target / Math.max(D, 1)));
  let L = Math.max(minL, Math.ceil(M / P), Math.ceil(M / 4096));
  L = Math.ceil(L / 4) * 4;
  P = Math.max(1, Math.ceil(M / L));
  // GPUs: at least a warp's worth of chunks per group (interleaved quad by quad, see reduce.wgsl)
  // while each chunk still has a few quads.
  if (!ctx.isCpuAdapter && P < 32 && M >= 64) {
    P = Math.min(32, Math.floor(M / 16));
    L = Math.ceil(Math.ceil(M / P) / 4) * 4;
    P = Math.ceil(M / L);
  }
  return { P, L };
}

export class GpuBackend implements O.Backend {
  readonly kind = 'webgpu' as const;
  /** Fill new outputs with NaN before the kernels run (tests: an unwritten element cannot pass). */
  poison = false;
  /** Force a path for tests: 'fused' | 'general' | 'auto'. */
  variant: 'auto' | 'fused' | 'general' = 'auto';

  /** Bytes of one storage binding (a multiple of 4): larger buffers are bound in ranges. */
  bindLimit: number;

  /** Tests: the one-workgroup-per-row forward on GPU-class adapters ('off': the split kernels). */
  rowsKernel: 'auto' | 'off' = 'auto';
  /** Tests: subgroup sums in that kernel where the device has 'subgroups' (false: the workgroup tree). */
  useSubgroups = true;

  /** Submit the batched ops now (tensor.buffer handed out). */
  private readonly flush = (): void => this.ctx.flush();

  constructor(readonly ctx: GpuContext, private readonly owner: object) {
    this.bindLimit = Math.floor(ctx.device.limits.maxStorageBufferBindingSize / 4) * 4;
  }

  setBindingLimit(bytes: number): void {
    const align = this.ctx.device.limits.minStorageBufferOffsetAlignment;
    if (!Number.isInteger(bytes) || bytes < 4 * align) throw new ValueError(`maxBindingBytes: ${bytes} must be an integer of at least ${4 * align} bytes (4 × minStorageBufferOffsetAlignment)`, 'maxBindingBytes');
    this.bindLimit = Math.min(this.bindLimit, Math.floor(bytes / 4) * 4);
  }

  /** Whether an op's tensor is past one binding: then the op runs with windowed kernels. */
  private windowed(t: Tensor): boolean {
    return storageBytes(t.size, t.dtype) > this.bindLimit;
  }

  /**
   * Chunks of a reduction of M = outer * inner elements per group over D groups. Windowed ops
   * (elements of `dtype` past one binding): chunks of at most an eighth of a binding; strided
   * groups (outer > 1) in chunk-major order, so consecutive invocations read a compact range,
   * and chunks within runs of `inner` (RUNS) when a slice of all groups is too big for that.
   */
  private chunks(outer: number, D: number, inner: number, win: boolean, dtype: DType, minLength?: number): Chunks {
    const M = outer * inner;
    let { P, L } = chunking(this.ctx, D, M, minLength);
    if (!win) return { P, L, Pi: 1, flags: [] };
    const eb = elementBytes(dtype);
    const maxL = Math.max(4, Math.floor(this.bindLimit / (8 * eb) / 4) * 4);
    if (L > maxL) (L = maxL), (P = Math.max(1, Math.ceil(M / L)));
    // (More partials per group than one invocation may bind are merged in blocks: mergeWide.)
    if (outer === 1) return { P, L, Pi: 1, flags: [] };
    // Chunk-major: chunk c of every group spans the slices o of all groups it covers, at most
    // ceil(L / inner) + 1 of them; keep that within half a binding.
    const slice = D * inner * eb;
    const Lc = Math.floor((Math.floor(this.bindLimit / 2 / slice) - 1) * inner / 4) * 4;
    if (Lc >= 4) {
      L = Math.min(L, Lc);
      return { P: Math.ceil(M / L), L, Pi: 1, flags: ['CMAJOR'] };
    }
    const Lr = Math.min(L, Math.ceil(inner / 4) * 4);
    const Pi = Math.ceil(inner / Lr);
    return { P: outer * Pi, L: Lr, Pi, flags: ['CMAJOR', 'RUNS'] };
  }

  /**
   * Chunks of a channels-last reduction over B samples of R rows of C channels: quads of
   * channels per invocation over chunks of rows (windowed: one channel, and a chunk's rows
   * within an eighth of a binding).
   */
  private clChunks(B: number, R: number, C: number, win: boolean, dtype: DType): ClChunks {
    const CW = win ? 1 : 4;
    // CPU adapters: a few hundred invocations (quads of channels); GPUs: as many chunks per
    // channel as a channel-first reduction of the same groups gets (at most ~1024 partials for
    // a finalize invocation to merge).
    const cpu = this.ctx.isCpuAdapter;
    let { P, L } = chunking(this.ctx, B * (cpu ? Math.ceil(C / CW) : C), R, cpu ? 512 : 64);
    if (win) {
      const maxL = Math.max(1, Math.floor(this.bindLimit / (8 * C * elementBytes(dtype))));
      if (L > maxL) (L = maxL), (P = Math.max(1, Math.ceil(R / L)));
    }
    const flags = ['CL_PARTIALS', ...(win ? [] : ['CL4']), ...(!win && C % 4 === 0 ? ['ALIGNED'] : [])];
    return { B, R, C, P, L, flags };
  }

  /** The reduce step of a channels-last reduction (WELFORD or BWD; statistics of group b*G + ch/Cg). */
  private clReduceStep(ch: ClChunks, acc: string[], binds: Bind[], G: number, Cg: number, eps = 0): Step {
    return {
      family: 'reduce',
      flags: [...ch.flags, ...acc],
      binds,
      p: { D: ch.B, outer: ch.R, C: ch.C, P: ch.P, L: ch.L, G, Cg, eps },
      workgroups: Math.ceil((ch.B * ch.P * Math.ceil(ch.C / (ch.flags.includes('CL4') ? 4 : 1))) / WG),
    };
  }

  /**
   * Mean and rstd of channels-last groups (b, g) of Cg channels (batch norm: B = 1, Cg = 1):
   * the per-channel partials, merged per group (its Cg*P partials are contiguous), and LO for
   * the apply step (as meanVarSteps).
   */
  private clMeanVarSteps(
    x: Tensor,
    ch: ClChunks,
    G: number,
    out: { mean: GPUBuffer; rstd: GPUBuffer; running?: Bind[] },
    p: { eps: number; momentum?: number },
    temps: GPUBuffer[],
  ): { steps: Step[]; lo: GPUBuffer } {
    const Cg = ch.C / G;
    const D = ch.B * G;
    const part = this.temp(ch.B * ch.C * ch.P * 16, 'partials');
    const lo = this.temp(D * 8, 'lo');
    temps.push(part, lo);
    const running = out.running ?? [];
    const steps: Step[] = [
      this.clReduceStep(ch, ['WELFORD'], [tb('X', x), f32('PART', part, true)], G, Cg),
      {
        family: 'finalize',
        flags: ['FIN_STATS', 'WELFORD', ...(running.length ? ['RUNNING'] : [])],
        binds: [f32('PART', part), f32('MEAN', out.mean, true), f32('RSTD', out.rstd, true), f32('LO', lo, true), ...running],
        p: { D, P: Cg * ch.P, eps: p.eps, momentum: p.momentum ?? 0, jStride: Cg * ch.P, cStride: 1 },
        workgroups: Math.ceil(D / WG),
      },
    ];
    return { steps, lo };
  }

  // ---- tensors ----

  private alloc(shape: readonly number[], dtype: DType, label: string): Tensor {
    const bytes = storageBytes(numel(shape), dtype);
    this.checkLimits(bytes, shape, label);
    const buf = this.ctx.createBuffer(bytes, `webgpu-norm.${label}[${shape.join('x')}]`);
    if (this.poison) this.ctx.writeBuffer(buf, 0, new Uint32Array(buf.size / 4).fill(0xffffffff));
    const t = new Tensor(this.owner, shape, dtype, { buffer: buf }, true);
    t._onDestroy = () => this.ctx.releaseBuffer(buf);
    t._onExport = () => this.ctx.disown(buf);
    this.made?.push(t);
    return t;
  }

  /**
   * Allocation transaction around one op: if the op throws after allocating (a temporary past a
   * device limit, say), everything it allocated is released, so a failed call leaves nothing.
   */
  private made: (Tensor | GPUBuffer)[] | null = null;
  transaction<R>(fn: () => R): R {
    const outer = this.made;
    this.made = [];
    try {
      return fn();
    } catch (e) {
      for (const m of this.made) {
        if (m instanceof Tensor) m.destroy();
        else this.ctx.releaseBuffer(m);
      }
      throw e;
    } finally {
      this.made = outer;
    }
  }

  /**
   * A tensor must fit one buffer (maxBufferSize); one past a storage binding is bound in ranges
   * (window.ts). Element indices are u32.
   */
  checkLimits(bytes: number, shape: readonly number[], label: string): void {
    const max = this.ctx.device.limits.maxBufferSize;
    if (bytes > max) throw new LimitError(`${label}: ${bytes} bytes for shape [${shape.join(', ')}] exceed the device's maxBufferSize ${max}`, label);
    if (numel(shape) > 0xfffffff0) throw new LimitError(`${label}: shape [${shape.join(', ')}] has 2^32 elements or more (indices are u32)`, label);
  }

  tensor(data: Float32Array, shape: readonly number[], dtype: DType): Tensor {
    const t = this.alloc(shape, dtype, 'data');
    const src = dtype === 'float16' ? packHalves(data) : data;
    this.ctx.writeBuffer(t._buffer!, 0, src);
    return t;
  }

  /** A new tensor holding `value` everywhere (closed-form outputs of ops on an empty x). */
  private filled(shape: readonly number[], label: string, value: number, dtype: DType = 'float32'): Tensor {
    const t = this.alloc(shape, dtype, label);
    if (t.size > 0) {
      const v = new Float32Array(t.size).fill(value);
      const src = dtype === 'float16' ? packHalves(v) : v;
      this.ctx.writeBuffer(t._buffer!, 0, src);
    }
    return t;
  }

  /** Backward on an empty x: empty dx; dweight/dbias are sums over nothing: 0 (no kernel runs). */
  private emptyBackward(a: { x: Tensor; weight: Tensor | null; bias: Tensor | null }): O.BwdOut {
    const zeros = (t: Tensor | null, label: string) => (t ? this.filled(t.shape, label, 0, t.dtype) : null);
    return { dx: this.alloc(a.x.shape, a.x.dtype, 'dx'), dweight: zeros(a.weight, 'dweight'), dbias: zeros(a.bias, 'dbias') };
  }

  wrap(buffer: GPUBuffer, shape: readonly number[], dtype: DType): Tensor {
    this.checkLimits(storageBytes(numel(shape), dtype), shape, 'buffer');
    const t = new Tensor(this.owner, shape, dtype, { buffer }, false);
    t._onExport = this.flush;
    return t;
  }

  async read(t: Tensor): Promise<Float32Array> {
    const bytes = storageBytes(t.size, t.dtype);
    if (t.size === 0) return new Float32Array(0);
    const ab = await this.ctx.readBytes(t._buffer!, bytes);
    return t.dtype === 'float16' ? unpackHalves(new Uint32Array(ab), t.size) : new Float32Array(ab);
  }

  // ---- encoding ----

  private temp(bytes: number, label: string): GPUBuffer {
    this.checkLimits(bytes, [bytes / 4], `temporary ${label}`);
    const b = this.ctx.createBuffer(bytes, `webgpu-norm.tmp.${label}`);
    this.made?.push(b);
    return b;
  }

  /** Run steps in one command buffer; temps are released after submission; outputs get the error promise. */
  private run(label: string, steps: Step[], temps: GPUBuffer[], outputs: (Tensor | null)[]): void {
    const dispatches: Dispatch[] = [];
    const kernels: KernelProfile[] | undefined = this.ctx.profiler ? [] : undefined;
    for (const s of this.mergeWide(steps, temps)) {
      // A buffer past one storage binding: the step is dispatched over bound ranges (window.ts).
      const win = s.binds.some((b) => b.t.size > this.bindLimit);
      // Reductions over groups whose contiguous runs have a length divisible by 4 only read quads
      // at multiples of 4 (chunk lengths are multiples of 4 too).
      if (s.family === 'reduce' && (s.p.inner ?? 1) % 4 === 0) s.flags = [...s.flags, 'ALIGNED'];
      // GPU-class adapters: chunks interleaved quad by quad (chunk c takes quads c, c + P, ... of
      // its group), so neighbouring invocations read neighbouring quads (coalesced loads); each
      // chunk then spans its whole group, so not in windowed kernels. Contiguous groups
      // (outer = 1: layer/RMS norm rows, group/instance norm groups, weight norm over dim 0), and
      // strided ones (batch-norm channels, weight-norm slices; STRIDED) whose runs of `inner`
      // hold whole quads (inner % 4 == 0); other strided groups keep contiguous chunks.
      const outer = s.p.outer ?? 1;
      const inner = s.p.inner ?? 1;
      if (s.family === 'reduce' && s.flags.includes('PARTIALS') && (outer === 1 || inner % 4 === 0) && !this.ctx.isCpuAdapter && !win) {
        s.flags = [...s.flags, 'INTERLEAVE', ...(outer > 1 ? ['STRIDED'] : [])];
      }
      if (s.family === 'apply') {
        s.flags = [...s.flags, ...alignFlags(s, win)];
        // Elementwise kernels: one invocation per quad, or per block of 4 quads.
        if (s.flags.includes('BLOCK')) s.workgroups = Math.ceil((s.p.n ?? 0) / (16 * WG));
        if (s.flags.includes('CL_BLOCK')) s.workgroups = Math.ceil((Math.ceil((s.p.n ?? 0) / (4 * s.p.C!)) * s.p.C!) / 4 / WG);
      }
      if (win) s.flags = [...s.flags, 'WINDOW'];
      const k = kernel(
        this.ctx,
        s.family,
        s.flags,
        s.binds.map((b): BindingDecl => ({ name: b.name, access: b.rw ? 'read_write' : 'read', dtype: b.dtype })),
        { workgroupSize: s.wg, enables: s.enables },
      );
      if (!win) {
        dispatches.push({ kernel: k, buffers: s.binds.map((b) => b.t), params: params(s.p), workgroups: s.workgroups });
        if (kernels && s.workgroups > 0) kernels.push(kernelProfile(s, k.label, s.workgroups));
        continue;
      }
      if (s.workgroups === 0) continue;
      for (const w of planWindows(s, this.bindLimit, this.ctx.device.limits.minStorageBufferOffsetAlignment, label)) {
        const wg = Math.ceil((w.t1 - w.t0) / WG);
        dispatches.push({ kernel: k, buffers: w.buffers, params: params({ ...s.p, ...w.params }), workgroups: wg });
        if (kernels && wg > 0) kernels.push(kernelProfile(s, k.label, wg, w.params.e0!, w.params.e1!));
      }
    }
    let done: Promise<void>;
    try {
      done = this.ctx.submit(label, dispatches, kernels);
    } finally {
      for (const t of temps) this.ctx.releaseBuffer(t);
    }
    done.catch(() => {});
    for (const o of outputs) if (o) o._pending = done;
  }

  /**
   * Finalize steps whose groups have more partials than one invocation may bind (half a binding;
   * windowed ops with many chunks per group): blocks of partials are merged into partials of
   * partials first (FIN_MERGE, as often as needed), and the step reads those.
   */
  private mergeWide(steps: Step[], temps: GPUBuffer[]): Step[] {
    const half = this.bindLimit / 2;
    const out: Step[] = [];
    for (const s of steps) {
      const k = s.binds.findIndex((b) => b.name === 'PART');
      const P = s.p.P ?? 1;
      const merges = s.family === 'finalize' && k >= 0 && MERGED.some((f) => s.flags.includes(f));
      if (merges && P * 16 > half && (s.p.cStride ?? 1) === 1 && (s.p.jStride ?? 1) === P && !s.p.c0) {
        const D = s.p.D ?? 1;
        const B = Math.max(2, Math.floor(half / 16));
        let part = s.binds[k]!.t;
        let cur = P;
        while (cur * 16 > half) {
          const P2 = Math.ceil(cur / B);
          const next = this.temp(D * P2 * 16, 'merged');
          temps.push(next);
          out.push({
            family: 'finalize',
            flags: ['FIN_MERGE', ...s.flags.filter((f) => f === 'WELFORD' || f === 'SUMSQ')],
            binds: [f32('PART', part), f32('OUT', next, true)],
            p: { D: D * P2, P: cur, L: B, Pi: P2, jStride: cur, cStride: 1 },
            workgroups: Math.ceil((D * P2) / WG),
          });
          part = next;
          cur = P2;
        }
        s.binds = s.binds.map((b, i) => (i === k ? f32('PART', part) : b));
        s.p = { ...s.p, P: cur, jStride: cur };
      }
      out.push(s);
    }
    return out;
  }

  /** Partials of a grouped reduction (stats: WELFORD / SUMSQ) of x (+ residual). */
  private statsStep(
    x: Tensor,
    residual: Tensor | null,
    g: { outer: number; D: number; inner: number },
    acc: 'WELFORD' | 'SUMSQ',
    part: GPUBuffer,
    ch: Chunks,
  ): Step {
    const binds = [tb('X', x)];
    if (residual) binds.push(tb('R', residual));
    binds.push(f32('PART', part, true));
    return {
      family: 'reduce',
      flags: ['PARTIALS', acc, ...ch.flags, ...residualFlags(x, residual)],
      binds,
      p: { outer: g.outer, D: g.D, inner: g.inner, P: ch.P, L: ch.L, Pi: ch.Pi },
      workgroups: Math.ceil((g.D * ch.P) / WG),
    };
  }

  /**
   * Mean and rstd of D groups of x (+ residual): the partials, their merge into mean, rstd (and
   * the running statistics), and LO for the COMP apply step: the mean as (s, m) pairs, an
   * unevaluated sum (see reduce.wgsl). Returns the steps and LO; the flags the apply step needs
   * are in `applyFlags`.
   */
  private meanVarSteps(
    x: Tensor,
    residual: Tensor | null,
    g: { outer: number; D: number; inner: number },
    ch: Chunks,
    out: { mean: GPUBuffer; rstd: GPUBuffer; running?: Bind[] },
    p: { eps: number; momentum?: number },
    temps: GPUBuffer[],
  ): { steps: Step[]; lo: GPUBuffer; applyFlags: string[] } {
    const part = this.temp(g.D * ch.P * 16, 'partials');
    const lo = this.temp(g.D * 8, 'lo');
    temps.push(part, lo);
    const steps: Step[] = [this.statsStep(x, residual, g, 'WELFORD', part, ch)];
    const running = out.running ?? [];
    steps.push({
      family: 'finalize',
      flags: ['FIN_STATS', 'WELFORD', ...(running.length ? ['RUNNING'] : [])],
      binds: [f32('PART', part), f32('MEAN', out.mean, true), f32('RSTD', out.rstd, true), f32('LO', lo, true), ...running],
      p: { D: g.D, P: ch.P, eps: p.eps, momentum: p.momentum ?? 0, jStride: ch.P, cStride: 1 },
      workgroups: Math.ceil(g.D / WG),
    });
    return { steps, lo, applyFlags: ['COMP'] };
  }

  /**
   * A per-group output (dweight, dbias, dg) written one element per invocation. float16 ones are
   * computed into an f32 temp and packed by a FIN_CAST step appended to `post`, because two
   * halves share a u32 word and two invocations must not store into one word.
   */
  private groupOut(name: string, t: Tensor, temps: GPUBuffer[], post: Step[]): Bind {
    if (t.dtype === 'float32') return tb(name, t, true);
    const tmp = this.temp(t.size * 4, `${name}.f32`);
    temps.push(tmp);
    const words = Math.ceil(t.size / 2);
    post.push({
      family: 'finalize',
      flags: ['FIN_CAST'],
      binds: [f32('SRC', tmp), { name: 'OUT', t: t._buffer!, dtype: 'float16', rw: true }],
      p: { D: words, n: t.size },
      workgroups: Math.ceil(words / WG),
    });
    return f32(name, tmp, true);
  }

  /** Elementwise kernels: one invocation per quad of 4 elements. */
  /** dweight/dbias bindings for a finalize step, and the cast steps float16 ones need after it. */
  private gradOuts(dweight: Tensor | null, dbias: Tensor | null, temps: GPUBuffer[]): { dw: Bind | null; db: Bind | null; post: Step[] } {
    const post: Step[] = [];
    const dw = dweight && this.groupOut('DW', dweight, temps, post);
    const db = dbias && this.groupOut('DB', dbias, temps, post);
    return { dw, db, post };
  }

  private applyWorkgroups(n: number): number {
    return Math.ceil(n / (4 * WG));
  }

  /** The one-workgroup-per-row forward (see rowsPlan): GPU-class adapters, variant 'auto', not windowed. */
  private wantRows(K: number, dtype: DType, win: boolean): { wg: number; nv: number } | null {
    if (this.ctx.isCpuAdapter || this.variant !== 'auto' || this.rowsKernel === 'off' || win) return null;
    return rowsPlan(this.ctx.device.limits, K, dtype);
  }

  private wantFused(P: number, inner: number, dtype: DType, win: boolean): boolean {
    // Windowed ops: row-fused kernels bind whole rows, so a row must be a small part of a binding.
    if (this.variant === 'general' || (win && inner * elementBytes(dtype) * 8 > this.bindLimit)) return false;
    const ok = dtype === 'float32' || inner % 2 === 0;
    if (this.variant === 'fused') return ok;
    return ok && P === 1 && this.ctx.isCpuAdapter;
  }

  // ---- layer norm and RMS norm (rows) ----

  layerNorm(a: O.LayerNormArgs): O.LayerNormOut {
    const r = this.rowNorm(a, 'meanVar');
    return { ...r, mean: r.mean! };
  }

  rmsNorm(a: O.RmsNormArgs): O.RmsNormOut {
    const { y, rstd, sum } = this.rowNorm({ ...a, bias: null }, 'rms');
    return { y, rstd, sum };
  }

  layerNormBackward(a: O.LayerNormBwdArgs): O.BwdOut {
    return this.rowNormBackward(a, 'meanVar');
  }

  rmsNormBackward(a: O.RmsNormBwdArgs): O.RmsNormBwdOut {
    const { dx, dweight } = this.rowNormBackward({ ...a, mean: null, bias: null }, 'rms');
    return { dx, dweight };
  }

  private rowNorm(a: Omit<O.LayerNormArgs, 'rms'>, stat: 'meanVar' | 'rms'): { y: Tensor; mean: Tensor | null; rstd: Tensor; sum: Tensor | null } {
    const rms = stat === 'rms';
    // Empty x (no rows, or rows of zero elements): no kernel runs; the statistics are those of a
    // reduction over nothing, as in PyTorch: mean 0, rstd NaN (variance or mean square 0/0).
    if (a.x.size === 0) {
      const e = (label: string) => this.alloc(a.x.shape, a.x.dtype, label);
      return { y: e('y'), mean: rms ? null : this.filled(a.statShape, 'mean', 0), rstd: this.filled(a.statShape, 'rstd', NaN), sum: a.residual ? e('sum') : null };
    }
    const { x, residual, weight, bias, rows, K } = a;
    const y = this.alloc(x.shape, x.dtype, 'y');
    const mean = rms ? null : this.alloc(a.statShape, 'float32', 'mean');
    const rstd = this.alloc(a.statShape, 'float32', 'rstd');
    const sum = residual ? this.alloc(x.shape, x.dtype, 'sum') : null;
    const acc = rms ? 'SUMSQ' : 'WELFORD';
    const win = this.windowed(x);
    const ch = this.chunks(1, rows, K, win, x.dtype);
    const { affine, aflags } = affineBinds(weight, bias);
    const resid = residualFlags(x, residual);
    const xr: Bind[] = [tb('X', x), ...(residual ? [tb('R', residual)] : [])];
    const outB: Bind[] = [tb('Y', y, true), ...(sum ? [tb('S', sum, true)] : [])];
    const steps: Step[] = [];
    const temps: GPUBuffer[] = [];
    const rp = this.wantRows(K, x.dtype, win);
    if (rp) {
      // One workgroup per row, the row in registers: one dispatch, x read once (rows.wgsl).
      const sub = this.useSubgroups && this.ctx.device.features.has('subgroups');
      steps.push({
        family: 'rows',
        flags: [acc, `NV${rp.nv}`, ...aflags, ...resid, ...(sub ? ['SUBGROUPS'] : []), ...(K % 4 === 0 ? ['ALIGNED'] : [])],
        binds: [...xr, ...affine, ...outB, ...(mean ? [tb('MEAN', mean, true)] : []), tb('RSTD', rstd, true)],
        p: { outer: 1, D: rows, inner: K, eps: a.eps },
        workgroups: rows,
        wg: rp.wg,
        enables: sub ? ['subgroups'] : [],
      });
    } else if (this.wantFused(ch.P, K, x.dtype, win)) {
      steps.push({
        family: 'apply',
        flags: ['ROWFUSED', acc, ...aflags, ...resid],
        binds: [...xr, ...affine, ...outB, ...(mean ? [tb('MEAN', mean, true)] : []), tb('RSTD', rstd, true)],
        p: { outer: 1, D: rows, inner: K, eps: a.eps, sDiv: K, sMod: Math.max(rows, 1), aDiv: 1, aMod: K },
        workgroups: Math.ceil(rows / WG),
      });
    } else {
      const g = { outer: 1, D: rows, inner: K };
      let lo: GPUBuffer | null = null;
      let sflags: string[] = [];
      if (rms) {
        const part = this.temp(rows * ch.P * 16, 'partials');
        temps.push(part);
        steps.push(this.statsStep(x, residual, g, acc, part, ch));
        steps.push({
          family: 'finalize',
          flags: ['FIN_RMS', 'SUMSQ'],
          binds: [f32('PART', part), tb('RSTD', rstd, true)],
          p: { D: rows, P: ch.P, jStride: ch.P, cStride: 1, eps: a.eps },
          workgroups: Math.ceil(rows / WG),
        });
      } else {
        const mv = this.meanVarSteps(x, residual, g, ch, { mean: mean!._buffer!, rstd: rstd._buffer! }, { eps: a.eps }, temps);
        steps.push(...mv.steps);
        lo = mv.lo;
        sflags = mv.applyFlags;
      }
      steps.push({
        family: 'apply',
        flags: ['APPLY', ...aflags, ...resid, ...sflags],
        binds: [...xr, ...affine, ...outB, ...(lo ? [f32('LO', lo)] : []), tb('RSTD', rstd)],
        p: { n: x.size, sDiv: K, sMod: Math.max(rows, 1), aDiv: 1, aMod: K },
        workgroups: this.applyWorkgroups(x.size),
      });
    }
    this.run(rms ? 'rmsNorm' : 'layerNorm', steps, temps, [y, mean, rstd, sum]);
    return { y, mean, rstd, sum };
  }

  private rowNormBackward(a: Omit<O.LayerNormBwdArgs, 'mean'> & { mean: Tensor | null }, stat: 'meanVar' | 'rms'): O.BwdOut {
    if (a.x.size === 0) return this.emptyBackward(a);
    const { dy, x, mean, rstd, weight, bias, rows, K } = a;
    const dx = this.alloc(x.shape, x.dtype, 'dx');
    const dweight = weight ? this.alloc(weight.shape, weight.dtype, 'dweight') : null;
    const dbias = bias ? this.alloc(bias.shape, bias.dtype, 'dbias') : null;
    const steps: Step[] = [];
    const temps: GPUBuffer[] = [];
    const stats: Bind[] = [...(mean ? [tb('MEAN', mean)] : []), tb('RSTD', rstd)];
    const sflags = [...(mean ? ['HAS_MEAN'] : []), 'HAS_RSTD'];
    const wb: Bind[] = weight ? [tb('W', weight)] : [];
    const win = this.windowed(x);
    const cols = !!(dweight || dbias);
    // (The column partials within one binding: the rows kernel is not windowed.)
    const rp = this.wantRows(K, x.dtype, win);
    const blocks = rp && rowsBwdBlocks(rows, x.dtype, cols, cols ? Math.floor(this.bindLimit / (16 * K)) : rows);
    if (rp && blocks) {
      // One workgroup per block of rows, x and dy in registers (rows.wgsl norm_rows_bwd); the
      // blocks' column partials added up per column by FIN_DWDB.
      const { L: RB, P: nb } = blocks;
      const sub = this.useSubgroups && this.ctx.device.features.has('subgroups');
      const part = cols ? this.temp(K * nb * 16, 'colpartials') : null;
      if (part) temps.push(part);
      steps.push({
        family: 'rows',
        flags: ['ROWS_BWD', `NV${rp.nv}`, ...(mean ? ['HAS_MEAN'] : []), ...(weight ? ['HAS_W'] : []), ...(cols ? ['DWDB'] : []), ...(sub ? ['SUBGROUPS'] : []), ...(K % 4 === 0 ? ['ALIGNED'] : [])],
        binds: [tb('DY', dy), tb('X', x), ...wb, ...stats, tb('DX', dx, true), ...(part ? [f32('PART', part, true)] : [])],
        p: { outer: 1, D: rows, inner: K, L: RB, P: nb },
        workgroups: nb,
        wg: rp.wg,
        enables: sub ? ['subgroups'] : [],
      });
      if (part) {
        const { dw, db, post } = this.gradOuts(dweight, dbias, temps);
        steps.push(this.dwdbStep(part, K, nb, nb, 1, dw, db), ...post);
      }
      this.run(stat === 'rms' ? 'rmsNormBackward' : 'layerNormBackward', steps, temps, [dx, dweight, dbias]);
      return { dx, dweight, dbias };
    }
    const { P, L, Pi } = this.chunks(1, rows, K, win, x.dtype);
    const fused = this.wantFused(P, K, x.dtype, win);
    // Row-fused with dweight/dbias: blocks of RB rows per invocation also sum the columns of
    // their block (COLS_FUSED), instead of a separate pass over dy and x. Only with rows enough
    // for blocks of 8..16 rows and still a few hundred invocations, and rows of whole quads.
    const RB = Math.min(16, Math.floor(rows / 256));
    const colsFused = fused && (dweight || dbias) && K % 4 === 0 && RB >= 8 && !win;
    // With a separate dweight/dbias pass (COLS), the rows' mean corrections k (the saved mean's
    // rounding, recovered from the row sums: see FIN_BWD) go to it through CORR.
    const corr = mean && (dweight || dbias) && !colsFused ? this.temp(Math.max(rows, 1) * 4, 'corr') : null;
    if (corr) temps.push(corr);
    const corrOut: Bind[] = corr ? [f32('CORR', corr, true)] : [];
    const corrFlag = corr ? ['HAS_CORR'] : [];
    if (fused) {
      const step: Step = {
        family: 'apply',
        flags: ['BWD_ROWFUSED', 'BWD', ...sflags, ...corrFlag, ...(weight ? ['HAS_W', 'W_BY_I'] : [])],
        binds: [tb('DY', dy), tb('X', x), ...wb, ...stats, tb('DX', dx, true), ...corrOut],
        p: { outer: 1, D: rows, inner: K, gDiv: 1, sDiv: K, sMod: Math.max(rows, 1), aDiv: 1, aMod: K },
        workgroups: Math.ceil(rows / WG),
      };
      steps.push(step);
      if (colsFused) {
        // One invocation per block of RB rows, also writing its block's column partials.
        const nb = Math.ceil(rows / RB);
        const part = this.temp(K * nb * 16, 'colpartials');
        temps.push(part);
        step.flags.push('COLS_FUSED');
        step.binds.push(f32('PART', part, true));
        step.p = { ...step.p, L: RB, P: nb };
        step.workgroups = Math.ceil(nb / WG);
        const { dw, db, post } = this.gradOuts(dweight, dbias, temps);
        steps.push(this.dwdbStep(part, K, nb, nb, 1, dw, db), ...post);
      }
    } else {
      const part = this.temp(rows * P * 16, 'partials');
      const coef = this.temp(rows * 16, 'coef');
      temps.push(part, coef);
      steps.push({
        family: 'reduce',
        flags: ['PARTIALS', 'BWD', ...sflags, ...(weight ? ['W_BY_I'] : [])],
        binds: [tb('DY', dy), tb('X', x), ...wb, ...stats, f32('PART', part, true)],
        p: { outer: 1, D: rows, inner: K, P, L, Pi, gDiv: 1, aMod: 1 },
        workgroups: Math.ceil((rows * P) / WG),
      });
      steps.push({
        family: 'finalize',
        flags: ['FIN_BWD', ...(mean ? ['HAS_MEAN'] : []), ...corrFlag],
        binds: [f32('PART', part), ...(mean ? [tb('MEAN', mean)] : []), tb('RSTD', rstd), f32('COEF', coef, true), ...corrOut],
        p: { D: rows, P, jStride: P, cStride: 1 },
        workgroups: Math.ceil(rows / WG),
      });
      steps.push({
        family: 'apply',
        flags: ['BWD_APPLY', ...(weight ? ['HAS_W'] : [])],
        binds: [tb('DY', dy), tb('X', x), ...wb, f32('COEF', coef), tb('DX', dx, true)],
        p: { n: x.size, sDiv: K, sMod: Math.max(rows, 1), aDiv: 1, aMod: K },
        workgroups: this.applyWorkgroups(x.size),
      });
    }
    if ((dweight || dbias) && !colsFused) {
      // Columns, 16 (K % 16 == 0) or 4 per invocation, over chunks of rows; statistics per row.
      const cw = K % 16 === 0 ? 16 : 4;
      const nq = Math.ceil(K / cw);
      // Each step of a column block's loop reads cw values of two rows: short chunks suffice.
      let c = chunking(this.ctx, nq, rows, 64);
      let blockRows = rows;
      // Windowed: chunks of rows within an eighth of a binding, and blocks of rows with few
      // enough chunks that one invocation's partials (cw columns, P apart) fit half of one; the
      // blocks' dweight/dbias are added up (ACCUM).
      if (win) {
        const maxP = Math.max(1, Math.floor(this.bindLimit / (32 * cw)));
        const L = Math.max(1, Math.min(c.L, Math.floor(this.bindLimit / (8 * K * elementBytes(x.dtype)))));
        blockRows = Math.min(rows, L * maxP);
        c = { L, P: Math.ceil(blockRows / L) };
      }
      const part = this.temp(K * c.P * 16, 'colpartials');
      temps.push(part);
      const { dw, db, post } = this.gradOuts(dweight, dbias, temps);
      // (At least one block: zero rows still write dweight = dbias = 0.)
      for (let r0 = 0; r0 === 0 || r0 < rows; r0 += Math.max(blockRows, 1)) {
        const r1 = Math.min(rows, r0 + blockRows);
        const P = Math.ceil((r1 - r0) / c.L);
        steps.push({
          family: 'reduce',
          flags: ['COLS', ...sflags, ...corrFlag, ...(cw === 16 ? ['BLOCK'] : [])],
          binds: [tb('DY', dy), tb('X', x), ...stats, ...(corr ? [f32('CORR', corr)] : []), f32('PART', part, true)],
          p: { outer: r1, c0: r0, inner: K, P, L: c.L },
          workgroups: Math.ceil((nq * P) / WG),
        });
        steps.push(this.dwdbStep(part, K, P, P, 1, dw, db, r0 > 0));
      }
      steps.push(...post);
    }
    this.run(stat === 'rms' ? 'rmsNormBackward' : 'layerNormBackward', steps, temps, [dx, dweight, dbias]);
    return { dx, dweight, dbias };
  }

  /** dweight/dbias of D groups from partials c in [c0, P) (ACCUM: added to the stored values). */
  private dwdbStep(part: GPUBuffer, D: number, P: number, jStride: number, cStride: number, dw: Bind | null, db: Bind | null, accum = false): Step {
    return {
      family: 'finalize',
      flags: ['FIN_DWDB', ...(dw ? ['DW'] : []), ...(db ? ['DB'] : []), ...(accum ? ['ACCUM'] : [])],
      binds: [f32('PART', part), ...(dw ? [dw] : []), ...(db ? [db] : [])],
      p: { D, P, jStride, cStride },
      workgroups: Math.ceil(D / WG),
    };
  }

  // ---- group norm (and instance norm, G = C) ----

  groupNorm(a: O.GroupNormArgs): O.GroupNormOut {
    // Empty x (no samples, or groups of zero elements): as layerNorm, mean 0 and rstd NaN.
    if (a.x.size === 0) return { y: this.alloc(a.x.shape, a.x.dtype, 'y'), mean: this.filled([a.N, a.G], 'mean', 0), rstd: this.filled([a.N, a.G], 'rstd', NaN) };
    const { x, N, C, S, G, weight, bias } = a;
    const y = this.alloc(x.shape, x.dtype, 'y');
    const mean = this.alloc([N, G], 'float32', 'mean');
    const rstd = this.alloc([N, G], 'float32', 'rstd');
    const D = N * G;
    const K = (C / G) * S;
    const win = this.windowed(x);
    const ch = this.chunks(1, D, K, win, x.dtype);
    const { affine, aflags } = affineBinds(weight, bias, a.silu ? ['SILU'] : []);
    const steps: Step[] = [];
    const temps: GPUBuffer[] = [];
    const rp = channelsLast(a) ? null : this.wantRows(K, x.dtype, win);
    if (channelsLast(a)) {
      // [N, *spatial, C]: per-channel partials over chunks of rows, merged per group.
      const mv = this.clMeanVarSteps(x, this.clChunks(N, S, C, win, x.dtype), G, { mean: mean._buffer!, rstd: rstd._buffer! }, { eps: a.eps }, temps);
      steps.push(...mv.steps, {
        family: 'apply',
        flags: ['APPLY', 'COMP', 'CLAST', ...aflags],
        binds: [tb('X', x), ...affine, tb('Y', y, true), f32('LO', mv.lo), tb('RSTD', rstd)],
        p: clMaps(x.size, S * C, C, G),
        workgroups: this.applyWorkgroups(x.size),
      });
    } else if (rp) {
      // One workgroup per (n, g) group, the group (Cg channels of S contiguous elements) in
      // registers: one dispatch, x read once (rows.wgsl with per-channel weights, PER_CH).
      const sub = this.useSubgroups && this.ctx.device.features.has('subgroups');
      steps.push({
        family: 'rows',
        flags: ['WELFORD', 'PER_CH', `NV${rp.nv}`, ...aflags, ...(sub ? ['SUBGROUPS'] : []), ...(K % 4 === 0 ? ['ALIGNED'] : [])],
        binds: [tb('X', x), ...affine, tb('Y', y, true), tb('MEAN', mean, true), tb('RSTD', rstd, true)],
        p: { outer: 1, D, inner: K, eps: a.eps, aDiv: S, aMod: C },
        workgroups: D,
        wg: rp.wg,
        enables: sub ? ['subgroups'] : [],
      });
    } else if (this.wantFused(ch.P, K, x.dtype, win)) {
      steps.push({
        family: 'apply',
        flags: ['ROWFUSED', 'WELFORD', ...aflags],
        binds: [tb('X', x), ...affine, tb('Y', y, true), tb('MEAN', mean, true), tb('RSTD', rstd, true)],
        p: { outer: 1, D, inner: K, eps: a.eps, sDiv: K, sMod: Math.max(D, 1), aDiv: S, aMod: C },
        workgroups: Math.ceil(D / WG),
      });
    } else {
      const mv = this.meanVarSteps(x, null, { outer: 1, D, inner: K }, ch, { mean: mean._buffer!, rstd: rstd._buffer! }, { eps: a.eps }, temps);
      steps.push(...mv.steps);
      steps.push({
        family: 'apply',
        flags: ['APPLY', ...mv.applyFlags, ...aflags],
        binds: [tb('X', x), ...affine, tb('Y', y, true), f32('LO', mv.lo), tb('RSTD', rstd)],
        p: { n: x.size, sDiv: K, sMod: Math.max(D, 1), aDiv: S, aMod: C },
        workgroups: this.applyWorkgroups(x.size),
      });
    }
    this.run('groupNorm', steps, temps, [y, mean, rstd]);
    return { y, mean, rstd };
  }

  groupNormBackward(a: O.GroupNormBwdArgs): O.BwdOut {
    if (a.x.size === 0) return this.emptyBackward(a);
    const { dy, x, mean, rstd, N, C, S, G, weight, bias } = a;
    const dx = this.alloc(x.shape, x.dtype, 'dx');
    const dweight = weight ? this.alloc(weight.shape, weight.dtype, 'dweight') : null;
    const dbias = bias ? this.alloc(bias.shape, bias.dtype, 'dbias') : null;
    const Cg = C / G;
    const NC = N * C;
    // Sums of dy and dy*xhat per (n, c) over the spatial dims; everything else follows from them.
    // Channels last: the same partials per (n, c), from quads of channels over chunks of rows.
    const cl = channelsLast(a) ? this.clChunks(N, S, C, this.windowed(x), x.dtype) : null;
    const { P, L, Pi } = cl ? { P: cl.P, L: cl.L, Pi: 1 } : this.chunks(1, NC, S, this.windowed(x), x.dtype);
    const part = this.temp(NC * P * 16, 'partials');
    const sums = this.temp(NC * 16, 'sums');
    const coef = this.temp(N * G * 16, 'coef');
    const wb: Bind[] = weight ? [tb('W', weight)] : [];
    // Coefficients per (n, g) from the group's per-channel sums; a group whose sums are past
    // half a binding (windowed) in blocks of channels, added up (GN_BLOCK, ACCUM).
    const Bc = Cg * 16 > this.bindLimit / 2 ? Math.max(1, Math.floor((this.bindLimit / 2 - 256) / 16)) : Cg;
    const gnCoef: Step[] = [];
    for (let c0 = 0; c0 === 0 || c0 < Cg; c0 += Math.max(Bc, 1)) {
      gnCoef.push({
        family: 'finalize',
        flags: ['FIN_GN', ...(weight ? ['W_BY_J'] : []), ...(Bc < Cg ? ['GN_BLOCK'] : []), ...(c0 > 0 ? ['ACCUM'] : [])],
        binds: [f32('PART', sums, Bc >= Cg), ...wb, tb('MEAN', mean), tb('RSTD', rstd), f32('COEF', coef, true)],
        p: { D: N * G, G, Cg, C, c0, L: Bc, inner: S },
        workgroups: Math.ceil((N * G) / WG),
      });
    }
    const bwdBinds = [tb('DY', dy), tb('X', x), tb('MEAN', mean), tb('RSTD', rstd), f32('PART', part, true)];
    const steps: Step[] = [
      cl
        ? this.clReduceStep(cl, ['BWD', 'HAS_MEAN', 'HAS_RSTD'], bwdBinds, G, Cg)
        : {
            family: 'reduce',
            flags: ['PARTIALS', 'BWD', 'HAS_MEAN', 'HAS_RSTD'],
            binds: bwdBinds,
            p: { outer: 1, D: NC, inner: S, P, L, Pi, gDiv: Cg, aMod: 1 },
            workgroups: Math.ceil((NC * P) / WG),
          },
      {
        family: 'finalize',
        flags: ['FIN_SUMS'],
        binds: [f32('PART', part), f32('OUT', sums, true)],
        p: { D: NC, P, jStride: P, cStride: 1 },
        workgroups: Math.ceil(NC / WG),
      },
      ...gnCoef,
      {
        family: 'apply',
        flags: ['BWD_APPLY', ...(weight ? ['HAS_W'] : []), ...(cl ? ['CLAST'] : [])],
        binds: [tb('DY', dy), tb('X', x), ...wb, f32('COEF', coef), tb('DX', dx, true)],
        p: cl ? clMaps(x.size, S * C, C, G) : { n: x.size, sDiv: Cg * S, sMod: Math.max(N * G, 1), aDiv: S, aMod: C },
        workgroups: this.applyWorkgroups(x.size),
      },
    ];
    const temps = [part, sums, coef];
    if (dweight || dbias) {
      const { dw, db, post } = this.gradOuts(dweight, dbias, temps);
      // dweight/dbias sum the per-(n, c) sums over n: a strided read of all of them per channel.
      // Past half a binding: blocks of rows of the sums (each bound as a range by window.ts),
      // added up (ACCUM).
      const rowBytes = C * 16;
      // (One row per block when a row is past half a binding: then ranges of channels.)
      const Nb = Math.max(1, Math.floor((this.bindLimit / 2 - 256) / rowBytes));
      if (N * rowBytes <= this.bindLimit || Nb >= N) steps.push(this.dwdbStep(sums, C, N, 1, C, dw, db));
      else {
        for (let n0 = 0; n0 < N; n0 += Nb) {
          const st = this.dwdbStep(sums, C, Math.min(N, n0 + Nb), 1, C, dw, db, n0 > 0);
          st.p.c0 = n0;
          steps.push(st);
        }
      }
      steps.push(...post);
    }
    this.run('groupNormBackward', steps, temps, [dx, dweight, dbias]);
    return { dx, dweight, dbias };
  }

  instanceNorm(a: O.InstanceNormArgs): O.GroupNormOut {
    return this.groupNorm({ ...a, G: a.C, silu: false });
  }

  instanceNormBackward(a: O.InstanceNormBwdArgs): O.BwdOut {
    return this.groupNormBackward({ ...a, G: a.C });
  }

  // ---- batch norm ----

  batchNorm(a: O.BatchNormArgs): O.BatchNormOut {
    // Empty batch: empty y, running statistics untouched (PyTorch); training's saved statistics
    // are those of a reduction over nothing (mean 0, invstd NaN).
    if (a.x.size === 0) {
      const C = a.training ? a.C : 0;
      return { y: this.alloc(a.x.shape, a.x.dtype, 'y'), saveMean: this.filled([C], 'saveMean', 0), saveInvstd: this.filled([C], 'saveInvstd', NaN) };
    }
    const { x, N, C, S, weight, bias, runningMean, runningVar } = a;
    const y = this.alloc(x.shape, x.dtype, 'y');
    const saveMean = this.alloc(a.training ? [C] : [0], 'float32', 'saveMean');
    const saveInvstd = this.alloc(a.training ? [C] : [0], 'float32', 'saveInvstd');
    const { affine, aflags } = affineBinds(weight, bias);
    const steps: Step[] = [];
    const temps: GPUBuffer[] = [];
    const cl = channelsLast(a);
    const clFlag = cl ? ['CLAST'] : [];
    // Channel of element e: (e / S) % C, or channels last e % C (one group per channel).
    const maps = cl ? clMaps(x.size, x.size, C, C) : { n: x.size, sDiv: S, sMod: C, aDiv: S, aMod: C };
    if (a.training) {
      const meanB = saveMean._buffer!;
      const rstdB = saveInvstd._buffer!;
      const win = this.windowed(x);
      const g = { outer: N, D: C, inner: S };
      const running = runningMean !== null && runningVar !== null ? [tb('RM', runningMean, true), tb('RV', runningVar, true)] : [];
      // Channels last: x as one sample of N*spatial rows of C channels, one group per channel.
      const mv = cl
        ? { ...this.clMeanVarSteps(x, this.clChunks(1, N * S, C, win, x.dtype), C, { mean: meanB, rstd: rstdB, running }, { eps: a.eps, momentum: a.momentum }, temps), applyFlags: ['COMP'] }
        : this.meanVarSteps(x, null, g, this.chunks(N, C, S, win, x.dtype), { mean: meanB, rstd: rstdB, running }, { eps: a.eps, momentum: a.momentum }, temps);
      steps.push(...mv.steps);
      steps.push({
        family: 'apply',
        flags: ['APPLY', ...mv.applyFlags, ...aflags, ...clFlag],
        binds: [tb('X', x), ...affine, tb('Y', y, true), f32('LO', mv.lo), f32('RSTD', rstdB)],
        p: maps,
        workgroups: this.applyWorkgroups(x.size),
      });
    } else {
      // Eval, both adapter classes: one elementwise dispatch; each quad (block) reads its
      // channel's running statistics and takes rstd = 1/sqrt(runningVar + eps) itself
      // (EVAL_STATS, apply.wgsl), no per-channel finalize step first.
      steps.push({
        family: 'apply',
        flags: ['APPLY', 'EVAL_STATS', ...aflags, ...clFlag],
        binds: [tb('X', x), ...affine, tb('Y', y, true), tb('RM', runningMean!), tb('RV', runningVar!)],
        p: { ...maps, eps: a.eps },
        workgroups: this.applyWorkgroups(x.size),
      });
    }
    this.run('batchNorm', steps, temps, [y, saveMean, saveInvstd, runningMean, runningVar]);
    return { y, saveMean, saveInvstd };
  }

  batchNormBackward(a: O.BatchNormBwdArgs): O.BwdOut {
    if (a.x.size === 0) return this.emptyBackward(a);
    const { dy, x, N, C, S, weight, bias } = a;
    const dx = this.alloc(x.shape, x.dtype, 'dx');
    const dweight = weight ? this.alloc(weight.shape, weight.dtype, 'dweight') : null;
    const dbias = bias ? this.alloc(bias.shape, bias.dtype, 'dbias') : null;
    const steps: Step[] = [];
    const temps: GPUBuffer[] = [];
    // Statistics: the saved ones (training), or in eval the running statistics read by the
    // reduce and finalize kernels themselves (EVAL_STATS: rstd = 1/sqrt(runningVar + eps) there,
    // no FIN_EVAL step); dx = dy * w * invstd then comes from FIN_BWD's coefficients.
    const stats: Bind[] = a.training ? [f32('MEAN', a.saveMean!._buffer!), f32('RSTD', a.saveInvstd!._buffer!)] : [tb('RM', a.runningMean!), tb('RV', a.runningVar!)];
    const evalFlags = a.training ? [] : ['EVAL_STATS'];
    // Channels last: x as one sample of N*spatial rows of C channels, one group per channel.
    const cl = channelsLast(a) ? this.clChunks(1, N * S, C, this.windowed(x), x.dtype) : null;
    const ch = cl ? { P: cl.P, L: cl.L, Pi: 1, flags: [] } : this.chunks(N, C, S, this.windowed(x), x.dtype);
    const { P, L, Pi } = ch;
    const part = this.temp(C * P * 16, 'partials');
    const coef = this.temp(C * 16, 'coef');
    temps.push(part, coef);
    const wb: Bind[] = weight ? [tb('W', weight)] : [];
    const { dw, db, post } = this.gradOuts(dweight, dbias, temps);
    const bwdBinds = [tb('DY', dy), tb('X', x), ...stats, f32('PART', part, true)];
    steps.push(
      cl
        ? this.clReduceStep(cl, ['BWD', 'HAS_MEAN', 'HAS_RSTD', ...evalFlags], bwdBinds, C, 1, a.eps)
        : {
            family: 'reduce',
            flags: ['PARTIALS', 'BWD', 'HAS_MEAN', 'HAS_RSTD', ...evalFlags, ...ch.flags],
            binds: bwdBinds,
            p: { outer: N, D: C, inner: S, P, L, Pi, gDiv: 1, aMod: 1, eps: a.eps },
            workgroups: Math.ceil((C * P) / WG),
          },
    );
    steps.push({
      family: 'finalize',
      flags: ['FIN_BWD', 'HAS_MEAN', ...evalFlags, ...(weight ? ['W_BY_J'] : []), ...(a.training ? [] : ['EVAL']), ...(dweight ? ['DW'] : []), ...(dbias ? ['DB'] : [])],
      binds: [f32('PART', part), ...wb, ...stats, f32('COEF', coef, true), ...(dw ? [dw] : []), ...(db ? [db] : [])],
      p: { D: C, P, jStride: P, cStride: 1, eps: a.eps },
      workgroups: Math.ceil(C / WG),
    }, ...post);
    steps.push({
      family: 'apply',
      flags: ['BWD_APPLY', ...(weight ? ['HAS_W'] : []), ...(a.training ? [] : ['EVAL']), ...(cl ? ['CLAST'] : [])],
      binds: [tb('DY', dy), tb('X', x), ...wb, f32('COEF', coef), tb('DX', dx, true)],
      p: cl ? clMaps(x.size, x.size, C, C) : { n: x.size, sDiv: S, sMod: C, aDiv: S, aMod: C },
      workgroups: this.applyWorkgroups(x.size),
    });
    this.run('batchNormBackward', steps, temps, [dx, dweight, dbias]);
    return { dx, dweight, dbias };
  }

  // ---- weight norm ----

  weightNorm(a: O.WeightNormArgs): O.WeightNormOut {
    // Empty slices (or none): ‖v‖ over nothing is 0; no kernel runs.
    if (a.v.size === 0) return { w: this.alloc(a.v.shape, a.v.dtype, 'w'), norms: this.filled(a.g.shape, 'norms', 0) };
    const { v, g, outer, D, inner } = a;
    const w = this.alloc(v.shape, v.dtype, 'w');
    const norms = this.alloc(g.shape, 'float32', 'norms');
    const ch = this.chunks(outer, D, inner, this.windowed(v), v.dtype);
    const { P } = ch;
    const part = this.temp(D * P * 16, 'partials');
    const scale = this.temp(D * 4, 'scale');
    const steps: Step[] = [
      this.statsStep(v, null, { outer, D, inner }, 'SUMSQ', part, ch),
      {
        family: 'finalize',
        flags: ['FIN_WN', 'SUMSQ'],
        binds: [f32('PART', part), tb('G', g), tb('NORMS', norms, true), f32('SCALE', scale, true)],
        p: { D, P, jStride: P, cStride: 1 },
        workgroups: Math.ceil(D / WG),
      },
      {
        family: 'apply',
        flags: ['APPLY'],
        binds: [tb('X', v), tb('Y', w, true), f32('RSTD', scale)],
        p: { n: v.size, sDiv: inner, sMod: D },
        workgroups: this.applyWorkgroups(v.size),
      },
    ];
    this.run('weightNorm', steps, [part, scale], [w, norms]);
    return { w, norms };
  }

  weightNormBackward(a: O.WeightNormBwdArgs): O.WeightNormBwdOut {
    const { dw, v, g, norms, outer, D, inner } = a;
    const dv = this.alloc(v.shape, v.dtype, 'dv');
    const dg = this.alloc(g.shape, g.dtype, 'dg');
    const ch = this.chunks(outer, D, inner, this.windowed(v), v.dtype);
    const { P, L, Pi } = ch;
    const part = this.temp(D * P * 16, 'partials');
    const coef = this.temp(D * 16, 'coef');
    const temps = [part, coef];
    const post: Step[] = [];
    const dgB = this.groupOut('DG', dg, temps, post);
    const steps: Step[] = [
      {
        family: 'reduce',
        flags: ['PARTIALS', 'BWD', ...ch.flags],
        binds: [tb('DY', dw), tb('X', v), f32('PART', part, true)],
        p: { outer, D, inner, P, L, Pi, aMod: 1 },
        workgroups: Math.ceil((D * P) / WG),
      },
      {
        family: 'finalize',
        flags: ['FIN_BWD_WN'],
        binds: [f32('PART', part), tb('G', g), tb('NORMS', norms), f32('COEF', coef, true), dgB],
        p: { D, P, jStride: P, cStride: 1 },
        workgroups: Math.ceil(D / WG),
      },
      {
        family: 'apply',
        flags: ['BWD_APPLY'],
        binds: [tb('DY', dw), tb('X', v), f32('COEF', coef), tb('DX', dv, true)],
        p: { n: v.size, sDiv: inner, sMod: D },
        workgroups: this.applyWorkgroups(v.size),
      },
    ];
    steps.push(...post);
    this.run('weightNormBackward', steps, temps, [dv, dg]);
    return { dv, dg };
  }

  /** A vec4 copy of `n4` vec4s from src to dst: the bandwidth yardstick for the benchmarks. */
  copyKernel(src: GPUBuffer, dst: GPUBuffer, n4: number): Promise<void> {
    const k = kernel(this.ctx, 'copy', [], [
      { name: 'SRC', access: 'read', dtype: 'float32', vec4: true },
      { name: 'DST', access: 'read_write', dtype: 'float32', vec4: true },
    ]);
    const workgroups = Math.ceil(n4 / WG);
    const prof = this.ctx.profiler && workgroups > 0 ? [{ name: profileName(k.label), workgroups, bytesRead: n4 * 16, bytesWritten: n4 * 16 }] : undefined;
    return this.ctx.submit('copy', [{ kernel: k, buffers: [src, dst], params: params({ n: n4 }), workgroups }], prof);
  }

  destroy(): void {}
}

