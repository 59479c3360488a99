/*
 * console_filter.c - a guest's console bytes to safe lines, under a budget.
 *
 * Guest text is hostile: it must not drive the operator's terminal (ESC
 * and CSI/OSC sequences, BEL, BS, a lone CR that rewrites the line, C1
 * controls), confuse what is shown (bidi overrides, line separators) or
 * flood it.  The rules, byte by byte, with state kept across writes (a
 * sequence split between two HC_CONSOLE calls or two serial bytes is the
 * same as one written whole):
 *   - printable ASCII (0x20-0x7e) and '\t' pass;
 *   - '\n' ends the line; "\r\n" ends it too (the CR is dropped: Linux's
 *     serial console writes it); any other CR is escaped (a lone CR would
 *     let the guest overwrite what the line showed);
 *   - every other byte below 0x80 (C0 controls, ESC, DEL) is written as
 *     the four characters \xHH, so ESC [ 2 J shows as `\x1b[2J`;
 *   - well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, nothing
 *     above U+10FFFF) of a printable character passes whole;
 *   - well-formed UTF-8 of C1 controls (U+0080-U+009F), U+2028/U+2029 and
 *     the bidi embeddings, overrides and isolates (U+202A-U+202E,
 *     U+2066-U+2069) is escaped byte by byte: `\xc2\x9b`;
 *   - ill-formed UTF-8 is escaped, not replaced with U+FFFD: each byte of
 *     the longest ill-formed prefix (a bad lead byte, a stray continuation
 *     byte, a sequence cut short by a bad byte, a newline or the end of
 *     output) becomes \xHH, so the operator sees exactly what was sent,
 *     and the byte that broke the sequence is then read afresh.
 * A backslash passes as itself: `\x1b` in the output may be guest text.
 * That is ambiguous to read but cannot reach the terminal as a control.
 *
 * Lines: at most HV_CONSOLE_LINE bytes of output.  A longer line is split
 * before the piece that would not fit; a piece (one escape, one UTF-8
 * character) is never split, so no line ends inside an escape or a
 * character, and the buffer cannot overflow however many bytes expand.
 *
 * Budget: a token bucket over the bytes of emitted lines, each line's
 * newline counted (so an escaped flood pays for its 4x expansion):
 * `rate` bytes per second, at most `burst` at once.  A line that does not
 * fit the tokens left is dropped whole, and counted.  Once lines are
 * dropped, none passes again until half the burst has come back
 * (hysteresis: a flood at any pace gets one notice per burst/2/rate
 * seconds).  Before the next line that passes, and at flush, one notice
 * line says how much was dropped; the notice itself is free (there is at
 * most one per emitted line).  The counts are of output bytes, i.e. after
 * escaping, with each line's newline.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "console_filter.h"

#define NS 1000000000u

int con_filter_init(struct con_filter *f, uint64_t rate, uint64_t burst,
		    con_emit_fn emit, void *ctx, uint64_t now_ns)
{
	if (burst && burst < HV_CONSOLE_LINE + 1)
		return -EINVAL;
	memset(f, 0, sizeof(*f));
	f->emit = emit;
	f->ctx = ctx;
	f->rate = rate ? rate : HV_CONSOLE_RATE_DEFAULT;
	f->burst = burst ? burst : HV_CONSOLE_BURST_DEFAULT;
	f->tokens = f->burst;
	f->last_ns = now_ns;
	return 0;
}

/* Adds the tokens earned since last_ns.  last_ns advances only by the time
 * the whole tokens added stand for, so slow rates lose no fractions. */
static void refill(struct con_filter *f, uint64_t now)
{
	if (now <= f->last_ns)
		return;
	unsigned __int128 add = (unsigned __int128)(now - f->last_ns) * f->rate / NS;
	if (add >= f->burst - f->tokens) {
		f->tokens = f->burst;
		f->last_ns = now;
		return;
	}
	f->tokens += (uint64_t)add;
	f->last_ns += (uint64_t)(add * NS / f->rate);
}

static void notice(struct con_filter *f)
{
	char msg[HV_CONSOLE_LINE + 1];
	int n = snprintf(msg, sizeof(msg), "[densevm: %llu bytes in %llu lines of "
			 "console output suppressed: over %llu bytes/s]",
			 (unsigned long long)f->held_bytes,
			 (unsigned long long)f->held_lines,
			 (unsigned long long)f->rate);
	f->held_bytes = f->held_lines = 0;
	f->emit(f->ctx, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
}

static void end_line(struct con_filter *f, uint64_t now)
{
	uint64_t cost = f->len + 1;

	if (f->rate != HV_CONSOLE_UNLIMITED) {
		refill(f, now);
		/* once dropping, resume only at half a burst: a sustained
		 * flood then gets a notice per burst/2/rate seconds, not
		 * one per line that would just fit */
		uint64_t need = cost;
		if (f->held_lines && need < f->burst / 2)
			need = f->burst / 2;
		if (f->tokens < need) {
			f->held_bytes += cost;
			f->held_lines++;
			f->supp_bytes += cost;
			f->supp_lines++;
			f->len = 0;
			return;
		}
		f->tokens -= cost;
	}
	if (f->held_lines)
		notice(f);
	f->line[f->len] = 0;
	f->emit(f->ctx, f->line, f->len);
	f->len = 0;
}

/* Appends one piece of output (<= 4 bytes), ending the line first when it
 * would not fit. */
static void put(struct con_filter *f, const void *p, size_t n, uint64_t now)
{
	if (f->len + n > HV_CONSOLE_LINE)
		end_line(f, now);
	memcpy(f->line + f->len, p, n);
	f->len += n;
}

static void put_escape(struct con_filter *f, unsigned char b, uint64_t now)
{
	static const char hex[] = "0123456789abcdef";
	char e[4] = { '\\', 'x', hex[b >> 4], hex[b & 15] };
	put(f, e, 4, now);
}

/* Escapes the bytes of an unfinished (or unwanted) sequence. */
static void escape_seq(struct con_filter *f, uint64_t now)
{
	for (unsigned i = 0; i < f->seq_len; i++)
		put_escape(f, f->seq[i], now);
	f->seq_len = f->seq_need = 0;
}

/* Code points that are well-formed but must not reach a terminal as they
 * are: C1 controls, line/paragraph separators, bidi controls. */
static bool cp_hidden(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
	       (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

static void seq_done(struct con_filter *f, uint64_t now)
{
	uint32_t cp = f->seq[0] & (0x7f >> f->seq_need);
	for (unsigned i = 1; i < f->seq_need; i++)
		cp = cp << 6 | (f->seq[i] & 0x3f);
	if (cp_hidden(cp)) {
		escape_seq(f, now);
		return;
	}
	put(f, f->seq, f->seq_need, now);
	f->seq_len = f->seq_need = 0;
}

/* A byte outside any sequence. */
static void start_byte(struct con_filter *f, unsigned char b, uint64_t now)
{
	if (f->cr) {
		f->cr = false;
		if (b == '\n') {
			end_line(f, now);
			return;
		}
		put_escape(f, '\r', now);
	}
	if (b == '\n') {
		end_line(f, now);
	} else if (b == '\r') {
		f->cr = true;
	} else if (b == '\t' || (b >= 0x20 && b < 0x7f)) {
		put(f, &b, 1, now);
	} else if (b < 0xc2 || b > 0xf4) {
		/* C0, DEL, continuation bytes, C0/C1 (overlong) and F5-FF */
		put_escape(f, b, now);
	} else {
		/* a lead byte; the second byte's range excludes overlongs
		 * (E0, F0), surrogates (ED) and values above U+10FFFF (F4) */
		f->seq[0] = b;
		f->seq_len = 1;
		f->seq_need = b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
		f->next_lo = b == 0xe0 ? 0xa0 : b == 0xf0 ? 0x90 : 0x80;
		f->next_hi = b == 0xed ? 0x9f : b == 0xf4 ? 0x8f : 0xbf;
	}
}

void con_filter_write(struct con_filter *f, const void *buf, size_t len,
		      uint64_t now_ns)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < len; i++) {
		unsigned char b = p[i];
		if (f->seq_need) {
			if (b >= f->next_lo && b <= f->next_hi) {
				f->seq[f->seq_len++] = b;
				f->next_lo = 0x80;
				f->next_hi = 0xbf;
				if (f->seq_len == f->seq_need)
					seq_done(f, now_ns);
				continue;
			}
			escape_seq(f, now_ns);  /* then b starts afresh */
		}
		start_byte(f, b, now_ns);
	}
}

void con_filter_flush(struct con_filter *f, uint64_t now_ns)
{
	escape_seq(f, now_ns);
	if (f->cr) {
		f->cr = false;
		put_escape(f, '\r', now_ns);
	}
	if (f->len)
		end_line(f, now_ns);
	if (f->held_lines)
		notice(f);
}
