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
 * before it takes subpages out of use.
 */
#include <linux/hugetlb.h>
#include <linux/hugetlb_gmem.h>
#include <linux/kvm_types.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/rmap.h>

#include "internal.h"

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
 * access faults again), or VM_FAULT_OOM when no page table can be
 * allocated.
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
#endif
