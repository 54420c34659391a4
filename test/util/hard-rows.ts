/** Hard inputs for the row/group kernels: seeded rows of K contiguous elements. */
import { makeRng } from './rng.ts';

/**
 * `rows` rows of K values, by row index mod 4: N(0, 1); 1e4 + N(0, 1); N(0, 1) with a 1e6
 * outlier at a varying place; N(3, 0.01). Values are float32.
 */
export function hardRows(seed: number, K: number, rows: number): Float32Array {
  const x = makeRng(seed).fill(rows * K, 0, 1);
  for (let r = 0; r < rows; r++) {
    const kind = r % 4;
    for (let i = 0; i < K; i++) {
      const e = r * K + i;
      if (kind === 1) x[e] = Math.fround(1e4 + x[e]!);
      if (kind === 3) x[e] = Math.fround(3 + 0.01 * x[e]!);
    }
    if (kind === 2) x[r * K + ((r * 7919) % K)] = 1e6;
  }
  return x;
}
