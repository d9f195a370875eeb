/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * hugetlb-backed guest_memfd (GUEST_MEMFD_FLAG_HUGETLB) for KVM selftests.
 *
 * What backs a guest_memfd, and the default backing of vm_mem_add(), from
 * $KVM_GMEM_HUGETLB; and what the tests of such files read from the kernel:
 * the hugetlb pools and the hugetlb cgroup controller, the hugetlb_* lines
 * of a file's fdinfo, the kvm:kvm_gmem_prepare and kvm:kvm_gmem_invalidate
 * tracepoints, /proc/vmstat and KVM's debugfs statistics.  On x86, a
 * KVM_X86_SW_PROTECTED_VM guest whose private memory is such a file.
 *
 * Functions report failures with TEST_ASSERT(), so they work the same in a
 * kselftest_harness test and in a plain program.
 */
#ifndef SELFTEST_KVM_GMEM_HUGETLB_H
#define SELFTEST_KVM_GMEM_HUGETLB_H

#include <linux/sizes.h>

#include "kvm_util.h"
#include "ucall_common.h"

/* ------------------------------------------------------------------------ */
/* Backing                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * The KVM_CREATE_GUEST_MEMFD flags and, with GUEST_MEMFD_FLAG_HUGETLB, log2
 * of the hugepage size (0: the default hugepage size).  All zeroes is a
 * regular guest_memfd.
 */
struct guest_memfd_backing {
	u64 flags;
	u32 huge_page_size_log2;
};

/*
 * Flags that KVM accepts only together with GUEST_MEMFD_FLAG_HUGETLB: only
 * hugetlb files leave the direct map.
 */
#define GUEST_MEMFD_HUGETLB_ONLY	GUEST_MEMFD_FLAG_NO_DIRECT_MAP

int __vm_create_guest_memfd_backing(struct kvm_vm *vm, u64 size,
				    struct guest_memfd_backing backing);
int vm_create_guest_memfd_backing(struct kvm_vm *vm, u64 size,
				  struct guest_memfd_backing backing);

struct guest_memfd_backing guest_memfd_hugetlb_backing(size_t page_size);
struct guest_memfd_backing guest_memfd_parse_backing(const char *str);
struct guest_memfd_backing guest_memfd_default_backing(void);
size_t guest_memfd_backing_page_size(struct guest_memfd_backing backing);
const char *guest_memfd_backing_str(struct guest_memfd_backing backing);

bool vm_guest_memfd_flags_valid(struct kvm_vm *vm, u64 flags);
bool vm_guest_memfd_backing_valid(struct kvm_vm *vm,
				  struct guest_memfd_backing backing);

/* For vm_mem_add(). */
int vm_create_default_guest_memfd(struct kvm_vm *vm, u64 size);
size_t vm_guest_memfd_mmap_align(struct kvm_vm *vm, u32 flags, int guest_memfd,
				 enum vm_mem_backing_src_type src_type);
void *kvm_mmap_aligned(size_t size, size_t align, int prot, int flags, int fd);

/* ------------------------------------------------------------------------ */
/* File operations                                                          */
/* ------------------------------------------------------------------------ */

/* fallocate(KEEP_SIZE [| PUNCH_HOLE]): 0 or the errno. */
int __gmem_fallocate(int fd, bool punch, u64 offset, u64 len);
void gmem_punch(int fd, u64 offset, u64 len);
void gmem_allocate(int fd, u64 offset, u64 len);

/* KVM_PRE_FAULT_MEMORY of all of [gpa, gpa + size): 0 or the errno. */
int __vcpu_pre_fault(struct kvm_vcpu *vcpu, gpa_t gpa, u64 size);
void vcpu_pre_fault(struct kvm_vcpu *vcpu, gpa_t gpa, u64 size);

/* ------------------------------------------------------------------------ */
/* hugetlb pools and cgroup                                                 */
/* ------------------------------------------------------------------------ */

/* The counters of one pool, see sysfs-kernel-mm-hugepages. */
struct hugetlb_pool {
	u64 nr, free, resv, surplus, nr_overcommit;
};

bool hugetlb_pool_read(size_t page_size, struct hugetlb_pool *pool);

/* Pages of the pool that a new file can still reserve. */
static inline u64 hugetlb_pool_unreserved(const struct hugetlb_pool *pool)
{
	return pool->free - pool->resv;
}

/*
 * Assert that the pool of @page_size pages has @free_delta free and
 * @resv_delta reserved pages more than @base.
 */
__printf(5, 6)
void hugetlb_pool_assert(size_t page_size, const struct hugetlb_pool *base,
			 long free_delta, long resv_delta, const char *fmt, ...);

/* The 2M and the 1G pool together, to check that a failure moved neither. */
struct hugetlb_pools {
	bool present[2];
	struct hugetlb_pool pool[2];
};

void hugetlb_pools_read(struct hugetlb_pools *pools);
__printf(2, 3)
void hugetlb_pools_assert_unchanged(const struct hugetlb_pools *before,
				    const char *fmt, ...);

/* free_hugepages and resv_hugepages kept open, for loops of many checks. */
struct hugetlb_pool_reader {
	int free_fd, resv_fd;
};

void hugetlb_pool_reader_open(struct hugetlb_pool_reader *r, size_t page_size);
void hugetlb_pool_reader_read(struct hugetlb_pool_reader *r, u64 *free,
			      u64 *resv);
void hugetlb_pool_reader_close(struct hugetlb_pool_reader *r);

/*
 * A child of the root cgroup with the hugetlb controller, which the calling
 * process moves into so that it is charged for its hugetlb reservations.
 * The path lives in the struct, so that a parent process can remove the
 * cgroup after the child exited.
 */
struct hugetlb_cgroup {
	char path[PATH_MAX];
	char size[16];		/* "2MB", "1GB" */
};

/* NULL when done, else why the cgroup can't be used (a reason to skip). */
const char *hugetlb_cgroup_enter(struct hugetlb_cgroup *cg, size_t page_size);
u64 hugetlb_cgroup_rsvd(const struct hugetlb_cgroup *cg);
u64 hugetlb_cgroup_usage(const struct hugetlb_cgroup *cg);
void hugetlb_cgroup_set_rsvd_max(const struct hugetlb_cgroup *cg, u64 bytes);
/* Move the calling process back to the parent of @cg, so that @cg can go. */
void hugetlb_cgroup_leave(const struct hugetlb_cgroup *cg);
void hugetlb_cgroup_remove(struct hugetlb_cgroup *cg);

/* ------------------------------------------------------------------------ */
/* fdinfo                                                                   */
/* ------------------------------------------------------------------------ */

/* The hugetlb_* lines of /proc/self/fdinfo/FD of a hugetlb guest_memfd. */
struct gmem_fdinfo {
	u64 page_size;
	u64 pages;
	u64 reserved;
	u64 allocated;
	u64 partial_folios;
	u64 punched_subpages;
	u64 subpage_maps;
	u64 metadata_bytes;
	bool has_subpage_maps;
};

/* In an expected gmem_fdinfo: don't check this counter. */
#define GMEM_FDINFO_ANY		((u64)-1)

/* NULL when parsed, else what is wrong ("no hugetlb_pages line", ...). */
const char *gmem_fdinfo_parse(int fd, struct gmem_fdinfo *fi);
void gmem_fdinfo_read(int fd, struct gmem_fdinfo *fi);

/*
 * Assert the counters of @want (page_size to punched_subpages), and that
 * subpage maps and metadata bytes agree with them.
 */
__printf(3, 4)
void gmem_fdinfo_assert(int fd, const struct gmem_fdinfo *want,
			const char *fmt, ...);

/*
 * With nothing in flight, what fdinfo says the file holds is exactly what
 * the pool lost since @base, taken before the file was created.
 */
void gmem_pool_matches_fdinfo(int fd, const struct hugetlb_pool *base,
			      const char *what);

/* ------------------------------------------------------------------------ */
/* The kvm_gmem_prepare and kvm_gmem_invalidate tracepoints                 */
/* ------------------------------------------------------------------------ */

enum gmem_event_kind {
	GMEM_PREPARE,		/* kvm_gmem_prepare */
	GMEM_PUNCH,		/* kvm_gmem_invalidate why punch */
	GMEM_RELEASE,		/* ... why release */
	GMEM_FREE,		/* ... why free: the final whole-folio call */
	GMEM_UNDO,		/* ... why undo: after a failed make_private */
};

struct gmem_event {
	enum gmem_event_kind kind;
	u64 index;
	u64 pfn;
	u64 nr_pages;
	unsigned int order;
};

struct gmem_events {
	struct gmem_event *ev;
	size_t nr, cap;
};

#define GMEM_TRACE_PREPARE	BIT(0)
#define GMEM_TRACE_INVALIDATE	BIT(1)

/* Whether tracefs has the events of @which (GMEM_TRACE_*). */
bool gmem_trace_available(unsigned int which);
/* Empty the trace buffer and enable the events of @which only. */
void gmem_trace_start(unsigned int which);
void gmem_trace_stop(void);
/* Append the events in the buffer; returns how many the buffer lost. */
u64 gmem_trace_read(struct gmem_events *events);
void gmem_trace_set_buffer_kb(u64 kb);

void gmem_events_add(struct gmem_events *events, enum gmem_event_kind kind,
		     u64 index, unsigned int order);
/* [start, end) as the fewest naturally aligned blocks, in order. */
void gmem_events_add_blocks(struct gmem_events *events,
			    enum gmem_event_kind kind, u64 start, u64 end);
void gmem_events_free(struct gmem_events *events);
const char *gmem_event_str(const struct gmem_event *e, char *buf, size_t len);

/*
 * The contract, page by page, for a file of @file_pages pages in folios of
 * @folio_pages: a block is naturally aligned inside one folio and so is its
 * pfn, at a fixed distance from the index over the folio's life; a page is
 * made private only when it is not, reclaimed (punch, release) only when it
 * is, and a folio is freed whole when none of its pages is private.  With
 * @closed, no page may be private at the end.
 */
void gmem_events_assert_contract(const struct gmem_events *events,
				 u64 folio_pages, u64 file_pages, bool closed);
/* The same events in the same order (index, order and kind). */
void gmem_events_assert_equal(const struct gmem_events *want,
			      const struct gmem_events *seen);

/* Generic tracefs access, e.g. for a diagnosis. */
const char *tracefs_dir(void);
int tracefs_write(const char *file, const char *str);

/* ------------------------------------------------------------------------ */
/* Kernel counters                                                          */
/* ------------------------------------------------------------------------ */

/* An item of /proc/vmstat, or -1 if there is none of that name. */
s64 vmstat_get(const char *name);
/* /proc/meminfo DirectMap4k, DirectMap2M and DirectMap1G, in kB (0 if absent). */
void direct_map_kb(u64 kb[3]);
/*
 * Pages of struct page memory: HVO frees most of a hugepage's and undoing
 * it allocates them again, so the count stays while no hugepage is split.
 */
u64 memmap_pages(void);
/* A KVM statistic in debugfs, of all VMs or of @vm; -1 if not there. */
s64 kvm_debugfs_stat(struct kvm_vm *vm, const char *name);

double now_seconds(void);
/* Minor page faults of the calling process so far (getrusage()). */
long minor_faults(void);

/* ------------------------------------------------------------------------ */
/* A private-memory guest (x86)                                             */
/* ------------------------------------------------------------------------ */

/* 1G aligned, so that KVM can map the memory with 1G pages. */
#define GMEM_GUEST_GPA		(4ULL << 30)
#define GMEM_GUEST_SLOT		10

/*
 * A KVM_X86_SW_PROTECTED_VM with one vCPU, and @slot_size bytes (0: all
 * from @offset on) of a new guest_memfd of @backing and @file_size bytes,
 * from @offset on, bound as private memory at GMEM_GUEST_GPA.  Unless
 * @unmapped, the guest maps the memory 1:1 with 2M pages.
 */
struct gmem_guest_args {
	struct guest_memfd_backing backing;
	u64 file_size;
	u64 offset;
	u64 slot_size;
	bool unmapped;
};

struct gmem_guest {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	int fd;
	gpa_t gpa;
	u64 size;
};

bool sw_protected_vm_supported(void);
struct kvm_vm *gmem_vm_create_barebones(void);
/*
 * NULL if a KVM_X86_SW_PROTECTED_VM can have a hugetlb guest_memfd of
 * @page_size, else why not (a reason to skip).
 */
const char *gmem_hugetlb_unsupported(size_t page_size);
void gmem_guest_create(struct gmem_guest *g, void *guest_code,
		       const struct gmem_guest_args *args);
void gmem_guest_destroy(struct gmem_guest *g);
/* Run until the guest syncs @stage, or until GUEST_DONE() if @stage is 0. */
void gmem_guest_run(struct kvm_vcpu *vcpu, u64 stage);
/*
 * The ucall the vCPU exited with: UCALL_SYNC or UCALL_DONE; a guest assert
 * is reported, any other ucall fails.
 */
u64 gmem_guest_ucall(struct kvm_vcpu *vcpu, struct ucall *uc);

/* Leaf mappings of each size in the VM's MMU (pages_4k/2m/1g). */
struct mapping_levels {
	u64 pages_4k, pages_2m, pages_1g;
};

void mapping_levels_read(struct kvm_vm *vm, struct mapping_levels *l);
u64 mapping_levels_pages(const struct mapping_levels *l, size_t page_size);
/*
 * The size KVM maps private memory of a @page_size folio with, at most, in
 * a VM created now: 2M for 1G folios while the model of SEV-SNP's RMP
 * (kvm.rmp_model=snp) is on, as SNP has no 1G RMP entries.  The test's
 * environment may set the mode: KVM_RMP_MODEL=off or snp.
 */
size_t gmem_private_map_size(size_t page_size);
/* Whether VMs created now get SEV-SNP's RMP rules from the model. */
bool gmem_rmp_model_snp(void);
/*
 * Set the RMP model's mode (off, snp; NULL: the one the test started with)
 * for VMs created from now on; the test's main process restores it when it
 * exits.  False if the kernel has no model.
 */
bool gmem_rmp_model_set(const char *mode);
/*
 * Read a counter or knob of the RMP model (/sys/kernel/debug/kvm-rmp-model/
 * @name); false if the kernel has no model.
 */
bool gmem_rmp_model_get(const char *name, u64 *val);
/* Write a knob of the RMP model (fail_make_shared). */
void gmem_rmp_model_put(const char *name, u64 val);
/*
 * What the host kernel finds at @pfn through the direct map (the RMP
 * model's host_read): -EFAULT if the read faults, else 0 if the page reads
 * as zeroes and 1 if not.
 */
s64 gmem_host_read(u64 pfn);
/*
 * Launch @npages private pages of @vm at @gpa from @src (4K-aligned, NULL:
 * zero pages) through the RMP model, as SNP_LAUNCH_UPDATE does
 * (kvm_gmem_populate()).  Returns 0 or the errno of the launch.
 */
int gmem_rmp_model_launch(struct kvm_vm *vm, gpa_t gpa, u64 npages,
			  const void *src);
/* "4k/2m/1g: a -> b", for messages. */
const char *mapping_levels_str(const struct mapping_levels *a,
			       const struct mapping_levels *b,
			       char *buf, size_t len);

/*
 * The vCPU's page faults taken but neither fixed, emulated nor spurious,
 * read with one copy of the four adjacent counters: those KVM retried (an
 * invalidation overlapped them) or that exited to userspace
 * (KVM_EXIT_MEMORY_FAULT, an error), plus one while a fault is in flight,
 * less one if a fault completed during the copy.  Between two reads of a
 * vCPU that was stopped at both, the difference is exact; of a vCPU
 * running in another thread, a difference of n proves n - 2.
 */
s64 vcpu_faults_unfixed(struct kvm_vcpu *vcpu);

#endif /* SELFTEST_KVM_GMEM_HUGETLB_H */
