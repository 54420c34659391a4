/** The CPU backend: the same API on Float32Arrays, through the float64 reference. */
import { Tensor, type DType } from '../tensor.ts';
import * as O from '../ops.ts';
import * as ref from './reference.ts';
import { roundToHalf } from '../half.ts';
import type { HostTensor } from './host.ts';
import type { F64Tensor } from './common.ts';
import { l2Normalize64, l2NormalizeBackward64 } from './l2-normalize.ts';
import { gatedSum, modIndex, modulate, modulationGrads, normalizedWith, residualGrads } from './modulate.ts';

export class CpuBackend implements O.Backend {
  readonly kind = 'cpu' as const;
  constructor(private readonly owner: object) {}

  private make(data: Float32Array, shape: readonly number[], dtype: DType): Tensor {
    return new Tensor(this.owner, shape, dtype, { data: dtype === 'float16' ? roundToHalf(data) : data }, true);
  }
  private out(h: HostTensor, dtype: DType): Tensor {
    return this.make(h.data, h.shape, dtype);
  }
  private h(t: Tensor): HostTensor;
  private h(t: Tensor | null): HostTensor | null;
  private h(t: Tensor | null): HostTensor | null {
    return t ? { data: t._data!, shape: t.shape } : null;
  }

  tensor(data: Float32Array, shape: readonly number[], dtype: DType): Tensor {
    return this.make(Float32Array.from(data), shape, dtype);
  }
  async read(t: Tensor): Promise<Float32Array> {
    return Float32Array.from(t._data!);
  }

  /** Where each element of x reads its modulation (null: no modulation). */
  private idx(a: O.Modulation, n: number): Int32Array | null {
    return a.modGeom ? modIndex(n, a.modGeom) : null;
  }
  private d(t: Tensor | null): Float32Array | null {
    return t ? t._data! : null;
  }
  /** A float64 result rounded to `dtype` as a tensor of `shape`. */
  private out64(data: Float64Array, shape: readonly number[], dtype: DType): Tensor {
    return this.make(Float32Array.from(data), shape, dtype);
  }

  /** x, or the fused residual + gate ⊙ x (returned as `sum`, in x's dtype). */
  private rowInput(a: O.RmsNormArgs): { x: HostTensor; sum: Tensor | null } {
    if (!a.residual) return { x: this.h(a.x), sum: null };
    const s = gatedSum(a.x._data!, a.residual._data!, this.d(a.gate), this.idx(a, a.x.size));
    const sum = this.out64(s, a.x.shape, a.x.dtype);
    return { x: this.h(sum), sum };
  }

  /** y in x's dtype: the norm's float64 output, modulated where asked. */
  private modOut(a: O.Modulation & { x: Tensor }, y: F64Tensor, silu: boolean): Tensor {
    const m = { scale: this.d(a.scale), shift: this.d(a.shift), scaleOffset: a.scaleOffset, silu };
    return this.out64(modulate(Float64Array.from(y.data), this.idx(a, a.x.size), m), a.x.shape, a.x.dtype);
  }

  layerNorm(a: O.LayerNormArgs): O.LayerNormOut {
    const { x, sum } = this.rowInput(a);
    const r = ref.__f64.layerNorm(x, { normalizedShape: a.normalizedShape, weight: this.h(a.weight), bias: this.h(a.bias), eps: a.eps });
    return { y: this.modOut(a, r.y, false), mean: this.out64(r.mean.data, r.mean.shape, 'float32'), rstd: this.out64(r.rstd.data, r.rstd.shape, 'float32'), sum };
  }

  rmsNorm(a: O.RmsNormArgs): O.RmsNormOut {
    const { x, sum } = this.rowInput(a);
    const r = ref.__f64.rmsNorm(x, { normalizedShape: a.normalizedShape, weight: this.h(a.weight), eps: a.eps });
    return { y: this.modOut(a, r.y, false), rstd: this.out64(r.rstd.data, r.rstd.shape, 'float32'), sum };
  }

  layerNormBackward(a: O.LayerNormBwdArgs): O.ModBwdOut {
    return this.modBackward(a, a.mean, a.K, a.bias, null, (dy, x) =>
      ref.__f64.layerNormBackward(dy, x, this.h(a.mean), this.h(a.rstd), { normalizedShape: a.normalizedShape, weight: this.h(a.weight), bias: this.h(a.bias) }),
    );
  }

  rmsNormBackward(a: O.RmsNormBwdArgs): O.RmsNormBwdOut & O.ModGradsOut {
    const r = this.modBackward({ ...a, bias: null }, null, a.K, null, null, (dy, x) =>
      ref.__f64.rmsNormBackward(dy, x, this.h(a.rstd), { normalizedShape: a.normalizedShape, weight: this.h(a.weight) }),
    );
    const { dbias: _none, ...rest } = r;
    return rest;
  }

  /**
   * A backward with the modulation (any of scale, shift, gate, residual, dsum, SiLU): dy through
   * the activation and the modulation, the norm's float64 backward (`norm`), then the residual's
   * gradients. `K`: elements per statistic (rows); `group`: group norm's index maps instead.
   */
  private modBackward(
    a: O.Modulation & O.ModBackward & { dy: Tensor; x: Tensor; rstd: Tensor; weight: Tensor | null; bias: Tensor | null },
    mean: Tensor | null,
    K: number,
    bias: Tensor | null,
    group: { stat: (e: number) => number; aff: (e: number) => number; silu: boolean } | null,
    norm: (dy: F64Tensor, x: F64Tensor | HostTensor) => { dx: F64Tensor; dweight: F64Tensor | null; dbias?: F64Tensor | null },
  ): O.ModBwdOut {
    const n = a.x.size;
    const idx = this.idx(a, n);
    const mt = a.scale ?? a.shift ?? a.gate;
    const M = mt ? mt.size : 0;
    const xd = a.x._data!;
    // The norm's input: the forward's stored sum (rounded to x's dtype), recomputed.
    const xin: HostTensor = a.residual ? this.h(this.out64(gatedSum(xd, a.residual._data!, this.d(a.gate), idx), a.x.shape, a.x.dtype)) : this.h(a.x);
    const stat = group ? group.stat : (e: number) => Math.floor(e / Math.max(K, 1));
    const aff = group ? group.aff : (e: number) => e % Math.max(K, 1);
    const nv = normalizedWith(xin.data, this.d(mean), a.rstd._data!, stat, aff, this.d(a.weight), this.d(bias));
    const g = modulationGrads(a.dy._data!, nv, idx, M, { scale: this.d(a.scale), shift: this.d(a.shift), scaleOffset: a.scaleOffset, silu: group?.silu ?? false });
    const r = norm({ data: g.dn, shape: a.x.shape }, xin);
    const rg = residualGrads(r.dx.data, this.d(a.dsum), xd, this.d(a.gate), idx, M);
    const o64 = (d: Float64Array, t: Tensor | null) => (t ? this.out64(d, t.shape, t.dtype) : null);
    return {
      dx: this.out64(rg.dx, a.x.shape, a.x.dtype),
      dweight: r.dweight && this.out64(r.dweight.data, a.weight!.shape, a.weight!.dtype),
      dbias: r.dbias && bias ? this.out64(r.dbias.data, bias.shape, bias.dtype) : null,
      dscale: o64(g.dscale, a.scale),
      dshift: o64(g.dshift, a.shift),
      dgate: o64(rg.dgate, a.gate),
      dresidual: a.residual ? this.out64(rg.dresidual, a.x.shape, a.x.dtype) : null,
    };
  }

  private bwd(r: { dx: HostTensor; dweight: HostTensor | null; dbias: HostTensor | null }, a: { x: Tensor; weight: Tensor | null; bias: Tensor | null }): O.BwdOut {
    return {
      dx: this.out(r.dx, a.x.dtype),
      dweight: r.dweight && this.out(r.dweight, a.weight!.dtype),
      dbias: r.dbias && this.out(r.dbias, a.bias!.dtype),
    };
  }

  groupNorm(a: O.GroupNormArgs): O.GroupNormOut {
    const r = ref.__f64.groupNorm(this.h(a.x), { numGroups: a.G, weight: this.h(a.weight), bias: this.h(a.bias), eps: a.eps, channelsLast: a.channelsLast });
    return { y: this.modOut(a, r.y, a.silu), mean: this.out64(r.mean.data, r.mean.shape, 'float32'), rstd: this.out64(r.rstd.data, r.rstd.shape, 'float32') };
  }

  groupNormBackward(a: O.GroupNormBwdArgs): O.ModBwdOut {
    const { C, S, G } = a;
    const Cg = C / G;
    const cl = a.channelsLast;
    const stat = cl ? (e: number) => Math.floor(e / (S * C)) * G + Math.floor((e % C) / Cg) : (e: number) => Math.floor(e / (Cg * S));
    const aff = cl ? (e: number) => e % C : (e: number) => Math.floor(e / S) % C;
    return this.modBackward({ ...a, gate: null, residual: null, dsum: null }, a.mean, 0, a.bias, { stat, aff, silu: a.silu }, (dy, x) =>
      ref.__f64.groupNormBackward(dy, x, this.h(a.mean), this.h(a.rstd), { numGroups: a.G, weight: this.h(a.weight), bias: this.h(a.bias), channelsLast: a.channelsLast }),
    );
  }

  instanceNorm(a: O.InstanceNormArgs): O.GroupNormOut {
    return this.groupNorm({ ...a, G: a.C, silu: false, ...O.NO_MOD });
  }

  instanceNormBackward(a: O.InstanceNormBwdArgs): O.BwdOut {
    const { dx, dweight, dbias } = this.groupNormBackward({ ...a, G: a.C, silu: false, ...O.NO_MOD });
    return { dx, dweight, dbias };
  }

  batchNorm(a: O.BatchNormArgs): O.BatchNormOut {
    const r = ref.batchNorm(this.h(a.x), {
      training: a.training,
      weight: this.h(a.weight),
      bias: this.h(a.bias),
      runningMean: this.h(a.runningMean),
      runningVar: this.h(a.runningVar),
      momentum: a.momentum,
      eps: a.eps,
      numBatchesTracked: 0,
      channelsLast: a.channelsLast,
    });
    return { y: this.out(r.y, a.x.dtype), saveMean: this.out(r.saveMean, 'float32'), saveInvstd: this.out(r.saveInvstd, 'float32') };
  }

  batchNormBackward(a: O.BatchNormBwdArgs): O.BwdOut {
    const r = ref.batchNormBackward(this.h(a.dy), this.h(a.x), {
      training: a.training,
      weight: this.h(a.weight),
      bias: this.h(a.bias),
      runningMean: this.h(a.runningMean),
      runningVar: this.h(a.runningVar),
      saveMean: this.h(a.saveMean),
      saveInvstd: this.h(a.saveInvstd),
      eps: a.eps,
      channelsLast: a.channelsLast,
    });
    return this.bwd(r, a);
  }

  weightNorm(a: O.WeightNormArgs): O.WeightNormOut {
    const r = ref.weightNorm(this.h(a.v), this.h(a.g), { dim: a.dim });
    return { w: this.out(r.w, a.v.dtype), norms: this.out(r.norms, 'float32') };
  }

  weightNormBackward(a: O.WeightNormBwdArgs): O.WeightNormBwdOut {
    const r = ref.weightNormBackward(this.h(a.dw), this.h(a.v), this.h(a.g), this.h(a.norms), { dim: a.dim });
    return { dv: this.out(r.dv, a.v.dtype), dg: this.out(r.dg, a.g.dtype) };
  }

  l2Normalize(a: O.LpNormalizeArgs): O.LpNormalizeOut {
    const r = l2Normalize64(a.x._data!, a);
    return { y: this.out64(r.y, a.x.shape, a.x.dtype), norms: this.out64(r.norms, a.normShape, 'float32') };
  }

  l2NormalizeBackward(a: O.LpNormalizeBwdArgs): { dx: Tensor } {
    return { dx: this.out64(l2NormalizeBackward64(a.dy._data!, a.x._data!, a.norms._data!, a), a.x.shape, a.x.dtype) };
  }

  destroy(): void {}
}
