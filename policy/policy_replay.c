/*
 * policy_replay.c - re-runs a decision log: every recorded tick's inputs
 * go through policy_tick with a given config (and per-VM overrides), from
 * a fresh state, and the new decisions are compared with the recorded
 * ones and summed up.
 *
 * The replay is open-loop: each tick's inputs are the recorded ones, so
 * with another config the balloon targets "in force" are still those the
 * recording applied.  With the config that made the log, the decisions
 * must come out identical (the core is deterministic and the log keeps
 * doubles exact), and any difference is a bug or a changed policy.
 *
 * The summary, per VM and in all:
 *   reclaimed / deflated  sum of target increases / decreases, against the
 *                         target in force at each tick;
 *   reversals             a change in the opposite direction of the VM's
 *                         previous change; churn = reversals per minute of
 *                         log time (last now_ns - first now_ns);
 *   shortfall             how far its allocation (ram - new target) is
 *                         below its share-proportional ideal: the total
 *                         allocation of the tick divided by shares, water-
 *                         filled so no VM's ideal exceeds its upper bound
 *                         (max, or ram); averaged over the ticks it is in,
 *                         and its largest.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "policy_internal.h"

struct replay {
	struct policy_replay_summary *sum;
	int last_dir[POLICY_MAX_VMS];
	double shortfall_sum[POLICY_MAX_VMS];
};

static struct policy_replay_vm *sum_vm(struct replay *rp, const char *name,
				       unsigned *idx)
{
	struct policy_replay_summary *s = rp->sum;

	for (unsigned k = 0; k < s->nvms; k++)
		if (!strncmp(s->vms[k].name, name, sizeof(s->vms[k].name))) {
			*idx = k;
			return &s->vms[k];
		}
	if (s->nvms == POLICY_MAX_VMS)
		return NULL;
	*idx = s->nvms;
	struct policy_replay_vm *v = &s->vms[s->nvms++];
	snprintf(v->name, sizeof(v->name), "%.*s", (int)sizeof(v->name) - 1, name);
	return v;
}

static uint64_t upper(const struct policy_vm_in *v)
{
	return v->cfg.max && v->cfg.max < v->ram ? v->cfg.max : v->ram;
}

/* Each VM's share-proportional ideal of `total`, capped at its upper
 * bound, the excess shared again among the others. */
static void ideal(const struct policy_in *in, double total, double *out)
{
	bool capped[POLICY_MAX_VMS] = { false };
	unsigned n = in->nvms < POLICY_MAX_VMS ? in->nvms : POLICY_MAX_VMS;

	for (;;) {
		double shares = 0, left = total;
		bool more = false;
		for (unsigned i = 0; i < n; i++) {
			if (capped[i])
				left -= out[i];
			else
				shares += (double)in->vms[i].cfg.shares;
		}
		for (unsigned i = 0; i < n; i++) {
			if (capped[i])
				continue;
			out[i] = shares > 0 ? left * (double)in->vms[i].cfg.shares /
					      shares : 0;
			if (out[i] > (double)upper(&in->vms[i])) {
				out[i] = (double)upper(&in->vms[i]);
				capped[i] = true;
				more = true;
			}
		}
		if (!more)
			return;
	}
}

static void account(struct replay *rp, const struct policy_in *in,
		    const struct policy_out *out, const struct policy_out *rec)
{
	struct policy_replay_summary *s = rp->sum;
	double want[POLICY_MAX_VMS], total = 0;
	bool differ = false;

	s->state_ticks[out->state]++;
	if (out->state != rec->state || out->scan_rate != rec->scan_rate) {
		s->differ++;
		differ = true;
	}
	for (unsigned i = 0; i < out->nvms; i++)
		total += (double)(in->vms[i].ram - u64_min(out->vms[i].target,
							   in->vms[i].ram));
	ideal(in, total, want);
	for (unsigned i = 0; i < out->nvms; i++) {
		const struct policy_vm_in *v = &in->vms[i];
		uint64_t t = out->vms[i].target, cur = v->balloon_target;
		unsigned k;
		struct policy_replay_vm *sv = sum_vm(rp, v->name, &k);

		if (t != rec->vms[i].target || out->vms[i].reason != rec->vms[i].reason) {
			s->differ++;
			differ = true;
			if (sv)
				sv->differ++;
		}
		if (t > cur)
			s->reclaimed += t - cur;
		if (!sv)
			continue;
		sv->ticks++;
		if (t != cur) {
			int d = t > cur ? 1 : -1;
			if (d > 0)
				sv->reclaimed += t - cur;
			else
				sv->deflated += cur - t;
			if (rp->last_dir[k] && rp->last_dir[k] != d)
				sv->reversals++;
			rp->last_dir[k] = d;
		}
		double alloc = (double)(v->ram - u64_min(t, v->ram));
		double shortfall = want[i] > alloc ? want[i] - alloc : 0;
		rp->shortfall_sum[k] += shortfall;
		if ((uint64_t)shortfall > sv->shortfall_max)
			sv->shortfall_max = (uint64_t)shortfall;
	}
	if (differ)
		s->differ_ticks++;
}

static void apply_overrides(const struct policy_replay_opts *o,
			    struct policy_in *in)
{
	if (!o)
		return;
	for (unsigned i = 0; i < in->nvms; i++)
		for (unsigned k = 0; k < o->nvms; k++) {
			const struct policy_vm_override *ov = &o->vms[k];
			struct policy_vm_config *c = &in->vms[i].cfg;
			if (strncmp(ov->name, in->vms[i].name, sizeof(ov->name)))
				continue;
			if (ov->set & POLICY_VM_SET_SHARES)
				c->shares = ov->cfg.shares;
			if (ov->set & POLICY_VM_SET_MIN)
				c->min = ov->cfg.min;
			if (ov->set & POLICY_VM_SET_MAX)
				c->max = ov->cfg.max;
		}
}

static bool blank(const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	return !*s;
}

int policy_replay_ex(FILE *log, const char *logname,
		     const struct policy_config *c,
		     const struct policy_replay_opts *opts,
		     struct policy_replay_summary *sum, FILE *out, char *err,
		     size_t errlen)
{
	struct replay *rp = calloc(1, sizeof(*rp));
	struct policy_state *st = malloc(sizeof(*st));
	struct policy_out *o = malloc(sizeof(*o)), *rec = malloc(sizeof(*rec));
	char *line = NULL, e[400];
	size_t cap = 0;
	ssize_t len;
	unsigned long lineno = 0;
	uint64_t first_ns = 0, last_ns = 0;
	int rc = 0;

	memset(sum, 0, sizeof(*sum));
	if (!rp || !st || !o || !rec) {
		snprintf(err, errlen, "%s: out of memory", logname);
		rc = -ENOMEM;
		goto done;
	}
	rp->sum = sum;
	policy_init(st, 0);
	while ((len = getline(&line, &cap, log)) >= 0) {
		struct policy_in in;
		json_error_t jerr;
		json_t *j;

		lineno++;
		if (blank(line))
			continue;
		if (line[len - 1] == '\n')
			line[--len] = 0;
		j = json_loadb(line, (size_t)len, JSON_DISABLE_EOF_CHECK, &jerr);
		if (!j) {
			snprintf(err, errlen, "%s:%lu: not JSON: %s (column %d)",
				 logname, lineno, jerr.text, jerr.column);
			rc = -EINVAL;
			goto done;
		}
		rc = policy_tick_from_json(j, &in, rec, e, sizeof(e));
		json_decref(j);
		if (rc) {
			snprintf(err, errlen, "%s:%lu: %s", logname, lineno, e);
			goto done;
		}
		if (!sum->ticks)
			first_ns = in.now_ns;
		last_ns = in.now_ns;
		apply_overrides(opts, &in);
		policy_tick(c, st, &in, o);
		sum->ticks++;
		account(rp, &in, o, rec);
		if (out) {
			char *s = policy_tick_dumps(&in, o);
			if (!s || fprintf(out, "%s\n", s) < 0) {
				free(s);
				policy_in_free(&in);
				snprintf(err, errlen, "%s:%lu: cannot write the replay's "
					 "decisions", logname, lineno);
				rc = -EIO;
				goto done;
			}
			free(s);
		}
		policy_in_free(&in);
		if (opts && opts->progress && opts->every &&
		    sum->ticks % opts->every == 0)
			opts->progress(opts->ctx, sum->ticks, ftell(log));
	}
	if (ferror(log)) {
		snprintf(err, errlen, "%s:%lu: read error", logname, lineno + 1);
		rc = -EIO;
		goto done;
	}
	sum->duration_s = (double)(last_ns - first_ns) / 1e9;
	for (unsigned k = 0; k < sum->nvms; k++) {
		struct policy_replay_vm *v = &sum->vms[k];
		if (v->ticks)
			v->shortfall_avg = rp->shortfall_sum[k] / (double)v->ticks;
		v->churn_per_min = sum->duration_s > 0 ?
			(double)v->reversals / (sum->duration_s / 60.0) : 0;
	}
done:
	free(line);
	free(rp);
	free(st);
	free(o);
	free(rec);
	return rc;
}

int policy_replay(FILE *log, const char *logname,
		  const struct policy_config *c,
		  struct policy_replay_summary *sum, FILE *out, char *err,
		  size_t errlen)
{
	return policy_replay_ex(log, logname, c, NULL, sum, out, err, errlen);
}

json_t *policy_replay_summary_json(const struct policy_replay_summary *s)
{
	json_t *states = json_object(), *vms = json_array();

	for (unsigned i = 0; i < POLICY_NSTATES; i++)
		json_object_set_new(states, policy_state_name(i),
				    json_integer((json_int_t)s->state_ticks[i]));
	for (unsigned k = 0; k < s->nvms; k++) {
		const struct policy_replay_vm *v = &s->vms[k];
		json_array_append_new(vms, json_pack(
			"{s:s, s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:I}",
			"name", v->name, "ticks", (json_int_t)v->ticks,
			"reclaimed", (json_int_t)v->reclaimed,
			"deflated", (json_int_t)v->deflated,
			"reversals", (json_int_t)v->reversals,
			"churn_per_min", v->churn_per_min,
			"shortfall_avg", v->shortfall_avg,
			"shortfall_max", (json_int_t)v->shortfall_max,
			"differ", (json_int_t)v->differ));
	}
	return json_pack("{s:I, s:I, s:I, s:I, s:f, s:o, s:o}",
			 "ticks", (json_int_t)s->ticks,
			 "differ", (json_int_t)s->differ,
			 "differ_ticks", (json_int_t)s->differ_ticks,
			 "reclaimed", (json_int_t)s->reclaimed,
			 "duration_s", s->duration_s,
			 "states", states, "vms", vms);
}
