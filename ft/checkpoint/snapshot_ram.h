/*
 * A snapshot's RAM on restore: the RAM sections stay in the file and are
 * read from it page by page as the guest needs them (vmm/mem_lazy.h),
 * each page checked against its hash before it reaches guest RAM, so
 * that a file changed or cut while the guest runs can only stop it with
 * "snapshot X: RAM page 0x... damaged (...)", never feed it other bytes.
 *
 * The hashes are ram-hashes sections (KG_SEC_RAM_HASHES, version 1,
 * stream 1.3), written by snapshot_save after the RAM sections' CRCs,
 * one or more per region (instance = region), each covering a span of
 * its pages. Payload, little-endian:
 *
 *    0  first page of the span (region-relative, a multiple of G)  u64
 *    8  pages in the span, n >= 1                                  u64
 *   16  pages per group, G (a power of two, 64 .. 65536)           u32
 *   20  reserved, 0                                                u32
 *   24  XXH3-64 of each group's page hashes (their bytes)    u64 x ceil(n/G)
 *   ..  XXH3-64 of every byte above                                u64
 *   ..  XXH3-64 of each 4 KiB page                                 u64 x n
 *
 * Restore reads only the index (bytes up to the page hashes: 16 KiB per
 * 4 GiB of RAM), so its cost does not grow with RAM; a group of page
 * hashes is read when one of its pages is first needed and checked
 * against the index. The section's CRC is written as usual (inspect
 * checks it) but restore relies on the index's own hash instead.
 *
 * A snapshot without ram-hashes (before 1.3) is copied into RAM and its
 * RAM sections' CRCs checked before the guest starts: correct, slower.
 */
#ifndef KG_SNAPSHOT_RAM_H
#define KG_SNAPSHOT_RAM_H

#include <stdint.h>

#include "base/err.h"
#include "stream.h"

struct vm;
struct guest_mem;

#define SNAP_HASH_VERSION 1
#define SNAP_HASH_GROUP 512u                  /* pages per group: 4 KiB */
#define SNAP_HASH_SPAN (1ull << 25)            /* pages per section max */

/* Writes the ram-hashes section of pages [first, first + n) of region
 * `region` (first a multiple of SNAP_HASH_SPAN). */
int snap_ram_write_hashes(struct kg_stream_writer *w, uint16_t region,
			  uint64_t first, const uint64_t *hashes, uint64_t n,
			  struct kg_err *e);

struct snap_ram;
/* For restoring into m from the snapshot at path, open as fd (dup'd). */
struct snap_ram *snap_ram_new(const char *path, int fd,
			      const struct guest_mem *m, struct kg_err *e);
void snap_ram_free(struct snap_ram *sr);
/* A RAM section (current in r): checked and skipped unread. */
int snap_ram_region(struct snap_ram *sr, struct kg_stream_reader *r,
		    const struct kg_section *s, struct kg_err *e);
/* A ram-hashes section: its index read and checked, the rest skipped. */
int snap_ram_hashes(struct snap_ram *sr, struct kg_stream_reader *r,
		    const struct kg_section *s, struct kg_err *e);

struct snap_ram_opts {
	unsigned test_prefetch_delay_ms; /* mem_lazy_opts */
};
/* After the last section: brings RAM in — lazily when every region has
 * its hashes (and userfaultfd works here), else copied now and checked.
 * Takes *sr (NULL afterwards, in every case). Errors are whole lines
 * ("snapshot X: ..."). A failure after the guest started stops vm. */
int snap_ram_load(struct snap_ram **sr, struct vm *vm,
		  const struct snap_ram_opts *o, struct kg_err *e);

#endif
