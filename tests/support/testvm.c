/*
 * testvm.c - see testvm.h.
 */
#include <libgen.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "testvm.h"

extern char **environ;

const char *test_build_dir(void)
{
	static char dir[PATH_MAX];
	char exe[PATH_MAX];

	if (dir[0])
		return dir;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = 0;
	/* tests live in BUILD/tests/ */
	snprintf(dir, sizeof(dir), "%s", dirname(dirname(exe)));
	return dir;
}

const char *test_guest_path(void)
{
	static char p[PATH_MAX + 32];
	snprintf(p, sizeof(p), "%s/guest/microguest.elf", test_build_dir());
	return p;
}

bool test_san_light(void)
{
#ifdef __SANITIZE_ADDRESS__
	const char *e = getenv("DENSEVM_TEST_FULL");
	return !(e && *e && strcmp(e, "0"));
#else
	return false;
#endif
}

const char *test_densevm_path(void)
{
	static char p[PATH_MAX + 32];
	snprintf(p, sizeof(p), "%s/densevm", test_build_dir());
	return p;
}

static void on_console(struct hv_vm *vm, const char *line, size_t len, void *ctx)
{
	struct testvm *t = ctx;

	pthread_mutex_lock(&t->lock);
	if (t->len + len + 2 > t->cap) {
		t->cap = (t->cap + len + 2) * 2;
		t->log = realloc(t->log, t->cap);
	}
	memcpy(t->log + t->len, line, len);
	t->len += len;
	t->log[t->len++] = '\n';
	t->log[t->len] = 0;
	pthread_mutex_unlock(&t->lock);
	if (t->echo)
		printf("[%s] %.*s\n", hv_vm_name(vm), (int)len, line);
}

int testvm_create_cfg(struct testvm *t, struct hv_vm_config *c, char *err,
		      size_t errlen)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	const char *v = getenv("TEST_VERBOSE");
	t->echo = v && *v == '1';
	c->console = on_console;
	c->ctx = t;
	return hv_vm_create(c, &t->vm, err, errlen);
}

void testvm_create(struct testvm *t, const char *name, uint64_t mem,
		   unsigned cpus, const char *args)
{
	char err[512] = "";
	struct hv_vm_config c = {
		.name = name, .mem_bytes = mem, .ncpus = cpus,
		.kind = HV_GUEST_MICRO, .image = test_guest_path(),
		.cmdline = args, .base_memfd = -1, .timeout_s = 300,
		.features = HV_FEAT_BALLOON,
	};
	int rc = testvm_create_cfg(t, &c, err, sizeof(err));
	if (rc)
		fail_msg("create %s: %s", name, err);
}

void testvm_destroy(struct testvm *t)
{
	hv_vm_destroy(t->vm);
	free(t->log);
	pthread_mutex_destroy(&t->lock);
	memset(t, 0, sizeof(*t));
}

bool testvm_log_has(struct testvm *t, const char *needle)
{
	pthread_mutex_lock(&t->lock);
	bool r = t->log && strstr(t->log, needle);
	pthread_mutex_unlock(&t->lock);
	return r;
}

struct hv_exit_status testvm_wait(struct testvm *t, double secs)
{
	struct hv_exit_status st;
	if (!hv_vm_wait_timeout(t->vm, secs)) {
		hv_vm_stop(t->vm);
		hv_vm_wait(t->vm);
		fail_msg("%s did not end within %.0f s; console:\n%s", hv_vm_name(t->vm),
			 secs, t->log ? t->log : "");
	}
	hv_vm_status(t->vm, &st);
	return st;
}

int run_densevm(char *const argv[], char **out)
{
	char tmpl[] = "/tmp/densevm-test-XXXXXX";
	int fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	unlink(tmpl);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fd, 1);
	posix_spawn_file_actions_adddup2(&fa, fd, 2);
	char *args[64];
	int n = 0;
	args[n++] = (char *)test_densevm_path();
	for (int i = 1; argv[i] && n < 63; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	pid_t pid;
	int rc = posix_spawn(&pid, args[0], &fa, NULL, args, environ);
	posix_spawn_file_actions_destroy(&fa);
	assert_int_equal(rc, 0);
	int st;
	waitpid(pid, &st, 0);
	off_t len = lseek(fd, 0, SEEK_END);
	*out = calloc(1, (size_t)len + 1);
	pread(fd, *out, (size_t)len, 0);
	close(fd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double percentile(double *v, size_t n, double p)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}
