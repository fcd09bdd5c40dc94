/* The 8254 model (vmm/pit.c): counts and OUT edges as pure functions of
 * the guest times passed in; the modes Linux and the SDK use; latch and
 * read-back; port 0x61; hostile port writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "vmm/pit.h"

/* Guest ns of tick t after a load at 0: ceil(t * 1e9 / PIT_HZ). */
static uint64_t tick_ns(uint64_t t)
{
	return (t * 1000000000ull + PIT_HZ - 1) / PIT_HZ;
}

static void program(struct pit *p, unsigned ch, unsigned mode, uint32_t n,
		    uint64_t now)
{
	pit_io_write(p, 0x43, (uint8_t)(ch << 6 | 0x30 | mode << 1), now);
	pit_io_write(p, (uint16_t)(0x40 + ch), (uint8_t)n, now);
	pit_io_write(p, (uint16_t)(0x40 + ch), (uint8_t)(n >> 8), now);
}

static uint16_t read16(struct pit *p, unsigned ch, uint64_t now)
{
	uint16_t lo = pit_io_read(p, (uint16_t)(0x40 + ch), now);
	return (uint16_t)(lo | pit_io_read(p, (uint16_t)(0x40 + ch), now) << 8);
}

static void test_idle_after_power_on(void **state)
{
	(void)state;
	struct pit p;
	pit_init(&p);
	assert_int_equal(pit_irq0_edges(&p, 10000000000ull), 0);
	assert_true(pit_next_edge_ns(&p, 0) == UINT64_MAX);
}

static void test_mode0_one_shot(void **state)
{
	(void)state;
	struct pit p;
	pit_init(&p);
	uint64_t t0 = 5000;
	program(&p, 0, 0, 1000, t0);
	assert_true(pit_next_edge_ns(&p, t0) == t0 + tick_ns(1000));
	assert_int_equal(read16(&p, 0, t0), 1000);
	assert_int_equal(read16(&p, 0, t0 + tick_ns(400)), 600);
	/* one nanosecond early: nothing; on time: the edge */
	assert_int_equal(pit_irq0_edges(&p, t0 + tick_ns(1000) - 1), 0);
	assert_int_equal(pit_irq0_edges(&p, t0 + tick_ns(1000)), 1);
	assert_int_equal(pit_irq0_edges(&p, t0 + tick_ns(50000)), 0);
	assert_true(pit_next_edge_ns(&p, t0 + tick_ns(1000)) == UINT64_MAX);
	/* after terminal count the counter wraps and goes on */
	assert_int_equal(read16(&p, 0, t0 + tick_ns(1001)), 0xffff);
	/* OUT0 is high in the status byte */
	pit_io_write(&p, 0x43, 0xe2, t0 + tick_ns(1001));
	assert_int_equal(pit_io_read(&p, 0x40, 0) & 0x80, 0x80);
	/* a new count re-arms */
	uint64_t t1 = t0 + tick_ns(2000);
	program(&p, 0, 0, 10, t1);
	assert_int_equal(pit_irq0_edges(&p, t1 + tick_ns(10)), 1);
}

static void test_mode2_rate(void **state)
{
	(void)state;
	struct pit p;
	pit_init(&p);
	/* Linux's HZ=1000 tick: count 1193 */
	program(&p, 0, 2, 1193, 0);
	uint64_t now = 0, total = 0;
	for (int i = 1; i <= 1000; i++) {
		uint64_t next = pit_next_edge_ns(&p, now);
		assert_true(next == tick_ns((uint64_t)i * 1193));
		assert_int_equal(pit_irq0_edges(&p, next - 1), 0);
		total += pit_irq0_edges(&p, next);
		now = next;
	}
	assert_int_equal(total, 1000);
	/* a late caller gets every edge since, at once */
	assert_int_equal(pit_irq0_edges(&p, tick_ns(1193ull * 1010)), 10);
	/* counts run N..1 */
	assert_int_equal(read16(&p, 0, tick_ns(1193ull * 1010)), 1193);
	assert_int_equal(read16(&p, 0, tick_ns(1193ull * 1010 + 1192)), 1);
	/* an edge due but not collected is the next deadline */
	assert_true(pit_next_edge_ns(&p, tick_ns(1193ull * 1020)) ==
		    tick_ns(1193ull * 1011));
	/* count 1 is illegal in mode 2: no edge storm */
	program(&p, 0, 2, 1, 0);
	assert_int_equal(pit_irq0_edges(&p, 1000000), 0);
	assert_true(pit_next_edge_ns(&p, 0) == UINT64_MAX);
}

static void test_mode3_square(void **state)
{
	(void)state;
	struct pit p;
	pit_init(&p);
	program(&p, 0, 3, 0, 1000); /* 0 is 65536: 18.2 Hz */
	assert_true(pit_next_edge_ns(&p, 1000) == 1000 + tick_ns(65536));
	assert_int_equal(pit_irq0_edges(&p, 1000 + tick_ns(65536 * 3)), 3);
	/* counts go down by two and are even */
	uint16_t a = read16(&p, 0, 1000 + tick_ns(65536 * 3 + 100));
	assert_int_equal(a & 1, 0);
	assert_int_equal(a, (uint16_t)(65536 - 200));
	/* OUT high for the first half, low for the second */
	program(&p, 2, 3, 100, 0);
	pit_io_write(&p, 0x61, 0x01, 0); /* gate 2 up: starts */
	assert_int_equal(pit_io_read(&p, 0x61, tick_ns(10)) & 0x20, 0x20);
	assert_int_equal(pit_io_read(&p, 0x61, tick_ns(60)) & 0x20, 0x00);
	assert_int_equal(pit_io_read(&p, 0x61, tick_ns(110)) & 0x20, 0x20);
}

static void test_mode4_strobe(void **state)
{
	(void)state;
	struct pit p;
	pit_init(&p);
	program(&p, 0, 4, 100, 0);
	assert_true(pit_next_edge_ns(&p, 0) == tick_ns(101));
	assert_int_equal(pit_irq0_edges(&p, tick_ns(100)), 0);
	assert_int_equal(pit_irq0_edges(&p, tick_ns(101)), 1);
	assert_int_equal(pit_irq0_edges(&p, tick_ns(100000)), 0);
	/* modes 1 and 5 wait for a gate edge counter 0 never sees */
	program(&p, 0, 1, 100, 0);
	assert_int_equal(pit_irq0_edges(&p, tick_ns(100000)), 0);
	assert_true(pit_next_edge_ns(&p, 0) == UINT64_MAX);
}

static void test_latch_and_access(void **state)
{
	(void)state;
	struct pit p;
	pit_init(&p);
	program(&p, 0, 2, 5000, 0);
	/* the latch freezes the count until both bytes are read */
	pit_io_write(&p, 0x43, 0x00, tick_ns(1000));
	assert_int_equal(pit_io_read(&p, 0x40, tick_ns(3000)), 4000 & 0xff);
	/* a second latch command before the read ends is ignored */
	pit_io_write(&p, 0x43, 0x00, tick_ns(3000));
	assert_int_equal(pit_io_read(&p, 0x40, tick_ns(4000)), 4000 >> 8);
	/* then live counts again */
	assert_int_equal(read16(&p, 0, tick_ns(4000)), 1000);
	/* lobyte only, hibyte only */
	pit_io_write(&p, 0x43, 0x14, 0); /* ch 0, lobyte, mode 2 */
	pit_io_write(&p, 0x40, 200, 0);
	assert_int_equal(pit_io_read(&p, 0x40, tick_ns(50)), 150);
	assert_int_equal(pit_io_read(&p, 0x40, tick_ns(50)), 150);
	pit_io_write(&p, 0x43, 0x24, 0); /* hibyte */
	pit_io_write(&p, 0x40, 0x02, 0); /* 512 */
	assert_true(pit_next_edge_ns(&p, 0) == tick_ns(512));
	assert_int_equal(pit_io_read(&p, 0x40, tick_ns(1)), 0x01);
	/* read-back: status of counter 0 and the count of 1 */
	program(&p, 1, 2, 300, 0);
	pit_io_write(&p, 0x43, 0xc0 | 0x20 | 0x02, tick_ns(10)); /* status 0 */
	assert_int_equal(pit_io_read(&p, 0x40, tick_ns(11)),
			 0x80 | 0x20 | 2 << 1);
	pit_io_write(&p, 0x43, 0xc0 | 0x10 | 0x04, tick_ns(10)); /* count 1 */
	assert_int_equal(read16(&p, 1, tick_ns(200)), 290);
	/* the control word is write-only; null count until a count */
	assert_int_equal(pit_io_read(&p, 0x43, 0), 0xff);
	pit_io_write(&p, 0x43, 0x74, 0);
	pit_io_write(&p, 0x43, 0xe4, 0);
	assert_int_equal(pit_io_read(&p, 0x41, 0) & 0x40, 0x40);
}

static void test_gate2(void **state)
{
	(void)state;
	struct pit p;
	pit_init(&p);
	/* Linux's PIT calibration: gate up, mode 0, poll bit 5 */
	pit_io_write(&p, 0x61, 0x01, 0);
	program(&p, 2, 0, 1000, 0);
	assert_int_equal(pit_io_read(&p, 0x61, tick_ns(999)) & 0x21, 0x01);
	assert_int_equal(pit_io_read(&p, 0x61, tick_ns(1000)) & 0x20, 0x20);
	/* gate low pauses mode 0; high resumes */
	program(&p, 2, 0, 1000, 0);
	pit_io_write(&p, 0x61, 0x00, tick_ns(300));
	assert_int_equal(read16(&p, 2, tick_ns(5000)), 700);
	pit_io_write(&p, 0x61, 0x01, tick_ns(5000));
	assert_int_equal(read16(&p, 2, tick_ns(5000) + tick_ns(100)), 600);
	/* the refresh bit toggles with guest time */
	assert_int_equal(pit_io_read(&p, 0x61, 0) & 0x10, 0);
	assert_int_equal(pit_io_read(&p, 0x61, 15085) & 0x10, 0x10);
	/* counter 2 never makes IRQ 0 edges */
	assert_int_equal(pit_irq0_edges(&p, tick_ns(100000)), 0);
}

static void test_same_times_same_reads(void **state)
{
	(void)state;
	struct pit a, b;
	pit_init(&a);
	pit_init(&b);
	program(&a, 0, 2, 777, 123);
	program(&b, 0, 2, 777, 123);
	for (uint64_t t = 123; t < 50000000; t += 99991) {
		assert_int_equal(read16(&a, 0, t), read16(&b, 0, t));
		assert_int_equal(pit_irq0_edges(&a, t), pit_irq0_edges(&b, t));
	}
	/* time going backwards reads as not advancing */
	assert_int_equal(pit_irq0_edges(&a, 0), 0);
}

static void test_bad_input(void **state)
{
	(void)state;
	struct pit p;
	pit_init(&p);
	assert_int_equal(pit_io_read(&p, 0x44, 0), 0xff);
	assert_int_equal(pit_io_read(&p, 0x3f, 0), 0xff);
	struct pit before = p;
	pit_io_write(&p, 0x44, 0x34, 0);
	pit_io_write(&p, 0xffff, 0x34, 0);
	assert_memory_equal(&p, &before, sizeof(p));
	/* any byte on any port at any time keeps the state in range */
	static const uint16_t ports[] = { 0x40, 0x41, 0x42, 0x43, 0x61 };
	srand(2);
	uint64_t now = 0;
	for (int i = 0; i < 200000; i++) {
		unsigned r = (unsigned)rand();
		now += (uint64_t)(r % 100000);
		uint16_t port = ports[(r >> 8) % 5];
		if (r & 1)
			(void)pit_io_read(&p, port, now);
		else
			pit_io_write(&p, port, (uint8_t)(r >> 16), now);
		(void)pit_irq0_edges(&p, now);
		uint64_t next = pit_next_edge_ns(&p, now);
		assert_true(next > now || next == UINT64_MAX);
		for (int c = 0; c < 3; c++) {
			assert_true(p.ch[c].mode <= 5);
			assert_true(p.ch[c].access >= 1 && p.ch[c].access <= 3);
			assert_true(p.ch[c].count >= 1 && p.ch[c].count <= 65536);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_after_power_on),
		cmocka_unit_test(test_mode0_one_shot),
		cmocka_unit_test(test_mode2_rate),
		cmocka_unit_test(test_mode3_square),
		cmocka_unit_test(test_mode4_strobe),
		cmocka_unit_test(test_latch_and_access),
		cmocka_unit_test(test_gate2),
		cmocka_unit_test(test_same_times_same_reads),
		cmocka_unit_test(test_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
