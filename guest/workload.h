/*
 * workload.h - internal interface between the micro guest's dispatcher
 * (main.c), the argument parser (args.c) and the workloads (wl_*.c).
 *
 * Owns: struct workload, the args API and the page helpers the workloads
 * share.  Not for use outside guest/.
 *
 * Life of a workload: vCPU 0 parses bootinfo.args, finds the workload by its
 * first word and calls setup() (read keys, call args_done(), allocate) while
 * the other vCPUs wait.  Then run() goes on vCPU 0 only, or on every vCPU
 * when all_cpus is set; for all_cpus workloads vCPU 0 waits for the others
 * and calls finish() if all of them returned 0.  Errors in setup() exit
 * through args_fail() or wl_alloc_*() into guest_exit(), which releases
 * the waiting vCPUs with the same status.
 */
#ifndef DENSEVM_GUEST_WORKLOAD_H
#define DENSEVM_GUEST_WORKLOAD_H

#include "guest.h"
#include "patterns.h"

/* ------------------------------------------------------------------ args */

#define WL_MAX_KEYS 16

struct workload;

struct wl_args {
	char buf[HV_ARGS_MAX];          /* private copy, split in place */
	const char *name;               /* first word; "" if none */
	unsigned n;
	struct {
		const char *key, *val;
		bool used;
	} kv[WL_MAX_KEYS];
	const struct workload *wl;      /* for usage lines */
};

/* Splits "name k=v k=v" (spaces/tabs); exits 2 on a word without '=',
 * an empty key, a duplicate key or too many keys. */
void args_split(struct wl_args *a, const char *src);
bool args_has(struct wl_args *a, const char *key);
/* key=integer in [min, max]; def when absent.  Exits 2 on a bad value. */
int64_t args_int(struct wl_args *a, const char *key, int64_t def,
		 int64_t min, int64_t max);
/* Same, but the key must be present. */
int64_t args_need(struct wl_args *a, const char *key, int64_t min,
		  int64_t max);
/* key=any 64-bit value (seeds: decimal or 0x hex). */
uint64_t args_u64(struct wl_args *a, const char *key, uint64_t def);
/* Exits 2 naming the first key no args_* call asked for. */
void args_done(struct wl_args *a);
/* Prints "args: <msg>" and the usage line, exits 2. */
__attribute__((noreturn, format(printf, 2, 3)))
void args_fail(struct wl_args *a, const char *fmt, ...);

/* -------------------------------------------------------------- workloads */

struct workload {
	const char *name;
	const char *usage;              /* keys, for error messages */
	void (*setup)(struct wl_args *a);
	int (*run)(unsigned cpu);       /* returns the exit status */
	void (*finish)(void);           /* all_cpus only; may be NULL */
	bool all_cpus;
};

extern const struct workload wl_verify, wl_fill, wl_dirty, wl_idle,
	wl_crash, wl_dirtyset, wl_hcbench, wl_grow, wl_hostile, wl_conflood,
	wl_image;

/* main.c, called by boot.c */
void wl_setup(void);                             /* vCPU 0, before release */
__attribute__((noreturn)) void wl_run(unsigned cpu);

/* ------------------------------------------------------ shared helpers */

/* Allocates a region or exits 4 with "<wl>: cannot allocate ..." */
void wl_alloc_region(const char *wl, struct gregion *r, uint64_t npages);
/* Allocates npages contiguous pages or exits 4. */
uint64_t wl_alloc_contig(const char *wl, uint64_t npages);
/* vCPU cpu's share of total pages: [*first, *first + *count). */
void wl_share(uint64_t total, unsigned ncpus, unsigned cpu, uint64_t *first,
	      uint64_t *count);
/* Prints up to 10 MISMATCH lines per VM for page p (expected words
 * dvm_word(base, w), or 0 when zero); returns the mismatched word count. */
uint64_t wl_report_page(const char *wl, const uint64_t *p, uint64_t base,
			bool zero);
/* " cpu=N" when the VM has more than one vCPU, else "". */
const char *wl_cpu_tag(unsigned cpu);

/*
 * The hot loops.  The barrier before each page makes the compiler reload
 * memory it wrote itself in an earlier pass (another vCPU or the host may
 * have changed it, which is exactly what we test), and the loops stay
 * plain C so GCC vectorizes them with SSE2.
 */
static inline void wl_page_write(uint64_t *p, uint64_t base)
{
	guest_barrier();
	for (unsigned w = 0; w < DVM_PAGE_WORDS; w++)
		p[w] = dvm_word(base, w);
	guest_barrier();
}

static inline void wl_page_zero(uint64_t *p)
{
	guest_barrier();
	for (unsigned w = 0; w < DVM_PAGE_WORDS; w++)
		p[w] = 0;
	guest_barrier();
}

/* Nonzero iff the page differs from base's pattern (or from zero). */
static inline uint64_t wl_page_diff(const uint64_t *p, uint64_t base,
				    bool zero)
{
	uint64_t diff = 0;
	guest_barrier();
	if (zero) {
		for (unsigned w = 0; w < DVM_PAGE_WORDS; w++)
			diff |= p[w];
	} else {
		for (unsigned w = 0; w < DVM_PAGE_WORDS; w++)
			diff |= p[w] ^ dvm_word(base, w);
	}
	return diff;
}

static inline uint64_t *wl_page(const struct gregion *r, uint64_t i)
{
	return (uint64_t *)(uintptr_t)region_page_gpa(r, i);
}

/* ------------------------------------------ the schedule (sched.c) */

enum sched_act { SCHED_IDLE, SCHED_ACTIVE, SCHED_GROW };

/* main.c, before start_ms: reads epoch=, sched=, report_ms=. */
void sched_setup(struct wl_args *a);
/* In a workload's setup: exits 2 when sched= holds an action outside
 * mask (bits 1 << SCHED_*). */
void sched_accept(struct wl_args *a, unsigned mask);
/* main.c, after setup: exits 2 when sched= was given to a workload that
 * never called sched_accept. */
void sched_done(struct wl_args *a);
/* ms after the epoch on the now_ns() clock (0 when that was before boot). */
uint64_t sched_epoch_ns(uint64_t ms);
bool sched_has(enum sched_act act);
/* Whether the last idle/active event at or before now was idle. */
bool sched_idle(uint64_t now);
/* How many act events are at or before now. */
unsigned sched_passed(enum sched_act act, uint64_t now);
/* The next event of any kind after now, or ~0. */
uint64_t sched_next(uint64_t now);
/* Sends work (a running total) as RESULT 10 when a report is due. */
void sched_report(uint64_t work, uint64_t now);
/* When the next report is due, or ~0 without report_ms. */
uint64_t sched_report_due(uint64_t now);

#define NS_PER_SEC ((uint64_t)1000000000)
#define NS_PER_MS  ((uint64_t)1000000)

#endif
