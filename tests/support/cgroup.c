/*
 * cgroup.c - a child memory cgroup (v1) for tests that weigh memory (see
 * cgroup.h); the control files are util/cgroup.c's.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "cgroup.h"

static struct memcg g_cg, g_parent;

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

bool cg_enter(const char *tag)
{
	char name[128];

	g_parent.v = 1;
	cg_current(g_parent.dir, sizeof(g_parent.dir));
	if (!g_parent.dir[0])
		return false;
	snprintf(name, sizeof(name), "densevm-%s-%d", tag, (int)getpid());
	if (memcg_make(&g_cg, &g_parent, name))
		return false;
	if (memcg_join(&g_cg, 0)) {
		memcg_remove(&g_cg);
		return false;
	}
	return true;
}

const char *cg_dir(void)
{
	return g_cg.dir;
}

int64_t cg_usage(void)
{
	return memcg_usage(&g_cg);
}

void cg_leave(void)
{
	if (!g_cg.dir[0])
		return;
	memcg_join(&g_parent, 0);
	memcg_remove(&g_cg);
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
	return memcg_stat(&g_cg, key);
}

int cg_set_limit(uint64_t limit)
{
	return memcg_set_limit(&g_cg, limit);
}

uint64_t cg_oom_kills(void)
{
	return memcg_oom_kills(&g_cg);
}
