import { defineConfig } from 'vitest/config';
import { mkdirSync } from 'node:fs';

// Dawn (the `webgpu` package) on a machine without a GPU driver runs on two Vulkan
// implementations, and the suites run on both: SwiftShader (Chromium's) and Mesa's lavapipe (its
// shader compiler reassociates floating-point expressions, as WGSL allows; it has shader-f16 and
// 8-wide subgroups). Each project names its implementation (WEBGPU_NORM_TEST_ADAPTER), and the
// test helpers fail when the adapter they get is another. WEBGPU_NORM_ADAPTER=gpu runs the
// adapter-class project on the machine's own driver instead, and nothing on lavapipe.
export const ICD = {
  swiftshader: '/usr/lib/chromium/vk_swiftshader_icd.json',
  lavapipe: '/usr/share/vulkan/icd.d/lvp_icd.json',
} as const;
const ownDriver = process.env.WEBGPU_NORM_ADAPTER === 'gpu';
const common: Record<string, string> = {};
if (!process.env.XDG_RUNTIME_DIR) {
  mkdirSync('/tmp/webgpu-norm-xdg', { recursive: true });
  common.XDG_RUNTIME_DIR = '/tmp/webgpu-norm-xdg';
}
const on = (which: keyof typeof ICD): Record<string, string> =>
  ownDriver ? { ...common } : { ...common, VK_ICD_FILENAMES: ICD[which], WEBGPU_NORM_TEST_ADAPTER: which };
const env = on('swiftshader');
const lvp = on('lavapipe');

// The parity suites whose GPU instances take the adapter's own kernel class run a second time
// with the discrete-GPU class forced (gpuNorms() reads WEBGPU_NORM_TEST_ADAPTER_CLASS); the
// per-op suites already cover both classes through openBackends().
// Parity suites that reach the one-workgroup-per-row kernels on the GPU class (per op, rows.test.ts
// and group-norm-rows.test.ts run both the subgroup and the tree sums themselves).
const ROW_KERNEL_SUITES = ['float16', 'fused', 'nan-inf', 'random-parity'].map((f) => `test/${f}.test.ts`);
const BOTH_CLASSES = ['float16', 'float16-paths', 'fused', 'nan-inf', 'weight-norm', 'random-parity', 'verify'].map((f) => `test/${f}.test.ts`);
// On lavapipe: the adapter probe and every parity suite (per op, numerics, random parity, float16,
// fused, NaN/Inf, channels last, windowed, large, short rows, degenerate shapes) with the adapter's
// own class (CPU: it is a CPU-emulated adapter), and the parity suites of the GPU class. The two
// suites that sweep the one-workgroup-per-row kernels over every register count (rows,
// group-norm-rows) stay on SwiftShader: llvmpipe compiles each of those pipelines in 3-40 s
// (measured: layer norm K = 8192 forward 40 s, backward 80 s, on a loaded 2-core machine), which
// alone would take the suite past its time budget; the GPU-class project below still runs those
// kernels on lavapipe through the per-op, fused, float16 and random parity suites.
// Every suite not listed here runs on lavapipe (a new norm's suite included, without a line here):
// the ones about the host side or the API's plumbing, which do not depend on the Vulkan
// implementation, and rows / group-norm-rows (above).
const NOT_ON_LAVAPIPE = [
  'bad-input', 'strict-input', 'batch', 'bench-traffic', 'catalog', 'concurrency', 'cpu-reference', 'device-loss', 'encode', 'memory', 'plan',
  'profile', 'shaders', 'structure', 'wasm', 'wgsl', 'wrap', 'rows', 'group-norm-rows',
].map((f) => `test/${f}.test.ts`);
// (numerics, channels-last, windowed and the per-op suites make instances of both classes
// themselves, so the lavapipe project covers them on both.)
const OTHER_CLASS_SUITES = BOTH_CLASSES;

// The wasm backend as a third backend of the shared suites: gpuNorms() and openBackends() make
// wasm instances there (test/util/gpu.ts, WEBGPU_NORM_TEST_BACKEND). The suites listed are those
// about results, bad input, strict options and memory; the ones about WebGPU itself (adapters,
// pipelines, plans, bindings, encode, wrap, profile, device loss, float16 shader paths) are not:
// every suite runs there except those listed in NOT_ON_WASM.
// The random parity test draws 120 cases of its own seed here.
const NOT_ON_WASM = [
  'adapter-class', 'adapter', 'batch', 'bench-traffic', 'catalog', 'concurrency', 'cpu-reference', 'device-loss', 'encode', 'float16-paths',
  'group-norm-rows', 'half-fast', 'large', 'plan', 'profile', 'rows', 'shaders', 'short-rows', 'structure', 'wgsl', 'windowed', 'wrap',
].map((f) => `test/${f}.test.ts`);

export default defineConfig({
  test: {
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 300_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two test files at a time (the default on a 2-core machine is one): much of a file's time is
    // single-threaded (the float64 references, shader compilation), and two workers measured the
    // rows, windowed and large suites 1.65x faster in wall time on this 2-core VM (171 s against
    // 282 s one after the other).
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'adapter-class', include: ['test/**/*.test.ts'], exclude: ['test/wasm.test.ts'], env } },
      { extends: true, test: { name: 'wasm', include: ['test/**/*.test.ts'], exclude: NOT_ON_WASM, env: { ...env, WEBGPU_NORM_TEST_BACKEND: 'wasm', WEBGPU_NORM_FUZZ: '120', WEBGPU_NORM_SEED: '20261210' } } },
      { extends: true, test: { name: 'gpu-class', include: BOTH_CLASSES, env: { ...env, WEBGPU_NORM_TEST_ADAPTER_CLASS: 'gpu' } } },
      // The discrete-GPU class once more with subgroup operations unused: the workgroup-tree
      // sums of the one-workgroup-per-row kernels (devices without 'subgroups'); the random parity
      // test draws 80 cases of another seed there (new inputs, less time).
      { extends: true, test: { name: 'gpu-class-tree', include: ROW_KERNEL_SUITES, env: { ...env, WEBGPU_NORM_TEST_ADAPTER_CLASS: 'gpu', WEBGPU_NORM_TEST_SUBGROUPS: 'off', WEBGPU_NORM_FUZZ: '80', WEBGPU_NORM_SEED: '20261130' } } },
      ...(ownDriver
        ? []
        : [
            // Random parity draws 120 cases of its own seed here (the default seed's 200 run on SwiftShader).
            { extends: true, test: { name: 'lavapipe', include: ['test/**/*.test.ts'], exclude: NOT_ON_LAVAPIPE, env: { ...lvp, WEBGPU_NORM_FUZZ: '120', WEBGPU_NORM_SEED: '20261208' } } },
            // Random parity draws 40 cases of a third seed here (new inputs; each GPU-class pipeline costs
            // llvmpipe seconds to compile).
            { extends: true, test: { name: 'lavapipe-gpu-class', include: OTHER_CLASS_SUITES, env: { ...lvp, WEBGPU_NORM_TEST_ADAPTER_CLASS: 'gpu', WEBGPU_NORM_FUZZ: '40', WEBGPU_NORM_SEED: '20261207' } } },
          ]),
    ],
  },
});
