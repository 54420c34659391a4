// Tables for the terminal and for markdown, shared by both runners (plain JS, no Node APIs).

export const PEER_LABEL = { ort: 'ORT-web', tfjs: 'TF.js' };

const fmtMs = (ms) => (ms === undefined || ms === null || !Number.isFinite(ms) ? '' : ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms >= 1 ? ms.toFixed(2) : ms.toFixed(3));
const fmtG = (g) => (g === undefined || g === null || !Number.isFinite(g) ? '' : g >= 100 ? g.toFixed(0) : g >= 10 ? g.toFixed(1) : g >= 0.1 ? g.toFixed(2) : g.toPrecision(2));
const fmtE = (e) => (e === undefined || e === null ? '' : Number.isFinite(e) ? e.toExponential(1) : String(e));
const fmtX = (x) => (x === undefined || x === null || !Number.isFinite(x) ? '' : x >= 10 ? `${x.toFixed(0)}×` : `${x.toFixed(2)}×`);

/** The short name of a row's case: "layerNorm fwd", shape and dtype in their own columns. */
export function caseName(r) {
  let n = `${r.op} ${r.dir}`;
  if (r.op === 'batchNorm') n += r.opts?.training ? ' train' : ' eval';
  if (r.opts?.residual) n += ' +res';
  if (r.op === 'groupNorm') n += ` G=${r.opts.numGroups}`;
  if (r.op === 'weightNorm') n += ` dim=${r.opts.dim}`;
  if (r.bindingBytes) n += ` ≤${r.bindingBytes >= 1 << 20 ? `${r.bindingBytes / (1 << 20)}MiB` : `${r.bindingBytes / 1024}KiB`}`;
  return n;
}

/** A peer's cell: "12.3 ms (4.5×)" where × is peer time / our time, or "—". */
export function peerCell(p) {
  if (!p) return '';
  if (p.status === 'ok') return `${fmtMs(p.ms)} (${fmtX(p.vsOurs)})`;
  if (p.status === 'FAIL') return `FAIL err ${fmtE(p.err)}`;
  return '—';
}

export function columns(peerNames) {
  const cols = [
    ['case', (r) => caseName(r)],
    ['shape', (r) => `[${r.shape.join(',')}]`],
    ['dtype', (r) => (r.dtype === 'float16' ? 'f16' : 'f32')],
    ['ms', (r) => fmtMs(r.ms)],
    ['GB/s', (r) => fmtG(r.gbps)],
    ['copy GB/s', (r) => fmtG(r.copyGbps)],
    ['vs copy', (r) => (Number.isFinite(r.ratio) ? `${(r.ratio * 100).toFixed(0)}%` : '')],
    // Bytes the kernels move over the minimal bytes (1.00× = x read once, outputs written once).
    ['traffic', (r) => fmtX(r.traffic)],
    ['disp/op', (r) => (Number.isFinite(r.dispatches) ? String(+r.dispatches.toFixed(1)) : '')],
    ['rel.err', (r) => fmtE(r.err)],
    ['status', (r) => r.status],
  ];
  for (const p of peerNames) cols.push([`${PEER_LABEL[p] ?? p} ms (×ours)`, (r) => peerCell(r.peers?.[p])]);
  return cols;
}

/** Fixed-width text table; rows may be filled in one at a time (header() then line(r)). */
export function textTable(peerNames) {
  const cols = columns(peerNames);
  const width = cols.map(([h]) => Math.max(h.length, h === 'case' ? 26 : h === 'shape' ? 17 : 8));
  const pad = (s, i) => (i < 2 ? String(s).padEnd(width[i]) : String(s).padStart(width[i]));
  return {
    header: () => {
      const h = cols.map(([n], i) => pad(n, i)).join('  ');
      return `${h}\n${'-'.repeat(h.length)}`;
    },
    line: (r) => cols.map(([, f], i) => pad(f(r), i)).join('  '),
  };
}

export function markdownTable(rows, peerNames) {
  const cols = columns(peerNames);
  const esc = (s) => String(s).replace(/\|/g, '\\|');
  const out = [`| ${cols.map(([h]) => esc(h)).join(' | ')} |`, `|${cols.map((_, i) => (i < 3 ? '---' : '---:')).join('|')}|`];
  for (const r of rows) out.push(`| ${cols.map(([, f]) => esc(f(r))).join(' | ')} |`);
  return out.join('\n');
}

/** Lines explaining every FAIL / error row and every peer '—'. */
export function notes(rows) {
  const out = [];
  for (const r of rows) {
    if (r.status !== 'ok') out.push(`${r.id}: ${r.status}: ${String(r.error ?? '').split('\n')[0]}`);
    for (const [p, v] of Object.entries(r.peers ?? {})) {
      if (v.status !== 'ok') out.push(`${r.id}: ${PEER_LABEL[p] ?? p} ${v.status === 'n/a' ? '—' : v.status}: ${v.reason ?? ''}`);
    }
  }
  return out;
}

export { fmtMs, fmtG, fmtE, fmtX };
