#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs inside the VM for 'make run' and 'make bench': the pools, the KVM
# capabilities, and guest_memfd_hugetlb_bench with the arguments given
# (when it is there).
echo "== kernel $(uname -r) under QEMU TCG, $(nproc) vCPUs"
echo "== KVM: $(ls /dev/kvm 2>/dev/null || echo missing)"
pools() {
	echo "== hugetlb pools (nr/free/resv), $1:"
	for d in /sys/kernel/mm/hugepages/hugepages-*; do
		echo "   ${d##*-}: $(cat "$d/nr_hugepages")/$(cat "$d/free_hugepages")/$(cat "$d/resv_hugepages")"
	done
}
pools before
./kvm-caps || exit 1
[ -x ./guest_memfd_hugetlb_bench ] || exit 0
start=$(date +%s)
./guest_memfd_hugetlb_bench "$@"
rc=$?
echo "== benchmark: $(($(date +%s) - start)) s in the VM"
pools after
exit $rc
