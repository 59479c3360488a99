/*
 * cgroup.c - a memory cgroup's control files, v1 and v2 (cgroup.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cgroup.h"

/* v1 says "unlimited" as a huge page-rounded number */
#define V1_UNLIMITED (1ull << 62)

static void path_of(char *p, size_t len, const char *dir, const char *file)
{
	if (dir)
		snprintf(p, len, "%s/%s", dir, file);
	else
		snprintf(p, len, "%s", file);
}

int cgroup_write(const char *dir, const char *file, const char *s)
{
	char p[768];
	path_of(p, sizeof(p), dir, file);
	/* O_TRUNC as `echo >` does: kernfs and procfs ignore it, and a fake
	 * tree of regular files (the tests') then reads back what was set */
	int fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* one write: a control file takes the whole value or refuses it */
	ssize_t n = write(fd, s, strlen(s));
	int e = n < 0 ? errno : EIO;
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -e;
}

int cgroup_read(const char *dir, const char *file, char *buf, size_t len)
{
	char p[768];
	path_of(p, sizeof(p), dir, file);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, len - 1);
	int e = errno;
	close(fd);
	if (n < 0)
		return -e;
	buf[n] = 0;
	return 0;
}

int64_t cgroup_read_i64(const char *dir, const char *file)
{
	char b[64];
	if (cgroup_read(dir, file, b, sizeof(b)) || !b[0])
		return -1;
	return strtoll(b, NULL, 10);
}

int64_t cgroup_key(const char *dir, const char *file, const char *key)
{
	char p[768], line[256], name[64];
	long long v;
	path_of(p, sizeof(p), dir, file);
	FILE *f = fopen(p, "re");
	if (!f)
		return 0;
	int64_t r = 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %lld", name, &v) == 2 && !strcmp(name, key)) {
			r = v;
			break;
		}
	fclose(f);
	return r;
}

int memcg_make(struct memcg *child, const struct memcg *parent,
	       const char *name)
{
	child->v = parent->v;
	if ((size_t)snprintf(child->dir, sizeof(child->dir), "%s/%s", parent->dir,
			     name) >= sizeof(child->dir)) {
		child->dir[0] = 0;
		return -ENAMETOOLONG;
	}
	rmdir(child->dir);
	if (mkdir(child->dir, 0755)) {
		int e = errno;
		child->dir[0] = 0;
		return -e;
	}
	return 0;
}

int memcg_join(const struct memcg *cg, pid_t pid)
{
	char b[32];
	snprintf(b, sizeof(b), "%d", (int)(pid ? pid : getpid()));
	return cgroup_write(cg->dir, "cgroup.procs", b);
}

void memcg_remove(struct memcg *cg)
{
	if (!cg->dir[0])
		return;
	/* charges left behind (freed lazily) keep it busy for a moment */
	for (int i = 0; i < 50 && rmdir(cg->dir) < 0 && errno == EBUSY; i++)
		usleep(100000);
	cg->dir[0] = 0;
}

int64_t memcg_usage(const struct memcg *cg)
{
	return cgroup_read_i64(cg->dir, cg->v == 2 ? "memory.current"
						   : "memory.usage_in_bytes");
}

uint64_t memcg_limit(const struct memcg *cg)
{
	int64_t l = cgroup_read_i64(cg->dir, cg->v == 2 ? "memory.max"
						       : "memory.limit_in_bytes");
	return l <= 0 || (uint64_t)l >= V1_UNLIMITED ? 0 : (uint64_t)l;
}

int memcg_set_limit(const struct memcg *cg, uint64_t limit)
{
	char b[32];
	if (cg->v != 2)
		snprintf(b, sizeof(b), "%lld", limit ? (long long)limit : -1ll);
	else if (limit)
		snprintf(b, sizeof(b), "%llu", (unsigned long long)limit);
	else
		snprintf(b, sizeof(b), "max");
	return cgroup_write(cg->dir, cg->v == 2 ? "memory.max"
					       : "memory.limit_in_bytes", b);
}

int64_t memcg_stat(const struct memcg *cg, const char *key)
{
	return cgroup_key(cg->dir, "memory.stat", key);
}

uint64_t memcg_oom_kills(const struct memcg *cg)
{
	int64_t k = cgroup_key(cg->dir, cg->v == 2 ? "memory.events"
						  : "memory.oom_control", "oom_kill");
	return k > 0 ? (uint64_t)k : 0;
}
