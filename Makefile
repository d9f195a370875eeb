# SPDX-License-Identifier: GPL-2.0
# HugeTLB-backed KVM guest_memfd: build, boot and test the patched kernel.
# See README.md.

.PHONY: all build kernel selftests run bench test check check-series prepare \
	clean distclean help

all: build

help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)

## build      prepare build/src (Debian linux-source-6.12 + patches/ + new files),
##            build the kernel (tinyconfig + configs/hugetlb-gmem.config, ccache)
##            and the static selftests
build:
	scripts/build.sh all

## kernel     only the kernel
kernel:
	scripts/build.sh kernel

## selftests  only the selftests
selftests:
	scripts/build.sh selftests

## check-series  every patch builds on its own: build the kernel, KVM with
##            KVM_AMD_SEV and (for patches touching tools/) the selftests after
##            each prefix of patches/, in build/series
check-series:
	scripts/deps.sh
	scripts/check-series

## prepare    only unpack/patch build/src
prepare:
	scripts/deps.sh
	python3 scripts/prepare_tree.py

## run        build if needed, boot, and show the feature working: a guest
##            touching 1 GiB on 4K/2M/1G backing, a 4K punch storm over a
##            2M and a 1G hugepage, metadata (guest_memfd_hugetlb_bench)
run: build
	scripts/bench -s touch,punch,meta -n '' -r 1

## bench      build if needed, boot, and run every benchmark section
##            (DESIGN section 7: ratios side by side in one run); not a test
bench: build
	scripts/bench

## test       host checks + every VM test, TAP, "N passed, N failed, N skipped"
test:
	scripts/run-tests

## check      checkpatch.pl --strict over patches/ and the new files
check: prepare
	scripts/check

## clean      remove kernel objects and selftests (keeps build/src)
clean:
	rm -rf build/obj build/sel build/vmrun

## distclean  remove all of build/
distclean:
	rm -rf build
