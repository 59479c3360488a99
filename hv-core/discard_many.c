/*
 * discard_many.c - MADV_DONTNEED over many ranges in one system call.
 *
 * Merging and zero reclaim discard short runs of guest pages (a run ends
 * at every page that must keep its content), so per-call costs dominate:
 * the syscall, the mmap lock and a TLB flush with its IPIs.  Linux 6.13+
 * accepts any advice in process_madvise() on the calling process, and
 * batches the TLB flushes of one call, which makes a run about 3x cheaper
 * here.  Older kernels refuse (EINVAL, ENOSYS, EPERM): then one madvise()
 * per range, remembered so the refusal is paid once.
 */
#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include "hv.h"
#include "vm_internal.h"

#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#define IOV_BATCH 1024   /* UIO_MAXIOV */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int self_pidfd = -1;
static int vector_ok;    /* 1: process_madvise works, -1: refused */

static void open_self(void)
{
	self_pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	vector_ok = self_pidfd >= 0 ? 0 : -1;
}

/* Ranges [from, n) one by one; returns the index of the first failure. */
static unsigned one_by_one(const struct iovec *iov, unsigned from, unsigned n,
			   int *err)
{
	for (unsigned i = from; i < n; i++)
		if (madvise(iov[i].iov_base, iov[i].iov_len, MADV_DONTNEED)) {
			*err = -errno;
			return i;
		}
	return n;
}

unsigned hv_dontneed_many(const struct iovec *iov, unsigned n, int *err)
{
	unsigned done = 0;

	*err = 0;
	pthread_once(&once, open_self);
	while (done < n && __atomic_load_n(&vector_ok, __ATOMIC_RELAXED) >= 0) {
		unsigned cnt = n - done < IOV_BATCH ? n - done : IOV_BATCH;
		size_t want = 0;
		for (unsigned i = 0; i < cnt; i++)
			want += iov[done + i].iov_len;
		long r = syscall(SYS_process_madvise, self_pidfd, iov + done,
				 (size_t)cnt, MADV_DONTNEED, 0u);
		if (r < 0 && (errno == EINVAL || errno == ENOSYS ||
			      errno == EPERM) &&
		    !__atomic_load_n(&vector_ok, __ATOMIC_RELAXED)) {
			/* An older kernel, unless a range was bad: if one
			 * by one takes them all, never ask again. */
			unsigned got = one_by_one(iov, done, done + cnt, err);
			if (got == done + cnt)
				__atomic_store_n(&vector_ok, -1,
						 __ATOMIC_RELAXED);
			if (got < done + cnt)
				return got;
			done = got;
			continue;
		}
		if (r == (long)want) {
			__atomic_store_n(&vector_ok, 1, __ATOMIC_RELAXED);
			done += cnt;
			continue;
		}
		/* An error part-way: the ranges it did not cover, one by one,
		 * so the caller learns which one failed. */
		break;
	}
	return done < n ? one_by_one(iov, done, n, err) : n;
}

unsigned hv_dontneed_spans(const struct hv_span *s, unsigned n,
			   void *(*to_hva)(void *ctx, uint64_t gpa,
					   uint64_t len),
			   void *ctx, int *err)
{
	struct iovec iov[IOV_BATCH];
	unsigned done = 0;

	*err = 0;
	while (done < n) {
		unsigned cnt = 0, got;
		for (; cnt < IOV_BATCH && done + cnt < n; cnt++) {
			const struct hv_span *p = &s[done + cnt];
			void *hva = to_hva(ctx, p->gpa, p->len);
			if (!hva) {
				/* the valid ones before it still go */
				got = hv_dontneed_many(iov, cnt, err);
				if (got == cnt)
					*err = -EINVAL;
				return done + got;
			}
			iov[cnt].iov_base = hva;
			iov[cnt].iov_len = p->len;
		}
		got = hv_dontneed_many(iov, cnt, err);
		done += got;
		if (got < cnt)
			break;
	}
	return done;
}

static void *vm_span_hva(void *ctx, uint64_t gpa, uint64_t len)
{
	struct hv_vm *vm = ctx;
	return hv_vm_check_range(vm, gpa, len) ? NULL : vm->ram + gpa;
}

unsigned hv_vm_discard_many(struct hv_vm *vm, const struct hv_span *s,
			    unsigned n, int *err)
{
	return hv_dontneed_spans(s, n, vm_span_hva, vm, err);
}
