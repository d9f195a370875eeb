// SPDX-License-Identifier: GPL-2.0-only
/*
 * The preparation and invalidation contract of hugetlb guest_memfd, seen
 * through the kvm:kvm_gmem_prepare and kvm:kvm_gmem_invalidate tracepoints.
 *
 * Memory becomes private in naturally aligned blocks inside one folio: a
 * fault prepares what is not prepared yet of the block KVM maps (the
 * largest of the folio, 2M and 4K that has no punched subpage, lies in the
 * memslot and is aligned like the gpa), as the fewest blocks; a partial
 * punch reclaims what it covers that was prepared ("punch"), a punch that
 * empties the folio and close reclaim what is left ("release") before the
 * final whole-folio call ("free").  fallocate() prepares nothing.
 *
 * Each case runs a list of operations on a file and on a model of that
 * contract, page by page, and compares the exact sequence of events with
 * the model's; every sequence also goes through a page-by-page check of
 * the contract: each pfn alternates private and reclaimed, and a folio is
 * freed with nothing of it private.  KVM_PRE_FAULT_MEMORY maps private
 * memory without running the vCPU, so that faults are exact; two cases
 * run a guest instead and check the mapping levels of a round trip too.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <linux/mman.h>

#include "gmem_hugetlb.h"
#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include "kselftest_harness.h"
#include "gmem_hugetlb_harness.h"

#define PMD_ORDER	9
#define PUD_ORDER	18

/* A second memslot of the same file, 1G aligned. */
#define SECOND_GPA	(8ULL << 30)
#define SECOND_SLOT	11

/* ------------------------------------------------------------------------ */
/* The model                                                                */
/* ------------------------------------------------------------------------ */

struct model_slot {
	u64 gfn, pgoff, npages;
};

struct model {
	u64 folio_pages, nr_folios;
	unsigned int folio_order;
	/* Per folio: allocated, and its punched and prepared pages. */
	bool *folio;
	u64 *nr_punched, *nr_prepared;
	/* Per page. */
	u8 *punched, *prepared;
	struct model_slot slot[2];
	int nr_slots;
	struct gmem_events want;
};

static void model_init(struct model *m, u64 folio_pages, u64 nr_folios)
{
	u64 pages = folio_pages * nr_folios;

	memset(m, 0, sizeof(*m));
	m->folio_pages = folio_pages;
	m->nr_folios = nr_folios;
	m->folio_order = __builtin_ctzl(folio_pages);
	m->folio = calloc(nr_folios, sizeof(*m->folio));
	m->nr_punched = calloc(nr_folios, sizeof(*m->nr_punched));
	m->nr_prepared = calloc(nr_folios, sizeof(*m->nr_prepared));
	m->punched = calloc(pages, 1);
	m->prepared = calloc(pages, 1);
	TEST_ASSERT(m->folio && m->nr_punched && m->nr_prepared && m->punched &&
		    m->prepared, "out of memory");
}

static void model_destroy(struct model *m)
{
	free(m->folio);
	free(m->nr_punched);
	free(m->nr_prepared);
	free(m->punched);
	free(m->prepared);
	gmem_events_free(&m->want);
}

static void set_punched(struct model *m, u64 i, bool v)
{
	m->nr_punched[i / m->folio_pages] += (int)v - m->punched[i];
	m->punched[i] = v;
}

static void set_prepared(struct model *m, u64 i, bool v)
{
	m->nr_prepared[i / m->folio_pages] += (int)v - m->prepared[i];
	m->prepared[i] = v;
}

/* The maximal runs of prepared (@val) or unprepared pages in [s, e). */
static void model_runs(struct model *m, enum gmem_event_kind kind, u64 s, u64 e, u8 val)
{
	u64 run, i;

	while (s < e) {
		if (m->prepared[s] != val) {
			s++;
			continue;
		}
		for (run = s; run < e && m->prepared[run] == val; run++)
			;
		gmem_events_add_blocks(&m->want, kind, s, run);
		for (i = s; i < run; i++)
			set_prepared(m, i, !val);
		s = run;
	}
}

static void model_free(struct model *m, u64 f)
{
	u64 s = f * m->folio_pages, e = s + m->folio_pages, i;

	model_runs(m, GMEM_RELEASE, s, e, 1);
	gmem_events_add(&m->want, GMEM_FREE, s, m->folio_order);
	for (i = s; i < e; i++)
		set_punched(m, i, 0);
	m->folio[f] = false;
}

/* Allocate the folio of @i if it has none, and refill @i if punched. */
static void model_get(struct model *m, u64 i)
{
	u64 f = i / m->folio_pages;

	m->folio[f] = true;
	set_punched(m, i, 0);
}

/* fallocate() of pages [s, e). */
static void model_alloc(struct model *m, u64 s, u64 e)
{
	for (; s < e; s++)
		model_get(m, s);
}

/* PUNCH_HOLE of pages [s, e). */
static void model_punch(struct model *m, u64 s, u64 e)
{
	u64 f, fs, fe, i, left;

	for (f = s / m->folio_pages; f < m->nr_folios && f * m->folio_pages < e; f++) {
		fs = max(s, f * m->folio_pages);
		fe = min(e, (f + 1) * m->folio_pages);
		if (!m->folio[f])
			continue;
		/* Subpages in use that the punch leaves. */
		left = m->folio_pages - m->nr_punched[f];
		for (i = fs; i < fe; i++)
			left -= !m->punched[i];
		if (!left) {
			model_free(m, f);
			continue;
		}
		model_runs(m, GMEM_PUNCH, fs, fe, 1);
		for (i = fs; i < fe; i++)
			set_punched(m, i, 1);
	}
}

static void model_close(struct model *m)
{
	u64 f;

	for (f = 0; f < m->nr_folios; f++) {
		if (m->folio[f])
			model_free(m, f);
	}
}

static const struct model_slot *model_slot_of(struct model *m, u64 i)
{
	int k;

	for (k = 0; k < m->nr_slots; k++) {
		if (i >= m->slot[k].pgoff && i < m->slot[k].pgoff + m->slot[k].npages)
			return &m->slot[k];
	}
	TEST_FAIL("page 0x%lx is in no memslot", i);
	return NULL;
}

/* Whether KVM may map @i with a block of @order. */
static bool block_ok(struct model *m, const struct model_slot *sl, u64 i,
		     unsigned int order)
{
	u64 misalign = sl->gfn ^ sl->pgoff, s = i & ~((1ULL << order) - 1), j;

	if (order > m->folio_order || (misalign && order > __builtin_ctzl(misalign)))
		return false;
	if (s < sl->pgoff || s + (1ULL << order) > sl->pgoff + sl->npages)
		return false;
	if (order == m->folio_order)
		return !m->nr_punched[i / m->folio_pages];
	for (j = s; j < s + (1ULL << order); j++) {
		if (m->punched[j])
			return false;
	}
	return true;
}

/* A private fault on page @i: prepares the rest of its block; its end. */
static u64 model_fault(struct model *m, u64 i)
{
	static const unsigned int orders[] = { PUD_ORDER, PMD_ORDER, 0 };
	const struct model_slot *sl = model_slot_of(m, i);
	u64 f = i / m->folio_pages, s;
	unsigned int order = 0;
	int k;

	model_get(m, i);
	for (k = 0; k < ARRAY_SIZE(orders); k++) {
		order = orders[k];
		if (block_ok(m, sl, i, order))
			break;
	}
	s = i & ~((1ULL << order) - 1);
	if (m->nr_prepared[f] < m->folio_pages)
		model_runs(m, GMEM_PREPARE, s, s + (1ULL << order), 0);
	return s + (1ULL << order);
}

static gpa_t model_gpa(struct model *m, u64 i)
{
	const struct model_slot *sl = model_slot_of(m, i);

	return (sl->gfn + i - sl->pgoff) * SZ_4K;
}

/* ------------------------------------------------------------------------ */
/* Cases                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * A place in the file: @q quarters of a folio, @l pages of the next KVM
 * mapping level below the folio's (4K for a 2M folio, 2M for a 1G one),
 * and @p 4K pages.
 */
struct pos {
	int q, l, p;
};

#define P(q, l, p)	{ q, l, p }
/* A page inside a 2M block in the middle of the folio. */
#define X(d)		P(2, 0, 133 + (d))

enum op_kind { PREFAULT, ALLOC, PUNCH, SHARED, PRIVATE, SLOT2 };

struct op {
	enum op_kind kind;
	struct pos at, len;
};

struct prep_case {
	int folios;
	/* The first memslot binds [slot_at, + slot_len), all if 0. */
	struct pos slot_at, slot_len;
	/* Reuse a pool page that anonymous hugetlb memory left dirty. */
	bool reused_page;
	struct op ops[24];
};

static u64 pages_of(struct pos p, u64 folio_pages)
{
	const u64 level = folio_pages > 512 ? 512 : 1;

	return (s64)p.q * (s64)(folio_pages / 4) + (s64)p.l * level + p.p;
}

FIXTURE(gmem_prepare) {
	struct hugetlb_pool base;
	struct gmem_guest g;
	struct model m;
};

FIXTURE_VARIANT(gmem_prepare) {
	size_t page_size;
};

FIXTURE_VARIANT_ADD(gmem_prepare, 2M) {
	.page_size = SZ_2M,
};

FIXTURE_VARIANT_ADD(gmem_prepare, 1G) {
	.page_size = SZ_1G,
};

FIXTURE_SETUP(gmem_prepare)
{
	if (!gmem_hugetlb_require(_metadata, variant->page_size))
		return;
	if (!kvm_has_cap(KVM_CAP_PRE_FAULT_MEMORY))
		SKIP(return, "no KVM_PRE_FAULT_MEMORY");
	if (!gmem_trace_available(GMEM_TRACE_PREPARE | GMEM_TRACE_INVALIDATE))
		SKIP(return, "no kvm_gmem_prepare and kvm_gmem_invalidate tracepoints");
	ASSERT_TRUE(hugetlb_pool_read(variant->page_size, &self->base));
	self->g.fd = -1;
}

FIXTURE_TEARDOWN(gmem_prepare)
{
	gmem_trace_stop();
	if (self->g.vm)
		gmem_guest_destroy(&self->g);
	model_destroy(&self->m);
}

/* Leave a dirty page in the pool: hugetlb memory written and unmapped. */
static void dirty_pool_page(size_t page_size)
{
	const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
			  (__builtin_ctzl(page_size) << MAP_HUGE_SHIFT);
	char *p = mmap(NULL, page_size, PROT_READ | PROT_WRITE, flags, -1, 0);

	TEST_ASSERT(p != MAP_FAILED, "mmap(MAP_HUGETLB): %s", strerror(errno));
	memset(p, 0xaa, SZ_4K);
	kvm_munmap(p, page_size);
}

/*
 * Close the guest and its file, then compare the trace with the model's
 * events, and check it against the contract.
 */
static void __finish(struct __test_metadata *_metadata, struct gmem_guest *g,
		     struct model *m, size_t page_size, const struct hugetlb_pool *base)
{
	struct gmem_events seen = {};
	u64 lost;

	gmem_guest_destroy(g);
	model_close(m);
	lost = gmem_trace_read(&seen);
	gmem_trace_stop();
	ASSERT_EQ(0, lost) TH_LOG("the trace buffer lost %lu events", lost);
	gmem_events_assert_contract(&seen, m->folio_pages, m->folio_pages * m->nr_folios,
				    true);
	gmem_events_assert_equal(&m->want, &seen);
	ksft_print_msg("%zu events as expected\n", seen.nr);
	gmem_events_free(&seen);
	hugetlb_pool_assert(page_size, base, 0, 0, "closed");
}

/* Run @c's operations on a file and on the model, then compare. */
static void __run_case(struct __test_metadata *_metadata, struct gmem_guest *g,
		       struct model *m, const struct hugetlb_pool *base, size_t page_size,
		       const struct prep_case *c)
{
	const u64 n = page_size / SZ_4K;
	const u64 slot_at = pages_of(c->slot_at, n);
	const u64 slot_len = pages_of(c->slot_len, n) ?: c->folios * n - slot_at;
	const struct gmem_guest_args args = {
		.backing = guest_memfd_hugetlb_backing(page_size),
		.file_size = c->folios * page_size,
		.offset = slot_at * SZ_4K,
		.slot_size = slot_len * SZ_4K,
		.unmapped = true,
	};
	u64 s, e, i;
	int k;

	if (!gmem_need_hugepages(_metadata, page_size, base, c->folios))
		return;
	if (c->reused_page)
		dirty_pool_page(page_size);

	model_init(m, n, c->folios);
	m->slot[m->nr_slots++] = (struct model_slot){ GMEM_GUEST_GPA / SZ_4K, slot_at, slot_len };
	gmem_guest_create(g, NULL, &args);
	gmem_trace_start(GMEM_TRACE_PREPARE | GMEM_TRACE_INVALIDATE);

	for (k = 0; k < ARRAY_SIZE(c->ops); k++) {
		const struct op *op = &c->ops[k];

		s = pages_of(op->at, n);
		e = s + pages_of(op->len, n);
		if (e == s)
			break;
		switch (op->kind) {
		case PREFAULT:
			vcpu_pre_fault(g->vcpu, model_gpa(m, s), (e - s) * SZ_4K);
			for (i = s; i < e; )
				i = model_fault(m, i);
			break;
		case ALLOC:
			gmem_allocate(g->fd, s * SZ_4K, (e - s) * SZ_4K);
			model_alloc(m, s, e);
			break;
		case PUNCH:
			gmem_punch(g->fd, s * SZ_4K, (e - s) * SZ_4K);
			model_punch(m, s, e);
			break;
		case SHARED:
			vm_mem_set_shared(g->vm, model_gpa(m, s), (e - s) * SZ_4K);
			break;
		case PRIVATE:
			vm_mem_set_private(g->vm, model_gpa(m, s), (e - s) * SZ_4K);
			break;
		case SLOT2:
			vm_mem_add(g->vm, VM_MEM_SRC_ANONYMOUS, SECOND_GPA, SECOND_SLOT,
				   e - s, KVM_MEM_GUEST_MEMFD, g->fd, s * SZ_4K);
			vm_mem_set_private(g->vm, SECOND_GPA, (e - s) * SZ_4K);
			m->slot[m->nr_slots++] = (struct model_slot){ SECOND_GPA >> 12, s, e - s };
			break;
		}
	}
	__finish(_metadata, g, m, page_size, base);
}

/* The test @name: the case of the fields that follow (struct prep_case). */
#define PREP_TEST(name, ...)						\
	static const struct prep_case case_##name = { __VA_ARGS__ };	\
	TEST_F_TIMEOUT(gmem_prepare, name, 180)				\
	{								\
		__run_case(_metadata, &self->g, &self->m, &self->base,	\
			   variant->page_size, &case_##name);		\
	}

/* The whole folio: one block of its order. */
PREP_TEST(prefault_whole_folio, .folios = 1, .ops = {
	{ PREFAULT, P(0, 0, 0), P(4, 0, 0) },
	{ PREFAULT, X(0), P(0, 0, 1) },
})

/* A pool page that anonymous hugetlb memory used is prepared all the same. */
PREP_TEST(reused_pool_page_is_prepared, .folios = 1, .reused_page = true, .ops = {
	{ PREFAULT, P(0, 0, 0), P(4, 0, 0) },
})

/* fallocate() prepares nothing, and nothing unprepared is reclaimed. */
PREP_TEST(allocate_prepares_nothing, .folios = 1, .ops = {
	{ ALLOC, P(0, 0, 0), P(4, 0, 0) },
	{ PUNCH, X(0), P(0, 0, 1) },
})

/* A 4K punch, then a fault on it: that page alone is prepared again. */
PREP_TEST(punch_then_refault, .folios = 1, .ops = {
	{ PREFAULT, P(0, 0, 0), P(4, 0, 0) },
	{ PUNCH, X(0), P(0, 0, 1) },
	{ PREFAULT, X(0), P(0, 0, 1) },
	{ PREFAULT, X(-1), P(0, 0, 3) },
})

/*
 * Punch, refill, punch one subpage: refilled by fallocate() it is not
 * prepared, so its second punch reclaims nothing; refilled by a fault it
 * is, and is reclaimed again.
 */
PREP_TEST(punch_refill_punch, .folios = 1, .ops = {
	{ PREFAULT, P(0, 0, 0), P(4, 0, 0) },
	{ PUNCH, X(0), P(0, 0, 1) },
	{ ALLOC, X(0), P(0, 0, 1) },
	{ PUNCH, X(0), P(0, 0, 1) },
	{ PUNCH, X(2), P(0, 0, 1) },
	{ PREFAULT, X(2), P(0, 0, 1) },
	{ PUNCH, X(2), P(0, 0, 1) },
	{ ALLOC, X(0), P(0, 0, 1) },
})

/* private -> shared (the VMM punches) -> private of one 4K page. */
PREP_TEST(convert_round_trip, .folios = 1, .ops = {
	{ PREFAULT, P(0, 0, 0), P(4, 0, 0) },
	{ SHARED, X(0), P(0, 0, 1) },
	{ PUNCH, X(0), P(0, 0, 1) },
	{ PRIVATE, X(0), P(0, 0, 1) },
	{ PREFAULT, P(0, 0, 0), P(4, 0, 0) },
})

/* What is prepared of a punched folio is released as the fewest blocks. */
PREP_TEST(close_with_hole, .folios = 1, .ops = {
	{ PREFAULT, P(0, 0, 0), P(4, 0, 0) },
	{ PUNCH, X(0), P(0, 0, 1) },
})

/*
 * A memslot whose gpa is misaligned with its file offset by one level
 * below the folio's: blocks of that level at most; then a second, aligned
 * memslot of the rest prepares only the rest.
 */
PREP_TEST(misaligned_memslot, .folios = 1, .slot_at = P(0, 1, 0), .ops = {
	{ PREFAULT, P(0, 1, 0), P(4, -1, 0) },
	{ SLOT2, P(0, 0, 0), P(0, 1, 0) },
	{ PREFAULT, P(0, 0, 0), P(0, 1, 0) },
})

/* A memslot smaller than the folio: only blocks inside the memslot. */
PREP_TEST(memslot_inside_folio, .folios = 1, .slot_len = P(2, 0, 1), .ops = {
	{ PREFAULT, P(0, 0, 0), P(2, 0, 1) },
})

/*
 * Punches, refills and faults over two folios: overlapping punches, a
 * refill inside a hole, a punch across the folios, a folio emptied by
 * partial punches (released, not punched) and allocated again.
 */
PREP_TEST(punch_and_refill_sequence, .folios = 2, .ops = {
	{ ALLOC, P(0, 0, 0), P(8, 0, 0) },
	{ PREFAULT, P(0, 0, 0), P(8, 0, 0) },
	{ PUNCH, P(6, 0, 0), P(1, 0, 0) },
	{ PUNCH, P(4, 0, 1), P(0, 0, 2) },
	{ PUNCH, P(6, 0, -2), P(1, 0, 4) },
	{ ALLOC, P(6, 0, 0), P(0, 0, 1) },
	{ PREFAULT, P(6, 0, 0), P(0, 0, 1) },
	{ PUNCH, P(6, 0, 0), P(0, 0, 16) },
	{ PUNCH, P(0, 0, 1), P(4, 0, -1) },
	{ PUNCH, P(0, 0, 0), P(0, 0, 1) },
	{ ALLOC, P(2, 0, 0), P(0, 0, 1) },
	{ PREFAULT, P(2, 0, 0), P(0, 0, 1) },
	{ PUNCH, P(1, 0, 0), P(1, 0, 0) },
	{ PUNCH, P(0, 0, 0), P(4, 0, 0) },
	{ ALLOC, P(0, 0, 0), P(0, 0, 1) },
	{ PREFAULT, P(0, 0, 0), P(0, 0, 1) },
	{ PUNCH, P(4, 0, -2), P(0, 0, 4) },
	{ ALLOC, P(0, 0, 0), P(4, 0, 0) },
	{ PREFAULT, P(0, 0, 0), P(4, 0, 0) },
	{ PUNCH, P(0, 0, 0), P(0, 0, 1) },
	{ PUNCH, P(0, 0, 1), P(4, 0, -1) },
})

/* ------------------------------------------------------------------------ */
/* A round trip with a running guest                                        */
/* ------------------------------------------------------------------------ */

#define TOUCH_NONE	(~0ULL)

/* What guest_touch_code() touches: all of it but @touch_skip, or one page. */
static u64 touch_gpa, touch_size, touch_skip, touch_only;

static void guest_touch_code(void)
{
	u64 stage, off;

	for (stage = 1;; stage++) {
		if (READ_ONCE(touch_only) != TOUCH_NONE) {
			WRITE_ONCE(*(u64 *)(touch_gpa + touch_only), stage);
		} else {
			for (off = 0; off < READ_ONCE(touch_size); off += SZ_4K) {
				if (off != READ_ONCE(touch_skip))
					WRITE_ONCE(*(u64 *)(touch_gpa + off), stage);
			}
		}
		GUEST_SYNC(stage);
	}
}

/*
 * The guest's next pass, and the model's faults for it: a page faults
 * unless an earlier fault of the pass mapped it.
 */
static void touch(struct gmem_guest *g, struct model *m, u64 *stage, u64 skip,
		  u64 only)
{
	u64 i;

	touch_skip = skip;
	touch_only = only;
	sync_global_to_guest(g->vm, touch_skip);
	sync_global_to_guest(g->vm, touch_only);
	gmem_guest_run(g->vcpu, ++*stage);
	if (only != TOUCH_NONE) {
		model_fault(m, only / SZ_4K);
		return;
	}
	for (i = 0; i < m->folio_pages; )
		i = i == skip / SZ_4K ? i + 1 : model_fault(m, i);
}

/*
 * A private -> shared -> private round trip of one 4K page of a folio the
 * guest mapped whole, as the guest and a VMM do it: the VMM punches the
 * page made shared, the guest goes on with the rest (mapped smaller around
 * the hole), and the private page is refilled by the guest's fault on it
 * or by fallocate().  Either way the refill zaps the small mappings, the
 * next pass maps the folio whole again even if it doesn't touch that page
 * (under SEV-SNP's RMP, but for the 2M region of the page), and the page
 * alone is prepared again.
 */
static void __round_trip(struct __test_metadata *_metadata, struct gmem_guest *g,
			 struct model *m, const struct hugetlb_pool *base, size_t hpage,
			 bool by_fault)
{
	const u64 x = pages_of((struct pos)X(0), hpage / SZ_4K) * SZ_4K;
	const struct gmem_guest_args args = { guest_memfd_hugetlb_backing(hpage), hpage };
	const size_t map = gmem_private_map_size(hpage);
	const bool rmp_snp = gmem_rmp_model_snp();
	struct mapping_levels whole, holed, now;
	u64 stage = 0;
	char lv[96];

	if (!gmem_need_hugepages(_metadata, hpage, base, 1))
		return;
	model_init(m, hpage / SZ_4K, 1);
	m->slot[m->nr_slots++] = (struct model_slot){ GMEM_GUEST_GPA / SZ_4K, 0, hpage / SZ_4K };
	gmem_guest_create(g, guest_touch_code, &args);
	touch_gpa = g->gpa;
	touch_size = hpage;
	sync_global_to_guest(g->vm, touch_gpa);
	sync_global_to_guest(g->vm, touch_size);
	gmem_trace_start(GMEM_TRACE_PREPARE | GMEM_TRACE_INVALIDATE);

	/* Twice, so that the guest's own pages are mapped for the counts. */
	touch(g, m, &stage, TOUCH_NONE, TOUCH_NONE);
	touch(g, m, &stage, TOUCH_NONE, TOUCH_NONE);
	mapping_levels_read(g->vm, &whole);

	vm_mem_set_shared(g->vm, g->gpa + x, SZ_4K);
	gmem_punch(g->fd, x, SZ_4K);
	model_punch(m, x / SZ_4K, x / SZ_4K + 1);
	touch(g, m, &stage, x, TOUCH_NONE);
	mapping_levels_read(g->vm, &holed);
	ASSERT_LT(mapping_levels_pages(&holed, map), mapping_levels_pages(&whole, map))
		TH_LOG("mapped whole around the hole");

	vm_mem_set_private(g->vm, g->gpa + x, SZ_4K);
	if (by_fault) {
		touch(g, m, &stage, TOUCH_NONE, x);
	} else {
		gmem_allocate(g->fd, x, SZ_4K);
		model_alloc(m, x / SZ_4K, x / SZ_4K + 1);
		mapping_levels_read(g->vm, &now);
		/* The refill zaps the whole folio's mappings. */
		ASSERT_TRUE(now.pages_4k == whole.pages_4k &&
			    now.pages_2m == whole.pages_2m -
					    (map == SZ_2M ? hpage / SZ_2M : 0))
			TH_LOG("the refill left small mappings (%s)",
			       mapping_levels_str(&whole, &now, lv, sizeof(lv)));
	}
	touch(g, m, &stage, x, TOUCH_NONE);
	mapping_levels_read(g->vm, &now);
	/*
	 * SEV-SNP cannot merge the RMP entries of a guest's memory again: the
	 * 2M region of x, split by the punch, stays mapped with 4K pages (x
	 * itself only if the guest's fault refilled it: the last pass skips
	 * it).
	 */
	if (rmp_snp) {
		ASSERT_TRUE(now.pages_1g == whole.pages_1g &&
			    now.pages_2m + 1 == whole.pages_2m &&
			    now.pages_4k == whole.pages_4k + SZ_2M / SZ_4K - !by_fault)
			TH_LOG("not mapped as before but the 2M region of the hole (%s)",
			       mapping_levels_str(&whole, &now, lv, sizeof(lv)));
	} else {
		ASSERT_TRUE(!memcmp(&now, &whole, sizeof(now)))
			TH_LOG("not mapped as before the round trip (%s)",
			       mapping_levels_str(&whole, &now, lv, sizeof(lv)));
	}
	__finish(_metadata, g, m, hpage, base);
}

#define round_trip(by_fault) \
	__round_trip(_metadata, &self->g, &self->m, &self->base, variant->page_size, by_fault)

TEST_F_TIMEOUT(gmem_prepare, round_trip_refilled_by_fault, 180)
{
	round_trip(true);
}

TEST_F_TIMEOUT(gmem_prepare, round_trip_refilled_by_fallocate, 180)
{
	round_trip(false);
}

/* The counters of the model of SEV-SNP's RMP. */
struct rmp_counts {
	u64 assigned_4k, entries_2m, psmash, violations;
};

static bool rmp_counts_read(struct rmp_counts *c)
{
	static const char * const names[] = {
		"assigned_4k", "entries_2m", "psmash", "violations",
	};
	u64 *val[] = { &c->assigned_4k, &c->entries_2m, &c->psmash, &c->violations };
	int i;

	for (i = 0; i < ARRAY_SIZE(names); i++) {
		if (!gmem_rmp_model_get(names[i], val[i]))
			return false;
	}
	return true;
}

/*
 * A guest on one hugepage of @hpage under the RMP model in SNP mode,
 * running @guest_code with touch_gpa and touch_size over the hugepage and
 * touch_only at @only; @c0 gets the model's counters before.  False if the
 * test was skipped (no model, or not enough hugepages).
 */
static bool rmp_guest_create(struct __test_metadata *_metadata,
			     struct gmem_guest *g, const struct hugetlb_pool *base,
			     size_t hpage, void *guest_code, u64 only,
			     struct rmp_counts *c0)
{
	const struct gmem_guest_args args = { guest_memfd_hugetlb_backing(hpage), hpage };

	if (!rmp_counts_read(c0) || !gmem_rmp_model_set("snp"))
		SKIP(return false, "no RMP model (CONFIG_KVM_SW_PROTECTED_VM_RMP_MODEL)");
	if (!gmem_need_hugepages(_metadata, hpage, base, 1))
		return false;
	gmem_guest_create(g, guest_code, &args);
	gmem_rmp_model_set(NULL);
	touch_gpa = g->gpa;
	touch_size = hpage;
	touch_skip = TOUCH_NONE;
	touch_only = only;
	sync_global_to_guest(g->vm, touch_gpa);
	sync_global_to_guest(g->vm, touch_size);
	sync_global_to_guest(g->vm, touch_skip);
	sync_global_to_guest(g->vm, touch_only);
	return true;
}

/*
 * Under the model of SEV-SNP's RMP (kvm.rmp_model=snp), a folio the guest
 * touched whole is assigned with one 2M entry per 2M region; a 4K punch in
 * its middle PSMASHes that region and gives the page back; closing leaves
 * nothing assigned and no violation.
 */
TEST_F_TIMEOUT(gmem_prepare, rmp_model_counts, 180)
{
	const size_t hpage = variant->page_size;
	const u64 x = hpage / 2 + 5 * SZ_4K, nr = hpage / SZ_4K, nr_2m = hpage / SZ_2M;
	struct rmp_counts c0, c;

	if (!rmp_guest_create(_metadata, &self->g, &self->base, hpage,
			      guest_touch_code, TOUCH_NONE, &c0))
		return;
	gmem_guest_run(self->g.vcpu, 1);

	ASSERT_TRUE(rmp_counts_read(&c));
	ASSERT_EQ(c0.assigned_4k + nr, c.assigned_4k);
	ASSERT_EQ(c0.entries_2m + nr_2m, c.entries_2m);

	vm_mem_set_shared(self->g.vm, self->g.gpa + x, SZ_4K);
	gmem_punch(self->g.fd, x, SZ_4K);
	ASSERT_TRUE(rmp_counts_read(&c));
	ASSERT_EQ(c0.assigned_4k + nr - 1, c.assigned_4k);
	ASSERT_EQ(c0.entries_2m + nr_2m - 1, c.entries_2m);
	ASSERT_EQ(c0.psmash + 1, c.psmash);

	gmem_guest_destroy(&self->g);
	ASSERT_TRUE(rmp_counts_read(&c));
	ASSERT_EQ(c0.assigned_4k, c.assigned_4k);
	ASSERT_EQ(c0.entries_2m, c.entries_2m);
	ASSERT_EQ(c0.violations, c.violations);
}

/*
 * Under the RMP model, the make_private of a 1G folio (512 2M updates)
 * fails at its 300th update, as SNP's may, with 299 2M regions assigned:
 * the fault fails with EIO, and guest_memfd reclaims the whole block
 * ("undo"), so that nothing stays assigned; the next fault makes the
 * folio private whole.
 */
TEST_F_TIMEOUT(gmem_prepare, rmp_model_make_private_fails, 180)
{
	const size_t hpage = variant->page_size;
	struct rmp_counts c0, c;
	u64 left, failed0, failed;
	int r;

	if (hpage < SZ_1G)
		SKIP(return, "a 2M folio is one RMP update: the same on 1G only");
	if (!rmp_guest_create(_metadata, &self->g, &self->base, hpage,
			      guest_touch_code, 0, &c0))
		return;

	ASSERT_TRUE(gmem_rmp_model_get("failed_make_private", &failed0));
	gmem_rmp_model_put("fail_make_private", 300);
	/* EIO, the model's error (the exit's fields are undefined then). */
	r = _vcpu_run(self->g.vcpu);
	ASSERT_TRUE(r == -1 && errno == EIO)
		TH_LOG("the failed fault: KVM_RUN %d (%s)", r, r ? strerror(errno) : "ok");
	ASSERT_TRUE(gmem_rmp_model_get("fail_make_private", &left));
	ASSERT_EQ(0, left);
	ASSERT_TRUE(gmem_rmp_model_get("failed_make_private", &failed));
	ASSERT_EQ(failed0 + 1, failed);
	/* 299 2M regions were assigned, then reclaimed with the block. */
	ASSERT_TRUE(rmp_counts_read(&c));
	ASSERT_EQ(c0.assigned_4k, c.assigned_4k) TH_LOG("left assigned");
	ASSERT_EQ(c0.entries_2m, c.entries_2m);
	ASSERT_EQ(c0.violations, c.violations);

	gmem_guest_run(self->g.vcpu, 1);
	ASSERT_TRUE(rmp_counts_read(&c));
	ASSERT_EQ(c0.assigned_4k + hpage / SZ_4K, c.assigned_4k);
	ASSERT_EQ(c0.entries_2m + hpage / SZ_2M, c.entries_2m);

	gmem_guest_destroy(&self->g);
	ASSERT_TRUE(rmp_counts_read(&c));
	ASSERT_EQ(c0.assigned_4k, c.assigned_4k);
	ASSERT_EQ(c0.violations, c.violations);
}

/* Where guest_launch_code() checks the launched data, and what it expects. */
static u64 launch_gpa[6], launch_val[6];

static void guest_launch_code(void)
{
	u64 off;
	int i;

	for (i = 0; i < ARRAY_SIZE(launch_gpa); i++)
		GUEST_ASSERT_EQ(READ_ONCE(*(u64 *)(launch_gpa[i] + 8)), launch_val[i]);
	for (off = 0; off < READ_ONCE(touch_size); off += SZ_4K)
		WRITE_ONCE(*(u64 *)(touch_gpa + off), 1);
	GUEST_SYNC(1);
}

#define LAUNCH_VAL(k)	(0x1a0000ULL + (k))

/*
 * Launch under the RMP model, the steps of SNP_LAUNCH_UPDATE
 * (kvm_gmem_populate()): each launched page gets a 4K RMP entry and its
 * data; a page is launched once (EEXIST) and only while private (EINVAL);
 * a launch whose RMP update or firmware update fails leaves nothing
 * assigned (SNP's callback gives the page back itself; guest_memfd's
 * "undo" reclaim then finds nothing: gmem_hwpoison.launch_reclaim_fails
 * has SNP fail that too) and nothing of its copy, and can be retried.  The guest then reads the
 * data and touches the whole folio: the blocks made private around the
 * launched pages leave them out (no violation, and the trace shows them
 * made private alone), the 2M regions holding them are 4K entries, the
 * others one 2M entry each; a page the fault made private is not launched
 * (EEXIST), and a launched page that was punched is launched again.
 */
TEST_F_TIMEOUT(gmem_prepare, rmp_model_launch, 180)
{
	const size_t hpage = variant->page_size;
	const u64 nr = hpage / SZ_4K, nr_2m = hpage / SZ_2M;
	/* A page in the middle: the first 2M region on 2M, another on 1G. */
	const u64 mid = hpage / 2 + SZ_4K;
	const u64 regions = hpage > SZ_2M ? 2 : 1;
	const u64 launch_idx[] = { 3, 4, mid / SZ_4K, 7, 10 };
	u64 launched0, launched, fmp0, fmp, fms0, fms, *src, i, undo = 0, alone = 0;
	struct gmem_events seen = {};
	struct rmp_counts c0, c;
	struct kvm_vm *vm;
	gpa_t gpa;

	if (!rmp_guest_create(_metadata, &self->g, &self->base, hpage,
			      guest_launch_code, TOUCH_NONE, &c0))
		return;
	ASSERT_TRUE(gmem_rmp_model_get("launched", &launched0));
	vm = self->g.vm;
	gpa = self->g.gpa;
	gmem_trace_start(GMEM_TRACE_PREPARE | GMEM_TRACE_INVALIDATE);

	src = kvm_mmap(3 * SZ_4K, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1);
	for (i = 0; i < 3 * SZ_4K / 8; i++)
		src[i] = LAUNCH_VAL(i / (SZ_4K / 8));

	/* Pages 3 and 4 from the source, the middle one too, 7 zeroes. */
	ASSERT_EQ(0, gmem_rmp_model_launch(vm, gpa + 3 * SZ_4K, 2, src));
	ASSERT_EQ(0, gmem_rmp_model_launch(vm, gpa + mid, 1, (char *)src + 2 * SZ_4K));
	ASSERT_EQ(0, gmem_rmp_model_launch(vm, gpa + 7 * SZ_4K, 1, NULL));
	ASSERT_TRUE(gmem_rmp_model_get("launched", &launched));
	ASSERT_EQ(launched0 + 4, launched);
	ASSERT_TRUE(rmp_counts_read(&c));
	ASSERT_EQ(c0.assigned_4k + 4, c.assigned_4k);
	ASSERT_EQ(c0.entries_2m, c.entries_2m);

	/* Once only, and only private memory. */
	ASSERT_EQ(EEXIST, gmem_rmp_model_launch(vm, gpa + 4 * SZ_4K, 1, src));
	vm_mem_set_shared(vm, gpa + 9 * SZ_4K, SZ_4K);
	ASSERT_EQ(EINVAL, gmem_rmp_model_launch(vm, gpa + 9 * SZ_4K, 1, src));
	vm_mem_set_private(vm, gpa + 9 * SZ_4K, SZ_4K);

	/* The RMP update fails: nothing assigned. */
	ASSERT_TRUE(gmem_rmp_model_get("failed_make_private", &fmp0));
	gmem_rmp_model_put("fail_make_private", 1);
	ASSERT_EQ(EIO, gmem_rmp_model_launch(vm, gpa + 10 * SZ_4K, 1, src));
	ASSERT_TRUE(gmem_rmp_model_get("failed_make_private", &fmp));
	ASSERT_EQ(fmp0 + 1, fmp);
	/*
	 * The firmware's update fails: the model gives the page back (SNP's
	 * snp_page_reclaim()), on pages 10 and 11.  (When that fails too,
	 * the VM is dead: gmem_hwpoison.launch_reclaim_fails.)
	 */
	ASSERT_TRUE(gmem_rmp_model_get("failed_make_shared", &fms0));
	gmem_rmp_model_put("fail_launch_update", 1);
	ASSERT_EQ(EIO, gmem_rmp_model_launch(vm, gpa + 10 * SZ_4K, 1, src));
	gmem_rmp_model_put("fail_launch_update", 1);
	ASSERT_EQ(EIO, gmem_rmp_model_launch(vm, gpa + 11 * SZ_4K, 1, src));
	ASSERT_TRUE(gmem_rmp_model_get("failed_make_shared", &fms));
	ASSERT_EQ(fms0, fms);
	ASSERT_TRUE(rmp_counts_read(&c));
	ASSERT_EQ(c0.assigned_4k + 4, c.assigned_4k) TH_LOG("a failed launch left a page assigned");
	ASSERT_TRUE(gmem_rmp_model_get("launched", &launched));
	ASSERT_EQ(launched0 + 4, launched);
	/* Page 10 launches from another source; page 11 stays as it is. */
	ASSERT_EQ(0, gmem_rmp_model_launch(vm, gpa + 10 * SZ_4K, 1, (char *)src + 2 * SZ_4K));

	launch_gpa[0] = gpa + 3 * SZ_4K;
	launch_val[0] = LAUNCH_VAL(0);
	launch_gpa[1] = gpa + 4 * SZ_4K;
	launch_val[1] = LAUNCH_VAL(1);
	launch_gpa[2] = gpa + mid;
	launch_val[2] = LAUNCH_VAL(2);
	launch_gpa[3] = gpa + 7 * SZ_4K;
	launch_val[3] = 0;
	launch_gpa[4] = gpa + 10 * SZ_4K;
	launch_val[4] = LAUNCH_VAL(2);
	/* Made private by the guest's fault, wiped of the failed copy. */
	launch_gpa[5] = gpa + 11 * SZ_4K;
	launch_val[5] = 0;
	sync_global_to_guest(vm, launch_gpa);
	sync_global_to_guest(vm, launch_val);
	gmem_guest_run(self->g.vcpu, 1);

	ASSERT_TRUE(rmp_counts_read(&c));
	ASSERT_EQ(c0.assigned_4k + nr, c.assigned_4k);
	ASSERT_EQ(c0.entries_2m + nr_2m - regions, c.entries_2m);
	ASSERT_EQ(c0.violations, c.violations);

	/* A page the guest's fault made private is not launched. */
	ASSERT_EQ(EEXIST, gmem_rmp_model_launch(vm, gpa + 20 * SZ_4K, 1, src));

	/* A launched page is punched like any other ... */
	vm_mem_set_shared(vm, gpa + 4 * SZ_4K, SZ_4K);
	gmem_punch(self->g.fd, 4 * SZ_4K, SZ_4K);
	ASSERT_TRUE(rmp_counts_read(&c));
	ASSERT_EQ(c0.assigned_4k + nr - 1, c.assigned_4k);
	ASSERT_EQ(c0.psmash, c.psmash);
	/* ... and launched again: the launch refills it. */
	vm_mem_set_private(vm, gpa + 4 * SZ_4K, SZ_4K);
	ASSERT_EQ(0, gmem_rmp_model_launch(vm, gpa + 4 * SZ_4K, 1, src));
	ASSERT_TRUE(rmp_counts_read(&c));
	ASSERT_EQ(c0.assigned_4k + nr, c.assigned_4k);

	kvm_munmap(src, 3 * SZ_4K);
	gmem_guest_destroy(&self->g);
	ASSERT_TRUE(rmp_counts_read(&c));
	ASSERT_EQ(c0.assigned_4k, c.assigned_4k);
	ASSERT_EQ(c0.entries_2m, c.entries_2m);
	ASSERT_EQ(c0.violations, c.violations);
	hugetlb_pool_assert(hpage, &self->base, 0, 0, "closed");

	/*
	 * Each launched page was made private alone, once, the three failed
	 * launches (pages 10, 10, 11) were undone, and the contract holds.
	 */
	ASSERT_EQ(0, gmem_trace_read(&seen));
	gmem_trace_stop();
	gmem_events_assert_contract(&seen, nr, nr, true);
	for (i = 0; i < seen.nr; i++) {
		const struct gmem_event *e = &seen.ev[i];
		int k;

		if (e->kind == GMEM_UNDO) {
			ASSERT_TRUE((e->index == 10 || e->index == 11) && !e->order);
			undo++;
		}
		for (k = 0; k < ARRAY_SIZE(launch_idx) && e->kind == GMEM_PREPARE; k++) {
			if (e->index > launch_idx[k] ||
			    launch_idx[k] >= e->index + (1ULL << e->order))
				continue;
			ASSERT_EQ(0, e->order)
				TH_LOG("page 0x%lx made private in a block of order %u",
				       launch_idx[k], e->order);
			alone++;
		}
	}
	ASSERT_EQ(3, undo);
	/* Pages 3, 4, mid, 7 and 10 launched, and 4 again after its punch. */
	ASSERT_EQ(ARRAY_SIZE(launch_idx) + 1, alone);
	gmem_events_free(&seen);
}

TEST_HARNESS_MAIN
