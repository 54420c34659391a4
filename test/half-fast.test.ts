import { describe, it, expect } from 'vitest';
import { f32ToF16Bits, __bitsToF16 } from '../src/half.ts';

// The bulk conversions use an integer-only float32 → half path; it must agree with the
// reference conversion bit for bit, on every float32 exponent and on the rounding ties.
describe('integer float32 → half conversion', () => {
  it('matches f32ToF16Bits on a sweep of float32 bit patterns', () => {
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    let checked = 0;
    for (let hi = 0; hi < 0x10000; hi += 1) {
      // every exponent/sign, with mantissas around the rounding boundaries
      for (const lo of [0x0000, 0x0fff, 0x1000, 0x1001, 0x2000, 0x3000, 0x7fff, 0x8000, 0xefff, 0xf000, 0xffff]) {
        u[0] = ((hi << 16) | lo) >>> 0;
        const want = f32ToF16Bits(f[0]!);
        const got = __bitsToF16(u[0]!);
        if (Number.isNaN(f[0]!)) expect(got & 0x7c00).toBe(0x7c00);
        else if (got !== want) expect({ bits: u[0]!.toString(16), got: got.toString(16) }).toEqual({ bits: u[0]!.toString(16), got: want.toString(16) });
        checked++;
      }
    }
    expect(checked).toBe(0x10000 * 11);
  });
});
