/* Lockstep FT's log plumbing: the primary's sink, the secondary's pump. */
#include "lockstep.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>

#include "vmm/vm.h"
#include "ft/checkpoint/stream.h"
#include "ft/record/recorder.h"
#include "ft/record/rr_log.h"
#include "rlink.h"
#include "base/clock.h"

#define SENT_RING 256

/* --- primary --- */

struct lockstep_sink {
	struct vm *vm;
	struct recorder *rec;
	pthread_mutex_t lock;
	struct rlink *l;
	struct kg_stream_writer *w;
	uint64_t base, seq;
	bool first; /* the session's first section reseals held output */
	atomic_bool down;
	bool failed;
	char why[600];
	uint64_t sent_ns[SENT_RING];
};

static int sink_put(void *ctx, const uint8_t *payload, size_t len,
		    uint64_t exits, struct kg_err *e)
{
	struct lockstep_sink *s = ctx;
	(void)exits, (void)e;
	if (atomic_load(&s->down))
		return 0; /* unprotected: the guest runs on */
	pthread_mutex_lock(&s->lock);
	uint64_t seq = s->base + ++s->seq;
	/* Everything put so far came from exits this section covers (or
	 * before): it may leave once the secondary has the section. */
	if (s->first)
		outbuf_reseal(s->vm->out, seq);
	else
		outbuf_seal(s->vm->out, seq);
	s->first = false;
	s->sent_ns[seq % SENT_RING] = kg_now_ns();
	pthread_mutex_unlock(&s->lock);
	/* Only this (vCPU) thread writes the stream while attached; the
	 * lock is not held across a write that may block. */
	struct kg_err we;
	if (kg_writer_section(s->w, KG_SEC_EXEC_LOG, 0, RR_LOG_VERSION,
			      payload, len, &we) < 0 ||
	    kg_writer_flush(s->w, &we) < 0) {
		pthread_mutex_lock(&s->lock);
		if (!s->failed)
			snprintf(s->why, sizeof(s->why), "%s", we.msg);
		s->failed = true;
		atomic_store(&s->down, true);
		pthread_mutex_unlock(&s->lock);
	}
	return 0;
}

static bool sink_want_flush(void *ctx)
{
	struct lockstep_sink *s = ctx;
	return !atomic_load(&s->down) && outbuf_unsealed(s->vm->out);
}

struct lockstep_sink *lockstep_sink_new(struct vm *vm, struct recorder *rec,
					struct kg_err *e)
{
	struct lockstep_sink *s = calloc(1, sizeof(*s));
	if (!s) {
		kg_errf(e, "out of memory");
		return NULL;
	}
	s->vm = vm;
	s->rec = rec;
	atomic_store(&s->down, true);
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

int lockstep_sink_attach(struct lockstep_sink *s, struct rlink *l,
			 struct kg_stream_writer *w, uint64_t base_seq,
			 struct kg_err *e)
{
	pthread_mutex_lock(&s->lock);
	s->l = l;
	s->w = w;
	s->base = base_seq;
	s->seq = 0;
	s->first = true;
	s->failed = false;
	s->why[0] = 0;
	atomic_store(&s->down, false);
	pthread_mutex_unlock(&s->lock);
	struct rr_sink sink = { .put = sink_put, .want_flush = sink_want_flush,
				.ctx = s };
	return recorder_set_sink(s->rec, &sink, e);
}

void lockstep_sink_down(struct lockstep_sink *s)
{
	atomic_store(&s->down, true);
}

uint64_t lockstep_sink_sent(struct lockstep_sink *s)
{
	pthread_mutex_lock(&s->lock);
	uint64_t n = s->base + s->seq;
	pthread_mutex_unlock(&s->lock);
	return n;
}

uint64_t lockstep_sink_sent_ns(struct lockstep_sink *s, uint64_t seq)
{
	pthread_mutex_lock(&s->lock);
	uint64_t t = seq > s->base && seq <= s->base + s->seq
			     ? s->sent_ns[seq % SENT_RING] : 0;
	pthread_mutex_unlock(&s->lock);
	return t;
}

bool lockstep_sink_failed(struct lockstep_sink *s, char *why, size_t n)
{
	pthread_mutex_lock(&s->lock);
	bool f = s->failed;
	if (f)
		snprintf(why, n, "%s", s->why);
	pthread_mutex_unlock(&s->lock);
	return f;
}

void lockstep_sink_free(struct lockstep_sink *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* --- secondary --- */

struct section {
	struct section *next;
	uint8_t *payload;
	size_t len;
	char where[128];
};

struct lockstep_pump {
	struct rlink *l;
	struct kg_stream_reader *r;
	uint64_t base, n;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct section *head, **tail;
	bool ended, ordered;
	enum kg_err_kind kind; /* of why, when not ordered */
	char why[512];
	struct rr_source src;
};

static void pump_end(struct lockstep_pump *p, bool ordered,
		     enum kg_err_kind kind, const char *why)
{
	pthread_mutex_lock(&p->lock);
	if (!p->ended) {
		p->ended = true;
		p->ordered = ordered;
		p->kind = kind;
		snprintf(p->why, sizeof(p->why), "%s", why);
	}
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static int take_section(struct lockstep_pump *p, struct kg_err *e)
{
	struct kg_section s;
	int k = kg_reader_next(p->r, &s, e);
	if (k <= 0)
		return k == 0 ? kg_errf(e, "the primary ended the stream") : -1;
	struct section *q = calloc(1, sizeof(*q));
	if (!q)
		return kg_errf(e, "out of memory");
	kg_section_where(q->where, sizeof(q->where), &s);
	if (s.kind != KG_SEC_EXEC_LOG || s.version != RR_LOG_VERSION) {
		kg_errk(e, KG_ERR_CORRUPT, "%s: not an execution log section",
			q->where);
		free(q);
		return -1;
	}
	/* No section of a log is larger than its records compressed (or
	 * not): refused unread. The queue is bounded by the connection's
	 * budget (each section charged until the replayer takes it). */
	if (s.length > RR_SEC_HEADER + (uint64_t)LZ4_COMPRESSBOUND(RR_SEC_MAX_RAW)) {
		kg_errk(e, KG_ERR_CORRUPT, "%s: an execution log section of "
			"%llu bytes (at most %llu)", q->where,
			(unsigned long long)s.length,
			(unsigned long long)(RR_SEC_HEADER +
					     LZ4_COMPRESSBOUND(RR_SEC_MAX_RAW)));
		free(q);
		return -1;
	}
	q->len = s.length;
	if (!(q->payload = kg_section_read_all(p->r, &s, e))) {
		free(q);
		return -1;
	}
	pthread_mutex_lock(&p->lock);
	*p->tail = q;
	p->tail = &q->next;
	p->n++;
	uint64_t seq = p->base + p->n;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	/* Received is enough for the output rule: replaying it is ours. */
	return rlink_send(p->l, RLINK_ACK, seq, 0, NULL, e);
}

static void *pump_thread(void *arg)
{
	struct lockstep_pump *p = arg;
	for (;;) {
		struct rlink_msg m;
		struct kg_err e = { 0 };
		int k = rlink_next(p->l, &m, &e);
		if (k < 0) {
			pump_end(p, false, e.kind, e.msg);
			break;
		}
		if (k == 2) {
			pump_end(p, false, KG_ERR_PEER_GONE,
				 "the primary closed the connection");
			break;
		}
		if (k == 1) {
			if (m.type == RLINK_ABORT) {
				pump_end(p, true, KG_ERR_REFUSED, m.text);
				break;
			}
			continue; /* heartbeats */
		}
		if (take_section(p, &e) < 0) {
			pump_end(p, false, e.kind, e.msg);
			break;
		}
	}
	return NULL;
}

static int pump_next(void *ctx, uint8_t **payload, size_t *len, char *where,
		     size_t where_size, struct kg_err *e)
{
	struct lockstep_pump *p = ctx;
	(void)e;
	pthread_mutex_lock(&p->lock);
	while (!p->head && !p->ended)
		pthread_cond_wait(&p->cond, &p->lock);
	struct section *q = p->head;
	if (q) {
		p->head = q->next;
		if (!p->head)
			p->tail = &p->head;
	}
	pthread_mutex_unlock(&p->lock);
	if (!q)
		return 0;
	/* The replayer's now (it frees it once decoded). */
	kg_budget_release(kg_reader_budget(p->r), q->len);
	*payload = q->payload;
	*len = q->len;
	snprintf(where, where_size, "log %s", q->where);
	free(q);
	return 1;
}

struct lockstep_pump *lockstep_pump_start(struct rlink *l,
					  struct kg_stream_reader *r,
					  uint64_t base_seq, struct kg_err *e)
{
	struct lockstep_pump *p = calloc(1, sizeof(*p));
	if (!p) {
		kg_errf(e, "out of memory");
		return NULL;
	}
	p->l = l;
	p->r = r;
	p->base = base_seq;
	p->tail = &p->head;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->src = (struct rr_source){ .next = pump_next, .ctx = p };
	int rc = pthread_create(&p->thread, NULL, pump_thread, p);
	if (rc) {
		errno = rc;
		kg_errno(e, "lockstep: pthread_create");
		pthread_cond_destroy(&p->cond);
		pthread_mutex_destroy(&p->lock);
		free(p);
		return NULL;
	}
	return p;
}

const struct rr_source *lockstep_pump_source(struct lockstep_pump *p)
{
	return &p->src;
}

bool lockstep_pump_ordered(struct lockstep_pump *p, char *why, size_t n)
{
	pthread_mutex_lock(&p->lock);
	bool o = p->ordered;
	snprintf(why, n, "%s", p->why);
	pthread_mutex_unlock(&p->lock);
	return o;
}

enum kg_err_kind lockstep_pump_end_kind(struct lockstep_pump *p)
{
	pthread_mutex_lock(&p->lock);
	enum kg_err_kind k = p->kind;
	pthread_mutex_unlock(&p->lock);
	return k;
}

uint64_t lockstep_pump_sections(struct lockstep_pump *p)
{
	pthread_mutex_lock(&p->lock);
	uint64_t n = p->n;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void lockstep_pump_free(struct lockstep_pump *p)
{
	if (!p)
		return;
	pthread_join(p->thread, NULL);
	while (p->head) {
		struct section *q = p->head;
		p->head = q->next;
		kg_section_free(p->r, q->payload, q->len);
		free(q);
	}
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
