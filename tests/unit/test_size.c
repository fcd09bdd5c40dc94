/* Unit tests for size_parse() (vmm/size.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/size.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define TiB (1ull << 40)

static void ok(const char *s, uint64_t want)
{
	uint64_t v = 0xdeadbeef;
	struct kg_err e = { 0 };
	if (size_parse(s, &v, &e) != 0)
		fail_msg("'%s': unexpected error: %s", s, e.msg);
	if (v != want)
		fail_msg("'%s': got %llu, want %llu", s, (unsigned long long)v,
			 (unsigned long long)want);
}

/* Expects an error containing `want`, and *out untouched. */
static void bad(const char *s, const char *want)
{
	uint64_t v = 0x1234;
	struct kg_err e = { 0 };
	int rc = size_parse(s, &v, &e);
	if (rc != -1)
		fail_msg("'%s': expected an error, got rc %d value %llu",
			 s ? s : "(null)", rc, (unsigned long long)v);
	if (!strstr(e.msg, want))
		fail_msg("'%s': message '%s' lacks '%s'", s ? s : "(null)",
			 e.msg, want);
	assert_int_equal(v, 0x1234);
}

static void test_bare_number_is_mib(void **state)
{
	(void)state;
	ok("0", 0);
	ok("1", MiB);
	ok("512", 512 * MiB);
	ok("4096", 4 * GiB);
	ok("0000064", 64 * MiB);
}

static void test_suffixes(void **state)
{
	(void)state;
	ok("1048576B", MiB);
	ok("0B", 0);
	ok("7B", 7);
	ok("4K", 4 * KiB);
	ok("64M", 64 * MiB);
	ok("2G", 2 * GiB);
	ok("1T", TiB);
	ok("3072M", 3 * GiB);
}

static void test_long_forms(void **state)
{
	(void)state;
	ok("4KiB", 4 * KiB);
	ok("4KB", 4 * KiB); /* binary, like QEMU */
	ok("4Ki", 4 * KiB);
	ok("256MiB", 256 * MiB);
	ok("256MB", 256 * MiB);
	ok("2GiB", 2 * GiB);
	ok("2GB", 2 * GiB);
	ok("1TiB", TiB);
	ok("1TB", TiB);
}

static void test_case_insensitive(void **state)
{
	(void)state;
	ok("4k", 4 * KiB);
	ok("64m", 64 * MiB);
	ok("2g", 2 * GiB);
	ok("1t", TiB);
	ok("100b", 100);
	ok("4kib", 4 * KiB);
	ok("4KIB", 4 * KiB);
	ok("2gb", 2 * GiB);
	ok("2Gb", 2 * GiB);
	ok("2gIb", 2 * GiB);
}

static void test_limits_and_overflow(void **state)
{
	(void)state;
	ok("18446744073709551615B", UINT64_MAX);
	bad("18446744073709551616B", "too large");
	bad("18446744073709551616", "too large");
	bad("99999999999999999999999999999999", "too large");
	/* 2^44 - 1 MiB fits, 2^44 MiB is 2^64 */
	ok("17592186044415", (17592186044415ull) << 20);
	bad("17592186044416", "too large");
	bad("17592186044416M", "too large");
	ok("17179869183G", 17179869183ull << 30);
	bad("17179869184G", "too large");
	ok("16777215T", 16777215ull << 40);
	bad("16777216T", "too large");
	ok("18014398509481983K", 18014398509481983ull << 10);
	bad("18014398509481984K", "too large");
}

static void test_rejects_junk(void **state)
{
	(void)state;
	const char *want = "expected a number";
	bad("", want);
	bad("-1", want);
	bad("-1M", want);
	bad("+1", want);
	bad(" 1", want);
	bad("1 ", want);
	bad("1 M", want);
	bad("M", want);
	bad("G1", want);
	bad("1.5G", want);
	bad("0x10", want);
	bad("1X", want);
	bad("1P", want);
	bad("1E", want);
	bad("1MM", want);
	bad("1MiBs", want);
	bad("1MBi", want); /* "iB", not "Bi" */
	bad("1Bi", want);   /* bytes take no "i" */
	bad("1BB", want);
	bad("1iB", want);
	bad("1Gi ", want);
	bad("12abc", want);
	bad("1e6", want);
}

static void test_null(void **state)
{
	(void)state;
	bad(NULL, "bad size");
	uint64_t v = 7;
	assert_int_equal(size_parse(NULL, &v, NULL), -1);
	assert_int_equal(v, 7);
}

static void test_message_quotes_input(void **state)
{
	(void)state;
	bad("12abc", "'12abc'");
	bad("", "''");
	bad("99999999999999999999999", "'99999999999999999999999'");
}

static void test_null_err(void **state)
{
	(void)state;
	uint64_t v = 0;
	assert_int_equal(size_parse("junk", &v, NULL), -1);
	assert_int_equal(size_parse("99999999999999999999999", &v, NULL), -1);
	assert_int_equal(size_parse("8G", &v, NULL), 0);
	assert_int_equal(v, 8 * GiB);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bare_number_is_mib),
		cmocka_unit_test(test_suffixes),
		cmocka_unit_test(test_long_forms),
		cmocka_unit_test(test_case_insensitive),
		cmocka_unit_test(test_limits_and_overflow),
		cmocka_unit_test(test_rejects_junk),
		cmocka_unit_test(test_null),
		cmocka_unit_test(test_message_quotes_input),
		cmocka_unit_test(test_null_err),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
