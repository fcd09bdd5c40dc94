/*
 * Unit tests for the failure detector (ft/pipeline/detector.h), with a
 * hand clock: the base timeout for a quiet peer; doubt before suspicion,
 * cleared by a beat or by a check within the timeout; the timeout
 * following the longest recent gap (times DETECTOR_FACTOR) up to the
 * cap, and forgetting it once DETECTOR_WINDOW beats have passed; the
 * late-beat count a fixed timeout would have turned into suspicions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ft/pipeline/detector.h"

#define MS 1000000ull

/* Beats every period_ms from *t on, n of them; *t ends at the last. */
static void beats(struct detector *d, uint64_t *t, unsigned n,
		  unsigned period_ms)
{
	for (unsigned i = 0; i < n; i++) {
		*t += period_ms * MS;
		detector_beat(d, *t);
	}
}

static void test_base_when_quiet(void **state)
{
	(void)state;
	struct detector d;
	detector_init(&d, 100 * MS, 500 * MS);
	assert_int_equal(detector_timeout(&d), 100 * MS);
	uint64_t t = 1000 * MS;
	detector_beat(&d, t);
	assert_int_equal(detector_timeout(&d), 100 * MS);
	/* Beats every 20 ms: 2 x 20 is below the base. */
	beats(&d, &t, 50, 20);
	assert_int_equal(detector_timeout(&d), 100 * MS);
	assert_int_equal(d.st.beats, 51);
	assert_int_equal(d.st.late, 0);
	assert_int_equal(d.st.max_gap_ns, 20 * MS);
	assert_int_equal(detector_check(&d, 100 * MS), DETECTOR_OK);
}

static void test_doubt_then_suspect(void **state)
{
	(void)state;
	struct detector d;
	detector_init(&d, 100 * MS, 500 * MS);
	assert_int_equal(detector_check(&d, 101 * MS), DETECTOR_DOUBT);
	assert_int_equal(detector_check(&d, 102 * MS), DETECTOR_SUSPECT);
	assert_int_equal(d.st.doubts, 1);
	assert_int_equal(d.st.suspicions, 1);
	/* A beat clears the doubt: the next overrun doubts again first. */
	detector_beat(&d, 5000 * MS);
	assert_int_equal(detector_check(&d, 150 * MS), DETECTOR_DOUBT);
	/* So does a check that finds the peer heard again. */
	assert_int_equal(detector_check(&d, 10 * MS), DETECTOR_OK);
	assert_int_equal(detector_check(&d, 150 * MS), DETECTOR_DOUBT);
	assert_int_equal(detector_check(&d, 160 * MS), DETECTOR_SUSPECT);
	assert_int_equal(d.st.doubts, 3);
	assert_int_equal(d.st.suspicions, 2);
}

static void test_adapts_to_jitter(void **state)
{
	(void)state;
	struct detector d;
	detector_init(&d, 100 * MS, 500 * MS);
	uint64_t t = 1000 * MS;
	detector_beat(&d, t);
	beats(&d, &t, 10, 20);
	/* A host under load delays one beat by 130 ms: a live peer that a
	 * fixed 100 ms timeout would have suspected. */
	beats(&d, &t, 1, 150);
	assert_int_equal(d.st.late, 1);
	assert_int_equal(d.st.max_gap_ns, 150 * MS);
	assert_int_equal(detector_timeout(&d), 300 * MS);
	/* The same silence again is tolerated now. */
	assert_int_equal(detector_check(&d, 150 * MS), DETECTOR_OK);
	assert_int_equal(detector_check(&d, 299 * MS), DETECTOR_OK);
	assert_int_equal(detector_check(&d, 301 * MS), DETECTOR_DOUBT);
	/* A longer gap raises it to the cap, no further. */
	beats(&d, &t, 1, 400);
	assert_int_equal(detector_timeout(&d), 500 * MS);
	beats(&d, &t, 1, 60000);
	assert_int_equal(detector_timeout(&d), 500 * MS);
	assert_int_equal(d.st.late, 3);
	assert_int_equal(detector_check(&d, 499 * MS), DETECTOR_OK);
	assert_int_equal(detector_check(&d, 501 * MS), DETECTOR_DOUBT);
	assert_int_equal(detector_check(&d, 501 * MS), DETECTOR_SUSPECT);
}

static void test_window_forgets(void **state)
{
	(void)state;
	struct detector d;
	detector_init(&d, 100 * MS, 500 * MS);
	uint64_t t = 1000 * MS;
	detector_beat(&d, t);
	beats(&d, &t, 1, 200);
	assert_int_equal(detector_timeout(&d), 400 * MS);
	/* The long gap stays in the window for DETECTOR_WINDOW - 1 more
	 * gaps, then leaves it. */
	beats(&d, &t, DETECTOR_WINDOW - 1, 10);
	assert_int_equal(detector_timeout(&d), 400 * MS);
	beats(&d, &t, 1, 10);
	assert_int_equal(detector_timeout(&d), 100 * MS);
	/* The record keeps it. */
	assert_int_equal(d.st.max_gap_ns, 200 * MS);
}

static void test_odd_inputs(void **state)
{
	(void)state;
	struct detector d;
	/* A cap below the base is the base. */
	detector_init(&d, 100 * MS, 50 * MS);
	assert_int_equal(detector_timeout(&d), 100 * MS);
	/* A clock that went back makes no gap; equal times a zero gap. */
	detector_beat(&d, 1000 * MS);
	detector_beat(&d, 900 * MS);
	detector_beat(&d, 900 * MS);
	assert_int_equal(d.st.beats, 3);
	assert_int_equal(d.ngaps, 1);
	assert_int_equal(d.st.max_gap_ns, 0);
	assert_int_equal(detector_timeout(&d), 100 * MS);
	/* A gap near the end of the clock saturates at the cap. */
	detector_init(&d, 100 * MS, 500 * MS);
	detector_beat(&d, 1);
	detector_beat(&d, UINT64_MAX - 1);
	assert_int_equal(detector_timeout(&d), 500 * MS);
	/* Silence at the timeout exactly is still heard. */
	assert_int_equal(detector_check(&d, 500 * MS), DETECTOR_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base_when_quiet),
		cmocka_unit_test(test_doubt_then_suspect),
		cmocka_unit_test(test_adapts_to_jitter),
		cmocka_unit_test(test_window_forgets),
		cmocka_unit_test(test_odd_inputs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
