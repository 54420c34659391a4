#!/usr/bin/env node
// Before/after timing of two or more builds of the library, in one Node process on one device:
// for each benchmark case every build's op and the copy kernel are timed round-robin (batch by
// batch, GPU timestamps where the device has them), so drift of a shared, noisy machine falls on
// all builds alike. With --control the first build is loaded a second time: the spread between
// its two copies is the harness's own noise, the yardstick for the other ratios.
//
//   npm run -s build:bench && cp build/bench/index.js /tmp/after.js
//   (build the other revision the same way into /tmp/before.js)
//   node bench/compare.mjs --lib=/tmp/before.js --lib=/tmp/after.js --control --filter=fwd
//
// Prints per case and build: milliseconds per op (median of batches), the fraction of the copy
// kernel's bandwidth over the case's minimal bytes, and the speed relative to the first build;
// then the geometric mean of those speeds. Exit status 2 on bad flags or a build that fails to load.
import { parseArgs } from 'node:util';
import { basename, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { selectCases } from './cases.mjs';
import { BatchTimer, measure } from './core.mjs';
import { nodeGpuEnv } from './node-env.mjs';
import { spec, makeRng, hashSeed, draw, numel } from '../test/catalog.js';

const HELP = `usage: node bench/compare.mjs --lib=<before.js> --lib=<after.js> [--lib=…] [--control] [--filter=S] [--budget=s] [--adapter-class=cpu|gpu|cpu,gpu] [--float16=M,M,…]
  --lib=FILE         a build of the library (build/bench/index.js of some revision); two or more
  --control          also time a second copy of the first build (the harness's own spread)
  --filter=S         only cases whose id contains S (case-insensitive)
  --budget=S         timing budget per case in seconds, all builds together (default 4)
  --adapter-class=C  createNorms adapterClass for every build (default: detected); a list (cpu,gpu)
                     times every build once per class, side by side: the two kernel families
                     on one adapter, e.g. --lib=build/bench/index.js --adapter-class=cpu,gpu
  --float16=M,M,…    createNorms float16 (auto|native|packed) per --lib build, one per build in order`;

let args;
try {
  args = parseArgs({
    options: {
      lib: { type: 'string', multiple: true, default: [] },
      control: { type: 'boolean', default: false },
      filter: { type: 'string', default: '' },
      budget: { type: 'string', default: '4' },
      'adapter-class': { type: 'string' },
      float16: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }).values;
} catch (e) {
  console.error(`compare: ${e.message}\n${HELP}`);
  process.exit(2);
}
if (args.help) {
  console.log(HELP);
  process.exit(0);
}
const budget = Number(args.budget);
// --adapter-class=cpu,gpu: each build once per class (build-major order).
const classes = args['adapter-class'] ? args['adapter-class'].split(',') : [undefined];
if (classes.some((c) => !['auto', 'cpu', 'gpu'].includes(c ?? 'auto'))) {
  console.error(`compare: --adapter-class: expected auto, cpu or gpu (or a comma list), got ${args['adapter-class']}\n${HELP}`);
  process.exit(2);
}
if (args.lib.length * classes.length < (args.control ? 1 : 2) || args.lib.length < 1 || !(budget > 0)) {
  console.error(`compare: give two or more --lib builds (or one with --control, or one with two adapter classes) and a budget > 0\n${HELP}`);
  process.exit(2);
}

nodeGpuEnv();

// Each build is its own module instance (a query string makes the same file load twice).
const files = args.control ? [args.lib[0], args.lib[0], ...args.lib.slice(1)] : args.lib;
const halves = args.float16 ? args.float16.split(',') : [];
if (halves.length && (halves.length !== files.length || halves.some((h) => !['auto', 'native', 'packed'].includes(h)))) {
  console.error(`compare: --float16 needs one of auto|native|packed per build (${files.length} builds)\n${HELP}`);
  process.exit(2);
}
const fileNames = files.map((f, i) => `${args.control && i === 1 ? `${basename(f)} (again)` : basename(f)}${halves.length ? ` float16 ${halves[i]}` : ''}`);
const libs = [];
const names = [];
/** The createNorms adapterClass option of each subject build (libs[i]). */
const clsOf = [];
for (const [i, f] of files.entries()) {
  let lib;
  try {
    lib = await import(`${pathToFileURL(resolve(f)).href}?build=${i}`);
  } catch (e) {
    console.error(`compare: cannot load ${f} (${e.message})`);
    process.exit(2);
  }
  for (const c of classes) {
    libs.push(lib);
    names.push(c && classes.length > 1 ? `${fileNames[i]} ${c}` : fileNames[i]);
    clsOf.push({ ...(c ? { adapterClass: c } : {}), ...(halves.length ? { float16: halves[i] } : {}) });
  }
}
const webgpu = await import('webgpu');
const gpu = webgpu.create([]);
const first = await libs[0].createNorms({ gpu, backend: 'webgpu', ...clsOf[0] });
const device = first.device;
const instances = new Map();
/** The instance of build i for a case (capped bindings where the case asks for them). */
async function normsOf(i, bindingBytes) {
  const key = `${i}/${bindingBytes ?? 0}`;
  if (!instances.has(key)) {
    instances.set(key, i === 0 && !bindingBytes ? first : await libs[i].createNorms({ device, backend: 'webgpu', ...clsOf[i], ...(bindingBytes ? { maxBindingBytes: bindingBytes } : {}) }));
  }
  return instances.get(key);
}

const a = first.adapter;
console.log(`compare (Node ${process.version}, Dawn): ${a.vendor} ${a.architecture} ${a.device} ${a.description}`.replace(/\s+/g, ' '));
console.log(`builds: ${names.map((n, i) => `[${i}] ${n}`).join('  ')}; ${budget} s per case; ms per op (median), % of copy, speed vs [0]\n`);

const timer = new BatchTimer(device);
const speeds = names.map(() => []);
for (const c of selectCases({ filter: args.filter })) {
  const s = spec(c, c.dir);
  const owned = [];
  const subjects = [];
  // A build that cannot run the case (an option it predates) is left out of this row.
  const ok = [];
  for (let i = 0; i < libs.length; i++) {
    const norms = await normsOf(i, c.bindingBytes);
    try {
      const rng = makeRng(hashSeed(c.id));
      const T = {};
      for (const inp of s.inputs) owned.push((T[inp.name] = norms.tensor(draw(rng, numel(inp.shape), inp), inp.shape, inp.dtype)));
      if (s.derive) for (const [k, t] of Object.entries(s.derive(norms, T))) owned.push((T[k] = t));
      const sub = {
        // The op's error promise (its outputs' _pending), awaited after the batch as core.mjs does.
        run: () => {
          const out = s.call(norms, T);
          let p = null;
          for (const t of Object.values(out)) {
            if (!p && t?._pending) p = t._pending;
            t?.destroy?.();
          }
          return p;
        },
        flush: () => norms.flush?.(),
        warmed: true,
      };
      const pending = sub.run();
      sub.flush();
      await pending;
      await device.queue.onSubmittedWorkDone();
      subjects.push(sub);
      ok.push(true);
    } catch (e) {
      console.log(`${c.id.padEnd(44)} [${i}] cannot run it: ${String(e?.message ?? e).split('\n')[0]}`);
      subjects.push({ run: () => {}, warmed: true });
      ok.push(false);
    }
  }
  const bpe = c.dtype === 'float16' ? 2 : 4;
  const copyBytes = Math.ceil((numel(c.shape) * bpe) / 16) * 16;
  const usage = 0x80 | 0x8 | 0x4; // STORAGE | COPY_DST | COPY_SRC
  const src = device.createBuffer({ size: copyBytes, usage });
  const dst = device.createBuffer({ size: copyBytes, usage });
  subjects.push({ run: () => first._gpu.copyKernel(src, dst, copyBytes / 16), flush: () => first.flush?.() });
  const m = await measure(device, timer, subjects, { budgetMs: budget * 1000, minBatches: 5 });
  const copyGbps = (2 * copyBytes) / (m[libs.length].ms * 1e-3) / 1e9;
  const cells = m.slice(0, libs.length).map((r, i) => {
    if (!ok[i] || !ok[0]) return `[${i}] ${ok[i] ? '' : 'n/a'}`;
    const pct = ((c.bytes / (r.ms * 1e-3) / 1e9 / copyGbps) * 100).toFixed(0);
    const speed = m[0].ms / r.ms;
    speeds[i].push(speed);
    return `[${i}] ${r.ms.toPrecision(3).padStart(6)} ms ${pct.padStart(3)}%${i ? ` ×${speed.toFixed(2)}` : ''}`;
  });
  console.log(`${c.id.padEnd(44)} ${cells.join('   ')}`);
  src.destroy();
  dst.destroy();
  for (const t of owned) t.destroy();
}
timer.destroy();
for (const n of instances.values()) n.destroy();
const geo = (v) => (v.length ? Math.exp(v.reduce((x, y) => x + Math.log(y), 0) / v.length) : NaN);
console.log(`\ngeometric mean speed vs [0]: ${names.map((n, i) => `[${i}] ${geo(speeds[i]).toFixed(3)}`).join('  ')}`);
process.exit(0);
