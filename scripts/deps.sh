#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Install what building, booting and testing need, with apt-get, when missing.
set -euo pipefail

pkgs=(linux-source-6.12 qemu-system-x86 busybox-static ccache gcc make flex
      bison bc libelf-dev libssl-dev cpio xz-utils rsync python3 patch
      libc6-dev perl diffutils git)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
	--no-install-recommends "${missing[@]}" >/dev/null
