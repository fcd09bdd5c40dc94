/* Unit tests for the 16550A register model (vmm/uart.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/uart.h"

/* What the callbacks saw. */
struct host {
	uint8_t tx[256];
	size_t ntx;
	int levels[64]; /* every irq() call, in order */
	size_t nirq;
};

static void host_tx(void *opaque, uint8_t byte)
{
	struct host *h = opaque;
	assert_true(h->ntx < sizeof(h->tx));
	h->tx[h->ntx++] = byte;
}

static void host_irq(void *opaque, int level)
{
	struct host *h = opaque;
	assert_true(h->nirq < sizeof(h->levels) / sizeof(h->levels[0]));
	h->levels[h->nirq++] = level;
}

static int last_level(const struct host *h)
{
	return h->nirq ? h->levels[h->nirq - 1] : 0;
}

struct fixture {
	struct uart u;
	struct host h;
};

static int setup(void **state)
{
	static struct fixture f;
	memset(&f, 0, sizeof(f));
	uart_init(&f.u, host_tx, host_irq, &f.h);
	*state = &f;
	return 0;
}

#define FIX struct fixture *f = *state; struct uart *u = &f->u; \
	struct host *h = &f->h; (void)u; (void)h

static void test_reset_values(void **state)
{
	FIX;
	assert_int_equal(uart_read(u, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	assert_int_equal(uart_read(u, UART_IIR_FCR), UART_IIR_NONE);
	assert_int_equal(uart_read(u, UART_MSR), 0xb0);
	assert_int_equal(uart_read(u, UART_IER), 0);
	assert_int_equal(uart_read(u, UART_LCR), 0);
	assert_int_equal(uart_read(u, UART_MCR), 0);
	assert_int_equal(uart_read(u, UART_SCR), 0);
	assert_int_equal(uart_read(u, UART_RBR_THR), 0); /* empty FIFO */
	assert_int_equal(h->nirq, 0);
	assert_int_equal(h->ntx, 0);
	assert_int_equal(u->irq_level, 0);
}

static void test_reset_restores_and_keeps_callbacks(void **state)
{
	FIX;
	uart_write(u, UART_SCR, 0x5a);
	uart_write(u, UART_MCR, 0x1f);
	uart_write(u, UART_IER, UART_IER_THRI); /* raises */
	assert_int_equal(last_level(h), 1);
	uint8_t d[3] = { 1, 2, 3 };
	uart_receive(u, d, 3);
	uart_reset(u);
	assert_int_equal(last_level(h), 0); /* reset lowers the line */
	assert_int_equal(uart_read(u, UART_SCR), 0);
	assert_int_equal(uart_read(u, UART_MCR), 0);
	assert_int_equal(uart_read(u, UART_MSR), 0xb0);
	assert_int_equal(uart_read(u, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	assert_int_equal(uart_read(u, UART_IIR_FCR), UART_IIR_NONE);
	uart_write(u, UART_RBR_THR, 'x');
	assert_int_equal(h->ntx, 1);
	assert_int_equal(h->tx[0], 'x');
}

static void test_thr_write_calls_tx(void **state)
{
	FIX;
	const char *msg = "hello\n";
	for (const char *p = msg; *p; p++)
		uart_write(u, UART_RBR_THR, (uint8_t)*p);
	assert_int_equal(h->ntx, strlen(msg));
	assert_memory_equal(h->tx, msg, strlen(msg));
	/* THR is always empty again */
	assert_int_equal(uart_read(u, UART_LSR) &
			 (UART_LSR_THRE | UART_LSR_TEMT),
			 UART_LSR_THRE | UART_LSR_TEMT);
	/* nothing echoed into RX, no interrupt with IER clear */
	assert_int_equal(uart_read(u, UART_LSR) & UART_LSR_DR, 0);
	assert_int_equal(h->nirq, 0);
}

static void test_no_tx_callback(void **state)
{
	(void)state;
	struct uart u;
	uart_init(&u, NULL, NULL, NULL);
	uart_write(&u, UART_RBR_THR, 'a'); /* must not crash */
	uart_write(&u, UART_IER, UART_IER_THRI);
	assert_int_equal(u.irq_level, 1);
	assert_int_equal(uart_read(&u, UART_IIR_FCR), UART_IIR_THRI);
	assert_int_equal(u.irq_level, 0);
}

static void test_dlab(void **state)
{
	FIX;
	uart_write(u, UART_IER, 0x05);
	uart_write(u, UART_LCR, UART_LCR_DLAB | 0x03);
	assert_int_equal(uart_read(u, UART_LCR), UART_LCR_DLAB | 0x03);
	assert_int_equal(uart_read(u, UART_RBR_THR), 12); /* 9600 baud */
	assert_int_equal(uart_read(u, UART_IER), 0);      /* DLM */
	uart_write(u, UART_RBR_THR, 0x01); /* 115200 */
	uart_write(u, UART_IER, 0x02);
	assert_int_equal(uart_read(u, UART_RBR_THR), 0x01);
	assert_int_equal(uart_read(u, UART_IER), 0x02);
	assert_int_equal(u->dll, 0x01);
	assert_int_equal(u->dlm, 0x02);
	/* divisor writes are not transmitted and do not touch IER */
	assert_int_equal(h->ntx, 0);
	assert_int_equal(u->ier, 0x05);
	/* DLAB reads of RBR do not consume received data */
	uint8_t b = 'q';
	uart_receive(u, &b, 1);
	assert_int_equal(uart_read(u, UART_RBR_THR), 0x01);
	uart_write(u, UART_LCR, 0x03);
	assert_int_equal(uart_read(u, UART_IER), 0x05);
	assert_int_equal(uart_read(u, UART_RBR_THR), 'q');
	/* the divisor survives clearing DLAB */
	uart_write(u, UART_LCR, UART_LCR_DLAB);
	assert_int_equal(uart_read(u, UART_RBR_THR), 0x01);
	assert_int_equal(uart_read(u, UART_IER), 0x02);
}

static void test_scratch(void **state)
{
	FIX;
	for (unsigned v = 0; v < 256; v += 51) {
		uart_write(u, UART_SCR, (uint8_t)v);
		assert_int_equal(uart_read(u, UART_SCR), v);
	}
	uart_write(u, UART_LCR, UART_LCR_DLAB); /* not banked */
	uart_write(u, UART_SCR, 0xa5);
	uart_write(u, UART_LCR, 0);
	assert_int_equal(uart_read(u, UART_SCR), 0xa5);
}

static void test_readonly_registers(void **state)
{
	FIX;
	uart_write(u, UART_LSR, 0x00);
	uart_write(u, UART_MSR, 0x00);
	assert_int_equal(uart_read(u, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	assert_int_equal(uart_read(u, UART_MSR), 0xb0);
}

static void test_loopback(void **state)
{
	FIX;
	uart_write(u, UART_MCR, UART_MCR_LOOP);
	assert_int_equal(uart_read(u, UART_MCR), UART_MCR_LOOP);
	assert_int_equal(uart_read(u, UART_MSR), 0); /* no modem bits */
	uart_write(u, UART_RBR_THR, 0x55);
	uart_write(u, UART_RBR_THR, 0xaa);
	assert_int_equal(h->ntx, 0); /* nothing leaves the chip */
	assert_true(uart_read(u, UART_LSR) & UART_LSR_DR);
	assert_int_equal(uart_read(u, UART_RBR_THR), 0x55);
	assert_int_equal(uart_read(u, UART_RBR_THR), 0xaa);
	assert_int_equal(uart_read(u, UART_LSR) & UART_LSR_DR, 0);
	/* leaving loopback transmits again and restores MSR */
	uart_write(u, UART_MCR, 0x0b);
	assert_int_equal(uart_read(u, UART_MSR), 0xb0);
	uart_write(u, UART_RBR_THR, 'z');
	assert_int_equal(h->ntx, 1);
	assert_int_equal(h->tx[0], 'z');
}

static void test_loopback_msr_mirror(void **state)
{
	FIX;
	static const struct { uint8_t mcr, msr; } cases[] = {
		{ 0x01, 0x20 }, /* DTR  -> DSR */
		{ 0x02, 0x10 }, /* RTS  -> CTS */
		{ 0x04, 0x40 }, /* OUT1 -> RI */
		{ 0x08, 0x80 }, /* OUT2 -> DCD */
		{ 0x03, 0x30 },
		{ 0x0c, 0xc0 },
		{ 0x0f, 0xf0 },
		{ 0x00, 0x00 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uart_write(u, UART_MCR, UART_MCR_LOOP | cases[i].mcr);
		if (uart_read(u, UART_MSR) != cases[i].msr)
			fail_msg("MCR 0x%02x: MSR 0x%02x, want 0x%02x",
				 UART_MCR_LOOP | cases[i].mcr,
				 uart_read(u, UART_MSR), cases[i].msr);
	}
	/* bits above MCR's five are dropped */
	uart_write(u, UART_MCR, 0xff);
	assert_int_equal(uart_read(u, UART_MCR), 0x1f);
	assert_int_equal(uart_read(u, UART_MSR), 0xf0);
}

static void test_rx_fifo_order(void **state)
{
	FIX;
	/* wrap the ring a few times */
	uint8_t next_in = 0, next_out = 0;
	for (int round = 0; round < 5; round++) {
		uint8_t d[40];
		for (size_t i = 0; i < sizeof(d); i++)
			d[i] = next_in++;
		assert_int_equal(uart_receive(u, d, sizeof(d)), sizeof(d));
		for (size_t i = 0; i < sizeof(d); i++) {
			assert_true(uart_read(u, UART_LSR) & UART_LSR_DR);
			assert_int_equal(uart_read(u, UART_RBR_THR),
					 next_out++);
		}
		assert_int_equal(uart_read(u, UART_LSR) & UART_LSR_DR, 0);
	}
	assert_int_equal(uart_read(u, UART_RBR_THR), 0);
}

static void test_receive_returns_what_fits(void **state)
{
	FIX;
	uint8_t d[UART_RX_FIFO + 10];
	for (size_t i = 0; i < sizeof(d); i++)
		d[i] = (uint8_t)(i + 1);
	assert_int_equal(uart_receive(u, d, 10), 10);
	assert_int_equal(uart_receive(u, d + 10, sizeof(d) - 10),
			 UART_RX_FIFO - 10);
	assert_int_equal(uart_receive(u, d, 1), 0);
	assert_int_equal(uart_receive(u, d, 0), 0);
	/* refusing bytes is flow control, not an overrun */
	assert_int_equal(uart_read(u, UART_LSR) & UART_LSR_OE, 0);
	assert_int_equal(uart_read(u, UART_RBR_THR), 1);
	assert_int_equal(uart_receive(u, d + UART_RX_FIFO, 5), 1);
	for (unsigned i = 1; i < UART_RX_FIFO; i++)
		assert_int_equal(uart_read(u, UART_RBR_THR), i + 1);
	assert_int_equal(uart_read(u, UART_RBR_THR), UART_RX_FIFO + 1);
	assert_int_equal(uart_read(u, UART_LSR) & UART_LSR_DR, 0);
}

static void test_overflow_sets_oe(void **state)
{
	FIX;
	/* loopback is the one way bytes arrive that the host cannot hold
	 * back: the 65th is lost and sets OE */
	uart_write(u, UART_MCR, UART_MCR_LOOP);
	for (unsigned i = 0; i <= UART_RX_FIFO; i++)
		uart_write(u, UART_RBR_THR, (uint8_t)i);
	uint8_t lsr = uart_read(u, UART_LSR);
	assert_int_equal(lsr & (UART_LSR_OE | UART_LSR_DR),
			 UART_LSR_OE | UART_LSR_DR);
	/* reading LSR cleared OE, DR stays */
	lsr = uart_read(u, UART_LSR);
	assert_int_equal(lsr & UART_LSR_OE, 0);
	assert_true(lsr & UART_LSR_DR);
	/* the FIFO kept the first 64 bytes */
	for (unsigned i = 0; i < UART_RX_FIFO; i++)
		assert_int_equal(uart_read(u, UART_RBR_THR), i);
	assert_int_equal(uart_read(u, UART_LSR) & UART_LSR_DR, 0);
}

static void test_rdi_interrupt(void **state)
{
	FIX;
	uint8_t d[3] = { 'a', 'b', 'c' };
	uart_receive(u, d, 3);
	assert_int_equal(h->nirq, 0); /* IER clear: no interrupt */
	assert_int_equal(uart_read(u, UART_IIR_FCR), UART_IIR_NONE);
	uart_write(u, UART_IER, UART_IER_RDI);
	assert_int_equal(h->nirq, 1);
	assert_int_equal(h->levels[0], 1);
	assert_int_equal(uart_read(u, UART_IIR_FCR), UART_IIR_RDI);
	/* IIR read does not acknowledge received data */
	assert_int_equal(uart_read(u, UART_IIR_FCR), UART_IIR_RDI);
	assert_int_equal(h->nirq, 1);
	assert_int_equal(uart_read(u, UART_RBR_THR), 'a');
	assert_int_equal(uart_read(u, UART_RBR_THR), 'b');
	assert_int_equal(h->nirq, 1); /* still data: still high */
	assert_int_equal(uart_read(u, UART_RBR_THR), 'c');
	assert_int_equal(h->nirq, 2);
	assert_int_equal(h->levels[1], 0);
	assert_int_equal(uart_read(u, UART_IIR_FCR), UART_IIR_NONE);
	/* with RDI enabled, arriving data raises the line */
	uart_receive(u, d, 1);
	assert_int_equal(h->nirq, 3);
	assert_int_equal(h->levels[2], 1);
	/* disabling RDI lowers it */
	uart_write(u, UART_IER, 0);
	assert_int_equal(h->nirq, 4);
	assert_int_equal(h->levels[3], 0);
}

static void test_loopback_rdi_interrupt(void **state)
{
	FIX;
	uart_write(u, UART_MCR, UART_MCR_LOOP);
	uart_write(u, UART_IER, UART_IER_RDI);
	assert_int_equal(h->nirq, 0);
	uart_write(u, UART_RBR_THR, 0x42);
	assert_int_equal(last_level(h), 1);
	assert_int_equal(uart_read(u, UART_IIR_FCR), UART_IIR_RDI);
	assert_int_equal(uart_read(u, UART_RBR_THR), 0x42);
	assert_int_equal(last_level(h), 0);
}

static void test_thri_interrupt(void **state)
{
	FIX;
	uart_write(u, UART_IER, UART_IER_THRI);
	assert_int_equal(h->nirq, 1);
	assert_int_equal(h->levels[0], 1);
	/* reading IIR that reports THRI acknowledges it */
	assert_int_equal(uart_read(u, UART_IIR_FCR), UART_IIR_THRI);
	assert_int_equal(h->nirq, 2);
	assert_int_equal(h->levels[1], 0);
	assert_int_equal(uart_read(u, UART_IIR_FCR), UART_IIR_NONE);
	/* each transmitted byte empties THR again: a new THRI */
	uart_write(u, UART_RBR_THR, 'x');
	assert_int_equal(last_level(h), 1);
	assert_int_equal(uart_read(u, UART_IIR_FCR), UART_IIR_THRI);
	assert_int_equal(last_level(h), 0);
	/* rewriting IER with THRI already set does not re-raise */
	size_t n = h->nirq;
	uart_write(u, UART_IER, UART_IER_THRI);
	assert_int_equal(h->nirq, n);
	/* disabling and re-enabling THRI does (THR is empty) */
	uart_write(u, UART_IER, 0);
	uart_write(u, UART_IER, UART_IER_THRI);
	assert_int_equal(last_level(h), 1);
	/* disabling it lowers the line */
	uart_write(u, UART_IER, 0);
	assert_int_equal(last_level(h), 0);
}

static void test_rdi_has_priority_over_thri(void **state)
{
	FIX;
	uart_write(u, UART_IER, UART_IER_RDI | UART_IER_THRI);
	uint8_t b = 'r';
	uart_receive(u, &b, 1);
	assert_int_equal(uart_read(u, UART_IIR_FCR), UART_IIR_RDI);
	/* THRI was not acknowledged by that read */
	assert_int_equal(uart_read(u, UART_RBR_THR), 'r');
	assert_int_equal(last_level(h), 1);
	assert_int_equal(uart_read(u, UART_IIR_FCR), UART_IIR_THRI);
	assert_int_equal(last_level(h), 0);
}

static void test_ier_masks_high_bits(void **state)
{
	FIX;
	uart_write(u, UART_IER, 0xff);
	assert_int_equal(uart_read(u, UART_IER), 0x0f);
}

static void test_fcr(void **state)
{
	FIX;
	uart_write(u, UART_IIR_FCR, UART_FCR_ENABLE);
	assert_int_equal(uart_read(u, UART_IIR_FCR),
			 UART_IIR_FIFO | UART_IIR_NONE);
	uart_write(u, UART_IER, UART_IER_RDI);
	uint8_t d[4] = { 1, 2, 3, 4 };
	uart_receive(u, d, 4);
	assert_int_equal(last_level(h), 1);
	assert_int_equal(uart_read(u, UART_IIR_FCR),
			 UART_IIR_FIFO | UART_IIR_RDI);
	assert_int_equal(uart_read(u, UART_RBR_THR), 1);
	/* clear RX: FIFO empty, DR off, line low */
	uart_write(u, UART_IIR_FCR, UART_FCR_ENABLE | UART_FCR_CLEAR_RX);
	assert_int_equal(uart_read(u, UART_LSR) & UART_LSR_DR, 0);
	assert_int_equal(last_level(h), 0);
	assert_int_equal(uart_read(u, UART_IIR_FCR),
			 UART_IIR_FIFO | UART_IIR_NONE);
	assert_int_equal(uart_read(u, UART_RBR_THR), 0);
	/* the FIFO works normally afterwards */
	uart_receive(u, d + 2, 2);
	assert_int_equal(uart_read(u, UART_RBR_THR), 3);
	assert_int_equal(uart_read(u, UART_RBR_THR), 4);
	/* THRI is reported with the FIFO bits too, and acknowledged */
	uart_write(u, UART_IER, UART_IER_THRI);
	assert_int_equal(uart_read(u, UART_IIR_FCR),
			 UART_IIR_FIFO | UART_IIR_THRI);
	assert_int_equal(uart_read(u, UART_IIR_FCR),
			 UART_IIR_FIFO | UART_IIR_NONE);
	/* disabling the FIFO drops the bits */
	uart_write(u, UART_IIR_FCR, 0);
	assert_int_equal(uart_read(u, UART_IIR_FCR), UART_IIR_NONE);
}

static void test_bad_offsets(void **state)
{
	FIX;
	assert_int_equal(uart_read(u, 8), 0xff);
	assert_int_equal(uart_read(u, 1000), 0xff);
	uart_write(u, 8, 0x12); /* ignored */
	assert_int_equal(h->ntx, 0);
	assert_int_equal(uart_read(u, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup(fn, setup)
	const struct CMUnitTest tests[] = {
		T(test_reset_values),
		T(test_reset_restores_and_keeps_callbacks),
		T(test_thr_write_calls_tx),
		cmocka_unit_test(test_no_tx_callback),
		T(test_dlab),
		T(test_scratch),
		T(test_readonly_registers),
		T(test_loopback),
		T(test_loopback_msr_mirror),
		T(test_rx_fifo_order),
		T(test_receive_returns_what_fits),
		T(test_overflow_sets_oe),
		T(test_rdi_interrupt),
		T(test_loopback_rdi_interrupt),
		T(test_thri_interrupt),
		T(test_rdi_has_priority_over_thri),
		T(test_ier_masks_high_bits),
		T(test_fcr),
		T(test_bad_offsets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
