/* The VM's ACPI tables, written into guest RAM at boot (acpi.h builds
 * them; this file says what the VM has). */
#ifndef KG_ACPI_VM_H
#define KG_ACPI_VM_H

#include <stdint.h>

#include "base/err.h"

struct vm;

/* Writes the tables at KAGAMI_ACPI_GPA and returns the RSDP's address in
 * *rsdp; a deterministic VM (no LAPIC, no IOAPIC) gets none (*rsdp 0). */
int acpi_vm_write(struct vm *vm, uint64_t *rsdp, struct kg_err *e);

#endif
