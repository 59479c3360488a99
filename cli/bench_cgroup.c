/*
 * bench_cgroup.c - the memory cgroup one bench arm runs in: a fresh child
 * of this process's memory cgroup, v1 (memory.limit_in_bytes,
 * usage_in_bytes, oom_control) or v2 (memory.max, memory.current,
 * memory.events), whichever holds the memory controller here
 * (host_mem.c finds it; the control files are util/cgroup.c's).  Usage
 * is the cgroup's: it charges memfd pages.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "bench.h"
#include "cli.h"

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
	struct memcg parent = { .v = h.kind == HOST_MEM_V1 ? 1 : 2 };
	snprintf(parent.dir, sizeof(parent.dir), "%s", h.dir);
	char name[96];
	snprintf(name, sizeof(name), "densevm-bench-%s-%d", tag, (int)getpid());
	for (char *c = name; *c; c++)
		if (*c == '+')
			*c = '_';
	int rc = memcg_make(&cg->cg, &parent, name);
	if (rc) {
		snprintf(err, errlen, "cannot create memory cgroup %s/%s: %s",
			 parent.dir, name, strerror(-rc));
		return rc;
	}
	if (cg->cg.v == 2) {
		char b[256];
		if (cgroup_read(cg->cg.dir, "memory.max", b, sizeof(b))) {
			snprintf(err, errlen, "cgroup v2 %s has no memory.max: enable "
				 "+memory in the parent's cgroup.subtree_control",
				 cg->cg.dir);
			memcg_remove(&cg->cg);
			return -ENOTSUP;
		}
	} else {
		cgroup_write(cg->cg.dir, "memory.swappiness", "0");
	}
	return 0;
}

int bench_cg_set_limit(const struct bench_cg *cg, uint64_t limit)
{
	return memcg_set_limit(&cg->cg, limit);
}

uint64_t bench_cg_usage(const struct bench_cg *cg)
{
	int64_t u = memcg_usage(&cg->cg);
	return u > 0 ? (uint64_t)u : 0;
}

uint64_t bench_cg_limit(const struct bench_cg *cg)
{
	return memcg_limit(&cg->cg);
}

uint64_t bench_cg_oom_kills(const struct bench_cg *cg)
{
	return memcg_oom_kills(&cg->cg);
}

int bench_cg_join(const struct bench_cg *cg)
{
	return memcg_join(&cg->cg, 0);
}

void bench_cg_remove(struct bench_cg *cg)
{
	memcg_remove(&cg->cg);
}
