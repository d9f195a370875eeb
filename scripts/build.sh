#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build the patched kernel and the static selftests, incrementally.
#   scripts/build.sh [kernel|selftests|sev|all]     (default: all)
# sev builds KVM (arch/x86/kvm/) with KVM_AMD_SEV in build/obj-sev.
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

config() {	# config OBJ_DIR FRAGMENT...
	local obj=$1 sum
	shift
	sum=$( (cat "$@" "$TOP/scripts/build.sh"; echo "${SERIES_UPTO:-}") |
		sha1sum | cut -c1-40)
	if [ -f "$obj/.config" ] && [ "$(cat "$obj/.fragment" 2>/dev/null)" = "$sum" ]; then
		return 0
	fi
	echo "build: generating $obj/.config (tinyconfig + ${*#"$TOP"/})"
	mkdir -p "$obj"
	make -s -C "$SRC" O="$obj" tinyconfig >/dev/null
	"$SRC/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" \
		"$@" >/dev/null
	make -s -C "$SRC" O="$obj" olddefconfig >/dev/null
	# Every option the fragment asks for must have taken effect, except
	# those marked "# optional" in the fragment.
	local bad=0 line sym
	while read -r line; do
		sym=${line%%=*}
		grep -qx "$line" "$obj/.config" && continue
		if grep -q "^# optional: $sym\$" "$@"; then
			echo "build: note: optional $line not in effect"
		elif [ -n "${SERIES_UPTO:-}" ]; then
			# A later patch of the series adds the symbol.
			echo "build: note: $line not in effect after patch $SERIES_UPTO"
		else
			echo "build: error: $line did not take effect" >&2
			bad=1
		fi
	done < <(cat "$@" | grep -E '^CONFIG_[A-Z0-9_]+=')
	[ $bad -eq 0 ] || exit 1
	echo "$sum" > "$obj/.fragment"
}

kernel() {
	config "$OBJ" "$FRAGMENT"
	echo "build: kernel (make -j$JOBS, ccache)"
	make -s -C "$SRC" O="$OBJ" CC="ccache gcc" -j"$JOBS" bzImage
	make -s -C "$SRC" O="$OBJ" headers >/dev/null
	echo "build: $OBJ/arch/x86/boot/bzImage"
}

selftests() {
	local suite name bin rest kvm=() mm=()
	while read -r suite name bin rest; do
		# A prefix of the series (check-series) has only some programs.
		if [ -n "${SERIES_UPTO:-}" ] &&
		   [ ! -e "$SRC/tools/testing/selftests/$suite/$bin.c" ]; then
			continue
		fi
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
		if [ -n "${SERIES_UPTO:-}" ] &&
		   [ ! -e "$SRC/tools/testing/selftests/kvm/$p.c" ]; then
			continue
		fi
		echo "$SEL/kvm/$p"
	done
}

# SNP consumes the invalidation contract: build KVM with KVM_AMD_SEV too.
sev() {
	config "$BUILD/obj-sev" "$FRAGMENT" "$TOP/configs/sev-build.config"
	echo "build: KVM and the SNP host code with KVM_AMD_SEV (arch/x86/kvm/, arch/x86/virt/, arch/x86/mm/)"
	make -s -C "$SRC" O="$BUILD/obj-sev" CC="ccache gcc" -j"$JOBS" \
		arch/x86/kvm/ arch/x86/virt/ arch/x86/mm/
}

case "$what" in
kernel) kernel ;;
sev) sev ;;
selftests) selftests ;;
all) kernel; selftests ;;
*) echo "usage: $0 [kernel|selftests|sev|all]" >&2; exit 2 ;;
esac
