// SPDX-License-Identifier: GPL-2.0
/*
 * hugetlb guest_memfd pins its folios, so it must never take one from
 * ZONE_MOVABLE: with a 2 MiB pool that is partly in ZONE_MOVABLE, a file
 * reserving the whole pool can allocate exactly the pool's pages outside
 * that zone, and the next allocation fails with ENOMEM.
 *
 * Needs a kernel booted with movablecore= and a 2 MiB pool allocated at
 * run time (tests/host/movable-zone.sh does both).  Not run in the main
 * test boot.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <linux/mman.h>
#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"

#include "kselftest_harness.h"
#include "gmem_hugetlb_util.h"

#define TRACING_DIR	"/sys/kernel/tracing"
#define GMEM_EVENT_DIR	TRACING_DIR "/events/kvm/kvm_gmem_invalidate"

static uint64_t movable_start, movable_end;

/* The pfn range of ZONE_MOVABLE, from /proc/zoneinfo. */
static void read_movable_zone(void)
{
	uint64_t start = 0, spanned = 0;
	bool in_movable = false;
	char line[256];
	FILE *f = fopen("/proc/zoneinfo", "r");

	TEST_ASSERT(f, "Can't open /proc/zoneinfo");
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "Node", 4)) {
			in_movable = !!strstr(line, "zone  Movable");
			continue;
		}
		if (!in_movable)
			continue;
		if (sscanf(line, " spanned %lu", &spanned) == 1)
			continue;
		if (sscanf(line, " start_pfn: %lu", &start) == 1)
			continue;
	}
	fclose(f);
	movable_start = start;
	movable_end = start + spanned;
}

static bool pfn_movable(uint64_t pfn)
{
	return pfn >= movable_start && pfn < movable_end;
}

/* How many of the pool's free 2 MiB pages are in ZONE_MOVABLE. */
static uint64_t free_movable_hugepages(uint64_t nr_free)
{
	uint64_t i, entry, movable = 0;
	size_t len = nr_free * SZ_2M;
	char *p;
	int fd;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB |
		 MAP_POPULATE, -1, 0);
	TEST_ASSERT(p != MAP_FAILED, "Can't map the %lu free 2M pages", nr_free);
	fd = open("/proc/self/pagemap", O_RDONLY);
	TEST_ASSERT(fd >= 0, "Can't open /proc/self/pagemap");
	for (i = 0; i < nr_free; i++) {
		TEST_ASSERT(pread(fd, &entry, sizeof(entry),
				  ((uintptr_t)p / getpagesize() + i * 512) * 8) == 8,
			    "Can't read pagemap");
		TEST_ASSERT(entry & (1ULL << 63), "Page %lu not present", i);
		movable += pfn_movable(entry & ((1ULL << 55) - 1));
	}
	close(fd);
	munmap(p, len);
	return movable;
}

/* pfns of the folios a close reported as freed, from the tracepoint. */
static uint64_t count_movable_frees(uint64_t *frees)
{
	static const char tag[] = "kvm_gmem_invalidate: ";
	uint64_t index, pfn, movable = 0;
	char line[512], why[16], *s;
	unsigned int order;
	FILE *f = fopen(TRACING_DIR "/trace", "r");

	TEST_ASSERT(f, "Can't open the trace");
	*frees = 0;
	while (fgets(line, sizeof(line), f)) {
		s = strstr(line, tag);
		if (!s || sscanf(s + strlen(tag),
				 "index 0x%lx pfn 0x%lx order %u why %15s",
				 &index, &pfn, &order, why) != 4 ||
		    strcmp(why, "free"))
			continue;
		(*frees)++;
		movable += pfn_movable(pfn);
	}
	fclose(f);
	return movable;
}

TEST(no_folio_from_zone_movable)
{
	struct hugetlb_pool_stats base, now;
	uint64_t nr, movable, allocated, frees, bad;
	struct kvm_vm *vm;
	int fd;

	TEST_REQUIRE(sw_protected_vm_supported());
	TEST_REQUIRE(kvm_check_cap(KVM_CAP_GUEST_MEMFD_HUGETLB) & BIT(21));
	read_movable_zone();
	TEST_ASSERT(movable_end > movable_start,
		    "No ZONE_MOVABLE: boot with movablecore=");
	TEST_ASSERT(hugetlb_get_pool_stats(SZ_2M, &base), "No 2M pool");
	nr = base.free - base.resv;
	movable = free_movable_hugepages(nr);
	printf("ZONE_MOVABLE pfns [0x%lx, 0x%lx); %lu of %lu free 2M pages in it\n",
	       movable_start, movable_end, movable, nr);
	TEST_ASSERT(movable && movable < nr,
		    "Need free 2M pages both in and out of ZONE_MOVABLE (%lu of %lu in it)",
		    movable, nr);

	TEST_ASSERT(!write_str_to_file(GMEM_EVENT_DIR "/enable", "1") &&
		    !write_str_to_file(TRACING_DIR "/trace", ""),
		    "Can't enable the kvm_gmem_invalidate tracepoint");

	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	fd = vm_create_guest_memfd(vm, nr * SZ_2M, guest_memfd_hugetlb_flags(SZ_2M));
	for (allocated = 0; allocated < nr; allocated++) {
		if (gmem_fallocate(fd, false, allocated * SZ_2M, SZ_2M))
			break;
	}
	printf("allocated %lu of %lu reserved 2M pages, then: %s\n",
	       allocated, nr, allocated < nr ? strerror(errno) : "no failure");
	TEST_ASSERT(allocated == nr - movable && errno == ENOMEM,
		    "Allocated %lu hugepages of %lu, %lu of them in ZONE_MOVABLE: expected %lu, then ENOMEM",
		    allocated, nr, movable, nr - movable);

	close(fd);
	write_str_to_file(GMEM_EVENT_DIR "/enable", "0");
	bad = count_movable_frees(&frees);
	TEST_ASSERT(frees == allocated && !bad,
		    "%lu of the %lu folios freed at close were in ZONE_MOVABLE (%lu allocated)",
		    bad, frees, allocated);

	kvm_vm_free(vm);
	TEST_ASSERT(hugetlb_get_pool_stats(SZ_2M, &now) &&
		    now.free == base.free && now.resv == base.resv,
		    "Pool free/resv %lu/%lu, was %lu/%lu", now.free, now.resv,
		    base.free, base.resv);
	printf("no folio from ZONE_MOVABLE\n");
}

TEST_HARNESS_MAIN
