import { defineConfig } from 'vite';
import { resolve } from 'node:path';

// `vite build`: one browser-loadable ES module, dist/index.js, with the WGSL inlined (the glob
// import of shaders/*.wgsl as raw text in src/kernels/source.ts) and no bare imports left: the
// package's bundle (`npm run build` adds the .d.ts files beside it).
// Benchmarks build the same bundle elsewhere (`npm run build:bench`: build/bench/, with a source
// map), so they never empty dist/. `vite` (dev): serves index.html, the demo page, from src/.
export default defineConfig({
  build: {
    target: 'es2022',
    outDir: 'dist',
    emptyOutDir: true,
    minify: false,
    sourcemap: false,
    lib: {
      entry: resolve(import.meta.dirname, 'src/index.ts'),
      formats: ['es'],
      fileName: () => 'index.js',
    },
  },
  server: { host: '127.0.0.1' },
});
