#!/usr/bin/env node
// The package as a user gets it (a stage of `npm test`): `npm pack` (prepack builds dist/), check
// what the tarball holds, install it into an empty temporary project (with `webgpu` from the
// npm cache, as `npm ci` left it), then in that project:
//   - run the README's Node example verbatim, and a check of one op's values on the webgpu backend;
//   - with no Vulkan driver reachable, check that norms.note says what to do;
//   - type-check a small TypeScript consumer under moduleResolution nodenext and bundler with
//     skipLibCheck false.
// Prints one line per check and ends with `N passed, M failed` (exit 1 on a failure).
//
//   node scripts/package-check.mjs [--keep]    (--keep leaves the temporary project for a look)
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const KEEP = process.argv.includes('--keep');
const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const webgpuVersion = JSON.parse(readFileSync(join(ROOT, 'node_modules/webgpu/package.json'), 'utf8')).version;
const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');

let passed = 0;
let failed = 0;
function check(name, fn) {
  const t0 = Date.now();
  try {
    const detail = fn();
    passed++;
    console.log(`  ok    ${name}${detail ? ` — ${detail}` : ''} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    return true;
  } catch (e) {
    failed++;
    console.log(`  FAIL  ${name}\n${String(e?.message ?? e).replace(/^/gm, '        ')}`);
    return false;
  }
}
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts, env: { ...process.env, ...opts.env } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}\n${(r.stdout ?? '').slice(-3000)}${(r.stderr ?? '').slice(-3000)}`);
  return r.stdout;
}

/** The README's code block that follows the marker comment `<!-- example: NAME ... -->`. */
function readmeExample(name) {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const m = readme.match(new RegExp(`<!-- example: ${name}\\b[^>]*-->\\s*\`\`\`js\\n([\\s\\S]*?)\`\`\``));
  if (!m) throw new Error(`README.md has no code block marked <!-- example: ${name} -->`);
  return m[1];
}

const tmp = mkdtempSync(join(tmpdir(), 'webgpu-norm-pack-'));
const app = join(tmp, 'app');
mkdirSync(app);
const xdg = process.env.XDG_RUNTIME_DIR || join(tmp, 'xdg');
mkdirSync(xdg, { recursive: true });
const gpuEnv = { XDG_RUNTIME_DIR: xdg };
if (process.env.WEBGPU_NORM_ADAPTER !== 'gpu' && !process.env.VK_ICD_FILENAMES) gpuEnv.VK_ICD_FILENAMES = SWIFTSHADER;
let tarball = null;

console.log(`package: npm pack, install into ${KEEP ? tmp : 'a temporary project'}, run and type-check`);
check('npm pack builds dist/ (prepack) and packs it', () => {
  const out = run('npm', ['pack', '--json', '--silent', '--pack-destination', tmp], { cwd: ROOT });
  const info = JSON.parse(out.slice(out.lastIndexOf('\n[') + 1))[0];
  tarball = join(tmp, info.filename);
  return `${info.filename}, ${info.files.length} files, ${(info.size / 1024).toFixed(0)} KiB`;
});
if (!tarball) finish();

check('the tarball holds dist/index.js, its .d.ts files, README, LICENSE, package.json and nothing else', () => {
  const files = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' }).trim().split('\n').map((f) => f.replace(/^package\//, ''));
  for (const need of ['dist/index.js', 'dist/index.d.ts', 'README.md', 'LICENSE', 'package.json']) if (!files.includes(need)) throw new Error(`missing ${need}; has: ${files.join(', ')}`);
  const extra = files.filter((f) => !/^dist\/.*\.(js|d\.ts)$/.test(f) && !['README.md', 'LICENSE', 'package.json'].includes(f));
  if (extra.length) throw new Error(`files a user does not need: ${extra.join(', ')}`);
  const js = files.filter((f) => f.endsWith('.js') && !f.endsWith('.d.ts'));
  if (js.length !== 1) throw new Error(`expected one bundle, got ${js.join(', ')}`);
  return `${files.length} files`;
});

const installed = check(`npm install of the tarball (+ webgpu@${webgpuVersion}) into an empty project`, () => {
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'webgpu-norm-consumer', private: true, type: 'module' }, null, 2));
  run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball, `webgpu@${webgpuVersion}`], { cwd: app });
  const got = JSON.parse(readFileSync(join(app, 'node_modules/webgpu-norm/package.json'), 'utf8')).version;
  if (got !== pkg.version) throw new Error(`installed version ${got}, expected ${pkg.version}`);
  return `webgpu-norm ${got}`;
});

if (installed) {
  check("the README's Node example runs as written", () => {
    writeFileSync(join(app, 'readme-node.mjs'), readmeExample('node'));
    const out = run(process.execPath, ['readme-node.mjs'], { cwd: app, env: gpuEnv, timeout: 120_000 });
    // 'auto' takes WebGPU on a GPU and the wasm backend on a CPU-emulated adapter (SwiftShader here).
    if (!/^(webgpu|wasm) /.test(out)) throw new Error(`expected the webgpu or wasm backend, got:\n${out}`);
    if (!/-1\.224/.test(out)) throw new Error(`expected the normalized values, got:\n${out}`);
    return out.split('\n')[0];
  });

  check('one op on the webgpu backend matches hand-computed values', () => {
    writeFileSync(
      join(app, 'op.mjs'),
      `import { create } from 'webgpu';
import { createNorms, ValueError } from 'webgpu-norm';
const norms = await createNorms({ gpu: create([]), backend: 'webgpu' });
const x = norms.tensor([1, 2, 3, 4, 10, 20, 30, 40], [2, 4]);
const w = norms.tensor([1, 2, 0.5, -1], [4]);
const { y, mean, rstd } = norms.layerNorm(x, { normalizedShape: [4], weight: w, eps: 0 });
const got = { y: [...await norms.read(y)], mean: [...await norms.read(mean)], rstd: [...await norms.read(rstd)] };
let strict = '';
try { norms.layerNorm(x, { normalizedShape: [4], wieght: w }); } catch (e) { strict = e instanceof ValueError ? e.message : 'wrong class ' + e; }
console.log(JSON.stringify({ backend: norms.backend, got, strict }));
norms.destroy();
`,
    );
    const r = JSON.parse(run(process.execPath, ['op.mjs'], { cwd: app, env: gpuEnv, timeout: 120_000 }).trim().split('\n').pop());
    if (r.backend !== 'webgpu') throw new Error(`backend ${r.backend}`);
    const want = { y: [], mean: [], rstd: [] };
    for (const row of [[1, 2, 3, 4], [10, 20, 30, 40]]) {
      const m = row.reduce((a, b) => a + b) / 4;
      const v = row.reduce((a, b) => a + (b - m) ** 2, 0) / 4;
      want.mean.push(m);
      want.rstd.push(1 / Math.sqrt(v));
      row.forEach((e, i) => want.y.push(((e - m) / Math.sqrt(v)) * [1, 2, 0.5, -1][i]));
    }
    for (const k of ['y', 'mean', 'rstd']) {
      want[k].forEach((e, i) => {
        if (!(Math.abs(r.got[k][i] - e) <= 1e-5 * Math.max(1, Math.abs(e)))) throw new Error(`${k}[${i}] = ${r.got[k][i]}, expected ${e}`);
      });
    }
    if (r.strict !== 'wieght: unknown option of layerNorm; did you mean weight?') throw new Error(`misspelled option: ${r.strict || 'did not throw'}`);
    return 'layerNorm [2, 4] y, mean, rstd within 1e-5; a misspelled option throws';
  });

  check('without a Vulkan driver, norms.note says what to do', () => {
    writeFileSync(join(app, 'note.mjs'), "import { create } from 'webgpu';\nimport { createNorms } from 'webgpu-norm';\nconst n = await createNorms({ gpu: create([]) });\nconsole.log(JSON.stringify({ backend: n.backend, note: n.note }));\n");
    const env = { ...process.env, XDG_RUNTIME_DIR: xdg, VK_ICD_FILENAMES: join(tmp, 'no-such-icd.json') };
    delete env.VK_DRIVER_FILES;
    const r = spawnSync(process.execPath, ['note.mjs'], { cwd: app, env, encoding: 'utf8', timeout: 120_000 });
    const { backend, note } = JSON.parse(r.stdout.trim().split('\n').pop());
    if (backend !== 'wasm') throw new Error(`expected the wasm fallback, got ${backend}`);
    if (!note.includes('VK_ICD_FILENAMES') || !note.includes('libvulkan')) throw new Error(`note does not say what to do: ${note}`);
    return note.slice(0, 90) + '…';
  });

  const consumer = `import { create } from 'webgpu';
import { createNorms, NormError, ValueError, type Norms, type Tensor, type LayerNormOptions, type BackwardResult, type DType } from 'webgpu-norm';
const norms: Norms = await createNorms({ gpu: create([]), backend: 'auto' });
const dtype: DType = 'float32';
const x: Tensor = norms.tensor(new Float32Array(6), [2, 3], dtype);
const opts: LayerNormOptions = { normalizedShape: [3], eps: 1e-5 };
const { y, mean, rstd } = norms.layerNorm(x, opts);
const back: BackwardResult = norms.layerNormBackward(y, x, mean, rstd, { normalizedShape: [3] });
const out: Float32Array = await norms.read(back.dx);
const e: NormError = new ValueError('x', 'x');
// @ts-expect-error: misspelled options are type errors too
norms.layerNorm(x, { normalizedShape: [3], wieght: x });
console.log(out.length, e.argument, norms.note);
`;
  for (const [resolution, module] of [
    ['nodenext', 'nodenext'],
    ['bundler', 'esnext'],
  ]) {
    check(`a TypeScript consumer type-checks (moduleResolution ${resolution}, skipLibCheck false)`, () => {
      writeFileSync(join(app, 'consumer.ts'), consumer);
      const cfg = { compilerOptions: { target: 'ES2022', module, moduleResolution: resolution, lib: ['ES2022', 'DOM'], types: [], strict: true, skipLibCheck: false, noEmit: true }, files: ['consumer.ts'] };
      writeFileSync(join(app, `tsconfig.${resolution}.json`), JSON.stringify(cfg, null, 2));
      run(process.execPath, [tsc, '-p', `tsconfig.${resolution}.json`], { cwd: app });
      return '';
    });
  }
}
finish();

function finish() {
  if (KEEP) console.log(`  (kept ${tmp})`);
  else rmSync(tmp, { recursive: true, force: true });
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
