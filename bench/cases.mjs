// The one list of benchmark cases, shared by the Node runner (bench/node.mjs) and the browser
// page (bench/page.html via bench/page.mjs). Plain data: how each op is called lives in the
// shared op catalogue (test/catalog.js), how peers run it in bench/peers/*.mjs.
//
// A case: { id, op, dir: 'fwd'|'bwd', shape, dtype, opts, bytes, peers }
//   op     one of layerNorm | rmsNorm | groupNorm | instanceNorm | batchNorm | weightNorm | l2Normalize
//   opts   op options that are not tensors (numGroups, training, residual, dim, normalized dims,
//          channelsLast: x is [N, *spatial, C])
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
  const stats = (c.op === 'rmsNorm' ? 1 : 2) * rows * 4;
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

function make(op, dir, shape, { dtype = 'float32', opts = {}, peers = [], tag = '', bindingBytes = 0, variants = [], gpuClassTraffic = false } = {}) {
  const bits = [op, dir, fmt(shape), dtype === 'float16' ? 'f16' : 'f32'];
  if (opts.numGroups && op === 'groupNorm') bits.push(`G=${opts.numGroups}`);
  if (op === 'batchNorm') bits.push(opts.training ? 'train' : 'eval');
  if (opts.modulate || opts.gate) bits.push(`adaLN${opts.gate ? '+gate' : ''}${opts.dsum ? '+dsum' : ''}`);
  else if (opts.residual) bits.push('+residual');
  if (opts.channelsLast) bits.push('NHWC');
  if (op === 'weightNorm') bits.push(`dim=${opts.dim}`);
  if (op === 'l2Normalize') bits.push(`dim=${opts.dim ?? 1}${opts.p ? ` p=${opts.p}` : ''}`);
  if (bindingBytes) bits.push(`bindings≤${bindingBytes >= 1 << 20 ? `${bindingBytes / (1 << 20)}MiB` : `${bindingBytes / 1024}KiB`}`);
  const c = { id: bits.join(' '), op, dir, shape, dtype, opts, peers, tag, ...(bindingBytes ? { bindingBytes } : {}), ...(variants.length ? { variants } : {}), ...(gpuClassTraffic ? { gpuClassTraffic } : {}) };
  c.bytes = minimalBytes(c);
  return c;
}

/**
 * One diffusion-transformer block's norm (DiT / SD3 / Flux adaLN-Zero): layer norm without affine,
 * eps 1e-6, per-sample scale and shift [B, 1, D], the gated residual sum = residual + gate ⊙ x
 * (gate [B, 1, D]) normalized; the backward with the gradient reaching sum from later layers.
 * Forward against the unfused composition and our plain layer norm (and ORT-web in the browser),
 * backward against the composition.
 */
function adaLN(shape, tag) {
  const D = shape[shape.length - 1];
  const opts = { normalizedShape: [D], weight: false, bias: false, eps: 1e-6, residual: true, modulate: 'sample', gate: true };
  return [
    make('layerNorm', 'fwd', shape, { opts, peers: ['ort'], tag, variants: ['compose', 'plain', 'plain+res'], gpuClassTraffic: true }),
    make('layerNorm', 'bwd', shape, { opts: { ...opts, dsum: true }, tag, variants: ['compose'], gpuClassTraffic: true }),
  ];
}

/**
 * The full list. Shapes: transformer rows (decode [1, 4096], prefill [512, 4096], BERT-base
 * [4096, 768]), short rows ([65536, 3], [65536, 16]), a Stable Diffusion UNet group norm, ResNet batch norms, a style-transfer
 * instance norm and a conv weight norm.
 */
export function fullCases() {
  const T = [
    [1, 4096],
    [512, 4096],
    [4096, 768],
  ];
  const cs = [];
  for (const s of T) {
    const D = s[s.length - 1];
    cs.push(make('layerNorm', 'fwd', s, { opts: { normalizedShape: [D] }, peers: ['ort', 'tfjs'], tag: 'transformer' }));
    cs.push(make('layerNorm', 'bwd', s, { opts: { normalizedShape: [D] }, tag: 'transformer' }));
  }
  cs.push(make('layerNorm', 'fwd', [4096, 768], { dtype: 'float16', opts: { normalizedShape: [768] }, peers: ['ort', 'tfjs'], tag: 'transformer' }));
  cs.push(make('layerNorm', 'fwd', [4096, 768], { opts: { normalizedShape: [768], residual: true }, peers: ['ort', 'tfjs'], tag: 'transformer' }));
  for (const s of T) {
    const D = s[s.length - 1];
    cs.push(make('rmsNorm', 'fwd', s, { opts: { normalizedShape: [D] }, peers: ['ort', 'tfjs'], tag: 'transformer' }));
    cs.push(make('rmsNorm', 'bwd', s, { opts: { normalizedShape: [D] }, tag: 'transformer' }));
  }
  // Rows far shorter than a workgroup (a per-point norm over 3 coordinates, a head of 16): the
  // GPU class must not give each a workgroup (policy.ts SHORT_ROW).
  for (const K of [3, 16]) {
    cs.push(make('layerNorm', 'fwd', [65536, K], { opts: { normalizedShape: [K] }, tag: 'short rows' }));
    cs.push(make('layerNorm', 'bwd', [65536, K], { opts: { normalizedShape: [K] }, tag: 'short rows' }));
  }
  cs.push(make('groupNorm', 'fwd', [2, 320, 64, 64], { opts: { numGroups: 32 }, peers: ['ort', 'tfjs'], tag: 'unet' }));
  cs.push(make('groupNorm', 'bwd', [2, 320, 64, 64], { opts: { numGroups: 32 }, tag: 'unet' }));
  cs.push(make('groupNorm', 'fwd', [2, 320, 64, 64], { dtype: 'float16', opts: { numGroups: 32 }, peers: ['ort', 'tfjs'], tag: 'unet' }));
  cs.push(make('groupNorm', 'fwd', [1, 512, 32, 32], { opts: { numGroups: 32 }, peers: ['ort', 'tfjs'], tag: 'unet' }));
  cs.push(make('groupNorm', 'bwd', [1, 512, 32, 32], { opts: { numGroups: 32 }, tag: 'unet' }));
  for (const s of [
    [8, 64, 56, 56],
    [32, 64, 112, 112],
  ]) {
    cs.push(make('batchNorm', 'fwd', s, { opts: { training: true }, tag: 'cnn' }));
    cs.push(make('batchNorm', 'bwd', s, { opts: { training: true }, tag: 'cnn' }));
    cs.push(make('batchNorm', 'fwd', s, { opts: { training: false }, peers: ['ort', 'tfjs'], tag: 'cnn' }));
  }
  // Channels last ([N, *spatial, C], as TF.js and ORT-web's NHWC kernels keep activations): the
  // ResNet batch norm and the UNet group norm above, transposed.
  cs.push(make('batchNorm', 'fwd', [8, 56, 56, 64], { opts: { training: true, channelsLast: true }, tag: 'channels last' }));
  cs.push(make('batchNorm', 'bwd', [8, 56, 56, 64], { opts: { training: true, channelsLast: true }, tag: 'channels last' }));
  cs.push(make('batchNorm', 'fwd', [8, 56, 56, 64], { opts: { training: false, channelsLast: true }, tag: 'channels last' }));
  cs.push(make('groupNorm', 'fwd', [2, 64, 64, 320], { opts: { numGroups: 32, channelsLast: true }, tag: 'channels last' }));
  cs.push(make('groupNorm', 'bwd', [2, 64, 64, 320], { opts: { numGroups: 32, channelsLast: true }, tag: 'channels last' }));
  cs.push(make('instanceNorm', 'fwd', [2, 64, 64, 64], { peers: ['ort', 'tfjs'], tag: 'style' }));
  cs.push(make('instanceNorm', 'bwd', [2, 64, 64, 64], { tag: 'style' }));
  cs.push(make('weightNorm', 'fwd', [512, 512, 3, 3], { opts: { dim: 0 }, tag: 'conv' }));
  cs.push(make('weightNorm', 'bwd', [512, 512, 3, 3], { opts: { dim: 0 }, tag: 'conv' }));
  // L2 normalization (F.normalize): sentence / CLIP embeddings along the last dim, and along the
  // channels of an NCHW feature map (a middle dim: strided lanes).
  cs.push(make('l2Normalize', 'fwd', [4096, 768], { opts: { dim: -1 }, tag: 'embeddings' }));
  cs.push(make('l2Normalize', 'bwd', [4096, 768], { opts: { dim: -1 }, tag: 'embeddings' }));
  cs.push(make('l2Normalize', 'fwd', [8, 64, 56, 56], { opts: { dim: 1 }, tag: 'channels' }));
  // Diffusion transformers: DiT-XL/2 at 256² (256 tokens of 1152), SD3 (4096 of 1536), Flux (4096 of 3072).
  cs.push(...adaLN([2, 256, 1152], 'dit'), ...adaLN([2, 4096, 1536], 'dit'), ...adaLN([1, 4096, 3072], 'dit'));
  // The same ops with tensors past the storage binding (capped), processed in bound ranges.
  const MiB = 1 << 20;
  cs.push(make('layerNorm', 'fwd', [4096, 768], { opts: { normalizedShape: [768] }, tag: 'bound ranges', bindingBytes: 2 * MiB }));
  cs.push(make('layerNorm', 'bwd', [4096, 768], { opts: { normalizedShape: [768] }, tag: 'bound ranges', bindingBytes: 2 * MiB }));
  cs.push(make('batchNorm', 'fwd', [8, 64, 56, 56], { opts: { training: true }, tag: 'bound ranges', bindingBytes: 2 * MiB }));
  cs.push(make('batchNorm', 'bwd', [8, 64, 56, 56], { opts: { training: true }, tag: 'bound ranges', bindingBytes: 2 * MiB }));
  return cs;
}

/** The same list on tiny shapes: a smoke run of every op, dtype and peer path in seconds. */
export function quickCases() {
  const cs = [];
  for (const s of [[16, 256]]) {
    const D = s[1];
    cs.push(make('layerNorm', 'fwd', s, { opts: { normalizedShape: [D] }, peers: ['ort', 'tfjs'] }));
    cs.push(make('layerNorm', 'bwd', s, { opts: { normalizedShape: [D] } }));
    cs.push(make('rmsNorm', 'fwd', s, { opts: { normalizedShape: [D] }, peers: ['ort', 'tfjs'] }));
    cs.push(make('rmsNorm', 'bwd', s, { opts: { normalizedShape: [D] } }));
  }
  cs.push(make('layerNorm', 'fwd', [16, 256], { dtype: 'float16', opts: { normalizedShape: [256] }, peers: ['ort', 'tfjs'] }));
  cs.push(make('layerNorm', 'fwd', [16, 256], { opts: { normalizedShape: [256], residual: true }, peers: ['ort', 'tfjs'] }));
  cs.push(make('groupNorm', 'fwd', [2, 32, 8, 8], { opts: { numGroups: 8 }, peers: ['ort', 'tfjs'] }));
  cs.push(make('groupNorm', 'bwd', [2, 32, 8, 8], { opts: { numGroups: 8 } }));
  cs.push(make('groupNorm', 'fwd', [2, 32, 8, 8], { dtype: 'float16', opts: { numGroups: 8 }, peers: ['ort', 'tfjs'] }));
  cs.push(make('batchNorm', 'fwd', [4, 8, 8, 8], { opts: { training: true } }));
  cs.push(make('batchNorm', 'bwd', [4, 8, 8, 8], { opts: { training: true } }));
  cs.push(make('batchNorm', 'fwd', [4, 8, 8, 8], { opts: { training: false }, peers: ['ort', 'tfjs'] }));
  cs.push(make('batchNorm', 'fwd', [4, 8, 8, 8], { opts: { training: true, channelsLast: true } }));
  cs.push(make('groupNorm', 'bwd', [2, 8, 8, 32], { opts: { numGroups: 8, channelsLast: true } }));
  cs.push(make('instanceNorm', 'fwd', [2, 8, 8, 8], { peers: ['ort', 'tfjs'] }));
  cs.push(make('instanceNorm', 'bwd', [2, 8, 8, 8]));
  cs.push(make('weightNorm', 'fwd', [16, 8, 3, 3], { opts: { dim: 0 } }));
  cs.push(make('weightNorm', 'bwd', [16, 8, 3, 3], { opts: { dim: 0 } }));
  cs.push(make('l2Normalize', 'fwd', [16, 256], { opts: { dim: -1 } }));
  cs.push(make('l2Normalize', 'bwd', [4, 8, 8, 8], { opts: { dim: 1 } }));
  cs.push(make('layerNorm', 'fwd', [16, 256], { opts: { normalizedShape: [256] }, bindingBytes: 4096 }));
  cs.push(make('batchNorm', 'bwd', [4, 8, 8, 8], { opts: { training: true }, bindingBytes: 1024 }));
  cs.push(...adaLN([2, 8, 64], ''));
  return cs;
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
