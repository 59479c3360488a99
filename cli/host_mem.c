/*
 * host_mem.c - the host's memory as the policy sees it: the budget and the
 * usage (of the memory cgroup densevm runs in, v1 or v2, else the whole
 * host), pressure (PSI averages), OOM kills, and the signals that can wake
 * the policy at once (a v1 usage-threshold eventfd, v2 memory.events,
 * a PSI trigger), each detected, never assumed.
 *
 * Why the cgroup: it charges memfd pages (a sharing domain's base), which
 * PSS misses, and its limit is what the kernel will OOM-kill against.
 * Paths are under a root (normally "/") so tests can build a fake tree.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "cli.h"
#include "util/cgroup.h"   /* cgroup_read: sysfs, procfs and cgroup files */

/* v1 says "unlimited" as a huge page-rounded number */
#define V1_UNLIMITED (1ull << 62)

static int read_u64(const char *path, uint64_t *v)
{
	char b[64], *end;
	int rc = cgroup_read(NULL, path, b, sizeof(b));
	if (rc)
		return rc;
	errno = 0;
	unsigned long long x = strtoull(b, &end, 10);
	if (errno || end == b)
		return -EINVAL;
	*v = x;
	return 0;
}

/* "Key value" or "Key: value kB" lines: the value after key, scaled. */
static int read_key(const char *path, const char *key, uint64_t *v)
{
	char b[8192];
	int rc = cgroup_read(NULL, path, b, sizeof(b));
	if (rc)
		return rc;
	size_t kl = strlen(key);
	for (char *l = b; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, key, kl) || (l[kl] != ' ' && l[kl] != ':'))
			continue;
		char *end;
		unsigned long long x = strtoull(l + kl + 1 + (l[kl] == ':'), &end, 10);
		while (*end == ' ')
			end++;
		*v = !strncmp(end, "kB", 2) ? x << 10 : x;
		return 0;
	}
	return -ENOENT;
}

/* The cgroup of this process that holds the memory controller. */
static void find_cgroup(struct host_mem *h)
{
	char b[4096], p[HOST_MEM_PATH];
	snprintf(p, sizeof(p), "%s/proc/self/cgroup", h->root);
	if (cgroup_read(NULL, p, b, sizeof(b)))
		return;
	for (char *l = strtok(b, "\n"); l; l = strtok(NULL, "\n")) {
		char *c1 = strchr(l, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = 0;
		const char *ctrls = c1 + 1, *path = c2 + 1;
		if (!strcmp(ctrls, "") && h->kind == HOST_MEM_NONE) {
			/* v2: usable only where the memory controller is there */
			snprintf(p, sizeof(p), "%s/sys/fs/cgroup%s/memory.max", h->root,
				 strcmp(path, "/") ? path : "");
			if (!access(p, R_OK)) {
				h->kind = HOST_MEM_V2;
				snprintf(h->dir, sizeof(h->dir), "%s/sys/fs/cgroup%s",
					 h->root, strcmp(path, "/") ? path : "");
			}
		}
		for (const char *c = ctrls; c && *c; c = strchr(c, ',') ? strchr(c, ',') + 1 : NULL)
			if (!strncmp(c, "memory", 6) && (c[6] == ',' || !c[6])) {
				snprintf(p, sizeof(p), "%s/sys/fs/cgroup/memory%s", h->root,
					 strcmp(path, "/") ? path : "");
				if (!access(p, R_OK)) {
					h->kind = HOST_MEM_V1;   /* preferred: it is the one */
					snprintf(h->dir, sizeof(h->dir), "%s", p);
				}
			}
	}
}

void host_mem_open(struct host_mem *h, const char *root)
{
	memset(h, 0, sizeof(*h));
	h->event_fd = h->psi_fd = h->events_fd = -1;
	snprintf(h->root, sizeof(h->root), "%s", root && strcmp(root, "/") ? root : "");
	find_cgroup(h);
}

static void cg_path(const struct host_mem *h, const char *file, char *p,
		    size_t len)
{
	snprintf(p, len, "%s/%s", h->dir, file);
}

int host_mem_read(struct host_mem *h, uint64_t reserve, struct host_mem_sample *s)
{
	char p[HOST_MEM_PATH + 64];
	uint64_t total = 0, avail = 0;

	memset(s, 0, sizeof(*s));
	s->psi_some10 = s->psi_full10 = -1;
	snprintf(p, sizeof(p), "%s/proc/meminfo", h->root);
	if (read_key(p, "MemTotal", &total) || read_key(p, "MemAvailable", &avail))
		return -EIO;
	s->mem_total = total;
	s->mem_available = avail;
	uint64_t lim = 0, use = 0;
	bool have = false;
	if (h->kind == HOST_MEM_V1) {
		cg_path(h, "memory.limit_in_bytes", p, sizeof(p));
		have = !read_u64(p, &lim);
		cg_path(h, "memory.usage_in_bytes", p, sizeof(p));
		have = have && !read_u64(p, &use);
		cg_path(h, "memory.oom_control", p, sizeof(p));
		read_key(p, "oom_kill", &s->oom_kills);
		if (lim >= V1_UNLIMITED)
			lim = 0;
	} else if (h->kind == HOST_MEM_V2) {
		char b[64];
		cg_path(h, "memory.max", p, sizeof(p));
		have = !cgroup_read(NULL, p, b, sizeof(b));
		lim = have && strncmp(b, "max", 3) ? strtoull(b, NULL, 10) : 0;
		cg_path(h, "memory.current", p, sizeof(p));
		have = have && !read_u64(p, &use);
		cg_path(h, "memory.events", p, sizeof(p));
		read_key(p, "oom_kill", &s->oom_kills);
	}
	s->cgroup_limit = lim;
	if (have) {
		s->usage = use;
		s->usage_from = "cgroup";
	} else {
		s->usage = total - avail;
		s->usage_from = "meminfo";
	}
	if (lim && lim < total) {
		s->budget = lim;
		s->budget_from = "cgroup limit";
	} else {
		s->budget = total > reserve ? total - reserve : total / 2;
		s->budget_from = "MemTotal - reserve";
	}
	char b[512];
	snprintf(p, sizeof(p), "%s/proc/pressure/memory", h->root);
	if (!cgroup_read(NULL, p, b, sizeof(b))) {
		char *f = strstr(b, "full avg10=");
		if (!strncmp(b, "some avg10=", 11))
			s->psi_some10 = strtod(b + 11, NULL);
		if (f)
			s->psi_full10 = strtod(f + 11, NULL);
	}
	return 0;
}

int host_mem_arm(struct host_mem *h, uint64_t threshold)
{
	char p[HOST_MEM_PATH + 64], line[128];

	if (h->kind == HOST_MEM_V1) {
		/* a v1 threshold cannot be moved: a new eventfd replaces it */
		int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		cg_path(h, "memory.usage_in_bytes", p, sizeof(p));
		int ufd = open(p, O_RDONLY | O_CLOEXEC);
		cg_path(h, "cgroup.event_control", p, sizeof(p));
		int cfd = open(p, O_WRONLY | O_CLOEXEC);
		int n = snprintf(line, sizeof(line), "%d %d %llu", efd, ufd,
				 (unsigned long long)threshold);
		bool ok = efd >= 0 && ufd >= 0 && cfd >= 0 &&
			  write(cfd, line, (size_t)n) == n;
		if (ufd >= 0)
			close(ufd);
		if (cfd >= 0)
			close(cfd);
		if (!ok) {
			if (efd >= 0)
				close(efd);
			h->threshold_live = false;
			return -EIO;
		}
		if (h->event_fd >= 0)
			close(h->event_fd);
		h->event_fd = efd;
		h->threshold_live = true;
		return 0;
	}
	if (h->kind == HOST_MEM_V2 && h->events_fd < 0) {
		cg_path(h, "memory.events", p, sizeof(p));
		h->events_fd = open(p, O_RDONLY | O_CLOEXEC);
		h->events_live = h->events_fd >= 0;
	}
	if (h->psi_fd < 0 && !h->psi_tried) {
		/* 150 ms of stall in 1 s; refused (EINVAL) on some kernels */
		h->psi_tried = true;
		snprintf(p, sizeof(p), "%s/proc/pressure/memory", h->root);
		int fd = open(p, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		static const char trig[] = "some 150000 1000000";
		if (fd >= 0 && write(fd, trig, sizeof(trig)) == (ssize_t)sizeof(trig)) {
			h->psi_fd = fd;
			h->psi_live = true;
		} else if (fd >= 0) {
			close(fd);
		}
	}
	return 0;
}

int host_mem_wait(struct host_mem *h, int timeout_ms, int extra_fd)
{
	struct pollfd p[4];
	int n = 0;
	if (h->event_fd >= 0)
		p[n++] = (struct pollfd){ .fd = h->event_fd, .events = POLLIN };
	if (h->events_fd >= 0)
		p[n++] = (struct pollfd){ .fd = h->events_fd, .events = POLLPRI };
	if (h->psi_fd >= 0)
		p[n++] = (struct pollfd){ .fd = h->psi_fd, .events = POLLPRI };
	if (extra_fd >= 0)
		p[n++] = (struct pollfd){ .fd = extra_fd, .events = POLLIN };
	int r = poll(p, (nfds_t)n, timeout_ms);
	if (r <= 0)
		return 0;
	int why = 0;
	for (int i = 0; i < n; i++) {
		if (!p[i].revents)
			continue;
		if (p[i].fd == h->event_fd) {
			uint64_t v;
			if (read(h->event_fd, &v, sizeof(v)) == sizeof(v))
				why |= HOST_MEM_WOKE_THRESHOLD;
		} else if (p[i].fd == h->events_fd) {
			char b[512];
			(void)pread(h->events_fd, b, sizeof(b), 0);
			why |= HOST_MEM_WOKE_EVENTS;
		} else if (p[i].fd == h->psi_fd) {
			why |= HOST_MEM_WOKE_PSI;
		} else {
			why |= HOST_MEM_WOKE_EXTRA;
		}
	}
	return why;
}

void host_mem_describe(const struct host_mem *h, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s%s%s",
		 h->kind == HOST_MEM_V1 ? "cgroup v1 " :
		 h->kind == HOST_MEM_V2 ? "cgroup v2 " : "no memory cgroup ",
		 h->threshold_live ? "usage-threshold eventfd, " : "",
		 h->events_live ? "memory.events, " : "",
		 h->psi_live ? "PSI trigger, " : "PSI trigger refused, ",
		 "PSI averages, periodic tick");
}

void host_mem_close(struct host_mem *h)
{
	if (h->event_fd >= 0)
		close(h->event_fd);
	if (h->events_fd >= 0)
		close(h->events_fd);
	if (h->psi_fd >= 0)
		close(h->psi_fd);
	h->event_fd = h->events_fd = h->psi_fd = -1;
}
