/*
 * ELF image parsing for PVH boot (pure: works on a buffer, no I/O).
 * Accepts ELF32 and ELF64 little-endian x86 images whose PT_NOTE segments
 * carry XEN_ELFNOTE_PHYS32_ENTRY (the PVH entry point), and checks every
 * offset and size against the buffer before trusting it.
 */
#ifndef KG_ELF_H
#define KG_ELF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"

#define ELF_MAX_LOAD_SEGMENTS 16
#define XEN_ELFNOTE_PHYS32_ENTRY 18

struct elf_segment {
	uint64_t paddr, offset, filesz, memsz;
};

struct elf_image {
	unsigned bits; /* 32 or 64 */
	uint64_t pvh_entry;
	bool ring3; /* carries KAGAMI_ELFNOTE_RING3 (an SDK guest) */
	uint64_t lo, hi; /* lowest paddr, end of highest segment */
	unsigned nsegs;
	struct elf_segment segs[ELF_MAX_LOAD_SEGMENTS];
};

/* Fills img; on error names the problem ("not an ELF file", "no PVH
 * entry note (XEN_ELFNOTE_PHYS32_ENTRY)", "truncated ...") and returns -1. */
int elf_parse(const uint8_t *buf, size_t len, struct elf_image *img,
	      struct kg_err *e);

/* The PVH entry point must lie in the file-backed part of a loaded
 * segment: anywhere else the first instruction would be zeros or
 * unmapped, and the guest would fail obscurely after boot. */
int elf_check_entry(const struct elf_image *img, struct kg_err *e);

#endif
