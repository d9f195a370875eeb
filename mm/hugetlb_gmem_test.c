// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests for the block decomposition and the punched-subpage tracking
 * of hugetlb guest_memfd (mm/hugetlb_gmem.c).
 */
#include <kunit/test.h>
#include <linux/bitmap.h>
#include <linux/hugetlb_gmem.h>
#include <linux/prandom.h>
#include <linux/slab.h>

#define NR_2M	512UL
#define MAX_BLOCKS	64

struct blocks {
	unsigned int n;
	unsigned long start[MAX_BLOCKS];
	unsigned int order[MAX_BLOCKS];
};

static void record(unsigned long start, unsigned int order, void *arg)
{
	struct blocks *b = arg;

	if (b->n < MAX_BLOCKS) {
		b->start[b->n] = start;
		b->order[b->n] = order;
	}
	b->n++;
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
 * The blocks tile [start, end) in order, each naturally aligned, and each
 * maximal: the aligned block of the next order up does not fit the range.
 */
static void check_tiling(struct kunit *test, unsigned long start,
			 unsigned long end)
{
	struct blocks b = {};
	unsigned long pos = start;
	unsigned int i;

	hugetlb_gmem_walk_blocks(start, end, record, &b);
	KUNIT_ASSERT_LE(test, b.n, MAX_BLOCKS);
	for (i = 0; i < b.n; i++) {
		unsigned long size = 1UL << b.order[i];
		unsigned long up = round_down(b.start[i], size << 1);

		KUNIT_EXPECT_EQ(test, b.start[i], pos);
		KUNIT_EXPECT_TRUE(test, IS_ALIGNED(b.start[i], size));
		KUNIT_EXPECT_TRUE_MSG(test, up < start || up + (size << 1) > end,
				      "block %lx order %u of [%lx, %lx) is not maximal",
				      b.start[i], b.order[i], start, end);
		pos += size;
	}
	KUNIT_EXPECT_EQ(test, pos, end);
}

static void hugetlb_gmem_test_blocks(struct kunit *test)
{
	static const unsigned long whole[][2] = { { 0, 9 } };
	static const unsigned long one_meg_of_1g[][2] = { { 512, 8 } };
	static const unsigned long ragged[][2] = {
		{ 3, 0 }, { 4, 2 }, { 8, 2 }, { 12, 0 },
	};
	static const unsigned long last[][2] = { { 511, 0 } };
	struct blocks b;
	unsigned long s, e;

	b = (struct blocks){};
	hugetlb_gmem_walk_blocks(0, NR_2M, record, &b);
	expect_blocks(test, &b, whole, ARRAY_SIZE(whole));

	/* Punching [2M, 3M) of a 1G folio is one order-8 block. */
	b = (struct blocks){};
	hugetlb_gmem_walk_blocks(512, 768, record, &b);
	expect_blocks(test, &b, one_meg_of_1g, ARRAY_SIZE(one_meg_of_1g));

	b = (struct blocks){};
	hugetlb_gmem_walk_blocks(3, 13, record, &b);
	expect_blocks(test, &b, ragged, ARRAY_SIZE(ragged));

	b = (struct blocks){};
	hugetlb_gmem_walk_blocks(511, 512, record, &b);
	expect_blocks(test, &b, last, ARRAY_SIZE(last));

	b = (struct blocks){};
	hugetlb_gmem_walk_blocks(7, 7, record, &b);
	KUNIT_EXPECT_EQ(test, b.n, 0);

	/* 1 .. 2^18: one block of each order 0..17. */
	b = (struct blocks){};
	hugetlb_gmem_walk_blocks(1, 1UL << 18, record, &b);
	KUNIT_EXPECT_EQ(test, b.n, 18);

	for (s = 0; s < 70; s++)
		for (e = s; e < 140; e++)
			check_tiling(test, s, e);
	check_tiling(test, 12345, 1UL << 18);
}

static unsigned long *alloc_map(struct kunit *test, unsigned long nr)
{
	unsigned long *map = kunit_kzalloc(test, BITS_TO_LONGS(nr) * sizeof(long),
					   GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, map);
	return map;
}

static void hugetlb_gmem_test_punch_edges(struct kunit *test)
{
	static const unsigned long first[][2] = { { 0, 0 } };
	static const unsigned long last[][2] = { { 511, 0 } };
	static const unsigned long rest[][2] = {
		{ 1, 0 }, { 2, 1 }, { 4, 2 }, { 8, 3 }, { 16, 4 }, { 32, 5 },
		{ 64, 6 }, { 128, 7 }, { 256, 7 }, { 384, 6 }, { 448, 5 },
		{ 480, 4 }, { 496, 3 }, { 504, 2 }, { 508, 1 }, { 510, 0 },
	};
	unsigned long *map = alloc_map(test, NR_2M);
	struct blocks b = {};

	KUNIT_EXPECT_EQ(test, hugetlb_gmem_punch_subpages(map, 0, 1, record, &b), 1);
	expect_blocks(test, &b, first, ARRAY_SIZE(first));
	b = (struct blocks){};
	KUNIT_EXPECT_EQ(test, hugetlb_gmem_punch_subpages(map, 511, 512, record, &b), 1);
	expect_blocks(test, &b, last, ARRAY_SIZE(last));

	/* The blocks still in use, as a folio free reports them. */
	b = (struct blocks){};
	hugetlb_gmem_walk_unpunched(map, 0, NR_2M, record, &b);
	expect_blocks(test, &b, rest, ARRAY_SIZE(rest));

	/* Punching everything reports exactly those, then nothing. */
	b = (struct blocks){};
	KUNIT_EXPECT_EQ(test, hugetlb_gmem_punch_subpages(map, 0, NR_2M, record, &b),
			NR_2M - 2);
	expect_blocks(test, &b, rest, ARRAY_SIZE(rest));
	KUNIT_EXPECT_TRUE(test, bitmap_full(map, NR_2M));
	b = (struct blocks){};
	KUNIT_EXPECT_EQ(test, hugetlb_gmem_punch_subpages(map, 0, NR_2M, record, &b), 0);
	KUNIT_EXPECT_EQ(test, b.n, 0);
}

static void hugetlb_gmem_test_punch_whole(struct kunit *test)
{
	static const unsigned long whole[][2] = { { 0, 9 } };
	unsigned long *map = alloc_map(test, NR_2M);
	struct blocks b = {};

	KUNIT_EXPECT_EQ(test, hugetlb_gmem_punch_subpages(map, 0, NR_2M, record, &b),
			NR_2M);
	expect_blocks(test, &b, whole, ARRAY_SIZE(whole));
	KUNIT_EXPECT_TRUE(test, bitmap_full(map, NR_2M));
}

static void hugetlb_gmem_test_punch_random(struct kunit *test)
{
	unsigned long *map = alloc_map(test, NR_2M);
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
		struct blocks b = {};

		KUNIT_ASSERT_FALSE(test, bitmap_full(map, NR_2M));
		total += hugetlb_gmem_punch_subpages(map, perm[i], perm[i] + 1,
						     record, &b);
		KUNIT_ASSERT_EQ(test, b.n, 1);
		KUNIT_EXPECT_EQ(test, b.start[0], perm[i]);
		KUNIT_EXPECT_EQ(test, b.order[0], 0);
		KUNIT_EXPECT_EQ(test, bitmap_weight(map, NR_2M), i + 1);
	}
	KUNIT_EXPECT_EQ(test, total, NR_2M);
	KUNIT_EXPECT_TRUE(test, bitmap_full(map, NR_2M));
}

static void hugetlb_gmem_test_punch_overlap(struct kunit *test)
{
	static const unsigned long second[][2] = { { 256, 7 } };
	static const unsigned long third[][2] = { { 64, 6 }, { 384, 6 } };
	unsigned long *map = alloc_map(test, NR_2M);
	struct blocks b = {};

	KUNIT_EXPECT_EQ(test, hugetlb_gmem_punch_subpages(map, 128, 256, NULL, NULL), 128);
	KUNIT_EXPECT_EQ(test, hugetlb_gmem_punch_subpages(map, 128, 384, record, &b), 128);
	expect_blocks(test, &b, second, ARRAY_SIZE(second));
	b = (struct blocks){};
	KUNIT_EXPECT_EQ(test, hugetlb_gmem_punch_subpages(map, 64, 448, record, &b), 128);
	expect_blocks(test, &b, third, ARRAY_SIZE(third));
	KUNIT_EXPECT_EQ(test, bitmap_weight(map, NR_2M), 384);
}

static void hugetlb_gmem_test_refill(struct kunit *test)
{
	static const unsigned long again[][2] = { { 100, 2 }, { 104, 2 }, { 108, 1 } };
	static const unsigned long in_use[][2] = { { 100, 2 }, { 104, 2 }, { 108, 1 } };
	unsigned long *map = alloc_map(test, NR_2M);
	struct blocks b = {};

	hugetlb_gmem_punch_subpages(map, 0, NR_2M, NULL, NULL);
	KUNIT_EXPECT_EQ(test, hugetlb_gmem_refill_subpages(map, 100, 110), 10);
	KUNIT_EXPECT_EQ(test, hugetlb_gmem_refill_subpages(map, 100, 110), 0);
	KUNIT_EXPECT_EQ(test, bitmap_weight(map, NR_2M), NR_2M - 10);

	hugetlb_gmem_walk_unpunched(map, 0, NR_2M, record, &b);
	expect_blocks(test, &b, in_use, ARRAY_SIZE(in_use));

	/* Only the refilled subpages are reported by the next punch. */
	b = (struct blocks){};
	KUNIT_EXPECT_EQ(test, hugetlb_gmem_punch_subpages(map, 96, 128, record, &b), 10);
	expect_blocks(test, &b, again, ARRAY_SIZE(again));
	KUNIT_EXPECT_TRUE(test, bitmap_full(map, NR_2M));
}

static void hugetlb_gmem_test_max_order(struct kunit *test)
{
	unsigned long *map = alloc_map(test, 1UL << 18);

	KUNIT_EXPECT_EQ(test, hugetlb_gmem_subpages_max_order(map, 18, 12345), 18);

	/* One hole at subpage 5 of a 1G folio. */
	__set_bit(5, map);
	KUNIT_EXPECT_EQ(test, hugetlb_gmem_subpages_max_order(map, 18, 0), 2);
	KUNIT_EXPECT_EQ(test, hugetlb_gmem_subpages_max_order(map, 18, 4), 0);
	KUNIT_EXPECT_EQ(test, hugetlb_gmem_subpages_max_order(map, 18, 5), 0);
	KUNIT_EXPECT_EQ(test, hugetlb_gmem_subpages_max_order(map, 18, 6), 1);
	KUNIT_EXPECT_EQ(test, hugetlb_gmem_subpages_max_order(map, 18, 300), 8);
	KUNIT_EXPECT_EQ(test, hugetlb_gmem_subpages_max_order(map, 18, 512), 9);
	KUNIT_EXPECT_EQ(test, hugetlb_gmem_subpages_max_order(map, 18, 1UL << 17), 17);

	/* Refilled: the folio maps whole again. */
	hugetlb_gmem_refill_subpages(map, 0, 1UL << 18);
	KUNIT_EXPECT_EQ(test, hugetlb_gmem_subpages_max_order(map, 18, 5), 18);
}

static struct kunit_case hugetlb_gmem_test_cases[] = {
	KUNIT_CASE(hugetlb_gmem_test_blocks),
	KUNIT_CASE(hugetlb_gmem_test_punch_edges),
	KUNIT_CASE(hugetlb_gmem_test_punch_whole),
	KUNIT_CASE(hugetlb_gmem_test_punch_random),
	KUNIT_CASE(hugetlb_gmem_test_punch_overlap),
	KUNIT_CASE(hugetlb_gmem_test_refill),
	KUNIT_CASE(hugetlb_gmem_test_max_order),
	{}
};

static struct kunit_suite hugetlb_gmem_test_suite = {
	.name = "hugetlb_gmem",
	.test_cases = hugetlb_gmem_test_cases,
};

kunit_test_suite(hugetlb_gmem_test_suite);

MODULE_DESCRIPTION("KUnit tests for hugetlb guest_memfd");
MODULE_LICENSE("GPL");
