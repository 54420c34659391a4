/**
 * WGSL assembly: the shader files with their `//#if FLAG` sections resolved, the binding
 * declarations generated from one list, and the pipeline key made of compile-time choices only.
 */
import commonWGSL from '../../shaders/common.wgsl?raw';
import reduceWGSL from '../../shaders/reduce.wgsl?raw';
import finalizeWGSL from '../../shaders/finalize.wgsl?raw';
import applyWGSL from '../../shaders/apply.wgsl?raw';
import copyWGSL from '../../shaders/copy.wgsl?raw';
import rowsWGSL from '../../shaders/rows.wgsl?raw';
import type { GpuContext, Kernel } from '../device/context.ts';
import { UniformLayout, type BindingDecl } from '../device/wgsl.ts';

/**
 * Keep the lines of `src` whose enclosing `//#if A || B` sections hold for `flags`
 * (with `//#else` and `//#endif`; sections nest).
 */
export function preprocess(src: string, flags: ReadonlySet<string>): string {
  const out: string[] = [];
  const stack: { parent: boolean; cond: boolean; inElse: boolean }[] = [];
  let active = true;
  for (const line of src.split('\n')) {
    const t = line.trim();
    if (t.startsWith('//#if ')) {
      const cond = t.slice(6).split('||').some((f) => flags.has(f.trim()));
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

const FILES: Record<Family, string> = {
  reduce: commonWGSL + reduceWGSL,
  finalize: commonWGSL + finalizeWGSL,
  // The row-fused entry points reuse the accumulators of reduce.wgsl.
  apply: commonWGSL + reduceWGSL + applyWGSL,
  copy: copyWGSL,
  // One workgroup per row (GPU adapters); its careful per-row fallback reuses reduce.wgsl.
  rows: commonWGSL + reduceWGSL + rowsWGSL,
};

/** Entry point of each family's file (one compiled in per pipeline; rows.wgsl's backward: ROWS_BWD). */
const ENTRY: Partial<Record<Family, string>> = { rows: 'norm_rows' };

/** Per-kernel choices besides the flags: the workgroup size (default WG) and WGSL extensions. */
export interface KernelOptions {
  workgroupSize?: number;
  /** `enable` directives, e.g. 'subgroups' (the device must have the feature). */
  enables?: readonly string[];
}

/** Workgroup size, shared by the WGSL (override constant) and the dispatch. */
export const WG = 64;

export function kernel(ctx: GpuContext, family: Family, flags: readonly string[], bindings: readonly BindingDecl[], opts: KernelOptions = {}): Kernel {
  const fl = [...new Set(flags)].sort();
  const wg = opts.workgroupSize ?? WG;
  const en = [...(opts.enables ?? [])].sort();
  const key = `${family}|${fl.join(',')}|${bindings.map((b) => `${b.name}:${b.vec4 ? 'vec4' : b.dtype}:${b.access}`).join(',')}|wg${wg}|${en.join(',')}`;
  return ctx.kernel({
    key,
    label: `webgpu-norm.${family}[${fl.join(',')}]`,
    bindings,
    uniforms: PARAMS,
    body: () => preprocess(FILES[family], new Set(fl)),
    workgroupSize: wg,
    aligned: fl.includes('ALIGNED'),
    window: fl.includes('WINDOW'),
    entryPoint: fl.includes('ROWS_BWD') ? 'norm_rows_bwd' : (ENTRY[family] ?? 'main'),
    enables: en,
  });
}
