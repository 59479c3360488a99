/*
 * vm.c - a VM's lifecycle: validating its configuration, creating the KVM
 * VM, its RAM and vCPUs, loading the guest, starting and joining the vCPU
 * threads, stopping, and reporting how it ended.
 *
 * A VM that fails to be created leaves nothing behind (no fd, no mapping,
 * no thread): hv_vm_create() tears down what it built before it returns.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "vm_internal.h"

#define MIB (1ull << 20)
#define HV_MEM_MAX (1ull << 40)

#if defined(__SANITIZE_ADDRESS__)
#define VCPU_STACK (2u << 20)
#else
#define VCPU_STACK (256u << 10)
#endif

static int check_config(const struct hv_vm_config *c, char *err, size_t errlen)
{
	const char *n = c->name ? c->name : "";
	uint64_t min = c->kind == HV_GUEST_LINUX ? 32 * MIB : 4 * MIB;

	if (!*n || strlen(n) > 63 || strspn(n, "abcdefghijklmnopqrstuvwxyz"
		"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != strlen(n)) {
		snprintf(err, errlen, "name: '%s' must be 1-63 characters of "
			 "[A-Za-z0-9_.-]", n);
		return -EINVAL;
	}
	if (c->kind != HV_GUEST_MICRO && c->kind != HV_GUEST_LINUX) {
		snprintf(err, errlen, "%s: kind: unknown guest kind %d", n, c->kind);
		return -EINVAL;
	}
	if (c->mem_bytes < min || c->mem_bytes > HV_MEM_MAX ||
	    c->mem_bytes % (2 * MIB)) {
		snprintf(err, errlen, "%s: mem: %llu bytes; must be a multiple of 2 MiB "
			 "from %llu MiB to %llu GiB", n,
			 (unsigned long long)c->mem_bytes,
			 (unsigned long long)(min / MIB),
			 (unsigned long long)(HV_MEM_MAX >> 30));
		return -EINVAL;
	}
	if (c->ncpus < 1 || c->ncpus > HV_MAX_VCPUS) {
		snprintf(err, errlen, "%s: cpus: %u; must be 1 to %u", n, c->ncpus,
			 HV_MAX_VCPUS);
		return -EINVAL;
	}
	if (!c->image || !*c->image) {
		snprintf(err, errlen, "%s: %s: missing", n,
			 c->kind == HV_GUEST_LINUX ? "kernel" : "image");
		return -EINVAL;
	}
	if (c->timeout_s < 0) {
		snprintf(err, errlen, "%s: timeout: must not be negative", n);
		return -EINVAL;
	}
	return 0;
}

/* The UART's interrupt line, ISA IRQ 4 on the in-kernel irqchip. */
static void serial_irq(void *ctx, int level)
{
	struct hv_vm *vm = ctx;
	struct kvm_irq_level l = { .irq = SERIAL_COM1_IRQ, .level = (uint32_t)level };
	ioctl(vm->fd, KVM_IRQ_LINE, &l);
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int hv_vm_create(const struct hv_vm_config *cfg, struct hv_vm **out,
		 char *err, size_t errlen)
{
	int rc = check_config(cfg, err, errlen);
	if (rc)
		return rc;
	if (kvm_fd() < 0 && (rc = hv_init(err, errlen)) < 0)
		return rc;

	struct hv_vm *vm = calloc(1, sizeof(*vm));
	if (!vm) {
		snprintf(err, errlen, "%s: out of memory", cfg->name);
		return -ENOMEM;
	}
	snprintf(vm->name, sizeof(vm->name), "%s", cfg->name);
	vm->cfg = *cfg;
	vm->image = dup_or_null(cfg->image);
	vm->initrd = dup_or_null(cfg->initrd);
	vm->cmdline = dup_or_null(cfg->cmdline);
	vm->cfg.name = vm->name;
	vm->cfg.image = vm->image;
	vm->cfg.initrd = vm->initrd;
	vm->cfg.cmdline = vm->cmdline;
	vm->ncpus = cfg->ncpus;
	vm->fd = -1;
	for (unsigned i = 0; i < HV_MAX_VCPUS; i++)
		vm->vcpus[i].fd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->dirty_lock, NULL);
	pthread_mutex_init(&vm->con_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&vm->cond, &ca);
	pthread_condattr_destroy(&ca);
	if ((rc = console_init(vm, err, errlen)) < 0)
		goto fail;

	vm->fd = ioctl(kvm_fd(), KVM_CREATE_VM, 0);
	if (vm->fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: KVM_CREATE_VM: %s", vm->name, strerror(errno));
		goto fail;
	}
	if (cfg->kind == HV_GUEST_LINUX &&
	    (rc = linux_vm_init(vm->fd, err, errlen)) < 0)
		goto fail;
	if ((rc = mem_setup(vm, err, errlen)) < 0)
		goto fail;
	if (cfg->kind == HV_GUEST_MICRO) {
		rc = micro_load(vm, err, errlen);
	} else {
		struct linux_boot_cfg lc = {
			.kernel = vm->image, .initrd = vm->initrd,
			.cmdline = vm->cmdline, .ranges = vm->ranges,
			.nranges = vm->nranges,
		};
		serial8250_init(&vm->serial, console_serial_out, vm);
		serial8250_set_irq(&vm->serial, serial_irq);
		rc = linux_load(&lc, &vm->lentry, err, errlen);
	}
	if (rc < 0)
		goto fail;
	for (unsigned i = 0; i < vm->ncpus; i++)
		if ((rc = vcpu_create(vm, i, err, errlen)) < 0)
			goto fail;
	*out = vm;
	return 0;
fail:
	hv_vm_destroy(vm);
	return rc;
}

int hv_vm_start(struct hv_vm *vm)
{
	pthread_attr_t a;
	int rc = 0;

	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, VCPU_STACK);
	vm->start_ns = hv_now_ns();
	if (vm->cfg.timeout_s > 0) {
		vm->deadline_ns = vm->start_ns + (uint64_t)(vm->cfg.timeout_s * 1e9);
		watchdog_add(vm);
	}
	pthread_mutex_lock(&vm->lock);
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct hv_vcpu *v = &vm->vcpus[i];
		rc = -pthread_create(&v->thread, &a, vcpu_thread, v);
		if (rc) {
			pthread_mutex_unlock(&vm->lock);
			vm_end(vm, HV_EXIT_ERROR, 0, "vcpu%u: cannot start thread: %s",
			       i, strerror(-rc));
			pthread_mutex_lock(&vm->lock);
			break;
		}
		v->started = true;
		vm->threads_alive++;
	}
	if (vm->threads_alive == 0) {
		vm->finished = true;
		vm->end_ns = hv_now_ns();
	}
	pthread_mutex_unlock(&vm->lock);
	pthread_attr_destroy(&a);
	return rc;
}

void hv_vm_stop(struct hv_vm *vm)
{
	vm_end(vm, HV_EXIT_STOPPED, 0, "stopped by the host");
}

void hv_vm_wait(struct hv_vm *vm)
{
	if (vm->joined)
		return;
	for (unsigned i = 0; i < vm->ncpus; i++)
		if (vm->vcpus[i].started)
			pthread_join(vm->vcpus[i].thread, NULL);
	vm->joined = true;
	if (vm->cfg.timeout_s > 0)
		watchdog_remove(vm);
	console_flush(vm);
}

bool hv_vm_wait_timeout(struct hv_vm *vm, double seconds)
{
	uint64_t deadline = hv_now_ns() + (uint64_t)(seconds * 1e9);
	bool done;

	pthread_mutex_lock(&vm->lock);
	while (!(done = vm->finished || vm->threads_alive == 0)) {
		if (hv_now_ns() >= deadline)
			break;
		vm_cond_wait_until(vm, deadline);
	}
	pthread_mutex_unlock(&vm->lock);
	if (done)
		hv_vm_wait(vm);
	return done;
}

void hv_vm_destroy(struct hv_vm *vm)
{
	if (!vm)
		return;
	hv_vm_stop(vm);
	hv_vm_wait(vm);
	for (unsigned i = 0; i < vm->ncpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	if (vm->fd >= 0)
		close(vm->fd);
	mem_teardown(vm);
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->lock);
	pthread_mutex_destroy(&vm->dirty_lock);
	pthread_mutex_destroy(&vm->con_lock);
	free(vm->image);
	free(vm->initrd);
	free(vm->cmdline);
	free(vm);
}

void hv_vm_status(struct hv_vm *vm, struct hv_exit_status *st)
{
	pthread_mutex_lock(&vm->lock);
	*st = vm->status;
	pthread_mutex_unlock(&vm->lock);
}

const char *hv_exit_kind_name(enum hv_exit_kind k)
{
	static const char *names[] = { "running", "exited", "crashed", "timeout",
				       "stopped", "error" };
	return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}

const char *hv_vm_name(const struct hv_vm *vm) { return vm->name; }
uint64_t hv_vm_mem_bytes(const struct hv_vm *vm) { return vm->cfg.mem_bytes; }
unsigned hv_vm_ncpus(const struct hv_vm *vm) { return vm->ncpus; }
int hv_vm_base_memfd(const struct hv_vm *vm) { return vm->cfg.base_memfd; }
uint32_t hv_vm_features(const struct hv_vm *vm) { return vm->cfg.features; }
uint64_t hv_vm_start_ns(const struct hv_vm *vm) { return vm->start_ns; }
uint64_t hv_vm_end_ns(const struct hv_vm *vm) { return vm->end_ns; }
uint64_t hv_vm_first_hypercall_ns(const struct hv_vm *vm)
{
	return atomic_load(&((struct hv_vm *)vm)->first_hc_ns);
}

void hv_vm_counters(const struct hv_vm *vm, struct hv_vm_counters *c)
{
	struct hv_vm *m = (struct hv_vm *)vm;
	c->hypercalls = atomic_load(&m->n_hypercalls);
	c->exits = atomic_load(&m->n_exits);
	c->bad_hypercalls = atomic_load(&m->n_bad);
	c->pauses = atomic_load(&m->n_pauses);
	c->wp_faults = c->wp_strays = c->wp_late_registers = 0;
	if (m->wp)
		hv_wp_counters(m->wp, &c->wp_faults, &c->wp_strays,
			       &c->wp_late_registers);
	pthread_mutex_lock(&m->con_lock);
	c->console_suppressed_bytes = m->con.supp_bytes;
	c->console_suppressed_lines = m->con.supp_lines;
	pthread_mutex_unlock(&m->con_lock);
}
