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

#include "ft/checkpoint/cpu_state.h"
#include "ft/checkpoint/dev_state.h"
#include "ft/checkpoint/snapshot.h"
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

/* Guest-visible state of a table, encoded: compares structs field by
 * field, padding aside. */
static void same_table(const struct vs_desc *d, const void *a, const void *b)
{
	struct vs_buf ea = { 0 }, eb = { 0 };
	assert_int_equal(vs_encode(d, a, &ea, NULL), 0);
	assert_int_equal(vs_encode(d, b, &eb, NULL), 0);
	assert_int_equal(ea.len, eb.len);
	assert_memory_equal(ea.data, eb.data, ea.len);
	vs_buf_free(&ea);
	vs_buf_free(&eb);
}

/* Opens path into a fresh VM of the snapshot's kind, or of the other kind
 * when `flip`; returns snapshot_load's result (0 or -1, message in e). */
static int restore_into(const char *path, bool flip, struct vm_run *b,
			struct snapshot_reader **sr, struct kg_err *e)
{
	struct vm_config cfg;
	make_config(b, &cfg, NULL, NULL);
	*sr = snapshot_open(path, &cfg, e);
	if (!*sr)
		fail_msg("snapshot_open: %s", e->msg);
	cfg.deterministic ^= flip;
	if (vm_create(&b->vm, &cfg, e) < 0)
		fail_msg("vm_create: %s", e->msg);
	return snapshot_load(*sr, &b->vm, e);
}

/* A deterministic VM (userspace PIC and PIT, no in-kernel irqchip) builds
 * with one vCPU only, and its state — vCPU without a local APIC, PIC, PIT
 * — round-trips through a snapshot into a fresh deterministic VM; the
 * snapshot refuses a VM of the other kind, and the reverse. */
static void test_deterministic_roundtrip(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	struct vm_run *a = calloc(1, sizeof(*a));
	struct vm_config cfg;
	struct kg_err e;
	make_config(a, &cfg, MEMSTRESS, "mib=8 total=64 seed=3");
	cfg.deterministic = true;
	cfg.ncpus = 2;
	assert_int_equal(vm_create(&a->vm, &cfg, &e), -1);
	assert_non_null(strstr(e.msg, "needs exactly 1 vCPU"));
	cfg.ncpus = 1;
	if (vm_create(&a->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	assert_ptr_equal(a->vm.gate.irqchip, &a->vm.irq.hooks);
	/* Some state a guest would leave: PIC programmed, IRQ 4 in service,
	 * IRQ 3 requested; PIT counter 0 at 1 kHz, counter 2 latched. */
	struct dev_irq *d = &a->vm.irq;
	static const uint8_t init[][2] = {
		{ 0x20, 0x11 }, { 0x21, 0x20 }, { 0x21, 0x04 }, { 0x21, 0x01 },
		{ 0xa0, 0x11 }, { 0xa1, 0x28 }, { 0xa1, 0x02 }, { 0xa1, 0x01 },
		{ 0x21, 0xf8 }, { 0xa1, 0xfe },
	};
	for (size_t i = 0; i < sizeof(init) / sizeof(init[0]); i++)
		pic_io_write(&d->pic, init[i][0], init[i][1]);
	a->vm.gate.irqchip->set_line(d, 4, 1);
	a->vm.gate.irqchip->set_line(d, 3, 1);
	pic_io_write(&d->pic, 0x21, 0xe0);
	uint64_t now = gate_time_ns(&a->vm.gate);
	assert_int_equal(a->vm.gate.irqchip->ack(d, now), 0x23);
	pit_io_write(&d->pit, 0x43, 0x34, now);
	pit_io_write(&d->pit, 0x40, 0xa9, now);
	pit_io_write(&d->pit, 0x40, 0x04, now);
	pit_io_write(&d->pit, 0x43, 0xb0, now);
	pit_io_write(&d->pit, 0x42, 0x34, now);
	pit_io_write(&d->pit, 0x42, 0x12, now);
	pit_io_write(&d->pit, 0x43, 0x80, now);
	/* IRQ 0 outranks IRQ 3 in service: the timer's edge is a deadline;
	 * masked, it is none */
	assert_true(a->vm.gate.irqchip->next_deadline(d, now) ==
		    pit_next_edge_ns(&d->pit, now));
	assert_true(pit_next_edge_ns(&d->pit, now) > now);
	pic_io_write(&d->pic, 0x21, 0xe1);
	assert_true(a->vm.gate.irqchip->next_deadline(d, now) == UINT64_MAX);
	pic_io_write(&d->pic, 0x21, 0xe0);

	char path[96], path2[96];
	snprintf(path, sizeof(path), "/tmp/kagami-det-%d.kgs", getpid());
	snprintf(path2, sizeof(path2), "/tmp/kagami-nondet-%d.kgs", getpid());
	struct snapshot_stats st;
	if (snapshot_save(&a->vm, path, &st, &e) < 0)
		fail_msg("snapshot: %s", e.msg);

	struct vm_run *b = calloc(1, sizeof(*b));
	struct snapshot_reader *sr;
	if (restore_into(path, false, b, &sr, &e) < 0)
		fail_msg("restore: %s", e.msg);
	assert_true(b->vm.cfg.deterministic);
	same_table(&dev_pic_vs, &a->vm.irq.pic, &b->vm.irq.pic);
	same_table(&dev_pit_vs, &a->vm.irq.pit, &b->vm.irq.pit);
	uint32_t idx[CPU_STATE_MAX_MSRS], n;
	assert_int_equal(cpu_msr_index_list(a->vm.kvm_fd, idx, &n, &e), 0);
	struct cpu_state *ca = malloc(sizeof(*ca)), *cb = malloc(sizeof(*cb));
	if (cpu_state_save(&a->vm.vcpus[0], idx, n, ca, &e) < 0 ||
	    cpu_state_save(&b->vm.vcpus[0], idx, n, cb, &e) < 0)
		fail_msg("cpu_state_save: %s", e.msg);
	SAME(ca, cb, regs);
	SAME(ca, cb, sregs);
	/* the restored controller carries on: EOI, then IRQ 4 (at the
	 * time the timer was loaded: no IRQ 0 edge yet) */
	pic_io_write(&b->vm.irq.pic, 0x20, 0x20);
	assert_true(b->vm.gate.irqchip->pending(b->vm.irq.hooks.ctx, now));
	assert_int_equal(b->vm.gate.irqchip->ack(b->vm.irq.hooks.ctx, now),
			 0x24);
	/* and the timer's next edge is where it was */
	assert_true(pit_next_edge_ns(&b->vm.irq.pit, now) ==
		    pit_next_edge_ns(&a->vm.irq.pit, now));
	snapshot_close(sr);
	vm_destroy(&b->vm);
	unlink(b->console);

	/* deterministic state into a VM with an in-kernel irqchip */
	memset(b, 0, sizeof(*b));
	assert_int_equal(restore_into(path, true, b, &sr, &e), -1);
	assert_non_null(strstr(e.msg, "cannot be restored into a VM with an "
				      "in-kernel irqchip"));
	assert_null(strchr(e.msg, '\n'));
	assert_int_equal(e.kind, KG_ERR_CORRUPT);
	/* the section is named once, where the error was made */
	assert_null(strstr(strstr(e.msg, "section ") + 1, "section "));
	snapshot_close(sr);
	vm_destroy(&b->vm);
	unlink(b->console);

	/* and the reverse */
	struct vm_run *c = calloc(1, sizeof(*c));
	make_config(c, &cfg, MEMSTRESS, "mib=8 total=64 seed=3");
	if (vm_create(&c->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	if (snapshot_save(&c->vm, path2, &st, &e) < 0)
		fail_msg("snapshot: %s", e.msg);
	memset(b, 0, sizeof(*b));
	assert_int_equal(restore_into(path2, true, b, &sr, &e), -1);
	assert_non_null(strstr(e.msg, "cannot be restored into a "
				      "deterministic VM"));
	snapshot_close(sr);
	vm_destroy(&b->vm);
	unlink(b->console);

	vm_destroy(&a->vm);
	vm_destroy(&c->vm);
	unlink(a->console);
	unlink(c->console);
	unlink(path);
	unlink(path2);
	free(ca);
	free(cb);
	free(a);
	free(b);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpu_roundtrip_random_points),
		cmocka_unit_test(test_snapshot_random_points),
		cmocka_unit_test(test_no_lost_dirty_pages),
		cmocka_unit_test(test_deterministic_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
