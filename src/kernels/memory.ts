/**
 * Beside each entry point's shader declaration (the `//#entry` lines), what its invocations do
 * to memory: the size of its index space, and the element range of every binding that
 * invocations [ta, tb) may read or write (exact, or a superset that only grows with tb). The
 * window planner (window.ts) cuts dispatches with these; traffic.ts counts bytes with them.
 */
import { entryPoint, params, type ParamValues } from './source.ts';

export type Span = readonly [number, number];
export const EMPTY: Span = [0, 0];

/** The uniform values of a step (every field, neutral where unset). */
type Q = Record<string, number>;
/** Records the span of the named bindings (those the step binds). */
type Set = (span: Span, ...names: string[]) => void;

export interface KernelMemory {
  /** Invocations in the index space (what the kernel's `t` / `j` ranges over). */
  invocations(q: Q, f: ReadonlySet<string>): number;
  /** Sets the spans invocations [ta, tb) touch (ta < tb). */
  touched(q: Q, f: ReadonlySet<string>, ta: number, tb: number, set: Set): void;
  /** Spans of bindings `touched` does not set: whole, or the invocations' own groups [ta, tb). */
  rest: 'whole' | 'group';
  /**
   * Planned per element rather than per invocation: elementwise kernels that map each element
   * of a quad on its own (not ALIGNED nor BLOCK), so a range may end inside a quad (the
   * kernel's e0/e1) and a quad straddling two rows needs no two ends of a large weight.
   */
  perElement?(f: ReadonlySet<string>): boolean;
  /** false: not modelled (never windowed); a whole dispatch touches every binding whole. */
  modelled?: boolean;
}

/**
 * Group positions `(e / div) % mod` (times `stride` values each) used by elements [ea, eb):
 * a contiguous range, or all of them when the positions wrap around.
 */
function indexSpan(ea: number, eb: number, div: number, mod: number, stride = 1): Span {
  if (eb <= ea) return EMPTY;
  const qa = Math.floor(ea / div);
  const qb = Math.floor((eb - 1) / div);
  if (qb - qa + 1 >= mod) return [0, mod * stride];
  const a = qa % mod;
  const b = qb % mod;
  return a <= b ? [a * stride, (b + 1) * stride] : [0, mod * stride];
}

/**
 * Channels-last statistics indices (`stride` values each) used by elements [ea, eb): group
 * (e / statDiv)*numGroups + (e % channels)/channelsPerGroup (apply.wgsl s_of with CLAST). Within one row the channels run from
 * ea's to (eb - 1)'s; a range crossing a row boundary holds channel 0 of one row and C - 1 of
 * another. Exact hull.
 */
function clSpan(ea: number, eb: number, q: Q, stride = 1): Span {
  if (eb <= ea) return EMPTY;
  const { statDiv: sDiv, channels: C, channelsPerGroup: Cg, numGroups: G } = q as Record<string, number>;
  const na = Math.floor(ea / sDiv);
  const nb = Math.floor((eb - 1) / sDiv);
  // The range's part in sample na, and in sample nb: one row, or channels 0 .. C - 1.
  const endA = Math.min(eb, (na + 1) * sDiv);
  const startB = Math.max(ea, nb * sDiv);
  const chLo = Math.floor(ea / C) === Math.floor((endA - 1) / C) ? ea % C : 0;
  const chHi = Math.floor(startB / C) === Math.floor((eb - 1) / C) ? (eb - 1) % C : C - 1;
  return [(na * G + Math.floor(chLo / Cg)) * stride, (nb * G + Math.floor(chHi / Cg) + 1) * stride];
}

/** fused_rows_*: invocation j handles row (group) j whole, or a block of L rows (COLS_FUSED, ROW_BLOCK). */
const blockRows = (q: Q, f: ReadonlySet<string>): number => (f.has('COLS_FUSED') || f.has('ROW_BLOCK') ? q.rowsPerBlock : 1);
const fusedRows: KernelMemory = {
  invocations: (q, f) => Math.ceil(q.groups / blockRows(q, f)),
  touched(q, f, ta, tb, set) {
    const R = blockRows(q, f);
    const ra = ta * R;
    const rb = Math.min(tb * R, q.groups);
    set([ra * q.runLength, rb * q.runLength], 'X', 'R', 'Y', 'S', 'DY', 'DX');
    set([ra, rb], 'MEAN', 'RSTD', 'CORR');
    // The weights of those rows' elements only: all of W for layer-norm rows, but a group-norm
    // group needs just its C/G channels' weights (not the whole per-channel W).
    set(indexSpan(ra * q.runLength, rb * q.runLength, q.weightDiv, q.weightMod), 'W', 'B');
    set([4 * ta, 4 * ((q.runLength - 1) * q.blocks + tb - 1) + 4], 'PART');
  },
  rest: 'whole',
};

/** Elements per invocation of normalize_elements / grad_elements: 1, a quad, or a block (BLOCK). */
const elementsPerInvocation = (q: Q, f: ReadonlySet<string>): number => (f.has('BLOCK') ? q.blockLength : f.has('ALIGNED') ? 4 : 1);

/** normalize_elements / grad_elements: one invocation per element, quad, or block of blockLength. */
const elements: KernelMemory = {
  perElement: (f) => !f.has('ALIGNED') && !f.has('BLOCK'),
  invocations: (q, f) => Math.ceil(q.elements / elementsPerInvocation(q, f)),
  touched(q, f, ta, tb, set) {
    const E = elementsPerInvocation(q, f);
    const ea = E * ta;
    const eb = Math.min(E * tb, q.elements);
    const span = (stride: number) => (f.has('CLAST') ? clSpan(ea, eb, q, stride) : indexSpan(ea, eb, q.statDiv, q.statMod, stride));
    set([ea, eb], 'X', 'R');
    set([ea, eb], 'Y', 'S', 'DY', 'DX');
    set(indexSpan(ea, eb, q.weightDiv, q.weightMod), 'W', 'B');
    set(span(1), 'MEAN', 'RM', 'RV');
    // SCALE_PAIR (weight norm): RSTD holds the pair (a, p) per slice.
    set(span(f.has('SCALE_PAIR') ? 2 : 1), 'RSTD');
    set(span(2), 'LO');
    set(span(4), 'COEF');
  },
  rest: 'whole',
};

/** column_grad_partials: invocation (c, q) sums columns [q*CW, q*CW + CW) over chunk c of rows. */
const columns: KernelMemory = {
  invocations: (q, f) => Math.ceil(q.columns / (f.has('COLS16') ? 16 : 4)) * q.chunks,
  touched(q, f, ta, tb, set) {
    const CW = f.has('COLS16') ? 16 : 4;
    const K = q.columns;
    const nq = Math.ceil(K / CW);
    const ca = Math.floor(ta / nq);
    const cb = Math.floor((tb - 1) / nq);
    const r0 = q.rowBegin + ca * q.chunkLength;
    const r1 = Math.min(q.rowBegin + (cb + 1) * q.chunkLength, q.rowEnd);
    if (ca === cb) {
      const colA = (ta - ca * nq) * CW;
      const colB = Math.min((tb - 1 - ca * nq) * CW + CW, K);
      set([r0 * K + colA, (r1 - 1) * K + colB], 'X', 'DY');
      set([4 * (colA * q.chunks + ca), 4 * ((colB - 1) * q.chunks + ca) + 4], 'PART');
    } else {
      set([r0 * K, r1 * K], 'X', 'DY');
      set([0, 4 * K * q.chunks], 'PART');
    }
    set([r0, r1], 'MEAN', 'RSTD', 'CORR');
  },
  rest: 'whole',
};

/** channels_last_*_partials: invocation t = (b*P + c)*nq + q: channels [q*CW, q*CW + CW) of rows [c*L, c*L + L) of sample b. */
const channelsLast: KernelMemory = {
  invocations: (q, f) => q.outer! * q.chunks! * Math.ceil(q.channels! / (f.has('CL4') ? 4 : 1)),
  touched(q, f, ta, tb, set) {
    const CW = f.has('CL4') ? 4 : 1;
    const { channels: C, chunks: P, chunkLength: L, numGroups: G, channelsPerGroup: Cg, runs: R } = q as Record<string, number>;
    const nq = Math.ceil(C / CW);
    const chunk = (bc: number) => {
      const b = Math.floor(bc / P);
      const c = bc - b * P;
      const r0 = Math.min(c * L, R);
      return { b, c, r0, r1: Math.min(r0 + L, R) };
    };
    const bcA = Math.floor(ta / nq);
    const bcB = Math.floor((tb - 1) / nq);
    const A = chunk(bcA);
    const Z = chunk(bcB);
    let chA = 0;
    let chB = C;
    if (bcA === bcB) {
      chA = (ta - bcA * nq) * CW;
      chB = Math.min((tb - 1 - bcA * nq) * CW + CW, C);
      set(A.r1 > A.r0 ? [(A.b * R + A.r0) * C + chA, (A.b * R + A.r1 - 1) * C + chB] : EMPTY, 'X', 'DY');
      set([4 * ((A.b * C + chA) * P + A.c), 4 * ((A.b * C + chB - 1) * P + A.c) + 4], 'PART');
    } else {
      // Whole rows from the first chunk's first to the last chunk's last; partials of every
      // channel from (A.b, channel 0, chunk A.c) to (Z.b, channel C - 1, chunk Z.c).
      set([(A.b * R + A.r0) * C, (Z.b * R + Z.r1) * C], 'X', 'DY');
      set([4 * (A.b * C * P + A.c), 4 * ((Z.b * C + C - 1) * P + Z.c) + 4], 'PART');
    }
    set([A.b * G + Math.floor(chA / Cg), Z.b * G + Math.floor((chB - 1) / Cg) + 1], 'MEAN', 'RSTD', 'RM', 'RV');
  },
  rest: 'whole',
};

/** welford_partials / sumsq_partials / grad_partials: invocation t = j*P + c (CMAJOR: c*D + j) reduces chunk c of group j. */
const partials: KernelMemory = {
  invocations: (q) => q.groups! * q.chunks!,
  touched(q, f, ta, tb, set) {
    const { runs: outer, groups: D, runLength: inner, chunks: P, chunkLength: L, chunksPerRun: Pi } = q as Record<string, number>;
    const M = outer * inner;
    const runs = f.has('RUNS');
    const k0 = (c: number) => (runs ? Math.floor(c / Pi) * inner + (c % Pi) * L : c * L);
    const k1 = (c: number) => (runs ? Math.min(k0(c) + L, (Math.floor(c / Pi) + 1) * inner) : Math.min(c * L + L, M));
    const el = (j: number, k: number) => (Math.floor(k / inner) * D + j) * inner + (k % inner);
    const whole: Span = [0, M * D];
    let xs: Span;
    let part: Span;
    let jr: Span;
    let wi: Span = [0, inner];
    if (f.has('CMAJOR')) {
      const ca = Math.floor(ta / D);
      const cb = Math.floor((tb - 1) / D);
      const ja = ta - ca * D;
      const jb = tb - 1 - cb * D;
      if (ca === cb) {
        xs = k1(ca) > k0(ca) ? [el(ja, k0(ca)), el(jb, k1(ca) - 1) + 1] : EMPTY;
        part = [4 * (ja * P + ca), 4 * (jb * P + ca) + 4];
        jr = [ja, jb + 1];
      } else {
        // Whole slices o (every group) from the first chunk's first element to the last's last.
        const oa = Math.floor(k0(ca) / inner);
        const ob = Math.floor((Math.max(k1(cb), 1) - 1) / inner);
        xs = [oa * D * inner, (ob + 1) * D * inner];
        part = [4 * ca, 4 * ((D - 1) * P + cb) + 4];
        jr = [0, D];
      }
    } else {
      const ja = Math.floor(ta / P);
      const jb = Math.floor((tb - 1) / P);
      const ca = ta - ja * P;
      const cb = tb - 1 - jb * P;
      if (ja === jb) xs = k1(cb) > k0(ca) ? [el(ja, k0(ca)), el(ja, k1(cb) - 1) + 1] : EMPTY;
      else if (outer === 1) xs = [ja * inner + k0(ca), jb * inner + k1(cb)];
      else xs = whole;
      if (ja === jb && outer === 1) wi = [k0(ca), k1(cb)];
      part = [4 * ta, 4 * tb];
      jr = [ja, jb + 1];
    }
    set(xs, 'X', 'R', 'DY');
    set(part, 'PART');
    set([Math.floor(jr[0] / q.groupsPerStat!), Math.floor((jr[1] - 1) / q.groupsPerStat!) + 1], 'MEAN', 'RSTD', 'RM', 'RV');
    // W_BY_I: the weights of the chunk's positions in its row (one group: a range of them).
    set(f.has('W_BY_I') ? wi : [0, 1], 'W');
  },
  rest: 'whole',
};

/** The spans every finalize kernel shares: invocation j handles group j (cast_half: u32 word j). */
function perGroupOutputs(q: Q, f: ReadonlySet<string>, ja: number, jb: number, set: Set): void {
  set([2 * ja, Math.min(2 * jb + 2, q.elements!)], 'SRC');
  set(f.has('FIN_CAST') ? [2 * ja, 2 * jb + 2] : [4 * ja, 4 * jb + 4], 'OUT');
  set([4 * ja, 4 * jb + 4], 'COEF');
  set([2 * ja, 2 * jb + 2], 'LO', 'SCALE');
}

/** Finalize kernels: invocation j merges the partials of group j at PART[4*(j*groupStride + c*partialStride)], c in [partialBegin, partials). */
const perGroup: KernelMemory = {
  invocations: (q) => q.outputs,
  touched(q, f, ta, tb, set) {
    const ja = ta;
    const jb = tb - 1;
    set([4 * (ja * q.groupStride! + q.partialBegin! * q.partialStride!), 4 * (jb * q.groupStride! + (q.partials! - 1) * q.partialStride!) + 4], 'PART');
    set([ja, jb + 1], 'W');
    // GN_KR (weight_bias_grads of group norm: group j of channel j's partial c = sample n is n*G + j/Cg).
    if (f.has('GN_KR') && !f.has('FIN_GN')) set([q.partialBegin! * q.numGroups! + Math.floor(ja / q.channelsPerGroup!), (q.partials! - 1) * q.numGroups! + Math.floor(jb / q.channelsPerGroup!) + 1], 'KR');
    perGroupOutputs(q, f, ja, jb, set);
  },
  rest: 'group',
};

/** merge_*: invocation j merges partials [b*L, (b+1)*L) (L = partialsPerBlock) of group g = j / blocksPerGroup. */
const merge: KernelMemory = {
  invocations: (q) => q.outputs,
  touched(q, f, ta, tb, set) {
    const ja = ta;
    const jb = tb - 1;
    const ga = Math.floor(ja / q.blocksPerGroup!);
    const gb = Math.floor(jb / q.blocksPerGroup!);
    const ca = (ja - ga * q.blocksPerGroup!) * q.partialsPerBlock!;
    const cb = Math.min((jb - gb * q.blocksPerGroup!) * q.partialsPerBlock! + q.partialsPerBlock!, q.partials!) - 1;
    set([4 * (ga * q.groupStride! + ca * q.partialStride!), 4 * (gb * q.groupStride! + cb * q.partialStride!) + 4], 'PART');
    perGroupOutputs(q, f, ja, jb, set);
  },
  rest: 'group',
};

/** group_grad_coefficients: invocation j = n*G + g reads the per-(n, c) sums of the group's channels (GN_BLOCK: one block of them). */
const groupCoefficients: KernelMemory = {
  invocations: (q) => q.outputs,
  touched(q, f, ta, tb, set) {
    const ja = ta;
    const jb = tb - 1;
    const G = q.numGroups!;
    const Cg = q.channelsPerGroup!;
    const na = Math.floor(ja / G);
    const nb = Math.floor(jb / G);
    const ga = ja - na * G;
    const gb = jb - nb * G;
    const blk = f.has('GN_BLOCK');
    const cA = blk ? q.channelBegin! : 0;
    const cB = blk ? Math.min(q.channelBegin! + q.channelsPerBlock!, Cg) : Cg;
    set([4 * (na * q.channels! + ga * Cg + cA), 4 * (nb * q.channels! + gb * Cg + cB)], 'PART');
    set(na === nb ? [ga * Cg + cA, gb * Cg + cB] : [0, q.channels!], 'W');
    perGroupOutputs(q, f, ja, jb, set);
  },
  rest: 'group',
};

/** workgroup_rows_* (GPU class, never windowed): not modelled; a dispatch touches its bindings whole. */
const workgroupRows: KernelMemory = { invocations: (q) => q.groups!, touched() {}, rest: 'whole', modelled: false };

/**
 * The statistics and weights of elements [ea, eb) through apply's index maps (statDiv/statMod
 * or channels last; weightDiv/weightMod).
 */
function statsAndWeights(q: Q, f: ReadonlySet<string>, ea: number, eb: number, set: Set): void {
  set(f.has('CLAST') ? clSpan(ea, eb, q, 1) : indexSpan(ea, eb, q.statDiv, q.statMod), 'MEAN', 'RSTD');
  set(indexSpan(ea, eb, q.weightDiv, q.weightMod), 'W', 'B');
}

/**
 * silu_grad_elements, gated_sum_elements, residual_grad_elements (modulated ops): invocation t
 * handles elements [4t, 4t + 4), each on its own.
 */
const quads: KernelMemory = {
  invocations: (q) => Math.ceil(q.elements! / 4),
  touched(q, f, ta, tb, set) {
    const ea = 4 * ta;
    const eb = Math.min(4 * tb, q.elements);
    set([ea, eb], 'X', 'R', 'S', 'DY', 'DZ', 'DXN', 'DXO', 'DS', 'DR');
    statsAndWeights(q, f, ea, eb, set);
  },
  rest: 'whole',
};

/**
 * modulation_grad_partials: invocation t = c*groups + m sums chunk c (u in [c*L, c*L + L) of
 * runLength) of modulation element m = mr*modInner + col over rows (a*modMod + mr)*modDiv + i,
 * u = a*modDiv + i (modulate.wgsl's index map inverted). Spans: whole rows from the first
 * invocation's first row to the last one's last.
 */
const modulation: KernelMemory = {
  invocations: (q) => q.groups! * q.chunks!,
  touched(q, f, ta, tb, set) {
    const { groups: M, chunkLength: L, runLength: U, modInner: inner, modDiv: div, modMod: mod } = q as Record<string, number>;
    const ca = Math.floor(ta / M);
    const cb = Math.floor((tb - 1) / M);
    const mrA = ca === cb ? Math.floor((ta - ca * M) / inner) : 0;
    const mrB = ca === cb ? Math.floor((tb - 1 - cb * M) / inner) : mod - 1;
    const row = (u: number, mr: number) => (Math.floor(u / div) * mod + mr) * div + (u % div);
    const u0 = ca * L;
    const u1 = Math.min(cb * L + L, U) - 1;
    if (u1 < u0) return set(EMPTY, 'DY', 'X', 'XG', 'R', 'DRT', 'MEAN', 'RSTD');
    // Rows grow with u for a fixed mr, and with mr for a fixed u.
    const r0 = row(u0, mrA);
    const r1 = row(u1, mrB) + 1;
    set([r0 * inner, r1 * inner], 'DY', 'X', 'XG', 'R', 'DRT');
    // PART[4*(m*chunks + c)]; MG_DIRECT (one chunk) writes element m of DSC, DSH, DGT.
    const P = q.chunks!;
    const ma = ta - ca * M;
    const mb = tb - 1 - cb * M;
    set(ca === cb ? [4 * (ma * P + ca), 4 * (mb * P + ca) + 4] : [4 * ca, 4 * ((M - 1) * P + cb) + 4], 'PART');
    set(ca === cb ? [ma, mb + 1] : [0, M], 'DSC', 'DSH', 'DGT');
    if (f.has('MG_ROWS')) set([r0, r1], 'MEAN', 'RSTD');
    else statsAndWeights(q, f, r0 * inner, r1 * inner, set);
  },
  rest: 'whole',
};
/**
 * Strided lanes (lp_normalize_*): invocation t = o*groups + i handles lane (o, i), the runs elements
 * (o*runs + d)*groups + i (the Grouping [outer, runs, groups, 1]); lanes [ta, tb) touch x from
 * lane ta's first element to lane tb - 1's last, and the lanes' own values (NORM).
 */
const lanes: KernelMemory = {
  invocations: (q) => q.outer * q.groups,
  touched(q, _f, ta, tb, set) {
    const { runs, groups } = q as Record<string, number>;
    const first = (t: number) => Math.floor(t / groups) * runs * groups + (t % groups);
    set([first(ta), first(tb - 1) + (runs - 1) * groups + 1], 'X', 'Y', 'DY', 'DX');
    set([ta, tb], 'NORM');
  },
  rest: 'whole',
};
const copy: KernelMemory = { invocations: (q) => q.elements!, touched() {}, rest: 'whole', modelled: false };

/**
 * The descriptors by name: an entry point names its own on its `//#entry` line
 * (`memory=NAME`), so a new kernel that touches memory as an existing one does is declared in
 * its shader file alone.
 */
const MODELS: Record<string, KernelMemory> = {
  partials,
  columns,
  channelsLast,
  elements,
  fusedRows,
  perGroup,
  merge,
  groupCoefficients,
  workgroupRows,
  modulation,
  /** One invocation per output of a small result (not modelled: never windowed). */
  outputs: { invocations: (q) => q.outputs!, touched() {}, rest: 'whole', modelled: false },
  quads,
  lanes,
  copy,
};

/** The memory descriptor of an entry point (throws for one whose line names none, or an unknown one). */
export function kernelMemory(entry: string): KernelMemory {
  const name = entryPoint(entry).memory;
  const k = Object.hasOwn(MODELS, name) ? MODELS[name] : undefined;
  if (!k) throw new Error(`kernels: entry point ${entry} names ${name ? `the memory model ${name}, which kernels/memory.ts does not define` : 'no memory model (memory=NAME on its //#entry line)'}`);
  return k;
}

/** What the window planner and the byte counts read of a step (plan.ts Step). */
export interface MemoryStep {
  entry: string;
  flags: readonly string[];
  binds: readonly { name: string }[];
  p: ParamValues;
}

/** The step's flags and the sections its entry point compiles in. */
export const symbols = (s: MemoryStep): ReadonlySet<string> => new Set([...s.flags, ...entryPoint(s.entry).roles]);

/** Invocations in a step's index space. */
export function invocations(s: MemoryStep): number {
  return kernelMemory(s.entry).invocations(params(entryPoint(s.entry).family, s.p), symbols(s));
}

/** Whether a step is planned per element (see KernelMemory.perElement). */
export function perElement(s: MemoryStep): boolean {
  return kernelMemory(s.entry).perElement?.(symbols(s)) ?? false;
}

/** Renamed bindings of modulated kernels (kernels/modulate.ts) and the binding whose elements they are. */
const MOD_ALIASES: [string, string][] = [
  ['XG', 'X'],
  ['R', 'X'],
  ['YM', 'Y'],
  ['DYM', 'DY'],
  ['DXM', 'DX'],
  ['DS', 'DX'],
  ['DR', 'DX'],
];

const MOD_BINDINGS = new Set(MOD_ALIASES.map(([alias]) => alias));

/** Element ranges touched by invocations [ta, tb) of step `s`, per binding name. */
export function touched(s: MemoryStep, ta: number, tb: number): Map<string, Span> {
  const k = kernelMemory(s.entry);
  const out = new Map<string, Span>();
  const names = s.binds.map((b) => b.name);
  if (tb <= ta) {
    for (const n of names) out.set(n, EMPTY);
    return out;
  }
  const q = params(entryPoint(s.entry).family, s.p);
  const all = new Map<string, Span>();
  k.touched(q, symbols(s), ta, tb, (span, ...which) => {
    for (const w of which) all.set(w, span);
  });
  // Modulated kernels (modulate.wgsl) read x, dy and write y, dx through renamed bindings: the
  // same elements; scale, shift and gate at the modulation rows of those elements.
  if (names.some((n) => MOD_BINDINGS.has(n))) {
    for (const [alias, of] of MOD_ALIASES) if (!all.has(alias) && all.has(of)) all.set(alias, all.get(of)!);
  }
  const xs = all.get('X') ?? all.get('Y') ?? all.get('DX');
  if (xs && 'modInner' in q && names.some((n) => n === 'SC' || n === 'SH' || n === 'GT')) {
    const inner = Math.max(q.modInner!, 1);
    const span = indexSpan(xs[0], xs[1], inner * Math.max(q.modDiv!, 1), Math.max(q.modMod!, 1), inner);
    for (const n of ['SC', 'SH', 'GT']) if (!all.has(n)) all.set(n, span);
  }
  for (const [w, span] of all) if (names.includes(w)) out.set(w, span);
  // Everything else is whole, or (finalize kernels) indexed by the invocation's group.
  const rest: Span = k.rest === 'group' ? [ta, tb] : [0, Infinity];
  for (const n of names) if (!out.has(n)) out.set(n, rest);
  return out;
}
