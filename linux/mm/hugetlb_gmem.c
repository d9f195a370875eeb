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
#include <linux/mempolicy.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/sched/mm.h>
#include <linux/set_memory.h>
#include <linux/vmalloc.h>
#include <linux/vmstat.h>
#include <asm/tlbflush.h>

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

/*
 * Folios of a file out of the direct map (GUEST_MEMFD_FLAG_NO_DIRECT_MAP)
 * leave it as a whole when they are allocated and come back as a whole when
 * they are freed.  The kernel writes them meanwhile only to zero them,
 * through a window of its own in vmalloc space on each CPU, kmap_local-style:
 * mapped with preemption off, unmapped and flushed from the local TLB only.
 * A window has a 4K page, for punched subpages, and a 2M page, for whole 2M
 * blocks (one TLB entry, one flush).  The windows' page tables are allocated
 * once, with the first such file, so that zeroing past a punch's point of
 * no return cannot fail.  The count of such files keeps hibernation off:
 * the image would map the memory back page by page and save it.
 */
static atomic_long_t hugetlb_gmem_no_direct_map_files;
static DEFINE_MUTEX(hugetlb_gmem_window_lock);
static bool hugetlb_gmem_window_ready;

#ifdef CONFIG_X86_64
struct hugetlb_gmem_window {
	unsigned long addr;	/* of the 4K page */
	pte_t *pte;
	unsigned long addr_2m;	/* of the 2M page */
	pmd_t *pmd;
};

static DEFINE_PER_CPU(struct hugetlb_gmem_window, hugetlb_gmem_window);

static int hugetlb_gmem_window_note_pte(pte_t *pte, unsigned long addr,
					void *base)
{
	unsigned int cpu = (addr - (unsigned long)base) >> PAGE_SHIFT;

	if (cpu_possible(cpu)) {
		per_cpu_ptr(&hugetlb_gmem_window, cpu)->addr = addr;
		per_cpu_ptr(&hugetlb_gmem_window, cpu)->pte = pte;
	}
	return 0;
}

/* The PMD entry of kernel address @addr, its upper tables allocated. */
static pmd_t *hugetlb_gmem_window_pmd(unsigned long addr)
{
	pgd_t *pgd = pgd_offset_k(addr);
	p4d_t *p4d;
	pud_t *pud;
	pmd_t *pmd;

	p4d = p4d_alloc(&init_mm, pgd, addr);
	if (!p4d)
		return NULL;
	pud = pud_alloc(&init_mm, p4d, addr);
	if (!pud)
		return NULL;
	pmd = pmd_alloc(&init_mm, pud, addr);
	/* A page table left by earlier vmalloc use goes, flushed. */
	if (pmd && !pmd_none(*pmd) && !pmd_free_pte_page(pmd, addr))
		return NULL;
	return pmd;
}

static int hugetlb_gmem_window_init(void)
{
	unsigned long size = nr_cpu_ids * PAGE_SIZE, base_2m;
	struct vm_struct *area, *area_2m;
	unsigned int cpu;
	int err = -ENOMEM;

	lockdep_assert_held(&hugetlb_gmem_window_lock);
	area = get_vm_area(size, VM_MAP);
	if (!area)
		return -ENOMEM;
	/* One more 2M, so that 2M-aligned windows fit. */
	area_2m = get_vm_area((nr_cpu_ids + 1) * PMD_SIZE, VM_MAP);
	if (!area_2m)
		goto err_area;
	err = apply_to_page_range(&init_mm, (unsigned long)area->addr, size,
				  hugetlb_gmem_window_note_pte, area->addr);
	if (err)
		goto err_area_2m;
	base_2m = ALIGN((unsigned long)area_2m->addr, PMD_SIZE);
	for_each_possible_cpu(cpu) {
		struct hugetlb_gmem_window *w = per_cpu_ptr(&hugetlb_gmem_window,
							    cpu);

		w->addr_2m = base_2m + cpu * PMD_SIZE;
		w->pmd = hugetlb_gmem_window_pmd(w->addr_2m);
		if (!w->pmd) {
			err = -ENOMEM;
			goto err_area_2m;
		}
	}
	hugetlb_gmem_window_ready = true;
	return 0;

err_area_2m:
	free_vm_area(area_2m);
err_area:
	free_vm_area(area);
	return err;
}

/* Zero a page out of the direct map, through this CPU's 4K window. */
static void hugetlb_gmem_clear_unmapped(struct page *page)
{
	struct hugetlb_gmem_window *w;

	preempt_disable();
	w = this_cpu_ptr(&hugetlb_gmem_window);
	set_pte(w->pte, mk_pte(page, PAGE_KERNEL));
	clear_page((void *)w->addr);
	pte_clear(&init_mm, w->addr, w->pte);
	flush_tlb_one_kernel(w->addr);
	preempt_enable();
}

/* Zero a 2M-aligned 2M block out of the direct map: this CPU's 2M window. */
static void hugetlb_gmem_clear_unmapped_2m(struct page *page)
{
	struct hugetlb_gmem_window *w;
	unsigned long off;

	preempt_disable();
	w = this_cpu_ptr(&hugetlb_gmem_window);
	set_pmd(w->pmd, pfn_pmd(page_to_pfn(page), PAGE_KERNEL_LARGE));
	for (off = 0; off < PMD_SIZE; off += PAGE_SIZE)
		clear_page((void *)(w->addr_2m + off));
	pmd_clear(w->pmd);
	flush_tlb_one_kernel(w->addr_2m);
	preempt_enable();
}
#else
/* No window: hugetlb_gmem_no_direct_map_get() refuses. */
static int hugetlb_gmem_window_init(void)
{
	return -EOPNOTSUPP;
}

static void hugetlb_gmem_clear_unmapped(struct page *page)
{
	WARN_ON_ONCE(1);
}

static void hugetlb_gmem_clear_unmapped_2m(struct page *page)
{
	WARN_ON_ONCE(1);
}
#endif /* CONFIG_X86_64 */

/**
 * hugetlb_gmem_no_direct_map_get - a file's folios will leave the direct map
 *
 * Sets up the zeroing windows the first time and keeps hibernation off
 * until hugetlb_gmem_no_direct_map_put().
 *
 * Return: 0, or -ENOMEM if the windows could not be set up, or -EOPNOTSUPP
 * where the direct map cannot be changed.
 */
int hugetlb_gmem_no_direct_map_get(void)
{
	int err = 0;

	if (!can_set_direct_map())
		return -EOPNOTSUPP;

	mutex_lock(&hugetlb_gmem_window_lock);
	if (!hugetlb_gmem_window_ready)
		err = hugetlb_gmem_window_init();
	if (!err)
		atomic_long_inc(&hugetlb_gmem_no_direct_map_files);
	mutex_unlock(&hugetlb_gmem_window_lock);
	return err;
}
EXPORT_SYMBOL_FOR_KVM(hugetlb_gmem_no_direct_map_get);

/**
 * hugetlb_gmem_no_direct_map_put - a file out of the direct map is gone
 */
void hugetlb_gmem_no_direct_map_put(void)
{
	atomic_long_dec(&hugetlb_gmem_no_direct_map_files);
}
EXPORT_SYMBOL_FOR_KVM(hugetlb_gmem_no_direct_map_put);

/**
 * hugetlb_gmem_no_direct_map_active - whether guest memory is out of the
 * direct map
 *
 * Return: true while a file of hugetlb_gmem_no_direct_map_get() exists:
 * hibernation refuses then, as for secretmem.
 */
bool hugetlb_gmem_no_direct_map_active(void)
{
	return atomic_long_read(&hugetlb_gmem_no_direct_map_files);
}

/**
 * hugetlb_gmem_clear_pages - zero subpages of a guest_memfd folio
 * @folio: a folio of hugetlb_gmem_alloc_folio()
 * @start: the first subpage
 * @nr: the number of subpages
 *
 * Zeroes through the direct map or, if the folio is out of it, through a
 * temporary mapping of each 2M block or page: cannot fail.
 */
void hugetlb_gmem_clear_pages(struct folio *folio, unsigned long start,
			      unsigned long nr)
{
	bool unmapped = folio_test_hugetlb_no_direct_map(folio);
	unsigned long i = start, end = start + nr;

	while (i < end) {
		if (!unmapped) {
			clear_highpage(folio_page(folio, i++));
		} else if (IS_ALIGNED(i, PTRS_PER_PMD) &&
			   end - i >= PTRS_PER_PMD) {
			hugetlb_gmem_clear_unmapped_2m(folio_page(folio, i));
			i += PTRS_PER_PMD;
		} else {
			hugetlb_gmem_clear_unmapped(folio_page(folio, i++));
		}
		cond_resched();
	}
}
EXPORT_SYMBOL_FOR_KVM(hugetlb_gmem_clear_pages);

/* Map @folio back in the direct map, and at the largest size it allows. */
static void hugetlb_gmem_map_folio(struct folio *folio)
{
	unsigned long nr = folio_nr_pages(folio);

	/* The entries it cleared: no split, no allocation. */
	WARN_ON_ONCE(set_direct_map_valid_noflush(folio_page(folio, 0), nr,
						  true));
	set_direct_map_collapse(folio_page(folio, 0), nr, 0);
}

/*
 * Take a new folio out of the direct map as a whole: a folio that one
 * large page of the direct map covers exactly changes that entry, and a
 * larger page is split down to the folio's size, never below.  On failure
 * (a split needs a page table) the direct map is as before.
 */
static int hugetlb_gmem_unmap_folio(struct folio *folio)
{
	unsigned long addr = (unsigned long)folio_address(folio);
	unsigned long nr = folio_nr_pages(folio);
	int err;

	err = set_direct_map_valid_noflush(folio_page(folio, 0), nr, false);
	flush_tlb_kernel_range(addr, addr + nr * PAGE_SIZE);
	if (err) {
		hugetlb_gmem_map_folio(folio);
		return err;
	}
	folio_set_hugetlb_no_direct_map(folio);
	count_vm_event(GMEM_DIRECT_MAP_REMOVE);
	return 0;
}

/**
 * hugetlb_gmem_alloc_folio - allocate a hugepage from a reservation
 * @h: the hstate
 * @mapping: the page cache to insert the folio into
 * @hindex: the folio's index in @mapping, in hugepages
 * @pol: the memory policy of @hindex, or NULL for the calling task's
 * @no_direct_map: take the folio out of the direct map
 *	(hugetlb_gmem_no_direct_map_get())
 *
 * Takes a page of one of the reservations of hugetlb_gmem_reserve(), from
 * the nodes @pol allows and with hugetlbfs' fallbacks (the preferred node
 * first; MPOL_PREFERRED_MANY falls back to any node, MPOL_BIND does not;
 * the interleave index is @hindex from the inode's number, as
 * guest_memfd's ->get_policy() gives it), charges it to the calling task's
 * hugetlb cgroup as a hugetlbfs fault would, zeroes it, takes it out of
 * the direct map if asked to, as a whole, and inserts it at @hindex.  The caller holds the fault
 * mutex of @hindex and has found no folio there.  The page is never one of
 * ZONE_MOVABLE or CMA: guest_memfd memory cannot be migrated.
 *
 * Return: the locked folio with a reference, dirty and not uptodate, or
 * ERR_PTR(-ENOMEM) when the cgroup limit or the pool (no page on an allowed
 * node) refuses or the direct map could not be split; the reservation is
 * then not consumed.
 */
struct folio *hugetlb_gmem_alloc_folio(struct hstate *h,
				       struct address_space *mapping,
				       pgoff_t hindex, struct mempolicy *pol,
				       bool no_direct_map)
{
	gfp_t gfp = htlb_alloc_mask(h) & ~__GFP_MOVABLE;
	unsigned long nr_pages = pages_per_huge_page(h);
	struct hugetlb_cgroup *h_cg;
	nodemask_t *nodemask;
	unsigned int pin_flags;
	struct folio *folio;
	int nid, err;

	lockdep_assert_held(hugetlb_gmem_fault_mutex(mapping, hindex));

	err = hugetlb_cgroup_charge_cgroup(hstate_index(h), nr_pages, &h_cg);
	if (err)
		return ERR_PTR(err);

	/* A page that may be pinned for long, as pin_user_pages() takes. */
	pin_flags = memalloc_pin_save();
	if (!pol)
		pol = get_task_policy(current);
	nid = huge_node_mpol(pol, mapping->host->i_ino + hindex, gfp,
			     &nodemask);
	folio = alloc_hugetlb_folio_reserve(h, nid, nodemask, gfp);
	if (!folio && nodemask && mpol_is_preferred_many(pol))
		folio = alloc_hugetlb_folio_reserve(h, nid, NULL, gfp);
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
	/* Out of the direct map before anyone can find it in the file. */
	if (no_direct_map) {
		err = hugetlb_gmem_unmap_folio(folio);
		if (err)
			goto err_put;
	}

	err = hugetlb_add_to_page_cache(folio, mapping, hindex);
	if (err) {
		/* Never written since it was zeroed: no wipe. */
		if (folio_test_hugetlb_no_direct_map(folio)) {
			hugetlb_gmem_map_folio(folio);
			folio_clear_hugetlb_no_direct_map(folio);
		}
		goto err_put;
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

err_put:
	/* Back to the pool, and its reservation with it. */
	folio_set_hugetlb_restore_reserve(folio);
	folio_put(folio);
	return ERR_PTR(err);
}
EXPORT_SYMBOL_FOR_KVM(hugetlb_gmem_alloc_folio);

/* Keep @folio out of the pool for good, as a poisoned one. */
static void hugetlb_gmem_keep_folio(struct folio *folio)
{
	struct hstate *h = folio_hstate(folio);

	lockdep_assert_held(&hugetlb_lock);
	folio_get(folio);
	folio_set_hugetlb_gmem(folio);
	hugetlb_cgroup_uncharge_folio(hstate_index(h), pages_per_huge_page(h),
				      folio);
	/* Out of the direct map for good: hibernation stays off for good. */
	if (folio_test_hugetlb_no_direct_map(folio))
		atomic_long_inc(&hugetlb_gmem_no_direct_map_files);
}

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
	if (keep)
		hugetlb_gmem_keep_folio(folio);
	else
		folio_clear_hugetlb_gmem(folio);
	spin_unlock_irq(&hugetlb_lock);
	if (keep)
		pr_info("guest_memfd: poisoned hugepage at pfn %#lx kept out of the pool\n",
			folio_pfn(folio));
	spin_lock(&inode->i_lock);
	inode->i_blocks -= blocks_per_huge_page(h);
	spin_unlock(&inode->i_lock);
}
EXPORT_SYMBOL_FOR_KVM(hugetlb_gmem_remove_folio);

/*
 * Whether @folio, out of the page cache, is poisoned: then it is kept (if
 * hugetlb_gmem_remove_folio() did not keep it already), never freed.
 */
static bool hugetlb_gmem_keep_poisoned(struct folio *folio)
{
	bool poisoned, keep;

	spin_lock_irq(&hugetlb_lock);
	poisoned = folio_test_hwpoison(folio);
	keep = poisoned && !folio_test_hugetlb_gmem(folio);
	if (keep)
		hugetlb_gmem_keep_folio(folio);
	spin_unlock_irq(&hugetlb_lock);
	if (keep)
		pr_info("guest_memfd: hugepage at pfn %#lx poisoned while it was freed, kept out of the pool\n",
			folio_pfn(folio));
	return poisoned;
}

/**
 * hugetlb_gmem_restore_direct_map - give a removed folio its direct map back
 * @folio: a folio that hugetlb_gmem_remove_folio() took out of the page
 *	cache, out of the direct map; the caller holds a reference
 *
 * Zeroes the folio, so that what the guest left in it never becomes
 * readable by the host, maps it back as a whole and collapses the direct
 * map inside it to the largest pages it allows.  A poisoned folio, kept
 * out of the pool, stays out of the direct map for good: its poisoned page
 * must not be reachable by speculation.  So does one poisoned while this
 * runs: it is taken out again and kept.  Call it without locks: zeroing 1G
 * takes long.
 */
void hugetlb_gmem_restore_direct_map(struct folio *folio)
{
	unsigned long addr = (unsigned long)folio_address(folio);

	might_sleep();
	if (!folio_test_hugetlb_no_direct_map(folio))
		return;
	/*
	 * Poisoned: kept already by hugetlb_gmem_remove_folio(), or poisoned
	 * since, when it was no longer guest_memfd's: keep it now.
	 */
	if (hugetlb_gmem_keep_poisoned(folio))
		return;
	hugetlb_gmem_clear_pages(folio, 0, folio_nr_pages(folio));
	hugetlb_gmem_map_folio(folio);

	/* memory_failure() marks the folio before it touches the mapping. */
	if (hugetlb_gmem_keep_poisoned(folio)) {
		if (set_direct_map_valid_noflush(folio_page(folio, 0),
						 folio_nr_pages(folio), false))
			pr_warn("guest_memfd: poisoned hugepage at pfn %#lx stays in the direct map\n",
				folio_pfn(folio));
		flush_tlb_kernel_range(addr, addr + folio_size(folio));
		return;
	}
	folio_clear_hugetlb_no_direct_map(folio);
	count_vm_event(GMEM_DIRECT_MAP_RESTORE);
}
EXPORT_SYMBOL_FOR_KVM(hugetlb_gmem_restore_direct_map);

/**
 * hugetlb_gmem_collapse_direct_map - map 1G of the direct map large again
 * @pfn: the first pfn of a 1G region that a file's 2M folios were in
 *
 * Freeing a 2M folio collapses only its own 2M of the direct map, so that
 * a file that frees and allocates 2M folios does not collapse and split the
 * gigabyte around them over and over; the file calls this for each such
 * gigabyte when it is destroyed.
 */
void hugetlb_gmem_collapse_direct_map(unsigned long pfn)
{
	if (!IS_ALIGNED(pfn, PUD_SIZE >> PAGE_SHIFT) || !pfn_valid(pfn))
		return;
	/* Only the 1G page: 2M regions of others are theirs to collapse. */
	set_direct_map_collapse(pfn_to_page(pfn), PUD_SIZE >> PAGE_SHIFT,
				SET_DIRECT_MAP_COLLAPSE_1G_ONLY);
}
EXPORT_SYMBOL_FOR_KVM(hugetlb_gmem_collapse_direct_map);
