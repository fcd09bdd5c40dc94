/*
 * 16550A UART register model (pure logic: no I/O, no locks). The owner
 * serialises calls and supplies the transmit and interrupt callbacks.
 * Transmission is instantaneous (THR is always empty), the receive FIFO
 * holds UART_RX_FIFO bytes, loopback mode is modelled for drivers that
 * probe with it (Linux does).
 */
#ifndef KG_UART_H
#define KG_UART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/vmstate.h"

enum {
	UART_RBR_THR = 0, UART_IER = 1, UART_IIR_FCR = 2, UART_LCR = 3,
	UART_MCR = 4, UART_LSR = 5, UART_MSR = 6, UART_SCR = 7,
};
#define UART_LSR_DR 0x01
#define UART_LSR_OE 0x02
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40
#define UART_IER_RDI 0x01
#define UART_IER_THRI 0x02
#define UART_IIR_NONE 0x01
#define UART_IIR_THRI 0x02
#define UART_IIR_RDI 0x04
#define UART_IIR_FIFO 0xc0
#define UART_LCR_DLAB 0x80
#define UART_MCR_LOOP 0x10
#define UART_FCR_ENABLE 0x01
#define UART_FCR_CLEAR_RX 0x02
#define UART_RX_FIFO 64

struct uart {
	/* guest-visible state */
	uint8_t ier, fcr, lcr, mcr, lsr, msr, scr, dll, dlm;
	uint8_t thr_ipending;
	uint8_t rx[UART_RX_FIFO];
	uint32_t rx_head, rx_count;
	uint8_t irq_level;
	/* host side */
	void (*tx)(void *opaque, uint8_t byte);
	void (*irq)(void *opaque, int level);
	void *opaque;
};

void uart_init(struct uart *u, void (*tx)(void *, uint8_t),
	       void (*irq)(void *, int), void *opaque);
/* Guest-visible reset to power-on values (callbacks kept). */
void uart_reset(struct uart *u);
uint8_t uart_read(struct uart *u, unsigned offset);
void uart_write(struct uart *u, unsigned offset, uint8_t value);
/* Queues received bytes; returns how many fit in the FIFO. */
size_t uart_receive(struct uart *u, const uint8_t *data, size_t n);

/* The guest-visible state as a field table (its check bounds the FIFO
 * indexes a stream brings back). */
extern const struct vs_desc uart_vs;

#endif
