/**
 * The demo page (index.html, served by `npm run dev`): pick an op, a shape, a dtype and a
 * direction; Run executes it on WebGPU and on the CPU reference, shows the relative L2 error of
 * every output, the GPU time (median wall time of a few runs, op plus read of the main output),
 * the effective GB/s over the minimal bytes, and a chart of the last runs.
 * Without WebGPU it says so and runs the CPU backend only.
 *
 * Stable ids for the e2e test: #op #variant #preset #shape #groups #dtype #direction #reps #run,
 * #adapter (data-backend), #result (data-state idle|running|done|error, data-run, data-err,
 * data-backend, data-gbps, data-ms, data-error), #chart (rect.bar per run).
 */
import { createNorms, relativeL2, type Norms, type Tensor, type DType } from '../src/index.ts';
// The op catalogue (each op's inputs, forward and backward calls), the seeded generator and the
// tolerances, shared with the tests, the benchmark and the e2e pages.
import { draw, makeRng, opEntry, runChain, tolerance, type Case, type CaseOptions, type Distribution } from '../test/catalog.js';

type Direction = 'forward' | 'backward';
type Tensors = Record<string, Tensor>;
type Outputs = Record<string, Tensor | null | undefined>;

interface Ctx {
  shape: number[];
  dtype: DType;
  variant: string;
  groups: number;
}

/**
 * The page's side of an op: presets, variants and the call as text. Its inputs and calls come
 * from the catalogue (test/catalog.js): `opts` turns the chosen variant into the catalogue's case
 * options, and `data` says how the page draws each input (seeded normals, in this order).
 */
interface OpSpec {
  presets: string[];
  variants: { value: string; label: string; forwardOnly?: boolean }[];
  usesGroups?: boolean;
  /** Throws a readable message when the shape does not fit the op. */
  check(c: Ctx): void;
  opts(c: Ctx): CaseOptions;
  data: Record<string, Distribution>;
  /** The call as text, shown above the result. */
  call(c: Ctx, dir: Direction): string;
}

const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
const last = (s: readonly number[]): number => s[s.length - 1]!;
const fmtShape = (s: readonly number[]): string => `[${s.join(', ')}]`;

function needRank(c: Ctx, min: number, what: string): void {
  if (c.shape.length < min) throw new Error(`${what} needs at least ${min} dims, got ${fmtShape(c.shape)}`);
}

const affineVariants = [
  { value: 'affine', label: 'weight + bias' },
  { value: 'plain', label: 'no affine' },
];

function rowOp(rms: boolean): OpSpec {
  const name = rms ? 'rmsNorm' : 'layerNorm';
  return {
    presets: rms ? ['[64, 4096]', '[7, 257]', '[512, 2048]', '[2048, 768]'] : ['[64, 768]', '[7, 65]', '[512, 1024]', '[4096, 768]', '[8, 16384]'],
    variants: [
      { value: 'affine', label: rms ? 'weight' : 'weight + bias' },
      { value: 'plain', label: 'no affine' },
      { value: 'residual', label: `${rms ? 'weight' : 'weight + bias'}, fused residual add`, forwardOnly: true },
    ],
    check: (c) => needRank(c, 1, name),
    opts: (c) => ({ normalizedShape: [last(c.shape)], ...(c.variant === 'plain' ? { weight: false, bias: false } : {}), ...(c.variant === 'residual' ? { residual: true } : {}) }),
    data: { x: { mean: 1, std: 1 }, weight: { mean: 1, std: 0.3 }, bias: { mean: 0, std: 0.5 }, residual: { mean: 0.5, std: 1 }, dy: { mean: 0.1, std: 1 } },
    call(c, dir) {
      const K = last(c.shape);
      const w = c.variant === 'plain' ? '' : rms ? ', weight' : ', weight, bias';
      const res = c.variant === 'residual' ? ', residual' : '';
      if (dir === 'forward') return `${name}(x${fmtShape(c.shape)}, { normalizedShape: [${K}]${w}${res} })`;
      return `${name}Backward(dy, x${fmtShape(c.shape)}, ${rms ? '' : 'mean, '}rstd, { normalizedShape: [${K}]${w} })`;
    },
  };
}

function channelOp(kind: 'groupNorm' | 'instanceNorm'): OpSpec {
  const gn = kind === 'groupNorm';
  return {
    presets: gn ? ['[2, 8, 6, 6]', '[1, 320, 64, 64]', '[4, 64, 32, 32]', '[8, 128, 16, 16]'] : ['[2, 3, 5, 7]', '[4, 64, 64, 64]', '[1, 3, 256, 256]', '[8, 32, 28, 28]'],
    variants: gn ? [...affineVariants, { value: 'silu', label: 'weight + bias, fused SiLU', forwardOnly: true }] : affineVariants,
    usesGroups: gn,
    check(c) {
      needRank(c, 2, kind);
      if (gn && (c.groups < 1 || c.shape[1]! % c.groups !== 0)) throw new Error(`groups ${c.groups} must divide the ${c.shape[1]} channels`);
    },
    opts: (c) => ({ ...(gn ? { numGroups: c.groups } : {}), ...(c.variant === 'plain' ? { weight: false, bias: false } : {}), ...(c.variant === 'silu' ? { activation: 'silu' as const } : {}) }),
    data: { x: { mean: 2, std: 1.5 }, weight: { mean: 1, std: 0.3 }, bias: { mean: 0, std: 0.5 }, dy: { mean: 0.1, std: 1 } },
    call(c, dir) {
      const o = [gn ? `numGroups: ${c.groups}` : '', c.variant === 'plain' ? '' : 'weight, bias', c.variant === 'silu' ? "activation: 'silu'" : ''].filter(Boolean).join(', ');
      if (dir === 'forward') return `${kind}(x${fmtShape(c.shape)}, { ${o} })`;
      return `${kind}Backward(dy, x${fmtShape(c.shape)}, mean, rstd, { ${o} })`;
    },
  };
}

const batchNormOp: OpSpec = {
  presets: ['[4, 3, 5, 5]', '[32, 64, 32, 32]', '[8, 256, 14, 14]', '[256, 512]'],
  variants: [
    { value: 'affine', label: 'training, weight + bias, running stats' },
    { value: 'plain', label: 'training, no affine, no running stats' },
  ],
  check: (c) => needRank(c, 2, 'batchNorm'),
  // Training; 'plain': no affine, no running statistics. (A backward's statistics come from a
  // forward without running statistics, so the compared forward's in-place update stays its own.)
  opts: (c) => ({ training: true, ...(c.variant === 'plain' ? { weight: false, bias: false, running: false } : {}) }),
  data: {
    x: { mean: 3, std: 2 },
    weight: { mean: 1, std: 0.3 },
    bias: { mean: 0, std: 0.5 },
    runningMean: { mean: 0.5, std: 0.2 },
    runningVar: { mean: 1, std: 0.2, positive: true },
    dy: { mean: 0.1, std: 1 },
  },
  call(c, dir) {
    const o = c.variant === 'plain' ? 'training: true' : 'training: true, weight, bias, runningMean, runningVar';
    if (dir === 'forward') return `batchNorm(x${fmtShape(c.shape)}, { ${o} })`;
    return `batchNormBackward(dy, x${fmtShape(c.shape)}, { training: true${c.variant === 'plain' ? '' : ', weight, bias'}, saveMean, saveInvstd })`;
  },
};

const weightNormOp: OpSpec = {
  presets: ['[8, 3, 3, 3]', '[256, 128, 3, 3]', '[1024, 1024]', '[64, 32, 5, 5]'],
  variants: [
    { value: 'dim0', label: 'dim = 0' },
    { value: 'dimnull', label: 'dim = null (one norm)' },
  ],
  check: (c) => needRank(c, 1, 'weightNorm'),
  opts: (c) => ({ dim: c.variant === 'dimnull' ? null : 0 }),
  data: { v: { mean: 0.5, std: 1 }, g: { mean: 1.5, std: 0.5 }, dw: { mean: 0.1, std: 1 } },
  call(c, dir) {
    const dim = c.variant === 'dimnull' ? 'null' : '0';
    return dir === 'forward' ? `weightNorm(v${fmtShape(c.shape)}, g, { dim: ${dim} })` : `weightNormBackward(dw, v${fmtShape(c.shape)}, g, norms, { dim: ${dim} })`;
  },
};

const OPS: Record<string, OpSpec> = {
  layerNorm: rowOp(false),
  rmsNorm: rowOp(true),
  batchNorm: batchNormOp,
  groupNorm: channelOp('groupNorm'),
  instanceNorm: channelOp('instanceNorm'),
  weightNorm: weightNormOp,
};

// ---- the op as a case of the catalogue ----
const dirOf = (dir: Direction) => (dir === 'forward' ? 'fwd' : 'bwd') as 'fwd' | 'bwd';

function caseOf(op: string, spec: OpSpec, c: Ctx, dir: Direction): Case {
  return { op, shape: c.shape, dtype: c.dtype, dir: dirOf(dir), opts: spec.opts(c) };
}

interface HostInput {
  data: Float32Array;
  shape: number[];
  dtype: DType;
}

/** Seeded host data of the case's inputs, drawn in the order of the page's data table. */
function hostInputs(k: Case, spec: OpSpec): Record<string, HostInput> {
  const ins = opEntry(k.op).inputs(k, k.dir!);
  const rng = makeRng(0x5eed + numel(k.shape), 'pairs');
  const host: Record<string, HostInput> = {};
  for (const [name, d] of Object.entries(spec.data)) {
    const i = ins.find((x) => x.name === name);
    if (i) host[name] = { data: draw(rng, numel(i.shape), d), shape: i.shape, dtype: i.dtype };
  }
  const missing = ins.filter((i) => !host[i.name]).map((i) => i.name);
  if (missing.length) throw new Error(`no data for ${missing.join(', ')}`);
  return host;
}

/** Untimed work a backward needs: the forward's saved statistics. */
function prepare(N: Norms, t: Tensors, k: Case): Outputs {
  return k.dir === 'fwd' ? {} : opEntry(k.op).forward(N, t, k);
}

/** The timed op: the forward (with the inputs it updates in place) or the backward. */
function runOp(N: Norms, t: Tensors, k: Case, prep: Outputs): Outputs {
  return k.dir === 'fwd' ? runChain(N, t, k, false) : { ...opEntry(k.op).backward(N, t, prep, k) };
}

const mainOf = (k: Case): string => opEntry(k.op).main[k.dir!];

// ---- page state ----
const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing from index.html`);
  return el as T;
};
const els = {
  op: $<HTMLSelectElement>('op'),
  variant: $<HTMLSelectElement>('variant'),
  preset: $<HTMLSelectElement>('preset'),
  shape: $<HTMLInputElement>('shape'),
  groups: $<HTMLInputElement>('groups'),
  groupsLabel: $<HTMLLabelElement>('groups-label'),
  dtype: $<HTMLSelectElement>('dtype'),
  direction: $<HTMLSelectElement>('direction'),
  reps: $<HTMLInputElement>('reps'),
  run: $<HTMLButtonElement>('run'),
  form: $<HTMLFormElement>('controls'),
  call: $<HTMLParagraphElement>('call'),
  result: $<HTMLElement>('result'),
  adapter: $<HTMLParagraphElement>('adapter'),
  chart: $<HTMLDivElement>('chart'),
};

interface HistoryEntry {
  label: string;
  gbps: number;
  direction: Direction;
  backend: string;
}
const history: HistoryEntry[] = [];
const HISTORY = 16;
let runCount = 0;
let gpu: Norms | null = null;
let cpu: Norms | null = null;

function option(sel: HTMLSelectElement, value: string, label = value): void {
  const o = document.createElement('option');
  o.value = value;
  o.textContent = label;
  sel.appendChild(o);
}

function defaultGroups(shape: number[]): number {
  const C = shape[1] ?? 1;
  for (const g of [32, 16, 8, 4, 2, 1]) if (g <= C && C % g === 0 && (g < C || C <= 4)) return g;
  return 1;
}

function parseShape(text: string): number[] {
  const parts = text.replace(/[[\]()]/g, ' ').split(/[\s,x×]+/).filter(Boolean);
  if (!parts.length) throw new Error('shape: enter dims such as [64, 768]');
  const dims = parts.map(Number);
  if (dims.some((d) => !Number.isInteger(d) || d < 1)) throw new Error(`shape: "${text}" is not a list of positive integers`);
  if (numel(dims) > 64 * 1024 * 1024) throw new Error(`shape: ${fmtShape(dims)} has ${numel(dims)} elements; the demo stops at 64 Mi`);
  return dims;
}

function onOpChange(): void {
  const spec = OPS[els.op.value]!;
  els.preset.replaceChildren();
  for (const p of spec.presets) option(els.preset, p);
  els.shape.value = spec.presets[0]!;
  const keep = els.variant.value;
  els.variant.replaceChildren();
  for (const v of spec.variants) option(els.variant, v.value, v.label);
  if (spec.variants.some((v) => v.value === keep)) els.variant.value = keep;
  els.groupsLabel.hidden = !spec.usesGroups;
  onShapeChange();
  onDirectionChange();
}

function onShapeChange(): void {
  try {
    els.groups.value = String(defaultGroups(parseShape(els.shape.value)));
  } catch {
    /* shown on Run */
  }
  showCall();
}

function onDirectionChange(): void {
  const spec = OPS[els.op.value]!;
  const backward = els.direction.value === 'backward';
  for (const o of Array.from(els.variant.options)) {
    o.disabled = backward && !!spec.variants.find((v) => v.value === o.value)?.forwardOnly;
  }
  if (els.variant.selectedOptions[0]?.disabled) els.variant.value = spec.variants[0]!.value;
  showCall();
}

function readCtx(): Ctx {
  return {
    shape: parseShape(els.shape.value),
    dtype: els.dtype.value as DType,
    variant: els.variant.value,
    groups: Number(els.groups.value),
  };
}

function showCall(): void {
  try {
    const c = readCtx();
    els.call.textContent = OPS[els.op.value]!.call(c, els.direction.value as Direction);
  } catch (e) {
    els.call.textContent = (e as Error).message;
  }
}

// ---- running ----
interface OutputRow {
  name: string;
  shape: readonly number[];
  dtype: string;
  err: number | null;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function destroyAll(...groups: (Outputs | Tensors)[]): void {
  const seen = new Set<Tensor>();
  for (const g of groups) for (const t of Object.values(g)) if (t && !seen.has(t)) (seen.add(t), t.destroy());
}

async function runOnce(N: Norms, k: Case, host: Record<string, HostInput>) {
  const t: Tensors = {};
  for (const [name, h] of Object.entries(host)) t[name] = N.tensor(h.data, h.shape, h.dtype);
  const prep = prepare(N, t, k);
  const t0 = performance.now();
  const out = runOp(N, t, k, prep);
  const mainOut = out[mainOf(k)];
  if (!mainOut) throw new Error(`${mainOf(k)} missing from the result`);
  await N.read(mainOut);
  const ms = performance.now() - t0;
  const data: Record<string, Float32Array> = {};
  for (const [k, v] of Object.entries(out)) if (v) data[k] = await N.read(v);
  const meta = Object.fromEntries(Object.entries(out).filter(([, v]) => v).map(([k, v]) => [k, { shape: v!.shape, dtype: v!.dtype }]));
  return { t, prep, out, ms, data, meta };
}

async function timeRuns(N: Norms, k: Case, t: Tensors, prep: Outputs, reps: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    const out = runOp(N, t, k, prep);
    await N.read(out[mainOf(k)]!);
    times.push(performance.now() - t0);
    // Outputs are new tensors; inputs updated in place (running stats) are kept.
    const inputs = new Set(Object.values(t));
    for (const v of Object.values(out)) if (v && !inputs.has(v)) v.destroy();
  }
  return times;
}

async function run(): Promise<void> {
  const spec = OPS[els.op.value]!;
  const dir = els.direction.value as Direction;
  const res = els.result;
  res.dataset.state = 'running';
  delete res.dataset.err;
  delete res.dataset.error;
  els.run.disabled = true;
  res.replaceChildren(el('p', 'hint', 'running...'));
  try {
    const c = readCtx();
    spec.check(c);
    const reps = Math.max(1, Math.min(50, Math.floor(Number(els.reps.value)) || 5));
    const k = caseOf(els.op.value, spec, c, dir);
    const host = hostInputs(k, spec);
    const tol = tolerance(els.op.value, c.dtype);
    const bpe = c.dtype === 'float16' ? 2 : 4;
    const bytes = (dir === 'forward' ? 2 : 3) * numel(c.shape) * bpe;
    // Let the "running..." state paint before the CPU reference blocks the thread.
    await new Promise((r) => setTimeout(r, 0));

    const N = gpu ?? cpu!;
    // First run: compared against the CPU reference (also compiles the pipelines).
    const first = await runOnce(N, k, host);
    let rows: OutputRow[];
    let cpuMs: number | null = null;
    if (gpu) {
      const ref = await runOnce(cpu!, k, host);
      cpuMs = ref.ms;
      rows = Object.entries(ref.data).map(([name, r]) => ({
        name,
        shape: ref.meta[name]!.shape,
        dtype: ref.meta[name]!.dtype,
        err: first.data[name] ? relativeL2(first.data[name]!, r) : Infinity,
      }));
      destroyAll(ref.t, ref.prep, ref.out);
    } else {
      rows = Object.entries(first.data).map(([name]) => ({ name, shape: first.meta[name]!.shape, dtype: first.meta[name]!.dtype, err: null }));
    }
    const times = await timeRuns(N, k, first.t, first.prep, reps);
    destroyAll(first.t, first.prep, first.out);
    const ms = median(times);
    const gbps = bytes / (ms / 1000) / 1e9;
    const errs = rows.map((r) => r.err).filter((e): e is number => e !== null);
    const maxErr = errs.length ? errs.reduce((a, b) => (a >= b || Number.isNaN(a) ? a : b), 0) : null;
    const ok = maxErr === null || maxErr <= tol;

    runCount++;
    history.push({ label: `${els.op.value} ${fmtShape(c.shape)} ${c.dtype} ${dir}`, gbps, direction: dir, backend: N.backend });
    if (history.length > HISTORY) history.shift();
    drawChart();

    res.replaceChildren(
      el('h2', ok ? 'ok' : 'bad', `${maxErr === null ? 'done' : ok ? 'match' : 'MISMATCH'} — ${els.op.value} ${dir}, ${fmtShape(c.shape)} ${c.dtype}${gpu ? '' : ' (CPU backend only, nothing to compare)'}`),
      stats([
        ['backend', N.backend],
        [gpu ? 'GPU time (median)' : 'CPU time (median)', fmtMs(ms)],
        ['runs', `${reps} (${times.map((t) => fmtMs(t)).join(', ')})`],
        ['bandwidth', `${fmtRate(gbps)} over ${fmtBytes(bytes)}`],
        ...(cpuMs !== null ? ([['CPU reference (1 run)', `${cpuMs.toFixed(1)} ms`]] as [string, string][]) : []),
        ['max relative L2', maxErr === null ? 'n/a (no GPU to compare)' : `${fmtErr(maxErr)} (tolerance ${tol})`],
      ]),
      outputsTable(rows, tol),
    );
    Object.assign(res.dataset, {
      state: 'done',
      backend: N.backend,
      err: maxErr === null ? '' : String(maxErr),
      ok: String(ok),
      ms: String(ms),
      gbps: String(gbps),
    });
  } catch (e) {
    runCount++;
    const msg = `${(e as Error).name ?? 'Error'}: ${(e as Error).message ?? String(e)}`;
    res.replaceChildren(el('h2', 'bad', 'error'), el('pre', 'error', msg));
    Object.assign(res.dataset, { state: 'error', error: msg, backend: (gpu ?? cpu)?.backend ?? '' });
    console.warn(e);
  } finally {
    res.dataset.run = String(runCount);
    els.run.disabled = false;
  }
}

// ---- rendering ----
function el(tag: string, cls: string, text: string): HTMLElement {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  e.textContent = text;
  return e;
}

/** Three significant digits, no exponent for everyday sizes: 0.000372 → "0.000372", 1234 → "1234". */
function sig3(v: number): string {
  if (v === 0 || !Number.isFinite(v)) return String(v);
  return v >= 100 ? v.toFixed(0) : String(Number(v.toPrecision(3)));
}

/** A duration in the unit that suits it: 0.0123 ms → "12.3 µs", 4.5 ms → "4.5 ms", 2500 ms → "2.5 s". */
function fmtMs(ms: number): string {
  if (ms < 1) return `${sig3(ms * 1000)} µs`;
  if (ms >= 1000) return `${sig3(ms / 1000)} s`;
  return `${sig3(ms)} ms`;
}

/** Bytes in B, KB, MB or GB (powers of 1000, as the GB/s figures). */
function fmtBytes(b: number): string {
  const [d, u] = b >= 1e9 ? [1e9, 'GB'] : b >= 1e6 ? [1e6, 'MB'] : b >= 1e3 ? [1e3, 'KB'] : [1, 'B'];
  return `${sig3(b / d)} ${u}`;
}

/** The unit a bandwidth (or the largest of several) reads best in. */
function rateUnit(gbps: number): { div: number; unit: string } {
  return gbps >= 1 ? { div: 1, unit: 'GB/s' } : gbps >= 1e-3 ? { div: 1e-3, unit: 'MB/s' } : { div: 1e-6, unit: 'KB/s' };
}

function fmtRate(gbps: number): string {
  const { div, unit } = rateUnit(gbps);
  return `${sig3(gbps / div)} ${unit}`;
}

/** An axis from 0 to at least max with 2 to 5 steps of 1, 2, 2.5 or 5 × a power of ten. */
function niceAxis(max: number): { step: number; top: number } {
  const raw = (max > 0 && Number.isFinite(max) ? max : 1) / 4;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => Number((m * p).toPrecision(6))).find((x) => x >= raw * (1 - 1e-9))!;
  return { step, top: Math.ceil(max / step - 1e-9) * step || step };
}

function fmtErr(e: number): string {
  return Number.isFinite(e) ? e.toExponential(2) : String(e);
}

function stats(items: [string, string][]): HTMLElement {
  const dl = document.createElement('dl');
  dl.className = 'stats';
  for (const [k, v] of items) {
    dl.appendChild(el('dt', '', k));
    dl.appendChild(el('dd', '', v));
  }
  return dl;
}

function outputsTable(rows: OutputRow[], tol: number): HTMLElement {
  const table = document.createElement('table');
  table.className = 'outputs';
  const head = document.createElement('tr');
  for (const h of ['output', 'shape', 'dtype', 'relative L2 vs CPU', '']) head.appendChild(el('th', '', h));
  table.appendChild(head);
  for (const r of rows) {
    const tr = document.createElement('tr');
    const pass = r.err === null || r.err <= tol;
    tr.dataset.output = r.name;
    tr.dataset.err = r.err === null ? '' : String(r.err);
    tr.append(
      el('td', 'name', r.name),
      el('td', '', fmtShape(r.shape)),
      el('td', '', r.dtype),
      el('td', 'num', r.err === null ? 'n/a' : fmtErr(r.err)),
      el('td', pass ? 'ok' : 'bad', r.err === null ? '' : pass ? '✓' : '✗'),
    );
    table.appendChild(tr);
  }
  return table;
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function drawChart(): void {
  const W = 640;
  const H = 180;
  const pad = { l: 44, r: 8, t: 22, b: 22 };
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'bandwidth of the last runs' });
  if (!history.length) {
    root.appendChild(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis' }, 'no runs yet'));
    els.chart.replaceChildren(root);
    return;
  }
  // One unit for the whole chart (KB/s, MB/s or GB/s, from the largest bar), round ticks in it.
  const { div, unit } = rateUnit(Math.max(...history.map((h) => h.gbps)));
  const { step, top } = niceAxis(Math.max(...history.map((h) => h.gbps / div)));
  const plotW = W - pad.l - pad.r;
  const plotH = H - pad.t - pad.b;
  for (let v = 0; v <= top * (1 + 1e-9); v += step) {
    const y = pad.t + plotH * (1 - v / top);
    root.appendChild(svg('line', { x1: pad.l, x2: W - pad.r, y1: y, y2: y, class: 'grid' }));
    root.appendChild(svg('text', { x: pad.l - 4, y: y + 4, 'text-anchor': 'end', class: 'axis' }, String(Number(v.toPrecision(6)))));
  }
  root.appendChild(svg('text', { x: 4, y: 12, class: 'axis' }, unit));
  const slot = plotW / HISTORY;
  history.forEach((h, i) => {
    const v = h.gbps / div;
    const bh = (v / top) * plotH;
    const x = pad.l + i * slot + slot * 0.15;
    const bar = svg('rect', { x, y: pad.t + plotH - bh, width: slot * 0.7, height: Math.max(bh, 1), class: `bar ${h.direction} ${h.backend}` });
    bar.appendChild(svg('title', {}, `${h.label}: ${fmtRate(h.gbps)} (${h.backend})`));
    root.appendChild(bar);
    // At most 3 significant digits in the chart's unit: fits the bar's slot (no overlapping labels).
    root.appendChild(svg('text', { x: x + slot * 0.35, y: pad.t + plotH - bh - 3, 'text-anchor': 'middle', class: 'val' }, v >= 100 ? v.toFixed(0) : String(Number(v.toPrecision(2)))));
    root.appendChild(svg('text', { x: x + slot * 0.35, y: H - 6, 'text-anchor': 'middle', class: 'axis' }, `#${runCount - history.length + i + 1}`));
  });
  const legend = svg('g', { class: 'legend' });
  legend.appendChild(svg('rect', { x: W - 150, y: 4, width: 10, height: 10, class: 'bar forward' }));
  legend.appendChild(svg('text', { x: W - 136, y: 13, class: 'axis' }, 'forward'));
  legend.appendChild(svg('rect', { x: W - 80, y: 4, width: 10, height: 10, class: 'bar backward' }));
  legend.appendChild(svg('text', { x: W - 66, y: 13, class: 'axis' }, 'backward'));
  root.appendChild(legend);
  els.chart.replaceChildren(root);
}

// ---- start ----
async function init(): Promise<void> {
  for (const name of Object.keys(OPS)) option(els.op, name);
  els.op.addEventListener('change', onOpChange);
  els.preset.addEventListener('change', () => {
    els.shape.value = els.preset.value;
    onShapeChange();
  });
  els.shape.addEventListener('input', onShapeChange);
  for (const e of [els.variant, els.dtype, els.groups]) e.addEventListener('change', showCall);
  els.direction.addEventListener('change', onDirectionChange);
  els.form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!els.run.disabled) void run();
  });
  onOpChange();
  drawChart();

  cpu = await createNorms({ backend: 'cpu' });
  // The demo compares WebGPU with the CPU reference: WebGPU on whatever adapter there is (CPU-emulated
  // ones included, which 'auto' would leave for the wasm backend).
  const n = await createNorms({ backend: 'webgpu' }).catch(() => createNorms());
  if (n.backend === 'webgpu') {
    gpu = n;
    const a = n.adapter;
    els.adapter.textContent = `WebGPU: ${[a?.vendor, a?.architecture, a?.device, a?.description].filter(Boolean).join(' · ') || 'adapter without info'}`;
    els.adapter.className = 'adapter ok';
    n.device?.lost.then((info) => {
      els.adapter.textContent = `WebGPU device lost (${info.reason}): ${info.message}. Reload the page.`;
      els.adapter.className = 'adapter bad';
    });
  } else {
    n.destroy();
    els.adapter.textContent = `WebGPU is not available here (${n.note}). Runs use the CPU reference only: no GPU timing and no comparison.`;
    els.adapter.className = 'adapter warn';
  }
  els.adapter.dataset.backend = gpu ? 'webgpu' : 'cpu';
  document.body.dataset.ready = '1';
}

init().catch((e) => {
  els.adapter.textContent = `failed to start: ${(e as Error).message}`;
  els.adapter.className = 'adapter bad';
  els.adapter.dataset.backend = 'none';
  document.body.dataset.ready = 'error';
});
