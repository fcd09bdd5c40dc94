/* Unit tests for the CMOS RTC model (vmm/rtc.h) and its field table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/rtc.h"

#define S 1000000000ull

/* 2024-02-29 13:05:09 UTC, a Thursday. */
#define LEAP_DAY 1709211909ll

static uint8_t rd(struct rtc *r, uint8_t reg, uint64_t ns)
{
	rtc_io_write(r, RTC_PORT_INDEX, reg, ns);
	return rtc_io_read(r, RTC_PORT_DATA, ns);
}

static void wr(struct rtc *r, uint8_t reg, uint8_t v, uint64_t ns)
{
	rtc_io_write(r, RTC_PORT_INDEX, reg, ns);
	rtc_io_write(r, RTC_PORT_DATA, v, ns);
}

struct regs {
	uint8_t sec, min, hour, wday, day, mon, year, century;
};

static struct regs read_time(struct rtc *r, uint64_t ns)
{
	return (struct regs){ rd(r, RTC_SECONDS, ns), rd(r, RTC_MINUTES, ns),
			      rd(r, RTC_HOURS, ns), rd(r, RTC_DAY_OF_WEEK, ns),
			      rd(r, RTC_DAY, ns), rd(r, RTC_MONTH, ns),
			      rd(r, RTC_YEAR, ns), rd(r, RTC_CENTURY, ns) };
}

static void expect(struct regs g, struct regs w)
{
	assert_int_equal(g.sec, w.sec);
	assert_int_equal(g.min, w.min);
	assert_int_equal(g.hour, w.hour);
	assert_int_equal(g.wday, w.wday);
	assert_int_equal(g.day, w.day);
	assert_int_equal(g.mon, w.mon);
	assert_int_equal(g.year, w.year);
	assert_int_equal(g.century, w.century);
}

static void test_power_on_bcd_24h(void **state)
{
	(void)state;
	struct rtc r;
	rtc_init(&r, LEAP_DAY);
	assert_int_equal(rd(&r, RTC_REG_B, 0), RTC_B_24H);
	assert_int_equal(rd(&r, RTC_REG_A, 0), 0x26);
	assert_int_equal(rd(&r, RTC_REG_D, 0), RTC_D_VRT);
	assert_int_equal(rd(&r, RTC_REG_C, 0), 0);
	expect(read_time(&r, 0),
	       (struct regs){ 0x09, 0x05, 0x13, 5, 0x29, 0x02, 0x24, 0x20 });
	/* the guest's clock drives it: 3 s and 1 day later */
	expect(read_time(&r, 3 * S + 999),
	       (struct regs){ 0x12, 0x05, 0x13, 5, 0x29, 0x02, 0x24, 0x20 });
	expect(read_time(&r, 86400 * S),
	       (struct regs){ 0x09, 0x05, 0x13, 6, 0x01, 0x03, 0x24, 0x20 });
	assert_true(rtc_wall_s(&r, 7 * S) == LEAP_DAY + 7);
}

static void test_binary_and_12h(void **state)
{
	(void)state;
	struct rtc r;
	rtc_init(&r, LEAP_DAY);
	wr(&r, RTC_REG_B, RTC_B_24H | RTC_B_BINARY, 0);
	expect(read_time(&r, 0),
	       (struct regs){ 9, 5, 13, 5, 29, 2, 24, 20 });
	wr(&r, RTC_REG_B, RTC_B_BINARY, 0); /* 12-hour, binary */
	assert_int_equal(rd(&r, RTC_HOURS, 0), 0x80 | 1); /* 1 PM */
	wr(&r, RTC_REG_B, 0, 0); /* 12-hour, BCD */
	assert_int_equal(rd(&r, RTC_HOURS, 0), 0x81);
	/* midnight is 12 AM, noon 12 PM, 11:xx PM is 0x91 */
	struct rtc m;
	rtc_init(&m, 946684800); /* 2000-01-01 00:00:00, a Saturday */
	wr(&m, RTC_REG_B, 0, 0);
	assert_int_equal(rd(&m, RTC_HOURS, 0), 0x12);
	assert_int_equal(rd(&m, RTC_DAY_OF_WEEK, 0), 7);
	assert_int_equal(rd(&m, RTC_HOURS, 12 * 3600 * S), 0x92);
	assert_int_equal(rd(&m, RTC_HOURS, 23 * 3600 * S), 0x91);
	/* a 12-hour write of 12 AM sets midnight */
	wr(&m, RTC_HOURS, 0x12, 5 * 3600 * S);
	assert_true(rtc_wall_s(&m, 5 * 3600 * S) == 946684800);
	wr(&m, RTC_HOURS, 0x92, 5 * 3600 * S); /* 12 PM */
	assert_true(rtc_wall_s(&m, 5 * 3600 * S) == 946684800 + 12 * 3600);
}

/* Dates across the range, including leap rules and the ends. */
static void test_calendar(void **state)
{
	(void)state;
	static const struct {
		int64_t t;
		struct regs r; /* binary, 24-hour */
	} cases[] = {
		{ 0, { 0, 0, 0, 5, 1, 1, 70, 19 } },
		{ 951782400, { 0, 0, 0, 3, 29, 2, 0, 20 } }, /* 2000-02-29 */
		{ 4107542399, { 59, 59, 23, 1, 28, 2, 0, 21 } },
		{ 4107542400, { 0, 0, 0, 2, 1, 3, 0, 21 } }, /* no 2100-02-29 */
		{ -1, { 59, 59, 23, 4, 31, 12, 69, 19 } },
		{ RTC_MAX_S, { 59, 59, 23, 6, 31, 12, 99, 99 } },
		{ RTC_MIN_S, { 0, 0, 0, 7, 1, 1, 0, 0 } },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rtc r;
		rtc_init(&r, cases[i].t);
		wr(&r, RTC_REG_B, RTC_B_24H | RTC_B_BINARY, 0);
		expect(read_time(&r, 0), cases[i].r);
	}
	/* the clock stops at the end of year 9999 */
	struct rtc r;
	rtc_init(&r, RTC_MAX_S);
	assert_true(rtc_wall_s(&r, 10 * S) == RTC_MAX_S);
}

/* Whatever second the registers show, writing them back under SET gives
 * that second again, in every format. */
static void test_registers_round_trip(void **state)
{
	(void)state;
	static const uint8_t formats[] = { RTC_B_24H, RTC_B_24H | RTC_B_BINARY,
					   0, RTC_B_BINARY };
	static const uint8_t time_regs[] = { RTC_SECONDS, RTC_MINUTES,
					     RTC_HOURS, RTC_DAY, RTC_MONTH,
					     RTC_YEAR, RTC_CENTURY };
	srand(42);
	for (int n = 0; n < 4000; n++) {
		int64_t t = RTC_MIN_S +
			    (int64_t)(((uint64_t)rand() << 31 ^ (uint64_t)rand()) %
				      (uint64_t)(RTC_MAX_S - RTC_MIN_S));
		uint8_t b = formats[n % 4];
		struct rtc a, c;
		rtc_init(&a, t);
		rtc_init(&c, 0);
		wr(&a, RTC_REG_B, b, 0);
		wr(&c, RTC_REG_B, b | RTC_B_SET, 0);
		for (size_t i = 0; i < sizeof(time_regs); i++)
			wr(&c, time_regs[i], rd(&a, time_regs[i], 0), 0);
		wr(&c, RTC_REG_B, b, 0);
		assert_true(rtc_wall_s(&c, 0) == t);
	}
}

static void test_set_holds_and_moves_the_clock(void **state)
{
	(void)state;
	struct rtc r;
	rtc_init(&r, LEAP_DAY);
	uint64_t ns = 100 * S;
	wr(&r, RTC_REG_B, RTC_B_24H | RTC_B_SET, ns);
	/* held at the instant SET was written */
	expect(read_time(&r, ns + 5 * S),
	       (struct regs){ 0x49, 0x06, 0x13, 5, 0x29, 0x02, 0x24, 0x20 });
	/* the guest writes 1999-12-31 23:59:58 */
	wr(&r, RTC_SECONDS, 0x58, ns);
	wr(&r, RTC_MINUTES, 0x59, ns);
	wr(&r, RTC_HOURS, 0x23, ns);
	wr(&r, RTC_DAY, 0x31, ns);
	wr(&r, RTC_MONTH, 0x12, ns);
	wr(&r, RTC_YEAR, 0x99, ns);
	wr(&r, RTC_CENTURY, 0x19, ns);
	assert_int_equal(rd(&r, RTC_SECONDS, ns + 30 * S), 0x58);
	/* no update in progress while SET holds the registers */
	assert_int_equal(rd(&r, RTC_REG_A, ns + S - 1000) & RTC_A_UIP, 0);
	/* clearing SET starts the clock from them */
	wr(&r, RTC_REG_B, RTC_B_24H, ns + 30 * S);
	assert_true(rtc_wall_s(&r, ns + 30 * S) == 946684798);
	expect(read_time(&r, ns + 32 * S),
	       (struct regs){ 0x00, 0x00, 0x00, 7, 0x01, 0x01, 0x00, 0x20 });
	/* and the base moved with it */
	assert_true(r.base_s == 946684798 - 130);
}

/* Without SET a time register write sets the clock at once; the others
 * keep counting from the same instant. */
static void test_write_without_set(void **state)
{
	(void)state;
	struct rtc r;
	rtc_init(&r, LEAP_DAY);
	wr(&r, RTC_MINUTES, 0x30, 2 * S);
	expect(read_time(&r, 2 * S),
	       (struct regs){ 0x11, 0x30, 0x13, 5, 0x29, 0x02, 0x24, 0x20 });
	wr(&r, RTC_YEAR, 0x25, 2 * S); /* 2025 has no Feb 29: Mar 1 */
	expect(read_time(&r, 2 * S),
	       (struct regs){ 0x11, 0x30, 0x13, 7, 0x01, 0x03, 0x25, 0x20 });
	/* the day of week is derived, a write to it changes nothing */
	int64_t before = rtc_wall_s(&r, 2 * S);
	wr(&r, RTC_DAY_OF_WEEK, 0x02, 2 * S);
	assert_true(rtc_wall_s(&r, 2 * S) == before);
}

/* Garbage (invalid BCD, month 0, hour 0xff) gives some clamped date,
 * never undefined behaviour (UBSan watches) or a state the check
 * refuses. */
static void test_garbage_time_is_clamped(void **state)
{
	(void)state;
	static const uint8_t junk[] = { 0x00, 0xff, 0x99, 0x7f, 0x80, 0xaa };
	for (size_t j = 0; j < sizeof(junk); j++)
		for (uint8_t b = 0; b < 8; b++) {
			struct rtc r;
			rtc_init(&r, LEAP_DAY);
			wr(&r, RTC_REG_B, (uint8_t)(b | RTC_B_SET), UINT64_MAX);
			for (uint8_t i = 0; i <= RTC_YEAR; i++)
				wr(&r, i, junk[j], UINT64_MAX);
			wr(&r, RTC_CENTURY, junk[j], UINT64_MAX);
			wr(&r, RTC_REG_B, b, UINT64_MAX);
			int64_t t = rtc_wall_s(&r, UINT64_MAX);
			assert_true(t >= RTC_MIN_S && t <= RTC_MAX_S);
			assert_true(rtc_wall_s(&r, 0) >= RTC_MIN_S);
			struct vs_buf buf = { 0 };
			struct rtc back;
			assert_int_equal(vs_encode(&rtc_vs, &r, &buf, NULL), 0);
			rtc_init(&back, 0);
			assert_true(vs_decode(&rtc_vs, 1, &back, NULL, buf.data,
					      buf.len, NULL) > 0);
			vs_buf_free(&buf);
		}
}

static void test_uip(void **state)
{
	(void)state;
	struct rtc r;
	rtc_init(&r, LEAP_DAY);
	assert_int_equal(rd(&r, RTC_REG_A, 5 * S + S / 2), 0x26);
	assert_int_equal(rd(&r, RTC_REG_A, 5 * S + S - RTC_UIP_NS - 1), 0x26);
	assert_int_equal(rd(&r, RTC_REG_A, 5 * S + S - RTC_UIP_NS),
			 0x26 | RTC_A_UIP);
	assert_int_equal(rd(&r, RTC_REG_A, 6 * S - 1), 0x26 | RTC_A_UIP);
	/* during UIP the registers still hold the old second */
	assert_int_equal(rd(&r, RTC_SECONDS, 6 * S - 1), 0x14);
	assert_int_equal(rd(&r, RTC_SECONDS, 6 * S), 0x15);
	/* UIP is read-only; the other bits are stored */
	wr(&r, RTC_REG_A, 0xaf, 0);
	assert_int_equal(rd(&r, RTC_REG_A, 0), 0x2f);
}

static void test_cmos_ram(void **state)
{
	(void)state;
	struct rtc r;
	rtc_init(&r, LEAP_DAY);
	for (unsigned i = 0x0e; i < RTC_CMOS_SIZE; i++)
		if (i != RTC_CENTURY)
			wr(&r, (uint8_t)i, (uint8_t)(i * 7 + 3), 0);
	for (unsigned i = 0x0e; i < RTC_CMOS_SIZE; i++)
		if (i != RTC_CENTURY)
			assert_int_equal(rd(&r, (uint8_t)i, 9 * S),
					 (uint8_t)(i * 7 + 3));
	/* alarms are RAM too */
	wr(&r, RTC_HOURS_ALARM, 0x42, 0);
	assert_int_equal(rd(&r, RTC_HOURS_ALARM, S), 0x42);
	assert_int_equal(rd(&r, RTC_HOURS, S), 0x13);
	/* C and D are read-only */
	wr(&r, RTC_REG_C, 0xff, 0);
	wr(&r, RTC_REG_D, 0x00, 0);
	assert_int_equal(rd(&r, RTC_REG_C, 0), 0);
	assert_int_equal(rd(&r, RTC_REG_D, 0), RTC_D_VRT);
	/* a reboot keeps the time and the RAM, drops interrupt enables */
	wr(&r, RTC_REG_B, 0x7a, 0);
	rtc_reset(&r);
	assert_int_equal(rd(&r, RTC_REG_B, 0), 0x02);
	assert_int_equal(rd(&r, 0x40, 0), (uint8_t)(0x40 * 7 + 3));
	assert_true(rtc_wall_s(&r, 0) == LEAP_DAY);
}

/* Bit 7 of the index port is the NMI mask: ignored; the index has 7
 * bits, so no value selects a register past the RAM; port 0x70 reads as
 * all ones. */
static void test_index_port(void **state)
{
	(void)state;
	struct rtc r;
	rtc_init(&r, LEAP_DAY);
	wr(&r, 0x10, 0x5a, 0);
	rtc_io_write(&r, RTC_PORT_INDEX, 0x80 | 0x10, 0);
	assert_int_equal(r.index, 0x10);
	assert_int_equal(rtc_io_read(&r, RTC_PORT_DATA, 0), 0x5a);
	rtc_io_write(&r, RTC_PORT_INDEX, 0x80 | RTC_SECONDS, 0);
	assert_int_equal(rtc_io_read(&r, RTC_PORT_DATA, 0), 0x09);
	rtc_io_write(&r, RTC_PORT_INDEX, 0xff, 0);
	assert_int_equal(r.index, 0x7f);
	rtc_io_write(&r, RTC_PORT_DATA, 0x33, 0);
	assert_int_equal(r.cmos[0x7f], 0x33);
	assert_int_equal(rtc_io_read(&r, RTC_PORT_INDEX, 0), 0xff);
	/* other ports: no effect */
	rtc_io_write(&r, 0x72, 0x01, 0);
	assert_int_equal(rtc_io_read(&r, 0x72, 0), 0xff);
	assert_int_equal(r.index, 0x7f);
}

/* Through the field table: a decoded copy (starting from other values)
 * reads the same time and RAM; SET-held registers travel too. */
static void test_table_round_trip(void **state)
{
	(void)state;
	struct rtc a, b;
	rtc_init(&a, LEAP_DAY);
	wr(&a, 0x20, 0x77, 0);
	wr(&a, RTC_REG_B, RTC_B_BINARY, 0);
	wr(&a, RTC_MINUTES, 44, 3 * S);
	rtc_io_write(&a, RTC_PORT_INDEX, RTC_YEAR, 0);
	struct vs_buf buf = { 0 };
	assert_int_equal(vs_encode(&rtc_vs, &a, &buf, NULL), 0);
	rtc_init(&b, 12345);
	struct kg_err e;
	assert_true(vs_decode(&rtc_vs, 1, &b, NULL, buf.data, buf.len, &e) ==
		    (long)buf.len);
	vs_buf_free(&buf);
	assert_int_equal(b.index, RTC_YEAR);
	assert_true(b.base_s == a.base_s);
	expect(read_time(&b, 50 * S), read_time(&a, 50 * S));
	assert_int_equal(rd(&b, 0x20, 0), 0x77);
	assert_int_equal(rd(&b, RTC_REG_B, 0), RTC_B_BINARY);

	wr(&a, RTC_REG_B, RTC_B_SET | RTC_B_24H, 60 * S);
	wr(&a, RTC_SECONDS, 0x33, 60 * S);
	buf = (struct vs_buf){ 0 };
	assert_int_equal(vs_encode(&rtc_vs, &a, &buf, NULL), 0);
	rtc_init(&b, 0);
	assert_true(vs_decode(&rtc_vs, 1, &b, NULL, buf.data, buf.len, &e) > 0);
	vs_buf_free(&buf);
	assert_int_equal(rd(&b, RTC_SECONDS, 99 * S), 0x33);
	wr(&b, RTC_REG_B, RTC_B_24H, 99 * S);
	assert_int_equal(rd(&b, RTC_SECONDS, 99 * S), 0x33);
}

/* A state no guest can make is refused by the table: a time base past
 * any date the chip shows, an index past the RAM. */
static void test_bad_state_refused(void **state)
{
	(void)state;
	struct rtc a, b;
	struct kg_err e;
	struct vs_buf buf = { 0 };
	rtc_init(&a, 1ll << 41);
	assert_int_equal(vs_encode(&rtc_vs, &a, &buf, NULL), 0);
	rtc_init(&b, 0);
	assert_int_equal(vs_decode(&rtc_vs, 1, &b, NULL, buf.data, buf.len, &e),
			 -1);
	assert_non_null(strstr(e.msg, "rtc state: time base"));
	assert_non_null(strstr(e.msg, "out of range"));
	vs_buf_free(&buf);

	rtc_init(&a, -(1ll << 41));
	buf = (struct vs_buf){ 0 };
	assert_int_equal(vs_encode(&rtc_vs, &a, &buf, NULL), 0);
	assert_int_equal(vs_decode(&rtc_vs, 1, &b, NULL, buf.data, buf.len, &e),
			 -1);
	vs_buf_free(&buf);

	rtc_init(&a, LEAP_DAY);
	a.index = RTC_CMOS_SIZE;
	buf = (struct vs_buf){ 0 };
	assert_int_equal(vs_encode(&rtc_vs, &a, &buf, NULL), 0);
	assert_int_equal(vs_decode(&rtc_vs, 1, &b, NULL, buf.data, buf.len, &e),
			 -1);
	assert_non_null(strstr(e.msg, "'index' value 128 out of range"));
	vs_buf_free(&buf);

	/* a newer table version than this kagami reads */
	rtc_init(&a, LEAP_DAY);
	buf = (struct vs_buf){ 0 };
	assert_int_equal(vs_encode(&rtc_vs, &a, &buf, NULL), 0);
	assert_int_equal(vs_decode(&rtc_vs, 2, &b, NULL, buf.data, buf.len, &e),
			 -1);
	vs_buf_free(&buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_power_on_bcd_24h),
		cmocka_unit_test(test_binary_and_12h),
		cmocka_unit_test(test_calendar),
		cmocka_unit_test(test_registers_round_trip),
		cmocka_unit_test(test_set_holds_and_moves_the_clock),
		cmocka_unit_test(test_write_without_set),
		cmocka_unit_test(test_garbage_time_is_clamped),
		cmocka_unit_test(test_uip),
		cmocka_unit_test(test_cmos_ram),
		cmocka_unit_test(test_index_port),
		cmocka_unit_test(test_table_round_trip),
		cmocka_unit_test(test_bad_state_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
