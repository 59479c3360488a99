/*
 * ksm.c - what both engines share: create/destroy, VM registration (the
 * per-page arrays), start/stop/pass dispatched to the engine's ops
 * (dense_engine.c, kernel_engine.c), the tunables, and klock().
 *
 * Locking: ksm->lock is held by every writer: a scan pass (released while
 * a throttled pass sleeps, after flushing its batch, and handed to klock()
 * waiters at its throttle points), add/remove, set_tunable and the
 * self-check.  The scanner waits on ksm->cv, so ksm_stop wakes it at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <numa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "internal.h"

void ksm_config_default(struct ksm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->engine = KSM_ENGINE_DENSE;
	cfg->batch_pages = 256;
	cfg->volatile_passes = 2;
	cfg->max_sharers = 4096;
	cfg->merge_across_nodes = true;
	cfg->sleep_ms = 50;
	cfg->dirty_ms = 1000;
	cfg->write_protect = true;
}

const char *ksm_engine_name(const struct ksm *k)
{
	return k->eng->name;
}

/* ------------------------------------------------------------ tunables */

/* Rebuilds every domain's tables for a new slot count.  Only allowed
 * with nothing merged (like Linux's merge_across_nodes): candidates are
 * dropped and every page is rehashed. */
static int change_slots(struct ksm *k, bool across, char *err, size_t errlen)
{
	struct kdom *d;
	struct ksm_vm *vm;
	unsigned s;
	uint32_t r;

	for (d = k->doms; d; d = d->next)
		if (d->frames_used || d->base_used) {
			snprintf(err, errlen, "merge_across_nodes: domain %u has "
				 "merged pages; it can change only while nothing "
				 "is merged", d->id);
			return -EBUSY;
		}
	k->cfg.merge_across_nodes = across;
	for (d = k->doms; d; d = d->next) {
		for (s = 0; s < d->nslots; s++) {
			ktab_destroy(d->stable[s]);
			kctab_free(&d->cand[s]);
			d->stable[s] = NULL;
		}
		d->nslots = knuma_slots(k);
		for (s = 0; s < d->nslots; s++)
			d->stable[s] = ktab_new();
	}
	for (vm = k->vms; vm; vm = vm->next)
		for (r = 0; r < vm->nranges; r++) {
			struct ksmvm_range *rg = &vm->r[r];
			uint64_t i;

			for (i = 0; rg->pg && i < rg->npages; i++) {
				kpg_leave_cand(&rg->pg[i]);
				kbit_set(rg->todo, i);
			}
		}
	return 0;
}

/* Setters and getters, under ksm->lock.  Values the scanner reads
 * without the lock are stored relaxed. */
#define RELAXED_SETTER(field, type)					\
	static int set_##field(struct ksm *k, uint64_t v, char *err,	\
			       size_t errlen)				\
	{								\
		(void)err;						\
		(void)errlen;						\
		__atomic_store_n(&k->cfg.field, (type)v, __ATOMIC_RELAXED); \
		return 0;						\
	}
RELAXED_SETTER(pages_per_sec, uint64_t)
RELAXED_SETTER(cpu_percent, unsigned)
RELAXED_SETTER(volatile_passes, unsigned)
RELAXED_SETTER(dirty_ms, unsigned)
RELAXED_SETTER(write_protect, bool)

static int set_batch_pages(struct ksm *k, uint64_t v, char *err,
			   size_t errlen)
{
	if (k->cfg.engine == KSM_ENGINE_DENSE && v != k->cfg.batch_pages &&
	    kbatch_resize(k, (unsigned)v) != 0) {
		snprintf(err, errlen, "ksm: batch_pages: out of memory");
		return -ENOMEM;
	}
	k->cfg.batch_pages = (unsigned)v;
	return 0;
}

static int set_max_sharers(struct ksm *k, uint64_t v, char *err,
			   size_t errlen)
{
	(void)err;
	(void)errlen;
	k->cfg.max_sharers = (unsigned)v;
	return 0;
}

static int set_merge_across_nodes(struct ksm *k, uint64_t v, char *err,
				  size_t errlen)
{
	if ((bool)v == k->cfg.merge_across_nodes)
		return 0;
	if (k->cfg.engine == KSM_ENGINE_DENSE)
		return change_slots(k, v != 0, err, errlen);
	k->cfg.merge_across_nodes = v != 0;
	return 0;
}

static int set_sleep_ms(struct ksm *k, uint64_t v, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	k->cfg.sleep_ms = (unsigned)v;
	pthread_cond_broadcast(&k->cv);   /* a sleeping scanner sees it now */
	return 0;
}

#define GETTER(field)							\
	static uint64_t get_##field(const struct ksm *k)		\
	{								\
		return __atomic_load_n(&k->cfg.field, __ATOMIC_RELAXED); \
	}
GETTER(pages_per_sec)
GETTER(cpu_percent)
GETTER(batch_pages)
GETTER(volatile_passes)
GETTER(max_sharers)
GETTER(merge_across_nodes)
GETTER(sleep_ms)
GETTER(dirty_ms)
GETTER(write_protect)

struct tunable {
	const char *name;
	uint64_t min, max;
	uint64_t (*get)(const struct ksm *k);
	int (*set)(struct ksm *k, uint64_t v, char *err, size_t errlen);
};

#define TUNABLE(field, lo, hi) { #field, lo, hi, get_##field, set_##field }
static const struct tunable tunables[] = {
	TUNABLE(pages_per_sec, 0, UINT64_MAX / 1000000000ULL),
	TUNABLE(cpu_percent, 0, 100),
	TUNABLE(batch_pages, 2, 4096),
	TUNABLE(volatile_passes, 0, 255),
	TUNABLE(max_sharers, 2, HV_PS_FRAME_MAX),
	TUNABLE(merge_across_nodes, 0, 1),
	TUNABLE(sleep_ms, 0, 60000),
	TUNABLE(dirty_ms, 0, 60000),
	TUNABLE(write_protect, 0, 1),
};
#define NTUNABLES (sizeof(tunables) / sizeof(tunables[0]))

const char *const *ksm_tunable_names(void)
{
	static const char *names[NTUNABLES + 1];
	unsigned i;

	for (i = 0; i < NTUNABLES; i++)
		names[i] = tunables[i].name;
	names[NTUNABLES] = NULL;
	return names;
}

static const struct tunable *find_tunable(const char *name)
{
	unsigned i;

	for (i = 0; i < NTUNABLES; i++)
		if (name && strcmp(name, tunables[i].name) == 0)
			return &tunables[i];
	return NULL;
}

int ksm_set_tunable(struct ksm *k, const char *name, const char *value,
		    char *err, size_t errlen)
{
	const struct tunable *t = find_tunable(name);
	unsigned long long v;
	char *end;
	int ret;

	if (errlen)
		err[0] = 0;
	if (!t) {
		snprintf(err, errlen, "ksm: unknown tunable '%s'",
			 name ? name : "(null)");
		return -ENOENT;
	}
	errno = 0;
	v = value ? strtoull(value, &end, 10) : 0;
	if (!value || !*value || *end || errno || value[0] == '-' ||
	    v < t->min || v > t->max) {
		snprintf(err, errlen, "ksm: %s must be an integer in [%llu, %llu], "
			 "not '%s'", name, (unsigned long long)t->min,
			 (unsigned long long)t->max, value ? value : "(null)");
		return -EINVAL;
	}
	klock(k);
	ksm_rcu_online();
	ret = t->set(k, v, err, errlen);
	if (!ret && k->eng->apply_tunables) {
		ret = k->eng->apply_tunables(k);
		if (ret)
			snprintf(err, errlen, "ksm: /sys/kernel/mm/ksm refused "
				 "%s=%s: %s", name, value, strerror(-ret));
	}
	ksm_rcu_offline();
	kunlock(k);
	return ret;
}

int ksm_get_tunable(struct ksm *k, const char *name, char *buf, size_t len)
{
	const struct tunable *t = find_tunable(name);

	if (!t)
		return -ENOENT;
	snprintf(buf, len, "%llu", (unsigned long long)t->get(k));
	return 0;
}

/* ---------------------------------------------------------- lifecycle */

static void vm_remove_locked(struct ksm *k, struct ksm_vm *vm);

int ksm_create(const struct ksm_config *cfg, struct ksm **out, char *err,
	       size_t errlen)
{
	struct ksm_config def;
	pthread_condattr_t ca;
	struct ksm *k;
	int ret;

	if (errlen)
		err[0] = 0;
	*out = NULL;
	if (!cfg) {
		ksm_config_default(&def);
		cfg = &def;
	}
	if (cfg->batch_pages < 2 || cfg->batch_pages > 4096 ||
	    cfg->max_sharers < 2 || cfg->cpu_percent > 100 ||
	    cfg->volatile_passes > 255 ||
	    (cfg->node_of && (cfg->nr_nodes < 1 || cfg->nr_nodes > KSM_MAX_NODES))) {
		snprintf(err, errlen, "ksm: bad config (batch_pages 2..4096, "
			 "max_sharers >= 2, cpu_percent <= 100, "
			 "volatile_passes <= 255, nr_nodes 1..%u with node_of)",
			 KSM_MAX_NODES);
		return -EINVAL;
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		snprintf(err, errlen, "ksm: out of memory");
		return -ENOMEM;
	}
	k->cfg = *cfg;
	pthread_mutex_init(&k->lock, NULL);
	pthread_rwlock_init(&k->list_lock, NULL);
	pthread_mutex_init(&k->pause.mu, NULL);
	pthread_mutex_init(&k->rel_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&k->cv, &ca);
	pthread_cond_init(&k->handoff, &ca);
	pthread_condattr_destroy(&ca);
	k->next_vm_id = 1;
	k->real_nodes = numa_available() < 0 ? 1 :
			(unsigned)numa_max_node() + 1;
	k->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (k->pagemap_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "ksm: /proc/self/pagemap: %s",
			 strerror(errno));
		goto fail;
	}
	k->pm_scan_off = cfg->test_no_pagemap_scan;
	k->zero_hash = ksm_hash_page(k, ksm_zero_page);
	k->eng = cfg->engine == KSM_ENGINE_KERNEL ? &kengine_kernel :
						     &kengine_dense;
	ret = k->eng->create(k, err, errlen);
	if (ret)
		goto fail;
	*out = k;
	return 0;
fail:
	if (k->pagemap_fd >= 0)
		close(k->pagemap_fd);
	kbatch_free(k);
	free(k);
	return ret;
}

void ksm_destroy(struct ksm *k)
{
	if (!k)
		return;
	ksm_stop(k);
	pthread_mutex_lock(&k->lock);
	ksm_rcu_online();
	k->destroying = true;   /* no punching: VMs may still map frames */
	while (k->vms)
		vm_remove_locked(k, k->vms);
	ktab_reclaim(k);
	ksm_rcu_offline();
	pthread_mutex_unlock(&k->lock);
	k->eng->destroy(k);
	close(k->pagemap_fd);
	free(k->rel);
	pthread_mutex_destroy(&k->rel_mu);
	pthread_cond_destroy(&k->cv);
	pthread_cond_destroy(&k->handoff);
	pthread_mutex_destroy(&k->pause.mu);
	pthread_rwlock_destroy(&k->list_lock);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

/* The ranges, and per page what the dense engine keeps (the kernel
 * engine keeps nothing per page: Linux KSM has its own rmap items). */
static int vm_alloc_ranges(struct ksm_vm *vm, const struct hv_ram_range *rr,
			   unsigned n, bool per_page)
{
	uint32_t i;

	vm->r = calloc(n, sizeof(*vm->r));
	if (!vm->r)
		return -ENOMEM;
	vm->nranges = n;
	for (i = 0; i < n; i++) {
		struct ksmvm_range *rg = &vm->r[i];
		uint64_t np = rr[i].len / KSM_PAGE, w;

		if ((rr[i].gpa | rr[i].len | (uintptr_t)rr[i].hva) %
		    KSM_PAGE || !np || np > UINT32_MAX)
			return -EINVAL;
		rg->gpa = rr[i].gpa;
		rg->len = rr[i].len;
		rg->hva = rr[i].hva;
		rg->npages = np;
		rg->nwords = (np + 63) / 64;
		if (!per_page)
			continue;
		rg->pg = calloc(np, sizeof(*rg->pg));
		rg->todo = calloc(rg->nwords, sizeof(uint64_t));
		rg->dirty = calloc(rg->nwords, sizeof(uint64_t));
		rg->nofast = calloc(rg->nwords, sizeof(uint64_t));
		rg->untouched = calloc(rg->nwords, sizeof(uint64_t));
		if (!rg->pg || !rg->todo || !rg->dirty ||
		    !rg->nofast || !rg->untouched)
			return -ENOMEM;
		/* everything needs a first hash */
		for (w = 0; w < rg->nwords; w++)
			rg->todo[w] = ~0ULL;
		if (np % 64)
			rg->todo[rg->nwords - 1] = (1ULL << (np % 64)) - 1;
	}
	return 0;
}

int ksm_add_vm(struct ksm *k, const struct ksm_vm_ops *ops, void *ctx,
	       unsigned domain, struct ksm_vm **out, char *err, size_t errlen)
{
	const struct hv_ram_range *rr;
	struct ksm_vm *vm, **pp;
	uint64_t gpa_end = 0;
	unsigned n, i;
	int ret, base_fd;

	if (errlen)
		err[0] = 0;
	*out = NULL;
	if (!ops || !ops->ranges || !ops->pagemap || !ops->page_cas ||
	    !ops->pause || !ops->resume || !ops->replace_backing ||
	    !ops->discard || !ops->dirty_fetch || !ops->base_memfd) {
		snprintf(err, errlen, "ksm: incomplete ksm_vm_ops");
		return -EINVAL;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->ksm = k;
	vm->ops = ops;
	vm->ctx = ctx;
	vm->refs = 1;
	pthread_mutex_init(&vm->pause.mu, NULL);
	snprintf(vm->name, sizeof(vm->name), "%s",
		 ops->name ? ops->name(ctx) : "vm");
	rr = ops->ranges(ctx, &n);
	vm->map = ops->pagemap(ctx, &vm->map_npages);
	if (!rr || !n || !vm->map) {
		snprintf(err, errlen, "ksm: vm '%s' has no RAM ranges or map",
			 vm->name);
		ksmvm_put(k, vm);
		return -EINVAL;
	}
	ret = vm_alloc_ranges(vm, rr, n, k->cfg.engine == KSM_ENGINE_DENSE);
	if (ret) {
		snprintf(err, errlen, "ksm: vm '%s': %s", vm->name,
			 ret == -EINVAL ? "RAM range not page aligned"
					: "out of memory");
		ksmvm_put(k, vm);
		return ret;
	}
	for (i = 0; i < n; i++)
		if (rr[i].gpa + rr[i].len > gpa_end)
			gpa_end = rr[i].gpa + rr[i].len;
	base_fd = ops->base_memfd(ctx);

	klock(k);
	ksm_rcu_online();
	ret = k->eng->add_vm(k, vm, domain, base_fd, gpa_end, err, errlen);
	if (!ret) {
		vm->id = k->next_vm_id++;
		pthread_rwlock_wrlock(&k->list_lock);
		for (pp = &k->vms; *pp; pp = &(*pp)->next)
			;
		*pp = vm;
		pthread_rwlock_unlock(&k->list_lock);
	}
	ksm_rcu_offline();
	kunlock(k);
	if (ret) {
		ksmvm_put(k, vm);
		return ret;
	}
	*out = vm;
	return 0;
}

static void vm_remove_locked(struct ksm *k, struct ksm_vm *vm)
{
	struct ksm_vm **pp;

	pthread_rwlock_wrlock(&k->list_lock);
	for (pp = &k->vms; *pp && *pp != vm; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = vm->next;
	pthread_rwlock_unlock(&k->list_lock);
	vm->dead = true;
	k->eng->remove_vm(k, vm);
	ksmvm_put(k, vm);
}

void ksm_remove_vm(struct ksm *k, struct ksm_vm *vm)
{
	if (!vm)
		return;
	klock(k);
	ksm_rcu_online();
	vm_remove_locked(k, vm);
	ksm_rcu_offline();
	kunlock(k);
}

/* ------------------------------------------------------------- scanner */

/* ksm->lock for a caller other than the scanner (self-check, tunables,
 * VMs coming and going, stop): a pass can hold the lock for seconds, so
 * the scanner lets waiters in at its next throttle point (scan.c) and
 * waits on handoff until they are done. */
void klock(struct ksm *k)
{
	__atomic_add_fetch(&k->lock_waiters, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&k->lock);
	/* A handover lets in as many callers as waited when it began.  The
	 * mutex is not fair: callers back to back (a check loop) would take
	 * it again and again before the woken scanner does, so one past that
	 * count waits for the scanner's next point. */
	while (k->ho_active && k->lock_served >= k->ho_until)
		pthread_cond_wait(&k->handoff, &k->lock);
	__atomic_sub_fetch(&k->lock_waiters, 1, __ATOMIC_SEQ_CST);
}

void kunlock(struct ksm *k)
{
	k->lock_served++;
	pthread_cond_broadcast(&k->handoff);
	pthread_mutex_unlock(&k->lock);
}

int ksm_scan_pass(struct ksm *k)
{
	return k->eng->scan_pass(k);
}

int ksm_start(struct ksm *k)
{
	int ret = 0;

	klock(k);
	if (!k->running) {
		ret = k->eng->start(k);
		k->running = ret == 0;
	}
	kunlock(k);
	return ret;
}

void ksm_stop(struct ksm *k)
{
	k->eng->stop(k);
}
