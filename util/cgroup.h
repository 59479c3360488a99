/*
 * cgroup.h - a memory cgroup's control files, v1 or v2: write and read
 * one, usage, limit, a memory.stat key, OOM kills, a child made, joined
 * and removed.  The one copy under the bench (cli/bench_cgroup.c), the
 * tests' helpers (tests/support/cgroup.c) and bench/bench_policy.c.
 *
 * libc only: util/ depends on nothing.  Finding the cgroup this process
 * is in is the caller's (cli/host_mem.c knows both versions).
 */
#ifndef DENSEVM_UTIL_CGROUP_H
#define DENSEVM_UTIL_CGROUP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct memcg {
	int v;           /* 1 or 2 */
	char dir[512];   /* "" = none */
};

/* s into DIR/FILE (dir NULL: file is the whole path).  0 or -errno. */
int cgroup_write(const char *dir, const char *file, const char *s);
/* DIR/FILE's text, NUL-terminated (at most len - 1 bytes).  0 or -errno. */
int cgroup_read(const char *dir, const char *file, char *buf, size_t len);
/* The first integer in DIR/FILE; -1 when unreadable, 0 for v2's "max". */
int64_t cgroup_read_i64(const char *dir, const char *file);
/* The value after "KEY " on a line of DIR/FILE (memory.stat,
 * memory.oom_control, memory.events); 0 when it is not there. */
int64_t cgroup_key(const char *dir, const char *file, const char *key);

/* child = PARENT/NAME, made fresh (a leftover empty one is removed first),
 * the same version as parent.  0 or -errno. */
int memcg_make(struct memcg *child, const struct memcg *parent,
	       const char *name);
/* Moves pid (0: the caller) into cg.  0 or -errno. */
int memcg_join(const struct memcg *cg, pid_t pid);
/* Removes the (empty) cgroup, waiting up to 5 s for charges that are
 * freed lazily; clears cg->dir. */
void memcg_remove(struct memcg *cg);

/* memory.usage_in_bytes (v1) or memory.current (v2); -1 unreadable. */
int64_t memcg_usage(const struct memcg *cg);
/* memory.limit_in_bytes or memory.max; 0 = unlimited (or unreadable). */
uint64_t memcg_limit(const struct memcg *cg);
/* 0 = unlimited.  -EBUSY (v1) when usage cannot be reclaimed below it. */
int memcg_set_limit(const struct memcg *cg, uint64_t limit);
/* One field of memory.stat (v1 "rss", "cache", "shmem"; v2 "anon",
 * "file", "shmem"); 0 when it is not there. */
int64_t memcg_stat(const struct memcg *cg, const char *key);
/* oom_kill of memory.oom_control (v1) or memory.events (v2). */
uint64_t memcg_oom_kills(const struct memcg *cg);

#endif
