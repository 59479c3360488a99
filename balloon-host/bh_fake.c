/*
 * bh_fake.c - a fake VM behind struct bh_backend, for tests and fuzzing.
 *
 * Owns: RAM ranges mmap'd in this process (anonymous, or MAP_PRIVATE of a
 * memfd filled with BH_FAKE_PATTERN to mimic hv-core's base-memfd RAM, where
 * a plain discard would revert to the base page and zeroing must not), a
 * page-state map per range,
 * a manual clock and counters.  It needs no KVM and no hv-core library.
 *
 * It is stricter than hv-core on purpose: a page-state lookup or a zeroing
 * outside RAM aborts, so a device that skipped a range check fails loudly
 * in the unit tests and under the fuzzer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "bh_internal.h"

struct bh_fake_ram {
	uint64_t gpa, len;
	uint8_t *hva;
	hv_pstate_t *map;
};

struct bh_fake {
	unsigned n;
	struct bh_fake_ram r[BH_MAX_RANGES];
	bool base;
	int memfd;
	uint64_t gpa_end;
	uint64_t discards, notifies, now;
	bool fail_discard;
};

static struct bh_fake_ram *find(struct bh_fake *f, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < f->n; i++) {
		struct bh_fake_ram *r = &f->r[i];
		if (gpa >= r->gpa && gpa - r->gpa < r->len && len <= r->len - (gpa - r->gpa))
			return r;
	}
	return NULL;
}

static void *fk_gpa_to_hva(void *ctx, uint64_t gpa, uint64_t len)
{
	struct bh_fake_ram *r = find(ctx, gpa, len ? len : 1);
	return r ? r->hva + (gpa - r->gpa) : NULL;
}

static hv_pstate_t *slot(struct bh_fake *f, uint64_t pfn)
{
	struct bh_fake_ram *r;
	if (pfn > UINT64_MAX / BALLOON_PAGE_SIZE ||
	    !(r = find(f, pfn * BALLOON_PAGE_SIZE, BALLOON_PAGE_SIZE))) {
		fprintf(stderr, "bh_fake: page-state access outside RAM: pfn 0x%llx\n",
			(unsigned long long)pfn);
		abort();
	}
	return &r->map[(pfn * BALLOON_PAGE_SIZE - r->gpa) / BALLOON_PAGE_SIZE];
}

static hv_pstate_t fk_get(void *ctx, uint64_t pfn)
{
	return __atomic_load_n(slot(ctx, pfn), __ATOMIC_ACQUIRE);
}

static bool fk_cas(void *ctx, uint64_t pfn, hv_pstate_t old, hv_pstate_t new)
{
	return __atomic_compare_exchange_n(slot(ctx, pfn), &old, new, false,
					   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* hv_vm_zero's contract: the pages read zero afterwards, base or not. */
static int fk_zero(void *ctx, uint64_t gpa, uint64_t len)
{
	struct bh_fake *f = ctx;
	struct bh_fake_ram *r = find(f, gpa, len);
	uint8_t *hva;
	if (!r || (gpa | len) & (BALLOON_PAGE_SIZE - 1)) {
		fprintf(stderr, "bh_fake: zeroing outside RAM: 0x%llx+0x%llx\n",
			(unsigned long long)gpa, (unsigned long long)len);
		abort();
	}
	if (f->fail_discard)
		return -EIO;
	f->discards++;
	hva = r->hva + (gpa - r->gpa);
	if (f->base)
		return mmap(hva, len, PROT_READ | PROT_WRITE, MAP_PRIVATE |
			    MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) ==
		       MAP_FAILED ? -errno : 0;
	return madvise(hva, len, MADV_DONTNEED) < 0 ? -errno : 0;
}

static void fk_notify(void *ctx)
{
	((struct bh_fake *)ctx)->notifies++;
}

static uint64_t fk_now(void *ctx)
{
	return ((struct bh_fake *)ctx)->now;
}

/* Fills [off, off+len) of the memfd with the pattern, 1 MiB at a time. */
static int fill_base(int fd, uint64_t off, uint64_t len)
{
	const size_t csz = 1 << 20;
	uint8_t *chunk = malloc(csz);
	int rc = 0;
	if (!chunk)
		return -1;
	memset(chunk, BH_FAKE_PATTERN, csz);
	while (len && rc == 0) {
		size_t n = len < csz ? (size_t)len : csz;
		if (pwrite(fd, chunk, n, (off_t)off) != (ssize_t)n)
			rc = -1;
		off += n;
		len -= n;
	}
	free(chunk);
	return rc;
}

struct bh_fake *bh_fake_create(const struct bh_fake_range *rr, unsigned n,
			       bool base_backed)
{
	struct bh_fake *f;
	if (n == 0 || n > BH_MAX_RANGES)
		return NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->memfd = -1;
	f->base = base_backed;
	f->now = 1000000000ULL;
	for (unsigned i = 0; i < n; i++)
		if (rr[i].gpa + rr[i].len > f->gpa_end)
			f->gpa_end = rr[i].gpa + rr[i].len;
	if (base_backed) {
		f->memfd = memfd_create("bh_fake_base", 0);
		if (f->memfd < 0 || ftruncate(f->memfd, (off_t)f->gpa_end) < 0)
			goto fail;
	}
	for (unsigned i = 0; i < n; i++) {
		struct bh_fake_ram *r = &f->r[i];
		void *p;
		if ((rr[i].gpa | rr[i].len) & (BALLOON_PAGE_SIZE - 1) || !rr[i].len)
			goto fail;
		r->gpa = rr[i].gpa;
		r->len = rr[i].len;
		f->n = i + 1;
		if (base_backed) {
			if (fill_base(f->memfd, r->gpa, r->len) < 0)
				goto fail;
			p = mmap(NULL, r->len, PROT_READ | PROT_WRITE, MAP_PRIVATE,
				 f->memfd, (off_t)r->gpa);
		} else {
			p = mmap(NULL, r->len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		}
		if (p == MAP_FAILED)
			goto fail;
		r->hva = p;
		r->map = calloc(r->len / BALLOON_PAGE_SIZE, sizeof(hv_pstate_t));
		if (!r->map)
			goto fail;
	}
	return f;
fail:
	bh_fake_destroy(f);
	return NULL;
}

void bh_fake_destroy(struct bh_fake *f)
{
	if (!f)
		return;
	for (unsigned i = 0; i < f->n; i++) {
		if (f->r[i].hva)
			munmap(f->r[i].hva, f->r[i].len);
		free(f->r[i].map);
	}
	if (f->memfd >= 0)
		close(f->memfd);
	free(f);
}

void bh_fake_backend(struct bh_fake *f, struct bh_backend *be)
{
	memset(be, 0, sizeof(*be));
	be->ctx = f;
	be->gpa_to_hva = fk_gpa_to_hva;
	be->page_get = fk_get;
	be->page_cas = fk_cas;
	be->zero = fk_zero;
	be->notify = fk_notify;
	be->now_ns = fk_now;
	be->gpa_end = f->gpa_end;
	be->name = "fake";
	be->nranges = f->n;
	for (unsigned i = 0; i < f->n; i++) {
		be->ranges[i].gpa = f->r[i].gpa;
		be->ranges[i].len = f->r[i].len;
		be->mem_bytes += f->r[i].len;
	}
}

void bh_fake_reset(struct bh_fake *f)
{
	for (unsigned i = 0; i < f->n; i++) {
		if (f->base)   /* the base mapping back over zeroed runs */
			mmap(f->r[i].hva, f->r[i].len, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_FIXED, f->memfd, (off_t)f->r[i].gpa);
		else
			madvise(f->r[i].hva, f->r[i].len, MADV_DONTNEED);
		memset(f->r[i].map, 0, f->r[i].len / BALLOON_PAGE_SIZE * sizeof(hv_pstate_t));
	}
	f->discards = f->notifies = 0;
	f->fail_discard = false;
}

void *bh_fake_hva(struct bh_fake *f, uint64_t gpa)
{
	return fk_gpa_to_hva(f, gpa, 1);
}

hv_pstate_t bh_fake_get(struct bh_fake *f, uint64_t pfn) { return fk_get(f, pfn); }
void bh_fake_set(struct bh_fake *f, uint64_t pfn, hv_pstate_t v)
{
	__atomic_store_n(slot(f, pfn), v, __ATOMIC_RELEASE);
}

uint64_t bh_fake_count_state(struct bh_fake *f, unsigned state)
{
	uint64_t c = 0;
	for (unsigned i = 0; i < f->n; i++)
		for (uint64_t p = 0; p < f->r[i].len / BALLOON_PAGE_SIZE; p++)
			c += hv_ps_state(f->r[i].map[p]) == state;
	return c;
}

uint64_t bh_fake_count_flag(struct bh_fake *f, unsigned flag)
{
	uint64_t c = 0;
	for (unsigned i = 0; i < f->n; i++)
		for (uint64_t p = 0; p < f->r[i].len / BALLOON_PAGE_SIZE; p++)
			c += (hv_ps_flags(f->r[i].map[p]) & flag) != 0;
	return c;
}

void bh_fake_census(struct bh_fake *f, uint64_t states[8], uint64_t flags[8])
{
	for (int i = 0; i < 8; i++)
		states[i] = flags[i] = 0;
	for (unsigned i = 0; i < f->n; i++) {
		for (uint64_t p = 0; p < f->r[i].len / BALLOON_PAGE_SIZE; p++) {
			hv_pstate_t v = f->r[i].map[p];
			states[hv_ps_state(v)]++;
			if (hv_ps_flags(v))        /* rare: keep the loop cheap */
				for (int b = 3; b < 8; b++)
					flags[b] += (v >> b) & 1;
		}
	}
}

uint64_t bh_fake_discards(struct bh_fake *f) { return f->discards; }
uint64_t bh_fake_notifies(struct bh_fake *f) { return f->notifies; }
void bh_fake_fail_discard(struct bh_fake *f, bool fail) { f->fail_discard = fail; }
void bh_fake_set_time(struct bh_fake *f, uint64_t ns) { f->now = ns; }
void bh_fake_advance(struct bh_fake *f, uint64_t ns) { f->now += ns; }
