// SPDX-License-Identifier: GPL-2.0-only
/*
 * A memory error in a hugetlb guest_memfd folio costs its 4 KiB page: the
 * error is handled (corrupt-pfn succeeds, for a second page of the same
 * folio too), the guest's access to the poisoned page exits with
 * EHWPOISON at its gpa, and every other subpage keeps its data and stays
 * usable.
 *
 * Injects with debugfs hwpoison/corrupt-pfn (CONFIG_HWPOISON_INJECT); the
 * folio's pfn comes from the kvm_gmem_prepare tracepoint.  A poisoned folio
 * never returns to the pool (memory_failure() keeps its reference): after
 * the file is closed the pool has exactly one free hugepage less.  Each
 * case prints that loss as "pool-loss: KB N" for the runner's pool check,
 * and the test runs last.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gmem_hugetlb_harness.h"
#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#define CORRUPT_PFN	"/sys/kernel/debug/hwpoison/corrupt-pfn"

#define PATTERN(off)	(0x6b6bb6b600000000ULL ^ (off))

enum { FILL = 1, CHECK, READ };

#define MAX_POISONED	4
static u64 poisoned[MAX_POISONED];
static u64 nr_poisoned;

static bool is_poisoned(u64 off)
{
	u64 i;

	for (i = 0; i < READ_ONCE(nr_poisoned); i++) {
		if (READ_ONCE(poisoned[i]) == off)
			return true;
	}
	return false;
}

/*
 * FILL: write the first word of every subpage.  CHECK: read back every
 * subpage but the poisoned ones.  READ: read the subpage at @off.
 */
static void guest_code(u64 gpa, u64 size, u64 mode, u64 off)
{
	u64 o;

	switch (mode) {
	case FILL:
		for (o = 0; o < size; o += SZ_4K)
			*(u64 *)(gpa + o) = PATTERN(o);
		break;
	case CHECK:
		for (o = 0; o < size; o += SZ_4K) {
			if (!is_poisoned(o))
				GUEST_ASSERT_EQ(*(u64 *)(gpa + o), PATTERN(o));
		}
		break;
	case READ:
		(void)READ_ONCE(*(u64 *)(gpa + off));
		break;
	}
	GUEST_SYNC(mode);
}

/* Run the guest from its entry point in @mode. */
static void guest_do(struct gmem_guest *g, u64 mode, u64 off)
{
	vcpu_arch_set_entry_point(g->vcpu, guest_code);
	vcpu_args_set(g->vcpu, 4, g->gpa, g->size, mode, off);
	gmem_guest_run(g->vcpu, mode);
}

/* The guest's read of @off must exit with EHWPOISON at its gpa. */
static void expect_poison_exit(struct gmem_guest *g, u64 off)
{
	struct kvm_run *run = g->vcpu->run;
	int r;

	vcpu_arch_set_entry_point(g->vcpu, guest_code);
	vcpu_args_set(g->vcpu, 4, g->gpa, g->size, READ, off);
	r = _vcpu_run(g->vcpu);
	TEST_ASSERT(r == -1 && errno == EHWPOISON,
		    "the guest's read of poisoned offset 0x%lx: KVM_RUN %d (%s), exit %u",
		    off, r, r ? strerror(errno) : "ok", run->exit_reason);
	TEST_ASSERT(run->exit_reason == KVM_EXIT_MEMORY_FAULT &&
		    run->memory_fault.gpa == (g->gpa + off) / SZ_4K * SZ_4K,
		    "exit %u at gpa 0x%llx, expected a memory fault at 0x%lx",
		    run->exit_reason, run->memory_fault.gpa, g->gpa + off);
}

/* The pfn of file index 0, from the prepare events of the guest's fill. */
static u64 fill_for_pfn(struct gmem_guest *g)
{
	struct gmem_events ev = {};
	u64 pfn = 0, i;

	gmem_trace_start(GMEM_TRACE_PREPARE);
	guest_do(g, FILL, 0);
	TEST_ASSERT(!gmem_trace_read(&ev), "the trace buffer lost events");
	gmem_trace_stop();
	/* The file is one folio: each block's pfn is at the same distance. */
	for (i = 0; i < ev.nr; i++) {
		if (ev.ev[i].kind != GMEM_PREPARE)
			continue;
		TEST_ASSERT(!pfn || pfn == ev.ev[i].pfn - ev.ev[i].index,
			    "prepare events of one folio at different distances");
		pfn = ev.ev[i].pfn - ev.ev[i].index;
	}
	gmem_events_free(&ev);
	TEST_ASSERT(pfn, "no kvm_gmem_prepare event");
	return pfn;
}

/* Write @pfn to corrupt-pfn; 0 or the errno of the write. */
static int corrupt_pfn(u64 pfn)
{
	char buf[32];
	int fd, n, err = 0;

	fd = open(CORRUPT_PFN, O_WRONLY);
	TEST_ASSERT(fd >= 0, "open %s: %s", CORRUPT_PFN, strerror(errno));
	n = snprintf(buf, sizeof(buf), "0x%lx\n", pfn);
	if (write(fd, buf, n) != n)
		err = errno;
	close(fd);
	return err;
}

FIXTURE(gmem_hwpoison) {
	struct hugetlb_pool base;
	struct gmem_guest g;
	u64 pfn;
};

FIXTURE_VARIANT(gmem_hwpoison) {
	size_t page_size;
};

FIXTURE_VARIANT_ADD(gmem_hwpoison, 2M) {
	.page_size = SZ_2M,
};

FIXTURE_VARIANT_ADD(gmem_hwpoison, 1G) {
	.page_size = SZ_1G,
};

FIXTURE_SETUP(gmem_hwpoison)
{
	struct gmem_guest_args args = {
		.backing = guest_memfd_hugetlb_backing(variant->page_size),
		.file_size = variant->page_size,
	};

	if (!gmem_hugetlb_require(_metadata, variant->page_size))
		return;
	if (access(CORRUPT_PFN, W_OK))
		SKIP(return, "no %s (CONFIG_HWPOISON_INJECT)", CORRUPT_PFN);
	if (!gmem_trace_available(GMEM_TRACE_PREPARE))
		SKIP(return, "no kvm_gmem_prepare tracepoint");
	ASSERT_TRUE(hugetlb_pool_read(variant->page_size, &self->base));
	if (!gmem_need_hugepages(_metadata, variant->page_size, &self->base, 1))
		return;
	nr_poisoned = 0;
	gmem_guest_create(&self->g, guest_code, &args);
	self->pfn = fill_for_pfn(&self->g);
}

FIXTURE_TEARDOWN(gmem_hwpoison)
{
	struct hugetlb_pool now;

	if (!self->g.vm)
		return;
	gmem_guest_destroy(&self->g);
	TEST_ASSERT(hugetlb_pool_read(variant->page_size, &now), "no pool");
	/* "pool-loss: KB N": N free pages of KB kB are gone for good. */
	if (nr_poisoned)
		printf("pool-loss: %zu %ld\n", variant->page_size >> 10,
		       (long)(self->base.free - now.free));
	/* The poisoned folio, and only it, never returns to the pool. */
	TEST_ASSERT(now.free + !!nr_poisoned == self->base.free &&
		    now.resv == self->base.resv,
		    "pool free %lu resv %lu after close, was %lu and %lu: expected %lu fewer free",
		    now.free, now.resv, self->base.free, self->base.resv, !!nr_poisoned);
}

/* Poison the subpage at @off; the error must be handled. */
static void poison(struct __test_metadata *_metadata, struct gmem_guest *g, u64 pfn, u64 off)
{
	int err = corrupt_pfn(pfn + off / SZ_4K);

	ASSERT_EQ(0, err) TH_LOG("corrupt-pfn of offset 0x%lx (pfn 0x%lx): %s",
				 off, pfn + off / SZ_4K, strerror(err));
	poisoned[nr_poisoned++] = off;
	sync_global_to_guest(g->vm, poisoned);
	sync_global_to_guest(g->vm, nr_poisoned);
}

/*
 * One error: the poisoned subpage exits with EHWPOISON, every other one
 * keeps its data.
 */
TEST_F_TIMEOUT(gmem_hwpoison, error_costs_one_subpage, 300)
{
	const u64 off = variant->page_size / 2 + 3 * SZ_4K;

	poison(_metadata, &self->g, self->pfn, off);
	guest_do(&self->g, CHECK, 0);
	expect_poison_exit(&self->g, off);
	guest_do(&self->g, CHECK, 0);
}

/*
 * A second error in a folio whose first one is handled is handled too:
 * both subpages exit with EHWPOISON, every other one keeps its data.
 */
TEST_F_TIMEOUT(gmem_hwpoison, second_error_in_folio, 300)
{
	const u64 a = SZ_4K, b = variant->page_size - SZ_4K;

	poison(_metadata, &self->g, self->pfn, a);
	guest_do(&self->g, CHECK, 0);
	poison(_metadata, &self->g, self->pfn, b);
	guest_do(&self->g, CHECK, 0);
	expect_poison_exit(&self->g, a);
	expect_poison_exit(&self->g, b);
	guest_do(&self->g, CHECK, 0);
}

TEST_HARNESS_MAIN
