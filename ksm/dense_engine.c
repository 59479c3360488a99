/*
 * dense_engine.c - the dense engine behind ksm.h's engine-neutral calls
 * (kengine_dense): a VM's arrival in a domain and its leaving, the
 * scanner thread, and starting and stopping it.  The merge paths
 * themselves are scan.c, batch.c and merge_*.c; the kernel engine is
 * kernel_engine.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "internal.h"

/* Pages already in a shared state when the VM arrives: only ZERO, and
 * BASE on the domain's base, can be taken over. */
static int vm_adopt_states(struct ksm *k, struct ksm_vm *vm, char *err,
			   size_t errlen)
{
	uint32_t r;
	uint64_t i, pfn;

	for (r = 0; r < vm->nranges; r++)
		for (i = 0; i < vm->r[r].npages; i++) {
			hv_pstate_t st;

			pfn = kpage_gpa(vm, r, (uint32_t)i) / KSM_PAGE;
			if (pfn >= vm->map_npages) {
				snprintf(err, errlen, "ksm: vm '%s': page-state map "
					 "(%llu pages) does not cover its RAM",
					 vm->name,
					 (unsigned long long)vm->map_npages);
				return -EINVAL;
			}
			st = kmap_get(vm, pfn);
			switch (hv_ps_state(st)) {
			case HV_PAGE_ZERO:
				CTR_ADD(vm->c.zero_pages, 1);
				kpg_set_own(&vm->r[r].pg[i], kown_of(st));
				break;
			case HV_PAGE_BASE:
				if (vm->uses_base) {
					kpg_set_own(&vm->r[r].pg[i], kown_of(st));
					kbase_ref(vm->dom, pfn);
					CTR_ADD(vm->c.pages_sharing, 1);
					CTR_ADD(vm->c.base_pages, 1);
					break;
				}
				/* fall through */
			case HV_PAGE_FRAME:
				snprintf(err, errlen, "ksm: vm '%s' gpa %#llx is "
					 "already shared through frames ksm does "
					 "not own", vm->name,
					 (unsigned long long)(pfn * KSM_PAGE));
				return -EEXIST;
			}
		}
	(void)k;
	return 0;
}

/* Under ksm->lock: the VM joins its domain (its base memfd, if any), takes
 * over the shared states it already has and turns its dirty log on. */
static int dense_add_vm(struct ksm *k, struct ksm_vm *vm, unsigned domain,
			int base_fd, uint64_t gpa_end, char *err, size_t errlen)
{
	struct stat st;
	int ret;

	vm->dom = kdom_get(k, domain, base_fd, gpa_end, err, errlen);
	if (!vm->dom)
		return -ENOMEM;
	vm->read_pass = vm->prev_read_pass = UINT32_MAX;
	vm->anon = base_fd < 0;
	vm->uses_base = base_fd >= 0 && fstat(base_fd, &st) == 0 &&
			st.st_dev == vm->dom->base_dev &&
			st.st_ino == vm->dom->base_ino;
	ret = kcand_vm_attach(vm->dom, vm) ? -ENOMEM : 0;
	if (ret)
		snprintf(err, errlen, "ksm: vm '%s': out of memory", vm->name);
	else
		ret = vm_adopt_states(k, vm, err, errlen);
	if (!ret && vm->ops->dirty_enable &&
	    (ret = vm->ops->dirty_enable(vm->ctx, true)) != 0)
		snprintf(err, errlen, "ksm: vm '%s': dirty log: %s", vm->name,
			 strerror(-ret));
	if (ret) {
		kcand_vm_detach(vm->dom, vm);
		kdom_put(k, vm->dom);
	}
	return ret;
}

/* Under ksm->lock, the VM already off the list: every page ksm shared
 * lets go of its frame or base page. */
static void dense_remove_vm(struct ksm *k, struct ksm_vm *vm)
{
	uint32_t r;
	uint64_t i;

	if (!vm->dom)
		return;
	krel_purge_vm(k, vm);
	kcand_del_vm(k, vm);
	kcand_vm_detach(vm->dom, vm);
	for (r = 0; r < vm->nranges; r++)
		for (i = 0; i < vm->r[r].npages; i++) {
			uint64_t pfn = kpage_gpa(vm, r, (uint32_t)i) / KSM_PAGE;

			if (kpg_own(&vm->r[r].pg[i]))
				kunshare_page_state(k, vm, r, (uint32_t)i,
						    kmap_get(vm, pfn), true);
		}
	if (vm->ops->dirty_enable && !k->destroying)
		vm->ops->dirty_enable(vm->ctx, false);
	kdom_put(k, vm->dom);
	vm->dom = NULL;
}

static int dense_scan_pass(struct ksm *k)
{
	int ret;

	pthread_mutex_lock(&k->lock);
	ksm_rcu_online();
	ret = kscan_pass(k, false);
	ksm_rcu_offline();
	pthread_mutex_unlock(&k->lock);
	return ret;
}

static void *scanner(void *arg)
{
	struct ksm *k = arg;
	uint64_t ms;

	pthread_setname_np(pthread_self(), "densevm-ksm");   /* for top, perf */
	pthread_mutex_lock(&k->lock);
	ksm_rcu_online();
	while (!k->stop_req) {
		kscan_pass(k, true);
		if (k->stop_req)
			break;
		ms = k->cfg.sleep_ms;
		/* sleep_ms=0 still waits 100 us with the lock released: back
		 * to back passes would starve every other writer (self-check,
		 * tunables, ksm_stop itself), as mutexes are not fair */
		ksm_rcu_offline();
		kcond_wait_ns(&k->cv, &k->lock, ms ? ms * 1000000ULL : 100000ULL);
		ksm_rcu_online();
	}
	ksm_rcu_offline();
	pthread_mutex_unlock(&k->lock);
	return NULL;
}

/* Under ksm->lock. */
static int dense_start(struct ksm *k)
{
	k->stop_req = false;
	k->thr_t0_ns = 0;   /* a fresh throttle window */
	return -pthread_create(&k->thr, NULL, scanner, k);
}

static void dense_stop(struct ksm *k)
{
	klock(k);
	if (!k->running) {
		kunlock(k);
		return;
	}
	k->stop_req = true;
	pthread_cond_broadcast(&k->cv);
	kunlock(k);
	pthread_join(k->thr, NULL);
	pthread_mutex_lock(&k->lock);
	k->running = false;
	pthread_mutex_unlock(&k->lock);
}

static int dense_create(struct ksm *k, char *err, size_t errlen)
{
	int ret = kbatch_init(k);

	if (ret)
		snprintf(err, errlen, "ksm: out of memory for batches");
	return ret;
}

static void dense_destroy(struct ksm *k)
{
	kbatch_free(k);
}

const struct kengine_ops kengine_dense = {
	.name = "dense",
	.create = dense_create,
	.destroy = dense_destroy,
	.add_vm = dense_add_vm,
	.remove_vm = dense_remove_vm,
	.start = dense_start,
	.stop = dense_stop,
	.scan_pass = dense_scan_pass,
	.stats = kdense_stats,
	.self_check = kdense_self_check,
};
