/*
 * wl_dirtyset.c - the `dirtyset` workload: a known set of dirty pages for
 * the dirty-log test.
 *
 *   dirtyset mib=N count=K [seed=S]
 *
 * 1. Allocate N MiB as one contiguous region (the VM's first allocation,
 *    so it starts at dvm_first_region_gpa()) and write word 0 of every page
 *    once (dvm_dirtyset_value(seed, i, 1)).
 * 2. HC_RESULT(DVM_RESULT_REGION_GPA, start GPA), then HC_READY(1): the host
 *    enables/clears the dirty log and releases the guest.
 * 3. Write word 0 of exactly the K pages dvm_dirtyset_page(seed, N*256, k),
 *    k = 0..K-1 (distinct), each once, with dvm_dirtyset_value(seed, i, 2).
 *    Nothing else in the region is written between the two READYs: the
 *    console buffers, stack and allocator bitmap all lie outside it.
 * 4. HC_READY(2), then exit 0.
 */
#include "workload.h"

static struct {
	uint64_t seed, count;
	struct gregion region;
} ds;

static void dirtyset_setup(struct wl_args *a)
{
	uint64_t mib = (uint64_t)args_need(a, "mib", 1, 1 << 20);
	ds.count = (uint64_t)args_need(a, "count", 0, INT64_MAX);
	ds.seed = args_u64(a, "seed", 1);
	args_done(a);
	if (ds.count > mib << 8)
		args_fail(a, "count=%lu exceeds the region's %lu pages",
			  ds.count, mib << 8);
	wl_alloc_region("dirtyset", &ds.region, mib << 8);
	if (!region_contiguous(&ds.region)) {
		gprintf("dirtyset: no contiguous %lu MiB in guest RAM\n", mib);
		guest_exit(GUEST_EXIT_NOMEM);
	}
}

static int dirtyset_run(unsigned cpu)
{
	(void)cpu;
	volatile uint64_t *base =
		(volatile uint64_t *)(uintptr_t)ds.region.ext[0].gpa;
	uint64_t n = ds.region.npages;
	const uint64_t words = GUEST_PAGE_SIZE / sizeof(uint64_t);

	for (uint64_t i = 0; i < n; i++)
		base[i * words] = dvm_dirtyset_value(ds.seed, i, 1);
	gprintf("dirtyset: touched pages=%lu gpa=0x%lx\n", n,
		ds.region.ext[0].gpa);
	hc_result(DVM_RESULT_REGION_GPA, ds.region.ext[0].gpa);
	hc_ready(DVM_READY_TOUCHED);

	for (uint64_t k = 0; k < ds.count; k++) {
		uint64_t i = dvm_dirtyset_page(ds.seed, n, k);
		base[i * words] = dvm_dirtyset_value(ds.seed, i, 2);
	}
	hc_ready(DVM_READY_DIRTIED);
	gprintf("dirtyset: done pages=%lu count=%lu\n", n, ds.count);
	return GUEST_EXIT_OK;
}

const struct workload wl_dirtyset = {
	.name = "dirtyset",
	.usage = "mib=N count=K [seed=S]",
	.setup = dirtyset_setup,
	.run = dirtyset_run,
};
