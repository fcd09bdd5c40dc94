#include "epoch.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <unistd.h>

#include "vmm/mem_lazy.h"
#include "vmm/vm.h"
#include "cpuid_state.h"
#include "stream.h"
#include "base/clock.h"

#define PAGE 4096u

struct epoch_sender {
	struct vm *vm;
	struct kg_stream_writer w;
	struct page_encoder *pe;
	/* The dirty pages, copied while the vCPUs are stopped, at the same
	 * offsets as in guest RAM (a MAP_NORESERVE mapping: only copied
	 * pages take memory); the encoder reads them from here. */
	struct guest_mem staging;
	uint64_t *bits;
	uint64_t *pend; /* taken from the logs by epoch_dirty_pending, unsent */
	uint64_t *gpas, ngpas;
	uint8_t *out;
	uint64_t seq;
	bool logging;
	/* The next epoch must be full: after a guest reset (RAM was cleared
	 * and reloaded outside the dirty log) or a failed epoch. */
	bool need_full;
	bool cpuid_sent; /* the "cpuid" section went out (first epoch) */
	/* Nothing sent yet: the receiver's RAM is all zeros. */
	bool receiver_zero;
	uint32_t boot_count;
	/* The encoder thread of the epoch in flight. */
	pthread_t encoder;
	bool encoding;
	struct epoch_stats *st;
	uint64_t epoch_start; /* stream offset of its first section */
	int result;
	struct kg_err err;
	const struct epoch_disk_ops *disk;
	void *disk_ctx;
	bool disk_started;
	epoch_pause_fn on_pause;
	void *pause_ctx;
};

void epoch_sender_set_pause_hook(struct epoch_sender *s, epoch_pause_fn fn,
				 void *ctx)
{
	s->on_pause = fn;
	s->pause_ctx = ctx;
}

static uint64_t pages_of(const struct vm *vm)
{
	return vm->mem.size / PAGE;
}

static int wait_encoder(struct epoch_sender *s, struct kg_err *e)
{
	if (!s->encoding)
		return 0;
	pthread_join(s->encoder, NULL);
	s->encoding = false;
	if (s->result < 0)
		s->need_full = true;
	if (s->result < 0 && e)
		*e = s->err;
	return s->result;
}

void epoch_sender_free(struct epoch_sender *s)
{
	if (!s)
		return;
	wait_encoder(s, NULL);
	if (s->staging.base)
		munmap(s->staging.base, s->staging.size);
	if (s->logging) {
		struct kg_err e;
		guest_mem_dirty_log(&s->vm->mem, s->vm->vm_fd, false, &e);
	}
	page_encoder_free(s->pe);
	free(s->bits);
	free(s->pend);
	free(s->gpas);
	free(s->out);
	free(s);
}

static struct epoch_sender *sender_new(struct vm *vm, int fd,
				       const struct kg_stream_io *io,
				       void *ctx, struct kg_err *e)
{
	if (vm->dirty_log_owner) {
		kg_errf(e, "KVM's dirty log is in use by %s; not while "
			"recording", vm->dirty_log_owner);
		return NULL;
	}
	struct epoch_sender *s = calloc(1, sizeof(*s));
	if (!s) {
		kg_errf(e, "out of memory");
		return NULL;
	}
	s->vm = vm;
	s->bits = calloc(guest_mem_bitmap_words(&vm->mem), sizeof(uint64_t));
	s->pend = calloc(guest_mem_bitmap_words(&vm->mem), sizeof(uint64_t));
	s->gpas = malloc(pages_of(vm) * sizeof(uint64_t));
	s->out = malloc(EPOCH_BATCH);
	if (!s->bits || !s->pend || !s->gpas || !s->out) {
		kg_errf(e, "out of memory");
		goto fail;
	}
	s->staging = vm->mem;
	s->staging.fd = -1;
	s->staging.vmm_dirty = NULL;
	s->staging.base = mmap(NULL, vm->mem.size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (s->staging.base == MAP_FAILED) {
		s->staging.base = NULL;
		kg_errno(e, "mmap epoch staging");
		goto fail;
	}
	for (unsigned i = 0; i < s->staging.nregions; i++)
		s->staging.regions[i].hva = s->staging.base +
					    s->staging.regions[i].offset;
	s->pe = page_encoder_new(&s->staging, e);
	if (!s->pe)
		goto fail;
	page_encoder_assume_zero(s->pe);
	s->receiver_zero = true;
	s->boot_count = vm->boot_count;
	kg_writer_init(&s->w, fd, NULL, "replication stream");
	if (io)
		kg_writer_set_io(&s->w, io, ctx);
	if (kg_writer_header(&s->w, NULL, e) < 0 ||
	    vm_state_write_config(&s->w, vm, e) < 0 ||
	    kg_writer_flush(&s->w, e) < 0 ||
	    guest_mem_dirty_log(&vm->mem, vm->vm_fd, true, e) < 0)
		goto fail;
	s->logging = true;
	return s;
fail:
	epoch_sender_free(s);
	return NULL;
}

struct epoch_sender *epoch_sender_new(struct vm *vm, int fd, struct kg_err *e)
{
	return sender_new(vm, fd, NULL, NULL, e);
}

struct epoch_sender *epoch_sender_new_io(struct vm *vm,
					 const struct kg_stream_io *io,
					 void *ctx, struct kg_err *e)
{
	return sender_new(vm, -1, io, ctx, e);
}

void epoch_sender_set_disk(struct epoch_sender *s,
			   const struct epoch_disk_ops *ops, void *ctx)
{
	s->disk = ops;
	s->disk_ctx = ctx;
}

static int begin_epoch(struct epoch_sender *s, uint64_t seq, uint64_t flags,
		       struct kg_err *e)
{
	uint64_t p[2] = { seq, flags };
	if (kg_writer_section(&s->w, KG_SEC_EPOCH_BEGIN, 0,
			      EPOCH_BEGIN_VERSION, p, sizeof(p), e) < 0)
		return -1;
	/* The stream's first epoch says which CPU the guest sees, so that a
	 * receiver lacking a feature of it refuses before any RAM moves. */
	if (!s->cpuid_sent) {
		if (cpuid_state_write(&s->w, s->vm, e) < 0)
			return -1;
		s->cpuid_sent = true;
	}
	return 0;
}

static int send_disk(struct epoch_sender *s, struct epoch_stats *st,
		     struct kg_err *e)
{
	if (!s->disk)
		return 0;
	bool first = !s->disk_started;
	s->disk_started = true;
	return s->disk->send(s->disk_ctx, &s->w, first, &st->disk_bytes, e);
}

/* A live round's end: the disk blocks, EPOCH_END, and out it goes. */
static int end_live_round(struct epoch_sender *s, struct epoch_stats *st,
			  struct kg_err *e)
{
	if (send_disk(s, st, e) < 0 ||
	    kg_writer_section(&s->w, KG_SEC_EPOCH_END, 0, 1, &st->seq, 8, e) < 0 ||
	    kg_writer_flush(&s->w, e) < 0)
		return -1;
	return 0;
}

/* The dirty set as a sorted gpa list: memfd page order is gpa order. */
static uint64_t dirty_gpas(struct epoch_sender *s, bool full,
			   struct kg_err *e)
{
	const struct guest_mem *m = &s->vm->mem;
	uint64_t n = 0;
	if (guest_mem_collect_dirty(&s->vm->mem, s->vm->vm_fd, s->bits, NULL,
				    e) < 0)
		return UINT64_MAX;
	for (uint64_t i = 0; i < guest_mem_bitmap_words(m); i++) {
		s->bits[i] |= s->pend[i];
		s->pend[i] = 0;
	}
	/* The first epoch of a session: a hole in the memfd was never
	 * written, and the receiver's zeros already match it — unless a
	 * restore is still loading (a hole may be a page not yet in). */
	bool skip_holes = full && s->receiver_zero && !guest_mem_lazy(m) &&
			  m->fd >= 0;
	for (unsigned r = 0; r < m->nregions; r++) {
		const struct guest_mem_region *g = &m->regions[r];
		uint64_t end = g->offset + g->size;
		for (uint64_t off = g->offset; skip_holes && off < end;) {
			off_t d = lseek(m->fd, (off_t)off, SEEK_DATA);
			if (d < 0 || (uint64_t)d >= end)
				break;
			off_t h = lseek(m->fd, d, SEEK_HOLE);
			uint64_t stop = h < 0 || (uint64_t)h > end ? end
								   : (uint64_t)h;
			for (uint64_t p = (uint64_t)d & ~(uint64_t)(PAGE - 1);
			     p < stop; p += PAGE)
				s->gpas[n++] = g->gpa + (p - g->offset);
			off = stop;
		}
		for (uint64_t off = 0; !skip_holes && off < g->size; off += PAGE) {
			uint64_t pg = (g->offset + off) / PAGE;
			if (full || (s->bits[pg / 64] >> (pg % 64) & 1))
				s->gpas[n++] = g->gpa + off;
		}
	}
	return n;
}

static int send_chunk(struct epoch_sender *s, const uint64_t *gpas,
		      uint64_t n, struct epoch_stats *st, struct kg_err *e)
{
	for (uint64_t i = 0; i < n;) {
		size_t len;
		struct page_codec_stats b;
		long used = page_encode(s->pe, gpas + i, n - i, s->out,
					EPOCH_BATCH, &len, &b, e);
		if (used < 0)
			return -1;
		page_codec_stats_add(&st->codec, &b);
		i += (uint64_t)used;
		if (len <= PAGE_CODEC_BATCH_HEADER) {
			page_encoder_abort(s->pe, s->out, len);
			continue; /* every page unchanged: nothing to send */
		}
		if (kg_writer_section(&s->w, KG_SEC_RAM_PAGES, 0,
				      PAGE_CODEC_VERSION, s->out, len, e) < 0) {
			page_encoder_abort(s->pe, s->out, len);
			return -1;
		}
		/* A reliable in-order stream: written is applied, or the
		 * session ends (page_codec.h). */
		if (page_encoder_commit(s->pe, s->out, len, e) < 0)
			return -1;
	}
	return 0;
}

/* Copies the dirty pages into staging while the vCPUs are stopped. */
static void stage_dirty(struct epoch_sender *s)
{
	const struct guest_mem *m = &s->vm->mem;
	for (uint64_t i = 0; i < s->ngpas; i++) {
		const void *src = guest_mem_ptr(m, s->gpas[i], PAGE);
		void *dst = guest_mem_ptr(&s->staging, s->gpas[i], PAGE);
		memcpy(dst, src, PAGE);
	}
}

/* The encoder thread: pages from staging onto the stream, then the end of
 * the epoch; the output buffer is the only one it fills (EPOCH_BATCH). */
static void *encode_epoch(void *arg)
{
	struct epoch_sender *s = arg;
	uint64_t te = kg_now_ns();
	s->result = -1;
	if (send_chunk(s, s->gpas, s->ngpas, s->st, &s->err) < 0)
		return NULL;
	s->st->encode_us = (kg_now_ns() - te) / 1000;
	if (kg_writer_section(&s->w, KG_SEC_EPOCH_END, 0, 1, &s->st->seq, 8,
			      &s->err) < 0 ||
	    kg_writer_flush(&s->w, &s->err) < 0)
		return NULL;
	s->st->stream_bytes = s->w.offset - s->epoch_start;
	/* Staged pages stay resident: faulting them in again would add
	 * ~1 us per page to the next pause. */
	s->result = 0;
	return NULL;
}

int epoch_send(struct epoch_sender *s, bool full, struct epoch_stats *st,
	       struct kg_err *e)
{
	struct vm *vm = s->vm;
	/* One epoch on the stream at a time, in order. */
	if (wait_encoder(s, e) < 0)
		return -1;
	memset(st, 0, sizeof(*st));
	uint64_t t0 = kg_now_ns();
	pthread_mutex_lock(&vm->lock);
	bool was_paused = vm->req == VM_REQ_PAUSE;
	pthread_mutex_unlock(&vm->lock);
	vm_checkpoint_begin(vm);
	if (!vm_pause_checked(vm)) {
		vm_checkpoint_end(vm);
		return kg_errf(e, "the VM is stopping");
	}
	vm_state_hold(vm);
	st->seq = ++s->seq;
	int r = -1;
	if (vm->boot_count != s->boot_count || s->need_full) {
		full = true;
		s->boot_count = vm->boot_count;
	}
	uint64_t n = dirty_gpas(s, full, e);
	if (n == UINT64_MAX)
		goto out;
	st->dirty_pages = s->ngpas = n;
	stage_dirty(s);
	s->epoch_start = s->w.offset;
	/* The state goes first: the receiver stages the whole epoch anyway,
	 * and it must be taken while everything is stopped. */
	if (begin_epoch(s, st->seq, 0, e) < 0 ||
	    vm_state_write(&s->w, vm, e) < 0 || send_disk(s, st, e) < 0)
		goto out;
	if (s->on_pause)
		s->on_pause(s->pause_ctx, st->seq);
	r = 0;
out:
	vm_state_release(vm);
	if (!was_paused)
		vm_resume(vm);
	vm_checkpoint_end(vm);
	st->pause_us = (kg_now_ns() - t0) / 1000;
	/* A failed epoch lost the dirty bits it took: resend everything. */
	s->need_full = r < 0;
	if (r == 0)
		s->receiver_zero = false;
	if (r < 0)
		return -1;
	s->st = st;
	int pr = pthread_create(&s->encoder, NULL, encode_epoch, s);
	if (pr) {
		errno = pr;
		return kg_errno(e, "epoch encoder: pthread_create");
	}
	s->encoding = true;
	return 0;
}

/* Pages per progress report in a live round. */
#define LIVE_CHUNK 1024u

static int live_round(struct epoch_sender *s, bool all, epoch_progress_fn fn,
		      void *ctx, struct epoch_stats *st, struct kg_err *e);

int epoch_send_live(struct epoch_sender *s, bool all, epoch_progress_fn fn,
		    void *ctx, struct epoch_stats *st, struct kg_err *e)
{
	struct vm *vm = s->vm;
	if (wait_encoder(s, e) < 0)
		return -1;
	memset(st, 0, sizeof(*st));
	st->live = true;
	st->seq = ++s->seq;
	uint64_t t0 = kg_now_ns();
	/* A guest reset waits for the round: RAM and the KVM VM stay put. */
	vm_checkpoint_begin(vm);
	int r = live_round(s, all, fn, ctx, st, e);
	vm_checkpoint_end(vm);
	st->stream_bytes = s->w.offset - s->epoch_start;
	st->encode_us = (kg_now_ns() - t0) / 1000;
	return r;
}

static int live_round(struct epoch_sender *s, bool all, epoch_progress_fn fn,
		      void *ctx, struct epoch_stats *st, struct kg_err *e)
{
	struct vm *vm = s->vm;
	s->epoch_start = s->w.offset;
	if (vm->boot_count != s->boot_count || s->need_full) {
		all = true;
		s->boot_count = vm->boot_count;
	}
	/* Taken before any page is read: a page written from here on is
	 * dirty for the next round. */
	uint64_t n = dirty_gpas(s, all, e);
	if (n == UINT64_MAX)
		return -1;
	st->dirty_pages = n;
	s->need_full = true; /* until this round is on the stream */
	if (begin_epoch(s, st->seq, EPOCH_F_LIVE, e) < 0)
		return -1;
	/* The encoder copies each page once before it looks at it, so a
	 * live round reads the running guest's RAM directly. */
	page_encoder_set_src(s->pe, &vm->mem);
	/* The first copy of everything keeps no shadow (see page_codec.h);
	 * later rounds do, for deltas of pages written again. */
	page_encoder_set_shadowing(s->pe, !all);
	for (uint64_t i = 0; i < n; i += LIVE_CHUNK) {
		uint64_t k = n - i < LIVE_CHUNK ? n - i : LIVE_CHUNK;
		if (send_chunk(s, s->gpas + i, k, st, e) < 0) {
			page_encoder_set_src(s->pe, &s->staging);
			page_encoder_set_shadowing(s->pe, true);
			return -1;
		}
		if (fn)
			fn(ctx, i + k, n);
	}
	page_encoder_set_src(s->pe, &s->staging);
	page_encoder_set_shadowing(s->pe, true);
	if (end_live_round(s, st, e) < 0)
		return -1;
	s->need_full = false;
	s->receiver_zero = false;
	return 0;
}

#define HASH_CHUNK 8192u /* pages per page-hashes section */

int epoch_send_hashes(struct epoch_sender *s, struct epoch_stats *st,
		      uint64_t *data_pages, struct kg_err *e)
{
	struct vm *vm = s->vm;
	if (wait_encoder(s, e) < 0)
		return -1;
	memset(st, 0, sizeof(*st));
	st->live = true;
	st->seq = ++s->seq;
	*data_pages = 0;
	uint64_t t0 = kg_now_ns(), npages = pages_of(vm);
	uint64_t *buf = malloc((1 + HASH_CHUNK) * sizeof(uint64_t));
	if (!buf)
		return kg_errf(e, "out of memory");
	vm_checkpoint_begin(vm);
	s->epoch_start = s->w.offset;
	s->need_full = true; /* until this round is on the stream */
	/* From here on a written page is dirty for the next round; what the
	 * logs held before is covered by the hashes. */
	int rc = guest_mem_collect_dirty(&vm->mem, vm->vm_fd, s->bits, NULL, e);
	memset(s->pend, 0, guest_mem_bitmap_words(&vm->mem) * sizeof(uint64_t));
	/* The receiver holds data we do not know: no page is assumed. */
	page_encoder_reset(s->pe);
	s->receiver_zero = false;
	if (rc == 0)
		rc = begin_epoch(s, st->seq, EPOCH_F_LIVE | EPOCH_F_HASHES, e);
	for (uint64_t p = 0; rc == 0 && p < npages; p += HASH_CHUNK) {
		uint64_t n = npages - p < HASH_CHUNK ? npages - p : HASH_CHUNK;
		buf[0] = p;
		*data_pages += guest_mem_page_hashes(&vm->mem, p, n, buf + 1);
		rc = kg_writer_section(&s->w, KG_SEC_PAGE_HASHES, 0, 1, buf,
				       (1 + n) * sizeof(uint64_t), e);
	}
	if (rc == 0)
		rc = end_live_round(s, st, e);
	if (rc == 0)
		s->need_full = false;
	vm_checkpoint_end(vm);
	free(buf);
	st->stream_bytes = s->w.offset - s->epoch_start;
	st->encode_us = (kg_now_ns() - t0) / 1000;
	return rc;
}

void epoch_sender_need(struct epoch_sender *s, uint64_t first, uint64_t n)
{
	uint64_t npages = pages_of(s->vm);
	for (uint64_t p = first; p < first + n && p < npages; p++)
		s->pend[p / 64] |= 1ull << (p % 64);
}

int epoch_send_final(struct epoch_sender *s, struct epoch_stats *st,
		     struct kg_err *e)
{
	struct vm *vm = s->vm;
	if (wait_encoder(s, e) < 0)
		return -1;
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&vm->lock);
	bool paused = vm->req == VM_REQ_PAUSE;
	pthread_mutex_unlock(&vm->lock);
	if (!paused)
		return kg_errf(e, "final epoch: the VM is not paused");
	uint64_t t0 = kg_now_ns();
	vm_checkpoint_begin(vm);
	vm_state_hold(vm);
	st->seq = ++s->seq;
	s->epoch_start = s->w.offset;
	bool full = vm->boot_count != s->boot_count || s->need_full;
	s->boot_count = vm->boot_count;
	int r = -1;
	uint64_t n = dirty_gpas(s, full, e);
	if (n == UINT64_MAX)
		goto out;
	st->dirty_pages = n;
	/* Nothing runs: the pages are read where they are, without the
	 * staging copy (whose first touch costs a fault per page here). */
	page_encoder_set_src(s->pe, &vm->mem);
	/* Nothing follows a final epoch: no shadow to keep. */
	page_encoder_set_shadowing(s->pe, false);
	r = begin_epoch(s, st->seq, 0, e) < 0 ||
	    vm_state_write(&s->w, vm, e) < 0 || send_disk(s, st, e) < 0 ||
	    send_chunk(s, s->gpas, n, st, e) < 0 ||
	    kg_writer_section(&s->w, KG_SEC_EPOCH_END, 0, 1, &st->seq, 8, e) < 0 ||
	    kg_writer_flush(&s->w, e) < 0 ? -1 : 0;
	page_encoder_set_src(s->pe, &s->staging);
	page_encoder_set_shadowing(s->pe, true);
out:
	vm_state_release(vm);
	vm_checkpoint_end(vm);
	s->need_full = r < 0;
	st->stream_bytes = s->w.offset - s->epoch_start;
	st->encode_us = (kg_now_ns() - t0) / 1000;
	return r;
}

int epoch_dirty_pending(struct epoch_sender *s, uint64_t *npages,
			struct kg_err *e)
{
	struct vm *vm = s->vm;
	vm_checkpoint_begin(vm);
	int r = guest_mem_collect_dirty(&vm->mem, vm->vm_fd, s->bits, NULL, e);
	vm_checkpoint_end(vm);
	if (r < 0)
		return -1;
	uint64_t n = 0;
	for (uint64_t i = 0; i < guest_mem_bitmap_words(&vm->mem); i++) {
		s->pend[i] |= s->bits[i];
		n += (uint64_t)__builtin_popcountll(s->pend[i]);
	}
	*npages = n;
	return 0;
}

int epoch_wait(struct epoch_sender *s, struct kg_err *e)
{
	return wait_encoder(s, e);
}

int epoch_sender_finish(struct epoch_sender *s, struct kg_err *e)
{
	if (wait_encoder(s, e) < 0)
		return -1;
	return kg_writer_end(&s->w, e);
}

/* --- receiver --- */

struct staged {
	uint8_t *payload;
	size_t bufcap;
	size_t len;
	uint32_t version;
	uint16_t kind, instance;
};

struct epoch_receiver {
	struct kg_stream_reader r;
	struct vm *vm;
	struct vm_state_stage *stage;
	struct staged *pages;
	size_t npages, cap;
	const struct epoch_disk_sink *disk;
	void *disk_ctx;
	bool committed;
	uint64_t *need, nneed; /* pages whose hash differed (hash rounds) */
};

static struct epoch_receiver *receiver_new(int fd,
					   const struct kg_stream_io *io,
					   void *ctx,
					   struct vm_state_config *c,
					   struct kg_err *e)
{
	struct epoch_receiver *r = calloc(1, sizeof(*r));
	if (!r) {
		kg_errf(e, "out of memory");
		return NULL;
	}
	kg_reader_init(&r->r, fd, NULL);
	if (io)
		kg_reader_set_io(&r->r, io, ctx);
	struct kg_stream_header h;
	struct kg_section s;
	int n;
	if (kg_reader_header(&r->r, &h, e) < 0 ||
	    (n = kg_reader_next(&r->r, &s, e)) < 0)
		goto fail;
	if (n == 0) {
		kg_errf(e, "the stream ended before the configuration");
		goto fail;
	}
	if (vm_state_read_config(&r->r, &s, c, e) < 0)
		goto fail;
	r->stage = vm_state_stage_new(e);
	if (!r->stage)
		goto fail;
	return r;
fail:
	free(r);
	return NULL;
}

struct epoch_receiver *epoch_receiver_new(int fd, struct vm_state_config *c,
					  struct kg_err *e)
{
	return receiver_new(fd, NULL, NULL, c, e);
}

struct epoch_receiver *epoch_receiver_new_io(const struct kg_stream_io *io,
					     void *ctx,
					     struct vm_state_config *c,
					     struct kg_err *e)
{
	return receiver_new(-1, io, ctx, c, e);
}

void epoch_receiver_attach(struct epoch_receiver *r, struct vm *vm)
{
	r->vm = vm;
}

void epoch_receiver_set_disk(struct epoch_receiver *r,
			     const struct epoch_disk_sink *sink, void *ctx)
{
	r->disk = sink;
	r->disk_ctx = ctx;
}

bool epoch_receiver_committed(const struct epoch_receiver *r)
{
	return r->committed;
}

/* Staged buffers are kept for the next epoch, up to STAGE_KEEP bytes: a
 * fresh 1 MiB malloc is a fresh mmap, and its first touch costs a fault
 * per page, on the critical path of a final epoch. */
#define STAGE_KEEP (64u << 20)

static void drop_staged(struct epoch_receiver *r)
{
	size_t kept = 0;
	for (size_t i = 0; i < r->cap; i++) {
		struct staged *p = &r->pages[i];
		if (kept + p->bufcap > STAGE_KEEP) {
			free(p->payload);
			kg_budget_release(kg_reader_budget(&r->r), p->bufcap);
			p->payload = NULL;
			p->bufcap = 0;
		}
		kept += p->bufcap;
	}
	r->npages = 0;
}

/* Staged sections are the peer's to size: every buffer, and the table
 * of them, is charged to the connection's budget before it grows (kept
 * buffers stay charged while kept). */
static int stage_pages(struct epoch_receiver *r, const struct kg_section *s,
		       struct kg_err *e)
{
	struct kg_budget *b = kg_reader_budget(&r->r);
	char where[128];
	kg_section_where(where, sizeof(where), s);
	if (r->npages == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		if (kg_budget_charge(b, (cap - r->cap) * sizeof(struct staged),
				     where, e) < 0)
			return -1;
		struct staged *p = realloc(r->pages, cap * sizeof(*p));
		if (!p) {
			kg_budget_release(b, (cap - r->cap) * sizeof(*p));
			return kg_errk(e, KG_ERR_NOMEM, "out of memory");
		}
		memset(p + r->cap, 0, (cap - r->cap) * sizeof(*p));
		r->pages = p;
		r->cap = cap;
	}
	struct staged *p = &r->pages[r->npages];
	size_t need = s->length ? (size_t)s->length : 1;
	if (p->bufcap < need) {
		free(p->payload);
		kg_budget_release(b, p->bufcap);
		p->payload = NULL;
		p->bufcap = 0;
		if (kg_budget_charge(b, need, where, e) < 0)
			return -1;
		if (!(p->payload = malloc(need))) {
			kg_budget_release(b, need);
			return kg_errk(e, KG_ERR_NOMEM, "out of memory for %llu bytes",
				       (unsigned long long)s->length);
		}
		p->bufcap = need;
	}
	if (kg_section_read(&r->r, p->payload, s->length, e) < 0 ||
	    kg_section_finish(&r->r, e) < 0)
		return -1;
	p->len = s->length;
	p->version = s->version;
	p->kind = s->kind;
	p->instance = s->instance;
	r->npages++;
	return 0;
}

static int apply_disk(struct epoch_receiver *r, const struct staged *p,
		      struct epoch_stats *st, struct kg_err *e)
{
	if (!r->disk)
		return kg_errk(e, KG_ERR_INVALID, "disk contents in the stream, "
			       "but this side has no disk to write them to");
	if (p->version != 1 || p->len < 8)
		return kg_errk(e, KG_ERR_CORRUPT,
			       "disk-blocks section: version %u, %zu bytes",
			       p->version, p->len);
	uint64_t off;
	memcpy(&off, p->payload, 8);
	st->disk_bytes += p->len - 8;
	return r->disk->apply(r->disk_ctx, p->instance, off, p->payload + 8,
			      p->len - 8, e);
}

/* Applies one staged section: pages or disk blocks. */
static int apply_staged(struct epoch_receiver *r, const struct staged *p,
			struct epoch_stats *st, struct kg_err *e)
{
	if (p->kind == KG_SEC_DISK_BLOCKS)
		return apply_disk(r, p, st, e);
	struct page_codec_stats b;
	if (page_decode(&r->vm->mem, p->version, p->payload, p->len, &b, e) < 0)
		return -1;
	page_codec_stats_add(&st->codec, &b);
	st->dirty_pages += b.pages[KG_PAGE_ZERO] + b.pages[KG_PAGE_RAW] +
			   b.pages[KG_PAGE_LZ4] + b.pages[KG_PAGE_DELTA];
	return 0;
}

/* Everything arrived and passed its checksum: apply. */
static int commit(struct epoch_receiver *r, struct epoch_stats *st,
		  struct kg_err *e)
{
	/* Checked before any page is applied: a state section missing from
	 * the epoch must leave the replica as it was. */
	if (vm_state_complete(r->vm, r->stage, e) < 0)
		return kg_err_prefix(e, "epoch %llu", (unsigned long long)st->seq);
	for (size_t i = 0; i < r->npages; i++)
		if (apply_staged(r, &r->pages[i], st, e) < 0) {
			st->apply_failed = true;
			return kg_err_prefix(e, "epoch %llu: applying it (the "
					     "receiver now needs a full epoch)",
					     (unsigned long long)st->seq);
		}
	if (vm_state_apply(r->vm, r->stage, e) < 0) {
		st->apply_failed = true;
		return -1;
	}
	r->committed = true;
	return 0;
}

/* A hash round's section: marks the pages whose hash differs from ours. */
static int compare_hashes(struct epoch_receiver *r, const struct kg_section *s,
			  struct kg_err *e)
{
	uint64_t npages = r->vm->mem.size / PAGE;
	if (s->length < 8 || s->length % 8 || s->length / 8 - 1 > HASH_CHUNK) {
		char where[128];
		kg_section_where(where, sizeof(where), s);
		return kg_errk(e, KG_ERR_CORRUPT, "%s: %llu bytes of page hashes",
			       where,
			       (unsigned long long)s->length);
	}
	uint64_t n = s->length / 8 - 1;
	/* at most HASH_CHUNK hashes, checked above: a bounded buffer */
	uint64_t *in = malloc(s->length), *mine = malloc(n * 8 + 8);
	int rc = -1;
	if (!in || !mine) {
		kg_errk(e, KG_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (kg_section_read(&r->r, in, s->length, e) < 0 ||
	    kg_section_finish(&r->r, e) < 0)
		goto out;
	uint64_t first = in[0];
	if (first > npages || n > npages - first) {
		kg_errk(e, KG_ERR_CORRUPT, "page hashes for pages %llu..%llu of %llu",
			(unsigned long long)first,
			(unsigned long long)(first + n),
			(unsigned long long)npages);
		goto out;
	}
	guest_mem_page_hashes(&r->vm->mem, first, n, mine);
	for (uint64_t i = 0; i < n; i++)
		if (mine[i] != in[1 + i]) {
			uint64_t p = first + i;
			r->need[p / 64] |= 1ull << (p % 64);
			r->nneed++;
		}
	rc = 0;
out:
	free(in);
	free(mine);
	return rc;
}

int epoch_receive(struct epoch_receiver *r, struct epoch_stats *st,
		  struct kg_err *e)
{
	memset(st, 0, sizeof(*st));
	uint64_t start = r->r.offset;
	struct kg_section s;
	int n = kg_reader_next(&r->r, &s, e);
	if (n <= 0)
		return n;
	if (s.kind != KG_SEC_EPOCH_BEGIN)
		return kg_errk(e, KG_ERR_CORRUPT,
			       "expected an epoch, got section kind 0x%x", s.kind);
	uint64_t begin[2] = { 0, 0 };
	size_t blen = s.version == 1 ? 8 : 16;
	if (s.version < 1 || s.version > EPOCH_BEGIN_VERSION ||
	    s.length != blen)
		return kg_errk(e, KG_ERR_CORRUPT,
			       "epoch-begin section: version %u with %llu "
			       "bytes", s.version,
			       (unsigned long long)s.length);
	if (kg_section_read(&r->r, begin, blen, e) < 0 ||
	    kg_section_finish(&r->r, e) < 0)
		return -1;
	st->seq = begin[0];
	if (begin[1] & ~(uint64_t)(EPOCH_F_LIVE | EPOCH_F_HASHES) ||
	    (begin[1] & EPOCH_F_HASHES && !(begin[1] & EPOCH_F_LIVE)))
		return kg_errk(e, KG_ERR_INVALID, "epoch %llu: unknown flags 0x%llx",
			       (unsigned long long)st->seq,
			       (unsigned long long)begin[1]);
	st->live = begin[1] & EPOCH_F_LIVE;
	st->hashes = begin[1] & EPOCH_F_HASHES;
	if (st->live && r->committed)
		return kg_errk(e, KG_ERR_CORRUPT,
			       "epoch %llu: a live round after a committed "
			       "epoch (the sender restarted its copy?)",
			       (unsigned long long)st->seq);
	vm_state_stage_clear(r->stage);
	drop_staged(r);
	if (begin[1] & EPOCH_F_HASHES) {
		uint64_t words = guest_mem_bitmap_words(&r->vm->mem);
		if (!r->need && !(r->need = calloc(words, sizeof(uint64_t))))
			return kg_errk(e, KG_ERR_NOMEM, "out of memory");
		memset(r->need, 0, words * sizeof(uint64_t));
		r->nneed = 0;
	}
	int rc = -1;
	for (;;) {
		n = kg_reader_next(&r->r, &s, e);
		if (n <= 0) {
			if (n == 0)
				kg_errk(e, KG_ERR_CORRUPT,
					"the stream ended inside epoch %llu",
					(unsigned long long)st->seq);
			goto out;
		}
		if (s.kind == KG_SEC_EPOCH_END) {
			uint64_t seq;
			if (s.length != 8 || kg_section_read(&r->r, &seq, 8, e) < 0 ||
			    kg_section_finish(&r->r, e) < 0)
				goto out;
			if (seq != st->seq) {
				kg_errk(e, KG_ERR_CORRUPT, "epoch %llu ends as epoch %llu",
					(unsigned long long)st->seq,
					(unsigned long long)seq);
				goto out;
			}
			break;
		}
		int sr;
		if (s.kind == KG_SEC_DISK_BLOCKS && !r->disk) {
			/* Refused whole, before anything is applied. */
			sr = kg_errk(e, KG_ERR_INVALID,
				     "epoch %llu: disk contents in the "
				     "stream, but this side has no disk to "
				     "write them to",
				     (unsigned long long)st->seq);
		} else if (s.kind == KG_SEC_CPUID) {
			sr = r->vm ? cpuid_state_check(&r->r, &s, r->vm, e)
				   : kg_section_finish(&r->r, e);
		} else if (s.kind == KG_SEC_RAM_PAGES ||
			   s.kind == KG_SEC_DISK_BLOCKS) {
			sr = stage_pages(r, &s, e);
			/* A live round: verified, so applied at once. */
			if (sr == 0 && st->live) {
				sr = apply_staged(r, &r->pages[r->npages - 1],
						  st, e);
				st->apply_failed = sr < 0;
				drop_staged(r);
			}
		} else if (st->live && s.kind == KG_SEC_PAGE_HASHES &&
			   begin[1] & EPOCH_F_HASHES) {
			sr = compare_hashes(r, &s, e);
		} else if (st->live && !(s.kind & KG_SEC_ANCILLARY)) {
			sr = kg_errk(e, KG_ERR_CORRUPT,
				     "epoch %llu: section kind 0x%x in a "
				     "live round", (unsigned long long)st->seq,
				     s.kind);
		} else if (vm_state_section(s.kind))
			sr = vm_state_stage_section(&r->r, &s, r->vm, r->stage, e);
		else if (s.kind == KG_SEC_PAD || (s.kind & KG_SEC_ANCILLARY))
			sr = kg_section_finish(&r->r, e);
		else
			sr = kg_errk(e, KG_ERR_CORRUPT,
				     "section kind 0x%x in an epoch", s.kind);
		if (sr < 0)
			goto out;
	}
	if (st->live)
		rc = 1;
	else
		rc = commit(r, st, e) < 0 ? -1 : 1;
out:
	drop_staged(r);
	st->stream_bytes = r->r.offset - start;
	return rc;
}

const uint64_t *epoch_receiver_needed(struct epoch_receiver *r,
				      uint64_t *count)
{
	*count = r->nneed;
	return r->need;
}

void epoch_receiver_free(struct epoch_receiver *r)
{
	if (!r)
		return;
	free(r->need);
	struct kg_budget *b = kg_reader_budget(&r->r);
	for (size_t i = 0; i < r->cap; i++) {
		free(r->pages[i].payload);
		kg_budget_release(b, r->pages[i].bufcap);
	}
	kg_budget_release(b, r->cap * sizeof(*r->pages));
	free(r->pages);
	vm_state_stage_free(r->stage);
	free(r);
}

struct kg_stream_writer *epoch_sender_writer(struct epoch_sender *s)
{
	return &s->w;
}

struct kg_stream_reader *epoch_receiver_reader(struct epoch_receiver *r)
{
	return &r->r;
}
