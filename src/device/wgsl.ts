/**
 * Binding and uniform layouts, each declared once: the WGSL declarations (with typed accessors)
 * and the host-side packing both come from the same declaration.
 */
import type { DType } from '../tensor.ts';

export type Access = 'read' | 'read_write';

/** One storage binding: `name` becomes the WGSL variable and the prefix of its accessors. */
export interface BindingDecl {
  name: string;
  access: Access;
  /** Element storage: float32 (array<f32>) or float16 (see {@link HalfStorage}). */
  dtype: DType;
  /** Raw array<vec4f> view with no accessors (the copy yardstick). */
  vec4?: boolean;
}

/**
 * How float16 tensors are read and written: `'native'` with WGSL f16 (`enable f16;`, the device
 * has 'shader-f16'): each u32 word is bitcast to vec2<f16> and converted; `'packed'` (any device)
 * with unpack2x16float / pack2x16float. Both bind array<u32> (one element: a word of two IEEE
 * halves, element 2k in the low half), so the buffers, word indices and work split are the same.
 */
export type HalfStorage = 'native' | 'packed';

/**
 * WGSL for the storage bindings, at @group(0) @binding(1..n) (binding 0 is the uniform block).
 * Accessors per binding `B`: `B_ld(i) -> f32`, `B_ld4(i) -> vec4f` (elements i..i+3, any i),
 * and for writable ones `B_st(i, v)`, `B_st4(i, v)` (float16: i even), `B_st2(i, v: vec2f)`
 * (elements i, i + 1; float16: i even). Arithmetic is f32 on both float16 paths: loads widen,
 * stores round to half, IEEE-exact with NaN, ±Inf and overflow made from the bits
 * (`pack_half2` packed, `to_half` / `to_half2` native).
 *
 * float16, both paths: memory is accessed in whole u32 words. A store of one half is a
 * read-modify-write of its word (packed: through unpack/pack2x16float; native: the other half's
 * bits kept as they are), so only the invocation that owns both halves of a word may store into
 * it (kernels hand out work in word-aligned units for that reason). ld4 reads one word past the
 * quad when i is odd; robust buffer access keeps that in bounds. With `aligned` (a kernel whose
 * quads all start at multiples of 4) ld4 reads two whole words. `B_w(w)` maps a u32 word index
 * of the tensor to the array index (raw word access).
 * Why not array<f16> or array<vec2<f16>> for native halves (which would let one half be stored
 * on its own): measured on lavapipe, forward float16 kernels took about 1.4-1.9x the time with
 * array<f16> (a 16-bit access per half) and 1.2-1.3x with array<vec2<f16>> (two 16-bit accesses
 * per word there) of the time with whole u32 words; on GPUs a vec2<f16> load is one 32-bit load
 * either way, as the u32 word load is.
 *
 * With `window` a binding is a range of its buffer that starts at u32 word `P.wordOffset<k>` (uniform
 * field of binding k): kernels keep using tensor-wide indices and the accessors subtract the
 * window's start. That is how a tensor larger than one storage binding is processed, one bound
 * range per dispatch (see kernels/window.ts).
 */
export const MAX_WINDOWED_BINDINGS = 12;

/**
 * pack_half2: pack2x16float for any input. WGSL leaves pack2x16float of NaN and of values past
 * float16's range indeterminate (seen: a NaN corrupting the other half of the word), so those
 * halves are written from their bits instead: NaN, ±Inf from 65520 up, 65504 just below (IEEE
 * rounding). Branch-free: CPU adapters run invocations as SIMD lanes.
 */
const HALF_PACK = `fn pack_half2(v: vec2f) -> u32 {
  let b = bitcast<vec2u>(v);
  let m = b & vec2u(0x7fffffffu);
  let ok = m <= vec2u(0x477fe000u);
  let w = pack2x16float(select(vec2f(0.0), v, ok));
  let big = select(vec2u(0x7bffu), vec2u(0x7c00u), m >= vec2u(0x477ff000u));
  let special = ((b >> vec2u(16u)) & vec2u(0x8000u)) | select(big, vec2u(0x7e00u), m > vec2u(0x7f800000u));
  let h = select(special, vec2u(w & 0xffffu, w >> 16u), ok);
  return h.x | (h.y << 16u);
}`;

/**
 * to_half2 / to_half: f32 -> f16 for any input, on native float16 (the same rule as pack_half2).
 * WGSL leaves the conversion of values outside f16's finite range indeterminate, so only
 * |v| <= 65504 goes through f16(); NaN, ±Inf (|v| >= 65520) and 65504 (65504 < |v| < 65520, round
 * to nearest even) are made from their bits (bitcast of a u32 to vec2<f16>). Branch-free.
 */
const HALF_NATIVE = `fn to_half2(v: vec2f) -> vec2<f16> {
  let b = bitcast<vec2u>(v);
  let m = b & vec2u(0x7fffffffu);
  let ok = m <= vec2u(0x477fe000u);
  let h = vec2<f16>(select(vec2f(0.0), v, ok));
  let big = select(vec2u(0x7bffu), vec2u(0x7c00u), m >= vec2u(0x477ff000u));
  let sp = ((b >> vec2u(16u)) & vec2u(0x8000u)) | select(big, vec2u(0x7e00u), m > vec2u(0x7f800000u));
  return select(bitcast<vec2<f16>>(sp.x | (sp.y << 16u)), h, ok);
}
fn to_half(v: f32) -> f16 {
  let b = bitcast<u32>(v);
  let m = b & 0x7fffffffu;
  let ok = m <= 0x477fe000u;
  let h = f16(select(0.0, v, ok));
  let big = select(0x7bffu, 0x7c00u, m >= 0x477ff000u);
  let sp = ((b >> 16u) & 0x8000u) | select(big, 0x7e00u, m > 0x7f800000u);
  return select(bitcast<vec2<f16>>(sp).x, h, ok);
}`;

/** Whether `decls` declare a float16 binding with accessors (the kernel then needs HALF_* helpers, and `enable f16` on the native path). */
export function hasHalves(decls: readonly BindingDecl[]): boolean {
  return decls.some((b) => b.dtype === 'float16' && !b.vec4);
}

export function bindingsWGSL(decls: readonly BindingDecl[], aligned = false, window = false, half: HalfStorage = 'packed'): string {
  if (window && decls.length > MAX_WINDOWED_BINDINGS) throw new Error(`windowed kernel with ${decls.length} bindings (at most ${MAX_WINDOWED_BINDINGS})`);
  const out: string[] = [];
  // pack_half2 on both paths: kernels also use it to round f32 sums to half (HALF_SUM).
  if (hasHalves(decls)) out.push(HALF_PACK);
  if (hasHalves(decls) && half === 'native') out.push(HALF_NATIVE);
  decls.forEach((b, k) => {
    if (b.vec4) {
      out.push(`@group(0) @binding(${k + 1}) var<storage, ${b.access}> ${b.name}: array<vec4f>;`);
      return;
    }
    const n = b.name;
    const rw = b.access === 'read_write';
    if (b.dtype === 'float16' && half === 'native') {
      // Whole u32 words, each read and written as a vec2<f16> (bitcast): the packed path's
      // memory accesses and word indices, with f16 conversions instead of unpack/pack2x16float.
      out.push(`@group(0) @binding(${k + 1}) var<storage, ${b.access}> ${n}: array<u32>;`);
      const at = (w: string) => (window ? `${n}[(${w}) - P.wordOffset${k + 1}]` : `${n}[${w}]`);
      const h2 = (w: string) => `vec2f(bitcast<vec2<f16>>(${at(w)}))`;
      out.push(`fn ${n}_w(w: u32) -> u32 { return ${window ? `w - P.wordOffset${k + 1}` : 'w'}; }`);
      out.push(`fn ${n}_ld(i: u32) -> f32 { let h = ${h2('i >> 1u')}; return select(h.x, h.y, (i & 1u) == 1u); }`);
      if (aligned) out.push(`fn ${n}_ld4(i: u32) -> vec4f { let w = i >> 1u; return vec4f(${h2('w')}, ${h2('w + 1u')}); }`);
      else out.push(
        `fn ${n}_ld4(i: u32) -> vec4f { let w = i >> 1u; let a = ${h2('w')}; let b = ${h2('w + 1u')};` +
          ` let c = ${h2('w + 2u')}; let odd = (i & 1u) == 1u;` +
          ` return select(vec4f(a, b), vec4f(a.y, b, c.x), odd); }`,
      );
      if (rw) {
        // One half: its 16 bits replace those of the word, the other half's bits kept exactly.
        out.push(
          `fn ${n}_st(i: u32, v: f32) { let w = i >> 1u; let s = (i & 1u) * 16u; let h = bitcast<u32>(vec2<f16>(to_half(v), f16())) & 0xffffu;` +
            ` ${at('w')} = (${at('w')} & ~(0xffffu << s)) | (h << s); }`,
        );
        out.push(`fn ${n}_st2(i: u32, v: vec2f) { ${at('i >> 1u')} = bitcast<u32>(to_half2(v)); }`);
        out.push(`fn ${n}_st4(i: u32, v: vec4f) { let w = i >> 1u; ${at('w')} = bitcast<u32>(to_half2(v.xy)); ${at('w + 1u')} = bitcast<u32>(to_half2(v.zw)); }`);
      }
      return;
    }
    const ty = b.dtype === 'float16' ? 'u32' : 'f32';
    out.push(`@group(0) @binding(${k + 1}) var<storage, ${b.access}> ${n}: array<${ty}>;`);
    // Array element of word index `w` (f32: element index; f16: word of two halves).
    const at = (w: string) => (window ? `${n}[(${w}) - P.wordOffset${k + 1}]` : `${n}[${w}]`);
    out.push(`fn ${n}_w(w: u32) -> u32 { return ${window ? `w - P.wordOffset${k + 1}` : 'w'}; }`);
    if (b.dtype === 'float32') {
      out.push(`fn ${n}_ld(i: u32) -> f32 { return ${at('i')}; }`);
      out.push(`fn ${n}_ld4(i: u32) -> vec4f { return vec4f(${at('i')}, ${at('i + 1u')}, ${at('i + 2u')}, ${at('i + 3u')}); }`);
      if (rw) {
        out.push(`fn ${n}_st(i: u32, v: f32) { ${at('i')} = v; }`);
        out.push(`fn ${n}_st2(i: u32, v: vec2f) { ${at('i')} = v.x; ${at('i + 1u')} = v.y; }`);
        out.push(`fn ${n}_st4(i: u32, v: vec4f) { ${at('i')} = v.x; ${at('i + 1u')} = v.y; ${at('i + 2u')} = v.z; ${at('i + 3u')} = v.w; }`);
      }
    } else {
      out.push(`fn ${n}_ld(i: u32) -> f32 { let h = unpack2x16float(${at('i >> 1u')}); return select(h.x, h.y, (i & 1u) == 1u); }`);
      // Branch-free: CPU adapters run invocations as SIMD lanes and pay for both sides of a branch.
      // In kernels compiled `aligned` every quad starts at a multiple of 4: two whole words.
      if (aligned) out.push(`fn ${n}_ld4(i: u32) -> vec4f { let w = i >> 1u; return vec4f(unpack2x16float(${at('w')}), unpack2x16float(${at('w + 1u')})); }`);
      else out.push(
        `fn ${n}_ld4(i: u32) -> vec4f { let w = i >> 1u; let a = unpack2x16float(${at('w')}); let b = unpack2x16float(${at('w + 1u')});` +
          ` let c = unpack2x16float(${at('w + 2u')}); let odd = (i & 1u) == 1u;` +
          ` return select(vec4f(a, b), vec4f(a.y, b, c.x), odd); }`,
      );
      if (rw) {
        out.push(
          `fn ${n}_st(i: u32, v: f32) { let w = i >> 1u; let h = unpack2x16float(${at('w')}); ${at('w')} = pack_half2(select(vec2f(v, h.y), vec2f(h.x, v), (i & 1u) == 1u)); }`,
        );
        // Pairs and quads are only stored at even element indices (whole words; see apply.wgsl).
        out.push(`fn ${n}_st2(i: u32, v: vec2f) { ${at('i >> 1u')} = pack_half2(v); }`);
        out.push(`fn ${n}_st4(i: u32, v: vec4f) { let w = i >> 1u; ${at('w')} = pack_half2(v.xy); ${at('w + 1u')} = pack_half2(v.zw); }`);
      }
    }
  });
  return out.join('\n');
}

export type ScalarType = 'u32' | 'f32';

/** A uniform block: fields in declaration order, all 4-byte scalars. */
export class UniformLayout<K extends string> {
  readonly fields: readonly [K, ScalarType][];
  readonly byteSize: number;
  constructor(fields: Record<K, ScalarType>) {
    this.fields = Object.entries(fields) as [K, ScalarType][];
    // Uniform buffers are sized in 16-byte units.
    this.byteSize = Math.max(16, Math.ceil((this.fields.length * 4) / 16) * 16);
  }
  wgsl(): string {
    const body = this.fields.map(([k, t]) => `  ${k}: ${t},`).join('\n');
    return `struct Params {\n${body}\n}\n@group(0) @binding(0) var<uniform> P: Params;`;
  }
  pack(values: Record<K, number>): ArrayBuffer {
    const buf = new ArrayBuffer(this.byteSize);
    const u = new Uint32Array(buf);
    const f = new Float32Array(buf);
    this.fields.forEach(([k, t], i) => {
      const v = values[k];
      if (v === undefined || Number.isNaN(v) && t === 'u32') throw new Error(`uniform ${k} missing`);
      if (t === 'u32') {
        if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`uniform ${k} = ${v} does not fit u32`);
        u[i] = v;
      } else f[i] = v;
    });
    return buf;
  }
}
