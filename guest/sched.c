/*
 * sched.c - the workload schedule and the work report: the keys every
 * workload takes for phase-aware runs (densevm bench's [phase] sections).
 *
 * Owns:
 *   epoch=NS      the host CLOCK_MONOTONIC time (HC_TIME) that is time 0 of
 *                 the schedule and of start_ms; without it, the guest's boot.
 *                 Every VM of a bench run gets the same epoch, so their
 *                 phases line up with the host's timeline, whenever each
 *                 VM booted.
 *   sched=MS:ACT[,MS:ACT...]
 *                 at MS ms from the epoch (in time order), the workload turns
 *                 `idle` (does no work, keeps its memory) or `active`, or it
 *                 `grow`s; before the first event it is active.  A workload
 *                 says which actions it takes (sched_accept); others exit 2.
 *   report_ms=N   every N ms the workload sends its work done so far
 *                 (RESULT 10, DVM_RESULT_WORK) with HC_RESULT; the host
 *                 stamps each result with its arrival time, so a sampler
 *                 can turn successive reports into a rate.  0 = never.
 *
 * The host clock is read once (one HC_TIME, ~28 us); after that the
 * schedule runs on the TSC like every other guest timer.
 */
#include "workload.h"

#define SCHED_MAX 32

static struct {
	uint64_t boot_host_ns;      /* host time at now_ns() == 0 */
	/* the epoch on the now_ns() clock, which starts at 0 at boot: signed,
	 * since a VM boots after the epoch that its host took before
	 * starting it (clamping it to the boot moved every time by the boot's
	 * delay, a second or more in a bench run) */
	int64_t epoch_local;
	unsigned n;
	struct { uint64_t at_ns; enum sched_act act; } ev[SCHED_MAX];
	uint64_t report_ns, next_report;
	bool reported, accepted;
} sc;

static const char *const act_names[] = {
	[SCHED_IDLE] = "idle", [SCHED_ACTIVE] = "active", [SCHED_GROW] = "grow",
};

/* Parses one "MS:ACT" item of [s, end). */
static void parse_item(struct wl_args *a, const char *s, const char *end)
{
	const char *colon = s;
	while (colon < end && *colon != ':')
		colon++;
	char num[24];
	size_t nl = (size_t)(colon - s);
	if (colon == end || !nl || nl >= sizeof(num))
		args_fail(a, "sched: '%.*s' is not MS:ACTION", (int)(end - s), s);
	memcpy(num, s, nl);
	num[nl] = '\0';
	int64_t ms;
	if (!parse_i64(num, &ms) || ms < 0 || ms > 86400000)
		args_fail(a, "sched: '%s' is not a time in ms in [0, 86400000]",
			  num);
	int act = -1;
	size_t al = (size_t)(end - colon - 1);
	char name[16] = "";
	if (al < sizeof(name)) {
		memcpy(name, colon + 1, al);
		name[al] = '\0';
	}
	for (unsigned i = 0; i < 3; i++)
		if (!gstrcmp(act_names[i], name))
			act = (int)i;
	if (act < 0)
		args_fail(a, "sched: unknown action '%.*s' (known: idle active "
			  "grow)", (int)al, colon + 1);
	uint64_t at = (uint64_t)ms * NS_PER_MS;
	if (sc.n && at < sc.ev[sc.n - 1].at_ns)
		args_fail(a, "sched: %ld ms comes before the event before it: "
			  "list events in time order", ms);
	if (sc.n == SCHED_MAX)
		args_fail(a, "sched: more than %d events", SCHED_MAX);
	sc.ev[sc.n].at_ns = at;
	sc.ev[sc.n++].act = (enum sched_act)act;
}

void sched_setup(struct wl_args *a)
{
	uint64_t epoch = args_u64(a, "epoch", 0);
	sc.report_ns = (uint64_t)args_int(a, "report_ms", 0, 0, 3600000) *
		       NS_PER_MS;
	if (epoch) {
		/* now_ns() counts from time_init, so the host time at its 0 is
		 * the host time now less the local time now */
		uint64_t host = hc_time(), local = now_ns();
		sc.boot_host_ns = host - local;
		sc.epoch_local = (int64_t)(epoch - sc.boot_host_ns);
	}
	if (!args_has(a, "sched"))
		return;
	const char *v = 0;
	for (unsigned i = 0; i < a->n; i++)
		if (!gstrcmp(a->kv[i].key, "sched")) {
			v = a->kv[i].val;
			a->kv[i].used = true;
		}
	while (*v) {
		const char *e = v;
		while (*e && *e != ',')
			e++;
		parse_item(a, v, e);
		v = *e ? e + 1 : e;
	}
	if (!sc.n)
		args_fail(a, "sched: no events");
}

void sched_accept(struct wl_args *a, unsigned mask)
{
	sc.accepted = true;
	for (unsigned i = 0; i < sc.n; i++)
		if (!(mask & (1u << sc.ev[i].act)))
			args_fail(a, "sched: workload '%s' does not take '%s'",
				  a->wl ? a->wl->name : a->name,
				  act_names[sc.ev[i].act]);
}

void sched_done(struct wl_args *a)
{
	if (sc.n && !sc.accepted)
		args_fail(a, "sched: workload '%s' has no phases (dirty takes "
			  "idle and active, grow takes grow)",
			  a->wl ? a->wl->name : a->name);
}

/* Time t (ns from the epoch) on the now_ns() clock; 0 if before the boot. */
static uint64_t local(uint64_t t)
{
	int64_t v = sc.epoch_local + (int64_t)t;
	return v > 0 ? (uint64_t)v : 0;
}

uint64_t sched_epoch_ns(uint64_t ms)
{
	return local(ms * NS_PER_MS);
}

bool sched_has(enum sched_act act)
{
	for (unsigned i = 0; i < sc.n; i++)
		if (sc.ev[i].act == act)
			return true;
	return false;
}

bool sched_idle(uint64_t now)
{
	bool idle = false;
	for (unsigned i = 0; i < sc.n; i++) {
		if (local(sc.ev[i].at_ns) > now)
			break;
		if (sc.ev[i].act == SCHED_IDLE || sc.ev[i].act == SCHED_ACTIVE)
			idle = sc.ev[i].act == SCHED_IDLE;
	}
	return idle;
}

unsigned sched_passed(enum sched_act act, uint64_t now)
{
	unsigned k = 0;
	for (unsigned i = 0; i < sc.n; i++)
		if (sc.ev[i].act == act && local(sc.ev[i].at_ns) <= now)
			k++;
	return k;
}

uint64_t sched_next(uint64_t now)
{
	for (unsigned i = 0; i < sc.n; i++) {
		uint64_t t = local(sc.ev[i].at_ns);
		if (t > now)
			return t;
	}
	return ~0ULL;
}

void sched_report(uint64_t work, uint64_t now)
{
	if (!sc.report_ns || (sc.reported && now < sc.next_report))
		return;
	/* on a fixed grid from the first report: a late one does not move
	 * the later ones */
	sc.next_report = sc.reported ? sc.next_report + sc.report_ns
				     : now + sc.report_ns;
	if (sc.next_report <= now)
		sc.next_report = now + sc.report_ns;
	sc.reported = true;
	hc_result(DVM_RESULT_WORK, work);
}

uint64_t sched_report_due(uint64_t now)
{
	if (!sc.report_ns)
		return ~0ULL;
	return sc.reported ? sc.next_report : now;
}
