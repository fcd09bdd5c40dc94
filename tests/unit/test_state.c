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
#include "../../vmm/vm.h"

#define MEMSTRESS "build/guests/memstress.elf"
#define BLKTEST "build/guests/blktest.elf"

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
	char console[96];
};

static void *run_thread(void *arg)
{
	struct runner *r = arg;
	r->rc = vm_run(&r->vm, &r->stop, &r->err);
	return NULL;
}

static void make_config(struct runner *r, struct vm_config *cfg,
			const char *image, const char *cmdline)
{
	struct kg_err e;
	memset(cfg, 0, sizeof(*cfg));
	cfg->mem_size = 64ull << 20;
	cfg->ncpus = 1;
	cfg->kernel_path = image;
	cfg->cmdline = cmdline;
	snprintf(r->console, sizeof(r->console), "/tmp/kagami-state-%d-%p",
		 getpid(), (void *)r);
	assert_int_equal(console_parse("file:/x", &cfg->console, &e), 0);
	snprintf(cfg->console.path, sizeof(cfg->console.path), "%s",
		 r->console);
}

static void start(struct runner *r)
{
	assert_int_equal(pthread_create(&r->thread, NULL, run_thread, r), 0);
}

static char *finish(struct runner *r)
{
	pthread_join(r->thread, NULL);
	assert_int_equal(r->rc, 0);
	assert_int_equal(r->stop.reason, VM_STOP_EXIT);
	vm_destroy(&r->vm);
	FILE *f = fopen(r->console, "r");
	assert_non_null(f);
	char *buf = calloc(1, 1 << 16);
	size_t n = fread(buf, 1, (1 << 16) - 1, f);
	buf[n] = 0;
	fclose(f);
	unlink(r->console);
	return buf;
}

static const char *last_line(const char *out)
{
	const char *p = strstr(out, "memstress: done checksum=");
	assert_non_null(p);
	return p;
}

static uint64_t ram_digest(const struct vm *vm)
{
	uint64_t h = 0xcbf29ce484222325ull;
	const uint64_t *p = (const uint64_t *)vm->mem.base;
	for (size_t i = 0; i < vm->mem.size / 8; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

#define SAME(a, b, f) assert_memory_equal(&(a)->f, &(b)->f, sizeof((a)->f))

static void test_cpu_roundtrip_random_points(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	struct runner *r = calloc(1, sizeof(*r));
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
	start(r);
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
	struct runner *ref = calloc(1, sizeof(*ref));
	make_config(ref, &cfg, MEMSTRESS, "mib=8 total=1536 seed=21");
	if (vm_create(&ref->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	start(ref);
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
	struct runner *a = calloc(1, sizeof(*a));
	make_config(a, &cfg, MEMSTRESS, args);
	if (vm_create(&a->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	start(a);
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
		struct runner *b = calloc(1, sizeof(*b));
		make_config(b, &cfg, NULL, NULL);
		struct snapshot_reader *sr = snapshot_open(paths[i], &cfg, &e);
		if (!sr)
			fail_msg("snapshot_open: %s", e.msg);
		if (vm_create(&b->vm, &cfg, &e) < 0 ||
		    snapshot_load(sr, &b->vm, &e) < 0)
			fail_msg("restore %d: %s", i, e.msg);
		start(b);
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
	struct runner *r = calloc(1, sizeof(*r));
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
	start(r);
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
