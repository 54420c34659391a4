// The benchmark page: creates one GPUDevice, hands it to webgpu-norm (createNorms({ device })),
// ONNX Runtime Web and TensorFlow.js, then runs bench/core.mjs over bench/cases.mjs. Progress
// goes to window.benchEvent (exposed by bench/browser.mjs) and to the page itself.
import { runCases, describeDevice } from './core.mjs';
import { selectCases } from './cases.mjs';
import { textTable, notes } from './format.mjs';
import { runWasmCases, wasmTable } from './wasm.mjs';
import { createOrtWasmPeer, createTfjsCpuPeer, createJsLoopPeer } from './peers/cpu.mjs';

const q = new URLSearchParams(location.search);
const opts = {
  quick: q.get('quick') === '1',
  filter: q.get('filter') ?? '',
  budget: Number(q.get('budget') ?? 2),
  peers: q.get('peers') !== '0',
  wasm: q.get('wasm') ?? 'yes',
};

const $ = (id) => document.getElementById(id);
const emit = (ev) => {
  try {
    window.benchEvent?.(ev);
  } catch {
    /* not under the runner */
  }
};
const status = (s) => {
  $('status').textContent = s;
  emit({ type: 'status', text: s });
};
const log = (s) => {
  $('log').textContent += `${s}\n`;
  emit({ type: 'log', text: s });
};

const LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'maxBindGroups',
  'maxBindingsPerBindGroup',
  'maxUniformBufferBindingSize',
  'maxUniformBuffersPerShaderStage',
];

async function main() {
  if (!navigator.gpu) throw new Error('navigator.gpu is missing: WebGPU needs a secure context (http://localhost) and --enable-unsafe-webgpu');
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('no WebGPU adapter');
  // One device for everyone: the adapter's maximum for the limits the three libraries ask for,
  // and the optional features webgpu-norm uses (timestamp-query also times the batches).
  const requiredFeatures = ['timestamp-query', 'shader-f16', 'subgroups'].filter((f) => adapter.features.has(f));
  const requiredLimits = {};
  for (const k of LIMITS) if (typeof adapter.limits[k] === 'number') requiredLimits[k] = adapter.limits[k];
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'bench' });
  const lib = await import('/build/bench/index.js');
  const norms = await lib.createNorms({ device, backend: 'webgpu' });
  const cpu = await lib.createNorms({ backend: 'cpu' });
  const info = adapter.info ?? device.adapterInfo ?? {};
  const adapterInfo = { vendor: info.vendor ?? '', architecture: info.architecture ?? '', device: info.device ?? '', description: info.description ?? '' };
  const env = describeDevice(device, adapterInfo);
  env.adapterFeatures = [...adapter.features].sort();
  env.isFallbackAdapter = !!(info.isFallbackAdapter ?? adapter.isFallbackAdapter);
  env.deviceShared = 'one GPUDevice created by the bench page (adapter-max limits for the libraries\' limits), shared by webgpu-norm, ORT-web and TF.js';

  const peers = [];
  const peerInfo = {};
  if (opts.peers) {
    status('loading ONNX Runtime Web…');
    try {
      const { createOrtPeer } = await import('./peers/ort.mjs');
      const p = await createOrtPeer({ device, ortUrl: '/node_modules/onnxruntime-web/dist/ort.webgpu.min.mjs', wasmPaths: '/node_modules/onnxruntime-web/dist/' });
      peers.push(p);
      peerInfo.ort = { label: p.label, version: p.version, status: 'ok' };
    } catch (e) {
      peerInfo.ort = { label: 'ONNX Runtime Web', status: 'error', reason: String(e?.message || e) };
      log(`ORT-web unavailable: ${e?.message || e}`);
    }
    status('loading TensorFlow.js…');
    try {
      const { createTfjsPeer } = await import('./peers/tfjs.mjs');
      const p = await createTfjsPeer({ device });
      peers.push(p);
      peerInfo.tfjs = { label: p.label, version: p.version, status: 'ok' };
    } catch (e) {
      peerInfo.tfjs = { label: 'TensorFlow.js WebGPU', status: 'error', reason: String(e?.message || e) };
      log(`TF.js unavailable: ${e?.message || e}`);
    }
  }
  const cases = selectCases(opts);
  const peerNames = opts.peers ? ['ort', 'tfjs'] : [];
  const table = textTable(peerNames);
  $('table').textContent = `${table.header()}\n`;
  emit({ type: 'start', total: cases.length, env, peers: peerInfo, opts });
  const t0 = performance.now();
  const rows = opts.wasm === 'only' ? [] : await runCases(cases, {
    lib,
    norms,
    cpu,
    budgetS: opts.budget,
    peers,
    onEvent: (ev) => {
      if (ev.type === 'case') status(`case ${ev.index + 1} of ${ev.total}: ${ev.id}`);
      if (ev.type === 'peer') status(`${ev.id}: ${ev.peer}`);
      if (ev.type === 'row') $('table').textContent += `${table.line(ev.row)}\n`;
      emit(ev);
    },
  });
  // Peers that could not start: every case they were listed for says why.
  for (const r of rows) {
    const c = cases.find((x) => x.id === r.id);
    for (const p of c?.peers ?? []) {
      if (!opts.peers || r.peers[p]) continue;
      if (peerInfo[p]?.status === 'error') r.peers[p] = { status: 'n/a', reason: `${peerInfo[p].label} could not start: ${peerInfo[p].reason}` };
      else if (r.status !== 'ok') r.peers[p] = { status: 'n/a', reason: 'our row did not pass the check, so the case was not timed' };
    }
  }
  // The wasm backend's rows (after the GPU's: its threads would compete with SwiftShader's).
  let wasmRows = [];
  if (opts.wasm !== 'no') {
    const cpuPeers = [];
    if (opts.peers) {
      try {
        const ort = await import(/* @vite-ignore */ '/node_modules/onnxruntime-web/dist/ort.webgpu.min.mjs');
        ort.env.wasm.wasmPaths = '/node_modules/onnxruntime-web/dist/';
        cpuPeers.push(createOrtWasmPeer(ort, 1));
      } catch (e) {
        log(`ORT-web wasm EP unavailable: ${e?.message || e}`);
      }
      try {
        const tf = await import('@tensorflow/tfjs-core');
        await import('@tensorflow/tfjs-backend-cpu');
        cpuPeers.push(createTfjsCpuPeer(tf));
      } catch (e) {
        log(`TF.js cpu unavailable: ${e?.message || e}`);
      }
      cpuPeers.push(createJsLoopPeer());
    }
    const names = cpuPeers.map((p) => p.name);
    const wt = wasmTable(names);
    emit({ type: 'wasmStart', header: wt.header(), crossOriginIsolated: self.crossOriginIsolated, peers: cpuPeers.map((p) => ({ name: p.name, label: p.label, version: p.version })) });
    $('table').textContent += `\n${wt.header()}\n`;
    wasmRows = await runWasmCases(cases, {
      lib,
      cpu,
      budgetS: opts.budget,
      peers: cpuPeers,
      onRow: (r) => {
        const line = wt.line(r);
        $('table').textContent += `${line}\n`;
        status(`wasm: ${r.id}`);
        emit({ type: 'wasmRow', row: r, line });
      },
    });
  }
  const timings = [...new Set(rows.map((r) => r.timing).filter(Boolean))];
  const result = {
    runner: 'browser',
    date: new Date().toISOString(),
    seconds: (performance.now() - t0) / 1000,
    flags: opts,
    timing: timings.length === 1 ? timings[0] : timings.join('+') || 'none',
    timingNote:
      'ms = median per-iteration time over batches of k enqueued ops closed by onSubmittedWorkDone; timing "timestamp" = GPU timestamps from two empty compute passes bracketing the batch, "wall" = performance.now() around the batch. GB/s over the minimal bytes (forward 2·numel·bpe, backward 3·numel·bpe, fused residual 4·numel·bpe; modulated rows: cases.mjs modulatedBytes); copy = vec4 copy kernel over numel·bpe bytes, counted read + write. Peers: same device, same inputs, same protocol; × = peer time / our time.',
    environment: { userAgent: navigator.userAgent, hardwareConcurrency: navigator.hardwareConcurrency, crossOriginIsolated: self.crossOriginIsolated, ...env },
    peers: peerInfo,
    rows,
    wasmRows,
  };
  const n = notes(rows);
  if (n.length) $('log').textContent += `${n.join('\n')}\n`;
  status(`done: ${rows.length} cases in ${result.seconds.toFixed(1)} s`);
  window.__benchResult = result;
  emit({ type: 'done', result });
  norms.destroy();
}

main().catch((e) => {
  const msg = String(e?.stack || e);
  status(`failed: ${e?.message || e}`);
  log(msg);
  window.__benchError = msg;
  emit({ type: 'fatal', error: msg });
});
