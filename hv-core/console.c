/*
 * console.c - assembling a VM's console output (micro guest HC_CONSOLE, or
 * the Linux serial port) into lines and handing each to the VM's console
 * callback, or printing it as "[name] line" when there is none.
 *
 * Guest text is hostile: control characters other than tab are replaced
 * with '?' so that a guest cannot drive the user's terminal, and lines are
 * cut at HV_CONSOLE_LINE bytes.
 */
#include <pthread.h>
#include <stdio.h>
#include "vm_internal.h"

static pthread_mutex_t g_print_lock = PTHREAD_MUTEX_INITIALIZER;

static void emit_locked(struct hv_vm *vm)
{
	vm->conline[vm->conlen] = 0;
	if (vm->cfg.console) {
		vm->cfg.console(vm, vm->conline, vm->conlen, vm->cfg.ctx);
	} else {
		pthread_mutex_lock(&g_print_lock);
		printf("[%s] %s\n", vm->name, vm->conline);
		fflush(stdout);
		pthread_mutex_unlock(&g_print_lock);
	}
	vm->conlen = 0;
}

static void console_write_locked(struct hv_vm *vm, const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c == '\n') {
			emit_locked(vm);
			continue;
		}
		if (c == '\r')
			continue;
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			c = '?';
		vm->conline[vm->conlen++] = (char)c;
		if (vm->conlen == HV_CONSOLE_LINE)
			emit_locked(vm);
	}
}

void console_write(struct hv_vm *vm, const char *buf, size_t len)
{
	pthread_mutex_lock(&vm->con_lock);
	console_write_locked(vm, buf, len);
	pthread_mutex_unlock(&vm->con_lock);
}

/* The serial port's output callback: called with con_lock already held by
 * the port-I/O path (vcpu.c). */
void console_serial_out(void *ctx, const char *buf, unsigned len)
{
	console_write_locked(ctx, buf, len);
}

void console_flush(struct hv_vm *vm)
{
	pthread_mutex_lock(&vm->con_lock);
	if (vm->conlen)
		emit_locked(vm);
	pthread_mutex_unlock(&vm->con_lock);
}
