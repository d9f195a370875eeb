#!/bin/bash
# HVO (on by default in the test kernel) and dissolving optimized hugepages
# back to the buddy allocator: 6.12 restored their vmemmap with fake heads
# ("Bad page state" under DEBUG_VM; the 6.12 series fixed it first).  7.3
# restores from a page of plain tails; this keeps it so: shrink a 2M pool
# of 64 pages to nothing and grow it again, and vmrun fails on any splat.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$top/build}
"$top/scripts/vmrun" ${VM_KERNEL:+--kernel "$VM_KERNEL"} --hugepages-2m 64 \
	--log "$build/vmrun/hvo-dissolve.log" -- sh -c '
	[ "$(cat /proc/sys/vm/hugetlb_optimize_vmemmap)" = 1 ] || { echo "HVO is off"; exit 1; }
	grep -q "^HugePages_Total: *64$" /proc/meminfo || exit 1
	echo 0 > /proc/sys/vm/nr_hugepages
	echo 64 > /proc/sys/vm/nr_hugepages
	echo 0 > /proc/sys/vm/nr_hugepages
	grep HugePages_Total /proc/meminfo'
