/*
 * Unit tests for the device side of the split virtqueue (vmm/virtq.h):
 * ring checks, popping chains, gathering and scattering their buffers,
 * pushing used elements, and every way a guest can malform a queue.
 *
 * Guest RAM is one malloc'd 1 MiB buffer laid out by guest_mem_layout(),
 * with a VMM dirty bitmap so that writes through the pass-through gate are
 * marked; no memfd, no KVM (the gate's vm_fd is -1 and no interrupt is
 * raised).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/gate.h"
#include "vmm/mem.h"
#include "vmm/virtq.h"

#define RAM_SIZE (1ull << 20)
#define PAGE 4096ull

/* Where the rings live in the default layout. */
#define DESC_GPA 0x1000ull
#define AVAIL_GPA 0x2000ull
#define USED_GPA 0x3000ull

struct fixture {
	struct guest_mem m;
	struct gate g;
	struct virtq q;
	uint8_t *ram;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->m.fd = -1;
	guest_mem_layout(RAM_SIZE, &f->m);
	assert_int_equal(f->m.nregions, 1);
	f->ram = malloc(RAM_SIZE);
	assert_non_null(f->ram);
	memset(f->ram, 0, RAM_SIZE);
	f->m.base = f->ram;
	f->m.regions[0].hva = f->ram;
	f->m.vmm_dirty = calloc((RAM_SIZE / PAGE + 63) / 64, sizeof(uint64_t));
	assert_non_null(f->m.vmm_dirty);
	gate_init_passthrough(&f->g, &f->m, -1);
	f->q = (struct virtq){
		.size = 8,
		.ready = 1,
		.desc_gpa = DESC_GPA,
		.avail_gpa = AVAIL_GPA,
		.used_gpa = USED_GPA,
	};
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	free(f->ram);
	free(f->m.vmm_dirty);
	free(f);
	return 0;
}

/* --- guest-side helpers: what a driver would write --- */

static void put16(struct fixture *f, uint64_t gpa, uint16_t v)
{
	memcpy(f->ram + gpa, &v, 2);
}

static void put32(struct fixture *f, uint64_t gpa, uint32_t v)
{
	memcpy(f->ram + gpa, &v, 4);
}

static void put64(struct fixture *f, uint64_t gpa, uint64_t v)
{
	memcpy(f->ram + gpa, &v, 8);
}

static uint16_t get16(const struct fixture *f, uint64_t gpa)
{
	uint16_t v;
	memcpy(&v, f->ram + gpa, 2);
	return v;
}

static uint32_t get32(const struct fixture *f, uint64_t gpa)
{
	uint32_t v;
	memcpy(&v, f->ram + gpa, 4);
	return v;
}

static void set_desc(struct fixture *f, uint16_t i, uint64_t addr,
		     uint32_t len, uint16_t flags, uint16_t next)
{
	uint64_t d = f->q.desc_gpa + 16ull * i;
	put64(f, d, addr);
	put32(f, d + 8, len);
	put16(f, d + 12, flags);
	put16(f, d + 14, next);
}

static uint16_t avail_idx(const struct fixture *f)
{
	return get16(f, f->q.avail_gpa + 2);
}

static void set_avail_idx(struct fixture *f, uint16_t idx)
{
	put16(f, f->q.avail_gpa + 2, idx);
}

/* Makes `head` available: ring[idx % size] = head, then idx++. */
static void avail_push(struct fixture *f, uint16_t head)
{
	uint16_t idx = avail_idx(f);
	put16(f, f->q.avail_gpa + 4 + 2ull * (idx % f->q.size), head);
	set_avail_idx(f, (uint16_t)(idx + 1));
}

static bool dirty(const struct fixture *f, uint64_t gpa)
{
	uint64_t pg = gpa / PAGE;
	return (f->m.vmm_dirty[pg / 64] >> (pg % 64)) & 1;
}

static void clear_dirty(struct fixture *f)
{
	memset((void *)f->m.vmm_dirty, 0,
	       (RAM_SIZE / PAGE + 63) / 64 * sizeof(uint64_t));
}

static unsigned dirty_count(const struct fixture *f)
{
	unsigned n = 0;
	for (uint64_t i = 0; i < (RAM_SIZE / PAGE + 63) / 64; i++)
		n += (unsigned)__builtin_popcountll(f->m.vmm_dirty[i]);
	return n;
}

/* The virtio-blk shape: a readable 16-byte header at 0x30000, a writable
 * 512-byte data buffer at 0x10f00 (crossing into page 0x11) and a writable
 * 1-byte status at 0x20000, as descriptors 2 -> 5 -> 7. */
#define HDR_GPA 0x30000ull
#define DATA_GPA 0x10f00ull
#define STATUS_GPA 0x20000ull

static void make_blk_chain(struct fixture *f)
{
	set_desc(f, 2, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, 5);
	set_desc(f, 5, DATA_GPA, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE,
		 7);
	set_desc(f, 7, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	avail_push(f, 2);
}

/* Pops expecting failure: -1, a message containing `what`, and no
 * progress on the queue. */
static void pop_fails(struct fixture *f, const char *what)
{
	struct virtq_chain c;
	struct kg_err e = { 0 };
	uint16_t last = f->q.last_avail, used = f->q.used_idx;
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), -1);
	if (!strstr(e.msg, what))
		fail_msg("error '%s' does not mention '%s'", e.msg, what);
	assert_int_equal(e.kind, KG_ERR_GUEST);
	assert_int_equal(f->q.last_avail, last);
	assert_int_equal(f->q.used_idx, used);
}

static void check_fails(struct fixture *f, const char *what)
{
	struct kg_err e = { 0 };
	assert_int_equal(virtq_check_rings(&f->q, &f->m, &e), -1);
	if (!strstr(e.msg, what))
		fail_msg("error '%s' does not mention '%s'", e.msg, what);
	assert_int_equal(e.kind, KG_ERR_GUEST);
	/* pop runs the same checks first */
	pop_fails(f, what);
}

/* --- ring checks --- */

static void test_check_rings_valid(void **state)
{
	struct fixture *f = *state;
	struct kg_err e = { 0 };
	assert_int_equal(virtq_check_rings(&f->q, &f->m, &e), 0);
	/* every power of two up to the maximum */
	for (unsigned n = 1; n <= VIRTQ_MAX_SIZE; n *= 2) {
		f->q.size = (uint16_t)n;
		assert_int_equal(virtq_check_rings(&f->q, &f->m, &e), 0);
	}
	/* rings at their minimum alignments, the used ring (6 + 8n bytes,
	 * so 2 mod 4) ending as close to the end of RAM as it can */
	f->q.size = 4;
	f->q.desc_gpa = 0x10;
	f->q.avail_gpa = 0x52;
	f->q.used_gpa = RAM_SIZE - (6 + 8 * 4) - 2;
	assert_int_equal(virtq_check_rings(&f->q, &f->m, &e), 0);
	f->q.desc_gpa = RAM_SIZE - 16 * 4;
	f->q.avail_gpa = RAM_SIZE - (6 + 2 * 4);
	f->q.used_gpa = 0;
	assert_int_equal(virtq_check_rings(&f->q, &f->m, &e), 0);
}

static void test_bad_size(void **state)
{
	struct fixture *f = *state;
	f->q.size = 0;
	check_fails(f, "power of two");
	f->q.size = 3;
	check_fails(f, "power of two");
	f->q.size = 255;
	check_fails(f, "power of two");
	f->q.size = 512;
	check_fails(f, "power of two");
	f->q.size = 0x8000;
	check_fails(f, "power of two");
	f->q.size = 0xffff;
	check_fails(f, "power of two");
}

static void test_misaligned_rings(void **state)
{
	struct fixture *f = *state;
	f->q.desc_gpa = DESC_GPA + 8;
	check_fails(f, "misaligned");
	f->q.desc_gpa = DESC_GPA;
	f->q.avail_gpa = AVAIL_GPA + 1;
	check_fails(f, "misaligned");
	f->q.avail_gpa = AVAIL_GPA;
	f->q.used_gpa = USED_GPA + 2;
	check_fails(f, "misaligned");
}

static void test_rings_outside_ram(void **state)
{
	struct fixture *f = *state;
	/* descriptor table: straddling the end of RAM, then wholly past */
	f->q.desc_gpa = RAM_SIZE - 16 * 8 + 16;
	check_fails(f, "descriptor table");
	check_fails(f, "outside guest RAM");
	f->q.desc_gpa = 4ull << 30;
	check_fails(f, "descriptor table");
	f->q.desc_gpa = UINT64_MAX & ~15ull;
	check_fails(f, "descriptor table");
	f->q.desc_gpa = DESC_GPA;
	/* available ring: the used_event word would fall off the end */
	f->q.avail_gpa = RAM_SIZE - (6 + 2 * 8) + 2;
	check_fails(f, "available ring");
	f->q.avail_gpa = RAM_SIZE;
	check_fails(f, "available ring");
	f->q.avail_gpa = AVAIL_GPA;
	/* used ring */
	f->q.used_gpa = RAM_SIZE - (6 + 8 * 8) + 2; /* 4-aligned, 2 short */
	check_fails(f, "used ring");
	f->q.used_gpa = 2 * RAM_SIZE;
	check_fails(f, "used ring");
	f->q.used_gpa = USED_GPA;
	struct kg_err e = { 0 };
	assert_int_equal(virtq_check_rings(&f->q, &f->m, &e), 0);
}

/* --- popping --- */

static void test_pop_empty(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;
	struct kg_err e = { 0 };
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 0);
	assert_int_equal(f->q.last_avail, 0);
	/* after consuming everything, empty again */
	make_blk_chain(f);
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 1);
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 0);
	assert_int_equal(f->q.last_avail, 1);
}

static void test_pop_three_descriptor_chain(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;
	struct kg_err e = { 0 };
	make_blk_chain(f);
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 1);
	assert_int_equal(f->q.last_avail, 1);
	assert_int_equal(c.head, 2);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.nreadable, 1);
	assert_int_equal(c.readable_len, 16);
	assert_int_equal(c.writable_len, 513);
	assert_int_equal(c.bufs[0].gpa, HDR_GPA);
	assert_int_equal(c.bufs[0].len, 16);
	assert_false(c.bufs[0].writable);
	assert_int_equal(c.bufs[1].gpa, DATA_GPA);
	assert_int_equal(c.bufs[1].len, 512);
	assert_true(c.bufs[1].writable);
	assert_int_equal(c.bufs[2].gpa, STATUS_GPA);
	assert_int_equal(c.bufs[2].len, 1);
	assert_true(c.bufs[2].writable);
	/* popping reads the guest's rings, it never writes them */
	assert_int_equal(dirty_count(f), 0);
	assert_int_equal(get16(f, USED_GPA + 2), 0);
}

static void test_pop_all_readable_and_all_writable(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;
	struct kg_err e = { 0 };
	set_desc(f, 0, 0x10000, 100, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, 1, 0x11000, 200, 0, 0);
	avail_push(f, 0);
	set_desc(f, 3, 0x12000, 300, VIRTQ_DESC_F_WRITE, 0);
	avail_push(f, 3);
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 1);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.nreadable, 2);
	assert_int_equal(c.readable_len, 300);
	assert_int_equal(c.writable_len, 0);
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 1);
	assert_int_equal(c.head, 3);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.nreadable, 0);
	assert_int_equal(c.readable_len, 0);
	assert_int_equal(c.writable_len, 300);
}

static void test_pop_chain_as_long_as_queue(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;
	struct kg_err e = { 0 };
	/* size 8: all eight descriptors in one chain, 7 -> 6 -> ... -> 0 */
	for (uint16_t i = 0; i < 8; i++)
		set_desc(f, i, 0x10000 + 0x100ull * i, 0x10,
			 i ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i - 1));
	avail_push(f, 7);
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 1);
	assert_int_equal(c.n, 8);
	assert_int_equal(c.nreadable, 8);
	assert_int_equal(c.readable_len, 0x80);
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(c.bufs[i].gpa, 0x10000 + 0x100ull * (7 - i));
}

static void test_pop_max_size_queue(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;
	struct kg_err e = { 0 };
	f->q.size = VIRTQ_MAX_SIZE;
	for (unsigned i = 0; i < VIRTQ_MAX_SIZE; i++)
		set_desc(f, (uint16_t)i, 0x40000 + i, 1,
			 i + 1 < VIRTQ_MAX_SIZE ? VIRTQ_DESC_F_NEXT : 0,
			 (uint16_t)(i + 1));
	avail_push(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 1);
	assert_int_equal(c.n, VIRTQ_MAX_SIZE);
	assert_int_equal(c.readable_len, VIRTQ_MAX_SIZE);
	assert_int_equal(c.bufs[VIRTQ_MAX_SIZE - 1].gpa,
			 0x40000 + VIRTQ_MAX_SIZE - 1);
}

static void test_pop_multiple_in_order(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;
	struct kg_err e = { 0 };
	/* five single-descriptor chains made available out of index order */
	const uint16_t heads[5] = { 4, 0, 6, 1, 3 };
	for (unsigned i = 0; i < 5; i++) {
		set_desc(f, heads[i], 0x10000 + 0x1000ull * i, 10 + i,
			 VIRTQ_DESC_F_WRITE, 0);
		avail_push(f, heads[i]);
	}
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 1);
		assert_int_equal(c.head, heads[i]);
		assert_int_equal(c.n, 1);
		assert_int_equal(c.bufs[0].gpa, 0x10000 + 0x1000ull * i);
		assert_int_equal(c.writable_len, 10 + i);
		assert_int_equal(f->q.last_avail, i + 1);
	}
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 0);
}

static void test_pop_full_ring(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;
	struct kg_err e = { 0 };
	/* exactly `size` pending entries is allowed (a full ring) */
	for (uint16_t i = 0; i < 8; i++) {
		set_desc(f, i, 0x10000 + 0x1000ull * i, 4, 0, 0);
		avail_push(f, i);
	}
	assert_int_equal(avail_idx(f), 8);
	for (uint16_t i = 0; i < 8; i++) {
		assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 1);
		assert_int_equal(c.head, i);
	}
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 0);
}

static void test_last_avail_wraps(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;
	struct kg_err e = { 0 };
	/* the device has consumed 65534 entries, the guest offers two more:
	 * ring slots 65534 % 8 = 6 and 65535 % 8 = 7, then idx wraps to 0 */
	f->q.last_avail = 65534;
	f->q.used_idx = 65534;
	set_avail_idx(f, 65534);
	set_desc(f, 1, 0x10000, 8, 0, 0);
	set_desc(f, 2, 0x11000, 8, VIRTQ_DESC_F_WRITE, 0);
	set_desc(f, 3, 0x12000, 8, 0, 0);
	avail_push(f, 1);
	avail_push(f, 2);
	assert_int_equal(avail_idx(f), 0);
	assert_int_equal(get16(f, AVAIL_GPA + 4 + 2 * 6), 1);
	assert_int_equal(get16(f, AVAIL_GPA + 4 + 2 * 7), 2);
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 1);
	assert_int_equal(c.head, 1);
	assert_int_equal(f->q.last_avail, 65535);
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 1);
	assert_int_equal(c.head, 2);
	assert_int_equal(f->q.last_avail, 0);
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 0);
	/* and on past the wrap: slot 0 */
	avail_push(f, 3);
	assert_int_equal(get16(f, AVAIL_GPA + 4), 3);
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 1);
	assert_int_equal(c.head, 3);
	assert_int_equal(f->q.last_avail, 1);
	/* a ring full across the wrap: last_avail 65532, idx 4 = 8 ahead */
	f->q.last_avail = 65532;
	set_avail_idx(f, 4);
	for (unsigned i = 0; i < 8; i++)
		put16(f, AVAIL_GPA + 4 + 2 * i, 3);
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 1);
	assert_int_equal(f->q.last_avail, 4);
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 0);
}

/* --- gather and scatter --- */

static void test_chain_read(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;
	struct kg_err e = { 0 };
	/* readable: 5 bytes "ABCDE", 3 bytes "fgh", 4 bytes "IJKL"; then a
	 * writable buffer whose bytes must never be gathered */
	memcpy(f->ram + 0x10000, "ABCDE", 5);
	memcpy(f->ram + 0x20ffe, "fgh", 3); /* crosses a page */
	memcpy(f->ram + 0x30000, "IJKL", 4);
	memcpy(f->ram + 0x40000, "zzzz", 4);
	set_desc(f, 0, 0x10000, 5, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, 1, 0x20ffe, 3, VIRTQ_DESC_F_NEXT, 2);
	set_desc(f, 2, 0x30000, 4, VIRTQ_DESC_F_NEXT, 3);
	set_desc(f, 3, 0x40000, 4, VIRTQ_DESC_F_WRITE, 0);
	avail_push(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 1);
	assert_int_equal(c.readable_len, 12);

	char buf[32];
	memset(buf, '.', sizeof(buf));
	assert_int_equal(virtq_chain_read(&c, &f->m, 0, buf, 12), 12);
	assert_memory_equal(buf, "ABCDEfghIJKL", 12);
	/* from an offset, across all three descriptors */
	memset(buf, '.', sizeof(buf));
	assert_int_equal(virtq_chain_read(&c, &f->m, 3, buf, 7), 7);
	assert_memory_equal(buf, "DEfghIJ.", 8);
	/* an offset landing exactly on a descriptor boundary */
	memset(buf, '.', sizeof(buf));
	assert_int_equal(virtq_chain_read(&c, &f->m, 8, buf, 2), 2);
	assert_memory_equal(buf, "IJ.", 3);
	/* short at the end of the readable part (not into the writable) */
	memset(buf, '.', sizeof(buf));
	assert_int_equal(virtq_chain_read(&c, &f->m, 6, buf, sizeof(buf)), 6);
	assert_memory_equal(buf, "ghIJKL..", 8);
	assert_int_equal(virtq_chain_read(&c, &f->m, 11, buf, 100), 1);
	assert_int_equal(buf[0], 'L');
	/* at or past the end: nothing */
	assert_int_equal(virtq_chain_read(&c, &f->m, 12, buf, 1), 0);
	assert_int_equal(virtq_chain_read(&c, &f->m, 1000, buf, 1), 0);
	assert_int_equal(virtq_chain_read(&c, &f->m, UINT64_MAX, buf, 1), 0);
	/* a zero-length read */
	assert_int_equal(virtq_chain_read(&c, &f->m, 0, buf, 0), 0);
}

static void test_chain_read_no_readable(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;
	struct kg_err e = { 0 };
	memcpy(f->ram + 0x10000, "secret", 6);
	set_desc(f, 0, 0x10000, 6, VIRTQ_DESC_F_WRITE, 0);
	avail_push(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 1);
	char buf[8] = { 0 };
	assert_int_equal(virtq_chain_read(&c, &f->m, 0, buf, sizeof(buf)), 0);
	assert_int_equal(buf[0], 0);
}

static void test_chain_write(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;
	struct kg_err e = { 0 };
	memset(f->ram + HDR_GPA, 'h', 16);
	memset(f->ram + DATA_GPA - 16, '<', 16);
	memset(f->ram + DATA_GPA, '-', 512);
	memset(f->ram + DATA_GPA + 512, '>', 16);
	f->ram[STATUS_GPA] = '-';
	f->ram[STATUS_GPA + 1] = '>';
	make_blk_chain(f);
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 1);
	clear_dirty(f);

	/* 513 bytes fill the data buffer, then the status byte */
	uint8_t src[600];
	for (unsigned i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(virtq_chain_write(&c, &f->g, 0, src, 513, &e), 513);
	assert_memory_equal(f->ram + DATA_GPA, src, 512);
	assert_int_equal(f->ram[STATUS_GPA], src[512]);
	/* the readable header and the bytes around the buffers are intact */
	for (unsigned i = 0; i < 16; i++) {
		assert_int_equal(f->ram[HDR_GPA + i], 'h');
		assert_int_equal(f->ram[DATA_GPA - 16 + i], '<');
		assert_int_equal(f->ram[DATA_GPA + 512 + i], '>');
	}
	assert_int_equal(f->ram[STATUS_GPA + 1], '>');
	/* the VMM dirty bitmap names exactly the pages written: the data
	 * buffer crosses from page 0x10 into 0x11, the status is in 0x20 */
	assert_true(dirty(f, DATA_GPA));
	assert_true(dirty(f, DATA_GPA + 511));
	assert_int_equal(DATA_GPA / PAGE, 0x10);
	assert_int_equal((DATA_GPA + 511) / PAGE, 0x11);
	assert_true(dirty(f, STATUS_GPA));
	assert_false(dirty(f, HDR_GPA));
	assert_int_equal(dirty_count(f), 3);
	assert_int_equal(f->g.count[GATE_GUEST_WRITE], 2);

	/* writing more than fits: short, the extra bytes go nowhere */
	clear_dirty(f);
	memset(f->ram + DATA_GPA, '-', 512);
	assert_int_equal(virtq_chain_write(&c, &f->g, 0, src, sizeof(src), &e),
			 513);
	assert_int_equal(f->ram[STATUS_GPA + 1], '>');
	assert_int_equal(f->ram[DATA_GPA + 512], '>');

	/* from an offset: only the status page is touched */
	clear_dirty(f);
	assert_int_equal(virtq_chain_write(&c, &f->g, 512, "S", 1, &e), 1);
	assert_int_equal(f->ram[STATUS_GPA], 'S');
	assert_true(dirty(f, STATUS_GPA));
	assert_int_equal(dirty_count(f), 1);

	/* from an offset inside the data buffer, across into the status */
	clear_dirty(f);
	memset(f->ram + DATA_GPA, '-', 512);
	assert_int_equal(virtq_chain_write(&c, &f->g, 510, "xyz", 3, &e), 3);
	assert_int_equal(f->ram[DATA_GPA + 509], '-');
	assert_int_equal(f->ram[DATA_GPA + 510], 'x');
	assert_int_equal(f->ram[DATA_GPA + 511], 'y');
	assert_int_equal(f->ram[STATUS_GPA], 'z');
	assert_false(dirty(f, DATA_GPA)); /* page 0x10 untouched this time */
	assert_true(dirty(f, DATA_GPA + 510));
	assert_true(dirty(f, STATUS_GPA));
	assert_int_equal(dirty_count(f), 2);

	/* past the end of the writable part: nothing, nothing marked */
	clear_dirty(f);
	assert_int_equal(virtq_chain_write(&c, &f->g, 513, "q", 1, &e), 0);
	assert_int_equal(virtq_chain_write(&c, &f->g, UINT64_MAX, "q", 1, &e),
			 0);
	assert_int_equal(dirty_count(f), 0);
	for (unsigned i = 0; i < 16; i++)
		assert_int_equal(f->ram[HDR_GPA + i], 'h');
}

static void test_chain_write_no_writable(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;
	struct kg_err e = { 0 };
	memset(f->ram + 0x10000, 'r', 64);
	set_desc(f, 0, 0x10000, 64, 0, 0);
	avail_push(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 1);
	clear_dirty(f);
	assert_int_equal(virtq_chain_write(&c, &f->g, 0, "evil", 4, &e), 0);
	assert_memory_equal(f->ram + 0x10000, "rrrr", 4);
	assert_int_equal(dirty_count(f), 0);
}

/* --- the used ring --- */

static void test_push(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;
	struct kg_err e = { 0 };
	make_blk_chain(f);
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 1);
	clear_dirty(f);
	memset(f->ram + USED_GPA, 0xee, 6 + 8 * 8);
	put16(f, USED_GPA, 0); /* used flags belong to the device */
	put16(f, USED_GPA + 2, 0);
	assert_int_equal(virtq_push(&f->q, &f->g, c.head, 513, &e), 0);
	assert_int_equal(f->q.used_idx, 1);
	assert_int_equal(get16(f, USED_GPA + 2), 1);
	assert_int_equal(get32(f, USED_GPA + 4), 2);   /* id */
	assert_int_equal(get32(f, USED_GPA + 8), 513); /* len */
	/* the next slot is untouched */
	assert_int_equal(get32(f, USED_GPA + 12), 0xeeeeeeee);
	assert_true(dirty(f, USED_GPA));
	assert_int_equal(dirty_count(f), 1);

	/* a second element goes into slot 1 */
	assert_int_equal(virtq_push(&f->q, &f->g, 7, 0, &e), 0);
	assert_int_equal(get16(f, USED_GPA + 2), 2);
	assert_int_equal(get32(f, USED_GPA + 12), 7);
	assert_int_equal(get32(f, USED_GPA + 16), 0);
	/* the first is unchanged */
	assert_int_equal(get32(f, USED_GPA + 4), 2);
	assert_int_equal(get32(f, USED_GPA + 8), 513);
}

static void test_push_used_idx_wraps(void **state)
{
	struct fixture *f = *state;
	struct kg_err e = { 0 };
	f->q.used_idx = 65534;
	put16(f, USED_GPA + 2, 65534);
	/* 65534 % 8 = 6 */
	assert_int_equal(virtq_push(&f->q, &f->g, 5, 100, &e), 0);
	assert_int_equal(f->q.used_idx, 65535);
	assert_int_equal(get16(f, USED_GPA + 2), 65535);
	assert_int_equal(get32(f, USED_GPA + 4 + 8 * 6), 5);
	assert_int_equal(get32(f, USED_GPA + 4 + 8 * 6 + 4), 100);
	/* 65535 % 8 = 7, and the index wraps to 0 */
	assert_int_equal(virtq_push(&f->q, &f->g, 6, 200, &e), 0);
	assert_int_equal(f->q.used_idx, 0);
	assert_int_equal(get16(f, USED_GPA + 2), 0);
	assert_int_equal(get32(f, USED_GPA + 4 + 8 * 7), 6);
	assert_int_equal(get32(f, USED_GPA + 4 + 8 * 7 + 4), 200);
	/* then slot 0 */
	assert_int_equal(virtq_push(&f->q, &f->g, 1, 300, &e), 0);
	assert_int_equal(f->q.used_idx, 1);
	assert_int_equal(get16(f, USED_GPA + 2), 1);
	assert_int_equal(get32(f, USED_GPA + 4), 1);
	assert_int_equal(get32(f, USED_GPA + 8), 300);
}

static void test_push_outside_ram(void **state)
{
	struct fixture *f = *state;
	struct kg_err e = { 0 };
	/* the device never pushes to a queue that failed its checks, but the
	 * gate still refuses a write past RAM and nothing advances */
	f->q.used_gpa = 2 * RAM_SIZE;
	assert_int_equal(virtq_push(&f->q, &f->g, 0, 1, &e), -1);
	assert_non_null(strstr(e.msg, "outside guest RAM"));
	assert_int_equal(f->q.used_idx, 0);
	assert_int_equal(dirty_count(f), 0);
}

static void test_pop_push_round_trip(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;
	struct kg_err e = { 0 };
	/* 20 requests through an 8-entry queue, recycling one descriptor:
	 * the indexes run past the ring size and stay in step */
	set_desc(f, 4, 0x10000, 4, VIRTQ_DESC_F_WRITE, 0);
	for (uint32_t i = 0; i < 20; i++) {
		avail_push(f, 4);
		assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 1);
		assert_int_equal(virtq_chain_write(&c, &f->g, 0, &i, 4, &e), 4);
		assert_int_equal(virtq_push(&f->q, &f->g, c.head, 4, &e), 0);
		assert_int_equal(get32(f, 0x10000), i);
		assert_int_equal(get16(f, USED_GPA + 2), i + 1);
		assert_int_equal(get32(f, USED_GPA + 4 + 8 * (i % 8)), 4);
	}
	assert_int_equal(f->q.last_avail, 20);
	assert_int_equal(f->q.used_idx, 20);
}

static void test_wants_interrupt(void **state)
{
	struct fixture *f = *state;
	assert_true(virtq_wants_interrupt(&f->q, &f->m));
	put16(f, AVAIL_GPA, VIRTQ_AVAIL_F_NO_INTERRUPT);
	assert_false(virtq_wants_interrupt(&f->q, &f->m));
	/* other flag bits do not matter */
	put16(f, AVAIL_GPA, 0xfffe);
	assert_true(virtq_wants_interrupt(&f->q, &f->m));
	put16(f, AVAIL_GPA, 0xffff);
	assert_false(virtq_wants_interrupt(&f->q, &f->m));
	put16(f, AVAIL_GPA, 0);
	assert_true(virtq_wants_interrupt(&f->q, &f->m));
}

/* --- malformed queues --- */

static void test_avail_idx_jump(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;
	struct kg_err e = { 0 };
	for (uint16_t i = 0; i < 8; i++)
		set_desc(f, i, 0x10000, 4, 0, 0);
	/* size + 1 ahead */
	set_avail_idx(f, 9);
	pop_fails(f, "jumped");
	/* far ahead */
	set_avail_idx(f, 0x8000);
	pop_fails(f, "jumped");
	/* backwards */
	set_avail_idx(f, 0xffff);
	pop_fails(f, "jumped");
	/* backwards from a nonzero last_avail */
	f->q.last_avail = 100;
	set_avail_idx(f, 99);
	pop_fails(f, "jumped");
	assert_int_equal(f->q.last_avail, 100);
	/* exactly size ahead is fine */
	set_avail_idx(f, 108);
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 1);
	assert_int_equal(f->q.last_avail, 101);
}

static void test_head_out_of_range(void **state)
{
	struct fixture *f = *state;
	avail_push(f, 8);
	pop_fails(f, "names descriptor");
	put16(f, AVAIL_GPA + 4, 0xffff);
	pop_fails(f, "names descriptor");
	assert_int_equal(f->q.last_avail, 0);
}

static void test_next_out_of_range(void **state)
{
	struct fixture *f = *state;
	set_desc(f, 0, 0x10000, 4, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, 1, 0x11000, 4, VIRTQ_DESC_F_NEXT, 8);
	avail_push(f, 0);
	pop_fails(f, "out of range");
	set_desc(f, 1, 0x11000, 4, VIRTQ_DESC_F_NEXT, 0xffff);
	pop_fails(f, "out of range");
	/* without F_NEXT, a garbage next is ignored */
	struct virtq_chain c;
	struct kg_err e = { 0 };
	set_desc(f, 1, 0x11000, 4, 0, 0xffff);
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 1);
	assert_int_equal(c.n, 2);
}

static void test_descriptor_loop(void **state)
{
	struct fixture *f = *state;
	/* a self loop */
	set_desc(f, 0, 0x10000, 4, VIRTQ_DESC_F_NEXT, 0);
	avail_push(f, 0);
	pop_fails(f, "longer than the queue");
	/* a two-descriptor loop, entered from a tail */
	set_desc(f, 0, 0x10000, 4, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, 1, 0x11000, 4, VIRTQ_DESC_F_NEXT, 2);
	set_desc(f, 2, 0x12000, 4, VIRTQ_DESC_F_NEXT, 1);
	pop_fails(f, "longer than the queue");
	/* writable loop (the order check cannot catch it first) */
	for (uint16_t i = 0; i < 8; i++)
		set_desc(f, i, 0x10000, 4,
			 VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE,
			 (uint16_t)((i + 3) % 8));
	pop_fails(f, "longer than the queue");
}

static void test_chain_longer_than_queue(void **state)
{
	struct fixture *f = *state;
	/* all eight descriptors in a chain whose last one points back to the
	 * middle: nine (and more) buffers from an eight-entry table */
	for (uint16_t i = 0; i < 8; i++)
		set_desc(f, i, 0x10000 + 0x100ull * i, 4, VIRTQ_DESC_F_NEXT,
			 (uint16_t)(i + 1));
	set_desc(f, 7, 0x10700, 4, VIRTQ_DESC_F_NEXT, 4);
	avail_push(f, 0);
	pop_fails(f, "longer than the queue");
	/* in a size-1 queue, any F_NEXT is a loop */
	f->q.size = 1;
	f->q.last_avail = 0;
	set_avail_idx(f, 1);
	put16(f, AVAIL_GPA + 4, 0);
	set_desc(f, 0, 0x10000, 4, VIRTQ_DESC_F_NEXT, 0);
	pop_fails(f, "longer than the queue");
}

static void test_buffer_outside_ram(void **state)
{
	struct fixture *f = *state;
	avail_push(f, 0);
	/* wholly outside */
	set_desc(f, 0, RAM_SIZE, 1, 0, 0);
	pop_fails(f, "outside guest RAM");
	set_desc(f, 0, 4ull << 30, 512, VIRTQ_DESC_F_WRITE, 0);
	pop_fails(f, "outside guest RAM");
	/* straddling the end of RAM */
	set_desc(f, 0, RAM_SIZE - 512, 513, VIRTQ_DESC_F_WRITE, 0);
	pop_fails(f, "outside guest RAM");
	/* a huge length */
	set_desc(f, 0, 0x10000, 0xffffffff, 0, 0);
	pop_fails(f, "outside guest RAM");
	set_desc(f, 0, 0, 0xffffffff, VIRTQ_DESC_F_WRITE, 0);
	pop_fails(f, "outside guest RAM");
	/* an address that wraps the 64-bit space */
	set_desc(f, 0, UINT64_MAX - 15, 32, 0, 0);
	pop_fails(f, "outside guest RAM");
	/* the bad buffer deep in a chain */
	set_desc(f, 0, 0x10000, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, 1, 0x11000, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	set_desc(f, 2, RAM_SIZE - 1, 2, VIRTQ_DESC_F_WRITE, 0);
	pop_fails(f, "outside guest RAM");
	/* ending exactly at the end of RAM is fine */
	struct virtq_chain c;
	struct kg_err e = { 0 };
	set_desc(f, 2, RAM_SIZE - 2, 2, VIRTQ_DESC_F_WRITE, 0);
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 1);
	assert_int_equal(c.writable_len, 18);
}

static void test_indirect_refused(void **state)
{
	struct fixture *f = *state;
	/* an indirect table that would itself be valid */
	set_desc(f, 0, 0x10000, 32, VIRTQ_DESC_F_INDIRECT, 0);
	avail_push(f, 0);
	pop_fails(f, "indirect");
	/* also inside a chain */
	set_desc(f, 0, 0x11000, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, 1, 0x10000, 32,
		 VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
	pop_fails(f, "indirect");
}

static void test_readable_after_writable(void **state)
{
	struct fixture *f = *state;
	set_desc(f, 0, 0x10000, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, 1, 0x11000, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	set_desc(f, 2, 0x12000, 16, 0, 0);
	avail_push(f, 0);
	pop_fails(f, "readable buffer after a writable");
	/* writable first, then readable */
	set_desc(f, 0, 0x10000, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	set_desc(f, 1, 0x11000, 16, 0, 0);
	pop_fails(f, "readable buffer after a writable");
}

static void test_failed_pop_then_good(void **state)
{
	struct fixture *f = *state;
	struct virtq_chain c;
	struct kg_err e = { 0 };
	/* a failed pop leaves the entry where it was: once the descriptor
	 * is fixed the same entry pops (the device would normally have
	 * marked itself broken instead) */
	set_desc(f, 3, 0x10000, 16, VIRTQ_DESC_F_INDIRECT, 0);
	avail_push(f, 3);
	pop_fails(f, "indirect");
	pop_fails(f, "indirect");
	set_desc(f, 3, 0x10000, 16, 0, 0);
	assert_int_equal(virtq_pop(&f->q, &f->m, &c, &e), 1);
	assert_int_equal(c.head, 3);
	assert_int_equal(f->q.last_avail, 1);
}

/* The VMM must never touch the MMIO hole: with RAM split into two regions
 * a buffer may not run from the end of one into the next even if both
 * sides are RAM-backed here. (Two small regions, gpa 0 and 4 GiB, stand in
 * for the real 3 GiB + high split, which is too big to allocate.) */
static void test_buffer_across_regions(void **state)
{
	struct fixture *f = *state;
	struct guest_mem m2 = f->m;
	m2.nregions = 2;
	m2.regions[0] = (struct guest_mem_region){ 0, RAM_SIZE / 2, 0, f->ram };
	m2.regions[1] = (struct guest_mem_region){
		4ull << 30, RAM_SIZE / 2, RAM_SIZE / 2, f->ram + RAM_SIZE / 2
	};
	struct virtq_chain c;
	struct kg_err e = { 0 };
	set_desc(f, 0, RAM_SIZE / 2 - 8, 16, 0, 0);
	avail_push(f, 0);
	assert_int_equal(virtq_pop(&f->q, &m2, &c, &e), -1);
	assert_non_null(strstr(e.msg, "outside guest RAM"));
	assert_int_equal(f->q.last_avail, 0);
	/* a buffer inside the high region is fine */
	set_desc(f, 0, (4ull << 30) + 0x100, 16, 0, 0);
	assert_int_equal(virtq_pop(&f->q, &m2, &c, &e), 1);
	assert_int_equal(c.bufs[0].gpa, (4ull << 30) + 0x100);
	memcpy(f->ram + RAM_SIZE / 2 + 0x100, "high", 4);
	char buf[4];
	assert_int_equal(virtq_chain_read(&c, &m2, 0, buf, 4), 4);
	assert_memory_equal(buf, "high", 4);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_check_rings_valid),
		T(test_bad_size),
		T(test_misaligned_rings),
		T(test_rings_outside_ram),
		T(test_pop_empty),
		T(test_pop_three_descriptor_chain),
		T(test_pop_all_readable_and_all_writable),
		T(test_pop_chain_as_long_as_queue),
		T(test_pop_max_size_queue),
		T(test_pop_multiple_in_order),
		T(test_pop_full_ring),
		T(test_last_avail_wraps),
		T(test_chain_read),
		T(test_chain_read_no_readable),
		T(test_chain_write),
		T(test_chain_write_no_writable),
		T(test_push),
		T(test_push_used_idx_wraps),
		T(test_push_outside_ram),
		T(test_pop_push_round_trip),
		T(test_wants_interrupt),
		T(test_avail_idx_jump),
		T(test_head_out_of_range),
		T(test_next_out_of_range),
		T(test_descriptor_loop),
		T(test_chain_longer_than_queue),
		T(test_buffer_outside_ram),
		T(test_indirect_refused),
		T(test_readable_after_writable),
		T(test_failed_pop_then_good),
		T(test_buffer_across_regions),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
