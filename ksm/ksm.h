/*
 * ksm.h - ksm's one public interface: content-based page sharing across VMs.
 *
 * The engine ("dense", the default) scans guest RAM guided by the dirty log,
 * hashes pages with XXH3, keeps a stable table (shared content, keyed by
 * hash) and a candidate table (unmerged pages seen once), both cds_lfht
 * tables with lock-free readers, and merges equal pages in three ways:
 *   - zero pages are discarded (MADV_DONTNEED): they read zero again;
 *   - same-GPA duplicates in VMs whose RAM is MAP_PRIVATE of their sharing
 *     domain's base memfd: the content goes into base[gpa] once and each
 *     VM's private copy is discarded, so it reads the base page again;
 *   - cross-GPA duplicates map a frame of the domain's frames memfd
 *     MAP_PRIVATE over the guest page, contiguous runs with one mmap.
 * A guest write afterwards is a kernel copy-on-write; ksm sees it in the
 * dirty log, confirms it in /proc/self/pagemap and drops the reference.
 * A hash match is never trusted: bytes are compared before any merge, and
 * again while the VM cannot write the pages, right before the backing
 * changes: the pages are write-protected (userfaultfd, where the VM can:
 * only a vCPU that writes one of them waits) or the VM is paused.
 *
 * ksm knows VMs only through struct ksm_vm_ops, so the same engine runs on
 * hv-core VMs (ksm_hv_ops, ksm_hv.c) and on memfd-backed fake VMs in the
 * unit tests (ksm_fake.h).  The page-state map uses hv.h's encoding.
 *
 * The "kernel" engine is the comparison baseline: MADV_MERGEABLE on guest
 * RAM and /sys/kernel/mm/ksm tuning, behind the same stats interface.
 *
 * Threading: every function may be called from any thread.  One internal
 * lock serializes the writers (scan, add/remove, self-check); stats read
 * counters without waiting for a scan.  Tunables change at run time.
 */
#ifndef DENSEVM_KSM_H
#define DENSEVM_KSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "hv.h"

struct ksm;
struct ksm_vm;

/* -------------------------------------------------------- VM backend */

/*
 * What ksm needs from a VM.  ctx is the backend's (struct hv_vm * for
 * ksm_hv_ops).  All callbacks are required except name, dirty_enable and
 * discard_many.
 * Guest RAM must stay mapped at the same host addresses while the VM is
 * registered; ksm reads it at any time and changes its backing only while
 * the pages are write-protected or the VM is paused.
 */
struct ksm_vm_ops {
	const char *(*name)(void *ctx);
	/* RAM ranges (gpa, len, hva): fixed for the VM's life. */
	const struct hv_ram_range *(*ranges)(void *ctx, unsigned *n);
	/* The page-state map, one hv_pstate_t per GPA page; read atomically
	 * by ksm, changed only through page_cas. */
	hv_pstate_t *(*pagemap)(void *ctx, uint64_t *npages);
	bool (*page_cas)(void *ctx, uint64_t pfn, hv_pstate_t old,
			 hv_pstate_t new_);
	/* Stop every vCPU (returns once none runs guest code; nests) and
	 * let them run again.  pause returns the ns it took to stop them. */
	uint64_t (*pause)(void *ctx);
	void (*resume)(void *ctx);
	/* hv_vm_replace_backing / hv_vm_discard semantics. */
	int (*replace_backing)(void *ctx, uint64_t gpa, uint64_t len, int memfd,
			       uint64_t off);
	int (*discard)(void *ctx, uint64_t gpa, uint64_t len);
	/* Optional: many discards at once (hv_vm_discard_many semantics:
	 * returns how many leading spans were discarded). */
	unsigned (*discard_many)(void *ctx, const struct hv_span *s, unsigned n,
				 int *err);
	int (*dirty_enable)(void *ctx, bool on);
	/* Fetch-and-clear the dirty bitmap of range i (bit n = page n). */
	int (*dirty_fetch)(void *ctx, unsigned range, uint64_t *bitmap);
	/* The memfd the RAM is MAP_PRIVATE of (offset == GPA), or -1. */
	int (*base_memfd)(void *ctx);
	/* Optional (hv_vm_page_off_base semantics): the page of base-backed
	 * RAM is mapped from something other than the base at offset gpa,
	 * e.g. the anonymous memory the balloon zeroes pages with.  ksm must
	 * then restore the base mapping to join base[g], not discard. */
	bool (*off_base)(void *ctx, uint64_t gpa);
	/* Optional (hv_vm_zero semantics): map zeros (private anonymous
	 * memory) over the run.  Without it a zero page that cannot be
	 * discarded is shared as content (a frame) instead. */
	int (*zero)(void *ctx, uint64_t gpa, uint64_t len);
	/* Optional (hv_vm_page_anon): private anonymous memory maps the page,
	 * so a discard reads zero.  Without it no off-base page is discarded. */
	bool (*anon_backed)(void *ctx, uint64_t gpa);
	/* Optional, both or neither (hv_vm_wp_protect / _unprotect
	 * semantics): write-protect runs of guest RAM, all or none, so that
	 * a vCPU writing into them waits until wp_unprotect (which wakes it,
	 * also where the backing changed meanwhile, and reports the waits).
	 * A protect that fails makes ksm pause the VM instead; -EOPNOTSUPP
	 * (also for n = 0, which ksm asks once) says the VM never can. */
	int (*wp_protect)(void *ctx, const struct hv_span *s, unsigned n);
	int (*wp_unprotect)(void *ctx, const struct hv_span *s, unsigned n,
			    struct hv_wp_waits *w);
};

/* hv-core adapter: ctx is a struct hv_vm *. */
extern const struct ksm_vm_ops ksm_hv_ops;

/* ------------------------------------------------------------ config */

enum ksm_engine {
	KSM_ENGINE_DENSE = 0,   /* this engine */
	KSM_ENGINE_KERNEL = 1,  /* MADV_MERGEABLE + /sys/kernel/mm/ksm */
};

/* A VM in this domain shares with nobody (ESX-style salting per VM). */
#define KSM_DOMAIN_PRIVATE 0xffffffffu

struct ksm_config {
	enum ksm_engine engine;
	/* Tunables (names for ksm_set_tunable in brackets). */
	uint64_t pages_per_sec;   /* [pages_per_sec] hash rate cap, 0 = none */
	unsigned cpu_percent;     /* [cpu_percent] of one core, 0 = none */
	unsigned batch_pages;     /* [batch_pages] pages per paused batch */
	unsigned volatile_passes; /* [volatile_passes] K, 0 = never skip */
	unsigned max_sharers;     /* [max_sharers] pages per frame/base page */
	bool merge_across_nodes;  /* [merge_across_nodes] else per-node tables */
	unsigned sleep_ms;        /* [sleep_ms] scanner sleep between passes */
	unsigned dirty_ms;        /* [dirty_ms] least time between two reads
				   * of a VM's dirty log (0 = every pass) */
	bool write_protect;       /* [write_protect] guard a batch by
				   * write-protecting its pages where the VM
				   * can (0: always pause the VMs) */
	/* Test hooks; NULL in production. */
	uint64_t (*hash_fn)(const void *page, void *arg);   /* replaces XXH3 */
	void *hash_arg;
	int (*node_of)(const void *hva, void *arg);       /* replaces libnuma */
	void *node_arg;
	unsigned nr_nodes;        /* with node_of: how many nodes it returns */
	/* Breaks the engine on purpose: batches count as write-protected
	 * but nothing is protected or paused, so guest writes race the
	 * merge.  Only for showing that the race tests catch lost writes. */
	bool test_unguarded;
	/* Reads pagemap 8 bytes a page where PAGEMAP_SCAN would do (as on
	 * a kernel before 6.7), so that tests cover both paths. */
	bool test_no_pagemap_scan;
};

void ksm_config_default(struct ksm_config *cfg);

/* Returns 0, or -errno with one line in err. */
int ksm_create(const struct ksm_config *cfg, struct ksm **out, char *err,
	       size_t errlen);
/* Stops the scanner and frees everything.  Frames stay alive for VMs
 * still mapping them (the mappings hold the memfds). */
void ksm_destroy(struct ksm *ksm);

/*
 * Registers a VM in a sharing domain (any number; KSM_DOMAIN_PRIVATE for
 * none).  Pages merge only within a domain.  VMs of one domain whose RAM
 * is MAP_PRIVATE of the same base memfd also merge same-GPA duplicates
 * through it; all VMs mapping a base memfd must be registered in one
 * domain.  Turns on the VM's dirty log.
 */
int ksm_add_vm(struct ksm *ksm, const struct ksm_vm_ops *ops, void *ctx,
	       unsigned domain, struct ksm_vm **out, char *err, size_t errlen);
/* The VM must no longer run: frames that lose their last user are freed. */
void ksm_remove_vm(struct ksm *ksm, struct ksm_vm *vm);

/*
 * For balloon-host's on_page_released (ctx = the struct ksm_vm *): another
 * owner of the page-state map, holding HV_PF_BUSY on the page, takes away
 * a page ksm had shared (FRAME, BASE or ZERO).  Never waits for the
 * scanner, so it is safe on a vCPU thread inside a hypercall.  The page
 * keeps its content (a private copy if it still read the shared page);
 * base-backed RAM gets its base mapping back; the reference is dropped at
 * the next pass.  Not after ksm_remove_vm.
 */
void ksm_page_released(void *ctx, uint64_t gpa, hv_pstate_t old);

/* One synchronous scan pass over every VM, unthrottled (tests, tools).
 * Kernel engine: waits for ksmd's next full scan (needs ksm_start). */
int ksm_scan_pass(struct ksm *ksm);
/* The scanner thread: passes with sleep_ms between them, throttled by
 * pages_per_sec and cpu_percent.  Kernel engine: -EBUSY while another
 * process's kernel engine owns /sys/kernel/mm/ksm (a host-wide lock). */
int ksm_start(struct ksm *ksm);
void ksm_stop(struct ksm *ksm);
/* True while some kernel engine (another densevm, a test, this process's
 * own) holds the host-wide lock on /sys/kernel/mm/ksm, so that a kernel
 * ksm_start would get -EBUSY now.  A probe, not a reservation: the lock
 * may be taken the moment after it says false.  Creates no lock file. */
bool ksm_kernel_engine_busy(void);

/* Names as in struct ksm_config; values in decimal ("0"/"1" for bools).
 * Returns 0, -ENOENT for an unknown name, -EINVAL for a bad value, -EBUSY
 * for merge_across_nodes while pages are merged; err says which. */
int ksm_set_tunable(struct ksm *ksm, const char *name, const char *value,
		    char *err, size_t errlen);
int ksm_get_tunable(struct ksm *ksm, const char *name, char *buf,
		    size_t len);
/* NULL-terminated list of tunable names. */
const char *const *ksm_tunable_names(void);

/* One number in a kernel tunable file (sysfs, procfs): the value, or -1
 * when it cannot be read; 0, or -1 when the write is refused. */
long long ksm_sysctl_read(const char *path);
int ksm_sysctl_write(const char *path, long long v);
/* Linux KSM's metadata that no memory cgroup pays for (its rmap items,
 * from general_profit), bytes; 0 when unknown. */
long long ksm_kernel_uncharged_bytes(void);

/* ------------------------------------------------------------- stats */

struct ksm_stats {
	uint64_t frames;         /* shared content pages in use: frames plus
				  * base pages with users (global only) */
	uint64_t pages_sharing;  /* guest pages mapping a frame or base page */
	uint64_t base_pages;     /* of those, through the base memfd */
	uint64_t fill_pages;     /* of those, one byte repeated, mapping a
				  * fill block (ksm/README.md) */
	uint64_t zero_pages;     /* discarded zero pages */
	uint64_t untouched_pages; /* pages the guest never wrote, given zeros
				   * of their own so that base[g] could take
				   * a merge: ZERO, but no saving */
	uint64_t volatile_pages; /* skipped as volatile in the last pass */
	uint64_t full_scans;     /* completed passes */
	uint64_t pages_hashed;
	uint64_t pages_compared; /* found equal to the base page at their GPA
				  * by comparison alone, without a hash */
	uint64_t merges;         /* pages merged (zero pages included) */
	uint64_t unmerges;       /* copy-on-writes detected */
	uint64_t collisions;     /* equal hash, different bytes */
	uint64_t merge_races;    /* verify under pause failed: page changed */
	uint64_t map_failures;   /* replace failed (vm.max_map_count?) */
	uint64_t base_zero_reclaimed; /* zero pages punched out of base
				       * memfds (global only) */
	double cpu_seconds;      /* scanner thread CPU (global only) */
	uint64_t bytes_saved;    /* global: (pages_sharing - frames +
				  * zero_pages) * 4096; per VM: pages not
				  * privately held * 4096 */
	uint64_t pauses;         /* paused batches */
	uint64_t pause_p50_ns;   /* over the last 4096 pauses */
	uint64_t pause_p99_ns;
	uint64_t pause_max_ns;
	uint64_t wp_batches;     /* batches guarded by write-protect, no pause */
	uint64_t wp_waits;       /* guest writes that waited on such a batch */
	uint64_t wp_window_p50_ns;  /* how long a batch's pages stayed
				     * protected (the bound on any wait),
				     * over the last 4096 such batches */
	uint64_t wp_window_p99_ns;
	uint64_t wp_window_max_ns;
	uint64_t stall_p50_ns;   /* guest stall per batch, either way: the
				  * pause, or the longest write-protect wait
				  * (0 when no vCPU wrote), last 4096 */
	uint64_t stall_p99_ns;
	uint64_t stall_max_ns;
};

void ksm_stats(struct ksm *ksm, struct ksm_stats *global);
void ksm_vm_stats(struct ksm_vm *vm, struct ksm_stats *st);
/* {"engine":..,"global":{..},"vms":[{"name":..,"domain":..,"stats":..}],
 *  "tunables":{..}}, a new reference (NULL only when out of memory). */
json_t *ksm_stats_json(struct ksm *ksm);
/* One struct ksm_stats as a JSON object (global: with the global-only
 * fields), a new reference: the one place the fields get their names. */
json_t *ksm_stats_fields_json(const struct ksm_stats *s, bool global);
/* Frame and base refcounts against every VM's page-state map, the
 * frames memfd's allocated blocks against the live frames, and the
 * counters.  Returns 0, or -EUCLEAN with the first inconsistency in err. */
int ksm_self_check(struct ksm *ksm, char *err, size_t errlen);

/* The engine's name ("dense" or "kernel"). */
const char *ksm_engine_name(const struct ksm *ksm);

#endif
