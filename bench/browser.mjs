#!/usr/bin/env node
// The browser benchmark runner (`npm start`, through scripts/bench.sh): serves the repo with Vite
// on 127.0.0.1, opens bench/page.html in headless Chromium (playwright-core, Debian's chromium)
// with WebGPU on SwiftShader (or the real GPU with --adapter=gpu), streams progress into a live
// terminal table, and writes under bench/out/ (not tracked by git):
//   <adapter>-<date>.json         every figure, browser version, adapter info, features, limits
//   <adapter>-<date>.html         self-contained report with inline SVG bar charts
//   <adapter>-<date>-<chart>.png  one screenshot per chart (vs-copy, bandwidth, peers), ~1000 px wide
//   latest.md (markdown table), latest.json, latest.html, latest-<chart>.png
// With --save it also copies the latest.* files to bench/results/, the committed snapshot the
// README shows.
//
//   node bench/browser.mjs [--quick] [--filter=S] [--budget=S] [--adapter=swiftshader|gpu] [--no-peers] [--out=DIR] [--save]
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createServer } from 'vite';
import { chromium } from 'playwright-core';
import { parseFlags } from './cases.mjs';
import { adapterTag } from './core.mjs';
import { textTable, markdownTable, notes, variantText, variantMarkdown } from './format.mjs';
import { wasmTable } from './wasm.mjs';
import { renderHtml } from './report.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');

const HELP = `usage: node bench/browser.mjs [--quick] [--filter=S] [--budget=S] [--adapter=swiftshader|gpu] [--no-peers] [--out=DIR] [--save]
  --quick          tiny shapes (a smoke run)
  --filter=S       only cases whose id contains S
  --budget=S       seconds of timing per case for ours + the copy kernel, and again per peer (default 2)
  --adapter=gpu    let Chromium pick the real GPU (default: --use-webgpu-adapter=swiftshader)
  --no-peers       skip ONNX Runtime Web and TensorFlow.js (and the wasm rows' CPU peers)
  --wasm-only      only the wasm backend's rows (1 and 2 threads: the page is cross-origin isolated)
  --no-wasm        only the WebGPU rows
  --out=DIR        output folder (default bench/out, not tracked by git)
  --save           also copy latest.* to bench/results/ (the committed snapshot the README shows)`;

const CHROME_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-webgpu-adapter=swiftshader',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

const isTTY = process.stdout.isTTY;

async function main() {
  let flags;
  try {
    flags = parseFlags(process.argv.slice(2), { budget: 2, adapter: 'swiftshader' });
  } catch (e) {
    console.error(`bench: ${e.message}`);
    return 2;
  }
  if (flags.help) {
    console.log(HELP);
    return 0;
  }
  if (!['swiftshader', 'gpu'].includes(flags.adapter)) throw new Error(`--adapter: expected swiftshader or gpu, got ${flags.adapter}`);
  if (!existsSync(join(ROOT, 'build', 'bench', 'index.js'))) {
    console.error('bench: build/bench/index.js is missing; run `npm run build:bench` (scripts/bench.sh does)');
    return 2;
  }
  const executablePath = process.env.CHROME_PATH || '/usr/bin/chromium';
  if (!existsSync(executablePath)) {
    console.error(`bench: no Chromium at ${executablePath} (apt-get install -y chromium, or set CHROME_PATH)`);
    return 2;
  }
  const outDir = flags.out ? resolve(flags.out) : join(HERE, 'out');
  mkdirSync(outDir, { recursive: true });

  // Vite on 127.0.0.1 (a secure context, so navigator.gpu exists). TF.js is pre-bundled at
  // start-up (no reload mid-run); ORT-web is loaded as its own ES module and wasm from node_modules.
  const server = await createServer({
    root: ROOT,
    configFile: false,
    // Its own dependency cache: another Vite server on this repo (the demo, the e2e tests) with
    // other optimizeDeps would otherwise invalidate it mid-run (504 Outdated Optimize Dep).
    cacheDir: join(ROOT, 'node_modules', '.vite-bench'),
    logLevel: 'warn',
    clearScreen: false,
    // Cross-origin isolated (COOP/COEP): SharedArrayBuffer, so the wasm rows can run on 2 threads.
    server: { host: '127.0.0.1', port: 0, strictPort: false, hmr: false, watch: null, headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' } },
    optimizeDeps: {
      noDiscovery: true,
      include: ['@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-webgpu', '@tensorflow/tfjs-backend-cpu'],
      exclude: ['onnxruntime-web'],
    },
  });
  await server.listen();
  const addr = server.httpServer.address();
  const base = `http://127.0.0.1:${addr.port}`;

  const args = CHROME_FLAGS.filter((f) => !(flags.adapter === 'gpu' && f.startsWith('--use-webgpu-adapter')));
  const browser = await chromium.launch({ executablePath, headless: true, args });
  const version = browser.version();
  let result = null;
  let fatal = null;
  const t0 = Date.now();
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
    page.on('response', (r) => {
      if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) console.error(`[http ${r.status()}] ${r.url()}`);
    });
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') {
        const t = m.text();
        if (!/Download the .* DevTools|Failed to load resource/i.test(t)) console.error(`[page ${m.type()}] ${t.slice(0, 400)}`);
      }
    });
    const done = new Promise((res) => {
      let table = null;
      let total = 0;
      let progress = '';
      const clear = () => {
        if (isTTY && progress) process.stdout.write('\r\x1b[2K');
      };
      const show = (s) => {
        progress = s;
        if (isTTY) process.stdout.write(`\r\x1b[2K${s.slice(0, (process.stdout.columns || 120) - 1)}`);
      };
      page.exposeFunction('benchEvent', (ev) => {
        if (ev.type === 'start') {
          total = ev.total;
          const a = ev.env.adapter;
          console.log(`webgpu-norm bench: Chromium ${version}, adapter ${a.vendor} ${a.architecture} ${a.description}`.replace(/\s+/g, ' '));
          console.log(`features: ${ev.env.features.join(', ')}`);
          for (const [k, p] of Object.entries(ev.peers)) console.log(`peer ${k}: ${p.label} ${p.version ?? ''} ${p.status}${p.reason ? `: ${p.reason}` : ''}`);
          console.log(`${total} cases, ${ev.opts.budget} s timing budget per case and per peer; timing: ${ev.env.features.includes('timestamp-query') ? 'GPU timestamps around each batch (wall time also recorded)' : 'wall time per batch'}\n`);
          table = textTable(ev.opts.peers ? ['ort', 'tfjs'] : []);
          console.log(table.header());
        } else if (ev.type === 'case') {
          show(`  case ${ev.index + 1} of ${ev.total}: ${ev.id} …`);
        } else if (ev.type === 'peer') {
          show(`  ${ev.id}: ${ev.peer} …`);
        } else if (ev.type === 'row') {
          clear();
          console.log(table.line(ev.row));
          if (!isTTY) console.log(`  (case ${ev.index + 1} of ${ev.total} done in ${ev.row.caseSeconds.toFixed(1)} s)`);
          progress = '';
        } else if (ev.type === 'wasmStart') {
          clear();
          console.log(`\nwasm backend (crossOriginIsolated ${ev.crossOriginIsolated}; peers ${ev.peers.map((p) => `${p.label} ${p.version}`).join(', ')}): ms with tensors resident, GB/s, ×copy = fraction of the WASM SIMD copy's GB/s; host = tensor() + op + read(); peers host data in → out (× = peer ms / our host 1t ms)`);
          console.log(ev.header);
        } else if (ev.type === 'wasmRow') {
          clear();
          console.log(ev.line);
        } else if (ev.type === 'status') {
          if (!table) show(`  ${ev.text}`);
        } else if (ev.type === 'log') {
          clear();
          console.log(ev.text);
        } else if (ev.type === 'done') {
          clear();
          res({ result: ev.result });
        } else if (ev.type === 'fatal') {
          clear();
          res({ fatal: ev.error });
        }
      });
    });
    const params = new URLSearchParams({ budget: String(flags.budget), quick: flags.quick ? '1' : '0', peers: flags.peers ? '1' : '0', filter: flags.filter, wasm: flags.wasm });
    await page.goto(`${base}/bench/page.html?${params}`);
    // A guard so a hung page cannot hang the run: generous for the full list on 2 cores.
    const guardMs = (flags.quick ? 5 : 30) * 60_000;
    const out = await Promise.race([done, new Promise((res) => setTimeout(() => res({ fatal: `timed out after ${guardMs / 60000} min` }), guardMs))]);
    result = out.result ?? null;
    fatal = out.fatal ?? null;
    if (result) {
      result.environment.browser = `Chromium ${version}`;
      result.environment.chromeFlags = args;
      result.environment.node = process.version;
      result.seconds = (Date.now() - t0) / 1000;
    }
  } finally {
    if (!result) await browser.close();
  }
  if (!result) {
    await server.close();
    console.error(`bench: the page failed: ${fatal}`);
    return 2;
  }

  const rows = result.rows;
  const peerNames = result.flags.peers ? ['ort', 'tfjs'] : [];
  const vt = variantText(rows, peerNames.filter((p) => p === 'ort'));
  if (vt) console.log(`\nFused vs the unfused composition, the plain layer norm and ORT-web (same device; speed-up = composition time / fused time):\n${vt}`);
  const n = notes(rows);
  if (n.length) console.log(`\n${n.join('\n')}`);
  const tag = adapterTag(result.environment.adapter);
  const stamp = result.date.replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z');
  const stem = join(outDir, `${tag}-${stamp}`);
  const vmd = variantMarkdown(rows, peerNames.filter((p) => p === 'ort'));
  writeFileSync(`${stem}.json`, `${JSON.stringify(result, null, 1)}\n`);
  writeFileSync(`${stem}.html`, renderHtml(result));
  const md = [
    `# webgpu-norm benchmark — ${result.environment.adapter.vendor} ${result.environment.adapter.architecture} (${result.environment.browser})`,
    '',
    `${result.date}, ${rows.length} cases, ${result.flags.budget} s budget per case, timing: ${result.timing}. ` +
      'GB/s over the minimal bytes (fwd 2·numel·bpe, bwd 3·numel·bpe, fused residual 4·numel·bpe); "vs copy" = our GB/s / the vec4 copy kernel\'s GB/s in the same run; peer columns: peer ms (peer time / our time).',
    '',
    markdownTable(rows, peerNames),
    '',
    ...(vmd ? ['Fused vs the unfused composition (our layerNorm + WGSL passes) and the plain layer norm, same device, timed round-robin; speed-up = composition time / fused time; traffic = bytes moved / the row\'s minimal bytes (GPU cl.: the GPU kernel class, counted without running it):', '', vmd, ''] : []),
    ...(result.wasmRows?.length
      ? [
          '## wasm backend',
          '',
          'ms per op with the tensors resident in the module\'s memory at 1 and 2 threads; GB/s over the minimal bytes; ×copy = our GB/s / the WASM SIMD copy kernel\'s GB/s over the same bytes in the same memory; host = tensor() from host data + op + read() of the main output; peers timed host data in → host data out, (×) = peer ms / our host 1-thread ms.',
          '',
          wasmTable([...new Set(result.wasmRows.flatMap((r) => Object.keys(r.peers ?? {})))]).markdown(result.wasmRows),
          '',
        ]
      : []),
    ...(n.length ? ['Notes:', '', ...n.map((x) => `- ${x}`), ''] : []),
  ].join('\n');
  writeFileSync(join(outDir, 'latest.md'), md);

  // One screenshot per chart of the report, in the same browser.
  const shot = await browser.newPage({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
  await shot.goto(pathToFileURL(`${stem}.html`).href);
  const charts = await shot.$$eval('figure[id]', (fs) => fs.map((f) => f.id));
  for (const id of charts) await shot.locator(`figure#${id}`).screenshot({ path: `${stem}-${id}.png` });
  await browser.close();
  await server.close();
  for (const f of readdirSync(outDir)) if (/^latest-.*\.png$/.test(f)) rmSync(join(outDir, f));
  const latest = ['latest.md', 'latest.json', 'latest.html', ...charts.map((id) => `latest-${id}.png`)];
  for (const ext of ['json', 'html']) copyFileSync(`${stem}.${ext}`, join(outDir, `latest.${ext}`));
  for (const id of charts) copyFileSync(`${stem}-${id}.png`, join(outDir, `latest-${id}.png`));

  const all = [...rows, ...(result.wasmRows ?? [])];
  const bad = all.filter((r) => r.status !== 'ok');
  console.log(`\n${all.length} cases in ${result.seconds.toFixed(0)} s: ${all.length - bad.length} ok, ${bad.filter((r) => r.status === 'FAIL').length} FAIL, ${bad.filter((r) => r.status === 'error').length} error`);
  console.log(`wrote ${relative(process.cwd(), stem)}.{json,html} and ${charts.map((id) => `-${id}.png`).join(', ')}`);
  console.log(`wrote ${relative(process.cwd(), join(outDir, 'latest.md'))} (+ ${latest.slice(1).join(', ')})`);
  if (flags.save) {
    const saved = join(HERE, 'results');
    if (resolve(saved) !== resolve(outDir)) {
      mkdirSync(saved, { recursive: true });
      for (const f of readdirSync(saved)) if (/^latest[.-]/.test(f)) rmSync(join(saved, f));
      for (const f of latest) copyFileSync(join(outDir, f), join(saved, f));
    }
    console.log(`saved the snapshot: ${relative(process.cwd(), saved)}/{${latest.join(',')}} (commit them; the README shows them)`);
  } else {
    console.log('bench/results/ (the committed snapshot) left as it was: npm start -- --save updates it');
  }
  return bad.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e?.stack || e);
    process.exit(2);
  },
);
