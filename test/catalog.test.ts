/**
 * The shared op catalogue (test/catalog.js, also used by the benchmark, the e2e pages and the
 * demo) on small shapes (each op's `suite` examples there): every op and direction it describes,
 * built from its inputs and called through it, on the webgpu backend against the float64 CPU
 * reference, within the catalogue's own tolerance; the inputs it updates in place compared too.
 * Also: every op gives examples of every kind; the generator's variants.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../src/index.ts';
import { OPS } from '../src/op-table.ts';
import { CATALOG, EXAMPLE_KINDS, OP_NAMES, draw, examples, fillPairs, hashSeed, makeRng, mulberry32, numel, spec, tolerance, type Case, type Dir, type Tensors } from './catalog.js';
import { closeBackends, fmt, openBackends, parity, upload, type Backends, type HostIn } from './util/parity.ts';

let B: Backends;
beforeAll(async () => {
  B = await openBackends();
});
afterAll(() => closeBackends(B));

// Every op's `suite` examples in the catalogue, op by op.
const CASES = examples('suite');

const label = (c: Case, dir: Dir): string => `${c.op} ${dir} x ${fmt(c.shape)} ${c.dtype ?? 'float32'}${c.opts ? ` ${JSON.stringify(c.opts)}` : ''}`;

describe('the op catalogue: every op it describes, GPU vs the CPU reference', () => {
  it('describes every op', () => {
    // The same ops as the library's op table (src/op-table.ts), each with its backward there.
    const table = Object.keys(OPS);
    expect([...OP_NAMES].sort()).toEqual(table.filter((n) => !n.endsWith('Backward')).sort());
    expect(table.filter((n) => n.endsWith('Backward')).sort()).toEqual(OP_NAMES.map((n) => `${n}Backward`).sort());
    expect(new Set(CASES.map((c) => c.op))).toEqual(new Set(OP_NAMES));
  });

  it('gives every op examples of every kind, with distinct names', () => {
    for (const op of OP_NAMES) for (const kind of EXAMPLE_KINDS) expect(CATALOG[op].examples[kind].length, `${op}: examples.${kind}`).toBeGreaterThan(0);
    const parity = examples('parity').map((c) => c.name);
    expect(new Set(parity).size, 'parity example names').toBe(parity.length);
    for (const c of examples('parity')) expect(c.name.startsWith(`${c.op} `), `parity example ${c.name} of ${c.op}`).toBe(true);
  });

  for (const c of CASES) {
    for (const dir of c.dirs) {
      const name = label(c, dir);
      it(name, async () => {
        const s = spec(c, dir);
        const rng = makeRng(hashSeed(name));
        const inputs: Record<string, HostIn> = {};
        for (const i of s.inputs) inputs[i.name] = { data: draw(rng, numel(i.shape), i), shape: i.shape, dtype: i.dtype };
        if (s.derive) {
          // The backward's saved statistics, from the CPU reference's forward.
          const T = upload(B.cpu, inputs) as Tensors;
          const d = s.derive(B.cpu, T);
          for (const [k, t] of Object.entries(d)) inputs[k] = { data: await B.cpu.read(t!), shape: [...t!.shape], dtype: t!.dtype };
          for (const t of [...Object.values(T), ...Object.values(d)]) t?.destroy();
        }
        const ref = await parity(name, B.gpu, B.cpu, inputs, (n, t) => s.call(n, t as Record<string, Tensor>), {
          tol: tolerance(c.op, c.dtype ?? 'float32'),
          mutated: s.mutated,
        });
        expect(Object.keys(ref), `${name}: main output ${s.main}`).toContain(s.main);
        expect(CATALOG[c.op].main[dir]).toBe(s.main);
      });
    }
  }
});

describe('the seeded generator', () => {
  it("'stream' normals carry the spare sine across fills; 'pairs' draws whole pairs per fill", () => {
    const a = makeRng(7);
    const joined = [...a.fill(3), ...a.fill(3)];
    const b = makeRng(7).fill(6);
    expect(joined).toEqual([...b]);
    const p = makeRng(7, 'pairs');
    const u = mulberry32(7);
    expect([...p.fill(3)]).toEqual([...fillPairs(u, 3)]);
    expect([...p.fill(2)]).toEqual([...fillPairs(u, 2)]);
    expect(makeRng(7).uniform()).toBe(mulberry32(7)());
  });
});
