/*
 * wl_grow.c - the `grow` workload: an allocation that grows over time, for
 * ballooning under memory pressure.
 *
 *   grow mib=START step=MIB every_ms=T max=MIB [hold=S] [seed=X]
 *
 * Allocates START MiB, then another `step` MiB every `every_ms` ms until it
 * holds `max` MiB; every step writes its pages at once (page g of the whole
 * allocation gets dvm_verify_base(seed, 1, g)).  At `max` it checks every
 * page, holds the memory `hold` seconds (serving the balloon), and checks
 * again.  Allocations go through region_alloc, so a guest whose balloon
 * holds the memory it needs deflates it (the pressure hook) before an
 * allocation could fail; a failure still exits 4 ("cannot allocate").
 * Prints `grow: reached N MiB ...` and `grow: done mib=N mismatches=0`,
 * and RESULT 6 = MiB held.
 *
 * Phases (sched.c): with a `grow` event in sched=, it holds START MiB until
 * the first one, then grows as above (its first step at once).
 */
#include "workload.h"

static struct {
	uint64_t start, step, every_ms, max, seed;
	int64_t hold;
	unsigned nsteps, done;
	struct gregion *reg;       /* one region per step, from the heap */
} gw;

static void grow_setup(struct wl_args *a)
{
	gw.start = (uint64_t)args_need(a, "mib", 1, 1 << 20);
	gw.step = (uint64_t)args_need(a, "step", 1, 1 << 20);
	gw.every_ms = (uint64_t)args_need(a, "every_ms", 0, 100000000);
	gw.max = (uint64_t)args_need(a, "max", 1, 1 << 20);
	gw.hold = args_int(a, "hold", 0, 0, 100000000);
	gw.seed = args_u64(a, "seed", 1);
	if (gw.max < gw.start)
		args_fail(a, "max=%lu is below mib=%lu", gw.max, gw.start);
	uint64_t n = 1 + (gw.max - gw.start + gw.step - 1) / gw.step;
	if (n > 65536)
		args_fail(a, "%lu steps: at most 65536 (raise step)", n);
	sched_accept(a, 1u << SCHED_GROW);
	args_done(a);
	gw.nsteps = (unsigned)n;
	uint64_t bytes = n * sizeof(struct gregion);
	gw.reg = (struct gregion *)(uintptr_t)wl_alloc_contig(
		"grow", (bytes + GUEST_PAGE_SIZE - 1) >> GUEST_PAGE_SHIFT);
	gprintf("grow: mib=%lu step=%lu every_ms=%lu max=%lu hold=%ld "
		"seed=0x%lx\n", gw.start, gw.step, gw.every_ms, gw.max, gw.hold,
		gw.seed);
}

/* Writes (check=false) or checks region k, whose first global page is g0;
 * returns mismatched words. */
static uint64_t grow_pages(unsigned k, uint64_t g0, bool check)
{
	const struct gregion *r = &gw.reg[k];
	uint64_t bad = 0;
	for (uint64_t i = 0; i < r->npages; i++) {
		uint64_t *p = wl_page(r, i);
		uint64_t base = dvm_verify_base(gw.seed, 1, g0 + i);
		guest_service_every(i);
		if (!check)
			wl_page_write(p, base);
		else if (wl_page_diff(p, base, false))
			bad += wl_report_page("grow", p, base, false);
	}
	return bad;
}

static uint64_t grow_check_all(void)
{
	uint64_t bad = 0, g = 0;
	for (unsigned k = 0; k < gw.done; k++) {
		bad += grow_pages(k, g, true);
		g += gw.reg[k].npages;
	}
	return bad;
}

static int grow_run(unsigned cpu)
{
	(void)cpu;
	uint64_t t0 = now_ns(), held = 0, g = 0;
	while (held < gw.max) {
		uint64_t due = t0 + gw.done * gw.every_ms * NS_PER_MS;
		for (uint64_t t = now_ns(); t < due; t = now_ns())
			guest_wait(due - t);
		uint64_t mib = gw.done == 0 ? gw.start : gw.step;
		if (held + mib > gw.max)
			mib = gw.max - held;
		wl_alloc_region("grow", &gw.reg[gw.done], mib << 8);
		grow_pages(gw.done, g, false);
		g += mib << 8;
		held += mib;
		gw.done++;
		if (gw.done == 1 && held < gw.max && sched_has(SCHED_GROW)) {
			uint64_t t;
			while (!sched_passed(SCHED_GROW, t = now_ns())) {
				uint64_t ev = sched_next(t);
				guest_wait(ev - t < NS_PER_SEC ? ev - t : NS_PER_SEC);
			}
			gprintf("grow: growing from %lu MiB\n", held);
			/* the next step is due now */
			t0 = now_ns() - gw.every_ms * NS_PER_MS;
		}
	}
	gprintf("grow: reached %lu MiB in %lu ms steps=%u free=%lu MiB\n", held,
		(now_ns() - t0) / NS_PER_MS, gw.done, palloc_free_count() >> 8);
	uint64_t bad = grow_check_all();
	if (!bad && gw.hold) {
		sleep_ns((uint64_t)gw.hold * NS_PER_SEC);
		bad = grow_check_all();
	}
	if (bad) {
		gprintf("grow: FAILED: %lu words differ\n", bad);
		return GUEST_EXIT_MISMATCH;
	}
	gprintf("grow: done mib=%lu mismatches=0\n", held);
	hc_result(DVM_RESULT_GROW_MIB, held);
	return GUEST_EXIT_OK;
}

const struct workload wl_grow = {
	.name = "grow",
	.usage = "mib=START step=MIB every_ms=T max=MIB [hold=S] [seed=X] "
		 "[sched=MS:grow]",
	.setup = grow_setup,
	.run = grow_run,
};
