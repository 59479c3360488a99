/*
 * bench_cost.c - what the host pays per VM, for scenarios with
 * `host_cost = 1` (bench/scenarios/many.ini: 1024 small idle VMs in one
 * process).  Measured once, at BENCH_COST_AT of the run, when every VM has
 * long started:
 *   - host memory per VM beyond its guest RAM: the memory cgroup's usage
 *     (everything the run process is charged: its heap, page tables,
 *     thread stacks, and the kernel memory v1 counts in usage) less the
 *     guest RAM resident in it (mincore over each VM's RAM, ctl `results
 *     resident`), over the VMs;
 *   - the process's threads (/proc/PID/status), per VM;
 *   - start time: from the spawn of `densevm run` to the last VM's first
 *     hypercall (the whole fleet up), and each VM's own boot (its start to
 *     its first hypercall), median and max.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"

static unsigned threads_of(pid_t pid)
{
	char p[64], line[256];
	unsigned n = 0;
	snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
	FILE *f = fopen(p, "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %u", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

void bench_cost_measure(const char *sock, pid_t pid, double usage,
			double spawn_s, double t, struct bench_cost *c)
{
	memset(c, 0, sizeof(*c));
	c->t = t;
	c->threads = threads_of(pid);
	json_t *r = bench_ctl_req(sock, "results", "resident", NULL, NULL);
	json_t *vms = json_object_get(r, "vms"), *o;
	size_t i, n = json_array_size(vms);
	double *boot = calloc(n ? n : 1, sizeof(*boot)), last = 0;
	json_array_foreach(vms, i, o) {
		c->vms++;
		c->resident += (double)json_integer_value(json_object_get(o,
							 "resident_bytes"));
		double s0 = (double)json_integer_value(json_object_get(o, "start_ns"));
		double h = (double)json_integer_value(json_object_get(o,
						      "first_hypercall_ns"));
		if (h > 0 && s0 > 0) {
			boot[c->started++] = (h - s0) / 1e6;
			last = h / 1e9 > last ? h / 1e9 : last;
		}
	}
	json_decref(r);
	if (!c->vms) {
		free(boot);
		return;   /* no reply: the run is gone or too busy */
	}
	c->measured = true;
	c->usage = usage;
	c->beyond_per_vm = (usage - c->resident) / c->vms;
	qsort(boot, c->started, sizeof(*boot), cmp_d);
	if (c->started) {
		c->boot_ms_p50 = boot[c->started / 2];
		c->boot_ms_max = boot[c->started - 1];
		c->fleet_start_s = last - spawn_s;
	}
	free(boot);
}

void bench_cost_write(const char *dir, const char *af, int rep,
		      const struct bench_cost *c)
{
	const double MiB = 1024.0 * 1024.0;
	if (!c->measured) {
		fprintf(stderr, "densevm bench: %s rep %d: host cost not measured "
			"(no reply from the run at %.0f%% of it)\n", af, rep + 1,
			BENCH_COST_AT * 100);
		return;
	}
	fprintf(stderr, "densevm bench: %s rep %d: host cost at %.1f s: %u VMs, "
		"%u started; cgroup %.1f MiB, guest RAM resident %.1f MiB: %.3f MiB "
		"per VM beyond guest RAM; %u threads (%.2f per VM); fleet up in "
		"%.2f s (%.2f ms per VM), boot to first hypercall %.2f ms median, "
		"%.2f max\n", af, rep + 1, c->t, c->vms, c->started, c->usage / MiB,
		c->resident / MiB, c->beyond_per_vm / MiB, c->threads,
		(double)c->threads / c->vms, c->fleet_start_s,
		c->fleet_start_s * 1000 / c->vms, c->boot_ms_p50, c->boot_ms_max);
	char p[600];
	snprintf(p, sizeof(p), "%s/host-cost-%s-%d.json", dir, af, rep);
	json_t *j = json_pack("{s:f, s:i, s:i, s:f, s:f, s:f, s:i, s:f, s:f, s:f, "
			      "s:f}", "t_s", c->t, "vms", (int)c->vms,
			      "started", (int)c->started, "cgroup_usage_mib",
			      c->usage / MiB, "guest_resident_mib", c->resident / MiB,
			      "beyond_guest_ram_mib_per_vm", c->beyond_per_vm / MiB,
			      "threads", (int)c->threads, "threads_per_vm",
			      (double)c->threads / c->vms, "fleet_start_s",
			      c->fleet_start_s, "boot_ms_median", c->boot_ms_p50,
			      "boot_ms_max", c->boot_ms_max);
	if (json_dump_file(j, p, JSON_INDENT(2)))
		fprintf(stderr, "densevm bench: cannot write %s\n", p);
	json_decref(j);
}
