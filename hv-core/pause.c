/*
 * pause.c - pausing and resuming all vCPUs of a VM, and the parking points
 * of a vCPU thread (the pause check in its run loop, and the blocking
 * hypercalls HC_WAIT/HC_READY).
 *
 * A pause sets pause_req, kicks every vCPU out of KVM_RUN (immediate_exit
 * plus a signal, so a kick that lands just before KVM_RUN is not lost) and
 * waits until parked == threads_alive.  Parked vCPUs re-check pause_req
 * under vm->lock before they leave, so once hv_vm_pause() returns no vCPU
 * runs guest code or writes guest memory until the last resume.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include "vm_internal.h"

void vcpu_kick(struct hv_vcpu *v)
{
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_kill(v->thread, kvm_kick_signal());
}

uint64_t hv_vm_pause(struct hv_vm *vm)
{
	uint64_t t0 = hv_now_ns();

	pthread_mutex_lock(&vm->lock);
	if (vm->pause_depth++ == 0) {
		atomic_store(&vm->pause_req, 1);
		/* a blocked vCPU is parked already and cannot leave before
		 * it sees pause_req under the lock: kicking it would only
		 * cost a signal and a spurious wakeup */
		for (unsigned i = 0; i < vm->ncpus; i++)
			if (vm->vcpus[i].started && !vm->vcpus[i].done &&
			    !vm->vcpus[i].blocked)
				vcpu_kick(&vm->vcpus[i]);
	}
	while (vm->parked < vm->threads_alive)
		pthread_cond_wait(&vm->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
	atomic_fetch_add(&vm->n_pauses, 1);
	return hv_now_ns() - t0;
}

void hv_vm_resume(struct hv_vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->pause_depth > 0 && --vm->pause_depth == 0) {
		atomic_store(&vm->pause_req, 0);
		pthread_cond_broadcast(&vm->cond);
	}
	pthread_mutex_unlock(&vm->lock);
}

void vcpu_check_pause(struct hv_vcpu *v)
{
	struct hv_vm *vm = v->vm;

	if (!atomic_load(&vm->pause_req))
		return;
	pthread_mutex_lock(&vm->lock);
	vm->parked++;
	pthread_cond_broadcast(&vm->cond);
	while (atomic_load(&vm->pause_req) && !atomic_load(&vm->stop_req))
		pthread_cond_wait(&vm->cond, &vm->lock);
	vm->parked--;
	pthread_mutex_unlock(&vm->lock);
}

void vm_cond_wait_until(struct hv_vm *vm, uint64_t deadline_ns)
{
	struct timespec ts = { (time_t)(deadline_ns / 1000000000ull),
			       (long)(deadline_ns % 1000000000ull) };
	pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
}

bool vcpu_block_locked(struct hv_vcpu *v, bool *flag, uint64_t deadline_ns)
{
	struct hv_vm *vm = v->vm;

	vm->parked++;
	v->blocked = true;
	pthread_cond_broadcast(&vm->cond);
	for (;;) {
		if (atomic_load(&vm->stop_req))
			break;
		bool paused = atomic_load(&vm->pause_req);
		if (!paused && (*flag || (deadline_ns && hv_now_ns() >= deadline_ns)))
			break;
		if (paused || !deadline_ns) {
			pthread_cond_wait(&vm->cond, &vm->lock);
		} else {
			vm_cond_wait_until(vm, deadline_ns);
		}
	}
	v->blocked = false;
	vm->parked--;
	return *flag;
}
