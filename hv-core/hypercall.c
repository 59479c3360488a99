/*
 * hypercall.c - serving the micro guest's hypercalls: the core calls
 * (console, exit, time, wait, ready, result, nop) and forwarding of device
 * calls to handlers registered with hv_vm_set_hypercall().
 *
 * The argument page is guest memory and hostile: it is copied once, and
 * only the copy is read.  Results are written back only while the VM is
 * not paused (blocking calls return from vcpu_block_locked() unpaused).
 */
#include <errno.h>
#include <string.h>
#include "vm_internal.h"

#define WAIT_FOREVER UINT64_MAX

/* A status is a process's: 0-255.  A guest's other values (negative,
 * 2^32 + 0 that an int cast would read as success) become HV_EXIT_STATUS_BAD
 * and the exit line names what the guest said. */
static void do_exit(struct hv_vcpu *v, uint64_t arg)
{
	struct hv_vm *vm = v->vm;
	int code = arg <= HV_EXIT_STATUS_MAX ? (int)arg : HV_EXIT_STATUS_BAD;
	bool all;

	pthread_mutex_lock(&vm->lock);
	v->exited = true;
	vm->vcpus_exited++;
	if (code && !vm->status.code) {
		vm->status.code = code;
		vm->exit_arg = arg;
	}
	all = vm->vcpus_exited == vm->ncpus;
	code = vm->status.code;
	arg = vm->exit_arg;
	pthread_mutex_unlock(&vm->lock);
	if (all) {
		console_flush(vm);
		if (code && arg > HV_EXIT_STATUS_MAX)
			vm_end(vm, HV_EXIT_EXITED, code, "exit status %d (the guest said "
			       "%#llx, outside 0-%d)", code, (unsigned long long)arg,
			       HV_EXIT_STATUS_MAX);
		else
			vm_end(vm, HV_EXIT_EXITED, code, "exit status %d", code);
	}
}

static int64_t do_wait(struct hv_vcpu *v, uint64_t timeout_ns)
{
	struct hv_vm *vm = v->vm;
	bool got;

	pthread_mutex_lock(&vm->lock);
	if (timeout_ns == 0) {
		got = v->pending;
	} else {
		uint64_t deadline = 0;
		if (timeout_ns != WAIT_FOREVER) {
			uint64_t now = hv_now_ns();
			deadline = timeout_ns > UINT64_MAX - now ? 0 : now + timeout_ns;
		}
		got = vcpu_block_locked(v, &v->pending, deadline);
	}
	v->pending = false;
	pthread_mutex_unlock(&vm->lock);
	return got;
}

static int64_t do_ready(struct hv_vcpu *v, uint64_t tag)
{
	struct hv_vm *vm = v->vm;

	if (tag == 0)
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	v->ready_tag = tag;
	/* only a release that comes after the host saw this tag counts */
	v->pending = false;
	pthread_cond_broadcast(&vm->cond);
	vcpu_block_locked(v, &v->pending, 0);
	v->pending = false;
	v->ready_tag = 0;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

static int64_t do_result(struct hv_vm *vm, uint64_t key, uint64_t value)
{
	if (key >= HV_NRESULTS)
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	vm->results[key] = value;
	vm->results_ns[key] = hv_now_ns();
	vm->results_set |= 1u << key;
	pthread_mutex_unlock(&vm->lock);
	if (vm->cfg.result)
		vm->cfg.result(vm, key, value, vm->cfg.ctx);
	return 0;
}

void hypercall_dispatch(struct hv_vcpu *v)
{
	struct hv_vm *vm = v->vm;
	struct hv_argpage a;
	bool copy_back = false;
	int64_t ret;
	uint64_t zero = 0;

	atomic_compare_exchange_strong(&vm->first_hc_ns, &zero, hv_now_ns());
	atomic_fetch_add(&vm->n_hypercalls, 1);
	memcpy(&a, v->argpage, sizeof(a));

	/* Linux drivers get the stateless calls and the devices only: the
	 * others block or end vCPUs in ways only the micro guest expects. */
	if (vm->cfg.kind == HV_GUEST_LINUX && a.nr < HC_DEVICE_BASE &&
	    a.nr != HC_NOP && a.nr != HC_TIME && a.nr != HC_RESULT)
		a.nr = HC_MAX;   /* -> -ENOSYS below */

	switch (a.nr) {
	case HC_CONSOLE:
		if (a.arg[0] > HV_ARG_DATA_MAX) {
			ret = -EINVAL;
			break;
		}
		console_write(vm, (const char *)a.data, a.arg[0]);
		ret = 0;
		break;
	case HC_EXIT:
		do_exit(v, a.arg[0]);
		return;
	case HC_TIME:
		ret = (int64_t)hv_now_ns();
		break;
	case HC_WAIT:
		ret = do_wait(v, a.arg[0]);
		break;
	case HC_NOP:
		ret = 0;
		break;
	case HC_READY:
		ret = do_ready(v, a.arg[0]);
		break;
	case HC_RESULT:
		ret = do_result(vm, a.arg[0], a.arg[1]);
		break;
	default:
		if (a.nr >= HC_DEVICE_BASE && a.nr < HC_MAX &&
		    vm->hc[a.nr - HC_DEVICE_BASE].fn) {
			ret = vm->hc[a.nr - HC_DEVICE_BASE].fn(
				vm, v->idx, &a, &copy_back,
				vm->hc[a.nr - HC_DEVICE_BASE].ctx);
		} else {
			ret = -ENOSYS;
		}
		break;
	}
	if (ret == -EINVAL || ret == -ENOSYS)
		atomic_fetch_add(&vm->n_bad, 1);
	if (atomic_load(&vm->stop_req))
		return;
	if (copy_back)
		memcpy(v->argpage->data, a.data, sizeof(a.data));
	v->argpage->ret2 = a.ret2;
	__atomic_store_n(&v->argpage->ret, ret, __ATOMIC_RELEASE);
}

int hv_vm_set_hypercall(struct hv_vm *vm, unsigned nr, hv_hypercall_fn fn,
			void *ctx)
{
	if (nr < HC_DEVICE_BASE || nr >= HC_MAX)
		return -EINVAL;
	vm->hc[nr - HC_DEVICE_BASE].fn = fn;
	vm->hc[nr - HC_DEVICE_BASE].ctx = ctx;
	return 0;
}

void hv_vm_notify(struct hv_vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	for (unsigned i = 0; i < vm->ncpus; i++)
		vm->vcpus[i].pending = true;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

int hv_vm_wait_ready(struct hv_vm *vm, uint64_t tag, double timeout_s)
{
	uint64_t deadline = hv_now_ns() + (uint64_t)(timeout_s * 1e9);
	int rc = -ETIMEDOUT;

	pthread_mutex_lock(&vm->lock);
	for (;;) {
		for (unsigned i = 0; i < vm->ncpus; i++)
			if (vm->vcpus[i].ready_tag == tag)
				rc = 0;
		if (rc == 0)
			break;
		if (vm->finished || vm->status.kind != HV_EXIT_RUNNING) {
			rc = -ESRCH;
			break;
		}
		if (hv_now_ns() >= deadline)
			break;
		vm_cond_wait_until(vm, deadline);
	}
	pthread_mutex_unlock(&vm->lock);
	return rc;
}

bool hv_vm_result(struct hv_vm *vm, uint64_t key, uint64_t *value)
{
	return hv_vm_result_at(vm, key, value, NULL);
}

bool hv_vm_result_at(struct hv_vm *vm, uint64_t key, uint64_t *value,
		     uint64_t *ns)
{
	bool ok = false;

	if (key >= HV_NRESULTS)
		return false;
	pthread_mutex_lock(&vm->lock);
	if (vm->results_set & (1u << key)) {
		*value = vm->results[key];
		if (ns)
			*ns = vm->results_ns[key];
		ok = true;
	}
	pthread_mutex_unlock(&vm->lock);
	return ok;
}
