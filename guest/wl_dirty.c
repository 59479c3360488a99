/*
 * wl_dirty.c - the `dirty` workload: a working set rewritten at a steady
 * rate, for dirty logging, merge races and scan-rate policy.
 *
 *   dirty mib=N rate=PCT [seconds=S|-1] [seed=X]
 *
 * Each vCPU owns a share of the N MiB and rewrites rate % of its pages per
 * second.  Work is spread in time: every step (at most 100 per second, or
 * one per page when the rate is lower) rewrites the pages that are due by
 * the TSC clock, then sleeps in HC_WAIT until the next step.  Page order is
 * a seeded permutation (dvm_dirty_page).  Each page carries a version kept
 * outside the working set; a rewrite first checks the page still holds its
 * current version's pattern (a stale or lost page is caught), and at the
 * end every page is checked once more.  Rates above the guest's speed just
 * run behind; the summary reports the rate achieved.
 *
 * Phases (sched.c): sched= events `idle` and `active` stop and resume the
 * rewrites (the set stays allocated and is still checked at the end); time
 * spent idle is not owed afterwards.  With report_ms=, vCPU 0 sends the
 * rewrites of all vCPUs so far as RESULT 10 on that period.
 */
#include "workload.h"

#define STEP_MIN_NS   (10 * NS_PER_MS)   /* <= 100 steps per second */
#define STEP_MAX_NS   NS_PER_SEC
#define PROGRESS_NS   (5 * NS_PER_SEC)

static struct {
	uint64_t seed, rate;
	int64_t seconds;                    /* -1 = forever */
	uint32_t *version;                  /* per global page */
	struct gregion region[HV_MAX_VCPUS];
	uint64_t first[HV_MAX_VCPUS];
	uint64_t rewrites[HV_MAX_VCPUS];
	uint64_t elapsed[HV_MAX_VCPUS];     /* ns */
	uint64_t live[HV_MAX_VCPUS];        /* rewrites so far, for reports */
	uint64_t total;
} dt;

static void dirty_setup(struct wl_args *a)
{
	uint64_t mib = (uint64_t)args_need(a, "mib", 1, 1 << 20);
	dt.rate = (uint64_t)args_need(a, "rate", 0, 100000);
	dt.seconds = args_int(a, "seconds", 10, -1, 100000000);
	dt.seed = args_u64(a, "seed", 1);
	sched_accept(a, 1u << SCHED_IDLE | 1u << SCHED_ACTIVE);
	args_done(a);

	unsigned n = guest_ncpus();
	dt.total = mib << 8;
	for (unsigned c = 0; c < n; c++) {
		uint64_t count;
		wl_share(dt.total, n, c, &dt.first[c], &count);
		wl_alloc_region("dirty", &dt.region[c], count);
	}
	uint64_t vpages = (dt.total * sizeof(uint32_t) + GUEST_PAGE_SIZE - 1) >>
			  GUEST_PAGE_SHIFT;
	dt.version = (uint32_t *)(uintptr_t)wl_alloc_contig("dirty", vpages);
	gprintf("dirty: mib=%lu cpus=%u rate=%lu%%/s seconds=%ld seed=0x%lx\n",
		mib, n, dt.rate, dt.seconds, dt.seed);
}

/* Checks page i (local) at its current version; returns mismatches. */
static uint64_t check_page(unsigned cpu, uint64_t i)
{
	uint64_t g = dt.first[cpu] + i;
	uint64_t *p = wl_page(&dt.region[cpu], i);
	uint64_t base = dvm_dirty_base(dt.seed, g, dt.version[g]);
	if (!wl_page_diff(p, base, false))
		return 0;
	return wl_report_page("dirty", p, base, false);
}

static void write_page(unsigned cpu, uint64_t i, uint32_t v)
{
	uint64_t g = dt.first[cpu] + i;
	wl_page_write(wl_page(&dt.region[cpu], i),
		      dvm_dirty_base(dt.seed, g, v));
	dt.version[g] = v;
}

static int mismatch(unsigned cpu, uint64_t bad)
{
	gprintf("dirty: FAILED: %lu words differ%s\n", bad, wl_cpu_tag(cpu));
	return GUEST_EXIT_MISMATCH;
}

/* vCPU 0: every vCPU's rewrites so far, when a report is due. */
static void report(uint64_t now)
{
	if (now < sched_report_due(now))
		return;
	uint64_t sum = 0;
	for (unsigned c = 0; c < guest_ncpus(); c++)
		sum += __atomic_load_n(&dt.live[c], __ATOMIC_RELAXED);
	sched_report(sum, now);
}

static int dirty_run(unsigned cpu)
{
	uint64_t n = dt.region[cpu].npages;
	for (uint64_t i = 0; i < n; i++) {
		guest_service_every(i);
		write_page(cpu, i, 1);
	}

	/* pages per second, and the step length that follows from it */
	double pps = (double)n * (double)dt.rate / 100.0;
	uint64_t step = STEP_MAX_NS;
	if (pps * STEP_MAX_NS / NS_PER_SEC > 1.0)
		step = (uint64_t)((double)NS_PER_SEC / pps);
	if (step < STEP_MIN_NS)
		step = STEP_MIN_NS;

	uint64_t t0 = now_ns(), last = t0, j = 0, idle_ns = 0, prev = t0;
	uint64_t limit = dt.seconds < 0 ? ~0ULL
					: (uint64_t)dt.seconds * NS_PER_SEC;
	bool idle = sched_idle(t0);
	for (;;) {
		uint64_t now = now_ns(), t = now - t0;
		/* the state held since the last wake-up: every wait ends at
		 * the next event */
		if (idle)
			idle_ns += now - prev;
		prev = now;
		idle = sched_idle(now);
		if (t >= limit)
			break;
		uint64_t due = (uint64_t)(pps * (double)(t - idle_ns) /
					  (double)NS_PER_SEC);
		for (; !idle && j < due; j++) {
			/* behind the rate, one pass would take ever longer (the
			 * next one owes all the time this one took): stop at the
			 * limit, not after the pass that crosses it */
			if (!(j & 255)) {
				uint64_t tn = now_ns();
				if (tn - t0 >= limit)
					break;
				/* behind the rate this loop does not end for a
				 * long time: report from inside it too */
				__atomic_store_n(&dt.live[cpu], j, __ATOMIC_RELAXED);
				if (cpu == 0)
					report(tn);
			}
			guest_service_every(j);
			uint64_t i = dvm_dirty_page(dt.seed, n, j);
			uint64_t bad = check_page(cpu, i);
			if (bad)
				return mismatch(cpu, bad);
			write_page(cpu, i, dt.version[dt.first[cpu] + i] + 1);
		}
		__atomic_store_n(&dt.live[cpu], j, __ATOMIC_RELAXED);
		now = now_ns();
		if (cpu == 0)
			report(now);
		if (now - last >= PROGRESS_NS) {
			gprintf("dirty: t=%lus rewrites=%lu%s%s\n",
				(now - t0) / NS_PER_SEC, j, idle ? " idle" : "",
				wl_cpu_tag(cpu));
			last = now;
		}
		/* Sleep to the next step boundary (idle: a second), the next
		 * event, the next report or the end. */
		uint64_t next = idle ? now - t0 + NS_PER_SEC : (t / step + 1) * step;
		uint64_t ev = sched_next(now), rep = cpu ? ~0ULL : sched_report_due(now);
		if (ev != ~0ULL && ev - t0 < next)
			next = ev - t0;
		if (rep != ~0ULL && rep > now && rep - t0 < next)
			next = rep - t0;
		if (next > limit)
			next = limit;
		if (now - t0 < next)
			guest_wait(next - (now - t0));
	}
	uint64_t elapsed = now_ns() - t0;
	for (uint64_t i = 0; i < n; i++) {
		guest_service_every(i);
		uint64_t bad = check_page(cpu, i);
		if (bad)
			return mismatch(cpu, bad);
	}
	dt.rewrites[cpu] = j;
	dt.elapsed[cpu] = elapsed;
	return GUEST_EXIT_OK;
}

static void dirty_finish(void)
{
	uint64_t sum = 0, ms = 0;
	for (unsigned c = 0; c < guest_ncpus(); c++) {
		sum += dt.rewrites[c];
		if (dt.elapsed[c] / NS_PER_MS > ms)
			ms = dt.elapsed[c] / NS_PER_MS;
	}
	/* achieved rate in 1/100 of a percent of the set per second */
	uint64_t bp = ms && dt.total ? sum * 10000 * 1000 / ms / dt.total : 0;
	gprintf("dirty: done ms=%lu pages=%lu rewrites=%lu rate=%lu.%02lu%%/s "
		"mismatches=0\n", ms, dt.total, sum, bp / 100, bp % 100);
	hc_result(DVM_RESULT_DIRTY_REWRITES, sum);
}

const struct workload wl_dirty = {
	.name = "dirty",
	.usage = "mib=N rate=PCT [seconds=S|-1] [seed=X] [sched=MS:idle|active,...]",
	.setup = dirty_setup,
	.run = dirty_run,
	.finish = dirty_finish,
	.all_cpus = true,
};
