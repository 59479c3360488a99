/*
 * main.c - workload dispatch and the multi-vCPU protocol.
 *
 * Owns: the table of workloads, choosing one from bootinfo.args, and what
 * each vCPU does with it (see workload.h): vCPU 0 runs every workload;
 * the others run all_cpus workloads (verify, dirty) on their own share and
 * HC_EXIT(0) at once for the rest.  vCPU 0 reports an all_cpus workload's
 * summary only after every other vCPU has finished.  Keys every workload
 * takes (balloon_huge, start_ms; epoch, sched, report_ms through sched.c)
 * are read here.
 */
#include "workload.h"

static const struct workload *const workloads[] = {
	&wl_verify, &wl_fill, &wl_dirty, &wl_idle, &wl_crash, &wl_dirtyset,
	&wl_hcbench, &wl_grow, &wl_hostile, &wl_conflood, &wl_image,
};
#define NWORKLOADS (sizeof(workloads) / sizeof(workloads[0]))

static struct wl_args args;
static const struct workload *cur;

/* Per-vCPU results of all_cpus workloads (index 0 unused). */
static int cpu_status[HV_MAX_VCPUS];
static unsigned ndone;

void wl_setup(void)
{
	args_split(&args, guest_bootinfo()->args);
	for (unsigned i = 0; i < NWORKLOADS; i++)
		if (!gstrcmp(workloads[i]->name, args.name))
			cur = workloads[i];
	if (!cur) {
		char known[128];
		size_t off = 0;
		for (unsigned i = 0; i < NWORKLOADS; i++)
			off += (size_t)gsnprintf(known + off, sizeof(known) - off,
						 "%s%s", i ? " " : "",
						 workloads[i]->name);
		if (args.name[0])
			args_fail(&args, "unknown workload '%s' (known: %s)",
				  args.name, known);
		args_fail(&args, "no workload given (known: %s)", known);
	}
	args.wl = cur;
	/* A key every workload takes: the balloon's page size (benchmarks
	 * compare 2 MiB with 4 KiB inflation). */
	guest_balloon_set_huge(args_int(&args, "balloon_huge", 1, 0, 1));
	/* The schedule keys (sched.c): epoch, sched, report_ms. */
	sched_setup(&args);
	/* And a start delay (benchmarks stagger VM arrivals): the guest
	 * waits in HC_WAIT, its memory untouched, before the workload; with
	 * epoch= it counts from the epoch, else from boot. */
	int64_t start_ms = args_int(&args, "start_ms", 0, 0, 86400000);
	if (start_ms) {
		uint64_t end = args_has(&args, "epoch") ?
			       sched_epoch_ns((uint64_t)start_ms) :
			       now_ns() + (uint64_t)start_ms * NS_PER_MS;
		for (uint64_t t = now_ns(); t < end; t = now_ns())
			guest_wait(end - t < NS_PER_SEC ? end - t : NS_PER_SEC);
		gprintf("%s: started after %ld ms\n", cur->name, (long)start_ms);
	}
	cur->setup(&args);
	sched_done(&args);
	args_done(&args);   /* in case setup() forgot */
}

void wl_run(unsigned cpu)
{
	unsigned n = guest_ncpus();
	if (cpu != 0 && !cur->all_cpus)
		guest_exit(GUEST_EXIT_OK);

	int st = cur->run(cpu);
	if (cpu != 0) {
		cpu_status[cpu] = st;
		__atomic_fetch_add(&ndone, 1, __ATOMIC_RELEASE);
		guest_exit(st);
	}
	if (st != 0 || !cur->all_cpus)
		guest_exit(st);

	/* A few ms of latency is nothing next to a workload; polling in
	 * HC_WAIT keeps this vCPU off the host CPUs meanwhile. */
	while (__atomic_load_n(&ndone, __ATOMIC_ACQUIRE) < n - 1)
		guest_wait(2 * NS_PER_MS);
	for (unsigned c = 1; c < n; c++) {
		if (cpu_status[c] != 0) {
			gprintf("%s: failed on cpu %u with status %d\n",
				cur->name, c, cpu_status[c]);
			guest_exit(cpu_status[c]);
		}
	}
	if (cur->finish)
		cur->finish();
	guest_exit(GUEST_EXIT_OK);
}
