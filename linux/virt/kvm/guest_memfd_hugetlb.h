/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * HugeTLB backing of guest_memfd: the state a hugetlb guest_memfd keeps in
 * its inode, and what virt/kvm/guest_memfd.c asks of it.  Private to
 * virt/kvm (and its KUnit test).
 */
#ifndef __KVM_GUEST_MEMFD_HUGETLB_H__
#define __KVM_GUEST_MEMFD_HUGETLB_H__

#include <linux/atomic.h>
#include <linux/kvm_types.h>
#include <linux/mm_types.h>
#include <linux/spinlock.h>
#include <linux/xarray.h>

struct address_space;
struct folio;
struct hstate;
struct hugetlb_cgroup;
struct kvm;
struct kvm_memory_slot;
struct page;
struct seq_file;
struct vm_fault;

/*
 * The hugetlb state of a guest_memfd inode (GUEST_MEMFD_FLAG_HUGETLB).
 * Each hugepage index of the file is reserved (a pool reservation and no
 * folio), allocated (a folio in the page cache, which consumed the
 * reservation) or released (punched whole: folio and reservation went back
 * to the pool, as on hugetlbfs).  Transitions of one index happen under its
 * hugetlb fault mutex; @lock protects the counters and @released.
 */
struct kvm_gmem_hugetlb {
	struct hstate *h;
	/* The cgroup charged for the reservations, with a reference. */
	struct hugetlb_cgroup *h_cg_rsvd;
	pgoff_t nr_hpages;
	/* Protects nr_reserved, nr_charged and released. */
	spinlock_t lock;
	/* Indices reserved, and reserved or allocated (what is charged). */
	unsigned long nr_reserved;
	unsigned long nr_charged;
	/* One bit per hugepage index, set when released. */
	unsigned long *released;
	/*
	 * Hugepage index -> struct kvm_gmem_subpages of a folio that has been
	 * punched or made private in part.  Allocated before the point of no
	 * return of a punch, freed with the folio.
	 */
	struct xarray subpages;
	atomic_long_t nr_partial;	/* folios with punched subpages */
	atomic_long_t nr_punched;	/* punched subpages of those */
	/* Folios are out of the direct map (GUEST_MEMFD_FLAG_NO_DIRECT_MAP). */
	bool no_direct_map;
	/* The inode's memory policy (mbind() on a mapping of the file). */
	struct shared_policy *policy;
	/*
	 * The gigabytes of physical memory (pfn >> (PUD_SHIFT - PAGE_SHIFT))
	 * that the file's folios smaller than that were in, whose direct map
	 * is collapsed when the file is destroyed.
	 */
	struct xarray gigs;
};

int kvm_gmem_hugetlb_init(struct kvm_gmem_hugetlb *hg, u32 page_shift,
			  loff_t size, bool no_direct_map,
			  struct shared_policy *policy);
void kvm_gmem_hugetlb_destroy(struct kvm_gmem_hugetlb *hg,
			      struct address_space *mapping);
unsigned int kvm_gmem_hugetlb_order(const struct kvm_gmem_hugetlb *hg);
struct folio *kvm_gmem_hugetlb_get_folio(struct kvm_gmem_hugetlb *hg,
					 struct address_space *mapping,
					 pgoff_t index, pgoff_t end,
					 pgoff_t *promote_start,
					 pgoff_t *promote_end);
struct folio *kvm_gmem_hugetlb_get_pfn(struct kvm_gmem_hugetlb *hg,
				       struct address_space *mapping,
				       struct kvm_memory_slot *slot,
				       pgoff_t index, kvm_pfn_t *pfn,
				       int *max_order, struct kvm *kvm);
int kvm_gmem_hugetlb_punch_prepare(struct kvm_gmem_hugetlb *hg,
				   pgoff_t start, pgoff_t end);
void kvm_gmem_hugetlb_truncate(struct kvm_gmem_hugetlb *hg,
			       struct address_space *mapping,
			       pgoff_t start, pgoff_t end);
vm_fault_t kvm_gmem_hugetlb_fault(struct kvm_gmem_hugetlb *hg,
				  struct vm_fault *vmf);
vm_fault_t kvm_gmem_hugetlb_huge_fault(struct kvm_gmem_hugetlb *hg,
				       struct vm_fault *vmf,
				       unsigned int order);
void kvm_gmem_hugetlb_show_fdinfo(struct kvm_gmem_hugetlb *hg,
				  struct seq_file *m);
void kvm_gmem_hugetlb_free_folio(struct folio *folio);
int kvm_gmem_hugetlb_populate(struct kvm_gmem_hugetlb *hg, struct kvm *kvm,
			      struct folio *folio, pgoff_t index, gfn_t gfn,
			      struct page *src_page,
			      int (*post_populate)(struct kvm *kvm, gfn_t gfn,
						   kvm_pfn_t pfn,
						   struct page *page,
						   void *opaque),
			      void *opaque);

/*
 * What follows is internal to guest_memfd_hugetlb.c, visible here only for
 * its KUnit test (VISIBLE_IF_KUNIT): no interface for other code.
 */

/*
 * Walks the maximal naturally aligned blocks of the subpages of a range of
 * a folio that are clear in a bitmap (or set, for a "set" walk), in
 * ascending order: see kvm_gmem_next_block() and kvm_gmem_punch_next().
 */
struct kvm_gmem_blocks {
	unsigned long *map;	/* the bitmap, or NULL if no bit is set */
	unsigned long pos;	/* first subpage not walked yet */
	unsigned long run_end;	/* end of the run holding @pos */
	unsigned long end;	/* end of the range */
	unsigned long punched;	/* subpages kvm_gmem_punch_next() marked */
	bool set;		/* walk the set subpages of @map */
};

#if IS_ENABLED(CONFIG_KUNIT)
unsigned int kvm_gmem_block_order(unsigned long start, unsigned long end);
void kvm_gmem_blocks_init(struct kvm_gmem_blocks *it, unsigned long *map,
			  unsigned long start, unsigned long end, bool set);
bool kvm_gmem_next_block(struct kvm_gmem_blocks *it, unsigned long *start,
			 unsigned int *order);
bool kvm_gmem_punch_next(struct kvm_gmem_blocks *it, unsigned long *start,
			 unsigned int *order);
unsigned long kvm_gmem_refill_blocks(unsigned long *map, unsigned int border,
				     unsigned long s, unsigned long e,
				     unsigned long *ps, unsigned long *pe);
int kvm_gmem_subpages_max_order(const unsigned long *map, unsigned int order,
				unsigned long off);
#endif

#endif /* __KVM_GUEST_MEMFD_HUGETLB_H__ */
