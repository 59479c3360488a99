/*
 * guest.h - the micro guest's one public interface.
 *
 * Owns: the runtime seen by workloads and by the in-guest balloon driver:
 * hypercall wrappers, console printf, the TSC clock, panic/exit, the page
 * allocator over guest RAM, "regions" (multi-page allocations addressed by
 * page index) and the balloon service calls.
 *
 * The micro guest runs at CPL3, in 64-bit mode, identity mapped (GPA ==
 * virtual address), with no IDT: any exception ends the VM.  So nothing here
 * may fault, and nothing may issue a hypercall per page (each port-I/O exit
 * costs ~28 us on this machine).
 *
 * This header is also compiled by host unit tests (tests/unit/) that include
 * palloc.c/region.c directly: keep it free of libc and of anything that only
 * works inside the guest at file scope (static inline asm helpers are fine,
 * they are only emitted when used).
 */
#ifndef DENSEVM_GUEST_H
#define DENSEVM_GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hv_abi.h"

#define GUEST_PAGE_SIZE   4096ULL
#define GUEST_PAGE_SHIFT  12
#define GUEST_2M_PAGES    512ULL        /* 4 KiB pages in a 2 MiB block */
#define GUEST_2M_SIZE     (2ULL << 20)

/* Exit statuses (also documented in README.md and patterns.h). */
#define GUEST_EXIT_OK        0
#define GUEST_EXIT_BADARGS   2
#define GUEST_EXIT_MISMATCH  3
#define GUEST_EXIT_NOMEM     4
#define GUEST_EXIT_BADBOOT   90
#define GUEST_EXIT_PANIC     99

/* ------------------------------------------------------------ CPU helpers */

/*
 * The current vCPU's index, derived from the stack pointer: vCPU n's stack
 * is [HV_STACK_TOP_GPA - (n+1)*HV_STACK_SIZE, HV_STACK_TOP_GPA - n*SIZE)
 * and rsp is strictly below the top once _start has called into C.  This
 * needs no TLS and no argument threading.
 */
static inline unsigned guest_cpu(void)
{
	uint64_t sp;
	__asm__ volatile("mov %%rsp, %0" : "=r"(sp));
	return (unsigned)((HV_STACK_TOP_GPA - 1 - sp) / HV_STACK_SIZE);
}

static inline uint64_t guest_rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

/* rdtsc that does not start before earlier instructions finished. */
static inline uint64_t guest_rdtsc_ordered(void)
{
	__asm__ volatile("lfence" ::: "memory");
	return guest_rdtsc();
}

static inline void guest_cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}

/* Compiler barrier: memory may have changed behind the compiler's back
 * (the host, another vCPU); forces reloads, keeps stores. */
static inline void guest_barrier(void)
{
	__asm__ volatile("" ::: "memory");
}

/* ---------------------------------------------------------- the boot info */

/* The host's boot-info page (read-only by convention; validated at boot). */
static inline const struct hv_bootinfo *guest_bootinfo(void)
{
	return (const struct hv_bootinfo *)(uintptr_t)HV_BOOTINFO_GPA;
}
unsigned guest_ncpus(void);          /* bootinfo.ncpus, after validation */

/* -------------------------------------------------------------- hypercalls */

/* Generic call on this vCPU's argument page; returns the page's `ret`.
 * If ret2 is not NULL it receives the page's `ret2`. */
int64_t hc_call(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t *ret2);
/* The same with all five arguments (device calls such as HC_BALLOON). */
int64_t hc_call5(uint64_t nr, const uint64_t a[5], uint64_t *ret2);
void hc_console(const char *s, size_t len);   /* len clipped to the page */
uint64_t hc_time(void);                       /* host CLOCK_MONOTONIC ns */
int64_t hc_wait(uint64_t timeout_ns);         /* 1 = notified, 0 = timeout */
#define HC_WAIT_FOREVER (~0ULL)               /* hc_wait: until notified */
void hc_nop(void);
int64_t hc_ready(uint64_t tag);               /* blocks until released */
void hc_result(uint64_t key, uint64_t value);
/* Flushes this vCPU's console line, says HC_EXIT and never returns. */
__attribute__((noreturn)) void guest_exit(int status);
/* Ends the VM on purpose: a store to a non-canonical address raises #GP,
 * which (no IDT) becomes a triple fault, KVM_EXIT_SHUTDOWN on the host. */
__attribute__((noreturn)) void guest_fault(void);

/* ----------------------------------------------------------------- console */

/*
 * printf subset: %d %i %u %x %X %s %c %p %% with l/ll/z modifiers, '-' and
 * '0' flags and a decimal width.  Output is buffered per vCPU and sent with
 * one HC_CONSOLE per line ('\n' included) or when the buffer fills.
 */
__attribute__((format(printf, 1, 2))) void gprintf(const char *fmt, ...);
void gvprintf(const char *fmt, va_list ap);
__attribute__((format(printf, 3, 4)))
int gsnprintf(char *buf, size_t size, const char *fmt, ...);
void console_flush(void);                     /* this vCPU's partial line */
/* Prints "panic: ..." and exits with GUEST_EXIT_PANIC. */
__attribute__((noreturn, format(printf, 1, 2))) void gpanic(const char *fmt, ...);

/* -------------------------------------------------------------------- time */

void time_init(void);                 /* vCPU 0 at boot: TSC frequency */
uint64_t now_ns(void);                /* ns since time_init, from the TSC */
uint64_t tsc_to_ns(uint64_t cycles);
uint64_t tsc_khz(void);
/* Sleeps in HC_WAIT (not spinning) until ns have passed; the balloon is
 * served meanwhile (guest_wait). */
void sleep_ns(uint64_t ns);

/* --------------------------------------------------------- string helpers */

#if !__STDC_HOSTED__
void *memset(void *s, int c, size_t n);
void *memcpy(void *restrict d, const void *restrict s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
#endif
int gstrcmp(const char *a, const char *b);
/* Parses a whole decimal (optionally negative) or 0x-hex integer. */
bool parse_i64(const char *s, int64_t *out);

/* --------------------------------------------------------- page allocator */

/*
 * A bitmap page allocator over the heap: bootinfo.ranges minus everything
 * below bootinfo.heap_start.  The bitmap (1 bit per 4 KiB page of
 * [align_down(heap_start, 2 MiB), highest RAM end), 1 = not available) sits
 * at the start of the heap.  Pages come back as GPAs (== pointers), not
 * zeroed: fresh RAM reads zero, freed pages keep their content.
 * All functions are safe to call from any vCPU (one spinlock).
 * Allocation functions return 0 on failure.
 */
int palloc_init(const struct hv_memrange *ranges, unsigned nranges,
		uint64_t heap_start);          /* 0, or -1 (see palloc_error) */
const char *palloc_error(void);
uint64_t palloc_alloc_page(void);
int palloc_free_page(uint64_t gpa);    /* 0, or -1 if not allocated */
uint64_t palloc_alloc_2m(void);        /* 2 MiB aligned block */
int palloc_free_2m(uint64_t gpa);
/* npages contiguous pages aligned to align_pages (a power of two). */
uint64_t palloc_alloc_contig(uint64_t npages, uint64_t align_pages);
/* As above but never calls the pressure hook. */
uint64_t palloc_try_contig(uint64_t npages, uint64_t align_pages);
int palloc_free_pages(uint64_t gpa, uint64_t npages);
/* Takes the pages [gpa, gpa + npages) at that address (content the host
 * put there, e.g. a RAM image): 0, or -1 and nothing taken when any of
 * them is in use or not heap. */
int palloc_take(uint64_t gpa, uint64_t npages);
uint64_t palloc_free_count(void);      /* free 4 KiB pages */
uint64_t palloc_total_count(void);     /* heap pages, bitmap included */
uint64_t palloc_meta_end(void);        /* GPA just past the bitmap */
bool palloc_page_busy(uint64_t gpa);   /* allocated or not heap (tests) */
/* Calls the pressure hook (if any) for npages; returns its result. */
int palloc_pressure(uint64_t npages_needed);
/*
 * Free page reporting: takes out of the allocator up to `max` whole free
 * 2 MiB blocks that were handed out (by any allocation) since they were
 * last claimed here, as long as more than `keep` pages stay free; stores
 * their GPAs and returns how many.  The caller reports them and gives them
 * back with palloc_free_2m(); meanwhile nobody else can be handed them.
 */
unsigned palloc_claim_reportable(uint64_t *gpas, unsigned max, uint64_t keep);

/*
 * Called (without the allocator lock) before an allocation would fail; the
 * balloon driver sets it to deflate.  Returns >0 if it freed something, and
 * the allocation is then retried once.
 */
extern int (*guest_alloc_pressure_hook)(uint64_t npages_needed);

/* ----------------------------------------------------------------- balloon */

/*
 * balloon.c: the balloon driver (balloon-driver/ core) in the micro guest.
 * It is on when the host announced the device (HV_FEAT_BALLOON in the boot
 * info).  The guest has no interrupts, so the driver runs when the guest
 * calls in: busy loops call guest_service() often (it costs a TSC read and
 * one memory read unless the host changed the config page or a timer is
 * due), and every wait goes through guest_wait().  A target change thus
 * starts inflating within one service interval of a busy loop, or at once
 * for a guest blocked in guest_wait() (the host's notify wakes HC_WAIT).
 */
void guest_balloon_init(void);       /* vCPU 0 at boot, after palloc_init */
bool guest_balloon_active(void);
/* false: inflate with 4 KiB pages only (the default is 2 MiB blocks first) */
void guest_balloon_set_huge(bool on);
void guest_service(void);
/* Every how many pages a busy loop calls guest_service(): 64 pages are
 * ~50-200 us of work, far below the 100 ms a target change may take. */
#define GUEST_SERVICE_PAGES 64
static inline void guest_service_every(uint64_t i)
{
	if ((i & (GUEST_SERVICE_PAGES - 1)) == 0)
		guest_service();
}
/* hc_wait(timeout_ns) that serves the balloon first and wakes for its
 * timers; it may return early, so callers wait in a loop on their clock. */
void guest_wait(uint64_t timeout_ns);

/* ----------------------------------------------------------------- regions */

/*
 * A region is npages of guest RAM addressed by page index 0..npages-1, made
 * of a few contiguous extents.  region_alloc takes whole 2 MiB blocks first
 * (so a region starts 2 MiB aligned and its layout does not depend on the
 * RAM size) and returns the unused tail of the last block; only when no
 * block is left does it take smaller runs.  Nothing is allocated on failure.
 */
#define GREGION_MAX_EXT 32

struct gextent {
	uint64_t gpa;
	uint64_t npages;
};

struct gregion {
	uint64_t npages;
	unsigned next;
	struct gextent ext[GREGION_MAX_EXT];
};

int region_alloc(struct gregion *r, uint64_t npages);   /* 0 or -1 */
void region_free(struct gregion *r);
uint64_t region_page_gpa(const struct gregion *r, uint64_t index);
static inline bool region_contiguous(const struct gregion *r)
{
	return r->next == 1;
}

#endif
