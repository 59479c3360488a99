/*
 * args.c - the workload argument string.
 *
 * Owns: splitting bootinfo.args ("workload key=value key=value ...") and
 * typed, range-checked access to the values.  Every error prints one line
 * that names the offending word and the workload's usage, then exits with
 * status 2, so a host test sees exactly what it got wrong.  A key nobody
 * asked for is an error too (args_done), which catches typos.
 */
#include "workload.h"

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const char *wl_name(const struct wl_args *a)
{
	return a->wl ? a->wl->name : a->name;
}

void args_fail(struct wl_args *a, const char *fmt, ...)
{
	va_list ap;
	gprintf("args: ");
	va_start(ap, fmt);
	gvprintf(fmt, ap);
	va_end(ap);
	gprintf("\n");
	if (a->wl)
		gprintf("args: usage: %s %s\n", a->wl->name, a->wl->usage);
	guest_exit(GUEST_EXIT_BADARGS);
}

void args_split(struct wl_args *a, const char *src)
{
	size_t len = 0;
	while (len < HV_ARGS_MAX - 1 && src[len])
		len++;
	memcpy(a->buf, src, len);
	a->buf[len] = '\0';
	a->name = "";
	a->n = 0;
	a->wl = 0;

	char *s = a->buf;
	bool first = true;
	for (;;) {
		while (is_space(*s))
			*s++ = '\0';
		if (!*s)
			break;
		char *word = s;
		while (*s && !is_space(*s))
			s++;
		if (*s)
			*s++ = '\0';
		if (first) {
			a->name = word;
			first = false;
			continue;
		}
		char *eq = word;
		while (*eq && *eq != '=')
			eq++;
		if (!*eq || eq == word)
			args_fail(a, "'%s' is not key=value (workload '%s')",
				  word, a->name);
		*eq = '\0';
		for (unsigned i = 0; i < a->n; i++)
			if (!gstrcmp(a->kv[i].key, word))
				args_fail(a, "key '%s' given twice", word);
		if (a->n == WL_MAX_KEYS)
			args_fail(a, "more than %d keys", WL_MAX_KEYS);
		a->kv[a->n].key = word;
		a->kv[a->n].val = eq + 1;
		a->kv[a->n].used = false;
		a->n++;
	}
}

/* The value of key (marking it used), or NULL when absent. */
static const char *lookup(struct wl_args *a, const char *key)
{
	for (unsigned i = 0; i < a->n; i++) {
		if (!gstrcmp(a->kv[i].key, key)) {
			a->kv[i].used = true;
			return a->kv[i].val;
		}
	}
	return 0;
}

bool args_has(struct wl_args *a, const char *key)
{
	for (unsigned i = 0; i < a->n; i++)
		if (!gstrcmp(a->kv[i].key, key))
			return true;
	return false;
}

int64_t args_int(struct wl_args *a, const char *key, int64_t def,
		 int64_t min, int64_t max)
{
	const char *v = lookup(a, key);
	int64_t x;
	if (!v)
		return def;
	if (!parse_i64(v, &x) || x < min || x > max)
		args_fail(a, "bad value '%s' for key '%s' of workload '%s' "
			  "(want an integer in [%ld, %ld])",
			  v, key, wl_name(a), min, max);
	return x;
}

int64_t args_need(struct wl_args *a, const char *key, int64_t min,
		  int64_t max)
{
	if (!args_has(a, key))
		args_fail(a, "workload '%s' needs %s=", wl_name(a), key);
	return args_int(a, key, 0, min, max);
}

uint64_t args_u64(struct wl_args *a, const char *key, uint64_t def)
{
	const char *v = lookup(a, key);
	int64_t x;
	if (!v)
		return def;
	if (!parse_i64(v, &x))
		args_fail(a, "bad value '%s' for key '%s' of workload '%s' "
			  "(want a decimal or 0x hex integer)",
			  v, key, wl_name(a));
	return (uint64_t)x;
}

void args_done(struct wl_args *a)
{
	for (unsigned i = 0; i < a->n; i++)
		if (!a->kv[i].used)
			args_fail(a, "unknown key '%s' for workload '%s'",
				  a->kv[i].key, wl_name(a));
}
