// Before/after of the wasm backend: two builds loaded in one Node process, each case timed on both
// and on each build's WASM SIMD copy of the same bytes, round-robin batch by batch, so a shared
// machine's drift falls on both alike (bench/compare.mjs does the same for the WebGPU kernels).
//   node bench/wasm-compare.mjs <before.js> <after.js> [substring of the case name]
// (build each with `npx vite build --outDir <dir>` as in bench/README.md). Env BUDGET: ms per case
// (default 1500). Prints per case ms and ×copy of each build and the speed after/before.
// Inputs are seeded uniform values; the op's outputs are not checked here (the tests and
// bench/node.mjs check them).
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

if (process.argv.length < 4) {
  console.error('usage: node bench/wasm-compare.mjs <before.js> <after.js> [filter]');
  process.exit(2);
}
const libs = await Promise.all([process.argv[2], process.argv[3]].map((f) => import(pathToFileURL(resolve(f)).href)));
const filt = process.argv[4] ?? '';
const ns = await Promise.all(libs.map((l) => l.createNorms({ backend: 'wasm', threads: 1 })));
const rnd = (k, seed = 1) => { const a = new Float32Array(k); let s = seed; for (let i = 0; i < k; i++) { s = (s * 1103515245 + 12345) >>> 0; a[i] = (s / 2 ** 32) * 2 - 1 + 0.3; } return a; };
const kill = (o) => { for (const v of Object.values(o)) if (v && v.destroy) v.destroy(); };
const cases = [];
const add = (name, numel, factor, mk) => cases.push({ name, numel, factor, mk });
const P = (s) => s.reduce((a, b) => a * b, 1);
for (const [R, K] of [[4096, 768], [512, 4096], [1, 4096], [65536, 16], [32768, 32], [16384, 64]]) {
  add(`LN fwd [${R},${K}]`, R * K, 2, (n, T) => { const x = T([R, K]), w = T([K]), b = T([K]); return () => kill(n.layerNorm(x, { normalizedShape: [K], weight: w, bias: b })); });
  add(`RMS fwd [${R},${K}]`, R * K, 2, (n, T) => { const x = T([R, K]), w = T([K]); return () => kill(n.rmsNorm(x, { normalizedShape: [K], weight: w })); });
  add(`LN bwd [${R},${K}]`, R * K, 3, (n, T) => { const x = T([R, K]), w = T([K]), b = T([K]), dy = T([R, K]); const f = n.layerNorm(x, { normalizedShape: [K], weight: w, bias: b }); return () => kill(n.layerNormBackward(dy, x, f.mean, f.rstd, { normalizedShape: [K], weight: w, bias: b })); });
  add(`RMS bwd [${R},${K}]`, R * K, 3, (n, T) => { const x = T([R, K]), w = T([K]), dy = T([R, K]); const f = n.rmsNorm(x, { normalizedShape: [K], weight: w }); return () => kill(n.rmsNormBackward(dy, x, f.rstd, { normalizedShape: [K], weight: w })); });
}
add('LN fwd res [4096,768]', 4096 * 768, 4, (n, T) => { const x = T([4096, 768]), r = T([4096, 768]), w = T([768]), b = T([768]); return () => kill(n.layerNorm(x, { normalizedShape: [768], weight: w, bias: b, residual: r })); });
add('GN fwd [2,320,64,64]', 2 * 320 * 4096, 2, (n, T) => { const x = T([2, 320, 64, 64]), w = T([320]), b = T([320]); return () => kill(n.groupNorm(x, { numGroups: 32, weight: w, bias: b })); });
add('GN bwd [2,320,64,64]', 2 * 320 * 4096, 3, (n, T) => { const x = T([2, 320, 64, 64]), w = T([320]), b = T([320]), dy = T([2, 320, 64, 64]); const f = n.groupNorm(x, { numGroups: 32, weight: w, bias: b }); return () => kill(n.groupNormBackward(dy, x, f.mean, f.rstd, { numGroups: 32, weight: w, bias: b })); });
add('IN fwd [2,64,64,64]', 2 * 64 * 4096, 2, (n, T) => { const x = T([2, 64, 64, 64]), w = T([64]), b = T([64]); return () => kill(n.instanceNorm(x, { weight: w, bias: b })); });
add('IN bwd [2,64,64,64]', 2 * 64 * 4096, 3, (n, T) => { const x = T([2, 64, 64, 64]), w = T([64]), b = T([64]), dy = T([2, 64, 64, 64]); const f = n.instanceNorm(x, { weight: w, bias: b }); return () => kill(n.instanceNormBackward(dy, x, f.mean, f.rstd, { weight: w, bias: b })); });
for (const sh of [[8, 64, 56, 56], [32, 64, 112, 112]]) {
  const C = sh[1], N = P(sh);
  add(`BN eval [${sh}]`, N, 2, (n, T) => { const x = T(sh), w = T([C]), b = T([C]), rm = T([C]), rv = n.tensor(rnd(C).map((v) => v + 2), [C]); return () => kill(n.batchNorm(x, { training: false, weight: w, bias: b, runningMean: rm, runningVar: rv })); });
  add(`BN train [${sh}]`, N, 2, (n, T) => { const x = T(sh), w = T([C]), b = T([C]); return () => kill(n.batchNorm(x, { training: true, weight: w, bias: b })); });
  add(`BN bwd train [${sh}]`, N, 3, (n, T) => { const x = T(sh), w = T([C]), b = T([C]), dy = T(sh); const f = n.batchNorm(x, { training: true, weight: w, bias: b }); return () => kill(n.batchNormBackward(dy, x, { training: true, weight: w, bias: b, saveMean: f.saveMean, saveInvstd: f.saveInvstd })); });
}
add('GN fwd NHWC [2,64,64,320]', 2 * 320 * 4096, 2, (n, T) => { const x = T([2, 64, 64, 320]), w = T([320]), b = T([320]); return () => kill(n.groupNorm(x, { numGroups: 32, weight: w, bias: b, channelsLast: true })); });
add('GN bwd NHWC [2,64,64,320]', 2 * 320 * 4096, 3, (n, T) => { const x = T([2, 64, 64, 320]), w = T([320]), b = T([320]), dy = T([2, 64, 64, 320]); const f = n.groupNorm(x, { numGroups: 32, weight: w, bias: b, channelsLast: true }); return () => kill(n.groupNormBackward(dy, x, f.mean, f.rstd, { numGroups: 32, weight: w, bias: b, channelsLast: true })); });
add('BN train NHWC [8,56,56,64]', 8 * 64 * 3136, 2, (n, T) => { const x = T([8, 56, 56, 64]), w = T([64]), b = T([64]); return () => kill(n.batchNorm(x, { training: true, weight: w, bias: b, channelsLast: true })); });
add('BN bwd NHWC [8,56,56,64]', 8 * 64 * 3136, 3, (n, T) => { const x = T([8, 56, 56, 64]), w = T([64]), b = T([64]), dy = T([8, 56, 56, 64]); const f = n.batchNorm(x, { training: true, weight: w, bias: b, channelsLast: true }); return () => kill(n.batchNormBackward(dy, x, { training: true, weight: w, bias: b, saveMean: f.saveMean, saveInvstd: f.saveInvstd, channelsLast: true })); });
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
const budget = +(process.env.BUDGET ?? 1500);
for (const c of cases) {
  if (filt && !c.name.includes(filt)) continue;
  const subj = [];
  for (const n of ns) {
    let seed = 7;
    const T = (shape) => n.tensor(rnd(P(shape), seed++), shape);
    const op = c.mk(n, T);
    const m = n._wasm.m;
    const copyN = Math.ceil((c.numel * c.factor) / 2 / 4) * 4;
    const src = m.heap.alloc(copyN * 4), dst = m.heap.alloc(copyN * 4);
    m.f32(src, copyN).fill(1);
    subj.push(op, () => m.run('copy', [src, dst, copyN], Math.ceil(copyN / 16384), copyN));
  }
  for (const f of subj) { f(); f(); }
  let t0 = performance.now(); subj[0](); const one = performance.now() - t0;
  const k = Math.max(1, Math.min(500, Math.round(10 / Math.max(one, 0.005))));
  const S = subj.map(() => []);
  const tEnd = performance.now() + budget;
  for (let r = 0; r < 7 || (performance.now() < tEnd && r < 60); r++) {
    subj.forEach((f, j) => { t0 = performance.now(); for (let i = 0; i < k; i++) f(); S[j].push((performance.now() - t0) / k); });
  }
  const M = S.map(med);
  const fmt = (o, cp) => `${o.toFixed(3).padStart(8)} ms ×copy ${(cp / o).toFixed(2)}`;
  console.log(`${c.name.padEnd(28)} A ${fmt(M[0], M[1])} | B ${fmt(M[2], M[3])} | after/before speed ${(M[0] / M[2]).toFixed(2)}`);
}
