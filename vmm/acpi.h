/*
 * ACPI tables generated from the VM's configuration, for guests that
 * discover their platform through ACPI (Linux): a hardware-reduced
 * platform as QEMU's microvm, Firecracker and cloud-hypervisor present.
 *
 *   RSDP (revision 2) -> XSDT -> FADT (HW_REDUCED_ACPI; sleep control and
 *                                      status registers; reset register)
 *                            |      -> DSDT: \_S5, COM1, the RTC, each
 *                            |         virtio-mmio device (LNRO0005)
 *                            -> MADT: a local APIC per vCPU, the IOAPIC,
 *                                     ISA overrides, LINT1 as NMI
 *
 * Pure: acpi_build writes the tables into a caller's buffer that stands
 * for guest-physical memory starting at base_gpa (tables point at each
 * other by guest-physical address). Every table's checksum is set.
 */
#ifndef KG_ACPI_H
#define KG_ACPI_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define ACPI_MAX_CPUS 64
#define ACPI_MAX_VIRTIO 8

/* Where the tables go (reserved in the guest's memory map, in the BIOS
 * area below 1 MiB, where Linux also scans for the RSDP). */
#define ACPI_TABLES_GPA 0xe0000ull
#define ACPI_TABLES_SIZE 0x10000u

/* What a guest writes to the sleep control register to power off: with
 * \_S5 = {5, 5}, SLP_TYP 5 in bits 2-4 and SLP_EN (bit 5). */
#define ACPI_SLEEP_TYP_S5 5u
#define ACPI_SLEEP_TYP_SHIFT 2u
#define ACPI_SLEEP_TYP_MASK 0x1cu
#define ACPI_SLEEP_EN 0x20u

struct acpi_virtio {
	uint64_t base;
	uint32_t size, gsi;
};

struct acpi_config {
	unsigned ncpus;             /* APIC ids 0..ncpus-1 */
	unsigned nvirtio;
	struct acpi_virtio virtio[ACPI_MAX_VIRTIO];
	uint16_t sleep_control_port, sleep_status_port;
	uint16_t reset_port;
	uint8_t reset_value;
	uint16_t com1_port;         /* 0: none */
	unsigned com1_irq;
	uint16_t rtc_port;          /* 0: none */
	unsigned rtc_irq;
	uint32_t ioapic_addr, lapic_addr;
};

/* The tables' layout in the buffer, for tests and for the boot code. */
struct acpi_layout {
	uint64_t rsdp, xsdt, fadt, madt, dsdt; /* guest-physical */
	size_t used;                           /* bytes from base_gpa */
};

/* Writes every table into buf (size bytes standing for guest-physical
 * [base_gpa, base_gpa + size)); base_gpa must be 16-byte aligned. */
int acpi_build(const struct acpi_config *c, uint8_t *buf, size_t size,
	       uint64_t base_gpa, struct acpi_layout *out, struct kg_err *e);

/* The sum of len bytes (a valid table sums to 0). */
uint8_t acpi_checksum(const uint8_t *p, size_t len);

#endif
