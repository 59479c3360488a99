/*
 * ctl_client.c - the control socket's client: ctl_request() (one request,
 * its reply), and on it `densevm ctl` and `densevm stat`, which print the
 * reply (JSON).
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "ctl.h"

static const char ctl_usage[] =
"usage: densevm ctl [--socket PATH] [--raw] COMMAND [ARG]...\n"
"\n"
"Sends COMMAND to a running `densevm run` and prints its JSON reply; exit\n"
"status 1 when the reply is an error.  `densevm ctl help` lists the\n"
"commands that process serves, e.g.:\n"
"  list                 the VMs and their state\n"
"  stat [VM]            host, process (PSS, VMAs, jemalloc) and per-VM stats\n"
"  stop VM              stop one VM\n"
"  balloon VM SIZE      set VM's balloon to SIZE (the guest keeps RAM - SIZE)\n"
"  balloon-stat [VM]    balloon size, target, counters and guest stats\n"
"\n"
"  --socket PATH   default " CTL_DEFAULT_DIR "/densevm.sock\n"
"  --raw           print the reply on one line\n";

#define REPLY_MAX (4u << 20)   /* `stat` of 1024 VMs fits */

json_t *ctl_request(const char *path, json_t *req, int timeout_ms, char *err,
		    size_t errlen)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(a.sun_path)) {
		snprintf(err, errlen, "%s: path too long", path);
		return NULL;
	}
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (void *)&a, sizeof(a)) < 0) {
		snprintf(err, errlen, "%s: %s (is `densevm run` running?)", path,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	char *s = json_dumps(req, JSON_COMPACT);
	char *buf = malloc(REPLY_MAX);
	if (!s || !buf) {
		snprintf(err, errlen, "out of memory");
		free(s);
		free(buf);
		close(fd);
		return NULL;
	}
	size_t n = strlen(s);
	s[n] = '\n';   /* over the terminator: sent as n + 1 bytes */
	ssize_t w = send(fd, s, n + 1, MSG_NOSIGNAL);
	int send_errno = w == (ssize_t)(n + 1) ? 0 : w < 0 ? errno : EPIPE;
	free(s);
	size_t len = 0;
	/* Even after a failed send: a server that refused us (too many
	 * clients) said why before closing, and that line is still here. */
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, timeout_ms) <= 0) {
			snprintf(err, errlen, "no reply within %d ms", timeout_ms);
			free(buf);
			close(fd);
			return NULL;
		}
		ssize_t r = recv(fd, buf + len, REPLY_MAX - 1 - len, 0);
		if (r <= 0)
			break;
		len += (size_t)r;
		if (memchr(buf, '\n', len) || len == REPLY_MAX - 1)
			break;
	}
	close(fd);
	if (send_errno && !len) {
		snprintf(err, errlen, "send: %s", strerror(send_errno));
		free(buf);
		return NULL;
	}
	buf[len] = 0;
	json_error_t je;
	json_t *rep = json_loads(buf, JSON_DISABLE_EOF_CHECK, &je);
	free(buf);
	if (!rep)
		snprintf(err, errlen, "bad reply: %s", je.text);
	return rep;
}

static int request(const char *path, json_t *req, bool raw)
{
	char err[512];
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		fprintf(stderr, "densevm ctl: --socket %s: path too long\n", path);
		return 2;
	}
	json_t *rep = ctl_request(path, req, 30000, err, sizeof(err));
	if (!rep) {
		fprintf(stderr, "densevm ctl: %s\n", err);
		return 1;
	}
	int ok = json_is_true(json_object_get(rep, "ok"));
	if (!ok)
		fprintf(stderr, "densevm ctl: %s\n",
			json_string_value(json_object_get(rep, "error")));
	json_object_del(rep, "ok");
	if (ok) {
		json_dumpf(rep, stdout, (raw ? JSON_COMPACT : JSON_INDENT(2)) |
			   JSON_REAL_PRECISION(15));
		putchar('\n');
	}
	json_decref(rep);
	return ok ? 0 : 1;
}

static int ctl_main(int argc, char **argv, const char *fixed_cmd)
{
	static const struct option lo[] = {
		{ "socket", required_argument, 0, 's' },
		{ "raw", no_argument, 0, 'r' },
		{ "check", no_argument, 0, 'c' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *path = CTL_DEFAULT_DIR "/densevm.sock";
	bool raw = false, check = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
		switch (c) {
		case 's': path = optarg; break;
		case 'r': raw = true; break;
		case 'c': check = true; break;
		case 'h':
			if (fixed_cmd)
				puts("usage: densevm stat [--socket PATH] [--raw] [--check] [VM]\n"
				     "Prints host, process and per-VM statistics of a running\n"
				     "densevm as JSON (same as `densevm ctl stat`); --check runs\n"
				     "the consistency self-checks and fails if one fails.");
			else
				fputs(ctl_usage, stdout);
			return 0;
		default:
			fprintf(stderr, "densevm %s: see --help\n", fixed_cmd ? "stat" : "ctl");
			return 2;
		}
	}
	const char *cmd = fixed_cmd ? fixed_cmd : argv[optind++];
	if (!cmd) {
		fprintf(stderr, "densevm ctl: no COMMAND (see --help)\n");
		return 2;
	}
	json_t *args = json_array();
	for (int i = optind; i < argc; i++)
		json_array_append_new(args, json_string(argv[i]));
	json_t *req = json_pack("{s:s, s:o}", "cmd", cmd, "args", args);
	if (check)
		json_object_set_new(req, "check", json_true());
	int rc = request(path, req, raw);
	json_decref(req);
	return rc;
}

int cmd_ctl(int argc, char **argv) { return ctl_main(argc, argv, NULL); }
int cmd_stat(int argc, char **argv) { return ctl_main(argc, argv, "stat"); }
