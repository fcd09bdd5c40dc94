/*
 * Live pre-copy rounds (ft/checkpoint/epoch.h): rounds read while the
 * guest runs, then a paused epoch, make the receiver's RAM equal the
 * sender's; the receiver applies a live round as it comes and refuses one
 * after a committed epoch; epoch_dirty_pending counts what the next round
 * will carry; disk sections go to the receiver's sink at once in a live
 * round, at commit in a paused epoch, and are refused without a sink.
 * Skips without /dev/kvm, fails under CI=true.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ft/checkpoint/epoch.h"
#include "ft/checkpoint/stream.h"
#include "vm_fixture.h"

#define PAGE 4096u
#define MAXEP 64

static void config(struct vm_run *r, struct vm_config *cfg, const char *image,
		   const char *cmdline)
{
	vm_run_config(r, cfg, 64ull << 20, 1, image, cmdline);
}

/* Compares both VMs' RAM byte for byte: the index of the first differing
 * page, or -1. */
static long first_diff_page(const struct vm *a, const struct vm *b)
{
	assert_true(a->mem.size == b->mem.size);
	for (uint64_t off = 0; off < a->mem.size; off += PAGE)
		if (memcmp(a->mem.base + off, b->mem.base + off, PAGE))
			return (long)(off / PAGE);
	return -1;
}

static void assert_same_ram(const struct vm *a, const struct vm *b)
{
	long p = first_diff_page(a, b);
	if (p >= 0)
		fail_msg("RAM differs at page %ld (offset 0x%lx)", p,
			 (unsigned long)p * PAGE);
}

/* --- a fake disk on each side --- */

#define DISK_SIZE (1u << 20)

struct disk {
	uint8_t data[2][DISK_SIZE];
	int applies;
	uint64_t bytes;
	/* sender: the blocks to send next (offset, len), per disk 0 */
	uint64_t next_off[8], next_len[8];
	int nnext;
	int sends, firsts;
	struct kg_err fail; /* apply fails when set ... */
	int fail_from;      /* ... from this many applies on */
};

static int disk_send(void *ctx, struct kg_stream_writer *w, bool first,
		     uint64_t *bytes, struct kg_err *e)
{
	struct disk *d = ctx;
	d->sends++;
	d->firsts += first;
	for (int i = 0; i < d->nnext; i++) {
		uint16_t disk = (uint16_t)(i & 1);
		uint64_t len = d->next_len[i];
		uint8_t *buf = malloc(8 + len);
		if (!buf)
			return kg_errf(e, "out of memory");
		memcpy(buf, &d->next_off[i], 8);
		memcpy(buf + 8, d->data[disk] + d->next_off[i], len);
		int r = kg_writer_section(w, KG_SEC_DISK_BLOCKS, disk, 1, buf,
					  8 + len, e);
		free(buf);
		if (r < 0)
			return -1;
		*bytes += len;
	}
	d->nnext = 0;
	return 0;
}

static const struct epoch_disk_ops disk_ops = { disk_send };

static int disk_apply(void *ctx, uint16_t disk, uint64_t offset,
		      const uint8_t *data, size_t len, struct kg_err *e)
{
	struct disk *d = ctx;
	if (d->fail.msg[0] && d->applies >= d->fail_from)
		return kg_errk(e, d->fail.kind, "%s", d->fail.msg);
	if (disk > 1 || offset > DISK_SIZE || len > DISK_SIZE - offset)
		return kg_errf(e, "disk %u: bad range", disk);
	memcpy(d->data[disk] + offset, data, len);
	d->applies++;
	d->bytes += len;
	return 0;
}

static const struct epoch_disk_sink disk_sink = { disk_apply };

/* Sender-side: fills a block with a pattern and queues it. */
static void disk_write(struct disk *d, uint64_t off, uint64_t len,
		       uint8_t seed)
{
	int i = d->nnext++;
	uint16_t disk = (uint16_t)(i & 1);
	for (uint64_t k = 0; k < len; k++)
		d->data[disk][off + k] = (uint8_t)(seed + k * 31 + (k >> 8));
	d->next_off[i] = off;
	d->next_len[i] = len;
}

/* --- a receiver on its own thread, epoch by epoch --- */

struct rx {
	int fd;
	struct vm_run *r;
	struct disk *disk; /* NULL: no sink */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool ready, done;
	int n, rc;
	struct epoch_stats st[MAXEP];
	bool committed[MAXEP];
	struct kg_err e;
	bool apply_failed; /* the failing epoch_receive's */
	struct epoch_receiver *er;
};

static void *rx_main(void *arg)
{
	struct rx *c = arg;
	struct vm_state_config vc;
	struct kg_err e = { 0 };
	struct epoch_receiver *er = epoch_receiver_new(c->fd, &vc, &e);
	struct vm_config cfg;
	int rc = 0;
	if (!er) {
		rc = -1;
		goto out;
	}
	config(c->r, &cfg, NULL, NULL);
	cfg.mem_size = vc.mem_size;
	cfg.ncpus = vc.ncpus;
	if (vm_create(&c->r->vm, &cfg, &e) < 0) {
		rc = -1;
		epoch_receiver_free(er);
		er = NULL;
		goto out;
	}
	epoch_receiver_attach(er, &c->r->vm);
	if (c->disk)
		epoch_receiver_set_disk(er, &disk_sink, c->disk);
	pthread_mutex_lock(&c->mu);
	c->ready = true;
	c->er = er;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	for (;;) {
		struct epoch_stats st;
		int n = epoch_receive(er, &st, &e);
		pthread_mutex_lock(&c->mu);
		if (n > 0 && c->n < MAXEP) {
			c->st[c->n] = st;
			c->committed[c->n] = epoch_receiver_committed(er);
			c->n++;
		}
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
		if (n <= 0) {
			rc = n;
			c->apply_failed = st.apply_failed;
			break;
		}
	}
out:
	pthread_mutex_lock(&c->mu);
	c->rc = rc;
	c->e = e;
	c->done = true;
	c->ready = true;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

static void rx_start(struct rx *c, pthread_t *th)
{
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	assert_int_equal(pthread_create(th, NULL, rx_main, c), 0);
}

/* Waits (bounded) until the receiver has taken n epochs or ended. */
static int rx_wait(struct rx *c, int n)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 20;
	pthread_mutex_lock(&c->mu);
	while (c->n < n && !c->done)
		if (pthread_cond_timedwait(&c->cv, &c->mu, &dl))
			break;
	int got = c->n;
	pthread_mutex_unlock(&c->mu);
	return got;
}

static void rx_free(struct rx *c)
{
	if (c->er)
		epoch_receiver_free(c->er);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
}

/* --- progress reports --- */

struct progress {
	int calls;
	uint64_t last, total;
	bool backwards;
};

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct progress *p = ctx;
	if (done < p->last || (p->calls && total != p->total) || done > total)
		p->backwards = true;
	p->calls++;
	p->last = done;
	p->total = total;
}

/* --- 1: a running guest, live rounds, then a paused epoch --- */

static void test_live_rounds_running_guest(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	struct vm_run *src = calloc(1, sizeof(*src)), *dst = calloc(1, sizeof(*dst));
	struct vm_config cfg;
	struct kg_err e = { 0 };
	int p[2];
	assert_int_equal(pipe(p), 0);
	config(src, &cfg, MEMSTRESS, "mib=16 total=100000 seed=5 rate=256");
	if (vm_create(&src->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	struct rx *rc = calloc(1, sizeof(*rc));
	rc->fd = p[0];
	rc->r = dst;
	pthread_t rt;
	rx_start(rc, &rt);
	vm_run_start(src);
	usleep(200000);
	/* The sender starts while the guest runs. */
	struct epoch_sender *s = epoch_sender_new(&src->vm, p[1], &e);
	if (!s)
		fail_msg("sender: %s", e.msg);
	struct epoch_stats st;
	struct progress pr = { 0 };
	if (epoch_send_live(s, true, on_progress, &pr, &st, &e) < 0)
		fail_msg("live round 1: %s", e.msg);
	assert_true(st.live);
	assert_true(st.seq == 1);
	assert_true(st.dirty_pages > 0);
	assert_true(st.stream_bytes > 0);
	assert_true(pr.calls > 0);
	assert_false(pr.backwards);
	assert_true(pr.last == pr.total);
	assert_true(pr.total == st.dirty_pages);
	uint64_t first = st.dirty_pages;
	for (int i = 0; i < 3; i++) {
		usleep(40000);
		uint64_t pend = 0;
		assert_int_equal(epoch_dirty_pending(s, &pend, &e), 0);
		if (epoch_send_live(s, false, NULL, NULL, &st, &e) < 0)
			fail_msg("live round %d: %s", i + 2, e.msg);
		assert_true(st.live);
		assert_true(st.seq == (uint64_t)i + 2);
		/* What was pending is in the round, and more if the guest
		 * wrote since. */
		assert_true(st.dirty_pages >= pend);
		assert_true(st.dirty_pages > 0); /* memstress writes */
		print_message("live round %d: %llu pages (%llu pending before), "
			      "%llu bytes\n", i + 2,
			      (unsigned long long)st.dirty_pages,
			      (unsigned long long)pend,
			      (unsigned long long)st.stream_bytes);
	}
	print_message("live round 1: %llu pages\n", (unsigned long long)first);
	vm_pause(&src->vm);
	if (epoch_send(s, false, &st, &e) < 0 || epoch_wait(s, &e) < 0)
		fail_msg("paused epoch: %s", e.msg);
	assert_false(st.live);
	assert_true(st.seq == 5);
	assert_int_equal(epoch_sender_finish(s, &e), 0);
	close(p[1]);
	pthread_join(rt, NULL);
	if (rc->rc != 0)
		fail_msg("receiver: %s", rc->e.msg);
	assert_int_equal(rc->n, 5);
	for (int i = 0; i < 5; i++) {
		assert_true(rc->st[i].seq == (uint64_t)i + 1);
		assert_int_equal(rc->st[i].live, i < 4);
		assert_int_equal(rc->committed[i], i == 4);
	}
	assert_true(rc->st[0].dirty_pages > 0);
	/* The paused source and its replica: byte for byte. */
	assert_same_ram(&src->vm, &dst->vm);
	vm_request_stop(&src->vm, VM_STOP_REQUEST, 0, NULL);
	pthread_join(src->thread, NULL);
	epoch_sender_free(s);
	vm_destroy(&src->vm);
	free(vm_run_output(src));
	vm_destroy(&dst->vm);
	unlink(dst->console);
	rx_free(rc);
	free(rc);
	free(src);
	free(dst);
	close(p[0]);
}

/* --- 2: a paused guest, host writes, rounds applied as they come --- */

static void host_write(struct vm *vm, uint64_t gpa, uint8_t seed, bool tracked)
{
	uint8_t page[PAGE];
	for (unsigned i = 0; i < PAGE; i++)
		page[i] = (uint8_t)(seed ^ (i * 13));
	if (tracked) {
		struct kg_err e;
		if (gate_guest_write(&vm->gate, gpa, page, PAGE, &e) < 0)
			fail_msg("gate_guest_write: %s", e.msg);
	} else {
		memcpy(guest_mem_ptr(&vm->mem, gpa, PAGE), page, PAGE);
	}
}

static void test_live_rounds_paused_host_writes(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	struct vm_run *src = calloc(1, sizeof(*src)), *dst = calloc(1, sizeof(*dst));
	struct vm_config cfg;
	struct kg_err e = { 0 };
	int p[2];
	assert_int_equal(pipe(p), 0);
	/* Loaded, never run: the guest writes nothing, only the host. */
	config(src, &cfg, MEMSTRESS, "mib=4");
	if (vm_create(&src->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	struct rx *rc = calloc(1, sizeof(*rc));
	rc->fd = p[0];
	rc->r = dst;
	pthread_t rt;
	rx_start(rc, &rt);
	struct epoch_sender *s = epoch_sender_new(&src->vm, p[1], &e);
	if (!s)
		fail_msg("sender: %s", e.msg);
	struct epoch_stats st;
	/* Round 1: everything. Applied before anything is committed. */
	assert_int_equal(epoch_send_live(s, true, NULL, NULL, &st, &e), 0);
	assert_true(st.live && st.seq == 1);
	assert_true(st.dirty_pages > 0); /* the image's pages at least */
	assert_int_equal(rx_wait(rc, 1), 1);
	assert_true(rc->st[0].live);
	assert_false(rc->committed[0]);
	assert_same_ram(&src->vm, &dst->vm);

	/* Nothing written since: nothing pending, an empty round. */
	uint64_t pend = 99;
	assert_int_equal(epoch_dirty_pending(s, &pend, &e), 0);
	assert_true(pend == 0);

	/* Host writes through the gate (the VMM's dirty bitmap). */
	const uint64_t mib = 1ull << 20;
	host_write(&src->vm, 8 * mib, 1, true);
	host_write(&src->vm, 8 * mib + PAGE, 2, true);
	host_write(&src->vm, 20 * mib, 3, true);
	assert_int_equal(epoch_dirty_pending(s, &pend, &e), 0);
	assert_true(pend == 3);
	/* Asking again keeps them. */
	assert_int_equal(epoch_dirty_pending(s, &pend, &e), 0);
	assert_true(pend == 3);
	host_write(&src->vm, 20 * mib, 4, true); /* the same page again */
	host_write(&src->vm, 40 * mib + 5 * PAGE, 5, true);
	assert_int_equal(epoch_dirty_pending(s, &pend, &e), 0);
	assert_true(pend == 4);
	/* A write behind the dirty logs' back is not counted, nor sent. */
	host_write(&src->vm, 50 * mib, 6, false);
	assert_int_equal(epoch_dirty_pending(s, &pend, &e), 0);
	assert_true(pend == 4);

	assert_int_equal(epoch_send_live(s, false, NULL, NULL, &st, &e), 0);
	assert_true(st.live && st.seq == 2);
	assert_true(st.dirty_pages == 4);
	assert_int_equal(rx_wait(rc, 2), 2);
	assert_true(rc->st[1].live);
	assert_true(rc->st[1].dirty_pages == 4);
	assert_true(first_diff_page(&src->vm, &dst->vm) == (long)(50 * mib / PAGE));
	assert_int_equal(epoch_dirty_pending(s, &pend, &e), 0);
	assert_true(pend == 0);

	/* Marked now: the next round carries it. */
	guest_mem_mark_dirty(&src->vm.mem, 50 * mib, PAGE);
	host_write(&src->vm, 60 * mib, 7, true);
	assert_int_equal(epoch_dirty_pending(s, &pend, &e), 0);
	assert_true(pend == 2);
	assert_int_equal(epoch_send_live(s, false, NULL, NULL, &st, &e), 0);
	assert_true(st.dirty_pages == 2);
	assert_int_equal(rx_wait(rc, 3), 3);
	assert_same_ram(&src->vm, &dst->vm);
	assert_false(rc->committed[2]);

	/* The paused epoch commits: state and the last pages. */
	host_write(&src->vm, 1 * mib, 8, true);
	vm_pause(&src->vm);
	assert_int_equal(epoch_send(s, false, &st, &e), 0);
	assert_int_equal(epoch_wait(s, &e), 0);
	assert_false(st.live);
	assert_true(st.seq == 4);
	assert_true(st.dirty_pages == 1);
	assert_int_equal(rx_wait(rc, 4), 4);
	assert_false(rc->st[3].live);
	assert_true(rc->committed[3]);
	assert_same_ram(&src->vm, &dst->vm);

	/* A live round now is refused by the receiver, naming it. */
	host_write(&src->vm, 2 * mib, 9, true);
	assert_int_equal(epoch_send_live(s, false, NULL, NULL, &st, &e), 0);
	assert_true(st.seq == 5);
	close(p[1]);
	pthread_join(rt, NULL);
	assert_int_equal(rc->n, 4);
	assert_int_equal(rc->rc, -1);
	print_message("refused: %s\n", rc->e.msg);
	assert_non_null(strstr(rc->e.msg, "epoch 5"));
	assert_non_null(strstr(rc->e.msg, "live round after a committed epoch"));
	/* the sender broke the protocol: nothing applied, the replica kept */
	assert_int_equal(rc->e.kind, KG_ERR_CORRUPT);
	assert_false(rc->apply_failed);
	/* and nothing of it was applied */
	assert_true(first_diff_page(&src->vm, &dst->vm) == (long)(2 * mib / PAGE));

	epoch_sender_free(s);
	vm_destroy(&src->vm);
	unlink(src->console);
	vm_destroy(&dst->vm);
	unlink(dst->console);
	rx_free(rc);
	free(rc);
	free(src);
	free(dst);
	close(p[0]);
}

/* --- 3: disk sections --- */

/* Receives the stream in path's first len bytes with a sink (disk, or
 * none): returns the epochs applied; *rc the last epoch_receive's result,
 * e its error, *last its stats. The receiving VM is destroyed before
 * returning. */
static int receive_file_st(const char *path, off_t len, struct disk *disk,
			   int *rc, struct kg_err *e, struct epoch_stats *sts,
			   struct epoch_stats *last)
{
	char cut[128];
	snprintf(cut, sizeof(cut), "%s.cut", path);
	int in = open(path, O_RDONLY), out = open(cut, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(in >= 0 && out >= 0);
	uint8_t *buf = malloc((size_t)len);
	assert_int_equal(pread(in, buf, (size_t)len, 0), len);
	assert_int_equal(write(out, buf, (size_t)len), len);
	free(buf);
	close(in);
	assert_int_equal(lseek(out, 0, SEEK_SET), 0);
	struct vm_run *dst = calloc(1, sizeof(*dst));
	struct vm_state_config vc;
	struct epoch_receiver *er = epoch_receiver_new(out, &vc, e);
	if (!er)
		fail_msg("receiver: %s", e->msg);
	struct vm_config cfg;
	config(dst, &cfg, NULL, NULL);
	cfg.mem_size = vc.mem_size;
	cfg.ncpus = vc.ncpus;
	if (vm_create(&dst->vm, &cfg, e) < 0)
		fail_msg("vm_create: %s", e->msg);
	epoch_receiver_attach(er, &dst->vm);
	if (disk)
		epoch_receiver_set_disk(er, &disk_sink, disk);
	int n = 0;
	for (;;) {
		struct epoch_stats st;
		*rc = epoch_receive(er, &st, e);
		if (*rc <= 0) {
			*last = st;
			break;
		}
		if (sts)
			sts[n] = st;
		n++;
	}
	epoch_receiver_free(er);
	vm_destroy(&dst->vm);
	unlink(dst->console);
	free(dst);
	close(out);
	unlink(cut);
	return n;
}

static int receive_file(const char *path, off_t len, struct disk *disk,
			int *rc, struct kg_err *e, struct epoch_stats *sts)
{
	struct epoch_stats last;
	return receive_file_st(path, len, disk, rc, e, sts, &last);
}

static void test_disk_sections(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	struct vm_run *src = calloc(1, sizeof(*src));
	struct disk *sd = calloc(1, sizeof(*sd)), *rd = calloc(1, sizeof(*rd));
	struct vm_config cfg;
	struct kg_err e = { 0 };
	char path[96];
	snprintf(path, sizeof(path), "/tmp/kagami-epoch-live-%d.stream", getpid());
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	config(src, &cfg, MEMSTRESS, "mib=4");
	if (vm_create(&src->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	struct epoch_sender *s = epoch_sender_new(&src->vm, fd, &e);
	if (!s)
		fail_msg("sender: %s", e.msg);
	epoch_sender_set_disk(s, &disk_ops, sd);
	struct epoch_stats st;
	/* Live round 1: three blocks (disks 0, 1, 0). */
	disk_write(sd, 0, 4096, 1);
	disk_write(sd, 65536, 10000, 2);
	disk_write(sd, 200000, 512, 3);
	assert_int_equal(epoch_send_live(s, true, NULL, NULL, &st, &e), 0);
	assert_true(st.disk_bytes == 4096 + 10000 + 512);
	off_t live1_end = lseek(fd, 0, SEEK_CUR);
	/* Live round 2: one block. */
	disk_write(sd, 8192, 3000, 4);
	assert_int_equal(epoch_send_live(s, false, NULL, NULL, &st, &e), 0);
	assert_true(st.disk_bytes == 3000);
	off_t live2_end = lseek(fd, 0, SEEK_CUR);
	/* The paused epoch: two blocks. */
	disk_write(sd, 300000, 2048, 5);
	disk_write(sd, 500000, 777, 6);
	assert_int_equal(epoch_send(s, false, &st, &e), 0);
	assert_int_equal(epoch_wait(s, &e), 0);
	assert_true(st.disk_bytes == 2048 + 777);
	off_t paused_end = lseek(fd, 0, SEEK_CUR);
	assert_int_equal(epoch_sender_finish(s, &e), 0);
	off_t end = lseek(fd, 0, SEEK_CUR);
	assert_int_equal(sd->sends, 3);
	assert_int_equal(sd->firsts, 1);
	epoch_sender_free(s);
	close(fd);

	int rc;
	struct epoch_stats sts[8];
	/* The whole stream: every block lands, per round. */
	int n = receive_file(path, end, rd, &rc, &e, sts);
	if (rc != 0)
		fail_msg("receive: %s", e.msg);
	assert_int_equal(n, 3);
	assert_true(sts[0].live && sts[1].live && !sts[2].live);
	assert_true(sts[0].disk_bytes == 4096 + 10000 + 512);
	assert_true(sts[1].disk_bytes == 3000);
	assert_true(sts[2].disk_bytes == 2048 + 777);
	assert_int_equal(rd->applies, 6);
	assert_memory_equal(rd->data, sd->data, sizeof(sd->data));

	/* Cut inside live round 2's end marker: its block was applied at
	 * once, before the round was complete. */
	memset(rd, 0, sizeof(*rd));
	struct epoch_stats last;
	n = receive_file_st(path, live2_end - 10, rd, &rc, &e, NULL, &last);
	assert_int_equal(n, 1);
	assert_int_equal(rc, -1);
	assert_int_equal(rd->applies, 4);
	/* a cut stream is damage found before applying: what was applied
	 * was whole sections (live), the failure itself applied nothing */
	assert_int_equal(e.kind, KG_ERR_CORRUPT);
	assert_false(last.apply_failed);

	/* Cut inside the paused epoch's end marker: its blocks are staged,
	 * never applied. */
	memset(rd, 0, sizeof(*rd));
	n = receive_file_st(path, paused_end - 10, rd, &rc, &e, NULL, &last);
	assert_int_equal(n, 2);
	assert_int_equal(rc, -1);
	print_message("cut paused epoch: %s\n", e.msg);
	assert_int_equal(e.kind, KG_ERR_CORRUPT);
	assert_false(last.apply_failed);
	assert_int_equal(rd->applies, 4);
	assert_true(rd->bytes == 4096 + 10000 + 512 + 3000);

	/* No sink: the live round with disk data is refused. */
	n = receive_file(path, end, NULL, &rc, &e, NULL);
	assert_int_equal(n, 0);
	assert_int_equal(rc, -1);
	print_message("no sink: %s\n", e.msg);
	assert_non_null(strstr(e.msg, "disk"));
	/* a setup the two sides do not share: this side cannot take it */
	assert_int_equal(e.kind, KG_ERR_INVALID);

	/* A sink that fails: the error comes back (live round). */
	memset(rd, 0, sizeof(*rd));
	snprintf(rd->fail.msg, sizeof(rd->fail.msg), "disk full");
	rd->fail.kind = KG_ERR_NO_SPACE;
	n = receive_file_st(path, live1_end, rd, &rc, &e, NULL, &last);
	assert_int_equal(n, 0);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(e.msg, "disk full"));
	/* the sink's kind comes back, and it failed while applying */
	assert_int_equal(e.kind, KG_ERR_NO_SPACE);
	assert_true(last.apply_failed);

	/* The same in the paused epoch, after its pages may be applied: the
	 * replica is no longer whole, and says so. */
	memset(rd, 0, sizeof(*rd));
	snprintf(rd->fail.msg, sizeof(rd->fail.msg), "disk full");
	rd->fail.kind = KG_ERR_NO_SPACE;
	rd->fail_from = 4; /* the live rounds' four blocks pass */
	n = receive_file_st(path, end, rd, &rc, &e, NULL, &last);
	assert_int_equal(n, 2);
	assert_int_equal(rc, -1);
	print_message("failed commit: %s\n", e.msg);
	assert_non_null(strstr(e.msg, "the receiver now needs a full epoch"));
	assert_int_equal(e.kind, KG_ERR_NO_SPACE);
	assert_true(last.apply_failed);

	vm_destroy(&src->vm);
	unlink(src->console);
	unlink(path);
	free(src);
	free(sd);
	free(rd);
}

/* No sink, and the disk data only in the paused epoch: refused at commit,
 * with the replica left as it was. */
static void test_disk_in_paused_epoch_without_sink(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	struct vm_run *src = calloc(1, sizeof(*src));
	struct disk *sd = calloc(1, sizeof(*sd));
	struct vm_config cfg;
	struct kg_err e = { 0 };
	char path[96];
	snprintf(path, sizeof(path), "/tmp/kagami-epoch-live2-%d.stream", getpid());
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	config(src, &cfg, MEMSTRESS, "mib=4");
	if (vm_create(&src->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	struct epoch_sender *s = epoch_sender_new(&src->vm, fd, &e);
	if (!s)
		fail_msg("sender: %s", e.msg);
	epoch_sender_set_disk(s, &disk_ops, sd);
	struct epoch_stats st;
	assert_int_equal(epoch_send_live(s, true, NULL, NULL, &st, &e), 0);
	assert_true(st.disk_bytes == 0);
	disk_write(sd, 4096, 4096, 9);
	assert_int_equal(epoch_send(s, false, &st, &e), 0);
	assert_int_equal(epoch_wait(s, &e), 0);
	assert_int_equal(epoch_sender_finish(s, &e), 0);
	off_t end = lseek(fd, 0, SEEK_CUR);
	epoch_sender_free(s);
	close(fd);
	int rc;
	int n = receive_file(path, end, NULL, &rc, &e, NULL);
	assert_int_equal(n, 1);
	assert_int_equal(rc, -1);
	print_message("no sink, paused: %s\n", e.msg);
	assert_non_null(strstr(e.msg, "no disk"));
	assert_int_equal(e.kind, KG_ERR_INVALID);
	vm_destroy(&src->vm);
	unlink(src->console);
	unlink(path);
	free(src);
	free(sd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_live_rounds_running_guest),
		cmocka_unit_test(test_live_rounds_paused_host_writes),
		cmocka_unit_test(test_disk_sections),
		cmocka_unit_test(test_disk_in_paused_epoch_without_sink),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
