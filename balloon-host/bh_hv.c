/*
 * bh_hv.c - the balloon device on a real hv-core VM.
 *
 * Owns: the only calls from balloon-host/ into hv-core: the bh_backend
 * implementation over hv_gpa_to_hva / hv_page_get / hv_page_cas /
 * hv_vm_zero / hv_vm_notify, the HC_BALLOON handler registration, and
 * announcing the device in the micro guest's boot-info page.
 */
#include <errno.h>
#include <stdlib.h>
#include "bh_internal.h"

_Static_assert(BALLOON_HC_NR == HC_BALLOON, "balloon hypercall number");

static void *hb_gpa_to_hva(void *ctx, uint64_t gpa, uint64_t len)
{
	return hv_gpa_to_hva(ctx, gpa, len);
}

static hv_pstate_t hb_get(void *ctx, uint64_t pfn)
{
	return hv_page_get(ctx, pfn);
}

static bool hb_cas(void *ctx, uint64_t pfn, hv_pstate_t old, hv_pstate_t new)
{
	return hv_page_cas(ctx, pfn, old, new);
}

static int hb_zero(void *ctx, uint64_t gpa, uint64_t len)
{
	return hv_vm_zero(ctx, gpa, len);
}

static void hb_notify(void *ctx)
{
	hv_vm_notify(ctx);
}

static uint64_t hb_now(void *ctx)
{
	(void)ctx;
	return hv_now_ns();
}

/* hv-core copied the argument page before calling us and always copies
 * ret2 back; nothing goes back through `data` (ring statuses are written
 * into guest RAM directly), so no copy_back: it would copy 4 KiB per
 * doorbell for nothing. */
static int64_t hb_hypercall(struct hv_vm *vm, unsigned cpu, struct hv_argpage *a,
			    bool *copy_back, void *ctx)
{
	uint64_t ret2 = 0;
	int64_t ret;
	(void)vm;
	(void)cpu;
	(void)copy_back;
	ret = balloon_host_hypercall(ctx, a->arg, &ret2);
	a->ret2 = ret2;
	return ret;
}

int balloon_host_attach(struct hv_vm *vm, const struct balloon_host_config *cfg,
			struct balloon_host **out)
{
	struct bh_backend be = {
		.ctx = vm,
		.gpa_to_hva = hb_gpa_to_hva,
		.page_get = hb_get,
		.page_cas = hb_cas,
		.zero = hb_zero,
		.notify = hb_notify,
		.now_ns = hb_now,
		.gpa_end = hv_vm_gpa_end(vm),
		.mem_bytes = hv_vm_mem_bytes(vm),
		.name = hv_vm_name(vm),
	};
	const struct hv_ram_range *rr;
	struct balloon_host *dev;
	unsigned n = 0;
	int rc;

	/* The guest learns of the device from the VM's spec (hv-core owns the
	 * feature bits); a device it was not told of would only be reachable
	 * by a guest probing for it. */
	if (!(hv_vm_features(vm) & HV_FEAT_BALLOON))
		return -ENODEV;
	rr = hv_vm_ranges(vm, &n);
	if (n > BH_MAX_RANGES)
		return -E2BIG;
	for (unsigned i = 0; i < n; i++) {
		be.ranges[i].gpa = rr[i].gpa;
		be.ranges[i].len = rr[i].len;
	}
	be.nranges = n;
	dev = balloon_host_create(&be, cfg);
	if (!dev)
		return -ENOMEM;
	rc = hv_vm_set_hypercall(vm, HC_BALLOON, hb_hypercall, dev);
	if (rc < 0) {
		balloon_host_destroy(dev);
		return rc;
	}
	*out = dev;
	return 0;
}

void balloon_host_detach(struct balloon_host *dev)
{
	if (!dev)
		return;
	hv_vm_set_hypercall(dev->be.ctx, HC_BALLOON, NULL, NULL);
	balloon_host_destroy(dev);
}
