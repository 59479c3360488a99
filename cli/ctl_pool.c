/*
 * ctl_pool.c - the control socket server's worker threads (ctl_pool.h):
 * a FIFO of jobs under one mutex, nthreads workers taking from it, and a
 * done list signalled through an eventfd that the server thread polls.
 * The queue needs no bound of its own: the server lets each client have
 * at most one job at a time, so it never holds more than its clients.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "ctl_pool.h"

#define CTL_POOL_MAX 16

struct ctl_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;                /* a job queued, or stop */
	struct ctl_job *todo, **todo_tail;
	struct ctl_job *done, **done_tail;
	bool stop;
	int efd;
	unsigned n;
	pthread_t thr[CTL_POOL_MAX];
};

static void *worker(void *arg)
{
	struct ctl_pool *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && !p->todo)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->stop)
			break;
		struct ctl_job *j = p->todo;
		p->todo = j->next;
		if (!p->todo)
			p->todo_tail = &p->todo;
		pthread_mutex_unlock(&p->mu);
		j->run(j);
		pthread_mutex_lock(&p->mu);
		j->next = NULL;
		*p->done_tail = j;
		p->done_tail = &j->next;
		uint64_t one = 1;
		if (write(p->efd, &one, sizeof(one)) != sizeof(one))
			perror("ctl: pool eventfd");   /* cannot happen: < 2^64 */
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int ctl_pool_start(struct ctl_pool **out, unsigned nthreads)
{
	struct ctl_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	if (nthreads > CTL_POOL_MAX)
		nthreads = CTL_POOL_MAX;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->todo_tail = &p->todo;
	p->done_tail = &p->done;
	p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int rc = p->efd < 0 ? -errno : 0;
	while (!rc && p->n < nthreads) {
		rc = -pthread_create(&p->thr[p->n], NULL, worker, p);
		if (!rc)
			p->n++;
	}
	if (rc) {
		ctl_pool_stop(p);   /* nothing queued yet: returns NULL */
		return rc;
	}
	*out = p;
	return 0;
}

int ctl_pool_fd(const struct ctl_pool *p)
{
	return p->efd;
}

void ctl_pool_submit(struct ctl_pool *p, struct ctl_job *j)
{
	j->next = NULL;
	pthread_mutex_lock(&p->mu);
	*p->todo_tail = j;
	p->todo_tail = &j->next;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

struct ctl_job *ctl_pool_done(struct ctl_pool *p)
{
	uint64_t v;
	pthread_mutex_lock(&p->mu);
	/* under mu: a worker's write after our read is for a job still to
	 * come, so the fd is never left clear with jobs waiting */
	if (read(p->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		perror("ctl: pool eventfd");
	struct ctl_job *j = p->done;
	p->done = NULL;
	p->done_tail = &p->done;
	pthread_mutex_unlock(&p->mu);
	return j;
}

struct ctl_job *ctl_pool_stop(struct ctl_pool *p)
{
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->n; i++)
		pthread_join(p->thr[i], NULL);
	/* the workers are gone: what is left is the caller's */
	*p->done_tail = p->todo;
	struct ctl_job *left = p->done;
	if (p->efd >= 0)
		close(p->efd);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
	return left;
}
