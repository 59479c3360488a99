/*
 * test_ctl.c - the control socket of a running `densevm run`: list, stat
 * and stop work through `densevm ctl`; garbage, bad requests and an
 * oversized line get error replies and the server keeps serving.  Slow and
 * hostile clients (one dribbling a byte a second, one flooding requests
 * and never reading, 33 at once) do not delay another client's requests
 * (p99 of 100 `stat`s under 50 ms); half lines and silence are dropped
 * after the (shortened) timeouts.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "testvm.h"

extern char **environ;

static char g_sock[64];
static pid_t g_pid;   /* the densevm of the running test, for teardown */

static pid_t start_densevm(void)
{
	unsetenv("DENSEVM_CTL_LINE_TIMEOUT_MS");
	unsetenv("DENSEVM_CTL_IDLE_TIMEOUT_MS");
	snprintf(g_sock, sizeof(g_sock), "/tmp/densevm-ctl-test-%d.sock", (int)getpid());
	char *argv[] = { (char *)test_densevm_path(), "run", "--quiet", "--ctl", g_sock,
			 "--vm", "name=idle1,mem=64M,workload=idle seconds=60",
			 "--vm", "name=idle2,mem=64M,workload=idle seconds=60", NULL };
	pid_t pid;
	assert_int_equal(posix_spawn(&pid, argv[0], NULL, NULL, argv, environ), 0);
	g_pid = pid;
	for (int i = 0; i < 100 && access(g_sock, F_OK); i++)
		usleep(50000);
	assert_int_equal(access(g_sock, F_OK), 0);
	return pid;
}

/* After a failed test: its densevm would hold the socket for the next. */
static int kill_densevm(void **state)
{
	(void)state;
	if (g_pid > 0 && kill(g_pid, SIGKILL) == 0)
		waitpid(g_pid, NULL, 0);
	g_pid = 0;
	unlink(g_sock);
	return 0;
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
	g_pid = 0;
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);   /* stopped VMs are not a success */
	assert_int_not_equal(access(g_sock, F_OK), 0);  /* socket removed */
}

static void stop_densevm(pid_t pid)
{
	int st;
	assert_int_equal(kill(pid, SIGTERM), 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	g_pid = 0;
	assert_int_not_equal(access(g_sock, F_OK), 0);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* -1 on failure: the helper threads must not assert (cmocka longjmps) */
static int try_connect(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", g_sock);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (void *)&a, sizeof(a)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static int ctl_connect(void)
{
	int fd = try_connect();
	assert_true(fd >= 0);
	return fd;
}

/* Reads until a reply line ends, EOF or timeout_ms; returns the bytes. */
static size_t read_reply(int fd, char *buf, size_t cap, int timeout_ms, bool *eof)
{
	size_t len = 0;
	double end = now_ms() + timeout_ms;
	*eof = false;
	while (len + 1 < cap && (!len || buf[len - 1] != '\n')) {
		int left = (int)(end - now_ms());
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (left <= 0 || poll(&p, 1, left) <= 0)
			break;
		ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n <= 0) {
			*eof = true;
			break;
		}
		len += (size_t)n;
	}
	buf[len] = 0;
	return len;
}

/* One request, its reply asserted ok within 5 s; returns the ms it took. */
static double roundtrip(int fd, const char *line)
{
	static __thread char buf[64 * 1024];
	bool eof;
	double t0 = now_ms();
	assert_int_equal(send(fd, line, strlen(line), MSG_NOSIGNAL), (ssize_t)strlen(line));
	size_t n = read_reply(fd, buf, sizeof(buf), 5000, &eof);
	double dt = now_ms() - t0;
	if (!n || buf[n - 1] != '\n' || !strstr(buf, "\"ok\":true"))
		fail_msg("reply to %.40s after %.0f ms: '%.200s'%s", line, dt, buf,
			 eof ? " then EOF" : "");
	return dt;
}

/* Prints the median and p99 of n latencies (sorting them); returns p99. */
static double report(const char *what, double *lat, size_t n)
{
	double med = percentile(lat, n, 50), p99 = percentile(lat, n, 99);
	printf("ctl: %zu stat requests %s: median %.2f ms, p99 %.2f ms, max %.2f ms\n",
	       n, what, med, p99, lat[n - 1]);
	return p99;
}

#define STAT "{\"cmd\":\"stat\"}\n"
#define NLAT 100

/* Sends the first 5 bytes of a request one a second, then the rest. */
static void *dribbler(void *arg)
{
	static const char req[] = "{\"cmd\":\"list\"}\n";
	char buf[4096];
	bool eof;
	int fd = try_connect();
	if (fd < 0)
		return NULL;
	for (int i = 0; i < 5; i++) {
		if (send(fd, req + i, 1, MSG_NOSIGNAL) != 1)
			goto out;
		sleep(1);
	}
	ssize_t rest = (ssize_t)strlen(req + 5);
	if (send(fd, req + 5, (size_t)rest, MSG_NOSIGNAL) == rest &&
	    read_reply(fd, buf, sizeof(buf), 5000, &eof) && strstr(buf, "\"idle1\""))
		*(_Atomic bool *)arg = true;
out:
	close(fd);
	return NULL;
}

static void ctl_dribbling_client_delays_nobody(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	pid_t pid = start_densevm();
	static _Atomic bool served;   /* static: the thread may outlive a failure */
	served = false;
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, dribbler, (void *)&served), 0);
	usleep(100000);
	int fd = ctl_connect();
	double lat[NLAT];
	/* spread over the dribble's 5 s */
	for (int i = 0; i < NLAT; i++) {
		lat[i] = roundtrip(fd, STAT);
		usleep(45000);
	}
	close(fd);
	pthread_join(t, NULL);
	assert_true(served);   /* the 5 s line was finished and answered */
	assert_true(report("beside a client dribbling a byte a second", lat, NLAT) < 50);
	stop_densevm(pid);
}

struct hog {
	_Atomic bool stop;
	_Atomic int drops;
	_Atomic long sent;
};

/* Floods stat requests and never reads; when dropped, comes back. */
static void *hog_thread(void *arg)
{
	struct hog *h = arg;
	static char batch[64 * (sizeof(STAT) - 1)];
	for (size_t i = 0; i < 64; i++)
		memcpy(batch + i * (sizeof(STAT) - 1), STAT, sizeof(STAT) - 1);
	while (!h->stop) {
		int fd = try_connect();
		if (fd < 0)
			break;
		size_t off = 0;
		while (!h->stop) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			if (poll(&p, 1, 20) <= 0)
				continue;
			ssize_t w = send(fd, batch + off, sizeof(batch) - off,
					 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w < 0 && errno == EAGAIN)
				continue;
			if (w <= 0) {
				h->drops++;   /* EPIPE or ECONNRESET: the server let go */
				break;
			}
			h->sent += w;
			off = (off + (size_t)w) % sizeof(batch);
		}
		close(fd);
	}
	return NULL;
}

static void ctl_unread_replies_delay_nobody(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	pid_t pid = start_densevm();
	static struct hog h;   /* static: the thread may outlive a failure */
	h = (struct hog){ 0 };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, hog_thread, &h), 0);
	/* a thousand requests queued before ours start */
	for (int i = 0; i < 3000 && h.sent < 16 * 1024; i++)
		usleep(1000);
	assert_true(h.sent >= 16 * 1024);
	int fd = ctl_connect();
	double lat[NLAT];
	int drops0 = h.drops;
	for (int i = 0; i < NLAT; i++)
		lat[i] = roundtrip(fd, STAT);
	int during = h.drops - drops0;
	/* and until the hog has been dropped at least once */
	for (int i = 0; i < 100 && !h.drops; i++)
		usleep(50000);
	h.stop = true;
	pthread_join(t, NULL);
	close(fd);
	printf("ctl: the flooding client sent %ld bytes of requests; drops: %d, "
	       "%d of them during our requests\n", (long)h.sent, (int)h.drops, during);
	assert_true(h.drops >= 1);
	assert_true(report("beside a client that never reads its replies", lat, NLAT) < 50);
	stop_densevm(pid);
}

static void ctl_half_lines_and_silence_dropped(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	setenv("DENSEVM_CTL_LINE_TIMEOUT_MS", "500", 1);
	setenv("DENSEVM_CTL_IDLE_TIMEOUT_MS", "1500", 1);
	snprintf(g_sock, sizeof(g_sock), "/tmp/densevm-ctl-test-%d.sock", (int)getpid());
	char *argv[] = { (char *)test_densevm_path(), "run", "--quiet", "--ctl", g_sock,
			 "--vm", "name=idle1,mem=64M,workload=idle seconds=60", NULL };
	pid_t pid;
	assert_int_equal(posix_spawn(&pid, argv[0], NULL, NULL, argv, environ), 0);
	g_pid = pid;
	unsetenv("DENSEVM_CTL_LINE_TIMEOUT_MS");
	unsetenv("DENSEVM_CTL_IDLE_TIMEOUT_MS");
	for (int i = 0; i < 100 && access(g_sock, F_OK); i++)
		usleep(50000);

	int half = ctl_connect(), idle = ctl_connect(), busy = ctl_connect();
	double t0 = now_ms();
	assert_int_equal(send(half, "{\"cmd\":\"li", 10, MSG_NOSIGNAL), 10);
	/* busy keeps talking past the idle timeout and is kept */
	char buf[512];
	double half_gone = 0, idle_gone = 0;
	while (now_ms() - t0 < 2500) {
		roundtrip(busy, "{\"cmd\":\"list\"}\n");
		struct pollfd p[2] = { { .fd = half, .events = POLLIN },
				       { .fd = idle, .events = POLLIN } };
		poll(p, 2, 250);
		bool eof;
		if (!half_gone && p[0].revents) {
			read_reply(half, buf, sizeof(buf), 1000, &eof);
			assert_non_null(strstr(buf, "request line unfinished after 500 ms"));
			half_gone = now_ms() - t0;
		}
		if (!idle_gone && p[1].revents) {
			read_reply(idle, buf, sizeof(buf), 1000, &eof);
			assert_non_null(strstr(buf, "idle for 1500 ms"));
			idle_gone = now_ms() - t0;
		}
	}
	printf("ctl: half line dropped after %.0f ms (timeout 500), silent client after %.0f ms (1500)\n",
	       half_gone, idle_gone);
	assert_true(half_gone >= 450 && half_gone < 1500);
	assert_true(idle_gone >= 1450 && idle_gone < 2500);
	bool eof;
	read_reply(half, buf, sizeof(buf), 1000, &eof);
	assert_true(eof);
	close(half);
	close(idle);
	close(busy);
	stop_densevm(pid);
}

static void ctl_client_bound(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	pid_t pid = start_densevm();
	int fd[32];
	for (int i = 0; i < 32; i++) {
		fd[i] = ctl_connect();
		roundtrip(fd[i], "{\"cmd\":\"help\"}\n");   /* accepted */
	}
	int extra = ctl_connect();
	char buf[512];
	bool eof;
	read_reply(extra, buf, sizeof(buf), 2000, &eof);
	assert_string_equal(buf, "{\"ok\":false,\"error\":\"too many clients (32)\"}\n");
	read_reply(extra, buf, sizeof(buf), 2000, &eof);
	assert_true(eof);
	close(extra);
	char *out;
	char *list[] = { "densevm", "ctl", "--socket", g_sock, "list", NULL };
	assert_int_equal(run_densevm(list, &out), 1);
	assert_non_null(strstr(out, "too many clients (32)"));
	free(out);

	for (int i = 0; i < 32; i++)
		roundtrip(fd[i], STAT);
	close(fd[0]);
	usleep(100000);
	assert_int_equal(run_densevm(list, &out), 0);   /* the freed slot */
	assert_non_null(strstr(out, "\"idle1\""));
	free(out);
	for (int i = 1; i < 32; i++)
		close(fd[i]);
	stop_densevm(pid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(ctl_serves_and_survives_garbage, kill_densevm),
		cmocka_unit_test_teardown(ctl_dribbling_client_delays_nobody, kill_densevm),
		cmocka_unit_test_teardown(ctl_unread_replies_delay_nobody, kill_densevm),
		cmocka_unit_test_teardown(ctl_half_lines_and_silence_dropped, kill_densevm),
		cmocka_unit_test_teardown(ctl_client_bound, kill_densevm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
