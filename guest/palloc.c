/*
 * palloc.c - the micro guest's page allocator.
 *
 * Owns: the free-page bitmap over the heap and alloc/free of 4 KiB pages,
 * 2 MiB blocks and aligned contiguous runs; the pressure hook; and for free
 * page reporting, which 2 MiB blocks were handed out since they were last
 * reported (a block never handed out was never written: nothing to report).
 *
 * Layout: bit i of the bitmap stands for the page at base + i * 4 KiB, where
 * base = align_down(heap_start, 2 MiB) and the bitmap spans up to the
 * highest RAM end, so index multiples of 512 are 2 MiB aligned GPAs.  A set
 * bit means "not available": allocated, below heap_start, in a hole between
 * ranges, or the bitmap itself (which occupies the first heap pages).
 * Invariant: nfree == number of clear bits.
 *
 * One spinlock serializes everything; allocations are rare (workloads
 * allocate their memory once), so contention does not matter.  The pressure
 * hook runs without the lock so that it may free pages.
 *
 * This file is also compiled on the host by tests/unit/test_guest_alloc.c
 * over malloc'd fake RAM: it uses nothing but the bitmap and the ranges.
 */
#include "guest.h"

int (*guest_alloc_pressure_hook)(uint64_t npages_needed);

/* One bit per 2 MiB block of the bitmap's span: set when an allocation
 * takes any page of it, cleared when palloc_claim_reportable() takes it.
 * Sized for the largest micro guest GPA space (HV_PGTABLE_MAXPD GiB). */
#define USED2M_BLOCKS ((uint64_t)HV_PGTABLE_MAXPD * 512)
static uint64_t used2m[USED2M_BLOCKS / 64];

static struct {
	uint64_t base;       /* GPA of bit 0, 2 MiB aligned */
	uint64_t npages;     /* bits in use */
	uint64_t nwords;
	uint64_t *bitmap;
	uint64_t meta_end;   /* GPA past the bitmap */
	uint64_t nfree;
	uint64_t total;      /* heap pages (bitmap pages included) */
	uint64_t hint;       /* every word below this one is full */
	const char *err;
	int lock;
} pa;

static void pa_lock(void)
{
	while (__atomic_exchange_n(&pa.lock, 1, __ATOMIC_ACQUIRE))
		while (__atomic_load_n(&pa.lock, __ATOMIC_RELAXED))
			__asm__ volatile("pause" ::: "memory");
}

static void pa_unlock(void)
{
	__atomic_store_n(&pa.lock, 0, __ATOMIC_RELEASE);
}

static inline bool bit_test(uint64_t i)
{
	return (pa.bitmap[i >> 6] >> (i & 63)) & 1;
}

/* Sets (val=true) or clears bits [i, i+n). */
static void bits_assign(uint64_t i, uint64_t n, bool val)
{
	while (n > 0) {
		uint64_t w = i >> 6, b = i & 63;
		uint64_t cnt = 64 - b < n ? 64 - b : n;
		uint64_t m = (cnt == 64) ? ~0ULL : (((1ULL << cnt) - 1) << b);
		if (val)
			pa.bitmap[w] |= m;
		else
			pa.bitmap[w] &= ~m;
		i += cnt;
		n -= cnt;
	}
}

/* True when all bits [i, i+n) equal val. */
static bool bits_all(uint64_t i, uint64_t n, bool val)
{
	while (n > 0) {
		uint64_t w = i >> 6, b = i & 63;
		uint64_t cnt = 64 - b < n ? 64 - b : n;
		uint64_t m = (cnt == 64) ? ~0ULL : (((1ULL << cnt) - 1) << b);
		uint64_t got = pa.bitmap[w] & m;
		if (got != (val ? m : 0))
			return false;
		i += cnt;
		n -= cnt;
	}
	return true;
}

/* First index in [i, limit) whose bit is clear (val=false) or set
 * (val=true), or limit if none.  limit <= pa.npages. */
static uint64_t bits_find(uint64_t i, bool val, uint64_t limit)
{
	while (i < limit) {
		uint64_t w = i >> 6;
		uint64_t word = val ? pa.bitmap[w] : ~pa.bitmap[w];
		word &= ~0ULL << (i & 63);
		if (word) {
			uint64_t r = (w << 6) + (uint64_t)__builtin_ctzll(word);
			return r < limit ? r : limit;
		}
		i = (w + 1) << 6;
	}
	return limit;
}

const char *palloc_error(void)
{
	return pa.err ? pa.err : "no error";
}

int palloc_init(const struct hv_memrange *ranges, unsigned nranges,
		uint64_t heap_start)
{
	uint64_t end = 0;
	const struct hv_memrange *home = 0;

	pa.err = 0;
	if (nranges == 0 || nranges > HV_MAX_MEMRANGES) {
		pa.err = "bad number of memory ranges";
		return -1;
	}
	for (unsigned i = 0; i < nranges; i++) {
		uint64_t e = ranges[i].gpa + ranges[i].len;
		if ((ranges[i].gpa | ranges[i].len) & (GUEST_PAGE_SIZE - 1) ||
		    e < ranges[i].gpa) {
			pa.err = "memory range not page aligned";
			return -1;
		}
		if (e > end)
			end = e;
		/* The bitmap goes at heap_start: it must be RAM. */
		if (heap_start >= ranges[i].gpa && heap_start < e)
			home = &ranges[i];
	}
	if (!home || (heap_start & (GUEST_PAGE_SIZE - 1))) {
		pa.err = "heap_start is not page aligned RAM";
		return -1;
	}
	pa.base = heap_start & ~(GUEST_2M_SIZE - 1);
	pa.npages = (end - pa.base) >> GUEST_PAGE_SHIFT;
	pa.nwords = (pa.npages + 63) / 64;
	uint64_t bm_pages = (pa.nwords * 8 + GUEST_PAGE_SIZE - 1) >>
			    GUEST_PAGE_SHIFT;
	pa.meta_end = heap_start + (bm_pages << GUEST_PAGE_SHIFT);
	if (pa.meta_end > home->gpa + home->len) {
		pa.err = "the allocator bitmap does not fit the first heap range";
		return -1;
	}
	pa.bitmap = (uint64_t *)(uintptr_t)heap_start;
	for (uint64_t w = 0; w < USED2M_BLOCKS / 64; w++)
		used2m[w] = 0;

	/* Everything unavailable, then open the heap part of each range. */
	for (uint64_t w = 0; w < pa.nwords; w++)
		pa.bitmap[w] = ~0ULL;
	pa.total = 0;
	for (unsigned i = 0; i < nranges; i++) {
		uint64_t s = ranges[i].gpa, e = s + ranges[i].len;
		if (s < heap_start)
			s = heap_start;
		if (s >= e)
			continue;
		bits_assign((s - pa.base) >> GUEST_PAGE_SHIFT,
			    (e - s) >> GUEST_PAGE_SHIFT, false);
		pa.total += (e - s) >> GUEST_PAGE_SHIFT;
	}
	/* Overlapping ranges would make the count lie: reject them. */
	uint64_t clear = 0;
	for (uint64_t w = 0; w < pa.nwords; w++)
		clear += 64 - (uint64_t)__builtin_popcountll(pa.bitmap[w]);
	if (clear != pa.total) {
		pa.err = "memory ranges overlap";
		return -1;
	}
	bits_assign((heap_start - pa.base) >> GUEST_PAGE_SHIFT, bm_pages, true);
	pa.nfree = pa.total - bm_pages;
	pa.hint = 0;
	return 0;
}

/* First-fit search for n clear bits starting at a multiple of align.
 * Caller holds the lock.  Returns the index or pa.npages. */
static uint64_t find_run(uint64_t n, uint64_t align)
{
	uint64_t i = bits_find(pa.hint << 6, false, pa.npages);
	/* Every word before the first clear bit is full. */
	pa.hint = i >> 6;
	while (i < pa.npages) {
		i = (i + align - 1) & ~(align - 1);
		if (i >= pa.npages || pa.npages - i < n)
			break;
		/* Scan no further than the run needs: single-page
		 * allocations must not walk the whole free heap. */
		uint64_t set = bits_find(i, true, i + n);
		if (set == i + n)
			return i;
		i = bits_find(set, false, pa.npages);
	}
	return pa.npages;
}

uint64_t palloc_try_contig(uint64_t npages, uint64_t align_pages)
{
	if (npages == 0 || align_pages == 0 ||
	    (align_pages & (align_pages - 1)) || !pa.bitmap)
		return 0;
	uint64_t gpa = 0;
	pa_lock();
	if (pa.nfree >= npages) {
		uint64_t i = find_run(npages, align_pages);
		if (i < pa.npages) {
			bits_assign(i, npages, true);
			pa.nfree -= npages;
			gpa = pa.base + (i << GUEST_PAGE_SHIFT);
			for (uint64_t b = i >> 9; b <= (i + npages - 1) >> 9 &&
			     b < USED2M_BLOCKS; b++)
				used2m[b >> 6] |= 1ULL << (b & 63);
		}
	}
	pa_unlock();
	return gpa;
}

int palloc_take(uint64_t gpa, uint64_t npages)
{
	if (!pa.bitmap || (gpa & (GUEST_PAGE_SIZE - 1)) || npages == 0 ||
	    gpa < pa.base)
		return -1;
	uint64_t i = (gpa - pa.base) >> GUEST_PAGE_SHIFT;
	if (i >= pa.npages || pa.npages - i < npages)
		return -1;
	int rc = -1;
	pa_lock();
	/* all or nothing: a page in use (or not heap) refuses the whole run */
	if (bits_all(i, npages, false)) {
		bits_assign(i, npages, true);
		pa.nfree -= npages;
		for (uint64_t b = i >> 9; b <= (i + npages - 1) >> 9 &&
		     b < USED2M_BLOCKS; b++)
			used2m[b >> 6] |= 1ULL << (b & 63);
		rc = 0;
	}
	pa_unlock();
	return rc;
}

unsigned palloc_claim_reportable(uint64_t *gpas, unsigned max, uint64_t keep)
{
	unsigned n = 0;
	if (!pa.bitmap)
		return 0;
	uint64_t nblocks = pa.npages >> 9;
	if (nblocks > USED2M_BLOCKS)
		nblocks = USED2M_BLOCKS;
	pa_lock();
	for (uint64_t w = 0; w < (nblocks + 63) / 64 && n < max; w++) {
		uint64_t word = used2m[w];
		while (word && n < max && pa.nfree >= keep + GUEST_2M_PAGES) {
			uint64_t b = (w << 6) + (uint64_t)__builtin_ctzll(word);
			word &= word - 1;
			if (b >= nblocks)
				break;
			uint64_t i = b << 9;
			if (!bits_all(i, GUEST_2M_PAGES, false))
				continue;        /* in use: stays marked */
			bits_assign(i, GUEST_2M_PAGES, true);
			pa.nfree -= GUEST_2M_PAGES;
			used2m[w] &= ~(1ULL << (b & 63));
			gpas[n++] = pa.base + (i << GUEST_PAGE_SHIFT);
		}
	}
	pa_unlock();
	return n;
}

int palloc_pressure(uint64_t npages_needed)
{
	int (*hook)(uint64_t) = __atomic_load_n(&guest_alloc_pressure_hook,
						__ATOMIC_ACQUIRE);
	return hook ? hook(npages_needed) : 0;
}

uint64_t palloc_alloc_contig(uint64_t npages, uint64_t align_pages)
{
	uint64_t gpa = palloc_try_contig(npages, align_pages);
	if (!gpa && npages && palloc_pressure(npages) > 0)
		gpa = palloc_try_contig(npages, align_pages);
	return gpa;
}

int palloc_free_pages(uint64_t gpa, uint64_t npages)
{
	if (!pa.bitmap || (gpa & (GUEST_PAGE_SIZE - 1)) || npages == 0 ||
	    gpa < pa.meta_end || gpa < pa.base)
		return -1;
	uint64_t i = (gpa - pa.base) >> GUEST_PAGE_SHIFT;
	if (i >= pa.npages || pa.npages - i < npages)
		return -1;
	int rc = -1;
	pa_lock();
	/* Freeing anything not allocated (a hole, a free page) is refused
	 * as a whole: it would corrupt nfree and hand out holes. */
	if (bits_all(i, npages, true)) {
		bits_assign(i, npages, false);
		pa.nfree += npages;
		if ((i >> 6) < pa.hint)
			pa.hint = i >> 6;
		rc = 0;
	}
	pa_unlock();
	return rc;
}

uint64_t palloc_alloc_page(void)
{
	return palloc_alloc_contig(1, 1);
}

int palloc_free_page(uint64_t gpa)
{
	return palloc_free_pages(gpa, 1);
}

uint64_t palloc_alloc_2m(void)
{
	return palloc_alloc_contig(GUEST_2M_PAGES, GUEST_2M_PAGES);
}

int palloc_free_2m(uint64_t gpa)
{
	if (gpa & (GUEST_2M_SIZE - 1))
		return -1;
	return palloc_free_pages(gpa, GUEST_2M_PAGES);
}

uint64_t palloc_free_count(void)
{
	return __atomic_load_n(&pa.nfree, __ATOMIC_RELAXED);
}

uint64_t palloc_total_count(void)
{
	return pa.total;
}

uint64_t palloc_meta_end(void)
{
	return pa.meta_end;
}

bool palloc_page_busy(uint64_t gpa)
{
	if (gpa < pa.base || ((gpa - pa.base) >> GUEST_PAGE_SHIFT) >= pa.npages)
		return true;
	return bit_test((gpa - pa.base) >> GUEST_PAGE_SHIFT);
}
