/*
 * cgroup.c - a child memory cgroup (v1) for tests that weigh memory, and
 * the file helpers it needs (see cgroup.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cgroup.h"

static char g_cg[512], g_cg_parent[512];

/* The memory cgroup v1 directory this process is in, or "" without one. */
static void cg_current(char *dir, size_t len)
{
	FILE *f = fopen("/proc/self/cgroup", "r");
	char line[512];

	dir[0] = 0;
	while (f && fgets(line, sizeof(line), f)) {
		char *p = strstr(line, ":memory:");
		if (!p)
			continue;
		p[strcspn(p, "\n")] = 0;
		snprintf(dir, len, "/sys/fs/cgroup/memory%s", p + 8);
	}
	if (f)
		fclose(f);
}

int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, s, strlen(s));
	int e = errno;
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -e;
}

int64_t read_i64(const char *path)
{
	char buf[64] = "";
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? strtoll(buf, NULL, 10) : -1;
}

/* A fresh child memory cgroup with this process in it; false when
 * cgroup v1 memory is not writable here. */
bool cg_enter(const char *tag)
{
	char path[600], pid[32];

	cg_current(g_cg_parent, sizeof(g_cg_parent));
	if (!g_cg_parent[0])
		return false;
	snprintf(g_cg, sizeof(g_cg), "%s/densevm-%s-%d", g_cg_parent, tag,
		 (int)getpid());
	rmdir(g_cg);
	if (mkdir(g_cg, 0755) < 0)
		return false;
	snprintf(path, sizeof(path), "%s/cgroup.procs", g_cg);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (write_str(path, pid)) {
		rmdir(g_cg);
		return false;
	}
	return true;
}

const char *cg_dir(void)
{
	return g_cg;
}

int64_t cg_usage(void)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/memory.usage_in_bytes", g_cg);
	return read_i64(path);
}

void cg_leave(void)
{
	char path[600], pid[32];

	snprintf(path, sizeof(path), "%s/cgroup.procs", g_cg_parent);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	write_str(path, pid);
	/* charges left behind (freed lazily) keep it busy for a moment */
	for (int i = 0; i < 50 && rmdir(g_cg) < 0 && errno == EBUSY; i++)
		usleep(100000);
	g_cg[0] = 0;
}

/* Page memory charged to the cgroup (anonymous + page cache, memfds
 * included): what PSS plus the memfds' resident pages would say, without
 * the kernel's own structures (VMAs, page tables). */
int64_t cg_pages(void)
{
	return cg_stat("rss") + cg_stat("cache");
}

int64_t cg_stat(const char *key)
{
	char path[600], line[128], name[64];
	long long v;
	snprintf(path, sizeof(path), "%s/memory.stat", g_cg);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %lld", name, &v) == 2 && !strcmp(name, key)) {
			fclose(f);
			return v;
		}
	if (f)
		fclose(f);
	return 0;
}
