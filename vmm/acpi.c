#include "acpi.h"

#include <stdio.h>
#include <string.h>

#include "aml.h"
#include "base/le.h"

#define HDR 36 /* the common table header */
#define OEM_ID "KAGAMI"
#define OEM_TABLE "KAGAMIVM"
#define CREATOR "KGMI"

#define FADT_LEN 276 /* revision 6 */
#define FADT_HW_REDUCED (1u << 20)
#define FADT_RESET_REG_SUP (1u << 10)
#define FADT_BOOT_NO_VGA (1u << 2)
#define GAS_SYSTEM_IO 1

uint8_t acpi_checksum(const uint8_t *p, size_t len)
{
	uint8_t s = 0;
	for (size_t i = 0; i < len; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

static void header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	le32_put(t + 4, len);
	t[8] = rev;
	memcpy(t + 10, OEM_ID, 6);
	memcpy(t + 16, OEM_TABLE, 8);
	le32_put(t + 24, 1);            /* OEM revision */
	memcpy(t + 28, CREATOR, 4);
	le32_put(t + 32, 1);            /* creator revision */
}

static void seal(uint8_t *t, uint32_t len)
{
	t[9] = 0;
	t[9] = (uint8_t)-acpi_checksum(t, len);
}

/* A Generic Address Structure for a byte-wide I/O port. */
static void gas_io8(uint8_t *g, uint16_t port)
{
	g[0] = GAS_SYSTEM_IO;
	g[1] = 8;  /* bit width */
	g[2] = 0;  /* bit offset */
	g[3] = 1;  /* byte access */
	le64_put(g + 4, port);
}

static int dsdt(const struct acpi_config *c, struct aml *out,
		struct kg_err *e)
{
	struct aml sb = { 0 }, s5 = { 0 }, pkg = { 0 };
	/* \_S5: SLP_TYPa, SLP_TYPb (only the first two elements count). */
	aml_integer(&pkg, ACPI_SLEEP_TYP_S5);
	aml_integer(&pkg, ACPI_SLEEP_TYP_S5);
	aml_package(&s5, 2, &pkg);
	aml_name(out, "\\_S5_", &s5);
	if (c->com1_port) {
		struct aml dev = { 0 }, crs = { 0 }, buf = { 0 };
		aml_name_eisaid(&dev, "_HID", "PNP0501");
		aml_name_int(&dev, "_UID", 1);
		aml_res_io(&crs, c->com1_port, 1, 8);
		aml_res_irq_noflags(&crs, c->com1_irq);
		aml_res_end(&crs);
		aml_buffer(&buf, &crs);
		aml_name(&dev, "_CRS", &buf);
		aml_device(&sb, "COM1", &dev);
	}
	if (c->rtc_port) {
		struct aml dev = { 0 }, crs = { 0 }, buf = { 0 };
		aml_name_eisaid(&dev, "_HID", "PNP0B00");
		aml_res_io(&crs, c->rtc_port, 1, 2);
		aml_res_irq_noflags(&crs, c->rtc_irq);
		aml_res_end(&crs);
		aml_buffer(&buf, &crs);
		aml_name(&dev, "_CRS", &buf);
		aml_device(&sb, "RTC_", &dev);
	}
	for (unsigned i = 0; i < c->nvirtio; i++) {
		const struct acpi_virtio *v = &c->virtio[i];
		if (v->base > UINT32_MAX - v->size) {
			aml_free(&sb);
			return kg_errf(e, "virtio-mmio window at 0x%llx is "
				       "above 4 GiB", (unsigned long long)v->base);
		}
		struct aml dev = { 0 }, crs = { 0 }, buf = { 0 };
		char name[5];
		snprintf(name, sizeof(name), "V%03u", i % 1000);
		aml_name_string(&dev, "_HID", "LNRO0005");
		aml_name_int(&dev, "_UID", i);
		aml_name_int(&dev, "_CCA", 1); /* cache-coherent DMA */
		aml_res_mem32_fixed(&crs, (uint32_t)v->base, v->size, true);
		aml_res_interrupt(&crs, v->gsi, true, false);
		aml_res_end(&crs);
		aml_buffer(&buf, &crs);
		aml_name(&dev, "_CRS", &buf);
		aml_device(&sb, name, &dev);
	}
	aml_scope(out, "\\_SB_", &sb);
	return aml_ok(out) ? 0 : kg_errf(e, "ACPI: out of memory");
}

/* Reserves len bytes (8-byte aligned) at the cursor. */
static uint8_t *take(uint8_t *buf, size_t size, size_t *at, size_t len)
{
	size_t off = (*at + 7) & ~(size_t)7;
	if (off > size || len > size - off)
		return NULL;
	*at = off + len;
	return buf + off;
}

static uint32_t madt_len(const struct acpi_config *c)
{
	return HDR + 8 + 8 * c->ncpus + 12 + 10 + 6;
}

static void madt(const struct acpi_config *c, uint8_t *t)
{
	uint32_t len = madt_len(c);
	header(t, "APIC", len, 5);
	le32_put(t + 36, c->lapic_addr);
	le32_put(t + 40, 0); /* flags: no 8259 pair to mask (HW-reduced) */
	uint8_t *p = t + 44;
	for (unsigned i = 0; i < c->ncpus; i++, p += 8) {
		p[0] = 0; /* processor local APIC */
		p[1] = 8;
		p[2] = (uint8_t)i; /* ACPI processor UID */
		p[3] = (uint8_t)i; /* APIC id */
		le32_put(p + 4, 1); /* enabled */
	}
	p[0] = 1; /* I/O APIC */
	p[1] = 12;
	p[2] = 0; /* its id */
	p[3] = 0;
	le32_put(p + 4, c->ioapic_addr);
	le32_put(p + 8, 0); /* GSI base */
	p += 12;
	p[0] = 2; /* interrupt source override: ISA IRQ 0 is GSI 2 */
	p[1] = 10;
	p[2] = 0; /* ISA */
	p[3] = 0;
	le32_put(p + 4, 2);
	le16_put(p + 8, 0); /* conforms to the bus: edge, active high */
	p += 10;
	p[0] = 4; /* local APIC NMI: every processor, LINT1 */
	p[1] = 6;
	p[2] = 0xff;
	le16_put(p + 3, 0);
	p[5] = 1;
	seal(t, len);
}

static void fadt(const struct acpi_config *c, uint8_t *t, uint64_t dsdt_gpa)
{
	header(t, "FACP", FADT_LEN, 6);
	le32_put(t + 40, (uint32_t)dsdt_gpa);
	le16_put(t + 109, FADT_BOOT_NO_VGA);
	le32_put(t + 112, FADT_HW_REDUCED | FADT_RESET_REG_SUP);
	gas_io8(t + 116, c->reset_port);
	t[128] = c->reset_value;
	t[131] = 0; /* FADT minor version */
	le64_put(t + 140, dsdt_gpa);
	gas_io8(t + 244, c->sleep_control_port);
	gas_io8(t + 256, c->sleep_status_port);
	memcpy(t + 268, "KAGAMIVM", 8); /* hypervisor vendor identity */
	seal(t, FADT_LEN);
}

int acpi_build(const struct acpi_config *c, uint8_t *buf, size_t size,
	       uint64_t base_gpa, struct acpi_layout *out, struct kg_err *e)
{
	if (base_gpa & 15)
		return kg_errf(e, "ACPI: tables must start 16-byte aligned");
	if (c->ncpus == 0 || c->ncpus > ACPI_MAX_CPUS)
		return kg_errf(e, "ACPI: %u vCPUs (1 to %d)", c->ncpus,
			       ACPI_MAX_CPUS);
	if (c->nvirtio > ACPI_MAX_VIRTIO)
		return kg_errf(e, "ACPI: %u virtio devices (at most %d)",
			       c->nvirtio, ACPI_MAX_VIRTIO);
	memset(buf, 0, size);
	struct aml body = { 0 };
	if (dsdt(c, &body, e) < 0) {
		aml_free(&body);
		return -1;
	}
	size_t at = 0;
	uint8_t *rsdp = take(buf, size, &at, 36);
	uint8_t *xsdt = take(buf, size, &at, HDR + 2 * 8);
	uint8_t *fa = take(buf, size, &at, FADT_LEN);
	uint8_t *ma = take(buf, size, &at, madt_len(c));
	uint8_t *ds = take(buf, size, &at, HDR + body.len);
	if (!rsdp || !xsdt || !fa || !ma || !ds) {
		aml_free(&body);
		return kg_errf(e, "ACPI: the tables need more than %zu bytes",
			       size);
	}
	struct acpi_layout l = {
		.rsdp = base_gpa + (uint64_t)(rsdp - buf),
		.xsdt = base_gpa + (uint64_t)(xsdt - buf),
		.fadt = base_gpa + (uint64_t)(fa - buf),
		.madt = base_gpa + (uint64_t)(ma - buf),
		.dsdt = base_gpa + (uint64_t)(ds - buf),
		.used = at,
	};
	header(ds, "DSDT", (uint32_t)(HDR + body.len), 2);
	memcpy(ds + HDR, body.data, body.len);
	seal(ds, (uint32_t)(HDR + body.len));
	aml_free(&body);
	fadt(c, fa, l.dsdt);
	madt(c, ma);
	header(xsdt, "XSDT", HDR + 16, 1);
	le64_put(xsdt + HDR, l.fadt);
	le64_put(xsdt + HDR + 8, l.madt);
	seal(xsdt, HDR + 16);
	memcpy(rsdp, "RSD PTR ", 8);
	memcpy(rsdp + 9, OEM_ID, 6);
	rsdp[15] = 2;               /* ACPI 2.0+: the XSDT is used */
	le32_put(rsdp + 16, 0);     /* no RSDT */
	le32_put(rsdp + 20, 36);
	le64_put(rsdp + 24, l.xsdt);
	rsdp[8] = (uint8_t)-acpi_checksum(rsdp, 20);
	rsdp[32] = (uint8_t)-acpi_checksum(rsdp, 36);
	if (out)
		*out = l;
	return 0;
}
