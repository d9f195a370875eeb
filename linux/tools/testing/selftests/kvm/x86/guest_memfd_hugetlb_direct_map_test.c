// SPDX-License-Identifier: GPL-2.0-only
/*
 * The kernel direct map of hugetlb guest_memfd memory.
 *
 * GUEST_MEMFD_FLAG_NO_DIRECT_MAP: each folio leaves the direct map as a
 * whole when it is allocated and comes back as a whole when it is freed.
 * Over a VM's life (fill, a 4K punch storm and refill, private/shared
 * conversions, a folio punched whole and refaulted, close) this checks
 * that the host kernel faults on the memory while the file holds it and
 * reads it wiped once it is freed (kvm-rmp-model/host_read), that the
 * guest reads zeroes in each punched subpage and its data elsewhere (the
 * kernel zeroed those without the direct map), that the file never splits
 * the direct map below the folio size (DirectMap4k and the 2M splits do not
 * move), that gmem_direct_map_removes/restores count one per folio, and
 * that after close DirectMap4k/2M/1G and the pool are as before.
 *
 * Without the flag, under the model of SEV-SNP's RMP (kvm.rmp_model=snp):
 * 4K RMP updates split the direct map to 4K around each page, as SNP's
 * adjust_direct_map() does; reclaims and the final whole-folio call map it
 * large again, so that after a life of punch storms, refills and
 * conversions DirectMap4k/2M/1G are as before, the collapse counters of
 * /proc/vmstat show the restores, and the model saw no violation.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/sizes.h>

#include "gmem_hugetlb.h"
#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include "kselftest_harness.h"
#include "gmem_hugetlb_harness.h"

#define PATTERN(off)	((u64)(0xd1ec7ab5e0000000ULL ^ (off)))

/* Subpages the guest must read as zero, one bit per 4K of the file. */
#define MAX_PAGES	(SZ_1G / SZ_4K)
static u64 punched[MAX_PAGES / 64];

enum { STAGE_FILLED = 1, STAGE_CHECKED };

/*
 * Fill the first word of every subpage; then, each round, check that the
 * punched subpages read zero and the others their pattern, and write the
 * pattern everywhere again (refilling the punched ones).
 */
static void guest_code(u64 gpa, u64 size)
{
	u64 off, want, got;

	for (off = 0; off < size; off += SZ_4K)
		WRITE_ONCE(*(u64 *)(gpa + off), PATTERN(off));
	GUEST_SYNC(STAGE_FILLED);

	for (;;) {
		for (off = 0; off < size; off += SZ_4K) {
			u64 i = off / SZ_4K;

			want = punched[i / 64] & BIT_ULL(i % 64) ? 0 : PATTERN(off);
			got = READ_ONCE(*(u64 *)(gpa + off));
			__GUEST_ASSERT(got == want,
				       "subpage at 0x%lx reads 0x%lx, expected 0x%lx",
				       off, got, want);
			WRITE_ONCE(*(u64 *)(gpa + off), PATTERN(off));
		}
		GUEST_SYNC(STAGE_CHECKED);
	}
}

static const char * const vmstat_keys[] = {
	"gmem_direct_map_removes",
	"gmem_direct_map_restores",
	"direct_map_level2_splits",
	"direct_map_level3_splits",
	"direct_map_level2_collapses",
	"direct_map_level3_collapses",
};

enum {
	REMOVES, RESTORES, SPLITS_2M, SPLITS_1G, COLLAPSES_2M, COLLAPSES_1G,
	NR_VMSTAT
};

struct dm_state {
	u64 kb[3];			/* DirectMap4k, 2M, 1G */
	u64 vm[NR_VMSTAT];
};

static void dm_read(struct __test_metadata *_metadata, struct dm_state *s)
{
	int i;

	direct_map_kb(s->kb);
	for (i = 0; i < NR_VMSTAT; i++) {
		s64 v = vmstat_get(vmstat_keys[i]);

		ASSERT_LE(0, v) TH_LOG("no %s in /proc/vmstat", vmstat_keys[i]);
		s->vm[i] = v;
	}
}

static void dm_log(struct __test_metadata *_metadata, const char *when,
		   const struct dm_state *s, const struct dm_state *base)
{
	TH_LOG("%s: DirectMap4k %lu 2M %lu 1G %lu kB; removes %+ld restores %+ld, splits 2M %+ld 1G %+ld, collapses 2M %+ld 1G %+ld",
	       when, s->kb[0], s->kb[1], s->kb[2],
	       (long)(s->vm[REMOVES] - base->vm[REMOVES]),
	       (long)(s->vm[RESTORES] - base->vm[RESTORES]),
	       (long)(s->vm[SPLITS_2M] - base->vm[SPLITS_2M]),
	       (long)(s->vm[SPLITS_1G] - base->vm[SPLITS_1G]),
	       (long)(s->vm[COLLAPSES_2M] - base->vm[COLLAPSES_2M]),
	       (long)(s->vm[COLLAPSES_1G] - base->vm[COLLAPSES_1G]));
}

/*
 * No split below the folio size by a file out of the direct map:
 * DirectMap4k as at @base, no 2M page split, and folios removed and
 * restored as counted.
 */
static void __check_no_4k(struct __test_metadata *_metadata,
			  const struct dm_state *base, u64 removes,
			  u64 restores, const char *when)
{
	struct dm_state now;

	dm_read(_metadata, &now);
	dm_log(_metadata, when, &now, base);
	ASSERT_EQ(base->kb[0], now.kb[0]) TH_LOG("%s: DirectMap4k moved", when);
	ASSERT_EQ(base->vm[SPLITS_2M], now.vm[SPLITS_2M])
		TH_LOG("%s: a 2M direct-map page was split", when);
	ASSERT_EQ(removes, now.vm[REMOVES] - base->vm[REMOVES])
		TH_LOG("%s: folios removed from the direct map", when);
	ASSERT_EQ(restores, now.vm[RESTORES] - base->vm[RESTORES])
		TH_LOG("%s: folios restored to the direct map", when);
}

#define check_no_4k(removes, restores, when) \
	__check_no_4k(_metadata, &self->dm, removes, restores, when)

/* The pfn of file page @index, from the kvm_gmem_prepare events traced. */
static u64 traced_pfn(const struct gmem_events *ev, u64 index)
{
	u64 pfn = 0;
	size_t i;

	for (i = 0; i < ev->nr; i++) {
		const struct gmem_event *e = &ev->ev[i];

		if (e->kind == GMEM_PREPARE && index >= e->index &&
		    index < e->index + e->nr_pages)
			pfn = e->pfn + index - e->index;
	}
	return pfn;
}

static void mark(u64 off, u64 len)
{
	u64 i;

	for (i = off / SZ_4K; i < (off + len) / SZ_4K; i++)
		punched[i / 64] |= BIT_ULL(i % 64);
}

static void punch(struct gmem_guest *g, u64 off, u64 len)
{
	gmem_punch(g->fd, off, len);
	mark(off, len);
}

FIXTURE(gmem_direct_map) {
	struct hugetlb_pool base;
	struct dm_state dm;
	struct gmem_guest g;
};

FIXTURE_VARIANT(gmem_direct_map) {
	size_t page_size;
	u64 nr_folios;
};

FIXTURE_VARIANT_ADD(gmem_direct_map, 2M) {
	.page_size = SZ_2M,
	.nr_folios = 8,
};

FIXTURE_VARIANT_ADD(gmem_direct_map, 1G) {
	.page_size = SZ_1G,
	.nr_folios = 1,
};

FIXTURE_SETUP(gmem_direct_map)
{
	self->g.vm = NULL;
	if (!gmem_hugetlb_require(_metadata, variant->page_size))
		return;
	ASSERT_TRUE(hugetlb_pool_read(variant->page_size, &self->base));
}

FIXTURE_TEARDOWN(gmem_direct_map)
{
	if (self->g.vm)
		gmem_guest_destroy(&self->g);
	gmem_rmp_model_set(NULL);
}

static struct guest_memfd_backing no_direct_map(size_t page_size)
{
	struct guest_memfd_backing b = guest_memfd_hugetlb_backing(page_size);

	b.flags |= GUEST_MEMFD_FLAG_NO_DIRECT_MAP;
	return b;
}

/*
 * KVM_CAP_GUEST_MEMFD_FLAGS reports the flag for software-protected and
 * default VMs, which may use it with GUEST_MEMFD_FLAG_HUGETLB only; bad
 * combinations fail with EINVAL and leave the pool as it was.
 */
TEST_F(gmem_direct_map, create_errors)
{
	const size_t hpage = variant->page_size;
	struct guest_memfd_backing b = no_direct_map(hpage);
	struct kvm_vm *vm;
	int fd;

	vm = gmem_vm_create_barebones();
	ASSERT_TRUE(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS) &
		    GUEST_MEMFD_FLAG_NO_DIRECT_MAP);

	fd = __vm_create_guest_memfd(vm, hpage, GUEST_MEMFD_FLAG_NO_DIRECT_MAP);
	ASSERT_EQ(-1, fd);
	ASSERT_EQ(EINVAL, errno);
	fd = __vm_create_guest_memfd_backing(vm, hpage + SZ_4K, b);
	ASSERT_EQ(-1, fd);
	ASSERT_EQ(EINVAL, errno);
	hugetlb_pool_assert(hpage, &self->base, 0, 0, "after failed creations");

	/* A good one reserves, allocates nothing, and gives it all back. */
	fd = vm_create_guest_memfd_backing(vm, hpage, no_direct_map(hpage));
	hugetlb_pool_assert(hpage, &self->base, 0, 1, "after creation");
	close(fd);
	kvm_vm_free(vm);
	hugetlb_pool_assert(hpage, &self->base, 0, 0, "after close");

	/*
	 * A default VM's too (KVM reads its memory through the VMM's mapping:
	 * guest_memfd_hugetlb_mmap_test's secret_free); not without HUGETLB.
	 */
	vm = vm_create_barebones();
	ASSERT_TRUE(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS) &
		    GUEST_MEMFD_FLAG_NO_DIRECT_MAP);
	fd = __vm_create_guest_memfd(vm, hpage, GUEST_MEMFD_FLAG_NO_DIRECT_MAP);
	ASSERT_EQ(-1, fd);
	ASSERT_EQ(EINVAL, errno);
	fd = vm_create_guest_memfd_backing(vm, hpage, no_direct_map(hpage));
	hugetlb_pool_assert(hpage, &self->base, 0, 1, "a default VM's");
	close(fd);
	kvm_vm_free(vm);
	hugetlb_pool_assert(hpage, &self->base, 0, 0, "after the default VM");
}

/* Run the guest's next round after telling it which subpages are punched. */
static void check_round(struct gmem_guest *g)
{
	sync_global_to_guest(g->vm, punched);
	gmem_guest_run(g->vcpu, STAGE_CHECKED);
}

/* 4K punches over folio @f, and a whole 2M block of it (of a 1G folio). */
static void punch_storm(struct gmem_guest *g, size_t hpage, u64 f)
{
	const u64 subpages = hpage / SZ_4K, base = f * hpage;
	const u64 stride = subpages > 64 ? subpages / 64 : 1;
	u64 i;

	for (i = 1; i < subpages; i += stride)
		punch(g, base + i * SZ_4K, SZ_4K);
	if (hpage == SZ_1G)
		punch(g, base + 3 * SZ_2M, SZ_2M);
}

/* Private -> shared (punched) -> private of a few 4K pages of folio 0. */
static void conversions(struct gmem_guest *g, size_t hpage)
{
	u64 off, i;

	for (i = 0; i < 4; i++) {
		off = (i * 97 + 5) * SZ_4K % hpage;
		vm_mem_set_shared(g->vm, g->gpa + off, SZ_4K);
		punch(g, off, SZ_4K);
		vm_mem_set_private(g->vm, g->gpa + off, SZ_4K);
	}
}

TEST_F_TIMEOUT(gmem_direct_map, no_direct_map_life, 900)
{
	const size_t hpage = variant->page_size;
	const u64 nr = variant->nr_folios, size = nr * hpage;
	const u64 subpages = hpage / SZ_4K;
	const struct gmem_guest_args args = { no_direct_map(hpage), size };
	struct gmem_events ev = {};
	u64 pfn0, pfn1 = 0, removes = nr, dummy;
	struct dm_state end;

	if (!gmem_rmp_model_get("violations", &dummy))
		SKIP(return, "no kvm-rmp-model/host_read (CONFIG_KVM_SW_PROTECTED_VM_RMP_MODEL)");
	if (!gmem_need_hugepages(_metadata, hpage, &self->base, nr))
		return;
	memset(punched, 0, sizeof(punched));
	dm_read(_metadata, &self->dm);
	dm_log(_metadata, "before", &self->dm, &self->dm);

	gmem_guest_create(&self->g, guest_code, &args);
	vcpu_args_set(self->g.vcpu, 2, self->g.gpa, size);
	sync_global_to_guest(self->g.vm, punched);
	/*
	 * Launch writes through the direct map: refused before anything is
	 * allocated (the VM launches through the RMP model in SNP mode).
	 */
	if (gmem_rmp_model_snp())
		ASSERT_EQ(EOPNOTSUPP, gmem_rmp_model_launch(self->g.vm, self->g.gpa, 1, NULL));
	hugetlb_pool_assert(hpage, &self->base, 0, (long)nr, "created");
	check_no_4k(0, 0, "created");

	/* Fill: every folio is allocated and leaves the direct map. */
	gmem_trace_start(GMEM_TRACE_PREPARE);
	gmem_guest_run(self->g.vcpu, STAGE_FILLED);
	gmem_trace_stop();
	ASSERT_EQ(0, gmem_trace_read(&ev)) TH_LOG("trace events lost");
	hugetlb_pool_assert(hpage, &self->base, -(long)nr, 0, "filled");
	check_no_4k(nr, 0, "filled");
	pfn0 = traced_pfn(&ev, 0);
	ASSERT_NE(0, pfn0);
	ASSERT_EQ(-EFAULT, gmem_host_read(pfn0))
		TH_LOG("the host reads guest memory at pfn 0x%lx", pfn0);
	ASSERT_EQ(-EFAULT, gmem_host_read(pfn0 + subpages - 1));
	if (nr > 1) {
		pfn1 = traced_pfn(&ev, subpages);
		ASSERT_NE(0, pfn1);
		ASSERT_EQ(-EFAULT, gmem_host_read(pfn1));
	}
	gmem_events_free(&ev);

	/* Punched subpages are zeroed without the direct map, then refilled. */
	punch_storm(&self->g, hpage, 0);
	check_round(&self->g);
	check_no_4k(nr, 0, "punch storm and refill");
	ASSERT_EQ(-EFAULT, gmem_host_read(pfn0 + 1));

	memset(punched, 0, sizeof(punched));
	conversions(&self->g, hpage);
	check_round(&self->g);
	check_no_4k(nr, 0, "conversions");

	/*
	 * A folio punched whole, 4K by 4K, returns to the pool wiped and in
	 * the direct map; the guest's next touch allocates a new one.
	 */
	memset(punched, 0, sizeof(punched));
	if (nr > 1) {
		u64 off;

		for (off = hpage; off < 2 * hpage; off += SZ_4K)
			punch(&self->g, off, SZ_4K);
		check_no_4k(nr, 1, "folio 1 punched whole");
		hugetlb_pool_assert(hpage, &self->base, -(long)nr + 1, 0,
				    "folio 1 punched whole");
		/* The last punch frees the folio without zeroing its page. */
		ASSERT_EQ(0, gmem_host_read(pfn1 + subpages - 1))
			TH_LOG("a freed folio is not in the direct map, or not wiped");
		check_round(&self->g);
		removes++;
		check_no_4k(removes, 1, "folio 1 refaulted");
	}

	gmem_guest_destroy(&self->g);
	dm_read(_metadata, &end);
	dm_log(_metadata, "after close", &end, &self->dm);
	hugetlb_pool_assert(hpage, &self->base, 0, 0, "after close");
	ASSERT_EQ(removes, end.vm[REMOVES] - self->dm.vm[REMOVES]);
	ASSERT_EQ(removes, end.vm[RESTORES] - self->dm.vm[RESTORES])
		TH_LOG("every folio removed from the direct map is restored");
	ASSERT_EQ(0, gmem_host_read(pfn0))
		TH_LOG("a freed folio is not in the direct map, or not wiped");
	ASSERT_EQ(0, memcmp(self->dm.kb, end.kb, sizeof(end.kb)))
		TH_LOG("DirectMap4k/2M/1G differ after close");
	ASSERT_EQ(self->dm.vm[SPLITS_2M], end.vm[SPLITS_2M]);
}

/*
 * Under the RMP model in SEV-SNP mode, without NO_DIRECT_MAP: the 4K RMP
 * updates of a punch storm, its refill and conversions split the direct
 * map to 4K; the reclaim of a 2M block and close map it large again.
 */
TEST_F_TIMEOUT(gmem_direct_map, rmp_model_restore, 900)
{
	const size_t hpage = variant->page_size;
	const u64 nr = variant->nr_folios > 2 ? 2 : variant->nr_folios;
	const u64 size = nr * hpage;
	const struct gmem_guest_args args = {
		guest_memfd_hugetlb_backing(hpage), size,
	};
	u64 v0, v, splits0, splits;
	struct dm_state mid, punched2m, end;

	if (!gmem_rmp_model_get("violations", &v0) || !gmem_rmp_model_set("snp"))
		SKIP(return, "no RMP model (CONFIG_KVM_SW_PROTECTED_VM_RMP_MODEL)");
	if (!gmem_need_hugepages(_metadata, hpage, &self->base, nr))
		return;
	ASSERT_TRUE(gmem_rmp_model_get("direct_map_splits", &splits0));
	memset(punched, 0, sizeof(punched));
	dm_read(_metadata, &self->dm);
	dm_log(_metadata, "before", &self->dm, &self->dm);

	gmem_guest_create(&self->g, guest_code, &args);
	gmem_rmp_model_set(NULL);
	vcpu_args_set(self->g.vcpu, 2, self->g.gpa, size);
	sync_global_to_guest(self->g.vm, punched);
	gmem_guest_run(self->g.vcpu, STAGE_FILLED);

	punch_storm(&self->g, hpage, 0);
	check_round(&self->g);
	memset(punched, 0, sizeof(punched));
	conversions(&self->g, hpage);
	check_round(&self->g);

	/* The 4K updates split the direct map, as SNP's do. */
	ASSERT_TRUE(gmem_rmp_model_get("direct_map_splits", &splits));
	dm_read(_metadata, &mid);
	dm_log(_metadata, "after the storm", &mid, &self->dm);
	ASSERT_LT(splits0, splits) TH_LOG("no 4K RMP update split the direct map");
	ASSERT_LT(self->dm.kb[0], mid.kb[0]);

	/*
	 * The reclaim of a whole 2M block (the first, split around the
	 * refilled subpage 1) maps its region large at once, not at close.
	 */
	punch(&self->g, 0, SZ_2M);
	dm_read(_metadata, &punched2m);
	dm_log(_metadata, "after a 2M punch", &punched2m, &self->dm);
	ASSERT_LT(mid.vm[COLLAPSES_2M], punched2m.vm[COLLAPSES_2M])
		TH_LOG("the reclaim of a 2M block left its region split");

	gmem_guest_destroy(&self->g);
	dm_read(_metadata, &end);
	dm_log(_metadata, "after close", &end, &self->dm);
	hugetlb_pool_assert(hpage, &self->base, 0, 0, "after close");
	ASSERT_TRUE(gmem_rmp_model_get("violations", &v));
	ASSERT_EQ(v0, v) TH_LOG("the RMP model saw violations");
	ASSERT_LT(self->dm.vm[COLLAPSES_2M], end.vm[COLLAPSES_2M])
		TH_LOG("no 2M collapse restored the direct map");
	if (mid.kb[2] < self->dm.kb[2])
		ASSERT_LT(self->dm.vm[COLLAPSES_1G], end.vm[COLLAPSES_1G])
			TH_LOG("no 1G collapse restored the direct map");
	ASSERT_EQ(0, memcmp(self->dm.kb, end.kb, sizeof(end.kb)))
		TH_LOG("DirectMap4k/2M/1G differ after close");
}

TEST_HARNESS_MAIN
