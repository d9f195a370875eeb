// SPDX-License-Identifier: GPL-2.0
/*
 * HugeTLB backing for KVM guest_memfd.
 *
 * A hugetlb guest_memfd reserves all of its hugepages from the hstate's pool
 * when it is created, so that no guest fault can fail for lack of memory.
 * Each hugepage index of the file is in one of three states:
 *
 *   reserved    the file holds a pool reservation (counted in
 *               HugePages_Rsvd) and no folio;
 *   allocated   a zeroed folio, taken from that reservation, sits in the
 *               file's page cache at the hugepage-aligned index;
 *   released    the hugepage was punched out: folio (if any) and reservation
 *               went back to the pool, as hugetlbfs does on PUNCH_HOLE.
 *
 * Allocating a released index takes a new reservation first, so it may fail
 * with -ENOMEM when the pool is empty, like a hugetlbfs fault after a punch.
 * The hugetlb cgroup's reservation counter of the creator is charged for
 * every index that is reserved or allocated; allocated folios are charged to
 * the allocating task's hugetlb cgroup like hugetlbfs faults.
 *
 * Transitions of one index are serialized by hugetlb_fault_mutex_table,
 * hashed on (mapping, hugepage index), exactly as hugetlbfs serializes
 * faults; the counters below are protected by hugetlb_gmem::lock.
 *
 * Pool accounting uses the hugetlb primitives directly: hugetlb_acct_memory()
 * for reservations and alloc_hugetlb_folio_reserve() to consume one, so
 * /proc/meminfo and the per-size sysfs counters stay exact.  The folios are
 * not marked migratable: guest_memfd memory is unmovable.
 */
#include <linux/bitmap.h>
#include <linux/hugetlb.h>
#include <linux/hugetlb_cgroup.h>
#include <linux/hugetlb_gmem.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/page_counter.h>
#include <linux/pagemap.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

#include "internal.h"

struct hugetlb_gmem {
	struct hstate *h;
	/* Reservation charge of the creating task's hugetlb cgroup, or NULL. */
	struct hugetlb_cgroup *h_cg_rsvd;
	pgoff_t nr_hpages;
	spinlock_t lock;
	/* Indices in the reserved state. */
	unsigned long nr_reserved;
	/* Indices reserved or allocated: what h_cg_rsvd is charged for. */
	unsigned long nr_charged;
	/* One bit per hugepage index: set when released. */
	unsigned long *released;
};

/**
 * hugetlb_gmem_supported_shifts - page sizes usable for hugetlb guest_memfd
 *
 * Return: a mask with bit N set for each hstate of size 2^N bytes.
 */
unsigned long hugetlb_gmem_supported_shifts(void)
{
	unsigned long mask = 0;
	struct hstate *h;

	if (!hugepages_supported())
		return 0;

	for_each_hstate(h) {
		if (huge_page_shift(h) < BITS_PER_LONG)
			mask |= BIT(huge_page_shift(h));
	}
	return mask;
}
EXPORT_SYMBOL_GPL(hugetlb_gmem_supported_shifts);

/**
 * hugetlb_gmem_order - folio order of a hugetlb guest_memfd
 * @hg: the file's hugetlb state
 *
 * Return: the order of every folio in the file's page cache.
 */
unsigned int hugetlb_gmem_order(const struct hugetlb_gmem *hg)
{
	return huge_page_order(hg->h);
}
EXPORT_SYMBOL_GPL(hugetlb_gmem_order);

#ifdef CONFIG_CGROUP_HUGETLB
/*
 * The reservation charge stays with the creator's cgroup for the file's
 * lifetime (one css reference, dropped by the final uncharge), so later
 * changes go to the same page counter.
 */
static int hugetlb_gmem_charge_rsvd(struct hugetlb_gmem *hg, unsigned long nr)
{
	struct page_counter *fail;

	if (!hg->h_cg_rsvd || !nr)
		return 0;
	if (!page_counter_try_charge(&hg->h_cg_rsvd->rsvd_hugepage[hstate_index(hg->h)],
				     nr * pages_per_huge_page(hg->h), &fail))
		return -ENOMEM;
	return 0;
}

static void hugetlb_gmem_uncharge_rsvd(struct hugetlb_gmem *hg,
				       unsigned long nr)
{
	if (!hg->h_cg_rsvd || !nr)
		return;
	page_counter_uncharge(&hg->h_cg_rsvd->rsvd_hugepage[hstate_index(hg->h)],
			      nr * pages_per_huge_page(hg->h));
}
#else
static int hugetlb_gmem_charge_rsvd(struct hugetlb_gmem *hg, unsigned long nr)
{
	return 0;
}

static void hugetlb_gmem_uncharge_rsvd(struct hugetlb_gmem *hg,
				       unsigned long nr)
{
}
#endif

/**
 * hugetlb_gmem_create - reserve the hugepages of a new hugetlb guest_memfd
 * @page_shift: log2 of the hugepage size, or 0 for the default size
 * @size: size of the file in bytes
 *
 * Reserves size / hugepage size pages from the pool and charges them to the
 * calling task's hugetlb cgroup reservation counter.
 *
 * Return: the file's hugetlb state, ERR_PTR(-EINVAL) for an unknown page
 * size or a size that is not a multiple of it, ERR_PTR(-ENOMEM) when the
 * pool or the cgroup cannot cover the reservation.  Nothing is left
 * reserved or charged on error.
 */
struct hugetlb_gmem *hugetlb_gmem_create(unsigned int page_shift, loff_t size)
{
	struct hugetlb_gmem *hg;
	struct hstate *h;
	long nr;
	int err;

	if (!hugepages_supported())
		return ERR_PTR(-EINVAL);
	if (!page_shift)
		h = &default_hstate;
	else if (page_shift < BITS_PER_LONG)
		h = size_to_hstate(1UL << page_shift);
	else
		h = NULL;
	if (!h || size <= 0 || !IS_ALIGNED(size, huge_page_size(h)))
		return ERR_PTR(-EINVAL);
	nr = size >> huge_page_shift(h);

	hg = kzalloc(sizeof(*hg), GFP_KERNEL_ACCOUNT);
	if (!hg)
		return ERR_PTR(-ENOMEM);
	hg->released = kvcalloc(BITS_TO_LONGS(nr), sizeof(long),
				GFP_KERNEL_ACCOUNT);
	if (!hg->released) {
		err = -ENOMEM;
		goto err_free;
	}
	hg->h = h;
	hg->nr_hpages = nr;
	spin_lock_init(&hg->lock);

	err = hugetlb_cgroup_charge_cgroup_rsvd(hstate_index(h),
						nr * pages_per_huge_page(h),
						&hg->h_cg_rsvd);
	if (err)
		goto err_bitmap;

	err = hugetlb_acct_memory(h, nr);
	if (err)
		goto err_uncharge;

	hg->nr_reserved = nr;
	hg->nr_charged = nr;
	return hg;

err_uncharge:
	hugetlb_cgroup_uncharge_cgroup_rsvd(hstate_index(h),
					    nr * pages_per_huge_page(h),
					    hg->h_cg_rsvd);
err_bitmap:
	kvfree(hg->released);
err_free:
	kfree(hg);
	return ERR_PTR(err);
}
EXPORT_SYMBOL_GPL(hugetlb_gmem_create);

/*
 * Take a reservation back for a released index, so that allocating it
 * consumes a reservation like every other allocation.
 */
static int hugetlb_gmem_rereserve(struct hugetlb_gmem *hg)
{
	int err;

	err = hugetlb_gmem_charge_rsvd(hg, 1);
	if (err)
		return err;
	err = hugetlb_acct_memory(hg->h, 1);
	if (err) {
		hugetlb_gmem_uncharge_rsvd(hg, 1);
		return err;
	}
	spin_lock(&hg->lock);
	hg->nr_reserved++;
	hg->nr_charged++;
	spin_unlock(&hg->lock);
	return 0;
}

/* Drop @nr reservations of indices that hold no folio. */
static void hugetlb_gmem_unreserve(struct hugetlb_gmem *hg, unsigned long nr)
{
	if (!nr)
		return;
	spin_lock(&hg->lock);
	hg->nr_reserved -= nr;
	hg->nr_charged -= nr;
	spin_unlock(&hg->lock);
	hugetlb_acct_memory(hg->h, -(long)nr);
	hugetlb_gmem_uncharge_rsvd(hg, nr);
}

/*
 * Allocate the zeroed folio of hugepage @hindex from the file's reservation
 * and insert it, locked, into the page cache.  The caller holds the fault
 * mutex of @hindex and has checked that the page cache has no folio there.
 */
static struct folio *hugetlb_gmem_alloc_folio(struct hugetlb_gmem *hg,
					      struct address_space *mapping,
					      pgoff_t hindex)
{
	struct hstate *h = hg->h;
	int idx = hstate_index(h);
	struct hugetlb_cgroup *h_cg;
	struct folio *folio;
	bool released;
	int err;

	spin_lock(&hg->lock);
	released = test_bit(hindex, hg->released);
	spin_unlock(&hg->lock);
	if (released) {
		err = hugetlb_gmem_rereserve(hg);
		if (err)
			return ERR_PTR(err);
		spin_lock(&hg->lock);
		__clear_bit(hindex, hg->released);
		spin_unlock(&hg->lock);
	}

	err = hugetlb_cgroup_charge_cgroup(idx, pages_per_huge_page(h), &h_cg);
	if (err)
		goto err_unreserve;

	/* Unmovable: never let guest memory pin ZONE_MOVABLE. */
	folio = alloc_hugetlb_folio_reserve(h, numa_node_id(), NULL,
					    htlb_alloc_mask(h) & ~__GFP_MOVABLE);
	if (!folio) {
		err = -ENOMEM;
		goto err_uncharge;
	}
	spin_lock_irq(&hugetlb_lock);
	hugetlb_cgroup_commit_charge(idx, pages_per_huge_page(h), h_cg, folio);
	spin_unlock_irq(&hugetlb_lock);
	spin_lock(&hg->lock);
	hg->nr_reserved--;
	spin_unlock(&hg->lock);

	folio_zero_user(folio, 0);

	__folio_set_locked(folio);
	err = __filemap_add_folio(mapping, folio, hindex << huge_page_order(h),
				  GFP_KERNEL, NULL);
	if (err) {
		__folio_clear_locked(folio);
		/* Freeing returns the page and its reservation to the pool. */
		folio_set_hugetlb_restore_reserve(folio);
		folio_put(folio);
		spin_lock(&hg->lock);
		hg->nr_reserved++;
		spin_unlock(&hg->lock);
		goto err_unreserve;
	}
	/* Like hugetlbfs: a dirty folio is never dropped as clean cache. */
	folio_mark_dirty(folio);
	return folio;

err_uncharge:
	hugetlb_cgroup_uncharge_cgroup(idx, pages_per_huge_page(h), h_cg);
err_unreserve:
	if (released) {
		spin_lock(&hg->lock);
		__set_bit(hindex, hg->released);
		spin_unlock(&hg->lock);
		hugetlb_gmem_unreserve(hg, 1);
	}
	return ERR_PTR(err);
}

/**
 * hugetlb_gmem_get_folio - find or allocate the folio backing an index
 * @hg: the file's hugetlb state
 * @mapping: the file's page cache
 * @index: any page index (in PAGE_SIZE units) inside the file
 *
 * Two callers racing for the same hugepage get the same folio: allocation
 * is serialized by the hugetlb fault mutex of the hugepage.
 *
 * Return: the locked folio containing @index with a reference held, or an
 * ERR_PTR: -ENOMEM when a released hugepage cannot be reserved again or the
 * pool has no page for the reservation on an allowed node.
 */
struct folio *hugetlb_gmem_get_folio(struct hugetlb_gmem *hg,
				     struct address_space *mapping,
				     pgoff_t index)
{
	pgoff_t hindex = index >> huge_page_order(hg->h);
	struct folio *folio;
	u32 hash;

	if (WARN_ON_ONCE(hindex >= hg->nr_hpages))
		return ERR_PTR(-EINVAL);

	folio = filemap_lock_folio(mapping, index);
	if (!IS_ERR(folio))
		return folio;

	hash = hugetlb_fault_mutex_hash(mapping, hindex);
	mutex_lock(&hugetlb_fault_mutex_table[hash]);
	folio = filemap_lock_folio(mapping, index);
	if (IS_ERR(folio))
		folio = hugetlb_gmem_alloc_folio(hg, mapping, hindex);
	mutex_unlock(&hugetlb_fault_mutex_table[hash]);
	return folio;
}
EXPORT_SYMBOL_GPL(hugetlb_gmem_get_folio);

/* Take a locked folio out of the page cache; it goes back to the pool. */
static void hugetlb_gmem_remove_folio(struct folio *folio)
{
	folio_clear_dirty(folio);
	folio_clear_uptodate(folio);
	filemap_remove_folio(folio);
}

/**
 * hugetlb_gmem_truncate - release whole hugepages of a hugetlb guest_memfd
 * @hg: the file's hugetlb state
 * @mapping: the file's page cache
 * @start: first page index (PAGE_SIZE units), hugepage aligned
 * @end: page index after the range, hugepage aligned or past the file's end
 *
 * Every folio in the range leaves the page cache (the mapping's
 * ->free_folio() reports it to the architecture) and goes back to the pool
 * once its last reference is dropped; the reservations of the range are
 * released.  The caller holds the mapping's invalidate lock and has zapped
 * all mappings of the range.  Cannot fail.
 */
void hugetlb_gmem_truncate(struct hugetlb_gmem *hg,
			   struct address_space *mapping,
			   pgoff_t start, pgoff_t end)
{
	unsigned int order = huge_page_order(hg->h);
	pgoff_t hindex, hend;
	unsigned long unreserve = 0, uncharge = 0;

	lockdep_assert_held_write(&mapping->invalidate_lock);
	WARN_ON_ONCE(!IS_ALIGNED(start, 1UL << order));

	hend = min_t(pgoff_t, DIV_ROUND_UP(end, 1UL << order), hg->nr_hpages);
	for (hindex = start >> order; hindex < hend; hindex++) {
		u32 hash = hugetlb_fault_mutex_hash(mapping, hindex);
		struct folio *folio;

		mutex_lock(&hugetlb_fault_mutex_table[hash]);
		folio = filemap_lock_folio(mapping, hindex << order);
		if (!IS_ERR(folio)) {
			hugetlb_gmem_remove_folio(folio);
			folio_unlock(folio);
			folio_put(folio);
			spin_lock(&hg->lock);
			__set_bit(hindex, hg->released);
			hg->nr_charged--;
			spin_unlock(&hg->lock);
			uncharge++;
		} else {
			spin_lock(&hg->lock);
			if (!__test_and_set_bit(hindex, hg->released))
				unreserve++;
			spin_unlock(&hg->lock);
		}
		mutex_unlock(&hugetlb_fault_mutex_table[hash]);
		cond_resched();
	}
	hugetlb_gmem_uncharge_rsvd(hg, uncharge);
	hugetlb_gmem_unreserve(hg, unreserve);
}
EXPORT_SYMBOL_GPL(hugetlb_gmem_truncate);

/**
 * hugetlb_gmem_destroy - free every hugepage and reservation of a file
 * @hg: the file's hugetlb state, freed on return
 * @mapping: the file's page cache, or NULL if it never held a folio
 *
 * Called when the last user of the file goes away, with all mappings
 * already zapped and the invalidate lock of @mapping held.  Afterwards the
 * pool and cgroup counters are exactly as before hugetlb_gmem_create().
 */
void hugetlb_gmem_destroy(struct hugetlb_gmem *hg,
			  struct address_space *mapping)
{
	if (mapping)
		hugetlb_gmem_truncate(hg, mapping, 0,
				      hg->nr_hpages << huge_page_order(hg->h));
	else
		hugetlb_gmem_unreserve(hg, hg->nr_reserved);
	WARN_ON_ONCE(hg->nr_reserved || hg->nr_charged);
	/* Drops the css reference taken by the creation charge. */
	hugetlb_cgroup_uncharge_cgroup_rsvd(hstate_index(hg->h), 0,
					    hg->h_cg_rsvd);
	kvfree(hg->released);
	kfree(hg);
}
EXPORT_SYMBOL_GPL(hugetlb_gmem_destroy);
