/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers shared by the HugeTLB guest_memfd selftests: a SW-protected guest
 * whose private memory is a guest_memfd, HugeTLB pool assertions, fallocate()
 * and KVM mapping levels.  Include after kselftest_harness.h: the assertions
 * report through the harness, and the macros expect a fixture with
 * self->base and a variant with page_size.
 */
#ifndef SELFTEST_KVM_GMEM_HUGETLB_UTIL_H
#define SELFTEST_KVM_GMEM_HUGETLB_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

/* 1GiB aligned so that the memslot can be mapped with 1GiB pages. */
#define GMEM_HUGETLB_GPA	(4ULL << 30)
#define GMEM_HUGETLB_SLOT	10

/* ------------------------------------------------------------------------ */
/* A guest whose private memory is a guest_memfd                            */
/* ------------------------------------------------------------------------ */

struct private_guest {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	int fd;
	/* Bytes of the file bound at GMEM_HUGETLB_GPA. */
	uint64_t size;
};

static inline bool sw_protected_vm_supported(void)
{
	return kvm_check_cap(KVM_CAP_VM_TYPES) & BIT(KVM_X86_SW_PROTECTED_VM);
}

/*
 * Create a SW-protected VM with one vCPU running @code, and bind @slot_size
 * bytes of a new guest_memfd of @file_size bytes, from @offset on, as private
 * memory at GMEM_HUGETLB_GPA.  The guest maps it 1:1 with 2MiB pages.
 */
static inline void private_guest_create(struct private_guest *pg, void *code,
					uint64_t gmem_flags, uint64_t file_size,
					uint64_t offset, uint64_t slot_size)
{
	const struct vm_shape shape = {
		.mode = VM_MODE_DEFAULT,
		.type = KVM_X86_SW_PROTECTED_VM,
	};
	size_t gmem_page_size = guest_memfd_page_size(gmem_flags);
	void *hva;

	pg->vm = vm_create_shape_with_one_vcpu(shape, &pg->vcpu, code);
	pg->fd = vm_create_guest_memfd(pg->vm, file_size, gmem_flags);
	pg->size = slot_size;

	/*
	 * vm_mem_add() aligns the shared backing to the guest_memfd page
	 * size: KVM maps hugepages only if userspace_addr is aligned like the
	 * GPA.
	 */
	vm_mem_add(pg->vm, VM_MEM_SRC_ANONYMOUS, GMEM_HUGETLB_GPA,
		   GMEM_HUGETLB_SLOT, slot_size / pg->vm->page_size,
		   KVM_MEM_GUEST_MEMFD, pg->fd, offset);
	hva = addr_gpa2hva(pg->vm, GMEM_HUGETLB_GPA);
	TEST_ASSERT(!((uintptr_t)hva & (gmem_page_size - 1)),
		    "Memslot userspace_addr %p isn't aligned to the guest_memfd page size 0x%lx",
		    hva, gmem_page_size);

	vm_mem_set_private(pg->vm, GMEM_HUGETLB_GPA, slot_size);
	virt_map_level(pg->vm, GMEM_HUGETLB_GPA, GMEM_HUGETLB_GPA, slot_size,
		       PG_LEVEL_2M);
}

static inline void private_guest_destroy(struct private_guest *pg)
{
	kvm_vm_free(pg->vm);
	close(pg->fd);
}

/* Run the vCPU until the guest reports @stage (or DONE if @stage is 0). */
static inline void run_guest(struct kvm_vcpu *vcpu, uint64_t stage)
{
	struct kvm_run *run = vcpu->run;
	struct ucall uc;
	int r, err;

	r = _vcpu_run(vcpu);
	err = errno;
	if (r && run->exit_reason == KVM_EXIT_MEMORY_FAULT)
		TEST_FAIL("KVM_RUN failed (errno %d) with KVM_EXIT_MEMORY_FAULT at gpa 0x%llx, size 0x%llx, flags 0x%llx: guest_memfd didn't provide the page",
			  err, run->memory_fault.gpa, run->memory_fault.size,
			  run->memory_fault.flags);
	TEST_ASSERT(!r, KVM_IOCTL_ERROR(KVM_RUN, r));
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);

	switch (get_ucall(vcpu, &uc)) {
	case UCALL_SYNC:
		TEST_ASSERT(uc.args[1] == stage,
			    "Guest synced at stage %lu, expected stage %lu",
			    uc.args[1], stage);
		break;
	case UCALL_DONE:
		TEST_ASSERT(!stage, "Guest finished early, expected stage %lu",
			    stage);
		break;
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
		break;
	default:
		TEST_FAIL("Unexpected ucall %lu", uc.cmd);
	}
}

/* ------------------------------------------------------------------------ */
/* HugeTLB pool and capability                                              */
/* ------------------------------------------------------------------------ */

/* Does KVM support @page_size HugeTLB guest_memfd?  *@sizes gets the cap. */
static inline bool hugetlb_size_supported(size_t page_size, uint64_t *sizes)
{
	if (!kvm_has_cap(KVM_CAP_GUEST_MEMFD))
		return false;

	*sizes = kvm_check_cap(KVM_CAP_GUEST_MEMFD_HUGETLB);
	return *sizes & BIT_ULL(__builtin_ctzl(page_size));
}

/* Number of pages of the pool that can still be reserved. */
static inline uint64_t pool_available(const struct hugetlb_pool_stats *stats)
{
	return stats->free - stats->resv;
}

/*
 * Assert that the pool of @page_size pages moved by exactly @free_delta free
 * and @resv_delta reserved pages relative to @base.
 */
static inline void __printf(7, 8)
__assert_pool(struct __test_metadata *_metadata, size_t page_size,
	      const struct hugetlb_pool_stats *base, long free_delta,
	      long resv_delta, int line, const char *fmt, ...)
{
	struct hugetlb_pool_stats now;
	char step[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(step, sizeof(step), fmt, ap);
	va_end(ap);

	ASSERT_TRUE(hugetlb_get_pool_stats(page_size, &now));
	ASSERT_TRUE(now.free == base->free + free_delta &&
		    now.resv == base->resv + resv_delta)
		TH_LOG("line %d, %s: %zukB pool has free_hugepages %lu (expected %lu%+ld), resv_hugepages %lu (expected %lu%+ld)",
		       line, step, page_size >> 10, now.free, base->free,
		       free_delta, now.resv, base->resv, resv_delta);
}

#define assert_pool(base, free_delta, resv_delta, fmt, ...)			\
	__assert_pool(_metadata, variant->page_size, base, free_delta,		\
		      resv_delta, __LINE__, fmt, ##__VA_ARGS__)

/* Skip the test unless the pool has @nr pages that aren't reserved yet. */
static inline bool __hugepages_available(struct __test_metadata *_metadata,
					 const struct hugetlb_pool_stats *base,
					 size_t page_size, uint64_t nr)
{
	if (pool_available(base) >= nr)
		return true;

	SKIP(return false, "Need %lu unreserved %zukB hugepages, have %lu",
	     nr, page_size >> 10, pool_available(base));
}

#define hugepages_available(nr) \
	__hugepages_available(_metadata, &self->base, variant->page_size, nr)

/* ------------------------------------------------------------------------ */
/* fallocate() and mapping levels                                           */
/* ------------------------------------------------------------------------ */

static inline int gmem_fallocate(int fd, bool punch, uint64_t offset,
				 uint64_t len)
{
	int mode = FALLOC_FL_KEEP_SIZE | (punch ? FALLOC_FL_PUNCH_HOLE : 0);

	return fallocate(fd, mode, offset, len);
}

/* KVM's count of pages mapped at @page_size. */
static inline uint64_t level_pages(const struct vm_mapping_level_stats *stats,
				   size_t page_size)
{
	switch (page_size) {
	case SZ_4K:
		return stats->pages_4k;
	case SZ_2M:
		return stats->pages_2m;
	case SZ_1G:
		return stats->pages_1g;
	default:
		TEST_FAIL("No mapping level for page size 0x%lx", page_size);
	}
}

/*
 * Pages of struct page memory (/proc/vmstat nr_memmap_pages): HugeTLB
 * vmemmap optimization (HVO) frees most of a hugepage's, and restoring it
 * (to split or dissolve the page) allocates them again, so the count stays
 * put as long as nothing undoes HVO and memory is not hotplugged.
 */
static inline uint64_t memmap_pages(void)
{
	char name[64];
	uint64_t val;
	FILE *f = fopen("/proc/vmstat", "r");

	TEST_ASSERT(f, "Can't open /proc/vmstat: %s", strerror(errno));
	while (fscanf(f, "%63s %lu", name, &val) == 2) {
		if (!strcmp(name, "nr_memmap_pages")) {
			fclose(f);
			return val;
		}
	}
	fclose(f);
	TEST_FAIL("No nr_memmap_pages in /proc/vmstat");
	return 0;
}

#endif /* SELFTEST_KVM_GMEM_HUGETLB_UTIL_H */
