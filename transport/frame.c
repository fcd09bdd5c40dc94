/*
 * Connections: listen/accept/connect pick the backend by the address
 * scheme, authenticate, optionally wrap the link in the fault layer, and
 * then speak the frame format of transport.h over it.
 */
#include "auth.h"
#include "base/le.h"
#include "base/crc32c.h"
#include "base/log.h"

#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CONNECT_MS 5000
#define DEFAULT_IO_MS 10000
#define DEFAULT_MAX_FRAME (64u << 20)
#define DEFAULT_RDMA_STAGING (8u << 20)
#define CLOSE_TIMEOUT_MS 1000

struct kg_transport {
	struct kg_link *link;
	struct kg_tp_opts opts;
	struct kg_mac tx_mac, rx_mac;
	uint64_t tx_seq, rx_seq;
	bool tx_broken, rx_broken, peer_closed;
	/* the kind of the error that broke each direction: what later
	 * attempts report too */
	enum kg_err_kind tx_kind, rx_kind;
	atomic_int io_timeout_ms; /* opts.io_timeout_ms, changeable */
};

void kg_tp_opts_default(struct kg_tp_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->connect_timeout_ms = DEFAULT_CONNECT_MS;
	o->io_timeout_ms = DEFAULT_IO_MS;
	o->accept_timeout_ms = -1;
	o->max_frame = DEFAULT_MAX_FRAME;
	o->rdma_staging = DEFAULT_RDMA_STAGING;
}

static int check_opts(const struct kg_tp_opts *o, struct kg_err *e)
{
	if (o->max_frame == 0 || o->max_frame > KG_FRAME_MAX_LIMIT)
		return kg_errk(e, KG_ERR_INVALID, "transport: max_frame %u outside 1..%u",
			       o->max_frame, KG_FRAME_MAX_LIMIT);
	if (o->key && (o->key->len < KG_TP_KEY_MIN || o->key->len > KG_TP_KEY_MAX))
		return kg_errk(e, KG_ERR_INVALID, "transport: key of %zu bytes, want %d..%d",
			       o->key->len, KG_TP_KEY_MIN, KG_TP_KEY_MAX);
	return 0;
}

static const struct kg_tp_backend *backend(enum kg_tp_kind k)
{
	switch (k) {
	case KG_TP_TCP: return &kg_tp_tcp;
	case KG_TP_UNIX: return &kg_tp_unix;
	case KG_TP_RDMA: return &kg_tp_rdma;
	}
	return NULL;
}

static void header_encode(uint8_t h[KG_FRAME_HEADER_SIZE], uint32_t flags,
			  uint64_t seq, uint32_t len)
{
	le32_put(h, KG_FRAME_MAGIC);
	le32_put(h + 4, flags);
	le64_put(h + 8, seq);
	le32_put(h + 16, len);
	le32_put(h + 20, kg_crc32c(0, h, 20));
}

/* --- making a connection --- */

/* Authenticates a fresh link and wraps it; takes the link on success,
 * and on failure too unless keep (then the caller still owns it). */
static int establish(struct kg_link *link, bool server, bool keep,
		     const struct kg_tp_opts *o, struct kg_transport **out,
		     struct kg_err *e)
{
	uint8_t txk[KG_TP_SESSION_KEY_SIZE], rxk[KG_TP_SESSION_KEY_SIZE];
	struct kg_transport *t = NULL;
	if (kg_tp_handshake(link, server, o->key, o->io_timeout_ms, txk, rxk, e) < 0)
		goto fail;
	t = calloc(1, sizeof(*t));
	if (!t) {
		kg_errk(e, KG_ERR_NOMEM, "%s: out of memory", link->peer);
		goto fail;
	}
	t->opts = *o;
	atomic_init(&t->io_timeout_ms, o->io_timeout_ms);
	t->opts.key = NULL; /* the session keys replace it */
	t->opts.fault = NULL;
	const uint8_t *kt = o->key ? txk : NULL, *kr = o->key ? rxk : NULL;
	if (kg_mac_init(&t->tx_mac, kt, sizeof(txk), e) < 0 ||
	    kg_mac_init(&t->rx_mac, kr, sizeof(rxk), e) < 0)
		goto fail;
	if (o->fault) {
		/* After the handshake: faults count data frames only. */
		struct kg_link *f = kg_fault_link_new(link, o->fault, e);
		if (!f)
			goto fail;
		t->link = f;
	} else {
		t->link = link;
	}
	memset(txk, 0, sizeof(txk));
	memset(rxk, 0, sizeof(rxk));
	*out = t;
	return 0;
fail:
	memset(txk, 0, sizeof(txk));
	memset(rxk, 0, sizeof(rxk));
	if (t) {
		kg_mac_free(&t->tx_mac);
		kg_mac_free(&t->rx_mac);
		free(t);
	}
	if (!keep)
		link->ops->destroy(link);
	*out = NULL;
	return -1;
}

int kg_tp_listen(const char *addr, const struct kg_tp_opts *o,
		 struct kg_tp_listener **out, struct kg_err *e)
{
	*out = NULL;
	struct kg_tp_listener *l = calloc(1, sizeof(*l));
	if (!l)
		return kg_errk(e, KG_ERR_NOMEM, "listen %s: out of memory", addr);
	if (o)
		l->opts = *o;
	else
		kg_tp_opts_default(&l->opts);
	if (kg_tp_addr_parse(addr, &l->addr, e) < 0 || check_opts(&l->opts, e) < 0)
		goto fail;
	/* Own copies: the caller's key and fault may go away. */
	if (l->opts.key) {
		l->key = *l->opts.key;
		l->opts.key = &l->key;
	}
	if (l->opts.fault) {
		l->fault = *l->opts.fault;
		l->opts.fault = &l->fault;
	}
	l->fd = -1;
	l->be = backend(l->addr.kind);
	snprintf(l->name, sizeof(l->name), "%s", addr);
	if (l->be->listen(l, e) < 0)
		goto fail;
	*out = l;
	return 0;
fail:
	memset(&l->key, 0, sizeof(l->key));
	free(l);
	return -1;
}

const char *kg_tp_listener_addr(const struct kg_tp_listener *l)
{
	return l->name;
}

/* Logged here as well as returned: a refused peer must leave a trace
 * even if the caller just accepts again. */
static void log_refusal(const struct kg_tp_listener *l, const char *peer,
			const struct kg_err *e)
{
	kg_log(KG_LOG_INFO, "transport %s: refused a peer (%s): %s", l->name,
		peer, e ? e->msg : "");
}

int kg_tp_accept(struct kg_tp_listener *l, struct kg_transport **out,
		 struct kg_err *e)
{
	*out = NULL;
	struct kg_link *link;
	if (l->be->accept(l, &link, e) < 0)
		return -1;
	char peer[sizeof(link->peer)];
	memcpy(peer, link->peer, sizeof(peer));
	if (establish(link, true, false, &l->opts, out, e) < 0) {
		log_refusal(l, peer, e);
		return -1;
	}
	return 0;
}

/* --- serving many peers at once --- */

struct kg_tp_conn {
	struct kg_link *link;   /* the socket's; inside t once established */
	struct kg_transport *t; /* NULL until established */
	char source[sizeof(((struct kg_link *)0)->peer)];
};

/* The peer without its port: "tcp:10.0.0.1:5000" -> "tcp:10.0.0.1",
 * "tcp:[::1]:5000" -> "tcp:[::1]", "unix:/p (pid 42)" -> "unix:/p". */
static void source_of(const char *peer, char *out, size_t n)
{
	snprintf(out, n, "%s", peer);
	char *cut = !strncmp(out, "unix:", 5) ? strstr(out, " (pid ")
					      : strrchr(out, ':');
	if (cut && cut > strchr(out, ':'))
		*cut = 0;
}

int kg_tp_accept_conn(struct kg_tp_listener *l, struct kg_tp_conn **out,
		      struct kg_err *e)
{
	*out = NULL;
	struct kg_link *link;
	if (l->be->accept(l, &link, e) < 0)
		return -1;
	struct kg_tp_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		kg_errk(e, KG_ERR_NOMEM, "accept %s: out of memory", l->name);
		link->ops->destroy(link);
		return -1;
	}
	c->link = link;
	source_of(link->peer, c->source, sizeof(c->source));
	*out = c;
	return 0;
}

const char *kg_tp_conn_source(const struct kg_tp_conn *c)
{
	return c->source;
}

const char *kg_tp_conn_peer(const struct kg_tp_conn *c)
{
	return c->link->peer;
}

int kg_tp_conn_establish(struct kg_tp_listener *l, struct kg_tp_conn *c,
			 struct kg_transport **out, struct kg_err *e)
{
	*out = NULL;
	if (c->t)
		return kg_errf(e, "%s: already established", c->link->peer);
	if (establish(c->link, true, true, &l->opts, &c->t, e) < 0) {
		log_refusal(l, c->link->peer, e);
		return -1;
	}
	*out = c->t;
	return 0;
}

void kg_tp_conn_cut(struct kg_tp_conn *c)
{
	/* The socket's own link, even under a fault layer: shutting it down
	 * is safe while another thread waits on it. */
	c->link->ops->shutdown(c->link);
}

void kg_tp_conn_free(struct kg_tp_conn *c)
{
	if (!c)
		return;
	if (c->t)
		kg_tp_close(c->t); /* destroys the link */
	else
		c->link->ops->destroy(c->link);
	free(c);
}

void kg_tp_listener_set_timeout(struct kg_tp_listener *l, int accept_ms)
{
	l->opts.accept_timeout_ms = accept_ms;
}

void kg_tp_listener_close(struct kg_tp_listener *l)
{
	if (!l)
		return;
	l->be->unlisten(l);
	memset(&l->key, 0, sizeof(l->key));
	free(l);
}

int kg_tp_connect(const char *addr, const struct kg_tp_opts *o,
		  struct kg_transport **out, struct kg_err *e)
{
	*out = NULL;
	struct kg_tp_opts def;
	if (!o) {
		kg_tp_opts_default(&def);
		o = &def;
	}
	struct kg_tp_addr a;
	struct kg_link *link;
	if (kg_tp_addr_parse(addr, &a, e) < 0 || check_opts(o, e) < 0 ||
	    backend(a.kind)->connect(&a, o, &link, e) < 0)
		return -1;
	return establish(link, false, false, o, out, e);
}

const char *kg_tp_peer(const struct kg_transport *t)
{
	return t->link->peer;
}

/* --- frames --- */

/* A link's read or write failed: the connection is lost, whatever the
 * backend's cause, unless it says timeout or memory (or a fault's cut,
 * already PEER_GONE). */
static int link_failed(struct kg_err *e)
{
	if (e && (e->kind == KG_ERR_IO || e->kind == KG_ERR_UNSPECIFIED))
		e->kind = KG_ERR_PEER_GONE;
	return -1;
}

/* Sends frames (flags already include the transport's own bits). */
static int send_frames(struct kg_transport *t, const struct kg_tp_frame *fr,
		       size_t n, int timeout_ms, struct kg_err *e)
{
	if (t->tx_broken)
		return kg_errk(e, t->tx_kind,
			       "send to %s: connection unusable after an earlier error",
			       t->link->peer);
	size_t nv = 0;
	for (size_t i = 0; i < n; i++) {
		if (fr[i].iovcnt < 0)
			return kg_errf(e, "send to %s: negative iovcnt", t->link->peer);
		nv += (size_t)fr[i].iovcnt + 2;
	}
	if (nv > (size_t)1 << 20)
		return kg_errf(e, "send to %s: batch of %zu iovecs is too large",
			       t->link->peer, nv);
	uint8_t (*hdr)[KG_FRAME_HEADER_SIZE + KG_FRAME_TRAILER_SIZE] =
		malloc(n ? n * sizeof(*hdr) : 1);
	struct iovec *v = malloc(nv ? nv * sizeof(*v) : 1);
	size_t *flen = malloc(n ? n * sizeof(*flen) : 1);
	int r = -1;
	if (!hdr || !v || !flen) {
		kg_errk(e, KG_ERR_NOMEM, "send to %s: out of memory", t->link->peer);
		goto out;
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		size_t len = 0;
		for (int j = 0; j < fr[i].iovcnt; j++)
			len += fr[i].iov[j].iov_len;
		uint64_t seq = t->tx_seq + i;
		if (len > KG_FRAME_MAX_LIMIT) {
			kg_errf(e, "send to %s: frame seq %llu of %zu bytes exceeds %u",
				t->link->peer, (unsigned long long)seq, len,
				KG_FRAME_MAX_LIMIT);
			goto out;
		}
		uint8_t *h = hdr[i], *tr = hdr[i] + KG_FRAME_HEADER_SIZE;
		header_encode(h, fr[i].flags, seq, (uint32_t)len);
		size_t first = k;
		v[k++] = (struct iovec){ h, KG_FRAME_HEADER_SIZE };
		for (int j = 0; j < fr[i].iovcnt; j++)
			v[k++] = fr[i].iov[j];
		if (kg_mac_compute(&t->tx_mac, v + first, (int)(k - first), tr) < 0) {
			kg_errf(e, "send to %s: frame seq %llu: MAC computation failed",
				t->link->peer, (unsigned long long)seq);
			goto out;
		}
		v[k++] = (struct iovec){ tr, KG_FRAME_TRAILER_SIZE };
		flen[i] = KG_FRAME_HEADER_SIZE + len + KG_FRAME_TRAILER_SIZE;
	}
	if (t->link->ops->send(t->link, v, (int)k, flen, n, timeout_ms, e) < 0) {
		kg_err_prefix(e, "send to %s: frame seq %llu..%llu", t->link->peer,
			      (unsigned long long)t->tx_seq,
			      (unsigned long long)(t->tx_seq + n - 1));
		link_failed(e);
		t->tx_broken = true;
		t->tx_kind = e ? e->kind : KG_ERR_PEER_GONE;
		goto out;
	}
	t->tx_seq += n;
	r = 0;
out:
	free(hdr);
	free(v);
	free(flen);
	return r;
}

int kg_tp_send(struct kg_transport *t, const struct kg_tp_frame *frames,
	       size_t n, struct kg_err *e)
{
	for (size_t i = 0; i < n; i++)
		if (frames[i].flags & ~KG_FRAME_USER_FLAGS)
			return kg_errf(e, "send to %s: flag bit 31 is the transport's",
				       t->link->peer);
	if (n == 0)
		return 0;
	return send_frames(t, frames, n, atomic_load(&t->io_timeout_ms), e);
}

/* Reads n bytes of frame seq; EOF and errors become one line naming both. */
static int read_part(struct kg_transport *t, void *buf, size_t n, bool first,
		     struct kg_err *e)
{
	size_t got;
	const char *peer = t->link->peer;
	unsigned long long seq = (unsigned long long)t->rx_seq;
	int r = t->link->ops->recv(t->link, buf, n,
					 atomic_load(&t->io_timeout_ms), &got, e);
	if (r < 0) {
		kg_err_prefix(e, "receive from %s: frame seq %llu", peer, seq);
		return link_failed(e);
	}
	if (r == 0 && first && got == 0)
		return kg_errk(e, KG_ERR_PEER_GONE,
			       "receive from %s: connection closed by the peer before frame seq %llu (no orderly close)",
			       peer, seq);
	if (r == 0)
		return kg_errk(e, KG_ERR_PEER_GONE,
			       "receive from %s: connection cut inside frame seq %llu",
			       peer, seq);
	return 0;
}

/* One frame, read and verified; kg_tp_recv keeps the state. */
static int recv_frame(struct kg_transport *t, void *buf, size_t cap,
		      struct kg_tp_rx *rx, struct kg_err *e)
{
	const char *peer = t->link->peer;
	unsigned long long want = (unsigned long long)t->rx_seq;
	uint8_t h[KG_FRAME_HEADER_SIZE], tr[KG_FRAME_TRAILER_SIZE],
		mac[KG_FRAME_TRAILER_SIZE];
	if (read_part(t, h, sizeof(h), true, e) < 0)
		return -1;
	if (le32_get(h) != KG_FRAME_MAGIC)
		return kg_errk(e, KG_ERR_CORRUPT,
			       "receive from %s: frame seq %llu: bad magic 0x%08x (stream corrupted or not kagami)",
			       peer, want, le32_get(h));
	if (le32_get(h + 20) != kg_crc32c(0, h, 20))
		return kg_errk(e, KG_ERR_CORRUPT,
			       "receive from %s: frame seq %llu: header checksum mismatch (corrupted)",
			       peer, want);
	uint32_t flags = le32_get(h + 4), len = le32_get(h + 16);
	uint64_t seq = le64_get(h + 8);
	if (seq != t->rx_seq)
		return kg_errk(e, KG_ERR_CORRUPT,
			       "receive from %s: frame seq %llu out of sequence, expected %llu (replayed, dropped or reordered)",
			       peer, (unsigned long long)seq, want);
	if (len > t->opts.max_frame)
		return kg_errk(e, KG_ERR_CORRUPT,
			       "receive from %s: frame seq %llu: length %u exceeds the limit %u",
			       peer, want, len, t->opts.max_frame);
	if (len > cap)
		return kg_errk(e, KG_ERR_CORRUPT,
			       "receive from %s: frame seq %llu: length %u exceeds the receive buffer (%zu bytes)",
			       peer, want, len, cap);
	if ((len && read_part(t, buf, len, false, e) < 0) ||
	    read_part(t, tr, sizeof(tr), false, e) < 0)
		return -1;
	struct iovec parts[2] = { { h, sizeof(h) }, { buf, len } };
	if (kg_mac_compute(&t->rx_mac, parts, 2, mac) < 0)
		return kg_errf(e, "receive from %s: frame seq %llu: MAC computation failed",
			       peer, want);
	if (kg_mac_cmp(mac, tr, sizeof(tr)))
		return kg_errk(e, KG_ERR_CORRUPT, t->rx_mac.keyed
			       ? "receive from %s: frame seq %llu: MAC mismatch (corrupted or forged)"
			       : "receive from %s: frame seq %llu: checksum mismatch (corrupted)",
			       peer, want);
	t->rx_seq++;
	if (flags & KG_FRAME_CLOSE) {
		t->peer_closed = true;
		return 0;
	}
	if (rx)
		*rx = (struct kg_tp_rx){ .seq = seq, .len = len, .flags = flags };
	return 1;
}

int kg_tp_recv(struct kg_transport *t, void *buf, size_t cap,
	       struct kg_tp_rx *rx, struct kg_err *e)
{
	if (t->peer_closed)
		return 0;
	if (t->rx_broken)
		return kg_errk(e, t->rx_kind,
			       "receive from %s: connection unusable after an earlier error",
			       t->link->peer);
	t->rx_broken = true; /* until this frame is complete and verified */
	int r = recv_frame(t, buf, cap, rx, e);
	if (r >= 0)
		t->rx_broken = false;
	else
		t->rx_kind = e ? e->kind : KG_ERR_PEER_GONE;
	return r;
}

void kg_tp_set_io_timeout(struct kg_transport *t, int io_ms)
{
	atomic_store(&t->io_timeout_ms, io_ms);
}

void kg_tp_shutdown(struct kg_transport *t)
{
	t->link->ops->shutdown(t->link);
}

void kg_tp_close(struct kg_transport *t)
{
	if (!t)
		return;
	if (!t->tx_broken && !t->rx_broken) {
		/* Only a healthy connection ends in order: after an error the
		 * peer must see a failure, not a clean end. Best effort and
		 * bounded: a dead peer must not hold us. */
		struct kg_tp_frame f = { NULL, 0, KG_FRAME_CLOSE };
		int tmo = atomic_load(&t->io_timeout_ms);
		if (tmo < 0 || tmo > CLOSE_TIMEOUT_MS)
			tmo = CLOSE_TIMEOUT_MS;
		(void)send_frames(t, &f, 1, tmo, NULL);
	}
	t->link->ops->destroy(t->link);
	kg_mac_free(&t->tx_mac);
	kg_mac_free(&t->rx_mac);
	free(t);
}
