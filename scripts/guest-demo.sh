#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs inside the VM for 'make run'.
echo "== kernel $(uname -r) under QEMU TCG, $(nproc) vCPUs"
echo "== KVM: $(ls /dev/kvm 2>/dev/null || echo missing)"
echo "== hugetlb pools (nr/free/resv):"
for d in /sys/kernel/mm/hugepages/hugepages-*; do
	echo "   ${d##*-}: $(cat "$d/nr_hugepages")/$(cat "$d/free_hugepages")/$(cat "$d/resv_hugepages")"
done
if [ -x ./guest_memfd_hugetlb_demo ]; then
	./guest_memfd_hugetlb_demo
else
	echo "== guest_memfd_hugetlb_demo not built yet"
fi
