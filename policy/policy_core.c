/*
 * policy_core.c - one policy tick: the host state machine, the per-VM
 * memory between ticks (keyed by name), the settling rule, and the
 * dispatch to a strategy (policy_shares.c, policy_mom.c).  Also the
 * names of states and reasons.
 *
 * Invariants kept here, whatever the strategy:
 *   - out->vms[i] answers in->vms[i]; a VM past POLICY_MAX_VMS is not
 *     answered (out->nvms says how many are);
 *   - a VM's state slot follows its name: a VM that disappears frees its
 *     slot, one that appears gets a fresh one, so the settling memory
 *     never passes from one VM to another;
 *   - every target is at most the VM's RAM;
 *   - nothing here reads a clock or anything outside its arguments.
 */
#include <errno.h>
#include <string.h>
#include "policy_internal.h"

static const char *const state_names[POLICY_NSTATES] = {
	[POLICY_HIGH] = "HIGH", [POLICY_SOFT] = "SOFT",
	[POLICY_HARD] = "HARD", [POLICY_LOW] = "LOW",
};

static const char *const reason_names[POLICY_NREASONS] = {
	[POLICY_R_HOLD] = "hold",
	[POLICY_R_RECLAIM_IDLE] = "reclaim_idle",
	[POLICY_R_RECLAIM_FREE] = "reclaim_free",
	[POLICY_R_RECLAIM_PRESSURE] = "reclaim_pressure",
	[POLICY_R_DEFLATE_EASED] = "deflate_eased",
	[POLICY_R_DEFLATE_GUEST_PRESSURE] = "deflate_guest_pressure",
	[POLICY_R_CLAMP_MIN] = "clamp_min",
	[POLICY_R_CLAMP_MAX] = "clamp_max",
	[POLICY_R_CLAMP_FLOOR] = "clamp_floor",
	[POLICY_R_HOLD_SETTLE] = "hold_settle",
	[POLICY_R_HOLD_LOW] = "hold_low",
	[POLICY_R_NO_STATS] = "no_stats",
	[POLICY_R_OFF] = "off",
	[POLICY_R_MOM_SHRINK] = "mom_shrink",
	[POLICY_R_MOM_GROW] = "mom_grow",
	[POLICY_R_MOM_WAIT] = "mom_wait",
	[POLICY_R_REBALANCE] = "rebalance",
};

const char *policy_state_name(enum policy_host_state s)
{
	return (unsigned)s < POLICY_NSTATES ? state_names[s] : "?";
}

const char *policy_reason_name(enum policy_reason r)
{
	return (unsigned)r < POLICY_NREASONS ? reason_names[r] : "?";
}

int policy_state_parse(const char *name, enum policy_host_state *s)
{
	for (unsigned i = 0; i < POLICY_NSTATES; i++)
		if (!strcmp(name, state_names[i])) {
			*s = i;
			return 0;
		}
	return -EINVAL;
}

int policy_reason_parse(const char *name, enum policy_reason *r)
{
	for (unsigned i = 0; i < POLICY_NREASONS; i++)
		if (!strcmp(name, reason_names[i])) {
			*r = i;
			return 0;
		}
	return -EINVAL;
}

void policy_init(struct policy_state *st, unsigned nvms)
{
	(void)nvms;   /* slots are fixed-size and claimed by name */
	memset(st, 0, sizeof(*st));
	st->host = POLICY_HIGH;
	st->mom_npages = 100;    /* the kernel's default pages_to_scan */
}

/* ---------------------------------------------------------- host state */

/*
 * The ESX rule of policy.h.  Falling goes straight to the worst state the
 * free fraction is below; rising climbs one state per threshold crossed,
 * each needing the next threshold up.
 */
static enum policy_host_state next_state(const struct policy_config *c,
					 enum policy_host_state cur,
					 double free)
{
	enum policy_host_state fall = free < c->low ? POLICY_LOW :
				      free < c->hard ? POLICY_HARD :
				      free < c->soft ? POLICY_SOFT : POLICY_HIGH;
	if (fall > cur)
		return fall;
	for (;;) {
		double up = cur == POLICY_LOW ? c->hard :
			    cur == POLICY_HARD ? c->soft :
			    cur == POLICY_SOFT ? c->high : 0;
		if (cur == POLICY_HIGH || free < up)
			return cur;
		cur--;
	}
}

/* ----------------------------------------------------------- VM slots */

static void claim_slots(struct policy_tick_ctx *t)
{
	struct policy_state *st = t->st;
	bool seen[POLICY_MAX_VMS] = { false };

	for (unsigned i = 0; i < t->out->nvms; i++) {
		const char *name = t->in->vms[i].name;
		struct policy_vm_state *s = NULL;
		for (unsigned k = 0; k < POLICY_MAX_VMS && !s; k++)
			if (st->vms[k].used && !seen[k] &&
			    !strncmp(st->vms[k].name, name, sizeof(st->vms[k].name)))
				s = &st->vms[k];
		t->slot[i] = s;
		if (s)
			seen[s - st->vms] = true;
	}
	/* VMs gone since the last tick free their slots first */
	for (unsigned k = 0; k < POLICY_MAX_VMS; k++)
		if (!seen[k])
			memset(&st->vms[k], 0, sizeof(st->vms[k]));
	for (unsigned i = 0; i < t->out->nvms; i++) {
		if (t->slot[i])
			continue;
		unsigned k = 0;
		while (seen[k])
			k++;      /* there are as many slots as VMs answered */
		seen[k] = true;
		struct policy_vm_state *s = &st->vms[k];
		s->used = true;
		snprintf(s->name, sizeof(s->name), "%.*s", (int)sizeof(s->name) - 1,
			 t->in->vms[i].name);
		s->last_target = t->in->vms[i].balloon_target;
		t->slot[i] = s;
	}
}

bool policy_settle_blocks(const struct policy_tick_ctx *t, unsigned i,
			  int dir)
{
	const struct policy_vm_state *s = t->slot[i];

	if (!s->last_dir || s->last_dir == dir || t->in->vms[i].g_pressure)
		return false;
	if (s->last_change_state != t->st->host)
		return false;
	return t->st->ticks - s->last_change_tick <= t->c->settle_ticks;
}

/* ---------------------------------------------------------------- tick */

static void hold_all(struct policy_tick_ctx *t, enum policy_reason r)
{
	for (unsigned i = 0; i < t->out->nvms; i++) {
		t->out->vms[i].target = t->in->vms[i].balloon_target;
		t->out->vms[i].reason = r;
	}
}

void policy_tick(const struct policy_config *c, struct policy_state *st,
		 const struct policy_in *in, struct policy_out *out)
{
	struct policy_tick_ctx t = { .c = c, .st = st, .in = in, .out = out };
	double free;

	memset(out, 0, sizeof(*out));
	out->nvms = in->nvms < POLICY_MAX_VMS ? in->nvms : POLICY_MAX_VMS;
	/* budget 0 is a caller's bug: LOW, so nothing is given away */
	free = in->budget ? ((double)in->budget - (double)in->usage) /
			    (double)in->budget : -1.0;
	out->free = free;
	st->host = next_state(c, st->host, free);
	out->state = st->host;
	claim_slots(&t);

	hold_all(&t, POLICY_R_HOLD);
	if (c->mode == POLICY_MODE_OFF) {
		hold_all(&t, POLICY_R_OFF);
		out->scan_rate = in->ksm_scan_rate;
	} else if (c->strategy == POLICY_STRATEGY_MOM) {
		policy_mom_tick(&t);
	} else {
		policy_shares_tick(&t);
		out->scan_rate = policy_scan_next(c, st, in, st->host);
		st->scan_rate = out->scan_rate;
	}

	for (unsigned i = 0; i < out->nvms; i++) {
		struct policy_vm_state *s = t.slot[i];
		const struct policy_vm_in *v = &in->vms[i];
		if (out->vms[i].target > v->ram)
			out->vms[i].target = chunk_down(v->ram);
		if (out->vms[i].target != v->balloon_target) {
			s->last_dir = out->vms[i].target > v->balloon_target ? 1 : -1;
			s->last_change_tick = st->ticks;
			s->last_change_ns = in->now_ns;
			s->last_change_state = st->host;
		}
		s->last_target = out->vms[i].target;
	}
	st->have_prev = true;
	st->prev_saved = in->ksm_saved_bytes;
	st->prev_cpu_s = in->ksm_cpu_s;
	st->ticks++;
}
