#!/bin/bash
# SEV-SNP and TDX host code cannot run under TCG: KVM, the SNP host code
# and the TDX host code must at least build with the series
# (configs/cc-build.config, scripts/build.sh cc).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$top/build}
obj=$build/obj-cc
"$top/scripts/build.sh" cc > "$build/cc-build.log" 2>&1 ||
	{ tail -n 30 "$build/cc-build.log"; exit 1; }
for sym in CONFIG_KVM_AMD_SEV CONFIG_KVM_INTEL_TDX; do
	grep -qx "$sym=y" "$obj/.config" || { echo "$sym is not set in $obj/.config"; exit 1; }
done
for o in arch/x86/kvm/svm/sev.o arch/x86/virt/svm/sev.o \
	 arch/x86/kvm/vmx/tdx.o arch/x86/virt/vmx/tdx/tdx.o virt/kvm/guest_memfd.o virt/kvm/guest_memfd_hugetlb.o; do
	[ -f "$obj/$o" ] || { echo "$o was not built"; exit 1; }
done
echo "SEV-SNP and TDX host code built with the series"
