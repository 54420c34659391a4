#!/usr/bin/env bash
# Installs the system packages the tests and the benchmark need (Debian 12, as root): Chromium
# (headless browser runs, and its SwiftShader Vulkan driver), the Vulkan loader, and Mesa's lavapipe
# 25 from bookworm-backports (a second Vulkan implementation, whose shader compiler reassociates
# floating-point expressions as WGSL allows). Does nothing when they are already there.
set -euo pipefail
LVP=/usr/share/vulkan/icd.d/lvp_icd.json
have_lvp() { [ -f "$LVP" ] && dpkg-query -W -f '${Version}' mesa-vulkan-drivers 2>/dev/null | grep -Eq '^(2[5-9]|[3-9][0-9])\.'; }
if [ -x /usr/bin/chromium ] && { ldconfig -p 2>/dev/null || true; } | grep -q libvulkan.so.1 && have_lvp; then
  echo "setup: chromium, libvulkan1 and lavapipe (mesa-vulkan-drivers $(dpkg-query -W -f '${Version}' mesa-vulkan-drivers)) are installed"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "setup: run as root (apt-get): chromium, libvulkan1 and mesa-vulkan-drivers >= 25 from bookworm-backports are needed" >&2
  exit 2
fi
export DEBIAN_FRONTEND=noninteractive
SRC=/etc/apt/sources.list.d/backports.sources
if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > "$SRC"
fi
apt-get update
apt-get install -y chromium libvulkan1
apt-get install -y -t bookworm-backports mesa-vulkan-drivers
have_lvp || { echo "setup: lavapipe ($LVP, mesa-vulkan-drivers >= 25) still missing after the install" >&2; exit 1; }
