/**
 * WGSL assembly: the shader files with their `//#if FLAG` sections resolved, the binding
 * declarations generated from one list, and the pipeline key made of compile-time choices only.
 */
import type { GpuContext, Kernel } from '../device/context.ts';
import { UniformLayout, hasHalves, type BindingDecl } from '../device/wgsl.ts';

/**
 * A shader's declarations, from its header: `//#entry name ROLE... memory=MODEL` (an entry point,
 * the sections it compiles in and how its invocations touch memory: a descriptor of
 * kernels/memory.ts), `//#section NAME...` (sections only entry points choose) and
 * `//#flag NAME description` (a flag the host may set).
 */
export interface ShaderDecls {
  entries: Map<string, readonly string[]>;
  /** Each entry point's memory model (`memory=NAME` on its line: a descriptor of kernels/memory.ts). */
  memory: Map<string, string>;
  sections: Set<string>;
  flags: Set<string>;
}

export function declarations(src: string): ShaderDecls {
  const entries = new Map<string, readonly string[]>();
  const memory = new Map<string, string>();
  const sections = new Set<string>();
  const flags = new Set<string>();
  for (const line of src.split('\n')) {
    const t = line.trim();
    if (t.startsWith('//#entry ')) {
      const [name, ...words] = t.slice(9).trim().split(/\s+/);
      entries.set(name!, words.filter((w) => !w.startsWith('memory=')));
      const m = words.find((w) => w.startsWith('memory='));
      if (m) memory.set(name!, m.slice(7));
    } else if (t.startsWith('//#section ')) t.slice(11).trim().split(/\s+/).forEach((n) => sections.add(n));
    else if (t.startsWith('//#flag ')) flags.add(t.slice(8).trim().split(/\s+/)[0]!);
  }
  return { entries, memory, sections, flags };
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

/**
 * The uniforms of each kernel family: one struct per family (`P` in its WGSL), declared here
 * once and packed from this declaration. Names are per meaning; a field a family's kernels do
 * not read is packed with a neutral value (divisors 1).
 */
const WINDOW_FIELDS = {
  // Windowed dispatches (kernels/window.ts): invocations [invocationBegin, invocationEnd) of
  // the whole index space (elementwise kernels planned per element: elements [elementBegin,
  // elementEnd)), and the first u32 word of each binding's bound range (wordOffset<k>).
  invocationBegin: 'u32',
  invocationEnd: 'u32',
  elementBegin: 'u32',
  elementEnd: 'u32',
  wordOffset1: 'u32',
  wordOffset2: 'u32',
  wordOffset3: 'u32',
  wordOffset4: 'u32',
  wordOffset5: 'u32',
  wordOffset6: 'u32',
  wordOffset7: 'u32',
  wordOffset8: 'u32',
  // (Modulated kernels bind up to 12 buffers.)
  wordOffset9: 'u32',
  wordOffset10: 'u32',
  wordOffset11: 'u32',
  wordOffset12: 'u32',
} as const;

/**
 * Every family that compiles common.wgsl: opaqueZero is always 0, a value no shader compiler can
 * know, so hold() (common.wgsl) keeps an evaluation order that WGSL would let it rewrite.
 */
const ORDER_FIELDS = { opaqueZero: 'u32' } as const;

/**
 * A grouped reduction (accumulate.wgsl), a Grouping of src/grouping.ts: group j < groups is the
 * index set e = (o*groups + j)*runLength + i for o < runs, i < runLength (outer: blocks of
 * groups, where a kernel takes them: the Lp lanes), split into `chunks` chunks of
 * chunkLength elements (chunksPerRun per run with RUNS); the saved statistics of
 * group j are at j / groupsPerStat.
 */
const GROUP_FIELDS = {
  outer: 'u32',
  groups: 'u32',
  runs: 'u32',
  runLength: 'u32',
  chunks: 'u32',
  chunkLength: 'u32',
  chunksPerRun: 'u32',
  groupsPerStat: 'u32',
  eps: 'f32',
} as const;

/**
 * Modulation (modulate.wgsl): element e of x uses element
 * ((e / modInner / modDiv) % modMod) * modInner + e % modInner of scale, shift and gate;
 * y = n * (scaleOffset + scale) + shift.
 */
const MOD_FIELDS = {
  modInner: 'u32',
  modDiv: 'u32',
  modMod: 'u32',
  scaleOffset: 'f32',
} as const;

/** Channels (channels-last kernels, the channel-indexed statistics of apply, group norm's coefficients). */
const CHANNEL_FIELDS = {
  channels: 'u32',
  numGroups: 'u32',
  channelsPerGroup: 'u32',
} as const;

export const LAYOUTS = {
  reduce: new UniformLayout({
    ...GROUP_FIELDS,
    ...CHANNEL_FIELDS,
    // column_grad_partials: rows [rowBegin, rowEnd) of `columns`-wide rows.
    columns: 'u32',
    rowBegin: 'u32',
    rowEnd: 'u32',
    // (channels_last_*_partials: `outer` samples of `runs` rows of `channels`, GROUP_FIELDS.)
    ...MOD_FIELDS,
    ...WINDOW_FIELDS,
    ...ORDER_FIELDS,
  }),
  finalize: new UniformLayout({
    // Invocation j < outputs writes output j: a group's result, a merged block of partials
    // (merge_*), a u32 word of halves (cast_half).
    outputs: 'u32',
    // Output j merges partials c in [partialBegin, partials) at PART[4*(j*groupStride + c*partialStride)].
    partials: 'u32',
    partialBegin: 'u32',
    groupStride: 'u32',
    partialStride: 'u32',
    // merge_*: blocks of partialsPerBlock partials, blocksPerGroup per group.
    partialsPerBlock: 'u32',
    blocksPerGroup: 'u32',
    eps: 'f32',
    momentum: 'f32',
    // cast_half: elements of the half-precision output.
    elements: 'u32',
    // group_grad_coefficients: the (n, g) group's channels [channelBegin, +channelsPerBlock) of
    // `spatial` elements each.
    ...CHANNEL_FIELDS,
    channelBegin: 'u32',
    channelsPerBlock: 'u32',
    spatial: 'u32',
    // modulation_grad_sums: partials in runs of blocksPerRun blocks, run u using modulation row u % modMod.
    blocksPerRun: 'u32',
    ...MOD_FIELDS,
    ...WINDOW_FIELDS,
    ...ORDER_FIELDS,
  }),
  apply: new UniformLayout({
    // Element e < elements uses the statistics of (e / statDiv) % statMod and the weight at
    // (e / weightDiv) % weightMod (channels last: statistics (e / statDiv)*numGroups + (e % channels)/channelsPerGroup).
    elements: 'u32',
    statDiv: 'u32',
    statMod: 'u32',
    weightDiv: 'u32',
    weightMod: 'u32',
    // BLOCK: elements per invocation (a multiple of 16 that divides the group and weight runs).
    blockLength: 'u32',
    ...CHANNEL_FIELDS,
    // fused_rows_*: the grouped reduction of each row; fused_rows_grad COLS_FUSED: blocks of rowsPerBlock rows.
    ...GROUP_FIELDS,
    rowsPerBlock: 'u32',
    blocks: 'u32',
    // MOD_SUMS (modulate.wgsl mod_block): blocks per run of modDiv rows.
    blocksPerRun: 'u32',
    // lp_normalize_*: the p of the norm.
    power: 'f32',
    ...MOD_FIELDS,
    ...WINDOW_FIELDS,
    ...ORDER_FIELDS,
  }),
  rows: new UniformLayout({
    // A row is group j < groups of runLength elements; weights as apply's; workgroup_rows_grad: blocks of rowsPerBlock rows.
    ...GROUP_FIELDS,
    weightDiv: 'u32',
    weightMod: 'u32',
    rowsPerBlock: 'u32',
    blocks: 'u32',
    blocksPerRun: 'u32',
    ...MOD_FIELDS,
    ...WINDOW_FIELDS,
    ...ORDER_FIELDS,
  }),
  copy: new UniformLayout({ elements: 'u32' }),
};

type FieldsOf<L> = L extends UniformLayout<infer K> ? K : never;
/** Uniform values of a step: any family's field names (the step's family packs its own). */
export type ParamValues = Partial<Record<{ [F in keyof typeof LAYOUTS]: FieldsOf<(typeof LAYOUTS)[F]> }[keyof typeof LAYOUTS], number>>;

/** Neutral values (divisors and counts 1, offsets 0) so that fields a kernel does not read pack cleanly. */
const NEUTRAL: Record<string, number> = { opaqueZero: 0, elements: 0, eps: 0, momentum: 0, rowBegin: 0, partialBegin: 0, channelBegin: 0 };

/** Per family, every field with its neutral value (built once: params runs for every dispatch). */
const DEFAULTS = {} as Record<Family, Readonly<Record<string, number>>>;
for (const [family, layout] of Object.entries(LAYOUTS) as [Family, UniformLayout<string>][]) {
  DEFAULTS[family] = Object.fromEntries(layout.fields.map(([k, t]) => [k, NEUTRAL[k] ?? (k in WINDOW_FIELDS ? 0 : t === 'f32' ? 0 : 1)]));
}

/**
 * Fields whose neutral value is a meaning of its own and that a step may leave unset: the window
 * fields (set per dispatch), opaqueZero (always 0), and the starts of ranges (0: from the first).
 */
const MAY_DEFAULT = new Set([...Object.keys(WINDOW_FIELDS), 'opaqueZero', 'partialBegin', 'rowBegin', 'channelBegin']);

/** The uniform fields the WGSL of `entry` with `flags` reads (`P.name`), cached. */
const READS = new Map<string, ReadonlySet<string>>();
export function fieldsRead(entry: string, flags: readonly string[]): ReadonlySet<string> {
  const key = `${entry}|${[...flags].sort().join(',')}`;
  let r = READS.get(key);
  if (!r) READS.set(key, (r = new Set([...shaderSource(entry, flags).matchAll(/\bP\.([A-Za-z0-9_]+)/g)].map((m) => m[1]!))));
  return r;
}

/**
 * Every field of `family`'s uniforms: `p`'s values, neutral ones for the rest. Typed per family:
 * a field `family` does not declare is an error (a misspelt or misplaced field), and with
 * `reads` (the fields the kernel's text reads, fieldsRead) so is a read field the step left unset
 * (but for MAY_DEFAULT): no kernel runs with a silent neutral value where it needed a real one.
 */
export function params(family: Family, p: ParamValues, reads?: { entry: string; flags: readonly string[] }): Record<string, number> {
  const out = { ...DEFAULTS[family] };
  for (const [k, v] of Object.entries(p)) {
    if (v === undefined) continue;
    if (!(k in out)) throw new Error(`uniforms: ${k} is not a field of the ${family} kernels${reads ? ` (step ${reads.entry})` : ''}`);
    out[k] = v;
  }
  if (reads) {
    const missing = [...fieldsRead(reads.entry, reads.flags)].filter((k) => !MAY_DEFAULT.has(k) && (p as Record<string, number | undefined>)[k] === undefined);
    if (missing.length) throw new Error(`uniforms: step ${reads.entry} [${[...reads.flags].join(',')}] reads ${missing.join(', ')} but does not set ${missing.length > 1 ? 'them' : 'it'}`);
  }
  return out;
}

export type Family = 'reduce' | 'finalize' | 'apply' | 'copy' | 'rows';

/**
 * The shader files, found by name (every `shaders/*.wgsl`); each says where it belongs on a
 * `//#file PART` line of its header: a kernel family (its entry points and helpers), or one of the
 * parts compiled in front of the families (`common`, `modulate`, `accumulate`: the accumulators'
 * interface and walks, `accumulator`: one accumulator each). Within a part the file named after it
 * comes first, then the others by name (WGSL declarations may come in any order). A new kernel
 * file is a file with a `//#file` line: nothing here names it.
 */
const SHADERS = import.meta.glob<string>('../../shaders/*.wgsl', { query: '?raw', import: 'default', eager: true });
const PARTS = ['common', 'modulate', 'accumulate', 'accumulator', 'reduce', 'finalize', 'apply', 'copy', 'rows'] as const;
type Part = (typeof PARTS)[number];

/** The files of each part, joined in their order. */
function parts(): Record<Part, string> {
  const files = new Map<Part, [string, string][]>(PARTS.map((p) => [p, []]));
  for (const [path, src] of Object.entries(SHADERS)) {
    const name = path.slice(path.lastIndexOf('/') + 1, -'.wgsl'.length);
    const part = /^\/\/#file\s+(\S+)/m.exec(src)?.[1];
    if (!part || !files.has(part as Part)) throw new Error(`shaders/${name}.wgsl: no \`//#file PART\` line naming one of ${PARTS.join(', ')}`);
    files.get(part as Part)!.push([name, src]);
  }
  const rank = (p: Part, name: string) => (name === p ? '' : name);
  return Object.fromEntries(
    PARTS.map((p) => [p, files.get(p)!.sort((a, b) => (rank(p, a[0]) < rank(p, b[0]) ? -1 : 1)).map(([, src]) => src).join('')]),
  ) as Record<Part, string>;
}
const PART = parts();

/**
 * The parts each family compiles in front of its own files: reduce, apply and rows read x and dy
 * through the modulation's accessors and use the accumulators (the partials, the row-fused and the
 * per-row kernels); finalize uses common's helpers only; copy stands alone.
 */
const FRONT: Record<Family, readonly Part[]> = {
  reduce: ['common', 'modulate', 'accumulate', 'accumulator'],
  finalize: ['common'],
  apply: ['common', 'modulate', 'accumulate', 'accumulator'],
  copy: [],
  rows: ['common', 'modulate', 'accumulate', 'accumulator'],
};
const FAMILIES = Object.keys(FRONT) as Family[];
const perFamily = (f: (family: Family) => string) => Object.fromEntries(FAMILIES.map((family) => [family, f(family)])) as Record<Family, string>;
/** Each family's own files (its entry points), in order. */
export const OWN = perFamily((family) => PART[family]);
/** Each family's whole source: the parts in front, then its own files. */
export const FILES = perFamily((family) => [...FRONT[family], family].map((p) => PART[p]).join(''));

/** Every entry point: its family (the file that declares it) and the sections it compiles in. */
const ENTRIES = new Map<string, EntryPoint>();
/** Per family: the flags its files declare, and every name an `//#if` there may use. */
const FLAGS = new Map<Family, { flags: Set<string>; known: Set<string> }>();
for (const family of FAMILIES) {
  const own = declarations(OWN[family]);
  for (const [name, roles] of own.entries) ENTRIES.set(name, { family, roles, memory: own.memory.get(name) ?? '' });
  const d = declarations(FILES[family]);
  const known = new Set([...d.flags, ...d.sections]);
  for (const [name, roles] of d.entries) [name, ...roles].forEach((r) => known.add(r));
  FLAGS.set(family, { flags: d.flags, known });
}

/** Every entry point with its family and sections, and each family's flags (the `wgsl` command's index). */
export function entryList(): string {
  const out: string[] = [];
  for (const family of FAMILIES) {
    out.push(`${family}: flags ${[...FLAGS.get(family)!.flags].sort().join(' ')}`);
    for (const [name, e] of ENTRIES) if (e.family === family) out.push(`  ${name} (${e.roles.join(' ')})`);
  }
  return out.join('\n');
}

/** An entry point: its family (the file that declares it), its sections and its memory model. */
export interface EntryPoint {
  family: Family;
  roles: readonly string[];
  /** The name of its memory descriptor (kernels/memory.ts); '' where the line names none. */
  memory: string;
}

/** An entry point's declaration; throws on a name no shader declares. */
export function entryPoint(name: string): EntryPoint {
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
 * entry's roles, the entry itself and the flags kept, and then only the functions the entry point
 * calls (directly or not): what the kernel is, without the helpers of other kernels. A flag the
 * files do not declare throws.
 */
export function shaderSource(entry: string, flags: readonly string[]): string {
  const { family, roles } = entryPoint(entry);
  const f = FLAGS.get(family)!;
  for (const x of flags) if (!f.flags.has(x)) throw new Error(`kernel ${entry}: unknown flag ${x} (declared: ${[...f.flags].sort().join(', ')})`);
  return reachable(preprocess(FILES[family], new Set([...flags, ...roles, entry]), f.known), entry);
}

/**
 * `src` without the functions `entry` never calls. Top-level items are split by brace depth; a
 * function's comment lines directly above it go with it. Everything that is not a function
 * (structs, constants, module-scope variables) is kept.
 */
export function reachable(src: string, entry: string): string {
  const lines = src.split('\n');
  type Item = { name: string | null; start: number; end: number; body: string };
  const items: Item[] = [];
  let depth = 0;
  let cur: Item | null = null;
  let pending = -1; // first line of a comment block right above the next item
  for (let i = 0; i < lines.length; i++) {
    const t = lines[i]!.trim();
    if (depth === 0 && !cur) {
      const m = /^(?:@[^\n]*?\s)?fn\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(/.exec(t);
      if (t.startsWith('//') && pending < 0) pending = i;
      else if (!t.startsWith('//') && t !== '' && !t.startsWith('@')) {
        cur = { name: m ? m[1]! : null, start: pending >= 0 ? pending : i, end: i, body: '' };
        pending = -1;
      } else if (t === '') pending = -1;
    }
    const code = lines[i]!.replace(/\/\/.*$/, '');
    for (const ch of code) {
      if (ch === '{') depth++;
      else if (ch === '}') depth--;
    }
    if (cur) {
      cur.body += code + '\n';
      if (depth === 0 && (/[};]\s*$/.test(code.trim()) || code.trim() === '')) {
        cur.end = i;
        items.push(cur);
        cur = null;
      }
    }
  }
  if (cur) return src;
  // Attributes (@compute @workgroup_size) sit on the line above the entry point's fn: keep them with it.
  const fns = new Map(items.filter((it) => it.name).map((it) => [it.name!, it]));
  if (!fns.has(entry)) return src;
  const keep = new Set<string>();
  const todo = [entry];
  while (todo.length) {
    const n = todo.pop()!;
    if (keep.has(n)) continue;
    keep.add(n);
    for (const m of fns.get(n)!.body.matchAll(/\b([A-Za-z_][A-Za-z0-9_]*)\s*\(/g)) if (fns.has(m[1]!) && !keep.has(m[1]!)) todo.push(m[1]!);
  }
  const drop = new Array<boolean>(lines.length).fill(false);
  for (const it of items) if (it.name && !keep.has(it.name)) for (let i = it.start; i <= it.end; i++) drop[i] = true;
  return lines.filter((_, i) => !drop[i]).join('\n');
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
  // float16 bindings as array<f16> where the context says so (device with 'shader-f16'), else packed.
  const half = hasHalves(bindings) ? ctx.float16 : 'packed';
  const en = [...new Set([...(opts.enables ?? []), ...(half === 'native' ? ['f16'] : [])])].sort();
  const key = `${entry}|${fl.join(',')}|${bindings.map((b) => `${b.name}:${b.vec4 ? 'vec4' : b.dtype}:${b.access}`).join(',')}|wg${wg}|${en.join(',')}|half:${half}`;
  return ctx.kernel({
    key,
    label: `webgpu-norm.${entry}[${fl.join(',')}]`,
    bindings,
    uniforms: LAYOUTS[entryPoint(entry).family],
    body: () => shaderSource(entry, fl),
    workgroupSize: wg,
    aligned: fl.includes('ALIGNED'),
    window: fl.includes('WINDOW'),
    entryPoint: entry,
    enables: en,
    half,
  });
}
