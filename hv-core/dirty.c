/*
 * dirty.c - the dirty log: KVM's (the guest's writes) and hv_dirty_mark()'s
 * (the host's own writes into guest RAM), handed to every consumer.
 *
 * KVM_GET_DIRTY_LOG reads and clears, so two readers would steal each
 * other's bits.  hv-core is the only reader: whichever consumer fetches,
 * the bits read go to its caller and are added to every other enabled
 * consumer's pending bitmap, so each consumer sees every write exactly
 * once, at its own pace (ksm per scan pass, the policy's working-set
 * sampler per window).  Logging is on while any consumer wants it.
 *
 * Locking: dirty_lock serializes fetches and enable/disable (it nests
 * inside nothing); host_dirty is lock-free (set bits, exchange to clear)
 * because device models mark from vCPU threads.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include "vm_internal.h"

static uint64_t range_words(const struct hv_vm *vm, unsigned r)
{
	return ((vm->ranges[r].len >> HV_PAGE_SHIFT) + 63) / 64;
}

void dirty_teardown(struct hv_vm *vm)
{
	for (unsigned r = 0; r < HV_MAX_RANGES; r++) {
		free(vm->host_dirty[r]);
		vm->host_dirty[r] = NULL;
		for (unsigned c = 0; c < HV_DIRTY_NCONSUMERS; c++) {
			free(vm->dirty_pending[c][r]);
			vm->dirty_pending[c][r] = NULL;
		}
	}
}

int hv_dirty_enable(struct hv_vm *vm, enum hv_dirty_consumer c, bool on)
{
	int rc = 0;

	if ((unsigned)c >= HV_DIRTY_NCONSUMERS)
		return -EINVAL;
	pthread_mutex_lock(&vm->dirty_lock);
	if (on && !vm->dirty_on[c]) {
		/* what others fetch from now on is kept for this one */
		for (unsigned r = 0; r < vm->nranges; r++) {
			if (!vm->dirty_pending[c][r])
				vm->dirty_pending[c][r] = calloc(range_words(vm, r), 8);
			if (!vm->dirty_pending[c][r]) {
				rc = -ENOMEM;
				goto out;
			}
			memset(vm->dirty_pending[c][r], 0, range_words(vm, r) * 8);
		}
	}
	vm->dirty_on[c] = on;
	bool any = false;
	for (unsigned k = 0; k < HV_DIRTY_NCONSUMERS; k++)
		any |= vm->dirty_on[k];
	if (any != vm->dirty_logging) {
		pthread_mutex_lock(&vm->lock);
		vm->dirty_logging = any;
		rc = mem_set_slots(vm);
		pthread_mutex_unlock(&vm->lock);
	}
out:
	pthread_mutex_unlock(&vm->dirty_lock);
	return rc;
}

int hv_dirty_fetch(struct hv_vm *vm, enum hv_dirty_consumer c, unsigned range,
		   uint64_t *bitmap)
{
	int rc = 0;

	if (range >= vm->nranges || (unsigned)c >= HV_DIRTY_NCONSUMERS)
		return -EINVAL;
	pthread_mutex_lock(&vm->dirty_lock);
	if (!vm->dirty_on[c]) {
		rc = -ENOENT;
		goto out;
	}
	struct kvm_dirty_log log = { .slot = vm->ranges[range].slot,
				     .dirty_bitmap = bitmap };
	if (ioctl(vm->fd, KVM_GET_DIRTY_LOG, &log) < 0) {
		rc = -errno;
		goto out;
	}
	uint64_t words = range_words(vm, range);
	uint64_t *hd = vm->host_dirty[range];
	for (uint64_t w = 0; hd && w < words; w++)
		if (__atomic_load_n(&hd[w], __ATOMIC_RELAXED))
			bitmap[w] |= __atomic_exchange_n(&hd[w], 0, __ATOMIC_ACQ_REL);
	/* bitmap now holds the new bits: every other consumer keeps them */
	for (unsigned k = 0; k < HV_DIRTY_NCONSUMERS; k++) {
		uint64_t *p = vm->dirty_pending[k][range];
		if (k == (unsigned)c || !vm->dirty_on[k] || !p)
			continue;
		for (uint64_t w = 0; w < words; w++)
			p[w] |= bitmap[w];
	}
	/* and this one gets what others read since its last fetch */
	uint64_t *mine = vm->dirty_pending[c][range];
	for (uint64_t w = 0; mine && w < words; w++) {
		bitmap[w] |= mine[w];
		mine[w] = 0;
	}
out:
	pthread_mutex_unlock(&vm->dirty_lock);
	return rc;
}


void hv_dirty_mark(struct hv_vm *vm, uint64_t gpa, uint64_t len)
{
	for (unsigned r = 0; r < vm->nranges && len; r++) {
		const struct hv_ram_range *rr = &vm->ranges[r];
		if (gpa + len <= rr->gpa || gpa >= rr->gpa + rr->len)
			continue;
		uint64_t *hd = vm->host_dirty[r];
		if (!hd) {
			/* first mark: one bit per page of the range */
			uint64_t *n = calloc((rr->len / HV_PAGE_SIZE + 63) / 64, 8);
			if (!n)
				return;
			uint64_t *expect = NULL;
			if (!__atomic_compare_exchange_n(&vm->host_dirty[r], &expect, n,
							  false, __ATOMIC_ACQ_REL,
							  __ATOMIC_ACQUIRE)) {
				free(n);
				n = expect;
			}
			hd = n;
		}
		uint64_t lo = gpa > rr->gpa ? gpa : rr->gpa;
		uint64_t hi = gpa + len < rr->gpa + rr->len ? gpa + len : rr->gpa + rr->len;
		for (uint64_t p = (lo - rr->gpa) >> HV_PAGE_SHIFT;
		     p < (hi - rr->gpa + HV_PAGE_SIZE - 1) >> HV_PAGE_SHIFT; p++)
			__atomic_or_fetch(&hd[p / 64], 1ull << (p % 64), __ATOMIC_RELEASE);
	}
}
