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

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 120_000,
    pool: 'forks',
    env,
  },
});
