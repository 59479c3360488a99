/*
 * serial8250.h - hv-core internal: a minimal 16550A UART at COM1 (0x3f8),
 * enough for Linux's early and 8250 console output.  Input is not offered.
 * Owns the register file of one UART; the caller owns its locking (one per
 * VM, used from vCPU threads under the VM's io lock).
 *
 * Transmission is instant: LSR always shows THRE|TEMT, so Linux's console
 * (which polls LSR) never waits.  The 8250 tty driver (userspace writes to
 * /dev/console) waits for the THRE interrupt instead: give the UART an irq
 * callback (serial8250_set_irq) that drives IRQ 4, or such output stalls.
 */
#ifndef DENSEVM_SERIAL8250_H
#define DENSEVM_SERIAL8250_H

#include <stdbool.h>
#include <stdint.h>

#define SERIAL_COM1_BASE 0x3f8
#define SERIAL_NPORTS    8

#define SERIAL_COM1_IRQ  4

typedef void (*serial_out_fn)(void *ctx, const char *buf, unsigned len);
/* Sets the UART's interrupt line to level (0 or 1); called only on a change.
 * For ISA IRQ 4 through the in-kernel irqchip: KVM_IRQ_LINE {4, level}. */
typedef void (*serial_irq_fn)(void *ctx, int level);

struct serial8250 {
	uint8_t dll, dlm, ier, iir, lcr, mcr, lsr, msr, scr, fcr;
	bool thre_pending;   /* THR-empty interrupt not yet acknowledged */
	bool irq_level;      /* last level given to irq() */
	serial_out_fn out;
	serial_irq_fn irq;   /* may be NULL: no interrupts */
	void *ctx;           /* for out and irq */
};

void serial8250_init(struct serial8250 *s, serial_out_fn out, void *ctx);
/* Optional: the interrupt line (same ctx as out). */
void serial8250_set_irq(struct serial8250 *s, serial_irq_fn irq);
/* Handles an access to port (base .. base+7).  Returns false when the port
 * is not the UART's.  `data` is size bytes (1 for the UART). */
bool serial8250_io(struct serial8250 *s, uint16_t port, bool is_write,
		   uint8_t *data, unsigned size);

#endif
