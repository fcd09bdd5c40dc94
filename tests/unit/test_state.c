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

#include "base/clock.h"
#include "ft/checkpoint/cpu_state.h"
#include "ft/checkpoint/snapshot.h"
#include "ft/checkpoint/stream.h"
#include "ft/checkpoint/vm_state.h"
#include "vm_fixture.h"
#include "vmm/mem_lazy.h"
#include "vmm/rtc.h"

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
 * that ends with the same checksum. The guest paces itself by its clock
 * (8 s at 512 MiB/s): with a 4 s run, four snapshots on a loaded host
 * (each one copying while the guest dirties pages) sometimes came after
 * the guest's end ("the VM is stopping"). */
static void test_snapshot_random_points(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	const char *args = "mib=8 total=4096 seed=5 rate=512";
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
		usleep(100000 + rand() % 400000);
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

/* A deterministic VM's interrupt controller, through the gate's hooks. */
static struct dev_irq *irq_of(struct vm *vm)
{
	assert_non_null(vm->gate.irqchip);
	struct dev_irq *d = vm->gate.irqchip->ctx;
	assert_ptr_equal(vm->gate.irqchip, &d->hooks);
	return d;
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
	struct dev_irq *d = irq_of(&a->vm);
	/* Some state a guest would leave: PIC programmed, IRQ 4 in service,
	 * IRQ 3 requested; PIT counter 0 at 1 kHz, counter 2 latched. */
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
	struct dev_irq *bd = irq_of(&b->vm);
	same_table(&pic_vs, &d->pic, &bd->pic);
	same_table(&pit_vs, &d->pit, &bd->pit);
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
	pic_io_write(&bd->pic, 0x20, 0x20);
	assert_true(b->vm.gate.irqchip->pending(bd, now));
	assert_int_equal(b->vm.gate.irqchip->ack(bd, now), 0x24);
	/* and the timer's next edge is where it was */
	assert_true(pit_next_edge_ns(&bd->pit, now) ==
		    pit_next_edge_ns(&d->pit, now));
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

/* The RTC's section instance: its identity in every stream. */
#define RTC_INSTANCE 4

static struct rtc *rtc_of(struct vm *vm)
{
	unsigned t;
	const struct vm_device *d = vm_device_find(vm, RTC_INSTANCE, &t);
	assert_non_null(d);
	assert_string_equal(d->ops->name, "rtc");
	return vm_device_state(d, t);
}

/* A port access through the VM's PIO bus, as a vCPU's exit makes it. */
static void pio(struct vm *vm, uint16_t port, uint8_t *v, bool write)
{
	const struct bus_range *b = bus_find(&vm->pio, port, 1);
	assert_non_null(b);
	if (write)
		b->ops->write(b->opaque, port - b->base, v, 1);
	else
		b->ops->read(b->opaque, port - b->base, v, 1);
}

static uint8_t cmos_read(struct vm *vm, uint8_t reg)
{
	uint8_t v = reg;
	pio(vm, RTC_PORT_INDEX, &v, true);
	pio(vm, RTC_PORT_DATA, &v, false);
	return v;
}

static void cmos_write(struct vm *vm, uint8_t reg, uint8_t v)
{
	pio(vm, RTC_PORT_INDEX, &reg, true);
	pio(vm, RTC_PORT_DATA, &v, true);
}

/* Whether the stream in fd holds a section (kind, instance). */
static bool has_section(int fd, uint16_t kind, uint16_t instance)
{
	struct kg_stream_reader r;
	struct kg_stream_header h;
	struct kg_section s;
	struct kg_err e;
	bool found = false;
	int n;
	assert_true(lseek(fd, 0, SEEK_SET) == 0);
	kg_reader_init(&r, fd, NULL);
	if (kg_reader_header(&r, &h, &e) < 0)
		fail_msg("header: %s", e.msg);
	while ((n = kg_reader_next(&r, &s, &e)) > 0)
		found |= s.kind == kind && s.instance == instance;
	if (n < 0)
		fail_msg("stream: %s", e.msg);
	return found;
}

/* vm's state sections (vm_state_write) in a temporary file, without the
 * DEVICE section `skip` (-1: none): what a kagami without that device
 * wrote. Returns the file, at offset 0. */
static int state_stream(struct vm *vm, int skip)
{
	FILE *all = tmpfile(), *out = tmpfile();
	assert_non_null(all);
	assert_non_null(out);
	struct kg_stream_writer w;
	struct kg_err e;
	kg_writer_init(&w, fileno(all), NULL, NULL);
	vm_state_hold(vm);
	int rc = kg_writer_header(&w, NULL, &e) < 0 ||
		 vm_state_write(&w, vm, &e) < 0 || kg_writer_end(&w, &e) < 0;
	vm_state_release(vm);
	if (rc)
		fail_msg("writing state: %s", e.msg);
	assert_true(lseek(fileno(all), 0, SEEK_SET) == 0);
	struct kg_stream_reader r;
	struct kg_stream_header h;
	struct kg_section s;
	kg_reader_init(&r, fileno(all), NULL);
	kg_writer_init(&w, fileno(out), NULL, NULL);
	assert_int_equal(kg_reader_header(&r, &h, &e), 0);
	assert_int_equal(kg_writer_header(&w, NULL, &e), 0);
	int n;
	while ((n = kg_reader_next(&r, &s, &e)) > 0) {
		uint8_t *buf = kg_section_read_all(&r, &s, &e);
		assert_non_null(buf);
		if (s.kind != KG_SEC_DEVICE || s.instance != skip)
			assert_int_equal(kg_writer_section(&w, s.kind,
							   s.instance,
							   s.version, buf,
							   s.length, &e), 0);
		free(buf);
	}
	assert_int_equal(n, 0);
	assert_int_equal(kg_writer_end(&w, &e), 0);
	fclose(all);
	int fd = dup(fileno(out));
	fclose(out);
	assert_true(fd >= 0 && lseek(fd, 0, SEEK_SET) == 0);
	return fd;
}

/* Stages every section of the stream in fd into vm, then applies. */
static int load_stream(int fd, struct vm *vm, struct kg_err *e)
{
	struct kg_stream_reader r;
	struct kg_stream_header h;
	struct kg_section s;
	struct vm_state_stage *st = vm_state_stage_new(e);
	assert_non_null(st);
	kg_reader_init(&r, fd, NULL);
	int n = 0, rc = kg_reader_header(&r, &h, e);
	while (rc == 0 && (n = kg_reader_next(&r, &s, e)) > 0)
		rc = vm_state_stage_section(&r, &s, vm, st, e);
	if (rc == 0)
		rc = n < 0 ? -1 : vm_state_apply(vm, st, e);
	vm_state_stage_free(st);
	return rc;
}

/* The RTC, registered like every device, travels in snapshots as device
 * #4: a restored VM reads the time the guest set and its CMOS RAM, not
 * its host's clock. A stream from before the RTC (no #4) still loads,
 * keeping the new VM's own clock; one without a device every kagami had
 * (the UART) is incomplete. */
static void test_rtc_in_snapshot(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	struct vm_run *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct vm_config cfg;
	struct kg_err e;
	make_config(a, &cfg, MEMSTRESS, "mib=8 total=64 seed=3");
	if (vm_create(&a->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	/* from the host's wall clock (give or take this test's runtime) */
	struct rtc *ra = rtc_of(&a->vm);
	int64_t host = (int64_t)(kg_realtime_ns() / 1000000000ull);
	assert_true(ra->base_s <= host && ra->base_s > host - 60);
	assert_int_equal(cmos_read(&a->vm, RTC_REG_D), RTC_D_VRT);
	/* the guest sets 1999-12-31 23:59:58 and a byte of RAM */
	cmos_write(&a->vm, RTC_REG_B, RTC_B_24H | RTC_B_SET);
	static const uint8_t t[][2] = {
		{ RTC_SECONDS, 0x58 }, { RTC_MINUTES, 0x59 },
		{ RTC_HOURS, 0x23 }, { RTC_DAY, 0x31 }, { RTC_MONTH, 0x12 },
		{ RTC_YEAR, 0x99 }, { RTC_CENTURY, 0x19 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		cmos_write(&a->vm, t[i][0], t[i][1]);
	cmos_write(&a->vm, RTC_REG_B, RTC_B_24H);
	cmos_write(&a->vm, 0x40, 0x5a);
	assert_true(ra->base_s < 946684800 && ra->base_s > 946684700);
	assert_int_equal(cmos_read(&a->vm, RTC_CENTURY), 0x19);

	char path[96];
	snprintf(path, sizeof(path), "/tmp/kagami-rtc-%d.kgs", getpid());
	struct snapshot_stats st;
	if (snapshot_save(&a->vm, path, &st, &e) < 0)
		fail_msg("snapshot: %s", e.msg);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_true(has_section(fd, KG_SEC_DEVICE, RTC_INSTANCE));
	close(fd);

	struct snapshot_reader *sr;
	make_config(b, &cfg, NULL, NULL);
	if (!(sr = snapshot_open(path, &cfg, &e)))
		fail_msg("snapshot_open: %s", e.msg);
	if (vm_create(&b->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	struct rtc *rb = rtc_of(&b->vm);
	assert_true(rb->base_s >= host);
	if (snapshot_load(sr, &b->vm, &e) < 0)
		fail_msg("restore: %s", e.msg);
	assert_true(rb->base_s == ra->base_s);
	assert_int_equal(cmos_read(&b->vm, 0x40), 0x5a);
	assert_int_equal(cmos_read(&b->vm, RTC_YEAR), 0x99);
	assert_int_equal(cmos_read(&b->vm, RTC_CENTURY), 0x19);
	assert_int_equal(cmos_read(&b->vm, RTC_REG_B), RTC_B_24H);
	snapshot_close(sr);
	vm_destroy(&b->vm);
	unlink(b->console);
	unlink(path);

	/* a stream written before the RTC existed */
	memset(b, 0, sizeof(*b));
	make_config(b, &cfg, NULL, NULL);
	if (vm_create(&b->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	fd = state_stream(&a->vm, RTC_INSTANCE);
	assert_false(has_section(fd, KG_SEC_DEVICE, RTC_INSTANCE));
	assert_true(has_section(fd, KG_SEC_DEVICE, 0));
	assert_true(lseek(fd, 0, SEEK_SET) == 0);
	rb = rtc_of(&b->vm);
	int64_t own = rb->base_s;
	if (load_stream(fd, &b->vm, &e) < 0)
		fail_msg("a stream without the RTC: %s", e.msg);
	assert_true(rb->base_s == own);
	close(fd);

	/* and one without the UART: refused, the VM untouched */
	fd = state_stream(&a->vm, 0);
	cmos_write(&b->vm, 0x41, 0x77);
	assert_int_equal(load_stream(fd, &b->vm, &e), -1);
	assert_non_null(strstr(e.msg, "incomplete state"));
	assert_non_null(strstr(e.msg, "no uart"));
	assert_int_equal(cmos_read(&b->vm, 0x41), 0x77);
	close(fd);

	vm_destroy(&b->vm);
	unlink(b->console);
	vm_destroy(&a->vm);
	unlink(a->console);
	free(a);
	free(b);
}

/* A copy of snapshot src without its ram-hashes sections: what a kagami
 * before stream 1.3 wrote (the sections before them keep their offsets,
 * so RAM stays page aligned). */
static void strip_hashes(const char *src, const char *dst)
{
	struct kg_err e = { 0 };
	int in = open(src, O_RDONLY), out = open(dst, O_RDWR | O_CREAT |
						  O_TRUNC, 0600);
	assert_true(in >= 0 && out >= 0);
	struct kg_stream_reader r;
	struct kg_stream_writer w;
	kg_reader_init(&r, in, NULL);
	kg_writer_init(&w, out, NULL, NULL);
	struct kg_stream_header h;
	assert_int_equal(kg_reader_header(&r, &h, &e), 0);
	assert_int_equal(kg_writer_header(&w, &h, &e), 0);
	struct kg_section sec;
	unsigned dropped = 0;
	while (kg_reader_next(&r, &sec, &e) == 1) {
		uint8_t *p = kg_section_read_all(&r, &sec, &e);
		if (!p)
			fail_msg("%s", e.msg);
		if (sec.kind == KG_SEC_RAM_HASHES)
			dropped++;
		else if (kg_writer_section(&w, sec.kind, sec.instance,
					   sec.version, p, sec.length, &e) < 0)
			fail_msg("%s", e.msg);
		free(p);
	}
	assert_int_equal(dropped, 1);
	assert_int_equal(kg_writer_end(&w, &e), 0);
	close(in);
	close(out);
}

static void flip_byte(const char *path, off_t at)
{
	int fd = open(path, O_RDWR);
	uint8_t b;
	assert_true(fd >= 0 && pread(fd, &b, 1, at) == 1);
	b ^= 0x5a;
	assert_true(pwrite(fd, &b, 1, at) == 1);
	close(fd);
}

/* Restores path into b (test prefetch delay ms) and runs it. */
static int restore_run(const char *path, struct vm_run *b, unsigned delay_ms,
		       struct snapshot_reader **sr, struct kg_err *e)
{
	struct vm_config cfg;
	make_config(b, &cfg, NULL, NULL);
	if (!(*sr = snapshot_open(path, &cfg, e)))
		fail_msg("snapshot_open: %s", e->msg);
	snapshot_test_prefetch_delay(*sr, delay_ms);
	if (vm_create(&b->vm, &cfg, e) < 0)
		fail_msg("vm_create: %s", e->msg);
	if (snapshot_load(*sr, &b->vm, e) < 0)
		return -1;
	vm_run_start(b);
	return 0;
}

/* RAM comes in after the guest starts (each page checked), and the
 * restored VM is whole meanwhile: a snapshot taken of it while most of
 * its RAM is still in the file restores and finishes like the original.
 * A snapshot of the format before page hashes restores by copying RAM
 * in first; a byte changed in its RAM is refused before the guest
 * starts (its section checksum). */
static void test_snapshot_ram_load(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	const char *args = "mib=8 total=1536 seed=9 rate=512";
	struct vm_config cfg;
	struct kg_err e = { 0 };
	struct vm_run *a = calloc(1, sizeof(*a));
	make_config(a, &cfg, MEMSTRESS, args);
	if (vm_create(&a->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	vm_run_start(a);
	usleep(300000);
	char path[96], old[96], again[96];
	snprintf(path, sizeof(path), "/tmp/kagami-ramload-%d.kgs", getpid());
	snprintf(old, sizeof(old), "/tmp/kagami-ramload-%d-old.kgs", getpid());
	snprintf(again, sizeof(again), "/tmp/kagami-ramload-%d-2.kgs", getpid());
	struct snapshot_stats st;
	if (snapshot_save(&a->vm, path, &st, &e) < 0)
		fail_msg("snapshot: %s", e.msg);
	char *want = finish(a);

	/* lazily, the background load held back: a snapshot of it now */
	struct vm_run *b = calloc(1, sizeof(*b));
	struct snapshot_reader *sr;
	if (restore_run(path, b, 60000, &sr, &e) < 0)
		fail_msg("restore: %s", e.msg);
	vm_pause(&b->vm);
	struct mem_lazy_stats ls;
	assert_true(guest_mem_lazy_stats(&b->vm.mem, &ls));
	assert_true(ls.pages < (64u << 20) / 4096 / 2);
	vm_resume(&b->vm);
	if (snapshot_save(&b->vm, again, &st, &e) < 0)
		fail_msg("snapshot of a restoring VM: %s", e.msg);
	char *got = finish(b);
	snapshot_close(sr);
	assert_string_equal(last_line(got), last_line(want));
	free(got);
	memset(b, 0, sizeof(*b));
	if (restore_run(again, b, 0, &sr, &e) < 0)
		fail_msg("restore: %s", e.msg);
	got = finish(b);
	snapshot_close(sr);
	assert_string_equal(last_line(got), last_line(want));
	free(got);

	/* the format before page hashes */
	strip_hashes(path, old);
	memset(b, 0, sizeof(*b));
	if (restore_run(old, b, 0, &sr, &e) < 0)
		fail_msg("restore without hashes: %s", e.msg);
	assert_false(guest_mem_lazy(&b->vm.mem));
	got = finish(b);
	snapshot_close(sr);
	assert_string_equal(last_line(got), last_line(want));
	free(got);
	int fd = open(old, O_RDONLY);
	struct kg_stream_reader r;
	struct kg_section sec;
	kg_reader_init(&r, fd, NULL);
	assert_int_equal(kg_reader_header(&r, NULL, &e), 0);
	while (kg_reader_next(&r, &sec, &e) == 1 && sec.kind != KG_SEC_RAM_FULL)
		;
	close(fd);
	assert_int_equal(sec.kind, KG_SEC_RAM_FULL);
	flip_byte(old, (off_t)(sec.offset + 16 + 3 * 4096 + 7));
	memset(b, 0, sizeof(*b));
	assert_int_equal(restore_run(old, b, 0, &sr, &e), -1);
	assert_int_equal(e.kind, KG_ERR_CORRUPT);
	assert_non_null(strstr(e.msg, "(ram #0)"));
	assert_non_null(strstr(e.msg, "checksum mismatch"));
	snapshot_close(sr);
	vm_destroy(&b->vm);
	unlink(b->console);

	unlink(path);
	unlink(old);
	unlink(again);
	free(want);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpu_roundtrip_random_points),
		cmocka_unit_test(test_snapshot_random_points),
		cmocka_unit_test(test_no_lost_dirty_pages),
		cmocka_unit_test(test_deterministic_roundtrip),
		cmocka_unit_test(test_rtc_in_snapshot),
		cmocka_unit_test(test_snapshot_ram_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
