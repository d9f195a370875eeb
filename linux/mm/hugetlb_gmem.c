// SPDX-License-Identifier: GPL-2.0
/*
 * HugeTLB primitives for KVM guest_memfd: reservations, their hugetlb
 * cgroup charge, and folios taken from a reservation into a guest_memfd's
 * page cache.  See include/linux/hugetlb_gmem.h.
 *
 * A guest_memfd reserves all of its hugepages when it is created, as a
 * hugetlbfs mapping does at mmap(), so that no fault of the guest fails for
 * lack of memory: the reservation is counted in the hstate's
 * resv_huge_pages (HugePages_Rsvd) through hugetlb_acct_memory(), and in
 * the rsvd counter of the creator's hugetlb cgroup.  A folio consumes one
 * reservation when it is allocated; freeing it returns the page to the
 * pool, and its reservation is gone with it, as on hugetlbfs punch-hole.
 */
#include <linux/hugetlb.h>
#include <linux/hugetlb_cgroup.h>
#include <linux/hugetlb_gmem.h>
#include <linux/kvm_types.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/sched/mm.h>

#include "hugetlb_internal.h"

/**
 * hugetlb_gmem_supported_shifts - page sizes a guest_memfd can use
 *
 * Return: a mask with bit N set for each hstate of 2^N bytes.
 */
unsigned long hugetlb_gmem_supported_shifts(void)
{
	unsigned long mask = 0;
	struct hstate *h;

	if (!hugepages_supported())
		return 0;

	for_each_hstate(h)
		mask |= BIT(huge_page_shift(h));
	return mask;
}
EXPORT_SYMBOL_FOR_KVM(hugetlb_gmem_supported_shifts);

/**
 * hugetlb_gmem_hstate - the hstate of a page size
 * @page_shift: log2 of the page size in bytes, or 0 for the default size
 *
 * Return: the hstate, or NULL if there is no such hugepage size.
 */
struct hstate *hugetlb_gmem_hstate(unsigned int page_shift)
{
	if (!hugepages_supported())
		return NULL;
	if (!page_shift)
		return &default_hstate;
	if (page_shift >= BITS_PER_LONG)
		return NULL;
	return size_to_hstate(1UL << page_shift);
}
EXPORT_SYMBOL_FOR_KVM(hugetlb_gmem_hstate);

#ifdef CONFIG_CGROUP_HUGETLB
static int hugetlb_gmem_charge_rsvd(struct hstate *h, long nr,
				    struct hugetlb_cgroup **h_cg)
{
	unsigned long nr_pages = nr * pages_per_huge_page(h);
	struct page_counter *fail;

	/*
	 * The first charge takes the cgroup, and a reference to it that
	 * hugetlb_gmem_put_cgroup() drops; later ones charge the same cgroup.
	 */
	if (!*h_cg)
		return hugetlb_cgroup_charge_cgroup_rsvd(hstate_index(h),
							 nr_pages, h_cg);
	if (!page_counter_try_charge(&(*h_cg)->rsvd_hugepage[hstate_index(h)],
				     nr_pages, &fail))
		return -ENOMEM;
	return 0;
}

static void hugetlb_gmem_uncharge_rsvd(struct hstate *h, long nr,
				       struct hugetlb_cgroup *h_cg)
{
	if (h_cg && nr)
		page_counter_uncharge(&h_cg->rsvd_hugepage[hstate_index(h)],
				      nr * pages_per_huge_page(h));
}
#else
static int hugetlb_gmem_charge_rsvd(struct hstate *h, long nr,
				    struct hugetlb_cgroup **h_cg)
{
	return 0;
}

static void hugetlb_gmem_uncharge_rsvd(struct hstate *h, long nr,
				       struct hugetlb_cgroup *h_cg)
{
}
#endif

/**
 * hugetlb_gmem_reserve - reserve hugepages from the pool
 * @h: the hstate
 * @nr: number of hugepages
 * @h_cg: the hugetlb cgroup charged for the reservation; if NULL, the
 *	calling task's, which is then stored here with a reference
 *
 * Return: 0, or -ENOMEM when the pool (surplus pages included) or the
 * cgroup's limit cannot cover @nr more pages; nothing is reserved or
 * charged then.  A failed first charge leaves *@h_cg NULL.
 */
int hugetlb_gmem_reserve(struct hstate *h, long nr,
			 struct hugetlb_cgroup **h_cg)
{
	bool first = !*h_cg;
	unsigned int pin_flags;
	int err;

	err = hugetlb_gmem_charge_rsvd(h, nr, h_cg);
	if (err)
		goto err_cgroup;
	/*
	 * Surplus pages allocated here for the reservation must be ones that
	 * hugetlb_gmem_alloc_folio() can take: not from ZONE_MOVABLE or CMA.
	 * (Gigantic ones come from hugetlb_cma= regardless, if it is set.)
	 */
	pin_flags = memalloc_pin_save();
	err = hugetlb_acct_memory(h, nr);
	memalloc_pin_restore(pin_flags);
	if (err)
		goto err_uncharge;
	return 0;

err_uncharge:
	if (first)
		hugetlb_cgroup_uncharge_cgroup_rsvd(hstate_index(h),
						    nr * pages_per_huge_page(h),
						    *h_cg);
	else
		hugetlb_gmem_uncharge_rsvd(h, nr, *h_cg);
err_cgroup:
	if (first)
		*h_cg = NULL;
	return err;
}
EXPORT_SYMBOL_FOR_KVM(hugetlb_gmem_reserve);

/**
 * hugetlb_gmem_unreserve - give unused reservations back to the pool
 * @h: the hstate
 * @nr: number of hugepages reserved by hugetlb_gmem_reserve() and not
 *	consumed by hugetlb_gmem_alloc_folio()
 * @h_cg: the cgroup they were charged to
 */
void hugetlb_gmem_unreserve(struct hstate *h, long nr,
			    struct hugetlb_cgroup *h_cg)
{
	if (!nr)
		return;
	hugetlb_acct_memory(h, -nr);
	hugetlb_gmem_uncharge_rsvd(h, nr, h_cg);
}
EXPORT_SYMBOL_FOR_KVM(hugetlb_gmem_unreserve);

/**
 * hugetlb_gmem_uncharge - uncharge reservations consumed by freed folios
 * @h: the hstate
 * @nr: number of folios of hugetlb_gmem_alloc_folio() that were freed
 * @h_cg: the cgroup their reservations were charged to
 *
 * A folio consumes its reservation from the pool when it is allocated;
 * the cgroup's charge for it stays until the folio leaves the file.
 */
void hugetlb_gmem_uncharge(struct hstate *h, long nr,
			   struct hugetlb_cgroup *h_cg)
{
	hugetlb_gmem_uncharge_rsvd(h, nr, h_cg);
}
EXPORT_SYMBOL_FOR_KVM(hugetlb_gmem_uncharge);

/**
 * hugetlb_gmem_put_cgroup - drop the cgroup reference of the reservations
 * @h: the hstate
 * @h_cg: the cgroup hugetlb_gmem_reserve() stored, or NULL
 *
 * Called once nothing is charged to @h_cg any more.
 */
void hugetlb_gmem_put_cgroup(struct hstate *h, struct hugetlb_cgroup *h_cg)
{
	hugetlb_cgroup_uncharge_cgroup_rsvd(hstate_index(h), 0, h_cg);
}
EXPORT_SYMBOL_FOR_KVM(hugetlb_gmem_put_cgroup);

/**
 * hugetlb_gmem_fault_mutex - the mutex that serializes a hugepage's faults
 * @mapping: the page cache
 * @hindex: the hugepage's index, in hugepages
 *
 * Return: the hugetlb fault mutex of (@mapping, @hindex), as hugetlbfs
 * faults use it.
 */
struct mutex *hugetlb_gmem_fault_mutex(struct address_space *mapping,
				       pgoff_t hindex)
{
	return &hugetlb_fault_mutex_table[hugetlb_fault_mutex_hash(mapping,
								   hindex)];
}
EXPORT_SYMBOL_FOR_KVM(hugetlb_gmem_fault_mutex);

/**
 * hugetlb_gmem_alloc_folio - allocate a hugepage from a reservation
 * @h: the hstate
 * @mapping: the page cache to insert the folio into
 * @hindex: the folio's index in @mapping, in hugepages
 *
 * Takes a page of one of the reservations of hugetlb_gmem_reserve(),
 * charges it to the calling task's hugetlb cgroup as a hugetlbfs fault
 * would, zeroes it and inserts it at @hindex.  The caller holds the fault
 * mutex of @hindex and has found no folio there.  The page is never one of
 * ZONE_MOVABLE or CMA: guest_memfd memory cannot be migrated.
 *
 * Return: the locked folio with a reference, dirty and not uptodate, or
 * ERR_PTR(-ENOMEM) when the cgroup limit or the pool (no page on an allowed
 * node) refuses; the reservation is then not consumed.
 */
struct folio *hugetlb_gmem_alloc_folio(struct hstate *h,
				       struct address_space *mapping,
				       pgoff_t hindex)
{
	unsigned long nr_pages = pages_per_huge_page(h);
	struct hugetlb_cgroup *h_cg;
	unsigned int pin_flags;
	struct folio *folio;
	int err;

	lockdep_assert_held(hugetlb_gmem_fault_mutex(mapping, hindex));

	err = hugetlb_cgroup_charge_cgroup(hstate_index(h), nr_pages, &h_cg);
	if (err)
		return ERR_PTR(err);

	/* A page that may be pinned for long, as pin_user_pages() takes. */
	pin_flags = memalloc_pin_save();
	folio = alloc_hugetlb_folio_reserve(h, numa_node_id(), NULL,
					    htlb_alloc_mask(h) & ~__GFP_MOVABLE);
	memalloc_pin_restore(pin_flags);
	if (!folio) {
		hugetlb_cgroup_uncharge_cgroup(hstate_index(h), nr_pages, h_cg);
		return ERR_PTR(-ENOMEM);
	}
	spin_lock_irq(&hugetlb_lock);
	hugetlb_cgroup_commit_charge(hstate_index(h), nr_pages, h_cg, folio);
	spin_unlock_irq(&hugetlb_lock);

	folio_zero_user(folio, 0);
	/* A pool page may still be uptodate from its previous user. */
	folio_clear_uptodate(folio);

	err = hugetlb_add_to_page_cache(folio, mapping, hindex);
	if (err) {
		/* Back to the pool, and its reservation with it. */
		folio_set_hugetlb_restore_reserve(folio);
		folio_put(folio);
		return ERR_PTR(err);
	}
	/*
	 * From here on memory_failure() hands each error to guest_memfd.
	 * One that came before was recorded under hugetlb_lock: it is seen
	 * by hugetlb_gmem_hwpoison_order().
	 */
	spin_lock_irq(&hugetlb_lock);
	folio_set_hugetlb_gmem(folio);
	spin_unlock_irq(&hugetlb_lock);
	return folio;
}
EXPORT_SYMBOL_FOR_KVM(hugetlb_gmem_alloc_folio);

/**
 * hugetlb_gmem_remove_folio - take a folio out of a guest_memfd's page cache
 * @folio: a locked folio of hugetlb_gmem_alloc_folio()
 *
 * The folio goes back to the pool when its last reference is dropped, its
 * reservation consumed for good.  A folio with a poisoned page never does:
 * it is kept here, with a reference of its own and uncharged from its
 * cgroup, whether or not memory_failure() got to it (an error that came
 * while the folio was allocated left no reference of memory_failure()), and
 * unpoison_memory() refuses it.  So is one whose final reclaim, called from
 * the page cache's ->free_folio(), recorded a page it could not take back
 * (hugetlb_gmem_poison_page()).  The caller holds a reference.
 */
void hugetlb_gmem_remove_folio(struct folio *folio)
{
	struct inode *inode = folio->mapping->host;
	struct hstate *h = folio_hstate(folio);
	bool keep;

	folio_clear_dirty(folio);
	folio_clear_uptodate(folio);
	filemap_remove_folio(folio);
	/*
	 * memory_failure() marks the folio under hugetlb_lock: an error
	 * recorded after this point finds a folio that is no longer
	 * guest_memfd's and is handled as on any in-use hugetlb folio.
	 */
	spin_lock_irq(&hugetlb_lock);
	keep = folio_test_hwpoison(folio);
	if (keep) {
		folio_get(folio);
		hugetlb_cgroup_uncharge_folio(hstate_index(h),
					      pages_per_huge_page(h), folio);
	} else {
		folio_clear_hugetlb_gmem(folio);
	}
	spin_unlock_irq(&hugetlb_lock);
	if (keep)
		pr_info("guest_memfd: poisoned hugepage at pfn %#lx kept out of the pool\n",
			folio_pfn(folio));
	spin_lock(&inode->i_lock);
	inode->i_blocks -= blocks_per_huge_page(h);
	spin_unlock(&inode->i_lock);
}
EXPORT_SYMBOL_FOR_KVM(hugetlb_gmem_remove_folio);
