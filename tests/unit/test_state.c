/*
 * Complete VM state under a real /dev/kvm (in the spirit of the KVM
 * selftests' state_test): vCPU state round trips at many random points of a
 * running guest; snapshots taken at random points restore into a fresh VM
 * that finishes exactly like the original; and dirty tracking loses no page
 * across many epochs, including pages written only by devices. Skips
 * without /dev/kvm, fails under CI=true.
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

#include "../../ft/checkpoint/cpu_state.h"
#include "../../ft/checkpoint/snapshot.h"
#include "vm_fixture.h"

static void make_config(struct vm_run *r, struct vm_config *cfg,
			const char *image, const char *cmdline)
{
	vm_run_config(r, cfg, 64ull << 20, 1, image, cmdline);
}

static char *finish(struct vm_run *r)
{
	pthread_join(r->thread, NULL);
	assert_int_equal(r->rc, 0);
	assert_int_equal(r->stop.reason, VM_STOP_EXIT);
	vm_destroy(&r->vm);
	return vm_run_output(r);
}

static const char *last_line(const char *out)
{
	const char *p = strstr(out, "memstress: done checksum=");
	assert_non_null(p);
	return p;
}

#define SAME(a, b, f) assert_memory_equal(&(a)->f, &(b)->f, sizeof((a)->f))

static void test_cpu_roundtrip_random_points(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	struct vm_run *r = calloc(1, sizeof(*r));
	struct vm_config cfg;
	struct kg_err e;
	const char *args = "mib=8 total=1536 seed=21 rate=512";
	make_config(r, &cfg, MEMSTRESS, args);
	if (vm_create(&r->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	uint32_t idx[CPU_STATE_MAX_MSRS], n;
	assert_int_equal(cpu_msr_index_list(r->vm.kvm_fd, idx, &n, &e), 0);
	struct cpu_state *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	struct vm_kvm_state *ka = malloc(sizeof(*ka));
	vm_run_start(r);
	srand(12345);
	for (int i = 0; i < 25; i++) {
		usleep(1000 + rand() % 60000);
		vm_pause(&r->vm);
		if (r->vm.req != VM_REQ_PAUSE)
			break; /* the guest finished first */
		uint64_t d0 = ram_digest(&r->vm);
		struct vcpu *v = &r->vm.vcpus[0];
		if (cpu_state_save(v, idx, n, a, &e) < 0 ||
		    vm_kvm_state_save(&r->vm, ka, &e) < 0 ||
		    vm_kvm_state_load(&r->vm, ka, &e) < 0 ||
		    cpu_state_load(v, a, &e) < 0 ||
		    cpu_state_save(v, idx, n, b, &e) < 0)
			fail_msg("round trip %d: %s", i, e.msg);
		SAME(a, b, regs);
		SAME(a, b, sregs);
		SAME(a, b, xsave);
		SAME(a, b, xcrs);
		SAME(a, b, debugregs);
		SAME(a, b, mp_state);
		assert_int_equal(a->nmsrs, b->nmsrs);
		assert_true(ram_digest(&r->vm) == d0);
		vm_resume(&r->vm);
	}
	char *out = finish(r);
	/* The guest, interrupted 25 times, ends as an uninterrupted run. */
	struct vm_run *ref = calloc(1, sizeof(*ref));
	make_config(ref, &cfg, MEMSTRESS, "mib=8 total=1536 seed=21");
	if (vm_create(&ref->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	vm_run_start(ref);
	char *want = finish(ref);
	assert_string_equal(last_line(out), last_line(want));
	free(out);
	free(want);
	free(a);
	free(b);
	free(ka);
	free(r);
	free(ref);
}

/* Snapshots at random points of one run each restore into a fresh VM
 * that ends with the same checksum. */
static void test_snapshot_random_points(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	const char *args = "mib=8 total=2048 seed=5 rate=512";
	struct vm_config cfg;
	struct kg_err e;
	struct vm_run *a = calloc(1, sizeof(*a));
	make_config(a, &cfg, MEMSTRESS, args);
	if (vm_create(&a->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	vm_run_start(a);
	char paths[4][96];
	srand(777);
	for (int i = 0; i < 4; i++) {
		usleep(100000 + rand() % 500000);
		snprintf(paths[i], sizeof(paths[i]), "/tmp/kagami-state-%d-%d.kgs",
			 getpid(), i);
		struct snapshot_stats st;
		if (snapshot_save(&a->vm, paths[i], &st, &e) < 0)
			fail_msg("snapshot %d: %s", i, e.msg);
	}
	char *want = finish(a);
	for (int i = 0; i < 4; i++) {
		struct vm_run *b = calloc(1, sizeof(*b));
		make_config(b, &cfg, NULL, NULL);
		struct snapshot_reader *sr = snapshot_open(paths[i], &cfg, &e);
		if (!sr)
			fail_msg("snapshot_open: %s", e.msg);
		if (vm_create(&b->vm, &cfg, &e) < 0 ||
		    snapshot_load(sr, &b->vm, &e) < 0)
			fail_msg("restore %d: %s", i, e.msg);
		vm_run_start(b);
		char *got = finish(b);
		snapshot_close(sr);
		assert_string_equal(last_line(got), last_line(want));
		free(got);
		unlink(paths[i]);
		free(b);
	}
	free(want);
	free(a);
}

/* Many epochs of "pause, copy what the dirty log and the VMM bitmap name,
 * resume" keep a shadow equal to guest RAM: no write is missed, whether
 * the guest's or a device's (blktest reads the disk into guest memory). */
static void test_no_lost_dirty_pages(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	char disk[96];
	snprintf(disk, sizeof(disk), "/tmp/kagami-state-%d.img", getpid());
	int fd = open(disk, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0 && ftruncate(fd, 32 << 20) == 0);
	close(fd);
	struct vm_run *r = calloc(1, sizeof(*r));
	struct vm_config cfg;
	struct kg_err e;
	make_config(r, &cfg, BLKTEST, "mode=write seed=9 sectors=32768 run=64");
	assert_int_equal(disk_spec_parse(disk, &cfg.disks[0], &e), 0);
	cfg.ndisks = 1;
	if (vm_create(&r->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	struct guest_mem *m = &r->vm.mem;
	uint64_t words = guest_mem_bitmap_words(m);
	uint64_t *bits = calloc(words, 8);
	uint8_t *shadow = malloc(m->size);
	assert_int_equal(guest_mem_dirty_log(m, r->vm.vm_fd, true, &e), 0);
	guest_mem_take_dirty(m, bits);
	memcpy(shadow, m->base, m->size);
	vm_run_start(r);
	uint64_t device_pages = 0, epochs = 0;
	for (;;) {
		usleep(2000);
		vm_pause(&r->vm);
		bool stopping = r->vm.req != VM_REQ_PAUSE;
		memset(bits, 0, words * 8);
		uint64_t *dev = calloc(words, 8);
		device_pages += guest_mem_take_dirty(m, dev);
		if (guest_mem_fetch_kvm_dirty(m, r->vm.vm_fd, bits, &e) < 0)
			fail_msg("dirty log: %s", e.msg);
		for (uint64_t w = 0; w < words; w++)
			for (uint64_t b = bits[w] | dev[w]; b; b &= b - 1) {
				uint64_t pg = w * 64 + (uint64_t)__builtin_ctzll(b);
				memcpy(shadow + pg * 4096, m->base + pg * 4096,
				       4096);
			}
		free(dev);
		epochs++;
		if (stopping)
			break;
		vm_resume(&r->vm);
	}
	pthread_join(r->thread, NULL);
	/* A last epoch after the guest stopped catches its final writes. */
	memset(bits, 0, words * 8);
	uint64_t *dev = calloc(words, 8);
	device_pages += guest_mem_take_dirty(m, dev);
	assert_int_equal(guest_mem_fetch_kvm_dirty(m, r->vm.vm_fd, bits, &e), 0);
	for (uint64_t w = 0; w < words; w++)
		for (uint64_t b = bits[w] | dev[w]; b; b &= b - 1) {
			uint64_t pg = w * 64 + (uint64_t)__builtin_ctzll(b);
			memcpy(shadow + pg * 4096, m->base + pg * 4096, 4096);
		}
	free(dev);
	uint64_t lost = 0;
	for (uint64_t pg = 0; pg < m->size / 4096; pg++)
		lost += memcmp(shadow + pg * 4096, m->base + pg * 4096, 4096) != 0;
	print_message("%llu epochs, %llu device-written pages, %llu lost\n",
		      (unsigned long long)epochs,
		      (unsigned long long)device_pages,
		      (unsigned long long)lost);
	assert_int_equal(r->stop.reason, VM_STOP_EXIT);
	assert_int_equal(r->stop.exit_code, 0);
	assert_true(epochs > 3);
	assert_true(device_pages > 0);
	assert_int_equal(lost, 0);
	vm_destroy(&r->vm);
	unlink(r->console);
	unlink(disk);
	free(shadow);
	free(bits);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpu_roundtrip_random_points),
		cmocka_unit_test(test_snapshot_random_points),
		cmocka_unit_test(test_no_lost_dirty_pages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
