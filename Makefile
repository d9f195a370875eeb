# SPDX-License-Identifier: GPL-2.0
# HugeTLB-backed KVM guest_memfd: build, boot and test the patched kernel.
# See README.md.

.PHONY: all build kernel selftests run bench test check check-series prepare \
	series edit save clean distclean help

all: build

help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)

## build      prepare build/src (Debian linux-source-6.12 + the series in patches/),
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

## series     write the reviewer's series to build/series: git format-patch
##            of patches/ with 0000-cover-letter.patch
series:
	scripts/deps.sh
	scripts/series format

## check-series  make series, then: it applies with git am to the pristine
##            tree, no patch deletes what an earlier one added, checkpatch
##            --strict, and every patch builds on its own (kernel, KVM with
##            KVM_AMD_SEV, selftests for patches touching tools/; build/check)
check-series:
	scripts/deps.sh
	scripts/check-series

## edit       P=N: stop at patch N of the series in build/git (a git tree of
##            the pristine source with the series applied) to edit its files;
##            without P, just (re)apply the series there
edit:
	scripts/deps.sh
	scripts/series edit $(P)

## save       fold the edits made in build/git (the stopped patch, and any
##            "git commit --fixup" commits) into the series in patches/
save:
	scripts/series save

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

## check      checkpatch.pl --strict over the series in patches/
check: prepare
	scripts/check

## clean      remove kernel objects and selftests (keeps build/src, build/git)
clean:
	rm -rf build/obj build/sel build/vmrun

## distclean  remove all of build/
distclean:
	rm -rf build
