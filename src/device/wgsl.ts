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
 * and for writable ones `B_st(i, v)`, `B_st4(i, v)`. For float16 a store of one half
 * read-modify-writes its u32 word: only the invocation that owns both halves of a word may
 * store into it (kernels hand out work in word-aligned units for that reason).
 */
export function bindingsWGSL(decls: readonly BindingDecl[]): string {
  const out: string[] = [];
  decls.forEach((b, k) => {
    if (b.vec4) {
      out.push(`@group(0) @binding(${k + 1}) var<storage, ${b.access}> ${b.name}: array<vec4f>;`);
      return;
    }
    const ty = b.dtype === 'float16' ? 'u32' : 'f32';
    out.push(`@group(0) @binding(${k + 1}) var<storage, ${b.access}> ${b.name}: array<${ty}>;`);
    const n = b.name;
    if (b.dtype === 'float32') {
      out.push(`fn ${n}_ld(i: u32) -> f32 { return ${n}[i]; }`);
      out.push(`fn ${n}_ld4(i: u32) -> vec4f { return vec4f(${n}[i], ${n}[i + 1u], ${n}[i + 2u], ${n}[i + 3u]); }`);
      if (b.access === 'read_write') {
        out.push(`fn ${n}_st(i: u32, v: f32) { ${n}[i] = v; }`);
        out.push(`fn ${n}_st4(i: u32, v: vec4f) { ${n}[i] = v.x; ${n}[i + 1u] = v.y; ${n}[i + 2u] = v.z; ${n}[i + 3u] = v.w; }`);
      }
    } else {
      out.push(`fn ${n}_ld(i: u32) -> f32 { let h = unpack2x16float(${n}[i >> 1u]); return select(h.x, h.y, (i & 1u) == 1u); }`);
      out.push(
        `fn ${n}_ld4(i: u32) -> vec4f { if ((i & 1u) == 0u) { let w = i >> 1u; return vec4f(unpack2x16float(${n}[w]), unpack2x16float(${n}[w + 1u])); }` +
          ` return vec4f(${n}_ld(i), ${n}_ld(i + 1u), ${n}_ld(i + 2u), ${n}_ld(i + 3u)); }`,
      );
      if (b.access === 'read_write') {
        out.push(
          `fn ${n}_st(i: u32, v: f32) { let w = i >> 1u; var h = unpack2x16float(${n}[w]); if ((i & 1u) == 0u) { h.x = v; } else { h.y = v; } ${n}[w] = pack2x16float(h); }`,
        );
        out.push(
          `fn ${n}_st4(i: u32, v: vec4f) { if ((i & 1u) == 0u) { let w = i >> 1u; ${n}[w] = pack2x16float(v.xy); ${n}[w + 1u] = pack2x16float(v.zw); }` +
            ` else { ${n}_st(i, v.x); ${n}_st(i + 1u, v.y); ${n}_st(i + 2u, v.z); ${n}_st(i + 3u, v.w); } }`,
        );
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
