# Shared environment for the test and bench scripts: Chromium (for SwiftShader and Playwright),
# the Vulkan loader, and node_modules. Prints what is missing and how to get it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
CHROME="${CHROME_PATH:-/usr/bin/chromium}"
[ -x "$CHROME" ] || missing+=("chromium at $CHROME (apt-get install -y chromium, or set CHROME_PATH)")
SWIFTSHADER=/usr/lib/chromium/vk_swiftshader_icd.json
if [ "${WEBGPU_NORM_ADAPTER:-swiftshader}" != gpu ]; then
  [ -f "$SWIFTSHADER" ] || missing+=("SwiftShader ICD $SWIFTSHADER (apt-get install -y chromium)")
fi
{ ldconfig -p 2>/dev/null || true; } | grep -c libvulkan.so.1 >/dev/null || missing+=("the Vulkan loader libvulkan.so.1 (apt-get install -y libvulkan1)")
[ -d node_modules/webgpu ] || missing+=("node_modules (npm ci)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "webgpu-norm: missing prerequisites:" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
  echo "On Debian as root: apt-get update && apt-get install -y chromium libvulkan1 && npm ci" >&2
  exit 2
fi
export CHROME_PATH="$CHROME"
if [ "${WEBGPU_NORM_ADAPTER:-swiftshader}" != gpu ] && [ -z "${VK_ICD_FILENAMES:-}" ]; then export VK_ICD_FILENAMES="$SWIFTSHADER"; fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/webgpu-norm-xdg}"
mkdir -p "$XDG_RUNTIME_DIR"
