/*
 * watchdog.c - per-VM timeouts.  One process-wide thread, started with the
 * first VM that has a timeout, ends VMs whose deadline passed (a hung
 * guest then affects only itself).  It ticks every 50 ms, so timeouts are
 * that precise.
 */
#include <pthread.h>
#include <unistd.h>
#include "vm_internal.h"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hv_vm *g_list;
static bool g_started;

static void *watchdog_thread(void *arg)
{
	(void)arg;
	for (;;) {
		usleep(50000);
		uint64_t now = hv_now_ns();
		pthread_mutex_lock(&g_lock);
		for (struct hv_vm *vm = g_list; vm; vm = vm->watch_next)
			if (vm->deadline_ns && now >= vm->deadline_ns) {
				vm_end(vm, HV_EXIT_TIMEOUT, 0, "timed out after %.1f s",
				       vm->cfg.timeout_s);
				vm->deadline_ns = 0;
			}
		pthread_mutex_unlock(&g_lock);
	}
	return NULL;
}

void watchdog_add(struct hv_vm *vm)
{
	pthread_mutex_lock(&g_lock);
	if (!g_started) {
		pthread_t t;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&a, 256 << 10);
		if (pthread_create(&t, &a, watchdog_thread, NULL) == 0)
			g_started = true;
		pthread_attr_destroy(&a);
	}
	vm->watch_next = g_list;
	g_list = vm;
	pthread_mutex_unlock(&g_lock);
}

void watchdog_remove(struct hv_vm *vm)
{
	pthread_mutex_lock(&g_lock);
	for (struct hv_vm **p = &g_list; *p; p = &(*p)->watch_next)
		if (*p == vm) {
			*p = vm->watch_next;
			break;
		}
	pthread_mutex_unlock(&g_lock);
}
