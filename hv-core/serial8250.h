/*
 * serial8250.h - hv-core internal: a minimal 16550A UART at COM1 (0x3f8),
 * enough for Linux's early and 8250 console output.  Input is not offered.
 * Owns the register file of one UART; the caller owns its locking (one per
 * VM, used from vCPU threads under the VM's io lock).
 */
#ifndef DENSEVM_SERIAL8250_H
#define DENSEVM_SERIAL8250_H

#include <stdbool.h>
#include <stdint.h>

#define SERIAL_COM1_BASE 0x3f8
#define SERIAL_NPORTS    8

typedef void (*serial_out_fn)(void *ctx, const char *buf, unsigned len);

struct serial8250 {
	uint8_t dll, dlm, ier, iir, lcr, mcr, lsr, msr, scr, fcr;
	serial_out_fn out;
	void *ctx;
};

void serial8250_init(struct serial8250 *s, serial_out_fn out, void *ctx);
/* Handles an access to port (base .. base+7).  Returns false when the port
 * is not the UART's.  `data` is size bytes (1 for the UART). */
bool serial8250_io(struct serial8250 *s, uint16_t port, bool is_write,
		   uint8_t *data, unsigned size);

#endif
