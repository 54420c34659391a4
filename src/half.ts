/**
 * IEEE 754 binary16 conversion on the host: float32 ↔ half bits, rounding to nearest even, and
 * packing two halves per u32 word (element 2k in the low 16 bits, as WGSL pack2x16float /
 * unpack2x16float and an array<f16> in a storage buffer lay them out on little-endian hosts).
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Round a non-negative value that is exact in float64 to the nearest integer, ties to even. */
function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * float32 → binary16 bits, round to nearest even. The input is first rounded to float32
 * (Math.fround), so the result is what a float32 → f16 conversion on the GPU gives.
 * Overflow (|x| ≥ 65520) gives ±inf; subnormals are kept; NaN gives a quiet NaN (0x7e00).
 */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const a = Math.abs(f32[0]);
  if (Number.isNaN(a)) return sign | 0x7e00;
  if (a >= 65520) return sign | 0x7c00; // 65520 is the tie between 65504 and 2^16: even goes up
  if (a < 2 ** -14) return sign | roundHalfEven(a * 2 ** 24); // subnormal (1024 → smallest normal)
  const e = ((bits >>> 23) & 0xff) - 127; // exact exponent of a normal float32
  const m = roundHalfEven(a * 2 ** (10 - e)); // in [1024, 2048]; 2048 carries into the exponent
  return sign | (((e + 15) << 10) + m - 1024);
}

/** binary16 bits → the (exactly representable) number. */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/**
 * float32 bits → binary16 bits, round to nearest even, with integer operations only (the bulk
 * conversions below run this per element; same results as f32ToF16Bits, checked in the tests).
 */
function bitsToF16(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const abs = b & 0x7fffffff;
  if (abs >= 0x7f800000) return sign | (abs > 0x7f800000 ? 0x7e00 : 0x7c00);
  if (abs >= 0x477ff000) return sign | 0x7c00; // >= 65520: rounds to inf
  if (abs < 0x38800000) {
    // Subnormal half (or zero): units of 2^-24.
    const e = abs >>> 23;
    if (e < 102) return sign; // < 2^-25: rounds to 0
    const m = (abs & 0x7fffff) | 0x800000;
    const sh = 126 - e; // 14..24
    let r = m >>> sh;
    const rem = m & ((1 << sh) - 1);
    const half = 1 << (sh - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  let h = (abs - 0x38000000) >>> 13;
  const rem = abs & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

let table: Float32Array | null = null;
/** All 65536 halves as float32, built on first use. */
function halfTable(): Float32Array {
  if (!table) {
    table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) table[h] = f16BitsToF32(h);
  }
  return table;
}

function bitsOf(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/** A new array with every value rounded to the nearest half (and back to float32). */
export function roundToHalf(a: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  const bits = bitsOf(a);
  const t = halfTable();
  for (let i = 0; i < a.length; i++) out[i] = t[bitsToF16(bits[i]!)]!;
  return out;
}

/** Two halves per u32 word, element 2k in the low 16 bits; length ceil(n/2), last high half 0 when n is odd. */
export function packHalves(a: Float32Array): Uint32Array {
  const words = new Uint32Array(Math.ceil(a.length / 2));
  const bits = bitsOf(a);
  const n = a.length;
  for (let i = 0; i + 1 < n; i += 2) words[i >>> 1] = (bitsToF16(bits[i]!) | (bitsToF16(bits[i + 1]!) << 16)) >>> 0;
  if (n & 1) words[n >>> 1] = bitsToF16(bits[n - 1]!);
  return words;
}

/** Inverse of packHalves: the first n halves as float32. */
export function unpackHalves(words: Uint32Array, n: number): Float32Array {
  const out = new Float32Array(n);
  const t = halfTable();
  for (let i = 0; i < n; i++) out[i] = t[(words[i >>> 1]! >>> ((i & 1) * 16)) & 0xffff]!;
  return out;
}

/** @internal for tests: the integer-only conversion. */
export const __bitsToF16 = bitsToF16;
