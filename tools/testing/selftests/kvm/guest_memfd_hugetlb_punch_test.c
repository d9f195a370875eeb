// SPDX-License-Identifier: GPL-2.0-only
/*
 * Lazy 4KiB punch-hole of HugeTLB-backed guest_memfd.
 *
 * Punching part of a hugepage zeroes and marks the punched subpages but
 * keeps the folio; the hugepage goes back to the pool only when all of its
 * subpages are punched, by any sequence of calls.  A fault or fallocate() on
 * a punched subpage refills it.  The tests check the pool counters, the
 * hugetlb_* lines of the file's fdinfo, the kvm:kvm_gmem_invalidate
 * tracepoint, what the guest reads and the level at which KVM maps the
 * memory, also under concurrent punch, refill, fault and conversion, and
 * that a fault racing with a partial punch can't map the hugepage whole.
 *
 * The HugeTLB pool counters and the tracepoint are global: nothing else may
 * use HugeTLB pages of the tested size or guest_memfd while this test runs.
 *
 * GMEM_PUNCH_SEED=<n> in the environment fixes the random seed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>

#include <linux/falloc.h>
#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include "kselftest_harness.h"
#include "gmem_hugetlb_util.h"

#define TEST_GPA		GMEM_HUGETLB_GPA

/* Never zero, so that stale data can't be mistaken for zeroed memory. */
#define GUEST_PATTERN(off)	((uint64_t)(0xc3c33c3c00000000ULL ^ (off)))

#define TRACING_DIR		"/sys/kernel/tracing"
#define GMEM_EVENT_DIR		TRACING_DIR "/events/kvm/kvm_gmem_invalidate"

enum {
	STAGE_READY = 1,
	STAGE_FILLED,
	STAGE_CHECKED,
	STAGE_STRESS,
	/* Pass i of guest_touch_code() syncs with STAGE_TOUCH + i. */
	STAGE_TOUCH,
};

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* xorshift64*, for the host side. */
static uint64_t rng_next(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static uint64_t rng_below(uint64_t *state, uint64_t n)
{
	return rng_next(state) % n;
}

static uint64_t test_seed(void)
{
	const char *str = getenv("GMEM_PUNCH_SEED");
	uint64_t seed;

	if (str && *str)
		seed = strtoull(str, NULL, 0);
	else
		seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	if (!seed)
		seed = 1;
	ksft_print_msg("GMEM_PUNCH_SEED=0x%lx\n", seed);
	return seed;
}

/* ------------------------------------------------------------------------ */
/* HugeTLB pool                                                             */
/* ------------------------------------------------------------------------ */

/*
 * free_hugepages and resv_hugepages kept open and re-read with pread(), for
 * loops that check the pool after each of hundreds of thousands of calls.
 */
struct pool_reader {
	int free_fd;
	int resv_fd;
};

static int open_pool_counter(size_t page_size, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path),
		 "/sys/kernel/mm/hugepages/hugepages-%zukB/%s",
		 page_size >> 10, name);
	return open(path, O_RDONLY);
}

static uint64_t pread_counter(struct __test_metadata *_metadata, int fd,
			      const char *name)
{
	char buf[32], *end;
	uint64_t val = 0;
	ssize_t len;

	len = pread(fd, buf, sizeof(buf) - 1, 0);
	ASSERT_LT(0, len) TH_LOG("Reading %s failed: %s", name,
				 len ? strerror(errno) : "empty");
	buf[len] = '\0';
	val = strtoull(buf, &end, 10);
	ASSERT_TRUE(end != buf) TH_LOG("Can't parse %s: '%s'", name, buf);
	return val;
}

static void pool_reader_read(struct __test_metadata *_metadata,
			     struct pool_reader *pr, uint64_t *free,
			     uint64_t *resv)
{
	*free = pread_counter(_metadata, pr->free_fd, "free_hugepages");
	*resv = pread_counter(_metadata, pr->resv_fd, "resv_hugepages");
}

static void pool_reader_close(struct pool_reader *pr)
{
	close(pr->free_fd);
	close(pr->resv_fd);
}

/* ------------------------------------------------------------------------ */
/* fdinfo                                                                   */
/* ------------------------------------------------------------------------ */

struct gmem_fdinfo {
	uint64_t page_size;
	uint64_t pages;
	uint64_t reserved;
	uint64_t allocated;
	uint64_t partial_folios;
	uint64_t punched_subpages;
	uint64_t subpage_maps;
	uint64_t metadata_bytes;
};

static const struct {
	const char *key;
	size_t offset;
} fdinfo_keys[] = {
	{ "hugetlb_page_size:",		offsetof(struct gmem_fdinfo, page_size) },
	{ "hugetlb_pages:",		offsetof(struct gmem_fdinfo, pages) },
	{ "hugetlb_reserved:",		offsetof(struct gmem_fdinfo, reserved) },
	{ "hugetlb_allocated:",		offsetof(struct gmem_fdinfo, allocated) },
	{ "hugetlb_partial_folios:",	offsetof(struct gmem_fdinfo, partial_folios) },
	{ "hugetlb_punched_subpages:",	offsetof(struct gmem_fdinfo, punched_subpages) },
	{ "hugetlb_subpage_maps:",	offsetof(struct gmem_fdinfo, subpage_maps) },
	{ "hugetlb_metadata_bytes:",	offsetof(struct gmem_fdinfo, metadata_bytes) },
};

/*
 * Bytes allocated for the punched-subpage map of one folio of @page_size:
 * a three-word header, which kmalloc() rounds to 32 bytes, and exactly one
 * bit per subpage (a power of two for 2M and 1G pages, so kmalloc() and
 * the page allocator do not round it).
 */
static uint64_t subpage_map_bytes(size_t page_size)
{
	return 32 + page_size / SZ_4K / 8;
}

/*
 * Parse the hugetlb lines of /proc/self/fdinfo/@fd.  Returns NULL on
 * success, or a static string saying what is wrong.
 */
static const char *parse_fdinfo(int fd, struct gmem_fdinfo *fi)
{
	static char err[128];
	bool seen[ARRAY_SIZE(fdinfo_keys)] = {};
	char path[64], buf[4096], *line, *save, *end;
	ssize_t len, total = 0;
	int i, file;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	file = open(path, O_RDONLY);
	if (file < 0) {
		snprintf(err, sizeof(err), "can't open %s: %s", path,
			 strerror(errno));
		return err;
	}
	while ((len = read(file, buf + total, sizeof(buf) - 1 - total)) > 0)
		total += len;
	close(file);
	if (len < 0) {
		snprintf(err, sizeof(err), "can't read %s", path);
		return err;
	}
	buf[total] = '\0';

	memset(fi, 0, sizeof(*fi));
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		for (i = 0; i < ARRAY_SIZE(fdinfo_keys); i++) {
			size_t klen = strlen(fdinfo_keys[i].key);

			if (strncmp(line, fdinfo_keys[i].key, klen))
				continue;
			if (line[klen] != '\t' || seen[i]) {
				snprintf(err, sizeof(err), "bad line '%s'", line);
				return err;
			}
			*(uint64_t *)((char *)fi + fdinfo_keys[i].offset) =
				strtoull(line + klen + 1, &end, 10);
			if (end == line + klen + 1 || *end) {
				snprintf(err, sizeof(err), "bad value in '%s'", line);
				return err;
			}
			seen[i] = true;
		}
	}
	for (i = 0; i < ARRAY_SIZE(fdinfo_keys); i++) {
		if (!seen[i]) {
			snprintf(err, sizeof(err), "no '%s' line",
				 fdinfo_keys[i].key);
			return err;
		}
	}
	return NULL;
}

static void read_fdinfo(struct __test_metadata *_metadata, int fd,
			struct gmem_fdinfo *fi)
{
	const char *err = parse_fdinfo(fd, fi);

	ASSERT_EQ(NULL, err) TH_LOG("fdinfo of guest_memfd %d: %s", fd, err);
}

/*
 * Assert the fdinfo counters of a guest_memfd of @pages hugepages.  A
 * negative expectation isn't checked.
 */
static void __printf(10, 11)
__assert_fdinfo(struct __test_metadata *_metadata, int fd, size_t page_size,
		uint64_t pages, long reserved, long allocated, long partial,
		long punched, int line, const char *fmt, ...)
{
	struct gmem_fdinfo fi;
	char step[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(step, sizeof(step), fmt, ap);
	va_end(ap);

	read_fdinfo(_metadata, fd, &fi);
	ASSERT_TRUE(fi.page_size == page_size && fi.pages == pages &&
		    (reserved < 0 || fi.reserved == reserved) &&
		    (allocated < 0 || fi.allocated == allocated) &&
		    (partial < 0 || fi.partial_folios == partial) &&
		    (punched < 0 || fi.punched_subpages == punched))
		TH_LOG("line %d, %s: fdinfo has page_size %lu pages %lu reserved %lu allocated %lu partial_folios %lu punched_subpages %lu, expected %zu %lu %ld %ld %ld %ld (-1: any)",
		       line, step, fi.page_size, fi.pages, fi.reserved,
		       fi.allocated, fi.partial_folios, fi.punched_subpages,
		       page_size, pages, reserved, allocated, partial, punched);
	/*
	 * A subpage map (a 32-byte header and a bit per subpage) exists for
	 * each partly punched folio, and may stay after a refill until its
	 * folio is freed.  The rest of the metadata is a small struct and a
	 * bit per hugepage.
	 */
	ASSERT_TRUE(fi.partial_folios <= fi.subpage_maps &&
		    fi.subpage_maps <= fi.allocated &&
		    fi.metadata_bytes >= fi.subpage_maps * subpage_map_bytes(page_size) &&
		    fi.metadata_bytes - fi.subpage_maps * subpage_map_bytes(page_size) <=
		    SZ_4K + pages / 8)
		TH_LOG("line %d, %s: fdinfo has %lu subpage maps and %lu metadata bytes for %lu allocated hugepages, %lu of them partial; a map takes %lu bytes",
		       line, step, fi.subpage_maps, fi.metadata_bytes,
		       fi.allocated, fi.partial_folios,
		       subpage_map_bytes(page_size));
}

#define assert_fdinfo(fd, pages, reserved, allocated, partial, punched, fmt, ...) \
	__assert_fdinfo(_metadata, fd, variant->page_size, pages, reserved,	\
			allocated, partial, punched, __LINE__, fmt,		\
			##__VA_ARGS__)

/*
 * With nothing in flight, the pool must account exactly for what fdinfo
 * shows relative to the pool before the file was created: every allocated
 * hugepage was taken from the free pages, every reserved one is still in
 * resv_hugepages.
 */
static void __assert_pool_matches_fdinfo(struct __test_metadata *_metadata,
					 int fd, size_t page_size,
					 const struct hugetlb_pool_stats *base,
					 int line, const char *what)
{
	struct hugetlb_pool_stats now;
	struct gmem_fdinfo fi;

	read_fdinfo(_metadata, fd, &fi);
	ASSERT_TRUE(hugetlb_get_pool_stats(page_size, &now));
	ASSERT_TRUE(now.free == base->free - fi.allocated &&
		    now.resv == base->resv + fi.reserved)
		TH_LOG("line %d, %s: fdinfo shows %lu allocated and %lu reserved hugepages, but the pool went from free %lu resv %lu to free %lu resv %lu",
		       line, what, fi.allocated, fi.reserved, base->free,
		       base->resv, now.free, now.resv);
}

#define assert_pool_matches_fdinfo(fd, what)				\
	__assert_pool_matches_fdinfo(_metadata, fd, variant->page_size,	\
				     &self->base, __LINE__, what)

/* ------------------------------------------------------------------------ */
/* fallocate()                                                              */
/* ------------------------------------------------------------------------ */

static void __do_fallocate(struct __test_metadata *_metadata, int fd,
			   bool punch, uint64_t offset, uint64_t len, int line)
{
	int r = gmem_fallocate(fd, punch, offset, len);

	ASSERT_EQ(0, r)
		TH_LOG("line %d: fallocate(%s, offset = 0x%lx, len = 0x%lx) failed: %s",
		       line, punch ? "PUNCH_HOLE" : "allocate", offset, len,
		       strerror(errno));
}

#define do_punch(fd, offset, len) \
	__do_fallocate(_metadata, fd, true, offset, len, __LINE__)
#define do_allocate(fd, offset, len) \
	__do_fallocate(_metadata, fd, false, offset, len, __LINE__)

/* ------------------------------------------------------------------------ */
/* KVM mapping levels                                                       */
/* ------------------------------------------------------------------------ */

/* The next smaller page size that KVM maps with. */
static size_t smaller_level(size_t page_size)
{
	return page_size == SZ_1G ? SZ_2M : SZ_4K;
}

/* "4k/2m/1g: a -> b" for messages. */
static const char *levels_str(const struct vm_mapping_level_stats *a,
			      const struct vm_mapping_level_stats *b,
			      char *buf, size_t len)
{
	snprintf(buf, len, "4k/2m/1g: %lu/%lu/%lu -> %lu/%lu/%lu",
		 a->pages_4k, a->pages_2m, a->pages_1g,
		 b->pages_4k, b->pages_2m, b->pages_1g);
	return buf;
}

/* ------------------------------------------------------------------------ */
/* Guest side                                                               */
/* ------------------------------------------------------------------------ */

#define MAX_RANGES	8

/* Byte ranges, relative to the start of the tested memory. */
struct ranges {
	uint64_t nr;
	uint64_t start[MAX_RANGES];
	uint64_t end[MAX_RANGES];
};

/* The ranges the host punches, synced to the guest before it runs. */
static struct ranges punched_ranges;

static bool in_ranges(const struct ranges *r, uint64_t off)
{
	uint64_t i;

	for (i = 0; i < r->nr; i++) {
		if (off >= r->start[i] && off < r->end[i])
			return true;
	}
	return false;
}

/* Around each punched range, every word is written and checked. */
static void window(const struct ranges *r, uint64_t i, uint64_t size,
		   uint64_t *start, uint64_t *end)
{
	*start = r->start[i] >= SZ_4K ? r->start[i] - SZ_4K : 0;
	*end = r->end[i] + SZ_4K <= size ? r->end[i] + SZ_4K : size;
}

static void guest_fill_words(uint64_t gpa, uint64_t start, uint64_t end)
{
	uint64_t off;

	for (off = start; off < end; off += sizeof(uint64_t))
		WRITE_ONCE(*(uint64_t *)(gpa + off), GUEST_PATTERN(off));
}

static void guest_check_words(uint64_t gpa, uint64_t start, uint64_t end)
{
	uint64_t off, val, expected;

	for (off = start; off < end; off += sizeof(uint64_t)) {
		expected = in_ranges(&punched_ranges, off) ? 0 : GUEST_PATTERN(off);
		val = READ_ONCE(*(uint64_t *)(gpa + off));
		__GUEST_ASSERT(val == expected,
			       "gpa 0x%lx (offset 0x%lx) reads 0x%lx, expected 0x%lx (%s)",
			       gpa + off, off, val, expected,
			       expected ? "not punched" : "punched");
	}
}

/*
 * Fill [gpa, gpa + size) with a pattern: the first and last word of every
 * @stride bytes (every word if @stride is 8), and every word in and 4KiB
 * around each punched range.  After the host punched, check that exactly the
 * punched ranges read zero.
 */
static void guest_zero_code(uint64_t gpa, uint64_t size, uint64_t stride)
{
	uint64_t off, i, start, end;

	GUEST_SYNC(STAGE_READY);

	for (off = 0; off < size; off += stride) {
		guest_fill_words(gpa, off, off + 8);
		guest_fill_words(gpa, off + stride - 8, off + stride);
	}
	for (i = 0; i < punched_ranges.nr; i++) {
		window(&punched_ranges, i, size, &start, &end);
		guest_fill_words(gpa, start, end);
	}
	GUEST_SYNC(STAGE_FILLED);

	for (off = 0; off < size; off += stride) {
		guest_check_words(gpa, off, off + 8);
		guest_check_words(gpa, off + stride - 8, off + stride);
	}
	for (i = 0; i < punched_ranges.nr; i++) {
		window(&punched_ranges, i, size, &start, &end);
		guest_check_words(gpa, start, end);
	}
	GUEST_SYNC(STAGE_CHECKED);

	GUEST_DONE();
}

/*
 * Write one word of every @stride bytes of [gpa, gpa + size), except in the
 * 4KiB page at @skip, then sync; again and again.
 */
static void guest_touch_code(uint64_t gpa, uint64_t size, uint64_t stride,
			     uint64_t skip)
{
	uint64_t pass, off;

	GUEST_SYNC(STAGE_READY);

	for (pass = 0; ; pass++) {
		for (off = 0; off < size; off += stride) {
			if (off - skip < SZ_4K)
				continue;
			WRITE_ONCE(*(uint64_t *)(gpa + off), GUEST_PATTERN(off));
		}
		GUEST_SYNC(STAGE_TOUCH + pass);
	}
}

/* Write and read random words of [gpa, gpa + size), forever. */
/*
 * Every word only ever holds its own pattern or zero (never written, or
 * punched by the VMM since): the guest checks each word it reads back, and
 * counts whether it saw its pattern or a punch, and one more word it picks
 * at random.
 */
static void guest_stress_code(uint64_t gpa, uint64_t size, uint64_t seed)
{
	struct guest_random_state rng = new_guest_random_state(seed);
	const uint64_t words = size / sizeof(uint64_t);
	uint64_t i, off, val, *p, own = 0, zero = 0;

	GUEST_SYNC(STAGE_READY);

	for (;;) {
		for (i = 0; i < 64; i++) {
			off = guest_random_u64(&rng) % words;
			p = (uint64_t *)(gpa + off * sizeof(uint64_t));
			WRITE_ONCE(*p, GUEST_PATTERN(off));
			val = READ_ONCE(*p);
			GUEST_ASSERT(val == GUEST_PATTERN(off) || !val);
			if (val)
				own++;
			else
				zero++;

			off = guest_random_u64(&rng) % words;
			p = (uint64_t *)(gpa + off * sizeof(uint64_t));
			val = READ_ONCE(*p);
			__GUEST_ASSERT(val == GUEST_PATTERN(off) || !val,
				       "word 0x%lx holds 0x%lx, neither its pattern nor zero",
				       off, val);
		}
		GUEST_SYNC_ARGS(STAGE_STRESS, own, zero, 0, 0);
	}
}

/*
 * Write the first word of every 64KiB of [gpa, gpa + size), except in the
 * 4KiB page at @skip, forever; sync every 256 passes.
 */
static void guest_spin_code(uint64_t gpa, uint64_t size, uint64_t skip)
{
	uint64_t off, pass;

	GUEST_SYNC(STAGE_READY);

	for (pass = 1; ; pass++) {
		for (off = 0; off < size; off += SZ_64K) {
			if (off - skip < SZ_4K)
				continue;
			WRITE_ONCE(*(uint64_t *)(gpa + off), GUEST_PATTERN(off));
		}
		if (!(pass % 256))
			GUEST_SYNC(STAGE_STRESS);
	}
}

/* ------------------------------------------------------------------------ */
/* Host side of guest tests                                                 */
/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* Tracepoint                                                               */
/* ------------------------------------------------------------------------ */

struct gmem_event {
	uint64_t index;
	uint64_t pfn;
	unsigned int order;
	char why[16];
};

struct event_list {
	struct gmem_event *ev;
	size_t nr;
	size_t cap;
};

static void event_add(struct event_list *l, uint64_t index, uint64_t pfn,
		      unsigned int order, const char *why)
{
	if (l->nr == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->ev = realloc(l->ev, l->cap * sizeof(*l->ev));
		TEST_ASSERT(l->ev, "realloc() failed");
	}
	l->ev[l->nr].index = index;
	l->ev[l->nr].pfn = pfn;
	l->ev[l->nr].order = order;
	snprintf(l->ev[l->nr].why, sizeof(l->ev[l->nr].why), "%s", why);
	l->nr++;
}

/* Append all kvm_gmem_invalidate events in the trace buffer to @l. */
static void read_gmem_events(struct __test_metadata *_metadata,
			     struct event_list *l)
{
	static const char tag[] = "kvm_gmem_invalidate: ";
	char line[512], why[16], *p;
	int n;
	uint64_t index, pfn;
	unsigned int order;
	FILE *f;

	f = fopen(TRACING_DIR "/trace", "r");
	ASSERT_NE(NULL, f) TH_LOG("Can't open %s/trace: %s", TRACING_DIR,
				  strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#')
			continue;
		p = strstr(line, tag);
		if (!p)
			continue;
		n = sscanf(p + strlen(tag),
			   "index 0x%lx pfn 0x%lx order %u why %15s",
			   &index, &pfn, &order, why);
		ASSERT_EQ(4, n) TH_LOG("Can't parse trace line: %s", line);
		event_add(l, index, pfn, order, why);
	}
	fclose(f);
}

/*
 * Model of a hugetlb guest_memfd, to compute the invalidation events that
 * the tracepoint must report, in order.  Written from the contract, not from
 * the kernel's code.
 */
struct gmem_model {
	unsigned int order;		/* of a hugepage, in 4KiB pages */
	uint64_t nr_sub;		/* subpages per hugepage */
	uint64_t nr_hpages;
	bool allocated[2];
	uint8_t *punched[2];		/* one byte per subpage */
	struct event_list expected;
};

/*
 * Report [start, end) (subpage offsets in hugepage @h) as the fewest
 * naturally aligned blocks: each as large as its alignment and what's left
 * of the range allow.
 */
static void model_blocks(struct gmem_model *m, uint64_t h, uint64_t start,
			 uint64_t end, const char *why)
{
	unsigned int order;

	while (start < end) {
		order = 0;
		while (order < m->order &&
		       !(start & ((2ULL << order) - 1)) &&
		       start + (2ULL << order) <= end)
			order++;
		event_add(&m->expected, h * m->nr_sub + start, 0, order, why);
		start += 1ULL << order;
	}
}

/* Report the maximal runs of subpages of @h in [s, e) with punched == @val. */
static void model_runs(struct gmem_model *m, uint64_t h, uint64_t s,
		       uint64_t e, uint8_t val, const char *why)
{
	uint64_t run;

	while (s < e) {
		if (m->punched[h][s] != val) {
			s++;
			continue;
		}
		for (run = s; run < e && m->punched[h][run] == val; run++)
			;
		model_blocks(m, h, s, run, why);
		s = run;
	}
}

static void model_free(struct gmem_model *m, uint64_t h)
{
	model_runs(m, h, 0, m->nr_sub, 0, "release");
	event_add(&m->expected, h * m->nr_sub, 0, m->order, "free");
	m->allocated[h] = false;
	memset(m->punched[h], 0, m->nr_sub);
}

/* PUNCH_HOLE of subpages [start, end) of the file. */
static void model_punch(struct gmem_model *m, uint64_t start, uint64_t end)
{
	uint64_t h, s, e, i, left;

	for (h = start / m->nr_sub; h < m->nr_hpages && h * m->nr_sub < end; h++) {
		s = start > h * m->nr_sub ? start - h * m->nr_sub : 0;
		e = end - h * m->nr_sub < m->nr_sub ? end - h * m->nr_sub : m->nr_sub;
		if (!m->allocated[h])
			continue;
		/*
		 * A punch that leaves no subpage in use frees the folio as a
		 * whole punch does: what it covers is released, not zeroed.
		 */
		for (i = 0, left = 0; i < m->nr_sub; i++)
			left += !m->punched[h][i] && (i < s || i >= e);
		if (!left) {
			model_free(m, h);
			continue;
		}
		model_runs(m, h, s, e, 0, "punch");
		memset(m->punched[h] + s, 1, e - s);
	}
}

/* fallocate() of subpages [start, end) of the file: never reports. */
static void model_allocate(struct gmem_model *m, uint64_t start, uint64_t end)
{
	uint64_t h, s, e;

	for (h = start / m->nr_sub; h < m->nr_hpages && h * m->nr_sub < end; h++) {
		s = start > h * m->nr_sub ? start - h * m->nr_sub : 0;
		e = end - h * m->nr_sub < m->nr_sub ? end - h * m->nr_sub : m->nr_sub;
		if (!m->allocated[h]) {
			m->allocated[h] = true;
			memset(m->punched[h], 0, m->nr_sub);
		} else {
			memset(m->punched[h] + s, 0, e - s);
		}
	}
}

static void model_close(struct gmem_model *m)
{
	uint64_t h;

	for (h = 0; h < m->nr_hpages; h++) {
		if (m->allocated[h])
			model_free(m, h);
	}
}

/* ------------------------------------------------------------------------ */
/* Fixture                                                                  */
/* ------------------------------------------------------------------------ */

FIXTURE(gmem_punch) {
	struct kvm_vm *vm;
	uint64_t flags;
	struct hugetlb_pool_stats base;
	bool tracing;
};

FIXTURE_VARIANT(gmem_punch) {
	size_t page_size;
	/*
	 * punch_each_subpage_in_order punches [0, storm_fine_start) in
	 * storm_coarse_step steps, the rest 4KiB at a time, and reads fdinfo
	 * every fdinfo_every calls.
	 */
	uint64_t storm_coarse_step;
	uint64_t storm_fine_start;
	uint64_t fdinfo_every;
	/* Granularity of punch_random_order_with_refills. */
	uint64_t random_step;
	/* Stride of the guest's accesses outside punched ranges. */
	uint64_t guest_stride;
	/* Seconds of stress_punch_fault_convert and of fault_vs_punch_race. */
	int stress_seconds;
	/*
	 * One in stress_whole_punch random punches covers a whole hugepage,
	 * at most stress_max_whole times; one in 16 is a partial punch of up
	 * to stress_large_punch bytes.  Punched subpages are zeroed and a
	 * hugepage is zeroed when it is allocated again, which for 1GiB takes
	 * seconds under TCG.
	 */
	int stress_whole_punch;
	int stress_max_whole;
	uint64_t stress_large_punch;
	/*
	 * One in 8 conversions is of an aligned stress_large_convert bytes:
	 * a conversion of 1GiB sets 262144 attributes twice, too slow under
	 * TCG to do often.
	 */
	uint64_t stress_large_convert;
};

FIXTURE_VARIANT_ADD(gmem_punch, 2M) {
	.page_size = SZ_2M,
	.storm_coarse_step = SZ_4K,
	.storm_fine_start = 0,
	.fdinfo_every = 1,
	.random_step = SZ_4K,
	.guest_stride = 8,
	.stress_seconds = 4,
	.stress_whole_punch = 64,
	.stress_max_whole = INT_MAX,
	.stress_large_punch = SZ_1M,
	.stress_large_convert = SZ_2M,
};

FIXTURE_VARIANT_ADD(gmem_punch, 1G) {
	.page_size = SZ_1G,
	/* All 262144 subpages one 4KiB call at a time, see the test. */
	.storm_coarse_step = SZ_4K,
	.storm_fine_start = 0,
	.fdinfo_every = 4096,
	.random_step = SZ_64K,
	.guest_stride = SZ_4K,
	.stress_seconds = 5,
	.stress_whole_punch = 64,
	.stress_max_whole = 2,
	.stress_large_punch = SZ_16M,
	.stress_large_convert = SZ_8M,
};

FIXTURE_SETUP(gmem_punch)
{
	uint64_t sizes = 0;

	if (!hugetlb_size_supported(variant->page_size, &sizes))
		SKIP(return,
		     "KVM doesn't support %zukB HugeTLB guest_memfd (KVM_CAP_GUEST_MEMFD_HUGETLB = 0x%lx)",
		     variant->page_size >> 10, sizes);

	self->flags = guest_memfd_hugetlb_flags(variant->page_size);
	ASSERT_TRUE(hugetlb_get_pool_stats(variant->page_size, &self->base))
		TH_LOG("No %zukB HugeTLB pool", variant->page_size >> 10);
	if (!sw_protected_vm_supported())
		SKIP(return, "KVM_X86_SW_PROTECTED_VM not supported");
	self->vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
}

FIXTURE_TEARDOWN(gmem_punch)
{
	if (self->tracing)
		write_str_to_file(GMEM_EVENT_DIR "/enable", "0");
	if (self->vm)
		kvm_vm_free(self->vm);
}

/* ------------------------------------------------------------------------ */
/* a. Every subpage punched on its own                                      */
/* ------------------------------------------------------------------------ */

/*
 * Punch an allocated hugepage one 4KiB subpage at a time, in order: the pool
 * must not move until the last call, which frees exactly one hugepage, and
 * fdinfo must count the punched subpages.
 *
 * For 1GiB that is 262144 PUNCH_HOLE calls, each followed by two pread()s of
 * the pool counters; fdinfo is read every 4096 calls and for the last ones.
 * Measured under QEMU TCG (see the report printed by the test), this takes
 * well under a minute, so the 1GiB variant does the whole 4KiB storm; set
 * storm_coarse_step/storm_fine_start in the variant to punch in larger steps
 * up to storm_fine_start if that ever gets too slow.
 */
TEST_F_TIMEOUT(gmem_punch, punch_each_subpage_in_order, 900)
{
	const uint64_t hpage = variant->page_size;
	const uint64_t nr_sub = hpage / SZ_4K;
	struct hugetlb_pool_stats check;
	struct pool_reader pr;
	uint64_t off, step, punched = 0, calls = 0, free, resv;
	uint64_t memmap = memmap_pages();
	double start, elapsed;
	bool last;
	int fd;

	if (!hugepages_available(2))
		return;

	fd = vm_create_guest_memfd(self->vm, 2 * hpage, self->flags);
	assert_pool(&self->base, 0, 2, "created a 2 page file");
	do_allocate(fd, 0, hpage);
	assert_pool(&self->base, -1, 1, "allocated hugepage 0");
	assert_fdinfo(fd, 2, 1, 1, 0, 0, "allocated hugepage 0");

	pr.free_fd = open_pool_counter(hpage, "free_hugepages");
	pr.resv_fd = open_pool_counter(hpage, "resv_hugepages");
	ASSERT_TRUE(pr.free_fd >= 0 && pr.resv_fd >= 0)
		TH_LOG("Can't open the pool counters: %s", strerror(errno));

	/* The fast reader must agree with the library's. */
	pool_reader_read(_metadata, &pr, &free, &resv);
	ASSERT_TRUE(hugetlb_get_pool_stats(hpage, &check));
	ASSERT_TRUE(free == check.free && resv == check.resv)
		TH_LOG("pread() of the pool counters gives free %lu resv %lu, fscanf() gives %lu %lu",
		       free, resv, check.free, check.resv);

	start = now_seconds();
	for (off = 0; off < hpage; off += step) {
		step = off < variant->storm_fine_start ?
		       variant->storm_coarse_step : SZ_4K;
		do_punch(fd, off, step);
		punched += step / SZ_4K;
		calls++;
		last = off + step == hpage;

		pool_reader_read(_metadata, &pr, &free, &resv);
		ASSERT_TRUE(free == self->base.free - !last &&
			    resv == self->base.resv + 1)
			TH_LOG("After punching [0x%lx, 0x%lx) (%lu of %lu subpages, call %lu): free_hugepages %lu resv_hugepages %lu, expected %lu %lu",
			       off, off + step, punched, nr_sub, calls, free,
			       resv, self->base.free - !last,
			       self->base.resv + 1);

		if (calls % variant->fdinfo_every && nr_sub - punched > 2)
			continue;
		assert_fdinfo(fd, 2, 1, !last, !last, last ? 0 : punched,
			      "punched [0, 0x%lx) in %lu calls", off + step,
			      calls);
	}
	elapsed = now_seconds() - start;
	pool_reader_close(&pr);
	ksft_print_msg("%zukB: %lu PUNCH_HOLE calls (%lu subpages) with pool checks took %.1f s\n",
		       hpage >> 10, calls, punched, elapsed);

	/* The hugepage went back to the pool with its reservation. */
	assert_pool(&self->base, 0, 1, "punched every subpage of hugepage 0");
	assert_fdinfo(fd, 2, 1, 0, 0, 0, "punched every subpage of hugepage 0");

	/* It can be allocated again, whole. */
	do_allocate(fd, hpage - SZ_4K, SZ_4K);
	assert_pool(&self->base, -1, 1, "allocated hugepage 0 again");
	assert_fdinfo(fd, 2, 1, 1, 0, 0, "allocated hugepage 0 again");

	close(fd);
	assert_pool(&self->base, 0, 0, "closed");

	/* The storm never split the folio or restored its vmemmap (HVO). */
	ASSERT_EQ(memmap, memmap_pages())
		TH_LOG("nr_memmap_pages went from %lu to %lu across the punch storm",
		       memmap, memmap_pages());
}

/* ------------------------------------------------------------------------ */
/* b. Random order, with refills                                            */
/* ------------------------------------------------------------------------ */

TEST_F_TIMEOUT(gmem_punch, punch_random_order_with_refills, 600)
{
	const uint64_t hpage = variant->page_size;
	const uint64_t step = variant->random_step;
	const uint64_t units = hpage / step;
	const uint64_t per_unit = step / SZ_4K;
	uint64_t *order, *todo, nr_todo = 0, nr_punched = 0;
	uint64_t seed = test_seed();
	uint64_t i, j, u, tmp, refill[8];
	bool *is_punched;
	int fd;

	if (!hugepages_available(2))
		return;

	order = calloc(units, sizeof(*order));
	todo = calloc(units + ARRAY_SIZE(refill) + 4, sizeof(*todo));
	is_punched = calloc(units, sizeof(*is_punched));
	ASSERT_TRUE(order && todo && is_punched);

	/* Fisher-Yates. */
	for (i = 0; i < units; i++)
		order[i] = i;
	for (i = units - 1; i > 0; i--) {
		j = rng_below(&seed, i + 1);
		tmp = order[i];
		order[i] = order[j];
		order[j] = tmp;
	}

	fd = vm_create_guest_memfd(self->vm, 2 * hpage, self->flags);
	do_allocate(fd, 0, 2 * hpage);
	assert_pool(&self->base, -2, 0, "allocated both hugepages");

	/* The first half, in random order. */
	for (i = 0; i < units / 2; i++) {
		u = order[i];
		do_punch(fd, u * step, step);
		is_punched[u] = true;
		nr_punched++;
		assert_pool(&self->base, -2, 0, "punched %lu of %lu units, last 0x%lx",
			    nr_punched, units, u * step);
		assert_fdinfo(fd, 2, 0, 2, 1, nr_punched * per_unit,
			      "punched %lu of %lu units, last 0x%lx", nr_punched,
			      units, u * step);
	}

	/* Refill some punched units: the count drops, the pool stays. */
	refill[0] = order[0];
	refill[1] = order[units / 2 - 1];
	for (i = 2; i < ARRAY_SIZE(refill); i++) {
		do {
			u = order[rng_below(&seed, units / 2)];
			for (j = 0; j < i && refill[j] != u; j++)
				;
		} while (j < i);
		refill[i] = u;
	}
	for (i = 0; i < ARRAY_SIZE(refill); i++) {
		u = refill[i];
		do_allocate(fd, u * step, step);
		is_punched[u] = false;
		nr_punched--;
		todo[nr_todo++] = u;
		assert_pool(&self->base, -2, 0, "refilled unit at 0x%lx", u * step);
		assert_fdinfo(fd, 2, 0, 2, 1, nr_punched * per_unit,
			      "refilled unit at 0x%lx", u * step);
	}

	/* Refilling what isn't punched changes nothing. */
	u = order[units - 1];
	do_allocate(fd, u * step, step);
	assert_fdinfo(fd, 2, 0, 2, 1, nr_punched * per_unit,
		      "refilled the unpunched unit at 0x%lx", u * step);

	/* One refill spanning several units, some punched, some not. */
	u = order[units / 4] > units - 4 ? units - 4 : order[units / 4];
	do_allocate(fd, u * step, 4 * step);
	for (i = u; i < u + 4; i++) {
		if (is_punched[i]) {
			is_punched[i] = false;
			nr_punched--;
			todo[nr_todo++] = i;
		}
	}
	assert_pool(&self->base, -2, 0, "refilled [0x%lx, 0x%lx)", u * step,
		    (u + 4) * step);
	assert_fdinfo(fd, 2, 0, 2, 1, nr_punched * per_unit,
		      "refilled [0x%lx, 0x%lx)", u * step, (u + 4) * step);

	/* Punch the rest, refilled units included, in random order. */
	for (i = units / 2; i < units; i++)
		todo[nr_todo++] = order[i];
	ASSERT_EQ(units - nr_punched, nr_todo);
	for (i = nr_todo - 1; i > 0; i--) {
		j = rng_below(&seed, i + 1);
		tmp = todo[i];
		todo[i] = todo[j];
		todo[j] = tmp;
	}
	for (i = 0; i < nr_todo; i++) {
		bool last = i == nr_todo - 1;

		u = todo[i];
		ASSERT_FALSE(is_punched[u]);
		do_punch(fd, u * step, step);
		is_punched[u] = true;
		nr_punched++;
		assert_pool(&self->base, last ? -1 : -2, 0,
			    "punched %lu of %lu units, last 0x%lx", nr_punched,
			    units, u * step);
		assert_fdinfo(fd, 2, 0, last ? 1 : 2, !last,
			      last ? 0 : nr_punched * per_unit,
			      "punched %lu of %lu units, last 0x%lx", nr_punched,
			      units, u * step);
	}

	/* Hugepage 1 was never punched. */
	close(fd);
	assert_pool(&self->base, 0, 0, "closed");

	free(order);
	free(todo);
	free(is_punched);
}

/* ------------------------------------------------------------------------ */
/* c. Overlapping punches, a whole punch, and hugepages without a folio     */
/* ------------------------------------------------------------------------ */

TEST_F_TIMEOUT(gmem_punch, overlapping_and_whole, 120)
{
	const uint64_t hpage = variant->page_size;
	const uint64_t nr_sub = hpage / SZ_4K;
	/* Subpage ranges of hugepage 0, overlapping, the last reaching 1. */
	const struct {
		uint64_t start;
		uint64_t end;
	} overlapping[] = {
		{ 0, nr_sub / 2 },
		{ nr_sub / 4, 3 * nr_sub / 4 },
		{ nr_sub / 2 - 1, nr_sub / 2 + 3 },
		{ nr_sub / 8, nr_sub / 8 + 1 },
		/* Reaches into hugepage 1, which has no folio. */
		{ nr_sub - 80, nr_sub + 16 },
		{ nr_sub - 100, nr_sub - 60 },
		/* [3 * nr_sub / 4, nr_sub - 100) is left. */
	};
	const struct {
		uint64_t offset;
		uint64_t len;
	} no_folio[] = {
		{ hpage, SZ_4K },
		{ hpage + hpage / 2 + SZ_4K * 3, SZ_64K },
		{ 2 * hpage - SZ_4K, SZ_4K },
		{ hpage + SZ_4K, hpage - SZ_4K },
		/* Hugepage 0, punched whole: no folio either. */
		{ SZ_4K, hpage / 2 },
		{ hpage - SZ_4K, 2 * SZ_4K },
	};
	uint64_t i, s, count;
	uint8_t *model;
	int fd;

	if (!hugepages_available(2))
		return;

	model = calloc(nr_sub, 1);
	ASSERT_NE(NULL, model);

	fd = vm_create_guest_memfd(self->vm, 2 * hpage, self->flags);
	do_allocate(fd, 0, SZ_4K);
	assert_pool(&self->base, -1, 1, "allocated hugepage 0 of 2");

	for (i = 0; i < ARRAY_SIZE(overlapping); i++) {
		do_punch(fd, overlapping[i].start * SZ_4K,
			 (overlapping[i].end - overlapping[i].start) * SZ_4K);
		for (s = overlapping[i].start;
		     s < overlapping[i].end && s < nr_sub; s++)
			model[s] = 1;
		for (s = 0, count = 0; s < nr_sub; s++)
			count += model[s];
		ASSERT_LT(count, nr_sub);
		assert_pool(&self->base, -1, 1, "overlapping punch %lu", i);
		assert_fdinfo(fd, 2, 1, 1, 1, count,
			      "overlapping punch %lu of subpages [0x%lx, 0x%lx)",
			      i, overlapping[i].start, overlapping[i].end);
	}

	/* A whole-hugepage punch frees it at once. */
	do_punch(fd, 0, hpage);
	assert_pool(&self->base, 0, 1, "punched all of partially punched hugepage 0");
	assert_fdinfo(fd, 2, 1, 0, 0, 0, "punched all of hugepage 0");

	/* Partial punches of hugepages that hold no folio change nothing. */
	for (i = 0; i < ARRAY_SIZE(no_folio); i++) {
		do_punch(fd, no_folio[i].offset, no_folio[i].len);
		assert_pool(&self->base, 0, 1,
			    "partial PUNCH_HOLE(0x%lx, 0x%lx) without a folio",
			    no_folio[i].offset, no_folio[i].len);
		assert_fdinfo(fd, 2, 1, 0, 0, 0,
			      "partial PUNCH_HOLE(0x%lx, 0x%lx) without a folio",
			      no_folio[i].offset, no_folio[i].len);
	}

	/*
	 * Hugepage 1 kept its reservation and no punched marks: allocating
	 * it takes the reservation and gives a folio with no hole.
	 */
	do_allocate(fd, hpage + hpage / 2, SZ_4K);
	assert_pool(&self->base, -1, 0, "allocated hugepage 1");
	assert_fdinfo(fd, 2, 0, 1, 0, 0, "allocated hugepage 1 after partial punches without a folio");
	assert_pool_matches_fdinfo(fd, "allocated hugepage 1");

	/* Overlapping partial punches finished by a whole one, across. */
	do_punch(fd, hpage + SZ_64K, SZ_64K);
	do_punch(fd, hpage + SZ_64K + SZ_4K, 2 * SZ_64K);
	assert_fdinfo(fd, 2, 0, 1, 1, (2 * SZ_64K + SZ_4K) / SZ_4K,
		      "two overlapping punches of hugepage 1");
	do_punch(fd, 0, 2 * hpage);
	assert_pool(&self->base, 0, 0, "punched the whole file");
	assert_fdinfo(fd, 2, 0, 0, 0, 0, "punched the whole file");

	close(fd);
	assert_pool(&self->base, 0, 0, "closed");
	free(model);
}

/* ------------------------------------------------------------------------ */
/* d. Tracepoint                                                            */
/* ------------------------------------------------------------------------ */

static const char *event_str(const struct gmem_event *e, char *buf, size_t len)
{
	snprintf(buf, len, "index 0x%lx order %u why %s", e->index, e->order,
		 e->why);
	return buf;
}

TEST_F_TIMEOUT(gmem_punch, tracepoint_sequence, 120)
{
	const uint64_t hpage = variant->page_size;
	const uint64_t nr_sub = hpage / SZ_4K;
	const uint64_t q = hpage / 4;
	/* Byte ranges; allocate or punch. */
	const struct {
		bool punch;
		uint64_t offset;
		uint64_t len;
	} ops[] = {
		{ false, 0, 2 * hpage },
		{ true, hpage + 2 * q, q },
		{ true, hpage + SZ_4K, 2 * SZ_4K },
		/* Overlaps the first punch: only two new order-1 blocks. */
		{ true, hpage + 2 * q - 2 * SZ_4K, q + 4 * SZ_4K },
		/* Refill one subpage, then punch 64K around it. */
		{ false, hpage + 2 * q, SZ_4K },
		{ true, hpage + 2 * q, SZ_64K },
		/* All of hugepage 0 but its first subpage, then that. */
		{ true, SZ_4K, hpage - SZ_4K },
		{ true, 0, SZ_4K },
		/* A new folio for hugepage 0: punch part, then all of it. */
		{ false, 2 * q, SZ_4K },
		{ true, q, q },
		{ true, 0, hpage },
		{ false, 0, SZ_4K },
		/* Across the two hugepages. */
		{ true, hpage - 2 * SZ_4K, 4 * SZ_4K },
		/*
		 * [0, 4K), then the rest: the second punch frees the folio
		 * without zeroing it (release blocks, no punch blocks).
		 */
		{ false, 0, hpage },
		{ true, 0, SZ_4K },
		{ true, SZ_4K, hpage - SZ_4K },
	};
	struct event_list seen = {};
	struct gmem_model m = {};
	uint64_t pfn_delta[2] = {};
	bool have_delta[2] = {};
	char a[96], b[96];
	uint64_t i, h;
	int fd, r;

	if (access(GMEM_EVENT_DIR "/enable", W_OK))
		SKIP(return, "No %s/enable: %s", GMEM_EVENT_DIR, strerror(errno));
	if (!hugepages_available(2))
		return;

	m.order = __builtin_ctzl(nr_sub);
	m.nr_sub = nr_sub;
	m.nr_hpages = 2;
	m.punched[0] = calloc(nr_sub, 1);
	m.punched[1] = calloc(nr_sub, 1);
	ASSERT_TRUE(m.punched[0] && m.punched[1]);

	r = write_str_to_file(GMEM_EVENT_DIR "/enable", "1");
	ASSERT_EQ(0, r) TH_LOG("Can't enable kvm_gmem_invalidate: %s", strerror(-r));
	self->tracing = true;
	r = write_str_to_file(TRACING_DIR "/trace", "");
	ASSERT_EQ(0, r) TH_LOG("Can't clear the trace: %s", strerror(-r));

	fd = vm_create_guest_memfd(self->vm, 2 * hpage, self->flags);
	for (i = 0; i < ARRAY_SIZE(ops); i++) {
		uint64_t start = ops[i].offset / SZ_4K;
		uint64_t end = start + ops[i].len / SZ_4K;

		if (ops[i].punch) {
			do_punch(fd, ops[i].offset, ops[i].len);
			model_punch(&m, start, end);
		} else {
			do_allocate(fd, ops[i].offset, ops[i].len);
			model_allocate(&m, start, end);
		}
	}
	close(fd);
	model_close(&m);
	assert_pool(&self->base, 0, 0, "closed");

	read_gmem_events(_metadata, &seen);
	write_str_to_file(GMEM_EVENT_DIR "/enable", "0");
	self->tracing = false;

	for (i = 0; i < m.expected.nr || i < seen.nr; i++) {
		const struct gmem_event *e = i < m.expected.nr ? &m.expected.ev[i] : NULL;
		const struct gmem_event *s = i < seen.nr ? &seen.ev[i] : NULL;

		ksft_print_msg("%3lu: expected %-40s seen %s\n", i,
			       e ? event_str(e, a, sizeof(a)) : "-",
			       s ? event_str(s, b, sizeof(b)) : "-");
	}
	ASSERT_EQ(m.expected.nr, seen.nr)
		TH_LOG("Expected %lu kvm_gmem_invalidate events, traced %lu",
		       m.expected.nr, seen.nr);

	for (i = 0; i < seen.nr; i++) {
		const struct gmem_event *e = &m.expected.ev[i];
		const struct gmem_event *s = &seen.ev[i];

		ASSERT_TRUE(e->index == s->index && e->order == s->order &&
			    !strcmp(e->why, s->why))
			TH_LOG("Event %lu: expected %s, traced %s", i,
			       event_str(e, a, sizeof(a)),
			       event_str(s, b, sizeof(b)));

		/* The pfn of a block is aligned to its size... */
		ASSERT_EQ(0, s->pfn & ((1ULL << s->order) - 1))
			TH_LOG("Event %lu (%s) has pfn 0x%lx, not aligned to its order",
			       i, event_str(s, b, sizeof(b)), s->pfn);

		/* ... and at a constant distance from the index in a folio. */
		h = s->index / nr_sub;
		if (!have_delta[h]) {
			pfn_delta[h] = s->pfn - s->index;
			have_delta[h] = true;
		}
		ASSERT_EQ(pfn_delta[h], s->pfn - s->index)
			TH_LOG("Event %lu (%s) has pfn 0x%lx, the folio's earlier events had pfn - index = 0x%lx",
			       i, event_str(s, b, sizeof(b)), s->pfn,
			       pfn_delta[h]);
		if (!strcmp(s->why, "free"))
			have_delta[h] = false;
	}

	free(seen.ev);
	free(m.expected.ev);
	free(m.punched[0]);
	free(m.punched[1]);
}

/* ------------------------------------------------------------------------ */
/* e. The guest reads zeroes exactly where the host punched                 */
/* ------------------------------------------------------------------------ */

TEST_F_TIMEOUT(gmem_punch, guest_sees_zeroes_after_partial_punch, 300)
{
	const uint64_t hpage = variant->page_size;
	const struct ranges punch = {
		.nr = 6,
		.start = {
			SZ_4K,
			hpage / 4 + 3 * SZ_4K,		/* 64K, not 64K aligned */
			hpage / 2 + 7 * SZ_4K,
			hpage / 2 + 9 * SZ_4K,
			3 * hpage / 4 + 5 * SZ_4K,
			hpage - SZ_4K,
		},
		.end = {
			2 * SZ_4K,
			hpage / 4 + 3 * SZ_4K + SZ_64K,
			hpage / 2 + 8 * SZ_4K,
			hpage / 2 + 10 * SZ_4K,
			3 * hpage / 4 + 6 * SZ_4K,
			hpage,
		},
	};
	uint64_t i, nr_punched = 0;
	struct private_guest pg;
	double start;

	if (!sw_protected_vm_supported())
		SKIP(return, "KVM_X86_SW_PROTECTED_VM not supported");
	if (!hugepages_available(1))
		return;

	private_guest_create(&pg, guest_zero_code, self->flags, hpage, 0, hpage);
	vcpu_args_set(pg.vcpu, 3, TEST_GPA, hpage, variant->guest_stride);
	punched_ranges = punch;
	sync_global_to_guest(pg.vm, punched_ranges);

	run_guest(pg.vcpu, STAGE_READY);
	start = now_seconds();
	run_guest(pg.vcpu, STAGE_FILLED);
	ksft_print_msg("guest filled %zukB in %.1f s\n", hpage >> 10,
		       now_seconds() - start);
	assert_pool(&self->base, -1, 0, "guest wrote its memory");
	assert_fdinfo(pg.fd, 1, 0, 1, 0, 0, "guest wrote its memory");

	for (i = 0; i < punch.nr; i++) {
		do_punch(pg.fd, punch.start[i], punch.end[i] - punch.start[i]);
		nr_punched += (punch.end[i] - punch.start[i]) / SZ_4K;
		assert_pool(&self->base, -1, 0, "punched [0x%lx, 0x%lx)",
			    punch.start[i], punch.end[i]);
	}
	assert_fdinfo(pg.fd, 1, 0, 1, 1, nr_punched, "punched %lu ranges", punch.nr);

	start = now_seconds();
	run_guest(pg.vcpu, STAGE_CHECKED);
	ksft_print_msg("guest checked %zukB in %.1f s\n", hpage >> 10,
		       now_seconds() - start);

	/* The guest faulted in every punched subpage: all refilled. */
	assert_pool(&self->base, -1, 0, "guest read its memory");
	assert_fdinfo(pg.fd, 1, 0, 1, 0, 0,
		      "guest read every punched subpage, refilling them");

	run_guest(pg.vcpu, 0);
	private_guest_destroy(&pg);
	assert_pool(&self->base, 0, 0, "destroyed the VM and closed the file");
}

/* ------------------------------------------------------------------------ */
/* f. Mapping level                                                         */
/* ------------------------------------------------------------------------ */

TEST_F_TIMEOUT(gmem_punch, mapping_level_drops_and_returns, 300)
{
	const uint64_t hpage = variant->page_size;
	const size_t smaller = smaller_level(hpage);
	/* Every 4K for 2M: each one faults; 1G needs one per 2M only. */
	const uint64_t stride = hpage >= SZ_1G ? SZ_64K : SZ_4K;
	const uint64_t hole = hpage / 2 + 5 * SZ_4K;
	/* 4KiB-or-smaller pages the guest touches, skipping the hole. */
	const uint64_t nr_small = hpage >= SZ_1G ? hpage / SZ_2M - 1 :
				  hpage / SZ_4K - 1;
	struct vm_mapping_level_stats base, now, punched;
	struct private_guest pg;
	uint64_t pass = 0;
	char lv[96];

	if (!sw_protected_vm_supported())
		SKIP(return, "KVM_X86_SW_PROTECTED_VM not supported");
	if (!hugepages_available(1))
		return;

	private_guest_create(&pg, guest_touch_code, self->flags, hpage, 0, hpage);
	vcpu_args_set(pg.vcpu, 4, TEST_GPA, hpage, stride, hole);

	run_guest(pg.vcpu, STAGE_READY);
	vm_get_mapping_level_stats(pg.vm, &base);

	/* Whole: mapped at the hugepage size. */
	run_guest(pg.vcpu, STAGE_TOUCH + pass++);
	vm_get_mapping_level_stats(pg.vm, &now);
	ASSERT_EQ(level_pages(&base, hpage) + 1, level_pages(&now, hpage))
		TH_LOG("Hugepage not mapped at %zukB (%s)",
		       hpage >> 10, levels_str(&base, &now, lv, sizeof(lv)));
	assert_pool(&self->base, -1, 0, "guest touched its memory");

	/* A 4KiB hole: zapped, then refaulted smaller. */
	do_punch(pg.fd, hole, SZ_4K);
	assert_fdinfo(pg.fd, 1, 0, 1, 1, 1, "punched 4K at 0x%lx", hole);
	vm_get_mapping_level_stats(pg.vm, &punched);
	ASSERT_EQ(level_pages(&base, hpage), level_pages(&punched, hpage))
		TH_LOG("PUNCH_HOLE of 4K didn't zap the %zukB mapping (%s)",
		       hpage >> 10, levels_str(&now, &punched, lv, sizeof(lv)));

	run_guest(pg.vcpu, STAGE_TOUCH + pass++);
	vm_get_mapping_level_stats(pg.vm, &now);
	ASSERT_EQ(level_pages(&base, hpage), level_pages(&now, hpage))
		TH_LOG("Hugepage with a hole mapped at %zukB (%s)",
		       hpage >> 10, levels_str(&base, &now, lv, sizeof(lv)));
	ASSERT_LE(level_pages(&punched, smaller) + nr_small, level_pages(&now, smaller))
		TH_LOG("Expected at least %lu new %zukB mappings (%s)",
		       nr_small, smaller >> 10, levels_str(&punched, &now, lv, sizeof(lv)));
	/* The guest didn't touch the hole. */
	assert_fdinfo(pg.fd, 1, 0, 1, 1, 1, "guest touched all but the hole");

	/* Zapping alone doesn't bring the hugepage mapping back. */
	vm_mem_set_shared(pg.vm, TEST_GPA, hpage);
	vm_mem_set_private(pg.vm, TEST_GPA, hpage);
	run_guest(pg.vcpu, STAGE_TOUCH + pass++);
	vm_get_mapping_level_stats(pg.vm, &now);
	ASSERT_EQ(level_pages(&base, hpage), level_pages(&now, hpage))
		TH_LOG("Hugepage with a hole mapped at %zukB after conversion (%s)",
		       hpage >> 10, levels_str(&base, &now, lv, sizeof(lv)));

	/* Refill the hole: after a zap, the next fault maps it whole. */
	do_allocate(pg.fd, hole, SZ_4K);
	assert_fdinfo(pg.fd, 1, 0, 1, 0, 0, "refilled the hole");
	assert_pool(&self->base, -1, 0, "refilled the hole");

	vm_get_mapping_level_stats(pg.vm, &punched);
	vm_mem_set_shared(pg.vm, TEST_GPA, hpage);
	vm_mem_set_private(pg.vm, TEST_GPA, hpage);
	vm_get_mapping_level_stats(pg.vm, &now);
	ASSERT_LE(level_pages(&now, smaller) + nr_small, level_pages(&punched, smaller))
		TH_LOG("Conversion didn't zap the %lu %zukB mappings (%s)",
		       nr_small, smaller >> 10, levels_str(&punched, &now, lv, sizeof(lv)));
	run_guest(pg.vcpu, STAGE_TOUCH + pass++);
	vm_get_mapping_level_stats(pg.vm, &now);
	ASSERT_EQ(level_pages(&base, hpage) + 1, level_pages(&now, hpage))
		TH_LOG("Refilled hugepage not mapped at %zukB (%s)",
		       hpage >> 10, levels_str(&base, &now, lv, sizeof(lv)));
	if (hpage >= SZ_1G)
		ASSERT_EQ(base.pages_2m, now.pages_2m)
			TH_LOG("2M mappings left over (%s)",
			       levels_str(&base, &now, lv, sizeof(lv)));

	private_guest_destroy(&pg);
	assert_pool(&self->base, 0, 0, "destroyed the VM and closed the file");
}

/* ------------------------------------------------------------------------ */
/* g. Concurrent punch, refill, fault and conversion                        */
/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* Joining test threads, with a diagnosis when one of them is stuck         */
/* ------------------------------------------------------------------------ */

struct test_thread {
	const char *name;
	pthread_t thread;
	pid_t tid;
	bool joined;
};

static void test_thread_started(struct test_thread *t)
{
	WRITE_ONCE(t->tid, syscall(SYS_gettid));
}

static void print_file(const char *what, const char *path)
{
	char line[512];
	FILE *f = fopen(path, "r");

	if (!f) {
		ksft_print_msg("  %s: %s: %s\n", what, path, strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f))
		ksft_print_msg("  %s: %s", what, line);
	fclose(f);
}

/* KVM's debugfs statistics of this process's VMs, one "name value" each. */
static int read_kvm_stats(char names[][32], uint64_t *vals, int max)
{
	char path[PATH_MAX];
	struct dirent *de;
	glob_t g = {};
	int n = 0;
	size_t i;

	snprintf(path, sizeof(path), "/sys/kernel/debug/kvm/%d-*", getpid());
	if (glob(path, 0, NULL, &g))
		return 0;
	for (i = 0; i < g.gl_pathc; i++) {
		DIR *d = opendir(g.gl_pathv[i]);

		while (d && (de = readdir(d)) && n < max) {
			FILE *f;

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", g.gl_pathv[i],
				 de->d_name);
			f = fopen(path, "r");
			if (!f)
				continue;
			if (fscanf(f, "%lu", &vals[n]) == 1)
				snprintf(names[n++], 32, "%.31s", de->d_name);
			fclose(f);
		}
		if (d)
			closedir(d);
	}
	globfree(&g);
	return n;
}

/* The first @max events in the trace buffer, and how many of each. */
static void print_trace_summary(int max)
{
	char line[512], names[16][48];
	int i, nr = 0, lines = 0, counts[16] = {};
	FILE *f = fopen(TRACING_DIR "/trace", "r");

	ksft_print_msg("KVM events in that second (first %d):\n", max);
	while (f && fgets(line, sizeof(line), f)) {
		char *p, *q;

		if (line[0] == '#')
			continue;
		if (lines++ < max)
			ksft_print_msg("  %s", line);
		p = strstr(line, ": ");
		q = p ? strstr(p + 2, ": ") : NULL;
		if (!p || !q || q - p - 2 >= 48)
			continue;
		*q = 0;
		for (i = 0; i < nr && strcmp(names[i], p + 2); i++)
			;
		if (i == nr && nr < 16)
			snprintf(names[nr++], 48, "%s", p + 2);
		if (i < nr)
			counts[i]++;
	}
	if (f)
		fclose(f);
	ksft_print_msg("  %d events in all\n", lines);
	for (i = 0; i < nr; i++)
		ksft_print_msg("  %s: %d\n", names[i], counts[i]);
}

/*
 * Where is a thread that does not finish?  Each thread's state and kernel
 * stack, which KVM statistics move in one second (a vCPU retrying a fault
 * forever moves pf_taken; one stuck in the guest moves nothing), and one
 * second of kvm_exit/kvm_page_fault events.
 */
static void diagnose_stuck_threads(struct test_thread *t, int n)
{
	static const char * const events[] = {
		"kvm/kvm_exit", "kvm/kvm_page_fault", "kvm/kvm_entry",
		"kvmmmu/fast_page_fault", "kvmmmu/kvm_mmu_spte_requested",
		"kvmmmu/kvm_mmu_set_spte",
	};
	static char names[2][256][32];
	static uint64_t vals[2][256];
	char path[PATH_MAX];
	int i, j, nr[2];

	for (i = 0; i < n; i++) {
		if (t[i].joined)
			continue;
		ksft_print_msg("thread %s (tid %d) has not finished:\n",
			       t[i].name, t[i].tid);
		snprintf(path, sizeof(path), "/proc/self/task/%d/stat", t[i].tid);
		print_file("stat", path);
		snprintf(path, sizeof(path), "/proc/self/task/%d/wchan", t[i].tid);
		print_file("wchan", path);
		ksft_print_msg("\n");
		snprintf(path, sizeof(path), "/proc/self/task/%d/stack", t[i].tid);
		print_file("stack", path);
	}

	nr[0] = read_kvm_stats(names[0], vals[0], 256);
	write_str_to_file(TRACING_DIR "/trace", "");
	for (i = 0; i < ARRAY_SIZE(events); i++) {
		snprintf(path, sizeof(path), TRACING_DIR "/events/%s/enable",
			 events[i]);
		write_str_to_file(path, "1");
	}
	sleep(1);
	for (i = 0; i < ARRAY_SIZE(events); i++) {
		snprintf(path, sizeof(path), TRACING_DIR "/events/%s/enable",
			 events[i]);
		write_str_to_file(path, "0");
	}
	nr[1] = read_kvm_stats(names[1], vals[1], 256);
	ksft_print_msg("KVM statistics that moved in 1 s:\n");
	for (i = 0; i < nr[1]; i++) {
		for (j = 0; j < nr[0]; j++) {
			if (!strcmp(names[0][j], names[1][i]) &&
			    vals[0][j] != vals[1][i])
				ksft_print_msg("  %s: %lu -> %lu\n", names[1][i],
					       vals[0][j], vals[1][i]);
		}
	}
	print_trace_summary(60);
}

static void kick_handler(int sig)
{
}

static int join_by(struct test_thread *t, int n, int secs)
{
	struct timespec deadline;
	int i, left = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += secs;
	for (i = 0; i < n; i++) {
		if (!t[i].joined &&
		    !pthread_timedjoin_np(t[i].thread, NULL, &deadline))
			t[i].joined = true;
		left += !t[i].joined;
	}
	return left;
}

/*
 * Join @n threads that were told to stop.  If some have not finished after
 * @secs seconds, print where they are, interrupt them with SIGUSR1 (a vCPU
 * thread leaves KVM_RUN with EINTR) and wait @secs more.  Return the number
 * of threads that did not finish in time (0 when all did).
 */
static int join_test_threads(struct test_thread *t, int n, int secs)
{
	struct sigaction sa = { .sa_handler = kick_handler };
	int i, stuck, left;

	stuck = join_by(t, n, secs);
	if (!stuck)
		return 0;

	ksft_print_msg("%d thread(s) still running %d s after the stop\n",
		       stuck, secs);
	diagnose_stuck_threads(t, n);
	sigaction(SIGUSR1, &sa, NULL);
	for (i = 0; i < n; i++) {
		if (!t[i].joined)
			pthread_kill(t[i].thread, SIGUSR1);
	}
	left = join_by(t, n, secs);
	ksft_print_msg("after SIGUSR1, %d thread(s) still running\n", left);
	return stuck;
}

enum { STRESS_PUNCH, STRESS_REFILL, STRESS_CONVERT, STRESS_VCPU, STRESS_NR };

struct stress {
	struct private_guest *pg;
	struct test_thread threads[STRESS_NR];
	uint64_t hpage;
	int whole_punch;
	int max_whole;
	uint64_t large_punch;
	uint64_t large_convert;
	bool stop;
	pthread_barrier_t barrier;
	/* Counts, one writer each. */
	uint64_t punches, whole_punches, refills, conversions, syncs;
	/* Words the guest read back: its pattern, or zero (punched). */
	uint64_t guest_own, guest_zero;
	uint64_t memory_faults;
};

static void *stress_punch_fn(void *arg)
{
	struct stress *st = arg;
	uint64_t size = st->pg->size, seed = 0x9e3779b97f4a7c15ULL ^ (uintptr_t)&seed;
	uint64_t off, len;
	int r;

	test_thread_started(&st->threads[STRESS_PUNCH]);
	pthread_barrier_wait(&st->barrier);
	while (!READ_ONCE(st->stop)) {
		if (!rng_below(&seed, st->whole_punch) &&
		    st->whole_punches < st->max_whole) {
			off = rng_below(&seed, size / st->hpage) * st->hpage;
			len = st->hpage;
			st->whole_punches++;
		} else {
			off = rng_below(&seed, size / SZ_4K) * SZ_4K;
			len = (1 + rng_below(&seed, 64)) * SZ_4K;
			if (rng_below(&seed, 16) == 0)
				len = (1 + rng_below(&seed, st->large_punch / SZ_4K)) * SZ_4K;
			if (off + len > size)
				len = size - off;
		}
		r = gmem_fallocate(st->pg->fd, true, off, len);
		TEST_ASSERT(!r, "Concurrent PUNCH_HOLE(0x%lx, 0x%lx) failed: %s",
			    off, len, strerror(errno));
		st->punches++;
	}
	return NULL;
}

static void *stress_refill_fn(void *arg)
{
	struct stress *st = arg;
	uint64_t size = st->pg->size, seed = 0xd1b54a32d192ed03ULL ^ (uintptr_t)&seed;
	uint64_t off, len;
	int r;

	test_thread_started(&st->threads[STRESS_REFILL]);
	pthread_barrier_wait(&st->barrier);
	while (!READ_ONCE(st->stop)) {
		off = rng_below(&seed, size / SZ_4K) * SZ_4K;
		len = (1 + rng_below(&seed, 64)) * SZ_4K;
		if (off + len > size)
			len = size - off;
		r = gmem_fallocate(st->pg->fd, false, off, len);
		TEST_ASSERT(!r, "Concurrent fallocate(0x%lx, 0x%lx) failed: %s",
			    off, len, strerror(errno));
		st->refills++;
	}
	return NULL;
}

static void *stress_convert_fn(void *arg)
{
	struct stress *st = arg;
	uint64_t size = st->pg->size, seed = 0x94d049bb133111ebULL ^ (uintptr_t)&seed;
	uint64_t off, len;

	test_thread_started(&st->threads[STRESS_CONVERT]);
	pthread_barrier_wait(&st->barrier);
	while (!READ_ONCE(st->stop)) {
		if (rng_below(&seed, 8) == 0) {
			len = st->large_convert;
			off = rng_below(&seed, size / len) * len;
		} else {
			off = rng_below(&seed, size / SZ_4K) * SZ_4K;
			len = (1 + rng_below(&seed, 512)) * SZ_4K;
			if (off + len > size)
				len = size - off;
		}
		vm_mem_set_shared(st->pg->vm, TEST_GPA + off, len);
		vm_mem_set_private(st->pg->vm, TEST_GPA + off, len);
		st->conversions++;
	}
	return NULL;
}

static void *stress_vcpu_fn(void *arg)
{
	struct stress *st = arg;
	struct kvm_vcpu *vcpu = st->pg->vcpu;
	struct kvm_run *run = vcpu->run;
	struct ucall uc;
	int r;

	test_thread_started(&st->threads[STRESS_VCPU]);
	pthread_barrier_wait(&st->barrier);
	while (!READ_ONCE(st->stop)) {
		r = _vcpu_run(vcpu);
		/*
		 * A conversion between KVM's two checks of the attributes
		 * makes KVM exit with KVM_EXIT_MEMORY_FAULT; run again.
		 */
		if (r && errno == EFAULT &&
		    run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
			st->memory_faults++;
			continue;
		}
		/* Kicked out of KVM_RUN by join_test_threads(). */
		if (r && errno == EINTR && READ_ONCE(st->stop))
			break;
		TEST_ASSERT(!r, KVM_IOCTL_ERROR(KVM_RUN, r));
		/*
		 * The registers are of no use here: SVM re-INITs a vCPU after
		 * a shutdown intercept.
		 */
		TEST_ASSERT(run->exit_reason != KVM_EXIT_SHUTDOWN,
			    "KVM_EXIT_SHUTDOWN: the guest triple-faulted after %lu syncs (%lu punches, %lu refills, %lu conversions so far)",
			    st->syncs, st->punches, st->refills, st->conversions);
		TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);

		switch (get_ucall(vcpu, &uc)) {
		case UCALL_SYNC:
			TEST_ASSERT(uc.args[1] == STAGE_STRESS,
				    "Guest synced at stage %lu", uc.args[1]);
			st->syncs++;
			st->guest_own = uc.args[2];
			st->guest_zero = uc.args[3];
			break;
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
			break;
		default:
			TEST_FAIL("Unexpected ucall %lu", uc.cmd);
		}
	}
	return NULL;
}

/* The stress parameters of a variant, see FIXTURE_VARIANT(gmem_punch). */
struct stress_params {
	size_t page_size;
	int seconds;
	int whole_punch;
	int max_whole;
	uint64_t large_punch;
	uint64_t large_convert;
};

/*
 * The stress on a file of two hugepages of @p->page_size, created with
 * @flags.  @base is the pool before, or NULL for a regular guest_memfd: then
 * there is no pool or fdinfo to check.
 */
static void stress_run(struct __test_metadata *_metadata,
		       const struct stress_params *p,
		       const struct hugetlb_pool_stats *base, uint64_t flags)
{
	static const struct {
		const char *name;
		void *(*fn)(void *arg);
	} fns[STRESS_NR] = {
		[STRESS_PUNCH] = { "punch", stress_punch_fn },
		[STRESS_REFILL] = { "refill", stress_refill_fn },
		[STRESS_CONVERT] = { "convert", stress_convert_fn },
		[STRESS_VCPU] = { "vcpu", stress_vcpu_fn },
	};
	const uint64_t hpage = p->page_size;
	const uint64_t size = 2 * hpage;
	struct private_guest pg;
	struct gmem_fdinfo fi;
	struct stress st = {};
	uint64_t checks = 0, memmap = memmap_pages();
	double end;
	int i, r;

	private_guest_create(&pg, guest_stress_code, flags, size, 0, size);
	/* The guest's generator needs a seed in [1, 2^31 - 2]. */
	vcpu_args_set(pg.vcpu, 3, TEST_GPA, size, test_seed() % 0x7ffffffe + 1);
	run_guest(pg.vcpu, STAGE_READY);
	if (base)
		__assert_pool(_metadata, hpage, base, 0, 2, __LINE__,
			      "created a 2 page file");
	/* Allocate (and zero) both hugepages before the clock starts. */
	do_allocate(pg.fd, 0, size);
	if (base)
		__assert_pool(_metadata, hpage, base, -2, 0, __LINE__,
			      "allocated the file");

	st.pg = &pg;
	st.hpage = hpage;
	st.whole_punch = p->whole_punch;
	st.max_whole = p->max_whole;
	st.large_punch = p->large_punch;
	st.large_convert = p->large_convert;
	pthread_barrier_init(&st.barrier, NULL, STRESS_NR + 1);
	for (i = 0; i < STRESS_NR; i++) {
		st.threads[i].name = fns[i].name;
		r = pthread_create(&st.threads[i].thread, NULL, fns[i].fn, &st);
		ASSERT_EQ(0, r) TH_LOG("pthread_create() failed: %s", strerror(r));
	}

	pthread_barrier_wait(&st.barrier);
	end = now_seconds() + p->seconds;
	while (now_seconds() < end) {
		checks++;
		usleep(1000);
		if (!base)
			continue;
		read_fdinfo(_metadata, pg.fd, &fi);
		ASSERT_TRUE(fi.page_size == hpage && fi.pages == 2 &&
			    fi.allocated + fi.reserved <= fi.pages &&
			    fi.partial_folios <= fi.pages &&
			    fi.punched_subpages <= fi.pages * (hpage / SZ_4K))
			TH_LOG("Inconsistent fdinfo during the run: page_size %lu pages %lu reserved %lu allocated %lu partial_folios %lu punched_subpages %lu",
			       fi.page_size, fi.pages, fi.reserved, fi.allocated,
			       fi.partial_folios, fi.punched_subpages);
	}
	WRITE_ONCE(st.stop, true);
	r = join_test_threads(st.threads, STRESS_NR, 60);
	ASSERT_EQ(0, r)
		TH_LOG("%d of the stress threads did not finish within 60 s of the stop (%lu punches, %lu refills, %lu conversions, %lu guest syncs so far); see the diagnosis above",
		       r, st.punches, st.refills, st.conversions, st.syncs);
	pthread_barrier_destroy(&st.barrier);

	ksft_print_msg("%zukB, %d s: %lu punches (%lu whole), %lu refills, %lu conversions, %lu guest syncs, %lu memory fault exits, %lu fdinfo checks\n",
		       hpage >> 10, p->seconds, st.punches,
		       st.whole_punches, st.refills, st.conversions, st.syncs,
		       st.memory_faults, checks);
	ASSERT_TRUE(st.punches && st.refills && st.conversions && st.syncs)
		TH_LOG("A thread made no progress");
	ksft_print_msg("the guest read back %lu words it wrote (%lu its pattern, %lu punched meanwhile) and as many random ones\n",
		       st.guest_own + st.guest_zero, st.guest_own, st.guest_zero);
	ASSERT_NE(0, st.guest_own)
		TH_LOG("The guest never read back its pattern (%lu zeroes)",
		       st.guest_zero);

	if (!base) {
		private_guest_destroy(&pg);
		return;
	}

	/* Quiescent: the counters agree with each other and the pool. */
	read_fdinfo(_metadata, pg.fd, &fi);
	ASSERT_TRUE(fi.allocated + fi.reserved <= fi.pages &&
		    fi.partial_folios <= fi.allocated &&
		    fi.punched_subpages >= fi.partial_folios &&
		    fi.punched_subpages <= fi.partial_folios * (hpage / SZ_4K - 1))
		TH_LOG("Inconsistent fdinfo after the run: reserved %lu allocated %lu partial_folios %lu punched_subpages %lu",
		       fi.reserved, fi.allocated, fi.partial_folios,
		       fi.punched_subpages);
	__assert_pool_matches_fdinfo(_metadata, pg.fd, hpage, base, __LINE__,
				     "after the run");

	kvm_vm_free(pg.vm);
	__assert_pool_matches_fdinfo(_metadata, pg.fd, hpage, base, __LINE__,
				     "freed the VM");
	close(pg.fd);
	__assert_pool(_metadata, hpage, base, 0, 0, __LINE__,
		      "freed the VM and closed the file");

	/* Punches, refills and conversions never undid HVO. */
	ASSERT_EQ(memmap, memmap_pages())
		TH_LOG("nr_memmap_pages went from %lu to %lu across the stress",
		       memmap, memmap_pages());
}

TEST_F_TIMEOUT(gmem_punch, stress_punch_fault_convert, 300)
{
	const struct stress_params p = {
		.page_size = variant->page_size,
		.seconds = variant->stress_seconds,
		.whole_punch = variant->stress_whole_punch,
		.max_whole = variant->stress_max_whole,
		.large_punch = variant->stress_large_punch,
		.large_convert = variant->stress_large_convert,
	};

	if (!sw_protected_vm_supported())
		SKIP(return, "KVM_X86_SW_PROTECTED_VM not supported");
	if (!hugepages_available(2))
		return;

	stress_run(_metadata, &p, &self->base, self->flags);
}

/*
 * The peer of stress_punch_fault_convert: the same threads on a regular
 * guest_memfd of the 2M variant's size, to tell a failure of the hugetlb
 * code from one of KVM or of the machine underneath.
 */
FIXTURE(gmem_4k_peer) {};
FIXTURE_SETUP(gmem_4k_peer) {}
FIXTURE_TEARDOWN(gmem_4k_peer) {}

TEST_F_TIMEOUT(gmem_4k_peer, stress_punch_fault_convert, 300)
{
	static const struct stress_params peer = {
		.page_size = SZ_2M,
		.seconds = 4,
		.whole_punch = 64,
		.max_whole = INT_MAX,
		.large_punch = SZ_1M,
		.large_convert = SZ_2M,
	};

	if (!sw_protected_vm_supported())
		SKIP(return, "KVM_X86_SW_PROTECTED_VM not supported");

	stress_run(_metadata, &peer, NULL, 0);
}

/* ------------------------------------------------------------------------ */
/* h. A fault racing with a partial punch                                   */
/* ------------------------------------------------------------------------ */

struct spin {
	struct kvm_vcpu *vcpu;
	bool stop;
	uint64_t syncs;
	uint64_t memory_faults;
};

/*
 * A vCPU's page faults that KVM retried: taken, but neither fixed,
 * emulated nor spurious.  A fault is retried when an invalidation of the
 * guest's memory (a punch, a conversion) overlapped it.
 */
struct vcpu_pf_stats {
	int fd;
	struct kvm_stats_header header;
	struct kvm_stats_desc *desc[4];
};

static void vcpu_pf_stats_open(struct kvm_vcpu *vcpu, struct vcpu_pf_stats *ps)
{
	static const char * const names[] = {
		"pf_taken", "pf_fixed", "pf_emulate", "pf_spurious",
	};
	struct kvm_stats_desc *all, *d;
	int i, j;

	ps->fd = vcpu_get_stats_fd(vcpu);
	read_stats_header(ps->fd, &ps->header);
	all = read_stats_descriptors(ps->fd, &ps->header);
	for (j = 0; j < ARRAY_SIZE(names); j++) {
		ps->desc[j] = NULL;
		for (i = 0; i < ps->header.num_desc; i++) {
			d = get_stats_descriptor(all, i, &ps->header);
			if (!strcmp(d->name, names[j]))
				ps->desc[j] = d;
		}
		TEST_ASSERT(ps->desc[j], "No vCPU stat %s", names[j]);
	}
}

static uint64_t vcpu_pf_retried(struct vcpu_pf_stats *ps)
{
	uint64_t v[4];
	int j;

	for (j = 0; j < 4; j++)
		read_stat_data(ps->fd, &ps->header, ps->desc[j], &v[j], 1);
	return v[0] - v[1] - v[2] - v[3];
}

static void *spin_vcpu_fn(void *arg)
{
	struct spin *sp = arg;
	struct kvm_run *run = sp->vcpu->run;
	struct ucall uc;
	int r;

	while (!READ_ONCE(sp->stop)) {
		r = _vcpu_run(sp->vcpu);
		/* A conversion between KVM's two attribute checks: run again. */
		if (r && errno == EFAULT &&
		    run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
			sp->memory_faults++;
			continue;
		}
		TEST_ASSERT(!r, KVM_IOCTL_ERROR(KVM_RUN, r));
		TEST_ASSERT_KVM_EXIT_REASON(sp->vcpu, KVM_EXIT_IO);
		switch (get_ucall(sp->vcpu, &uc)) {
		case UCALL_SYNC:
			sp->syncs++;
			break;
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
			break;
		default:
			TEST_FAIL("Unexpected ucall %lu", uc.cmd);
		}
	}
	return NULL;
}

struct prefaulter {
	struct kvm_vcpu *vcpu;
	uint64_t gpa;
	double punch_start;
	bool stop;
	/* When the first attempt that succeeded returned. */
	double first_ok;
	/* Attempts, and those that ended after the punch started. */
	uint64_t tries, tries_in_punch;
};

static void *prefault_fn(void *arg)
{
	struct prefaulter *pf = arg;
	struct kvm_pre_fault_memory range;
	double t;
	int r;

	while (!READ_ONCE(pf->stop)) {
		range.gpa = pf->gpa;
		range.size = SZ_4K;
		range.flags = 0;
		memset(range.padding, 0, sizeof(range.padding));
		r = __vcpu_ioctl(pf->vcpu, KVM_PRE_FAULT_MEMORY, &range);
		TEST_ASSERT(!r || errno == ENOMEM,
			    "KVM_PRE_FAULT_MEMORY failed with %s", strerror(errno));
		t = now_seconds();
		pf->tries++;
		if (READ_ONCE(pf->punch_start) && t >= READ_ONCE(pf->punch_start))
			pf->tries_in_punch++;
		if (!r) {
			pf->first_ok = t;
			break;
		}
	}
	return NULL;
}

/*
 * A punch gives each hugepage's reservation back as it releases it, not
 * at its end: with the pool exhausted, a fault on a released hugepage of
 * the same file, outside the punched range (so KVM does not hold it back
 * as stale), succeeds while the punch is still releasing the others.
 * Before, every such fault failed with ENOMEM until the punch returned.
 */
TEST_F_TIMEOUT(gmem_punch, refault_during_long_punch, 300)
{
	const uint64_t hpage = variant->page_size;
	uint64_t n = pool_available(&self->base);
	struct prefaulter pf = {};
	struct private_guest pg;
	double punch_end;
	pthread_t thread;
	int fd2;

	if (hpage != SZ_2M)
		SKIP(return, "Needs many hugepages: 2M only");
	if (n < 64)
		SKIP(return, "Need 64 unreserved hugepages, have %lu", n);

	/* The file holds the whole pool; its last hugepage is released. */
	private_guest_create(&pg, guest_spin_code, self->flags, n * hpage, 0,
			     n * hpage);
	do_punch(pg.fd, (n - 1) * hpage, hpage);
	/* Another file takes the one free page: nothing is left to reserve. */
	fd2 = vm_create_guest_memfd(self->vm, hpage, self->flags);
	assert_pool(&self->base, 0, n, "the pool is exhausted");

	pf.vcpu = pg.vcpu;
	pf.gpa = TEST_GPA + (n - 1) * hpage;
	ASSERT_EQ(0, pthread_create(&thread, NULL, prefault_fn, &pf));
	/* Let the faults fail with ENOMEM for a while. */
	while (READ_ONCE(pf.tries) < 16)
		usleep(1000);

	WRITE_ONCE(pf.punch_start, now_seconds());
	do_punch(pg.fd, 0, (n - 1) * hpage);
	punch_end = now_seconds();
	usleep(200000);
	WRITE_ONCE(pf.stop, true);
	pthread_join(thread, NULL);

	ksft_print_msg("punch of %lu hugepages took %.1f ms; %lu faults (%lu ended after its start); the first that succeeded returned %.1f ms after its start\n",
		       n - 1, (punch_end - pf.punch_start) * 1e3, pf.tries,
		       pf.tries_in_punch,
		       pf.first_ok ? (pf.first_ok - pf.punch_start) * 1e3 : -1.0);
	ASSERT_NE(0, pf.first_ok) TH_LOG("No fault succeeded");
	ASSERT_LE(1, pf.tries_in_punch)
		TH_LOG("No fault ran during the punch: the race window was missed");
	/*
	 * The first hugepage is released at the start of the punch: a fault,
	 * which then allocates and zeroes a hugepage, must succeed before the
	 * punch returns.  (Measured: at 24% and 35% of the punch; with the
	 * reservations given back at the end, at 116%.)
	 */
	ASSERT_LT(pf.first_ok, punch_end)
		TH_LOG("Faults failed with ENOMEM until the punch returned: it gave the released reservations back only at its end");

	close(fd2);
	private_guest_destroy(&pg);
	assert_pool(&self->base, 0, 0, "closed");
}

/*
 * A vCPU keeps faulting the hugepage in while the VMM punches one subpage
 * of it and refills it, again and again.  Before each punch a shared and
 * back conversion of the whole hugepage zaps it, so that the guest faults
 * it back in at full size just as the punch starts.  A fault that computed
 * its max_order before the punch marked the subpage must not install a
 * huge mapping over it: the hugepage must never be mapped whole after the
 * punch returns.  KVM retrying the guest's faults during the punches shows
 * that faults did overlap them, i.e. that the race window was hit.
 */
TEST_F_TIMEOUT(gmem_punch, fault_vs_punch_race, 120)
{
	const uint64_t hpage = variant->page_size;
	const uint64_t hole = hpage / 2 + 3 * SZ_4K;
	struct vm_mapping_level_stats stats;
	struct private_guest pg;
	struct gmem_fdinfo fi;
	struct spin sp = {};
	struct vcpu_pf_stats ps;
	uint64_t i, stale = 0, first = 0, before = 0, retried = 0, r0;
	pthread_t thread;
	double end;
	int r;

	if (!sw_protected_vm_supported())
		SKIP(return, "KVM_X86_SW_PROTECTED_VM not supported");
	if (!hugepages_available(1))
		return;

	private_guest_create(&pg, guest_spin_code, self->flags, hpage, 0, hpage);
	vcpu_args_set(pg.vcpu, 3, TEST_GPA, hpage, hole);
	run_guest(pg.vcpu, STAGE_READY);
	/* Allocate (and zero) the hugepage before the clock starts. */
	do_allocate(pg.fd, 0, hpage);

	sp.vcpu = pg.vcpu;
	vcpu_pf_stats_open(pg.vcpu, &ps);
	r = pthread_create(&thread, NULL, spin_vcpu_fn, &sp);
	ASSERT_EQ(0, r) TH_LOG("pthread_create() failed: %s", strerror(r));

	end = now_seconds() + variant->stress_seconds;
	for (i = 0; now_seconds() < end; i++) {
		vm_mem_set_shared(pg.vm, TEST_GPA, hpage);
		vm_mem_set_private(pg.vm, TEST_GPA, hpage);
		vm_get_mapping_level_stats(pg.vm, &stats);
		before += !!level_pages(&stats, hpage);

		r0 = vcpu_pf_retried(&ps);
		do_punch(pg.fd, hole, SZ_4K);
		retried += vcpu_pf_retried(&ps) - r0;
		vm_get_mapping_level_stats(pg.vm, &stats);
		if (level_pages(&stats, hpage) && !stale++)
			first = i;

		do_allocate(pg.fd, hole, SZ_4K);
	}
	WRITE_ONCE(sp.stop, true);
	pthread_join(thread, NULL);

	close(ps.fd);

	ksft_print_msg("%zukB: %lu punch/refill iterations, %lu guest syncs, mapped at %zukB before %lu punches, after %lu; %lu guest faults retried during punches\n",
		       hpage >> 10, i, sp.syncs, hpage >> 10, before, stale,
		       retried);
	ASSERT_LT(0, sp.syncs) TH_LOG("The guest made no progress");
	ASSERT_LT(0, retried)
		TH_LOG("No guest fault overlapped a punch in %lu iterations: the race window was never hit",
		       i);

	/* Quiescent: the hole is refilled, nothing is punched. */
	read_fdinfo(_metadata, pg.fd, &fi);
	ASSERT_EQ(0, fi.punched_subpages);

	ASSERT_EQ(0, stale)
		TH_LOG("In %lu of %lu iterations (first: %lu), the hugepage was still mapped at %zukB after PUNCH_HOLE(0x%lx, 4K) returned: a fault racing with the punch mapped it with a max_order computed before the subpage was punched",
		       stale, i, first, hpage >> 10, hole);

	private_guest_destroy(&pg);
	assert_pool(&self->base, 0, 0, "destroyed the VM and closed the file");
}

TEST_HARNESS_MAIN
