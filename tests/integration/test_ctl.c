/*
 * test_ctl.c - the control socket of a running `densevm run`: list, stat
 * and stop work through `densevm ctl`; garbage, bad requests and an
 * oversized line get error replies and the server keeps serving.
 */
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "testvm.h"

extern char **environ;

static char g_sock[64];

static pid_t start_densevm(void)
{
	snprintf(g_sock, sizeof(g_sock), "/tmp/densevm-ctl-test-%d.sock", (int)getpid());
	char *argv[] = { (char *)test_densevm_path(), "run", "--quiet", "--ctl", g_sock,
			 "--vm", "name=idle1,mem=64M,workload=idle seconds=60",
			 "--vm", "name=idle2,mem=64M,workload=idle seconds=60", NULL };
	pid_t pid;
	assert_int_equal(posix_spawn(&pid, argv[0], NULL, NULL, argv, environ), 0);
	for (int i = 0; i < 100 && access(g_sock, F_OK); i++)
		usleep(50000);
	assert_int_equal(access(g_sock, F_OK), 0);
	return pid;
}

/* Sends raw bytes, returns what came back within 0.5 s. */
static char *raw_exchange(const void *buf, size_t len)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", g_sock);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (void *)&a, sizeof(a)), 0);
	assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
	usleep(500000);
	char *out = calloc(1, 8192);
	ssize_t n = recv(fd, out, 8191, MSG_DONTWAIT);
	(void)n;
	close(fd);
	return out;
}

static void ctl_serves_and_survives_garbage(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	pid_t pid = start_densevm();
	char *out;

	char *list[] = { "densevm", "ctl", "--socket", g_sock, "list", NULL };
	assert_int_equal(run_densevm(list, &out), 0);
	assert_non_null(strstr(out, "\"idle1\""));
	assert_non_null(strstr(out, "\"running\""));
	free(out);

	static const char msgs[] = "garbage\n{\"cmd\":5}\n{\"cmd\":\"nope\"}\n"
				   "{\"cmd\":\"stat\",\"args\":7}\n";
	char *r = raw_exchange(msgs, strlen(msgs));
	assert_non_null(strstr(r, "bad JSON"));
	assert_non_null(strstr(r, "a request is an object"));
	assert_non_null(strstr(r, "unknown command 'nope'"));
	assert_non_null(strstr(r, "must be an array of strings"));
	free(r);
	size_t big = 100 * 1024;
	char *junk = malloc(big);
	memset(junk, 'x', big);
	r = raw_exchange(junk, big);
	assert_non_null(strstr(r, "request longer than"));
	free(r);
	free(junk);

	/* still serving */
	char *stat[] = { "densevm", "stat", "--socket", g_sock, "idle2", NULL };
	assert_int_equal(run_densevm(stat, &out), 0);
	assert_non_null(strstr(out, "\"pages\""));
	assert_non_null(strstr(out, "\"Pss\""));
	assert_non_null(strstr(out, "\"jemalloc\""));
	assert_null(strstr(out, "\"idle1\""));
	free(out);
	char *bad[] = { "densevm", "stat", "--socket", g_sock, "nosuchvm", NULL };
	assert_int_equal(run_densevm(bad, &out), 1);
	assert_non_null(strstr(out, "no VM named 'nosuchvm'"));
	free(out);

	char *stop1[] = { "densevm", "ctl", "--socket", g_sock, "stop", "idle1", NULL };
	char *stop2[] = { "densevm", "ctl", "--socket", g_sock, "stop", "idle2", NULL };
	assert_int_equal(run_densevm(stop1, &out), 0);
	free(out);
	assert_int_equal(run_densevm(stop2, &out), 0);
	free(out);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);   /* stopped VMs are not a success */
	assert_int_not_equal(access(g_sock, F_OK), 0);  /* socket removed */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ctl_serves_and_survives_garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
