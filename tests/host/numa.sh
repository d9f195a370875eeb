#!/bin/bash
# NUMA placement of hugetlb guest_memfd needs two nodes, which the test VMs
# do not have: boot with numa=fake=2 and run guest_memfd_hugetlb_mmap_test's
# 2M mbind case (mbind() places the hugepages that a fault of the VMM, a
# fault of KVM and fallocate() allocate; MPOL_PREFERRED falls back to the
# other node, MPOL_BIND does not) and upstream guest_memfd_test, whose NUMA
# cases (mbind, numa_allocation) run on two nodes only, on 4K and on 2M
# backing.  A missing binary, one node, or a skipped case is a failure.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$top/build}
mmap=$build/sel/kvm/x86/guest_memfd_hugetlb_mmap_test
gmem=$build/sel/kvm/guest_memfd_test
for b in "$mmap" "$gmem"; do
	[ -x "$b" ] || { echo "$(basename "$b") is not built"; exit 1; }
done
out=$("$top/scripts/vmrun" ${VM_KERNEL:+--kernel "$VM_KERNEL"} --hugepages-2m 64 \
	--append "numa=fake=2" --log "$build/vmrun/numa.log" \
	--file "$mmap" --file "$gmem" -- \
	sh -c '[ -d /sys/devices/system/node/node1 ] || { echo "one NUMA node"; exit 1; }
	       grep -H . /sys/devices/system/node/node*/hugepages/hugepages-2048kB/free_hugepages &&
	       ./guest_memfd_hugetlb_mmap_test -r gmem_mmap.2M.mbind &&
	       ./guest_memfd_test &&
	       ./guest_memfd_test -b 2M' 2>&1)
rc=$?
echo "$out" | grep -v "^ok\|^#  *OK\|^# *RUN" | tail -n 30
[ $rc -eq 0 ] || exit $rc
if echo "$out" | grep -q "# SKIP"; then
	echo "a case skipped"
	exit 1
fi
