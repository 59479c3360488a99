/*
 * config.c - densevm config files (INI, parsed with Debian's libinih):
 *
 *   [run]            defaults: timeout, guest
 *   [vm NAME]        one VM (or `count` of them): the keys of --vm
 *
 * Every error names FILE:LINE.  Later sections ([ksm], [policy], ...)
 * belong to their folders; an unknown section is an error, not ignored.
 */
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "ext.h"

struct cfg_ctx {
	const char *path;
	struct run_opts *opts;
	char cur_section[128];
	struct vm_spec *cur;
	const struct run_ext *ext;   /* owner of the current section */
	char msg[512];
	int failed;
};

static int handler(void *user, const char *section, const char *key,
		   const char *val)
{
	struct cfg_ctx *c = user;
	char err[400];

	if (c->failed)
		return 1;
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
				snprintf(c->msg, sizeof(c->msg), "more than %u VMs",
					 CLI_MAX_VMS);
				goto fail;
			}
			struct vm_spec *s = &c->opts->specs[c->opts->nspecs++];
			char origin[300];
			snprintf(origin, sizeof(origin), "%s [%s]", c->path, section);
			spec_init(s, origin);
			if (spec_set(s, "name", section + 3, err, sizeof(err))) {
				snprintf(c->msg, sizeof(c->msg), "[%s]: %s", section, err);
				goto fail;
			}
			c->cur = s;
		} else if (strcmp(section, "run")) {
			char known[256] = "[run], [vm NAME]";
			for (int i = 0; run_exts[i]; i++)
				if (run_exts[i]->section)
					snprintf(known + strlen(known),
						 sizeof(known) - strlen(known), ", [%s]",
						 run_exts[i]->section);
			snprintf(c->msg, sizeof(c->msg), "unknown section [%s] (known: "
				 "%s)", section, known);
			goto fail;
		}
	}
	if (c->ext) {
		if (!c->ext->config_key ||
		    c->ext->config_key(key, val, err, sizeof(err))) {
			snprintf(c->msg, sizeof(c->msg), "[%s] %s", section,
				 c->ext->config_key ? err : "takes no keys");
			goto fail;
		}
		return 1;
	}
	if (c->cur) {
		if (spec_set(c->cur, key, val, err, sizeof(err))) {
			snprintf(c->msg, sizeof(c->msg), "[%s] %s", section, err);
			goto fail;
		}
		return 1;
	}
	if (!*section) {
		snprintf(c->msg, sizeof(c->msg), "'%s' is outside any section", key);
		goto fail;
	}
	if (!strcmp(key, "timeout")) {
		char *end;
		c->opts->timeout = strtod(val, &end);
		if (end == val || *end || c->opts->timeout < 0) {
			snprintf(c->msg, sizeof(c->msg), "[run] timeout: '%s' must be "
				 "seconds >= 0", val);
			goto fail;
		}
	} else if (!strcmp(key, "guest")) {
		free(c->opts->owned);
		c->opts->owned = strdup(val);
		c->opts->guest_path = c->opts->owned;
	} else {
		snprintf(c->msg, sizeof(c->msg), "[run] unknown key '%s' (known: "
			 "timeout guest)", key);
		goto fail;
	}
	return 1;
fail:
	c->failed = 1;
	return 0;
}

int config_load(const char *path, struct run_opts *opts, char *err,
		size_t errlen)
{
	struct cfg_ctx c = { .path = path, .opts = opts };
	unsigned first = opts->nspecs;

	int line = ini_parse(path, handler, &c);
	if (line == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno ? errno : ENOENT));
		return -ENOENT;
	}
	if (line == -2) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	if (line > 0) {
		snprintf(err, errlen, "%s:%d: %s", path, line,
			 c.msg[0] ? c.msg : "syntax error (expected [section] or "
			 "key = value)");
		return -EINVAL;
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
