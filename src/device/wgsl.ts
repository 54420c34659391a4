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
  /** Element storage: float32 (array<f32>) or float16 (packed pairs in array<u32>). */
  dtype: DType;
  /** Raw array<vec4f> view with no accessors (the copy yardstick). */
  vec4?: boolean;
}

/**
 * WGSL for the storage bindings, at @group(0) @binding(1..n) (binding 0 is the uniform block).
 * Accessors per binding `B`: `B_ld(i) -> f32`, `B_ld4(i) -> vec4f` (elements i..i+3, any i),
 * and for writable ones `B_st(i, v)`, `B_st4(i, v)` (float16: i even). For float16 a store of
 * one half read-modify-writes its u32 word: only the invocation that owns both halves of a word
 * may store into it (kernels hand out work in word-aligned units for that reason). The float16
 * ld4 reads one word past the quad when i is odd; robust buffer access keeps that in bounds.
 * With `aligned` (a kernel whose quads all start at multiples of 4) ld4 reads two whole words.
 * `B_w(w)` maps a u32 word index of the tensor to the array index (raw word access).
 *
 * With `window` a binding is a range of its buffer that starts at u32 word `P.wordOffset<k>` (uniform
 * field of binding k): kernels keep using tensor-wide indices and the accessors subtract the
 * window's start. That is how a tensor larger than one storage binding is processed, one bound
 * range per dispatch (see kernels/window.ts).
 */
export const MAX_WINDOWED_BINDINGS = 8;

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
export function bindingsWGSL(decls: readonly BindingDecl[], aligned = false, window = false): string {
  if (window && decls.length > MAX_WINDOWED_BINDINGS) throw new Error(`windowed kernel with ${decls.length} bindings (at most ${MAX_WINDOWED_BINDINGS})`);
  const out: string[] = [];
  if (decls.some((b) => b.dtype === 'float16' && !b.vec4)) out.push(HALF_PACK);
  decls.forEach((b, k) => {
    if (b.vec4) {
      out.push(`@group(0) @binding(${k + 1}) var<storage, ${b.access}> ${b.name}: array<vec4f>;`);
      return;
    }
    const ty = b.dtype === 'float16' ? 'u32' : 'f32';
    out.push(`@group(0) @binding(${k + 1}) var<storage, ${b.access}> ${b.name}: array<${ty}>;`);
    const n = b.name;
    // Array element of word index `w` (f32: element index; f16: word of two halves).
    const at = (w: string) => (window ? `${n}[(${w}) - P.wordOffset${k + 1}]` : `${n}[${w}]`);
    out.push(`fn ${n}_w(w: u32) -> u32 { return ${window ? `w - P.wordOffset${k + 1}` : 'w'}; }`);
    if (b.dtype === 'float32') {
      out.push(`fn ${n}_ld(i: u32) -> f32 { return ${at('i')}; }`);
      out.push(`fn ${n}_ld4(i: u32) -> vec4f { return vec4f(${at('i')}, ${at('i + 1u')}, ${at('i + 2u')}, ${at('i + 3u')}); }`);
      if (b.access === 'read_write') {
        out.push(`fn ${n}_st(i: u32, v: f32) { ${at('i')} = v; }`);
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
      if (b.access === 'read_write') {
        out.push(
          `fn ${n}_st(i: u32, v: f32) { let w = i >> 1u; let h = unpack2x16float(${at('w')}); ${at('w')} = pack_half2(select(vec2f(v, h.y), vec2f(h.x, v), (i & 1u) == 1u)); }`,
        );
        // Quads are only stored at even element indices (whole words; see apply.wgsl).
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
