/*
 * bench_tput.c - the guests' throughput during a bench arm.
 *
 * Every VM of an active group runs its workload with report_ms=
 * (BENCH_REPORT_MS): the guest sends its work done so far (pages checked
 * and rewritten, RESULT 10) on that period, and the host stamps each report
 * with its arrival time.  The arm's control-socket thread polls `results`
 * and hands each reply here; a sample then takes, per group, the sum of its
 * VMs' rates between their last two reports.  A VM whose last report is
 * older than three periods (paused, starved, gone) counts 0: a stall shows
 * as a dip, not as the last good rate.  The arm's throughput figure is each
 * active VM's last total over its time since its start, summed.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"

#define RESULT_WORK "10"   /* guest/patterns.h DVM_RESULT_WORK */

struct tput_vm {
	char name[64];
	int g;
	unsigned k;
	uint64_t v0, ns0, v1, ns1;   /* the last two distinct reports */
	bool have0, have1;
};

struct bench_tput {
	const struct bench_scenario *sc;
	bool quick;
	struct tput_vm *vm;
	size_t n, cap;
};

int bench_vm_group(const struct bench_scenario *sc, const char *vm,
		   unsigned *k)
{
	for (unsigned i = 0; i < sc->ngroups; i++) {
		size_t n = strlen(sc->group[i].name);
		if (strncmp(vm, sc->group[i].name, n))
			continue;
		const char *t = vm + n;
		while (*t >= '0' && *t <= '9')
			t++;
		if (!*t && (sc->group[i].count > 1 ? vm[n] != 0 : vm[n] == 0)) {
			if (k)
				*k = (unsigned)strtoul(vm + n, NULL, 10);
			return (int)i;
		}
	}
	return -1;
}

bool bench_tput_wanted(const struct bench_scenario *sc)
{
	for (unsigned i = 0; i < sc->ngroups; i++)
		if (sc->group[i].active)
			return true;
	return false;
}

struct bench_tput *bench_tput_new(const struct bench_scenario *sc, bool quick)
{
	struct bench_tput *t = calloc(1, sizeof(*t));
	if (t) {
		t->sc = sc;
		t->quick = quick;
	}
	return t;
}

void bench_tput_free(struct bench_tput *t)
{
	if (t)
		free(t->vm);
	free(t);
}

static struct tput_vm *find(struct bench_tput *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->vm[i].name, name))
			return &t->vm[i];
	unsigned k = 0;
	int g = bench_vm_group(t->sc, name, &k);
	if (g < 0 || !t->sc->group[g].active)
		return NULL;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct tput_vm *v = realloc(t->vm, cap * sizeof(*v));
		if (!v)
			return NULL;
		t->vm = v;
		t->cap = cap;
	}
	struct tput_vm *v = &t->vm[t->n++];
	memset(v, 0, sizeof(*v));
	snprintf(v->name, sizeof(v->name), "%s", name);
	v->g = g;
	v->k = k;
	return v;
}

void bench_tput_update(struct bench_tput *t, json_t *reply)
{
	json_t *vms = json_object_get(reply, "vms"), *o;
	size_t i;
	json_array_foreach(vms, i, o) {
		const char *name = json_string_value(json_object_get(o, "name"));
		json_t *w = json_object_get(json_object_get(o, "results"), RESULT_WORK);
		struct tput_vm *v = name && w ? find(t, name) : NULL;
		if (!v)
			continue;
		uint64_t val = (uint64_t)json_integer_value(json_object_get(w, "value"));
		uint64_t ns = (uint64_t)json_integer_value(json_object_get(w, "ns"));
		if (v->have1 && ns == v->ns1)
			continue;   /* no new report since the last poll */
		v->v0 = v->v1;
		v->ns0 = v->ns1;
		v->have0 = v->have1;
		v->v1 = val;
		v->ns1 = ns;
		v->have1 = true;
	}
}

void bench_tput_rates(const struct bench_tput *t, uint64_t now_ns,
		      double rate[BENCH_MAX_GROUPS])
{
	for (unsigned g = 0; g < BENCH_MAX_GROUPS; g++)
		rate[g] = 0;
	uint64_t stale = 3ull * BENCH_REPORT_MS * 1000000;
	for (size_t i = 0; i < t->n; i++) {
		const struct tput_vm *v = &t->vm[i];
		if (!v->have0 || v->ns1 <= v->ns0 || now_ns > v->ns1 + stale)
			continue;
		rate[v->g] += (double)(v->v1 - v->v0) * 1e9 / (double)(v->ns1 - v->ns0);
	}
}

double bench_tput_total(const struct bench_tput *t, double end_s)
{
	double sum = 0;
	for (size_t i = 0; i < t->n; i++) {
		const struct tput_vm *v = &t->vm[i];
		double run = end_s - bench_vm_start(t->sc, (unsigned)v->g, v->k,
						    t->quick);
		if (v->have1 && run > 0)
			sum += (double)v->v1 / run;
	}
	return sum;
}

/* A window that holds an active VM's start, or a phase (workloads turn on
 * and off), compares timing, not throughput: the VM boots and writes its
 * set first, and its first rate comes two reports later (kernel-ksm's
 * first came 1.2 s after none's in `default`, a 0 % window).  So the
 * LEAD seconds after each are left out too. */
#define LEAD 3.0
static bool window_quiet(const struct bench_scenario *sc, bool quick,
			 double t0, double t1)
{
	double lead = LEAD;

	for (unsigned g = 0; g < sc->ngroups; g++)
		for (unsigned k = 0; sc->group[g].active && k < sc->group[g].count; k++) {
			double st = bench_vm_start(sc, g, k, quick);
			if (st + lead > t0 && st < t1)
				return false;
		}
	for (unsigned p = 0; p < sc->nphases; p++) {
		double at = bench_phase_at(sc, p, quick);
		if (at + lead > t0 && at < t1)
			return false;
	}
	return true;
}

/* Mean of the samples' summed group rates in [t0, t1); -1 without one. */
static double window_rate(const struct bench_result *r, double t0, double t1)
{
	double sum = 0;
	unsigned n = 0;

	for (size_t i = 0; i < r->ns; i++) {
		if (r->s[i].t < t0 || r->s[i].t >= t1)
			continue;
		for (unsigned g = 0; g < BENCH_MAX_GROUPS; g++)
			sum += r->s[i].tput[g];
		n++;
	}
	return n ? sum / n : -1;
}

double bench_tput_worst(const struct bench_scenario *sc, bool quick,
			const struct bench_result *r,
			const struct bench_result *ref, double floor,
			double *t_below)
{
	double worst = -1, end;

	*t_below = -1;
	if (!r->ns || !ref->ns)
		return -1;
	end = fmin(r->s[r->ns - 1].t, ref->s[ref->ns - 1].t);
	if (ref->t_fail >= 0)
		end = fmin(end, ref->t_fail);
	for (double t0 = 0; t0 + BENCH_TPUT_WINDOW_S <= end; t0 += BENCH_TPUT_WINDOW_S) {
		double t1 = t0 + BENCH_TPUT_WINDOW_S;
		if (!window_quiet(sc, quick, t0, t1))
			continue;
		double a = window_rate(r, t0, t1), b = window_rate(ref, t0, t1);
		if (a < 0 || b <= 0)
			continue;
		if (worst < 0 || a / b < worst)
			worst = a / b;
		if (a / b < floor && *t_below < 0)
			*t_below = t0;
	}
	return worst;
}
