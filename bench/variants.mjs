// Variants: other ways to compute (or compare with) a case on the same device, in both runners,
// timed round-robin with the fused op and the copy kernel (bench/core.mjs), each checked before
// it is timed. A case lists them in `variants` (bench/cases.mjs).
//
//   compose     the unfused composition of our own ops and small WGSL passes (bench/peers/compose.mjs),
//               checked against the case's CPU reference on every output
//   plain       our plain layerNorm on the same x (no residual, no modulation): the op the fused
//               one must keep up with; checked against its own CPU reference
//   plain+res   our layerNorm with the (ungated) fused residual on the same x and residual: the
//               same bulk bytes as the gated, modulated forward (read x and residual, write y and sum)
//
// A variant's job: { what, run(), flush(), outputs() -> { name: Float32Array }, refs? (its own
// references; else the case's), bytes (the minimal bytes its GB/s is over), traffic(p, wrap)? -> { out: the
// library calls' outputs on the profiling instance p, extraBytes: bytes of passes of its own } }.
import { composeUnsupported, createCompose } from './peers/compose.mjs';

const plainOpts = (c, residual) => ({ normalizedShape: c.opts.normalizedShape ?? [c.shape[c.shape.length - 1]], ...(c.opts.eps !== undefined ? { eps: c.opts.eps } : {}), ...(residual ? { residual } : {}) });

function plainVariant(withResidual) {
  return {
    label: withResidual ? 'plain layerNorm +residual' : 'plain layerNorm',
    unsupported(c) {
      if (c.op !== 'layerNorm' || c.dir !== 'fwd') return 'forward layer norm only';
      return null;
    },
    async prepare(c, { norms, cpu, Tg, Tc, numel, bpe }) {
      const call = (N, T) => N.layerNorm(T.x, plainOpts(c, withResidual ? T.residual : null));
      const refs = {};
      const ro = call(cpu, Tc);
      try {
        for (const [k, t] of Object.entries(ro)) if (t) refs[k] = await cpu.read(t);
      } finally {
        for (const t of Object.values(ro)) t?.destroy?.();
      }
      const rows = numel / c.shape[c.shape.length - 1];
      return {
        what: withResidual ? 'layerNorm(x, { residual }) (ours, no affine)' : 'layerNorm(x) (ours, no affine)',
        refs,
        // plain: read x, write y and the statistics; +residual: read x and residual, write y and sum.
        bytes: (withResidual ? 4 : 2) * numel * bpe + 2 * rows * 4,
        run() {
          const o = call(norms, Tg);
          let p = null;
          for (const t of Object.values(o)) {
            if (!p && t?._pending) p = t._pending;
            t?.destroy?.();
          }
          return p;
        },
        flush: () => norms.flush?.(),
        async outputs() {
          const o = call(norms, Tg);
          const out = {};
          try {
            for (const [k, t] of Object.entries(o)) if (t) out[k] = await norms.read(t);
          } finally {
            for (const t of Object.values(o)) t?.destroy?.();
          }
          return out;
        },
        async traffic(p, wrap) {
          return { out: call(p, { x: wrap(Tg.x), residual: withResidual ? wrap(Tg.residual) : null }), extraBytes: 0 };
        },
        destroy() {},
      };
    },
  };
}

export const VARIANTS = {
  compose: {
    label: 'composition',
    unsupported: composeUnsupported,
    async prepare(c, { norms, host, caseBytes }) {
      const job = createCompose(c, norms, host);
      return {
        ...job,
        bytes: caseBytes,
        // The library's part, profiled; the composition's own passes counted by compose.mjs.
        async traffic(p, wrap) {
          return { out: job.libCall(p, (b, shape) => wrap({ buffer: b, shape, dtype: 'float32' })), extraBytes: job.bytes };
        },
      };
    },
  },
  plain: plainVariant(false),
  'plain+res': plainVariant(true),
};
