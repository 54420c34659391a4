// The measuring core, plain JS: runs in Node (bench/node.mjs, Dawn) and in the browser
// (bench/page.mjs). It never imports the library itself: the runner passes the module in, so
// Node can load the benchmark build (build/bench/index.js, `npm run build:bench`) or the package
// bundle (dist/index.js), and the page /build/bench/index.js.
//
// Per case:
//   1. seeded inputs with a non-zero mean (x ~ 3 + N(0, 1)), the same host data on both backends;
//   2. the op once on the GPU and once on the CPU reference; every output (and every tensor the
//      op updates in place) compared by relative L2 error; over the tolerance (1e-4 float32,
//      2e-3 float16) the row is FAIL and nothing is timed;
//   3. warm-up, then batches of k enqueued ops (outputs destroyed at once) closed by
//      onSubmittedWorkDone, interleaved with batches of the vec4 copy kernel over the same byte
//      count, until the time budget is spent (at least 3 batches each); per-iteration time is the
//      median over batches. With 'timestamp-query' each batch is bracketed by two empty compute
//      passes that write GPU timestamps (the device-timeline span of the batch, idle gaps
//      included); without it the wall time from the first enqueue to onSubmittedWorkDone.
//      Both are recorded; `timing` says which one the reported ms is;
//   4. peers (browser): each peer runs the same computation on the same device, is checked
//      against the same CPU reference, and is timed by the same batch protocol.

// Seeded inputs, how each op is called (inputs, derived statistics, main output, in-place
// updates) and the tolerances come from test/catalog.js, shared with the tests, the e2e pages
// and the demo.
import { DATA, draw, hashSeed, makeRng, numel as numelOf, spec, tolerance } from '../test/catalog.js';
import { VARIANTS } from './variants.mjs';

const USAGE = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, STORAGE: 0x80, QUERY_RESOLVE: 0x200 };

// ---------------------------------------------------------------- timing

/**
 * Brackets batches of GPU work with GPU timestamps (two empty compute passes that write the
 * beginning-of-pass timestamp) when the device has 'timestamp-query'. Queue order makes the
 * second timestamp wait for everything submitted before it.
 */
export class BatchTimer {
  constructor(device) {
    this.device = device;
    this.enabled = device.features.has('timestamp-query');
    if (this.enabled) {
      this.qs = device.createQuerySet({ type: 'timestamp', count: 2, label: 'bench.timestamps' });
      this.resolve = device.createBuffer({ size: 16, usage: USAGE.QUERY_RESOLVE | USAGE.COPY_SRC, label: 'bench.ts.resolve' });
      this.staging = device.createBuffer({ size: 16, usage: USAGE.MAP_READ | USAGE.COPY_DST, label: 'bench.ts.staging' });
    }
  }

  mark(index) {
    if (!this.enabled) return;
    const enc = this.device.createCommandEncoder({ label: `bench.mark${index}` });
    const pass = enc.beginComputePass({ label: `bench.mark${index}`, timestampWrites: { querySet: this.qs, beginningOfPassWriteIndex: index } });
    pass.end();
    if (index === 1) {
      enc.resolveQuerySet(this.qs, 0, 2, this.resolve, 0);
      enc.copyBufferToBuffer(this.resolve, 0, this.staging, 0, 16);
    }
    this.device.queue.submit([enc.finish()]);
  }

  /** Milliseconds between the two marks of the last batch, or null. */
  async read() {
    if (!this.enabled) return null;
    await this.staging.mapAsync(USAGE.MAP_READ);
    const v = new BigUint64Array(this.staging.getMappedRange().slice(0));
    this.staging.unmap();
    const ns = Number(v[1] - v[0]);
    return ns > 0 ? ns / 1e6 : null;
  }

  destroy() {
    this.qs?.destroy();
    this.resolve?.destroy();
    this.staging?.destroy();
  }
}

const median = (a) => {
  if (!a.length) return NaN;
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const now = () => performance.now();

/**
 * One batch: k iterations of subject.run(), subject.flush(), then wait for the queue.
 * subject.run() either enqueues and returns an error promise (awaited after the batch) or, with
 * subject.awaitEach, returns a promise that must settle before the next call (ORT's session.run).
 */
async function runBatch(device, timer, s, k) {
  const pend = [];
  const t0 = now();
  timer.mark(0);
  for (let i = 0; i < k; i++) {
    const p = s.run();
    if (p && typeof p.then === 'function') {
      if (s.awaitEach) await p;
      else pend.push(p);
    }
  }
  s.flush?.();
  timer.mark(1);
  await device.queue.onSubmittedWorkDone();
  const wall = now() - t0;
  await Promise.all(pend);
  const gpu = await timer.read();
  return { wall, gpu };
}

/**
 * Time subjects round-robin within budgetMs (all together). Subjects marked `warmed` already ran
 * (the correctness check did: pipelines compiled, caches filled); the others get one warm-up
 * iteration. A k = 1 calibration batch per subject sets k so each gets about 6 batches in its
 * share of the budget (and is kept as a sample when k stays 1). Batches go on until the budget
 * is spent and each subject has minBatches, except that a subject whose single batch is longer
 * than a third of its share is not held to minBatches (a slow kernel gets 1 or 2 samples
 * rather than blowing the run's time). Returns per subject
 * { ms, wallMs, gpuMs, timing, k, batches, iters, minMs, maxMs }.
 */
export async function measure(device, timer, subjects, { budgetMs, minBatches = 3, maxBatches = 60 }) {
  const st = subjects.map(() => ({ k: 1, wall: [], gpu: [], batchMs: 0 }));
  for (const s of subjects) if (!s.warmed) await runBatch(device, timer, s, 1);
  const share = budgetMs / subjects.length;
  const t0 = now();
  for (let i = 0; i < subjects.length; i++) {
    const one = await runBatch(device, timer, subjects[i], 1);
    const per = Math.max(one.gpu ?? one.wall, 1e-3);
    st[i].k = Math.max(1, Math.min(4096, Math.round(share / 6 / per)));
    st[i].batchMs = per * st[i].k;
    if (st[i].k === 1) {
      st[i].wall.push(one.wall);
      if (one.gpu !== null) st[i].gpu.push(one.gpu);
    }
  }
  const need = st.map((x) => (x.batchMs > share / 3 ? 1 : minBatches));
  for (let b = 0; b < maxBatches; b++) {
    const spent = now() - t0;
    if (spent >= budgetMs && st.every((x, i) => x.wall.length >= need[i])) break;
    for (let i = 0; i < subjects.length; i++) {
      const r = await runBatch(device, timer, subjects[i], st[i].k);
      st[i].wall.push(r.wall / st[i].k);
      if (r.gpu !== null) st[i].gpu.push(r.gpu / st[i].k);
    }
  }
  return st.map((x) => {
    const wallMs = median(x.wall);
    const useGpu = x.gpu.length === x.wall.length && x.gpu.length > 0;
    const gpuMs = useGpu ? median(x.gpu) : null;
    const samples = useGpu ? x.gpu : x.wall;
    return {
      ms: useGpu ? gpuMs : wallMs,
      wallMs,
      gpuMs,
      timing: useGpu ? 'timestamp' : 'wall',
      k: x.k,
      batches: x.wall.length,
      iters: x.k * x.wall.length,
      minMs: Math.min(...samples),
      maxMs: Math.max(...samples),
    };
  });
}

// ---------------------------------------------------------------- the run

const isTensor = (t) => t && typeof t === 'object' && typeof t.destroy === 'function' && Array.isArray(t.shape);

function tensorsOf(out) {
  return Object.entries(out).filter(([, t]) => isTensor(t));
}

function destroyAll(out) {
  for (const [, t] of tensorsOf(out)) t.destroy();
}

const gbps = (bytes, ms) => bytes / (ms * 1e-3) / 1e9;

/**
 * Run every case. ctx: { lib: { relativeL2 }, norms (webgpu), cpu (cpu backend), budgetS,
 * peers: [{ name, ... }], onEvent(ev) }. Returns the rows.
 */
export async function runCases(cases, ctx) {
  const { norms, onEvent = () => {} } = ctx;
  const device = norms.device;
  const timer = new BatchTimer(device);
  const rows = [];
  try {
    for (let i = 0; i < cases.length; i++) {
      const c = cases[i];
      onEvent({ type: 'case', index: i, total: cases.length, id: c.id });
      const t0 = now();
      let row;
      try {
        row = await runCase(c, ctx, timer);
      } catch (e) {
        row = baseRow(c);
        row.status = 'error';
        row.error = String(e?.stack || e);
      }
      row.caseSeconds = (now() - t0) / 1000;
      rows.push(row);
      onEvent({ type: 'row', index: i, total: cases.length, row });
    }
  } finally {
    timer.destroy();
    for (const n of ctx.capped?.values() ?? []) n.destroy();
    ctx.capped?.clear();
  }
  return rows;
}

function baseRow(c) {
  return {
    id: c.id,
    op: c.op,
    dir: c.dir,
    shape: c.shape,
    dtype: c.dtype,
    opts: c.opts,
    tag: c.tag,
    ...(c.bindingBytes ? { bindingBytes: c.bindingBytes } : {}),
    numel: numelOf(c.shape),
    bytes: c.bytes,
    status: 'error',
    peers: {},
  };
}

/** The instance a case runs on: ctx.norms, or one on the same device with capped bindings. */
async function normsFor(c, ctx) {
  if (!c.bindingBytes) return ctx.norms;
  ctx.capped ??= new Map();
  let n = ctx.capped.get(c.bindingBytes);
  if (!n) {
    n = await ctx.lib.createNorms({ device: ctx.norms.device, backend: 'webgpu', maxBindingBytes: c.bindingBytes, ...(ctx.adapterClass ? { adapterClass: ctx.adapterClass } : {}) });
    ctx.capped.set(c.bindingBytes, n);
  }
  return n;
}

async function runCase(c, ctx, timer) {
  const { cpu, lib } = ctx;
  const norms = await normsFor(c, ctx);
  const budgetMs = ctx.budgetS * 1000;
  const s = spec(c, c.dir, DATA);
  const row = baseRow(c);
  const tol = tolerance(c.op, c.dtype);
  row.tol = tol;

  // Inputs: the same host data on both backends.
  const phases = {};
  row.phases = phases;
  let tp = now();
  const phase = (name) => {
    const t = now();
    phases[name] = Math.round(t - tp);
    tp = t;
  };
  const rng = makeRng(hashSeed(c.id));
  const host = {};
  const Tg = {};
  const Tc = {};
  const gpuOwned = [];
  try {
    for (const inp of s.inputs) {
      const data = draw(rng, numelOf(inp.shape), inp);
      Tc[inp.name] = cpu.tensor(data, inp.shape, inp.dtype);
      // float16: the values as stored (rounded to half); float32: the data itself.
      host[inp.name] = inp.dtype === 'float16' ? await cpu.read(Tc[inp.name]) : data;
      Tg[inp.name] = norms.tensor(data, inp.shape, inp.dtype);
      gpuOwned.push(Tg[inp.name]);
    }
    if (s.derive) {
      const d = s.derive(cpu, Tc);
      for (const [name, t] of Object.entries(d)) {
        Tc[name] = t;
        host[name] = await cpu.read(t);
        Tg[name] = norms.tensor(host[name], t.shape, t.dtype);
        gpuOwned.push(Tg[name]);
      }
    }

    phase('inputs');
    // Check: GPU once, CPU reference once, every output and every in-place update compared.
    const got = s.call(norms, Tg);
    const ref = s.call(cpu, Tc);
    const errs = {};
    const refHost = {};
    for (const [name, t] of tensorsOf(ref)) refHost[name] = await cpu.read(t);
    try {
      for (const [name, t] of tensorsOf(got)) {
        if (!refHost[name]) continue;
        errs[name] = lib.relativeL2(await norms.read(t), refHost[name]);
      }
      for (const name of s.mutated ?? []) errs[`${name} (in place)`] = lib.relativeL2(await norms.read(Tg[name]), await cpu.read(Tc[name]));
    } finally {
      destroyAll(got);
    }
    row.errs = errs;
    phase('check');
    row.err = Math.max(...Object.values(errs).map((e) => (Number.isNaN(e) ? Infinity : e)));
    const missing = Object.keys(refHost).filter((k) => !(k in errs));
    if (missing.length) {
      row.status = 'FAIL';
      row.error = `outputs missing on the GPU: ${missing.join(', ')}`;
      return row;
    }
    if (!(row.err <= tol)) {
      row.status = 'FAIL';
      const worst = Object.entries(errs).sort((a, b) => b[1] - a[1])[0];
      row.error = `output ${worst[0]}: relative L2 error ${fmtE(worst[1])} > ${tol}`;
      return row;
    }

    // Traffic: what the op's kernels read and write (norms.profile() of one call on an instance
    // sharing the device and wrapping the same buffers) over the minimal bytes, and dispatches.
    Object.assign(row, await profileCase(c, ctx, s, Tg));
    if (c.gpuClassTraffic && norms._gpu?.ctx.isCpuAdapter) Object.assign(row, await profileGpuClass(c, ctx, s, Tg));
    phase('profile');

    // Variants (bench/variants.mjs: the unfused composition, the plain op): prepared and checked
    // now, timed below in the same round-robin as ours and the copy kernel.
    const bpe = c.dtype === 'float16' ? 2 : 4;
    const jobs = [];
    row.variants = {};
    try {
      for (const name of c.variants ?? []) {
        const v = VARIANTS[name];
        const res = { status: 'n/a', label: v?.label ?? name };
        row.variants[name] = res;
        const why = !v ? `unknown variant ${name}` : v.unsupported?.(c);
        if (why) {
          res.reason = why;
          continue;
        }
        try {
          const job = await v.prepare(c, { norms, cpu, host, Tg, Tc, refHost, numel: row.numel, bpe, caseBytes: c.bytes });
          jobs.push([name, job]);
          res.what = job.what;
          const outs = await job.outputs();
          const refs = job.refs ?? refHost;
          res.errs = {};
          for (const [k, ref] of Object.entries(refs)) {
            if (!outs[k]) continue;
            res.errs[k] = lib.relativeL2(outs[k], ref);
          }
          const missing = Object.keys(refs).filter((k) => !(k in res.errs));
          res.err = Math.max(...Object.values(res.errs).map((e) => (Number.isNaN(e) ? Infinity : e)));
          if (missing.length || !(res.err <= tol)) {
            res.status = 'FAIL';
            res.reason = missing.length ? `outputs missing: ${missing.join(', ')}` : `relative L2 error ${fmtE(res.err)} > ${tol} (not timed)`;
            continue;
          }
          res.bytes = job.bytes;
          if (job.traffic) Object.assign(res, await profileVariant(c, ctx, job));
          res.status = 'checked';
        } catch (e) {
          res.status = 'error';
          res.reason = String(e?.message || e).slice(0, 500);
        }
      }
      phase('variants');

      // Time ours against the copy kernel over the same bytes (numel·bpe copied: read + write).
      const copyBytes = Math.ceil((row.numel * bpe) / 16) * 16;
      const n4 = copyBytes / 16;
      const src = norms.device.createBuffer({ size: copyBytes, usage: USAGE.STORAGE | USAGE.COPY_DST | USAGE.COPY_SRC, label: 'bench.copy.src' });
      const dst = norms.device.createBuffer({ size: copyBytes, usage: USAGE.STORAGE | USAGE.COPY_DST | USAGE.COPY_SRC, label: 'bench.copy.dst' });
      try {
        const ours = {
          warmed: true,
          run: () => {
            const out = s.call(norms, Tg);
            let p = null;
            for (const [, t] of tensorsOf(out)) {
              if (!p && t._pending) p = t._pending;
              t.destroy();
            }
            return p;
          },
        };
        // Our ops are batched into one command buffer until a flush: submitted before the batch's end mark.
        ours.flush = () => norms.flush?.();
        const copy = { run: () => norms._gpu.copyKernel(src, dst, n4), flush: () => norms.flush?.() };
        const timed = jobs.filter(([name]) => row.variants[name].status === 'checked');
        const subjects = [ours, copy, ...timed.map(([, j]) => ({ run: j.run, flush: j.flush, warmed: true }))];
        const [mo, mc, ...mv] = await measure(norms.device, timer, subjects, { budgetMs: budgetMs * (subjects.length / 2), minBatches: 3 });
        row.ms = mo.ms;
        row.wallMs = mo.wallMs;
        row.gpuMs = mo.gpuMs;
        row.timing = mo.timing;
        row.k = mo.k;
        row.batches = mo.batches;
        row.iters = mo.iters;
        row.minMs = mo.minMs;
        row.maxMs = mo.maxMs;
        row.gbps = gbps(c.bytes, mo.ms);
        row.copy = { bytes: 2 * copyBytes, ms: mc.ms, wallMs: mc.wallMs, gpuMs: mc.gpuMs, timing: mc.timing, gbps: gbps(2 * copyBytes, mc.ms), iters: mc.iters, batches: mc.batches };
        row.copyGbps = row.copy.gbps;
        row.ratio = row.gbps / row.copyGbps;
        row.status = 'ok';
        timed.forEach(([name], i) => {
          const m = mv[i];
          const res = row.variants[name];
          Object.assign(res, {
            status: 'ok',
            ms: m.ms,
            wallMs: m.wallMs,
            gpuMs: m.gpuMs,
            timing: m.timing,
            iters: m.iters,
            batches: m.batches,
            gbps: gbps(res.bytes, m.ms),
            ratio: gbps(res.bytes, m.ms) / row.copyGbps,
            // Its time over ours: the fused op's speed-up over it.
            vsOurs: m.ms / mo.ms,
          });
        });
        if (!Object.keys(row.variants).length) delete row.variants;
        phase('timing');
      } finally {
        src.destroy();
        dst.destroy();
      }
    } finally {
      for (const [, j] of jobs) j.destroy?.();
    }

    // Peers on the same device, same inputs, same reference, same protocol.
    for (const peer of ctx.peers ?? []) {
      if (!c.peers.includes(peer.name)) continue;
      onEventSafe(ctx, { type: 'peer', id: c.id, peer: peer.name });
      row.peers[peer.name] = await runPeer(peer, c, { host, Tg, refHost, main: s.main, tol, budgetMs, timer, ctx, ourMs: row.ms, copyGbps: row.copyGbps });
      phase(peer.name);
    }
    return row;
  } finally {
    for (const t of gpuOwned) t.destroy();
  }
}

/**
 * { traffic, dispatches, trafficBytes }: one call of the case on a profiling instance (same
 * device, same binding cap, the inputs wrapped), bytes read + written by its kernels over the
 * case's minimal bytes (c.bytes), and its dispatch count. Empty when profiling is unavailable.
 */
export async function profileCase(c, ctx, s, Tg) {
  if (typeof ctx.norms.profile !== 'function') return {};
  const key = `profile:${c.bindingBytes ?? 0}`;
  ctx.capped ??= new Map();
  let p = ctx.capped.get(key);
  if (!p) {
    p = await ctx.lib.createNorms({ device: ctx.norms.device, backend: 'webgpu', profile: true, ...(c.bindingBytes ? { maxBindingBytes: c.bindingBytes } : {}), ...(ctx.adapterClass ? { adapterClass: ctx.adapterClass } : {}) });
    ctx.capped.set(key, p);
  }
  const T = {};
  for (const [k, t] of Object.entries(Tg)) T[k] = p.wrap(t.buffer, t.shape, t.dtype);
  try {
    const out = s.call(p, T);
    const recs = await p.profile();
    destroyAll(out);
    const kernels = recs.flatMap((r) => r.kernels);
    const moved = kernels.reduce((a, k) => a + k.bytesRead + k.bytesWritten, 0);
    return { traffic: moved / c.bytes, dispatches: kernels.length / Math.max(recs.length, 1), trafficBytes: moved, kernels: kernels.map((k) => (k.gpuMs !== undefined ? `${k.name} ${k.gpuMs.toPrecision(3)} ms` : k.name)) };
  } finally {
    for (const t of Object.values(T)) t.destroy();
  }
}

/** The profiling instance for a case's binding cap and kernel class (shared across cases). */
async function profiler(c, ctx, adapterClass = ctx.adapterClass) {
  const key = `profile:${c.bindingBytes ?? 0}:${adapterClass ?? ''}`;
  ctx.capped ??= new Map();
  let p = ctx.capped.get(key);
  if (!p) {
    p = await ctx.lib.createNorms({ device: ctx.norms.device, backend: 'webgpu', profile: true, ...(c.bindingBytes ? { maxBindingBytes: c.bindingBytes } : {}), ...(adapterClass ? { adapterClass } : {}) });
    ctx.capped.set(key, p);
  }
  return p;
}

/**
 * A variant's { traffic, trafficBytes, dispatches }: its library calls profiled on the profiling
 * instance, plus the bytes of its own passes, over its minimal bytes.
 */
async function profileVariant(c, ctx, job) {
  if (typeof ctx.norms.profile !== 'function') return {};
  const p = await profiler(c, ctx);
  const wrapped = [];
  const wrap = (t) => {
    const w = p.wrap(t.buffer, t.shape, t.dtype);
    wrapped.push(w);
    return w;
  };
  try {
    await p.profile();
    const { out, extraBytes } = await job.traffic(p, wrap);
    const recs = await p.profile();
    destroyAll(out);
    const kernels = recs.flatMap((r) => r.kernels);
    const moved = kernels.reduce((a, k) => a + k.bytesRead + k.bytesWritten, 0) + extraBytes;
    return { traffic: moved / job.bytes, trafficBytes: moved, libDispatches: kernels.length, kernels: kernels.map((k) => (k.gpuMs !== undefined ? `${k.name} ${k.gpuMs.toPrecision(3)} ms` : k.name)) };
  } finally {
    for (const w of wrapped) w.destroy();
  }
}

/**
 * The GPU kernel class's traffic for a case run on a CPU-class adapter: the op recorded into a
 * command encoder that is never submitted (norms.encode), on a profiling instance with
 * adapterClass 'gpu', so the kernels the GPU class would dispatch are counted without running
 * them. { trafficGpuClass, dispatchesGpuClass } or {}.
 */
export async function profileGpuClass(c, ctx, s, Tg) {
  if (typeof ctx.norms.profile !== 'function' || typeof ctx.norms.encode !== 'function') return {};
  const p = await profiler(c, ctx, 'gpu');
  const T = {};
  for (const [k, t] of Object.entries(Tg)) T[k] = p.wrap(t.buffer, t.shape, t.dtype);
  try {
    await p.profile();
    const enc = ctx.norms.device.createCommandEncoder({ label: 'bench.gpu-class.never-submitted' });
    const out = p.encode(enc, () => s.call(p, T));
    const recs = await p.profile();
    destroyAll(out);
    const kernels = recs.flatMap((r) => r.kernels);
    const moved = kernels.reduce((a, k) => a + k.bytesRead + k.bytesWritten, 0);
    return { trafficGpuClass: moved / c.bytes, dispatchesGpuClass: kernels.length / Math.max(recs.length, 1), kernelsGpuClass: kernels.map((k) => k.name) };
  } finally {
    for (const t of Object.values(T)) t.destroy();
  }
}

function onEventSafe(ctx, ev) {
  try {
    ctx.onEvent?.(ev);
  } catch {
    /* progress only */
  }
}

async function runPeer(peer, c, o) {
  const { ctx } = o;
  const res = { status: 'n/a', version: peer.version };
  let job = null;
  try {
    const why = peer.unsupported?.(c);
    if (why) return { ...res, reason: why };
    job = await peer.prepare(c, { host: o.host, tensors: o.Tg, ref: o.refHost[o.main], device: ctx.norms.device });
    if (job.reason) return { ...res, reason: job.reason, what: job.what };
    res.what = job.what;
    const out = await job.output();
    res.err = ctx.lib.relativeL2(out, o.refHost[o.main]);
    if (!(res.err <= o.tol)) {
      res.status = 'FAIL';
      res.reason = `output differs from the CPU reference: relative L2 error ${fmtE(res.err)} > ${o.tol} (not timed)`;
      return res;
    }
    const [m] = await measure(ctx.norms.device, o.timer, [{ run: job.run, awaitEach: !!job.awaitEach, flush: job.flush, warmed: true }], { budgetMs: o.budgetMs, minBatches: 3 });
    Object.assign(res, {
      status: 'ok',
      ms: m.ms,
      wallMs: m.wallMs,
      gpuMs: m.gpuMs,
      timing: m.timing,
      iters: m.iters,
      batches: m.batches,
      gbps: gbps(c.bytes, m.ms),
      ratio: gbps(c.bytes, m.ms) / o.copyGbps,
      vsOurs: m.ms / o.ourMs,
    });
    return res;
  } catch (e) {
    return { ...res, status: 'error', reason: String(e?.message || e).slice(0, 500) };
  } finally {
    try {
      await job?.destroy?.();
    } catch {
      /* ignore */
    }
  }
}

export const fmtE = (e) => (e === undefined || e === null ? '' : Number.isFinite(e) ? e.toExponential(1) : String(e));

// ---------------------------------------------------------------- environment

/** Adapter info, features and limits of a device, as plain JSON. */
export function describeDevice(device, adapter) {
  const limits = {};
  const L = device.limits;
  for (const k in L) {
    const v = L[k];
    if (typeof v === 'number') limits[k] = v;
  }
  if (Object.keys(limits).length === 0) {
    // Dawn's Node objects keep limits as getters on the prototype.
    for (const k of Object.getOwnPropertyNames(Object.getPrototypeOf(L))) {
      const v = L[k];
      if (typeof v === 'number') limits[k] = v;
    }
  }
  return {
    adapter,
    features: [...device.features].sort(),
    limits,
  };
}

/** A short file-name tag for an adapter: e.g. "swiftshader", "nvidia-hopper". */
export function adapterTag(a) {
  const parts = [a?.architecture || a?.vendor || a?.description || 'unknown'];
  if (a?.vendor && a?.architecture && !/swiftshader/i.test(a.architecture)) parts.unshift(a.vendor);
  return parts
    .join('-')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '') || 'unknown';
}
