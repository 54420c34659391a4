/**
 * The benchmark's traffic columns: runCases (bench/core.mjs) on quick cases records, per row, the
 * bytes the op's kernels move over the minimal bytes and the dispatches per op (from
 * norms.profile() of one call), and the text table prints both next to GB/s.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as lib from '../src/index.ts';
// @ts-expect-error plain JS without declarations
import { runCases } from '../bench/core.mjs';
// @ts-expect-error plain JS without declarations
import { quickCases } from '../bench/cases.mjs';
// @ts-expect-error plain JS without declarations
import { textTable } from '../bench/format.mjs';
import { gpuNorms } from './util/gpu.ts';

let norms: lib.Norms;
let cpu: lib.Norms;
beforeAll(async () => {
  norms = await gpuNorms({ poisonOutputs: false, adapterClass: 'cpu' });
  cpu = await lib.createNorms({ backend: 'cpu' });
});
afterAll(() => {
  norms?.destroy();
  cpu?.destroy();
});

describe('bench traffic columns', () => {
  it('traffic ratio and dispatches per op for layerNorm forward and a windowed case', async () => {
    const all = (quickCases as () => unknown)() as { id: string; op: string; dir: string; bindingBytes?: number; opts: { residual?: boolean } }[];
    const pick = [
      all.find((c) => c.op === 'layerNorm' && c.dir === 'fwd' && !c.bindingBytes && !c.opts.residual)!,
      all.find((c) => c.bindingBytes)!,
    ];
    const rows = (await (runCases as (c: unknown, o: unknown) => Promise<unknown>)(pick, { lib, norms, cpu, budgetS: 0.05, peers: [] })) as { status: string; traffic: number; dispatches: number; error?: string }[];
    for (const r of rows) expect(r.status, r.error).toBe('ok');
    // CPU-class layer norm forward: one row-fused dispatch, x read once and y written once
    // (plus mean and rstd).
    expect(rows[0]!.dispatches).toBe(1);
    expect(rows[0]!.traffic).toBeGreaterThanOrEqual(1);
    expect(rows[0]!.traffic).toBeLessThan(1.1);
    expect(rows[1]!.dispatches).toBeGreaterThan(1);
    expect(rows[1]!.traffic).toBeGreaterThan(1);
    const t = (textTable as (p: string[]) => { header(): string; line(r: unknown): string })([]);
    expect(t.header()).toMatch(/GB\/s.*traffic\s+disp\/op/);
    expect(t.line(rows[0])).toMatch(/1\.0\d×\s+1\s/);
  });
});
