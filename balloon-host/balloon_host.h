/*
 * balloon_host.h - the balloon device model: the one public interface of
 * balloon-host/.
 *
 * Owns: the host end of the balloon protocol (balloon-driver/
 * balloon_proto.h) for one VM: it serves HC_BALLOON, validates everything
 * the guest sends (the guest is hostile), discards inflated and reported
 * pages, keeps the page-state map right (BALLOONED, DEVICE for the config
 * page and the ring), and publishes the target through the config page.
 *
 * What it guarantees, whatever the guest sends:
 *   - only pages that are RAM of this VM (hv_gpa_to_hva) are touched, never
 *     the PCI hole or another VM; 2 MiB entries must be 2 MiB aligned;
 *   - no double inflate, no deflate of a page not ballooned, no inflate or
 *     report of a DEVICE page (ring, config, the micro guest's low pages);
 *   - counts are bounded by the ring's capacity; entries are copied once
 *     before they are checked;
 *   - a bad request or entry is refused, counted by reason, and logged at
 *     most `log_lines_per_sec` lines per second;
 *   - a page it takes or gives back (inflate, report, deflate, the sweep
 *     at UNREGISTER or at a second REGISTER) reads zero from then on until
 *     the guest writes it, also on base-memfd-backed RAM, where a plain
 *     discard would show base[g], other VMs' content: it zeroes with
 *     hv_vm_zero() (the memory-safety invariant of hv-core/hv.h).
 *
 * Threading: one lock per device; hypercalls arrive on the VM's vCPU
 * threads and the setters/stats come from any thread.  Work per hypercall
 * is bounded by the ring (at most 8192 entries).
 *
 * ksm hook: on_page_released(ctx, gpa, old) is called for every 4 KiB page
 * that an inflate, a report or a REGISTER takes away from state FRAME or
 * BASE, on the vCPU thread, while the device holds HV_PF_BUSY on the page,
 * before the device discards it (inflate, report) or writes to it
 * (REGISTER).  It drops the frame's reference and, if it changes the page's
 * backing, must leave the ordinary one (anonymous or the base memfd) with
 * the same content: then the zeroing that follows makes the page read
 * zero, and a registered page keeps what the guest put there.
 * It must not take HV_PF_BUSY itself, nor pause the VM.  Without a hook, a
 * FRAME page is refused as BUSY (nothing could drop its reference).
 */
#ifndef DENSEVM_BALLOON_HOST_H
#define DENSEVM_BALLOON_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "hv.h"
#include "balloon-driver/balloon_proto.h"

struct balloon_host;

typedef void (*balloon_host_release_fn)(void *ctx, uint64_t gpa,
					hv_pstate_t old);
typedef void (*balloon_host_log_fn)(void *ctx, const char *line);

struct balloon_host_config {
	uint32_t stats_period_ms;        /* initial; 0 = none */
	bool free_page_reporting;        /* initial */
	unsigned log_lines_per_sec;      /* 0 = 5 */
	balloon_host_release_fn on_page_released;  /* may be NULL (no ksm) */
	void *release_ctx;
	balloon_host_log_fn log;         /* NULL = stderr */
	void *log_ctx;
};

/* Registers the HC_BALLOON handler on vm.  Call before hv_vm_start().  The
 * VM must have been created offering HV_FEAT_BALLOON (hv_vm_config.features)
 * or this is -ENODEV.  0 or -errno. */
int balloon_host_attach(struct hv_vm *vm, const struct balloon_host_config *cfg,
			struct balloon_host **out);
/* Unregisters the handler and frees the device; call after the VM ended. */
void balloon_host_detach(struct balloon_host *dev);

/* The balloon size the guest should reach (rounded down to 4 KiB); updates
 * the config page and wakes the guest.  -ERANGE above the VM's RAM. */
int balloon_host_set_target(struct balloon_host *dev, uint64_t bytes);
/* The same, QEMU-style: the RAM left to the guest (target = RAM - bytes). */
int balloon_host_set_guest_size(struct balloon_host *dev, uint64_t bytes);
int balloon_host_set_stats_period(struct balloon_host *dev, uint32_t ms);
int balloon_host_set_reporting(struct balloon_host *dev, bool on);
/* Asks the guest for stats now (it answers on its next poll). */
int balloon_host_request_stats(struct balloon_host *dev);

/* Refusal reasons, for the counters. */
enum balloon_host_reject {
	BH_REJ_OP = 0,     /* unknown operation */
	BH_REJ_ARGS,       /* bad or nonzero-reserved hypercall arguments */
	BH_REJ_UNREG,      /* ring operation before REGISTER */
	BH_REJ_COUNT,      /* count above the ring's capacity */
	BH_REJ_REGISTER,   /* REGISTER with bad pages */
	BH_REJ_INVALID,    /* entry: reserved/status bits set */
	BH_REJ_RANGE,      /* entry: not RAM of this VM */
	BH_REJ_ALIGN,      /* entry: unaligned 2 MiB */
	BH_REJ_STATE,      /* entry: double inflate, deflate not ballooned ... */
	BH_REJ_DEVICE,     /* entry: a DEVICE page */
	BH_REJ_NR
};
const char *balloon_host_reject_name(enum balloon_host_reject r);

struct balloon_host_stats {
	bool registered;
	bool reporting;
	uint32_t stats_period_ms;
	uint64_t mem_bytes;
	uint64_t size_bytes;            /* what the host holds as ballooned */
	uint64_t target_bytes;
	uint64_t guest_balloon_bytes;   /* the guest's own claim */
	uint32_t guest_status;          /* BALLOON_GST_* */
	uint32_t ring_capacity;
	uint64_t requests;              /* HC_BALLOON calls */
	uint64_t inflated_pages;        /* cumulative, 4 KiB pages */
	uint64_t deflated_pages;
	uint64_t reported_pages;
	uint64_t rejected;              /* sum of reject[] */
	uint64_t reject[BH_REJ_NR];
	uint64_t busy;                  /* transient refusals (not the guest's fault) */
	uint64_t io_errors;             /* discard failures */
	uint64_t discards;              /* discard calls (one madvise each) */
	uint64_t log_suppressed;
	/* target set -> host size == target: the last completed latency, and
	 * whether the current target has been reached */
	bool target_reached;
	int64_t reach_ns;               /* -1 = not reached since the last set */
	uint64_t stats_updates;         /* STATS received */
	/* guest figures refused as impossible (stats with a value >= 2^63,
	 * a memory figure above the VM's RAM or free/available/cached above
	 * total; a balloon claim above RAM): the last good ones are kept */
	uint64_t guest_rejected;
	struct balloon_stats guest;     /* the last good stats */
};
void balloon_host_stats(struct balloon_host *dev, struct balloon_host_stats *out);

/* The snapshot as a new JSON object (the caller owns the reference), or
 * NULL when out of memory.  Host figures are always present. */
json_t *balloon_host_stats_to_json(const struct balloon_host_stats *s);

#endif
