/* Unit tests for kg_parse_u64 and kg_parse_double (base/parse.h). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/parse.h"

static void u64_ok(const char *s, int base, uint64_t min, uint64_t max,
		   uint64_t want)
{
	uint64_t v = 0xdead;
	if (kg_parse_u64(s, base, min, max, &v) != 0)
		fail_msg("'%s' (base %d): unexpected failure", s, base);
	if (v != want)
		fail_msg("'%s': got %llu, want %llu", s, (unsigned long long)v,
			 (unsigned long long)want);
}

/* Fails, leaving *out and errno as they were. */
static void u64_bad(const char *s, int base, uint64_t min, uint64_t max)
{
	uint64_t v = 0x1234;
	errno = 77;
	if (kg_parse_u64(s, base, min, max, &v) != -1)
		fail_msg("'%s' (base %d): accepted as %llu", s ? s : "(null)",
			 base, (unsigned long long)v);
	assert_int_equal(v, 0x1234);
	assert_int_equal(errno, 77);
}

static void test_u64_accepts(void **state)
{
	(void)state;
	u64_ok("0", 10, 0, 10, 0);
	u64_ok("10", 10, 0, 10, 10);
	u64_ok("1", 10, 1, 1, 1);
	u64_ok("007", 10, 0, 100, 7);
	u64_ok("18446744073709551615", 10, 0, UINT64_MAX, UINT64_MAX);
	u64_ok("ff", 16, 0, UINT64_MAX, 255);
	u64_ok("0x10", 16, 0, UINT64_MAX, 16);
	u64_ok("FFFFFFFFFFFFFFFF", 16, 0, UINT64_MAX, UINT64_MAX);
}

static void test_u64_range(void **state)
{
	(void)state;
	u64_bad("0", 10, 1, 10);
	u64_bad("11", 10, 1, 10);
	u64_bad("1025", 10, 1, 1024);
	/* one past UINT64_MAX overflows (ERANGE), it does not saturate */
	u64_bad("18446744073709551616", 10, 0, UINT64_MAX);
	u64_bad("10000000000000000", 16, 0, UINT64_MAX);
}

static void test_u64_rejects_text(void **state)
{
	(void)state;
	u64_bad(NULL, 10, 0, 10);
	u64_bad("", 10, 0, 10);
	u64_bad("-1", 10, 0, UINT64_MAX); /* strtoull would wrap it */
	u64_bad("+1", 10, 0, 10);
	u64_bad(" 1", 10, 0, 10);
	u64_bad("1 ", 10, 0, 10);
	u64_bad("1x", 10, 0, 10);
	u64_bad("abc", 10, 0, 10);
	u64_bad("1.5", 10, 0, 10);
	u64_bad("ff", 10, 0, 1000);
	u64_bad("fg", 16, 0, 1000);
	u64_bad("0x", 16, 0, 1000);
	u64_bad("1", 8, 0, 10); /* only bases 10 and 16 */
}

static void real_ok(const char *s, double min, double max, bool open,
		    double want)
{
	double v = -99;
	if (kg_parse_double(s, min, max, open, &v) != 0)
		fail_msg("'%s': unexpected failure", s);
	if (!(v == want || (isinf(v) && isinf(want))))
		fail_msg("'%s': got %g, want %g", s, v, want);
}

static void real_bad(const char *s, double min, double max, bool open)
{
	double v = 1234;
	errno = 77;
	if (kg_parse_double(s, min, max, open, &v) != -1)
		fail_msg("'%s': accepted as %g", s ? s : "(null)", v);
	assert_true(v == 1234);
	assert_int_equal(errno, 77);
}

static void test_real_accepts(void **state)
{
	(void)state;
	real_ok("0", 0, 1, false, 0);
	real_ok("1", 0, 1, false, 1);
	real_ok("0.25", 0, 1, false, 0.25);
	real_ok("2e3", 0, 86400, true, 2000);
	real_ok("-0.5", -1, 1, false, -0.5);
	real_ok("-0", 0, 1, false, 0); /* -0.0 == 0: in range */
	real_ok("inf", 0, INFINITY, true, INFINITY);
}

static void test_real_range(void **state)
{
	(void)state;
	real_bad("0", 0, 1, true); /* open at min */
	real_bad("1.0001", 0, 1, false);
	real_bad("-0.1", 0, 1, false);
	real_bad("inf", 0, 86400, true);
	real_bad("nan", 0, INFINITY, false);
	real_bad("1e999", 0, 1e7, true); /* ERANGE: HUGE_VAL, out of range */
}

static void test_real_rejects_text(void **state)
{
	(void)state;
	real_bad(NULL, 0, 1, false);
	real_bad("", 0, 1, false);
	real_bad(" 1", 0, 1, false);
	real_bad("+1", 0, 1, false);
	real_bad("1 ", 0, 1, false);
	real_bad("0.5s", 0, 1, false);
	real_bad("abc", 0, 1, false);
	real_bad("-", 0, 1, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_u64_accepts),
		cmocka_unit_test(test_u64_range),
		cmocka_unit_test(test_u64_rejects_text),
		cmocka_unit_test(test_real_accepts),
		cmocka_unit_test(test_real_range),
		cmocka_unit_test(test_real_rejects_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
