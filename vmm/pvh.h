/*
 * PVH boot information (Xen's hvm_start_info, version 1): the memory map,
 * command line and modules (initrd) handed to the guest in %ebx. Pure
 * layout logic on struct guest_mem; boot.c does the file I/O.
 */
#ifndef KG_PVH_H
#define KG_PVH_H

#include <stdint.h>
#include "base/err.h"
#include "mem.h"

#define HVM_START_MAGIC 0x336ec578u
#define PVH_E820_RAM 1u
#define PVH_E820_RESERVED 2u
#define PVH_MAX_MEMMAP 8

struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries, reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr, size, cmdline_paddr, reserved;
};

struct hvm_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

struct pvh_params {
	const char *cmdline;            /* may be NULL */
	uint64_t initrd_gpa, initrd_size; /* size 0: no module */
	uint64_t rsdp_gpa;              /* 0: no ACPI tables */
};

/* Fills `map` with the E820-style memory map for m; returns the count. */
unsigned pvh_memmap(const struct guest_mem *m,
		    struct hvm_memmap_entry map[PVH_MAX_MEMMAP]);
/* Writes start_info, module list, memory map and command line at their
 * fixed addresses (kagami_platform.h); returns the start_info address. */
int pvh_write_start_info(const struct guest_mem *m, const struct pvh_params *p,
			 uint64_t *start_info_gpa, struct kg_err *e);
/* Where an initrd of `size` bytes goes: the top of low RAM, page aligned,
 * above `image_end`. Returns -1 if it does not fit. */
int pvh_place_initrd(const struct guest_mem *m, uint64_t image_end,
		     uint64_t size, uint64_t *gpa, struct kg_err *e);

#endif
