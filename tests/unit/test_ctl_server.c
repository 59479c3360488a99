/*
 * test_ctl_server.c - the control socket server's slow commands
 * (ctl_register_slow), in process, with a `sleep MS` command registered as
 * slow and a quick `echo`: a client whose slow request runs does not delay
 * another client; one connection's replies stay in request order behind a
 * slow one; a client that leaves while its request runs costs nothing
 * (its slot's next client does not get that reply); 31 clients asking at
 * once all get answers while a 32nd is served at once; a busy client is
 * not idle; and ctl_stop waits for the request in hand.  And the process
 * figures `stat` and `ksm` show (proc_figs.c): read by a thread, at most
 * once a second, the last reading given at once.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "cli/cli.h"
#include "cli/ctl.h"

static char g_path[64];
static int g_running;   /* sleeps in progress */
static struct ctl_server *g_srv;   /* the running test's, for teardown */

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* sleep MS: replies {"slept": MS} after MS ms, on a worker */
static json_t *cmd_sleep(json_t *req, void *ctx, char *err, size_t errlen)
{
	(void)ctx; (void)err; (void)errlen;
	const char *a = ctl_arg(req, 0);
	int ms = a ? atoi(a) : 0;
	__atomic_add_fetch(&g_running, 1, __ATOMIC_SEQ_CST);
	usleep((useconds_t)ms * 1000);
	__atomic_sub_fetch(&g_running, 1, __ATOMIC_SEQ_CST);
	return json_pack("{s:i}", "slept", ms);
}

/* echo X: {"echo": X}, on the server thread */
static json_t *cmd_echo(json_t *req, void *ctx, char *err, size_t errlen)
{
	(void)ctx; (void)err; (void)errlen;
	const char *a = ctl_arg(req, 0);
	return json_pack("{s:s}", "echo", a ? a : "");
}

/* `maybe slow|quick`: slow only when asked */
static bool maybe_is_slow(json_t *req)
{
	const char *a = ctl_arg(req, 0);
	return a && !strcmp(a, "slow");
}

static json_t *cmd_maybe(json_t *req, void *ctx, char *err, size_t errlen)
{
	(void)ctx; (void)err; (void)errlen;
	if (maybe_is_slow(req))
		usleep(300000);
	return json_pack("{s:b}", "slow", maybe_is_slow(req));
}

static struct ctl_server *start(void)
{
	struct ctl_server *s;
	char bound[108], err[256];
	snprintf(g_path, sizeof(g_path), "/tmp/densevm-ctlsrv-%d.sock", (int)getpid());
	assert_int_equal(ctl_start(g_path, &s, bound, sizeof(bound), err, sizeof(err)), 0);
	assert_int_equal(ctl_register_slow(s, "sleep", "MS", cmd_sleep, NULL, NULL), 0);
	assert_int_equal(ctl_register(s, "echo", "X", cmd_echo, NULL), 0);
	assert_int_equal(ctl_register_slow(s, "maybe", "slow|quick", cmd_maybe, NULL,
					   maybe_is_slow), 0);
	assert_int_equal(ctl_serve(s, err, sizeof(err)), 0);
	g_srv = s;
	return s;
}

static void stop(struct ctl_server *s)
{
	ctl_stop(s);
	g_srv = NULL;
}

/* After a failed test: its server would hold the socket for the next. */
static int teardown(void **state)
{
	(void)state;
	stop(g_srv);
	return 0;
}

static int connect_sock(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", g_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (void *)&a, sizeof(a)), 0);
	return fd;
}

static void send_line(int fd, const char *cmd, const char *arg)
{
	char *buf;
	int n = asprintf(&buf, "{\"cmd\":\"%s\",\"args\":[\"%s\"]}\n", cmd, arg);
	assert_true(n > 0);
	assert_int_equal(send(fd, buf, (size_t)n, MSG_NOSIGNAL), n);
	free(buf);
}

/* Reads one reply line (within timeout_ms) and parses it. */
static json_t *read_reply(int fd, int timeout_ms)
{
	char buf[4096];
	size_t len = 0;
	while (len < sizeof(buf) - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, timeout_ms) <= 0)
			return NULL;
		/* one byte at a time: the next reply stays in the socket */
		ssize_t r = recv(fd, buf + len, 1, 0);
		if (r <= 0)
			return NULL;
		if (buf[len++] == '\n')
			break;
	}
	buf[len] = 0;
	return json_loads(buf, 0, NULL);
}

static double echo_ms(void)
{
	char err[256];
	json_t *req = json_pack("{s:s, s:[s]}", "cmd", "echo", "args", "x");
	double t0 = now_ms();
	json_t *r = ctl_request(g_path, req, 5000, err, sizeof(err));
	double t = now_ms() - t0;
	json_decref(req);
	if (!r)
		fail_msg("echo: %s", err);
	assert_string_equal(json_string_value(json_object_get(r, "echo")), "x");
	json_decref(r);
	return t;
}

static void slow_request_holds_nobody(void **state)
{
	(void)state;
	struct ctl_server *s = start();
	int a = connect_sock();
	send_line(a, "sleep", "600");
	while (!__atomic_load_n(&g_running, __ATOMIC_SEQ_CST))
		usleep(1000);
	/* while it sleeps, other clients' quick requests go through */
	double worst = 0;
	int n = 0;
	while (__atomic_load_n(&g_running, __ATOMIC_SEQ_CST) && n < 200) {
		double t = echo_ms();
		worst = t > worst ? t : worst;
		n++;
	}
	print_message("[ slow ] %d echos beside a 600 ms slow request, worst %.1f ms\n",
		      n, worst);
	assert_true(n >= 5);
	assert_true(worst < 300);   /* the old server: 600 */
	json_t *r = read_reply(a, 5000);
	assert_non_null(r);
	assert_int_equal(json_integer_value(json_object_get(r, "slept")), 600);
	json_decref(r);
	/* a slow command's quick requests run inline */
	json_t *req = json_pack("{s:s, s:[s]}", "cmd", "maybe", "args", "quick");
	char err[256];
	r = ctl_request(g_path, req, 5000, err, sizeof(err));
	json_decref(req);
	assert_non_null(r);
	assert_true(json_is_false(json_object_get(r, "slow")));
	json_decref(r);
	close(a);
	stop(s);
}

static void replies_in_order_behind_slow(void **state)
{
	(void)state;
	struct ctl_server *s = start();
	int a = connect_sock();
	/* pipelined: slow, quick, slow (by predicate), quick */
	send_line(a, "sleep", "200");
	send_line(a, "echo", "one");
	send_line(a, "maybe", "slow");
	send_line(a, "echo", "two");
	json_t *r[4];
	for (int i = 0; i < 4; i++) {
		r[i] = read_reply(a, 5000);
		assert_non_null(r[i]);
		assert_true(json_is_true(json_object_get(r[i], "ok")));
	}
	assert_int_equal(json_integer_value(json_object_get(r[0], "slept")), 200);
	assert_string_equal(json_string_value(json_object_get(r[1], "echo")), "one");
	assert_true(json_is_true(json_object_get(r[2], "slow")));
	assert_string_equal(json_string_value(json_object_get(r[3], "echo")), "two");
	for (int i = 0; i < 4; i++)
		json_decref(r[i]);
	close(a);
	stop(s);
}

static void client_gone_while_busy(void **state)
{
	(void)state;
	struct ctl_server *s = start();
	/* a client with replies it never read, then a slow request, then
	 * gone: dropped while its request runs, and its slot (the first)
	 * goes to the next client */
	int a = connect_sock();
	static char big[60001];
	memset(big, 'b', sizeof(big) - 1);
	for (int i = 0; i < 8; i++)
		send_line(a, "echo", big);
	send_line(a, "sleep", "300");
	while (!__atomic_load_n(&g_running, __ATOMIC_SEQ_CST))
		usleep(1000);
	close(a);
	usleep(50000);
	int b = connect_sock();
	send_line(b, "echo", "mine");
	json_t *r = read_reply(b, 5000);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "echo")), "mine");
	json_decref(r);
	/* a's reply, when its sleep ends, is not b's */
	r = read_reply(b, 600);
	assert_null(r);
	assert_int_equal(__atomic_load_n(&g_running, __ATOMIC_SEQ_CST), 0);
	close(b);
	/* clients that leave while busy and never had output pending: seen
	 * gone when their jobs end, and their slots are free again */
	int fds[8];
	for (int i = 0; i < 8; i++) {
		fds[i] = connect_sock();
		send_line(fds[i], "sleep", "100");
	}
	usleep(20000);
	for (int i = 0; i < 8; i++)
		close(fds[i]);
	assert_true(echo_ms() < 100);
	usleep(300000);   /* two rounds of 4 workers */
	int c[31];
	for (int i = 0; i < 31; i++)
		c[i] = connect_sock();
	assert_true(echo_ms() < 100);   /* the 32nd slot: none is held */
	for (int i = 0; i < 31; i++)
		close(c[i]);
	stop(s);
}

struct asker { int fd; json_t *r; };

static void many_at_once(void **state)
{
	(void)state;
	struct ctl_server *s = start();
	struct asker k[31];
	double t0 = now_ms();
	for (int i = 0; i < 31; i++) {
		k[i].fd = connect_sock();
		send_line(k[i].fd, "sleep", "100");
	}
	/* the 32nd client is served at once */
	double e = echo_ms();
	for (int i = 0; i < 31; i++) {
		k[i].r = read_reply(k[i].fd, 10000);
		assert_non_null(k[i].r);
		assert_int_equal(json_integer_value(json_object_get(k[i].r, "slept")), 100);
		json_decref(k[i].r);
		close(k[i].fd);
	}
	double all = now_ms() - t0;
	print_message("[ slow ] 31 slow requests of 100 ms at once: all answered "
		      "in %.0f ms (4 workers); an echo meanwhile %.1f ms\n", all, e);
	assert_true(e < 100);
	/* 4 at a time: at least 8 rounds of 100 ms */
	assert_true(all >= 700);
	stop(s);
}

static void busy_client_not_idle(void **state)
{
	(void)state;
	setenv("DENSEVM_CTL_IDLE_TIMEOUT_MS", "200", 1);
	struct ctl_server *s = start();
	unsetenv("DENSEVM_CTL_IDLE_TIMEOUT_MS");
	int a = connect_sock();
	send_line(a, "sleep", "500");
	json_t *r = read_reply(a, 5000);
	assert_non_null(r);
	assert_int_equal(json_integer_value(json_object_get(r, "slept")), 500);
	json_decref(r);
	/* idle again from now: dropped after 200 ms with a reason */
	r = read_reply(a, 2000);
	assert_non_null(r);
	assert_non_null(strstr(json_string_value(json_object_get(r, "error")), "idle"));
	json_decref(r);
	close(a);
	stop(s);
}

static void stop_waits_for_request_in_hand(void **state)
{
	(void)state;
	struct ctl_server *s = start();
	int a = connect_sock();
	send_line(a, "sleep", "300");
	while (!__atomic_load_n(&g_running, __ATOMIC_SEQ_CST))
		usleep(1000);
	double t0 = now_ms();
	stop(s);
	double t = now_ms() - t0;
	assert_int_equal(__atomic_load_n(&g_running, __ATOMIC_SEQ_CST), 0);
	assert_true(t >= 200);
	/* the connection was closed, without the reply */
	char c;
	assert_true(recv(a, &c, 1, 0) <= 0);
	close(a);
}

static void process_figures_read_in_background(void **state)
{
	(void)state;
	struct proc_figs a, b;
	proc_figs_get(&a, PROC_FIGS_VMAS);   /* the first one waits */
	long now = hv_vma_count();
	assert_true(a.vmas > 0 && labs(a.vmas - now) < 16);
	/* 64 more VMAs: every other page read-only, so none merge */
	size_t pg = 4096;
	char *m = mmap(NULL, 128 * pg, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	for (int i = 0; i < 64; i++)
		assert_int_equal(mprotect(m + 2 * i * pg, pg, PROT_READ), 0);
	/* within the second: the same reading, not a walk of the VMAs */
	proc_figs_get(&b, PROC_FIGS_VMAS);
	assert_int_equal(b.vmas, a.vmas);
	assert_true(b.age_ms >= 0 && b.age_ms < PROC_FIGS_MAX_AGE_MS);
	/* later asks get a fresh reading, made in the background */
	double t0 = now_ms();
	while (b.vmas < a.vmas + 60 && now_ms() - t0 < 3000) {
		usleep(50000);
		proc_figs_get(&b, PROC_FIGS_VMAS);
	}
	print_message("[ figs ] %ld VMAs, then %ld after 64 more, %.0f ms later\n",
		      a.vmas, b.vmas, now_ms() - t0);
	assert_true(b.vmas >= a.vmas + 60);
	proc_figs_get(&b, PROC_FIGS_PSS);
	assert_true(b.rss_kb > 0 && b.pss_kb > 0 && b.pss_kb <= b.rss_kb);
	munmap(m, 128 * pg);
	proc_figs_stop();
	proc_figs_get(&b, PROC_FIGS_VMAS);   /* read here now */
	assert_true(labs(b.vmas - hv_vma_count()) < 16);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(slow_request_holds_nobody, teardown),
		cmocka_unit_test_teardown(replies_in_order_behind_slow, teardown),
		cmocka_unit_test_teardown(client_gone_while_busy, teardown),
		cmocka_unit_test_teardown(many_at_once, teardown),
		cmocka_unit_test_teardown(busy_client_not_idle, teardown),
		cmocka_unit_test_teardown(stop_waits_for_request_in_hand, teardown),
		cmocka_unit_test(process_figures_read_in_background),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
