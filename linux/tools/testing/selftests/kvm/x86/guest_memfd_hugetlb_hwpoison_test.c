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
 * never returns to the pool, whether or not memory_failure() holds it (an
 * error during the folio's allocation leaves no reference of its own):
 * after the file is closed, unpoison-pfn of the folio fails, the pool has
 * exactly one free hugepage less per poisoned folio, a mapping of every
 * free hugepage never gets it, and the cgroup that was charged for the
 * file is charged for nothing any more.  Each case prints the pool's loss
 * as "pool-loss: KB N" for the runner's pool check, and the test runs last.
 *
 * A page the architecture fails to take back from the guest (SEV-SNP: a
 * failed RMPUPDATE to shared) is treated the same way: the cases
 * reclaim_fails_* make the RMP model (kvm.rmp_model=snp) fail its updates
 * (fail_make_shared) and expect the pages they leave assigned to be
 * poisoned, never zeroed, mapped or freed again; launch_reclaim_fails does
 * the same to a page whose launch failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "gmem_hugetlb_harness.h"
#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#define CORRUPT_PFN	"/sys/kernel/debug/hwpoison/corrupt-pfn"
#define UNPOISON_PFN	"/sys/kernel/debug/hwpoison/unpoison-pfn"

#define PATTERN(off)	(0x6b6bb6b600000000ULL ^ (off))

enum { FILL = 1, CHECK, READ };

#define MAX_POISONED	64
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
 * FILL: write the first word of every subpage but the poisoned ones.
 * CHECK: read them back.  READ: read the subpage at @off.
 */
static void guest_code(u64 gpa, u64 size, u64 mode, u64 off)
{
	u64 o;

	switch (mode) {
	case FILL:
		for (o = 0; o < size; o += SZ_4K) {
			if (!is_poisoned(o))
				*(u64 *)(gpa + o) = PATTERN(o);
		}
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

/* Run the guest from its entry point in @mode, on its first @size bytes. */
static void guest_do_size(struct gmem_guest *g, u64 size, u64 mode, u64 off)
{
	vcpu_arch_set_entry_point(g->vcpu, guest_code);
	vcpu_args_set(g->vcpu, 4, g->gpa, size, mode, off);
	gmem_guest_run(g->vcpu, mode);
}

static void guest_do(struct gmem_guest *g, u64 mode, u64 off)
{
	guest_do_size(g, g->size, mode, off);
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

/*
 * The pfn of file index 0, from the prepare events of the guest's fill of
 * the folio of @folio_size there.
 */
static u64 fill_folio_for_pfn(struct gmem_guest *g, u64 folio_size)
{
	struct gmem_events ev = {};
	u64 pfn = 0, i;

	gmem_trace_start(GMEM_TRACE_PREPARE);
	guest_do_size(g, folio_size, FILL, 0);
	TEST_ASSERT(!gmem_trace_read(&ev), "the trace buffer lost events");
	gmem_trace_stop();
	/* In one folio, each block's pfn is at the same distance. */
	for (i = 0; i < ev.nr; i++) {
		if (ev.ev[i].kind != GMEM_PREPARE ||
		    ev.ev[i].index >= folio_size / SZ_4K)
			continue;
		TEST_ASSERT(!pfn || pfn == ev.ev[i].pfn - ev.ev[i].index,
			    "prepare events of one folio at different distances");
		pfn = ev.ev[i].pfn - ev.ev[i].index;
	}
	gmem_events_free(&ev);
	TEST_ASSERT(pfn, "no kvm_gmem_prepare event");
	return pfn;
}

static u64 fill_for_pfn(struct gmem_guest *g)
{
	return fill_folio_for_pfn(g, g->size);
}

/* Write @pfn to an open hwpoison file; 0 or the errno of the write. */
static int hwpoison_write_fd(int fd, u64 pfn)
{
	char buf[32];
	int n;

	n = snprintf(buf, sizeof(buf), "0x%lx\n", pfn);
	return write(fd, buf, n) == n ? 0 : errno;
}

static int hwpoison_write(const char *path, u64 pfn)
{
	int fd, err;

	fd = open(path, O_WRONLY);
	TEST_ASSERT(fd >= 0, "open %s: %s", path, strerror(errno));
	err = hwpoison_write_fd(fd, pfn);
	close(fd);
	return err;
}

static int corrupt_pfn(u64 pfn)
{
	return hwpoison_write(CORRUPT_PFN, pfn);
}

/* Head pfns of the folios that left the file poisoned. */
#define MAX_KEPT	16
static u64 kept[MAX_KEPT];
static int nr_kept;

static void keep_pfn(u64 pfn)
{
	int i;

	for (i = 0; i < nr_kept; i++) {
		if (kept[i] == pfn)
			return;
	}
	TEST_ASSERT(nr_kept < MAX_KEPT, "too many poisoned folios");
	kept[nr_kept++] = pfn;
}

/*
 * Once its file is closed, a poisoned folio stays out of the pool: not
 * unpoisoned, never handed out by the pool.  Map free hugepages of the
 * pool (the pool hands out the one freed last first, so a few suffice)
 * and look for it.
 */
static void check_kept_out(size_t page_size)
{
	const u64 nr_pfns = page_size / SZ_4K;
	struct hugetlb_pool pool;
	u64 i, n, entry;
	char *mem;
	int fd, k, err;

	for (k = 0; k < nr_kept; k++) {
		err = hwpoison_write(UNPOISON_PFN, kept[k]);
		TEST_ASSERT(err == EBUSY,
			    "unpoison-pfn of the closed file's poisoned folio 0x%lx: %s, expected EBUSY",
			    kept[k], err ? strerror(err) : "done");
	}

	TEST_ASSERT(hugetlb_pool_read(page_size, &pool), "no pool");
	n = min_t(u64, hugetlb_pool_unreserved(&pool), 16);
	if (!n)
		return;
	mem = mmap(NULL, n * page_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE |
		   (__builtin_ctzl(page_size) << MAP_HUGE_SHIFT), -1, 0);
	TEST_ASSERT(mem != MAP_FAILED, "mmap of %lu free hugepages: %s",
		    n, strerror(errno));
	fd = open("/proc/self/pagemap", O_RDONLY);
	TEST_ASSERT(fd >= 0, "open pagemap: %s", strerror(errno));
	for (i = 0; i < n; i++) {
		u64 vpn = ((unsigned long)mem + i * page_size) / SZ_4K;
		u64 pfn;

		TEST_ASSERT(pread(fd, &entry, sizeof(entry), vpn * 8) == sizeof(entry),
			    "pagemap: %s", strerror(errno));
		TEST_ASSERT(entry >> 63,
			    "free hugepage %lu of %lu could not be allocated", i, n);
		pfn = entry & GENMASK_ULL(54, 0);
		for (k = 0; k < nr_kept; k++)
			TEST_ASSERT(pfn < kept[k] || pfn >= kept[k] + nr_pfns,
				    "the pool handed out the poisoned folio 0x%lx", kept[k]);
	}
	close(fd);
	munmap(mem, n * page_size);
}

/*
 * After close: print the pool's loss ("pool-loss: KB N": N free pages of
 * KB kB are gone for good) and check that the poisoned folios, and only
 * they, never return to the pool.
 */
static void check_pool_after_close(size_t page_size,
				   const struct hugetlb_pool *base)
{
	struct hugetlb_pool now;

	TEST_ASSERT(hugetlb_pool_read(page_size, &now), "no pool");
	if (nr_kept)
		printf("pool-loss: %zu %ld\n", page_size >> 10,
		       (long)(base->free - now.free));
	TEST_ASSERT(now.free + nr_kept == base->free && now.resv == base->resv,
		    "pool free %lu resv %lu after close, was %lu and %lu: expected %d fewer free",
		    now.free, now.resv, base->free, base->resv, nr_kept);
	check_kept_out(page_size);
}

/*
 * What every case needs: hugetlb guest_memfd, hwpoison injection, the
 * prepare tracepoint (for pfns) and @nr free hugepages.
 */
static bool hwpoison_require(struct __test_metadata *_metadata,
			     size_t page_size, struct hugetlb_pool *base, u64 nr)
{
	if (!gmem_hugetlb_require(_metadata, page_size))
		return false;
	if (access(CORRUPT_PFN, W_OK))
		SKIP(return false, "no %s (CONFIG_HWPOISON_INJECT)", CORRUPT_PFN);
	if (!gmem_trace_available(GMEM_TRACE_PREPARE))
		SKIP(return false, "no kvm_gmem_prepare tracepoint");
	TEST_ASSERT(hugetlb_pool_read(page_size, base), "no pool");
	return gmem_need_hugepages(_metadata, page_size, base, nr);
}

/* RMP model cases: pages left assigned, to be leaked by close. */
struct rmp_lost {
	bool on;
	u64 lost, leaked0, corrupted0;
};

FIXTURE(gmem_hwpoison) {
	struct hugetlb_pool base;
	struct hugetlb_cgroup cg;
	u64 rsvd0, usage0;
	struct gmem_guest g;
	u64 pfn;
	struct rmp_lost rmp;
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
	const char *why;

	if (!hwpoison_require(_metadata, variant->page_size, &self->base, 1))
		return;
	why = hugetlb_cgroup_enter(&self->cg, variant->page_size);
	if (why) {
		hugetlb_cgroup_remove(&self->cg);
		SKIP(return, "%s", why);
	}
	self->rsvd0 = hugetlb_cgroup_rsvd(&self->cg);
	self->usage0 = hugetlb_cgroup_usage(&self->cg);
	nr_poisoned = 0;
	nr_kept = 0;
	gmem_guest_create(&self->g, guest_code, &args);
	self->pfn = fill_for_pfn(&self->g);
}

/* HardwareCorrupted of /proc/meminfo, in kB. */
static u64 hardware_corrupted_kb(void)
{
	char line[128];
	u64 kb = 0;
	FILE *f;

	f = fopen("/proc/meminfo", "r");
	TEST_ASSERT(f, "open /proc/meminfo: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "HardwareCorrupted: %lu kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

FIXTURE_TEARDOWN(gmem_hwpoison)
{
	u64 leaked = 0;

	if (!self->g.vm)
		return;
	gmem_guest_destroy(&self->g);
	if (self->rmp.on) {
		struct rmp_lost *r = &self->rmp;

		/* The model's final calls found exactly the lost pages assigned. */
		TEST_ASSERT(gmem_rmp_model_get("leaked", &leaked), "no RMP model");
		TEST_ASSERT(leaked - r->leaked0 == r->lost,
			    "RMP model leaked %lu pages at close (%lu, was %lu), expected %lu",
			    leaked - r->leaked0, leaked, r->leaked0, r->lost);
		TEST_ASSERT(hardware_corrupted_kb() - r->corrupted0 == r->lost * 4,
			    "HardwareCorrupted grew by %lu kB, expected %lu",
			    hardware_corrupted_kb() - r->corrupted0, r->lost * 4);
	}
	check_pool_after_close(variant->page_size, &self->base);
	/* Nor is anything charged for them. */
	TEST_ASSERT(hugetlb_cgroup_rsvd(&self->cg) == self->rsvd0 &&
		    hugetlb_cgroup_usage(&self->cg) == self->usage0,
		    "cgroup rsvd %lu usage %lu after close, was %lu and %lu",
		    hugetlb_cgroup_rsvd(&self->cg), hugetlb_cgroup_usage(&self->cg),
		    self->rsvd0, self->usage0);
	hugetlb_cgroup_leave(&self->cg);
	hugetlb_cgroup_remove(&self->cg);
}

/* Poison the subpage at @off; the error must be handled. */
static void poison(struct __test_metadata *_metadata, struct gmem_guest *g, u64 pfn, u64 off)
{
	int err = corrupt_pfn(pfn + off / SZ_4K);

	ASSERT_EQ(0, err) TH_LOG("corrupt-pfn of offset 0x%lx (pfn 0x%lx): %s",
				 off, pfn + off / SZ_4K, strerror(err));
	keep_pfn(pfn);
	poisoned[nr_poisoned++] = off;
	sync_global_to_guest(g->vm, poisoned);
	sync_global_to_guest(g->vm, nr_poisoned);
}

/*
 * Each case loses its hugepage for good, and the test VM has four of 1G:
 * the cases that race an error with an allocation come first, and on 1G
 * only error_during_allocation (up to two pages), second_error_in_folio
 * and reclaim_fails_on_close run (the others are the same on 2M).
 */
#define FAIL_NTH_PATH	"/proc/thread-self/fail-nth"
#define FAILSLAB_WAIT	"/sys/kernel/debug/failslab/ignore-gfp-wait"
#define FAILSLAB_VERBOSE	"/sys/kernel/debug/failslab/verbose"

/* 0, or the errno of writing @val to @path. */
static int write_str(const char *path, const char *val)
{
	int fd, err = 0;

	fd = open(path, O_WRONLY);
	if (fd < 0)
		return errno;
	if (write(fd, val, strlen(val)) != (ssize_t)strlen(val))
		err = errno;
	close(fd);
	return err;
}

/*
 * Arm the calling thread's fail-nth through @fd, open already: opening a
 * file allocates, and would take the injection.
 */
static void set_fail_nth(int fd, int nth)
{
	char buf[16];
	int n = snprintf(buf, sizeof(buf), "%d", nth);

	TEST_ASSERT(pwrite(fd, buf, n, 0) == n, "fail-nth %d: %s", nth,
		    strerror(errno));
}

/* The calling thread's fail-nth: 0 once its injection fired. */
static int read_fail_nth(int fd)
{
	char buf[16] = "";

	TEST_ASSERT(pread(fd, buf, sizeof(buf) - 1, 0) > 0, "read %s: %s",
		    FAIL_NTH_PATH, strerror(errno));
	return atoi(buf);
}

/*
 * Errors recorded while allocations fail: memory_failure() allocates its
 * record of a raw page before hugetlb_lock, where it may sleep, and falls
 * back to an atomic allocation under the lock, so one failing allocation
 * loses no record and the other subpages stay usable (with the record
 * lost, every subpage of the folio would count as poisoned).  The Nth
 * slab allocation of each injection fails (failslab for every allocation,
 * ignore-gfp-wait off), for N = 1 to 4; at least one injection must have
 * fired.  The record does not depend on the page size: 2M only.
 */
TEST_F_TIMEOUT(gmem_hwpoison, error_while_allocations_fail, 300)
{
	int nth, err, fired = 0, nth_fd, corrupt_fd;

	if (variant->page_size != SZ_2M)
		SKIP(return, "the same on 2M");
	if (write_str(FAIL_NTH_PATH, "0") || access(FAILSLAB_WAIT, W_OK))
		SKIP(return, "no fail-nth or failslab (CONFIG_FAILSLAB, debugfs)");
	ASSERT_EQ(0, write_str(FAILSLAB_WAIT, "N"));
	ASSERT_EQ(0, write_str(FAILSLAB_VERBOSE, "0"));
	nth_fd = open(FAIL_NTH_PATH, O_RDWR);
	corrupt_fd = open(CORRUPT_PFN, O_WRONLY);
	ASSERT_TRUE(nth_fd >= 0 && corrupt_fd >= 0);
	/* The VM runner accepts allocation failure reports in this window. */
	write_str("/dev/kmsg", "fault-injection: begin\n");
	for (nth = 1; nth <= 4; nth++) {
		u64 off = nth * 3 * SZ_4K;

		set_fail_nth(nth_fd, nth);
		err = hwpoison_write_fd(corrupt_fd, self->pfn + off / SZ_4K);
		fired += !read_fail_nth(nth_fd);
		set_fail_nth(nth_fd, 0);
		ASSERT_EQ(0, err) TH_LOG("corrupt-pfn with fail-nth %d: %s", nth,
					 strerror(err));
		keep_pfn(self->pfn);
		poisoned[nr_poisoned++] = off;
		sync_global_to_guest(self->g.vm, poisoned);
		sync_global_to_guest(self->g.vm, nr_poisoned);
		guest_do(&self->g, CHECK, 0);
		expect_poison_exit(&self->g, off);
	}
	write_str("/dev/kmsg", "fault-injection: end\n");
	close(corrupt_fd);
	close(nth_fd);
	write_str(FAILSLAB_WAIT, "Y");
	ASSERT_LT(0, fired) TH_LOG("no allocation failed in the injections");
}

struct alloc_race {
	int fd;
	size_t size;
	bool done;		/* fallocate() returned */
	int err;		/* fallocate()'s errno */
};

static void *alloc_thread(void *data)
{
	struct alloc_race *r = data;

	r->err = __gmem_fallocate(r->fd, false, 0, r->size);
	WRITE_ONCE(r->done, true);
	return NULL;
}

/*
 * An error that lands while the folio is allocated and zeroed, before it
 * is guest_memfd's: memory_failure() records it and keeps no reference
 * (corrupt-pfn fails with EBUSY).  The folio enters the file anyway; its
 * poisoned subpage exits with EHWPOISON, every other one works, and the
 * folio stays out of the pool after close.
 *
 * The pool hands out the hugepage freed last: a whole punch frees the
 * file's folio, whose pfn is known, and the next allocation takes it back
 * while the injecting thread watches free_hugepages.  A round whose error
 * came too late (corrupt-pfn succeeded: the folio was guest_memfd's
 * already) poisoned a folio as the other cases do; it is punched out and
 * kept, and the next round tries again with the next one.
 */
TEST_F_TIMEOUT(gmem_hwpoison, error_during_allocation, 600)
{
	const u64 off = 5 * SZ_4K;
	struct hugetlb_pool_reader pr;
	int round, err = 0, rounds = variant->page_size == SZ_1G ? 2 : 32;
	bool hit = false;

	hugetlb_pool_reader_open(&pr, variant->page_size);
	for (round = 0; round < rounds && !hit; round++) {
		struct alloc_race r = { self->g.fd, variant->page_size };
		u64 free0, free, resv;
		pthread_t t;

		if (round) {
			/* Out with the folio the last round poisoned. */
			gmem_punch(self->g.fd, 0, variant->page_size);
			self->pfn = fill_for_pfn(&self->g);
		}
		gmem_punch(self->g.fd, 0, variant->page_size);
		hugetlb_pool_reader_read(&pr, &free0, &resv);
		pthread_create(&t, NULL, alloc_thread, &r);
		do {
			hugetlb_pool_reader_read(&pr, &free, &resv);
		} while (free >= free0 && !READ_ONCE(r.done));
		err = corrupt_pfn(self->pfn + off / SZ_4K);
		/*
		 * EBUSY: memory_failure() found the folio in use and not yet
		 * guest_memfd's (its retry path), so during the allocation.
		 */
		hit = err == EBUSY;
		pthread_join(t, NULL);
		ASSERT_EQ(0, r.err) TH_LOG("fallocate: %s", strerror(r.err));
		ASSERT_TRUE(hit || !err) TH_LOG("corrupt-pfn: %s", strerror(err));
		/* Kept in either case: it left the file poisoned or will. */
		keep_pfn(self->pfn);
		ksft_print_msg("round %d: corrupt-pfn %s\n", round,
			       hit ? "failed with EBUSY: during the allocation" :
			       "handled: after the allocation");
	}
	hugetlb_pool_reader_close(&pr);
	ASSERT_TRUE(hit) TH_LOG("no error landed during an allocation in %d rounds",
				rounds);

	poisoned[nr_poisoned++] = off;
	sync_global_to_guest(self->g.vm, poisoned);
	sync_global_to_guest(self->g.vm, nr_poisoned);
	/* The poisoned folio is the file's, and only that subpage is lost. */
	ASSERT_EQ(self->pfn, fill_for_pfn(&self->g));
	guest_do(&self->g, CHECK, 0);
	expect_poison_exit(&self->g, off);
	guest_do(&self->g, CHECK, 0);
}

/*
 * One error: the poisoned subpage exits with EHWPOISON, every other one
 * keeps its data.
 */
TEST_F_TIMEOUT(gmem_hwpoison, error_costs_one_subpage, 300)
{
	const u64 off = variant->page_size / 2 + 3 * SZ_4K;

	/* Each case costs a hugepage: the test VM has four of 1G. */
	if (variant->page_size > SZ_2M)
		SKIP(return, "second_error_in_folio makes a first error on 1G");
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

/*
 * For the reclaim_fails_* cases: the VM must get SEV-SNP's rules from the
 * RMP model, whose next @fail RMP updates to shared are made to fail.
 */
static bool rmp_fail_setup(struct __test_metadata *_metadata,
			   struct rmp_lost *r, u64 fail)
{
	u64 left;

	if (!gmem_rmp_model_snp() || !gmem_rmp_model_get("leaked", &r->leaked0))
		SKIP(return false, "the VM has no RMP model (kvm.rmp_model=snp)");
	r->on = true;
	r->corrupted0 = hardware_corrupted_kb();
	gmem_rmp_model_put("fail_make_shared", fail);
	TEST_ASSERT(gmem_rmp_model_get("fail_make_shared", &left) && left == fail,
		    "fail_make_shared %lu, wrote %lu", left, fail);
	return true;
}

/* A page left assigned at @off of the folio at @pfn: poisoned for good. */
static void rmp_lost(struct rmp_lost *r, struct gmem_guest *g, u64 pfn,
		     u64 off)
{
	r->lost++;
	keep_pfn(pfn);
	poisoned[nr_poisoned++] = off;
	sync_global_to_guest(g->vm, poisoned);
	sync_global_to_guest(g->vm, nr_poisoned);
}

/*
 * A 4K punch whose RMP update to shared fails: the punch succeeds, the
 * page stays the guest's and is poisoned (never zeroed or mapped again,
 * its folio kept at close); every other subpage keeps its data.
 */
TEST_F_TIMEOUT(gmem_hwpoison, reclaim_fails_on_punch, 300)
{
	const u64 off = variant->page_size / 2 + 3 * SZ_4K;
	u64 left;

	/* One 4K page of a 2M RMP region: 1G would only cost a gigabyte. */
	if (variant->page_size > SZ_2M)
		SKIP(return, "the same on 2M");
	if (!rmp_fail_setup(_metadata, &self->rmp, 1))
		return;
	gmem_punch(self->g.fd, off, SZ_4K);
	ASSERT_TRUE(gmem_rmp_model_get("fail_make_shared", &left));
	ASSERT_EQ(0, left) TH_LOG("the punch made no RMP update to shared");
	rmp_lost(&self->rmp, &self->g, self->pfn, off);
	ASSERT_EQ(4, hardware_corrupted_kb() - self->rmp.corrupted0);
	guest_do(&self->g, CHECK, 0);
	expect_poison_exit(&self->g, off);
	/* A refill of the range does not bring the page back either. */
	gmem_allocate(self->g.fd, off, SZ_4K);
	expect_poison_exit(&self->g, off);
	guest_do(&self->g, CHECK, 0);
}

/*
 * At close the release of the private folio fails: each of its 2M RMP
 * updates fails once, and guest_memfd retries the folio by smaller
 * blocks: 2M blocks (of a 1G folio), whose first fails again, then 4K
 * pages, whose first fails too.  That one page is kept poisoned, with its
 * folio; the others are given back.
 */
TEST_F_TIMEOUT(gmem_hwpoison, reclaim_fails_on_close, 300)
{
	const u64 regions = variant->page_size / SZ_2M;

	if (!rmp_fail_setup(_metadata, &self->rmp, regions + (regions > 1 ? 2 : 1)))
		return;
	guest_do(&self->g, CHECK, 0);
	self->rmp.lost = 1;
	keep_pfn(self->pfn);
}

/*
 * A launch (kvm_gmem_populate(), as SNP_LAUNCH_UPDATE runs it) whose
 * firmware update fails, and whose reclaim by SEV-SNP fails too: the
 * firmware keeps the page, SNP leaks it, assigned, and bugs the VM.
 * guest_memfd's own reclaim of the page fails as well, so the page is
 * poisoned: never zeroed or handed back, its folio kept at close.  The
 * page is one the guest had filled, punched and launched again (the
 * launch refills it).
 */
TEST_F_TIMEOUT(gmem_hwpoison, launch_reclaim_fails, 300)
{
	const u64 off = variant->page_size / 2 + 3 * SZ_4K;
	int r;

	/* One 4K page of a 2M RMP region: 1G would only cost a gigabyte. */
	if (variant->page_size > SZ_2M)
		SKIP(return, "the same on 2M");
	if (!rmp_fail_setup(_metadata, &self->rmp, 0))
		return;
	vm_mem_set_shared(self->g.vm, self->g.gpa + off, SZ_4K);
	gmem_punch(self->g.fd, off, SZ_4K);
	vm_mem_set_private(self->g.vm, self->g.gpa + off, SZ_4K);

	gmem_rmp_model_put("fail_launch_update", 1);
	gmem_rmp_model_put("fail_make_shared", 1);
	ASSERT_EQ(EIO, gmem_rmp_model_launch(self->g.vm, self->g.gpa + off, 1, NULL));
	rmp_lost(&self->rmp, &self->g, self->pfn, off);
	ASSERT_EQ(4, hardware_corrupted_kb() - self->rmp.corrupted0)
		TH_LOG("the page SNP leaked was not kept as poisoned");
	/* SNP bugs the VM: nothing runs or launches any more. */
	r = _vcpu_run(self->g.vcpu);
	ASSERT_TRUE(r == -1 && errno == EIO)
		TH_LOG("KVM_RUN after the leak: %d (%s)", r, r ? strerror(errno) : "ok");
	ASSERT_EQ(EIO, gmem_rmp_model_launch(self->g.vm, self->g.gpa + off + SZ_4K, 1, NULL));
}

/*
 * The zap of an error does not wait for a punch in the same file: with
 * its error handled while a punch of the file's other folios holds the
 * invalidate lock, the guest's read of the poisoned page exits with
 * EHWPOISON rather than reading it through the mapping it had.  Faults on
 * the first folio then wait for the punch (the zap's invalidation range
 * merges with the punch's), so what shows the race was hit is that
 * corrupt-pfn returned before the punch did, and that the vCPU's read
 * faulted and retried while the punch's invalidation was in progress.
 * Each round poisons another subpage of the first folio, after the guest
 * mapped every healthy one; the punch zeroes all but one subpage of each
 * of the two others, and the error is injected as soon as it started.
 */
FIXTURE(gmem_hwpoison_zap) {
	struct hugetlb_pool base;
	struct gmem_guest g;
	u64 pfn;
};

FIXTURE_VARIANT(gmem_hwpoison_zap) {
	size_t page_size;
};

/* 2M only: the 1G pool of the test VM is too small for three more. */
FIXTURE_VARIANT_ADD(gmem_hwpoison_zap, 2M) {
	.page_size = SZ_2M,
};

FIXTURE_SETUP(gmem_hwpoison_zap)
{
	struct gmem_guest_args args = {
		.backing = guest_memfd_hugetlb_backing(variant->page_size),
		.file_size = 3 * variant->page_size,
	};

	if (!hwpoison_require(_metadata, variant->page_size, &self->base, 3))
		return;
	nr_poisoned = 0;
	nr_kept = 0;
	gmem_guest_create(&self->g, guest_code, &args);
	self->pfn = fill_folio_for_pfn(&self->g, variant->page_size);
}

FIXTURE_TEARDOWN(gmem_hwpoison_zap)
{
	if (!self->g.vm)
		return;
	gmem_guest_destroy(&self->g);
	check_pool_after_close(variant->page_size, &self->base);
}

struct punch_race {
	int fd;
	u64 off, len;
	bool started, done;
};

static void *punch_thread(void *data)
{
	struct punch_race *r = data;

	WRITE_ONCE(r->started, true);
	gmem_punch(r->fd, r->off, r->len);
	WRITE_ONCE(r->done, true);
	return NULL;
}

TEST_F_TIMEOUT(gmem_hwpoison_zap, zap_while_punch_holds_lock, 600)
{
	const u64 ps = variant->page_size;
	int round, hits = 0, fd;

	fd = open(CORRUPT_PFN, O_WRONLY);
	ASSERT_LE(0, fd) TH_LOG("open %s: %s", CORRUPT_PFN, strerror(errno));
	for (round = 0; round < 64 && hits < 2; round++) {
		struct punch_race r = { self->g.fd, ps + SZ_4K, 2 * ps - 2 * SZ_4K };
		u64 off = (3 + 7 * round) * SZ_4K;
		s64 r0;
		bool hit;
		pthread_t t;
		int err;

		/* The guest maps every healthy subpage of the first folio. */
		guest_do_size(&self->g, ps, CHECK, 0);
		/* Refill the others, so that the punch zeroes them again. */
		gmem_allocate(self->g.fd, ps, 2 * ps);
		pthread_create(&t, NULL, punch_thread, &r);
		while (!READ_ONCE(r.started))
			;
		err = hwpoison_write_fd(fd, self->pfn + off / SZ_4K);
		ASSERT_EQ(0, err) TH_LOG("corrupt-pfn: %s", strerror(err));
		keep_pfn(self->pfn);
		poisoned[nr_poisoned++] = off;
		sync_global_to_guest(self->g.vm, poisoned);
		sync_global_to_guest(self->g.vm, nr_poisoned);
		hit = !READ_ONCE(r.done);
		r0 = vcpu_faults_unfixed(self->g.vcpu);
		expect_poison_exit(&self->g, off);
		/*
		 * The read faulted (the zap happened) and was retried while the
		 * punch's invalidation was in progress, before its fault exited
		 * with EHWPOISON (which counts one): the error came while the
		 * punch held the lock.
		 */
		hit = hit && vcpu_faults_unfixed(self->g.vcpu) - r0 > 1;
		pthread_join(t, NULL);
		hits += hit;
		ksft_print_msg("round %d: error %s the punch returned\n", round,
			       hit ? "handled and read before" : "handled after");
	}
	close(fd);
	ASSERT_TRUE(hits) TH_LOG("no error handled during a punch in %d rounds", round);
	guest_do_size(&self->g, ps, CHECK, 0);
}

TEST_HARNESS_MAIN
