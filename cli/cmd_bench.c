/*
 * cmd_bench.c - `densevm bench [SCENARIO] [--arms LIST] [--reps N]
 * [--out DIR] [--quick] [--guest ELF]` and `densevm bench --plot DIR`:
 * finds the scenario (a file, or a name in bench/scenarios/), writes the
 * results folder's reproducibility facts (the scenario, the version, the
 * host's kernel, CPUs, THP, KSM and cgroup version, the RAM images'
 * checksums), runs the arms alternating across repetitions (bench_arm.c),
 * then the summary, the goals and the plots (bench_report.c,
 * bench_goals.c).
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>
#include "bench.h"
#include "cli.h"
#include "images/images.h"

static const char bench_usage[] =
"usage: densevm bench [SCENARIO] [--arms LIST] [--reps N] [--out DIR] [--quick]\n"
"                     [--guest ELF]\n"
"       densevm bench --plot DIR\n"
"\n"
"The dense-consolidation benchmark: the scenario's VMs under a host memory\n"
"budget (a memory cgroup limit), once per arm, each arm in a fresh cgroup\n"
"through a real `densevm run`, arms alternating across repetitions.\n"
"\n"
"SCENARIO is a file, or a name in bench/scenarios/ (default: default):\n"
"default, clones, mixed, squeeze, density, phases, many, real (RAM images\n"
"of real Linux guests: make images).\n"
"\n"
"  --arms LIST   comma-separated, default all: none, kernel-ksm (kernel KSM\n"
"                at ksmtuned's top rate), kernel+mom (kernel KSM + oVirt\n"
"                MOM's rules), dense (our sharing), policy (our ballooning),\n"
"                dense+policy (ours, both)\n"
"  --reps N      repetitions, 1-16 (default 1)\n"
"  --out DIR     results folder (default build/results/bench-SCENARIO)\n"
"  --quick       the scenario's short durations and workloads\n"
"  --guest ELF   micro guest image (default: next to the binary)\n"
"  --plot DIR    redraw the plots of a results folder, run nothing\n"
"\n"
"Prints a table per arm and the issue's goals computed from the run.\n"
"Writes DIR/summary.md|json, DIR/timeline-ARM-REP.csv|json (samples at the\n"
"scenario's sample_hz), DIR/usage.png|svg, DIR/savings.png|svg,\n"
"DIR/throughput.png|svg, the run\n"
"configs and outputs, DIR/host.json and a copy of the scenario.  Exit\n"
"status 0 when every arm ran (whether or not it fit), 1 when one could\n"
"not run, 2 on bad arguments or a bad scenario.\n";

/* SCENARIO as given, else bench/scenarios/NAME.ini beside the binary's
 * source tree (build/densevm -> ../bench/scenarios) or the cwd's. */
static int find_scenario(const char *arg, char *path, size_t len)
{
	if (strchr(arg, '/') || strstr(arg, ".ini")) {
		snprintf(path, len, "%s", arg);
		return access(path, R_OK) ? -ENOENT : 0;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = 0;
	const char *dir = dirname(exe);
	const char *cands[] = { "%s/../bench/scenarios/%s.ini",
				"%s/../../bench/scenarios/%s.ini", NULL };
	for (int i = 0; cands[i]; i++) {
		snprintf(path, len, cands[i], dir, arg);
		if (!access(path, R_OK))
			return 0;
	}
	snprintf(path, len, "bench/scenarios/%s.ini", arg);
	return access(path, R_OK) ? -ENOENT : 0;
}

static void read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	buf[0] = 0;
	if (f && fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = 0;
	if (f)
		fclose(f);
}

static void host_facts(const char *dir, const struct bench_scenario *sc)
{
	struct utsname u;
	uname(&u);
	char thp[128], ksm_run[16], ksm_pages[32], ksm_sleep[32];
	read_line("/sys/kernel/mm/transparent_hugepage/enabled", thp, sizeof(thp));
	read_line("/sys/kernel/mm/ksm/run", ksm_run, sizeof(ksm_run));
	read_line("/sys/kernel/mm/ksm/pages_to_scan", ksm_pages, sizeof(ksm_pages));
	read_line("/sys/kernel/mm/ksm/sleep_millisecs", ksm_sleep, sizeof(ksm_sleep));
	struct host_mem h;
	host_mem_open(&h, NULL);
	json_t *j = json_pack("{s:s, s:s, s:s, s:i, s:s, s:{s:s, s:s, s:s}, s:s, s:s}",
		"densevm", "0.1", "kernel", u.release, "machine", u.machine,
		"cpus", (int)sysconf(_SC_NPROCESSORS_ONLN), "thp", thp,
		"ksm", "run", ksm_run, "pages_to_scan", ksm_pages,
		"sleep_millisecs", ksm_sleep,
		"cgroup", h.kind == HOST_MEM_V1 ? "v1" : h.kind == HOST_MEM_V2 ? "v2" :
			  "none",
		"scenario", sc->path);
	/* the RAM images the groups load: which content, exactly */
	json_t *imgs = json_array();
	for (unsigned g = 0; g < sc->ngroups; g++)
		for (unsigned i = 0; i < sc->group[g].nimages; i++) {
			struct image *im;
			char e[PATH_MAX + 200];
			if (image_open(sc->group[g].image[i], &im, e, sizeof(e)))
				continue;
			json_array_append_new(imgs, json_pack("{s:s, s:s, s:s, s:s, s:I}",
				"group", sc->group[g].name, "path", im->dir,
				"checksum", im->m.checksum, "kernel", im->m.kernel,
				"ram_bytes", (json_int_t)im->m.ram_bytes));
			image_close(im);
		}
	json_object_set_new(j, "images", imgs);
	char p[PATH_MAX + 32];
	snprintf(p, sizeof(p), "%s/host.json", dir);
	json_dump_file(j, p, JSON_INDENT(2));
	json_decref(j);
	/* the scenario file itself */
	snprintf(p, sizeof(p), "%s/scenario.ini", dir);
	FILE *in = fopen(sc->path, "re"), *out = fopen(p, "we");
	char b[4096];
	size_t n;
	while (in && out && (n = fread(b, 1, sizeof(b), in)) > 0)
		fwrite(b, 1, n, out);
	if (in)
		fclose(in);
	if (out)
		fclose(out);
}

static int mkdirs(const char *path)
{
	char b[512];
	snprintf(b, sizeof(b), "%s", path);
	for (char *c = b + 1; *c; c++)
		if (*c == '/') {
			*c = 0;
			mkdir(b, 0755);
			*c = '/';
		}
	return mkdir(b, 0755) && errno != EEXIST ? -errno : 0;
}

/* DIR/density.csv from a summary (for --plot of an older folder). */
static void density_csv(const char *dir, json_t *summary)
{
	char p[PATH_MAX + 16];
	snprintf(p, sizeof(p), "%s/density.csv", dir);
	json_t *arms = json_object_get(summary, "arms");
	FILE *f = arms ? fopen(p, "we") : NULL;
	for (int a = 0; f && a < ARM_COUNT; a++) {
		json_t *d = json_object_get(json_object_get(arms, bench_arm_names[a]),
					    "density_vms");
		if (json_is_object(d))
			fprintf(f, "%s,%g,%g,%g\n", bench_arm_names[a],
				json_number_value(json_object_get(d, "median")),
				json_number_value(json_object_get(d, "min")),
				json_number_value(json_object_get(d, "max")));
	}
	if (f)
		fclose(f);
}

int cmd_bench(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "arms", required_argument, 0, 'a' },
		{ "reps", required_argument, 0, 'r' },
		{ "out", required_argument, 0, 'o' },
		{ "quick", no_argument, 0, 'q' },
		{ "guest", required_argument, 0, 'g' },
		{ "plot", required_argument, 0, 'p' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *arms = "all", *out = NULL, *plot = NULL, *guest = NULL;
	long reps = 1;
	bool quick = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'a': arms = optarg; break;
		case 'r':
			reps = strtol(optarg, &end, 10);
			if (*end || end == optarg || reps < 1 || reps > 16) {
				fprintf(stderr, "densevm bench: --reps '%s': an integer in "
					"[1, 16]\n", optarg);
				return 2;
			}
			break;
		case 'o': out = optarg; break;
		case 'q': quick = true; break;
		case 'g': guest = optarg; break;
		case 'p': plot = optarg; break;
		case 'h': fputs(bench_usage, stdout); return 0;
		default:
			fprintf(stderr, "densevm bench: see 'densevm bench --help'\n");
			return 2;
		}
	}
	if (plot) {
		/* the budget line from the folder's own scenario and summary */
		static struct bench_scenario psc;
		char sp[PATH_MAX], e[1024];
		snprintf(sp, sizeof(sp), "%s/scenario.ini", plot);
		snprintf(e, sizeof(e), "%s/summary.json", plot);
		json_t *sj = json_load_file(e, 0, NULL);
		struct bench_opts po = { .sc = &psc, .out = plot,
			.quick = json_is_true(json_object_get(sj, "quick")) };
		if (!bench_scenario_load(sp, &psc, e, sizeof(e))) {
			bench_write_budget(&po);
			if (psc.density)
				density_csv(plot, sj);
		}
		json_decref(sj);
		return bench_plot(plot) ? 1 : 0;
	}
	if (argc - optind > 1) {
		fprintf(stderr, "densevm bench: one SCENARIO at most (got '%s' and "
			"'%s')\n", argv[optind], argv[optind + 1]);
		return 2;
	}
	const char *name = optind < argc ? argv[optind] : "default";
	char path[PATH_MAX], err[1024];
	if (find_scenario(name, path, sizeof(path))) {
		fprintf(stderr, "densevm bench: no scenario '%s' (a file, or one of "
			"bench/scenarios/*.ini: default clones mixed squeeze density phases "
			"many real)\n",
			name);
		return 2;
	}
	unsigned mask;
	if (bench_arms_parse(arms, &mask, err, sizeof(err))) {
		fprintf(stderr, "densevm bench: --arms: %s\n", err);
		return 2;
	}
	static struct bench_scenario sc;
	if (bench_scenario_load(path, &sc, err, sizeof(err))) {
		fprintf(stderr, "densevm bench: %s\n", err);
		return 2;
	}
	char outbuf[512], self[PATH_MAX];
	if (!out) {
		snprintf(outbuf, sizeof(outbuf), "build/results/bench-%s", sc.name);
		out = outbuf;
	}
	if (mkdirs(out)) {
		fprintf(stderr, "densevm bench: --out %s: %s\n", out, strerror(errno));
		return 2;
	}
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = 0;
	struct bench_opts o = {
		.sc = &sc, .densevm = self, .guest = guest, .out = out, .quick = quick,
		.progress_tty = isatty(2), .reps = (unsigned)reps,
	};
	/* a folder used before: its timelines would pass for this run's */
	for (int a = 0; a < ARM_COUNT; a++)
		for (int rep = 0; rep < 16; rep++)
			for (int e = 0; e < 2; e++) {
				char af[32], tp[PATH_MAX + 64];
				snprintf(af, sizeof(af), "%s", bench_arm_names[a]);
				for (char *ch = af; *ch; ch++)
					if (*ch == '+')
						*ch = '_';
				snprintf(tp, sizeof(tp), "%s/timeline-%s-%d.%s", out, af, rep,
					 e ? "json" : "csv");
				unlink(tp);
			}
	char dp[PATH_MAX + 16];
	snprintf(dp, sizeof(dp), "%s/density.csv", out);
	unlink(dp);
	host_facts(out, &sc);
	bench_write_budget(&o);
	enum bench_arm_id list[ARM_COUNT];
	unsigned na = 0;
	for (int a = 0; a < ARM_COUNT; a++)
		if (mask & (1u << a))
			list[na++] = (enum bench_arm_id)a;
	double d = bench_duration(&sc, quick);
	fprintf(stderr, "densevm bench: scenario %s (%s), %u arm(s) x %ld rep(s) "
		"x %.0f s, guest RAM %llu MiB, budget %s%llu MiB -> %s\n", sc.name,
		path, na, reps, d, (unsigned long long)(bench_scenario_ram(&sc) >> 20),
		sc.budget ? "" : "none ", (unsigned long long)(sc.budget >> 20), out);
	struct bench_result *res = calloc(na * (size_t)reps, sizeof(*res));
	size_t nres = 0;
	int rc = 0;
	for (long rep = 0; rep < reps; rep++)
		for (unsigned k = 0; k < na; k++) {
			/* rotate the order so drift hits every arm alike */
			enum bench_arm_id a = list[(k + (unsigned)rep) % na];
			struct bench_result *r = &res[nres++];
			int rc1 = bench_arm_run(&o, a, (int)rep, r);
			/* the kernel engine is one per host: wait for another run's */
			for (int tries = 0; !r->ran && strstr(r->skipped, "another densevm") &&
			     tries < 6; tries++) {
				fprintf(stderr, "densevm bench: %s: %s; retrying in 10 s\n",
					bench_arm_names[a], r->skipped);
				sleep(10);
				rc1 = bench_arm_run(&o, a, (int)rep, r);
			}
			if (rc1)
				fprintf(stderr, "densevm bench: %s rep %ld: cannot write its "
					"timeline in %s\n", bench_arm_names[a], rep + 1, out);
			if (!r->ran) {
				fprintf(stderr, "densevm bench: %s skipped: %s\n",
					bench_arm_names[a], r->skipped);
				rc = 1;
				continue;
			}
			fprintf(stderr, "densevm bench: %s rep %ld: %s; steady %.0f MiB, "
				"peak %.0f MiB, overcommit %.2fx, OOM %u, alloc fail %u, "
				"mismatches %u, crashed %u%s\n", bench_arm_names[a], rep + 1,
				r->fits ? "fits" : "does not fit", r->steady / 1048576.0,
				r->peak / 1048576.0, r->ratio, r->oom_kills, r->alloc_fail,
				r->mismatches, r->crashed,
				r->budget_missed ? ", budget phase not applied" : "");
		}
	if (bench_report(&o, res, nres, mask))
		fprintf(stderr, "densevm bench: cannot write the summary in %s\n", out);
	bench_plot(out);
	fprintf(stderr, "densevm bench: results in %s (summary.md, summary.json, "
		"usage.png, savings.png, throughput.png)\n", out);
	for (size_t i = 0; i < nres; i++)
		free(res[i].s);
	free(res);
	return rc;
}
