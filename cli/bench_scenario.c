/*
 * bench_scenario.c - `densevm bench` scenario files (INI, Debian's libinih,
 * the same parser and FILE:LINE errors as the run config in config.c):
 *
 *   [scenario]     name, description, budget, duration, quick_duration,
 *                  quick_timing, sample_hz, steady_tail, density, host_cost
 *   [group NAME]   count, mem, workload, quick_workload, shares, min, max,
 *                  active, start, arrive_every, image (bench_images.c)
 *   [phase NAME]   at, quick_at, budget (a size, or a % of the budget
 *                  before it); start, idle, activate, grow (bench_phase.c)
 *
 * Unknown sections and keys are errors, and so is a repeated section.
 * The reading, line numbers and header checks are ini_file.c's; this file
 * owns what the sections and keys mean.  Also the arm names
 * (bench_arms_parse).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"
#include "cli.h"
#include "ini_file.h"

const char *const bench_arm_names[ARM_COUNT] = {
	"none", "kernel-ksm", "kernel+mom", "dense", "policy", "dense+policy",
};

struct sc_ctx {
	const char *path;
	struct bench_scenario *sc;
	char section[64];
	struct bench_group *g;
	struct bench_phase *p;
	const struct ini_file *f;   /* its line: the key's, for bench_phase.c */
	char msg[400];
};

static int num(const char *v, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double x = strtod(v, &end);
	if (errno || end == v || *end || !isfinite(x) || x < lo || x > hi)
		return -1;
	*out = x;
	return 0;
}

static bool name_ok(const char *n)
{
	if (!*n || strlen(n) >= 40)
		return false;
	for (const char *c = n; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '-' || *c == '_'))
			return false;
	return true;
}

/* A new section header (ini_file.c refused a repeated one): known, room
 * for it. */
static int header(struct sc_ctx *c, const char *s, int line)
{
	bool group = !strncmp(s, "group ", 6), phase = !strncmp(s, "phase ", 6);
	if (strcmp(s, "scenario") && !group && !phase)
		return ini_file_unknown(c->msg, sizeof(c->msg), s, "[scenario], "
					"[group NAME], [phase NAME]");
	if ((group || phase) && !name_ok(s + 6)) {
		snprintf(c->msg, sizeof(c->msg), "[%s]: a name is 1-39 of "
			 "[A-Za-z0-9_-]", s);
		return -1;
	}
	if ((group && c->sc->ngroups == BENCH_MAX_GROUPS) ||
	    (phase && c->sc->nphases == BENCH_MAX_PHASES)) {
		snprintf(c->msg, sizeof(c->msg), "more than %d %s sections",
			 group ? BENCH_MAX_GROUPS : BENCH_MAX_PHASES,
			 group ? "group" : "phase");
		return -1;
	}
	c->g = NULL;
	c->p = NULL;
	if (group) {
		struct bench_group *g = &c->sc->group[c->sc->ngroups++];
		memset(g, 0, sizeof(*g));
		snprintf(g->name, sizeof(g->name), "%.39s", s + 6);
		g->count = 1;
		g->mem = 128ull << 20;
		g->line = line;
		c->g = g;
	} else if (phase) {
		struct bench_phase *p = &c->sc->phase[c->sc->nphases++];
		memset(p, 0, sizeof(*p));
		snprintf(p->name, sizeof(p->name), "%.39s", s + 6);
		p->at = -1;
		p->quick_at = -1;
		p->line = line;
		c->p = p;
	}
	snprintf(c->section, sizeof(c->section), "%s", s);
	return 0;
}

static int on_section(void *user, const char *name, int line, char *msg,
		      size_t msglen)
{
	struct sc_ctx *c = user;
	int rc = header(c, name, line);
	if (rc)
		snprintf(msg, msglen, "%s", c->msg);
	return rc;
}

static int size_key(struct sc_ctx *c, const char *key, const char *v,
		    uint64_t *out, bool none_ok)
{
	if (none_ok && (!strcmp(v, "none") || !strcmp(v, "0"))) {
		*out = 0;
		return 0;
	}
	if (parse_size(v, out) || !*out) {
		snprintf(c->msg, sizeof(c->msg), "[%s] %s: '%s' must be a size like "
			 "512M%s", c->section, key, v, none_ok ? " or none" : "");
		return -1;
	}
	return 0;
}

static int scenario_key(struct sc_ctx *c, const char *k, const char *v)
{
	struct bench_scenario *sc = c->sc;
	double x;
	if (!strcmp(k, "name")) {
		if (!name_ok(v))
			goto bad_name;
		snprintf(sc->name, sizeof(sc->name), "%s", v);
	} else if (!strcmp(k, "description")) {
		snprintf(sc->desc, sizeof(sc->desc), "%s", v);
	} else if (!strcmp(k, "budget")) {
		return size_key(c, k, v, &sc->budget, true);
	} else if (!strcmp(k, "duration") || !strcmp(k, "quick_duration")) {
		if (num(v, 1, 3600, &x))
			goto bad_num;
		*(!strcmp(k, "duration") ? &sc->duration : &sc->quick_duration) = x;
	} else if (!strcmp(k, "sample_hz")) {
		if (num(v, 1, 100, &x))
			goto bad_num;
		sc->sample_hz = x;
	} else if (!strcmp(k, "density")) {
		if (strcmp(v, "0") && strcmp(v, "1")) {
			snprintf(c->msg, sizeof(c->msg), "[scenario] density: '%s' must "
				 "be 0 or 1", v);
			return -1;
		}
		sc->density = *v == '1';
	} else if (!strcmp(k, "host_cost")) {
		if (strcmp(v, "0") && strcmp(v, "1")) {
			snprintf(c->msg, sizeof(c->msg), "[scenario] host_cost: '%s' "
				 "must be 0 or 1", v);
			return -1;
		}
		sc->host_cost = *v == '1';
	} else if (!strcmp(k, "quick_timing")) {
		if (strcmp(v, "scale") && strcmp(v, "keep")) {
			snprintf(c->msg, sizeof(c->msg), "[scenario] quick_timing: '%s' "
				 "must be scale or keep", v);
			return -1;
		}
		sc->quick_keep = !strcmp(v, "keep");
	} else if (!strcmp(k, "steady_tail")) {
		if (num(v, 0.05, 0.9, &x))
			goto bad_num;
		sc->steady_tail = x;
	} else {
		snprintf(c->msg, sizeof(c->msg), "[scenario] unknown key '%s' (known: "
			 "name description budget duration quick_duration "
			 "quick_timing sample_hz steady_tail density host_cost)", k);
		return -1;
	}
	return 0;
bad_name:
	snprintf(c->msg, sizeof(c->msg), "[scenario] name: '%s' must be 1-39 of "
		 "[A-Za-z0-9_-]", v);
	return -1;
bad_num:
	snprintf(c->msg, sizeof(c->msg), "[scenario] %s: '%s' must be a number "
		 "in %s", k, v, !strcmp(k, "sample_hz") ? "[1, 100]" :
		 !strcmp(k, "steady_tail") ? "[0.05, 0.9]" : "[1, 3600] (seconds)");
	return -1;
}

static int group_key(struct sc_ctx *c, const char *k, const char *v)
{
	struct bench_group *g = c->g;
	double x;
	if (!strcmp(k, "count")) {
		if (num(v, 1, CLI_MAX_VMS, &x) || x != floor(x)) {
			snprintf(c->msg, sizeof(c->msg), "[%s] count: '%s' must be an "
				 "integer in [1, %d]", c->section, v, CLI_MAX_VMS);
			return -1;
		}
		g->count = (unsigned)x;
	} else if (!strcmp(k, "mem")) {
		if (size_key(c, k, v, &g->mem, false))
			return -1;
		g->mem_set = true;
		g->mem_line = c->f->line;
		if (g->mem % (2u << 20)) {
			snprintf(c->msg, sizeof(c->msg), "[%s] mem: '%s' must be a "
				 "multiple of 2M", c->section, v);
			return -1;
		}
	} else if (!strcmp(k, "workload") || !strcmp(k, "quick_workload")) {
		if (strlen(v) >= sizeof(g->workload) || strchr(v, '"')) {
			snprintf(c->msg, sizeof(c->msg), "[%s] %s: under %zu characters, "
				 "no '\"'", c->section, k, sizeof(g->workload));
			return -1;
		}
		snprintf(!strcmp(k, "workload") ? g->workload : g->quick_workload,
			 sizeof(g->workload), "%s", v);
		if (!strcmp(k, "workload"))
			g->workload_line = c->f->line;
	} else if (!strcmp(k, "image")) {
		g->image_line = c->f->line;
		return bench_images_key(g, c->section, v, c->msg, sizeof(c->msg));
	} else if (!strcmp(k, "shares")) {
		if (num(v, 1, 1000000, &x) || x != floor(x)) {
			snprintf(c->msg, sizeof(c->msg), "[%s] shares: '%s' must be an "
				 "integer in [1, 1000000]", c->section, v);
			return -1;
		}
		g->shares = (unsigned)x;
	} else if (!strcmp(k, "min") || !strcmp(k, "max")) {
		return size_key(c, k, v, !strcmp(k, "min") ? &g->min : &g->max, true);
	} else if (!strcmp(k, "start") || !strcmp(k, "arrive_every")) {
		if (num(v, 0, 3600, &x)) {
			snprintf(c->msg, sizeof(c->msg), "[%s] %s: '%s' must be seconds "
				 "in [0, 3600]", c->section, k, v);
			return -1;
		}
		*(!strcmp(k, "start") ? &g->start : &g->arrive_every) = x;
	} else if (!strcmp(k, "active")) {
		if (strcmp(v, "0") && strcmp(v, "1")) {
			snprintf(c->msg, sizeof(c->msg), "[%s] active: '%s' must be 0 or 1",
				 c->section, v);
			return -1;
		}
		g->active = *v == '1';
	} else {
		snprintf(c->msg, sizeof(c->msg), "[%s] unknown key '%s' (known: count "
			 "mem workload quick_workload shares min max active start "
			 "arrive_every image)",
			 c->section, k);
		return -1;
	}
	return 0;
}

static int phase_key(struct sc_ctx *c, const char *k, const char *v)
{
	struct bench_phase *p = c->p;
	double x;
	int act = bench_phase_key(p, k, v, c->f->line, c->msg,
				  sizeof(c->msg));
	if (act)
		return act < 0 ? -1 : 0;
	if (!strcmp(k, "at") || !strcmp(k, "quick_at")) {
		if (num(v, 0, 3600, &x)) {
			snprintf(c->msg, sizeof(c->msg), "[%s] %s: '%s' must be seconds "
				 "in [0, 3600]", c->section, k, v);
			return -1;
		}
		*(!strcmp(k, "at") ? &p->at : &p->quick_at) = x;
	} else if (!strcmp(k, "budget")) {
		size_t n = strlen(v);
		p->budget_set = true;
		if (n > 1 && v[n - 1] == '%') {
			char b[32];
			snprintf(b, sizeof(b), "%.*s", (int)(n - 1), v);
			if (num(b, 1, 1000, &x)) {
				snprintf(c->msg, sizeof(c->msg), "[%s] budget: '%s' must be "
					 "1%%-1000%% of the budget before", c->section, v);
				return -1;
			}
			p->budget_rel = true;
			p->budget_pct = x;
			return 0;
		}
		return size_key(c, k, v, &p->budget, true);
	} else {
		snprintf(c->msg, sizeof(c->msg), "[%s] unknown key '%s' (known: at "
			 "quick_at budget start idle activate grow)", c->section, k);
		return -1;
	}
	return 0;
}

/* A key (ini_file.c refused one outside any section and adds FILE:LINE). */
static int on_key(void *user, const char *section, const char *key,
		  const char *val, char *msg, size_t msglen)
{
	struct sc_ctx *c = user;
	(void)section;
	int rc;
	if (c->g) {
		rc = group_key(c, key, val);
	} else if (c->p) {
		rc = phase_key(c, key, val);
	} else {
		rc = scenario_key(c, key, val);
	}
	if (rc)
		snprintf(msg, msglen, "%s", c->msg);
	return rc;
}

int bench_scenario_load(const char *path, struct bench_scenario *sc,
			char *err, size_t errlen)
{
	struct sc_ctx c = { .path = path, .sc = sc };
	memset(sc, 0, sizeof(*sc));
	snprintf(sc->path, sizeof(sc->path), "%s", path);
	sc->duration = 60;
	sc->sample_hz = 10;
	sc->steady_tail = 0.25;
	struct ini_file f = { .path = path, .user = &c, .section = on_section,
			      .key = on_key };
	c.f = &f;
	int rc = ini_file_parse(&f, err, errlen);
	bool have_sc = ini_file_section_line(&f, "scenario") > 0;
	ini_file_free(&f);
	if (rc)
		return rc;
	if (!have_sc || !sc->name[0]) {
		snprintf(err, errlen, "%s: %s", path, have_sc ? "[scenario] needs "
			 "a name" : "no [scenario] section");
		return -EINVAL;
	}
	if (!sc->ngroups) {
		snprintf(err, errlen, "%s: no [group NAME] section: a scenario needs "
			 "VMs", path);
		return -EINVAL;
	}
	if (!sc->quick_duration)
		sc->quick_duration = fmin(sc->duration, 20);
	unsigned vms = 0;
	for (unsigned i = 0; i < sc->ngroups; i++) {
		struct bench_group *g = &sc->group[i];
		if (!g->workload[0]) {
			snprintf(err, errlen, "%s:%d: [group %s] needs a workload", path,
				 g->line, g->name);
			return -EINVAL;
		}
		if (g->max && g->min > g->max) {
			snprintf(err, errlen, "%s:%d: [group %s] min is above max", path,
				 g->line, g->name);
			return -EINVAL;
		}
		if (g->start + g->arrive_every * (g->count - 1) >= sc->duration) {
			snprintf(err, errlen, "%s:%d: [group %s] its last VM would start "
				 "at %g s, not within the duration (%g s)", path, g->line,
				 g->name, g->start + g->arrive_every * (g->count - 1),
				 sc->duration);
			return -EINVAL;
		}
		vms += g->count;
	}
	if (vms > CLI_MAX_VMS) {
		snprintf(err, errlen, "%s: %u VMs, more than %d", path, vms,
			 CLI_MAX_VMS);
		return -EINVAL;
	}
	for (unsigned i = 0; i < sc->nphases; i++) {
		struct bench_phase *p = &sc->phase[i];
		if (p->at < 0) {
			snprintf(err, errlen, "%s:%d: [phase %s] needs at = SECONDS", path,
				 p->line, p->name);
			return -EINVAL;
		}
		if (p->at >= sc->duration) {
			snprintf(err, errlen, "%s:%d: [phase %s] at %g s is not within the "
				 "duration (%g s)", path, p->line, p->name, p->at,
				 sc->duration);
			return -EINVAL;
		}
		if (i && p->at < sc->phase[i - 1].at) {
			snprintf(err, errlen, "%s:%d: [phase %s] comes before [phase %s] "
				 "in time: list phases in order", path, p->line, p->name,
				 sc->phase[i - 1].name);
			return -EINVAL;
		}
	}
	if (bench_phase_resolve(sc, err, errlen))
		return -EINVAL;
	return bench_images_resolve(sc, err, errlen);
}

double bench_quick_scale(const struct bench_scenario *sc, bool quick)
{
	return quick && !sc->quick_keep ? sc->quick_duration / sc->duration : 1;
}

double bench_vm_start(const struct bench_scenario *sc, unsigned g, unsigned k,
		      bool quick)
{
	const struct bench_group *gr = &sc->group[g];
	return bench_group_start(sc, g, quick) +
	       gr->arrive_every * k * bench_quick_scale(sc, quick);
}

uint64_t bench_scenario_ram(const struct bench_scenario *sc)
{
	uint64_t r = 0;
	for (unsigned i = 0; i < sc->ngroups; i++)
		r += sc->group[i].mem * sc->group[i].count;
	return r;
}

double bench_duration(const struct bench_scenario *sc, bool quick)
{
	return quick ? sc->quick_duration : sc->duration;
}

double bench_phase_at(const struct bench_scenario *sc, unsigned i, bool quick)
{
	const struct bench_phase *p = &sc->phase[i];
	if (!quick)
		return p->at;
	if (p->quick_at >= 0)
		return p->quick_at;
	return p->at * bench_quick_scale(sc, quick);
}

int bench_arms_parse(const char *list, unsigned *mask, char *err, size_t errlen)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", list);
	*mask = 0;
	for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (!strcmp(t, "all")) {
			*mask = (1u << ARM_COUNT) - 1;
			continue;
		}
		int k = -1;
		for (int i = 0; i < ARM_COUNT; i++)
			if (!strcmp(t, bench_arm_names[i]))
				k = i;
		if (k < 0) {
			snprintf(err, errlen, "unknown arm '%s' (known: none kernel-ksm "
				 "kernel+mom dense policy dense+policy, or all)", t);
			return -EINVAL;
		}
		*mask |= 1u << k;
	}
	if (!*mask) {
		snprintf(err, errlen, "--arms: no arm named");
		return -EINVAL;
	}
	return 0;
}
