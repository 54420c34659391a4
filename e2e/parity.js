// GPU vs CPU parity in a real browser: every op, forward and backward, on seeded random inputs
// with a non-zero mean, through the built bundle (/dist/index.js). The CPU backend is the
// PyTorch-exact reference; each output must agree to relative L2 <= 1e-4 (float16: 2e-3).
//
// Writes window.__result = { ok, backend, adapter, note, variant, results: [{ name, err, ok, outputs, error?, ms }], ms }
// and renders a table. Query parameters: ?variant=auto|fused|general (createNorms' testing aid;
// windowed: bindings capped at 16 KiB with maxBindingBytes, the larger cases in bound ranges),
// ?only=<substring of a case name>, ?extended=1 (also the cases marked `extended` in the catalogue;
// none is today: the float16 backward cases, once marked, run by default).
import { createNorms, relativeL2 } from '/dist/index.js';
// The op catalogue (inputs of each op, how forward and backward are called), the seeded
// generator and the tolerances, shared with the tests, the benchmark and the demo.
import { draw, examples, hashSeed, makeRng, numel, opEntry, runChain, tolerance } from '/test/catalog.js';

// ---- the cases ----
// Every op's `parity` examples in the catalogue (test/catalog.js), op by op: a case of the
// catalogue ({ op, shape, dtype?, opts }) with its name, run forward, then backward from the
// forward's own statistics (backward: true). data: input name -> { mean, std, positive? }, drawn
// in this order (positive: |v| + 0.1, for variances); seed: the generator's seed (default the hash
// of the name); extended: only with ?extended=1. Every output of both passes, and every input
// updated in place (running statistics), is compared.
const CASES = examples('parity');

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

  for (const c of CASES) {
    if (only && !c.name.includes(only)) continue;
    if (c.extended && !extended) continue;
    status.textContent = `running ${c.name}`;
    const t1 = performance.now();
    let r;
    try {
      const { err, outputs, problems } = await runCase(gpu, cpu, c, c.seed ?? hashSeed(c.name));
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
