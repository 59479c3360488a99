/*
 * bench_util.h - what the benchmark programs share: ordering doubles,
 * taking a percentile of a sample (sorted in place), finding the
 * densevm binary, and starting a process with its output in a file.
 */
#ifndef DENSEVM_BENCH_UTIL_H
#define DENSEVM_BENCH_UTIL_H

#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline int bench_cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The p-th percentile (nearest rank) of v[0..n); sorts v.  0 when n = 0. */
static inline double bench_pct(double *v, size_t n, double p)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), bench_cmpd);
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* BUILD/densevm for a benchmark in BUILD/bench/. */
static inline void bench_densevm_path(char *buf, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = 0;
	snprintf(buf, len, "%s/../densevm", dirname(exe));
}

/* Starts argv[0] with stdout and stderr into the file out (created or
 * truncated); its pid, or -1. */
static inline pid_t bench_spawn_logged(char *const argv[], const char *out)
{
	extern char **environ;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	pid_t pid = -1;
	if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ))
		pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

#endif
