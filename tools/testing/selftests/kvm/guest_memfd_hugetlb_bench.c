// SPDX-License-Identifier: GPL-2.0-only
/*
 * Measure hugetlb guest_memfd against regular guest_memfd, against the
 * shared hugetlb memory VMMs use today and against the floors it cannot
 * beat, each as a ratio between rows of one run:
 *
 *  touch: a guest writes every 4KiB page of its memory once: wall time, KVM
 *         page faults, the share mapped with 2MiB/1GiB pages, teardown
 *         time; private memory on 4K, 2M and 1G guest_memfd, and shared
 *         (non-private) memory on an anonymous MAP_HUGETLB mapping of 2M
 *         and 1G pages; 2M/1G guest_memfd at each size of the -n list to
 *         show how the costs grow.
 *  alloc: fallocate(ALLOCATE) of N GiB against the floors: a hugetlb
 *         mapping faulting the same hugepages in (the kernel zeroes them as
 *         fallocate does) and memset() of memory already mapped; close().
 *  punch: a 4KiB punch storm over a 2MiB and a 1GiB hugepage bound to a
 *         memslot, which the guest touched first (so KVM maps it huge) and
 *         which a vCPU keeps re-touching during the storm, so each punch
 *         zaps and flushes a live mapping; the same storm over a 4K
 *         guest_memfd of the same size.  Cost per punch (first, median,
 *         final), the punch at which the hugepage goes back to the pool,
 *         the invalidation callbacks (tracepoint kvm_gmem_invalidate,
 *         counted in the first repetition).
 *  meta:  hugetlb metadata bytes per GiB of file, as allocated by the
 *         kernel's allocators (fdinfo), when created, after fallocate(),
 *         and with one 4KiB hole in every hugepage.
 *
 * Under an emulator, identical runs of a step differ by tens of percent:
 * each timed row is the best of -r repetitions, with their spread.
 *
 * This is a benchmark, not a test: it prints tables (and with -p the same
 * numbers as "bench-data:" lines for plotting), and fails only if a step
 * fails.  Absolute times under an emulator mean little; compare rows.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <asm/barrier.h>
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
	/* For -b, and the label of the bench-data lines. */
	const char *option;
	const char *label;
	size_t page_size;
	/* Shared memory: a normal memslot on an anonymous MAP_HUGETLB mapping. */
	bool shared;
};

static const struct backing backings[] = {
	{ "4K guest_memfd", "4k", "4K-gmem", SZ_4K },
	{ "2M hugetlb", "2m", "2M-gmem", SZ_2M },
	{ "1G hugetlb", "1g", "1G-gmem", SZ_1G },
};

/* The memory VMMs back guests with today, beside backings[1] and [2]. */
static const struct backing shared_backings[] = {
	{ "2M shared mmap", "2m", "2M-shared", SZ_2M, true },
	{ "1G shared mmap", "1g", "1G-shared", SZ_1G, true },
};

#define NR_BACKINGS	ARRAY_SIZE(backings)
#define MAX_SIZES	8

static bool selected[NR_BACKINGS];
static uint64_t sizes_gib[MAX_SIZES] = { 1, 2, 4 };
static int nr_sizes = 3;
static uint64_t touch_size = SZ_1G;
static int reps = 3;
static bool plot_data;
/* Punch storms without the vCPU running (it still touches first). */
static bool storm_idle;

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The fastest and the slowest of the repetitions of one timed step. */
struct timing {
	double min, max;
};

static void timing_init(struct timing *t)
{
	t->min = 1e30;
	t->max = 0;
}

static void timing_add(struct timing *t, double seconds)
{
	t->min = min(t->min, seconds);
	t->max = max(t->max, seconds);
}

/* How much slower the slowest repetition was than the fastest, in %. */
static double timing_spread(const struct timing *t)
{
	return t->min > 0 ? 100.0 * (t->max - t->min) / t->min : 0;
}

/* A "bench-data: TABLE ..." line for scripts/bench's plot, with -p. */
static void __printf(2, 3) bench_data(const char *table, const char *fmt, ...)
{
	va_list ap;

	if (!plot_data)
		return;
	printf("bench-data: %s ", table);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
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
	if (!b->shared &&
	    !(kvm_check_cap(KVM_CAP_GUEST_MEMFD_HUGETLB) &
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

/*
 * A VM with one vCPU running @code, and @size bytes of memory of backing @b
 * at BENCH_GPA, mapped 1:1 by the guest with 2MiB pages.  Private memory is
 * a new guest_memfd, returned in *@fd; shared memory an anonymous hugetlb
 * mapping in a normal memslot (*@fd = -1).
 */
static struct kvm_vm *bench_vm_create(const struct backing *b, uint64_t size,
				      void *code, struct kvm_vcpu **vcpu,
				      int *fd)
{
	const struct vm_shape shape = {
		.mode = VM_MODE_DEFAULT,
		.type = KVM_X86_SW_PROTECTED_VM,
	};
	struct kvm_vm *vm;

	vm = vm_create_shape_with_one_vcpu(shape, vcpu, code);
	if (b->shared) {
		*fd = -1;
		vm_mem_add(vm, b->page_size == SZ_1G ?
			   VM_MEM_SRC_ANONYMOUS_HUGETLB_1GB :
			   VM_MEM_SRC_ANONYMOUS_HUGETLB_2MB,
			   BENCH_GPA, BENCH_SLOT, size / vm->page_size, 0, -1, 0);
	} else {
		*fd = create_gmem(vm, b, size);
		/* vm_mem_add() aligns the shared side like the guest_memfd. */
		vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, BENCH_GPA, BENCH_SLOT,
			   size / vm->page_size, KVM_MEM_GUEST_MEMFD, *fd, 0);
		vm_mem_set_private(vm, BENCH_GPA, size);
	}
	virt_map_level(vm, BENCH_GPA, BENCH_GPA, size, PG_LEVEL_2M);
	return vm;
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

struct touch_result {
	const char *skipped;
	struct timing time, teardown;
	int64_t faults;
	struct vm_mapping_level_stats delta;
	struct hugetlb_pool_stats before, closed;
};

/* One repetition: the last one's faults, mappings and pool are reported. */
static void touch_once(const struct backing *b, uint64_t size,
		       struct touch_result *res)
{
	struct vm_mapping_level_stats before, after;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int64_t faults;
	double start;
	int fd;

	vm = bench_vm_create(b, size, guest_touch, &vcpu, &fd);
	vcpu_args_set(vcpu, 2, BENCH_GPA, size);

	run_vcpu(vcpu, UCALL_SYNC);
	vm_get_mapping_level_stats(vm, &before);
	faults = kvm_debugfs_stat("pf_taken");

	start = now_seconds();
	run_vcpu(vcpu, UCALL_DONE);
	timing_add(&res->time, now_seconds() - start);

	res->faults = faults < 0 ? -1 : kvm_debugfs_stat("pf_taken") - faults;
	vm_get_mapping_level_stats(vm, &after);
	res->delta.pages_4k = after.pages_4k - before.pages_4k;
	res->delta.pages_2m = after.pages_2m - before.pages_2m;
	res->delta.pages_1g = after.pages_1g - before.pages_1g;

	start = now_seconds();
	kvm_vm_free(vm);
	if (fd >= 0)
		close(fd);
	timing_add(&res->teardown, now_seconds() - start);
	if (is_hugetlb(b))
		hugetlb_get_pool_stats(b->page_size, &res->closed);
}

static void touch(const struct backing *b, uint64_t size,
		  struct touch_result *res)
{
	int rep;

	memset(res, 0, sizeof(*res));
	timing_init(&res->time);
	timing_init(&res->teardown);
	res->skipped = unusable(b, size);
	if (res->skipped)
		return;
	if (is_hugetlb(b))
		hugetlb_get_pool_stats(b->page_size, &res->before);
	for (rep = 0; rep < reps; rep++)
		touch_once(b, size, res);
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
		snprintf(ratio, sizeof(ratio), "%.3f", res->time.min / ref_seconds);
	if (is_hugetlb(b))
		snprintf(pool, sizeof(pool), "%lu/%lu -> %lu/%lu",
			 res->before.free, res->before.resv,
			 res->closed.free, res->closed.resv);
	printf("%-15s %6lu %8.3f %5.0f%% %6s %8ld %7lu %6lu %5lu %6.1f%% %9.3f  %s\n",
	       b->name, size >> 20, res->time.min, timing_spread(&res->time),
	       ratio, res->faults, res->delta.pages_4k, res->delta.pages_2m,
	       res->delta.pages_1g, 100.0 * huge / size, res->teardown.min, pool);
}

static void touch_header(void)
{
	printf("%-15s %6s %8s %6s %6s %8s %7s %6s %5s %7s %9s  %s\n",
	       "backing", "MiB", "touch(s)", "spread", "ratio", "faults",
	       "maps4k", "maps2m", "maps1g", "huge", "teardown",
	       "pool free/resv");
}

/* Private (guest_memfd) touch time against shared (mmap) touch time. */
static void print_private_shared(const struct backing *priv,
				 const struct touch_result *p,
				 const struct backing *shared,
				 const struct touch_result *s)
{
	if (p->skipped || s->skipped)
		return;
	printf("private/shared %s: %.3f (%s %.3f s / %s %.3f s)\n",
	       priv->option, p->time.min / s->time.min, priv->name,
	       p->time.min, shared->name, s->time.min);
	bench_data("ratio", "private/shared-%s %.4f", priv->option,
		   p->time.min / s->time.min);
}

static void bench_touch(void)
{
	struct touch_result res[NR_BACKINGS], sres[ARRAY_SIZE(shared_backings)];
	struct touch_result grow;
	double ref;
	int i, j;

	printf("\n== touch: one vCPU writes every 4KiB page of its memory once (best of %d)\n",
	       reps);
	touch_header();
	for (i = 0; i < NR_BACKINGS; i++) {
		if (!selected[i])
			continue;
		touch(&backings[i], touch_size, &res[i]);
		ref = selected[0] && !res[0].skipped ? res[0].time.min : 0;
		print_touch_row(&backings[i], touch_size, &res[i], ref);
		if (!res[i].skipped)
			bench_data("touch", "%s %.6f %.6f", backings[i].label,
				   res[i].time.min, res[i].time.max);
	}
	for (i = 0; i < ARRAY_SIZE(shared_backings); i++) {
		const struct backing *b = &shared_backings[i];

		if (!selected[i + 1])
			continue;
		touch(b, touch_size, &sres[i]);
		ref = selected[0] && !res[0].skipped ? res[0].time.min : 0;
		print_touch_row(b, touch_size, &sres[i], ref);
		if (!sres[i].skipped)
			bench_data("touch", "%s %.6f %.6f", b->label,
				   sres[i].time.min, sres[i].time.max);
	}
	for (i = 0; i < ARRAY_SIZE(shared_backings); i++) {
		if (selected[i + 1])
			print_private_shared(&backings[i + 1], &res[i + 1],
					     &shared_backings[i], &sres[i]);
	}
	printf("private rows: guest_memfd bound as private memory; shared mmap: a normal memslot on an\n"
	       "anonymous MAP_HUGETLB mapping (what VMMs use today), same SW-protected VM type, no private\n"
	       "attributes; touch: fastest of the repetitions, spread: (slowest - fastest) / fastest;\n"
	       "ratio: touch time / the 4K guest_memfd row's; faults: KVM page faults taken (pf_taken);\n"
	       "maps*: new KVM mappings per level; huge: share of the memory mapped 2M or 1G;\n"
	       "teardown: kvm_vm_free() + close(), fastest; pool: before create -> after the last close\n");

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
			char table[32];

			touch(&backings[i], size, &grow);
			if (!grow.skipped && !j)
				per_gib_ref = grow.time.min / sizes_gib[j];
			/* Time per GiB against the first size's. */
			print_touch_row(&backings[i], size, &grow,
					per_gib_ref * sizes_gib[j]);
			snprintf(table, sizeof(table), "grow-%s", backings[i].label);
			if (!grow.skipped)
				bench_data(table, "%lu %.6f %.6f", sizes_gib[j],
					   grow.time.min / sizes_gib[j],
					   grow.time.max / sizes_gib[j]);
		}
	}
}

/* ------------------------------------------------------------------------ */
/* alloc                                                                    */
/* ------------------------------------------------------------------------ */

struct alloc_result {
	struct timing falloc, fault, zero, closing, unmap;
};

static void alloc_once(struct kvm_vm *vm, const struct backing *b,
		       uint64_t size, struct alloc_result *res)
{
	uint64_t off;
	double t;
	char *p;
	int fd, r;

	fd = create_gmem(vm, b, size);
	t = now_seconds();
	r = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, size);
	timing_add(&res->falloc, now_seconds() - t);
	TEST_ASSERT(!r, "fallocate(%s, %lu MiB) failed: %s",
		    b->name, size >> 20, strerror(errno));
	t = now_seconds();
	close(fd);
	timing_add(&res->closing, now_seconds() - t);

	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
		 (__builtin_ctzl(b->page_size) << MAP_HUGE_SHIFT), -1, 0);
	TEST_ASSERT(p != MAP_FAILED, "hugetlb mmap(%lu MiB) failed: %s",
		    size >> 20, strerror(errno));
	t = now_seconds();
	for (off = 0; off < size; off += b->page_size)
		p[off] = 1;
	timing_add(&res->fault, now_seconds() - t);
	t = now_seconds();
	memset(p, 0, size);
	timing_add(&res->zero, now_seconds() - t);
	t = now_seconds();
	munmap(p, size);
	timing_add(&res->unmap, now_seconds() - t);
}

static void bench_alloc(void)
{
	struct kvm_vm *vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	struct alloc_result res;
	int i, j, rep;

	printf("\n== alloc: fallocate(ALLOCATE) of the whole file against the floors (best of %d)\n",
	       reps);
	printf("%-15s %4s %9s %6s %7s %9s %7s %9s %7s %8s %8s\n",
	       "backing", "GiB", "falloc(s)", "spread", "GiB/s", "fault(s)",
	       "ratio", "memset(s)", "ratio", "close(s)", "unmap(s)");
	for (i = 1; i < NR_BACKINGS; i++) {
		const struct backing *b = &backings[i];
		char table[32];

		if (!selected[i])
			continue;
		snprintf(table, sizeof(table), "alloc-%s", b->label);
		for (j = 0; j < nr_sizes; j++) {
			uint64_t size = sizes_gib[j] << 30;
			const char *why = unusable(b, size);

			if (why) {
				printf("%-15s %4lu  skipped: %s\n", b->name, sizes_gib[j], why);
				continue;
			}
			timing_init(&res.falloc);
			timing_init(&res.fault);
			timing_init(&res.zero);
			timing_init(&res.closing);
			timing_init(&res.unmap);
			for (rep = 0; rep < reps; rep++)
				alloc_once(vm, b, size, &res);

			printf("%-15s %4lu %9.3f %5.0f%% %7.2f %9.3f %7.3f %9.3f %7.3f %8.3f %8.3f\n",
			       b->name, sizes_gib[j], res.falloc.min,
			       timing_spread(&res.falloc),
			       sizes_gib[j] / res.falloc.min, res.fault.min,
			       res.falloc.min / res.fault.min, res.zero.min,
			       res.falloc.min / res.zero.min, res.closing.min,
			       res.unmap.min);
			bench_data(table, "%lu %.6f %.6f %.6f %.6f", sizes_gib[j],
				   res.falloc.min / sizes_gib[j],
				   res.falloc.max / sizes_gib[j],
				   res.fault.min / sizes_gib[j],
				   res.zero.min / sizes_gib[j]);
		}
	}
	printf("each time: the fastest of the repetitions; spread: (slowest - fastest) / fastest falloc;\n"
	       "fault: a MAP_HUGETLB mapping faulting in the same number of hugepages (kernel zeroing);\n"
	       "memset: memset(0) of that mapping once faulted in; ratio: falloc / that floor;\n"
	       "close: close() of the allocated guest_memfd; unmap: munmap() of the hugetlb mapping\n");
	kvm_vm_free(vm);
}

/* ------------------------------------------------------------------------ */
/* punch                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * The vCPU re-touches the STORM_WINDOW subpages that start STORM_MARGIN
 * subpages past the punch cursor: it keeps refaulting what the punches zap,
 * but must not refill a punched subpage, which would keep the hugepage from
 * going back to the pool.  The margin is not enough on its own: a fault in a
 * hugetlb folio is retried while any punch of that folio is in flight, so the
 * vCPU can stay on one access for many punches.  It therefore claims the
 * subpage it accesses (target), and the host doesn't punch a claimed one.
 */
#define STORM_MARGIN	64
#define STORM_WINDOW	256
/* The vCPU executes PAUSE once every STORM_PAUSE touches. */
#define STORM_PAUSE	16
#define STORM_PATTERN(i)	(0xb5b5000000000000ULL | (i))

/* Shared by host and guest in normal (slot 0) memory. */
struct storm_shared {
	/* Host: subpages whose punch has started. */
	uint64_t cursor;
	uint64_t stop;
	/* Guest: 1 + the subpage it is accessing, 0 if none. */
	uint64_t target;
	/* Guest: subpages touched, and touched ones that read as zero. */
	uint64_t touches;
	uint64_t zeros;
} __aligned(64);

static struct storm_shared storm_shared;

static void guest_storm(uint64_t gpa, uint64_t nr)
{
	struct storm_shared *s = &storm_shared;
	uint64_t i, p, val, *w;

	for (i = 0; i < nr; i++)
		WRITE_ONCE(*(uint64_t *)(gpa + i * SZ_4K), STORM_PATTERN(i));
	GUEST_SYNC(0);

	/*
	 * A punched subpage reads as zero and is refaulted: a subpage that the
	 * storm overtook while the vCPU was away is counted, not an error.
	 *
	 * PAUSE now and then, as a spinning guest would: single-threaded TCG
	 * then lets the other vCPU run, as a second CPU would.  Without it, a
	 * punch's TLB flush IPI to this vCPU waits until the emulator leaves
	 * the guest's loop at its next timer tick (milliseconds), which
	 * measures the emulator instead of the punch.
	 */
	for (i = 0; !READ_ONCE(s->stop); i++) {
		if (!(i % STORM_PAUSE))
			cpu_relax();
		p = READ_ONCE(s->cursor) + STORM_MARGIN + i % STORM_WINDOW;
		if (p >= nr)
			continue;
		WRITE_ONCE(s->target, p + 1);
		/* Claim p, then check that its punch has not started. */
		smp_mb();
		if (p < READ_ONCE(s->cursor)) {
			WRITE_ONCE(s->target, 0);
			continue;
		}
		w = (uint64_t *)(gpa + p * SZ_4K);
		val = READ_ONCE(*w);
		__GUEST_ASSERT(val == STORM_PATTERN(p) || !val,
			       "subpage %lu holds 0x%lx, neither its pattern nor zero",
			       p, val);
		if (!val)
			WRITE_ONCE(s->zeros, s->zeros + 1);
		WRITE_ONCE(*w, STORM_PATTERN(p));
		WRITE_ONCE(s->target, 0);
		WRITE_ONCE(s->touches, s->touches + 1);
	}
	GUEST_DONE();
}

static void *storm_vcpu_fn(void *arg)
{
	run_vcpu(arg, UCALL_DONE);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The median of @n costs, which get sorted. */
static double median(double *times, uint64_t n)
{
	qsort(times, n, sizeof(*times), cmp_double);
	return times[n / 2];
}

struct callbacks {
	uint64_t punch, release, free, other;
	uint64_t free_order;
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

/* Events the trace buffers dropped since they were last cleared. */
static uint64_t trace_overruns(void)
{
	long cpu, nr = sysconf(_SC_NPROCESSORS_CONF);
	uint64_t sum = 0, val;
	char path[96], line[128];
	FILE *f;

	for (cpu = 0; cpu < nr; cpu++) {
		snprintf(path, sizeof(path), TRACING_DIR "/per_cpu/cpu%ld/stats", cpu);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line, "overrun: %lu", &val) == 1)
				sum += val;
		}
		fclose(f);
	}
	return sum;
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

struct storm_result {
	/* Before the storm, after the guest touched it all. */
	struct vm_mapping_level_stats mapped;
	/* The punch (from 1) after which the pool had one more free page. */
	uint64_t returned;
	/* During the storm: KVM page faults, and the vCPU's touches. */
	int64_t faults;
	uint64_t touches, zeros;
	/* Punches that waited for the vCPU to finish with their subpage. */
	uint64_t waits;
};

/*
 * Bind a guest_memfd of backing @b and @size bytes to a memslot, let the
 * guest touch all of it, then punch every 4KiB of it, in order, while a vCPU
 * keeps re-touching the subpages ahead of the punches.  @times gets the cost
 * of each punch.  With @cb, count the callbacks of the storm.
 */
static void punch_storm(const struct backing *b, uint64_t size, double *times,
			struct callbacks *cb, struct storm_result *res)
{
	uint64_t nr = size / SZ_4K, i, base = 0;
	struct storm_shared *s;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	pthread_t thread;
	int fd, r, pool = -1;
	int64_t faults;
	double t;

	memset(res, 0, sizeof(*res));
	vm = bench_vm_create(b, size, guest_storm, &vcpu, &fd);
	vcpu_args_set(vcpu, 2, BENCH_GPA, nr);
	run_vcpu(vcpu, UCALL_SYNC);
	vm_get_mapping_level_stats(vm, &res->mapped);
	s = addr_gva2hva(vm, (vm_vaddr_t)&storm_shared);

	if (is_hugetlb(b)) {
		char path[128];

		snprintf(path, sizeof(path),
			 "/sys/kernel/mm/hugepages/hugepages-%zukB/free_hugepages",
			 b->page_size >> 10);
		pool = open(path, O_RDONLY);
		TEST_ASSERT(pool >= 0, "Can't open %s: %s", path, strerror(errno));
		base = pread_free(pool);
	}
	if (cb)
		TEST_ASSERT(!write_str_to_file(TRACING_DIR "/trace", "") &&
			    !write_str_to_file(EVENT_ENABLE, "1"),
			    "Can't enable tracing of kvm_gmem_invalidate");

	if (!storm_idle) {
		r = pthread_create(&thread, NULL, storm_vcpu_fn, vcpu);
		TEST_ASSERT(!r, "pthread_create() failed: %s", strerror(r));
		/* The vCPU is in its loop once it touched a subpage. */
		t = now_seconds();
		while (!READ_ONCE(s->touches))
			TEST_ASSERT(now_seconds() - t < 60, "The vCPU doesn't run");
	}

	faults = kvm_debugfs_stat("pf_taken");
	for (i = 0; i < nr; i++) {
		WRITE_ONCE(s->cursor, i + 1);
		/* Pairs with the guest's claim of its target. */
		smp_mb();
		if (READ_ONCE(s->target) == i + 1) {
			res->waits++;
			while (READ_ONCE(s->target) == i + 1)
				cpu_relax();
		}
		t = now_seconds();
		r = fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
			      i * SZ_4K, SZ_4K);
		times[i] = now_seconds() - t;
		TEST_ASSERT(!r, "PUNCH_HOLE of subpage %lu failed: %s", i,
			    strerror(errno));
		if (pool >= 0 && !res->returned && pread_free(pool) != base)
			res->returned = i + 1;
	}
	res->faults = faults < 0 ? -1 : kvm_debugfs_stat("pf_taken") - faults;
	WRITE_ONCE(s->stop, 1);
	if (!storm_idle)
		pthread_join(thread, NULL);
	res->touches = READ_ONCE(s->touches);
	res->zeros = READ_ONCE(s->zeros);

	if (cb) {
		write_str_to_file(EVENT_ENABLE, "0");
		count_callbacks(cb);
		cb->other += trace_overruns();
		write_str_to_file(TRACING_DIR "/trace", "");
	}
	kvm_vm_free(vm);
	close(fd);
	if (pool >= 0)
		close(pool);
}

struct storm_row {
	const char *skipped;
	uint64_t nr;
	struct timing median;
	double first, final, total;
	struct storm_result res;
	/* Over all repetitions. */
	uint64_t zeros, waits;
	bool returned_varies;
	struct callbacks cb;
	/* The per-punch costs of the repetition with the lowest median. */
	double *best;
};

/* Summarise one timed storm into @row, keeping its costs if the best. */
static void storm_account(struct storm_row *row, double **times,
			  const struct storm_result *res, bool first_rep)
{
	uint64_t nr = row->nr, k;
	double total = 0, med, *sorted;

	for (k = 0; k < nr; k++)
		total += (*times)[k];
	sorted = malloc(nr * sizeof(*sorted));
	TEST_ASSERT(sorted, "malloc() failed");
	/* The final punch frees the hugepage: not in the median. */
	memcpy(sorted, *times, (nr - 1) * sizeof(*sorted));
	med = nr > 1 ? median(sorted, nr - 1) : (*times)[0];
	free(sorted);

	if (first_rep) {
		row->first = (*times)[0];
		row->final = (*times)[nr - 1];
		row->total = total;
		row->res = *res;
	} else {
		row->first = min(row->first, (*times)[0]);
		row->final = min(row->final, (*times)[nr - 1]);
		row->total = min(row->total, total);
		if (res->returned != row->res.returned)
			row->returned_varies = true;
	}
	row->zeros += res->zeros;
	row->waits += res->waits;
	if (first_rep || med < row->median.min) {
		double *swap = row->best;

		row->best = *times;
		*times = swap;
		if (!first_rep) {
			row->res.faults = res->faults;
			row->res.touches = res->touches;
		}
	}
	timing_add(&row->median, med);
}

static void storm_row_run(const struct backing *b, uint64_t size,
			  struct storm_row *row)
{
	struct storm_result res;
	double *times;
	int rep;

	memset(row, 0, sizeof(*row));
	timing_init(&row->median);
	row->nr = size / SZ_4K;
	row->skipped = unusable(b, size);
	if (row->skipped)
		return;
	times = calloc(row->nr, sizeof(*times));
	row->best = calloc(row->nr, sizeof(*times));
	TEST_ASSERT(times && row->best, "calloc() failed");

	/*
	 * The first storm is traced, for the callbacks: a storm of 1G at 4K
	 * takes minutes under TCG, and the few microseconds the tracepoint
	 * adds to a punch are well within the spread of the repetitions.
	 */
	for (rep = 0; rep < reps; rep++) {
		punch_storm(b, size, times, rep ? NULL : &row->cb, &res);
		storm_account(row, &times, &res, !rep);
	}
	free(times);
}

#define PUNCH_BINS	128

/* The per-punch costs of the best storm, as the median of PUNCH_BINS bins. */
static void storm_curve(const char *label, const struct storm_row *row)
{
	uint64_t nr = row->nr - 1, bins = min_t(uint64_t, PUNCH_BINS, nr), k;
	double *tmp = malloc(nr * sizeof(*tmp));
	char table[64];

	TEST_ASSERT(tmp, "malloc() failed");
	snprintf(table, sizeof(table), "curve-%s", label);
	for (k = 0; k < bins; k++) {
		uint64_t from = k * nr / bins, to = (k + 1) * nr / bins;

		memcpy(tmp, row->best + from, (to - from) * sizeof(*tmp));
		bench_data(table, "%.6f %.3f", (double)(from + to) / 2 / row->nr,
			   median(tmp, to - from) * 1e6);
	}
	/* The final, freeing punch on its own. */
	bench_data(table, "%.6f %.3f", 1.0, row->final * 1e6);
	free(tmp);
}

static void print_storm_row(const char *region, const struct backing *b,
			    const struct storm_row *row,
			    const struct storm_row *ref)
{
	char mapped[48], returned[24] = "-", vs4k[16] = "-", tot4k[16] = "-";
	char label[48];

	if (row->skipped) {
		printf("%-6s %-15s skipped: %s\n", region, b->name, row->skipped);
		return;
	}
	snprintf(mapped, sizeof(mapped), "%lu/%lu/%lu", row->res.mapped.pages_4k,
		 row->res.mapped.pages_2m, row->res.mapped.pages_1g);
	if (is_hugetlb(b) && row->returned_varies)
		snprintf(returned, sizeof(returned), "varies");
	else if (is_hugetlb(b) && !row->res.returned)
		snprintf(returned, sizeof(returned), "never");
	else if (is_hugetlb(b))
		snprintf(returned, sizeof(returned), "%lu", row->res.returned);
	if (ref && !ref->skipped) {
		snprintf(vs4k, sizeof(vs4k), "%.2f", row->median.min / ref->median.min);
		snprintf(tot4k, sizeof(tot4k), "%.2f", row->total / ref->total);
	}
	printf("%-6s %-15s %7lu %15s %7.0f %7.1f %5.0f%% %7.0f %8.2f %6s %6s %8s %7lu %7lu %4lu/%-2lu %8ld %8lu %5lu\n",
	       region, b->name, row->nr, mapped, row->first * 1e6,
	       row->median.min * 1e6, timing_spread(&row->median),
	       row->final * 1e6, row->total, vs4k, tot4k, returned,
	       row->cb.punch, row->cb.release, row->cb.free, row->cb.free_order,
	       row->res.faults, row->res.touches, row->waits);
	if (row->zeros)
		printf("  %lu subpages the vCPU touched read as zero: it refilled punched subpages\n",
		       row->zeros);
	if (row->cb.other)
		printf("  %lu callbacks with an unknown reason or lost by the trace buffer\n",
		       row->cb.other);

	snprintf(label, sizeof(label), "%s-in-%s", b->label, region);
	bench_data("punch", "%s %.3f %.3f %.3f %.3f %.4f %lu %lu %lu %lu", label,
		   row->median.min * 1e6, row->median.max * 1e6,
		   row->first * 1e6, row->final * 1e6, row->total,
		   row->res.returned, row->cb.punch, row->cb.release,
		   row->cb.free);
	storm_curve(label, row);
}

static void bench_punch(void)
{
	double vs4k[NR_BACKINGS] = {};
	uint64_t kb = 4096;
	char size_kb[32];
	int i;

	printf("\n== punch: PUNCH_HOLE of every 4KiB of a bound, guest-touched guest_memfd, in order,\n"
	       "   %s (best of %d; times in us)\n",
	       storm_idle ? "with the vCPU stopped (-V)" : "while a vCPU re-touches the memory ahead",
	       reps);
	printf("%-6s %-15s %7s %15s %7s %7s %6s %7s %8s %6s %6s %8s %7s %7s %7s %8s %8s %5s\n",
	       "region", "backing", "punches", "mapped 4k/2m/1g", "first",
	       "median", "spread", "final", "total(s)", "med/4K", "tot/4K",
	       "returned", "cb:pun", "cb:rel", "free", "vcpu:pf", "touches",
	       "waits");

	/* Room for every callback of the largest storm: two per 4K punch. */
	for (i = 1; i < NR_BACKINGS; i++) {
		if (selected[i])
			kb = max(kb, backings[i].page_size / SZ_4K * 2 * 64 / 1024);
	}
	snprintf(size_kb, sizeof(size_kb), "%lu", kb);
	TEST_ASSERT(!write_str_to_file(TRACING_DIR "/buffer_size_kb", size_kb),
		    "Can't size the trace buffer");

	for (i = 1; i < NR_BACKINGS; i++) {
		const struct backing *b = &backings[i];
		const char *region = b->page_size == SZ_1G ? "1G" : "2M";
		struct storm_row row, ref;

		if (!selected[i])
			continue;
		/* The same storm on a 4K guest_memfd of the hugepage's size. */
		if (selected[0]) {
			storm_row_run(&backings[0], b->page_size, &ref);
			print_storm_row(region, &backings[0], &ref, NULL);
		}
		storm_row_run(b, b->page_size, &row);
		print_storm_row(region, b, &row, selected[0] ? &ref : NULL);
		if (selected[0] && !ref.skipped && !row.skipped) {
			vs4k[i] = row.median.min / ref.median.min;
			bench_data("ratio", "punch-median-hugetlb/4K-%s %.4f",
				   region, vs4k[i]);
		}
		if (selected[0])
			free(ref.best);
		free(row.best);
	}
	printf("region: a guest_memfd of one 2M or 1G hugepage's size, bound to a memslot as private memory,\n"
	       "which the guest wrote in full first (mapped: KVM mappings then, per level); during the storm a\n"
	       "vCPU re-touches the %d subpages %d past the punch cursor: every punch zaps and flushes a live\n"
	       "mapping.  first, final: the first punch and the punch of the last subpage (fastest of the\n"
	       "repetitions); median: the median of all but the final punch, the lowest of the repetitions, and\n"
	       "spread: (highest - lowest) / lowest median; total: the storm, fastest; med/4K, tot/4K: median\n"
	       "and total against the 4K guest_memfd row of the region; returned: the punch after which the\n"
	       "pool had one more free hugepage; cb:pun/cb:rel/free: kvm_gmem_invalidate callbacks (why = punch,\n"
	       "release, free) in the first repetition, traced, and the order of the last free; vcpu:pf: KVM page\n"
	       "faults during the storm and the vCPU's subpage touches then (in the repetition with the lowest\n"
	       "median); waits: punches that first waited (untimed) for the vCPU to finish with their subpage,\n"
	       "in all repetitions\n",
	       STORM_WINDOW, STORM_MARGIN);
	for (i = 1; i < NR_BACKINGS; i++) {
		if (vs4k[i])
			printf("per punch, hugetlb / 4K guest_memfd (median) in a %s region: %.3f\n",
			       backings[i].page_size == SZ_1G ? "1G" : "2M", vs4k[i]);
	}
}

/* ------------------------------------------------------------------------ */
/* meta                                                                     */
/* ------------------------------------------------------------------------ */

static void bench_meta(void)
{
	struct kvm_vm *vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	int i, j;

	/* Without a size list, measure 1 GiB files. */
	if (!nr_sizes)
		sizes_gib[nr_sizes++] = 1;

	printf("\n== meta: hugetlb metadata of a guest_memfd, allocated bytes per GiB of file\n"
	       "   (fdinfo hugetlb_metadata_bytes: what the kernel's allocators allocated for it)\n");
	printf("%-15s %4s %10s %12s %12s %8s\n", "backing", "GiB", "created",
	       "fallocated", "4K-holed", "maps");
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
			printf("%-15s %4lu %10lu %12lu %12lu %8ld\n", b->name,
			       sizes_gib[j], created / sizes_gib[j],
			       allocated / sizes_gib[j], holed / sizes_gib[j], maps);
			bench_data("meta", "%s %lu %lu %lu %lu", b->label,
				   sizes_gib[j], created / sizes_gib[j],
				   allocated / sizes_gib[j], holed / sizes_gib[j]);
			/* The largest size that fits is enough. */
			break;
		}
	}
	printf("allocated bytes per GiB: created: right after KVM_CREATE_GUEST_MEMFD; fallocated: after\n"
	       "fallocate() of it all; 4K-holed: after punching one 4KiB subpage of every hugepage;\n"
	       "maps: subpage maps then (xarray nodes are not counted)\n");
	kvm_vm_free(vm);
}

/* ------------------------------------------------------------------------ */

static void help(const char *name)
{
	printf("usage: %s [-h] [-p] [-s sections] [-b backings] [-m MiB] [-n GiB,...] [-r N] [-V]\n\n",
	       name);
	printf(" -s: comma separated sections among touch, alloc, punch, meta (default: all)\n"
	       " -b: comma separated backings among 4k, 2m, 1g (default: all)\n"
	       " -m: memory of the touch table in MiB (default: 1024)\n"
	       " -n: file sizes in GiB for the growing rows (default: 1,2,4; empty: none)\n"
	       " -r: repetitions of each timed row, the fastest is shown (default: 3)\n"
	       " -V: punch storms without the vCPU running (it still touches the memory first)\n"
	       " -p: also print the numbers as \"bench-data: TABLE ...\" lines for plotting\n");
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

	while ((opt = getopt(argc, argv, "hpVs:b:m:n:r:")) != -1) {
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
		case 'r':
			reps = atoi_positive("Repetitions", optarg);
			break;
		case 'p':
			plot_data = true;
			break;
		case 'V':
			storm_idle = true;
			break;
		case 'h':
		default:
			help(argv[0]);
			exit(opt == 'h' ? 0 : KSFT_FAIL);
		}
	}

	TEST_REQUIRE(kvm_has_cap(KVM_CAP_GUEST_MEMFD));
	TEST_REQUIRE(kvm_check_cap(KVM_CAP_VM_TYPES) & BIT(KVM_X86_SW_PROTECTED_VM));

	/* One line per row: the output goes through a serial console. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	bench_data("info", "reps %d", reps);
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
