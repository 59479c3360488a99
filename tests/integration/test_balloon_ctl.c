/*
 * test_balloon_ctl.c - ballooning end to end through the real binary: a
 * `densevm run` process (config file with a [balloon] section) and
 * `densevm ctl balloon` / `balloon-stat` / `stat` over its socket.
 *
 * Owns: the "targets" check (a 512 MiB micro guest that used its
 * memory loses >= 240 MiB of host memory, by the process's PSS, within 1 s
 * of `balloon vm0 256M`; `balloon vm0 0` gives every page back to the
 * guest's allocator), balloon=off per VM, and the error replies for bad
 * requests (unknown VM, bad size, size above RAM, VM without balloon).
 */
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "testvm.h"

#define MiB (1024ULL * 1024)

extern char **environ;

static char g_sock[80], g_log[80], g_conf[80];

static pid_t start_densevm(void)
{
	snprintf(g_sock, sizeof(g_sock), "/tmp/densevm-balloon-%d.sock", (int)getpid());
	snprintf(g_log, sizeof(g_log), "/tmp/densevm-balloon-%d.log", (int)getpid());
	snprintf(g_conf, sizeof(g_conf), "/tmp/densevm-balloon-%d.conf", (int)getpid());
	FILE *f = fopen(g_conf, "w");
	assert_non_null(f);
	/* stats every 100 ms so that the guest's view below is fresh */
	fputs("[balloon]\nstats_period_ms = 100\nfree_page_reporting = off\n"
	      "[vm vm0]\nmem = 512M\nworkload = idle touch=1\n"
	      "[vm nb]\nmem = 64M\nballoon = off\nworkload = idle\n", f);
	fclose(f);
	char *argv[] = { (char *)test_densevm_path(), "run", "--config", g_conf,
			 "--ctl", g_sock, "--timeout", "120", NULL };
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, g_log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	pid_t pid;
	assert_int_equal(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

static bool log_has(const char *needle)
{
	FILE *f = fopen(g_log, "r");
	char line[512];
	bool found = false;
	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return found;
}

static void dump_log(void)
{
	FILE *f = fopen(g_log, "r");
	char line[512];
	while (f && fgets(line, sizeof(line), f))
		print_message("  | %s", line);
	if (f)
		fclose(f);
}

/* The process's PSS in bytes. */
static uint64_t pss_bytes(pid_t pid)
{
	char path[64], line[256];
	unsigned long long kb = 0;
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Pss: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

/* `densevm ctl --raw ARGS...`: returns the exit status; *out is the
 * reply's text (or the error line). */
static int ctl(char **out, const char *a0, const char *a1, const char *a2,
	       const char *a3)
{
	char *argv[] = { "densevm", "ctl", "--raw", "--socket", g_sock,
			 (char *)a0, (char *)a1, (char *)a2, (char *)a3, NULL };
	return run_densevm(argv, out);
}

/* balloon-stat vm0 as a JSON object (the caller decrefs). */
static json_t *bstat(void)
{
	char *out;
	assert_int_equal(ctl(&out, "balloon-stat", "vm0", NULL, NULL), 0);
	json_error_t je;
	json_t *r = json_loads(out, 0, &je);
	if (!r)
		fail_msg("balloon-stat: bad JSON (%s): %s", je.text, out);
	free(out);
	json_t *vm = json_incref(json_array_get(json_object_get(r, "vms"), 0));
	json_decref(r);
	assert_non_null(vm);
	return vm;
}

static uint64_t jget(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v))
		fail_msg("no integer '%s' in balloon-stat", key);
	return (uint64_t)json_integer_value(v);
}

static uint64_t guest_free(json_t *vm)
{
	return jget(json_object_get(vm, "guest"), "mem_free");
}

/* Waits until the guest's stats were sampled after `after` (their count),
 * returns the fresh object. */
static json_t *fresh_stats(uint64_t after)
{
	for (int i = 0; i < 300; i++) {
		json_t *vm = bstat();
		if (jget(vm, "stats_updates") > after + 1)  /* one whole period */
			return vm;
		json_decref(vm);
		usleep(20 * 1000);
	}
	fail_msg("the guest sent no stats for 6 s");
	return NULL;
}

static void expect_error(const char *a0, const char *a1, const char *a2,
			 const char *a3, const char *msg)
{
	char *out;
	int rc = ctl(&out, a0, a1, a2, a3);
	if (rc != 1 || !strstr(out, msg))
		fail_msg("'%s %s %s': rc %d, want 1 and '%s'; got: %s", a0,
			 a1 ? a1 : "", a2 ? a2 : "", rc, msg, out);
	free(out);
}

static void targets_through_ctl(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	pid_t pid = start_densevm();
	char *out;

	for (int i = 0; i < 600 && !log_has("idle: touched"); i++)
		usleep(50 * 1000);
	if (!log_has("idle: touched")) {
		dump_log();
		fail_msg("vm0 did not touch its memory within 30 s");
	}
	assert_true(log_has("balloon=on args='idle touch=1'"));
	assert_true(log_has("balloon=off args='idle'"));   /* nb: opted out */

	/* the guest's memory is resident before we take it away */
	json_t *vm = bstat();
	uint64_t upd = jget(vm, "stats_updates");
	json_decref(vm);
	vm = fresh_stats(upd);
	uint64_t free0 = guest_free(vm);
	assert_true(free0 > 480 * MiB);
	assert_int_equal(jget(vm, "size_bytes"), 0);
	json_decref(vm);
	uint64_t pss0 = pss_bytes(pid);
	assert_true(pss0 > 480 * MiB);

	uint64_t t0 = hv_now_ns(), pss = pss0;
	assert_int_equal(ctl(&out, "balloon", "vm0", "256M", NULL), 0);
	assert_non_null(strstr(out, "\"target_bytes\":268435456"));
	free(out);
	while (pss0 - pss < 240 * MiB && hv_now_ns() - t0 < 1000000000ull) {
		usleep(5 * 1000);
		uint64_t p = pss_bytes(pid);
		pss = p < pss0 ? p : pss0;
	}
	double ms = (double)(hv_now_ns() - t0) / 1e6;
	print_message("balloon 256M: PSS %.1f -> %.1f MiB in %.0f ms (ctl "
		      "spawn included)\n", (double)pss0 / MiB, (double)pss / MiB, ms);
	assert_true(pss0 - pss >= 240 * MiB);
	assert_true(ms <= 1000);

	vm = bstat();
	assert_int_equal(jget(vm, "size_bytes"), 256 * MiB);
	assert_int_equal(jget(vm, "target_bytes"), 256 * MiB);
	assert_int_equal(jget(vm, "rejected"), 0);
	upd = jget(vm, "stats_updates");
	json_decref(vm);
	vm = fresh_stats(upd);
	/* the guest sees the memory gone from its allocator */
	assert_true(guest_free(vm) + 256 * MiB <= free0);
	assert_int_equal(jget(vm, "guest_balloon_bytes"), 256 * MiB);
	json_decref(vm);

	/* `stat` carries the balloon too */
	char *sargv[] = { "densevm", "stat", "--raw", "--socket", g_sock, "vm0", NULL };
	assert_int_equal(run_densevm(sargv, &out), 0);
	json_t *sj = json_loads(out, 0, NULL);
	free(out);
	assert_non_null(sj);
	json_t *s0 = json_array_get(json_object_get(sj, "vms"), 0);
	assert_int_equal(jget(json_object_get(s0, "balloon"), "size_bytes"), 256 * MiB);
	assert_int_equal(jget(json_object_get(s0, "pages"), "ballooned"), 65536);
	assert_int_equal(jget(json_object_get(sj, "balloon"), "vms"), 1);  /* nb has none */
	json_decref(sj);

	/* back to 0: every page returns to the guest's allocator */
	assert_int_equal(ctl(&out, "balloon", "vm0", "0", NULL), 0);
	free(out);
	for (int i = 0; i < 100; i++) {
		vm = bstat();
		bool done = jget(vm, "size_bytes") == 0;
		upd = jget(vm, "stats_updates");
		json_decref(vm);
		if (done)
			break;
		usleep(10 * 1000);
	}
	vm = fresh_stats(upd);
	assert_int_equal(jget(vm, "size_bytes"), 0);
	assert_int_equal(jget(vm, "guest_balloon_bytes"), 0);
	assert_int_equal(jget(vm, "deflated_pages"), 65536);
	/* all but the balloon's spare tracking pages */
	assert_true(guest_free(vm) + 64 * 1024 >= free0);
	json_decref(vm);

	/* the QEMU meaning: the guest keeps 384M */
	assert_int_equal(ctl(&out, "balloon", "vm0", "--guest-size", "384M"), 0);
	assert_non_null(strstr(out, "\"target_bytes\":134217728"));
	free(out);

	/* bad requests: one clear line each, and the server keeps serving */
	expect_error("balloon", "nosuch", "1M", NULL, "no VM named 'nosuch'");
	expect_error("balloon", "vm0", "12Q", NULL, "'12Q' is not a size");
	expect_error("balloon", "vm0", "-5M", NULL, "is not a size");
	expect_error("balloon", "vm0", "513M", NULL, "is more than vm0's RAM");
	expect_error("balloon", "vm0", "--guest-size", "1G", "is more than vm0's RAM");
	expect_error("balloon", "nb", "1M", NULL, "VM 'nb' has no balloon");
	expect_error("balloon-stat", "nb", NULL, NULL, "VM 'nb' has no balloon");
	expect_error("balloon", "vm0", NULL, NULL, "usage: balloon VM SIZE");
	expect_error("balloon", "vm0", "1M", "2M", "usage: balloon VM SIZE");
	vm = bstat();
	assert_int_equal(jget(vm, "target_bytes"), 128 * MiB);
	json_decref(vm);

	assert_int_equal(ctl(&out, "stop", "vm0", NULL, NULL), 0);
	free(out);
	assert_int_equal(ctl(&out, "stop", "nb", NULL, NULL), 0);
	free(out);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (log_has("ERROR") || log_has("AddressSanitizer")) {
		dump_log();
		fail_msg("densevm reported an error");
	}
	unlink(g_log);
	unlink(g_conf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(targets_through_ctl),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
