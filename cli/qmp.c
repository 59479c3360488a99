/*
 * qmp.c - a minimal QMP client for `densevm image capture`: connect to
 * QEMU's QMP unix socket, send one command per line, and read replies
 * ({"return": ...} or {"error": ...}) while skipping the greeting and
 * asynchronous events.  Every wait has a deadline (CLOCK_MONOTONIC
 * seconds), so a stuck QEMU cannot hang a capture.
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "image_cmd.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int qmp_connect(struct qmp *q, const char *path, double deadline)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	q->len = 0;
	while (now_s() < deadline) {
		q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (q->fd < 0)
			return -errno;
		if (!connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)))
			return 0;
		close(q->fd);
		q->fd = -1;
		usleep(50000);
	}
	return -ETIMEDOUT;
}

json_t *qmp_reply(struct qmp *q, double deadline, char *err,
			 size_t errlen)
{
	for (;;) {
		char *nl = memchr(q->buf, '\n', q->len);
		if (nl) {
			*nl = 0;
			json_t *o = json_loads(q->buf, 0, NULL);
			size_t used = (size_t)(nl - q->buf) + 1;
			memmove(q->buf, nl + 1, q->len - used);
			q->len -= used;
			if (o && (json_object_get(o, "return") ||
				  json_object_get(o, "error")))
				return o;
			json_decref(o);
			continue;
		}
		if (q->len == sizeof(q->buf)) {
			snprintf(err, errlen, "QMP: a line over 64 KiB");
			return NULL;
		}
		struct pollfd p = { .fd = q->fd, .events = POLLIN };
		int ms = (int)((deadline - now_s()) * 1000);
		if (ms <= 0 || poll(&p, 1, ms) <= 0) {
			snprintf(err, errlen, "QMP: no reply in time");
			return NULL;
		}
		ssize_t n = read(q->fd, q->buf + q->len, sizeof(q->buf) - q->len);
		if (n <= 0) {
			snprintf(err, errlen, "QMP: QEMU closed the socket");
			return NULL;
		}
		q->len += (size_t)n;
	}
}

int qmp_send(struct qmp *q, const char *cmd, char *err, size_t errlen)
{
	size_t n = strlen(cmd);
	if (write(q->fd, cmd, n) != (ssize_t)n || write(q->fd, "\n", 1) != 1) {
		snprintf(err, errlen, "QMP: write: %s", strerror(errno));
		return -EIO;
	}
	return 0;
}

int qmp_cmd(struct qmp *q, const char *cmd, double deadline, char *err,
		   size_t errlen)
{
	if (qmp_send(q, cmd, err, errlen))
		return -EIO;
	json_t *r = qmp_reply(q, deadline, err, errlen);
	if (!r)
		return -EIO;
	json_t *e = json_object_get(r, "error");
	if (e) {
		snprintf(err, errlen, "QMP: %s", json_string_value(
				 json_object_get(e, "desc")) ?: "error");
		json_decref(r);
		return -EIO;
	}
	json_decref(r);
	return 0;
}

