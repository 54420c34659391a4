#!/usr/bin/env bash
# The README's test command (npm test): typecheck, build, API docs, vitest on real WebGPU in Node
# (Dawn on SwiftShader here), the package as a user installs it, the Playwright e2e in headless
# Chromium, and a smoke run of the benchmark. Every stage runs (a failed build skips the stages
# that need it); the output ends with one line per stage and, last, `N passed, M failed` over
# all stages. Exit status 1 when anything failed.
WEBGPU_NORM_NEEDS_LAVAPIPE=1 source "$(dirname "$0")/env.sh"
set +e

# Colours only on a terminal: when the log goes to a file or a pipe (CI), no ANSI codes.
if [ -t 1 ]; then
  export FORCE_COLOR=1
else
  unset FORCE_COLOR
  export NO_COLOR=1
fi

LOGS=$(mktemp -d "${TMPDIR:-/tmp}/webgpu-norm-test-XXXXXX")
trap 'rm -rf "$LOGS"' EXIT
SUMMARY=()
TOTAL_PASSED=0
TOTAL_FAILED=0
record() { # name passed failed
  SUMMARY+=("$(printf '%-10s %5d passed, %d failed' "$1" "$2" "$3")")
  TOTAL_PASSED=$((TOTAL_PASSED + $2))
  TOTAL_FAILED=$((TOTAL_FAILED + $3))
}
# A stage that is one check: passed when the command exits 0.
single() { # name command...
  local name=$1
  shift
  echo "== $name"
  if "$@"; then record "$name" 1 0; return 0; else record "$name" 0 1; return 1; fi
}
# A stage whose runner ends with `N passed, M failed`; its exit status must agree.
counted() { # name command...
  local name=$1
  shift
  echo "== $name"
  "$@" 2>&1 | tee "$LOGS/$name.log"
  local rc=${PIPESTATUS[0]}
  local line
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$LOGS/$name.log" | tail -1)
  if [ -z "$line" ]; then record "$name" 0 1; return; fi
  local p f
  p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
  f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
  if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
  record "$name" "$p" "$f"
}

single build-wasm node scripts/build-wasm.mjs
single typecheck npx tsc -p tsconfig.json --noEmit
single build npm run -s build
built=$?
single docs npm run -s docs -- --logLevel Warn

echo "== vitest (Node, Dawn)"
npx vitest run --reporter=default --reporter=json --outputFile="$LOGS/vitest.json"
vitest_rc=$?
counts=$(node -e '
  try {
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(r.numPassedTests, r.numFailedTests || r.numFailedTestSuites || 0);
  } catch { console.log("0 1"); }' "$LOGS/vitest.json")
read -r vp vf <<<"$counts"
if [ "$vitest_rc" != 0 ] && [ "$vf" = 0 ]; then vf=1; fi
record vitest "$vp" "$vf"

if [ "$built" = 0 ]; then
  counted package node scripts/package-check.mjs
  counted e2e node e2e/run.mjs
  echo "== bench smoke (the package bundle in Node, tiny shapes: every case checked against the CPU reference)"
  node bench/node.mjs --quick --budget=0.2 --lib=dist/index.js --out="$LOGS/bench" 2>&1 | tee "$LOGS/bench.log"
  bench_rc=${PIPESTATUS[0]}
  line=$(grep -E '^[0-9]+ cases in .*: [0-9]+ ok, [0-9]+ FAIL, [0-9]+ error' "$LOGS/bench.log" | tail -1)
  if [ -n "$line" ]; then
    bp=$(echo "$line" | sed -E 's/.*: ([0-9]+) ok.*/\1/')
    bf=$(echo "$line" | sed -E 's/.* ([0-9]+) FAIL, ([0-9]+) error.*/\1 + \2/')
    bf=$((bf))
  else
    bp=0 bf=1
  fi
  if [ "$bench_rc" != 0 ] && [ "$bf" = 0 ]; then bf=1; fi
  record bench "$bp" "$bf"
else
  echo "== package, e2e, bench smoke: skipped (the build failed)"
  record package 0 1
  record e2e 0 1
  record bench 0 1
fi

echo
echo "== summary"
for s in "${SUMMARY[@]}"; do echo "$s"; done
echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
[ "$TOTAL_FAILED" = 0 ]
