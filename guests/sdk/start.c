/* Ring-3 start: reads the PVH start_info, sets up the allocator, runs main. */
#include "sdk.h"

struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries, reserved;
};
struct hvm_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};
#define HVM_START_MAGIC 0x336ec578u
#define E820_RAM 1u
#define SDK_MAPPED_END 0x100000000ull /* entry.S maps the first 4 GiB */

extern char __image_end[];

struct sdk_heap {
	uint64_t next, end;
};
/* The SDK's only mutable state; a guest is a single program. */
static struct sdk_heap heap;
static const char *cmdline = "";
static const struct hvm_start_info *start_info;

static void heap_init(const struct hvm_start_info *si)
{
	uint64_t lo = ((uint64_t)(uintptr_t)__image_end + 4095) & ~4095ull;
	uint64_t best_start = 0, best_end = 0;

	if (si->version >= 1 && si->memmap_paddr) {
		const struct hvm_memmap_entry *e =
			(const void *)(uintptr_t)si->memmap_paddr;
		for (uint32_t i = 0; i < si->memmap_entries; i++) {
			if (e[i].type != E820_RAM)
				continue;
			uint64_t s = e[i].addr, t = e[i].addr + e[i].size;
			if (s < lo)
				s = lo;
			if (t > SDK_MAPPED_END)
				t = SDK_MAPPED_END;
			if (t > s && t - s > best_end - best_start) {
				best_start = s;
				best_end = t;
			}
		}
	}
	heap.next = best_start;
	heap.end = best_end & ~4095ull;
}

void sdk_user_start(const struct hvm_start_info *si);
void sdk_user_start(const struct hvm_start_info *si)
{
	if (si && si->magic == HVM_START_MAGIC) {
		start_info = si;
		if (si->cmdline_paddr)
			cmdline = (const char *)(uintptr_t)si->cmdline_paddr;
		heap_init(si);
	}
	sdk_exit((unsigned)main(cmdline));
}

const char *sdk_cmdline(void)
{
	return cmdline;
}

struct hvm_modlist_entry {
	uint64_t paddr, size, cmdline_paddr, reserved;
};

uint32_t sdk_module_count(void)
{
	return start_info && start_info->modlist_paddr ? start_info->nr_modules
						       : 0;
}

bool sdk_module(uint32_t i, const void **data, uint64_t *size)
{
	if (i >= sdk_module_count())
		return false;
	const struct hvm_modlist_entry *m =
		(const void *)(uintptr_t)start_info->modlist_paddr;
	*data = (const void *)(uintptr_t)m[i].paddr;
	*size = m[i].size;
	return true;
}

void *sdk_alloc(size_t bytes)
{
	uint64_t n = (bytes + 4095) & ~4095ull;
	if (n < bytes || n > heap.end - heap.next)
		return NULL;
	void *p = (void *)(uintptr_t)heap.next;
	heap.next += n;
	return p;
}

uint64_t sdk_mem_free(void)
{
	return heap.end - heap.next;
}
