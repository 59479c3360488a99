/*
 * bench_phase.c - the workload side of a scenario's [phase NAME] sections:
 *
 *   start    = GROUP...   the groups' VMs start at the phase (the first at
 *                         its time, the others arrive_every apart)
 *   idle     = GROUP...   their `dirty` workloads stop rewriting
 *   activate = GROUP...   and start again
 *   grow     = GROUP...   their `grow` workloads start growing
 *
 * (GROUP... is one or more group names, by spaces or commas.)  The budget
 * key stays in bench_scenario.c.  The guest runs the schedule itself: each
 * VM's workload gets `sched=MS:ACT,...` (guest/sched.c), in ms from the
 * run's start, which the bench passes as `epoch=` (host CLOCK_MONOTONIC),
 * so a VM that boots late still switches at the phase's time.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "bench.h"

static const char *const act_keys[ACT_COUNT] = {
	[ACT_START] = "start", [ACT_IDLE] = "idle", [ACT_ACTIVATE] = "activate",
	[ACT_GROW] = "grow",
};
/* the guest's sched= action for each key (start is the bench's own) */
static const char *const act_guest[ACT_COUNT] = {
	[ACT_IDLE] = "idle", [ACT_ACTIVATE] = "active", [ACT_GROW] = "grow",
};

int bench_phase_key(struct bench_phase *p, const char *key, const char *val,
		    int line, char *msg, size_t msglen)
{
	int a = -1;
	for (int i = 0; i < ACT_COUNT; i++)
		if (!strcmp(key, act_keys[i]))
			a = i;
	if (a < 0)
		return 0;
	if (!val[strspn(val, " \t,")] || strlen(val) >= sizeof(p->groups[0])) {
		snprintf(msg, msglen, "[phase %s] %s: name one or more groups "
			 "(under %zu characters)", p->name, key,
			 sizeof(p->groups[0]));
		return -1;
	}
	snprintf(p->groups[a], sizeof(p->groups[a]), "%s", val);
	p->act_line[a] = line;
	return 1;
}

/* The workload's first word, in the run and the quick form. */
static bool workload_is(const struct bench_group *g, const char *name)
{
	size_t n = strlen(name);
	const char *w[2] = { g->workload, g->quick_workload };
	for (int i = 0; i < 2; i++)
		if (w[i][0] && (strncmp(w[i], name, n) ||
				(w[i][n] && w[i][n] != ' ')))
			return false;
	return true;
}

static int resolve_one(struct bench_scenario *sc, unsigned pi, int a,
		       char *err, size_t errlen)
{
	struct bench_phase *p = &sc->phase[pi];
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", p->groups[a]);
	const char *where = sc->path;
	int line = p->act_line[a];
	for (char *save, *t = strtok_r(buf, " \t,", &save); t;
	     t = strtok_r(NULL, " \t,", &save)) {
		unsigned g = 0;
		while (g < sc->ngroups && strcmp(sc->group[g].name, t))
			g++;
		if (g == sc->ngroups) {
			snprintf(err, errlen, "%s:%d: [phase %s] %s: no [group %.40s]",
				 where, line, p->name, act_keys[a], t);
			return -EINVAL;
		}
		struct bench_group *gr = &sc->group[g];
		const char *need = a == ACT_GROW ? "grow" :
				   a == ACT_START ? NULL : "dirty";
		if (need && !workload_is(gr, need)) {
			snprintf(err, errlen, "%s:%d: [phase %s] %s: group %s's "
				 "workload is not %s (only %s workloads %s)", where,
				 line, p->name, act_keys[a], t, need, need,
				 a == ACT_GROW ? "grow" : "go idle and active");
			return -EINVAL;
		}
		if (p->act_mask[a] & (1u << g)) {
			snprintf(err, errlen, "%s:%d: [phase %s] %s: group %s is named "
				 "twice", where, line, p->name, act_keys[a], t);
			return -EINVAL;
		}
		p->act_mask[a] |= 1u << g;
		if (a == ACT_START) {
			if (gr->start > 0 || gr->start_phase) {
				snprintf(err, errlen, "%s:%d: [phase %s] start: group %s "
					 "already starts %s", where, line, p->name, t,
					 gr->start_phase ? "at another phase" :
					 "at its own start");
				return -EINVAL;
			}
			gr->start_phase = pi + 1;
			double last = p->at + gr->arrive_every * (gr->count - 1);
			if (last >= sc->duration) {
				snprintf(err, errlen, "%s:%d: [phase %s] start: group %s's "
					 "last VM would start at %g s, not within the "
					 "duration (%g s)", where, line, p->name, t, last,
					 sc->duration);
				return -EINVAL;
			}
		}
	}
	return 0;
}

int bench_phase_resolve(struct bench_scenario *sc, char *err, size_t errlen)
{
	for (unsigned i = 0; i < sc->nphases; i++) {
		struct bench_phase *p = &sc->phase[i];
		bool any = p->budget_set;
		for (int a = 0; a < ACT_COUNT; a++) {
			if (!p->act_line[a])
				continue;
			any = true;
			if (resolve_one(sc, i, a, err, errlen))
				return -EINVAL;
		}
		uint32_t both = p->act_mask[ACT_IDLE] & p->act_mask[ACT_ACTIVATE];
		if (both) {
			snprintf(err, errlen, "%s:%d: [phase %s] a group cannot go idle "
				 "and active at once", sc->path, p->act_line[ACT_IDLE],
				 p->name);
			return -EINVAL;
		}
		if (!any) {
			snprintf(err, errlen, "%s:%d: [phase %s] does nothing: give "
				 "budget, start, idle, activate or grow", sc->path,
				 p->line, p->name);
			return -EINVAL;
		}
	}
	return 0;
}

double bench_group_start(const struct bench_scenario *sc, unsigned g,
			 bool quick)
{
	const struct bench_group *gr = &sc->group[g];
	if (gr->start_phase)
		return bench_phase_at(sc, gr->start_phase - 1, quick);
	return gr->start * bench_quick_scale(sc, quick);
}

void bench_phase_sched(const struct bench_scenario *sc, unsigned g, bool quick,
		       char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = 0;
	for (unsigned i = 0; i < sc->nphases; i++)
		for (int a = ACT_IDLE; a < ACT_COUNT; a++) {
			if (!(sc->phase[i].act_mask[a] & (1u << g)) || off >= len)
				continue;
			off += (size_t)snprintf(buf + off, len - off, "%s%.0f:%s",
						off ? "," : " sched=",
						bench_phase_at(sc, i, quick) * 1000,
						act_guest[a]);
		}
}
