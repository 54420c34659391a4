// The benchmark cases, shared by the Node runner (bench/node.mjs) and the browser page
// (bench/page.html via bench/page.mjs). The rows themselves are written in the shared op
// catalogue (test/catalog.js), in each op's entry (examples.benchFull, examples.benchQuick), with
// how each op is called and the op's own bits of a case's id (label); this file turns them into
// cases (id, minimal bytes) and names no op. How peers run a case: bench/peers/*.mjs.
//
// A case: { id, op, dir: 'fwd'|'bwd', shape, dtype, opts, bytes, peers, tag }
//   op     an op of the catalogue (OP_NAMES)
//   opts   op options that are not tensors (numGroups, training, residual, dim, normalized dims,
//          channelsLast: x is [N, *spatial, C])
//   tag    (optional) the workload the row stands for ('transformer', 'unet', 'dit', ...)
//   bytes  the minimal bytes moved: forward reads x and writes y (2·numel·bpe), backward reads
//          x and dy and writes dx (3·numel·bpe); the fused residual forward reads x and the
//          residual and writes y and sum (4·numel·bpe). Statistics and affine vectors are small
//          and not counted.
//   peers  which peer libraries are asked to run the same computation in the browser run.
//   bindingBytes  (optional) run on an instance whose storage bindings are capped at this many
//          bytes (createNorms maxBindingBytes): the tensors are processed in bound ranges, to
//          compare with the same case bound whole.
//   variants  (optional) other ways to compute the same case on the same device, in both runners
//          (bench/variants.mjs): 'compose' (the unfused composition of our ops and small WGSL
//          passes), 'plain' / 'plain+res' (our plain layer norm on the same x); timed round-robin
//          with ours and the copy kernel.
//   gpuClassTraffic  (optional) on a CPU-class adapter, also count the traffic of the GPU kernel
//          class (the op recorded, never run, on an adapterClass 'gpu' profiling instance).
//
// Modulated rows (DiT / SD3 / Flux adaLN: opts.modulate, opts.gate, opts.dsum) count more in
// their minimal bytes, see modulatedBytes.

import { examples, opEntry } from '../test/catalog.js';

export const BYTES_PER_ELEMENT = { float32: 4, float16: 2 };

export const numel = (shape) => shape.reduce((a, b) => a * b, 1);

/**
 * Minimal bytes of a modulated row case (scale / shift of shape M, gate of shape M; no weight or
 * bias in these cases, float32 statistics):
 *   forward   reads x, residual, scale, shift, gate; writes y, sum, mean and rstd
 *             = 4·numel·bpe + 3·M·bpe + 2·rows·4
 *   backward  reads dy, x, residual, dsum, mean, rstd, scale, gate; writes dx, dresidual, dscale,
 *             dshift, dgate = 6·numel·bpe + 2·rows·4 + 5·M·bpe
 * (the terms of absent options dropped: no residual, no gate, no dsum, rmsNorm's one statistic).
 */
export function modulatedBytes(c) {
  const o = c.opts ?? {};
  const bpe = BYTES_PER_ELEMENT[c.dtype];
  const mbpe = BYTES_PER_ELEMENT[o.modDtype ?? c.dtype];
  const n = numel(c.shape);
  const D = numel(o.normalizedShape ?? [c.shape[c.shape.length - 1]]);
  const rows = n / D;
  const M = o.modulate === 'token' ? n : o.modulate === 'shared' ? D : c.shape[0] * D;
  const stats = opEntry(c.op).saved.length * rows * 4; // the float32 statistics per row the backward takes
  const mods = o.modulate ? 2 : 0;
  const gate = o.gate && o.residual ? 1 : 0;
  const res = o.residual ? 2 : 0;
  if (c.dir === 'bwd') return (3 + res + (o.dsum ? 1 : 0)) * n * bpe + stats + ((o.modulate ? 1 : 0) + gate) * M * mbpe + (mods + gate) * M * mbpe;
  return (2 + res) * n * bpe + stats + (mods + gate) * M * mbpe;
}

/** Minimal bytes moved by a case (see the header). */
export function minimalBytes(c) {
  if (c.opts?.modulate || c.opts?.gate) return modulatedBytes(c);
  const n = numel(c.shape) * BYTES_PER_ELEMENT[c.dtype];
  if (c.dir === 'bwd') return 3 * n;
  if (c.opts?.residual) return 4 * n;
  return 2 * n;
}

const fmt = (shape) => `[${shape.join(', ')}]`;

/**
 * A benchmark case from one of an op's bench rows in the catalogue ({ op, dir, shape, dtype?,
 * opts?, peers?, tag?, bindingBytes?, variants?, gpuClassTraffic? }): its id (op, direction,
 * shape, dtype, the op's own label bits from its catalogue entry, then the modulation / residual,
 * layout and binding cap) and its minimal bytes.
 */
function make({ op, dir, shape, dtype = 'float32', opts = {}, peers = [], tag = '', bindingBytes = 0, variants = [], gpuClassTraffic = false }) {
  const bits = [op, dir, fmt(shape), dtype === 'float16' ? 'f16' : 'f32'];
  const own = opEntry(op).label?.(opts);
  if (own) bits.push(own);
  if (opts.modulate || opts.gate) bits.push(`adaLN${opts.gate ? '+gate' : ''}${opts.dsum ? '+dsum' : ''}`);
  else if (opts.residual) bits.push('+residual');
  if (opts.channelsLast) bits.push('NHWC');
  if (bindingBytes) bits.push(`bindings≤${bindingBytes >= 1 << 20 ? `${bindingBytes / (1 << 20)}MiB` : `${bindingBytes / 1024}KiB`}`);
  const c = { id: bits.join(' '), op, dir, shape, dtype, opts, peers, tag, ...(bindingBytes ? { bindingBytes } : {}), ...(variants.length ? { variants } : {}), ...(gpuClassTraffic ? { gpuClassTraffic } : {}) };
  c.bytes = minimalBytes(c);
  return c;
}

/**
 * The full list: every op's `benchFull` rows in the catalogue, op by op. Shapes: transformer rows
 * (decode [1, 4096], prefill [512, 4096], BERT-base [4096, 768]), short rows ([65536, 3],
 * [65536, 16]), diffusion-transformer adaLN blocks (DiT, SD3, Flux), a Stable Diffusion UNet group
 * norm, ResNet batch norms, channels-last copies of both, a style-transfer instance norm, a conv
 * weight norm, embeddings' L2 normalization, and rows with the storage binding capped.
 */
export function fullCases() {
  return examples('benchFull').map(make);
}

/** The same on tiny shapes (every op's `benchQuick` rows): a smoke run of every op, dtype and peer path in seconds. */
export function quickCases() {
  return examples('benchQuick').map(make);
}

/** Cases for a run: --quick picks the tiny list; --filter keeps ids containing the substring. */
export function selectCases({ quick = false, filter = '' } = {}) {
  const all = quick ? quickCases() : fullCases();
  if (!filter) return all;
  const f = filter.toLowerCase();
  return all.filter((c) => c.id.toLowerCase().includes(f));
}

/** Parse the runners' shared flags from argv-style strings. */
export function parseFlags(argv, defaults = {}) {
  const out = { quick: false, filter: '', budget: 2, peers: true, wasm: 'yes', ...defaults };
  for (const a of argv) {
    if (a === '--quick') out.quick = true;
    else if (a.startsWith('--filter=')) out.filter = a.slice(9);
    else if (a.startsWith('--budget=')) {
      const b = Number(a.slice(9));
      if (!(b > 0)) throw new Error(`--budget: expected seconds > 0, got ${a.slice(9)}`);
      out.budget = b;
    } else if (a === '--no-peers') out.peers = false;
    else if (a === '--wasm-only') out.wasm = 'only';
    else if (a === '--no-wasm') out.wasm = 'no';
    else if (a.startsWith('--adapter=')) out.adapter = a.slice(10);
    else if (a === '--help' || a === '-h') out.help = true;
    else if (a.startsWith('--out=')) out.out = a.slice(6);
    else if (a.startsWith('--lib=')) out.lib = a.slice(6);
    else if (a.startsWith('--adapter-class=')) {
      out.adapterClass = a.slice(16);
      if (!['auto', 'cpu', 'gpu'].includes(out.adapterClass)) throw new Error(`--adapter-class: expected auto, cpu or gpu, got ${out.adapterClass}`);
    }
    else if (a === '--save') out.save = true;
    else throw new Error(`unknown flag ${a} (try --help)`);
  }
  return out;
}
