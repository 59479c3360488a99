/*
 * bench_ctl.c - issue 12's control-plane figure at full size: `ctl stat`
 * latency while `stat --check` runs in a loop, the scanner at full speed
 * (sleep_ms 0) over 8 guests of 384 MiB (4 clones, 2 shuffled, 2
 * unique-heavy, each filling 320 MiB: tests/support/ctl_load.c), through
 * the real `densevm run`.  From the first merge on, 200 plain `stat`s go
 * 50 ms apart (about 11 s: the fill and most of the merging), each on its
 * own connection, while another client checks back to back.
 *
 * --baseline DENSEVM measures another build (main's, say) in the same
 * session, alternating with this one in every repetition.  Figures per
 * build, medians over the repetitions: stat p50 / p99 / max (ms), checks
 * done and failed, the slowest check.  The test that asserts the bound at
 * a smaller size is test_ksm_cli's ctl_stat_fast_while_checks_loop.
 * Writes DIR/ctl.json.  Measures; asserts nothing.
 */
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "bench_util.h"
#include "ctl_load.h"

#define MAX_REPS 16

static char g_guest[PATH_MAX];

struct result {
	double p50, p99, max, check_max;
	unsigned checks, checks_failed, stats_failed;
	long long merges;
	bool ok;
};

static pid_t spawn_run(const char *densevm, const char *conf, const char *sock,
		       const char *log)
{
	char *argv[] = { (char *)densevm, "run", "--quiet", "--config",
			 (char *)conf, "--ctl", (char *)sock, "--guest", g_guest,
			 "--timeout", "3600", NULL };
	return bench_spawn_logged(argv, log);
}

static int run_once(const char *densevm, unsigned mib, unsigned nstats,
		    unsigned gap_ms, struct result *r)
{
	char conf[160], sock[96], log[160], text[1024];
	snprintf(conf, sizeof(conf), "/tmp/bench-ctl-%d.conf", (int)getpid());
	snprintf(sock, sizeof(sock), "/tmp/bench-ctl-%d.sock", (int)getpid());
	snprintf(log, sizeof(log), "/tmp/bench-ctl-%d.log", (int)getpid());
	ctl_load_conf(text, sizeof(text), mib);
	FILE *f = fopen(conf, "w");
	if (!f || fputs(text, f) < 0) {
		perror(conf);
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	unlink(sock);
	memset(r, 0, sizeof(*r));
	pid_t pid = spawn_run(densevm, conf, sock, log);
	for (int i = 0; pid > 0 && i < 400 && access(sock, F_OK); i++)
		usleep(25000);
	struct ctl_load l = { 0 };
	int rc = pid > 0 && !access(sock, F_OK) ?
		 ctl_load_run(sock, nstats, gap_ms, 60, &l) : -1;
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
	if (rc || !l.n) {
		fprintf(stderr, "bench_ctl: %s: %s (log %s)\n", densevm,
			l.err[0] ? l.err : "did not start", log);
		ctl_load_free(&l);
		return -1;
	}
	r->p50 = bench_pct(l.stat_ms, l.n, 50);
	r->p99 = bench_pct(l.stat_ms, l.n, 99);
	r->max = l.stat_ms[l.n - 1];
	r->checks = l.checks;
	r->checks_failed = l.checks_failed;
	r->stats_failed = l.stats_failed;
	r->check_max = l.check_max_ms;
	r->merges = l.merges;
	r->ok = true;
	if (l.checks_failed || l.stats_failed)
		fprintf(stderr, "bench_ctl: %s: %s\n", densevm, l.err);
	ctl_load_free(&l);
	unlink(conf);
	unlink(log);
	return 0;
}

static double med_of(struct result *r, int n, size_t off)
{
	double v[MAX_REPS];
	int k = 0;
	for (int i = 0; i < n; i++)
		if (r[i].ok)
			v[k++] = *(double *)((char *)&r[i] + off);
	return bench_pct(v, (size_t)k, 50);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "out", required_argument, 0, 'o' },
		{ "reps", required_argument, 0, 'r' },
		{ "guest", required_argument, 0, 'g' },
		{ "mib", required_argument, 0, 'm' },
		{ "stats", required_argument, 0, 's' },
		{ "gap-ms", required_argument, 0, 'G' },
		{ "baseline", required_argument, 0, 'b' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *outdir = "build/results", *baseline = NULL;
	int reps = 3, c;
	unsigned mib = 384, nstats = 200, gap = 50;
	char densevm[PATH_MAX + 16];
	bench_densevm_path(densevm, sizeof(densevm));
	snprintf(g_guest, sizeof(g_guest), "build/guest/microguest.elf");
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'o': outdir = optarg; break;
		case 'r': reps = atoi(optarg); break;
		case 'g': snprintf(g_guest, sizeof(g_guest), "%s", optarg); break;
		case 'm': mib = (unsigned)atoi(optarg); break;
		case 's': nstats = (unsigned)atoi(optarg); break;
		case 'G': gap = (unsigned)atoi(optarg); break;
		case 'b': baseline = optarg; break;
		case 'h':
			puts("usage: bench_ctl [--out DIR] [--reps N] [--guest ELF] [--mib M]\n"
			     "                 [--stats N] [--gap-ms T] [--baseline DENSEVM]\n"
			     "`ctl stat` latency while `stat --check` loops, the scanner at\n"
			     "full speed over 8 guests of M MiB (384) filling and merging:\n"
			     "N stats (200) T ms apart (50).  --baseline: another densevm\n"
			     "binary measured alternately in the same run.  Writes\n"
			     "DIR/ctl.json.  About 25 s per run.");
			return 0;
		default:
			fprintf(stderr, "bench_ctl: see --help\n");
			return 2;
		}
	}
	if (reps < 1 || reps > MAX_REPS || mib < 64 || mib > 4096 || !nstats ||
	    nstats > 100000) {
		fprintf(stderr, "bench_ctl: --reps 1-%d, --mib 64-4096, --stats 1-100000\n",
			MAX_REPS);
		return 2;
	}
	if (access("/dev/kvm", R_OK | W_OK)) {
		fprintf(stderr, "bench_ctl: needs /dev/kvm: skipped\n");
		return 0;
	}
	mkdir(outdir, 0755);
	const char *bin[2] = { densevm, baseline };
	const char *name[2] = { "this", "baseline" };
	int narms = baseline ? 2 : 1;
	static struct result r[2][MAX_REPS];
	for (int rep = 0; rep < reps; rep++)
		for (int a = 0; a < narms; a++) {
			int k = (a + rep) % narms;   /* alternate the order too */
			fprintf(stderr, "bench_ctl: rep %d/%d, %s (%s)\n", rep + 1, reps,
				name[k], bin[k]);
			if (run_once(bin[k], mib, nstats, gap, &r[k][rep]) == 0)
				fprintf(stderr, "bench_ctl:   stat p50 %.1f p99 %.1f max "
					"%.1f ms; %u checks (%u failed, slowest %.0f ms); "
					"%lld merges meanwhile\n", r[k][rep].p50,
					r[k][rep].p99, r[k][rep].max, r[k][rep].checks,
					r[k][rep].checks_failed, r[k][rep].check_max,
					r[k][rep].merges);
		}
	json_t *root = json_pack("{s:i, s:i, s:i, s:i}", "vms", 8, "mib", (int)mib,
				 "stats", (int)nstats, "gap_ms", (int)gap);
	printf("| build | stat p50 | p99 | max | checks (failed) | slowest check |\n"
	       "|---|---|---|---|---|---|\n");
	for (int a = 0; a < narms; a++) {
		unsigned checks = 0, failed = 0, runs = 0;
		for (int i = 0; i < reps; i++) {
			checks += r[a][i].checks;
			failed += r[a][i].checks_failed + r[a][i].stats_failed;
			runs += r[a][i].ok;
		}
		double p50 = med_of(r[a], reps, offsetof(struct result, p50));
		double p99 = med_of(r[a], reps, offsetof(struct result, p99));
		double max = med_of(r[a], reps, offsetof(struct result, max));
		double cmax = med_of(r[a], reps, offsetof(struct result, check_max));
		json_object_set_new(root, name[a], json_pack(
			"{s:s, s:i, s:f, s:f, s:f, s:i, s:i, s:f}", "densevm", bin[a],
			"runs", (int)runs, "stat_p50_ms", p50, "stat_p99_ms", p99,
			"stat_max_ms", max, "checks", (int)checks, "failed", (int)failed,
			"check_max_ms", cmax));
		printf("| %s | %.1f ms | %.1f ms | %.1f ms | %u (%u) | %.0f ms |\n",
		       name[a], p50, p99, max, checks, failed, cmax);
	}
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/ctl.json", outdir);
	if (json_dump_file(root, path, JSON_INDENT(2)))
		fprintf(stderr, "bench_ctl: cannot write %s\n", path);
	json_decref(root);
	return 0;
}
