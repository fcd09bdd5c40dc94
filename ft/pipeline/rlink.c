#include "rlink.h"
#include "base/le.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmm/vm.h"
#include "base/clock.h"

#define QUEUE_LEN 256 /* lockstep's NEED list arrives in a burst */
#define READER_CAP (RLINK_MSG_HEADER + RLINK_TEXT_MAX)

struct rlink {
	struct kg_transport *tp;
	char peer[160];
	/* sending */
	pthread_mutex_t send_lock;
	uint8_t *gather;
	size_t glen;
	uint64_t stream_bytes;
	uint64_t bandwidth, bw_next_ns;
	/* receiving stream bytes */
	uint8_t *rbuf;
	size_t rlen, roff;
	bool closed;
	/* messages received and not yet taken */
	pthread_mutex_t q_lock;
	pthread_cond_t q_cond;
	struct rlink_msg q[QUEUE_LEN];
	unsigned q_head, q_len;
	/* signs of life (rlink_last_rx_ns ...) */
	_Atomic uint64_t last_rx_ns, rx_wait_ns, peer_stamp, echo;
	/* the reader thread (message-only side) */
	pthread_t reader;
	bool reader_on, reader_done;
	struct kg_err reader_err;
};

const char *rlink_msg_name(uint32_t type)
{
	static const char *const names[] = {
		[RLINK_HELLO] = "hello", [RLINK_READY] = "ready",
		[RLINK_GO] = "go", [RLINK_RUNNING] = "running",
		[RLINK_ABORT] = "abort", [RLINK_ACK] = "ack",
		[RLINK_QUERY] = "query", [RLINK_ANSWER] = "answer",
		[RLINK_BEAT] = "beat", [RLINK_DISK] = "disk",
		[RLINK_HAVE] = "have", [RLINK_NEED] = "need",
		[RLINK_HOLD] = "hold", [RLINK_HELD] = "held",
		[RLINK_AGAIN] = "again",
	};
	if (type < sizeof(names) / sizeof(names[0]) && names[type])
		return names[type];
	return "?";
}

struct rlink *rlink_new(struct kg_transport *t, uint64_t bandwidth,
			struct kg_err *e)
{
	struct rlink *l = calloc(1, sizeof(*l));
	if (!l || !(l->gather = malloc(RLINK_GATHER)) ||
	    !(l->rbuf = malloc(RLINK_MAX_FRAME))) {
		if (l) {
			free(l->gather);
			free(l);
		}
		kg_tp_close(t);
		kg_errk(e, KG_ERR_NOMEM, "out of memory");
		return NULL;
	}
	l->tp = t;
	l->bandwidth = bandwidth;
	snprintf(l->peer, sizeof(l->peer), "%s", kg_tp_peer(t));
	pthread_mutex_init(&l->send_lock, NULL);
	pthread_mutex_init(&l->q_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->q_cond, &ca);
	pthread_condattr_destroy(&ca);
	return l;
}

void rlink_free(struct rlink *l)
{
	if (!l)
		return;
	if (l->reader_on) {
		/* The reader is blocked in recv: cut the link under it. */
		kg_tp_shutdown(l->tp);
		pthread_join(l->reader, NULL);
	}
	kg_tp_close(l->tp);
	pthread_mutex_destroy(&l->send_lock);
	pthread_mutex_destroy(&l->q_lock);
	pthread_cond_destroy(&l->q_cond);
	free(l->gather);
	free(l->rbuf);
	free(l);
}

const char *rlink_peer(const struct rlink *l)
{
	return l->peer;
}

struct kg_transport *rlink_transport(struct rlink *l)
{
	return l->tp;
}

uint64_t rlink_stream_bytes(const struct rlink *l)
{
	return l->stream_bytes;
}

/* --- sending --- */

/* Holds the stream to --bandwidth: each frame books its airtime. */
static void throttle(struct rlink *l, size_t bytes)
{
	if (!l->bandwidth)
		return;
	uint64_t now = kg_now_ns();
	if (l->bw_next_ns < now)
		l->bw_next_ns = now;
	l->bw_next_ns += (uint64_t)((double)bytes * 1e9 / (double)l->bandwidth);
	if (l->bw_next_ns > now) {
		uint64_t d = l->bw_next_ns - now;
		struct timespec ts = { (time_t)(d / 1000000000u),
				       (long)(d % 1000000000u) };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
}

static int send_locked(struct rlink *l, const struct kg_tp_frame *f, size_t n,
		       size_t bytes, struct kg_err *e)
{
	if (kg_tp_send(l->tp, f, n, e) < 0)
		return -1;
	throttle(l, bytes);
	return 0;
}

static int flush_locked(struct rlink *l, struct kg_err *e)
{
	if (!l->glen)
		return 0;
	struct iovec v = { l->gather, l->glen };
	struct kg_tp_frame f = { &v, 1, RLINK_STREAM };
	size_t n = l->glen;
	l->glen = 0;
	if (send_locked(l, &f, 1, n, e) < 0)
		return -1;
	l->stream_bytes += n;
	return 0;
}

int rlink_flush(struct rlink *l, struct kg_err *e)
{
	pthread_mutex_lock(&l->send_lock);
	int r = flush_locked(l, e);
	pthread_mutex_unlock(&l->send_lock);
	return r;
}

/* Sends iov[0..cnt) as stream frames of at most RLINK_MAX_FRAME bytes. */
static int send_big(struct rlink *l, const struct iovec *iov, int cnt,
		    struct kg_err *e)
{
	struct iovec part[8];
	int np = 0;
	size_t plen = 0;
	for (int i = 0; i < cnt; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t left = iov[i].iov_len;
		while (left) {
			size_t take = RLINK_MAX_FRAME - plen;
			if (take > left)
				take = left;
			part[np++] = (struct iovec){ (void *)p, take };
			plen += take;
			p += take;
			left -= take;
			if (plen == RLINK_MAX_FRAME || np == 8) {
				struct kg_tp_frame f = { part, np, RLINK_STREAM };
				if (send_locked(l, &f, 1, plen, e) < 0)
					return -1;
				l->stream_bytes += plen;
				np = 0;
				plen = 0;
			}
		}
	}
	if (np) { /* the rest: a partial frame (empty iovecs may trail) */
		struct kg_tp_frame f = { part, np, RLINK_STREAM };
		if (send_locked(l, &f, 1, plen, e) < 0)
			return -1;
		l->stream_bytes += plen;
	}
	return 0;
}

static int io_writev(void *ctx, const struct iovec *iov, int cnt,
		     struct kg_err *e)
{
	struct rlink *l = ctx;
	size_t total = 0;
	for (int i = 0; i < cnt; i++)
		total += iov[i].iov_len;
	pthread_mutex_lock(&l->send_lock);
	int r = 0;
	if (l->glen + total <= RLINK_GATHER && total < RLINK_GATHER / 4) {
		for (int i = 0; i < cnt; i++) {
			memcpy(l->gather + l->glen, iov[i].iov_base,
			       iov[i].iov_len);
			l->glen += iov[i].iov_len;
		}
	} else {
		/* Large payloads go as they are, after what was gathered. */
		r = flush_locked(l, e);
		if (r == 0)
			r = send_big(l, iov, cnt, e);
	}
	pthread_mutex_unlock(&l->send_lock);
	return r;
}

void rlink_msg_pack(uint8_t hdr[RLINK_MSG_HEADER], uint32_t type, uint64_t a,
		    uint64_t b)
{
	le32_put(hdr, type);
	le32_put(hdr + 4, 0);
	le64_put(hdr + 8, a);
	le64_put(hdr + 16, b);
}

int rlink_send(struct rlink *l, uint32_t type, uint64_t a, uint64_t b,
	       const char *text, struct kg_err *e)
{
	uint8_t hdr[RLINK_MSG_HEADER];
	rlink_msg_pack(hdr, type, a, b);
	size_t tl = text ? strnlen(text, RLINK_TEXT_MAX) : 0;
	struct iovec v[2] = { { hdr, sizeof(hdr) }, { (void *)text, tl } };
	struct kg_tp_frame f = { v, tl ? 2 : 1, RLINK_MSG };
	pthread_mutex_lock(&l->send_lock);
	/* Messages follow the stream bytes written before them. */
	int r = flush_locked(l, e);
	if (r == 0)
		r = kg_tp_send(l->tp, &f, 1, e);
	pthread_mutex_unlock(&l->send_lock);
	if (r < 0)
		return kg_err_prefix(e, "sending %s to %s", rlink_msg_name(type),
				     l->peer);
	return 0;
}

/* --- receiving --- */

int rlink_msg_parse(const char *peer, const uint8_t *p, size_t len,
		    struct rlink_msg *m, struct kg_err *e)
{
	if (len < RLINK_MSG_HEADER || len > RLINK_MSG_HEADER + RLINK_TEXT_MAX)
		return kg_errk(e, KG_ERR_CORRUPT, "%s: control message of %zu bytes",
			       peer, len);
	m->type = (uint32_t)le64_get(p) & 0xffffffffu;
	m->a = le64_get(p + 8);
	m->b = le64_get(p + 16);
	size_t tl = len - RLINK_MSG_HEADER;
	memcpy(m->text, p + RLINK_MSG_HEADER, tl);
	m->text[tl] = 0;
	if (m->type < RLINK_HELLO || m->type > RLINK_AGAIN)
		return kg_errk(e, KG_ERR_CORRUPT,
			       "%s: unknown control message type %u",
			       peer, m->type);
	return 0;
}

/* A message for this link: its BEATs are signs of life too. */
static int parse_msg(struct rlink *l, const uint8_t *p, size_t len,
		     struct rlink_msg *m, struct kg_err *e)
{
	if (rlink_msg_parse(l->peer, p, len, m, e) < 0)
		return -1;
	if (m->type == RLINK_BEAT) {
		atomic_store(&l->peer_stamp, m->a);
		if (m->b > atomic_load(&l->echo))
			atomic_store(&l->echo, m->b);
	}
	return 0;
}

/* kg_tp_recv, noting when it waited and when a frame came. */
static int timed_recv(struct rlink *l, void *buf, size_t cap,
		      struct kg_tp_rx *rx, struct kg_err *e)
{
	atomic_store(&l->rx_wait_ns, kg_now_ns());
	int r = kg_tp_recv(l->tp, buf, cap, rx, e);
	if (r > 0)
		atomic_store(&l->last_rx_ns, kg_now_ns());
	atomic_store(&l->rx_wait_ns, 0);
	return r;
}

uint64_t rlink_last_rx_ns(const struct rlink *l)
{
	return atomic_load(&l->last_rx_ns);
}

uint64_t rlink_rx_wait_ns(const struct rlink *l)
{
	return atomic_load(&l->rx_wait_ns);
}

uint64_t rlink_peer_stamp(const struct rlink *l)
{
	return atomic_load(&l->peer_stamp);
}

uint64_t rlink_echo(const struct rlink *l)
{
	return atomic_load(&l->echo);
}

/* Queues a message; a full queue drops its oldest heartbeat, or folds a
 * new ACK into the newest one queued (ACKs are cumulative: lockstep ACKs
 * every log section). Locked. */
static int enqueue(struct rlink *l, const struct rlink_msg *m,
		   struct kg_err *e)
{
	if (l->q_len == QUEUE_LEN) {
		unsigned i;
		for (i = 0; i < QUEUE_LEN; i++)
			if (l->q[(l->q_head + i) % QUEUE_LEN].type == RLINK_BEAT)
				break;
		if (i == QUEUE_LEN && m->type == RLINK_ACK) {
			struct rlink_msg *last =
				&l->q[(l->q_head + QUEUE_LEN - 1) % QUEUE_LEN];
			if (last->type == RLINK_ACK) {
				if (m->a > last->a)
					*last = *m;
				pthread_cond_broadcast(&l->q_cond);
				return 0;
			}
		}
		if (i == QUEUE_LEN)
			return kg_errk(e, KG_ERR_CORRUPT, "%s: more than %d "
				       "control messages unanswered", l->peer,
				       QUEUE_LEN);
		for (; i + 1 < QUEUE_LEN; i++)
			l->q[(l->q_head + i) % QUEUE_LEN] =
				l->q[(l->q_head + i + 1) % QUEUE_LEN];
		l->q_len--;
	}
	l->q[(l->q_head + l->q_len++) % QUEUE_LEN] = *m;
	pthread_cond_broadcast(&l->q_cond);
	return 0;
}

static bool dequeue(struct rlink *l, struct rlink_msg *m)
{
	if (!l->q_len)
		return false;
	*m = l->q[l->q_head];
	l->q_head = (l->q_head + 1) % QUEUE_LEN;
	l->q_len--;
	return true;
}

/* One frame into rbuf: 1 stream bytes, 2 a message (*m), 0 closed. */
static int recv_frame(struct rlink *l, struct rlink_msg *m, struct kg_err *e)
{
	struct kg_tp_rx rx;
	int r = timed_recv(l, l->rbuf, RLINK_MAX_FRAME, &rx, e);
	if (r <= 0) {
		if (r == 0)
			l->closed = true;
		return r;
	}
	if (rx.flags == RLINK_MSG)
		return parse_msg(l, l->rbuf, rx.len, m, e) < 0 ? -1 : 2;
	if (rx.flags != RLINK_STREAM)
		return kg_errk(e, KG_ERR_CORRUPT,
			       "%s: frame %llu with unknown flags 0x%x",
			       l->peer, (unsigned long long)rx.seq, rx.flags);
	l->rlen = rx.len;
	l->roff = 0;
	return 1;
}

static int io_read(void *ctx, void *buf, size_t n, size_t *got,
		   struct kg_err *e)
{
	struct rlink *l = ctx;
	size_t done = 0;
	while (done < n) {
		if (l->roff < l->rlen) {
			size_t k = l->rlen - l->roff;
			if (k > n - done)
				k = n - done;
			memcpy((uint8_t *)buf + done, l->rbuf + l->roff, k);
			l->roff += k;
			done += k;
			continue;
		}
		if (l->closed)
			break;
		struct rlink_msg m;
		int r = recv_frame(l, &m, e);
		if (r < 0)
			return -1;
		if (r == 2) {
			pthread_mutex_lock(&l->q_lock);
			r = enqueue(l, &m, e);
			pthread_mutex_unlock(&l->q_lock);
			if (r < 0)
				return -1;
		}
	}
	*got = done;
	return 0;
}

static int io_flush(void *ctx, struct kg_err *e)
{
	return rlink_flush(ctx, e);
}

const struct kg_stream_io rlink_stream_io = {
	.writev = io_writev,
	.read = io_read,
	.flush = io_flush,
};

int rlink_next(struct rlink *l, struct rlink_msg *m, struct kg_err *e)
{
	pthread_mutex_lock(&l->q_lock);
	bool have = dequeue(l, m);
	pthread_mutex_unlock(&l->q_lock);
	if (have)
		return 1;
	if (l->roff < l->rlen)
		return 0;
	if (l->closed)
		return 2;
	int r = recv_frame(l, m, e);
	if (r < 0)
		return -1;
	return r == 0 ? 2 : r == 2 ? 1 : 0;
}

static void *reader_thread(void *arg)
{
	struct rlink *l = arg;
	uint8_t buf[READER_CAP];
	for (;;) {
		struct kg_tp_rx rx;
		struct rlink_msg m;
		struct kg_err e = { 0 };
		int r = timed_recv(l, buf, sizeof(buf), &rx, &e);
		if (r > 0 && rx.flags != RLINK_MSG)
			r = kg_errk(&e, KG_ERR_CORRUPT, "%s: stream data where "
				    "only control messages belong", l->peer);
		if (r > 0 && parse_msg(l, buf, rx.len, &m, &e) < 0)
			r = -1;
		pthread_mutex_lock(&l->q_lock);
		if (r > 0 && enqueue(l, &m, &e) < 0)
			r = -1;
		if (r <= 0) {
			if (r == 0)
				kg_errk(&e, KG_ERR_PEER_GONE,
					"%s closed the connection", l->peer);
			l->reader_err = e;
			l->reader_done = true;
			pthread_cond_broadcast(&l->q_cond);
		}
		pthread_mutex_unlock(&l->q_lock);
		if (r <= 0)
			return NULL;
	}
}

int rlink_start_reader(struct rlink *l, struct kg_err *e)
{
	int r = pthread_create(&l->reader, NULL, reader_thread, l);
	if (r) {
		errno = r;
		return kg_errno(e, "replication link reader: pthread_create");
	}
	l->reader_on = true;
	return 0;
}

int rlink_wait_msg(struct rlink *l, uint32_t mask, int timeout_ms,
		   struct rlink_msg *m, struct kg_err *e)
{
	struct timespec dl = kg_deadline(CLOCK_MONOTONIC,
					 timeout_ms >= 0 ? timeout_ms : 0);
	mask |= 1u << RLINK_ABORT;
	int rc = 0;
	pthread_mutex_lock(&l->q_lock);
	for (;;) {
		while (dequeue(l, m)) {
			if (mask & (1u << m->type)) {
				rc = 1;
				goto out;
			}
		}
		if (l->reader_done) {
			*e = l->reader_err;
			rc = -1;
			goto out;
		}
		if (timeout_ms < 0) {
			pthread_cond_wait(&l->q_cond, &l->q_lock);
		} else if (pthread_cond_timedwait(&l->q_cond, &l->q_lock, &dl) ==
			   ETIMEDOUT) {
			rc = 0;
			goto out;
		}
	}
out:
	pthread_mutex_unlock(&l->q_lock);
	return rc;
}
