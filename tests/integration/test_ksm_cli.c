/*
 * test_ksm_cli.c - ksm end to end through `densevm run` and its control
 * socket: the [ksm] section's errors name FILE:LINE; guests running
 * `dirty` with one seed (equal content at equal GPAs) unshare and reshare
 * while `densevm stat --check` passes during the run and after it; domains
 * and private=1 keep VMs apart; `ksm-set` changes a tunable at run time;
 * the balloon takes pages ksm shared through ksm's release hook; a
 * `stat --check` stays cheap and right under a full-speed scanner while a
 * balloon flaps on merged pages; plain `stat`s stay quick (p99 <= 50 ms)
 * while checks loop beside a full-speed scanner over 8 guests; and
 * engine=kernel runs Linux KSM for the same VMs and leaves run=0.
 */
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <time.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "testvm.h"
#include "ksm/ksm.h"
#include "cli/ctl.h"
#include "ctl_load.h"

extern char **environ;

#define MAX_MAP_COUNT "/proc/sys/vm/max_map_count"

static char g_sock[96], g_conf[96], g_json[96];
static pid_t g_pid = -1;
static long long g_old_map_count = -1;

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* densevm run raises vm.max_map_count as root: put it back.  A failed
 * test must not leave its densevm running either. */
static bool g_kernel_ksm;   /* this test turned kernel KSM on */

static int teardown(void **state)
{
	(void)state;
	if (g_pid > 0) {
		/* SIGTERM lets densevm stop its VMs and ksm (run=0) */
		kill(g_pid, SIGTERM);
		int i;
		for (i = 0; i < 100 && waitpid(g_pid, NULL, WNOHANG) == 0; i++)
			usleep(100000);
		if (i == 100) {
			kill(g_pid, SIGKILL);
			waitpid(g_pid, NULL, 0);
		}
	}
	g_pid = -1;
	if (g_kernel_ksm && ksm_sysctl_read("/sys/kernel/mm/ksm/run") != 0)
		ksm_sysctl_write("/sys/kernel/mm/ksm/run", 0);
	g_kernel_ksm = false;
	if (g_old_map_count > 0)
		ksm_sysctl_write(MAX_MAP_COUNT, g_old_map_count);
	unlink(g_conf);
	unlink(g_json);
	return 0;
}

static void start_densevm(const char *conf_text)
{
	snprintf(g_sock, sizeof(g_sock), "/tmp/densevm-ksm-%d.sock", (int)getpid());
	snprintf(g_conf, sizeof(g_conf), "/tmp/densevm-ksm-%d.conf", (int)getpid());
	snprintf(g_json, sizeof(g_json), "/tmp/densevm-ksm-%d.json", (int)getpid());
	write_file(g_conf, conf_text);
	g_old_map_count = ksm_sysctl_read(MAX_MAP_COUNT);
	char *argv[] = { (char *)test_densevm_path(), "run", "--quiet", "--ctl",
			 g_sock, "--config", g_conf, "--json", g_json, NULL };
	assert_int_equal(posix_spawn(&g_pid, argv[0], NULL, NULL, argv, environ), 0);
	for (int i = 0; i < 200 && access(g_sock, F_OK); i++)
		usleep(50000);
	assert_int_equal(access(g_sock, F_OK), 0);
}

/* `densevm ctl --raw ARGS...` (or `densevm stat` when args[0] is "stat");
 * returns the exit status, the reply parsed into *out when it is JSON. */
static int ctl(json_t **out, const char *a0, const char *a1, const char *a2,
	       const char *a3)
{
	char *argv[12] = { "densevm" };
	int n = 1;
	bool stat = !strcmp(a0, "stat");
	argv[n++] = stat ? "stat" : "ctl";
	argv[n++] = "--socket";
	argv[n++] = g_sock;
	argv[n++] = "--raw";
	const char *rest[] = { stat ? NULL : a0, a1, a2, a3 };
	for (int i = 0; i < 4; i++)
		if (rest[i])
			argv[n++] = (char *)rest[i];
	argv[n] = NULL;
	char *text;
	int rc = run_densevm(argv, &text);
	if (out)
		*out = rc == 0 ? json_loads(text, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
	if (rc && getenv("TEST_VERBOSE"))
		print_message("ctl %s: %s", a0, text);
	free(text);
	return rc;
}

static long long jget(json_t *o, const char *path)
{
	char buf[128], *save, *tok;
	snprintf(buf, sizeof(buf), "%s", path);
	for (tok = strtok_r(buf, ".", &save); tok && o; tok = strtok_r(NULL, ".", &save))
		o = json_object_get(o, tok);
	if (!o)
		fail_msg("no %s in the reply", path);
	return json_integer_value(o);
}

/* The ksm object of `stat VM`'s only VM. */
static json_t *vm_ksm(json_t *stat)
{
	json_t *v = json_array_get(json_object_get(stat, "vms"), 0);
	json_t *k = json_object_get(v, "ksm");
	assert_non_null(k);
	return k;
}

static const char *vm_state(json_t *list, const char *name)
{
	json_t *v;
	size_t i;
	json_array_foreach(json_object_get(list, "vms"), i, v)
		if (!strcmp(json_string_value(json_object_get(v, "name")), name))
			return json_string_value(json_object_get(v, "state"));
	return "";
}

/* ------------------------------------------------------------ config */

static void config_errors_name_file_and_line(void **state)
{
	(void)state;
	static const struct { const char *text, *msg; } bad[] = {
		{ "[ksm]\nengine = fast\n", ":2: [ksm] engine: 'fast' must be dense, "
		  "kernel or off" },
		{ "[ksm]\nengine = dense\nbatch_pages = 1\n",
		  ":3: [ksm] batch_pages must be an integer in [2, 4096], not '1'" },
		{ "[ksm]\nsleep_ms = -5\n", ":2: [ksm] sleep_ms must be an integer" },
		{ "[ksm]\ncpu_percent = 101\n", ":2: [ksm] cpu_percent must be" },
		{ "[ksm]\nbogus = 1\n", ":2: [ksm] unknown key 'bogus' (known: engine "
		  "pages_per_sec" },
		{ "[vm a]\nworkload = idle\nprivate = yes\n",
		  ":3: [vm a] private: 'yes' must be 0 or 1" },
		{ "[vm a]\nworkload = idle\ndomain = a/b\n",
		  ":3: [vm a] domain: 'a/b' must be 1-39 characters" },
	};
	char path[64];
	snprintf(path, sizeof(path), "/tmp/densevm-ksm-bad-%d.conf", (int)getpid());
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(path, bad[i].text);
		char *argv[] = { "densevm", "run", "--config", path, NULL }, *out;
		int rc = run_densevm(argv, &out);
		if (rc != 2 || !strstr(out, path) || !strstr(out, bad[i].msg))
			fail_msg("config %zu: status %d, output:\n%s\nwanted: %s", i, rc,
				 out, bad[i].msg);
		free(out);
	}
	unlink(path);
	/* a private VM has no domain: caught before any VM is created */
	char *argv[] = { "densevm", "run", "--vm",
			 "workload=idle seconds=0,domain=a,private=1", NULL }, *out;
	assert_int_not_equal(run_densevm(argv, &out), 0);
	assert_non_null(strstr(out, "private=1 and domain=a"));
	free(out);
}

/* ------------------------------------------------- dirty, domains, check */

static const char dirty_conf[] =
	"[ksm]\n"
	"engine = dense\n"
	"sleep_ms = 20\n"
	"volatile_passes = 1\n"
	"batch_pages = 128\n"
	"\n"
	"[vm d]\n"                    /* the default domain */
	"count = 3\n"
	"mem = 128M\n"
	"workload = dirty mib=48 rate=10 seconds=10 seed=1\n"
	"\n"
	"[vm solo]\n"                 /* the same content, but private */
	"mem = 128M\n"
	"private = 1\n"
	"workload = dirty mib=48 rate=10 seconds=10 seed=1\n"
	"\n"
	"[vm o]\n"                    /* the same content, another domain */
	"count = 2\n"
	"mem = 128M\n"
	"domain = other\n"
	"workload = dirty mib=48 rate=10 seconds=10 seed=1\n"
	"\n"
	"[vm keeper]\n"               /* keeps the process up for the checks */
	"mem = 32M\n"
	"private = 1\n"
	"workload = idle seconds=60\n";

static void dirty_unshare_reshare_with_checks(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	start_densevm(dirty_conf);
	json_t *j, *s;
	const char *const workers[] = { "d0", "d1", "d2", "solo", "o0", "o1" };
	long long merges0 = -1, unmerges0 = 0, checks = 0;

	/* during the run: stat --check every half second */
	uint64_t t0 = hv_now_ns();
	for (;;) {
		usleep(500000);
		assert_int_equal(ctl(&s, "stat", "--check", NULL, NULL), 0);
		assert_string_equal(json_string_value(json_object_get(s, "check")), "ok");
		json_decref(s);
		checks++;
		assert_int_equal(ctl(&j, "ksm", NULL, NULL, NULL), 0);
		/* the first figures once the initial content is merged */
		if (merges0 < 0 && jget(j, "global.pages_sharing") > 0 &&
		    hv_now_ns() - t0 > 2e9) {
			merges0 = jget(j, "global.merges");
			unmerges0 = jget(j, "global.unmerges");
		}
		json_decref(j);
		assert_int_equal(ctl(&j, "list", NULL, NULL, NULL), 0);
		bool done = true;
		for (int i = 0; i < 6; i++)
			if (strcmp(vm_state(j, workers[i]), "exited"))
				done = false;
		json_decref(j);
		if (done)
			break;
		assert_true(hv_now_ns() - t0 < 50e9);
	}
	/* after the run (keeper is still idle): check once more */
	assert_int_equal(ctl(&s, "stat", "--check", NULL, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(s, "check")), "ok");
	json_decref(s);

	assert_int_equal(ctl(&j, "ksm", NULL, NULL, NULL), 0);
	long long merges = jget(j, "global.merges"), unmerges = jget(j, "global.unmerges");
	print_message("[ cli ] %lld stat --check ok; merges %lld (%lld at 2 s), "
		      "unmerges %lld (%lld at 2 s), sharing now %lld, races %lld\n",
		      checks, merges, merges0, unmerges, unmerges0,
		      jget(j, "global.pages_sharing"), jget(j, "global.merge_races"));
	assert_true(merges0 > 0);
	/* written shared pages were copied on write... */
	assert_true(unmerges - unmerges0 >= 1000);
	/* ...and merged again once the other VMs wrote the same version */
	assert_true(merges - merges0 >= (unmerges - unmerges0) / 2);
	assert_string_equal(json_string_value(json_object_get(j, "engine")), "dense");
	assert_int_equal(jget(j, "tunables.volatile_passes"), 1);
	json_decref(j);

	/* domains: d* share, the private VM does not, o* form their own */
	/* (48 MiB = 12288 pages of the same content in each of them) */
	assert_int_equal(ctl(&s, "stat", "d1", NULL, NULL), 0);
	assert_true(jget(vm_ksm(s), "pages_sharing") > 6000);
	assert_string_equal(json_string_value(json_object_get(vm_ksm(s), "domain")),
			    "default");
	json_decref(s);
	assert_int_equal(ctl(&s, "stat", "solo", NULL, NULL), 0);
	/* only duplicates within itself (a few pages) */
	assert_true(jget(vm_ksm(s), "pages_sharing") < 100);
	assert_int_equal(jget(vm_ksm(s), "base_pages"), 0);
	assert_true(jget(vm_ksm(s), "pages_hashed") > 0);
	assert_string_equal(json_string_value(json_object_get(vm_ksm(s), "domain")),
			    "private");
	json_decref(s);
	assert_int_equal(ctl(&s, "stat", "o0", NULL, NULL), 0);
	assert_true(jget(vm_ksm(s), "pages_sharing") > 6000);
	assert_string_equal(json_string_value(json_object_get(vm_ksm(s), "domain")),
			    "other");
	json_decref(s);

	/* tunables at run time */
	assert_int_equal(ctl(&j, "ksm-set", "sleep_ms", "5", NULL), 0);
	assert_string_equal(json_string_value(json_object_get(j, "value")), "5");
	json_decref(j);
	assert_int_equal(ctl(&j, "ksm", NULL, NULL, NULL), 0);
	assert_int_equal(jget(j, "tunables.sleep_ms"), 5);
	json_decref(j);
	assert_int_equal(ctl(NULL, "ksm-set", "sleep_ms", "fast", NULL), 1);
	assert_int_equal(ctl(NULL, "ksm-set", "nosuch", "1", NULL), 1);

	assert_int_equal(ctl(NULL, "stop", "keeper", NULL, NULL), 0);
	int st;
	assert_int_equal(waitpid(g_pid, &st, 0), g_pid);
	g_pid = -1;
	assert_true(WIFEXITED(st));
	/* every dirty guest exited 0 (the stopped keeper makes the status 1) */
	json_t *rep = json_load_file(g_json, 0, NULL);
	assert_non_null(rep);
	json_t *v;
	size_t i;
	unsigned ok = 0;
	json_array_foreach(json_object_get(rep, "vms"), i, v) {
		const char *name = json_string_value(json_object_get(v, "name"));
		if (!strcmp(name, "keeper"))
			continue;
		if (strcmp(json_string_value(json_object_get(v, "status")), "exited") ||
		    json_integer_value(json_object_get(v, "code")) != 0)
			fail_msg("%s: %s %lld", name,
				 json_string_value(json_object_get(v, "status")),
				 (long long)json_integer_value(json_object_get(v, "code")));
		ok++;
	}
	json_decref(rep);
	assert_int_equal(ok, 6);
}

/* ------------------------------------------------------ ksm + balloon */

/* The balloon takes pages ksm shared: `idle touch=1` writes every free
 * page of each guest with the same content at the same GPA, ksm merges
 * them (through the base memfd, or through frames where a guest had not
 * written the page yet when the others merged: timing decides), then
 * v0's balloon inflates into them.
 * ksm's release hook must drop each reference first, which the
 * self-check verifies (a page taken behind ksm's back fails it). */
static long long balloon_size(const char *vm)
{
	json_t *j;
	assert_int_equal(ctl(&j, "balloon-stat", vm, NULL, NULL), 0);
	long long v = jget(json_array_get(json_object_get(j, "vms"), 0), "size_bytes");
	json_decref(j);
	return v;
}

/* Stops v0..v(n-1), and waits for densevm to exit. */
static void stop_vms(int n)
{
	for (int i = 0; i < n; i++) {
		char name[8];
		snprintf(name, sizeof(name), "v%d", i);
		assert_int_equal(ctl(NULL, "stop", name, NULL, NULL), 0);
	}
	int st;
	assert_int_equal(waitpid(g_pid, &st, 0), g_pid);
	g_pid = -1;
}

static void wait_balloon(const char *vm, long long bytes)
{
	for (int i = 0; i < 300 && balloon_size(vm) != bytes; i++)
		usleep(50000);
	assert_int_equal(balloon_size(vm), bytes);
}

static void check_ok(void)
{
	json_t *s;
	assert_int_equal(ctl(&s, "stat", "--check", NULL, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(s, "check")), "ok");
	json_decref(s);
}

static void balloon_takes_shared_pages(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	start_densevm("[ksm]\nsleep_ms = 20\n"
		      "[vm v]\ncount = 3\nmem = 128M\nworkload = idle touch=1\n");
	json_t *j, *s;
	long long sharing = 0, last = -1;
	int same = 0;
	/* merged, and settled: unchanged for 1.2 s, longer than the 1 s
	 * between two reads of a VM's dirty log (dirty_ms) */
	for (int i = 0; i < 150 && (sharing < 60000 || same < 6); i++) {
		usleep(200000);
		last = sharing;
		assert_int_equal(ctl(&j, "ksm", NULL, NULL, NULL), 0);
		sharing = jget(j, "global.pages_sharing");
		json_decref(j);
		same = sharing == last ? same + 1 : 0;
	}
	assert_true(sharing >= 60000);
	check_ok();
	assert_int_equal(ctl(&s, "stat", "v0", NULL, NULL), 0);
	long long v0_before = jget(vm_ksm(s), "pages_sharing");
	json_decref(s);

	assert_int_equal(ctl(NULL, "balloon", "v0", "64M", NULL), 0);
	wait_balloon("v0", 64 << 20);
	check_ok();
	assert_int_equal(ctl(&s, "stat", "v0", NULL, NULL), 0);
	json_t *v = json_array_get(json_object_get(s, "vms"), 0);
	long long ballooned = jget(json_object_get(v, "pages"), "ballooned");
	long long v0_after = jget(vm_ksm(s), "pages_sharing");
	json_decref(s);
	print_message("[ balloon ] v0: %lld pages shared before, %lld after "
		      "ballooning %lld pages\n", v0_before, v0_after, ballooned);
	assert_int_equal(ballooned, 16384);
	/* most ballooned pages were shared ones, and ksm let go of them */
	assert_true(v0_before - v0_after >= 16384 * 9 / 10);

	assert_int_equal(ctl(NULL, "balloon", "v0", "0", NULL), 0);
	wait_balloon("v0", 0);
	check_ok();
	stop_vms(3);
}

/* ------------------------------------------- stat --check under load */

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* One request on the socket (no process spawned); its time in ms, and
 * the reply (the caller decrefs). */
static double timed_request(bool check, json_t **reply)
{
	char err[256];
	json_t *req = json_pack("{s:s, s:[]}", "cmd", "stat", "args");
	if (check)
		json_object_set_new(req, "check", json_true());
	double t0 = now_ms();
	*reply = ctl_request(g_sock, req, 60000, err, sizeof(err));
	double t = now_ms() - t0;
	json_decref(req);
	if (!*reply)
		fail_msg("stat: %s", err);
	return t;
}

static volatile bool g_flap;

/* Inflates and deflates v0's balloon over its merged pages, again and
 * again, while the checks run. */
static void *flapper(void *arg)
{
	(void)arg;
	while (g_flap) {
		ctl(NULL, "balloon", "v0", "48M", NULL);
		usleep(150000);
		ctl(NULL, "balloon", "v0", "0", NULL);
		usleep(150000);
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The scanner at full speed (sleep_ms 0) over 4 guests, a balloon
 * flapping on merged pages: every `stat --check` says ok (a release in
 * flight is not a failure), and a check does not wait for the end of a
 * scan pass (the scanner hands its lock over at its next throttle
 * point). */
static void check_cheap_while_balloon_flaps(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	start_densevm("[ksm]\nsleep_ms = 0\n"
		      "[vm v]\ncount = 4\nmem = 192M\n"
		      "workload = fill mib=160 identical=70 zero=10 hold=-1\n");
	json_t *j;
	long long sharing = 0;
	for (int i = 0; i < 150 && sharing < 100000; i++) {
		usleep(100000);
		assert_int_equal(ctl(&j, "ksm", NULL, NULL, NULL), 0);
		sharing = jget(j, "global.pages_sharing");
		json_decref(j);
	}
	assert_true(sharing >= 100000);
	g_flap = true;
	pthread_t thr;
	assert_int_equal(pthread_create(&thr, NULL, flapper, NULL), 0);
	enum { N = 24 };
	double tc[N], ts[N];
	for (int i = 0; i < N; i++) {
		tc[i] = timed_request(true, &j);
		const char *c = json_string_value(json_object_get(j, "check"));
		if (!c || strcmp(c, "ok"))
			fail_msg("stat --check %d: %s", i,
				 json_string_value(json_object_get(j, "error")) ?: "?");
		json_decref(j);
		ts[i] = timed_request(false, &j);
		json_decref(j);
		usleep(50000);
	}
	g_flap = false;
	pthread_join(thr, NULL);
	qsort(tc, N, sizeof(double), cmp_double);
	qsort(ts, N, sizeof(double), cmp_double);
	print_message("[ check ] 4 x 160 MiB, sleep_ms 0, balloon flapping: "
		      "stat --check median %.1f ms, max %.1f ms; stat median %.1f "
		      "ms, max %.1f ms; %d of %d ok\n", tc[N / 2], tc[N - 1],
		      ts[N / 2], ts[N - 1], N, N);
	/* A check walks every page (a few ms here) on top of what any
	 * request costs on this busy host, and takes ksm's lock at the
	 * scanner's next handover point (every 64 pages of a scan, a base
	 * sweep or a dirty-log read), not at the end of a pass (which took up
	 * to 27.5 s on a larger fleet).  A merge batch's flush still holds the
	 * lock (100-175 ms measured beside 8 guests filling), and single waits
	 * up to 0.5 s were seen in CI before the sweep had handover points,
	 * so the bound is on the pathological case, and the figures are
	 * printed. */
	assert_true(tc[N / 2] < ts[N / 2] + 50);
	assert_true(tc[N - 1] < 2000);
	check_ok();
	stop_vms(4);
}

/* ------------------------------------------ the control plane under load */

/* Issue 12's control-plane test: the scanner at full speed (sleep_ms 0)
 * over 8 guests (clones, shuffled, unique-heavy) that are filling and
 * merging, one client running `stat --check` back to back, another
 * sending 200 plain `stat`s: no `stat` waits for a check (p99 <= 50 ms;
 * main's code took 0.5-0.7 s), and every check says ok.  The plain build
 * runs 8 x 192 MiB; the 8 x 384 MiB is bench/bench_ctl.c (20 s
 * more per run).  The sanitizer build runs 8 x 96 MiB for the races,
 * not the latency: there the scanner holds its lock several times longer
 * (p99 209 ms seen in a CI run), so it only asserts that no stat waited
 * as long as a check loop did before (the old code: 1.3 s p99). */
static void ctl_stat_fast_while_checks_loop(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	unsigned mib = test_san_light() ? 96 : 192;
	char conf[1024];
	ctl_load_conf(conf, sizeof(conf), mib);
	start_densevm(conf);
	struct ctl_load l;
	int rc = ctl_load_run(g_sock, 200, 20, 30, &l);
	if (!l.n)
		fail_msg("%s", l.err);
	double p50 = percentile(l.stat_ms, l.n, 50), p99 = percentile(l.stat_ms, l.n, 99);
	double bound = test_san_light() ? 1000 : 50;
	print_message("[ ctl ] 8 x %u MiB, sleep_ms 0, stat --check looping: "
		      "stat p50 %.1f ms, p99 %.1f ms (bound %.0f), max %.1f ms; "
		      "%u checks (max %.0f ms), %u failed; %lld merges meanwhile\n",
		      mib, p50, p99, bound, l.stat_ms[l.n - 1], l.checks,
		      l.check_max_ms, l.checks_failed, l.merges);
	struct ctl_load r = l;
	ctl_load_free(&l);
	if (rc || r.checks_failed || r.stats_failed)
		fail_msg("%s", r.err);
	/* the scanner was busy: merging while we measured */
	assert_true(r.merges > 0);
	assert_true(r.checks >= 3);
	assert_true(p99 <= bound);
	/* teardown stops the run */
}

/* ------------------------------------------------------- engine=kernel */

static void kernel_engine_through_run(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	if (ksm_sysctl_read("/sys/kernel/mm/ksm/run") != 0 ||
	    access("/sys/kernel/mm/ksm/run", W_OK)) {
		print_message("[  SKIPPED ] KSM absent, read-only or already running\n");
		skip();
	}
	long long pts0 = ksm_sysctl_read("/sys/kernel/mm/ksm/pages_to_scan");
	/* two domains cannot be kept apart by kernel KSM: refused */
	char path[64];
	snprintf(path, sizeof(path), "/tmp/densevm-ksm-kdom-%d.conf", (int)getpid());
	write_file(path, "[ksm]\nengine = kernel\n[vm a]\nworkload = idle seconds=0\n"
		   "domain = x\n[vm b]\nworkload = idle seconds=0\ndomain = y\n");
	char *argv[] = { "densevm", "run", "--ctl", "none", "--config", path, NULL };
	char *out;
	assert_int_equal(run_densevm(argv, &out), 1);
	assert_non_null(strstr(out, "cannot keep domains apart"));
	free(out);
	unlink(path);
	assert_int_equal(ksm_sysctl_read("/sys/kernel/mm/ksm/run"), 0);

	g_kernel_ksm = true;
	start_densevm("[ksm]\nengine = kernel\npages_per_sec = 500000\nsleep_ms = 20\n"
		      "[vm k]\ncount = 2\nmem = 64M\n"
		      "workload = fill mib=40 identical=60 zero=20 hold=-1\n");
	json_t *j = NULL;
	long long sharing = 0;
	bool ran = false;
	for (int i = 0; i < 100 && sharing < 4000; i++) {
		usleep(200000);
		json_decref(j);
		assert_int_equal(ctl(&j, "ksm", NULL, NULL, NULL), 0);
		sharing = jget(j, "global.pages_sharing");
		if (ksm_sysctl_read("/sys/kernel/mm/ksm/run") == 1)
			ran = true;
	}
	assert_string_equal(json_string_value(json_object_get(j, "engine")), "kernel");
	json_decref(j);
	assert_true(ran);
	assert_int_equal(ksm_sysctl_read("/sys/kernel/mm/ksm/pages_to_scan"), 10000);
	/* identical pages of the two guests merged (6144 each) */
	assert_true(sharing >= 4000);
	assert_int_equal(ctl(NULL, "stop", "k0", NULL, NULL), 0);
	assert_int_equal(ctl(NULL, "stop", "k1", NULL, NULL), 0);
	int st;
	assert_int_equal(waitpid(g_pid, &st, 0), g_pid);
	g_pid = -1;
	assert_int_equal(ksm_sysctl_read("/sys/kernel/mm/ksm/run"), 0);
	assert_int_equal(ksm_sysctl_read("/sys/kernel/mm/ksm/pages_to_scan"), pts0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(config_errors_name_file_and_line),
		cmocka_unit_test_teardown(dirty_unshare_reshare_with_checks, teardown),
		cmocka_unit_test_teardown(balloon_takes_shared_pages, teardown),
		cmocka_unit_test_teardown(check_cheap_while_balloon_flaps, teardown),
		cmocka_unit_test_teardown(ctl_stat_fast_while_checks_loop, teardown),
		cmocka_unit_test_teardown(kernel_engine_through_run, teardown),
	};
	if (argc > 1)   /* one case by name (a glob) */
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
