/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The checks of gmem_hugetlb.h that skip a kselftest_harness test rather
 * than fail it.  Each returns false after SKIP(), so that a fixture setup
 * or a test goes on only with what it needs:
 *
 *	if (!gmem_need_hugepages(_metadata, page_size, &base, 2))
 *		return;
 */
#ifndef SELFTEST_KVM_GMEM_HUGETLB_HARNESS_H
#define SELFTEST_KVM_GMEM_HUGETLB_HARNESS_H

#include "gmem_hugetlb.h"
#include "kselftest_harness.h"

/* A KVM_X86_SW_PROTECTED_VM can have a hugetlb guest_memfd of @page_size. */
static inline bool gmem_hugetlb_require(struct __test_metadata *_metadata,
					size_t page_size)
{
	const char *why = gmem_hugetlb_unsupported(page_size);

	if (!why)
		return true;
	SKIP(return false, "%s", why);
}

/* The pool of @page_size pages had @nr pages no file reserved, at @base. */
static inline bool gmem_need_hugepages(struct __test_metadata *_metadata,
				       size_t page_size,
				       const struct hugetlb_pool *base, u64 nr)
{
	if (hugetlb_pool_unreserved(base) >= nr)
		return true;
	SKIP(return false, "need %lu unreserved %zukB hugepages, the pool has %lu",
	     nr, page_size >> 10, hugetlb_pool_unreserved(base));
}

#endif /* SELFTEST_KVM_GMEM_HUGETLB_HARNESS_H */
