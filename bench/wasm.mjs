// The wasm backend's rows of the benchmark (plain JS: Node, bench/node.mjs, and the browser page,
// bench/page.mjs). Per case of bench/cases.mjs:
//   1. the same seeded inputs as the GPU rows; the op once on `backend: 'wasm'` and once on the
//      float64 reference, every output compared (over the tolerance: FAIL, nothing timed);
//   2. timed, round-robin batch by batch within the budget (median per-iteration wall time), in
//      two phases (the resident rows, then the host → host rows with the peers):
//        ours at 1 and 2 threads with the tensors resident in the module's memory (ops are
//        synchronous: the output is complete when the call returns), against the WASM SIMD copy
//        kernel over the same bytes in the same memory, at 1 and 2 threads (the memory limit);
//        ours "host → host" at 1 and 2 threads: tensor() from host Float32Arrays, the op, read() of
//        the main output, everything destroyed, the way the peers are timed;
//        the peers (bench/peers/cpu.mjs) from host data in to host data out.
// GB/s is over the case's minimal bytes (cases.mjs); the copy moves numel·bpe bytes (read +
// write counted, the same bytes as a forward).
import { DATA, draw, hashSeed, makeRng, numel as numelOf, spec, tolerance } from '../test/catalog.js';

const now = () => performance.now();
const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const gbps = (bytes, ms) => bytes / (ms * 1e6);
const tensorsOf = (o) => Object.entries(o ?? {}).filter(([, t]) => t && typeof t.destroy === 'function');

/**
 * Times subjects ({ run: () => void | Promise }) round-robin: a calibration batch sets k so a batch
 * takes about 25 ms (less on small budgets), then batches until budgetMs is spent (at least minBatches each).
 */
export async function timeSubjects(subjects, { budgetMs, minBatches = 3 }) {
  const target = Math.min(25, Math.max(2, budgetMs / (8 * subjects.length)));
  const st = subjects.map(() => ({ k: 1, samples: [] }));
  const batch = async (s, k) => {
    const t0 = now();
    for (let i = 0; i < k; i++) {
      const p = s.run();
      if (p && typeof p.then === 'function') await p;
    }
    return (now() - t0) / k;
  };
  for (let i = 0; i < subjects.length; i++) {
    await batch(subjects[i], 1); // warm-up
    const ms = await batch(subjects[i], 1);
    st[i].k = Math.max(1, Math.min(1000, Math.round(target / Math.max(ms, 1e-3))));
    st[i].samples.push(ms);
  }
  const t0 = now();
  for (let round = 0; ; round++) {
    const spent = now() - t0;
    if (round >= minBatches && spent > budgetMs) break;
    if (round >= 60) break;
    for (let i = 0; i < subjects.length; i++) st[i].samples.push(await batch(subjects[i], st[i].k));
  }
  return st.map((s) => ({ ms: median(s.samples.slice(1)), batches: s.samples.length - 1, k: s.k }));
}

/**
 * Runs the wasm rows. ctx: { lib, cpu (reference instance), budgetS, peers: [peer from
 * bench/peers/cpu.mjs], threads: [1, 2], onRow(row) }.
 */
export async function runWasmCases(cases, ctx) {
  const threads = ctx.threads ?? [1, 2];
  const inst = {};
  for (const t of threads) {
    inst[t] = await ctx.lib.createNorms({ backend: 'wasm', threads: t, threadMinBytes: 0 });
    await inst[t]._wasm?.m.startThreads();
  }
  const rows = [];
  try {
    for (const c of cases) {
      if (c.bindingBytes) continue; // a GPU binding cap: nothing of the kind on the wasm backend
      let row;
      try {
        row = await runCase(c, ctx, inst, threads);
      } catch (e) {
        row = { ...baseRow(c), status: 'error', error: String(e?.stack ?? e) };
      }
      rows.push(row);
      ctx.onRow?.(row);
    }
  } finally {
    for (const n of Object.values(inst)) n.destroy();
  }
  return rows;
}

function baseRow(c) {
  return { backend: 'wasm', id: c.id, op: c.op, dir: c.dir, shape: c.shape, dtype: c.dtype, opts: c.opts, bytes: c.bytes, numel: numelOf(c.shape), threads: {}, peers: {} };
}

async function runCase(c, ctx, inst, threads) {
  const { cpu } = ctx;
  const budgetMs = ctx.budgetS * 1000;
  const s = spec(c, c.dir, DATA);
  const row = baseRow(c);
  const tol = tolerance(c.op, c.dtype);
  row.tol = tol;
  const rng = makeRng(hashSeed(c.id));
  const host = {};
  const shapes = {};
  const Tc = {};
  for (const inp of s.inputs) {
    const data = draw(rng, numelOf(inp.shape), inp);
    Tc[inp.name] = cpu.tensor(data, inp.shape, inp.dtype);
    host[inp.name] = inp.dtype === 'float16' ? await cpu.read(Tc[inp.name]) : data;
    shapes[inp.name] = [inp.shape, inp.dtype];
  }
  if (s.derive) {
    for (const [name, t] of Object.entries(s.derive(cpu, Tc))) {
      Tc[name] = t;
      host[name] = await cpu.read(t);
      shapes[name] = [t.shape, t.dtype];
    }
  }
  const upload = (n) => Object.fromEntries(Object.entries(host).map(([k, d]) => [k, n.tensor(d, shapes[k][0], shapes[k][1])]));
  const ref = s.call(cpu, Tc);
  const refHost = {};
  for (const [name, t] of tensorsOf(ref)) refHost[name] = await cpu.read(t);
  for (const t of Object.values(Tc)) t.destroy?.();
  for (const [, t] of tensorsOf(ref)) t.destroy();

  const first = inst[threads[0]];
  const T = Object.fromEntries(threads.map((t) => [t, upload(inst[t])]));
  try {
    // Check (1 thread): every output against the reference.
    const got = s.call(first, T[threads[0]]);
    const errs = {};
    for (const [name, t] of tensorsOf(got)) if (refHost[name]) errs[name] = ctx.lib.relativeL2(await first.read(t), refHost[name]);
    for (const [, t] of tensorsOf(got)) t.destroy();
    row.errs = errs;
    row.err = Math.max(...Object.values(errs).map((e) => (Number.isNaN(e) ? Infinity : e)));
    if (!(row.err <= tol)) {
      row.status = 'FAIL';
      const worst = Object.entries(errs).sort((a, b) => b[1] - a[1])[0];
      row.error = `output ${worst?.[0]}: relative L2 error ${worst?.[1]} > ${tol}`;
      return row;
    }
    // The copy kernel over numel·bpe bytes, in each instance's memory.
    const bpe = c.dtype === 'float16' ? 2 : 4;
    const copyN = Math.ceil((row.numel * bpe) / 16) * 4; // float32 elements
    const subjects = [];
    const names = [];
    for (const t of threads) {
      const n = inst[t];
      const m = n._wasm.m;
      const src = m.heap.alloc(copyN * 4), dst = m.heap.alloc(copyN * 4);
      m.f32(src, copyN).fill(1);
      T[t].__copy = [src, dst];
      subjects.push({ run: () => destroyOuts(s.call(n, T[t])) });
      names.push(`ours${t}`);
      subjects.push({ run: () => m.run('copy', [src, dst, copyN], Math.ceil(copyN / 16384), copyN) });
      names.push(`copy${t}`);
      subjects.push({
        run: async () => {
          const U = upload(n);
          const out = s.call(n, U);
          await n.read(out[s.main]);
          destroyOuts(out);
          for (const u of Object.values(U)) u.destroy();
        },
      });
      names.push(`host${t}`);
    }
    const jobs = [];
    for (const p of ctx.peers ?? []) {
      let job;
      try {
        job = await p.prepare(c, host);
        if (job.reason) {
          row.peers[p.name] = { status: 'n/a', reason: job.reason };
          continue;
        }
        const y = await job.run();
        const err = ctx.lib.relativeL2(y, refHost[s.main]);
        if (!(err <= tol)) {
          row.peers[p.name] = { status: 'FAIL', err, what: job.what, reason: `relative L2 error ${err} against the reference` };
          await job.destroy?.();
          continue;
        }
        row.peers[p.name] = { status: 'ok', err, what: job.what };
        jobs.push(job);
        subjects.push({ run: job.run });
        names.push(`peer:${p.name}`);
      } catch (e) {
        row.peers[p.name] = { status: 'error', reason: String(e?.message ?? e).split('\n')[0] };
        await job?.destroy?.();
      }
    }
    // Two phases, each round-robin within itself: the resident op and the copy at every thread
    // count, then the host → host runs with the peers. The host runs allocate fresh host arrays
    // every iteration, and the collector's background threads then take the second core from a
    // 2-thread op timed beside them (measured on the 2-core VM: the 2-thread column was often
    // slower than 1 thread when mixed in, 1.7-1.9x faster alone).
    const resident = names.map((n) => n.startsWith('ours') || n.startsWith('copy'));
    const phase = async (keep) => {
      const idx = names.map((_, i) => i).filter((i) => resident[i] === keep);
      const r = await timeSubjects(idx.map((i) => subjects[i]), { budgetMs: (budgetMs * idx.length) / names.length });
      return idx.map((i, j) => [names[i], r[j]]);
    };
    const by = Object.fromEntries([...(await phase(true)), ...(await phase(false))]);
    const copyBytes = 2 * copyN * 4;
    for (const t of threads) {
      const o = by[`ours${t}`], cp = by[`copy${t}`], h = by[`host${t}`];
      row.threads[t] = { ms: o.ms, gbps: gbps(c.bytes, o.ms), copyMs: cp.ms, copyGbps: gbps(copyBytes, cp.ms), ratio: gbps(c.bytes, o.ms) / gbps(copyBytes, cp.ms), hostMs: h.ms };
    }
    const base = row.threads[threads[0]];
    Object.assign(row, { ms: base.ms, gbps: base.gbps, copyGbps: base.copyGbps, ratio: base.ratio, hostMs: base.hostMs });
    for (const [k, v] of Object.entries(by)) {
      if (!k.startsWith('peer:')) continue;
      const p = row.peers[k.slice(5)];
      Object.assign(p, { ms: v.ms, gbps: gbps(c.bytes, v.ms), vsOurs: v.ms / base.hostMs });
    }
    for (const j of jobs) await j.destroy?.();
    row.status = 'ok';
    return row;
  } finally {
    for (const t of threads) {
      const [src, dst] = T[t].__copy ?? [];
      if (src !== undefined) {
        inst[t]._wasm.m.heap.release(src);
        inst[t]._wasm.m.heap.release(dst);
      }
      delete T[t].__copy;
      for (const u of Object.values(T[t])) u.destroy();
    }
  }
}

function destroyOuts(o) {
  for (const [, t] of tensorsOf(o)) t.destroy();
}

const f = (x, d = 2) => (x === undefined || !Number.isFinite(x) ? '' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(d));

/** Text table of wasm rows: per thread count ms, GB/s and fraction of the copy; host → host ms; each peer's ms and its time over ours (host → host, 1 thread). */
export function wasmTable(peerNames, threads = [1, 2]) {
  const cols = [
    ['wasm case', (r) => r.id, 44],
    ...threads.flatMap((t) => [
      [`${t}t ms`, (r) => f(r.threads?.[t]?.ms, 3), 8],
      [`${t}t GB/s`, (r) => f(r.threads?.[t]?.gbps), 8],
      [`${t}t ×copy`, (r) => f(r.threads?.[t]?.ratio), 8],
    ]),
    ...threads.map((t) => [`host ${t}t`, (r) => f(r.threads?.[t]?.hostMs, 3), 8]),
    ...peerNames.map((p) => [p, (r) => peerCell(r.peers?.[p]), 16]),
    ['err', (r) => (Number.isFinite(r.err) ? r.err.toExponential(1) : ''), 8],
    ['status', (r) => r.status, 6],
  ];
  const pad = (s, w, i) => (i === 0 ? String(s).padEnd(w) : String(s).padStart(w));
  return {
    header: () => {
      const h = cols.map(([n, , w], i) => pad(n, w, i)).join(' ');
      return `${h}\n${'-'.repeat(h.length)}`;
    },
    line: (r) => cols.map(([, fn, w], i) => pad(fn(r), w, i)).join(' '),
    markdown: (rows) =>
      [`| ${cols.map(([n]) => n).join(' | ')} |`, `|${cols.map((_, i) => (i ? '---:' : '---')).join('|')}|`, ...rows.map((r) => `| ${cols.map(([, fn]) => fn(r)).join(' | ')} |`)].join('\n'),
  };
}

function peerCell(p) {
  if (!p) return '';
  if (p.status === 'ok') return `${f(p.ms, 3)} (${f(p.vsOurs)}×)`;
  if (p.status === 'FAIL') return 'FAIL';
  return '—';
}
