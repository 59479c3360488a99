/*
 * test_bench.c - `densevm bench` end to end on real micro guests, each arm
 * in a fresh memory cgroup (about 40 s):
 *   - a tiny scenario with --quick and the arms none and dense: the
 *     results folder holds the summary (JSON that parses, Markdown), the
 *     timelines (CSV and JSON) sampled at >= 10 Hz, whose limit is the
 *     scenario's budget and whose usage stays under it, host facts and
 *     the scenario; dense's steady usage is below none's, and both fit;
 *   - a scenario that cannot fit in `none` (2 x 128 MiB of touched memory
 *     under 160 MiB) is reported as not fitting, with the OOM kill or the
 *     crashed VMs counted, not as a success.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include "testvm.h"
#include "cgroup.h"
#include "cli/bench.h"

static char g_dir[128];

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static bool cgroup_ok(void)
{
	struct bench_cg cg;
	char err[600];
	if (bench_cg_create(&cg, "probe", err, sizeof(err))) {
		print_message("[  SKIPPED ] %s\n", err);
		return false;
	}
	bench_cg_remove(&cg);
	return true;
}

static json_t *arm_of(json_t *summary, const char *arm)
{
	json_t *a = json_object_get(json_object_get(summary, "arms"), arm);
	if (!a)
		fail_msg("summary.json has no arm %s", arm);
	return a;
}

static double med(json_t *arm, const char *k)
{
	return json_number_value(json_object_get(json_object_get(arm, k), "median"));
}

static void two_arms(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	SKIP_IN_SAN_BUILD("a 24 s bench run of two arms");
	if (!cgroup_ok())
		skip();
	char sc[256], out[256], p[512];
	snprintf(sc, sizeof(sc), "%s/tiny.ini", g_dir);
	snprintf(out, sizeof(out), "%s/res", g_dir);
	write_file(sc, "[scenario]\nname = tiny\nbudget = 640M\nduration = 30\n"
		   "quick_duration = 12\n"
		   "[group clone]\ncount = 3\nmem = 96M\n"
		   "workload = fill mib=64 identical=80 zero=10 hold=-1\n"
		   "[group busy]\nmem = 64M\nactive = 1\n"
		   "workload = dirty mib=16 rate=200 seconds=-1\n");
	char *argv[] = { "densevm", "bench", sc, "--quick", "--arms", "none,dense",
			 "--out", out, NULL };
	char *log;
	int rc = run_densevm(argv, &log);
	if (rc)
		fail_msg("densevm bench: exit %d: %s", rc, log);
	free(log);
	snprintf(p, sizeof(p), "%s/summary.json", out);
	json_error_t je;
	json_t *s = json_load_file(p, 0, &je);
	if (!s)
		fail_msg("%s: %s", p, je.text);
	json_t *none = arm_of(s, "none"), *dense = arm_of(s, "dense");
	double sn = med(none, "steady_mib"), sd = med(dense, "steady_mib");
	print_message("steady usage: none %.0f MiB, dense %.0f MiB; overcommit "
		      "%.2fx / %.2fx\n", sn, sd, med(none, "overcommit_ratio"),
		      med(dense, "overcommit_ratio"));
	assert_true(sn > 0 && sd > 0);
	assert_true(sd < sn);
	assert_int_equal(json_integer_value(json_object_get(none, "reps_fit")), 1);
	assert_int_equal(json_integer_value(json_object_get(dense, "reps_fit")), 1);
	json_decref(s);
	static const char *const files[] = {
		"summary.md", "host.json", "scenario.ini", "timeline-none-0.csv",
		"timeline-dense-0.json", "run-dense-0.conf",
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", out, files[i]);
		if (access(p, R_OK))
			fail_msg("missing %s", p);
	}
	/* the timeline: >= 10 Hz, usage under the limit, and plausible */
	snprintf(p, sizeof(p), "%s/timeline-dense-0.json", out);
	json_t *t = json_load_file(p, 0, &je);
	if (!t)
		fail_msg("%s: %s", p, je.text);
	json_t *smp = json_object_get(t, "samples");
	size_t n = json_array_size(smp);
	double t0 = json_number_value(json_object_get(json_array_get(smp, 0), "t"));
	double t1 = json_number_value(json_object_get(json_array_get(smp, n - 1), "t"));
	print_message("timeline: %zu samples in %.2f s (%.1f Hz)\n", n, t1 - t0,
		      (double)(n - 1) / (t1 - t0));
	assert_true(n > 100);
	assert_true((double)(n - 1) / (t1 - t0) >= 9.9);
	double maxu = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(smp, i);
		double u = (double)json_integer_value(json_object_get(e, "usage"));
		double l = (double)json_integer_value(json_object_get(e, "limit"));
		assert_true(l == 640.0 * 1048576);
		assert_true(u <= l);
		maxu = u > maxu ? u : maxu;
	}
	assert_true(maxu > 100.0 * 1048576);   /* the fleet was charged */
	json_decref(t);
}

static void failure_counts(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	if (!cgroup_ok())
		skip();
	char sc[256], out[256], p[512];
	snprintf(sc, sizeof(sc), "%s/nofit.ini", g_dir);
	snprintf(out, sizeof(out), "%s/nofit", g_dir);
	write_file(sc, "[scenario]\nname = nofit\nbudget = 160M\nduration = 10\n"
		   "quick_duration = 6\n"
		   "[group big]\ncount = 2\nmem = 160M\n"
		   "workload = fill mib=128 identical=0 zero=0 hold=-1\n");
	char *argv[] = { "densevm", "bench", sc, "--quick", "--arms", "none",
			 "--out", out, NULL };
	char *log;
	int rc = run_densevm(argv, &log);
	if (rc)
		fail_msg("densevm bench: exit %d: %s", rc, log);
	free(log);
	snprintf(p, sizeof(p), "%s/summary.json", out);
	json_t *s = json_load_file(p, 0, NULL);
	assert_non_null(s);
	json_t *none = arm_of(s, "none");
	json_int_t oom = json_integer_value(json_object_get(none, "oom_kills"));
	json_int_t crashed = json_integer_value(json_object_get(none, "crashed_vms"));
	json_int_t af = json_integer_value(json_object_get(none, "alloc_failures"));
	print_message("not fitting: OOM kills %lld, crashed VMs %lld, allocation "
		      "failures %lld\n", (long long)oom, (long long)crashed, (long long)af);
	assert_int_equal(json_integer_value(json_object_get(none, "reps_fit")), 0);
	assert_true(oom + crashed + af > 0);
	json_decref(s);
}

static int setup(void **state)
{
	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/densevm-test-bench-%d", (int)getpid());
	mkdir(g_dir, 0755);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[200];
	if (!getenv("TEST_KEEP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
		if (system(cmd)) {}
	}
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(two_arms),
		cmocka_unit_test(failure_counts),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
