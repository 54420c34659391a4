// A small protobuf writer for single-purpose ONNX models, so the benchmark builds its models
// in memory (no model files). Only the fields these models use are written; field numbers are
// those of onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto,
// ValueInfoProto, TypeProto, TensorShapeProto, OperatorSetIdProto).

export const DT = { float32: 1, float16: 10, int64: 7 };
const ATTR = { FLOAT: 1, INT: 2, INTS: 7 };

const enc = new TextEncoder();

function varint(out, value) {
  let v = BigInt.asUintN(64, BigInt(value));
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
}

/** A message under construction: append fields, then bytes(). */
class Msg {
  constructor() {
    this.out = [];
  }
  tag(no, wire) {
    varint(this.out, (no << 3) | wire);
  }
  int(no, v) {
    this.tag(no, 0);
    varint(this.out, v);
    return this;
  }
  float(no, f) {
    this.tag(no, 5);
    const b = new Uint8Array(new Float32Array([f]).buffer);
    this.out.push(...b);
    return this;
  }
  bytes(no, u8) {
    this.tag(no, 2);
    varint(this.out, u8.length);
    for (let i = 0; i < u8.length; i++) this.out.push(u8[i]);
    return this;
  }
  str(no, s) {
    return this.bytes(no, enc.encode(s));
  }
  msg(no, m) {
    return this.bytes(no, m.u8());
  }
  u8() {
    return Uint8Array.from(this.out);
  }
}

/** float32 -> IEEE half bits, round to nearest even. */
export function toHalfBits(f) {
  const f32 = new Float32Array([f]);
  const x = new Uint32Array(f32.buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

export function halfBitsToFloat(h) {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** An initializer: { name, dims, dtype: 'float32'|'float16'|'int64', data: number[] | typed array }. */
function tensorProto({ name, dims, dtype, data }) {
  const m = new Msg();
  for (const d of dims) m.int(1, d);
  m.int(2, DT[dtype]);
  m.str(8, name);
  let raw;
  if (dtype === 'float32') raw = new Uint8Array(Float32Array.from(data).buffer);
  else if (dtype === 'float16') raw = new Uint8Array(Uint16Array.from(data, toHalfBits).buffer);
  else if (dtype === 'int64') raw = new Uint8Array(BigInt64Array.from(data, (v) => BigInt(v)).buffer);
  else throw new Error(`initializer dtype ${dtype}`);
  m.bytes(9, raw);
  return m;
}

function valueInfo({ name, dims, dtype }) {
  const shape = new Msg();
  for (const d of dims) shape.msg(1, new Msg().int(1, d));
  const tt = new Msg().int(1, DT[dtype]).msg(2, shape);
  const type = new Msg().msg(1, tt);
  return new Msg().str(1, name).msg(2, type);
}

/** attrs: { name: number (float unless Number.isInteger and listed in ints) } via explicit forms. */
function attribute(name, v) {
  const m = new Msg().str(1, name);
  if (v.ints) {
    for (const i of v.ints) m.int(8, i);
    m.int(20, ATTR.INTS);
  } else if (v.int !== undefined) {
    m.int(3, v.int);
    m.int(20, ATTR.INT);
  } else if (v.float !== undefined) {
    m.float(2, v.float);
    m.int(20, ATTR.FLOAT);
  } else throw new Error(`attribute ${name}: use { int } | { float } | { ints }`);
  return m;
}

/**
 * A node: { op, inputs, outputs, attrs?: { name: { float } | { int } | { ints } }, domain? }.
 * A model: { nodes, inputs: [{ name, dims, dtype }], outputs: [...], initializers: [...],
 *            opsets: { '': 17, 'com.microsoft': 1 } } -> Uint8Array (ModelProto bytes).
 */
export function buildModel({ nodes, inputs, outputs, initializers = [], opsets = { '': 17 }, name = 'bench' }) {
  const g = new Msg();
  nodes.forEach((n, i) => {
    const m = new Msg();
    for (const x of n.inputs) m.str(1, x);
    for (const y of n.outputs) m.str(2, y);
    m.str(3, `${n.op}_${i}`);
    m.str(4, n.op);
    for (const [k, v] of Object.entries(n.attrs ?? {})) m.msg(5, attribute(k, v));
    if (n.domain) m.str(7, n.domain);
    g.msg(1, m);
  });
  g.str(2, name);
  for (const t of initializers) g.msg(5, tensorProto(t));
  for (const v of inputs) g.msg(11, valueInfo(v));
  for (const v of outputs) g.msg(12, valueInfo(v));
  const model = new Msg().int(1, 8).str(2, 'webgpu-norm-bench');
  model.msg(7, g);
  for (const [domain, version] of Object.entries(opsets)) model.msg(8, new Msg().str(1, domain).int(2, version));
  return model.u8();
}
