/*
 * Unit tests for the pure parts of guest memory (guest_mem_layout,
 * guest_mem_contains, guest_mem_ptr: vmm/mem.h) and for the PVH boot
 * information (vmm/pvh.h). Guest RAM is a malloc'd buffer per region, no
 * memfd; the 5 GiB layout is only checked, never allocated.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "abi/kagami_platform.h"
#include "vmm/mem.h"
#include "vmm/pvh.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* The Xen ABI (xen/include/public/arch-x86/hvm/start_info.h). */
_Static_assert(sizeof(struct hvm_start_info) == 56, "start_info size");
_Static_assert(offsetof(struct hvm_start_info, modlist_paddr) == 16, "abi");
_Static_assert(offsetof(struct hvm_start_info, cmdline_paddr) == 24, "abi");
_Static_assert(offsetof(struct hvm_start_info, rsdp_paddr) == 32, "abi");
_Static_assert(offsetof(struct hvm_start_info, memmap_paddr) == 40, "abi");
_Static_assert(offsetof(struct hvm_start_info, memmap_entries) == 48, "abi");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "modlist size");
_Static_assert(sizeof(struct hvm_memmap_entry) == 24, "memmap size");

/* Lays out `size` bytes and backs every region with a heap buffer filled
 * with 0xa5 (so tests see what was written). */
static void mem_alloc(struct guest_mem *m, uint64_t size)
{
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	guest_mem_layout(size, m);
	for (unsigned i = 0; i < m->nregions; i++) {
		m->regions[i].hva = malloc(m->regions[i].size);
		assert_non_null(m->regions[i].hva);
		memset(m->regions[i].hva, 0xa5, m->regions[i].size);
	}
}

static void mem_free(struct guest_mem *m)
{
	for (unsigned i = 0; i < m->nregions; i++) {
		free(m->regions[i].hva);
		m->regions[i].hva = NULL;
	}
}

static void layout_only(struct guest_mem *m, uint64_t size)
{
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	guest_mem_layout(size, m);
}

/* --- layout and bounds --- */

static void test_layout_small(void **state)
{
	(void)state;
	struct guest_mem m;
	layout_only(&m, 64 * MiB);
	assert_int_equal(m.size, 64 * MiB);
	assert_int_equal(m.nregions, 1);
	assert_int_equal(m.regions[0].gpa, 0);
	assert_int_equal(m.regions[0].size, 64 * MiB);
	assert_int_equal(m.regions[0].offset, 0);
	assert_null(m.regions[0].hva);
}

static void test_layout_3g_boundary(void **state)
{
	(void)state;
	struct guest_mem m;
	layout_only(&m, 3 * GiB);
	assert_int_equal(m.nregions, 1);
	assert_int_equal(m.regions[0].size, 3 * GiB);
	layout_only(&m, 3 * GiB + 4 * KiB);
	assert_int_equal(m.nregions, 2);
	assert_int_equal(m.regions[0].size, 3 * GiB);
	assert_int_equal(m.regions[1].gpa, KAGAMI_HIGH_MEM_BASE);
	assert_int_equal(m.regions[1].size, 4 * KiB);
	assert_int_equal(m.regions[1].offset, 3 * GiB);
}

static void test_layout_5g(void **state)
{
	(void)state;
	struct guest_mem m;
	layout_only(&m, 5 * GiB);
	assert_int_equal(m.size, 5 * GiB);
	assert_int_equal(m.nregions, 2);
	assert_int_equal(m.regions[0].gpa, 0);
	assert_int_equal(m.regions[0].size, KAGAMI_MMIO_BASE);
	assert_int_equal(m.regions[0].offset, 0);
	assert_int_equal(m.regions[1].gpa, 4 * GiB);
	assert_int_equal(m.regions[1].size, 2 * GiB);
	assert_int_equal(m.regions[1].offset, 3 * GiB);
	/* the regions cover exactly the RAM */
	assert_int_equal(m.regions[0].size + m.regions[1].size, 5 * GiB);
}

static void test_contains_5g(void **state)
{
	(void)state;
	struct guest_mem m;
	layout_only(&m, 5 * GiB);
	assert_true(guest_mem_contains(&m, 0, 1));
	assert_true(guest_mem_contains(&m, 0, 3 * GiB));
	assert_true(guest_mem_contains(&m, 3 * GiB - 1, 1));
	assert_false(guest_mem_contains(&m, 3 * GiB - 1, 2));
	assert_false(guest_mem_contains(&m, 3 * GiB, 1));        /* MMIO hole */
	assert_false(guest_mem_contains(&m, 3 * GiB + 512 * MiB, 1));
	assert_false(guest_mem_contains(&m, 4 * GiB - 1, 1));
	assert_false(guest_mem_contains(&m, 4 * GiB - 1, 2));    /* into high */
	assert_true(guest_mem_contains(&m, 4 * GiB, 1));
	assert_true(guest_mem_contains(&m, 4 * GiB, 2 * GiB));
	assert_false(guest_mem_contains(&m, 4 * GiB, 2 * GiB + 1));
	assert_true(guest_mem_contains(&m, 6 * GiB - 1, 1));
	assert_false(guest_mem_contains(&m, 6 * GiB, 1));
	assert_false(guest_mem_contains(&m, 0, 5 * GiB)); /* spans the hole */
	assert_false(guest_mem_contains(&m, 2 * GiB, 3 * GiB));
	assert_false(guest_mem_contains(&m, UINT64_MAX, 1));
	assert_false(guest_mem_contains(&m, 4 * GiB + 1, UINT64_MAX));
	assert_false(guest_mem_contains(&m, UINT64_MAX - 1, 4));
	/* nothing is allocated: no pointers */
	assert_null(guest_mem_ptr(&m, 0, 1));
	assert_null(guest_mem_ptr(&m, 4 * GiB, 1));
}

static void test_ptr_bounds(void **state)
{
	(void)state;
	struct guest_mem m;
	mem_alloc(&m, 64 * MiB);
	uint8_t *hva = m.regions[0].hva;
	const uint64_t end = 64 * MiB;
	assert_ptr_equal(guest_mem_ptr(&m, 0, 1), hva);
	assert_ptr_equal(guest_mem_ptr(&m, 0, end), hva);
	assert_ptr_equal(guest_mem_ptr(&m, 0x1234, 16), hva + 0x1234);
	assert_ptr_equal(guest_mem_ptr(&m, end - 1, 1), hva + end - 1);
	assert_ptr_equal(guest_mem_ptr(&m, end - 8, 8), hva + end - 8);
	/* past the end of the region */
	assert_null(guest_mem_ptr(&m, end, 1));
	assert_null(guest_mem_ptr(&m, end - 8, 9));
	assert_null(guest_mem_ptr(&m, 0, end + 1));
	assert_null(guest_mem_ptr(&m, end + 4096, 1));
	/* zero length: inside, and the empty range right at the end (a
	 * one-past-the-end pointer, as in C); beyond that, nothing */
	assert_ptr_equal(guest_mem_ptr(&m, 0x1000, 0), hva + 0x1000);
	assert_ptr_equal(guest_mem_ptr(&m, end, 0), hva + end);
	assert_null(guest_mem_ptr(&m, end + 1, 0));
	/* overflow of gpa + len */
	assert_null(guest_mem_ptr(&m, 1, UINT64_MAX));
	assert_null(guest_mem_ptr(&m, end - 1, UINT64_MAX));
	assert_null(guest_mem_ptr(&m, UINT64_MAX, 1));
	assert_null(guest_mem_ptr(&m, UINT64_MAX, 2));
	assert_null(guest_mem_ptr(&m, UINT64_MAX - 4095, 8192));
	assert_false(guest_mem_contains(&m, 1, UINT64_MAX));
	assert_true(guest_mem_contains(&m, 0, end));
	mem_free(&m);
}

/* Two adjacent regions built by hand: an access straddling them is refused
 * even though every byte is RAM ("inside one region"). */
static void test_ptr_straddling_regions(void **state)
{
	(void)state;
	struct guest_mem m;
	memset(&m, 0, sizeof(m));
	uint8_t *a = malloc(MiB), *b = malloc(MiB);
	assert_non_null(a);
	assert_non_null(b);
	m.size = 2 * MiB;
	m.nregions = 2;
	m.regions[0] = (struct guest_mem_region){ 0, MiB, 0, a };
	m.regions[1] = (struct guest_mem_region){ MiB, MiB, MiB, b };
	assert_ptr_equal(guest_mem_ptr(&m, MiB - 4, 4), a + MiB - 4);
	assert_ptr_equal(guest_mem_ptr(&m, MiB, 4), b);
	assert_ptr_equal(guest_mem_ptr(&m, MiB + 10, 4), b + 10);
	assert_null(guest_mem_ptr(&m, MiB - 2, 4));
	assert_false(guest_mem_contains(&m, MiB - 2, 4));
	assert_false(guest_mem_contains(&m, 0, 2 * MiB));
	assert_ptr_equal(guest_mem_ptr(&m, 2 * MiB - 1, 1), b + MiB - 1);
	assert_null(guest_mem_ptr(&m, 2 * MiB - 1, 2));
	free(a);
	free(b);
}

/* --- memory map --- */

static void expect_entry(const struct hvm_memmap_entry *e, uint64_t addr,
			 uint64_t size, uint32_t type)
{
	if (e->addr != addr || e->size != size || e->type != type ||
	    e->reserved != 0)
		fail_msg("memmap entry {0x%llx, 0x%llx, %u}, want "
			 "{0x%llx, 0x%llx, %u}",
			 (unsigned long long)e->addr,
			 (unsigned long long)e->size, e->type,
			 (unsigned long long)addr, (unsigned long long)size,
			 type);
}

static void test_memmap_64m(void **state)
{
	(void)state;
	struct guest_mem m;
	layout_only(&m, 64 * MiB);
	struct hvm_memmap_entry map[PVH_MAX_MEMMAP];
	memset(map, 0xee, sizeof(map));
	unsigned n = pvh_memmap(&m, map);
	assert_int_equal(n, 3);
	expect_entry(&map[0], 0, 0x9fc00, PVH_E820_RAM);
	expect_entry(&map[1], 0x9fc00, 0x100000 - 0x9fc00, PVH_E820_RESERVED);
	expect_entry(&map[2], MiB, 63 * MiB, PVH_E820_RAM);
}

static void test_memmap_5g(void **state)
{
	(void)state;
	struct guest_mem m;
	layout_only(&m, 5 * GiB);
	struct hvm_memmap_entry map[PVH_MAX_MEMMAP];
	unsigned n = pvh_memmap(&m, map);
	assert_int_equal(n, 4);
	expect_entry(&map[0], 0, KAGAMI_LOW_RAM_END, PVH_E820_RAM);
	expect_entry(&map[1], KAGAMI_LOW_RAM_END,
		     KAGAMI_HIGH_RAM_START - KAGAMI_LOW_RAM_END,
		     PVH_E820_RESERVED);
	expect_entry(&map[2], MiB, 3 * GiB - MiB, PVH_E820_RAM);
	expect_entry(&map[3], 4 * GiB, 2 * GiB, PVH_E820_RAM);
	/* sorted, no overlaps, nothing in the MMIO hole */
	for (unsigned i = 1; i < n; i++)
		assert_true(map[i - 1].addr + map[i - 1].size <= map[i].addr);
	for (unsigned i = 0; i < n; i++)
		if (map[i].type == PVH_E820_RAM)
			assert_true(map[i].addr + map[i].size <= 3 * GiB ||
				    map[i].addr >= 4 * GiB);
}

static void test_memmap_3g(void **state)
{
	(void)state;
	struct guest_mem m;
	layout_only(&m, 3 * GiB);
	struct hvm_memmap_entry map[PVH_MAX_MEMMAP];
	assert_int_equal(pvh_memmap(&m, map), 3);
	expect_entry(&map[2], MiB, 3 * GiB - MiB, PVH_E820_RAM);
}

/* RAM totals in the map equal the RAM, less the 0x9fc00-1 MiB hole. */
static void test_memmap_ram_total(void **state)
{
	(void)state;
	static const uint64_t sizes[] = { 2 * MiB, 64 * MiB, GiB, 3 * GiB,
					  3 * GiB + 4 * KiB, 5 * GiB,
					  1ull << 40 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct guest_mem m;
		layout_only(&m, sizes[i]);
		struct hvm_memmap_entry map[PVH_MAX_MEMMAP];
		unsigned n = pvh_memmap(&m, map);
		assert_true(n <= PVH_MAX_MEMMAP);
		uint64_t ram = 0;
		for (unsigned j = 0; j < n; j++) {
			if (map[j].type == PVH_E820_RAM) {
				ram += map[j].size;
				assert_true(guest_mem_contains(&m, map[j].addr,
							       map[j].size));
			}
		}
		assert_int_equal(ram, sizes[i] - (MiB - KAGAMI_LOW_RAM_END));
	}
}

/* --- start_info --- */

static void *at(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	void *p = guest_mem_ptr(m, gpa, len);
	assert_non_null(p);
	return p;
}

static void test_start_info(void **state)
{
	(void)state;
	struct guest_mem m;
	mem_alloc(&m, 64 * MiB);
	const char *cmd = "console=ttyS0 quiet";
	struct pvh_params p = { .cmdline = cmd, .initrd_gpa = 0x3000000,
				.initrd_size = 0x12345 };
	uint64_t si_gpa = 0;
	struct kg_err e = { 0 };
	if (pvh_write_start_info(&m, &p, &si_gpa, &e) != 0)
		fail_msg("%s", e.msg);
	assert_int_equal(si_gpa, KAGAMI_START_INFO_GPA);

	struct hvm_start_info si;
	memcpy(&si, at(&m, si_gpa, sizeof(si)), sizeof(si));
	assert_int_equal(si.magic, HVM_START_MAGIC);
	assert_int_equal(si.magic, 0x336ec578u);
	assert_int_equal(si.version, 1);
	assert_int_equal(si.flags, 0);
	assert_int_equal(si.rsdp_paddr, 0);
	assert_int_equal(si.reserved, 0);

	/* command line */
	assert_int_equal(si.cmdline_paddr, KAGAMI_CMDLINE_GPA);
	assert_string_equal((const char *)at(&m, si.cmdline_paddr,
					     strlen(cmd) + 1), cmd);

	/* memory map */
	assert_int_equal(si.memmap_entries, 3);
	assert_true(si.memmap_paddr != 0);
	struct hvm_memmap_entry want[PVH_MAX_MEMMAP], got[PVH_MAX_MEMMAP];
	unsigned n = pvh_memmap(&m, want);
	assert_int_equal(n, si.memmap_entries);
	memcpy(got, at(&m, si.memmap_paddr, n * sizeof(got[0])),
	       n * sizeof(got[0]));
	for (unsigned i = 0; i < n; i++)
		expect_entry(&got[i], want[i].addr, want[i].size,
			     want[i].type);

	/* module list: the initrd */
	assert_int_equal(si.nr_modules, 1);
	assert_true(si.modlist_paddr != 0);
	struct hvm_modlist_entry mod;
	memcpy(&mod, at(&m, si.modlist_paddr, sizeof(mod)), sizeof(mod));
	assert_int_equal(mod.paddr, 0x3000000);
	assert_int_equal(mod.size, 0x12345);
	assert_int_equal(mod.cmdline_paddr, 0);
	assert_int_equal(mod.reserved, 0);

	/* the pieces do not overlap one another */
	uint64_t lo[4] = { si_gpa, si.modlist_paddr, si.memmap_paddr,
			   si.cmdline_paddr };
	uint64_t len[4] = { sizeof(si), sizeof(mod), n * sizeof(got[0]),
			    strlen(cmd) + 1 };
	for (int i = 0; i < 4; i++)
		for (int j = i + 1; j < 4; j++)
			assert_false(lo[i] < lo[j] + len[j] &&
				     lo[j] < lo[i] + len[i]);
	/* start_info is where the platform header says; all of it is in the
	 * first MiB (below the image) */
	for (int i = 0; i < 4; i++)
		assert_true(lo[i] + len[i] <= KAGAMI_LOW_RAM_END);
	mem_free(&m);
}

static void test_start_info_no_initrd_no_cmdline(void **state)
{
	(void)state;
	struct guest_mem m;
	mem_alloc(&m, 64 * MiB);
	struct pvh_params p = { .cmdline = NULL };
	uint64_t si_gpa = 0;
	struct kg_err e = { 0 };
	if (pvh_write_start_info(&m, &p, &si_gpa, &e) != 0)
		fail_msg("%s", e.msg);
	struct hvm_start_info si;
	memcpy(&si, at(&m, si_gpa, sizeof(si)), sizeof(si));
	assert_int_equal(si.magic, HVM_START_MAGIC);
	assert_int_equal(si.nr_modules, 0);
	assert_int_equal(si.modlist_paddr, 0);
	/* a NULL command line is an empty string, still given */
	assert_int_equal(si.cmdline_paddr, KAGAMI_CMDLINE_GPA);
	assert_int_equal(*(const char *)at(&m, KAGAMI_CMDLINE_GPA, 1), '\0');
	mem_free(&m);
}

static void test_start_info_cmdline_limits(void **state)
{
	(void)state;
	struct guest_mem m;
	mem_alloc(&m, 64 * MiB);
	char *cmd = malloc(KAGAMI_CMDLINE_MAX + 1);
	assert_non_null(cmd);
	/* the longest that fits: KAGAMI_CMDLINE_MAX - 1 bytes and a NUL */
	memset(cmd, 'c', KAGAMI_CMDLINE_MAX - 1);
	cmd[KAGAMI_CMDLINE_MAX - 1] = '\0';
	struct pvh_params p = { .cmdline = cmd };
	uint64_t si_gpa;
	struct kg_err e = { 0 };
	if (pvh_write_start_info(&m, &p, &si_gpa, &e) != 0)
		fail_msg("%s", e.msg);
	assert_string_equal((const char *)at(&m, KAGAMI_CMDLINE_GPA,
					     KAGAMI_CMDLINE_MAX), cmd);
	/* one more byte is refused, and nothing is written */
	memset(m.regions[0].hva, 0xa5, 1 * MiB);
	memset(cmd, 'd', KAGAMI_CMDLINE_MAX);
	cmd[KAGAMI_CMDLINE_MAX] = '\0';
	si_gpa = 42;
	assert_int_equal(pvh_write_start_info(&m, &p, &si_gpa, &e), -1);
	assert_non_null(strstr(e.msg, "command line too long"));
	assert_non_null(strstr(e.msg, "4096"));
	assert_int_equal(si_gpa, 42);
	const uint8_t *cl = at(&m, KAGAMI_CMDLINE_GPA, 1);
	assert_int_equal(cl[0], 0xa5);
	uint32_t magic;
	memcpy(&magic, at(&m, KAGAMI_START_INFO_GPA, 4), 4);
	assert_int_equal(magic, 0xa5a5a5a5u);
	free(cmd);
	mem_free(&m);
}

/* RAM too small for the fixed addresses: an error, no crash. (The pure
 * layout accepts any size; guest_mem_init enforces 2 MiB.) */
static void test_start_info_ram_too_small(void **state)
{
	(void)state;
	struct guest_mem m;
	mem_alloc(&m, 0x10000); /* 64 KiB: below the command line */
	struct pvh_params p = { .cmdline = "x" };
	uint64_t si_gpa;
	struct kg_err e = { 0 };
	assert_int_equal(pvh_write_start_info(&m, &p, &si_gpa, &e), -1);
	assert_non_null(strstr(e.msg, "too small"));
	mem_free(&m);
}

/* --- initrd placement --- */

static void place_ok(const struct guest_mem *m, uint64_t image_end,
		     uint64_t size, uint64_t want)
{
	uint64_t gpa = 1;
	struct kg_err e = { 0 };
	if (pvh_place_initrd(m, image_end, size, &gpa, &e) != 0)
		fail_msg("image_end 0x%llx size 0x%llx: %s",
			 (unsigned long long)image_end,
			 (unsigned long long)size, e.msg);
	assert_int_equal(gpa, want);
	assert_int_equal(gpa % 4096, 0);
	assert_true(gpa >= image_end);
	assert_true(gpa >= KAGAMI_HIGH_RAM_START);
	assert_true(guest_mem_contains(m, gpa, size));
	assert_true(gpa + size <= m->regions[0].size);
}

static void place_bad(const struct guest_mem *m, uint64_t image_end,
		      uint64_t size)
{
	uint64_t gpa = 1;
	struct kg_err e = { 0 };
	if (pvh_place_initrd(m, image_end, size, &gpa, &e) != -1)
		fail_msg("image_end 0x%llx size 0x%llx: placed at 0x%llx",
			 (unsigned long long)image_end,
			 (unsigned long long)size, (unsigned long long)gpa);
	assert_non_null(strstr(e.msg, "does not fit"));
	assert_int_equal(gpa, 1);
}

static void test_place_initrd(void **state)
{
	(void)state;
	struct guest_mem m;
	layout_only(&m, 64 * MiB);
	/* top of low RAM, page aligned */
	place_ok(&m, 2 * MiB, 0x123456, (64 * MiB - 0x123456) & ~4095ull);
	place_ok(&m, 2 * MiB, 4096, 64 * MiB - 4096);
	place_ok(&m, 2 * MiB, 1, 64 * MiB - 4096);
	/* exactly filling the space above the image */
	place_ok(&m, 2 * MiB, 62 * MiB, 2 * MiB);
	place_bad(&m, 2 * MiB, 62 * MiB + 1);
	/* an unaligned image end rounds up */
	place_ok(&m, 2 * MiB + 1, 62 * MiB - 4096, 2 * MiB + 4096);
	place_bad(&m, 2 * MiB + 1, 62 * MiB - 4095);
	/* never below 1 MiB, even with no image there */
	place_ok(&m, 0, 63 * MiB, MiB);
	place_bad(&m, 0, 63 * MiB + 1);
	/* bigger than RAM, image above RAM */
	place_bad(&m, 2 * MiB, 64 * MiB);
	place_bad(&m, 2 * MiB, 65 * MiB);
	place_bad(&m, 2 * MiB, UINT64_MAX);
	place_bad(&m, 64 * MiB, 1);
	place_bad(&m, 128 * MiB, 1);
}

static void test_place_initrd_unaligned_ram(void **state)
{
	(void)state;
	struct guest_mem m;
	layout_only(&m, 64 * MiB + 0x800);
	place_ok(&m, 2 * MiB, 4096, 64 * MiB - 4096);
}

static void test_place_initrd_5g(void **state)
{
	(void)state;
	struct guest_mem m;
	layout_only(&m, 5 * GiB);
	/* below the MMIO hole, not in high RAM */
	place_ok(&m, 2 * MiB, 100 * MiB, 3 * GiB - 100 * MiB);
	place_ok(&m, 2 * MiB, 3 * GiB - 2 * MiB, 2 * MiB);
	place_bad(&m, 2 * MiB, 3 * GiB - 2 * MiB + 1);
	/* an image in high RAM leaves no room above it below 3 GiB */
	place_bad(&m, 4 * GiB + MiB, MiB);
}

/* Regression: `(image_end + 4095) & ~4095ull` used to wrap for image_end
 * within 4 KiB of 2^64 and "place" the initrd below the image. */
static void test_place_initrd_image_end_overflow(void **state)
{
	(void)state;
	struct guest_mem m;
	layout_only(&m, 64 * MiB);
	place_bad(&m, UINT64_MAX - 100, 4096);
	place_bad(&m, UINT64_MAX, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout_small),
		cmocka_unit_test(test_layout_3g_boundary),
		cmocka_unit_test(test_layout_5g),
		cmocka_unit_test(test_contains_5g),
		cmocka_unit_test(test_ptr_bounds),
		cmocka_unit_test(test_ptr_straddling_regions),
		cmocka_unit_test(test_memmap_64m),
		cmocka_unit_test(test_memmap_5g),
		cmocka_unit_test(test_memmap_3g),
		cmocka_unit_test(test_memmap_ram_total),
		cmocka_unit_test(test_start_info),
		cmocka_unit_test(test_start_info_no_initrd_no_cmdline),
		cmocka_unit_test(test_start_info_cmdline_limits),
		cmocka_unit_test(test_start_info_ram_too_small),
		cmocka_unit_test(test_place_initrd),
		cmocka_unit_test(test_place_initrd_unaligned_ram),
		cmocka_unit_test(test_place_initrd_5g),
		cmocka_unit_test(test_place_initrd_image_end_overflow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
