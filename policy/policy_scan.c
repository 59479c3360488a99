/*
 * policy_scan.c - the page-sharing scanner's rate, a closed loop on what
 * scanning buys (strategy = shares; MOM's own rule is in policy_mom.c).
 *
 * yield = delta saved bytes / delta scanner CPU seconds since the last
 * tick.  Scanning is worth more CPU only while memory is tight and it
 * keeps paying: in SOFT with a yield of at least merge_yield_min the rate
 * doubles; in HARD and LOW it is scan_max whatever it costs (reclaiming
 * by sharing beats ballooning an active guest); otherwise it halves down
 * to scan_min.  Doubling and halving reach either end of 200..20000 in
 * seven ticks.  A yield that cannot be measured (first tick, no CPU used)
 * holds the rate in SOFT rather than guess.
 */
#include "policy_internal.h"

uint64_t policy_scan_next(const struct policy_config *c,
			  const struct policy_state *st,
			  const struct policy_in *in,
			  enum policy_host_state host)
{
	uint64_t rate = st->ticks ? st->scan_rate : in->ksm_scan_rate;
	bool known = false;
	double yield = 0;

	if (st->have_prev) {
		double dcpu = in->ksm_cpu_s - st->prev_cpu_s;
		double dsaved = (double)in->ksm_saved_bytes - (double)st->prev_saved;
		if (dcpu > 1e-9) {
			yield = dsaved / dcpu;
			known = true;
		}
	}
	rate = u64_max(c->scan_min, u64_min(rate, c->scan_max));
	if (host == POLICY_HARD || host == POLICY_LOW)
		return c->scan_max;
	if (host == POLICY_SOFT && !known)
		return rate;
	if (host == POLICY_SOFT && yield >= (double)c->merge_yield_min)
		return u64_min(rate * 2, c->scan_max);
	return u64_max(rate / 2, c->scan_min);
}
