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

#include "../../vmm/vm.h"

#define MEMSTRESS "build/guests/memstress.elf"
#define HELLO "build/guests/hello.elf"

static int kvm_or_skip(void)
{
	int fd = open("/dev/kvm", O_RDWR);
	if (fd >= 0) {
		close(fd);
		return 1;
	}
	const char *ci = getenv("CI");
	if (ci && !strcmp(ci, "true"))
		fail_msg("/dev/kvm is not usable (required under CI)");
	return 0;
}

struct runner {
	struct vm vm;
	struct vm_stop stop;
	struct kg_err err;
	int rc;
	pthread_t thread;
	char console[64];
};

static void *run_thread(void *arg)
{
	struct runner *r = arg;
	r->rc = vm_run(&r->vm, &r->stop, &r->err);
	return NULL;
}

static void runner_start(struct runner *r, const char *image,
			 const char *cmdline)
{
	struct vm_config cfg = { .mem_size = 128ull << 20, .ncpus = 2,
				 .kernel_path = image, .cmdline = cmdline };
	struct kg_err e;
	snprintf(r->console, sizeof(r->console), "/tmp/kagami-vmtest-%d-%p",
		 getpid(), (void *)r);
	assert_int_equal(console_parse("file:/dev/null", &cfg.console, &e), 0);
	snprintf(cfg.console.path, sizeof(cfg.console.path), "%s", r->console);
	if (vm_create(&r->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	assert_int_equal(pthread_create(&r->thread, NULL, run_thread, r), 0);
}

static void runner_join(struct runner *r)
{
	pthread_join(r->thread, NULL);
	vm_destroy(&r->vm);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char *buf = calloc(1, 65536);
	size_t n = fread(buf, 1, 65535, f);
	buf[n] = 0;
	fclose(f);
	unlink(path);
	return buf;
}

static uint64_t ram_hash(struct vm *vm)
{
	uint64_t h = 0;
	const uint64_t *p = (const uint64_t *)vm->mem.base;
	for (size_t i = 0; i < vm->mem.size / 8; i += 7)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* While paused, guest RAM does not change; after resume the run
 * completes with the same output as an uninterrupted run. */
static void test_pause_resume(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	struct runner *r = calloc(1, sizeof(*r));
	runner_start(r, MEMSTRESS, "mib=32 total=2048 seed=4");
	usleep(100 * 1000);
	for (int i = 0; i < 3; i++) {
		vm_pause(&r->vm);
		assert_int_equal(r->vm.npaused, r->vm.nthreads);
		uint64_t h1 = ram_hash(&r->vm);
		usleep(30 * 1000);
		uint64_t h2 = ram_hash(&r->vm);
		assert_true(h1 == h2);
		vm_resume(&r->vm);
		usleep(20 * 1000);
	}
	runner_join(r);
	assert_int_equal(r->rc, 0);
	assert_int_equal(r->stop.reason, VM_STOP_EXIT);
	assert_int_equal(r->stop.exit_code, 0);
	char *out = slurp(r->console);
	assert_non_null(strstr(out, "memstress: pass=64 checksum="));
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
	struct runner *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	runner_start(a, MEMSTRESS, "mib=8 total=64 seed=2");
	runner_start(b, MEMSTRESS, "mib=8 total=64 seed=2");
	runner_join(a);
	runner_join(b);
	assert_int_equal(a->stop.reason, VM_STOP_EXIT);
	assert_int_equal(b->stop.reason, VM_STOP_EXIT);
	char *oa = slurp(a->console), *ob = slurp(b->console);
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
	struct runner *r = calloc(1, sizeof(*r));
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
	free(slurp(r->console));
	free(r);
}

/* The gate counts what enters the guest: the clock reads of memstress's
 * pacing pass through it. */
static void test_gate_counts_time(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	struct runner *r = calloc(1, sizeof(*r));
	runner_start(r, MEMSTRESS, "mib=4 total=8 seed=1 rate=1000");
	pthread_join(r->thread, NULL);
	assert_int_equal(r->stop.reason, VM_STOP_EXIT);
	assert_true(r->vm.gate.count[GATE_TIME] > 0);
	assert_true(r->vm.gate.count[GATE_PIO_IN] >= r->vm.gate.count[GATE_TIME]);
	vm_destroy(&r->vm);
	free(slurp(r->console));
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pause_resume),
		cmocka_unit_test(test_two_vms),
		cmocka_unit_test(test_stop_request),
		cmocka_unit_test(test_gate_counts_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
