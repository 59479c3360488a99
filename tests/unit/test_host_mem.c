/*
 * test_host_mem.c - cli/host_mem.c: the budget, usage, OOM count and PSI
 * read from fake /proc and cgroup trees (v1, v2, none), and on this host a
 * real v1 memory cgroup whose usage-threshold eventfd wakes the waiter when
 * memory is touched past it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "testvm.h"
#include "cgroup.h"
#include "cli/cli.h"

#define GiB (1ull << 30)
#define MiB (1ull << 20)

static char g_root[64];

static void put(const char *rel, const char *text)
{
	char p[512], cmd[600];
	snprintf(p, sizeof(p), "%s/%s", g_root, rel);
	snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", p);
	assert_int_equal(system(cmd), 0);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void fresh_root(void)
{
	char cmd[128];
	if (g_root[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_root);
		assert_int_equal(system(cmd), 0);
	}
	snprintf(g_root, sizeof(g_root), "/tmp/densevm-hostmem-XXXXXX");
	assert_non_null(mkdtemp(g_root));
	put("proc/meminfo", "MemTotal:       16777216 kB\nMemFree:  1000 kB\n"
	    "MemAvailable:    8388608 kB\n");
	put("proc/pressure/memory", "some avg10=1.50 avg60=0.00 avg300=0.00 total=9\n"
	    "full avg10=0.25 avg60=0.00 avg300=0.00 total=3\n");
}

static void fake_v1(void **state)
{
	(void)state;
	struct host_mem h;
	struct host_mem_sample s;

	fresh_root();
	put("proc/self/cgroup", "5:devices:/\n4:memory:/a/b\n0::/\n");
	put("sys/fs/cgroup/memory/a/b/memory.limit_in_bytes", "1073741824\n");
	put("sys/fs/cgroup/memory/a/b/memory.usage_in_bytes", "524288000\n");
	put("sys/fs/cgroup/memory/a/b/memory.oom_control",
	    "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
	host_mem_open(&h, g_root);
	assert_int_equal(h.kind, HOST_MEM_V1);
	assert_non_null(strstr(h.dir, "/sys/fs/cgroup/memory/a/b"));
	assert_int_equal(host_mem_read(&h, 512 * MiB, &s), 0);
	assert_int_equal(s.budget, GiB);
	assert_string_equal(s.budget_from, "cgroup limit");
	assert_int_equal(s.usage, 524288000);
	assert_string_equal(s.usage_from, "cgroup");
	assert_int_equal(s.oom_kills, 3);
	assert_int_equal(s.mem_total, 16 * GiB);
	assert_true(s.psi_some10 == 1.5 && s.psi_full10 == 0.25);

	/* unlimited: the budget is MemTotal minus the reserve */
	put("sys/fs/cgroup/memory/a/b/memory.limit_in_bytes", "9223372036854771712\n");
	assert_int_equal(host_mem_read(&h, 512 * MiB, &s), 0);
	assert_int_equal(s.cgroup_limit, 0);
	assert_int_equal(s.budget, 16 * GiB - 512 * MiB);
	assert_string_equal(s.usage_from, "cgroup");
	host_mem_close(&h);
}

static void fake_v2_and_none(void **state)
{
	(void)state;
	struct host_mem h;
	struct host_mem_sample s;

	fresh_root();
	put("proc/self/cgroup", "0::/svc/densevm\n");
	put("sys/fs/cgroup/svc/densevm/memory.max", "2147483648\n");
	put("sys/fs/cgroup/svc/densevm/memory.current", "1000000\n");
	put("sys/fs/cgroup/svc/densevm/memory.events",
	    "low 0\nhigh 0\nmax 4\noom 1\noom_kill 2\n");
	host_mem_open(&h, g_root);
	assert_int_equal(h.kind, HOST_MEM_V2);
	assert_int_equal(host_mem_read(&h, 0, &s), 0);
	assert_int_equal(s.budget, 2 * GiB);
	assert_int_equal(s.usage, 1000000);
	assert_int_equal(s.oom_kills, 2);
	put("sys/fs/cgroup/svc/densevm/memory.max", "max\n");
	assert_int_equal(host_mem_read(&h, GiB, &s), 0);
	assert_int_equal(s.budget, 15 * GiB);
	host_mem_close(&h);

	/* no memory cgroup at all (v2 without the controller): meminfo */
	fresh_root();
	put("proc/self/cgroup", "0::/\n");
	host_mem_open(&h, g_root);
	assert_int_equal(h.kind, HOST_MEM_NONE);
	assert_int_equal(host_mem_read(&h, GiB, &s), 0);
	assert_string_equal(s.usage_from, "meminfo");
	assert_int_equal(s.usage, 8 * GiB);
	assert_int_equal(s.budget, 15 * GiB);
	char d[256];
	host_mem_describe(&h, d, sizeof(d));
	assert_non_null(strstr(d, "no memory cgroup"));
	host_mem_close(&h);

	/* unreadable meminfo is an error, not zeros */
	fresh_root();
	unlink(strcat(strcpy(d, g_root), "/proc/meminfo"));
	host_mem_open(&h, g_root);
	assert_int_equal(host_mem_read(&h, 0, &s), -EIO);
	host_mem_close(&h);
}

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* The real thing: this host's v1 memory cgroup wakes us when usage
 * crosses the armed threshold. */
static void real_v1_threshold(void **state)
{
	(void)state;
	if (!cg_enter("hostmem")) {
		print_message("[  SKIPPED ] %s: no writable v1 memory cgroup\n",
			      __func__);
		skip();
	}
	struct host_mem h;
	struct host_mem_sample s;
	char d[256];
	host_mem_open(&h, NULL);
	assert_int_equal(h.kind, HOST_MEM_V1);
	assert_non_null(strstr(h.dir, "densevm-hostmem-"));
	assert_int_equal(host_mem_read(&h, 512 * MiB, &s), 0);
	assert_string_equal(s.usage_from, "cgroup");
	assert_int_equal(host_mem_arm(&h, s.usage + 64 * MiB), 0);
	host_mem_describe(&h, d, sizeof(d));
	print_message("signals: %s\n", d);
	assert_non_null(strstr(d, "usage-threshold eventfd"));
	assert_int_equal(host_mem_wait(&h, 100, -1), 0);   /* nothing yet */

	size_t len = 128 * MiB;
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	double t0 = now_ms();
	memset(m, 1, len);
	double t1 = now_ms();
	int why = host_mem_wait(&h, 2000, -1);
	double t2 = now_ms();
	print_message("threshold: touched 128 MiB in %.1f ms, woke %.1f ms after\n",
		      t1 - t0, t2 - t1);
	assert_true(why & HOST_MEM_WOKE_THRESHOLD);
	assert_true(t2 - t1 < 100);
	munmap(m, len);
	host_mem_close(&h);
	cg_leave();
}

static int cleanup(void **state)
{
	(void)state;
	char cmd[128];
	if (g_root[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_root);
		if (system(cmd))
			return -1;
	}
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fake_v1),
		cmocka_unit_test(fake_v2_and_none),
		cmocka_unit_test(real_v1_threshold),
	};
	return cmocka_run_group_tests(tests, NULL, cleanup);
}
