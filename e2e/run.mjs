#!/usr/bin/env node
// The e2e runner (`npm run test:e2e`, last step of `npm test`): starts a Vite dev server on
// 127.0.0.1 (a free port, the repo root served), launches headless Chromium through
// playwright-core with WebGPU on SwiftShader (or the real GPU with --adapter=gpu), runs each
// test, prints one line per test and ends with `N passed, M failed` (exit code 1 on a failure).
//
// Assumes dist/ is built (`npx vite build`; scripts/test.sh builds first).
//
//   node e2e/run.mjs [--adapter=gpu] [--only=<substring>] [--screenshot=/tmp/demo.png] [--timeout=120] [--extended]
//
// --only runs the tests whose name contains the substring; --extended adds the parity cases
// marked `extended` in the catalogue (test/catalog.js; none today: the float16 backward cases run
// by default); --screenshot saves the demo page after its runs.
//
// Environment: CHROME_PATH (default /usr/bin/chromium), WEBGPU_NORM_ADAPTER=gpu (as --adapter=gpu),
// WEBGPU_NORM_E2E_SCREENSHOT (as --screenshot).
// A page without navigator.gpu or without an adapter FAILS: there is no skip.
import { createServer as createNetServer } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

// ---- options ----
const argv = process.argv.slice(2);
const opt = (name) => {
  const hit = argv.find((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (!hit) return undefined;
  return hit.includes('=') ? hit.slice(hit.indexOf('=') + 1) : 'true';
};
for (const a of argv) {
  if (!/^--(adapter|only|screenshot|timeout)=.+$|^--extended$/.test(a)) {
    console.error(`e2e/run.mjs: unknown argument ${a}\nusage: node e2e/run.mjs [--adapter=gpu|swiftshader] [--only=<substring>] [--screenshot=PATH] [--timeout=SECONDS] [--extended]`);
    process.exit(2);
  }
}
const ADAPTER = opt('adapter') ?? process.env.WEBGPU_NORM_ADAPTER ?? 'swiftshader';
if (ADAPTER !== 'gpu' && ADAPTER !== 'swiftshader') {
  console.error(`e2e/run.mjs: --adapter must be gpu or swiftshader, got ${ADAPTER}`);
  process.exit(2);
}
const ONLY = opt('only');
const EXTENDED = opt('extended') === 'true';
const SCREENSHOT = opt('screenshot') ?? process.env.WEBGPU_NORM_E2E_SCREENSHOT;
const TEST_TIMEOUT_MS = Number(opt('timeout') ?? 120) * 1000;
const CHROME = process.env.CHROME_PATH || '/usr/bin/chromium';

const CHROME_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  ...(ADAPTER === 'gpu' ? [] : ['--use-webgpu-adapter=swiftshader']),
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

// ---- helpers ----
function freePort() {
  return new Promise((res, rej) => {
    const s = createNetServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

class TestError extends Error {}
const fail = (msg) => {
  throw new TestError(msg);
};

function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, rej) => {
    timer = setTimeout(() => rej(new TestError(`timed out after ${ms / 1000} s ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

/** A page with its console errors, uncaught exceptions and failed requests collected. */
async function openPage(ctx) {
  const page = await ctx.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`uncaught ${e.name}: ${e.message}`));
  page.on('console', (m) => {
    // "Failed to load resource" duplicates the response listener below, which names the URL.
    if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) problems.push(`console.error: ${m.text()}`);
  });
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
  page.on('response', (r) => {
    if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) problems.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  return { page, problems };
}

/** Wait until `fn` (evaluated in the page) is truthy; fail early if the page reports an error and nothing else happens. */
async function waitFor(page, problems, fn, arg, what) {
  const deadline = Date.now() + TEST_TIMEOUT_MS;
  let firstProblemAt = 0;
  for (;;) {
    const v = await page.evaluate(fn, arg).catch((e) => fail(`page.evaluate failed while waiting for ${what}: ${e.message}`));
    if (v) return v;
    if (problems.length && !firstProblemAt) firstProblemAt = Date.now();
    if (firstProblemAt && Date.now() - firstProblemAt > 5000) fail(`page failed before ${what}: ${problems.join(' | ')}`);
    if (Date.now() > deadline) fail(`timed out waiting for ${what}${problems.length ? ` (page problems: ${problems.join(' | ')})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function checkAdapter(adapter, backend) {
  if (backend !== 'webgpu') fail(`backend is ${JSON.stringify(backend)}, expected 'webgpu'`);
  if (!adapter) fail('no adapter info reported');
  if (ADAPTER === 'swiftshader' && !/swiftshader/i.test(`${adapter.architecture} ${adapter.description} ${adapter.device}`)) {
    fail(`expected the SwiftShader adapter, got ${JSON.stringify(adapter)}`);
  }
}

/** Served byte for byte (no dev-server transform, no dependency optimizer). */
const RAW_PREFIXES = ['/dist/', '/node_modules/onnxruntime-web/dist/'];

const fmtErr = (e) => (typeof e === 'number' && Number.isFinite(e) ? e.toExponential(2) : String(e));

// ---- the tests ----
/**
 * e2e/parity.html with createNorms' `variant` testing aid: 'auto' (what users get) prints one
 * line per case; 'general' and 'fused' (every op forced through one kernel path) one line each;
 * 'windowed' (storage bindings capped at 16 KiB: the larger cases in bound ranges) one line.
 */
function parityTest(variant) {
  const label = variant === 'auto' ? 'parity' : `parity [variant ${variant}]`;
  return {
    name: label,
    async run(ctx, base) {
      const { page, problems } = await openPage(ctx);
      await page.goto(`${base}/e2e/parity.html?variant=${variant}${EXTENDED ? '&extended=1' : ''}`);
      const res = await waitFor(page, problems, () => window.__result, undefined, 'window.__result of e2e/parity.html');
      await page.close();
      if (res.backend !== 'webgpu') fail(`no webgpu backend: ${res.results.map((r) => `${r.name}: ${r.error}`).join('; ') || `backend ${res.backend}`}`);
      checkAdapter(res.adapter, res.backend);
      if (!res.results.length) fail('the page reported no results');
      const bad = res.results.filter((r) => !r.ok);
      if (variant !== 'auto') {
        if (bad.length) fail(`${bad.length}/${res.results.length} cases failed: ${bad.map((r) => `${r.name}: ${r.error ?? fmtErr(r.err)}`).join('; ')}`);
        if (!res.ok) fail('the page reported ok: false');
        const worst = res.results.reduce((a, r) => Math.max(a, Number(r.err)), 0);
        return `${res.results.length} cases, worst rel. L2 ${fmtErr(worst)}, ${res.ms} ms`;
      }
      const subs = res.results.map((r) => ({
        name: `${label}: ${r.name}`,
        ok: !!r.ok,
        detail: r.ok ? `max rel. L2 ${fmtErr(r.err)}, ${r.ms} ms` : (r.error ?? `err ${fmtErr(r.err)}`),
      }));
      if (!res.ok && !bad.length) subs.push({ name: `${label}: page`, ok: false, detail: 'the page reported ok: false' });
      return subs;
    },
  };
}

/**
 * e2e/interop.html?engine=ort|tfjs: one GPUDevice shared with ONNX Runtime Web or TensorFlow.js,
 * buffers passed both ways without a read-back; one line per check.
 */
function interopTest(engine, label) {
  return {
    name: `interop: ${label}`,
    async run(ctx, base) {
      const { page, problems } = await openPage(ctx);
      await page.goto(`${base}/e2e/interop.html?engine=${engine}`);
      const res = await waitFor(page, problems, () => window.__result, undefined, 'window.__result of e2e/interop.html');
      await page.close();
      const name = `interop: ${label} ${res.version ?? ''}`.trim();
      const subs = res.checks.map((c) => ({ name: `${name}: ${c.name}`, ok: c.ok, detail: `${c.tol ? `rel. L2 ${fmtErr(c.err)} (tol ${c.tol})` : ''}${c.sample ? ` got ${JSON.stringify(c.sample)}` : ''}` }));
      if (res.error || !res.checks.length) subs.push({ name: `${name}: page`, ok: false, detail: res.error ?? 'no checks ran' });
      if (problems.length) subs.push({ name: `${name}: page problems`, ok: false, detail: problems.join(' | ') });
      subs.push({ name: `${name}: done`, ok: res.ok, detail: `${res.checks.length} checks in the page, ${res.ms} ms; buffer usages handed over: ${JSON.stringify(res.usages ?? {})}` });
      return subs;
    },
  };
}

/**
 * e2e/wasm.html: the wasm backend (SIMD, scalar, two threads) against the CPU reference in the
 * page and in a module worker; `isolated`: served with COOP/COEP (threads on shared memory).
 */
function wasmTest(isolated) {
  const label = `wasm backend${isolated ? ', cross-origin isolated' : ''}`;
  return {
    name: label,
    async run(ctx, base) {
      const { page, problems } = await openPage(ctx);
      await page.goto(`${base}/e2e/wasm.html${isolated ? '?coi=1' : ''}`);
      const res = await waitFor(page, problems, () => window.__result, undefined, 'window.__result of e2e/wasm.html');
      await page.close();
      if (res.isolated !== isolated) fail(`crossOriginIsolated is ${res.isolated}, expected ${isolated}`);
      const subs = res.checks.map((c) => ({ name: `${label}: ${c.name}`, ok: c.ok, detail: c.detail }));
      if (res.error) subs.push({ name: `${label}: page`, ok: false, detail: res.error });
      if (problems.length) subs.push({ name: `${label}: page problems`, ok: false, detail: problems.join(' | ') });
      subs.push({ name: `${label}: done`, ok: res.ok && !res.error, detail: `${res.checks.length} checks, ${res.ms} ms` });
      return subs;
    },
  };
}

// Each test: { name, run(ctx, base) } returning a detail string (or sub-results to print) or throwing.
const TESTS = [
  {
    name: 'bundle: dist/index.js is one self-contained ES module',
    async run() {
      const file = join(ROOT, 'dist/index.js');
      if (!existsSync(file)) fail('dist/index.js is missing: run `npx vite build` first');
      const src = readFileSync(file, 'utf8');
      const bare = [...src.matchAll(/(?:^|[;\n}])\s*(?:import|export)\s[^;'"]*?from\s*['"]([^'"]+)['"]/g), ...src.matchAll(/\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g)]
        .map((m) => m[1])
        .filter((s) => !s.startsWith('./') && !s.startsWith('../') && !s.startsWith('/'));
      if (bare.length) fail(`bare imports left in dist/index.js: ${[...new Set(bare)].join(', ')}`);
      // An import of a .wgsl file left unresolved (static or dynamic). The bundle may name the files
      // otherwise: the WGSL's own comments ("apply.wgsl's APPLY") and the keys of the shader table
      // (source.ts finds the shaders by file name).
      if (/(?:\bfrom\s*|\bimport\s*\(\s*)['"][^'"]*\.wgsl(\?raw)?['"]/.test(src)) fail('dist/index.js still imports a .wgsl file (WGSL not inlined)');
      if (!/@compute/.test(src)) fail('dist/index.js has no inlined WGSL (@compute not found)');
      const kb = (statSync(file).size / 1024).toFixed(1);
      return `${kb} KiB, no bare imports, WGSL inlined`;
    },
  },
  {
    name: 'bundle: loads in the browser, webgpu backend, tensors round-trip, typed errors',
    async run(ctx, base) {
      const { page, problems } = await openPage(ctx);
      await page.goto(`${base}/e2e/blank.html`);
      const r = await page.evaluate(async () => {
        const m = await import('/dist/index.js');
        const out = { exports: Object.keys(m).sort(), hasGpu: !!navigator.gpu, secure: window.isSecureContext };
        const N = await m.createNorms({ backend: 'webgpu' });
        out.backend = N.backend;
        out.adapter = N.adapter;
        out.note = N.note;
        const data = [1.5, -2.25, 3, 1e4 + 0.5, -0.125, 7];
        out.f32 = Array.from(await N.read(N.tensor(data, [2, 3])));
        out.f16 = Array.from(await N.read(N.tensor([1, 0.1, -65504, 3.14159], [4], 'float16')));
        try {
          N.layerNorm(N.tensor(data, [2, 3]), { normalizedShape: [4] });
          out.shapeError = 'no error thrown';
        } catch (e) {
          out.shapeError = `${e.name}|${e.argument ?? ''}|${e.message}`;
        }
        try {
          N.groupNorm(N.tensor(new Float32Array(2 * 6 * 4), [2, 6, 4]), { numGroups: 4 });
          out.groupsError = 'no error thrown';
        } catch (e) {
          out.groupsError = `${e.name}|${e.argument ?? ''}|${e.message}`;
        }
        N.destroy();
        return out;
      });
      if (!r.secure) fail('page is not a secure context (navigator.gpu needs http://localhost or 127.0.0.1)');
      if (!r.hasGpu) fail('navigator.gpu is missing: WebGPU not enabled in this Chromium');
      for (const e of ['createNorms', 'relativeL2', 'Tensor']) if (!r.exports.includes(e)) fail(`export ${e} missing (exports: ${r.exports.join(', ')})`);
      checkAdapter(r.adapter, r.backend);
      const want32 = [1.5, -2.25, 3, 10000.5, -0.125, 7];
      if (JSON.stringify(r.f32) !== JSON.stringify(want32)) fail(`float32 round trip gave ${r.f32}`);
      const want16 = [1, 0.0999755859375, -65504, 3.140625];
      if (JSON.stringify(r.f16) !== JSON.stringify(want16)) fail(`float16 round trip gave ${r.f16}, expected ${want16}`);
      if (!/^ShapeError\|/.test(r.shapeError) || !/normalizedShape/.test(r.shapeError)) fail(`bad normalizedShape: expected a ShapeError naming normalizedShape, got ${r.shapeError}`);
      if (!/^ValueError\|numGroups\|/.test(r.groupsError)) fail(`numGroups 4 for 6 channels: expected ValueError on numGroups, got ${r.groupsError}`);
      if (problems.length) fail(problems.join(' | '));
      await page.close();
      return `${r.adapter.vendor}/${r.adapter.architecture}, ${r.exports.length} exports`;
    },
  },
  {
    // The README's browser example, as written, with its one import pointed at the built bundle.
    name: 'README: the browser example runs as written',
    async run(ctx, base) {
      const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
      const m = readme.match(/<!-- example: browser\b[^>]*-->\s*```js\n([\s\S]*?)```/);
      if (!m) fail('README.md has no code block marked <!-- example: browser -->');
      const code = m[1].replace(/from 'webgpu-norm'/, `from '${base}/dist/index.js'`);
      if (code === m[1]) fail("the README's browser example does not import from 'webgpu-norm'");
      const { page, problems } = await openPage(ctx);
      const logs = [];
      page.on('console', (msg) => logs.push(msg.text()));
      await page.goto(`${base}/e2e/blank.html`);
      const r = await page.evaluate(async (src) => {
        const url = URL.createObjectURL(new Blob([src], { type: 'text/javascript' }));
        try {
          await import(url);
          return { ok: true };
        } catch (e) {
          return { ok: false, error: `${e?.name}: ${e?.message}` };
        } finally {
          URL.revokeObjectURL(url);
        }
      }, code);
      if (!r.ok) fail(`the example threw ${r.error}`);
      // backend 'auto': WebGPU on a GPU; the wasm backend on SwiftShader (a CPU-emulated adapter).
      const first = logs.find((l) => /^(webgpu|wasm|cpu) /.test(l));
      const want = ADAPTER === 'swiftshader' ? 'wasm ' : 'webgpu ';
      if (!first?.startsWith(want)) fail(`expected the ${want.trim()} backend, the example logged: ${logs.join(' | ')}`);
      const last = logs.find((l) => /^49152 49152 /.test(l));
      if (!last) fail(`expected "49152 49152 …" (the lengths of y and dx, then the shapes of dweight and dbias), got: ${logs.join(' | ')}`);
      if (problems.length) fail(problems.join(' | '));
      await page.close();
      return `${first}; ${last}`;
    },
  },
  interopTest('ort', 'ONNX Runtime Web'),
  interopTest('tfjs', 'TensorFlow.js'),
  wasmTest(false),
  wasmTest(true),
  parityTest('auto'),
  parityTest('general'),
  parityTest('fused'),
  parityTest('windowed'),
  {
    name: 'demo',
    async run(ctx, base) {
      const { page, problems } = await openPage(ctx);
      await page.setViewportSize({ width: 1200, height: 900 });
      await page.goto(`${base}/index.html`);
      await waitFor(page, problems, () => document.body.dataset.ready, undefined, 'the demo page to be ready (body[data-ready])');
      const backend = await page.getAttribute('#adapter', 'data-backend');
      if (backend !== 'webgpu') fail(`demo page backend is ${backend}: ${await page.textContent('#adapter')}`);
      const details = [];
      for (const direction of ['forward', 'backward']) {
        await page.selectOption('#op', 'layerNorm');
        await page.fill('#shape', '[64, 768]');
        await page.selectOption('#dtype', 'float32');
        await page.selectOption('#direction', direction);
        const runsBefore = Number((await page.getAttribute('#result', 'data-run')) ?? 0);
        await page.click('#run');
        await waitFor(page, problems, (n) => {
          const el = document.querySelector('#result');
          return el && Number(el.dataset.run ?? 0) > n && el.dataset.state !== 'running';
        }, runsBefore, `the ${direction} run's result`);
        const r = await page.evaluate(() => ({ ...document.querySelector('#result').dataset, text: document.querySelector('#result').textContent }));
        if (r.state !== 'done') fail(`${direction} run: state ${r.state}: ${r.error ?? r.text}`);
        if (r.backend !== 'webgpu') fail(`${direction} run: backend ${r.backend}`);
        const err = Number(r.err);
        if (r.err === undefined || r.err === '' || !(err <= 1e-4)) fail(`${direction} run: relative error ${r.err} (need <= 1e-4)`);
        if (!(Number(r.gbps) > 0)) fail(`${direction} run: GB/s ${r.gbps}`);
        details.push(`${direction} err ${fmtErr(err)} ${Number(r.gbps).toFixed(2)} GB/s`);
      }
      const bars = await page.locator('#chart rect.bar').count();
      if (bars < 2) fail(`the chart shows ${bars} bars after 2 runs`);
      if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT, fullPage: true });
      if (problems.length) fail(problems.join(' | '));
      await page.close();
      return details.join(', ') + (SCREENSHOT ? `, screenshot ${SCREENSHOT}` : '');
    },
  },
];

// ---- main ----
async function main() {
  const t0 = Date.now();
  let passed = 0;
  let failed = 0;
  const report = (ok, name, detail, ms) => {
    if (ok) passed++;
    else failed++;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? ` — ${detail}` : ''}${ms != null ? ` (${(ms / 1000).toFixed(1)} s)` : ''}`);
  };

  let server = null;
  let ctx = null;
  let profile = null;
  const cleanup = async () => {
    await ctx?.close().catch(() => {});
    ctx = null;
    await server?.close().catch(() => {});
    server = null;
    if (profile) rmSync(profile, { recursive: true, force: true });
    profile = null;
  };
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, () => {
      cleanup().finally(() => process.exit(130));
    });
  }

  try {
    const { createServer } = await import('vite');
    const { chromium } = await import('playwright-core');
    const port = await freePort();
    server = await createServer({
      root: ROOT,
      configFile: join(ROOT, 'vite.config.ts'),
      logLevel: 'warn',
      clearScreen: false,
      server: { host: '127.0.0.1', port, strictPort: true, hmr: false, watch: null, open: false },
      // e2e/interop-tfjs.js imports TF.js by package name: pre-bundled at start-up (no reload
      // mid-test), in a cache of its own (the demo's `npm run dev` keeps node_modules/.vite).
      cacheDir: join(ROOT, 'node_modules', '.vite-e2e'),
      optimizeDeps: { include: ['@tensorflow/tfjs-core', '@tensorflow/tfjs-core/dist/register_all_gradients', '@tensorflow/tfjs-backend-webgpu'], exclude: ['onnxruntime-web'] },
      plugins: [
        {
          // Serve dist/ byte for byte, as a static host would, so the e2e tests load exactly the
          // built bundle and not a dev-server transform of it; the same for ORT-web's browser
          // bundle (its ES module and wasm, loaded by URL).
          name: 'webgpu-norm-e2e-static-dist',
          configureServer(s) {
            // ?coi=1: the response carries COOP/COEP, so that page is cross-origin isolated
            // (SharedArrayBuffer, the wasm backend's threads); e2e/wasm.js passes it on to its worker.
            s.middlewares.use((req, res, next) => {
              if (/[?&]coi=1(&|$)/.test(req.url ?? '')) {
                res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
                res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
              }
              next();
            });
            s.middlewares.use((req, res, next) => {
              const path = decodeURIComponent((req.url ?? '').split('?')[0]);
              if (!RAW_PREFIXES.some((p) => path.startsWith(p)) || path.includes('..')) return next();
              const file = join(ROOT, path);
              if (!existsSync(file) || !statSync(file).isFile()) {
                res.statusCode = 404;
                res.end(`${path} not found: build dist/ first (npx vite build)`);
                return;
              }
              const type = /\.m?js$/.test(file) ? 'text/javascript' : file.endsWith('.wasm') ? 'application/wasm' : file.endsWith('.map') || file.endsWith('.json') ? 'application/json' : 'application/octet-stream';
              res.setHeader('Content-Type', type === 'application/wasm' ? type : `${type}; charset=utf-8`);
              res.setHeader('Cache-Control', 'no-store');
              res.end(readFileSync(file));
            });
          },
        },
      ],
    });
    await server.listen();
    const base = `http://127.0.0.1:${port}`;

    profile = mkdtempSync(join(tmpdir(), 'webgpu-norm-e2e-'));
    if (!existsSync(CHROME)) throw new Error(`Chromium not found at ${CHROME} (set CHROME_PATH, or apt-get install -y chromium)`);
    ctx = await chromium.launchPersistentContext(profile, { executablePath: CHROME, headless: true, args: CHROME_FLAGS, timeout: 60_000 });
    console.log(`e2e: ${base}, ${CHROME} (${ctx.browser()?.version() ?? 'chromium'}), adapter ${ADAPTER}`);

    for (const t of TESTS) {
      if (ONLY && !t.name.includes(ONLY)) continue;
      const t1 = Date.now();
      try {
        const out = await withTimeout(t.run(ctx, base), TEST_TIMEOUT_MS, `in test "${t.name}"`);
        if (Array.isArray(out)) for (const s of out) report(s.ok, s.name, s.detail);
        else report(true, t.name, out, Date.now() - t1);
      } catch (e) {
        report(false, t.name, e instanceof TestError ? e.message : (e?.stack ?? String(e)), Date.now() - t1);
      } finally {
        // A test that timed out may leave its page running: close every page before the next test.
        await Promise.all(ctx.pages().map((p) => p.close().catch(() => {})));
      }
    }
  } catch (e) {
    report(false, 'e2e setup', e?.stack ?? String(e));
  } finally {
    await cleanup();
  }
  console.log(`e2e total ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 && passed > 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    console.log('0 passed, 1 failed');
    process.exit(1);
  },
);
