/*
 * tables.c - the stable tables of the content store (liburcu cds_lfht,
 * QSBR flavour) and the RCU bookkeeping around them.  (The candidate
 * tables, scanner-private, are cand.c's.)
 *
 * Keys are 64-bit content hashes; duplicates are allowed (hash collisions,
 * frames that reached max_sharers), so lookups walk the duplicate chain
 * and the caller compares bytes.  Readers need only be RCU-online; the scanner is the only
 * writer (under ksm->lock).  Deleted nodes go to ksm->grave and are freed
 * after a grace period at the end of a pass.
 *
 * QSBR needs every reading thread registered: any thread entering ksm goes
 * online (registering on first use; a thread-exit destructor unregisters)
 * and offline on leaving, so idle threads never hold up a grace period.
 */
#include <stdlib.h>
#include <time.h>
#include "internal.h"

uint64_t ksm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t ksm_thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ RCU */

static pthread_key_t rcu_key;
static pthread_once_t rcu_once = PTHREAD_ONCE_INIT;
static __thread bool rcu_registered;
static __thread unsigned rcu_depth;

static void rcu_thread_dtor(void *p)
{
	(void)p;
	if (rcu_registered) {
		if (rcu_depth)
			rcu_thread_offline();
		rcu_unregister_thread();
		rcu_registered = false;
	}
}

static void rcu_key_init(void)
{
	pthread_key_create(&rcu_key, rcu_thread_dtor);
}

/* Nests: the thread goes offline at the outermost ksm_rcu_offline(). */
/* Waits on cv (a CLOCK_MONOTONIC condition) for at most ns. */
void kcond_wait_ns(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t ns)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ns / 1000000000ULL);
	ts.tv_nsec += (long)(ns % 1000000000ULL);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(cv, mu, &ts);
}

void ksm_rcu_online(void)
{
	if (!rcu_registered) {
		pthread_once(&rcu_once, rcu_key_init);
		rcu_register_thread();          /* leaves the thread online */
		rcu_registered = true;
		pthread_setspecific(rcu_key, (void *)1);
		rcu_depth = 1;
		return;
	}
	if (rcu_depth++ == 0)
		rcu_thread_online();
}

void ksm_rcu_offline(void)
{
	if (rcu_depth && --rcu_depth == 0)
		rcu_thread_offline();
}

/* Only where no table node or iterator is held: the tables' resize
 * frees bucket arrays after a grace period. */
void ksm_rcu_quiescent(void)
{
	if (rcu_depth)
		rcu_quiescent_state();
}

/* --------------------------------------------------------------- tables */

static int key_match(struct cds_lfht_node *ln, const void *key)
{
	const struct knode *n = caa_container_of(ln, struct knode, ln);

	return n->hash == *(const uint64_t *)key;
}

struct cds_lfht *ktab_new(void)
{
	return cds_lfht_new(1024, 1024, 0,
			    CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
}

/* No reader may run: frees every node at once. */
void ktab_destroy(struct cds_lfht *ht)
{
	struct cds_lfht_iter it;
	struct knode *n;

	if (!ht)
		return;
	rcu_read_lock();
	cds_lfht_for_each_entry(ht, &it, n, ln) {
		cds_lfht_del(ht, &n->ln);
		free(n);
	}
	rcu_read_unlock();
	/* the resize worker may be waiting for a grace period: an online
	 * caller waiting for that worker would deadlock */
	if (rcu_depth)
		rcu_thread_offline();
	cds_lfht_destroy(ht, NULL);
	if (rcu_depth)
		rcu_thread_online();
}

/* The caller is RCU-online; the returned node stays valid until it goes
 * through a quiescent state. */
struct knode *ktab_first(struct cds_lfht *ht, uint64_t hash,
			 struct cds_lfht_iter *it)
{
	struct cds_lfht_node *ln;

	rcu_read_lock();
	cds_lfht_lookup(ht, (unsigned long)hash, key_match, &hash, it);
	ln = cds_lfht_iter_get_node(it);
	rcu_read_unlock();
	return ln ? caa_container_of(ln, struct knode, ln) : NULL;
}

struct knode *ktab_next(struct cds_lfht *ht, struct cds_lfht_iter *it)
{
	struct cds_lfht_node *ln;
	uint64_t hash;

	ln = cds_lfht_iter_get_node(it);
	if (!ln)
		return NULL;
	hash = caa_container_of(ln, struct knode, ln)->hash;
	rcu_read_lock();
	cds_lfht_next_duplicate(ht, key_match, &hash, it);
	ln = cds_lfht_iter_get_node(it);
	rcu_read_unlock();
	return ln ? caa_container_of(ln, struct knode, ln) : NULL;
}

void ktab_add(struct cds_lfht *ht, struct knode *n)
{
	rcu_read_lock();
	cds_lfht_add(ht, (unsigned long)n->hash, &n->ln);
	rcu_read_unlock();
}

void ktab_del(struct ksm *k, struct cds_lfht *ht, struct knode *n)
{
	int ret;

	rcu_read_lock();
	ret = cds_lfht_del(ht, &n->ln);
	rcu_read_unlock();
	if (ret == 0) {
		n->grave_next = k->grave;
		k->grave = n;
	}
}

/* Frees the deleted nodes once no reader can hold them. */
void ktab_reclaim(struct ksm *k)
{
	struct knode *n, *next;

	if (!k->grave)
		return;
	synchronize_rcu();
	for (n = k->grave; n; n = next) {
		next = n->grave_next;
		free(n);
	}
	k->grave = NULL;
}
