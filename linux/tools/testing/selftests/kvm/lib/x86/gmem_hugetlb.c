// SPDX-License-Identifier: GPL-2.0-only
/*
 * hugetlb-backed guest_memfd for KVM selftests, x86 part: a private-memory
 * guest and KVM's mapping levels.  See gmem_hugetlb.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gmem_hugetlb.h"
#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"

bool sw_protected_vm_supported(void)
{
	return kvm_check_cap(KVM_CAP_VM_TYPES) & BIT(KVM_X86_SW_PROTECTED_VM);
}

/* A VM of the type that may use hugetlb guest_memfd, without vCPUs. */
struct kvm_vm *gmem_vm_create_barebones(void)
{
	return vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
}

const char *gmem_hugetlb_unsupported(size_t page_size)
{
	struct guest_memfd_backing b = guest_memfd_hugetlb_backing(page_size);
	static char why[96];
	struct kvm_vm *vm;
	bool valid;
	int sizes;

	if (!sw_protected_vm_supported())
		return "no KVM_X86_SW_PROTECTED_VM";
	vm = gmem_vm_create_barebones();
	valid = vm_guest_memfd_backing_valid(vm, b);
	sizes = vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_HUGETLB);
	kvm_vm_free(vm);
	if (valid)
		return NULL;
	snprintf(why, sizeof(why),
		 "no %zukB hugetlb guest_memfd (KVM_CAP_GUEST_MEMFD_HUGETLB 0x%x)",
		 page_size >> 10, sizes);
	return why;
}

void gmem_guest_create(struct gmem_guest *g, void *guest_code,
		       const struct gmem_guest_args *args)
{
	const struct vm_shape shape = {
		.mode = VM_MODE_DEFAULT,
		.type = KVM_X86_SW_PROTECTED_VM,
	};
	size_t page_size = guest_memfd_backing_page_size(args->backing);
	void *hva;

	g->vm = vm_create_shape_with_one_vcpu(shape, &g->vcpu, guest_code);
	g->fd = vm_create_guest_memfd_backing(g->vm, args->file_size, args->backing);
	g->gpa = GMEM_GUEST_GPA;
	g->size = args->slot_size ?: args->file_size - args->offset;

	/* vm_mem_add() aligns the shared side like the guest_memfd's pages. */
	vm_mem_add(g->vm, VM_MEM_SRC_ANONYMOUS, g->gpa, GMEM_GUEST_SLOT,
		   g->size / g->vm->page_size, KVM_MEM_GUEST_MEMFD, g->fd,
		   args->offset);
	hva = addr_gpa2hva(g->vm, g->gpa);
	TEST_ASSERT(!((uintptr_t)hva & (page_size - 1)),
		    "userspace_addr %p of the memslot is not aligned to 0x%lx",
		    hva, page_size);
	vm_mem_set_private(g->vm, g->gpa, g->size);

	if (!args->unmapped)
		virt_map_level(g->vm, g->gpa, g->gpa, g->size, PG_LEVEL_2M);
}

void gmem_guest_destroy(struct gmem_guest *g)
{
	kvm_vm_free(g->vm);
	close(g->fd);
	g->vm = NULL;
	g->fd = -1;
}

void gmem_guest_run(struct kvm_vcpu *vcpu, u64 stage)
{
	struct kvm_run *run = vcpu->run;
	struct ucall uc;
	int r;

	r = _vcpu_run(vcpu);
	TEST_ASSERT(!r || run->exit_reason != KVM_EXIT_MEMORY_FAULT,
		    "KVM_RUN: %s, KVM_EXIT_MEMORY_FAULT at gpa 0x%llx size 0x%llx flags 0x%llx: guest_memfd did not provide the memory",
		    strerror(errno), run->memory_fault.gpa,
		    run->memory_fault.size, run->memory_fault.flags);
	TEST_ASSERT(!r, KVM_IOCTL_ERROR(KVM_RUN, r));
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);

	if (gmem_guest_ucall(vcpu, &uc) == UCALL_DONE)
		TEST_ASSERT(!stage, "guest done, expected stage %lu", stage);
	else
		TEST_ASSERT(uc.args[1] == stage,
			    "guest synced at stage %lu, expected %lu",
			    uc.args[1], stage);
}

u64 gmem_guest_ucall(struct kvm_vcpu *vcpu, struct ucall *uc)
{
	u64 cmd = get_ucall(vcpu, uc);

	if (cmd == UCALL_ABORT)
		REPORT_GUEST_ASSERT(*uc);
	TEST_ASSERT(cmd == UCALL_SYNC || cmd == UCALL_DONE,
		    "unexpected ucall %lu", cmd);
	return cmd;
}

void mapping_levels_read(struct kvm_vm *vm, struct mapping_levels *l)
{
	l->pages_4k = vm_get_stat(vm, pages_4k);
	l->pages_2m = vm_get_stat(vm, pages_2m);
	l->pages_1g = vm_get_stat(vm, pages_1g);
}

#define RMP_MODEL_PARAM	"/sys/module/kvm/parameters/rmp_model"

static char rmp_model_saved[16];
static pid_t rmp_model_pid;

static bool rmp_model_read(char *buf, size_t len)
{
	int fd = open(RMP_MODEL_PARAM, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return true;
}

static int rmp_model_write(const char *mode)
{
	int fd = open(RMP_MODEL_PARAM, O_WRONLY), err = 0;

	if (fd < 0)
		return errno;
	if (write(fd, mode, strlen(mode)) != (ssize_t)strlen(mode))
		err = errno;
	close(fd);
	return err;
}

static void rmp_model_restore(void)
{
	if (getpid() == rmp_model_pid)
		rmp_model_write(rmp_model_saved);
}

/*
 * The mode the test started with is restored when its main process exits
 * (the runner also sets it again before each test, for a test that was
 * killed).  KVM_RMP_MODEL in the environment sets the mode for the whole
 * test.
 */
static void __attribute__((constructor)) rmp_model_from_env(void)
{
	const char *mode = getenv("KVM_RMP_MODEL");

	if (mode)
		TEST_ASSERT(gmem_rmp_model_set(mode),
			    "KVM_RMP_MODEL=%s: can't set %s", mode, RMP_MODEL_PARAM);
}

bool gmem_rmp_model_set(const char *mode)
{
	if (!rmp_model_pid) {
		if (!mode ||
		    !rmp_model_read(rmp_model_saved, sizeof(rmp_model_saved)))
			return false;
		rmp_model_pid = getpid();
		atexit(rmp_model_restore);
	}
	return !rmp_model_write(mode ? mode : rmp_model_saved);
}

bool gmem_rmp_model_snp(void)
{
	char mode[16];

	return rmp_model_read(mode, sizeof(mode)) && !strcmp(mode, "snp");
}

#define RMP_MODEL_DIR	"/sys/kernel/debug/kvm-rmp-model/"

bool gmem_rmp_model_get(const char *name, u64 *val)
{
	char path[96], buf[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), RMP_MODEL_DIR "%s", name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	TEST_ASSERT(n > 0, "read %s: %s", path, strerror(errno));
	buf[n] = '\0';
	*val = strtoull(buf, NULL, 0);
	return true;
}

void gmem_rmp_model_put(const char *name, u64 val)
{
	char path[96], buf[32];
	int fd, n;

	snprintf(path, sizeof(path), RMP_MODEL_DIR "%s", name);
	n = snprintf(buf, sizeof(buf), "%lu\n", val);
	fd = open(path, O_WRONLY);
	TEST_ASSERT(fd >= 0, "open %s: %s", path, strerror(errno));
	TEST_ASSERT(write(fd, buf, n) == n, "write %s: %s", path, strerror(errno));
	close(fd);
}

s64 gmem_host_read(u64 pfn)
{
	u64 v;

	gmem_rmp_model_put("host_read", pfn);
	TEST_ASSERT(gmem_rmp_model_get("host_read", &v),
		    "no " RMP_MODEL_DIR "host_read");
	return (s64)v;
}

int gmem_rmp_model_launch(struct kvm_vm *vm, gpa_t gpa, u64 npages,
			  const void *src)
{
	char buf[96];
	int fd, n, err = 0;
	ssize_t w;

	n = snprintf(buf, sizeof(buf), "%d %lu %lu %lu\n", vm->fd,
		     gpa / SZ_4K, npages, (unsigned long)src);
	fd = open(RMP_MODEL_DIR "launch", O_WRONLY);
	TEST_ASSERT(fd >= 0, "open %slaunch: %s", RMP_MODEL_DIR, strerror(errno));
	w = write(fd, buf, n);
	if (w < 0)
		err = errno;
	else
		TEST_ASSERT(w == n, "launch: short write %zd of %d", w, n);
	close(fd);
	return err;
}

size_t gmem_private_map_size(size_t page_size)
{
	if (page_size > SZ_2M && gmem_rmp_model_snp())
		return SZ_2M;
	return page_size;
}

u64 mapping_levels_pages(const struct mapping_levels *l, size_t page_size)
{
	switch (page_size) {
	case SZ_4K:
		return l->pages_4k;
	case SZ_2M:
		return l->pages_2m;
	case SZ_1G:
		return l->pages_1g;
	}
	TEST_FAIL("no mapping level of 0x%lx bytes", page_size);
	return 0;
}

const char *mapping_levels_str(const struct mapping_levels *a,
			       const struct mapping_levels *b,
			       char *buf, size_t len)
{
	snprintf(buf, len, "4k/2m/1g: %lu/%lu/%lu -> %lu/%lu/%lu",
		 a->pages_4k, a->pages_2m, a->pages_1g,
		 b->pages_4k, b->pages_2m, b->pages_1g);
	return buf;
}

static const struct kvm_stats_desc *
vcpu_stat_desc(struct kvm_vcpu *vcpu, const char *name)
{
	struct kvm_binary_stats *stats = &vcpu->stats;
	const struct kvm_stats_desc *desc;
	int i;

	for (i = 0; i < stats->header.num_desc; i++) {
		desc = get_stats_descriptor(stats->desc, i, &stats->header);
		if (!strcmp(desc->name, name))
			return desc;
	}
	TEST_FAIL("no vCPU stat %s", name);
	return NULL;
}

s64 vcpu_faults_unfixed(struct kvm_vcpu *vcpu)
{
	static const char * const names[] = {
		"pf_taken", "pf_fixed", "pf_emulate", "pf_spurious",
	};
	u32 off[ARRAY_SIZE(names)], lo = UINT32_MAX, hi = 0;
	const struct kvm_stats_desc *desc;
	u64 buf[16];
	ssize_t len;
	int i;

	/* Cache the descriptors. */
	vcpu_get_stat(vcpu, pf_taken);
	for (i = 0; i < ARRAY_SIZE(names); i++) {
		desc = vcpu_stat_desc(vcpu, names[i]);
		off[i] = desc->offset;
		lo = min(lo, off[i]);
		hi = max(hi, off[i] + 8);
	}
	TEST_ASSERT(hi - lo <= sizeof(buf), "pf_* stats %u bytes apart", hi - lo);
	/* One read: one copy_to_user() of the adjacent counters. */
	len = pread(vcpu->stats.fd, buf, hi - lo, vcpu->stats.header.data_offset + lo);
	TEST_ASSERT(len == hi - lo, "reading the pf_* stats: %zd", len);
	for (i = 0; i < ARRAY_SIZE(names); i++)
		off[i] = (off[i] - lo) / 8;
	return buf[off[0]] - buf[off[1]] - buf[off[2]] - buf[off[3]];
}
