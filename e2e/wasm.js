// The wasm backend in the browser (e2e/run.mjs opens this page twice: served plainly, and with
// COOP/COEP headers so that the page is cross-origin isolated and threads can run). Every op,
// forward and backward, float32 and float16, on the SIMD build, the scalar build and (isolated)
// two threads, against the float64 reference of the same bundle; the same bits for one and two
// threads; one op inside a module worker. Result: window.__result = { ok, isolated, checks, ms }.
import { createNorms, relativeL2 } from '/dist/index.js';
import { DATA, draw, examples, hashSeed, makeRng, numel, spec, tolerance } from '/test/catalog.js';

// Every op's `wasm` examples in the catalogue (test/catalog.js), op by op.
// id seeds the case's data; name (id and options) labels its checks.
const CASES = examples('wasm').map((c) => {
  const id = `${c.op} ${c.dir} [${c.shape}] ${c.dtype ?? 'float32'}`;
  return { dtype: 'float32', opts: {}, ...c, id, name: c.opts && Object.keys(c.opts).length ? `${id} ${JSON.stringify(c.opts)}` : id };
});

const checks = [];
const check = (name, ok, detail = '') => checks.push({ name, ok: !!ok, detail });

/** Every output of case c on instance n, host data in and out. */
async function outputs(n, c) {
  const s = spec(c, c.dir, DATA);
  const rng = makeRng(hashSeed(c.id));
  const T = {};
  for (const inp of s.inputs) T[inp.name] = n.tensor(draw(rng, numel(inp.shape), inp), inp.shape, inp.dtype);
  if (s.derive) Object.assign(T, s.derive(n, T));
  const out = s.call(n, T);
  const r = {};
  for (const [k, t] of Object.entries(out)) if (t && typeof t.destroy === 'function') r[k] = await n.read(t);
  for (const k of s.mutated ?? []) r[`${k} (in place)`] = await n.read(T[k]);
  for (const t of [...Object.values(out), ...Object.values(T)]) t?.destroy?.();
  return r;
}

const bitsEqual = (a, b) => a.length === b.length && new Uint32Array(a.buffer, a.byteOffset, a.length).every((v, i) => v === new Uint32Array(b.buffer, b.byteOffset, b.length)[i]);

async function main() {
  const t0 = performance.now();
  const isolated = globalThis.crossOriginIsolated === true;
  const cpu = await createNorms({ backend: 'cpu' });
  const simd = await createNorms({ backend: 'wasm', threads: 1, poisonOutputs: true });
  const scalar = await createNorms({ backend: 'wasm', simd: false, poisonOutputs: true });
  const two = await createNorms({ backend: 'wasm', threads: 2, threadMinBytes: 0, poisonOutputs: true });
  await two._wasm?.m.startThreads();
  check('the SIMD128 build runs here', simd._wasm?.m.build === 'simd', simd.note);
  check('simd: false runs the scalar build', scalar._wasm?.m.build === 'scalar', scalar.note);
  check(isolated ? 'cross-origin isolated: two threads on shared memory' : 'not isolated: one thread, no shared memory', isolated ? two._wasm?.m.threads === 2 && two._wasm.m.build === 'simd-threads' : two._wasm?.m.threads === 1, two.note);
  const auto = await createNorms();
  check("backend 'auto' on this browser's adapter", ['webgpu', 'wasm'].includes(auto.backend), `${auto.backend}: ${auto.note}`);
  auto.destroy();
  for (const c of CASES) {
    const tol = tolerance(c.op, c.dtype);
    const ref = await outputs(cpu, c);
    for (const [label, n] of [['simd', simd], ['scalar', scalar], ['2 threads', two]]) {
      const got = await outputs(n, c);
      const errs = Object.keys(ref).map((k) => [k, got[k] ? relativeL2(got[k], ref[k]) : Infinity]);
      const worst = errs.reduce((a, [, e]) => Math.max(a, Number.isNaN(e) ? Infinity : e), 0);
      check(`${c.name} ${label}`, worst <= tol && Object.keys(got).length === Object.keys(ref).length, `max rel. L2 ${worst.toExponential(2)} (tol ${tol})`);
      if (label === '2 threads') {
        const one = await outputs(simd, c);
        check(`${c.name}: the same bits on 1 and 2 threads`, Object.keys(one).every((k) => bitsEqual(one[k], got[k])));
      }
    }
  }
  check('no tensor left on the wasm instances', [simd, scalar, two].every((n) => n.stats().liveBuffers === 0), JSON.stringify([simd, scalar, two].map((n) => n.stats())));
  // In a module worker: the bundle loads and runs an op there too.
  const worker = new Worker(new URL(`/e2e/wasm-worker.js${isolated ? '?coi=1' : ''}`, location.href), { type: 'module' });
  const w = await new Promise((res) => {
    worker.onmessage = (e) => res(e.data);
    worker.onerror = (e) => res({ ok: false, error: e.message });
    setTimeout(() => res({ ok: false, error: 'no answer from the worker in 30 s' }), 30_000);
  });
  worker.terminate();
  const cref = await cpu.read(cpu.layerNorm(cpu.tensor(w.x ?? [0], [w.x ? 4 : 1, w.x ? w.x.length / 4 : 1]), { normalizedShape: [w.x ? w.x.length / 4 : 1] }).y);
  check('a module worker runs layerNorm on the wasm backend', w.ok && relativeL2(Float32Array.from(w.y), cref) <= 1e-4, w.error ?? `${w.backend}; ${w.note}`);
  for (const n of [cpu, simd, scalar, two]) n.destroy();
  return { ok: checks.every((c) => c.ok), isolated, checks, ms: Math.round(performance.now() - t0) };
}

main().then(
  (r) => (window.__result = r),
  (e) => (window.__result = { ok: false, isolated: globalThis.crossOriginIsolated === true, checks, error: `${e?.name}: ${e?.message}\n${e?.stack ?? ''}` }),
);
