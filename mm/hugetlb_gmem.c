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
#include <linux/sched/mm.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

#include "internal.h"

struct hugetlb_gmem {
	struct hstate *h;
	/* Reservation charge of the creating task's hugetlb cgroup, or NULL. */
	struct hugetlb_cgroup *h_cg_rsvd;
	pgoff_t nr_hpages;
	/* Protects the counters and the released bitmap below. */
	spinlock_t lock;
	/* Indices in the reserved state. */
	unsigned long nr_reserved;
	/* Indices reserved or allocated: what h_cg_rsvd is charged for. */
	unsigned long nr_charged;
	/* One bit per hugepage index: set when released. */
	unsigned long *released;
	/*
	 * Hugepage index -> struct hugetlb_gmem_subpages of a folio that has
	 * been partly punched.  An entry is created before the punch's point
	 * of no return and freed with its folio, by a truncate or at destroy;
	 * its bits are changed only under the folio lock.
	 */
	struct xarray subpages;
	atomic_long_t nr_partial;	/* folios with punched subpages */
	atomic_long_t nr_punched;	/* punched subpages in those folios */
	atomic_long_t nr_poisoned;	/* poisoned subpages in those folios */
};

/*
 * Punched subpages of one folio: zeroed, reported, not guest memory.  The
 * map is a separate allocation of exactly one bit per subpage (32 KiB for a
 * 1 GiB folio) so that it is not rounded up to the next power of two.
 */
struct hugetlb_gmem_subpages {
	unsigned long nr_punched;
	unsigned long *map;
	/*
	 * Subpages memory_failure() reported, or NULL: holes (also set in
	 * @map) that are never zeroed, reported or refilled again.
	 */
	unsigned long *poisoned;
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
 * hugetlb_gmem_walk_blocks - split a range into maximal aligned blocks
 * @start: first page offset
 * @end: page offset after the range
 * @fn: called for each block, in ascending order
 * @arg: passed to @fn
 *
 * Calls @fn(@start_of_block, @order, @arg) for the naturally aligned blocks
 * of 2^order pages that cover [@start, @end) with the fewest blocks: each
 * block is as large as its alignment and the rest of the range allow.
 */
void hugetlb_gmem_walk_blocks(unsigned long start, unsigned long end,
			      hugetlb_gmem_block_fn fn, void *arg)
{
	while (start < end) {
		unsigned int order = fls_long(end - start) - 1;

		if (start)
			order = min_t(unsigned int, order, __ffs(start));
		fn(start, order, arg);
		start += 1UL << order;
	}
}
EXPORT_SYMBOL_GPL(hugetlb_gmem_walk_blocks);

/**
 * hugetlb_gmem_walk_unpunched - blocks of the subpages still in use
 * @map: punched-subpage bitmap of a folio, or NULL when none is punched
 * @start: first subpage offset inside the folio
 * @end: subpage offset after the range
 * @fn: called for each block, see hugetlb_gmem_walk_blocks()
 * @arg: passed to @fn
 *
 * Reports every run of unpunched subpages in [@start, @end) as maximal
 * naturally aligned blocks.
 */
void hugetlb_gmem_walk_unpunched(const unsigned long *map,
				 unsigned long start,
				 unsigned long end,
				 hugetlb_gmem_block_fn fn, void *arg)
{
	while (start < end) {
		unsigned long run_end;

		if (map) {
			start = find_next_zero_bit(map, end, start);
			if (start >= end)
				break;
			run_end = find_next_bit(map, end, start);
		} else {
			run_end = end;
		}
		hugetlb_gmem_walk_blocks(start, run_end, fn, arg);
		start = run_end;
	}
}
EXPORT_SYMBOL_GPL(hugetlb_gmem_walk_unpunched);

struct hugetlb_gmem_mark {
	unsigned long *map;
	hugetlb_gmem_block_fn fn;
	void *arg;
	unsigned long punched;
};

static void hugetlb_gmem_mark_block(unsigned long start, unsigned int order,
				    void *arg)
{
	struct hugetlb_gmem_mark *m = arg;

	if (m->fn)
		m->fn(start, order, m->arg);
	bitmap_set(m->map, start, 1UL << order);
	m->punched += 1UL << order;
}

/**
 * hugetlb_gmem_punch_subpages - mark subpages of a folio punched
 * @map: the folio's punched-subpage bitmap
 * @start: first subpage offset
 * @end: subpage offset after the range
 * @fn: if not NULL, called for each maximal aligned block of subpages that
 *	were not punched yet, before the block is marked
 * @arg: passed to @fn
 *
 * Return: the number of subpages newly marked.
 */
unsigned long hugetlb_gmem_punch_subpages(unsigned long *map,
					  unsigned long start, unsigned long end,
					  hugetlb_gmem_block_fn fn, void *arg)
{
	struct hugetlb_gmem_mark m = { .map = map, .fn = fn, .arg = arg };

	hugetlb_gmem_walk_unpunched(map, start, end,
				    hugetlb_gmem_mark_block, &m);
	return m.punched;
}
EXPORT_SYMBOL_GPL(hugetlb_gmem_punch_subpages);

/**
 * hugetlb_gmem_refill_subpages - clear the punched marks of a range
 * @map: the folio's punched-subpage bitmap
 * @start: first subpage offset
 * @end: subpage offset after the range
 *
 * Return: the number of subpages that were marked.
 */
unsigned long hugetlb_gmem_refill_subpages(unsigned long *map,
					   unsigned long start,
					   unsigned long end)
{
	unsigned long i, n = 0;

	for (i = find_next_bit(map, end, start); i < end;
	     i = find_next_bit(map, end, i + 1)) {
		__clear_bit(i, map);
		n++;
	}
	return n;
}
EXPORT_SYMBOL_GPL(hugetlb_gmem_refill_subpages);

/**
 * hugetlb_gmem_subpages_max_order - largest hole-free block around a subpage
 * @map: the folio's punched-subpage bitmap
 * @order: the folio's order
 * @off: subpage offset inside the folio
 *
 * Return: the largest order of a naturally aligned block containing @off
 * with no marked subpage; 0 if @off itself is marked.
 */
int hugetlb_gmem_subpages_max_order(const unsigned long *map,
				    unsigned int order, unsigned long off)
{
	for (; order > 0; order--) {
		unsigned long base = round_down(off, 1UL << order);

		if (find_next_bit(map, base + (1UL << order), base) >=
		    base + (1UL << order))
			break;
	}
	return order;
}
EXPORT_SYMBOL_GPL(hugetlb_gmem_subpages_max_order);

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
	hg->h = h;
	hg->nr_hpages = nr;
	spin_lock_init(&hg->lock);
	xa_init(&hg->subpages);

	/*
	 * Reserve before allocating anything proportional to @size: a size
	 * the pool cannot cover fails here, cheaply, and once the reservation
	 * holds, @nr is bounded by the pool.
	 */
	err = hugetlb_cgroup_charge_cgroup_rsvd(hstate_index(h),
						nr * pages_per_huge_page(h),
						&hg->h_cg_rsvd);
	if (err)
		goto err_free;

	err = hugetlb_acct_memory(h, nr);
	if (err)
		goto err_uncharge;

	hg->released = kvcalloc(BITS_TO_LONGS(nr), sizeof(long),
				GFP_KERNEL_ACCOUNT);
	if (!hg->released) {
		err = -ENOMEM;
		goto err_unreserve;
	}

	hg->nr_reserved = nr;
	hg->nr_charged = nr;
	return hg;

err_unreserve:
	hugetlb_acct_memory(h, -nr);
err_uncharge:
	hugetlb_cgroup_uncharge_cgroup_rsvd(hstate_index(h),
					    nr * pages_per_huge_page(h),
					    hg->h_cg_rsvd);
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
	unsigned int pin_flags;
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

	/*
	 * guest_memfd pins its folios until they are punched: take one that
	 * may be pinned for long, as pin_user_pages() would, never one of
	 * ZONE_MOVABLE or CMA.  The gfp mask only chooses the nodes the pool
	 * is searched on; PF_MEMALLOC_PIN filters the folios.
	 */
	pin_flags = memalloc_pin_save();
	folio = alloc_hugetlb_folio_reserve(h, numa_node_id(), NULL,
					    htlb_alloc_mask(h) & ~__GFP_MOVABLE);
	memalloc_pin_restore(pin_flags);
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
	/* st_blocks counts allocated hugepages, as on hugetlbfs. */
	inode_add_bytes(mapping->host, huge_page_size(h));
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

/*
 * The punched-subpage map of hugepage @hindex, allocated if it has none.
 * Punch-hole creates maps under the invalidate lock, memory failure under
 * the folio lock only: whoever stores first wins.
 */
static struct hugetlb_gmem_subpages *
hugetlb_gmem_get_subpages(struct hugetlb_gmem *hg, pgoff_t hindex)
{
	unsigned long nr = pages_per_huge_page(hg->h);
	struct hugetlb_gmem_subpages *sp, *old;
	int err = -ENOMEM;

	sp = xa_load(&hg->subpages, hindex);
	if (sp)
		return sp;

	sp = kzalloc(sizeof(*sp), GFP_KERNEL_ACCOUNT);
	if (!sp)
		return ERR_PTR(-ENOMEM);
	sp->map = kvcalloc(BITS_TO_LONGS(nr), sizeof(long), GFP_KERNEL_ACCOUNT);
	if (!sp->map)
		goto err_free;
	old = xa_cmpxchg(&hg->subpages, hindex, NULL, sp, GFP_KERNEL_ACCOUNT);
	if (xa_is_err(old)) {
		err = xa_err(old);
		goto err_free_map;
	}
	if (old) {
		kvfree(sp->map);
		kfree(sp);
		return old;
	}
	return sp;

err_free_map:
	kvfree(sp->map);
err_free:
	kfree(sp);
	return ERR_PTR(err);
}

/**
 * hugetlb_gmem_punch_prepare - allocate what a punch needs before it starts
 * @hg: the file's hugetlb state
 * @start: first page index of the punch
 * @end: page index after the punch
 *
 * A punch that covers part of a hugepage records the punched subpages in a
 * bitmap allocated here, before the caller zaps any mapping: after that
 * point hugetlb_gmem_truncate() cannot fail.  The caller holds the
 * mapping's invalidate lock for write until hugetlb_gmem_truncate() is done.
 *
 * Return: 0, or -ENOMEM with nothing changed but empty bitmaps.
 */
int hugetlb_gmem_punch_prepare(struct hugetlb_gmem *hg, pgoff_t start,
			       pgoff_t end)
{
	unsigned long nr = pages_per_huge_page(hg->h);
	pgoff_t partial[2];
	int i, n = 0;

	/* At most the first and the last hugepage are covered in part. */
	if (!IS_ALIGNED(start, nr))
		partial[n++] = start / nr;
	if (!IS_ALIGNED(end, nr) && (!n || partial[0] != (end - 1) / nr))
		partial[n++] = (end - 1) / nr;

	for (i = 0; i < n; i++) {
		struct hugetlb_gmem_subpages *sp;

		if (partial[i] >= hg->nr_hpages)
			continue;
		sp = hugetlb_gmem_get_subpages(hg, partial[i]);
		if (IS_ERR(sp))
			return PTR_ERR(sp);
	}
	return 0;
}
EXPORT_SYMBOL_GPL(hugetlb_gmem_punch_prepare);

struct hugetlb_gmem_punch {
	struct folio *folio;
	hugetlb_gmem_invalidate_t invalidate;
	enum hugetlb_gmem_why why;
};

static void hugetlb_gmem_report_block(unsigned long start, unsigned int order,
				      void *arg)
{
	struct hugetlb_gmem_punch *p = arg;

	if (p->invalidate)
		p->invalidate(p->folio, p->folio->index + start, order, p->why);
}

/* Report and zero one newly punched block of a folio. */
static void hugetlb_gmem_punch_block(unsigned long start, unsigned int order,
				     void *arg)
{
	struct hugetlb_gmem_punch *p = arg;
	unsigned long i;

	hugetlb_gmem_report_block(start, order, arg);
	for (i = 0; i < (1UL << order); i++) {
		clear_highpage(folio_page(p->folio, start + i));
		cond_resched();
	}
}

static void hugetlb_gmem_account_punched(struct hugetlb_gmem *hg,
					 struct hugetlb_gmem_subpages *sp,
					 long delta)
{
	if (!delta)
		return;
	if (!sp->nr_punched)
		atomic_long_inc(&hg->nr_partial);
	sp->nr_punched += delta;
	if (!sp->nr_punched)
		atomic_long_dec(&hg->nr_partial);
	atomic_long_add(delta, &hg->nr_punched);
}

static void hugetlb_gmem_free_subpages(struct hugetlb_gmem *hg, pgoff_t hindex)
{
	struct hugetlb_gmem_subpages *sp = xa_erase(&hg->subpages, hindex);

	if (!sp)
		return;
	hugetlb_gmem_account_punched(hg, sp, -(long)sp->nr_punched);
	if (sp->poisoned) {
		atomic_long_sub(bitmap_weight(sp->poisoned,
					      pages_per_huge_page(hg->h)),
				&hg->nr_poisoned);
		kvfree(sp->poisoned);
	}
	kvfree(sp->map);
	kfree(sp);
}

/*
 * A folio that memory_failure() poisoned but whose poisoned subpages are
 * not tracked (not yet, or hugetlb_gmem_poison() failed): any subpage may
 * be poisoned, so none may be written, reported or mapped.
 */
static bool hugetlb_gmem_poison_untracked(struct hugetlb_gmem_subpages *sp,
					  struct folio *folio)
{
	return folio_test_hwpoison(folio) && (!sp || !sp->poisoned);
}

/*
 * Whether punching [@start, @end) leaves no subpage of the folio in use:
 * then the folio is freed whole, without zeroing what it is about to free.
 */
static bool hugetlb_gmem_punch_completes(struct hugetlb_gmem_subpages *sp,
					 unsigned long start, unsigned long end,
					 unsigned long nr)
{
	return find_first_zero_bit(sp->map, start) >= start &&
	       find_next_zero_bit(sp->map, nr, end) >= nr;
}

/*
 * Punch [@start, @end) (subpage offsets) out of a locked folio.  Return
 * true when no subpage of the folio is left in use.
 */
static bool hugetlb_gmem_punch_folio(struct hugetlb_gmem *hg,
				     struct folio *folio, pgoff_t hindex,
				     unsigned long start, unsigned long end,
				     hugetlb_gmem_invalidate_t invalidate)
{
	struct hugetlb_gmem_subpages *sp = xa_load(&hg->subpages, hindex);
	struct hugetlb_gmem_punch p = {
		.folio = folio,
		.invalidate = invalidate,
		.why = HUGETLB_GMEM_PUNCH,
	};
	hugetlb_gmem_block_fn fn = NULL;

	/* hugetlb_gmem_punch_prepare() allocated it. */
	if (WARN_ON_ONCE(!sp))
		return false;
	if (hugetlb_gmem_punch_completes(sp, start, end, folio_nr_pages(folio)))
		return true;
	/* Only mark what may be poisoned: it is never written or reported. */
	if (!hugetlb_gmem_poison_untracked(sp, folio))
		fn = hugetlb_gmem_punch_block;
	hugetlb_gmem_account_punched(hg, sp,
				     hugetlb_gmem_punch_subpages(sp->map, start, end,
								 fn, &p));
	return sp->nr_punched == folio_nr_pages(folio);
}

/*
 * Take a locked folio out of the page cache: the subpages still in use are
 * reported, then ->free_folio() reports the whole folio, which goes back to
 * the pool with its last reference.
 */
static void hugetlb_gmem_remove_folio(struct hugetlb_gmem *hg,
				      struct folio *folio, pgoff_t hindex,
				      hugetlb_gmem_invalidate_t invalidate)
{
	struct hugetlb_gmem_subpages *sp = xa_load(&hg->subpages, hindex);
	struct hugetlb_gmem_punch p = {
		.folio = folio,
		.invalidate = invalidate,
		.why = HUGETLB_GMEM_RELEASE,
	};

	/* Nothing that may be poisoned is reported to the architecture. */
	if (!hugetlb_gmem_poison_untracked(sp, folio))
		hugetlb_gmem_walk_unpunched(sp ? sp->map : NULL, 0,
					    folio_nr_pages(folio),
					    hugetlb_gmem_report_block, &p);
	hugetlb_gmem_free_subpages(hg, hindex);
	folio_clear_dirty(folio);
	folio_clear_uptodate(folio);
	inode_sub_bytes(folio->mapping->host, folio_size(folio));
	filemap_remove_folio(folio);
}

/**
 * hugetlb_gmem_truncate - punch a range out of a hugetlb guest_memfd
 * @hg: the file's hugetlb state
 * @mapping: the file's page cache
 * @start: first page index (PAGE_SIZE units)
 * @end: page index after the range
 * @invalidate: reports each block of subpages that stops being guest memory,
 *	or NULL
 *
 * Each hugepage the range covers whole leaves the page cache and goes back
 * to the pool with its reservation.  Of a hugepage covered in part, the
 * subpages not punched before are reported, zeroed and marked punched; a
 * punch that leaves no subpage of the folio in use frees it as a whole
 * punch does, without zeroing it.  The mapping's ->free_folio() then
 * reports the whole folio.
 *
 * The caller holds the invalidate lock for write, has called
 * hugetlb_gmem_punch_prepare() for the range under it, and has zapped all
 * mappings of the range.  Cannot fail.
 */
void hugetlb_gmem_truncate(struct hugetlb_gmem *hg,
			   struct address_space *mapping,
			   pgoff_t start, pgoff_t end,
			   hugetlb_gmem_invalidate_t invalidate)
{
	unsigned int order = huge_page_order(hg->h);
	unsigned long nr = 1UL << order;
	pgoff_t hindex, hend;

	lockdep_assert_held_write(&mapping->invalidate_lock);

	hend = min_t(pgoff_t, DIV_ROUND_UP(end, nr), hg->nr_hpages);
	for (hindex = start >> order; hindex < hend; hindex++) {
		u32 hash = hugetlb_fault_mutex_hash(mapping, hindex);
		pgoff_t first = hindex << order;
		unsigned long s = max(start, first) - first;
		unsigned long e = min_t(pgoff_t, end - first, nr);
		struct folio *folio;
		bool whole;

		/*
		 * Each released index gives its reservation and cgroup charge
		 * back before its fault mutex is dropped, so that a fault
		 * that finds it released can take them again at once.
		 */
		mutex_lock(&hugetlb_fault_mutex_table[hash]);
		folio = filemap_lock_folio(mapping, first);
		if (IS_ERR(folio)) {
			/* Nothing allocated: only a whole punch releases. */
			if (s == 0 && e == nr) {
				bool release;

				spin_lock(&hg->lock);
				release = !__test_and_set_bit(hindex,
							      hg->released);
				spin_unlock(&hg->lock);
				if (release)
					hugetlb_gmem_unreserve(hg, 1);
			}
			/* Only a folio has punched subpages: drop a spare. */
			hugetlb_gmem_free_subpages(hg, hindex);
			mutex_unlock(&hugetlb_fault_mutex_table[hash]);
			continue;
		}

		whole = s == 0 && e == nr;
		if (!whole)
			whole = hugetlb_gmem_punch_folio(hg, folio, hindex, s, e,
							 invalidate);
		if (whole) {
			hugetlb_gmem_remove_folio(hg, folio, hindex, invalidate);
			spin_lock(&hg->lock);
			__set_bit(hindex, hg->released);
			hg->nr_charged--;
			spin_unlock(&hg->lock);
		}
		folio_unlock(folio);
		folio_put(folio);
		if (whole)
			hugetlb_gmem_uncharge_rsvd(hg, 1);
		mutex_unlock(&hugetlb_fault_mutex_table[hash]);
		cond_resched();
	}
}
EXPORT_SYMBOL_GPL(hugetlb_gmem_truncate);

/* The punched-subpage map of a locked folio of the file, or NULL. */
static struct hugetlb_gmem_subpages *
hugetlb_gmem_folio_subpages(struct hugetlb_gmem *hg, struct folio *folio)
{
	VM_WARN_ON_ONCE_FOLIO(!folio_test_locked(folio), folio);
	return xa_load(&hg->subpages, folio->index >> huge_page_order(hg->h));
}

/**
 * hugetlb_gmem_refill - make punched subpages of a folio guest memory again
 * @hg: the file's hugetlb state
 * @folio: a locked folio of the file
 * @start: first page index (PAGE_SIZE units) to refill
 * @end: page index after the range
 *
 * Punched subpages are already zero; clearing their marks means the folio
 * is freed only when they are punched again.
 *
 * Return: the number of subpages that were punched.
 */
unsigned long hugetlb_gmem_refill(struct hugetlb_gmem *hg, struct folio *folio,
				  pgoff_t start, pgoff_t end)
{
	struct hugetlb_gmem_subpages *sp = hugetlb_gmem_folio_subpages(hg, folio);
	unsigned long n, s, e, run;

	if (!sp || !sp->nr_punched)
		return 0;
	s = max(start, folio->index) - folio->index;
	e = min(end, folio_next_index(folio)) - folio->index;
	if (!sp->poisoned) {
		n = hugetlb_gmem_refill_subpages(sp->map, s, e);
	} else {
		/* A poisoned subpage stays a hole. */
		for (n = 0; s < e; s = find_next_zero_bit(sp->poisoned, e, run)) {
			run = find_next_bit(sp->poisoned, e, s);
			n += hugetlb_gmem_refill_subpages(sp->map, s, run);
		}
	}
	hugetlb_gmem_account_punched(hg, sp, -(long)n);
	return n;
}
EXPORT_SYMBOL_GPL(hugetlb_gmem_refill);

/**
 * hugetlb_gmem_max_order - largest hole-free order around an index
 * @hg: the file's hugetlb state
 * @folio: a locked folio of the file
 * @index: a page index inside @folio
 *
 * Return: the largest order of a naturally aligned block around @index,
 * inside @folio, that contains no punched subpage.
 */
int hugetlb_gmem_max_order(struct hugetlb_gmem *hg, struct folio *folio,
			   pgoff_t index)
{
	struct hugetlb_gmem_subpages *sp = hugetlb_gmem_folio_subpages(hg, folio);

	if (!sp || !sp->nr_punched)
		return folio_order(folio);
	return hugetlb_gmem_subpages_max_order(sp->map, folio_order(folio),
					       index - folio->index);
}
EXPORT_SYMBOL_GPL(hugetlb_gmem_max_order);

/**
 * hugetlb_gmem_poison - make the poisoned subpages of a folio holes for good
 * @hg: the file's hugetlb state
 * @folio: a locked folio of the file that memory_failure() poisoned
 *
 * For the mapping's ->error_remove_folio(), under mf_mutex.  Each subpage
 * memory_failure() recorded becomes a punched subpage that is never zeroed,
 * reported or refilled: hugetlb_gmem_max_order() excludes it and
 * hugetlb_gmem_poisoned() reports it.  The other subpages stay guest
 * memory.  memory_failure() keeps a reference to the folio, so it never
 * returns to the pool, even once all of it is punched.
 *
 * Return: 0, or -ENOMEM when the subpages cannot be tracked: then
 * hugetlb_gmem_poisoned() reports the whole folio.
 */
int hugetlb_gmem_poison(struct hugetlb_gmem *hg, struct folio *folio)
{
	pgoff_t hindex = folio->index >> huge_page_order(hg->h);
	unsigned long nr = folio_nr_pages(folio), before, i, n = 0;
	struct hugetlb_gmem_subpages *sp;

	VM_WARN_ON_ONCE_FOLIO(!folio_test_locked(folio), folio);
	sp = hugetlb_gmem_get_subpages(hg, hindex);
	if (IS_ERR(sp))
		return PTR_ERR(sp);
	if (!sp->poisoned) {
		unsigned long *map = kvcalloc(BITS_TO_LONGS(nr), sizeof(long),
					      GFP_KERNEL_ACCOUNT);

		if (!map)
			return -ENOMEM;
		/* fdinfo counts these maps without the folio lock. */
		WRITE_ONCE(sp->poisoned, map);
	}
	before = bitmap_weight(sp->poisoned, nr);
	if (!hugetlb_folio_hwpoison_subpages(folio, sp->poisoned))
		bitmap_fill(sp->poisoned, nr);
	atomic_long_add(bitmap_weight(sp->poisoned, nr) - before,
			&hg->nr_poisoned);

	for_each_set_bit(i, sp->poisoned, nr)
		n += !__test_and_set_bit(i, sp->map);
	hugetlb_gmem_account_punched(hg, sp, n);
	return 0;
}
EXPORT_SYMBOL_GPL(hugetlb_gmem_poison);

/**
 * hugetlb_gmem_poisoned - whether a subpage of a folio is poisoned
 * @hg: the file's hugetlb state
 * @folio: a locked folio of the file
 * @index: a page index inside @folio
 *
 * Return: true if memory_failure() reported the subpage at @index, or if
 * the folio is poisoned and its poisoned subpages are not known.
 */
bool hugetlb_gmem_poisoned(struct hugetlb_gmem *hg, struct folio *folio,
			   pgoff_t index)
{
	struct hugetlb_gmem_subpages *sp = hugetlb_gmem_folio_subpages(hg, folio);

	if (hugetlb_gmem_poison_untracked(sp, folio))
		return true;
	return sp && sp->poisoned &&
	       test_bit(index - folio->index, sp->poisoned);
}
EXPORT_SYMBOL_GPL(hugetlb_gmem_poisoned);

/**
 * hugetlb_gmem_show_fdinfo - hugetlb counters of a file, for fdinfo
 * @hg: the file's hugetlb state
 * @m: the fdinfo seq_file
 */
void hugetlb_gmem_show_fdinfo(struct hugetlb_gmem *hg, struct seq_file *m)
{
	unsigned long reserved, charged, maps = 0, pmaps = 0, index;
	size_t map_bytes = kmalloc_size_roundup(BITS_TO_LONGS(pages_per_huge_page(hg->h)) *
						sizeof(long));
	struct hugetlb_gmem_subpages *sp;
	size_t bytes;

	spin_lock(&hg->lock);
	reserved = hg->nr_reserved;
	charged = hg->nr_charged;
	spin_unlock(&hg->lock);
	xa_lock(&hg->subpages);
	xa_for_each(&hg->subpages, index, sp) {
		maps++;
		pmaps += !!READ_ONCE(sp->poisoned);
	}
	xa_unlock(&hg->subpages);
	/* What this file really allocated, besides its xarray nodes. */
	bytes = kmalloc_size_roundup(sizeof(*hg)) +
		kmalloc_size_roundup(BITS_TO_LONGS(hg->nr_hpages) *
				     sizeof(long)) +
		maps * (kmalloc_size_roundup(sizeof(*sp)) + map_bytes) +
		pmaps * map_bytes;
	seq_printf(m, "hugetlb_page_size:\t%lu\n", huge_page_size(hg->h));
	seq_printf(m, "hugetlb_pages:\t%lu\n", hg->nr_hpages);
	seq_printf(m, "hugetlb_reserved:\t%lu\n", reserved);
	seq_printf(m, "hugetlb_allocated:\t%lu\n", charged - reserved);
	seq_printf(m, "hugetlb_partial_folios:\t%ld\n",
		   atomic_long_read(&hg->nr_partial));
	seq_printf(m, "hugetlb_punched_subpages:\t%ld\n",
		   atomic_long_read(&hg->nr_punched));
	seq_printf(m, "hugetlb_poisoned_subpages:\t%ld\n",
		   atomic_long_read(&hg->nr_poisoned));
	seq_printf(m, "hugetlb_subpage_maps:\t%lu\n", maps);
	seq_printf(m, "hugetlb_metadata_bytes:\t%zu\n", bytes);
}
EXPORT_SYMBOL_GPL(hugetlb_gmem_show_fdinfo);

/**
 * hugetlb_gmem_destroy - free every hugepage and reservation of a file
 * @hg: the file's hugetlb state, freed on return
 * @mapping: the file's page cache, or NULL if it never held a folio
 * @invalidate: reports the folios still in use, or NULL; see
 *	hugetlb_gmem_truncate()
 *
 * Called when the last user of the file goes away, with all mappings
 * already zapped and the invalidate lock of @mapping held.  Afterwards the
 * pool and cgroup counters are exactly as before hugetlb_gmem_create().
 */
void hugetlb_gmem_destroy(struct hugetlb_gmem *hg,
			  struct address_space *mapping,
			  hugetlb_gmem_invalidate_t invalidate)
{
	struct hugetlb_gmem_subpages *sp;
	unsigned long hindex;

	if (mapping)
		hugetlb_gmem_truncate(hg, mapping, 0,
				      hg->nr_hpages << huge_page_order(hg->h),
				      invalidate);
	else
		hugetlb_gmem_unreserve(hg, hg->nr_reserved);
	xa_for_each(&hg->subpages, hindex, sp)
		hugetlb_gmem_free_subpages(hg, hindex);
	xa_destroy(&hg->subpages);
	WARN_ON_ONCE(hg->nr_reserved || hg->nr_charged);
	/* Drops the css reference taken by the creation charge. */
	hugetlb_cgroup_uncharge_cgroup_rsvd(hstate_index(hg->h), 0,
					    hg->h_cg_rsvd);
	kvfree(hg->released);
	kfree(hg);
}
EXPORT_SYMBOL_GPL(hugetlb_gmem_destroy);
