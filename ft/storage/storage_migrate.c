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
#include "ft/precopy/disk_copy.h"
#include "ft/precopy/precopy.h"
#include "base/clock.h"

#define PROGRESS_NS (200ull * 1000 * 1000)

struct sm {
	struct vm *vm;
	struct virtio_blk *b;
	const struct storage_migrate_opts *o;
	struct disk_copy c;
	struct disk_file dst;
	uint64_t *bits;
	size_t words;
	unsigned round;
	uint64_t last_progress_ns, round_ns, round_bytes;
	uint64_t dirty; /* blocks left, as last counted */
	struct precopy_state pc; /* the rounds' estimates (progress reads
				    the rate) */
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
	double last = m->pc.rate / 1e6;
	double mbps = secs > 0.001 ? (double)(m->c.bytes - m->round_bytes) /
					    secs / 1e6 : last;
	double rate = mbps > 0 ? mbps : last;
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
	m->dst.fd = fd;
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
	if (fdatasync(m->dst.fd) < 0)
		return kg_errno(e, "writing %s: fdatasync", m->dst.path);
	return 0;
}

/* The pre-copy rounds, while the guest runs: the data extents (every
 * write from here on is tracked, so whatever this reads too early is
 * copied again later), then the dirty blocks. */
static int copy_round(void *ctx, bool first, struct precopy_round *r,
		      struct kg_err *e)
{
	struct sm *m = ctx;
	m->round_ns = kg_now_ns();
	m->round_bytes = m->c.bytes;
	if (!first)
		m->round++;
	if ((first ? disk_copy_data(&m->c, e)
		   : disk_copy_blocks(&m->c, m->bits, m->words, e)) < 0 ||
	    sync_dst(m, e) < 0)
		return -1;
	r->bytes = m->c.bytes - m->round_bytes;
	r->units = first ? (r->bytes + DISK_TRACK_BLOCK - 1) / DISK_TRACK_BLOCK
			 : m->dirty;
	memset(m->bits, 0, m->words * sizeof(*m->bits));
	return 0;
}

/* The blocks taken are left in m->bits: for the next round, or for the
 * final copy when the rounds stop. */
static int take_dirty(void *ctx, uint64_t *dirty, struct kg_err *e)
{
	struct sm *m = ctx;
	(void)e;
	*dirty = m->dirty = virtio_blk_take_dirty(m->b, m->bits, m->words);
	return 0;
}

static void round_report(void *ctx, const struct precopy_state *s,
			 enum precopy_decision d)
{
	struct sm *m = ctx;
	(void)s;
	(void)d;
	report(m, m->c.size);
}

static const struct precopy_ops storage_precopy = {
	.round = copy_round, .pending = take_dirty, .report = round_report,
};

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
	int r = disk_copy_blocks(&m->c, m->bits, m->words, e);
	if (r == 0)
		r = sync_dst(m, e);
	if (r == 0)
		r = virtio_blk_switch(m->b, m->dst.fd, newpath, e);
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
	struct precopy_policy p = precopy_policy_storage(m->o->final_blocks,
							 m->o->max_rounds);
	int r = precopy_run(&m->pc, &p, &storage_precopy, m, e);
	if (r == 0 && vm_stopping(m->vm))
		m->stopping = true, r = -1;
	if (r == 0)
		r = final_copy(m, newpath, st, e);
	struct kg_err ignored;
	virtio_blk_track(m->b, false, &ignored); /* stopping never fails */
	if (r == 0)
		m->dst.fd = -1; /* the device's now */
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
	struct sm m = { .vm = vm, .b = vm->blks[disk], .o = o ? o : &defaults,
			.dst = { .fd = -1, .path = newpath } };
	m.c = (struct disk_copy){
		.src = virtio_blk_fd(m.b), .src_path = virtio_blk_path(m.b),
		.size = virtio_blk_size(m.b), .block = DISK_TRACK_BLOCK,
		.sink = &disk_file_sink, .sink_ctx = &m.dst,
		.tick = tick, .arg = &m,
	};
	m.words = disk_track_words(m.c.size);
	m.bits = calloc(m.words ? m.words : 1, sizeof(*m.bits));
	m.c.buf = malloc(DISK_COPY_RUN);
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
		if (m.dst.fd >= 0) {
			close(m.dst.fd);
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
