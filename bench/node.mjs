#!/usr/bin/env node
// The Node benchmark runner: the built library (build/bench/index.js, or --lib=FILE) on Dawn (the `webgpu` package),
// every case of bench/cases.mjs checked against the CPU reference and timed against the vec4
// copy kernel. Prints a table, writes bench/out/node-<adapter>-<date>.json, exits 1 when a
// row FAILs (wrong result) or errors.
//
//   node bench/node.mjs [--quick] [--filter=<substring>] [--budget=<seconds per case>] [--out=<dir>] [--lib=<file>]
//
// Needs only the built bundle (npm run build:bench; npm test passes --lib=dist/index.js, the
// package's own bundle) and node_modules/webgpu. With no VK_ICD_FILENAMES /
// VK_DRIVER_FILES set it points Vulkan at Chromium's SwiftShader when that is installed, as
// scripts/env.sh does; WEBGPU_NORM_ADAPTER=gpu (or a set ICD variable) keeps the real driver.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import os from 'node:os';
import { parseFlags, selectCases } from './cases.mjs';
import { runCases, describeDevice, adapterTag } from './core.mjs';
import { textTable, notes, variantText } from './format.mjs';
import { nodeGpuEnv } from './node-env.mjs';
import { runWasmCases, wasmTable } from './wasm.mjs';
import { createOrtWasmPeer, createTfjsCpuPeer, createJsLoopPeer } from './peers/cpu.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');

const HELP = `usage: node bench/node.mjs [--quick] [--filter=<substring>] [--budget=<seconds per case>] [--out=<dir>] [--lib=<file>]
  --quick        tiny shapes: a smoke run of every case in seconds
  --filter=S     only cases whose id contains S (case-insensitive), e.g. --filter="layerNorm fwd"
  --budget=S     seconds of timing per case, the op and the copy kernel together (default 2)
  --out=DIR      where the JSON goes (default bench/out, not tracked by git)
  --lib=FILE     the built library to load (default build/bench/index.js; npm test uses dist/index.js)
  --adapter-class=auto|cpu|gpu  the kernel family (createNorms adapterClass; default auto: detected)
  --wasm-only    only the wasm backend's rows (1 and 2 threads, vs its copy kernel and the CPU peers)
  --no-wasm      only the webgpu rows
  --no-peers     the wasm rows without ONNX Runtime Web (wasm EP), TF.js (cpu) and the JS loop
Exit status 1 when any row FAILs the CPU-reference check or errors.`;

async function main() {
  let flags;
  try {
    flags = parseFlags(process.argv.slice(2), { budget: 2 });
  } catch (e) {
    console.error(`bench: ${e.message}`);
    return 2;
  }
  if (flags.help) {
    console.log(HELP);
    return 0;
  }
  let lib;
  const libFile = resolve(flags.lib ?? join(ROOT, 'build', 'bench', 'index.js'));
  try {
    lib = await import(pathToFileURL(libFile).href);
  } catch (e) {
    console.error(`bench: cannot load ${relative(process.cwd(), libFile)} (${e.message}); run \`npm run build:bench\` first`);
    return 2;
  }
  nodeGpuEnv();
  let webgpu;
  try {
    webgpu = await import('webgpu');
  } catch (e) {
    console.error(`bench: cannot load the 'webgpu' package (${e.message}); run \`npm ci\``);
    return 2;
  }
  const gpu = webgpu.create([]);
  // (Passed only when asked for: older builds of the library do not know the option.)
  const adapterClass = flags.adapterClass ?? 'auto';
  const norms = await lib.createNorms({ gpu, backend: 'webgpu', ...(flags.adapterClass ? { adapterClass } : {}) });
  const cpu = await lib.createNorms({ backend: 'cpu' });
  const env = describeDevice(norms.device, norms.adapter);
  const cases = selectCases(flags);
  if (!cases.length) {
    console.error(`bench: no case matches --filter=${flags.filter}`);
    return 2;
  }
  const tag = adapterTag(norms.adapter);
  const a = norms.adapter;
  console.log(`webgpu-norm bench (Node ${process.version}, Dawn): ${a.vendor} ${a.architecture} ${a.device} ${a.description}`.replace(/\s+/g, ' '));
  console.log(`features: ${env.features.join(', ')}`);
  console.log(`${cases.length} cases, ${flags.budget} s timing budget each${flags.quick ? ' (quick shapes)' : ''}; timing: ${norms.device.features.has('timestamp-query') ? 'GPU timestamps around each batch (wall time also recorded)' : 'wall time per batch (no timestamp-query)'}; kernel class: ${adapterClass === 'auto' ? `${norms._gpu?.ctx.isCpuAdapter ? 'cpu' : 'gpu'} (detected)` : adapterClass}`);
  console.log('');
  const table = textTable([]);
  const t0 = Date.now();
  if (flags.wasm !== 'only') console.log(table.header());
  const rows = flags.wasm === 'only' ? [] : await runCases(cases, {
    lib,
    norms,
    cpu,
    adapterClass: flags.adapterClass,
    budgetS: flags.budget,
    peers: [],
    onEvent: (ev) => {
      if (ev.type === 'row') console.log(table.line(ev.row));
    },
  });
  // The wasm backend's rows: the same cases on the CPU, with CPU peers.
  const wasmRows = [];
  if (flags.wasm !== 'no') {
    const peers = flags.peers ? await cpuPeers() : [];
    const wt = wasmTable(peers.map((p) => p.name));
    console.log(`\nwasm backend (${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}): ms per op with tensors resident, GB/s over the minimal bytes, ×copy = fraction of the WASM SIMD copy's GB/s in the same memory; host = tensor() + op + read(); peers host data in → out, (×) = peer ms / our host 1t ms`);
    console.log(wt.header());
    wasmRows.push(...(await runWasmCases(cases, { lib, cpu, budgetS: flags.budget, peers, onRow: (r) => console.log(wt.line(r)) })));
  }
  rows.push(...wasmRows);
  const seconds = (Date.now() - t0) / 1000;
  const bad = rows.filter((r) => r.status !== 'ok');
  const vt = variantText(rows);
  if (vt) console.log(`\nFused vs the unfused composition and the plain layer norm (same device, timed round-robin; speed-up = composition time / fused time):\n${vt}`);
  const n = notes(rows);
  if (n.length) console.log(`\n${n.join('\n')}`);
  const timings = [...new Set(rows.map((r) => r.timing).filter(Boolean))];
  const date = new Date().toISOString();
  const result = {
    runner: 'node',
    date,
    seconds,
    flags,
    timing: timings.length === 1 ? timings[0] : timings.join('+') || 'none',
    timingNote:
      'ms = median per-iteration time over batches of k enqueued ops closed by onSubmittedWorkDone; timing "timestamp" = GPU timestamps from two empty compute passes bracketing the batch, "wall" = performance.now() around the batch. GB/s over the minimal bytes (forward 2·numel·bpe, backward 3·numel·bpe, fused residual 4·numel·bpe; modulated rows: cases.mjs modulatedBytes); copy = vec4 copy kernel over numel·bpe bytes, counted read + write.',
    environment: {
      node: process.version,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      webgpuPackage: readVersion('webgpu'),
      vkIcd: process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES || null,
      ...env,
    },
    rows,
  };
  const outDir = flags.out ? resolve(flags.out) : join(HERE, 'out');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `node-${tag}-${date.replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z')}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 1)}\n`);
  console.log(`\n${rows.length} cases in ${seconds.toFixed(1)} s: ${rows.length - bad.length} ok, ${bad.filter((r) => r.status === 'FAIL').length} FAIL, ${bad.filter((r) => r.status === 'error').length} error`);
  console.log(`wrote ${relative(process.cwd(), file) || file}`);
  norms.destroy();
  return bad.length ? 1 : 0;
}

/** The CPU peers that load here (each optional: one that cannot start is left out with a note). */
async function cpuPeers() {
  const peers = [];
  try {
    const ort = await import('onnxruntime-web');
    peers.push(createOrtWasmPeer(ort.default ?? ort, 1));
  } catch (e) {
    console.log(`(ORT-web wasm peer unavailable: ${e.message})`);
  }
  try {
    const tf = await import('@tensorflow/tfjs-core');
    await import('@tensorflow/tfjs-backend-cpu');
    peers.push(createTfjsCpuPeer(tf));
  } catch (e) {
    console.log(`(TF.js cpu peer unavailable: ${e.message})`);
  }
  peers.push(createJsLoopPeer());
  return peers;
}

function readVersion(pkg) {
  try {
    return JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')).version;
  } catch {
    return null;
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e?.stack || e);
    process.exit(2);
  },
);
