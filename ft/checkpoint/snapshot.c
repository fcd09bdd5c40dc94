#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "vmm/virtio_mmio.h"
#include "vmm/vm.h"
#include "cpuid_state.h"
#include "cpu_state.h"
#include "base/crc32c.h"
#include "stream.h"
#include "vm_state.h"
#include "base/vmstate.h"
#include "base/clock.h"
#include "base/log.h"
#include "ft/precopy/precopy.h"
#include "snapshot_ram.h"

#define PAGE 4096u
#define CHUNK (1u << 20)

/* --- what the stream holds, as field tables --- */

/* The disk's identity: restore refuses another size and warns when the
 * image changed since (its generation is its modification time). */
struct snap_disk {
	uint64_t size, mtime_ns;
	uint8_t readonly;
};
static const struct vs_field disk_fields[] = {
	VS_FIELD(struct snap_disk, size, VS_U64),
	VS_FIELD(struct snap_disk, mtime_ns, VS_U64),
	VS_FIELD_MAX(struct snap_disk, readonly, VS_U8, 1),
};
static const struct vs_desc disk_vs = { "disk", 1, VS_TABLE(disk_fields),
					NULL };

/* --- helpers --- */

static uint64_t now_us(void)
{
	return kg_now_ns() / 1000;
}

/* RAM lives in place in the file: each region is one RAM section whose
 * payload (page aligned) is written with pwrite, first whole, then page by
 * page as pages get dirty; its CRC is computed from the file at the end. */
struct ram_slot {
	uint64_t payload; /* file offset */
	uint32_t crc;     /* of the section header, continued at the end */
};

static int pwrite_all(int fd, const void *buf, size_t n, uint64_t off,
		      struct kg_err *e)
{
	while (n) {
		ssize_t w = pwrite(fd, buf, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return kg_errno(e, "writing snapshot");
		buf = (const uint8_t *)buf + w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static int write_regions(int fd, struct vm *vm, const struct ram_slot *slots,
			 struct kg_err *e)
{
	for (unsigned r = 0; r < vm->mem.nregions; r++) {
		const struct guest_mem_region *g = &vm->mem.regions[r];
		for (uint64_t off = 0; off < g->size; off += CHUNK) {
			size_t n = g->size - off < CHUNK ? g->size - off : CHUNK;
			if (pwrite_all(fd, g->hva + off, n,
				       slots[r].payload + off, e) < 0)
				return -1;
		}
	}
	return 0;
}

/* Writes the pages named by bits over their places in the file, a run of
 * contiguous pages per pwrite. */
static int write_dirty_in_place(int fd, struct vm *vm,
				const struct ram_slot *slots,
				const uint64_t *bits, struct kg_err *e)
{
	const struct guest_mem *m = &vm->mem;
	uint64_t pages = m->size / PAGE;
	for (uint64_t pg = 0; pg < pages;) {
		if (!(bits[pg / 64] >> (pg % 64) & 1)) {
			pg++;
			continue;
		}
		uint64_t run = 1;
		const struct guest_mem_region *g = NULL;
		unsigned r;
		for (r = 0; r < m->nregions; r++)
			if (pg * PAGE >= m->regions[r].offset &&
			    pg * PAGE - m->regions[r].offset < m->regions[r].size)
				g = &m->regions[r];
			else if (g)
				break;
		r = (unsigned)(g - m->regions);
		while (pg + run < pages && (bits[(pg + run) / 64] >>
					    ((pg + run) % 64) & 1) &&
		       (pg + run) * PAGE - g->offset < g->size &&
		       run < CHUNK / PAGE)
			run++;
		uint64_t in_region = pg * PAGE - g->offset;
		if (pwrite_all(fd, m->base + pg * PAGE, run * PAGE,
			       slots[r].payload + in_region, e) < 0)
			return -1;
		pg += run;
	}
	return 0;
}

/* Reads exactly n bytes at off: a snapshot being written is never
 * shorter than what was written. */
static int pread_all(int fd, void *buf, size_t n, uint64_t off,
		     struct kg_err *e)
{
	while (n) {
		ssize_t got = pread(fd, buf, n, (off_t)off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? kg_errno(e, "reading back the snapshot")
				       : kg_errk(e, KG_ERR_IO, "reading back "
						 "the snapshot: it ends at "
						 "offset %llu",
						 (unsigned long long)off);
		buf = (uint8_t *)buf + got;
		n -= (size_t)got;
		off += (uint64_t)got;
	}
	return 0;
}

/* With the guest running again: the CRC of what the file now holds, and
 * from the same bytes the hash of each page (ram-hashes sections, after
 * the state: restore checks every page against its hash before the
 * guest sees it). */
static int seal_regions(struct kg_stream_writer *w, int fd, struct vm *vm,
			struct ram_slot *slots, uint8_t *bounce,
			struct kg_err *e)
{
	uint64_t *hashes = NULL;
	int rc = -1;
	for (unsigned r = 0; r < vm->mem.nregions; r++) {
		uint64_t size = vm->mem.regions[r].size, pages = size / PAGE;
		uint64_t span = pages < SNAP_HASH_SPAN ? pages : SNAP_HASH_SPAN;
		free(hashes);
		if (!(hashes = malloc(span * sizeof(uint64_t)))) {
			kg_errk(e, KG_ERR_NOMEM, "out of memory for RAM hashes");
			goto out;
		}
		uint32_t crc = slots[r].crc;
		uint64_t first = 0; /* of the span being hashed */
		for (uint64_t off = 0; off < size;) {
			size_t n = size - off < CHUNK ? size - off : CHUNK;
			if (pread_all(fd, bounce, n, slots[r].payload + off,
				      e) < 0)
				goto out;
			crc = kg_crc32c(crc, bounce, n);
			for (size_t p = 0; p < n; p += PAGE)
				hashes[off / PAGE + p / PAGE - first] =
					XXH3_64bits(bounce + p, PAGE);
			off += n;
			uint64_t done = off / PAGE - first;
			if (done == span || off == size) {
				if (snap_ram_write_hashes(w, (uint16_t)r, first,
							  hashes, done, e) < 0)
					goto out;
				first = off / PAGE;
			}
		}
		if (kg_writer_patch_crc(w, slots[r].payload, size, crc, e) < 0)
			goto out;
	}
	rc = 0;
out:
	free(hashes);
	return rc;
}

/* The pre-copy: the whole RAM, then passes over the pages dirtied
 * meanwhile, with the guest running, while the dirty set shrinks (the
 * snapshot policy): what is left for the pause is small. */
struct passes {
	int fd;
	struct vm *vm;
	const struct ram_slot *slots;
	uint64_t *bits; /* the pages the last count took, for the next pass */
};

static int pass_write(void *ctx, bool first, struct precopy_round *r,
		      struct kg_err *e)
{
	struct passes *ps = ctx;
	(void)r; /* the snapshot policy measures nothing */
	return first ? write_regions(ps->fd, ps->vm, ps->slots, e)
		     : write_dirty_in_place(ps->fd, ps->vm, ps->slots,
					    ps->bits, e);
}

static int pass_count(void *ctx, uint64_t *dirty, struct kg_err *e)
{
	struct passes *ps = ctx;
	return guest_mem_collect_dirty(&ps->vm->mem, ps->vm->vm_fd, ps->bits,
				       dirty, e);
}

static const struct precopy_ops snapshot_precopy = {
	.round = pass_write, .pending = pass_count,
};

static int write_disks(struct kg_stream_writer *w, struct vm *vm,
		       struct kg_err *e)
{
	for (unsigned i = 0; i < vm->cfg.ndisks; i++) {
		struct stat st;
		/* A storage migration may switch the image (and rewrite the
		 * path) meanwhile; it does so only under the transport lock. */
		struct virtio_mmio *t = virtio_blk_transport(vm->blks[i]);
		virtio_mmio_quiesce(t);
		int r = stat(vm->cfg.disks[i].path, &st);
		if (r < 0)
			kg_errno(e, "disk %s", vm->cfg.disks[i].path);
		virtio_mmio_release(t);
		if (r < 0)
			return -1;
		struct snap_disk d = {
			(uint64_t)st.st_size,
			(uint64_t)st.st_mtim.tv_sec * 1000000000ull +
				(uint64_t)st.st_mtim.tv_nsec,
			vm->cfg.disks[i].readonly,
		};
		if (vm_state_put_table(w, KG_SEC_DISK, (uint16_t)i, &disk_vs, &d, e) < 0)
			return -1;
	}
	return 0;
}

int snapshot_save(struct vm *vm, const char *path, struct snapshot_stats *st,
		  struct kg_err *e)
{
	memset(st, 0, sizeof(*st));
	if (vm->dirty_log_owner)
		return kg_errf(e, "snapshot: KVM's dirty log is in use by %s "
			       "(a snapshot would corrupt them); not while "
			       "recording", vm->dirty_log_owner);
	uint64_t t0 = now_us(), tp = 0;
	char tmp[4200];
	if (snprintf(tmp, sizeof(tmp), "%s.partial", path) >= (int)sizeof(tmp))
		return kg_errf(e, "snapshot path too long");
	/* read back too: the RAM checksums are computed from the file */
	int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return kg_errno(e, "snapshot %s", tmp);
	vm_checkpoint_begin(vm);
	uint64_t *bits = calloc(guest_mem_bitmap_words(&vm->mem),
				sizeof(uint64_t));
	uint8_t *bounce = malloc(CHUNK);
	struct kg_stream_writer w;
	kg_writer_init(&w, fd, NULL, "snapshot");
	bool logging = false, paused = false, held = false;
	int r = -1;
	if (!bits || !bounce) {
		kg_errf(e, "out of memory");
		goto out;
	}
	if (kg_writer_header(&w, NULL, e) < 0 ||
	    vm_state_write_config(&w, vm, e) < 0 ||
	    cpuid_state_write(&w, vm, e) < 0 ||
	    write_disks(&w, vm, e) < 0)
		goto out;
	struct ram_slot slots[GUEST_MEM_MAX_REGIONS];
	for (unsigned i = 0; i < vm->mem.nregions; i++)
		if (kg_writer_align(&w, PAGE, e) < 0 ||
		    kg_writer_reserve(&w, KG_SEC_RAM_FULL, (uint16_t)i, 1,
				      vm->mem.regions[i].size, &slots[i].payload,
				      &slots[i].crc, e) < 0)
			goto out;
	if (guest_mem_dirty_log(&vm->mem, vm->vm_fd, true, e) < 0)
		goto out;
	logging = true;
	/* Device writes before this point are in the first pass. */
	guest_mem_take_dirty(&vm->mem, bits);
	struct passes ps = { fd, vm, slots, bits };
	struct precopy_policy pp = precopy_policy_snapshot();
	struct precopy_state pst;
	if (precopy_run(&pst, &pp, &snapshot_precopy, &ps, e) < 0)
		goto out;

	tp = now_us();
	/* A VM the user paused stays paused after the snapshot. */
	pthread_mutex_lock(&vm->lock);
	bool was_paused = vm->req == VM_REQ_PAUSE;
	pthread_mutex_unlock(&vm->lock);
	bool ok = vm_pause_checked(vm);
	paused = !was_paused;
	if (!ok) {
		kg_errf(e, "the VM is stopping");
		goto out;
	}
	vm_state_hold(vm);
	held = true;
	if (guest_mem_collect_dirty(&vm->mem, vm->vm_fd, bits,
				    &st->second_pass_pages, e) < 0 ||
	    write_dirty_in_place(fd, vm, slots, bits, e) < 0 ||
	    vm_state_write(&w, vm, e) < 0)
		goto out;
	vm_state_release(vm);
	held = false;
	if (paused)
		vm_resume(vm);
	paused = false;
	st->pause_us = now_us() - tp;
	if (seal_regions(&w, fd, vm, slots, bounce, e) < 0)
		goto out;
	r = 0;
out:
	if (held)
		vm_state_release(vm);
	if (paused) {
		vm_resume(vm);
		st->pause_us = now_us() - tp;
	}
	if (logging) {
		struct kg_err e2;
		if (guest_mem_dirty_log(&vm->mem, vm->vm_fd, false, &e2) < 0 &&
		    r == 0) {
			*e = e2;
			r = -1;
		}
	}
	if (r == 0 && kg_writer_end(&w, e) < 0)
		r = -1;
	if (r == 0 && fsync(fd) < 0)
		r = kg_errno(e, "snapshot %s: fsync", tmp);
	st->bytes = w.offset;
	if (close(fd) < 0 && r == 0)
		r = kg_errno(e, "snapshot %s: close", tmp);
	if (r == 0 && rename(tmp, path) < 0)
		r = kg_errno(e, "snapshot: rename %s to %s", tmp, path);
	if (r < 0)
		unlink(tmp); /* an existing snapshot at `path` is untouched */
	vm_checkpoint_end(vm);
	free(bits);
	free(bounce);
	st->total_us = now_us() - t0;
	return r;
}

/* --- restore --- */

/* A ram-pages section of an older snapshot: applied after RAM is in. */
struct staged_pages {
	struct staged_pages *next;
	struct kg_section sec;
	uint8_t *buf;
};

struct snapshot_reader {
	char path[4096];
	int fd;
	struct kg_stream_reader r;
	struct vm_state_config config;
	struct vm *vm;
	struct snap_ram *ram;
	struct staged_pages *pages, **pages_tail;
	struct vm_state_stage *stage;
	struct snap_ram_opts ram_opts;
};

struct snapshot_reader *snapshot_open(const char *path, struct vm_config *cfg,
				      struct kg_err *e)
{
	struct snapshot_reader *sr = calloc(1, sizeof(*sr));
	if (!sr) {
		kg_errf(e, "out of memory");
		return NULL;
	}
	snprintf(sr->path, sizeof(sr->path), "%s", path);
	sr->pages_tail = &sr->pages;
	sr->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (sr->fd < 0) {
		kg_errno(e, "snapshot %s", path);
		free(sr);
		return NULL;
	}
	kg_reader_init(&sr->r, sr->fd, NULL);
	struct kg_stream_header h;
	struct kg_section s;
	int n;
	if (kg_reader_header(&sr->r, &h, e) < 0)
		goto fail;
	if ((n = kg_reader_next(&sr->r, &s, e)) < 0)
		goto fail;
	if (n == 0 || s.kind != KG_SEC_VM_CONFIG) {
		kg_errf(e, "the first section is not the VM configuration");
		goto fail;
	}
	if (vm_state_read_config(&sr->r, &s, &sr->config, e) < 0)
		goto fail;
	if (sr->config.ndisks != cfg->ndisks || sr->config.nnets != cfg->nnets) {
		kg_errf(e, "the snapshot has %u disk(s) and %u network(s); "
			"give as many --disk and --net (%u and %u given)",
			sr->config.ndisks, sr->config.nnets, cfg->ndisks,
			cfg->nnets);
		goto fail;
	}
	cfg->mem_size = sr->config.mem_size;
	cfg->ncpus = sr->config.ncpus;
	cfg->deterministic = sr->config.flags & VM_STATE_CONFIG_DETERMINISTIC;
	return sr;
fail:
	kg_err_prefix(e, "snapshot %s", path);
	close(sr->fd);
	free(sr);
	return NULL;
}

/* Checked and kept: RAM is not in yet. */
static int stage_pages(struct snapshot_reader *sr, const struct kg_section *s,
		       struct kg_err *e)
{
	if (s->length < 8 || (s->length - 8) % (8 + PAGE))
		return kg_sec_err(e, s, KG_ERR_CORRUPT, "page section of bad length");
	struct staged_pages *p = calloc(1, sizeof(*p));
	if (!p)
		return kg_sec_err(e, s, KG_ERR_NOMEM, "out of memory");
	p->sec = *s;
	if (!(p->buf = kg_section_read_all(&sr->r, s, e))) {
		free(p);
		return -1;
	}
	*sr->pages_tail = p;
	sr->pages_tail = &p->next;
	uint64_t n;
	memcpy(&n, p->buf, 8);
	if (n != (s->length - 8) / (8 + PAGE))
		return kg_sec_err(e, s, KG_ERR_CORRUPT, "page count %llu does not "
				  "match the length", (unsigned long long)n);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t gpa;
		memcpy(&gpa, p->buf + 8 + i * (8 + PAGE), 8);
		if (gpa % PAGE || !guest_mem_contains(&sr->vm->mem, gpa, PAGE))
			return kg_sec_err(e, s, KG_ERR_CORRUPT, "page at 0x%llx "
					  "is outside guest RAM",
					  (unsigned long long)gpa);
	}
	return 0;
}

/* Over RAM, in the order of the file. */
static void apply_pages(struct snapshot_reader *sr)
{
	for (struct staged_pages *p = sr->pages; p; p = p->next) {
		uint64_t n;
		memcpy(&n, p->buf, 8);
		for (uint64_t i = 0; i < n; i++) {
			const uint8_t *rec = p->buf + 8 + i * (8 + PAGE);
			uint64_t gpa;
			memcpy(&gpa, rec, 8);
			memcpy(guest_mem_ptr(&sr->vm->mem, gpa, PAGE), rec + 8,
			       PAGE);
		}
	}
}

static int check_disk(struct snapshot_reader *sr, const struct kg_section *s,
		      struct kg_err *e)
{
	struct snap_disk d;
	if (s->instance >= sr->config.ndisks)
		return kg_sec_err(e, s, KG_ERR_CORRUPT,
				  "disk %u not in the configuration", s->instance);
	if (vm_state_get_table(&sr->r, s, &disk_vs, &d, NULL, e) < 0)
		return -1;
	const char *path = sr->vm->cfg.disks[s->instance].path;
	struct stat st;
	if (stat(path, &st) < 0) {
		char where[128];
		kg_section_where(where, sizeof(where), s);
		kg_errno(e, "disk %s", path);
		return kg_err_prefix(e, "%s", where);
	}
	if ((uint64_t)st.st_size != d.size)
		return kg_sec_err(e, s, KG_ERR_INVALID, "disk %s is %lld bytes, "
				  "the snapshot's was %llu", path,
				  (long long)st.st_size,
				  (unsigned long long)d.size);
	uint64_t mt = (uint64_t)st.st_mtim.tv_sec * 1000000000ull +
		      (uint64_t)st.st_mtim.tv_nsec;
	if (mt != d.mtime_ns)
		kg_log(KG_LOG_WARN, "disk %s changed since the "
			"snapshot was taken", path);
	return 0;
}

void snapshot_test_prefetch_delay(struct snapshot_reader *sr, unsigned ms)
{
	sr->ram_opts.test_prefetch_delay_ms = ms;
}

int snapshot_load(struct snapshot_reader *sr, struct vm *vm, struct kg_err *e)
{
	sr->vm = vm;
	struct kg_section s;
	int n;
	sr->stage = vm_state_stage_new(e);
	if (!sr->stage)
		return -1;
	sr->ram = snap_ram_new(sr->path, sr->fd, &vm->mem, e);
	if (!sr->ram)
		return -1;
	while ((n = kg_reader_next(&sr->r, &s, e)) > 0) {
		int r = 0;
		if (vm_state_section(s.kind)) {
			r = vm_state_stage_section(&sr->r, &s, vm, sr->stage, e);
		} else if (s.kind == KG_SEC_RAM_FULL) {
			r = snap_ram_region(sr->ram, &sr->r, &s, e);
		} else if (s.kind == KG_SEC_RAM_HASHES) {
			r = snap_ram_hashes(sr->ram, &sr->r, &s, e);
		} else if (s.kind == KG_SEC_RAM_PAGES) {
			r = stage_pages(sr, &s, e);
		} else if (s.kind == KG_SEC_DISK) {
			r = check_disk(sr, &s, e);
		} else if (s.kind == KG_SEC_CPUID) {
			r = cpuid_state_check(&sr->r, &s, vm, e);
		} else if (s.kind == KG_SEC_PAD || (s.kind & KG_SEC_ANCILLARY)) {
			r = kg_section_finish(&sr->r, e);
		} else {
			r = kg_errk(e, KG_ERR_INVALID, "section kind 0x%x is "
				    "not known to this kagami", s.kind);
		}
		/* Each branch's errors name the section already. */
		if (r < 0)
			return kg_err_prefix(e, "snapshot %s", sr->path);
	}
	if (n < 0 || vm_state_complete(vm, sr->stage, e) < 0)
		return kg_err_prefix(e, "snapshot %s", sr->path);
	/* RAM, from here on loading while the guest runs (its errors are
	 * whole lines); then the pages and state over it. */
	if (snap_ram_load(&sr->ram, vm, &sr->ram_opts, e) < 0)
		return -1;
	apply_pages(sr);
	if (vm_state_apply(vm, sr->stage, e) < 0)
		return kg_err_prefix(e, "snapshot %s", sr->path);
	vm->boot_count = sr->config.boot_count;
	return 0;
}

void snapshot_close(struct snapshot_reader *sr)
{
	if (!sr)
		return;
	snap_ram_free(sr->ram);
	while (sr->pages) {
		struct staged_pages *p = sr->pages;
		sr->pages = p->next;
		free(p->buf);
		free(p);
	}
	vm_state_stage_free(sr->stage);
	close(sr->fd);
	free(sr);
}
