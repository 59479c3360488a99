/*
 * config.c - densevm config files (INI, parsed with Debian's libinih):
 *
 *   [run]            defaults: timeout, guest
 *   [vm NAME]        one VM (or `count` of them): the keys of --vm
 *
 * Every error names FILE:LINE.  Later sections ([ksm], [policy], ...)
 * belong to their folders; an unknown section is an error, not ignored,
 * and so is a repeated one (inih would merge two [vm a] into one VM).
 * inih tells its handler neither line numbers nor empty sections, so the
 * line reader below counts lines and checks each header as it goes by.
 */
#include <errno.h>
#include <ini.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "ext.h"

#define CFG_MAX_SECTIONS (CLI_MAX_VMS + 16)

struct cfg_ctx {
	const char *path;
	FILE *f;
	int line;           /* lines fully read so far */
	bool midline;       /* the last chunk did not end its line */
	int err_line;       /* a header the reader refused */
	unsigned nsect;
	struct { char name[128]; int line; } sect[CFG_MAX_SECTIONS];
	struct run_opts *opts;
	char cur_section[128];
	struct vm_spec *cur;
	const struct run_ext *ext;   /* owner of the current section */
	char msg[512];
	int failed;
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

/* A header as inih reads it: leading blanks, '[', the name up to ']'. */
static void check_header(struct cfg_ctx *c, const char *chunk, int line)
{
	if (line == 1 && !strncmp(chunk, "\xEF\xBB\xBF", 3))
		chunk += 3;   /* a UTF-8 BOM, which inih skips too */
	while (*chunk == ' ' || *chunk == '\t')
		chunk++;
	if (*chunk != '[')
		return;
	const char *end = strchr(chunk + 1, ']');
	if (!end)
		return;   /* inih reports the syntax error */
	char name[128];
	snprintf(name, sizeof(name), "%.*s", (int)(end - chunk - 1), chunk + 1);
	for (unsigned i = 0; i < c->nsect; i++)
		if (!strcmp(c->sect[i].name, name)) {
			snprintf(c->msg, sizeof(c->msg), "[%s] repeats %s:%d", name,
				 c->path, c->sect[i].line);
			goto refuse;
		}
	if (!section_known(name)) {
		char known[256];
		known_sections(known, sizeof(known));
		snprintf(c->msg, sizeof(c->msg), "unknown section [%s] (known: %s)",
			 name, known);
		goto refuse;
	}
	if (c->nsect == CFG_MAX_SECTIONS) {
		snprintf(c->msg, sizeof(c->msg), "more than %d sections",
			 CFG_MAX_SECTIONS);
		goto refuse;
	}
	snprintf(c->sect[c->nsect].name, sizeof(c->sect[0].name), "%s", name);
	c->sect[c->nsect++].line = line;
	for (int i = 0; run_exts[i]; i++)
		if (run_exts[i]->section && !strcmp(run_exts[i]->section, name) &&
		    run_exts[i]->config_section)
			run_exts[i]->config_section(&c->opts->cfg);
	return;
refuse:
	c->failed = 1;
	c->err_line = line;
}

/* fgets for inih: counts lines (a long line comes in several chunks) and
 * checks headers; a refused header ends the file early. */
static char *reader(char *buf, int size, void *user)
{
	struct cfg_ctx *c = user;
	if (c->failed || !fgets(buf, size, c->f))
		return NULL;
	if (!c->midline)
		check_header(c, buf, c->line + 1);
	c->midline = !strchr(buf, '\n');
	if (!c->midline)
		c->line++;
	return c->failed ? NULL : buf;
}

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
			/* check_header refuses these; kept for safety */
			snprintf(c->msg, sizeof(c->msg), "unknown section [%s]", section);
			goto fail;
		}
	}
	if (c->ext) {
		if (!c->ext->config_key ||
		    c->ext->config_key(&c->opts->cfg, key, val, err, sizeof(err))) {
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
	unsigned first = opts->nspecs;

	c.f = fopen(path, "re");
	if (!c.f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno ? errno : ENOENT));
		return -ENOENT;
	}
	int line = ini_parse_stream(reader, &c, handler, &c);
	fclose(c.f);
	if (c.err_line) {
		snprintf(err, errlen, "%s:%d: %s", path, c.err_line, c.msg);
		return -EINVAL;
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
