/*
 * serial8250.c - a minimal 16550A UART (COM1) for Linux guests.
 *
 * Owns the register model of serial8250.h: THR/RBR, IER, IIR/FCR, LCR, MCR,
 * LSR, MSR, SCR and the DLAB divisor latch.  Transmitted bytes go straight
 * to the out callback (the VM assembles lines); there is no input, so RBR
 * reads 0 and LSR never shows data ready.
 *
 * It only has to satisfy what Linux checks: 8250 autoconfig must find a
 * 16550A (scratch register, FIFO bits in IIR, no EFR or 64-byte FIFO, IER
 * top bits reading 0), loopback must echo MCR into MSR, and the THRE
 * interrupt must behave like a real chip (raised when THR empties or when
 * ETBEI is enabled, cleared by reading it from IIR) or the tty driver
 * either stalls or falls back to a slow polling timer.
 */
#include <string.h>

#include "serial8250.h"

enum {
	R_DATA = 0, /* THR (write) / RBR (read); DLL when DLAB */
	R_IER  = 1, /* DLM when DLAB */
	R_IIR  = 2, /* IIR (read) / FCR (write) */
	R_LCR  = 3,
	R_MCR  = 4,
	R_LSR  = 5,
	R_MSR  = 6,
	R_SCR  = 7,
};

#define LCR_DLAB       0x80
#define IER_RDI        0x01
#define IER_THRI       0x02
#define IER_MASK       0x0f  /* 16550A: upper IER bits read as 0 */
#define IIR_NO_INT     0x01
#define IIR_THRI       0x02
#define IIR_FIFO_ON    0xc0
#define FCR_ENABLE     0x01
#define MCR_DTR        0x01
#define MCR_RTS        0x02
#define MCR_OUT1       0x04
#define MCR_OUT2       0x08
#define MCR_LOOP       0x10
#define MCR_MASK       0x1f
#define LSR_THRE       0x20
#define LSR_TEMT       0x40
#define MSR_CTS        0x10
#define MSR_DSR        0x20
#define MSR_RI         0x40
#define MSR_DCD        0x80

static bool irq_wanted(const struct serial8250 *s)
{
	return (s->ier & IER_THRI) && s->thre_pending;
}

static void update_irq(struct serial8250 *s)
{
	bool level = irq_wanted(s);

	if (level != s->irq_level) {
		s->irq_level = level;
		if (s->irq)
			s->irq(s->ctx, level);
	}
}

void serial8250_init(struct serial8250 *s, serial_out_fn out, void *ctx)
{
	memset(s, 0, sizeof(*s));
	s->out = out;
	s->ctx = ctx;
	s->iir = IIR_NO_INT;
	s->lsr = LSR_THRE | LSR_TEMT;
	/* A modem that is always there: DCD, DSR, CTS. */
	s->msr = MSR_DCD | MSR_DSR | MSR_CTS;
	s->dll = 12;          /* 9600 baud, as after a BIOS reset */
}

void serial8250_set_irq(struct serial8250 *s, serial_irq_fn irq)
{
	s->irq = irq;
	s->irq_level = false;
	update_irq(s);
}

static uint8_t read_msr(const struct serial8250 *s)
{
	uint8_t v = 0;

	if (!(s->mcr & MCR_LOOP))
		return s->msr;
	/* Loopback wires the modem outputs back to the inputs; Linux's
	 * autoconfig checks exactly this mapping. */
	if (s->mcr & MCR_RTS)
		v |= MSR_CTS;
	if (s->mcr & MCR_DTR)
		v |= MSR_DSR;
	if (s->mcr & MCR_OUT1)
		v |= MSR_RI;
	if (s->mcr & MCR_OUT2)
		v |= MSR_DCD;
	return v;
}

static uint8_t reg_read(struct serial8250 *s, unsigned reg)
{
	uint8_t v;

	switch (reg) {
	case R_DATA:
		return (s->lcr & LCR_DLAB) ? s->dll : 0;
	case R_IER:
		return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
	case R_IIR:
		v = (s->fcr & FCR_ENABLE) ? IIR_FIFO_ON : 0;
		if (irq_wanted(s)) {
			v |= IIR_THRI;
			/* reading IIR with THRE as its source acknowledges it */
			s->thre_pending = false;
			update_irq(s);
		} else {
			v |= IIR_NO_INT;
		}
		return v;
	case R_LCR:
		return s->lcr;
	case R_MCR:
		return s->mcr;
	case R_LSR:
		return s->lsr;
	case R_MSR:
		return read_msr(s);
	default:
		return s->scr;
	}
}

static void reg_write(struct serial8250 *s, unsigned reg, uint8_t v)
{
	switch (reg) {
	case R_DATA:
		if (s->lcr & LCR_DLAB) {
			s->dll = v;
			return;
		}
		/* in loopback the byte would go to our own receiver: drop it */
		if (!(s->mcr & MCR_LOOP) && s->out) {
			char c = (char)v;

			s->out(s->ctx, &c, 1);
		}
		/* sent at once, so THR is empty again: a new THRE event */
		s->thre_pending = false;
		update_irq(s);
		s->thre_pending = true;
		update_irq(s);
		return;
	case R_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
			return;
		}
		v &= IER_MASK;
		/* enabling ETBEI while THR is empty raises THRE at once */
		if ((v & IER_THRI) && !(s->ier & IER_THRI))
			s->thre_pending = true;
		s->ier = v;
		update_irq(s);
		return;
	case R_IIR:
		/* FCR: only the enable bit is visible (in IIR); the reset
		 * bits have no FIFO contents to clear. */
		s->fcr = v & FCR_ENABLE;
		return;
	case R_LCR:
		s->lcr = v;
		return;
	case R_MCR:
		s->mcr = v & MCR_MASK;
		return;
	case R_LSR:
	case R_MSR:
		return; /* read-only on a 16550A (factory test only) */
	default:
		s->scr = v;
		return;
	}
}

bool serial8250_io(struct serial8250 *s, uint16_t port, bool is_write,
		   uint8_t *data, unsigned size)
{
	if (port < SERIAL_COM1_BASE || port >= SERIAL_COM1_BASE + SERIAL_NPORTS)
		return false;
	/* The UART is byte-wide: a wider access touches consecutive ports,
	 * and bytes past the UART read as an empty bus. */
	for (unsigned i = 0; i < size; i++) {
		unsigned p = port + i;

		if (p >= SERIAL_COM1_BASE + SERIAL_NPORTS) {
			if (!is_write)
				data[i] = 0xff;
			continue;
		}
		if (is_write)
			reg_write(s, p - SERIAL_COM1_BASE, data[i]);
		else
			data[i] = reg_read(s, p - SERIAL_COM1_BASE);
	}
	return true;
}
