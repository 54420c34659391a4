/** The source tree's shape: no import cycles among src/ modules. */
import { expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

it('src/ has no import cycles (type-only imports included)', () => {
  const graph = new Map<string, string[]>();
  for (const f of tsFiles('src')) {
    const deps = [...readFileSync(f, 'utf8').matchAll(/from ['"](\.[^'"]+\.ts)['"]/g)].map((m) => normalize(join(dirname(f), m[1]!)));
    graph.set(f, deps);
  }
  const cycles: string[] = [];
  const done = new Set<string>();
  const stack: string[] = [];
  const visit = (u: string): void => {
    if (stack.includes(u)) {
      cycles.push([...stack.slice(stack.indexOf(u)), u].join(' -> '));
      return;
    }
    if (done.has(u)) return;
    stack.push(u);
    for (const v of graph.get(u) ?? []) visit(v);
    stack.pop();
    done.add(u);
  };
  for (const f of graph.keys()) visit(f);
  expect(graph.size).toBeGreaterThan(20);
  expect(cycles).toEqual([]);
});
