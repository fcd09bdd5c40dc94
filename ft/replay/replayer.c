/* The replaying gate: the log's inputs in, every exit checked. */
#include "replayer.h"

#include <inttypes.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/kvm.h"
#include "vmm/vm.h"
#include "ft/record/digest.h"
#include "ft/record/rr_log.h"

#define TIMES_MAX 64

struct replayer {
	struct vm *vm;
	struct replayer_opts o;
	uint64_t corrupt_at; /* the replay.corrupt fault point; 0: none */
	const struct gate_ops *saved_ops;

	pthread_mutex_t lock; /* state, report, stats for other threads */
	enum replay_state state;
	char report[4096];
	struct replay_stats st;

	/* vCPU thread only */
	struct rr_decoder dec;
	bool dec_loaded, have;
	struct rr_record rec;
	char where[160];
	struct rr_exit expect;
	uint64_t exits;
	uint64_t times[TIMES_MAX];
	unsigned ntimes, time_pos;
	uint32_t data_pos;
	bool in_exit, clock_extra, data_short;
	_Atomic uint64_t guest_ns;
	struct rr_hasher hasher;
	bool hashing;
};

static struct replayer *of(struct gate *g)
{
	return g->impl;
}

static void count(struct gate *g, enum gate_input k)
{
	atomic_fetch_add_explicit(&g->count[k], 1, memory_order_relaxed);
}

static void set_state(struct replayer *p, enum replay_state s,
		      const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_state(struct replayer *p, enum replay_state s,
		      const char *fmt, ...)
{
	pthread_mutex_lock(&p->lock);
	if (p->state == REPLAY_RUNNING || s == REPLAY_RUNNING) {
		p->state = s;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p->report, sizeof(p->report), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&p->lock);
}

static enum replay_state get_state(struct replayer *p)
{
	pthread_mutex_lock(&p->lock);
	enum replay_state s = p->state;
	pthread_mutex_unlock(&p->lock);
	return s;
}

static void failed(struct replayer *p, const struct kg_err *e)
{
	set_state(p, REPLAY_FAILED, "replay stopped at exit %" PRIu64
		  ": the log cannot be read: %s", p->exits, e->msg);
	vm_request_stop(p->vm, VM_STOP_ERROR, 0,
			"replay: the log cannot be read at exit %" PRIu64 ": %s",
			p->exits, e->msg);
}

/* The next record within the loaded section only: an exit's records never
 * straddle sections (the recorder seals between exits). */
static bool peek_local(struct replayer *p, struct kg_err *e, int *err)
{
	*err = 0;
	if (p->have)
		return true;
	if (!p->dec_loaded)
		return false;
	int r = rr_decoder_next(&p->dec, &p->rec, e);
	if (r < 0) {
		kg_err_prefix(e, "%s", p->where);
		*err = -1;
		return false;
	}
	p->have = r == 1;
	return p->have;
}

/* The next record, loading sections from the source as needed: 1, 0 at
 * the end of the log, -1 on error. */
static int peek(struct replayer *p, struct kg_err *e)
{
	for (;;) {
		int err;
		if (peek_local(p, e, &err))
			return 1;
		if (err)
			return -1;
		uint8_t *pl = NULL;
		size_t n = 0;
		int r = p->o.src->next(p->o.src->ctx, &pl, &n, p->where,
				       sizeof(p->where), e);
		if (r <= 0)
			return r;
		if (!p->dec_loaded && p->o.start_anywhere && n >= RR_SEC_HEADER) {
			uint64_t first = 0;
			for (int i = 7; i >= 0; i--)
				first = first << 8 | pl[8 + i];
			p->dec.exit_index = first;
			p->exits = first;
		}
		r = rr_decoder_load(&p->dec, pl, n, e);
		free(pl);
		if (r < 0)
			return kg_err_prefix(e, "%s", p->where);
		p->dec_loaded = true;
	}
}

static void exit_text(char *buf, size_t n, const struct rr_exit *x)
{
	if (x->type == RR_HLT)
		snprintf(buf, n, "HLT at rip=0x%" PRIx64, x->regs[RR_RIP]);
	else
		snprintf(buf, n, "%s %s0x%" PRIx64 " size %u%s at rip=0x%" PRIx64,
			 rr_exit_type_name(x->type),
			 x->type <= RR_PIO_OUT ? "port " : "",
			 x->addr, x->size,
			 x->count > 1 ? " (string I/O)" : "",
			 x->regs[RR_RIP]);
}

static size_t regs_diff(char *buf, size_t n, const uint64_t *want,
			const uint64_t *got, unsigned nregs,
			const char *const *names)
{
	size_t off = 0;
	for (unsigned i = 0; i < nregs && off < n; i++)
		if (want[i] != got[i])
			off += (size_t)snprintf(buf + off, n - off,
					       "\n    %-6s 0x%016" PRIx64
					       " -> 0x%016" PRIx64,
					       names ? names[i] : rr_reg_name(i),
					       want[i], got[i]);
	return off;
}

static void diverged(struct replayer *p, const char *what,
		     const struct rr_exit *actual, const char *extra)
{
	char exp[160], act[160], regs[1600] = "";
	exit_text(exp, sizeof(exp), &p->expect);
	exit_text(act, sizeof(act), actual);
	size_t n = regs_diff(regs, sizeof(regs), p->expect.regs, actual->regs,
			     RR_NREGS, NULL);
	set_state(p, REPLAY_DIVERGED,
		  "replay diverged at exit %" PRIu64 " (%s): %s\n"
		  "  expected: %s\n  actual:   %s\n"
		  "  registers that differ (recorded -> replayed):%s%s",
		  p->exits, p->where, what, exp, act,
		  n ? regs : " none", extra ? extra : "");
	vm_request_stop(p->vm, VM_STOP_ERROR, 0,
			"replay diverged at exit %" PRIu64 ": %s", p->exits,
			what);
}

/* A read gets the next bytes the recording's exit read. */
static void substitute(struct replayer *p, unsigned size, void *data)
{
	if (!p->in_exit)
		return;
	if (p->data_pos + size > p->expect.len) {
		p->data_short = true;
		return;
	}
	memcpy(data, p->expect.data + p->data_pos, size);
	p->data_pos += size;
}

static void rep_pio_in(struct gate *g, unsigned vcpu, uint16_t port,
		       unsigned size, void *data)
{
	(void)vcpu, (void)port;
	count(g, GATE_PIO_IN);
	substitute(of(g), size, data);
}

static void rep_mmio_read(struct gate *g, unsigned vcpu, uint64_t gpa,
			  unsigned size, void *data)
{
	(void)vcpu, (void)gpa;
	count(g, GATE_MMIO_READ);
	substitute(of(g), size, data);
}

/* Devices do no I/O while replaying; anything that still arrives here is
 * not what the guest saw, which the log holds. */
static int rep_guest_write(struct gate *g, uint64_t gpa, const void *src,
			   size_t len, struct kg_err *e)
{
	struct replayer *p = of(g);
	(void)src;
	if (!guest_mem_contains(g->mem, gpa, len))
		return kg_errf(e, "device write of %zu bytes at 0x%llx is "
			       "outside guest RAM", len,
			       (unsigned long long)gpa);
	pthread_mutex_lock(&p->lock);
	p->st.dropped_device_writes++;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static int rep_irq_line(struct gate *g, unsigned irq, int level,
			struct kg_err *e)
{
	(void)irq, (void)level, (void)e;
	count(g, GATE_IRQ);
	return 0;
}

static uint64_t rep_time_ns(struct gate *g)
{
	struct replayer *p = of(g);
	if (p->in_exit) {
		count(g, GATE_TIME);
		if (p->time_pos < p->ntimes)
			atomic_fetch_add(&p->guest_ns, p->times[p->time_pos++]);
		else
			p->clock_extra = true;
	}
	return atomic_load(&p->guest_ns);
}

static void rep_idle(struct gate *g, uint64_t max_ns)
{
	(void)g, (void)max_ns; /* what arrived while the guest idled is logged */
}

static bool rep_exit_begin(struct gate *g, int vcpu_fd, struct kvm_run *run)
{
	struct replayer *p = of(g);
	struct kg_err e;
	if (get_state(p) == REPLAY_UNTIL) {
		/* Resumed after --until: replay (and check) on. */
		if (p->o.digests && !p->hashing) {
			if (rr_hasher_init(&p->hasher, p->vm, &e) < 0) {
				failed(p, &e);
				return false;
			}
			p->hashing = true;
		}
		set_state(p, REPLAY_RUNNING, "%s", "");
	}
	if (get_state(p) != REPLAY_RUNNING)
		return false;
	int r = peek(p, &e);
	if (r < 0) {
		failed(p, &e);
		return false;
	}
	if (r == 0) {
		set_state(p, REPLAY_END, "replay: the log ends at exit %" PRIu64,
			  p->exits);
		if (p->o.on_end && p->o.on_end(p->o.on_end_ctx, p->exits)) {
			/* Live now: the new gate serves this exit. */
			struct gate *live = &p->vm->gate;
			return !live->ops->exit_begin ||
			       live->ops->exit_begin(live, vcpu_fd, run);
		}
		vm_request_stop(p->vm, VM_STOP_REQUEST, 0,
				"replay: end of the log at exit %" PRIu64,
				p->exits);
		return false;
	}
	if (p->rec.kind != RR_EXIT) {
		kg_errf(&e, "%s: a %s record where exit %" PRIu64
			" was expected", p->where, rr_kind_name(p->rec.kind),
			p->exits);
		failed(p, &e);
		return false;
	}
	p->expect = *p->rec.u.exit;
	p->have = false;
	p->ntimes = p->time_pos = 0;
	int err = 0;
	while (peek_local(p, &e, &err) && p->rec.kind == RR_TIME) {
		if (p->ntimes == TIMES_MAX) {
			kg_errf(&e, "%s: more than %d clock reads at exit %"
				PRIu64, p->where, TIMES_MAX, p->exits);
			failed(p, &e);
			return false;
		}
		p->times[p->ntimes++] = p->rec.u.time_delta;
		p->have = false;
	}
	if (err) {
		failed(p, &e);
		return false;
	}

	struct rr_exit actual;
	rr_exit_describe(run, &actual);
	struct kvm_regs kr;
	if (kvm_ioctl(vcpu_fd, KVM_GET_REGS, &kr, &e) < 0) {
		failed(p, &e);
		return false;
	}
	rr_regs_from_kvm(&kr, actual.regs);
	const struct rr_exit *x = &p->expect;
	if (actual.type != x->type || actual.addr != x->addr ||
	    actual.size != x->size || actual.count != x->count) {
		diverged(p, "a different exit", &actual, NULL);
		return false;
	}
	if (memcmp(actual.regs, x->regs, sizeof(x->regs))) {
		diverged(p, "registers differ", &actual, NULL);
		return false;
	}
	bool writes = x->type == RR_PIO_OUT || x->type == RR_MMIO_WRITE;
	if (writes && (actual.len != x->len || actual.hashed != x->hashed ||
		       memcmp(actual.data, x->data, x->len))) {
		char extra[200];
		uint64_t a = 0, b = 0;
		memcpy(&a, actual.data, actual.len < 8 ? actual.len : 8);
		memcpy(&b, x->data, x->len < 8 ? x->len : 8);
		snprintf(extra, sizeof(extra),
			 "\n  data written: recorded 0x%" PRIx64 "%s, replayed "
			 "0x%" PRIx64 "%s", b, x->hashed ? " (XXH32)" : "", a,
			 actual.hashed ? " (XXH32)" : "");
		diverged(p, "the guest wrote different data", &actual, extra);
		return false;
	}
	p->data_pos = 0;
	p->clock_extra = p->data_short = false;
	p->in_exit = true;
	return true;
}

static void digest_check(struct replayer *p, const struct rr_digest *want)
{
	struct kg_err e;
	struct rr_digest got;
	if (rr_hasher_digest(&p->hasher, &got, &e) < 0) {
		failed(p, &e);
		return;
	}
	pthread_mutex_lock(&p->lock);
	p->st.digests++;
	pthread_mutex_unlock(&p->lock);
	static const char *const sregs[] = { "cr0", "cr3", "cr4", "efer" };
	const uint64_t ws[4] = { want->cr0, want->cr3, want->cr4, want->efer };
	const uint64_t gs[4] = { got.cr0, got.cr3, got.cr4, got.efer };
	if (got.ram_hash == want->ram_hash &&
	    !memcmp(got.regs, want->regs, sizeof(got.regs)) &&
	    !memcmp(ws, gs, sizeof(ws)))
		return;
	char regs[1800] = "";
	size_t n = regs_diff(regs, sizeof(regs), want->regs, got.regs,
			     RR_NREGS, NULL);
	n += regs_diff(regs + n, sizeof(regs) - n, ws, gs, 4, sregs);
	set_state(p, REPLAY_DIVERGED,
		  "replay diverged at exit %" PRIu64 " (%s): the state digest "
		  "differs\n  RAM hash: recorded %016" PRIx64 ", replayed %016"
		  PRIx64 "%s\n  registers that differ (recorded -> replayed):%s",
		  p->exits - 1, p->where, want->ram_hash, got.ram_hash,
		  got.ram_hash == want->ram_hash ? " (equal)" : "",
		  n ? regs : " none");
	vm_request_stop(p->vm, VM_STOP_ERROR, 0,
			"replay diverged at exit %" PRIu64 ": state digest",
			p->exits - 1);
}

/* Applies what entered at the end of this exit in the recording. */
static void apply_inputs(struct replayer *p, int vcpu_fd,
			 struct kvm_run *run)
{
	struct kg_err e;
	int err = 0;
	while (get_state(p) == REPLAY_RUNNING && peek_local(p, &e, &err) &&
	       p->rec.kind != RR_EXIT) {
		struct rr_record *r = &p->rec;
		switch (r->kind) {
		case RR_WRITE: {
			void *dst = guest_mem_ptr(&p->vm->mem, r->u.write.gpa,
						  r->u.write.len);
			if (!dst) {
				kg_errf(&e, "%s: a device write of %u bytes at "
					"0x%" PRIx64 " outside guest RAM",
					p->where, r->u.write.len,
					r->u.write.gpa);
				failed(p, &e);
				return;
			}
			memcpy(dst, r->u.write.data, r->u.write.len);
			guest_mem_mark_dirty(&p->vm->mem, r->u.write.gpa,
					     r->u.write.len);
			pthread_mutex_lock(&p->lock);
			p->st.writes++;
			p->st.write_bytes += r->u.write.len;
			pthread_mutex_unlock(&p->lock);
			break;
		}
		case RR_IRQ: {
			if (!run->ready_for_interrupt_injection ||
			    !run->if_flag) {
				struct rr_exit a = p->expect;
				diverged(p, "the recording injected an interrupt "
					 "here, but the vCPU cannot take one",
					 &a, NULL);
				return;
			}
			struct kvm_interrupt irq = { .irq = r->u.vector };
			if (kvm_ioctl(vcpu_fd, KVM_INTERRUPT, &irq, &e) < 0) {
				failed(p, &e);
				return;
			}
			pthread_mutex_lock(&p->lock);
			p->st.irqs++;
			pthread_mutex_unlock(&p->lock);
			break;
		}
		case RR_DIGEST:
			if (p->hashing) {
				struct rr_digest want = r->u.digest;
				p->have = false;
				digest_check(p, &want);
				continue;
			}
			break;
		default:
			kg_errf(&e, "%s: a %s record among an exit's inputs",
				p->where, rr_kind_name(r->kind));
			failed(p, &e);
			return;
		}
		p->have = false;
	}
	if (err)
		failed(p, &e);
}

static void rep_exit_end(struct gate *g, int vcpu_fd, struct kvm_run *run)
{
	struct replayer *p = of(g);
	p->in_exit = false;
	p->exits++;
	pthread_mutex_lock(&p->lock);
	p->st.exits = p->exits;
	p->st.times += p->time_pos;
	pthread_mutex_unlock(&p->lock);
	if (get_state(p) != REPLAY_RUNNING)
		return;
	bool reads = p->expect.type == RR_PIO_IN ||
		     p->expect.type == RR_MMIO_READ;
	if (p->clock_extra || p->time_pos != p->ntimes) {
		struct rr_exit a = p->expect;
		p->exits--;
		char what[160];
		snprintf(what, sizeof(what), "the guest read the clock %s times "
			 "here than the recording (%u recorded)",
			 p->clock_extra ? "more" : "fewer", p->ntimes);
		diverged(p, what, &a, NULL);
		p->exits++;
		return;
	}
	if (reads && (p->data_short || p->data_pos != p->expect.len)) {
		struct rr_exit a = p->expect;
		p->exits--;
		diverged(p, "the read's length differs from the recording",
			 &a, NULL);
		p->exits++;
		return;
	}
	apply_inputs(p, vcpu_fd, run);
	if (p->corrupt_at && p->exits - 1 == p->corrupt_at) {
		/* A forced divergence: the next digest must catch it. */
		uint8_t *b = guest_mem_ptr(&p->vm->mem, 0x1000, 1);
		if (b) {
			*b ^= 0x5a;
			guest_mem_mark_dirty(&p->vm->mem, 0x1000, 1);
		}
	}
	if (p->o.until_set && p->exits - 1 == p->o.until &&
	    get_state(p) == REPLAY_RUNNING) {
		set_state(p, REPLAY_UNTIL,
			  "replay paused after exit %" PRIu64 " (%s): %s",
			  p->o.until, p->where,
			  rr_exit_type_name(p->expect.type));
		/* Paused for inspection: snapshots may use the dirty log;
		 * the page hashes start over if replay resumes. */
		if (p->hashing) {
			rr_hasher_free(&p->hasher);
			p->hashing = false;
		}
		vm_request_pause(p->vm);
	}
}

static const struct gate_ops replay_ops = {
	.name = "replay",
	.pio_in = rep_pio_in,
	.mmio_read = rep_mmio_read,
	.guest_write = rep_guest_write,
	.irq_line = rep_irq_line,
	.time_ns = rep_time_ns,
	.idle = rep_idle,
	.exit_begin = rep_exit_begin,
	.exit_end = rep_exit_end,
};

struct replayer *replayer_new(struct vm *vm, const struct replayer_opts *o,
			      struct kg_err *e)
{
	if (!vm->cfg.deterministic) {
		kg_errf(e, "replay needs a deterministic VM");
		return NULL;
	}
	struct replayer *p = calloc(1, sizeof(*p));
	if (!p) {
		kg_errf(e, "out of memory");
		return NULL;
	}
	p->vm = vm;
	p->o = *o;
	if (!kg_fault_hit(o->faults, "replay.corrupt", &p->corrupt_at))
		p->corrupt_at = 0;
	pthread_mutex_init(&p->lock, NULL);
	rr_decoder_init(&p->dec);
	snprintf(p->where, sizeof(p->where), "the start of the log");
	if (o->digests) {
		if (rr_hasher_init(&p->hasher, vm, e) < 0) {
			replayer_free(p);
			return NULL;
		}
		p->hashing = true;
	}
	atomic_store(&vm->replaying, true);
	p->saved_ops = vm->gate.ops;
	vm->gate.impl = p;
	vm->gate.ops = &replay_ops;
	return p;
}

enum replay_state replayer_state(struct replayer *p)
{
	return get_state(p);
}

const char *replayer_report(struct replayer *p)
{
	return p->report; /* written before the VM stops; read after */
}

void replayer_stats(struct replayer *p, struct replay_stats *st)
{
	pthread_mutex_lock(&p->lock);
	*st = p->st;
	pthread_mutex_unlock(&p->lock);
}

uint64_t replayer_guest_ns(struct replayer *p)
{
	return atomic_load(&p->guest_ns);
}

void replayer_free(struct replayer *p)
{
	if (!p)
		return;
	if (p->vm->gate.ops == &replay_ops) {
		p->vm->gate.ops = p->saved_ops;
		p->vm->gate.impl = NULL;
	}
	atomic_store(&p->vm->replaying, false);
	if (p->hashing) {
		struct kg_err e;
		guest_mem_dirty_log(&p->vm->mem, p->vm->vm_fd, false, &e);
		rr_hasher_free(&p->hasher);
	}
	rr_decoder_free(&p->dec);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
