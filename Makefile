# SPDX-License-Identifier: GPL-2.0
# HugeTLB-backed KVM guest_memfd for Linux 7.3: build, boot and test the
# patched kernel.  See README.md.

.PHONY: all build kernel selftests bench-kernel run bench test check-series \
	prepare series edit save clean distclean help

all: build

help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)

## build      prepare build/src (Debian's linux-source-7.3 + series/ + linux/),
##            build the test kernel (tinyconfig + configs/hugetlb-gmem.config,
##            ccache, build/obj) and the static selftests (build/sel)
build:
	scripts/build.sh all

## kernel     only the test kernel
kernel:
	scripts/build.sh kernel

## selftests  only the selftests
selftests:
	scripts/build.sh selftests

## bench-kernel  the benchmark kernel: the same without the debug options
##            (configs/bench.config), in build/obj-bench
bench-kernel:
	scripts/build.sh bench

## prepare    only build/src = pristine 7.3 + the series (incremental)
prepare:
	scripts/deps.sh
	python3 scripts/prepare.py

## run        build the benchmark kernel and the selftests, boot, show the
##            feature: hugetlb pools, KVM capabilities, and a short
##            guest_memfd_hugetlb_bench when the series has it
run: bench-kernel selftests
	scripts/bench --run

## bench      the same boot running every section of guest_memfd_hugetlb_bench
##            (not a test)
bench: bench-kernel selftests
	scripts/bench

## test       host checks + every VM test in two VMs, TAP,
##            "N passed, N failed, N skipped"
test:
	scripts/run-tests

## series     write the reviewer's series to build/series: git format-patch
##            with 0000-cover-letter.patch (series/cover-letter.txt)
series:
	scripts/deps.sh
	python3 scripts/series.py format

## check-series  make series, then: git am onto pristine 7.3, no patch deletes
##            what an earlier one added, the size rule, checkpatch --strict,
##            and every patch builds on its own (kernel, KVM with the SEV-SNP
##            and TDX host code, selftests for patches touching tools/;
##            build/check)
check-series:
	scripts/deps.sh
	scripts/check-series

## edit       build/git = pristine 7.3 + one commit per series patch, on
##            branch series; P=N stops a rebase at patch N to edit it
edit:
	scripts/deps.sh
	python3 scripts/series.py edit $(P)

## save       fold the commits and fixups made in build/git back into
##            series/*.patch (upstream diffs) and linux/ (new files)
save:
	python3 scripts/series.py save

## clean      remove kernel objects and selftests (keeps build/src, build/git)
clean:
	rm -rf build/obj build/obj-bench build/obj-cc build/obj-sev build/sel \
		build/vmrun build/vmtest build/check/obj build/check/obj-cc \
		build/check/obj-sev build/check/sel

## distclean  remove all of build/
distclean:
	rm -rf build
