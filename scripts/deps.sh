#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Install what building, booting and testing need, with apt-get, when
# missing, and fetch Debian's linux-source-7.3 (trixie-backports) without
# adding trixie to the system's apt sources.
#
#   scripts/deps.sh            packages, then the kernel source tarball
#   scripts/deps.sh --tarball  only print the tarball's path (fetching it
#                              first if needed)
#   scripts/deps.sh --mirror   print the Debian mirror it would use
#
# The source tarball comes from a private apt state in $SOURCE_CACHE
# (default /var/cache/hugetlb-gmem, or build/apt when that is not
# writable): its own sources.list with the single line
#   deb MIRROR trixie-backports main
# (MIRROR: $DEBIAN_MIRROR, or the Debian mirror that the system's own apt
# sources use), its own package lists and archive cache.  "apt-get
# download" fetches the .deb (verified against the signed Release file like
# any apt download) and dpkg-deb unpacks it there.  Nothing is installed
# and no system package is upgraded.  With KERNEL_SRC set no tarball is needed.
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
SUITE=${SOURCE_SUITE:-trixie-backports}
PKG=linux-source-7.3
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

packages() {
	local pkgs=(qemu-system-x86 busybox-static ccache gcc make flex bison
		    bc libelf-dev libssl-dev cpio xz-utils rsync python3 patch
		    libc6-dev perl diffutils git)
	local missing=() p
	for p in "${pkgs[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q "ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "deps: installing ${missing[*]}" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
		--no-install-recommends "${missing[@]}" >/dev/null
}

cache_dir() {
	if [ -n "${SOURCE_CACHE:-}" ]; then
		echo "$SOURCE_CACHE"
	elif mkdir -p /var/cache/hugetlb-gmem 2>/dev/null &&
	     [ -w /var/cache/hugetlb-gmem ]; then
		echo /var/cache/hugetlb-gmem
	else
		echo "${BUILD_DIR:-$TOP/build}/apt"
	fi
}

# The Debian mirror of the system's apt sources (the URI serving a
# distribution's main component from a path ending in /debian).
mirror() {
	local m=${DEBIAN_MIRROR:-}
	[ -n "$m" ] || m=$(apt-cache policy 2>/dev/null | awk '
		$3 ~ /^[a-z-]+\/main$/ && $2 ~ /^https?:\/\/.*\/debian\/?$/ {
			print $2; exit }')
	# Without package lists yet: the source files themselves.
	[ -n "$m" ] || m=$(cat /etc/apt/sources.list \
		/etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
		2>/dev/null | grep -oE 'https?://[^ ]*/debian/?( |$)' | head -n1)
	m=${m% }
	[ -n "$m" ] || { echo "deps: no Debian mirror in the apt sources; set DEBIAN_MIRROR" >&2; exit 1; }
	echo "${m%/}"
}

# Print the path of linux-source-7.3.tar.xz, downloading and unpacking the
# .deb into the cache when it is not there yet.
tarball() {
	local d t
	d=$(cache_dir)
	t=$d/x/usr/src/$PKG.tar.xz
	if [ -f "$t" ]; then
		echo "$t"
		return 0
	fi
	mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
	echo "deb $(mirror) $SUITE main" > "$d/sources.list"
	local A=(-o "Dir::Etc::SourceList=$d/sources.list"
		 -o Dir::Etc::SourceParts=/dev/null
		 -o "Dir::State::Lists=$d/lists" -o "Dir::Cache=$d/cache")
	# apt's download sandbox user cannot write into a root-only cache.
	[ "$(id -u)" -ne 0 ] || A+=(-o APT::Sandbox::User=root)
	echo "deps: fetching $PKG from $SUITE into $d" >&2
	apt-get "${A[@]}" -qq update >&2
	rm -f "$d"/"$PKG"_*.deb
	(cd "$d" && apt-get "${A[@]}" -qq download "$PKG" >&2)
	rm -rf "$d/x.tmp"
	dpkg-deb -x "$d"/"$PKG"_*.deb "$d/x.tmp"
	[ -f "$d/x.tmp/usr/src/$PKG.tar.xz" ] ||
		{ echo "deps: $PKG .deb has no usr/src/$PKG.tar.xz" >&2; exit 1; }
	rm -rf "$d/x"
	mv "$d/x.tmp" "$d/x"
	# The .deb is kept: its name says which 7.3.x point release this is.
	echo "$t"
}

case ${1:-} in
--tarball) tarball ;;
--mirror) mirror ;;
"") packages; [ -n "${KERNEL_SRC:-}" ] || tarball >/dev/null ;;
*) sed -n '3,20p' "$0" >&2; exit 2 ;;
esac
