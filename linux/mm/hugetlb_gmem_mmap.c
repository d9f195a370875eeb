// SPDX-License-Identifier: GPL-2.0
/*
 * User mappings of guest_memfd's hugetlb folios.
 *
 * guest_memfd keeps hugetlb folios in its page cache and may punch 4K
 * subpages out of them without splitting them, so its VMAs are not hugetlb
 * VMAs: they are ordinary shared file VMAs (vma_is_hugetlb_gmem()), whose
 * page tables hold refcounted entries of parts of hugetlb folios.  The
 * folios count those mappings as hugetlb counts its own (rmap's
 * hugetlb_gmem_add_rmap()), stay hugetlb folios and go back to the pool
 * with their last reference.  The owner installs the entries from its
 * fault handler, around the subpages that are not in use, and zaps them
 * before it takes subpages out of use, after splitting the huge entries
 * that map them and subpages that stay in use into tables of smaller
 * entries (hugetlb_gmem_split_mappings()).
 */
#include <linux/hugetlb.h>
#include <linux/hugetlb_gmem.h>
#include <linux/kvm_types.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/pagemap.h>
#include <linux/pgalloc.h>
#include <linux/rmap.h>

#include "internal.h"

/*
 * Each PTE of a folio takes a reference: a 1G folio mapped by PTEs takes
 * 262144 per mapping, which hugetlbfs never does.  Refuse to map more of
 * it, or to split more of its entries, once its count nears overflow.
 */
#define HUGETLB_GMEM_MAX_REFS	(INT_MAX / 2)

static bool hugetlb_gmem_refs_fit(struct folio *folio, unsigned long nr)
{
	return folio_ref_count(folio) <= HUGETLB_GMEM_MAX_REFS - (int)nr;
}

/**
 * hugetlb_gmem_map_pages - map a run of subpages of a hugetlb folio
 * @vmf: a fault on a VMA of the folio's mapping (vma_is_hugetlb_gmem())
 * @folio: the locked hugetlb folio of the fault, with a reference
 * @first: the first subpage of the run
 * @nr: the number of subpages of the run, which lies in the VMA and in the
 *	page table of the fault's address
 *
 * Maps each subpage of the run that has no entry yet with a PTE, which
 * takes a reference on the folio.  The caller holds the folio lock from
 * the check that the subpages are in use to the return, so that taking
 * subpages out of use (which zaps them under the folio lock) cannot miss
 * an entry.
 *
 * Return: VM_FAULT_NOPAGE (when the page table changed meanwhile, the
 * access faults again), VM_FAULT_OOM when no page table can be
 * allocated, or VM_FAULT_SIGBUS when the folio has too many references
 * (HUGETLB_GMEM_MAX_REFS).
 */
vm_fault_t hugetlb_gmem_map_pages(struct vm_fault *vmf, struct folio *folio,
				  unsigned long first, unsigned long nr)
{
	struct vm_area_struct *vma = vmf->vma;
	unsigned long addr, i, j;
	pte_t *start;

	VM_WARN_ON_ONCE_FOLIO(!folio_test_locked(folio), folio);
	VM_WARN_ON_ONCE(!vma_is_hugetlb_gmem(vma));
	addr = vmf->address & PAGE_MASK;
	addr -= (vmf->pgoff - folio->index - first) << PAGE_SHIFT;
	if (WARN_ON_ONCE(!nr || first + nr > folio_nr_pages(folio) ||
			 addr < vma->vm_start ||
			 addr + (nr << PAGE_SHIFT) > vma->vm_end ||
			 (addr & PMD_MASK) !=
			 ((addr + (nr << PAGE_SHIFT) - 1) & PMD_MASK)))
		return VM_FAULT_SIGBUS;

	if (pmd_none(*vmf->pmd)) {
		if (vmf->prealloc_pte)
			pmd_install(vma->vm_mm, vmf->pmd, &vmf->prealloc_pte);
		else if (unlikely(pte_alloc(vma->vm_mm, vmf->pmd)))
			return VM_FAULT_OOM;
	}
	start = pte_offset_map_lock(vma->vm_mm, vmf->pmd, addr, &vmf->ptl);
	if (!start)
		return VM_FAULT_NOPAGE;

	for (i = 0; i < nr; i = j) {
		if (!pte_none(ptep_get(start + i))) {
			j = i + 1;
			continue;
		}
		for (j = i + 1; j < nr && pte_none(ptep_get(start + j)); j++)
			;
		if (!hugetlb_gmem_refs_fit(folio, j - i)) {
			pte_unmap_unlock(start, vmf->ptl);
			return VM_FAULT_SIGBUS;
		}
		vmf->pte = start + i;
		folio_ref_add(folio, j - i);
		set_pte_range(vmf, folio, folio_page(folio, first + i), j - i,
			      addr + (i << PAGE_SHIFT));
		add_mm_counter(vma->vm_mm, mm_counter_file(folio), j - i);
	}
	vmf->pte = start;
	pte_unmap_unlock(start, vmf->ptl);
	return VM_FAULT_NOPAGE;
}
EXPORT_SYMBOL_FOR_KVM(hugetlb_gmem_map_pages);

#ifdef CONFIG_TRANSPARENT_HUGEPAGE
/**
 * hugetlb_gmem_map_pmd - map 2M of a hugetlb folio with a PMD entry
 * @vmf: a PMD-sized huge fault on a VMA of the folio's mapping
 * @folio: the locked hugetlb folio of the fault, with a reference
 * @first: the first subpage of the 2M block, a multiple of HPAGE_PMD_NR;
 *	the caller checked that the block is in use and lies in the VMA at
 *	the fault's PMD (thp_vma_suitable_order())
 *
 * A whole 2M folio, or a 2M block of a 1G folio: the entry takes a
 * reference on the folio and counts as one mapping of it.  The folio lock
 * is held as for hugetlb_gmem_map_pages().
 *
 * Return: VM_FAULT_NOPAGE.
 */
vm_fault_t hugetlb_gmem_map_pmd(struct vm_fault *vmf, struct folio *folio,
				unsigned long first)
{
	struct vm_area_struct *vma = vmf->vma;
	unsigned long addr = vmf->address & PMD_MASK;
	bool write = vmf->flags & FAULT_FLAG_WRITE;
	struct page *page = folio_page(folio, first);
	pmd_t entry;

	VM_WARN_ON_ONCE_FOLIO(!folio_test_locked(folio), folio);
	if (WARN_ON_ONCE(!IS_ALIGNED(first, HPAGE_PMD_NR) ||
			 first + HPAGE_PMD_NR > folio_nr_pages(folio) ||
			 addr < vma->vm_start || addr + PMD_SIZE > vma->vm_end ||
			 linear_page_index(vma, addr) != folio->index + first))
		return VM_FAULT_SIGBUS;

	vmf->ptl = pmd_lock(vma->vm_mm, vmf->pmd);
	if (pmd_none(*vmf->pmd)) {
		entry = pmd_mkhuge(pfn_pmd(page_to_pfn(page), vma->vm_page_prot));
		if (write)
			entry = maybe_pmd_mkwrite(pmd_mkyoung(pmd_mkdirty(entry)),
						  vma);
		folio_get(folio);
		folio_add_file_rmap_pmd(folio, page, vma);
		add_mm_counter(vma->vm_mm, mm_counter_file(folio), HPAGE_PMD_NR);
		set_pmd_at(vma->vm_mm, addr, vmf->pmd, entry);
		update_mmu_cache_pmd(vma, addr, vmf->pmd);
	} else if (write && pmd_trans_huge(*vmf->pmd) &&
		   pmd_pfn(*vmf->pmd) == page_to_pfn(page)) {
		entry = pmd_mkyoung(pmd_mkdirty(*vmf->pmd));
		entry = maybe_pmd_mkwrite(entry, vma);
		if (pmdp_set_access_flags(vma, addr, vmf->pmd, entry, 1))
			update_mmu_cache_pmd(vma, addr, vmf->pmd);
	}
	spin_unlock(vmf->ptl);
	return VM_FAULT_NOPAGE;
}
EXPORT_SYMBOL_FOR_KVM(hugetlb_gmem_map_pmd);

#ifdef CONFIG_HAVE_ARCH_TRANSPARENT_HUGEPAGE_PUD
/**
 * hugetlb_gmem_map_pud - map a 1G hugetlb folio with a PUD entry
 * @vmf: a PUD-sized huge fault on a VMA of the folio's mapping, which
 *	holds the folio at the fault's PUD (thp_vma_suitable_order())
 * @folio: the locked 1G hugetlb folio of the fault, with a reference, in
 *	use whole
 *
 * As vmf_insert_folio_pud(), but a page table may have appeared at the
 * PUD meanwhile (a fault that fell back to smaller entries): then nothing
 * is mapped and the access faults again.
 *
 * Return: VM_FAULT_NOPAGE.
 */
vm_fault_t hugetlb_gmem_map_pud(struct vm_fault *vmf, struct folio *folio)
{
	struct vm_area_struct *vma = vmf->vma;
	unsigned long addr = vmf->address & PUD_MASK;
	bool write = vmf->flags & FAULT_FLAG_WRITE;
	pud_t entry;

	VM_WARN_ON_ONCE_FOLIO(!folio_test_locked(folio), folio);
	if (WARN_ON_ONCE(folio_order(folio) != PUD_ORDER ||
			 addr < vma->vm_start || addr + PUD_SIZE > vma->vm_end ||
			 linear_page_index(vma, addr) != folio->index))
		return VM_FAULT_SIGBUS;

	vmf->ptl = pud_lock(vma->vm_mm, vmf->pud);
	if (pud_none(*vmf->pud)) {
		entry = pud_mkhuge(pfn_pud(folio_pfn(folio), vma->vm_page_prot));
		if (write)
			entry = pud_mkyoung(pud_mkdirty(entry));
		if (write && (vma->vm_flags & VM_WRITE))
			entry = pud_mkwrite(entry);
		folio_get(folio);
		folio_add_file_rmap_pud(folio, &folio->page, vma);
		add_mm_counter(vma->vm_mm, mm_counter_file(folio), HPAGE_PUD_NR);
		set_pud_at(vma->vm_mm, addr, vmf->pud, entry);
		update_mmu_cache_pud(vma, addr, vmf->pud);
	} else if (write && pud_trans_huge(*vmf->pud) &&
		   pud_pfn(*vmf->pud) == folio_pfn(folio)) {
		entry = pud_mkyoung(pud_mkdirty(*vmf->pud));
		if (vma->vm_flags & VM_WRITE)
			entry = pud_mkwrite(entry);
		if (pudp_set_access_flags(vma, addr, vmf->pud, entry, 1))
			update_mmu_cache_pud(vma, addr, vmf->pud);
	}
	spin_unlock(vmf->ptl);
	return VM_FAULT_NOPAGE;
}
EXPORT_SYMBOL_FOR_KVM(hugetlb_gmem_map_pud);
#endif
/* Page tables for the splits of one hugetlb_gmem_split_mappings() pass. */
#define HUGETLB_GMEM_SPLIT_TABLES	8

struct hugetlb_gmem_split {
	struct folio *folio;
	pmd_t *pmd[HUGETLB_GMEM_SPLIT_TABLES];
	pgtable_t pte[HUGETLB_GMEM_SPLIT_TABLES];
	unsigned int nr_pmd, nr_pte;
	/* Tables a pass lacked. */
	unsigned int need_pmd, need_pte;
};

/*
 * Replace the PMD entry at @pmd, which maps 2M of @s->folio across @addr,
 * with a table of PTEs of the same pages, as the anonymous THP split does:
 * the entry is invalidated and flushed first, so no stale TLB entry of it
 * survives the split.
 */
static void hugetlb_gmem_split_pmd(struct vm_area_struct *vma, pmd_t *pmd,
				   unsigned long addr,
				   struct hugetlb_gmem_split *s)
{
	unsigned long haddr = addr & PMD_MASK, pfn, i;
	struct mm_struct *mm = vma->vm_mm;
	struct mmu_notifier_range range;
	struct folio *folio = s->folio;
	pgtable_t table;
	spinlock_t *ptl;	/* the page-table lock of the entry */
	pmd_t old, tmp;
	pte_t *pte;

	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, mm, haddr,
				haddr + PMD_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	ptl = pmd_lock(mm, pmd);
	old = pmdp_get(pmd);
	pfn = pmd_pfn(old);
	if (!pmd_trans_huge(old) || pfn < folio_pfn(folio) ||
	    pfn >= folio_pfn(folio) + folio_nr_pages(folio) ||
	    !hugetlb_gmem_refs_fit(folio, HPAGE_PMD_NR))
		goto unlock;
	if (!s->nr_pte) {
		s->need_pte++;
		goto unlock;
	}
	table = s->pte[--s->nr_pte];
	old = pmdp_invalidate(vma, haddr, pmd);

	pmd_populate(mm, &tmp, table);
	pte = pte_offset_map(&tmp, haddr);
	for (i = 0; i < HPAGE_PMD_NR; i++) {
		pte_t entry = pfn_pte(pfn + i, READ_ONCE(vma->vm_page_prot));

		if (pmd_write(old))
			entry = pte_mkwrite(entry, vma);
		if (pmd_dirty(old))
			entry = pte_mkdirty(entry);
		if (!pmd_young(old))
			entry = pte_mkold(entry);
		if (pmd_soft_dirty(old))
			entry = pte_mksoft_dirty(entry);
		set_pte_at(mm, haddr + i * PAGE_SIZE, pte + i, entry);
	}
	pte_unmap(pte);

	/* 512 mappings of a page each for one of 2M: a reference each. */
	folio_ref_add(folio, HPAGE_PMD_NR - 1);
	folio_add_file_rmap_ptes(folio, pfn_to_page(pfn), HPAGE_PMD_NR, vma);
	folio_remove_rmap_pmd(folio, pfn_to_page(pfn), vma);
	mm_inc_nr_ptes(mm);
	smp_wmb(); /* the entries before the table, as pmd_install() */
	pmd_populate(mm, pmd, table);
unlock:
	spin_unlock(ptl);
	mmu_notifier_invalidate_range_end(&range);
}

#ifdef CONFIG_HAVE_ARCH_TRANSPARENT_HUGEPAGE_PUD
/* The same for a PUD entry of a 1G folio: a table of 512 PMD entries. */
static void hugetlb_gmem_split_pud(struct vm_area_struct *vma, pud_t *pud,
				   unsigned long addr,
				   struct hugetlb_gmem_split *s)
{
	unsigned long haddr = addr & PUD_MASK, pfn, i;
	struct mm_struct *mm = vma->vm_mm;
	struct mmu_notifier_range range;
	struct folio *folio = s->folio;
	spinlock_t *ptl;	/* the page-table lock of the entry */
	pmd_t *table;
	pud_t old;

	mmu_notifier_range_init(&range, MMU_NOTIFY_CLEAR, 0, mm, haddr,
				haddr + PUD_SIZE);
	mmu_notifier_invalidate_range_start(&range);
	ptl = pud_lock(mm, pud);
	old = pudp_get(pud);
	if (!pud_trans_huge(old) || pud_pfn(old) != folio_pfn(folio) ||
	    !hugetlb_gmem_refs_fit(folio, PTRS_PER_PMD))
		goto unlock;
	if (!s->nr_pmd) {
		s->need_pmd++;
		goto unlock;
	}
	table = s->pmd[--s->nr_pmd];
	old = pudp_invalidate(vma, haddr, pud);
	pfn = pud_pfn(old);

	for (i = 0; i < PTRS_PER_PMD; i++) {
		pmd_t entry = pfn_pmd(pfn + i * HPAGE_PMD_NR,
				      READ_ONCE(vma->vm_page_prot));

		entry = pmd_mkhuge(entry);
		if (pud_write(old))
			entry = pmd_mkwrite(entry, vma);
		if (pud_dirty(old))
			entry = pmd_mkdirty(entry);
		if (!pud_young(old))
			entry = pmd_mkold(entry);
		if (pud_soft_dirty(old))
			entry = pmd_mksoft_dirty(entry);
		set_pmd_at(mm, haddr + i * PMD_SIZE, table + i, entry);
		folio_add_file_rmap_pmd(folio, pfn_to_page(pfn + i * HPAGE_PMD_NR),
					vma);
	}
	folio_ref_add(folio, PTRS_PER_PMD - 1);
	folio_remove_rmap_pud(folio, pfn_to_page(pfn), vma);
	mm_inc_nr_pmds(mm);
	smp_wmb(); /* the entries before the table, as __pmd_alloc() */
	pud_populate(mm, pud, table);
unlock:
	spin_unlock(ptl);
	mmu_notifier_invalidate_range_end(&range);
}
#else
static void hugetlb_gmem_split_pud(struct vm_area_struct *vma, pud_t *pud,
				   unsigned long addr,
				   struct hugetlb_gmem_split *s)
{
}
#endif

/*
 * Split the huge entries of @vma that map @addr and the page before it
 * (a boundary of the subpages taken out of use) down to PTEs.
 */
static void hugetlb_gmem_split_at(struct vm_area_struct *vma,
				  unsigned long addr,
				  struct hugetlb_gmem_split *s)
{
	pgd_t *pgd;
	p4d_t *p4d;
	pud_t *pud;
	pmd_t *pmd;
	pud_t pudval;

	pgd = pgd_offset(vma->vm_mm, addr);
	if (!pgd_present(pgdp_get(pgd)))
		return;
	p4d = p4d_offset(pgd, addr);
	if (!p4d_present(p4dp_get(p4d)))
		return;
	pud = pud_offset(p4d, addr);
	if (!IS_ALIGNED(addr, PUD_SIZE) && pud_trans_huge(pudp_get(pud)))
		hugetlb_gmem_split_pud(vma, pud, addr, s);
	if (IS_ALIGNED(addr, PMD_SIZE))
		return;
	pudval = pudp_get(pud);
	if (!pud_present(pudval) || pud_leaf(pudval))
		return;
	pmd = pmd_offset(pud, addr);
	if (pmd_trans_huge(pmdp_get_lockless(pmd)))
		hugetlb_gmem_split_pmd(vma, pmd, addr, s);
}

/* Allocate the tables the last pass lacked; false if none could be. */
static bool hugetlb_gmem_split_alloc(struct hugetlb_gmem_split *s)
{
	struct mm_struct *mm = current->mm;
	bool got = false;

	while (s->need_pmd && s->nr_pmd < HUGETLB_GMEM_SPLIT_TABLES) {
		pmd_t *pmd = pmd_alloc_one(mm, 0);

		if (!pmd)
			break;
		s->pmd[s->nr_pmd++] = pmd;
		s->need_pmd--;
		got = true;
	}
	while (s->need_pte && s->nr_pte < HUGETLB_GMEM_SPLIT_TABLES) {
		pgtable_t pte = pte_alloc_one(mm);

		if (!pte)
			break;
		s->pte[s->nr_pte++] = pte;
		s->need_pte--;
		got = true;
	}
	return got;
}

/**
 * hugetlb_gmem_split_mappings - make room in huge user mappings for a punch
 * @mapping: the file's mapping (mapping_hugetlb_gmem())
 * @folio: a locked hugetlb folio of @mapping
 * @first: the first subpage of @folio about to be taken out of use
 * @nr: the number of those subpages
 *
 * Before the owner zaps [@first, @first + @nr) of @folio from its user
 * mappings (unmap_mapping_pages()), replace every PUD or PMD entry that
 * maps both a subpage of that range and one outside it by a table of
 * smaller entries mapping the same pages, so that the zap leaves the rest
 * of the folio mapped and nobody faults on it again.  The folio is not
 * split.  Page tables are allocated outside i_mmap_rwsem and the page-table
 * locks (charged to the calling task, like the page cache it punches); an
 * entry for which no table could be had, or whose folio has too many
 * references, is left whole, and the zap unmaps it (its other pages then
 * fault in again, smaller).
 */
void hugetlb_gmem_split_mappings(struct address_space *mapping,
				 struct folio *folio, unsigned long first,
				 unsigned long nr)
{
	struct hugetlb_gmem_split s = { .folio = folio };
	unsigned long bounds[2], addr;
	struct vm_area_struct *vma;
	int nr_bounds = 0, i, pass;
	pgoff_t pgoff;

	VM_WARN_ON_ONCE_FOLIO(!folio_test_locked(folio), folio);
	if (first)
		bounds[nr_bounds++] = first;
	if (first + nr < folio_nr_pages(folio))
		bounds[nr_bounds++] = first + nr;

	if (!nr_bounds)
		return;
	/* At most a table of each level per boundary, in most cases. */
	if (folio_order(folio) > PMD_ORDER)
		s.need_pmd = nr_bounds;
	s.need_pte = nr_bounds;
	hugetlb_gmem_split_alloc(&s);

	/* Each pass splits what its tables allow: passes are idempotent. */
	for (pass = 0; pass < 3; pass++) {
		s.need_pmd = 0;
		s.need_pte = 0;
		i_mmap_lock_read(mapping);
		for (i = 0; i < nr_bounds; i++) {
			pgoff = folio->index + bounds[i];
			mapping_rmap_tree_foreach(vma, mapping, pgoff - 1,
						  pgoff) {
				addr = vma->vm_start +
				       ((pgoff - vma->vm_pgoff) << PAGE_SHIFT);
				if (addr > vma->vm_start && addr < vma->vm_end)
					hugetlb_gmem_split_at(vma, addr, &s);
			}
		}
		i_mmap_unlock_read(mapping);
		if ((!s.need_pmd && !s.need_pte) ||
		    !hugetlb_gmem_split_alloc(&s))
			break;
	}

	while (s.nr_pmd)
		pmd_free(current->mm, s.pmd[--s.nr_pmd]);
	while (s.nr_pte)
		pte_free(current->mm, s.pte[--s.nr_pte]);
}
EXPORT_SYMBOL_FOR_KVM(hugetlb_gmem_split_mappings);
#endif
