/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A software model of the SEV-SNP Reverse Map Table for the guest_memfd
 * memory of software-protected VMs, for testing only: see rmp_model.c.
 */
#ifndef ARCH_X86_KVM_RMP_MODEL_H
#define ARCH_X86_KVM_RMP_MODEL_H

#include <linux/kvm_host.h>

#ifdef CONFIG_KVM_SW_PROTECTED_VM_RMP_MODEL
void kvm_rmp_model_init_vm(struct kvm *kvm);
int kvm_rmp_model_make_private(struct kvm *kvm, gfn_t gfn, kvm_pfn_t pfn,
			       kvm_pfn_t nr_pages);
bool kvm_rmp_model_reclaim(kvm_pfn_t pfn, kvm_pfn_t nr_pages, int *err);
int kvm_rmp_model_max_mapping_level(struct kvm *kvm, kvm_pfn_t pfn,
				    gfn_t gfn, bool is_private);

static inline bool kvm_rmp_model_vm(struct kvm *kvm)
{
	return kvm->arch.rmp_model;
}
#else
static inline void kvm_rmp_model_init_vm(struct kvm *kvm)
{
}

static inline bool kvm_rmp_model_vm(struct kvm *kvm)
{
	return false;
}

static inline int kvm_rmp_model_make_private(struct kvm *kvm, gfn_t gfn,
					     kvm_pfn_t pfn, kvm_pfn_t nr_pages)
{
	return 0;
}

static inline bool kvm_rmp_model_reclaim(kvm_pfn_t pfn, kvm_pfn_t nr_pages,
					 int *err)
{
	return false;
}

static inline int kvm_rmp_model_max_mapping_level(struct kvm *kvm,
						  kvm_pfn_t pfn, gfn_t gfn,
						  bool is_private)
{
	return 0;
}
#endif

#endif /* ARCH_X86_KVM_RMP_MODEL_H */
