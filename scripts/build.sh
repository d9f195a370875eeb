#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build the patched kernel and the static selftests, incrementally.
#   scripts/build.sh [kernel|selftests|all]     (default: all)
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$TOP/build}
SRC=$BUILD/src
OBJ=$BUILD/obj
SEL=$BUILD/sel
JOBS=${JOBS:-$(($(nproc) + 1))}
FRAGMENT=${CONFIG_FRAGMENT:-$TOP/configs/hugetlb-gmem.config}
what=${1:-all}

export CCACHE_BASEDIR=$BUILD
export CCACHE_NOHASHDIR=1

"$TOP/scripts/deps.sh"
python3 "$TOP/scripts/prepare_tree.py"

config() {
	local sum
	sum=$(cat "$FRAGMENT" "$TOP/scripts/build.sh" | sha1sum | cut -c1-40)
	if [ -f "$OBJ/.config" ] && [ "$(cat "$OBJ/.fragment" 2>/dev/null)" = "$sum" ]; then
		return 0
	fi
	echo "build: generating .config (tinyconfig + ${FRAGMENT#"$TOP"/})"
	mkdir -p "$OBJ"
	make -s -C "$SRC" O="$OBJ" tinyconfig >/dev/null
	"$SRC/scripts/kconfig/merge_config.sh" -m -O "$OBJ" "$OBJ/.config" \
		"$FRAGMENT" >/dev/null
	make -s -C "$SRC" O="$OBJ" olddefconfig >/dev/null
	# Every option the fragment asks for must have taken effect, except
	# those marked "# optional" in the fragment.
	local bad=0 line sym
	while read -r line; do
		sym=${line%%=*}
		grep -qx "$line" "$OBJ/.config" && continue
		if grep -q "^# optional: $sym\$" "$FRAGMENT"; then
			echo "build: note: optional $line not in effect"
		else
			echo "build: error: $line did not take effect" >&2
			bad=1
		fi
	done < <(grep -E '^CONFIG_[A-Z0-9_]+=' "$FRAGMENT")
	[ $bad -eq 0 ] || exit 1
	echo "$sum" > "$OBJ/.fragment"
}

kernel() {
	config
	echo "build: kernel (make -j$JOBS, ccache)"
	make -s -C "$SRC" O="$OBJ" CC="ccache gcc" -j"$JOBS" bzImage
	make -s -C "$SRC" O="$OBJ" headers >/dev/null
	echo "build: $OBJ/arch/x86/boot/bzImage"
}

selftests() {
	local suite name bin rest kvm=() mm=()
	while read -r suite name bin rest; do
		case "$suite" in
		kvm) kvm+=("$SEL/kvm/$bin") ;;
		mm) mm+=("$SEL/mm/$bin") ;;
		esac
	done < <(grep -v '^#' "$TOP/tests/vm-tests.txt" | grep .)
	mkdir -p "$SEL/kvm" "$SEL/mm"
	echo "build: selftests (${#kvm[@]} kvm, ${#mm[@]} mm, static)"
	make -s -j"$JOBS" -C "$SRC/tools/testing/selftests/kvm" OUTPUT="$SEL/kvm" \
		KHDR_INCLUDES="-isystem $OBJ/usr/include" EXTRA_CFLAGS=-static \
		"${kvm[@]}" $(extra_kvm_programs)
	make -s -j"$JOBS" -C "$SRC/tools/testing/selftests/mm" OUTPUT="$SEL/mm" \
		KHDR_INCLUDES="-isystem $OBJ/usr/include" EXTRA_CFLAGS=-static \
		"${mm[@]}"
}

# Programs built beside the tests but not run as tests (reports, benchmarks).
extra_kvm_programs() {
	local p
	for p in $(cat "$TOP/tests/vm-programs.txt" 2>/dev/null | grep -v '^#'); do
		echo "$SEL/kvm/$p"
	done
}

case "$what" in
kernel) kernel ;;
selftests) selftests ;;
all) kernel; selftests ;;
*) echo "usage: $0 [kernel|selftests|all]" >&2; exit 2 ;;
esac
