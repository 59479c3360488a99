/*
 * bh_device.c - the balloon device's request path.
 *
 * Owns: serving HC_BALLOON for one VM: REGISTER/UNREGISTER of the config
 * page and ring, INFLATE, DEFLATE, REPORT and STATS, with every check the
 * hostile-guest rule needs.  It sees the VM only through struct bh_backend.
 *
 * A ring request goes through four steps, all under the device lock:
 *   1. copy:     the entries are read once from guest memory into dev->copy;
 *                nothing is read from the ring again.
 *   2. claim:    each entry is checked (reserved bits, alignment, RAM),
 *                entries overlapping an earlier one are refused as
 *                duplicates, then each page is checked for state and taken
 *                with HV_PF_BUSY by CAS, so a concurrent ksm pass never sees
 *                a half-done page; a failed entry releases what it took.
 *   3. act:      inflate/report: the ksm hook for FRAME/BASE pages, then
 *                one zeroing (be.zero, hv_vm_zero) per run of contiguous
 *                claimed entries; deflate: the same (a page comes back zero
 *                even if the guest wrote to it while ballooned).  A failed
 *                zeroing rolls its run back.
 *
 * The memory-safety invariant (hv-core/hv.h): a page this device takes or
 * gives back reads zero from the moment its run is zeroed, on anonymous and
 * base-backed RAM alike.  Never a plain discard: on base-backed RAM that
 * would read base[g], other VMs' content, while the page is ballooned,
 * reported or on its way back.
 *   4. publish:  final page states (BUSY dropped), counters, and the
 *                per-entry status written back into the guest's ring.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bh_internal.h"

#define PG        BALLOON_PAGE_SIZE
#define HUGE      BALLOON_HUGE_SIZE
#define CAS_TRIES 8

/* --------------------------------------------------------------- refusal */

static enum balloon_host_reject status_reason(unsigned st)
{
	switch (st) {
	case BALLOON_ST_INVALID: return BH_REJ_INVALID;
	case BALLOON_ST_RANGE:   return BH_REJ_RANGE;
	case BALLOON_ST_ALIGN:   return BH_REJ_ALIGN;
	case BALLOON_ST_DEVICE:  return BH_REJ_DEVICE;
	default:                 return BH_REJ_STATE;
	}
}

static const char *op_name(uint64_t op)
{
	switch (op) {
	case BALLOON_OP_REGISTER:   return "register";
	case BALLOON_OP_UNREGISTER: return "unregister";
	case BALLOON_OP_INFLATE:    return "inflate";
	case BALLOON_OP_DEFLATE:    return "deflate";
	case BALLOON_OP_REPORT:     return "report";
	case BALLOON_OP_STATS:      return "stats";
	default:                    return "?";
	}
}

/* Formats and emits one line already admitted by bh_log_admit(). */
static void bh_log_emit(struct balloon_host *dev, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void bh_log_emit(struct balloon_host *dev, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	bh_vlog(dev, fmt, ap);
	va_end(ap);
}

static void reject(struct balloon_host *dev, enum balloon_host_reject why,
		   const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reject(struct balloon_host *dev, enum balloon_host_reject why,
		   const char *fmt, ...)
{
	char msg[160];
	va_list ap;
	dev->reject[why]++;
	if (!bh_log_admit(dev))
		return;          /* a flood costs a counter, not a printf */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	bh_log_emit(dev, "rejected (%s): %s", balloon_host_reject_name(why), msg);
}

/* ----------------------------------------------------------- page state */

static hv_pstate_t get(struct balloon_host *dev, uint64_t pfn)
{
	return dev->be.page_get(dev->be.ctx, pfn);
}

/* Stores `v` into a page this device holds BUSY.  Only we change a BUSY
 * page's state, but another writer may still flip a flag bit, so retry. */
static void set_owned(struct balloon_host *dev, uint64_t pfn, hv_pstate_t v)
{
	for (int i = 0; i < 1000; i++) {
		hv_pstate_t cur = get(dev, pfn);
		if (dev->be.page_cas(dev->be.ctx, pfn, cur, v))
			return;
	}
	bh_log(dev, "page-state cas on pfn 0x%llx keeps failing",
	       (unsigned long long)pfn);
}

/* Takes HV_PF_BUSY on one page if `op` may act on it; returns a status. */
static unsigned claim_page(struct balloon_host *dev, uint64_t pfn, uint64_t op)
{
	for (int tries = 0; tries < CAS_TRIES; tries++) {
		hv_pstate_t v = get(dev, pfn);
		unsigned s = hv_ps_state(v), fl = hv_ps_flags(v);
		if (fl & HV_PF_BUSY)
			return BALLOON_ST_BUSY;
		if (fl & HV_PF_DEVICE)
			return BALLOON_ST_DEVICE;
		if (op == BALLOON_OP_DEFLATE) {
			if (s != HV_PAGE_BALLOONED)
				return BALLOON_ST_STATE;
		} else {
			if (s == HV_PAGE_BALLOONED)
				return BALLOON_ST_STATE;
			/* Nobody could drop a shared frame's reference. */
			if (s == HV_PAGE_FRAME && !dev->cfg.on_page_released)
				return BALLOON_ST_BUSY;
		}
		if (dev->be.page_cas(dev->be.ctx, pfn, v, v | HV_PF_BUSY))
			return BALLOON_ST_OK;
	}
	return BALLOON_ST_BUSY;
}

/* The value to restore when an inflate/report is rolled back: a FRAME page
 * whose reference the hook already dropped is ordinary private memory. */
static hv_pstate_t rollback_value(hv_pstate_t cur, bool hooked)
{
	hv_pstate_t old = cur & ~(hv_pstate_t)HV_PF_BUSY;
	if (hooked && hv_ps_state(old) == HV_PAGE_FRAME)
		return hv_ps_make(HV_PAGE_PRIVATE, hv_ps_flags(old), 0);
	return old;
}

static void unclaim_range(struct balloon_host *dev, uint64_t pfn, uint64_t n,
			  bool hooked)
{
	for (uint64_t k = 0; k < n; k++)
		set_owned(dev, pfn + k, rollback_value(get(dev, pfn + k), hooked));
}

static uint64_t ent_len(uint64_t e)
{
	return (e & BALLOON_ENT_2M) ? HUGE : PG;
}

/* End of an entry's range, saturating (hostile GPAs near 2^64). */
static uint64_t ent_end(uint64_t e)
{
	uint64_t g = balloon_ent_gpa(e), end = g + ent_len(e);
	return end < g ? UINT64_MAX : end;
}

/* Step 2a for one entry: the checks that need no page state, in a fixed
 * order.  BALLOON_ST_NONE = passed. */
static unsigned check_entry(struct balloon_host *dev, uint64_t e)
{
	uint64_t gpa = balloon_ent_gpa(e), len = ent_len(e);
	if (e & (BALLOON_ENT_RSVD_MASK | BALLOON_ENT_ST_MASK))
		return BALLOON_ST_INVALID;
	if ((e & BALLOON_ENT_2M) && (gpa & (HUGE - 1)))
		return BALLOON_ST_ALIGN;
	/* RAM of this VM, wholly inside one range: excludes the PCI hole,
	 * anything past the end, and 2 MiB blocks that straddle a range end. */
	if (gpa >= dev->be.gpa_end || len > dev->be.gpa_end - gpa ||
	    !dev->be.gpa_to_hva(dev->be.ctx, gpa, len))
		return BALLOON_ST_RANGE;
	return BALLOON_ST_NONE;
}

/* Step 2c: takes every page of a checked entry, or none. */
static unsigned claim_entry(struct balloon_host *dev, uint64_t op, uint64_t e)
{
	uint64_t pfn = balloon_ent_gpa(e) / PG, n = ent_len(e) / PG;
	for (uint64_t j = 0; j < n; j++) {
		unsigned st = claim_page(dev, pfn + j, op);
		if (st != BALLOON_ST_OK) {
			unclaim_range(dev, pfn, j, false);
			return st;
		}
	}
	return BALLOON_ST_OK;
}

/* ------------------------------------------------------------ overlaps */

/* qsort has no context argument: a thread-local points at the copy. */
static __thread const uint64_t *tl_sort_copy;

static int cmp_entry(const void *a, const void *b)
{
	uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
	uint64_t gi = balloon_ent_gpa(tl_sort_copy[i]), gj = balloon_ent_gpa(tl_sort_copy[j]);
	if (gi != gj)
		return gi < gj ? -1 : 1;
	return i < j ? -1 : i > j;
}

/*
 * Marks entries that overlap an earlier entry of the same request as
 * BALLOON_ST_STATE (a duplicate), so the survivors are pairwise disjoint.
 * Without this, a page claimed BUSY by the first copy would make the second
 * look like a transient BUSY instead of a hostile duplicate.  Ring order
 * decides which copy survives.  O(n) when the entries are already sorted
 * and disjoint (the usual case), else a sort of at most 8192 indices.
 */
static void mark_duplicates(struct balloon_host *dev, uint64_t count)
{
	const uint64_t *c = dev->copy;
	uint32_t *idx = dev->idx, prev;
	uint64_t i, prev_end;
	bool sorted = true;

	for (i = 1; i < count && sorted; i++)
		sorted = balloon_ent_gpa(c[i]) >= ent_end(c[i - 1]) &&
			 ent_end(c[i - 1]) != UINT64_MAX;
	if (sorted)
		return;
	for (i = 0; i < count; i++)
		idx[i] = (uint32_t)i;
	tl_sort_copy = c;
	qsort(idx, count, sizeof(idx[0]), cmp_entry);
	tl_sort_copy = NULL;
	prev = UINT32_MAX;
	prev_end = 0;
	for (i = 0; i < count; i++) {
		uint32_t k = idx[i];
		uint64_t g = balloon_ent_gpa(c[k]);
		if (dev->st[k] != BALLOON_ST_NONE)
			continue;
		if (prev != UINT32_MAX && g < prev_end) {
			/* overlap: the later one in ring order loses */
			uint32_t loser = k > prev ? k : prev;
			dev->st[loser] = BALLOON_ST_STATE;
			if (loser == k)
				continue;
		}
		prev = k;
		prev_end = ent_end(c[k]);
	}
}

/* ------------------------------------------------------ the guest's half */

/* mem_total .. oom_kills, one array of words, and their BALLOON_STAT_* bits */
#define NWORDS 9
_Static_assert(offsetof(struct balloon_stats, oom_kills) ==
	       offsetof(struct balloon_stats, mem_total) + (NWORDS - 1) * sizeof(uint64_t),
	       "mem_total .. oom_kills are one array of words");
static const uint32_t stat_bits[NWORDS] = {
	BALLOON_STAT_MEM_TOTAL, BALLOON_STAT_MEM_FREE, BALLOON_STAT_MEM_AVAILABLE,
	BALLOON_STAT_CACHED, BALLOON_STAT_SWAP_IN, BALLOON_STAT_SWAP_OUT,
	BALLOON_STAT_MAJOR_FAULTS, BALLOON_STAT_MINOR_FAULTS, BALLOON_STAT_OOM_KILLS,
};

/*
 * Why the guest's stats cannot be true, or NULL when they can: a value of
 * 2^63 or more (no JSON integer, and no real count), a memory figure above
 * the VM's RAM, or free / available / cached above total.  Counts since
 * boot (swap, faults, OOM kills) may exceed RAM; they only get the 2^63
 * bound.
 */
static const char *stats_impossible(const struct balloon_host *dev,
				    const struct balloon_stats *st)
{
	const uint64_t *w = &st->mem_total;
	const uint64_t top = 1ull << 63, ram = dev->be.mem_bytes;
	for (unsigned i = 0; i < NWORDS; i++) {
		if (!(st->valid & stat_bits[i]))
			continue;
		if (w[i] >= top)
			return "a value of 2^63 or more";
		if (i < 4 && w[i] > ram)
			return "a memory figure above the VM's RAM";
	}
	if (st->valid & BALLOON_STAT_MEM_TOTAL) {
		if ((st->valid & BALLOON_STAT_MEM_FREE) && st->mem_free > st->mem_total)
			return "free above total";
		if ((st->valid & BALLOON_STAT_MEM_AVAILABLE) &&
		    st->mem_available > st->mem_total)
			return "available above total";
		if ((st->valid & BALLOON_STAT_CACHED) && st->cached > st->mem_total)
			return "cached above total";
	}
	return NULL;
}

/* Fields whose valid bit is clear hold whatever the guest left there:
 * zero them, so no reader ever sees them. */
static void clear_unset(struct balloon_stats *st)
{
	uint64_t *w = &st->mem_total;
	for (unsigned i = 0; i < NWORDS; i++)
		if (!(st->valid & stat_bits[i]))
			w[i] = 0;
	if (!(st->valid & BALLOON_STAT_PSI_SOME))
		st->psi_some_avg10 = 0;
	if (!(st->valid & BALLOON_STAT_PSI_FULL))
		st->psi_full_avg10 = 0;
}

static void guest_rejects(struct balloon_host *dev, const char *what,
			  const char *why)
{
	dev->guest_rejected++;
	bh_log(dev, "guest %s refused (%s); the last good ones are kept", what,
	       why);
}

/* Copies the guest half of the config page word by word (the guest may be
 * writing it) and keeps only what can be true: an impossible figure is
 * refused whole and counted, and the last good values stay, so a guest
 * cannot blind whoever reads these (the control socket, the policy). */
void bh_read_guest_half(struct balloon_host *dev, bool with_stats)
{
	struct balloon_cfg_guest g;
	uint64_t *dst = (uint64_t *)&g;
	const char *why;
	size_t words = (with_stats ? sizeof(g) : offsetof(struct balloon_cfg_guest, stats))
		       / sizeof(uint64_t);
	if (!dev->cfg_g)
		return;
	for (size_t i = 0; i < words; i++)
		dst[i] = __atomic_load_n(&dev->cfg_g[i], __ATOMIC_RELAXED);
	if (g.balloon_pages > dev->be.mem_bytes / PG) {
		if (g.balloon_pages != dev->last_bad_claim)
			guest_rejects(dev, "balloon size", "above the VM's RAM");
		dev->last_bad_claim = g.balloon_pages;
	} else {
		dev->guest_balloon_pages = g.balloon_pages;
	}
	dev->guest_status = g.status & (BALLOON_GST_AT_FLOOR | BALLOON_GST_PRESSURE |
					BALLOON_GST_ALLOC_FAIL);
	if (!with_stats)
		return;
	g.stats.valid &= BALLOON_STAT_ALL;
	clear_unset(&g.stats);
	if ((why = stats_impossible(dev, &g.stats))) {
		guest_rejects(dev, "stats", why);
		return;
	}
	if (g.stats.psi_some_avg10 > 10000)
		g.stats.psi_some_avg10 = 10000;
	if (g.stats.psi_full_avg10 > 10000)
		g.stats.psi_full_avg10 = 10000;
	g.stats.pad0 = 0;
	dev->guest = g.stats;
	dev->stats_updates++;
}

/* ------------------------------------------------- giving pages back */

/* The final state of a page leaving the balloon (deflate, or the sweep at
 * UNREGISTER) after its zeroing. */
#define RETURNED_STATE hv_ps_make(HV_PAGE_ZERO, 0, 0)

static void note_ballooned(struct balloon_host *dev, uint64_t pfn, uint64_t n)
{
	if (dev->host_pages == 0 || pfn < dev->lo_pfn)
		dev->lo_pfn = pfn;
	if (dev->host_pages == 0 || pfn + n > dev->hi_pfn)
		dev->hi_pfn = pfn + n;
	dev->host_pages += n;
}

/*
 * UNREGISTER: the guest driver is gone, so the host forgets its balloon:
 * every BALLOONED page goes back to the guest as on a deflate.  If the
 * zeroing fails, the page is zero-filled instead: the guest will use it.
 * A page someone else holds BUSY right now stays BALLOONED and counted
 * (host_pages always equals the BALLOONED count); the next sweep takes it.
 * The sweep only covers [lo_pfn, hi_pfn) of RAM.
 */
static void sweep_ballooned(struct balloon_host *dev)
{
	uint64_t left = dev->host_pages;
	if (left == 0)
		return;
	for (unsigned r = 0; r < dev->be.nranges; r++) {
		uint64_t p0 = dev->be.ranges[r].gpa / PG;
		uint64_t p1 = p0 + dev->be.ranges[r].len / PG;
		if (p0 < dev->lo_pfn)
			p0 = dev->lo_pfn;
		if (p1 > dev->hi_pfn)
			p1 = dev->hi_pfn;
		for (uint64_t pfn = p0; pfn < p1; pfn++) {
			hv_pstate_t v;
			if (claim_page(dev, pfn, BALLOON_OP_DEFLATE) != BALLOON_ST_OK)
				continue;
			dev->discards++;
			if (dev->be.zero(dev->be.ctx, pfn * PG, PG) < 0) {
				void *hva = dev->be.gpa_to_hva(dev->be.ctx, pfn * PG, PG);
				dev->io_errors++;
				if (hva)
					memset(hva, 0, PG);
				v = hv_ps_make(HV_PAGE_PRIVATE, 0, 0);
			} else {
				v = RETURNED_STATE;
			}
			set_owned(dev, pfn, v);
			dev->host_pages--;
		}
	}
	if (dev->host_pages)
		bh_log(dev, "unregister: %llu of %llu ballooned pages were busy; "
		       "kept for the next sweep", (unsigned long long)dev->host_pages,
		       (unsigned long long)left);
}

/* --------------------------------------------------------- registration */

static void unflag_registered(struct balloon_host *dev, unsigned npages)
{
	for (unsigned k = 0; k < npages; k++) {
		uint64_t gpa = k == 0 ? dev->cfg_gpa : dev->ring_gpa + (k - 1) * PG;
		if (!dev->flagged[k])
			continue;
		dev->flagged[k] = false;
		for (int i = 0; i < 1000; i++) {
			hv_pstate_t v = get(dev, gpa / PG);
			if (dev->be.page_cas(dev->be.ctx, gpa / PG, v,
					     v & ~(hv_pstate_t)HV_PF_DEVICE))
				break;
		}
	}
}

static void do_unregister(struct balloon_host *dev)
{
	if (!dev->registered)
		return;
	unflag_registered(dev, 1 + dev->ring_pages);
	sweep_ballooned(dev);
	dev->registered = false;
	dev->cfg_h = NULL;
	dev->cfg_g = NULL;
	dev->ring = NULL;
	dev->ring_pages = dev->ring_cap = 0;
}

/* Makes one config/ring page DEVICE.  The host will write into it, so a
 * discarded or shared page becomes private (a FRAME page's reference is
 * dropped through the hook first; the host's write then copies-on-write). */
static int flag_register_page(struct balloon_host *dev, unsigned k, uint64_t gpa)
{
	uint64_t pfn = gpa / PG;
	unsigned st = claim_page(dev, pfn, BALLOON_OP_REGISTER);
	hv_pstate_t old;
	dev->flagged[k] = false;
	if (st == BALLOON_ST_DEVICE)
		return 0;   /* already a device page (e.g. the micro guest's
			       image): fine, but not ours to un-flag later */
	if (st != BALLOON_ST_OK)
		return st == BALLOON_ST_BUSY ? -BALLOON_EBUSY : -BALLOON_EINVAL;
	old = get(dev, pfn) & ~(hv_pstate_t)HV_PF_BUSY;
	if ((hv_ps_state(old) == HV_PAGE_FRAME || hv_ps_state(old) == HV_PAGE_BASE) &&
	    dev->cfg.on_page_released)
		dev->cfg.on_page_released(dev->cfg.release_ctx, gpa, old);
	set_owned(dev, pfn, hv_ps_make(HV_PAGE_PRIVATE,
				       hv_ps_flags(old) | HV_PF_DEVICE, 0));
	dev->flagged[k] = true;
	return 0;
}

static int64_t do_register(struct balloon_host *dev, const uint64_t *a,
			   uint64_t *ret2)
{
	uint64_t cfg = a[1], ring = a[2], pages = a[3], rlen;
	void *chva, *rhva;
	int rc = 0;
	unsigned k;

	if (a[4] != BALLOON_PROTO_VERSION) {
		reject(dev, BH_REJ_REGISTER, "protocol version %llu",
		       (unsigned long long)a[4]);
		return -BALLOON_EPROTO;
	}
	if (pages == 0 || pages > BALLOON_RING_MAX_PAGES || (cfg | ring) & (PG - 1)) {
		reject(dev, BH_REJ_REGISTER, "config 0x%llx ring 0x%llx pages %llu",
		       (unsigned long long)cfg, (unsigned long long)ring,
		       (unsigned long long)pages);
		return -BALLOON_EINVAL;
	}
	rlen = pages * PG;
	if (cfg >= dev->be.gpa_end || ring >= dev->be.gpa_end ||
	    rlen > dev->be.gpa_end - ring ||
	    !(chva = dev->be.gpa_to_hva(dev->be.ctx, cfg, PG)) ||
	    !(rhva = dev->be.gpa_to_hva(dev->be.ctx, ring, rlen))) {
		reject(dev, BH_REJ_REGISTER, "config 0x%llx or ring 0x%llx+%llu not RAM",
		       (unsigned long long)cfg, (unsigned long long)ring,
		       (unsigned long long)rlen);
		return -BALLOON_ERANGE;
	}
	if (cfg >= ring && cfg < ring + rlen) {
		reject(dev, BH_REJ_REGISTER, "config page inside the ring");
		return -BALLOON_EINVAL;
	}

	do_unregister(dev);        /* a second REGISTER is a reset */
	dev->cfg_gpa = cfg;
	dev->ring_gpa = ring;
	for (k = 0; k < 1 + pages && rc == 0; k++)
		rc = flag_register_page(dev, k, k == 0 ? cfg : ring + (k - 1) * PG);
	if (rc < 0) {
		unflag_registered(dev, k);
		if (rc == -BALLOON_EBUSY)
			dev->busy++;
		else
			reject(dev, BH_REJ_REGISTER, "config or ring page is ballooned");
		return rc;
	}
	dev->registered = true;
	dev->ring_pages = (uint32_t)pages;
	dev->ring_cap = (uint32_t)(pages * BALLOON_RING_PAGE_ENTRIES);
	dev->cfg_h = chva;
	dev->cfg_g = (const volatile uint64_t *)((uint8_t *)chva + BALLOON_CFG_GUEST_OFF);
	dev->ring = rhva;
	bh_publish_config(dev);
	*ret2 = dev->ring_cap;
	bh_log(dev, "registered: config 0x%llx, ring 0x%llx (%u entries)",
	       (unsigned long long)cfg, (unsigned long long)ring, dev->ring_cap);
	return 0;
}

/* ------------------------------------------------------- ring requests */

static void hook_entry(struct balloon_host *dev, uint64_t e)
{
	uint64_t pfn = balloon_ent_gpa(e) / PG, n = ent_len(e) / PG;
	if (!dev->cfg.on_page_released)
		return;
	for (uint64_t k = 0; k < n; k++) {
		hv_pstate_t old = get(dev, pfn + k) & ~(hv_pstate_t)HV_PF_BUSY;
		unsigned s = hv_ps_state(old);
		if (s == HV_PAGE_FRAME || s == HV_PAGE_BASE)
			dev->cfg.on_page_released(dev->cfg.release_ctx,
						  (pfn + k) * PG, old);
	}
}

/* Step 4 for one accepted entry. */
static void finish_entry(struct balloon_host *dev, uint64_t op, uint64_t e)
{
	uint64_t gpa = balloon_ent_gpa(e), pfn = gpa / PG, n = ent_len(e) / PG;
	hv_pstate_t v;
	switch (op) {
	case BALLOON_OP_INFLATE:
		v = hv_ps_make(HV_PAGE_BALLOONED, 0, 0);
		for (uint64_t k = 0; k < n; k++)
			set_owned(dev, pfn + k, v);
		note_ballooned(dev, pfn, n);
		dev->inflated += n;
		break;
	case BALLOON_OP_REPORT:
		v = hv_ps_make(HV_PAGE_ZERO, 0, 0);
		for (uint64_t k = 0; k < n; k++)
			set_owned(dev, pfn + k, v);
		dev->reported += n;
		break;
	case BALLOON_OP_DEFLATE:
		for (uint64_t k = 0; k < n; k++)
			set_owned(dev, pfn + k, RETURNED_STATE);
		dev->host_pages -= n;
		dev->deflated += n;
		break;
	}
}

static int64_t do_ring(struct balloon_host *dev, uint64_t op, uint64_t count,
		       uint64_t *ret2)
{
	uint64_t *c = dev->copy;
	uint8_t *st = dev->st;
	uint64_t accepted = 0, i, j;

	/* 1. copy, once */
	for (i = 0; i < count; i++)
		c[i] = __atomic_load_n(&dev->ring[i], __ATOMIC_RELAXED);

	/* 2. check and claim */
	for (i = 0; i < count; i++)
		st[i] = (uint8_t)check_entry(dev, c[i]);
	mark_duplicates(dev, count);
	for (i = 0; i < count; i++) {
		if (st[i] == BALLOON_ST_NONE)
			st[i] = (uint8_t)claim_entry(dev, op, c[i]);
		if (st[i] == BALLOON_ST_OK)
			continue;
		if (st[i] == BALLOON_ST_BUSY) {
			dev->busy++;
			continue;
		}
		reject(dev, status_reason(st[i]), "%s entry %llu: 0x%llx (status %u)",
		       op_name(op), (unsigned long long)i,
		       (unsigned long long)c[i], st[i]);
	}

	/* 3. act, one zeroing per run of contiguous accepted entries */
	for (i = 0; i < count; i = j) {
		uint64_t start, len;
		if (st[i] != BALLOON_ST_OK) {
			j = i + 1;
			continue;
		}
		bool hooked = op != BALLOON_OP_DEFLATE && dev->cfg.on_page_released;
		start = balloon_ent_gpa(c[i]);
		len = ent_len(c[i]);
		if (hooked)
			hook_entry(dev, c[i]);
		for (j = i + 1; j < count && st[j] == BALLOON_ST_OK &&
				balloon_ent_gpa(c[j]) == start + len; j++) {
			if (hooked)
				hook_entry(dev, c[j]);
			len += ent_len(c[j]);
		}
		dev->discards++;
		if (dev->be.zero(dev->be.ctx, start, len) < 0) {
			for (uint64_t k = i; k < j; k++) {
				unclaim_range(dev, balloon_ent_gpa(c[k]) / PG,
					      ent_len(c[k]) / PG, hooked);
				st[k] = BALLOON_ST_IO;
			}
			dev->io_errors++;
			bh_log(dev, "%s: zeroing of 0x%llx+0x%llx failed",
			       op_name(op), (unsigned long long)start,
			       (unsigned long long)len);
		}
	}

	/* 4. publish */
	for (i = 0; i < count; i++) {
		if (st[i] == BALLOON_ST_OK) {
			finish_entry(dev, op, c[i]);
			accepted++;
		}
		dev->ring[i] = (c[i] & ~BALLOON_ENT_ST_MASK) |
			       ((uint64_t)st[i] << BALLOON_ENT_ST_SHIFT);
	}
	*ret2 = count - accepted;
	return (int64_t)accepted;
}

/* --------------------------------------------------------------- entry */

int64_t balloon_host_hypercall(struct balloon_host *dev, const uint64_t a[5],
			       uint64_t *ret2)
{
	uint64_t op = a[0];
	int64_t ret;

	*ret2 = 0;
	pthread_mutex_lock(&dev->lock);
	dev->requests++;
	if (op != BALLOON_OP_REGISTER && op != BALLOON_OP_UNREGISTER &&
	    op != BALLOON_OP_INFLATE && op != BALLOON_OP_DEFLATE &&
	    op != BALLOON_OP_REPORT && op != BALLOON_OP_STATS) {
		reject(dev, BH_REJ_OP, "operation %llu", (unsigned long long)op);
		ret = -BALLOON_ENOSYS;
		goto out;
	}
	if (op == BALLOON_OP_REGISTER) {
		ret = do_register(dev, a, ret2);
		goto out;
	}
	/* Unused arguments must be zero: room to extend the protocol later. */
	if (a[2] || a[3] || a[4] ||
	    ((op == BALLOON_OP_UNREGISTER || op == BALLOON_OP_STATS) && a[1])) {
		reject(dev, BH_REJ_ARGS, "%s with stray arguments", op_name(op));
		ret = -BALLOON_EINVAL;
		goto out;
	}
	if (!dev->registered) {
		reject(dev, BH_REJ_UNREG, "%s before register", op_name(op));
		ret = -BALLOON_ENODEV;
		goto out;
	}
	switch (op) {
	case BALLOON_OP_UNREGISTER:
		do_unregister(dev);
		bh_log(dev, "unregistered");
		ret = 0;
		goto out;
	case BALLOON_OP_STATS:
		bh_read_guest_half(dev, true);
		ret = 0;
		goto out;
	case BALLOON_OP_REPORT:
		if (!(dev->flags & BALLOON_CFG_F_REPORTING)) {
			ret = -BALLOON_EOPNOTSUPP;   /* host switched it off: not hostile */
			goto out;
		}
		break;
	}
	if (a[1] > dev->ring_cap) {
		reject(dev, BH_REJ_COUNT, "%s count %llu > ring capacity %u",
		       op_name(op), (unsigned long long)a[1], dev->ring_cap);
		ret = -BALLOON_E2BIG;
		goto out;
	}
	ret = do_ring(dev, op, a[1], ret2);
out:
	if (dev->registered) {
		bh_read_guest_half(dev, false);
		__atomic_store_n(&dev->cfg_h->host_pages, dev->host_pages,
				 __ATOMIC_RELAXED);
	}
	bh_check_reached(dev);
	pthread_mutex_unlock(&dev->lock);
	return ret;
}

struct balloon_host *balloon_host_create(const struct bh_backend *be,
					 const struct balloon_host_config *cfg)
{
	struct balloon_host *dev = calloc(1, sizeof(*dev));
	if (!dev)
		return NULL;
	dev->copy = calloc(BALLOON_RING_MAX_ENTRIES, sizeof(uint64_t));
	dev->st = calloc(BALLOON_RING_MAX_ENTRIES, 1);
	dev->idx = calloc(BALLOON_RING_MAX_ENTRIES, sizeof(uint32_t));
	if (!dev->copy || !dev->st || !dev->idx) {
		free(dev->copy);
		free(dev->st);
		free(dev->idx);
		free(dev);
		return NULL;
	}
	dev->be = *be;
	if (dev->be.nranges > BH_MAX_RANGES)
		dev->be.nranges = BH_MAX_RANGES;
	if (cfg)
		dev->cfg = *cfg;
	if (!dev->cfg.log_lines_per_sec)
		dev->cfg.log_lines_per_sec = 5;
	dev->stats_period_ms = dev->cfg.stats_period_ms;
	dev->flags = dev->cfg.free_page_reporting ? BALLOON_CFG_F_REPORTING : 0;
	dev->reached = true;
	dev->reach_ns = 0;
	pthread_mutex_init(&dev->lock, NULL);
	return dev;
}

void balloon_host_destroy(struct balloon_host *dev)
{
	if (!dev)
		return;
	pthread_mutex_destroy(&dev->lock);
	free(dev->copy);
	free(dev->st);
	free(dev->idx);
	free(dev);
}
