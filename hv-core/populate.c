/*
 * populate.c - storing content into guest RAM that was never touched, as
 * the VM's own private pages (the RAM image loader's path).
 *
 * On base-backed RAM (MAP_PRIVATE of the domain's base memfd) a plain
 * store faults through the memfd: shmem first allocates a zero page of the
 * file at that GPA, then the kernel copies it into the private page.  So
 * every stored page would cost two until ksm's base sweep punches the
 * file pages again (an unmap over every VM's mapping of the range).  Here
 * the range is registered with a userfaultfd (missing mode) for the time
 * of the fill, or is registered already (wp.c's write-protect, whose
 * userfaultfd serves as well), and UFFDIO_COPY installs private anonymous
 * pages directly:
 * the memfd is never touched.  A page already present gets a plain copy.
 * Nothing may fault in the range meanwhile (the VM has not run yet):
 * a fault there would wait for a missing-page event nobody serves, so a
 * populate never overlaps a running vCPU.  Anonymous RAM, or a kernel
 * without userfaultfd, takes a plain copy.  What is stored is marked in
 * the dirty log, and only that: zero pages left alone stay out of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "vm_internal.h"

struct hv_populate {
	struct hv_vm *vm;
	uint64_t gpa, len;
	int uffd;              /* -1: plain copies */
	bool own;              /* ours to unregister and close (else wp.c's) */
};

int hv_vm_populate_begin(struct hv_vm *vm, uint64_t gpa, uint64_t len,
			 struct hv_populate **out)
{
	struct hv_populate *p;
	int rc = hv_vm_check_range(vm, gpa, len);

	if (rc)
		return rc;
	if (!(p = calloc(1, sizeof(*p))))
		return -ENOMEM;
	*p = (struct hv_populate){ vm, gpa, len, -1, false };
	if (vm->cfg.base_memfd >= 0 && len && wp_fd(vm) >= 0) {
		/* registered for write-protect already: UFFDIO_COPY works
		 * through that userfaultfd (a second one would get EBUSY) */
		p->uffd = wp_fd(vm);
	} else if (vm->cfg.base_memfd >= 0 && len) {
		p->own = true;
		struct uffdio_api api = { .api = UFFD_API };
		struct uffdio_register reg = {
			.range = { (uintptr_t)(vm->ram + gpa), len },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};
		p->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
		if (p->uffd >= 0 && (ioctl(p->uffd, UFFDIO_API, &api) != 0 ||
				     ioctl(p->uffd, UFFDIO_REGISTER, &reg) != 0)) {
			close(p->uffd);
			p->uffd = -1;
		}
	}
	*out = p;
	return 0;
}

bool hv_vm_populate_direct(const struct hv_populate *p)
{
	return p->uffd >= 0;
}

int hv_vm_populate(struct hv_populate *p, uint64_t gpa, const void *src,
		   uint64_t len)
{
	uint8_t *dst = p->vm->ram + gpa;
	const uint8_t *s = src;

	if (gpa < p->gpa || len > p->len || gpa - p->gpa > p->len - len ||
	    (gpa | len) & (HV_PAGE_SIZE - 1))
		return -EINVAL;
	/* KVM logs only the guest's writes: the dirty log's consumers
	 * (ksm, the working-set sampler) learn of these from us */
	hv_dirty_mark(p->vm, gpa, len);
	while (len) {
		struct uffdio_copy c = {
			.dst = (uintptr_t)dst, .src = (uintptr_t)s, .len = len,
		};
		uint64_t done;

		if (p->uffd < 0) {
			memcpy(dst, s, len);
			return 0;
		}
		if (ioctl(p->uffd, UFFDIO_COPY, &c) == 0) {
			done = len;
		} else if (c.copy > 0) {
			done = (uint64_t)c.copy;      /* partial: go on */
		} else if (errno == EEXIST || c.copy == -EEXIST) {
			/* present already: its own copy takes the bytes */
			memcpy(dst, s, HV_PAGE_SIZE);
			done = HV_PAGE_SIZE;
		} else if (errno == EAGAIN || errno == EINTR) {
			continue;
		} else {
			return -errno;
		}
		dst += done;
		s += done;
		len -= done;
	}
	return 0;
}

void hv_vm_populate_end(struct hv_populate *p)
{
	if (!p)
		return;
	if (p->uffd >= 0 && p->own) {
		struct uffdio_range r = { (uintptr_t)(p->vm->ram + p->gpa),
					  p->len };

		ioctl(p->uffd, UFFDIO_UNREGISTER, &r);
		close(p->uffd);
	}
	free(p);
}
