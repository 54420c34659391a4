// Tables for the terminal and for markdown, shared by both runners (plain JS, no Node APIs).

import { CATALOG } from '../test/catalog.js';

export const PEER_LABEL = { ort: 'ORT-web', tfjs: 'TF.js' };

const fmtMs = (ms) => (ms === undefined || ms === null || !Number.isFinite(ms) ? '' : ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms >= 1 ? ms.toFixed(2) : ms.toFixed(3));
const fmtG = (g) => (g === undefined || g === null || !Number.isFinite(g) ? '' : g >= 100 ? g.toFixed(0) : g >= 10 ? g.toFixed(1) : g >= 0.1 ? g.toFixed(2) : g.toPrecision(2));
const fmtE = (e) => (e === undefined || e === null ? '' : Number.isFinite(e) ? e.toExponential(1) : String(e));
const fmtX = (x) => (x === undefined || x === null || !Number.isFinite(x) ? '' : x >= 10 ? `${x.toFixed(0)}×` : `${x.toFixed(2)}×`);

/**
 * The short name of a row's case: "layerNorm fwd", then the op's own label bits (its catalogue
 * entry's label: "G=32", "train"), the modulation or residual and the binding cap; shape and dtype
 * in their own columns.
 */
export function caseName(r) {
  let n = `${r.op} ${r.dir}`;
  const own = CATALOG[r.op]?.label?.(r.opts ?? {});
  if (own) n += ` ${own}`;
  if (r.opts?.modulate || r.opts?.gate) n += ` adaLN${r.opts.gate ? '+gate' : ''}`;
  else if (r.opts?.residual) n += ' +res';
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

export function markdownTable(rows, peerNames, cols = columns(peerNames)) {
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
    for (const [k, v] of Object.entries(r.variants ?? {})) {
      if (v.status !== 'ok') out.push(`${r.id}: ${v.label ?? k} ${v.status}: ${v.reason ?? ''}`);
    }
    for (const [p, v] of Object.entries(r.peers ?? {})) {
      if (v.status !== 'ok') out.push(`${r.id}: ${PEER_LABEL[p] ?? p} ${v.status === 'n/a' ? '—' : v.status}: ${v.reason ?? ''}`);
    }
  }
  return out;
}

export { fmtMs, fmtG, fmtE, fmtX };

// ---------------------------------------------------------------- variants (fused vs composition)

/**
 * Columns of the variants table (rows with `variants`: the modulated rows): the fused op, the
 * unfused composition, the plain layer norm, traffic on the class that ran and (on a CPU-class
 * adapter) the GPU class's, and the targets' ratios.
 */
export function variantColumns(peerNames = []) {
  const v = (r, k) => r.variants?.[k];
  const vms = (r, k) => {
    const x = v(r, k);
    if (!x) return '';
    return x.status === 'ok' ? fmtMs(x.ms) : x.status === 'n/a' ? '—' : x.status;
  };
  const cols = [
    ['case', (r) => caseName(r)],
    ['shape', (r) => `[${r.shape.join(',')}]`],
    ['fused ms', (r) => fmtMs(r.ms)],
    ['GB/s', (r) => fmtG(r.gbps)],
    ['vs copy', (r) => (Number.isFinite(r.ratio) ? `${(r.ratio * 100).toFixed(0)}%` : '')],
    ['traffic', (r) => fmtX(r.traffic)],
    ['traffic GPU cl.', (r) => fmtX(r.trafficGpuClass)],
    ['compose ms', (r) => vms(r, 'compose')],
    ['compose vs copy', (r) => (v(r, 'compose')?.status === 'ok' ? `${(v(r, 'compose').ratio * 100).toFixed(0)}%` : '')],
    ['compose traffic', (r) => fmtX(v(r, 'compose')?.traffic)],
    // compose time / fused time: the fused op's speed-up over the composition.
    ['speed-up', (r) => (v(r, 'compose')?.status === 'ok' ? fmtX(v(r, 'compose').vsOurs) : '')],
    ['plain ms', (r) => vms(r, 'plain')],
    ['plain+res ms', (r) => vms(r, 'plain+res')],
    // fused time / plain+res time (same bulk bytes); fused GB/s / plain GB/s (each over its minimal bytes).
    ['fused/plain+res time', (r) => (v(r, 'plain+res')?.status === 'ok' ? fmtX(r.ms / v(r, 'plain+res').ms) : '')],
    ['fused/plain GB/s', (r) => (v(r, 'plain')?.status === 'ok' ? fmtX(r.gbps / v(r, 'plain').gbps) : '')],
  ];
  for (const p of peerNames) cols.push([`${PEER_LABEL[p] ?? p} ms (×ours)`, (r) => peerCell(r.peers?.[p])]);
  return cols;
}

/** The variants table as fixed-width text lines (rows without variants left out). */
export function variantText(rows, peerNames = []) {
  const rs = rows.filter((r) => r.variants && r.status === 'ok');
  if (!rs.length) return '';
  const cols = variantColumns(peerNames);
  const cells = [cols.map(([h]) => h), ...rs.map((r) => cols.map(([, f]) => String(f(r))))];
  const width = cols.map((_, i) => Math.max(...cells.map((row) => row[i].length)));
  const line = (row) => row.map((s, i) => (i < 2 ? s.padEnd(width[i]) : s.padStart(width[i]))).join('  ');
  return [line(cells[0]), '-'.repeat(line(cells[0]).length), ...cells.slice(1).map(line)].join('\n');
}

export function variantMarkdown(rows, peerNames = []) {
  const rs = rows.filter((r) => r.variants && r.status === 'ok');
  if (!rs.length) return '';
  return markdownTable(rs, peerNames, variantColumns(peerNames));
}
