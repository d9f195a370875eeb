/* SPDX-License-Identifier: GPL-2.0 */
/*
 * HugeTLB backing for KVM guest_memfd: the hugetlb side.
 *
 * A guest_memfd created with GUEST_MEMFD_FLAG_HUGETLB keeps hugetlb folios
 * in its own page cache.  These helpers own everything hugetlb about such a
 * file: the reservation taken at creation, the hugetlb cgroup charges,
 * allocation of zeroed folios from the reservation, and their return to
 * the pool.  KVM calls them from virt/kvm/guest_memfd.c.
 */
#ifndef _LINUX_HUGETLB_GMEM_H
#define _LINUX_HUGETLB_GMEM_H

#include <linux/err.h>
#include <linux/types.h>

struct address_space;
struct folio;
struct hugetlb_gmem;

#ifdef CONFIG_KVM_GMEM_HUGETLB
unsigned long hugetlb_gmem_supported_shifts(void);
struct hugetlb_gmem *hugetlb_gmem_create(unsigned int page_shift, loff_t size);
void hugetlb_gmem_destroy(struct hugetlb_gmem *hg,
			  struct address_space *mapping);
unsigned int hugetlb_gmem_order(const struct hugetlb_gmem *hg);
struct folio *hugetlb_gmem_get_folio(struct hugetlb_gmem *hg,
				     struct address_space *mapping,
				     pgoff_t index);
void hugetlb_gmem_truncate(struct hugetlb_gmem *hg,
			   struct address_space *mapping,
			   pgoff_t start, pgoff_t end);
#else
static inline unsigned long hugetlb_gmem_supported_shifts(void)
{
	return 0;
}

static inline struct hugetlb_gmem *hugetlb_gmem_create(unsigned int page_shift,
							loff_t size)
{
	return ERR_PTR(-EINVAL);
}

static inline void hugetlb_gmem_destroy(struct hugetlb_gmem *hg,
					struct address_space *mapping)
{
}

static inline unsigned int hugetlb_gmem_order(const struct hugetlb_gmem *hg)
{
	return 0;
}

static inline struct folio *hugetlb_gmem_get_folio(struct hugetlb_gmem *hg,
						   struct address_space *mapping,
						   pgoff_t index)
{
	return ERR_PTR(-EINVAL);
}

static inline void hugetlb_gmem_truncate(struct hugetlb_gmem *hg,
					 struct address_space *mapping,
					 pgoff_t start, pgoff_t end)
{
}
#endif /* CONFIG_KVM_GMEM_HUGETLB */

#endif /* _LINUX_HUGETLB_GMEM_H */
