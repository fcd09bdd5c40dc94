/* The 8259A pair model (vmm/pic.c): programming as Linux and a BIOS do it,
 * priority, cascade, EOIs, spurious IRQs and hostile port writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "vmm/pic.h"

/* The PC's usual programming: edge, cascade, ICW4, vectors 0x20/0x28. */
static void program(struct pic *p, uint8_t icw4)
{
	pic_io_write(p, 0x20, 0x11);
	pic_io_write(p, 0x21, 0x20);
	pic_io_write(p, 0x21, 0x04);
	pic_io_write(p, 0x21, icw4);
	pic_io_write(p, 0xa0, 0x11);
	pic_io_write(p, 0xa1, 0x28);
	pic_io_write(p, 0xa1, 0x02);
	pic_io_write(p, 0xa1, icw4);
}

static void pulse(struct pic *p, unsigned irq)
{
	pic_set_irq(p, irq, 1);
	pic_set_irq(p, irq, 0);
}

static void test_power_on_masked(void **state)
{
	(void)state;
	struct pic p;
	pic_init(&p);
	assert_int_equal(pic_io_read(&p, 0x21), 0xff);
	assert_int_equal(pic_io_read(&p, 0xa1), 0xff);
	pulse(&p, 4);
	assert_false(pic_pending(&p));
	/* the request is latched: unmasking delivers it */
	pic_io_write(&p, 0x21, 0xef);
	assert_true(pic_pending(&p));
}

static void test_init_sequence(void **state)
{
	(void)state;
	struct pic p;
	pic_init(&p);
	program(&p, 0x01);
	/* ICW1 clears the IMR; OCW1 sets it */
	assert_int_equal(pic_io_read(&p, 0x21), 0x00);
	pic_io_write(&p, 0x21, 0xfb);
	assert_int_equal(pic_io_read(&p, 0x21), 0xfb);
	assert_int_equal(p.chip[0].base, 0x20);
	assert_int_equal(p.chip[1].base, 0x28);
	assert_int_equal(p.chip[0].icw3, 0x04);
	assert_int_equal(p.chip[1].icw3, 0x02);
	assert_int_equal(p.chip[0].init_step, 0);
	/* ICW2's low 3 bits are the IR number, not the base */
	pic_io_write(&p, 0x20, 0x11);
	pic_io_write(&p, 0x21, 0x47);
	assert_int_equal(p.chip[0].base, 0x40);
	/* single mode without ICW4: ICW2 ends the sequence */
	pic_io_write(&p, 0x20, 0x12);
	pic_io_write(&p, 0x21, 0x08);
	assert_int_equal(p.chip[0].init_step, 0);
	pic_io_write(&p, 0x21, 0x00); /* OCW1 now, not ICW3 */
	pulse(&p, 1);
	assert_int_equal(pic_ack(&p), 0x09);
	/* cascade without ICW4: ICW3 ends it */
	pic_io_write(&p, 0x20, 0x10);
	pic_io_write(&p, 0x21, 0x30);
	pic_io_write(&p, 0x21, 0x04);
	assert_int_equal(p.chip[0].init_step, 0);
	assert_int_equal(p.chip[0].auto_eoi, 0);
}

static void test_priority_and_eoi(void **state)
{
	(void)state;
	struct pic p;
	pic_init(&p);
	program(&p, 0x01);
	pulse(&p, 4);
	pulse(&p, 1);
	assert_true(pic_pending(&p));
	assert_int_equal(pic_ack(&p), 0x21); /* IRQ 1 outranks IRQ 4 */
	/* IRQ 4 waits behind IRQ 1 in service */
	assert_false(pic_pending(&p));
	pic_io_write(&p, 0x20, 0x0b); /* OCW3: read ISR */
	assert_int_equal(pic_io_read(&p, 0x20), 0x02);
	pic_io_write(&p, 0x20, 0x0a); /* OCW3: read IRR */
	assert_int_equal(pic_io_read(&p, 0x20), 0x10);
	/* a higher priority nests */
	pulse(&p, 0);
	assert_true(pic_pending(&p));
	assert_int_equal(pic_ack(&p), 0x20);
	pic_io_write(&p, 0x20, 0x20); /* non-specific EOI: IRQ 0 */
	assert_false(pic_pending(&p));
	pic_io_write(&p, 0x20, 0x20); /* IRQ 1 */
	assert_true(pic_pending(&p));
	assert_int_equal(pic_ack(&p), 0x24);
	pic_io_write(&p, 0x20, 0x64); /* specific EOI, IR 4 */
	assert_int_equal(p.chip[0].isr, 0);
	assert_false(pic_pending(&p));
	/* an EOI with nothing in service is harmless */
	pic_io_write(&p, 0x20, 0x20);
	assert_int_equal(p.chip[0].isr, 0);
}

static void test_mask(void **state)
{
	(void)state;
	struct pic p;
	pic_init(&p);
	program(&p, 0x01);
	pic_io_write(&p, 0x21, 0x02);
	pulse(&p, 1);
	pulse(&p, 3);
	assert_int_equal(pic_ack(&p), 0x23);
	pic_io_write(&p, 0x20, 0x20);
	assert_false(pic_pending(&p));
	pic_io_write(&p, 0x21, 0x00);
	assert_int_equal(pic_ack(&p), 0x21);
}

static void test_edge_only(void **state)
{
	(void)state;
	struct pic p;
	pic_init(&p);
	program(&p, 0x01);
	/* a level held high requests once */
	pic_set_irq(&p, 5, 1);
	assert_int_equal(pic_ack(&p), 0x25);
	pic_io_write(&p, 0x20, 0x20);
	pic_set_irq(&p, 5, 1);
	assert_false(pic_pending(&p));
	/* a new rising edge requests again */
	pic_set_irq(&p, 5, 0);
	pic_set_irq(&p, 5, 1);
	assert_true(pic_pending(&p));
	/* ICW1 clears the latch: the held line must rise again */
	program(&p, 0x01);
	assert_false(pic_pending(&p));
	pic_set_irq(&p, 5, 0);
	pic_set_irq(&p, 5, 1);
	assert_int_equal(pic_ack(&p), 0x25);
}

static void test_cascade(void **state)
{
	(void)state;
	struct pic p;
	pic_init(&p);
	program(&p, 0x01);
	pulse(&p, 12);
	assert_true(pic_pending(&p));
	assert_int_equal(pic_ack(&p), 0x2c);
	assert_int_equal(p.chip[0].isr, 0x04);
	assert_int_equal(p.chip[1].isr, 0x10);
	/* slave IRQs rank at IRQ 2's place: IRQ 1 still nests */
	pulse(&p, 1);
	pulse(&p, 3);
	assert_int_equal(pic_ack(&p), 0x21);
	pic_io_write(&p, 0x20, 0x20);
	/* a higher slave IRQ while a lower one is in service */
	pulse(&p, 8);
	pic_io_write(&p, 0xa0, 0x20);
	pic_io_write(&p, 0x20, 0x20);
	assert_int_equal(pic_ack(&p), 0x28);
	pic_io_write(&p, 0xa0, 0x20);
	pic_io_write(&p, 0x20, 0x20);
	assert_int_equal(pic_ack(&p), 0x23);
	pic_io_write(&p, 0x20, 0x20);
	assert_false(pic_pending(&p));
	/* the slave's mask and the master's IRQ 2 mask both hold it */
	pic_io_write(&p, 0xa1, 0x01);
	pulse(&p, 8);
	assert_false(pic_pending(&p));
	pic_io_write(&p, 0xa1, 0x00);
	pic_io_write(&p, 0x21, 0x04);
	assert_false(pic_pending(&p));
	pic_io_write(&p, 0x21, 0x00);
	assert_int_equal(pic_ack(&p), 0x28);
	/* IRQ 2 is the cascade, not an input */
	pic_io_write(&p, 0xa0, 0x20);
	pic_io_write(&p, 0x20, 0x20);
	pulse(&p, 2);
	assert_false(pic_pending(&p));
}

static void test_auto_eoi_and_rotation(void **state)
{
	(void)state;
	struct pic p;
	pic_init(&p);
	program(&p, 0x03); /* 8086 mode, AEOI */
	pulse(&p, 6);
	assert_int_equal(pic_ack(&p), 0x26);
	assert_int_equal(p.chip[0].isr, 0);
	pulse(&p, 7);
	assert_int_equal(pic_ack(&p), 0x27);
	/* rotate in AEOI mode: the served IR becomes the lowest */
	program(&p, 0x03);
	pic_io_write(&p, 0x20, 0x80);
	pulse(&p, 1);
	assert_int_equal(pic_ack(&p), 0x21);
	pulse(&p, 1);
	pulse(&p, 3);
	assert_int_equal(pic_ack(&p), 0x23);
	pic_io_write(&p, 0x20, 0x00); /* clear rotate in AEOI */
	/* set priority: IR 5 lowest, so IR 6 is the highest */
	program(&p, 0x01);
	pic_io_write(&p, 0x20, 0xc5);
	pulse(&p, 0);
	pulse(&p, 6);
	assert_int_equal(pic_ack(&p), 0x26);
	/* rotate on non-specific EOI: IR 6 becomes the lowest */
	pic_io_write(&p, 0x20, 0xa0);
	assert_int_equal(p.chip[0].priority_add, 7);
	assert_int_equal(pic_ack(&p), 0x20); /* IR 0 now outranks IR 1-6 */
	pic_io_write(&p, 0x20, 0xe0); /* rotate on specific EOI, IR 0 */
	assert_int_equal(p.chip[0].priority_add, 1);
	assert_int_equal(p.chip[0].isr, 0);
}

static void test_spurious(void **state)
{
	(void)state;
	struct pic p;
	pic_init(&p);
	program(&p, 0x01);
	/* nothing pending: IRQ 7's vector, nothing in service */
	assert_int_equal(pic_ack(&p), 0x27);
	assert_int_equal(p.chip[0].isr, 0);
	/* the request vanished (masked) before INTA */
	pulse(&p, 3);
	assert_true(pic_pending(&p));
	pic_io_write(&p, 0x21, 0x08);
	assert_int_equal(pic_ack(&p), 0x27);
	assert_int_equal(p.chip[0].isr, 0);
	/* the master saw the slave, whose request vanished: IRQ 15 */
	pic_io_write(&p, 0x21, 0x00);
	pulse(&p, 10);
	p.chip[1].imr = 0x04; /* as if masked between INT and INTA */
	p.chip[0].irr |= 0x04;
	assert_int_equal(pic_ack(&p), 0x2f);
	assert_int_equal(p.chip[0].isr, 0x04);
	assert_int_equal(p.chip[1].isr, 0);
}

static void test_poll_and_special_mask(void **state)
{
	(void)state;
	struct pic p;
	pic_init(&p);
	program(&p, 0x01);
	pulse(&p, 5);
	pic_io_write(&p, 0x20, 0x0c); /* poll */
	assert_int_equal(pic_io_read(&p, 0x20), 0x85);
	assert_int_equal(p.chip[0].isr, 0x20);
	pic_io_write(&p, 0x20, 0x0c);
	assert_int_equal(pic_io_read(&p, 0x20), 0x00);
	pic_io_write(&p, 0x20, 0x20);
	/* special mask mode: masking the IR in service lets lower ones in */
	pulse(&p, 1);
	assert_int_equal(pic_ack(&p), 0x21);
	pulse(&p, 4);
	assert_false(pic_pending(&p));
	pic_io_write(&p, 0x20, 0x68); /* set SMM */
	pic_io_write(&p, 0x21, 0x02);
	assert_int_equal(pic_ack(&p), 0x24);
	pic_io_write(&p, 0x20, 0x48); /* reset SMM */
	assert_int_equal(p.chip[0].special_mask, 0);
}

static void test_bad_input(void **state)
{
	(void)state;
	struct pic p;
	pic_init(&p);
	program(&p, 0x01);
	struct pic before = p;
	pic_set_irq(&p, 16, 1);
	pic_set_irq(&p, 0xffffffffu, 1);
	assert_memory_equal(&p, &before, sizeof(p));
	assert_int_equal(pic_io_read(&p, 0x22), 0xff);
	assert_int_equal(pic_io_read(&p, 0x40), 0xff);
	pic_io_write(&p, 0x22, 0x11);
	pic_io_write(&p, 0xffff, 0x11);
	assert_memory_equal(&p, &before, sizeof(p));
	/* every byte on every port, in any order, keeps the state sane */
	srand(1);
	static const uint16_t ports[] = { 0x20, 0x21, 0xa0, 0xa1 };
	for (int i = 0; i < 200000; i++) {
		unsigned r = (unsigned)rand();
		if (r % 5 == 0)
			pic_set_irq(&p, r >> 8 & 15, (r >> 12) & 1);
		else if (r % 5 == 1)
			(void)pic_io_read(&p, ports[r >> 8 & 3]);
		else if (r % 5 == 2 && pic_pending(&p))
			assert_true(pic_ack(&p) >= 0);
		else
			pic_io_write(&p, ports[r >> 8 & 3], (uint8_t)(r >> 16));
		for (int c = 0; c < 2; c++) {
			assert_true(p.chip[c].priority_add < 8);
			assert_true(p.chip[c].init_step <= 4);
			assert_int_equal(p.chip[c].base & 7, 0);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_power_on_masked),
		cmocka_unit_test(test_init_sequence),
		cmocka_unit_test(test_priority_and_eoi),
		cmocka_unit_test(test_mask),
		cmocka_unit_test(test_edge_only),
		cmocka_unit_test(test_cascade),
		cmocka_unit_test(test_auto_eoi_and_rotation),
		cmocka_unit_test(test_spurious),
		cmocka_unit_test(test_poll_and_special_mask),
		cmocka_unit_test(test_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
