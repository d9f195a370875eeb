// SPDX-License-Identifier: GPL-2.0
/*
 * HugeTLB backing of guest_memfd (GUEST_MEMFD_FLAG_HUGETLB).
 *
 * The file reserves all of its hugepages from the pool when it is created,
 * so that no guest fault fails for lack of memory, and keeps whole hugetlb
 * folios in its page cache at hugepage-aligned indices.  A folio is never
 * split:
 *
 * - a punch of part of a folio zaps that part from KVM, reports it to the
 *   architecture as naturally aligned blocks (kvm_arch_gmem_reclaim()),
 *   zeroes it and marks its subpages punched; the folio goes back to the
 *   pool when its last subpage is punched ("lazy punch-hole");
 * - a fault or fallocate on a punched subpage clears its mark (it is zero
 *   already), and the subpage is made private again, alone;
 * - the architecture makes memory private in naturally aligned blocks
 *   (kvm_arch_gmem_make_private()), each subpage once between its
 *   allocation or refill and its reclaim, and gets one final call for the
 *   whole folio when it returns to the host; launch (kvm_gmem_populate())
 *   makes single subpages private through its own callback instead.
 *
 * Per folio, tracking costs nothing until the folio is punched or made
 * private in part: then struct kvm_gmem_subpages holds two bits a subpage.
 * The folio's uptodate flag means that every subpage in use is private.
 *
 * The hugetlb primitives (reservations, cgroup charges, allocation from a
 * reservation) are mm's, in mm/hugetlb_gmem.c.
 */
#include <kunit/visibility.h>
#include <linux/bitmap.h>
#include <linux/hugetlb.h>
#include <linux/hugetlb_gmem.h>
#include <linux/kvm_host.h>
#include <linux/mempolicy.h>
#include <linux/pagemap.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <trace/events/kvm.h>

#include "guest_memfd_hugetlb.h"

/*
 * Subpage state of a folio punched or made private in part.  @punched and
 * @not_private share one allocation of two bits a subpage.
 */
struct kvm_gmem_subpages {
	unsigned long nr_punched;
	/* Punched subpages: zeroed, reclaimed, not guest memory. */
	unsigned long *punched;
	/*
	 * Subpages that are not private: punched, or in use but not made
	 * private since the folio's allocation or their refill.  Set up from
	 * the folio's uptodate flag by the first user holding the folio lock.
	 */
	unsigned long *not_private;
	bool init;
};

/*
 * The order of the largest naturally aligned block that starts at @start
 * and ends at or before @end, for @start < @end.  Taking such blocks one
 * after the other covers [@start, @end) with the fewest blocks.
 */
VISIBLE_IF_KUNIT unsigned int kvm_gmem_block_order(unsigned long start,
						   unsigned long end)
{
	unsigned int order = fls_long(end - start) - 1;

	if (start)
		order = min_t(unsigned int, order, __ffs(start));
	return order;
}
EXPORT_SYMBOL_IF_KUNIT(kvm_gmem_block_order);

/*
 * Find the first run [*@start, *@run_end) of subpages that are clear in
 * @map (set, if @set) that begins at or after *@start, inside @end.
 */
static bool kvm_gmem_next_run(const unsigned long *map, bool set,
			      unsigned long *start, unsigned long *run_end,
			      unsigned long end)
{
	unsigned long s = *start;

	if (set) {
		if (!map)
			return false;
		s = find_next_bit(map, end, s);
	} else if (map) {
		s = find_next_zero_bit(map, end, s);
	}
	if (s >= end)
		return false;
	*start = s;
	if (!map)
		*run_end = end;
	else
		*run_end = set ? find_next_zero_bit(map, end, s) :
				 find_next_bit(map, end, s);
	return true;
}

/*
 * Start walking [@start, @end): the subpages clear in @map, or with @set
 * those set in it.  @map may be NULL when no bit is set.
 */
VISIBLE_IF_KUNIT void kvm_gmem_blocks_init(struct kvm_gmem_blocks *it,
					   unsigned long *map,
					   unsigned long start,
					   unsigned long end, bool set)
{
	it->map = map;
	it->pos = start;
	it->run_end = start;
	it->end = end;
	it->punched = 0;
	it->set = set;
}
EXPORT_SYMBOL_IF_KUNIT(kvm_gmem_blocks_init);

/*
 * The next block [*@start, *@start + 2^*@order) of the walk, or false when
 * none is left.  Each run is split into maximal naturally aligned blocks,
 * so that the blocks cover exactly the walked subpages of the range, in
 * ascending order.  Bits of the run being walked may change meanwhile, as
 * kvm_gmem_punch_next() does.
 */
VISIBLE_IF_KUNIT bool kvm_gmem_next_block(struct kvm_gmem_blocks *it,
					  unsigned long *start,
					  unsigned int *order)
{
	if (it->pos >= it->run_end &&
	    !kvm_gmem_next_run(it->map, it->set, &it->pos, &it->run_end,
			       it->end))
		return false;
	*start = it->pos;
	*order = kvm_gmem_block_order(it->pos, it->run_end);
	it->pos += 1UL << *order;
	return true;
}
EXPORT_SYMBOL_IF_KUNIT(kvm_gmem_next_block);

/*
 * Like kvm_gmem_next_block() on a walk of clear subpages, but mark the
 * block in @it->map (not NULL) and count it in @it->punched: walking to
 * the end punches the range and returns the blocks not punched before.
 */
VISIBLE_IF_KUNIT bool kvm_gmem_punch_next(struct kvm_gmem_blocks *it,
					  unsigned long *start,
					  unsigned int *order)
{
	if (!kvm_gmem_next_block(it, start, order))
		return false;
	bitmap_set(it->map, *start, 1UL << *order);
	it->punched += 1UL << *order;
	return true;
}
EXPORT_SYMBOL_IF_KUNIT(kvm_gmem_punch_next);

/*
 * Clear the marks of [@s, @e) in @map, by naturally aligned blocks of order
 * @border.  Return the number of marks cleared, and in [*@ps, *@pe) the
 * span of the blocks that had a mark and have none left (empty if none).
 */
VISIBLE_IF_KUNIT unsigned long kvm_gmem_refill_blocks(unsigned long *map,
						      unsigned int border,
						      unsigned long s,
						      unsigned long e,
						      unsigned long *ps,
						      unsigned long *pe)
{
	unsigned long bsz = 1UL << border, b, bs, be, n = 0;

	*ps = 0;
	*pe = 0;
	for (b = round_down(s, bsz); b < e; b += bsz) {
		if (find_next_bit(map, b + bsz, b) >= b + bsz)
			continue;
		bs = max(s, b);
		be = min(e, b + bsz);
		n += bitmap_weight_from(map, bs, be);
		bitmap_clear(map, bs, be - bs);
		if (find_next_bit(map, b + bsz, b) < b + bsz)
			continue;
		if (*ps == *pe)
			*ps = b;
		*pe = b + bsz;
	}
	return n;
}
EXPORT_SYMBOL_IF_KUNIT(kvm_gmem_refill_blocks);

/*
 * The largest order of a naturally aligned block, inside a folio of order
 * @order, that holds subpage @off and no subpage marked in @map; 0 if @off
 * itself is marked.
 */
VISIBLE_IF_KUNIT int kvm_gmem_subpages_max_order(const unsigned long *map,
						 unsigned int order,
						 unsigned long off)
{
	for (; order > 0; order--) {
		unsigned long base = round_down(off, 1UL << order);

		if (find_next_bit(map, base + (1UL << order), base) >=
		    base + (1UL << order))
			break;
	}
	return order;
}
EXPORT_SYMBOL_IF_KUNIT(kvm_gmem_subpages_max_order);

/*
 * kvm_gmem_hugetlb_order - folio order of a hugetlb guest_memfd
 * @hg: the inode's hugetlb state
 *
 * Return: the order of every folio of the file.
 */
unsigned int kvm_gmem_hugetlb_order(const struct kvm_gmem_hugetlb *hg)
{
	return huge_page_order(hg->h);
}

/*
 * kvm_gmem_hugetlb_init - reserve the hugepages of a new guest_memfd
 * @hg: the inode's hugetlb state, zeroed
 * @page_shift: log2 of the page size in bytes, 0 for the default size
 * @size: the file's size in bytes
 * @no_direct_map: keep the file's folios out of the direct map
 * @policy: the inode's shared memory policy, which places its folios
 *
 * Reserves size / page size hugepages and charges them to the calling
 * task's hugetlb cgroup, before allocating anything that grows with @size.
 *
 * Return: 0; -EINVAL for an unknown page size or a size that is not a
 * multiple of it; -ENOMEM when the pool or the cgroup cannot cover the
 * reservation or the direct map's zeroing window could not be set up.
 * Nothing is left reserved or allocated on error.
 */
int kvm_gmem_hugetlb_init(struct kvm_gmem_hugetlb *hg, u32 page_shift,
			  loff_t size, bool no_direct_map,
			  struct shared_policy *policy)
{
	struct hstate *h = hugetlb_gmem_hstate(page_shift);
	long nr;
	int err;

	if (!h || size <= 0 || !IS_ALIGNED(size, huge_page_size(h)))
		return -EINVAL;
	nr = size >> huge_page_shift(h);

	err = hugetlb_gmem_reserve(h, nr, &hg->h_cg_rsvd);
	if (err)
		return err;

	hg->released = kvcalloc(BITS_TO_LONGS(nr), sizeof(long),
				GFP_KERNEL_ACCOUNT);
	if (!hg->released) {
		err = -ENOMEM;
		goto err_unreserve;
	}
	if (no_direct_map) {
		err = hugetlb_gmem_no_direct_map_get();
		if (err)
			goto err_free;
	}

	hg->h = h;
	hg->nr_hpages = nr;
	hg->nr_reserved = nr;
	hg->nr_charged = nr;
	hg->no_direct_map = no_direct_map;
	hg->policy = policy;
	spin_lock_init(&hg->lock);
	xa_init(&hg->subpages);
	xa_init(&hg->gigs);
	return 0;

err_free:
	kvfree(hg->released);
	hg->released = NULL;
err_unreserve:
	hugetlb_gmem_unreserve(h, nr, hg->h_cg_rsvd);
	hugetlb_gmem_put_cgroup(h, hg->h_cg_rsvd);
	hg->h_cg_rsvd = NULL;
	return err;
}

/* Take a reservation back for a released index before it is allocated. */
static int kvm_gmem_hugetlb_rereserve(struct kvm_gmem_hugetlb *hg)
{
	int err;

	err = hugetlb_gmem_reserve(hg->h, 1, &hg->h_cg_rsvd);
	if (err)
		return err;
	spin_lock(&hg->lock);
	hg->nr_reserved++;
	hg->nr_charged++;
	spin_unlock(&hg->lock);
	return 0;
}

/* Drop @nr reservations of indices that hold no folio. */
static void kvm_gmem_hugetlb_unreserve(struct kvm_gmem_hugetlb *hg,
				       unsigned long nr)
{
	if (!nr)
		return;
	spin_lock(&hg->lock);
	hg->nr_reserved -= nr;
	hg->nr_charged -= nr;
	spin_unlock(&hg->lock);
	hugetlb_gmem_unreserve(hg->h, nr, hg->h_cg_rsvd);
}

void __weak kvm_arch_gmem_host_write(kvm_pfn_t pfn, kvm_pfn_t nr_pages)
{
}

/*
 * Allocate the folio of hugepage @hindex from the file's reservation, into
 * the page cache, locked.  The caller holds the fault mutex of @hindex and
 * found no folio there.
 */
static struct folio *kvm_gmem_hugetlb_alloc(struct kvm_gmem_hugetlb *hg,
					    struct address_space *mapping,
					    pgoff_t hindex)
{
	struct mempolicy *pol;
	struct folio *folio;
	bool released;
	int err;

	lockdep_assert_held(hugetlb_gmem_fault_mutex(mapping, hindex));

	spin_lock(&hg->lock);
	released = test_bit(hindex, hg->released);
	spin_unlock(&hg->lock);
	if (released) {
		err = kvm_gmem_hugetlb_rereserve(hg);
		if (err)
			return ERR_PTR(err);
	}

	/* The policy of the hugepage's first page, as hugetlbfs looks up. */
	pol = mpol_shared_policy_lookup(hg->policy,
					hindex << huge_page_order(hg->h));
	folio = hugetlb_gmem_alloc_folio(hg->h, mapping, hindex, pol,
					 hg->no_direct_map);
	mpol_cond_put(pol);
	if (IS_ERR(folio)) {
		if (released)
			kvm_gmem_hugetlb_unreserve(hg, 1);
		return folio;
	}
	/* The pool's folio was just zeroed. */
	kvm_arch_gmem_host_write(folio_pfn(folio), folio_nr_pages(folio));
	/*
	 * Note its gigabyte for the direct-map collapse at destruction.  A
	 * file's folios fill few gigabytes, a few xarray nodes: that small
	 * allocation may not fail, so that the direct map is as before when
	 * the file is gone.
	 */
	if (huge_page_shift(hg->h) < PUD_SHIFT)
		xa_store(&hg->gigs, folio_pfn(folio) >> (PUD_SHIFT - PAGE_SHIFT),
			 xa_mk_value(0), GFP_KERNEL_ACCOUNT | __GFP_NOFAIL);

	spin_lock(&hg->lock);
	if (released)
		__clear_bit(hindex, hg->released);
	hg->nr_reserved--;
	spin_unlock(&hg->lock);
	return folio;
}

/* The subpage state of hugepage @hindex, allocated if it has none. */
static struct kvm_gmem_subpages *
kvm_gmem_get_subpages(struct kvm_gmem_hugetlb *hg, pgoff_t hindex)
{
	unsigned long words = BITS_TO_LONGS(pages_per_huge_page(hg->h));
	struct kvm_gmem_subpages *sp, *old;
	int err = -ENOMEM;

	sp = xa_load(&hg->subpages, hindex);
	if (sp)
		return sp;

	sp = kzalloc_obj(*sp, GFP_KERNEL_ACCOUNT);
	if (!sp)
		return ERR_PTR(-ENOMEM);
	sp->punched = kvcalloc(2 * words, sizeof(long), GFP_KERNEL_ACCOUNT);
	if (!sp->punched)
		goto err_free;
	sp->not_private = sp->punched + words;

	old = xa_cmpxchg(&hg->subpages, hindex, NULL, sp, GFP_KERNEL_ACCOUNT);
	if (xa_is_err(old)) {
		err = xa_err(old);
		goto err_free_maps;
	}
	if (old) {
		kvfree(sp->punched);
		kfree(sp);
		return old;
	}
	return sp;

err_free_maps:
	kvfree(sp->punched);
err_free:
	kfree(sp);
	return ERR_PTR(err);
}

/*
 * The subpage state of a locked folio, or NULL if it has none; its
 * @not_private map is set up from the uptodate flag the first time.
 */
static struct kvm_gmem_subpages *
kvm_gmem_folio_subpages(struct kvm_gmem_hugetlb *hg, struct folio *folio)
{
	unsigned long nr = folio_nr_pages(folio);
	struct kvm_gmem_subpages *sp;

	VM_WARN_ON_ONCE_FOLIO(!folio_test_locked(folio), folio);
	sp = xa_load(&hg->subpages, folio->index >> folio_order(folio));
	if (!sp || sp->init)
		return sp;
	if (folio_test_uptodate(folio))
		bitmap_copy(sp->not_private, sp->punched, nr);
	else
		bitmap_fill(sp->not_private, nr);
	sp->init = true;
	return sp;
}

static void kvm_gmem_account_punched(struct kvm_gmem_hugetlb *hg,
				     struct kvm_gmem_subpages *sp, long delta)
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

static void kvm_gmem_free_subpages(struct kvm_gmem_hugetlb *hg,
				   pgoff_t hindex)
{
	struct kvm_gmem_subpages *sp = xa_erase(&hg->subpages, hindex);

	if (!sp)
		return;
	kvm_gmem_account_punched(hg, sp, -(long)sp->nr_punched);
	kvfree(sp->punched);
	kfree(sp);
}

static void kvm_gmem_hugetlb_reclaim(struct folio *folio, pgoff_t index,
				     unsigned int order,
				     enum kvm_gmem_reclaim_reason why);

#ifdef CONFIG_HAVE_KVM_ARCH_GMEM_RECLAIM
/*
 * The architecture could not take back the block of 2^@order subpages at
 * @i of @folio (SEV-SNP: an RMPUPDATE to shared failed).  Retry a block
 * larger than 2M by 2M blocks and a 2M one by 4K subpages (SNP's RMP
 * entries), each again around the poisoned subpages; record a subpage
 * still not taken back as poisoned: the host never zeroes, maps, reclaims
 * or frees it again, and the folio is kept when it leaves its file
 * (hugetlb_gmem_remove_folio()).
 */
static void kvm_gmem_hugetlb_reclaim_failed(struct folio *folio,
					    unsigned long i, unsigned int order,
					    enum kvm_gmem_reclaim_reason why)
{
	unsigned int sub = order > PMD_ORDER ? PMD_ORDER : 0;
	unsigned long end = i + (1UL << order);

	if (!order) {
		pr_err_ratelimited("kvm: guest_memfd: pfn %#lx not reclaimed, kept as poisoned\n",
				   folio_pfn(folio) + i);
		hugetlb_gmem_poison_page(folio, i);
		return;
	}
	for (; i < end; i += 1UL << sub) {
		kvm_gmem_hugetlb_reclaim(folio, folio->index + i, sub, why);
		cond_resched();
	}
}
#endif

/*
 * The naturally aligned block [@index, @index + 2^@order) of @folio is the
 * host's again: punched out of a folio that stays, or part of one that
 * leaves the file, or the whole folio as it leaves.  A poisoned subpage is
 * never handed back (the architecture may touch what it reclaims: SEV-SNP
 * flushes its cache lines); the block is passed as the fewest blocks
 * around it, and the folio is kept when it leaves.  So is a subpage the
 * architecture fails to take back: it is poisoned from then on.
 */
static void kvm_gmem_hugetlb_reclaim(struct folio *folio, pgoff_t index,
				     unsigned int order,
				     enum kvm_gmem_reclaim_reason why)
{
	unsigned long i = index - folio->index, end = i + (1UL << order);

	while (i < end) {
		unsigned int o = min_t(unsigned int, i ? __ffs(i) : order,
				       ilog2(end - i));
		int clean = hugetlb_gmem_hwpoison_order(folio, i, o);
		kvm_pfn_t pfn = folio_pfn(folio) + i;

		if (clean < 0) {
			i++;
			continue;
		}
		trace_kvm_gmem_invalidate(folio->index + i, pfn, clean, why);
#ifdef CONFIG_HAVE_KVM_ARCH_GMEM_RECLAIM
		if (kvm_arch_gmem_reclaim(pfn, 1UL << clean))
			kvm_gmem_hugetlb_reclaim_failed(folio, i, clean, why);
#endif
		i += 1UL << clean;
	}
}

/**
 * kvm_gmem_hugetlb_free_folio - the final reclaim of a hugetlb folio
 * @folio: a folio leaving a hugetlb guest_memfd's page cache
 *
 * Called from ->free_folio(), after every private block of the folio was
 * reclaimed: the whole folio returns to the host (but its poisoned
 * subpages).
 */
void kvm_gmem_hugetlb_free_folio(struct folio *folio)
{
	kvm_gmem_hugetlb_reclaim(folio, folio->index, folio_order(folio),
				 KVM_GMEM_RECLAIM_FREE);
}

/* Reclaim the private subpages of [@start, @end) of a locked folio. */
static void kvm_gmem_reclaim_private(struct kvm_gmem_subpages *sp,
				     struct folio *folio, unsigned long start,
				     unsigned long end,
				     enum kvm_gmem_reclaim_reason why)
{
	struct kvm_gmem_blocks it;
	unsigned int order;
	unsigned long s;

	if (!sp && !folio_test_uptodate(folio))
		return;
	kvm_gmem_blocks_init(&it, sp ? sp->not_private : NULL, start, end,
			     false);
	while (kvm_gmem_next_block(&it, &s, &order))
		kvm_gmem_hugetlb_reclaim(folio, folio->index + s, order, why);
}

/* Zero subpage @i of a locked folio for the host, unless it is poisoned. */
static void kvm_gmem_wipe_subpage(struct folio *folio, unsigned long i)
{
	/* A poisoned subpage is never written or mapped. */
	if (hugetlb_gmem_hwpoison_order(folio, i, 0) < 0)
		return;
	kvm_arch_gmem_host_write(folio_pfn(folio) + i, 1);
	hugetlb_gmem_clear_pages(folio, i, 1);
}

/*
 * Punch [@start, @end) (subpage offsets) out of a locked folio: reclaim
 * its private subpages, then zero and mark each block not punched before.
 * Return true when no subpage of the folio is left in use.
 */
static bool kvm_gmem_punch_folio(struct kvm_gmem_hugetlb *hg,
				 struct folio *folio, unsigned long start,
				 unsigned long end)
{
	struct kvm_gmem_subpages *sp = kvm_gmem_folio_subpages(hg, folio);
	unsigned long nr = folio_nr_pages(folio), s, i;
	struct kvm_gmem_blocks it;
	unsigned int order;

	/* kvm_gmem_hugetlb_punch_prepare() allocated it. */
	if (WARN_ON_ONCE(!sp))
		return false;
	/* The last subpages in use: the folio is freed whole, not zeroed. */
	if (find_first_zero_bit(sp->punched, start) >= start &&
	    find_next_zero_bit(sp->punched, nr, end) >= nr)
		return true;

	kvm_gmem_reclaim_private(sp, folio, start, end,
				 KVM_GMEM_RECLAIM_PUNCH);
	kvm_gmem_blocks_init(&it, sp->punched, start, end, false);
	while (kvm_gmem_punch_next(&it, &s, &order)) {
		bitmap_set(sp->not_private, s, 1UL << order);
		for (i = s; i < s + (1UL << order); i++)
			kvm_gmem_wipe_subpage(folio, i);
	}
	kvm_gmem_account_punched(hg, sp, it.punched);
	return sp->nr_punched == nr;
}

/*
 * Take a locked folio out of the page cache: reclaim its private subpages;
 * the folio goes back to the pool with its last reference, unless it is
 * poisoned: hugetlb_gmem_remove_folio() keeps it then.
 */
static void kvm_gmem_remove_folio(struct kvm_gmem_hugetlb *hg,
				  struct folio *folio, pgoff_t hindex)
{
	struct kvm_gmem_subpages *sp = kvm_gmem_folio_subpages(hg, folio);

	kvm_gmem_reclaim_private(sp, folio, 0, folio_nr_pages(folio),
				 KVM_GMEM_RECLAIM_RELEASE);
	kvm_gmem_free_subpages(hg, hindex);
	hugetlb_gmem_remove_folio(folio);
}

/*
 * kvm_gmem_hugetlb_punch_prepare - allocate what a punch needs
 * @hg: the inode's hugetlb state
 * @start: first page index of the punch
 * @end: page index after it
 *
 * The subpage state of the (at most two) hugepages that the punch covers in
 * part is allocated here, before the caller zaps any mapping: after that
 * point kvm_gmem_hugetlb_truncate() cannot fail.  The caller holds the
 * invalidate lock for write until the truncate is done.
 *
 * Return: 0, or -ENOMEM with nothing changed but empty subpage state.
 */
int kvm_gmem_hugetlb_punch_prepare(struct kvm_gmem_hugetlb *hg,
				   pgoff_t start, pgoff_t end)
{
	unsigned long nr = pages_per_huge_page(hg->h);
	pgoff_t partial[2];
	int i, n = 0;

	if (!IS_ALIGNED(start, nr))
		partial[n++] = start / nr;
	if (!IS_ALIGNED(end, nr) && (!n || partial[0] != (end - 1) / nr))
		partial[n++] = (end - 1) / nr;

	for (i = 0; i < n; i++) {
		struct kvm_gmem_subpages *sp;

		if (partial[i] >= hg->nr_hpages)
			continue;
		sp = kvm_gmem_get_subpages(hg, partial[i]);
		if (IS_ERR(sp))
			return PTR_ERR(sp);
	}
	return 0;
}

/*
 * kvm_gmem_hugetlb_truncate - punch a range out of a hugetlb guest_memfd
 * @hg: the inode's hugetlb state
 * @mapping: the inode's page cache
 * @start: first page index
 * @end: page index after the range
 *
 * A hugepage covered whole leaves the page cache and goes back to the
 * pool, with its reservation.  Of one covered in part, the subpages in use
 * are reclaimed, zeroed and marked punched; when none is left in use the
 * folio is freed as a whole punch frees it.
 *
 * The caller holds the invalidate lock for write, called
 * kvm_gmem_hugetlb_punch_prepare() for the range under it and zapped KVM's
 * mappings of the range; user mappings are zapped here, under each folio's
 * lock.  Cannot fail.
 */
void kvm_gmem_hugetlb_truncate(struct kvm_gmem_hugetlb *hg,
			       struct address_space *mapping,
			       pgoff_t start, pgoff_t end)
{
	unsigned int order = huge_page_order(hg->h);
	unsigned long nr = 1UL << order;
	pgoff_t hindex, hend;

	lockdep_assert_held_write(&mapping->invalidate_lock);

	hend = min_t(pgoff_t, DIV_ROUND_UP(end, nr), hg->nr_hpages);
	for (hindex = start >> order; hindex < hend; hindex++) {
		struct mutex *fault_mutex = hugetlb_gmem_fault_mutex(mapping,
								     hindex);
		pgoff_t first = hindex << order;
		unsigned long s = max(start, first) - first;
		unsigned long e = min_t(pgoff_t, end - first, nr);
		struct folio *folio;
		bool whole = s == 0 && e == nr;

		/*
		 * A released index gives its reservation and charge back
		 * before its fault mutex is dropped, so that a fault finding
		 * it released can take them again at once.
		 */
		mutex_lock(fault_mutex);
		folio = filemap_lock_folio(mapping, first);
		if (IS_ERR(folio)) {
			bool release = false;

			if (whole) {
				spin_lock(&hg->lock);
				release = !__test_and_set_bit(hindex,
							      hg->released);
				spin_unlock(&hg->lock);
			}
			if (release)
				kvm_gmem_hugetlb_unreserve(hg, 1);
			/* Only a folio has punched subpages. */
			kvm_gmem_free_subpages(hg, hindex);
			mutex_unlock(fault_mutex);
			continue;
		}

		/*
		 * User mappings go before the subpages leave use; faults map
		 * under the folio lock, so none comes back meanwhile.  The
		 * huge entries over them are split first, so that the rest
		 * of the folio stays mapped.
		 */
		if (folio_mapped(folio)) {
			if (!whole && IS_ENABLED(CONFIG_TRANSPARENT_HUGEPAGE))
				hugetlb_gmem_split_mappings(mapping, folio, s,
							    e - s);
			unmap_mapping_pages(mapping, first + s, e - s, false);
		}
		if (!whole)
			whole = kvm_gmem_punch_folio(hg, folio, s, e);
		if (whole) {
			kvm_gmem_remove_folio(hg, folio, hindex);
			spin_lock(&hg->lock);
			__set_bit(hindex, hg->released);
			hg->nr_charged--;
			spin_unlock(&hg->lock);
		}
		folio_unlock(folio);
		if (whole)
			hugetlb_gmem_uncharge(hg->h, 1, hg->h_cg_rsvd);
		mutex_unlock(fault_mutex);
		/* Zeroing 1G takes long: not under a mutex hugetlbfs shares. */
		if (whole)
			hugetlb_gmem_restore_direct_map(folio);
		folio_put(folio);
		cond_resched();
	}
}

/*
 * Make the punched subpages of [@start, @end) of a locked folio guest
 * memory again: they are zero already; they are not private.  [*@ps, *@pe)
 * gets the page indices of the blocks (the folio, or its 2M blocks) that
 * this left without a hole, or an empty range.
 */
static void kvm_gmem_hugetlb_refill(struct kvm_gmem_hugetlb *hg,
				    struct folio *folio, pgoff_t start,
				    pgoff_t end, pgoff_t *ps, pgoff_t *pe)
{
	struct kvm_gmem_subpages *sp = kvm_gmem_folio_subpages(hg, folio);
	unsigned int border = min_t(unsigned int, folio_order(folio),
				    PMD_ORDER);
	unsigned long n, s, e, bs, be;

	*ps = 0;
	*pe = 0;
	if (!sp || !sp->nr_punched)
		return;
	s = max(start, folio->index) - folio->index;
	e = min(end, folio_next_index(folio)) - folio->index;
	n = kvm_gmem_refill_blocks(sp->punched, border, s, e, &bs, &be);
	if (!n)
		return;
	kvm_gmem_account_punched(hg, sp, -(long)n);
	folio_clear_uptodate(folio);
	if (!sp->nr_punched) {
		*ps = folio->index;
		*pe = folio_next_index(folio);
	} else if (bs < be) {
		*ps = folio->index + bs;
		*pe = folio->index + be;
	}
}

/*
 * kvm_gmem_hugetlb_get_folio - the folio of an index, refilled
 * @hg: the inode's hugetlb state
 * @mapping: the inode's page cache
 * @index: a page index inside the file
 * @end: the punched subpages of [@index, @end) inside the folio are
 *	refilled (guest memory again)
 * @promote_start: gets the start of the blocks the refill left whole
 * @promote_end: and their end; equal to *@promote_start if none
 *
 * Allocation of one hugepage is serialized by its hugetlb fault mutex, as
 * on hugetlbfs.  KVM may have mapped the blocks of [*@promote_start,
 * *@promote_end) small around their holes: the caller zaps them once it
 * has unlocked the folio, so that they are mapped whole again.
 *
 * Return: the locked folio with a reference, or ERR_PTR(-ENOMEM) when a
 * released hugepage cannot be reserved again or the pool has no page.
 */
struct folio *kvm_gmem_hugetlb_get_folio(struct kvm_gmem_hugetlb *hg,
					 struct address_space *mapping,
					 pgoff_t index, pgoff_t end,
					 pgoff_t *promote_start,
					 pgoff_t *promote_end)
{
	pgoff_t hindex = index >> huge_page_order(hg->h);
	struct mutex *fault_mutex;	/* serializes allocation of @hindex */
	struct folio *folio;

	*promote_start = 0;
	*promote_end = 0;
	if (WARN_ON_ONCE(hindex >= hg->nr_hpages))
		return ERR_PTR(-EINVAL);

	fault_mutex = hugetlb_gmem_fault_mutex(mapping, hindex);
retry:
	folio = filemap_lock_folio(mapping, index);
	if (IS_ERR(folio)) {
		/*
		 * Never wait for a folio lock under the fault mutex: a holder
		 * of a folio lock may fault on hugetlbfs memory.
		 */
		mutex_lock(fault_mutex);
		folio = filemap_get_folio(mapping, index);
		if (IS_ERR(folio)) {
			folio = kvm_gmem_hugetlb_alloc(hg, mapping, hindex);
			mutex_unlock(fault_mutex);
			return folio;
		}
		mutex_unlock(fault_mutex);
		folio_lock(folio);
		if (folio->mapping != mapping) {
			/* Punched out meanwhile. */
			folio_unlock(folio);
			folio_put(folio);
			goto retry;
		}
	}
	kvm_gmem_hugetlb_refill(hg, folio, index, end, promote_start,
				promote_end);
	return folio;
}

/* Whether the host may map subpage @i of a locked folio: in use, not poisoned. */
static bool kvm_gmem_subpage_mappable(struct kvm_gmem_subpages *sp,
				      struct folio *folio, unsigned long i)
{
	if (sp && test_bit(i, sp->punched))
		return false;
	return hugetlb_gmem_hwpoison_order(folio, i, 0) >= 0;
}

/*
 * Get the locked folio of a user fault into *@foliop, allocated or with
 * the fault's subpage refilled: 0, or the fault's error (SIGBUS when no
 * hugepage can be had, as on hugetlbfs).  A block the refill left without
 * a hole is not zapped for KVM: its small mappings stay until they are
 * zapped (a gmem-only memslot), or follow the user mapping's (through the
 * MMU notifier).
 */
static vm_fault_t kvm_gmem_hugetlb_user_folio(struct kvm_gmem_hugetlb *hg,
					      struct vm_fault *vmf,
					      struct folio **foliop)
{
	struct folio *folio;
	pgoff_t ps, pe;

	folio = kvm_gmem_hugetlb_get_folio(hg, vmf->vma->vm_file->f_mapping,
					   vmf->pgoff, vmf->pgoff + 1,
					   &ps, &pe);
	if (IS_ERR(folio))
		return PTR_ERR(folio) == -ENOMEM ? VM_FAULT_SIGBUS :
						   vmf_error(PTR_ERR(folio));
	*foliop = folio;
	return 0;
}

/*
 * kvm_gmem_hugetlb_fault - fault on a user mapping of a hugetlb guest_memfd
 * @hg: the inode's hugetlb state
 * @vmf: the fault, on shared memory inside the file
 *
 * Allocates the folio, or refills the punched subpage of the fault (it is
 * zero), and maps the run of subpages in use around it that the page
 * table of the fault and the VMA hold, with PTEs.  The folio lock is held
 * from the lookup to the mapping: a punch zaps user mappings of the
 * subpages it takes out of use under it, so no stale entry survives.
 *
 * Return: VM_FAULT_NOPAGE, VM_FAULT_HWPOISON if the subpage is poisoned,
 * VM_FAULT_SIGBUS if a punched-out hugepage cannot be had from the pool
 * again (as on hugetlbfs), or VM_FAULT_OOM.
 */
vm_fault_t kvm_gmem_hugetlb_fault(struct kvm_gmem_hugetlb *hg,
				  struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	unsigned long addr = vmf->address & PAGE_MASK;
	unsigned long lo, hi, s, e, off, nr;
	struct kvm_gmem_subpages *sp;
	struct folio *folio;
	vm_fault_t ret;

	ret = kvm_gmem_hugetlb_user_folio(hg, vmf, &folio);
	if (ret)
		return ret;

	nr = folio_nr_pages(folio);
	off = vmf->pgoff - folio->index;
	sp = kvm_gmem_folio_subpages(hg, folio);
	if (!kvm_gmem_subpage_mappable(sp, folio, off)) {
		ret = VM_FAULT_HWPOISON;
		goto out;
	}

	/* The subpages that the fault's page table and the VMA can map. */
	lo = max(addr & PMD_MASK, vma->vm_start);
	hi = min((addr & PMD_MASK) + PMD_SIZE, vma->vm_end);
	lo = off - min(off, (addr - lo) >> PAGE_SHIFT);
	hi = min(nr, off + ((hi - addr) >> PAGE_SHIFT));
	for (s = off; s > lo && kvm_gmem_subpage_mappable(sp, folio, s - 1); s--)
		;
	for (e = off + 1; e < hi && kvm_gmem_subpage_mappable(sp, folio, e); e++)
		;
	ret = hugetlb_gmem_map_pages(vmf, folio, s, e - s);
out:
	folio_unlock(folio);
	folio_put(folio);
	return ret;
}

#ifdef CONFIG_TRANSPARENT_HUGEPAGE
/*
 * kvm_gmem_hugetlb_huge_fault - map a hugetlb guest_memfd with a PMD or PUD
 * @hg: the inode's hugetlb state
 * @vmf: the fault, on shared memory inside the file
 * @order: PMD_ORDER or PUD_ORDER
 *
 * As kvm_gmem_hugetlb_fault(), but maps the naturally aligned block of
 * @order around the fault with one entry: a whole 2M or 1G folio, or a 2M
 * block of a 1G folio.  Only the subpage of the fault is refilled: the
 * block must hold no other punched or poisoned subpage.
 *
 * Return: VM_FAULT_NOPAGE, VM_FAULT_FALLBACK if the block is not wholly in
 * use or does not fit the VMA (the fault is tried again smaller), or as
 * kvm_gmem_hugetlb_fault().
 */
vm_fault_t kvm_gmem_hugetlb_huge_fault(struct kvm_gmem_hugetlb *hg,
				       struct vm_fault *vmf,
				       unsigned int order)
{
	struct vm_area_struct *vma = vmf->vma;
	unsigned long nr = 1UL << order, first;
	vm_fault_t ret;
	struct kvm_gmem_subpages *sp;
	struct folio *folio;

	if ((order != PMD_ORDER && order != PUD_ORDER) ||
	    order > huge_page_order(hg->h) ||
	    !thp_vma_suitable_order(vma, vmf->address, order))
		return VM_FAULT_FALLBACK;

	ret = kvm_gmem_hugetlb_user_folio(hg, vmf, &folio);
	if (ret)
		return ret;

	ret = VM_FAULT_FALLBACK;
	first = ALIGN_DOWN(vmf->pgoff - folio->index, nr);
	sp = kvm_gmem_folio_subpages(hg, folio);
	if (sp && find_next_bit(sp->punched, first + nr, first) < first + nr)
		goto out;
	if (hugetlb_gmem_hwpoison_order(folio, first, order) != order)
		goto out;
	if (order == PMD_ORDER)
		ret = hugetlb_gmem_map_pmd(vmf, folio, first);
#ifdef CONFIG_HAVE_ARCH_TRANSPARENT_HUGEPAGE_PUD
	else
		ret = hugetlb_gmem_map_pud(vmf, folio);
#endif
out:
	folio_unlock(folio);
	folio_put(folio);
	return ret;
}
#endif

/* Make one naturally aligned block of a locked folio private. */
static int kvm_gmem_make_private_block(struct kvm *kvm,
				       struct kvm_memory_slot *slot,
				       struct folio *folio, pgoff_t index,
				       unsigned int order)
{
	kvm_pfn_t pfn = folio_pfn(folio) + (index - folio->index);
	int r = 0;

#ifdef CONFIG_HAVE_KVM_ARCH_GMEM_CONVERT
	gfn_t gfn = slot->base_gfn + index - slot->gmem.pgoff;

	r = kvm_arch_gmem_make_private(kvm, gfn, pfn, 1UL << order);
	if (r) {
		/*
		 * The architecture may have made part of the block private
		 * (SEV-SNP stops at the first failed RMP update): reclaim it
		 * whole, so that it needs no rollback of its own and nothing
		 * is left private that guest_memfd counts as not private.
		 */
		kvm_gmem_hugetlb_reclaim(folio, index, order,
					 KVM_GMEM_RECLAIM_UNDO);
		return r;
	}
#endif
	trace_kvm_gmem_prepare(index, pfn, order);
	return r;
}

/*
 * Make the naturally aligned block [@index, @index + 2^@order) of a locked
 * folio private: each part of it that is not private yet, as the fewest
 * naturally aligned blocks.  The block lies inside the folio and @slot and
 * holds no punched subpage.  An error stops the walk; what was made private
 * before it stays private.
 */
static int kvm_gmem_hugetlb_make_private(struct kvm_gmem_hugetlb *hg,
					 struct kvm *kvm,
					 struct kvm_memory_slot *slot,
					 struct folio *folio, pgoff_t index,
					 unsigned int order)
{
	unsigned long nr = folio_nr_pages(folio), off = index - folio->index;
	struct kvm_gmem_subpages *sp;
	struct kvm_gmem_blocks it;
	unsigned int o;
	unsigned long s;
	int r = 0;

	if (folio_test_uptodate(folio))
		return 0;
	sp = kvm_gmem_folio_subpages(hg, folio);
	if (!sp) {
		if (order == folio_order(folio)) {
			r = kvm_gmem_make_private_block(kvm, slot, folio, index,
							order);
			if (!r)
				folio_mark_uptodate(folio);
			return r;
		}
		sp = kvm_gmem_get_subpages(hg, folio->index >> folio_order(folio));
		if (IS_ERR(sp))
			return PTR_ERR(sp);
		sp = kvm_gmem_folio_subpages(hg, folio);
	}

	kvm_gmem_blocks_init(&it, sp->not_private, off, off + (1UL << order),
			     true);
	while (kvm_gmem_next_block(&it, &s, &o)) {
		r = kvm_gmem_make_private_block(kvm, slot, folio,
						folio->index + s, o);
		if (r)
			break;
		bitmap_clear(sp->not_private, s, 1UL << o);
	}
	if (bitmap_equal(sp->not_private, sp->punched, nr))
		folio_mark_uptodate(folio);
	return r;
}

/* Whether the block of order @order around @index lies inside @slot. */
static bool kvm_gmem_block_in_slot(struct kvm_memory_slot *slot,
				   pgoff_t index, unsigned int order)
{
	pgoff_t start = ALIGN_DOWN(index, 1UL << order);

	return start >= slot->gmem.pgoff &&
	       start + (1UL << order) <= slot->gmem.pgoff + slot->npages;
}

/*
 * The largest order KVM may map @index of a locked folio with in @slot:
 * that of the largest naturally aligned block around @index inside the
 * folio and the memslot with no punched subpage, with the gfn and the
 * index congruent modulo its size; 0, 9 or 18 on x86 (4K, 2M, 1G).
 */
static int kvm_gmem_hugetlb_max_order(struct kvm_gmem_hugetlb *hg,
				      struct kvm_memory_slot *slot,
				      struct folio *folio, pgoff_t index)
{
	unsigned long misalign = slot->base_gfn ^ slot->gmem.pgoff;
	struct kvm_gmem_subpages *sp = kvm_gmem_folio_subpages(hg, folio);
	int order = folio_order(folio);

	if (sp && sp->nr_punched)
		order = kvm_gmem_subpages_max_order(sp->punched, order,
						    index - folio->index);
	if (misalign)
		order = min_t(int, order, __ffs(misalign));
	/* Never over a poisoned subpage; the caller checked @index's. */
	order = max(hugetlb_gmem_hwpoison_order(folio, index - folio->index,
						order), 0);

	if (order >= PUD_ORDER && kvm_gmem_block_in_slot(slot, index, PUD_ORDER))
		return PUD_ORDER;
	if (order >= PMD_ORDER && kvm_gmem_block_in_slot(slot, index, PMD_ORDER))
		return PMD_ORDER;
	return 0;
}

/*
 * kvm_gmem_hugetlb_get_pfn - resolve a guest fault on a hugetlb guest_memfd
 * @hg: the inode's hugetlb state
 * @mapping: the inode's page cache
 * @slot: the memslot bound to the file at @index
 * @index: the faulting page index
 * @pfn: gets the pfn of @index
 * @max_order: if not NULL, gets the largest order KVM may map @index with
 * @kvm: if not NULL, the block of *@max_order around @index is made
 *	private for it
 *
 * Allocates the folio or refills a punched subpage at @index as needed.
 *
 * Return: the locked folio with a reference, or an ERR_PTR: -EHWPOISON if
 * the folio is poisoned, -ENOMEM, or the error of the architecture.
 */
struct folio *kvm_gmem_hugetlb_get_pfn(struct kvm_gmem_hugetlb *hg,
				       struct address_space *mapping,
				       struct kvm_memory_slot *slot,
				       pgoff_t index, kvm_pfn_t *pfn,
				       int *max_order, struct kvm *kvm)
{
	pgoff_t ps, pe;
	struct folio *folio;
	int order, r;

	/*
	 * A fault refills only the subpage it is on; KVM maps the block
	 * around it whole if the refill left that block without a hole, so
	 * the promotion range needs no zap here.
	 */
	folio = kvm_gmem_hugetlb_get_folio(hg, mapping, index, index + 1,
					   &ps, &pe);
	if (IS_ERR(folio))
		return folio;

	if (hugetlb_gmem_hwpoison_order(folio, index - folio->index, 0) < 0) {
		r = -EHWPOISON;
		goto err;
	}

	order = kvm_gmem_hugetlb_max_order(hg, slot, folio, index);
	if (kvm) {
		r = kvm_gmem_hugetlb_make_private(hg, kvm, slot, folio,
						  ALIGN_DOWN(index, 1UL << order),
						  order);
		if (r)
			goto err;
	}
	*pfn = folio_pfn(folio) + (index - folio->index);
	if (max_order)
		*max_order = order;
	return folio;

err:
	folio_unlock(folio);
	folio_put(folio);
	return ERR_PTR(r);
}

#ifdef CONFIG_HAVE_KVM_ARCH_GMEM_POPULATE
/**
 * kvm_gmem_hugetlb_populate - launch one subpage of a hugetlb guest_memfd
 * @hg: the inode's hugetlb state
 * @kvm: the VM
 * @folio: the folio of @index, with a reference, from
 *	kvm_gmem_hugetlb_get_pfn() without a VM (so nothing was made
 *	private), of a file in the direct map (launch writes through it)
 * @index: the subpage's page index in the file
 * @gfn: its gfn
 * @src_page: the page to copy, or NULL
 * @post_populate: the architecture's launch of the subpage
 * @opaque: for @post_populate
 *
 * Called with the mapping's invalidate lock held for write, so that no
 * punch runs meanwhile; the folio lock, taken here, keeps faults (which
 * make blocks private under it) out.  The subpage must not be private:
 * @post_populate makes it private alone (SEV-SNP: a 4K RMP entry), and it
 * is recorded so, so that the blocks made private around it at faults
 * leave it out.  If @post_populate fails, the subpage is reclaimed, as
 * after a failed make_private: whatever the architecture left assigned
 * (SEV-SNP leaks a page whose launch failed and whose reclaim failed too)
 * is given back or kept as poisoned, never zeroed or freed; a subpage
 * given back is wiped of what the launch copied into it.
 *
 * Return: 0, -EEXIST if the subpage is private already (launched, or in a
 * block a fault made private), -EHWPOISON if it is poisoned, -ENOMEM, or
 * the error of @post_populate.
 */
int kvm_gmem_hugetlb_populate(struct kvm_gmem_hugetlb *hg, struct kvm *kvm,
			      struct folio *folio, pgoff_t index, gfn_t gfn,
			      struct page *src_page,
			      int (*post_populate)(struct kvm *kvm, gfn_t gfn,
						   kvm_pfn_t pfn,
						   struct page *page,
						   void *opaque),
			      void *opaque)
{
	unsigned long off = index - folio->index;
	kvm_pfn_t pfn = folio_pfn(folio) + off;
	struct kvm_gmem_subpages *sp;
	int r;

	if (WARN_ON_ONCE(hg->no_direct_map))
		return -EOPNOTSUPP;

	folio_lock(folio);
	if (folio_test_uptodate(folio)) {
		r = -EEXIST;
		goto out;
	}
	sp = kvm_gmem_get_subpages(hg, folio->index >> folio_order(folio));
	if (IS_ERR(sp)) {
		r = PTR_ERR(sp);
		goto out;
	}
	sp = kvm_gmem_folio_subpages(hg, folio);
	if (!test_bit(off, sp->not_private)) {
		r = -EEXIST;
		goto out;
	}
	/* Poisoned since the lookup: never written. */
	if (hugetlb_gmem_hwpoison_order(folio, off, 0) < 0) {
		r = -EHWPOISON;
		goto out;
	}

	r = post_populate(kvm, gfn, pfn, src_page, opaque);
	if (r) {
		/* SEV-SNP: its RMP has the page assigned; guest_memfd does not. */
		WARN_ON_ONCE(r == -EEXIST);
		kvm_gmem_hugetlb_reclaim(folio, index, 0, KVM_GMEM_RECLAIM_UNDO);
		/* Given back (not poisoned by the reclaim): wipe the copy. */
		kvm_gmem_wipe_subpage(folio, off);
		goto out;
	}
	trace_kvm_gmem_prepare(index, pfn, 0);
	__clear_bit(off, sp->not_private);
	if (bitmap_equal(sp->not_private, sp->punched, folio_nr_pages(folio)))
		folio_mark_uptodate(folio);
out:
	folio_unlock(folio);
	return r;
}
#endif

/*
 * kvm_gmem_hugetlb_show_fdinfo - hugetlb counters of a file, for fdinfo
 * @hg: the inode's hugetlb state
 * @m: the fdinfo seq_file
 */
void kvm_gmem_hugetlb_show_fdinfo(struct kvm_gmem_hugetlb *hg,
				  struct seq_file *m)
{
	size_t words = BITS_TO_LONGS(pages_per_huge_page(hg->h));
	unsigned long reserved, charged, maps = 0, hindex;
	struct kvm_gmem_subpages *sp;
	size_t bytes;

	spin_lock(&hg->lock);
	reserved = hg->nr_reserved;
	charged = hg->nr_charged;
	spin_unlock(&hg->lock);
	xa_lock(&hg->subpages);
	xa_for_each(&hg->subpages, hindex, sp)
		maps++;
	xa_unlock(&hg->subpages);
	/* What the file allocated for tracking, besides xarray nodes. */
	bytes = kmalloc_size_roundup(BITS_TO_LONGS(hg->nr_hpages) *
				     sizeof(long)) +
		maps * (kmalloc_size_roundup(sizeof(*sp)) +
			kmalloc_size_roundup(2 * words * sizeof(long)));
	seq_printf(m, "hugetlb_page_size:\t%lu\n", huge_page_size(hg->h));
	seq_printf(m, "hugetlb_pages:\t%lu\n", hg->nr_hpages);
	seq_printf(m, "hugetlb_reserved:\t%lu\n", reserved);
	seq_printf(m, "hugetlb_allocated:\t%lu\n", charged - reserved);
	seq_printf(m, "hugetlb_partial_folios:\t%ld\n",
		   atomic_long_read(&hg->nr_partial));
	seq_printf(m, "hugetlb_punched_subpages:\t%ld\n",
		   atomic_long_read(&hg->nr_punched));
	seq_printf(m, "hugetlb_subpage_maps:\t%lu\n", maps);
	seq_printf(m, "hugetlb_metadata_bytes:\t%zu\n", bytes);
}

/*
 * kvm_gmem_hugetlb_destroy - free every hugepage and reservation of a file
 * @hg: the inode's hugetlb state, initialized
 * @mapping: the inode's page cache
 *
 * Called when the inode is evicted, with the invalidate lock held for
 * write.  Afterwards the pool and cgroup counters are exactly as before
 * kvm_gmem_hugetlb_init().
 */
void kvm_gmem_hugetlb_destroy(struct kvm_gmem_hugetlb *hg,
			      struct address_space *mapping)
{
	struct kvm_gmem_subpages *sp;
	unsigned long hindex, gig;
	void *entry;

	lockdep_assert_held_write(&mapping->invalidate_lock);

	kvm_gmem_hugetlb_truncate(hg, mapping, 0,
				  hg->nr_hpages << huge_page_order(hg->h));
	xa_for_each(&hg->subpages, hindex, sp)
		kvm_gmem_free_subpages(hg, hindex);
	xa_destroy(&hg->subpages);
	xa_for_each(&hg->gigs, gig, entry) {
		hugetlb_gmem_collapse_direct_map(gig << (PUD_SHIFT - PAGE_SHIFT));
		cond_resched();
	}
	xa_destroy(&hg->gigs);
	if (hg->no_direct_map)
		hugetlb_gmem_no_direct_map_put();
	WARN_ON_ONCE(hg->nr_reserved || hg->nr_charged);
	hugetlb_gmem_put_cgroup(hg->h, hg->h_cg_rsvd);
	kvfree(hg->released);
}
