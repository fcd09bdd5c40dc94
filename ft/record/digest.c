/* State digests: registers plus an incrementally maintained RAM hash. */
#include "digest.h"

#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "vmm/kvm.h"
#include "vmm/vm.h"

#define PAGE 4096u

void rr_regs_from_kvm(const void *kvm_regs, uint64_t out[RR_NREGS])
{
	const struct kvm_regs *r = kvm_regs;
	const uint64_t v[RR_NREGS] = {
		r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rsp,
		r->rbp, r->r8, r->r9, r->r10, r->r11, r->r12, r->r13,
		r->r14, r->r15, r->rip, r->rflags,
	};
	memcpy(out, v, sizeof(v));
}

void rr_exit_describe(const struct kvm_run *run, struct rr_exit *x)
{
	x->len = 0;
	x->hashed = false;
	x->count = 1;
	if (run->exit_reason == KVM_EXIT_IO) {
		bool out = run->io.direction == KVM_EXIT_IO_OUT;
		x->type = out ? RR_PIO_OUT : RR_PIO_IN;
		x->addr = run->io.port;
		x->size = run->io.size;
		x->count = run->io.count ? run->io.count : 1;
		if (out) {
			const uint8_t *d = (const uint8_t *)run +
					   run->io.data_offset;
			size_t n = (size_t)x->size * x->count;
			if (n <= 16) {
				memcpy(x->data, d, n);
				x->len = (uint32_t)n;
			} else {
				uint32_t h = XXH32(d, n, 0);
				memcpy(x->data, &h, 4);
				x->len = 4;
				x->hashed = true;
			}
		}
	} else if (run->exit_reason == KVM_EXIT_MMIO) {
		x->type = run->mmio.is_write ? RR_MMIO_WRITE : RR_MMIO_READ;
		x->addr = run->mmio.phys_addr;
		x->size = (uint8_t)run->mmio.len;
		if (run->mmio.is_write && run->mmio.len <= 8) {
			memcpy(x->data, run->mmio.data, run->mmio.len);
			x->len = run->mmio.len;
		}
	} else {
		x->type = RR_HLT;
		x->addr = 0;
		x->size = 0;
	}
}

static void hash_all(struct rr_hasher *h)
{
	guest_mem_page_hashes(&h->vm->mem, 0, h->npages, h->page_hash);
	h->resets = h->vm->stats.resets;
}

int rr_hasher_init(struct rr_hasher *h, struct vm *vm, struct kg_err *e)
{
	memset(h, 0, sizeof(*h));
	if (vm->dirty_log_owner)
		return kg_errf(e, "digest: KVM's dirty log is in use by %s",
			       vm->dirty_log_owner);
	h->vm = vm;
	h->npages = vm->mem.size / PAGE;
	h->page_hash = calloc(h->npages, sizeof(uint64_t));
	h->bits = calloc(guest_mem_bitmap_words(&vm->mem), sizeof(uint64_t));
	if (!h->page_hash || !h->bits) {
		rr_hasher_free(h);
		return kg_errf(e, "digest: out of memory");
	}
	if (guest_mem_dirty_log(&vm->mem, vm->vm_fd, true, e) < 0) {
		rr_hasher_free(h);
		return kg_err_prefix(e, "digest");
	}
	/* Start from a clean VMM log as well: everything is hashed now. */
	guest_mem_take_dirty(&vm->mem, h->bits);
	hash_all(h);
	vm->dirty_log_owner = "the execution log's state digests";
	return 0;
}

int rr_hasher_digest(struct rr_hasher *h, struct rr_digest *d,
		     struct kg_err *e)
{
	struct vm *vm = h->vm;
	uint64_t words = guest_mem_bitmap_words(&vm->mem);
	memset(h->bits, 0, words * sizeof(uint64_t));
	if (guest_mem_collect_dirty(&vm->mem, vm->vm_fd, h->bits, NULL, e) < 0)
		return kg_err_prefix(e, "digest");
	if (h->resets != vm->stats.resets) {
		hash_all(h);
	} else {
		for (uint64_t w = 0; w < words; w++)
			for (uint64_t b = h->bits[w]; b; b &= b - 1) {
				uint64_t i = w * 64 + (uint64_t)__builtin_ctzll(b);
				if (i < h->npages)
					h->page_hash[i] = XXH3_64bits(
						vm->mem.base + i * PAGE, PAGE);
			}
	}
	memset(d, 0, sizeof(*d));
	d->ram_hash = XXH3_64bits(h->page_hash, h->npages * sizeof(uint64_t));
	struct kvm_regs r;
	struct kvm_sregs s;
	int fd = vm->vcpus[0].fd;
	if (kvm_ioctl(fd, KVM_GET_REGS, &r, e) < 0 ||
	    kvm_ioctl(fd, KVM_GET_SREGS, &s, e) < 0)
		return kg_err_prefix(e, "digest");
	rr_regs_from_kvm(&r, d->regs);
	d->cr0 = s.cr0;
	d->cr3 = s.cr3;
	d->cr4 = s.cr4;
	d->efer = s.efer;
	return 0;
}

void rr_hasher_free(struct rr_hasher *h)
{
	if (h->vm && h->page_hash)
		h->vm->dirty_log_owner = NULL;
	free(h->page_hash);
	free(h->bits);
	h->page_hash = NULL;
	h->bits = NULL;
}
