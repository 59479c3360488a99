/*
 * bench_cgroup.c - the memory cgroup one bench arm runs in: a fresh child
 * of this process's memory cgroup, v1 (memory.limit_in_bytes,
 * usage_in_bytes, oom_control) or v2 (memory.max, memory.current,
 * memory.events), whichever holds the memory controller here
 * (host_mem.c finds it).  Usage is the cgroup's: it charges memfd pages.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "bench.h"
#include "cli.h"

static int wr(const char *dir, const char *file, const char *s)
{
	char p[700];
	snprintf(p, sizeof(p), "%s/%s", dir, file);
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, s, strlen(s));
	int e = errno;
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -e;
}

static int rd(const char *dir, const char *file, char *buf, size_t len)
{
	char p[700];
	snprintf(p, sizeof(p), "%s/%s", dir, file);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -EIO;
	buf[n] = 0;
	return 0;
}

static uint64_t rd_u64(const char *dir, const char *file)
{
	char b[64];
	if (rd(dir, file, b, sizeof(b)) || !strncmp(b, "max", 3))
		return 0;
	return strtoull(b, NULL, 10);
}

int bench_cg_create(struct bench_cg *cg, const char *tag, char *err,
		    size_t errlen)
{
	struct host_mem h;
	host_mem_open(&h, NULL);
	memset(cg, 0, sizeof(*cg));
	if (h.kind == HOST_MEM_NONE) {
		snprintf(err, errlen, "no memory cgroup (v1 or v2) here");
		return -ENOENT;
	}
	cg->v = h.kind == HOST_MEM_V1 ? 1 : 2;
	char safe[64];
	snprintf(safe, sizeof(safe), "%s", tag);
	for (char *c = safe; *c; c++)
		if (*c == '+')
			*c = '_';
	snprintf(cg->dir, sizeof(cg->dir), "%s/densevm-bench-%s-%d", h.dir, safe,
		 (int)getpid());
	rmdir(cg->dir);
	if (mkdir(cg->dir, 0755)) {
		snprintf(err, errlen, "cannot create memory cgroup %s: %s", cg->dir,
			 strerror(errno));
		return -errno;
	}
	if (cg->v == 2) {
		char b[256];
		if (rd(cg->dir, "memory.max", b, sizeof(b))) {
			snprintf(err, errlen, "cgroup v2 %s has no memory.max: enable "
				 "+memory in the parent's cgroup.subtree_control", cg->dir);
			rmdir(cg->dir);
			return -ENOTSUP;
		}
	} else {
		wr(cg->dir, "memory.swappiness", "0");
	}
	return 0;
}

int bench_cg_set_limit(const struct bench_cg *cg, uint64_t limit)
{
	char b[32];
	if (cg->v == 1)
		snprintf(b, sizeof(b), "%lld", limit ? (long long)limit : -1ll);
	else if (limit)
		snprintf(b, sizeof(b), "%llu", (unsigned long long)limit);
	else
		snprintf(b, sizeof(b), "max");
	return wr(cg->dir, cg->v == 1 ? "memory.limit_in_bytes" : "memory.max", b);
}

uint64_t bench_cg_usage(const struct bench_cg *cg)
{
	return rd_u64(cg->dir, cg->v == 1 ? "memory.usage_in_bytes" : "memory.current");
}

uint64_t bench_cg_limit(const struct bench_cg *cg)
{
	uint64_t l = rd_u64(cg->dir, cg->v == 1 ? "memory.limit_in_bytes" : "memory.max");
	return l >= (1ull << 62) ? 0 : l;
}

uint64_t bench_cg_oom_kills(const struct bench_cg *cg)
{
	char b[1024];
	if (rd(cg->dir, cg->v == 1 ? "memory.oom_control" : "memory.events", b,
	       sizeof(b)))
		return 0;
	char *p = strstr(b, "oom_kill ");
	return p ? strtoull(p + 9, NULL, 10) : 0;
}

int bench_cg_join(const struct bench_cg *cg)
{
	char b[32];
	snprintf(b, sizeof(b), "%d", (int)getpid());
	return wr(cg->dir, "cgroup.procs", b);
}

void bench_cg_remove(struct bench_cg *cg)
{
	if (!cg->dir[0])
		return;
	for (int i = 0; i < 50 && rmdir(cg->dir) < 0 && errno == EBUSY; i++)
		usleep(100000);
	cg->dir[0] = 0;
}
