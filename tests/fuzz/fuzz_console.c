/*
 * fuzz_console.c - libFuzzer harness for hv-core's console filter
 * (console_filter.c: what every VM's console bytes go through).
 *
 * Owns: feeding arbitrary guest bytes in arbitrary chunks, with the clock
 * moving between them and flushes in between, to two filters at once: one
 * under the budget the input chooses, one without a budget.  It checks:
 *   - every emitted line holds at most HV_CONSOLE_LINE bytes, is
 *     NUL-terminated at its length and is well-formed UTF-8 (RFC 3629)
 *     with no control character but tab: no C0, no DEL, no C1, no '\n',
 *     and no U+2028/2029 or bidi control either;
 *   - both filters cut the same lines: the budgeted one's emitted bytes
 *     plus its suppressed bytes equal the unbudgeted one's bytes (lines
 *     are dropped whole and counted exactly);
 *   - the budgeted one never emits more than its burst plus its rate
 *     times the time that passed;
 *   - after the last flush no drop is left unannounced (a notice line
 *     came for every drop).
 * A failed check abort()s.
 *
 * Input format: byte 0 picks the budget (% 4: 0 none, 1 the default,
 * 2 100 bytes/s with one line of burst, 3 rate and burst from the next
 * two u16s: rate = v+1, burst = v + 257).  Then chunks: a length byte
 * (255 = flush instead), a time byte (the clock moves on t*t ms) and
 * that many data bytes (fewer at the end of the input).
 * Built by `make fuzz-console` (clang -fsanitize=fuzzer) and, with
 * replay_main.c, by `make test` (any compiler).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hv-core/console_filter.h"

#define CHECK(c)                                                             \
	do {                                                                 \
		if (!(c)) {                                                  \
			fprintf(stderr, "fuzz_console: %s:%d: %s\n", __FILE__, \
				__LINE__, #c);                               \
			abort();                                             \
		}                                                            \
	} while (0)

struct out {
	const struct con_filter *f;
	uint64_t bytes;      /* guest lines, newline counted; notices not */
	uint64_t notices;
};

/* A guest may write "[densevm: ..." itself; what tells a notice is that it
 * is not the filter's own line buffer. */
static bool is_notice(const struct out *o, const char *l)
{
	return l != o->f->line;
}

/* Well-formed UTF-8 of allowed characters only. */
static void check_line(const char *line, size_t len)
{
	const unsigned char *p = (const unsigned char *)line;

	CHECK(len <= HV_CONSOLE_LINE);
	CHECK(p[len] == 0);
	for (size_t i = 0; i < len;) {
		unsigned char b = p[i];
		if (b < 0x80) {
			CHECK(b == '\t' || (b >= 0x20 && b < 0x7f));
			i++;
			continue;
		}
		unsigned need = b >= 0xc2 && b <= 0xdf ? 2 :
				b >= 0xe0 && b <= 0xef ? 3 :
				b >= 0xf0 && b <= 0xf4 ? 4 : 0;
		CHECK(need && i + need <= len);
		uint32_t cp = b & (0x7f >> need);
		for (unsigned k = 1; k < need; k++) {
			CHECK((p[i + k] & 0xc0) == 0x80);
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
		CHECK(cp >= min[need] && cp <= 0x10ffff);
		CHECK(cp < 0xd800 || cp > 0xdfff);
		CHECK(cp > 0x9f);
		CHECK(cp != 0x2028 && cp != 0x2029);
		CHECK(!(cp >= 0x202a && cp <= 0x202e));
		CHECK(!(cp >= 0x2066 && cp <= 0x2069));
		i += need;
	}
}

static void on_line(void *ctx, const char *line, size_t len)
{
	struct out *o = ctx;
	check_line(line, len);
	if (is_notice(o, line))
		o->notices++;
	else
		o->bytes += len + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct con_filter lim, all;
	struct out ol = { .f = &lim }, oa = { .f = &all };
	uint64_t rate = 0, burst = 0, now = 1000000000ull, t0 = now;
	size_t i = 0;

	if (size == 0)
		return 0;
	switch (data[i++] % 4) {
	case 0: rate = HV_CONSOLE_UNLIMITED; break;
	case 1: break;
	case 2: rate = 100; burst = HV_CONSOLE_LINE + 1; break;
	default:
		if (size < i + 4)
			return 0;
		rate = (uint64_t)(data[i] | data[i + 1] << 8) + 1;
		burst = (uint64_t)(data[i + 2] | data[i + 3] << 8) + HV_CONSOLE_LINE + 1;
		i += 4;
	}
	CHECK(con_filter_init(&lim, rate, burst, on_line, &ol, now) == 0);
	CHECK(con_filter_init(&all, HV_CONSOLE_UNLIMITED, 0, on_line, &oa, now) == 0);
	while (i + 2 <= size) {
		size_t n = data[i];
		uint64_t t = data[i + 1];
		i += 2;
		now += t * t * 1000000ull;
		if (n == 255) {
			con_filter_flush(&lim, now);
			con_filter_flush(&all, now);
			continue;
		}
		if (n > size - i)
			n = size - i;
		con_filter_write(&lim, data + i, n, now);
		con_filter_write(&all, data + i, n, now);
		i += n;
	}
	con_filter_flush(&lim, now);
	con_filter_flush(&all, now);

	CHECK(oa.notices == 0 && all.supp_bytes == 0);
	CHECK(ol.bytes + lim.supp_bytes == oa.bytes);
	CHECK(lim.held_lines == 0 && lim.held_bytes == 0);
	CHECK((lim.supp_lines == 0) == (ol.notices == 0));
	CHECK(ol.notices <= lim.supp_lines);
	if (lim.rate != HV_CONSOLE_UNLIMITED) {
		unsigned __int128 earned =
			(unsigned __int128)(now - t0) * lim.rate / 1000000000u;
		CHECK(ol.bytes <= lim.burst + earned);
	}
	return 0;
}
