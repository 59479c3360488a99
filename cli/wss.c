/*
 * wss.c - each VM's working-set estimate for the policy: the distinct
 * pages the guest (or a device model for it) wrote within a window, from
 * hv-core's dirty log as its HV_DIRTY_WSS consumer (so ksm, the other
 * consumer, loses nothing).
 *
 * A fetch is not free.  KVM write-protects again every page it reports, so
 * the guest's next write to each faults; under shadow paging (this
 * machine: KVM nested on a software backend) a guest rewriting 96 MiB ran
 * at a tenth of its speed with a fetch every second.  The bits KVM keeps
 * between fetches are the distinct pages written in that time, so one
 * fetch per window gives the same estimate as many: the log is fetched
 * every sample_ns (default: once per window), and at every window's end.
 * The first window is short (WSS_FIRST_NS) so that a VM's working set
 * shows from the policy's second tick, not after a whole window.
 *
 * The estimate is the larger of the last full window and the window being
 * filled, so a guest that becomes active shows within sample_ns and one
 * that goes idle shows after at most one window.  Reads are invisible to
 * a dirty log: a guest that only reads counts as idle here, and the policy
 * weighs the guest's own stats beside this (ESX samples accessed bits for
 * the same reason; we have no cheap access bit under nested paging).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static uint64_t popcount_words(const uint64_t *w, uint64_t n)
{
	uint64_t c = 0;
	for (uint64_t i = 0; i < n; i++)
		c += (uint64_t)__builtin_popcountll(w[i]);
	return c;
}

#define WSS_FIRST_NS 1000000000ull   /* the first window: 1 s */

int wss_start(struct wss *w, struct hv_vm *vm, uint64_t window_ns,
	      uint64_t sample_ns, uint64_t now_ns)
{
	const struct hv_ram_range *r = hv_vm_ranges(vm, &w->nranges);
	uint64_t most = 0;

	memset(w->win, 0, sizeof(w->win));
	w->scratch = NULL;
	w->vm = vm;
	w->window_ns = window_ns ? window_ns : 10ull * 1000000000;
	wss_set_sample(w, sample_ns);
	w->win_start = w->last_fetch = now_ns;
	w->first = true;
	w->fetches = 0;
	w->prev_pages = w->cur_pages = 0;
	if (w->nranges > WSS_MAX_RANGES)
		return -E2BIG;
	for (unsigned i = 0; i < w->nranges; i++) {
		w->words[i] = ((r[i].len >> 12) + 63) / 64;
		w->win[i] = calloc(w->words[i], 8);
		if (!w->win[i])
			goto nomem;
		if (w->words[i] > most)
			most = w->words[i];
	}
	w->scratch = calloc(most, 8);
	if (!w->scratch)
		goto nomem;
	int rc = hv_dirty_enable(vm, HV_DIRTY_WSS, true);
	if (rc) {
		wss_stop(w);
		return rc;
	}
	return 0;
nomem:
	wss_stop(w);
	return -ENOMEM;
}

void wss_set_sample(struct wss *w, uint64_t sample_ns)
{
	/* 0 or longer than the window: once per window */
	w->sample_ns = sample_ns && sample_ns < w->window_ns ? sample_ns
							      : w->window_ns;
}

/* One fetch of every range into the window; cur_pages = its count. */
static void fetch(struct wss *w, uint64_t now_ns)
{
	uint64_t pages = 0;

	for (unsigned i = 0; i < w->nranges; i++) {
		memset(w->scratch, 0, w->words[i] * 8);
		if (!hv_dirty_fetch(w->vm, HV_DIRTY_WSS, i, w->scratch))
			for (uint64_t k = 0; k < w->words[i]; k++)
				w->win[i][k] |= w->scratch[k];
		pages += popcount_words(w->win[i], w->words[i]);
	}
	w->cur_pages = pages;
	w->last_fetch = now_ns;
	w->fetches++;
}

uint64_t wss_sample(struct wss *w, uint64_t now_ns)
{
	if (!w->scratch)
		return 0;
	uint64_t len = w->first && WSS_FIRST_NS < w->window_ns ? WSS_FIRST_NS
								: w->window_ns;
	bool roll = now_ns - w->win_start >= len;
	/* the window's last bits are fetched before it closes: what KVM
	 * holds was written in it */
	if (roll || now_ns - w->last_fetch >= w->sample_ns)
		fetch(w, now_ns);
	if (roll) {
		w->prev_pages = w->cur_pages;
		w->cur_pages = 0;
		w->win_start = now_ns;
		w->first = false;
		for (unsigned i = 0; i < w->nranges; i++)
			memset(w->win[i], 0, w->words[i] * 8);
	}
	uint64_t pages = w->cur_pages > w->prev_pages ? w->cur_pages
						       : w->prev_pages;
	return pages << 12;
}

void wss_stop(struct wss *w)
{
	if (w->scratch && w->vm)
		hv_dirty_enable(w->vm, HV_DIRTY_WSS, false);
	for (unsigned i = 0; i < WSS_MAX_RANGES; i++) {
		free(w->win[i]);
		w->win[i] = NULL;
	}
	free(w->scratch);
	w->scratch = NULL;
}
