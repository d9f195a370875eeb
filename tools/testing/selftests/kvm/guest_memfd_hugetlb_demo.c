// SPDX-License-Identifier: GPL-2.0-only
/*
 * Report, for a regular guest_memfd and for guest_memfd backed by 2MiB and
 * 1GiB HugeTLB pages, how long a guest takes to touch its private memory,
 * the level at which KVM maps that memory, and the HugeTLB pool counters.
 *
 * This is a demonstration tool, not a test: it prints a table and only fails
 * if something goes wrong.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

/* 1GiB aligned so that the memslot can be mapped with 1GiB pages. */
#define DEMO_GPA	(4ULL << 30)
#define DEMO_SLOT	10

struct backing {
	const char *name;
	const char *option;
	size_t page_size;
	bool hugetlb;
};

static const struct backing backings[] = {
	{ "4K guest_memfd", "4k", SZ_4K, false },
	{ "2M hugetlb", "2m", SZ_2M, true },
	{ "1G hugetlb", "1g", SZ_1G, true },
};

struct result {
	/* Why the backing wasn't measured, empty if it was. */
	char skipped[128];
	uint64_t size;
	double seconds;
	struct vm_mapping_level_stats delta;
	struct hugetlb_pool_stats before, touched, closed;
};

static void guest_code(uint64_t gpa, uint64_t size)
{
	uint64_t off;

	GUEST_SYNC(0);

	for (off = 0; off < size; off += SZ_4K)
		WRITE_ONCE(*(uint64_t *)(gpa + off), off);

	GUEST_DONE();
}

static void run_vcpu(struct kvm_vcpu *vcpu, uint64_t expected_cmd)
{
	struct ucall uc;

	vcpu_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);

	switch (get_ucall(vcpu, &uc)) {
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
		break;
	default:
		TEST_ASSERT(uc.cmd == expected_cmd,
			    "Unexpected ucall %lu, expected %lu",
			    uc.cmd, expected_cmd);
	}
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void read_pool(const struct backing *b, struct hugetlb_pool_stats *stats)
{
	if (b->hugetlb)
		TEST_ASSERT(hugetlb_get_pool_stats(b->page_size, stats),
			    "No %zukB HugeTLB pool", b->page_size >> 10);
}

static void measure(const struct backing *b, uint64_t mem_size,
		    struct result *res)
{
	const struct vm_shape shape = {
		.mode = VM_MODE_DEFAULT,
		.type = KVM_X86_SW_PROTECTED_VM,
	};
	struct vm_mapping_level_stats before, after;
	uint64_t flags = 0, sizes;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	double start;
	int fd;

	if (b->hugetlb) {
		sizes = kvm_check_cap(KVM_CAP_GUEST_MEMFD_HUGETLB);
		if (!(sizes & BIT_ULL(__builtin_ctzl(b->page_size)))) {
			snprintf(res->skipped, sizeof(res->skipped),
				 "not supported by KVM");
			return;
		}
		flags = guest_memfd_hugetlb_flags(b->page_size);
	}

	/* The guest maps its memory with 2MiB pages. */
	res->size = align_up(mem_size, max_t(size_t, b->page_size, SZ_2M));

	read_pool(b, &res->before);

	vm = vm_create_shape_with_one_vcpu(shape, &vcpu, guest_code);
	fd = __vm_create_guest_memfd(vm, res->size, flags);
	if (fd < 0) {
		snprintf(res->skipped, sizeof(res->skipped),
			 "KVM_CREATE_GUEST_MEMFD failed: %s", strerror(errno));
		kvm_vm_free(vm);
		return;
	}

	vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, DEMO_GPA, DEMO_SLOT,
		   res->size / vm->page_size, KVM_MEM_GUEST_MEMFD, fd, 0);
	vm_mem_set_private(vm, DEMO_GPA, res->size);
	virt_map_level(vm, DEMO_GPA, DEMO_GPA, res->size, PG_LEVEL_2M);
	vcpu_args_set(vcpu, 2, DEMO_GPA, res->size);

	run_vcpu(vcpu, UCALL_SYNC);
	vm_get_mapping_level_stats(vm, &before);

	start = now_seconds();
	run_vcpu(vcpu, UCALL_DONE);
	res->seconds = now_seconds() - start;

	vm_get_mapping_level_stats(vm, &after);
	res->delta.pages_4k = after.pages_4k - before.pages_4k;
	res->delta.pages_2m = after.pages_2m - before.pages_2m;
	res->delta.pages_1g = after.pages_1g - before.pages_1g;
	read_pool(b, &res->touched);

	kvm_vm_free(vm);
	close(fd);
	read_pool(b, &res->closed);
}

static void print_pool(const struct backing *b,
		       const struct hugetlb_pool_stats *stats)
{
	char buf[32];

	if (b->hugetlb)
		snprintf(buf, sizeof(buf), "%lu/%lu", stats->free, stats->resv);
	else
		snprintf(buf, sizeof(buf), "-");
	printf(" %13s", buf);
}

static void print_results(const struct result *results, const bool *selected)
{
	const struct result *ref = &results[0];
	int i;

	printf("\n%-15s %9s %9s %6s %9s %9s %9s %13s %13s %13s\n",
	       "backing", "size(MiB)", "touch(s)", "ratio",
	       "d_4k", "d_2m", "d_1g",
	       "before f/r", "touched f/r", "closed f/r");

	for (i = 0; i < ARRAY_SIZE(backings); i++) {
		const struct backing *b = &backings[i];
		const struct result *res = &results[i];

		if (!selected[i])
			continue;

		if (res->skipped[0]) {
			printf("%-15s skipped: %s\n", b->name, res->skipped);
			continue;
		}

		printf("%-15s %9lu %9.3f", b->name, res->size >> 20, res->seconds);
		if (selected[0] && !ref->skipped[0] && ref->seconds > 0)
			printf(" %6.2f", res->seconds / ref->seconds);
		else
			printf(" %6s", "-");
		printf(" %9lu %9lu %9lu", res->delta.pages_4k,
		       res->delta.pages_2m, res->delta.pages_1g);
		print_pool(b, &res->before);
		print_pool(b, &res->touched);
		print_pool(b, &res->closed);
		printf("\n");
	}

	printf("\ntouch(s): time for one vCPU to write every 4KiB page of the memory once\n"
	       "ratio:    touch time relative to the 4K guest_memfd row\n"
	       "d_*:      new 4KiB/2MiB/1GiB mappings in KVM's MMU (VM stats pages_*)\n"
	       "f/r:      free_hugepages/resv_hugepages of the backing's HugeTLB pool\n"
	       "          before creating the guest_memfd, after the touch, after close\n");
}

static void help(const char *name)
{
	printf("usage: %s [-h] [-m MiB] [-b backings]\n\n", name);
	printf(" -m: private memory size in MiB, rounded up to the backing page size\n"
	       "     (default: 1024)\n");
	printf(" -b: comma separated backings to measure, among 4k, 2m and 1g\n"
	       "     (default: all supported ones)\n");
}

static void parse_backings(const char *arg, bool *selected)
{
	char *str = strdup(arg), *tok, *save;
	int i;

	TEST_ASSERT(str, "strdup() failed");
	memset(selected, 0, sizeof(bool) * ARRAY_SIZE(backings));

	for (tok = strtok_r(str, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < ARRAY_SIZE(backings); i++) {
			if (!strcasecmp(tok, backings[i].option))
				break;
		}
		TEST_ASSERT(i < ARRAY_SIZE(backings), "Unknown backing '%s'", tok);
		selected[i] = true;
	}

	free(str);
}

int main(int argc, char *argv[])
{
	struct result results[ARRAY_SIZE(backings)] = {};
	bool selected[ARRAY_SIZE(backings)];
	uint64_t mem_size = SZ_1G;
	int i, opt;

	for (i = 0; i < ARRAY_SIZE(backings); i++)
		selected[i] = true;

	while ((opt = getopt(argc, argv, "hm:b:")) != -1) {
		switch (opt) {
		case 'm':
			mem_size = (uint64_t)atoi_positive("Memory size (MiB)", optarg) << 20;
			break;
		case 'b':
			parse_backings(optarg, selected);
			break;
		case 'h':
		default:
			help(argv[0]);
			exit(opt == 'h' ? 0 : KSFT_FAIL);
		}
	}

	TEST_REQUIRE(kvm_has_cap(KVM_CAP_GUEST_MEMFD));
	TEST_REQUIRE(kvm_check_cap(KVM_CAP_VM_TYPES) & BIT(KVM_X86_SW_PROTECTED_VM));

	for (i = 0; i < ARRAY_SIZE(backings); i++) {
		if (!selected[i])
			continue;

		printf("Measuring %s...\n", backings[i].name);
		measure(&backings[i], mem_size, &results[i]);
	}

	print_results(results, selected);

	return 0;
}
