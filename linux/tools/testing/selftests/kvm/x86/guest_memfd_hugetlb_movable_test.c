// SPDX-License-Identifier: GPL-2.0-only
/*
 * hugetlb guest_memfd pins its folios, so it must never take one from
 * ZONE_MOVABLE: with a 2M pool partly in ZONE_MOVABLE, a file reserving the
 * whole pool allocates exactly the pool's pages outside that zone, and the
 * next allocation fails with ENOMEM; with an empty pool that may overcommit
 * (-s), the surplus pages taken for a file's reservation at create are all
 * outside it, so that every one can be allocated.  The folios freed at close
 * (the "free" calls of kvm:kvm_gmem_invalidate, with their pfns) are none of
 * the zone.
 *
 * Needs a kernel booted with movablecore= and a 2M pool set at run time
 * (tests/host/movable-zone.sh), so not run with the other tests.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <linux/mman.h>

#include "gmem_hugetlb.h"
#include "kvm_util.h"
#include "test_util.h"

/* The pfn range of ZONE_MOVABLE, from /proc/zoneinfo. */
static void movable_zone(u64 *start, u64 *end)
{
	u64 spanned = 0;
	bool movable = false;
	char line[256];
	FILE *f = fopen("/proc/zoneinfo", "r");

	TEST_ASSERT(f, "can't open /proc/zoneinfo");
	*start = 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "Node", 4))
			movable = strstr(line, "zone  Movable");
		else if (movable && sscanf(line, " spanned %lu", &spanned) != 1)
			sscanf(line, " start_pfn: %lu", start);
	}
	fclose(f);
	*end = *start + spanned;
}

/* How many of the pool's @nr free 2M pages lie in [start, end). */
static u64 free_pages_in(u64 nr, u64 start, u64 end)
{
	char *p = kvm_mmap(nr * SZ_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE |
			   MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB | MAP_POPULATE, -1);
	int fd = open("/proc/self/pagemap", O_RDONLY);
	u64 i, entry, pfn, in = 0;

	TEST_ASSERT(fd >= 0, "can't open /proc/self/pagemap");
	for (i = 0; i < nr; i++) {
		TEST_ASSERT(pread(fd, &entry, 8, ((uintptr_t)p / SZ_4K + i * 512) * 8) == 8,
			    "can't read pagemap");
		TEST_ASSERT(entry & BIT_ULL(63), "page %lu not present", i);
		pfn = entry & GENMASK_ULL(54, 0);
		in += pfn >= start && pfn < end;
	}
	close(fd);
	kvm_munmap(p, nr * SZ_2M);
	return in;
}

/*
 * Allocate hugepages 0 to @nr - 1 of @fd one by one until one fails;
 * return how many were allocated, and the error in *@err (0 if none).
 */
static u64 allocate_each(int fd, u64 nr, int *err)
{
	u64 i;

	*err = 0;
	for (i = 0; i < nr; i++) {
		*err = __gmem_fallocate(fd, false, i * SZ_2M, SZ_2M);
		if (*err)
			break;
	}
	return i;
}

/* Close @fd: the @allocated folios it frees must lie outside [start, end). */
static void close_and_check_frees(int fd, u64 allocated, u64 start, u64 end)
{
	struct gmem_events ev = {};
	u64 frees = 0, bad = 0, i;

	close(fd);
	TEST_ASSERT(!gmem_trace_read(&ev), "the trace buffer lost events");
	gmem_trace_stop();
	for (i = 0; i < ev.nr; i++) {
		if (ev.ev[i].kind != GMEM_FREE)
			continue;
		frees++;
		bad += ev.ev[i].pfn >= start && ev.ev[i].pfn < end;
	}
	TEST_ASSERT(frees == allocated && !bad,
		    "%lu of the %lu folios freed at close were in ZONE_MOVABLE (%lu allocated)",
		    bad, frees, allocated);
	gmem_events_free(&ev);
}

/*
 * The pool's free pages, part of them in ZONE_MOVABLE: a file reserving
 * them all allocates exactly those outside it, then fails with ENOMEM.
 */
static void test_pool_pages(struct kvm_vm *vm, struct guest_memfd_backing b,
			    u64 start, u64 end)
{
	struct hugetlb_pool base;
	u64 nr, movable, allocated;
	int fd, err;

	TEST_ASSERT(hugetlb_pool_read(SZ_2M, &base), "no 2M pool");
	nr = hugetlb_pool_unreserved(&base);
	movable = free_pages_in(nr, start, end);
	printf("ZONE_MOVABLE pfns [0x%lx, 0x%lx); %lu of %lu free 2M pages in it\n",
	       start, end, movable, nr);
	TEST_ASSERT(movable && movable < nr, "need free 2M pages in and out of ZONE_MOVABLE");

	gmem_trace_start(GMEM_TRACE_INVALIDATE);
	fd = vm_create_guest_memfd_backing(vm, nr * SZ_2M, b);
	allocated = allocate_each(fd, nr, &err);
	printf("allocated %lu of %lu reserved 2M pages, then: %s\n", allocated, nr,
	       err ? strerror(err) : "no failure");
	TEST_ASSERT(allocated == nr - movable && err == ENOMEM,
		    "allocated %lu of %lu, %lu of them in ZONE_MOVABLE: expected %lu, then ENOMEM",
		    allocated, nr, movable, nr - movable);
	close_and_check_frees(fd, allocated, start, end);
	hugetlb_pool_assert(SZ_2M, &base, 0, 0, "closed");
	printf("no folio from ZONE_MOVABLE\n");
}

/*
 * An empty pool that may overcommit: the surplus pages a file's creation
 * adds to the pool for its reservation are allocated for it, never from
 * ZONE_MOVABLE, so that every one of them can be allocated.
 */
static void test_surplus_pages(struct kvm_vm *vm, struct guest_memfd_backing b,
			       u64 start, u64 end)
{
	struct hugetlb_pool base, pool;
	u64 nr, allocated;
	int fd, err;

	TEST_ASSERT(hugetlb_pool_read(SZ_2M, &base), "no 2M pool");
	TEST_ASSERT(!base.nr && base.nr_overcommit >= 16,
		    "need an empty 2M pool that may overcommit 16 pages, have %lu and %lu",
		    base.nr, base.nr_overcommit);
	nr = base.nr_overcommit;

	gmem_trace_start(GMEM_TRACE_INVALIDATE);
	fd = vm_create_guest_memfd_backing(vm, nr * SZ_2M, b);
	TEST_ASSERT(hugetlb_pool_read(SZ_2M, &pool) && pool.surplus == nr,
		    "%lu surplus 2M pages after creating a file of %lu", pool.surplus, nr);
	allocated = allocate_each(fd, nr, &err);
	printf("allocated %lu of %lu surplus 2M pages, then: %s\n", allocated, nr,
	       err ? strerror(err) : "no failure");
	TEST_ASSERT(allocated == nr,
		    "allocated %lu of the %lu surplus pages taken at create: %s",
		    allocated, nr, strerror(err));
	close_and_check_frees(fd, allocated, start, end);
	hugetlb_pool_assert(SZ_2M, &base, 0, 0, "closed");
	TEST_ASSERT(hugetlb_pool_read(SZ_2M, &pool) && !pool.nr && !pool.surplus,
		    "the surplus pages stayed in the pool: %lu, surplus %lu",
		    pool.nr, pool.surplus);
	printf("every surplus page allocated, none from ZONE_MOVABLE\n");
}

/*
 * Without arguments: the pool's free pages, which must be in and out of
 * ZONE_MOVABLE.  With -s: an empty pool with nr_overcommit_hugepages.
 */
int main(int argc, char *argv[])
{
	const struct guest_memfd_backing b = guest_memfd_hugetlb_backing(SZ_2M);
	bool surplus = argc > 1 && !strcmp(argv[1], "-s");
	struct kvm_vm *vm;
	u64 start, end;

	TEST_REQUIRE(sw_protected_vm_supported());
	vm = gmem_vm_create_barebones();
	TEST_REQUIRE(vm_guest_memfd_backing_valid(vm, b));
	TEST_REQUIRE(gmem_trace_available(GMEM_TRACE_INVALIDATE));
	movable_zone(&start, &end);
	TEST_ASSERT(end > start, "no ZONE_MOVABLE: boot with movablecore=");

	if (surplus)
		test_surplus_pages(vm, b, start, end);
	else
		test_pool_pages(vm, b, start, end);
	kvm_vm_free(vm);
	return 0;
}
