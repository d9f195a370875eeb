// SPDX-License-Identifier: GPL-2.0
/*
 * Memory failure in a hugetlb guest_memfd folio, with a running vCPU.
 *
 * A poisoned 4 KiB subpage is zapped from KVM and becomes a hole that is
 * never mapped, zeroed or refilled again: the guest's access to it exits to
 * userspace with EHWPOISON, while every other subpage keeps its data and
 * stays mapped at the largest size that excludes the hole.  memory_failure()
 * keeps the folio pinned, so it never returns to the pool: after close the
 * pool has one free hugepage less and nothing else changed.
 *
 * Injects with debugfs hwpoison/corrupt-pfn (CONFIG_HWPOISON_INJECT); the
 * folio's pfn comes from the kvm_gmem_invalidate tracepoint.  Each variant
 * loses one hugepage for good, so this test runs last; it prints
 * "pool-loss: KB N" for the runner's pool check.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include "kselftest_harness.h"
#include "gmem_hugetlb_util.h"

#define CORRUPT_PFN	"/sys/kernel/debug/hwpoison/corrupt-pfn"
#define TRACING_DIR	"/sys/kernel/tracing"
#define GMEM_EVENT_DIR	TRACING_DIR "/events/kvm/kvm_gmem_invalidate"

#define PATTERN(off)	((uint64_t)(0x6b6bb6b600000000ULL ^ (off)))

enum {
	STAGE_FILLED = 1,
	STAGE_CHECKED,
};

/*
 * Fill the first word of every subpage; after the poisoning, check and
 * rewrite every subpage but the poisoned one; then read the poisoned one.
 */
static void guest_code(uint64_t gpa, uint64_t size, uint64_t poisoned)
{
	uint64_t off;

	for (off = 0; off < size; off += SZ_4K)
		*(uint64_t *)(gpa + off) = PATTERN(off);
	GUEST_SYNC(STAGE_FILLED);

	for (off = 0; off < size; off += SZ_4K) {
		if (off == poisoned)
			continue;
		GUEST_ASSERT_EQ(*(uint64_t *)(gpa + off), PATTERN(off));
		*(uint64_t *)(gpa + off) = ~PATTERN(off);
	}
	GUEST_SYNC(STAGE_CHECKED);

	(void)READ_ONCE(*(uint64_t *)(gpa + poisoned));
	GUEST_FAIL("The guest read the poisoned subpage at 0x%lx", poisoned);
}

/* The pfn of file index 0, from the kvm_gmem_invalidate event of a punch. */
static uint64_t punch_for_pfn(struct __test_metadata *_metadata, int fd)
{
	static const char tag[] = "kvm_gmem_invalidate: ";
	uint64_t index, pfn, found = 0;
	char line[512], why[16], *p;
	unsigned int order;
	FILE *f;

	ASSERT_EQ(0, write_str_to_file(GMEM_EVENT_DIR "/enable", "1"));
	ASSERT_EQ(0, write_str_to_file(TRACING_DIR "/trace", ""));
	ASSERT_EQ(0, gmem_fallocate(fd, true, 0, SZ_4K));
	ASSERT_EQ(0, write_str_to_file(GMEM_EVENT_DIR "/enable", "0"));

	f = fopen(TRACING_DIR "/trace", "r");
	ASSERT_NE(NULL, f);
	while (fgets(line, sizeof(line), f)) {
		p = strstr(line, tag);
		if (!p || sscanf(p + strlen(tag),
				 "index 0x%lx pfn 0x%lx order %u why %15s",
				 &index, &pfn, &order, why) != 4)
			continue;
		if (index == 0 && order == 0 && !strcmp(why, "punch"))
			found = pfn;
	}
	fclose(f);
	ASSERT_NE(0, found) TH_LOG("No punch event for index 0");

	/* Make it guest memory again: the folio is whole once more. */
	ASSERT_EQ(0, gmem_fallocate(fd, false, 0, SZ_4K));
	return found;
}

static long fdinfo_value(int fd, const char *key)
{
	char path[64], line[256];
	long val = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, strlen(key)) && line[strlen(key)] == ':')
			val = strtol(line + strlen(key) + 1, NULL, 10);
	}
	fclose(f);
	return val;
}

/* KVM_RUN must fail with EHWPOISON at the poisoned gpa. */
static void expect_poison_exit(struct __test_metadata *_metadata,
			       struct kvm_vcpu *vcpu, uint64_t gpa)
{
	int r = _vcpu_run(vcpu);

	ASSERT_EQ(-1, r)
		TH_LOG("KVM_RUN succeeded (exit %s), expected EHWPOISON",
		       exit_reason_str(vcpu->run->exit_reason));
	ASSERT_EQ(EHWPOISON, errno)
		TH_LOG("KVM_RUN failed with %s, expected EHWPOISON",
		       strerror(errno));
	ASSERT_EQ(KVM_EXIT_MEMORY_FAULT, vcpu->run->exit_reason);
	ASSERT_EQ(gpa, vcpu->run->memory_fault.gpa);
}

FIXTURE(gmem_hwpoison) {
	struct hugetlb_pool_stats base;
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
	uint64_t sizes;

	if (!hugetlb_size_supported(variant->page_size, &sizes))
		SKIP(return, "No %zukB HugeTLB guest_memfd", variant->page_size >> 10);
	if (!sw_protected_vm_supported())
		SKIP(return, "KVM_X86_SW_PROTECTED_VM not supported");
	if (access(CORRUPT_PFN, W_OK))
		SKIP(return, "No %s (CONFIG_HWPOISON_INJECT)", CORRUPT_PFN);
	if (access(GMEM_EVENT_DIR "/enable", W_OK))
		SKIP(return, "No kvm_gmem_invalidate tracepoint");
	ASSERT_TRUE(hugetlb_get_pool_stats(variant->page_size, &self->base));
}

FIXTURE_TEARDOWN(gmem_hwpoison)
{
}

TEST_F_TIMEOUT(gmem_hwpoison, poisoned_subpage_is_a_hole, 300)
{
	const uint64_t hpage = variant->page_size;
	/* A subpage in the middle of a 2M block in the middle of the folio. */
	const uint64_t poisoned = hpage / 2 + (hpage > SZ_2M ? SZ_1M : 0) +
				  5 * SZ_4K;
	const uint64_t gpa = GMEM_HUGETLB_GPA;
	struct vm_mapping_level_stats filled, now;
	struct private_guest pg;
	uint64_t pfn;
	char buf[32];

	if (!hugepages_available(1))
		return;

	private_guest_create(&pg, guest_code, guest_memfd_hugetlb_flags(hpage),
			     hpage, 0, hpage);
	vcpu_args_set(pg.vcpu, 3, gpa, hpage, poisoned);
	ASSERT_EQ(0, gmem_fallocate(pg.fd, false, 0, hpage));
	pfn = punch_for_pfn(_metadata, pg.fd) + poisoned / SZ_4K;

	run_guest(pg.vcpu, STAGE_FILLED);
	vm_get_mapping_level_stats(pg.vm, &filled);

	snprintf(buf, sizeof(buf), "0x%lx", pfn);
	ASSERT_EQ(0, write_str_to_file(CORRUPT_PFN, buf))
		TH_LOG("memory_failure() did not recover pfn %s", buf);
	ASSERT_EQ(1, fdinfo_value(pg.fd, "hugetlb_poisoned_subpages"));

	/* Every other subpage keeps its data and stays usable... */
	run_guest(pg.vcpu, STAGE_CHECKED);

	/* ... mapped at the largest size that excludes the hole. */
	vm_get_mapping_level_stats(pg.vm, &now);
	if (hpage == SZ_1G) {
		ASSERT_EQ(filled.pages_1g - 1, now.pages_1g);
		ASSERT_LE(filled.pages_2m + 511, now.pages_2m);
	} else {
		ASSERT_EQ(filled.pages_2m - 1, now.pages_2m);
	}
	ASSERT_LE(filled.pages_4k + 511, now.pages_4k);

	/* The poisoned subpage exits to userspace, and cannot be refilled. */
	expect_poison_exit(_metadata, pg.vcpu, gpa + poisoned);
	ASSERT_EQ(0, gmem_fallocate(pg.fd, false, poisoned, SZ_4K));
	expect_poison_exit(_metadata, pg.vcpu, gpa + poisoned);

	/* Punching it writes nothing; punching the rest frees the folio. */
	ASSERT_EQ(0, gmem_fallocate(pg.fd, true, poisoned, SZ_4K));
	ASSERT_EQ(1, fdinfo_value(pg.fd, "hugetlb_poisoned_subpages"));
	ASSERT_EQ(0, gmem_fallocate(pg.fd, true, 0, poisoned));
	ASSERT_EQ(1, fdinfo_value(pg.fd, "hugetlb_allocated"));
	ASSERT_EQ(0, gmem_fallocate(pg.fd, true, poisoned + SZ_4K,
				    hpage - poisoned - SZ_4K));
	ASSERT_EQ(0, fdinfo_value(pg.fd, "hugetlb_allocated"));
	ASSERT_EQ(0, fdinfo_value(pg.fd, "hugetlb_poisoned_subpages"));

	private_guest_destroy(&pg);

	/* The poisoned hugepage never goes back to the pool. */
	assert_pool(&self->base, -1, 0, "closed the file with a poisoned folio");
	printf("pool-loss: %zu 1\n", hpage >> 10);
	fflush(stdout);
}

TEST_HARNESS_MAIN
