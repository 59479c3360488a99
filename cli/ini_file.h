/*
 * ini_file.h - the INI file reader that the run config (config.c) and the
 * bench scenario files (bench_scenario.c) share, on top of Debian's
 * libinih: it counts lines, skips a UTF-8 BOM, refuses over-long lines,
 * refuses a repeated section (naming both lines) and formats every error
 * as "FILE:LINE: why".  What a section or key means is the caller's.
 */
#ifndef DENSEVM_CLI_INI_FILE_H
#define DENSEVM_CLI_INI_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct ini_section {
	char name[128];
	int line;
};

struct ini_file {
	/* set by the caller */
	const char *path;
	void *user;
	/* A new section's header, at `line`, before inih sees it (a repeated
	 * one never gets here).  0 takes it; -1 refuses it with a message in
	 * msg (ini_file_unknown() words the unknown-section one). */
	int (*section)(void *user, const char *name, int line, char *msg,
		       size_t msglen);
	/* A key of `section` (never outside one); -1 with msg refuses it. */
	int (*key)(void *user, const char *section, const char *key,
		   const char *val, char *msg, size_t msglen);

	/* the reader's own */
	FILE *fp;
	char *lbuf;
	size_t lcap;
	int line;          /* lines read so far: the current one in a callback */
	int err_line;      /* the line a callback or the reader refused */
	char msg[512];
	struct ini_section *sect;   /* the headers taken, in order */
	unsigned nsect, capsect;
};

/* Parses f->path.  0, or -ENOENT / -EINVAL / -ENOMEM with "FILE: why" or
 * "FILE:LINE: why" in err.  Call ini_file_free() after it either way. */
int ini_file_parse(struct ini_file *f, char *err, size_t errlen);
void ini_file_free(struct ini_file *f);

/* The line of section `name`'s header, or 0 when the file has none. */
int ini_file_section_line(const struct ini_file *f, const char *name);

/* "unknown section [NAME] (known: KNOWN)" into msg; returns -1. */
int ini_file_unknown(char *msg, size_t msglen, const char *name,
		     const char *known);

#endif
