/*
 * test_policy_mom.c - strategy = mom against a worked example computed by
 * hand from oVirt MOM's published rules (doc/balloon.rules, doc/ksm.rules
 * of github.com/oVirt/mom), four policy runs 10 s apart:
 *
 * Host: budget 16 GiB (MOM's mem_available, 16777216 kB, so ksm sleeps
 * 10 * 16777216 / 16777216 = 10 ms and pages/s = pages_to_scan * 100).
 * Guests: a, b, c of 4 GiB; d of 512 MiB without stats (committed RAM
 * 12.5 GiB).  cur = ram - balloon, used = cur - mem_unused (g_free).
 *
 * Run 1, t = 0, usage 14 GiB: host_free 2/16 = 0.125 < 0.20: shrink;
 *   guest_free_percent = 0.20 * 0.125 / 0.20 = 0.125.
 *   a: cur 4096M, unused 1024M, used 3072M; min = 3072 + 0.125 * 4096 =
 *      3584M; size = 0.95 * 4096 = 3891.2M >= min; change 204.8M >
 *      0.0025 * 4096 = 10.24M: target memory 3891.2M, balloon 204.8M ->
 *      204M (2 MiB down: the guest keeps at least what MOM set).
 *   b: balloon 512M, cur 3584M, unused 256M, used 3328M; min = 3328 +
 *      448 = 3776M > cur: size = 3776M > cur: no target.
 *   c: min (balloon_min) 3900M; cur 4096M, unused 2048M; min = max(3900,
 *      2048 + 512) = 3900M > 3891.2M: size 3900M, change 196M: balloon
 *      196M.
 *   ksm: threshold 0.2 * 16 = 3.2G; 3.2 + 12.5 < 16 but mem_free 2G <
 *      3.2G: run; boost 100 + 300 = 400 pages -> 40000 pages/s.
 * t = 5 s: between runs: every target holds (mom_wait), 40000 pages/s.
 * Run 2, t = 10 s, usage 15.5 GiB: host_free 0.03125 <= 0.05: critical,
 *   guest_free_percent = -0.05 + 0.03125 = -0.01875.
 *   a: balloon 204M, cur 3892M, unused 800M, used 3092M; min = 3092 -
 *      72.975 = 3019.025M; size = 0.95 * 3892 = 3697.4M; balloon 398.6M
 *      -> 398M.
 *   b: cur 3584M, unused 256M, used 3328M; min = 3328 - 67.2 = 3260.8M;
 *      size = 3404.8M; balloon 691.2M -> 690M.
 *   c: cur 3900M: size = max(3705, 3900) = 3900M, no change: no target.
 *   ksm: mem_free 0.5G < 3.2G: boost to 700 -> 70000 pages/s.
 * Run 3, t = 19.5 s (a tenth of a period early counts), usage 8 GiB:
 *   host_free 0.5: grow.
 *   a: balloon 398M, cur 3698M, unused 1000M, used 2698M; min = 2698 +
 *      739.6 = 3437.6M; size = 1.05 * 3698 = 3882.9M <= 4096M; balloon
 *      213.1M -> 212M.
 *   b: balloon 690M, cur 3406M, unused 3000M, used 406M; size =
 *      3576.3M; balloon 519.7M -> 518M.
 *   c: balloon 196M, cur 3900M; size = 4095M; change 195M > 9.75M;
 *      balloon 1M -> 0.
 *   ksm: 3.2 + 12.5 < 16 and mem_free 8G > 3.2G: ksm_run = 0: 0 pages/s
 *      (pages_to_scan stays 700).
 * Run 4, t = 30 s, budget 14 GiB, usage 10 GiB: host_free 4/14 =
 *   0.2857: grow.
 *   a: balloon 212M, cur 3884M, unused 1000M; size = 4078.2M; balloon
 *      17.8M -> 16M.
 *   b: max (balloon_max) 3500M; cur = 4096 - 518 = 3578M is not below
 *      it: grow_guest does nothing (MOM never shrinks in grow).
 *   c: cur 4096M = balloon_max: nothing.
 *   ksm: threshold 2.8G, 2.8 + 12.5 >= 14: run; mem_free 4G >= 2.8G:
 *      decay 700 - 50 = 650; sleep = int(10 * 16777216 / 14680064) =
 *      int(11.43) = 11 ms; 650 * 1000 / 11 = 59090 pages/s.
 * d (no stats) is never touched (no_stats).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define SEC 1000000000ull

struct mom {
	struct policy_config cfg;
	struct policy_state st;
	struct policy_vm_in vm[4];
	struct policy_in in;
	struct policy_out out;
	bool verbose;
};

static void mom_init(struct mom *m)
{
	const char *names[4] = { "a", "b", "c", "d" };
	char err[256];

	memset(m, 0, sizeof(*m));
	policy_config_default(&m->cfg);
	assert_int_equal(policy_config_set(&m->cfg, "strategy", "mom", err,
					   sizeof(err)), 0);
	policy_init(&m->st, 4);
	for (unsigned i = 0; i < 4; i++) {
		struct policy_vm_in *v = &m->vm[i];
		snprintf(v->name, sizeof(v->name), "%s", names[i]);
		policy_vm_config_default(&v->cfg);
		v->ram = i < 3 ? 4 * GiB : 512 * MiB;
		v->stats_valid = i < 3;
	}
	m->in.vms = m->vm;
	m->in.nvms = 4;
	m->in.budget = 16 * GiB;
	m->in.psi_some10 = m->in.psi_full10 = -1;
	m->vm[2].cfg.min = 3900 * MiB;
}

/* balloons at their targets; the guest's free memory; then a tick */
static void run(struct mom *m, double t_s, uint64_t usage,
		const uint64_t unused[3])
{
	m->in.now_ns = (uint64_t)(t_s * 1e9);
	m->in.usage = usage;
	for (unsigned i = 0; i < 4; i++) {
		struct policy_vm_in *v = &m->vm[i];
		v->balloon_size = v->balloon_target;
		if (i < 3) {
			v->g_total = v->ram - v->balloon_size;
			v->g_free = unused[i];
			v->g_available = unused[i];
		}
	}
	policy_tick(&m->cfg, &m->st, &m->in, &m->out);
	if (!m->verbose)
		goto apply;
	printf("[ mom ] t=%4.1fs free %6.4f: a %llu MiB %s, b %llu MiB %s, c %llu "
	       "MiB %s, d %s; ksm %llu pages/s\n", t_s, m->out.free,
	       (unsigned long long)(m->out.vms[0].target / MiB),
	       policy_reason_name(m->out.vms[0].reason),
	       (unsigned long long)(m->out.vms[1].target / MiB),
	       policy_reason_name(m->out.vms[1].reason),
	       (unsigned long long)(m->out.vms[2].target / MiB),
	       policy_reason_name(m->out.vms[2].reason),
	       policy_reason_name(m->out.vms[3].reason),
	       (unsigned long long)m->out.scan_rate);
apply:
	for (unsigned i = 0; i < 4; i++)
		m->vm[i].balloon_target = m->out.vms[i].target;
}

static void expect(const struct mom *m, unsigned i, uint64_t target,
		   enum policy_reason why)
{
	assert_int_equal(m->out.vms[i].target, target);
	assert_int_equal(m->out.vms[i].reason, why);
}

static void test_mom_worked_example(void **state_)
{
	struct mom *m = calloc(1, sizeof(*m));

	(void)state_;
	mom_init(m);
	m->verbose = true;
	assert_int_equal(policy_period_ms(&m->cfg), 10000);
	m->vm[1].balloon_target = 512 * MiB;

	/* run 1: shrink */
	run(m, 0, 14 * GiB, (const uint64_t[3]){ 1024 * MiB, 256 * MiB,
						 2048 * MiB });
	expect(m, 0, 204 * MiB, POLICY_R_MOM_SHRINK);
	expect(m, 1, 512 * MiB, POLICY_R_HOLD);
	expect(m, 2, 196 * MiB, POLICY_R_MOM_SHRINK);
	expect(m, 3, 0, POLICY_R_NO_STATS);
	assert_int_equal(m->out.scan_rate, 40000);
	assert_int_equal(m->st.mom_npages, 400);

	/* between two runs */
	run(m, 5, 15 * GiB, (const uint64_t[3]){ 100 * MiB, 100 * MiB,
						 100 * MiB });
	expect(m, 0, 204 * MiB, POLICY_R_MOM_WAIT);
	expect(m, 1, 512 * MiB, POLICY_R_MOM_WAIT);
	expect(m, 2, 196 * MiB, POLICY_R_MOM_WAIT);
	assert_int_equal(m->out.scan_rate, 40000);

	/* run 2: critical pressure */
	run(m, 10, 15 * GiB + 512 * MiB,
	    (const uint64_t[3]){ 800 * MiB, 256 * MiB, 2048 * MiB });
	expect(m, 0, 398 * MiB, POLICY_R_MOM_SHRINK);
	expect(m, 1, 690 * MiB, POLICY_R_MOM_SHRINK);
	expect(m, 2, 196 * MiB, POLICY_R_HOLD);
	assert_int_equal(m->out.scan_rate, 70000);

	/* run 3: grow; ksm stops */
	run(m, 19.5, 8 * GiB, (const uint64_t[3]){ 1000 * MiB, 3000 * MiB,
						   2048 * MiB });
	expect(m, 0, 212 * MiB, POLICY_R_MOM_GROW);
	expect(m, 1, 518 * MiB, POLICY_R_MOM_GROW);
	expect(m, 2, 0, POLICY_R_MOM_GROW);
	assert_int_equal(m->out.scan_rate, 0);
	assert_int_equal(m->st.mom_npages, 700);

	/* run 4: a smaller budget, b at its max */
	m->in.budget = 14 * GiB;
	m->vm[1].cfg.max = 3500 * MiB;
	run(m, 30, 10 * GiB, (const uint64_t[3]){ 1000 * MiB, 1000 * MiB,
						  1000 * MiB });
	expect(m, 0, 16 * MiB, POLICY_R_MOM_GROW);
	expect(m, 1, 518 * MiB, POLICY_R_HOLD);
	expect(m, 2, 0, POLICY_R_HOLD);
	expect(m, 3, 0, POLICY_R_NO_STATS);
	assert_int_equal(m->out.scan_rate, 59090);
	assert_int_equal(m->st.mom_npages, 650);
	free(m);
}

/* pages_to_scan stays within 64..1250, and period_ms drives the clock */
static void test_mom_ksm_bounds_and_period(void **state_)
{
	struct mom *m = calloc(1, sizeof(*m));
	char err[256];
	const uint64_t unused[3] = { 1024 * MiB, 1024 * MiB, 1024 * MiB };

	(void)state_;
	mom_init(m);
	assert_int_equal(policy_config_set(&m->cfg, "period_ms", "1000", err,
					   sizeof(err)), 0);
	/* pressure every second: +300 each run, capped at 1250 */
	for (unsigned t = 0; t < 6; t++)
		run(m, t, 15 * GiB, unused);
	assert_int_equal(m->st.mom_npages, 1250);
	assert_int_equal(m->out.scan_rate, 125000);
	/* committed memory keeps ksm on; plenty free: -50 each run, to 64 */
	m->in.budget = 13 * GiB;
	for (unsigned t = 6; t < 40; t++)
		run(m, t, 6 * GiB, unused);
	assert_int_equal(m->st.mom_npages, 64);
	/* half a period later: no run */
	run(m, 39.5, 12 * GiB, unused);
	assert_int_equal(m->out.vms[0].reason, POLICY_R_MOM_WAIT);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mom_worked_example),
		cmocka_unit_test(test_mom_ksm_bounds_and_period),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
