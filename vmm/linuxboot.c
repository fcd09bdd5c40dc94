#include "linuxboot.h"

#include <string.h>

#include "base/le.h"
#include "pvh.h"
#include "abi/kagami_platform.h"

/* Setup header fields (offsets in the file and in the zero page). */
#define H_SETUP_SECTS 0x1f1
#define H_SYSSIZE 0x1f4
#define H_BOOT_FLAG 0x1fe
#define H_JUMP 0x200
#define H_MAGIC 0x202
#define H_VERSION 0x206
#define H_TYPE_OF_LOADER 0x210
#define H_LOADFLAGS 0x211
#define H_CODE32_START 0x214
#define H_RAMDISK_IMAGE 0x218
#define H_RAMDISK_SIZE 0x21c
#define H_HEAP_END_PTR 0x224
#define H_CMD_LINE_PTR 0x228
#define H_INITRD_ADDR_MAX 0x22c
#define H_KERNEL_ALIGNMENT 0x230
#define H_RELOCATABLE 0x234
#define H_XLOADFLAGS 0x236
#define H_CMDLINE_SIZE 0x238
#define H_PREF_ADDRESS 0x258
#define H_INIT_SIZE 0x260
#define H_END_MIN 0x264 /* the fields above must all be present */
/* boot_params outside the setup header. */
#define BP_ACPI_RSDP 0x070
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE 0x0c4
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES 0x1e8
#define BP_E820_TABLE 0x2d0

#define HDRS_MAGIC 0x53726448u /* "HdrS" */
#define LOADED_HIGH 0x01
#define CAN_USE_HEAP 0x80
#define XLF_KERNEL_64 0x01
#define LOADER_UNDEFINED 0xff

bool lb_is_bzimage(const uint8_t *buf, size_t len)
{
	return len >= H_MAGIC + 4 && le16_get(buf + H_BOOT_FLAG) == 0xaa55 &&
	       le32_get(buf + H_MAGIC) == HDRS_MAGIC;
}

int lb_parse(const uint8_t *buf, size_t len, struct lb_image *img,
	     struct kg_err *e)
{
	memset(img, 0, sizeof(*img));
	if (!lb_is_bzimage(buf, len))
		return kg_errf(e, "not a bzImage (no 0xAA55 boot flag and "
			       "\"HdrS\" setup header)");
	if (len < H_VERSION + 2)
		return kg_errf(e, "truncated bzImage: %zu bytes", len);
	img->version = le16_get(buf + H_VERSION);
	if (img->version < LB_MIN_VERSION)
		return kg_errf(e, "boot protocol version %u.%02u is too old "
			       "(kagami needs 2.12, the 64-bit entry point)",
			       img->version >> 8, img->version & 0xff);
	/* The header runs from 0x1f1 to the target of the jump at 0x200. */
	size_t hdr_end = H_JUMP + 2 + buf[H_JUMP + 1];
	if (hdr_end < H_END_MIN || hdr_end > len)
		return kg_errf(e, "bzImage setup header of %zu bytes is %s",
			       hdr_end - H_SETUP_SECTS,
			       hdr_end > len ? "cut short" : "too short "
			       "for its protocol version");
	img->header_len = hdr_end - H_SETUP_SECTS;
	img->setup_sects = buf[H_SETUP_SECTS] ? buf[H_SETUP_SECTS] : 4;
	img->loadflags = buf[H_LOADFLAGS];
	img->xloadflags = le16_get(buf + H_XLOADFLAGS);
	img->cmdline_size = le32_get(buf + H_CMDLINE_SIZE);
	img->initrd_addr_max = le32_get(buf + H_INITRD_ADDR_MAX);
	img->kernel_alignment = le32_get(buf + H_KERNEL_ALIGNMENT);
	img->relocatable = buf[H_RELOCATABLE] != 0;
	img->pref_address = le64_get(buf + H_PREF_ADDRESS);
	img->init_size = le32_get(buf + H_INIT_SIZE);
	if (!(img->xloadflags & XLF_KERNEL_64))
		return kg_errf(e, "the kernel has no 64-bit entry point "
			       "(XLF_KERNEL_64 is not set: a 32-bit kernel)");
	if (!(img->loadflags & LOADED_HIGH))
		return kg_errf(e, "a zImage (loaded low) is not supported");
	img->kernel_offset = ((size_t)img->setup_sects + 1) * 512;
	uint64_t payload = (uint64_t)le32_get(buf + H_SYSSIZE) * 16;
	if (img->kernel_offset >= len || payload > len - img->kernel_offset)
		return kg_errf(e, "truncated bzImage: %zu bytes, the header "
			       "says %llu", len, (unsigned long long)
			       (img->kernel_offset + payload));
	img->kernel_size = len - img->kernel_offset;
	if (img->init_size < img->kernel_size)
		return kg_errf(e, "bzImage init_size %u is smaller than the "
			       "kernel it holds (%zu bytes)", img->init_size,
			       img->kernel_size);
	if (img->relocatable &&
	    (img->kernel_alignment == 0 ||
	     (img->kernel_alignment & (img->kernel_alignment - 1))))
		return kg_errf(e, "bzImage kernel_alignment 0x%x is not a power "
			       "of two", img->kernel_alignment);
	return 0;
}

/* Where the kernel decompresses itself: at its preferred address, or
 * (relocatable) the load address aligned up, whichever is higher. */
static uint64_t run_base(const struct lb_image *img)
{
	uint64_t base = LB_LOAD_ADDR;
	if (img->relocatable)
		base = (base + img->kernel_alignment - 1) &
		       ~(uint64_t)(img->kernel_alignment - 1);
	return img->pref_address > base ? img->pref_address : base;
}

static void write_gdt_and_page_tables(const struct guest_mem *m)
{
	static const uint64_t gdt[] = {
		0, 0,
		0x00af9b000000ffffull, /* 0x10: 64-bit code, DPL 0 */
		0x00cf93000000ffffull, /* 0x18: flat data */
	};
	uint8_t *g = guest_mem_ptr(m, LB_GDT_GPA, sizeof(gdt));
	for (size_t i = 0; i < 4; i++)
		le64_put(g + 8 * i, gdt[i]);
	/* PML4 -> PDPT -> 4 PDs of 2 MiB pages: the first 4 GiB. */
	uint8_t *pt = guest_mem_ptr(m, LB_PML4_GPA, 6 * 4096);
	memset(pt, 0, 6 * 4096);
	uint64_t pdpt = LB_PML4_GPA + 4096, pd = pdpt + 4096;
	le64_put(pt, pdpt | 3);
	for (uint64_t i = 0; i < 4; i++) {
		le64_put(pt + 4096 + 8 * i, (pd + i * 4096) | 3);
		for (uint64_t j = 0; j < 512; j++)
			le64_put(pt + 2 * 4096 + i * 4096 + 8 * j,
				 ((i << 30) | (j << 21)) | 0x83);
	}
}

static void write_e820(const struct guest_mem *m, uint8_t *zp)
{
	struct hvm_memmap_entry map[PVH_MAX_MEMMAP];
	unsigned n = pvh_memmap(m, map);
	for (unsigned i = 0; i < n; i++) {
		uint8_t *ent = zp + BP_E820_TABLE + 20 * i;
		le64_put(ent, map[i].addr);
		le64_put(ent + 8, map[i].size);
		le32_put(ent + 16, map[i].type);
	}
	zp[BP_E820_ENTRIES] = (uint8_t)n;
}

/* The initrd at the top of low RAM, below initrd_addr_max, above what
 * the kernel uses while it decompresses. */
static int place_initrd(const struct guest_mem *m, const struct lb_image *img,
			size_t size, uint64_t *gpa, struct kg_err *e)
{
	uint64_t top = m->regions[0].size;
	if ((uint64_t)img->initrd_addr_max + 1 < top)
		top = (uint64_t)img->initrd_addr_max + 1;
	top &= ~4095ull;
	uint64_t floor = run_base(img) + img->init_size;
	if (size > top || ((top - size) & ~4095ull) < floor)
		return kg_errf(e, "initrd (%zu bytes) does not fit between the "
			       "kernel (up to %llu MiB) and %llu MiB; raise "
			       "--mem", size,
			       (unsigned long long)(floor >> 20),
			       (unsigned long long)(top >> 20));
	*gpa = (top - size) & ~4095ull;
	return 0;
}

int lb_load(const struct guest_mem *m, const struct lb_image *img,
	    const uint8_t *file, const struct lb_params *p,
	    struct lb_boot *out, struct kg_err *e)
{
	uint64_t need = run_base(img) + img->init_size;
	if (need > m->regions[0].size)
		return kg_errf(e, "guest RAM below 3 GiB (%llu MiB) is too small "
			       "for this kernel: it needs %llu MiB to "
			       "decompress", (unsigned long long)
			       (m->regions[0].size >> 20),
			       (unsigned long long)((need + (1 << 20) - 1) >> 20));
	size_t cl = p->cmdline ? strlen(p->cmdline) : 0;
	if (cl > img->cmdline_size || cl >= KAGAMI_CMDLINE_MAX)
		return kg_errf(e, "command line too long (%zu bytes; this "
			       "kernel takes %u)", cl,
			       img->cmdline_size < KAGAMI_CMDLINE_MAX - 1
				       ? img->cmdline_size
				       : KAGAMI_CMDLINE_MAX - 1);
	uint64_t initrd_gpa = 0;
	if (p->initrd && place_initrd(m, img, p->initrd_size, &initrd_gpa, e) < 0)
		return -1;
	uint8_t *kernel = guest_mem_ptr(m, LB_LOAD_ADDR, img->kernel_size);
	uint8_t *zp = guest_mem_ptr(m, LB_ZERO_PAGE_GPA, 4096);
	char *cmd = guest_mem_ptr(m, LB_CMDLINE_GPA, cl + 1);
	if (!kernel || !zp || !cmd)
		return kg_errf(e, "guest RAM too small for the kernel");
	memcpy(kernel, file + img->kernel_offset, img->kernel_size);
	memcpy(cmd, p->cmdline ? p->cmdline : "", cl + 1);
	if (p->initrd)
		memcpy(guest_mem_ptr(m, initrd_gpa, p->initrd_size), p->initrd,
		       p->initrd_size);

	memset(zp, 0, 4096);
	memcpy(zp + H_SETUP_SECTS, file + H_SETUP_SECTS, img->header_len);
	zp[H_TYPE_OF_LOADER] = LOADER_UNDEFINED;
	zp[H_LOADFLAGS] = (uint8_t)(img->loadflags | CAN_USE_HEAP);
	le32_put(zp + H_CODE32_START, (uint32_t)LB_LOAD_ADDR);
	le16_put(zp + H_HEAP_END_PTR, 0xfe00);
	le32_put(zp + H_CMD_LINE_PTR, (uint32_t)LB_CMDLINE_GPA);
	le32_put(zp + BP_EXT_CMD_LINE_PTR, 0);
	le32_put(zp + H_RAMDISK_IMAGE, (uint32_t)initrd_gpa);
	le32_put(zp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(initrd_gpa >> 32));
	le32_put(zp + H_RAMDISK_SIZE, (uint32_t)p->initrd_size);
	le32_put(zp + BP_EXT_RAMDISK_SIZE, (uint32_t)((uint64_t)p->initrd_size >> 32));
	/* Older kernels find the RSDP by scanning 0xe0000-0xfffff. */
	if (img->version >= 0x020e)
		le64_put(zp + BP_ACPI_RSDP, p->rsdp_gpa);
	write_e820(m, zp);
	write_gdt_and_page_tables(m);
	*out = (struct lb_boot){
		.entry = LB_LOAD_ADDR + LB_ENTRY64_OFFSET,
		.zero_page = LB_ZERO_PAGE_GPA,
		.cr3 = LB_PML4_GPA,
		.gdt = LB_GDT_GPA,
		.initrd_gpa = initrd_gpa,
	};
	return 0;
}
