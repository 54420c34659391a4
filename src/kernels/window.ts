/**
 * Tensors larger than one storage binding. A kernel whose bound buffers include one larger than
 * the binding limit (maxStorageBufferBindingSize) is compiled `WINDOW` and dispatched several
 * times, each dispatch over a range [t0, t1) of its invocations with every large buffer bound as
 * the range of it those invocations touch (its start in the uniform word offset w<k>; the WGSL
 * accessors subtract it, see device/wgsl.ts). Kernels keep tensor-wide indices, so results do
 * not depend on where the ranges are cut.
 *
 * `touched` gives, per binding, the element range [lo, hi) that invocations [ta, tb) of a step
 * may read or write (exact, or a superset that only grows with tb); `planWindows` cuts the index
 * space greedily into the longest ranges whose bound ranges fit, each found by a doubling then
 * bisecting search.
 */
import type { DType } from '../tensor.ts';
import type { BoundRange } from '../device/context.ts';
import { LimitError } from '../errors.ts';
import { entryPoint, params, type ParamValues } from './source.ts';
import type { WindowDispatch } from './plan.ts';

/** What the window planner reads of a step (plan.ts Step). */
export interface WindowStep {
  entry: string;
  flags: readonly string[];
  binds: readonly { name: string; t: GPUBuffer; dtype: DType }[];
  p: ParamValues;
}

/** The step's flags and the sections its entry point compiles in. */
const symbols = (s: WindowStep): Set<string> => new Set([...s.flags, ...entryPoint(s.entry).roles]);
const familyOf = (s: WindowStep): string => entryPoint(s.entry).family;

type Span = readonly [number, number];
const EMPTY: Span = [0, 0];

/**
 * Elementwise kernels that map each element of a quad on its own (not ALIGNED) are planned per
 * element: a range may end inside a quad (the kernel's e0/e1), so that a quad that straddles two
 * rows does not need both ends of a weight larger than a binding.
 */
function elementwise(s: WindowStep): boolean {
  return familyOf(s) === 'apply' && !rowFused(s) && !s.flags.includes('ALIGNED') && !s.flags.includes('BLOCK16');
}

/** Row-fused kernels: invocation j handles row (group) j whole, or a block of L rows (COLS_FUSED). */
const rowFused = (s: WindowStep): boolean => familyOf(s) === 'apply' && (symbols(s).has('ROWFUSED') || symbols(s).has('BWD_ROWFUSED'));

/** Number of invocations in a step's index space (what its kernel's `t` / `j` ranges over). */
export function invocations(s: WindowStep): number {
  const q = params(s.p);
  const f = symbols(s);
  if (elementwise(s)) return q.n;
  if (rowFused(s)) return f.has('COLS_FUSED') ? Math.ceil(q.D / q.L) : q.D;
  if (familyOf(s) === 'apply') return Math.ceil(q.n / (f.has('BLOCK16') ? 16 : 4));
  if (familyOf(s) === 'reduce') {
    if (f.has('COLS')) return Math.ceil(q.inner / (f.has('COLS16') ? 16 : 4)) * q.P;
    if (f.has('CL_PARTIALS')) return q.D * q.P * Math.ceil(q.C / (f.has('CL4') ? 4 : 1));
    return q.D * q.P;
  }
  return q.D;
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
 * (e / sDiv)*G + (e % C)/Cg (apply.wgsl s_of with CLAST). Within one row the channels run from
 * ea's to (eb - 1)'s; a range crossing a row boundary holds channel 0 of one row and C - 1 of
 * another. Exact hull.
 */
function clSpan(ea: number, eb: number, q: Record<string, number>, stride = 1): Span {
  if (eb <= ea) return EMPTY;
  const { sDiv, C, Cg, G } = q as { sDiv: number; C: number; Cg: number; G: number };
  const na = Math.floor(ea / sDiv);
  const nb = Math.floor((eb - 1) / sDiv);
  // The range's part in sample na, and in sample nb: one row, or channels 0 .. C - 1.
  const endA = Math.min(eb, (na + 1) * sDiv);
  const startB = Math.max(ea, nb * sDiv);
  const chLo = Math.floor(ea / C) === Math.floor((endA - 1) / C) ? ea % C : 0;
  const chHi = Math.floor(startB / C) === Math.floor((eb - 1) / C) ? (eb - 1) % C : C - 1;
  return [(na * G + Math.floor(chLo / Cg)) * stride, (nb * G + Math.floor(chHi / Cg) + 1) * stride];
}

/** Element ranges touched by invocations [ta, tb) of step `s`, per binding name. */
export function touched(s: WindowStep, ta: number, tb: number): Map<string, Span> {
  const q = params(s.p);
  const f = symbols(s);
  const out = new Map<string, Span>();
  const names = s.binds.map((b) => b.name);
  const set = (span: Span, ...which: string[]) => {
    for (const w of which) if (names.includes(w)) out.set(w, span);
  };
  if (tb <= ta) {
    for (const n of names) out.set(n, EMPTY);
    return out;
  }
  if (rowFused(s)) {
    // Rows [ra, rb) whole (COLS_FUSED: blocks of L rows, and its partials of every column).
    const R = f.has('COLS_FUSED') ? q.L : 1;
    const ra = ta * R;
    const rb = Math.min(tb * R, q.D);
    set([ra * q.inner, rb * q.inner], 'X', 'R', 'Y', 'S', 'DY', 'DX');
    set([ra, rb], 'MEAN', 'RSTD', 'CORR');
    // The weights of those rows' elements only: all of W for layer-norm rows, but a group-norm
    // group needs just its C/G channels' weights (not the whole per-channel W).
    set(indexSpan(ra * q.inner, rb * q.inner, q.aDiv, q.aMod), 'W', 'B');
    set([4 * ta, 4 * ((q.inner - 1) * q.P + tb - 1) + 4], 'PART');
  } else if (familyOf(s) === 'apply') {
    const E = elementwise(s) ? 1 : f.has('BLOCK16') ? 16 : 4;
    const ea = E * ta;
    const eb = Math.min(E * tb, q.n);
    const span = (stride: number) => (f.has('CLAST') ? clSpan(ea, eb, q, stride) : indexSpan(ea, eb, q.sDiv, q.sMod, stride));
    set([ea, eb], 'X', 'R');
    set([ea, eb], 'Y', 'S', 'DY', 'DX');
    set(indexSpan(ea, eb, q.aDiv, q.aMod), 'W', 'B');
    set(span(1), 'MEAN', 'RSTD', 'RM', 'RV');
    set(span(2), 'LO');
    set(span(4), 'COEF');
  } else if (familyOf(s) === 'reduce' && f.has('COLS')) {
    const CW = f.has('COLS16') ? 16 : 4;
    const K = q.inner;
    const nq = Math.ceil(K / CW);
    const ca = Math.floor(ta / nq);
    const cb = Math.floor((tb - 1) / nq);
    const r0 = q.c0 + ca * q.L;
    const r1 = Math.min(q.c0 + (cb + 1) * q.L, q.outer);
    if (ca === cb) {
      const colA = (ta - ca * nq) * CW;
      const colB = Math.min((tb - 1 - ca * nq) * CW + CW, K);
      set([r0 * K + colA, (r1 - 1) * K + colB], 'X', 'DY');
      set([4 * (colA * q.P + ca), 4 * ((colB - 1) * q.P + ca) + 4], 'PART');
    } else {
      set([r0 * K, r1 * K], 'X', 'DY');
      set([0, 4 * K * q.P], 'PART');
    }
    set([r0, r1], 'MEAN', 'RSTD', 'CORR');
  } else if (familyOf(s) === 'reduce' && f.has('CL_PARTIALS')) {
    // Invocation t = (b*P + c)*nq + q: channels [q*CW, q*CW + CW) of rows [c*L, c*L + L) of sample b.
    const CW = f.has('CL4') ? 4 : 1;
    const { C, P, L, G, Cg } = q;
    const R = q.outer;
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
  } else if (familyOf(s) === 'reduce') {
    const { outer, D, inner, P, L, Pi } = q;
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
    set([Math.floor(jr[0] / q.gDiv), Math.floor((jr[1] - 1) / q.gDiv) + 1], 'MEAN', 'RSTD', 'RM', 'RV');
    set(f.has('W_BY_I') ? wi : indexSpan(jr[0], jr[1], 1, q.aMod), 'W');
  } else {
    // finalize: invocation j handles group j (FIN_CAST: u32 word j).
    const ja = ta;
    const jb = tb - 1;
    if (f.has('FIN_GN')) {
      const na = Math.floor(ja / q.G);
      const nb = Math.floor(jb / q.G);
      const ga = ja - na * q.G;
      const gb = jb - nb * q.G;
      // The group's channels [cA, cB) (GN_BLOCK: one block of them).
      const blk = f.has('GN_BLOCK');
      const cA = blk ? q.c0 : 0;
      const cB = blk ? Math.min(q.c0 + q.L, q.Cg) : q.Cg;
      set([4 * (na * q.C + ga * q.Cg + cA), 4 * (nb * q.C + gb * q.Cg + cB)], 'PART');
      set(na === nb ? [ga * q.Cg + cA, gb * q.Cg + cB] : [0, q.C], 'W');
    } else {
      set([4 * (ja * q.jStride + q.c0 * q.cStride), 4 * (jb * q.jStride + (q.P - 1) * q.cStride) + 4], 'PART');
      set([ja, jb + 1], 'W');
    }
    if (f.has('FIN_MERGE')) {
      // Invocation j merges partials [b*L, (b+1)*L) of group g = j / Pi.
      const ga = Math.floor(ja / q.Pi);
      const gb = Math.floor(jb / q.Pi);
      const ca = (ja - ga * q.Pi) * q.L;
      const cb = Math.min((jb - gb * q.Pi) * q.L + q.L, q.P) - 1;
      set([4 * (ga * q.jStride + ca * q.cStride), 4 * (gb * q.jStride + cb * q.cStride) + 4], 'PART');
    }
    set([2 * ja, Math.min(2 * jb + 2, q.n)], 'SRC');
    set(f.has('FIN_CAST') ? [2 * ja, 2 * jb + 2] : [4 * ja, 4 * jb + 4], 'OUT');
    set([4 * ja, 4 * jb + 4], 'COEF');
    set([2 * ja, 2 * jb + 2], 'LO');
    set([ja * q.inner, jb * q.inner + 1], 'X', 'R');
  }
  // Everything else is indexed by the invocation's group.
  const dflt: Span = familyOf(s) === 'apply' ? [0, Infinity] : [ta, tb];
  for (const n of names) if (!out.has(n)) out.set(n, familyOf(s) === 'finalize' ? dflt : [0, Infinity]);
  return out;
}

/** u32 words [lo, hi) of a binding's elements [lo, hi) (float16: two per word, plus the word after a quad). */
function words(span: Span, dtype: DType): Span {
  if (span[1] <= span[0]) return EMPTY;
  if (dtype === 'float32') return span;
  return [span[0] >> 1, Math.floor((span[1] - 1) / 2) + 2];
}

/**
 * Cut a step whose buffers do not all fit one binding of `limit` bytes into windowed dispatches.
 * Buffers within the limit are bound whole. Throws LimitError when a single invocation's ranges
 * do not fit (a shape the kernels cannot split), before anything is encoded.
 */
export function planWindows(s: WindowStep, limit: number, align: number, label: string): WindowDispatch[] {
  const T = invocations(s);
  const big = s.binds.map((b) => b.t.size > limit);
  const ranges = (ta: number, tb: number): { buffers: (GPUBuffer | BoundRange)[]; bases: number[]; worst: number; name: string } => {
    const spans = touched(s, ta, tb);
    const buffers: (GPUBuffer | BoundRange)[] = [];
    const bases: number[] = [];
    let worst = 0;
    let name = '';
    s.binds.forEach((b, k) => {
      if (!big[k]) {
        buffers.push(b.t);
        bases.push(0);
        return;
      }
      const [lo, hi] = words(spans.get(b.name) ?? [0, Infinity], b.dtype);
      let offset = 0;
      let end = Math.min(align, b.t.size);
      if (hi > lo) {
        offset = Math.floor((lo * 4) / align) * align;
        end = Math.min(hi * 4, b.t.size);
      }
      const size = Math.max(end - offset, 4);
      if (size > worst) (worst = size), (name = b.name);
      buffers.push({ buffer: b.t, offset, size });
      bases.push(offset / 4);
    });
    return { buffers, bases, worst, name };
  };
  const fits = (ta: number, tb: number) => ranges(ta, tb).worst <= limit;
  const out: WindowDispatch[] = [];
  for (let ta = 0; ta < T; ) {
    if (!fits(ta, ta + 1)) {
      const r = ranges(ta, ta + 1);
      throw new LimitError(
        `${label}: one invocation of the ${s.entry} kernel [${s.flags.join(',')}] touches ${r.worst} bytes of ${r.name}, more than the storage binding limit ${limit} (maxStorageBufferBindingSize); this shape cannot be split into bound ranges`,
        r.name,
      );
    }
    // Longest fitting range: double, then bisect between the last fit and the first miss.
    let good = ta + 1;
    let bad = T + 1;
    for (let len = 2; good < T; len *= 2) {
      const cand = Math.min(ta + len, T);
      if (!fits(ta, cand)) {
        bad = cand;
        break;
      }
      good = cand;
    }
    while (bad - good > 1) {
      const mid = Math.floor((good + bad) / 2);
      if (fits(ta, mid)) good = mid;
      else bad = mid;
    }
    const r = ranges(ta, good);
    // Element-planned steps: invocations of the quads holding elements [ta, good).
    const [t0, t1] = elementwise(s) ? [Math.floor(ta / 4), Math.ceil(good / 4)] : [ta, good];
    const p: Record<string, number> = { t0, t1, e0: ta, e1: good };
    r.bases.forEach((w, k) => (p[`w${k + 1}`] = w));
    out.push({ t0, t1, buffers: r.buffers, params: p });
    ta = good;
  }
  return out;
}
