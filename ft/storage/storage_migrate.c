#include "storage_migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/virtio_mmio.h"
#include "vmm/vm.h"
#include "converge.h"
#include "image_copy.h"
#include "base/clock.h"

#define DEFAULT_MAX_ROUNDS 30
#define DEFAULT_FINAL_BLOCKS 256
#define PROGRESS_NS (200ull * 1000 * 1000)

struct sm {
	struct vm *vm;
	struct virtio_blk *b;
	const struct storage_migrate_opts *o;
	struct image_copy c;
	uint64_t *bits;
	size_t words;
	unsigned round;
	uint64_t last_progress_ns, round_ns, round_bytes;
	uint64_t dirty; /* blocks left, as last counted */
	double mbps;
	bool stopping;
};

static bool vm_stopping(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	bool s = vm->req == VM_REQ_STOP;
	pthread_mutex_unlock(&vm->lock);
	return s;
}

static void report(struct sm *m, uint64_t pos)
{
	if (!m->o->progress)
		return;
	uint64_t now = kg_now_ns();
	double secs = (double)(now - m->round_ns) / 1e9;
	double mbps = secs > 0.001 ? (double)(m->c.bytes - m->round_bytes) /
					    secs / 1e6 : m->mbps;
	double rate = mbps > 0 ? mbps : m->mbps;
	uint64_t size = m->c.size ? m->c.size : 1;
	double left = (double)(size - (pos < size ? pos : size)) +
		      (double)m->dirty * DISK_TRACK_BLOCK;
	if (left > (double)size)
		left = (double)size;
	struct storage_migrate_progress p = {
		.round = m->round, .bytes = m->c.bytes,
		.image_bytes = m->c.size,
		.percent = 100.0 * ((double)size - left) / (double)size,
		.dirty_blocks = m->dirty, .mbps = mbps,
		.expected_downtime_ms = rate > 0 ? (double)m->dirty *
			DISK_TRACK_BLOCK / (rate * 1e3) : 0,
	};
	m->last_progress_ns = now;
	m->o->progress(m->o->arg, &p);
}

/* Between chunks: give up when the VM stops; report now and then. */
static bool tick(void *arg, uint64_t pos)
{
	struct sm *m = arg;
	if (vm_stopping(m->vm)) {
		m->stopping = true;
		return false;
	}
	if (kg_now_ns() - m->last_progress_ns >= PROGRESS_NS)
		report(m, pos);
	return true;
}

static void start_round(struct sm *m)
{
	m->round_ns = kg_now_ns();
	m->round_bytes = m->c.bytes;
}

static void end_round(struct sm *m)
{
	double secs = (double)(kg_now_ns() - m->round_ns) / 1e9;
	uint64_t n = m->c.bytes - m->round_bytes;
	/* A tiny round says little about the rate: keep the last one. */
	if (secs > 0 && n >= IMAGE_COPY_CHUNK)
		m->mbps = (double)n / secs / 1e6;
}

static int fsync_dir(const char *path, struct kg_err *e)
{
	char dir[sizeof(((struct disk_spec *)0)->path)];
	const char *slash = strrchr(path, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == path)
		strcpy(dir, "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return kg_errno(e, "opening directory %s", dir);
	int r = fsync(fd);
	if (r < 0)
		kg_errno(e, "fsync of directory %s", dir);
	close(fd);
	return r;
}

static int create_target(struct sm *m, const char *newpath, struct kg_err *e)
{
	struct stat old;
	if (fstat(virtio_blk_fd(m->b), &old) < 0)
		return kg_errno(e, "fstat %s", virtio_blk_path(m->b));
	int fd = open(newpath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
		      old.st_mode & 0777);
	if (fd < 0 && errno == EEXIST)
		return kg_errf(e, "%s already exists (refusing to overwrite "
			       "it)", newpath);
	if (fd < 0)
		return kg_errno(e, "creating %s", newpath);
	m->c.dst = fd;
	if (ftruncate(fd, (off_t)m->c.size) < 0)
		return kg_errno(e, "writing %s: ftruncate", newpath);
	return 0;
}

/* Each copy is made durable while the guest still runs, so that the
 * pause syncs only its own few blocks; syncing right after a round (not
 * just before the pause) keeps the time between the last count of dirty
 * blocks and the pause short, and with it the final copy. */
static int sync_dst(struct sm *m, struct kg_err *e)
{
	if (fdatasync(m->c.dst) < 0)
		return kg_errno(e, "writing %s: fdatasync", m->c.dst_path);
	return 0;
}

/* The dirty rounds, while the guest runs; the blocks taken last are left
 * in m->bits for the final copy. */
static int precopy_rounds(struct sm *m, struct kg_err *e)
{
	const struct storage_migrate_opts *o = m->o;
	struct converge cv;
	converge_init(&cv, o->final_blocks ? o->final_blocks
					   : DEFAULT_FINAL_BLOCKS,
		      o->max_rounds ? o->max_rounds : DEFAULT_MAX_ROUNDS);
	for (;;) {
		m->dirty = virtio_blk_take_dirty(m->b, m->bits, m->words);
		report(m, m->c.size);
		if (converge_done(&cv, m->dirty))
			return 0;
		m->round++;
		start_round(m);
		if (image_copy_blocks(&m->c, m->bits, m->words, e) < 0 ||
		    sync_dst(m, e) < 0)
			return -1;
		end_round(m);
		memset(m->bits, 0, m->words * sizeof(*m->bits));
	}
}

/* With the disk quiesced: the last blocks, durable, then the switch. */
static int final_copy(struct sm *m, const char *newpath,
		      struct storage_migrate_stats *st, struct kg_err *e)
{
	struct virtio_mmio *t = virtio_blk_transport(m->b);
	uint64_t t0 = kg_now_ns();
	virtio_mmio_quiesce(t);
	virtio_blk_take_dirty(m->b, m->bits, m->words);
	st->final_blocks = 0; /* the last round's leftovers and the new ones */
	for (size_t i = 0; i < m->words; i++)
		st->final_blocks += (uint64_t)__builtin_popcountll(m->bits[i]);
	m->c.tick = NULL; /* nothing to cancel or report in here */
	int r = image_copy_blocks(&m->c, m->bits, m->words, e);
	if (r == 0)
		r = sync_dst(m, e);
	if (r == 0)
		r = virtio_blk_switch(m->b, m->c.dst, newpath, e);
	virtio_mmio_release(t);
	st->pause_us = (kg_now_ns() - t0) / 1000;
	return r;
}

static int migrate(struct sm *m, const char *newpath,
		   struct storage_migrate_stats *st, struct kg_err *e)
{
	if (create_target(m, newpath, e) < 0 || fsync_dir(newpath, e) < 0)
		return -1;
	if (virtio_blk_track(m->b, true, e) < 0)
		return -1; /* someone else's tracking: left alone */
	/* Every write from here on is tracked, so whatever the full copy
	 * reads too early is copied again in a round. */
	start_round(m);
	int r = image_copy_data(&m->c, e);
	if (r == 0)
		r = sync_dst(m, e);
	end_round(m);
	if (r == 0)
		r = precopy_rounds(m, e);
	if (r == 0 && vm_stopping(m->vm))
		m->stopping = true, r = -1;
	if (r == 0)
		r = final_copy(m, newpath, st, e);
	struct kg_err ignored;
	virtio_blk_track(m->b, false, &ignored); /* stopping never fails */
	if (r == 0)
		m->c.dst = -1; /* the device's now */
	st->rounds = m->round + 1;
	return r;
}

int storage_migrate(struct vm *vm, unsigned disk, const char *newpath,
		    const struct storage_migrate_opts *o,
		    struct storage_migrate_stats *st, struct kg_err *e)
{
	static const struct storage_migrate_opts defaults;
	uint64_t t0 = kg_now_ns();
	memset(st, 0, sizeof(*st));
	if (vm->cfg.ndisks == 0)
		return kg_errf(e, "storage-migrate: the VM has no disk");
	if (disk >= vm->cfg.ndisks || !vm->blks[disk])
		return kg_errf(e, "storage-migrate: no disk %u (the VM has %u, "
			       "numbered from 0)", disk, vm->cfg.ndisks);
	if (!*newpath)
		return kg_errf(e, "storage-migrate: empty target path");
	struct sm m = { .vm = vm, .b = vm->blks[disk], .o = o ? o : &defaults };
	m.c = (struct image_copy){
		.src = virtio_blk_fd(m.b), .dst = -1,
		.src_path = virtio_blk_path(m.b), .dst_path = newpath,
		.size = virtio_blk_size(m.b), .block = DISK_TRACK_BLOCK,
		.tick = tick, .arg = &m,
	};
	m.words = disk_track_words(m.c.size);
	m.bits = calloc(m.words ? m.words : 1, sizeof(*m.bits));
	m.c.buf = malloc(IMAGE_COPY_CHUNK);
	m.last_progress_ns = kg_now_ns();
	int r;
	if (!m.bits || !m.c.buf)
		r = kg_errf(e, "out of memory");
	else
		r = migrate(&m, newpath, st, e);
	st->bytes = m.c.bytes;
	if (r < 0) {
		if (m.stopping)
			kg_errf(e, "the VM is stopping");
		if (m.c.dst >= 0) {
			close(m.c.dst);
			if (unlink(newpath) < 0)
				kg_err_prefix(e, "(and removing %s failed: %s)",
					      newpath, strerror(errno));
		}
		kg_err_prefix(e, "storage-migrate");
	}
	free(m.bits);
	free(m.c.buf);
	st->total_us = (kg_now_ns() - t0) / 1000;
	return r;
}
