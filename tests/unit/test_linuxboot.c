/* The Linux boot protocol (vmm/linuxboot.c) on synthetic bzImages, byte by
 * byte, and on the Debian kernel when one is installed. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/le.h"
#include "vmm/linuxboot.h"
#include "vmm/pvh.h"

#define SETUP_SECTS 1
#define PAYLOAD 4096
#define IMG_LEN ((SETUP_SECTS + 1) * 512 + PAYLOAD)

static uint8_t img[IMG_LEN];

/* A bzImage of protocol 2.15 with a 64-bit entry, a 4 KiB payload that
 * decompresses into 32 MiB at 16 MiB. */
static void make_image(void)
{
	memset(img, 0, sizeof(img));
	img[0x1f1] = SETUP_SECTS;
	le32_put(img + 0x1f4, PAYLOAD / 16);
	le16_put(img + 0x1fe, 0xaa55);
	img[0x200] = 0xeb;
	img[0x201] = 0x6a; /* header up to 0x26c */
	memcpy(img + 0x202, "HdrS", 4);
	le16_put(img + 0x206, 0x020f);
	img[0x211] = 0x01; /* LOADED_HIGH */
	le32_put(img + 0x22c, 0x7fffffff);
	le32_put(img + 0x230, 0x200000);
	img[0x234] = 1;
	le16_put(img + 0x236, 0x3);
	le32_put(img + 0x238, 2047);
	le64_put(img + 0x258, 0x1000000);
	le32_put(img + 0x260, 32 << 20);
	for (size_t i = 0; i < PAYLOAD; i++)
		img[1024 + i] = (uint8_t)(i * 7);
}

static void mem_alloc(struct guest_mem *m, uint64_t size)
{
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	guest_mem_layout(size, m);
	for (unsigned i = 0; i < m->nregions; i++) {
		m->regions[i].hva = calloc(1, m->regions[i].size);
		assert_non_null(m->regions[i].hva);
	}
}

static void mem_free(struct guest_mem *m)
{
	for (unsigned i = 0; i < m->nregions; i++)
		free(m->regions[i].hva);
}

static void test_parse_ok(void **state)
{
	(void)state;
	make_image();
	struct lb_image l;
	struct kg_err e = { 0 };
	assert_true(lb_is_bzimage(img, sizeof(img)));
	assert_int_equal(lb_parse(img, sizeof(img), &l, &e), 0);
	assert_int_equal(l.version, 0x020f);
	assert_int_equal(l.kernel_offset, 1024);
	assert_int_equal(l.kernel_size, PAYLOAD);
	assert_int_equal(l.header_len, 0x26c - 0x1f1);
	assert_int_equal(l.init_size, 32 << 20);
	assert_true(l.relocatable);
	/* setup_sects 0 means 4 */
	img[0x1f1] = 0;
	assert_int_equal(lb_parse(img, sizeof(img), &l, &e), -1);
	assert_non_null(strstr(e.msg, "truncated bzImage"));
}

static void expect_parse(const char *want)
{
	struct lb_image l;
	struct kg_err e = { 0 };
	assert_int_equal(lb_parse(img, sizeof(img), &l, &e), -1);
	if (!strstr(e.msg, want))
		fail_msg("'%s' lacks '%s'", e.msg, want);
}

static void test_parse_refusals(void **state)
{
	(void)state;
	make_image();
	img[0x1fe] = 0;
	assert_false(lb_is_bzimage(img, sizeof(img)));
	expect_parse("not a bzImage");
	make_image();
	le16_put(img + 0x206, 0x020b);
	expect_parse("boot protocol version 2.11 is too old");
	make_image();
	le16_put(img + 0x236, 0x2);
	expect_parse("no 64-bit entry point");
	make_image();
	img[0x211] = 0;
	expect_parse("zImage");
	make_image();
	le32_put(img + 0x1f4, PAYLOAD / 16 + 1);
	expect_parse("truncated bzImage: 5120 bytes, the header says 5136");
	make_image();
	img[0x201] = 0x20;
	expect_parse("too short");
	make_image();
	le32_put(img + 0x230, 0x300000);
	expect_parse("not a power of two");
	make_image();
	le32_put(img + 0x260, 100);
	expect_parse("init_size 100 is smaller");
	/* Every shorter file fails cleanly (ASan checks the reads). */
	make_image();
	for (size_t len = 0; len < sizeof(img); len += 37) {
		uint8_t *copy = malloc(len ? len : 1);
		memcpy(copy, img, len);
		struct lb_image l;
		struct kg_err e = { 0 };
		assert_int_equal(lb_parse(copy, len, &l, &e), -1);
		free(copy);
	}
}

static void test_load(void **state)
{
	(void)state;
	make_image();
	struct lb_image l;
	struct kg_err e = { 0 };
	assert_int_equal(lb_parse(img, sizeof(img), &l, &e), 0);
	struct guest_mem m;
	mem_alloc(&m, 256 << 20);
	uint8_t initrd[10000];
	memset(initrd, 0x5a, sizeof(initrd));
	struct lb_params p = { "console=ttyS0 quiet", initrd, sizeof(initrd),
			       0xe0000 };
	struct lb_boot b;
	assert_int_equal(lb_load(&m, &l, img, &p, &b, &e), 0);
	assert_int_equal(b.entry, 0x100200);
	assert_int_equal(b.zero_page, LB_ZERO_PAGE_GPA);
	assert_memory_equal(guest_mem_ptr(&m, 0x100000, PAYLOAD), img + 1024,
			    PAYLOAD);
	const uint8_t *zp = guest_mem_ptr(&m, b.zero_page, 4096);
	assert_memory_equal(zp + 0x202, "HdrS", 4);
	assert_int_equal(zp[0x210], 0xff);
	assert_int_equal(zp[0x211], 0x81);
	assert_int_equal(le32_get(zp + 0x228), LB_CMDLINE_GPA);
	assert_string_equal(guest_mem_ptr(&m, LB_CMDLINE_GPA, 20),
			    "console=ttyS0 quiet");
	assert_int_equal(le64_get(zp + 0x070), 0xe0000);
	/* The initrd: page aligned, whole, above what the kernel uses. */
	uint64_t rd = le32_get(zp + 0x218);
	assert_int_equal(rd, b.initrd_gpa);
	assert_int_equal(rd % 4096, 0);
	assert_int_equal(le32_get(zp + 0x21c), sizeof(initrd));
	assert_true(rd >= 0x1000000 + (32 << 20));
	assert_true(rd + sizeof(initrd) <= 256 << 20);
	assert_memory_equal(guest_mem_ptr(&m, rd, sizeof(initrd)), initrd,
			    sizeof(initrd));
	/* e820: what PVH guests get, as 20-byte entries. */
	struct hvm_memmap_entry map[PVH_MAX_MEMMAP];
	unsigned n = pvh_memmap(&m, map);
	assert_int_equal(zp[0x1e8], n);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(le64_get(zp + 0x2d0 + 20 * i), map[i].addr);
		assert_int_equal(le64_get(zp + 0x2d0 + 20 * i + 8), map[i].size);
		assert_int_equal(le32_get(zp + 0x2d0 + 20 * i + 16), map[i].type);
	}
	/* GDT: 64-bit code at 0x10, data at 0x18. */
	const uint8_t *g = guest_mem_ptr(&m, LB_GDT_GPA, 32);
	assert_int_equal(le64_get(g + 16), 0x00af9b000000ffffull);
	assert_int_equal(le64_get(g + 24), 0x00cf93000000ffffull);
	/* Page tables map 3 GiB + 6 MiB to itself with a 2 MiB page. */
	const uint8_t *pml4 = guest_mem_ptr(&m, b.cr3, 4096);
	uint64_t pdpt = le64_get(pml4) & ~0xfffull;
	uint64_t pd = le64_get(guest_mem_ptr(&m, pdpt + 3 * 8, 8)) & ~0xfffull;
	uint64_t pde = le64_get(guest_mem_ptr(&m, pd + 3 * 8, 8));
	assert_int_equal(pde, (3ull << 30) + (6 << 20) + 0x83);
	mem_free(&m);
}

static void test_load_refusals(void **state)
{
	(void)state;
	make_image();
	struct lb_image l;
	struct kg_err e = { 0 };
	assert_int_equal(lb_parse(img, sizeof(img), &l, &e), 0);
	struct guest_mem m;
	struct lb_boot b;
	struct lb_params p = { 0 };
	/* 16 MiB + 32 MiB of decompression do not fit in 40 MiB. */
	mem_alloc(&m, 40 << 20);
	assert_int_equal(lb_load(&m, &l, img, &p, &b, &e), -1);
	assert_non_null(strstr(e.msg, "it needs 48 MiB to decompress"));
	mem_free(&m);
	mem_alloc(&m, 64 << 20);
	char cl[2100];
	memset(cl, 'x', sizeof(cl) - 1);
	cl[sizeof(cl) - 1] = 0;
	p.cmdline = cl;
	assert_int_equal(lb_load(&m, &l, img, &p, &b, &e), -1);
	assert_non_null(strstr(e.msg, "this kernel takes 2047"));
	p.cmdline = NULL;
	static uint8_t big[20 << 20];
	p.initrd = big;
	p.initrd_size = sizeof(big);
	assert_int_equal(lb_load(&m, &l, img, &p, &b, &e), -1);
	assert_non_null(strstr(e.msg, "initrd (20971520 bytes) does not fit"));
	mem_free(&m);
	/* The kernel says where initrds may go: 40 MiB is below its own
	 * working area. */
	mem_alloc(&m, 256 << 20);
	l.initrd_addr_max = (40 << 20) - 1;
	p.initrd_size = 4096;
	assert_int_equal(lb_load(&m, &l, img, &p, &b, &e), -1);
	assert_non_null(strstr(e.msg, "and 40 MiB"));
	mem_free(&m);
}

/* The distribution's kernel, when installed (install-deps installs it). */
static void test_debian_kernel(void **state)
{
	(void)state;
	DIR *d = opendir("/boot");
	struct dirent *de;
	char path[512] = "";
	while (d && (de = readdir(d)))
		if (!strncmp(de->d_name, "vmlinuz-", 8))
			snprintf(path, sizeof(path), "/boot/%s", de->d_name);
	if (d)
		closedir(d);
	if (!path[0]) {
		const char *ci = getenv("CI");
		if (ci && !strcmp(ci, "true"))
			fail_msg("no /boot/vmlinuz-* (linux-image-amd64 is "
				 "required under CI)");
		skip();
	}
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *buf = malloc((size_t)len);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	struct lb_image l;
	struct kg_err e = { 0 };
	if (lb_parse(buf, (size_t)len, &l, &e) < 0)
		fail_msg("%s: %s", path, e.msg);
	assert_true(l.version >= 0x020f);
	assert_true(l.relocatable);
	assert_true(l.init_size > l.kernel_size);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_refusals),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_load_refusals),
		cmocka_unit_test(test_debian_kernel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
