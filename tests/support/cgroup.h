/*
 * cgroup.h - tests that weigh memory in a memory cgroup (v1): a fresh
 * child cgroup of the one this process is in, with this process moved into
 * it and back out, its usage, stat, limit and OOM kills.  The control
 * files are util/cgroup.h's (which also writes and reads sysfs/procfs
 * files by path for the tests).  Why a cgroup: it charges memfd pages,
 * anonymous memory and the kernel's own structures alike, where PSS
 * misses memfd pages no mapping touched since (shared/README.md).
 */
#ifndef DENSEVM_TEST_CGROUP_H
#define DENSEVM_TEST_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include "util/cgroup.h"

/* A fresh child memory cgroup "densevm-TAG-PID" with this process in it;
 * false when cgroup v1 memory is not writable here. */
bool cg_enter(const char *tag);
/* Back to the parent cgroup; removes the child. */
void cg_leave(void);
/* The child's directory (for its other files), "" outside one. */
const char *cg_dir(void);
/* memory.usage_in_bytes of the child. */
int64_t cg_usage(void);
/* Page memory charged to the child (rss + cache of memory.stat, memfds
 * included), without the kernel's own structures. */
int64_t cg_pages(void);
/* One field of the child's memory.stat (v1: "rss", "cache", "shmem"...),
 * 0 when it is not there. */
int64_t cg_stat(const char *key);
/* The child's limit; 0 = unlimited.  0 or -errno. */
int cg_set_limit(uint64_t limit);
/* The child's OOM kills (memory.oom_control's oom_kill). */
uint64_t cg_oom_kills(void);

#endif
