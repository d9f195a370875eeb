#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build the patched kernel and the static selftests, incrementally.
#   scripts/build.sh [kernel|selftests|bench|cc|config|all]  (default: all)
# kernel: the test kernel (tinyconfig + configs/hugetlb-gmem.config) in
#         build/obj; selftests: the programs tests/vm-tests.txt and
#         tests/vm-programs.txt name whose source is in build/src, static,
#         in build/sel; bench: the benchmark kernel (the same plus
#         configs/bench.config: no KASAN, lockdep, kmemleak, KVM_PROVE_MMU)
#         in build/obj-bench; cc: KVM and the SEV-SNP and TDX host code
#         (configs/cc-build.config) in build/obj-cc; config: only generate
#         and check the three .configs.
# Every target first runs scripts/prepare.py (build/src = 7.3 + series).
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
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-10G}

"$TOP/scripts/deps.sh"
python3 "$TOP/scripts/prepare.py"

# The value each fragment line asks for, the last fragment winning:
# "CONFIG_X=v" or "# CONFIG_X is not set".
wanted() {
	cat "$@" | grep -E '^CONFIG_[A-Z0-9_]+=|^# CONFIG_[A-Z0-9_]+ is not set' |
		awk '{ s = $0; sub(/^# /, "", s); sub(/[= ].*/, "", s)
		       v[s] = $0; if (!(s in o)) { o[s] = n++; k[n - 1] = s } }
		     END { for (i = 0; i < n; i++) print v[k[i]] }'
}

config() {	# config OBJ_DIR FRAGMENT...
	local obj=$1 sum
	shift
	# Regenerated when a fragment, this script, the base or any Kconfig
	# file changes (a patch adding a symbol: kbuild's own syncconfig would
	# ask for it on a terminal that is not there and set it to n).
	sum=$( (cat "$@" "$TOP/scripts/build.sh"; echo "${SERIES_UPTO:-}";
		cat "$SRC/.prepare-unpacked"
		cd "$SRC" && find . -name 'Kconfig*' -not -path './tools/*' -print0 |
			sort -z | xargs -0 cat) | sha1sum | cut -c1-40)
	if [ -f "$obj/.config" ] && [ "$(cat "$obj/.fragment" 2>/dev/null)" = "$sum" ]; then
		return 0
	fi
	echo "build: generating $obj/.config (tinyconfig + ${*#"$TOP"/})"
	mkdir -p "$obj"
	make -s -C "$SRC" O="$obj" tinyconfig >/dev/null
	"$SRC/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" \
		"$@" >/dev/null
	make -s -C "$SRC" O="$obj" olddefconfig >/dev/null
	# Every option the fragments ask for must have taken effect (a build
	# of a prefix of the series may lack a symbol a later patch adds).
	local bad=0 line sym
	while read -r line; do
		sym=${line#"# "}
		sym=${sym%%[= ]*}
		case "$line" in
		"# "*)	# "is not set": absent (unmet dependencies) is fine too
			grep -q "^$sym=" "$obj/.config" || continue ;;
		*)	grep -qx "$line" "$obj/.config" && continue ;;
		esac
		if [ -n "${SERIES_UPTO:-}" ]; then
			echo "build: note: $line not in effect after patch $SERIES_UPTO"
		else
			echo "build: error: $line did not take effect" >&2
			bad=1
		fi
	done < <(wanted "$@")
	[ $bad -eq 0 ] || exit 1
	echo "$sum" > "$obj/.fragment"
}

kernel() {	# kernel OBJ_DIR FRAGMENT...
	local obj=$1
	config "$@"
	echo "build: kernel in ${obj#"$TOP"/} (make -j$JOBS, ccache)"
	make -s -C "$SRC" O="$obj" CC="ccache gcc" -j"$JOBS" bzImage
	make -s -C "$SRC" O="$obj" headers >/dev/null
	echo "build: $obj/arch/x86/boot/bzImage"
}

selftests() {
	local st suite name bin rest kvm=() mm=() p
	# The uAPI headers need the configuration only, not a kernel build
	# (make run builds the benchmark kernel, not the test kernel).
	if [ ! -d "$OBJ/usr/include" ]; then
		config "$OBJ" "$FRAGMENT"
		make -s -C "$SRC" O="$OBJ" headers >/dev/null
	fi
	local line
	while read -r line; do
		set -- $line
		[ "$1" = run ] || continue
		shift
		while [[ $1 == @* ]]; do shift; done	# @last, @noskip
		suite=$1 bin=$3
		case "$suite" in
		kvm) kvm+=("$SEL/kvm/$bin") ;;
		mm) mm+=("$SEL/mm/$bin") ;;
		esac
	done < <("$TOP/scripts/testlist.py")
	# Programs built beside the tests but not run as tests (benchmarks).
	for p in $(grep -v '^#' "$TOP/tests/vm-programs.txt" 2>/dev/null); do
		[ -e "$SRC/tools/testing/selftests/kvm/$p.c" ] && kvm+=("$SEL/kvm/$p")
	done
	mkdir -p "$SEL/kvm" "$SEL/mm"
	# A program listed twice (several argument sets) is built once.
	mapfile -t kvm < <(printf '%s\n' "${kvm[@]}" | sort -u | grep .)
	mapfile -t mm < <(printf '%s\n' "${mm[@]}" | sort -u | grep .)
	echo "build: selftests (${#kvm[@]} kvm, ${#mm[@]} mm, static)"
	if [ ${#kvm[@]} -gt 0 ]; then
		make -s -j"$JOBS" -C "$SRC/tools/testing/selftests/kvm" \
			OUTPUT="$SEL/kvm" KHDR_INCLUDES="-isystem $OBJ/usr/include" \
			EXTRA_CFLAGS=-static "${kvm[@]}"
	fi
	if [ ${#mm[@]} -gt 0 ]; then
		make -s -j"$JOBS" -C "$SRC/tools/testing/selftests/mm" \
			OUTPUT="$SEL/mm" KHDR_INCLUDES="-isystem $OBJ/usr/include" \
			EXTRA_CFLAGS=-static "${mm[@]}"
	fi
}

# SEV-SNP and TDX consume guest_memfd: build KVM with KVM_AMD_SEV and
# KVM_INTEL_TDX, and their host code, too.
cc() {
	config "$BUILD/obj-cc" "$FRAGMENT" "$TOP/configs/cc-build.config"
	echo "build: KVM, the SEV-SNP and the TDX host code (arch/x86/kvm/, arch/x86/virt/, arch/x86/mm/, virt/kvm/)"
	make -s -C "$SRC" O="$BUILD/obj-cc" CC="ccache gcc" -j"$JOBS" \
		arch/x86/kvm/ arch/x86/virt/ arch/x86/mm/
}

case "$what" in
kernel) kernel "$OBJ" "$FRAGMENT" ;;
bench) kernel "$BUILD/obj-bench" "$FRAGMENT" "$TOP/configs/bench.config" ;;
cc) cc ;;
config) config "$OBJ" "$FRAGMENT"
	config "$BUILD/obj-bench" "$FRAGMENT" "$TOP/configs/bench.config"
	config "$BUILD/obj-cc" "$FRAGMENT" "$TOP/configs/cc-build.config" ;;
selftests) selftests ;;
all) kernel "$OBJ" "$FRAGMENT"; selftests ;;
*) echo "usage: $0 [kernel|selftests|bench|cc|config|all]" >&2; exit 2 ;;
esac
