// The one catalogue of ops shared by every harness: the vitest suites (test/), the benchmark
// (bench/core.mjs, in Node and in the browser), the e2e pages (e2e/*.js) and the demo page
// (demo/main.ts). Plain JavaScript with no imports, so that Node, vitest and pages served by Vite
// load it as it is; its types are in catalog.d.ts.
//
// Four things are written here once:
//   1. the seeded generator (mulberry32 uniforms, Box-Muller normals) and the per-case seed hash;
//   2. the op catalogue: for each op, its inputs for a shape, how to call its forward and its
//      backward on a `norms` instance, which forward outputs the backward takes, which output is
//      the main one and which inputs it updates in place;
//   3. each op's examples, in its entry: the cases the harnesses run of it (the catalogue suite,
//      the benchmark's full and quick rows, the e2e parity and wasm pages) and the op's own bits
//      of a benchmark case's label. The harnesses iterate over the ops (examples(kind)) and name
//      none, so a new op writes its cases here only (see "examples" at CATALOG);
//   4. the tolerance table: relative L2 between an output and the CPU reference, per op and dtype.

// ---------------------------------------------------------------- seeded generator

/** mulberry32: a uniform generator in [0, 1) from a 32-bit seed. */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * n values from N(mean, std²), drawn in pairs (one Box-Muller pair per two values, the last sine
 * dropped when n is odd) from `uniform`: the sequence of the e2e parity page and the demo page.
 */
export function fillPairs(uniform, n, mean = 0, std = 1) {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(Math.max(uniform(), 1e-12)));
    const a = 2 * Math.PI * uniform();
    out[i] = mean + std * r * Math.cos(a);
    if (i + 1 < n) out[i + 1] = mean + std * r * Math.sin(a);
  }
  return out;
}

/**
 * A seeded generator. `uniform()` in [0, 1); `normal()` N(0, 1) by Box-Muller, one value at a
 * time (the sine of each pair kept for the next call, across fills); `fill(n, mean, std)` n such
 * normals as float32. With variant 'pairs', fill() draws whole pairs per call instead
 * (fillPairs: the pages' sequence); uniform() and normal() are the same in both variants.
 */
export function makeRng(seed, variant = 'stream') {
  const uniform = mulberry32(seed);
  let spare = null;
  const normal = () => {
    if (spare !== null) {
      const v = spare;
      spare = null;
      return v;
    }
    const u1 = 1 - uniform(); // (0, 1]: log is finite
    const u2 = uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  };
  const fill =
    variant === 'pairs'
      ? (n, mean = 0, std = 1) => fillPairs(uniform, n, mean, std)
      : (n, mean = 0, std = 1) => {
          const out = new Float32Array(n);
          for (let i = 0; i < n; i++) out[i] = mean + std * normal();
          return out;
        };
  return { uniform, normal, fill };
}

/** FNV-1a of a string: a seed per named case (the benchmark seeds each case by its id). */
export function hashSeed(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export const numel = (shape) => shape.reduce((a, b) => a * b, 1);

/**
 * n values of the distribution `d` from `rng` (rng.fill): N(d.mean, d.std²), then |v| with
 * d.abs, or |v| + 0.1 with d.positive (variances).
 */
export function draw(rng, n, d) {
  const data = rng.fill(n, d.mean, d.std);
  if (d.abs) for (let i = 0; i < n; i++) data[i] = Math.abs(data[i]);
  if (d.positive) for (let i = 0; i < n; i++) data[i] = Math.abs(data[i]) + 0.1;
  return data;
}

// ---------------------------------------------------------------- tolerances

/**
 * Relative L2 between a GPU output and the CPU reference, by the output's dtype: the contract
 * (1e-4 float32; 2e-3 float16, the half rounding of the output itself against float64).
 */
export const TOLERANCE = { float32: 1e-4, float16: 2e-3 };

/**
 * float16 GPU outputs against the float16-storage CPU backend (both sides see identical half
 * inputs): 1e-3, stricter than TOLERANCE.float16 (which also covers the output's own rounding).
 */
export const TOLERANCE_HALF_VS_CPU = 1e-3;

/** Per-op exceptions to TOLERANCE (none today: every op meets the contract). */
export const TOLERANCE_BY_OP = {};

/** The tolerance for `op`'s outputs of `dtype`. */
export function tolerance(op, dtype = 'float32') {
  return TOLERANCE_BY_OP[op]?.[dtype] ?? TOLERANCE[dtype];
}

// ---------------------------------------------------------------- the op catalogue

/**
 * The default data of each input name: x ~ 3 + N(0, 1) (a non-zero mean), gradients 0.1 + N(0, 1),
 * affine parameters near 1 and 0, running variances positive.
 */
export const DATA = {
  x: { mean: 3, std: 1 },
  dy: { mean: 0.1, std: 1 },
  weight: { mean: 1, std: 0.1 },
  bias: { mean: 0, std: 0.1 },
  residual: { mean: -1, std: 1 },
  runningMean: { mean: 3, std: 0.1 },
  runningVar: { mean: 1, std: 0.1, abs: true },
  v: { mean: 0.5, std: 1 },
  g: { mean: 1, std: 0.1 },
  dw: { mean: 0.1, std: 1 },
  // Modulation (adaLN): per-sample scale and shift around 0, a gate around 0.5, the gradient
  // reaching the residual stream from later layers.
  scale: { mean: 0, std: 0.5 },
  shift: { mean: 0, std: 0.5 },
  gate: { mean: 0.5, std: 0.5 },
  dsum: { mean: 0, std: 1 },
};

const opt = (c) => c.opts ?? {};
const dtypeOf = (c) => c.dtype ?? 'float32';
const has = (o, k) => o[k] !== undefined;
const pick = (o, keys) => Object.fromEntries(keys.filter((k) => has(o, k)).map((k) => [k, o[k]]));
/** Channel ops: [C] from x's shape ([N, C, ...], or [N, ..., C] with channelsLast). */
const channels = (c) => [opt(c).channelsLast ? c.shape[c.shape.length - 1] : c.shape[1]];
const layout = (c) => (opt(c).channelsLast ? { channelsLast: true } : {});
const rowShape = (c) => opt(c).normalizedShape ?? [c.shape[c.shape.length - 1]];
const inp = (name, shape, dtype) => ({ name, shape, dtype });
/** weight/bias unless opts.weight / opts.bias is false. */
const affine = (c, shape, bias = true) => [
  ...(opt(c).weight !== false ? [inp('weight', shape, dtypeOf(c))] : []),
  ...(bias && opt(c).bias !== false ? [inp('bias', shape, dtypeOf(c))] : []),
];
const main = (c, dir) => [inp('x', c.shape, dtypeOf(c)), ...(dir === 'bwd' ? [inp('dy', c.shape, dtypeOf(c))] : [])];
const w = (T) => T.weight ?? null;
const b = (T) => T.bias ?? null;

/**
 * The shape of scale / shift / gate for opts.modulate: 'sample' [B, 1, ..., D...] (per sample:
 * x's first dim kept, the other leading dims 1), 'token' (x's shape), 'shared' (normalizedShape
 * with 1s in front).
 */
function modShape(c) {
  const m = opt(c).modulate;
  const ns = rowShape(c);
  const nLead = c.shape.length - ns.length;
  if (m === 'token') return [...c.shape];
  if (m === 'shared') return [...new Array(nLead).fill(1), ...ns];
  return [c.shape[0], ...new Array(nLead - 1).fill(1), ...ns];
}

/** scale and shift with opts.modulate, gate with opts.gate (and residual), dsum with opts.dsum (backward). */
function modInputs(c, dir) {
  const o = opt(c);
  const ms = modShape(c);
  const dt = o.modDtype ?? dtypeOf(c);
  return [
    ...(o.modulate ? [inp('scale', ms, dt), inp('shift', ms, dt)] : []),
    ...(o.gate && o.residual ? [inp('gate', ms, dt)] : []),
    ...(dir === 'bwd' && o.dsum ? [inp('dsum', c.shape, dtypeOf(c))] : []),
  ];
}

/** The modulation options of a call: the tensors present, scaleOffset when given. */
function modOpts(c, T, dir) {
  return {
    ...(T.scale ? { scale: T.scale } : {}),
    ...(T.shift ? { shift: T.shift } : {}),
    ...(T.gate ? { gate: T.gate } : {}),
    ...(dir === 'bwd' && T.dsum ? { dsum: T.dsum } : {}),
    ...pick(opt(c), ['scaleOffset']),
  };
}

// Bench rows shared by the row ops (see "examples" at CATALOG): the peers of the browser run, the
// transformer shapes (decode [1, 4096], prefill [512, 4096], BERT-base [4096, 768]).
const PEERS = ['ort', 'tfjs'];
const TRANSFORMER = [
  [1, 4096],
  [512, 4096],
  [4096, 768],
];
const MiB = 1 << 20;

/** A row op's forward (with `peers`) and backward bench rows, normalized over the last dim of `shape`. */
function lastDimRows(shape, { peers = [], tag = '' } = {}) {
  const D = shape[shape.length - 1];
  return [
    { dir: 'fwd', shape, opts: { normalizedShape: [D] }, peers, tag },
    { dir: 'bwd', shape, opts: { normalizedShape: [D] }, tag },
  ];
}

/**
 * One diffusion-transformer block's norm (DiT / SD3 / Flux adaLN-Zero) as two bench rows of
 * layerNorm: no affine, eps 1e-6, per-sample scale and shift [B, 1, D], the gated residual
 * sum = residual + gate ⊙ x (gate [B, 1, D]) normalized; the backward with the gradient reaching
 * sum from later layers. Forward against the unfused composition and our plain layer norm (and
 * ORT-web in the browser), backward against the composition.
 */
function adaLN(shape, tag) {
  const D = shape[shape.length - 1];
  const opts = { normalizedShape: [D], weight: false, bias: false, eps: 1e-6, residual: true, modulate: 'sample', gate: true };
  return [
    { dir: 'fwd', shape, opts, peers: ['ort'], tag, variants: ['compose', 'plain', 'plain+res'], gpuClassTraffic: true },
    { dir: 'bwd', shape, opts: { ...opts, dsum: true }, tag, variants: ['compose'], gpuClassTraffic: true },
  ];
}

function rowOp(rms) {
  return {
    inputs(c, dir) {
      const ns = rowShape(c);
      // The backward takes the residual only with modulation (the gated residual's backward:
      // x is then the forward's x and the sum is recomputed).
      const res = opt(c).residual && (dir === 'fwd' || opt(c).modulate || opt(c).gate);
      return [...main(c, dir), ...affine(c, ns, !rms), ...(res ? [inp('residual', c.shape, dtypeOf(c))] : []), ...modInputs(c, dir)];
    },
    forward(N, T, c) {
      const o = { normalizedShape: rowShape(c), weight: w(T), ...(rms ? {} : { bias: b(T) }), ...(T.residual ? { residual: T.residual } : {}), ...pick(opt(c), ['eps']), ...modOpts(c, T, 'fwd') };
      return rms ? N.rmsNorm(T.x, o) : N.layerNorm(T.x, o);
    },
    saved: rms ? ['rstd'] : ['mean', 'rstd'],
    backward(N, T, S, c) {
      const ns = rowShape(c);
      const mod = opt(c).modulate || opt(c).gate ? { ...(T.residual ? { residual: T.residual } : {}), ...modOpts(c, T, 'bwd') } : {};
      return rms
        ? N.rmsNormBackward(T.dy, T.x, S.rstd, { normalizedShape: ns, weight: w(T), ...mod })
        : N.layerNormBackward(T.dy, T.x, S.mean, S.rstd, { normalizedShape: ns, weight: w(T), bias: b(T), ...mod });
    },
    main: { fwd: 'y', bwd: 'dx' },
    mutated: () => [],
  };
}

const layerNorm = {
  ...rowOp(false),
  examples: {
    suite: [
      { shape: [6, 33], dirs: ['fwd', 'bwd'] },
      { shape: [6, 33], dtype: 'float16', dirs: ['fwd', 'bwd'] },
      { shape: [3, 4, 10], opts: { normalizedShape: [4, 10], residual: true }, dirs: ['fwd'] },
      { shape: [5, 12], opts: { weight: false, bias: false }, dirs: ['fwd', 'bwd'] },
    ],
    benchFull: [
      ...TRANSFORMER.flatMap((s) => lastDimRows(s, { peers: PEERS, tag: 'transformer' })),
      { dir: 'fwd', shape: [4096, 768], dtype: 'float16', opts: { normalizedShape: [768] }, peers: PEERS, tag: 'transformer' },
      { dir: 'fwd', shape: [4096, 768], opts: { normalizedShape: [768], residual: true }, peers: PEERS, tag: 'transformer' },
      // Rows far shorter than a workgroup (a per-point norm over 3 coordinates, a head of 16): the
      // GPU class must not give each a workgroup (policy.ts SHORT_ROW).
      ...[3, 16].flatMap((K) => lastDimRows([65536, K], { tag: 'short rows' })),
      // Diffusion transformers: DiT-XL/2 at 256² (256 tokens of 1152), SD3 (4096 of 1536), Flux (4096 of 3072).
      ...adaLN([2, 256, 1152], 'dit'),
      ...adaLN([2, 4096, 1536], 'dit'),
      ...adaLN([1, 4096, 3072], 'dit'),
      // Tensors past the storage binding (capped), processed in bound ranges.
      { dir: 'fwd', shape: [4096, 768], opts: { normalizedShape: [768] }, tag: 'bound ranges', bindingBytes: 2 * MiB },
      { dir: 'bwd', shape: [4096, 768], opts: { normalizedShape: [768] }, tag: 'bound ranges', bindingBytes: 2 * MiB },
    ],
    benchQuick: [
      ...lastDimRows([16, 256], { peers: PEERS }),
      { dir: 'fwd', shape: [16, 256], dtype: 'float16', opts: { normalizedShape: [256] }, peers: PEERS },
      { dir: 'fwd', shape: [16, 256], opts: { normalizedShape: [256], residual: true }, peers: PEERS },
      { dir: 'fwd', shape: [16, 256], opts: { normalizedShape: [256] }, bindingBytes: 4096 },
      ...adaLN([2, 8, 64], ''),
    ],
    parity: [
      {
        name: 'layerNorm fwd+bwd [7, 65] weight+bias',
        shape: [7, 65], backward: true, seed: 1251,
        data: { x: { mean: 3, std: 2 }, weight: { mean: 1, std: 0.5 }, bias: { mean: 0.2, std: 1 }, dy: { mean: 0.5, std: 1 } },
      },
      {
        // >= 2048 rows: the row-fused backward sums dweight/dbias per block of rows.
        name: 'layerNorm fwd+bwd [2100, 12] weight+bias',
        shape: [2100, 12], backward: true, seed: 1268,
        data: { x: { mean: 1, std: 2 }, weight: { mean: 1, std: 0.5 }, bias: { mean: 0.2, std: 1 }, dy: { mean: 0.5, std: 1 } },
      },
      {
        name: 'layerNorm fwd+bwd [64, 768]',
        shape: [64, 768], opts: { weight: false, bias: false }, backward: true, seed: 1285,
        data: { x: { mean: -4, std: 1.5 }, dy: { mean: 0.25, std: 1 } },
      },
      {
        name: 'layerNorm fwd [5, 63] float16 weight+bias',
        shape: [5, 63], dtype: 'float16', seed: 1404,
        data: { x: { mean: 2, std: 1 }, weight: { mean: 1, std: 0.5 }, bias: { mean: 0, std: 1 } },
      },
      {
        name: 'layerNorm fused residual fwd [16, 300] weight+bias',
        shape: [16, 300], opts: { residual: true }, seed: 1421,
        data: { x: { mean: 1, std: 1 }, residual: { mean: 2, std: 1 }, weight: { mean: 1, std: 0.5 }, bias: { mean: 0, std: 1 } },
      },
      {
        // Numerics stress: a large offset relative to the spread: a single-pass E[x^2] - E[x]^2
        // variance fails this by orders of magnitude. (Any f32 kernel's y is off by its mean's
        // rounding, ~ulp(offset)/std: offsets near 1e3 already use most of the 1e-4 budget, so the
        // offset stays at 300.)
        name: 'layerNorm fwd+bwd [8, 1024] x = 300 + N(0, 1)',
        shape: [8, 1024], opts: { bias: false }, backward: true, seed: 1438,
        data: { x: { mean: 300, std: 1 }, weight: { mean: 1, std: 0.5 }, dy: { mean: 0, std: 1 } },
      },
      {
        // float16 backward: per-channel dweight/dbias are packed into half words by a cast step.
        name: 'layerNorm fwd+bwd [5, 63] float16 weight+bias',
        shape: [5, 63], dtype: 'float16', backward: true, seed: 1506,
        data: { x: { mean: 2, std: 1 }, weight: { mean: 1, std: 0.5 }, bias: { mean: 0, std: 1 }, dy: { mean: 0.3, std: 1 } },
      },
    ],
    wasm: [
      { dir: 'fwd', shape: [64, 768], opts: { normalizedShape: [768] } },
      { dir: 'bwd', shape: [64, 768], opts: { normalizedShape: [768] } },
      { dir: 'fwd', shape: [32, 512], dtype: 'float16', opts: { normalizedShape: [512], residual: true } },
    ],
  },
};

const rmsNorm = {
  ...rowOp(true),
  examples: {
    suite: [
      { shape: [6, 33], dirs: ['fwd', 'bwd'] },
      { shape: [6, 33], opts: { residual: true }, dirs: ['fwd'] },
    ],
    benchFull: TRANSFORMER.flatMap((s) => lastDimRows(s, { peers: PEERS, tag: 'transformer' })),
    benchQuick: lastDimRows([16, 256], { peers: PEERS }),
    parity: [
      {
        name: 'rmsNorm fwd+bwd [7, 257] weight',
        shape: [7, 257], backward: true, seed: 1302,
        data: { x: { mean: 2, std: 1 }, weight: { mean: 1, std: 0.3 }, dy: { mean: -0.3, std: 1 } },
      },
      {
        name: 'rmsNorm fused residual fwd [8, 512] weight',
        shape: [8, 512], opts: { residual: true }, seed: 1489,
        data: { x: { mean: 1, std: 1 }, residual: { mean: -0.5, std: 2 }, weight: { mean: 1, std: 0.3 } },
      },
    ],
    wasm: [
      { dir: 'fwd', shape: [16, 4096], opts: { normalizedShape: [4096] } },
      { dir: 'bwd', shape: [16, 4096], opts: { normalizedShape: [4096] } },
    ],
  },
};

function channelOp(gn) {
  const groups = (c) => (gn ? { numGroups: opt(c).numGroups } : {});
  return {
    inputs: (c, dir) => [...main(c, dir), ...affine(c, channels(c))],
    forward: (N, T, c) => {
      const o = { ...groups(c), weight: w(T), bias: b(T), ...layout(c), ...pick(opt(c), ['activation', 'eps']) };
      return gn ? N.groupNorm(T.x, o) : N.instanceNorm(T.x, o);
    },
    saved: ['mean', 'rstd'],
    backward: (N, T, S, c) => {
      const o = { ...groups(c), weight: w(T), bias: b(T), ...layout(c) };
      return gn ? N.groupNormBackward(T.dy, T.x, S.mean, S.rstd, o) : N.instanceNormBackward(T.dy, T.x, S.mean, S.rstd, o);
    },
    main: { fwd: 'y', bwd: 'dx' },
    mutated: () => [],
  };
}

/** groupNorm: opts.numGroups (required). */
const groupNorm = {
  ...channelOp(true),
  label: (o) => (o.numGroups ? `G=${o.numGroups}` : ''),
  examples: {
    suite: [
      { shape: [2, 8, 5], opts: { numGroups: 4 }, dirs: ['fwd', 'bwd'] },
      { shape: [2, 8, 5], opts: { numGroups: 2, activation: 'silu' }, dirs: ['fwd'] },
      { shape: [2, 5, 8], opts: { numGroups: 4, channelsLast: true }, dirs: ['fwd', 'bwd'] },
    ],
    // A Stable Diffusion UNet's group norms; the first channels last ([N, *spatial, C], as TF.js and
    // ORT-web's NHWC kernels keep activations).
    benchFull: [
      { dir: 'fwd', shape: [2, 320, 64, 64], opts: { numGroups: 32 }, peers: PEERS, tag: 'unet' },
      { dir: 'bwd', shape: [2, 320, 64, 64], opts: { numGroups: 32 }, tag: 'unet' },
      { dir: 'fwd', shape: [2, 320, 64, 64], dtype: 'float16', opts: { numGroups: 32 }, peers: PEERS, tag: 'unet' },
      { dir: 'fwd', shape: [1, 512, 32, 32], opts: { numGroups: 32 }, peers: PEERS, tag: 'unet' },
      { dir: 'bwd', shape: [1, 512, 32, 32], opts: { numGroups: 32 }, tag: 'unet' },
      { dir: 'fwd', shape: [2, 64, 64, 320], opts: { numGroups: 32, channelsLast: true }, tag: 'channels last' },
      { dir: 'bwd', shape: [2, 64, 64, 320], opts: { numGroups: 32, channelsLast: true }, tag: 'channels last' },
    ],
    benchQuick: [
      { dir: 'fwd', shape: [2, 32, 8, 8], opts: { numGroups: 8 }, peers: PEERS },
      { dir: 'bwd', shape: [2, 32, 8, 8], opts: { numGroups: 8 } },
      { dir: 'fwd', shape: [2, 32, 8, 8], dtype: 'float16', opts: { numGroups: 8 }, peers: PEERS },
      { dir: 'bwd', shape: [2, 8, 8, 32], opts: { numGroups: 8, channelsLast: true } },
    ],
    parity: [
      {
        name: 'groupNorm fwd+bwd [2, 8, 6, 6] G=4 weight+bias',
        shape: [2, 8, 6, 6], opts: { numGroups: 4 }, backward: true, seed: 1336,
        data: { x: { mean: -2, std: 3 }, weight: { mean: 1, std: 0.5 }, bias: { mean: 0, std: 1 }, dy: { mean: 0.2, std: 1 } },
      },
      {
        name: 'groupNorm fused SiLU fwd [2, 32, 8, 8] G=8 weight+bias',
        shape: [2, 32, 8, 8], opts: { numGroups: 8, activation: 'silu' }, seed: 1472,
        data: { x: { mean: 1, std: 2 }, weight: { mean: 1, std: 0.5 }, bias: { mean: 0, std: 1 } },
      },
      {
        // float16 backward: per-channel dweight/dbias are packed into half words by a cast step.
        name: 'groupNorm fwd+bwd [2, 8, 6, 6] G=4 float16 weight+bias',
        shape: [2, 8, 6, 6], opts: { numGroups: 4 }, dtype: 'float16', backward: true, seed: 1523,
        data: { x: { mean: -2, std: 3 }, weight: { mean: 1, std: 0.5 }, bias: { mean: 0, std: 1 }, dy: { mean: 0.2, std: 1 } },
      },
    ],
    wasm: [
      { dir: 'fwd', shape: [2, 64, 16, 16], opts: { numGroups: 8, activation: 'silu' } },
      { dir: 'bwd', shape: [2, 64, 16, 16], opts: { numGroups: 8 } },
      { dir: 'bwd', shape: [2, 16, 16, 64], opts: { numGroups: 8, channelsLast: true } },
    ],
  },
};

const instanceNorm = {
  ...channelOp(false),
  examples: {
    suite: [{ shape: [2, 3, 7], dirs: ['fwd', 'bwd'] }],
    // A style-transfer instance norm.
    benchFull: [
      { dir: 'fwd', shape: [2, 64, 64, 64], peers: PEERS, tag: 'style' },
      { dir: 'bwd', shape: [2, 64, 64, 64], tag: 'style' },
    ],
    benchQuick: [
      { dir: 'fwd', shape: [2, 8, 8, 8], peers: PEERS },
      { dir: 'bwd', shape: [2, 8, 8, 8] },
    ],
    parity: [
      {
        name: 'instanceNorm fwd+bwd [2, 3, 5, 7] weight+bias',
        shape: [2, 3, 5, 7], backward: true, seed: 1353,
        data: { x: { mean: 7, std: 0.5 }, weight: { mean: 1, std: 0.5 }, bias: { mean: 0, std: 1 }, dy: { mean: -0.4, std: 1 } },
      },
    ],
    wasm: [
      { dir: 'fwd', shape: [2, 32, 24, 24] },
      { dir: 'bwd', shape: [2, 32, 24, 24] },
    ],
  },
};

const training = (c) => opt(c).training ?? true;
const running = (c) => opt(c).running !== false;

/**
 * batchNorm: opts.training (default true), running (running statistics; default true), momentum
 * (null: the cumulative average), numBatchesTracked.
 */
const batchNorm = {
  inputs(c, dir) {
    const C = channels(c);
    const stats = dir === 'fwd' && running(c) ? [inp('runningMean', C, 'float32'), inp('runningVar', C, 'float32')] : [];
    return [...main(c, dir), ...affine(c, C), ...stats];
  },
  forward: (N, T, c) =>
    N.batchNorm(T.x, {
      training: training(c),
      weight: w(T),
      bias: b(T),
      runningMean: T.runningMean ?? null,
      runningVar: T.runningVar ?? null,
      ...layout(c),
      ...pick(opt(c), ['momentum', 'numBatchesTracked', 'eps']),
    }),
  saved: ['saveMean', 'saveInvstd'],
  backward: (N, T, S, c) => N.batchNormBackward(T.dy, T.x, { training: true, weight: w(T), bias: b(T), saveMean: S.saveMean, saveInvstd: S.saveInvstd, ...layout(c) }),
  main: { fwd: 'y', bwd: 'dx' },
  mutated: (c, dir) => (dir === 'fwd' && training(c) && running(c) ? ['runningMean', 'runningVar'] : []),
  label: (o) => (o.training ? 'train' : 'eval'),
  examples: {
    suite: [
      { shape: [4, 3, 5], opts: { training: true }, dirs: ['fwd', 'bwd'] },
      { shape: [4, 3, 5], opts: { training: false }, dirs: ['fwd'] },
      { shape: [4, 5, 3], opts: { training: true, channelsLast: true, momentum: null, numBatchesTracked: 2 }, dirs: ['fwd', 'bwd'] },
    ],
    benchFull: [
      // ResNet batch norms.
      ...[
        [8, 64, 56, 56],
        [32, 64, 112, 112],
      ].flatMap((s) => [
        { dir: 'fwd', shape: s, opts: { training: true }, tag: 'cnn' },
        { dir: 'bwd', shape: s, opts: { training: true }, tag: 'cnn' },
        { dir: 'fwd', shape: s, opts: { training: false }, peers: PEERS, tag: 'cnn' },
      ]),
      // The first ResNet batch norm, channels last ([N, *spatial, C], as TF.js and ORT-web's NHWC
      // kernels keep activations).
      { dir: 'fwd', shape: [8, 56, 56, 64], opts: { training: true, channelsLast: true }, tag: 'channels last' },
      { dir: 'bwd', shape: [8, 56, 56, 64], opts: { training: true, channelsLast: true }, tag: 'channels last' },
      { dir: 'fwd', shape: [8, 56, 56, 64], opts: { training: false, channelsLast: true }, tag: 'channels last' },
      // Tensors past the storage binding (capped), processed in bound ranges.
      { dir: 'fwd', shape: [8, 64, 56, 56], opts: { training: true }, tag: 'bound ranges', bindingBytes: 2 * MiB },
      { dir: 'bwd', shape: [8, 64, 56, 56], opts: { training: true }, tag: 'bound ranges', bindingBytes: 2 * MiB },
    ],
    benchQuick: [
      { dir: 'fwd', shape: [4, 8, 8, 8], opts: { training: true } },
      { dir: 'bwd', shape: [4, 8, 8, 8], opts: { training: true } },
      { dir: 'fwd', shape: [4, 8, 8, 8], opts: { training: false }, peers: PEERS },
      { dir: 'fwd', shape: [4, 8, 8, 8], opts: { training: true, channelsLast: true } },
      { dir: 'bwd', shape: [4, 8, 8, 8], opts: { training: true }, bindingBytes: 1024 },
    ],
    parity: [
      {
        name: 'batchNorm training fwd+bwd [4, 3, 5, 5] running stats',
        shape: [4, 3, 5, 5], opts: { training: true, momentum: 0.1 }, backward: true, seed: 1319,
        data: {
          x: { mean: 5, std: 2 },
          weight: { mean: 1, std: 0.5 },
          bias: { mean: 0, std: 1 },
          runningMean: { mean: 0.5, std: 0.2 },
          runningVar: { mean: 1, std: 0.2, positive: true },
          dy: { mean: 0.1, std: 1 },
        },
      },
      {
        // dy has zero mean here: dweight = sum(dy * (x - saveMean) * invstd) moves by sum(dy) * invstd
        // per ulp of saveMean, so with a large offset and a biased dy the two backends' own forward
        // statistics (one f32 ulp apart at 100) alone would put dweight ~1e-4 apart on any correct kernel.
        name: 'batchNorm training fwd+bwd [16, 4, 32, 32] x = 100 + N(0, 1), 16384 per channel',
        shape: [16, 4, 32, 32], opts: { training: true, momentum: null, numBatchesTracked: 3 }, backward: true, seed: 1455,
        data: { x: { mean: 100, std: 1 }, weight: { mean: 1, std: 0.5 }, bias: { mean: 0, std: 1 }, runningMean: { mean: 0, std: 1 }, runningVar: { mean: 1, std: 0.3, positive: true }, dy: { mean: 0, std: 1 } },
      },
    ],
    wasm: [
      { dir: 'fwd', shape: [8, 32, 14, 14], opts: { training: true } },
      { dir: 'bwd', shape: [8, 32, 14, 14], opts: { training: true } },
      { dir: 'fwd', shape: [8, 14, 14, 32], opts: { training: false, channelsLast: true } },
    ],
  },
};

/** weightNorm's dim: opts.dim (null: one norm over all of v), default 0. */
const wnDim = (c) => (opt(c).dim === undefined ? 0 : opt(c).dim);
const weightNorm = {
  inputs(c, dir) {
    const d = wnDim(c);
    const gShape = c.shape.map((n, i) => (i === d ? n : 1));
    return [inp('v', c.shape, dtypeOf(c)), ...(dir === 'bwd' ? [inp('dw', c.shape, dtypeOf(c))] : []), inp('g', gShape, dtypeOf(c))];
  },
  forward: (N, T, c) => N.weightNorm(T.v, T.g, { dim: wnDim(c) }),
  saved: ['norms'],
  backward: (N, T, S, c) => N.weightNormBackward(T.dw, T.v, T.g, S.norms, { dim: wnDim(c) }),
  main: { fwd: 'w', bwd: 'dv' },
  mutated: () => [],
  label: (o) => `dim=${o.dim}`,
  examples: {
    suite: [
      { shape: [6, 4, 3], opts: { dim: 0 }, dirs: ['fwd', 'bwd'] },
      { shape: [6, 4, 3], opts: { dim: null }, dirs: ['fwd', 'bwd'] },
    ],
    // A conv weight.
    benchFull: [
      { dir: 'fwd', shape: [512, 512, 3, 3], opts: { dim: 0 }, tag: 'conv' },
      { dir: 'bwd', shape: [512, 512, 3, 3], opts: { dim: 0 }, tag: 'conv' },
    ],
    benchQuick: [
      { dir: 'fwd', shape: [16, 8, 3, 3], opts: { dim: 0 } },
      { dir: 'bwd', shape: [16, 8, 3, 3], opts: { dim: 0 } },
    ],
    parity: [
      {
        name: 'weightNorm fwd+bwd [8, 3, 3, 3] dim 0',
        shape: [8, 3, 3, 3], opts: { dim: 0 }, backward: true, seed: 1387,
        data: { v: { mean: 1, std: 1 }, g: { mean: 2, std: 0.5 }, dw: { mean: 0.3, std: 1 } },
      },
    ],
    wasm: [
      { dir: 'fwd', shape: [64, 32, 3, 3], opts: { dim: 0 } },
      { dir: 'bwd', shape: [64, 32, 3, 3], opts: { dim: 0 } },
    ],
  },
};

/** l2Normalize (F.normalize): dim (default 1), p (1 or 2, default 2), eps from opts. */
const lpOpts = (c) => pick(opt(c), ['dim', 'p', 'eps']);
const l2Normalize = {
  inputs: (c, dir) => main(c, dir),
  forward: (N, T, c) => N.l2Normalize(T.x, lpOpts(c)),
  saved: ['norms'],
  backward: (N, T, S, c) => N.l2NormalizeBackward(T.dy, T.x, S.norms, lpOpts(c)),
  main: { fwd: 'y', bwd: 'dx' },
  mutated: () => [],
  label: (o) => `dim=${o.dim ?? 1}${o.p ? ` p=${o.p}` : ''}`,
  examples: {
    suite: [
      { shape: [3, 5, 4], dirs: ['fwd', 'bwd'] },
      { shape: [3, 5, 4], opts: { dim: -1, p: 1 }, dirs: ['fwd', 'bwd'] },
      { shape: [4, 6], dtype: 'float16', opts: { dim: 0 }, dirs: ['fwd', 'bwd'] },
    ],
    // Sentence / CLIP embeddings along the last dim, and along the channels of an NCHW feature
    // map (a middle dim: strided lanes).
    benchFull: [
      { dir: 'fwd', shape: [4096, 768], opts: { dim: -1 }, tag: 'embeddings' },
      { dir: 'bwd', shape: [4096, 768], opts: { dim: -1 }, tag: 'embeddings' },
      { dir: 'fwd', shape: [8, 64, 56, 56], opts: { dim: 1 }, tag: 'channels' },
    ],
    benchQuick: [
      { dir: 'fwd', shape: [16, 256], opts: { dim: -1 } },
      { dir: 'bwd', shape: [4, 8, 8, 8], opts: { dim: 1 } },
    ],
    parity: [
      {
        name: 'l2Normalize fwd+bwd [4, 6, 5] dim 1',
        shape: [4, 6, 5], opts: { dim: 1 }, backward: true, seed: 1370,
        data: { x: { mean: 0.5, std: 1 }, dy: { mean: 0.1, std: 1 } },
      },
    ],
    wasm: [
      { dir: 'fwd', shape: [512, 768], opts: { dim: -1 } },
      { dir: 'bwd', shape: [8, 32, 14, 14], opts: { dim: 1 } },
      // Many lanes, along a middle dim and the last one, forward and backward.
      { dir: 'fwd', shape: [16, 96, 130], opts: { dim: 1 } },
      { dir: 'fwd', shape: [16, 96, 130], opts: { dim: -1 } },
      { dir: 'bwd', shape: [16, 96, 130], opts: { dim: 1 } },
      { dir: 'bwd', shape: [16, 96, 130], opts: { dim: -1 } },
    ],
  },
};

/**
 * Every op, by the name of its forward method on a Norms instance (the same names as the
 * library's op table, src/op-table.ts). A case is { op, shape, dtype?, opts? }; opts (all
 * optional), the keys more than one op reads: normalizedShape (row ops; default the last dim),
 * residual (row ops, forward), channelsLast (channel ops), activation ('silu': group and instance
 * norm), eps, dim (the op's dim; its default in its entry), weight / bias (false: none); row ops'
 * modulation: modulate ('sample' | 'token' | 'shared': scale and shift of that shape), gate (with
 * residual: sum = residual + gate ⊙ x), scaleOffset, modDtype (the dtype of scale, shift and gate;
 * default x's), dsum (backward: the gradient reaching sum from later layers). An op's own keys
 * (numGroups, training, p, ...) are documented at its entry.
 *
 * An entry: how the op runs (inputs, forward, saved, backward, main, mutated: see CatalogEntry in
 * catalog.d.ts), and the op's examples, the one place its cases for the harnesses are written:
 *   label(opts)  (optional) the op's own bits of a benchmark case's id (bench/cases.mjs) and of
 *                its table name (bench/format.mjs caseName), e.g. 'G=32', 'train', 'dim=0'.
 *                Saved results and bench/compare.mjs match rows by id: keep the strings stable.
 *   examples     { suite, benchFull, benchQuick, parity, wasm }, each a list (all five are
 *                expected of every op; test/catalog.test.ts checks they are not empty):
 *     suite       [{ shape, dtype?, opts?, dirs: ['fwd', 'bwd'?] }] the catalogue suite
 *                 (test/catalog.test.ts): small shapes, GPU against the float64 CPU reference;
 *                 seeded by the hash of the test's name
 *     benchFull   [{ dir, shape, dtype?, opts?, peers?, tag?, bindingBytes?, variants?,
 *                 gpuClassTraffic? }] the benchmark's rows (bench/cases.mjs fullCases, which
 *                 describes the fields and gives each its id and minimal bytes); seeded by the id
 *     benchQuick  the same on tiny shapes (the --quick list: a smoke run of every path)
 *     parity      [{ name, shape, dtype?, opts?, backward?, extended?, data, seed? }] the e2e
 *                 parity page (e2e/parity.js): forward, then (backward: true) the backward from
 *                 the forward's own outputs, every output against the CPU reference in the
 *                 browser; data: each input's distribution, drawn in that key order (the keys must
 *                 be the op's inputs); seed: the generator's seed (the existing cases keep the seed
 *                 the page gave them by position, 1234 + 17·k; left out: hashSeed(name));
 *                 extended: run only with ?extended=1
 *     wasm        [{ dir, shape, dtype?, opts? }] the wasm page (e2e/wasm.js): SIMD, scalar and
 *                 two-thread builds against the CPU reference; seeded by the hash of its id
 * `examples(kind)` lists one kind for every op, op by op.
 */
export const CATALOG = {
  layerNorm,
  rmsNorm,
  groupNorm,
  instanceNorm,
  batchNorm,
  weightNorm,
  l2Normalize,
};

export const OP_NAMES = Object.keys(CATALOG);

/** The kinds of examples every entry gives (see CATALOG). */
export const EXAMPLE_KINDS = ['suite', 'benchFull', 'benchQuick', 'parity', 'wasm'];

/** The entry of `op`, or an error naming the known ops. */
export function opEntry(op) {
  const e = CATALOG[op];
  if (!e) throw new Error(`unknown op ${op} (known: ${OP_NAMES.join(', ')})`);
  return e;
}

/**
 * The examples of one kind (EXAMPLE_KINDS, see CATALOG) of every op, op by op in OP_NAMES order, each as a case { op, ...example }: fresh
 * copies, which the caller may change.
 */
export function examples(kind) {
  return OP_NAMES.flatMap((op) => (CATALOG[op].examples?.[kind] ?? []).map((e) => ({ op, ...structuredClone(e) })));
}

/**
 * One direction of one case, as every harness runs it:
 *   inputs  [{ name, shape, dtype, mean, std, abs? }]: host data to draw (`data` overrides DATA
 *           per input name), in the order they are drawn from the case's generator
 *   derive  (bwd only) (N, T) => { name: tensor }: the forward's saved outputs the backward
 *           takes, computed from the inputs (so a backward case checks the backward alone)
 *   call    (N, T) => outputs: the op on either backend with tensors T
 *   main    the output that matters most (read back in timed loops, compared with peers)
 *   mutated names of inputs the op updates in place (compared too)
 */
export function spec(c, dir = c.dir ?? 'fwd', data = DATA) {
  const e = opEntry(c.op);
  const inputs = e.inputs(c, dir).map((i) => ({ ...i, ...(data[i.name] ?? DATA[i.name]) }));
  const s = { inputs, call: dir === 'fwd' ? (N, T) => e.forward(N, T, c) : (N, T) => e.backward(N, T, T, c), main: e.main[dir], mutated: e.mutated(c, dir) };
  if (dir === 'bwd') {
    s.derive = (N, T) => {
      const f = e.forward(N, T, c);
      const out = {};
      for (const [k, t] of Object.entries(f)) {
        if (e.saved.includes(k)) out[k] = t;
        else t?.destroy?.();
      }
      return out;
    };
  }
  return s;
}

/**
 * Forward, then (with backward) the backward from the forward's own saved outputs: every
 * forward output, every backward output and every input updated in place, by name.
 */
export function runChain(N, T, c, backward = true) {
  const e = opEntry(c.op);
  const f = e.forward(N, T, c);
  const out = { ...f };
  if (backward) Object.assign(out, e.backward(N, T, f, c));
  for (const k of e.mutated(c, 'fwd')) out[k] = T[k];
  return out;
}
