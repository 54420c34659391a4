/** Seeded PRNG for tests: mulberry32 for uniforms, Box-Muller for normals. */
export interface Rng {
  /** Uniform in [0, 1). */
  uniform(): number;
  /** Standard normal N(0, 1). */
  normal(): number;
  /** n values drawn from N(mean, std²), as float32. */
  fill(n: number, mean?: number, std?: number): Float32Array;
}

export function makeRng(seed: number): Rng {
  let s = seed >>> 0;
  const uniform = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  let spare: number | null = null;
  const normal = (): number => {
    if (spare !== null) {
      const v = spare;
      spare = null;
      return v;
    }
    const u1 = 1 - uniform(); // (0, 1]: log is finite
    const u2 = uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  };
  const fill = (n: number, mean = 0, std = 1): Float32Array => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = mean + std * normal();
    return out;
  };
  return { uniform, normal, fill };
}
