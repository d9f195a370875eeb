// SPDX-License-Identifier: GPL-2.0-only
/*
 * hugetlb guest_memfd against regular guest_memfd, against the shared
 * hugetlb memory VMMs use today and against the floors it cannot beat,
 * each as a ratio between rows of one run:
 *
 *  touch:  a guest writes every 4K page of its memory once: time, KVM page
 *          faults, the mappings per level, teardown; private memory on 4K,
 *          2M and 1G guest_memfd, shared memory on anonymous MAP_HUGETLB
 *          mappings of 2M and 1G pages; hugetlb at each size of -n.
 *  falloc: fallocate() of N GiB against a hugetlb mapping faulting in the
 *          same hugepages (the kernel zeroes both) and memset(); close().
 *  punch:  every 4K of a guest-touched 2M and 1G hugepage punched in order
 *          while a vCPU keeps touching the memory ahead, against the same
 *          storm on a 4K guest_memfd: cost per punch (first, median,
 *          final), the punch that gives the hugepage back, the callbacks
 *          (kvm_gmem_invalidate), the vCPU's faults.
 *  meta:   fdinfo hugetlb_metadata_bytes per GiB: created, allocated, and
 *          with a 4K hole in every hugepage.
 *  dmap:   a 4K punch and the free of a guest-touched 2M and 1G hugepage
 *          of a GUEST_MEMFD_FLAG_NO_DIRECT_MAP file (zeroed through a
 *          temporary mapping; wiped, mapped back and collapsed) against
 *          the same without the flag, with the VM's one vCPU and with 8
 *          more vCPUs busy in another guest; DirectMap4k/2M/1G.
 *  mmap:   a default VM's guest_memfd with MMAP | INIT_SHARED, as
 *          non-confidential VMMs use it, on 4K, 2M and 1G pages: the VMM
 *          writes every 4K of its MAP_SHARED mapping (faults, time) against
 *          MAP_SHARED | MAP_HUGETLB memory of the same page size; a guest
 *          writes every 4K of a gmem-only memslot (time, KVM's mappings)
 *          against an ordinary memslot over that hugetlbfs memory and
 *          against a 4K guest_memfd; DirectMap4k/2M/1G before, during and
 *          after such a VM's life with GUEST_MEMFD_FLAG_NO_DIRECT_MAP
 *          (secret-free) and without.
 *
 * Identical runs differ by tens of percent under an emulator: each timed
 * row is the best of -r repetitions, with their spread ((slowest -
 * fastest) / fastest).  Each table names the kernel it ran on: KASAN,
 * lockdep and kmemleak distort every cost.  A benchmark, not a test: it
 * fails only if a step fails.  With -p, the numbers also come as
 * "bench-data: TABLE ..." lines.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/utsname.h>

#include <asm/barrier.h>
#include <linux/falloc.h>
#include <linux/mman.h>

#include "gmem_hugetlb.h"
#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

struct backing {
	const char *name;
	const char *option;	/* -b */
	const char *label;	/* bench-data */
	size_t page_size;
	bool shared;		/* a normal memslot on MAP_HUGETLB memory */
};

static const struct backing backings[] = {
	{ "4K guest_memfd", "4k", "4K-gmem", SZ_4K },
	{ "2M hugetlb", "2m", "2M-gmem", SZ_2M },
	{ "1G hugetlb", "1g", "1G-gmem", SZ_1G },
};

static const struct backing shared_backings[] = {
	{ "2M shared mmap", "2m", "2M-shared", SZ_2M, true },
	{ "1G shared mmap", "1g", "1G-shared", SZ_1G, true },
};

#define NR_BACKINGS	ARRAY_SIZE(backings)
#define MAX_SIZES	8

static bool selected[NR_BACKINGS];
static u64 sizes_gib[MAX_SIZES] = { 1, 2, 4 };
static int nr_sizes = 3;
static u64 touch_size = SZ_1G;
static int reps = 3;
static u64 punch_limit;
static bool plot_data, storm_idle;
/* The running kernel and its debug options, for the table headers. */
static char kernel_desc[192];

/* The fastest and the slowest repetition of a timed step. */
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

static double spread(const struct timing *t)
{
	return t->min > 0 ? 100.0 * (t->max - t->min) / t->min : 0;
}

static __printf(2, 3) void bench_data(const char *table, const char *fmt, ...)
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

/* Whether the kernel log still holds the boot's first line and @str. */
static int kernel_log_has(const char *str)
{
	int len = klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0);
	char *buf;
	int n, r = -1;

	if (len <= 0)
		return -1;
	buf = calloc(1, len + 1);
	TEST_ASSERT(buf, "out of memory");
	n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, len);
	if (n > 0 && strstr(buf, "Linux version"))
		r = !!strstr(buf, str);
	free(buf);
	return r;
}

/*
 * Describe the running kernel: its release and whether KASAN (its boot
 * message), lockdep (/proc/lockdep) or kmemleak (debugfs) are in it.
 */
static void kernel_describe(void)
{
	static const char * const what[] = { "KASAN", "lockdep", "kmemleak" };
	int on[3], i, n = 0, unknown = 0;
	char list[64] = "";
	struct utsname u;

	TEST_ASSERT(!uname(&u), "uname()");
	on[0] = kernel_log_has("KernelAddressSanitizer initialized");
	on[1] = !access("/proc/lockdep", F_OK);
	on[2] = access("/sys/kernel/debug/tracing", F_OK) &&
		access("/sys/kernel/debug/kvm", F_OK) ? -1 :
		!access("/sys/kernel/debug/kmemleak", F_OK);
	for (i = 0; i < 3; i++) {
		if (on[i] < 0)
			unknown++;
		if (on[i] > 0)
			n += snprintf(list + n, sizeof(list) - n, "%s%s", n ? ", " : "",
				      what[i]);
	}
	if (n)
		snprintf(kernel_desc, sizeof(kernel_desc),
			 "%s, DEBUG kernel: %s on (costs distorted)", u.release, list);
	else if (unknown)
		snprintf(kernel_desc, sizeof(kernel_desc),
			 "%s, debug options unknown (no boot log or debugfs)", u.release);
	else
		snprintf(kernel_desc, sizeof(kernel_desc),
			 "%s, bench kernel: no KASAN/lockdep/kmemleak", u.release);
}

static void kernel_line(void)
{
	printf("   kernel %s\n", kernel_desc);
}

static bool is_hugetlb(const struct backing *b)
{
	return b->page_size > SZ_4K;
}

static struct guest_memfd_backing gmem_backing(const struct backing *b)
{
	struct guest_memfd_backing none = {};

	return is_hugetlb(b) ? guest_memfd_hugetlb_backing(b->page_size) : none;
}

/* Why @b can't back @size bytes now, or NULL. */
static const char *unusable(const struct backing *b, u64 size)
{
	static char why[128];
	struct hugetlb_pool pool;
	struct kvm_vm *vm;
	bool valid;

	if (!is_hugetlb(b))
		return NULL;
	if (!b->shared) {
		vm = gmem_vm_create_barebones();
		valid = vm_guest_memfd_backing_valid(vm, gmem_backing(b));
		kvm_vm_free(vm);
		if (!valid)
			return "not supported by KVM";
	}
	if (!hugetlb_pool_read(b->page_size, &pool))
		return "no pool of this size";
	if (hugetlb_pool_unreserved(&pool) < size / b->page_size) {
		snprintf(why, sizeof(why), "needs %lu free %zukB hugepages, the pool has %lu",
			 size / b->page_size, b->page_size >> 10, hugetlb_pool_unreserved(&pool));
		return why;
	}
	return NULL;
}

/*
 * A guest running @code with @size bytes of @b at GMEM_GUEST_GPA, mapped
 * with 2M pages: private memory on a new guest_memfd, or shared memory on
 * an anonymous hugetlb mapping (g->fd = -1).
 */
static void bench_guest(struct gmem_guest *g, const struct backing *b, u64 size,
			void *code)
{
	const struct gmem_guest_args args = { gmem_backing(b), size };
	const struct vm_shape shape = {
		.mode = VM_MODE_DEFAULT,
		.type = KVM_X86_SW_PROTECTED_VM,
	};

	if (!b->shared) {
		gmem_guest_create(g, code, &args);
		return;
	}
	g->vm = vm_create_shape_with_one_vcpu(shape, &g->vcpu, code);
	g->fd = -1;
	g->gpa = GMEM_GUEST_GPA;
	g->size = size;
	vm_mem_add(g->vm, b->page_size == SZ_1G ? VM_MEM_SRC_ANONYMOUS_HUGETLB_1GB :
		   VM_MEM_SRC_ANONYMOUS_HUGETLB_2MB, g->gpa, GMEM_GUEST_SLOT,
		   size / g->vm->page_size, 0, -1, 0);
	virt_map_level(g->vm, g->gpa, g->gpa, size, PG_LEVEL_2M);
}

static void bench_guest_destroy(struct gmem_guest *g)
{
	kvm_vm_free(g->vm);
	if (g->fd >= 0)
		close(g->fd);
}

/* ------------------------------------------------------------------------ */
/* touch                                                                    */
/* ------------------------------------------------------------------------ */

static void guest_touch(u64 gpa, u64 size)
{
	u64 off;

	GUEST_SYNC(1);
	for (off = 0; off < size; off += SZ_4K)
		WRITE_ONCE(*(u64 *)(gpa + off), off);
	GUEST_DONE();
}

struct touch_result {
	const char *skipped;
	struct timing time, teardown;
	s64 faults;
	struct mapping_levels maps;
	struct hugetlb_pool before, closed;
};

static void touch_once(const struct backing *b, u64 size, struct touch_result *res)
{
	struct mapping_levels before, after;
	struct gmem_guest g;
	double start;
	s64 faults;

	bench_guest(&g, b, size, guest_touch);
	vcpu_args_set(g.vcpu, 2, g.gpa, size);
	gmem_guest_run(g.vcpu, 1);
	mapping_levels_read(g.vm, &before);
	faults = kvm_debugfs_stat(NULL, "pf_taken");

	start = now_seconds();
	gmem_guest_run(g.vcpu, 0);
	timing_add(&res->time, now_seconds() - start);

	res->faults = faults < 0 ? -1 : kvm_debugfs_stat(NULL, "pf_taken") - faults;
	mapping_levels_read(g.vm, &after);
	res->maps.pages_4k = after.pages_4k - before.pages_4k;
	res->maps.pages_2m = after.pages_2m - before.pages_2m;
	res->maps.pages_1g = after.pages_1g - before.pages_1g;

	start = now_seconds();
	bench_guest_destroy(&g);
	timing_add(&res->teardown, now_seconds() - start);
	if (is_hugetlb(b))
		hugetlb_pool_read(b->page_size, &res->closed);
}

static void touch(const struct backing *b, u64 size, struct touch_result *res)
{
	int rep;

	memset(res, 0, sizeof(*res));
	timing_init(&res->time);
	timing_init(&res->teardown);
	res->skipped = unusable(b, size);
	if (res->skipped)
		return;
	if (is_hugetlb(b))
		hugetlb_pool_read(b->page_size, &res->before);
	for (rep = 0; rep < reps; rep++)
		touch_once(b, size, res);
}

static void touch_header(void)
{
	printf("%-15s %6s %8s %6s %6s %8s %7s %6s %6s %7s %9s  %s\n",
	       "backing", "MiB", "touch(s)", "spread", "ratio", "faults", "maps4k",
	       "maps2m", "maps1g", "huge", "teardown", "pool free/resv");
}

/* One row; the ratio is to @ref seconds, none if 0. */
static void touch_row(const struct backing *b, u64 size, const struct touch_result *r,
		      double ref, const char *table)
{
	u64 huge = r->maps.pages_2m * SZ_2M + r->maps.pages_1g * SZ_1G;
	char ratio[16] = "-", pool[48] = "-";

	if (r->skipped) {
		printf("%-15s %6lu  skipped: %s\n", b->name, size >> 20, r->skipped);
		return;
	}
	if (ref > 0)
		snprintf(ratio, sizeof(ratio), "%.3f", r->time.min / ref);
	if (is_hugetlb(b))
		snprintf(pool, sizeof(pool), "%lu/%lu -> %lu/%lu", r->before.free,
			 r->before.resv, r->closed.free, r->closed.resv);
	printf("%-15s %6lu %8.3f %5.0f%% %6s %8ld %7lu %6lu %6lu %6.1f%% %9.3f  %s\n",
	       b->name, size >> 20, r->time.min, spread(&r->time), ratio, r->faults,
	       r->maps.pages_4k, r->maps.pages_2m, r->maps.pages_1g,
	       100.0 * huge / size, r->teardown.min, pool);
	if (strncmp(table, "grow-", 5))
		bench_data(table, "%s %.6f %.6f", b->label, r->time.min, r->time.max);
	else
		bench_data(table, "%lu %.6f %.6f", size >> 30, r->time.min / (size >> 30),
			   r->time.max / (size >> 30));
}

static void bench_touch(void)
{
	struct touch_result res[NR_BACKINGS], sres[ARRAY_SIZE(shared_backings)], grow;
	double per_gib, ref = 0;
	char table[32];
	int i, j;

	printf("\n== touch: one vCPU writes every 4K page of its memory once (best of %d)\n",
	       reps);
	kernel_line();
	touch_header();
	/* Each row against the 4K guest_memfd row. */
	for (i = 0; i < NR_BACKINGS; i++) {
		if (!selected[i])
			continue;
		touch(&backings[i], touch_size, &res[i]);
		if (!i && !res[0].skipped)
			ref = res[0].time.min;
		touch_row(&backings[i], touch_size, &res[i], ref, "touch");
	}
	/* The shared memory of the hugetlb rows' page sizes. */
	for (i = 0; i < ARRAY_SIZE(shared_backings); i++) {
		if (!selected[i + 1])
			continue;
		touch(&shared_backings[i], touch_size, &sres[i]);
		touch_row(&shared_backings[i], touch_size, &sres[i], ref, "touch");
	}
	for (i = 0; i < ARRAY_SIZE(shared_backings); i++) {
		const struct touch_result *p = &res[i + 1], *s = &sres[i];

		if (!selected[i + 1] || p->skipped || s->skipped)
			continue;
		printf("private/shared %s: %.3f (best %.3f s / %.3f s; slowest %.3f s / %.3f s)\n",
		       backings[i + 1].option, p->time.min / s->time.min, p->time.min,
		       s->time.min, p->time.max, s->time.max);
		bench_data("ratio", "private/shared-%s %.4f", backings[i + 1].option,
			   p->time.min / s->time.min);
	}
	printf("private: guest_memfd bound as private memory; shared mmap: a normal memslot on an\n"
	       "anonymous MAP_HUGETLB mapping (what VMMs use today), same VM type; ratio: time /\n"
	       "the 4K guest_memfd row's; faults: KVM page faults (pf_taken); maps*: new mappings\n"
	       "per level; huge: share mapped 2M or 1G; teardown: VM and file, fastest;\n"
	       "pool: before -> after the last close\n");

	if (!nr_sizes)
		return;
	printf("\n== touch, growing: ratio = time per GiB / time per GiB at %lu GiB\n",
	       sizes_gib[0]);
	kernel_line();
	touch_header();
	for (i = 1; i < NR_BACKINGS; i++) {
		if (!selected[i])
			continue;
		snprintf(table, sizeof(table), "grow-%s", backings[i].label);
		for (j = 0, per_gib = 0; j < nr_sizes; j++) {
			touch(&backings[i], sizes_gib[j] << 30, &grow);
			if (!grow.skipped && !j)
				per_gib = grow.time.min / sizes_gib[j];
			touch_row(&backings[i], sizes_gib[j] << 30, &grow,
				  per_gib * sizes_gib[j], table);
		}
	}
}

/* ------------------------------------------------------------------------ */
/* falloc                                                                   */
/* ------------------------------------------------------------------------ */

struct falloc_result {
	struct timing falloc, fault, zero, closing, unmap;
};

static void falloc_once(struct kvm_vm *vm, const struct backing *b, u64 size,
			struct falloc_result *r)
{
	const int huge = MAP_HUGETLB | (__builtin_ctzl(b->page_size) << MAP_HUGE_SHIFT);
	int fd = vm_create_guest_memfd_backing(vm, size, gmem_backing(b));
	double t = now_seconds();
	u64 off;
	char *p;

	gmem_allocate(fd, 0, size);
	timing_add(&r->falloc, now_seconds() - t);
	t = now_seconds();
	close(fd);
	timing_add(&r->closing, now_seconds() - t);

	p = kvm_mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | huge, -1);
	t = now_seconds();
	for (off = 0; off < size; off += b->page_size)
		p[off] = 1;
	timing_add(&r->fault, now_seconds() - t);
	t = now_seconds();
	memset(p, 0, size);
	timing_add(&r->zero, now_seconds() - t);
	t = now_seconds();
	kvm_munmap(p, size);
	timing_add(&r->unmap, now_seconds() - t);
}

static void bench_falloc(void)
{
	struct kvm_vm *vm = gmem_vm_create_barebones();
	struct falloc_result r;
	char table[32];
	int i, j, rep;

	printf("\n== falloc: fallocate() of the whole file against its floors (best of %d)\n",
	       reps);
	kernel_line();
	printf("%-15s %4s %9s %6s %7s %9s %7s %9s %7s %8s %8s\n", "backing", "GiB",
	       "falloc(s)", "spread", "GiB/s", "fault(s)", "ratio", "memset(s)", "ratio",
	       "close(s)", "unmap(s)");
	for (i = 1; i < NR_BACKINGS; i++) {
		const struct backing *b = &backings[i];

		if (!selected[i])
			continue;
		snprintf(table, sizeof(table), "alloc-%s", b->label);
		for (j = 0; j < nr_sizes; j++) {
			u64 size = sizes_gib[j] << 30;
			const char *why = unusable(b, size);

			if (why) {
				printf("%-15s %4lu  skipped: %s\n", b->name, sizes_gib[j], why);
				continue;
			}
			timing_init(&r.falloc);
			timing_init(&r.fault);
			timing_init(&r.zero);
			timing_init(&r.closing);
			timing_init(&r.unmap);
			for (rep = 0; rep < reps; rep++)
				falloc_once(vm, b, size, &r);
			printf("%-15s %4lu %9.3f %5.0f%% %7.2f", b->name, sizes_gib[j],
			       r.falloc.min, spread(&r.falloc), sizes_gib[j] / r.falloc.min);
			printf(" %9.3f %7.3f %9.3f %7.3f %8.3f %8.3f\n", r.fault.min,
			       r.falloc.min / r.fault.min, r.zero.min, r.falloc.min / r.zero.min,
			       r.closing.min, r.unmap.min);
			bench_data(table, "%lu %.6f %.6f %.6f %.6f", sizes_gib[j],
				   r.falloc.min / sizes_gib[j], r.falloc.max / sizes_gib[j],
				   r.fault.min / sizes_gib[j], r.zero.min / sizes_gib[j]);
		}
	}
	printf("fault: a MAP_HUGETLB mapping faulting in as many hugepages (the kernel zeroes\n"
	       "them); memset: memset(0) of it once faulted in; ratio: falloc / that floor;\n"
	       "close: of the allocated file; unmap: munmap() of the mapping\n");
	kvm_vm_free(vm);
}

/* ------------------------------------------------------------------------ */
/* punch                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * The vCPU re-touches the STORM_WINDOW subpages that start STORM_MARGIN
 * past the punch cursor: it keeps refaulting what the punches zap but must
 * not refill a punched subpage, which would keep the hugepage from going
 * back to the pool.  A fault in a folio being punched is retried until the
 * punch ends, so the vCPU can stay on one access for many punches: it
 * claims the subpage it accesses, and the host doesn't punch that one.
 */
#define STORM_MARGIN	64
#define STORM_WINDOW	256
/* PAUSE now and then, so that single-threaded TCG runs the host too. */
#define STORM_PAUSE	16
#define STORM_PATTERN(i)	(0xb5b5000000000000ULL | (i))

/* In normal (slot 0) memory, shared by host and guest. */
struct storm_shared {
	u64 cursor;	/* host: subpages whose punch started */
	u64 stop;
	u64 target;	/* guest: 1 + the subpage it accesses, or 0 */
	u64 touches, zeros;
} __aligned(64);

static struct storm_shared storm_shared;

static void guest_storm(u64 gpa, u64 nr)
{
	struct storm_shared *s = &storm_shared;
	u64 i, p, val, *w;

	for (i = 0; i < nr; i++)
		WRITE_ONCE(*(u64 *)(gpa + i * SZ_4K), STORM_PATTERN(i));
	GUEST_SYNC(1);

	for (i = 0; !READ_ONCE(s->stop); i++) {
		if (!(i % STORM_PAUSE))
			cpu_relax();
		p = READ_ONCE(s->cursor) + STORM_MARGIN + i % STORM_WINDOW;
		if (p >= nr)
			continue;
		WRITE_ONCE(s->target, p + 1);
		/* Claim p before checking that its punch hasn't started. */
		smp_mb();
		if (p < READ_ONCE(s->cursor)) {
			WRITE_ONCE(s->target, 0);
			continue;
		}
		w = (u64 *)(gpa + p * SZ_4K);
		val = READ_ONCE(*w);
		__GUEST_ASSERT(val == STORM_PATTERN(p) || !val,
			       "subpage %lu holds 0x%lx", p, val);
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
	gmem_guest_run(arg, 0);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The median of @n costs, sorted in place. */
static double median(double *t, u64 n)
{
	qsort(t, n, sizeof(*t), cmp_double);
	return t[n / 2];
}

/* How many subpages of a file of @size a storm punches (-P: the first N). */
static u64 storm_punches(u64 size)
{
	u64 nr = size / SZ_4K;

	return punch_limit ? min(nr, punch_limit) : nr;
}

/* Whether a storm over @size stops before the hugepage would go back. */
static bool storm_partial(u64 size)
{
	return storm_punches(size) < size / SZ_4K;
}

struct callbacks {
	u64 punch, release, free, lost;
	unsigned int free_order;
};

struct storm_result {
	struct mapping_levels mapped;	/* after the guest touched it all */
	u64 returned;			/* the punch that gave the page back */
	s64 faults;
	u64 touches, zeros, waits;
};

/*
 * Punch every 4K of a guest-touched file of @b and @size (with -P, of its
 * first subpages), in order, while the vCPU touches ahead of the punches;
 * @times gets each punch's cost.  The guest touches only what the storm
 * reaches.  With @cb, trace and count the callbacks.
 */
static void punch_storm(const struct backing *b, u64 size, double *times,
			struct callbacks *cb, struct storm_result *r)
{
	u64 nr = storm_punches(size), i, base = 0, free;
	u64 touched = min(size / SZ_4K, nr + STORM_MARGIN + STORM_WINDOW);
	struct hugetlb_pool_reader pool;
	struct gmem_events ev = {};
	struct storm_shared *s;
	struct gmem_guest g;
	pthread_t thread;
	s64 faults;
	double t;

	memset(r, 0, sizeof(*r));
	bench_guest(&g, b, size, guest_storm);
	vcpu_args_set(g.vcpu, 2, g.gpa, touched);
	gmem_guest_run(g.vcpu, 1);
	mapping_levels_read(g.vm, &r->mapped);
	s = addr_gva2hva(g.vm, (gva_t)&storm_shared);
	if (is_hugetlb(b)) {
		hugetlb_pool_reader_open(&pool, b->page_size);
		hugetlb_pool_reader_read(&pool, &base, NULL);
	}
	if (cb)
		gmem_trace_start(GMEM_TRACE_INVALIDATE);
	if (!storm_idle) {
		TEST_ASSERT(!pthread_create(&thread, NULL, storm_vcpu_fn, g.vcpu),
			    "pthread_create()");
		for (t = now_seconds(); !READ_ONCE(s->touches);)
			TEST_ASSERT(now_seconds() - t < 60, "the vCPU doesn't run");
	}

	faults = kvm_debugfs_stat(NULL, "pf_taken");
	for (i = 0; i < nr; i++) {
		WRITE_ONCE(s->cursor, i + 1);
		/* Pairs with the guest's claim of its target. */
		smp_mb();
		if (READ_ONCE(s->target) == i + 1) {
			r->waits++;
			while (READ_ONCE(s->target) == i + 1)
				cpu_relax();
		}
		t = now_seconds();
		gmem_punch(g.fd, i * SZ_4K, SZ_4K);
		times[i] = now_seconds() - t;
		if (is_hugetlb(b) && !r->returned) {
			hugetlb_pool_reader_read(&pool, &free, NULL);
			if (free != base)
				r->returned = i + 1;
		}
	}
	r->faults = faults < 0 ? -1 : kvm_debugfs_stat(NULL, "pf_taken") - faults;
	WRITE_ONCE(s->stop, 1);
	if (!storm_idle)
		pthread_join(thread, NULL);
	r->touches = READ_ONCE(s->touches);
	r->zeros = READ_ONCE(s->zeros);

	if (cb) {
		memset(cb, 0, sizeof(*cb));
		cb->lost = gmem_trace_read(&ev);
		gmem_trace_stop();
		for (i = 0; i < ev.nr; i++) {
			cb->punch += ev.ev[i].kind == GMEM_PUNCH;
			cb->release += ev.ev[i].kind == GMEM_RELEASE;
			if (ev.ev[i].kind == GMEM_FREE) {
				cb->free++;
				cb->free_order = ev.ev[i].order;
			}
		}
		gmem_events_free(&ev);
		tracefs_write("trace", "");
	}
	bench_guest_destroy(&g);
	if (is_hugetlb(b))
		hugetlb_pool_reader_close(&pool);
}

struct storm_row {
	const char *skipped;
	u64 nr;
	struct timing median;
	double first, final, total;
	struct storm_result res;
	u64 zeros, waits;
	bool returned_varies;
	struct callbacks cb;
	/* Per-punch costs of the repetition with the lowest median. */
	double *best;
};

static void storm_row_run(const struct backing *b, u64 size, struct storm_row *row)
{
	const bool traced = gmem_trace_available(GMEM_TRACE_INVALIDATE);
	struct storm_result r;
	double *times, *sorted, total, med;
	u64 k;
	int rep;

	memset(row, 0, sizeof(*row));
	timing_init(&row->median);
	row->nr = storm_punches(size);
	row->skipped = unusable(b, size);
	if (row->skipped)
		return;
	times = calloc(row->nr, sizeof(*times));
	sorted = calloc(row->nr, sizeof(*sorted));
	row->best = calloc(row->nr, sizeof(*times));
	TEST_ASSERT(times && sorted && row->best, "out of memory");

	/* The first storm is traced: a tracepoint costs microseconds. */
	for (rep = 0; rep < reps; rep++) {
		punch_storm(b, size, times, rep || !traced ? NULL : &row->cb, &r);
		for (k = 0, total = 0; k < row->nr; k++)
			total += times[k];
		/* The final punch frees the hugepage: not in the median. */
		memcpy(sorted, times, (row->nr - 1) * sizeof(*sorted));
		med = row->nr > 1 ? median(sorted, row->nr - 1) : times[0];
		if (!rep) {
			row->first = times[0];
			row->final = times[row->nr - 1];
			row->total = total;
			row->res = r;
		}
		row->first = min(row->first, times[0]);
		row->final = min(row->final, times[row->nr - 1]);
		row->total = min(row->total, total);
		row->returned_varies |= r.returned != row->res.returned;
		row->zeros += r.zeros;
		row->waits += r.waits;
		if (!rep || med < row->median.min) {
			memcpy(row->best, times, row->nr * sizeof(*times));
			row->res.faults = r.faults;
			row->res.touches = r.touches;
		}
		timing_add(&row->median, med);
	}
	free(times);
	free(sorted);
}

#define PUNCH_BINS	128

/* The per-punch costs of the best storm, as medians of PUNCH_BINS bins. */
static void storm_curve(const char *label, const struct storm_row *row)
{
	u64 nr = row->nr - 1, bins = min_t(u64, PUNCH_BINS, nr), k, from, to;
	double *tmp = malloc(nr * sizeof(*tmp));
	char table[64];

	TEST_ASSERT(tmp, "out of memory");
	snprintf(table, sizeof(table), "curve-%s", label);
	for (k = 0; k < bins; k++) {
		from = k * nr / bins;
		to = (k + 1) * nr / bins;
		memcpy(tmp, row->best + from, (to - from) * sizeof(*tmp));
		bench_data(table, "%.6f %.3f", (double)(from + to) / 2 / row->nr,
			   median(tmp, to - from) * 1e6);
	}
	bench_data(table, "%.6f %.3f", 1.0, row->final * 1e6);
	free(tmp);
}

static void storm_print(const char *region, const struct backing *b,
			const struct storm_row *row, const struct storm_row *ref)
{
	char mapped[48], returned[24] = "-", vs[16] = "-", tot[16] = "-", label[48];

	if (row->skipped) {
		printf("%-6s %-15s skipped: %s\n", region, b->name, row->skipped);
		return;
	}
	snprintf(mapped, sizeof(mapped), "%lu/%lu/%lu", row->res.mapped.pages_4k,
		 row->res.mapped.pages_2m, row->res.mapped.pages_1g);
	if (is_hugetlb(b) && storm_partial(b->page_size))
		snprintf(returned, sizeof(returned), "partial");
	else if (is_hugetlb(b) && row->returned_varies)
		snprintf(returned, sizeof(returned), "varies");
	else if (is_hugetlb(b) && !row->res.returned)
		snprintf(returned, sizeof(returned), "never");
	else if (is_hugetlb(b))
		snprintf(returned, sizeof(returned), "%lu", row->res.returned);
	if (ref && !ref->skipped) {
		snprintf(vs, sizeof(vs), "%.2f", row->median.min / ref->median.min);
		snprintf(tot, sizeof(tot), "%.2f", row->total / ref->total);
	}
	printf("%-6s %-15s %7lu %15s %7.0f %7.1f %5.0f%% %7.0f %8.2f %6s %6s %8s",
	       region, b->name, row->nr, mapped, row->first * 1e6, row->median.min * 1e6,
	       spread(&row->median), row->final * 1e6, row->total, vs, tot, returned);
	printf(" %7lu %7lu %4lu/%-2u %8ld %8lu %5lu\n", row->cb.punch, row->cb.release,
	       row->cb.free, row->cb.free_order, row->res.faults, row->res.touches,
	       row->waits);
	if (row->zeros)
		printf("  %lu subpages the vCPU touched read zero: it refilled punched subpages\n",
		       row->zeros);
	if (row->cb.lost)
		printf("  the trace buffer lost %lu callbacks\n", row->cb.lost);
	snprintf(label, sizeof(label), "%s-in-%s", b->label, region);
	bench_data("punch", "%s %.3f %.3f %.3f %.3f %.4f %lu %lu %lu %lu", label,
		   row->median.min * 1e6, row->median.max * 1e6, row->first * 1e6,
		   row->final * 1e6, row->total, row->res.returned, row->cb.punch,
		   row->cb.release, row->cb.free);
	storm_curve(label, row);
}

static void bench_punch(void)
{
	struct timing meds[NR_BACKINGS][2] = {};
	double vs4k[NR_BACKINGS] = {};
	char what[64] = "every 4K";
	u64 kb = 4096;
	int i;

	if (punch_limit)
		snprintf(what, sizeof(what), "the first %lu 4K subpages", punch_limit);
	printf("\n== punch: PUNCH_HOLE of %s of a bound, guest-touched file, in order,\n"
	       "   %s (best of %d; times in us)\n", what,
	       storm_idle ? "with the vCPU stopped (-V)" :
	       "while a vCPU re-touches the memory ahead", reps);
	kernel_line();
	printf("%-6s %-15s %7s %15s %7s %7s %6s %7s %8s %6s %6s %8s %7s %7s %7s %8s %8s %5s\n",
	       "region", "backing", "punches", "mapped 4k/2m/1g", "first", "median",
	       "spread", "final", "total(s)", "med/4K", "tot/4K", "returned", "cb:pun",
	       "cb:rel", "free", "vcpu:pf", "touches", "waits");

	/* Room for the callbacks of the largest storm: two per punch. */
	for (i = 1; i < NR_BACKINGS; i++) {
		if (selected[i])
			kb = max_t(u64, kb, backings[i].page_size / SZ_4K * 2 * 64 / 1024);
	}
	if (gmem_trace_available(GMEM_TRACE_INVALIDATE))
		gmem_trace_set_buffer_kb(kb);
	else
		printf("no kvm_gmem_invalidate tracepoint: callbacks not counted\n");

	for (i = 1; i < NR_BACKINGS; i++) {
		const struct backing *b = &backings[i];
		const char *region = b->page_size == SZ_1G ? "1G" : "2M";
		struct storm_row row, ref = {};

		if (!selected[i])
			continue;
		/* The same storm on a 4K guest_memfd of the hugepage's size. */
		if (selected[0]) {
			storm_row_run(&backings[0], b->page_size, &ref);
			storm_print(region, &backings[0], &ref, NULL);
		}
		storm_row_run(b, b->page_size, &row);
		storm_print(region, b, &row, selected[0] ? &ref : NULL);
		if (selected[0] && !ref.skipped && !row.skipped) {
			vs4k[i] = row.median.min / ref.median.min;
			meds[i][0] = row.median;
			meds[i][1] = ref.median;
			bench_data("ratio", "punch-median-hugetlb/4K-%s %.4f", region, vs4k[i]);
		}
		free(ref.best);
		free(row.best);
	}
	printf("region: a guest_memfd of one 2M or 1G hugepage, private memory of a guest\n"
	       "that wrote all of it first (mapped: KVM mappings then); during the storm a\n"
	       "vCPU re-touches the %d subpages %d past the cursor, so each punch zaps and\n"
	       "flushes a live mapping.  first, final: the first and the last punch, fastest;\n"
	       "median: of all but the final punch, lowest, and spread of the medians; total:\n"
	       "the storm, fastest; med/4K, tot/4K: against the 4K guest_memfd row; returned:\n"
	       "the punch after which the pool had its hugepage back (partial: -P stops the\n"
	       "storm before the last subpage, the guest touched only what it reaches, and\n"
	       "final is just the last punch); cb: kvm_gmem_invalidate\n"
	       "callbacks (punch, release, free/order of the last free) of the first, traced\n"
	       "repetition; vcpu:pf: KVM page faults during the storm and the vCPU's touches\n"
	       "then; waits: punches that waited for the vCPU's access\n",
	       STORM_WINDOW, STORM_MARGIN);
	for (i = 1; i < NR_BACKINGS; i++) {
		if (vs4k[i])
			printf("per punch, hugetlb / 4K guest_memfd (median), %s region: %.3f\n"
			       "  (lowest medians %.1f / %.1f us, highest %.1f / %.1f us)\n",
			       backings[i].page_size == SZ_1G ? "1G" : "2M", vs4k[i],
			       meds[i][0].min * 1e6, meds[i][1].min * 1e6,
			       meds[i][0].max * 1e6, meds[i][1].max * 1e6);
	}
}

/* ------------------------------------------------------------------------ */
/* dmap                                                                     */
/* ------------------------------------------------------------------------ */

#define DMAP_PUNCHES	64
#define DMAP_BUSY	8

/* Another guest whose vCPUs keep busy until stopped. */
struct busy_guest {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu[DMAP_BUSY];
	pthread_t thread[DMAP_BUSY];
};

static void guest_spin(void)
{
	u64 i;

	for (;;) {
		for (i = 0; i < 100000; i++)
			cpu_relax();
		GUEST_SYNC(0);
	}
}

static bool busy_stopping;

static void *busy_vcpu_fn(void *arg)
{
	struct kvm_vcpu *vcpu = arg;

	while (!READ_ONCE(busy_stopping))
		vcpu_run(vcpu);
	return NULL;
}

static void busy_start(struct busy_guest *bg)
{
	int i;

	WRITE_ONCE(busy_stopping, false);
	bg->vm = vm_create_with_vcpus(DMAP_BUSY, guest_spin, bg->vcpu);
	for (i = 0; i < DMAP_BUSY; i++)
		pthread_create(&bg->thread[i], NULL, busy_vcpu_fn, bg->vcpu[i]);
}

static void busy_stop(struct busy_guest *bg)
{
	int i;

	WRITE_ONCE(busy_stopping, true);
	for (i = 0; i < DMAP_BUSY; i++)
		pthread_join(bg->thread[i], NULL);
	kvm_vm_free(bg->vm);
}

struct dmap_result {
	struct timing alloc, punch, free;
};

/*
 * One hugepage of @b, with or without NO_DIRECT_MAP, allocated by
 * fallocate() and written by a guest; then DMAP_PUNCHES 4K punches spread
 * over it (the median counts) and the punch of the rest, which frees it.
 */
static void dmap_once(const struct backing *b, bool no_direct_map,
		      struct dmap_result *res)
{
	struct gmem_guest_args args = { gmem_backing(b), b->page_size };
	const u64 stride = b->page_size / SZ_4K / DMAP_PUNCHES;
	double t[DMAP_PUNCHES], start;
	struct gmem_guest g;
	int i;

	if (no_direct_map)
		args.backing.flags |= GUEST_MEMFD_FLAG_NO_DIRECT_MAP;
	gmem_guest_create(&g, guest_touch, &args);
	start = now_seconds();
	gmem_allocate(g.fd, 0, b->page_size);
	timing_add(&res->alloc, now_seconds() - start);
	vcpu_args_set(g.vcpu, 2, g.gpa, b->page_size);
	gmem_guest_run(g.vcpu, 1);
	gmem_guest_run(g.vcpu, 0);

	for (i = 0; i < DMAP_PUNCHES; i++) {
		start = now_seconds();
		gmem_punch(g.fd, (i * stride + 1) * SZ_4K, SZ_4K);
		t[i] = now_seconds() - start;
	}
	qsort(t, DMAP_PUNCHES, sizeof(t[0]), cmp_double);
	timing_add(&res->punch, t[DMAP_PUNCHES / 2]);

	start = now_seconds();
	gmem_punch(g.fd, 0, b->page_size);
	timing_add(&res->free, now_seconds() - start);
	gmem_guest_destroy(&g);
}

static void dmap_print_directmap(const char *when)
{
	u64 kb[3];

	direct_map_kb(kb);
	printf("DirectMap %s: 4k: %lu kB 2M: %lu kB 1G: %lu kB\n", when,
	       kb[0], kb[1], kb[2]);
}

static void bench_dmap(void)
{
	struct busy_guest bg;
	int i, load, nd, r;

	printf("\n== dmap: GUEST_MEMFD_FLAG_NO_DIRECT_MAP against the same file without it:\n"
	       "   a 4K punch (median of %d) and the free of the hugepage (best of %d;\n"
	       "   times in us)\n", DMAP_PUNCHES, reps);
	kernel_line();
	/* The RMP model splits the direct map of 4K updates: not compared. */
	if (gmem_rmp_model_set("off"))
		printf("RMP model off for these VMs\n");
	dmap_print_directmap("before");
	printf("%-6s %-13s %-14s %10s %10s %10s %8s %8s %8s %8s\n", "region",
	       "load", "file", "alloc", "punch", "free", "alloc/-", "punch/-",
	       "free/-", "a+f/-");
	for (i = 1; i < NR_BACKINGS; i++) {
		const struct backing *b = &backings[i];
		const char *region = b->page_size == SZ_1G ? "1G" : "2M";
		struct kvm_vm *vm;
		const char *why;
		bool ok;

		if (!selected[i])
			continue;
		why = unusable(b, b->page_size);
		vm = gmem_vm_create_barebones();
		ok = vm_guest_memfd_flags_valid(vm, gmem_backing(b).flags |
						GUEST_MEMFD_FLAG_NO_DIRECT_MAP);
		kvm_vm_free(vm);
		if (!why && !ok)
			why = "no GUEST_MEMFD_FLAG_NO_DIRECT_MAP";
		if (why) {
			printf("%-6s skipped: %s\n", region, why);
			continue;
		}
		for (load = 0; load < 2; load++) {
			struct dmap_result res[2] = {};
			const char *lname = load ? "8 busy vCPUs" : "idle";

			if (load)
				busy_start(&bg);
			for (nd = 0; nd < 2; nd++) {
				timing_init(&res[nd].alloc);
				timing_init(&res[nd].punch);
				timing_init(&res[nd].free);
			}
			/* Interleaved, so that drift hits both alike. */
			for (r = 0; r < reps; r++)
				for (nd = 0; nd < 2; nd++)
					dmap_once(b, nd, &res[nd]);
			if (load)
				busy_stop(&bg);
			for (nd = 0; nd < 2; nd++)
				printf("%-6s %-13s %-14s %10.1f %10.1f %10.1f %8.3f %8.3f %8.3f %8.3f\n",
				       region, lname, nd ? "no-direct-map" : "direct map",
				       res[nd].alloc.min * 1e6, res[nd].punch.min * 1e6,
				       res[nd].free.min * 1e6,
				       res[nd].alloc.min / res[0].alloc.min,
				       res[nd].punch.min / res[0].punch.min,
				       res[nd].free.min / res[0].free.min,
				       (res[nd].alloc.min + res[nd].free.min) /
				       (res[0].alloc.min + res[0].free.min));
			bench_data("ratio", "dmap-punch-%s-%s %.4f", region,
				   load ? "busy" : "idle",
				   res[1].punch.min / res[0].punch.min);
			bench_data("ratio", "dmap-free-%s-%s %.4f", region,
				   load ? "busy" : "idle",
				   res[1].free.min / res[0].free.min);
			bench_data("ratio", "dmap-alloc+free-%s-%s %.4f", region,
				   load ? "busy" : "idle",
				   (res[1].alloc.min + res[1].free.min) /
				   (res[0].alloc.min + res[0].free.min));
		}
	}
	dmap_print_directmap("after");
	gmem_rmp_model_set(NULL);
	printf("alloc: fallocate() of the hugepage (zeroes it; with the flag, then takes it\n"
	       "out of the direct map); punch: a 4K punch of the guest-touched hugepage\n"
	       "(zeroes the subpage: through a per-CPU temporary mapping with the flag);\n"
	       "free: the punch that frees it (with the flag: wipe, map back, collapse;\n"
	       "without, the next allocation zeroes it: compare a+f, alloc + free);\n"
	       "x/-: against the file without the flag in the same load; busy: %d vCPUs\n"
	       "of another guest spin meanwhile\n", DMAP_BUSY);
}

/* ------------------------------------------------------------------------ */
/* meta                                                                     */
/* ------------------------------------------------------------------------ */

static void bench_meta(void)
{
	struct kvm_vm *vm = gmem_vm_create_barebones();
	struct gmem_fdinfo created, allocated, holed;
	u64 gib, off;
	int i, j, fd;

	printf("\n== meta: hugetlb metadata of a guest_memfd, bytes per GiB of file\n"
	       "   (fdinfo hugetlb_metadata_bytes: what the kernel's allocators allocated)\n");
	kernel_line();
	printf("%-15s %4s %10s %12s %12s %8s\n", "backing", "GiB", "created", "fallocated",
	       "4K-holed", "maps");
	for (i = 1; i < NR_BACKINGS; i++) {
		const struct backing *b = &backings[i];

		if (!selected[i])
			continue;
		/* The largest size that fits, 1 GiB without a size list. */
		for (j = nr_sizes - 1; j >= -1; j--) {
			gib = j >= 0 ? sizes_gib[j] : 1;
			if (unusable(b, gib << 30))
				continue;
			fd = vm_create_guest_memfd_backing(vm, gib << 30, gmem_backing(b));
			gmem_fdinfo_read(fd, &created);
			gmem_allocate(fd, 0, gib << 30);
			gmem_fdinfo_read(fd, &allocated);
			for (off = 0; off < gib << 30; off += b->page_size)
				gmem_punch(fd, off, SZ_4K);
			gmem_fdinfo_read(fd, &holed);
			close(fd);
			printf("%-15s %4lu %10lu %12lu %12lu %8ld\n", b->name, gib,
			       created.metadata_bytes / gib, allocated.metadata_bytes / gib,
			       holed.metadata_bytes / gib,
			       holed.has_subpage_maps ? (long)holed.subpage_maps : -1L);
			bench_data("meta", "%s %lu %lu %lu %lu", b->label, gib,
				   created.metadata_bytes / gib, allocated.metadata_bytes / gib,
				   holed.metadata_bytes / gib);
			break;
		}
	}
	printf("created: after KVM_CREATE_GUEST_MEMFD; fallocated: after fallocate() of it all;\n"
	       "4K-holed: after punching one 4K subpage of every hugepage; maps: subpage maps\n"
	       "then (-1: not in fdinfo); xarray nodes are not counted\n");
	kvm_vm_free(vm);
}

/* ------------------------------------------------------------------------ */
/* mmap                                                                     */
/* ------------------------------------------------------------------------ */

/* A default VM's guest_memfd, as non-confidential VMMs create it. */
#define GMEM_MMAP_FLAGS	(GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED)

/* The guest_memfd rows, on gmem-only memslots in the guest table. */
static const struct backing mmap_backings[] = {
	{ "4K gmem mmap", "4k", "4K-gmem-mmap", SZ_4K },
	{ "2M gmem mmap", "2m", "2M-gmem-mmap", SZ_2M },
	{ "1G gmem mmap", "1g", "1G-gmem-mmap", SZ_1G },
};

/* Anonymous MAP_SHARED | MAP_HUGETLB memory of the hugetlb rows' sizes. */
static const struct backing mmap_hugetlbfs[] = {
	{ "2M hugetlbfs", "2m", "2M-hugetlbfs", SZ_2M, true },
	{ "1G hugetlbfs", "1g", "1G-hugetlbfs", SZ_1G, true },
};

static struct guest_memfd_backing mmap_backing(const struct backing *b, u64 extra)
{
	struct guest_memfd_backing gb = gmem_backing(b);

	gb.flags |= GMEM_MMAP_FLAGS | extra;
	return gb;
}

/* Why @b (with b->shared: its hugetlbfs twin) can't give @size bytes now. */
static const char *mmap_unusable(const struct backing *b, u64 size)
{
	struct backing pool_only = *b;
	struct kvm_vm *vm;
	bool valid = true;

	if (!b->shared) {
		vm = vm_create_barebones();
		valid = vm_guest_memfd_backing_valid(vm, mmap_backing(b, 0));
		kvm_vm_free(vm);
	}
	if (!valid)
		return "no such guest_memfd with MMAP | INIT_SHARED on default VMs";
	pool_only.shared = true;
	return unusable(&pool_only, size);
}

/* Memory mapped MAP_SHARED by the VMM: a guest_memfd's (fd >= 0) or not. */
struct mmap_mem {
	int fd;
	u8 *mem;
	u64 size;
};

/*
 * @size bytes of @b: a guest_memfd of @vm with GMEM_MMAP_FLAGS | @extra,
 * or with b->shared anonymous hugetlb memory; 0 or the errno of
 * KVM_CREATE_GUEST_MEMFD.
 */
static int mmap_mem_create(struct mmap_mem *m, struct kvm_vm *vm,
			   const struct backing *b, u64 size, u64 extra)
{
	const int huge = MAP_HUGETLB | (__builtin_ctzl(b->page_size) << MAP_HUGE_SHIFT);

	m->size = size;
	m->fd = -1;
	if (b->shared) {
		m->mem = kvm_mmap(size, PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS | huge, -1);
		return 0;
	}
	m->fd = __vm_create_guest_memfd_backing(vm, size, mmap_backing(b, extra));
	if (m->fd < 0)
		return errno;
	m->mem = kvm_mmap(size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd);
	/* Else the hugepages would be mapped with PTEs, and KVM's at 4K. */
	TEST_ASSERT(!((uintptr_t)m->mem & (b->page_size - 1)),
		    "mmap() of %s at %p, not aligned to its pages", b->name, m->mem);
	return 0;
}

static void mmap_mem_destroy(struct mmap_mem *m)
{
	kvm_munmap(m->mem, m->size);
	if (m->fd >= 0)
		close(m->fd);
}

/* The VMM writes one byte of each 4K page. */
static void vmm_touch(struct mmap_mem *m)
{
	u64 off;

	for (off = 0; off < m->size; off += SZ_4K)
		WRITE_ONCE(m->mem[off], 1);
}

/*
 * A memslot of the memory at GMEM_GUEST_GPA: gmem-only (KVM maps from the
 * file; userspace_addr is the VMM's mapping, so that it is aligned like
 * the gpa) or an ordinary memslot over the VMM's mapping.  As
 * guest_memfd_hugetlb_mmap_test's guests, out of the library's memslots.
 */
static void mmap_memslot(struct kvm_vm *vm, const struct mmap_mem *m)
{
	if (m->fd >= 0)
		vm_set_user_memory_region2(vm, GMEM_GUEST_SLOT, KVM_MEM_GUEST_MEMFD,
					   GMEM_GUEST_GPA, m->size, m->mem, m->fd, 0);
	else
		vm_set_user_memory_region(vm, GMEM_GUEST_SLOT, 0, GMEM_GUEST_GPA,
					  m->size, m->mem);
	virt_map_level(vm, GMEM_GUEST_GPA, GMEM_GUEST_GPA, m->size, PG_LEVEL_2M);
}

struct vmm_result {
	const char *skipped;
	struct timing time, refault, teardown;
	long faults_min, faults_max;
};

static void vmm_result_init(struct vmm_result *r, const char *skipped)
{
	memset(r, 0, sizeof(*r));
	timing_init(&r->time);
	timing_init(&r->refault);
	timing_init(&r->teardown);
	r->faults_min = LONG_MAX;
	r->skipped = skipped;
}

static void vmm_touch_once(struct kvm_vm *vm, const struct backing *b, u64 size,
			   struct vmm_result *r)
{
	struct mmap_mem m;
	double start;
	long faults;
	int err;

	err = mmap_mem_create(&m, vm, b, size, 0);
	TEST_ASSERT(!err, "KVM_CREATE_GUEST_MEMFD of %s: %s", b->name, strerror(err));
	faults = minor_faults();
	start = now_seconds();
	vmm_touch(&m);
	timing_add(&r->time, now_seconds() - start);
	faults = minor_faults() - faults;
	r->faults_min = min(r->faults_min, faults);
	r->faults_max = max(r->faults_max, faults);
	/* Again, the memory allocated: the user faults alone. */
	TEST_ASSERT(!madvise(m.mem, size, MADV_DONTNEED), "MADV_DONTNEED: %s",
		    strerror(errno));
	start = now_seconds();
	vmm_touch(&m);
	timing_add(&r->refault, now_seconds() - start);
	start = now_seconds();
	mmap_mem_destroy(&m);
	timing_add(&r->teardown, now_seconds() - start);
}

static void vmm_row(const struct backing *b, u64 size, const struct vmm_result *r,
		    const struct vmm_result *ref)
{
	char ratio[16] = "-", reratio[16] = "-", faults[32];

	if (r->skipped) {
		printf("%-15s %6lu  skipped: %s\n", b->name, size >> 20, r->skipped);
		return;
	}
	if (ref && !ref->skipped) {
		snprintf(ratio, sizeof(ratio), "%.3f", r->time.min / ref->time.min);
		snprintf(reratio, sizeof(reratio), "%.3f",
			 r->refault.min / ref->refault.min);
	}
	if (r->faults_min == r->faults_max)
		snprintf(faults, sizeof(faults), "%ld", r->faults_min);
	else
		snprintf(faults, sizeof(faults), "%ld-%ld", r->faults_min, r->faults_max);
	printf("%-15s %6lu %9s %8.3f %5.0f%% %6s %10.3f %5.0f%% %6s %9.3f\n", b->name,
	       size >> 20, faults, r->time.min, spread(&r->time), ratio, r->refault.min,
	       spread(&r->refault), reratio, r->teardown.min);
	bench_data("mmap-vmm", "%s %ld %.6f %.6f %.6f %.6f", b->label, r->faults_min,
		   r->time.min, r->time.max, r->refault.min, r->refault.max);
}

/* The guest table's rows: touch_once() on the memory of mmap_mem_create(). */
static void mmap_guest_once(const struct backing *b, u64 size, struct touch_result *res)
{
	struct mapping_levels before, after;
	struct kvm_vcpu *vcpu;
	struct mmap_mem m;
	struct kvm_vm *vm;
	double start;
	s64 faults;
	int err;

	vm = vm_create_with_one_vcpu(&vcpu, guest_touch);
	err = mmap_mem_create(&m, vm, b, size, 0);
	TEST_ASSERT(!err, "KVM_CREATE_GUEST_MEMFD of %s: %s", b->name, strerror(err));
	mmap_memslot(vm, &m);
	vcpu_args_set(vcpu, 2, GMEM_GUEST_GPA, size);
	gmem_guest_run(vcpu, 1);
	mapping_levels_read(vm, &before);
	faults = kvm_debugfs_stat(NULL, "pf_taken");

	start = now_seconds();
	gmem_guest_run(vcpu, 0);
	timing_add(&res->time, now_seconds() - start);

	res->faults = faults < 0 ? -1 : kvm_debugfs_stat(NULL, "pf_taken") - faults;
	mapping_levels_read(vm, &after);
	res->maps.pages_4k = after.pages_4k - before.pages_4k;
	res->maps.pages_2m = after.pages_2m - before.pages_2m;
	res->maps.pages_1g = after.pages_1g - before.pages_1g;

	start = now_seconds();
	kvm_vm_free(vm);
	mmap_mem_destroy(&m);
	timing_add(&res->teardown, now_seconds() - start);
	if (is_hugetlb(b))
		hugetlb_pool_read(b->page_size, &res->closed);
}

static void touch_result_init(struct touch_result *res, const struct backing *b,
			      const char *skipped)
{
	memset(res, 0, sizeof(*res));
	timing_init(&res->time);
	timing_init(&res->teardown);
	res->skipped = skipped;
	if (!skipped && is_hugetlb(b))
		hugetlb_pool_read(b->page_size, &res->before);
}

/* "NAME: a/b (best a s / b s; slowest a s / b s)", and its bench-data ratio. */
static void ratio_line(const char *what, const char *key, const struct timing *a,
		       const struct timing *b)
{
	printf("%s: %.3f (best %.3f s / %.3f s; slowest %.3f s / %.3f s)\n", what,
	       a->min / b->min, a->min, b->min, a->max, b->max);
	bench_data("ratio", "%s %.4f", key, a->min / b->min);
}

struct dmap_state {
	u64 kb[3];
	s64 removes, restores;
};

static void dmap_state_read(struct dmap_state *s)
{
	direct_map_kb(s->kb);
	s->removes = vmstat_get("gmem_direct_map_removes");
	s->restores = vmstat_get("gmem_direct_map_restores");
}

static const char *dmap_state_str(const struct dmap_state *s, char *buf, size_t len)
{
	snprintf(buf, len, "%lu/%lu/%lu", s->kb[0], s->kb[1], s->kb[2]);
	return buf;
}

/*
 * The life of a VM on @size bytes of @b, a guest_memfd of GMEM_MMAP_FLAGS |
 * @extra: the VMM maps and touches it all, the guest touches it all
 * through a gmem-only memslot, then VM, mapping and file go.  DirectMap
 * before, during (the VM alive) and after; 0 or the errno of the file's
 * creation.
 */
static int dmap_life(const struct backing *b, u64 size, u64 extra,
		     struct dmap_state st[3])
{
	struct kvm_vcpu *vcpu;
	struct mmap_mem m;
	struct kvm_vm *vm;
	int err;

	dmap_state_read(&st[0]);
	vm = vm_create_with_one_vcpu(&vcpu, guest_touch);
	err = mmap_mem_create(&m, vm, b, size, extra);
	if (err) {
		kvm_vm_free(vm);
		return err;
	}
	vmm_touch(&m);
	mmap_memslot(vm, &m);
	vcpu_args_set(vcpu, 2, GMEM_GUEST_GPA, size);
	gmem_guest_run(vcpu, 1);
	gmem_guest_run(vcpu, 0);
	dmap_state_read(&st[1]);
	kvm_vm_free(vm);
	mmap_mem_destroy(&m);
	dmap_state_read(&st[2]);
	return 0;
}

static void bench_mmap_dmap(u64 size)
{
	char s0[64], s1[64], s2[64], label[48];
	struct dmap_state st[3];
	int i, nd, err;
	bool same;

	printf("\n== mmap, secret-free: DirectMap4k/2M/1G (kB) around the life of a VM on\n"
	       "   %lu MiB of guest_memfd with MMAP | INIT_SHARED (| NO_DIRECT_MAP)\n",
	       size >> 20);
	kernel_line();
	printf("%-6s %-14s %-26s %-26s %-26s %5s %9s\n", "pages", "file", "before",
	       "during", "after", "same", "rm/rst");
	for (i = 1; i < ARRAY_SIZE(mmap_backings); i++) {
		const struct backing *b = &mmap_backings[i];
		const char *region = b->page_size == SZ_1G ? "1G" : "2M";
		const char *why;

		if (!selected[i])
			continue;
		why = mmap_unusable(b, size);
		if (why) {
			printf("%-6s skipped: %s\n", region, why);
			continue;
		}
		for (nd = 1; nd >= 0; nd--) {
			const char *file = nd ? "no-direct-map" : "direct map";
			char rm[32] = "-";

			snprintf(label, sizeof(label), "%s-%s", region,
				 nd ? "no-direct-map" : "direct-map");
			err = dmap_life(b, size, nd ? GUEST_MEMFD_FLAG_NO_DIRECT_MAP : 0, st);
			if (err) {
				printf("%-6s %-14s n/a (%s)\n", region, file,
				       err == EINVAL ? "EINVAL" : strerror(err));
				bench_data("mmap-dmap", "%s n/a", label);
				continue;
			}
			same = !memcmp(st[0].kb, st[2].kb, sizeof(st[0].kb));
			if (st[0].removes >= 0 && st[2].restores >= 0)
				snprintf(rm, sizeof(rm), "%ld/%ld",
					 (long)(st[2].removes - st[0].removes),
					 (long)(st[2].restores - st[0].restores));
			printf("%-6s %-14s %-26s %-26s %-26s %5s %9s\n", region, file,
			       dmap_state_str(&st[0], s0, sizeof(s0)),
			       dmap_state_str(&st[1], s1, sizeof(s1)),
			       dmap_state_str(&st[2], s2, sizeof(s2)),
			       same ? "yes" : "NO", rm);
			bench_data("mmap-dmap", "%s %d %lu %lu %lu %lu %lu %lu %lu %lu %lu",
				   label, same, st[0].kb[0], st[0].kb[1], st[0].kb[2],
				   st[1].kb[0], st[1].kb[1], st[1].kb[2],
				   st[2].kb[0], st[2].kb[1], st[2].kb[2]);
		}
	}
	printf("before, during (the guest has touched it all), after (VM, mapping and file\n"
	       "gone): DirectMap4k/2M/1G; same: before == after; the VMM maps the file and\n"
	       "writes every 4K page, then the guest writes every 4K page through a gmem-only\n"
	       "memslot; rm/rst: folios taken out of and put back into the direct map\n"
	       "(gmem_direct_map_removes/restores); n/a: KVM_CREATE_GUEST_MEMFD refused the\n"
	       "flags (NO_DIRECT_MAP with MMAP, or on default VMs)\n");
}

static void bench_mmap(void)
{
	const u64 size = touch_size;
	struct vmm_result vmm[ARRAY_SIZE(mmap_backings)], hfs[ARRAY_SIZE(mmap_hugetlbfs)], warm;
	struct touch_result gres[ARRAY_SIZE(mmap_backings)];
	struct touch_result hres[ARRAY_SIZE(mmap_hugetlbfs)];
	struct kvm_vm *vm;
	char what[64], key[64];
	double ref = 0;
	int i, rep;

	/* The VMM. */
	printf("\n== mmap, VMM: writes a byte to each 4K page of a MAP_SHARED mapping,\n"
	       "   guest_memfd against hugetlbfs of the same pages (best of %d)\n", reps);
	kernel_line();
	printf("%-15s %6s %9s %8s %6s %6s %10s %6s %6s %9s\n", "memory", "MiB", "faults",
	       "touch(s)", "spread", "ratio", "refault(s)", "spread", "ratio", "teardown");
	vm = vm_create_barebones();
	for (i = 1; i < ARRAY_SIZE(mmap_backings); i++) {
		const struct backing *g = &mmap_backings[i], *h = &mmap_hugetlbfs[i - 1];

		if (!selected[i])
			continue;
		vmm_result_init(&vmm[i], mmap_unusable(g, size));
		vmm_result_init(&hfs[i - 1], mmap_unusable(h, size));
		/*
		 * Untimed: the first touch of pool pages has the emulator's
		 * host back them, which would count against the first row.
		 * The pool gives the same pages to the rows after it.
		 */
		if (!hfs[i - 1].skipped) {
			vmm_result_init(&warm, NULL);
			vmm_touch_once(vm, h, size, &warm);
		}
		/* Interleaved, so that drift hits both alike. */
		for (rep = 0; rep < reps; rep++) {
			if (!vmm[i].skipped)
				vmm_touch_once(vm, g, size, &vmm[i]);
			if (!hfs[i - 1].skipped)
				vmm_touch_once(vm, h, size, &hfs[i - 1]);
		}
		vmm_row(g, size, &vmm[i], &hfs[i - 1]);
		vmm_row(h, size, &hfs[i - 1], NULL);
	}
	if (selected[0]) {
		vmm_result_init(&vmm[0], mmap_unusable(&mmap_backings[0], size));
		for (rep = 0; rep < reps && !vmm[0].skipped; rep++)
			vmm_touch_once(vm, &mmap_backings[0], size, &vmm[0]);
		vmm_row(&mmap_backings[0], size, &vmm[0], NULL);
	}
	kvm_vm_free(vm);
	for (i = 1; i < ARRAY_SIZE(mmap_backings); i++) {
		if (!selected[i] || vmm[i].skipped || hfs[i - 1].skipped)
			continue;
		snprintf(what, sizeof(what), "gmem/hugetlbfs %s", mmap_backings[i].option);
		snprintf(key, sizeof(key), "mmap-vmm-gmem/hugetlbfs-%s",
			 mmap_backings[i].option);
		ratio_line(what, key, &vmm[i].time, &hfs[i - 1].time);
		snprintf(what, sizeof(what), "gmem/hugetlbfs %s, refault", mmap_backings[i].option);
		snprintf(key, sizeof(key), "mmap-vmm-refault-gmem/hugetlbfs-%s",
			 mmap_backings[i].option);
		ratio_line(what, key, &vmm[i].refault, &hfs[i - 1].refault);
	}
	printf("gmem mmap: a default VM's guest_memfd (MMAP | INIT_SHARED), mmap(MAP_SHARED);\n"
	       "hugetlbfs: mmap(MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB) of the same page size;\n"
	       "faults: the process's minor faults during the touch (the first, which\n"
	       "allocates and zeroes); refault: the same touch after MADV_DONTNEED of the\n"
	       "whole mapping (the memory stays: mapping faults alone); ratio: time / the\n"
	       "hugetlbfs row's (repetitions interleaved, after an untimed hugetlbfs touch);\n"
	       "teardown: munmap() and close()\n");

	/* The guest. */
	printf("\n== mmap, guest: one vCPU writes every 4K page of a memslot once, gmem-only\n"
	       "   memslots against ordinary memslots over hugetlbfs memory (best of %d)\n",
	       reps);
	kernel_line();
	touch_header();
	if (selected[0]) {
		touch_result_init(&gres[0], &mmap_backings[0],
				  mmap_unusable(&mmap_backings[0], size));
		for (rep = 0; rep < reps && !gres[0].skipped; rep++)
			mmap_guest_once(&mmap_backings[0], size, &gres[0]);
		if (!gres[0].skipped)
			ref = gres[0].time.min;
		touch_row(&mmap_backings[0], size, &gres[0], ref, "mmap-guest");
	}
	for (i = 1; i < ARRAY_SIZE(mmap_backings); i++) {
		const struct backing *g = &mmap_backings[i], *h = &mmap_hugetlbfs[i - 1];

		if (!selected[i])
			continue;
		touch_result_init(&gres[i], g, mmap_unusable(g, size));
		touch_result_init(&hres[i - 1], h, mmap_unusable(h, size));
		for (rep = 0; rep < reps; rep++) {
			if (!gres[i].skipped)
				mmap_guest_once(g, size, &gres[i]);
			if (!hres[i - 1].skipped)
				mmap_guest_once(h, size, &hres[i - 1]);
		}
		touch_row(g, size, &gres[i], ref, "mmap-guest");
		touch_row(h, size, &hres[i - 1], ref, "mmap-guest");
	}
	for (i = 1; i < ARRAY_SIZE(mmap_backings); i++) {
		const char *opt = mmap_backings[i].option;

		if (!selected[i] || gres[i].skipped)
			continue;
		if (!hres[i - 1].skipped) {
			snprintf(what, sizeof(what), "gmem-only/hugetlbfs %s", opt);
			snprintf(key, sizeof(key), "mmap-guest-gmem/hugetlbfs-%s", opt);
			ratio_line(what, key, &gres[i].time, &hres[i - 1].time);
		}
		if (ref > 0) {
			snprintf(what, sizeof(what), "gmem-only %s/4K gmem-only", opt);
			snprintf(key, sizeof(key), "mmap-guest-gmem-%s/4K-gmem", opt);
			ratio_line(what, key, &gres[i].time, &gres[0].time);
		}
	}
	printf("gmem mmap: a gmem-only memslot (KVM_MEM_GUEST_MEMFD, userspace_addr the VMM's\n"
	       "MAP_SHARED mapping of the file) on a default VM's guest_memfd (MMAP |\n"
	       "INIT_SHARED), memory untouched before; hugetlbfs: an ordinary memslot over\n"
	       "mmap(MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB) of the same page size\n"
	       "(repetitions interleaved with the gmem row); ratio: time / the 4K gmem mmap\n"
	       "row's; faults: KVM page faults (pf_taken); maps*: new KVM mappings per level;\n"
	       "huge: share mapped 2M or 1G; teardown: VM, mapping and file, fastest;\n"
	       "pool: before -> after the last close\n");

	bench_mmap_dmap(size);
}

/* ------------------------------------------------------------------------ */

static void help(const char *name)
{
	printf("usage: %s [-h] [-p] [-V] [-s sections] [-b backings] [-m MiB] [-n GiB,...]\n"
	       "       [-r N] [-P N]\n\n", name);
	printf(" -s: sections among touch, falloc (or alloc), punch, meta, dmap, mmap\n"
	       "     (default: all)\n"
	       " -b: backings among 4k, 2m, 1g (default: all)\n"
	       " -m: memory of the touch and mmap tables in MiB, rounded up to GiB (default: 1024)\n"
	       " -n: file sizes in GiB of the growing rows (default: 1,2,4; empty: none)\n"
	       " -r: repetitions of each timed row, the fastest is shown (default: 3)\n"
	       " -P: punch storms stop after the first N subpages (default: all of them)\n"
	       " -V: punch storms with the vCPU stopped (it still touches the memory first)\n"
	       " -p: also print the numbers as \"bench-data: TABLE ...\" lines\n");
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
	const char *sections = "touch,falloc,punch,meta,dmap,mmap", *list;
	char *end;
	int i, opt;

	for (i = 0; i < NR_BACKINGS; i++)
		selected[i] = true;
	while ((opt = getopt(argc, argv, "hpVs:b:m:n:r:P:")) != -1) {
		switch (opt) {
		case 's':
			sections = optarg;
			break;
		case 'b':
			for (i = 0; i < NR_BACKINGS; i++)
				selected[i] = in_list(optarg, backings[i].option);
			break;
		case 'm':
			touch_size = align_up((u64)atoi_positive("MiB", optarg) << 20, SZ_1G);
			break;
		case 'n':
			nr_sizes = 0;
			for (list = optarg; *list && nr_sizes < MAX_SIZES; list = end) {
				sizes_gib[nr_sizes] = strtoull(list, &end, 10);
				TEST_ASSERT(end != list && sizes_gib[nr_sizes],
					    "bad size list '%s'", optarg);
				nr_sizes++;
				end += *end == ',';
			}
			break;
		case 'r':
			reps = atoi_positive("repetitions", optarg);
			break;
		case 'P':
			punch_limit = atoi_positive("punches", optarg);
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
	TEST_REQUIRE(sw_protected_vm_supported());

	/* A line at a time: the output goes through a serial console. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	kernel_describe();
	bench_data("info", "reps %d", reps);
	bench_data("info", "kernel %s", kernel_desc);
	if (in_list(sections, "touch"))
		bench_touch();
	if (in_list(sections, "falloc") || in_list(sections, "alloc"))
		bench_falloc();
	if (in_list(sections, "punch"))
		bench_punch();
	if (in_list(sections, "meta"))
		bench_meta();
	if (in_list(sections, "dmap"))
		bench_dmap();
	if (in_list(sections, "mmap"))
		bench_mmap();
	return 0;
}
