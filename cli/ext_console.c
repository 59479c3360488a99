/*
 * ext_console.c - the console budget in `densevm run` (a struct run_ext,
 * ext.h).
 *
 * Owns: the [console] config section (rate, burst: the defaults of every
 * VM), the per-VM keys console_rate= and console_burst= (in --vm or
 * [vm NAME]; they override the section), setting hv_vm_config's
 * console_rate/console_burst before each VM is created, and the console's
 * part of `stat` (lines and bytes dropped over the budget).  hv-core
 * enforces the budget (console_filter.c); this file only parses it.
 *
 * Values are sizes (parse_size: 64K, 1M, 262144).  A rate of 0 means no
 * budget at all (HV_CONSOLE_UNLIMITED); a burst must hold one full line
 * and its newline (HV_CONSOLE_LINE + 1 bytes).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "ext.h"


/* key is "rate"/"burst" (or with the per-VM prefix, for messages). */
static int parse_budget(const char *key, const char *val, bool burst,
			uint64_t *out, char *err, size_t errlen)
{
	uint64_t v;
	if (parse_size(val, &v) || (burst && v < HV_CONSOLE_LINE + 1)) {
		if (burst)
			snprintf(err, errlen, "%s: '%s' must be a size of at least "
				 "%u bytes (e.g. 256K)", key, val, HV_CONSOLE_LINE + 1);
		else
			snprintf(err, errlen, "%s: '%s' must be bytes per second, a "
				 "size (e.g. 64K), or 0 for no limit", key, val);
		return -EINVAL;
	}
	*out = !burst && v == 0 ? HV_CONSOLE_UNLIMITED : v;
	return 0;
}

static void console_config_init(struct run_config *rc)
{
	rc->console.rate = HV_CONSOLE_RATE_DEFAULT;
	rc->console.burst = HV_CONSOLE_BURST_DEFAULT;
}

static int console_config_key(struct run_config *rc, const char *key,
			      const char *val, char *err, size_t errlen)
{
	if (!strcmp(key, "rate"))
		return parse_budget(key, val, false, &rc->console.rate, err, errlen);
	if (!strcmp(key, "burst"))
		return parse_budget(key, val, true, &rc->console.burst, err, errlen);
	snprintf(err, errlen, "unknown key '%s' (known: rate burst)", key);
	return -EINVAL;
}

static int console_vm_key(const char *key, const char *val, char *err,
			  size_t errlen)
{
	uint64_t v;
	if (strcmp(key, "console_rate") && strcmp(key, "console_burst"))
		return -ENOENT;
	return parse_budget(key, val, !strcmp(key, "console_burst"), &v, err,
			    errlen);
}

static int console_prepare_vm(struct run_state *rs, const struct vm_spec *s,
			      struct hv_vm_config *c, char *err, size_t errlen)
{
	const char *r = spec_ext(s, "console_rate");
	const char *b = spec_ext(s, "console_burst");

	c->console_rate = rs->cfg->console.rate;
	c->console_burst = rs->cfg->console.burst;
	if (r && parse_budget("console_rate", r, false, &c->console_rate, err,
			      errlen))
		return -EINVAL;
	if (b && parse_budget("console_burst", b, true, &c->console_burst, err,
			      errlen))
		return -EINVAL;
	return 0;
}

static void console_vm_figures(struct run_state *rs, const struct vm_run *r,
			       struct vm_figures *f)
{
	struct hv_vm_counters c;
	(void)rs;
	hv_vm_counters(r->vm, &c);
	f->console = true;
	f->console_suppressed_lines = c.console_suppressed_lines;
	f->console_suppressed_bytes = c.console_suppressed_bytes;
}

const struct run_ext console_ext = {
	.name = "console",
	.section = "console",
	.config_init = console_config_init,
	.config_key = console_config_key,
	.vm_key = console_vm_key,
	.prepare_vm = console_prepare_vm,
	.vm_figures = console_vm_figures,
};
