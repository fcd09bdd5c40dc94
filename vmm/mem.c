#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xxhash.h>

#include "kvm.h"
#include "mem_lazy.h"
#include "abi/kagami_platform.h"

void guest_mem_layout(uint64_t size, struct guest_mem *m)
{
	uint64_t low = size < KAGAMI_MMIO_BASE ? size : KAGAMI_MMIO_BASE;
	m->size = size;
	m->nregions = 1;
	m->regions[0] = (struct guest_mem_region){ 0, low, 0, NULL };
	if (size > low) {
		m->regions[1] = (struct guest_mem_region){
			KAGAMI_HIGH_MEM_BASE, size - low, low, NULL
		};
		m->nregions = 2;
	}
}

int guest_mem_check_size(uint64_t size, struct kg_err *e)
{
	if (size < GUEST_MEM_MIN_SIZE || size > GUEST_MEM_MAX_SIZE ||
	    size % 4096)
		return kg_errf(e, "guest memory size %llu: must be a multiple "
			       "of 4 KiB between 2 MiB and 1 TiB",
			       (unsigned long long)size);
	return 0;
}

int guest_mem_init(struct guest_mem *m, uint64_t size, struct kg_err *e)
{
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (guest_mem_check_size(size, e) < 0)
		return -1;
	guest_mem_layout(size, m);
	m->fd = memfd_create("kagami-ram", MFD_CLOEXEC);
	if (m->fd < 0)
		return kg_errno(e, "memfd_create");
	if (ftruncate(m->fd, (off_t)size) < 0) {
		kg_errno(e, "ftruncate guest RAM to %llu bytes",
			 (unsigned long long)size);
		goto fail;
	}
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_NORESERVE, m->fd, 0);
	if (p == MAP_FAILED) {
		kg_errno(e, "mmap guest RAM (%llu bytes)",
			 (unsigned long long)size);
		goto fail;
	}
	m->base = p;
	m->vmm_dirty = calloc((size / 4096 + 63) / 64, sizeof(uint64_t));
	if (!m->vmm_dirty) {
		kg_errf(e, "out of memory for the dirty bitmap");
		goto fail;
	}
	madvise(p, size, MADV_DONTDUMP); /* crash dumps stay small */
	for (unsigned i = 0; i < m->nregions; i++)
		m->regions[i].hva = m->base + m->regions[i].offset;
	return 0;
fail:
	if (m->base)
		munmap(m->base, size);
	m->base = NULL;
	close(m->fd);
	m->fd = -1;
	return -1;
}

void guest_mem_destroy(struct guest_mem *m)
{
	guest_mem_lazy_stop(m);
	if (m->base)
		munmap(m->base, m->size);
	free(m->vmm_dirty);
	m->vmm_dirty = NULL;
	if (m->fd >= 0)
		close(m->fd);
	m->base = NULL;
	m->fd = -1;
}

int guest_mem_clear(struct guest_mem *m, struct kg_err *e)
{
	/* A restore still loading: nothing of the snapshot may come in
	 * after the zeros. */
	guest_mem_lazy_stop(m);
	if (fallocate(m->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
		      (off_t)m->size) < 0) {
		if (errno != EOPNOTSUPP)
			return kg_errno(e, "fallocate(PUNCH_HOLE) guest RAM");
		memset(m->base, 0, m->size);
	}
	return 0;
}

static const struct guest_mem_region *find_region(const struct guest_mem *m,
						  uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < m->nregions; i++) {
		const struct guest_mem_region *r = &m->regions[i];
		if (gpa >= r->gpa && gpa - r->gpa <= r->size &&
		    len <= r->size - (gpa - r->gpa))
			return r;
	}
	return NULL;
}

bool guest_mem_contains(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	return find_region(m, gpa, len) != NULL;
}

void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	const struct guest_mem_region *r = find_region(m, gpa, len);
	return r && r->hva ? r->hva + (gpa - r->gpa) : NULL;
}

static uint64_t gpa_to_offset(const struct guest_mem *m, uint64_t gpa,
			      uint64_t len)
{
	const struct guest_mem_region *r = find_region(m, gpa, len);
	return r ? r->offset + (gpa - r->gpa) : UINT64_MAX;
}

void guest_mem_mark_dirty(struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	uint64_t off = gpa_to_offset(m, gpa, len);
	if (off == UINT64_MAX || !len || !m->vmm_dirty)
		return;
	for (uint64_t pg = off / 4096; pg <= (off + len - 1) / 4096; pg++)
		atomic_fetch_or_explicit(&m->vmm_dirty[pg / 64],
					 1ull << (pg % 64),
					 memory_order_relaxed);
}

uint64_t guest_mem_take_dirty(struct guest_mem *m, uint64_t *out)
{
	uint64_t n = 0, words = (m->size / 4096 + 63) / 64;
	for (uint64_t i = 0; i < words; i++) {
		out[i] = atomic_exchange_explicit(&m->vmm_dirty[i], 0,
						  memory_order_relaxed);
		n += (uint64_t)__builtin_popcountll(out[i]);
	}
	return n;
}

static int register_slots(const struct guest_mem *m, int vm_fd, uint32_t flags,
			  struct kg_err *e)
{
	for (unsigned i = 0; i < m->nregions; i++) {
		struct kvm_userspace_memory_region r = {
			.slot = i,
			.flags = flags,
			.guest_phys_addr = m->regions[i].gpa,
			.memory_size = m->regions[i].size,
			.userspace_addr = (uint64_t)(uintptr_t)m->regions[i].hva,
		};
		if (kvm_ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r, e) < 0)
			return -1;
	}
	return 0;
}

int guest_mem_register(const struct guest_mem *m, int vm_fd, struct kg_err *e)
{
	return register_slots(m, vm_fd,
			      m->dirty_logging ? KVM_MEM_LOG_DIRTY_PAGES : 0, e);
}

int guest_mem_dirty_log(struct guest_mem *m, int vm_fd, bool on,
			struct kg_err *e)
{
	if (register_slots(m, vm_fd, on ? KVM_MEM_LOG_DIRTY_PAGES : 0, e) < 0)
		return -1;
	m->dirty_logging = on;
	return 0;
}

int guest_mem_fetch_kvm_dirty(const struct guest_mem *m, int vm_fd,
			      uint64_t *bits, struct kg_err *e)
{
	for (unsigned i = 0; i < m->nregions; i++) {
		const struct guest_mem_region *r = &m->regions[i];
		uint64_t pages = r->size / 4096, words = (pages + 63) / 64;
		uint64_t *log = calloc(words, sizeof(uint64_t));
		if (!log)
			return kg_errf(e, "out of memory for the dirty log");
		struct kvm_dirty_log d = { .slot = i, .dirty_bitmap = log };
		if (kvm_ioctl(vm_fd, KVM_GET_DIRTY_LOG, &d, e) < 0) {
			free(log);
			return -1;
		}
		uint64_t first = r->offset / 4096;
		for (uint64_t w = 0; w < words; w++) {
			for (uint64_t b = log[w]; b; b &= b - 1) {
				uint64_t pg = first + w * 64 +
					      (uint64_t)__builtin_ctzll(b);
				bits[pg / 64] |= 1ull << (pg % 64);
			}
		}
		free(log);
	}
	return 0;
}

int guest_mem_collect_dirty(struct guest_mem *m, int vm_fd, uint64_t *bits,
			    uint64_t *npages, struct kg_err *e)
{
	guest_mem_take_dirty(m, bits); /* overwrites bits */
	if (guest_mem_fetch_kvm_dirty(m, vm_fd, bits, e) < 0)
		return -1;
	if (npages) {
		uint64_t n = 0;
		for (uint64_t i = 0; i < guest_mem_bitmap_words(m); i++)
			n += (uint64_t)__builtin_popcountll(bits[i]);
		*npages = n;
	}
	return 0;
}

uint64_t guest_mem_page_hashes(const struct guest_mem *m, uint64_t first,
			       uint64_t n, uint64_t *out)
{
	static const uint8_t zero[4096];
	uint64_t zh = XXH3_64bits(zero, sizeof(zero)), data = 0;
	uint64_t pos = first * 4096, end = (first + n) * 4096;
	/* While a restore loads, a hole may be a page not yet in. */
	bool holes = m->fd >= 0 && !guest_mem_lazy(m);
	if (end > m->size)
		end = m->size;
	while (pos < end) {
		/* Holes were never written: zeros, not worth faulting in. */
		off_t d = holes ? lseek(m->fd, (off_t)pos, SEEK_DATA)
				: (off_t)pos;
		if (d < 0)
			d = errno == ENXIO ? (off_t)end : (off_t)pos;
		for (; pos < (uint64_t)d && pos < end; pos += 4096)
			out[pos / 4096 - first] = zh;
		if (pos >= end)
			break;
		off_t h = holes ? lseek(m->fd, (off_t)pos, SEEK_HOLE) : -1;
		uint64_t stop = h < 0 || (uint64_t)h > end ? end : (uint64_t)h;
		if (stop <= pos)
			stop = pos + 4096;
		for (; pos < stop; pos += 4096, data++)
			out[pos / 4096 - first] = XXH3_64bits(m->base + pos, 4096);
	}
	return data;
}

void guest_mem_copy_data(struct guest_mem *dst, const struct guest_mem *src)
{
	uint64_t size = src->size < dst->size ? src->size : dst->size;
	bool holes = src->fd >= 0 && !guest_mem_lazy(src);
	for (uint64_t pos = 0; pos < size;) {
		off_t d = holes ? lseek(src->fd, (off_t)pos, SEEK_DATA)
				: (off_t)pos;
		if (d < 0 || (uint64_t)d >= size)
			break;
		off_t h = holes ? lseek(src->fd, d, SEEK_HOLE) : -1;
		uint64_t stop = h < 0 || (uint64_t)h > size ? size : (uint64_t)h;
		memcpy(dst->base + d, src->base + d, stop - (uint64_t)d);
		pos = stop;
	}
}
