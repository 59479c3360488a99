/*
 * console.c - formatted output for the micro guest.
 *
 * Owns: a small printf (see guest.h for the subset), the per-vCPU line
 * buffers and panic.  Each vCPU buffers into its own line and sends it with
 * one HC_CONSOLE when it sees '\n' or when the buffer is full: a hypercall
 * costs ~28 us here, one per character would be ruinous.  Lines from
 * different vCPUs therefore never interleave inside a line.
 */
#include "guest.h"

#define CONSOLE_LINE 512   /* < HV_ARG_DATA_MAX */

static struct {
	char buf[CONSOLE_LINE];
	unsigned len;
} lines[HV_MAX_VCPUS];

void console_flush(void)
{
	unsigned cpu = guest_cpu();
	if (cpu >= HV_MAX_VCPUS || lines[cpu].len == 0)
		return;
	hc_console(lines[cpu].buf, lines[cpu].len);
	lines[cpu].len = 0;
}

struct sink {
	void (*put)(struct sink *s, char c);
	char *buf;       /* snprintf only */
	size_t size, len;
	unsigned cpu;    /* console only */
};

static void console_put(struct sink *s, char c)
{
	typeof(lines[0]) *l = &lines[s->cpu];
	l->buf[l->len++] = c;
	if (c == '\n' || l->len == CONSOLE_LINE) {
		hc_console(l->buf, l->len);
		l->len = 0;
	}
}

static void buf_put(struct sink *s, char c)
{
	if (s->len + 1 < s->size)
		s->buf[s->len] = c;
	s->len++;
}

static void put_str(struct sink *s, const char *str, size_t n, int width,
		    bool left)
{
	size_t pad = width > 0 && (size_t)width > n ? (size_t)width - n : 0;
	if (!left)
		for (size_t i = 0; i < pad; i++)
			s->put(s, ' ');
	for (size_t i = 0; i < n; i++)
		s->put(s, str[i]);
	if (left)
		for (size_t i = 0; i < pad; i++)
			s->put(s, ' ');
}

static void put_num(struct sink *s, uint64_t v, bool neg, unsigned base,
		    bool upper, int width, bool zero, bool left)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = digits[v % base];
		v /= base;
	} while (v);
	int len = n + (neg ? 1 : 0);
	int pad = width > len ? width - len : 0;
	if (!left && !zero)
		for (int i = 0; i < pad; i++)
			s->put(s, ' ');
	if (neg)
		s->put(s, '-');
	if (!left && zero)
		for (int i = 0; i < pad; i++)
			s->put(s, '0');
	while (n > 0)
		s->put(s, tmp[--n]);
	if (left)
		for (int i = 0; i < pad; i++)
			s->put(s, ' ');
}

static void vformat(struct sink *s, const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			s->put(s, *fmt);
			continue;
		}
		bool left = false, zero = false;
		int width = 0, lng = 0;
		fmt++;
		for (;; fmt++) {
			if (*fmt == '-')
				left = true;
			else if (*fmt == '0')
				zero = true;
			else
				break;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z') {
			lng++;
			fmt++;
		}
		switch (*fmt) {
		case 'd':
		case 'i': {
			int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
			put_num(s, u, v < 0, 10, false, width, zero, left);
			break;
		}
		case 'u':
		case 'x':
		case 'X': {
			uint64_t v = lng ? va_arg(ap, uint64_t)
					 : va_arg(ap, unsigned);
			put_num(s, v, false, *fmt == 'u' ? 10 : 16, *fmt == 'X',
				width, zero, left);
			break;
		}
		case 'p':
			s->put(s, '0');
			s->put(s, 'x');
			put_num(s, (uintptr_t)va_arg(ap, void *), false, 16,
				false, width, zero, left);
			break;
		case 's': {
			const char *str = va_arg(ap, const char *);
			if (!str)
				str = "(null)";
			put_str(s, str, strlen(str), width, left);
			break;
		}
		case 'c': {
			char c = (char)va_arg(ap, int);
			put_str(s, &c, 1, width, left);
			break;
		}
		case '%':
			s->put(s, '%');
			break;
		case '\0':
			return;
		default:   /* unknown conversion: show it rather than guess */
			s->put(s, '%');
			s->put(s, *fmt);
			break;
		}
	}
}

void gvprintf(const char *fmt, va_list ap)
{
	struct sink s = { .put = console_put, .cpu = guest_cpu() };
	if (s.cpu >= HV_MAX_VCPUS)
		return;
	vformat(&s, fmt, ap);
}

void gprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	gvprintf(fmt, ap);
	va_end(ap);
}

int gsnprintf(char *buf, size_t size, const char *fmt, ...)
{
	struct sink s = { .put = buf_put, .buf = buf, .size = size };
	va_list ap;
	va_start(ap, fmt);
	vformat(&s, fmt, ap);
	va_end(ap);
	if (size)
		buf[s.len < size ? s.len : size - 1] = '\0';
	return (int)s.len;
}

void gpanic(const char *fmt, ...)
{
	va_list ap;
	console_flush();
	gprintf("panic: ");
	va_start(ap, fmt);
	gvprintf(fmt, ap);
	va_end(ap);
	gprintf("\n");
	guest_exit(GUEST_EXIT_PANIC);
}
