/*
 * test_bench.c - `densevm bench` end to end on real micro guests, each arm
 * in a fresh memory cgroup (about 40 s):
 *   - a tiny scenario with --quick and the arms none and dense: the
 *     results folder holds the summary (JSON that parses, Markdown), the
 *     timelines (CSV and JSON) sampled at >= 10 Hz, whose limit is the
 *     scenario's budget and whose usage stays under it, host facts and
 *     the scenario; dense's steady usage is below none's, and both fit;
 *     the busy VM's throughput reports give a rate in most samples;
 *   - a workload phase: a VM idle then active at 5 s (throughput 0, then
 *     its rate), and a group that starts at that phase;
 *   - a scenario that cannot fit in `none` (2 x 128 MiB of touched memory
 *     under 160 MiB) is reported as not fitting, with the OOM kill or the
 *     crashed VMs counted, not as a success;
 *   - a group of RAM images (2 synthetic 24 MiB images, round robin)
 *     through the dense arm: every VM's final check passes, the churn
 *     reports a rate, the timeline is written (6 s).
 */
#include <math.h>
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

static double tput_of(json_t *sample, const char *group)
{
	return json_number_value(json_object_get(json_object_get(sample,
								 "tput_pps"), group));
}

/* Writes scenario text to DIR/NAME.ini and runs `densevm bench` on it
 * with --arms ARMS (and --quick when quick), results in DIR/NAME; out
 * gets that folder.  Fails the test on a nonzero exit. */
static void run_bench(const char *name, const char *text, const char *arms,
		      bool quick, char *out, size_t outlen)
{
	char sc[256];
	snprintf(sc, sizeof(sc), "%s/%s.ini", g_dir, name);
	snprintf(out, outlen, "%s/%s", g_dir, name);
	write_file(sc, text);
	char *argv[] = { "densevm", "bench", sc, "--arms", (char *)arms, "--out",
			 out, quick ? "--quick" : NULL, NULL };
	char *log;
	int rc = run_densevm(argv, &log);
	if (rc)
		fail_msg("densevm bench: exit %d: %s", rc, log);
	free(log);
}

static void two_arms(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	SKIP_IN_SAN_BUILD("a 24 s bench run of two arms");
	if (!cgroup_ok())
		skip();
	char out[256], p[512];
	run_bench("res", "[scenario]\nname = tiny\nbudget = 640M\nduration = 30\n"
		   "quick_duration = 12\n"
		   "[group clone]\ncount = 3\nmem = 96M\n"
		   "workload = fill mib=64 identical=80 zero=10 hold=-1\n"
		   "[group busy]\nmem = 64M\nactive = 1\n"
		   "workload = dirty mib=16 rate=200 seconds=-1\n", "none,dense",
		   true, out, sizeof(out));
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
	/* throughput samples arrive: the busy VM's reports give a rate */
	size_t with = 0;
	for (size_t i = 0; i < n; i++)
		with += tput_of(json_array_get(smp, i), "busy") > 0;
	print_message("throughput: %zu of %zu samples with a rate\n", with, n);
	assert_true(with > n / 2);
	json_decref(t);
}

/* A workload phase: the busy VM idles from 0 and turns active at 5 s, and
 * a group starts at that phase.  Its throughput is 0 before and near the
 * rate asked (16 MiB at 200 %/s = 8192 pages/s) after; the late VMs say
 * they started after 5000 ms and the cgroup is charged for them then. */
static void workload_phase(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	if (!cgroup_ok())
		skip();
	char out[256], p[512];
	run_bench("phase", "[scenario]\nname = phase\nduration = 10\n"
		   "[group busy]\nmem = 64M\nactive = 1\n"
		   "workload = dirty mib=16 rate=200 seconds=-1\n"
		   "[group late]\ncount = 2\nmem = 64M\nworkload = idle touch=1\n"
		   "[phase rest]\nat = 0\nidle = busy\n"
		   "[phase go]\nat = 5\nactivate = busy\nstart = late\n", "none",
		   false, out, sizeof(out));
	snprintf(p, sizeof(p), "%s/timeline-none-0.json", out);
	json_t *t = json_load_file(p, 0, NULL);
	assert_non_null(t);
	json_t *smp = json_object_get(t, "samples");
	double before = 0, after = 0, u_before = 0, u_after = 0;
	size_t nb = 0, na = 0;
	for (size_t i = 0; i < json_array_size(smp); i++) {
		json_t *e = json_array_get(smp, i);
		double ts = json_number_value(json_object_get(e, "t"));
		double u = (double)json_integer_value(json_object_get(e, "usage"));
		if (ts >= 1.5 && ts < 4.5) {
			before = fmax(before, tput_of(e, "busy"));
			u_before = fmax(u_before, u);
			nb++;
		} else if (ts >= 7 && ts < 9.5) {
			after += tput_of(e, "busy");
			u_after = fmax(u_after, u);
			na++;
		}
	}
	json_decref(t);
	after = na ? after / (double)na : 0;
	print_message("busy: %.0f pages/s at most while idle, %.0f on average "
		      "once active; usage %.0f MiB before the phase, %.0f after\n",
		      before, after, u_before / 1048576, u_after / 1048576);
	assert_true(nb > 20 && na > 20);
	assert_true(before == 0);
	assert_true(after > 0.8 * 8192 && after < 1.2 * 8192);
	assert_true(u_after > u_before + 80.0 * 1048576);   /* 2 x ~58 MiB */
	snprintf(p, sizeof(p), "%s/run-none-0.out", out);
	FILE *f = fopen(p, "r");
	assert_non_null(f);
	char line[1024];
	int started = 0;
	while (fgets(line, sizeof(line), f))
		started += strstr(line, "] idle: started after 5000 ms") != NULL;
	fclose(f);
	assert_int_equal(started, 2);
}

static void failure_counts(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	if (!cgroup_ok())
		skip();
	char out[256], p[512];
	run_bench("nofit", "[scenario]\nname = nofit\nbudget = 160M\nduration = 10\n"
		   "quick_duration = 6\n"
		   "[group big]\ncount = 2\nmem = 160M\n"
		   "workload = fill mib=128 identical=0 zero=0 hold=-1\n", "none", true,
		   out, sizeof(out));
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

/* A group of RAM images (two synthetic 24 MiB ones, so no QEMU capture is
 * needed), round robin over 2 VMs, through the dense arm: both VMs' final
 * checks of every page pass (no mismatch), the churn reports its
 * rewrites, and the timeline is written. */
static void image_group(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	if (!cgroup_ok())
		skip();
	char out[256], p[512], text[1024];
	for (int i = 1; i <= 2; i++) {
		char name[16], seed[8], *log;
		snprintf(name, sizeof(name), "syn%d", i);
		snprintf(seed, sizeof(seed), "%d", i);
		char *argv[] = { "densevm", "image", "synth", name, "--mem", "24M",
				 "--seed", seed, "--dir", g_dir, NULL };
		int rc = run_densevm(argv, &log);
		if (rc)
			fail_msg("image synth: exit %d: %s", rc, log);
		free(log);
	}
	snprintf(text, sizeof(text), "[scenario]\nname = img\nduration = 6\n"
		 "budget = 512M\n[group img]\ncount = 2\nactive = 1\n"
		 "image = %s/syn1 %s/syn2\nworkload = image churn=5\n", g_dir,
		 g_dir);
	run_bench("img", text, "dense", false, out, sizeof(out));
	snprintf(p, sizeof(p), "%s/summary.json", out);
	json_t *s = json_load_file(p, 0, NULL);
	assert_non_null(s);
	json_t *dense = arm_of(s, "dense");
	json_int_t vms = json_integer_value(json_object_get(dense, "image_vms"));
	json_int_t ok = json_integer_value(json_object_get(dense,
							   "image_vms_verified"));
	json_int_t mm = json_integer_value(json_object_get(dense, "mismatches"));
	print_message("image VMs %lld, verified at the end %lld, mismatches %lld\n",
		      (long long)vms, (long long)ok, (long long)mm);
	assert_int_equal(vms, 2);
	assert_int_equal(ok, 2);
	assert_int_equal(mm, 0);
	assert_int_equal(json_integer_value(json_object_get(dense, "reps_fit")), 1);
	json_decref(s);
	/* each VM loaded its own image and churned it */
	snprintf(p, sizeof(p), "%s/run-dense-0.out", out);
	FILE *f = fopen(p, "r");
	assert_non_null(f);
	char line[1024];
	int loaded = 0, done = 0;
	while (fgets(line, sizeof(line), f)) {
		loaded += strstr(line, "ram_image syn1: loaded") ||
			  strstr(line, "ram_image syn2: loaded");
		done += strstr(line, "] image: done ") && !strstr(line, "rewrites=0 ") &&
			strstr(line, "mismatches=0");
	}
	fclose(f);
	assert_int_equal(loaded, 2);
	assert_int_equal(done, 2);
	/* the timeline, at >= 10 Hz, with the churn's rate in it */
	snprintf(p, sizeof(p), "%s/timeline-dense-0.json", out);
	json_t *t = json_load_file(p, 0, NULL);
	assert_non_null(t);
	json_t *smp = json_object_get(t, "samples");
	size_t n = json_array_size(smp), with = 0;
	for (size_t i = 0; i < n; i++)
		with += tput_of(json_array_get(smp, i), "img") > 0;
	print_message("timeline: %zu samples, %zu with a churn rate\n", n, with);
	assert_true(n >= 55);   /* 10 Hz over 6 s */
	assert_true(with > 10);
	json_decref(t);
	snprintf(p, sizeof(p), "%s/timeline-dense-0.csv", out);
	assert_int_equal(access(p, R_OK), 0);
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
		cmocka_unit_test(workload_phase),
		cmocka_unit_test(image_group),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
