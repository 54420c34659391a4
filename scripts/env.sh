# Shared environment for the test and bench scripts: Chromium (for SwiftShader and Playwright),
# the Vulkan loader, and node_modules. Prints what is missing and how to get it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
CHROME="${CHROME_PATH:-/usr/bin/chromium}"
[ -x "$CHROME" ] || missing+=("chromium at $CHROME (apt-get install -y chromium, or set CHROME_PATH)")
SWIFTSHADER=/usr/lib/chromium/vk_swiftshader_icd.json
LAVAPIPE=/usr/share/vulkan/icd.d/lvp_icd.json
if [ "${WEBGPU_NORM_ADAPTER:-swiftshader}" != gpu ]; then
  [ -f "$SWIFTSHADER" ] || missing+=("SwiftShader ICD $SWIFTSHADER (apt-get install -y chromium)")
  if [ "${WEBGPU_NORM_NEEDS_LAVAPIPE:-0}" = 1 ] && [ ! -f "$LAVAPIPE" ]; then
    missing+=("Mesa lavapipe 25 ICD $LAVAPIPE (the tests run on it too: mesa-vulkan-drivers from bookworm-backports; bash scripts/setup.sh installs it)")
  fi
fi
{ ldconfig -p 2>/dev/null || true; } | grep -c libvulkan.so.1 >/dev/null || missing+=("the Vulkan loader libvulkan.so.1 (apt-get install -y libvulkan1)")
[ -d node_modules/webgpu ] || missing+=("node_modules (npm ci)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "webgpu-norm: missing prerequisites:" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
  echo "On Debian as root: bash scripts/setup.sh && npm ci" >&2
  exit 2
fi
export CHROME_PATH="$CHROME"
if [ "${WEBGPU_NORM_ADAPTER:-swiftshader}" != gpu ] && [ -z "${VK_ICD_FILENAMES:-}" ]; then export VK_ICD_FILENAMES="$SWIFTSHADER"; fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/webgpu-norm-xdg}"
mkdir -p "$XDG_RUNTIME_DIR"
