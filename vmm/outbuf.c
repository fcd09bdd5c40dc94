#include "outbuf.h"
#include "base/clock.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OPEN_EPOCH UINT64_MAX

struct item {
	struct item *next;
	outbuf_emit_fn fn;
	void *ctx;
	uint64_t seq; /* OPEN_EPOCH until sealed */
	uint64_t put_ns;
	size_t len;
	uint8_t data[];
};

struct outbuf {
	pthread_mutex_t lock;
	pthread_mutex_t emit_lock; /* one release at a time: order */
	bool hold;
	_Atomic bool open_items; /* put since the last seal */
	size_t max_bytes;
	struct item *head, **tail;
	uint64_t items, bytes, released, dropped;
	uint32_t samples[OUTBUF_SAMPLES]; /* hold times, µs */
	uint64_t nsamples;
};

struct outbuf *outbuf_new(size_t max_bytes, struct kg_err *e)
{
	struct outbuf *o = calloc(1, sizeof(*o));
	if (!o) {
		kg_errf(e, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&o->lock, NULL);
	pthread_mutex_init(&o->emit_lock, NULL);
	o->max_bytes = max_bytes;
	o->tail = &o->head;
	return o;
}

void outbuf_free(struct outbuf *o)
{
	if (!o)
		return;
	for (struct item *i = o->head, *n; i; i = n) {
		n = i->next;
		free(i);
	}
	pthread_mutex_destroy(&o->lock);
	pthread_mutex_destroy(&o->emit_lock);
	free(o);
}

/* Emits the items up to seq (all if OPEN_EPOCH): detached under the lock,
 * emitted outside it, in order. */
static void release(struct outbuf *o, uint64_t seq)
{
	pthread_mutex_lock(&o->emit_lock);
	pthread_mutex_lock(&o->lock);
	struct item *list = o->head, **cut = &o->head;
	while (*cut && (seq == OPEN_EPOCH || (*cut)->seq <= seq))
		cut = &(*cut)->next;
	if (cut == &o->head) { /* nothing that old: keep everything */
		pthread_mutex_unlock(&o->lock);
		pthread_mutex_unlock(&o->emit_lock);
		return;
	}
	o->head = *cut;
	*cut = NULL;
	if (!o->head)
		o->tail = &o->head;
	uint64_t t = kg_now_ns();
	for (struct item *i = list; i; i = i->next) {
		o->items--;
		o->bytes -= i->len;
		o->released++;
		uint64_t us = (t - i->put_ns) / 1000;
		o->samples[o->nsamples++ % OUTBUF_SAMPLES] =
			us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
	}
	pthread_mutex_unlock(&o->lock);
	for (struct item *i = list, *n; i; i = n) {
		n = i->next;
		i->fn(i->ctx, i->data, i->len);
		free(i);
	}
	pthread_mutex_unlock(&o->emit_lock);
}

void outbuf_hold(struct outbuf *o, bool on)
{
	pthread_mutex_lock(&o->lock);
	o->hold = on;
	pthread_mutex_unlock(&o->lock);
	if (!on)
		release(o, OPEN_EPOCH);
}

bool outbuf_holding(struct outbuf *o)
{
	pthread_mutex_lock(&o->lock);
	bool h = o->hold;
	pthread_mutex_unlock(&o->lock);
	return h;
}

void outbuf_put(struct outbuf *o, outbuf_emit_fn fn, void *ctx,
		const void *buf, size_t len)
{
	pthread_mutex_lock(&o->lock);
	if (!o->hold) {
		pthread_mutex_unlock(&o->lock);
		/* Behind any held output still being emitted. */
		pthread_mutex_lock(&o->emit_lock);
		fn(ctx, buf, len);
		pthread_mutex_unlock(&o->emit_lock);
		return;
	}
	struct item *i = o->bytes + len > o->max_bytes
		? NULL : malloc(sizeof(*i) + len);
	if (!i) {
		o->dropped++;
		pthread_mutex_unlock(&o->lock);
		return;
	}
	*i = (struct item){ NULL, fn, ctx, OPEN_EPOCH, kg_now_ns(), len };
	memcpy(i->data, buf, len);
	*o->tail = i;
	o->tail = &i->next;
	atomic_store(&o->open_items, true);
	o->items++;
	o->bytes += len;
	pthread_mutex_unlock(&o->lock);
}

bool outbuf_unsealed(struct outbuf *o)
{
	return atomic_load_explicit(&o->open_items, memory_order_relaxed);
}

void outbuf_seal(struct outbuf *o, uint64_t seq)
{
	pthread_mutex_lock(&o->lock);
	atomic_store(&o->open_items, false);
	for (struct item *i = o->head; i; i = i->next)
		if (i->seq == OPEN_EPOCH)
			i->seq = seq;
	pthread_mutex_unlock(&o->lock);
}

void outbuf_reseal(struct outbuf *o, uint64_t seq)
{
	pthread_mutex_lock(&o->lock);
	for (struct item *i = o->head; i; i = i->next)
		i->seq = seq;
	pthread_mutex_unlock(&o->lock);
}

void outbuf_release(struct outbuf *o, uint64_t seq)
{
	release(o, seq);
}

void outbuf_release_all(struct outbuf *o)
{
	release(o, OPEN_EPOCH);
}

void outbuf_discard(struct outbuf *o)
{
	pthread_mutex_lock(&o->emit_lock);
	pthread_mutex_lock(&o->lock);
	struct item *list = o->head;
	o->head = NULL;
	o->tail = &o->head;
	o->dropped += o->items;
	o->items = o->bytes = 0;
	o->hold = false;
	pthread_mutex_unlock(&o->lock);
	pthread_mutex_unlock(&o->emit_lock);
	for (struct item *i = list, *n; i; i = n) {
		n = i->next;
		free(i);
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

void outbuf_stats(struct outbuf *o, struct outbuf_stats *st)
{
	static const size_t cap = OUTBUF_SAMPLES;
	uint32_t *s = malloc(cap * sizeof(*s));
	pthread_mutex_lock(&o->lock);
	*st = (struct outbuf_stats){ o->items, o->bytes, o->released,
				     o->dropped, 0, 0 };
	size_t n = o->nsamples < cap ? (size_t)o->nsamples : cap;
	if (s)
		memcpy(s, o->samples, n * sizeof(*s));
	pthread_mutex_unlock(&o->lock);
	if (s && n) {
		qsort(s, n, sizeof(*s), cmp_u32);
		st->hold_p50_us = s[n / 2];
		st->hold_p99_us = s[n * 99 / 100];
	}
	free(s);
}
