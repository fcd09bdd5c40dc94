/* PVH boot: reads the image and initrd, loads them, writes start_info. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acpi_vm.h"
#include "elf.h"
#include "kvm.h"
#include "linuxboot.h"
#include "pvh.h"
#include "base/log.h"
#include "vm.h"
#include "abi/kagami_platform.h"

/* Reads a whole regular file of at most `limit` bytes. */
static int read_file(const char *what, const char *path, uint64_t limit,
		     uint8_t **out, size_t *len, struct kg_err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kg_errno(e, "%s %s", what, path);
	struct stat st;
	if (fstat(fd, &st) < 0) {
		kg_errno(e, "%s %s: fstat", what, path);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		kg_errf(e, "%s %s: not a regular file", what, path);
		goto fail;
	}
	if ((uint64_t)st.st_size > limit) {
		kg_errf(e, "%s %s (%lld bytes) is larger than guest memory "
			"(--mem, %llu bytes)", what, path,
			(long long)st.st_size, (unsigned long long)limit);
		goto fail;
	}
	*len = (size_t)st.st_size;
	*out = malloc(*len ? *len : 1);
	if (!*out) {
		kg_errf(e, "%s %s: out of memory", what, path);
		goto fail;
	}
	size_t got = 0;
	while (got < *len) {
		ssize_t n = read(fd, *out + got, *len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				kg_errf(e, "%s %s: file shrank while reading",
					what, path);
			else
				kg_errno(e, "%s %s: read", what, path);
			free(*out);
			*out = NULL;
			goto fail;
		}
		got += (size_t)n;
	}
	close(fd);
	return 0;
fail:
	close(fd);
	return -1;
}

static int check_fit(const struct elf_image *img, uint64_t mem_size,
		     struct kg_err *e)
{
	struct guest_mem layout;
	guest_mem_layout(mem_size, &layout);
	for (unsigned i = 0; i < img->nsegs; i++) {
		const struct elf_segment *s = &img->segs[i];
		if (!guest_mem_contains(&layout, s->paddr, s->memsz))
			return kg_errf(e, "image segment at 0x%llx (%llu bytes)"
				       " does not fit in guest memory (--mem, "
				       "%llu bytes)",
				       (unsigned long long)s->paddr,
				       (unsigned long long)s->memsz,
				       (unsigned long long)mem_size);
		uint64_t lo = KAGAMI_START_INFO_GPA,
			 hi = KAGAMI_CMDLINE_GPA + KAGAMI_CMDLINE_MAX;
		if (s->paddr < hi && lo < s->paddr + s->memsz)
			return kg_errf(e, "image segment at 0x%llx overlaps "
				       "the boot information area "
				       "[0x%llx, 0x%llx)",
				       (unsigned long long)s->paddr,
				       (unsigned long long)lo,
				       (unsigned long long)hi);
	}
	return 0;
}

/* Said once per image on a host where ring 0 crawls: a kernel that
 * lives there (Linux) would seem to hang. */
static void warn_ring0(const char *path)
{
	if (kvm_emulates_ring0())
		kg_warn("this host's KVM (PVM backend) emulates guest ring 0 "
			"about 1000x slower than ring 3, and %s runs its kernel "
			"in ring 0: expect it to crawl (Linux guests need a "
			"host with VT-x or AMD-V, or a virtual host: "
			"docs/architecture.md)", path);
}

int boot_read_inputs(struct vm *vm, struct kg_err *e)
{
	const struct vm_config *c = &vm->cfg;
	if (read_file("image", c->kernel_path, c->mem_size, &vm->image,
		      &vm->image_size, e) < 0)
		return -1;
	if (lb_is_bzimage(vm->image, vm->image_size)) {
		struct lb_image li;
		if (lb_parse(vm->image, vm->image_size, &li, e) < 0)
			return kg_err_prefix(e, "image %s", c->kernel_path);
		if (c->deterministic)
			return kg_errk(e, KG_ERR_INVALID,
				       "image %s is a Linux kernel, which "
				       "cannot run deterministically (record, "
				       "--deterministic, --replicate lockstep):"
				       " it reads the TSC and takes "
				       "asynchronous interrupts that this KVM "
				       "cannot deliver at an exact instruction;"
				       " protect it with --replicate ft or ha",
				       c->kernel_path);
		warn_ring0(c->kernel_path);
	} else {
		struct elf_image img;
		if (elf_parse(vm->image, vm->image_size, &img, e) < 0)
			return kg_err_prefix(e, "image %s", c->kernel_path);
		if (elf_check_entry(&img, e) < 0 ||
		    check_fit(&img, c->mem_size, e) < 0)
			return kg_err_prefix(e, "image %s", c->kernel_path);
		if (!img.ring3)
			warn_ring0(c->kernel_path);
	}
	if (c->initrd_path &&
	    read_file("initrd", c->initrd_path, c->mem_size, &vm->initrd,
		      &vm->initrd_size, e) < 0)
		return -1;
	return 0;
}

/* A bzImage through the Linux boot protocol, 64-bit entry. */
static int boot_linux(struct vm *vm, uint64_t rsdp, struct kg_err *e)
{
	struct lb_image li;
	struct lb_boot b;
	struct lb_params p = {
		.cmdline = vm->cmdline,
		.initrd = vm->initrd,
		.initrd_size = vm->initrd_size,
		.rsdp_gpa = rsdp,
	};
	if (lb_parse(vm->image, vm->image_size, &li, e) < 0 ||
	    lb_load(&vm->mem, &li, vm->image, &p, &b, e) < 0)
		return -1;
	return vcpu_set_boot_regs64(&vm->vcpus[0], b.entry, b.zero_page, b.cr3,
				    b.gdt, e);
}

/* The x86 reset vector (F000:FFF0) as firmware would have it: resets the
 * VM through 0xcf9. Linux's reboot falls back to jumping there in real
 * mode (BOOT_BIOS), and on a hardware-reduced ACPI platform without EFI
 * it tries EFI, then exactly that, before the ACPI reset register; with
 * nothing there the guest would execute zeros forever. */
static int write_reset_vector(struct vm *vm, struct kg_err *e)
{
	static const uint8_t stub[] = {
		0xb0, 0x06,             /* mov $0x06, %al */
		0xba, 0xf9, 0x0c,       /* mov $0xcf9, %dx */
		0xee,                   /* out %al, (%dx) */
		0xf4,                   /* hlt */
		0xeb, 0xfd,             /* jmp .-1 (the hlt) */
	};
	uint8_t *p = guest_mem_ptr(&vm->mem, KAGAMI_RESET_VECTOR_GPA,
				   sizeof(stub));
	if (!p)
		return kg_errf(e, "guest RAM too small for the reset vector");
	memcpy(p, stub, sizeof(stub));
	guest_mem_mark_dirty(&vm->mem, KAGAMI_RESET_VECTOR_GPA, sizeof(stub));
	return 0;
}

int boot_load(struct vm *vm, struct kg_err *e)
{
	struct elf_image img;
	if (!vm->image)
		return kg_errf(e, "the VM was restored from a snapshot and has "
			       "no image to boot again");
	uint64_t rsdp;
	if (acpi_vm_write(vm, &rsdp, e) < 0 || write_reset_vector(vm, e) < 0)
		return -1;
	if (lb_is_bzimage(vm->image, vm->image_size))
		return boot_linux(vm, rsdp, e);
	if (elf_parse(vm->image, vm->image_size, &img, e) < 0)
		return -1;
	for (unsigned i = 0; i < img.nsegs; i++) {
		const struct elf_segment *s = &img.segs[i];
		uint8_t *dst = guest_mem_ptr(&vm->mem, s->paddr, s->memsz);
		if (!dst)
			return kg_errf(e, "image segment at 0x%llx outside RAM",
				       (unsigned long long)s->paddr);
		memcpy(dst, vm->image + s->offset, s->filesz);
		memset(dst + s->filesz, 0, s->memsz - s->filesz);
	}
	struct pvh_params p = { .cmdline = vm->cmdline, .rsdp_gpa = rsdp };
	if (vm->initrd) {
		if (pvh_place_initrd(&vm->mem, img.hi, vm->initrd_size,
				     &p.initrd_gpa, e) < 0)
			return -1;
		memcpy(guest_mem_ptr(&vm->mem, p.initrd_gpa, vm->initrd_size),
		       vm->initrd, vm->initrd_size);
		p.initrd_size = vm->initrd_size;
	}
	uint64_t si;
	if (pvh_write_start_info(&vm->mem, &p, &si, e) < 0)
		return -1;
	return vcpu_set_boot_regs(&vm->vcpus[0], img.pvh_entry, si, e);
}
