/*
 * backing.c - what backs each guest page, and the operations that change
 * it: replace (another memfd), restore (the VM's own backing), zero (drop
 * the private copy so the page reads zero) and discard (MADV_DONTNEED).
 *
 * The memory-safety invariant (hv.h) lives here for base-backed RAM.
 * Such RAM is MAP_PRIVATE of a sharing domain's base memfd at offset GPA,
 * and base[g] holds whatever ksm merged there: other VMs' content at that
 * GPA.  Dropping a page's private copy with MADV_DONTNEED makes the page
 * read base[g], which is only right when base[g] is this VM's own content
 * (a merge) or a hole.  So every path that gives a page back or takes it
 * away (balloon inflate, free page reporting, deflate, unregister, reset)
 * calls hv_vm_zero(), which on base-backed RAM maps private anonymous
 * memory over the run instead: the old copy is freed by the unmap, the
 * page reads the kernel's zero page until written, and adjacent zeroed
 * runs are adjacent anonymous VMAs with equal flags, which the kernel
 * merges, so the VMA count grows with runs, not pages.
 *
 * The off_base and anon bitmaps say, per page of base-backed RAM, whether
 * it is mapped from somewhere else than base at offset GPA, and whether
 * that somewhere is anonymous memory.  ksm reads them: its same-GPA merge
 * drops a copy expecting base[g] under it, which an off-base page must get
 * back by restore instead.  They change only here, under the caller's
 * ownership of the pages (paused, or HV_PF_BUSY), and each bit is one
 * atomic word operation, so readers on other threads see a bit that is at
 * worst one operation old for pages they do not own.
 *
 * Every mapping made here is a new VMA, which the userfaultfd that
 * write-protects guest RAM does not cover: wp_remapped() registers it
 * at once (wp.c), so the pages can be protected again and the VMA can
 * merge with its registered neighbours.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "vm_internal.h"

int backing_setup(struct hv_vm *vm)
{
	struct stat st;

	if (fstat(vm->cfg.base_memfd, &st) < 0)
		return -errno;
	vm->base_dev = st.st_dev;
	vm->base_ino = st.st_ino;
	for (unsigned i = 0; i < vm->nranges; i++) {
		uint64_t words = (vm->ranges[i].len / HV_PAGE_SIZE + 63) / 64;
		vm->off_base[i] = calloc(words, sizeof(uint64_t));
		vm->anon[i] = calloc(words, sizeof(uint64_t));
		if (!vm->off_base[i] || !vm->anon[i])
			return -ENOMEM;
	}
	return 0;
}

/* The range holding [gpa, gpa+len), which hv_vm_check_range() passed. */
static unsigned range_of(const struct hv_vm *vm, uint64_t gpa)
{
	unsigned r = 0;
	while (r + 1 < vm->nranges && gpa >= vm->ranges[r + 1].gpa)
		r++;
	return r;
}

static void bits_assign(uint64_t *bm, uint64_t first, uint64_t n, bool on)
{
	while (n) {
		uint64_t w = first / 64, b = first % 64;
		uint64_t k = 64 - b < n ? 64 - b : n;
		uint64_t mask = (k == 64 ? ~0ull : ((1ull << k) - 1)) << b;
		if (on)
			__atomic_or_fetch(&bm[w], mask, __ATOMIC_RELEASE);
		else
			__atomic_and_fetch(&bm[w], ~mask, __ATOMIC_RELEASE);
		first += k;
		n -= k;
	}
}

static bool bits_all(const uint64_t *bm, uint64_t first, uint64_t n)
{
	while (n) {
		uint64_t w = first / 64, b = first % 64;
		uint64_t k = 64 - b < n ? 64 - b : n;
		uint64_t mask = (k == 64 ? ~0ull : ((1ull << k) - 1)) << b;
		if ((__atomic_load_n(&bm[w], __ATOMIC_ACQUIRE) & mask) != mask)
			return false;
		first += k;
		n -= k;
	}
	return true;
}

/* Records what now maps [gpa, gpa+len) of base-backed RAM. */
static void note_backing(struct hv_vm *vm, uint64_t gpa, uint64_t len,
			 bool off_base, bool anon)
{
	unsigned r = range_of(vm, gpa);
	uint64_t first = (gpa - vm->ranges[r].gpa) >> HV_PAGE_SHIFT;
	if (!vm->off_base[r])
		return;
	bits_assign(vm->off_base[r], first, len >> HV_PAGE_SHIFT, off_base);
	bits_assign(vm->anon[r], first, len >> HV_PAGE_SHIFT, anon);
}

/* The page's bit in one of the per-range bitmaps (off_base or anon). */
static bool page_bit(const struct hv_vm *vm, uint64_t *const bm[HV_MAX_RANGES],
		     uint64_t gpa)
{
	if (vm->cfg.base_memfd < 0 || !hv_gpa_to_hva(vm, gpa & ~(HV_PAGE_SIZE - 1),
						     HV_PAGE_SIZE))
		return false;
	unsigned r = range_of(vm, gpa);
	uint64_t i = (gpa - vm->ranges[r].gpa) >> HV_PAGE_SHIFT;
	return __atomic_load_n(&bm[r][i / 64], __ATOMIC_ACQUIRE) &
	       (1ull << (i % 64));
}

bool hv_vm_page_off_base(const struct hv_vm *vm, uint64_t gpa)
{
	return page_bit(vm, vm->off_base, gpa);
}

bool hv_vm_page_anon(const struct hv_vm *vm, uint64_t gpa)
{
	return page_bit(vm, vm->anon, gpa);
}

/* memfd is the base memfd itself or a dup of it (ksm keeps its own):
 * the file decides, never the descriptor's number. */
static bool is_base_file(const struct hv_vm *vm, int memfd)
{
	struct stat st;

	if (vm->cfg.base_memfd < 0)
		return false;
	if (memfd == vm->cfg.base_memfd)
		return true;
	return fstat(memfd, &st) == 0 && st.st_dev == vm->base_dev &&
	       st.st_ino == vm->base_ino;
}


int hv_vm_replace_backing(struct hv_vm *vm, uint64_t gpa, uint64_t len,
			  int memfd, uint64_t off)
{
	int rc = hv_vm_check_range(vm, gpa, len);
	if (rc)
		return rc;
	if (off & (HV_PAGE_SIZE - 1))
		return -EINVAL;
	bool base = is_base_file(vm, memfd);
	void *p = mmap(vm->ram + gpa, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, memfd, (off_t)off);
	if (p == MAP_FAILED)
		return -errno;
	wp_remapped(vm, gpa, len);
	/* the base memfd at offset GPA is the VM's own backing again */
	note_backing(vm, gpa, len, !base || off != gpa, false);
	return 0;
}

int hv_vm_restore_backing(struct hv_vm *vm, uint64_t gpa, uint64_t len)
{
	int rc = hv_vm_check_range(vm, gpa, len);
	if (rc)
		return rc;
	int fd = vm->cfg.base_memfd;
	int flags = MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE;
	void *p = mmap(vm->ram + gpa, len, PROT_READ | PROT_WRITE,
		       fd >= 0 ? flags : flags | MAP_ANONYMOUS, fd,
		       fd >= 0 ? (off_t)gpa : 0);
	if (p == MAP_FAILED)
		return -errno;
	madvise(p, len, MADV_NOHUGEPAGE);
	wp_remapped(vm, gpa, len);
	note_backing(vm, gpa, len, false, false);
	return 0;
}

int hv_vm_discard(struct hv_vm *vm, uint64_t gpa, uint64_t len)
{
	int rc = hv_vm_check_range(vm, gpa, len);
	if (rc)
		return rc;
	return madvise(vm->ram + gpa, len, MADV_DONTNEED) < 0 ? -errno : 0;
}

int hv_vm_zero(struct hv_vm *vm, uint64_t gpa, uint64_t len)
{
	int rc = hv_vm_check_range(vm, gpa, len);
	if (rc)
		return rc;
	unsigned r = range_of(vm, gpa);
	uint64_t first = (gpa - vm->ranges[r].gpa) >> HV_PAGE_SHIFT;
	/* Anonymous memory under every page (always so without a base, and
	 * so on a second zeroing, e.g. the deflate of a ballooned run): a
	 * discard reads zero, and costs no VMA change. */
	if (vm->cfg.base_memfd < 0 ||
	    bits_all(vm->anon[r], first, len >> HV_PAGE_SHIFT))
		return madvise(vm->ram + gpa, len, MADV_DONTNEED) < 0 ? -errno : 0;
	/* MAP_FIXED swaps the mapping under the mmap lock: a vCPU touching
	 * the run meanwhile waits in its fault and then sees zeros, never
	 * base[g]. */
	void *p = mmap(vm->ram + gpa, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
		       -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	/* the flags of the rest of guest RAM, so that neighbours merge */
	madvise(p, len, MADV_NOHUGEPAGE);
	wp_remapped(vm, gpa, len);
	note_backing(vm, gpa, len, true, true);
	return 0;
}
