// SPDX-License-Identifier: GPL-2.0
/*
 * A software model of the SEV-SNP Reverse Map Table (RMP) for the
 * guest_memfd memory of KVM_X86_SW_PROTECTED_VM guests, for testing only.
 *
 * SEV-SNP is the architecture that consumes guest_memfd's make_private and
 * reclaim calls in production, and no test machine here has it.  With the
 * model, a software-protected VM created while kvm.rmp_model=snp (the
 * mode is the VM's for its life) gets SNP's treatment of its private
 * memory: kvm_arch_gmem_make_private() and kvm_arch_gmem_reclaim() run the
 * steps of sev_gmem_make_private() and sev_gmem_make_shared() against a
 * model of the RMP, and the MMU maps private memory no larger than its RMP
 * entry, as sev_gmem_max_mapping_level() has it:
 *
 * - each 4K page is shared (the host's) or assigned to a guest at a gfn; a
 *   2M-aligned region is 512 4K entries or, when it was assigned whole by
 *   one 2M update, one 2M entry, which a 4K update must PSMASH first;
 * - a 2M update needs a 2M-aligned pfn and gpa and a wholly shared region,
 *   a 4K update to private a shared page outside any 2M entry;
 * - guest memory is mapped at the gfn its page was assigned at, at most at
 *   the size of its RMP entry;
 * - assigned pages stay in the direct map, as on SNP; a 4K update of a page
 *   that the direct map maps large splits that mapping down to the page
 *   first (adjust_direct_map()) and fails if the split does (writing N to
 *   fail_direct_map_split fails the next N splits); 2M updates and PSMASH
 *   leave the direct map alone.  A reclaim restores the direct map of the
 *   2M regions it leaves with no assigned page at 2M (1G for a 1G block),
 *   as snp_restore_direct_map() does, and checks that no region holding a
 *   4K-assigned page is mapped large (the rule SNP relies on) after each
 *   such collapse, at every host write by guest_memfd and at every fault
 *   that may map huge.
 *
 * Every breach of SNP's rules or of guest_memfd's contract (blocks made
 * private twice or in part, reclaims of a block in part, a hugetlb folio
 * freed with a page assigned, a poisoned page handed back, a private
 * mapping of a page that is not assigned or at another gfn, a host write
 * by guest_memfd to an assigned page) is a WARN and a count.  Pages of a
 * poisoned folio still assigned when the folio goes are leaked, as
 * snp_leak_pages() leaks them.
 *
 * An RMPUPDATE to private can fail on SNP in the middle of a block:
 * writing N to fail_make_private fails the N-th update to private from
 * then on, leaving the updates of its call before it done (and -EIO
 * returned), as sev_gmem_make_private() does for a block.
 *
 * An RMPUPDATE to shared can fail on SNP and leave its pages assigned:
 * writing N to fail_make_shared fails the next N such updates of the
 * model (after the PSMASH they need), and the reclaim returns -EIO, as
 * sev_gmem_make_shared() does.  guest_memfd must then never hand those
 * pages back: the final call of their folio finds them assigned.
 *
 * Launch: writing "<VM fd> <gfn> <npages> <source address>" to launch
 * runs kvm_gmem_populate() for a VM of the model, as SNP_LAUNCH_UPDATE
 * does, with the steps of sev_gmem_post_populate(): the page must be
 * shared, the source page (none if the address is 0) is copied into it
 * through the direct map, the page is assigned with a 4K entry (counted
 * by fail_make_private), then the firmware's update, which writing N to
 * fail_launch_update fails N times: the page is then made shared again,
 * as snp_page_reclaim() does, and the write fails with EIO; if
 * fail_make_shared fails that reclaim too, the page stays assigned (the
 * firmware keeps it: every later update to shared fails) until its
 * folio's final call, which counts it as leaked; SNP leaks it and the VM
 * is bugged (silently here: SNP's KVM_BUG() warns).  A write that launches only part of its
 * pages fails with EIO too.
 *
 * Reclaims carry no VM: the model takes those that cover pages it
 * assigned, and leaves the others to the vendor code, so VMs of other
 * types never reach it.  It is off on a host with SEV-SNP.  Counters are in
 * /sys/kernel/debug/kvm-rmp-model/, with host_read, which reads a page
 * through the direct map for tests.  What it does not model of SNP is in
 * Documentation/virt/kvm/guest-memfd-hugetlb.rst.
 */
#define pr_fmt(fmt) "kvm: rmp-model: " fmt

#include <linux/cc_platform.h>
#include <linux/debugfs.h>
#include <linux/file.h>
#include <linux/hugetlb.h>
#include <linux/hugetlb_gmem.h>
#include <linux/kvm_host.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/set_memory.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "rmp_model.h"

#define RMP_REGION_PAGES	PTRS_PER_PMD	/* the pages of one 2M entry */

enum { RMP_MODEL_OFF, RMP_MODEL_SNP };

static const char * const rmp_model_modes[] = {
	[RMP_MODEL_OFF] = "off",
	[RMP_MODEL_SNP] = "snp",
};

static int rmp_model_mode = RMP_MODEL_SNP;

static int rmp_model_mode_set(const char *val, const struct kernel_param *kp)
{
	int mode = sysfs_match_string(rmp_model_modes, val);

	if (mode < 0)
		return mode;
	WRITE_ONCE(rmp_model_mode, mode);
	return 0;
}

static int rmp_model_mode_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%s\n", rmp_model_modes[READ_ONCE(rmp_model_mode)]);
}

static const struct kernel_param_ops rmp_model_mode_ops = {
	.set = rmp_model_mode_set,
	.get = rmp_model_mode_get,
};
module_param_cb(rmp_model, &rmp_model_mode_ops, NULL, 0644);
MODULE_PARM_DESC(rmp_model,
		 "Software-protected VMs created from now on: off, or snp (SEV-SNP's RMP rules)");

/* Serializes RMP updates; the MMU's level lookups read without it. */
static DEFINE_MUTEX(rmp_model_lock);

/*
 * The RMP: a bit per pfn below rmp_model_max_pfn, set while the page is
 * assigned, with the gfn it was assigned at, and a bit per 2M region, set
 * while it is one 2M entry.  Allocated once at boot, so that the model
 * never allocates where SNP does not.
 */
static unsigned long *rmp_model_assigned;
static unsigned long *rmp_model_huge;
static unsigned long *rmp_model_failed;	/* assigned after a failed update */
static unsigned long *rmp_model_immutable;	/* leaked by a failed launch */
static gfn_t *rmp_model_gfn;
static unsigned long rmp_model_max_pfn;
static bool rmp_model_ready;

static unsigned long rmp_model_assigned_4k;	/* assigned pages */
static unsigned long rmp_model_entries_2m;	/* 2M entries */
static unsigned long rmp_model_psmashes;
static unsigned long rmp_model_leaked;		/* of poisoned folios */
static u32 rmp_model_fail_make_shared;		/* updates left to fail */
static unsigned long rmp_model_failed_make_shared;
static u32 rmp_model_fail_split;		/* splits left to fail */
static u32 rmp_model_fail_make_private;		/* updates left to fail */
static unsigned long rmp_model_failed_make_private;
static u32 rmp_model_fail_launch_update;	/* launches left to fail */
static unsigned long rmp_model_launched;	/* pages launched */
static unsigned long rmp_model_splits;
static atomic_long_t rmp_model_violations;

#define rmp_model_violation(fmt, ...)					\
({									\
	atomic_long_inc(&rmp_model_violations);				\
	WARN_RATELIMIT(1, "rmp-model: violation: " fmt, ##__VA_ARGS__);	\
	-EINVAL;							\
})

static bool rmp_model_is_assigned(kvm_pfn_t pfn)
{
	return pfn < rmp_model_max_pfn && test_bit(pfn, rmp_model_assigned);
}

/* Whether the 2M region of @pfn is one 2M entry. */
static bool rmp_model_is_huge(kvm_pfn_t pfn)
{
	return pfn < rmp_model_max_pfn &&
	       test_bit(pfn / RMP_REGION_PAGES, rmp_model_huge);
}

/* Like is_pfn_range_shared(). */
static bool rmp_model_range_shared(kvm_pfn_t pfn, kvm_pfn_t end)
{
	lockdep_assert_held(&rmp_model_lock);
	end = min_t(kvm_pfn_t, end, rmp_model_max_pfn);
	return pfn >= end || find_next_bit(rmp_model_assigned, end, pfn) >= end;
}

/* Pages assigned in [@pfn, @end). */
static unsigned long rmp_model_count_assigned(kvm_pfn_t pfn, kvm_pfn_t end)
{
	unsigned long n = 0;

	lockdep_assert_held(&rmp_model_lock);
	end = min_t(kvm_pfn_t, end, rmp_model_max_pfn);
	for (pfn = find_next_bit(rmp_model_assigned, end, pfn); pfn < end;
	     pfn = find_next_bit(rmp_model_assigned, end, pfn + 1))
		n++;
	return n;
}

/*
 * The level the direct map maps @pfn at; 0 if it does not (a folio of a
 * GUEST_MEMFD_FLAG_NO_DIRECT_MAP file: nothing to split).
 */
static unsigned int rmp_model_direct_map_level(kvm_pfn_t pfn)
{
	unsigned int level;
	pte_t *pte = lookup_address((unsigned long)pfn_to_kaddr(pfn), &level);

	return pte && pte_present(*pte) ? level : 0;
}

/*
 * SNP's adjust_direct_map() before each RMPUPDATE: a 4K update of a page
 * that the direct map maps with a 2M or 1G page splits that mapping down
 * to the page (so that no host access through a large mapping overlaps a
 * 4K-assigned page), and a failed split fails the update; a 2M update
 * needs nothing.  PSMASH does not touch the direct map.
 */
static int rmp_model_adjust_direct_map(kvm_pfn_t pfn, int level)
{
	int r;

	lockdep_assert_held(&rmp_model_lock);
	if (level != PG_LEVEL_4K ||
	    rmp_model_direct_map_level(pfn) <= PG_LEVEL_4K)
		return 0;
	if (rmp_model_fail_split) {
		rmp_model_fail_split--;
		return -ENOMEM;
	}
	r = set_memory_4k((unsigned long)pfn_to_kaddr(pfn), 1);
	if (!r)
		rmp_model_splits++;
	return r;
}

/*
 * RMPUPDATE to guest-owned at @gfn, like rmp_make_private(): a 2M update
 * needs a 2M-aligned pfn and gfn and a wholly shared region; a 4K update
 * a shared page outside any 2M entry.  -EFAULT if the direct map could
 * not be split, -EINVAL on a violation.
 */
static int rmp_model_make_private(kvm_pfn_t pfn, gfn_t gfn, int level)
{
	unsigned long n = KVM_PAGES_PER_HPAGE(level), i;

	lockdep_assert_held(&rmp_model_lock);
	if (level == PG_LEVEL_2M &&
	    (!IS_ALIGNED(pfn | gfn, RMP_REGION_PAGES) ||
	     !rmp_model_range_shared(pfn, pfn + n)))
		return rmp_model_violation("2M pfn %#llx gfn %#llx: unaligned or assigned\n",
					   pfn, gfn);
	if (level == PG_LEVEL_4K &&
	    (rmp_model_is_huge(pfn) || rmp_model_is_assigned(pfn)))
		return rmp_model_violation("4K update of assigned pfn %#llx%s\n", pfn,
					   rmp_model_is_huge(pfn) ? " inside a 2M entry" : "");
	if (rmp_model_adjust_direct_map(pfn, level))
		return -EFAULT;

	bitmap_set(rmp_model_assigned, pfn, n);
	for (i = 0; i < n; i++)
		WRITE_ONCE(rmp_model_gfn[pfn + i], gfn + i);
	if (level == PG_LEVEL_2M) {
		__set_bit(pfn / RMP_REGION_PAGES, rmp_model_huge);
		rmp_model_entries_2m++;
	}
	rmp_model_assigned_4k += n;
	return 0;
}

/* RMPUPDATE to shared, like rmp_make_shared(). */
static void rmp_model_make_shared(kvm_pfn_t pfn, int level)
{
	unsigned long n = KVM_PAGES_PER_HPAGE(level);
	bool huge = rmp_model_is_huge(pfn);

	lockdep_assert_held(&rmp_model_lock);
	if (!rmp_model_is_assigned(pfn)) {
		rmp_model_violation("shared update of pfn %#llx, which is not assigned\n",
				    pfn);
		return;
	}
	if (level == PG_LEVEL_2M && (!IS_ALIGNED(pfn, RMP_REGION_PAGES) || !huge)) {
		rmp_model_violation("2M update of pfn %#llx over 4K entries\n", pfn);
		return;
	}
	if (level == PG_LEVEL_4K && huge) {
		rmp_model_violation("4K update of pfn %#llx inside a 2M entry\n", pfn);
		return;
	}
	bitmap_clear(rmp_model_assigned, pfn, n);
	bitmap_clear(rmp_model_failed, pfn, n);
	bitmap_clear(rmp_model_immutable, pfn, n);
	if (huge) {
		__clear_bit(pfn / RMP_REGION_PAGES, rmp_model_huge);
		rmp_model_entries_2m--;
	}
	rmp_model_assigned_4k -= n;
}

/* PSMASH, like snp_rmptable_psmash(): a 2M entry becomes 512 4K entries. */
static void rmp_model_psmash(kvm_pfn_t pfn)
{
	lockdep_assert_held(&rmp_model_lock);
	if (!rmp_model_is_huge(pfn)) {
		rmp_model_violation("PSMASH of pfn %#llx, not in a 2M entry\n", pfn);
		return;
	}
	__clear_bit(pfn / RMP_REGION_PAGES, rmp_model_huge);
	rmp_model_entries_2m--;
	rmp_model_psmashes++;
}

/*
 * Whether a memory error hit the naturally aligned 2^@order pages at @pfn
 * of @folio.
 */
static bool rmp_model_poisoned_order(struct folio *folio, kvm_pfn_t pfn,
				     unsigned int order)
{
	if (folio_test_hugetlb(folio))
		return hugetlb_gmem_hwpoison_order(folio, pfn - folio_pfn(folio),
						   order) < (int)order;
	return PageHWPoison(pfn_to_page(pfn));
}

static bool rmp_model_poisoned(struct folio *folio, kvm_pfn_t pfn)
{
	return rmp_model_poisoned_order(folio, pfn, 0);
}

/**
 * kvm_rmp_model_init_vm - give a new VM the model's mode of the moment
 * @kvm: the VM, its type set
 */
void kvm_rmp_model_init_vm(struct kvm *kvm)
{
	kvm->arch.rmp_model = READ_ONCE(rmp_model_ready) &&
			      READ_ONCE(rmp_model_mode) == RMP_MODEL_SNP &&
			      kvm->arch.vm_type == KVM_X86_SW_PROTECTED_VM;
}

/**
 * kvm_rmp_model_make_private - sev_gmem_make_private() on the model
 * @kvm: a VM of the model
 * @gfn: the gfn of @pfn
 * @pfn: first pfn of a naturally aligned block
 * @nr_pages: the block's size, a power of two
 *
 * Assigns every page of the block: one 2M entry per 2M region of a block
 * of 512 pages or more, 4K entries below (the steps of
 * sev_gmem_make_private()), nothing on a violation.  A failed update
 * (fail_make_private, a failed direct-map split) leaves the updates before
 * it done.  A page of a
 * 4 KiB file that is assigned already is left alone, as SNP does; a block
 * of a hugetlb file must be wholly shared (guest_memfd makes each page
 * private once between reclaims).
 *
 * Return: 0, -EIO if an update failed, or -EINVAL on a violation.
 */
int kvm_rmp_model_make_private(struct kvm *kvm, gfn_t gfn, kvm_pfn_t pfn,
			       kvm_pfn_t nr_pages)
{
	int level = nr_pages >= RMP_REGION_PAGES ? PG_LEVEL_2M : PG_LEVEL_4K;
	unsigned long step = KVM_PAGES_PER_HPAGE(level);
	kvm_pfn_t end = pfn + nr_pages, p;
	int rc = 0;

	/* Memory added after boot is not in the model. */
	if (end > rmp_model_max_pfn)
		return 0;

	mutex_lock(&rmp_model_lock);
	if (!is_power_of_2(nr_pages) || !IS_ALIGNED(pfn | gfn, nr_pages)) {
		rc = rmp_model_violation("make_private gfn %#llx pfn %#llx nr %llu: misaligned\n",
					 gfn, pfn, nr_pages);
		goto out;
	}
	/*
	 * Like SNP, leave a page of a 4 KiB file that is assigned already
	 * alone (even at another gfn, after its memslot moved).
	 */
	if (!folio_test_hugetlb(pfn_folio(pfn)) && nr_pages == 1 &&
	    rmp_model_is_assigned(pfn))
		goto out;
	if (!rmp_model_range_shared(pfn, end)) {
		rc = rmp_model_violation("make_private gfn %#llx pfn %#llx nr %llu: assigned\n",
					 gfn, pfn, nr_pages);
		goto out;
	}

	for (p = pfn; p < end; p += step) {
		/* fail_make_private counts down to the update that fails. */
		if (rmp_model_fail_make_private &&
		    !--rmp_model_fail_make_private)
			rc = -EIO;
		else
			rc = rmp_model_make_private(p, gfn + (p - pfn), level);
		if (rc == -EINVAL)
			goto err;
		if (rc) {
			/*
			 * A failed RMPUPDATE (or direct-map split), after
			 * which SNP returns with the updates before it done:
			 * guest_memfd reclaims the block (partly assigned:
			 * not a violation).
			 */
			rmp_model_failed_make_private++;
			bitmap_set(rmp_model_failed, pfn, p - pfn);
			rc = -EIO;
			goto out;
		}
	}
	goto out;

err:
	/* A violation: make what this call assigned shared again. */
	while (p > pfn) {
		p -= step;
		rmp_model_make_shared(p, level);
	}
out:
	mutex_unlock(&rmp_model_lock);
	return rc;
}

/*
 * The final call of a hugetlb folio, which has left its file: nothing may
 * be assigned any more but its poisoned pages, which guest_memfd never
 * reclaims and which stay assigned for good, as on SNP (the model counts
 * them as leaked rather than assigned).  Returns the pages it found.
 */
static unsigned long rmp_model_sweep_folio(struct folio *folio)
{
	kvm_pfn_t pfn = folio_pfn(folio), end = pfn + folio_nr_pages(folio), p;
	unsigned long n = 0;

	lockdep_assert_held(&rmp_model_lock);
	end = min_t(kvm_pfn_t, end, rmp_model_max_pfn);
	for (p = find_next_bit(rmp_model_assigned, end, pfn); p < end;
	     p = find_next_bit(rmp_model_assigned, end, p + 1)) {
		if (rmp_model_poisoned(folio, p))
			rmp_model_leaked++;
		else
			rmp_model_violation("folio at pfn %#llx freed with pfn %#llx assigned\n",
					    pfn, p);
		if (rmp_model_is_huge(p))
			rmp_model_psmash(p);
		rmp_model_make_shared(p, PG_LEVEL_4K);
		n++;
	}
	return n;
}

/*
 * SNP's restore of the direct map (snp_restore_direct_map()) on the model,
 * after a reclaim of [@pfn, @end): each 2M region inside the range that
 * holds no assigned page any more is mapped large again, dropping the 4K
 * marks of its splits (a 1G block collapses its 1G page too).  Then the
 * rule it relies on is checked over the range, as SNP would fault on its
 * breach: no 2M region that still holds a 4K-assigned page (a failed
 * update, a poisoned page) is mapped large.
 */
static void rmp_model_restore_direct_map(kvm_pfn_t pfn, kvm_pfn_t end)
{
	kvm_pfn_t p, run = 0;
	bool in_run = false;

	lockdep_assert_held(&rmp_model_lock);
	pfn = ALIGN(pfn, RMP_REGION_PAGES);
	end = ALIGN_DOWN(min_t(kvm_pfn_t, end, rmp_model_max_pfn),
			 RMP_REGION_PAGES);
	for (p = pfn; p <= end; p += RMP_REGION_PAGES) {
		bool clean = p < end &&
			     !rmp_model_count_assigned(p, p + RMP_REGION_PAGES);

		if (clean && !in_run) {
			run = p;
			in_run = true;
		} else if (!clean && in_run) {
			set_direct_map_collapse(pfn_to_page(run), p - run,
						SET_DIRECT_MAP_COLLAPSE_4K);
			in_run = false;
		}
	}
	for (p = find_next_bit(rmp_model_assigned, end, pfn); p < end;
	     p = find_next_bit(rmp_model_assigned, end, p + 1))
		if (!rmp_model_is_huge(p) &&
		    rmp_model_direct_map_level(p) > PG_LEVEL_4K)
			rmp_model_violation("4K-assigned pfn %#llx mapped large in the direct map after a collapse\n",
					    p);
}

/**
 * kvm_rmp_model_reclaim - sev_gmem_make_shared() on the model
 * @pfn: first pfn of the block
 * @nr_pages: the block's size
 * @err: gets 0, or -EIO if an update failed (fail_make_shared): its pages
 *	stay assigned
 *
 * Makes every assigned page of the block shared, with a 2M update where
 * the block covers a 2M entry whole, after a PSMASH where it covers one in
 * part.  Of a hugetlb folio a block is reclaimed whole or not at all (but
 * for a retry of pages whose update failed), never over a poisoned page
 * (SNP flushes the cache lines of what it makes shared), and the final
 * call, made once the folio left its file (no mapping), finds nothing
 * assigned but poisoned pages: it never fails, as on SNP, where it finds
 * nothing to update.
 *
 * Return: false if no page the call covers is assigned in the model: the
 * reclaim is not the model's.
 */
bool kvm_rmp_model_reclaim(kvm_pfn_t pfn, kvm_pfn_t nr_pages, int *err)
{
	kvm_pfn_t end = pfn + nr_pages, lim;
	struct folio *folio;
	bool hugetlb;
	unsigned long n;

	*err = 0;
	if (!READ_ONCE(rmp_model_ready) || pfn >= rmp_model_max_pfn)
		return false;

	folio = pfn_folio(pfn);
	hugetlb = folio_test_hugetlb(folio);
	mutex_lock(&rmp_model_lock);
	if (hugetlb && !folio->mapping) {
		/*
		 * Before the sweep: on SNP the pages it leaks stay assigned,
		 * and their regions split.
		 */
		rmp_model_restore_direct_map(folio_pfn(folio),
					     folio_pfn(folio) + folio_nr_pages(folio));
		n = rmp_model_sweep_folio(folio);
		goto out;
	}
	n = rmp_model_count_assigned(pfn, end);
	if (!n)
		goto out;
	/* guest_memfd retries what failed in smaller blocks. */
	lim = min_t(kvm_pfn_t, end, rmp_model_max_pfn);
	if (hugetlb && n < nr_pages &&
	    find_next_andnot_bit(rmp_model_assigned, rmp_model_failed, lim,
				 pfn) < lim)
		rmp_model_violation("reclaim of block pfn %#llx nr_pages %llu with %lu assigned\n",
				    pfn, nr_pages, n);

	while (pfn < end) {
		bool use_2m_update;
		int r;

		if (!rmp_model_is_assigned(pfn)) {
			pfn++;
			continue;
		}
		use_2m_update = IS_ALIGNED(pfn, RMP_REGION_PAGES) &&
				end >= pfn + RMP_REGION_PAGES &&
				rmp_model_is_huge(pfn);
		/* SNP flushes the cache lines of what it makes shared. */
		if (hugetlb &&
		    rmp_model_poisoned_order(folio, pfn, use_2m_update ? PMD_ORDER : 0))
			rmp_model_violation("reclaim of poisoned memory at pfn %#llx\n", pfn);
		if (!use_2m_update && rmp_model_is_huge(pfn))
			rmp_model_psmash(pfn);
		/* Split first, as SNP's rmpupdate() does. */
		r = rmp_model_adjust_direct_map(pfn, use_2m_update ? PG_LEVEL_2M :
								     PG_LEVEL_4K);
		/* A page the firmware kept after a failed launch. */
		if (!r && test_bit(pfn, rmp_model_immutable))
			r = -EIO;
		if (!r && rmp_model_fail_make_shared) {
			rmp_model_fail_make_shared--;
			r = -EIO;
		}
		if (r) {
			/* A failed RMPUPDATE: the pages stay assigned. */
			rmp_model_failed_make_shared++;
			bitmap_set(rmp_model_failed, pfn,
				   use_2m_update ? RMP_REGION_PAGES : 1);
			*err = -EIO;
		} else {
			rmp_model_make_shared(pfn, use_2m_update ? PG_LEVEL_2M :
							       PG_LEVEL_4K);
		}
		pfn += use_2m_update ? RMP_REGION_PAGES : 1;
		cond_resched();
	}
	rmp_model_restore_direct_map(end - nr_pages, end);
out:
	mutex_unlock(&rmp_model_lock);
	return n;
}

#ifdef CONFIG_KVM_GMEM_HUGETLB
/*
 * The model's check of guest_memfd's host writes: a write to an assigned
 * page is an RMP fault on SNP.
 */
void kvm_arch_gmem_host_write(kvm_pfn_t pfn, kvm_pfn_t nr_pages)
{
	kvm_pfn_t end = min_t(kvm_pfn_t, pfn + nr_pages, rmp_model_max_pfn), p;

	if (!READ_ONCE(rmp_model_ready) || pfn >= end)
		return;
	mutex_lock(&rmp_model_lock);
	p = find_next_bit(rmp_model_assigned, end, pfn);
	if (p < end)
		rmp_model_violation("host write to assigned pfn %#llx\n", p);
	mutex_unlock(&rmp_model_lock);
}
#endif

/**
 * kvm_rmp_model_max_mapping_level - sev_gmem_max_mapping_level() on the model
 * @kvm: a VM of the model
 * @pfn: the pfn KVM is about to map
 * @gfn: where
 * @is_private: whether the gfn is private
 *
 * Called under mmu_lock, after guest_memfd made @pfn private; reads the
 * model without its lock (a reclaim of @pfn would have made the fault
 * stale first).
 *
 * Return: the level of @pfn's RMP entry for private memory, else 0 (no
 * limit).
 */
int kvm_rmp_model_max_mapping_level(struct kvm *kvm, kvm_pfn_t pfn,
				    gfn_t gfn, bool is_private)
{
	gfn_t assigned_gfn;

	if (!is_private || pfn >= rmp_model_max_pfn)
		return 0;
	if (!rmp_model_is_assigned(pfn)) {
		rmp_model_violation("private map of gfn %#llx pfn %#llx: not assigned\n",
				    gfn, pfn);
		return PG_LEVEL_4K;
	}
	assigned_gfn = READ_ONCE(rmp_model_gfn[pfn]);
	if (assigned_gfn != gfn)
		rmp_model_violation("private map of gfn %#llx pfn %#llx: at gfn %#llx\n",
				    gfn, pfn, assigned_gfn);
	if (rmp_model_is_huge(pfn))
		return PG_LEVEL_2M;
	/* What the direct map relies on, at every fault that may map huge. */
	if (rmp_model_direct_map_level(pfn) > PG_LEVEL_4K)
		rmp_model_violation("4K-assigned pfn %#llx mapped large in the direct map\n",
				    pfn);
	return PG_LEVEL_4K;
}

/*
 * sev_gmem_post_populate() on the model, for one page that guest_memfd
 * allocated and, for a hugetlb file, never made private.
 */
static int rmp_model_post_populate(struct kvm *kvm, gfn_t gfn, kvm_pfn_t pfn,
				   struct page *src_page, void *opaque)
{
	int rc = 0;

	if (pfn >= rmp_model_max_pfn)
		return -EINVAL;

	mutex_lock(&rmp_model_lock);
	if (rmp_model_is_assigned(pfn)) {
		/* SNP checks; a hugetlb guest_memfd must never ask. */
		if (folio_test_hugetlb(pfn_folio(pfn)))
			rc = rmp_model_violation("launch of assigned pfn %#llx\n", pfn);
		else
			rc = -EEXIST;
		goto out;
	}
	if (src_page) {
		void *src = kmap_local_page(src_page);
		void *dst = kmap_local_pfn(pfn);

		memcpy(dst, src, PAGE_SIZE);
		kunmap_local(dst);
		kunmap_local(src);
	}

	if (rmp_model_fail_make_private && !--rmp_model_fail_make_private)
		rc = -EIO;
	else
		rc = rmp_model_make_private(pfn, gfn, PG_LEVEL_4K);
	if (rc) {
		/* Nothing assigned (a violation assigns nothing either). */
		if (rc != -EINVAL)
			rmp_model_failed_make_private++;
		goto out;
	}

	if (!rmp_model_fail_launch_update) {
		rmp_model_launched++;
		goto out;
	}
	/* SNP_LAUNCH_UPDATE failed: snp_page_reclaim(). */
	rmp_model_fail_launch_update--;
	rc = -EIO;
	if (rmp_model_fail_make_shared) {
		/*
		 * SNP_PAGE_RECLAIM failed: the firmware keeps the page (no
		 * RMP update to shared can succeed on it any more), SNP leaks
		 * it and bugs the VM.
		 */
		rmp_model_fail_make_shared--;
		rmp_model_failed_make_shared++;
		__set_bit(pfn, rmp_model_failed);
		__set_bit(pfn, rmp_model_immutable);
		kvm_vm_bugged(kvm);
	} else {
		rmp_model_make_shared(pfn, PG_LEVEL_4K);
	}
out:
	mutex_unlock(&rmp_model_lock);
	return rc;
}

static ssize_t rmp_model_launch_write(struct file *file,
				      const char __user *ubuf, size_t count,
				      loff_t *ppos)
{
	long long gfn, npages, src;
	struct kvm *kvm;
	char buf[80];
	long done;
	int fd;

	if (!count || count >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	buf[count] = '\0';
	if (sscanf(buf, "%d %lli %lli %lli", &fd, &gfn, &npages, &src) != 4 ||
	    gfn < 0 || npages <= 0 || src < 0 || !PAGE_ALIGNED(src))
		return -EINVAL;

	CLASS(fd, f)(fd);
	if (fd_empty(f))
		return -EBADF;
	if (!file_is_kvm(fd_file(f)))
		return -EINVAL;
	kvm = fd_file(f)->private_data;
	if (!kvm_rmp_model_vm(kvm))
		return -EINVAL;
	/* As for the VM's ioctls; the source is the caller's memory. */
	if (kvm->mm != current->mm || kvm->vm_dead)
		return -EIO;

	mutex_lock(&kvm->slots_lock);
	done = kvm_gmem_populate(kvm, gfn, (void __user *)(unsigned long)src,
				 npages, false, rmp_model_post_populate, NULL);
	mutex_unlock(&kvm->slots_lock);
	if (done < 0)
		return done;
	return done < npages ? -EIO : count;
}

static const struct file_operations rmp_model_launch_fops = {
	.owner	= THIS_MODULE,
	.write	= rmp_model_launch_write,
	.llseek	= noop_llseek,
};

static int rmp_model_violations_get(void *data, u64 *val)
{
	*val = atomic_long_read(&rmp_model_violations);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(rmp_model_violations_fops, rmp_model_violations_get,
			 NULL, "%llu\n");

/*
 * host_read: write a pfn, then read what the host kernel finds there
 * through the direct map: -14 (-EFAULT) if the read faults (the page is
 * out of the direct map), else 0 if the page reads as zeroes and 1 if not.
 */
static unsigned long rmp_model_host_read_pfn;

static int rmp_model_host_read_get(void *data, u64 *val)
{
	unsigned long pfn = READ_ONCE(rmp_model_host_read_pfn);
	void *buf;

	if (!pfn_valid(pfn) || pfn >= max_pfn)
		return -EINVAL;
	/* Reading poison is a machine check, not a fault. */
	if (PageHWPoison(pfn_to_page(pfn)) ||
	    folio_test_hwpoison(pfn_folio(pfn)))
		return -EHWPOISON;
	buf = kmalloc(PAGE_SIZE, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	/* Recovers from a fault and from poison that came meanwhile. */
	if (copy_mc_to_kernel(buf, pfn_to_kaddr(pfn), PAGE_SIZE))
		*val = (u64)-EFAULT;
	else
		*val = !!memchr_inv(buf, 0, PAGE_SIZE);
	kfree(buf);
	return 0;
}

static int rmp_model_host_read_set(void *data, u64 val)
{
	WRITE_ONCE(rmp_model_host_read_pfn, val);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(rmp_model_host_read_fops, rmp_model_host_read_get,
			 rmp_model_host_read_set, "%lld\n");

static int __init kvm_rmp_model_init(void)
{
	struct dentry *dir;

	/* On an SNP host, guest_memfd's calls belong to SNP. */
	if (cc_platform_has(CC_ATTR_HOST_SEV_SNP))
		return 0;

	rmp_model_max_pfn = ALIGN(max_pfn, RMP_REGION_PAGES);
	rmp_model_assigned = vzalloc(BITS_TO_LONGS(rmp_model_max_pfn) *
				     sizeof(long));
	rmp_model_huge = vzalloc(BITS_TO_LONGS(rmp_model_max_pfn /
					       RMP_REGION_PAGES) * sizeof(long));
	rmp_model_failed = vzalloc(BITS_TO_LONGS(rmp_model_max_pfn) *
				   sizeof(long));
	rmp_model_immutable = vzalloc(BITS_TO_LONGS(rmp_model_max_pfn) *
				      sizeof(long));
	rmp_model_gfn = vcalloc(rmp_model_max_pfn, sizeof(*rmp_model_gfn));
	if (!rmp_model_assigned || !rmp_model_huge || !rmp_model_failed ||
	    !rmp_model_immutable ||
	    !rmp_model_gfn) {
		vfree(rmp_model_assigned);
		vfree(rmp_model_huge);
		vfree(rmp_model_failed);
		vfree(rmp_model_immutable);
		vfree(rmp_model_gfn);
		pr_err("no memory for the model of %lu pages\n", rmp_model_max_pfn);
		return -ENOMEM;
	}

	dir = debugfs_create_dir("kvm-rmp-model", NULL);
	debugfs_create_ulong("assigned_4k", 0444, dir, &rmp_model_assigned_4k);
	debugfs_create_ulong("entries_2m", 0444, dir, &rmp_model_entries_2m);
	debugfs_create_ulong("psmash", 0444, dir, &rmp_model_psmashes);
	debugfs_create_ulong("leaked", 0444, dir, &rmp_model_leaked);
	debugfs_create_u32("fail_make_shared", 0644, dir,
			   &rmp_model_fail_make_shared);
	debugfs_create_ulong("failed_make_shared", 0444, dir,
			     &rmp_model_failed_make_shared);
	debugfs_create_u32("fail_direct_map_split", 0644, dir,
			   &rmp_model_fail_split);
	debugfs_create_u32("fail_make_private", 0644, dir,
			   &rmp_model_fail_make_private);
	debugfs_create_ulong("failed_make_private", 0444, dir,
			     &rmp_model_failed_make_private);
	debugfs_create_ulong("direct_map_splits", 0444, dir, &rmp_model_splits);
	debugfs_create_u32("fail_launch_update", 0644, dir,
			   &rmp_model_fail_launch_update);
	debugfs_create_ulong("launched", 0444, dir, &rmp_model_launched);
	debugfs_create_file("launch", 0200, dir, NULL, &rmp_model_launch_fops);
	debugfs_create_file("violations", 0444, dir, NULL,
			    &rmp_model_violations_fops);
	debugfs_create_file("host_read", 0600, dir, NULL,
			    &rmp_model_host_read_fops);
	WRITE_ONCE(rmp_model_ready, true);
	pr_info("ready, mode %s for new software-protected VMs\n",
		rmp_model_modes[READ_ONCE(rmp_model_mode)]);
	return 0;
}
late_initcall(kvm_rmp_model_init);
