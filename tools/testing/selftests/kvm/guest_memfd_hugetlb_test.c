// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests for guest_memfd backed by HugeTLB pages (GUEST_MEMFD_FLAG_HUGETLB):
 * flags and size validation, HugeTLB pool and cgroup reservation accounting,
 * allocation races, and the level at which KVM maps the memory into a guest.
 *
 * The HugeTLB pool counters are global: nothing else may allocate or reserve
 * HugeTLB pages of the tested size while this test runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>

#include <linux/falloc.h>
#include <linux/magic.h>
#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include "kselftest_harness.h"
#include "gmem_hugetlb_util.h"

#define TEST_GPA		GMEM_HUGETLB_GPA

#define CGROUP_ROOT		"/sys/fs/cgroup"

/* Never zero, so that stale data can't be mistaken for zeroed memory. */
#define GUEST_PATTERN(off)	((uint64_t)(0x5a5aa5a500000000ULL ^ (off)))

enum {
	STAGE_READY = 1,
	STAGE_TOUCHED,
	STAGE_RETOUCHED,
	/* Iteration i of the fault race syncs with STAGE_RACE + i. */
	STAGE_RACE,
};

static const size_t hugetlb_sizes[] = { SZ_2M, SZ_1G };

struct pools {
	bool present[ARRAY_SIZE(hugetlb_sizes)];
	struct hugetlb_pool_stats stats[ARRAY_SIZE(hugetlb_sizes)];
};

static void read_pools(struct pools *pools)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(hugetlb_sizes); i++)
		pools->present[i] = hugetlb_get_pool_stats(hugetlb_sizes[i],
							   &pools->stats[i]);
}

/* Assert that no HugeTLB pool changed since @before was read. */
static void __assert_pools_unchanged(struct __test_metadata *_metadata,
				     const struct pools *before, int line,
				     const char *what)
{
	const struct hugetlb_pool_stats *old, *new;
	struct pools now;
	int i;

	read_pools(&now);

	for (i = 0; i < ARRAY_SIZE(hugetlb_sizes); i++) {
		if (!before->present[i])
			continue;

		old = &before->stats[i];
		new = &now.stats[i];
		ASSERT_TRUE(old->free == new->free && old->resv == new->resv)
			TH_LOG("line %d: %s changed the %zukB pool: free_hugepages %lu -> %lu, resv_hugepages %lu -> %lu",
			       line, what, hugetlb_sizes[i] >> 10,
			       old->free, new->free, old->resv, new->resv);
	}
}

#define assert_pools_unchanged(before, what) \
	__assert_pools_unchanged(_metadata, before, __LINE__, what)

static void read_pool(struct __test_metadata *_metadata, size_t page_size,
		      struct hugetlb_pool_stats *stats)
{
	ASSERT_TRUE(hugetlb_get_pool_stats(page_size, stats))
		TH_LOG("No %zukB HugeTLB pool", page_size >> 10);
}

/* Assert that creating a guest_memfd fails with EINVAL and changes nothing. */
static void __assert_create_einval(struct __test_metadata *_metadata,
				   struct kvm_vm *vm, uint64_t size,
				   uint64_t flags, int line)
{
	struct pools before;
	char what[128];
	int fd, err;

	snprintf(what, sizeof(what),
		 "KVM_CREATE_GUEST_MEMFD(size = 0x%lx, flags = 0x%lx)",
		 size, flags);

	read_pools(&before);
	fd = __vm_create_guest_memfd(vm, size, flags);
	err = errno;
	if (fd >= 0)
		close(fd);

	ASSERT_EQ(-1, fd)
		TH_LOG("line %d: %s succeeded, expected EINVAL", line, what);
	ASSERT_EQ(EINVAL, err)
		TH_LOG("line %d: %s failed with %s, expected EINVAL",
		       line, what, strerror(err));
	__assert_pools_unchanged(_metadata, &before, line, what);
}

#define assert_create_einval(vm, size, flags) \
	__assert_create_einval(_metadata, vm, size, flags, __LINE__)

/* fallocate() that must fail with @err, or succeed if @err is 0. */
static void __do_fallocate(struct __test_metadata *_metadata, int fd,
			   bool punch, uint64_t offset, uint64_t len, int err,
			   int line)
{
	int r = gmem_fallocate(fd, punch, offset, len);
	int e = r ? errno : 0;

	ASSERT_EQ(err, e)
		TH_LOG("line %d: fallocate(%s, offset = 0x%lx, len = 0x%lx) %s%s, expected %s",
		       line, punch ? "PUNCH_HOLE" : "allocate", offset, len,
		       r ? "failed with " : "succeeded", r ? strerror(e) : "",
		       err ? strerror(err) : "success");
}

#define do_fallocate(fd, punch, offset, len) \
	__do_fallocate(_metadata, fd, punch, offset, len, 0, __LINE__)
#define do_fallocate_fail(fd, punch, offset, len, err) \
	__do_fallocate(_metadata, fd, punch, offset, len, err, __LINE__)

static size_t default_hugetlb_page_size(void)
{
	const char *key = "Hugepagesize:";
	size_t size = 0;
	char line[128];
	FILE *f;

	f = fopen("/proc/meminfo", "r");
	TEST_ASSERT(f, "Failed to open /proc/meminfo");
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, strlen(key))) {
			size = strtoull(line + strlen(key), NULL, 10) << 10;
			break;
		}
	}
	fclose(f);

	return size;
}

/* The other hugepage size, whose mapping count must not change. */
static size_t other_huge_size(size_t page_size)
{
	return page_size == SZ_1G ? SZ_2M : SZ_1G;
}

/* ------------------------------------------------------------------------ */
/* Guest side                                                               */
/* ------------------------------------------------------------------------ */

/*
 * Check that every @stride bytes of [gpa, gpa + size) read zero, i.e. that the
 * memory was zeroed when it was allocated, then fill them with a pattern and
 * read it back, which catches two GPAs being backed by the same host page.
 */
static void guest_check_zero_and_fill(uint64_t gpa, uint64_t size,
				      uint64_t stride)
{
	uint64_t off, val;

	for (off = 0; off < size; off += stride) {
		val = READ_ONCE(*(uint64_t *)(gpa + off));
		__GUEST_ASSERT(!val,
			       "Expected zeroed private memory at gpa 0x%lx, got 0x%lx",
			       gpa + off, val);
		WRITE_ONCE(*(uint64_t *)(gpa + off), GUEST_PATTERN(off));
	}

	for (off = 0; off < size; off += stride) {
		val = READ_ONCE(*(uint64_t *)(gpa + off));
		__GUEST_ASSERT(val == GUEST_PATTERN(off),
			       "Private memory at gpa 0x%lx reads 0x%lx, wrote 0x%lx",
			       gpa + off, val, GUEST_PATTERN(off));
	}
}

static void guest_code(uint64_t gpa, uint64_t size, uint64_t stride)
{
	GUEST_SYNC(STAGE_READY);

	guest_check_zero_and_fill(gpa, size, stride);
	GUEST_SYNC(STAGE_TOUCHED);

	/* The host punched out all memory, it must read as zeroes again. */
	guest_check_zero_and_fill(gpa, size, stride);
	GUEST_SYNC(STAGE_RETOUCHED);

	GUEST_DONE();
}

/* Touch the first and last word of the memory, racing with the host. */
static void guest_race_code(uint64_t gpa, uint64_t size, uint64_t nr_iterations)
{
	uint64_t i;

	GUEST_SYNC(STAGE_READY);

	for (i = 0; i < nr_iterations; i++) {
		guest_check_zero_and_fill(gpa, size, size - sizeof(uint64_t));
		GUEST_SYNC(STAGE_RACE + i);
	}

	GUEST_DONE();
}

/* ------------------------------------------------------------------------ */
/* Host side of guest tests                                                 */
/* ------------------------------------------------------------------------ */

static uint64_t guest_stride(uint64_t size)
{
	/* Touching every 4KiB of 1GiB is slow under emulation. */
	return size >= SZ_1G ? SZ_64K : SZ_4K;
}

/* ------------------------------------------------------------------------ */
/* Fixture                                                                  */
/* ------------------------------------------------------------------------ */

FIXTURE(gmem_hugetlb) {
	struct kvm_vm *vm;
	uint64_t flags;
	struct hugetlb_pool_stats base;
};

FIXTURE_VARIANT(gmem_hugetlb) {
	size_t page_size;
	/* How many times the race tests allocate and free a hugepage. */
	int race_iterations;
};

FIXTURE_VARIANT_ADD(gmem_hugetlb, 2M) {
	.page_size = SZ_2M,
	.race_iterations = 16,
};

FIXTURE_VARIANT_ADD(gmem_hugetlb, 1G) {
	.page_size = SZ_1G,
	.race_iterations = 2,
};

FIXTURE_SETUP(gmem_hugetlb)
{
	uint64_t sizes = 0;

	if (!hugetlb_size_supported(variant->page_size, &sizes))
		SKIP(return,
		     "KVM doesn't support %zukB HugeTLB guest_memfd (KVM_CAP_GUEST_MEMFD_HUGETLB = 0x%lx)",
		     variant->page_size >> 10, sizes);

	if (!sw_protected_vm_supported())
		SKIP(return, "KVM_X86_SW_PROTECTED_VM not supported");

	self->flags = guest_memfd_hugetlb_flags(variant->page_size);
	read_pool(_metadata, variant->page_size, &self->base);
	/* The VM type that may use HugeTLB guest_memfd. */
	self->vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
}

FIXTURE_TEARDOWN(gmem_hugetlb)
{
	if (self->vm)
		kvm_vm_free(self->vm);
}

TEST_F(gmem_hugetlb, capability)
{
	const uint64_t known = BIT_ULL(21) | BIT_ULL(30);
	uint64_t sizes = kvm_check_cap(KVM_CAP_GUEST_MEMFD_HUGETLB);
	uint64_t vm_sizes = vm_check_cap(self->vm, KVM_CAP_GUEST_MEMFD_HUGETLB);
	struct hugetlb_pool_stats stats;

	struct kvm_vm *dvm;
	int fd;

	ASSERT_EQ(sizes, vm_sizes)
		TH_LOG("KVM_CAP_GUEST_MEMFD_HUGETLB is 0x%lx on /dev/kvm but 0x%lx on a KVM_X86_SW_PROTECTED_VM",
		       sizes, vm_sizes);

	/*
	 * A VM type whose prepare and launch paths cannot handle hugepages
	 * (here the default type; SEV-SNP until per-block preparation)
	 * reports no size and refuses the flag, leaving the pool alone.
	 */
	dvm = vm_create_barebones();
	ASSERT_EQ(0, vm_check_cap(dvm, KVM_CAP_GUEST_MEMFD_HUGETLB))
		TH_LOG("KVM_CAP_GUEST_MEMFD_HUGETLB must be 0 on KVM_X86_DEFAULT_VM");
	fd = __vm_create_guest_memfd(dvm, variant->page_size, self->flags);
	ASSERT_EQ(-1, fd);
	ASSERT_EQ(EINVAL, errno);
	kvm_vm_free(dvm);
	assert_pool(&self->base, 0, 0, "refused on a default VM");

	/* 239 is upstream's KVM_CAP_ARM_WRITABLE_IMP_ID_REGS, not ours. */
	ASSERT_NE(239, KVM_CAP_GUEST_MEMFD_HUGETLB);
	ASSERT_EQ(0, kvm_check_cap(239))
		TH_LOG("capability 239 answers on x86: it is still ours");
	ASSERT_EQ(0, sizes & ~known)
		TH_LOG("KVM_CAP_GUEST_MEMFD_HUGETLB = 0x%lx has unexpected page shifts",
		       sizes);
	ASSERT_EQ(hugetlb_get_pool_stats(SZ_2M, &stats), !!(sizes & BIT_ULL(21)))
		TH_LOG("KVM_CAP_GUEST_MEMFD_HUGETLB = 0x%lx doesn't match the presence of 2MB HugeTLB pages",
		       sizes);
	ASSERT_EQ(hugetlb_get_pool_stats(SZ_1G, &stats), !!(sizes & BIT_ULL(30)))
		TH_LOG("KVM_CAP_GUEST_MEMFD_HUGETLB = 0x%lx doesn't match the presence of 1GB HugeTLB pages",
		       sizes);
}

TEST_F_TIMEOUT(gmem_hugetlb, invalid_flags, 120)
{
	const uint64_t size_mask = GUEST_MEMFD_HUGETLB_SIZE_MASK <<
				   GUEST_MEMFD_HUGETLB_SIZE_SHIFT;
	const uint64_t known = GUEST_MEMFD_FLAG_HUGETLB | size_mask;
	/* A multiple of all HugeTLB page sizes, only the flags are wrong. */
	const uint64_t size = SZ_1G;
	uint64_t flag, shift;
	int bit;

	/* Unknown flags, alone and together with valid HugeTLB flags. */
	for (bit = 0; bit < 64; bit++) {
		flag = BIT_ULL(bit);
		if (flag & known)
			continue;

		assert_create_einval(self->vm, size, flag);
		assert_create_einval(self->vm, size, self->flags | flag);
	}

	/* A page size without GUEST_MEMFD_FLAG_HUGETLB. */
	for (shift = 1; shift <= GUEST_MEMFD_HUGETLB_SIZE_MASK; shift++)
		assert_create_einval(self->vm, size,
				     shift << GUEST_MEMFD_HUGETLB_SIZE_SHIFT);

	/* Page sizes other than 2MiB, 1GiB or the default. */
	for (shift = 1; shift <= GUEST_MEMFD_HUGETLB_SIZE_MASK; shift++) {
		if (shift == 21 || shift == 30)
			continue;

		assert_create_einval(self->vm, size, GUEST_MEMFD_FLAG_HUGETLB |
				     shift << GUEST_MEMFD_HUGETLB_SIZE_SHIFT);
	}
}

TEST_F(gmem_hugetlb, invalid_sizes)
{
	const uint64_t hpage = variant->page_size;
	const uint64_t sizes[] = {
		0, 1, SZ_4K - 1, SZ_4K, SZ_64K,
		hpage / 2, hpage - SZ_4K, hpage + SZ_4K, hpage + hpage / 2,
		2 * hpage - SZ_4K, 2 * hpage + 1,
		/* Multiples of 2MiB that aren't multiples of 1GiB. */
		SZ_2M * 3, SZ_1G + SZ_2M,
	};
	int i;

	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		if (!(sizes[i] % hpage) && sizes[i])
			continue;

		assert_create_einval(self->vm, sizes[i], self->flags);
	}
}

TEST_F(gmem_hugetlb, pool_exhausted_enomem)
{
	const uint64_t hpage = variant->page_size;
	uint64_t avail = pool_available(&self->base);
	struct pools before;
	int fd, fd2, err;

	if (self->base.nr_overcommit)
		SKIP(return, "nr_overcommit_hugepages = %lu, the pool can grow",
		     self->base.nr_overcommit);

	/* One page more than the pool can provide. */
	read_pools(&before);
	fd = __vm_create_guest_memfd(self->vm, (avail + 1) * hpage, self->flags);
	err = errno;
	ASSERT_EQ(-1, fd)
		TH_LOG("Reserving %lu hugepages succeeded with %lu available",
		       avail + 1, avail);
	ASSERT_EQ(ENOMEM, err)
		TH_LOG("Reserving %lu hugepages with %lu available failed with %s, expected ENOMEM",
		       avail + 1, avail, strerror(err));
	assert_pools_unchanged(&before, "Failed reservation");

	if (!avail)
		return;

	/* Reserve all that's left, then nothing more fits. */
	fd = __vm_create_guest_memfd(self->vm, avail * hpage, self->flags);
	ASSERT_LE(0, fd)
		TH_LOG("Reserving all %lu available hugepages failed: %s",
		       avail, strerror(errno));
	assert_pool(&self->base, 0, avail, "reserved the whole pool");

	read_pools(&before);
	fd2 = __vm_create_guest_memfd(self->vm, hpage, self->flags);
	err = errno;
	ASSERT_EQ(-1, fd2)
		TH_LOG("Reserved a hugepage from an exhausted pool");
	ASSERT_EQ(ENOMEM, err)
		TH_LOG("Reserving from an exhausted pool failed with %s, expected ENOMEM",
		       strerror(err));
	assert_pools_unchanged(&before, "Failed reservation from exhausted pool");

	close(fd);
	assert_pool(&self->base, 0, 0, "closed the file reserving the whole pool");
}

/*
 * Sizes no pool can cover fail with ENOMEM before anything proportional to
 * the size is allocated (a 2^62 byte file of 2M pages once asked kvmalloc()
 * for a 256 GiB bitmap and WARNed), and leave the pools alone.
 */
TEST_F(gmem_hugetlb, absurd_sizes_enomem)
{
	const uint64_t hpage = variant->page_size;
	const uint64_t sizes[] = {
		1ULL << 62, 1ULL << 50, 1ULL << 40,
		(uint64_t)LLONG_MAX & ~(hpage - 1),
	};
	struct pools before;
	int i, fd, err;

	if (self->base.nr_overcommit)
		SKIP(return, "nr_overcommit_hugepages = %lu, the pool can grow",
		     self->base.nr_overcommit);

	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		read_pools(&before);
		fd = __vm_create_guest_memfd(self->vm, sizes[i], self->flags);
		err = errno;
		ASSERT_EQ(-1, fd)
			TH_LOG("A 0x%lx byte file was created", sizes[i]);
		ASSERT_EQ(ENOMEM, err)
			TH_LOG("A 0x%lx byte file failed with %s, expected ENOMEM",
			       sizes[i], strerror(err));
		assert_pools_unchanged(&before, "absurd size");
	}
}

struct stat_racer {
	int fd;
	bool stop;
	size_t blksize;
	uint64_t stats, wrong;
};

static void *stat_racer_fn(void *arg)
{
	struct stat_racer *r = arg;
	char path[64];
	struct stat st;

	while (!READ_ONCE(r->stop)) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", READ_ONCE(r->fd));
		if (stat(path, &st))
			continue;
		r->stats++;
		if (S_ISREG(st.st_mode) && st.st_blksize != r->blksize)
			r->wrong++;
	}
	return NULL;
}

/*
 * stat() of /proc/PID/fd/N races with close(): the path keeps the inode
 * alive after the file's release freed the hugetlb state, so stat() must
 * not read that state (it read it twice, a use-after-free under KASAN).
 * st_blksize is the hugepage size throughout.
 */
TEST_F_TIMEOUT(gmem_hugetlb, stat_races_close, 120)
{
	const uint64_t hpage = variant->page_size;
	struct stat_racer r = { .fd = -1, .blksize = hpage };
	pthread_t thread;
	int i, fd;

	if (!hugepages_available(1))
		return;

	ASSERT_EQ(0, pthread_create(&thread, NULL, stat_racer_fn, &r));
	for (i = 0; i < 2000; i++) {
		fd = vm_create_guest_memfd(self->vm, hpage, self->flags);
		WRITE_ONCE(r.fd, fd);
		close(fd);
	}
	WRITE_ONCE(r.stop, true);
	pthread_join(thread, NULL);

	ksft_print_msg("%lu stat() calls succeeded during 2000 create/close cycles\n",
		       r.stats);
	ASSERT_NE(0, r.stats);
	ASSERT_EQ(0, r.wrong)
		TH_LOG("%lu of %lu stat() calls saw st_blksize != %lu",
		       r.wrong, r.stats, hpage);
	assert_pool(&self->base, 0, 0, "created and closed 2000 files");
}

static uint64_t st_blocks(struct __test_metadata *_metadata, int fd)
{
	struct stat st;

	ASSERT_EQ(0, fstat(fd, &st));
	return st.st_blocks;
}

/*
 * st_blocks (512-byte units) counts the allocated hugepages, as on
 * hugetlbfs: a partly punched hugepage is still allocated.
 */
TEST_F_TIMEOUT(gmem_hugetlb, st_blocks_follow_allocation, 120)
{
	const uint64_t hpage = variant->page_size;
	const uint64_t blocks = hpage / 512;
	int fd;

	if (!hugepages_available(2))
		return;

	fd = vm_create_guest_memfd(self->vm, 2 * hpage, self->flags);
	ASSERT_EQ(0, st_blocks(_metadata, fd));

	do_fallocate(fd, false, 0, 2 * hpage);
	ASSERT_EQ(2 * blocks, st_blocks(_metadata, fd));

	/* A partial punch keeps the hugepage. */
	do_fallocate(fd, true, SZ_4K, SZ_64K);
	ASSERT_EQ(2 * blocks, st_blocks(_metadata, fd));

	/* A whole punch frees it; punching the rest of a partial one too. */
	do_fallocate(fd, true, hpage, hpage);
	ASSERT_EQ(blocks, st_blocks(_metadata, fd));
	do_fallocate(fd, true, 0, SZ_4K);
	do_fallocate(fd, true, SZ_64K + SZ_4K, hpage - SZ_64K - SZ_4K);
	ASSERT_EQ(0, st_blocks(_metadata, fd));
	assert_pool(&self->base, 0, 0, "punched everything");

	/* Refill: a fault-in of 4 KiB allocates the whole hugepage. */
	do_fallocate(fd, false, hpage + SZ_4K, SZ_4K);
	ASSERT_EQ(blocks, st_blocks(_metadata, fd));

	close(fd);
	assert_pool(&self->base, 0, 0, "closed");
}

TEST_F(gmem_hugetlb, default_page_size)
{
	size_t def = default_hugetlb_page_size();
	struct stat st;
	int fd;

	if (def != variant->page_size)
		SKIP(return, "Default HugeTLB page size is %zukB", def >> 10);
	if (!hugepages_available(2))
		return;

	fd = __vm_create_guest_memfd(self->vm, 2 * def, GUEST_MEMFD_FLAG_HUGETLB);
	ASSERT_LE(0, fd)
		TH_LOG("GUEST_MEMFD_FLAG_HUGETLB without a page size failed: %s",
		       strerror(errno));
	assert_pool(&self->base, 0, 2, "created with the default page size");

	ASSERT_EQ(0, fstat(fd, &st));
	ASSERT_EQ(def, st.st_blksize);

	close(fd);
	assert_pool(&self->base, 0, 0, "closed");
}

TEST_F(gmem_hugetlb, file_ops)
{
	const uint64_t size = 2 * variant->page_size;
	struct stat st;
	char buf[64];
	void *mem;
	int fd;

	if (!hugepages_available(2))
		return;

	fd = vm_create_guest_memfd(self->vm, size, self->flags);

	ASSERT_EQ(0, fstat(fd, &st));
	ASSERT_EQ(size, st.st_size);
	ASSERT_EQ(variant->page_size, st.st_blksize)
		TH_LOG("st_blksize must be the HugeTLB page size");

	ASSERT_GT(0, read(fd, buf, sizeof(buf)));
	ASSERT_GT(0, write(fd, buf, sizeof(buf)));
	ASSERT_GT(0, pread(fd, buf, sizeof(buf), 0));
	ASSERT_GT(0, pwrite(fd, buf, sizeof(buf), 0));

	mem = mmap(NULL, variant->page_size, PROT_READ | PROT_WRITE,
		   MAP_SHARED, fd, 0);
	ASSERT_EQ(MAP_FAILED, mem) TH_LOG("mmap(MAP_SHARED) of guest_memfd succeeded");
	mem = mmap(NULL, variant->page_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE, fd, 0);
	ASSERT_EQ(MAP_FAILED, mem) TH_LOG("mmap(MAP_PRIVATE) of guest_memfd succeeded");

	/* None of the above may have allocated anything. */
	assert_pool(&self->base, 0, 2, "after read/write/mmap attempts");

	close(fd);
	assert_pool(&self->base, 0, 0, "closed");
}

TEST_F(gmem_hugetlb, reserve_on_create_release_on_close)
{
	const uint64_t hpage = variant->page_size;
	const int nr = hpage >= SZ_1G ? 2 : 8;
	int fd1, fd2;

	if (!hugepages_available(nr + 1))
		return;

	fd1 = vm_create_guest_memfd(self->vm, nr * hpage, self->flags);
	assert_pool(&self->base, 0, nr, "created a %d page file", nr);

	fd2 = vm_create_guest_memfd(self->vm, hpage, self->flags);
	assert_pool(&self->base, 0, nr + 1, "created a second, 1 page file");

	close(fd1);
	assert_pool(&self->base, 0, 1, "closed the %d page file", nr);

	close(fd2);
	assert_pool(&self->base, 0, 0, "closed both files");
}

TEST_F_TIMEOUT(gmem_hugetlb, fallocate_accounting, 120)
{
	const uint64_t hpage = variant->page_size;
	int fd;

	if (!hugepages_available(2))
		return;

	fd = vm_create_guest_memfd(self->vm, 2 * hpage, self->flags);
	assert_pool(&self->base, 0, 2, "created a 2 page file");

	/* 4KiB in the middle of page 0 allocates all of page 0. */
	do_fallocate(fd, false, hpage / 2, SZ_4K);
	assert_pool(&self->base, -1, 1, "allocated 4KiB in page 0");

	/* Allocating again is a nop. */
	do_fallocate(fd, false, hpage / 2, SZ_4K);
	assert_pool(&self->base, -1, 1, "allocated the same 4KiB again");
	do_fallocate(fd, false, 0, hpage);
	assert_pool(&self->base, -1, 1, "allocated all of page 0");

	/* A range straddling both pages only allocates page 1. */
	do_fallocate(fd, false, hpage - SZ_4K, 2 * SZ_4K);
	assert_pool(&self->base, -2, 0, "allocated a range straddling pages 0 and 1");

	do_fallocate(fd, false, 0, 2 * hpage);
	assert_pool(&self->base, -2, 0, "allocated the whole file again");

	close(fd);
	assert_pool(&self->base, 0, 0, "closed");
}

TEST_F_TIMEOUT(gmem_hugetlb, punch_hole_accounting, 120)
{
	const uint64_t hpage = variant->page_size;
	int fd;

	if (!hugepages_available(2))
		return;

	fd = vm_create_guest_memfd(self->vm, 2 * hpage, self->flags);
	do_fallocate(fd, false, 0, SZ_4K);
	assert_pool(&self->base, -1, 1, "allocated page 0 of 2");

	/* Punching a page that was never allocated drops its reservation. */
	do_fallocate(fd, true, hpage, hpage);
	assert_pool(&self->base, -1, 0, "punched unallocated page 1");
	do_fallocate(fd, true, hpage, hpage);
	assert_pool(&self->base, -1, 0, "punched page 1 again");

	/* Punching an allocated page returns it to the pool. */
	do_fallocate(fd, true, 0, hpage);
	assert_pool(&self->base, 0, 0, "punched allocated page 0");
	do_fallocate(fd, true, 0, hpage);
	assert_pool(&self->base, 0, 0, "punched page 0 again");

	/* Punched pages are reserved and allocated again on demand. */
	do_fallocate(fd, false, hpage - SZ_4K, 2 * SZ_4K);
	assert_pool(&self->base, -2, 0, "reallocated both punched pages");

	/* Punching beyond EOF is allowed and changes nothing. */
	do_fallocate(fd, true, 2 * hpage, hpage);
	assert_pool(&self->base, -2, 0, "punched beyond EOF");

	do_fallocate(fd, true, 0, 2 * hpage);
	assert_pool(&self->base, 0, 0, "punched the whole file");

	close(fd);
	assert_pool(&self->base, 0, 0, "closed");
}

/*
 * Lazy punch-hole: punching part of a hugepage succeeds, never changes the
 * pool while any subpage of the folio is left, and frees the hugepage (and
 * its reservation) exactly when the last subpage is punched.  Punching part
 * of a hugepage that holds no folio changes nothing either.
 */
TEST_F_TIMEOUT(gmem_hugetlb, punch_hole_partial_is_lazy, 120)
{
	const uint64_t hpage = variant->page_size;
	const struct {
		uint64_t offset;
		uint64_t len;
	} cases[] = {
		{ 0, SZ_4K },
		{ SZ_4K, hpage / 2 - SZ_4K },
		{ hpage / 2, hpage / 2 - 2 * SZ_4K },
		{ hpage, SZ_4K },		/* page 1 holds no folio */
		{ hpage + SZ_4K, hpage / 2 },
		{ 0, hpage / 2 },		/* overlaps what is punched */
	};
	int fd, i;

	if (!hugepages_available(2))
		return;

	fd = vm_create_guest_memfd(self->vm, 2 * hpage, self->flags);
	do_fallocate(fd, false, 0, hpage);
	assert_pool(&self->base, -1, 1, "allocated page 0 of 2");

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		do_fallocate(fd, true, cases[i].offset, cases[i].len);
		assert_pool(&self->base, -1, 1,
			    "PUNCH_HOLE(offset = 0x%lx, len = 0x%lx) left a subpage",
			    cases[i].offset, cases[i].len);
	}

	/* One 4K subpage of page 0 is left: [hpage - 8K, hpage - 4K). */
	do_fallocate(fd, true, hpage - SZ_4K, SZ_4K);
	assert_pool(&self->base, -1, 1, "one subpage still in use");
	do_fallocate(fd, true, hpage - 2 * SZ_4K, SZ_4K);
	assert_pool(&self->base, 0, 1, "last subpage punched: page 0 freed");

	close(fd);
	assert_pool(&self->base, 0, 0, "closed");
}

TEST_F(gmem_hugetlb, fallocate_invalid)
{
	const uint64_t hpage = variant->page_size;
	const uint64_t size = 2 * hpage;
	int fd, r;

	if (!hugepages_available(2))
		return;

	fd = vm_create_guest_memfd(self->vm, size, self->flags);
	assert_pool(&self->base, 0, 2, "created a 2 page file");

	/* Not 4KiB aligned. */
	do_fallocate_fail(fd, false, 1, SZ_4K, EINVAL);
	do_fallocate_fail(fd, false, 0, SZ_4K - 1, EINVAL);
	do_fallocate_fail(fd, false, SZ_4K, hpage + 1, EINVAL);
	do_fallocate_fail(fd, true, 1, hpage, EINVAL);
	do_fallocate_fail(fd, true, 0, hpage - 1, EINVAL);
	do_fallocate_fail(fd, true, hpage, hpage + 1, EINVAL);

	/* Beyond EOF. */
	do_fallocate_fail(fd, false, size, SZ_4K, EINVAL);
	do_fallocate_fail(fd, false, size - SZ_4K, 2 * SZ_4K, EINVAL);
	do_fallocate_fail(fd, false, size + hpage, hpage, EINVAL);

	/* The file size is immutable. */
	r = fallocate(fd, 0, 0, hpage);
	ASSERT_EQ(-1, r) TH_LOG("fallocate() without FALLOC_FL_KEEP_SIZE succeeded");

	assert_pool(&self->base, 0, 2, "after invalid fallocate() calls");

	close(fd);
	assert_pool(&self->base, 0, 0, "closed");
}

struct fallocate_thread {
	pthread_t thread;
	pthread_barrier_t *barrier;
	int fd;
	uint64_t offset;
	int ret;
	int err;
};

static void *fallocate_thread_fn(void *arg)
{
	struct fallocate_thread *t = arg;

	pthread_barrier_wait(t->barrier);
	t->ret = gmem_fallocate(t->fd, false, t->offset, SZ_4K);
	t->err = errno;

	return NULL;
}

static void start_fallocate_thread(struct fallocate_thread *t,
				   pthread_barrier_t *barrier, int fd,
				   uint64_t offset)
{
	int r;

	t->barrier = barrier;
	t->fd = fd;
	t->offset = offset;
	t->ret = -1;
	t->err = 0;
	r = pthread_create(&t->thread, NULL, fallocate_thread_fn, t);
	TEST_ASSERT(!r, "pthread_create() failed: %s", strerror(r));
}

/* Two threads allocating the same hugepage must allocate it only once. */
TEST_F_TIMEOUT(gmem_hugetlb, concurrent_fallocate, 120)
{
	const uint64_t hpage = variant->page_size;
	struct fallocate_thread threads[2];
	pthread_barrier_t barrier;
	int fd, i, j;

	if (!hugepages_available(1))
		return;

	fd = vm_create_guest_memfd(self->vm, hpage, self->flags);
	assert_pool(&self->base, 0, 1, "created a 1 page file");

	pthread_barrier_init(&barrier, NULL, ARRAY_SIZE(threads));

	for (i = 0; i < variant->race_iterations; i++) {
		/* Different 4KiB pieces of the same hugepage. */
		start_fallocate_thread(&threads[0], &barrier, fd,
				       i & 1 ? hpage - SZ_4K : 0);
		start_fallocate_thread(&threads[1], &barrier, fd,
				       i & 1 ? 0 : hpage - SZ_4K);

		for (j = 0; j < ARRAY_SIZE(threads); j++) {
			pthread_join(threads[j].thread, NULL);
			ASSERT_EQ(0, threads[j].ret)
				TH_LOG("Iteration %d: racing fallocate(offset = 0x%lx) failed: %s",
				       i, threads[j].offset,
				       strerror(threads[j].err));
		}

		assert_pool(&self->base, -1, 0,
			    "iteration %d: two threads allocated the same page", i);

		do_fallocate(fd, true, 0, hpage);
		assert_pool(&self->base, 0, 0, "iteration %d: punched the page", i);
	}

	pthread_barrier_destroy(&barrier);
	close(fd);
	assert_pool(&self->base, 0, 0, "closed");
}

/*
 * A guest fault and a host fallocate() of the same hugepage must allocate it
 * only once, and the guest must see zeroes and be mapped with a hugepage.
 */
TEST_F_TIMEOUT(gmem_hugetlb, concurrent_fault_and_fallocate, 120)
{
	const uint64_t hpage = variant->page_size;
	struct vm_mapping_level_stats base, now;
	struct fallocate_thread thread;
	struct private_guest pg;
	pthread_barrier_t barrier;
	int i;

	if (!sw_protected_vm_supported())
		SKIP(return, "KVM_X86_SW_PROTECTED_VM not supported");
	if (!hugepages_available(1))
		return;

	private_guest_create(&pg, guest_race_code, self->flags, hpage, 0, hpage);
	vcpu_args_set(pg.vcpu, 3, TEST_GPA, hpage, variant->race_iterations);
	assert_pool(&self->base, 0, 1, "created a 1 page file");

	run_guest(pg.vcpu, STAGE_READY);
	vm_get_mapping_level_stats(pg.vm, &base);

	pthread_barrier_init(&barrier, NULL, 2);

	for (i = 0; i < variant->race_iterations; i++) {
		start_fallocate_thread(&thread, &barrier, pg.fd,
				       i & 1 ? 0 : hpage - SZ_4K);
		pthread_barrier_wait(&barrier);
		run_guest(pg.vcpu, STAGE_RACE + i);

		pthread_join(thread.thread, NULL);
		ASSERT_EQ(0, thread.ret)
			TH_LOG("Iteration %d: fallocate() racing with a guest fault failed: %s",
			       i, strerror(thread.err));
		assert_pool(&self->base, -1, 0,
			    "iteration %d: guest and host allocated the same page", i);

		vm_get_mapping_level_stats(pg.vm, &now);
		ASSERT_EQ(level_pages(&base, hpage) + 1, level_pages(&now, hpage))
			TH_LOG("Iteration %d: the guest's hugepage isn't mapped with a %zukB page",
			       i, hpage >> 10);

		do_fallocate(pg.fd, true, 0, hpage);
		assert_pool(&self->base, 0, 0, "iteration %d: punched the page", i);

		vm_get_mapping_level_stats(pg.vm, &now);
		ASSERT_EQ(level_pages(&base, hpage), level_pages(&now, hpage))
			TH_LOG("Iteration %d: PUNCH_HOLE didn't unmap the %zukB page",
			       i, hpage >> 10);
	}
	run_guest(pg.vcpu, 0);

	pthread_barrier_destroy(&barrier);
	private_guest_destroy(&pg);
	assert_pool(&self->base, 0, 0, "destroyed the VM and closed the file");
}

/*
 * The guest sees zeroed memory, which KVM maps with pages of the HugeTLB size;
 * punching the memory unmaps and frees it, and the guest then sees zeroed
 * memory again.
 */
TEST_F_TIMEOUT(gmem_hugetlb, guest_private_mapping, 120)
{
	const uint64_t hpage = variant->page_size;
	/* 1 GiB, or 4 MiB (2 pages) for 2 MiB pages. */
	const long nr = hpage >= SZ_1G ? 1 : 2;
	const uint64_t size = nr * hpage;
	const size_t other = other_huge_size(hpage);
	struct vm_mapping_level_stats base, now;
	struct private_guest pg;

	if (!sw_protected_vm_supported())
		SKIP(return, "KVM_X86_SW_PROTECTED_VM not supported");
	if (!hugepages_available(nr))
		return;

	private_guest_create(&pg, guest_code, self->flags, size, 0, size);
	vcpu_args_set(pg.vcpu, 3, TEST_GPA, size, guest_stride(size));
	assert_pool(&self->base, 0, nr, "created a %ld page file", nr);

	run_guest(pg.vcpu, STAGE_READY);
	vm_get_mapping_level_stats(pg.vm, &base);

	run_guest(pg.vcpu, STAGE_TOUCHED);
	assert_pool(&self->base, -nr, 0, "guest touched all of its memory");

	vm_get_mapping_level_stats(pg.vm, &now);
	ASSERT_EQ(level_pages(&base, hpage) + nr, level_pages(&now, hpage))
		TH_LOG("Expected the guest's %ld %zukB pages to be mapped at %zukB (4k/2m/1g: %lu/%lu/%lu -> %lu/%lu/%lu)",
		       nr, hpage >> 10, hpage >> 10,
		       base.pages_4k, base.pages_2m, base.pages_1g,
		       now.pages_4k, now.pages_2m, now.pages_1g);
	ASSERT_EQ(level_pages(&base, other), level_pages(&now, other))
		TH_LOG("Unexpected %zukB mappings (4k/2m/1g: %lu/%lu/%lu -> %lu/%lu/%lu)",
		       other >> 10,
		       base.pages_4k, base.pages_2m, base.pages_1g,
		       now.pages_4k, now.pages_2m, now.pages_1g);

	/* Free the memory: it must be unmapped and go back to the pool. */
	do_fallocate(pg.fd, true, 0, size);
	assert_pool(&self->base, 0, 0, "punched all of the guest's memory");

	vm_get_mapping_level_stats(pg.vm, &now);
	ASSERT_EQ(level_pages(&base, hpage), level_pages(&now, hpage))
		TH_LOG("PUNCH_HOLE left %lu %zukB mappings",
		       level_pages(&now, hpage) - level_pages(&base, hpage),
		       hpage >> 10);

	/* The guest faults the memory back in, zeroed. */
	run_guest(pg.vcpu, STAGE_RETOUCHED);
	assert_pool(&self->base, -nr, 0, "guest touched its punched memory");

	vm_get_mapping_level_stats(pg.vm, &now);
	ASSERT_EQ(level_pages(&base, hpage) + nr, level_pages(&now, hpage))
		TH_LOG("Refaulted memory isn't mapped at %zukB (4k/2m/1g: %lu/%lu/%lu -> %lu/%lu/%lu)",
		       hpage >> 10,
		       base.pages_4k, base.pages_2m, base.pages_1g,
		       now.pages_4k, now.pages_2m, now.pages_1g);

	run_guest(pg.vcpu, 0);

	private_guest_destroy(&pg);
	assert_pool(&self->base, 0, 0, "destroyed the VM and closed the file");
}

/*
 * A memslot whose guest_memfd offset isn't hugepage aligned relative to its
 * GPA still works, but can only be mapped with 4KiB pages.
 */
TEST_F_TIMEOUT(gmem_hugetlb, guest_misaligned_offset, 120)
{
	const uint64_t hpage = variant->page_size;
	const uint64_t offset = SZ_4K;
	const uint64_t slot_size = SZ_4M;
	const uint64_t file_size = align_up(offset + slot_size, hpage);
	const long nr = file_size / hpage;
	const uint64_t nr_touched = slot_size / guest_stride(slot_size);
	struct vm_mapping_level_stats base, touched, punched;
	struct private_guest pg;

	if (!sw_protected_vm_supported())
		SKIP(return, "KVM_X86_SW_PROTECTED_VM not supported");
	if (!hugepages_available(nr))
		return;

	private_guest_create(&pg, guest_code, self->flags, file_size, offset,
			     slot_size);
	vcpu_args_set(pg.vcpu, 3, TEST_GPA, slot_size, guest_stride(slot_size));
	assert_pool(&self->base, 0, nr, "created a %ld page file", nr);

	run_guest(pg.vcpu, STAGE_READY);
	vm_get_mapping_level_stats(pg.vm, &base);

	run_guest(pg.vcpu, STAGE_TOUCHED);
	/* The slot overlaps all pages of the file. */
	assert_pool(&self->base, -nr, 0, "guest touched all of its memory");

	vm_get_mapping_level_stats(pg.vm, &touched);
	ASSERT_TRUE(touched.pages_2m == base.pages_2m &&
		    touched.pages_1g == base.pages_1g)
		TH_LOG("Misaligned memslot mapped with hugepages (4k/2m/1g: %lu/%lu/%lu -> %lu/%lu/%lu)",
		       base.pages_4k, base.pages_2m, base.pages_1g,
		       touched.pages_4k, touched.pages_2m, touched.pages_1g);
	ASSERT_LE(base.pages_4k + nr_touched, touched.pages_4k)
		TH_LOG("Expected at least %lu new 4KiB mappings", nr_touched);

	do_fallocate(pg.fd, true, 0, file_size);
	assert_pool(&self->base, 0, 0, "punched the whole file");

	vm_get_mapping_level_stats(pg.vm, &punched);
	ASSERT_LE(nr_touched, touched.pages_4k - punched.pages_4k)
		TH_LOG("PUNCH_HOLE didn't unmap the guest's 4KiB mappings (%lu -> %lu)",
		       touched.pages_4k, punched.pages_4k);

	run_guest(pg.vcpu, STAGE_RETOUCHED);
	assert_pool(&self->base, -nr, 0, "guest touched its punched memory");
	run_guest(pg.vcpu, 0);

	private_guest_destroy(&pg);
	assert_pool(&self->base, 0, 0, "destroyed the VM and closed the file");
}

FIXTURE(gmem_4k) {};
FIXTURE_SETUP(gmem_4k) {}
FIXTURE_TEARDOWN(gmem_4k) {}

/* Control: a regular guest_memfd is only ever mapped with 4KiB pages. */
TEST_F_TIMEOUT(gmem_4k, guest_mapping, 120)
{
	const uint64_t size = SZ_4M;
	const uint64_t nr_touched = size / guest_stride(size);
	struct vm_mapping_level_stats base, now;
	struct private_guest pg;

	if (!kvm_has_cap(KVM_CAP_GUEST_MEMFD) || !sw_protected_vm_supported())
		SKIP(return, "guest_memfd or KVM_X86_SW_PROTECTED_VM not supported");

	private_guest_create(&pg, guest_code, 0, size, 0, size);
	vcpu_args_set(pg.vcpu, 3, TEST_GPA, size, guest_stride(size));

	run_guest(pg.vcpu, STAGE_READY);
	vm_get_mapping_level_stats(pg.vm, &base);

	run_guest(pg.vcpu, STAGE_TOUCHED);
	vm_get_mapping_level_stats(pg.vm, &now);
	ASSERT_TRUE(now.pages_2m == base.pages_2m && now.pages_1g == base.pages_1g)
		TH_LOG("Regular guest_memfd mapped with hugepages (4k/2m/1g: %lu/%lu/%lu -> %lu/%lu/%lu)",
		       base.pages_4k, base.pages_2m, base.pages_1g,
		       now.pages_4k, now.pages_2m, now.pages_1g);
	ASSERT_LE(base.pages_4k + nr_touched, now.pages_4k)
		TH_LOG("Expected at least %lu new 4KiB mappings", nr_touched);

	do_fallocate(pg.fd, true, 0, size);
	run_guest(pg.vcpu, STAGE_RETOUCHED);
	run_guest(pg.vcpu, 0);

	private_guest_destroy(&pg);
}

/* ------------------------------------------------------------------------ */
/* HugeTLB cgroup reservation accounting                                    */
/* ------------------------------------------------------------------------ */

FIXTURE(gmem_hugetlb_cgroup) {
	/* Child cgroup created by the test, removed by the parent. */
	char cgroup[128];
	bool created;
	uint64_t flags;
	struct hugetlb_pool_stats base;
};

FIXTURE_VARIANT(gmem_hugetlb_cgroup) {
	size_t page_size;
	const char *name;
};

FIXTURE_VARIANT_ADD(gmem_hugetlb_cgroup, 2M) {
	.page_size = SZ_2M,
	.name = "2MB",
};

FIXTURE_VARIANT_ADD(gmem_hugetlb_cgroup, 1G) {
	.page_size = SZ_1G,
	.name = "1GB",
};

static int cg_write(const char *dir, const char *file, const char *str)
{
	char path[PATH_MAX];
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;

	r = write(fd, str, strlen(str));
	r = r < 0 ? -errno : 0;
	close(fd);

	return r;
}

static bool cg_has_controller(const char *dir, const char *name)
{
	char path[PATH_MAX], buf[512], *tok, *save;
	ssize_t len;
	int fd;

	snprintf(path, sizeof(path), "%s/cgroup.controllers", dir);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;

	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return false;
	buf[len] = '\0';

	for (tok = strtok_r(buf, "\n ", &save); tok;
	     tok = strtok_r(NULL, "\n ", &save)) {
		if (!strcmp(tok, name))
			return true;
	}

	return false;
}

static uint64_t cg_read_u64(struct __test_metadata *_metadata,
			    const char *cgroup, const char *file)
{
	char path[PATH_MAX];
	uint64_t val = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", cgroup, file);
	f = fopen(path, "r");
	ASSERT_NE(NULL, f) TH_LOG("Failed to open %s: %s", path, strerror(errno));
	ASSERT_EQ(1, fscanf(f, "%lu", &val)) TH_LOG("Failed to parse %s", path);
	fclose(f);

	return val;
}

static uint64_t cg_rsvd_current(struct __test_metadata *_metadata,
				const char *cgroup, const char *name)
{
	char file[64];

	snprintf(file, sizeof(file), "hugetlb.%s.rsvd.current", name);
	return cg_read_u64(_metadata, cgroup, file);
}

FIXTURE_SETUP(gmem_hugetlb_cgroup)
{
	uint64_t sizes = 0;
	struct statfs fs;

	if (!hugetlb_size_supported(variant->page_size, &sizes))
		SKIP(return,
		     "KVM doesn't support %zukB HugeTLB guest_memfd (KVM_CAP_GUEST_MEMFD_HUGETLB = 0x%lx)",
		     variant->page_size >> 10, sizes);

	if (statfs(CGROUP_ROOT, &fs) || fs.f_type != CGROUP2_SUPER_MAGIC)
		SKIP(return, "No cgroup2 filesystem mounted at %s", CGROUP_ROOT);
	if (!cg_has_controller(CGROUP_ROOT, "hugetlb"))
		SKIP(return, "No hugetlb controller in %s/cgroup.controllers",
		     CGROUP_ROOT);

	self->flags = guest_memfd_hugetlb_flags(variant->page_size);
	read_pool(_metadata, variant->page_size, &self->base);
}

/*
 * Runs in the parent after the test process exited, so that the cgroup is
 * empty and removed even if the test died.
 */
FIXTURE_TEARDOWN_PARENT(gmem_hugetlb_cgroup)
{
	int i, r;

	/* Close the fail-nth window even if the test died in it. */
	write_str_to_file("/dev/kmsg", "fault-injection: end\n");
	if (!self->created)
		return;

	for (i = 0; i < 100; i++) {
		r = rmdir(self->cgroup);
		if (!r || errno != EBUSY)
			break;
		usleep(10000);
	}
	if (r)
		TH_LOG("Failed to remove %s: %s", self->cgroup, strerror(errno));
}

/*
 * Move the test process to a new child of the root cgroup with the hugetlb
 * controller enabled, so that it is charged for its reservations.
 */
static bool __cg_enter_child(struct __test_metadata *_metadata, char *cgroup,
			     size_t cgroup_len, bool *created, const char *name)
{
	char path[256], pid[32];
	int r;

	r = cg_write(CGROUP_ROOT, "cgroup.subtree_control", "+hugetlb");
	if (r)
		SKIP(return false, "Can't enable hugetlb in %s/cgroup.subtree_control: %s",
		     CGROUP_ROOT, strerror(-r));

	snprintf(cgroup, cgroup_len, "%s/kvm_gmem_hugetlb_test.%d", CGROUP_ROOT,
		 getpid());
	if (mkdir(cgroup, 0755))
		SKIP(return false, "Can't create %s: %s", cgroup, strerror(errno));
	*created = true;

	snprintf(path, sizeof(path), "%s/hugetlb.%s.rsvd.current", cgroup, name);
	if (access(path, F_OK))
		SKIP(return false, "No %s", path);

	snprintf(pid, sizeof(pid), "%d", getpid());
	r = cg_write(cgroup, "cgroup.procs", pid);
	if (r)
		SKIP(return false, "Can't move to %s: %s", cgroup, strerror(-r));

	return true;
}

#define cg_enter_child()						\
	__cg_enter_child(_metadata, self->cgroup, sizeof(self->cgroup),	\
			 &self->created, variant->name)

TEST_F_TIMEOUT(gmem_hugetlb_cgroup, rsvd_charged_on_create_uncharged_on_close, 120)
{
	const uint64_t hpage = variant->page_size;
	struct kvm_vm *vm;
	uint64_t rsvd0, rsvd;
	int fd;

	if (!hugepages_available(2))
		return;
	if (!cg_enter_child())
		return;

	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	rsvd0 = cg_rsvd_current(_metadata, self->cgroup, variant->name);

	fd = vm_create_guest_memfd(vm, 2 * hpage, self->flags);
	rsvd = cg_rsvd_current(_metadata, self->cgroup, variant->name);
	ASSERT_EQ(rsvd0 + 2 * hpage, rsvd)
		TH_LOG("hugetlb.%s.rsvd.current is %lu after reserving 2 pages, expected %lu",
		       variant->name, rsvd, rsvd0 + 2 * hpage);
	assert_pool(&self->base, 0, 2, "created a 2 page file");

	/* Allocate one page, close must still uncharge everything. */
	do_fallocate(fd, false, 0, SZ_4K);
	assert_pool(&self->base, -1, 1, "allocated page 0");

	close(fd);
	rsvd = cg_rsvd_current(_metadata, self->cgroup, variant->name);
	ASSERT_EQ(rsvd0, rsvd)
		TH_LOG("hugetlb.%s.rsvd.current is %lu after close, expected %lu",
		       variant->name, rsvd, rsvd0);
	assert_pool(&self->base, 0, 0, "closed");

	kvm_vm_free(vm);
}

/* Assert the cgroup's hugetlb.<size>.rsvd.current and .current. */
static void __assert_cg(struct __test_metadata *_metadata, const char *cgroup,
			const char *name, uint64_t rsvd, uint64_t usage,
			int line, const char *step)
{
	uint64_t r = cg_rsvd_current(_metadata, cgroup, name);
	char file[64];
	uint64_t u;

	snprintf(file, sizeof(file), "hugetlb.%s.current", name);
	u = cg_read_u64(_metadata, cgroup, file);
	ASSERT_TRUE(r == rsvd && u == usage)
		TH_LOG("line %d, %s: hugetlb.%s.rsvd.current %lu (expected %lu), hugetlb.%s.current %lu (expected %lu)",
		       line, step, name, r, rsvd, name, u, usage);
}

#define assert_cg(rsvd, usage, step)					\
	__assert_cg(_metadata, self->cgroup, variant->name, rsvd, usage,	\
		    __LINE__, step)

/*
 * The reservation charge follows the hugepages the file holds a
 * reservation or a folio for, the usage charge the allocated folios:
 * through partial and whole punches, refaults, and under a
 * hugetlb.<size>.rsvd.max that leaves no room to spare.
 */
TEST_F_TIMEOUT(gmem_hugetlb_cgroup, charges_follow_punch_and_refault, 120)
{
	const uint64_t hpage = variant->page_size;
	char max[32], rsvd_max[64];
	struct kvm_vm *vm;
	int fd, fd2, err;

	if (!hugepages_available(3))
		return;
	if (!cg_enter_child())
		return;

	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	assert_cg(0, 0, "new cgroup");

	fd = vm_create_guest_memfd(vm, 2 * hpage, self->flags);
	assert_cg(2 * hpage, 0, "created a 2 page file");
	do_fallocate(fd, false, 0, 2 * hpage);
	assert_cg(2 * hpage, 2 * hpage, "allocated both pages");

	/* A partial punch keeps the folio and both charges. */
	do_fallocate(fd, true, SZ_4K, SZ_64K);
	assert_cg(2 * hpage, 2 * hpage, "punched 64K of page 0");

	/* Whole punches give back both charges, page by page. */
	do_fallocate(fd, true, hpage, hpage);
	assert_cg(hpage, hpage, "punched page 1");
	do_fallocate(fd, true, 0, SZ_4K);
	do_fallocate(fd, true, SZ_64K + SZ_4K, hpage - SZ_64K - SZ_4K);
	assert_cg(0, 0, "punched the rest of page 0");

	/* A refault charges again. */
	do_fallocate(fd, false, hpage, SZ_4K);
	assert_cg(hpage, hpage, "refaulted page 1");

	/*
	 * No room to spare: rsvd.max is what the file holds now.  A refault
	 * of a punched page must find the room its punch released.
	 */
	snprintf(rsvd_max, sizeof(rsvd_max), "hugetlb.%s.rsvd.max", variant->name);
	snprintf(max, sizeof(max), "%lu", hpage);
	ASSERT_EQ(0, cg_write(self->cgroup, rsvd_max, max));
	do_fallocate(fd, true, hpage, hpage);
	assert_cg(0, 0, "punched page 1 under rsvd.max");
	do_fallocate(fd, false, 0, SZ_4K);
	assert_cg(hpage, hpage, "refaulted page 0 under rsvd.max");
	do_fallocate_fail(fd, false, hpage, SZ_4K, ENOMEM);
	assert_cg(hpage, hpage, "refault of page 1 over rsvd.max failed");
	assert_pool(&self->base, -1, 0, "one page allocated");

	/* A new file over the limit fails and charges nothing. */
	fd2 = __vm_create_guest_memfd(vm, hpage, self->flags);
	err = errno;
	ASSERT_EQ(-1, fd2);
	ASSERT_EQ(ENOMEM, err);
	assert_cg(hpage, hpage, "creation over rsvd.max failed");

	close(fd);
	assert_cg(0, 0, "closed");
	assert_pool(&self->base, 0, 0, "closed");
	ASSERT_EQ(0, cg_write(self->cgroup, rsvd_max, "max"));
	kvm_vm_free(vm);
}

/* ------------------------------------------------------------------------ */
/* Fault injection: each allocation on each path fails once                 */
/* ------------------------------------------------------------------------ */

static int fault_knob(const char *attr, const char *file, const char *val)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/kernel/debug/%s/%s", attr, file);
	return write_str_to_file(path, val);
}

/*
 * Let the per-task fail-nth reach sleeping, highmem and order-0
 * allocations, without a stack dump per injected failure.
 */
static bool fault_injection_setup(void)
{
	return !fault_knob("failslab", "ignore-gfp-wait", "N") &&
	       !fault_knob("failslab", "verbose", "0") &&
	       !fault_knob("fail_page_alloc", "ignore-gfp-wait", "N") &&
	       !fault_knob("fail_page_alloc", "ignore-gfp-highmem", "N") &&
	       !fault_knob("fail_page_alloc", "min-order", "0") &&
	       !fault_knob("fail_page_alloc", "verbose", "0");
}

enum failnth_op {
	OP_CREATE,
	OP_ALLOCATE,
	OP_PUNCH_PART,
	OP_PUNCH_WHOLE,
	OP_FAULT,
	OP_CLOSE,
	NR_OPS,
};

static const char * const failnth_op_name[] = {
	"create", "fallocate", "partial punch", "whole punch",
	"KVM fault", "close",
};

struct failnth_snapshot {
	struct hugetlb_pool_stats pool;
	uint64_t rsvd, usage;
};

static void failnth_snapshot(struct __test_metadata *_metadata,
			     const char *cgroup, const char *name,
			     size_t page_size, struct failnth_snapshot *s)
{
	char file[64];

	ASSERT_TRUE(hugetlb_get_pool_stats(page_size, &s->pool));
	s->rsvd = cg_rsvd_current(_metadata, cgroup, name);
	snprintf(file, sizeof(file), "hugetlb.%s.current", name);
	s->usage = cg_read_u64(_metadata, cgroup, file);
}

/*
 * For each operation, make its first, second, ... allocation fail (the
 * per-task fail-nth), until the operation completes without reaching the
 * armed allocation.  Each injected failure must give a clean ENOMEM (or
 * success, where the allocation has a fallback), and once the state is torn
 * down the pool and the cgroup's rsvd and usage counters must be exactly
 * as before; kmemleak checks the rest at the end of the run.
 */
TEST_F_TIMEOUT(gmem_hugetlb_cgroup, fail_nth_every_allocation, 600)
{
	const uint64_t hpage = variant->page_size;
	const uint64_t gpa = GMEM_HUGETLB_GPA;
	struct kvm_pre_fault_memory range = { .gpa = gpa, .size = SZ_4K };
	struct failnth_snapshot before, after;
	int injected[NR_OPS] = {};
	struct private_guest pg;
	int op, n, fd, r, err, nth;
	char buf[16];
	bool hit;

	if (!sw_protected_vm_supported())
		SKIP(return, "KVM_X86_SW_PROTECTED_VM not supported");
	if (!hugepages_available(2))
		return;
	if (access("/proc/thread-self/fail-nth", W_OK) || !fault_injection_setup())
		SKIP(return, "No fail-nth, failslab or fail_page_alloc (CONFIG_FAULT_INJECTION_DEBUG_FS)");
	if (!cg_enter_child())
		return;

	/* A VM whose private memory is a 1-hugepage file, for faults. */
	private_guest_create(&pg, guest_code, self->flags, hpage, 0, hpage);
	nth = open("/proc/thread-self/fail-nth", O_RDWR);
	ASSERT_LE(0, nth);
	/* scripts/splat-check expects warn_alloc() reports in this window. */
	write_str_to_file("/dev/kmsg", "fault-injection: begin\n");

	for (op = 0; op < NR_OPS; op++) {
		for (n = 1; n < 1000; n++) {
			fd = -1;
			if (op == OP_FAULT)
				do_fallocate(pg.fd, true, 0, hpage);
			failnth_snapshot(_metadata, self->cgroup, variant->name,
					 hpage, &before);
			if (op != OP_CREATE && op != OP_FAULT) {
				fd = vm_create_guest_memfd(pg.vm, hpage, self->flags);
				if (op != OP_ALLOCATE)
					do_fallocate(fd, false, 0, hpage);
				if (op == OP_CLOSE)
					do_fallocate(fd, true, SZ_4K, SZ_4K);
			}

			snprintf(buf, sizeof(buf), "%d", n);
			ASSERT_EQ(strlen(buf), pwrite(nth, buf, strlen(buf), 0));
			switch (op) {
			case OP_CREATE:
				fd = __vm_create_guest_memfd(pg.vm, hpage,
							     self->flags);
				r = fd < 0 ? -1 : 0;
				break;
			case OP_ALLOCATE:
				r = gmem_fallocate(fd, false, 0, hpage);
				break;
			case OP_PUNCH_PART:
				r = gmem_fallocate(fd, true, SZ_4K, SZ_4K);
				break;
			case OP_PUNCH_WHOLE:
				r = gmem_fallocate(fd, true, 0, hpage);
				break;
			case OP_FAULT:
				range.gpa = gpa;
				range.size = SZ_4K;
				r = __vcpu_ioctl(pg.vcpu, KVM_PRE_FAULT_MEMORY,
						 &range);
				break;
			case OP_CLOSE:
				r = close(fd);
				fd = -1;
				break;
			}
			err = errno;
			memset(buf, 0, sizeof(buf));
			ASSERT_LT(0, pread(nth, buf, sizeof(buf) - 1, 0));
			hit = atoi(buf) == 0;
			ASSERT_EQ(1, pwrite(nth, "0", 1, 0));

			ASSERT_TRUE(!r || err == ENOMEM)
				TH_LOG("%s with allocation %d failing: %s, expected ENOMEM",
				       failnth_op_name[op], n, strerror(err));
			ASSERT_TRUE(!r || hit)
				TH_LOG("%s failed (%s) with no failure injected",
				       failnth_op_name[op], strerror(err));
			injected[op] += hit;

			if (fd >= 0)
				close(fd);
			if (op == OP_FAULT)
				do_fallocate(pg.fd, true, 0, hpage);
			failnth_snapshot(_metadata, self->cgroup, variant->name,
					 hpage, &after);
			ASSERT_TRUE(before.pool.free == after.pool.free &&
				    before.pool.resv == after.pool.resv &&
				    before.rsvd == after.rsvd &&
				    before.usage == after.usage)
				TH_LOG("%s with allocation %d failing (%s) left free/resv %lu/%lu -> %lu/%lu, cgroup rsvd %lu -> %lu, usage %lu -> %lu",
				       failnth_op_name[op], n,
				       r ? strerror(err) : "succeeded",
				       before.pool.free, before.pool.resv,
				       after.pool.free, after.pool.resv,
				       before.rsvd, after.rsvd,
				       before.usage, after.usage);
			if (!hit)
				break;
		}
		ksft_print_msg("%s: %d allocations failed in turn\n",
			       failnth_op_name[op], injected[op]);
	}
	close(nth);
	write_str_to_file("/dev/kmsg", "fault-injection: end\n");
	private_guest_destroy(&pg);
	assert_pool(&self->base, 0, 0, "fault injection done");

	/* Every path that allocates was made to fail at least once. */
	ASSERT_NE(0, injected[OP_CREATE]);
	ASSERT_NE(0, injected[OP_ALLOCATE]);
	ASSERT_NE(0, injected[OP_PUNCH_PART]);
	ASSERT_NE(0, injected[OP_FAULT]);
}

TEST_F(gmem_hugetlb_cgroup, rsvd_unchanged_on_enomem)
{
	const uint64_t hpage = variant->page_size;
	uint64_t avail = pool_available(&self->base);
	uint64_t rsvd0, rsvd;
	struct kvm_vm *vm;
	int fd, err;

	if (self->base.nr_overcommit)
		SKIP(return, "nr_overcommit_hugepages = %lu, the pool can grow",
		     self->base.nr_overcommit);
	if (!cg_enter_child())
		return;

	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	rsvd0 = cg_rsvd_current(_metadata, self->cgroup, variant->name);

	fd = __vm_create_guest_memfd(vm, (avail + 1) * hpage, self->flags);
	err = errno;
	ASSERT_EQ(-1, fd)
		TH_LOG("Reserving %lu hugepages succeeded with %lu available",
		       avail + 1, avail);
	ASSERT_EQ(ENOMEM, err)
		TH_LOG("Failed with %s, expected ENOMEM", strerror(err));

	rsvd = cg_rsvd_current(_metadata, self->cgroup, variant->name);
	ASSERT_EQ(rsvd0, rsvd)
		TH_LOG("hugetlb.%s.rsvd.current changed from %lu to %lu on a failed reservation",
		       variant->name, rsvd0, rsvd);
	assert_pool(&self->base, 0, 0, "failed reservation");

	kvm_vm_free(vm);
}

TEST_HARNESS_MAIN
