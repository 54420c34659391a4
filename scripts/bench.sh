#!/usr/bin/env bash
# `npm start`: build the bundle, then the browser benchmark (bench/browser.mjs): webgpu-norm,
# ONNX Runtime Web and TensorFlow.js side by side in headless Chromium, WebGPU on SwiftShader
# (or the real GPU with --adapter=gpu). Results: bench/out/ (JSON, HTML report, one PNG per
# chart, latest.md; not tracked by git); --save also updates bench/results/, the committed
# snapshot the README shows. Flags go to bench/browser.mjs: npm start -- --quick | --filter=S |
# --budget=S | --adapter=gpu | --no-peers | --save
for a in "$@"; do
  if [ "$a" = --adapter=gpu ]; then export WEBGPU_NORM_ADAPTER=gpu; fi
done
# Prerequisites (Chromium, SwiftShader, the Vulkan loader, node_modules); cds to the repo root.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
missing=()
for p in vite playwright-core onnxruntime-web @tensorflow/tfjs-core @tensorflow/tfjs-backend-webgpu; do
  [ -d "node_modules/$p" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "webgpu-norm bench: missing npm packages: ${missing[*]} (run npm ci)" >&2
  exit 2
fi
echo "== build (npm run build:bench: build/bench/index.js; dist/ is left alone)"
npm run -s build:bench
echo "== browser benchmark"
exec node bench/browser.mjs "$@"
