/*
 * virtio-blk's lock hand-over, backing-file switch and tracking switches
 * on a VM built on /dev/kvm (not run: no guest needed). Skips without
 * /dev/kvm, fails under CI=true.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "vm_fixture.h"
#include "vmm/virtio_mmio.h"

/* Whether another open file description could lock path now. */
static bool lockable(const char *path)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	bool ok = flock(fd, LOCK_EX | LOCK_NB) == 0;
	if (!ok)
		assert_int_equal(errno, EWOULDBLOCK);
	close(fd);
	return ok;
}

static void make_image(char *path, size_t n, uint64_t size)
{
	snprintf(path, n, "/tmp/kagami-unit-disk-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

static void test_lock_handover_and_switch(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	char a[64], b[64], c[64];
	make_image(a, sizeof(a), 1 << 20);
	make_image(b, sizeof(b), 1 << 20);
	make_image(c, sizeof(c), 2 << 20);
	struct vm_run *r = calloc(1, sizeof(*r));
	struct vm_config cfg;
	struct kg_err e = { 0 };
	vm_run_config(r, &cfg, 64ull << 20, 1, HELLO, NULL);
	cfg.ndisks = 1;
	assert_int_equal(disk_spec_parse(a, &cfg.disks[0], &e), 0);
	cfg.disks[0].defer_lock = true;
	if (vm_create(&r->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	struct virtio_blk *blk = r->vm.blks[0];

	/* Deferred: open, not locked, until asked. */
	assert_true(lockable(a));
	assert_int_equal(virtio_blk_lock(blk, true, &e), 0);
	assert_false(lockable(a));
	assert_int_equal(virtio_blk_lock(blk, true, &e), 0); /* no-op */
	assert_int_equal(virtio_blk_lock(blk, false, &e), 0);
	assert_true(lockable(a));

	/* Someone else holds it: a clear refusal. */
	int other = open(a, O_RDONLY);
	assert_int_equal(flock(other, LOCK_EX | LOCK_NB), 0);
	assert_int_equal(virtio_blk_lock(blk, true, &e), -1);
	if (!strstr(e.msg, "locked by another process (is another kagami "
			   "using it?)"))
		fail_msg("message: %s", e.msg);
	close(other);
	assert_int_equal(virtio_blk_lock(blk, true, &e), 0);

	/* Switching moves the lock and the path; a wrong size is refused
	 * with nothing changed. */
	struct virtio_mmio *t = virtio_blk_transport(blk);
	int fc = open(c, O_RDWR), fb = open(b, O_RDWR);
	virtio_mmio_quiesce(t);
	assert_int_equal(virtio_blk_switch(blk, fc, c, &e), -1);
	assert_non_null(strstr(e.msg, "not a regular file of 1048576 bytes"));
	assert_int_equal(virtio_blk_switch(blk, fb, b, &e), 0);
	virtio_mmio_release(t);
	close(fc);
	assert_true(lockable(a));
	assert_false(lockable(b));
	assert_string_equal(virtio_blk_path(blk), b);
	assert_string_equal(r->vm.cfg.disks[0].path, b);
	assert_int_equal(virtio_blk_fd(blk), fb);
	assert_int_equal(virtio_blk_size(blk), 1 << 20);

	/* Tracking: one tracker at a time; nothing dirty without writes. */
	uint64_t bits[4] = { 0 };
	assert_int_equal(virtio_blk_take_dirty(blk, bits, 4), 0);
	assert_int_equal(virtio_blk_track(blk, true, &e), 0);
	assert_int_equal(virtio_blk_track(blk, true, &e), -1);
	assert_non_null(strstr(e.msg, "dirty tracking is already on"));
	assert_int_equal(virtio_blk_take_dirty(blk, bits, 4), 0);
	assert_int_equal(virtio_blk_track(blk, false, &e), 0);
	assert_int_equal(virtio_blk_track(blk, false, &e), 0);

	vm_destroy(&r->vm);
	assert_true(lockable(b));
	unlink(a);
	unlink(b);
	unlink(c);
	unlink(r->console);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lock_handover_and_switch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
