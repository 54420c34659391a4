/**
 * Argument checks of the modulation options (scale, shift, scaleOffset, gate; the backward's
 * residual and dsum) of layerNorm, rmsNorm, groupNorm and their backwards, resolved into the
 * broadcast geometry both backends take (ops.ts Modulation).
 */
import { ShapeError, ValueError, fmtShape } from '../errors.ts';
import type { Tensor } from '../tensor.ts';
import type * as O from '../ops.ts';
import { describeValue, expectDtype, expectShape, optTensor, sameShape } from '../validate.ts';

// ---- Public option and result types (re-exported by index.ts; the API reference documents them from here)

/**
 * The modulation options of {@link Norms.layerNormBackward} and {@link Norms.rmsNormBackward}:
 * the forward's scale, shift, scaleOffset, gate and residual, and dsum.
 */
export interface ModulationBackwardOptions {
  /** The forward's scale: dy is scaled by (scaleOffset + scale), and `dscale` (shape and dtype of scale) is returned. */
  scale?: Tensor | null;
  /** The forward's shift: `dshift` (its shape and dtype) is returned. */
  shift?: Tensor | null;
  /** As given to the forward. Default 1 (`ValueError` as the forward's: a finite number, 1 without scale). */
  scaleOffset?: number;
  /** The forward's gate (with residual): `dgate` (its shape and dtype) is returned, and dx is gate ⊙ d(sum). */
  gate?: Tensor | null;
  /**
   * The forward's residual: then x is the forward's x (not its sum; the sum is recomputed from x,
   * residual and gate), dx is the gradient of x, and `dresidual`, the gradient of the residual
   * stream (d(sum), shape and dtype of x), is returned as well. Without it, x is the norm's input
   * and dx its gradient, as before.
   */
  residual?: Tensor | null;
  /**
   * The gradient that reaches the forward's `sum` (or, without residual, the norm's input) from
   * elsewhere, e.g. the next block through the residual stream: added to d(sum) before the gate.
   * Shape of x, float32 or x's dtype. Default: none.
   */
  dsum?: Tensor | null;
}

// ---- Argument checks


type Opts = Record<string, unknown>;

/** The option keys of the modulation, forward (with gate where allowed) and backward. */
export const MOD_KEYS = ['scale', 'shift', 'scaleOffset'] as const;
export const GATE_KEYS = ['gate'] as const;
export const MOD_BWD_KEYS = ['residual', 'dsum'] as const;

/**
 * scaleOffset: a finite number, default 1. It offsets scale, (scaleOffset + scale): without scale
 * a value other than 1 would only multiply n by a constant (the weight's job), most likely a
 * mistake (a shift-only call given a scale's offset), so it is a ValueError rather than ignored.
 */
function scaleOffsetOf(v: unknown, scale: Tensor | null): number {
  if (v === undefined || v === null) return 1;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ValueError(`scaleOffset: expected a finite number, got ${describeValue(v)}`, 'scaleOffset');
  if (!scale && v !== 1) throw new ValueError(`scaleOffset: it offsets scale in n ⊙ (scaleOffset + scale), and no scale is given; got scaleOffset ${v} (pass scale, or leave scaleOffset out; a constant factor belongs in weight)`, 'scaleOffset');
  return v;
}

/** scale, shift and gate (where given) must have one shape: the first given one's. */
function sameAsFirst(ts: [string, Tensor | null][]): [string, Tensor] | null {
  let first: [string, Tensor] | null = null;
  for (const [name, t] of ts) {
    if (!t) continue;
    if (!first) first = [name, t];
    else if (!sameShape(t.shape, first[1].shape)) throw new ShapeError(`${name}: expected shape ${fmtShape(first[1].shape)} (the shape of ${first[0]}: scale, shift and gate broadcast alike), got ${fmtShape(t.shape)}`, name);
  }
  return first;
}

/**
 * The geometry of a tensor broadcast over leading dims: `lead` are x's dims that may be 1 in t
 * (t padded with 1s on the left to x's rank), `inner` the product of the trailing dims t must
 * match. The dims t keeps (not 1 where x's is not 1) must be consecutive.
 */
function broadcastGeom(name: string, t: Tensor, xShape: readonly number[], nLead: number, why: string): O.ModGeom {
  if (t.shape.length > xShape.length) throw new ShapeError(`${name}: expected at most ${xShape.length} dims (${why}), got ${fmtShape(t.shape)} for x ${fmtShape(xShape)}`, name);
  const padded = [...new Array<number>(xShape.length - t.shape.length).fill(1), ...t.shape];
  for (let i = nLead; i < xShape.length; i++) {
    if (padded[i] !== xShape[i]) throw new ShapeError(`${name}: expected shape ${fmtShape(expected(xShape, nLead))} (${why}), got ${fmtShape(t.shape)} for x ${fmtShape(xShape)}`, name);
  }
  let lo = -1;
  let hi = -1;
  for (let i = 0; i < nLead; i++) {
    const d = padded[i]!;
    if (d !== 1 && d !== xShape[i]) throw new ShapeError(`${name}: dim ${i} is ${d}, expected 1 or ${xShape[i]} (x ${fmtShape(xShape)}; ${why}), got ${fmtShape(t.shape)}`, name);
    if (d === xShape[i] && d !== 1) {
      if (lo < 0) lo = i;
      else if (hi !== i) throw new ShapeError(`${name}: the dims it does not broadcast over must be consecutive, got ${fmtShape(t.shape)} for x ${fmtShape(xShape)}`, name);
      hi = i + 1;
    }
  }
  const prod = (a: number, b: number) => xShape.slice(a, b).reduce((p, d) => p * d, 1);
  const inner = prod(nLead, xShape.length);
  if (lo < 0) return { inner, div: 1, mod: 1 };
  return { inner, div: prod(hi, nLead), mod: prod(lo, hi) };
}

function expected(xShape: readonly number[], nLead: number): number[] {
  return [...xShape.slice(0, nLead).map(() => 1), ...xShape.slice(nLead)];
}

/**
 * layerNorm / rmsNorm (and their backwards): scale, shift, gate of x's rank (or fewer dims,
 * 1s assumed on the left), trailing dims = normalizedShape, each leading dim 1 or x's.
 */
export function rowModulation(owner: object, o: Opts, x: Tensor, normalizedShape: readonly number[], residual: Tensor | null): O.Modulation {
  const scale = optTensor(o.scale, 'scale', owner);
  const shift = optTensor(o.shift, 'shift', owner);
  const gate = optTensor(o.gate, 'gate', owner);
  const scaleOffset = scaleOffsetOf(o.scaleOffset, scale);
  if (gate && !residual) throw new ValueError('gate: a gate multiplies x in sum = residual + gate ⊙ x; pass residual too', 'gate');
  const first = sameAsFirst([['scale', scale], ['shift', shift], ['gate', gate]]);
  const nLead = x.shape.length - normalizedShape.length;
  const why = 'x\'s rank, trailing dims normalizedShape, each leading dim 1 or x\'s';
  const modGeom = first ? broadcastGeom(first[0], first[1], x.shape, nLead, why) : null;
  return { scale, shift, gate, scaleOffset, modGeom };
}

/**
 * groupNorm (and its backward): scale, shift per (sample, channel): [N, C] or [N, C, 1, ...]
 * (channels last: also [N, 1, ..., 1, C]); N may be 1 (shared by the batch).
 */
export function groupModulation(owner: object, o: Opts, x: Tensor, g: { N: number; C: number; S: number; channelsLast: boolean }): O.Modulation {
  const scale = optTensor(o.scale, 'scale', owner);
  const shift = optTensor(o.shift, 'shift', owner);
  const scaleOffset = scaleOffsetOf(o.scaleOffset, scale);
  const first = sameAsFirst([['scale', scale], ['shift', shift]]);
  if (!first) return { scale, shift, gate: null, scaleOffset, modGeom: null };
  const [name, t] = first;
  const rank = x.shape.length;
  const ones = (n: number) => new Array<number>(n).fill(1);
  const accepted: number[][] = [];
  for (const n of g.N === 1 ? [1] : [g.N, 1]) {
    accepted.push([n, g.C]);
    if (rank > 2) accepted.push(g.channelsLast ? [n, ...ones(rank - 2), g.C] : [n, g.C, ...ones(rank - 2)]);
  }
  if (!accepted.some((s) => sameShape(s, t.shape))) {
    throw new ShapeError(`${name}: expected shape ${accepted.map(fmtShape).join(' or ')} (one value per sample and channel, or per channel), got ${fmtShape(t.shape)} for x ${fmtShape(x.shape)}`, name);
  }
  const perSample = t.shape[0] === g.N && g.N > 1 ? g.N : 1;
  // Channels last ([N, *spatial, C]) with more than one spatial element and channel: the index
  // is (sample, channel) with the channel innermost; else channels first: (e / S) per channel.
  const cl = g.channelsLast && g.S > 1 && g.C > 1;
  const modGeom = cl ? { inner: g.C, div: g.S, mod: perSample } : { inner: 1, div: g.S, mod: perSample * g.C };
  return { scale, shift, gate: null, scaleOffset, modGeom };
}

/** The backward's residual (the forward's; shape and dtype of x) and dsum (shape of x, float32 or x's dtype). */
export function modBackward(owner: object, o: Opts, x: Tensor): O.ModBackward {
  const residual = optTensor(o.residual, 'residual', owner);
  const dsum = optTensor(o.dsum, 'dsum', owner);
  expectShape(residual, 'residual', x.shape, 'the shape of x');
  expectDtype(residual, 'residual', x.dtype, 'x');
  expectShape(dsum, 'dsum', x.shape, 'the shape of x');
  return { residual, dsum };
}
