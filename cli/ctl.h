/*
 * ctl.h - the control socket: newline-delimited JSON on a unix socket,
 * served by every `densevm run` process, and its client `densevm ctl`.
 *
 * Request:  {"cmd": "NAME", "args": ["positional", ...], ...}\n
 * Reply:    {"ok": true, ...}\n   or   {"ok": false, "error": "..."}\n
 * A request longer than CTL_MAX_LINE, bad JSON or an unknown command gets
 * an error reply; the server keeps serving.  Requests on one connection are
 * answered in order, and may be pipelined.  One thread serves every client
 * without ever blocking on one, so a client cannot stall the others; in
 * exchange a client is dropped when it leaves 1 MiB of replies unread,
 * takes over 10 s to finish a request line or says nothing for 60 s (the
 * last two with an error line if it still reads).  Over 32 clients, the
 * next gets {"ok": false, "error": "too many clients (32)"} and is closed.
 * Commands that may take long (registered with ctl_register_slow: `stat`
 * with "check", `ksm-set`, `policy reload`) run on worker threads: the
 * other clients are served meanwhile, and the same client's next request
 * waits for that reply.
 * Bounds and their environment overrides: ctl_server.c.
 * Commands are registered by whoever owns the data (cli/ today; ksm and
 * policy register theirs through the same call), so this file knows none.
 */
#ifndef DENSEVM_CTL_H
#define DENSEVM_CTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define CTL_MAX_LINE (64 * 1024)
#define CTL_DEFAULT_DIR "/run/densevm"

struct ctl_server;

/* Returns a reply object (the server adds "ok": true), or NULL after
 * writing a one-line reason into err. */
typedef json_t *(*ctl_fn)(json_t *req, void *ctx, char *err, size_t errlen);
/* True if this request of a slow command may take long. */
typedef bool (*ctl_slow_fn)(json_t *req);

/* path NULL = CTL_DEFAULT_DIR/densevm.sock, or densevm-PID.sock when that
 * one is held by another live process.  *bound receives the path used. */
int ctl_start(const char *path, struct ctl_server **out, char *bound,
	      size_t boundlen, char *err, size_t errlen);
int ctl_register(struct ctl_server *s, const char *cmd, const char *help,
		 ctl_fn fn, void *ctx);
/* A command whose handler may take long (waits for another subsystem's
 * lock, walks every page): it runs on a worker thread, beside other
 * commands (slow or not), so it must be thread-safe against them.
 * slow_if NULL = every request; else only those it says true for, the
 * others run on the server thread as with ctl_register. */
int ctl_register_slow(struct ctl_server *s, const char *cmd, const char *help,
		      ctl_fn fn, void *ctx, ctl_slow_fn slow_if);
/* Starts answering (and the worker threads).  Until then a client's connection waits in the
 * listen backlog: `densevm run` calls it once every subsystem has
 * registered its commands, so a client that sees the socket never gets
 * "unknown command" for one still starting. */
int ctl_serve(struct ctl_server *s, char *err, size_t errlen);
/* Closes every connection; a slow command in hand finishes first (the
 * subsystems it uses must still be up), queued ones are dropped. */
void ctl_stop(struct ctl_server *s);

/* Positional argument i of a request as a string, or NULL. */
const char *ctl_arg(json_t *req, size_t i);

/* The client side (ctl_client.c): one request to the socket at path and
 * its reply, the object as the server sent it ("ok" included; the caller
 * decrefs), or NULL with a one-line reason in err: no socket there, the
 * send failed with nothing said back, no reply line within timeout_ms, or
 * not JSON.  A server that refused the client (too many clients) still
 * gets its error line read.  Used by `densevm ctl`, the tests and the
 * benchmarks, which must not spawn a process per request. */
json_t *ctl_request(const char *path, json_t *req, int timeout_ms, char *err,
		    size_t errlen);

/* `densevm ctl` and `densevm stat` */
int cmd_ctl(int argc, char **argv);
int cmd_stat(int argc, char **argv);

#endif
