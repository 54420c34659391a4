/**
 * WGSL assembly: the shader files with their `//#if FLAG` sections resolved, the binding
 * declarations generated from one list, and the pipeline key made of compile-time choices only.
 */
import commonWGSL from '../../shaders/common.wgsl?raw';
import accumulateWGSL from '../../shaders/accumulate.wgsl?raw';
import reduceWGSL from '../../shaders/reduce.wgsl?raw';
import finalizeWGSL from '../../shaders/finalize.wgsl?raw';
import applyWGSL from '../../shaders/apply.wgsl?raw';
import copyWGSL from '../../shaders/copy.wgsl?raw';
import rowsWGSL from '../../shaders/rows.wgsl?raw';
import type { GpuContext, Kernel } from '../device/context.ts';
import { UniformLayout, type BindingDecl } from '../device/wgsl.ts';

/**
 * A shader's declarations, from its header: `//#entry name ROLE...` (an entry point and the
 * sections it compiles in), `//#section NAME...` (sections only entry points choose) and
 * `//#flag NAME description` (a flag the host may set).
 */
export interface ShaderDecls {
  entries: Map<string, readonly string[]>;
  sections: Set<string>;
  flags: Set<string>;
}

export function declarations(src: string): ShaderDecls {
  const entries = new Map<string, readonly string[]>();
  const sections = new Set<string>();
  const flags = new Set<string>();
  for (const line of src.split('\n')) {
    const t = line.trim();
    if (t.startsWith('//#entry ')) {
      const [name, ...roles] = t.slice(9).trim().split(/\s+/);
      entries.set(name!, roles);
    } else if (t.startsWith('//#section ')) t.slice(11).trim().split(/\s+/).forEach((n) => sections.add(n));
    else if (t.startsWith('//#flag ')) flags.add(t.slice(8).trim().split(/\s+/)[0]!);
  }
  return { entries, sections, flags };
}

/**
 * Keep the lines of `src` whose enclosing `//#if A || B` sections hold for `defined`
 * (with `//#else` and `//#endif`; sections nest). With `known`, a name in an `//#if` that is
 * not in it throws: a misspelt flag must not silently compile the `#else` branch.
 */
export function preprocess(src: string, defined: ReadonlySet<string>, known?: ReadonlySet<string>): string {
  const out: string[] = [];
  const stack: { parent: boolean; cond: boolean; inElse: boolean }[] = [];
  let active = true;
  for (const line of src.split('\n')) {
    const t = line.trim();
    if (t.startsWith('//#if ')) {
      const names = t.slice(6).split('||').map((f) => f.trim());
      for (const n of names) if (known && !known.has(n)) throw new Error(`preprocess: //#if ${n}: not a declared flag, section or entry point`);
      const cond = names.some((f) => defined.has(f));
      stack.push({ parent: active, cond, inElse: false });
      active = active && cond;
    } else if (t === '//#else') {
      const top = stack[stack.length - 1];
      if (!top || top.inElse) throw new Error('preprocess: stray //#else');
      top.inElse = true;
      active = top.parent && !top.cond;
    } else if (t === '//#endif') {
      const top = stack.pop();
      if (!top) throw new Error('preprocess: stray //#endif');
      active = top.parent;
    } else if (active) out.push(line);
  }
  if (stack.length) throw new Error('preprocess: unterminated //#if');
  return out.join('\n');
}

/** One uniform block for every kernel family; each kernel reads the fields it needs. */
export const PARAMS = new UniformLayout({
  n: 'u32',
  outer: 'u32',
  D: 'u32',
  inner: 'u32',
  P: 'u32',
  L: 'u32',
  sDiv: 'u32',
  gDiv: 'u32',
  sMod: 'u32',
  aDiv: 'u32',
  aMod: 'u32',
  jStride: 'u32',
  cStride: 'u32',
  G: 'u32',
  Cg: 'u32',
  C: 'u32',
  eps: 'f32',
  momentum: 'f32',
  // Chunks per run (RUNS: chunks never cross a contiguous run of `inner` elements).
  Pi: 'u32',
  // Windowed dispatches (see kernels/window.ts): invocations [t0, t1) of the whole index space,
  // and the first u32 word of each binding's bound range.
  // First partial merged by finalize (blocks of partials added up with ACCUM).
  c0: 'u32',
  t0: 'u32',
  t1: 'u32',
  e0: 'u32',
  e1: 'u32',
  w1: 'u32',
  w2: 'u32',
  w3: 'u32',
  w4: 'u32',
  w5: 'u32',
  w6: 'u32',
  w7: 'u32',
  w8: 'u32',
});
export type ParamValues = Partial<Record<(typeof PARAMS.fields)[number][0], number>>;

/** Neutral values (divisors 1) so that fields a kernel does not use pack cleanly. */
export function params(p: ParamValues): Record<string, number> {
  return {
    n: 0, outer: 1, D: 1, inner: 1, P: 1, L: 1, sDiv: 1, gDiv: 1, sMod: 1, aDiv: 1, aMod: 1,
    jStride: 1, cStride: 1, G: 1, Cg: 1, C: 1, eps: 0, momentum: 0,
    Pi: 1, c0: 0, t0: 0, t1: 0, e0: 0, e1: 0, w1: 0, w2: 0, w3: 0, w4: 0, w5: 0, w6: 0, w7: 0, w8: 0,
    ...p,
  };
}

export type Family = 'reduce' | 'finalize' | 'apply' | 'copy' | 'rows';

/** Each family's own file, and the files compiled in front of it. */
const OWN: Record<Family, string> = { reduce: reduceWGSL, finalize: finalizeWGSL, apply: applyWGSL, copy: copyWGSL, rows: rowsWGSL };
export const FILES: Record<Family, string> = {
  reduce: commonWGSL + accumulateWGSL + reduceWGSL,
  finalize: commonWGSL + finalizeWGSL,
  // The row-fused entry points use the accumulators too.
  apply: commonWGSL + accumulateWGSL + applyWGSL,
  copy: copyWGSL,
  // One workgroup per row (GPU adapters); its careful per-row fallback uses the accumulators.
  rows: commonWGSL + accumulateWGSL + rowsWGSL,
};

/** Every entry point: its family (the file that declares it) and the sections it compiles in. */
const ENTRIES = new Map<string, { family: Family; roles: readonly string[] }>();
/** Per family: the flags its files declare, and every name an `//#if` there may use. */
const FLAGS = new Map<Family, { flags: Set<string>; known: Set<string> }>();
for (const family of Object.keys(FILES) as Family[]) {
  for (const [name, roles] of declarations(OWN[family]).entries) ENTRIES.set(name, { family, roles });
  const d = declarations(FILES[family]);
  const known = new Set([...d.flags, ...d.sections]);
  for (const [name, roles] of d.entries) [name, ...roles].forEach((r) => known.add(r));
  FLAGS.set(family, { flags: d.flags, known });
}

/** An entry point's declaration; throws on a name no shader declares. */
export function entryPoint(name: string): { family: Family; roles: readonly string[] } {
  const e = ENTRIES.get(name);
  if (!e) throw new Error(`kernel: no shader declares the entry point ${name}`);
  return e;
}

/** Whether `name` is a flag of step `s` or a section its entry point compiles in. */
export function has(s: { entry: string; flags: readonly string[] }, name: string): boolean {
  return s.flags.includes(name) || entryPoint(s.entry).roles.includes(name);
}

/**
 * The WGSL of entry point `entry` with `flags`: its family's files with the sections of the
 * entry's roles, the entry itself and the flags kept. A flag the files do not declare throws.
 */
export function shaderSource(entry: string, flags: readonly string[]): string {
  const { family, roles } = entryPoint(entry);
  const f = FLAGS.get(family)!;
  for (const x of flags) if (!f.flags.has(x)) throw new Error(`kernel ${entry}: unknown flag ${x} (declared: ${[...f.flags].sort().join(', ')})`);
  return preprocess(FILES[family], new Set([...flags, ...roles, entry]), f.known);
}

/** Per-kernel choices besides the flags: the workgroup size (default WG) and WGSL extensions. */
export interface KernelOptions {
  workgroupSize?: number;
  /** `enable` directives, e.g. 'subgroups' (the device must have the feature). */
  enables?: readonly string[];
}

/** Workgroup size, shared by the WGSL (override constant) and the dispatch. */
export const WG = 64;

/** The pipeline of entry point `entry` with `flags` and `bindings` (cached by the context). */
export function kernel(ctx: GpuContext, entry: string, flags: readonly string[], bindings: readonly BindingDecl[], opts: KernelOptions = {}): Kernel {
  const fl = [...new Set(flags)].sort();
  const wg = opts.workgroupSize ?? WG;
  const en = [...(opts.enables ?? [])].sort();
  const key = `${entry}|${fl.join(',')}|${bindings.map((b) => `${b.name}:${b.vec4 ? 'vec4' : b.dtype}:${b.access}`).join(',')}|wg${wg}|${en.join(',')}`;
  return ctx.kernel({
    key,
    label: `webgpu-norm.${entry}[${fl.join(',')}]`,
    bindings,
    uniforms: PARAMS,
    body: () => shaderSource(entry, fl),
    workgroupSize: wg,
    aligned: fl.includes('ALIGNED'),
    window: fl.includes('WINDOW'),
    entryPoint: entry,
    enables: en,
  });
}
