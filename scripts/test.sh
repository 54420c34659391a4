#!/usr/bin/env bash
# The README's test command (npm test): typecheck, build, vitest on real WebGPU in Node (Dawn on
# SwiftShader here), then the Playwright e2e in headless Chromium.
source "$(dirname "$0")/env.sh"
echo "== typecheck"
npx tsc -p tsconfig.json --noEmit
echo "== build"
npm run -s build
echo "== vitest (Node, Dawn)"
npx vitest run
echo "== e2e (Playwright, headless Chromium)"
node e2e/run.mjs
echo "== bench smoke (Node runner, tiny shapes: every case checked against the CPU reference)"
node bench/node.mjs --quick --budget=0.2 --out="${TMPDIR:-/tmp}/webgpu-norm-bench-smoke"
