#include "pvh.h"

#include <string.h>

#include "abi/kagami_platform.h"

#define MODLIST_GPA (KAGAMI_START_INFO_GPA + 0x40)
#define MEMMAP_GPA (KAGAMI_START_INFO_GPA + 0x100)

unsigned pvh_memmap(const struct guest_mem *m,
		    struct hvm_memmap_entry map[PVH_MAX_MEMMAP])
{
	unsigned n = 0;
	uint64_t low_end = m->regions[0].size;
	map[n++] = (struct hvm_memmap_entry){ 0, KAGAMI_LOW_RAM_END,
					      PVH_E820_RAM, 0 };
	map[n++] = (struct hvm_memmap_entry){
		KAGAMI_LOW_RAM_END, KAGAMI_HIGH_RAM_START - KAGAMI_LOW_RAM_END,
		PVH_E820_RESERVED, 0
	};
	if (low_end > KAGAMI_HIGH_RAM_START)
		map[n++] = (struct hvm_memmap_entry){
			KAGAMI_HIGH_RAM_START, low_end - KAGAMI_HIGH_RAM_START,
			PVH_E820_RAM, 0
		};
	if (m->nregions > 1)
		map[n++] = (struct hvm_memmap_entry){
			m->regions[1].gpa, m->regions[1].size, PVH_E820_RAM, 0
		};
	return n;
}

int pvh_write_start_info(const struct guest_mem *m, const struct pvh_params *p,
			 uint64_t *start_info_gpa, struct kg_err *e)
{
	struct hvm_memmap_entry map[PVH_MAX_MEMMAP];
	unsigned n = pvh_memmap(m, map);
	struct hvm_start_info si = {
		.magic = HVM_START_MAGIC,
		.version = 1,
		.memmap_paddr = MEMMAP_GPA,
		.memmap_entries = n,
		.rsdp_paddr = p->rsdp_gpa,
	};
	size_t cl = p->cmdline ? strlen(p->cmdline) : 0;
	if (cl >= KAGAMI_CMDLINE_MAX)
		return kg_errf(e, "command line too long (%zu bytes, max %u)",
			       cl, KAGAMI_CMDLINE_MAX - 1);
	char *cmd = guest_mem_ptr(m, KAGAMI_CMDLINE_GPA, cl + 1);
	void *sip = guest_mem_ptr(m, KAGAMI_START_INFO_GPA, sizeof(si));
	void *mapp = guest_mem_ptr(m, MEMMAP_GPA, n * sizeof(map[0]));
	void *modp = guest_mem_ptr(m, MODLIST_GPA,
				   sizeof(struct hvm_modlist_entry));
	if (!cmd || !sip || !mapp || !modp)
		return kg_errf(e, "guest RAM too small for boot information");
	memcpy(cmd, p->cmdline ? p->cmdline : "", cl + 1);
	si.cmdline_paddr = KAGAMI_CMDLINE_GPA;
	if (p->initrd_size) {
		struct hvm_modlist_entry mod = { .paddr = p->initrd_gpa,
						 .size = p->initrd_size };
		memcpy(modp, &mod, sizeof(mod));
		si.nr_modules = 1;
		si.modlist_paddr = MODLIST_GPA;
	}
	memcpy(mapp, map, n * sizeof(map[0]));
	memcpy(sip, &si, sizeof(si));
	*start_info_gpa = KAGAMI_START_INFO_GPA;
	return 0;
}

int pvh_place_initrd(const struct guest_mem *m, uint64_t image_end,
		     uint64_t size, uint64_t *gpa, struct kg_err *e)
{
	uint64_t top = m->regions[0].size & ~4095ull;
	if (image_end > top)
		return kg_errf(e, "initrd (%llu bytes) does not fit: the image "
			       "ends above low RAM", (unsigned long long)size);
	uint64_t floor = (image_end + 4095) & ~4095ull;
	if (floor < KAGAMI_HIGH_RAM_START)
		floor = KAGAMI_HIGH_RAM_START;
	if (size > top || top - size < floor || ((top - size) & ~4095ull) < floor)
		return kg_errf(e, "initrd (%llu bytes) does not fit in guest "
			       "RAM below 3 GiB above the image; raise --mem",
			       (unsigned long long)size);
	*gpa = (top - size) & ~4095ull;
	return 0;
}
