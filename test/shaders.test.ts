/**
 * Shader sources: every entry point declared in a shader header preprocesses with every flag its
 * files declare, a flag the files do not declare is an error, and so is a misspelt name in an
 * `//#if` (a typo must not silently compile the `#else` branch).
 */
import { describe, expect, it } from 'vitest';
import { declarations, entryPoint, FILES as COMPOSED, OWN as FILES, preprocess, shaderSource } from '../src/kernels/source.ts';
import { kernelMemory } from '../src/kernels/memory.ts';
import { mergesPartials } from '../src/kernels/settle.ts';

describe('shader declarations', () => {
  const entries = Object.entries(FILES).flatMap(([family, src]) => [...declarations(src).entries.keys()].map((e) => [family, e] as const));

  it('every scaling by a power of two goes through ldexp_wide: WGSL lets ldexp return 0 for e2 <= -127 and an indeterminate value for e2 > 128', () => {
    for (const [family, src] of Object.entries(COMPOSED)) {
      const code = src.split('\n').filter((l) => !l.trim().startsWith('//')).join('\n');
      const def = code.indexOf('fn ldexp_wide(');
      if (def < 0) {
        // (a family without common.wgsl: no ldexp at all)
        expect(code.match(/\bldexp\(/g) ?? [], family).toEqual([]);
        continue;
      }
      const body = code.slice(def, code.indexOf('\n}', def));
      // Its three steps, each with an exponent clamped to [-126, 126] (the third: |e| <= 378).
      expect(body).toMatch(/clamp\(e, -126, 126\)/);
      expect(body).toMatch(/clamp\(e - a, -126, 126\)/);
      const outside = code.slice(0, def) + code.slice(def + body.length);
      expect(outside.match(/\bldexp\(/g) ?? [], `${family}: ldexp( outside ldexp_wide`).toEqual([]);
    }
  });

  it('every family declares its entry points, and each is a @compute function of that name', () => {
    expect(entries.length).toBeGreaterThanOrEqual(25);
    for (const [family, e] of entries) {
      expect(entryPoint(e).family).toBe(family);
      const src = shaderSource(e, []);
      expect(src, e).toMatch(new RegExp(`@compute[^\\n]*\\n\\s*fn ${e}\\(|@compute[^\\n]*fn ${e}\\(`));
      // Only that entry point is compiled in.
      expect((src.match(/@compute/g) ?? []).length, e).toBe(1);
    }
  });

  it('an entry point is declared on its one line: every line names a memory model that exists; the line parses into its roles and memory=NAME', () => {
    for (const [, e] of entries) expect(() => kernelMemory(e), e).not.toThrow();
    const d = declarations('//#entry one ROLE_A ROLE_B memory=lanes\n//#entry two ROLE_C\n');
    expect(d.entries.get('one')).toEqual(['ROLE_A', 'ROLE_B']);
    expect(d.memory.get('one')).toBe('lanes');
    expect(d.memory.has('two')).toBe(false);
  });

  it('the finalize steps split when too wide are the entry points whose text merges partials in one invocation', () => {
    // Read from the shader text (settle.ts keeps no list): the per-group finalize kernels merge
    // their partials with merged(); the merges of blocks of partials and the cast do not.
    const merging = entries.filter(([, e]) => mergesPartials(e)).map(([f, e]) => `${f}:${e}`);
    expect(merging.length).toBeGreaterThanOrEqual(5);
    for (const m of merging) expect(m).toMatch(/^finalize:/);
    for (const e of ['finalize_mean_rstd', 'finalize_rms', 'grad_coefficients']) expect(mergesPartials(e), e).toBe(true);
    for (const e of ['merge_welford', 'merge_sumsq', 'cast_half', 'normalize_elements']) expect(mergesPartials(e), e).toBe(false);
  });

  it('every entry point preprocesses with each declared flag of its files', () => {
    for (const [family, e] of entries) {
      for (const f of declarations(COMPOSED[family as keyof typeof COMPOSED]).flags) expect(() => shaderSource(e, [f]), `${e} ${f}`).not.toThrow();
    }
  });

  it('a flag no file of the kernel declares throws, naming it', () => {
    expect(() => shaderSource('normalize_elements', ['HAS_WW'])).toThrow(/unknown flag HAS_WW/);
    // Declared, but by another family's file: not a flag of this kernel.
    expect(() => shaderSource('finalize_mean_rstd', ['SUBGROUPS'])).toThrow(/unknown flag SUBGROUPS/);
    // A section (role) is chosen by the entry point, never passed as a flag.
    expect(() => shaderSource('normalize_elements', ['WELFORD'])).toThrow(/unknown flag WELFORD/);
    expect(() => shaderSource('no_such_entry', [])).toThrow(/no shader declares the entry point no_such_entry/);
  });

  it('a misspelt name in an //#if is an error when names are checked', () => {
    const src = ['//#if HAS_W', 'a', '//#else', 'b', '//#endif', '//#if HAS_WW', 'c', '//#endif'].join('\n');
    expect(preprocess(src, new Set(['HAS_W']))).toBe('a');
    expect(() => preprocess(src, new Set(['HAS_W']), new Set(['HAS_W']))).toThrow(/\/\/#if HAS_WW: not a declared flag/);
  });
});
