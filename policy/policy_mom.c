/*
 * policy_mom.c - strategy = mom: oVirt MOM's default policy, its balloon
 * and ksm rules as published, for comparison with strategy = shares.
 *
 * Where the rules come from (github.com/oVirt/mom, read at 3de1c8e):
 *   - doc/balloon.rules: the "Auto-Balloon" rule: constants
 *     pressure_threshold 0.20, pressure_critical 0.05,
 *     min_guest_free_percent 0.20, max_balloon_change_percent 0.05,
 *     min_balloon_change_percent 0.0025; helpers change_big_enough,
 *     shrink_guest, grow_guest; the main script shrinks every guest when
 *     host_free_percent < pressure_threshold, else grows every guest;
 *   - doc/ksm.rules: ksm_pages_boost 300, ksm_pages_decay -50,
 *     ksm_npages_min 64, ksm_npages_max 1250, ksm_sleep_ms_baseline 10,
 *     ksm_free_percent 0.20; ksm is stopped when (threshold + committed <
 *     mem_available) and mem_free > threshold, else it runs with
 *     sleep = 10 * 16777216 / mem_available (kB) ms and pages_to_scan
 *     boosted below the threshold, decayed above it, within 64..1250;
 *   - mom/__init__.py: policy-engine-interval defaults to 10 s (both
 *     rules run once per policy interval); mom/Controllers/KSM.py writes
 *     the values as int(), so the sleep is truncated to whole ms;
 *   - mom/Collectors/HostMemory.py: Host mem_available = MemTotal,
 *     mem_free = MemFree + Buffers + Cached;
 *   - mom/HypervisorInterfaces/libvirtInterface.py: balloon_cur = the
 *     domain's current memory, balloon_max = its maximum memory,
 *     balloon_min = <memtune><min_guarantee>, guest mem_unused = the
 *     balloon driver's "unused" (free memory without caches);
 *   - mom/Collectors/HostKSM.py: ksm_shareable = the sum of the qemu
 *     processes' virtual sizes.
 *
 * Two things MOM does not do, though they are often said of it: its ksm
 * rule runs every policy interval (10 s), not every 60 s (60 s is
 * ksmtuned's KSM_MONITOR_INTERVAL, whose boost/decay/64/1250 numbers MOM's
 * rule took over); and "decay otherwise" applies only while ksm runs:
 * with little committed memory and free memory above the threshold the
 * rule stops ksm (ksm_run = 0) and leaves pages_to_scan alone.
 *
 * How MOM's terms map onto a policy tick (the rules are as published; only
 * the inputs are ours):
 *   Host.mem_available      budget
 *   Host mem_free           budget - usage (may go negative here)
 *   host_free_percent       (budget - usage) / budget = out->free
 *   Host.ksm_shareable      sum of the VMs' RAM (a qemu's VSZ is its RAM
 *                           plus small change)
 *   Host.ksm_pages_to_scan  state->mom_npages, starting at the kernel's
 *                           default 100; scan rate = pages_to_scan *
 *                           1000 / sleep_ms pages/s, 0 when ksm_run = 0
 *   guest.balloon_cur       ram - balloon_size (what the guest has now)
 *   guest mem_unused        g_free
 *   guest.balloon_min       cfg.min
 *   guest.balloon_max       cfg.max, or ram when 0
 *   balloon_target (kB of guest memory)  our target = ram - that, rounded
 *                           down to 2 MiB (the guest keeps at least what
 *                           MOM gave it; at most its max)
 *   StatAvg (a 10-sample mean) is the value of this tick: the caller's
 *   inputs are already its figures; averaging is not reproduced.
 * A guest without valid stats is left alone (MOM's StatAvg would have no
 * samples for it).  MOM knows nothing of guest pressure, settling, max_step
 * or our host states: none of those apply here (out->state is still
 * computed, for the log).  Between two policy runs every target holds
 * (mom_wait); a tick up to a tenth of a period early counts as on time,
 * so a caller's jitter does not skip whole periods.
 */
#include <math.h>
#include "policy_internal.h"

#define MOM_PRESSURE_THRESHOLD   0.20
#define MOM_PRESSURE_CRITICAL    0.05
#define MOM_MIN_GUEST_FREE       0.20
#define MOM_MAX_CHANGE           0.05
#define MOM_MIN_CHANGE           0.0025

#define MOM_KSM_BOOST            300
#define MOM_KSM_DECAY            50
#define MOM_KSM_NPAGES_MIN       64
#define MOM_KSM_NPAGES_MAX       1250
#define MOM_KSM_SLEEP_BASELINE   10.0
#define MOM_KSM_FREE_PERCENT     0.20

/* change_big_enough: |new - cur| > min_balloon_change_percent * cur */
static bool big_enough(double cur, double nv)
{
	return fabs(nv - cur) > MOM_MIN_CHANGE * cur;
}

/*
 * shrink_guest or grow_guest for one guest: the guest memory MOM would
 * set, or a negative value when it sets none.
 */
static double mom_guest(double host_free, const struct policy_vm_in *v,
			enum policy_reason *why)
{
	double cur = (double)(v->ram - u64_min(v->balloon_size, v->ram));
	double used = cur - (double)v->g_free;
	double bmin = (double)v->cfg.min;
	double bmax = (double)(v->cfg.max && v->cfg.max < v->ram ? v->cfg.max
								 : v->ram);
	double size, gfree;

	if (host_free < MOM_PRESSURE_THRESHOLD) {
		if (host_free <= MOM_PRESSURE_CRITICAL)
			gfree = -0.05 + host_free;   /* force the guest to swap */
		else
			gfree = MOM_MIN_GUEST_FREE *
				(host_free / MOM_PRESSURE_THRESHOLD);
		bmin = fmax(bmin, used + gfree * cur);
		size = cur * (1 - MOM_MAX_CHANGE);
		if (size < bmin)
			size = bmin;
		*why = POLICY_R_MOM_SHRINK;
		return size <= cur && big_enough(cur, size) ? size : -1;
	}
	if (!(cur < bmax))
		return -1;
	bmin = fmax(bmin, used + MOM_MIN_GUEST_FREE * cur);
	size = cur * (1 + MOM_MAX_CHANGE);
	if (size < bmin)
		size = bmin;
	if (size > bmax)
		size = bmax;
	*why = POLICY_R_MOM_GROW;
	return big_enough(cur, size) ? size : -1;
}

/* MOM's guest memory as our balloon target */
static uint64_t to_target(const struct policy_vm_in *v, double size)
{
	uint64_t ram = v->ram;
	uint64_t t_lo = v->cfg.max && v->cfg.max < ram ?
			chunk_up(ram - v->cfg.max) : 0;
	uint64_t keep = size >= (double)ram ? ram :
			size <= 0 ? 0 : (uint64_t)ceil(size);

	return u64_min(u64_max(chunk_down(ram - keep), t_lo), chunk_down(ram));
}

static void mom_ksm(struct policy_tick_ctx *t)
{
	const struct policy_in *in = t->in;
	struct policy_state *st = t->st;
	double avail = (double)in->budget;
	double mem_free = (double)in->budget - (double)in->usage;
	double thr = avail * MOM_KSM_FREE_PERCENT;
	double committed = 0;

	for (unsigned i = 0; i < in->nvms; i++)
		committed += (double)in->vms[i].ram;
	if (thr + committed < avail && mem_free > thr) {
		st->mom_ksm_run = false;
		st->scan_rate = 0;
		return;
	}
	st->mom_ksm_run = true;
	/* MOM's figures are kB; its controller truncates to int */
	double sleep = floor(MOM_KSM_SLEEP_BASELINE * 16777216.0 /
			     (avail / 1024.0));
	uint64_t sleep_ms = sleep < 1 ? 1 : (uint64_t)sleep;
	int64_t np = (int64_t)st->mom_npages +
		     (mem_free < thr ? MOM_KSM_BOOST : -MOM_KSM_DECAY);
	if (np > MOM_KSM_NPAGES_MAX)
		np = MOM_KSM_NPAGES_MAX;
	if (np < MOM_KSM_NPAGES_MIN)
		np = MOM_KSM_NPAGES_MIN;
	st->mom_npages = (uint64_t)np;
	st->scan_rate = st->mom_npages * 1000 / sleep_ms;
}

void policy_mom_tick(struct policy_tick_ctx *t)
{
	const struct policy_in *in = t->in;
	struct policy_state *st = t->st;
	uint64_t period = (uint64_t)policy_period_ms(t->c) * 1000000ull;

	if (st->ticks && in->now_ns + period / 10 < st->mom_next_ns) {
		for (unsigned i = 0; i < t->out->nvms; i++)
			t->out->vms[i].reason = POLICY_R_MOM_WAIT;
		t->out->scan_rate = st->scan_rate;
		return;
	}
	st->mom_next_ns = in->now_ns + period;
	if (in->budget) {
		for (unsigned i = 0; i < t->out->nvms; i++) {
			const struct policy_vm_in *v = &in->vms[i];
			enum policy_reason why = POLICY_R_HOLD;
			double size;

			if (!v->stats_valid) {
				t->out->vms[i].reason = POLICY_R_NO_STATS;
				continue;
			}
			size = mom_guest(t->out->free, v, &why);
			if (size < 0)
				continue;
			uint64_t nt = to_target(v, size);
			if (nt != v->balloon_target) {
				t->out->vms[i].target = nt;
				t->out->vms[i].reason = why;
			}
		}
		mom_ksm(t);
	}
	t->out->scan_rate = st->scan_rate;
}
