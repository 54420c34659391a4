#!/usr/bin/env node
// npm run wgsl -- <entry> [FLAG ...] [--float16=X,Y] [--half=native|packed]
// Prints the WGSL of one entry point as the library compiles it (src/kernels/print.ts), e.g.
//   npm run wgsl -- normalize_elements ALIGNED HAS_W HAS_B MEAN_PAIR
//   npm run wgsl -- workgroup_rows_welford NV4 SUBGROUPS RESIDUAL --float16=X,R,Y,S
// Without an entry: the entry points and, per family, the flags they may take.
import { createServer } from 'vite';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';

const args = process.argv.slice(2);
const opt = (k) => args.find((a) => a.startsWith(`--${k}=`))?.split('=')[1];
const pos = args.filter((a) => !a.startsWith('--'));
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const server = await createServer({ root, configFile: false, logLevel: 'error', server: { middlewareMode: true, hmr: false, watch: null }, appType: 'custom' });
let code = 0;
try {
  const print = await server.ssrLoadModule('/src/kernels/print.ts');
  const source = await server.ssrLoadModule('/src/kernels/source.ts');
  if (!pos.length) {
    console.log('usage: npm run wgsl -- <entry> [FLAG ...] [--float16=X,Y] [--half=native|packed]\n');
    console.log(source.entryList());
  } else {
    const [entry, ...flags] = pos;
    process.stdout.write(print.kernelWGSL(entry, flags, { float16: (opt('float16') ?? '').split(',').filter(Boolean), half: opt('half') }) + '\n');
  }
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  code = 1;
} finally {
  await server.close();
}
process.exit(code);
