/* The recording gate: deterministic delivery of inputs, and their log. */
#include "recorder.h"

#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmm/kvm.h"
#include "vmm/vm.h"
#include "digest.h"
#include "rr_log.h"
#include "base/clock.h"

#define QUEUE_MAX (64u << 20) /* device bytes waiting for an exit */
#define SECTION_FILL (256u << 10)
#define HLT_WAIT_NS 10000000ull
#define TIMES_MAX 64 /* clock reads inside one exit (string I/O) */

struct pending_write {
	struct pending_write *next;
	uint64_t gpa;
	uint32_t len;
	uint8_t data[];
};

struct recorder {
	struct vm *vm;
	struct recorder_opts opts;
	struct rr_sink sink; /* opts.sink points here when set */
	const struct gate_ops *saved_ops;

	pthread_mutex_t lock; /* queue, idle wakeups, stats read */
	pthread_cond_t cond;
	struct pending_write *head, **tail;
	uint64_t queued_bytes;

	/* vCPU thread only */
	bool in_exit, failed;
	struct rr_exit cur;
	uint64_t times[TIMES_MAX];
	unsigned ntimes;
	uint64_t last_time;
	uint64_t exits;
	struct rr_buf buf;
	struct rr_hasher hasher;
	bool hashing;
	uint64_t next_digest_ns, last_flush_ns;
	char error[512];

	struct recorder_stats st;
};

static struct recorder *of(struct gate *g)
{
	return g->impl;
}

/* Recording cannot go on: the VM stops with the reason (first one wins). */
static void fail(struct recorder *r, const struct kg_err *e)
{
	if (!r->failed) {
		r->failed = true;
		snprintf(r->error, sizeof(r->error), "%s", e->msg);
	}
	vm_request_stop(r->vm, VM_STOP_ERROR, 0, "recording: %s", e->msg);
}

static void count(struct gate *g, enum gate_input k)
{
	atomic_fetch_add_explicit(&g->count[k], 1, memory_order_relaxed);
}

static void add_data(struct recorder *r, const void *data, unsigned size)
{
	if (!r->in_exit || r->cur.len + size > RR_DATA_MAX)
		return;
	memcpy(r->cur.data + r->cur.len, data, size);
	r->cur.len += size;
}

static void rec_pio_in(struct gate *g, unsigned vcpu, uint16_t port,
		       unsigned size, void *data)
{
	(void)vcpu, (void)port;
	count(g, GATE_PIO_IN);
	add_data(of(g), data, size);
}

static void rec_mmio_read(struct gate *g, unsigned vcpu, uint64_t gpa,
			  unsigned size, void *data)
{
	(void)vcpu, (void)gpa;
	count(g, GATE_MMIO_READ);
	add_data(of(g), data, size);
}

/* Device threads (and the vCPU during an exit): queued until the end of
 * the next exit. A guest that does not exit for long makes the device
 * wait, up to a bound, then fail the request. */
static int rec_guest_write(struct gate *g, uint64_t gpa, const void *src,
			   size_t len, struct kg_err *e)
{
	struct recorder *r = of(g);
	if (!guest_mem_contains(g->mem, gpa, len))
		return kg_errf(e, "device write of %zu bytes at 0x%llx is "
			       "outside guest RAM", len,
			       (unsigned long long)gpa);
	if (len > RR_WRITE_MAX)
		return kg_errf(e, "device write of %zu bytes: more than %u in "
			       "one piece", len, RR_WRITE_MAX);
	struct pending_write *w = malloc(sizeof(*w) + len);
	if (!w)
		return kg_errf(e, "device write: out of memory");
	w->next = NULL;
	w->gpa = gpa;
	w->len = (uint32_t)len;
	memcpy(w->data, src, len);
	count(g, GATE_GUEST_WRITE);
	pthread_mutex_lock(&r->lock);
	struct timespec until = kg_deadline(CLOCK_REALTIME, 1000);
	while (r->queued_bytes + len > QUEUE_MAX) {
		if (pthread_cond_timedwait(&r->cond, &r->lock, &until) ==
		    ETIMEDOUT) {
			pthread_mutex_unlock(&r->lock);
			free(w);
			return kg_errf(e, "device write: %u MiB already wait "
				       "for the guest's next exit",
				       QUEUE_MAX >> 20);
		}
	}
	*r->tail = w;
	r->tail = &w->next;
	r->queued_bytes += len;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

static int rec_irq_line(struct gate *g, unsigned irq, int level,
			struct kg_err *e)
{
	(void)e;
	count(g, GATE_IRQ);
	if (g->irqchip) {
		g->irqchip->set_line(g->irqchip->ctx, irq, level);
		struct recorder *r = of(g);
		pthread_mutex_lock(&r->lock);
		pthread_cond_broadcast(&r->cond);
		pthread_mutex_unlock(&r->lock);
	}
	return 0;
}

/* The guest's clock: logged when the guest reads it (inside an exit);
 * other readers (state saves) get the same clock unlogged. */
static uint64_t rec_time_ns(struct gate *g)
{
	struct recorder *r = of(g);
	uint64_t t = kg_now_ns() - g->clock_base_ns;
	if (!r->in_exit)
		return t;
	count(g, GATE_TIME);
	if (t < r->last_time)
		t = r->last_time;
	if (r->ntimes < TIMES_MAX)
		r->times[r->ntimes++] = t - r->last_time;
	r->last_time = t;
	return t;
}

static int seal(struct recorder *r, struct kg_err *e);

static bool flush_wanted(struct recorder *r)
{
	return r->opts.sink && r->opts.sink->want_flush && r->buf.nrecords &&
	       r->opts.sink->want_flush(r->opts.sink->ctx);
}

static bool work_pending(struct recorder *r, uint64_t guest_ns)
{
	const struct gate_irqchip *ic = r->vm->gate.irqchip;
	return r->head || (ic && ic->pending(ic->ctx, guest_ns));
}

/* KAGAMI_PORT_IDLE: wait (inside the exit) until something would enter
 * at its end. */
static void rec_idle(struct gate *g, uint64_t max_ns)
{
	struct recorder *r = of(g);
	uint64_t now = kg_now_ns(), until = now + max_ns;
	const struct gate_irqchip *ic = g->irqchip;
	if (ic) {
		uint64_t guest = now - g->clock_base_ns;
		uint64_t dl = ic->next_deadline(ic->ctx, guest);
		if (dl != UINT64_MAX && dl - guest < max_ns)
			until = now + (dl > guest ? dl - guest : 0);
	}
	pthread_mutex_lock(&r->lock);
	r->st.idle_waits++;
	while (!work_pending(r, kg_now_ns() - g->clock_base_ns) &&
	       kg_now_ns() < until) {
		if (flush_wanted(r)) {
			/* Outputs wait for the log up to here: send it while
			 * the guest idles (this exit's records come later). */
			pthread_mutex_unlock(&r->lock);
			struct kg_err e;
			if (seal(r, &e) < 0)
				fail(r, &e);
			pthread_mutex_lock(&r->lock);
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t left = until - kg_now_ns();
		if ((int64_t)left <= 0)
			break;
		if (left > 1000000)
			left = 1000000; /* re-check a stop request */
		ts.tv_nsec += (long)left;
		ts.tv_sec += ts.tv_nsec / 1000000000;
		ts.tv_nsec %= 1000000000;
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
	}
	pthread_mutex_unlock(&r->lock);
}

static int get_regs(int fd, uint64_t regs[RR_NREGS], struct kg_err *e)
{
	struct kvm_regs kr;
	if (kvm_ioctl(fd, KVM_GET_REGS, &kr, e) < 0)
		return -1;
	rr_regs_from_kvm(&kr, regs);
	return 0;
}

static bool rec_exit_begin(struct gate *g, int vcpu_fd, struct kvm_run *run)
{
	struct recorder *r = of(g);
	struct kg_err e;
	rr_exit_describe(run, &r->cur);
	r->ntimes = 0;
	if (r->opts.sink && get_regs(vcpu_fd, r->cur.regs, &e) < 0) {
		fail(r, &e);
		return false;
	}
	/* Sealed between exits: this exit's records are not in yet. */
	if (flush_wanted(r) && seal(r, &e) < 0) {
		fail(r, &e);
		return false;
	}
	r->in_exit = true;
	return true;
}

static int seal(struct recorder *r, struct kg_err *e)
{
	if (!r->buf.nrecords)
		return 0;
	uint8_t *p;
	size_t n;
	size_t raw = r->buf.len;
	if (rr_seal(&r->buf, r->exits, &p, &n, e) < 0)
		return -1;
	int rc = r->opts.sink->put(r->opts.sink->ctx, p, n, r->exits, e);
	free(p);
	pthread_mutex_lock(&r->lock);
	r->st.sections++;
	r->st.raw_bytes += raw;
	r->st.log_bytes += n;
	pthread_mutex_unlock(&r->lock);
	r->last_flush_ns = kg_now_ns();
	return rc;
}

/* Applies the queued device writes (in order) and logs them. */
static int drain(struct recorder *r, struct kg_err *e)
{
	pthread_mutex_lock(&r->lock);
	struct pending_write *w = r->head;
	r->head = NULL;
	r->tail = &r->head;
	r->queued_bytes = 0;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	int rc = 0;
	uint64_t n = 0, bytes = 0;
	while (w) {
		struct pending_write *next = w->next;
		if (rc == 0) {
			memcpy(guest_mem_ptr(&r->vm->mem, w->gpa, w->len),
			       w->data, w->len);
			guest_mem_mark_dirty(&r->vm->mem, w->gpa, w->len);
			if (r->opts.sink)
				rc = rr_put_write(&r->buf, w->gpa, w->data,
						  w->len, e);
			n++;
			bytes += w->len;
		}
		free(w);
		w = next;
	}
	pthread_mutex_lock(&r->lock);
	r->st.writes += n;
	r->st.write_bytes += bytes;
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* An interrupt enters only when the vCPU can take it now: otherwise it
 * stays pending in the controller until a later exit. */
static int inject(struct recorder *r, int vcpu_fd, struct kvm_run *run,
		  struct kg_err *e)
{
	const struct gate_irqchip *ic = r->vm->gate.irqchip;
	if (!ic || !run->ready_for_interrupt_injection || !run->if_flag)
		return 0;
	uint64_t guest = kg_now_ns() - r->vm->gate.clock_base_ns;
	int vec = ic->ack(ic->ctx, guest);
	if (vec < 0)
		return 0;
	struct kvm_interrupt irq = { .irq = (uint32_t)vec };
	if (kvm_ioctl(vcpu_fd, KVM_INTERRUPT, &irq, e) < 0)
		return -1;
	pthread_mutex_lock(&r->lock);
	r->st.irqs++;
	pthread_mutex_unlock(&r->lock);
	return r->opts.sink ? rr_put_irq(&r->buf, (uint8_t)vec, e) : 0;
}

/* HLT: the guest waits for an interrupt; with interrupts off it waits
 * forever, which is a crash as without deterministic mode. */
static void halt_wait(struct recorder *r, struct kvm_run *run)
{
	if (!run->if_flag) {
		vm_request_stop(r->vm, VM_STOP_CRASH, 0,
				"vCPU 0: guest halted with interrupts "
				"disabled (KVM_EXIT_HLT)");
		return;
	}
	rec_idle(&r->vm->gate, HLT_WAIT_NS);
}

static void rec_exit_end(struct gate *g, int vcpu_fd, struct kvm_run *run)
{
	struct recorder *r = of(g);
	struct kg_err e;
	r->in_exit = false;
	r->exits++;
	if (r->failed)
		return;
	if (r->cur.type == RR_HLT)
		halt_wait(r, run);
	int rc = 0;
	if (r->opts.sink) {
		rc = rr_put_exit(&r->buf, &r->cur, &e);
		for (unsigned i = 0; rc == 0 && i < r->ntimes; i++)
			rc = rr_put_time(&r->buf, r->times[i], &e);
	}
	if (rc == 0)
		rc = drain(r, &e);
	if (rc == 0)
		rc = inject(r, vcpu_fd, run, &e);
	uint64_t now = kg_now_ns();
	if (rc == 0 && r->hashing && now >= r->next_digest_ns) {
		struct rr_digest d;
		rc = rr_hasher_digest(&r->hasher, &d, &e);
		if (rc == 0)
			rc = rr_put_digest(&r->buf, &d, &e);
		r->next_digest_ns = now + r->opts.digest_ns;
		pthread_mutex_lock(&r->lock);
		r->st.digests++;
		pthread_mutex_unlock(&r->lock);
	}
	if (rc == 0 && r->opts.sink &&
	    (r->buf.len >= SECTION_FILL || flush_wanted(r) ||
	     (r->opts.flush_ns && now - r->last_flush_ns >= r->opts.flush_ns)))
		rc = seal(r, &e);
	pthread_mutex_lock(&r->lock);
	r->st.exits = r->exits;
	r->st.time_reads += r->ntimes;
	pthread_mutex_unlock(&r->lock);
	if (rc < 0)
		fail(r, &e);
}

static const struct gate_ops record_ops = {
	.name = "record",
	.pio_in = rec_pio_in,
	.mmio_read = rec_mmio_read,
	.guest_write = rec_guest_write,
	.irq_line = rec_irq_line,
	.time_ns = rec_time_ns,
	.idle = rec_idle,
	.exit_begin = rec_exit_begin,
	.exit_end = rec_exit_end,
};

struct recorder *recorder_new(struct vm *vm, const struct recorder_opts *o,
			      struct kg_err *e)
{
	if (!vm->cfg.deterministic) {
		kg_errf(e, "recording needs a deterministic VM");
		return NULL;
	}
	struct recorder *r = calloc(1, sizeof(*r));
	if (!r) {
		kg_errf(e, "out of memory");
		return NULL;
	}
	r->vm = vm;
	r->opts = *o;
	if (o->sink) {
		r->sink = *o->sink;
		r->opts.sink = &r->sink;
	}
	r->tail = &r->head;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	r->last_flush_ns = kg_now_ns();
	if (o->sink && o->digest_ns) {
		if (rr_hasher_init(&r->hasher, vm, e) < 0) {
			recorder_free(r);
			return NULL;
		}
		r->hashing = true;
		r->next_digest_ns = kg_now_ns() + o->digest_ns;
	}
	r->buf.first_exit = 0;
	/* The first TIME record carries the clock itself (a delta from 0). */
	r->last_time = 0;
	r->saved_ops = vm->gate.ops;
	vm->gate.impl = r;
	vm->gate.ops = &record_ops;
	return r;
}

int recorder_set_sink(struct recorder *r, const struct rr_sink *sink,
		      struct kg_err *e)
{
	r->buf.len = 0;
	r->buf.nrecords = 0;
	r->buf.first_exit = r->exits;
	memset(r->buf.prev_regs, 0, sizeof(r->buf.prev_regs));
	/* Without a sink nobody owns the dirty log but a checkpoint that
	 * may run meanwhile (the next session's first copy): the page
	 * hashes start over with the next sink. */
	if (r->hashing) {
		rr_hasher_free(&r->hasher);
		r->hashing = false;
	}
	if (!sink) {
		r->opts.sink = NULL;
		return 0;
	}
	if (r->opts.digest_ns) {
		if (rr_hasher_init(&r->hasher, r->vm, e) < 0)
			return -1;
		r->hashing = true;
	}
	r->next_digest_ns = kg_now_ns() + r->opts.digest_ns;
	r->sink = *sink;
	r->opts.sink = &r->sink;
	r->failed = false;
	return 0;
}

int recorder_flush(struct recorder *r, struct kg_err *e)
{
	if (!r->opts.sink)
		return 0;
	return seal(r, e);
}

const char *recorder_error(const struct recorder *r)
{
	return r->failed ? r->error : NULL;
}

void recorder_stats(struct recorder *r, struct recorder_stats *st)
{
	pthread_mutex_lock(&r->lock);
	*st = r->st;
	pthread_mutex_unlock(&r->lock);
}

struct recorder *recorder_of(struct vm *vm)
{
	return vm->gate.ops == &record_ops ? vm->gate.impl : NULL;
}

uint64_t recorder_exits(struct recorder *r)
{
	pthread_mutex_lock(&r->lock);
	uint64_t n = r->st.exits;
	pthread_mutex_unlock(&r->lock);
	return n;
}

void recorder_free(struct recorder *r)
{
	if (!r)
		return;
	if (r->saved_ops) {
		r->vm->gate.ops = r->saved_ops;
		r->vm->gate.impl = NULL;
	}
	while (r->head) {
		struct pending_write *n = r->head->next;
		free(r->head);
		r->head = n;
	}
	if (r->hashing) {
		struct kg_err e;
		guest_mem_dirty_log(&r->vm->mem, r->vm->vm_fd, false, &e);
		rr_hasher_free(&r->hasher);
	}
	rr_buf_free(&r->buf);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r);
}
