// SPDX-License-Identifier: GPL-2.0-only
/*
 * Measure hugetlb guest_memfd against regular guest_memfd and against the
 * floors it cannot beat, each as a ratio between rows of one run:
 *
 *  touch: a guest writes every 4KiB page of its private memory once: wall
 *         time, KVM page faults, the share mapped with 2MiB/1GiB pages,
 *         teardown time; 4K, 2M and 1G backing, and 2M/1G at each size of
 *         the -n list to show how the costs grow.
 *  alloc: fallocate(ALLOCATE) of N GiB against the floors: a hugetlb
 *         mapping faulting the same hugepages in (the kernel zeroes them as
 *         fallocate does) and memset() of memory already mapped; close().
 *  punch: a 4KiB punch storm over one hugepage: cost per punch (first,
 *         median, last), the punch at which the hugepage goes back to the
 *         pool, the invalidation callbacks (tracepoint kvm_gmem_invalidate,
 *         counted in a second storm so tracing doesn't skew the times),
 *         against one whole-hugepage punch.
 *  meta:  hugetlb metadata bytes per GiB of file (fdinfo), when created,
 *         allocated, and with one 4KiB hole in every hugepage.
 *
 * This is a benchmark, not a test: it prints tables, and fails only if a
 * step fails.  Absolute times under an emulator mean little; compare rows.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

/* 1GiB aligned so that the memslot can be mapped with 1GiB pages. */
#define BENCH_GPA	(4ULL << 30)
#define BENCH_SLOT	10

#define TRACING_DIR	"/sys/kernel/tracing"
#define EVENT_ENABLE	TRACING_DIR "/events/kvm/kvm_gmem_invalidate/enable"

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT	26
#endif

struct backing {
	const char *name;
	const char *option;
	size_t page_size;
};

static const struct backing backings[] = {
	{ "4K guest_memfd", "4k", SZ_4K },
	{ "2M hugetlb", "2m", SZ_2M },
	{ "1G hugetlb", "1g", SZ_1G },
};

#define NR_BACKINGS	ARRAY_SIZE(backings)
#define MAX_SIZES	8

static bool selected[NR_BACKINGS];
static uint64_t sizes_gib[MAX_SIZES] = { 1, 2, 4 };
static int nr_sizes = 3;
static uint64_t touch_size = SZ_1G;

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool is_hugetlb(const struct backing *b)
{
	return b->page_size > SZ_4K;
}

/* Why @b can't back @size bytes now, or NULL if it can. */
static const char *unusable(const struct backing *b, uint64_t size)
{
	static char why[96];
	struct hugetlb_pool_stats stats;
	uint64_t need = size / b->page_size;

	if (!is_hugetlb(b))
		return NULL;
	if (!(kvm_check_cap(KVM_CAP_GUEST_MEMFD_HUGETLB) &
	      BIT_ULL(__builtin_ctzl(b->page_size))))
		return "not supported by KVM";
	if (!hugetlb_get_pool_stats(b->page_size, &stats))
		return "no pool of this size";
	if (stats.free - stats.resv < need) {
		snprintf(why, sizeof(why), "needs %lu free %zukB hugepages, pool has %lu",
			 need, b->page_size >> 10, stats.free - stats.resv);
		return why;
	}
	return NULL;
}

static uint64_t gmem_flags(const struct backing *b)
{
	return is_hugetlb(b) ? guest_memfd_hugetlb_flags(b->page_size) : 0;
}

/* A KVM statistic summed over all VMs (debugfs), or -1 if not there. */
static int64_t kvm_debugfs_stat(const char *name)
{
	char path[128], buf[32];
	ssize_t len;
	int fd;

	snprintf(path, sizeof(path), "/sys/kernel/debug/kvm/%s", name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return -1;
	buf[len] = '\0';
	return strtoll(buf, NULL, 10);
}

/* One value of /proc/self/fdinfo/@fd, or -1 if it has no such line. */
static int64_t fdinfo_value(int fd, const char *key)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	int64_t val = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	TEST_ASSERT(f, "Can't open %s", path);
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			val = strtoll(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

static int create_gmem(struct kvm_vm *vm, const struct backing *b,
		       uint64_t size)
{
	int fd = __vm_create_guest_memfd(vm, size, gmem_flags(b));

	TEST_ASSERT(fd >= 0, "KVM_CREATE_GUEST_MEMFD(%s, 0x%lx) failed: %s",
		    b->name, size, strerror(errno));
	return fd;
}

/* ------------------------------------------------------------------------ */
/* touch                                                                    */
/* ------------------------------------------------------------------------ */

static void guest_touch(uint64_t gpa, uint64_t size)
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
		TEST_ASSERT(uc.cmd == expected_cmd, "Unexpected ucall %lu, expected %lu",
			    uc.cmd, expected_cmd);
	}
}

struct touch_result {
	const char *skipped;
	double seconds, teardown;
	int64_t faults;
	struct vm_mapping_level_stats delta;
	struct hugetlb_pool_stats before, closed;
};

static void touch(const struct backing *b, uint64_t size,
		  struct touch_result *res)
{
	const struct vm_shape shape = {
		.mode = VM_MODE_DEFAULT,
		.type = KVM_X86_SW_PROTECTED_VM,
	};
	struct vm_mapping_level_stats before, after;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int64_t faults;
	double start;
	int fd;

	memset(res, 0, sizeof(*res));
	res->skipped = unusable(b, size);
	if (res->skipped)
		return;
	if (is_hugetlb(b))
		hugetlb_get_pool_stats(b->page_size, &res->before);

	vm = vm_create_shape_with_one_vcpu(shape, &vcpu, guest_touch);
	fd = create_gmem(vm, b, size);
	/* vm_mem_add() aligns the shared side like the guest_memfd. */
	vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, BENCH_GPA, BENCH_SLOT,
		   size / vm->page_size, KVM_MEM_GUEST_MEMFD, fd, 0);
	vm_mem_set_private(vm, BENCH_GPA, size);
	virt_map_level(vm, BENCH_GPA, BENCH_GPA, size, PG_LEVEL_2M);
	vcpu_args_set(vcpu, 2, BENCH_GPA, size);

	run_vcpu(vcpu, UCALL_SYNC);
	vm_get_mapping_level_stats(vm, &before);
	faults = kvm_debugfs_stat("pf_taken");

	start = now_seconds();
	run_vcpu(vcpu, UCALL_DONE);
	res->seconds = now_seconds() - start;

	res->faults = faults < 0 ? -1 : kvm_debugfs_stat("pf_taken") - faults;
	vm_get_mapping_level_stats(vm, &after);
	res->delta.pages_4k = after.pages_4k - before.pages_4k;
	res->delta.pages_2m = after.pages_2m - before.pages_2m;
	res->delta.pages_1g = after.pages_1g - before.pages_1g;

	start = now_seconds();
	kvm_vm_free(vm);
	close(fd);
	res->teardown = now_seconds() - start;
	if (is_hugetlb(b))
		hugetlb_get_pool_stats(b->page_size, &res->closed);
}

/* One row; the ratio is to @ref_seconds, none if that is 0. */
static void print_touch_row(const struct backing *b, uint64_t size,
			    const struct touch_result *res, double ref_seconds)
{
	uint64_t huge = res->delta.pages_2m * SZ_2M + res->delta.pages_1g * SZ_1G;
	char ratio[16] = "-", pool[48] = "-";

	if (res->skipped) {
		printf("%-15s %6lu  skipped: %s\n", b->name, size >> 20, res->skipped);
		return;
	}
	if (ref_seconds > 0)
		snprintf(ratio, sizeof(ratio), "%.3f", res->seconds / ref_seconds);
	if (is_hugetlb(b))
		snprintf(pool, sizeof(pool), "%lu/%lu -> %lu/%lu",
			 res->before.free, res->before.resv,
			 res->closed.free, res->closed.resv);
	printf("%-15s %6lu %8.3f %6s %8ld %7lu %6lu %5lu %6.1f%% %9.3f  %s\n",
	       b->name, size >> 20, res->seconds, ratio, res->faults,
	       res->delta.pages_4k, res->delta.pages_2m, res->delta.pages_1g,
	       100.0 * huge / size, res->teardown, pool);
}

static void touch_header(void)
{
	printf("%-15s %6s %8s %6s %8s %7s %6s %5s %7s %9s  %s\n",
	       "backing", "MiB", "touch(s)", "ratio", "faults", "maps4k",
	       "maps2m", "maps1g", "huge", "teardown", "pool free/resv");
}

static void bench_touch(void)
{
	struct touch_result res[NR_BACKINGS], grow;
	double ref;
	int i, j;

	printf("\n== touch: one vCPU writes every 4KiB page of its private memory once\n");
	touch_header();
	for (i = 0; i < NR_BACKINGS; i++) {
		if (!selected[i])
			continue;
		touch(&backings[i], touch_size, &res[i]);
		ref = selected[0] && !res[0].skipped ? res[0].seconds : 0;
		print_touch_row(&backings[i], touch_size, &res[i], ref);
	}
	printf("ratio: touch time / the 4K guest_memfd row's; faults: KVM page faults taken (pf_taken);\n"
	       "maps*: new KVM mappings per level; huge: share of the memory mapped 2M or 1G;\n"
	       "teardown: kvm_vm_free() + close(); pool: before create -> after close\n");

	if (!nr_sizes)
		return;
	printf("\n== touch, growing: the same on hugetlb at each size; ratio = time per GiB / time per GiB at %lu GiB\n",
	       sizes_gib[0]);
	touch_header();
	for (i = 1; i < NR_BACKINGS; i++) {
		double per_gib_ref = 0;

		if (!selected[i])
			continue;
		for (j = 0; j < nr_sizes; j++) {
			uint64_t size = sizes_gib[j] << 30;

			touch(&backings[i], size, &grow);
			if (!grow.skipped && !j)
				per_gib_ref = grow.seconds / sizes_gib[j];
			/* Time per GiB against the first size's. */
			print_touch_row(&backings[i], size, &grow,
					per_gib_ref * sizes_gib[j]);
		}
	}
}

/* ------------------------------------------------------------------------ */
/* alloc                                                                    */
/* ------------------------------------------------------------------------ */

static void bench_alloc(void)
{
	struct kvm_vm *vm = vm_create_barebones();
	int i, j;

	printf("\n== alloc: fallocate(ALLOCATE) of the whole file against the floors\n");
	printf("%-15s %4s %9s %7s %9s %7s %9s %7s %8s %8s\n",
	       "backing", "GiB", "falloc(s)", "GiB/s", "fault(s)", "ratio",
	       "memset(s)", "ratio", "close(s)", "unmap(s)");
	for (i = 1; i < NR_BACKINGS; i++) {
		const struct backing *b = &backings[i];

		if (!selected[i])
			continue;
		for (j = 0; j < nr_sizes; j++) {
			uint64_t size = sizes_gib[j] << 30, off;
			double t, falloc, fault, zero, closing, unmap;
			const char *why = unusable(b, size);
			char *p;
			int fd, r;

			if (why) {
				printf("%-15s %4lu  skipped: %s\n", b->name, sizes_gib[j], why);
				continue;
			}
			fd = create_gmem(vm, b, size);
			t = now_seconds();
			r = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, size);
			falloc = now_seconds() - t;
			TEST_ASSERT(!r, "fallocate(%s, %lu GiB) failed: %s",
				    b->name, sizes_gib[j], strerror(errno));
			t = now_seconds();
			close(fd);
			closing = now_seconds() - t;

			p = mmap(NULL, size, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
				 (__builtin_ctzl(b->page_size) << MAP_HUGE_SHIFT),
				 -1, 0);
			TEST_ASSERT(p != MAP_FAILED, "hugetlb mmap(%lu GiB) failed: %s",
				    sizes_gib[j], strerror(errno));
			t = now_seconds();
			for (off = 0; off < size; off += b->page_size)
				p[off] = 1;
			fault = now_seconds() - t;
			t = now_seconds();
			memset(p, 0, size);
			zero = now_seconds() - t;
			t = now_seconds();
			munmap(p, size);
			unmap = now_seconds() - t;

			printf("%-15s %4lu %9.3f %7.2f %9.3f %7.3f %9.3f %7.3f %8.3f %8.3f\n",
			       b->name, sizes_gib[j], falloc, sizes_gib[j] / falloc,
			       fault, falloc / fault, zero, falloc / zero,
			       closing, unmap);
		}
	}
	printf("fault: a MAP_HUGETLB mapping faulting in the same number of hugepages (kernel zeroing);\n"
	       "memset: memset(0) of that mapping once faulted in; ratio: falloc / that floor;\n"
	       "close: close() of the allocated guest_memfd; unmap: munmap() of the hugetlb mapping\n");
	kvm_vm_free(vm);
}

/* ------------------------------------------------------------------------ */
/* punch                                                                    */
/* ------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct callbacks {
	uint64_t punch, release, free, other;
	uint64_t free_order;
	uint64_t orders[64];
};

/* Count the kvm_gmem_invalidate events in the trace buffer. */
static void count_callbacks(struct callbacks *cb)
{
	static const char tag[] = "kvm_gmem_invalidate: ";
	char line[512], why[16], *p;
	unsigned int order;
	FILE *f;

	memset(cb, 0, sizeof(*cb));
	f = fopen(TRACING_DIR "/trace", "r");
	TEST_ASSERT(f, "Can't open " TRACING_DIR "/trace");
	while (fgets(line, sizeof(line), f)) {
		p = strstr(line, tag);
		if (line[0] == '#' || !p)
			continue;
		p = strstr(p, " order ");
		TEST_ASSERT(p && sscanf(p, " order %u why %15s", &order, why) == 2,
			    "Can't parse trace line: %s", line);
		if (order < 64)
			cb->orders[order]++;
		if (!strcmp(why, "punch")) {
			cb->punch++;
		} else if (!strcmp(why, "release")) {
			cb->release++;
		} else if (!strcmp(why, "free")) {
			cb->free++;
			cb->free_order = order;
		} else {
			cb->other++;
		}
	}
	fclose(f);
}

/* free_hugepages of a pool, from its sysfs file open at @fd. */
static uint64_t pread_free(int fd)
{
	char buf[32];
	ssize_t len = pread(fd, buf, sizeof(buf) - 1, 0);

	TEST_ASSERT(len > 0, "Can't read free_hugepages: %s", strerror(errno));
	buf[len] = '\0';
	return strtoull(buf, NULL, 10);
}

/*
 * Punch every 4KiB of one allocated hugepage, in order.  @times gets the
 * cost of each punch, *@returned the punch (from 1) after which the pool
 * had one more free page.
 */
static void punch_storm(struct kvm_vm *vm, const struct backing *b,
			double *times, uint64_t *returned)
{
	uint64_t nr = b->page_size / SZ_4K, i, base;
	char path[128];
	int fd, r, pool;
	double t;

	snprintf(path, sizeof(path),
		 "/sys/kernel/mm/hugepages/hugepages-%zukB/free_hugepages",
		 b->page_size >> 10);
	pool = open(path, O_RDONLY);
	TEST_ASSERT(pool >= 0, "Can't open %s: %s", path, strerror(errno));
	fd = create_gmem(vm, b, b->page_size);
	r = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, b->page_size);
	TEST_ASSERT(!r, "fallocate() failed: %s", strerror(errno));
	base = pread_free(pool);
	*returned = 0;
	for (i = 0; i < nr; i++) {
		t = now_seconds();
		r = fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
			      i * SZ_4K, SZ_4K);
		if (times)
			times[i] = now_seconds() - t;
		TEST_ASSERT(!r, "PUNCH_HOLE of subpage %lu failed: %s", i,
			    strerror(errno));
		if (!*returned && pread_free(pool) != base)
			*returned = i + 1;
	}
	close(fd);
	close(pool);
}

static void bench_punch(void)
{
	struct kvm_vm *vm = vm_create_barebones();
	int i;

	printf("\n== punch: PUNCH_HOLE of every 4KiB subpage of one allocated hugepage, in order\n");
	printf("%-15s %7s %8s %8s %8s %8s %8s %9s %8s %6s %8s %7s %7s %5s\n",
	       "backing", "punches", "first", "first64", "median", "last1k",
	       "final", "total(s)", "whole", "ratio", "returned", "cb:pun",
	       "cb:rel", "free");
	for (i = 1; i < NR_BACKINGS; i++) {
		const struct backing *b = &backings[i];
		uint64_t nr = b->page_size / SZ_4K, returned, returned2, k;
		double *times, first64 = 0, last1k = 0, total = 0, whole, t;
		double first, final, median;
		uint64_t n64 = min(64UL, nr), n1k = min(1000UL, nr - 1);
		const char *why = unusable(b, b->page_size);
		struct callbacks cb;
		char size_kb[32];
		int fd, r;

		if (!selected[i])
			continue;
		if (why) {
			printf("%-15s skipped: %s\n", b->name, why);
			continue;
		}
		times = calloc(nr, sizeof(*times));
		TEST_ASSERT(times, "calloc() failed");

		/* Whole-hugepage punches, for comparison: the fastest of 3. */
		fd = create_gmem(vm, b, b->page_size);
		for (k = 0, whole = 1e9; k < 3; k++) {
			r = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, b->page_size);
			TEST_ASSERT(!r, "fallocate() failed: %s", strerror(errno));
			t = now_seconds();
			r = fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
				      0, b->page_size);
			whole = min(whole, now_seconds() - t);
			TEST_ASSERT(!r, "PUNCH_HOLE failed: %s", strerror(errno));
		}
		close(fd);

		punch_storm(vm, b, times, &returned);
		for (k = 0; k < nr; k++)
			total += times[k];
		for (k = 0; k < n64; k++)
			first64 += times[k];
		for (k = nr - 1 - n1k; k < nr - 1; k++)
			last1k += times[k];
		first64 /= n64;
		last1k = n1k ? last1k / n1k : 0;
		first = times[0];
		final = times[nr - 1];
		qsort(times, nr - 1, sizeof(*times), cmp_double);
		median = times[(nr - 1) / 2];

		/* The same storm again, traced, for the callbacks. */
		snprintf(size_kb, sizeof(size_kb), "%lu", max(4096UL, nr / 8));
		TEST_ASSERT(!write_str_to_file(TRACING_DIR "/buffer_size_kb", size_kb) &&
			    !write_str_to_file(TRACING_DIR "/trace", "") &&
			    !write_str_to_file(EVENT_ENABLE, "1"),
			    "Can't set up tracing of kvm_gmem_invalidate");
		punch_storm(vm, b, NULL, &returned2);
		write_str_to_file(EVENT_ENABLE, "0");
		count_callbacks(&cb);
		write_str_to_file(TRACING_DIR "/trace", "");

		printf("%-15s %7lu %6.0fus %6.0fus %6.0fus %6.0fus %6.0fus %9.3f %6.0fus %6.0f %8lu %7lu %7lu %2lu/%-2lu\n",
		       b->name, nr, first * 1e6, first64 * 1e6, median * 1e6,
		       last1k * 1e6, final * 1e6, total, whole * 1e6,
		       total / whole, returned, cb.punch, cb.release, cb.free,
		       cb.free_order);
		TEST_ASSERT(returned2 == returned,
			    "The traced storm returned the page at punch %lu, the timed one at %lu",
			    returned2, returned);
		if (cb.other)
			printf("  %lu callbacks with an unknown reason\n", cb.other);
		free(times);
	}
	printf("first, first64, median, last1k: the first punch, the mean of the first 64, the median of all\n"
	       "but the final one, the mean of the 1000 before the final one; final: the punch of the last\n"
	       "subpage; whole: one PUNCH_HOLE of the whole hugepage (fastest of 3); ratio: total / whole;\n"
	       "returned: the punch after which the pool had one more free hugepage;\n"
	       "cb:pun/cb:rel/free: kvm_gmem_invalidate callbacks (why = punch, release, free) in the\n"
	       "traced storm, and the order of the free call\n");
	kvm_vm_free(vm);
}

/* ------------------------------------------------------------------------ */
/* meta                                                                     */
/* ------------------------------------------------------------------------ */

static void bench_meta(void)
{
	struct kvm_vm *vm = vm_create_barebones();
	int i, j;

	/* Without a size list, measure 1 GiB files. */
	if (!nr_sizes)
		sizes_gib[nr_sizes++] = 1;

	printf("\n== meta: hugetlb metadata of a guest_memfd (fdinfo hugetlb_metadata_bytes), bytes per GiB\n");
	printf("%-15s %4s %10s %10s %12s %8s\n", "backing", "GiB", "created",
	       "allocated", "4K-holed", "maps");
	for (i = 1; i < NR_BACKINGS; i++) {
		const struct backing *b = &backings[i];

		if (!selected[i])
			continue;
		for (j = nr_sizes - 1; j >= 0; j--) {
			uint64_t size = sizes_gib[j] << 30, off;
			int64_t created, allocated, holed, maps;
			int fd, r;

			if (unusable(b, size))
				continue;
			fd = create_gmem(vm, b, size);
			created = fdinfo_value(fd, "hugetlb_metadata_bytes");
			TEST_ASSERT(created >= 0, "No hugetlb_metadata_bytes in fdinfo");
			r = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, size);
			TEST_ASSERT(!r, "fallocate() failed: %s", strerror(errno));
			allocated = fdinfo_value(fd, "hugetlb_metadata_bytes");
			for (off = 0; off < size; off += b->page_size) {
				r = fallocate(fd, FALLOC_FL_KEEP_SIZE |
					      FALLOC_FL_PUNCH_HOLE, off, SZ_4K);
				TEST_ASSERT(!r, "PUNCH_HOLE failed: %s", strerror(errno));
			}
			holed = fdinfo_value(fd, "hugetlb_metadata_bytes");
			maps = fdinfo_value(fd, "hugetlb_subpage_maps");
			close(fd);
			printf("%-15s %4lu %10lu %10lu %12lu %8ld\n", b->name,
			       sizes_gib[j], created / sizes_gib[j],
			       allocated / sizes_gib[j], holed / sizes_gib[j], maps);
			/* The largest size that fits is enough. */
			break;
		}
	}
	printf("created: right after KVM_CREATE_GUEST_MEMFD; allocated: after fallocate() of it all;\n"
	       "4K-holed: after punching one 4KiB subpage of every hugepage; maps: subpage maps then\n"
	       "(xarray nodes are not counted)\n");
	kvm_vm_free(vm);
}

/* ------------------------------------------------------------------------ */

static void help(const char *name)
{
	printf("usage: %s [-h] [-s sections] [-b backings] [-m MiB] [-n GiB,...]\n\n", name);
	printf(" -s: comma separated sections among touch, alloc, punch, meta (default: all)\n"
	       " -b: comma separated backings among 4k, 2m, 1g (default: all)\n"
	       " -m: private memory of the touch table in MiB (default: 1024)\n"
	       " -n: file sizes in GiB for the growing rows (default: 1,2,4; empty: none)\n");
}

static bool in_list(const char *list, const char *word)
{
	size_t len = strlen(word);
	const char *p;

	for (p = list; (p = strstr(p, word)); p += len) {
		if ((p == list || p[-1] == ',') && (!p[len] || p[len] == ','))
			return true;
	}
	return false;
}

int main(int argc, char *argv[])
{
	const char *sections = "touch,alloc,punch,meta", *list;
	char *end;
	int i, opt;

	for (i = 0; i < NR_BACKINGS; i++)
		selected[i] = true;

	while ((opt = getopt(argc, argv, "hs:b:m:n:")) != -1) {
		switch (opt) {
		case 's':
			sections = optarg;
			break;
		case 'b':
			for (i = 0; i < NR_BACKINGS; i++)
				selected[i] = in_list(optarg, backings[i].option);
			break;
		case 'm':
			touch_size = (uint64_t)atoi_positive("Memory size (MiB)", optarg) << 20;
			touch_size = align_up(touch_size, SZ_1G);
			break;
		case 'n':
			nr_sizes = 0;
			for (list = optarg; *list && nr_sizes < MAX_SIZES; list = end) {
				sizes_gib[nr_sizes++] = strtoull(list, &end, 10);
				TEST_ASSERT(end != list && sizes_gib[nr_sizes - 1],
					    "Bad size list '%s'", optarg);
				if (*end == ',')
					end++;
			}
			break;
		case 'h':
		default:
			help(argv[0]);
			exit(opt == 'h' ? 0 : KSFT_FAIL);
		}
	}

	TEST_REQUIRE(kvm_has_cap(KVM_CAP_GUEST_MEMFD));
	TEST_REQUIRE(kvm_check_cap(KVM_CAP_VM_TYPES) & BIT(KVM_X86_SW_PROTECTED_VM));

	if (in_list(sections, "touch"))
		bench_touch();
	if (in_list(sections, "alloc"))
		bench_alloc();
	if (in_list(sections, "punch"))
		bench_punch();
	if (in_list(sections, "meta"))
		bench_meta();
	return 0;
}
