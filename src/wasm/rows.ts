/**
 * Layer and RMS norm on the wasm backend. Forward: one fused kernel per row (statistics, then the
 * normalized row while it is in cache). Backward: one fused kernel per block of ROWS_PER_PARTIAL
 * rows (each row's gradient sums, coefficients and dx, the row in cache), with dweight/dbias
 * partials per block, summed in float64.
 */
import type { Tensor } from '../tensor.ts';
import { NO_MOD_GRADS, hasModBackward } from '../ops.ts';
import type * as O from '../ops.ts';
import type { LayerNormArgs, LayerNormBwdArgs, LayerNormOut, RmsNormArgs, RmsNormBwdArgs, RmsNormBwdOut, RmsNormOut } from '../args/layer-norm.ts';
import type { WasmContext } from './context.ts';
import { hasMod, modulatedBackward, modulateInPlace, residualSum } from './modulate.ts';

/** Rows per dweight/dbias partial (the unit of work a thread takes in the backward). */
export const ROWS_PER_PARTIAL = 32;

/** x, or the fused sum residual + gate ⊙ x (rounded to x's dtype), which is also returned. */
function rowInput(b: WasmContext, a: RmsNormArgs): { x: Tensor; sum: Tensor | null } {
  if (!a.residual) return { x: a.x, sum: null };
  const sum = residualSum(b, a.x, a.residual, a);
  return { x: sum, sum };
}

function rowsForward(b: WasmContext, a: RmsNormArgs, bias: Tensor | null, rms: boolean) {
  const { x, sum } = rowInput(b, a);
  const { rows: R, K } = a;
  const y = b.out(x.shape, a.x.dtype);
  const mean = rms ? null : b.out(a.statShape, 'float32');
  const rstd = b.out(a.statShape, 'float32');
  const w = a.weight ? a.weight._ptr : b.fill(K, 1);
  const bb = bias ? bias._ptr : b.fill(K, 0);
  // float16 y without a modulation: rounded by the kernel, row by row while in cache.
  const mod = hasMod(a);
  const half = !mod && y.dtype === 'float16' ? 1 : 0;
  b.run('rows_fwd', [x._ptr, y._ptr, K, rms ? 1 : 0, a.eps, w, bb, 0, 1, 1, 0, mean ? mean._ptr : 0, rstd._ptr, half], R, R * K);
  if (mod) modulateInPlace(b, y, a, false);
  if (!half) b.roundHalf(y);
  return { y, mean, rstd, sum };
}

export function layerNorm(b: WasmContext, a: LayerNormArgs): LayerNormOut {
  const r = rowsForward(b, a, a.bias, false);
  return { y: r.y, mean: r.mean!, rstd: r.rstd, sum: r.sum };
}

export function rmsNorm(b: WasmContext, a: RmsNormArgs): RmsNormOut {
  const r = rowsForward(b, a, null, true);
  return { y: r.y, rstd: r.rstd, sum: r.sum };
}

/** The norm's backward; `dy` / `x` replace a's (a modulated backward's dn and the recomputed sum); f32: dx left float32. */
function rowsBackward(b: WasmContext, a: RmsNormBwdArgs, mean: Tensor | null, bias: Tensor | null, o: { dy?: Tensor; x?: Tensor; f32?: boolean } = {}): O.BwdOut {
  const { rows: R, K } = a;
  const dy = o.dy ?? a.dy, x = o.x ?? a.x;
  const dx = b.out(x.shape, o.f32 ? 'float32' : x.dtype);
  const w = a.weight ? a.weight._ptr : b.fill(K, 1);
  const partials = !!a.weight || !!bias;
  const RB = partials ? ROWS_PER_PARTIAL : 1;
  const blocks = Math.ceil(R / RB);
  const dwp = a.weight ? b.temp(blocks * K * 4) : 0;
  const dbp = bias ? b.temp(blocks * K * 4) : 0;
  // One kernel per block of rows: each row's gradient sums, coefficients and dx (rows_bwd).
  b.run('rows_bwd', [dy._ptr, x._ptr, dx._ptr, K, R, RB, mean ? mean._ptr : 0, a.rstd._ptr, w, dwp, dbp], blocks, 2 * R * K);
  b.roundHalf(dx);
  const colSums = (src: number, like: Tensor): Tensor => {
    const t = b.out(a.normalizedShape, like.dtype);
    b.run('sum_partials', [src, blocks, K, t._ptr], K, blocks * K);
    b.roundHalf(t);
    return t;
  };
  return { dx, dweight: a.weight ? colSums(dwp, a.weight) : null, dbias: bias ? colSums(dbp, bias) : null };
}


/** The norm's output again from its input and the saved statistics (float32 intermediate). */
function normalizedRows(b: WasmContext, a: RmsNormBwdArgs, mean: Tensor | null, bias: Tensor | null, xin: Tensor): Tensor {
  const { rows: R, K } = a;
  const n = b.scratch(a.x.shape);
  const tab = b.f32Temp(mean ? b.values(mean) : new Float32Array(R), new Float32Array(R), b.values(a.rstd));
  b.run('apply_rows', [xin._ptr, n._ptr, K, tab, R, a.weight ? a.weight._ptr : b.fill(K, 1), bias ? bias._ptr : b.fill(K, 0)], R, R * K);
  return n;
}

function rowsModBackward(b: WasmContext, a: RmsNormBwdArgs, mean: Tensor | null, bias: Tensor | null): O.ModBwdOut {
  if (!hasModBackward(a)) return Object.assign(rowsBackward(b, a, mean, bias), NO_MOD_GRADS);
  return modulatedBackward(b, a, false, (xin) => normalizedRows(b, a, mean, bias, xin), (dn, xin, f32) => rowsBackward(b, a, mean, bias, { dy: dn, x: xin, f32 }));
}

export function layerNormBackward(b: WasmContext, a: LayerNormBwdArgs): O.ModBwdOut {
  return rowsModBackward(b, a, a.mean, a.bias);
}

export function rmsNormBackward(b: WasmContext, a: RmsNormBwdArgs): RmsNormBwdOut & O.ModGradsOut {
  const { dbias: _none, ...rest } = rowsModBackward(b, a, null, null);
  return rest;
}
