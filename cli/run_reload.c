/*
 * run_reload.c - re-reading a running `densevm run`'s config files: they
 * are parsed into a fresh run_opts (never into the live run_config), and
 * only when every file parses does each extension's reload hook see the
 * result.  VMs are not added or removed by a reload: an extension looks its
 * VMs up by name in the new specs (run_opts_spec_of).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ext.h"

static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;

const struct vm_spec *run_opts_spec_of(const struct run_opts *o,
				       const char *name)
{
	char buf[72];
	unsigned n = 0;
	for (unsigned i = 0; i < o->nspecs; i++)
		for (unsigned k = 0; k < o->specs[i].count; k++, n++) {
			spec_vm_name(&o->specs[i], k, n, buf, sizeof(buf));
			if (!strcmp(buf, name))
				return &o->specs[i];
		}
	return NULL;
}

int run_reload(struct run_state *rs, char *err, size_t errlen)
{
	struct run_opts o = { 0 };
	int rc = 0;

	if (!rs->nconfig) {
		snprintf(err, errlen, "no --config file to reload");
		return -ENOENT;
	}
	o.specs = calloc(CLI_MAX_VMS, sizeof(*o.specs));
	if (!o.specs) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_lock(&reload_lock);
	run_config_init(&o.cfg);
	for (unsigned i = 0; i < rs->nconfig && !rc; i++)
		rc = config_load(rs->config[i], &o, err, errlen);
	for (int e = 0; !rc && run_exts[e]; e++)
		if (run_exts[e]->reload) {
			char m[400];
			rc = run_exts[e]->reload(rs, &o, m, sizeof(m));
			if (rc)
				snprintf(err, errlen, "%s: %s", run_exts[e]->name, m);
		}
	pthread_mutex_unlock(&reload_lock);
	for (unsigned i = 0; i < o.nspecs; i++)
		spec_free(&o.specs[i]);
	free(o.specs);
	free(o.owned);
	return rc;
}
