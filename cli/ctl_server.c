/*
 * ctl_server.c - the control socket's server thread (protocol in ctl.h).
 * One thread polls the listening socket, the clients, a stop eventfd and
 * the worker pool's eventfd.  Quick handlers run on it, one request at a
 * time.  A command registered as slow (ctl_register_slow: it may wait for
 * another subsystem's lock, or walk every page) runs on one of
 * CTL_WORKERS pool threads (ctl_pool.c) instead, and its reply is queued
 * when it is done, so it never holds the other clients.  Its client is
 * "busy" meanwhile: none of its further requests is served (replies stay
 * in request order), it is not polled for input, and it is never idle
 * (it waits on us), so each client has at most one job and the pool never
 * holds more than CTL_MAX_CLIENTS.  A client dropped or gone while its
 * job runs loses the reply (a slot's generation tells a new client in
 * that slot from the old), and ctl_stop() waits for the jobs in hand.
 *
 * Nothing a client does may hold that thread: sockets are non-blocking,
 * replies go to a per-client output queue flushed on POLLOUT, and every
 * poll round serves at most one request per client, so a client that
 * pipelines thousands of requests delays the others by one request each,
 * not by its whole batch.  What a client can cost us is bounded instead:
 *   - CTL_MAX_OUT bytes of replies it has not read, then it is dropped
 *     (a single reply bigger than that still goes out whole);
 *   - a request line unfinished CTL_LINE_TIMEOUT_MS after its first byte
 *     (counted from when we are ready to read it), or no bytes either way
 *     for CTL_IDLE_TIMEOUT_MS: dropped, with a best-effort error line;
 *   - CTL_MAX_CLIENTS connections; the next one gets an error line and is
 *     closed at once.
 * The environment variables DENSEVM_CTL_LINE_TIMEOUT_MS and
 * DENSEVM_CTL_IDLE_TIMEOUT_MS override the two timeouts (tests use short
 * ones).  Deadlines are on CLOCK_MONOTONIC and set poll's timeout.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "ctl.h"
#include "ctl_pool.h"

#define CTL_MAX_CLIENTS 32
#define CTL_MAX_CMDS 32
#define CTL_MAX_OUT (1 << 20)
#define CTL_LINE_TIMEOUT_MS 10000
#define CTL_IDLE_TIMEOUT_MS 60000
/* slow commands at once; more wait in their clients' buffers (FIFO) */
#define CTL_WORKERS 4
/* an output queue this big is freed when it empties, not kept per client */
#define CTL_KEEP_OUT (64 * 1024)

struct ctl_client {
	int fd;
	bool eof;           /* peer stopped writing: serve what is buffered */
	char *in;           /* CTL_MAX_LINE + 1; unserved bytes are [ioff, ilen) */
	size_t ioff, ilen;
	char *out;          /* unsent replies are [ooff, olen) */
	size_t ooff, olen, ocap;
	int64_t line_t0;    /* when the unfinished tail of in[] began */
	int64_t last_io;    /* last byte received or sent */
	uint64_t gen;       /* which connection holds this slot */
	bool busy;          /* a request of it runs on the pool */
};

struct ctl_cmd {
	char name[32];
	const char *help;
	ctl_fn fn;
	void *ctx;
	bool slow;          /* ctl_register_slow */
	ctl_slow_fn slow_if;   /* NULL = every request is slow */
};

/* A slow request on its way through the pool. */
struct srv_job {
	struct ctl_job j;   /* first: the pool hands it back as this */
	const struct ctl_cmd *k;
	json_t *req;
	int slot;
	uint64_t gen;
	char *reply;        /* the worker's reply line, NULL = none */
};

struct ctl_server {
	int lfd, efd;
	char path[108];
	pthread_t thread;
	pthread_mutex_t lock;   /* guards cmds (registration vs dispatch) */
	struct ctl_cmd cmds[CTL_MAX_CMDS];
	unsigned ncmds;
	bool serving;           /* ctl_serve started the thread */
	int line_ms, idle_ms;
	uint64_t next_gen;
	struct ctl_pool *pool;
	struct ctl_client cl[CTL_MAX_CLIENTS];
};

const char *ctl_arg(json_t *req, size_t i)
{
	json_t *a = json_object_get(req, "args");
	return json_string_value(json_array_get(a, i));
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends what the socket takes now.  False = the client is gone. */
static bool flush_out(struct ctl_client *c)
{
	while (c->ooff < c->olen) {
		ssize_t w = send(c->fd, c->out + c->ooff, c->olen - c->ooff,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (w <= 0)
			return false;
		c->ooff += (size_t)w;
		c->last_io = now_ms();
	}
	c->ooff = c->olen = 0;
	if (c->ocap > CTL_KEEP_OUT) {
		free(c->out);
		c->out = NULL;
		c->ocap = 0;
	}
	return true;
}

/* Appends one reply line.  False = out of memory or over CTL_MAX_OUT. */
static bool queue_out(struct ctl_client *c, const char *s, size_t n)
{
	size_t pending = c->olen - c->ooff;
	if (pending > CTL_MAX_OUT)
		return false;
	if (c->ooff && c->olen + n + 1 > c->ocap) {
		memmove(c->out, c->out + c->ooff, pending);
		c->ooff = 0;
		c->olen = pending;
	}
	if (c->olen + n + 1 > c->ocap) {
		size_t cap = c->ocap ? c->ocap : 4096;
		while (cap < c->olen + n + 1)
			cap *= 2;
		char *p = realloc(c->out, cap);
		if (!p)
			return false;
		c->out = p;
		c->ocap = cap;
	}
	memcpy(c->out + c->olen, s, n);
	c->out[c->olen + n] = '\n';
	c->olen += n + 1;
	return true;
}

/* Queues a reply line made by dump_reply.  False = the client must be
 * dropped (it has too much unread). */
static bool send_text(struct ctl_client *c, char *s)
{
	if (!s)
		return true;   /* the client just misses this reply */
	bool ok = queue_out(c, s, strlen(s));
	free(s);
	return ok;
}

/* The line for a reply object (consumed); NULL if out of memory. */
static char *dump_reply(json_t *r)
{
	/* 15 digits: 2.239, not 2.2389999999999999 */
	char *s = r ? json_dumps(r, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
	json_decref(r);
	return s;
}

static char *error_text(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static char *error_text(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return dump_reply(json_pack("{s:b, s:s}", "ok", 0, "error", msg));
}

#define reply_error(c, ...) send_text(c, error_text(__VA_ARGS__))

/* Runs a command (on the server thread or a worker): its reply line. */
static char *run_cmd(const struct ctl_cmd *k, json_t *req)
{
	char err[512] = "failed";
	json_t *r = k->fn(req, k->ctx, err, sizeof(err));
	if (!r)
		return error_text("%s: %s", k->name, err);
	json_object_set_new(r, "ok", json_true());
	return dump_reply(r);
}

static void run_job(struct ctl_job *j)
{
	struct srv_job *sj = (struct srv_job *)j;
	sj->reply = run_cmd(sj->k, sj->req);
}

static void free_jobs(struct ctl_job *j)
{
	while (j) {
		struct srv_job *sj = (struct srv_job *)j;
		j = j->next;
		json_decref(sj->req);
		free(sj->reply);
		free(sj);
	}
}

/* Hands req (the reference is the job's now) to the pool.  False = out
 * of memory, with an error queued instead. */
static bool submit(struct ctl_server *s, struct ctl_client *c,
		   const struct ctl_cmd *k, json_t *req)
{
	struct srv_job *sj = calloc(1, sizeof(*sj));
	if (!sj) {
		json_decref(req);
		return reply_error(c, "%s: out of memory", k->name);
	}
	*sj = (struct srv_job){ .j.run = run_job, .k = k, .req = req,
				.slot = (int)(c - s->cl), .gen = c->gen };
	c->busy = true;
	ctl_pool_submit(s->pool, &sj->j);
	return true;
}

static char *help_reply(struct ctl_server *s)
{
	json_t *cmds = json_object();
	for (unsigned i = 0; i < s->ncmds; i++)
		json_object_set_new(cmds, s->cmds[i].name, json_string(s->cmds[i].help));
	return dump_reply(json_pack("{s:o, s:b}", "commands", cmds, "ok", 1));
}

/* False = drop the client. */
static bool handle_line(struct ctl_server *s, struct ctl_client *c, char *line)
{
	json_error_t je;
	json_t *req = json_loads(line, JSON_REJECT_DUPLICATES, &je);
	if (!req)
		return reply_error(c, "bad JSON at column %d: %s", je.column, je.text);
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	json_t *args = json_object_get(req, "args");
	bool ok;
	if (!json_is_object(req) || !cmd) {
		ok = reply_error(c, "a request is an object with a string \"cmd\"");
	} else if (args && !json_is_array(args)) {
		ok = reply_error(c, "\"args\" must be an array of strings");
	} else if (!strcmp(cmd, "help")) {
		ok = send_text(c, help_reply(s));
	} else {
		struct ctl_cmd *k = NULL;
		pthread_mutex_lock(&s->lock);
		for (unsigned i = 0; i < s->ncmds; i++)
			if (!strcmp(s->cmds[i].name, cmd))
				k = &s->cmds[i];
		pthread_mutex_unlock(&s->lock);
		if (!k) {
			ok = reply_error(c, "unknown command '%.64s' (try \"help\")", cmd);
		} else if (k->slow && (!k->slow_if || k->slow_if(req))) {
			return submit(s, c, k, req);
		} else {
			ok = send_text(c, run_cmd(k, req));
		}
	}
	json_decref(req);
	return ok;
}

static void drop(struct ctl_client *c)
{
	close(c->fd);
	free(c->in);
	free(c->out);
	*c = (struct ctl_client){ .fd = -1 };
}

/* For a client we give up on: its reason, if the socket takes it now. */
static void drop_with(struct ctl_client *c, const char *why)
{
	if (reply_error(c, "%s", why))
		flush_out(c);
	drop(c);
}

static char *next_line(struct ctl_client *c)
{
	return memchr(c->in + c->ioff, '\n', c->ilen - c->ioff);
}

/* Reads what is there (only called with no complete line buffered).
 * False = drop. */
static bool read_in(struct ctl_client *c, int64_t now)
{
	if (c->ioff) {
		memmove(c->in, c->in + c->ioff, c->ilen - c->ioff);
		c->ilen -= c->ioff;
		c->ioff = 0;
	}
	ssize_t n = recv(c->fd, c->in + c->ilen, CTL_MAX_LINE - c->ilen, MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
	c->last_io = now;
	if (n == 0) {
		c->eof = true;
		return true;
	}
	if (!c->ilen)
		c->line_t0 = now;
	c->ilen += (size_t)n;
	if (c->ilen == CTL_MAX_LINE && !next_line(c)) {
		if (reply_error(c, "request longer than %d bytes", CTL_MAX_LINE))
			flush_out(c);
		return false;
	}
	return true;
}

/* Serves one buffered request: one per client per round is the fairness.
 * False = drop. */
static bool serve_one(struct ctl_server *s, struct ctl_client *c, int64_t now)
{
	char *nl = next_line(c);
	if (!nl)
		return true;
	*nl = 0;
	char *line = c->in + c->ioff;
	c->ioff = (size_t)(nl + 1 - c->in);
	if (!next_line(c))
		c->line_t0 = now;   /* the tail waited on us, not on the client */
	if (nl > line && !handle_line(s, c, line))
		return false;
	return flush_out(c);
}

static void accept_one(struct ctl_server *s, int64_t now)
{
	int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		if (s->cl[i].fd < 0) {
			struct ctl_client *c = &s->cl[i];
			c->in = malloc(CTL_MAX_LINE + 1);
			if (!c->in) {
				close(fd);
				return;
			}
			c->fd = fd;
			c->last_io = now;
			c->gen = ++s->next_gen;
			return;
		}
	/* A fresh socket's buffer is empty: this one send does not block. */
	char msg[96];
	int n = snprintf(msg, sizeof(msg),
			 "{\"ok\":false,\"error\":\"too many clients (%d)\"}\n",
			 CTL_MAX_CLIENTS);
	ssize_t w = send(fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)w;   /* a refused client that already left is no news */
	close(fd);
}

/* Drops clients past a deadline; returns ms to the nearest one left. */
static int expire(struct ctl_server *s, int64_t now)
{
	int64_t next = INT64_MAX;
	char why[96];
	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		struct ctl_client *c = &s->cl[i];
		if (c->fd < 0 || c->busy)
			continue;   /* a busy client waits on us, not we on it */
		if (next_line(c)) {
			next = now;   /* requests to serve: do not sleep */
			continue;
		}
		int64_t d = c->last_io + s->idle_ms;
		if (now >= d) {
			snprintf(why, sizeof(why), "idle for %d ms", s->idle_ms);
			drop_with(c, why);
			continue;
		}
		if (!c->eof && c->ilen > c->ioff) {
			int64_t l = c->line_t0 + s->line_ms;
			if (now >= l) {
				snprintf(why, sizeof(why),
					 "request line unfinished after %d ms", s->line_ms);
				drop_with(c, why);
				continue;
			}
			if (l < d)
				d = l;
		}
		if (d < next)
			next = d;
	}
	return next == INT64_MAX ? -1 : (int)(next - now);
}

/* Queues the replies of the jobs done, each to its client if that
 * connection is still there. */
static void deliver(struct ctl_server *s, int64_t now)
{
	struct ctl_job *done = ctl_pool_done(s->pool);
	while (done) {
		struct srv_job *sj = (struct srv_job *)done;
		struct ctl_client *c = &s->cl[sj->slot];
		done = done->next;
		if (c->fd >= 0 && c->gen == sj->gen) {
			c->busy = false;
			c->last_io = now;
			if (c->ilen > c->ioff && !next_line(c))
				c->line_t0 = now;   /* its tail waited on us */
			bool ok = send_text(c, sj->reply);
			sj->reply = NULL;
			if (!ok || !flush_out(c))
				drop(c);
		}
		sj->j.next = NULL;
		free_jobs(&sj->j);
	}
}

enum { P_STOP, P_LISTEN, P_POOL, P_CLIENTS };

static void *ctl_thread(void *arg)
{
	struct ctl_server *s = arg;
	struct pollfd p[CTL_MAX_CLIENTS + P_CLIENTS];

	for (;;) {
		int map[CTL_MAX_CLIENTS], n = P_CLIENTS;
		int timeout = expire(s, now_ms());
		p[P_STOP] = (struct pollfd){ .fd = s->efd, .events = POLLIN };
		p[P_LISTEN] = (struct pollfd){ .fd = s->lfd, .events = POLLIN };
		p[P_POOL] = (struct pollfd){ .fd = ctl_pool_fd(s->pool),
					     .events = POLLIN };
		for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
			struct ctl_client *c = &s->cl[i];
			if (c->fd < 0)
				continue;
			short ev = 0;
			/* buffered requests first: the client's next bytes can
			 * wait; and a busy client's wait for its reply */
			if (!c->eof && !c->busy && !next_line(c))
				ev |= POLLIN;
			if (c->olen > c->ooff)
				ev |= POLLOUT;
			map[n - P_CLIENTS] = i;
			/* not polled at all when nothing is asked: POLLHUP
			 * comes unasked, and would spin us until its job ends */
			p[n++] = (struct pollfd){ .fd = ev ? c->fd : -1, .events = ev };
		}
		if (poll(p, (nfds_t)n, timeout) < 0 && errno != EINTR)
			break;
		if (p[P_STOP].revents)
			break;
		int64_t now = now_ms();
		if (p[P_LISTEN].revents & POLLIN)
			accept_one(s, now);
		for (int k = P_CLIENTS; k < n; k++) {
			struct ctl_client *c = &s->cl[map[k - P_CLIENTS]];
			short re = p[k].revents;
			/* POLLHUP/POLLERR come unasked: act on them or poll spins */
			if ((p[k].events & POLLOUT) && (re & (POLLOUT | POLLHUP | POLLERR)) &&
			    !flush_out(c)) {
				drop(c);
				continue;
			}
			if ((p[k].events & POLLIN) && (re & (POLLIN | POLLHUP | POLLERR)) &&
			    !read_in(c, now))
				drop(c);
		}
		/* after the clients' events, which map[] ties to slots */
		if (p[P_POOL].revents & POLLIN)
			deliver(s, now);
		for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
			struct ctl_client *c = &s->cl[i];
			if (c->fd < 0 || c->busy)
				continue;
			if (!serve_one(s, c, now))
				drop(c);
			else if (c->eof && !next_line(c) && c->olen == c->ooff)
				drop(c);   /* said all it had to say and got its replies */
		}
	}
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		if (s->cl[i].fd >= 0)
			drop(&s->cl[i]);
	return NULL;
}

static int env_ms(const char *name, int dflt)
{
	const char *v = getenv(name);
	char *end;
	long ms = v ? strtol(v, &end, 10) : 0;
	if (!v || end == v || *end || ms < 1 || ms > 24L * 3600 * 1000)
		return dflt;
	return (int)ms;
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
	s->line_ms = env_ms("DENSEVM_CTL_LINE_TIMEOUT_MS", CTL_LINE_TIMEOUT_MS);
	s->idle_ms = env_ms("DENSEVM_CTL_IDLE_TIMEOUT_MS", CTL_IDLE_TIMEOUT_MS);
	pthread_mutex_init(&s->lock, NULL);
	snprintf(s->path, sizeof(s->path), "%s", p);
	s->efd = eventfd(0, EFD_CLOEXEC);
	/* non-blocking: a connection gone between poll and accept4 must not
	 * park the thread */
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", p);
	if (s->efd < 0 || s->lfd < 0 || bind(s->lfd, (void *)&a, sizeof(a)) < 0 ||
	    chmod(p, 0600) < 0 || listen(s->lfd, 16) < 0) {
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

static int add_cmd(struct ctl_server *s, const struct ctl_cmd *cmd)
{
	int rc = -ENOSPC;
	pthread_mutex_lock(&s->lock);
	if (s->ncmds < CTL_MAX_CMDS) {
		s->cmds[s->ncmds++] = *cmd;
		rc = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int ctl_register(struct ctl_server *s, const char *cmd, const char *help,
		 ctl_fn fn, void *ctx)
{
	struct ctl_cmd k = { .help = help, .fn = fn, .ctx = ctx };
	snprintf(k.name, sizeof(k.name), "%s", cmd);
	return add_cmd(s, &k);
}

int ctl_register_slow(struct ctl_server *s, const char *cmd, const char *help,
		      ctl_fn fn, void *ctx, ctl_slow_fn slow_if)
{
	struct ctl_cmd k = { .help = help, .fn = fn, .ctx = ctx, .slow = true,
			     .slow_if = slow_if };
	snprintf(k.name, sizeof(k.name), "%s", cmd);
	return add_cmd(s, &k);
}

int ctl_serve(struct ctl_server *s, char *err, size_t errlen)
{
	int e = -ctl_pool_start(&s->pool, CTL_WORKERS);
	if (!e) {
		e = pthread_create(&s->thread, NULL, ctl_thread, s);
		if (e) {
			free_jobs(ctl_pool_stop(s->pool));
			s->pool = NULL;
		}
	}
	if (e) {
		snprintf(err, errlen, "control socket %s: %s", s->path, strerror(e));
		return -e;
	}
	s->serving = true;
	return 0;
}

void ctl_stop(struct ctl_server *s)
{
	if (!s)
		return;
	uint64_t one = 1;
	if (s->serving) {
		if (write(s->efd, &one, sizeof(one)) != sizeof(one))
			perror("ctl: eventfd");
		pthread_join(s->thread, NULL);
		/* the clients are gone; a job in hand finishes (a check
		 * in flight), the others are dropped unrun */
		free_jobs(ctl_pool_stop(s->pool));
	}
	close(s->lfd);
	close(s->efd);
	unlink(s->path);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
