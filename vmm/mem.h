/*
 * Guest RAM: one memfd (so later modes can snapshot it, share it with a
 * receiver or load a restored one lazily: mem_lazy.h) split into KVM
 * slots around the MMIO hole: [0, min(size, 3 GiB)) and, past 3 GiB of
 * RAM, [4 GiB, ...).
 *
 * guest_mem_ptr() is the one bounds check for guest-physical accesses by
 * the VMM: it returns NULL unless [gpa, gpa+len) lies inside one region.
 */
#ifndef KG_MEM_H
#define KG_MEM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"

#define GUEST_MEM_MAX_REGIONS 2
#define GUEST_MEM_MIN_SIZE (2ull << 20)
#define GUEST_MEM_MAX_SIZE (1ull << 40)

struct guest_mem_region {
	uint64_t gpa, size, offset; /* offset into the memfd */
	uint8_t *hva;
};

struct guest_mem {
	int fd;
	uint64_t size;
	uint8_t *base; /* mapping of the whole memfd */
	/* Pages the VMM itself wrote (device DMA through the input gate),
	 * one bit per 4 KiB page of the memfd: KVM's dirty log does not see
	 * these writes, checkpoints need both. */
	_Atomic uint64_t *vmm_dirty;
	/* Loading lazily from a snapshot (mem_lazy.h), or NULL. */
	struct mem_lazy *lazy;
	bool dirty_logging; /* KVM dirty log on: kept when slots re-register */
	unsigned nregions;
	struct guest_mem_region regions[GUEST_MEM_MAX_REGIONS];
};

/* Pure: the region layout for `size` bytes of RAM (no fd, no mapping). */
void guest_mem_layout(uint64_t size, struct guest_mem *m);
/* Pure: 0 if `size` is a valid RAM size, else -1 naming the limits. */
int guest_mem_check_size(uint64_t size, struct kg_err *e);
int guest_mem_init(struct guest_mem *m, uint64_t size, struct kg_err *e);
void guest_mem_destroy(struct guest_mem *m);
/* Zeroes all RAM and returns its pages to the host (a lazy load stops
 * first). */
int guest_mem_clear(struct guest_mem *m, struct kg_err *e);
/* Pure: whether [gpa, gpa+len) lies inside one RAM region. */
bool guest_mem_contains(const struct guest_mem *m, uint64_t gpa, uint64_t len);
void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len);
/* Marks [gpa, gpa+len) in the VMM dirty bitmap (gpa must be in RAM). */
void guest_mem_mark_dirty(struct guest_mem *m, uint64_t gpa, uint64_t len);
/* Copies the VMM dirty bitmap into `out` (size / 4 KiB bits) and clears
 * it; returns the number of dirty pages. */
uint64_t guest_mem_take_dirty(struct guest_mem *m, uint64_t *out);

/* Registers the regions as KVM memory slots 0..n-1, with KVM's dirty
 * logging on or off (turning it on starts with a clean log). */
int guest_mem_register(const struct guest_mem *m, int vm_fd, struct kg_err *e);
int guest_mem_dirty_log(struct guest_mem *m, int vm_fd, bool on,
			struct kg_err *e);
/* ORs KVM's dirty log (fetched and cleared) into `bits`, indexed by page
 * of the memfd like guest_mem_take_dirty. */
int guest_mem_fetch_kvm_dirty(const struct guest_mem *m, int vm_fd,
			      uint64_t *bits, struct kg_err *e);
/* The dirty set since the last call: the VMM's own writes (taken) united
 * with KVM's log (fetched and cleared), into bits; *npages counts it
 * (may be NULL). */
int guest_mem_collect_dirty(struct guest_mem *m, int vm_fd, uint64_t *bits,
			    uint64_t *npages, struct kg_err *e);
/* XXH3 of memfd pages [first, first+n) into out (pages past the end are
 * left alone); pages in holes of the memfd hash as zero pages without
 * being touched. Returns how many pages held data. */
uint64_t guest_mem_page_hashes(const struct guest_mem *m, uint64_t first,
			       uint64_t n, uint64_t *out);
/* Copies src's written pages (not its holes) into dst at the same
 * offsets: a lockstep replica's RAM into the VM of the next session. */
void guest_mem_copy_data(struct guest_mem *dst, const struct guest_mem *src);
/* Words of a page bitmap covering all RAM. */
static inline uint64_t guest_mem_bitmap_words(const struct guest_mem *m)
{
	return (m->size / 4096 + 63) / 64;
}

#endif
