/*
 * ctl_load.c - see ctl_load.h.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli/ctl.h"
#include "ctl_load.h"

void ctl_load_conf(char *buf, size_t len, unsigned mib)
{
	unsigned fill = mib * 5 / 6;
	snprintf(buf, len,
		 "[ksm]\nsleep_ms = 0\n"
		 "[vm c]\ncount = 4\nmem = %uM\n"
		 "workload = fill mib=%u identical=60 zero=20 seed=7 hold=-1\n"
		 "[vm s]\ncount = 2\nmem = %uM\n"
		 "workload = fill mib=%u identical=60 zero=20 shuffle=1 hold=-1\n"
		 "[vm u]\ncount = 2\nmem = %uM\n"
		 "workload = fill mib=%u identical=10 zero=10 hold=-1\n",
		 mib, fill, mib, fill, mib, fill);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* One request; its time in ms, or -1 without a reply.  *ok: the reply
 * said ok (and "check": "ok" for a check). */
static double request(const char *sock, const char *cmd, bool check, bool *ok,
		      json_t **keep, char *err, size_t errlen)
{
	json_t *req = json_pack("{s:s, s:[]}", "cmd", cmd, "args");
	if (check)
		json_object_set_new(req, "check", json_true());
	double t0 = now_ms();
	json_t *rep = ctl_request(sock, req, 60000, err, errlen);
	double t = now_ms() - t0;
	json_decref(req);
	if (!rep)
		return -1;
	const char *c = json_string_value(json_object_get(rep, "check"));
	*ok = json_is_true(json_object_get(rep, "ok")) &&
	      (!check || (c && !strcmp(c, "ok")));
	if (!*ok)
		snprintf(err, errlen, "%s: %s", cmd,
			 json_string_value(json_object_get(rep, "error")) ?: "no check");
	if (keep)
		*keep = rep;
	else
		json_decref(rep);
	return t;
}

static long long merges(const char *sock)
{
	char err[256];
	bool ok;
	json_t *r = NULL;
	if (request(sock, "ksm", false, &ok, &r, err, sizeof(err)) < 0)
		return -1;
	long long m = json_integer_value(json_object_get(
		json_object_get(r, "global"), "merges"));
	json_decref(r);
	return m;
}

struct loop {
	const char *sock;
	volatile bool run;
	struct ctl_load *out;
	char err[400];
};

static void *check_loop(void *arg)
{
	struct loop *l = arg;
	struct ctl_load *o = l->out;
	while (l->run) {
		bool ok = false;
		char e[400];
		double t = request(l->sock, "stat", true, &ok, NULL, e, sizeof(e));
		if (t < 0 || !ok) {
			if (!o->checks_failed++)
				snprintf(l->err, sizeof(l->err), "%s", e);
			if (t < 0)
				usleep(10000);
			continue;
		}
		o->checks++;
		if (t > o->check_max_ms)
			o->check_max_ms = t;
	}
	return NULL;
}

int ctl_load_run(const char *sock, unsigned n, unsigned gap_ms, double wait_s,
		 struct ctl_load *o)
{
	memset(o, 0, sizeof(*o));
	o->stat_ms = calloc(n ? n : 1, sizeof(*o->stat_ms));
	if (!o->stat_ms) {
		snprintf(o->err, sizeof(o->err), "out of memory");
		return -1;
	}
	/* the scanner at work: merging, not still starting */
	long long m0 = 0;
	for (double t0 = now_ms(); (m0 = merges(sock)) <= 0 &&
	     now_ms() - t0 < wait_s * 1e3;)
		usleep(20000);
	if (m0 <= 0) {
		snprintf(o->err, sizeof(o->err), "no merge within %.0f s", wait_s);
		return -1;
	}
	struct loop l = { .sock = sock, .run = true, .out = o };
	pthread_t thr;
	if (pthread_create(&thr, NULL, check_loop, &l)) {
		snprintf(o->err, sizeof(o->err), "pthread_create failed");
		return -1;
	}
	int rc = 0;
	for (unsigned i = 0; i < n; i++) {
		bool ok = false;
		char e[400];
		double t = request(sock, "stat", false, &ok, NULL, e, sizeof(e));
		if (t < 0 || !ok) {
			if (!o->stats_failed++ && !o->err[0])
				snprintf(o->err, sizeof(o->err), "stat %u: %.360s", i, e);
			if (t < 0)
				rc = -1;
		}
		o->stat_ms[o->n++] = t;
		usleep(gap_ms * 1000);
	}
	l.run = false;
	pthread_join(thr, NULL);
	if (o->checks_failed && !o->err[0])
		snprintf(o->err, sizeof(o->err), "%s", l.err);
	o->merges = merges(sock) - m0;
	return rc;
}

void ctl_load_free(struct ctl_load *l)
{
	free(l->stat_ms);
	l->stat_ms = NULL;
}
