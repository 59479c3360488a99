/*
 * internal.h - ksm's private types and the functions its files share.
 * Nothing outside ksm/ includes this.
 *
 * Ownership: one big lock (ksm->lock) covers every structure below except
 * the counters (relaxed atomics, read by stats without the lock) and the
 * cds_lfht tables, whose readers only need to be RCU-online.  The scanner
 * is the tables' only writer and it holds ksm->lock.
 */
#ifndef DENSEVM_KSM_INTERNAL_H
#define DENSEVM_KSM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>
#include <urcu-qsbr.h>
#include <urcu/rculfhash.h>
#include "ksm.h"

#define KSM_PAGE        4096u
#define KSM_MAX_NODES   64u
#define KSM_PAUSE_RING  4096u
#define KSM_WALK_MAX    32u     /* duplicates examined per table lookup */
#define KSM_ABSORB_MAX  4096u   /* candidates examined per new content */
#define KSM_SAMPLE      256u    /* bytes at each end of a page compared
				 * before a join of base[g] is queued */
#define KSM_BASE_WAIT   8u      /* passes a same-GPA pair waits for the
				 * old base[g] to be left (scan.c) */
#define KSM_GROUP_MAX   16u     /* pages of one batch op: the equal pages
				 * at one GPA across the domain's VMs */
#define KSM_FILL_RUN    64u     /* frames of a fill block (fill.c) */
#define KSM_FILL_BLOCKS 32u     /* fill blocks per domain */

/* Relaxed counters: written by the scanner, read by stats at any time. */
#define CTR_ADD(x, n) __atomic_fetch_add(&(x), (n), __ATOMIC_RELAXED)
#define CTR_SUB(x, n) __atomic_fetch_sub(&(x), (n), __ATOMIC_RELAXED)
#define CTR_SET(x, n) __atomic_store_n(&(x), (n), __ATOMIC_RELAXED)
#define CTR_GET(x)    __atomic_load_n(&(x), __ATOMIC_RELAXED)

struct kctr {
	uint64_t pages_sharing, base_pages, zero_pages, volatile_pages;
	uint64_t untouched_pages;  /* ZERO pages isolate.c took off base[g]:
				    * never written, so never a saving */
	uint64_t full_scans, pages_hashed, merges, unmerges, collisions;
	uint64_t merge_races, map_failures, cpu_ns, pauses;
	uint64_t wp_batches, wp_waits;
	uint64_t pages_compared;   /* found equal to base[g] without a hash */
	uint64_t fill_pages;       /* FRAME pages of a fill block (fill.c) */
	uint64_t base_zero_reclaimed;
};

/* Per-batch guard figures (guard.c), each a ring of the last
 * KSM_PAUSE_RING samples: the pauses of paused batches, how long the
 * pages of write-protected ones stayed protected, and every batch's
 * guest stall (its pause, or the longest write-protect wait). */
enum { KRING_PAUSE, KRING_WPWIN, KRING_STALL, KRING_N };
struct kpause {
	pthread_mutex_t mu;
	uint64_t n[KRING_N];
	uint64_t ns[KRING_N][KSM_PAUSE_RING];
};

/* Per-page flags in ksmvm_range.pflags. */
#define KP_IN_CAND   0x01u  /* a candidate-table node names this page */
#define KP_REMAPPED  0x02u  /* the hva maps the frames memfd, not the VM's
			     * own backing: a discard would not read zero */
#define KP_SLOT_SHIFT 2     /* bits 2-7: table slot of the candidate */

/* What ksm keeps per guest page: 8 bytes, ksm's whole memory per page
 * but for bitmaps (and for a candidate, about 17 bytes of cand.c's
 * table).  u is one of two things, never both at once: a page in the
 * candidate table (KP_IN_CAND) is PRIVATE, its own copy, which ksm did
 * not make; a page ksm made shared is no candidate.  Use the accessors. */
struct kpg {
	uint32_t u;            /* KP_IN_CAND: its table key (khash32); else
				* own: what ksm made the page, hv_ps_make(
				* state, 0, frame) of ZERO/BASE/FRAME, 0 =
				* not ksm's.  Refcounts follow own, never a
				* map entry someone else may have set. */
	uint16_t last_dirty;   /* pass (mod 2^16) whose dirty-log read last
				* saw it dirty: a wrapped match only makes a
				* page wait a pass longer, never merge */
	uint8_t streak;        /* consecutive reads it was dirty in */
	uint8_t pflags;        /* KP_* */
};

static inline uint32_t kpg_own(const struct kpg *p)
{
	return (p->pflags & KP_IN_CAND) ? 0 : p->u;
}
/* The page's candidate entry is gone: u holds no key any more. */
static inline void kpg_leave_cand(struct kpg *p)
{
	if (p->pflags & KP_IN_CAND) {
		p->pflags &= KP_REMAPPED;
		p->u = 0;
	}
}
/* A page ksm makes shared has left the candidate table already (its
 * entry deleted, KP_IN_CAND clear); only own is set here. */
static inline void kpg_set_own(struct kpg *p, uint32_t own)
{
	p->pflags &= (uint8_t)~KP_IN_CAND;
	p->u = own;
}

struct ksmvm_range {
	uint64_t gpa, len, npages, nwords;
	uint8_t *hva;
	struct kpg *pg;
	uint64_t *todo;        /* bitmap: written since last hashed */
	uint64_t *dirty;       /* scratch for dirty_fetch */
	uint64_t *nofast;      /* bitmap: a sampled match with base[g] failed
				* its full compare; compare in full first */
	uint64_t *untouched;   /* bitmap: ZERO because isolate.c mapped zeros
				* over a page its guest never wrote (counted
				* in untouched_pages, not zero_pages) */
};

struct kdom;

struct ksm_vm {
	struct ksm *ksm;
	struct kdom *dom;
	unsigned id;
	uint16_t dslot;   /* its index in dom->vslot (cand.c) */
	char name[64];
	const struct ksm_vm_ops *ops;
	void *ctx;
	unsigned nranges;
	struct ksmvm_range *r;
	hv_pstate_t *map;
	uint64_t map_npages;
	bool uses_base;   /* RAM is MAP_PRIVATE of dom->base_fd */
	bool anon;        /* RAM is anonymous: a discard reads zero */
	bool dead;        /* removed; freed at the last put */
	bool wp_off;      /* its wp_protect said -EOPNOTSUPP: pause it */
	bool wp_probed;   /* wp_protect of nothing asked once (batch.c) */
	/* The dirty log is read at most every cfg.dirty_ms: each read
	 * write-protects what it reports, and under shadow paging the
	 * guest's next write to each page faults (scan.c).  The passes of
	 * the last two reads (UINT32_MAX: none) say what "written in
	 * consecutive reads" means for the volatility streak. */
	uint64_t dirty_read_ns;
	uint32_t read_pass, prev_read_pass;
	/* Same-GPA peer checks that found nothing in a row (this scan):
	 * past 16, only every min(2^k, 64)th page is checked, so memory
	 * that is unique, or equal at other GPAs, does not pay for them. */
	unsigned peer_miss;
	/* kpm_cached()'s pagemap cache: 64 entries from pmc_hva, valid
	 * while pmc_gen == ksm->pm_gen. */
	uint64_t pmc_gen;
	const uint8_t *pmc_hva;
	uint64_t pmc[64];
	int refs;         /* list + a scan in progress (under ksm->lock) */
	struct kctr c;
	struct kpause pause;
	struct ksm_vm *next;
};

/* A frame of a domain's frames memfd (offset = index * 4096). */
struct kframe {
	uint64_t hash;
	uint32_t refs;           /* pages in state FRAME naming it */
	uint32_t pending;        /* joins queued in the current batch */
	int16_t node;
	uint8_t used;            /* KF_* */
	uint8_t slot;
	struct knode *sn;        /* its stable-table node, or NULL */
	/* A base frame: the content is base[bpfn - 1] of the domain's base
	 * memfd, not a page of the frames memfd (0 = a frames-memfd frame).
	 * refs counts only the pages that map it at another GPA; the pages
	 * at its own GPA are base_refs (base_frame.c). */
	uint64_t bpfn;
	uint16_t fill;           /* 1 + its fill block (fill.c), 0 = none */
};

#define KF_FREE    0u
#define KF_PENDING 1u   /* allocated by a batch, not yet committed */
#define KF_LIVE    2u   /* refs > 0, in the stable table (a fill frame:
			 * in no table) */
#define KF_FILLRES 3u   /* a fill block's frame that no page maps: a hole */

/* A fill block (fill.c): KSM_FILL_RUN frames from first, each holding
 * byte (or a hole while unused); byte 0 = a free slot. */
struct kfillblk {
	uint8_t byte, slot;
	uint32_t first, live;
	uint64_t hash;
};

#define KB_DATA   0x01u  /* base[g] may hold nonzero content */
#define KB_HASHED 0x02u  /* base_hash[g] is the hash of base[g] */

/* A candidate page (cand.c): key = khash32 of its content hash. */
struct kcent {
	uint32_t key, idx;
	uint16_t vm;              /* dom->vslot index */
	uint8_t r, state;         /* KC_* */
};
#define KC_EMPTY 0u
#define KC_LIVE  1u
#define KC_TOMB  2u
static inline bool kcand_live(const struct kcent *e)
{
	return e->state == KC_LIVE;
}
struct kctab {
	struct kcent *e;          /* cap entries */
	uint32_t cap, live, tombs;
};
struct kcand_it {
	struct kctab *t;
	uint32_t key, pos, left;
};
static inline uint32_t khash32(uint64_t h)
{
	return (uint32_t)(h ^ (h >> 32));
}

struct kdom {
	unsigned id;
	bool private_dom;
	unsigned nvms;
	/* Base memfd (a dup of the first VM's), or -1. */
	int base_fd;
	dev_t base_dev;
	ino_t base_ino;
	uint64_t base_npages;    /* size of the arrays below */
	uint16_t *base_refs;     /* pages in state BASE at g */
	uint8_t *base_flags;     /* KB_* */
	uint64_t *base_hash;
	/* The base memfd mapped read-only (MAP_SHARED): base pages are read
	 * and compared in place, without a copy or a system call.  Only
	 * pages known to be allocated are touched (a read fault on a hole
	 * would allocate it). */
	const uint8_t *base_map;
	uint64_t base_map_pages;
	uint64_t base_used;      /* g with base_refs[g] > 0 */
	uint64_t base_data_pages;   /* g with KB_DATA */
	uint64_t base_sweep_slack;  /* see kbase_sweep() */
	/* base_frame[g] = 1 + the frame that names base[g] in the content
	 * store, 0 = none (base_frame.c) */
	uint32_t *base_frame;
	uint64_t bframes;           /* LIVE base frames */
	uint64_t bframes_alone;     /* ... of which base_refs[g] == 0 */
	uint64_t sweep_left;
	/* Frames memfd and its frames. */
	int frames_fd;
	uint64_t frames_file_pages;  /* its size, in pages */
	struct kframe *frames;
	uint32_t frames_cap, hwm, cursor;
	uint64_t frames_used;        /* LIVE */
	uint64_t frames_nonfree;     /* LIVE + PENDING + FILLRES */
	struct kfillblk fills[KSM_FILL_BLOCKS];
	/* Tables, one per NUMA slot (one when merging across nodes). */
	unsigned nslots;
	struct cds_lfht *stable[KSM_MAX_NODES];
	struct kctab cand[KSM_MAX_NODES];
	/* its VMs by the 16-bit slot candidate entries name them with */
	struct ksm_vm **vslot;
	uint32_t nvslots;
	struct kdom *next;
};

/* A stable-table node: a frame of the content store.  Freed after a
 * grace period (ksm->grave). */
struct knode {
	struct cds_lfht_node ln;
	uint64_t hash;
	struct knode *grave_next;
	uint8_t slot;             /* table slot it lives in */
	uint32_t frame;
};

struct kbatch;
struct kengine;

struct ksm {
	struct ksm_config cfg;    /* tunables: written under lock, read
				   * relaxed by the scanner */
	pthread_mutex_t lock;
	pthread_rwlock_t list_lock;  /* vms/doms lists, for stats readers */
	struct ksm_vm *vms;          /* sorted by id */
	struct kdom *doms;
	unsigned next_vm_id, next_private_dom;
	uint64_t pass;
	int pagemap_fd;
	bool pm_scan_off;         /* no PAGEMAP_SCAN: pagemap_scan.c reads */
	uint64_t pm_gen;          /* see kpm_cached() */
	uint64_t zero_hash;
	unsigned real_nodes;
	struct kctr c;
	struct kpause pause;
	struct knode *grave;
	struct kbatch *batch;
	/* scanner thread */
	pthread_t thr;
	bool running;
	bool stop_req;
	pthread_cond_t cv;
	/* callers waiting for ksm->lock (klock): the scanner hands the lock
	 * over at its next throttle point, instead of at the end of a pass
	 * that may take seconds; handoff says the waiters are done */
	unsigned lock_waiters;
	pthread_cond_t handoff;
	uint64_t lock_served;     /* klock holders done (kunlock), under lock */
	/* the scanner is in handover() until lock_served reaches ho_until:
	 * klock() callers past that wait for its next point (klock) */
	bool ho_active;
	uint64_t ho_until;
	bool may_yield;           /* in the scanner thread's pass: kscan_yield */
	uint64_t thr_t0_ns, thr_cpu0_ns, thr_hashed0;
	uint64_t cpu_mark_ns;     /* thread CPU at the start of this call */
	struct kengine *ke;
	const struct kengine_ops *eng;
	bool destroying;
	/* releases from ksm_page_released(), applied by the next pass */
	pthread_mutex_t rel_mu;
	struct krel { struct ksm_vm *vm; uint64_t gpa; } *rel;
	unsigned nrel, relcap;
};

/* ---- ksm.c: ksm->lock for callers other than the scanner */
void klock(struct ksm *k);
void kunlock(struct ksm *k);

/* ---- time, rcu (tables.c) */
uint64_t ksm_now_ns(void);
uint64_t ksm_thread_cpu_ns(void);
void kcond_wait_ns(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t ns);
void ksm_rcu_online(void);
void ksm_rcu_offline(void);
void ksm_rcu_quiescent(void);

/* ---- tables.c */
struct cds_lfht *ktab_new(void);
void ktab_destroy(struct cds_lfht *ht);
struct knode *ktab_first(struct cds_lfht *ht, uint64_t hash,
			 struct cds_lfht_iter *it);
struct knode *ktab_next(struct cds_lfht *ht, struct cds_lfht_iter *it);
void ktab_add(struct cds_lfht *ht, struct knode *n);
void ktab_del(struct ksm *k, struct cds_lfht *ht, struct knode *n);
void ktab_reclaim(struct ksm *k);

/* ---- cand.c: the candidate tables (scanner-private, under ksm->lock) */
void kctab_free(struct kctab *t);
uint64_t kctab_bytes(const struct kctab *t);
int kcand_vm_attach(struct kdom *d, struct ksm_vm *vm);
void kcand_vm_detach(struct kdom *d, struct ksm_vm *vm);
void kcand_add(struct ksm *k, struct kdom *d, unsigned slot, uint64_t hash,
	       struct ksm_vm *vm, uint32_t r, uint32_t idx);
/* Every live entry with the hash's key; no add may run meanwhile. */
struct kcent *kcand_first(struct kdom *d, unsigned slot, uint64_t hash,
			  struct kcand_it *it);
struct kcent *kcand_next(struct kcand_it *it);
struct kcent *kcand_next_at(struct kcand_it *it);
unsigned kcand_slot_of(const struct kdom *d, const struct kcent *e);
void kcand_del(struct ksm *k, struct kdom *d, struct kcent *e);
void kcand_del_page(struct ksm *k, struct ksm_vm *vm, uint32_t r,
		    uint32_t idx);
void kcand_del_vm(struct ksm *k, struct ksm_vm *vm);
void kcand_trim(struct kdom *d);
void kcand_prefetch(const struct kdom *d, unsigned slot, uint64_t hash);

/* ---- hash.c */
uint64_t ksm_hash_page(const struct ksm *k, const void *page);
bool ksm_page_is_zero(const void *page);
extern const uint8_t ksm_zero_page[KSM_PAGE];

/* ---- pagemap (unshare.c) */
#define PM_PRESENT   (1ULL << 63)
#define PM_SWAPPED   (1ULL << 62)
#define PM_FILE      (1ULL << 61)
#define PM_EXCLUSIVE (1ULL << 56)
int kpm_read(struct ksm *k, const uint8_t *hva, unsigned n, uint64_t *out);
/* Sets bit bit0 + i of bits when page i of [hva, + n pages) is present
 * and maps the page cache, not a private copy (pagemap_scan.c); 0 or -1. */
int kpm_file_mapped(struct ksm *k, const uint8_t *hva, uint64_t n,
		    uint64_t *bits, uint64_t bit0);
/* The same through a per-VM cache of 64 entries (merge_base.c). */
struct ksm_vm;
int kpm_cached(struct ksm *k, struct ksm_vm *vm, uint32_t r, uint32_t idx,
	       uint64_t *e, bool recheck);
void kpm_forget(struct ksm_vm *vm, const uint8_t *hva, uint64_t len);
/* The page is the VM's own anonymous copy (written, or swapped out). */
static inline bool kpm_private(uint64_t e)
{
	if (e & PM_SWAPPED)
		return true;
	return (e & PM_PRESENT) && !(e & PM_FILE) && (e & PM_EXCLUSIVE);
}

/* ---- page helpers */
static inline hv_pstate_t kmap_get(const struct ksm_vm *vm, uint64_t pfn)
{
	return __atomic_load_n(&vm->map[pfn], __ATOMIC_ACQUIRE);
}
static inline bool kmap_cas(struct ksm_vm *vm, uint64_t pfn, hv_pstate_t old,
			    hv_pstate_t nw)
{
	return vm->ops->page_cas(vm->ctx, pfn, old, nw);
}
static inline uint64_t kpage_gpa(const struct ksm_vm *vm, uint32_t r,
				 uint32_t idx)
{
	return vm->r[r].gpa + (uint64_t)idx * KSM_PAGE;
}
static inline uint8_t *kpage_hva(const struct ksm_vm *vm, uint32_t r,
				 uint32_t idx)
{
	return vm->r[r].hva + (uint64_t)idx * KSM_PAGE;
}
/* Dropping the page's copy would not read base[g]: ksm mapped a frame over
 * it (KP_REMAPPED), or hv-core says other memory maps it now (the
 * anonymous memory a balloon zeroing puts over base-backed RAM).  Joining
 * base[g] then restores the base mapping instead of discarding. */
static inline bool kpage_off_base(const struct ksm_vm *vm, uint32_t r,
				  uint32_t idx)
{
	return (vm->r[r].pg[idx].pflags & KP_REMAPPED) ||
	       (vm->uses_base && vm->ops->off_base &&
		vm->ops->off_base(vm->ctx, kpage_gpa(vm, r, idx)));
}
static inline void kbit_set(uint64_t *bm, uint64_t i)
{
	bm[i / 64] |= 1ULL << (i % 64);
}
static inline void kbit_clear(uint64_t *bm, uint64_t i)
{
	bm[i / 64] &= ~(1ULL << (i % 64));
}
static inline bool kbit_test(const uint64_t *bm, uint64_t i)
{
	return (bm[i / 64] >> (i % 64)) & 1;
}
/* Finds the range and index of a GPA in a VM; false when not RAM. */
bool ksmvm_locate(const struct ksm_vm *vm, uint64_t gpa, uint32_t *r,
		uint32_t *idx);

/* ---- domain.c */
struct kdom *kdom_get(struct ksm *k, unsigned id, int base_fd,
		      uint64_t gpa_end, char *err, size_t errlen);
void kdom_put(struct ksm *k, struct kdom *d);
void kdom_free_all(struct ksm *k);
int kdom_grow_base(struct kdom *d, uint64_t npages);
void ksmvm_put(struct ksm *k, struct ksm_vm *vm);

/* ---- numa.c */
unsigned knuma_slots(const struct ksm *k);
void knuma_nodes(const struct ksm *k, const uint8_t *const *hva, unsigned n,
		 int *nodes);
unsigned knuma_slot_of(const struct ksm *k, int node);
void knuma_prefer(const struct ksm *k, int node);
void knuma_unprefer(const struct ksm *k, int node);

/* ---- merge_frame.c */
uint32_t kframe_alloc(struct kdom *d);
int kframe_reserve(struct kdom *d, uint32_t n, uint32_t *first);
void kframe_trim(struct kdom *d);
void kframe_release(struct kdom *d, uint32_t f);
int kframe_write(struct ksm *k, struct kdom *d, uint32_t f, const void *buf,
		 int node);
int kframe_read(struct kdom *d, uint32_t f, void *buf);
void kframe_commit_new(struct ksm *k, struct kdom *d, uint32_t f,
		       uint64_t hash, unsigned slot, int node, unsigned refs);
void kframe_ref(struct kdom *d, uint32_t f);
void kframe_unref(struct ksm *k, struct kdom *d, uint32_t f);
/* Where the frame's content lives: the frames memfd, or the base memfd
 * for a base frame. */
void kframe_loc(const struct kdom *d, uint32_t f, int *fd, uint64_t *off);

/* ---- base_frame.c: base pages as frames of the one content store */
static inline uint32_t kbframe_of(const struct kdom *d, uint64_t pfn)
{
	return d->base_frame && pfn < d->base_npages && d->base_frame[pfn] ?
	       d->base_frame[pfn] - 1 : UINT32_MAX;
}
void kbframe_publish(struct ksm *k, struct kdom *d, uint64_t pfn,
		     uint64_t hash, unsigned slot, int node);
uint32_t kstore_find(struct ksm *k, struct kdom *d, unsigned slot,
		     uint64_t hash, const uint8_t *bytes, unsigned npg);

/* ---- fill.c: pages of one nonzero byte, in runs */
int kfill_byte(const void *page);   /* the byte, or -1 (zero: -1) */
bool kfill_in_run(struct ksm *k, struct ksm_vm *vm, uint32_t r, uint32_t idx,
		  uint8_t byte);
uint32_t kfill_frame(struct ksm *k, struct kdom *d, uint8_t byte,
		     unsigned slot, uint64_t pfn, uint64_t *hash);
int kfill_write(struct ksm *k, struct kdom *d, uint32_t f, const void *buf,
		int node);
void kfill_release(struct kdom *d, uint32_t f);
void kfill_settle(struct kdom *d, uint32_t f);

/* ---- merge_base.c */
int kbase_init(struct ksm *k, struct kdom *d);
void kbase_sweep(struct ksm *k, struct kdom *d);
bool kbase_has_data(const struct kdom *d, uint64_t pfn);
int kbase_hash(struct ksm *k, struct kdom *d, uint64_t pfn, uint64_t *h);
int kbase_map(struct kdom *d);
void kbase_unmap(struct kdom *d);
const uint8_t *kbase_ptr(const struct kdom *d, uint64_t pfn);
struct kpage;
bool kbase_writable(struct ksm *k, struct kdom *d, uint64_t pfn,
		    const struct kpage *mine, unsigned nmine);
bool kbase_page_elsewhere(const struct ksm_vm *vm, uint32_t r, uint32_t idx,
			  hv_pstate_t st);
bool kbase_reads_zero(struct kdom *d, uint64_t pfn);
uint64_t kbase_zero_mask(struct kdom *d, uint64_t p0, unsigned n);
unsigned kbase_readers(struct ksm *k, struct kdom *d, uint64_t pfn,
		       const struct kpage *mine, unsigned nmine,
		       struct kpage *out, unsigned max);
unsigned kbase_group(struct ksm *k, const struct ksm_vm *vm, uint64_t pfn,
		     struct kpage *out, unsigned max,
		     bool (*match)(struct ksm *k, const struct kpage *p,
				   const void *arg),
		     const void *arg);
int kbase_write(struct kdom *d, uint64_t pfn, const void *buf,
		uint64_t hash);
void kbase_ref(struct kdom *d, uint64_t pfn);
void kbase_drop_unused(struct ksm *k, struct kdom *d, uint64_t pfn);
void kbase_unref(struct ksm *k, struct kdom *d, uint64_t pfn,
		 const struct ksm_vm *leaving);
void kbase_left(struct ksm *k, struct kdom *d, uint64_t pfn,
		const struct ksm_vm *leaving);

/* ---- zero.c */
bool kzero_discardable(const struct ksm_vm *vm, uint32_t r, uint32_t idx);

/* ---- batch.c: queue and run verify-and-replace batches */
/* KOP_ZERO drops the page's copy (what lies under reads zero);
 * KOP_ZERO_MAP maps zeros over it (ops->zero), where a discard would read
 * base[g]'s data or a frame: a zero page is zero wherever it is. */
/* KOP_FILL maps a fill block's frame (fill.c), written first if unused. */
enum kop_kind { KOP_ZERO, KOP_JOIN_BASE, KOP_NEW_BASE, KOP_JOIN_FRAME,
		KOP_NEW_FRAME, KOP_ZERO_MAP, KOP_FILL };
struct kpage {
	struct ksm_vm *vm;
	uint32_t r, idx;
};
/* The page a candidate entry names (cand.c). */
struct kpage kcand_page(const struct kdom *d, const struct kcent *e);
/* ref is the op's reference content, filled when queued */
int kbatch_init(struct ksm *k);
void kbatch_free(struct ksm *k);
unsigned kbatch_ensure_room(struct ksm *k, unsigned pages);
uint8_t *kbatch_reserve(struct ksm *k);
void kbatch_commit(struct ksm *k, enum kop_kind kind, uint64_t hash,
		   uint32_t frame, unsigned slot, int node,
		   const struct kpage *pg, unsigned npg);
int kbatch_resize(struct ksm *k, unsigned pages);
void kbatch_flush(struct ksm *k);
void kbatch_drain(struct ksm *k);
bool kbatch_pending_new(const struct ksm *k, uint64_t hash);
void kpause_record(struct kpause *p, unsigned ring, uint64_t ns);
void kpause_percentiles(struct kpause *p, unsigned ring, uint64_t *p50,
			uint64_t *p99, uint64_t *max);

/* ---- unshare.c */
void kunshare_range(struct ksm *k, struct ksm_vm *vm, uint32_t r,
		    const uint64_t *dirty);
void kunshare_page_state(struct ksm *k, struct ksm_vm *vm, uint32_t r,
			 uint32_t idx, hv_pstate_t st, bool reset_map);

/* ---- unshare.c: releases queued by ksm_page_released() */
void krel_drain(struct ksm *k);
bool krel_pending(struct ksm *k);
bool krel_queued(struct ksm *k, struct ksm_vm *vm, uint64_t gpa);
void krel_purge_vm(struct ksm *k, struct ksm_vm *vm);
static inline uint32_t kown_of(hv_pstate_t st)
{
	return hv_ps_make(hv_ps_state(st), 0, hv_ps_frame(st));
}

/* ---- scan.c */
int kscan_pass(struct ksm *k, bool throttle);
/* In the scanner thread's pass (else a no-op): lets klock() waiters in
 * now, for stretches with no throttle point (a base sweep, a dirty-log
 * read).  The batch is drained first; the caller holds nothing that a
 * waiter may free (a waiter may remove a VM: check vm->dead after, or a
 * domain's last VM: pin it).  True if someone had the lock meanwhile;
 * kscan_waiting() says beforehand whether it will. */
bool kscan_yield(struct ksm *k);
bool kscan_waiting(const struct ksm *k);
void kscan_absorb(struct ksm *k, struct kdom *d, unsigned slot,
		  uint64_t hash, uint32_t frame, uint64_t base_pfn);

/* ---- stats.c */
void kstats_fill(struct ksm *k, const struct kctr *c, struct kpause *p,
		 struct ksm_stats *st);

/* ---- the engines: dense (dense_engine.c) and kernel (kernel_engine.c).
 * add_vm, remove_vm and start run under ksm->lock; stop and scan_pass
 * take it themselves. */
struct kengine_ops {
	const char *name;
	int (*create)(struct ksm *k, char *err, size_t errlen);
	void (*destroy)(struct ksm *k);
	int (*add_vm)(struct ksm *k, struct ksm_vm *vm, unsigned domain,
		      int base_fd, uint64_t gpa_end, char *err, size_t errlen);
	void (*remove_vm)(struct ksm *k, struct ksm_vm *vm);
	int (*start)(struct ksm *k);
	void (*stop)(struct ksm *k);
	int (*scan_pass)(struct ksm *k);
	int (*apply_tunables)(struct ksm *k);   /* NULL: nothing outside */
	void (*stats)(struct ksm *k, struct ksm_stats *st);
	int (*self_check)(struct ksm *k, char *err, size_t errlen);
};
extern const struct kengine_ops kengine_dense, kengine_kernel;
void kdense_stats(struct ksm *k, struct ksm_stats *st);
int kdense_self_check(struct ksm *k, char *err, size_t errlen);

#endif
