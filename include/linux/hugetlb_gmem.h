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
struct seq_file;

/* Why a block of a folio stops being guest memory. */
enum hugetlb_gmem_why {
	HUGETLB_GMEM_PUNCH,	/* part of a folio punched, the folio stays */
	HUGETLB_GMEM_RELEASE,	/* the rest of a folio that is being freed */
};

/*
 * Called for each naturally aligned block [@index, @index + 2^@order) of
 * @folio (page indices of the file) that stops being guest memory; the
 * folio is locked.
 */
typedef void (*hugetlb_gmem_invalidate_t)(struct folio *folio, pgoff_t index,
					  unsigned int order,
					  enum hugetlb_gmem_why why);

/* Called for the block [@start, @start + 2^@order) of a range. */
typedef void (*hugetlb_gmem_block_fn)(unsigned long start, unsigned int order,
				      void *arg);

void hugetlb_gmem_walk_blocks(unsigned long start, unsigned long end,
			      hugetlb_gmem_block_fn fn, void *arg);
void hugetlb_gmem_walk_unpunched(const unsigned long *map,
				 unsigned long start,
				 unsigned long end,
				 hugetlb_gmem_block_fn fn, void *arg);
unsigned long hugetlb_gmem_punch_subpages(unsigned long *map,
					  unsigned long start, unsigned long end,
					  hugetlb_gmem_block_fn fn, void *arg);
unsigned long hugetlb_gmem_refill_subpages(unsigned long *map,
					   unsigned long start,
					   unsigned long end);
int hugetlb_gmem_subpages_max_order(const unsigned long *map,
				    unsigned int order, unsigned long off);

#ifdef CONFIG_KVM_GMEM_HUGETLB
unsigned long hugetlb_gmem_supported_shifts(void);
struct hugetlb_gmem *hugetlb_gmem_create(unsigned int page_shift, loff_t size);
void hugetlb_gmem_destroy(struct hugetlb_gmem *hg,
			  struct address_space *mapping,
			  hugetlb_gmem_invalidate_t invalidate);
unsigned int hugetlb_gmem_order(const struct hugetlb_gmem *hg);
struct folio *hugetlb_gmem_get_folio(struct hugetlb_gmem *hg,
				     struct address_space *mapping,
				     pgoff_t index);
int hugetlb_gmem_punch_prepare(struct hugetlb_gmem *hg, pgoff_t start,
			       pgoff_t end);
void hugetlb_gmem_truncate(struct hugetlb_gmem *hg,
			   struct address_space *mapping,
			   pgoff_t start, pgoff_t end,
			   hugetlb_gmem_invalidate_t invalidate);
unsigned long hugetlb_gmem_refill(struct hugetlb_gmem *hg, struct folio *folio,
				  pgoff_t start, pgoff_t end);
int hugetlb_gmem_max_order(struct hugetlb_gmem *hg, struct folio *folio,
			   pgoff_t index);
int hugetlb_gmem_poison(struct hugetlb_gmem *hg, struct folio *folio);
bool hugetlb_gmem_poisoned(struct hugetlb_gmem *hg, struct folio *folio,
			   pgoff_t index);
void hugetlb_gmem_show_fdinfo(struct hugetlb_gmem *hg, struct seq_file *m);
#else
static inline unsigned long hugetlb_gmem_supported_shifts(void)
{
	return 0;
}

static inline struct hugetlb_gmem *
hugetlb_gmem_create(unsigned int page_shift, loff_t size)
{
	return ERR_PTR(-EINVAL);
}

static inline void hugetlb_gmem_destroy(struct hugetlb_gmem *hg,
					struct address_space *mapping,
					hugetlb_gmem_invalidate_t invalidate)
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

static inline int hugetlb_gmem_punch_prepare(struct hugetlb_gmem *hg,
					     pgoff_t start, pgoff_t end)
{
	return -EINVAL;
}

static inline void hugetlb_gmem_truncate(struct hugetlb_gmem *hg,
					 struct address_space *mapping,
					 pgoff_t start, pgoff_t end,
					 hugetlb_gmem_invalidate_t invalidate)
{
}

static inline unsigned long hugetlb_gmem_refill(struct hugetlb_gmem *hg,
						struct folio *folio,
						pgoff_t start, pgoff_t end)
{
	return 0;
}

static inline int hugetlb_gmem_max_order(struct hugetlb_gmem *hg,
					 struct folio *folio, pgoff_t index)
{
	return 0;
}

static inline int hugetlb_gmem_poison(struct hugetlb_gmem *hg,
				      struct folio *folio)
{
	return 0;
}

static inline bool hugetlb_gmem_poisoned(struct hugetlb_gmem *hg,
					 struct folio *folio, pgoff_t index)
{
	return true;
}

static inline void hugetlb_gmem_show_fdinfo(struct hugetlb_gmem *hg,
					    struct seq_file *m)
{
}
#endif /* CONFIG_KVM_GMEM_HUGETLB */

#endif /* _LINUX_HUGETLB_GMEM_H */
