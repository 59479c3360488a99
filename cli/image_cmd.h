/*
 * image_cmd.h - `densevm image`: its subcommands (cli/image.c dispatches
 * and owns stat and synth; cli/image_capture.c owns capture).
 */
#ifndef DENSEVM_IMAGE_CMD_H
#define DENSEVM_IMAGE_CMD_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

int cmd_image(int argc, char **argv);
int cmd_image_capture(int argc, char **argv);

/* snprintf for paths and messages that hold paths: false when the text
 * was cut (callers of paths check it; a message may be cut). */
static inline bool __attribute__((format(printf, 3, 4)))
textf(char *out, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out, len, fmt, ap);
	va_end(ap);
	return n >= 0 && (size_t)n < len;
}

#endif
