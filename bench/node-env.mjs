// The Node runners' Vulkan defaults, the same as scripts/env.sh's, for a plain `node bench/…`:
// WEBGPU_NORM_ADAPTER=lavapipe picks Mesa's lavapipe, =swiftshader SwiftShader, =gpu the machine's
// own driver; with none of these and no Vulkan ICD chosen (VK_ICD_FILENAMES / VK_DRIVER_FILES),
// Chromium's SwiftShader when it is installed. An XDG_RUNTIME_DIR for Dawn when none is set.
import { existsSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';

const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
const LAVAPIPE = '/usr/share/vulkan/icd.d/lvp_icd.json';

export function nodeGpuEnv() {
  const chosen = process.env.WEBGPU_NORM_ADAPTER;
  if (chosen === 'lavapipe' || chosen === 'swiftshader') {
    const icd = chosen === 'lavapipe' ? LAVAPIPE : SWIFTSHADER;
    if (!existsSync(icd)) throw new Error(`WEBGPU_NORM_ADAPTER=${chosen}: ${icd} is missing (bash scripts/setup.sh installs it)`);
    process.env.VK_ICD_FILENAMES = icd;
  }
  if (process.env.WEBGPU_NORM_ADAPTER !== 'gpu' && !process.env.VK_ICD_FILENAMES && !process.env.VK_DRIVER_FILES && existsSync(SWIFTSHADER)) {
    process.env.VK_ICD_FILENAMES = SWIFTSHADER;
  }
  if (!process.env.XDG_RUNTIME_DIR) {
    process.env.XDG_RUNTIME_DIR = join(os.tmpdir(), 'webgpu-norm-xdg');
    mkdirSync(process.env.XDG_RUNTIME_DIR, { recursive: true });
  }
}
