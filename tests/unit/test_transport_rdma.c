/*
 * Unit tests for the rdma backend (transport/rdma.c) against a fake
 * fabric: a verbs/rdmacm function table (transport/rdma_ops.h) that joins
 * two endpoints in this process. RDMA WRITE copies into the memory region
 * named by the rkey, SEND fills the peer's posted receive, completions go
 * to queues, cm events to channels whose fds are pipes. The whole stack
 * runs over it: handshake with a key, frames, MACs. Also: a completion
 * error, a dropped peer, and no device (fake and real: this machine has no
 * RDMA device) -> exactly "rdma: no RDMA device found; use tcp".
 * Nothing here touches a network.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "transport/rdma_ops.h"
#include "transport/transport.h"

#define TMO 3000

/* --- the fake fabric --- */

#define MAX_Q 256
/* The fake's own invariants (cmocka asserts are for the main thread). */
#define CHECK(x) do { if (!(x)) abort(); } while (0)

struct fchan {
	struct rdma_event_channel ch; /* ch.fd: read end of wfd's pipe */
	int wfd;
	struct rdma_cm_event *q[MAX_Q];
	int head, n;
};

struct fcq {
	struct ibv_cq cq;
	struct ibv_wc q[MAX_Q];
	int head, n;
};

struct fqp {
	struct ibv_qp qp;
	struct fcq *cq;
	struct ibv_recv_wr rq[MAX_Q]; /* sg_list copied into rsge */
	struct ibv_sge rsge[MAX_Q];
	int rhead, rn;
	bool error;
};

struct fid {
	struct rdma_cm_id id;
	struct fchan *ch;
	struct fid *peer;
	struct fqp *qp;
	int port;       /* bound (listener) or destination (client) */
	bool listening, disconnected;
};

struct fevent {
	struct rdma_cm_event ev;
	uint8_t data[64];
};

static struct {
	pthread_mutex_t mu;
	int ndevices;
	struct fid *listeners[8];
	struct ibv_mr *mrs[64];
	uint32_t next_key;
	int sends;           /* successful SENDs so far */
	int fail_write_at;   /* the Nth RDMA WRITE completes in error (0: never) */
	int writes;
	int drop_after_sends; /* disconnect the pair after this many SENDs */
	struct ibv_context ctx;
	struct ibv_device dev;
} fab = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void fab_reset(int ndevices)
{
	pthread_mutex_lock(&fab.mu);
	fab.ndevices = ndevices;
	memset(fab.listeners, 0, sizeof(fab.listeners));
	memset(fab.mrs, 0, sizeof(fab.mrs));
	fab.next_key = 100;
	fab.sends = fab.writes = 0;
	fab.fail_write_at = fab.drop_after_sends = 0;
	pthread_mutex_unlock(&fab.mu);
}

/* Caller holds fab.mu. */
static void post_event(struct fchan *ch, struct fid *id, enum rdma_cm_event_type t,
		       const void *data, size_t len)
{
	struct fevent *fe = calloc(1, sizeof(*fe));
	CHECK(fe && ch->n < MAX_Q);
	fe->ev.event = t;
	fe->ev.id = &id->id;
	if (data) {
		memcpy(fe->data, data, len);
		fe->ev.param.conn.private_data = fe->data;
		fe->ev.param.conn.private_data_len = (uint8_t)len;
	}
	ch->q[(ch->head + ch->n++) % MAX_Q] = &fe->ev;
	char b = 1;
	CHECK(write(ch->wfd, &b, 1) == 1);
}

static void push_wc(struct fcq *cq, uint64_t wr_id, enum ibv_wc_status st,
		    enum ibv_wc_opcode op, uint32_t len)
{
	CHECK(cq->n < MAX_Q);
	cq->q[(cq->head + cq->n++) % MAX_Q] = (struct ibv_wc){
		.wr_id = wr_id, .status = st, .opcode = op, .byte_len = len };
}

/* Both ends learn the connection is gone. Caller holds fab.mu. */
static void drop_pair(struct fid *a)
{
	struct fid *b = a->peer;
	if (!a->disconnected) {
		a->disconnected = true;
		post_event(a->ch, a, RDMA_CM_EVENT_DISCONNECTED, NULL, 0);
	}
	if (b && !b->disconnected) {
		b->disconnected = true;
		post_event(b->ch, b, RDMA_CM_EVENT_DISCONNECTED, NULL, 0);
	}
}

static struct ibv_device **f_get_device_list(int *n)
{
	*n = fab.ndevices;
	struct ibv_device **l = calloc(2, sizeof(*l));
	if (fab.ndevices)
		l[0] = &fab.dev;
	return l;
}

static void f_free_device_list(struct ibv_device **l)
{
	free(l);
}

static const char *f_wc_status_str(enum ibv_wc_status s)
{
	return s == IBV_WC_REM_ACCESS_ERR ? "remote access error" : "fake error";
}

static const char *f_event_str(enum rdma_cm_event_type t)
{
	return t == RDMA_CM_EVENT_REJECTED ? "RDMA_CM_EVENT_REJECTED" : "fake event";
}

static struct rdma_event_channel *f_create_event_channel(void)
{
	struct fchan *c = calloc(1, sizeof(*c));
	int p[2];
	CHECK(pipe(p) == 0);
	c->ch.fd = p[0];
	c->wfd = p[1];
	return &c->ch;
}

static void f_destroy_event_channel(struct rdma_event_channel *ch)
{
	struct fchan *c = (struct fchan *)ch;
	pthread_mutex_lock(&fab.mu);
	while (c->n) {
		free(c->q[c->head]);
		c->head = (c->head + 1) % MAX_Q;
		c->n--;
	}
	pthread_mutex_unlock(&fab.mu);
	close(c->ch.fd);
	close(c->wfd);
	free(c);
}

static int f_create_id(struct rdma_event_channel *ch, struct rdma_cm_id **id,
		       void *ctx, enum rdma_port_space ps)
{
	(void)ps;
	struct fid *f = calloc(1, sizeof(*f));
	f->ch = (struct fchan *)ch;
	f->id.channel = ch;
	f->id.context = ctx;
	*id = &f->id;
	return 0;
}

static int f_destroy_id(struct rdma_cm_id *id)
{
	struct fid *f = (struct fid *)id;
	pthread_mutex_lock(&fab.mu);
	for (int i = 0; i < 8; i++)
		if (fab.listeners[i] == f)
			fab.listeners[i] = NULL;
	if (f->peer)
		f->peer->peer = NULL;
	pthread_mutex_unlock(&fab.mu);
	free(f);
	return 0;
}

static int f_migrate_id(struct rdma_cm_id *id, struct rdma_event_channel *ch)
{
	struct fid *f = (struct fid *)id;
	pthread_mutex_lock(&fab.mu);
	f->ch = (struct fchan *)ch;
	id->channel = ch;
	pthread_mutex_unlock(&fab.mu);
	return 0;
}

static int port_of(const struct sockaddr *sa)
{
	return ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

static int f_resolve_addr(struct rdma_cm_id *id, struct sockaddr *src,
			  struct sockaddr *dst, int timeout_ms)
{
	(void)src;
	(void)timeout_ms;
	struct fid *f = (struct fid *)id;
	pthread_mutex_lock(&fab.mu);
	f->port = port_of(dst);
	id->verbs = &fab.ctx;
	memcpy(&id->route.addr.dst_addr, dst, sizeof(struct sockaddr_in));
	post_event(f->ch, f, RDMA_CM_EVENT_ADDR_RESOLVED, NULL, 0);
	pthread_mutex_unlock(&fab.mu);
	return 0;
}

static int f_resolve_route(struct rdma_cm_id *id, int timeout_ms)
{
	(void)timeout_ms;
	struct fid *f = (struct fid *)id;
	pthread_mutex_lock(&fab.mu);
	post_event(f->ch, f, RDMA_CM_EVENT_ROUTE_RESOLVED, NULL, 0);
	pthread_mutex_unlock(&fab.mu);
	return 0;
}

static int f_bind_addr(struct rdma_cm_id *id, struct sockaddr *addr)
{
	((struct fid *)id)->port = port_of(addr);
	id->verbs = &fab.ctx;
	return 0;
}

static int f_listen(struct rdma_cm_id *id, int backlog)
{
	(void)backlog;
	pthread_mutex_lock(&fab.mu);
	int r = -1;
	for (int i = 0; i < 8 && r < 0; i++)
		if (!fab.listeners[i]) {
			fab.listeners[i] = (struct fid *)id;
			r = 0;
		}
	pthread_mutex_unlock(&fab.mu);
	return r;
}

static int f_connect(struct rdma_cm_id *id, struct rdma_conn_param *p)
{
	struct fid *f = (struct fid *)id, *l = NULL;
	pthread_mutex_lock(&fab.mu);
	for (int i = 0; i < 8; i++)
		if (fab.listeners[i] && fab.listeners[i]->port == f->port)
			l = fab.listeners[i];
	if (!l) {
		post_event(f->ch, f, RDMA_CM_EVENT_REJECTED, NULL, 0);
	} else {
		struct fid *child = calloc(1, sizeof(*child));
		child->ch = l->ch;
		child->id.channel = &l->ch->ch;
		child->id.verbs = &fab.ctx;
		struct sockaddr_in sa = { .sin_family = AF_INET,
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
					  .sin_port = htons(40000) };
		memcpy(&child->id.route.addr.dst_addr, &sa, sizeof(sa));
		child->peer = f;
		f->peer = child;
		post_event(l->ch, child, RDMA_CM_EVENT_CONNECT_REQUEST,
			   p->private_data, p->private_data_len);
	}
	pthread_mutex_unlock(&fab.mu);
	return 0;
}

static int f_accept(struct rdma_cm_id *id, struct rdma_conn_param *p)
{
	struct fid *f = (struct fid *)id;
	pthread_mutex_lock(&fab.mu);
	post_event(f->ch, f, RDMA_CM_EVENT_ESTABLISHED, NULL, 0);
	if (f->peer)
		post_event(f->peer->ch, f->peer, RDMA_CM_EVENT_ESTABLISHED,
			   p->private_data, p->private_data_len);
	pthread_mutex_unlock(&fab.mu);
	return 0;
}

static int f_reject(struct rdma_cm_id *id, const void *data, uint8_t len)
{
	struct fid *f = (struct fid *)id;
	pthread_mutex_lock(&fab.mu);
	if (f->peer)
		post_event(f->peer->ch, f->peer, RDMA_CM_EVENT_REJECTED, data, len);
	pthread_mutex_unlock(&fab.mu);
	return 0;
}

static int f_disconnect(struct rdma_cm_id *id)
{
	pthread_mutex_lock(&fab.mu);
	drop_pair((struct fid *)id);
	pthread_mutex_unlock(&fab.mu);
	return 0;
}

static int f_get_cm_event(struct rdma_event_channel *ch, struct rdma_cm_event **ev)
{
	struct fchan *c = (struct fchan *)ch;
	pthread_mutex_lock(&fab.mu);
	if (!c->n) {
		pthread_mutex_unlock(&fab.mu);
		errno = EAGAIN;
		return -1;
	}
	*ev = c->q[c->head];
	c->head = (c->head + 1) % MAX_Q;
	c->n--;
	char b;
	CHECK(read(c->ch.fd, &b, 1) == 1);
	pthread_mutex_unlock(&fab.mu);
	return 0;
}

static int f_ack_cm_event(struct rdma_cm_event *ev)
{
	free(ev);
	return 0;
}

static int f_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd,
		       struct ibv_qp_init_attr *attr)
{
	(void)pd;
	struct fqp *q = calloc(1, sizeof(*q));
	q->cq = (struct fcq *)attr->send_cq;
	q->qp.qp_context = id;
	pthread_mutex_lock(&fab.mu);
	((struct fid *)id)->qp = q;
	id->qp = &q->qp;
	pthread_mutex_unlock(&fab.mu);
	return 0;
}

static void f_destroy_qp(struct rdma_cm_id *id)
{
	pthread_mutex_lock(&fab.mu);
	free(((struct fid *)id)->qp);
	((struct fid *)id)->qp = NULL;
	id->qp = NULL;
	pthread_mutex_unlock(&fab.mu);
}

static struct ibv_pd *f_alloc_pd(struct ibv_context *ctx)
{
	struct ibv_pd *pd = calloc(1, sizeof(*pd));
	pd->context = ctx;
	return pd;
}

static int f_dealloc_pd(struct ibv_pd *pd)
{
	free(pd);
	return 0;
}

static struct ibv_cq *f_create_cq(struct ibv_context *ctx, int cqe, void *cq_ctx,
				  struct ibv_comp_channel *ch, int vector)
{
	(void)ctx;
	(void)cqe;
	(void)cq_ctx;
	(void)ch;
	(void)vector;
	return &((struct fcq *)calloc(1, sizeof(struct fcq)))->cq;
}

static int f_destroy_cq(struct ibv_cq *cq)
{
	free(cq);
	return 0;
}

static int f_poll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc)
{
	struct fcq *c = (struct fcq *)cq;
	pthread_mutex_lock(&fab.mu);
	int k = 0;
	while (k < n && c->n) {
		wc[k++] = c->q[c->head];
		c->head = (c->head + 1) % MAX_Q;
		c->n--;
	}
	pthread_mutex_unlock(&fab.mu);
	return k;
}

static struct ibv_mr *f_reg_mr(struct ibv_pd *pd, void *addr, size_t len, int access)
{
	(void)access;
	struct ibv_mr *mr = calloc(1, sizeof(*mr));
	pthread_mutex_lock(&fab.mu);
	mr->pd = pd;
	mr->addr = addr;
	mr->length = len;
	mr->lkey = mr->rkey = fab.next_key++;
	for (int i = 0; i < 64; i++)
		if (!fab.mrs[i]) {
			fab.mrs[i] = mr;
			break;
		}
	pthread_mutex_unlock(&fab.mu);
	return mr;
}

static int f_dereg_mr(struct ibv_mr *mr)
{
	pthread_mutex_lock(&fab.mu);
	for (int i = 0; i < 64; i++)
		if (fab.mrs[i] == mr)
			fab.mrs[i] = NULL;
	pthread_mutex_unlock(&fab.mu);
	free(mr);
	return 0;
}

static struct fid *fid_of_qp(struct ibv_qp *qp)
{
	return qp->qp_context;
}

/* RDMA WRITE: into the registered region of rkey; false if out of it. */
static bool do_write(const struct ibv_send_wr *wr)
{
	for (int i = 0; i < 64; i++) {
		struct ibv_mr *mr = fab.mrs[i];
		if (!mr || mr->rkey != wr->wr.rdma.rkey)
			continue;
		uintptr_t a = (uintptr_t)mr->addr, r = wr->wr.rdma.remote_addr;
		if (r < a || r + wr->sg_list[0].length > a + mr->length)
			return false;
		memcpy((void *)r, (void *)(uintptr_t)wr->sg_list[0].addr,
		       wr->sg_list[0].length);
		return true;
	}
	return false;
}

static int f_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr,
		       struct ibv_send_wr **bad)
{
	(void)bad;
	pthread_mutex_lock(&fab.mu);
	struct fid *me = fid_of_qp(qp);
	struct fqp *q = me->qp, *pq = me->peer ? me->peer->qp : NULL;
	for (; wr; wr = wr->next) {
		enum ibv_wc_opcode op = wr->opcode == IBV_WR_SEND ? IBV_WC_SEND
								  : IBV_WC_RDMA_WRITE;
		enum ibv_wc_status st = IBV_WC_SUCCESS;
		if (q->error || !pq || me->disconnected) {
			st = IBV_WC_WR_FLUSH_ERR;
		} else if (wr->opcode == IBV_WR_RDMA_WRITE) {
			if (++fab.writes == fab.fail_write_at || !do_write(wr))
				st = IBV_WC_REM_ACCESS_ERR;
		} else if (!pq->rn) {
			st = IBV_WC_RNR_RETRY_EXC_ERR;
		} else {
			struct ibv_sge *dst = &pq->rsge[pq->rhead];
			uint64_t id = pq->rq[pq->rhead].wr_id;
			pq->rhead = (pq->rhead + 1) % MAX_Q;
			pq->rn--;
			memcpy((void *)(uintptr_t)dst->addr,
			       (void *)(uintptr_t)wr->sg_list[0].addr,
			       wr->sg_list[0].length);
			push_wc(pq->cq, id, IBV_WC_SUCCESS, IBV_WC_RECV,
				wr->sg_list[0].length);
			fab.sends++;
		}
		if (st != IBV_WC_SUCCESS && !q->error) {
			/* The QP enters the error state; the connection ends. */
			q->error = true;
			drop_pair(me);
		}
		push_wc(q->cq, wr->wr_id, st, op, 0);
	}
	if (fab.drop_after_sends && fab.sends >= fab.drop_after_sends && !me->disconnected)
		drop_pair(me);
	pthread_mutex_unlock(&fab.mu);
	return 0;
}

static int f_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr,
		       struct ibv_recv_wr **bad)
{
	(void)bad;
	pthread_mutex_lock(&fab.mu);
	struct fqp *q = ((struct fid *)qp->qp_context)->qp;
	for (; wr; wr = wr->next) {
		int slot = (q->rhead + q->rn++) % MAX_Q;
		q->rq[slot] = *wr;
		q->rsge[slot] = wr->sg_list[0];
	}
	pthread_mutex_unlock(&fab.mu);
	return 0;
}

static const struct kg_rdma_ops fake = {
	.get_device_list = f_get_device_list,
	.free_device_list = f_free_device_list,
	.wc_status_str = f_wc_status_str,
	.event_str = f_event_str,
	.create_event_channel = f_create_event_channel,
	.destroy_event_channel = f_destroy_event_channel,
	.create_id = f_create_id,
	.destroy_id = f_destroy_id,
	.migrate_id = f_migrate_id,
	.resolve_addr = f_resolve_addr,
	.resolve_route = f_resolve_route,
	.bind_addr = f_bind_addr,
	.listen = f_listen,
	.connect = f_connect,
	.accept = f_accept,
	.reject = f_reject,
	.disconnect = f_disconnect,
	.get_cm_event = f_get_cm_event,
	.ack_cm_event = f_ack_cm_event,
	.create_qp = f_create_qp,
	.destroy_qp = f_destroy_qp,
	.alloc_pd = f_alloc_pd,
	.dealloc_pd = f_dealloc_pd,
	.create_cq = f_create_cq,
	.destroy_cq = f_destroy_cq,
	.poll_cq = f_poll_cq,
	.reg_mr = f_reg_mr,
	.dereg_mr = f_dereg_mr,
	.post_send = f_post_send,
	.post_recv = f_post_recv,
};

/* --- helpers --- */

static void opts(struct kg_tp_opts *o, const struct kg_tp_key *key)
{
	kg_tp_opts_default(o);
	o->connect_timeout_ms = TMO;
	o->io_timeout_ms = TMO;
	o->accept_timeout_ms = TMO;
	o->key = key;
	o->rdma = &fake;
	o->rdma_staging = 64 * 1024; /* small: frames span many chunks */
	o->max_frame = 1u << 20;
}

static uint8_t pat(uint64_t frame, uint64_t i)
{
	return (uint8_t)(frame * 31u + i * 7u + (i >> 11));
}

struct server {
	struct kg_tp_listener *l;
	int accept_rc, rc, frames;
	struct kg_err e;
	pthread_t th;
};

/* Accepts, then receives frames until close or error, checking each. */
static void *server_main(void *arg)
{
	struct server *s = arg;
	struct kg_transport *t;
	s->accept_rc = kg_tp_accept(s->l, &t, &s->e);
	if (s->accept_rc < 0)
		return NULL;
	uint8_t *buf = malloc(1u << 20);
	for (;;) {
		struct kg_tp_rx rx;
		int r = kg_tp_recv(t, buf, 1u << 20, &rx, &s->e);
		if (r <= 0) {
			s->rc = r;
			break;
		}
		bool ok = rx.seq == (uint64_t)s->frames;
		for (uint32_t i = 0; ok && i < rx.len; i++)
			ok = buf[i] == pat(rx.seq, i);
		if (!ok) {
			s->rc = -2;
			snprintf(s->e.msg, sizeof(s->e.msg), "frame %d wrong", s->frames);
			break;
		}
		s->frames++;
		/* Answer each frame with its length, to exercise both ways. */
		struct iovec v = { &rx.len, sizeof(rx.len) };
		struct kg_tp_frame f = { &v, 1, 0 };
		if (kg_tp_send(t, &f, 1, &s->e) < 0) {
			s->rc = -1;
			break;
		}
	}
	free(buf);
	kg_tp_close(t);
	return NULL;
}

static void server_start(struct server *s, const struct kg_tp_opts *o)
{
	memset(s, 0, sizeof(*s));
	struct kg_err e = { 0 };
	if (kg_tp_listen("rdma:127.0.0.1:7471", o, &s->l, &e) < 0)
		fail_msg("listen: %s", e.msg);
	assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
}

static void server_join(struct server *s)
{
	pthread_join(s->th, NULL);
	kg_tp_listener_close(s->l);
}

/* Sends frame seq of len bytes; 0 or -1. */
static int send_frame(struct kg_transport *t, uint64_t seq, size_t len,
		      struct kg_err *e)
{
	uint8_t *b = malloc(len + 1);
	for (size_t i = 0; i < len; i++)
		b[i] = pat(seq, i);
	struct iovec v[2] = { { b, len / 2 }, { b + len / 2, len - len / 2 } };
	struct kg_tp_frame f = { v, 2, 0 };
	int r = kg_tp_send(t, &f, 1, e);
	free(b);
	return r;
}

/* --- tests --- */

static void test_transfer(void **state)
{
	(void)state;
	fab_reset(1);
	struct kg_tp_key k = { .len = 32 };
	memset(k.bytes, 0x5a, 32);
	struct kg_tp_opts o;
	opts(&o, &k);
	struct server s;
	server_start(&s, &o);
	struct kg_transport *t;
	struct kg_err e = { 0 };
	if (kg_tp_connect("rdma:127.0.0.1:7471", &o, &t, &e) < 0)
		fail_msg("connect: %s", e.msg);
	assert_string_equal(kg_tp_peer(t), "rdma:127.0.0.1:7471");
	size_t lens[] = { 0, 1, 4096, 65536, 65537, 300000, 1u << 20, 17 };
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		if (send_frame(t, i, lens[i], &e) < 0)
			fail_msg("send %zu: %s", i, e.msg);
		uint32_t got = 0;
		struct kg_tp_rx rx;
		if (kg_tp_recv(t, &got, sizeof(got), &rx, &e) != 1)
			fail_msg("answer %zu: %s", i, e.msg);
		assert_int_equal(got, lens[i]);
		assert_int_equal(rx.seq, i);
	}
	kg_tp_close(t);
	server_join(&s);
	if (s.accept_rc < 0 || s.rc != 0)
		fail_msg("server: %s", s.e.msg);
	assert_int_equal(s.frames, 8);
}

static void test_wrong_key(void **state)
{
	(void)state;
	fab_reset(1);
	struct kg_tp_key a = { .len = 32 }, b = { .len = 32 };
	memset(a.bytes, 1, 32);
	memset(b.bytes, 2, 32);
	struct kg_tp_opts so, co;
	opts(&so, &a);
	opts(&co, &b);
	struct server s;
	server_start(&s, &so);
	struct kg_transport *t;
	struct kg_err e = { 0 };
	assert_int_equal(kg_tp_connect("rdma:127.0.0.1:7471", &co, &t, &e), -1);
	assert_non_null(strstr(e.msg, "wrong key"));
	assert_int_equal(e.kind, KG_ERR_AUTH);
	server_join(&s);
	assert_int_equal(s.accept_rc, -1);
	assert_non_null(strstr(s.e.msg, "rdma:127.0.0.1"));
	assert_int_equal(s.e.kind, KG_ERR_AUTH);
}

/* Nobody listens on the port: the fabric rejects the connect, which is
 * what a refused tcp connect is. */
static void test_nobody_listens(void **state)
{
	(void)state;
	fab_reset(1);
	struct kg_tp_opts o;
	opts(&o, NULL);
	struct kg_transport *t;
	struct kg_err e = { 0 };
	assert_int_equal(kg_tp_connect("rdma:127.0.0.1:7471", &o, &t, &e), -1);
	assert_non_null(strstr(e.msg, "REJECTED"));
	assert_int_equal(e.kind, KG_ERR_REFUSED);
}

/* The 3rd RDMA WRITE fails (remote access error): the sender's next send
 * reports it; the receiver sees the connection end, not a hang. */
static void test_completion_error(void **state)
{
	(void)state;
	fab_reset(1);
	struct kg_tp_opts o;
	opts(&o, NULL);
	struct server s;
	server_start(&s, &o);
	struct kg_transport *t;
	struct kg_err e = { 0 };
	if (kg_tp_connect("rdma:127.0.0.1:7471", &o, &t, &e) < 0)
		fail_msg("connect: %s", e.msg);
	pthread_mutex_lock(&fab.mu);
	fab.fail_write_at = fab.writes + 2;
	pthread_mutex_unlock(&fab.mu);
	/* 300000 bytes: five chunks of 64 KiB. */
	int r = send_frame(t, 0, 300000, &e);
	if (r == 0) {
		uint32_t got;
		struct kg_tp_rx rx;
		r = kg_tp_recv(t, &got, sizeof(got), &rx, &e) == 1 ? 0 : -1;
	}
	assert_int_equal(r, -1);
	print_message("sender: %s\n", e.msg);
	if (!strstr(e.msg, "completion error: remote access error"))
		fail_msg("sender: %s", e.msg);
	assert_null(strchr(e.msg, '\n'));
	assert_int_equal(e.kind, KG_ERR_PEER_GONE);
	kg_tp_close(t);
	server_join(&s);
	print_message("receiver: %s\n", s.e.msg);
	assert_int_equal(s.rc, -1);
	assert_non_null(strstr(s.e.msg, "frame seq 0"));
}

/* The fabric drops the connection after a few messages: both sides get
 * an error naming the peer. */
static void test_dropped_peer(void **state)
{
	(void)state;
	fab_reset(1);
	struct kg_tp_opts o;
	opts(&o, NULL);
	struct server s;
	server_start(&s, &o);
	struct kg_transport *t;
	struct kg_err e = { 0 };
	if (kg_tp_connect("rdma:127.0.0.1:7471", &o, &t, &e) < 0)
		fail_msg("connect: %s", e.msg);
	pthread_mutex_lock(&fab.mu);
	fab.drop_after_sends = fab.sends + 6;
	pthread_mutex_unlock(&fab.mu);
	int r = 0;
	for (int i = 0; i < 20 && r == 0; i++) {
		r = send_frame(t, (uint64_t)i, 100000, &e);
		uint32_t got;
		struct kg_tp_rx rx;
		if (r == 0)
			r = kg_tp_recv(t, &got, sizeof(got), &rx, &e) == 1 ? 0 : -1;
	}
	assert_int_equal(r, -1);
	print_message("sender: %s\n", e.msg);
	if (!strstr(e.msg, "rdma:127.0.0.1:7471"))
		fail_msg("sender: %s", e.msg);
	kg_tp_close(t);
	server_join(&s);
	print_message("receiver: %s\n", s.e.msg);
	assert_int_equal(s.rc, -1);
	assert_non_null(strstr(s.e.msg, "rdma:127.0.0.1"));
	assert_true(strstr(s.e.msg, "closed by the peer") || strstr(s.e.msg, "cut inside") ||
		    strstr(s.e.msg, "disconnected") || strstr(s.e.msg, "completion error"));
	assert_int_equal(s.e.kind, KG_ERR_PEER_GONE);
	assert_int_equal(e.kind, KG_ERR_PEER_GONE);
}

static void test_no_device_fake(void **state)
{
	(void)state;
	fab_reset(0);
	struct kg_tp_opts o;
	opts(&o, NULL);
	struct kg_transport *t;
	struct kg_tp_listener *l;
	struct kg_err e = { 0 };
	assert_int_equal(kg_tp_connect("rdma:127.0.0.1:7471", &o, &t, &e), -1);
	assert_string_equal(e.msg, "rdma: no RDMA device found; use tcp");
	assert_int_equal(kg_tp_listen("rdma:127.0.0.1:7471", &o, &l, &e), -1);
	assert_string_equal(e.msg, "rdma: no RDMA device found; use tcp");
}

/* The real libibverbs on this machine (no RDMA device, ever), with
 * stderr captured: the error is the one line and nothing else is said. */
static void test_no_device_real(void **state)
{
	(void)state;
	struct kg_tp_opts o;
	opts(&o, NULL);
	o.rdma = NULL;
	int n = 0;
	struct ibv_device **list = kg_rdma_verbs.get_device_list(&n);
	if (list)
		kg_rdma_verbs.free_device_list(list);
	if (list && n > 0)
		skip(); /* a machine with a device: nothing to check here */
	char path[] = "/tmp/kg_rdma_stderr.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	fflush(stderr);
	int saved = dup(2);
	dup2(fd, 2);
	struct kg_transport *t;
	struct kg_tp_listener *l;
	struct kg_err e1 = { 0 }, e2 = { 0 };
	int r1 = kg_tp_connect("rdma:127.0.0.1:7471", &o, &t, &e1);
	int r2 = kg_tp_listen("rdma:127.0.0.1:7471", &o, &l, &e2);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	off_t size = lseek(fd, 0, SEEK_END);
	close(fd);
	unlink(path);
	assert_int_equal(r1, -1);
	assert_int_equal(r2, -1);
	assert_string_equal(e1.msg, "rdma: no RDMA device found; use tcp");
	assert_string_equal(e2.msg, "rdma: no RDMA device found; use tcp");
	assert_int_equal(size, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transfer),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_nobody_listens),
		cmocka_unit_test(test_completion_error),
		cmocka_unit_test(test_dropped_peer),
		cmocka_unit_test(test_no_device_fake),
		cmocka_unit_test(test_no_device_real),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
