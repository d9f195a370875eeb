// SPDX-License-Identifier: GPL-2.0-only
/*
 * Lazy 4K punch-hole of hugetlb guest_memfd.
 *
 * Punching part of a hugepage zeroes and marks the punched subpages but
 * keeps the folio; the hugepage goes back to the pool only when all of its
 * subpages are punched, by any sequence of calls.  A fault or fallocate()
 * on a punched subpage refills it, and a refill that leaves the folio
 * without a hole lets KVM map it whole again (promotion).  The tests check
 * the pool, fdinfo, what the guest reads and the level KVM maps the memory
 * at, also under concurrent punches, refills, faults and conversions.
 * (The exact invalidation sequence is guest_memfd_hugetlb_prepare_test's.)
 *
 * The pool counters are global: nothing else may use hugepages of the
 * tested size while this runs.  GMEM_PUNCH_SEED=<n> fixes the random seed.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "gmem_hugetlb.h"
#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include "kselftest_harness.h"
#include "gmem_hugetlb_harness.h"

/* Never zero, so that stale data can't pass for zeroed memory. */
#define PATTERN(off)	((u64)(0xc3c33c3c00000000ULL ^ (off)))

enum { STAGE_READY = 1, STAGE_FILLED, STAGE_CHECKED, STAGE_STRESS, STAGE_TOUCH };

/* A seed in [1, 2^31 - 2], as struct kvm_random_state needs. */
static u32 test_seed(void)
{
	const char *str = getenv("GMEM_PUNCH_SEED");
	u32 seed;

	if (str && *str)
		seed = strtoul(str, NULL, 0);
	else
		seed = time(NULL) ^ getpid();
	seed = seed % 0x7ffffffe + 1;
	ksft_print_msg("GMEM_PUNCH_SEED=%u\n", seed);
	return seed;
}

static u64 rand_below(struct kvm_random_state *rng, u64 n)
{
	return kvm_random_u64(rng) % n;
}

#define need_hugepages(nr) \
	gmem_need_hugepages(_metadata, variant->page_size, &self->base, nr)
#define assert_pool(free, resv, fmt, ...) \
	hugetlb_pool_assert(variant->page_size, &self->base, free, resv, fmt, ##__VA_ARGS__)
/* Expected fdinfo of a file of @n hugepages: the counters that aren't 0. */
#define FDINFO(n, ...)								\
	(&(struct gmem_fdinfo){ .page_size = variant->page_size, .pages = n, __VA_ARGS__ })

/* The next smaller size KVM maps with. */
static size_t smaller_level(size_t page_size)
{
	return page_size == SZ_1G ? SZ_2M : SZ_4K;
}

FIXTURE(gmem_punch) {
	struct kvm_vm *vm;
	struct guest_memfd_backing backing;
	struct hugetlb_pool base;
};

/* The stress of stress_punch_fault_convert on a file of two hugepages. */
struct stress_params {
	size_t page_size;
	struct guest_memfd_backing backing;
	/* Seconds at least, and then until every thread made progress. */
	int seconds;
	/*
	 * One in @whole_punch punches is of a whole hugepage, at most
	 * @max_whole times; one in 16 of up to @large_punch bytes (zeroing
	 * and reallocating takes seconds for 1G under TCG).  One in 8
	 * conversions is of an aligned @large_convert bytes.
	 */
	int whole_punch;
	int max_whole;
	u64 large_punch;
	u64 large_convert;
};

FIXTURE_VARIANT(gmem_punch) {
	size_t page_size;
	/* punch_each_subpage_in_order reads fdinfo every so many punches. */
	u64 fdinfo_every;
	/* Granularity of punch_random_order_with_refills. */
	u64 random_step;
	/* Stride of the guest's accesses outside punched ranges. */
	u64 guest_stride;
	struct stress_params stress;
};

FIXTURE_VARIANT_ADD(gmem_punch, 2M) {
	.page_size = SZ_2M,
	.fdinfo_every = 1,
	.random_step = SZ_4K,
	.guest_stride = 8,
	.stress = { SZ_2M, {}, 4, 64, INT_MAX, SZ_1M, SZ_2M },
};

FIXTURE_VARIANT_ADD(gmem_punch, 1G) {
	.page_size = SZ_1G,
	.fdinfo_every = 4096,
	/* 4,096 punches, each checked in fdinfo (16,384 timed out under load). */
	.random_step = SZ_256K,
	.guest_stride = SZ_4K,
	.stress = { SZ_1G, {}, 5, 64, 2, SZ_16M, SZ_8M },
};

FIXTURE_SETUP(gmem_punch)
{
	if (!gmem_hugetlb_require(_metadata, variant->page_size))
		return;
	self->vm = gmem_vm_create_barebones();
	self->backing = guest_memfd_hugetlb_backing(variant->page_size);
	ASSERT_TRUE(hugetlb_pool_read(variant->page_size, &self->base));
}

FIXTURE_TEARDOWN(gmem_punch)
{
	if (self->vm)
		kvm_vm_free(self->vm);
}

/* ------------------------------------------------------------------------ */
/* Punches, refills, and the pool and fdinfo after each                     */
/* ------------------------------------------------------------------------ */

/*
 * Every subpage of an allocated hugepage punched on its own, in order: the
 * pool moves only at the last punch, which frees exactly one hugepage, and
 * fdinfo counts the punched subpages.  For 1G that is 262144 punches, each
 * with two pread()s of the pool, fdinfo every 4096.  The storm never
 * splits the folio or undoes HVO: nr_memmap_pages stays.
 */
TEST_F_TIMEOUT(gmem_punch, punch_each_subpage_in_order, 900)
{
	const u64 hpage = variant->page_size, nr_sub = hpage / SZ_4K;
	struct hugetlb_pool_reader pr;
	u64 i, free, resv, memmap = memmap_pages();
	double start;
	int fd;

	if (!need_hugepages(2))
		return;
	fd = vm_create_guest_memfd_backing(self->vm, 2 * hpage, self->backing);
	gmem_allocate(fd, 0, hpage);
	assert_pool(-1, 1, "allocated hugepage 0");
	gmem_fdinfo_assert(fd, FDINFO(2, .reserved = 1, .allocated = 1), "allocated hugepage 0");

	hugetlb_pool_reader_open(&pr, hpage);
	start = now_seconds();
	for (i = 0; i < nr_sub; i++) {
		bool last = i == nr_sub - 1;

		gmem_punch(fd, i * SZ_4K, SZ_4K);
		hugetlb_pool_reader_read(&pr, &free, &resv);
		ASSERT_TRUE(free == self->base.free - !last && resv == self->base.resv + 1)
			TH_LOG("punched %lu of %lu subpages: free %lu resv %lu", i + 1,
			       nr_sub, free, resv);
		if ((i + 1) % variant->fdinfo_every && nr_sub - i > 3)
			continue;
		gmem_fdinfo_assert(fd, FDINFO(2, .reserved = 1, .allocated = !last,
					      .partial_folios = !last,
					      .punched_subpages = last ? 0 : i + 1),
				   "punched %lu subpages", i + 1);
	}
	hugetlb_pool_reader_close(&pr);
	ksft_print_msg("%zukB: %lu punches with pool checks took %.1f s\n",
		       hpage >> 10, nr_sub, now_seconds() - start);

	/* It can be allocated again, whole. */
	gmem_allocate(fd, hpage - SZ_4K, SZ_4K);
	assert_pool(-1, 1, "allocated hugepage 0 again");
	gmem_fdinfo_assert(fd, FDINFO(2, .reserved = 1, .allocated = 1), "allocated again");
	close(fd);
	assert_pool(0, 0, "closed");
	ASSERT_EQ(memmap, memmap_pages()) TH_LOG("nr_memmap_pages moved");
}

/*
 * Half of a hugepage punched in random order (fdinfo after each), some of
 * it refilled, one unit, one range across punched and unpunched units,
 * then all the rest in random order: the pool moves only at the end.
 */
TEST_F_TIMEOUT(gmem_punch, punch_random_order_with_refills, 600)
{
	const u64 hpage = variant->page_size, step = variant->random_step;
	const u64 units = hpage / step, per_unit = step / SZ_4K;
	struct kvm_random_state rng = new_kvm_random_state(test_seed());
	u64 *order, i, j, u, tmp, nr_punched = 0, nr_todo;
	bool *punched;
	int fd;

	if (!need_hugepages(2))
		return;
	order = calloc(units, sizeof(*order));
	punched = calloc(units, sizeof(*punched));
	ASSERT_TRUE(order && punched);
	for (i = 0; i < units; i++)
		order[i] = i;

	fd = vm_create_guest_memfd_backing(self->vm, 2 * hpage, self->backing);
	gmem_allocate(fd, 0, 2 * hpage);
	assert_pool(-2, 0, "allocated both hugepages");

	/* Half of the units, in random order. */
	for (i = units - 1; i > 0; i--) {
		j = rand_below(&rng, i + 1);
		tmp = order[i], order[i] = order[j], order[j] = tmp;
	}
	for (i = 0; i < units / 2; i++) {
		gmem_punch(fd, order[i] * step, step);
		punched[order[i]] = true;
		nr_punched++;
		gmem_fdinfo_assert(fd, FDINFO(2, .allocated = 2, .partial_folios = 1,
					      .punched_subpages = nr_punched * per_unit),
				   "punched %lu units, the last at 0x%lx", nr_punched,
				   order[i] * step);
	}
	assert_pool(-2, 0, "punched half of hugepage 0");

	/* Refill: eight punched units, one unpunched, and a range across. */
	for (i = 0; i < 8; i++) {
		u = order[rand_below(&rng, units / 2)];
		gmem_allocate(fd, u * step, step);
		nr_punched -= punched[u];
		punched[u] = false;
	}
	gmem_allocate(fd, order[units - 1] * step, step);
	u = min(order[units / 4], units - 4);
	gmem_allocate(fd, u * step, 4 * step);
	for (i = u; i < u + 4; i++) {
		nr_punched -= punched[i];
		punched[i] = false;
	}
	assert_pool(-2, 0, "refilled");
	gmem_fdinfo_assert(fd, FDINFO(2, .allocated = 2, .partial_folios = 1,
				      .punched_subpages = nr_punched * per_unit), "refilled");

	/* Everything not punched, in random order: the last frees the page. */
	for (i = 0, nr_todo = 0; i < units; i++) {
		if (!punched[i])
			order[nr_todo++] = i;
	}
	for (i = nr_todo - 1; i > 0; i--) {
		j = rand_below(&rng, i + 1);
		tmp = order[i], order[i] = order[j], order[j] = tmp;
	}
	for (i = 0; i < nr_todo; i++) {
		bool last = i == nr_todo - 1;

		gmem_punch(fd, order[i] * step, step);
		nr_punched++;
		assert_pool(last ? -1 : -2, 0, "punched %lu of %lu units", nr_punched, units);
		gmem_fdinfo_assert(fd, FDINFO(2, .allocated = last ? 1 : 2,
					      .partial_folios = !last,
					      .punched_subpages = last ? 0 : nr_punched * per_unit),
				   "punched %lu units", nr_punched);
	}
	close(fd);
	assert_pool(0, 0, "closed");
	free(order);
	free(punched);
}

/*
 * Overlapping partial punches of hugepage 0, one reaching into hugepage 1
 * (no folio); a whole punch frees it at once; partial punches of hugepages
 * without a folio change nothing, and leave no marks behind.
 */
TEST_F_TIMEOUT(gmem_punch, overlapping_and_whole, 120)
{
	const u64 hpage = variant->page_size, n = hpage / SZ_4K;
	/* Subpage ranges; [3n/4, n - 100) stays. */
	const struct { u64 start, end; } overlapping[] = {
		{ 0, n / 2 }, { n / 4, 3 * n / 4 }, { n / 2 - 1, n / 2 + 3 },
		{ n / 8, n / 8 + 1 }, { n - 80, n + 16 }, { n - 100, n - 60 },
	};
	const struct { u64 offset, len; } no_folio[] = {
		{ hpage, SZ_4K }, { hpage + hpage / 2 + 3 * SZ_4K, SZ_64K },
		{ 2 * hpage - SZ_4K, SZ_4K }, { hpage + SZ_4K, hpage - SZ_4K },
		{ SZ_4K, hpage / 2 }, { hpage - SZ_4K, 2 * SZ_4K },
	};
	u64 i, s, count;
	u8 *model;
	int fd;

	if (!need_hugepages(2))
		return;
	model = calloc(n, 1);
	ASSERT_NE(NULL, model);
	fd = vm_create_guest_memfd_backing(self->vm, 2 * hpage, self->backing);
	gmem_allocate(fd, 0, SZ_4K);

	for (i = 0; i < ARRAY_SIZE(overlapping); i++) {
		gmem_punch(fd, overlapping[i].start * SZ_4K,
			   (overlapping[i].end - overlapping[i].start) * SZ_4K);
		for (s = overlapping[i].start; s < overlapping[i].end && s < n; s++)
			model[s] = 1;
		for (s = 0, count = 0; s < n; s++)
			count += model[s];
		assert_pool(-1, 1, "overlapping punch %lu", i);
		gmem_fdinfo_assert(fd, FDINFO(2, .reserved = 1, .allocated = 1,
					      .partial_folios = 1, .punched_subpages = count),
				   "overlapping punch %lu", i);
	}
	gmem_punch(fd, 0, hpage);
	assert_pool(0, 1, "punched all of hugepage 0");
	gmem_fdinfo_assert(fd, FDINFO(2, .reserved = 1), "punched all of hugepage 0");

	for (i = 0; i < ARRAY_SIZE(no_folio); i++) {
		gmem_punch(fd, no_folio[i].offset, no_folio[i].len);
		assert_pool(0, 1, "partial punch %lu without a folio", i);
		gmem_fdinfo_assert(fd, FDINFO(2, .reserved = 1),
				   "partial punch %lu without a folio", i);
	}

	/* Hugepage 1 kept its reservation and has no hole. */
	gmem_allocate(fd, hpage + hpage / 2, SZ_4K);
	assert_pool(-1, 0, "allocated hugepage 1");
	gmem_fdinfo_assert(fd, FDINFO(2, .allocated = 1), "allocated hugepage 1");
	gmem_pool_matches_fdinfo(fd, &self->base, "allocated hugepage 1");

	/* Overlapping punches of hugepage 1, finished by one of the file. */
	gmem_punch(fd, hpage + SZ_64K, SZ_64K);
	gmem_punch(fd, hpage + SZ_64K + SZ_4K, 2 * SZ_64K);
	gmem_fdinfo_assert(fd, FDINFO(2, .allocated = 1, .partial_folios = 1,
				      .punched_subpages = 33),
			   "two overlapping punches of hugepage 1");
	gmem_punch(fd, 0, 2 * hpage);
	assert_pool(0, 0, "punched the whole file");
	gmem_fdinfo_assert(fd, FDINFO(2), "punched the whole file");
	close(fd);
	assert_pool(0, 0, "closed");
	free(model);
}

/* ------------------------------------------------------------------------ */
/* What the guest reads, and how KVM maps it                                */
/* ------------------------------------------------------------------------ */

#define MAX_RANGES	8

/* Byte ranges of the guest's memory that the host punches. */
struct ranges {
	u64 nr;
	u64 start[MAX_RANGES], end[MAX_RANGES];
};

static struct ranges punched_ranges;

static bool in_ranges(const struct ranges *r, u64 off)
{
	u64 i;

	for (i = 0; i < r->nr; i++) {
		if (off >= r->start[i] && off < r->end[i])
			return true;
	}
	return false;
}

/*
 * Write (@check false) or check every word of [start, end): after the
 * punches, exactly the punched ranges read zero.
 */
static void guest_words(u64 gpa, u64 start, u64 end, bool check)
{
	u64 off, val, want;

	for (off = start; off < end; off += sizeof(u64)) {
		if (!check) {
			WRITE_ONCE(*(u64 *)(gpa + off), PATTERN(off));
			continue;
		}
		want = in_ranges(&punched_ranges, off) ? 0 : PATTERN(off);
		val = READ_ONCE(*(u64 *)(gpa + off));
		__GUEST_ASSERT(val == want, "offset 0x%lx reads 0x%lx, expected 0x%lx",
			       off, val, want);
	}
}

/*
 * The first and last word of every @stride bytes, and every word in and
 * 4K around each punched range: fill, then check after the punches.
 */
static void guest_zero_code(u64 gpa, u64 size, u64 stride)
{
	const struct ranges *r = &punched_ranges;
	u64 off, i, pass;

	GUEST_SYNC(STAGE_READY);
	for (pass = 0; pass < 2; pass++) {
		for (off = 0; off < size; off += stride) {
			guest_words(gpa, off, off + 8, pass);
			guest_words(gpa, off + stride - 8, off + stride, pass);
		}
		for (i = 0; i < r->nr; i++)
			guest_words(gpa, r->start[i] >= SZ_4K ? r->start[i] - SZ_4K : 0,
				    min(r->end[i] + SZ_4K, size), pass);
		GUEST_SYNC(STAGE_FILLED + pass);
	}
	GUEST_DONE();
}

/* The guest reads zeroes exactly where the host punched, and refills. */
TEST_F_TIMEOUT(gmem_punch, guest_sees_zeroes_after_partial_punch, 300)
{
	const u64 hpage = variant->page_size;
	const struct gmem_guest_args args = { self->backing, hpage };
	const struct ranges punch = {
		.nr = 6,
		.start = { SZ_4K, hpage / 4 + 3 * SZ_4K, hpage / 2 + 7 * SZ_4K,
			   hpage / 2 + 9 * SZ_4K, 3 * hpage / 4 + 5 * SZ_4K, hpage - SZ_4K },
		.end = { 2 * SZ_4K, hpage / 4 + 3 * SZ_4K + SZ_64K, hpage / 2 + 8 * SZ_4K,
			 hpage / 2 + 10 * SZ_4K, 3 * hpage / 4 + 6 * SZ_4K, hpage },
	};
	struct gmem_guest g;
	u64 i, nr_punched = 0;

	if (!need_hugepages(1))
		return;
	gmem_guest_create(&g, guest_zero_code, &args);
	vcpu_args_set(g.vcpu, 3, g.gpa, hpage, variant->guest_stride);
	punched_ranges = punch;
	sync_global_to_guest(g.vm, punched_ranges);
	gmem_guest_run(g.vcpu, STAGE_READY);
	gmem_guest_run(g.vcpu, STAGE_FILLED);
	assert_pool(-1, 0, "guest wrote its memory");

	for (i = 0; i < punch.nr; i++) {
		gmem_punch(g.fd, punch.start[i], punch.end[i] - punch.start[i]);
		nr_punched += (punch.end[i] - punch.start[i]) / SZ_4K;
	}
	assert_pool(-1, 0, "punched");
	gmem_fdinfo_assert(g.fd, FDINFO(1, .allocated = 1, .partial_folios = 1,
					.punched_subpages = nr_punched), "punched");

	/* The guest faults every punched subpage back in: all refilled. */
	gmem_guest_run(g.vcpu, STAGE_CHECKED);
	assert_pool(-1, 0, "guest read its memory");
	gmem_fdinfo_assert(g.fd, FDINFO(1, .allocated = 1), "guest refilled the holes");
	gmem_guest_run(g.vcpu, 0);
	gmem_guest_destroy(&g);
	assert_pool(0, 0, "destroyed the VM and closed the file");
}

/*
 * Write one word of every @stride bytes of [gpa, gpa + size), but not in
 * the 4K page at @skip, then sync; again and again.
 */
static void guest_touch_code(u64 gpa, u64 size, u64 stride, u64 skip)
{
	u64 pass, off;

	GUEST_SYNC(STAGE_READY);
	for (pass = 0;; pass++) {
		for (off = 0; off < size; off += stride) {
			if (off - skip >= SZ_4K)
				WRITE_ONCE(*(u64 *)(gpa + off), PATTERN(off));
		}
		GUEST_SYNC(STAGE_TOUCH + pass);
	}
}

/*
 * Mapped whole; a 4K hole zaps the mapping and the guest maps the rest
 * smaller; a conversion round trip doesn't bring the whole mapping back,
 * but refilling the hole does, at the next touch, though the guest never
 * touches the hole (promotion).
 */
TEST_F_TIMEOUT(gmem_punch, mapping_level_drops_and_returns, 300)
{
	const u64 hpage = variant->page_size;
	const size_t smaller = smaller_level(hpage);
	const struct gmem_guest_args args = { self->backing, hpage };
	/* Every 4K for 2M (each faults); 1G needs one per 2M. */
	const u64 stride = hpage >= SZ_1G ? SZ_64K : SZ_4K;
	const u64 hole = hpage / 2 + 5 * SZ_4K;
	const u64 nr_small = hpage / smaller - 1;
	struct mapping_levels base, now, mark;
	struct gmem_guest g;
	u64 pass = 0;
	char lv[96];

	if (!need_hugepages(1))
		return;
	/*
	 * KVM's own levels and promotion, with the RMP model off: under
	 * SEV-SNP's rules 1G maps at 2M, and a 2M region split by a punch
	 * stays mapped at 4K (its RMP entries are never merged again).
	 */
	gmem_rmp_model_set("off");
	gmem_guest_create(&g, guest_touch_code, &args);
	gmem_rmp_model_set(NULL);
	vcpu_args_set(g.vcpu, 4, g.gpa, hpage, stride, hole);
	gmem_guest_run(g.vcpu, STAGE_READY);
	mapping_levels_read(g.vm, &base);

	gmem_guest_run(g.vcpu, STAGE_TOUCH + pass++);
	mapping_levels_read(g.vm, &now);
	ASSERT_EQ(mapping_levels_pages(&base, hpage) + 1, mapping_levels_pages(&now, hpage))
		TH_LOG("not mapped whole (%s)", mapping_levels_str(&base, &now, lv, sizeof(lv)));

	gmem_punch(g.fd, hole, SZ_4K);
	gmem_fdinfo_assert(g.fd, FDINFO(1, .allocated = 1, .partial_folios = 1,
					.punched_subpages = 1), "punched 4K");
	mapping_levels_read(g.vm, &mark);
	ASSERT_EQ(mapping_levels_pages(&base, hpage), mapping_levels_pages(&mark, hpage))
		TH_LOG("the punch left the whole mapping");

	gmem_guest_run(g.vcpu, STAGE_TOUCH + pass++);
	mapping_levels_read(g.vm, &now);
	mapping_levels_str(&mark, &now, lv, sizeof(lv));
	ASSERT_EQ(mapping_levels_pages(&base, hpage), mapping_levels_pages(&now, hpage))
		TH_LOG("mapped whole around a hole (%s)", lv);
	ASSERT_LE(mapping_levels_pages(&mark, smaller) + nr_small,
		  mapping_levels_pages(&now, smaller))
		TH_LOG("expected %lu %zukB mappings (%s)", nr_small, smaller >> 10, lv);
	gmem_fdinfo_assert(g.fd, FDINFO(1, .allocated = 1, .partial_folios = 1,
					.punched_subpages = 1), "the guest did not touch the hole");

	/* A conversion round trip zaps, but the hole is still there. */
	vm_mem_set_shared(g.vm, g.gpa, hpage);
	vm_mem_set_private(g.vm, g.gpa, hpage);
	gmem_guest_run(g.vcpu, STAGE_TOUCH + pass++);
	mapping_levels_read(g.vm, &now);
	ASSERT_EQ(mapping_levels_pages(&base, hpage), mapping_levels_pages(&now, hpage))
		TH_LOG("mapped whole around a hole after a conversion");

	/* The refill zaps the small mappings; the next touch maps it whole. */
	mapping_levels_read(g.vm, &mark);
	gmem_allocate(g.fd, hole, SZ_4K);
	gmem_fdinfo_assert(g.fd, FDINFO(1, .allocated = 1), "refilled the hole");
	assert_pool(-1, 0, "refilled the hole");
	mapping_levels_read(g.vm, &now);
	ASSERT_LE(mapping_levels_pages(&now, smaller) + nr_small,
		  mapping_levels_pages(&mark, smaller))
		TH_LOG("the refill left the small mappings (%s)",
		       mapping_levels_str(&mark, &now, lv, sizeof(lv)));
	gmem_guest_run(g.vcpu, STAGE_TOUCH + pass++);
	mapping_levels_read(g.vm, &now);
	mapping_levels_str(&base, &now, lv, sizeof(lv));
	ASSERT_EQ(mapping_levels_pages(&base, hpage) + 1, mapping_levels_pages(&now, hpage))
		TH_LOG("the refilled hugepage is not mapped whole (%s)", lv);
	if (hpage >= SZ_1G)
		ASSERT_EQ(base.pages_2m, now.pages_2m) TH_LOG("2M mappings left (%s)", lv);

	gmem_guest_destroy(&g);
	assert_pool(0, 0, "destroyed the VM and closed the file");
}

/* ------------------------------------------------------------------------ */
/* Concurrent punch, refill, fault and conversion                           */
/* ------------------------------------------------------------------------ */

/*
 * Every thread (the vCPU: guest syncs) must make this many iterations
 * before the stress stops, once its seconds are over.
 */
#define STRESS_ROUNDS		16
/*
 * Progress is judged against the other threads' work, not the clock: on a
 * loaded machine every thread slows down alike, while a thread that
 * starves (a vCPU whose faults keep being retried, a punch that never gets
 * the lock) falls behind the others.  A thread starved when the others
 * made this many punches, conversions and guest syncs between two of its
 * own iterations (or since the start).  Refills are not counted: on a
 * hugetlb file most of them find the range allocated and return at once.
 * Healthy runs under TCG, with two busy loops in the guest, saw the vCPU
 * wait for at most about 200 of them (see the note in README.md).
 */
#define STRESS_STARVE_OPS	2000
/* Seconds after which a run that made no verdict is given up (a skip). */
#define STRESS_GRACE		120

enum { STRESS_PUNCH, STRESS_REFILL, STRESS_CONVERT, STRESS_VCPU, STRESS_NR };

static const char * const stress_names[] = { "punches", "refills", "conversions",
					     "vCPU syncs" };

/* Word accesses the guest completed, in slot 0, read by the host. */
static u64 guest_accesses;

/*
 * Each word holds its own pattern or zero (never written, or punched
 * since): write and read back a random word, read another; sync every 8.
 */
static void guest_stress_code(u64 gpa, u64 size, u64 seed)
{
	struct kvm_random_state rng = new_kvm_random_state(seed);
	const u64 words = size / sizeof(u64);
	u64 i, off, val, own = 0, zero = 0;

	GUEST_SYNC(STAGE_READY);
	for (;;) {
		for (i = 0; i < 8; i++) {
			off = kvm_random_u64(&rng) % words;
			WRITE_ONCE(*(u64 *)(gpa + 8 * off), PATTERN(off));
			val = READ_ONCE(*(u64 *)(gpa + 8 * off));
			__GUEST_ASSERT(val == PATTERN(off) || !val,
				       "word 0x%lx holds 0x%lx", off, val);
			if (val)
				own++;
			else
				zero++;
			off = kvm_random_u64(&rng) % words;
			val = READ_ONCE(*(u64 *)(gpa + 8 * off));
			__GUEST_ASSERT(val == PATTERN(off) || !val,
				       "word 0x%lx holds 0x%lx", off, val);
			WRITE_ONCE(guest_accesses, guest_accesses + 2);
		}
		GUEST_SYNC_ARGS(STAGE_STRESS, own, zero, 0, 0);
	}
}

struct stress {
	const struct stress_params *p;
	u32 seed;
	struct gmem_guest *g;
	u64 *accesses;
	bool stop;
	pthread_barrier_t barrier;
	pthread_t thread[STRESS_NR];
	pid_t tid[STRESS_NR];
	bool joined[STRESS_NR];
	/* One writer each. */
	u64 count[STRESS_NR];
	u64 whole_punches, memory_faults, guest_own, guest_zero;
	/* The monitor's: the others' total at each thread's last iteration. */
	u64 seen[STRESS_NR], others_then[STRESS_NR], longest_wait[STRESS_NR];
	/* The vCPU's fault statistics when the stress began. */
	u64 pf_fixed0;
	s64 pf_unfixed0;
};

/* One punch, refill or conversion of a random range. */
static void stress_op(struct stress *st, int who, struct kvm_random_state *rng)
{
	const u64 size = st->g->size, hpage = st->p->page_size;
	u64 off = rand_below(rng, size / SZ_4K) * SZ_4K;
	u64 len = (1 + rand_below(rng, 64)) * SZ_4K;

	switch (who) {
	case STRESS_PUNCH:
		if (!rand_below(rng, st->p->whole_punch) &&
		    st->whole_punches < st->p->max_whole) {
			off = rand_below(rng, size / hpage) * hpage;
			len = hpage;
			st->whole_punches++;
		} else if (!rand_below(rng, 16)) {
			len = (1 + rand_below(rng, st->p->large_punch / SZ_4K)) * SZ_4K;
		}
		gmem_punch(st->g->fd, off, min(len, size - off));
		break;
	case STRESS_REFILL:
		gmem_allocate(st->g->fd, off, min(len, size - off));
		break;
	case STRESS_CONVERT:
		len = (1 + rand_below(rng, 512)) * SZ_4K;
		if (!rand_below(rng, 8)) {
			len = st->p->large_convert;
			off = rand_below(rng, size / len) * len;
		}
		len = min(len, size - off);
		vm_mem_set_shared(st->g->vm, st->g->gpa + off, len);
		vm_mem_set_private(st->g->vm, st->g->gpa + off, len);
		break;
	}
}

static void stress_vcpu_run(struct stress *st)
{
	struct kvm_vcpu *vcpu = st->g->vcpu;
	struct kvm_run *run = vcpu->run;
	struct ucall uc;

	if (_vcpu_run(vcpu)) {
		/* A conversion between KVM's two checks of the attributes. */
		if (errno == EFAULT && run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
			st->memory_faults++;
			return;
		}
		/* Kicked out of KVM_RUN to stop. */
		TEST_ASSERT(errno == EINTR && READ_ONCE(st->stop),
			    KVM_IOCTL_ERROR(KVM_RUN, -1));
		return;
	}
	/* The registers are of no use: SVM re-INITs a vCPU after shutdown. */
	TEST_ASSERT(run->exit_reason != KVM_EXIT_SHUTDOWN,
		    "KVM_EXIT_SHUTDOWN after %lu syncs, %lu punches, %lu refills, %lu conversions",
		    st->count[STRESS_VCPU], st->count[STRESS_PUNCH],
		    st->count[STRESS_REFILL], st->count[STRESS_CONVERT]);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	TEST_ASSERT(gmem_guest_ucall(vcpu, &uc) == UCALL_SYNC,
		    "unexpected ucall %lu", uc.cmd);
	TEST_ASSERT(uc.args[1] == STAGE_STRESS, "stage %lu", uc.args[1]);
	st->guest_own = uc.args[2];
	st->guest_zero = uc.args[3];
	WRITE_ONCE(st->count[STRESS_VCPU], st->count[STRESS_VCPU] + 1);
}

struct stress_thread {
	struct stress *st;
	int who;
};

static void *stress_fn(void *arg)
{
	const struct stress_thread *t = arg;
	struct stress *st = t->st;
	struct kvm_random_state rng = new_kvm_random_state((st->seed + t->who) % 0x7ffffffe + 1);

	WRITE_ONCE(st->tid[t->who], syscall(SYS_gettid));
	pthread_barrier_wait(&st->barrier);
	while (!READ_ONCE(st->stop)) {
		if (t->who == STRESS_VCPU) {
			stress_vcpu_run(st);
			continue;
		}
		stress_op(st, t->who, &rng);
		WRITE_ONCE(st->count[t->who], st->count[t->who] + 1);
	}
	return NULL;
}

static void stress_print(struct stress *st, const char *when, double secs)
{
	u64 fixed = vcpu_get_stat(st->g->vcpu, pf_fixed) - st->pf_fixed0;
	s64 retried = vcpu_faults_unfixed(st->g->vcpu) - st->pf_unfixed0;
	int i;

	ksft_print_msg("%s, %.1f s: %lu punches (%lu whole), %lu refills, %lu conversions,\n",
		       when, secs, READ_ONCE(st->count[STRESS_PUNCH]), st->whole_punches,
		       READ_ONCE(st->count[STRESS_REFILL]),
		       READ_ONCE(st->count[STRESS_CONVERT]));
	ksft_print_msg("  %lu vCPU syncs (%lu accesses), %lu memory fault exits\n",
		       READ_ONCE(st->count[STRESS_VCPU]), READ_ONCE(*st->accesses),
		       st->memory_faults);
	ksft_print_msg("  vCPU faults: %lu fixed, %ld retried or exited (%.2f per fixed fault)\n",
		       fixed, retried, fixed ? (double)retried / fixed : 0.0);
	for (i = 0; i < STRESS_NR; i++)
		ksft_print_msg("  longest wait of the %s: %lu punches, conversions or syncs\n",
			       stress_names[i], st->longest_wait[i]);
}

/*
 * Account the iterations since the last call; return the first thread
 * that starved (the others made STRESS_STARVE_OPS punches, conversions and
 * syncs since its last iteration), or -1.
 */
static int stress_monitor(struct stress *st)
{
	u64 now[STRESS_NR], total = 0, others;
	int i, starved = -1;

	for (i = 0; i < STRESS_NR; i++) {
		now[i] = READ_ONCE(st->count[i]);
		if (i != STRESS_REFILL)
			total += now[i];
	}
	for (i = 0; i < STRESS_NR; i++) {
		others = total - (i == STRESS_REFILL ? 0 : now[i]);
		if (now[i] != st->seen[i]) {
			st->seen[i] = now[i];
			st->others_then[i] = others;
		}
		st->longest_wait[i] = max(st->longest_wait[i], others - st->others_then[i]);
		if (starved < 0 && others - st->others_then[i] >= STRESS_STARVE_OPS)
			starved = i;
	}
	return starved;
}

static void print_file(const char *what, pid_t tid)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/%s", tid, what);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		ksft_print_msg("  %s: %s", what, line);
	if (f)
		fclose(f);
}

static void kick(int sig)
{
}

/* Join what is left of the threads by @secs from now; how many are left. */
static int stress_join_by(struct stress *st, int secs)
{
	struct timespec deadline;
	int i, left = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += secs;
	for (i = 0; i < STRESS_NR; i++) {
		if (!st->joined[i])
			st->joined[i] = !pthread_timedjoin_np(st->thread[i], NULL, &deadline);
		left += !st->joined[i];
	}
	return left;
}

/*
 * Join the threads; one still running after @secs is stuck: print its
 * kernel stack, kick it out of KVM_RUN (SIGUSR1) and wait once more.
 * Returns how many were stuck.
 */
static int stress_join(struct stress *st, int secs)
{
	struct sigaction sa = { .sa_handler = kick };
	int i, stuck = stress_join_by(st, secs);

	if (!stuck)
		return 0;
	sigaction(SIGUSR1, &sa, NULL);
	for (i = 0; i < STRESS_NR; i++) {
		if (st->joined[i])
			continue;
		ksft_print_msg("%s thread (tid %d) still running %d s after the stop\n",
			       stress_names[i], st->tid[i], secs);
		print_file("wchan", st->tid[i]);
		ksft_print_msg("\n");
		print_file("stack", st->tid[i]);
		pthread_kill(st->thread[i], SIGUSR1);
	}
	ksft_print_msg("after SIGUSR1, %d thread(s) still running\n", stress_join_by(st, secs));
	return stuck;
}

/*
 * A vCPU keeps writing and reading random words of a two-hugepage file
 * while three threads punch, refill and convert random ranges of it.  The
 * stress lasts p->seconds, then goes on until every thread, the vCPU
 * included, made STRESS_ROUNDS iterations.  It fails as soon as a thread
 * starves: the others made STRESS_STARVE_OPS iterations since its last
 * one; or at the end, if it made none while another made STRESS_ROUNDS.
 * A machine so loaded that no verdict comes in STRESS_GRACE more seconds
 * skips.  @base is the pool before, NULL for a regular guest_memfd
 * (no pool or fdinfo to check).
 */
static void stress_run(struct __test_metadata *_metadata,
		       const struct stress_params *p, const struct hugetlb_pool *base)
{
	const u64 size = 2 * p->page_size;
	const struct gmem_guest_args args = { p->backing, size };
	struct stress_thread t[STRESS_NR];
	struct stress st = { .p = p, .seed = test_seed() };
	u64 memmap = memmap_pages(), least, most, checks = 0;
	double start, secs, report = 10;
	int i, stuck, starved = -1;
	struct gmem_fdinfo fi;
	struct gmem_guest g;

	gmem_guest_create(&g, guest_stress_code, &args);
	vcpu_args_set(g.vcpu, 3, g.gpa, size, st.seed);
	gmem_guest_run(g.vcpu, STAGE_READY);
	/* Allocate (and zero) the file before the clock starts. */
	gmem_allocate(g.fd, 0, size);
	if (base)
		hugetlb_pool_assert(p->page_size, base, -2, 0, "allocated the file");

	st.g = &g;
	st.accesses = addr_gva2hva(g.vm, (gva_t)&guest_accesses);
	st.pf_fixed0 = vcpu_get_stat(g.vcpu, pf_fixed);
	st.pf_unfixed0 = vcpu_faults_unfixed(g.vcpu);
	pthread_barrier_init(&st.barrier, NULL, STRESS_NR + 1);
	for (i = 0; i < STRESS_NR; i++) {
		t[i] = (struct stress_thread){ &st, i };
		ASSERT_EQ(0, pthread_create(&st.thread[i], NULL, stress_fn, &t[i]));
	}
	pthread_barrier_wait(&st.barrier);

	start = now_seconds();
	do {
		usleep(5000);
		secs = now_seconds() - start;
		starved = stress_monitor(&st);
		for (i = 0, least = ~0ULL; i < STRESS_NR; i++)
			least = min(least, st.seen[i]);
		if (secs >= report) {
			stress_print(&st, "still running", secs);
			report += 10;
		}
		if (!base)
			continue;
		gmem_fdinfo_read(g.fd, &fi);
		checks++;
		ASSERT_TRUE(fi.page_size == p->page_size && fi.pages == 2 &&
			    fi.allocated + fi.reserved <= 2 && fi.partial_folios <= 2 &&
			    fi.punched_subpages <= 2 * (p->page_size / SZ_4K))
			TH_LOG("inconsistent fdinfo: reserved %lu allocated %lu partial %lu",
			       fi.reserved, fi.allocated, fi.partial_folios);
	} while (starved < 0 && (secs < p->seconds ||
		 (least < STRESS_ROUNDS && secs < p->seconds + STRESS_GRACE)));

	WRITE_ONCE(st.stop, true);
	stuck = stress_join(&st, 60);
	stress_print(&st, starved < 0 ? "stopped" : "starved", now_seconds() - start);
	ksft_print_msg("the guest read back %lu words: %lu its pattern, %lu punched since\n",
		       st.guest_own + st.guest_zero, st.guest_own, st.guest_zero);
	ksft_print_msg("%lu fdinfo checks during the run\n", checks);
	ASSERT_EQ(0, stuck) TH_LOG("%d thread(s) did not stop, see above", stuck);
	pthread_barrier_destroy(&st.barrier);

	ASSERT_EQ(-1, starved)
		TH_LOG("%s starved: none in %lu punches, conversions, syncs (%.0f s)",
		       stress_names[starved], st.longest_wait[starved], secs);
	/* Nothing at all while another thread got through its rounds. */
	for (i = 0, most = 0; i < STRESS_NR; i++)
		most = max(most, st.seen[i]);
	for (i = 0; i < STRESS_NR; i++)
		ASSERT_TRUE(st.seen[i] || most < STRESS_ROUNDS)
			TH_LOG("%s: none in %.0f s while another thread made %lu: starved",
			       stress_names[i], secs, most);
	if (least < STRESS_ROUNDS)
		SKIP(goto out, "the machine made too little progress to judge in %.0f s", secs);
	ASSERT_NE(0, st.guest_own) TH_LOG("the guest never read back its pattern");

out:
	if (!base) {
		gmem_guest_destroy(&g);
		return;
	}
	/* Quiescent: fdinfo agrees with itself and with the pool. */
	gmem_fdinfo_read(g.fd, &fi);
	ASSERT_TRUE(fi.allocated + fi.reserved <= 2 && fi.partial_folios <= fi.allocated &&
		    fi.punched_subpages >= fi.partial_folios &&
		    fi.punched_subpages <= fi.partial_folios * (p->page_size / SZ_4K - 1))
		TH_LOG("inconsistent fdinfo after the run");
	gmem_pool_matches_fdinfo(g.fd, base, "after the run");
	kvm_vm_free(g.vm);
	gmem_pool_matches_fdinfo(g.fd, base, "freed the VM");
	close(g.fd);
	hugetlb_pool_assert(p->page_size, base, 0, 0, "closed");
	ASSERT_EQ(memmap, memmap_pages()) TH_LOG("nr_memmap_pages moved");
}

TEST_F_TIMEOUT(gmem_punch, stress_punch_fault_convert, 400)
{
	struct stress_params p = variant->stress;

	if (!need_hugepages(2))
		return;
	p.backing = self->backing;
	stress_run(_metadata, &p, &self->base);
}

/*
 * The same threads on a regular guest_memfd of the 2M variant's size, to
 * tell a failure of the hugetlb code from one of KVM or of the machine.
 */
FIXTURE(gmem_4k_peer) {};
FIXTURE_SETUP(gmem_4k_peer) {}
FIXTURE_TEARDOWN(gmem_4k_peer) {}

TEST_F_TIMEOUT(gmem_4k_peer, stress_punch_fault_convert, 400)
{
	static const struct stress_params peer = { SZ_2M, {}, 4, 64, INT_MAX, SZ_1M, SZ_2M };

	if (!sw_protected_vm_supported())
		SKIP(return, "no KVM_X86_SW_PROTECTED_VM");
	stress_run(_metadata, &peer, NULL);
}

/* ------------------------------------------------------------------------ */
/* A fault racing with a punch                                              */
/* ------------------------------------------------------------------------ */

/*
 * Write the first word of every 64K of [gpa, gpa + size), but not in the
 * 4K page at @skip, forever; sync every 256 passes.
 */
static void guest_spin_code(u64 gpa, u64 size, u64 skip)
{
	u64 off, pass;

	GUEST_SYNC(STAGE_READY);
	for (pass = 1;; pass++) {
		for (off = 0; off < size; off += SZ_64K) {
			if (off - skip >= SZ_4K)
				WRITE_ONCE(*(u64 *)(gpa + off), PATTERN(off));
		}
		if (!(pass % 256))
			GUEST_SYNC(STAGE_STRESS);
	}
}

struct spinner {
	struct kvm_vcpu *vcpu;
	bool stop;
	u64 syncs;
};

static void *spin_fn(void *arg)
{
	struct spinner *sp = arg;
	struct kvm_run *run = sp->vcpu->run;
	struct ucall uc;

	while (!READ_ONCE(sp->stop)) {
		if (_vcpu_run(sp->vcpu)) {
			TEST_ASSERT(errno == EFAULT && run->exit_reason == KVM_EXIT_MEMORY_FAULT,
				    KVM_IOCTL_ERROR(KVM_RUN, -1));
			continue;
		}
		TEST_ASSERT_KVM_EXIT_REASON(sp->vcpu, KVM_EXIT_IO);
		gmem_guest_ucall(sp->vcpu, &uc);
		sp->syncs++;
	}
	return NULL;
}

/*
 * A vCPU keeps faulting the hugepage in while the VMM punches one subpage
 * of it and refills it, again and again; before each punch a conversion
 * round trip zaps the hugepage so that the guest faults it in at full size
 * just as the punch starts (even iterations) or, once it has, faults it
 * in again as soon as the punch zapped it (odd ones).  A fault whose
 * max_order was computed before the punch marked the subpage must not map
 * the hugepage whole over it: it is never mapped whole after the punch
 * returned.  Retried faults show that faults did overlap the punches; the
 * loop goes on past its time, for up to three minutes, until they did (a
 * 1G iteration takes half a minute on a loaded machine under TCG).
 */
TEST_F_TIMEOUT(gmem_punch, fault_vs_punch_race, 360)
{
	const u64 hpage = variant->page_size, hole = hpage / 2 + 3 * SZ_4K;
	const struct gmem_guest_args args = { self->backing, hpage };
	u64 i, stale = 0, first = 0, before = 0, retried = 0;
	s64 unfixed;
	struct mapping_levels l;
	struct spinner sp = {};
	struct gmem_fdinfo fi;
	struct gmem_guest g;
	double end, deadline, wait;
	pthread_t thread;

	if (!need_hugepages(1))
		return;
	/*
	 * Whole mappings, with the RMP model off: under SEV-SNP's rules 1G
	 * maps at 2M, and the punch's 2M region is never mapped whole again.
	 */
	gmem_rmp_model_set("off");
	gmem_guest_create(&g, guest_spin_code, &args);
	gmem_rmp_model_set(NULL);
	vcpu_args_set(g.vcpu, 3, g.gpa, hpage, hole);
	gmem_guest_run(g.vcpu, STAGE_READY);
	gmem_allocate(g.fd, 0, hpage);
	sp.vcpu = g.vcpu;
	ASSERT_EQ(0, pthread_create(&thread, NULL, spin_fn, &sp));

	end = now_seconds() + variant->stress.seconds;
	deadline = end + 180;
	for (i = 0; now_seconds() < end || (!retried && now_seconds() < deadline); i++) {
		vm_mem_set_shared(g.vm, g.gpa, hpage);
		vm_mem_set_private(g.vm, g.gpa, hpage);
		mapping_levels_read(g.vm, &l);
		for (wait = now_seconds() + 2; i % 2 && now_seconds() < wait &&
		     !mapping_levels_pages(&l, hpage);)
			mapping_levels_read(g.vm, &l);
		before += !!mapping_levels_pages(&l, hpage);

		/* Less two: a fault in flight, one torn read. */
		unfixed = vcpu_faults_unfixed(g.vcpu);
		gmem_punch(g.fd, hole, SZ_4K);
		unfixed = vcpu_faults_unfixed(g.vcpu) - unfixed;
		retried += unfixed > 2 ? unfixed - 2 : 0;
		mapping_levels_read(g.vm, &l);
		if (mapping_levels_pages(&l, hpage) && !stale++)
			first = i;
		gmem_allocate(g.fd, hole, SZ_4K);
	}
	WRITE_ONCE(sp.stop, true);
	pthread_join(thread, NULL);

	ksft_print_msg("%zukB: %lu punch/refill iterations, %lu guest syncs, %lu faults retried at least\n",
		       hpage >> 10, i, sp.syncs, retried);
	ksft_print_msg("mapped whole before %lu punches, after %lu\n", before, stale);
	ASSERT_LT(0, sp.syncs) TH_LOG("the guest made no progress");
	ASSERT_LT(0, retried) TH_LOG("no fault overlapped a punch in %lu iterations", i);
	gmem_fdinfo_read(g.fd, &fi);
	ASSERT_EQ(0, fi.punched_subpages);
	ASSERT_EQ(0, stale)
		TH_LOG("in %lu of %lu iterations (first %lu) mapped whole after the punch of 0x%lx",
		       stale, i, first, hole);
	gmem_guest_destroy(&g);
	assert_pool(0, 0, "destroyed the VM and closed the file");
}

/*
 * Pre-faults of one 4K page of a file of @hpage pages until one succeeds;
 * then the free pages of the pool, read at once.
 */
struct prefaulter {
	struct kvm_vcpu *vcpu;
	gpa_t gpa;
	size_t hpage;
	bool stop;
	u64 tries;
	bool ok;
	u64 free_at_ok;
};

static void *prefault_fn(void *arg)
{
	struct prefaulter *pf = arg;
	struct hugetlb_pool pool;
	int r;

	while (!READ_ONCE(pf->stop)) {
		r = __vcpu_pre_fault(pf->vcpu, pf->gpa, SZ_4K);
		TEST_ASSERT(!r || r == ENOMEM, "KVM_PRE_FAULT_MEMORY: %s", strerror(r));
		if (!r) {
			TEST_ASSERT(hugetlb_pool_read(pf->hpage, &pool), "no pool");
			pf->free_at_ok = pool.free;
			WRITE_ONCE(pf->ok, true);
			break;
		}
		WRITE_ONCE(pf->tries, pf->tries + 1);
	}
	return NULL;
}

/*
 * One round: a file of @n hugepages holds the whole pool, all allocated
 * but the last, which is punched and whose page another file reserves;
 * a thread faults the last hugepage in (ENOMEM: nothing left) while the
 * rest is punched.  Each hugepage the punch releases adds one free page to
 * the pool, and the fault takes one: so if the pool had fewer than
 * @n - 2 free pages more than before the punch when the fault succeeded,
 * the punch had not released every hugepage yet.  Returns whether it
 * had not; *@took gets how long the punch took.
 */
static bool refault_round(struct kvm_vm *vm, struct guest_memfd_backing b, u64 n,
			  double *took)
{
	const u64 hpage = guest_memfd_backing_page_size(b);
	const struct gmem_guest_args args = { b, n * hpage, .unmapped = true };
	struct prefaulter *pf = calloc(1, sizeof(*pf));
	struct hugetlb_pool pool;
	struct gmem_guest g;
	double start;
	pthread_t thread;
	bool early;
	int fd2;

	TEST_ASSERT(pf, "out of memory");
	gmem_guest_create(&g, NULL, &args);
	gmem_allocate(g.fd, 0, (n - 1) * hpage);
	gmem_punch(g.fd, (n - 1) * hpage, hpage);
	fd2 = vm_create_guest_memfd_backing(vm, hpage, b);
	TEST_ASSERT(hugetlb_pool_read(hpage, &pool) && !hugetlb_pool_unreserved(&pool),
		    "the pool is not exhausted");

	pf->vcpu = g.vcpu;
	pf->gpa = g.gpa + (n - 1) * hpage;
	pf->hpage = hpage;
	TEST_ASSERT(!pthread_create(&thread, NULL, prefault_fn, pf), "pthread_create()");
	while (READ_ONCE(pf->tries) < 16 && !READ_ONCE(pf->ok))
		usleep(1000);
	TEST_ASSERT(!READ_ONCE(pf->ok), "a fault succeeded with the pool exhausted");
	start = now_seconds();
	gmem_punch(g.fd, 0, (n - 1) * hpage);
	*took = now_seconds() - start;
	usleep(100000);
	WRITE_ONCE(pf->stop, true);
	pthread_join(thread, NULL);

	early = pf->ok && pf->free_at_ok < pool.free + n - 2;
	close(fd2);
	gmem_guest_destroy(&g);
	free(pf);
	return early;
}

/*
 * A punch gives each hugepage back, with its reservation, as it releases
 * it, not at its end: with the pool exhausted, a fault on another hugepage
 * of the file succeeds while the punch is still releasing the rest.  The
 * faulting thread may not run during a punch, so rounds go on for up to a
 * minute until one shows it, and the test fails when at least three did
 * not.
 */
TEST_F_TIMEOUT(gmem_punch, refault_during_long_punch, 300)
{
	const u64 n = hugetlb_pool_unreserved(&self->base);
	double deadline = now_seconds() + 60, took, longest = 0;
	u64 rounds, early = 0;

	if (variant->page_size != SZ_2M)
		SKIP(return, "needs many hugepages: 2M only");
	if (n < 64)
		SKIP(return, "need 64 unreserved hugepages, have %lu", n);

	for (rounds = 0; !early && now_seconds() < deadline; rounds++) {
		early += refault_round(self->vm, self->backing, n, &took);
		longest = max(longest, took);
		assert_pool(0, 0, "round %lu", rounds);
	}
	ksft_print_msg("%lu rounds, punches of %lu hugepages of up to %.1f ms\n",
		       rounds, n - 1, longest * 1e3);
	ksft_print_msg("rounds whose fault succeeded before the punch released all: %lu\n",
		       early);
	ASSERT_TRUE(early || rounds < 3)
		TH_LOG("the fault succeeded only once the punch had released all: %s",
		       "no hugepage was usable before the punch ended");
	if (!early)
		SKIP(return, "%lu rounds in a minute: too few to tell", rounds);
}

TEST_HARNESS_MAIN
