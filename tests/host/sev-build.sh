#!/bin/bash
# SNP's sev_gmem_invalidate() consumes the invalidation contract and cannot
# run under TCG: KVM must at least build with CONFIG_KVM_AMD_SEV.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$top/build}
"$top/scripts/build.sh" sev > "$build/sev-build.log" 2>&1 ||
	{ tail -n 30 "$build/sev-build.log"; exit 1; }
grep -qx "CONFIG_KVM_AMD_SEV=y" "$build/obj-sev/.config" &&
	[ -f "$build/obj-sev/arch/x86/kvm/svm/sev.o" ] ||
	{ echo "sev.o not built with CONFIG_KVM_AMD_SEV=y"; exit 1; }
