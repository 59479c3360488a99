/*
 * region.c - multi-page allocations addressed by page index.
 *
 * Owns: struct gregion (a few extents of contiguous pages) on top of
 * palloc.  Workloads use regions for their working sets so that a large
 * allocation survives the PCI hole and fragmentation, while page i of a
 * region sits at a predictable GPA on a freshly booted guest (see
 * dvm_first_region_gpa in patterns.h): whole 2 MiB blocks are taken first,
 * in address order, and the unused tail of the last block is given back.
 * Also compiled on the host by tests/unit/test_guest_alloc.c.
 */
#include "guest.h"

/* Appends [gpa, gpa + n pages) to r, merging with the last extent when
 * contiguous.  Returns -1 when r has no extent slot left. */
static int region_add(struct gregion *r, uint64_t gpa, uint64_t n)
{
	if (r->next > 0) {
		struct gextent *last = &r->ext[r->next - 1];
		if (last->gpa + (last->npages << GUEST_PAGE_SHIFT) == gpa) {
			last->npages += n;
			r->npages += n;
			return 0;
		}
	}
	if (r->next == GREGION_MAX_EXT)
		return -1;
	r->ext[r->next].gpa = gpa;
	r->ext[r->next].npages = n;
	r->next++;
	r->npages += n;
	return 0;
}

void region_free(struct gregion *r)
{
	for (unsigned i = 0; i < r->next; i++)
		palloc_free_pages(r->ext[i].gpa, r->ext[i].npages);
	r->next = 0;
	r->npages = 0;
}

/* One greedy pass; returns 0 when r holds want pages.  On failure r keeps
 * what it got (the caller frees it). */
static int region_fill(struct gregion *r, uint64_t want)
{
	/* Whole 2 MiB blocks while at least part of one is wanted. */
	while (r->npages < want) {
		uint64_t gpa = palloc_try_contig(GUEST_2M_PAGES, GUEST_2M_PAGES);
		if (!gpa)
			break;
		uint64_t need = want - r->npages;
		uint64_t take = need < GUEST_2M_PAGES ? need : GUEST_2M_PAGES;
		if (take < GUEST_2M_PAGES)
			palloc_free_pages(gpa + (take << GUEST_PAGE_SHIFT),
					  GUEST_2M_PAGES - take);
		if (region_add(r, gpa, take) < 0) {
			palloc_free_pages(gpa, take);
			return -1;
		}
	}
	/* Then the largest runs we can find, halving the request. */
	uint64_t chunk = GUEST_2M_PAGES;
	while (r->npages < want) {
		uint64_t need = want - r->npages;
		uint64_t n = need < chunk ? need : chunk;
		uint64_t gpa = palloc_try_contig(n, 1);
		if (!gpa) {
			if (chunk == 1)
				return -1;
			chunk /= 2;
			continue;
		}
		if (region_add(r, gpa, n) < 0) {
			palloc_free_pages(gpa, n);
			return -1;
		}
	}
	return 0;
}

int region_alloc(struct gregion *r, uint64_t npages)
{
	r->next = 0;
	r->npages = 0;
	if (npages == 0)
		return -1;
	if (region_fill(r, npages) == 0)
		return 0;
	region_free(r);
	/* Ask the pressure hook once, for the shortfall (or for everything
	 * when enough pages are free but too fragmented), then retry. */
	uint64_t nfree = palloc_free_count();
	uint64_t need = nfree < npages ? npages - nfree : npages;
	if (palloc_pressure(need) > 0 && region_fill(r, npages) == 0)
		return 0;
	region_free(r);
	return -1;
}

uint64_t region_page_gpa(const struct gregion *r, uint64_t index)
{
	for (unsigned i = 0; i < r->next; i++) {
		if (index < r->ext[i].npages)
			return r->ext[i].gpa + (index << GUEST_PAGE_SHIFT);
		index -= r->ext[i].npages;
	}
	return 0;
}
