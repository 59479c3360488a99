/*
 * ctl_pool.h - the control socket server's worker threads (ctl_pool.c),
 * internal to ctl_server.c: commands that may take long (a self-check
 * waiting for ksm's lock and walking every page) run here, so that the
 * server thread keeps answering every other client meanwhile.
 *
 * A job is submitted by the server thread, run by one worker, and handed
 * back through a list the server takes when ctl_pool_fd() is readable.
 * The pool knows nothing of clients or commands: the caller embeds a
 * struct ctl_job as the first member of its own job.
 */
#ifndef DENSEVM_CTL_POOL_H
#define DENSEVM_CTL_POOL_H

struct ctl_job {
	struct ctl_job *next;
	void (*run)(struct ctl_job *j);   /* on a worker thread */
};

struct ctl_pool;

/* nthreads workers and the eventfd; 0 or -errno. */
int ctl_pool_start(struct ctl_pool **out, unsigned nthreads);
/* Readable (POLLIN) when done jobs wait for ctl_pool_done(). */
int ctl_pool_fd(const struct ctl_pool *p);
/* Queues j; jobs start in submission order. */
void ctl_pool_submit(struct ctl_pool *p, struct ctl_job *j);
/* The jobs done since the last call, in the order they finished (a
 * list through next, the caller owns them); clears the fd. */
struct ctl_job *ctl_pool_done(struct ctl_pool *p);
/* Waits for the jobs in hand to finish, stops the workers and frees the
 * pool; returns every job it still held (queued and never run, or done
 * and not taken) for the caller to free. */
struct ctl_job *ctl_pool_stop(struct ctl_pool *p);

#endif
