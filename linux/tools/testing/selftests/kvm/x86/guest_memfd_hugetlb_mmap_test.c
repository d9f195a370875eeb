// SPDX-License-Identifier: GPL-2.0-only
/*
 * mmap() of hugetlb guest_memfd, as non-confidential VMMs use it: a
 * default VM's file created with GUEST_MEMFD_FLAG_HUGETLB |
 * GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED, mapped by the VMM
 * and by KVM (a gmem-only memslot, or an ordinary memslot over the VMM's
 * mapping as QEMU 11 binds it).
 *
 * Each test checks the data through every mapping, that the mapped pages
 * are the file's hugetlb folios, never split (pagemap, kpageflags), and
 * that the pool is exactly as before when the file is gone.  The pool
 * counters are global: nothing else may use hugepages of the tested size
 * while this runs.  The hwpoison test loses a hugepage for good (run it
 * last: -t hwpoison; the others: -T hwpoison).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/mempolicy.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "gmem_hugetlb.h"
#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include "kselftest_harness.h"
#include "gmem_hugetlb_harness.h"

/* Never zero, so that stale data can't pass for zeroed memory. */
#define PATTERN(off)	((u64)(0x5a5aa5a500000000ULL ^ (off)))
#define MARK(off)	((u64)(0x1234abcd00000000ULL ^ (off)))

#define KPF_HUGE	17

#define MMAP_GPA	(4ULL << 30)
#define MMAP_SLOT	10

/* Most tests use a file of two hugepages; hwpoison, run last, one. */
#define have_two() \
	gmem_need_hugepages(_metadata, variant->page_size, &self->base, 2)

#define assert_pool(free, resv, fmt, ...) \
	hugetlb_pool_assert(variant->page_size, &self->base, free, resv, fmt, ##__VA_ARGS__)

FIXTURE(gmem_mmap) {
	struct kvm_vm *vm;
	struct guest_memfd_backing backing;
	struct hugetlb_pool base;
	/* Hugepages a test lost for good (hwpoison). */
	long lost;
	/* A node whose pool mbind shrank, and its size before (or -1). */
	int shrunk_node;
	long shrunk_nr;
};

FIXTURE_VARIANT(gmem_mmap) {
	size_t page_size;
};

FIXTURE_VARIANT_ADD(gmem_mmap, 2M) {
	.page_size = SZ_2M,
};

FIXTURE_VARIANT_ADD(gmem_mmap, 1G) {
	.page_size = SZ_1G,
};

static const u64 mmap_flags = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED;

FIXTURE_SETUP(gmem_mmap)
{
	const size_t hpage = variant->page_size;
	u64 flags;

	self->vm = NULL;
	self->lost = 0;
	self->shrunk_nr = -1;
	if (!hugetlb_pool_read(hpage, &self->base))
		SKIP(return, "no %zukB hugetlb pool", hpage >> 10);
	if (!gmem_need_hugepages(_metadata, hpage, &self->base, 1))
		return;
	self->vm = vm_create_barebones();
	flags = vm_check_cap(self->vm, KVM_CAP_GUEST_MEMFD_FLAGS);
	if (!(flags & GUEST_MEMFD_FLAG_HUGETLB) ||
	    !(vm_check_cap(self->vm, KVM_CAP_GUEST_MEMFD_HUGETLB) &
	      BIT_ULL(__builtin_ctzl(hpage))))
		SKIP(return, "default VMs have no %zukB hugetlb guest_memfd", hpage >> 10);
	ASSERT_EQ(mmap_flags, flags & mmap_flags);
	self->backing = guest_memfd_hugetlb_backing(hpage);
	self->backing.flags |= mmap_flags;
}

static void node_hugepages_set(int node, size_t hpage, long nr);

FIXTURE_TEARDOWN(gmem_mmap)
{
	if (self->vm)
		kvm_vm_free(self->vm);
	/* What a failed mbind test left shrunk. */
	if (self->shrunk_nr >= 0)
		node_hugepages_set(self->shrunk_node, variant->page_size,
				   self->shrunk_nr);
	hugetlb_pool_assert(variant->page_size, &self->base, -self->lost, 0,
			    "after the test");
	/* For the runner's pool check: those pages are gone for good. */
	if (self->lost) {
		printf("pool-loss: %zu %ld\n", variant->page_size >> 10, self->lost);
		fflush(stdout);
	}
}

static u64 *map_file(int fd, size_t size)
{
	u64 *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	TEST_ASSERT(mem != MAP_FAILED, "mmap of %zu bytes: %s", size, strerror(errno));
	return mem;
}

/* One word of each 4K page of [off, off + len). */
static void fill(u64 *mem, u64 off, u64 len)
{
	u64 o;

	for (o = off; o < off + len; o += SZ_4K)
		mem[o / 8] = PATTERN(o);
}

/* The first 4K page of [off, off + len) whose word isn't @want's, or -1. */
static s64 first_bad(const u64 *mem, u64 off, u64 len, bool zero)
{
	u64 o;

	for (o = off; o < off + len; o += SZ_4K)
		if (mem[o / 8] != (zero ? 0 : PATTERN(o)))
			return o;
	return -1;
}

#define ASSERT_DATA(mem, off, len)	ASSERT_EQ(-1, first_bad(mem, off, len, false))
#define ASSERT_ZERO(mem, off, len)	ASSERT_EQ(-1, first_bad(mem, off, len, true))

/* pagemap entry of @addr in this process. */
static u64 pagemap_entry(const void *addr)
{
	u64 e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	TEST_ASSERT(fd >= 0, "open pagemap: %s", strerror(errno));
	TEST_ASSERT(pread(fd, &e, 8, (uintptr_t)addr / SZ_4K * 8) == 8, "read pagemap");
	close(fd);
	return e;
}

static u64 pfn_of(const void *addr)
{
	u64 e = pagemap_entry(addr);

	TEST_ASSERT(e & BIT_ULL(63), "%p not present in pagemap", addr);
	return e & GENMASK_ULL(54, 0);
}

static u64 page_flags_of(u64 pfn)
{
	u64 f = 0;
	int fd = open("/proc/kpageflags", O_RDONLY);

	TEST_ASSERT(fd >= 0, "open kpageflags: %s", strerror(errno));
	TEST_ASSERT(pread(fd, &f, 8, pfn * 8) == 8, "read kpageflags");
	close(fd);
	return f;
}

/*
 * The mapped subpages @first .. @first + @nr - 1 of the hugepage at @hp (a
 * mapping's address of its first byte) are those of one hugetlb folio,
 * at their offsets: the folio is mapped, not split or copied.
 */
static void assert_folio_mapped(const u8 *hp, size_t hpage, u64 first, u64 nr)
{
	u64 pfn0 = pfn_of(hp + first * SZ_4K) - first, i;

	TEST_ASSERT(!(pfn0 & (hpage / SZ_4K - 1)),
		    "pfn %#lx of subpage 0 isn't aligned to the hugepage", pfn0);
	TEST_ASSERT(page_flags_of(pfn0 + first) & BIT_ULL(KPF_HUGE),
		    "pfn %#lx isn't of a hugetlb folio", pfn0 + first);
	for (i = first; i < first + nr; i++)
		TEST_ASSERT(pfn_of(hp + i * SZ_4K) == pfn0 + i,
			    "subpage %lu at pfn %#lx, not %#lx", i,
			    pfn_of(hp + i * SZ_4K), pfn0 + i);
}

/* A "Name: N kB" line of /proc/self/status, in kB. */
static long status_kb(const char *name)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	TEST_ASSERT(f, "open status: %s", strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, name, strlen(name)))
			kb = strtol(line + strlen(name), NULL, 10);
	fclose(f);
	return kb;
}

/* Rss of the VMA that starts at @addr, from /proc/self/smaps, in kB. */
static long smaps_rss_kb(const void *addr)
{
	unsigned long start, end;
	char line[256];
	long rss = -1;
	bool in = false;
	FILE *f = fopen("/proc/self/smaps", "r");

	TEST_ASSERT(f, "open smaps: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		/* A VMA's first line: "start-end perms ..." */
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
			in = start == (uintptr_t)addr;
			continue;
		}
		if (in && sscanf(line, "Rss: %ld kB", &rss) == 1)
			break;
	}
	fclose(f);
	return rss;
}

/*
 * Subpages whose mapping the tests check: head, first tail struct pages, and
 * beyond the first vmemmap page (HVO maps those struct pages read-only).
 */
static const u64 probe_subpages[] = { 0, 1, 63, 64, 65, 100, 511 };

TEST_F(gmem_mmap, map_read_write)
{
	const size_t hpage = variant->page_size, size = 2 * hpage;
	u64 *mem, *mem2;
	long faults;
	int fd, i, h;

	if (!have_two())
		return;
	fd = vm_create_guest_memfd_backing(self->vm, size, self->backing);
	assert_pool(0, 2, "after creation");

	/* As upstream: no private (copy-on-write) mapping. */
	ASSERT_EQ(MAP_FAILED, mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0));
	ASSERT_EQ(EINVAL, errno);

	mem = map_file(fd, size);
	ASSERT_EQ(0, (uintptr_t)mem & (hpage - 1)) TH_LOG("%p not aligned", mem);
	/* Mapping allocates nothing; touching does. */
	assert_pool(0, 2, "after mmap");
	/* One fault maps a whole hugepage. */
	faults = minor_faults();
	fill(mem, 0, size);
	ASSERT_EQ(2, minor_faults() - faults);
	assert_pool(-2, 0, "after touching all");
	ASSERT_DATA(mem, 0, size);

	for (h = 0; h < 2; h++)
		for (i = 0; i < ARRAY_SIZE(probe_subpages); i++)
			assert_folio_mapped((u8 *)mem + h * hpage, hpage,
					    probe_subpages[i], 1);
	assert_folio_mapped((u8 *)mem, hpage, 0, 512);

	/*
	 * Reading smaps and pagemap (above) accounts the mappings without
	 * unmapping them: touching it all again takes no fault.
	 */
	ASSERT_EQ(size >> 10, smaps_rss_kb(mem));
	faults = minor_faults();
	ASSERT_DATA(mem, 0, size);
	ASSERT_EQ(0, minor_faults() - faults);

	/* A second mapping, at an offset, sees the same memory. */
	mem2 = mmap(NULL, hpage, PROT_READ | PROT_WRITE, MAP_SHARED, fd, hpage);
	ASSERT_NE(MAP_FAILED, mem2);
	ASSERT_EQ(0, (uintptr_t)mem2 & (hpage - 1));
	ASSERT_EQ(PATTERN(hpage), mem2[0]);
	ASSERT_EQ(pfn_of(mem2), pfn_of((u8 *)mem + hpage));
	mem2[5] = MARK(5);
	ASSERT_EQ(MARK(5), mem[hpage / 8 + 5]);
	mem2[5] = PATTERN(hpage);	/* word 5 isn't checked, but restore */
	ASSERT_EQ(0, munmap(mem2, hpage));

	/* The mapping keeps the file, and so its memory, without the fd. */
	close(fd);
	ASSERT_DATA(mem, 0, size);
	ASSERT_EQ(0, munmap(mem, size));
	assert_pool(0, 0, "after munmap and close");
}

/* A child process @fn(mem) with the mapping inherited; returns its status. */
static int in_child(void (*fn)(u64 *mem, u64 arg), u64 *mem, u64 arg)
{
	int status;
	pid_t pid = fork();

	TEST_ASSERT(pid >= 0, "fork: %s", strerror(errno));
	if (!pid) {
		fn(mem, arg);
		_exit(0);
	}
	TEST_ASSERT(waitpid(pid, &status, 0) == pid, "waitpid");
	return status;
}

static void child_check_and_mark(u64 *mem, u64 off)
{
	/* The child faults the memory in again (no page-table copy). */
	if (first_bad(mem, off, SZ_2M, false) != -1)
		_exit(1);
	mem[off / 8 + 1] = MARK(off);
}

static void child_check_zero(u64 *mem, u64 off)
{
	if (mem[off / 8] != 0 || mem[off / 8 + 1] != 0)
		_exit(1);
}

TEST_F(gmem_mmap, punch_and_fork)
{
	const size_t hpage = variant->page_size, size = 2 * hpage;
	const u64 hole = 100 * SZ_4K;
	const u64 kept[] = { 0, hole - SZ_4K, hole + SZ_4K, SZ_2M,
			     hpage - SZ_4K, hpage };
	u64 *mem, *mem2;
	struct gmem_fdinfo info;
	long faults;
	size_t i;
	int fd;

	if (!have_two())
		return;
	fd = vm_create_guest_memfd_backing(self->vm, size, self->backing);
	mem = map_file(fd, size);
	mem2 = map_file(fd, size);
	fill(mem, 0, size);
	ASSERT_DATA(mem2, 0, size);

	/* A child sees the data and its write lands in the file. */
	ASSERT_EQ(0, in_child(child_check_and_mark, mem, 0));
	ASSERT_EQ(MARK(0), mem2[1]);
	mem[1] = PATTERN(0);

	/* 4K punch: zero in every mapping, the rest intact, the folio kept. */
	gmem_punch(fd, hole, SZ_4K);
	gmem_fdinfo_read(fd, &info);
	ASSERT_EQ(1, info.punched_subpages);
	ASSERT_EQ(0, pagemap_entry((u8 *)mem + hole) & BIT_ULL(63));
	/*
	 * The rest stays mapped in both mappings (smaller entries replaced
	 * the huge one): present before any touch, and read without a fault.
	 */
	for (i = 0; i < ARRAY_SIZE(kept); i++) {
		ASSERT_TRUE(pagemap_entry((u8 *)mem + kept[i]) & BIT_ULL(63))
			TH_LOG("offset %#lx unmapped by the 4K punch", kept[i]);
		ASSERT_TRUE(pagemap_entry((u8 *)mem2 + kept[i]) & BIT_ULL(63));
	}
	faults = minor_faults();
	ASSERT_DATA(mem, 0, hole);
	ASSERT_DATA(mem, hole + SZ_4K, size - hole - SZ_4K);
	ASSERT_DATA(mem2, 0, hole);
	ASSERT_DATA(mem2, hole + SZ_4K, size - hole - SZ_4K);
	/* Writable as before (mem was written whole, mem2 only read). */
	for (i = 0; i < ARRAY_SIZE(kept); i++)
		mem[kept[i] / 8] = PATTERN(kept[i]);
	ASSERT_EQ(faults, minor_faults())
		TH_LOG("the rest of the hugepage faulted in again");
	ASSERT_ZERO(mem, hole, SZ_4K);
	ASSERT_ZERO(mem2, hole, SZ_4K);
	ASSERT_EQ(0, mem2[hole / 8 + 1]);
	ASSERT_DATA(mem, 0, hole);
	ASSERT_DATA(mem2, hole + SZ_4K, size - hole - SZ_4K);
	ASSERT_EQ(0, in_child(child_check_zero, mem, hole));
	assert_pool(-2, 0, "after a 4K punch");
	/* The neighbours are still the same folio. */
	assert_folio_mapped((u8 *)mem2, hpage, 99, 1);
	assert_folio_mapped((u8 *)mem2, hpage, 101, 1);

	/* The read above refilled it (zeroed); a write sticks. */
	gmem_fdinfo_read(fd, &info);
	ASSERT_EQ(0, info.punched_subpages);
	mem[hole / 8] = PATTERN(hole);
	ASSERT_DATA(mem2, 0, size);
	assert_folio_mapped((u8 *)mem, hpage, 99, 3);

	/* Punched by pieces, the second hugepage goes back to the pool. */
	gmem_punch(fd, hpage, SZ_4K);
	assert_pool(-2, 0, "after punching part of the second hugepage");
	gmem_punch(fd, hpage + SZ_4K, hpage - SZ_4K);
	assert_pool(-1, 0, "after punching all of it");
	ASSERT_DATA(mem, 0, hpage);
	/* Touching it again takes a zeroed hugepage. */
	ASSERT_ZERO(mem2, hpage, hpage);
	assert_pool(-2, 0, "after touching it again");

	ASSERT_EQ(0, munmap(mem, size));
	ASSERT_EQ(0, munmap(mem2, size));
	close(fd);
	assert_pool(0, 0, "after close");
}

TEST_F(gmem_mmap, madvise_mprotect_mremap)
{
	const size_t hpage = variant->page_size, size = 2 * hpage;
	const u64 off = hpage + 64 * SZ_4K;
	struct gmem_fdinfo info;
	u64 *mem, *moved, *area;
	int fd;

	if (!have_two())
		return;
	fd = vm_create_guest_memfd_backing(self->vm, size, self->backing);
	mem = map_file(fd, size);
	fill(mem, 0, size);

	/* MADV_DONTNEED drops mappings, never data. */
	ASSERT_EQ(0, madvise((u8 *)mem + off, SZ_4K, MADV_DONTNEED));
	ASSERT_EQ(0, pagemap_entry((u8 *)mem + off) & BIT_ULL(63));
	ASSERT_DATA(mem, 0, size);
	ASSERT_EQ(0, madvise(mem, size, MADV_DONTNEED));
	ASSERT_DATA(mem, 0, size);
	assert_pool(-2, 0, "after MADV_DONTNEED");

	/* MADV_REMOVE punches. */
	ASSERT_EQ(0, madvise((u8 *)mem + off, SZ_4K, MADV_REMOVE));
	gmem_fdinfo_read(fd, &info);
	ASSERT_EQ(1, info.punched_subpages);
	ASSERT_ZERO(mem, off, SZ_4K);
	mem[off / 8] = PATTERN(off);

	/* mprotect() of one 4K page splits the VMA, the data stays. */
	ASSERT_EQ(0, mprotect((u8 *)mem + off, SZ_4K, PROT_READ));
	ASSERT_DATA(mem, 0, size);
	ASSERT_EQ(0, mprotect((u8 *)mem + off, SZ_4K, PROT_READ | PROT_WRITE));

	/* mremap() to an aligned place elsewhere. */
	area = mmap(NULL, size + hpage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, area);
	moved = (u64 *)(((uintptr_t)area + hpage - 1) & ~(hpage - 1));
	ASSERT_EQ(moved, mremap(mem, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, moved));
	ASSERT_DATA(moved, 0, size);
	assert_folio_mapped((u8 *)moved, hpage, 0, 512);

	/*
	 * VMA boundaries that move inside a huge entry, by splits and by
	 * merges: the data stays, and nothing reads a 1G page as a page
	 * table (a PUD left across a boundary would be).
	 */
	ASSERT_EQ(0, mprotect(moved, hpage, PROT_READ));
	ASSERT_EQ(0, mprotect((u8 *)moved + hpage, SZ_2M + SZ_4K, PROT_READ));
	ASSERT_DATA(moved, 0, size);
	ASSERT_EQ(0, mprotect(moved, size, PROT_READ | PROT_WRITE));
	ASSERT_EQ(0, mprotect((u8 *)moved + hpage, SZ_2M, PROT_READ));
	ASSERT_EQ(0, mprotect(moved, size, PROT_READ | PROT_WRITE));
	fill(moved, 0, size);

	/* No reclaim hints: the memory is not on the LRU. */
	ASSERT_EQ(-1, madvise(moved, size, MADV_COLD));
	ASSERT_EQ(EINVAL, errno);
	ASSERT_EQ(-1, madvise(moved, SZ_4K, MADV_PAGEOUT));
	ASSERT_EQ(EINVAL, errno);
	ASSERT_DATA(moved, 0, size);

	/* mremap() of part of it, and to an address of another alignment. */
	mem = mremap((u8 *)moved + size - SZ_4K, SZ_4K, SZ_4K,
		     MREMAP_MAYMOVE | MREMAP_FIXED, (u8 *)area + size + hpage - SZ_4K);
	ASSERT_NE(MAP_FAILED, mem);
	ASSERT_EQ(PATTERN(size - SZ_4K), mem[0]);
	ASSERT_EQ(0, munmap(mem, SZ_4K));
	mem = mmap(NULL, size + SZ_4K, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, mem);
	ASSERT_EQ(0, munmap(mem, size + SZ_4K));
	mem = mremap(moved, hpage, hpage, MREMAP_MAYMOVE | MREMAP_FIXED,
		     (u8 *)mem + SZ_4K);
	ASSERT_NE(MAP_FAILED, mem);
	ASSERT_DATA(mem, 0, hpage);
	ASSERT_EQ(0, munmap(mem, hpage));

	/* Unmapping one 4K page leaves the rest mapped and intact. */
	ASSERT_EQ(0, munmap((u8 *)moved + hpage + SZ_4K, SZ_4K));
	ASSERT_DATA(moved, hpage, SZ_4K);
	ASSERT_DATA(moved, hpage + 2 * SZ_4K, hpage - 3 * SZ_4K);
	ASSERT_EQ(0, munmap(area, size + hpage));
	close(fd);
	assert_pool(0, 0, "after close");
}

TEST_F(gmem_mmap, mlock_and_userfaultfd)
{
	const size_t hpage = variant->page_size, size = 2 * hpage;
	struct uffdio_register reg;
	struct uffdio_api api = { .api = UFFD_API };
	long faults;
	u64 *mem;
	int fd, uffd;

	if (!have_two())
		return;
	fd = vm_create_guest_memfd_backing(self->vm, size, self->backing);
	mem = map_file(fd, size);

	/* mlock() populates the mapping; the memory is unevictable anyway. */
	ASSERT_EQ(0, mlock(mem, hpage));
	assert_pool(-1, 1, "after mlock of one hugepage");
	ASSERT_NE(0, pagemap_entry((u8 *)mem + hpage - SZ_4K) & BIT_ULL(63));
	fill(mem, 0, size);
	ASSERT_EQ(0, munlock(mem, hpage));
	ASSERT_DATA(mem, 0, size);

	/* The THP knobs do not apply: one fault per hugepage still. */
	ASSERT_EQ(0, munmap(mem, size));
	mem = map_file(fd, size);
	ASSERT_EQ(0, madvise(mem, size, MADV_NOHUGEPAGE));
	faults = minor_faults();
	ASSERT_DATA(mem, 0, size);
	ASSERT_EQ(2, minor_faults() - faults);

	/* The VMA is not locked: nothing counts in VmLck. */
	ASSERT_EQ(0, mlock(mem, size));
	ASSERT_EQ(0, status_kb("VmLck:"));
	ASSERT_EQ(0, munlock(mem, size));

	/* No userfaultfd, in any mode (write-protect async included). */
	uffd = syscall(__NR_userfaultfd, O_CLOEXEC);
	if (uffd >= 0) {
		api.features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_HUGETLBFS_SHMEM |
			       UFFD_FEATURE_WP_UNPOPULATED;
		if (ioctl(uffd, UFFDIO_API, &api)) {
			TH_LOG("no UFFD_FEATURE_WP_ASYNC: %s", strerror(errno));
			api = (struct uffdio_api){ .api = UFFD_API };
			ASSERT_EQ(0, ioctl(uffd, UFFDIO_API, &api));
		}
		reg = (struct uffdio_register){
			.range = { .start = (uintptr_t)mem, .len = size },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};
		ASSERT_EQ(-1, ioctl(uffd, UFFDIO_REGISTER, &reg));
		ASSERT_EQ(EINVAL, errno);
		reg.mode = UFFDIO_REGISTER_MODE_WP;
		ASSERT_EQ(-1, ioctl(uffd, UFFDIO_REGISTER, &reg));
		ASSERT_EQ(EINVAL, errno);
		close(uffd);
	} else {
		TH_LOG("no userfaultfd: %s", strerror(errno));
	}
	ASSERT_EQ(0, munmap(mem, size));
	close(fd);
	assert_pool(0, 0, "after close");
}

/*
 * What the kernel reaches through get_user_pages(): process_vm_readv()
 * and process_vm_writev(), /proc/self/mem.
 */
TEST_F(gmem_mmap, gup)
{
	const size_t hpage = variant->page_size, size = 2 * hpage;
	/* Across the boundary of the two hugepages. */
	const u64 off = hpage - 3 * SZ_4K, len = 6 * SZ_4K;
	struct iovec local, remote;
	u64 *mem, *buf;
	int fd, memfd;

	if (!have_two())
		return;
	fd = vm_create_guest_memfd_backing(self->vm, size, self->backing);
	mem = map_file(fd, size);
	fill(mem, 0, size);
	buf = calloc(1, len);
	ASSERT_NE(NULL, buf);

	local = (struct iovec){ .iov_base = buf, .iov_len = len };
	remote = (struct iovec){ .iov_base = (u8 *)mem + off, .iov_len = len };
	ASSERT_EQ(len, process_vm_readv(getpid(), &local, 1, &remote, 1, 0))
		TH_LOG("process_vm_readv: %s", strerror(errno));
	ASSERT_EQ(0, memcmp(buf, (u8 *)mem + off, len));
	ASSERT_EQ(PATTERN(off), buf[0]);
	buf[1] = MARK(1);
	ASSERT_EQ(len, process_vm_writev(getpid(), &local, 1, &remote, 1, 0));
	ASSERT_EQ(MARK(1), mem[off / 8 + 1]);

	memfd = open("/proc/self/mem", O_RDWR);
	ASSERT_LE(0, memfd);
	memset(buf, 0, len);
	ASSERT_EQ(len, pread(memfd, buf, len, (uintptr_t)mem + off));
	ASSERT_EQ(PATTERN(off), buf[0]);
	ASSERT_EQ(MARK(1), buf[1]);
	buf[2] = MARK(2);
	ASSERT_EQ(len, pwrite(memfd, buf, len, (uintptr_t)mem + off));
	ASSERT_EQ(MARK(2), mem[off / 8 + 2]);
	close(memfd);

	/* A punch while pinned by none: zero through GUP too. */
	gmem_punch(fd, off, SZ_4K);
	ASSERT_EQ(len, process_vm_readv(getpid(), &local, 1, &remote, 1, 0));
	ASSERT_EQ(0, buf[0]);
	ASSERT_EQ(0, buf[1]);

	free(buf);
	ASSERT_EQ(0, munmap(mem, size));
	close(fd);
	assert_pool(0, 0, "after close");
}

/* The guest reads the VMM's pattern, then writes its marks. */
static void guest_code(u64 gpa, u64 size)
{
	u64 o;

	for (o = 0; o < size; o += SZ_4K)
		__GUEST_ASSERT(*(u64 *)(gpa + o) == PATTERN(o),
			       "offset %#lx: %#lx", o, *(u64 *)(gpa + o));
	for (o = 0; o < size; o += SZ_4K)
		*(u64 *)(gpa + o + 8) = MARK(o);
	GUEST_SYNC(1);
	/*
	 * After a 4K punch at the offset it is given (zero), and a punch of
	 * the second hugepage, which the VMM touched again (a new folio) and
	 * wrote a value into at the other offset given: a stale mapping of
	 * the old folio would not see it.
	 */
	o = READ_ONCE(*(u64 *)(gpa + 16));
	__GUEST_ASSERT(!*(u64 *)(gpa + o) && !*(u64 *)(gpa + o + 8),
		       "punched offset %#lx not zero", o);
	o = READ_ONCE(*(u64 *)(gpa + 24));
	__GUEST_ASSERT(*(u64 *)(gpa + o) == MARK(o),
		       "offset %#lx of a new folio: %#lx", o, *(u64 *)(gpa + o));
	GUEST_DONE();
}

static void run_guest(struct kvm_vcpu *vcpu, int stage)
{
	struct ucall uc;

	vcpu_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	switch (get_ucall(vcpu, &uc)) {
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
		break;
	case UCALL_SYNC:
		TEST_ASSERT(stage == uc.args[1], "stage %lu, expected %d", uc.args[1], stage);
		break;
	case UCALL_DONE:
		TEST_ASSERT(!stage, "done, expected stage %d", stage);
		break;
	default:
		TEST_FAIL("ucall %lu", uc.cmd);
	}
}

/*
 * A guest on the file: with @gmem_only, a memslot bound to it (KVM maps
 * from the file); else an ordinary memslot over the VMM's mapping, as QEMU
 * 11 binds a fully shared guest_memfd (KVM maps what get_user_pages()
 * finds).  Either way the guest and the VMM see the same bytes.
 */
static void guest_on_mapping(struct __test_metadata *_metadata,
			     size_t hpage, struct guest_memfd_backing backing,
			     bool gmem_only)
{
	const size_t size = 2 * hpage;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct mapping_levels l;
	u64 *mem, hole = hpage + 7 * SZ_4K;
	int fd;

	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	fd = vm_create_guest_memfd_backing(vm, size, backing);
	mem = map_file(fd, size);
	fill(mem, 0, size);
	if (gmem_only)
		vm_set_user_memory_region2(vm, MMAP_SLOT, KVM_MEM_GUEST_MEMFD,
					   MMAP_GPA, size, mem, fd, 0);
	else
		vm_set_user_memory_region(vm, MMAP_SLOT, 0, MMAP_GPA, size, mem);
	virt_map_level(vm, MMAP_GPA, MMAP_GPA, size, PG_LEVEL_2M);
	vcpu_args_set(vcpu, 2, MMAP_GPA, size);

	run_guest(vcpu, 1);
	ASSERT_EQ(MARK(0), mem[1]);
	ASSERT_EQ(MARK(size - SZ_4K), mem[(size - SZ_4K) / 8 + 1]);
	mapping_levels_read(vm, &l);
	TH_LOG("KVM mappings: %lu 4K, %lu 2M, %lu 1G", l.pages_4k, l.pages_2m, l.pages_1g);
	/*
	 * At the hugepage size: from the file's folios, or from the VMM's
	 * mapping, which maps them whole.
	 */
	ASSERT_EQ(2, mapping_levels_pages(&l, hpage));

	/*
	 * A 4K punch reaches the guest (the file's or the MMU notifier), and
	 * so does a whole-hugepage one: the guest must see the new folio.
	 */
	mem[2] = 7 * SZ_4K;
	gmem_punch(fd, 7 * SZ_4K, SZ_4K);
	ASSERT_EQ(0, mem[7 * SZ_4K / 8 + 1]);
	gmem_punch(fd, hpage, hpage);
	mem[3] = hole;
	mem[hole / 8] = MARK(hole);
	run_guest(vcpu, 0);

	kvm_vm_free(vm);
	ASSERT_EQ(0, munmap(mem, size));
	close(fd);
}

TEST_F(gmem_mmap, guest_gmem_only_memslot)
{
	if (!have_two())
		return;
	guest_on_mapping(_metadata, variant->page_size, self->backing, true);
	assert_pool(0, 0, "after the VM");
}

TEST_F(gmem_mmap, guest_hva_memslot)
{
	if (!have_two())
		return;
	guest_on_mapping(_metadata, variant->page_size, self->backing, false);
	assert_pool(0, 0, "after the VM");
}

static sigjmp_buf sigbus_jmp;
static bool at_madvise;
static siginfo_t sigbus_info;

static void sigbus_handler(int sig, siginfo_t *info, void *uc)
{
	sigbus_info = *info;
	siglongjmp(sigbus_jmp, 1);
}

/*
 * A memory error on a mapped subpage: the process that touches it gets
 * SIGBUS at its address with a 4K si_addr_lsb, and the rest of the
 * hugepage keeps working.  The hugepage is kept poisoned: lost for good.
 */
TEST_F(gmem_mmap, hwpoison)
{
	const size_t hpage = variant->page_size, size = hpage;
	const u64 bad = 70 * SZ_4K;
	struct sigaction sa = { .sa_sigaction = sigbus_handler, .sa_flags = SA_SIGINFO };
	u64 *p;
	u64 *mem;
	int fd;

	fd = vm_create_guest_memfd_backing(self->vm, size, self->backing);
	mem = map_file(fd, size);
	fill(mem, 0, size);

	ASSERT_EQ(0, sigaction(SIGBUS, &sa, NULL));
	/*
	 * The SIGBUS comes at once (the folio is dirty: memory_failure()
	 * kills the process that injected the error) or at the touch.
	 */
	p = &mem[bad / 8];
	self->lost = 1;
	at_madvise = true;
	if (!sigsetjmp(sigbus_jmp, 1)) {
		ASSERT_EQ(0, madvise((u8 *)mem + bad, SZ_4K, MADV_HWPOISON))
			self->lost = 0;
		at_madvise = false;
		(void)READ_ONCE(*p);
		ASSERT_TRUE(false) TH_LOG("no SIGBUS for the poisoned page");
	}
	TH_LOG("SIGBUS %s", at_madvise ? "from memory_failure()" : "at the touch");
	ASSERT_EQ(BUS_MCEERR_AR, sigbus_info.si_code);
	ASSERT_EQ((void *)p, sigbus_info.si_addr);
	ASSERT_EQ(12, sigbus_info.si_addr_lsb);

	/* The other subpages, in this and in a new mapping. */
	ASSERT_DATA(mem, 0, bad);
	ASSERT_DATA(mem, bad + SZ_4K, size - bad - SZ_4K);
	assert_folio_mapped((u8 *)mem, hpage, 69, 1);
	assert_folio_mapped((u8 *)mem, hpage, 71, 1);
	mem[(bad + SZ_4K) / 8] = MARK(0);
	ASSERT_EQ(0, munmap(mem, size));
	mem = map_file(fd, size);
	ASSERT_EQ(MARK(0), mem[(bad + SZ_4K) / 8]);
	if (!sigsetjmp(sigbus_jmp, 1)) {
		(void)READ_ONCE(mem[bad / 8]);
		ASSERT_TRUE(false);
	}
	ASSERT_EQ(12, sigbus_info.si_addr_lsb);
	signal(SIGBUS, SIG_DFL);

	ASSERT_EQ(0, munmap(mem, size));
	close(fd);
}

/* A RAM disk of the test kernel (CONFIG_BLK_DEV_RAM), for O_DIRECT. */
#define RAM_DISK	"/dev/ram0"

/*
 * O_DIRECT through the RAM disk: @len bytes at @src written to it (the
 * kernel reads @src through GUP), then read back into @dst (it writes @dst
 * through GUP).  0, or the errno of the call that failed.
 */
static int direct_io(const void *src, void *dst, size_t len)
{
	int fd, err = 0;

	fd = open(RAM_DISK, O_RDWR | O_DIRECT);
	TEST_ASSERT(fd >= 0, "open %s: %s", RAM_DISK, strerror(errno));
	if (pwrite(fd, src, len, 0) != (ssize_t)len)
		err = errno ? errno : EIO;
	else if (pread(fd, dst, len, 0) != (ssize_t)len)
		err = errno ? errno : EIO;
	close(fd);
	return err;
}

/*
 * io_uring from its uAPI numbers: the tools headers cannot include
 * linux/io_uring.h.  The ring's parameters are 120 bytes, zero on entry.
 */
#define IORING_REGISTER_BUFFERS		0
#define IORING_UNREGISTER_BUFFERS	1
#define IO_URING_PARAMS_SIZE		120

/*
 * Register [@mem, @mem + @len) as an io_uring fixed buffer (a long-term
 * pin), then unregister it.  0, or the errno of the registration.
 */
static int uring_fixed_buffer(void *mem, size_t len)
{
	struct iovec iov = { .iov_base = mem, .iov_len = len };
	u64 p[IO_URING_PARAMS_SIZE / 8] = {};
	int fd, ret;

	fd = syscall(__NR_io_uring_setup, 4, p);
	TEST_ASSERT(fd >= 0, "io_uring_setup: %s", strerror(errno));
	ret = syscall(__NR_io_uring_register, fd, IORING_REGISTER_BUFFERS, &iov, 1);
	ret = ret ? errno : 0;
	if (!ret)
		TEST_ASSERT(!syscall(__NR_io_uring_register, fd,
				     IORING_UNREGISTER_BUFFERS, NULL, 0),
			    "IORING_UNREGISTER_BUFFERS: %s", strerror(errno));
	close(fd);
	return ret;
}

/*
 * The kernel's users of guest memory that a VMM hands it: O_DIRECT disk
 * I/O into and out of the mapping (a short-term pin, across the boundary
 * of the two hugepages), and an io_uring fixed buffer (a long-term pin, as
 * vhost and VFIO take), with the data where it belongs.
 */
TEST_F(gmem_mmap, direct_io_and_long_term_pin)
{
	const size_t hpage = variant->page_size, size = 2 * hpage;
	const u64 off = hpage - 8 * SZ_4K, len = 16 * SZ_4K, to = 64 * SZ_4K;
	u64 *mem;
	int fd;

	if (!have_two())
		return;
	fd = vm_create_guest_memfd_backing(self->vm, size, self->backing);
	mem = map_file(fd, size);
	fill(mem, 0, size);

	/* Written from [off, off + len), read back at hpage + to. */
	ASSERT_EQ(0, direct_io((u8 *)mem + off, (u8 *)mem + hpage + to, len));
	ASSERT_EQ(0, memcmp((u8 *)mem + off, (u8 *)mem + hpage + to, len));
	ASSERT_EQ(PATTERN(off), mem[(hpage + to) / 8]);
	ASSERT_DATA(mem, 0, hpage + to);

	/* At most 1G per io_uring buffer: half of each hugepage. */
	ASSERT_EQ(0, uring_fixed_buffer((u8 *)mem + hpage / 2,
					hpage < SZ_1G ? hpage : SZ_1G));
	assert_folio_mapped((u8 *)mem, hpage, 0, 1);

	ASSERT_EQ(0, munmap(mem, size));
	close(fd);
	assert_pool(0, 0, "after close");
}

/* Whether /proc/self/smaps lists @flag in the VmFlags of @addr's VMA. */
static bool vma_flag(const void *addr, const char *flag)
{
	char line[512], want[8];
	bool in = false, found = false;
	unsigned long start, end;
	FILE *f = fopen("/proc/self/smaps", "r");

	TEST_ASSERT(f, "/proc/self/smaps: %s", strerror(errno));
	snprintf(want, sizeof(want), " %s", flag);
	while (fgets(line, sizeof(line), f)) {
		/* A VMA's first line; the others start with a key. */
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2)
			in = (uintptr_t)addr >= start && (uintptr_t)addr < end;
		if (in && !strncmp(line, "VmFlags:", 8))
			found = strstr(line, want);
	}
	fclose(f);
	return found;
}

/*
 * Secret-free, as Firecracker runs guests: GUEST_MEMFD_FLAG_NO_DIRECT_MAP
 * with MMAP and INIT_SHARED on a default VM.  The hugepages are out of the
 * direct map at their full size while the VMM and the guest (a gmem-only
 * memslot) share them; the kernel takes no reference to them (GUP fails
 * as on secretmem: /proc/PID/mem, process_vm_readv(), O_DIRECT, io_uring),
 * MADV_POPULATE_WRITE still preallocates, core dumps leave them out, a 4K
 * punch zeroes without the direct map, an ordinary memslot over the
 * mapping fails KVM_RUN with EFAULT, and after the VMs DirectMap4k, 2M
 * and 1G are exactly as before.
 */
TEST_F_TIMEOUT(gmem_mmap, secret_free, 600)
{
	const size_t hpage = variant->page_size, size = 2 * hpage;
	struct guest_memfd_backing b = self->backing;
	struct iovec local, remote;
	u64 before[3], during[3], after[3], buf[8];
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	u64 *mem;
	int fd, memfd;

	if (!have_two())
		return;
	ASSERT_TRUE(vm_check_cap(self->vm, KVM_CAP_GUEST_MEMFD_FLAGS) &
		    GUEST_MEMFD_FLAG_NO_DIRECT_MAP);
	b.flags |= GUEST_MEMFD_FLAG_NO_DIRECT_MAP;
	direct_map_kb(before);

	fd = vm_create_guest_memfd_backing(self->vm, size, b);
	mem = map_file(fd, size);
	ASSERT_TRUE(vma_flag(mem, "dd")) TH_LOG("no VM_DONTDUMP on the mapping");
	ASSERT_EQ(0, madvise(mem, size, MADV_POPULATE_WRITE))
		TH_LOG("MADV_POPULATE_WRITE: %s", strerror(errno));
	assert_pool(-2, 0, "after MADV_POPULATE_WRITE");
	fill(mem, 0, size);
	ASSERT_DATA(mem, 0, size);
	assert_folio_mapped((u8 *)mem, hpage, 0, 1);
	ASSERT_EQ(-EFAULT, gmem_host_read(pfn_of(mem)));
	ASSERT_EQ(-EFAULT, gmem_host_read(pfn_of((u8 *)mem + size - SZ_4K)));

	local = (struct iovec){ .iov_base = buf, .iov_len = sizeof(buf) };
	remote = (struct iovec){ .iov_base = mem, .iov_len = sizeof(buf) };
	ASSERT_EQ(-1, process_vm_readv(getpid(), &local, 1, &remote, 1, 0));
	ASSERT_EQ(EFAULT, errno);
	memfd = open("/proc/self/mem", O_RDWR);
	ASSERT_LE(0, memfd);
	ASSERT_EQ(-1, pread(memfd, buf, sizeof(buf), (uintptr_t)mem));
	ASSERT_EQ(EIO, errno);
	close(memfd);
	ASSERT_EQ(EFAULT, direct_io(mem, (u8 *)mem + hpage, 16 * SZ_4K));
	ASSERT_EQ(EFAULT, uring_fixed_buffer(mem, hpage < SZ_1G ? hpage : SZ_1G));
	ASSERT_DATA(mem, 0, size);

	/* A 4K punch, zeroed without the direct map. */
	gmem_punch(fd, 5 * SZ_4K, SZ_4K);
	ASSERT_EQ(0, mem[5 * SZ_4K / 8]);
	ASSERT_EQ(-EFAULT, gmem_host_read(pfn_of((u8 *)mem + 5 * SZ_4K)));
	direct_map_kb(during);
	TH_LOG("DirectMap4k/2M/1G kB: %lu %lu %lu before, %lu %lu %lu while mapped",
	       before[0], before[1], before[2], during[0], during[1], during[2]);
	ASSERT_EQ(before[0], during[0]) TH_LOG("the direct map was split to 4K");
	ASSERT_EQ(0, munmap(mem, size));
	close(fd);

	/* A guest on a gmem-only memslot of such a file. */
	guest_on_mapping(_metadata, hpage, b, true);

	/*
	 * Not on an ordinary memslot over the mapping: KVM would map what
	 * GUP finds.  KVM_RUN fails cleanly.
	 */
	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	fd = vm_create_guest_memfd_backing(vm, size, b);
	mem = map_file(fd, size);
	fill(mem, 0, size);
	vm_set_user_memory_region(vm, MMAP_SLOT, 0, MMAP_GPA, size, mem);
	virt_map_level(vm, MMAP_GPA, MMAP_GPA, size, PG_LEVEL_2M);
	vcpu_args_set(vcpu, 2, MMAP_GPA, size);
	ASSERT_EQ(-1, _vcpu_run(vcpu));
	ASSERT_EQ(EFAULT, errno);
	kvm_vm_free(vm);
	ASSERT_EQ(0, munmap(mem, size));
	close(fd);

	direct_map_kb(after);
	TH_LOG("DirectMap4k/2M/1G kB after: %lu %lu %lu", after[0], after[1], after[2]);
	ASSERT_EQ(0, memcmp(before, after, sizeof(before)));
	assert_pool(0, 0, "after the VM");
}

/* A hugepage count of NUMA node @node (@what: nr_hugepages...), or -1. */
static long node_hugepages(int node, size_t hpage, const char *what)
{
	char path[128];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path),
		 "/sys/devices/system/node/node%d/hugepages/hugepages-%zukB/%s",
		 node, hpage >> 10, what);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static void node_hugepages_set(int node, size_t hpage, long nr)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path),
		 "/sys/devices/system/node/node%d/hugepages/hugepages-%zukB/nr_hugepages",
		 node, hpage >> 10);
	f = fopen(path, "w");
	TEST_ASSERT(f, "%s: %s", path, strerror(errno));
	fprintf(f, "%ld\n", nr);
	TEST_ASSERT(!fclose(f), "%s = %ld: %s", path, nr, strerror(errno));
}

static long sys_mbind(void *addr, size_t len, int mode, unsigned long nodes)
{
	return syscall(__NR_mbind, addr, len, mode, &nodes, 8 * sizeof(nodes), 0);
}

#define node_free(n)	node_hugepages(n, hpage, "free_hugepages")

/*
 * mbind() on the mapping (guest_memfd's shared policy) places each
 * hugepage, whoever allocates it: a fault of the VMM (MPOL_BIND), a fault
 * of KVM (KVM_PRE_FAULT_MEMORY on a gmem-only memslot, MPOL_PREFERRED),
 * fallocate() (MPOL_INTERLEAVE), each on the node that is not the test's
 * own (it runs pinned to a CPU).  MPOL_PREFERRED falls back to another
 * node, MPOL_BIND does not (SIGBUS, as on hugetlbfs), when its node has
 * no free hugepage.  Needs two NUMA nodes (make test runs it in a VM
 * booted with numa=fake=2: host:numa).
 */
TEST_F(gmem_mmap, mbind)
{
	const size_t hpage = variant->page_size, size = 2 * hpage;
	struct sigaction sa = { .sa_sigaction = sigbus_handler, .sa_flags = SA_SIGINFO };
	unsigned int cpu, local;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	long fl, fr, nr;
	cpu_set_t cpus;
	int fd, remote;
	u64 *mem;

	if (!have_two())
		return;
	if (node_hugepages(1, hpage, "free_hugepages") < 0)
		SKIP(return, "one NUMA node (boot with numa=fake=2)");
	ASSERT_EQ(0, syscall(__NR_getcpu, &cpu, &local, NULL));
	CPU_ZERO(&cpus);
	CPU_SET(cpu, &cpus);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(cpus), &cpus));
	remote = !local;
	fl = node_free(local);
	fr = node_free(remote);
	if (fl < 1 || fr < 2)
		SKIP(return, "free %zukB hugepages: %ld on local node %u, %ld on node %d",
		     hpage >> 10, fl, local, fr, remote);

	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	fd = vm_create_guest_memfd_backing(vm, size, self->backing);
	mem = map_file(fd, size);
	vm_set_user_memory_region2(vm, MMAP_SLOT, KVM_MEM_GUEST_MEMFD,
				   MMAP_GPA, size, mem, fd, 0);
	ASSERT_EQ(0, sys_mbind(mem, hpage, MPOL_BIND, 1UL << remote))
		TH_LOG("mbind: %s", strerror(errno));
	ASSERT_EQ(0, sys_mbind((u8 *)mem + hpage, hpage, MPOL_PREFERRED,
			       1UL << remote));
	mem[0] = PATTERN(0);
	ASSERT_EQ(fr - 1, node_free(remote))
		TH_LOG("the VMM's fault took no page of node %d", remote);
	vcpu_pre_fault(vcpu, MMAP_GPA + hpage, SZ_4K);
	ASSERT_EQ(fr - 2, node_free(remote))
		TH_LOG("KVM's fault took no page of node %d", remote);
	ASSERT_EQ(fl, node_free(local));

	/* Punched out whole, allocated again under another policy. */
	gmem_punch(fd, hpage, hpage);
	ASSERT_EQ(0, sys_mbind((u8 *)mem + hpage, hpage, MPOL_INTERLEAVE,
			       1UL << remote));
	gmem_allocate(fd, hpage, hpage);
	ASSERT_EQ(fr - 2, node_free(remote))
		TH_LOG("fallocate() took no page of node %d", remote);
	ASSERT_EQ(fl, node_free(local));
	ASSERT_EQ(PATTERN(0), mem[0]);
	kvm_vm_free(vm);
	ASSERT_EQ(0, munmap(mem, size));
	close(fd);
	assert_pool(0, 0, "after close");

	/*
	 * The remote node out of free hugepages: its pool shrunk, refilled
	 * after (or by the teardown), which a 1G pool may fail to be at run
	 * time.
	 */
	if (hpage != SZ_2M)
		return;
	nr = node_hugepages(remote, hpage, "nr_hugepages");
	self->shrunk_node = remote;
	self->shrunk_nr = nr;
	node_hugepages_set(remote, hpage, nr - fr);
	ASSERT_EQ(0, node_free(remote));
	fd = vm_create_guest_memfd_backing(self->vm, size, self->backing);
	mem = map_file(fd, size);
	ASSERT_EQ(0, sys_mbind(mem, hpage, MPOL_PREFERRED, 1UL << remote));
	ASSERT_EQ(0, sys_mbind((u8 *)mem + hpage, hpage, MPOL_BIND, 1UL << remote));
	fl = node_free(local);
	mem[0] = PATTERN(0);
	ASSERT_EQ(fl - 1, node_free(local)) TH_LOG("MPOL_PREFERRED did not fall back");
	ASSERT_EQ(0, sigaction(SIGBUS, &sa, NULL));
	if (!sigsetjmp(sigbus_jmp, 1)) {
		mem[hpage / 8] = PATTERN(hpage);
		ASSERT_TRUE(false) TH_LOG("MPOL_BIND to an empty node: no SIGBUS");
	}
	signal(SIGBUS, SIG_DFL);
	ASSERT_EQ(BUS_ADRERR, sigbus_info.si_code);
	ASSERT_EQ(fl - 1, node_free(local));
	ASSERT_EQ(PATTERN(0), mem[0]);
	ASSERT_EQ(0, munmap(mem, size));
	close(fd);
	node_hugepages_set(remote, hpage, nr);
	self->shrunk_nr = -1;
	ASSERT_EQ(nr, node_hugepages(remote, hpage, "nr_hugepages"))
		TH_LOG("node %d's %zukB pool could not be refilled", remote, hpage >> 10);
	assert_pool(0, 0, "after close");
}

TEST_HARNESS_MAIN
