#include "elf.h"

#include "abi/kagami_platform.h"

#include <elf.h>
#include <string.h>

/* Field readers that work for both classes, from a bounds-checked copy. */
struct phdr {
	uint32_t type;
	uint64_t offset, paddr, filesz, memsz;
};

static int read_phdr(const uint8_t *buf, size_t len, unsigned bits,
		     uint64_t off, struct phdr *p, struct kg_err *e)
{
	size_t sz = bits == 64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
	if (off > len || sz > len - off)
		return kg_errf(e, "truncated ELF: program header at offset "
			       "%llu past end of file (%zu bytes)",
			       (unsigned long long)off, len);
	if (bits == 64) {
		Elf64_Phdr h;
		memcpy(&h, buf + off, sizeof(h));
		*p = (struct phdr){ h.p_type, h.p_offset, h.p_paddr,
				    h.p_filesz, h.p_memsz };
	} else {
		Elf32_Phdr h;
		memcpy(&h, buf + off, sizeof(h));
		*p = (struct phdr){ h.p_type, h.p_offset, h.p_paddr,
				    h.p_filesz, h.p_memsz };
	}
	return 0;
}

/* Scans one PT_NOTE segment for the PVH entry; returns 1 if found. */
/* Walks one PT_NOTE segment: the PVH entry (the first one found in the
 * file counts; returns 1 once there is one) and kagami's ring-3 note. */
static int scan_notes(const uint8_t *n, uint64_t size, struct elf_image *img,
		      bool have_entry, struct kg_err *e)
{
	uint64_t off = 0;
	int found = have_entry;
	while (size - off >= 12) {
		uint32_t namesz, descsz, type;
		memcpy(&namesz, n + off, 4);
		memcpy(&descsz, n + off + 4, 4);
		memcpy(&type, n + off + 8, 4);
		off += 12;
		uint64_t name_al = ((uint64_t)namesz + 3) & ~3ull;
		uint64_t desc_al = ((uint64_t)descsz + 3) & ~3ull;
		if (name_al > size - off || desc_al > size - off - name_al)
			return kg_errf(e, "malformed ELF note: name/desc size "
				       "past the end of its PT_NOTE segment");
		const uint8_t *name = n + off, *desc = n + off + name_al;
		off += name_al + desc_al;
		if (type == KAGAMI_ELFNOTE_RING3 && namesz == 7 &&
		    !memcmp(name, "KAGAMI", 7)) {
			img->ring3 = true;
			continue;
		}
		if (found || type != XEN_ELFNOTE_PHYS32_ENTRY || namesz != 4 ||
		    memcmp(name, "Xen", 4) != 0)
			continue;
		if (descsz == 4) {
			uint32_t v;
			memcpy(&v, desc, 4);
			img->pvh_entry = v;
		} else if (descsz == 8) {
			memcpy(&img->pvh_entry, desc, 8);
		} else {
			return kg_errf(e, "malformed PVH entry note: descriptor "
				       "size %u (expected 4 or 8)", descsz);
		}
		found = 1;
	}
	return found;
}

int elf_parse(const uint8_t *buf, size_t len, struct elf_image *img,
	      struct kg_err *e)
{
	memset(img, 0, sizeof(*img));
	if (len < EI_NIDENT || memcmp(buf, ELFMAG, SELFMAG) != 0)
		return kg_errf(e, "not an ELF file (bad magic)");
	if (buf[EI_CLASS] != ELFCLASS32 && buf[EI_CLASS] != ELFCLASS64)
		return kg_errf(e, "unsupported ELF class %u", buf[EI_CLASS]);
	if (buf[EI_DATA] != ELFDATA2LSB)
		return kg_errf(e, "unsupported ELF: not little-endian");
	img->bits = buf[EI_CLASS] == ELFCLASS64 ? 64 : 32;

	uint16_t type, machine, phentsize, phnum;
	uint64_t phoff;
	if (img->bits == 64) {
		Elf64_Ehdr h;
		if (len < sizeof(h))
			return kg_errf(e, "truncated ELF header (%zu bytes)",
				       len);
		memcpy(&h, buf, sizeof(h));
		type = h.e_type, machine = h.e_machine;
		phentsize = h.e_phentsize, phnum = h.e_phnum, phoff = h.e_phoff;
	} else {
		Elf32_Ehdr h;
		if (len < sizeof(h))
			return kg_errf(e, "truncated ELF header (%zu bytes)",
				       len);
		memcpy(&h, buf, sizeof(h));
		type = h.e_type, machine = h.e_machine;
		phentsize = h.e_phentsize, phnum = h.e_phnum, phoff = h.e_phoff;
	}
	if (type != ET_EXEC)
		return kg_errf(e, "unsupported ELF type %u (need an "
			       "executable, ET_EXEC)", type);
	if (machine != EM_X86_64 && machine != EM_386)
		return kg_errf(e, "unsupported ELF machine %u (need x86)",
			       machine);
	size_t want = img->bits == 64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
	if (phnum == 0)
		return kg_errf(e, "ELF has no program headers");
	if (phentsize != want)
		return kg_errf(e, "bad ELF program header size %u", phentsize);

	int have_entry = 0;
	img->lo = UINT64_MAX;
	for (unsigned i = 0; i < phnum; i++) {
		struct phdr p = { 0 };
		if (read_phdr(buf, len, img->bits, phoff + (uint64_t)i * want,
			      &p, e) < 0)
			return -1;
		if (p.type != PT_LOAD && p.type != PT_NOTE)
			continue;
		if (p.offset > len || p.filesz > len - p.offset)
			return kg_errf(e, "truncated ELF: segment %u (offset "
				       "%llu, %llu bytes) past end of file "
				       "(%zu bytes)", i,
				       (unsigned long long)p.offset,
				       (unsigned long long)p.filesz, len);
		if (p.type == PT_NOTE) {
			int r = scan_notes(buf + p.offset, p.filesz, img,
					   have_entry, e);
			if (r < 0)
				return -1;
			have_entry = r;
			continue;
		}
		if (p.memsz == 0)
			continue;
		if (p.filesz > p.memsz)
			return kg_errf(e, "bad ELF segment %u: file size "
				       "exceeds memory size", i);
		if (p.paddr + p.memsz < p.paddr)
			return kg_errf(e, "bad ELF segment %u: address "
				       "overflow", i);
		if (img->nsegs == ELF_MAX_LOAD_SEGMENTS)
			return kg_errf(e, "too many ELF load segments "
				       "(max %d)", ELF_MAX_LOAD_SEGMENTS);
		img->segs[img->nsegs++] = (struct elf_segment){
			p.paddr, p.offset, p.filesz, p.memsz
		};
		if (p.paddr < img->lo)
			img->lo = p.paddr;
		if (p.paddr + p.memsz > img->hi)
			img->hi = p.paddr + p.memsz;
	}
	if (img->nsegs == 0)
		return kg_errf(e, "ELF has no loadable segments");
	if (!have_entry)
		return kg_errf(e, "no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY):"
			       " not a PVH-bootable image");
	return 0;
}

int elf_check_entry(const struct elf_image *img, struct kg_err *e)
{
	for (unsigned i = 0; i < img->nsegs; i++) {
		const struct elf_segment *s = &img->segs[i];
		if (img->pvh_entry >= s->paddr &&
		    img->pvh_entry - s->paddr < s->filesz)
			return 0;
	}
	return kg_errf(e, "the PVH entry point 0x%llx is outside every "
		       "loaded segment", (unsigned long long)img->pvh_entry);
}
