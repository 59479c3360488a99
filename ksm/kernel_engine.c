/*
 * kernel_engine.c - ksm.engine=kernel: Linux KSM on the same guest RAM,
 * behind the same API and stats, so the two engines compare fairly.
 *
 * Guest RAM gets MADV_MERGEABLE (private anonymous pages, including the
 * private copies inside base-memfd mappings, are what ksmd merges).
 * ksm_start saves /sys/kernel/mm/ksm's tunables, writes ours and run=1;
 * ksm_stop always writes run=0 (even after a failed start) and restores
 * the others.  Mapping: pages_to_scan = pages_per_sec * sleep_ms / 1000
 * (the kernel's own default when pages_per_sec is 0), sleep_millisecs =
 * sleep_ms, max_page_sharing = max_sharers, merge_across_nodes, and
 * use_zero_pages=1 so zero pages count apart as in our engine.  Per-VM
 * figures are not available from the kernel; the global ones are read
 * from sysfs and ksmd's CPU time from /proc/<ksmd>/stat.
 *
 * /sys/kernel/mm/ksm is one per host, so the engine holds an exclusive
 * flock on KSM_LOCK from start to stop: a second densevm (or test) gets
 * -EBUSY instead of interleaving its save/restore with ours, which would
 * leave the host with someone else's tunables.  Without the lock, stop
 * writes run=0 only if it can take the lock (nobody else's engine runs).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>
#include "internal.h"

#define KSM_SYS "/sys/kernel/mm/ksm/"
#define KSM_LOCK "/run/lock/densevm-ksm-kernel.lock"
#define KSM_LOCK_FALLBACK "/tmp/densevm-ksm-kernel.lock"

static const char *const saved_names[] = {
	"pages_to_scan", "sleep_millisecs", "max_page_sharing",
	"merge_across_nodes", "use_zero_pages",
};
#define NSAVED (sizeof(saved_names) / sizeof(saved_names[0]))

struct kengine {
	bool saved;
	char old[NSAVED][32];
	int ksmd_pid;
	uint64_t scans0, scanned0;  /* counters at ksm_start: stats are ours */
	double cpu0;
	int lock_fd;     /* holds KSM_LOCK while >= 0 */
};

/* Takes the host-wide engine lock without waiting: 0 or -EBUSY. */
static int lock_take(struct kengine *ke)
{
	int fd;

	if (ke->lock_fd >= 0)
		return 0;
	fd = open(KSM_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		fd = open(KSM_LOCK_FALLBACK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return 0;   /* nowhere to lock: behave as before */
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);
		return -EBUSY;
	}
	ke->lock_fd = fd;
	return 0;
}

bool ksm_kernel_engine_busy(void)
{
	static const char *const locks[] = { KSM_LOCK, KSM_LOCK_FALLBACK };
	bool busy = false;
	/* both: lock_take uses the fallback where /run/lock cannot be opened */
	for (int i = 0; i < 2 && !busy; i++) {
		int fd = open(locks[i], O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;   /* never made: nobody holds it */
		busy = flock(fd, LOCK_EX | LOCK_NB) != 0;
		close(fd);   /* releases it if it was ours to take */
	}
	return busy;
}

static void lock_drop(struct kengine *ke)
{
	if (ke->lock_fd >= 0)
		close(ke->lock_fd);   /* releases the flock */
	ke->lock_fd = -1;
}

static int sys_read(const char *name, char *buf, size_t len)
{
	char path[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), KSM_SYS "%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -EIO;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

static uint64_t sys_u64(const char *name)
{
	char buf[32];

	return sys_read(name, buf, sizeof(buf)) == 0 ?
	       strtoull(buf, NULL, 10) : 0;
}

static int sys_write(const char *name, const char *val)
{
	char path[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), KSM_SYS "%s", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	close(fd);
	return n == (ssize_t)strlen(val) ? 0 : -errno;
}

static int find_ksmd(void)
{
	DIR *dir = opendir("/proc");
	struct dirent *de;
	char path[300], comm[32];
	int pid = -1, fd;
	ssize_t n;

	if (!dir)
		return -1;
	while (pid < 0 && (de = readdir(dir))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, comm, sizeof(comm) - 1);
		close(fd);
		if (n > 0) {
			comm[n] = 0;
			if (strcmp(comm, "ksmd\n") == 0)
				pid = atoi(de->d_name);
		}
	}
	closedir(dir);
	return pid;
}

static double ksmd_cpu_seconds(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, stt = 0;
	ssize_t n;
	int fd;

	if (pid < 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')');
	/* after ") ": state is field 3; utime, stime are fields 14, 15 */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			 "%llu %llu", &ut, &stt) != 2)
		return 0;
	return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

static void kengine_stop(struct ksm *k);

static int kengine_create(struct ksm *k, char *err, size_t errlen)
{
	char buf[32];

	if (sys_read("run", buf, sizeof(buf)) != 0) {
		snprintf(err, errlen, "ksm: engine=kernel needs %srun (CONFIG_KSM)",
			 KSM_SYS);
		return -ENOENT;
	}
	k->ke = calloc(1, sizeof(*k->ke));
	if (!k->ke)
		return -ENOMEM;
	k->ke->ksmd_pid = find_ksmd();
	k->ke->lock_fd = -1;
	return 0;
}

static void kengine_destroy(struct ksm *k)
{
	kengine_stop(k);
	free(k->ke);
	k->ke = NULL;
}

static int kengine_add_vm(struct ksm *k, struct ksm_vm *vm, unsigned domain,
			  int base_fd, uint64_t gpa_end, char *err,
			  size_t errlen)
{
	uint32_t r;

	(void)k;
	(void)domain;   /* Linux KSM has no domains: one per host */
	(void)base_fd;
	(void)gpa_end;
	for (r = 0; r < vm->nranges; r++)
		if (madvise(vm->r[r].hva, vm->r[r].len, MADV_MERGEABLE) != 0) {
			snprintf(err, errlen, "ksm: MADV_MERGEABLE on vm '%s': %s",
				 vm->name, strerror(errno));
			return -errno;
		}
	return 0;
}

/* The VM is stopped: unmerging would only allocate its pages again. */
static void kengine_remove_vm(struct ksm *k, struct ksm_vm *vm)
{
	(void)k;
	(void)vm;
}

/* Under k->lock.  Errors from values the kernel refuses while pages are
 * merged (max_page_sharing, merge_across_nodes) are reported. */
static int kengine_apply_tunables(struct ksm *k)
{
	char v[32];
	uint64_t pts;
	int ret = 0, r;

	if (!k->ke || !k->ke->saved)
		return 0;   /* applied at start */
	if (k->cfg.pages_per_sec) {
		pts = k->cfg.pages_per_sec * (k->cfg.sleep_ms ? k->cfg.sleep_ms : 1)
		      / 1000;
		snprintf(v, sizeof(v), "%llu",
			 (unsigned long long)(pts ? pts : 1));
	} else {
		snprintf(v, sizeof(v), "%s", k->ke->old[0]);
	}
	ret = sys_write("pages_to_scan", v);
	snprintf(v, sizeof(v), "%u", k->cfg.sleep_ms);
	if ((r = sys_write("sleep_millisecs", v)) && !ret)
		ret = r;
	snprintf(v, sizeof(v), "%u", k->cfg.max_sharers);
	if (strcmp(v, k->ke->old[2]) && (r = sys_write("max_page_sharing", v)) &&
	    !ret)
		ret = r;
	snprintf(v, sizeof(v), "%u", k->cfg.merge_across_nodes ? 1 : 0);
	if (strcmp(v, k->ke->old[3]) &&
	    (r = sys_write("merge_across_nodes", v)) && !ret)
		ret = r;
	sys_write("use_zero_pages", "1");
	return ret;
}

static int kengine_start(struct ksm *k)
{
	struct kengine *ke = k->ke;
	unsigned i;
	int ret;

	if (lock_take(ke))
		return -EBUSY;   /* another engine owns /sys/kernel/mm/ksm */
	if (!ke->saved) {
		for (i = 0; i < NSAVED; i++)
			if (sys_read(saved_names[i], ke->old[i],
				     sizeof(ke->old[i])) != 0)
				ke->old[i][0] = 0;
		ke->saved = true;
	}
	ret = kengine_apply_tunables(k);
	(void)ret;   /* a refused max_page_sharing is not fatal */
	/* sysfs counters and ksmd's CPU run since boot: report this run's */
	ke->scans0 = sys_u64("full_scans");
	ke->scanned0 = sys_u64("pages_scanned");
	ke->cpu0 = ksmd_cpu_seconds(ke->ksmd_pid);
	ret = sys_write("run", "1");
	if (ret)
		kengine_stop(k);
	return ret;
}

static void kengine_stop(struct ksm *k)
{
	struct kengine *ke = k->ke;
	unsigned i;

	if (ke && lock_take(ke))
		return;   /* KSM is another engine's now: leave it alone */
	sys_write("run", "0");
	if (ke && ke->saved) {
		for (i = 0; i < NSAVED; i++)
			if (ke->old[i][0])
				sys_write(saved_names[i], ke->old[i]);
		ke->saved = false;
	}
	if (ke)
		lock_drop(ke);
}

/* Waits for ksmd's next full scan (its pass), up to 60 s. */
static int kengine_scan_pass(struct ksm *k)
{
	uint64_t start = sys_u64("full_scans"), t0 = ksm_now_ns();
	char run[8];

	(void)k;
	if (sys_read("run", run, sizeof(run)) != 0 || strcmp(run, "1") != 0)
		return -EINVAL;
	while (sys_u64("full_scans") <= start) {
		if (ksm_now_ns() - t0 > 60000000000ULL)
			return -ETIMEDOUT;
		usleep(10000);
	}
	return 0;
}

static void kengine_stats(struct ksm *k, struct ksm_stats *st)
{
	uint64_t shared = sys_u64("pages_shared");
	uint64_t sharing = sys_u64("pages_sharing");

	memset(st, 0, sizeof(*st));
	/* kernel: pages_sharing counts the extra sites only; ours counts
	 * every guest page that maps shared content */
	st->frames = shared;
	st->pages_sharing = shared + sharing;
	st->zero_pages = sys_u64("ksm_zero_pages");
	st->volatile_pages = sys_u64("pages_volatile");
	st->full_scans = sys_u64("full_scans");
	st->pages_hashed = sys_u64("pages_scanned");
	st->merges = st->pages_sharing + st->zero_pages;
	st->cpu_seconds = ksmd_cpu_seconds(k->ke ? k->ke->ksmd_pid : -1);
	if (k->ke) {
		/* since ksm_start (the counters keep their last run's values) */
		st->full_scans -= st->full_scans >= k->ke->scans0 ?
				  k->ke->scans0 : st->full_scans;
		st->pages_hashed -= st->pages_hashed >= k->ke->scanned0 ?
				    k->ke->scanned0 : st->pages_hashed;
		st->cpu_seconds -= st->cpu_seconds >= k->ke->cpu0 ?
				   k->ke->cpu0 : st->cpu_seconds;
	}
	st->bytes_saved = (sharing + st->zero_pages) * KSM_PAGE;
}

/* ksm_stop: always writes run=0, even if never started. */
static void kernel_stop(struct ksm *k)
{
	klock(k);
	kengine_stop(k);
	k->running = false;
	kunlock(k);
}

/* The kernel keeps its own invariants. */
static int kernel_self_check(struct ksm *k, char *err, size_t errlen)
{
	(void)k;
	(void)err;
	(void)errlen;
	return 0;
}

const struct kengine_ops kengine_kernel = {
	.name = "kernel",
	.create = kengine_create,
	.destroy = kengine_destroy,
	.add_vm = kengine_add_vm,
	.remove_vm = kengine_remove_vm,
	.start = kengine_start,
	.stop = kernel_stop,
	.scan_pass = kengine_scan_pass,
	.apply_tunables = kengine_apply_tunables,
	.stats = kengine_stats,
	.self_check = kernel_self_check,
};
