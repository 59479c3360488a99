/*
 * test_policy_core.c - the policy's decision core (strategy = shares) on
 * the closed-loop model of policy_sim.h: proportional shares, the idle
 * tax, min/max/floor/min_guest_free, the host states and their
 * hysteresis, a budget step that settles (also with slow balloons),
 * deflate on guest pressure, the settling rule, the scan-rate loop,
 * determinism, and the config parser's errors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_sim.h"

static void run(struct sim *s, unsigned ticks)
{
	while (ticks--)
		sim_step(s);
}

/* ------------------------------------------------- proportional shares */

static void test_proportional_shares(void **state_)
{
	struct sim *s = calloc(1, sizeof(*s));
	/* the same activity: both fully idle, then both fully active (the
	 * idle tax then weighs both alike, and rho ~ shares / pages) */
	const double act[2] = { 0.0, 1.0 };

	(void)state_;
	for (unsigned k = 0; k < 2; k++) {
		/* two 4 GiB VMs, shares 2:1; the budget leaves them about
		 * 4.45 GiB between them */
		sim_init(s, 2, 4 * GiB, 5 * GiB);
		s->vm[0].cfg.shares = 2000;
		s->vm[1].cfg.shares = 1000;
		s->activity[0] = s->activity[1] = act[k];
		run(s, 30);
		double a = (double)sim_alloc(s, 0), b = (double)sim_alloc(s, 1);
		printf("[ shares ] 2:1, activity %.0f%%: %.0f MiB : %.0f MiB = %.3f, "
		       "free %.2f%%, %s\n", act[k] * 100, a / MiB, b / MiB, a / b,
		       sim_free(s) * 100, policy_state_name(s->out.state));
		assert_true(fabs(a / b - 2.0) <= 0.10);      /* 2:1 within 5% */
		assert_true(sim_free(s) >= s->cfg.high);
		assert_true(sim_free(s) < s->cfg.high + 0.01);
		assert_int_equal(s->out.state, POLICY_HIGH);
	}
	/* 1:1 for contrast: equal allocations */
	sim_init(s, 2, 4 * GiB, 5 * GiB);
	run(s, 30);
	double a = (double)sim_alloc(s, 0), b = (double)sim_alloc(s, 1);
	assert_true(fabs(a / b - 1.0) <= 0.05);
	free(s);
}

/* New shares in steady state (HIGH, nothing to reclaim): memory moves
 * toward the new split without waiting for pressure, usage does not grow
 * on the way, and it settles with no reversal. */
static void test_rebalance_on_new_shares(void **state_)
{
	struct sim *s = calloc(1, sizeof(*s));
	(void)state_;
	sim_init(s, 2, 4 * GiB, 5 * GiB);
	run(s, 30);
	uint64_t a0 = sim_alloc(s, 0), b0 = sim_alloc(s, 1);
	uint64_t total0 = a0 + b0;
	assert_int_equal(s->out.state, POLICY_HIGH);
	s->vm[0].cfg.shares = 4000;
	uint64_t peak = 0, t_last = 0, last_a = a0;
	unsigned moves = 0, reversals = 0, settled_at = 0;
	int dir = 0;
	for (unsigned k = 1; k <= 40; k++) {
		sim_step(s);
		uint64_t a = sim_alloc(s, 0);
		if (sim_alloc(s, 0) + sim_alloc(s, 1) > peak)
			peak = sim_alloc(s, 0) + sim_alloc(s, 1);
		if (a != last_a) {
			int d = a > last_a ? 1 : -1;
			reversals += dir && d != dir;
			dir = d;
			moves++;
			settled_at = k;
		}
		last_a = a;
		t_last = a;
	}
	double r = (double)sim_alloc(s, 0) / (double)sim_alloc(s, 1);
	printf("[ rebalance ] shares 1:1 -> 4:1: %llu:%llu MiB -> %llu:%llu MiB "
	       "(%.2f), settled after %u ticks, %u moves, %u reversals, peak "
	       "total %+lld MiB\n", (unsigned long long)(a0 / MiB),
	       (unsigned long long)(b0 / MiB),
	       (unsigned long long)(sim_alloc(s, 0) / MiB),
	       (unsigned long long)(sim_alloc(s, 1) / MiB), r, settled_at, moves,
	       reversals, (long long)((int64_t)peak - (int64_t)total0) / (long long)MiB);
	(void)t_last;
	assert_true(sim_alloc(s, 0) > a0 + 512 * MiB);   /* it moved */
	assert_true(r > 2.0);
	assert_int_equal(reversals, 0);
	assert_true(settled_at <= 12);
	assert_true(peak <= total0 + 8 * MiB);            /* never grew */
	assert_true(sim_free(s) >= s->cfg.high);
	free(s);
}

/* ------------------------------------------------------------ idle tax */

static void test_idle_tax_moves_memory(void **state_)
{
	struct sim *s = calloc(1, sizeof(*s));
	double ratio_tax, ratio_none;
	uint64_t act_alloc, idle_alloc;

	(void)state_;
	/* equal shares; vm0 touches all its memory, vm1 none of it */
	sim_init(s, 2, 4 * GiB, 5 * GiB);
	s->cfg.min_guest_free = 0.05;      /* so no floor binds */
	s->activity[0] = 1.0;
	s->activity[1] = 0.0;
	run(s, 30);
	act_alloc = sim_alloc(s, 0);
	idle_alloc = sim_alloc(s, 1);
	ratio_tax = (double)act_alloc / (double)idle_alloc;

	sim_init(s, 2, 4 * GiB, 5 * GiB);
	s->cfg.idle_tax = 0;
	s->cfg.min_guest_free = 0.05;
	s->activity[0] = 1.0;
	s->activity[1] = 0.0;
	run(s, 30);
	ratio_none = (double)sim_alloc(s, 0) / (double)sim_alloc(s, 1);
	printf("[ idle ] active:idle allocation, tax 0.75: %llu:%llu MiB = "
	       "%.3f; tax 0: %llu:%llu MiB = %.3f\n",
	       (unsigned long long)(act_alloc / MiB),
	       (unsigned long long)(idle_alloc / MiB), ratio_tax,
	       (unsigned long long)(sim_alloc(s, 0) / MiB),
	       (unsigned long long)(sim_alloc(s, 1) / MiB), ratio_none);
	/* k = 1 / (1 - 0.75) = 4: an idle page costs four active ones, so
	 * equal rho means alloc(active) = 4 * alloc(idle) */
	assert_true(fabs(ratio_tax - 4.0) <= 4.0 * 0.05);
	assert_true(fabs(ratio_none - 1.0) <= 0.05);
	/* the same total, moved from the idle VM to the active one */
	assert_true(act_alloc > sim_alloc(s, 0) + GiB);
	free(s);
}

/* --------------------------------------------------------------- bounds */

static void test_bounds_honoured(void **state_)
{
	struct sim *s = calloc(1, sizeof(*s));

	(void)state_;
	/* a budget no allocation can meet: LOW for good, everyone down to
	 * its lower bound */
	sim_init(s, 6, 4 * GiB, 2 * GiB);
	s->vm[0].cfg.min = 3 * GiB;                  /* min */
	s->used[1] = 512 * MiB;                      /* guest floor */
	s->vm[1].g_floor = 1536 * MiB;
	s->used[2] = 1 * GiB;                        /* min_guest_free */
	s->vm[3].cfg.max = 2 * GiB;                  /* max */
	s->no_stats[4] = true;                       /* no stats */
	s->vm[5].balloon_target = 3 * GiB;           /* below its min: */
	s->vm[5].cfg.min = 2 * GiB;                  /*   held in LOW */
	sim_step(s);
	assert_int_equal(s->out.state, POLICY_LOW);
	assert_int_equal(s->out.vms[3].reason, POLICY_R_CLAMP_MAX);
	assert_int_equal(s->out.vms[5].reason, POLICY_R_HOLD_LOW);
	run(s, 20);

	uint64_t mgf = (uint64_t)(0.2 * 4 * GiB);
	uint64_t lb[6] = {
		3 * GiB,
		512 * MiB + 1536 * MiB,
		1 * GiB + mgf,
		256 * MiB + mgf,            /* and below its max */
		4 * GiB,
		1 * GiB,
	};
	for (unsigned i = 0; i < 6; i++) {
		uint64_t a = sim_alloc(s, i);
		printf("[ bounds ] vm%u: %llu MiB (bound %llu MiB) %s\n", i,
		       (unsigned long long)(a / MiB),
		       (unsigned long long)(lb[i] / MiB),
		       policy_reason_name(s->out.vms[i].reason));
		assert_true(a >= lb[i]);
		/* and it got there: within one chunk plus the smallest change */
		assert_true(a < lb[i] + 2 * MiB + 12 * MiB || i == 4 || i == 5);
	}
	assert_int_equal(sim_alloc(s, 4), 4 * GiB);   /* never reclaimed */
	assert_int_equal(s->out.vms[4].reason, POLICY_R_NO_STATS);
	assert_int_equal(s->out.vms[0].reason, POLICY_R_CLAMP_FLOOR);
	assert_int_equal(sim_alloc(s, 5), 1 * GiB);   /* LOW: not raised */

	/* out of LOW, the VM under its min is raised to it, a step a tick */
	s->in.budget = 64 * GiB;
	sim_step(s);
	assert_int_equal(s->out.state, POLICY_HIGH);
	assert_int_equal(s->out.vms[5].reason, POLICY_R_CLAMP_MIN);
	assert_int_equal(sim_alloc(s, 5), 2 * GiB);
	/* vm3 is never given more than its max */
	run(s, 10);
	assert_int_equal(sim_alloc(s, 3), 2 * GiB);
	assert_int_equal(sim_alloc(s, 0), 4 * GiB);
	assert_int_equal(sim_alloc(s, 5), 4 * GiB);
	free(s);
}

/* ---------------------------------------------------- host state machine */

static enum policy_host_state at(struct policy_state *st,
				 const struct policy_config *c, double free)
{
	struct policy_in in = { .budget = 100 * GiB };
	struct policy_out out;

	in.usage = (uint64_t)((1.0 - free) * (double)in.budget);
	policy_tick(c, st, &in, &out);
	return out.state;
}

static void test_states_and_hysteresis(void **state_)
{
	struct policy_config c;
	struct policy_state st;

	(void)state_;
	policy_config_default(&c);
	policy_init(&st, 0);
	assert_int_equal(at(&st, &c, 0.10), POLICY_HIGH);
	assert_int_equal(at(&st, &c, 0.045), POLICY_HIGH);   /* above soft */
	assert_int_equal(at(&st, &c, 0.039), POLICY_SOFT);
	for (int i = 0; i < 10; i++) {                       /* 3.9 <-> 5 */
		assert_int_equal(at(&st, &c, 0.05), POLICY_SOFT);
		assert_int_equal(at(&st, &c, 0.039), POLICY_SOFT);
	}
	assert_int_equal(at(&st, &c, 0.0599), POLICY_SOFT);
	assert_int_equal(at(&st, &c, 0.0601), POLICY_HIGH);  /* >= high */
	assert_int_equal(at(&st, &c, 0.019), POLICY_HARD);   /* falls 2 */
	assert_int_equal(at(&st, &c, 0.039), POLICY_HARD);   /* < soft */
	assert_int_equal(at(&st, &c, 0.0401), POLICY_SOFT);
	assert_int_equal(at(&st, &c, 0.005), POLICY_LOW);    /* falls 3 */
	assert_int_equal(at(&st, &c, 0.019), POLICY_LOW);
	assert_int_equal(at(&st, &c, 0.0201), POLICY_HARD);
	assert_int_equal(at(&st, &c, 0.005), POLICY_LOW);
	assert_int_equal(at(&st, &c, -0.5), POLICY_LOW);     /* over budget */
	assert_int_equal(at(&st, &c, 0.07), POLICY_HIGH);    /* climbs 3 */
	assert_string_equal(policy_state_name(POLICY_HARD), "HARD");
}

/* ---------------------------------------------- a budget step settles */

static unsigned reversals_and_settle(struct sim *s, unsigned ticks,
				     unsigned *settle, uint64_t *overshoot,
				     int dir_sign[SIM_MAX])
{
	uint64_t prev[SIM_MAX], min_sum = UINT64_MAX;
	unsigned rev = 0;

	*settle = 0;
	for (unsigned t = 0; t < ticks; t++) {
		for (unsigned i = 0; i < s->in.nvms; i++)
			prev[i] = s->vm[i].balloon_target;
		sim_step(s);
		uint64_t sum = 0;
		for (unsigned i = 0; i < s->in.nvms; i++) {
			uint64_t nt = s->vm[i].balloon_target;
			sum += sim_alloc(s, i);
			if (nt == prev[i])
				continue;
			int d = nt > prev[i] ? 1 : -1;
			if (dir_sign[i] && d != dir_sign[i])
				rev++;
			dir_sign[i] = d;
			*settle = t + 1;
		}
		if (sum < min_sum)
			min_sum = sum;
	}
	uint64_t final = 0;
	for (unsigned i = 0; i < s->in.nvms; i++)
		final += sim_alloc(s, i);
	*overshoot = final - min_sum;
	return rev;
}

static void test_budget_step_settles(void **state_)
{
	struct sim *s = calloc(1, sizeof(*s));
	uint64_t shares[4] = { 1000, 2000, 1000, 500 };
	int dir[SIM_MAX] = { 0 };
	unsigned settle, rev;
	uint64_t over;

	(void)state_;
	sim_init(s, 4, 4 * GiB, 18 * GiB);
	for (unsigned i = 0; i < 4; i++) {
		s->vm[i].cfg.shares = shares[i];
		s->activity[i] = 0.3;
		s->used[i] = 300 * MiB;
	}
	run(s, 5);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(s->vm[i].balloon_target, 0);   /* room */

	s->in.budget = 9 * GiB;                    /* the step down */
	rev = reversals_and_settle(s, 60, &settle, &over, dir);
	printf("[ settle ] 18G -> 9G: settled after %u ticks, overshoot %llu "
	       "MiB, %u reversals, free %.2f%% (%s), allocations %llu %llu "
	       "%llu %llu MiB\n", settle, (unsigned long long)(over / MiB), rev,
	       sim_free(s) * 100, policy_state_name(s->out.state),
	       (unsigned long long)(sim_alloc(s, 0) / MiB),
	       (unsigned long long)(sim_alloc(s, 1) / MiB),
	       (unsigned long long)(sim_alloc(s, 2) / MiB),
	       (unsigned long long)(sim_alloc(s, 3) / MiB));
	assert_true(settle <= 6);
	assert_int_equal(rev, 0);
	assert_true(over <= 4 * 12 * MiB);         /* <= one minchg per VM */
	assert_true(sim_free(s) >= s->cfg.high);
	assert_true(sim_free(s) < s->cfg.high + 0.01);
	assert_int_equal(s->out.state, POLICY_HIGH);
	/* more shares, more memory (the activity is the same in bytes) */
	assert_true(sim_alloc(s, 1) > sim_alloc(s, 0));
	assert_true(sim_alloc(s, 0) > sim_alloc(s, 3));
	assert_int_equal(sim_alloc(s, 0), sim_alloc(s, 2));

	/* and back up: the balloons deflate, highest rho first, and settle
	 * again; free never goes under high on the way */
	s->in.budget = 13 * GiB;
	memset(dir, 0, sizeof(dir));
	double min_free = 1;
	unsigned settle2 = 0;
	for (unsigned t = 0; t < 40; t++) {
		uint64_t before[4];
		for (unsigned i = 0; i < 4; i++)
			before[i] = s->vm[i].balloon_target;
		sim_step(s);
		for (unsigned i = 0; i < 4; i++)
			if (s->vm[i].balloon_target != before[i]) {
				assert_true(s->vm[i].balloon_target < before[i]);
				settle2 = t + 1;
			}
		if (sim_free(s) < min_free)
			min_free = sim_free(s);
	}
	printf("[ settle ] 9G -> 13G: settled after %u ticks, lowest free "
	       "%.2f%%\n", settle2, min_free * 100);
	assert_true(min_free >= s->cfg.high);
	assert_true(settle2 <= 6);
	free(s);
}

/* A balloon that takes ticks to get there is not asked twice. */
static void test_lagging_balloon(void **state_)
{
	struct sim *s = calloc(1, sizeof(*s));
	int dir[SIM_MAX] = { 0 };
	unsigned settle, rev;
	uint64_t over;

	(void)state_;
	sim_init(s, 4, 4 * GiB, 18 * GiB);
	s->lag = true;
	for (unsigned i = 0; i < 4; i++)
		s->activity[i] = 0.3;
	run(s, 3);
	s->in.budget = 9 * GiB;
	rev = reversals_and_settle(s, 60, &settle, &over, dir);
	printf("[ lag ] balloons half way per tick, 18G -> 9G: targets settled "
	       "after %u ticks, %u reversals, free %.2f%% once there\n", settle,
	       rev, sim_free(s) * 100);
	assert_int_equal(rev, 0);
	assert_true(settle <= 12);
	/* no overshoot: what was asked is what high needs */
	assert_true(sim_free(s) >= s->cfg.high);
	assert_true(sim_free(s) < s->cfg.high + 0.01);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(s->vm[i].balloon_size, s->vm[i].balloon_target);
	free(s);
}

/* ------------------------------------------------ guest pressure */

static void test_deflate_on_pressure(void **state_)
{
	struct sim *s = calloc(1, sizeof(*s));

	(void)state_;
	/* SOFT: free 3.9% by a large overhead; vm0 ballooned 2 GiB of 4 */
	sim_init(s, 2, 4 * GiB, 10 * GiB);
	s->vm[0].balloon_target = 2 * GiB;
	s->vm[1].balloon_target = 0;
	s->used[0] = 1900 * MiB;                   /* 148 MiB available */
	s->overhead = 10 * GiB - (uint64_t)(0.039 * 10 * GiB) - 6 * GiB;
	s->vm[0].g_pressure = true;
	sim_step(s);
	assert_int_equal(s->out.state, POLICY_SOFT);
	assert_int_equal(s->out.vms[0].reason, POLICY_R_DEFLATE_GUEST_PRESSURE);
	/* max_step (1 GiB) at least, and enough for min_guest_free */
	uint64_t deflated = 2 * GiB - s->vm[0].balloon_target;
	printf("[ pressure ] vm0 deflated by %llu MiB in one tick (SOFT); vm1 "
	       "%s by %llu MiB\n", (unsigned long long)(deflated / MiB),
	       policy_reason_name(s->out.vms[1].reason),
	       (unsigned long long)(s->vm[1].balloon_target / MiB));
	assert_true(deflated >= 1 * GiB);
	assert_true(148 * MiB + deflated >= (uint64_t)(0.2 * 4 * GiB));
	/* the other VM pays for it in the same tick */
	assert_true(s->vm[1].balloon_target > 0);

	/* min_guest_free needs more than max_step: it gets that */
	s->cfg.max_step = 0.05;
	s->vm[0].balloon_target = 2 * GiB;
	s->used[0] = 2040 * MiB;                   /* 8 MiB available */
	sim_step(s);
	deflated = 2 * GiB - s->vm[0].balloon_target;
	assert_true(deflated >= (uint64_t)(0.2 * 4 * GiB) - 8 * MiB);

	/* in LOW nothing is deflated, and the log says why */
	s->vm[0].balloon_target = 2 * GiB;
	s->in.budget = 4 * GiB;
	sim_step(s);
	assert_int_equal(s->out.state, POLICY_LOW);
	assert_int_equal(s->out.vms[0].reason, POLICY_R_HOLD_LOW);
	assert_int_equal(s->vm[0].balloon_target, 2 * GiB);
	free(s);
}

/* No reversal within settle_ticks unless the state changes or pressure. */
static void test_settle_no_quick_reversal(void **state_)
{
	struct policy_config c;
	struct policy_state st;
	struct policy_vm_in v;
	struct policy_in in = { .budget = 100 * GiB, .nvms = 1, .vms = &v };
	struct policy_out out;

	(void)state_;
	policy_config_default(&c);
	policy_init(&st, 1);
	memset(&v, 0, sizeof(v));
	snprintf(v.name, sizeof(v.name), "a");
	v.ram = 4 * GiB;
	policy_vm_config_default(&v.cfg);
	v.balloon_target = v.balloon_size = 2 * GiB;
	v.stats_valid = true;
	v.g_total = 2 * GiB;
	v.g_available = v.g_free = 1800 * MiB;
	in.usage = 100 * GiB - (uint64_t)(0.035 * 100 * GiB);     /* SOFT */
	v.g_pressure = true;
	policy_tick(&c, &st, &in, &out);
	assert_int_equal(out.state, POLICY_SOFT);
	assert_int_equal(out.vms[0].reason, POLICY_R_DEFLATE_GUEST_PRESSURE);
	v.balloon_target = v.balloon_size = out.vms[0].target;
	v.g_total = 4 * GiB - v.balloon_target;
	v.g_available = v.g_free = v.g_total - 200 * MiB;
	v.g_pressure = false;
	for (unsigned k = 1; k <= c.settle_ticks; k++) {
		policy_tick(&c, &st, &in, &out);
		assert_int_equal(out.vms[0].reason, POLICY_R_HOLD_SETTLE);
		assert_int_equal(out.vms[0].target, v.balloon_target);
	}
	policy_tick(&c, &st, &in, &out);
	assert_int_equal(out.vms[0].reason, POLICY_R_RECLAIM_FREE);
	assert_true(out.vms[0].target > v.balloon_target);
}

/* ------------------------------------------------------------ scan rate */

static uint64_t scan(struct policy_state *st, const struct policy_config *c,
		     double free, uint64_t saved, double cpu)
{
	struct policy_in in = { .budget = 100 * GiB, .ksm_scan_rate = 1000 };
	struct policy_out out;

	in.usage = (uint64_t)((1.0 - free) * (double)in.budget);
	in.ksm_saved_bytes = saved;
	in.ksm_cpu_s = cpu;
	policy_tick(c, st, &in, &out);
	return out.scan_rate;
}

static void test_scan_rate_loop(void **state_)
{
	struct policy_config c;
	struct policy_state st;

	(void)state_;
	policy_config_default(&c);
	policy_init(&st, 0);
	/* SOFT, first tick: yield unknown, the caller's rate holds */
	assert_int_equal(scan(&st, &c, 0.035, 0, 0), 1000);
	/* 128 MiB per CPU-second >= 64M: doubles */
	assert_int_equal(scan(&st, &c, 0.035, 128 * MiB, 1.0), 2000);
	assert_int_equal(scan(&st, &c, 0.035, 256 * MiB, 2.0), 4000);
	/* 16 MiB per CPU-second: halves */
	assert_int_equal(scan(&st, &c, 0.035, 272 * MiB, 3.0), 2000);
	/* HARD: scan_max whatever the yield */
	assert_int_equal(scan(&st, &c, 0.015, 272 * MiB, 4.0), 20000);
	/* still HARD (climbing needs soft) */
	assert_int_equal(scan(&st, &c, 0.03, 272 * MiB, 5.0), 20000);
	/* HIGH: decays to scan_min, even with a good yield */
	uint64_t r = 0;
	double cpu = 5.0;
	uint64_t saved = 272 * MiB;
	for (int i = 0; i < 12; i++) {
		cpu += 1;
		saved += 512 * MiB;
		r = scan(&st, &c, 0.10, saved, cpu);
	}
	assert_int_equal(r, 200);
	/* doubling stops at scan_max */
	for (int i = 0; i < 12; i++) {
		cpu += 1;
		saved += 512 * MiB;
		r = scan(&st, &c, 0.035, saved, cpu);
	}
	assert_int_equal(r, 20000);
}

/* --------------------------------------------------------- determinism */

static void test_deterministic(void **state_)
{
	struct sim *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));

	(void)state_;
	sim_init(a, 4, 2 * GiB, 5 * GiB);
	a->vm[1].cfg.shares = 3000;
	a->activity[2] = 0.9;
	a->saved_per_tick = 100 * MiB;
	a->cpu_per_tick = 0.5;
	*b = *a;
	b->in.vms = b->vm;
	for (unsigned t = 0; t < 50; t++) {
		if (t == 20)
			a->in.budget = b->in.budget = 4 * GiB;
		sim_step(a);
		sim_step(b);
		assert_memory_equal(&a->out, &b->out, sizeof(a->out));
	}
	assert_memory_equal(&a->st, &b->st, sizeof(a->st));
	free(a);
	free(b);
}

/* VMs come and go: the settling memory follows the name. */
static void test_vms_by_name(void **state_)
{
	struct sim *s = calloc(1, sizeof(*s));

	(void)state_;
	sim_init(s, 3, 2 * GiB, 4 * GiB);
	run(s, 3);
	/* vm0 leaves: vm1 and vm2 move down one slot in the input */
	s->vm[0] = s->vm[1];
	s->vm[1] = s->vm[2];
	s->used[0] = s->used[1];
	s->in.nvms = 2;
	sim_step(s);
	assert_string_equal(s->st.vms[1].name, "vm1");
	unsigned used = 0;
	for (unsigned k = 0; k < POLICY_MAX_VMS; k++)
		used += s->st.vms[k].used;
	assert_int_equal(used, 2);
	free(s);
}

/* --------------------------------------------------------------- config */

static void expect_err(struct policy_config *c, const char *key,
		       const char *val, const char *msg)
{
	char err[512] = "";

	assert_int_equal(policy_config_set(c, key, val, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, msg);
}

static void test_config(void **state_)
{
	struct policy_config c;
	char err[512];

	(void)state_;
	policy_config_default(&c);
	assert_int_equal(c.mode, POLICY_MODE_ON);
	assert_int_equal(c.strategy, POLICY_STRATEGY_SHARES);
	assert_int_equal(policy_period_ms(&c), 1000);
	assert_int_equal(c.host_budget, 0);
	assert_int_equal(c.reserve, 512 * MiB);
	assert_true(c.high == 0.06 && c.soft == 0.04 && c.hard == 0.02 &&
		    c.low == 0.01);
	assert_int_equal(c.scan_min, 200);
	assert_int_equal(c.scan_max, 20000);
	assert_int_equal(c.merge_yield_min, 64 * MiB);
	assert_int_equal(policy_config_check(&c, err, sizeof(err)), 0);
	/* auto: the cgroup's limit, else MemTotal - reserve */
	assert_int_equal(policy_budget(&c, 64 * GiB, 0), 64 * GiB - 512 * MiB);
	assert_int_equal(policy_budget(&c, 64 * GiB, 20 * GiB), 20 * GiB);
	assert_int_equal(policy_budget(&c, 64 * GiB, 80 * GiB), 64 * GiB);
	assert_int_equal(policy_budget(&c, 256 * MiB, 0), 0);

	assert_int_equal(policy_config_set(&c, "strategy", "mom", err, 512), 0);
	assert_int_equal(policy_period_ms(&c), 10000);
	assert_int_equal(policy_config_set(&c, "period_ms", "500", err, 512), 0);
	assert_int_equal(policy_period_ms(&c), 500);
	assert_int_equal(policy_config_set(&c, "host_budget", "12G", err, 512), 0);
	assert_int_equal(c.host_budget, 12 * GiB);
	assert_int_equal(policy_budget(&c, 64 * GiB, 20 * GiB), 12 * GiB);
	assert_int_equal(policy_config_set(&c, "host_budget", "auto", err, 512), 0);
	assert_int_equal(c.host_budget, 0);
	assert_int_equal(policy_config_set(&c, "reserve", "1GiB", err, 512), 0);
	assert_int_equal(c.reserve, GiB);
	assert_int_equal(policy_config_set(&c, "high", "8%", err, 512), 0);
	assert_true(c.high == 0.08);
	assert_int_equal(policy_config_set(&c, "soft", "0.05", err, 512), 0);
	assert_true(c.soft == 0.05);
	assert_int_equal(policy_config_set(&c, "mode", "advise", err, 512), 0);
	assert_int_equal(c.mode, POLICY_MODE_ADVISE);
	assert_int_equal(policy_config_set(&c, "log", "/tmp/x.log", err, 512), 0);
	assert_string_equal(c.log, "/tmp/x.log");
	assert_int_equal(policy_config_set(&c, "merge_yield_min", "32M", err,
					   512), 0);
	assert_int_equal(c.merge_yield_min, 32 * MiB);

	expect_err(&c, "host_budget", "x",
		   "host_budget: 'x' must be auto or a size like 12G");
	expect_err(&c, "host_budget", "-1G",
		   "host_budget: '-1G' must be auto or a size like 12G");
	expect_err(&c, "mode", "maybe", "mode: 'maybe' must be on, advise or off");
	expect_err(&c, "strategy", "esx", "strategy: 'esx' must be shares or mom");
	expect_err(&c, "period_ms", "5", "period_ms: '5' must be 10 to 3600000 "
		   "(ms)");
	expect_err(&c, "idle_tax", "1", "idle_tax: '1' must be a fraction in "
		   "[0, 1) (0.2 or 20%)");
	expect_err(&c, "max_step", "0", "max_step: '0' must be a fraction in "
		   "(0, 1] (0.2 or 20%)");
	expect_err(&c, "min_guest_free", "20%%", "min_guest_free: '20%%' must "
		   "be a fraction in [0, 1) (0.2 or 20%)");
	expect_err(&c, "reserve", "12X", "reserve: '12X' must be a size like "
		   "512M");
	expect_err(&c, "scan_max", "0", "scan_max: '0' must be pages/s, 1 to "
		   "100000000");
	expect_err(&c, "frobnicate", "1", "unknown key 'frobnicate' (known: mode "
		   "strategy period_ms host_budget reserve high soft hard low "
		   "idle_tax min_guest_free max_step scan_min scan_max "
		   "merge_yield_min settle_ticks wss_sample_ms log)");
	/* thresholds: strictly decreasing among those given... */
	/* thresholds: strictly decreasing among those given (soft is 5%) */
	expect_err(&c, "hard", "5%", "soft: 5% must be above hard 5% "
		   "(thresholds must be strictly decreasing: high > soft > hard "
		   "> low)");
}

static void test_config_thresholds(void **state_)
{
	struct policy_config c;
	char err[512];

	(void)state_;
	policy_config_default(&c);
	assert_int_equal(policy_config_set(&c, "soft", "3%", err, 512), 0);
	expect_err(&c, "high", "3%", "high: 3% must be above soft 3% "
		   "(thresholds must be strictly decreasing: high > soft > hard "
		   "> low)");
	assert_true(c.high == 0.06);            /* a refused value is not set */
	expect_err(&c, "hard", "0.04", "soft: 3% must be above hard 4% "
		   "(thresholds must be strictly decreasing: high > soft > hard "
		   "> low)");
	expect_err(&c, "low", "0", "low: '0' must be a fraction in (0, 1) "
		   "(0.2 or 20%)");
	/* ... a file may lower all four in any order: only the final check
	 * sees the defaults */
	policy_config_default(&c);
	assert_int_equal(policy_config_set(&c, "high", "3%", err, 512), 0);
	assert_int_equal(policy_config_check(&c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "high: 3% must be above soft 4% (its default) "
			    "(thresholds must be strictly decreasing: high > soft "
			    "> hard > low)");
	assert_int_equal(policy_config_set(&c, "low", "0.5%", err, 512), 0);
	assert_int_equal(policy_config_set(&c, "hard", "1%", err, 512), 0);
	assert_int_equal(policy_config_set(&c, "soft", "2%", err, 512), 0);
	assert_int_equal(policy_config_check(&c, err, sizeof(err)), 0);
	/* scan_min <= scan_max */
	assert_int_equal(policy_config_set(&c, "scan_min", "30000", err, 512), 0);
	assert_int_equal(policy_config_check(&c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "scan_min: 30000 must not be above scan_max "
			    "20000");
}

static void test_vm_keys(void **state_)
{
	struct policy_vm_config v;
	char err[512];

	(void)state_;
	policy_vm_config_default(&v);
	assert_int_equal(v.shares, 1000);
	assert_int_equal(v.min, 0);
	assert_int_equal(v.max, 0);
	assert_int_equal(policy_vm_key(&v, "shares", "2500", err, 512), 0);
	assert_int_equal(v.shares, 2500);
	assert_int_equal(policy_vm_key(&v, "min", "1G", err, 512), 0);
	assert_int_equal(v.min, GiB);
	assert_int_equal(policy_vm_key(&v, "max", "3G", err, 512), 0);
	assert_int_equal(v.max, 3 * GiB);
	assert_int_equal(policy_vm_key(&v, "mem", "3G", err, 512), -ENOENT);
	assert_int_equal(policy_vm_key(&v, "shares", "0", err, 512), -EINVAL);
	assert_string_equal(err, "shares: '0' must be 1 to 1000000");
	assert_int_equal(policy_vm_key(&v, "max", "lots", err, 512), -EINVAL);
	assert_string_equal(err, "max: 'lots' must be a size like 1G (0 = "
			    "unlimited)");
	assert_int_equal(policy_vm_check(&v, 4 * GiB, err, 512), 0);
	v.min = 3500 * MiB;
	assert_int_equal(policy_vm_check(&v, 4 * GiB, err, 512), -EINVAL);
	assert_string_equal(err, "min: 3670016000 bytes is above max 3221225472");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proportional_shares),
		cmocka_unit_test(test_rebalance_on_new_shares),
		cmocka_unit_test(test_idle_tax_moves_memory),
		cmocka_unit_test(test_bounds_honoured),
		cmocka_unit_test(test_states_and_hysteresis),
		cmocka_unit_test(test_budget_step_settles),
		cmocka_unit_test(test_lagging_balloon),
		cmocka_unit_test(test_deflate_on_pressure),
		cmocka_unit_test(test_settle_no_quick_reversal),
		cmocka_unit_test(test_scan_rate_loop),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_vms_by_name),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_config_thresholds),
		cmocka_unit_test(test_vm_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
