// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests for the block decomposition and the punched-subpage tracking
 * of hugetlb guest_memfd (virt/kvm/guest_memfd_hugetlb.c): the helpers that
 * kvm_gmem_punch_folio(), kvm_gmem_reclaim_private(),
 * kvm_gmem_hugetlb_make_private(), kvm_gmem_hugetlb_refill() and
 * kvm_gmem_hugetlb_max_order() are made of.
 *
 * Linked into kvm.o with the code under test, so the module needs no
 * MODULE_IMPORT_NS() of the functions' KUnit namespace, and kvm_main.c
 * carries the module's license and description.
 */
#include <kunit/test.h>
#include <linux/bitmap.h>
#include <linux/prandom.h>
#include <linux/slab.h>

#include "guest_memfd_hugetlb.h"

#define NR_2M		512UL
#define NR_1G		(NR_2M << 9)
#define MAX_BLOCKS	64
#define MAX_WANT	16

/* The blocks a walk returned, in order; kunit_kzalloc()ed: it is large. */
struct blocks {
	unsigned int n;
	unsigned long start[MAX_BLOCKS];
	unsigned int order[MAX_BLOCKS];
};

static struct blocks *alloc_blocks(struct kunit *test)
{
	struct blocks *b = kunit_kzalloc(test, sizeof(*b), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, b);
	return b;
}

static unsigned long *alloc_map(struct kunit *test, unsigned long nr)
{
	unsigned long *map = kunit_kcalloc(test, BITS_TO_LONGS(nr), sizeof(long),
					   GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, map);
	return map;
}

static void record(struct blocks *b, unsigned long start, unsigned int order)
{
	if (b->n < MAX_BLOCKS) {
		b->start[b->n] = start;
		b->order[b->n] = order;
	}
	b->n++;
}

/*
 * The blocks of the subpages of [start, end) that are clear in @map (NULL:
 * all of them), or with @set those set in it, as kvm_gmem_next_block()
 * returns them.  With @clear (a set walk only), clear each block in @map as
 * soon as it is returned, as kvm_gmem_hugetlb_make_private() does when it
 * has made the block private.
 */
static void walk(struct kunit *test, struct blocks *b, unsigned long *map,
		 unsigned long start, unsigned long end, bool set, bool clear)
{
	struct kvm_gmem_blocks it;
	unsigned int order;
	unsigned long s;

	b->n = 0;
	kvm_gmem_blocks_init(&it, map, start, end, set);
	while (kvm_gmem_next_block(&it, &s, &order)) {
		record(b, s, order);
		if (clear && map)
			bitmap_clear(map, s, 1UL << order);
	}
	/* A finished walk stays finished. */
	KUNIT_EXPECT_FALSE(test, kvm_gmem_next_block(&it, &s, &order));
	KUNIT_ASSERT_LE(test, b->n, MAX_BLOCKS);
}

/*
 * The blocks of the unpunched subpages of [start, end) of @map (NULL: none
 * punched), as kvm_gmem_reclaim_private() walks them.
 */
static void walk_unpunched(struct kunit *test, struct blocks *b,
			   unsigned long *map, unsigned long start,
			   unsigned long end)
{
	walk(test, b, map, start, end, false, false);
}

/*
 * Punch [start, end) of @map as kvm_gmem_punch_folio() does: record the
 * blocks it reports and return the number of subpages newly punched.
 */
static unsigned long punch(struct kunit *test, struct blocks *b,
			   unsigned long *map, unsigned long start,
			   unsigned long end)
{
	struct kvm_gmem_blocks it;
	unsigned int order;
	unsigned long s;

	b->n = 0;
	kvm_gmem_blocks_init(&it, map, start, end, false);
	while (kvm_gmem_punch_next(&it, &s, &order))
		record(b, s, order);
	KUNIT_EXPECT_FALSE(test, kvm_gmem_punch_next(&it, &s, &order));
	KUNIT_ASSERT_LE(test, b->n, MAX_BLOCKS);
	return it.punched;
}

static void expect_blocks(struct kunit *test, const struct blocks *got,
			  const unsigned long (*want)[2], unsigned int nr)
{
	unsigned int i;

	KUNIT_ASSERT_EQ(test, got->n, nr);
	for (i = 0; i < nr; i++) {
		KUNIT_EXPECT_EQ_MSG(test, got->start[i], want[i][0], "block %u", i);
		KUNIT_EXPECT_EQ_MSG(test, got->order[i], want[i][1], "block %u", i);
	}
}

/*
 * Whether [s, e) holds a subpage that a walk of @map (see walk()) skips:
 * one set in @map, or with @set one clear in it.
 */
static bool any_skipped(const unsigned long *map, bool set, unsigned long s,
			unsigned long e)
{
	if (!map)
		return set && s < e;
	return (set ? find_next_zero_bit(map, e, s) :
		      find_next_bit(map, e, s)) < e;
}

/* The first subpage of [pos, end) that a walk of @map visits, or @end. */
static unsigned long next_walked(const unsigned long *map, bool set,
				 unsigned long pos, unsigned long end)
{
	if (!map)
		return set ? end : min(pos, end);
	return set ? find_next_bit(map, end, pos) :
		     find_next_zero_bit(map, end, pos);
}

/*
 * The blocks @b of a walk of [start, end) of @map cover exactly the
 * subpages it visits, in ascending order, each naturally aligned and
 * maximal: the aligned block of the next order up leaves the range or
 * holds a subpage the walk skips.
 */
static void check_walk(struct kunit *test, const struct blocks *b,
		       const unsigned long *map, bool set, unsigned long start,
		       unsigned long end)
{
	unsigned long pos = start;
	unsigned int i;

	KUNIT_ASSERT_LE(test, b->n, MAX_BLOCKS);
	for (i = 0; i < b->n; i++) {
		unsigned long size = 1UL << b->order[i];
		unsigned long up = round_down(b->start[i], size << 1);

		pos = next_walked(map, set, pos, end);
		KUNIT_EXPECT_EQ_MSG(test, b->start[i], pos, "block %u", i);
		KUNIT_EXPECT_TRUE(test, IS_ALIGNED(b->start[i], size));
		KUNIT_EXPECT_LE(test, b->start[i] + size, end);
		KUNIT_EXPECT_FALSE_MSG(test, any_skipped(map, set, b->start[i],
							 b->start[i] + size),
				       "block %lx order %u holds a skipped subpage",
				       b->start[i], b->order[i]);
		KUNIT_EXPECT_TRUE_MSG(test, up < start || up + (size << 1) > end ||
				      any_skipped(map, set, up, up + (size << 1)),
				      "block %lx order %u of [%lx, %lx) is not maximal",
				      b->start[i], b->order[i], start, end);
		pos = b->start[i] + size;
	}
	KUNIT_EXPECT_EQ(test, next_walked(map, set, pos, end), end);
}

/* check_walk() for the blocks of the unpunched subpages. */
static void check_blocks(struct kunit *test, const struct blocks *b,
			 const unsigned long *map, unsigned long start,
			 unsigned long end)
{
	check_walk(test, b, map, false, start, end);
}

/*
 * Punch [start, end) of @map (@nr subpages) and check everything about it:
 * the blocks reported are those of the subpages that were unpunched, the
 * map gains exactly the range, and the count is of the newly punched.
 * @old is scratch space for a copy of @map.
 */
static unsigned long check_punch(struct kunit *test, struct blocks *b,
				 unsigned long *map, unsigned long *old,
				 unsigned long nr, unsigned long start,
				 unsigned long end)
{
	unsigned long n, i, fresh = 0, wrong = 0, first = 0;

	bitmap_copy(old, map, nr);
	n = punch(test, b, map, start, end);
	check_blocks(test, b, old, start, end);
	for (i = 0; i < nr; i++) {
		bool in = i >= start && i < end;

		if (test_bit(i, map) != (test_bit(i, old) || in) && !wrong++)
			first = i;
		fresh += in && !test_bit(i, old);
	}
	KUNIT_EXPECT_EQ_MSG(test, wrong, 0,
			    "subpage %lx wrong after punching [%lx, %lx)",
			    first, start, end);
	KUNIT_EXPECT_EQ(test, n, fresh);
	return n;
}

static void kvm_gmem_hugetlb_test_block_order(struct kunit *test)
{
	static const struct {
		unsigned long start, end;
		unsigned int order;
	} cases[] = {
		{ 0, NR_2M, 9 },
		{ 0, NR_2M - 1, 8 },
		{ 512, 768, 8 },
		{ 3, 13, 0 },
		{ 4, 13, 2 },
		{ 511, 512, 0 },
		{ 0, NR_1G, 18 },
		{ NR_1G / 2, NR_1G, 17 },
	};
	unsigned long s, e;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(cases); i++)
		KUNIT_EXPECT_EQ_MSG(test, kvm_gmem_block_order(cases[i].start,
							       cases[i].end),
				    cases[i].order, "[%lx, %lx)",
				    cases[i].start, cases[i].end);

	/* Aligned, inside the range, and the next order up is not both. */
	for (s = 0; s < 70; s++) {
		for (e = s + 1; e < 140; e++) {
			unsigned int order = kvm_gmem_block_order(s, e);
			unsigned long size = 1UL << order;

			KUNIT_EXPECT_TRUE(test, IS_ALIGNED(s, size));
			KUNIT_EXPECT_LE(test, s + size, e);
			KUNIT_EXPECT_TRUE_MSG(test, !IS_ALIGNED(s, size << 1) ||
					      s + (size << 1) > e,
					      "order %u at %lx before %lx", order,
					      s, e);
		}
	}
}

/*
 * Walks of one range of a bitmap: the runs of its clear subpages (those in
 * use, for a punch or a reclaim) or of its set ones (those not private, for
 * kvm_gmem_hugetlb_make_private()), each as the fewest aligned blocks, cut
 * at the range.
 */
struct walk_case {
	const char *desc;
	unsigned long start, end;
	bool no_map;	/* walk with no bitmap (nothing set in it) */
	bool set;	/* walk the set subpages */
	unsigned int nr;
	unsigned long want[MAX_WANT][2];
};

static const struct walk_case walk_cases[] = {
	{
		.desc = "clear, no map",
		.start = 3, .end = 13, .no_map = true,
		.nr = 4, .want = { { 3, 0 }, { 4, 2 }, { 8, 2 }, { 12, 0 } },
	},
	{
		.desc = "clear, no map, empty",
		.start = 13, .end = 13, .no_map = true,
	},
	{
		.desc = "clear, whole",
		.start = 0, .end = NR_2M,
		.nr = 14, .want = {
			{ 1, 0 }, { 2, 1 }, { 4, 0 }, { 8, 1 }, { 20, 2 },
			{ 24, 3 }, { 32, 5 }, { 64, 6 }, { 128, 7 },
			{ 256, 7 }, { 384, 6 }, { 448, 5 }, { 480, 4 },
			{ 496, 2 },
		},
	},
	{
		.desc = "clear, inside a run",
		.start = 2, .end = 4,
		.nr = 1, .want = { { 2, 1 } },
	},
	{
		.desc = "clear, all set",
		.start = 5, .end = 8,
	},
	{
		.desc = "clear, starts in a set run",
		.start = 7, .end = 9,
		.nr = 1, .want = { { 8, 0 } },
	},
	{
		.desc = "clear, empty",
		.start = 7, .end = 7,
	},
	{
		.desc = "set, no map",
		.start = 0, .end = 13, .no_map = true, .set = true,
	},
	{
		.desc = "set, whole",
		.start = 0, .end = NR_2M, .set = true,
		.nr = 8, .want = {
			{ 0, 0 }, { 5, 0 }, { 6, 1 }, { 10, 1 }, { 12, 2 },
			{ 16, 2 }, { 500, 2 }, { 504, 3 },
		},
	},
	{
		.desc = "set, starts in a clear run",
		.start = 1, .end = 9, .set = true,
		.nr = 2, .want = { { 5, 0 }, { 6, 1 } },
	},
	{
		.desc = "set, inside runs",
		.start = 6, .end = 15, .set = true,
		.nr = 4, .want = { { 6, 1 }, { 10, 1 }, { 12, 1 }, { 14, 0 } },
	},
	{
		.desc = "set, all clear",
		.start = 20, .end = 500, .set = true,
	},
};

KUNIT_ARRAY_PARAM_DESC(walk_cases, walk_cases, desc);

static void kvm_gmem_hugetlb_test_walk(struct kunit *test)
{
	const struct walk_case *c = test->param_value;
	unsigned long *map = NULL;
	struct blocks *b = alloc_blocks(test);

	if (!c->no_map) {
		/* Set: [0, 1), [5, 8), [10, 20), [500, 512). */
		map = alloc_map(test, NR_2M);
		bitmap_set(map, 0, 1);
		bitmap_set(map, 5, 3);
		bitmap_set(map, 10, 10);
		bitmap_set(map, 500, 12);
	}

	walk(test, b, map, c->start, c->end, c->set, false);
	expect_blocks(test, b, c->want, c->nr);
	check_walk(test, b, map, c->set, c->start, c->end);
}

/*
 * The walk of set subpages (the ones not private yet) as
 * kvm_gmem_hugetlb_make_private() does it: each block is cleared as soon as
 * it is returned, which changes nothing of the walk.
 */
static void kvm_gmem_hugetlb_test_set_blocks(struct kunit *test)
{
	static const unsigned long all[][2] = {
		{ 0, 0 }, { 5, 0 }, { 6, 1 }, { 10, 1 }, { 12, 2 }, { 16, 2 },
		{ 500, 2 }, { 504, 3 },
	};
	static const unsigned long part[][2] = {
		{ 6, 1 }, { 10, 1 }, { 12, 1 }, { 14, 0 },
	};
	unsigned long *map = alloc_map(test, NR_2M);
	struct blocks *b = alloc_blocks(test);

	/* No map: nothing is set. */
	walk(test, b, NULL, 0, NR_2M, true, true);
	KUNIT_EXPECT_EQ(test, b->n, 0);

	/* Set: [0, 1), [5, 8), [10, 20), [500, 512). */
	bitmap_set(map, 0, 1);
	bitmap_set(map, 5, 3);
	bitmap_set(map, 10, 10);
	bitmap_set(map, 500, 12);

	walk(test, b, map, 6, 15, true, true);
	expect_blocks(test, b, part, ARRAY_SIZE(part));
	/* What was walked is clear, the rest still set. */
	KUNIT_EXPECT_EQ(test, bitmap_weight(map, NR_2M), 1 + 1 + 5 + 12);
	KUNIT_EXPECT_EQ(test, find_next_bit(map, NR_2M, 6), 15);
	bitmap_set(map, 6, 2);
	bitmap_set(map, 10, 5);

	walk(test, b, map, 0, NR_2M, true, true);
	expect_blocks(test, b, all, ARRAY_SIZE(all));
	KUNIT_EXPECT_TRUE(test, bitmap_empty(map, NR_2M));
}

/*
 * One refill of a folio's punched map, by blocks of order @border: the
 * count of subpages refilled and the span [ps, pe) of the blocks it left
 * without a hole (ps == pe: none).
 */
struct refill_step {
	unsigned int border;
	unsigned long s, e, n, ps, pe;
};

/*
 * Refill [step->s, step->e) of @map (@nr subpages) and check everything
 * about it: exactly the range is cleared, and the count and the span are
 * the ones expected.  @old is scratch space for a copy of @map.
 */
static void check_refill(struct kunit *test, unsigned long *map,
			 unsigned long *old, unsigned long nr,
			 const struct refill_step *step)
{
	unsigned long n, i, ps = 1, pe = 0, wrong = 0, first = 0;

	bitmap_copy(old, map, nr);
	n = kvm_gmem_refill_blocks(map, step->border, step->s, step->e, &ps,
				   &pe);
	KUNIT_EXPECT_EQ_MSG(test, n, step->n, "refill [%lx, %lx)", step->s,
			    step->e);
	for (i = 0; i < nr; i++) {
		bool in = i >= step->s && i < step->e;

		if (test_bit(i, map) != (test_bit(i, old) && !in) && !wrong++)
			first = i;
	}
	KUNIT_EXPECT_EQ_MSG(test, wrong, 0,
			    "subpage %lx wrong after refilling [%lx, %lx)",
			    first, step->s, step->e);
	if (step->ps == step->pe) {
		KUNIT_EXPECT_EQ_MSG(test, ps, pe, "refill [%lx, %lx)",
				    step->s, step->e);
	} else {
		KUNIT_EXPECT_EQ_MSG(test, ps, step->ps, "refill [%lx, %lx)",
				    step->s, step->e);
		KUNIT_EXPECT_EQ_MSG(test, pe, step->pe, "refill [%lx, %lx)",
				    step->s, step->e);
	}
}

/*
 * A refill reports the blocks it leaves without a hole, and only those: a
 * block that had no hole, or keeps one punched outside the range, is not
 * promoted.
 */
static void kvm_gmem_hugetlb_test_refill_blocks(struct kunit *test)
{
	static const struct refill_step steps[] = {
		/* Nothing punched in the range: nothing cleared or promoted. */
		{ 9, 0, 512, 0, 0, 0 },
		/* Block 2 keeps its hole at 300. */
		{ 9, 1024, 1024 + 2, 1, 0, 0 },
		/*
		 * Blocks 1 to 5: 1 keeps its hole (before the range), 2, 3 and
		 * 5 become whole, 4 had no hole (inside the span).
		 */
		{ 9, 600, 2561, 3, 1024, 3072 },
		/* Then 1 becomes whole, and 2 to 5 are left alone. */
		{ 9, 500, 2561, 1, 512, 1024 },
		/* The whole folio as one block: it keeps block 6's hole. */
		{ 12, 4000, 4001, 1, 0, 0 },
		{ 12, 0, 8 * 512, 1, 0, 8 * 512 },
	};
	const unsigned long nr = 8 * 512;	/* eight 2M blocks of a folio */
	unsigned long *map = alloc_map(test, nr);
	unsigned long *old = alloc_map(test, nr);
	unsigned int i;

	/* Holes in blocks 1, 2 (two), 3, 5, 6 and 7. */
	__set_bit(512 + 7, map);
	__set_bit(1024 + 1, map);
	__set_bit(1024 + 300, map);
	__set_bit(1536 + 2, map);
	__set_bit(2560, map);
	__set_bit(3072 + 28, map);
	__set_bit(4000, map);

	for (i = 0; i < ARRAY_SIZE(steps); i++)
		check_refill(test, map, old, nr, &steps[i]);
	KUNIT_EXPECT_TRUE(test, bitmap_empty(map, nr));
}

/*
 * With nothing punched, a walk tiles [start, end) with maximal aligned
 * blocks, and punching an empty map reports the same blocks.
 */
static void check_tiling(struct kunit *test, struct blocks *b,
			 struct blocks *pb, unsigned long *map,
			 unsigned long *old, unsigned long nr,
			 unsigned long start, unsigned long end)
{
	unsigned int i;

	walk_unpunched(test, b, NULL, start, end);
	check_blocks(test, b, NULL, start, end);

	bitmap_zero(map, nr);
	KUNIT_EXPECT_EQ(test, check_punch(test, pb, map, old, nr, start, end),
			end - start);
	KUNIT_ASSERT_EQ(test, pb->n, b->n);
	for (i = 0; i < b->n; i++) {
		KUNIT_EXPECT_EQ(test, pb->start[i], b->start[i]);
		KUNIT_EXPECT_EQ(test, pb->order[i], b->order[i]);
	}
}

static void kvm_gmem_hugetlb_test_blocks(struct kunit *test)
{
	static const unsigned long whole[][2] = { { 0, 9 } };
	static const unsigned long one_meg_of_1g[][2] = { { 512, 8 } };
	static const unsigned long ragged[][2] = {
		{ 3, 0 }, { 4, 2 }, { 8, 2 }, { 12, 0 },
	};
	static const unsigned long last[][2] = { { 511, 0 } };
	struct blocks *b = alloc_blocks(test);
	struct blocks *pb = alloc_blocks(test);
	unsigned long *map = alloc_map(test, NR_1G);
	unsigned long *old = alloc_map(test, NR_1G);
	unsigned long s, e;

	walk_unpunched(test, b, NULL, 0, NR_2M);
	expect_blocks(test, b, whole, ARRAY_SIZE(whole));

	/* Punching [2M, 3M) of a 1G folio is one order-8 block. */
	walk_unpunched(test, b, NULL, 512, 768);
	expect_blocks(test, b, one_meg_of_1g, ARRAY_SIZE(one_meg_of_1g));

	walk_unpunched(test, b, NULL, 3, 13);
	expect_blocks(test, b, ragged, ARRAY_SIZE(ragged));

	walk_unpunched(test, b, NULL, 511, 512);
	expect_blocks(test, b, last, ARRAY_SIZE(last));

	walk_unpunched(test, b, NULL, 7, 7);
	KUNIT_EXPECT_EQ(test, b->n, 0);

	/* 1 .. 2^18: one block of each order 0..17. */
	walk_unpunched(test, b, NULL, 1, NR_1G);
	KUNIT_EXPECT_EQ(test, b->n, 18);

	/* An empty map walks like none. */
	walk_unpunched(test, pb, map, 3, 13);
	expect_blocks(test, pb, ragged, ARRAY_SIZE(ragged));

	for (s = 0; s < 70; s++)
		for (e = s; e < 140; e++)
			check_tiling(test, b, pb, map, old, 140, s, e);
	check_tiling(test, b, pb, map, old, NR_1G, 12345, NR_1G);
}

static void kvm_gmem_hugetlb_test_punch_edges(struct kunit *test)
{
	static const unsigned long first[][2] = { { 0, 0 } };
	static const unsigned long last[][2] = { { 511, 0 } };
	static const unsigned long rest[][2] = {
		{ 1, 0 }, { 2, 1 }, { 4, 2 }, { 8, 3 }, { 16, 4 }, { 32, 5 },
		{ 64, 6 }, { 128, 7 }, { 256, 7 }, { 384, 6 }, { 448, 5 },
		{ 480, 4 }, { 496, 3 }, { 504, 2 }, { 508, 1 }, { 510, 0 },
	};
	struct blocks *b = alloc_blocks(test);
	unsigned long *map = alloc_map(test, NR_2M);
	unsigned long *old = alloc_map(test, NR_2M);

	KUNIT_EXPECT_EQ(test, check_punch(test, b, map, old, NR_2M, 0, 1), 1);
	expect_blocks(test, b, first, ARRAY_SIZE(first));
	KUNIT_EXPECT_EQ(test, check_punch(test, b, map, old, NR_2M, 511, 512), 1);
	expect_blocks(test, b, last, ARRAY_SIZE(last));

	/* The blocks still in use, as a folio removal reclaims them. */
	walk_unpunched(test, b, map, 0, NR_2M);
	expect_blocks(test, b, rest, ARRAY_SIZE(rest));
	check_blocks(test, b, map, 0, NR_2M);

	/* Punching everything reports exactly those, then nothing. */
	KUNIT_EXPECT_EQ(test, check_punch(test, b, map, old, NR_2M, 0, NR_2M),
			NR_2M - 2);
	expect_blocks(test, b, rest, ARRAY_SIZE(rest));
	KUNIT_EXPECT_TRUE(test, bitmap_full(map, NR_2M));
	KUNIT_EXPECT_EQ(test, check_punch(test, b, map, old, NR_2M, 0, NR_2M), 0);
	KUNIT_EXPECT_EQ(test, b->n, 0);
	walk_unpunched(test, b, map, 0, NR_2M);
	KUNIT_EXPECT_EQ(test, b->n, 0);
}

static void kvm_gmem_hugetlb_test_punch_whole(struct kunit *test)
{
	static const unsigned long whole[][2] = { { 0, 9 } };
	struct blocks *b = alloc_blocks(test);
	unsigned long *map = alloc_map(test, NR_2M);
	unsigned long *old = alloc_map(test, NR_2M);

	KUNIT_EXPECT_EQ(test, check_punch(test, b, map, old, NR_2M, 0, NR_2M),
			NR_2M);
	expect_blocks(test, b, whole, ARRAY_SIZE(whole));
	KUNIT_EXPECT_TRUE(test, bitmap_full(map, NR_2M));
}

static void kvm_gmem_hugetlb_test_punch_random(struct kunit *test)
{
	struct blocks *b = alloc_blocks(test);
	unsigned long *map = alloc_map(test, NR_2M);
	unsigned long *old = alloc_map(test, NR_2M);
	unsigned int *perm = kunit_kcalloc(test, NR_2M, sizeof(*perm), GFP_KERNEL);
	unsigned long total = 0;
	struct rnd_state rnd;
	unsigned int i;

	KUNIT_ASSERT_NOT_NULL(test, perm);
	prandom_seed_state(&rnd, 0x6a6d656d);
	for (i = 0; i < NR_2M; i++)
		perm[i] = i;
	for (i = NR_2M - 1; i > 0; i--) {
		unsigned int j = prandom_u32_state(&rnd) % (i + 1);

		swap(perm[i], perm[j]);
	}

	for (i = 0; i < NR_2M; i++) {
		KUNIT_ASSERT_FALSE(test, bitmap_full(map, NR_2M));
		total += check_punch(test, b, map, old, NR_2M, perm[i],
				     perm[i] + 1);
		KUNIT_ASSERT_EQ(test, b->n, 1);
		KUNIT_EXPECT_EQ(test, b->start[0], perm[i]);
		KUNIT_EXPECT_EQ(test, b->order[0], 0);
		KUNIT_EXPECT_EQ(test, bitmap_weight(map, NR_2M), i + 1);
	}
	KUNIT_EXPECT_EQ(test, total, NR_2M);
	KUNIT_EXPECT_TRUE(test, bitmap_full(map, NR_2M));
}

static void kvm_gmem_hugetlb_test_punch_overlap(struct kunit *test)
{
	/* Each punch overlaps the previous ones: only the new part counts. */
	static const struct {
		unsigned long start, end;
		unsigned int nr;
		unsigned long want[2][2];
	} steps[] = {
		{ 128, 256, 1, { { 128, 7 } } },
		{ 128, 384, 1, { { 256, 7 } } },
		{ 64, 448, 2, { { 64, 6 }, { 384, 6 } } },
	};
	struct blocks *b = alloc_blocks(test);
	unsigned long *map = alloc_map(test, NR_2M);
	unsigned long *old = alloc_map(test, NR_2M);
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(steps); i++) {
		KUNIT_EXPECT_EQ(test, check_punch(test, b, map, old, NR_2M,
						  steps[i].start, steps[i].end),
				128);
		expect_blocks(test, b, steps[i].want, steps[i].nr);
	}
	KUNIT_EXPECT_EQ(test, bitmap_weight(map, NR_2M), 384);
}

static void kvm_gmem_hugetlb_test_refill(struct kunit *test)
{
	static const unsigned long refilled[][2] = {
		{ 100, 2 }, { 104, 2 }, { 108, 1 },
	};
	struct blocks *b = alloc_blocks(test);
	unsigned long *map = alloc_map(test, NR_2M);
	unsigned long *old = alloc_map(test, NR_2M);
	unsigned long ps, pe;

	/* A 2M folio refills by blocks of its own order. */
	punch(test, b, map, 0, NR_2M);
	KUNIT_EXPECT_EQ(test, kvm_gmem_refill_blocks(map, 9, 100, 110, &ps, &pe),
			10);
	KUNIT_EXPECT_EQ(test, ps, pe);
	KUNIT_EXPECT_EQ(test, kvm_gmem_refill_blocks(map, 9, 100, 110, &ps, &pe),
			0);
	KUNIT_EXPECT_EQ(test, ps, pe);
	KUNIT_EXPECT_EQ(test, bitmap_weight(map, NR_2M), NR_2M - 10);
	KUNIT_EXPECT_EQ(test, find_next_zero_bit(map, NR_2M, 0), 100);
	KUNIT_EXPECT_EQ(test, find_next_bit(map, NR_2M, 100), 110);

	/* The blocks in use again, as a folio removal reclaims them. */
	walk_unpunched(test, b, map, 0, NR_2M);
	expect_blocks(test, b, refilled, ARRAY_SIZE(refilled));

	/* Only the refilled subpages are reported by the next punch. */
	KUNIT_EXPECT_EQ(test, check_punch(test, b, map, old, NR_2M, 96, 128), 10);
	expect_blocks(test, b, refilled, ARRAY_SIZE(refilled));
	KUNIT_EXPECT_TRUE(test, bitmap_full(map, NR_2M));
}

static void kvm_gmem_hugetlb_test_max_order(struct kunit *test)
{
	unsigned long *map = alloc_map(test, NR_1G);
	unsigned long ps, pe;

	KUNIT_EXPECT_EQ(test, kvm_gmem_subpages_max_order(map, 18, 12345), 18);

	/* One hole at subpage 5 of a 1G folio. */
	__set_bit(5, map);
	KUNIT_EXPECT_EQ(test, kvm_gmem_subpages_max_order(map, 18, 0), 2);
	KUNIT_EXPECT_EQ(test, kvm_gmem_subpages_max_order(map, 18, 4), 0);
	KUNIT_EXPECT_EQ(test, kvm_gmem_subpages_max_order(map, 18, 5), 0);
	KUNIT_EXPECT_EQ(test, kvm_gmem_subpages_max_order(map, 18, 6), 1);
	KUNIT_EXPECT_EQ(test, kvm_gmem_subpages_max_order(map, 18, 300), 8);
	KUNIT_EXPECT_EQ(test, kvm_gmem_subpages_max_order(map, 18, 512), 9);
	KUNIT_EXPECT_EQ(test, kvm_gmem_subpages_max_order(map, 18, 1UL << 17),
			17);

	/*
	 * Refilled, by 2M blocks as a 1G folio is: its first 2M block is
	 * whole again, and the folio maps whole.
	 */
	KUNIT_EXPECT_EQ(test, kvm_gmem_refill_blocks(map, 9, 0, NR_1G, &ps, &pe),
			1);
	KUNIT_EXPECT_EQ(test, ps, 0);
	KUNIT_EXPECT_EQ(test, pe, NR_2M);
	KUNIT_EXPECT_EQ(test, kvm_gmem_subpages_max_order(map, 18, 5), 18);
}

static struct kunit_case kvm_gmem_hugetlb_test_cases[] = {
	KUNIT_CASE(kvm_gmem_hugetlb_test_block_order),
	KUNIT_CASE_PARAM(kvm_gmem_hugetlb_test_walk, walk_cases_gen_params),
	KUNIT_CASE(kvm_gmem_hugetlb_test_set_blocks),
	KUNIT_CASE(kvm_gmem_hugetlb_test_refill_blocks),
	KUNIT_CASE(kvm_gmem_hugetlb_test_blocks),
	KUNIT_CASE(kvm_gmem_hugetlb_test_punch_edges),
	KUNIT_CASE(kvm_gmem_hugetlb_test_punch_whole),
	KUNIT_CASE(kvm_gmem_hugetlb_test_punch_random),
	KUNIT_CASE(kvm_gmem_hugetlb_test_punch_overlap),
	KUNIT_CASE(kvm_gmem_hugetlb_test_refill),
	KUNIT_CASE(kvm_gmem_hugetlb_test_max_order),
	{}
};

static struct kunit_suite kvm_gmem_hugetlb_test_suite = {
	.name = "kvm_gmem_hugetlb",
	.test_cases = kvm_gmem_hugetlb_test_cases,
};

kunit_test_suite(kvm_gmem_hugetlb_test_suite);
