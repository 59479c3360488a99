/*
 * ctl_load.h - the control-plane load of issue 12, shared by its test
 * (test_ksm_cli) and its benchmark (bench/bench_ctl.c): a fleet of 8
 * guests filling with the scanner at full speed, one client running
 * `stat --check` back to back while another sends plain `stat`s, each
 * request on its own connection (ctl_request).  No cmocka here: the
 * caller asserts or reports.
 */
#ifndef DENSEVM_CTL_LOAD_H
#define DENSEVM_CTL_LOAD_H

#include <stddef.h>

/* The fleet's config: [ksm] sleep_ms = 0; 4 clones, 2 shuffled and 2
 * unique-heavy guests of `mib` MiB, each filling 5/6 of it and holding. */
void ctl_load_conf(char *buf, size_t len, unsigned mib);

struct ctl_load {
	double *stat_ms;        /* each plain stat's time, in request order */
	unsigned n;
	unsigned stats_failed;
	unsigned checks, checks_failed;
	double check_max_ms;
	long long merges;       /* ksm merges during the stats */
	char err[400];          /* the first failure */
};

/* Waits (up to wait_s) until ksm has merged something, then sends n
 * plain stats gap_ms apart while the checks loop.  0, or -1 with err
 * set when the run never merged or a request failed to get a reply. */
int ctl_load_run(const char *sock, unsigned n, unsigned gap_ms, double wait_s,
		 struct ctl_load *out);
void ctl_load_free(struct ctl_load *l);

#endif
