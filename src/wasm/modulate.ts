/**
 * The modulation (scale, shift, scaleOffset, gate; adaLN / AdaGN) and the gated residual on the
 * wasm backend, composed around the norms as the float64 reference composes them
 * (src/cpu/modulate.ts):
 *   forward   sum = residual + gate ⊙ x (gated_add); the norm; y = act(n ⊙ (scaleOffset + scale) + shift) (modulate)
 *   backward  n again from the saved statistics; dz = dy·act'(z), dn = dz ⊙ (scaleOffset + scale),
 *             dscale = Σ dz ⊙ n, dshift = Σ dz (mod_grads); the norm's backward with dn;
 *             t = dx_norm + dsum, dresidual = t, dx = gate ⊙ t, dgate = Σ t ⊙ x (residual_grads).
 * Intermediates stay float32 (no float16 rounding before the outputs).
 */
import type { Tensor } from '../tensor.ts';
import type * as O from '../ops.ts';
import { CHUNK } from './module.ts';
import type { WasmContext } from './context.ts';

/** The broadcast geometry as rows of `inner` (modGeom; none: every element reads element 0). */
export function geomOf(a: O.Modulation, n: number): { inner: number; div: number; mod: number; rows: number; M: number } {
  const g = a.modGeom ?? { inner: 1, div: Math.max(n, 1), mod: 1 };
  const t = a.scale ?? a.shift ?? a.gate;
  return { ...g, rows: g.inner ? n / g.inner : 0, M: t ? t.size : 1 };
}

export const hasMod = (a: O.Modulation): boolean => !!(a.scale || a.shift);

/** residual + gate ⊙ x (or residual + x), in x's dtype (the forward's `sum`; also recomputed by the backward). */
export function residualSum(b: WasmContext, x: Tensor, residual: Tensor, a: O.Modulation): Tensor {
  const sum = b.out(x.shape, x.dtype);
  const n = x.size;
  if (a.gate) {
    const g = geomOf(a, n);
    b.run('gated_add', [x._ptr, residual._ptr, sum._ptr, a.gate._ptr, g.inner, g.div, g.mod], g.rows, 3 * n);
  } else {
    b.run('add', [x._ptr, residual._ptr, sum._ptr, n], Math.ceil(n / CHUNK), 2 * n);
  }
  b.roundHalf(sum);
  return sum;
}

/** y = act(y ⊙ (scaleOffset + scale) + shift) in place (y float32 values, rounded by the caller). */
export function modulateInPlace(b: WasmContext, y: Tensor, a: O.Modulation, silu: boolean): void {
  const g = geomOf(a, y.size);
  b.run('modulate', [y._ptr, g.inner, g.div, g.mod, a.scale?._ptr ?? 0, a.shift?._ptr ?? 0, a.scaleOffset, silu ? 1 : 0], g.rows, y.size);
}

/** A float32 tensor of x's shape for intermediates (freed with the op's temporaries). */
export function f32Like(b: WasmContext, x: Tensor): Tensor {
  return b.scratch(x.shape);
}

/**
 * The modulated backward around a norm's backward. `normalized(xin)`: the norm's output n
 * (float32) from its input with the saved statistics; `norm(dn, xin, f32)`: the norm's backward
 * with dy = dn, dx left float32 when f32 (the residual's gradients follow), else in x's dtype.
 */
export function modulatedBackward(
  b: WasmContext,
  a: O.Modulation & { dy: Tensor; x: Tensor; residual: Tensor | null; dsum: Tensor | null },
  silu: boolean,
  normalized: (xin: Tensor) => Tensor,
  norm: (dn: Tensor, xin: Tensor, f32: boolean) => O.BwdOut,
): O.ModBwdOut {
  const n = a.x.size;
  const g = geomOf(a, n);
  const xin = a.residual ? residualSum(b, a.x, a.residual, a) : a.x;
  let dn = a.dy;
  let dscale: Tensor | null = null, dshift: Tensor | null = null;
  if (hasMod(a) || silu) {
    const nv = normalized(xin);
    dn = f32Like(b, a.x);
    const acc = b.temp(16 * g.M);
    b.m.f64(acc, 2 * g.M).fill(0);
    b.run('mod_grads', [a.dy._ptr, nv._ptr, dn._ptr, g.inner, g.div, g.mod, a.scale?._ptr ?? 0, a.shift?._ptr ?? 0, a.scaleOffset, silu ? 1 : 0, acc, g.M, g.rows], 1, 2 * n);
    const v = b.m.f64(acc, 2 * g.M);
    const sums = [Float32Array.from(v.subarray(0, g.M)), Float32Array.from(v.subarray(g.M))];
    if (a.shift) dshift = outOf(b, sums[0]!, a.shift);
    if (a.scale) dscale = outOf(b, sums[1]!, a.scale);
  }
  const tail = !!(a.residual || a.dsum || a.gate);
  const r = norm(dn, xin, tail);
  if (xin !== a.x) xin.destroy();
  let dx = r.dx;
  let dgate: Tensor | null = null, dresidual: Tensor | null = null;
  if (tail) {
    dx = b.out(a.x.shape, a.x.dtype);
    dresidual = a.residual ? b.out(a.x.shape, a.x.dtype) : null;
    const acc = b.temp(8 * g.M);
    b.m.f64(acc, g.M).fill(0);
    b.run('residual_grads', [r.dx._ptr, a.dsum?._ptr ?? 0, a.x._ptr, a.gate?._ptr ?? 0, dresidual?._ptr ?? 0, dx._ptr, g.inner, g.div, g.mod, acc, g.rows], 1, 3 * n);
    if (a.gate) dgate = outOf(b, Float32Array.from(b.m.f64(acc, g.M)), a.gate);
    r.dx.destroy();
  }
  b.roundHalf(dx);
  b.roundHalf(dresidual);
  return { dx, dweight: r.dweight, dbias: r.dbias, dscale, dshift, dgate, dresidual };
}

function outOf(b: WasmContext, v: Float32Array, like: Tensor): Tensor {
  const t = b.out(like.shape, like.dtype);
  b.values(t).set(v);
  b.roundHalf(t);
  return t;
}
