// SPDX-License-Identifier: GPL-2.0-only
/*
 * hugetlb guest_memfd (GUEST_MEMFD_FLAG_HUGETLB): KVM_CREATE_GUEST_MEMFD's
 * flags, sizes and fields and their errors, the capability of each VM type,
 * the reservation of the whole file at creation and what fallocate() and
 * lazy 4K punches do to the hugetlb pool, st_blocks, fdinfo and the hugetlb
 * cgroup's charges, allocation failures at every step, close, and the level
 * at which KVM maps the memory into a guest.
 *
 * The pool counters are global: nothing else may use hugepages of the
 * tested size while this runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <linux/bitmap.h>

#include "gmem_hugetlb.h"
#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include "kselftest_harness.h"
#include "gmem_hugetlb_harness.h"

/* Never zero, so that stale data can't pass for zeroed memory. */
#define PATTERN(off)	((u64)(0x5a5aa5a500000000ULL ^ (off)))

enum { STAGE_READY = 1, STAGE_TOUCHED, STAGE_RETOUCHED, STAGE_RACE };

#define need_hugepages(nr) \
	gmem_need_hugepages(_metadata, variant->page_size, &self->base, nr)
#define assert_pool(free, resv, fmt, ...) \
	hugetlb_pool_assert(variant->page_size, &self->base, free, resv, fmt, ##__VA_ARGS__)

FIXTURE(gmem_hugetlb) {
	struct kvm_vm *vm;
	struct guest_memfd_backing backing;
	struct hugetlb_pool base;
};

FIXTURE_VARIANT(gmem_hugetlb) {
	size_t page_size;
	/* How often the races allocate and free a hugepage. */
	int races;
};

FIXTURE_VARIANT_ADD(gmem_hugetlb, 2M) {
	.page_size = SZ_2M,
	.races = 16,
};

FIXTURE_VARIANT_ADD(gmem_hugetlb, 1G) {
	.page_size = SZ_1G,
	.races = 2,
};

FIXTURE_SETUP(gmem_hugetlb)
{
	if (!gmem_hugetlb_require(_metadata, variant->page_size))
		return;
	self->vm = gmem_vm_create_barebones();
	self->backing = guest_memfd_hugetlb_backing(variant->page_size);
	ASSERT_TRUE(hugetlb_pool_read(variant->page_size, &self->base));
}

FIXTURE_TEARDOWN(gmem_hugetlb)
{
	if (self->vm)
		kvm_vm_free(self->vm);
}

/* ------------------------------------------------------------------------ */
/* KVM_CREATE_GUEST_MEMFD: every outcome from one rule                      */
/* ------------------------------------------------------------------------ */

/* Success, or ENOMEM where the pool may grow (overcommit): either is right. */
#define ENOMEM_OR_SUCCESS	1

/*
 * What KVM_CREATE_GUEST_MEMFD with @args must give on @vm: -EINVAL for a
 * non-zero pad or reserved[], flags or a hugepage size the VM can't use,
 * or a size that is no multiple of the page size; -ENOMEM if the pool
 * can't reserve the whole file; else success.
 */
static int create_result(struct kvm_vm *vm, const struct kvm_create_guest_memfd *args)
{
	struct guest_memfd_backing b = { args->flags, args->huge_page_size_log2 };
	struct hugetlb_pool pool;
	size_t page_size;
	int i;

	for (i = 0; i < ARRAY_SIZE(args->reserved); i++) {
		if (args->reserved[i])
			return -EINVAL;
	}
	if (args->pad || !vm_guest_memfd_backing_valid(vm, b))
		return -EINVAL;
	page_size = guest_memfd_backing_page_size(b);
	if (!args->size || args->size > LLONG_MAX || args->size % page_size)
		return -EINVAL;
	if (!(b.flags & GUEST_MEMFD_FLAG_HUGETLB))
		return 0;
	TEST_ASSERT(hugetlb_pool_read(page_size, &pool), "no %zukB pool", page_size >> 10);
	if (args->size / page_size <= hugetlb_pool_unreserved(&pool))
		return 0;
	return pool.nr_overcommit ? ENOMEM_OR_SUCCESS : -ENOMEM;
}

/*
 * KVM_CREATE_GUEST_MEMFD with @args gives what create_result() says; a
 * failure moves no pool, a success reserves the file (st_blksize is its
 * page size) until close.
 */
static void __check_create(struct __test_metadata *_metadata, struct kvm_vm *vm,
			   const struct kvm_create_guest_memfd *args, int line)
{
	struct guest_memfd_backing b = { args->flags, args->huge_page_size_log2 };
	struct kvm_create_guest_memfd copy = *args;
	int want = create_result(vm, args), fd, err;
	struct hugetlb_pools before;
	struct stat st;
	char what[256];

	snprintf(what, sizeof(what),
		 "line %d: KVM_CREATE_GUEST_MEMFD(size 0x%llx, flags 0x%llx, log2 %u, pad 0x%x, reserved 0x%llx 0x%llx 0x%llx 0x%llx 0x%llx)",
		 line, args->size, args->flags, args->huge_page_size_log2, args->pad,
		 args->reserved[0], args->reserved[1], args->reserved[2],
		 args->reserved[3], args->reserved[4]);
	hugetlb_pools_read(&before);
	fd = __vm_ioctl(vm, KVM_CREATE_GUEST_MEMFD, &copy);
	err = fd < 0 ? -errno : 0;
	if (want == ENOMEM_OR_SUCCESS)
		want = err == -ENOMEM ? -ENOMEM : 0;
	ASSERT_EQ(want, err)
		TH_LOG("%s: %s, expected %s", what, err ? strerror(-err) : "success",
		       want ? strerror(-want) : "success");
	if (fd < 0) {
		hugetlb_pools_assert_unchanged(&before, "%s", what);
		return;
	}
	ASSERT_EQ(0, fstat(fd, &st));
	ASSERT_EQ(guest_memfd_backing_page_size(b), st.st_blksize)
		TH_LOG("%s: st_blksize %ld", what, (long)st.st_blksize);
	close(fd);
	hugetlb_pools_assert_unchanged(&before, "%s, then close", what);
}

#define check_create(vm, ...) \
	__check_create(_metadata, vm, &(struct kvm_create_guest_memfd){ __VA_ARGS__ }, __LINE__)

static void __check_backing(struct __test_metadata *_metadata, struct kvm_vm *vm,
			    u64 size, struct guest_memfd_backing b, int line)
{
	const struct kvm_create_guest_memfd args = {
		.size = size,
		.flags = b.flags,
		.huge_page_size_log2 = b.huge_page_size_log2,
	};

	__check_create(_metadata, vm, &args, line);
}

#define check_backing(vm, size, b) __check_backing(_metadata, vm, size, b, __LINE__)

/* Each VM type: the flag, the sizes and creation agree. */
TEST_F(gmem_hugetlb, capability)
{
	const u64 known = BIT_ULL(21) | BIT_ULL(30);
	unsigned long types = kvm_check_cap(KVM_CAP_VM_TYPES), type;
	struct hugetlb_pool pool;
	u64 flags, sizes;
	struct kvm_vm *vm;
	int shift;

	for_each_set_bit(type, &types, BITS_PER_TYPE(types)) {
		vm = vm_create_barebones_type(type);
		flags = vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS);
		sizes = vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_HUGETLB);
		ksft_print_msg("VM type %lu: guest_memfd flags 0x%lx, hugetlb sizes 0x%lx\n",
			       type, flags, sizes);
		ASSERT_EQ(!!(flags & GUEST_MEMFD_FLAG_HUGETLB), !!sizes)
			TH_LOG("VM type %lu: the flag and the sizes disagree", type);
		ASSERT_EQ(0, sizes & ~known);
		for (shift = 21; shift <= 30; shift += 9) {
			ASSERT_EQ(!!(sizes & BIT_ULL(shift)),
				  hugetlb_pool_read(1UL << shift, &pool) &&
				  !!(flags & GUEST_MEMFD_FLAG_HUGETLB))
				TH_LOG("VM type %lu: 0x%lx doesn't match the %lukB pool",
				       type, sizes, 1UL << (shift - 10));
		}
		/* The VM type decides, through the capabilities. */
		check_backing(vm, variant->page_size, self->backing);
		kvm_vm_free(vm);
	}
	ASSERT_TRUE(vm_check_cap(self->vm, KVM_CAP_GUEST_MEMFD_FLAGS) &
		    GUEST_MEMFD_FLAG_HUGETLB);
}

/*
 * Every flag alone, and with GUEST_MEMFD_FLAG_HUGETLB (of this size and of
 * the default size): valid exactly when KVM_CAP_GUEST_MEMFD_FLAGS reports
 * it for the VM and vm_guest_memfd_flags_valid() (the library's rules)
 * accepts the combination.
 */
TEST_F_TIMEOUT(gmem_hugetlb, flags, 120)
{
	const struct guest_memfd_backing hugetlb[] = {
		self->backing, guest_memfd_hugetlb_backing(0),
	};
	struct guest_memfd_backing b;
	int bit, i;

	for (bit = 0; bit < 64; bit++) {
		if (BIT_ULL(bit) != GUEST_MEMFD_FLAG_HUGETLB)
			check_create(self->vm, .size = SZ_1G, .flags = BIT_ULL(bit));
		for (i = 0; i < ARRAY_SIZE(hugetlb); i++) {
			b = hugetlb[i];
			b.flags |= BIT_ULL(bit);
			check_backing(self->vm, guest_memfd_backing_page_size(hugetlb[i]), b);
		}
	}
}

/*
 * huge_page_size_log2: 0 or a size of KVM_CAP_GUEST_MEMFD_HUGETLB with the
 * flag, only 0 without it; sizes that would be whole pages of a wrong log2.
 */
TEST_F_TIMEOUT(gmem_hugetlb, huge_page_size_log2, 120)
{
	const u32 large[] = { 64, 255, UINT32_MAX };
	u64 size;
	u32 log2;

	for (log2 = 0; log2 < 64 + ARRAY_SIZE(large); log2++) {
		u32 v = log2 < 64 ? log2 : large[log2 - 64];

		/* No positive loff_t is a multiple of 2^63. */
		size = v >= 30 && v < 64 ? 1ULL << min_t(u32, v, 62) : SZ_1G;
		if (vm_check_cap(self->vm, KVM_CAP_GUEST_MEMFD_HUGETLB) & BIT_ULL(v & 63))
			size = 1ULL << v;
		if (!v)
			size = get_def_hugetlb_pagesz();
		check_create(self->vm, .size = size, .flags = GUEST_MEMFD_FLAG_HUGETLB,
			     .huge_page_size_log2 = v);
		check_create(self->vm, .size = SZ_1G, .huge_page_size_log2 = v);
	}
}

/*
 * A non-zero pad or reserved[] is invalid, with or without hugetlb: each
 * field of both at 0, 1 and its top bit.
 */
TEST_F(gmem_hugetlb, pad_and_reserved)
{
	const struct guest_memfd_backing backings[] = { {}, self->backing };
	struct kvm_create_guest_memfd args;
	int i, field, v;

	for (i = 0; i < ARRAY_SIZE(backings); i++) {
		for (field = -1; field < (int)ARRAY_SIZE(args.reserved); field++) {
			for (v = 0; v < 3; v++) {
				args = (struct kvm_create_guest_memfd) {
					.size = variant->page_size,
					.flags = backings[i].flags,
					.huge_page_size_log2 = backings[i].huge_page_size_log2,
				};
				if (field < 0)
					args.pad = v == 2 ? BIT(31) : v;
				else
					args.reserved[field] = v == 2 ? BIT_ULL(63) : v;
				__check_create(_metadata, self->vm, &args, __LINE__);
			}
		}
	}
}

/*
 * Sizes that are no multiple of the hugepage, and sizes no pool can cover:
 * ENOMEM before anything proportional to the size is allocated.
 */
TEST_F_TIMEOUT(gmem_hugetlb, sizes, 120)
{
	const u64 hpage = variant->page_size;
	const u64 sizes[] = {
		0, 1, SZ_4K - 1, SZ_4K, SZ_64K, hpage / 2, hpage - SZ_4K,
		hpage + SZ_4K, hpage + hpage / 2, 2 * hpage - SZ_4K, 2 * hpage + 1,
		SZ_2M * 3, SZ_1G + SZ_2M, hpage, 2 * hpage,
		1ULL << 40, 1ULL << 50, 1ULL << 62, (u64)LLONG_MAX & ~(hpage - 1),
		1ULL << 63, ~0ULL & ~(hpage - 1),
	};
	int i;

	for (i = 0; i < ARRAY_SIZE(sizes); i++)
		check_backing(self->vm, sizes[i], self->backing);
}

/* Reserving more than is left fails, before and after taking all of it. */
TEST_F(gmem_hugetlb, pool_exhausted)
{
	const u64 hpage = variant->page_size;
	u64 avail = hugetlb_pool_unreserved(&self->base);
	int fd;

	if (self->base.nr_overcommit)
		SKIP(return, "nr_overcommit_hugepages %lu: the pool can grow",
		     self->base.nr_overcommit);
	check_backing(self->vm, (avail + 1) * hpage, self->backing);
	if (!avail)
		return;

	fd = vm_create_guest_memfd_backing(self->vm, avail * hpage, self->backing);
	assert_pool(0, avail, "reserved the whole pool");
	check_backing(self->vm, hpage, self->backing);
	close(fd);
	assert_pool(0, 0, "closed the file reserving the whole pool");
}

/* The default hugepage size, with huge_page_size_log2 = 0. */
TEST_F(gmem_hugetlb, default_page_size)
{
	size_t def = get_def_hugetlb_pagesz();
	struct stat st;
	int fd;

	if (def != variant->page_size)
		SKIP(return, "the default hugepage size is %zukB", def >> 10);
	if (!need_hugepages(2))
		return;
	fd = vm_create_guest_memfd_backing(self->vm, 2 * def, guest_memfd_hugetlb_backing(0));
	assert_pool(0, 2, "created with the default size");
	ASSERT_EQ(0, fstat(fd, &st));
	ASSERT_EQ(def, st.st_blksize);
	close(fd);
	assert_pool(0, 0, "closed");
}

/* No read, write or mmap(), and none of them allocates anything. */
TEST_F(gmem_hugetlb, file_ops)
{
	const u64 size = 2 * variant->page_size;
	struct stat st;
	char buf[64];
	int fd;

	if (!need_hugepages(2))
		return;
	fd = vm_create_guest_memfd_backing(self->vm, size, self->backing);
	ASSERT_EQ(0, fstat(fd, &st));
	ASSERT_EQ(size, st.st_size);
	ASSERT_EQ(variant->page_size, st.st_blksize);
	ASSERT_GT(0, read(fd, buf, sizeof(buf)));
	ASSERT_GT(0, write(fd, buf, sizeof(buf)));
	ASSERT_GT(0, pread(fd, buf, sizeof(buf), 0));
	ASSERT_GT(0, pwrite(fd, buf, sizeof(buf), 0));
	ASSERT_EQ(MAP_FAILED, mmap(NULL, variant->page_size, PROT_READ | PROT_WRITE,
				   MAP_SHARED, fd, 0));
	ASSERT_EQ(MAP_FAILED, mmap(NULL, variant->page_size, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE, fd, 0));
	ASSERT_EQ(-1, fallocate(fd, 0, 0, variant->page_size))
		TH_LOG("fallocate() without FALLOC_FL_KEEP_SIZE succeeded");
	assert_pool(0, 2, "after read, write, mmap and fallocate() attempts");
	close(fd);
	assert_pool(0, 0, "closed");
}

/* fdinfo: every hugetlb line on a hugetlb file, none on a regular one. */
TEST_F(gmem_hugetlb, fdinfo)
{
	struct gmem_fdinfo fi;
	int fd;

	fd = vm_create_guest_memfd(self->vm, variant->page_size, 0);
	ASSERT_NE(NULL, gmem_fdinfo_parse(fd, &fi))
		TH_LOG("a regular guest_memfd has hugetlb lines in its fdinfo");
	close(fd);

	if (!need_hugepages(3))
		return;
	fd = vm_create_guest_memfd_backing(self->vm, 3 * variant->page_size, self->backing);
	gmem_fdinfo_assert(fd, &(struct gmem_fdinfo){ .page_size = variant->page_size,
			   .pages = 3, .reserved = 3 }, "created");
	gmem_fdinfo_read(fd, &fi);
	ksft_print_msg("%lu metadata bytes for a file of 3 %zukB pages\n",
		       fi.metadata_bytes, variant->page_size >> 10);
	close(fd);
}

TEST_F(gmem_hugetlb, reserve_on_create_release_on_close)
{
	const int nr = variant->page_size >= SZ_1G ? 2 : 8;
	int fd1, fd2;

	if (!need_hugepages(nr + 1))
		return;
	fd1 = vm_create_guest_memfd_backing(self->vm, nr * variant->page_size, self->backing);
	assert_pool(0, nr, "created a %d page file", nr);
	fd2 = vm_create_guest_memfd_backing(self->vm, variant->page_size, self->backing);
	assert_pool(0, nr + 1, "created a second, one page file");
	close(fd1);
	assert_pool(0, 1, "closed the %d page file", nr);
	close(fd2);
	assert_pool(0, 0, "closed both");
}

/* ------------------------------------------------------------------------ */
/* fallocate() and punch-hole, step by step                                 */
/* ------------------------------------------------------------------------ */

/* An offset or length: @h halves of a hugepage, @k 4K pages and @b bytes. */
struct pos {
	int h, k, b;
};

#define AT(h, k)	{ h, k, 0 }
#define ATB(h, k, b)	{ h, k, b }

enum step_op { ALLOC, PUNCH, RSVD_MAX };

/*
 * One fallocate() on a two-hugepage file, or (RSVD_MAX) a new cgroup
 * hugetlb.<size>.rsvd.max of @len, and the state after it: the errno, the
 * pool's free and reserved pages relative to before the file, and the
 * partly punched folios and punched subpages of fdinfo.  From the pool
 * follow st_blocks (the allocated hugepages), fdinfo's reserved and
 * allocated hugepages and the cgroup's charges: rsvd for what the file
 * reserved or allocated, usage for what it allocated.
 */
struct step {
	enum step_op op;
	struct pos off, len;
	int err;
	int free, resv;
	int partial;
	struct pos punched;
	const char *what;
};

static u64 pos_bytes(struct pos p, size_t hpage)
{
	return (s64)p.h * (s64)(hpage / 2) + (s64)p.k * SZ_4K + p.b;
}

struct steps_ctx {
	size_t hpage;
	const struct hugetlb_pool *base;
	const struct hugetlb_cgroup *cg;
	u64 rsvd0, usage0;
};

static void run_steps(struct __test_metadata *_metadata, const struct steps_ctx *c,
		      int fd, const struct step *steps, int nr)
{
	const u64 blocks_per_page = c->hpage / 512;
	struct stat st;
	int i, r;

	for (i = 0; i < nr; i++) {
		const struct step *s = &steps[i];
		u64 off = pos_bytes(s->off, c->hpage), len = pos_bytes(s->len, c->hpage);

		if (s->op == RSVD_MAX) {
			hugetlb_cgroup_set_rsvd_max(c->cg, len);
			continue;
		}
		r = __gmem_fallocate(fd, s->op == PUNCH, off, len);
		ASSERT_EQ(s->err, r)
			TH_LOG("step %d (%s): %s(0x%lx, 0x%lx): %s, expected %s", i, s->what,
			       s->op == PUNCH ? "PUNCH_HOLE" : "fallocate", off, len,
			       r ? strerror(r) : "success",
			       s->err ? strerror(s->err) : "success");
		hugetlb_pool_assert(c->hpage, c->base, s->free, s->resv, "step %d (%s)",
				    i, s->what);
		ASSERT_EQ(0, fstat(fd, &st));
		ASSERT_EQ(-s->free * blocks_per_page, st.st_blocks)
			TH_LOG("step %d (%s): st_blocks %ld", i, s->what, (long)st.st_blocks);
		gmem_fdinfo_assert(fd, &(struct gmem_fdinfo){
			.page_size = c->hpage, .pages = 2, .reserved = s->resv,
			.allocated = -s->free, .partial_folios = s->partial,
			.punched_subpages = pos_bytes(s->punched, c->hpage) / SZ_4K,
		}, "step %d (%s)", i, s->what);
		if (!c->cg)
			continue;
		ASSERT_EQ(c->rsvd0 + (s->resv - s->free) * c->hpage, hugetlb_cgroup_rsvd(c->cg))
			TH_LOG("step %d (%s): cgroup rsvd charge", i, s->what);
		ASSERT_EQ(c->usage0 - s->free * c->hpage, hugetlb_cgroup_usage(c->cg))
			TH_LOG("step %d (%s): cgroup usage charge", i, s->what);
	}
}

/* Create a two-hugepage file, run @steps on it, close it. */
static void file_steps(struct __test_metadata *_metadata, struct kvm_vm *vm,
		       struct guest_memfd_backing backing, const struct hugetlb_pool *base,
		       const struct step *steps, int nr)
{
	const struct steps_ctx c = { guest_memfd_backing_page_size(backing), base };
	int fd;

	if (!gmem_need_hugepages(_metadata, c.hpage, base, 2))
		return;
	fd = vm_create_guest_memfd_backing(vm, 2 * c.hpage, backing);
	hugetlb_pool_assert(c.hpage, base, 0, 2, "created a two-page file");
	run_steps(_metadata, &c, fd, steps, nr);
	close(fd);
	hugetlb_pool_assert(c.hpage, base, 0, 0, "closed");
}

/*
 * The test @name: the steps that follow, rows of struct step, on a new
 * two-hugepage file.  They are steps_<name>[] for other tests.
 */
#define FILE_STEPS_TEST(name, ...)					\
	static const struct step steps_##name[] = __VA_ARGS__;		\
	TEST_F_TIMEOUT(gmem_hugetlb, name, 120)				\
	{								\
		file_steps(_metadata, self->vm, self->backing, &self->base, \
			   steps_##name, ARRAY_SIZE(steps_##name));	\
	}

FILE_STEPS_TEST(fallocate_accounting, {
	{ ALLOC, AT(1, 0), AT(0, 1), 0, -1, 1, .what = "4K of page 0 allocates all of it" },
	{ ALLOC, AT(1, 0), AT(0, 1), 0, -1, 1, .what = "again: nothing" },
	{ ALLOC, AT(0, 0), AT(2, 0), 0, -1, 1, .what = "all of page 0: nothing" },
	{ ALLOC, AT(2, -1), AT(0, 2), 0, -2, 0, .what = "across pages 0 and 1" },
	{ ALLOC, AT(0, 0), AT(4, 0), 0, -2, 0, .what = "the whole file: nothing" },
})

FILE_STEPS_TEST(punch_hole_accounting, {
	{ ALLOC, AT(0, 0), AT(0, 1), 0, -1, 1, .what = "allocated page 0" },
	{ PUNCH, AT(2, 0), AT(2, 0), 0, -1, 0, .what = "punched page 1 before use" },
	{ PUNCH, AT(2, 0), AT(2, 0), 0, -1, 0, .what = "again" },
	{ PUNCH, AT(0, 0), AT(2, 0), 0, 0, 0, .what = "punched allocated page 0" },
	{ PUNCH, AT(0, 0), AT(2, 0), 0, 0, 0, .what = "again" },
	{ ALLOC, AT(2, -1), AT(0, 2), 0, -2, 0, .what = "both punched pages again" },
	{ PUNCH, AT(4, 0), AT(2, 0), 0, -2, 0, .what = "beyond EOF: nothing" },
	{ PUNCH, AT(0, 0), AT(4, 0), 0, 0, 0, .what = "the whole file" },
})

/*
 * Lazy punch-hole: a partial punch keeps the folio and the pool as they
 * are until its last subpage goes; then the hugepage returns to the pool,
 * and its reservation with it.  A partial punch of a hugepage without a
 * folio changes nothing.
 */
FILE_STEPS_TEST(punch_hole_partial_is_lazy, {
	{ ALLOC, AT(0, 0), AT(2, 0), 0, -1, 1, .what = "allocated page 0" },
	{ PUNCH, AT(0, 0), AT(0, 1), 0, -1, 1, 1, AT(0, 1), "first 4K" },
	{ PUNCH, AT(0, 1), AT(1, -1), 0, -1, 1, 1, AT(1, 0), "to the middle" },
	{ PUNCH, AT(1, 0), AT(1, -2), 0, -1, 1, 1, AT(2, -2), "all but 8K" },
	{ PUNCH, AT(2, 0), AT(0, 1), 0, -1, 1, 1, AT(2, -2), "page 1 has no folio" },
	{ PUNCH, AT(2, 1), AT(1, 0), 0, -1, 1, 1, AT(2, -2), "page 1 again" },
	{ PUNCH, AT(0, 0), AT(1, 0), 0, -1, 1, 1, AT(2, -2), "what is punched" },
	{ PUNCH, AT(2, -1), AT(0, 1), 0, -1, 1, 1, AT(2, -1), "one subpage left" },
	{ PUNCH, AT(2, -2), AT(0, 1), 0, 0, 1, 0, AT(0, 0), "the last subpage" },
})

/* st_blocks follows the allocated hugepages; a partial punch keeps one. */
FILE_STEPS_TEST(st_blocks_follow_allocation, {
	{ ALLOC, AT(0, 0), AT(4, 0), 0, -2, 0, .what = "both pages" },
	{ PUNCH, AT(0, 1), AT(0, 16), 0, -2, 0, 1, AT(0, 16), "64K of page 0" },
	{ PUNCH, AT(2, 0), AT(2, 0), 0, -1, 0, 1, AT(0, 16), "page 1" },
	{ PUNCH, AT(0, 0), AT(0, 1), 0, -1, 0, 1, AT(0, 17), "4K more" },
	{ PUNCH, AT(0, 17), AT(2, -17), 0, 0, 0, .what = "the rest of page 0" },
	{ ALLOC, AT(2, 1), AT(0, 1), 0, -1, 0, .what = "4K of page 1" },
})

FILE_STEPS_TEST(fallocate_invalid, {
	{ ALLOC, ATB(0, 0, 1), AT(0, 1), EINVAL, 0, 2, .what = "unaligned offset" },
	{ ALLOC, AT(0, 0), ATB(0, 1, -1), EINVAL, 0, 2, .what = "unaligned length" },
	{ ALLOC, AT(0, 1), ATB(2, 0, 1), EINVAL, 0, 2, .what = "unaligned length" },
	{ PUNCH, ATB(0, 0, 1), AT(2, 0), EINVAL, 0, 2, .what = "unaligned offset" },
	{ PUNCH, AT(0, 0), ATB(2, 0, -1), EINVAL, 0, 2, .what = "unaligned length" },
	{ PUNCH, AT(2, 0), ATB(2, 0, 1), EINVAL, 0, 2, .what = "unaligned length" },
	{ ALLOC, AT(4, 0), AT(0, 1), EINVAL, 0, 2, .what = "at EOF" },
	{ ALLOC, AT(4, -1), AT(0, 2), EINVAL, 0, 2, .what = "across EOF" },
	{ ALLOC, AT(6, 0), AT(2, 0), EINVAL, 0, 2, .what = "beyond EOF" },
})

/* ------------------------------------------------------------------------ */
/* Races                                                                    */
/* ------------------------------------------------------------------------ */

struct stat_racer {
	int fd;
	bool stop;
	size_t blksize;
	u64 stats, wrong;
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
		r->wrong += S_ISREG(st.st_mode) && st.st_blksize != r->blksize;
	}
	return NULL;
}

/*
 * stat() of /proc/PID/fd/N keeps the inode alive past the release that
 * frees the hugetlb state: it must not read that state.
 */
TEST_F_TIMEOUT(gmem_hugetlb, stat_races_close, 120)
{
	struct stat_racer r = { .fd = -1, .blksize = variant->page_size };
	pthread_t thread;
	int i, fd;

	if (!need_hugepages(1))
		return;
	ASSERT_EQ(0, pthread_create(&thread, NULL, stat_racer_fn, &r));
	for (i = 0; i < 2000; i++) {
		fd = vm_create_guest_memfd_backing(self->vm, variant->page_size, self->backing);
		WRITE_ONCE(r.fd, fd);
		close(fd);
	}
	WRITE_ONCE(r.stop, true);
	pthread_join(thread, NULL);
	ksft_print_msg("%lu stat() calls during 2000 create/close cycles\n", r.stats);
	ASSERT_NE(0, r.stats);
	ASSERT_EQ(0, r.wrong) TH_LOG("%lu stat() calls saw a wrong st_blksize", r.wrong);
	assert_pool(0, 0, "created and closed 2000 files");
}

struct falloc_thread {
	pthread_t thread;
	pthread_barrier_t *barrier;
	int fd, err;
	u64 offset;
};

static void *falloc_fn(void *arg)
{
	struct falloc_thread *t = arg;

	pthread_barrier_wait(t->barrier);
	t->err = __gmem_fallocate(t->fd, false, t->offset, SZ_4K);
	return NULL;
}

static void falloc_start(struct falloc_thread *t, pthread_barrier_t *barrier,
			 int fd, u64 offset)
{
	*t = (struct falloc_thread){ .barrier = barrier, .fd = fd, .offset = offset };
	TEST_ASSERT(!pthread_create(&t->thread, NULL, falloc_fn, t), "pthread_create()");
}

/* Two threads allocating the same hugepage allocate it once. */
TEST_F_TIMEOUT(gmem_hugetlb, concurrent_fallocate, 120)
{
	const u64 hpage = variant->page_size;
	struct falloc_thread t[2];
	pthread_barrier_t barrier;
	int fd, i, j;

	if (!need_hugepages(1))
		return;
	fd = vm_create_guest_memfd_backing(self->vm, hpage, self->backing);
	pthread_barrier_init(&barrier, NULL, 2);
	for (i = 0; i < variant->races; i++) {
		falloc_start(&t[0], &barrier, fd, i & 1 ? hpage - SZ_4K : 0);
		falloc_start(&t[1], &barrier, fd, i & 1 ? 0 : hpage - SZ_4K);
		for (j = 0; j < 2; j++) {
			pthread_join(t[j].thread, NULL);
			ASSERT_EQ(0, t[j].err) TH_LOG("race %d: %s", i, strerror(t[j].err));
		}
		assert_pool(-1, 0, "race %d: two threads allocated the page", i);
		gmem_punch(fd, 0, hpage);
		assert_pool(0, 0, "race %d: punched", i);
	}
	pthread_barrier_destroy(&barrier);
	close(fd);
	assert_pool(0, 0, "closed");
}

/* ------------------------------------------------------------------------ */
/* A guest                                                                  */
/* ------------------------------------------------------------------------ */

/* Every @stride bytes read zero; write a pattern and read it back. */
static void guest_check_zero_and_fill(u64 gpa, u64 size, u64 stride)
{
	u64 off, val;

	for (off = 0; off < size; off += stride) {
		val = READ_ONCE(*(u64 *)(gpa + off));
		__GUEST_ASSERT(!val, "gpa 0x%lx reads 0x%lx, not zero", gpa + off, val);
		WRITE_ONCE(*(u64 *)(gpa + off), PATTERN(off));
	}
	for (off = 0; off < size; off += stride) {
		val = READ_ONCE(*(u64 *)(gpa + off));
		__GUEST_ASSERT(val == PATTERN(off), "gpa 0x%lx reads 0x%lx, wrote 0x%lx",
			       gpa + off, val, PATTERN(off));
	}
}

/* Touch, then touch again after the host punched everything. */
static void guest_code(u64 gpa, u64 size, u64 stride)
{
	GUEST_SYNC(STAGE_READY);
	guest_check_zero_and_fill(gpa, size, stride);
	GUEST_SYNC(STAGE_TOUCHED);
	guest_check_zero_and_fill(gpa, size, stride);
	GUEST_SYNC(STAGE_RETOUCHED);
	GUEST_DONE();
}

/* The first and the last word, @races times, racing with the host. */
static void guest_race_code(u64 gpa, u64 size, u64 races)
{
	u64 i;

	GUEST_SYNC(STAGE_READY);
	for (i = 0; i < races; i++) {
		guest_check_zero_and_fill(gpa, size, size - sizeof(u64));
		GUEST_SYNC(STAGE_RACE + i);
	}
	GUEST_DONE();
}

/* Touching every 4K of 1G is slow under emulation. */
static u64 guest_stride(u64 size)
{
	return size >= SZ_1G ? SZ_64K : SZ_4K;
}

/* A guest fault and a host fallocate() of one hugepage allocate it once. */
TEST_F_TIMEOUT(gmem_hugetlb, concurrent_fault_and_fallocate, 120)
{
	const u64 hpage = variant->page_size;
	const struct gmem_guest_args args = { self->backing, hpage };
	/* The guest touches the first and the last word of the hugepage. */
	const size_t map = gmem_private_map_size(hpage);
	const u64 nr_maps = map < hpage ? 2 : 1;
	struct mapping_levels base, now;
	struct falloc_thread t;
	pthread_barrier_t barrier;
	struct gmem_guest g;
	int i;

	if (!need_hugepages(1))
		return;
	gmem_guest_create(&g, guest_race_code, &args);
	vcpu_args_set(g.vcpu, 3, g.gpa, hpage, variant->races);
	gmem_guest_run(g.vcpu, STAGE_READY);
	mapping_levels_read(g.vm, &base);
	pthread_barrier_init(&barrier, NULL, 2);

	for (i = 0; i < variant->races; i++) {
		falloc_start(&t, &barrier, g.fd, i & 1 ? 0 : hpage - SZ_4K);
		pthread_barrier_wait(&barrier);
		gmem_guest_run(g.vcpu, STAGE_RACE + i);
		pthread_join(t.thread, NULL);
		ASSERT_EQ(0, t.err) TH_LOG("race %d: %s", i, strerror(t.err));
		assert_pool(-1, 0, "race %d: guest and host allocated the page", i);
		mapping_levels_read(g.vm, &now);
		ASSERT_EQ(mapping_levels_pages(&base, map) + nr_maps,
			  mapping_levels_pages(&now, map))
			TH_LOG("race %d: not mapped with %zukB pages", i, map >> 10);
		gmem_punch(g.fd, 0, hpage);
		assert_pool(0, 0, "race %d: punched", i);
		mapping_levels_read(g.vm, &now);
		ASSERT_EQ(mapping_levels_pages(&base, map), mapping_levels_pages(&now, map))
			TH_LOG("race %d: the punch left the %zukB mappings", i, map >> 10);
	}
	gmem_guest_run(g.vcpu, 0);
	pthread_barrier_destroy(&barrier);
	gmem_guest_destroy(&g);
	assert_pool(0, 0, "destroyed the VM and closed the file");
}

/*
 * The guest touches its memory (zeroed), punches take it away, the guest
 * touches it again (zeroed again); @level is the size KVM must map it with,
 * and @nr_maps how many new mappings of that size each touch makes.
 */
static void __guest_touch_twice(struct __test_metadata *_metadata,
				const struct gmem_guest_args *args,
				const struct hugetlb_pool *base, size_t level,
				u64 nr_maps)
{
	const size_t hpage = guest_memfd_backing_page_size(args->backing);
	const bool hugetlb = args->backing.flags & GUEST_MEMFD_FLAG_HUGETLB;
	const long nr = args->file_size / hpage;
	struct mapping_levels before, touched, now;
	struct gmem_guest g;
	char lv[96];
	int pass;

	/* With SEV-SNP's RMP, 1G folios are mapped with 2M pages. */
	if (gmem_private_map_size(level) < level) {
		nr_maps *= level / gmem_private_map_size(level);
		level = gmem_private_map_size(level);
	}
	gmem_guest_create(&g, guest_code, args);
	vcpu_args_set(g.vcpu, 3, g.gpa, g.size, guest_stride(g.size));
	gmem_guest_run(g.vcpu, STAGE_READY);
	mapping_levels_read(g.vm, &before);

	for (pass = 0; pass < 2; pass++) {
		gmem_guest_run(g.vcpu, STAGE_TOUCHED + pass);
		if (hugetlb)
			hugetlb_pool_assert(hpage, base, -nr, 0, "touch %d", pass);
		mapping_levels_read(g.vm, &touched);
		mapping_levels_str(&before, &touched, lv, sizeof(lv));
		ASSERT_LE(mapping_levels_pages(&before, level) + nr_maps,
			  mapping_levels_pages(&touched, level))
			TH_LOG("touch %d: expected %lu new %zukB mappings (%s)", pass,
			       nr_maps, level >> 10, lv);
		if (level != SZ_1G)
			ASSERT_EQ(before.pages_1g, touched.pages_1g) TH_LOG("%s", lv);
		if (level != SZ_2M)
			ASSERT_EQ(before.pages_2m, touched.pages_2m) TH_LOG("%s", lv);
		if (level != SZ_4K)
			ASSERT_EQ(mapping_levels_pages(&before, level) + nr_maps,
				  mapping_levels_pages(&touched, level)) TH_LOG("%s", lv);

		gmem_punch(g.fd, 0, args->file_size);
		if (hugetlb)
			hugetlb_pool_assert(hpage, base, 0, 0, "punched, pass %d", pass);
		mapping_levels_read(g.vm, &now);
		ASSERT_LE(mapping_levels_pages(&now, level) + nr_maps,
			  mapping_levels_pages(&touched, level))
			TH_LOG("the punch left mappings (%s)",
			       mapping_levels_str(&touched, &now, lv, sizeof(lv)));
	}
	gmem_guest_run(g.vcpu, 0);
	gmem_guest_destroy(&g);
}

/* Mapped with pages of the hugepage size: 1 GiB, or 4 MiB of 2M pages. */
TEST_F_TIMEOUT(gmem_hugetlb, guest_private_mapping, 120)
{
	const u64 hpage = variant->page_size;
	const long nr = hpage >= SZ_1G ? 1 : 2;
	const struct gmem_guest_args args = { self->backing, nr * hpage };

	if (!need_hugepages(nr))
		return;
	__guest_touch_twice(_metadata, &args, &self->base, hpage, nr);
	assert_pool(0, 0, "destroyed the VM and closed the file");
}

/* A memslot whose file offset is misaligned with its gpa: 4K mappings only. */
TEST_F_TIMEOUT(gmem_hugetlb, guest_misaligned_offset, 120)
{
	const struct gmem_guest_args args = {
		.backing = self->backing,
		.file_size = align_up(SZ_4K + SZ_4M, variant->page_size),
		.offset = SZ_4K,
		.slot_size = SZ_4M,
	};

	if (!need_hugepages(args.file_size / variant->page_size))
		return;
	__guest_touch_twice(_metadata, &args, &self->base, SZ_4K,
			    SZ_4M / guest_stride(SZ_4M));
	assert_pool(0, 0, "destroyed the VM and closed the file");
}

FIXTURE(gmem_4k) {};
FIXTURE_SETUP(gmem_4k) {}
FIXTURE_TEARDOWN(gmem_4k) {}

/* Control: a regular guest_memfd is mapped with 4K pages only. */
TEST_F_TIMEOUT(gmem_4k, guest_mapping, 120)
{
	const struct gmem_guest_args args = { .file_size = SZ_4M };

	if (!sw_protected_vm_supported())
		SKIP(return, "no KVM_X86_SW_PROTECTED_VM");
	__guest_touch_twice(_metadata, &args, NULL, SZ_4K, SZ_4M / SZ_4K);
}

/* ------------------------------------------------------------------------ */
/* The hugetlb cgroup                                                       */
/* ------------------------------------------------------------------------ */

FIXTURE(gmem_hugetlb_cgroup) {
	struct hugetlb_cgroup cg;
	struct guest_memfd_backing backing;
	struct hugetlb_pool base;
};

FIXTURE_VARIANT(gmem_hugetlb_cgroup) {
	size_t page_size;
};

FIXTURE_VARIANT_ADD(gmem_hugetlb_cgroup, 2M) {
	.page_size = SZ_2M,
};

FIXTURE_VARIANT_ADD(gmem_hugetlb_cgroup, 1G) {
	.page_size = SZ_1G,
};

/* Moves the test's process into a new cgroup. */
FIXTURE_SETUP(gmem_hugetlb_cgroup)
{
	const char *why;

	if (!gmem_hugetlb_require(_metadata, variant->page_size))
		return;
	self->backing = guest_memfd_hugetlb_backing(variant->page_size);
	ASSERT_TRUE(hugetlb_pool_read(variant->page_size, &self->base));
	why = hugetlb_cgroup_enter(&self->cg, variant->page_size);
	if (why) {
		hugetlb_cgroup_remove(&self->cg);
		SKIP(return, "%s", why);
	}
}

/* In the parent, once the test's process is gone from the cgroup. */
FIXTURE_TEARDOWN_PARENT(gmem_hugetlb_cgroup)
{
	int fd = open("/dev/kmsg", O_WRONLY);

	/* Close the fault injection window even if the test died in it. */
	if (fd >= 0) {
		dprintf(fd, "fault-injection: end\n");
		close(fd);
	}
	hugetlb_cgroup_remove(&self->cg);
}

/*
 * The charges follow the hugepages the file reserved or allocated through
 * creation, partial and whole punches, refaults and close (the steps of
 * st_blocks_follow_allocation), also when hugetlb.<size>.rsvd.max leaves
 * no room to spare: a refault then finds the room its punch gave back, and
 * nothing more.
 */
TEST_F_TIMEOUT(gmem_hugetlb_cgroup, charges_follow_punch_and_refault, 120)
{
	static const struct step rsvd_max_steps[] = {
		{ RSVD_MAX, .len = AT(2, 0), .what = "rsvd.max: one page" },
		{ PUNCH, AT(2, 0), AT(2, 0), 0, 0, 0, .what = "punched page 1" },
		{ ALLOC, AT(0, 0), AT(0, 1), 0, -1, 0, .what = "page 0 in its room" },
		{ ALLOC, AT(2, 0), AT(0, 1), ENOMEM, -1, 0, .what = "page 1 over rsvd.max" },
	};
	const struct steps_ctx c = {
		variant->page_size, &self->base, &self->cg,
		hugetlb_cgroup_rsvd(&self->cg), hugetlb_cgroup_usage(&self->cg),
	};
	struct kvm_vm *vm;
	int fd, fd2;

	if (!need_hugepages(3))
		return;
	vm = gmem_vm_create_barebones();
	fd = vm_create_guest_memfd_backing(vm, 2 * variant->page_size, self->backing);
	ASSERT_EQ(c.rsvd0 + 2 * variant->page_size, hugetlb_cgroup_rsvd(&self->cg));
	run_steps(_metadata, &c, fd, steps_st_blocks_follow_allocation,
		  ARRAY_SIZE(steps_st_blocks_follow_allocation));
	run_steps(_metadata, &c, fd, rsvd_max_steps, ARRAY_SIZE(rsvd_max_steps));

	/* A new file over the limit fails and charges nothing. */
	fd2 = __vm_create_guest_memfd_backing(vm, variant->page_size, self->backing);
	ASSERT_EQ(-1, fd2);
	ASSERT_EQ(ENOMEM, errno);
	ASSERT_EQ(c.rsvd0 + variant->page_size, hugetlb_cgroup_rsvd(&self->cg));

	close(fd);
	ASSERT_EQ(c.rsvd0, hugetlb_cgroup_rsvd(&self->cg));
	ASSERT_EQ(c.usage0, hugetlb_cgroup_usage(&self->cg));
	assert_pool(0, 0, "closed");
	hugetlb_cgroup_set_rsvd_max(&self->cg, ~0ULL);
	kvm_vm_free(vm);
}

/* A reservation the pool can't cover charges nothing. */
TEST_F(gmem_hugetlb_cgroup, rsvd_unchanged_on_enomem)
{
	u64 rsvd0 = hugetlb_cgroup_rsvd(&self->cg);
	struct kvm_vm *vm;
	int fd;

	if (self->base.nr_overcommit)
		SKIP(return, "nr_overcommit_hugepages %lu: the pool can grow",
		     self->base.nr_overcommit);
	vm = gmem_vm_create_barebones();
	fd = __vm_create_guest_memfd_backing(vm, (hugetlb_pool_unreserved(&self->base) + 1) *
					     variant->page_size, self->backing);
	ASSERT_EQ(-1, fd);
	ASSERT_EQ(ENOMEM, errno);
	ASSERT_EQ(rsvd0, hugetlb_cgroup_rsvd(&self->cg));
	assert_pool(0, 0, "failed reservation");
	kvm_vm_free(vm);
}

/* ------------------------------------------------------------------------ */
/* Allocation failures, each in turn                                        */
/* ------------------------------------------------------------------------ */

enum failnth_op { OP_CREATE, OP_ALLOCATE, OP_PUNCH_PART, OP_PUNCH_WHOLE, OP_FAULT, OP_CLOSE };

static const struct {
	const char *name;
	bool must_fail;		/* some allocation of it can fail */
} failnth_ops[] = {
	[OP_CREATE] = { "create", true },
	[OP_ALLOCATE] = { "fallocate", true },
	[OP_PUNCH_PART] = { "partial punch", true },
	[OP_PUNCH_WHOLE] = { "whole punch" },
	[OP_FAULT] = { "KVM fault", true },
	[OP_CLOSE] = { "close" },
};

static bool fault_injection_setup(void)
{
	static const char * const knobs[][2] = {
		{ "failslab/ignore-gfp-wait", "N" },
		{ "failslab/verbose", "0" },
		{ "fail_page_alloc/ignore-gfp-wait", "N" },
		{ "fail_page_alloc/ignore-gfp-highmem", "N" },
		{ "fail_page_alloc/min-order", "0" },
		{ "fail_page_alloc/verbose", "0" },
	};
	char path[128];
	int i, fd;
	bool ok;

	for (i = 0; i < ARRAY_SIZE(knobs); i++) {
		snprintf(path, sizeof(path), "/sys/kernel/debug/%s", knobs[i][0]);
		fd = open(path, O_WRONLY);
		ok = fd >= 0 && write(fd, knobs[i][1], 1) == 1;
		if (fd >= 0)
			close(fd);
		if (!ok)
			return false;
	}
	return true;
}

/* Set up the state @op needs; returns the file it works on, or -1. */
static int failnth_prepare(struct gmem_guest *g, struct guest_memfd_backing b,
			   size_t hpage, enum failnth_op op)
{
	int fd = -1;

	if (op != OP_CREATE && op != OP_FAULT) {
		fd = vm_create_guest_memfd_backing(g->vm, hpage, b);
		if (op != OP_ALLOCATE)
			gmem_allocate(fd, 0, hpage);
		if (op == OP_CLOSE)
			gmem_punch(fd, SZ_4K, SZ_4K);
	}
	return fd;
}

/* Run @op; 0 or the errno. */
static int failnth_run(struct gmem_guest *g, struct guest_memfd_backing b,
		       size_t hpage, enum failnth_op op, int *fd)
{
	int r;

	switch (op) {
	case OP_CREATE:
		*fd = __vm_create_guest_memfd_backing(g->vm, hpage, b);
		return *fd < 0 ? errno : 0;
	case OP_ALLOCATE:
		return __gmem_fallocate(*fd, false, 0, hpage);
	case OP_PUNCH_PART:
		return __gmem_fallocate(*fd, true, SZ_4K, SZ_4K);
	case OP_PUNCH_WHOLE:
		return __gmem_fallocate(*fd, true, 0, hpage);
	case OP_FAULT:
		return __vcpu_pre_fault(g->vcpu, g->gpa, SZ_4K);
	case OP_CLOSE:
		r = close(*fd) ? errno : 0;
		*fd = -1;
		return r;
	}
	TEST_FAIL("no operation %d", op);
	return 0;
}

/*
 * Make each operation's first, second, ... allocation fail (the per-task
 * fail-nth) until it completes without reaching the armed allocation.  An
 * injected failure gives ENOMEM or, where the allocation has a fallback,
 * success; once the state is torn down, the pool and the cgroup's charges
 * are exactly as before (kmemleak checks the rest at the end of the run).
 */
TEST_F_TIMEOUT(gmem_hugetlb_cgroup, fail_nth_every_allocation, 600)
{
	const size_t hpage = variant->page_size;
	const struct gmem_guest_args args = { self->backing, hpage, .unmapped = true };
	struct hugetlb_pool pool0, pool1;
	u64 rsvd0, usage0;
	struct gmem_guest g;
	int op, n, fd, r, nth, kmsg, injected;
	char buf[16];
	bool hit;

	if (!need_hugepages(2))
		return;
	if (access("/proc/thread-self/fail-nth", W_OK) || !fault_injection_setup())
		SKIP(return, "no fail-nth, failslab or fail_page_alloc");

	gmem_guest_create(&g, NULL, &args);
	nth = open("/proc/thread-self/fail-nth", O_RDWR);
	ASSERT_LE(0, nth);
	/* The VM runner accepts allocation failure reports in this window. */
	kmsg = open("/dev/kmsg", O_WRONLY);
	if (kmsg >= 0)
		dprintf(kmsg, "fault-injection: begin\n");

	for (op = 0; op < ARRAY_SIZE(failnth_ops); op++) {
		for (n = 1, injected = 0; n < 1000; n++) {
			/* The guest's folio is punched before its fault. */
			gmem_punch(g.fd, 0, hpage);
			ASSERT_TRUE(hugetlb_pool_read(hpage, &pool0));
			rsvd0 = hugetlb_cgroup_rsvd(&self->cg);
			usage0 = hugetlb_cgroup_usage(&self->cg);
			fd = failnth_prepare(&g, self->backing, hpage, op);

			snprintf(buf, sizeof(buf), "%d", n);
			ASSERT_EQ(strlen(buf), pwrite(nth, buf, strlen(buf), 0));
			r = failnth_run(&g, self->backing, hpage, op, &fd);
			memset(buf, 0, sizeof(buf));
			ASSERT_LT(0, pread(nth, buf, sizeof(buf) - 1, 0));
			hit = !atoi(buf);
			ASSERT_EQ(1, pwrite(nth, "0", 1, 0));

			ASSERT_TRUE(!r || (r == ENOMEM && hit))
				TH_LOG("%s with allocation %d failing: %s",
				       failnth_ops[op].name, n, strerror(r));
			injected += hit;
			if (fd >= 0)
				close(fd);
			gmem_punch(g.fd, 0, hpage);
			ASSERT_TRUE(hugetlb_pool_read(hpage, &pool1));
			ASSERT_TRUE(pool0.free == pool1.free && pool0.resv == pool1.resv &&
				    rsvd0 == hugetlb_cgroup_rsvd(&self->cg) &&
				    usage0 == hugetlb_cgroup_usage(&self->cg))
				TH_LOG("%s, allocation %d failing (%s): %lu/%lu -> %lu/%lu",
				       failnth_ops[op].name, n, r ? strerror(r) : "success",
				       pool0.free, pool0.resv, pool1.free, pool1.resv);
			if (!hit)
				break;
		}
		ksft_print_msg("%s: %d allocations failed in turn\n", failnth_ops[op].name,
			       injected);
		ASSERT_TRUE(injected || !failnth_ops[op].must_fail)
			TH_LOG("no allocation of %s was made to fail", failnth_ops[op].name);
	}
	close(nth);
	if (kmsg >= 0) {
		dprintf(kmsg, "fault-injection: end\n");
		close(kmsg);
	}
	gmem_guest_destroy(&g);
	assert_pool(0, 0, "fault injection done");
}

TEST_HARNESS_MAIN
