/*
 * The VM object under a real /dev/kvm: the vCPU state machine (pause,
 * resume, stop), two VMs in one process, and stop reasons. Skips without
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
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "vm_fixture.h"

static void runner_start(struct vm_run *r, const char *image,
			 const char *cmdline)
{
	struct vm_config cfg;
	struct kg_err e;
	vm_run_config(r, &cfg, 128ull << 20, 2, image, cmdline);
	if (vm_create(&r->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	vm_run_start(r);
}

static void runner_join(struct vm_run *r)
{
	pthread_join(r->thread, NULL);
	vm_destroy(&r->vm);
}

/* While paused, guest RAM does not change; after resume the run
 * completes with the same output as an uninterrupted run. */
static void test_pause_resume(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	struct vm_run *r = calloc(1, sizeof(*r));
	/* Paced to 2 s: flat out, 2 GiB of writes can end within the
	 * 250 ms the pauses take, and a pause of a finished VM fails. */
	runner_start(r, MEMSTRESS, "mib=32 total=4096 seed=4 rate=2048");
	usleep(100 * 1000);
	for (int i = 0; i < 3; i++) {
		vm_pause(&r->vm);
		assert_int_equal(r->vm.npaused, r->vm.nthreads);
		uint64_t h1 = ram_digest(&r->vm);
		usleep(30 * 1000);
		uint64_t h2 = ram_digest(&r->vm);
		assert_true(h1 == h2);
		vm_resume(&r->vm);
		usleep(20 * 1000);
	}
	runner_join(r);
	assert_int_equal(r->rc, 0);
	assert_int_equal(r->stop.reason, VM_STOP_EXIT);
	assert_int_equal(r->stop.exit_code, 0);
	char *out = vm_run_output(r);
	assert_non_null(strstr(out, "memstress: pass=64 checksum="));
	assert_non_null(strstr(out, "memstress: done checksum="));
	free(out);
	free(r);
}

static void *unfence_main(void *arg)
{
	vm_fence(arg, false);
	return NULL;
}

/* A fence keeps the VM paused whatever vm_resume calls come (an epoch
 * resumes what it paused; the guard's fence must outlast it); lifting it
 * waits for a checkpoint in progress, then resumes. */
static void test_fence(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	struct vm_run *r = calloc(1, sizeof(*r));
	runner_start(r, MEMSTRESS, "mib=32 total=1024 seed=4");
	usleep(100 * 1000);
	vm_fence(&r->vm, true);
	assert_true(vm_fenced(&r->vm));
	assert_int_equal(r->vm.npaused, r->vm.nthreads);
	uint64_t h1 = ram_digest(&r->vm);
	vm_resume(&r->vm); /* as an epoch's end would */
	usleep(30 * 1000);
	assert_true(ram_digest(&r->vm) == h1);
	assert_int_equal(r->vm.req, VM_REQ_PAUSE);
	vm_checkpoint_begin(&r->vm);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, unfence_main, &r->vm), 0);
	usleep(50 * 1000);
	assert_int_equal(r->vm.req, VM_REQ_PAUSE); /* still: a checkpoint */
	assert_true(ram_digest(&r->vm) == h1);
	vm_checkpoint_end(&r->vm);
	pthread_join(th, NULL);
	assert_false(vm_fenced(&r->vm));
	runner_join(r);
	assert_int_equal(r->stop.reason, VM_STOP_EXIT);
	char *out = vm_run_output(r);
	assert_non_null(strstr(out, "memstress: done checksum="));
	free(out);
	free(r);
}

/* Two VMs (a primary and its replica, later) live in one process. */
static void test_two_vms(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	struct vm_run *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	runner_start(a, MEMSTRESS, "mib=8 total=64 seed=2");
	runner_start(b, MEMSTRESS, "mib=8 total=64 seed=2");
	runner_join(a);
	runner_join(b);
	assert_int_equal(a->stop.reason, VM_STOP_EXIT);
	assert_int_equal(b->stop.reason, VM_STOP_EXIT);
	char *oa = vm_run_output(a), *ob = vm_run_output(b);
	assert_string_equal(oa, ob);
	assert_non_null(strstr(oa, "memstress: done checksum="));
	free(oa);
	free(ob);
	free(a);
	free(b);
}

/* A host stop request ends a guest that never exits, also while paused. */
static void test_stop_request(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	struct vm_run *r = calloc(1, sizeof(*r));
	runner_start(r, HELLO, "spin");
	usleep(50 * 1000);
	vm_pause(&r->vm);
	vm_request_stop(&r->vm, VM_STOP_REQUEST, 99, "test stop %d", 1);
	vm_request_stop(&r->vm, VM_STOP_ERROR, 5, "second reason loses");
	runner_join(r);
	assert_int_equal(r->rc, 0);
	assert_int_equal(r->stop.reason, VM_STOP_REQUEST);
	assert_int_equal(r->stop.exit_code, 99);
	assert_string_equal(r->stop.message, "test stop 1");
	free(vm_run_output(r));
	free(r);
}

/* The gate counts what enters the guest: the clock reads of memstress's
 * pacing pass through it. */
static void test_gate_counts_time(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	struct vm_run *r = calloc(1, sizeof(*r));
	runner_start(r, MEMSTRESS, "mib=4 total=8 seed=1 rate=1000");
	pthread_join(r->thread, NULL);
	assert_int_equal(r->stop.reason, VM_STOP_EXIT);
	assert_true(r->vm.gate.count[GATE_TIME] > 0);
	assert_true(r->vm.gate.count[GATE_PIO_IN] >= r->vm.gate.count[GATE_TIME]);
	vm_destroy(&r->vm);
	free(vm_run_output(r));
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pause_resume),
		cmocka_unit_test(test_fence),
		cmocka_unit_test(test_two_vms),
		cmocka_unit_test(test_stop_request),
		cmocka_unit_test(test_gate_counts_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
