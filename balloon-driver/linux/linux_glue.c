// SPDX-License-Identifier: GPL-2.0
/*
 * linux_glue.c - densevm_balloon.ko: the Linux front end of the densevm
 * balloon.
 *
 * Owns only what is Linux-specific: finding the densevm host (CPUID leaf,
 * or module parameters where CPUID cannot be set), the hypercall argument
 * page and the doorbell, page allocation for the balloon, stats collection,
 * the pressure hooks (shrinker and OOM notifier), the poll work item, free
 * page reporting through the page_reporting API, and a debugfs view.  The
 * protocol and every policy decision (targets, the floor, 2 MiB first,
 * batching, what to do under pressure) are the shared core's
 * (../balloon_core.c, compiled in through core.c), the same code the micro
 * guest and the userspace unit tests run.
 *
 * Locking: the core is not thread-safe.  d->lock serializes every core
 * call.  The paths that run inside memory reclaim (shrinker, OOM notifier)
 * only trylock: the poll work may hold the lock while its own allocation
 * is in reclaim, and the balloon must never make the OS wait for it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/debugfs.h>
#include <linux/gfp.h>
#include <linux/ioport.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/oom.h>
#if IS_ENABLED(CONFIG_PAGE_REPORTING)
#include <linux/page_reporting.h>
#endif
#include <linux/scatterlist.h>
#include <linux/seq_file.h>
#include <linux/shrinker.h>
#include <linux/slab.h>
#include <linux/swap.h>
#include <linux/version.h>
#include <linux/vmstat.h>
#include <linux/workqueue.h>
#include <asm/cpufeature.h>
#include <asm/io.h>
#include <asm/processor.h>

#include "balloon.h"
#include "hv_abi.h"

/* The host's own ABI header, not a copy: guest and host cannot drift. */
static_assert(sizeof(struct hv_argpage) == PAGE_SIZE);
static_assert(BALLOON_HC_NR == HC_BALLOON);

/* Balloon pages: the allocator may reclaim a little (squeezing the page
 * cache is the point of a balloon) but never retries hard, never dips into
 * the reserves and never wakes the OOM killer; a failure only ends this
 * round of inflation.  GFP_HIGHUSER, not _MOVABLE: ballooned pages cannot
 * migrate, so they must stay out of ZONE_MOVABLE and CMA.  2 MiB blocks
 * neither wake kswapd nor reclaim: a failed one falls back to 4 KiB pages,
 * so compacting memory for it is not worth the guest's time. */
#define DVB_GFP_4K	(GFP_HIGHUSER | __GFP_NORETRY | __GFP_NOWARN | \
			 __GFP_NOMEMALLOC)
#define DVB_GFP_2M	(DVB_GFP_4K & ~__GFP_RECLAIM)

/* Pages given back per OOM notification: enough for the allocation that
 * failed to succeed and for a little more, so that the next allocation does
 * not go straight back to the OOM killer. */
#define DVB_OOM_PAGES	4096		/* 16 MiB */

/* ------------------------------------------------------------ parameters */

static bool force;
module_param(force, bool, 0444);
MODULE_PARM_DESC(force, "Skip CPUID discovery and use the ports below (for hosts where the CPUID leaf cannot be set, e.g. nested software KVM); default 0");

static uint port;
module_param(port, uint, 0444);
MODULE_PARM_DESC(port, "Doorbell I/O port (0 = from CPUID, or 0xe0 with force=1)");

static uint argreg;
module_param(argreg, uint, 0444);
MODULE_PARM_DESC(argreg, "Argument-page registration I/O port (0 = from CPUID, or 0xe4 with force=1)");

static ulong floor_mib;
module_param(floor_mib, ulong, 0444);
MODULE_PARM_DESC(floor_mib, "Free-memory floor in MiB the balloon never inflates below (0 = 1/16 of RAM, at least 16 MiB)");

static uint poll_ms;
module_param(poll_ms, uint, 0444);
MODULE_PARM_DESC(poll_ms, "Idle poll period of the host's config page in ms (0 = 100)");

static bool no_huge;
module_param(no_huge, bool, 0444);
MODULE_PARM_DESC(no_huge, "Inflate with 4 KiB pages only, never 2 MiB blocks; default 0");

static bool shrinker = true;
module_param(shrinker, bool, 0444);
MODULE_PARM_DESC(shrinker, "Deflate from memory reclaim (a shrinker) when available memory falls below the floor; default 1 (the OOM notifier is always on)");

static bool reporting = true;
module_param(reporting, bool, 0444);
MODULE_PARM_DESC(reporting, "Report free pages (page_reporting) while the host asks for it; default 1");

/* ----------------------------------------------------------------- state */

struct dvb {
	struct mutex lock;		/* serializes every core call */
	struct balloon b;
	struct hv_argpage *argpage;	/* the VM's one hypercall page */
	u16 doorbell_port;
	u16 argreg_port;
	bool from_cpuid;
	/* read by the pressure hooks without the lock */
	unsigned long held_pages;	/* WRITE_ONCE under lock */
	unsigned long floor_pages;	/* fixed after init */
	struct delayed_work work;
	struct shrinker *shrinker;
	struct notifier_block oom_nb;
	bool pr_registered;		/* touched by the work item only */
	struct dentry *debugfs;
#ifdef CONFIG_VM_EVENT_COUNTERS
	unsigned long events[NR_VM_EVENT_ITEMS];	/* under lock */
#endif
#if IS_ENABLED(CONFIG_PAGE_REPORTING)
	struct page_reporting_dev_info pr;
	struct balloon_range ranges[PAGE_REPORTING_CAPACITY]; /* under lock */
#endif
};

static struct dvb *dvb;

static void dvb_update_held(struct dvb *d)
{
	struct balloon_info info;

	balloon_get_info(&d->b, &info);
	WRITE_ONCE(d->held_pages, info.balloon_pages);
}

/* ----------------------------------------------------- OS interface (core) */

static void *os_alloc(void *ctx, unsigned int order)
{
	struct page *page = alloc_pages(order ? DVB_GFP_2M : DVB_GFP_4K, order);

	return page ? page_address(page) : NULL;
}

static void os_free(void *ctx, void *va, unsigned int order)
{
	__free_pages(virt_to_page(va), order);
}

static uint64_t os_va_to_pfn(void *ctx, void *va)
{
	return PHYS_PFN(__pa(va));
}

static void *os_pfn_to_va(void *ctx, uint64_t pfn)
{
	return pfn_to_kaddr(pfn);
}

static uint64_t os_avail_pages(void *ctx)
{
	long avail = si_mem_available();

	return avail > 0 ? avail : 0;
}

static uint64_t os_now_ns(void *ctx)
{
	return ktime_get_ns();
}

/*
 * Stats as /proc/meminfo and /proc/vmstat show them.  PSI is not filled:
 * the kernel exports neither psi_system nor a read_iter for
 * /proc/pressure/memory, so a module has no supported way to read it.
 */
static void os_read_stats(void *ctx, struct balloon_stats *st)
{
	struct dvb *d __maybe_unused = ctx;
	struct sysinfo i;
	long cached;

	si_meminfo(&i);
	st->mem_total = (u64)i.totalram * i.mem_unit;
	st->mem_free = (u64)i.freeram * i.mem_unit;
	st->mem_available = (u64)os_avail_pages(ctx) << PAGE_SHIFT;
	cached = global_node_page_state(NR_FILE_PAGES) - i.bufferram;
#if defined(CONFIG_SWAP) && LINUX_VERSION_CODE >= KERNEL_VERSION(5, 13, 0)
	cached -= global_node_page_state(NR_SWAPCACHE);	/* as /proc/meminfo */
#endif
	st->cached = (u64)max(cached, 0L) << PAGE_SHIFT;
	st->valid = BALLOON_STAT_MEM_TOTAL | BALLOON_STAT_MEM_FREE |
		    BALLOON_STAT_MEM_AVAILABLE | BALLOON_STAT_CACHED;
#ifdef CONFIG_VM_EVENT_COUNTERS
	all_vm_events(d->events);
	st->swap_in = d->events[PSWPIN];
	st->swap_out = d->events[PSWPOUT];
	st->major_faults = d->events[PGMAJFAULT];
	st->minor_faults = d->events[PGFAULT] - d->events[PGMAJFAULT];
	st->oom_kills = d->events[OOM_KILL];
	st->valid |= BALLOON_STAT_SWAP_IN | BALLOON_STAT_SWAP_OUT |
		     BALLOON_STAT_MAJOR_FAULTS | BALLOON_STAT_MINOR_FAULTS |
		     BALLOON_STAT_OOM_KILLS;
#endif
}

/*
 * One hypercall (hv_abi.h): fill the VM's argument page, outl to the
 * doorbell; the exit is synchronous, so the host's answer is in the page
 * when outl returns.  The kernel's outl has no memory clobber, hence the
 * barriers.  ret starts as -ENOSYS so that a port nobody serves (a
 * non-densevm host with force=1) reads as "no such call".
 */
static int64_t os_doorbell(void *ctx, uint64_t op, uint64_t a1, uint64_t a2,
			   uint64_t a3, uint64_t a4, uint64_t *ret2)
{
	struct dvb *d = ctx;
	struct hv_argpage *ap = d->argpage;

	WRITE_ONCE(ap->nr, BALLOON_HC_NR);
	WRITE_ONCE(ap->arg[0], op);
	WRITE_ONCE(ap->arg[1], a1);
	WRITE_ONCE(ap->arg[2], a2);
	WRITE_ONCE(ap->arg[3], a3);
	WRITE_ONCE(ap->arg[4], a4);
	WRITE_ONCE(ap->ret, -BALLOON_ENOSYS);
	WRITE_ONCE(ap->ret2, 0);
	mb();
	outl(0, d->doorbell_port);
	mb();
	*ret2 = READ_ONCE(ap->ret2);
	return READ_ONCE(ap->ret);
}

/* ------------------------------------------------------------- discovery */

/* 0 with the ports set, or -ENODEV. */
static int dvb_discover(struct dvb *d)
{
	u32 base = 0, eax = 0, ebx = 0, ecx = 0, edx = 0, db, ar;

	/* CPUID leaves above 0x40000000 are only meaningful under a
	 * hypervisor; on bare metal they alias the highest basic leaf. */
	if (!force && boot_cpu_has(X86_FEATURE_HYPERVISOR))
		base = hypervisor_cpuid_base(HV_CPUID_SIG,
					     HV_CPUID_PORTS - HV_CPUID_BASE);
	if (base) {
		cpuid(base + (HV_CPUID_PORTS - HV_CPUID_BASE), &eax, &ebx, &ecx,
		      &edx);
		if (!(ecx & HV_FEAT_BALLOON)) {
			pr_info("densevm host at CPUID %#x has no balloon device\n",
				base);
			return -ENODEV;
		}
		d->from_cpuid = true;
	} else if (!force) {
		pr_info("no densevm hypervisor (CPUID signature \"%s\"); load with force=1 [port=%#x argreg=%#x] where the host cannot set CPUID\n",
			HV_CPUID_SIG, HV_DOORBELL_PORT, HV_ARGREG_PORT);
		return -ENODEV;
	}
	db = port ? port : base ? eax : HV_DOORBELL_PORT;
	ar = argreg ? argreg : base ? ebx : HV_ARGREG_PORT;
	if (!db || db > 0xfffc || !ar || ar > 0xfffc) {
		pr_err("bad ports: doorbell %#x, argreg %#x\n", db, ar);
		return -ENODEV;
	}
	d->doorbell_port = db;
	d->argreg_port = ar;
	return 0;
}

/* ------------------------------------------------------- pressure hooks */

/* Counted only while available memory is under the floor: the balloon
 * must not be the first thing every kswapd pass takes back, or it would
 * oscillate against its own inflation.  Above the floor, reclaim takes the
 * page cache as it would without a balloon. */
static unsigned long dvb_shrink_count(struct shrinker *s,
				      struct shrink_control *sc)
{
	struct dvb *d = dvb;
	unsigned long held = READ_ONCE(d->held_pages);

	if (!held || os_avail_pages(d) >= d->floor_pages)
		return 0;
	return held;
}

static unsigned long dvb_shrink_scan(struct shrinker *s,
				     struct shrink_control *sc)
{
	struct dvb *d = dvb;
	unsigned long freed;

	if (!mutex_trylock(&d->lock))
		return SHRINK_STOP;
	freed = balloon_deflate_for_pressure(&d->b, sc->nr_to_scan);
	dvb_update_held(d);
	mutex_unlock(&d->lock);
	return freed ? freed : SHRINK_STOP;
}

/* The last resort before a kill: whatever the floor says. */
static int dvb_oom_notify(struct notifier_block *nb, unsigned long unused,
			  void *parm)
{
	struct dvb *d = container_of(nb, struct dvb, oom_nb);
	unsigned long *freed = parm;
	u64 n;

	if (!READ_ONCE(d->held_pages) || !mutex_trylock(&d->lock))
		return NOTIFY_OK;
	n = balloon_deflate_for_pressure(&d->b, DVB_OOM_PAGES);
	dvb_update_held(d);
	mutex_unlock(&d->lock);
	*freed += n;
	return NOTIFY_OK;
}

/*
 * The shrinker API changed twice: 6.0 added a name to register_shrinker(),
 * 6.7 replaced static shrinkers with shrinker_alloc()/shrinker_register().
 */
static int dvb_shrinker_register(struct dvb *d)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
	struct shrinker *s = shrinker_alloc(0, "densevm-balloon");

	if (!s)
		return -ENOMEM;
	s->count_objects = dvb_shrink_count;
	s->scan_objects = dvb_shrink_scan;
	s->seeks = DEFAULT_SEEKS;
	shrinker_register(s);
	d->shrinker = s;
	return 0;
#else
	static struct shrinker s = {
		.count_objects = dvb_shrink_count,
		.scan_objects = dvb_shrink_scan,
		.seeks = DEFAULT_SEEKS,
	};
	int ret;

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 0, 0)
	ret = register_shrinker(&s, "densevm-balloon");
#else
	ret = register_shrinker(&s);
#endif
	if (!ret)
		d->shrinker = &s;
	return ret;
#endif
}

static void dvb_shrinker_unregister(struct dvb *d)
{
	if (!d->shrinker)
		return;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
	shrinker_free(d->shrinker);
#else
	unregister_shrinker(d->shrinker);
#endif
	d->shrinker = NULL;
}

/* -------------------------------------------------- free page reporting */

#if IS_ENABLED(CONFIG_PAGE_REPORTING)
/* Called by mm/page_reporting.c from its own work item with no zone lock
 * held, so it may sleep.  The pages stay free in the buddy allocator; the
 * host may drop their contents.  An error leaves them unreported (they
 * are offered again in a later cycle). */
static int dvb_report(struct page_reporting_dev_info *pr,
		      struct scatterlist *sgl, unsigned int nents)
{
	struct dvb *d = container_of(pr, struct dvb, pr);
	struct scatterlist *sg;
	unsigned int i, n = 0;
	int ret = 0;

	mutex_lock(&d->lock);
	for_each_sg(sgl, sg, nents, i) {
		d->ranges[n].pfn = page_to_pfn(sg_page(sg));
		d->ranges[n].npages = sg->length >> PAGE_SHIFT;
		if (++n == ARRAY_SIZE(d->ranges) || i + 1 == nents) {
			ret = balloon_report(&d->b, d->ranges, n);
			n = 0;
			if (ret < 0)
				break;
		}
	}
	mutex_unlock(&d->lock);
	if (ret == -BALLOON_EOPNOTSUPP)
		return -EOPNOTSUPP;
	return ret < 0 ? -EIO : 0;
}
#endif

/* Follows the host's switch.  Called from the work item without d->lock:
 * unregistering waits for a running dvb_report(), which takes it. */
static void dvb_reporting_follow(struct dvb *d, bool on)
{
#if IS_ENABLED(CONFIG_PAGE_REPORTING)
	int ret;

	if (!reporting || on == d->pr_registered)
		return;
	if (!on) {
		page_reporting_unregister(&d->pr);
		d->pr_registered = false;
		pr_info("free page reporting off\n");
		return;
	}
	d->pr.report = dvb_report;
	ret = page_reporting_register(&d->pr);
	if (ret) {
		/* -EBUSY: another driver (virtio_balloon) reports already.
		 * Say it once: the host's flag stays on, so this repeats. */
		pr_warn_once("free page reporting unavailable (%d)\n", ret);
		return;
	}
	d->pr_registered = true;
	pr_info("free page reporting on\n");
#endif
}

/* ------------------------------------------------------------ poll work */

static void dvb_work(struct work_struct *w)
{
	struct dvb *d = container_of(to_delayed_work(w), struct dvb, work);
	u32 next_ms;
	bool rep;

	mutex_lock(&d->lock);
	next_ms = balloon_poll(&d->b);
	dvb_update_held(d);
	rep = balloon_reporting_enabled(&d->b);
	mutex_unlock(&d->lock);
	dvb_reporting_follow(d, rep);
	/* 0 = more work now; the worker yields between runs. */
	queue_delayed_work(system_freezable_wq, &d->work,
			   msecs_to_jiffies(next_ms));
}

/* --------------------------------------------------------------- debugfs */

static int dvb_show(struct seq_file *m, void *unused)
{
	struct dvb *d = m->private;
	struct balloon_info i;

	mutex_lock(&d->lock);
	balloon_get_info(&d->b, &i);
	mutex_unlock(&d->lock);
	seq_printf(m, "discovery: %s\ndoorbell_port: %#x\nargreg_port: %#x\n",
		   d->from_cpuid ? "cpuid" : "parameters", d->doorbell_port,
		   d->argreg_port);
	seq_printf(m, "registered: %d\nreporting: %d\npage_reporting: %d\n",
		   i.registered, i.reporting, d->pr_registered);
	seq_printf(m, "balloon_pages: %llu\ntarget_pages: %llu\nfloor_pages: %llu\n",
		   i.balloon_pages, i.target_pages, i.floor_pages);
	seq_printf(m, "blocks_2m: %llu\npages_4k: %llu\ntrack_pages: %llu\n",
		   i.blocks_2m, i.pages_4k, i.track_pages);
	seq_printf(m, "inflated: %llu\ndeflated: %llu\nreported: %llu\n",
		   i.inflated, i.deflated, i.reported);
	seq_printf(m, "refused: %llu\nforced: %llu\nalloc_fail_2m: %llu\nalloc_fail_4k: %llu\n",
		   i.refused, i.forced, i.alloc_fail_2m, i.alloc_fail_4k);
	seq_printf(m, "doorbells: %llu\ndoorbell_errors: %llu\nstats_sent: %llu\n",
		   i.doorbells, i.doorbell_errors, i.stats_sent);
	seq_printf(m, "pressure_events: %llu\npressure_pages: %llu\nstatus: %#x\n",
		   i.pressure_events, i.pressure_pages, i.status);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(dvb);

/* ----------------------------------------------------------- init / exit */

static const struct balloon_os dvb_os_template = {
	.alloc = os_alloc,
	.free = os_free,
	.va_to_pfn = os_va_to_pfn,
	.pfn_to_va = os_pfn_to_va,
	.avail_pages = os_avail_pages,
	.read_stats = os_read_stats,
	.doorbell = os_doorbell,
	.now_ns = os_now_ns,
};

static void dvb_release_host(struct dvb *d)
{
	if (d->argpage) {
		outl(0, d->argreg_port);	/* unregister the page */
		free_page((unsigned long)d->argpage);
		d->argpage = NULL;
	}
	release_region(d->argreg_port, 4);
	release_region(d->doorbell_port, 4);
}

static int __init dvb_init(void)
{
	struct balloon_params p = { 0 };
	struct balloon_os os = dvb_os_template;
	struct balloon_info info;
	struct dvb *d;
	int ret;

	d = kzalloc(sizeof(*d), GFP_KERNEL);
	if (!d)
		return -ENOMEM;
	mutex_init(&d->lock);
	INIT_DELAYED_WORK(&d->work, dvb_work);
	ret = dvb_discover(d);
	if (ret)
		goto err_free;

	if (!request_region(d->doorbell_port, 4, "densevm doorbell")) {
		ret = -EBUSY;
		goto err_ports;
	}
	if (!request_region(d->argreg_port, 4, "densevm argreg")) {
		release_region(d->doorbell_port, 4);
		ret = -EBUSY;
		goto err_ports;
	}
	d->argpage = (void *)get_zeroed_page(GFP_KERNEL);
	if (!d->argpage) {
		ret = -ENOMEM;
		goto err_host;
	}
	outl(PHYS_PFN(__pa(d->argpage)), d->argreg_port);

	os.ctx = d;
	p.total_pages = totalram_pages();
	p.floor_pages = (u64)floor_mib << (20 - PAGE_SHIFT);
	p.poll_ms = poll_ms;
	p.flags = no_huge ? BALLOON_P_NO_HUGE : 0;
	ret = balloon_init(&d->b, &os, &p);
	if (ret)
		goto err_host;
	ret = balloon_start(&d->b);
	if (ret) {
		pr_info("the host did not register the balloon (%d): no densevm balloon device on ports %#x/%#x\n",
			ret, d->doorbell_port, d->argreg_port);
		ret = -ENODEV;
		goto err_host;
	}
	balloon_get_info(&d->b, &info);
	d->floor_pages = info.floor_pages;
	dvb = d;

	d->oom_nb.notifier_call = dvb_oom_notify;
	ret = register_oom_notifier(&d->oom_nb);
	if (ret)
		goto err_stop;
	if (shrinker) {
		ret = dvb_shrinker_register(d);
		if (ret)
			goto err_oom;
	}
	d->debugfs = debugfs_create_file(KBUILD_MODNAME, 0444, NULL, d,
					 &dvb_fops);
	queue_delayed_work(system_freezable_wq, &d->work, 0);
	pr_info("ready: ports %#x/%#x (%s), %lu MiB of RAM, floor %lu MiB\n",
		d->doorbell_port, d->argreg_port,
		d->from_cpuid ? "CPUID" : "parameters",
		totalram_pages() >> (20 - PAGE_SHIFT),
		d->floor_pages >> (20 - PAGE_SHIFT));
	return 0;

err_oom:
	unregister_oom_notifier(&d->oom_nb);
err_stop:
	balloon_stop(&d->b);
	dvb = NULL;
err_host:
	dvb_release_host(d);
	goto err_free;
err_ports:
	pr_err("I/O ports %#x/%#x are in use\n", d->doorbell_port,
	       d->argreg_port);
err_free:
	kfree(d);
	return ret;
}

static void __exit dvb_exit(void)
{
	struct dvb *d = dvb;
	struct balloon_info i;

	/* Hooks first, then the work (which may requeue itself and may have
	 * turned reporting on), then every page goes back. */
	dvb_shrinker_unregister(d);
	unregister_oom_notifier(&d->oom_nb);
	debugfs_remove(d->debugfs);
	cancel_delayed_work_sync(&d->work);
	dvb_reporting_follow(d, false);
	mutex_lock(&d->lock);
	balloon_stop(&d->b);
	balloon_get_info(&d->b, &i);
	mutex_unlock(&d->lock);
	dvb_release_host(d);
	pr_info("unloaded: %llu pages inflated, %llu deflated, %llu returned without the host's ack\n",
		i.inflated, i.deflated, i.forced);
	dvb = NULL;
	kfree(d);
}

module_init(dvb_init);
module_exit(dvb_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("densevm developers");
MODULE_DESCRIPTION("densevm memory balloon: gives guest memory back to the densevm host on request, deflates under pressure, reports free pages");
MODULE_VERSION("0.1");
