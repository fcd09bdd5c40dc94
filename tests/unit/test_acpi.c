/* The ACPI tables (vmm/acpi.c) and the AML encoder (vmm/aml.c): layout,
 * checksums and encodings, byte by byte. tests/integration/22_acpi.sh has
 * iasl, the ACPI reference compiler, disassemble the same tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/le.h"
#include "vmm/acpi.h"
#include "vmm/aml.h"

#define BASE 0xe0000ull

static uint8_t buf[ACPI_TABLES_SIZE];

static struct acpi_config config(unsigned ncpus, unsigned nvirtio)
{
	struct acpi_config c = {
		.ncpus = ncpus, .nvirtio = nvirtio,
		.sleep_control_port = 0x600, .sleep_status_port = 0x601,
		.reset_port = 0xcf9, .reset_value = 6,
		.com1_port = 0x3f8, .com1_irq = 4,
		.rtc_port = 0x70, .rtc_irq = 8,
		.ioapic_addr = 0xfec00000, .lapic_addr = 0xfee00000,
	};
	for (unsigned i = 0; i < nvirtio; i++)
		c.virtio[i] = (struct acpi_virtio){ 0xfeb00000 + 0x200 * i,
						    0x200, 16 + i };
	return c;
}

static const uint8_t *at(uint64_t gpa)
{
	return buf + (gpa - BASE);
}

static void check_table(uint64_t gpa, const char *sig, uint8_t rev)
{
	const uint8_t *t = at(gpa);
	assert_memory_equal(t, sig, 4);
	assert_int_equal(t[8], rev);
	assert_int_equal(acpi_checksum(t, le32_get(t + 4)), 0);
	assert_memory_equal(t + 10, "KAGAMI", 6);
}

static size_t count(const uint8_t *p, size_t len, const char *s)
{
	size_t n = 0, k = strlen(s);
	for (size_t i = 0; i + k <= len; i++)
		n += !memcmp(p + i, s, k);
	return n;
}

static void test_layout_and_checksums(void **state)
{
	(void)state;
	struct acpi_config c = config(2, 3);
	struct acpi_layout l;
	struct kg_err e = { 0 };
	assert_int_equal(acpi_build(&c, buf, sizeof(buf), BASE, &l, &e), 0);
	/* RSDP: both checksums, revision 2, the XSDT. */
	const uint8_t *r = at(l.rsdp);
	assert_memory_equal(r, "RSD PTR ", 8);
	assert_int_equal(l.rsdp % 16, 0);
	assert_int_equal(acpi_checksum(r, 20), 0);
	assert_int_equal(acpi_checksum(r, 36), 0);
	assert_int_equal(r[15], 2);
	assert_int_equal(le32_get(r + 20), 36);
	assert_int_equal(le64_get(r + 24), l.xsdt);
	/* XSDT: the FADT and the MADT. */
	check_table(l.xsdt, "XSDT", 1);
	assert_int_equal(le32_get(at(l.xsdt) + 4), 36 + 16);
	assert_int_equal(le64_get(at(l.xsdt) + 36), l.fadt);
	assert_int_equal(le64_get(at(l.xsdt) + 44), l.madt);
	/* FADT: hardware-reduced, its registers, the DSDT. */
	check_table(l.fadt, "FACP", 6);
	const uint8_t *f = at(l.fadt);
	assert_int_equal(le32_get(f + 4), 276);
	assert_int_equal(le32_get(f + 112), (1u << 20) | (1u << 10));
	assert_int_equal(le32_get(f + 40), l.dsdt);
	assert_int_equal(le64_get(f + 140), l.dsdt);
	assert_int_equal(f[116], 1);      /* reset: system I/O */
	assert_int_equal(le64_get(f + 120), 0xcf9);
	assert_int_equal(f[128], 6);
	assert_int_equal(f[244], 1);      /* sleep control */
	assert_int_equal(f[245], 8);
	assert_int_equal(le64_get(f + 248), 0x600);
	assert_int_equal(le64_get(f + 260), 0x601);
	assert_int_equal(le32_get(f + 64), 0); /* no PM1 blocks */
	/* Every table inside the buffer, none overlapping the next. */
	assert_true(l.xsdt >= l.rsdp + 36);
	assert_true(l.fadt >= l.xsdt + 52);
	assert_true(l.madt >= l.fadt + 276);
	assert_true(l.dsdt >= l.madt + le32_get(at(l.madt) + 4));
	assert_true(l.used <= sizeof(buf));
	assert_int_equal(l.dsdt + le32_get(at(l.dsdt) + 4), BASE + l.used);
}

static void test_madt(void **state)
{
	(void)state;
	struct acpi_config c = config(4, 0);
	struct acpi_layout l;
	struct kg_err e = { 0 };
	assert_int_equal(acpi_build(&c, buf, sizeof(buf), BASE, &l, &e), 0);
	check_table(l.madt, "APIC", 5);
	const uint8_t *m = at(l.madt);
	uint32_t len = le32_get(m + 4);
	assert_int_equal(le32_get(m + 36), 0xfee00000);
	unsigned lapics = 0, ioapics = 0, isos = 0, nmis = 0;
	for (uint32_t off = 44; off < len; off += m[off + 1]) {
		const uint8_t *s = m + off;
		assert_true(s[1] >= 2 && off + s[1] <= len);
		switch (s[0]) {
		case 0:
			assert_int_equal(s[3], lapics); /* APIC ids 0..n-1 */
			assert_int_equal(le32_get(s + 4), 1);
			lapics++;
			break;
		case 1:
			assert_int_equal(le32_get(s + 4), 0xfec00000);
			assert_int_equal(le32_get(s + 8), 0);
			ioapics++;
			break;
		case 2:
			assert_int_equal(s[3], 0);  /* IRQ 0 ... */
			assert_int_equal(le32_get(s + 4), 2); /* ... is GSI 2 */
			isos++;
			break;
		case 4:
			assert_int_equal(s[5], 1);  /* LINT1 */
			nmis++;
			break;
		default:
			fail_msg("unexpected MADT entry type %u", s[0]);
		}
	}
	assert_int_equal(lapics, 4);
	assert_int_equal(ioapics, 1);
	assert_int_equal(isos, 1);
	assert_int_equal(nmis, 1);
}

static void test_dsdt_devices(void **state)
{
	(void)state;
	struct acpi_config c = config(1, 8);
	struct acpi_layout l;
	struct kg_err e = { 0 };
	assert_int_equal(acpi_build(&c, buf, sizeof(buf), BASE, &l, &e), 0);
	check_table(l.dsdt, "DSDT", 2);
	const uint8_t *d = at(l.dsdt);
	size_t len = le32_get(d + 4);
	assert_int_equal(count(d, len, "LNRO0005"), 8);
	assert_int_equal(count(d, len, "V007"), 1);
	assert_int_equal(count(d, len, "COM1"), 1);
	assert_int_equal(count(d, len, "RTC_"), 1);
	assert_int_equal(count(d, len, "_S5_"), 1);
	/* Slot 7's window and interrupt, as its _CRS encodes them. */
	uint8_t mem[12] = { 0x86, 9, 0, 1 };
	le32_put(mem + 4, 0xfeb00000 + 7 * 0x200);
	le32_put(mem + 8, 0x200);
	int found = 0;
	for (size_t i = 0; i + 12 <= len; i++)
		found += !memcmp(d + i, mem, 12);
	assert_int_equal(found, 1);
	uint8_t irq[9] = { 0x89, 6, 0, 0x01, 1, 23, 0, 0, 0 };
	found = 0;
	for (size_t i = 0; i + 9 <= len; i++)
		found += !memcmp(d + i, irq, 9);
	assert_int_equal(found, 1);
	/* Without COM1 and the RTC, neither is described. */
	c.com1_port = 0;
	c.rtc_port = 0;
	assert_int_equal(acpi_build(&c, buf, sizeof(buf), BASE, &l, &e), 0);
	d = at(l.dsdt);
	len = le32_get(d + 4);
	assert_int_equal(count(d, len, "COM1"), 0);
	assert_int_equal(count(d, len, "PNP"), 0);
}

static void test_eisaid(void **state)
{
	(void)state;
	assert_int_equal(aml_eisaid("PNP0501"), 0x0105d041);
	assert_int_equal(aml_eisaid("PNP0B00"), 0x000bd041);
	assert_int_equal(aml_eisaid("PNP0A03"), 0x030ad041);
}

static void test_aml_encodings(void **state)
{
	(void)state;
	struct aml a = { 0 };
	aml_integer(&a, 0);
	aml_integer(&a, 1);
	aml_integer(&a, 0x42);
	aml_integer(&a, 0x1234);
	aml_integer(&a, 0x12345678);
	aml_integer(&a, 0x100000000ull);
	static const uint8_t want[] = {
		0x00, 0x01, 0x0a, 0x42, 0x0b, 0x34, 0x12,
		0x0c, 0x78, 0x56, 0x34, 0x12,
		0x0e, 0, 0, 0, 0, 1, 0, 0, 0,
	};
	assert_int_equal(a.len, sizeof(want));
	assert_memory_equal(a.data, want, sizeof(want));
	aml_free(&a);
	/* Names: padded segments, root, dual and multi-part paths. */
	aml_namestring(&a, "\\_SB");
	aml_namestring(&a, "_SB.COM1");
	aml_namestring(&a, "A.B.C");
	static const uint8_t names[] = {
		'\\', '_', 'S', 'B', '_',
		0x2e, '_', 'S', 'B', '_', 'C', 'O', 'M', '1',
		0x2f, 3, 'A', '_', '_', '_', 'B', '_', '_', '_', 'C', '_', '_', '_',
	};
	assert_int_equal(a.len, sizeof(names));
	assert_memory_equal(a.data, names, sizeof(names));
	aml_free(&a);
}

/* PkgLength: one byte up to 63, then 2, 3 bytes; it counts itself. */
static void test_pkglength(void **state)
{
	(void)state;
	size_t sizes[] = { 0, 61, 62, 63, 200, 4090, 4091, 70000 };
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		struct aml body = { 0 }, a = { 0 };
		uint8_t *junk = calloc(1, sizes[k] + 1);
		aml_bytes(&body, junk, sizes[k]);
		free(junk);
		aml_buffer(&a, &body);
		assert_true(aml_ok(&a));
		assert_int_equal(a.data[0], 0x11);
		size_t nbytes = 1 + (a.data[1] >> 6);
		size_t v = a.data[1] & (nbytes == 1 ? 0x3f : 0x0f);
		for (size_t i = 1; i < nbytes; i++)
			v |= (size_t)a.data[1 + i] << (4 + 8 * (i - 1));
		/* The PkgLength covers itself and the rest of the buffer. */
		assert_int_equal(v, a.len - 1);
		if (v < 64)
			assert_int_equal(nbytes, 1);
		else
			assert_true(nbytes > 1 && (a.data[1] & 0x30) == 0);
		aml_free(&a);
	}
}

static void test_errors(void **state)
{
	(void)state;
	struct acpi_config c = config(2, 2);
	struct acpi_layout l;
	struct kg_err e = { 0 };
	assert_int_equal(acpi_build(&c, buf, 100, BASE, &l, &e), -1);
	assert_non_null(strstr(e.msg, "need more than 100 bytes"));
	assert_int_equal(acpi_build(&c, buf, sizeof(buf), BASE + 4, &l, &e), -1);
	assert_non_null(strstr(e.msg, "16-byte aligned"));
	c.ncpus = 0;
	assert_int_equal(acpi_build(&c, buf, sizeof(buf), BASE, &l, &e), -1);
	assert_non_null(strstr(e.msg, "0 vCPUs"));
	c = config(2, 2);
	c.virtio[1].base = 0x1fffffff0ull;
	assert_int_equal(acpi_build(&c, buf, sizeof(buf), BASE, &l, &e), -1);
	assert_non_null(strstr(e.msg, "above 4 GiB"));
	c = config(ACPI_MAX_CPUS, ACPI_MAX_VIRTIO);
	assert_int_equal(acpi_build(&c, buf, sizeof(buf), BASE, &l, &e), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout_and_checksums),
		cmocka_unit_test(test_madt),
		cmocka_unit_test(test_dsdt_devices),
		cmocka_unit_test(test_eisaid),
		cmocka_unit_test(test_aml_encodings),
		cmocka_unit_test(test_pkglength),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
