/*
 * hv.h - hv-core's one public interface.
 *
 * hv-core is a type-2 hypervisor core on Linux KVM: one host process runs
 * many VMs, each with its own vCPU threads.  It owns VM lifecycle, guest RAM
 * and memslots, the loaders (micro guest ELF, Linux bzImage/vmlinux), the
 * per-page state map, dirty logging, pause/resume and backing replacement.
 * It knows nothing of ksm/, balloon-host/ or policy/: those build on the
 * memory interfaces below, and devices hook in through hv_vm_set_hypercall().
 *
 * The memory-safety invariant, above speed: a guest page reads only
 *   (a) what this guest wrote there,
 *   (b) zeros, or
 *   (c) content byte-identical to what this guest wrote there (a merge),
 * never another VM's data and never a stale version.  Every path that drops
 * or replaces a guest page keeps it: hv_vm_zero() is the one way to give a
 * page back or take it away (balloon inflate, free page reporting, deflate,
 * unregister, device reset); hv_vm_discard() is only for pages whose
 * backing reads zero or this guest's own content (anonymous RAM, a base
 * hole no one may write while this VM reads it, or base[g] that holds this
 * VM's merged content); replace/restore are only for content verified
 * equal while the VM cannot write it.  tests/integration/test_balloon_leak
 * and tests/unit/test_backing check it.
 *
 * Threading: every function here may be called from any thread unless it
 * says otherwise.  Guest RAM may be read at any time through the host
 * pointers of hv_vm_ranges(); changing what backs it (replace, discard)
 * races with guest writes, so callers either pause the VM or write-protect
 * the range first with hv_vm_wp_protect() (never mprotect running RAM:
 * ../shared/README.md).
 */
#ifndef DENSEVM_HV_H
#define DENSEVM_HV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hv_abi.h"

#define HV_PAGE_SIZE   4096ULL
#define HV_PAGE_SHIFT  12

struct hv_vm;

/* ------------------------------------------------------------------ setup */

/* Opens /dev/kvm and checks the capabilities hv-core needs.  Returns 0, or
 * -errno with a message in err (e.g. -ENOENT when /dev/kvm is absent). */
int hv_init(char *err, size_t errlen);
bool hv_kvm_available(void);

enum hv_guest_kind {
	HV_GUEST_MICRO = 0,  /* guest/ micro guest ELF, started at CPL3 */
	HV_GUEST_LINUX = 1,  /* bzImage or vmlinux, Linux x86 boot protocol */
};

/* Console output reaches hv_console_fn (or stdout) as lines of at most
 * HV_CONSOLE_LINE bytes, escaped so that no control character but tab is
 * left (see console_filter.c), under a per-VM budget: a token bucket of
 * console_rate bytes/s with console_burst bytes of depth.  The defaults
 * let a whole Linux boot log (some 100 KiB) through at once and far more
 * text than anyone reads (about 800 lines/s), while a flood of megabytes
 * costs the operator's terminal a quarter of a MiB and then 64 KiB/s. */
#define HV_CONSOLE_LINE          256
#define HV_CONSOLE_RATE_DEFAULT  (64ull << 10)    /* bytes/s */
#define HV_CONSOLE_BURST_DEFAULT (256ull << 10)   /* bytes */
#define HV_CONSOLE_UNLIMITED     UINT64_MAX       /* console_rate: no budget */

struct hv_vm;
typedef void (*hv_console_fn)(struct hv_vm *vm, const char *line, size_t len,
			      void *ctx);
typedef void (*hv_result_fn)(struct hv_vm *vm, uint64_t key, uint64_t value,
			     void *ctx);

struct hv_vm_config {
	const char *name;
	uint64_t mem_bytes;        /* multiple of 2 MiB */
	unsigned ncpus;            /* 1..HV_MAX_VCPUS */
	enum hv_guest_kind kind;
	const char *image;         /* micro guest ELF, or the Linux kernel */
	const char *initrd;        /* Linux only; may be NULL */
	const char *cmdline;       /* Linux cmdline, or micro guest arguments */
	/* Guest RAM is MAP_PRIVATE of this memfd at offset == GPA when >= 0
	 * (a sharing domain's base), else private anonymous memory.  The fd
	 * stays the caller's; hv-core grows it to cover the GPA space. */
	int base_memfd;
	double timeout_s;          /* 0 = none; on expiry the VM is stopped */
	hv_console_fn console;     /* one call per console line; may be NULL */
	/* 0 = HV_CONSOLE_RATE_DEFAULT / _BURST_DEFAULT; a burst must be at
	 * least HV_CONSOLE_LINE + 1 (one full line and its newline). */
	uint64_t console_rate;     /* bytes/s, or HV_CONSOLE_UNLIMITED */
	uint64_t console_burst;
	/* HV_FEAT_* this VM offers its guest, in the CPUID leaf (Linux) and
	 * the boot info (micro).  hv-core sets none of its own: the spec does,
	 * and a device that needs a bit refuses to attach without it. */
	uint32_t features;
	hv_result_fn result;       /* HC_RESULT; may be NULL */
	void *ctx;                 /* passed to the callbacks */
	/* true: guest RAM is not registered for write-protect (wp.c), so
	 * whoever must keep the guest from writing pauses it instead */
	bool no_write_protect;
};

/* Creates the VM, maps its RAM and loads the image; does not run it.
 * Returns 0 or -errno with one line in err naming what was wrong. */
int hv_vm_create(const struct hv_vm_config *cfg, struct hv_vm **out,
		 char *err, size_t errlen);
int hv_vm_start(struct hv_vm *vm);            /* spawns the vCPU threads */
void hv_vm_stop(struct hv_vm *vm);            /* asks vCPUs to end; no wait */
void hv_vm_wait(struct hv_vm *vm);            /* joins the vCPU threads */
bool hv_vm_wait_timeout(struct hv_vm *vm, double seconds); /* true = ended */
void hv_vm_destroy(struct hv_vm *vm);         /* stop + wait + free */

const char *hv_vm_name(const struct hv_vm *vm);
uint64_t hv_vm_mem_bytes(const struct hv_vm *vm);
/* Guest RAM resident in the host now (mincore over its mappings). */
uint64_t hv_vm_resident_bytes(const struct hv_vm *vm);
unsigned hv_vm_ncpus(const struct hv_vm *vm);
int hv_vm_base_memfd(const struct hv_vm *vm);  /* -1 for anonymous RAM */
uint32_t hv_vm_features(const struct hv_vm *vm);  /* cfg.features */

enum hv_exit_kind {
	HV_EXIT_RUNNING = 0,
	HV_EXIT_EXITED,     /* the guest said HC_EXIT on every vCPU */
	HV_EXIT_CRASHED,    /* triple fault, bad exit, emulation failure ... */
	HV_EXIT_TIMEOUT,
	HV_EXIT_STOPPED,    /* hv_vm_stop() or a signal */
	HV_EXIT_ERROR,      /* a host-side failure */
};

#define HV_EXIT_STATUS_MAX 255
#define HV_EXIT_STATUS_BAD 255   /* what a status outside 0-255 becomes */

struct hv_exit_status {
	enum hv_exit_kind kind;
	int code;           /* the guest's HC_EXIT status (first nonzero), 0-255 */
	char reason[160];
};

void hv_vm_status(struct hv_vm *vm, struct hv_exit_status *st);
const char *hv_exit_kind_name(enum hv_exit_kind k);

/* Timestamps (CLOCK_MONOTONIC ns): when hv_vm_start() ran, when the first
 * hypercall arrived (0 if none yet) and when the last vCPU thread ended. */
uint64_t hv_vm_start_ns(const struct hv_vm *vm);
uint64_t hv_vm_first_hypercall_ns(const struct hv_vm *vm);
uint64_t hv_vm_end_ns(const struct hv_vm *vm);   /* 0 while running */
uint64_t hv_now_ns(void);

/* --------------------------------------------------------- guest memory */

/* Guest RAM as (GPA, host pointer) ranges, one per memslot.  RAM above
 * HV_PCI_HOLE_START continues at 4 GiB. */
#define HV_PCI_HOLE_START 0xc0000000ULL
#define HV_PCI_HOLE_END   0x100000000ULL

struct hv_ram_range {
	uint64_t gpa;
	uint64_t len;
	uint8_t *hva;
	unsigned slot;
};

const struct hv_ram_range *hv_vm_ranges(const struct hv_vm *vm, unsigned *n);

/* Host pointer to [gpa, gpa+len) when it lies wholly inside one RAM range,
 * else NULL.  The one check that device models use on guest addresses. */
void *hv_gpa_to_hva(const struct hv_vm *vm, uint64_t gpa, uint64_t len);
/* Highest RAM GPA + 1 (the size of the page-state map, in bytes of GPA). */
uint64_t hv_vm_gpa_end(const struct hv_vm *vm);

/* ------------------------------------------------------- page-state map */

/*
 * One 32-bit word per 4 KiB guest page, indexed by GPA >> 12 over
 * [0, hv_vm_gpa_end()).  It is our view of what the nested page tables map:
 *   bits 0-2  state (enum hv_page_state)
 *   bits 3-7  flags (HV_PF_*)
 *   bits 8-31 frame index (state FRAME only; the owner's numbering)
 * 24 bits of frame index allow 16M frames (64 GiB of distinct shared
 * content) per frames file.  Untouched entries read as PRIVATE and cost no
 * memory.  Updates are single-word atomics: writers use hv_page_cas().
 */
enum hv_page_state {
	HV_PAGE_PRIVATE   = 0, /* the VM's own page */
	HV_PAGE_ZERO      = 1, /* discarded; reads as zero until written */
	HV_PAGE_BASE      = 2, /* reverted to the domain's base memfd page */
	HV_PAGE_FRAME     = 3, /* a frame of a shared frames memfd */
	HV_PAGE_BALLOONED = 4, /* given to the balloon; discarded */
};

#define HV_PF_DEVICE   (1u << 3) /* host ABI / ring page: never discard */
#define HV_PF_BUSY     (1u << 4) /* an operation owns this page now */
#define HV_PF_USER1    (1u << 5) /* for the owner of the current state */
#define HV_PF_USER2    (1u << 6)
#define HV_PF_USER3    (1u << 7)

typedef uint32_t hv_pstate_t;

static inline unsigned hv_ps_state(hv_pstate_t v) { return v & 7u; }
static inline unsigned hv_ps_flags(hv_pstate_t v) { return v & 0xf8u; }
static inline uint32_t hv_ps_frame(hv_pstate_t v) { return v >> 8; }
static inline hv_pstate_t hv_ps_make(unsigned state, unsigned flags,
				     uint32_t frame)
{
	return (state & 7u) | (flags & 0xf8u) | (frame << 8);
}
#define HV_PS_FRAME_MAX ((1u << 24) - 1)

/* The map itself; *npages receives its length.  Never NULL for a VM. */
hv_pstate_t *hv_vm_pagemap(const struct hv_vm *vm, uint64_t *npages);
hv_pstate_t hv_page_get(const struct hv_vm *vm, uint64_t pfn);
/* Compare-and-swap one entry; true when it was `old` and is now `new`. */
bool hv_page_cas(struct hv_vm *vm, uint64_t pfn, hv_pstate_t old,
		 hv_pstate_t new);
/* Counts of pages per state over all RAM (for stats and self-checks). */
void hv_vm_page_counts(const struct hv_vm *vm, uint64_t counts[8]);

/* ---------------------------------------------------------- dirty log */

/* hv-core alone reads KVM's dirty log (reading clears it) and hands every
 * bit to each consumer that asked, once: one consumer's fetch never hides
 * a write from another. */
enum hv_dirty_consumer {
	HV_DIRTY_KSM,       /* the sharing scanner */
	HV_DIRTY_WSS,       /* the policy's working-set estimate */
	HV_DIRTY_NCONSUMERS
};

/* Turns one consumer's interest on or off; KVM logs while any is on. */
int hv_dirty_enable(struct hv_vm *vm, enum hv_dirty_consumer c, bool on);
/* Fetches and clears consumer c's dirty bitmap of one range (index into
 * hv_vm_ranges()).  bitmap has (len/4096 + 63)/64 words; bit i = page
 * gpa + i*4096 was written since c's last fetch (or its enable), by the
 * guest or through hv_dirty_mark().  -ENOENT while c is not enabled. */
int hv_dirty_fetch(struct hv_vm *vm, enum hv_dirty_consumer c, unsigned range,
		   uint64_t *bitmap);
/* Marks [gpa, gpa+len) dirty for the next hv_dirty_fetch(): KVM logs only
 * the guest's own writes; device models call this for theirs. */
void hv_dirty_mark(struct hv_vm *vm, uint64_t gpa, uint64_t len);

/* -------------------------------------------------------- pause/resume */

/* Kicks every vCPU out of KVM_RUN and waits until none runs guest code or
 * touches guest memory on the guest's behalf.  Nests: the VM runs again at
 * the last resume.  Returns the wall time it took, in ns. */
uint64_t hv_vm_pause(struct hv_vm *vm);
void hv_vm_resume(struct hv_vm *vm);

/* ------------------------------------------------------- backing change */

/* Maps [off, off+len) of memfd MAP_PRIVATE|MAP_FIXED over the guest range
 * [gpa, gpa+len), which must lie in one RAM range and be page aligned: the
 * guest then reads the memfd's pages and the kernel copy-on-writes on the
 * first write.  The caller makes it race-free (pause or write-protect). */
int hv_vm_replace_backing(struct hv_vm *vm, uint64_t gpa, uint64_t len,
			  int memfd, uint64_t off);
/* MADV_DONTNEED over the guest range: the pages read as zero (anonymous
 * RAM, or a run hv_vm_zero() mapped) or as the base memfd's pages (other
 * base-backed RAM) until written.  Never use it to give a page away: on
 * base-backed RAM base[g] may hold other VMs' data (see the invariant). */
int hv_vm_discard(struct hv_vm *vm, uint64_t gpa, uint64_t len);
/* Drops the private copies of the guest range and frees their memory; the
 * pages then read zero whatever the VM's backing, until written.  On
 * base-backed RAM it maps private anonymous memory over the run (one mmap;
 * zeroed neighbours merge into one VMA), or discards when the run is
 * anonymous already.  The caller owns the pages (HV_PF_BUSY or paused). */
int hv_vm_zero(struct hv_vm *vm, uint64_t gpa, uint64_t len);
/* True when the page at gpa of base-backed RAM is not mapped from the base
 * memfd at offset gpa now (hv_vm_zero or hv_vm_replace_backing put other
 * memory there): dropping its copy would not read base[g].  Always false
 * for anonymous RAM. */
bool hv_vm_page_off_base(const struct hv_vm *vm, uint64_t gpa);
/* True when private anonymous memory maps the page at gpa of base-backed
 * RAM (hv_vm_zero put it there): dropping its copy reads zero. */
bool hv_vm_page_anon(const struct hv_vm *vm, uint64_t gpa);
/* Many discards in one system call (process_madvise where the kernel has
 * it, else one madvise each).  Returns how many leading spans were
 * discarded; when fewer than n, *err says why span [return] failed. */
struct hv_span {
	uint64_t gpa, len;
};
unsigned hv_vm_discard_many(struct hv_vm *vm, const struct hv_span *s,
			    unsigned n, int *err);
/* The same for any host memory of this process (struct iovec ranges). */
struct iovec;
unsigned hv_dontneed_many(const struct iovec *iov, unsigned n, int *err);
/* Spans of some guest memory: to_hva gives a span's host address, or NULL
 * when it is not valid (that span fails with -EINVAL). */
unsigned hv_dontneed_spans(const struct hv_span *s, unsigned n,
			   void *(*to_hva)(void *ctx, uint64_t gpa,
					   uint64_t len),
			   void *ctx, int *err);
/* Maps the range's original backing back with MAP_FIXED (anonymous memory,
 * or the base memfd at offset GPA): the pages then read zero or the base
 * page.  Same rules as hv_vm_replace_backing (pause or write-protect). */
int hv_vm_restore_backing(struct hv_vm *vm, uint64_t gpa, uint64_t len);
/* Stores content into guest pages that were never touched, before the VM
 * runs, as the VM's own private copies (populate.c).  On base-backed RAM
 * a plain store would first allocate a zero page of the base memfd at
 * that GPA; this installs anonymous pages directly (userfaultfd
 * UFFDIO_COPY over the range, registered from begin to end), or copies
 * where that is unavailable (direct() says which), and marks them in the
 * dirty log.  No vCPU may touch the range between begin and end. */
struct hv_populate;
int hv_vm_populate_begin(struct hv_vm *vm, uint64_t gpa, uint64_t len,
			 struct hv_populate **out);
int hv_vm_populate(struct hv_populate *p, uint64_t gpa, const void *src,
		   uint64_t len);
bool hv_vm_populate_direct(const struct hv_populate *p);
void hv_vm_populate_end(struct hv_populate *p);
/* Number of VMAs in this process (/proc/self/maps lines), for reports. */
long hv_vma_count(void);

/* ------------------------------------------------------- write-protect */

/*
 * Write-protecting guest RAM while the vCPUs run (wp.c): userfaultfd in
 * write-protect mode.  A write into a protected page, a vCPU's or a host
 * thread's, waits inside the kernel until the page is unprotected and
 * then lands; nothing else stops.  Between a protect and its unprotect
 * the caller may compare the pages and change their backing (replace,
 * discard, zero): no write lands in a page that was compared, and a write
 * after the change lands on the new backing.  hv_vm_create() registers
 * guest RAM when the kernel and process can (hv_wp_supported) and the
 * config does not say no_write_protect; backing changes keep it
 * registered.  Without it, callers pause the VM.
 */
/* 0 when this kernel and process can, else -errno and why. */
int hv_wp_supported(char *why, size_t len);
bool hv_vm_wp_enabled(const struct hv_vm *vm, const char **why);
/* The writes that waited on an unprotect: how many, and the longest
 * wait (from when the handler read the fault to the unprotect). */
struct hv_wp_waits {
	uint64_t n, max_ns;
};
/* Protects the spans (page aligned, each in one RAM range), all or none:
 * 0, or -errno with nothing protected (-EOPNOTSUPP when RAM is not
 * registered).  Few system calls: one per span. */
int hv_vm_wp_protect(struct hv_vm *vm, const struct hv_span *s, unsigned n);
/* Unprotects the spans and wakes the writers waiting in them, also where
 * the backing changed meanwhile; w (may be NULL) gets their waits. */
int hv_vm_wp_unprotect(struct hv_vm *vm, const struct hv_span *s, unsigned n,
		       struct hv_wp_waits *w);

/* The same over any memory of this process, for memory that is not a
 * VM's (ksm's fake VMs): one userfaultfd, areas registered with
 * hv_wp_add (at most 8), spans [base + s.gpa, + s.len) inside them.
 * After mapping new memory over part of an area, hv_wp_register it. */
struct hv_wp;
int hv_wp_open(struct hv_wp **out, char *err, size_t errlen);
void hv_wp_close(struct hv_wp *wp);
int hv_wp_add(struct hv_wp *wp, void *hva, uint64_t len);
int hv_wp_register(struct hv_wp *wp, void *hva, uint64_t len);
int hv_wp_protect(struct hv_wp *wp, uint8_t *base, const struct hv_span *s,
		  unsigned n);
int hv_wp_unprotect(struct hv_wp *wp, uint8_t *base, const struct hv_span *s,
		    unsigned n, struct hv_wp_waits *w);
/* Faults seen; strays: faults on pages not protected then (a stale
 * protection, lifted by the handler at once); late: protects that found
 * memory not registered (a mapping whose hv_wp_register failed or was
 * not made) and registered it first. */
void hv_wp_counters(struct hv_wp *wp, uint64_t *faults, uint64_t *strays,
		    uint64_t *late);

/* ---------------------------------------------------------- hypercalls */

/* A device hypercall handler (nr >= HC_DEVICE_BASE).  `a` is the host's own
 * copy of the vCPU's argument page, already read once: validate everything
 * in it.  The return value becomes a->ret; handlers may also fill a->ret2
 * and a->data (a->ret2 is always copied back; a->data only when the
 * handler sets copy_back). */
typedef int64_t (*hv_hypercall_fn)(struct hv_vm *vm, unsigned cpu,
				   struct hv_argpage *a, bool *copy_back,
				   void *ctx);
int hv_vm_set_hypercall(struct hv_vm *vm, unsigned nr, hv_hypercall_fn fn,
			void *ctx);

/* Wakes the VM's vCPUs blocked in HC_WAIT or HC_READY. */
void hv_vm_notify(struct hv_vm *vm);
/* Blocks until some vCPU of the VM waits in HC_READY with this tag (or the
 * VM ends, or the timeout passes).  Returns 0 when it arrived. */
int hv_vm_wait_ready(struct hv_vm *vm, uint64_t tag, double timeout_s);

/* Counters for reports: hypercalls served, exits seen, bad hypercalls,
 * and the console lines (and their bytes, newlines counted) dropped over
 * the console budget. */
struct hv_vm_counters {
	uint64_t hypercalls;
	uint64_t exits;
	uint64_t bad_hypercalls;
	uint64_t pauses;
	uint64_t console_suppressed_bytes;
	uint64_t console_suppressed_lines;
	uint64_t wp_faults;     /* writes that hit write-protected RAM */
	uint64_t wp_strays;     /* ... on a page no longer protected */
	uint64_t wp_late_registers; /* protects that registered RAM first */
};
void hv_vm_counters(const struct hv_vm *vm, struct hv_vm_counters *c);

/* The last value the guest sent with HC_RESULT for key (< 16); false if
 * none came. */
bool hv_vm_result(struct hv_vm *vm, uint64_t key, uint64_t *value);
/* The same, and when it arrived (hv_now_ns); ns may be NULL.  A guest that
 * sends a running total on a period thus gives a rate. */
bool hv_vm_result_at(struct hv_vm *vm, uint64_t key, uint64_t *value,
		     uint64_t *ns);

#endif
