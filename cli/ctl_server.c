/*
 * ctl_server.c - the control socket's server thread (protocol in ctl.h).
 * One thread polls the listening socket, the clients and a stop eventfd;
 * handlers run on it, one request at a time, so they must be quick.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "ctl.h"

#define CTL_MAX_CLIENTS 32
#define CTL_MAX_CMDS 32

struct ctl_client {
	int fd;
	size_t len;
	char *buf;      /* CTL_MAX_LINE + 1 */
};

struct ctl_cmd {
	char name[32];
	const char *help;
	ctl_fn fn;
	void *ctx;
};

struct ctl_server {
	int lfd, efd;
	char path[108];
	pthread_t thread;
	pthread_mutex_t lock;   /* guards cmds (registration vs dispatch) */
	struct ctl_cmd cmds[CTL_MAX_CMDS];
	unsigned ncmds;
	struct ctl_client cl[CTL_MAX_CLIENTS];
};

const char *ctl_arg(json_t *req, size_t i)
{
	json_t *a = json_object_get(req, "args");
	return json_string_value(json_array_get(a, i));
}

static void send_reply(struct ctl_client *c, json_t *reply)
{
	/* 15 digits: 2.239, not 2.2389999999999999 */
	char *s = json_dumps(reply, JSON_COMPACT | JSON_REAL_PRECISION(15));
	if (!s)
		return;
	size_t n = strlen(s);
	s[n] = '\n';   /* json_dumps leaves room: we replace the NUL */
	const char *p = s;
	size_t left = n + 1;
	while (left) {
		ssize_t w = send(c->fd, p, left, MSG_NOSIGNAL);
		if (w <= 0)
			break;   /* timeout or gone: the poll loop will drop it */
		p += w;
		left -= (size_t)w;
	}
	free(s);
}

static void reply_error(struct ctl_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void reply_error(struct ctl_client *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *r = json_pack("{s:b, s:s}", "ok", 0, "error", msg);
	send_reply(c, r);
	json_decref(r);
}

static json_t *help_reply(struct ctl_server *s)
{
	json_t *cmds = json_object();
	for (unsigned i = 0; i < s->ncmds; i++)
		json_object_set_new(cmds, s->cmds[i].name, json_string(s->cmds[i].help));
	return json_pack("{s:o}", "commands", cmds);
}

static void handle_line(struct ctl_server *s, struct ctl_client *c, char *line)
{
	json_error_t je;
	json_t *req = json_loads(line, JSON_REJECT_DUPLICATES, &je);
	if (!req) {
		reply_error(c, "bad JSON at column %d: %s", je.column, je.text);
		return;
	}
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	json_t *args = json_object_get(req, "args");
	if (!json_is_object(req) || !cmd) {
		reply_error(c, "a request is an object with a string \"cmd\"");
	} else if (args && !json_is_array(args)) {
		reply_error(c, "\"args\" must be an array of strings");
	} else if (!strcmp(cmd, "help")) {
		json_t *r = help_reply(s);
		json_object_set_new(r, "ok", json_true());
		send_reply(c, r);
		json_decref(r);
	} else {
		struct ctl_cmd *k = NULL;
		pthread_mutex_lock(&s->lock);
		for (unsigned i = 0; i < s->ncmds; i++)
			if (!strcmp(s->cmds[i].name, cmd))
				k = &s->cmds[i];
		pthread_mutex_unlock(&s->lock);
		if (!k) {
			reply_error(c, "unknown command '%.64s' (try \"help\")", cmd);
		} else {
			char err[512] = "failed";
			json_t *r = k->fn(req, k->ctx, err, sizeof(err));
			if (!r) {
				reply_error(c, "%s: %s", k->name, err);
			} else {
				json_object_set_new(r, "ok", json_true());
				send_reply(c, r);
				json_decref(r);
			}
		}
	}
	json_decref(req);
}

static void drop(struct ctl_client *c)
{
	close(c->fd);
	free(c->buf);
	c->fd = -1;
	c->buf = NULL;
	c->len = 0;
}

/* Reads what is there; serves every complete line.  False = drop. */
static bool service(struct ctl_server *s, struct ctl_client *c)
{
	ssize_t n = recv(c->fd, c->buf + c->len, CTL_MAX_LINE - c->len, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		return false;
	if (n < 0)
		return true;
	c->len += (size_t)n;
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (!nl)
			break;
		*nl = 0;
		if (nl > c->buf)
			handle_line(s, c, c->buf);
		size_t used = (size_t)(nl + 1 - c->buf);
		memmove(c->buf, nl + 1, c->len - used);
		c->len -= used;
	}
	if (c->len == CTL_MAX_LINE) {
		reply_error(c, "request longer than %d bytes", CTL_MAX_LINE);
		return false;
	}
	return true;
}

static void accept_one(struct ctl_server *s)
{
	int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	struct timeval tv = { 1, 0 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		if (s->cl[i].fd < 0) {
			s->cl[i].buf = malloc(CTL_MAX_LINE + 1);
			if (!s->cl[i].buf)
				break;
			s->cl[i].fd = fd;
			s->cl[i].len = 0;
			return;
		}
	struct ctl_client tmp = { .fd = fd };
	reply_error(&tmp, "too many clients (%d)", CTL_MAX_CLIENTS);
	close(fd);
}

static void *ctl_thread(void *arg)
{
	struct ctl_server *s = arg;
	struct pollfd p[CTL_MAX_CLIENTS + 2];

	for (;;) {
		int map[CTL_MAX_CLIENTS], n = 2;
		p[0] = (struct pollfd){ .fd = s->efd, .events = POLLIN };
		p[1] = (struct pollfd){ .fd = s->lfd, .events = POLLIN };
		for (int i = 0; i < CTL_MAX_CLIENTS; i++)
			if (s->cl[i].fd >= 0) {
				map[n - 2] = i;
				p[n++] = (struct pollfd){ .fd = s->cl[i].fd, .events = POLLIN };
			}
		if (poll(p, (nfds_t)n, -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		if (p[1].revents & POLLIN)
			accept_one(s);
		for (int k = 2; k < n; k++) {
			struct ctl_client *c = &s->cl[map[k - 2]];
			if (p[k].revents && !service(s, c))
				drop(c);
		}
	}
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		if (s->cl[i].fd >= 0)
			drop(&s->cl[i]);
	return NULL;
}

/* A socket file someone still answers on belongs to a live process. */
static bool in_use(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live = fd >= 0 && connect(fd, (void *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return live;
}

int ctl_start(const char *path, struct ctl_server **out, char *bound,
	      size_t boundlen, char *err, size_t errlen)
{
	char p[108];
	if (path) {
		if (strlen(path) >= sizeof(p)) {
			snprintf(err, errlen, "--ctl %s: path longer than %zu bytes", path,
				 sizeof(p) - 1);
			return -ENAMETOOLONG;
		}
		snprintf(p, sizeof(p), "%s", path);
		if (in_use(p)) {
			snprintf(err, errlen, "--ctl %s: in use by another densevm", p);
			return -EADDRINUSE;
		}
	} else {
		mkdir(CTL_DEFAULT_DIR, 0700);
		snprintf(p, sizeof(p), "%s/densevm.sock", CTL_DEFAULT_DIR);
		if (in_use(p))
			snprintf(p, sizeof(p), "%s/densevm-%d.sock", CTL_DEFAULT_DIR,
				 (int)getpid());
	}
	unlink(p);

	struct ctl_server *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		s->cl[i].fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	snprintf(s->path, sizeof(s->path), "%s", p);
	s->efd = eventfd(0, EFD_CLOEXEC);
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", p);
	if (s->efd < 0 || s->lfd < 0 || bind(s->lfd, (void *)&a, sizeof(a)) < 0 ||
	    chmod(p, 0600) < 0 || listen(s->lfd, 16) < 0 ||
	    pthread_create(&s->thread, NULL, ctl_thread, s) != 0) {
		int e = errno;
		snprintf(err, errlen, "control socket %s: %s", p, strerror(e));
		if (s->lfd >= 0)
			close(s->lfd);
		if (s->efd >= 0)
			close(s->efd);
		free(s);
		return -e;
	}
	snprintf(bound, boundlen, "%s", p);
	*out = s;
	return 0;
}

int ctl_register(struct ctl_server *s, const char *cmd, const char *help,
		 ctl_fn fn, void *ctx)
{
	int rc = -ENOSPC;
	pthread_mutex_lock(&s->lock);
	if (s->ncmds < CTL_MAX_CMDS) {
		struct ctl_cmd *k = &s->cmds[s->ncmds++];
		snprintf(k->name, sizeof(k->name), "%s", cmd);
		k->help = help;
		k->fn = fn;
		k->ctx = ctx;
		rc = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

void ctl_stop(struct ctl_server *s)
{
	if (!s)
		return;
	uint64_t one = 1;
	if (write(s->efd, &one, sizeof(one)) != sizeof(one))
		perror("ctl: eventfd");
	pthread_join(s->thread, NULL);
	close(s->lfd);
	close(s->efd);
	unlink(s->path);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
