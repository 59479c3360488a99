/*
 * kvm.c - the process-wide KVM handle: opening /dev/kvm, checking the API
 * version and the capabilities hv-core relies on, and the signal used to
 * kick vCPU threads out of KVM_RUN.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <linux/kvm.h>
#include "vm_internal.h"

static int g_kvm = -1;
static pthread_mutex_t g_init_lock = PTHREAD_MUTEX_INITIALIZER;

int kvm_fd(void) { return g_kvm; }

/* SIGRTMIN is what glibc leaves free; the handler does nothing: the point
 * of the signal is that KVM_RUN returns -EINTR. */
int kvm_kick_signal(void) { return SIGRTMIN; }

static void kick_handler(int sig) { (void)sig; }

bool hv_kvm_available(void)
{
	return access("/dev/kvm", R_OK | W_OK) == 0;
}

static const struct { long cap; const char *name; } needed_caps[] = {
	{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
	{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
	{ KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR" },
	{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
};

int hv_init(char *err, size_t errlen)
{
	int ret = 0;

	pthread_mutex_lock(&g_init_lock);
	if (g_kvm >= 0)
		goto out;
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "/dev/kvm: %s", strerror(errno));
		goto out;
	}
	int v = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (v != KVM_API_VERSION) {
		snprintf(err, errlen, "/dev/kvm: API version %d, need %d", v,
			 KVM_API_VERSION);
		close(fd);
		ret = -ENOTSUP;
		goto out;
	}
	for (size_t i = 0; i < sizeof(needed_caps) / sizeof(needed_caps[0]); i++) {
		if (ioctl(fd, KVM_CHECK_EXTENSION, needed_caps[i].cap) <= 0) {
			snprintf(err, errlen, "/dev/kvm: missing %s",
				 needed_caps[i].name);
			close(fd);
			ret = -ENOTSUP;
			goto out;
		}
	}
	struct sigaction sa = { .sa_handler = kick_handler };
	sigemptyset(&sa.sa_mask);
	sigaction(kvm_kick_signal(), &sa, NULL);
	g_kvm = fd;
out:
	pthread_mutex_unlock(&g_init_lock);
	return ret;
}

uint64_t hv_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
