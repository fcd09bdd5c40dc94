/*
 * Unit tests for elf_parse() (vmm/elf.h): ELF64 and ELF32 PVH images built
 * in memory, every rejection path, truncation at every length, and the real
 * build/guests/hello.elf when it has been built.
 */
#include <elf.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/elf.h"

#define IMG_CAP 8192u
#define NOTE_OFF 0x800u   /* where the PT_NOTE data lives */
#define LOAD_OFF 0x900u   /* first PT_LOAD's file data */
#define LOAD_STRIDE 0x100u
#define LOAD_FILESZ 0x80u
#define LOAD_MEMSZ 0x1000u /* > filesz: a .bss */
#define LOAD_PADDR 0x100000u
#define LOAD_PSTRIDE 0x10000u
#define ENTRY 0x100040u

struct opts {
	unsigned bits;      /* 32 or 64 */
	unsigned nload;     /* PT_LOAD headers after the PT_NOTE one */
	unsigned descsz;    /* 4 or 8 (anything, for negative tests) */
	uint64_t entry;
};

/* The image: Ehdr | phdrs (PT_NOTE, then nload PT_LOAD) | ... | note at
 * NOTE_OFF | load data at LOAD_OFF + i * LOAD_STRIDE. The file ends exactly
 * at the end of the last segment's data, so any shorter prefix is invalid. */
static size_t ehdr_size(unsigned bits)
{
	return bits == 64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
}

static size_t phdr_size(unsigned bits)
{
	return bits == 64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
}

static void set_phdr(uint8_t *buf, unsigned bits, unsigned i, uint32_t type,
		     uint64_t offset, uint64_t paddr, uint64_t filesz,
		     uint64_t memsz)
{
	size_t off = ehdr_size(bits) + i * phdr_size(bits);
	if (bits == 64) {
		Elf64_Phdr h = {
			.p_type = type, .p_flags = PF_R | PF_W | PF_X,
			.p_offset = offset, .p_vaddr = paddr, .p_paddr = paddr,
			.p_filesz = filesz, .p_memsz = memsz, .p_align = 4,
		};
		memcpy(buf + off, &h, sizeof(h));
	} else {
		Elf32_Phdr h = {
			.p_type = type, .p_flags = PF_R | PF_W | PF_X,
			.p_offset = (Elf32_Off)offset,
			.p_vaddr = (Elf32_Addr)paddr,
			.p_paddr = (Elf32_Addr)paddr,
			.p_filesz = (Elf32_Word)filesz,
			.p_memsz = (Elf32_Word)memsz, .p_align = 4,
		};
		memcpy(buf + off, &h, sizeof(h));
	}
}

/* Writes one note at buf+off; returns its padded size. */
static size_t put_note(uint8_t *buf, size_t off, uint32_t namesz,
		       const char *name, uint32_t descsz, uint32_t type,
		       const void *desc)
{
	memcpy(buf + off, &namesz, 4);
	memcpy(buf + off + 4, &descsz, 4);
	memcpy(buf + off + 8, &type, 4);
	size_t nal = (namesz + 3u) & ~3u, dal = (descsz + 3u) & ~3u;
	memset(buf + off + 12, 0, nal + dal);
	memcpy(buf + off + 12, name, strlen(name) + 1 < namesz
				     ? strlen(name) + 1 : namesz);
	if (desc)
		memcpy(buf + off + 12 + nal, desc, descsz);
	return 12 + nal + dal;
}

static size_t put_xen_note(uint8_t *buf, size_t off, unsigned descsz,
			   uint64_t entry)
{
	uint8_t desc[16] = { 0 };
	if (descsz == 4) {
		uint32_t v = (uint32_t)entry;
		memcpy(desc, &v, 4);
	} else {
		memcpy(desc, &entry, 8);
	}
	return put_note(buf, off, 4, "Xen", descsz, XEN_ELFNOTE_PHYS32_ENTRY,
			desc);
}

static size_t build(uint8_t *buf, const struct opts *o)
{
	memset(buf, 0, IMG_CAP);
	unsigned phnum = o->nload + 1;
	if (o->bits == 64) {
		Elf64_Ehdr h = {
			.e_type = ET_EXEC, .e_machine = EM_X86_64,
			.e_version = EV_CURRENT, .e_entry = o->entry,
			.e_phoff = sizeof(Elf64_Ehdr),
			.e_ehsize = sizeof(Elf64_Ehdr),
			.e_phentsize = sizeof(Elf64_Phdr),
			.e_phnum = (Elf64_Half)phnum,
		};
		memcpy(h.e_ident, ELFMAG, SELFMAG);
		h.e_ident[EI_CLASS] = ELFCLASS64;
		h.e_ident[EI_DATA] = ELFDATA2LSB;
		h.e_ident[EI_VERSION] = EV_CURRENT;
		memcpy(buf, &h, sizeof(h));
	} else {
		Elf32_Ehdr h = {
			.e_type = ET_EXEC, .e_machine = EM_386,
			.e_version = EV_CURRENT, .e_entry = (Elf32_Addr)o->entry,
			.e_phoff = sizeof(Elf32_Ehdr),
			.e_ehsize = sizeof(Elf32_Ehdr),
			.e_phentsize = sizeof(Elf32_Phdr),
			.e_phnum = (Elf32_Half)phnum,
		};
		memcpy(h.e_ident, ELFMAG, SELFMAG);
		h.e_ident[EI_CLASS] = ELFCLASS32;
		h.e_ident[EI_DATA] = ELFDATA2LSB;
		h.e_ident[EI_VERSION] = EV_CURRENT;
		memcpy(buf, &h, sizeof(h));
	}
	assert_true(ehdr_size(o->bits) + phnum * phdr_size(o->bits) <=
		    NOTE_OFF);
	size_t nsz = put_xen_note(buf, NOTE_OFF, o->descsz, o->entry);
	set_phdr(buf, o->bits, 0, PT_NOTE, NOTE_OFF, 0, nsz, nsz);
	size_t end = NOTE_OFF + nsz;
	for (unsigned i = 0; i < o->nload; i++) {
		uint64_t off = LOAD_OFF + i * LOAD_STRIDE;
		assert_true(off + LOAD_FILESZ <= IMG_CAP);
		memset(buf + off, (int)(0xa0 + i), LOAD_FILESZ);
		set_phdr(buf, o->bits, 1 + i, PT_LOAD, off,
			 LOAD_PADDR + i * LOAD_PSTRIDE, LOAD_FILESZ, LOAD_MEMSZ);
		end = off + LOAD_FILESZ;
	}
	return end;
}

static const struct opts std64 = { 64, 2, 4, ENTRY };
static const struct opts std32 = { 32, 2, 4, ENTRY };

static uint8_t img_buf[IMG_CAP];

/* Parses the first len bytes from an exact-size heap copy, so that ASan
 * catches any read past len. */
static int parse_copy(const uint8_t *buf, size_t len, struct elf_image *img,
		      struct kg_err *e)
{
	uint8_t *copy = malloc(len ? len : 1);
	assert_non_null(copy);
	memcpy(copy, buf, len);
	int rc = elf_parse(copy, len, img, e);
	free(copy);
	return rc;
}

/* Expects a failure whose message contains `want`. */
static void expect_fail(const uint8_t *buf, size_t len, const char *want)
{
	struct elf_image img;
	struct kg_err e = { 0 };
	int rc = parse_copy(buf, len, &img, &e);
	if (rc != -1 || !strstr(e.msg, want))
		fail_msg("expected failure containing '%s', got rc %d, '%s'",
			 want, rc, e.msg);
}

static void expect_ok(const uint8_t *buf, size_t len, struct elf_image *img)
{
	struct kg_err e = { 0 };
	int rc = parse_copy(buf, len, img, &e);
	if (rc != 0)
		fail_msg("expected success, got rc %d: '%s'", rc, e.msg);
}

/* --- positive cases --- */

static void check_std(const struct elf_image *img, unsigned bits)
{
	assert_int_equal(img->bits, bits);
	assert_int_equal(img->pvh_entry, ENTRY);
	assert_int_equal(img->nsegs, 2);
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(img->segs[i].paddr,
				 LOAD_PADDR + i * LOAD_PSTRIDE);
		assert_int_equal(img->segs[i].offset, LOAD_OFF + i * LOAD_STRIDE);
		assert_int_equal(img->segs[i].filesz, LOAD_FILESZ);
		assert_int_equal(img->segs[i].memsz, LOAD_MEMSZ);
		assert_true(img->segs[i].memsz > img->segs[i].filesz);
	}
	assert_int_equal(img->lo, LOAD_PADDR);
	assert_int_equal(img->hi, LOAD_PADDR + LOAD_PSTRIDE + LOAD_MEMSZ);
}

static void test_elf64_ok(void **state)
{
	(void)state;
	size_t len = build(img_buf, &std64);
	struct elf_image img;
	expect_ok(img_buf, len, &img);
	check_std(&img, 64);
}

static void test_elf32_ok(void **state)
{
	(void)state;
	size_t len = build(img_buf, &std32);
	struct elf_image img;
	expect_ok(img_buf, len, &img);
	check_std(&img, 32);
}

static void test_desc8_entry_above_4g(void **state)
{
	(void)state;
	struct opts o = std64;
	o.descsz = 8;
	o.entry = 0x123456789abcull;
	size_t len = build(img_buf, &o);
	struct elf_image img;
	expect_ok(img_buf, len, &img);
	assert_int_equal(img.pvh_entry, 0x123456789abcull);

	o = std32;
	o.descsz = 8;
	o.entry = 0x100080;
	len = build(img_buf, &o);
	expect_ok(img_buf, len, &img);
	assert_int_equal(img.bits, 32);
	assert_int_equal(img.pvh_entry, 0x100080);
}

static void test_desc4_zero_extends(void **state)
{
	(void)state;
	struct opts o = std64;
	o.entry = 0xfffffff0u; /* top bit set: must not sign-extend */
	size_t len = build(img_buf, &o);
	struct elf_image img;
	expect_ok(img_buf, len, &img);
	assert_int_equal(img.pvh_entry, 0xfffffff0ull);
}

/* Segments listed out of address order: lo is the minimum, hi the maximum
 * end, whatever the order. */
static void test_lo_hi_unordered(void **state)
{
	(void)state;
	struct opts o = std64;
	o.nload = 3;
	size_t len = build(img_buf, &o);
	set_phdr(img_buf, 64, 1, PT_LOAD, LOAD_OFF, 0x400000, LOAD_FILESZ,
		 0x2000);
	set_phdr(img_buf, 64, 2, PT_LOAD, LOAD_OFF + LOAD_STRIDE, 0x200000,
		 LOAD_FILESZ, LOAD_FILESZ);
	set_phdr(img_buf, 64, 3, PT_LOAD, LOAD_OFF + 2 * LOAD_STRIDE,
		 0x300000, 0, 0x10000); /* pure bss */
	struct elf_image img;
	expect_ok(img_buf, len, &img);
	assert_int_equal(img.nsegs, 3);
	assert_int_equal(img.lo, 0x200000);
	assert_int_equal(img.hi, 0x402000);
	assert_int_equal(img.segs[2].filesz, 0);
	assert_int_equal(img.segs[2].memsz, 0x10000);
}

/* Headers other than PT_LOAD/PT_NOTE are ignored even with bogus offsets;
 * empty PT_LOADs (memsz 0) are skipped. */
static void test_ignored_headers(void **state)
{
	(void)state;
	struct opts o = std64;
	o.nload = 3;
	size_t len = build(img_buf, &o);
	set_phdr(img_buf, 64, 2, PT_GNU_STACK, UINT64_MAX, UINT64_MAX,
		 UINT64_MAX, UINT64_MAX);
	set_phdr(img_buf, 64, 3, PT_LOAD, LOAD_OFF + 2 * LOAD_STRIDE,
		 0x900000, 0, 0);
	struct elf_image img;
	expect_ok(img_buf, len, &img);
	assert_int_equal(img.nsegs, 1);
	assert_int_equal(img.lo, LOAD_PADDR);
	assert_int_equal(img.hi, LOAD_PADDR + LOAD_MEMSZ);
}

/* The Xen note after another note in the same PT_NOTE, and other Xen note
 * types, are handled. */
static void test_note_among_others(void **state)
{
	(void)state;
	size_t len = build(img_buf, &std64);
	uint8_t buildid[20];
	memset(buildid, 0x5a, sizeof(buildid));
	uint32_t xen_entry = 0xdead; /* XEN_ELFNOTE_ENTRY (1): not ours */
	size_t off = NOTE_OFF;
	off += put_note(img_buf, off, 4, "GNU", sizeof(buildid), 3, buildid);
	off += put_note(img_buf, off, 4, "Xen", 4, 1, &xen_entry);
	/* name "Xen" with type 18 but namesz 5: not the PVH note either */
	off += put_note(img_buf, off, 5, "Xen", 4, XEN_ELFNOTE_PHYS32_ENTRY,
			&xen_entry);
	off += put_xen_note(img_buf, off, 4, 0x100020);
	assert_true(off <= LOAD_OFF);
	set_phdr(img_buf, 64, 0, PT_NOTE, NOTE_OFF, 0, off - NOTE_OFF,
		 off - NOTE_OFF);
	struct elf_image img;
	expect_ok(img_buf, len, &img);
	assert_int_equal(img.pvh_entry, 0x100020);
}

/* The entry note may be in a later PT_NOTE segment; the first found wins. */
static void test_note_in_second_segment(void **state)
{
	(void)state;
	struct opts o = std64;
	o.nload = 4;
	size_t len = build(img_buf, &o);
	/* phdr 0: a PT_NOTE with only a GNU note */
	uint8_t desc[4] = { 1, 2, 3, 4 };
	size_t gsz = put_note(img_buf, NOTE_OFF, 4, "GNU", 4, 1, desc);
	set_phdr(img_buf, 64, 0, PT_NOTE, NOTE_OFF, 0, gsz, gsz);
	/* phdr 2: a PT_NOTE with the entry; phdr 3: another one, ignored */
	size_t xsz = put_xen_note(img_buf, NOTE_OFF + 0x40, 4, 0x100010);
	set_phdr(img_buf, 64, 2, PT_NOTE, NOTE_OFF + 0x40, 0, xsz, xsz);
	xsz = put_xen_note(img_buf, NOTE_OFF + 0x80, 8, 0x100030);
	set_phdr(img_buf, 64, 3, PT_NOTE, NOTE_OFF + 0x80, 0, xsz, xsz);
	struct elf_image img;
	expect_ok(img_buf, len, &img);
	assert_int_equal(img.pvh_entry, 0x100010);
	assert_int_equal(img.nsegs, 2);
	assert_int_equal(img.segs[0].paddr, LOAD_PADDR);
	assert_int_equal(img.segs[1].paddr, LOAD_PADDR + 3 * LOAD_PSTRIDE);
}

static void test_max_load_segments(void **state)
{
	(void)state;
	struct opts o = std64;
	o.nload = ELF_MAX_LOAD_SEGMENTS;
	size_t len = build(img_buf, &o);
	struct elf_image img;
	expect_ok(img_buf, len, &img);
	assert_int_equal(img.nsegs, ELF_MAX_LOAD_SEGMENTS);
	assert_int_equal(img.hi, LOAD_PADDR +
			 (ELF_MAX_LOAD_SEGMENTS - 1) * LOAD_PSTRIDE + LOAD_MEMSZ);
}

/* --- negative cases --- */

static void test_bad_magic(void **state)
{
	(void)state;
	size_t len = build(img_buf, &std64);
	img_buf[1] = 'X';
	expect_fail(img_buf, len, "not an ELF");
	build(img_buf, &std64);
	img_buf[0] = 0;
	expect_fail(img_buf, len, "not an ELF");
	static const uint8_t text[] = "#!/bin/sh\necho this is not an ELF\n";
	expect_fail(text, sizeof(text), "not an ELF");
}

static void test_empty_and_short(void **state)
{
	(void)state;
	struct elf_image img;
	struct kg_err e = { 0 };
	assert_int_equal(elf_parse(NULL, 0, &img, &e), -1);
	assert_non_null(strstr(e.msg, "not an ELF"));
	size_t len = build(img_buf, &std64);
	(void)len;
	expect_fail(img_buf, 0, "not an ELF");
	expect_fail(img_buf, 4, "not an ELF");   /* magic alone */
	expect_fail(img_buf, EI_NIDENT - 1, "not an ELF");
	expect_fail(img_buf, EI_NIDENT, "truncated");
	expect_fail(img_buf, sizeof(Elf64_Ehdr) - 1, "truncated");
	build(img_buf, &std32);
	expect_fail(img_buf, sizeof(Elf32_Ehdr) - 1, "truncated");
	/* a whole header but no room for the program headers */
	expect_fail(img_buf, sizeof(Elf32_Ehdr), "truncated");
}

static void test_bad_class(void **state)
{
	(void)state;
	size_t len = build(img_buf, &std64);
	img_buf[EI_CLASS] = ELFCLASSNONE;
	expect_fail(img_buf, len, "unsupported ELF class");
	img_buf[EI_CLASS] = 3;
	expect_fail(img_buf, len, "unsupported ELF class");
}

static void test_bad_endianness(void **state)
{
	(void)state;
	size_t len = build(img_buf, &std64);
	img_buf[EI_DATA] = ELFDATA2MSB;
	expect_fail(img_buf, len, "little-endian");
	img_buf[EI_DATA] = ELFDATANONE;
	expect_fail(img_buf, len, "little-endian");
	len = build(img_buf, &std32);
	img_buf[EI_DATA] = ELFDATA2MSB;
	expect_fail(img_buf, len, "little-endian");
}

static void set_half(uint8_t *buf, size_t off, uint16_t v)
{
	memcpy(buf + off, &v, 2);
}

static void test_et_dyn(void **state)
{
	(void)state;
	size_t len = build(img_buf, &std64);
	set_half(img_buf, offsetof(Elf64_Ehdr, e_type), ET_DYN);
	expect_fail(img_buf, len, "ET_EXEC");
	set_half(img_buf, offsetof(Elf64_Ehdr, e_type), ET_REL);
	expect_fail(img_buf, len, "unsupported ELF type");
	len = build(img_buf, &std32);
	set_half(img_buf, offsetof(Elf32_Ehdr, e_type), ET_DYN);
	expect_fail(img_buf, len, "unsupported ELF type 3");
}

static void test_wrong_machine(void **state)
{
	(void)state;
	size_t len = build(img_buf, &std64);
	set_half(img_buf, offsetof(Elf64_Ehdr, e_machine), EM_AARCH64);
	expect_fail(img_buf, len, "machine");
	len = build(img_buf, &std32);
	set_half(img_buf, offsetof(Elf32_Ehdr, e_machine), EM_ARM);
	expect_fail(img_buf, len, "need x86");
}

static void test_no_program_headers(void **state)
{
	(void)state;
	size_t len = build(img_buf, &std64);
	set_half(img_buf, offsetof(Elf64_Ehdr, e_phnum), 0);
	expect_fail(img_buf, len, "no program headers");
	len = build(img_buf, &std32);
	set_half(img_buf, offsetof(Elf32_Ehdr, e_phnum), 0);
	expect_fail(img_buf, len, "no program headers");
}

static void test_bad_phentsize(void **state)
{
	(void)state;
	size_t len = build(img_buf, &std64);
	set_half(img_buf, offsetof(Elf64_Ehdr, e_phentsize),
		 sizeof(Elf32_Phdr));
	expect_fail(img_buf, len, "program header size");
	len = build(img_buf, &std32);
	set_half(img_buf, offsetof(Elf32_Ehdr, e_phentsize),
		 sizeof(Elf64_Phdr));
	expect_fail(img_buf, len, "program header size");
	set_half(img_buf, offsetof(Elf32_Ehdr, e_phentsize), 0);
	expect_fail(img_buf, len, "program header size");
}

static void test_phdrs_past_end(void **state)
{
	(void)state;
	size_t len = build(img_buf, &std64);
	uint64_t off64 = len; /* program headers start at the end of file */
	memcpy(img_buf + offsetof(Elf64_Ehdr, e_phoff), &off64, 8);
	expect_fail(img_buf, len, "truncated");
	off64 = UINT64_MAX - 8; /* would wrap when adding the size */
	memcpy(img_buf + offsetof(Elf64_Ehdr, e_phoff), &off64, 8);
	expect_fail(img_buf, len, "program header");
	/* the last of many headers past the end */
	build(img_buf, &std64);
	set_half(img_buf, offsetof(Elf64_Ehdr, e_phnum), 0xffff);
	expect_fail(img_buf, len, "past end of file");

	len = build(img_buf, &std32);
	uint32_t off32 = 0xfffffff0u;
	memcpy(img_buf + offsetof(Elf32_Ehdr, e_phoff), &off32, 4);
	expect_fail(img_buf, len, "truncated");
}

static void test_segment_past_end(void **state)
{
	(void)state;
	size_t len = build(img_buf, &std64);
	/* file cut one byte short of the last segment's data */
	expect_fail(img_buf, len - 1, "truncated");
	/* offset beyond the file */
	set_phdr(img_buf, 64, 1, PT_LOAD, len + 1, LOAD_PADDR, 0, LOAD_MEMSZ);
	expect_fail(img_buf, len, "past end of file");
	/* offset + filesz wraps */
	set_phdr(img_buf, 64, 1, PT_LOAD, 16, LOAD_PADDR, UINT64_MAX - 8,
		 UINT64_MAX - 8);
	expect_fail(img_buf, len, "truncated");
	/* a PT_NOTE past the end */
	build(img_buf, &std64);
	set_phdr(img_buf, 64, 0, PT_NOTE, len - 4, 0, 20, 20);
	expect_fail(img_buf, len, "truncated");

	len = build(img_buf, &std32);
	set_phdr(img_buf, 32, 2, PT_LOAD, LOAD_OFF, LOAD_PADDR, len, len);
	expect_fail(img_buf, len, "truncated");
}

static void test_filesz_gt_memsz(void **state)
{
	(void)state;
	size_t len = build(img_buf, &std64);
	set_phdr(img_buf, 64, 1, PT_LOAD, LOAD_OFF, LOAD_PADDR, LOAD_FILESZ,
		 LOAD_FILESZ - 1);
	expect_fail(img_buf, len, "file size exceeds memory size");
	len = build(img_buf, &std32);
	set_phdr(img_buf, 32, 2, PT_LOAD, LOAD_OFF, LOAD_PADDR, LOAD_FILESZ,
		 1);
	expect_fail(img_buf, len, "file size exceeds memory size");
}

static void test_address_overflow(void **state)
{
	(void)state;
	size_t len = build(img_buf, &std64);
	set_phdr(img_buf, 64, 1, PT_LOAD, LOAD_OFF, UINT64_MAX - 0x10,
		 LOAD_FILESZ, LOAD_MEMSZ);
	expect_fail(img_buf, len, "address overflow");
	/* ends exactly at 2^64: hi would wrap to 0 */
	set_phdr(img_buf, 64, 1, PT_LOAD, LOAD_OFF, 0ull - LOAD_MEMSZ,
		 LOAD_FILESZ, LOAD_MEMSZ);
	expect_fail(img_buf, len, "overflow");
	/* huge memsz */
	set_phdr(img_buf, 64, 1, PT_LOAD, LOAD_OFF, LOAD_PADDR, LOAD_FILESZ,
		 UINT64_MAX);
	expect_fail(img_buf, len, "overflow");
	/* one byte below the wrap is fine */
	set_phdr(img_buf, 64, 1, PT_LOAD, LOAD_OFF, UINT64_MAX - LOAD_MEMSZ,
		 LOAD_FILESZ, LOAD_MEMSZ);
	struct elf_image img;
	expect_ok(img_buf, len, &img);
	assert_int_equal(img.hi, UINT64_MAX);
}

static void test_too_many_load_segments(void **state)
{
	(void)state;
	struct opts o = std64;
	o.nload = ELF_MAX_LOAD_SEGMENTS + 1;
	size_t len = build(img_buf, &o);
	expect_fail(img_buf, len, "too many ELF load segments");
	o = std32;
	o.nload = ELF_MAX_LOAD_SEGMENTS + 1;
	len = build(img_buf, &o);
	expect_fail(img_buf, len, "too many");
}

static void test_no_loadable_segments(void **state)
{
	(void)state;
	struct opts o = std64;
	o.nload = 0;
	size_t len = build(img_buf, &o);
	/* the file must still cover the note */
	expect_fail(img_buf, len, "no loadable segments");
}

static void test_no_pvh_note(void **state)
{
	(void)state;
	const char *want = "no PVH entry note";
	/* no PT_NOTE at all */
	size_t len = build(img_buf, &std64);
	set_phdr(img_buf, 64, 0, PT_NULL, 0, 0, 0, 0);
	expect_fail(img_buf, len, want);
	/* wrong note type */
	build(img_buf, &std64);
	uint32_t type = 17;
	memcpy(img_buf + NOTE_OFF + 8, &type, 4);
	expect_fail(img_buf, len, want);
	/* wrong owner name */
	build(img_buf, &std64);
	img_buf[NOTE_OFF + 12 + 2] = 'm';
	expect_fail(img_buf, len, want);
	/* empty PT_NOTE */
	build(img_buf, &std64);
	set_phdr(img_buf, 64, 0, PT_NOTE, NOTE_OFF, 0, 0, 0);
	expect_fail(img_buf, len, want);
	/* PT_NOTE shorter than a note header: ignored, not read */
	set_phdr(img_buf, 64, 0, PT_NOTE, NOTE_OFF, 0, 11, 11);
	expect_fail(img_buf, len, want);
	/* the ELF32 form */
	len = build(img_buf, &std32);
	set_phdr(img_buf, 32, 0, PT_LOAD, 0, 0, 0, 0);
	expect_fail(img_buf, len, "XEN_ELFNOTE_PHYS32_ENTRY");
}

static void test_malformed_note(void **state)
{
	(void)state;
	const char *want = "malformed ELF note";
	size_t len = build(img_buf, &std64);
	uint32_t v;
	/* namesz past the segment */
	v = 0x1000;
	memcpy(img_buf + NOTE_OFF, &v, 4);
	expect_fail(img_buf, len, want);
	v = UINT32_MAX; /* rounds up past 2^32 */
	memcpy(img_buf + NOTE_OFF, &v, 4);
	expect_fail(img_buf, len, want);
	/* descsz past the segment */
	build(img_buf, &std64);
	v = 0x1000;
	memcpy(img_buf + NOTE_OFF + 4, &v, 4);
	expect_fail(img_buf, len, want);
	v = UINT32_MAX;
	memcpy(img_buf + NOTE_OFF + 4, &v, 4);
	expect_fail(img_buf, len, want);
	/* segment cuts the descriptor short (20-byte note, 18-byte segment) */
	build(img_buf, &std64);
	set_phdr(img_buf, 64, 0, PT_NOTE, NOTE_OFF, 0, 18, 18);
	expect_fail(img_buf, len, want);
	/* segment cuts the name short */
	set_phdr(img_buf, 64, 0, PT_NOTE, NOTE_OFF, 0, 13, 13);
	expect_fail(img_buf, len, want);
	/* a malformed unrelated note before the Xen one */
	build(img_buf, &std64);
	size_t gsz = put_note(img_buf, NOTE_OFF, 4, "GNU", 4, 1, "abcd");
	put_xen_note(img_buf, NOTE_OFF + gsz, 4, ENTRY);
	v = 0x200;
	memcpy(img_buf + NOTE_OFF + 4, &v, 4);
	set_phdr(img_buf, 64, 0, PT_NOTE, NOTE_OFF, 0, gsz + 20, gsz + 20);
	expect_fail(img_buf, len, want);
}

static void test_bad_descsz(void **state)
{
	(void)state;
	static const unsigned sizes[] = { 0, 1, 2, 3, 5, 12, 16 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct opts o = std64;
		o.descsz = sizes[i];
		size_t len = build(img_buf, &o);
		char want[64];
		snprintf(want, sizeof(want), "descriptor size %u", sizes[i]);
		expect_fail(img_buf, len, want);
		expect_fail(img_buf, len, "expected 4 or 8");
	}
}

static void test_null_err(void **state)
{
	(void)state;
	struct elf_image img;
	size_t len = build(img_buf, &std64);
	assert_int_equal(elf_parse(img_buf, len, &img, NULL), 0);
	img_buf[0] = 0;
	assert_int_equal(elf_parse(img_buf, len, &img, NULL), -1);
	build(img_buf, &std64);
	assert_int_equal(elf_parse(img_buf, len - 1, &img, NULL), -1);
}

/* --- truncation at every length --- */

static void truncate_all(const uint8_t *buf, size_t full, size_t min_ok)
{
	for (size_t len = 0; len <= full; len++) {
		struct elf_image img;
		struct kg_err e;
		memset(e.msg, 0, sizeof(e.msg));
		int rc = parse_copy(buf, len, &img, &e);
		if (rc == 0) {
			if (len < min_ok)
				fail_msg("length %zu (< %zu) parsed", len,
					 min_ok);
			continue;
		}
		if (rc != -1)
			fail_msg("length %zu: rc %d", len, rc);
		if (len >= min_ok)
			fail_msg("length %zu (full %zu) failed: %s", len, full,
				 e.msg);
		if (!e.msg[0] || !memchr(e.msg, '\0', sizeof(e.msg)))
			fail_msg("length %zu: empty or unterminated message",
				 len);
	}
}

static void test_truncate_every_length(void **state)
{
	(void)state;
	static uint8_t b[IMG_CAP];
	size_t len = build(b, &std64);
	truncate_all(b, len, len);
	len = build(b, &std32);
	truncate_all(b, len, len);
	struct opts o = std64;
	o.descsz = 8;
	o.nload = ELF_MAX_LOAD_SEGMENTS;
	len = build(b, &o);
	truncate_all(b, len, len);
}

/* --- the real guest image --- */

static uint8_t *read_whole(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	uint8_t *buf = NULL;
	size_t cap = 0, n = 0;
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			uint8_t *nb = realloc(buf, cap);
			assert_non_null(nb);
			buf = nb;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		if (r == 0)
			break;
		n += r;
	}
	fclose(f);
	*len = n;
	return buf;
}

/* Tries $KAGAMI_HELLO_ELF, then the path relative to the working directory
 * (the repository root under `make test`), then next to this binary
 * (build/tests/ -> build/guests/), then relative to this source. */
static uint8_t *load_hello(size_t *len)
{
	const char *env = getenv("KAGAMI_HELLO_ELF");
	if (env && *env)
		return read_whole(env, len);
	uint8_t *b = read_whole("build/guests/hello.elf", len);
	if (b)
		return b;
	char path[4096];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
	if (n > 0) {
		path[n] = '\0';
		char *slash = strrchr(path, '/');
		if (slash && (size_t)(slash - path) + 24 < sizeof(path)) {
			strcpy(slash, "/../guests/hello.elf");
			b = read_whole(path, len);
			if (b)
				return b;
		}
	}
	const char *src = __FILE__, *cut = strstr(src, "tests/unit/");
	if (cut) {
		snprintf(path, sizeof(path), "%.*sbuild/guests/hello.elf",
			 (int)(cut - src), src);
		return read_whole(path, len);
	}
	return NULL;
}

static void test_entry_in_segment(void **state)
{
	(void)state;
	struct elf_image img;
	struct kg_err e = { .msg = "" };
	size_t len = build(img_buf, &std64);
	expect_ok(img_buf, len, &img);
	/* ENTRY lies in the first segment's file bytes. */
	assert_int_equal(elf_check_entry(&img, &e), 0);
	assert_false(img.ring3); /* no KAGAMI note: not an SDK guest */
	/* The first and last file-backed bytes count, bss does not. */
	img.pvh_entry = LOAD_PADDR;
	assert_int_equal(elf_check_entry(&img, &e), 0);
	img.pvh_entry = LOAD_PADDR + LOAD_FILESZ - 1;
	assert_int_equal(elf_check_entry(&img, &e), 0);
	img.pvh_entry = LOAD_PADDR + LOAD_FILESZ;
	assert_int_equal(elf_check_entry(&img, &e), -1);
	assert_non_null(strstr(e.msg, "outside every loaded segment"));
	img.pvh_entry = LOAD_PADDR - 1;
	assert_int_equal(elf_check_entry(&img, &e), -1);
	struct opts o = std64;
	o.entry = 0xfffffff0u;
	len = build(img_buf, &o);
	expect_ok(img_buf, len, &img);
	assert_int_equal(elf_check_entry(&img, &e), -1);
	assert_non_null(strstr(e.msg, "0xfffffff0"));
}

static void test_real_hello_elf(void **state)
{
	(void)state;
	size_t len = 0;
	uint8_t *buf = load_hello(&len);
	if (!buf) {
		print_message("build/guests/hello.elf not found: skipped\n");
		skip();
	}
	struct elf_image img;
	struct kg_err e = { 0 };
	int rc = elf_parse(buf, len, &img, &e);
	if (rc != 0) {
		free(buf);
		fail_msg("hello.elf: %s", e.msg);
	}
	assert_int_equal(img.bits, 64);
	assert_true(img.nsegs >= 1);
	assert_true(img.lo < img.hi);
	assert_true(img.ring3); /* the SDK's KAGAMI note */
	int inside = 0;
	for (unsigned i = 0; i < img.nsegs; i++) {
		const struct elf_segment *s = &img.segs[i];
		assert_true(s->filesz <= s->memsz);
		assert_true(s->offset + s->filesz <= len);
		assert_true(s->paddr >= img.lo && s->paddr + s->memsz <= img.hi);
		if (img.pvh_entry >= s->paddr &&
		    img.pvh_entry < s->paddr + s->filesz)
			inside = 1;
	}
	assert_true(inside);
	/* every prefix of the real file shorter than what its program
	 * headers cover fails cleanly; that prefix itself parses */
	Elf64_Ehdr h;
	memcpy(&h, buf, sizeof(h));
	size_t need = h.e_phoff + (size_t)h.e_phnum * sizeof(Elf64_Phdr);
	for (unsigned i = 0; i < h.e_phnum; i++) {
		Elf64_Phdr p;
		memcpy(&p, buf + h.e_phoff + i * sizeof(p), sizeof(p));
		if ((p.p_type == PT_LOAD || p.p_type == PT_NOTE) &&
		    p.p_offset + p.p_filesz > need)
			need = p.p_offset + p.p_filesz;
	}
	assert_true(need <= len);
	truncate_all(buf, need, need);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_elf64_ok),
		cmocka_unit_test(test_elf32_ok),
		cmocka_unit_test(test_desc8_entry_above_4g),
		cmocka_unit_test(test_desc4_zero_extends),
		cmocka_unit_test(test_lo_hi_unordered),
		cmocka_unit_test(test_ignored_headers),
		cmocka_unit_test(test_note_among_others),
		cmocka_unit_test(test_note_in_second_segment),
		cmocka_unit_test(test_max_load_segments),
		cmocka_unit_test(test_bad_magic),
		cmocka_unit_test(test_empty_and_short),
		cmocka_unit_test(test_bad_class),
		cmocka_unit_test(test_bad_endianness),
		cmocka_unit_test(test_et_dyn),
		cmocka_unit_test(test_wrong_machine),
		cmocka_unit_test(test_no_program_headers),
		cmocka_unit_test(test_bad_phentsize),
		cmocka_unit_test(test_phdrs_past_end),
		cmocka_unit_test(test_segment_past_end),
		cmocka_unit_test(test_filesz_gt_memsz),
		cmocka_unit_test(test_address_overflow),
		cmocka_unit_test(test_too_many_load_segments),
		cmocka_unit_test(test_no_loadable_segments),
		cmocka_unit_test(test_no_pvh_note),
		cmocka_unit_test(test_malformed_note),
		cmocka_unit_test(test_bad_descsz),
		cmocka_unit_test(test_null_err),
		cmocka_unit_test(test_truncate_every_length),
		cmocka_unit_test(test_entry_in_segment),
		cmocka_unit_test(test_real_hello_elf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
