/**
 * The wasm backend: every op on float32 WebAssembly kernels (shaders/wasm/, SIMD128 where the
 * engine has it) over tensors that live in the module's memory (context.ts). The ops' plans are
 * in rows.ts (layer/RMS norm), channels.ts (group/instance/batch norm), weight-norm.ts,
 * l2-normalize.ts and, around the norms, modulate.ts.
 */
import type { Tensor } from '../tensor.ts';
import type * as O from '../ops.ts';
import { NO_MOD } from '../ops.ts';
import { WasmContext } from './context.ts';
import * as rows from './rows.ts';
import * as channels from './channels.ts';
import * as wn from './weight-norm.ts';
import * as l2 from './l2-normalize.ts';

export class WasmBackend extends WasmContext implements O.Backend {
  readonly kind = 'wasm' as const;

  // ---- ops ----

  layerNorm(a: O.LayerNormArgs): O.LayerNormOut {
    return rows.layerNorm(this, a);
  }
  rmsNorm(a: O.RmsNormArgs): O.RmsNormOut {
    return rows.rmsNorm(this, a);
  }
  layerNormBackward(a: O.LayerNormBwdArgs): O.ModBwdOut {
    return rows.layerNormBackward(this, a);
  }
  rmsNormBackward(a: O.RmsNormBwdArgs): O.RmsNormBwdOut & O.ModGradsOut {
    return rows.rmsNormBackward(this, a);
  }
  groupNorm(a: O.GroupNormArgs): O.GroupNormOut {
    return channels.groupNorm(this, a);
  }
  groupNormBackward(a: O.GroupNormBwdArgs): O.ModBwdOut {
    return channels.groupNormBackward(this, a);
  }
  instanceNorm(a: O.InstanceNormArgs): O.GroupNormOut {
    // Named properties first, spreads last (V8's fast path; InstanceNormArgs has no G or silu).
    return channels.groupNorm(this, { G: a.C, silu: false, ...a, ...NO_MOD });
  }
  instanceNormBackward(a: O.InstanceNormBwdArgs): O.BwdOut {
    const { dx, dweight, dbias } = channels.groupNormBackward(this, { G: a.C, silu: false, ...a, ...NO_MOD });
    return { dx, dweight, dbias };
  }
  batchNorm(a: O.BatchNormArgs): O.BatchNormOut {
    return channels.batchNorm(this, a);
  }
  batchNormBackward(a: O.BatchNormBwdArgs): O.BwdOut {
    return channels.batchNormBackward(this, a);
  }
  weightNorm(a: O.WeightNormArgs): O.WeightNormOut {
    return wn.weightNorm(this, a);
  }
  weightNormBackward(a: O.WeightNormBwdArgs): O.WeightNormBwdOut {
    return wn.weightNormBackward(this, a);
  }

  l2Normalize(a: O.LpNormalizeArgs): O.LpNormalizeOut {
    return l2.l2Normalize(this, a);
  }
  l2NormalizeBackward(a: O.LpNormalizeBwdArgs): { dx: Tensor } {
    return l2.l2NormalizeBackward(this, a);
  }
}
