#!/bin/bash
# hugetlb guest_memfd never takes a folio from ZONE_MOVABLE (it pins them):
# boot with a movable zone, grow the 2 MiB pool at run time so that part of
# it lands there, and run guest_memfd_hugetlb_movable_test (built with the
# selftests; a missing binary is a failure); then again on an empty pool
# that may overcommit, where a file's creation takes surplus pages.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$top/build}
bin=$build/sel/kvm/x86/guest_memfd_hugetlb_movable_test
[ -x "$bin" ] || { echo "guest_memfd_hugetlb_movable_test is not built"; exit 1; }
"$top/scripts/vmrun" ${VM_KERNEL:+--kernel "$VM_KERNEL"} --mem 3G --append "movablecore=1G" \
	--log "$build/vmrun/movable-zone.log" --file "$bin" -- \
	sh -c 'echo 1024 > /proc/sys/vm/nr_hugepages &&
	       echo "2M pool: $(cat /proc/sys/vm/nr_hugepages) pages" &&
	       ./guest_memfd_hugetlb_movable_test &&
	       echo 0 > /proc/sys/vm/nr_hugepages &&
	       echo 64 > /proc/sys/vm/nr_overcommit_hugepages &&
	       echo "2M pool: empty, may overcommit 64 pages" &&
	       ./guest_memfd_hugetlb_movable_test -s'
