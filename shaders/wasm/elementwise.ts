// AssemblyScript: elementwise kernels. Task = a chunk of CHUNK elements.
import { pp, pi, at, ld, st } from './common';

export const CHUNK: i32 = 16384;

/**
 * roundHalfRun's constants, four lanes each: |x| mask, sign mask, 0xfff, 1, the rounding mask,
 * the smallest normal half's bits, 65520's bits − 1, +Inf's bits, +Inf's bits − 1, 2^24, 2^−24.
 */
const HALF_CONSTS: usize = memory.data<i32>([
  0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff,
  0x80000000, 0x80000000, 0x80000000, 0x80000000,
  0xfff, 0xfff, 0xfff, 0xfff,
  1, 1, 1, 1,
  0xffffe000, 0xffffe000, 0xffffe000, 0xffffe000,
  0x38800000, 0x38800000, 0x38800000, 0x38800000,
  0x477fefff, 0x477fefff, 0x477fefff, 0x477fefff,
  0x7f800000, 0x7f800000, 0x7f800000, 0x7f800000,
  0x7f7fffff, 0x7f7fffff, 0x7f7fffff, 0x7f7fffff,
  0x4b800000, 0x4b800000, 0x4b800000, 0x4b800000,
  0x33800000, 0x33800000, 0x33800000, 0x33800000,
], 16);

/** out = a + b (the fused residual add). p: 0 a, 1 b, 2 out, 3 n. */
export function add(p: usize, begin: i32, end: i32): void {
  const a = pp(p, 0), b = pp(p, 1), out = pp(p, 2), n = pi(p, 3);
  const i1 = min(n, end * CHUNK);
  let i = begin * CHUNK;
  if (ASC_FEATURE_SIMD) {
    for (; i + 4 <= i1; i += 4) v128.store(at(out, i), f32x4.add(v128.load(at(a, i)), v128.load(at(b, i))));
  }
  for (; i < i1; i++) st(out, i, ld(a, i) + ld(b, i));
}

/** float32 → the nearest binary16 value (ties to even; ±Inf past 65520; NaN stays NaN), as float32. */
// @ts-ignore: decorator
@inline function toHalf(v: f32): f32 {
  const bits = reinterpret<u32>(v);
  const sign = bits & 0x80000000;
  const abs = bits & 0x7fffffff;
  if (abs >= 0x7f800000) return v;
  if (abs >= 0x477ff000) return reinterpret<f32>(sign | 0x7f800000);
  if (abs < 0x38800000) {
    const a = reinterpret<f32>(abs);
    return reinterpret<f32>(sign | reinterpret<u32>(nearest<f32>(a * <f32>16777216.0) / <f32>16777216.0));
  }
  return reinterpret<f32>(sign | ((abs + 0xfff + ((abs >> 13) & 1)) & 0xffffe000));
}

/** Rounds n float32 in place to binary16 values (float16 tensors are held as rounded float32). p: 0 x, 1 n. */
export function round_half(p: usize, begin: i32, end: i32): void {
  const x = pp(p, 0), n = pi(p, 1);
  const i1 = min(n, end * CHUNK);
  const i0 = begin * CHUNK;
  if (i1 > i0) roundHalfRun(at(x, i0), i1 - i0);
}

/** Rounds n float32 at x in place to binary16 values (also called by kernels on their output rows while in cache). */
export function roundHalfRun(x: usize, n: i32): void {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    // toHalf on four lanes: the normal rounding on the bits; where a lane is outside the normal
    // half range, the subnormal one as nearest(a·2^24)/2^24, then ±Inf past 65520 and Inf/NaN
    // kept, chosen by masks. The bits without the sign are non-negative as i32, so the signed
    // compares (one instruction each on x64) order them as the unsigned ones would.
    // The constants are loaded from a table in memory at each use (one load, folded into the
    // instruction): V8 rebuilds a splatted or constant v128 inside the loop at every use (three
    // to four instructions) and keeps none in a register across iterations.
    const t = HALF_CONSTS;
    for (; i + 4 <= n; i += 4) {
      const b = v128.load(at(x, i));
      const abs = v128.and(b, v128.load(t));
      let r = v128.and(i32x4.add(i32x4.add(abs, v128.load(t, 32)), v128.and(i32x4.shr_u(abs, 13), v128.load(t, 48))), v128.load(t, 64));
      const sub = i32x4.lt_s(abs, v128.load(t, 80)), over = i32x4.gt_s(abs, v128.load(t, 96));
      if (v128.any_true(v128.or(sub, over))) {
        r = v128.bitselect(f32x4.mul(f32x4.nearest(f32x4.mul(abs, v128.load(t, 144))), v128.load(t, 160)), r, sub);
        r = v128.bitselect(v128.load(t, 112), r, over);
        r = v128.bitselect(abs, r, i32x4.gt_s(abs, v128.load(t, 128)));
      }
      v128.store(at(x, i), v128.or(r, v128.and(b, v128.load(t, 16))));
    }
  }
  for (; i < n; i++) st(x, i, toHalf(ld(x, i)));
}

/** dst = src, 16 bytes at a time (the benchmark's yardstick). p: 0 src, 1 dst, 2 n. */
export function copy(p: usize, begin: i32, end: i32): void {
  const src = pp(p, 0), dst = pp(p, 1), n = pi(p, 2);
  const i1 = min(n, end * CHUNK);
  let i = begin * CHUNK;
  if (ASC_FEATURE_SIMD) {
    for (; i + 16 <= i1; i += 16) {
      const s = at(src, i), d = at(dst, i);
      v128.store(d, v128.load(s));
      v128.store(d, v128.load(s, 16), 16);
      v128.store(d, v128.load(s, 32), 32);
      v128.store(d, v128.load(s, 48), 48);
    }
  }
  for (; i < i1; i++) st(dst, i, ld(src, i));
}
