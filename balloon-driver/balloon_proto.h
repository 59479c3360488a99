/*
 * balloon_proto.h - the densevm balloon wire protocol.
 *
 * Owns: every byte the guest's balloon core and the host's device model
 * (balloon-host/) exchange: the hypercall operations, the ring entry
 * encoding, the config page (host half and guest half) and the stats block.
 * Shared by hosted C (the host, unit tests), the freestanding micro guest
 * and a Linux kernel module, so it holds fixed-width types only, no libc,
 * and does not depend on hv-core's headers (the Linux module build has no
 * hv-core include path).
 *
 * Transport
 *   One doorbell hypercall per batch, never one per page (a port-I/O exit
 *   costs ~28 us here).  The micro guest rings HC_BALLOON (== BALLOON_HC_NR)
 *   with arg0 = BALLOON_OP_*, arg1..arg4 as below; the host answers in ret
 *   (>= 0, or -errno with Linux x86 errno values) and ret2.  A doorbell is
 *   synchronous: when it returns, the host has finished with the ring.
 *
 * Shared memory (all in guest RAM, registered once with BALLOON_OP_REGISTER)
 *   - the config page (one 4 KiB page): the host writes struct
 *     balloon_cfg_host at offset 0, the guest writes struct balloon_cfg_guest
 *     at BALLOON_CFG_GUEST_OFF.  Neither side writes the other's half.
 *   - the ring: 1..BALLOON_RING_MAX_PAGES contiguous pages holding an array
 *     of 64-bit entries and nothing else; capacity = pages * 512 entries.
 *   The host flags both HV_PF_DEVICE in its page-state map, so they can
 *   never be inflated or reported.
 *
 * Ring entry (uint64_t, little endian)
 *   bits 63..12  GPA >> 12 of the page (the entry with its low 12 bits
 *                cleared is the GPA itself)
 *   bit  0       BALLOON_ENT_2M: a 2 MiB entry; the GPA must be 2 MiB aligned
 *   bits 1..7    reserved, must be 0
 *   bits 8..11   status: the guest posts 0, the host writes BALLOON_ST_*
 *                back into the entry when it processed it
 *   The host reads the entries once into its own copy, then validates that
 *   copy (a guest vCPU may scribble on the ring concurrently).
 *
 * Operations (arg0)
 *   REGISTER    arg1 = config page GPA, arg2 = ring GPA, arg3 = ring pages
 *               (1..BALLOON_RING_MAX_PAGES), arg4 = BALLOON_PROTO_VERSION.
 *               ret = 0, ret2 = ring capacity in entries.  A second REGISTER
 *               resets the device first (see UNREGISTER).
 *   UNREGISTER  no args.  The host un-flags the pages it flagged and
 *               forgets the balloon: pages still ballooned go back to the
 *               guest (they read as zero).  A guest deflates first.
 *   INFLATE     arg1 = number of ring entries (<= capacity): the guest gives
 *               these pages to the host.  ret = entries accepted, ret2 =
 *               entries refused; each entry carries its own status.  A
 *               refused page was not taken: the guest still owns it.
 *   DEFLATE     arg1 = count: the guest takes ballooned pages back; an
 *               accepted page reads as zero.  A refused page stays ballooned.
 *   REPORT      arg1 = count: free page reporting.  The pages stay the
 *               guest's (free in its allocator); the host may discard their
 *               contents, so they read as zero until written (never as
 *               another VM's data).  Only while the host has set
 *               BALLOON_CFG_F_REPORTING.
 *   STATS       no args: the guest has filled balloon_cfg_guest.stats.
 *   For INFLATE/DEFLATE/REPORT/STATS/UNREGISTER the unused args must be 0.
 *
 * Config page protocol
 *   The host's half is a seqlock: `seq` is odd while the host updates it
 *   and grows by 2 for every change of target/flags/period/stats request.
 *   The guest reads seq, the fields, then seq again, and retries on a
 *   mismatch; it acknowledges with ack_seq in its own half.  A guest that
 *   sleeps in HC_WAIT is woken by the host after every change.
 */
#ifndef DENSEVM_BALLOON_PROTO_H
#define DENSEVM_BALLOON_PROTO_H

#if defined(__KERNEL__)
#include <linux/types.h>
#else
#include <stdint.h>
#endif

#define BALLOON_PROTO_VERSION   1
#define BALLOON_HC_NR           64      /* == HC_BALLOON in hv_abi.h */

#define BALLOON_PAGE_SIZE       4096ULL
#define BALLOON_PAGE_SHIFT      12
#define BALLOON_HUGE_SIZE       0x200000ULL     /* 2 MiB */
#define BALLOON_HUGE_PAGES      512u            /* 4 KiB pages in 2 MiB */
#define BALLOON_HUGE_ORDER      9

/* ---- operations (arg0 of the doorbell) ---- */
enum balloon_op {
	BALLOON_OP_REGISTER   = 1,
	BALLOON_OP_UNREGISTER = 2,
	BALLOON_OP_INFLATE    = 3,
	BALLOON_OP_DEFLATE    = 4,
	BALLOON_OP_REPORT     = 5,
	BALLOON_OP_STATS      = 6,
};

/* ---- errors (negative in ret; Linux x86 errno values) ---- */
#define BALLOON_EPERM     1
#define BALLOON_E2BIG     7
#define BALLOON_EAGAIN   11
#define BALLOON_ENOMEM   12
#define BALLOON_EBUSY    16
#define BALLOON_ENODEV   19
#define BALLOON_EINVAL   22
#define BALLOON_ERANGE   34
#define BALLOON_ENOSYS   38
#define BALLOON_EPROTO   71
#define BALLOON_EOPNOTSUPP 95

/* ---- ring ---- */
#define BALLOON_RING_MAX_PAGES   16
#define BALLOON_RING_PAGE_ENTRIES 512u   /* 4096 / sizeof(uint64_t) */
#define BALLOON_RING_MAX_ENTRIES (BALLOON_RING_MAX_PAGES * BALLOON_RING_PAGE_ENTRIES)

#define BALLOON_ENT_2M          0x1ULL
#define BALLOON_ENT_RSVD_MASK   0xfeULL          /* bits 1..7 */
#define BALLOON_ENT_ST_SHIFT    8
#define BALLOON_ENT_ST_MASK     0xf00ULL         /* bits 8..11 */
#define BALLOON_ENT_GPA_MASK    (~0xfffULL)

/* Per-entry status written by the host. */
enum balloon_status {
	BALLOON_ST_NONE    = 0,  /* not processed (the guest posts 0) */
	BALLOON_ST_OK      = 1,  /* done */
	BALLOON_ST_INVALID = 2,  /* reserved or status bits set */
	BALLOON_ST_RANGE   = 3,  /* not guest RAM (outside the VM, PCI hole) */
	BALLOON_ST_ALIGN   = 4,  /* 2 MiB entry not 2 MiB aligned */
	BALLOON_ST_STATE   = 5,  /* double inflate, deflate of a page not
	                            ballooned, report of a ballooned page */
	BALLOON_ST_DEVICE  = 6,  /* a device/ring/config page */
	BALLOON_ST_BUSY    = 7,  /* the host is working on the page; retry */
	BALLOON_ST_IO      = 8,  /* host-side failure (discard failed) */
};

static inline uint64_t balloon_ent_make(uint64_t gpa, int huge)
{
	return (gpa & BALLOON_ENT_GPA_MASK) | (huge ? BALLOON_ENT_2M : 0);
}
static inline uint64_t balloon_ent_gpa(uint64_t e)
{
	return e & BALLOON_ENT_GPA_MASK;
}
static inline unsigned balloon_ent_status(uint64_t e)
{
	return (unsigned)((e & BALLOON_ENT_ST_MASK) >> BALLOON_ENT_ST_SHIFT);
}

/* ---- stats block (guest -> host) ---- */
#define BALLOON_STAT_MEM_TOTAL     (1u << 0)
#define BALLOON_STAT_MEM_FREE      (1u << 1)
#define BALLOON_STAT_MEM_AVAILABLE (1u << 2)
#define BALLOON_STAT_CACHED        (1u << 3)
#define BALLOON_STAT_SWAP_IN       (1u << 4)
#define BALLOON_STAT_SWAP_OUT      (1u << 5)
#define BALLOON_STAT_MAJOR_FAULTS  (1u << 6)
#define BALLOON_STAT_MINOR_FAULTS  (1u << 7)
#define BALLOON_STAT_PSI_SOME      (1u << 8)
#define BALLOON_STAT_PSI_FULL      (1u << 9)
#define BALLOON_STAT_OOM_KILLS     (1u << 10)
#define BALLOON_STAT_ALL           0x7ffu

/* Each front end fills what its OS has and sets the matching valid bit.
 * No floating point: PSI is in hundredths of a percent (1234 = 12.34%). */
struct balloon_stats {
	uint32_t valid;            /* BALLOON_STAT_* */
	uint32_t psi_some_avg10;   /* 0..10000 */
	uint32_t psi_full_avg10;   /* 0..10000 */
	uint32_t pad0;
	uint64_t timestamp_ns;     /* guest clock when sampled */
	uint64_t mem_total;        /* bytes */
	uint64_t mem_free;         /* bytes */
	uint64_t mem_available;    /* bytes */
	uint64_t cached;           /* bytes */
	uint64_t swap_in;          /* pages since boot */
	uint64_t swap_out;         /* pages since boot */
	uint64_t major_faults;     /* since boot */
	uint64_t minor_faults;     /* since boot */
	uint64_t oom_kills;        /* since boot */
};

/* ---- config page ---- */
#define BALLOON_CFG_MAGIC       0x6e6c6c62u     /* "blln" */
#define BALLOON_CFG_GUEST_OFF   2048u

#define BALLOON_CFG_F_REPORTING (1u << 0)       /* free page reporting on */

/* Written by the host only (a seqlock: see the head comment). */
struct balloon_cfg_host {
	uint32_t magic;            /* BALLOON_CFG_MAGIC */
	uint32_t version;          /* BALLOON_PROTO_VERSION */
	uint64_t seq;              /* odd while the host writes */
	uint64_t target_pages;     /* wanted balloon size, 4 KiB pages */
	uint64_t host_pages;       /* pages the host holds now (informational,
	                              written outside the seqlock) */
	uint32_t flags;            /* BALLOON_CFG_F_* */
	uint32_t stats_period_ms;  /* 0 = no periodic stats */
	uint32_t stats_request;    /* bumped when the host wants stats now */
	uint32_t ring_capacity;    /* entries */
	uint64_t reserved[10];
};

#define BALLOON_GST_AT_FLOOR    (1u << 0)   /* inflation stopped at the floor */
#define BALLOON_GST_PRESSURE    (1u << 1)   /* deflated under pressure lately */
#define BALLOON_GST_ALLOC_FAIL  (1u << 2)   /* the OS had no page to give */

/* Written by the guest only; the host copies it before it reads it. */
struct balloon_cfg_guest {
	uint64_t ack_seq;          /* last host seq the guest acted on */
	uint64_t balloon_pages;    /* the guest's own count */
	uint32_t status;           /* BALLOON_GST_* */
	uint32_t stats_answered;   /* last stats_request served */
	uint64_t reserved[4];
	struct balloon_stats stats;
};

_Static_assert(sizeof(struct balloon_cfg_host) <= BALLOON_CFG_GUEST_OFF,
	       "host half fits below the guest half");
_Static_assert(BALLOON_CFG_GUEST_OFF + sizeof(struct balloon_cfg_guest) <= 4096,
	       "guest half fits the page");
_Static_assert(sizeof(struct balloon_stats) == 96, "stats layout is fixed");
_Static_assert(sizeof(struct balloon_cfg_host) == 128, "host half layout is fixed");

#endif
