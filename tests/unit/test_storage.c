/* Unit tests for storage migration's parts that need no VM: the dirty
 * bitmap helpers (vmm/virtio_blk.h). Its rounds policy and block copier
 * are the pre-copy engine's, tested in test_precopy.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "vmm/virtio_blk.h"

#define BLK DISK_TRACK_BLOCK

static void test_track_mark(void **state)
{
	(void)state;
	assert_int_equal(disk_track_words(0), 0);
	assert_int_equal(disk_track_words(1), 1);
	assert_int_equal(disk_track_words(64 * BLK), 1);
	assert_int_equal(disk_track_words(64 * BLK + 1), 2);
	_Atomic uint64_t bits[2] = { 0, 0 };
	disk_track_mark(bits, 2, 512, 512); /* inside block 0 */
	assert_int_equal(bits[0], 1);
	disk_track_mark(bits, 2, BLK - 512, 1024); /* straddles 0 and 1 */
	assert_int_equal(bits[0], 3);
	disk_track_mark(bits, 2, 63 * BLK, 2 * BLK); /* across the word */
	assert_int_equal(bits[0], 3 | (1ull << 63));
	assert_int_equal(bits[1], 1);
	disk_track_mark(bits, 2, 5 * BLK, 0); /* empty: nothing */
	disk_track_mark(bits, 1, 100 * BLK, BLK); /* past the bitmap: ignored */
	disk_track_mark(NULL, 0, 0, BLK);
	assert_int_equal(bits[0], 3 | (1ull << 63));
	assert_int_equal(bits[1], 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_track_mark),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
