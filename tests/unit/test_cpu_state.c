/* The kvmclock carried across hosts (ft/checkpoint/cpu_state.h) and the
 * vm_kvm_state table: what a load makes of the saved clock. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "ft/checkpoint/cpu_state.h"

static void test_clock_advances_by_real_time(void **state)
{
	(void)state;
	/* Saved at real time 1000 s with 5 s on the guest's clock, loaded
	 * 2.5 s later: the guest's clock reads 7.5 s. */
	assert_int_equal(kvmclock_advanced(5000000000ull, 1000000000000ull,
					   1002500000000ull),
			 7500000000ull);
}

static void test_clock_never_goes_back(void **state)
{
	(void)state;
	/* The loading host's clock is behind the saver's: as saved. */
	assert_int_equal(kvmclock_advanced(5000000000ull, 1000000000000ull,
					   999000000000ull),
			 5000000000ull);
	assert_int_equal(kvmclock_advanced(7, 100, 100), 7);
}

static void test_clock_of_an_old_stream(void **state)
{
	(void)state;
	/* A stream of a kagami that did not carry the real time (0). */
	assert_int_equal(kvmclock_advanced(5000000000ull, 0,
					   1002500000000ull),
			 5000000000ull);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clock_advances_by_real_time),
		cmocka_unit_test(test_clock_never_goes_back),
		cmocka_unit_test(test_clock_of_an_old_stream),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
