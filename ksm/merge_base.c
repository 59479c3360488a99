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
#include <limits.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

/* Reads up to 64 base pages, all allocated (inside a SEEK_DATA extent,
 * clipped to the mapping); bit i of the result = page i is zero. */
static uint64_t base_zero_mask(struct kdom *d, uint64_t p0, unsigned n)
{
	const uint8_t *buf = d->base_map + p0 * KSM_PAGE;
	uint64_t mask = 0;
	unsigned i;

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

	(void)k;   /* a base_extents() callback */
	for (p = p0; p < p0 + n; p += c) {
		c = (unsigned)(p0 + n - p < 64 ? p0 + n - p : 64);
		zero = base_zero_mask(d, p, c);
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

/* The memfd is GPA-sized by hv-core; it is only ever extended here, so
 * every mapped page lies inside the file (no SIGBUS). */
int kbase_map(struct kdom *d)
{
	struct stat st;
	uint64_t want = d->base_npages * KSM_PAGE;
	void *p;

	if (d->base_fd < 0 || d->base_map_pages >= d->base_npages)
		return 0;
	if (fstat(d->base_fd, &st) != 0)
		return -errno;
	if ((uint64_t)st.st_size < want && ftruncate(d->base_fd, (off_t)want))
		return -errno;
	p = mmap(NULL, want, PROT_READ, MAP_SHARED | MAP_NORESERVE,
		 d->base_fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	kbase_unmap(d);
	d->base_map = p;
	d->base_map_pages = d->base_npages;
	return 0;
}

void kbase_unmap(struct kdom *d)
{
	if (d->base_map)
		munmap((void *)d->base_map, d->base_map_pages * KSM_PAGE);
	d->base_map = NULL;
	d->base_map_pages = 0;
}

/* base[g] in place, or NULL when it holds no data (never a hole).  The
 * mapping covers base_npages: kbase_map() follows every kdom_grow_base(). */
const uint8_t *kbase_ptr(const struct kdom *d, uint64_t pfn)
{
	return kbase_has_data(d, pfn) ? d->base_map + pfn * KSM_PAGE : NULL;
}

/* The hash of base[g], computed once (never faults a hole in). */
int kbase_hash(struct ksm *k, struct kdom *d, uint64_t pfn, uint64_t *h)
{
	const uint8_t *p = kbase_ptr(d, pfn);

	if (!p)
		return -ENOENT;
	if (!(d->base_flags[pfn] & KB_HASHED)) {
		d->base_hash[pfn] = ksm_hash_page(k, p);
		d->base_flags[pfn] |= KB_HASHED;
	}
	*h = d->base_hash[pfn];
	return 0;
}

/* The VM's pagemap entry for page idx of range r, through a 64-entry
 * cache.  A page seen as the VM's own copy stays one until discarded:
 * ksm's discards patch the cache (kpm_forget), the balloon's show in the
 * state map, which callers check first.  A guest write makes a page its
 * own copy behind the cache's back, so a cached "not private" is stale
 * whenever the guest runs: with recheck, it is read again (the base rule
 * must not fall back to frames for it); else it only costs a merge.
 * k->pm_gen drops every cache at each pass and VM scan. */
int kpm_cached(struct ksm *k, struct ksm_vm *vm, uint32_t r, uint32_t idx,
	       uint64_t *e, bool recheck)
{
	const uint8_t *lo = kpage_hva(vm, r, idx & ~63u);
	bool fresh = false;
	uint32_t n;

	for (;;) {
		if (vm->pmc_gen != k->pm_gen || vm->pmc_hva != lo) {
			n = (uint32_t)(vm->r[r].npages - (idx & ~63u));
			if (n > 64)
				n = 64;
			if (kpm_read(k, lo, n, vm->pmc) != 0) {
				vm->pmc_hva = NULL;
				return -1;
			}
			vm->pmc_hva = lo;
			vm->pmc_gen = k->pm_gen;
			fresh = true;
		}
		*e = vm->pmc[idx & 63u];
		if (fresh || !recheck || kpm_private(*e))
			return 0;
		vm->pmc_hva = NULL;   /* read the chunk again */
	}
}

/* A page at g that does not read base[g] whatever it holds: ksm mapped a
 * frame over it (a copy-on-write copy of one included), or hv-core says
 * anonymous memory maps it (zeros mapped over it, or a balloon's).  A
 * frame over g is never base[g]'s own base frame: while that one lives,
 * base[g] is neither written nor punched. */
bool kbase_page_elsewhere(const struct ksm_vm *vm, uint32_t r, uint32_t idx,
			  hv_pstate_t st)
{
	if (hv_ps_flags(st) & HV_PF_BUSY)
		return false;
	if (vm->r[r].pg[idx].pflags & KP_REMAPPED)
		return true;
	/* only ksm maps base back over anonymous memory, under its lock */
	return vm->ops->anon_backed &&
	       vm->ops->anon_backed(vm->ctx, kpage_gpa(vm, r, idx));
}

/* base[g] reads zeros: a hole, or an allocated page of zeros ("not
 * data" is never trusted alone; only an allocated page is read, since a
 * read fault on a hole would allocate it). */
bool kbase_reads_zero(struct kdom *d, uint64_t pfn)
{
	off_t at = (off_t)(pfn * KSM_PAGE), pos;

	if (kbase_has_data(d, pfn))
		return false;
	pos = lseek(d->base_fd, at, SEEK_DATA);
	if (pos < 0)
		return errno == ENXIO;   /* no data from here on */
	if (pos != at)
		return true;             /* a hole at g */
	return pfn < d->base_map_pages &&
	       ksm_page_is_zero(d->base_map + pfn * KSM_PAGE);
}

/* Bit i: base page p0 + i reads zeros (see kbase_reads_zero), n <= 64. */
uint64_t kbase_zero_mask(struct kdom *d, uint64_t p0, unsigned n)
{
	uint64_t mask = 0, p, end = p0 + n;
	off_t pos = (off_t)(p0 * KSM_PAGE), dat, hole;

	while ((uint64_t)pos < end * KSM_PAGE) {
		dat = lseek(d->base_fd, pos, SEEK_DATA);
		if (dat < 0 || (uint64_t)dat >= end * KSM_PAGE)
			dat = (off_t)(end * KSM_PAGE);   /* holes to the end */
		for (p = (uint64_t)pos / KSM_PAGE; p < (uint64_t)dat / KSM_PAGE; p++)
			mask |= 1ULL << (p - p0);
		if ((uint64_t)dat >= end * KSM_PAGE)
			break;
		hole = lseek(d->base_fd, dat, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > end * KSM_PAGE)
			hole = (off_t)(end * KSM_PAGE);
		for (p = (uint64_t)dat / KSM_PAGE;
		     p < ((uint64_t)hole + KSM_PAGE - 1) / KSM_PAGE && p < end; p++)
			if (p < d->base_map_pages &&
			    ksm_page_is_zero(d->base_map + p * KSM_PAGE))
				mask |= 1ULL << (p - p0);
		pos = hole > dat ? hole : dat + KSM_PAGE;
	}
	for (p = p0; p < end; p++)
		if (kbase_has_data(d, p))
			mask &= ~(1ULL << (p - p0));
	return mask;
}

/*
 * Who reads base[g] through their mapping at g.  A page does not when ksm
 * or hv-core mapped something else there (kbase_page_elsewhere), or when
 * it is the VM's own anonymous copy (pagemap; the state map first: a page
 * the balloon took since the pagemap was read is no longer PRIVATE, and
 * one it is taking now is BUSY, which only the caller's own pages may
 * be).  With out (collect), a page that reads it only because its VM
 * never wrote g goes into out, up to max, to be isolated (isolate.c); a
 * VM without ops->zero, or a DEVICE page, cannot be.  Returns how many
 * went into out, or UINT_MAX when some page reads base[g] otherwise.
 */
static unsigned base_readers(struct ksm *k, struct kdom *d, uint64_t pfn,
			     const struct ksm_vm *leaving,
			     const struct kpage *mine, unsigned nmine,
			     struct kpage *out, unsigned max)
{
	struct ksm_vm *vm;
	uint32_t r, idx;
	hv_pstate_t st;
	unsigned i, n = 0;
	uint64_t e;

	for (vm = k->vms; vm; vm = vm->next) {
		if (vm->dom != d || !vm->uses_base || vm == leaving || vm->dead ||
		    !ksmvm_locate(vm, pfn * KSM_PAGE, &r, &idx))
			continue;
		st = kmap_get(vm, pfn);
		if (kbase_page_elsewhere(vm, r, idx, st))
			continue;
		for (i = 0; i < nmine && (mine[i].vm != vm || mine[i].r != r ||
					  mine[i].idx != idx); i++)
			;
		if (out && i < nmine)
			continue;
		if (hv_ps_state(st) != HV_PAGE_PRIVATE ||
		    ((hv_ps_flags(st) & HV_PF_BUSY) && i == nmine) ||
		    (out && ((hv_ps_flags(st) & HV_PF_DEVICE) ||
			     !vm->ops->zero)) ||
		    kpm_cached(k, vm, r, idx, &e, true) != 0)
			return UINT_MAX;
		if (kpm_private(e))
			continue;
		if (n == max)
			return UINT_MAX;
		out[n++] = (struct kpage){ vm, r, idx };
	}
	return n;
}

unsigned kbase_readers(struct ksm *k, struct kdom *d, uint64_t pfn,
		       const struct kpage *mine, unsigned nmine,
		       struct kpage *out, unsigned max)
{
	return base_readers(k, d, pfn, NULL, mine, nmine, out, max);
}

/* No VM of the domain reads base[g] through its mapping at g. */
static bool base_unread(struct ksm *k, struct kdom *d, uint64_t pfn,
			const struct ksm_vm *leaving,
			const struct kpage *mine, unsigned nmine)
{
	return base_readers(k, d, pfn, leaving, mine, nmine, NULL, 0) == 0;
}

/* ksm changed the backing of [hva, hva+len): cached entries say "not
 * the VM's own copy" now. */
void kpm_forget(struct ksm_vm *vm, const uint8_t *hva, uint64_t len)
{
	const uint8_t *lo = vm->pmc_hva, *x, *y;

	if (!lo)
		return;
	x = hva > lo ? hva : lo;
	y = hva + len < lo + 64 * KSM_PAGE ? hva + len : lo + 64 * KSM_PAGE;
	for (; x < y; x += KSM_PAGE)
		vm->pmc[(x - lo) / KSM_PAGE] = 0;
}

/*
 * The other VMs' pages at g that are their own written copies, not shared
 * and not busy, and for which match() holds: identical guests hold equal
 * content at equal GPAs, so one op takes the page of every VM at once,
 * compared against one reference that stays in cache, with no hash and
 * no table.  Their candidate-table nodes go (the op owns the pages).
 */
unsigned kbase_group(struct ksm *k, const struct ksm_vm *vm, uint64_t pfn,
		     struct kpage *out, unsigned max,
		     bool (*match)(struct ksm *k, const struct kpage *p,
				   const void *arg),
		     const void *arg)
{
	struct ksm_vm *p;
	struct kpage pg;
	uint32_t r, idx;
	hv_pstate_t st;
	unsigned n = 0;
	uint64_t e;

	for (p = k->vms; p && n < max; p = p->next) {
		if (p == vm || p->dom != vm->dom || !p->uses_base || p->dead ||
		    !ksmvm_locate(p, pfn * KSM_PAGE, &r, &idx))
			continue;
		st = kmap_get(p, pfn);
		if (hv_ps_state(st) != HV_PAGE_PRIVATE ||
		    (hv_ps_flags(st) & (HV_PF_BUSY | HV_PF_DEVICE)) ||
		    (p->r[r].pg[idx].pflags & KP_REMAPPED))
			continue;
		/* never read a page the guest did not write: that would
		 * fault a hole of the base memfd in */
		if (kpm_cached(k, p, r, idx, &e, false) != 0 ||
		    !kpm_private(e))
			continue;
		pg = (struct kpage){ p, r, idx };
		if (!match(k, &pg, arg))
			continue;
		if (p->r[r].pg[idx].pflags & KP_IN_CAND)
			kcand_del_page(k, p, r, idx);
		out[n++] = pg;
	}
	return n;
}

/* May base[g] take new content?  No users (no BASE page at g, and no
 * page elsewhere mapping it through its base frame), and nobody reads it. */
bool kbase_writable(struct ksm *k, struct kdom *d, uint64_t pfn,
		    const struct kpage *mine, unsigned nmine)
{
	if (d->base_fd < 0 || pfn >= d->base_npages || d->base_refs[pfn] ||
	    kbframe_of(d, pfn) != UINT32_MAX)
		return false;
	return base_unread(k, d, pfn, NULL, mine, nmine);
}

int kbase_write(struct kdom *d, uint64_t pfn, const void *buf,
		uint64_t hash)
{
	if (pwrite(d->base_fd, buf, KSM_PAGE, (off_t)(pfn * KSM_PAGE)) !=
	    KSM_PAGE)
		return -EIO;
	mark_data(d, pfn);
	d->base_flags[pfn] |= KB_HASHED;
	d->base_hash[pfn] = hash;
	return 0;
}

void kbase_ref(struct kdom *d, uint64_t pfn)
{
	if (d->base_refs[pfn]++ == 0) {
		d->base_used++;
		if (kbframe_of(d, pfn) != UINT32_MAX)
			d->bframes_alone--;
	}
}

/* Punches base[g] when it has no users and nobody reads it.  A base
 * frame is a user: pages at other GPAs map base[g] through it. */
static void base_punch(struct ksm *k, struct kdom *d, uint64_t pfn,
		       const struct ksm_vm *leaving)
{
	if (k->destroying || kbframe_of(d, pfn) != UINT32_MAX ||
	    !base_unread(k, d, pfn, leaving, NULL, 0))
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
 * got data: only possible with a pre-populated base) or pages at other
 * GPAs map it through its base frame. */
void kbase_unref(struct ksm *k, struct kdom *d, uint64_t pfn,
		 const struct ksm_vm *leaving)
{
	uint32_t f;

	if (pfn >= d->base_npages || d->base_refs[pfn] == 0)
		return;
	if (--d->base_refs[pfn])
		return;
	d->base_used--;
	if ((f = kbframe_of(d, pfn)) != UINT32_MAX) {
		if (d->frames[f].refs) {
			d->bframes_alone++;
			return;
		}
		if (d->frames[f].sn)
			ktab_del(k, d->stable[d->frames[f].slot],
				 d->frames[f].sn);
		d->frames_used--;
		kframe_release(d, f);
	}
	kbase_left(k, d, pfn, leaving);
}

/* base[g] holds nothing the store names any more (no BASE page at g, no
 * base frame): punch it, and have the pages that waited for it examined
 * again. */
void kbase_left(struct ksm *k, struct kdom *d, uint64_t pfn,
		const struct ksm_vm *leaving)
{
	struct ksm_vm *vm;
	uint32_t r, idx;

	base_punch(k, d, pfn, leaving);
	if (d->base_flags[pfn] & KB_DATA)
		return;
	/* base[g] is free: candidates at g that waited for it (scan.c,
	 * base_busy_wait) are examined again */
	for (vm = k->vms; vm; vm = vm->next)
		if (vm->dom == d && vm->uses_base && !vm->dead &&
		    ksmvm_locate(vm, pfn * KSM_PAGE, &r, &idx) &&
		    (vm->r[r].pg[idx].pflags & KP_IN_CAND))
			kbit_set(vm->r[r].todo, idx);
}

/* ------------------------------------------------ zero page reclaim */

/* The sweep's window: bit p - w0 of mapped[] set when some VM of d maps
 * base page p now.  A VM does not when p is outside its RAM, holds its
 * own copy, or has nothing mapped there (a later read faults it in
 * again).  False if a VM's page tables could not be read: then no page of
 * the window may be punched. */
#define SWEEP_WIN 4096u

static bool window_mapped(struct ksm *k, struct kdom *d, uint64_t w0,
			  uint64_t wn, uint64_t *mapped)
{
	struct ksm_vm *vm;
	uint64_t a, b;
	uint32_t r;

	memset(mapped, 0, SWEEP_WIN / 8);
	for (a = w0; a < w0 + wn && (d->base_flags[a] & KB_DATA); a++)
		;
	if (a == w0 + wn)
		return true;   /* all data: nothing to punch, nothing to read */
	for (vm = k->vms; vm; vm = vm->next) {
		if (vm->dom != d || !vm->uses_base || vm->dead)
			continue;
		for (r = 0; r < vm->nranges; r++) {
			uint64_t r0 = vm->r[r].gpa / KSM_PAGE,
				 r1 = r0 + vm->r[r].npages;

			a = w0 > r0 ? w0 : r0;
			b = w0 + wn < r1 ? w0 + wn : r1;
			if (a < b &&
			    kpm_file_mapped(k, vm->r[r].hva + (a - r0) * KSM_PAGE,
					    b - a, mapped, a - w0) != 0)
				return false;
		}
	}
	return true;
}

static void punch_run(struct ksm *k, struct kdom *d, uint64_t p, uint64_t n)
{
	if (!n)
		return;
	fallocate(d->base_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		  (off_t)(p * KSM_PAGE), (off_t)(n * KSM_PAGE));
	CTR_ADD(k->c.base_zero_reclaimed, n);
}

/* Runs of punchable pages carry across 64-page chunks, so an extent of
 * zero pages goes in one fallocate (each also zaps every mapping). */
static void sweep_extent(struct ksm *k, struct kdom *d, uint64_t p0,
			 uint64_t n)
{
	uint64_t mapped[SWEEP_WIN / 64];
	uint64_t p, mask, zero, run0 = p0, run = 0, w0 = p0, wend = p0;
	unsigned i, c;
	bool ok = false;

	for (p = p0; p < p0 + n; p += c) {
		c = (unsigned)(p0 + n - p < 64 ? p0 + n - p : 64);
		/* a long sweep lets the scanner's klock() waiters in (the
		 * caller pins d); the run found so far goes first, and what
		 * follows is read again: VMs may have come or gone */
		if (kscan_waiting(k)) {
			punch_run(k, d, run0, run);
			run = 0;
			kscan_yield(k);
			wend = p;
		}
		if (p >= wend) {   /* p is where a window starts: 64-aligned */
			w0 = p;
			wend = p0 + n - p < SWEEP_WIN ? p0 + n : p + SWEEP_WIN;
			ok = window_mapped(k, d, w0, wend - w0, mapped);
		}
		mask = 0;
		for (i = 0; i < c; i++)
			if (!(d->base_flags[p + i] & KB_DATA))
				mask |= 1ULL << i;
		mask = ok ? mask & ~mapped[(p - w0) / 64] : 0;
		d->sweep_left += c - (unsigned)__builtin_popcountll(mask);
		/* never trust "not data": content we did not write is kept */
		zero = mask ? base_zero_mask(d, p, c) : 0;
		for (i = 0; i < c; i++) {
			if ((mask & (1ULL << i)) && !(zero & (1ULL << i))) {
				mark_data(d, p + i);
				mask &= ~(1ULL << i);
			}
			if (mask & (1ULL << i)) {
				if (!run)
					run0 = p + i;
				run++;
			} else {
				punch_run(k, d, run0, run);
				run = 0;
			}
		}
	}
	punch_run(k, d, run0, run);
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
