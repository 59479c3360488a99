/*
 * wp.c - write-protecting guest RAM while its vCPUs run: userfaultfd in
 * write-protect mode.  A write into a protected page (a vCPU's, through
 * KVM, or a host thread's) blocks inside the kernel until the page is
 * unprotected, then completes; nothing else in the VM stops.  ksm merges
 * with it instead of pausing the VM (ksm/batch.c).
 *
 * Never mprotect running guest RAM instead: a KVM write to a read-only
 * host mapping becomes an emulated MMIO exit, and vector stores cannot be
 * emulated (../shared/README.md).
 *
 * What this file relies on, each checked on this kernel (6.18) by
 * tests/unit/test_wp.c:
 *  - The fd is made without UFFD_USER_MODE_ONLY: a vCPU's write faults in
 *    KVM's get_user_pages, a kernel-mode fault, which a user-mode-only
 *    userfaultfd turns into SIGBUS (-EFAULT from KVM_RUN).  Creating one
 *    needs CAP_SYS_PTRACE, vm.unprivileged_userfaultfd=1 or access to
 *    /dev/userfaultfd; without, write-protect is unavailable.
 *  - UFFD_FEATURE_WP_HUGETLBFS_SHMEM for RAM that is MAP_PRIVATE of a
 *    memfd, and UFFD_FEATURE_WP_UNPOPULATED (Linux 6.4) for anonymous RAM:
 *    without the latter a protect skips pages with no PTE, and a write to
 *    one (or to one a read faults in after the protect) lands.
 *  - UFFDIO_WRITEPROTECT returns after the TLB flush and KVM's MMU
 *    notifier: every write after it faults.  Mode 0 without DONTWAKE
 *    wakes the writers waiting in the range; they retry their fault.
 *  - MADV_DONTNEED of a protected page: on a file mapping (base memfd
 *    RAM) the PTE becomes a write-protect marker and the page stays
 *    protected (a pagemap entry of PM_SWAP | PM_UFFD_WP until unprotect);
 *    on anonymous memory the protection goes with the page.  Either way
 *    the old page is gone: a write after the discard lands on what now
 *    backs the page, never in the page that was compared.
 *  - mmap(MAP_FIXED) over registered RAM makes a new VMA that is not
 *    registered: a protect of it fails with ENOENT, and so does an
 *    unprotect, which then does not wake the writers that waited on the
 *    old page.  So backing.c registers every mapping it makes
 *    (hv_wp_register), a protect that meets ENOENT registers and retries,
 *    and an unprotect that fails wakes the range with UFFDIO_WAKE.
 *  - A writer woken before the handler read its event leaves no event.
 *
 * One handler thread serves every userfaultfd of the process (epoll).  It
 * only timestamps faults (for the stall figures: fault read to wake) and
 * resolves strays: a fault on a page that is not protected now (a stale
 * bit) is unprotected and woken at once, so no writer ever waits for
 * nobody.  Protection and the bitmap of protected pages change together
 * under wp->mu, which the handler takes too: it never unprotects a page
 * in the middle of a protect.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "vm_internal.h"

#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#define WP_FEATURES (UFFD_FEATURE_WP_HUGETLBFS_SHMEM | \
		     UFFD_FEATURE_WP_UNPOPULATED)
#define WP_MAX_AREAS 8
#define WP_MAX_WAITS 256    /* timestamped waiters; more only lose figures */

struct wp_area {
	uintptr_t start;
	uint64_t len;
	uint64_t *prot;     /* bit per page: protected now */
};

struct hv_wp {
	int fd;
	pthread_mutex_t mu;
	struct wp_area area[WP_MAX_AREAS];
	unsigned nareas;
	struct { uintptr_t addr; uint64_t t; } wait[WP_MAX_WAITS];
	unsigned nwait;
	uint64_t faults, strays, late;
	struct hv_wp *next;     /* g_live */
};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_rc;            /* 0: available, else -errno */
static char g_why[200];
static int g_ep = -1;
/* g_live and the epoll set; the handler holds it while it serves one */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hv_wp *g_live;

/* ------------------------------------------------------------- ioctls */

static int uffd_new(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	int dev, e;

	if (fd >= 0 || errno != EPERM)
		return fd >= 0 ? fd : -errno;
	/* unprivileged with vm.unprivileged_userfaultfd = 0: the device
	 * gives kernel-mode faults to whoever may open it */
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -EPERM;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	e = errno;
	close(dev);
	return fd >= 0 ? fd : -e;
}

static int wp_ioctl(int fd, uintptr_t a, uint64_t len, bool on)
{
	struct uffdio_writeprotect w = {
		.range = { .start = a, .len = len },
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return ioctl(fd, UFFDIO_WRITEPROTECT, &w) < 0 ? -errno : 0;
}

static void wake(int fd, uintptr_t a, uint64_t len)
{
	struct uffdio_range r = { .start = a, .len = len };

	ioctl(fd, UFFDIO_WAKE, &r);
}

static int reg(int fd, uintptr_t a, uint64_t len)
{
	struct uffdio_register r = {
		.range = { .start = a, .len = len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	if (ioctl(fd, UFFDIO_REGISTER, &r) < 0)
		return -errno;
	return r.ioctls & (1ULL << _UFFDIO_WRITEPROTECT) ? 0 : -EOPNOTSUPP;
}

/* --------------------------------------------------------------- bits */

static struct wp_area *area_of(struct hv_wp *wp, uintptr_t a, uint64_t len)
{
	for (unsigned i = 0; i < wp->nareas; i++) {
		struct wp_area *ar = &wp->area[i];
		if (a >= ar->start && a - ar->start <= ar->len &&
		    len <= ar->len - (a - ar->start))
			return ar;
	}
	return NULL;
}

static void bits_set(struct wp_area *ar, uintptr_t a, uint64_t len, bool on)
{
	uint64_t i = (a - ar->start) / HV_PAGE_SIZE, n = len / HV_PAGE_SIZE;

	for (; n; i++, n--)
		if (on)
			ar->prot[i / 64] |= 1ULL << (i % 64);
		else
			ar->prot[i / 64] &= ~(1ULL << (i % 64));
}

static bool page_protected(struct hv_wp *wp, uintptr_t a)
{
	struct wp_area *ar = area_of(wp, a, HV_PAGE_SIZE);
	uint64_t i;

	if (!ar)
		return false;
	i = (a - ar->start) / HV_PAGE_SIZE;
	return (ar->prot[i / 64] >> (i % 64)) & 1;
}

/* ------------------------------------------------------------ handler */

/* Reads the faults queued on wp: timestamps the waiters, frees strays. */
static void serve(struct hv_wp *wp)
{
	struct uffd_msg m[32];
	ssize_t r;

	while ((r = read(wp->fd, m, sizeof(m))) >= (ssize_t)sizeof(m[0])) {
		uint64_t t = hv_now_ns();

		pthread_mutex_lock(&wp->mu);
		for (size_t i = 0; i < (size_t)r / sizeof(m[0]); i++) {
			uintptr_t a;

			if (m[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			a = (uintptr_t)m[i].arg.pagefault.address &
			    ~(uintptr_t)(HV_PAGE_SIZE - 1);
			wp->faults++;
			if (page_protected(wp, a)) {
				if (wp->nwait < WP_MAX_WAITS) {
					wp->wait[wp->nwait].addr = a;
					wp->wait[wp->nwait++].t = t;
				}
				continue;
			}
			/* nobody will unprotect it: do it now (a stale
			 * bit), and wake the writer */
			wp->strays++;
			if (wp_ioctl(wp->fd, a, HV_PAGE_SIZE, false))
				wake(wp->fd, a, HV_PAGE_SIZE);
		}
		pthread_mutex_unlock(&wp->mu);
	}
}

static void *handler(void *arg)
{
	struct epoll_event ev[8];

	(void)arg;
	for (;;) {
		int n = epoll_wait(g_ep, ev, 8, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return NULL;
		pthread_mutex_lock(&g_lock);
		for (int i = 0; i < n; i++) {
			struct hv_wp *wp = g_live;
			while (wp && wp != ev[i].data.ptr)
				wp = wp->next;
			if (wp)          /* not closed meanwhile */
				serve(wp);
		}
		pthread_mutex_unlock(&g_lock);
	}
}

/* Once per process: can this kernel and process do it, and the handler. */
static void probe(void)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	pthread_attr_t at;
	pthread_t thr;
	sigset_t all, old;
	int fd = uffd_new();

	if (fd < 0) {
		g_rc = fd;
		snprintf(g_why, sizeof(g_why), "userfaultfd: %s (needs "
			 "CAP_SYS_PTRACE, vm.unprivileged_userfaultfd=1 or "
			 "/dev/userfaultfd)", strerror(-fd));
		return;
	}
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		g_rc = -errno;
		snprintf(g_why, sizeof(g_why), "UFFDIO_API: %s", strerror(errno));
		close(fd);
		return;
	}
	close(fd);
	if ((api.features & WP_FEATURES) != WP_FEATURES) {
		g_rc = -EOPNOTSUPP;
		snprintf(g_why, sizeof(g_why), "the kernel lacks userfaultfd "
			 "write-protect of %s (Linux 6.4 has both)",
			 api.features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM ?
			 "unpopulated pages" : "shmem");
		return;
	}
	g_ep = epoll_create1(EPOLL_CLOEXEC);
	if (g_ep < 0) {
		g_rc = -errno;
		snprintf(g_why, sizeof(g_why), "epoll: %s", strerror(errno));
		return;
	}
	/* the handler takes no signal (vCPU kicks are for vCPU threads) */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 256u << 10);
	g_rc = -pthread_create(&thr, &at, handler, NULL);
	pthread_attr_destroy(&at);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (g_rc)
		snprintf(g_why, sizeof(g_why), "handler thread: %s",
			 strerror(-g_rc));
	else
		pthread_setname_np(thr, "hv-wp");
}

/* ---------------------------------------------------------------- API */

int hv_wp_supported(char *why, size_t len)
{
	pthread_once(&g_once, probe);
	if (g_rc && why && len)
		snprintf(why, len, "%s", g_why);
	return g_rc;
}

int hv_wp_open(struct hv_wp **out, char *err, size_t errlen)
{
	struct uffdio_api api = { .api = UFFD_API, .features = WP_FEATURES };
	struct epoll_event ev = { .events = EPOLLIN };
	struct hv_wp *wp;
	int rc;

	*out = NULL;
	if ((rc = hv_wp_supported(err, errlen)))
		return rc;
	wp = calloc(1, sizeof(*wp));
	if (!wp) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&wp->mu, NULL);
	wp->fd = uffd_new();
	if (wp->fd < 0 || ioctl(wp->fd, UFFDIO_API, &api) < 0) {
		rc = wp->fd < 0 ? wp->fd : -errno;
		snprintf(err, errlen, "userfaultfd: %s", strerror(-rc));
		goto fail;
	}
	ev.data.ptr = wp;
	pthread_mutex_lock(&g_lock);
	rc = epoll_ctl(g_ep, EPOLL_CTL_ADD, wp->fd, &ev) < 0 ? -errno : 0;
	if (!rc) {
		wp->next = g_live;
		g_live = wp;
	}
	pthread_mutex_unlock(&g_lock);
	if (rc) {
		snprintf(err, errlen, "epoll: %s", strerror(-rc));
		goto fail;
	}
	*out = wp;
	return 0;
fail:
	if (wp->fd >= 0)
		close(wp->fd);
	pthread_mutex_destroy(&wp->mu);
	free(wp);
	return rc;
}

void hv_wp_close(struct hv_wp *wp)
{
	struct hv_wp **pp;

	if (!wp)
		return;
	/* once g_lock is ours the handler is not serving wp, and never will */
	pthread_mutex_lock(&g_lock);
	epoll_ctl(g_ep, EPOLL_CTL_DEL, wp->fd, NULL);
	for (pp = &g_live; *pp && *pp != wp; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = wp->next;
	pthread_mutex_unlock(&g_lock);
	/* closing unregisters the memory, clears its protection and wakes
	 * every writer still waiting */
	close(wp->fd);
	for (unsigned i = 0; i < wp->nareas; i++)
		free(wp->area[i].prot);
	pthread_mutex_destroy(&wp->mu);
	free(wp);
}

int hv_wp_add(struct hv_wp *wp, void *hva, uint64_t len)
{
	uintptr_t a = (uintptr_t)hva;
	int rc;

	if ((a | len) & (HV_PAGE_SIZE - 1) || !len)
		return -EINVAL;
	pthread_mutex_lock(&wp->mu);
	if (wp->nareas == WP_MAX_AREAS) {
		rc = -ENOSPC;
	} else if (!(wp->area[wp->nareas].prot =
		     calloc((len / HV_PAGE_SIZE + 63) / 64, sizeof(uint64_t)))) {
		rc = -ENOMEM;
	} else if ((rc = reg(wp->fd, a, len))) {
		free(wp->area[wp->nareas].prot);
	} else {
		wp->area[wp->nareas].start = a;
		wp->area[wp->nareas++].len = len;
	}
	pthread_mutex_unlock(&wp->mu);
	return rc;
}

int hv_wp_register(struct hv_wp *wp, void *hva, uint64_t len)
{
	if (((uintptr_t)hva | len) & (HV_PAGE_SIZE - 1) || !len)
		return -EINVAL;
	return reg(wp->fd, (uintptr_t)hva, len);
}

/* Spans [base + s.gpa, + s.len) of one area each, or -EINVAL. */
static int check_spans(struct hv_wp *wp, uint8_t *base,
		       const struct hv_span *s, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (((uintptr_t)base + s[i].gpa) & (HV_PAGE_SIZE - 1) ||
		    s[i].len & (HV_PAGE_SIZE - 1) || !s[i].len ||
		    !area_of(wp, (uintptr_t)base + s[i].gpa, s[i].len))
			return -EINVAL;
	return 0;
}

/* Unprotects s[0..n) and wakes their writers; returns the first error. */
static int lift(struct hv_wp *wp, uint8_t *base, const struct hv_span *s,
		unsigned n)
{
	int first = 0;

	for (unsigned i = 0; i < n; i++) {
		uintptr_t a = (uintptr_t)base + s[i].gpa;
		int rc = wp_ioctl(wp->fd, a, s[i].len, false);

		if (rc) {
			/* no wake came with the failure (e.g. an unregistered
			 * new mapping): the writers of the old one still wait */
			wake(wp->fd, a, s[i].len);
			first = first ? first : rc;
		}
		bits_set(area_of(wp, a, s[i].len), a, s[i].len, false);
	}
	return first;
}

int hv_wp_protect(struct hv_wp *wp, uint8_t *base, const struct hv_span *s,
		  unsigned n)
{
	int rc;

	pthread_mutex_lock(&wp->mu);
	rc = check_spans(wp, base, s, n);
	for (unsigned i = 0; !rc && i < n; i++) {
		uintptr_t a = (uintptr_t)base + s[i].gpa;

		bits_set(area_of(wp, a, s[i].len), a, s[i].len, true);
		rc = wp_ioctl(wp->fd, a, s[i].len, true);
		/* a mapping made without hv_wp_register(), or whose
		 * registration failed: register it now */
		if (rc == -ENOENT && reg(wp->fd, a, s[i].len) == 0) {
			wp->late++;
			rc = wp_ioctl(wp->fd, a, s[i].len, true);
		}
		if (rc)   /* all or nothing */
			lift(wp, base, s, i + 1);
	}
	pthread_mutex_unlock(&wp->mu);
	return rc;
}

int hv_wp_unprotect(struct hv_wp *wp, uint8_t *base, const struct hv_span *s,
		    unsigned n, struct hv_wp_waits *w)
{
	uint64_t now;
	int rc;

	if (w)
		w->n = w->max_ns = 0;
	pthread_mutex_lock(&wp->mu);
	rc = check_spans(wp, base, s, n);
	if (!rc)
		rc = lift(wp, base, s, n);
	now = hv_now_ns();
	for (unsigned i = 0; i < wp->nwait;) {
		uintptr_t a = wp->wait[i].addr;
		unsigned j;

		for (j = 0; j < n && (a < (uintptr_t)base + s[j].gpa ||
				      a >= (uintptr_t)base + s[j].gpa + s[j].len);
		     j++)
			;
		if (j == n) {
			i++;
			continue;
		}
		if (w) {
			uint64_t d = now - wp->wait[i].t;
			w->n++;
			w->max_ns = d > w->max_ns ? d : w->max_ns;
		}
		wp->wait[i] = wp->wait[--wp->nwait];
	}
	pthread_mutex_unlock(&wp->mu);
	return rc;
}

void hv_wp_counters(struct hv_wp *wp, uint64_t *faults, uint64_t *strays,
		    uint64_t *late)
{
	pthread_mutex_lock(&wp->mu);
	*faults = wp->faults;
	*strays = wp->strays;
	*late = wp->late;
	pthread_mutex_unlock(&wp->mu);
}

/* ------------------------------------------------------------- VM RAM */

void wp_setup(struct hv_vm *vm)
{
	char err[200];
	int rc = 0;

	if (vm->cfg.no_write_protect) {
		snprintf(vm->wp_why, sizeof(vm->wp_why), "off in the VM's config");
		return;
	}
	if (hv_wp_open(&vm->wp, err, sizeof(err)) == 0) {
		for (unsigned i = 0; !rc && i < vm->nranges; i++)
			rc = hv_wp_add(vm->wp, vm->ranges[i].hva,
				       vm->ranges[i].len);
		if (!rc)
			return;
		snprintf(err, sizeof(err), "UFFDIO_REGISTER: %s", strerror(-rc));
		hv_wp_close(vm->wp);
		vm->wp = NULL;
	}
	snprintf(vm->wp_why, sizeof(vm->wp_why), "%s", err);
}

void wp_teardown(struct hv_vm *vm)
{
	hv_wp_close(vm->wp);
	vm->wp = NULL;
}

/* After backing.c changed what maps [gpa, gpa+len) (a new VMA). */
void wp_remapped(struct hv_vm *vm, uint64_t gpa, uint64_t len)
{
	if (vm->wp)
		hv_wp_register(vm->wp, vm->ram + gpa, len);
}

int wp_fd(const struct hv_vm *vm)
{
	return vm->wp ? vm->wp->fd : -1;
}

bool hv_vm_wp_enabled(const struct hv_vm *vm, const char **why)
{
	if (why)
		*why = vm->wp ? "" : vm->wp_why;
	return vm->wp != NULL;
}

static int vm_spans_ok(struct hv_vm *vm, const struct hv_span *s, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (hv_vm_check_range(vm, s[i].gpa, s[i].len))
			return -EINVAL;
	return 0;
}

int hv_vm_wp_protect(struct hv_vm *vm, const struct hv_span *s, unsigned n)
{
	int rc = vm->wp ? vm_spans_ok(vm, s, n) : -EOPNOTSUPP;

	return rc ? rc : hv_wp_protect(vm->wp, vm->ram, s, n);
}

int hv_vm_wp_unprotect(struct hv_vm *vm, const struct hv_span *s, unsigned n,
		       struct hv_wp_waits *w)
{
	int rc = vm->wp ? vm_spans_ok(vm, s, n) : -EOPNOTSUPP;

	if (rc && w)
		w->n = w->max_ns = 0;
	return rc ? rc : hv_wp_unprotect(vm->wp, vm->ram, s, n, w);
}
