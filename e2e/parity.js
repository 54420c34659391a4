// GPU vs CPU parity in a real browser: every op, forward and backward, on seeded random inputs
// with a non-zero mean, through the built bundle (/dist/index.js). The CPU backend is the
// PyTorch-exact reference; each output must agree to relative L2 <= 1e-4 (float16: 2e-3).
//
// Writes window.__result = { ok, backend, adapter, note, variant, results: [{ name, err, ok, outputs, error?, ms }], ms }
// and renders a table. Query parameters: ?variant=auto|fused|general (createNorms' testing aid;
// windowed: bindings capped at 16 KiB with maxBindingBytes, the larger cases in bound ranges),
// ?only=<substring of a case name>, ?extended=1 (also the float16 backward cases).
import { createNorms, relativeL2 } from '/dist/index.js';

const TOL = { float32: 1e-4, float16: 2e-3 };

// ---- seeded random numbers ----
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function normals(rng, n, mean, std) {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(rng(), 1e-12);
    const v = rng();
    const r = Math.sqrt(-2 * Math.log(u));
    out[i] = mean + std * r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = mean + std * r * Math.sin(2 * Math.PI * v);
  }
  return out;
}
const numel = (shape) => shape.reduce((a, b) => a * b, 1);

// ---- the cases ----
// inputs: name -> { shape, mean, std, dtype?, positive? }; run(N, t) returns name -> Tensor | null
// (outputs, and tensors updated in place such as running statistics).
const CASES = [
  {
    name: 'layerNorm fwd+bwd [7, 65] weight+bias',
    inputs: { x: { shape: [7, 65], mean: 3, std: 2 }, weight: { shape: [65], mean: 1, std: 0.5 }, bias: { shape: [65], mean: 0.2, std: 1 }, dy: { shape: [7, 65], mean: 0.5, std: 1 } },
    run(N, t) {
      const o = { normalizedShape: [65], weight: t.weight, bias: t.bias };
      const f = N.layerNorm(t.x, o);
      const b = N.layerNormBackward(t.dy, t.x, f.mean, f.rstd, o);
      return { y: f.y, mean: f.mean, rstd: f.rstd, dx: b.dx, dweight: b.dweight, dbias: b.dbias };
    },
  },
  {
    // >= 2048 rows: the row-fused backward sums dweight/dbias per block of rows.
    name: 'layerNorm fwd+bwd [2100, 12] weight+bias',
    inputs: { x: { shape: [2100, 12], mean: 1, std: 2 }, weight: { shape: [12], mean: 1, std: 0.5 }, bias: { shape: [12], mean: 0.2, std: 1 }, dy: { shape: [2100, 12], mean: 0.5, std: 1 } },
    run(N, t) {
      const o = { normalizedShape: [12], weight: t.weight, bias: t.bias };
      const f = N.layerNorm(t.x, o);
      const b = N.layerNormBackward(t.dy, t.x, f.mean, f.rstd, o);
      return { y: f.y, mean: f.mean, rstd: f.rstd, dx: b.dx, dweight: b.dweight, dbias: b.dbias };
    },
  },
  {
    name: 'layerNorm fwd+bwd [64, 768]',
    inputs: { x: { shape: [64, 768], mean: -4, std: 1.5 }, dy: { shape: [64, 768], mean: 0.25, std: 1 } },
    run(N, t) {
      const o = { normalizedShape: [768] };
      const f = N.layerNorm(t.x, o);
      const b = N.layerNormBackward(t.dy, t.x, f.mean, f.rstd, o);
      return { y: f.y, mean: f.mean, rstd: f.rstd, dx: b.dx };
    },
  },
  {
    name: 'rmsNorm fwd+bwd [7, 257] weight',
    inputs: { x: { shape: [7, 257], mean: 2, std: 1 }, weight: { shape: [257], mean: 1, std: 0.3 }, dy: { shape: [7, 257], mean: -0.3, std: 1 } },
    run(N, t) {
      const o = { normalizedShape: [257], weight: t.weight };
      const f = N.rmsNorm(t.x, o);
      const b = N.rmsNormBackward(t.dy, t.x, f.rstd, o);
      return { y: f.y, rstd: f.rstd, dx: b.dx, dweight: b.dweight };
    },
  },
  {
    name: 'batchNorm training fwd+bwd [4, 3, 5, 5] running stats',
    inputs: {
      x: { shape: [4, 3, 5, 5], mean: 5, std: 2 },
      weight: { shape: [3], mean: 1, std: 0.5 },
      bias: { shape: [3], mean: 0, std: 1 },
      runningMean: { shape: [3], mean: 0.5, std: 0.2 },
      runningVar: { shape: [3], mean: 1, std: 0.2, positive: true },
      dy: { shape: [4, 3, 5, 5], mean: 0.1, std: 1 },
    },
    run(N, t) {
      const f = N.batchNorm(t.x, { training: true, weight: t.weight, bias: t.bias, runningMean: t.runningMean, runningVar: t.runningVar, momentum: 0.1 });
      const b = N.batchNormBackward(t.dy, t.x, { training: true, weight: t.weight, bias: t.bias, saveMean: f.saveMean, saveInvstd: f.saveInvstd });
      return { y: f.y, saveMean: f.saveMean, saveInvstd: f.saveInvstd, runningMean: t.runningMean, runningVar: t.runningVar, dx: b.dx, dweight: b.dweight, dbias: b.dbias };
    },
  },
  {
    name: 'groupNorm fwd+bwd [2, 8, 6, 6] G=4 weight+bias',
    inputs: { x: { shape: [2, 8, 6, 6], mean: -2, std: 3 }, weight: { shape: [8], mean: 1, std: 0.5 }, bias: { shape: [8], mean: 0, std: 1 }, dy: { shape: [2, 8, 6, 6], mean: 0.2, std: 1 } },
    run(N, t) {
      const o = { numGroups: 4, weight: t.weight, bias: t.bias };
      const f = N.groupNorm(t.x, o);
      const b = N.groupNormBackward(t.dy, t.x, f.mean, f.rstd, o);
      return { y: f.y, mean: f.mean, rstd: f.rstd, dx: b.dx, dweight: b.dweight, dbias: b.dbias };
    },
  },
  {
    name: 'instanceNorm fwd+bwd [2, 3, 5, 7] weight+bias',
    inputs: { x: { shape: [2, 3, 5, 7], mean: 7, std: 0.5 }, weight: { shape: [3], mean: 1, std: 0.5 }, bias: { shape: [3], mean: 0, std: 1 }, dy: { shape: [2, 3, 5, 7], mean: -0.4, std: 1 } },
    run(N, t) {
      const o = { weight: t.weight, bias: t.bias };
      const f = N.instanceNorm(t.x, o);
      const b = N.instanceNormBackward(t.dy, t.x, f.mean, f.rstd, o);
      return { y: f.y, mean: f.mean, rstd: f.rstd, dx: b.dx, dweight: b.dweight, dbias: b.dbias };
    },
  },
  {
    name: 'weightNorm fwd+bwd [8, 3, 3, 3] dim 0',
    inputs: { v: { shape: [8, 3, 3, 3], mean: 1, std: 1 }, g: { shape: [8, 1, 1, 1], mean: 2, std: 0.5 }, dw: { shape: [8, 3, 3, 3], mean: 0.3, std: 1 } },
    run(N, t) {
      const f = N.weightNorm(t.v, t.g, { dim: 0 });
      const b = N.weightNormBackward(t.dw, t.v, t.g, f.norms, { dim: 0 });
      return { w: f.w, norms: f.norms, dv: b.dv, dg: b.dg };
    },
  },
  {
    name: 'layerNorm fwd [5, 63] float16 weight+bias',
    dtype: 'float16',
    inputs: { x: { shape: [5, 63], mean: 2, std: 1, dtype: 'float16' }, weight: { shape: [63], mean: 1, std: 0.5, dtype: 'float16' }, bias: { shape: [63], mean: 0, std: 1, dtype: 'float16' } },
    run(N, t) {
      const f = N.layerNorm(t.x, { normalizedShape: [63], weight: t.weight, bias: t.bias });
      return { y: f.y, mean: f.mean, rstd: f.rstd };
    },
  },
  {
    name: 'layerNorm fused residual fwd [16, 300] weight+bias',
    inputs: { x: { shape: [16, 300], mean: 1, std: 1 }, residual: { shape: [16, 300], mean: 2, std: 1 }, weight: { shape: [300], mean: 1, std: 0.5 }, bias: { shape: [300], mean: 0, std: 1 } },
    run(N, t) {
      const f = N.layerNorm(t.x, { normalizedShape: [300], weight: t.weight, bias: t.bias, residual: t.residual });
      return { y: f.y, sum: f.sum ?? null, mean: f.mean, rstd: f.rstd };
    },
  },
  // ---- beyond the required list: numerics stress and the other fused paths ----
  {
    // A large offset relative to the spread: a single-pass E[x^2] - E[x]^2 variance fails this by
    // orders of magnitude. (Any f32 kernel's y is off by its mean's rounding, ~ulp(offset)/std:
    // offsets near 1e3 already use most of the 1e-4 budget, so the offset stays at 300.)
    name: 'layerNorm fwd+bwd [8, 1024] x = 300 + N(0, 1)',
    inputs: { x: { shape: [8, 1024], mean: 300, std: 1 }, weight: { shape: [1024], mean: 1, std: 0.5 }, dy: { shape: [8, 1024], mean: 0, std: 1 } },
    run(N, t) {
      const o = { normalizedShape: [1024], weight: t.weight };
      const f = N.layerNorm(t.x, o);
      const b = N.layerNormBackward(t.dy, t.x, f.mean, f.rstd, o);
      return { y: f.y, mean: f.mean, rstd: f.rstd, dx: b.dx, dweight: b.dweight };
    },
  },
  {
    // dy has zero mean here: dweight = sum(dy * (x - saveMean) * invstd) moves by sum(dy) * invstd
    // per ulp of saveMean, so with a large offset and a biased dy the two backends' own forward
    // statistics (one f32 ulp apart at 100) alone would put dweight ~1e-4 apart on any correct kernel.
    name: 'batchNorm training fwd+bwd [16, 4, 32, 32] x = 100 + N(0, 1), 16384 per channel',
    inputs: { x: { shape: [16, 4, 32, 32], mean: 100, std: 1 }, weight: { shape: [4], mean: 1, std: 0.5 }, bias: { shape: [4], mean: 0, std: 1 }, runningMean: { shape: [4], mean: 0, std: 1 }, runningVar: { shape: [4], mean: 1, std: 0.3, positive: true }, dy: { shape: [16, 4, 32, 32], mean: 0, std: 1 } },
    run(N, t) {
      const f = N.batchNorm(t.x, { training: true, weight: t.weight, bias: t.bias, runningMean: t.runningMean, runningVar: t.runningVar, momentum: null, numBatchesTracked: 3 });
      const b = N.batchNormBackward(t.dy, t.x, { training: true, weight: t.weight, bias: t.bias, saveMean: f.saveMean, saveInvstd: f.saveInvstd });
      return { y: f.y, saveMean: f.saveMean, saveInvstd: f.saveInvstd, runningMean: t.runningMean, runningVar: t.runningVar, dx: b.dx, dweight: b.dweight, dbias: b.dbias };
    },
  },
  {
    name: "groupNorm fused SiLU fwd [2, 32, 8, 8] G=8 weight+bias",
    inputs: { x: { shape: [2, 32, 8, 8], mean: 1, std: 2 }, weight: { shape: [32], mean: 1, std: 0.5 }, bias: { shape: [32], mean: 0, std: 1 } },
    run(N, t) {
      const f = N.groupNorm(t.x, { numGroups: 8, weight: t.weight, bias: t.bias, activation: 'silu' });
      return { y: f.y, mean: f.mean, rstd: f.rstd };
    },
  },
  {
    name: 'rmsNorm fused residual fwd [8, 512] weight',
    inputs: { x: { shape: [8, 512], mean: 1, std: 1 }, residual: { shape: [8, 512], mean: -0.5, std: 2 }, weight: { shape: [512], mean: 1, std: 0.3 } },
    run(N, t) {
      const f = N.rmsNorm(t.x, { normalizedShape: [512], weight: t.weight, residual: t.residual });
      return { y: f.y, sum: f.sum ?? null, rstd: f.rstd };
    },
  },
  // ---- float16 backward (per-channel dweight/dbias are packed into half words by a cast step) ----
  {
    name: 'layerNorm fwd+bwd [5, 63] float16 weight+bias',
    dtype: 'float16',
    inputs: { x: { shape: [5, 63], mean: 2, std: 1, dtype: 'float16' }, weight: { shape: [63], mean: 1, std: 0.5, dtype: 'float16' }, bias: { shape: [63], mean: 0, std: 1, dtype: 'float16' }, dy: { shape: [5, 63], mean: 0.3, std: 1, dtype: 'float16' } },
    run(N, t) {
      const o = { normalizedShape: [63], weight: t.weight, bias: t.bias };
      const f = N.layerNorm(t.x, o);
      const b = N.layerNormBackward(t.dy, t.x, f.mean, f.rstd, o);
      return { y: f.y, mean: f.mean, rstd: f.rstd, dx: b.dx, dweight: b.dweight, dbias: b.dbias };
    },
  },
  {
    name: 'groupNorm fwd+bwd [2, 8, 6, 6] G=4 float16 weight+bias',
    dtype: 'float16',
    inputs: { x: { shape: [2, 8, 6, 6], mean: -2, std: 3, dtype: 'float16' }, weight: { shape: [8], mean: 1, std: 0.5, dtype: 'float16' }, bias: { shape: [8], mean: 0, std: 1, dtype: 'float16' }, dy: { shape: [2, 8, 6, 6], mean: 0.2, std: 1, dtype: 'float16' } },
    run(N, t) {
      const o = { numGroups: 4, weight: t.weight, bias: t.bias };
      const f = N.groupNorm(t.x, o);
      const b = N.groupNormBackward(t.dy, t.x, f.mean, f.rstd, o);
      return { y: f.y, mean: f.mean, rstd: f.rstd, dx: b.dx, dweight: b.dweight, dbias: b.dbias };
    },
  },
];

// ---- running a case on both backends ----
async function runCase(gpu, cpu, c, seed) {
  const rng = mulberry32(seed);
  const host = {};
  for (const [k, s] of Object.entries(c.inputs)) {
    let d = normals(rng, numel(s.shape), s.mean, s.std);
    if (s.positive) d = d.map((v) => Math.abs(v) + 0.1);
    host[k] = d;
  }
  const make = (N) => Object.fromEntries(Object.entries(c.inputs).map(([k, s]) => [k, N.tensor(host[k], s.shape, s.dtype ?? 'float32')]));
  const tg = make(gpu);
  const tc = make(cpu);
  const outG = c.run(gpu, tg);
  const outC = c.run(cpu, tc);
  const outputs = {};
  const problems = [];
  let worst = 0;
  for (const [name, ref] of Object.entries(outC)) {
    if (!ref) continue;
    const got = outG[name];
    if (!got) {
      problems.push(`${name}: missing from the webgpu result`);
      worst = Infinity;
      continue;
    }
    if (got.shape.join(',') !== ref.shape.join(',') || got.dtype !== ref.dtype) {
      problems.push(`${name}: webgpu gave ${got.dtype}[${got.shape}] but cpu ${ref.dtype}[${ref.shape}]`);
      worst = Infinity;
      continue;
    }
    const [g, r] = await Promise.all([gpu.read(got), cpu.read(ref)]);
    const err = relativeL2(g, r);
    outputs[name] = err;
    const tol = TOL[c.dtype ?? 'float32'];
    if (!(err <= tol)) {
      const nonFinite = g.reduce((n, v, i) => n + (Number.isFinite(v) !== Number.isFinite(r[i]) ? 1 : 0), 0);
      problems.push(`${name}: relative L2 ${fmt(err)} > ${tol}${nonFinite ? ` (${nonFinite} of ${r.length} values NaN/Inf where the reference is finite, or the reverse)` : ''}`);
    }
    if (!(err <= worst)) worst = err; // NaN and Infinity win
  }
  for (const t of [...Object.values(tg), ...Object.values(outG)]) t?.destroy?.();
  return { err: worst, outputs, problems };
}

function fmt(e) {
  return typeof e === 'number' && Number.isFinite(e) ? e.toExponential(2) : String(e);
}

// ---- the page ----
const params = new URLSearchParams(location.search);
const status = document.getElementById('status');
const tbody = document.querySelector('#results tbody');

function row(r) {
  const tr = document.createElement('tr');
  tr.className = r.ok ? 'pass' : 'fail';
  const detail = r.error ?? Object.entries(r.outputs ?? {}).map(([k, v]) => `${k} ${fmt(v)}`).join(', ');
  for (const text of [r.ok ? 'PASS' : 'FAIL', r.name, fmt(r.err), detail, `${r.ms ?? ''}`]) {
    const td = document.createElement('td');
    td.textContent = text;
    tr.appendChild(td);
  }
  tbody.appendChild(tr);
}

async function main() {
  const t0 = performance.now();
  const variant = params.get('variant') ?? 'auto';
  const only = params.get('only');
  const extended = params.get('extended') === '1';
  const res = { ok: false, backend: null, adapter: null, note: '', variant, results: [], ms: 0 };
  const fail = (name, error) => {
    const r = { name, err: null, ok: false, error };
    res.results.push(r);
    row(r);
  };
  if (!('gpu' in navigator) || !navigator.gpu) {
    fail('webgpu', `navigator.gpu is missing (isSecureContext=${window.isSecureContext}): WebGPU is not enabled in this browser`);
    return res;
  }
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) {
    fail('webgpu', 'navigator.gpu.requestAdapter() returned null: no WebGPU adapter');
    return res;
  }
  let gpu;
  try {
    // 'windowed': storage bindings capped at 16 KiB, so the larger cases run in bound ranges.
    const how = variant === 'windowed' ? { maxBindingBytes: 16384 } : { variant };
    gpu = await createNorms({ backend: 'webgpu', ...how, poisonOutputs: true });
  } catch (e) {
    fail('createNorms', `createNorms({ backend: 'webgpu' }) threw: ${e?.name}: ${e?.message}`);
    return res;
  }
  const cpu = await createNorms({ backend: 'cpu' });
  res.backend = gpu.backend;
  res.adapter = gpu.adapter;
  res.note = gpu.note;
  document.getElementById('adapter').textContent = `${gpu.backend}: ${JSON.stringify(gpu.adapter)} (${gpu.note}), variant ${variant}`;
  const gpuErrors = [];
  gpu.device?.addEventListener('uncapturederror', (ev) => gpuErrors.push(ev.error?.message ?? String(ev.error)));

  let seed = 1234;
  for (const c of CASES) {
    seed += 17;
    if (only && !c.name.includes(only)) continue;
    if (c.extended && !extended) continue;
    status.textContent = `running ${c.name}`;
    const t1 = performance.now();
    let r;
    try {
      const { err, outputs, problems } = await runCase(gpu, cpu, c, seed);
      r = { name: c.name, err, ok: problems.length === 0, outputs };
      if (problems.length) r.error = problems.join('; ');
    } catch (e) {
      r = { name: c.name, err: null, ok: false, error: `threw ${e?.name}: ${e?.message}` };
    }
    if (gpuErrors.length) {
      r.ok = false;
      r.error = `${r.error ? r.error + '; ' : ''}uncaptured GPU error: ${gpuErrors.splice(0).join(' | ')}`;
    }
    r.ms = Math.round(performance.now() - t1);
    res.results.push(r);
    row(r);
  }
  gpu.destroy();
  cpu.destroy();
  res.ok = res.backend === 'webgpu' && res.results.length > 0 && res.results.every((r) => r.ok);
  res.ms = Math.round(performance.now() - t0);
  return res;
}

main()
  .catch((e) => ({ ok: false, backend: null, adapter: null, results: [{ name: 'page', err: null, ok: false, error: `${e?.name}: ${e?.message}` }] }))
  .then((res) => {
    // Serializable for the runner: Infinity/NaN become strings.
    for (const r of res.results) if (typeof r.err === 'number' && !Number.isFinite(r.err)) r.err = String(r.err);
    status.textContent = `${res.ok ? 'PASS' : 'FAIL'}: ${res.results.filter((r) => r.ok).length}/${res.results.length} cases in ${res.ms} ms`;
    document.body.dataset.done = res.ok ? 'pass' : 'fail';
    window.__result = res;
  });
