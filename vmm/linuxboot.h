/*
 * The Linux x86 boot protocol (Documentation/arch/x86/boot.rst), 64-bit
 * entry: how distributions ship kernels (/boot/vmlinuz-*, a bzImage).
 * Pure: parsing works on a buffer, loading on struct guest_mem.
 *
 * A bzImage is the real-mode setup (setup_sects + 1 sectors, whose header
 * at 0x1f1 describes the kernel) followed by the protected-mode kernel.
 * kagami loads the protected-mode part at 1 MiB, fills a zero page
 * (struct boot_params: the setup header, an e820 map, the command line,
 * the initrd, the ACPI RSDP) and enters at load address + 0x200 in long
 * mode, with identity-mapped page tables for the first 4 GiB, a GDT with
 * __BOOT_CS (0x10) and __BOOT_DS (0x18), and %rsi = the zero page.
 */
#ifndef KG_LINUXBOOT_H
#define KG_LINUXBOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "mem.h"

#define LB_MIN_VERSION 0x020c /* 2.12: xloadflags and the 64-bit entry */
#define LB_LOAD_ADDR 0x100000ull
#define LB_ENTRY64_OFFSET 0x200
/* The low pages kagami uses while booting Linux (RAM below 640 KiB). */
#define LB_GDT_GPA 0x500ull
#define LB_ZERO_PAGE_GPA 0x7000ull
#define LB_PML4_GPA 0x9000ull  /* then the PDPT and 4 PDs: 4 GiB in 2 MiB pages */
#define LB_CMDLINE_GPA 0x20000ull
#define LB_E820_MAX 128

struct lb_image {
	uint16_t version;
	uint8_t setup_sects;
	uint8_t loadflags;
	uint16_t xloadflags;
	uint32_t cmdline_size, initrd_addr_max, init_size, kernel_alignment;
	bool relocatable;
	uint64_t pref_address;
	size_t kernel_offset, kernel_size; /* the protected-mode part */
	size_t header_len;                 /* bytes of setup header at 0x1f1 */
};

/* Whether buf looks like a bzImage (boot flag and "HdrS"); elf.h's
 * parser takes everything else. */
bool lb_is_bzimage(const uint8_t *buf, size_t len);

/* Validates a bzImage: its protocol version (at least 2.12), a 64-bit
 * entry point (XLF_KERNEL_64), the setup size against the file. */
int lb_parse(const uint8_t *buf, size_t len, struct lb_image *img,
	     struct kg_err *e);

struct lb_params {
	const char *cmdline;   /* may be NULL */
	const uint8_t *initrd; /* NULL: none */
	size_t initrd_size;
	uint64_t rsdp_gpa;     /* 0: none */
};

/* Where boot put things: the vCPU's registers come from these. */
struct lb_boot {
	uint64_t entry, zero_page, cr3, gdt;
	uint64_t initrd_gpa;
};

/* Loads the kernel and the initrd, writes the zero page, command line,
 * e820 map, GDT and page tables into guest memory. Errors (one line): a
 * command line longer than the kernel takes, RAM too small for the
 * kernel to decompress (init_size), an initrd that does not fit below
 * initrd_addr_max. */
int lb_load(const struct guest_mem *m, const struct lb_image *img,
	    const uint8_t *file, const struct lb_params *p,
	    struct lb_boot *out, struct kg_err *e);

#endif
