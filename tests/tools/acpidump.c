/* Writes the ACPI tables kagami generates for a VM shape into DIR, one
 * binary table per file (rsdp.dat, xsdt.dat, facp.dat, apic.dat,
 * dsdt.dat), for iasl -d to check (tests/integration/22_acpi.sh).
 *   acpidump DIR NCPUS NVIRTIO */
#include <stdio.h>
#include <stdlib.h>

#include "base/le.h"
#include "vmm/acpi.h"
#include "abi/kagami_platform.h"

static int put(const char *dir, const char *name, const uint8_t *p,
	       size_t len)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s.dat", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: acpidump DIR NCPUS NVIRTIO\n");
		return 2;
	}
	struct acpi_config c = {
		.ncpus = (unsigned)atoi(argv[2]),
		.nvirtio = (unsigned)atoi(argv[3]),
		.sleep_control_port = KAGAMI_ACPI_SLEEP_CONTROL_PORT,
		.sleep_status_port = KAGAMI_ACPI_SLEEP_STATUS_PORT,
		.reset_port = 0xcf9, .reset_value = 6,
		.com1_port = 0x3f8, .com1_irq = 4,
		.rtc_port = 0x70, .rtc_irq = 8,
		.ioapic_addr = 0xfec00000, .lapic_addr = 0xfee00000,
	};
	for (unsigned i = 0; i < c.nvirtio && i < ACPI_MAX_VIRTIO; i++)
		c.virtio[i] = (struct acpi_virtio){ 0xfeb00000 + 0x200 * i,
						    0x200, 16 + i };
	static uint8_t buf[ACPI_TABLES_SIZE];
	struct acpi_layout l;
	struct kg_err e = { 0 };
	if (acpi_build(&c, buf, sizeof(buf), ACPI_TABLES_GPA, &l, &e) < 0) {
		fprintf(stderr, "acpidump: %s\n", e.msg);
		return 1;
	}
	const uint8_t *b = buf - ACPI_TABLES_GPA;
	uint64_t tabs[] = { l.xsdt, l.fadt, l.madt, l.dsdt };
	const char *names[] = { "xsdt", "facp", "apic", "dsdt" };
	if (put(argv[1], "rsdp", b + l.rsdp, 36) < 0)
		return 1;
	for (int i = 0; i < 4; i++)
		if (put(argv[1], names[i], b + tabs[i],
			le32_get(b + tabs[i] + 4)) < 0)
			return 1;
	return 0;
}
