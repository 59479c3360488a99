/*
 * bench_config.c - the `densevm run` config of one bench arm: the arm's
 * engines ([ksm], [policy], [balloon]) and one [vm] section per group, or
 * per VM where the VMs differ (staggered starts, seeds of their own, RAM
 * images taken round robin), with the workload's schedule, epoch and
 * work reports (bench_phase.c, bench_tput.c) and the image workload's
 * end (bench_images.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "bench.h"

bool bench_arm_ksm(enum bench_arm_id a)
{
	return a == ARM_KERNEL_KSM || a == ARM_KERNEL_MOM || a == ARM_DENSE ||
	       a == ARM_DENSE_POLICY;
}

bool bench_arm_kernel(enum bench_arm_id a)
{
	return a == ARM_KERNEL_KSM || a == ARM_KERNEL_MOM;
}

bool bench_arm_policy(enum bench_arm_id a)
{
	return a == ARM_KERNEL_MOM || a == ARM_POLICY || a == ARM_DENSE_POLICY;
}

/* Workloads whose content follows a seed= (guest/README.md).  Without
 * one, dirty, grow and verify default to seed 1: every busy VM of a group
 * wrote the same pages, and the sharing arms merged what no real fleet
 * would share (and paid copy-on-writes for it once the VMs turned busy).
 * The image workload's churn too: two VMs of one image would copy the
 * same pages to the same places. */
static bool wl_seeded(const char *wl)
{
	static const char *const names[] = { "fill", "dirty", "grow", "verify",
					     "image" };
	size_t n = strcspn(wl, " ");

	if (strstr(wl, "seed="))
		return false;
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (n == strlen(names[i]) && !strncmp(wl, names[i], n))
			return true;
	return false;
}

int bench_write_config(const struct bench_opts *o, enum bench_arm_id arm,
			const char *conf, const char *plog, uint64_t epoch_ns)
{
	const struct bench_scenario *sc = o->sc;
	FILE *f = fopen(conf, "we");
	if (!f)
		return -errno;
	double d = bench_duration(sc, o->quick);
	fprintf(f, "; densevm bench: scenario %s, arm %s\n[run]\ntimeout = %.0f\n"
		"[balloon]\nstats_period_ms = 500\n", sc->name, bench_arm_names[arm],
		d + 60);
	/* our ballooning includes free page reporting: memory a guest freed
	 * goes back without waiting for pressure.  MOM's stack as deployed
	 * (oVirt) leaves QEMU's free-page-reporting off, and so does its arm. */
	if (arm == ARM_POLICY || arm == ARM_DENSE_POLICY)
		fprintf(f, "free_page_reporting = on\n");
	if (bench_arm_kernel(arm))
		/* ksmtuned's top rate: npages_max 1250 every 10 ms */
		fprintf(f, "[ksm]\nengine = kernel\npages_per_sec = 125000\n"
			"sleep_ms = 10\n");
	else if (bench_arm_ksm(arm))
		fprintf(f, "[ksm]\nengine = dense\n");
	if (arm == ARM_KERNEL_MOM)
		fprintf(f, "[policy]\nstrategy = mom\nlog = %s\n", plog);
	else if (bench_arm_policy(arm))
		/* the policy's default scan floor (200 pages/s) starves the dense
		 * engine in a boot storm: ours runs it at its first-pass speed */
		fprintf(f, "[policy]\nstrategy = shares\nlog = %s\n%s", plog,
			arm == ARM_DENSE_POLICY ? "scan_min = 100000\n"
			"scan_max = 1000000\n" : "");
	for (unsigned i = 0; i < sc->ngroups; i++) {
		const struct bench_group *g = &sc->group[i];
		const char *wl0 = o->quick && g->quick_workload[0] ? g->quick_workload :
				  g->workload;
		/* the schedule's time 0 is the bench's, for every VM alike; the
		 * active groups report their work */
		char wl[700], sched[300], wl1[300];
		bench_phase_sched(sc, i, o->quick, sched, sizeof(sched));
		bench_images_workload(wl0, d, wl1, sizeof(wl1));
		snprintf(wl, sizeof(wl), "%s epoch=%llu%s", wl1,
			 (unsigned long long)epoch_ns, sched);
		if (g->active)
			snprintf(wl + strlen(wl), sizeof(wl) - strlen(wl),
				 " report_ms=%d", BENCH_REPORT_MS);
		/* staggered starts, seeds of their own or RAM images round
		 * robin: one section per VM, named as count names them; the
		 * seeds are the same in every arm */
		bool seeded = wl_seeded(wl0);
		bool staggered = bench_group_start(sc, i, o->quick) > 0 ||
				 g->arrive_every > 0;
		bool each = staggered || (seeded && g->count > 1) ||
			    (g->nimages > 1 && g->count > 1);
		for (unsigned k = 0; k < (each ? g->count : 1); k++) {
			char extra[64] = "";
			int x = 0;
			if (seeded)
				x += snprintf(extra + x, sizeof(extra) - (size_t)x,
					      " seed=%u", 1000 * (i + 1) + k);
			if (staggered)
				snprintf(extra + x, sizeof(extra) - (size_t)x,
					 " start_ms=%.0f",
					 bench_vm_start(sc, i, k, o->quick) * 1000);
			if (!each)
				fprintf(f, "[vm %s]\ncount = %u\nworkload = %s%s\n", g->name,
					g->count, wl, extra);
			else if (g->count > 1)
				fprintf(f, "[vm %s%u]\nworkload = %s%s\n", g->name, k, wl,
					extra);
			else
				fprintf(f, "[vm %s]\nworkload = %s%s\n", g->name, wl, extra);
			fprintf(f, "mem = %lluM\n", (unsigned long long)(g->mem >> 20));
			if (g->nimages)   /* a path: the load resolved it */
				fprintf(f, "ram_image = %s\n", g->image[k % g->nimages]);
			if (g->shares)
				fprintf(f, "shares = %u\n", g->shares);
			if (g->min)
				fprintf(f, "min = %lluM\n", (unsigned long long)(g->min >> 20));
			if (g->max)
				fprintf(f, "max = %lluM\n", (unsigned long long)(g->max >> 20));
		}
	}
	return fclose(f) ? -EIO : 0;
}

