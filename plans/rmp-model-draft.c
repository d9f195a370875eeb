// SPDX-License-Identifier: GPL-2.0
/*
 * DRAFT, NOT BUILT, NOT PART OF THE PRODUCT: a starting point for issue 10
 * section 4 (software model of the SNP RMP), written 2026-12-04 against the
 * series at 4d49f64.  Target: arch/x86/kvm/rmp_model.c, with
 *
 *   config KVM_SW_PROTECTED_VM_RMP_MODEL
 *	bool "Model SEV-SNP's RMP for KVM_X86_SW_PROTECTED_VM (debug)"
 *	depends on KVM_SW_PROTECTED_VM && KVM_X86=y && DEBUG_KERNEL
 *	select HAVE_KVM_ARCH_GMEM_PREPARE
 *	select HAVE_KVM_ARCH_GMEM_INVALIDATE
 *
 * (KVM_X86=y: set_memory_np()/set_memory_p() are not exported), dispatch in
 * x86.c's kvm_arch_gmem_prepare() (per VM: vm_type == SW_PROTECTED) and
 * kvm_arch_gmem_invalidate() (a static key: no kvm argument; enabled only
 * when !cc_platform_has(CC_ATTR_HOST_SEV_SNP)).  Next steps: move SNP's
 * prepare/invalidate loops into static __always_inline templates over a
 * const ops table (arch/x86/kvm/snp_rmp.h) so that the model runs SNP's own
 * code with these ops; a debugfs populate file per VM; the runner snapshot
 * of the counters around each test; a splat-check window for expected
 * violations.
 */
#include <linux/debugfs.h>
#include <linux/kvm_host.h>
#include <linux/mutex.h>
#include <linux/set_memory.h>
#include <linux/xarray.h>

#define RMP_FRAME_PAGES	512	/* one 2M RMP region */

/* The 4K entries of one 2M-aligned region, or one 2M entry. */
struct rmp_model_frame {
	DECLARE_BITMAP(assigned, RMP_FRAME_PAGES);
	unsigned int nr;	/* assigned 4K pages */
	bool huge;		/* one 2M entry: every page assigned */
	bool split;		/* its direct map was split to 4K once */
};

static DEFINE_MUTEX(rmp_model_lock);	/* leaf lock; all callers sleep */
static DEFINE_XARRAY(rmp_model_frames);	/* pfn >> 9 -> frame */
static unsigned long assigned_4k, entries_2m, psmashes, violations, leaked;

#define rmp_violation(fmt, ...)						\
	({ violations++; WARN(1, "rmp-model: " fmt, ##__VA_ARGS__); })

/* Assigned pages are out of the host's reach, as the RMP makes them. */
static void rmp_model_hide(kvm_pfn_t pfn, unsigned long n, bool hide)
{
	unsigned long va = (unsigned long)pfn_to_kaddr(pfn);

	/* The frame's 2M was split beforehand: these never allocate. */
	if (hide)
		WARN_ON_ONCE(set_memory_np(va, n));
	else
		WARN_ON_ONCE(set_memory_p(va, n));
}

static struct rmp_model_frame *rmp_model_frame(kvm_pfn_t pfn, bool create)
{
	struct rmp_model_frame *f = xa_load(&rmp_model_frames, pfn / RMP_FRAME_PAGES);

	lockdep_assert_held(&rmp_model_lock);
	if (f || !create)
		return f;
	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!f)
		return NULL;
	if (xa_err(xa_store(&rmp_model_frames, pfn / RMP_FRAME_PAGES, f,
			    GFP_KERNEL))) {
		kfree(f);
		return NULL;
	}
	return f;
}

static void rmp_model_put_frame(kvm_pfn_t pfn, struct rmp_model_frame *f)
{
	if (f->nr)
		return;
	xa_erase(&rmp_model_frames, pfn / RMP_FRAME_PAGES);
	kfree(f);
}

/* RMPUPDATE to assigned, at 4K or 2M: the rules SNP's hardware enforces. */
static int rmp_model_make_private(kvm_pfn_t pfn, gpa_t gpa, int level)
{
	unsigned long off = pfn % RMP_FRAME_PAGES;
	struct rmp_model_frame *f = rmp_model_frame(pfn, true);

	if (!f)
		return -ENOMEM;
	if (!f->split) {
		/* Split the direct map while allocating is still allowed. */
		if (set_memory_4k((unsigned long)pfn_to_kaddr(ALIGN_DOWN(pfn, RMP_FRAME_PAGES)),
				  RMP_FRAME_PAGES))
			return -ENOMEM;
		f->split = true;
	}
	if (level == PG_LEVEL_2M) {
		if (off || !IS_ALIGNED(gpa, SZ_2M) || f->nr) {
			rmp_violation("2M update of pfn %llx over mixed entries (%u assigned)\n",
				      pfn, f->nr);
			return -EINVAL;
		}
		bitmap_fill(f->assigned, RMP_FRAME_PAGES);
		f->nr = RMP_FRAME_PAGES;
		f->huge = true;
		entries_2m++;
		assigned_4k += RMP_FRAME_PAGES;
		rmp_model_hide(pfn, RMP_FRAME_PAGES, true);
		return 0;
	}
	if (f->huge || test_bit(off, f->assigned)) {
		rmp_violation("preparing assigned pfn %llx\n", pfn);
		return -EINVAL;
	}
	__set_bit(off, f->assigned);
	f->nr++;
	assigned_4k++;
	rmp_model_hide(pfn, 1, true);
	return 0;
}

static void rmp_model_psmash(kvm_pfn_t pfn, struct rmp_model_frame *f)
{
	if (!f->huge) {
		rmp_violation("PSMASH of pfn %llx, not a 2M entry\n", pfn);
		return;
	}
	f->huge = false;
	entries_2m--;
	psmashes++;
}

/* RMPUPDATE to shared; a 4K change inside a 2M entry needs PSMASH first. */
static void rmp_model_make_shared(kvm_pfn_t pfn, int level)
{
	unsigned long off = pfn % RMP_FRAME_PAGES;
	struct rmp_model_frame *f = rmp_model_frame(pfn, false);

	if (!f || !test_bit(off, f->assigned)) {
		rmp_violation("invalidation of never prepared pfn %llx\n", pfn);
		return;
	}
	if (level == PG_LEVEL_2M) {
		if (!f->huge || off) {
			rmp_violation("2M shared update of pfn %llx, not a 2M entry\n", pfn);
			return;
		}
		f->huge = false;
		entries_2m--;
		bitmap_zero(f->assigned, RMP_FRAME_PAGES);
		assigned_4k -= f->nr;
		f->nr = 0;
		rmp_model_hide(pfn, RMP_FRAME_PAGES, false);
	} else {
		if (f->huge) {
			rmp_violation("4K update of pfn %llx inside a 2M entry\n", pfn);
			return;
		}
		__clear_bit(off, f->assigned);
		f->nr--;
		assigned_4k--;
		rmp_model_hide(pfn, 1, false);
	}
	rmp_model_put_frame(pfn, f);
}

/*
 * The SNP-shaped hooks.  Until the templates exist, these mirror
 * sev_gmem_prepare() and sev_gmem_invalidate() line for line.
 */
int rmp_model_gmem_prepare(struct kvm *kvm, kvm_pfn_t pfn, gfn_t gfn, int order)
{
	int level = order >= PMD_ORDER ? PG_LEVEL_2M : PG_LEVEL_4K;
	unsigned long step = KVM_PAGES_PER_HPAGE(level);
	kvm_pfn_t end = pfn + (1UL << order), p;
	int r = 0;

	mutex_lock(&rmp_model_lock);
	for (p = pfn; p < end; p += step) {
		r = rmp_model_make_private(p, gfn_to_gpa(gfn + (p - pfn)), level);
		if (r)
			break;
	}
	while (r && p > pfn) {
		p -= step;
		rmp_model_make_shared(p, level);
	}
	mutex_unlock(&rmp_model_lock);
	return r;
}

void rmp_model_gmem_invalidate(kvm_pfn_t pfn, unsigned int order, bool folio_free)
{
	kvm_pfn_t end = pfn + (1UL << order), p;
	struct rmp_model_frame *f;

	mutex_lock(&rmp_model_lock);
	if (folio_free) {
		/* Nothing of a folio may be assigned when it goes back. */
		for (p = pfn; p < end; p += RMP_FRAME_PAGES) {
			f = rmp_model_frame(p, false);
			if (!f)
				continue;
			if (folio_test_hwpoison(page_folio(pfn_to_page(pfn)))) {
				leaked += f->nr;	/* abandoned, stays hidden */
				continue;
			}
			rmp_violation("freeing pfn range %llx with %u pages assigned\n",
				      p, f->nr);
		}
		goto out;
	}
	for (p = pfn; p < end; ) {
		f = rmp_model_frame(p, false);
		if (f && f->huge && order >= PMD_ORDER) {
			rmp_model_make_shared(p, PG_LEVEL_2M);
			p += RMP_FRAME_PAGES;
			continue;
		}
		if (f && f->huge)
			rmp_model_psmash(ALIGN_DOWN(p, RMP_FRAME_PAGES), f);
		rmp_model_make_shared(p, PG_LEVEL_4K);
		p++;
	}
out:
	mutex_unlock(&rmp_model_lock);
}

static int __init rmp_model_debugfs_init(void)
{
	struct dentry *d = debugfs_create_dir("kvm-rmp-model", NULL);

	debugfs_create_ulong("assigned_4k", 0444, d, &assigned_4k);
	debugfs_create_ulong("entries_2m", 0444, d, &entries_2m);
	debugfs_create_ulong("psmash", 0444, d, &psmashes);
	debugfs_create_ulong("violations", 0444, d, &violations);
	debugfs_create_ulong("leaked", 0444, d, &leaked);
	return 0;
}
late_initcall(rmp_model_debugfs_init);
