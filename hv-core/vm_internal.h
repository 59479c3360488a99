/*
 * vm_internal.h - hv-core internal: the layout of a VM and a vCPU, shared by
 * the files of hv-core and by nothing else (the public view is hv.h).
 *
 * Locking: vm->lock guards the pause/park accounting, HC_WAIT/HC_READY
 * state and the exit status; vm->cond is broadcast on every change of
 * them.  Invariant for pause: a vCPU counts as parked only while it is
 * blocked at a point where it neither runs guest code nor touches guest
 * memory, and it re-checks pause_req under the lock before leaving it.
 */
#ifndef DENSEVM_VM_INTERNAL_H
#define DENSEVM_VM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>
#include <linux/kvm.h>
#include "hv.h"
#include "serial8250.h"
#include "console_filter.h"
#include "linux_boot.h"

#define HV_MAX_RANGES 2
#define HV_NRESULTS 16

struct hv_vcpu {
	struct hv_vm *vm;
	unsigned idx;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool started;
	bool done;               /* left its run loop (under vm->lock) */
	bool exited;             /* said HC_EXIT (own thread only) */
	bool pending;            /* a notification not yet consumed */
	bool blocked;            /* in vcpu_block_locked(), out of KVM_RUN:
				  * a pause need not kick it (vm->lock) */
	uint64_t ready_tag;      /* nonzero while blocked in HC_READY */
	struct hv_argpage *argpage; /* guest's page (hostile; copy first) */
};

struct hv_vm {
	char name[64];
	struct hv_vm_config cfg;
	char *image, *initrd, *cmdline;  /* owned copies of cfg strings */
	int fd;

	/* RAM: one VA reservation of [0, gpa_end); the PCI hole stays PROT_NONE */
	uint8_t *ram;            /* GPA 0, 2 MiB aligned */
	void *ram_raw;           /* what mmap returned */
	size_t ram_map_len;
	uint64_t gpa_end;
	struct hv_ram_range ranges[HV_MAX_RANGES];
	unsigned nranges;
	/* dirty.c: logging is on while any consumer is */
	pthread_mutex_t dirty_lock;
	bool dirty_logging;
	bool dirty_on[HV_DIRTY_NCONSUMERS];
	/* bits another consumer's fetch read from KVM, kept for this one */
	uint64_t *dirty_pending[HV_DIRTY_NCONSUMERS][HV_MAX_RANGES];
	uint64_t *host_dirty[HV_MAX_RANGES]; /* hv_dirty_mark() bits per range */
	/* Base-backed RAM only (backing.c): per page of each range, set when
	 * the page is not mapped from the base memfd at offset GPA now;
	 * anon: set when what maps it is private anonymous memory. */
	uint64_t *off_base[HV_MAX_RANGES];
	uint64_t *anon[HV_MAX_RANGES];
	/* wp.c: guest RAM registered for write-protect, or NULL and why */
	struct hv_wp *wp;
	char wp_why[200];
	/* the base memfd's identity: callers may map it through a dup */
	dev_t base_dev;
	ino_t base_ino;

	hv_pstate_t *pagemap;
	uint64_t npages;

	struct hv_vcpu vcpus[HV_MAX_VCPUS];
	unsigned ncpus;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned threads_alive;  /* vCPU threads started and not done */
	unsigned parked;
	unsigned pause_depth;
	atomic_int pause_req;
	atomic_int stop_req;
	unsigned vcpus_exited;   /* vCPUs that said HC_EXIT */
	uint64_t exit_arg;       /* what the guest said with status.code */
	struct hv_exit_status status;
	bool finished;           /* every vCPU thread is done */

	struct { hv_hypercall_fn fn; void *ctx; } hc[HC_MAX - HC_DEVICE_BASE];

	pthread_mutex_t con_lock;    /* guards con and serial */
	struct con_filter con;
	struct serial8250 serial;
	struct linux_entry lentry;
	uint64_t micro_entry;
	struct hv_argpage *linux_argpage; /* registered by a Linux driver */
	uint64_t linux_argpage_gpa;

	uint64_t results[HV_NRESULTS];
	uint64_t results_ns[HV_NRESULTS];   /* host time each one arrived */
	uint32_t results_set;

	uint64_t start_ns;
	uint64_t end_ns;
	_Atomic uint64_t first_hc_ns;
	uint64_t deadline_ns;    /* 0 = none */
	_Atomic uint64_t n_hypercalls, n_exits, n_bad, n_pauses;

	struct hv_vm *watch_next; /* watchdog list (watchdog.c) */
	bool joined;
};

/* mem.c */
int mem_setup(struct hv_vm *vm, char *err, size_t errlen);
void mem_teardown(struct hv_vm *vm);
void dirty_teardown(struct hv_vm *vm);
int mem_set_slots(struct hv_vm *vm);
/* 0 when [gpa, gpa+len) is page-aligned, nonempty RAM of one range. */
int hv_vm_check_range(struct hv_vm *vm, uint64_t gpa, uint64_t len);

/* backing.c */
int backing_setup(struct hv_vm *vm);

/* wp.c: registers guest RAM (or notes why not); closes; re-registers the
 * range after backing.c mapped something new over it */
void wp_setup(struct hv_vm *vm);
void wp_teardown(struct hv_vm *vm);
void wp_remapped(struct hv_vm *vm, uint64_t gpa, uint64_t len);
/* The userfaultfd guest RAM is registered with, or -1 (populate.c copies
 * through it: a range takes only one userfaultfd). */
int wp_fd(const struct hv_vm *vm);

/* micro_boot.c */
int micro_load(struct hv_vm *vm, char *err, size_t errlen);
int micro_vcpu_init(struct hv_vm *vm, struct hv_vcpu *v, char *err, size_t errlen);

/* vcpu.c */
int vcpu_create(struct hv_vm *vm, unsigned idx, char *err, size_t errlen);
void vcpu_destroy(struct hv_vcpu *v);
void *vcpu_thread(void *arg);
void vcpu_kick(struct hv_vcpu *v);
void vm_end(struct hv_vm *vm, enum hv_exit_kind kind, int code,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* pause.c */
void vcpu_check_pause(struct hv_vcpu *v);
/* Blocks the vCPU (counted as parked) until *flag is set, the deadline
 * (CLOCK_MONOTONIC ns, 0 = none) passes or the VM stops; never returns
 * while the VM is paused.  Caller holds vm->lock.  True if *flag was set. */
bool vcpu_block_locked(struct hv_vcpu *v, bool *flag, uint64_t deadline_ns);
/* pthread_cond_timedwait on vm->cond (CLOCK_MONOTONIC), vm->lock held */
void vm_cond_wait_until(struct hv_vm *vm, uint64_t deadline_ns);

/* hypercall.c */
void hypercall_dispatch(struct hv_vcpu *v);

/* console.c */
int console_init(struct hv_vm *vm, char *err, size_t errlen);
void console_write(struct hv_vm *vm, const char *buf, size_t len);
void console_flush(struct hv_vm *vm);
void console_serial_out(void *ctx, const char *buf, unsigned len);

/* watchdog.c */
void watchdog_add(struct hv_vm *vm);
void watchdog_remove(struct hv_vm *vm);

/* kvm.c */
int kvm_fd(void);
int kvm_kick_signal(void);

#endif
