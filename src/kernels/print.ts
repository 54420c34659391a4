/**
 * The WGSL of one entry point as the library compiles it, for reading (`npm run wgsl -- <entry>
 * [FLAG ...]`) and for the snapshot tests: the entry's sections with the given flags, the uniform
 * block of its family, and the binding declarations with their accessors. The bindings are the
 * ones its text calls (`NAME_ld*` reads; `NAME_st*` writes), float32 unless named in `float16`.
 */
import { kernelCode } from '../device/pipelines.ts';
import type { BindingDecl, HalfStorage } from '../device/wgsl.ts';
import { LAYOUTS, entryPoint, shaderSource } from './source.ts';

export interface PrintOptions {
  /** Bindings stored as float16. */
  float16?: readonly string[];
  /** How float16 bindings are accessed (default 'packed'). */
  half?: HalfStorage;
}

/** The bindings a kernel body uses, in order of first use. */
export function bindingsOf(body: string, float16: readonly string[] = []): BindingDecl[] {
  const seen = new Map<string, boolean>();
  // Accessor calls: NAME_ld( NAME_ld4( NAME_st( NAME_st2( NAME_st4( NAME_w( (not the definitions of wrappers: `fn NAME_...`).
  const defined = new Set([...body.matchAll(/fn ([A-Z][A-Z0-9]*)_(?:ld|st)[24]?\(/g)].map((m) => m[1]!));
  for (const m of body.matchAll(/\b([A-Z][A-Z0-9]*)_(ld|st|w)[24]?\(/g)) {
    const name = m[1]!;
    if (defined.has(name)) continue;
    seen.set(name, (seen.get(name) ?? false) || m[2] === 'st');
  }
  return [...seen].map(([name, rw]) => ({ name, access: rw ? 'read_write' : 'read', dtype: float16.includes(name) ? 'float16' : 'float32' }));
}

/** The compiled WGSL of `entry` with `flags` (runs of blank lines, left where sections were dropped, shown as one). */
export function kernelWGSL(entry: string, flags: readonly string[] = [], opts: PrintOptions = {}): string {
  const fl = [...new Set(flags)].sort();
  const body = shaderSource(entry, fl);
  const bindings = bindingsOf(body, opts.float16);
  const half = bindings.some((b) => b.dtype === 'float16') ? (opts.half ?? 'packed') : 'packed';
  const code = kernelCode({
    enables: half === 'native' ? ['f16'] : [],
    uniforms: LAYOUTS[entryPoint(entry).family],
    bindings,
    aligned: fl.includes('ALIGNED'),
    window: fl.includes('WINDOW'),
    half,
    body: () => body,
  });
  return code.replace(/\n[ \t]*(\n[ \t]*)+\n/g, '\n\n').trimEnd() + '\n';
}
