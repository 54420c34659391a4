/** The CPU backend: the same API on Float32Arrays, through the float64 reference. */
import { Tensor, type DType } from '../tensor.ts';
import type * as O from '../ops.ts';
import * as ref from './reference.ts';
import { roundToHalf } from './half.ts';
import type { HostTensor } from './host.ts';

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

  /** x, or the fused x + residual (returned as `sum`, in x's dtype). */
  private rowInput(a: O.RmsNormArgs): { x: HostTensor; sum: Tensor | null } {
    if (!a.residual) return { x: this.h(a.x), sum: null };
    const s = new Float32Array(a.x.size);
    const xd = a.x._data!, rd = a.residual._data!;
    for (let i = 0; i < s.length; i++) s[i] = xd[i]! + rd[i]!;
    const sum = this.make(s, a.x.shape, a.x.dtype);
    return { x: this.h(sum), sum };
  }

  layerNorm(a: O.LayerNormArgs): O.LayerNormOut {
    const { x, sum } = this.rowInput(a);
    const r = ref.layerNorm(x, { normalizedShape: a.normalizedShape, weight: this.h(a.weight), bias: this.h(a.bias), eps: a.eps });
    return { y: this.out(r.y, a.x.dtype), mean: this.out(r.mean, 'float32'), rstd: this.out(r.rstd, 'float32'), sum };
  }

  rmsNorm(a: O.RmsNormArgs): O.RmsNormOut {
    const { x, sum } = this.rowInput(a);
    const r = ref.rmsNorm(x, { normalizedShape: a.normalizedShape, weight: this.h(a.weight), eps: a.eps });
    return { y: this.out(r.y, a.x.dtype), rstd: this.out(r.rstd, 'float32'), sum };
  }

  layerNormBackward(a: O.LayerNormBwdArgs): O.BwdOut {
    const r = ref.layerNormBackward(this.h(a.dy), this.h(a.x), this.h(a.mean), this.h(a.rstd), {
      normalizedShape: a.normalizedShape,
      weight: this.h(a.weight),
      bias: this.h(a.bias),
    });
    return this.bwd(r, a);
  }

  rmsNormBackward(a: O.RmsNormBwdArgs): O.RmsNormBwdOut {
    const r = ref.rmsNormBackward(this.h(a.dy), this.h(a.x), this.h(a.rstd), { normalizedShape: a.normalizedShape, weight: this.h(a.weight) });
    return { dx: this.out(r.dx, a.x.dtype), dweight: r.dweight && this.out(r.dweight, a.weight!.dtype) };
  }

  private bwd(r: { dx: HostTensor; dweight: HostTensor | null; dbias: HostTensor | null }, a: { x: Tensor; weight: Tensor | null; bias: Tensor | null }): O.BwdOut {
    return {
      dx: this.out(r.dx, a.x.dtype),
      dweight: r.dweight && this.out(r.dweight, a.weight!.dtype),
      dbias: r.dbias && this.out(r.dbias, a.bias!.dtype),
    };
  }

  groupNorm(a: O.GroupNormArgs): O.GroupNormOut {
    const r = ref.groupNorm(this.h(a.x), { numGroups: a.G, weight: this.h(a.weight), bias: this.h(a.bias), eps: a.eps, channelsLast: a.channelsLast });
    if (a.silu) {
      const y = r.y.data;
      for (let i = 0; i < y.length; i++) y[i] = y[i]! / (1 + Math.exp(-y[i]!));
    }
    return { y: this.out(r.y, a.x.dtype), mean: this.out(r.mean, 'float32'), rstd: this.out(r.rstd, 'float32') };
  }

  groupNormBackward(a: O.GroupNormBwdArgs): O.BwdOut {
    const r = ref.groupNormBackward(this.h(a.dy), this.h(a.x), this.h(a.mean), this.h(a.rstd), { numGroups: a.G, weight: this.h(a.weight), bias: this.h(a.bias), channelsLast: a.channelsLast });
    return this.bwd(r, a);
  }

  instanceNorm(a: O.InstanceNormArgs): O.GroupNormOut {
    return this.groupNorm({ ...a, G: a.C, silu: false });
  }

  instanceNormBackward(a: O.InstanceNormBwdArgs): O.BwdOut {
    return this.groupNormBackward({ ...a, G: a.C });
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

  destroy(): void {}
}
