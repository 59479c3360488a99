/*
 * ini_file.c - the INI reader under the run config and the bench scenario
 * files (ini_file.h): inih parses, this file feeds it lines and keeps
 * what inih does not tell its handler (line numbers, empty sections,
 * repeated sections: inih would merge two [vm a] into one).
 *
 * The reader takes whole lines with getline() and hands inih one line per
 * call, so inih's line numbers are ours.  inih's buffer is INI_MAX_LINE
 * (200) bytes: a longer comment is passed on cut short (it means nothing),
 * a longer key or header is refused, since inih would cut it and read its
 * tail as a line of its own.
 */
#include <errno.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>
#include "ini_file.h"

static int refuse(struct ini_file *f, int line)
{
	f->err_line = line;
	return -1;
}

/* A header as inih reads it: leading blanks, '[', the name up to ']'. */
static int check_header(struct ini_file *f, const char *l)
{
	if (f->line == 1 && !strncmp(l, "\xEF\xBB\xBF", 3))
		l += 3;   /* a UTF-8 BOM, which inih skips too */
	while (*l == ' ' || *l == '\t')
		l++;
	if (*l != '[')
		return 0;
	const char *end = strchr(l + 1, ']');
	if (!end)
		return 0;   /* inih reports the syntax error */
	char name[sizeof(f->sect[0].name)];
	snprintf(name, sizeof(name), "%.*s", (int)(end - l - 1), l + 1);
	int prev = ini_file_section_line(f, name);
	if (prev) {
		snprintf(f->msg, sizeof(f->msg), "[%s] repeats %s:%d", name,
			 f->path, prev);
		return refuse(f, f->line);
	}
	if (f->section && f->section(f->user, name, f->line, f->msg,
				     sizeof(f->msg)))
		return refuse(f, f->line);
	if (f->nsect == f->capsect) {
		unsigned cap = f->capsect ? 2 * f->capsect : 16;
		struct ini_section *s = realloc(f->sect, cap * sizeof(*s));
		if (!s) {
			snprintf(f->msg, sizeof(f->msg), "out of memory");
			return refuse(f, f->line);
		}
		f->sect = s;
		f->capsect = cap;
	}
	snprintf(f->sect[f->nsect].name, sizeof(f->sect[0].name), "%s", name);
	f->sect[f->nsect++].line = f->line;
	return 0;
}

/* fgets for inih: one whole line per call; a refusal ends the file. */
static char *reader(char *buf, int size, void *user)
{
	struct ini_file *f = user;
	if (f->err_line)
		return NULL;
	ssize_t n = getline(&f->lbuf, &f->lcap, f->fp);
	if (n < 0)
		return NULL;
	f->line++;
	if (check_header(f, f->lbuf))
		return NULL;
	/* the newline does not count: inih strips it anyway */
	if (n && f->lbuf[n - 1] == '\n')
		f->lbuf[--n] = 0;
	if (n < size) {
		memcpy(buf, f->lbuf, n + 1);
		return buf;
	}
	const char *l = f->lbuf;
	if (f->line == 1 && !strncmp(l, "\xEF\xBB\xBF", 3))
		l += 3;
	l += strspn(l, " \t");
	if (*l == ';' || *l == '#') {
		snprintf(buf, size, "#\n");
		return buf;
	}
	snprintf(f->msg, sizeof(f->msg), "line longer than %d characters",
		 size - 1);
	refuse(f, f->line);
	return NULL;
}

static int handler(void *user, const char *section, const char *key,
		   const char *val)
{
	struct ini_file *f = user;
	if (f->err_line)
		return 0;
	if (!*section) {
		snprintf(f->msg, sizeof(f->msg), "'%s' is outside any section", key);
		return refuse(f, f->line), 0;
	}
	if (f->key(f->user, section, key, val, f->msg, sizeof(f->msg)))
		return refuse(f, f->line), 0;
	return 1;
}

int ini_file_parse(struct ini_file *f, char *err, size_t errlen)
{
	f->fp = fopen(f->path, "re");
	if (!f->fp) {
		snprintf(err, errlen, "%s: %s", f->path,
			 strerror(errno ? errno : ENOENT));
		return -ENOENT;
	}
	int line = ini_parse_stream(reader, f, handler, f);
	fclose(f->fp);
	f->fp = NULL;
	if (f->err_line) {
		snprintf(err, errlen, "%s:%d: %s", f->path, f->err_line, f->msg);
		return -EINVAL;
	}
	if (line == -2) {
		snprintf(err, errlen, "%s: out of memory", f->path);
		return -ENOMEM;
	}
	if (line) {
		snprintf(err, errlen, "%s:%d: syntax error (expected [section] or "
			 "key = value)", f->path, line > 0 ? line : 0);
		return -EINVAL;
	}
	return 0;
}

void ini_file_free(struct ini_file *f)
{
	free(f->lbuf);
	free(f->sect);
	f->lbuf = NULL;
	f->sect = NULL;
	f->lcap = 0;
	f->nsect = f->capsect = 0;
}

int ini_file_section_line(const struct ini_file *f, const char *name)
{
	for (unsigned i = 0; i < f->nsect; i++)
		if (!strcmp(f->sect[i].name, name))
			return f->sect[i].line;
	return 0;
}

int ini_file_unknown(char *msg, size_t msglen, const char *name,
		     const char *known)
{
	snprintf(msg, msglen, "unknown section [%s] (known: %s)", name, known);
	return -1;
}
