/**
 * The `wgsl` command's output (src/kernels/print.ts): snapshots of a few kernels as they compile
 * (a change to a shader shows up here as text to review), each compiled on the device without
 * errors or warnings, and the bindings it infers agreeing with what the plans bind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Norms } from '../src/index.ts';
import { kernelWGSL, bindingsOf } from '../src/kernels/print.ts';
import { shaderSource } from '../src/kernels/source.ts';
import { gpuNorms } from './util/gpu.ts';

let n: Norms;
beforeAll(async () => {
  n = await gpuNorms();
});
afterAll(() => n?.destroy());

const VARIANTS: [string, string[], { float16?: string[] }?][] = [
  ['normalize_elements', ['ALIGNED', 'HAS_W', 'HAS_B', 'MEAN_PAIR']],
  ['fused_rows_welford', ['ALIGNED', 'HAS_W', 'HAS_B', 'RESIDUAL']],
  ['workgroup_rows_welford', ['NV4', 'HAS_W', 'HAS_B'], { float16: ['X', 'Y'] }],
  ['workgroup_rows_grad', ['NV2', 'HAS_MEAN', 'HAS_W', 'DWDB']],
  ['grad_partials', ['HAS_MEAN', 'HAS_RSTD', 'W_BY_I']],
  ['finalize_mean_rstd', []],
  ['modulation_grad_partials', ['HAS_MEAN', 'MG_SC', 'MG_DIRECT']],
  ['lp_normalize_lanes', []],
];

describe('kernels as compiled', () => {
  for (const [entry, flags, opts] of VARIANTS) {
    const name = `${entry}${flags.length ? `.${flags.join('.')}` : ''}${opts?.float16 ? '.f16' : ''}`;
    it(name, async () => {
      const code = kernelWGSL(entry, flags, opts);
      await expect(code).toMatchFileSnapshot(`./__snapshots__/wgsl/${name}.wgsl`);
      const m = n.device!.createShaderModule({ code });
      const info = await m.getCompilationInfo();
      expect(info.messages.map((x) => `${x.type} ${x.lineNum}: ${x.message}`)).toEqual([]);
    });
  }

  it('infers the bindings a plan binds (layer norm forward on this adapter)', () => {
    const x = n.tensor(new Float32Array(8 * 64), [8, 64]);
    const w = n.tensor(new Float32Array(64), [64]);
    const plans = n._gpu!.planOnly(() => n.layerNorm(x, { normalizedShape: [64], weight: w, bias: w }));
    for (const s of plans[0]!.steps) {
      const inferred = bindingsOf(shaderSource(s.entry, s.flags)).map((b) => b.name).sort();
      expect(inferred, s.entry).toEqual(s.binds.map((b) => b.name).sort());
    }
  });
});
