/*
 * test_util_cgroup.c - util/cgroup.c on fake cgroup directories, v1 and
 * v2: usage, limit (unlimited either way), setting and clearing a limit,
 * memory.stat keys, OOM kills, and a child made and removed.  Needs no
 * /dev/kvm and no real cgroup.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "testvm.h"
#include "util/cgroup.h"

static char g_dir[64];

static void put(const char *file, const char *text)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/%s", g_dir, file);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void fresh(void)
{
	snprintf(g_dir, sizeof(g_dir), "/tmp/densevm-utilcg-XXXXXX");
	assert_non_null(mkdtemp(g_dir));
}

static void gone(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	assert_int_equal(system(cmd), 0);
}

static void v1_files(void **state)
{
	(void)state;
	fresh();
	struct memcg cg = { .v = 1 };
	snprintf(cg.dir, sizeof(cg.dir), "%s", g_dir);
	put("memory.usage_in_bytes", "12345678\n");
	put("memory.limit_in_bytes", "9223372036854771712\n");
	put("memory.stat", "cache 4096\nrss 8192\nshmem 0\ntotal_rss 99\n");
	put("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
	assert_int_equal(memcg_usage(&cg), 12345678);
	assert_int_equal(memcg_limit(&cg), 0);   /* v1's "unlimited" */
	assert_int_equal(memcg_stat(&cg, "rss"), 8192);
	assert_int_equal(memcg_stat(&cg, "cache"), 4096);
	assert_int_equal(memcg_stat(&cg, "swap"), 0);
	assert_int_equal(memcg_oom_kills(&cg), 3);
	assert_int_equal(memcg_set_limit(&cg, 64ull << 20), 0);
	assert_int_equal(memcg_limit(&cg), 64ull << 20);
	assert_int_equal(memcg_set_limit(&cg, 0), 0);
	char b[64];
	assert_int_equal(cgroup_read(cg.dir, "memory.limit_in_bytes", b,
				     sizeof(b)), 0);
	assert_string_equal(b, "-1");
	assert_int_equal(cgroup_read_i64(cg.dir, "missing"), -1);
	assert_true(cgroup_write(cg.dir, "no/such/file", "1") < 0);

	struct memcg child;
	assert_int_equal(memcg_make(&child, &cg, "kid"), 0);
	assert_int_equal(child.v, 1);
	struct stat st;
	assert_int_equal(stat(child.dir, &st), 0);
	memcg_remove(&child);
	assert_string_equal(child.dir, "");
	gone();
}

static void v2_files(void **state)
{
	(void)state;
	fresh();
	struct memcg cg = { .v = 2 };
	snprintf(cg.dir, sizeof(cg.dir), "%s", g_dir);
	put("memory.current", "777\n");
	put("memory.max", "max\n");
	put("memory.stat", "anon 100\nfile 200\n");
	put("memory.events", "low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\n");
	assert_int_equal(memcg_usage(&cg), 777);
	assert_int_equal(memcg_limit(&cg), 0);   /* "max" */
	assert_int_equal(memcg_stat(&cg, "file"), 200);
	assert_int_equal(memcg_oom_kills(&cg), 1);
	assert_int_equal(memcg_set_limit(&cg, 1ull << 30), 0);
	assert_int_equal(memcg_limit(&cg), 1ull << 30);
	assert_int_equal(memcg_set_limit(&cg, 0), 0);
	char b[64];
	assert_int_equal(cgroup_read(cg.dir, "memory.max", b, sizeof(b)), 0);
	assert_string_equal(b, "max");
	gone();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(v1_files),
		cmocka_unit_test(v2_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
