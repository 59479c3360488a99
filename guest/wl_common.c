/*
 * wl_common.c - helpers shared by the workloads.
 *
 * Owns: allocation with a clear out-of-memory exit, splitting a working set
 * between vCPUs, and mismatch reporting (at most WL_MISMATCH_LINES lines per
 * VM, so a broken page cannot flood the console with hypercalls).
 */
#include "workload.h"

#define WL_MISMATCH_LINES 10

static unsigned mismatch_lines;   /* all vCPUs */

static __attribute__((noreturn)) void nomem(const char *wl, uint64_t npages)
{
	gprintf("%s: cannot allocate %lu pages (%lu MiB): %lu MiB free\n", wl,
		npages, npages >> 8, palloc_free_count() >> 8);
	guest_exit(GUEST_EXIT_NOMEM);
}

void wl_alloc_region(const char *wl, struct gregion *r, uint64_t npages)
{
	if (region_alloc(r, npages) < 0)
		nomem(wl, npages);
}

uint64_t wl_alloc_contig(const char *wl, uint64_t npages)
{
	uint64_t gpa = palloc_alloc_contig(npages, 1);
	if (!gpa)
		nomem(wl, npages);
	return gpa;
}

void wl_share(uint64_t total, unsigned ncpus, unsigned cpu, uint64_t *first,
	      uint64_t *count)
{
	uint64_t base = total / ncpus, extra = total % ncpus;
	/* The first `extra` vCPUs take one page more. */
	*first = cpu * base + (cpu < extra ? cpu : extra);
	*count = base + (cpu < extra ? 1 : 0);
}

uint64_t wl_report_page(const char *wl, const uint64_t *p, uint64_t base,
			bool zero)
{
	uint64_t bad = 0;
	guest_barrier();
	for (unsigned w = 0; w < DVM_PAGE_WORDS; w++) {
		uint64_t want = zero ? 0 : dvm_word(base, w);
		uint64_t got = p[w];
		if (got == want)
			continue;
		bad++;
		if (__atomic_fetch_add(&mismatch_lines, 1, __ATOMIC_RELAXED) <
		    WL_MISMATCH_LINES)
			gprintf("%s: MISMATCH gpa=0x%lx word=%u expected=0x%lx "
				"got=0x%lx\n",
				wl, (uint64_t)(uintptr_t)&p[w], w, want, got);
	}
	return bad;
}

const char *wl_cpu_tag(unsigned cpu)
{
	static const char *const tags[HV_MAX_VCPUS] = {
		" cpu=0", " cpu=1", " cpu=2", " cpu=3", " cpu=4", " cpu=5",
		" cpu=6", " cpu=7", " cpu=8", " cpu=9", " cpu=10", " cpu=11",
		" cpu=12", " cpu=13", " cpu=14", " cpu=15",
	};
	if (guest_ncpus() <= 1 || cpu >= HV_MAX_VCPUS)
		return "";
	return tags[cpu];
}
