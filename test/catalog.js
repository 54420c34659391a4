// The one catalogue of ops shared by every harness: the vitest suites (test/), the benchmark
// (bench/core.mjs, in Node and in the browser), the e2e pages (e2e/*.js) and the demo page
// (demo/main.ts). Plain JavaScript with no imports, so that Node, vitest and pages served by Vite
// load it as it is; its types are in catalog.d.ts.
//
// Three things are written here once:
//   1. the seeded generator (mulberry32 uniforms, Box-Muller normals) and the per-case seed hash;
//   2. the op catalogue: for each op, its inputs for a shape, how to call its forward and its
//      backward on a `norms` instance, which forward outputs the backward takes, which output is
//      the main one and which inputs it updates in place;
//   3. the tolerance table: relative L2 between an output and the CPU reference, per op and dtype.

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

const training = (c) => opt(c).training ?? true;
const running = (c) => opt(c).running !== false;

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
};

/** l2Normalize (F.normalize): dim (default 1), p (default 2), eps from opts. */
const lpOpts = (c) => pick(opt(c), ['dim', 'p', 'eps']);
const l2Normalize = {
  inputs: (c, dir) => main(c, dir),
  forward: (N, T, c) => N.l2Normalize(T.x, lpOpts(c)),
  saved: ['norms'],
  backward: (N, T, S, c) => N.l2NormalizeBackward(T.dy, T.x, S.norms, lpOpts(c)),
  main: { fwd: 'y', bwd: 'dx' },
  mutated: () => [],
};

/**
 * Every op, by the name of its forward method on a Norms instance. A case is
 * { op, shape, dtype?, opts? }; opts (all optional): normalizedShape (row ops; default the last
 * dim), numGroups (groupNorm), training (batchNorm; default true), running (batchNorm: running
 * statistics, default true), residual (row ops, forward), channelsLast, activation, eps, momentum,
 * numBatchesTracked, dim (weightNorm: default 0, null for one norm; l2Normalize: default 1), p
 * (l2Normalize: 1 or 2, default 2), weight / bias (false: none);
 * row ops' modulation: modulate ('sample' | 'token' | 'shared': scale and shift of that shape),
 * gate (with residual: sum = residual + gate ⊙ x), scaleOffset, modDtype (the dtype of scale,
 * shift and gate; default x's), dsum (backward: the gradient reaching sum from later layers).
 */
export const CATALOG = {
  layerNorm: rowOp(false),
  rmsNorm: rowOp(true),
  groupNorm: channelOp(true),
  instanceNorm: channelOp(false),
  batchNorm,
  weightNorm,
  l2Normalize,
};

export const OP_NAMES = Object.keys(CATALOG);

/** The entry of `op`, or an error naming the known ops. */
export function opEntry(op) {
  const e = CATALOG[op];
  if (!e) throw new Error(`unknown op ${op} (known: ${OP_NAMES.join(', ')})`);
  return e;
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
