/*
 * spec.c - VM specs: the key=value vocabulary shared by `--vm` and config
 * files (sizes: util/size.h), and the checks that give one clear line per error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "ext.h"

void spec_init(struct vm_spec *s, const char *origin)
{
	memset(s, 0, sizeof(*s));
	s->mem = 128ull << 20;
	s->cpus = 1;
	s->count = 1;
	s->kind = HV_GUEST_MICRO;
	snprintf(s->origin, sizeof(s->origin), "%s", origin);
}

void spec_vm_name(const struct vm_spec *s, unsigned k, unsigned n, char *buf,
		  size_t len)
{
	if (!s->name[0])
		snprintf(buf, len, "vm%u", n);
	else if (s->count > 1)
		snprintf(buf, len, "%s%u", s->name, k);
	else
		snprintf(buf, len, "%s", s->name);
}

const char *spec_ext(const struct vm_spec *s, const char *key)
{
	for (unsigned i = 0; i < s->next; i++)
		if (!strcmp(s->ext[i].key, key))
			return s->ext[i].val;
	return NULL;
}

/* Offers key to the extensions: 0 = one took it, -ENOENT = none did. */
static int ext_vm_key(struct vm_spec *s, const char *key, const char *val,
		      char *err, size_t errlen)
{
	for (int i = 0; run_exts[i]; i++) {
		if (!run_exts[i]->vm_key)
			continue;
		int rc = run_exts[i]->vm_key(key, val, err, errlen);
		if (rc == -ENOENT)
			continue;
		if (rc)
			return rc;
		for (unsigned k = 0; k < s->next; k++)
			if (!strcmp(s->ext[k].key, key)) {
				free(s->ext[k].val);
				s->ext[k].val = strdup(val);
				return 0;
			}
		if (s->next == sizeof(s->ext) / sizeof(s->ext[0]) ||
		    strlen(key) >= sizeof(s->ext[0].key)) {
			snprintf(err, errlen, "%s: too many extension keys", key);
			return -E2BIG;
		}
		snprintf(s->ext[s->next].key, sizeof(s->ext[0].key), "%s", key);
		s->ext[s->next++].val = strdup(val);
		return 0;
	}
	return -ENOENT;
}

void spec_free(struct vm_spec *s)
{
	for (unsigned i = 0; i < s->next; i++)
		free(s->ext[i].val);
	s->next = 0;
	free(s->image);
	free(s->initrd);
	free(s->cmdline);
	free(s->workload);
	s->image = s->initrd = s->cmdline = s->workload = NULL;
}

static int set_str(char **dst, const char *val)
{
	free(*dst);
	*dst = strdup(val);
	return *dst ? 0 : -ENOMEM;
}

static int parse_uint(const char *val, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	errno = 0;
	long v = strtol(val, &end, 10);
	if (errno || end == val || *end || v < (long)lo || v > (long)hi)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

int spec_set(struct vm_spec *s, const char *key, const char *val,
	     char *err, size_t errlen)
{
	if (!strcmp(key, "name")) {
		if (!*val || strlen(val) > 56 ||
		    strspn(val, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			   "0123456789_.-") != strlen(val)) {
			snprintf(err, errlen, "name: '%s' must be 1-56 characters of "
				 "[A-Za-z0-9_.-]", val);
			return -EINVAL;
		}
		snprintf(s->name, sizeof(s->name), "%s", val);
	} else if (!strcmp(key, "mem")) {
		if (parse_size(val, &s->mem)) {
			snprintf(err, errlen, "mem: '%s' is not a size (use e.g. 512M "
				 "or 2G)", val);
			return -EINVAL;
		}
	} else if (!strcmp(key, "cpus")) {
		if (parse_uint(val, 1, HV_MAX_VCPUS, &s->cpus)) {
			snprintf(err, errlen, "cpus: '%s' must be 1 to %u", val,
				 HV_MAX_VCPUS);
			return -EINVAL;
		}
	} else if (!strcmp(key, "count")) {
		if (parse_uint(val, 1, CLI_MAX_VMS, &s->count)) {
			snprintf(err, errlen, "count: '%s' must be 1 to %u", val,
				 CLI_MAX_VMS);
			return -EINVAL;
		}
	} else if (!strcmp(key, "kind")) {
		if (!strcmp(val, "micro"))
			s->kind = HV_GUEST_MICRO;
		else if (!strcmp(val, "linux"))
			s->kind = HV_GUEST_LINUX;
		else {
			snprintf(err, errlen, "kind: '%s' must be micro or linux", val);
			return -EINVAL;
		}
	} else if (!strcmp(key, "timeout")) {
		char *end;
		s->timeout = strtod(val, &end);
		if (end == val || *end || s->timeout < 0 || s->timeout > 1e7) {
			snprintf(err, errlen, "timeout: '%s' must be seconds >= 0", val);
			return -EINVAL;
		}
	} else if (!strcmp(key, "workload") || !strcmp(key, "args")) {
		return set_str(&s->workload, val);
	} else if (!strcmp(key, "kernel") || !strcmp(key, "image")) {
		return set_str(&s->image, val);
	} else if (!strcmp(key, "initrd")) {
		return set_str(&s->initrd, val);
	} else if (!strcmp(key, "cmdline")) {
		return set_str(&s->cmdline, val);
	} else {
		int rc = ext_vm_key(s, key, val, err, errlen);
		if (rc != -ENOENT)
			return rc;
		snprintf(err, errlen, "unknown key '%s' (known: name mem cpus kind "
			 "workload kernel initrd cmdline image count timeout, and the "
			 "per-VM keys in README.md)", key);
		return -EINVAL;
	}
	return 0;
}

int spec_parse(struct vm_spec *s, const char *text, char *err, size_t errlen)
{
	size_t n = strlen(text);
	char *buf = malloc(n + 1), *key, *val;
	const char *p = text;
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	while (*p && !rc) {
		char *o = buf;
		key = o;
		while (*p && *p != '=' && *p != ',')
			*o++ = *p++;
		*o++ = 0;
		if (*p != '=') {
			snprintf(err, errlen, "'%s' is not key=value", key);
			rc = -EINVAL;
			break;
		}
		p++;
		val = o;
		if (*p == '"') {
			p++;
			while (*p && *p != '"')
				*o++ = *p++;
			if (*p != '"') {
				snprintf(err, errlen, "%s: unterminated quote", key);
				rc = -EINVAL;
				break;
			}
			p++;
		} else {
			while (*p && *p != ',')
				*o++ = *p++;
		}
		*o = 0;
		if (*p && *p != ',') {
			snprintf(err, errlen, "%s: text after the closing quote", key);
			rc = -EINVAL;
			break;
		}
		if (*p == ',')
			p++;
		rc = spec_set(s, key, val, err, errlen);
	}
	free(buf);
	return rc;
}

int spec_check(const struct vm_spec *s, char *err, size_t errlen)
{
	if (s->kind == HV_GUEST_LINUX && !s->image) {
		snprintf(err, errlen, "kernel: required for kind=linux");
		return -EINVAL;
	}
	if (s->kind == HV_GUEST_MICRO && !s->workload) {
		snprintf(err, errlen, "workload: required for kind=micro (e.g. "
			 "workload=\"verify mib=64\")");
		return -EINVAL;
	}
	if (s->kind == HV_GUEST_MICRO && (s->initrd || s->cmdline)) {
		snprintf(err, errlen, "%s: only for kind=linux",
			 s->initrd ? "initrd" : "cmdline");
		return -EINVAL;
	}
	return 0;
}
