#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs inside the VM for 'make run' and 'make bench': the pools, the KVM
# capabilities, and guest_memfd_hugetlb_bench with the arguments given
# (when it is there).  A leading -p goes to every run; "::" separates the
# arguments of one run from the next (make run's short tables).
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
plot=
if [ "${1:-}" = -p ]; then
	plot=-p
	shift
fi
start=$(date +%s)
rc=0
while :; do
	# The arguments up to the next "::" (or the end), quoted for eval.
	n=0
	cmd="./guest_memfd_hugetlb_bench $plot"
	shown=
	for a in "$@"; do
		[ "$a" = :: ] && break
		n=$((n + 1))
		cmd="$cmd \"\${$n}\""
		shown="$shown ${a:-''}"
	done
	[ $# -gt 0 ] && echo "== guest_memfd_hugetlb_bench$shown"
	eval "$cmd" || rc=$?
	shift $n
	[ $# -gt 0 ] || break
	shift	# the "::"
done
echo "== benchmark: $(($(date +%s) - start)) s in the VM"
pools after
exit $rc
