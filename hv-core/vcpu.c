/*
 * vcpu.c - one vCPU: its KVM fd and kvm_run mapping, its thread's run loop
 * and the handling of every KVM exit.
 *
 * Isolation: whatever a guest does ends at most its own VM.  An exit we do
 * not expect from that kind of guest (a micro guest touching MMIO or an
 * unknown port, a triple fault, an emulation failure) ends the VM with
 * HV_EXIT_CRASHED and a reason; it never aborts the process.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include "vm_internal.h"

int vcpu_create(struct hv_vm *vm, unsigned idx, char *err, size_t errlen)
{
	struct hv_vcpu *v = &vm->vcpus[idx];

	v->vm = vm;
	v->idx = idx;
	v->fd = ioctl(vm->fd, KVM_CREATE_VCPU, idx);
	if (v->fd < 0) {
		snprintf(err, errlen, "%s: KVM_CREATE_VCPU %u: %s", vm->name, idx,
			 strerror(errno));
		return -errno;
	}
	int sz = ioctl(kvm_fd(), KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz <= 0) {
		snprintf(err, errlen, "%s: KVM_GET_VCPU_MMAP_SIZE: %s", vm->name,
			 strerror(errno));
		return -EIO;
	}
	v->run_size = (size_t)sz;
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		snprintf(err, errlen, "%s: mmap kvm_run: %s", vm->name, strerror(errno));
		return -ENOMEM;
	}
	if (vm->cfg.kind == HV_GUEST_MICRO)
		return micro_vcpu_init(vm, v, err, errlen);
	return linux_vcpu_init(kvm_fd(), v->fd, idx, vm->cfg.features,
			       &vm->lentry, err, errlen);
}

void vcpu_destroy(struct hv_vcpu *v)
{
	if (v->run)
		munmap(v->run, v->run_size);
	if (v->fd > 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}

void vm_end(struct hv_vm *vm, enum hv_exit_kind kind, int code,
	    const char *fmt, ...)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->status.kind == HV_EXIT_RUNNING) {
		va_list ap;
		va_start(ap, fmt);
		vm->status.kind = kind;
		vm->status.code = code;
		vsnprintf(vm->status.reason, sizeof(vm->status.reason), fmt, ap);
		va_end(ap);
	}
	atomic_store(&vm->stop_req, 1);
	for (unsigned i = 0; i < vm->ncpus; i++)
		if (vm->vcpus[i].started && !vm->vcpus[i].done)
			vcpu_kick(&vm->vcpus[i]);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

static void crash_with_regs(struct hv_vcpu *v, const char *what)
{
	struct kvm_regs r;
	if (ioctl(v->fd, KVM_GET_REGS, &r) == 0)
		vm_end(v->vm, HV_EXIT_CRASHED, 0, "vcpu%u: %s at rip=0x%llx rsp=0x%llx",
		       v->idx, what, (unsigned long long)r.rip,
		       (unsigned long long)r.rsp);
	else
		vm_end(v->vm, HV_EXIT_CRASHED, 0, "vcpu%u: %s", v->idx, what);
}

/* A Linux driver's argument-page registration (hv_abi.h).  The page must
 * be RAM of this VM; it becomes DEVICE so nothing discards it. */
static void linux_argreg(struct hv_vcpu *v, uint32_t pfn)
{
	struct hv_vm *vm = v->vm;
	uint64_t gpa = (uint64_t)pfn << HV_PAGE_SHIFT;
	struct hv_argpage *p = pfn ? hv_gpa_to_hva(vm, gpa, HV_PAGE_SIZE) : NULL;

	if (pfn && !p) {   /* not RAM: refused, the old page stays */
		atomic_fetch_add(&vm->n_bad, 1);
		return;
	}
	pthread_mutex_lock(&vm->lock);
	if (vm->linux_argpage_gpa) {
		uint64_t old = vm->linux_argpage_gpa >> HV_PAGE_SHIFT;
		__atomic_and_fetch(&vm->pagemap[old], ~HV_PF_DEVICE, __ATOMIC_ACQ_REL);
	}
	vm->linux_argpage = p;
	vm->linux_argpage_gpa = p ? gpa : 0;
	if (p)
		__atomic_or_fetch(&vm->pagemap[pfn], HV_PF_DEVICE, __ATOMIC_ACQ_REL);
	pthread_mutex_unlock(&vm->lock);
}

static void linux_doorbell(struct hv_vcpu *v)
{
	struct hv_vm *vm = v->vm;

	pthread_mutex_lock(&vm->lock);
	v->argpage = vm->linux_argpage;
	pthread_mutex_unlock(&vm->lock);
	if (v->argpage)
		hypercall_dispatch(v);
	else
		atomic_fetch_add(&vm->n_bad, 1);
}

static bool linux_port_io(struct hv_vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool out = run->io.direction == KVM_EXIT_IO_OUT;

	if (out && run->io.size == 4 && run->io.count == 1) {
		uint32_t val;
		memcpy(&val, data, 4);
		if (run->io.port == HV_ARGREG_PORT) {
			linux_argreg(v, val);
			return true;
		}
		if (run->io.port == HV_DOORBELL_PORT) {
			linux_doorbell(v);
			return true;
		}
	}

	/* data_offset/size/count come from KVM, not the guest: they stay
	 * inside the kvm_run page. */
	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
		pthread_mutex_lock(&v->vm->con_lock);
		bool ours = serial8250_io(&v->vm->serial, run->io.port, out, data,
					  run->io.size);
		pthread_mutex_unlock(&v->vm->con_lock);
		if (!ours && !out)
			memset(data, 0xff, run->io.size);
	}
	return true;
}

/* Returns false when this vCPU's run loop should end. */
static bool handle_exit(struct hv_vcpu *v)
{
	struct hv_vm *vm = v->vm;
	struct kvm_run *run = v->run;
	bool micro = vm->cfg.kind == HV_GUEST_MICRO;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		if (!micro)
			return linux_port_io(v);
		if (run->io.port == HV_DOORBELL_PORT &&
		    run->io.direction == KVM_EXIT_IO_OUT) {
			hypercall_dispatch(v);
			return true;
		}
		vm_end(vm, HV_EXIT_CRASHED, 0, "vcpu%u: port I/O %s 0x%x, which the "
		       "micro guest has no device at", v->idx,
		       run->io.direction == KVM_EXIT_IO_OUT ? "write to" : "read from",
		       run->io.port);
		return false;
	case KVM_EXIT_MMIO:
		if (!micro) {
			if (!run->mmio.is_write)
				memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
			return true;
		}
		vm_end(vm, HV_EXIT_CRASHED, 0, "vcpu%u: MMIO %s at gpa 0x%llx (not RAM, "
		       "or RAM that is not writable)", v->idx,
		       run->mmio.is_write ? "write" : "read",
		       (unsigned long long)run->mmio.phys_addr);
		return false;
	case KVM_EXIT_SHUTDOWN:
		crash_with_regs(v, "triple fault (shutdown)");
		return false;
	case KVM_EXIT_HLT:
		if (micro) {
			crash_with_regs(v, "hlt");
			return false;
		}
		vm_end(vm, HV_EXIT_EXITED, 0, "vcpu%u: halted", v->idx);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		vm_end(vm, HV_EXIT_EXITED, 0, "system event %u", run->system_event.type);
		return false;
	case KVM_EXIT_INTERNAL_ERROR: {
		char what[64];
		snprintf(what, sizeof(what), "KVM internal error (suberror %u, 1 = "
			 "emulation failure)", run->internal.suberror);
		crash_with_regs(v, what);
		return false;
	}
	case KVM_EXIT_FAIL_ENTRY:
		vm_end(vm, HV_EXIT_CRASHED, 0, "vcpu%u: VM entry failed, reason 0x%llx",
		       v->idx, (unsigned long long)
		       run->fail_entry.hardware_entry_failure_reason);
		return false;
	case KVM_EXIT_INTR:
		return true;
	default:
		crash_with_regs(v, "unexpected KVM exit");
		return false;
	}
}

void *vcpu_thread(void *arg)
{
	struct hv_vcpu *v = arg;
	struct hv_vm *vm = v->vm;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, kvm_kick_signal());
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	for (;;) {
		vcpu_check_pause(v);
		if (atomic_load(&vm->stop_req))
			break;
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				/* clear before re-reading pause_req/stop_req (pause.c) */
				__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
				continue;
			}
			vm_end(vm, HV_EXIT_ERROR, 0, "vcpu%u: KVM_RUN: %s", v->idx,
			       strerror(errno));
			break;
		}
		atomic_fetch_add(&vm->n_exits, 1);
		if (!handle_exit(v))
			break;
		if (v->exited)
			break;
	}

	pthread_mutex_lock(&vm->lock);
	v->done = true;
	vm->threads_alive--;
	if (vm->threads_alive == 0) {
		vm->finished = true;
		vm->end_ns = hv_now_ns();
	}
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}
