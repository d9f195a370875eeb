// SPDX-License-Identifier: GPL-2.0
/*
 * Print the KVM capabilities that guest_memfd (and the series) report, on
 * /dev/kvm and on a KVM_X86_SW_PROTECTED_VM VM.  Built statically against
 * the patched kernel's uAPI headers by scripts/bench (make run); runs in
 * the VM.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

struct cap {
	const char *name;
	long nr;
};

#define CAP(x) { #x, x }

static const struct cap caps[] = {
	CAP(KVM_CAP_USER_MEMORY2),
	CAP(KVM_CAP_MEMORY_ATTRIBUTES),
	CAP(KVM_CAP_GUEST_MEMFD),
	CAP(KVM_CAP_VM_TYPES),
	CAP(KVM_CAP_PRE_FAULT_MEMORY),
#ifdef KVM_CAP_GUEST_MEMFD_FLAGS
	CAP(KVM_CAP_GUEST_MEMFD_FLAGS),
#endif
#ifdef KVM_CAP_GUEST_MEMFD_HUGETLB
	CAP(KVM_CAP_GUEST_MEMFD_HUGETLB),
#endif
};

static void show(int fd, const char *what)
{
	unsigned int i;

	printf("== KVM_CHECK_EXTENSION on %s:\n", what);
	for (i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		int r = ioctl(fd, KVM_CHECK_EXTENSION, caps[i].nr);

		printf("   %-30s (%4ld) = %d (0x%x)\n", caps[i].name, caps[i].nr,
		       r, r);
	}
}

int main(void)
{
	int kvm = open("/dev/kvm", O_RDWR), vm;

	if (kvm < 0) {
		perror("/dev/kvm");
		return 1;
	}
	show(kvm, "/dev/kvm");
#ifdef KVM_X86_SW_PROTECTED_VM
	vm = ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
	if (vm < 0) {
		perror("KVM_CREATE_VM(KVM_X86_SW_PROTECTED_VM)");
		return 1;
	}
	show(vm, "a KVM_X86_SW_PROTECTED_VM VM");
	close(vm);
#endif
#ifndef KVM_CAP_GUEST_MEMFD_HUGETLB
	printf("   (KVM_CAP_GUEST_MEMFD_HUGETLB is not in this kernel's uAPI)\n");
#endif
	close(kvm);
	return 0;
}
