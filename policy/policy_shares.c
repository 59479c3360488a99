/*
 * policy_shares.c - balloon targets for strategy = shares: ESX's
 * proportional-share reclamation with an idle tax (Waldspurger, OSDI '02,
 * sections 5.1-5.3), in ticks of bounded steps.
 *
 * Owns, per tick: each VM's bounds, the forced moves (guest pressure, max,
 * min), the reclaim or deflate plan, the per-tick step and the settling
 * rule.  The rules themselves are documented in policy.h; here are the
 * invariants the code keeps:
 *   - all arithmetic on targets is in 2 MiB chunks of the balloon target,
 *     t = chunk_down(balloon_target); allocation = ram - t;
 *   - reclaim never takes a VM below its floor (soft floor in SOFT, lower
 *     bound in HARD/LOW) and never reclaims a VM under guest pressure;
 *   - deflation never takes a VM above its upper bound, and in HIGH never
 *     gives more than the room above the high threshold;
 *   - forced moves are decided first and the plan accounts for them, so a
 *     pressure deflate is paid for by the VMs with the lowest rho in the
 *     same tick (outside HIGH);
 *   - balloons in flight (size != target) count as done, so a balloon that
 *     takes several ticks to get there is not asked twice, except an
 *     inflation into a guest at its floor or under pressure, which will
 *     not get there; the rebalance waits for the others, except one less
 *     than its minchg away (a guest may never give its last pages);
 *   - a VM moves at most its step per tick; what the plan wanted beyond
 *     it waits for the next tick (the state stays where it is until then,
 *     so the next plan asks again);
 *   - ties between equal rho go to the lower index: deterministic.
 */
#include <math.h>
#include "policy_internal.h"

struct vmw {
	uint64_t ram;
	uint64_t t;         /* current target, chunk aligned */
	uint64_t plan;      /* planned target */
	uint64_t t_lo;      /* lowest target: allocation at its upper bound */
	uint64_t t_hi;      /* highest target: allocation at its floor */
	uint64_t step;      /* chunk multiple, >= minchg */
	uint64_t minchg;    /* the smallest change worth making */
	uint64_t shares;
	uint64_t active;
	bool fixed;         /* decided by a forced move, not planned */
};

/* rho of a VM at target t (allocation ram - t); +inf at no allocation */
static double rho(const struct policy_config *c, const struct vmw *w,
		  uint64_t t)
{
	uint64_t alloc = w->ram - t;
	double k = 1.0 / (1.0 - c->idle_tax);
	double f, pages;

	if (!alloc)
		return INFINITY;
	f = (double)w->active / (double)alloc;
	if (f > 1)
		f = 1;
	pages = (double)alloc / (double)POLICY_PAGE;
	return (double)w->shares / (pages * (f + k * (1 - f)));
}

/* the target at which the allocation is `floor` (chunk down: allocation
 * stays at or above it) */
static uint64_t target_for_floor(uint64_t ram, uint64_t floor)
{
	return floor >= ram ? 0 : chunk_down(ram - floor);
}

static void bounds(const struct policy_config *c, enum policy_host_state host,
		   const struct policy_vm_in *v, struct vmw *w)
{
	uint64_t ram = chunk_down(v->ram);
	uint64_t ub = v->cfg.max && v->cfg.max < v->ram ? v->cfg.max : v->ram;
	uint64_t alloc, lb, floor;

	w->ram = v->ram;
	w->t = chunk_down(u64_min(v->balloon_target, ram));
	w->plan = w->t;
	alloc = v->ram - w->t;
	w->t_lo = ub >= v->ram ? 0 : u64_min(chunk_up(v->ram - ub), ram);
	if (v->stats_valid) {
		/* the balloon's pages are in the guest's total, not its use */
		uint64_t held = v->g_available + v->balloon_size;
		uint64_t used = v->g_total > held ? v->g_total - held : 0;
		lb = u64_max(v->cfg.min,
			     u64_max(used + frac_of(v->ram, c->min_guest_free),
				     used + v->g_floor));
	} else {
		lb = u64_max(v->cfg.min, alloc);
	}
	floor = lb;
	if (host == POLICY_SOFT)
		floor = u64_max(lb, v->active_bytes +
				frac_of(v->ram, c->min_guest_free));
	/* max wins over every floor: a floor above it is the max */
	w->t_hi = u64_max(target_for_floor(v->ram, floor), w->t_lo);
	w->minchg = chunk_up(u64_max(POLICY_CHUNK, frac_of(v->ram, 0.0025)));
	w->step = u64_max(chunk_down(frac_of(v->ram, c->max_step)), w->minchg);
	w->shares = v->cfg.shares ? v->cfg.shares : 1;
	w->active = v->active_bytes;
	w->fixed = false;
}

/*
 * Guest pressure, max and min, before any plan.  Returns the allocation
 * they add (deflates) minus what they take (clamp_max), in bytes.
 */
static int64_t forced(struct policy_tick_ctx *t, struct vmw *w)
{
	const struct policy_config *c = t->c;
	enum policy_host_state host = t->st->host;
	int64_t delta = 0;

	for (unsigned i = 0; i < t->out->nvms; i++) {
		const struct policy_vm_in *v = &t->in->vms[i];
		struct policy_vm_out *o = &t->out->vms[i];
		struct vmw *x = &w[i];
		uint64_t nt = x->t;

		if (v->g_pressure) {
			x->fixed = true;
			if (host == POLICY_LOW) {
				o->reason = POLICY_R_HOLD_LOW;
				continue;
			}
			uint64_t need = x->step;
			uint64_t keep = frac_of(v->ram, c->min_guest_free);
			if (v->stats_valid && v->g_available < keep)
				need = u64_max(need, chunk_up(keep - v->g_available));
			nt = x->t > x->t_lo + need ? x->t - need : x->t_lo;
			if (nt >= x->t) {
				o->reason = x->t > x->t_lo ? POLICY_R_HOLD
							   : POLICY_R_CLAMP_MAX;
				continue;
			}
			o->reason = POLICY_R_DEFLATE_GUEST_PRESSURE;
		} else if (x->t < x->t_lo) {
			/* above its max: back to it, a step at a time */
			x->fixed = true;
			nt = u64_min(x->t_lo, x->t + x->step);
			o->reason = POLICY_R_CLAMP_MAX;
		} else if (v->cfg.min && v->ram - x->t < v->cfg.min) {
			uint64_t want = target_for_floor(v->ram, v->cfg.min);
			x->fixed = true;
			if (host == POLICY_LOW) {
				o->reason = POLICY_R_HOLD_LOW;
				continue;
			}
			want = u64_max(want, x->t_lo);
			nt = x->t - u64_min(x->t - want, x->step);
			o->reason = POLICY_R_CLAMP_MIN;
		} else {
			continue;
		}
		if (nt != x->t) {
			o->target = nt;
			delta += (int64_t)x->t - (int64_t)nt;
		}
	}
	return delta;
}

/*
 * The water-filling plan: `amount` bytes in chunks, each from (reclaim,
 * dir = +1) the lowest-rho VM that can still give one or to (deflate,
 * dir = -1) the highest-rho one that can take one.  A VM's first chunk is
 * at least its minchg, the others `unit`: 2 MiB, or more for a large
 * amount, so a plan takes at most about 256 chunks per VM (each one a pass
 * over the VMs: 256 VMs and 100 GiB stay near 16M rho evaluations, not
 * 13G); a chunk shrinks to what is left above a floor or below a bound.
 * Reclaim may overshoot amount by less than one chunk; deflation never
 * exceeds it.  Returns what is left unplanned.
 */
static int64_t plan(const struct policy_config *c, struct vmw *w, unsigned n,
		    int dir, int64_t amount)
{
	uint64_t unit = n ? u64_max(POLICY_CHUNK,
				    chunk_down((uint64_t)amount / (256ull * n)))
			  : POLICY_CHUNK;

	while (amount > 0) {
		int best = -1;
		double best_rho = 0;
		uint64_t best_chunk = 0;
		for (unsigned i = 0; i < n; i++) {
			struct vmw *x = &w[i];
			/* room left toward its floor (reclaim) or its upper bound */
			uint64_t room = dir > 0 ? (x->t_hi > x->plan ? x->t_hi - x->plan : 0)
						: (x->plan > x->t_lo ? x->plan - x->t_lo : 0);
			uint64_t first = x->plan == x->t ? x->minchg : POLICY_CHUNK;
			uint64_t ch = u64_min(u64_max(first, unit), room);
			if (x->fixed || ch < first)
				continue;
			if (dir < 0 && (int64_t)ch > amount) {
				ch = chunk_down((uint64_t)amount);
				if (ch < first)
					continue;
			}
			double r = rho(c, x, x->plan);
			if (best < 0 || (dir > 0 ? r < best_rho : r > best_rho)) {
				best = (int)i;
				best_rho = r;
				best_chunk = ch;
			}
		}
		if (best < 0)
			break;
		w[best].plan = dir > 0 ? w[best].plan + best_chunk
				       : w[best].plan - best_chunk;
		amount -= (int64_t)best_chunk;
	}
	return amount;
}

static enum policy_reason reclaim_reason(const struct policy_config *c,
					 enum policy_host_state host,
					 const struct policy_vm_in *v,
					 uint64_t taken)
{
	uint64_t keep = frac_of(v->ram, c->min_guest_free);

	if (host != POLICY_SOFT)
		return POLICY_R_RECLAIM_PRESSURE;
	/* within what the guest has free (not cache): its free memory */
	if (v->g_free > keep && taken <= v->g_free - keep)
		return POLICY_R_RECLAIM_FREE;
	return POLICY_R_RECLAIM_IDLE;
}

/*
 * HIGH and nothing else to do: the memory reclaimed now, split again as
 * the water-filling would split it from no balloon at all.  Each VM too far
 * from that split moves toward it by at most its step; deflations are paid
 * by the reclaims of the same tick, never more, so usage does not grow.
 */
static void rebalance(struct policy_tick_ctx *t, struct vmw *w, unsigned n)
{
	static struct vmw ideal[POLICY_MAX_VMS];   /* one tick at a time */
	int64_t total = 0;
	uint64_t taken = 0;

	for (unsigned i = 0; i < n; i++) {
		if (w[i].fixed)
			return;
		ideal[i] = w[i];
		ideal[i].t = ideal[i].plan = w[i].t_lo;
		total += (int64_t)(w[i].t - w[i].t_lo);
	}
	if (total <= 0)
		return;
	plan(t->c, ideal, n, +1, total);
	for (int pass = 0; pass < 2; pass++)   /* reclaims first, then deflates */
		for (unsigned i = 0; i < n; i++) {
			struct vmw *x = &w[i];
			uint64_t thr = u64_max(x->minchg, chunk_up(frac_of(x->ram, 0.02)));
			uint64_t want = ideal[i].plan, nt;
			int dir = want > x->t ? +1 : -1;
			if ((dir > 0 ? want - x->t : x->t - want) <= thr ||
			    (pass == 0) != (dir > 0) || policy_settle_blocks(t, i, dir))
				continue;
			if (dir > 0) {
				nt = u64_min(want, x->t + x->step);
				taken += nt - x->t;
			} else {
				uint64_t give = u64_min(u64_min(x->t - want, x->step),
							chunk_down(taken));
				if (give < x->minchg)
					continue;
				nt = x->t - give;
				taken -= give;
			}
			t->out->vms[i].target = nt;
			t->out->vms[i].reason = POLICY_R_REBALANCE;
		}
}

/* Moves each planned VM toward its plan by at most its step, unless that
 * reverses its last change too soon. */
static void apply(struct policy_tick_ctx *t, struct vmw *w, int dir,
		  bool short_of_plan)
{
	enum policy_host_state host = t->st->host;

	for (unsigned i = 0; i < t->out->nvms; i++) {
		const struct policy_vm_in *v = &t->in->vms[i];
		struct policy_vm_out *o = &t->out->vms[i];
		struct vmw *x = &w[i];
		uint64_t nt;

		if (x->fixed)
			continue;
		if (x->plan == x->t) {
			/* wanted but could not give: say why */
			if (dir > 0 && short_of_plan)
				o->reason = v->stats_valid ? POLICY_R_CLAMP_FLOOR
							   : POLICY_R_NO_STATS;
			continue;
		}
		if (policy_settle_blocks(t, i, dir)) {
			o->reason = POLICY_R_HOLD_SETTLE;
			continue;
		}
		if (dir > 0) {
			nt = u64_min(x->plan, x->t + x->step);
			o->reason = reclaim_reason(t->c, host, v, nt - x->t);
		} else {
			nt = x->t - u64_min(x->t - x->plan, x->step);
			o->reason = POLICY_R_DEFLATE_EASED;
		}
		o->target = nt;
	}
}

void policy_shares_tick(struct policy_tick_ctx *t)
{
	const struct policy_config *c = t->c;
	const struct policy_in *in = t->in;
	enum policy_host_state host = t->st->host;
	unsigned n = t->out->nvms;
	struct vmw w[POLICY_MAX_VMS];
	double budget = (double)in->budget;
	/* bytes free now minus bytes free at the high threshold */
	double above_high = budget - (double)in->usage - c->high * budget;
	int64_t fdelta, amount;

	int64_t pend_in = 0, pend_out = 0;
	bool moving = false;

	for (unsigned i = 0; i < n; i++) {
		const struct policy_vm_in *v = &in->vms[i];
		bounds(c, host, v, &w[i]);
		/*
		 * Balloons still on their way: usage has not seen them yet.  An
		 * inflation in flight will free memory (unless the guest is
		 * stuck at its floor, which it reports as pressure); a deflation
		 * in flight will use some.  Without this a slow balloon would
		 * be asked again every tick and the reclaim would overshoot.
		 */
		/* A guest at its floor (g_floor set: it gives no more) stops
		 * short of its target for good, as one under pressure does:
		 * that inflation frees nothing more.  Counted in flight, it
		 * held SOFT a point under high for a minute in bench_policy
		 * (4 balloons 3 MiB short ate the reclaim every tick). */
		bool stuck = v->g_pressure || v->g_floor;
		if (v->balloon_target > v->balloon_size && !stuck)
			pend_in += (int64_t)(v->balloon_target - v->balloon_size);
		else if (v->balloon_size > v->balloon_target)
			pend_out += (int64_t)(v->balloon_size - v->balloon_target);
		/* and the rebalance waits only for balloons still on their way
		 * (a stuck one, or one less than a smallest change away, held
		 * it off forever: 124 KiB short in bench_policy) */
		uint64_t gap = v->balloon_target > v->balloon_size ?
			       (stuck ? 0 : v->balloon_target - v->balloon_size) :
			       v->balloon_size - v->balloon_target;
		moving |= gap >= w[i].minchg;
	}
	fdelta = forced(t, w);

	if (host != POLICY_HIGH) {
		/* free back up to high, paying for the forced moves too */
		amount = (int64_t)ceil(-above_high) + fdelta - pend_in + pend_out;
		t->out->want = amount;
		if (amount > 0) {
			int64_t left = plan(c, w, n, +1, amount);
			apply(t, w, +1, left > 0);
		}
		return;
	}
	/* HIGH: deflate only with a margin above high, and never below it */
	if (in->budget && t->out->free >= c->high + (c->high - c->soft) / 2) {
		/* an inflation in flight is not counted as room: the guest may
		 * not get there */
		amount = (int64_t)floor(above_high) - fdelta - pend_out;
		if (amount > 0) {
			t->out->want = -amount;
			plan(c, w, n, -1, amount);
			apply(t, w, -1, false);
			return;
		}
	}
	if (!moving && !fdelta)
		rebalance(t, w, n);
}
