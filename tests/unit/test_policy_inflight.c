/*
 * test_policy_inflight.c - the decision core (strategy = shares) with
 * balloons that stop short of their targets for good, on the closed-loop
 * model of policy_sim.h: a few pages short does not hold off the HIGH
 * rebalance, and an inflation short at a guest's floor does not stand in
 * for the reclaim SOFT still wants.  Both held bench_policy's allocation
 * 19-45% of RAM off the ideal before 2026-12-03.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "policy_sim.h"

static void run(struct sim *s, unsigned ticks)
{
	while (ticks--)
		sim_step(s);
}

/* A VM that turns idle (its working set drops) gives memory to the active
 * one in HIGH, even when a guest left its balloon a few pages short of the
 * target for good (bench_policy: 124 KiB short held off every rebalance,
 * and the allocation stayed 19% of RAM off the ideal). */
static void test_rebalance_past_short_balloon(void **state_)
{
	struct sim *s = calloc(1, sizeof(*s));

	(void)state_;
	sim_init(s, 2, 4 * GiB, 5 * GiB);
	s->cfg.min_guest_free = 0.05;
	s->activity[0] = s->activity[1] = 1.0;
	s->short_by[0] = s->short_by[1] = 124 * 1024;
	run(s, 30);
	uint64_t a0 = sim_alloc(s, 0), b0 = sim_alloc(s, 1);
	assert_true(s->vm[0].balloon_size < s->vm[0].balloon_target);
	s->activity[1] = 0.0;   /* vm1's working set is gone */
	run(s, 30);
	double r = (double)sim_alloc(s, 0) / (double)sim_alloc(s, 1);
	printf("[ rebalance ] balloons 124 KiB short, vm1 turns idle: %llu:%llu "
	       "MiB -> %llu:%llu MiB (%.2f; the idle tax's ideal is 4)\n",
	       (unsigned long long)(a0 / MiB), (unsigned long long)(b0 / MiB),
	       (unsigned long long)(sim_alloc(s, 0) / MiB),
	       (unsigned long long)(sim_alloc(s, 1) / MiB), r);
	assert_int_equal(s->out.state, POLICY_HIGH);
	assert_true(fabs(r - 4.0) <= 4.0 * 0.05);
	free(s);
}

/* SOFT a point under high: an inflation that stopped short in a guest at
 * its floor (it says so: g_floor) will free nothing more, so it does not
 * stand in for the reclaim still wanted (bench_policy: 4 balloons 3 MiB
 * short held SOFT at 5.2% free for a minute with idle memory to take). */
static void test_soft_past_balloon_at_floor(void **state_)
{
	struct sim *s = calloc(1, sizeof(*s));

	(void)state_;
	sim_init(s, 2, 4 * GiB, 10 * GiB);
	s->st.host = POLICY_SOFT;
	s->in.usage = (uint64_t)(0.95 * 10 * (double)GiB);   /* 5% free */
	struct policy_vm_in *busy = &s->vm[0], *idle = &s->vm[1];
	busy->balloon_target = GiB;
	busy->balloon_size = GiB - 128 * MiB;   /* more than the reclaim wanted */
	busy->stats_valid = true;
	busy->g_total = busy->ram;
	busy->g_available = busy->g_free = 64 * MiB;
	busy->g_floor = busy->g_available;      /* at its floor */
	busy->active_bytes = 2 * GiB;
	idle->stats_valid = true;
	idle->g_total = idle->ram;
	idle->g_available = idle->g_free = 3 * GiB;
	policy_tick(&s->cfg, &s->st, &s->in, &s->out);
	printf("[ floor ] SOFT at 5%% free, a balloon 128 MiB short at its "
	       "floor: idle VM's target %llu MiB (%s), want %lld MiB\n",
	       (unsigned long long)(s->out.vms[1].target / MiB),
	       policy_reason_name(s->out.vms[1].reason),
	       (long long)(s->out.want / (int64_t)MiB));
	assert_int_equal(s->out.state, POLICY_SOFT);
	assert_true(s->out.vms[1].target >= 100 * MiB);   /* about 1% of 10G */
	assert_int_equal(s->out.vms[0].target, GiB);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rebalance_past_short_balloon),
		cmocka_unit_test(test_soft_past_balloon_at_floor),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
