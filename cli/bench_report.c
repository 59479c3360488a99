/*
 * bench_report.c - the results of `densevm bench`: per arm, the medians
 * over repetitions (with min-max spread) of peak and steady usage, the
 * overcommit ratio (guest RAM / steady usage), time to steady, reclaim CPU
 * (scanner + policy) and its cost per GiB saved, throughput against
 * `none` in the same repetition, and the failure counts; as a terminal
 * table, DIR/summary.md and DIR/summary.json.  And the gnuplot plots of
 * usage against the budget over time per arm (DIR/usage.png|svg), of
 * the savings by source (DIR/savings.png|svg), of the active VMs'
 * throughput per arm (DIR/throughput.png|svg) and, for a density
 * scenario, the VMs per arm (DIR/density.png|svg).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "bench.h"

#define MiB (1024.0 * 1024.0)

enum { F_PEAK, F_STEADY, F_RATIO, F_TSTEADY, F_CPU, F_CPU_GIB, F_TPUT,
       F_WORST, F_PROC, F_VMS, F_DOC, F_N };
static const char *const fname[F_N] = {
	"peak_mib", "steady_mib", "overcommit_ratio", "time_to_steady_s",
	"reclaim_cpu_s", "reclaim_cpu_s_per_gib_saved", "throughput_pct_of_none",
	"throughput_worst_window_pct_of_none", "process_cpu_s", "density_vms", "density_overcommit",
};

static double g_budget;   /* the scenario's, bytes (density overcommit) */

static double field(const struct bench_result *r, int f)
{
	switch (f) {
	case F_PEAK: return r->peak / MiB;
	case F_STEADY: return r->steady / MiB;
	case F_RATIO: return r->ratio;
	case F_TSTEADY: return bench_t_steady(r);
	case F_CPU: return r->reclaim_cpu;
	case F_CPU_GIB: return bench_cpu_per_gib(r);
	case F_TPUT: return r->throughput_pct;
	case F_WORST: return r->tput_worst_pct;
	case F_PROC: return r->proc_cpu;
	case F_VMS: return r->vms_fit;
	case F_DOC: return g_budget > 0 ? r->fit_ram / g_budget : -1;
	}
	return -1;
}

static void fmt(char *b, size_t n, struct bench_stat s, const char *unit, int prec)
{
	if (s.n == 0)
		snprintf(b, n, "-");
	else if (s.n == 1 || s.lo == s.hi)
		snprintf(b, n, "%.*f%s", prec, s.med, unit);
	else
		snprintf(b, n, "%.*f%s (%.*f-%.*f)", prec, s.med, unit, prec, s.lo,
			 prec, s.hi);
}

int bench_report(const struct bench_opts *o, struct bench_result *res,
		 size_t nres, unsigned mask)
{
	g_budget = (double)o->sc->budget;
	/* throughput, and what the host got back, against none's in the
	 * same repetition (a none that ran to the end) */
	for (size_t i = 0; i < nres; i++) {
		res[i].throughput_pct = -1;
		res[i].reclaimed_gib = -1;
		for (size_t j = 0; j < nres; j++) {
			if (res[j].arm != ARM_NONE || res[j].rep != res[i].rep ||
			    !res[j].ran || res[j].oom_kills || res[j].crashed ||
			    res[j].alloc_fail || !res[i].ran)
				continue;
			if (res[j].throughput > 0)
				res[i].throughput_pct = res[i].throughput /
							res[j].throughput * 100;
			/* an arm above none's usage got nothing back (and -1
			 * stays "no reference") */
			res[i].reclaimed_gib = fmax(0, res[j].steady - res[i].steady) /
					       (1024 * MiB);
		}
	}
	/* the worst window against none's; in a density scenario, the first
	 * window under 90 % is a failure (where none still runs) */
	for (size_t i = 0; i < nres; i++) {
		res[i].tput_worst_pct = -1;
		for (size_t j = 0; j < nres && res[i].ran; j++) {
			if (res[j].arm != ARM_NONE || res[j].rep != res[i].rep ||
			    !res[j].ran || i == j)
				continue;
			double tb, w = bench_tput_worst(o->sc, o->quick, &res[i],
							&res[j], 0.9, &tb);
			res[i].tput_worst_pct = w >= 0 ? w * 100 : -1;
			if (o->sc->density && tb >= 0 &&
			    (res[i].t_fail < 0 || tb < res[i].t_fail)) {
				res[i].t_fail = tb;
				res[i].tput_failed = true;
				bench_density_fit(o, &res[i]);
			}
		}
	}
	char p[512];
	snprintf(p, sizeof(p), "%s/summary.md", o->out);
	FILE *md = fopen(p, "we");
	if (!md)
		return -errno;
	json_t *root = json_object(), *arms = json_object();
	double ram = (double)bench_scenario_ram(o->sc) / MiB;
	fprintf(md, "# densevm bench: %s\n\n%s\n\nGuest RAM %.0f MiB in %u groups, "
		"budget %s%.0f MiB, %.0f s%s, %u repetition(s); medians (min-max).\n\n",
		o->sc->name, o->sc->desc, ram, o->sc->ngroups,
		o->sc->budget ? "" : "none ", o->sc->budget / MiB,
		bench_duration(o->sc, o->quick), o->quick ? " (--quick)" : "", o->reps);
	static const char hdr[] = "| arm | fits | peak MiB | steady MiB | overcommit "
		"| to steady s | reclaim CPU s | CPU s/GiB saved | throughput % of none "
		"| worst 2 s window % | OOM | alloc fail | mismatch | crashed |\n";
	char dens[ARM_COUNT][200], imgs[ARM_COUNT * 40] = "";
	int ndens = 0;
	size_t nimg = 0;
	fputs(hdr, md);
	fputs("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n", md);
	printf("\n%-13s %-5s %-18s %-18s %-16s %-19s %-14s %-14s %-16s %-16s %s\n",
	       "arm", "fits", "peak MiB", "steady MiB", "overcommit", "to steady s",
	       "reclaim CPU s", "s/GiB saved", "throughput %", "worst 2 s %",
	       "OOM/alloc/mism/crash");
	for (int a = 0; a < ARM_COUNT; a++) {
		if (!(mask & (1u << a)))
			continue;
		double v[F_N][64];
		int n = 0, fits = 0, ran = 0;
		unsigned oom = 0, af = 0, mm = 0, cr = 0, img = 0, imgv = 0, open = 0;
		const char *skip = NULL;
		for (size_t i = 0; i < nres && n < 64; i++) {
			struct bench_result *r = &res[i];
			if (r->arm != (enum bench_arm_id)a)
				continue;
			if (!r->ran) {
				skip = r->skipped;
				continue;
			}
			for (int f = 0; f < F_N; f++)
				v[f][n] = field(r, f);
			n++;
			ran++;
			fits += r->fits;
			oom += r->oom_kills;
			af += r->alloc_fail;
			mm += r->mismatches;
			cr += r->crashed;
			img += r->img_vms;
			imgv += r->img_verified;
			open += r->t_fail < 0;
		}
		const char *name = bench_arm_names[a];
		if (!ran) {
			printf("%-13s skipped: %s\n", name, skip ? skip : "no run");
			fprintf(md, "| %s | skipped: %s ||||||||||||| \n", name,
				skip ? skip : "no run");
			json_object_set_new(arms, name, json_pack("{s:s}", "skipped",
				skip ? skip : "no run"));
			continue;
		}
		struct bench_stat s[F_N];
		json_t *ja = json_object();
		for (int f = 0; f < F_N; f++) {
			s[f] = bench_stat(v[f], n);
			json_object_set_new(ja, fname[f], s[f].n ? json_pack(
				"{s:f, s:f, s:f, s:i}", "median", s[f].med, "min", s[f].lo,
				"max", s[f].hi, "n", s[f].n) : json_null());
		}
		unsigned missed = 0;
		for (size_t i = 0; i < nres; i++)
			missed += res[i].arm == (enum bench_arm_id)a && res[i].budget_missed;
		json_object_set_new(ja, "reps", json_integer(ran));
		json_object_set_new(ja, "reps_fit", json_integer(fits));
		json_object_set_new(ja, "oom_kills", json_integer(oom));
		json_object_set_new(ja, "alloc_failures", json_integer(af));
		json_object_set_new(ja, "mismatches", json_integer(mm));
		json_object_set_new(ja, "crashed_vms", json_integer(cr));
		json_object_set_new(ja, "budget_missed", json_integer(missed));
		if (img) {
			json_object_set_new(ja, "image_vms", json_integer(img));
			json_object_set_new(ja, "image_vms_verified", json_integer(imgv));
		}
		json_object_set_new(arms, name, ja);
		char c[F_N][64], fit[16];
		fmt(c[F_PEAK], 64, s[F_PEAK], "", 0);
		fmt(c[F_STEADY], 64, s[F_STEADY], "", 0);
		fmt(c[F_RATIO], 64, s[F_RATIO], "x", 2);
		fmt(c[F_TSTEADY], 64, s[F_TSTEADY], "", 1);
		fmt(c[F_CPU], 64, s[F_CPU], "", 2);
		fmt(c[F_CPU_GIB], 64, s[F_CPU_GIB], "", 2);
		fmt(c[F_TPUT], 64, s[F_TPUT], "", 1);
		fmt(c[F_WORST], 64, s[F_WORST], "", 1);
		/* no claim where it would not be true (bench_goals.c) */
		const char *why_t = (unsigned)ran == missed ? "never under budget" :
				    "n/a: no fit";
		char why_c[32];
		snprintf(why_c, sizeof(why_c), "n/a: <%d MiB", BENCH_MIN_RECLAIM_MIB);
		if (!s[F_TSTEADY].n) {
			snprintf(c[F_TSTEADY], 64, "%s", why_t);
			json_object_set_new(ja, "time_to_steady_note", json_string(why_t));
		}
		if (!s[F_CPU_GIB].n) {
			snprintf(c[F_CPU_GIB], 64, "%s", why_c);
			json_object_set_new(ja, "cpu_per_gib_note", json_string(
				"reclaimed under the threshold in every repetition"));
		}
		snprintf(fit, sizeof(fit), "%d/%d", fits, ran);
		printf("%-13s %-5s %-18s %-18s %-16s %-19s %-14s %-14s %-16s %-16s "
		       "%u/%u/%u/%u%s\n",
		       name, fit, c[F_PEAK], c[F_STEADY], c[F_RATIO], c[F_TSTEADY],
		       c[F_CPU], c[F_CPU_GIB], c[F_TPUT], c[F_WORST], oom, af, mm, cr,
		       missed ? " budget missed" : "");
		fprintf(md, "| %s | %s%s | %s | %s | %s | %s | %s | %s | %s | %s | %u | "
			"%u | %u | %u |\n", name, fit, missed ? " (budget missed)" : "",
			c[F_PEAK], c[F_STEADY], c[F_RATIO], c[F_TSTEADY], c[F_CPU],
			c[F_CPU_GIB], c[F_TPUT], c[F_WORST], oom, af, mm, cr);
		if (img) {
			printf("%-13s image VMs whose final check passed: %u/%u\n", name,
			       imgv, img);
			nimg += (size_t)snprintf(imgs + nimg, sizeof(imgs) - nimg,
						 "%s%s %u/%u", nimg ? ", " : "", name,
						 imgv, img);
		}
		if (o->sc->density) {
			/* without a failure the count is a lower bound */
			fmt(c[F_VMS] + 3, 61, s[F_VMS], " VMs", 0);
			memcpy(c[F_VMS], open ? ">= " : "   ", 3);
			fmt(c[F_DOC], 64, s[F_DOC], "x", 2);
			const char *vms = c[F_VMS] + (open ? 0 : 3);
			snprintf(dens[ndens++], sizeof(dens[0]), "| %s | %s | %s |\n",
				 name, vms, c[F_DOC]);
			json_object_set_new(ja, "density_no_failure_reps",
					    json_integer(open));
			unsigned tf = 0;
			for (size_t i = 0; i < nres; i++)
				tf += res[i].arm == (enum bench_arm_id)a && res[i].ran &&
				      res[i].tput_failed;
			json_object_set_new(ja, "density_throughput_failures",
					    json_integer(tf));
			printf("%-13s density: %s fit before the first failure, guest RAM "
			       "%s the budget", name, vms, c[F_DOC]);
			if (open)
				printf(" (no failure by the run's end in %u of %d "
				       "repetitions: a lower bound)", open, ran);
			if (tf)
				printf(" (in %u of %d repetitions the first failure was "
				       "a 2 s window under 90 %% of none's throughput)", tf,
				       ran);
			printf("\n");
		}
	}
	if (nimg)
		fprintf(md, "\nImage VMs whose final check of every page passed: "
			"%s.\n", imgs);
	if (ndens) {
		/* for the density bars */
		char dp[512];
		snprintf(dp, sizeof(dp), "%s/density.csv", o->out);
		FILE *df = fopen(dp, "we");
		for (int a = 0; df && a < ARM_COUNT; a++) {
			double vv[64];
			int m = 0;
			for (size_t i = 0; i < nres && m < 64; i++)
				if (res[i].arm == (enum bench_arm_id)a && res[i].ran)
					vv[m++] = res[i].vms_fit;
			struct bench_stat d3 = bench_stat(vv, m);
			if (d3.n)
				fprintf(df, "%s,%g,%g,%g\n", bench_arm_names[a], d3.med,
					d3.lo, d3.hi);
		}
		if (df)
			fclose(df);
		fprintf(md, "\nDensity: VMs that had started before the first failure "
			"(OOM kill, the run's death, or while none runs a 2 s window under "
			"90 %% of none's throughput; a mismatch or allocation failure "
			"counts at the end), less the last one; their guest RAM over the "
			"budget.\n\n| arm | VMs fit | guest RAM / budget |\n|---|---|---|\n");
		for (int i = 0; i < ndens; i++)
			fputs(dens[i], md);
		fputs("\n![density](density.png)\n", md);
	}
	bench_goals(o, res, nres, mask, md, root);
	fprintf(md, "\nfits: repetitions with no OOM kill, allocation failure, "
		"mismatch or crashed VM and every budget phase applied.  Steady: the "
		"median usage over the last %.0f%% of the run; to steady: the first "
		"time after which usage stays within 5%% (at least 32 MiB) of it, "
		"counted only in the repetitions the arm fits (\"never under "
		"budget\": it never got under; flat usage over the budget is not "
		"steady).  CPU s/GiB saved: the reclaim CPU over what the host got "
		"back (none's steady usage less the arm's, same repetition), only "
		"where that is at least %d MiB.  Overcommit: guest "
		"RAM (%.0f MiB; in a run that ended early or before the last "
		"arrivals, of the VMs started by then) / steady usage.  Worst 2 s "
		"window: "
		"the active VMs' pages per second against none's in the same window "
		"of the same repetition, the lowest, leaving out windows with an "
		"active VM's start or a phase and the time after none failed.\n\n"
		"![usage](usage.png)\n\n![savings](savings.png)\n\n"
		"![throughput](throughput.png)\n",
		o->sc->steady_tail * 100, BENCH_MIN_RECLAIM_MIB, ram);
	fclose(md);
	json_t *runs = json_array();
	for (size_t i = 0; i < nres; i++) {
		const struct bench_result *r = &res[i];
		json_t *one = r->ran ? json_pack(
			"{s:s, s:i, s:b, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:i,"
			" s:i, s:i, s:i, s:i, s:b, s:i}",
			"arm", bench_arm_names[r->arm], "rep", r->rep, "fits", r->fits,
			"peak_mib", r->peak / MiB, "steady_mib", r->steady / MiB,
			"overcommit_ratio", r->ratio,
			"reclaim_cpu_s", r->reclaim_cpu, "saved_gib", r->saved_gib,
			"reclaimed_gib_vs_none", r->reclaimed_gib,
			"throughput", r->throughput, "throughput_pct_of_none",
			r->throughput_pct, "oom_kills", r->oom_kills, "alloc_failures",
			r->alloc_fail, "mismatches", r->mismatches, "crashed_vms",
			r->crashed, "vms_ok", r->vms_ok, "budget_missed", r->budget_missed,
			"exit_status", r->exit_status) :
			json_pack("{s:s, s:i, s:s}", "arm", bench_arm_names[r->arm], "rep",
				  r->rep, "skipped", r->skipped);
		if (r->ran) {
			/* null where the summary claims nothing (bench_goals.c) */
			double ts = bench_t_steady(r), cg = bench_cpu_per_gib(r);
			json_object_set_new(one, "time_to_steady_s", ts >= 0 ?
					    json_real(ts) : json_null());
			json_object_set_new(one, "reclaim_cpu_s_per_gib_saved", cg >= 0 ?
					    json_real(cg) : json_null());
			if (r->img_vms) {
				json_object_set_new(one, "image_vms",
						    json_integer(r->img_vms));
				json_object_set_new(one, "image_vms_verified",
						    json_integer(r->img_verified));
			}
			json_object_set_new(one, "t_fail_s", json_real(r->t_fail));
			json_object_set_new(one, "density_vms", json_integer(r->vms_fit));
			json_object_set_new(one, "density_ram_mib",
					    json_real(r->fit_ram / MiB));
		}
		json_array_append_new(runs, one);
	}
	json_object_set_new(root, "scenario", json_string(o->sc->name));
	json_object_set_new(root, "quick", json_boolean(o->quick));
	json_object_set_new(root, "reps", json_integer(o->reps));
	json_object_set_new(root, "guest_ram_mib", json_real(ram));
	json_object_set_new(root, "budget_mib", json_real(o->sc->budget / MiB));
	json_object_set_new(root, "arms", arms);
	json_object_set_new(root, "runs", runs);
	snprintf(p, sizeof(p), "%s/summary.json", o->out);
	int rc = json_dump_file(root, p, JSON_INDENT(2)) ? -EIO : 0;
	json_decref(root);
	return rc;
}

/* ------------------------------------------------------------ plots */

int bench_write_budget(const struct bench_opts *o)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/budget.csv", o->out);
	FILE *f = fopen(p, "we");
	if (!f)
		return -errno;
	const struct bench_scenario *sc = o->sc;
	double b = (double)sc->budget;
	fprintf(f, "t_s,budget_mib\n0,%.2f\n", b / MiB);
	for (unsigned i = 0; i < sc->nphases; i++) {
		const struct bench_phase *ph = &sc->phase[i];
		b = ph->budget_rel ? b * ph->budget_pct / 100 : (double)ph->budget;
		fprintf(f, "%.3f,%.2f\n", bench_phase_at(sc, i, o->quick), b / MiB);
	}
	fprintf(f, "%.3f,%.2f\n", bench_duration(sc, o->quick), b / MiB);
	return fclose(f) ? -EIO : 0;
}

/* Whether a timeline CSV has the throughput column (active_kpps). */
static bool csv_has_tput(const char *path)
{
	char head[512] = "";
	FILE *f = fopen(path, "re");
	if (f) {
		if (!fgets(head, sizeof(head), f))
			head[0] = 0;
		fclose(f);
	}
	return strstr(head, ",active_kpps") != NULL;
}

static bool have_gnuplot(void)
{
	return !system("command -v gnuplot >/dev/null 2>&1");
}

int bench_plot(const char *dir)
{
	if (!have_gnuplot()) {
		fprintf(stderr, "densevm bench: gnuplot not found: no plots (apt-get "
			"install gnuplot-nox, or make bench-deps)\n");
		return -ENOENT;
	}
	/* the first repetition of every arm that has a timeline */
	char files[ARM_COUNT][600], titles[ARM_COUNT][32];
	enum bench_arm_id ids[ARM_COUNT];
	int n = 0;
	for (int a = 0; a < ARM_COUNT; a++) {
		char af[32];
		snprintf(af, sizeof(af), "%s", bench_arm_names[a]);
		for (char *c = af; *c; c++)
			if (*c == '+')
				*c = '_';
		int rep = 0;
		for (; rep < 16; rep++) {
			snprintf(files[n], sizeof(files[0]), "%s/timeline-%s-%d.csv", dir,
				 af, rep);
			if (!access(files[n], R_OK))
				break;
		}
		if (rep == 16)
			continue;
		snprintf(titles[n], sizeof(titles[0]), "%s", bench_arm_names[a]);
		ids[n++] = (enum bench_arm_id)a;
	}
	if (!n) {
		fprintf(stderr, "densevm bench: no timeline-*-0.csv in %s\n", dir);
		return -ENOENT;
	}
	char gp[600];
	snprintf(gp, sizeof(gp), "%s/plots.gp", dir);
	FILE *f = fopen(gp, "we");
	if (!f)
		return -errno;
	fprintf(f, "# densevm bench plots; redraw with: gnuplot %s\n"
		"set datafile separator ','\nset key outside right top\n"
		"set grid\nset xlabel 'time since start (s)'\n", gp);
	static const char *const term[2][2] = {
		{ "pngcairo size 900,560 font 'sans,11'", "png" },
		{ "svg size 900,560 font 'sans,11'", "svg" },
	};
	for (int t = 0; t < 2; t++) {
		fprintf(f, "set terminal %s\nset output '%s/usage.%s'\n"
			"set title 'memory cgroup usage against the budget, per arm "
			"(first repetition that ran)'\nset ylabel 'memory cgroup usage (MiB)'\nset yrange [0:*]\nplot ",
			term[t][0], dir, term[t][1]);
		for (int i = 0; i < n; i++)
			fprintf(f, "'%s' using 1:2 skip 1 with lines lw 2 title '%s', ",
				files[i], titles[i]);
		char bud[600];
		snprintf(bud, sizeof(bud), "%s/budget.csv", dir);
		if (!access(bud, R_OK))
			fprintf(f, "'%s' using 1:($2 > 0 ? $2 : 1/0) skip 1 with steps lw 2 "
				"dt 2 lc rgb 'black' title 'budget (scenario)'\n", bud);
		else
			fprintf(f, "'%s' using 1:($3 > 0 ? $3 : 1/0) skip 1 with lines lw "
				"2 dt 2 lc rgb 'black' title 'cgroup limit'\n", files[0]);
		/* savings by source: one panel per arm */
		int cols = n > 3 ? 3 : n, rows = (n + cols - 1) / cols;
		fprintf(f, "set terminal %s size %d,%d\nset output '%s/savings.%s'\n"
			"set multiplot layout %d,%d title 'memory reclaimed by source, "
			"stacked (first repetition that ran)'\nset key inside left top font ',8'\n"
			/* headroom above the stack: the key sits there, not on it */
			"set offsets 0, 0, graph 0.6, 0\n"
			"set ylabel 'MiB'\nset yrange [0:*]\nunset title\n",
			t ? "svg" : "pngcairo", 360 * cols + 60, 300 * rows + 40, dir,
			term[t][1], rows, cols);
		for (int i = 0; i < n; i++)
			fprintf(f, "set title '%s'\nplot '%s' using 1:($4+$5+$6+$8) skip 1 "
				"with filledcurves x1 lc rgb '#1f77b4' title 'ballooned', "
				"'' using 1:($4+$5+$6) skip 1 with filledcurves x1 lc rgb "
				"'#2ca02c' title 'zero pages merged', '' using 1:($4+$5) skip 1 with "
				"filledcurves x1 lc rgb '#ff7f0e' title '%s', '' using "
				"1:4 skip 1 with filledcurves x1 lc rgb '#d62728' title "
				"'same-GPA merged'\n", titles[i], files[i],
				/* Linux KSM does not say at which GPAs it merged */
				bench_arm_kernel(ids[i]) ? "merged (KSM: any GPA)" :
				"cross-GPA merged");
		fprintf(f, "unset multiplot\nset offsets 0, 0, 0, 0\n"
			"set key outside right top font ',11'\n");
		/* throughput of the active groups (column 16, when the
		 * timelines have it: older results folders do not) */
		if (csv_has_tput(files[0])) {
			fprintf(f, "set terminal %s\nset output '%s/throughput.%s'\n"
				"set title 'throughput of the active VMs, per arm (pages "
				"checked and rewritten; first repetition that ran)'\n"
				"set ylabel 'thousand 4 KiB pages per second'\n"
				"set yrange [0:*]\nplot ", term[t][0], dir, term[t][1]);
			for (int i = 0; i < n; i++)
				fprintf(f, "%s'%s' using 1:16 skip 1 with lines lw 2 title "
					"'%s'", i ? ", " : "", files[i], titles[i]);
			fputc('\n', f);
		}
		char dc[600];
		snprintf(dc, sizeof(dc), "%s/density.csv", dir);
		if (!access(dc, R_OK))
			fprintf(f, "set terminal %s\nset output '%s/density.%s'\n"
				"set title 'VMs that fit before the first failure (median, "
				"min-max over repetitions)'\nset ylabel 'VMs'\n"
				"set xlabel 'arm'\nset yrange [0:*]\nset offsets 0,0,1,0\n"
				"set style fill solid 0.6\n"
				"set boxwidth 0.6\nunset key\nplot '%s' using 0:2:xtic(1) "
				"with boxes lc rgb '#1f77b4', '' using 0:2:3:4 with "
				"yerrorbars lc rgb 'black' pt 0, '' using 0:($2/2):"
				"(sprintf('%%g', $2)) with labels\nset key\nset xlabel "
				"'time since start (s)'\nset style fill empty\nset offsets 0,0,0,0\n",
				term[t][0], dir, term[t][1], dc);
	}
	fclose(f);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "gnuplot '%s' 2>'%s/plots.err'", gp, dir);
	int rc = system(cmd);
	if (rc) {
		fprintf(stderr, "densevm bench: gnuplot failed (see %s/plots.err)\n", dir);
		return -EIO;
	}
	return 0;
}
