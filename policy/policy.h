/*
 * policy.h - the overcommit policy engine's decision core: the one public
 * interface of policy/.
 *
 * Owns: what to do with memory, never how.  Each tick the caller (the live
 * loop in cli/) hands in what it measured - the host budget and usage, ksm's
 * global counters, and per VM its RAM, balloon, guest stats and working-set
 * estimate - and gets back a host state, a scan rate for the page-sharing
 * scanner and one balloon target per VM, each with the reason for it.  The
 * library does no I/O of its own (the log and replay functions write only
 * the streams they are given), reads no clock (time is in_->now_ns), keeps
 * no globals and includes no header of hv-core, ksm, balloon-host or cli:
 * inputs in, decisions out.  Same config, same state and same inputs give
 * the same outputs, bit for bit (no rand, no clock, no hash order), which
 * is what makes a decision log replayable.
 *
 * Files: policy_config.c (keys, defaults, parsing), policy_core.c (ticks,
 * host states, names), policy_shares.c (ESX-style shares allocation),
 * policy_scan.c (the scan-rate loop), policy_mom.c (oVirt MOM's default
 * rules), policy_log.c (a tick as JSON and back), policy_replay.c (re-run
 * a log with a config, summary).
 *
 * Units: bytes everywhere (uint64_t), KiB-based suffixes K/M/G/T in the
 * config; fractions as doubles in [0, 1]; time in ns (now_ns) and ms
 * (period_ms); scan rates in 4 KiB pages per second.
 *
 * ----------------------------------------------------------- host states
 *
 * free = (budget - usage) / budget, negative when usage > budget.  Four
 * states with hysteresis, after ESX (Waldspurger, "Memory Resource
 * Management in VMware ESX Server", OSDI '02), thresholds high > soft >
 * hard > low:
 *   falling: free < soft -> SOFT, free < hard -> HARD, free < low -> LOW
 *            (a tick may fall several states at once);
 *   rising:  only by crossing the next threshold up: LOW -> HARD at
 *            free >= hard, HARD -> SOFT at free >= soft, SOFT -> HIGH at
 *            free >= high (several in one tick if free is above them all).
 * So a free fraction that wanders between 3.9% and 5% with the defaults
 * stays SOFT: it is below soft on the way down and never reaches high.
 *
 * What each state does (strategy = shares):
 *   HIGH  no reclaim.  When free >= high + margin (margin = (high - soft)/2,
 *         1% with the defaults), deflate balloons, the VMs with the most
 *         shares per page first, by at most what keeps free >= high.
 *         Otherwise, with no balloon in flight (one less than its
 *         smallest change from its target has arrived, and an inflation
 *         into a guest at its floor, g_floor set, or under pressure will
 *         not: neither counts) and no forced move,
 *         rebalance: the memory reclaimed now (the sum of the targets) is
 *         split again as the water-filling would split it from no balloon
 *         at all, and a VM more than max(its smallest change, 2% of its
 *         RAM) away from its share moves toward it, a step per tick; what
 *         is given back never exceeds what is taken in the same tick.  So
 *         new shares or a changed working set move memory without waiting
 *         for pressure.
 *   SOFT  reclaim R = (high - free) * budget, from guest-free memory and
 *         idle memory: a VM is not taken below its soft floor.
 *   HARD  reclaim R the same way but down to each VM's lower bound (also
 *         memory the working-set estimate calls active); scanner at
 *         scan_max.
 *   LOW   as HARD, and nothing is deflated: not for guest pressure, not to
 *         raise a VM to its min (the reason says hold_low).
 *
 * ------------------------------------------------ allocation (shares)
 *
 * A VM's allocation is alloc = ram - balloon_target.  Its shares per page,
 * with the idle tax (ESX's adjusted shares-per-page ratio):
 *     rho = shares / (alloc_pages * (f + k * (1 - f)))
 *     f = clamp(active_bytes / alloc, 0, 1),  k = 1 / (1 - idle_tax)
 * so an idle page costs k times an active one (k = 4 for tax 0.75).
 * To reclaim R bytes the policy water-fills: it takes a chunk from the VM
 * with the lowest rho whose allocation is above its floor, recomputes that
 * VM's rho, and repeats.  A VM's first chunk is its smallest worthwhile
 * change, max(2 MiB, 0.25% of RAM) rounded up to 2 MiB; the others are
 * 2 MiB (more when the amount exceeds 512 MiB per VM, so that a plan
 * stays near 256 chunks per VM).  That plan is computed first, unbounded,
 * and may overshoot by less than one chunk; then each VM moves
 * toward its planned allocation by at most max_step * ram per tick, and
 * the rest waits for the next tick (so a VM capped by max_step does not
 * push the reclaim onto VMs that should give less).  Deflation is the same
 * in reverse: highest rho first, up to the VM's upper bound, never more
 * than the room left above high.
 *
 * Bounds, per VM:
 *   used        = g_total - g_available - balloon_size  (stats_valid only;
 *                 both guests count the balloon's pages in their total and
 *                 not as available: they are not the guest's use)
 *   lower bound = max(min, used + min_guest_free * ram, used + g_floor)
 *                 without valid stats: max(min, its allocation now), so
 *                 it is never reclaimed, except down to max;
 *   soft floor  = max(lower bound, active_bytes + min_guest_free * ram)
 *   upper bound = max, or ram when max is 0.
 * Forced moves come before the plan and the plan compensates for them:
 *   - g_pressure (the guest is at its floor or failed allocations since
 *     the last tick): deflate this tick by max_step * ram, at least enough
 *     to give it min_guest_free * ram available; in every state but LOW;
 *   - allocation above the upper bound: reclaim to it (clamp_max, every
 *     state, by at most max_step per tick);
 *   - allocation below min: deflate to it (clamp_min, not in LOW).
 * In flight: a balloon not yet at its target counts as there (an
 * inflation only when the guest reports no pressure), so the amount to
 * reclaim or the room to deflate is net of what is still on its way.
 * Settling: a change smaller than max(2 MiB, 0.25% of RAM) is not made;
 * a target does not reverse direction within settle_ticks ticks of its
 * last change unless the host state is not the one of that change or the
 * guest reports pressure (hold_settle).  Targets are 2 MiB aligned; a held
 * target is the caller's one, unchanged.
 *
 * ------------------------------------------------------------ scan rate
 *
 * yield = delta ksm_saved_bytes / delta ksm_cpu_s between two ticks
 * (bytes saved per scanner CPU-second; unknown on the first tick or when
 * the scanner used no CPU).
 *   HARD, LOW                               -> scan_max
 *   SOFT and yield >= merge_yield_min       -> rate * 2, at most scan_max
 *   SOFT and yield unknown                  -> hold
 *   SOFT and yield < merge_yield_min, HIGH  -> rate / 2, at least scan_min
 * The first tick starts from the caller's ksm_scan_rate, clamped to
 * [scan_min, scan_max].
 *
 * ------------------------------------------------------- strategy = mom
 *
 * oVirt MOM's default balloon and ksm rules (doc/balloon.rules and
 * doc/ksm.rules of github.com/oVirt/mom), run every period_ms (10 s, MOM's
 * policy-engine-interval, unless period_ms is set); between two runs the
 * targets hold (mom_wait).  See policy_mom.c for the mapping of MOM's
 * terms.  MOM's scan rate is pages_to_scan per sleep_millisecs converted
 * to pages/s, and 0 when its rule stops ksm (ksm_run = 0).
 */
#ifndef DENSEVM_POLICY_H
#define DENSEVM_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>

#define POLICY_MAX_VMS   1024   /* = cli's VMs per process */
#define POLICY_CHUNK     (2ull << 20)    /* balloon targets are multiples */
#define POLICY_PAGE      4096ull

/* ------------------------------------------------------------- config */

enum policy_mode { POLICY_MODE_ON, POLICY_MODE_ADVISE, POLICY_MODE_OFF };
enum policy_strategy { POLICY_STRATEGY_SHARES, POLICY_STRATEGY_MOM };

/*
 * The [policy] section.  Every key, its default and its unit:
 *
 *   mode = on|advise|off     on: targets are applied; advise: computed
 *                            and logged only (the caller does not apply
 *                            them); off: no policy.  Default on.
 *   strategy = shares|mom    shares: ESX-style (above); mom: oVirt MOM's
 *                            default rules.  Default shares.
 *   period_ms = N            ms between ticks, 10 to 3600000.  Default
 *                            1000, or 10000 when strategy = mom and
 *                            period_ms is not set (0 in the struct means
 *                            "not set": use policy_period_ms()).
 *   host_budget = auto|SIZE  memory the VMs may use in all.  auto (0 in
 *                            the struct): the caller takes the cgroup's
 *                            limit, or MemTotal - reserve.  Default auto.
 *   reserve = SIZE           subtracted from MemTotal for auto without a
 *                            cgroup.  Default 512M.
 *   high, soft, hard, low    free-memory thresholds of the host states, a
 *                            fraction (0.06) or a percentage ("6%"), in
 *                            (0, 1), strictly decreasing.  Defaults 6%,
 *                            4%, 2%, 1%.
 *   idle_tax = F             in [0, 1): the idle page's extra cost,
 *                            k = 1 / (1 - idle_tax).  Default 0.75.
 *   min_guest_free = F       in [0, 1): free memory a guest keeps, as a
 *                            fraction of its RAM.  Default 0.20.
 *   max_step = F             in (0, 1]: a VM's target moves at most this
 *                            fraction of its RAM per tick.  Default 0.25
 *                            (reclaim within a second; MOM takes 5% per
 *                            10 s).
 *   scan_min, scan_max = N   the scanner's rate range, pages/s, 1 <=
 *                            scan_min <= scan_max.  Defaults 200, 20000.
 *   merge_yield_min = SIZE   bytes saved per scanner CPU-second below
 *                            which the scan rate decays.  Default 64M.
 *   settle_ticks = N         ticks during which a target does not reverse
 *                            (0 to 1000).  Default 3.
 *   wss_sample_ms = N        how often the dirty log is read for the
 *                            working-set estimate, 100 to 10000 ms (the
 *                            window).  Default 10000: once per window;
 *                            each read makes the guest fault again on its
 *                            next write to every page it wrote.  The core
 *                            does not read it (the caller samples).
 *   log = PATH               the decision log (JSON lines, one per tick);
 *                            empty = none.  Default empty.
 * Sizes: a number of bytes, or with K, M, G, T (KiB units, an optional
 * "iB" or "B" after it).
 */
struct policy_config {
	enum policy_mode mode;
	enum policy_strategy strategy;
	unsigned period_ms;          /* 0 = default, see policy_period_ms() */
	uint64_t host_budget;        /* 0 = auto */
	uint64_t reserve;
	double high, soft, hard, low;
	double idle_tax;
	double min_guest_free;
	double max_step;
	uint64_t scan_min, scan_max;
	uint64_t merge_yield_min;
	unsigned settle_ticks;
	unsigned wss_sample_ms;      /* the caller's working-set sampling */
	char log[1024];
	unsigned set;                /* POLICY_SET_* bits of keys given */
};

#define POLICY_SET_HIGH   (1u << 0)
#define POLICY_SET_SOFT   (1u << 1)
#define POLICY_SET_HARD   (1u << 2)
#define POLICY_SET_LOW    (1u << 3)
#define POLICY_SET_PERIOD (1u << 4)

void policy_config_default(struct policy_config *c);
/* One key = value of [policy].  0, or -EINVAL with one line in err such as
 * "host_budget: 'x' must be auto or a size like 12G" (the caller adds
 * FILE:LINE).  Thresholds are checked against the ones already set in the
 * same config; policy_config_check() checks the whole. */
int policy_config_set(struct policy_config *c, const char *key,
		      const char *val, char *err, size_t errlen);
/* After the last key: thresholds strictly decreasing (defaults included),
 * scan_min <= scan_max.  0 or -EINVAL with one line. */
int policy_config_check(const struct policy_config *c, char *err,
			size_t errlen);
/* The tick period in effect: period_ms, or 1000 (shares) / 10000 (mom). */
unsigned policy_period_ms(const struct policy_config *c);
/* host_budget resolved: the configured size; for auto, the cgroup's
 * memory limit when there is one (cgroup_limit > 0; at most mem_total),
 * else mem_total - reserve (0 if the reserve is larger).  For the caller,
 * which reads MemTotal and the cgroup: this only does the arithmetic. */
uint64_t policy_budget(const struct policy_config *c, uint64_t mem_total,
		       uint64_t cgroup_limit);

/*
 * Per-VM keys (in [vm NAME] or --vm):
 *   shares = N     relative entitlement, 1 to 1000000.  Default 1000.
 *   min = SIZE     the allocation the policy never reclaims below (and
 *                  deflates up to, outside LOW).  Default 0.
 *   max = SIZE     the allocation it never leaves above; 0 = unlimited
 *                  (the VM's RAM).  Default 0.
 */
struct policy_vm_config {
	uint64_t shares;
	uint64_t min, max;
};

void policy_vm_config_default(struct policy_vm_config *v);
/* 0, -ENOENT for a key that is not the policy's, -EINVAL with one line. */
int policy_vm_key(struct policy_vm_config *v, const char *key,
		  const char *val, char *err, size_t errlen);
/* min <= max (when max is set) and min <= ram; 0 or -EINVAL. */
int policy_vm_check(const struct policy_vm_config *v, uint64_t ram,
		    char *err, size_t errlen);

/* -------------------------------------------------------------- ticks */

enum policy_host_state {
	POLICY_HIGH, POLICY_SOFT, POLICY_HARD, POLICY_LOW,
	POLICY_NSTATES
};

enum policy_reason {
	POLICY_R_HOLD,                /* nothing to do */
	POLICY_R_RECLAIM_IDLE,        /* SOFT: more than the guest's free
	                                 memory: its caches and idle pages */
	POLICY_R_RECLAIM_FREE,        /* SOFT: from the guest's free memory */
	POLICY_R_RECLAIM_PRESSURE,    /* HARD or LOW */
	POLICY_R_DEFLATE_EASED,       /* HIGH with room: given back */
	POLICY_R_DEFLATE_GUEST_PRESSURE,
	POLICY_R_CLAMP_MIN,           /* raised to its min */
	POLICY_R_CLAMP_MAX,           /* lowered to its max */
	POLICY_R_CLAMP_FLOOR,         /* reclaim wanted, the VM is at its floor */
	POLICY_R_HOLD_SETTLE,         /* a reversal within settle_ticks */
	POLICY_R_HOLD_LOW,            /* a deflate refused: host LOW */
	POLICY_R_NO_STATS,            /* would be reclaimed; no guest stats */
	POLICY_R_OFF,                 /* mode = off */
	POLICY_R_MOM_SHRINK,          /* MOM's shrink_guest set a target */
	POLICY_R_MOM_GROW,            /* MOM's grow_guest set a target */
	POLICY_R_MOM_WAIT,            /* between two MOM policy runs */
	POLICY_R_REBALANCE,           /* HIGH: toward the shares-ideal split
	                                 of what is reclaimed now */
	POLICY_NREASONS
};

const char *policy_reason_name(enum policy_reason r);
const char *policy_state_name(enum policy_host_state s);
/* The reverse, for logs: 0 or -EINVAL. */
int policy_reason_parse(const char *name, enum policy_reason *r);
int policy_state_parse(const char *name, enum policy_host_state *s);

struct policy_vm_in {
	char name[64];               /* the VM's identity between ticks */
	uint64_t ram;
	struct policy_vm_config cfg;
	uint64_t balloon_size;       /* what the balloon holds now */
	uint64_t balloon_target;     /* the target in force */
	bool stats_valid;            /* the g_* below are the guest's */
	uint64_t g_total, g_free, g_available;
	uint64_t g_floor;            /* the guest driver's free-memory floor */
	bool g_pressure;             /* at its floor or failing allocations
	                                since the last tick */
	uint64_t active_bytes;       /* working-set estimate (the caller's) */
	uint64_t ksm_saved;          /* bytes ksm saves in this VM */
};

struct policy_in {
	uint64_t now_ns;             /* monotonic, the caller's clock */
	uint64_t budget;             /* resolved: never "auto" here */
	uint64_t usage;              /* what the VMs and densevm use now */
	double psi_some10, psi_full10;   /* host memory PSI avg10, -1 unknown */
	uint64_t ksm_saved_bytes;    /* ksm, global, cumulative where noted */
	double ksm_cpu_s;            /* scanner CPU seconds, cumulative */
	uint64_t ksm_merges;         /* cumulative */
	uint64_t ksm_scan_rate;      /* pages/s now */
	unsigned nvms;
	struct policy_vm_in *vms;
};

struct policy_vm_out {
	uint64_t target;             /* balloon target, bytes */
	enum policy_reason reason;
};

struct policy_out {
	enum policy_host_state state;
	uint64_t scan_rate;          /* pages/s; 0 = stop (mom only) */
	double free;                 /* the free fraction this tick saw */
	int64_t want;                /* bytes: > 0 to reclaim, < 0 room to
	                                deflate, before per-VM limits */
	unsigned nvms;               /* = in->nvms, same order */
	struct policy_vm_out vms[POLICY_MAX_VMS];
};

/* What persists between ticks.  Per-VM memory is keyed by name, so VMs may
 * come and go between ticks; a new name starts fresh. */
struct policy_vm_state {
	char name[64];
	bool used;
	uint64_t last_target;
	int last_dir;                /* +1 target raised (reclaim), -1 lowered */
	uint64_t last_change_tick;
	uint64_t last_change_ns;
	enum policy_host_state last_change_state;
};

struct policy_state {
	uint64_t ticks;              /* policy_tick calls so far */
	enum policy_host_state host;
	uint64_t scan_rate;
	bool have_prev;              /* prev_* hold the last tick's ksm figures */
	uint64_t prev_saved;
	double prev_cpu_s;
	uint64_t mom_next_ns;        /* MOM's next policy run (0 = now) */
	uint64_t mom_npages;         /* MOM's ksm_pages_to_scan */
	bool mom_ksm_run;
	struct policy_vm_state vms[POLICY_MAX_VMS];
};

/* nvms: VMs expected (at most POLICY_MAX_VMS); the state grows by name. */
void policy_init(struct policy_state *st, unsigned nvms);
/* One tick.  in->nvms must be at most POLICY_MAX_VMS (more are held).
 * out->vms[i] answers in->vms[i]. */
void policy_tick(const struct policy_config *c, struct policy_state *st,
		 const struct policy_in *in, struct policy_out *out);

/* ------------------------------------------------------ log and replay */

/*
 * One tick as one JSON object (a line of the decision log):
 *   {"now_ns", "budget", "usage", "psi_some10", "psi_full10",
 *    "ksm": {"saved", "cpu_s", "merges", "scan_rate"},
 *    "vms": [{"name", "ram", "shares", "min", "max", "balloon_size",
 *             "balloon_target", "stats_valid", "g_total", "g_free",
 *             "g_available", "g_floor", "g_pressure", "active_bytes",
 *             "ksm_saved"}, ...],
 *    "out": {"state", "scan_rate", "free", "want",
 *            "vms": [{"target", "reason"}, ...]}}
 * Doubles are printed with JSON_REAL_PRECISION(17) (see policy_tick_dumps)
 * so they read back bit for bit.  out may be NULL (no "out").
 */
json_t *policy_tick_to_json(const struct policy_in *in,
			    const struct policy_out *out);
/* The line for the log: compact, 17 digits, no newline; free() it. */
char *policy_tick_dumps(const struct policy_in *in,
			const struct policy_out *out);
/* Reads one tick back.  in->vms is allocated (free it with
 * policy_in_free()); recorded may be NULL, else "out" is required.  Every
 * field is checked; the error names it: "vms[2].ram: missing". */
int policy_tick_from_json(json_t *j, struct policy_in *in,
			  struct policy_out *recorded, char *err,
			  size_t errlen);
void policy_in_free(struct policy_in *in);

/* Per-VM overrides a replay applies to every tick (by VM name). */
struct policy_vm_override {
	char name[64];
	struct policy_vm_config cfg;
	unsigned set;                /* POLICY_VM_SET_* */
};
#define POLICY_VM_SET_SHARES (1u << 0)
#define POLICY_VM_SET_MIN    (1u << 1)
#define POLICY_VM_SET_MAX    (1u << 2)
/* The POLICY_VM_SET_* bit of a per-VM key, 0 if not the policy's. */
unsigned policy_vm_key_bit(const char *key);

struct policy_replay_opts {
	const struct policy_vm_override *vms;
	unsigned nvms;
	/* called every `every` ticks (0 = never) with ticks done, the bytes
	 * of the log read so far */
	void (*progress)(void *ctx, uint64_t ticks, long pos);
	void *ctx;
	unsigned every;
};

struct policy_replay_vm {
	char name[64];
	uint64_t ticks;              /* ticks it appeared in */
	uint64_t reclaimed;          /* sum of its target increases, bytes */
	uint64_t deflated;           /* sum of its target decreases */
	uint64_t reversals;          /* a change opposite to its last one */
	double churn_per_min;        /* reversals per minute of the log */
	double shortfall_avg;        /* bytes below its share-proportional */
	uint64_t shortfall_max;      /*   ideal allocation (see replay.c) */
	uint64_t differ;             /* its decisions unlike the recorded */
};

struct policy_replay_summary {
	uint64_t ticks;
	uint64_t differ;             /* VM decisions (target or reason) and
	                                host decisions (state, scan rate)
	                                that are not the recorded ones */
	uint64_t differ_ticks;       /* ticks with at least one */
	uint64_t reclaimed;          /* sum of target increases, bytes */
	double duration_s;           /* last now_ns - first now_ns */
	uint64_t state_ticks[POLICY_NSTATES];
	unsigned nvms;
	struct policy_replay_vm vms[POLICY_MAX_VMS];
};

/* Runs policy_tick over every tick of log (JSON lines; empty lines are
 * skipped) with config c from a fresh state, compares each decision with
 * the recorded one and writes its own as JSON lines to out (may be NULL).
 * Errors name the line: "LOG:17: vms[2].ram: missing". */
int policy_replay(FILE *log, const char *logname,
		  const struct policy_config *c,
		  struct policy_replay_summary *sum, FILE *out, char *err,
		  size_t errlen);
int policy_replay_ex(FILE *log, const char *logname,
		     const struct policy_config *c,
		     const struct policy_replay_opts *opts,
		     struct policy_replay_summary *sum, FILE *out, char *err,
		     size_t errlen);
json_t *policy_replay_summary_json(const struct policy_replay_summary *s);

#endif
