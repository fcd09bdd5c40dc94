/*
 * The rdma backend: a reliable-connection queue pair set up with rdmacm.
 * It is a link like tcp's (a byte stream), so framing, MACs and faults
 * are shared; underneath:
 *
 * - each side registers a staging buffer the peer may RDMA WRITE into and
 *   tells the peer its address, rkey and size in the connection's private
 *   data;
 * - a send copies up to one staging buffer of bytes into a registered
 *   bounce buffer (the caller's iovecs are not registered; a copy at
 *   memcpy speed is cheaper than registering pages per batch), RDMA WRITEs
 *   them into the peer's staging memory, then SENDs a DATA control message
 *   with the length. A reliable connection executes work requests in
 *   order, so the bytes are in place when the peer sees DATA;
 * - the receiver consumes the staging bytes and SENDs ACK: one credit, so
 *   the sender never overwrites bytes not yet read. A send returns after
 *   posting, so two peers may send to each other at once (the handshake).
 *
 * Completions are busy-polled with a short back-off (no completion
 * channel): replication streams are bulk and latency-bound, and polling
 * keeps the fake simple. A completion error or a DISCONNECTED event ends
 * the link. Every verbs and rdmacm call goes through opts.rdma
 * (rdma_ops.h). With no device at all, listen and connect fail with
 * exactly "rdma: no RDMA device found; use tcp".
 */
#include "link.h"
#include "rdma_ops.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NO_DEVICE "rdma: no RDMA device found; use tcp"
#define CTRL_SLOTS 16   /* posted receives for control messages */
#define SEND_DEPTH 64   /* send queue depth, and send control slots */
#define CTRL_DATA 1u
#define CTRL_ACK 2u
#define CONN_MAGIC 0x4d44524bu /* "KRDM" */
#define MIN_STAGING 4096

struct ctrl_msg {
	uint32_t type, len;
	uint64_t reserved;
};

/* The private data of connect and accept. */
struct conn_info {
	uint32_t magic, version;
	uint64_t addr;
	uint32_t rkey, size;
};

struct rdma_link {
	struct kg_link base;
	const struct kg_rdma_ops *ops;
	struct rdma_event_channel *ch;
	struct rdma_cm_id *id;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	bool qp_made, connected;
	uint8_t *staging, *bounce; /* size each */
	struct ctrl_msg rx_ctrl[CTRL_SLOTS], tx_ctrl[SEND_DEPTH];
	struct ibv_mr *staging_mr, *bounce_mr, *rx_ctrl_mr, *tx_ctrl_mr;
	uint32_t size;
	struct conn_info peer;
	unsigned credit;      /* chunks we may write into the peer's staging */
	unsigned outstanding; /* signaled sends not yet completed */
	unsigned tx_slot;
	uint32_t rx_len, rx_off; /* bytes of the current chunk in staging */
	bool rx_ready, disconnected;
	char failed[sizeof(struct kg_err)]; /* the first completion error */
	enum kg_err_kind failed_kind;
	/* A sender and a receiver thread both poll the one CQ and move the
	 * credit and chunk state: they take turns under this lock. */
	pthread_mutex_t mu;
};

struct rdma_listener {
	const struct kg_rdma_ops *ops;
	struct rdma_event_channel *ch;
	struct rdma_cm_id *id;
};

static const struct kg_rdma_ops *ops_of(const struct kg_tp_opts *o)
{
	return o->rdma ? o->rdma : &kg_rdma_verbs;
}

static int no_device_check(const struct kg_rdma_ops *ops, struct kg_err *e)
{
	int n = 0;
	struct ibv_device **list = ops->get_device_list(&n);
	if (list)
		ops->free_device_list(list);
	if (!list || n <= 0)
		return kg_errk(e, KG_ERR_INVALID, NO_DEVICE);
	return 0;
}

static void backoff(unsigned *us)
{
	struct timespec ts = { 0, (long)*us * 1000 };
	nanosleep(&ts, NULL);
	if (*us < 1000)
		*us *= 2;
}

/* Waits for the next cm event on ch within timeout_ms; the caller acks. */
static int next_event(const struct kg_rdma_ops *ops, struct rdma_event_channel *ch,
		      int timeout_ms, struct rdma_cm_event **ev, const char *what,
		      struct kg_err *e)
{
	long long deadline = timeout_ms < 0 ? 0 : kg_tp_now_ms() + timeout_ms;
	for (;;) {
		if (ops->get_cm_event(ch, ev) == 0)
			return 0;
		if (errno != EAGAIN && errno != EINTR)
			return kg_errno(e, "rdma: %s: rdma_get_cm_event", what);
		int left = -1;
		if (timeout_ms >= 0) {
			long long l = deadline - kg_tp_now_ms();
			if (l <= 0)
				return kg_errk(e, KG_ERR_TIMEOUT,
					       "rdma: %s: no answer within %d ms", what,
					       timeout_ms);
			left = (int)l;
		}
		if (kg_fd_wait(ch->fd, POLLIN, left) < 0)
			return kg_errno(e, "rdma: %s: poll", what);
	}
}

/* Waits for one event of type want; anything else is an error. Copies the
 * private data of ESTABLISHED into info when asked. */
static int expect_event(const struct kg_rdma_ops *ops, struct rdma_event_channel *ch,
			enum rdma_cm_event_type want, int timeout_ms,
			struct conn_info *info, const char *what, struct kg_err *e)
{
	struct rdma_cm_event *ev;
	if (next_event(ops, ch, timeout_ms, &ev, what, e) < 0)
		return -1;
	int r = 0;
	/* REJECTED is what a connect meets where nothing listens. */
	if (ev->event != want)
		r = kg_errk(e, ev->event == RDMA_CM_EVENT_REJECTED
				       ? KG_ERR_REFUSED : KG_ERR_PEER_GONE,
			    "rdma: %s: %s (status %d)", what,
			    ops->event_str(ev->event), ev->status);
	else if (info && (ev->param.conn.private_data_len < sizeof(*info) ||
			  !ev->param.conn.private_data))
		r = kg_errk(e, KG_ERR_AUTH,
			    "rdma: %s: peer sent no staging description", what);
	else if (info)
		memcpy(info, ev->param.conn.private_data, sizeof(*info));
	ops->ack_cm_event(ev);
	return r;
}

/* --- resources --- */

static void release(struct rdma_link *c)
{
	const struct kg_rdma_ops *ops = c->ops;
	if (c->connected && !c->disconnected)
		ops->disconnect(c->id);
	if (c->qp_made)
		ops->destroy_qp(c->id);
	struct ibv_mr *mrs[] = { c->staging_mr, c->bounce_mr, c->rx_ctrl_mr,
				 c->tx_ctrl_mr };
	for (size_t i = 0; i < sizeof(mrs) / sizeof(mrs[0]); i++)
		if (mrs[i])
			ops->dereg_mr(mrs[i]);
	if (c->cq)
		ops->destroy_cq(c->cq);
	if (c->pd)
		ops->dealloc_pd(c->pd);
	if (c->id)
		ops->destroy_id(c->id);
	if (c->ch)
		ops->destroy_event_channel(c->ch);
	free(c->staging);
	free(c->bounce);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static int post_ctrl_recv(struct rdma_link *c, unsigned slot)
{
	struct ibv_sge sge = { (uintptr_t)&c->rx_ctrl[slot], sizeof(struct ctrl_msg),
			       c->rx_ctrl_mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = slot, .sg_list = &sge, .num_sge = 1 };
	struct ibv_recv_wr *bad;
	return c->ops->post_recv(c->id->qp, &wr, &bad) ? -1 : 0;
}

static struct ibv_mr *reg(struct rdma_link *c, void *p, size_t n, int access,
			  struct kg_err *e)
{
	struct ibv_mr *mr = c->ops->reg_mr(c->pd, p, n, access);
	if (!mr)
		kg_errno(e, "rdma: ibv_reg_mr of %zu bytes", n);
	return mr;
}

/* PD, CQ, QP, registered buffers and posted receives on c->id. */
static int setup(struct rdma_link *c, size_t staging, struct kg_err *e)
{
	const struct kg_rdma_ops *ops = c->ops;
	c->size = (uint32_t)staging;
	c->pd = ops->alloc_pd(c->id->verbs);
	if (!c->pd)
		return kg_errno(e, "rdma: ibv_alloc_pd");
	c->cq = ops->create_cq(c->id->verbs, SEND_DEPTH + CTRL_SLOTS, NULL, NULL, 0);
	if (!c->cq)
		return kg_errno(e, "rdma: ibv_create_cq");
	struct ibv_qp_init_attr qa = {
		.send_cq = c->cq,
		.recv_cq = c->cq,
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = SEND_DEPTH, .max_recv_wr = CTRL_SLOTS,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};
	if (ops->create_qp(c->id, c->pd, &qa))
		return kg_errno(e, "rdma: rdma_create_qp");
	c->qp_made = true;
	c->staging = malloc(staging);
	c->bounce = malloc(staging);
	if (!c->staging || !c->bounce)
		return kg_errk(e, KG_ERR_NOMEM, "rdma: out of memory for %zu-byte staging", staging);
	if (!(c->staging_mr = reg(c, c->staging, staging,
				  IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE, e)) ||
	    !(c->bounce_mr = reg(c, c->bounce, staging, IBV_ACCESS_LOCAL_WRITE, e)) ||
	    !(c->rx_ctrl_mr = reg(c, c->rx_ctrl, sizeof(c->rx_ctrl),
				  IBV_ACCESS_LOCAL_WRITE, e)) ||
	    !(c->tx_ctrl_mr = reg(c, c->tx_ctrl, sizeof(c->tx_ctrl), 0, e)))
		return -1;
	for (unsigned i = 0; i < CTRL_SLOTS; i++)
		if (post_ctrl_recv(c, i) < 0)
			return kg_errno(e, "rdma: ibv_post_recv");
	c->credit = 1;
	return 0;
}

static void my_info(const struct rdma_link *c, struct conn_info *i)
{
	*i = (struct conn_info){ CONN_MAGIC, 1, (uintptr_t)c->staging,
				 c->staging_mr->rkey, c->size };
}

static int check_peer_info(struct rdma_link *c, struct kg_err *e)
{
	if (c->peer.magic != CONN_MAGIC || c->peer.version != 1)
		return kg_errk(e, KG_ERR_AUTH, "rdma: %s: not a kagami rdma peer",
			       c->base.peer);
	if (c->peer.size < MIN_STAGING)
		return kg_errk(e, KG_ERR_AUTH, "rdma: %s: peer staging of %u bytes is too small",
			       c->base.peer, c->peer.size);
	return 0;
}

/* --- progress: completions and events --- */

static void handle_wc(struct rdma_link *c, const struct ibv_wc *wc)
{
	if (wc->status != IBV_WC_SUCCESS) {
		if (!c->failed[0]) {
			snprintf(c->failed, sizeof(c->failed),
				 "rdma completion error: %s (status %d)",
				 c->ops->wc_status_str(wc->status),
				 (int)wc->status);
			c->failed_kind = KG_ERR_PEER_GONE;
		}
		return;
	}
	if (wc->opcode != IBV_WC_RECV) {
		c->outstanding--;
		return;
	}
	unsigned slot = (unsigned)wc->wr_id % CTRL_SLOTS;
	struct ctrl_msg m = c->rx_ctrl[slot];
	if (post_ctrl_recv(c, slot) < 0 && !c->failed[0]) {
		snprintf(c->failed, sizeof(c->failed), "rdma: ibv_post_recv failed");
		c->failed_kind = KG_ERR_IO;
	}
	if (m.type == CTRL_ACK) {
		c->credit++;
	} else if (m.type == CTRL_DATA && !c->rx_ready && m.len <= c->size) {
		c->rx_ready = true;
		c->rx_len = m.len;
		c->rx_off = 0;
	} else if (!c->failed[0]) {
		snprintf(c->failed, sizeof(c->failed),
			 "rdma protocol error (control message %u, length %u)",
			 m.type, m.len);
		c->failed_kind = KG_ERR_CORRUPT;
	}
}

/* Polls completions and events once; true if anything happened. */
static bool poll_once(struct rdma_link *c)
{
	struct ibv_wc wc[16];
	bool any = false;
	int n;
	while ((n = c->ops->poll_cq(c->cq, 16, wc)) > 0) {
		any = true;
		for (int i = 0; i < n; i++)
			handle_wc(c, &wc[i]);
	}
	if (n < 0 && !c->failed[0]) {
		snprintf(c->failed, sizeof(c->failed), "rdma: ibv_poll_cq failed");
		c->failed_kind = KG_ERR_IO;
	}
	struct rdma_cm_event *ev;
	while (!any && c->ops->get_cm_event(c->ch, &ev) == 0) {
		if (ev->event == RDMA_CM_EVENT_DISCONNECTED ||
		    ev->event == RDMA_CM_EVENT_DEVICE_REMOVAL ||
		    ev->event == RDMA_CM_EVENT_TIMEWAIT_EXIT)
			c->disconnected = true;
		c->ops->ack_cm_event(ev);
		any = true;
	}
	return any;
}

enum want { WANT_CREDIT, WANT_DATA };

/* Waits for what; 1 ready, 0 the peer disconnected, -1 error or timeout. */
static int wait_for(struct rdma_link *c, enum want what, int timeout_ms,
		    struct kg_err *e)
{
	long long deadline = timeout_ms < 0 ? 0 : kg_tp_now_ms() + timeout_ms;
	unsigned us = 10;
	for (;;) {
		pthread_mutex_lock(&c->mu);
		bool any = poll_once(c);
		bool ready = what == WANT_DATA
				     ? c->rx_ready
				     : c->credit > 0 && c->outstanding + 2 <= SEND_DEPTH;
		bool gone = c->disconnected;
		int failed = c->failed[0]
				     ? kg_errk(e, c->failed_kind, "%s", c->failed)
				     : 0;
		pthread_mutex_unlock(&c->mu);
		if (failed)
			return -1;
		if (ready)
			return 1;
		if (gone)
			return 0;
		if (timeout_ms >= 0 && kg_tp_now_ms() >= deadline)
			return kg_errk(e, KG_ERR_TIMEOUT, what == WANT_DATA
					  ? "no data for %d ms (peer stalled or dead)"
					  : "send: no progress for %d ms (peer not reading)",
				       timeout_ms);
		if (any)
			us = 10;
		else
			backoff(&us);
	}
}

static int post(struct rdma_link *c, struct ibv_send_wr *wr, struct kg_err *e)
{
	struct ibv_send_wr *bad;
	if (c->ops->post_send(c->id->qp, wr, &bad))
		return kg_errno(e, "rdma: %s: ibv_post_send", c->base.peer);
	c->outstanding += 1 + (wr->next != NULL);
	return 0;
}

static int send_ctrl(struct rdma_link *c, uint32_t type, uint32_t len,
		     struct ibv_send_wr *before, struct kg_err *e)
{
	struct ctrl_msg *m = &c->tx_ctrl[c->tx_slot++ % SEND_DEPTH];
	*m = (struct ctrl_msg){ type, len, 0 };
	struct ibv_sge sge = { (uintptr_t)m, sizeof(*m), c->tx_ctrl_mr->lkey };
	struct ibv_send_wr wr = { .wr_id = 1, .sg_list = &sge, .num_sge = 1,
				  .opcode = IBV_WR_SEND,
				  .send_flags = IBV_SEND_SIGNALED };
	if (before) {
		before->next = &wr;
		return post(c, before, e);
	}
	return post(c, &wr, e);
}

/* --- link ops --- */

static int rdma_send(struct kg_link *l, const struct iovec *iov, int iovcnt,
		     const size_t *frame_len, size_t nframes, int timeout_ms,
		     struct kg_err *e)
{
	(void)frame_len;
	(void)nframes;
	struct rdma_link *c = (struct rdma_link *)l;
	uint32_t chunk_max = c->peer.size < c->size ? c->peer.size : c->size;
	int i = 0;
	size_t off = 0; /* within iov[i] */
	while (i < iovcnt) {
		int w = wait_for(c, WANT_CREDIT, timeout_ms, e);
		if (w <= 0)
			return w < 0 ? -1 : kg_errk(e, KG_ERR_PEER_GONE,
						    "rdma: peer disconnected");
		uint32_t n = 0;
		while (i < iovcnt && n < chunk_max) {
			size_t take = iov[i].iov_len - off;
			if (take > chunk_max - n)
				take = chunk_max - n;
			memcpy(c->bounce + n, (const char *)iov[i].iov_base + off, take);
			n += (uint32_t)take;
			off += take;
			if (off == iov[i].iov_len) {
				i++;
				off = 0;
			}
		}
		if (n == 0)
			continue;
		struct ibv_sge sge = { (uintptr_t)c->bounce, n, c->bounce_mr->lkey };
		struct ibv_send_wr wr = {
			.wr_id = 2, .sg_list = &sge, .num_sge = 1,
			.opcode = IBV_WR_RDMA_WRITE, .send_flags = IBV_SEND_SIGNALED,
			.wr.rdma = { c->peer.addr, c->peer.rkey },
		};
		pthread_mutex_lock(&c->mu);
		c->credit--;
		int r = send_ctrl(c, CTRL_DATA, n, &wr, e);
		pthread_mutex_unlock(&c->mu);
		if (r < 0)
			return -1;
	}
	return 0;
}

static int rdma_recv(struct kg_link *l, void *buf, size_t n, int timeout_ms,
		     size_t *got, struct kg_err *e)
{
	struct rdma_link *c = (struct rdma_link *)l;
	size_t have = 0;
	*got = 0;
	while (have < n) {
		int w = wait_for(c, WANT_DATA, timeout_ms, e);
		if (w < 0)
			return -1;
		if (w == 0) {
			*got = have;
			return 0;
		}
		size_t take = c->rx_len - c->rx_off;
		if (take > n - have)
			take = n - have;
		memcpy((char *)buf + have, c->staging + c->rx_off, take);
		have += take;
		c->rx_off += (uint32_t)take;
		if (c->rx_off == c->rx_len) {
			/* Staging is free again: hand the credit back. */
			pthread_mutex_lock(&c->mu);
			c->rx_ready = false;
			int r = send_ctrl(c, CTRL_ACK, 0, NULL, e);
			pthread_mutex_unlock(&c->mu);
			if (r < 0)
				return -1;
		}
	}
	*got = have;
	return 1;
}

static void rdma_shutdown(struct kg_link *l)
{
	struct rdma_link *c = (struct rdma_link *)l;
	if (c->connected && !c->disconnected) {
		c->ops->disconnect(c->id);
		c->disconnected = true;
	}
}

static void rdma_destroy(struct kg_link *l)
{
	release((struct rdma_link *)l);
}

static const struct kg_link_ops rdma_link_ops = {
	.send = rdma_send,
	.recv = rdma_recv,
	.shutdown = rdma_shutdown,
	.destroy = rdma_destroy,
};

static struct rdma_link *link_new(const struct kg_rdma_ops *ops, const char *peer,
				  struct kg_err *e)
{
	struct rdma_link *c = calloc(1, sizeof(*c));
	if (!c) {
		kg_errk(e, KG_ERR_NOMEM, "rdma: out of memory");
		return NULL;
	}
	c->base.ops = &rdma_link_ops;
	snprintf(c->base.peer, sizeof(c->base.peer), "%s", peer);
	c->ops = ops;
	pthread_mutex_init(&c->mu, NULL);
	return c;
}

/* A non-blocking event channel, so that polling it never blocks. */
static struct rdma_event_channel *channel(const struct kg_rdma_ops *ops,
					  struct kg_err *e)
{
	struct rdma_event_channel *ch = ops->create_event_channel();
	if (!ch) {
		kg_errno(e, "rdma: rdma_create_event_channel");
		return NULL;
	}
	int fl = fcntl(ch->fd, F_GETFL);
	if (fl < 0 || fcntl(ch->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		kg_errno(e, "rdma: event channel: fcntl");
		ops->destroy_event_channel(ch);
		return NULL;
	}
	return ch;
}

static int resolve(const struct kg_tp_addr *a, bool passive,
		   struct sockaddr_storage *ss, struct kg_err *e)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0) };
	struct addrinfo *res;
	int r = getaddrinfo(a->host, a->port, &hints, &res);
	if (r != 0)
		return kg_errf(e, "rdma:%s:%s: %s", a->host, a->port, gai_strerror(r));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

/* --- backend --- */

static int rdma_connect_(const struct kg_tp_addr *a, const struct kg_tp_opts *o,
			 struct kg_link **out, struct kg_err *e)
{
	const struct kg_rdma_ops *ops = ops_of(o);
	struct sockaddr_storage ss;
	char name[160];
	if (no_device_check(ops, e) < 0 || resolve(a, false, &ss, e) < 0)
		return -1;
	snprintf(name, sizeof(name), "rdma:%.100s:%s", a->host, a->port);
	struct rdma_link *c = link_new(ops, name, e);
	if (!c)
		return -1;
	int tmo = o->connect_timeout_ms;
	struct conn_info mine;
	struct rdma_conn_param p = { .responder_resources = 1, .initiator_depth = 1,
				     .retry_count = 7, .rnr_retry_count = 7 };
	if (!(c->ch = channel(ops, e)))
		goto fail;
	if (ops->create_id(c->ch, &c->id, c, RDMA_PS_TCP)) {
		c->id = NULL;
		kg_errno(e, "rdma: rdma_create_id");
		goto fail;
	}
	if (ops->resolve_addr(c->id, NULL, (struct sockaddr *)&ss, tmo < 0 ? 5000 : tmo)) {
		kg_errno(e, "connect %s: rdma_resolve_addr", name);
		goto fail;
	}
	if (expect_event(ops, c->ch, RDMA_CM_EVENT_ADDR_RESOLVED, tmo, NULL, name, e) < 0)
		goto fail;
	if (ops->resolve_route(c->id, tmo < 0 ? 5000 : tmo)) {
		kg_errno(e, "connect %s: rdma_resolve_route", name);
		goto fail;
	}
	if (expect_event(ops, c->ch, RDMA_CM_EVENT_ROUTE_RESOLVED, tmo, NULL, name, e) < 0 ||
	    setup(c, o->rdma_staging, e) < 0)
		goto fail;
	my_info(c, &mine);
	p.private_data = &mine;
	p.private_data_len = sizeof(mine);
	if (ops->connect(c->id, &p)) {
		kg_errno(e, "connect %s: rdma_connect", name);
		goto fail;
	}
	if (expect_event(ops, c->ch, RDMA_CM_EVENT_ESTABLISHED, tmo, &c->peer, name, e) < 0)
		goto fail;
	c->connected = true;
	if (check_peer_info(c, e) < 0)
		goto fail;
	*out = &c->base;
	return 0;
fail:
	release(c);
	return -1;
}

static int rdma_listen_(struct kg_tp_listener *l, struct kg_err *e)
{
	const struct kg_rdma_ops *ops = ops_of(&l->opts);
	struct sockaddr_storage ss;
	if (no_device_check(ops, e) < 0 || resolve(&l->addr, true, &ss, e) < 0)
		return -1;
	struct rdma_listener *rl = calloc(1, sizeof(*rl));
	if (!rl)
		return kg_errk(e, KG_ERR_NOMEM, "rdma: out of memory");
	rl->ops = ops;
	if (!(rl->ch = channel(ops, e)))
		goto fail;
	if (ops->create_id(rl->ch, &rl->id, rl, RDMA_PS_TCP)) {
		rl->id = NULL;
		kg_errno(e, "rdma: rdma_create_id");
		goto fail;
	}
	if (ops->bind_addr(rl->id, (struct sockaddr *)&ss) || ops->listen(rl->id, 16)) {
		kg_errno(e, "listen rdma:%s:%s", l->addr.host, l->addr.port);
		goto fail;
	}
	l->priv = rl;
	return 0;
fail:
	if (rl->id)
		ops->destroy_id(rl->id);
	if (rl->ch)
		ops->destroy_event_channel(rl->ch);
	free(rl);
	return -1;
}

static int rdma_accept_(struct kg_tp_listener *l, struct kg_link **out,
			struct kg_err *e)
{
	struct rdma_listener *rl = l->priv;
	const struct kg_rdma_ops *ops = rl->ops;
	struct rdma_cm_event *ev;
	for (;;) {
		if (next_event(ops, rl->ch, l->opts.accept_timeout_ms, &ev,
			       l->name, e) < 0)
			return -1;
		if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST)
			break;
		ops->ack_cm_event(ev); /* stale events of earlier peers */
	}
	struct rdma_cm_id *id = ev->id;
	struct conn_info peer = { 0 };
	if (ev->param.conn.private_data &&
	    ev->param.conn.private_data_len >= sizeof(peer))
		memcpy(&peer, ev->param.conn.private_data, sizeof(peer));
	ops->ack_cm_event(ev);

	char name[160];
	struct sockaddr *sa = rdma_get_peer_addr(id);
	char host[64] = "?", port[8] = "?";
	if (sa && getnameinfo(sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							      : sizeof(struct sockaddr_in),
			      host, sizeof(host), port, sizeof(port),
			      NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		snprintf(host, sizeof(host), "?");
	snprintf(name, sizeof(name), "rdma:%s:%s", host, port);
	struct rdma_link *c = link_new(ops, name, e);
	if (!c) {
		ops->reject(id, NULL, 0);
		ops->destroy_id(id);
		return -1;
	}
	c->id = id;
	c->peer = peer;
	struct conn_info mine;
	struct rdma_conn_param p = { .responder_resources = 1, .initiator_depth = 1,
				     .retry_count = 7, .rnr_retry_count = 7 };
	if (check_peer_info(c, e) < 0) {
		ops->reject(id, NULL, 0);
		goto fail;
	}
	/* Its own channel, so its events do not mix with new requests. */
	if (!(c->ch = channel(ops, e)))
		goto fail;
	if (ops->migrate_id(id, c->ch)) {
		kg_errno(e, "rdma: rdma_migrate_id");
		goto fail;
	}
	if (setup(c, l->opts.rdma_staging, e) < 0)
		goto fail;
	my_info(c, &mine);
	p.private_data = &mine;
	p.private_data_len = sizeof(mine);
	if (ops->accept(id, &p)) {
		kg_errno(e, "accept %s: rdma_accept", name);
		goto fail;
	}
	if (expect_event(ops, c->ch, RDMA_CM_EVENT_ESTABLISHED, l->opts.io_timeout_ms,
			 NULL, name, e) < 0)
		goto fail;
	c->connected = true;
	*out = &c->base;
	return 0;
fail:
	release(c);
	return -1;
}

static void rdma_unlisten(struct kg_tp_listener *l)
{
	struct rdma_listener *rl = l->priv;
	rl->ops->destroy_id(rl->id);
	rl->ops->destroy_event_channel(rl->ch);
	free(rl);
}

const struct kg_tp_backend kg_tp_rdma = {
	.scheme = "rdma",
	.listen = rdma_listen_,
	.accept = rdma_accept_,
	.unlisten = rdma_unlisten,
	.connect = rdma_connect_,
};
