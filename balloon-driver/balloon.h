/*
 * balloon.h - the balloon driver core: the one public interface of
 * balloon-driver/.
 *
 * Owns: the guest side of the balloon protocol (balloon_proto.h), written
 * once and shared by the micro guest and the Linux module.  The core is
 * freestanding C: no libc, no globals, no floating point, no locks; every
 * instance lives in a caller-provided struct balloon.  The OS glue supplies
 * a small struct balloon_os (page allocation, PFN translation, stats,
 * doorbell, clock) and calls:
 *
 *   balloon_init()      once, with the discovery info (RAM size) and params
 *   balloon_start()     allocates the config page and the ring, registers
 *   balloon_poll()      periodically (and when woken): reads the config
 *                       page, inflates/deflates toward the target, sends
 *                       periodic stats; returns ms until it wants the next
 *                       call (0 = more work now)
 *   balloon_deflate_for_pressure()  from the OS's low-memory path
 *   balloon_report()    free page reporting (Linux: page_reporting callback)
 *   balloon_stop()      returns every page, unregisters, frees everything
 *
 * Concurrency: the core is not thread-safe.  The glue serializes all calls
 * on one instance (Linux: a mutex; the shrinker/OOM path uses trylock), and
 * its alloc() must never re-enter the core (it must not sleep in reclaim
 * that could call back into the balloon: Linux uses __GFP_NORETRY |
 * __GFP_NOWARN | __GFP_NOMEMALLOC).
 *
 * Safety rules the core keeps:
 *   - it never inflates below the free-memory floor, and deflates when the
 *     OS's available memory drops under 7/8 of the floor;
 *   - a failed allocation only stops this round of inflation (the balloon
 *     never retries hard or waits for memory);
 *   - a page goes back to the OS only after the host confirmed its deflate,
 *     except under pressure, when the OS's need wins (counted as forced);
 *   - it inflates with 2 MiB blocks while at least 2 MiB remains to do and
 *     the OS can give one, then with 4 KiB pages.
 *
 * The guest must provide memset/memcpy if the compiler emits calls to them;
 * the core itself avoids large struct copies and initializers.
 */
#ifndef DENSEVM_BALLOON_H
#define DENSEVM_BALLOON_H

#include "balloon_proto.h"

#if defined(__KERNEL__)
#include <linux/types.h>
#else
#include <stdint.h>
#endif

/* ---------------------------------------------------------- OS interface */

struct balloon_os {
	void *ctx;
	/* order 0 (4 KiB) or BALLOON_HUGE_ORDER (2 MiB, naturally aligned).
	 * NULL on failure.  Must not block for long, must not trigger OOM, and
	 * must not re-enter the core. */
	void *(*alloc)(void *ctx, unsigned order);
	void (*free)(void *ctx, void *va, unsigned order);
	uint64_t (*va_to_pfn)(void *ctx, void *va);     /* 4 KiB PFN (GPA >> 12) */
	void *(*pfn_to_va)(void *ctx, uint64_t pfn);
	/* Cheap: 4 KiB pages the OS could hand out now without hurting itself
	 * (Linux: si_mem_available(); micro guest: its allocator's free count). */
	uint64_t (*avail_pages)(void *ctx);
	/* Fills what the OS has and sets st->valid; may be NULL. */
	void (*read_stats)(void *ctx, struct balloon_stats *st);
	/* One synchronous hypercall: HC_BALLOON with arg0 = op.  Returns the
	 * host's ret (-errno on failure) and stores ret2. */
	int64_t (*doorbell)(void *ctx, uint64_t op, uint64_t a1, uint64_t a2,
			    uint64_t a3, uint64_t a4, uint64_t *ret2);
	uint64_t (*now_ns)(void *ctx);                  /* monotonic */
};

/* ---------------------------------------------------------------- params */

#define BALLOON_P_NO_HUGE  (1u << 0)  /* never try 2 MiB blocks */

struct balloon_params {
	uint64_t total_pages;          /* guest RAM in 4 KiB pages (discovery) */
	uint64_t floor_pages;          /* 0 = default: total/16, at least 4096
	                                  (16 MiB), at most total/2 */
	uint32_t poll_ms;              /* idle poll period; 0 = 100 */
	uint32_t backoff_ms;           /* after the floor or an allocation
	                                  failure; 0 = 1000 */
	uint32_t pressure_holdoff_ms;  /* no inflation after pressure; 0 = 5000 */
	uint32_t max_batches;          /* doorbells per poll; 0 = 64 */
	uint32_t flags;                /* BALLOON_P_* */
};

/* ---------------------------------------------------------------- state */

/* The core keeps the PFNs it holds in pages it allocates from the OS
 * itself (never in ballooned pages, which the host has discarded).  One
 * tracking page holds 1020 PFNs: 0.1% overhead for 4 KiB pages, nothing
 * worth counting for 2 MiB blocks. */
#define BALLOON_TRACK_SLOTS 1020

struct balloon_track_page {
	struct balloon_track_page *next;
	uint32_t count;
	uint32_t pad;
	uint32_t pfn[BALLOON_TRACK_SLOTS];
};

struct balloon_track {
	struct balloon_track_page *head;   /* filled page on top */
	struct balloon_track_page *spare;  /* empty pages kept for pushes */
	uint64_t count;                    /* entries held */
	uint64_t free_slots;               /* pushes possible without alloc */
	uint64_t npages;                   /* tracking pages owned */
};

struct balloon_info {
	uint64_t balloon_pages;    /* 4 KiB pages held (2 MiB blocks count 512) */
	uint64_t blocks_2m;
	uint64_t pages_4k;
	uint64_t target_pages;     /* as last read from the host */
	uint64_t floor_pages;
	uint64_t track_pages;      /* tracking overhead, pages */
	uint64_t inflated;         /* pages, cumulative */
	uint64_t deflated;
	uint64_t reported;
	uint64_t refused;          /* entries the host refused */
	uint64_t forced;           /* pages freed without the host's ack */
	uint64_t alloc_fail_2m;
	uint64_t alloc_fail_4k;
	uint64_t doorbells;
	uint64_t doorbell_errors;
	uint64_t register_busy;    /* REGISTERs the host answered -EBUSY */
	uint64_t stats_sent;
	uint64_t pressure_events;
	uint64_t pressure_pages;
	uint32_t status;           /* BALLOON_GST_* */
	int registered;
	int reporting;             /* the host has reporting on */
};

struct balloon {
	struct balloon_os os;
	struct balloon_params p;
	int registered;
	/* shared pages */
	volatile struct balloon_cfg_host *cfg_host;
	volatile struct balloon_cfg_guest *cfg_guest;
	void *cfg_va;
	volatile uint64_t *ring;
	uint32_t ring_cap;
	/* what the host asked for, from the last consistent config read */
	uint64_t seen_seq;
	uint64_t target;
	uint32_t host_flags;
	uint32_t stats_period_ms;
	uint32_t stats_request;
	uint32_t stats_answered;
	/* timing */
	uint64_t last_stats_ns;
	uint64_t backoff_until_ns;
	uint64_t holdoff_until_ns;
	/* holdings */
	struct balloon_track t4k;
	struct balloon_track t2m;
	uint32_t status;
	int huge_failed;           /* this round: 2 MiB allocation failed */
	struct balloon_info c;     /* counters (the count fields are derived) */
};

_Static_assert(sizeof(struct balloon_os) % 8 == 0 &&
	       sizeof(struct balloon_params) % 8 == 0 &&
	       sizeof(struct balloon_info) % 8 == 0, "copied as 64-bit words");

/* A free range for balloon_report(): [pfn, pfn + npages). */
struct balloon_range {
	uint64_t pfn;
	uint64_t npages;
};

/* ------------------------------------------------------------------ API */

/* Returns 0 or -BALLOON_EINVAL (missing callbacks, total_pages 0). */
int balloon_init(struct balloon *b, const struct balloon_os *os,
		 const struct balloon_params *p);
/* Allocates the config page and a one-page ring, registers them with the
 * host and reads the first config.  0 or -errno; on failure nothing is
 * held. */
int balloon_start(struct balloon *b);
/* Deflates everything (forcing what the host will not take), unregisters
 * and frees every page the core holds.  Safe on a never-started balloon. */
void balloon_stop(struct balloon *b);

/* Does at most params.max_batches doorbells of work; returns the ms until
 * it wants to be called again: 0 when work remains. */
uint32_t balloon_poll(struct balloon *b);

/* The OS needs `pages` more 4 KiB pages now: deflates at least that many,
 * and at least 2 MiB (whole entries, so maybe more), even if the host does
 * not answer; holds inflation off for pressure_holdoff_ms; returns the
 * pages given back to the OS (0 if the balloon is empty). */
uint64_t balloon_deflate_for_pressure(struct balloon *b, uint64_t pages);

/* Reports free ranges (they stay the OS's; the host may drop their
 * contents).  Synchronous: when it returns, the host is done with them.
 * 0, or -BALLOON_EOPNOTSUPP while the host has reporting off, or -errno.
 * Ranges are split into 2 MiB entries where aligned, else 4 KiB. */
int balloon_report(struct balloon *b, const struct balloon_range *r,
		   unsigned n);
int balloon_reporting_enabled(const struct balloon *b);

/* Samples the OS's stats and sends them now.  0 or -errno. */
int balloon_send_stats(struct balloon *b);

void balloon_get_info(const struct balloon *b, struct balloon_info *out);

#endif
