/*
 * bench_util.h - what the benchmark programs share: ordering doubles and
 * taking a percentile of a sample (sorted in place).
 */
#ifndef DENSEVM_BENCH_UTIL_H
#define DENSEVM_BENCH_UTIL_H

#include <stddef.h>
#include <stdlib.h>

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

#endif
