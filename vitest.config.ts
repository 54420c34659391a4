import { defineConfig } from 'vitest/config';
import { existsSync, mkdirSync } from 'node:fs';

// Dawn (the `webgpu` package) on a machine without a GPU driver: point Vulkan at Chromium's
// SwiftShader. Set WEBGPU_NORM_ADAPTER=gpu to use the machine's own driver instead.
const swiftshader = '/usr/lib/chromium/vk_swiftshader_icd.json';
const env: Record<string, string> = {};
if (process.env.WEBGPU_NORM_ADAPTER !== 'gpu' && !process.env.VK_ICD_FILENAMES && existsSync(swiftshader)) env.VK_ICD_FILENAMES = swiftshader;
if (!process.env.XDG_RUNTIME_DIR) {
  mkdirSync('/tmp/webgpu-norm-xdg', { recursive: true });
  env.XDG_RUNTIME_DIR = '/tmp/webgpu-norm-xdg';
}

// The parity suites whose GPU instances take the adapter's own kernel class run a second time
// with the discrete-GPU class forced (gpuNorms() reads WEBGPU_NORM_TEST_ADAPTER_CLASS); the
// per-op suites already cover both classes through openBackends().
// Parity suites that reach the one-workgroup-per-row kernels on the GPU class (per op, rows.test.ts
// and group-norm-rows.test.ts run both the subgroup and the tree sums themselves).
const ROW_KERNEL_SUITES = ['float16', 'fused', 'nan-inf', 'random-parity'].map((f) => `test/${f}.test.ts`);
const BOTH_CLASSES = ['float16', 'float16-paths', 'fused', 'nan-inf', 'weight-norm', 'random-parity', 'verify'].map((f) => `test/${f}.test.ts`);

export default defineConfig({
  test: {
    testTimeout: 300_000,
    hookTimeout: 120_000,
    pool: 'forks',
    projects: [
      { extends: true, test: { name: 'adapter-class', include: ['test/**/*.test.ts'], env } },
      { extends: true, test: { name: 'gpu-class', include: BOTH_CLASSES, env: { ...env, WEBGPU_NORM_TEST_ADAPTER_CLASS: 'gpu' } } },
      // The discrete-GPU class once more with subgroup operations unused: the workgroup-tree
      // sums of the one-workgroup-per-row kernels (devices without 'subgroups'); the random parity
      // test draws 80 cases of another seed there (new inputs, less time).
      { extends: true, test: { name: 'gpu-class-tree', include: ROW_KERNEL_SUITES, env: { ...env, WEBGPU_NORM_TEST_ADAPTER_CLASS: 'gpu', WEBGPU_NORM_TEST_SUBGROUPS: 'off', WEBGPU_NORM_FUZZ: '80', WEBGPU_NORM_SEED: '20261130' } } },
    ],
  },
});
