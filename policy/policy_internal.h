/*
 * policy_internal.h - what the files of policy/ share and nobody else
 * sees: the per-tick dispatch between strategies, the settling rule and
 * the 2 MiB arithmetic.  The public interface is policy.h alone.
 */
#ifndef DENSEVM_POLICY_INTERNAL_H
#define DENSEVM_POLICY_INTERNAL_H

#include "policy.h"

static inline uint64_t chunk_down(uint64_t b)
{
	return b & ~(POLICY_CHUNK - 1);
}

static inline uint64_t chunk_up(uint64_t b)
{
	return b > UINT64_MAX - (POLICY_CHUNK - 1) ? chunk_down(b)
						  : chunk_down(b + POLICY_CHUNK - 1);
}

static inline uint64_t u64_min(uint64_t a, uint64_t b) { return a < b ? a : b; }
static inline uint64_t u64_max(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* bytes * fraction, rounded down, saturating (fractions are in [0, 1]) */
static inline uint64_t frac_of(uint64_t b, double f)
{
	double v = (double)b * f;
	return v <= 0 ? 0 : v >= (double)b ? b : (uint64_t)v;
}

/* Per tick: the state slot of in->vms[i] (never NULL for i < out->nvms). */
struct policy_tick_ctx {
	const struct policy_config *c;
	struct policy_state *st;
	const struct policy_in *in;
	struct policy_out *out;
	struct policy_vm_state *slot[POLICY_MAX_VMS];
};

/* policy_shares.c: targets and reasons for strategy = shares. */
void policy_shares_tick(struct policy_tick_ctx *t);
/* policy_scan.c: the next scan rate (strategy = shares). */
uint64_t policy_scan_next(const struct policy_config *c,
			  const struct policy_state *st,
			  const struct policy_in *in,
			  enum policy_host_state host);
/* policy_mom.c: targets, reasons and the scan rate for strategy = mom. */
void policy_mom_tick(struct policy_tick_ctx *t);

/* policy_core.c: true when changing vm i's target in direction dir (+1
 * raise, -1 lower) now would reverse its last change too soon. */
bool policy_settle_blocks(const struct policy_tick_ctx *t, unsigned i,
			  int dir);

#endif
