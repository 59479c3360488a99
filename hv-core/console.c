/*
 * console.c - a VM's console output (micro guest HC_CONSOLE, or the Linux
 * serial port): the VM's glue around its con_filter (console_filter.c,
 * which escapes hostile bytes, assembles lines and enforces the VM's
 * console budget), under the VM's con_lock, with the monotonic clock.
 * Each line goes to the VM's console callback, or is printed as
 * "[name] line" when there is none; the global print lock keeps lines of
 * different VMs from interleaving.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include "vm_internal.h"

static pthread_mutex_t g_print_lock = PTHREAD_MUTEX_INITIALIZER;

static void emit(void *ctx, const char *line, size_t len)
{
	struct hv_vm *vm = ctx;

	if (vm->cfg.console) {
		vm->cfg.console(vm, line, len, vm->cfg.ctx);
	} else {
		pthread_mutex_lock(&g_print_lock);
		printf("[%s] %s\n", vm->name, line);
		fflush(stdout);
		pthread_mutex_unlock(&g_print_lock);
	}
}

int console_init(struct hv_vm *vm, char *err, size_t errlen)
{
	if (con_filter_init(&vm->con, vm->cfg.console_rate, vm->cfg.console_burst,
			    emit, vm, hv_now_ns()) < 0) {
		snprintf(err, errlen, "%s: console_burst: %llu bytes; must be 0 "
			 "(default) or at least %u (one line)", vm->name,
			 (unsigned long long)vm->cfg.console_burst,
			 HV_CONSOLE_LINE + 1);
		return -EINVAL;
	}
	return 0;
}

void console_write(struct hv_vm *vm, const char *buf, size_t len)
{
	pthread_mutex_lock(&vm->con_lock);
	con_filter_write(&vm->con, buf, len, hv_now_ns());
	pthread_mutex_unlock(&vm->con_lock);
}

/* The serial port's output callback: called with con_lock already held by
 * the port-I/O path (vcpu.c). */
void console_serial_out(void *ctx, const char *buf, unsigned len)
{
	struct hv_vm *vm = ctx;
	con_filter_write(&vm->con, buf, len, hv_now_ns());
}

void console_flush(struct hv_vm *vm)
{
	pthread_mutex_lock(&vm->con_lock);
	con_filter_flush(&vm->con, hv_now_ns());
	pthread_mutex_unlock(&vm->con_lock);
}
