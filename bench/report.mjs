// The HTML report of a browser run: one self-contained file (inline CSS and SVG, no scripts, no
// external resources) that opens in any browser and screenshots well.
import { caseName, columns, notes, PEER_LABEL, fmtG, variantColumns } from './format.mjs';

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const COLORS = { ours: '#2f6fdb', copy: '#b9c0cc', ort: '#e8871e', tfjs: '#3a9e5a' };
const LABEL = { ours: 'webgpu-norm', copy: 'vec4 copy kernel', ...PEER_LABEL };

function rowLabel(r) {
  return `${caseName(r)} [${r.shape.join(',')}]${r.dtype === 'float16' ? ' f16' : ''}`;
}

/**
 * Horizontal grouped bar chart, one figure (and one PNG) per chart, sized to stay readable when a
 * README scales it to ~900 px. groups: [{ label, bars: [{ key, value, text }] }]; keys pick the
 * colours. refLine: an x value drawn as a dashed line (100% of copy). Ticks fall on round values.
 */
function barChart({ id, title, subtitle = '', groups, keys, unit, refLine = null }) {
  const W = 1000;
  const left = 300;
  const right = 190;
  const barH = 15;
  const gap = 2;
  const groupGap = 9;
  const top = 26;
  const plotW = W - left - right;
  const values = groups.flatMap((g) => g.bars.map((b) => b.value)).filter((v) => Number.isFinite(v));
  const { step, max } = niceAxis(Math.max(...values, refLine ?? 0));
  const x = (v) => left + (Math.min(v, max) / max) * plotW;
  let y = top;
  const parts = [];
  for (const g of groups) {
    const h = Math.max(1, g.bars.length) * (barH + gap) - gap;
    parts.push(`<text x="${left - 8}" y="${y + h / 2 + 4.5}" text-anchor="end" class="lbl">${esc(g.label)}</text>`);
    for (const b of g.bars) {
      if (Number.isFinite(b.value)) {
        const w = Math.max(1, x(b.value) - left);
        parts.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${COLORS[b.key] ?? '#888'}"><title>${esc(`${LABEL[b.key] ?? b.key}: ${b.text}`)}</title></rect>`);
        parts.push(`<text x="${(left + w + 4).toFixed(1)}" y="${y + barH - 3}" class="val">${esc(b.text)}</text>`);
      } else {
        parts.push(`<text x="${left + 4}" y="${y + barH - 3}" class="na">${esc(`${LABEL[b.key] ?? b.key}: ${b.text ?? '—'}`)}</text>`);
      }
      y += barH + gap;
    }
    y += groupGap;
  }
  const H = y + 22;
  const ticks = [];
  for (let i = 0; i * step <= max * (1 + 1e-9); i++) {
    const v = i * step;
    const tx = x(v).toFixed(1);
    ticks.push(`<line x1="${tx}" y1="${top - 6}" x2="${tx}" y2="${H - 20}" class="grid"/>`);
    ticks.push(`<text x="${tx}" y="${H - 5}" text-anchor="middle" class="tick">${esc(fmtTick(v, step))}${unit === '%' ? '%' : ''}</text>`);
  }
  const ref = refLine !== null ? `<line x1="${x(refLine)}" y1="${top - 6}" x2="${x(refLine)}" y2="${H - 20}" class="ref"/><text x="${x(refLine) + 4}" y="${top - 10}" class="reflbl">copy kernel = 100%</text>` : '';
  return `<figure id="${id}"><figcaption>${esc(title)}${subtitle ? `<br><span class="sub">${esc(subtitle)}</span>` : ''}</figcaption>${legend(keys)}<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}">
${ticks.join('\n')}
${ref}
${parts.join('\n')}
</svg></figure>`;
}

/** An axis from 0 with 3 to 6 ticks at 1, 2, 2.5 or 5 times a power of ten. */
export function niceAxis(maxValue) {
  const target = maxValue > 0 && Number.isFinite(maxValue) ? maxValue : 1;
  const raw = target / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => Number((m * p).toPrecision(6))).find((s) => s >= raw * (1 - 1e-9));
  return { step, max: Math.ceil(target / step - 1e-9) * step };
}

/** A tick label with the decimals the step needs and no trailing zeros (0, 0.25, 0.5, 1, 20...). */
export function fmtTick(v, step) {
  let d = 0;
  while (d < 12 && Math.abs(Math.round(step * 10 ** d) - step * 10 ** d) > 1e-6 * 10 ** d) d++;
  return String(Number(v.toFixed(d)));
}

function legend(keys) {
  return `<div class="legend">${keys.map((k) => `<span><i style="background:${COLORS[k]}"></i>${esc(LABEL[k] ?? k)}</span>`).join('')}</div>`;
}

const peerText = (p) => (p?.status === 'ok' ? null : p ? p.status === 'FAIL' ? 'wrong result' : '—' : null);

export function renderHtml(result) {
  const rows = result.rows;
  const env = result.environment;
  const peerNames = result.flags.peers ? ['ort', 'tfjs'] : [];
  const ok = rows.filter((r) => r.status === 'ok');

  // Rows that failed the check or errored stay in the charts as a labelled gap, never a bar.
  const broken = (r) => ({ label: rowLabel(r), bars: [{ key: 'ours', value: NaN, text: r.status === 'FAIL' ? 'FAIL: wrong result, not timed' : `error: ${String(r.error ?? '').split('\n')[0].slice(0, 110)}` }] });
  const ratioGroups = rows.map((r) => (r.status !== 'ok' ? broken(r) : { label: rowLabel(r), bars: [{ key: 'ours', value: r.ratio * 100, text: `${(r.ratio * 100).toFixed(0)}%` }] }));
  const gbGroups = rows.map((r) =>
    r.status !== 'ok'
      ? broken(r)
      : {
          label: rowLabel(r),
          bars: [
            { key: 'ours', value: r.gbps, text: `${fmtG(r.gbps)} GB/s` },
            { key: 'copy', value: r.copyGbps, text: `copy ${fmtG(r.copyGbps)} GB/s` },
          ],
        },
  );
  // Peers: only the cases a peer has an op for (forward passes), ours first.
  const peerGroups = rows
    .filter((r) => r.status === 'ok' && peerNames.some((p) => r.peers?.[p]))
    .map((r) => {
      const bars = [{ key: 'ours', value: r.gbps, text: `${fmtG(r.gbps)} GB/s` }];
      for (const p of peerNames) {
        const v = r.peers?.[p];
        if (!v) continue;
        bars.push({ key: p, value: v.status === 'ok' ? v.gbps : NaN, text: v.status === 'ok' ? `${fmtG(v.gbps)} GB/s (${v.vsOurs >= 10 ? v.vsOurs.toFixed(0) : v.vsOurs.toFixed(1)}× our time)` : peerText(v) });
      }
      return { label: rowLabel(r), bars };
    });
  const a = env.adapter;
  const where = `${`${a.vendor} ${a.architecture}`.trim() || 'unknown adapter'}, ${env.browser ?? ''}, ${String(result.date).slice(0, 10)}`;
  const charts = [
    barChart({ id: 'vs-copy', title: "Fraction of the copy kernel's bandwidth, % (higher is better)", subtitle: where, groups: ratioGroups, keys: ['ours'], unit: '%', refLine: 100 }),
    barChart({ id: 'bandwidth', title: 'Effective bandwidth, GB/s (higher is better)', subtitle: where, groups: gbGroups, keys: ['ours', 'copy'], unit: 'GB/s' }),
    ...(peerGroups.length ? [barChart({ id: 'peers', title: 'Against the peers: effective bandwidth, GB/s (higher is better)', subtitle: where, groups: peerGroups, keys: ['ours', ...peerNames], unit: 'GB/s' })] : []),
  ];

  const cols = columns(peerNames);
  const table = `<table><thead><tr>${cols.map(([h]) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>
${rows.map((r) => `<tr class="${r.status === 'ok' ? '' : 'bad'}">${cols.map(([, f], i) => `<td${i > 2 ? ' class="num"' : ''}>${esc(f(r))}</td>`).join('')}</tr>`).join('\n')}
</tbody></table>`;
  const vrows = rows.filter((r) => r.variants && r.status === 'ok');
  const vcols = variantColumns(peerNames.filter((p) => p === 'ort'));
  const vtable = vrows.length
    ? `<h2 style="font-size:16px;margin-top:22px">Fused vs the unfused composition and the plain layer norm</h2>
<p class="small">Same device, timed round-robin with the fused op and the copy kernel. speed-up = composition time / fused time; traffic = bytes the kernels move / the row's minimal bytes (GPU cl.: the GPU kernel class's, counted without running it).</p>
<table><thead><tr>${vcols.map(([h]) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>
${vrows.map((r) => `<tr>${vcols.map(([, f], i) => `<td${i > 1 ? ' class="num"' : ''}>${esc(f(r))}</td>`).join('')}</tr>`).join('\n')}
</tbody></table>`
    : '';
  const n = notes(rows);
  const peers = Object.entries(result.peers ?? {})
    .map(([k, p]) => `${esc(p.label)} ${esc(p.version ?? '')}${p.status !== 'ok' ? ` (${esc(p.status)}: ${esc(p.reason ?? '')})` : ''}`)
    .join('; ');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>webgpu-norm benchmark — ${esc(a.architecture || a.vendor)} — ${esc(result.date)}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px 32px; color: #1d2330; background: #fff; max-width: 1260px; }
h1 { font-size: 22px; margin: 0 0 4px; }
.meta { color: #4a5161; margin: 0 0 14px; }
.meta b { color: #1d2330; font-weight: 600; }
figure { margin: 18px 0 6px; padding: 10px 12px 6px; width: fit-content; background: #fff; }
figcaption { font-weight: 600; font-size: 17px; margin-bottom: 4px; }
figcaption .sub { font-weight: 400; font-size: 13px; color: #4a5161; }
svg text { font: 13px system-ui, sans-serif; fill: #1d2330; }
svg .lbl { font-size: 13px; }
svg .val { fill: #39404d; font-size: 12px; }
svg .na { fill: #8a90a0; font-style: italic; font-size: 12px; }
svg .tick { fill: #6b7280; }
svg .grid { stroke: #eceef2; }
svg .ref { stroke: #c0392b; stroke-dasharray: 4 3; }
svg .reflbl { fill: #c0392b; font-size: 12px; }
.legend { margin: 2px 0 6px; }
.legend span { margin-right: 18px; font-size: 13px; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 6px; vertical-align: -1px; border-radius: 2px; }
table { border-collapse: collapse; font-size: 12.5px; margin-top: 8px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e3e6eb; text-align: left; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.bad td { background: #fdecea; }
.notes { font-size: 12.5px; color: #4a5161; }
.small { font-size: 12.5px; color: #4a5161; }
</style></head><body>
<h1>webgpu-norm benchmark</h1>
<p class="meta"><b>Adapter</b> ${esc(`${a.vendor} ${a.architecture} ${a.device} ${a.description}`.trim())} · <b>Browser</b> ${esc(env.browser ?? env.userAgent)} · <b>Date</b> ${esc(result.date)} · <b>Cases</b> ${rows.length} (${ok.length} ok) in ${Math.round(result.seconds)} s · <b>Timing</b> ${esc(result.timing)} (${result.flags.budget} s budget per case)<br>
<b>Peers</b> ${peers || 'none'} · <b>Features</b> ${esc(env.features.join(', '))}</p>
<p class="small">Effective bandwidth = minimal bytes (forward 2·numel·bytes, backward 3·numel·bytes, fused residual 4·numel·bytes) / median time per op. The vec4 copy kernel copies numel·bytes (read + write counted), in batches interleaved with ours in the same run. Peers run the same computation on the same GPUDevice with the same inputs, are checked against the same CPU reference, and are timed the same way; “× our time” = peer time / our time. Time per op: median over batches of k enqueued ops, ${result.timing === 'timestamp' ? 'GPU timestamps around each batch' : 'wall time around each batch'}.</p>
${charts.join('\n')}
<h2 style="font-size:16px;margin-top:22px">All figures</h2>
${table}
${vtable}
${n.length ? `<h2 style="font-size:16px;margin-top:18px">Notes</h2><ul class="notes">${n.map((x) => `<li>${esc(x)}</li>`).join('')}</ul>` : ''}
</body></html>
`;
}
