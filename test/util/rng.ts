/** Seeded PRNG for tests: the one implementation in test/catalog.js (mulberry32 uniforms, Box-Muller normals). */
export { makeRng, type Rng } from '../catalog.js';
