// SPDX-License-Identifier: GPL-2.0
/*
 * densevm_fakehost.c - TEST ONLY: a stand-in for densevm's balloon device
 * inside a Linux guest, so that densevm_balloon.ko can run end to end in a
 * guest that has no densevm host (QEMU under TCG on machines where Linux
 * cannot reach userspace under densevm's own KVM).
 *
 * Owns: answering densevm_balloon's hypercalls.  It puts a kprobe on the
 * balloon's doorbell function (os_doorbell) while the balloon module is
 * coming up, serves the call from the probe (happy path of
 * balloon-host/: REGISTER, INFLATE, DEFLATE, REPORT, STATS, UNREGISTER,
 * with the checks that catch a misbehaving guest: alignment, RAM, double
 * inflate, deflate of a page not held) and returns the host's answer in
 * place of the real port I/O.  Everything else in the balloon module
 * (allocation, the core, stats, pressure, page reporting, rmmod) runs for
 * real.  Like a real host it discards what the guest gives it: inflated
 * pages are filled with a poison pattern (a guest that still used one
 * would see it), deflated and reported pages come back zeroed.
 *
 * Load it before densevm_balloon.ko (force=1, the ports do not matter).
 * The test drives it through its parameters:
 *   target_mib  (rw)  the balloon target, published like the host does
 *   reporting   (rw)  the host's free page reporting switch
 *   host_pages, reported_pages, stats_updates, stats_mem_total,
 *   errors      (ro)  what the "host" saw
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kprobes.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/vmalloc.h>
#include <asm/linkage.h>

#include "balloon_proto.h"

/* The probe replaces os_doorbell by a bare return (as the kernel's
 * override_function_with_return() does on x86): the ftrace trampoline
 * returns here, and this returns to os_doorbell's caller. */
asm(".text\n"
    ".type dvfh_just_return, @function\n"
    "dvfh_just_return:\n"
    ASM_RET
    ".size dvfh_just_return, .-dvfh_just_return\n");
void dvfh_just_return(void);

/* Up to 4 GiB of guest: one bit per 4 KiB page held. */
#define DVFH_MAX_PFN	(1UL << 20)

static DEFINE_SPINLOCK(lock);
static unsigned long *held;		/* bitmap of ballooned 4 KiB pages */
static struct balloon_cfg_host *cfg;
static u64 *ring;
static u32 ring_cap;
static u64 seq;

static uint target_mib;
static bool reporting;
static ulong host_pages, reported_pages, stats_updates, stats_mem_total;
static ulong errors;

/* The host's half of the config page, as a seqlock writer.  Lock held. */
static void publish(void)
{
	if (!cfg)
		return;
	WRITE_ONCE(cfg->seq, seq + 1);
	smp_wmb();
	cfg->target_pages = (u64)target_mib << (20 - PAGE_SHIFT);
	cfg->flags = reporting ? BALLOON_CFG_F_REPORTING : 0;
	cfg->host_pages = host_pages;
	smp_wmb();
	seq += 2;
	WRITE_ONCE(cfg->seq, seq);
}

static int set_and_publish(const char *val, const struct kernel_param *kp)
{
	unsigned long flags;
	int ret;

	spin_lock_irqsave(&lock, flags);
	if (kp->arg == &target_mib)
		ret = param_set_uint(val, kp);
	else
		ret = param_set_bool(val, kp);
	if (!ret)
		publish();
	spin_unlock_irqrestore(&lock, flags);
	return ret;
}

static const struct kernel_param_ops target_ops = {
	.set = set_and_publish, .get = param_get_uint,
};
static const struct kernel_param_ops reporting_ops = {
	.set = set_and_publish, .get = param_get_bool,
};
module_param_cb(target_mib, &target_ops, &target_mib, 0644);
MODULE_PARM_DESC(target_mib, "Balloon target in MiB");
module_param_cb(reporting, &reporting_ops, &reporting, 0644);
MODULE_PARM_DESC(reporting, "Free page reporting switch");
module_param(host_pages, ulong, 0444);
MODULE_PARM_DESC(host_pages, "4 KiB pages the fake host holds");
module_param(reported_pages, ulong, 0444);
MODULE_PARM_DESC(reported_pages, "4 KiB pages reported");
module_param(stats_updates, ulong, 0444);
MODULE_PARM_DESC(stats_updates, "STATS calls");
module_param(stats_mem_total, ulong, 0444);
MODULE_PARM_DESC(stats_mem_total, "mem_total of the last stats, bytes");
module_param(errors, ulong, 0444);
MODULE_PARM_DESC(errors, "Requests or entries a correct guest never sends");

/* One entry: checks, then does what the host would.  Lock held. */
static unsigned int entry(u64 op, u64 e)
{
	u64 pfn = balloon_ent_gpa(e) >> PAGE_SHIFT, n = 1, i, busy = 0;
	bool huge = e & BALLOON_ENT_2M;

	if (e & (BALLOON_ENT_RSVD_MASK | BALLOON_ENT_ST_MASK))
		return BALLOON_ST_INVALID;
	if (huge) {
		n = BALLOON_HUGE_PAGES;
		if (pfn & (n - 1))
			return BALLOON_ST_ALIGN;
	}
	if (pfn + n > DVFH_MAX_PFN || !pfn_valid(pfn) || !pfn_valid(pfn + n - 1))
		return BALLOON_ST_RANGE;
	for (i = 0; i < n; i++)
		busy += test_bit(pfn + i, held);
	switch (op) {
	case BALLOON_OP_INFLATE:
		if (busy)
			return BALLOON_ST_STATE;
		bitmap_set(held, pfn, n);
		memset(pfn_to_kaddr(pfn), 0x5a, n << PAGE_SHIFT);
		host_pages += n;
		break;
	case BALLOON_OP_DEFLATE:
		if (busy != n)
			return BALLOON_ST_STATE;
		bitmap_clear(held, pfn, n);
		memset(pfn_to_kaddr(pfn), 0, n << PAGE_SHIFT);
		host_pages -= n;
		break;
	case BALLOON_OP_REPORT:
		if (busy)
			return BALLOON_ST_STATE;
		memset(pfn_to_kaddr(pfn), 0, n << PAGE_SHIFT);
		reported_pages += n;
		break;
	}
	return BALLOON_ST_OK;
}

/* One hypercall; returns ret (>= 0 or -errno) and sets *ret2. */
static s64 hypercall(u64 op, u64 a1, u64 a2, u64 a3, u64 a4, u64 *ret2)
{
	struct balloon_cfg_guest *g;
	u64 i, ok = 0;

	*ret2 = 0;
	switch (op) {
	case BALLOON_OP_REGISTER:
		if (a3 < 1 || a3 > BALLOON_RING_MAX_PAGES ||
		    a4 != BALLOON_PROTO_VERSION || (a1 | a2) & ~PAGE_MASK ||
		    !pfn_valid(a1 >> PAGE_SHIFT) || !pfn_valid(a2 >> PAGE_SHIFT))
			return -BALLOON_EINVAL;
		cfg = __va(a1);
		ring = __va(a2);
		ring_cap = a3 * BALLOON_RING_PAGE_ENTRIES;
		cfg->magic = BALLOON_CFG_MAGIC;
		cfg->version = BALLOON_PROTO_VERSION;
		cfg->stats_period_ms = 1000;
		cfg->ring_capacity = ring_cap;
		publish();
		*ret2 = ring_cap;
		return 0;
	case BALLOON_OP_UNREGISTER:
		/* pages still held go back to the guest, as zero */
		for (i = 0; i < DVFH_MAX_PFN; i++)
			if (test_bit(i, held))
				memset(pfn_to_kaddr(i), 0, PAGE_SIZE);
		bitmap_zero(held, DVFH_MAX_PFN);
		host_pages = 0;
		cfg = NULL;
		ring = NULL;
		return 0;
	case BALLOON_OP_INFLATE:
	case BALLOON_OP_DEFLATE:
	case BALLOON_OP_REPORT:
		if (!ring || a1 > ring_cap || a2 || a3 || a4)
			return -BALLOON_EINVAL;
		if (op == BALLOON_OP_REPORT && !reporting)
			return -BALLOON_EOPNOTSUPP;
		for (i = 0; i < a1; i++) {
			u64 e = READ_ONCE(ring[i]);
			unsigned int st = entry(op, e);

			if (st != BALLOON_ST_OK)
				errors++;
			else
				ok++;
			WRITE_ONCE(ring[i], (e & ~BALLOON_ENT_ST_MASK) |
				   ((u64)st << BALLOON_ENT_ST_SHIFT));
		}
		if (cfg)
			cfg->host_pages = host_pages;
		*ret2 = a1 - ok;
		return ok;
	case BALLOON_OP_STATS:
		if (!cfg)
			return -BALLOON_EINVAL;
		g = (void *)((u8 *)cfg + BALLOON_CFG_GUEST_OFF);
		stats_updates++;
		if (g->stats.valid & BALLOON_STAT_MEM_TOTAL)
			stats_mem_total = g->stats.mem_total;
		return 0;
	}
	errors++;
	return -BALLOON_ENOSYS;
}

/* At os_doorbell's entry: args in rdi (ctx), rsi, rdx, rcx, r8, r9, the
 * 7th (ret2) on the stack above the return address. */
static int pre(struct kprobe *p, struct pt_regs *regs)
{
	u64 *ret2p = *(u64 **)(regs->sp + sizeof(long)), ret2;
	unsigned long flags;
	s64 ret;

	spin_lock_irqsave(&lock, flags);
	ret = hypercall(regs->si, regs->dx, regs->cx, regs->r8, regs->r9, &ret2);
	spin_unlock_irqrestore(&lock, flags);
	*ret2p = ret2;
	regs->ax = ret;
	regs->ip = (unsigned long)dvfh_just_return;
	return 1;	/* regs->ip changed: skip the probed function */
}

static struct kprobe kp = {
	.symbol_name = "densevm_balloon:os_doorbell",
	.pre_handler = pre,
};
static bool kp_armed;

/* The balloon registers from its module init: the probe must be in place
 * before that runs, so it goes in while the module is COMING. */
static int on_module(struct notifier_block *nb, unsigned long state, void *data)
{
	struct module *mod = data;
	int ret;

	if (strcmp(mod->name, "densevm_balloon"))
		return NOTIFY_DONE;
	if (state == MODULE_STATE_COMING && !kp_armed) {
		kp.addr = NULL;
		kp.flags = 0;
		ret = register_kprobe(&kp);
		if (ret)
			pr_err("kprobe on %s failed: %d\n", kp.symbol_name, ret);
		else
			kp_armed = true;
	} else if (state == MODULE_STATE_GOING && kp_armed) {
		unregister_kprobe(&kp);
		kp_armed = false;
	}
	return NOTIFY_DONE;
}

static struct notifier_block nb = { .notifier_call = on_module };

static int __init dvfh_init(void)
{
	held = vzalloc(BITS_TO_LONGS(DVFH_MAX_PFN) * sizeof(long));
	if (!held)
		return -ENOMEM;
	register_module_notifier(&nb);
	pr_info("TEST ONLY: answering densevm_balloon's doorbell\n");
	return 0;
}

static void __exit dvfh_exit(void)
{
	unregister_module_notifier(&nb);
	if (kp_armed)
		unregister_kprobe(&kp);
	vfree(held);
}

module_init(dvfh_init);
module_exit(dvfh_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("TEST ONLY: a fake densevm balloon host for densevm_balloon.ko");
