/*
 * bench_goals.c - what the summary may honestly claim, and the "against
 * the goals" block: the ratios computed from the run, each with
 * the numbers it came from, or "n/a: why".
 *
 * Honest figures (used by the table too):
 *   - time to steady counts only in a repetition the arm fits: an arm that
 *     never got under its budget has flat usage and would read "steady"
 *     at once (kernel+mom at 4.8 s while holding 1400 MiB over a 700 MiB
 *     budget);
 *   - reclaim CPU per GiB is over what the host got back: none's steady
 *     usage less the arm's, in the same repetition (bench_report.c sets
 *     reclaimed_gib), not the engines' counters (a balloon over guest
 *     memory never touched frees nothing: kernel+mom's held 174 MiB while
 *     its usage fell by 40; kernel KSM's counters are the host's, stale for
 *     a moment after another kernel arm); and only where that is at least
 *     BENCH_MIN_RECLAIM_MIB: over a few MiB the quotient is noise.
 *
 * The goals (issue 13), dense+policy against:
 *   density (VMs fit)      >= 2x none, >= 1.3x kernel+mom (density only)
 *   time to steady         >= 5x sooner than kernel+mom
 *   reclaim CPU per GiB    <= 1/5 of kernel+mom
 *   throughput             >= 95 % of none's
 *   failures               0 in every arm whose memory fit
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"

#define MiB (1024.0 * 1024.0)

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct bench_stat bench_stat(const double *v, int n)
{
	double c[64];
	int m = 0;
	for (int i = 0; i < n && m < 64; i++)
		if (v[i] >= 0 && isfinite(v[i]))
			c[m++] = v[i];
	struct bench_stat s = { -1, -1, -1, m };
	if (!m)
		return s;
	qsort(c, (size_t)m, sizeof(*c), cmp_d);
	s.med = m % 2 ? c[m / 2] : (c[m / 2 - 1] + c[m / 2]) / 2;
	s.lo = c[0];
	s.hi = c[m - 1];
	return s;
}

double bench_t_steady(const struct bench_result *r)
{
	return r->ran && r->fits ? r->t_steady : -1;
}

double bench_cpu_per_gib(const struct bench_result *r)
{
	if (!r->ran || r->reclaimed_gib * 1024 < BENCH_MIN_RECLAIM_MIB)
		return -1;
	return r->reclaim_cpu / r->reclaimed_gib;
}

/* The median of f over arm a's repetitions that ran; *ran gets their
 * count. */
static struct bench_stat arm_stat(const struct bench_result *res, size_t nres,
				  enum bench_arm_id a,
				  double (*f)(const struct bench_result *),
				  int *ran)
{
	double v[64] = { 0 };
	int n = 0;
	*ran = 0;
	for (size_t i = 0; i < nres && n < 64; i++)
		if (res[i].arm == a && res[i].ran) {
			v[n++] = f(&res[i]);
			(*ran)++;
		}
	return bench_stat(v, n);
}

static double f_vms(const struct bench_result *r) { return r->vms_fit; }
static double f_tput(const struct bench_result *r) { return r->throughput_pct; }
static double f_worst(const struct bench_result *r) { return r->tput_worst_pct; }
static double f_saved(const struct bench_result *r)
{
	return r->reclaimed_gib * 1024;
}
static double f_cpu(const struct bench_result *r) { return r->reclaim_cpu; }
static double f_nofail(const struct bench_result *r) { return r->t_fail < 0; }

/* Why arm a has no valid figure: it did not run, or (fit) why it does
 * not fit, or (!fit) that it reclaimed too little. */
static void why_not(const struct bench_result *res, size_t nres,
		    enum bench_arm_id a, bool fit, char *b, size_t len)
{
	unsigned ran = 0, missed = 0, oom = 0, other = 0;
	double mib = -1;
	for (size_t i = 0; i < nres; i++) {
		const struct bench_result *r = &res[i];
		if (r->arm != a || !r->ran)
			continue;
		ran++;
		missed += r->budget_missed;
		oom += r->oom_kills > 0;
		other += !r->fits && !r->budget_missed && !r->oom_kills;
		mib = fmax(mib, r->reclaimed_gib * 1024);
	}
	const char *n = bench_arm_names[a];
	if (!ran)
		snprintf(b, len, "%s did not run", n);
	else if (!fit && mib < 0)
		snprintf(b, len, "no reference for what %s reclaimed (none did not "
			 "run, or ran with an OOM kill, a crash or an allocation "
			 "failure)", n);
	else if (!fit)
		snprintf(b, len, "%s reclaimed at most %.0f MiB against none (under "
			 "%d MiB)", n, mib, BENCH_MIN_RECLAIM_MIB);
	else if (missed == ran)
		snprintf(b, len, "%s never under budget (budget missed in %u/%u)", n,
			 missed, ran);
	else
		snprintf(b, len, "%s does not fit (budget missed %u, OOM %u, other "
			 "failures %u of %u)", n, missed, oom, other, ran);
}

struct goal {
	const char *figure, *goal;
	char measured[400];
	int met;             /* 1 met, 0 not, -1 n/a */
	double ratio;        /* -1 = n/a */
};

static void put(struct goal *g, double ratio, int met, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void put(struct goal *g, double ratio, int met, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(g->measured, sizeof(g->measured), fmt, ap);
	va_end(ap);
	g->ratio = ratio;
	g->met = met;
}

static void goal_density(const struct bench_opts *o,
			 const struct bench_result *res, size_t nres,
			 struct goal *g, enum bench_arm_id ref, double want)
{
	int rd, rr;
	char why[200];
	if (!o->sc->density) {
		put(g, -1, -1, "n/a: not a density scenario (see the density "
		    "scenario's summary)");
		return;
	}
	struct bench_stat d = arm_stat(res, nres, ARM_DENSE_POLICY, f_vms, &rd);
	struct bench_stat b = arm_stat(res, nres, ref, f_vms, &rr);
	if (!rd || !rr) {
		why_not(res, nres, rd ? ref : ARM_DENSE_POLICY, true, why,
			sizeof(why));
		put(g, -1, -1, "n/a: %s", why);
		return;
	}
	int dd, dr;
	bool d_open = arm_stat(res, nres, ARM_DENSE_POLICY, f_nofail, &dd).med > 0;
	bool r_open = arm_stat(res, nres, ref, f_nofail, &dr).med > 0;
	if (b.med <= 0) {
		put(g, -1, -1, "n/a: %s fit 0 VMs (dense+policy %.0f)",
		    bench_arm_names[ref], d.med);
		return;
	}
	double ratio = d.med / b.med;
	/* a run without a failure is a lower bound: a ratio over a lower
	 * bound of the reference is not a figure */
	if (r_open) {
		put(g, -1, -1, "n/a: %s had no failure in the run (%.0f VMs is a "
		    "lower bound)", bench_arm_names[ref], b.med);
		return;
	}
	put(g, ratio, ratio >= want, "%s%.0f vs %.0f VMs = %s%.2fx", d_open ?
	    ">= " : "", d.med, b.med, d_open ? ">= " : "", ratio);
}

static void goal_steady(const struct bench_result *res, size_t nres,
			double period, struct goal *g)
{
	int rd, rk;
	char why[200];
	struct bench_stat d = arm_stat(res, nres, ARM_DENSE_POLICY,
				       bench_t_steady, &rd);
	struct bench_stat k = arm_stat(res, nres, ARM_KERNEL_MOM, bench_t_steady,
				       &rk);
	if (!d.n || !k.n) {
		why_not(res, nres, d.n ? ARM_KERNEL_MOM : ARM_DENSE_POLICY, true,
			why, sizeof(why));
		put(g, -1, -1, "n/a: %s", why);
		return;
	}
	if (d.med < period) {
		put(g, -1, -1, "n/a: dense+policy steady from its first sample "
		    "(kernel+mom %.1f s)", k.med);
		return;
	}
	double ratio = k.med / d.med;
	put(g, ratio, ratio >= 5, "kernel+mom %.1f s / dense+policy %.1f s = "
	    "%.2fx sooner", k.med, d.med, ratio);
}

static void goal_cpu(const struct bench_result *res, size_t nres,
		     struct goal *g)
{
	int rd, rk, x;
	char why[200];
	struct bench_stat d = arm_stat(res, nres, ARM_DENSE_POLICY,
				       bench_cpu_per_gib, &rd);
	struct bench_stat k = arm_stat(res, nres, ARM_KERNEL_MOM,
				       bench_cpu_per_gib, &rk);
	if (!d.n || !k.n) {
		/* "did not run" before "reclaimed under the threshold" */
		enum bench_arm_id a = d.n ? ARM_KERNEL_MOM : ARM_DENSE_POLICY;
		bool ran = a == ARM_KERNEL_MOM ? rk : rd;
		why_not(res, nres, a, !ran, why, sizeof(why));
		put(g, -1, -1, "n/a: %s", why);
		return;
	}
	double ratio = d.med / k.med;
	put(g, ratio, ratio <= 0.2, "dense+policy %.2f s/GiB (%.2f CPU-s over %.0f "
	    "MiB) / kernel+mom %.2f s/GiB (%.2f CPU-s over %.0f MiB) = %.2f", d.med,
	    arm_stat(res, nres, ARM_DENSE_POLICY, f_cpu, &x).med,
	    arm_stat(res, nres, ARM_DENSE_POLICY, f_saved, &x).med, k.med,
	    arm_stat(res, nres, ARM_KERNEL_MOM, f_cpu, &x).med,
	    arm_stat(res, nres, ARM_KERNEL_MOM, f_saved, &x).med, ratio);
}

static void goal_tput(const struct bench_opts *o,
		      const struct bench_result *res, size_t nres,
		      struct goal *g)
{
	int rd, x;
	char why[200];
	if (!bench_tput_wanted(o->sc)) {
		put(g, -1, -1, "n/a: no active group in this scenario");
		return;
	}
	struct bench_stat d = arm_stat(res, nres, ARM_DENSE_POLICY, f_tput, &rd);
	if (!rd) {
		why_not(res, nres, ARM_DENSE_POLICY, true, why, sizeof(why));
		put(g, -1, -1, "n/a: %s", why);
		return;
	}
	if (!d.n) {
		put(g, -1, -1, "n/a: no reference (none did not run, or ran with an "
		    "OOM kill, a crash or an allocation failure)");
		return;
	}
	struct bench_stat w = arm_stat(res, nres, ARM_DENSE_POLICY, f_worst, &x);
	char ws[80] = "";
	if (w.n)
		snprintf(ws, sizeof(ws), "; worst 2 s window %.1f %%", w.med);
	put(g, d.med / 100, d.med >= 95, "dense+policy %.1f %% of none's%s",
	    d.med, ws);
}

static void goal_failures(const struct bench_result *res, size_t nres,
			  unsigned mask, struct goal *g)
{
	char arms[300] = "";
	size_t off = 0;
	unsigned af = 0, mm = 0, cr = 0, fitted = 0, img = 0, imgv = 0;
	unsigned mm_all = 0;
	for (int a = 0; a < ARM_COUNT; a++) {
		if (!(mask & (1u << a)))
			continue;
		unsigned in = 0, ran = 0;
		for (size_t i = 0; i < nres; i++) {
			const struct bench_result *r = &res[i];
			if (r->arm != (enum bench_arm_id)a || !r->ran)
				continue;
			ran++;
			mm_all += r->mismatches;
			/* the memory fit: every budget phase applied, no OOM
			 * kill; its other failures are what the goal counts */
			if (r->budget_missed || r->oom_kills)
				continue;
			in++;
			af += r->alloc_fail;
			mm += r->mismatches;
			cr += r->crashed;
			img += r->img_vms;
			imgv += r->img_verified;
		}
		if (in && off < sizeof(arms))
			off += (size_t)snprintf(arms + off, sizeof(arms) - off,
						"%s%s %u/%u", off ? ", " : "",
						bench_arm_names[a], in, ran);
		fitted += in;
	}
	if (!fitted) {
		put(g, -1, -1, "n/a: no arm's memory fit (every run missed a budget "
		    "or was OOM-killed); mismatches in all runs: %u", mm_all);
		return;
	}
	char imgs[80] = "";
	if (img)
		snprintf(imgs, sizeof(imgs), "; image VMs verified at the end %u/%u",
			 imgv, img);
	put(g, af + mm + cr, !(af + mm + cr) && imgv == img,
	    "%u allocation failures, %u mismatches, %u crashed VMs in the runs "
	    "whose memory fit (%s)%s; mismatches in all runs: %u", af, mm, cr,
	    arms, imgs, mm_all);
}

void bench_goals(const struct bench_opts *o, const struct bench_result *res,
		 size_t nres, unsigned mask, FILE *md, json_t *root)
{
	struct goal g[6] = {
		{ .figure = "density: dense+policy vs none (VMs fit)", .goal = ">= 2x" },
		{ .figure = "density: dense+policy vs kernel+mom (VMs fit)",
		  .goal = ">= 1.3x" },
		{ .figure = "time to steady: dense+policy vs kernel+mom",
		  .goal = ">= 5x sooner" },
		{ .figure = "reclaim CPU per GiB: dense+policy / kernel+mom",
		  .goal = "<= 0.2" },
		{ .figure = "throughput of active VMs", .goal = ">= 95 % of none" },
		{ .figure = "failures in arms whose memory fit", .goal = "0" },
	};
	goal_density(o, res, nres, &g[0], ARM_NONE, 2);
	goal_density(o, res, nres, &g[1], ARM_KERNEL_MOM, 1.3);
	goal_steady(res, nres, 1.0 / o->sc->sample_hz, &g[2]);
	goal_cpu(res, nres, &g[3]);
	goal_tput(o, res, nres, &g[4]);
	goal_failures(res, nres, mask, &g[5]);
	static const char *const verdict[] = { "not met", "met" };
	printf("\nagainst the goals (medians over the repetitions):\n");
	fprintf(md, "\n## Against the goals\n\nMedians over the repetitions. "
		"Time to steady counts only where the arm fits; CPU per GiB only "
		"where it reclaimed at least %d MiB.\n\n| figure | goal | measured "
		"| |\n|---|---|---|---|\n", BENCH_MIN_RECLAIM_MIB);
	json_t *ja = json_array();
	for (unsigned i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
		const char *v = g[i].met < 0 ? "" : verdict[g[i].met];
		printf("  %-48s %-16s %s%s%s\n", g[i].figure, g[i].goal,
		       g[i].measured, *v ? ": " : "", v);
		fprintf(md, "| %s | %s | %s | %s |\n", g[i].figure, g[i].goal,
			g[i].measured, v);
		json_t *e = json_pack("{s:s, s:s, s:s}", "figure", g[i].figure,
				      "goal", g[i].goal, "measured", g[i].measured);
		json_object_set_new(e, "value", g[i].ratio >= 0 ?
				    json_real(g[i].ratio) : json_null());
		json_object_set_new(e, "met", g[i].met < 0 ? json_null() :
				    json_boolean(g[i].met));
		json_array_append_new(ja, e);
	}
	json_object_set_new(root, "goals", ja);
}
