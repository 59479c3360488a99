/*
 * merge_base.c - the same-GPA merge path through a domain's base memfd.
 *
 * VMs of a domain map guest RAM MAP_PRIVATE of one base memfd at offset
 * GPA.  A page the VM never wrote (or that was discarded) reads base[g];
 * a written page is the VM's own anonymous copy.  Merging equal pages at
 * g: write the content into base[g] once, then discard each VM's copy
 * (batch.c, paused), which costs no VMA and no mmap.
 *
 * The rule that makes it safe: base[g] changes only while no VM of the
 * domain reads it, i.e. every VM's page at g is its own anonymous copy.
 * The page-state map says which pages are BASE (refs) but not which pages
 * were never written, so kbase_writable() asks the kernel: the VM's
 * /proc/self/pagemap entry for the page must be a private anonymous page.
 * A VM's page cannot go back to reading base[g] except by a discard, and
 * ksm's own discards (zero pages) are refused where base[g] has data.
 *
 * Per-GPA state: base_refs (pages in state BASE), KB_DATA (base[g] may
 * hold data: ksm wrote it, or it came pre-populated, found by SEEK_DATA),
 * base_hash.  When the last BASE page leaves and nobody reads base[g],
 * it is punched back to a hole.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "internal.h"

/* Calls fn(k, d, first_page, npages) for each allocated extent of the
 * base memfd, clipped to the arrays. */
static void base_extents(struct ksm *k, struct kdom *d,
			 void (*fn)(struct ksm *, struct kdom *, uint64_t,
				    uint64_t))
{
	struct stat st;
	off_t pos = 0, end, size;
	uint64_t p0, p1;

	if (fstat(d->base_fd, &st) != 0)
		return;
	size = st.st_size;
	while (pos < size) {
		pos = lseek(d->base_fd, pos, SEEK_DATA);
		if (pos < 0)
			break;   /* ENXIO: no data past pos */
		end = lseek(d->base_fd, pos, SEEK_HOLE);
		if (end < 0)
			end = size;
		p0 = (uint64_t)pos / KSM_PAGE;
		p1 = ((uint64_t)end + KSM_PAGE - 1) / KSM_PAGE;
		if (p1 > d->base_npages)
			p1 = d->base_npages;
		if (p0 < p1)
			fn(k, d, p0, p1 - p0);
		pos = end;
	}
}

/* Reads up to 64 base pages; bit i of the result = page i is zero. */
static uint64_t base_zero_mask(struct ksm *k, struct kdom *d, uint64_t p0,
			       unsigned n)
{
	uint8_t *buf = k->scratch;
	uint64_t mask = 0;
	unsigned i;

	if (pread(d->base_fd, buf, (size_t)n * KSM_PAGE,
		  (off_t)(p0 * KSM_PAGE)) != (ssize_t)(n * KSM_PAGE))
		return 0;
	for (i = 0; i < n; i++)
		if (ksm_page_is_zero(buf + (size_t)i * KSM_PAGE))
			mask |= 1ULL << i;
	return mask;
}

static void mark_data(struct kdom *d, uint64_t p)
{
	if (!(d->base_flags[p] & KB_DATA))
		d->base_data_pages++;
	d->base_flags[p] |= KB_DATA;
}

/* Allocated but zero base pages read like holes: a guest's first write
 * to a hole allocates one (the copy-on-write fault reads the page cache
 * first).  Only pages with other content are data. */
static void init_extent(struct ksm *k, struct kdom *d, uint64_t p0,
			uint64_t n)
{
	uint64_t p, zero;
	unsigned i, c;

	for (p = p0; p < p0 + n; p += c) {
		c = (unsigned)(p0 + n - p < 64 ? p0 + n - p : 64);
		zero = base_zero_mask(k, d, p, c);
		for (i = 0; i < c; i++)
			if (!(zero & (1ULL << i)))
				mark_data(d, p + i);
	}
}

int kbase_init(struct ksm *k, struct kdom *d)
{
	base_extents(k, d, init_extent);
	return 0;
}

bool kbase_has_data(const struct kdom *d, uint64_t pfn)
{
	return d->base_fd >= 0 && pfn < d->base_npages &&
	       (d->base_flags[pfn] & KB_DATA);
}

int kbase_read(struct kdom *d, uint64_t pfn, void *buf)
{
	return pread(d->base_fd, buf, KSM_PAGE, (off_t)(pfn * KSM_PAGE)) ==
	       KSM_PAGE ? 0 : -EIO;
}

/* The hash of base[g], computed once (pread does not allocate holes). */
int kbase_hash(struct ksm *k, struct kdom *d, uint64_t pfn, uint64_t *h)
{
	if (!kbase_has_data(d, pfn))
		return -ENOENT;
	if (!(d->base_flags[pfn] & KB_HASHED)) {
		if (kbase_read(d, pfn, k->scratch) != 0)
			return -EIO;
		d->base_hash[pfn] = ksm_hash_page(k, k->scratch);
		d->base_flags[pfn] |= KB_HASHED;
	}
	*h = d->base_hash[pfn];
	return 0;
}

/* True when no VM of the domain reads base[g] (except `leaving`). */
static bool base_unread(struct ksm *k, struct kdom *d, uint64_t pfn,
			const struct ksm_vm *leaving)
{
	struct ksm_vm *vm;
	uint32_t r, idx;
	uint64_t e;

	for (vm = k->vms; vm; vm = vm->next) {
		if (vm->dom != d || !vm->uses_base || vm == leaving || vm->dead)
			continue;
		if (!kvm_locate(vm, pfn * KSM_PAGE, &r, &idx))
			continue;
		if (kpm_read(k, kpage_hva(vm, r, idx), 1, &e) != 0 ||
		    !kpm_private(e))
			return false;
	}
	return true;
}

/* May base[g] take new content?  No users, and nobody reads it. */
bool kbase_writable(struct ksm *k, struct kdom *d, uint64_t pfn)
{
	if (d->base_fd < 0 || pfn >= d->base_npages || d->base_refs[pfn])
		return false;
	return base_unread(k, d, pfn, NULL);
}

int kbase_write(struct ksm *k, struct kdom *d, uint64_t pfn, const void *buf)
{
	if (pwrite(d->base_fd, buf, KSM_PAGE, (off_t)(pfn * KSM_PAGE)) !=
	    KSM_PAGE)
		return -EIO;
	mark_data(d, pfn);
	d->base_flags[pfn] |= KB_HASHED;
	d->base_hash[pfn] = ksm_hash_page(k, buf);
	return 0;
}

void kbase_ref(struct kdom *d, uint64_t pfn)
{
	if (d->base_refs[pfn]++ == 0)
		d->base_used++;
}

/* Punches base[g] when it has no users and nobody reads it. */
static void base_punch(struct ksm *k, struct kdom *d, uint64_t pfn,
		       const struct ksm_vm *leaving)
{
	if (k->destroying || !base_unread(k, d, pfn, leaving))
		return;
	if (fallocate(d->base_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)(pfn * KSM_PAGE), KSM_PAGE) == 0) {
		if (d->base_flags[pfn] & KB_DATA)
			d->base_data_pages--;
		d->base_flags[pfn] = 0;
	}
}

/* A new base page that no page joined after all (all changed). */
void kbase_drop_unused(struct ksm *k, struct kdom *d, uint64_t pfn)
{
	if (pfn < d->base_npages && d->base_refs[pfn] == 0)
		base_punch(k, d, pfn, NULL);
}

/* A page left state BASE at g.  The last one punches base[g] back to a
 * hole, unless some VM still reads it (a page never written since base[g]
 * got data: only possible with a pre-populated base). */
void kbase_unref(struct ksm *k, struct kdom *d, uint64_t pfn,
		 const struct ksm_vm *leaving)
{
	if (pfn >= d->base_npages || d->base_refs[pfn] == 0)
		return;
	if (--d->base_refs[pfn])
		return;
	d->base_used--;
	base_punch(k, d, pfn, leaving);
}

/* ------------------------------------------------ zero page reclaim */

/* Bit i set: the VM does not map base page p0+i now (outside its RAM,
 * its own copy, or nothing mapped: a later read faults it in again). */
static uint64_t vm_unmapped_mask(struct ksm *k, struct ksm_vm *vm,
				uint64_t p0, unsigned n)
{
	uint64_t mask = n == 64 ? ~0ULL : (1ULL << n) - 1, pm[64], a, b, p;
	uint32_t r;

	for (r = 0; r < vm->nranges; r++) {
		uint64_t r0 = vm->r[r].gpa / KSM_PAGE, r1 = r0 + vm->r[r].npages;

		a = p0 > r0 ? p0 : r0;
		b = p0 + n < r1 ? p0 + n : r1;
		if (a >= b)
			continue;
		if (kpm_read(k, vm->r[r].hva + (a - r0) * KSM_PAGE,
			     (unsigned)(b - a), pm) != 0)
			return 0;
		for (p = a; p < b; p++)
			if ((pm[p - a] & PM_PRESENT) && (pm[p - a] & PM_FILE))
				mask &= ~(1ULL << (p - p0));
	}
	return mask;
}

static void sweep_extent(struct ksm *k, struct kdom *d, uint64_t p0,
			 uint64_t n)
{
	struct ksm_vm *vm;
	uint64_t p, mask, zero, run;
	unsigned i, j, c;

	for (p = p0; p < p0 + n; p += c) {
		c = (unsigned)(p0 + n - p < 64 ? p0 + n - p : 64);
		mask = 0;
		for (i = 0; i < c; i++)
			if (!(d->base_flags[p + i] & KB_DATA))
				mask |= 1ULL << i;
		for (vm = k->vms; vm && mask; vm = vm->next)
			if (vm->dom == d && vm->uses_base && !vm->dead)
				mask &= vm_unmapped_mask(k, vm, p, c);
		d->sweep_left += c - (unsigned)__builtin_popcountll(mask);
		if (!mask)
			continue;
		/* never trust "not data": content we did not write is kept */
		zero = base_zero_mask(k, d, p, c);
		for (i = 0; i < c; i++)
			if ((mask & (1ULL << i)) && !(zero & (1ULL << i))) {
				mark_data(d, p + i);
				mask &= ~(1ULL << i);
			}
		for (i = 0; i < c; i = j) {
			if (!(mask & (1ULL << i))) {
				j = i + 1;
				continue;
			}
			for (j = i; j < c && (mask & (1ULL << j)); j++)
				;
			run = j - i;
			fallocate(d->base_fd,
				  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				  (off_t)((p + i) * KSM_PAGE),
				  (off_t)(run * KSM_PAGE));
			CTR_ADD(k->c.base_zero_reclaimed, run);
		}
	}
}

/*
 * Gives back the zero pages the base memfd collects: every guest write to
 * a base hole allocates one, which only wastes memory once no VM of the
 * domain maps it (each has its own copy, or nothing mapped there: pagemap
 * tells).  Pages some VM maps stay: they are shared.  Punching a zero page is
 * safe at any time (a reader would see zeros either way), and content is
 * re-checked first.  Runs only when the memfd holds noticeably more pages
 * than ksm's own data, so an idle pass costs one fstat.
 */
void kbase_sweep(struct ksm *k, struct kdom *d)
{
	struct stat st;
	uint64_t alloc;

	if (d->base_fd < 0 || fstat(d->base_fd, &st) != 0)
		return;
	alloc = (uint64_t)st.st_blocks * 512 / KSM_PAGE;
	if (alloc <= d->base_data_pages + d->base_sweep_slack)
		return;
	d->sweep_left = 0;
	base_extents(k, d, sweep_extent);
	/* what stayed is in use; sweep again when 1024 more pages pile up */
	d->base_sweep_slack = d->sweep_left + 1024;
}
