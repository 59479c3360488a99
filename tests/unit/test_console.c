/*
 * test_console.c - hv-core's console filter (console_filter.c), the code
 * every VM's console output goes through, driven directly with a fake
 * clock: escaping of controls (ESC/CSI/OSC, BEL, BS, CR, DEL, NUL, C1 raw
 * and in UTF-8, bidi overrides), ill-formed UTF-8, pass-through of
 * well-formed UTF-8, sequences split across writes, line splitting, and
 * the per-VM byte budget.  Needs no /dev/kvm.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testvm.h"
#include "console_filter.h"

#define MAXL 8192

struct cap {
	char *lines[MAXL];
	unsigned n;
	uint64_t bytes;       /* emitted, newlines counted, notices not */
	const char *tag;      /* prefixed, for the two-VM case */
	struct cap *shared;   /* two filters into one log */
};

static void on_line(void *ctx, const char *line, size_t len)
{
	struct cap *c = ctx;
	struct cap *log = c->shared ? c->shared : c;
	char buf[HV_CONSOLE_LINE + 64];

	assert_true(len <= HV_CONSOLE_LINE);
	assert_int_equal(line[len], 0);
	assert_int_equal(strlen(line), len);
	assert_true(log->n < MAXL);
	snprintf(buf, sizeof(buf), "%s%s", c->tag ? c->tag : "", line);
	log->lines[log->n++] = strdup(buf);
	if (strncmp(line, "[densevm: ", 10))
		c->bytes += len + 1;
}

static void cap_free(struct cap *c)
{
	for (unsigned i = 0; i < c->n; i++)
		free(c->lines[i]);
	memset(c, 0, sizeof(*c));
}

static struct con_filter f;
static struct cap cap;

static void unlimited(void)
{
	cap_free(&cap);
	assert_int_equal(con_filter_init(&f, HV_CONSOLE_UNLIMITED, 0, on_line,
					 &cap, 0), 0);
}

/* Feeds s whole and then byte by byte into a fresh filter; both must give
 * exactly the one line `want`. */
static void expect1(const char *s, size_t len, const char *want)
{
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		unlimited();
		if (bytewise)
			for (size_t i = 0; i < len; i++)
				con_filter_write(&f, s + i, 1, 0);
		else
			con_filter_write(&f, s, len, 0);
		con_filter_flush(&f, 0);
		if (cap.n != 1 || strcmp(cap.lines[0], want))
			fail_msg("%s: %u lines, first '%s', want '%s'",
				 bytewise ? "bytewise" : "whole", cap.n,
				 cap.n ? cap.lines[0] : "", want);
	}
}
#define EXPECT1(lit, want) expect1(lit, sizeof(lit) - 1, want)

static void escapes_controls(void **state)
{
	(void)state;
	EXPECT1("\x1b[31mred\x1b[0m\n", "\\x1b[31mred\\x1b[0m");
	EXPECT1("\x1b]0;pwned\x07tail\n", "\\x1b]0;pwned\\x07tail");
	EXPECT1("\x1b]52;c;ZXZpbA==\x1b\\\n", "\\x1b]52;c;ZXZpbA==\\x1b\\");
	EXPECT1("ab\b\bxy\x7f\n", "ab\\x08\\x08xy\\x7f");
	EXPECT1("nul\0byte\n", "nul\\x00byte");
	EXPECT1("a\tb\x0c\x0b\n", "a\tb\\x0c\\x0b");
	/* a lone CR is escaped; CR LF is a line end, split or not */
	EXPECT1("secret\rpublic\n", "secret\\x0dpublic");
	EXPECT1("dos line\r\n", "dos line");
	EXPECT1("two\r\r\n", "two\\x0d");
	EXPECT1("end\r", "end\\x0d");
	/* raw C1 bytes (CSI 0x9b, OSC 0x9d) and C1 in UTF-8 (NEL, CSI) */
	EXPECT1("\x9b" "2J\x9d\n", "\\x9b2J\\x9d");
	EXPECT1("\xc2\x85nel\xc2\x9b" "2J\n", "\\xc2\\x85nel\\xc2\\x9b2J");
	/* bidi override and line separator */
	EXPECT1("abc\xe2\x80\xae" "fed\xe2\x80\xa8\n",
		"abc\\xe2\\x80\\xaefed\\xe2\\x80\\xa8");
}

static void invalid_utf8(void **state)
{
	(void)state;
	EXPECT1("\xc0\xaf.\n", "\\xc0\\xaf.");                /* overlong '/' */
	EXPECT1("\xe0\x80\xaf.\n", "\\xe0\\x80\\xaf.");       /* overlong, 3 bytes */
	EXPECT1("\xf0\x80\x80\xaf.\n", "\\xf0\\x80\\x80\\xaf.");
	EXPECT1("\xed\xa0\x80.\n", "\\xed\\xa0\\x80.");       /* surrogate */
	EXPECT1("\xf4\x90\x80\x80.\n", "\\xf4\\x90\\x80\\x80."); /* > U+10FFFF */
	EXPECT1("\xf5\xff\xfe.\n", "\\xf5\\xff\\xfe.");
	EXPECT1("\x80\xbf.\n", "\\x80\\xbf.");                /* stray continuations */
	/* cut short by an ASCII byte, by ESC, by a newline, by the end */
	EXPECT1("\xe2\x82x\n", "\\xe2\\x82x");
	EXPECT1("\xf0\x9f\x1b[m\n", "\\xf0\\x9f\\x1b[m");
	EXPECT1("\xe2\x82\n", "\\xe2\\x82");
	EXPECT1("tail\xf0\x9f\x98", "tail\\xf0\\x9f\\x98");
	/* a new lead byte cuts the old sequence and starts its own */
	EXPECT1("\xe2\xe2\x82\xac\n", "\\xe2\xe2\x82\xac");
}

static void utf8_passes(void **state)
{
	(void)state;
	EXPECT1("h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac"
		" \xc2\xa0\xc2\xa9 \xf4\x8f\xbf\xbd \xed\x9f\xbf\n",
		"h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac"
		" \xc2\xa0\xc2\xa9 \xf4\x8f\xbf\xbd \xed\x9f\xbf");
	EXPECT1("back\\slash \\x1b\n", "back\\slash \\x1b");
}

/* The same stream cut at every point into two writes gives the same lines. */
static void split_writes(void **state)
{
	(void)state;
	static const char s[] = "a\x1b[2J\r\n\xf0\x9f\x98\x80\xe2\x80\xae\xc2\x9b"
				"\xe2\x82x\r\rq\n";
	static const char *want[] = { "a\\x1b[2J",
		"\xf0\x9f\x98\x80\\xe2\\x80\\xae\\xc2\\x9b\\xe2\\x82x\\x0d\\x0dq" };
	size_t len = sizeof(s) - 1;
	for (size_t cut = 0; cut <= len; cut++) {
		unlimited();
		con_filter_write(&f, s, cut, 0);
		con_filter_write(&f, s + cut, len - cut, 0);
		con_filter_flush(&f, 0);
		if (cap.n != 2 || strcmp(cap.lines[0], want[0]) ||
		    strcmp(cap.lines[1], want[1]))
			fail_msg("cut %zu: %u lines: '%s' '%s'", cut, cap.n,
				 cap.n > 0 ? cap.lines[0] : "",
				 cap.n > 1 ? cap.lines[1] : "");
	}
}

static void long_lines(void **state)
{
	(void)state;
	char buf[1100];

	unlimited();
	memset(buf, 'a', 1000);
	con_filter_write(&f, buf, 1000, 0);
	con_filter_flush(&f, 0);
	assert_int_equal(cap.n, 4);
	assert_int_equal(strlen(cap.lines[0]), HV_CONSOLE_LINE);
	assert_int_equal(strlen(cap.lines[2]), HV_CONSOLE_LINE);
	assert_int_equal(strlen(cap.lines[3]), 1000 - 3 * HV_CONSOLE_LINE);

	/* exactly one full line and its newline: no empty line after it */
	unlimited();
	buf[HV_CONSOLE_LINE] = '\n';
	con_filter_write(&f, buf, HV_CONSOLE_LINE + 1, 0);
	con_filter_flush(&f, 0);
	assert_int_equal(cap.n, 1);

	/* 100 ESCs expand to 400 bytes: 64 escapes a line, none cut */
	unlimited();
	memset(buf, 0x1b, 100);
	con_filter_write(&f, buf, 100, 0);
	con_filter_flush(&f, 0);
	assert_int_equal(cap.n, 2);
	assert_int_equal(strlen(cap.lines[0]), 256);
	assert_int_equal(strlen(cap.lines[1]), 144);
	assert_memory_equal(cap.lines[1], "\\x1b\\x1b", 8);

	/* a character that does not fit moves to the next line whole */
	unlimited();
	memset(buf, 'b', HV_CONSOLE_LINE - 1);
	memcpy(buf + HV_CONSOLE_LINE - 1, "\xe2\x82\xac\n", 4);
	con_filter_write(&f, buf, HV_CONSOLE_LINE + 3, 0);
	assert_int_equal(cap.n, 2);
	assert_int_equal(strlen(cap.lines[0]), HV_CONSOLE_LINE - 1);
	assert_string_equal(cap.lines[1], "\xe2\x82\xac");
	/* and an escape the same (3 free bytes < 4) */
	unlimited();
	memset(buf, 'c', HV_CONSOLE_LINE - 3);
	memcpy(buf + HV_CONSOLE_LINE - 3, "\x07\n", 2);
	con_filter_write(&f, buf, HV_CONSOLE_LINE - 1, 0);
	assert_int_equal(cap.n, 2);
	assert_int_equal(strlen(cap.lines[0]), HV_CONSOLE_LINE - 3);
	assert_string_equal(cap.lines[1], "\\x07");
	cap_free(&cap);
}

static void write_lines(struct con_filter *fl, unsigned n, size_t len,
			uint64_t now)
{
	char buf[HV_CONSOLE_LINE + 1];
	memset(buf, 'x', len - 1);
	buf[len - 1] = '\n';
	for (unsigned i = 0; i < n; i++)
		con_filter_write(fl, buf, len, now);
}

static void budget(void **state)
{
	(void)state;
	const uint64_t s = 1000000000ull;

	assert_true(con_filter_init(&f, 1000, HV_CONSOLE_LINE, on_line, &cap, 0) < 0);
	assert_int_equal(con_filter_init(&f, 0, 0, on_line, &cap, 0), 0);
	assert_int_equal(f.rate, HV_CONSOLE_RATE_DEFAULT);
	assert_int_equal(f.burst, HV_CONSOLE_BURST_DEFAULT);

	/* 1000 B/s, 4096 burst: of 100 lines of 100 bytes at t=0, 40 pass */
	cap_free(&cap);
	assert_int_equal(con_filter_init(&f, 1000, 4096, on_line, &cap, 5 * s), 0);
	write_lines(&f, 100, 100, 5 * s);
	assert_int_equal(cap.n, 40);
	assert_int_equal(f.supp_lines, 60);
	assert_int_equal(f.supp_bytes, 6000);
	/* dropping: nothing passes until half the burst is back (2048) */
	write_lines(&f, 10, 100, 5 * s + s / 2);
	assert_int_equal(cap.n, 40);
	assert_int_equal(f.held_lines, 70);
	/* two seconds after the flood: 96 + 2000 tokens; the notice comes
	 * before the first line that passes */
	write_lines(&f, 10, 100, 7 * s);
	assert_int_equal(cap.n, 40 + 1 + 10);
	assert_string_equal(cap.lines[40], "[densevm: 7000 bytes in 70 lines of "
			    "console output suppressed: over 1000 bytes/s]");
	assert_string_equal(cap.lines[41], cap.lines[0]);
	assert_int_equal(f.supp_lines, 70);
	assert_int_equal(f.held_lines, 0);
	/* a flood for 10 s: what passes is the 1096 tokens left plus the
	 * rate, less at most the half burst it waits for; a notice every
	 * 2 s or so, not one per line */
	uint64_t before_bytes = cap.bytes;
	unsigned before = cap.n;
	for (unsigned t = 0; t < 100; t++)
		write_lines(&f, 50, 100, 8 * s + t * s / 10);
	uint64_t passed = cap.bytes - before_bytes;
	if (passed > 1096 + 10900 || passed < 1096 + 10900 - 2048 - 100)
		fail_msg("passed %llu bytes", (unsigned long long)passed);
	unsigned notices = 0;
	for (unsigned i = before; i < cap.n; i++)
		notices += strstr(cap.lines[i], "suppressed") != NULL;
	assert_true(notices >= 3 && notices <= 6);
	/* the flood's tail is dropped: flush names it */
	before = cap.n;
	con_filter_flush(&f, 18 * s);
	assert_int_equal(cap.n, before + 1);
	assert_non_null(strstr(cap.lines[before], "lines of console output "
			       "suppressed"));
	assert_int_equal(f.held_lines, 0);
	assert_int_equal(f.supp_bytes, 500000 + 7000 - passed);
	con_filter_flush(&f, 19 * s);
	assert_int_equal(cap.n, before + 1);
	cap_free(&cap);

	/* unlimited: a megabyte passes whole */
	unlimited();
	for (unsigned i = 0; i < 4000; i++)
		write_lines(&f, 1, 256, 0);
	assert_int_equal(cap.n, 4000);
	assert_int_equal(f.supp_lines, 0);
	cap_free(&cap);
}

/* Two VMs print into one log: one floods (3.2 MB in 350 ms, as seen), the
 * other writes a line every 10 ms; all of the quiet VM's lines arrive, and
 * the flood is cut to its burst plus its rate. */
static void flood_does_not_drown(void **state)
{
	(void)state;
	static struct cap log;
	struct cap a = { .tag = "A ", .shared = &log };
	struct cap b = { .tag = "B ", .shared = &log };
	struct con_filter fa, fb;
	const uint64_t ms = 1000000;

	assert_int_equal(con_filter_init(&fa, 0, 0, on_line, &a, 0), 0);
	assert_int_equal(con_filter_init(&fb, 0, 0, on_line, &b, 0), 0);
	for (unsigned t = 0; t < 35; t++) {
		write_lines(&fa, 360, 256, t * 10 * ms);   /* 92 KB per 10 ms */
		write_lines(&fb, 1, 40, t * 10 * ms);
	}
	con_filter_flush(&fa, 350 * ms);
	con_filter_flush(&fb, 350 * ms);
	unsigned nb = 0, notices = 0;
	for (unsigned i = 0; i < log.n; i++) {
		nb += !strncmp(log.lines[i], "B x", 3);
		notices += strstr(log.lines[i], "suppressed") != NULL;
	}
	assert_int_equal(nb, 35);
	assert_int_equal(notices, 1);
	assert_int_equal(fb.supp_lines, 0);
	uint64_t cap_a = HV_CONSOLE_BURST_DEFAULT + HV_CONSOLE_RATE_DEFAULT * 35 / 100;
	assert_true(a.bytes <= cap_a);
	assert_true(a.bytes >= HV_CONSOLE_BURST_DEFAULT - 256);
	assert_int_equal(a.bytes + fa.supp_bytes, 35ull * 360 * 256);
	cap_free(&log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(escapes_controls),
		cmocka_unit_test(invalid_utf8),
		cmocka_unit_test(utf8_passes),
		cmocka_unit_test(split_writes),
		cmocka_unit_test(long_lines),
		cmocka_unit_test(budget),
		cmocka_unit_test(flood_does_not_drown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
