// The Node runners' Vulkan defaults, the same as scripts/env.sh's, for a plain `node bench/…`:
// with no Vulkan ICD chosen (VK_ICD_FILENAMES / VK_DRIVER_FILES) and WEBGPU_NORM_ADAPTER != gpu,
// Chromium's SwiftShader when it is installed; an XDG_RUNTIME_DIR for Dawn when none is set.
import { existsSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';

const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';

export function nodeGpuEnv() {
  if (process.env.WEBGPU_NORM_ADAPTER !== 'gpu' && !process.env.VK_ICD_FILENAMES && !process.env.VK_DRIVER_FILES && existsSync(SWIFTSHADER)) {
    process.env.VK_ICD_FILENAMES = SWIFTSHADER;
  }
  if (!process.env.XDG_RUNTIME_DIR) {
    process.env.XDG_RUNTIME_DIR = join(os.tmpdir(), 'webgpu-norm-xdg');
    mkdirSync(process.env.XDG_RUNTIME_DIR, { recursive: true });
  }
}
