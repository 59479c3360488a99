/*
 * proc_figs.c - the process figures that cost a walk of every VMA or of
 * every resident page: the VMA count (lines of /proc/self/maps, ~1 us a
 * VMA: 0.1 s at the 110k VMAs of a fleet with shuffled guests) and
 * smaps_rollup's RSS and PSS (every page table entry of the process).
 * `stat` and `ksm` must answer in milliseconds whatever the fleet, and
 * ksm's run figures are read under the run's lock (by the policy too,
 * every tick), so none of them reads the files: a thread of this file
 * does, each figure at most once per PROC_FIGS_MAX_AGE_MS and only while
 * someone asks for it, and readers get the last reading and its age.  The
 * first reader of a figure waits for its first reading.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "hv.h"

#define NFIGS 2   /* PROC_FIGS_VMAS, PROC_FIGS_PSS */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;        /* a reading asked for (thread), or made */
	pthread_t thr;
	bool started, stopping;
	unsigned want, have;      /* PROC_FIGS_* bits */
	int64_t at_ms[NFIGS];     /* when each was read last */
	struct proc_figs last;
} g = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void read_pss(struct proc_figs *f)
{
	static const struct { const char *key; size_t off; } keys[] = {
		{ "Rss:", offsetof(struct proc_figs, rss_kb) },
		{ "Pss:", offsetof(struct proc_figs, pss_kb) },
		{ "Pss_Anon:", offsetof(struct proc_figs, pss_anon_kb) },
		{ "Pss_Shmem:", offsetof(struct proc_figs, pss_shmem_kb) },
	};
	const size_t n = sizeof(keys) / sizeof(keys[0]);
	char line[256];
	for (size_t i = 0; i < n; i++)
		*(long long *)((char *)f + keys[i].off) = -1;
	FILE *s = fopen("/proc/self/smaps_rollup", "r");
	while (s && fgets(line, sizeof(line), s))
		for (size_t i = 0; i < n; i++)
			if (!strncmp(line, keys[i].key, strlen(keys[i].key)))
				*(long long *)((char *)f + keys[i].off) =
					strtoll(line + strlen(keys[i].key), NULL, 10);
	if (s)
		fclose(s);
}

/* Reads the figures in `what` into f. */
static void read_figs(struct proc_figs *f, unsigned what)
{
	if (what & PROC_FIGS_VMAS)
		f->vmas = hv_vma_count();
	if (what & PROC_FIGS_PSS)
		read_pss(f);
}

static void *reader(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&g.mu);
	for (;;) {
		while (!g.want && !g.stopping)
			pthread_cond_wait(&g.cv, &g.mu);
		if (g.stopping)
			break;
		unsigned w = g.want;
		struct proc_figs f = g.last;
		pthread_mutex_unlock(&g.mu);
		read_figs(&f, w);
		pthread_mutex_lock(&g.mu);
		g.last = f;
		for (unsigned i = 0; i < NFIGS; i++)
			if (w & (1u << i))
				g.at_ms[i] = now_ms();
		g.have |= w;
		g.want &= ~w;
		pthread_cond_broadcast(&g.cv);
	}
	pthread_mutex_unlock(&g.mu);
	return NULL;
}

void proc_figs_get(struct proc_figs *f, unsigned what)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_lock(&g.mu);
	if (!g.started && !g.stopping)
		g.started = pthread_create(&g.thr, NULL, reader, NULL) == 0;
	int64_t now = now_ms();
	for (unsigned i = 0; g.started && i < NFIGS; i++)
		if ((what & (1u << i)) && (!(g.have & (1u << i)) ||
					   now - g.at_ms[i] >= PROC_FIGS_MAX_AGE_MS))
			g.want |= 1u << i;
	if (g.want)
		pthread_cond_broadcast(&g.cv);
	while (g.started && !g.stopping && (g.have & what) != what)
		pthread_cond_wait(&g.cv, &g.mu);
	if (g.stopping || (g.have & what) != what) {
		/* no thread (it failed, or the run ended): read it here */
		pthread_mutex_unlock(&g.mu);
		read_figs(f, what);
		return;
	}
	*f = g.last;
	int64_t oldest = now;
	for (unsigned i = 0; i < NFIGS; i++)
		if ((what & (1u << i)) && g.at_ms[i] < oldest)
			oldest = g.at_ms[i];
	f->age_ms = now_ms() - oldest;
	pthread_mutex_unlock(&g.mu);
}

void proc_figs_stop(void)
{
	pthread_mutex_lock(&g.mu);
	bool join = g.started;
	g.stopping = true;
	g.started = false;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	if (join)
		pthread_join(g.thr, NULL);
}
