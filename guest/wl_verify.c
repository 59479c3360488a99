/*
 * wl_verify.c - the `verify` workload: memory must keep what was written.
 *
 *   verify mib=N [passes=P | seconds=S] [seed=X] [period_ms=T]
 *
 * Sweep k (k = 1, 2, ...) checks every page against pattern k-1 and then
 * writes pattern k; a last sweep only checks.  Pattern k of global page g is
 * dvm_verify_base(seed, k, g) spread over the words (patterns.h), so a page
 * that is stale (any earlier pass), zeroed, or another page's content is
 * caught.  With several vCPUs each sweeps its own share of the N MiB; the
 * global page index keeps the shares' contents distinct.  No hypercall per
 * page: output is one line per pass (one per ~2 s in seconds mode or
 * beyond 100 passes).
 *
 * period_ms=T starts each sweep at a multiple of T ms of the host's clock
 * (HC_TIME) and idles in between, so guests that run the same seed hold
 * the same pattern at the same time, whatever their drift: a scanner sees
 * their pages equal for most of every period (a sweep must fit in T).
 */
#include "workload.h"

#define PROGRESS_NS (2 * NS_PER_SEC)

static struct {
	uint64_t seed;
	uint64_t passes;          /* passes mode */
	uint64_t seconds;         /* seconds mode when nonzero */
	uint64_t period_ns;       /* sweeps start on host-clock multiples */
	struct gregion region[HV_MAX_VCPUS];
	uint64_t first[HV_MAX_VCPUS];
	uint64_t done[HV_MAX_VCPUS];
} vf;

static void verify_setup(struct wl_args *a)
{
	uint64_t mib = (uint64_t)args_need(a, "mib", 1, 1 << 20);
	if (args_has(a, "passes") && args_has(a, "seconds"))
		args_fail(a, "verify takes passes= or seconds=, not both");
	vf.passes = (uint64_t)args_int(a, "passes", 3, 1, 1000000000);
	vf.seconds = (uint64_t)args_int(a, "seconds", 0, 1, 100000000);
	vf.seed = args_u64(a, "seed", 1);
	vf.period_ns = (uint64_t)args_int(a, "period_ms", 0, 1, 3600000) *
		       1000000ULL;
	args_done(a);

	unsigned n = guest_ncpus();
	uint64_t total = mib << 8;
	for (unsigned c = 0; c < n; c++) {
		uint64_t count;
		wl_share(total, n, c, &vf.first[c], &count);
		wl_alloc_region("verify", &vf.region[c], count);
	}
	if (vf.seconds)
		gprintf("verify: mib=%lu cpus=%u seconds=%lu seed=0x%lx "
			"gpa=0x%lx\n", mib, n, vf.seconds, vf.seed,
			vf.region[0].ext[0].gpa);
	else
		gprintf("verify: mib=%lu cpus=%u passes=%lu seed=0x%lx "
			"gpa=0x%lx\n", mib, n, vf.passes, vf.seed,
			vf.region[0].ext[0].gpa);
}

/* One sweep over this vCPU's share: check pattern `check` (0 = none), then
 * write pattern `write` (0 = none).  Returns mismatched words. */
static uint64_t sweep(unsigned cpu, uint64_t check, uint64_t write)
{
	const struct gregion *r = &vf.region[cpu];
	uint64_t first = vf.first[cpu], bad = 0;
	for (uint64_t i = 0; i < r->npages; i++) {
		uint64_t *p = wl_page(r, i);
		guest_service_every(i);
		if (check) {
			uint64_t base = dvm_verify_base(vf.seed, check,
							first + i);
			if (wl_page_diff(p, base, false))
				bad += wl_report_page("verify", p, base, false);
		}
		if (write)
			wl_page_write(p, dvm_verify_base(vf.seed, write,
							 first + i));
	}
	return bad;
}

static int verify_run(unsigned cpu)
{
	uint64_t t0 = now_ns(), last = t0;
	uint64_t done = 0;
	/* A line per pass unless that would be many hypercalls. */
	bool every = !vf.seconds && vf.passes <= 100;
	for (uint64_t k = 1;; k++) {
		bool more = vf.seconds ? (k == 1 || now_ns() - t0 <
						    vf.seconds * NS_PER_SEC)
				       : k <= vf.passes;
		uint64_t bad = sweep(cpu, k - 1, more ? k : 0);
		if (bad) {
			gprintf("verify: FAILED pass %lu: %lu words differ%s\n",
				k - 1, bad, wl_cpu_tag(cpu));
			return GUEST_EXIT_MISMATCH;
		}
		if (k > 1) {
			done = k - 1;
			uint64_t t = now_ns();
			if (every || !more || t - last >= PROGRESS_NS) {
				gprintf("verify: pass %lu ok%s\n", done,
					wl_cpu_tag(cpu));
				last = t;
			}
		}
		if (!more)
			break;
		if (vf.period_ns) {
			uint64_t h = hc_time();
			sleep_ns((h / vf.period_ns + 1) * vf.period_ns - h);
		}
	}
	vf.done[cpu] = done;
	return GUEST_EXIT_OK;
}

static void verify_finish(void)
{
	uint64_t passes = vf.done[0];
	for (unsigned c = 1; c < guest_ncpus(); c++)
		if (vf.done[c] < passes)
			passes = vf.done[c];
	gprintf("verify: done passes=%lu mismatches=0\n", passes);
	hc_result(DVM_RESULT_VERIFY_PASSES, passes);
}

const struct workload wl_verify = {
	.name = "verify",
	.usage = "mib=N [passes=P | seconds=S] [seed=X]",
	.setup = verify_setup,
	.run = verify_run,
	.finish = verify_finish,
	.all_cpus = true,
};
