// SPDX-License-Identifier: GPL-2.0-only
/*
 * hugetlb-backed guest_memfd for KVM selftests, see gmem_hugetlb.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <linux/falloc.h>

#include "cgroup_util.h"
#include "gmem_hugetlb.h"
#include "kvm_util.h"
#include "test_util.h"

/* ------------------------------------------------------------------------ */
/* Backing                                                                  */
/* ------------------------------------------------------------------------ */

int __vm_create_guest_memfd_backing(struct kvm_vm *vm, u64 size,
				    struct guest_memfd_backing backing)
{
	struct kvm_create_guest_memfd args = {
		.size = size,
		.flags = backing.flags,
		.huge_page_size_log2 = backing.huge_page_size_log2,
	};

	return __vm_ioctl(vm, KVM_CREATE_GUEST_MEMFD, &args);
}

int vm_create_guest_memfd_backing(struct kvm_vm *vm, u64 size,
				  struct guest_memfd_backing backing)
{
	int fd = __vm_create_guest_memfd_backing(vm, size, backing);

	TEST_ASSERT(fd >= 0, "KVM_CREATE_GUEST_MEMFD of 0x%lx bytes, backing %s: %s",
		    size, guest_memfd_backing_str(backing), strerror(errno));
	return fd;
}

/* @page_size bytes hugetlb pages; 0 selects the default hugepage size. */
struct guest_memfd_backing guest_memfd_hugetlb_backing(size_t page_size)
{
	struct guest_memfd_backing backing = {
		.flags = GUEST_MEMFD_FLAG_HUGETLB,
	};

	if (page_size) {
		TEST_ASSERT(!(page_size & (page_size - 1)),
			    "hugepage size 0x%lx is not a power of two",
			    page_size);
		backing.huge_page_size_log2 = __builtin_ctzl(page_size);
	}
	return backing;
}

/*
 * "none" or the base page size ("4K"): a regular guest_memfd; "default":
 * hugetlb pages of the default size; else a hugepage size ("2M", "1G").
 */
struct guest_memfd_backing guest_memfd_parse_backing(const char *str)
{
	struct guest_memfd_backing none = {};
	size_t size;

	if (!strcmp(str, "none"))
		return none;
	if (!strcmp(str, "default"))
		return guest_memfd_hugetlb_backing(0);

	size = parse_size(str);
	if (size == getpagesize())
		return none;
	return guest_memfd_hugetlb_backing(size);
}

/*
 * The backing vm_mem_add() gives the guest_memfd it creates, and the one
 * upstream private-memory tests use: KVM_GMEM_HUGETLB=2M|1G|default, else
 * a regular guest_memfd.
 */
struct guest_memfd_backing guest_memfd_default_backing(void)
{
	static struct guest_memfd_backing backing;
	static bool parsed;
	const char *str;

	if (parsed)
		return backing;

	str = getenv("KVM_GMEM_HUGETLB");
	if (str && *str) {
		backing = guest_memfd_parse_backing(str);
		pr_info("KVM_GMEM_HUGETLB=%s: guest_memfd backing %s\n", str,
			guest_memfd_backing_str(backing));
	}
	parsed = true;
	return backing;
}

size_t guest_memfd_backing_page_size(struct guest_memfd_backing backing)
{
	u32 shift = backing.huge_page_size_log2;

	if (!(backing.flags & GUEST_MEMFD_FLAG_HUGETLB))
		return getpagesize();

	TEST_ASSERT(shift < 64, "huge_page_size_log2 %u", shift);
	return shift ? 1UL << shift : get_def_hugetlb_pagesz();
}

const char *guest_memfd_backing_str(struct guest_memfd_backing backing)
{
	static char buf[96];

	if (!(backing.flags & GUEST_MEMFD_FLAG_HUGETLB))
		snprintf(buf, sizeof(buf), "4K (flags 0x%lx, log2 %u)",
			 backing.flags, backing.huge_page_size_log2);
	else if (backing.huge_page_size_log2 >= 64)
		snprintf(buf, sizeof(buf), "hugetlb (flags 0x%lx, log2 %u)",
			 backing.flags, backing.huge_page_size_log2);
	else
		snprintf(buf, sizeof(buf), "hugetlb %zukB%s (flags 0x%lx)",
			 guest_memfd_backing_page_size(backing) >> 10,
			 backing.huge_page_size_log2 ? "" : " (default size)",
			 backing.flags);
	return buf;
}

/*
 * Whether KVM_CREATE_GUEST_MEMFD with @flags should succeed on @vm: every
 * flag reported by KVM_CAP_GUEST_MEMFD_FLAGS for the VM, and none of
 * GUEST_MEMFD_HUGETLB_ONLY without GUEST_MEMFD_FLAG_HUGETLB.
 */
bool vm_guest_memfd_flags_valid(struct kvm_vm *vm, u64 flags)
{
	u64 valid = vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS);

	if (flags & ~valid)
		return false;
	if (flags & GUEST_MEMFD_FLAG_HUGETLB)
		return true;
	return !(flags & GUEST_MEMFD_HUGETLB_ONLY);
}

/* The same for the flags and the hugepage size of @backing. */
bool vm_guest_memfd_backing_valid(struct kvm_vm *vm,
				  struct guest_memfd_backing backing)
{
	u64 sizes;

	if (!vm_guest_memfd_flags_valid(vm, backing.flags))
		return false;
	if (!(backing.flags & GUEST_MEMFD_FLAG_HUGETLB))
		return !backing.huge_page_size_log2;
	if (backing.huge_page_size_log2 >= 64)
		return false;

	sizes = vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_HUGETLB);
	if (!sizes)
		return false;
	return sizes & BIT_ULL(__builtin_ctzl(guest_memfd_backing_page_size(backing)));
}

/*
 * A guest_memfd of at least @size bytes (rounded up to the hugepage size)
 * with the default backing, for vm_mem_add(); skips the test where the
 * VM's type can't use that backing.
 */
int vm_create_default_guest_memfd(struct kvm_vm *vm, u64 size)
{
	struct guest_memfd_backing backing = guest_memfd_default_backing();

	__TEST_REQUIRE(vm_guest_memfd_backing_valid(vm, backing),
		       "VM type %lu can't use guest_memfd backing %s",
		       vm->type, guest_memfd_backing_str(backing));
	size = align_up(size, guest_memfd_backing_page_size(backing));
	return vm_create_guest_memfd_backing(vm, size, backing);
}

/*
 * KVM maps guest_memfd memory with hugepages only where the memslot's
 * userspace_addr is aligned like its gpa, although private memory is not
 * reached through it.  The alignment vm_mem_add() gives the host mapping
 * of a memslot with @flags and @guest_memfd (-1: created with the default
 * backing), on @src_type memory: the guest_memfd page size if it is huge,
 * at least the hugepage size of @src_type then, else 1.
 */
size_t vm_guest_memfd_mmap_align(struct kvm_vm *vm, u32 flags, int guest_memfd,
				 enum vm_mem_backing_src_type src_type)
{
	size_t page_size;
	struct stat st;

	if (!(flags & KVM_MEM_GUEST_MEMFD))
		return 1;

	if (guest_memfd < 0) {
		page_size = guest_memfd_backing_page_size(guest_memfd_default_backing());
	} else {
		TEST_ASSERT(!fstat(guest_memfd, &st), "fstat() of guest_memfd: %s",
			    strerror(errno));
		page_size = st.st_blksize;
	}

	if (page_size <= vm->page_size)
		return 1;
	if (is_backing_src_hugetlb(src_type))
		return max_t(size_t, page_size, get_backing_src_pagesz(src_type));
	return page_size;
}

/*
 * mmap() of @size bytes at an address aligned to @align.  Only address
 * space is set aside for the alignment: the mapping is exactly @size bytes,
 * so a hugetlb mapping reserves no more than it maps, and munmap() of @size
 * bytes undoes it.
 */
void *kvm_mmap_aligned(size_t size, size_t align, int prot, int flags, int fd)
{
	size_t span = size + align;
	char *va, *p;
	void *mem;

	if (align <= 1)
		return kvm_mmap(size, prot, flags, fd);

	va = kvm_mmap(span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1);
	p = align_ptr_up(va, align);
	mem = mmap(p, size, prot, flags | MAP_FIXED, fd, 0);
	TEST_ASSERT(mem == p, "mmap(MAP_FIXED) of 0x%lx bytes at %p: %s",
		    size, p, strerror(errno));
	if (p != va)
		kvm_munmap(va, p - va);
	if (va + span != p + size)
		kvm_munmap(p + size, va + span - (p + size));
	return mem;
}

/* ------------------------------------------------------------------------ */
/* File operations                                                          */
/* ------------------------------------------------------------------------ */

int __gmem_fallocate(int fd, bool punch, u64 offset, u64 len)
{
	int mode = FALLOC_FL_KEEP_SIZE | (punch ? FALLOC_FL_PUNCH_HOLE : 0);

	return fallocate(fd, mode, offset, len) ? errno : 0;
}

void gmem_punch(int fd, u64 offset, u64 len)
{
	int r = __gmem_fallocate(fd, true, offset, len);

	TEST_ASSERT(!r, "PUNCH_HOLE(0x%lx, 0x%lx): %s", offset, len, strerror(r));
}

void gmem_allocate(int fd, u64 offset, u64 len)
{
	int r = __gmem_fallocate(fd, false, offset, len);

	TEST_ASSERT(!r, "fallocate(0x%lx, 0x%lx): %s", offset, len, strerror(r));
}

int __vcpu_pre_fault(struct kvm_vcpu *vcpu, gpa_t gpa, u64 size)
{
	struct kvm_pre_fault_memory range = { .gpa = gpa, .size = size };

	while (range.size) {
		if (__vcpu_ioctl(vcpu, KVM_PRE_FAULT_MEMORY, &range) &&
		    errno != EINTR && errno != EAGAIN)
			return errno;
	}
	return 0;
}

void vcpu_pre_fault(struct kvm_vcpu *vcpu, gpa_t gpa, u64 size)
{
	int r = __vcpu_pre_fault(vcpu, gpa, size);

	TEST_ASSERT(!r, "KVM_PRE_FAULT_MEMORY of [0x%lx, +0x%lx): %s", gpa,
		    size, strerror(r));
}

/* ------------------------------------------------------------------------ */
/* hugetlb pools and cgroup                                                 */
/* ------------------------------------------------------------------------ */

static const size_t pool_sizes[] = { SZ_2M, SZ_1G };

static bool read_u64(const char *path, u64 *val)
{
	FILE *f = fopen(path, "r");
	bool ok;

	if (!f)
		return false;
	ok = fscanf(f, "%lu", val) == 1;
	fclose(f);
	return ok;
}

bool hugetlb_pool_read(size_t page_size, struct hugetlb_pool *pool)
{
	static const char * const names[] = {
		"nr_hugepages", "free_hugepages", "resv_hugepages",
		"surplus_hugepages", "nr_overcommit_hugepages",
	};
	u64 *val[] = { &pool->nr, &pool->free, &pool->resv, &pool->surplus,
		       &pool->nr_overcommit };
	char path[PATH_MAX];
	int i;

	for (i = 0; i < ARRAY_SIZE(names); i++) {
		snprintf(path, sizeof(path),
			 "/sys/kernel/mm/hugepages/hugepages-%zukB/%s",
			 page_size >> 10, names[i]);
		if (!read_u64(path, val[i])) {
			TEST_ASSERT(!i, "can't read %s", path);
			return false;
		}
	}
	return true;
}

void hugetlb_pool_assert(size_t page_size, const struct hugetlb_pool *base,
			 long free_delta, long resv_delta, const char *fmt, ...)
{
	struct hugetlb_pool now;
	char step[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(step, sizeof(step), fmt, ap);
	va_end(ap);

	TEST_ASSERT(hugetlb_pool_read(page_size, &now), "no %zukB pool",
		    page_size >> 10);
	TEST_ASSERT(now.free == base->free + free_delta &&
		    now.resv == base->resv + resv_delta,
		    "%s: %zukB pool has free %lu resv %lu, expected %lu%+ld and %lu%+ld",
		    step, page_size >> 10, now.free, now.resv, base->free,
		    free_delta, base->resv, resv_delta);
}

void hugetlb_pools_read(struct hugetlb_pools *pools)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(pool_sizes); i++)
		pools->present[i] = hugetlb_pool_read(pool_sizes[i],
						      &pools->pool[i]);
}

void hugetlb_pools_assert_unchanged(const struct hugetlb_pools *before,
				    const char *fmt, ...)
{
	struct hugetlb_pools now;
	char step[320];
	va_list ap;
	int i;

	va_start(ap, fmt);
	vsnprintf(step, sizeof(step), fmt, ap);
	va_end(ap);

	hugetlb_pools_read(&now);
	for (i = 0; i < ARRAY_SIZE(pool_sizes); i++) {
		const struct hugetlb_pool *a = &before->pool[i], *b = &now.pool[i];

		if (!before->present[i])
			continue;
		TEST_ASSERT(a->free == b->free && a->resv == b->resv,
			    "%s changed the %zukB pool: free %lu -> %lu, resv %lu -> %lu",
			    step, pool_sizes[i] >> 10, a->free, b->free,
			    a->resv, b->resv);
	}
}

static int open_pool_file(size_t page_size, const char *name)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%zukB/%s",
		 page_size >> 10, name);
	fd = open(path, O_RDONLY);
	TEST_ASSERT(fd >= 0, "can't open %s: %s", path, strerror(errno));
	return fd;
}

static u64 pread_u64(int fd)
{
	char buf[32], *end;
	ssize_t len;
	u64 val;

	len = pread(fd, buf, sizeof(buf) - 1, 0);
	TEST_ASSERT(len > 0, "can't read a pool counter: %s", strerror(errno));
	buf[len] = '\0';
	val = strtoull(buf, &end, 10);
	TEST_ASSERT(end != buf, "bad pool counter '%s'", buf);
	return val;
}

void hugetlb_pool_reader_open(struct hugetlb_pool_reader *r, size_t page_size)
{
	r->free_fd = open_pool_file(page_size, "free_hugepages");
	r->resv_fd = open_pool_file(page_size, "resv_hugepages");
}

void hugetlb_pool_reader_read(struct hugetlb_pool_reader *r, u64 *free,
			      u64 *resv)
{
	*free = pread_u64(r->free_fd);
	if (resv)
		*resv = pread_u64(r->resv_fd);
}

void hugetlb_pool_reader_close(struct hugetlb_pool_reader *r)
{
	close(r->free_fd);
	close(r->resv_fd);
}

const char *hugetlb_cgroup_enter(struct hugetlb_cgroup *cg, size_t page_size)
{
	char root[PATH_MAX - 64], file[64], buf[16];

	memset(cg, 0, sizeof(*cg));
	if (page_size >= SZ_1G)
		snprintf(cg->size, sizeof(cg->size), "%zuGB", page_size >> 30);
	else
		snprintf(cg->size, sizeof(cg->size), "%zuMB", page_size >> 20);

	if (cg_find_unified_root(root, sizeof(root), NULL))
		return "no cgroup2 hierarchy";
	if (cg_read_strstr(root, "cgroup.controllers", "hugetlb"))
		return "no hugetlb controller in the root cgroup";
	snprintf(buf, sizeof(buf), "+hugetlb");
	if (cg_write(root, "cgroup.subtree_control", buf))
		return "can't enable the hugetlb controller for children";

	snprintf(cg->path, sizeof(cg->path), "%s/kvm_gmem_hugetlb.%d", root,
		 getpid());
	if (cg_create(cg->path)) {
		cg->path[0] = '\0';
		return "can't create a cgroup";
	}
	snprintf(file, sizeof(file), "hugetlb.%s.rsvd.current", cg->size);
	if (cg_read_long(cg->path, file) < 0)
		return "no hugetlb.<size>.rsvd.current";
	if (cg_enter_current(cg->path))
		return "can't move into the cgroup";
	return NULL;
}

static u64 cgroup_read(const struct hugetlb_cgroup *cg, const char *what)
{
	char file[64];
	long val;

	snprintf(file, sizeof(file), "hugetlb.%s.%s", cg->size, what);
	val = cg_read_long(cg->path, file);
	TEST_ASSERT(val >= 0, "can't read %s/%s", cg->path, file);
	return val;
}

u64 hugetlb_cgroup_rsvd(const struct hugetlb_cgroup *cg)
{
	return cgroup_read(cg, "rsvd.current");
}

u64 hugetlb_cgroup_usage(const struct hugetlb_cgroup *cg)
{
	return cgroup_read(cg, "current");
}

/* hugetlb.<size>.rsvd.max; ~0 for "max". */
void hugetlb_cgroup_set_rsvd_max(const struct hugetlb_cgroup *cg, u64 bytes)
{
	char file[64], buf[32];

	snprintf(file, sizeof(file), "hugetlb.%s.rsvd.max", cg->size);
	if (bytes == ~0ULL)
		snprintf(buf, sizeof(buf), "max");
	else
		snprintf(buf, sizeof(buf), "%lu", bytes);
	TEST_ASSERT(!cg_write(cg->path, file, buf), "can't write %s to %s/%s",
		    buf, cg->path, file);
}

/* Remove the cgroup once no task is in it (so not from inside it). */
void hugetlb_cgroup_leave(const struct hugetlb_cgroup *cg)
{
	char parent[PATH_MAX], *slash;

	if (!cg->path[0])
		return;
	snprintf(parent, sizeof(parent), "%s", cg->path);
	slash = strrchr(parent, '/');
	TEST_ASSERT(slash, "bad cgroup path %s", cg->path);
	*slash = '\0';
	TEST_ASSERT(!cg_enter_current(parent), "can't move back to %s", parent);
}

void hugetlb_cgroup_remove(struct hugetlb_cgroup *cg)
{
	int i;

	if (!cg->path[0])
		return;
	for (i = 0; i < 100; i++) {
		if (!rmdir(cg->path) || errno == ENOENT)
			break;
		usleep(10000);
	}
	if (i == 100)
		ksft_print_msg("can't remove %s: %s\n", cg->path, strerror(errno));
	cg->path[0] = '\0';
}

/* ------------------------------------------------------------------------ */
/* fdinfo                                                                   */
/* ------------------------------------------------------------------------ */

static const struct {
	const char *key;
	size_t offset;
	bool optional;
} fdinfo_keys[] = {
	{ "hugetlb_page_size", offsetof(struct gmem_fdinfo, page_size) },
	{ "hugetlb_pages", offsetof(struct gmem_fdinfo, pages) },
	{ "hugetlb_reserved", offsetof(struct gmem_fdinfo, reserved) },
	{ "hugetlb_allocated", offsetof(struct gmem_fdinfo, allocated) },
	{ "hugetlb_partial_folios", offsetof(struct gmem_fdinfo, partial_folios) },
	{ "hugetlb_punched_subpages", offsetof(struct gmem_fdinfo, punched_subpages) },
	{ "hugetlb_subpage_maps", offsetof(struct gmem_fdinfo, subpage_maps), true },
	{ "hugetlb_metadata_bytes", offsetof(struct gmem_fdinfo, metadata_bytes) },
};

const char *gmem_fdinfo_parse(int fd, struct gmem_fdinfo *fi)
{
	static char err[320];
	bool seen[ARRAY_SIZE(fdinfo_keys)] = {};
	char path[64], line[256], *p, *end;
	size_t klen;
	FILE *f;
	int i;

	memset(fi, 0, sizeof(*fi));
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f) {
		snprintf(err, sizeof(err), "can't open %s: %s", path, strerror(errno));
		return err;
	}
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		for (i = 0; i < ARRAY_SIZE(fdinfo_keys); i++) {
			klen = strlen(fdinfo_keys[i].key);
			if (strncmp(line, fdinfo_keys[i].key, klen) || line[klen] != ':')
				continue;
			p = line + klen + 1;
			*(u64 *)((char *)fi + fdinfo_keys[i].offset) = strtoull(p, &end, 10);
			if (seen[i] || end == p || *end) {
				snprintf(err, sizeof(err), "bad line '%s'", line);
				fclose(f);
				return err;
			}
			seen[i] = true;
		}
	}
	fclose(f);
	for (i = 0; i < ARRAY_SIZE(fdinfo_keys); i++) {
		if (!seen[i] && !fdinfo_keys[i].optional) {
			snprintf(err, sizeof(err), "no %s line", fdinfo_keys[i].key);
			return err;
		}
	}
	fi->has_subpage_maps = seen[6];
	return NULL;
}

void gmem_fdinfo_read(int fd, struct gmem_fdinfo *fi)
{
	const char *err = gmem_fdinfo_parse(fd, fi);

	TEST_ASSERT(!err, "fdinfo of guest_memfd %d: %s", fd, err);
}

static bool fdinfo_eq(u64 want, u64 seen)
{
	return want == GMEM_FDINFO_ANY || want == seen;
}

/*
 * A subpage map is a 32-byte header and two bits (punched, unprepared) per
 * subpage; the rest of the metadata a fixed struct and a bit per hugepage.
 */
static u64 subpage_map_bytes(u64 page_size)
{
	return 32 + 2 * (page_size / SZ_4K) / 8;
}

void gmem_fdinfo_assert(int fd, const struct gmem_fdinfo *want,
			const char *fmt, ...)
{
	struct gmem_fdinfo fi;
	u64 maps, map_bytes;
	char step[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(step, sizeof(step), fmt, ap);
	va_end(ap);

	gmem_fdinfo_read(fd, &fi);
	TEST_ASSERT(fi.page_size == want->page_size && fi.pages == want->pages &&
		    fdinfo_eq(want->reserved, fi.reserved) &&
		    fdinfo_eq(want->allocated, fi.allocated) &&
		    fdinfo_eq(want->partial_folios, fi.partial_folios) &&
		    fdinfo_eq(want->punched_subpages, fi.punched_subpages),
		    "%s: fdinfo page_size %lu pages %lu reserved %lu allocated %lu partial_folios %lu punched_subpages %lu; expected %lu %lu %ld %ld %ld %ld (-1: any)",
		    step, fi.page_size, fi.pages, fi.reserved, fi.allocated,
		    fi.partial_folios, fi.punched_subpages, want->page_size,
		    want->pages, (long)want->reserved, (long)want->allocated,
		    (long)want->partial_folios, (long)want->punched_subpages);

	/* A map per partly punched folio, kept after a refill until freed. */
	maps = fi.has_subpage_maps ? fi.subpage_maps : fi.partial_folios;
	map_bytes = subpage_map_bytes(fi.page_size);
	TEST_ASSERT(fi.partial_folios <= maps && maps <= fi.allocated &&
		    fi.metadata_bytes >= maps * map_bytes &&
		    fi.metadata_bytes - maps * map_bytes <= SZ_4K + fi.pages / 8,
		    "%s: fdinfo has %lu subpage maps (%lu partial folios, %lu allocated) and %lu metadata bytes; a map takes %lu bytes",
		    step, maps, fi.partial_folios, fi.allocated, fi.metadata_bytes,
		    map_bytes);
}

void gmem_pool_matches_fdinfo(int fd, const struct hugetlb_pool *base,
			      const char *what)
{
	struct hugetlb_pool now;
	struct gmem_fdinfo fi;

	gmem_fdinfo_read(fd, &fi);
	TEST_ASSERT(hugetlb_pool_read(fi.page_size, &now), "no pool");
	TEST_ASSERT(now.free == base->free - fi.allocated &&
		    now.resv == base->resv + fi.reserved,
		    "%s: fdinfo has %lu allocated and %lu reserved hugepages, but the pool went from free %lu resv %lu to free %lu resv %lu",
		    what, fi.allocated, fi.reserved, base->free, base->resv,
		    now.free, now.resv);
}

/* ------------------------------------------------------------------------ */
/* Tracepoints                                                              */
/* ------------------------------------------------------------------------ */

static const char * const kind_str[] = {
	[GMEM_PREPARE] = "prepare",
	[GMEM_PUNCH] = "punch",
	[GMEM_RELEASE] = "release",
	[GMEM_FREE] = "free",
	[GMEM_UNDO] = "undo",
};

static const char * const event_enable[] = {
	"events/kvm/kvm_gmem_prepare/enable",
	"events/kvm/kvm_gmem_invalidate/enable",
};

const char *tracefs_dir(void)
{
	if (!access("/sys/kernel/tracing/trace", F_OK))
		return "/sys/kernel/tracing";
	return "/sys/kernel/debug/tracing";
}

/* Write (truncating) a tracefs file: 0 or -errno. */
int tracefs_write(const char *file, const char *str)
{
	char path[PATH_MAX];
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tracefs_dir(), file);
	fd = open(path, O_WRONLY | O_TRUNC);
	if (fd < 0)
		return -errno;
	r = write(fd, str, strlen(str));
	r = r < 0 ? -errno : 0;
	close(fd);
	return r;
}

bool gmem_trace_available(unsigned int which)
{
	char path[PATH_MAX];
	int i;

	for (i = 0; i < ARRAY_SIZE(event_enable); i++) {
		snprintf(path, sizeof(path), "%s/%s", tracefs_dir(), event_enable[i]);
		if ((which & BIT(i)) && access(path, W_OK))
			return false;
	}
	return true;
}

void gmem_trace_start(unsigned int which)
{
	int i, r;

	gmem_trace_stop();
	r = tracefs_write("tracing_on", "1") ?: tracefs_write("trace", "");
	TEST_ASSERT(!r, "can't reset the trace buffer: %s", strerror(-r));
	for (i = 0; i < ARRAY_SIZE(event_enable); i++) {
		if (!(which & BIT(i)))
			continue;
		r = tracefs_write(event_enable[i], "1");
		TEST_ASSERT(!r, "can't enable %s: %s", event_enable[i], strerror(-r));
	}
}

void gmem_trace_stop(void)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(event_enable); i++)
		tracefs_write(event_enable[i], "0");
}

void gmem_trace_set_buffer_kb(u64 kb)
{
	char buf[32];
	int r;

	snprintf(buf, sizeof(buf), "%lu", kb);
	r = tracefs_write("buffer_size_kb", buf);
	TEST_ASSERT(!r, "can't size the trace buffer: %s", strerror(-r));
}

/* Events the buffers dropped since they were last reset. */
static u64 trace_overruns(void)
{
	long cpu, nr = sysconf(_SC_NPROCESSORS_CONF);
	char path[PATH_MAX], line[128];
	u64 sum = 0, val;
	FILE *f;

	for (cpu = 0; cpu < nr; cpu++) {
		snprintf(path, sizeof(path), "%s/per_cpu/cpu%ld/stats",
			 tracefs_dir(), cpu);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line, "overrun: %lu", &val) == 1)
				sum += val;
		}
		fclose(f);
	}
	return sum;
}

static bool parse_event(const char *line, struct gmem_event *e)
{
	static const char prep[] = "kvm_gmem_prepare: ";
	static const char inval[] = "kvm_gmem_invalidate: ";
	const char *p;
	char why[16];
	int i, n;

	p = strstr(line, prep);
	if (p) {
		n = sscanf(p + strlen(prep), "index 0x%lx pfn 0x%lx nr_pages %lu order %u",
			   &e->index, &e->pfn, &e->nr_pages, &e->order);
		TEST_ASSERT(n == 4, "can't parse trace line: %s", line);
		e->kind = GMEM_PREPARE;
		return true;
	}
	p = strstr(line, inval);
	if (!p)
		return false;
	n = sscanf(p + strlen(inval), "index 0x%lx pfn 0x%lx nr_pages %lu order %u why %15s",
		   &e->index, &e->pfn, &e->nr_pages, &e->order, why);
	TEST_ASSERT(n == 5, "can't parse trace line: %s", line);
	for (i = GMEM_PUNCH; i <= GMEM_UNDO; i++) {
		if (!strcmp(why, kind_str[i])) {
			e->kind = i;
			return true;
		}
	}
	TEST_FAIL("unknown reason in trace line: %s", line);
	return false;
}

u64 gmem_trace_read(struct gmem_events *events)
{
	char path[PATH_MAX], line[512];
	struct gmem_event e;
	FILE *f;

	snprintf(path, sizeof(path), "%s/trace", tracefs_dir());
	f = fopen(path, "r");
	TEST_ASSERT(f, "can't open %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#' || !parse_event(line, &e))
			continue;
		gmem_events_add(events, e.kind, e.index, e.order);
		events->ev[events->nr - 1].pfn = e.pfn;
		events->ev[events->nr - 1].nr_pages = e.nr_pages;
	}
	fclose(f);
	return trace_overruns();
}

void gmem_events_add(struct gmem_events *events, enum gmem_event_kind kind,
		     u64 index, unsigned int order)
{
	if (events->nr == events->cap) {
		events->cap = events->cap ? 2 * events->cap : 64;
		events->ev = realloc(events->ev, events->cap * sizeof(*events->ev));
		TEST_ASSERT(events->ev, "out of memory");
	}
	events->ev[events->nr++] = (struct gmem_event) {
		.kind = kind,
		.index = index,
		.nr_pages = 1ULL << order,
		.order = order,
	};
}

void gmem_events_add_blocks(struct gmem_events *events,
			    enum gmem_event_kind kind, u64 start, u64 end)
{
	unsigned int order;

	while (start < end) {
		for (order = 0; order < 62; order++) {
			if ((start & ((2ULL << order) - 1)) ||
			    start + (2ULL << order) > end)
				break;
		}
		gmem_events_add(events, kind, start, order);
		start += 1ULL << order;
	}
}

void gmem_events_free(struct gmem_events *events)
{
	free(events->ev);
	memset(events, 0, sizeof(*events));
}

const char *gmem_event_str(const struct gmem_event *e, char *buf, size_t len)
{
	snprintf(buf, len, "%s index 0x%lx order %u", kind_str[e->kind],
		 e->index, e->order);
	return buf;
}

void gmem_events_assert_contract(const struct gmem_events *events,
				 u64 folio_pages, u64 file_pages, bool closed)
{
	u64 nr_folios = file_pages / folio_pages, i, j, n, f;
	unsigned int folio_order = __builtin_ctzl(folio_pages);
	u8 *private = calloc(file_pages, 1);
	s64 *delta = calloc(nr_folios, sizeof(*delta));
	bool *known = calloc(nr_folios, sizeof(*known));
	char buf[64];

	TEST_ASSERT(private && delta && known, "out of memory");
	for (i = 0; i < events->nr; i++) {
		const struct gmem_event *e = &events->ev[i];

		gmem_event_str(e, buf, sizeof(buf));
		n = 1ULL << e->order;
		f = e->index / folio_pages;
		TEST_ASSERT(e->nr_pages == n && !(e->index & (n - 1)) &&
			    !(e->pfn & (n - 1)) && n <= folio_pages &&
			    e->index + n <= file_pages,
			    "event %lu (%s, pfn 0x%lx, nr_pages %lu) is not a naturally aligned block of one folio",
			    i, buf, e->pfn, e->nr_pages);
		if (!known[f]) {
			delta[f] = e->pfn - e->index;
			known[f] = true;
		}
		TEST_ASSERT(delta[f] == (s64)(e->pfn - e->index),
			    "event %lu (%s): pfn 0x%lx is not where the rest of the folio is",
			    i, buf, e->pfn);
		TEST_ASSERT(e->kind != GMEM_FREE || e->order == folio_order,
			    "event %lu (%s) frees less than a folio", i, buf);
		for (j = e->index; j < e->index + n; j++) {
			switch (e->kind) {
			case GMEM_PREPARE:
				TEST_ASSERT(!private[j],
					    "event %lu (%s) makes page 0x%lx private twice",
					    i, buf, j);
				private[j] = 1;
				break;
			case GMEM_PUNCH:
			case GMEM_RELEASE:
				TEST_ASSERT(private[j],
					    "event %lu (%s) reclaims page 0x%lx, which is not private",
					    i, buf, j);
				private[j] = 0;
				break;
			case GMEM_FREE:
				TEST_ASSERT(!private[j],
					    "event %lu (%s) frees the folio while page 0x%lx is private",
					    i, buf, j);
				break;
			case GMEM_UNDO:
				/* The block of a failed make_private. */
				TEST_ASSERT(!private[j],
					    "event %lu (%s) undoes page 0x%lx, which is private",
					    i, buf, j);
				break;
			}
		}
		if (e->kind == GMEM_FREE)
			known[f] = false;
	}
	for (j = 0; closed && j < file_pages; j++)
		TEST_ASSERT(!private[j], "page 0x%lx is still private after close", j);
	free(private);
	free(delta);
	free(known);
}

static bool event_eq(const struct gmem_event *a, const struct gmem_event *b)
{
	return a->kind == b->kind && a->index == b->index && a->order == b->order;
}

void gmem_events_assert_equal(const struct gmem_events *want,
			      const struct gmem_events *seen)
{
	char a[64], b[64];
	size_t i, first;

	for (first = 0; first < want->nr && first < seen->nr; first++) {
		if (!event_eq(&want->ev[first], &seen->ev[first]))
			break;
	}
	if (first == want->nr && first == seen->nr)
		return;

	for (i = 0; i < want->nr || i < seen->nr; i++)
		ksft_print_msg("%4zu%s expected %-36s traced %s\n", i,
			       i == first ? "*" : ":",
			       i < want->nr ? gmem_event_str(&want->ev[i], a, sizeof(a)) : "-",
			       i < seen->nr ? gmem_event_str(&seen->ev[i], b, sizeof(b)) : "-");
	TEST_FAIL("%zu events expected, %zu traced; the first difference is at %zu (*)",
		  want->nr, seen->nr, first);
}

/* ------------------------------------------------------------------------ */
/* Kernel counters                                                          */
/* ------------------------------------------------------------------------ */

s64 vmstat_get(const char *name)
{
	FILE *f = fopen("/proc/vmstat", "r");
	char key[64];
	u64 val;

	TEST_ASSERT(f, "can't open /proc/vmstat: %s", strerror(errno));
	while (fscanf(f, "%63s %lu", key, &val) == 2) {
		if (!strcmp(key, name)) {
			fclose(f);
			return val;
		}
	}
	fclose(f);
	return -1;
}

void direct_map_kb(u64 kb[3])
{
	static const char * const keys[] = {
		"DirectMap4k:", "DirectMap2M:", "DirectMap1G:",
	};
	FILE *f = fopen("/proc/meminfo", "r");
	char key[64];
	u64 val;
	int i;

	TEST_ASSERT(f, "can't open /proc/meminfo: %s", strerror(errno));
	memset(kb, 0, 3 * sizeof(*kb));
	while (fscanf(f, "%63s %lu kB", key, &val) == 2) {
		for (i = 0; i < 3; i++)
			if (!strcmp(key, keys[i]))
				kb[i] = val;
	}
	fclose(f);
}

u64 memmap_pages(void)
{
	s64 val = vmstat_get("nr_memmap_pages");

	TEST_ASSERT(val >= 0, "no nr_memmap_pages in /proc/vmstat");
	return val;
}

s64 kvm_debugfs_stat(struct kvm_vm *vm, const char *name)
{
	char path[PATH_MAX];
	u64 val;

	if (vm)
		snprintf(path, sizeof(path), "/sys/kernel/debug/kvm/%d-%d/%s",
			 getpid(), vm->fd, name);
	else
		snprintf(path, sizeof(path), "/sys/kernel/debug/kvm/%s", name);
	return read_u64(path, &val) ? (s64)val : -1;
}

double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

long minor_faults(void)
{
	struct rusage ru;

	TEST_ASSERT(!getrusage(RUSAGE_SELF, &ru), "getrusage: %s", strerror(errno));
	return ru.ru_minflt;
}
