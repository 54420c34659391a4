import { defineConfig } from 'vite';
import { resolve } from 'node:path';

// `vite build`: one browser-loadable ES module, dist/index.js, with the WGSL inlined (?raw imports)
// and no bare imports left. `vite` (dev): serves index.html, the demo page.
export default defineConfig({
  build: {
    target: 'es2022',
    outDir: 'dist',
    emptyOutDir: true,
    minify: false,
    sourcemap: true,
    lib: {
      entry: resolve(import.meta.dirname, 'src/index.ts'),
      formats: ['es'],
      fileName: () => 'index.js',
    },
  },
  server: { host: '127.0.0.1' },
});
