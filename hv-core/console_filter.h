/*
 * console_filter.h - hv-core internal: turning a guest's hostile console
 * bytes into safe lines under a byte budget.  It knows nothing of VMs,
 * locks or clocks, so that the unit tests and the libFuzzer harness drive
 * the very code the VMs run (console.c is the VM glue around it).
 *
 * Not thread-safe: one caller at a time per filter (console.c holds the
 * VM's con_lock).  The rules are in console_filter.c's head comment.
 */
#ifndef DENSEVM_CONSOLE_FILTER_H
#define DENSEVM_CONSOLE_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hv.h"

/* One line: at most HV_CONSOLE_LINE bytes, NUL-terminated at line[len],
 * never a '\n' in it. */
typedef void (*con_emit_fn)(void *ctx, const char *line, size_t len);

struct con_filter {
	con_emit_fn emit;
	void *ctx;

	/* the line being assembled (escaped already) */
	char line[HV_CONSOLE_LINE + 1];
	size_t len;

	/* a UTF-8 sequence begun but not complete: its bytes so far, its
	 * length, and the range its next byte must be in */
	unsigned char seq[4];
	unsigned seq_len, seq_need;
	unsigned char next_lo, next_hi;
	bool cr;                 /* a CR waits to see whether '\n' follows */

	/* the budget: a token bucket of bytes (rate == HV_CONSOLE_UNLIMITED:
	 * no budget); tokens <= burst */
	uint64_t rate, burst, tokens, last_ns;
	uint64_t held_bytes, held_lines;     /* dropped since the last notice */
	uint64_t supp_bytes, supp_lines;     /* dropped in all */
};

/* rate/burst as in hv_vm_config (0 = the default); the bucket starts full
 * at now_ns.  Returns -EINVAL for a burst below one line. */
int con_filter_init(struct con_filter *f, uint64_t rate, uint64_t burst,
		    con_emit_fn emit, void *ctx, uint64_t now_ns);
/* Feeds guest bytes; lines go to emit as they complete. */
void con_filter_write(struct con_filter *f, const void *buf, size_t len,
		      uint64_t now_ns);
/* The guest is done (or stopped): ends a pending sequence, emits a partial
 * line and, when lines were dropped since the last one, the notice. */
void con_filter_flush(struct con_filter *f, uint64_t now_ns);

#endif
