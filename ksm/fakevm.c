/*
 * fakevm.c - fake VMs for ksm's unit tests and benchmarks (ksm_fake.h).
 *
 * Pause protocol (Dekker-style, sequentially consistent atomics): a vCPU
 * announces itself in `running`, then checks `pause_req`; the pauser
 * raises `pause_req`, then waits for `running` to drain.  Either the
 * vCPU sees the request and backs out, or the pauser sees the vCPU and
 * waits for it: no access is ever in flight while pause() has returned.
 * The dirty bit is set after the write, as KVM re-arms write protection
 * on fetch, so a fetch never clears the bit of a write still landing.
 *
 * With write-protect on (ksm_fake_vm_enable_wp) the RAM is registered
 * with hv-core's userfaultfd write-protect like a real VM's, and a
 * writer thread's store into a protected page waits in the kernel as a
 * vCPU's does; every mapping f_replace/f_zero make is registered again.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "ksm_fake.h"

#define FAKE_MAX_RANGES 8
#define PG 4096ULL

struct ksm_fake_vm {
	char name[64];
	int base_fd;
	unsigned n;
	struct hv_ram_range rr[FAKE_MAX_RANGES];
	uint64_t *dirty[FAKE_MAX_RANGES];
	uint64_t *anon[FAKE_MAX_RANGES];   /* f_zero mapped anonymous memory */
	hv_pstate_t *map;
	uint64_t map_npages;
	atomic_int pause_req;
	atomic_int running;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_ullong pauses;
	struct hv_wp *wp;    /* NULL: write-protect not enabled */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int ksm_fake_vm_create(const char *name, int base_fd,
		       const struct ksm_fake_range *r, unsigned n,
		       struct ksm_fake_vm **out)
{
	struct ksm_fake_vm *vm;
	uint64_t end = 0;
	struct stat st;
	unsigned i;

	*out = NULL;
	if (!n || n > FAKE_MAX_RANGES)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if ((r[i].gpa | r[i].len) % PG || !r[i].len)
			return -EINVAL;
		if (r[i].gpa + r[i].len > end)
			end = r[i].gpa + r[i].len;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	snprintf(vm->name, sizeof(vm->name), "%s", name ? name : "fake");
	vm->base_fd = base_fd;
	vm->n = n;
	pthread_mutex_init(&vm->mu, NULL);
	pthread_cond_init(&vm->cv, NULL);
	if (base_fd >= 0 && fstat(base_fd, &st) == 0 &&
	    (uint64_t)st.st_size < end && ftruncate(base_fd, (off_t)end) != 0)
		goto fail;
	vm->map_npages = end / PG;
	vm->map = mmap(NULL, vm->map_npages * sizeof(hv_pstate_t),
		       PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->map == MAP_FAILED) {
		vm->map = NULL;
		goto fail;
	}
	for (i = 0; i < n; i++) {
		void *p;

		if (base_fd >= 0)
			p = mmap(NULL, r[i].len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_NORESERVE, base_fd,
				 (off_t)r[i].gpa);
		else
			p = mmap(NULL, r[i].len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
				 -1, 0);
		if (p == MAP_FAILED)
			goto fail;
		vm->rr[i] = (struct hv_ram_range){ r[i].gpa, r[i].len, p, i };
		vm->dirty[i] = calloc((r[i].len / PG + 63) / 64,
				      sizeof(uint64_t));
		vm->anon[i] = calloc((r[i].len / PG + 63) / 64,
				     sizeof(uint64_t));
		if (!vm->dirty[i] || !vm->anon[i])
			goto fail;
	}
	*out = vm;
	return 0;
fail:
	ksm_fake_vm_destroy(vm);
	return -ENOMEM;
}

void ksm_fake_vm_destroy(struct ksm_fake_vm *vm)
{
	unsigned i;

	if (!vm)
		return;
	hv_wp_close(vm->wp);
	for (i = 0; i < vm->n; i++) {
		if (vm->rr[i].hva)
			munmap(vm->rr[i].hva, vm->rr[i].len);
		free(vm->dirty[i]);
		free(vm->anon[i]);
	}
	if (vm->map)
		munmap(vm->map, vm->map_npages * sizeof(hv_pstate_t));
	pthread_cond_destroy(&vm->cv);
	pthread_mutex_destroy(&vm->mu);
	free(vm);
}

static int locate(struct ksm_fake_vm *vm, uint64_t gpa, uint64_t len)
{
	unsigned i;

	for (i = 0; i < vm->n; i++)
		if (gpa >= vm->rr[i].gpa &&
		    gpa + len <= vm->rr[i].gpa + vm->rr[i].len)
			return (int)i;
	return -1;
}

uint8_t *ksm_fake_hva(struct ksm_fake_vm *vm, uint64_t gpa)
{
	int i = locate(vm, gpa, 1);

	return i < 0 ? NULL : vm->rr[i].hva + (gpa - vm->rr[i].gpa);
}

hv_pstate_t ksm_fake_page_state(struct ksm_fake_vm *vm, uint64_t gpa)
{
	return __atomic_load_n(&vm->map[gpa / PG], __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------------- vCPUs */

void ksm_fake_vcpu_enter(struct ksm_fake_vm *vm)
{
	for (;;) {
		if (atomic_load(&vm->pause_req)) {
			pthread_mutex_lock(&vm->mu);
			while (atomic_load(&vm->pause_req))
				pthread_cond_wait(&vm->cv, &vm->mu);
			pthread_mutex_unlock(&vm->mu);
			continue;
		}
		atomic_fetch_add(&vm->running, 1);
		if (!atomic_load(&vm->pause_req))
			return;
		atomic_fetch_sub(&vm->running, 1);   /* back out */
	}
}

void ksm_fake_vcpu_exit(struct ksm_fake_vm *vm)
{
	atomic_fetch_sub(&vm->running, 1);
}

void ksm_fake_mark_dirty(struct ksm_fake_vm *vm, uint64_t gpa, uint64_t len)
{
	uint64_t p, first, last;
	int i = locate(vm, gpa, len ? len : 1);

	if (i < 0 || !len)
		return;
	first = (gpa - vm->rr[i].gpa) / PG;
	last = (gpa + len - 1 - vm->rr[i].gpa) / PG;
	for (p = first; p <= last; p++)
		__atomic_fetch_or(&vm->dirty[i][p / 64], 1ULL << (p % 64),
				  __ATOMIC_RELEASE);
}

void ksm_fake_write(struct ksm_fake_vm *vm, uint64_t gpa, const void *src,
		    size_t len)
{
	uint8_t *p = ksm_fake_hva(vm, gpa);

	if (!p)
		return;
	ksm_fake_vcpu_enter(vm);
	memcpy(p, src, len);
	ksm_fake_mark_dirty(vm, gpa, len);
	ksm_fake_vcpu_exit(vm);
}

/* A page's worth of 64-bit words from a seed; seed 0 is the zero page. */
void ksm_fake_pattern(void *page, uint64_t seed)
{
	uint64_t *w = page, x = seed;
	unsigned i;

	if (!seed) {
		memset(page, 0, PG);
		return;
	}
	for (i = 0; i < PG / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w[i] = x + i;
	}
}

void ksm_fake_fill_pages(struct ksm_fake_vm *vm, uint64_t gpa,
			 uint64_t npages, uint64_t seed)
{
	uint8_t buf[4096] __attribute__((aligned(64)));
	uint64_t i;

	ksm_fake_pattern(buf, seed);
	for (i = 0; i < npages; i++)
		ksm_fake_write(vm, gpa + i * PG, buf, PG);
}

int ksm_fake_vm_enable_wp(struct ksm_fake_vm *vm, char *err, size_t errlen)
{
	int rc = hv_wp_open(&vm->wp, err, errlen);

	for (unsigned i = 0; !rc && i < vm->n; i++)
		if ((rc = hv_wp_add(vm->wp, vm->rr[i].hva, vm->rr[i].len)))
			snprintf(err, errlen, "UFFDIO_REGISTER: %s",
				 strerror(-rc));
	if (rc) {
		hv_wp_close(vm->wp);
		vm->wp = NULL;
	}
	return rc;
}

uint64_t ksm_fake_pauses(struct ksm_fake_vm *vm)
{
	return atomic_load(&vm->pauses);
}

long ksm_fake_vma_count(struct ksm_fake_vm *vm)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	long n = 0;
	unsigned i;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (sscanf(line, "%lx-%lx", &s, &e) != 2)
			continue;
		for (i = 0; i < vm->n; i++) {
			uintptr_t a = (uintptr_t)vm->rr[i].hva;

			if (e > a && s < a + vm->rr[i].len) {
				n++;
				break;
			}
		}
	}
	fclose(f);
	return n;
}

/* ---------------------------------------------------------------- ops */

static const char *f_name(void *ctx)
{
	return ((struct ksm_fake_vm *)ctx)->name;
}

static const struct hv_ram_range *f_ranges(void *ctx, unsigned *n)
{
	struct ksm_fake_vm *vm = ctx;

	*n = vm->n;
	return vm->rr;
}

static hv_pstate_t *f_pagemap(void *ctx, uint64_t *npages)
{
	struct ksm_fake_vm *vm = ctx;

	*npages = vm->map_npages;
	return vm->map;
}

static bool f_page_cas(void *ctx, uint64_t pfn, hv_pstate_t old,
		       hv_pstate_t new_)
{
	struct ksm_fake_vm *vm = ctx;

	if (pfn >= vm->map_npages)
		return false;
	return __atomic_compare_exchange_n(&vm->map[pfn], &old, new_, false,
					   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static uint64_t f_pause(void *ctx)
{
	struct ksm_fake_vm *vm = ctx;
	uint64_t t0 = now_ns();

	atomic_fetch_add(&vm->pause_req, 1);
	while (atomic_load(&vm->running))
		sched_yield();
	atomic_fetch_add(&vm->pauses, 1);
	return now_ns() - t0;
}

static void f_resume(void *ctx)
{
	struct ksm_fake_vm *vm = ctx;

	pthread_mutex_lock(&vm->mu);
	atomic_fetch_sub(&vm->pause_req, 1);
	pthread_cond_broadcast(&vm->cv);
	pthread_mutex_unlock(&vm->mu);
}

static void set_anon(struct ksm_fake_vm *vm, uint64_t gpa, uint64_t len,
		     bool on)
{
	int i = locate(vm, gpa, len);
	uint64_t pg;

	for (pg = (gpa - vm->rr[i].gpa) / PG; len; pg++, len -= PG)
		if (on)
			vm->anon[i][pg / 64] |= 1ULL << (pg % 64);
		else
			vm->anon[i][pg / 64] &= ~(1ULL << (pg % 64));
}

static int f_replace(void *ctx, uint64_t gpa, uint64_t len, int memfd,
		     uint64_t off)
{
	struct ksm_fake_vm *vm = ctx;
	uint8_t *p;

	if ((gpa | len | off) % PG || locate(vm, gpa, len) < 0)
		return -EINVAL;
	p = ksm_fake_hva(vm, gpa);
	if (mmap(p, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, memfd,
		 (off_t)off) == MAP_FAILED)
		return -errno;
	if (vm->wp)
		hv_wp_register(vm->wp, p, len);
	set_anon(vm, gpa, len, false);
	return 0;
}

static int f_discard(void *ctx, uint64_t gpa, uint64_t len)
{
	struct ksm_fake_vm *vm = ctx;

	if ((gpa | len) % PG || locate(vm, gpa, len) < 0)
		return -EINVAL;
	return madvise(ksm_fake_hva(vm, gpa), len, MADV_DONTNEED) ? -errno : 0;
}

/* Zeros of its own over a range, as hv-core maps anonymous memory over
 * base-backed RAM (hv_vm_zero) */
static int f_zero(void *ctx, uint64_t gpa, uint64_t len)
{
	struct ksm_fake_vm *vm = ctx;

	if ((gpa | len) % PG || !len || locate(vm, gpa, len) < 0)
		return -EINVAL;
	if (mmap(ksm_fake_hva(vm, gpa), len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1,
		 0) == MAP_FAILED)
		return -errno;
	if (vm->wp)
		hv_wp_register(vm->wp, ksm_fake_hva(vm, gpa), len);
	set_anon(vm, gpa, len, vm->base_fd >= 0);
	return 0;
}

static bool f_anon_backed(void *ctx, uint64_t gpa)
{
	struct ksm_fake_vm *vm = ctx;
	int i = locate(vm, gpa, 1);
	uint64_t pg;

	if (i < 0)
		return false;
	pg = (gpa - vm->rr[i].gpa) / PG;
	return (vm->anon[i][pg / 64] >> (pg % 64)) & 1;
}

/* hv_vm_page_off_base: the page of base-backed RAM is not mapped from the
 * base at offset GPA.  Here only f_zero maps other memory; the frames ksm
 * maps it knows itself (KP_REMAPPED).  Without this, a discard meant to
 * read base[g] would read f_zero's zeros. */
static bool f_off_base(void *ctx, uint64_t gpa)
{
	struct ksm_fake_vm *vm = ctx;

	return vm->base_fd >= 0 && f_anon_backed(ctx, gpa);
}

static void *f_span_hva(void *ctx, uint64_t gpa, uint64_t len)
{
	struct ksm_fake_vm *vm = ctx;

	if ((gpa | len) % PG || !len || locate(vm, gpa, len) < 0)
		return NULL;
	return ksm_fake_hva(vm, gpa);
}

static unsigned f_discard_many(void *ctx, const struct hv_span *s,
			       unsigned n, int *err)
{
	return hv_dontneed_spans(s, n, f_span_hva, ctx, err);
}

static int f_dirty_enable(void *ctx, bool on)
{
	(void)ctx;
	(void)on;
	return 0;
}

static int f_dirty_fetch(void *ctx, unsigned range, uint64_t *bitmap)
{
	struct ksm_fake_vm *vm = ctx;
	uint64_t w, nw;

	if (range >= vm->n)
		return -EINVAL;
	nw = (vm->rr[range].len / PG + 63) / 64;
	for (w = 0; w < nw; w++)
		bitmap[w] = __atomic_exchange_n(&vm->dirty[range][w], 0,
						__ATOMIC_ACQ_REL);
	return 0;
}

static int f_base_memfd(void *ctx)
{
	return ((struct ksm_fake_vm *)ctx)->base_fd;
}

/* GPA spans as host-address spans (base NULL) for hv_wp_*. */
static struct hv_span *host_spans(struct ksm_fake_vm *vm,
				  const struct hv_span *s, unsigned n)
{
	struct hv_span *h = malloc((n ? n : 1) * sizeof(*h));

	for (unsigned i = 0; h && i < n; i++) {
		uint8_t *p = f_span_hva(vm, s[i].gpa, s[i].len);

		if (!p) {
			free(h);
			return NULL;
		}
		h[i] = (struct hv_span){ (uintptr_t)p, s[i].len };
	}
	return h;
}

static int f_wp_protect(void *ctx, const struct hv_span *s, unsigned n)
{
	struct ksm_fake_vm *vm = ctx;
	struct hv_span *h;
	int rc;

	if (!vm->wp)
		return -EOPNOTSUPP;
	if (!(h = host_spans(vm, s, n)))
		return -EINVAL;
	rc = hv_wp_protect(vm->wp, NULL, h, n);
	free(h);
	return rc;
}

static int f_wp_unprotect(void *ctx, const struct hv_span *s, unsigned n,
			  struct hv_wp_waits *w)
{
	struct ksm_fake_vm *vm = ctx;
	struct hv_span *h;
	int rc;

	if (w)
		w->n = w->max_ns = 0;
	if (!vm->wp)
		return -EOPNOTSUPP;
	if (!(h = host_spans(vm, s, n)))
		return -EINVAL;
	rc = hv_wp_unprotect(vm->wp, NULL, h, n, w);
	free(h);
	return rc;
}

#define FAKE_OPS							\
	.name = f_name, .ranges = f_ranges, .pagemap = f_pagemap,	\
	.page_cas = f_page_cas, .pause = f_pause, .resume = f_resume,	\
	.replace_backing = f_replace, .discard = f_discard,		\
	.discard_many = f_discard_many, .dirty_enable = f_dirty_enable,	\
	.dirty_fetch = f_dirty_fetch, .base_memfd = f_base_memfd

const struct ksm_vm_ops ksm_fake_ops = { FAKE_OPS };
const struct ksm_vm_ops ksm_fake_ops_zero = { FAKE_OPS, .zero = f_zero,
					       .anon_backed = f_anon_backed,
					       .off_base = f_off_base };
const struct ksm_vm_ops ksm_fake_ops_wp = { FAKE_OPS, .zero = f_zero,
					     .anon_backed = f_anon_backed,
					     .off_base = f_off_base,
					     .wp_protect = f_wp_protect,
					     .wp_unprotect = f_wp_unprotect };
