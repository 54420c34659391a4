/**
 * Float64 reference of the modulation (adaLN / AdaGN) and the gated residual, composed around
 * the norms' own float64 references (layer-norm.ts, group-norm.ts):
 *   forward   sum = residual + gate ⊙ x;  y = act(n ⊙ (scaleOffset + scale) + shift)
 *   backward  dz = dy ⊙ act'(z) (z the value before the activation), dn = dz ⊙ (scaleOffset + scale),
 *             the norm's backward with dn, t = dx_norm + dsum, dresidual = t, dx = gate ⊙ t,
 *             dscale = Σ dz ⊙ n, dshift = Σ dz, dgate = Σ t ⊙ x over the broadcast dims.
 * Element e of x uses modulation element m(e) = ((e / inner / div) % mod) * inner + e % inner.
 */
import { normApply, type Arr, type F64Tensor, type Grouping } from './common.ts';
import type * as O from '../ops.ts';
import type { RmsNormArgs } from '../args/layer-norm.ts';
import type { ModGeom } from '../ops.ts';
import type { Tensor } from '../tensor.ts';
import type { CpuHost, HostTensor } from './host.ts';

/** The modulation index of every element of x (n elements). */
export function modIndex(n: number, g: ModGeom): Int32Array {
  const out = new Int32Array(n);
  for (let e = 0; e < n; e++) {
    const row = Math.floor(e / g.inner);
    out[e] = (Math.floor(row / g.div) % g.mod) * g.inner + (e - row * g.inner);
  }
  return out;
}

export interface ModInputs {
  scale: Arr | null;
  shift: Arr | null;
  scaleOffset: number;
  silu: boolean;
}

/** y = act(n ⊙ (scaleOffset + scale) + shift), in place on n. */
export function modulate(n: Float64Array, idx: Int32Array | null, m: ModInputs): Float64Array {
  for (let e = 0; e < n.length; e++) {
    let v = n[e]!;
    if (idx && m.scale) v *= m.scaleOffset + m.scale[idx[e]!]!;
    if (idx && m.shift) v += m.shift[idx[e]!]!;
    if (m.silu) v = v / (1 + Math.exp(-v));
    n[e] = v;
  }
  return n;
}

/** residual + gate ⊙ x (gate null: 1). */
export function gatedSum(x: Arr, residual: Arr, gate: Arr | null, idx: Int32Array | null): Float64Array {
  const s = new Float64Array(x.length);
  for (let e = 0; e < x.length; e++) s[e] = residual[e]! + (gate && idx ? gate[idx[e]!]! : 1) * x[e]!;
  return s;
}

/**
 * The backward's start: dz (dy through the activation, given n, the norm's output before the
 * modulation) and dn = dz ⊙ (scaleOffset + scale), the gradient the norm's own backward takes;
 * with dshift = Σ dz and dscale = Σ dz ⊙ n per modulation element (M of them).
 */
export function modulationGrads(dy: Arr, n: Float64Array, idx: Int32Array | null, M: number, m: ModInputs): { dn: Float64Array; dscale: Float64Array; dshift: Float64Array } {
  const dn = new Float64Array(dy.length);
  const dscale = new Float64Array(M);
  const dshift = new Float64Array(M);
  for (let e = 0; e < dy.length; e++) {
    const k = idx ? idx[e]! : 0;
    let dz = dy[e]!;
    if (m.silu) {
      let z = n[e]!;
      if (idx && m.scale) z *= m.scaleOffset + m.scale[k]!;
      if (idx && m.shift) z += m.shift[k]!;
      const s = 1 / (1 + Math.exp(-z));
      dz *= s * (1 + z * (1 - s));
    }
    dshift[k] += dz;
    dscale[k] += dz * n[e]!;
    dn[e] = idx && m.scale ? dz * (m.scaleOffset + m.scale[k]!) : dz;
  }
  return { dn, dscale, dshift };
}

/** The end of the backward: t = dx_norm + dsum; dresidual = t; dx = gate ⊙ t; dgate = Σ t ⊙ x. */
export function residualGrads(dxNorm: Float64Array, dsum: Arr | null, x: Arr, gate: Arr | null, idx: Int32Array | null, M: number) {
  const t = new Float64Array(dxNorm.length);
  const dx = new Float64Array(dxNorm.length);
  const dgate = new Float64Array(M);
  for (let e = 0; e < t.length; e++) {
    const v = dxNorm[e]! + (dsum ? dsum[e]! : 0);
    t[e] = v;
    if (gate && idx) {
      dx[e] = gate[idx[e]!]! * v;
      dgate[idx[e]!] += v * x[e]!;
    } else dx[e] = v;
  }
  return { dresidual: t, dx, dgate };
}

// ---- the modulated ops on the cpu backend, around the norms' float64 references ----

/** Where each element of x reads its modulation (null: no modulation). */
function idxOf(a: O.Modulation, n: number): Int32Array | null {
  return a.modGeom ? modIndex(n, a.modGeom) : null;
}

/** The norm's input: x, or the fused residual + gate ⊙ x (returned as `sum`, in x's dtype). */
export function rowInput(c: CpuHost, a: RmsNormArgs): { x: HostTensor; sum: Tensor | null } {
  if (!a.residual) return { x: c.h(a.x), sum: null };
  const s = gatedSum(a.x._data!, a.residual._data!, c.d(a.gate), idxOf(a, a.x.size));
  const sum = c.out64(s, a.x.shape, a.x.dtype);
  return { x: c.h(sum), sum };
}

/** y in x's dtype: the norm's float64 output, modulated where asked (and through SiLU). */
export function modOut(c: CpuHost, a: O.Modulation & { x: Tensor }, y: F64Tensor, silu: boolean): Tensor {
  const m = { scale: c.d(a.scale), shift: c.d(a.shift), scaleOffset: a.scaleOffset, silu };
  return c.out64(modulate(Float64Array.from(y.data), idxOf(a, a.x.size), m), a.x.shape, a.x.dtype);
}

/**
 * A backward with the modulation (any of scale, shift, gate, residual, dsum, SiLU): dy through
 * the activation and the modulation, the norm's float64 backward (`norm`), then the residual's
 * gradients. `groups`: the norm's groupings of its statistics (sg) and of its weight and bias
 * (ag), as its forward's (normApply recomputes its output n from them).
 */
export function modBackward(
  c: CpuHost,
  a: O.Modulation & O.ModBackward & { dy: Tensor; x: Tensor; rstd: Tensor; weight: Tensor | null },
  mean: Tensor | null,
  bias: Tensor | null,
  groups: { sg: Grouping; ag: Grouping },
  silu: boolean,
  norm: (dy: F64Tensor, x: F64Tensor | HostTensor) => { dx: F64Tensor; dweight: F64Tensor | null; dbias?: F64Tensor | null },
): O.ModBwdOut {
  const n = a.x.size;
  const idx = idxOf(a, n);
  const mt = a.scale ?? a.shift ?? a.gate;
  const M = mt ? mt.size : 0;
  const xd = a.x._data!;
  // The norm's input: the forward's stored sum (rounded to x's dtype), recomputed.
  const xin: HostTensor = a.residual ? c.h(c.out64(gatedSum(xd, a.residual._data!, c.d(a.gate), idx), a.x.shape, a.x.dtype)) : c.h(a.x);
  const nv = normApply(xin.data, c.d(mean), a.rstd._data!, groups.sg, groups.ag, c.d(a.weight), c.d(bias));
  const g = modulationGrads(a.dy._data!, nv, idx, M, { scale: c.d(a.scale), shift: c.d(a.shift), scaleOffset: a.scaleOffset, silu });
  const r = norm({ data: g.dn, shape: a.x.shape }, xin);
  const rg = residualGrads(r.dx.data, c.d(a.dsum), xd, c.d(a.gate), idx, M);
  const o64 = (d: Float64Array, t: Tensor | null) => (t ? c.out64(d, t.shape, t.dtype) : null);
  return {
    dx: c.out64(rg.dx, a.x.shape, a.x.dtype),
    dweight: r.dweight && c.out64(r.dweight.data, a.weight!.shape, a.weight!.dtype),
    dbias: r.dbias && bias ? c.out64(r.dbias.data, bias.shape, bias.dtype) : null,
    dscale: o64(g.dscale, a.scale),
    dshift: o64(g.dshift, a.shift),
    dgate: o64(rg.dgate, a.gate),
    dresidual: a.residual ? c.out64(rg.dresidual, a.x.shape, a.x.dtype) : null,
  };
}
