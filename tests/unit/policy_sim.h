/*
 * policy_sim.h - a tiny closed-loop host for the policy tests: usage is
 * the sum of the VMs' allocations plus a fixed overhead, a balloon reaches
 * its target at once (or, with lag, half way per tick), and each guest reports what it uses (a fixed amount)
 * and a working set that is a fixed fraction of its RAM.  Included
 * by test_policy_core.c and test_policy_replay.c (static functions only).
 */
#ifndef POLICY_SIM_H
#define POLICY_SIM_H

#include <stdio.h>
#include <string.h>
#include "policy/policy.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define SIM_MAX 8

struct sim {
	struct policy_config cfg;
	struct policy_state st;
	struct policy_in in;
	struct policy_out out;
	struct policy_vm_in vm[SIM_MAX];
	uint64_t used[SIM_MAX];        /* what each guest uses */
	double activity[SIM_MAX];      /* working set / RAM (a fixed size:
	                                  the workload's, not the balloon's) */
	bool no_stats[SIM_MAX];
	uint64_t overhead;
	uint64_t tick;
	double saved_per_tick;         /* ksm: bytes saved per tick */
	double cpu_per_tick;           /* ksm: CPU seconds per tick */
	bool lag;                      /* a balloon goes half way per tick */
	uint64_t short_by[SIM_MAX];    /* an inflation stops this far short
	                                  (a guest's last pages) */
};

static inline void sim_init(struct sim *s, unsigned n, uint64_t ram,
			    uint64_t budget)
{
	memset(s, 0, sizeof(*s));
	policy_config_default(&s->cfg);
	policy_init(&s->st, n);
	s->in.nvms = n;
	s->in.vms = s->vm;
	s->in.budget = budget;
	s->in.psi_some10 = -1;
	s->in.psi_full10 = -1;
	s->in.ksm_scan_rate = 1000;
	s->overhead = 256 * MiB;
	for (unsigned i = 0; i < n; i++) {
		snprintf(s->vm[i].name, sizeof(s->vm[i].name), "vm%u", i);
		s->vm[i].ram = ram;
		policy_vm_config_default(&s->vm[i].cfg);
		s->used[i] = 256 * MiB;
		s->activity[i] = 0.25;
	}
}

/* the allocation the policy set (ram - target) */
static inline uint64_t sim_alloc(const struct sim *s, unsigned i)
{
	return s->vm[i].ram - s->vm[i].balloon_target;
}

/* Refreshes the inputs from the model (balloons at their targets). */
static inline void sim_measure(struct sim *s)
{
	uint64_t usage = s->overhead;

	s->in.now_ns = s->tick * 1000000000ull;
	for (unsigned i = 0; i < s->in.nvms; i++) {
		struct policy_vm_in *v = &s->vm[i];
		if (!s->lag) {
			v->balloon_size = v->balloon_target;
		} else if (v->balloon_size != v->balloon_target) {
			/* half way (in 2 MiB), at least one chunk */
			uint64_t d = v->balloon_size > v->balloon_target ?
				     v->balloon_size - v->balloon_target :
				     v->balloon_target - v->balloon_size;
			uint64_t h = (d / 2) & ~(POLICY_CHUNK - 1);
			if (h < POLICY_CHUNK)
				h = d;
			v->balloon_size = v->balloon_size > v->balloon_target ?
					  v->balloon_size - h : v->balloon_size + h;
		}
		if (v->balloon_size > s->short_by[i] &&
		    v->balloon_size == v->balloon_target)
			v->balloon_size -= s->short_by[i];
		uint64_t alloc = v->ram - v->balloon_size;
		v->stats_valid = !s->no_stats[i];
		v->g_total = v->ram;   /* as both guests do: the balloon's
		                          pages are in their total */
		v->g_available = alloc > s->used[i] ? alloc - s->used[i] : 0;
		v->g_free = v->g_available;
		v->active_bytes = (uint64_t)(s->activity[i] * (double)v->ram);
		usage += alloc;
	}
	s->in.usage = usage;
	s->in.ksm_saved_bytes = (uint64_t)(s->saved_per_tick * (double)s->tick);
	s->in.ksm_cpu_s = s->cpu_per_tick * (double)s->tick;
}

/* One tick: measure, decide, apply (mode on: the targets are set). */
static inline void sim_step(struct sim *s)
{
	sim_measure(s);
	policy_tick(&s->cfg, &s->st, &s->in, &s->out);
	for (unsigned i = 0; i < s->in.nvms; i++)
		s->vm[i].balloon_target = s->out.vms[i].target;
	s->in.ksm_scan_rate = s->out.scan_rate;
	s->tick++;
}

static inline double sim_free(const struct sim *s)
{
	uint64_t usage = s->overhead;
	for (unsigned i = 0; i < s->in.nvms; i++)
		usage += sim_alloc(s, i);
	return ((double)s->in.budget - (double)usage) / (double)s->in.budget;
}

#endif
