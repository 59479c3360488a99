/*
 * bench_policy.c - the overcommit policy's figures against oVirt MOM's
 * rules (strategy = mom) in the same run, on real micro guests in a fresh
 * v1/v2 memory cgroup per run, through the real `densevm run`.
 *
 * Fleet: 4 idle VMs of 256 MiB (memory touched once, then free in the
 * guest) and 4 active ones of 256 MiB rewriting 96 MiB (`dirty`, which
 * verifies every page and reports the rate it achieved).  After the idle
 * VMs touched their memory and the policy's working-set estimate saw them
 * idle again (under 8 MiB), the budget is set to the usage, 3 s later it
 * is lowered by SQUEEZE (512 MiB).  Arms, alternating in every repetition:
 *   shares  - our strategy, period 1 s;
 *   mom     - strategy = mom: MOM's default rules, its 10 s period;
 *   nosqueeze - shares with no budget change (the throughput reference).
 * Figures, medians over the repetitions:
 *   reaction   - budget lowered to cgroup usage under it (s; 90 s cap,
 *                -1 when a VM ended first);
 *   churn      - target reversals per VM per minute after it settled
 *                (the decision log, from 3 s after the reaction);
 *   allocation - each VM's allocation against the shares-and-idle-tax
 *                ideal computed here from the same tick's inputs (water-
 *                filling with rho equal across the VMs between the
 *                policy's own bounds for the tick's state), the largest
 *                error in % of its RAM over the settled ticks (no target
 *                moved in 3 ticks) from 3 s after the reaction;
 *   throughput - the active VMs' achieved rewrite rate, % of nosqueeze's;
 *   cpu        - the policy thread's CPU time; and separately 64 idle VMs
 *                of 32 MiB for 30 s: % of a core.
 * Writes DIR/policy.json.  Measures; asserts nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "bench_util.h"
#include "cli/cli.h"
#include "cli/ctl.h"
#include "util/cgroup.h"

#define MiB (1ull << 20)
#define SQUEEZE (512 * MiB)
#define RUN_S 80   /* MOM needs ~40 s for the squeeze */


static char g_densevm[PATH_MAX], g_guest[PATH_MAX], g_dir[128];
static struct memcg g_cg, g_cg_parent;   /* util/cgroup.h */

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A fresh child of this process's v1 memory cgroup, for one run. */
static bool cg_make(const char *tag)
{
	struct host_mem h;
	char name[128];
	host_mem_open(&h, NULL);
	if (h.kind != HOST_MEM_V1)
		return false;
	g_cg_parent.v = 1;
	snprintf(g_cg_parent.dir, sizeof(g_cg_parent.dir), "%s", h.dir);
	snprintf(name, sizeof(name), "bench-policy-%s-%d", tag, (int)getpid());
	return memcg_make(&g_cg, &g_cg_parent, name) == 0;
}

static json_t *ctl(const char *sock, json_t *req)
{
	char err[256];
	return ctl_request(sock, req, 30000, err, sizeof(err));
}

static json_t *ctl_policy(const char *sock, const char *a1, const char *a2,
			  const char *a3)
{
	json_t *args = json_array();
	const char *a[] = { a1, a2, a3 };
	for (int i = 0; i < 3 && a[i]; i++)
		json_array_append_new(args, json_string(a[i]));
	json_t *req = json_pack("{s:s, s:o}", "cmd", "policy", "args", args);
	json_t *r = ctl(sock, req);
	json_decref(req);
	return r;
}

/* The largest working-set estimate among the idle VMs (bytes; one not
 * managed yet counts as the most), or 0 when the socket does not answer. */
#define IDLE_ACTIVE_MAX (8 * MiB)
static uint64_t max_idle_active(const char *sock)
{
	json_t *p = ctl_policy(sock, NULL, NULL, NULL), *v;
	uint64_t most = 0;
	size_t i;
	json_array_foreach(json_object_get(p, "vms"), i, v) {
		const char *name = json_string_value(json_object_get(v, "name"));
		uint64_t a = (uint64_t)json_integer_value(json_object_get(v, "active"));
		if (name && !strncmp(name, "idle", 4) &&
		    !json_is_true(json_object_get(v, "managed")))
			a = UINT64_MAX;   /* not measured yet */
		if (name && !strncmp(name, "idle", 4) && a > most)
			most = a;
	}
	json_decref(p);
	return most;
}

static int count_in(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	int n = 0;
	while (f && fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return n;
}

/* The active VMs' achieved rate (sum of "rate=X%/s"), or -1. */
static double dirty_rate(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	double sum = 0;
	int n = 0;
	while (f && fgets(line, sizeof(line), f)) {
		char *r = strstr(line, "dirty: done");
		if (r && (r = strstr(r, "rate=")) && strstr(line, "mismatches=0")) {
			sum += strtod(r + 5, NULL);
			n++;
		}
	}
	if (f)
		fclose(f);
	return n == 4 ? sum : -1;
}

/* ------------------------------------------------- the offline ideal */

/*
 * Allocations with rho equal across the VMs that are not at a bound:
 * rho = S / (a/P * (f + k(1-f))), f = min(1, act/a).  For a >= act,
 * a * (f + k(1-f)) = act + k(a - act), so at a given rho a VM wants
 * a = act + (S*P/rho - act)/k (or S*P/rho when that is below act),
 * clamped to [lb, ram].  Bisection on rho makes the sum the total.
 */
static void ideal(unsigned n, const double *S, const double *act,
		  const double *lb, const double *ub, double k, double total,
		  double *a)
{
	double lo = 1e-12, hi = 1e12;
	for (int it = 0; it < 200; it++) {
		double rho = sqrt(lo * hi), sum = 0;
		for (unsigned i = 0; i < n; i++) {
			double w = S[i] * 4096.0 / rho;   /* a*(f+k(1-f)) in bytes */
			double x = w <= act[i] ? w : act[i] + (w - act[i]) / k;
			a[i] = fmin(fmax(x, lb[i]), ub[i]);
			sum += a[i];
		}
		if (sum > total)
			lo = rho;   /* too generous: raise rho */
		else
			hi = rho;
	}
}

/* Worst |allocation - ideal| in % of RAM in one logged tick. */
static double tick_error(json_t *j)
{
	json_t *vms = json_object_get(j, "vms");
	json_t *outv = json_object_get(json_object_get(j, "out"), "vms");
	unsigned n = (unsigned)json_array_size(vms);
	bool soft = !strcmp(json_string_value(json_object_get(json_object_get(
		j, "out"), "state")) ?: "", "SOFT");
	double S[64], act[64], lb[64], ub[64], have[64], a[64], total = 0, err = 0;
	if (n > 64)
		n = 64;
	for (unsigned i = 0; i < n; i++) {
		json_t *v = json_array_get(vms, i);
#define G(o, k) ((double)json_integer_value(json_object_get(o, k)))
		double ram = G(v, "ram"), t = G(json_array_get(outv, i), "target");
		double used = G(v, "g_total") - G(v, "g_available") - G(v, "balloon_size");
		S[i] = G(v, "shares");
		act[i] = G(v, "active_bytes");
		/* the policy's own bounds (policy_shares.c, defaults
		 * min_guest_free 0.2): used plus the guest-free share or what
		 * a guest at its floor holds, and in SOFT the soft floor
		 * (active plus the guest-free share) too */
		used = fmax(used, 0);
		lb[i] = fmax(G(v, "min"), used + fmax(0.2 * ram, G(v, "g_floor")));
		if (soft)
			lb[i] = fmax(lb[i], act[i] + 0.2 * ram);
		ub[i] = G(v, "max") > 0 ? G(v, "max") : ram;
		lb[i] = fmin(lb[i], ub[i]);   /* max wins, as in the policy */
		have[i] = ram - t;
		total += have[i];
	}
	ideal(n, S, act, lb, ub, 1.0 / (1.0 - 0.75), total, a);
	for (unsigned i = 0; i < n; i++) {
		double ram = G(json_array_get(vms, i), "ram");
		err = fmax(err, fabs(have[i] - a[i]) / ram * 100);
	}
#undef G
	return err;
}

/* No VM's target changes in this tick. */
static bool tick_still(json_t *j)
{
	json_t *vms = json_object_get(j, "vms");
	json_t *outv = json_object_get(json_object_get(j, "out"), "vms");
	for (size_t i = 0; i < json_array_size(vms); i++)
		if (json_integer_value(json_object_get(json_array_get(vms, i),
						       "balloon_target")) !=
		    json_integer_value(json_object_get(json_array_get(outv, i),
						       "target")))
			return false;
	return true;
}

/*
 * The worst tick_error() over the settled ticks from t_from (ns) on: the
 * whole fleet there (VMs leave it as they exit) and no target changed in
 * this tick or the SETTLED_TICKS - 1 before it, so the policy had nothing
 * left to do.  Ticks while it still walks toward a moved ideal at its
 * step rate are left out (when the idle VMs' working set ages out of its
 * window the ideal jumps by a fifth of their RAM), and so is only the last
 * tick, which came after the squeeze stopped binding in most runs: the
 * idle guests never touch again what their balloons gave back, so every
 * balloon ends at 0 with usage under the budget.  -1 when none settled.
 */
#define SETTLED_TICKS 3
static double alloc_error(const char *log, uint64_t t_from)
{
	FILE *f = fopen(log, "r");
	char *line = NULL;
	size_t cap = 0;
	double worst = -1;
	int still = 0;
	while (f && getline(&line, &cap, f) > 0) {
		json_t *j = json_loads(line, 0, NULL);
		if (!j)
			continue;
		bool full = json_array_size(json_object_get(j, "vms")) == 8;
		still = full && tick_still(j) ? still + 1 : 0;
		if (still >= SETTLED_TICKS &&
		    (uint64_t)json_integer_value(json_object_get(j, "now_ns")) >= t_from)
			worst = fmax(worst, tick_error(j));
		json_decref(j);
	}
	if (f)
		fclose(f);
	free(line);
	return worst;
}

/* Target reversals per VM per minute in log ticks after t_from (ns). */
static double churn(const char *log, uint64_t t_from)
{
	FILE *f = fopen(log, "r");
	char *line = NULL;
	size_t cap = 0;
	int last_dir[64] = { 0 };
	uint64_t rev = 0, t0 = 0, t1 = 0;
	unsigned n = 0;
	while (f && getline(&line, &cap, f) > 0) {
		json_t *j = json_loads(line, 0, NULL);
		if (!j)
			continue;
		uint64_t t = (uint64_t)json_integer_value(json_object_get(j, "now_ns"));
		if (t >= t_from) {
			json_t *vms = json_object_get(j, "vms");
			json_t *outv = json_object_get(json_object_get(j, "out"), "vms");
			n = (unsigned)json_array_size(vms);
			for (unsigned i = 0; i < n && i < 64; i++) {
				json_int_t cur = json_integer_value(json_object_get(
					json_array_get(vms, i), "balloon_target"));
				json_int_t nt = json_integer_value(json_object_get(
					json_array_get(outv, i), "target"));
				if (nt == cur)
					continue;
				int d = nt > cur ? 1 : -1;
				rev += last_dir[i] && last_dir[i] != d;
				last_dir[i] = d;
			}
			if (!t0)
				t0 = t;
			t1 = t;
		}
		json_decref(j);
	}
	if (f)
		fclose(f);
	free(line);
	double min = (double)(t1 - t0) / 60e9;
	return n && min > 0 ? (double)rev / n / min : 0;
}

/* --------------------------------------------------------------- a run */

struct result {
	double reaction, churn, alloc_err, rate, cpu_s;
	int oom;
};

static pid_t spawn_run(const char *conf, const char *sock, const char *out)
{
	char *argv[] = { g_densevm, "run", "--config", (char *)conf, "--ctl",
			 (char *)sock, "--guest", g_guest, "--timeout", "120", NULL };
	/* the child joins the cgroup: this process writes its pid first */
	return bench_spawn_logged(argv, out);
}

static bool wait_sock(const char *sock)
{
	for (int i = 0; i < 200 && access(sock, F_OK); i++)
		usleep(25000);
	return !access(sock, F_OK);
}

static int run_arm(const char *arm, int rep, struct result *r)
{
	bool mom = !strcmp(arm, "mom"), squeeze = strcmp(arm, "nosqueeze");
	char conf[256], sock[256], out[256], plog[256];
	snprintf(conf, sizeof(conf), "%s/policy-%s-%d.conf", g_dir, arm, rep);
	snprintf(sock, sizeof(sock), "/tmp/bench-policy-%d.sock", (int)getpid());
	snprintf(out, sizeof(out), "%s/policy-%s-%d.out", g_dir, arm, rep);
	snprintf(plog, sizeof(plog), "%s/policy-%s-%d.jsonl", g_dir, arm, rep);
	unlink(plog);
	FILE *f = fopen(conf, "w");
	if (!f)
		return -1;
	fprintf(f, "[policy]\nstrategy = %s\nhost_budget = 64G\nlog = %s\n"
		"[balloon]\nstats_period_ms = 500\n"
		"[vm idle]\ncount = 4\nmem = 256M\nworkload = idle touch=1 seconds=%d\n"
		"[vm busy]\ncount = 4\nmem = 256M\n"
		"workload = dirty mib=96 rate=1000 seconds=%d\n",
		mom ? "mom" : "shares", plog, RUN_S, RUN_S);
	fclose(f);
	memset(r, 0, sizeof(*r));
	if (!cg_make(arm))
		return -1;
	/* move ourselves in so the child starts inside, then back out */
	memcg_join(&g_cg, 0);
	unlink(sock);
	pid_t pid = spawn_run(conf, sock, out);
	memcg_join(&g_cg_parent, 0);
	if (pid < 0 || !wait_sock(sock))
		return -1;
	for (int i = 0; i < 400 && count_in(out, "idle: touched") < 4; i++)
		usleep(50000);
	usleep(1000000);
	/* and until the policy sees them idle: their touch stays in the
	 * working-set window for up to two windows, and a squeeze before
	 * that measures the estimate aging out (the ideal jumps, the policy
	 * rebalances, then deflates), not the idle tax */
	for (int i = 0; i < 400 && max_idle_active(sock) > IDLE_ACTIVE_MAX; i++)
		usleep(100000);
	char b[32];
	uint64_t u0 = (uint64_t)memcg_usage(&g_cg);
	uint64_t b0 = u0 + u0 / 12;   /* ~8% free: HIGH */
	snprintf(b, sizeof(b), "%llu", (unsigned long long)b0);
	json_decref(ctl_policy(sock, "set", "host_budget", b));
	usleep(3000000);
	r->reaction = -1;
	double t0 = now_s();
	uint64_t settled_ns = 0;
	if (squeeze) {
		uint64_t b1 = b0 - SQUEEZE;
		snprintf(b, sizeof(b), "%llu", (unsigned long long)b1);
		json_decref(ctl_policy(sock, "set", "host_budget", b));
		t0 = now_s();
		while (now_s() - t0 < 90) {
			/* a VM that ended frees its memory: that is no reaction
			 * (MOM's squeeze outlasted the run; it read 65-76 s) */
			if (count_in(out, ": exited:") || count_in(out, ": timeout:"))
				break;
			if ((uint64_t)memcg_usage(&g_cg) <= b1) {
				r->reaction = now_s() - t0;
				break;
			}
			usleep(20000);
		}
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		settled_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec +
			     3000000000ull;
	}
	json_t *p = ctl_policy(sock, NULL, NULL, NULL);
	int st;
	/* the policy's CPU up to here; then the run ends on its own */
	for (int i = 0; i < (RUN_S + 30) * 10; i++) {
		json_t *q = ctl_policy(sock, NULL, NULL, NULL);
		if (!q)
			break;
		json_decref(p);
		p = q;
		usleep(100000);
	}
	r->cpu_s = p ? json_number_value(json_object_get(p, "cpu_seconds")) : -1;
	json_decref(p);
	waitpid(pid, &st, 0);
	r->oom = (int)memcg_oom_kills(&g_cg);
	r->rate = dirty_rate(out);
	r->churn = squeeze ? churn(plog, settled_ns) : 0;
	r->alloc_err = squeeze ? alloc_error(plog, settled_ns) : 0;
	memcg_remove(&g_cg);
	fprintf(stderr, "bench_policy: %s rep %d: reaction %.2f s, churn %.2f/VM/min, "
		"allocation vs ideal %.1f%% of RAM, active rate %.1f%%/s, policy CPU "
		"%.3f s, OOM kills %d, exit %d\n", arm, rep, r->reaction, r->churn,
		r->alloc_err, r->rate, r->cpu_s, r->oom, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return 0;
}

/* 64 idle VMs of 32 MiB for 30 s: the policy's CPU, % of a core. */
static double cpu_64(void)
{
	char conf[256], sock[256], out[256];
	snprintf(conf, sizeof(conf), "%s/policy-64.conf", g_dir);
	snprintf(sock, sizeof(sock), "/tmp/bench-policy-64-%d.sock", (int)getpid());
	snprintf(out, sizeof(out), "%s/policy-64.out", g_dir);
	FILE *f = fopen(conf, "w");
	if (!f)
		return -1;
	fprintf(f, "[policy]\n[balloon]\nstats_period_ms = 1000\n"
		"[vm v]\ncount = 64\nmem = 32M\nworkload = idle seconds=32\n");
	fclose(f);
	unlink(sock);
	pid_t pid = spawn_run(conf, sock, out);
	if (pid < 0 || !wait_sock(sock))
		return -1;
	usleep(1000000);
	json_t *a = ctl_policy(sock, NULL, NULL, NULL);
	double t0 = now_s();
	usleep(28000000);
	json_t *b = ctl_policy(sock, NULL, NULL, NULL);
	double dt = now_s() - t0;
	double cpu = a && b ? (json_number_value(json_object_get(b, "cpu_seconds")) -
			       json_number_value(json_object_get(a, "cpu_seconds"))) / dt * 100
			    : -1;
	json_decref(a);
	json_decref(b);
	waitpid(pid, NULL, 0);
	return cpu;
}

static double med(double *v, int n)
{
	double c[16];
	int m = 0;
	for (int i = 0; i < n && m < 16; i++)
		if (v[i] >= 0)
			c[m++] = v[i];
	return m ? bench_pct(c, (size_t)m, 50) : -1;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "out", required_argument, 0, 'o' },
		{ "reps", required_argument, 0, 'r' },
		{ "guest", required_argument, 0, 'g' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *outdir = "build/results";
	int reps = 3, c;
	bench_densevm_path(g_densevm, sizeof(g_densevm));
	snprintf(g_guest, sizeof(g_guest), "build/guest/microguest.elf");
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'o': outdir = optarg; break;
		case 'r': reps = atoi(optarg); break;
		case 'g': snprintf(g_guest, sizeof(g_guest), "%s", optarg); break;
		case 'h':
			puts("usage: bench_policy [--out DIR] [--reps N] [--guest ELF]\n"
			     "The policy against MOM's rules: reaction to a budget lowered\n"
			     "by 512 MiB, churn, allocation against the shares-and-idle-tax\n"
			     "ideal, active VMs' throughput, and the policy's CPU with 64\n"
			     "VMs.  Needs a writable v1 memory cgroup.  Writes\n"
			     "DIR/policy.json.  About 2.5 minutes per repetition.");
			return 0;
		default:
			fprintf(stderr, "bench_policy: see --help\n");
			return 2;
		}
	}
	if (reps < 1 || reps > 16) {
		fprintf(stderr, "bench_policy: --reps: 1 to 16\n");
		return 2;
	}
	mkdir(outdir, 0755);
	snprintf(g_dir, sizeof(g_dir), "%s", outdir);
	if (!cg_make("probe")) {
		fprintf(stderr, "bench_policy: no writable v1 memory cgroup: skipped\n");
		return 0;
	}
	memcg_remove(&g_cg);
	static const char *arms[] = { "shares", "mom", "nosqueeze" };
	struct result r[3][16];
	for (int rep = 0; rep < reps; rep++)
		for (int a = 0; a < 3; a++) {
			/* alternate the order too, so drift hits every arm alike */
			int k = (a + rep) % 3;
			fprintf(stderr, "bench_policy: rep %d/%d, arm %s\n", rep + 1, reps,
				arms[k]);
			if (run_arm(arms[k], rep, &r[k][rep]))
				fprintf(stderr, "bench_policy: %s rep %d failed\n", arms[k], rep);
		}
	double cpu64 = cpu_64();
	json_t *root = json_object();
	double base_rate[16];
	for (int i = 0; i < reps; i++)
		base_rate[i] = r[2][i].rate;
	double br = med(base_rate, reps);
	for (int a = 0; a < 2; a++) {
		double v[5][16];
		int oom = 0;
		for (int i = 0; i < reps; i++) {
			v[0][i] = r[a][i].reaction;
			v[1][i] = r[a][i].churn;
			v[2][i] = r[a][i].alloc_err;
			v[3][i] = r[a][i].rate >= 0 && br > 0 ? r[a][i].rate / br * 100 : -1;
			v[4][i] = r[a][i].cpu_s;
			oom += r[a][i].oom;
		}
		json_object_set_new(root, arms[a], json_pack(
			"{s:f, s:f, s:f, s:f, s:f, s:i}",
			"reaction_s", med(v[0], reps), "churn_per_vm_min", med(v[1], reps),
			"alloc_err_pct_ram", med(v[2], reps),
			"throughput_pct_of_nosqueeze", med(v[3], reps),
			"policy_cpu_s", med(v[4], reps), "oom_kills", oom));
		printf("| %s | %.2f s | %.2f | %.1f%% | %.1f%% | %.3f s | %d |\n", arms[a],
		       med(v[0], reps), med(v[1], reps), med(v[2], reps),
		       med(v[3], reps), med(v[4], reps), oom);
	}
	json_object_set_new(root, "reps", json_integer(reps));
	json_object_set_new(root, "cpu_64_vms_pct_core", json_real(cpu64));
	printf("policy CPU, 64 idle VMs: %.3f%% of a core\n", cpu64);
	char path[256];
	snprintf(path, sizeof(path), "%s/policy.json", outdir);
	if (json_dump_file(root, path, JSON_INDENT(2)))
		fprintf(stderr, "bench_policy: cannot write %s\n", path);
	json_decref(root);
	return 0;
}
