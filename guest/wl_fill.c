/*
 * wl_fill.c - the `fill` workload: memory with a known amount of sharable
 * content, for the same-page merging tests and benchmarks.
 *
 *   fill mib=N [identical=P] [zero=Q] [seed=S] [shuffle=0|1]
 *        [hold=SECONDS] [check=0|1]
 *
 * Region page i gets content index c = i (shuffle=0) or a seeded
 * permutation of i (shuffle=1).  c alone decides the class (exactly P % of
 * every 100 indices identical, Q % zero, the rest unique) and the content
 * of identical pages, so VMs running the same args hold the same identical
 * pages at the same GPAs (shuffle=0) or at seed-dependent GPAs (shuffle=1,
 * the cross-GPA case).  Unique pages depend on the seed; the default seed
 * comes from the TSC so that VMs differ unless told otherwise.  Zero pages
 * are written with zeros so that they are resident.  See patterns.h.
 */
#include "workload.h"

static struct {
	uint64_t seed;
	unsigned p, q;
	bool shuffle, check;
	int64_t hold;             /* seconds; -1 = forever */
	struct gregion region;
} fl;

static void fill_setup(struct wl_args *a)
{
	uint64_t mib = (uint64_t)args_need(a, "mib", 1, 1 << 20);
	fl.p = (unsigned)args_int(a, "identical", 0, 0, 100);
	fl.q = (unsigned)args_int(a, "zero", 0, 0, 100);
	if (fl.p + fl.q > 100)
		args_fail(a, "identical=%u + zero=%u exceeds 100 %%", fl.p,
			  fl.q);
	fl.seed = args_u64(a, "seed", dvm_mix64(guest_rdtsc()));
	fl.shuffle = args_int(a, "shuffle", 0, 0, 1);
	fl.hold = args_int(a, "hold", 0, -1, 100000000);
	fl.check = args_int(a, "check", 0, 0, 1);
	args_done(a);
	wl_alloc_region("fill", &fl.region, mib << 8);
	gprintf("fill: mib=%lu identical=%u zero=%u seed=0x%lx shuffle=%d "
		"gpa=0x%lx\n", mib, fl.p, fl.q, fl.seed, fl.shuffle,
		fl.region.ext[0].gpa);
}

/* Writes (write=true) or checks page i; returns mismatched words. */
static uint64_t fill_page(uint64_t i, bool write, uint64_t counts[3])
{
	uint64_t n = fl.region.npages;
	uint64_t c = dvm_fill_content_index(fl.seed, fl.shuffle, n, i);
	unsigned cls = dvm_fill_class(c, fl.p, fl.q);
	bool zero = cls == DVM_FILL_ZERO;
	uint64_t base = zero ? 0 : dvm_fill_base(cls, fl.seed, c);
	uint64_t *p = wl_page(&fl.region, i);
	if (counts)
		counts[cls]++;
	if (write) {
		if (zero)
			wl_page_zero(p);
		else
			wl_page_write(p, base);
		return 0;
	}
	if (!wl_page_diff(p, base, zero))
		return 0;
	return wl_report_page("fill", p, base, zero);
}

static int fill_run(unsigned cpu)
{
	(void)cpu;
	uint64_t n = fl.region.npages, counts[3] = { 0, 0, 0 };
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < n; i++) {
		guest_service_every(i);
		fill_page(i, true, counts);
	}
	gprintf("fill: done pages=%lu identical=%lu zero=%lu unique=%lu "
		"ms=%lu\n", n, counts[DVM_FILL_IDENTICAL],
		counts[DVM_FILL_ZERO], counts[DVM_FILL_UNIQUE],
		(now_ns() - t0) / NS_PER_MS);
	hc_result(DVM_RESULT_FILL_PAGES, n);

	if (fl.hold < 0) {
		gprintf("fill: holding until stopped\n");
		for (;;)
			guest_wait(HC_WAIT_FOREVER);
	}
	if (fl.hold > 0) {
		gprintf("fill: holding %ld s\n", fl.hold);
		sleep_ns((uint64_t)fl.hold * NS_PER_SEC);
	}
	if (fl.check) {
		uint64_t bad = 0;
		for (uint64_t i = 0; i < n; i++) {
			guest_service_every(i);
			bad += fill_page(i, false, 0);
		}
		if (bad) {
			gprintf("fill: check FAILED: %lu words differ\n", bad);
			return GUEST_EXIT_MISMATCH;
		}
		gprintf("fill: check ok pages=%lu\n", n);
	}
	return GUEST_EXIT_OK;
}

const struct workload wl_fill = {
	.name = "fill",
	.usage = "mib=N [identical=P] [zero=Q] [seed=S] [shuffle=0|1] "
		 "[hold=SECONDS|-1] [check=0|1]",
	.setup = fill_setup,
	.run = fill_run,
};
