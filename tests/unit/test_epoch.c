/*
 * Replication epochs between two VMs in one process over a pipe: a full
 * epoch and incremental ones make the receiver's RAM equal the sender's,
 * and the receiver, started, finishes the guest's work exactly; a
 * corrupted epoch is refused whole, leaving the receiver as it was.
 * Skips without /dev/kvm, fails under CI=true.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "ft/checkpoint/epoch.h"
#include "vm_fixture.h"

static void config(struct vm_run *r, struct vm_config *cfg, const char *image,
		   const char *cmdline)
{
	vm_run_config(r, cfg, 64ull << 20, 1, image, cmdline);
}

struct recv_ctx {
	int fd;
	struct vm_run *r;
	int epochs, rc;
	uint64_t digest_before_fail;
	struct kg_err e;
	bool apply_failed;
};

static void *receiver(void *arg)
{
	struct recv_ctx *c = arg;
	struct vm_state_config vc;
	struct epoch_receiver *er = epoch_receiver_new(c->fd, &vc, &c->e);
	if (!er) {
		c->rc = -1;
		return NULL;
	}
	struct vm_config cfg;
	config(c->r, &cfg, NULL, NULL);
	cfg.mem_size = vc.mem_size;
	cfg.ncpus = vc.ncpus;
	if (vm_create(&c->r->vm, &cfg, &c->e) < 0) {
		c->rc = -1;
		epoch_receiver_free(er);
		return NULL;
	}
	epoch_receiver_attach(er, &c->r->vm);
	for (;;) {
		struct epoch_stats st;
		uint64_t d = ram_digest(&c->r->vm);
		int n = epoch_receive(er, &st, &c->e);
		if (n <= 0) {
			c->rc = n;
			c->apply_failed = st.apply_failed;
			c->digest_before_fail = d;
			break;
		}
		c->epochs++;
	}
	epoch_receiver_free(er);
	return NULL;
}

static void test_epochs_make_a_replica(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	/* 8 s of guest work (it paces itself): twelve epochs on a loaded
	 * host took longer than the 4 s it used to run ("the VM is
	 * stopping" at epoch 9). */
	const char *args = "mib=16 total=2048 seed=8 rate=256";
	struct vm_run *src = calloc(1, sizeof(*src)), *dst = calloc(1, sizeof(*dst));
	struct vm_config cfg;
	struct kg_err e;
	int p[2];
	assert_int_equal(pipe(p), 0);
	config(src, &cfg, MEMSTRESS, args);
	if (vm_create(&src->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	struct recv_ctx rc = { .fd = p[0], .r = dst };
	pthread_t rt;
	pthread_create(&rt, NULL, receiver, &rc);
	struct epoch_sender *s = epoch_sender_new(&src->vm, p[1], &e);
	if (!s)
		fail_msg("sender: %s", e.msg);
	pthread_create(&src->thread, NULL, vm_run_thread, src);
	usleep(300000);
	struct epoch_stats st;
	uint64_t raw = 0, sent = 0;
	for (int i = 0; i < 12; i++) {
		if (i == 11)
			vm_pause(&src->vm); /* the last epoch: source stays put */
		if (epoch_send(s, i == 0, &st, &e) < 0 ||
		    epoch_wait(s, &e) < 0)
			fail_msg("epoch %d: %s", i, e.msg);
		if (i > 0) {
			raw += st.dirty_pages * 4096;
			sent += st.stream_bytes;
		}
		usleep(50000);
	}
	print_message("11 incremental epochs: %llu KiB on the stream for "
		      "%llu KiB of dirty pages\n",
		      (unsigned long long)(sent >> 10),
		      (unsigned long long)(raw >> 10));
	assert_int_equal(epoch_sender_finish(s, &e), 0);
	close(p[1]);
	pthread_join(rt, NULL);
	if (rc.rc != 0)
		fail_msg("receiver: %s", rc.e.msg);
	assert_int_equal(rc.epochs, 12);
	/* The replica holds exactly the paused source's RAM. */
	assert_true(ram_digest(&src->vm) == ram_digest(&dst->vm));
	vm_request_stop(&src->vm, VM_STOP_REQUEST, 0, NULL);
	pthread_join(src->thread, NULL);
	epoch_sender_free(s);
	vm_destroy(&src->vm);
	free(vm_run_output(src));
	/* Started, the replica finishes the work as an uninterrupted run. */
	pthread_create(&dst->thread, NULL, vm_run_thread, dst);
	pthread_join(dst->thread, NULL);
	assert_int_equal(dst->stop.reason, VM_STOP_EXIT);
	vm_destroy(&dst->vm);
	char *got = vm_run_output(dst);
	struct vm_run *ref = calloc(1, sizeof(*ref));
	config(ref, &cfg, MEMSTRESS, "mib=16 total=2048 seed=8");
	if (vm_create(&ref->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	pthread_create(&ref->thread, NULL, vm_run_thread, ref);
	pthread_join(ref->thread, NULL);
	vm_destroy(&ref->vm);
	char *want = vm_run_output(ref);
	const char *g = strstr(got, "memstress: done"), *w = strstr(want, "memstress: done");
	assert_non_null(g);
	assert_non_null(w);
	assert_string_equal(g, w);
	free(got);
	free(want);
	free(src);
	free(dst);
	free(ref);
	close(p[0]);
}

/* A byte flipped inside the second epoch: the receiver refuses it whole
 * and its RAM stays what the first epoch made it. */
static void test_corrupt_epoch_refused(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	struct vm_run *src = calloc(1, sizeof(*src)), *dst = calloc(1, sizeof(*dst));
	struct vm_config cfg;
	struct kg_err e;
	char path[96];
	snprintf(path, sizeof(path), "/tmp/kagami-epoch-%d.stream", getpid());
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	config(src, &cfg, MEMSTRESS, "mib=8 total=100000 seed=3 rate=128");
	if (vm_create(&src->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	struct epoch_sender *s = epoch_sender_new(&src->vm, fd, &e);
	if (!s)
		fail_msg("sender: %s", e.msg);
	pthread_create(&src->thread, NULL, vm_run_thread, src);
	usleep(200000);
	struct epoch_stats st;
	assert_int_equal(epoch_send(s, true, &st, &e), 0);
	assert_int_equal(epoch_wait(s, &e), 0);
	off_t second = lseek(fd, 0, SEEK_CUR);
	usleep(100000);
	assert_int_equal(epoch_send(s, false, &st, &e), 0);
	assert_int_equal(epoch_wait(s, &e), 0);
	off_t end = lseek(fd, 0, SEEK_CUR);
	assert_int_equal(epoch_sender_finish(s, &e), 0);
	vm_request_stop(&src->vm, VM_STOP_REQUEST, 0, NULL);
	pthread_join(src->thread, NULL);
	epoch_sender_free(s);
	vm_destroy(&src->vm);
	free(vm_run_output(src));
	assert_true(end - second > 100);
	uint8_t byte;
	off_t at = second + (end - second) / 2;
	assert_int_equal(pread(fd, &byte, 1, at), 1);
	byte ^= 0x5a;
	assert_int_equal(pwrite(fd, &byte, 1, at), 1);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);

	struct recv_ctx rc = { .fd = fd, .r = dst };
	receiver(&rc);
	assert_int_equal(rc.epochs, 1);
	assert_int_equal(rc.rc, -1);
	assert_non_null(strstr(rc.e.msg, "checksum mismatch"));
	/* damage, found before anything of the epoch was applied */
	assert_int_equal(rc.e.kind, KG_ERR_CORRUPT);
	assert_false(rc.apply_failed);
	assert_true(ram_digest(&dst->vm) == rc.digest_before_fail);
	vm_destroy(&dst->vm);
	unlink(dst->console);
	close(fd);
	unlink(path);
	free(src);
	free(dst);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_epochs_make_a_replica),
		cmocka_unit_test(test_corrupt_epoch_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
