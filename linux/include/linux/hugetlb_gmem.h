/* SPDX-License-Identifier: GPL-2.0 */
/*
 * HugeTLB primitives for KVM guest_memfd.
 *
 * A guest_memfd created with GUEST_MEMFD_FLAG_HUGETLB keeps hugetlb folios
 * in its own page cache, outside hugetlbfs.  These helpers are the part of
 * that which belongs to hugetlb: pool reservations and their hugetlb cgroup
 * charge, allocation of a zeroed folio from a reservation into a page
 * cache, and its removal.  Everything else (which subpages are in use,
 * what the guest may map) is KVM's, in virt/kvm/guest_memfd_hugetlb.c.
 * Only KVM may call them.
 */
#ifndef _LINUX_HUGETLB_GMEM_H
#define _LINUX_HUGETLB_GMEM_H

#include <linux/mm_types.h>
#include <linux/types.h>

struct address_space;
struct folio;
struct hstate;
struct hugetlb_cgroup;
struct mempolicy;
struct mutex;
struct vm_fault;

#ifdef CONFIG_KVM_GMEM_HUGETLB
unsigned long hugetlb_gmem_supported_shifts(void);
struct hstate *hugetlb_gmem_hstate(unsigned int page_shift);
int hugetlb_gmem_reserve(struct hstate *h, long nr,
			 struct hugetlb_cgroup **h_cg);
void hugetlb_gmem_unreserve(struct hstate *h, long nr,
			    struct hugetlb_cgroup *h_cg);
void hugetlb_gmem_uncharge(struct hstate *h, long nr,
			   struct hugetlb_cgroup *h_cg);
void hugetlb_gmem_put_cgroup(struct hstate *h, struct hugetlb_cgroup *h_cg);
struct mutex *hugetlb_gmem_fault_mutex(struct address_space *mapping,
				       pgoff_t hindex);
struct folio *hugetlb_gmem_alloc_folio(struct hstate *h,
				       struct address_space *mapping,
				       pgoff_t hindex, struct mempolicy *pol,
				       bool no_direct_map);
void hugetlb_gmem_remove_folio(struct folio *folio);
int hugetlb_gmem_no_direct_map_get(void);
void hugetlb_gmem_no_direct_map_put(void);
bool hugetlb_gmem_no_direct_map_active(void);
void hugetlb_gmem_clear_pages(struct folio *folio, unsigned long start,
			      unsigned long nr);
void hugetlb_gmem_restore_direct_map(struct folio *folio);
void hugetlb_gmem_collapse_direct_map(unsigned long pfn);
vm_fault_t hugetlb_gmem_map_pages(struct vm_fault *vmf, struct folio *folio,
				  unsigned long first, unsigned long nr);
vm_fault_t hugetlb_gmem_map_pmd(struct vm_fault *vmf, struct folio *folio,
				unsigned long first);
vm_fault_t hugetlb_gmem_map_pud(struct vm_fault *vmf, struct folio *folio);
void hugetlb_gmem_split_mappings(struct address_space *mapping,
				 struct folio *folio, unsigned long first,
				 unsigned long nr);
#ifdef CONFIG_MEMORY_FAILURE
int hugetlb_gmem_hwpoison_order(struct folio *folio, unsigned long idx,
				int order);
void hugetlb_gmem_poison_page(struct folio *folio, unsigned long idx);
#else
static inline int hugetlb_gmem_hwpoison_order(struct folio *folio,
					      unsigned long idx, int order)
{
	return order;
}
#endif
#else
static inline unsigned long hugetlb_gmem_supported_shifts(void)
{
	return 0;
}

static inline bool hugetlb_gmem_no_direct_map_active(void)
{
	return false;
}

static inline int hugetlb_gmem_hwpoison_order(struct folio *folio,
					      unsigned long idx, int order)
{
	return order;
}
#endif /* CONFIG_KVM_GMEM_HUGETLB */

#endif /* _LINUX_HUGETLB_GMEM_H */
