#include "uart.h"

#include <string.h>

static uint8_t iir(const struct uart *u)
{
	uint8_t fifo = (u->fcr & UART_FCR_ENABLE) ? UART_IIR_FIFO : 0;
	if ((u->ier & UART_IER_RDI) && u->rx_count)
		return UART_IIR_RDI | fifo;
	if ((u->ier & UART_IER_THRI) && u->thr_ipending)
		return UART_IIR_THRI | fifo;
	return UART_IIR_NONE | fifo;
}

static void update_irq(struct uart *u)
{
	uint8_t level = !(iir(u) & UART_IIR_NONE);
	if (level != u->irq_level) {
		u->irq_level = level;
		if (u->irq)
			u->irq(u->opaque, level);
	}
}

static void update_msr(struct uart *u)
{
	if (u->mcr & UART_MCR_LOOP) {
		/* DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD */
		u->msr = (uint8_t)(((u->mcr & 0x01) << 5) |
				   ((u->mcr & 0x02) << 3) |
				   ((u->mcr & 0x04) << 4) |
				   ((u->mcr & 0x08) << 4));
	} else {
		u->msr = 0xb0; /* DCD | DSR | CTS */
	}
}

void uart_reset(struct uart *u)
{
	u->ier = u->fcr = u->lcr = u->mcr = u->scr = u->dlm = 0;
	u->dll = 12; /* 9600 baud */
	u->lsr = UART_LSR_THRE | UART_LSR_TEMT;
	u->thr_ipending = 0;
	u->rx_head = u->rx_count = 0;
	update_msr(u);
	update_irq(u);
}

void uart_init(struct uart *u, void (*tx)(void *, uint8_t),
	       void (*irq)(void *, int), void *opaque)
{
	memset(u, 0, sizeof(*u));
	u->tx = tx;
	u->irq = irq;
	u->opaque = opaque;
	uart_reset(u);
}

static void rx_push(struct uart *u, uint8_t b)
{
	if (u->rx_count == UART_RX_FIFO) {
		u->lsr |= UART_LSR_OE;
		return;
	}
	u->rx[(u->rx_head + u->rx_count) % UART_RX_FIFO] = b;
	u->rx_count++;
	u->lsr |= UART_LSR_DR;
}

uint8_t uart_read(struct uart *u, unsigned offset)
{
	uint8_t v = 0xff;
	switch (offset) {
	case UART_RBR_THR:
		if (u->lcr & UART_LCR_DLAB)
			return u->dll;
		v = 0;
		if (u->rx_count) {
			v = u->rx[u->rx_head];
			u->rx_head = (u->rx_head + 1) % UART_RX_FIFO;
			if (--u->rx_count == 0)
				u->lsr &= (uint8_t)~UART_LSR_DR;
		}
		break;
	case UART_IER:
		return (u->lcr & UART_LCR_DLAB) ? u->dlm : u->ier;
	case UART_IIR_FCR:
		v = iir(u);
		if ((v & 0x0f) == UART_IIR_THRI)
			u->thr_ipending = 0;
		break;
	case UART_LCR:
		return u->lcr;
	case UART_MCR:
		return u->mcr;
	case UART_LSR:
		v = u->lsr;
		u->lsr &= (uint8_t)~UART_LSR_OE;
		break;
	case UART_MSR:
		return u->msr;
	case UART_SCR:
		return u->scr;
	}
	update_irq(u);
	return v;
}

void uart_write(struct uart *u, unsigned offset, uint8_t value)
{
	switch (offset) {
	case UART_RBR_THR:
		if (u->lcr & UART_LCR_DLAB) {
			u->dll = value;
			return;
		}
		if (u->mcr & UART_MCR_LOOP)
			rx_push(u, value);
		else if (u->tx)
			u->tx(u->opaque, value);
		u->thr_ipending = 1; /* sent at once: THR empty again */
		break;
	case UART_IER:
		if (u->lcr & UART_LCR_DLAB) {
			u->dlm = value;
			return;
		}
		if (!(u->ier & UART_IER_THRI) && (value & UART_IER_THRI))
			u->thr_ipending = 1;
		u->ier = value & 0x0f;
		break;
	case UART_IIR_FCR:
		if (value & UART_FCR_CLEAR_RX) {
			u->rx_head = u->rx_count = 0;
			u->lsr &= (uint8_t)~UART_LSR_DR;
		}
		u->fcr = value & 0xc9;
		break;
	case UART_LCR:
		u->lcr = value;
		return;
	case UART_MCR:
		u->mcr = value & 0x1f;
		update_msr(u);
		break;
	case UART_LSR:
	case UART_MSR:
		return; /* read-only */
	case UART_SCR:
		u->scr = value;
		return;
	}
	update_irq(u);
}

size_t uart_receive(struct uart *u, const uint8_t *data, size_t n)
{
	size_t room = UART_RX_FIFO - u->rx_count, take = n < room ? n : room;
	for (size_t i = 0; i < take; i++)
		rx_push(u, data[i]);
	if (take)
		update_irq(u);
	return take;
}

/* --- state: every guest-visible field --- */

static int uart_check(const void *obj, const void *ctx, struct kg_err *e)
{
	const struct uart *u = obj;
	(void)ctx;
	if (u->rx_head >= UART_RX_FIFO || u->rx_count > UART_RX_FIFO)
		return kg_errf(e, "receive FIFO index out of range");
	return 0;
}

static const struct vs_field uart_fields[] = {
	VS_FIELD(struct uart, ier, VS_U8),
	VS_FIELD(struct uart, fcr, VS_U8),
	VS_FIELD(struct uart, lcr, VS_U8),
	VS_FIELD(struct uart, mcr, VS_U8),
	VS_FIELD(struct uart, lsr, VS_U8),
	VS_FIELD(struct uart, msr, VS_U8),
	VS_FIELD(struct uart, scr, VS_U8),
	VS_FIELD(struct uart, dll, VS_U8),
	VS_FIELD(struct uart, dlm, VS_U8),
	VS_FIELD_MAX(struct uart, thr_ipending, VS_U8, 1),
	VS_BYTES_FIELD(struct uart, rx),
	VS_FIELD(struct uart, rx_head, VS_U32),
	VS_FIELD(struct uart, rx_count, VS_U32),
	VS_FIELD_MAX(struct uart, irq_level, VS_U8, 1),
};
const struct vs_desc uart_vs = { "uart", 1, VS_TABLE(uart_fields),
				     uart_check };
