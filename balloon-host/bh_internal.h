/*
 * bh_internal.h - balloon-host's internal seams (not for other folders).
 *
 * Owns: the backend interface through which the device model sees one VM's
 * memory (gpa -> hva check, page-state map get/cas, discard, notify, clock),
 * the KVM-free entry points that the hv-core glue (bh_hv.c), the unit tests
 * and the fuzz harness use, and the fake backend over mmap'd memory.
 *
 * bh_hv.c is the only file that calls hv-core functions; the device model
 * (bh_device.c, bh_stats.c) only uses this backend and hv.h's inline
 * page-state helpers, so it runs without KVM in tests.
 */
#ifndef DENSEVM_BH_INTERNAL_H
#define DENSEVM_BH_INTERNAL_H

#include "balloon_host.h"

#define BH_MAX_RANGES 8

struct bh_backend {
	void *ctx;
	/* Host pointer to [gpa, gpa+len) when it lies wholly inside one RAM
	 * range of the VM, else NULL (hv_gpa_to_hva). */
	void *(*gpa_to_hva)(void *ctx, uint64_t gpa, uint64_t len);
	/* Only called for pfns the device checked with gpa_to_hva first. */
	hv_pstate_t (*page_get)(void *ctx, uint64_t pfn);
	bool (*page_cas)(void *ctx, uint64_t pfn, hv_pstate_t old, hv_pstate_t new);
	/* Drops the copies of [gpa, gpa+len) and frees their memory: the
	 * pages read zero afterwards, whatever backs the RAM (hv_vm_zero).
	 * 0 or -errno. */
	int (*zero)(void *ctx, uint64_t gpa, uint64_t len);
	void (*notify)(void *ctx);                               /* wake HC_WAIT */
	uint64_t (*now_ns)(void *ctx);
	uint64_t gpa_end;          /* highest RAM GPA + 1 */
	unsigned nranges;          /* RAM ranges (for the UNREGISTER sweep) */
	struct { uint64_t gpa, len; } ranges[BH_MAX_RANGES];
	uint64_t mem_bytes;        /* the VM's RAM */
	const char *name;          /* for log lines */
};

/* The device over any backend.  NULL on allocation failure. */
struct balloon_host *balloon_host_create(const struct bh_backend *be,
					 const struct balloon_host_config *cfg);
void balloon_host_destroy(struct balloon_host *dev);
/* Serves one HC_BALLOON: arg[0] = op, arg[1..4] as in balloon_proto.h.
 * Returns ret and stores ret2. */
int64_t balloon_host_hypercall(struct balloon_host *dev, const uint64_t arg[5],
			       uint64_t *ret2);

/* The device (bh_device.c owns the protocol, bh_stats.c the setters, stats
 * and logging).  Every field below `lock` is protected by it. */
#include <pthread.h>

#define BH_REG_PAGES (1 + BALLOON_RING_MAX_PAGES)   /* config + ring */

struct balloon_host {
	struct bh_backend be;
	struct balloon_host_config cfg;
	pthread_mutex_t lock;

	/* registration */
	bool registered;
	uint64_t cfg_gpa, ring_gpa;
	uint32_t ring_pages, ring_cap;
	volatile struct balloon_cfg_host *cfg_h;       /* hva, host half */
	const volatile uint64_t *cfg_g;                /* hva, guest half */
	volatile uint64_t *ring;                       /* hva */
	bool flagged[BH_REG_PAGES];  /* we set HV_PF_DEVICE (undo at unregister) */

	/* host-side truth, mirrored into the config page */
	uint64_t seq;                /* last published (even) */
	uint64_t target_pages;
	uint32_t flags;              /* BALLOON_CFG_F_* */
	uint32_t stats_period_ms;
	uint32_t stats_request;
	uint64_t host_pages;         /* pages this device made BALLOONED */
	uint64_t lo_pfn, hi_pfn;     /* bounds of BALLOONED pages (sweep window) */

	/* per-request scratch: the host's own copy of the ring */
	uint64_t *copy;              /* BALLOON_RING_MAX_ENTRIES */
	uint8_t *st;                 /* status per entry */
	uint32_t *idx;               /* sort order (duplicate check) */

	/* counters */
	uint64_t requests, inflated, deflated, reported;
	uint64_t reject[BH_REJ_NR];
	uint64_t busy, io_errors, stats_updates, guest_rejected;
	uint64_t discards;           /* be.discard calls (madvise on hv-core) */
	uint64_t guest_balloon_pages;
	uint64_t last_bad_claim;     /* counted once, not at every read */
	uint32_t guest_status;
	struct balloon_stats guest;

	/* target latency */
	uint64_t target_set_ns;
	bool reached;
	int64_t reach_ns;

	/* log rate limit: per 1 s window */
	uint64_t log_window_ns;
	unsigned log_lines;
	uint64_t log_suppressed, log_suppressed_window;
};

/* Copies the guest half of the config page (the guest's count and status;
 * its stats block too when with_stats) into dev; lock held. */
void bh_read_guest_half(struct balloon_host *dev, bool with_stats);

/* bh_stats.c helpers used by bh_device.c (lock held). */
void bh_publish_config(struct balloon_host *dev);
void bh_check_reached(struct balloon_host *dev);

/* Rate-limited logging (bh_stats.c): bh_log() is admit + format + emit;
 * callers with costly messages check bh_log_admit() first. */
#include <stdarg.h>
bool bh_log_admit(struct balloon_host *dev);
void bh_vlog(struct balloon_host *dev, const char *fmt, va_list ap);
void bh_log(struct balloon_host *dev, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------ fake */

/* A fake VM: RAM ranges mmap'd from anonymous memory, or MAP_PRIVATE from a
 * memfd filled with a non-zero pattern (base_backed) so that a plain
 * discard would revert to non-zero content, as on hv-core's base-memfd
 * RAM; its zeroing maps anonymous memory over the run as hv_vm_zero does.  The
 * page-state map covers the ranges only: a lookup outside RAM aborts, which
 * catches a device that forgot a range check. */
struct bh_fake;
struct bh_fake_range {
	uint64_t gpa;
	uint64_t len;
};
#define BH_FAKE_PATTERN 0xa5u   /* every byte of a base page */

struct bh_fake *bh_fake_create(const struct bh_fake_range *r, unsigned n,
			       bool base_backed);
void bh_fake_destroy(struct bh_fake *f);
void bh_fake_backend(struct bh_fake *f, struct bh_backend *out);
/* Back to a fresh VM: every page PRIVATE and zero (or base). */
void bh_fake_reset(struct bh_fake *f);
void *bh_fake_hva(struct bh_fake *f, uint64_t gpa);       /* NULL off RAM */
hv_pstate_t bh_fake_get(struct bh_fake *f, uint64_t pfn);
void bh_fake_set(struct bh_fake *f, uint64_t pfn, hv_pstate_t v);
uint64_t bh_fake_count_state(struct bh_fake *f, unsigned state);
uint64_t bh_fake_count_flag(struct bh_fake *f, unsigned flag);
/* Both in one pass: pages per state (index 0..7), pages per flag bit
 * (index 3..7 for HV_PF_* = 1 << index). */
void bh_fake_census(struct bh_fake *f, uint64_t states[8], uint64_t flags[8]);
uint64_t bh_fake_discards(struct bh_fake *f);    /* discard calls */
uint64_t bh_fake_notifies(struct bh_fake *f);
void bh_fake_fail_discard(struct bh_fake *f, bool fail);
void bh_fake_set_time(struct bh_fake *f, uint64_t ns);
void bh_fake_advance(struct bh_fake *f, uint64_t ns);

#endif
