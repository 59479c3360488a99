/*
 * config.c - densevm config files (INI, parsed with Debian's libinih):
 *
 *   [run]            defaults: timeout, guest
 *   [vm NAME]        one VM (or `count` of them): the keys of --vm
 *
 * Every error names FILE:LINE.  Later sections ([ksm], [policy], ...)
 * belong to their folders; an unknown section is an error, not ignored,
 * and so is a repeated one (inih would merge two [vm a] into one VM).
 * The reading, line numbers and header checks are ini_file.c's, shared
 * with the bench scenario files; this file owns what the sections mean.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "ext.h"
#include "ini_file.h"

#define CFG_MAX_SECTIONS (CLI_MAX_VMS + 16)

struct cfg_ctx {
	const char *path;
	unsigned nsect;
	struct run_opts *opts;
	char cur_section[128];
	struct vm_spec *cur;
	const struct run_ext *ext;   /* owner of the current section */
};

static void known_sections(char *known, size_t len)
{
	snprintf(known, len, "[run], [vm NAME]");
	for (int i = 0; run_exts[i]; i++)
		if (run_exts[i]->section)
			snprintf(known + strlen(known), len - strlen(known), ", [%s]",
				 run_exts[i]->section);
}

static bool section_known(const char *name)
{
	if (!strcmp(name, "run") || !strncmp(name, "vm ", 3))
		return true;
	for (int i = 0; run_exts[i]; i++)
		if (run_exts[i]->section && !strcmp(run_exts[i]->section, name))
			return true;
	return false;
}

/* A new header (ini_file.c refused a repeated one): known, room for it;
 * the extension that owns it hears of it (an empty [policy] turns
 * policy on). */
static int on_section(void *user, const char *name, int line, char *msg,
		      size_t msglen)
{
	struct cfg_ctx *c = user;
	(void)line;
	if (!section_known(name)) {
		char known[256];
		known_sections(known, sizeof(known));
		return ini_file_unknown(msg, msglen, name, known);
	}
	if (c->nsect == CFG_MAX_SECTIONS) {
		snprintf(msg, msglen, "more than %d sections", CFG_MAX_SECTIONS);
		return -1;
	}
	c->nsect++;
	for (int i = 0; run_exts[i]; i++)
		if (run_exts[i]->section && !strcmp(run_exts[i]->section, name) &&
		    run_exts[i]->config_section)
			run_exts[i]->config_section(&c->opts->cfg);
	return 0;
}

/* A key; msg is ini_file.c's, which adds FILE:LINE. */
static int on_key(void *user, const char *section, const char *key,
		  const char *val, char *msg, size_t msglen)
{
	struct cfg_ctx *c = user;
	char err[400];

	if (strcmp(section, c->cur_section)) {
		snprintf(c->cur_section, sizeof(c->cur_section), "%s", section);
		c->cur = NULL;
		c->ext = NULL;
		for (int i = 0; run_exts[i]; i++)
			if (run_exts[i]->section &&
			    !strcmp(run_exts[i]->section, section))
				c->ext = run_exts[i];
		if (c->ext) {
			/* its keys are checked below */
		} else if (!strncmp(section, "vm ", 3)) {
			if (c->opts->nspecs >= CLI_MAX_VMS) {
				snprintf(msg, msglen, "more than %u VMs",
					 CLI_MAX_VMS);
				goto fail;
			}
			struct vm_spec *s = &c->opts->specs[c->opts->nspecs++];
			char origin[300];
			snprintf(origin, sizeof(origin), "%s [%s]", c->path, section);
			spec_init(s, origin);
			if (spec_set(s, "name", section + 3, err, sizeof(err))) {
				snprintf(msg, msglen, "[%s]: %s", section, err);
				goto fail;
			}
			c->cur = s;
		} else if (strcmp(section, "run")) {
			/* on_section refuses these; kept for safety */
			snprintf(msg, msglen, "unknown section [%s]", section);
			goto fail;
		}
	}
	if (c->ext) {
		if (!c->ext->config_key ||
		    c->ext->config_key(&c->opts->cfg, key, val, err, sizeof(err))) {
			snprintf(msg, msglen, "[%s] %s", section,
				 c->ext->config_key ? err : "takes no keys");
			goto fail;
		}
		return 0;
	}
	if (c->cur) {
		if (spec_set(c->cur, key, val, err, sizeof(err))) {
			snprintf(msg, msglen, "[%s] %s", section, err);
			goto fail;
		}
		return 0;
	}
	if (!strcmp(key, "timeout")) {
		char *end;
		c->opts->timeout = strtod(val, &end);
		if (end == val || *end || c->opts->timeout < 0) {
			snprintf(msg, msglen, "[run] timeout: '%s' must be "
				 "seconds >= 0", val);
			goto fail;
		}
	} else if (!strcmp(key, "guest")) {
		free(c->opts->owned);
		c->opts->owned = strdup(val);
		c->opts->guest_path = c->opts->owned;
	} else {
		snprintf(msg, msglen, "[run] unknown key '%s' (known: "
			 "timeout guest)", key);
		goto fail;
	}
	return 0;
fail:
	return -1;
}

void run_config_init(struct run_config *rc)
{
	memset(rc, 0, sizeof(*rc));
	for (int i = 0; run_exts[i]; i++)
		if (run_exts[i]->config_init)
			run_exts[i]->config_init(rc);
}

int config_load(const char *path, struct run_opts *opts, char *err,
		size_t errlen)
{
	struct cfg_ctx c = { .path = path, .opts = opts };
	struct ini_file f = { .path = path, .user = &c, .section = on_section,
			      .key = on_key };
	unsigned first = opts->nspecs;

	int rc = ini_file_parse(&f, err, errlen);
	ini_file_free(&f);
	if (rc)
		return rc;
	for (int i = 0; run_exts[i]; i++) {
		char e[400];
		if (run_exts[i]->config_done &&
		    run_exts[i]->config_done(&opts->cfg, e, sizeof(e))) {
			snprintf(err, errlen, "%s: [%s] %s", path, run_exts[i]->section,
				 e);
			return -EINVAL;
		}
	}
	for (unsigned i = first; i < opts->nspecs; i++) {
		char e[400];
		if (spec_check(&opts->specs[i], e, sizeof(e))) {
			snprintf(err, errlen, "%s: %s", opts->specs[i].origin, e);
			return -EINVAL;
		}
	}
	return 0;
}
