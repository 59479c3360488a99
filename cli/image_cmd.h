/*
 * image_cmd.h - `densevm image`: its subcommands (cli/image.c dispatches
 * and owns stat, synth and verify; cli/image_capture.c owns capture and
 * cli/qmp.c its QMP client).
 */
#ifndef DENSEVM_IMAGE_CMD_H
#define DENSEVM_IMAGE_CMD_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

int cmd_image(int argc, char **argv);

/* qmp.c: QEMU's QMP socket.  Deadlines are CLOCK_MONOTONIC seconds. */
struct qmp {
	int fd;
	char buf[65536];
	size_t len;
};
int qmp_connect(struct qmp *q, const char *path, double deadline);
/* The next reply ("return" or "error"), skipping the greeting and events;
 * NULL with err on a timeout or a closed socket. */
json_t *qmp_reply(struct qmp *q, double deadline, char *err, size_t errlen);
int qmp_send(struct qmp *q, const char *cmd, char *err, size_t errlen);
/* A command whose reply must be {"return": ...}; else err says why. */
int qmp_cmd(struct qmp *q, const char *cmd, double deadline, char *err,
	    size_t errlen);
int cmd_image_capture(int argc, char **argv);

/* snprintf for paths and messages that hold paths: false when the text
 * was cut (callers of paths check it; a message may be cut). */
static inline bool __attribute__((format(printf, 3, 4)))
textf(char *out, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out, len, fmt, ap);
	va_end(ap);
	return n >= 0 && (size_t)n < len;
}

#endif
