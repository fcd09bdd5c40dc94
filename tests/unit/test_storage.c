/* Unit tests for storage migration's parts that need no VM: the rounds
 * policy (ft/storage/converge.h), the block copier (image_copy.h, on
 * temporary files) and the dirty bitmap helpers (vmm/virtio_blk.h). */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ft/storage/converge.h"
#include "ft/storage/image_copy.h"
#include "vmm/virtio_blk.h"

#define BLK DISK_TRACK_BLOCK

static void test_converge_small_set_stops(void **state)
{
	(void)state;
	struct converge c;
	converge_init(&c, 10, 30);
	assert_false(converge_done(&c, 1000));
	assert_false(converge_done(&c, 500));
	assert_true(converge_done(&c, 10));
	assert_int_equal(c.rounds, 2);
}

static void test_converge_stalls_and_budget(void **state)
{
	(void)state;
	struct converge c;
	converge_init(&c, 10, 30);
	assert_false(converge_done(&c, 100));
	/* Not shrinking any more: a few tries, then stop. */
	for (int i = 0; i < CONVERGE_STALL_ROUNDS - 1; i++)
		assert_false(converge_done(&c, 100 + (uint64_t)i));
	assert_true(converge_done(&c, 150));
	converge_init(&c, 0, 2);
	assert_false(converge_done(&c, 9));
	assert_false(converge_done(&c, 8));
	assert_true(converge_done(&c, 7)); /* budget spent */
	converge_init(&c, 0, 5);
	assert_true(converge_done(&c, 0)); /* nothing dirty at all */
}

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

static void test_is_zero(void **state)
{
	(void)state;
	uint8_t b[64] = { 0 };
	assert_true(image_is_zero(b, sizeof(b)));
	assert_true(image_is_zero(b, 0));
	b[63] = 1;
	assert_false(image_is_zero(b, sizeof(b)));
	assert_true(image_is_zero(b, 63));
	b[0] = 1;
	assert_false(image_is_zero(b, 1));
}

struct files {
	char src[64], dst[64];
	int s, d;
	struct image_copy c;
};

/* A 4 MiB source with data at [1 MiB, 1 MiB + 3 blocks) and a last,
 * short block; the rest holes. The destination: an empty file as long. */
static void make_files(struct files *f, uint64_t size)
{
	strcpy(f->src, "/tmp/kg-test-storage.XXXXXX");
	strcpy(f->dst, "/tmp/kg-test-storage.XXXXXX");
	f->s = mkstemp(f->src);
	f->d = mkstemp(f->dst);
	assert_true(f->s >= 0 && f->d >= 0);
	assert_int_equal(ftruncate(f->s, (off_t)size), 0);
	assert_int_equal(ftruncate(f->d, (off_t)size), 0);
	uint8_t blk[3 * BLK];
	for (size_t i = 0; i < sizeof(blk); i++)
		blk[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(pwrite(f->s, blk, sizeof(blk), 1 << 20),
			 (ssize_t)sizeof(blk));
	assert_int_equal(pwrite(f->s, blk, 100, (off_t)size - 100), 100);
	f->c = (struct image_copy){ .src = f->s, .dst = f->d,
		.src_path = f->src, .dst_path = f->dst, .size = size,
		.block = BLK, .buf = malloc(IMAGE_COPY_CHUNK) };
	assert_non_null(f->c.buf);
}

static void free_files(struct files *f)
{
	close(f->s);
	close(f->d);
	unlink(f->src);
	unlink(f->dst);
	free(f->c.buf);
}

static void assert_same(struct files *f)
{
	uint8_t *a = malloc(f->c.size), *b = malloc(f->c.size);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(pread(f->s, a, f->c.size, 0), (ssize_t)f->c.size);
	assert_int_equal(pread(f->d, b, f->c.size, 0), (ssize_t)f->c.size);
	assert_memory_equal(a, b, f->c.size);
	free(a);
	free(b);
}

static void test_copy_data_keeps_holes(void **state)
{
	(void)state;
	struct files f;
	uint64_t size = (4 << 20) - 1000; /* not a whole number of blocks */
	make_files(&f, size);
	struct kg_err e = { 0 };
	assert_int_equal(image_copy_data(&f.c, &e), 0);
	assert_same(&f);
	struct stat st;
	assert_int_equal(fstat(f.d, &st), 0);
	/* Only the data was written: far less than the 4 MiB. */
	if ((uint64_t)st.st_blocks * 512 >= size / 2)
		fail_msg("destination not sparse: %lld bytes allocated",
			 (long long)st.st_blocks * 512);
	assert_true(f.c.bytes < size / 2);
	free_files(&f);
}

static void test_copy_blocks(void **state)
{
	(void)state;
	struct files f;
	uint64_t size = 4 << 20;
	make_files(&f, size);
	struct kg_err e = { 0 };
	assert_int_equal(image_copy_data(&f.c, &e), 0);
	/* Change two blocks, one to zeros, and the last (short) block. */
	uint8_t x[BLK], z[BLK] = { 0 };
	memset(x, 0x5a, sizeof(x));
	assert_int_equal(pwrite(f.s, x, BLK, 7 * BLK), BLK);
	assert_int_equal(pwrite(f.s, z, BLK, (1 << 20) + BLK), BLK);
	assert_int_equal(pwrite(f.s, x, 10, (off_t)size - 10), 10);
	uint64_t bits[16] = { 0 };
	uint64_t b1 = ((1 << 20) + BLK) / BLK, last = size / BLK - 1;
	bits[0] = 1ull << 7;
	bits[b1 / 64] |= 1ull << (b1 % 64);
	bits[last / 64] |= 1ull << (last % 64);
	assert_int_equal(image_copy_blocks(&f.c, bits, 16, &e), 0);
	assert_same(&f);
	/* The zeroed block became a hole again. */
	off_t d = lseek(f.d, (1 << 20) + BLK, SEEK_DATA);
	assert_true(d < 0 || d > (1 << 20) + BLK);
	free_files(&f);
}

static void test_copy_write_error_names_file(void **state)
{
	(void)state;
	struct files f;
	make_files(&f, 1 << 20 << 1);
	int ro = open(f.dst, O_RDONLY);
	assert_true(ro >= 0);
	f.c.dst = ro;
	struct kg_err e = { 0 };
	assert_int_equal(image_copy_data(&f.c, &e), -1);
	if (!strstr(e.msg, "writing /tmp/kg-test-storage.") ||
	    !strstr(e.msg, "Bad file descriptor"))
		fail_msg("message: %s", e.msg);
	close(ro);
	free_files(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_converge_small_set_stops),
		cmocka_unit_test(test_converge_stalls_and_budget),
		cmocka_unit_test(test_track_mark),
		cmocka_unit_test(test_is_zero),
		cmocka_unit_test(test_copy_data_keeps_holes),
		cmocka_unit_test(test_copy_blocks),
		cmocka_unit_test(test_copy_write_error_names_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
