// GPU vs CPU parity in a real browser: every op, forward and backward, on seeded random inputs
// with a non-zero mean, through the built bundle (/dist/index.js). The CPU backend is the
// PyTorch-exact reference; each output must agree to relative L2 <= 1e-4 (float16: 2e-3).
//
// Writes window.__result = { ok, backend, adapter, note, variant, results: [{ name, err, ok, outputs, error?, ms }], ms }
// and renders a table. Query parameters: ?variant=auto|fused|general (createNorms' testing aid;
// windowed: bindings capped at 16 KiB with maxBindingBytes, the larger cases in bound ranges),
// ?only=<substring of a case name>, ?extended=1 (also the float16 backward cases).
import { createNorms, relativeL2 } from '/dist/index.js';
// The op catalogue (inputs of each op, how forward and backward are called), the seeded
// generator and the tolerances, shared with the tests, the benchmark and the demo.
import { draw, makeRng, numel, opEntry, runChain, tolerance } from '/test/catalog.js';

// ---- the cases ----
// A case of the catalogue ({ op, shape, dtype?, opts }) run forward, then backward from the
// forward's own statistics (backward: true). data: input name -> { mean, std, positive? }, drawn
// in this order (positive: |v| + 0.1, for variances). Every output of both passes, and every input
// updated in place (running statistics), is compared.
const CASES = [
  {
    name: 'layerNorm fwd+bwd [7, 65] weight+bias',
    op: 'layerNorm', shape: [7, 65], backward: true,
    data: { x: { mean: 3, std: 2 }, weight: { mean: 1, std: 0.5 }, bias: { mean: 0.2, std: 1 }, dy: { mean: 0.5, std: 1 } },
  },
  {
    // >= 2048 rows: the row-fused backward sums dweight/dbias per block of rows.
    name: 'layerNorm fwd+bwd [2100, 12] weight+bias',
    op: 'layerNorm', shape: [2100, 12], backward: true,
    data: { x: { mean: 1, std: 2 }, weight: { mean: 1, std: 0.5 }, bias: { mean: 0.2, std: 1 }, dy: { mean: 0.5, std: 1 } },
  },
  {
    name: 'layerNorm fwd+bwd [64, 768]',
    op: 'layerNorm', shape: [64, 768], opts: { weight: false, bias: false }, backward: true,
    data: { x: { mean: -4, std: 1.5 }, dy: { mean: 0.25, std: 1 } },
  },
  {
    name: 'rmsNorm fwd+bwd [7, 257] weight',
    op: 'rmsNorm', shape: [7, 257], backward: true,
    data: { x: { mean: 2, std: 1 }, weight: { mean: 1, std: 0.3 }, dy: { mean: -0.3, std: 1 } },
  },
  {
    name: 'batchNorm training fwd+bwd [4, 3, 5, 5] running stats',
    op: 'batchNorm', shape: [4, 3, 5, 5], opts: { training: true, momentum: 0.1 }, backward: true,
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
    name: 'groupNorm fwd+bwd [2, 8, 6, 6] G=4 weight+bias',
    op: 'groupNorm', shape: [2, 8, 6, 6], opts: { numGroups: 4 }, backward: true,
    data: { x: { mean: -2, std: 3 }, weight: { mean: 1, std: 0.5 }, bias: { mean: 0, std: 1 }, dy: { mean: 0.2, std: 1 } },
  },
  {
    name: 'instanceNorm fwd+bwd [2, 3, 5, 7] weight+bias',
    op: 'instanceNorm', shape: [2, 3, 5, 7], backward: true,
    data: { x: { mean: 7, std: 0.5 }, weight: { mean: 1, std: 0.5 }, bias: { mean: 0, std: 1 }, dy: { mean: -0.4, std: 1 } },
  },
  {
    name: 'l2Normalize fwd+bwd [4, 6, 5] dim 1',
    op: 'l2Normalize', shape: [4, 6, 5], opts: { dim: 1 }, backward: true,
    data: { x: { mean: 0.5, std: 1 }, dy: { mean: 0.1, std: 1 } },
  },
  {
    name: 'weightNorm fwd+bwd [8, 3, 3, 3] dim 0',
    op: 'weightNorm', shape: [8, 3, 3, 3], opts: { dim: 0 }, backward: true,
    data: { v: { mean: 1, std: 1 }, g: { mean: 2, std: 0.5 }, dw: { mean: 0.3, std: 1 } },
  },
  {
    name: 'layerNorm fwd [5, 63] float16 weight+bias',
    op: 'layerNorm', shape: [5, 63], dtype: 'float16',
    data: { x: { mean: 2, std: 1 }, weight: { mean: 1, std: 0.5 }, bias: { mean: 0, std: 1 } },
  },
  {
    name: 'layerNorm fused residual fwd [16, 300] weight+bias',
    op: 'layerNorm', shape: [16, 300], opts: { residual: true },
    data: { x: { mean: 1, std: 1 }, residual: { mean: 2, std: 1 }, weight: { mean: 1, std: 0.5 }, bias: { mean: 0, std: 1 } },
  },
  // ---- beyond the required list: numerics stress and the other fused paths ----
  {
    // A large offset relative to the spread: a single-pass E[x^2] - E[x]^2 variance fails this by
    // orders of magnitude. (Any f32 kernel's y is off by its mean's rounding, ~ulp(offset)/std:
    // offsets near 1e3 already use most of the 1e-4 budget, so the offset stays at 300.)
    name: 'layerNorm fwd+bwd [8, 1024] x = 300 + N(0, 1)',
    op: 'layerNorm', shape: [8, 1024], opts: { bias: false }, backward: true,
    data: { x: { mean: 300, std: 1 }, weight: { mean: 1, std: 0.5 }, dy: { mean: 0, std: 1 } },
  },
  {
    // dy has zero mean here: dweight = sum(dy * (x - saveMean) * invstd) moves by sum(dy) * invstd
    // per ulp of saveMean, so with a large offset and a biased dy the two backends' own forward
    // statistics (one f32 ulp apart at 100) alone would put dweight ~1e-4 apart on any correct kernel.
    name: 'batchNorm training fwd+bwd [16, 4, 32, 32] x = 100 + N(0, 1), 16384 per channel',
    op: 'batchNorm', shape: [16, 4, 32, 32], opts: { training: true, momentum: null, numBatchesTracked: 3 }, backward: true,
    data: { x: { mean: 100, std: 1 }, weight: { mean: 1, std: 0.5 }, bias: { mean: 0, std: 1 }, runningMean: { mean: 0, std: 1 }, runningVar: { mean: 1, std: 0.3, positive: true }, dy: { mean: 0, std: 1 } },
  },
  {
    name: 'groupNorm fused SiLU fwd [2, 32, 8, 8] G=8 weight+bias',
    op: 'groupNorm', shape: [2, 32, 8, 8], opts: { numGroups: 8, activation: 'silu' },
    data: { x: { mean: 1, std: 2 }, weight: { mean: 1, std: 0.5 }, bias: { mean: 0, std: 1 } },
  },
  {
    name: 'rmsNorm fused residual fwd [8, 512] weight',
    op: 'rmsNorm', shape: [8, 512], opts: { residual: true },
    data: { x: { mean: 1, std: 1 }, residual: { mean: -0.5, std: 2 }, weight: { mean: 1, std: 0.3 } },
  },
  // ---- float16 backward (per-channel dweight/dbias are packed into half words by a cast step) ----
  {
    name: 'layerNorm fwd+bwd [5, 63] float16 weight+bias',
    op: 'layerNorm', shape: [5, 63], dtype: 'float16', backward: true,
    data: { x: { mean: 2, std: 1 }, weight: { mean: 1, std: 0.5 }, bias: { mean: 0, std: 1 }, dy: { mean: 0.3, std: 1 } },
  },
  {
    name: 'groupNorm fwd+bwd [2, 8, 6, 6] G=4 float16 weight+bias',
    op: 'groupNorm', shape: [2, 8, 6, 6], opts: { numGroups: 4 }, dtype: 'float16', backward: true,
    data: { x: { mean: -2, std: 3 }, weight: { mean: 1, std: 0.5 }, bias: { mean: 0, std: 1 }, dy: { mean: 0.2, std: 1 } },
  },
];

/** The inputs of a case (both passes), by name, from the catalogue: { shape, dtype }. */
function inputsOf(c) {
  const e = opEntry(c.op);
  const byName = {};
  for (const dir of c.backward ? ['fwd', 'bwd'] : ['fwd']) for (const i of e.inputs(c, dir)) byName[i.name] = i;
  const want = Object.keys(byName).sort().join(', ');
  const have = Object.keys(c.data).sort().join(', ');
  if (want !== have) throw new Error(`case data for {${have}}, but the op takes {${want}}`);
  return byName;
}

// ---- running a case on both backends ----
async function runCase(gpu, cpu, c, seed) {
  const rng = makeRng(seed, 'pairs');
  const specs = inputsOf(c);
  const host = {};
  for (const [k, d] of Object.entries(c.data)) host[k] = draw(rng, numel(specs[k].shape), d);
  const make = (N) => Object.fromEntries(Object.keys(c.data).map((k) => [k, N.tensor(host[k], specs[k].shape, specs[k].dtype)]));
  const tg = make(gpu);
  const tc = make(cpu);
  const outG = runChain(gpu, tg, c, !!c.backward);
  const outC = runChain(cpu, tc, c, !!c.backward);
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
    const tol = tolerance(c.op, c.dtype ?? 'float32');
    if (!(err <= tol)) {
      const nonFinite = g.reduce((n, v, i) => n + (Number.isFinite(v) !== Number.isFinite(r[i]) ? 1 : 0), 0);
      problems.push(`${name}: relative L2 ${fmt(err)} > ${tol}${nonFinite ? ` (${nonFinite} of ${r.length} values NaN/Inf where the reference is finite, or the reverse)` : ''}`);
    }
    if (!(err <= worst)) worst = err; // NaN and Infinity win
  }
  for (const t of new Set([...Object.values(tg), ...Object.values(outG)])) t?.destroy?.();
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
