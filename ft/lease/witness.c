/* The lease witness server (witness.h). */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "witness.h"
#include "witness_proto.h"
#include "witness_table.h"
#include "lease_impl.h"
#include "base/log.h"

#define POLL_MS 100 /* how soon *stop is seen */

void witness_opts_default(struct witness_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->max_ttl_ms = 60000;
	o->grace_ms = o->max_ttl_ms;
	o->max_names = 1024;
	o->io_timeout_ms = 500;
	o->conn_deadline_ms = 2000;
	o->max_conns = 64;
	o->max_per_source = 8;
}

int witness_listen(const char *addr, const struct kg_tp_key *key,
		   const struct witness_opts *o, struct kg_tp_listener **out,
		   struct kg_err *e)
{
	struct kg_tp_opts to;
	kg_tp_opts_default(&to);
	to.key = key;
	to.max_frame = WITNESS_MAX_FRAME;
	to.io_timeout_ms = o->io_timeout_ms;
	to.accept_timeout_ms = POLL_MS;
	return kg_tp_listen(addr, &to, out, e);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	/* An early wake-up (signal) only makes the retry sooner. */
	(void)nanosleep(&ts, NULL);
}

/* A client being served. The server's lock guards everything here but
 * the connection itself, which only its thread uses (the main loop may
 * cut it, under the lock, while conn is set). */
struct slot {
	struct server *srv;
	bool used, done, cut;
	pthread_t th;
	struct kg_tp_conn *conn;
	char source[200];
	long long deadline_ms;
};

struct server {
	struct kg_tp_listener *l;
	const struct witness_opts *o;
	pthread_mutex_t lock; /* the table and the slots */
	struct witness_table *tab;
	struct slot *slots;   /* o->max_conns */
	unsigned used;
	long long refused_log_ms; /* the last "too many" line */
	unsigned refused_since;
};

static void table_apply(struct server *srv, const struct witness_req *req,
			long long now, const char *fresh,
			struct witness_reply *rep, char *log, size_t logcap)
{
	pthread_mutex_lock(&srv->lock);
	witness_table_apply(srv->tab, req, now, fresh, rep, log, logcap);
	pthread_mutex_unlock(&srv->lock);
}

/* One connection: a request, an answer. Errors are the client's. Tokens
 * pass through buf, req and rep: they are wiped before return. */
static int serve_one(struct kg_transport *t, struct server *srv,
		     struct kg_err *e)
{
	char buf[WITNESS_MAX_FRAME];
	struct kg_tp_rx rx;
	int r = kg_tp_recv(t, buf, sizeof(buf), &rx, e);
	if (r <= 0)
		return r < 0 ? -1 : kg_errf(e, "closed without a request");
	struct witness_req req;
	struct witness_reply rep;
	char log[640] = "";
	char fresh[WITNESS_TOKEN_HEX + 1] = "";
	long long now;
	r = -1;
	if (witness_req_decode(buf, rx.len, &req, e) < 0) {
		kg_err_prefix(e, "bad request");
		memset(&rep, 0, sizeof(rep));
		rep.status = WITNESS_BAD;
		snprintf(rep.error, sizeof(rep.error), "%.255s", e->msg);
	} else if (lease_boot_ms(&now, e) < 0 ||
		   (req.op == WITNESS_ACQUIRE &&
		    witness_token_new(fresh, e) < 0)) {
		goto out;
	} else {
		table_apply(srv, &req, now, fresh, &rep, log, sizeof(log));
	}
	if (log[0])
		kg_log(KG_LOG_INFO, "%s", log);
	if (witness_reply_encode(&rep, buf, sizeof(buf), e) < 0)
		goto out;
	struct iovec iov = { buf, strlen(buf) };
	struct kg_tp_frame f = { &iov, 1, 0 };
	if (kg_tp_send(t, &f, 1, e) < 0)
		goto out;
	r = rep.status == WITNESS_BAD ? kg_errf(e, "%s", rep.error) : 0;
out:
	memset(buf, 0, sizeof(buf));
	memset(&req, 0, sizeof(req));
	memset(&rep, 0, sizeof(rep));
	memset(fresh, 0, sizeof(fresh));
	return r;
}

static void *client_main(void *arg)
{
	struct slot *s = arg;
	struct server *srv = s->srv;
	struct kg_err e = { 0 };
	struct kg_transport *t;
	/* A refusal in the handshake is logged by the transport. */
	if (kg_tp_conn_establish(srv->l, s->conn, &t, &e) == 0 &&
	    serve_one(t, srv, &e) < 0)
		kg_log(KG_LOG_INFO, "client %s: %s", kg_tp_peer(t), e.msg);
	pthread_mutex_lock(&srv->lock);
	struct kg_tp_conn *c = s->conn;
	s->conn = NULL; /* no cut from now on */
	pthread_mutex_unlock(&srv->lock);
	kg_tp_conn_free(c);
	pthread_mutex_lock(&srv->lock);
	s->done = true;
	pthread_mutex_unlock(&srv->lock);
	return NULL;
}

/* Joins the clients that ended and cuts those past their deadline (all
 * of them when stopping). */
static void sweep(struct server *srv, bool stopping)
{
	long long now;
	if (lease_boot_ms(&now, NULL) < 0)
		now = 0;
	pthread_mutex_lock(&srv->lock);
	for (unsigned i = 0; i < srv->o->max_conns; i++) {
		struct slot *s = &srv->slots[i];
		if (!s->used)
			continue;
		if (s->done) {
			pthread_join(s->th, NULL);
			memset(s, 0, sizeof(*s));
			srv->used--;
			continue;
		}
		if (s->conn && !s->cut && (stopping || now >= s->deadline_ms)) {
			kg_tp_conn_cut(s->conn);
			s->cut = true;
			if (!stopping)
				kg_log(KG_LOG_INFO, "client %s: cut after %d ms "
					"(its deadline)", kg_tp_conn_peer(s->conn),
					srv->o->conn_deadline_ms);
		}
	}
	pthread_mutex_unlock(&srv->lock);
}

/* Takes c on a thread of its own, or closes it when too many are served
 * (in all, or from its source). */
static void admit(struct server *srv, struct kg_tp_conn *c)
{
	const char *src = kg_tp_conn_source(c);
	long long now;
	if (lease_boot_ms(&now, NULL) < 0)
		now = 0;
	pthread_mutex_lock(&srv->lock);
	unsigned same = 0;
	struct slot *free_slot = NULL;
	for (unsigned i = 0; i < srv->o->max_conns; i++) {
		struct slot *s = &srv->slots[i];
		if (s->used && !strcmp(s->source, src))
			same++;
		if (!s->used && !free_slot)
			free_slot = s;
	}
	const char *why = !free_slot ? "clients in all"
			  : same >= srv->o->max_per_source ? "from its address"
			  : NULL;
	if (why) {
		srv->refused_since++;
		if (now - srv->refused_log_ms >= 1000) {
			kg_log(KG_LOG_INFO, "client %s: closed unserved: %u %s "
				"already (limit %u; %u closed since the last "
				"such line)", kg_tp_conn_peer(c),
				!free_slot ? srv->used : same, why,
				!free_slot ? srv->o->max_conns
					   : srv->o->max_per_source,
				srv->refused_since);
			srv->refused_log_ms = now;
			srv->refused_since = 0;
		}
		pthread_mutex_unlock(&srv->lock);
		kg_tp_conn_free(c);
		return;
	}
	struct slot *s = free_slot;
	*s = (struct slot){ .srv = srv, .used = true, .conn = c,
			    .deadline_ms = now + srv->o->conn_deadline_ms };
	snprintf(s->source, sizeof(s->source), "%s", src);
	int r = pthread_create(&s->th, NULL, client_main, s);
	if (r) {
		memset(s, 0, sizeof(*s));
		pthread_mutex_unlock(&srv->lock);
		kg_log(KG_LOG_INFO, "client %s: no thread for it (%s); closed",
			kg_tp_conn_peer(c), strerror(r));
		kg_tp_conn_free(c);
		return;
	}
	srv->used++;
	pthread_mutex_unlock(&srv->lock);
}

enum witness_accept_verdict witness_accept_verdict(enum kg_err_kind kind)
{
	switch (kind) {
	case KG_ERR_TIMEOUT:
	case KG_ERR_AUTH:
	case KG_ERR_CORRUPT:
	case KG_ERR_PEER_GONE:
	case KG_ERR_REFUSED:
		return WITNESS_ACCEPT_AGAIN;
	case KG_ERR_UNSPECIFIED:
	case KG_ERR_INVALID:
	case KG_ERR_IO:
	case KG_ERR_NO_SPACE:
	case KG_ERR_NOMEM:
	case KG_ERR_GUEST:
		return WITNESS_ACCEPT_BACK_OFF;
	}
	return WITNESS_ACCEPT_BACK_OFF;
}

int witness_serve(struct kg_tp_listener *l, const struct witness_opts *o,
		  atomic_bool *stop, struct kg_err *e)
{
	long long now;
	if (lease_boot_ms(&now, e) < 0)
		return -1;
	if (!o->max_conns || !o->max_per_source)
		return kg_errf(e, "witness: max_conns and max_per_source must "
			       "be at least 1");
	struct server srv = { .l = l, .o = o, .refused_log_ms = -1000000 };
	srv.tab = witness_table_new(o->max_ttl_ms, o->max_names, now,
				    o->grace_ms, e);
	srv.slots = calloc(o->max_conns, sizeof(*srv.slots));
	if (!srv.tab || !srv.slots) {
		witness_table_free(srv.tab);
		free(srv.slots);
		return srv.tab ? kg_errf(e, "witness: out of memory") : -1;
	}
	pthread_mutex_init(&srv.lock, NULL);
	kg_tp_listener_set_timeout(l, POLL_MS);
	if (o->grace_ms > 0)
		kg_log(KG_LOG_INFO, "serving on %s; for %lld ms only renewals "
			"are granted (leases given before a restart may "
			"still run)", kg_tp_listener_addr(l),
			o->grace_ms);
	else
		kg_log(KG_LOG_INFO, "serving on %s",
			kg_tp_listener_addr(l));
	while (!atomic_load(stop)) {
		sweep(&srv, false);
		struct kg_tp_conn *c;
		struct kg_err ce;
		if (kg_tp_accept_conn(l, &c, &ce) < 0) {
			/* The poll timeout is the loop's tick; an error of the
			 * socket itself (out of descriptors?) is said here and
			 * retried after a pause. */
			if (witness_accept_verdict(ce.kind) ==
			    WITNESS_ACCEPT_AGAIN)
				continue;
			kg_log(KG_LOG_INFO, "%s (retrying)", ce.msg);
			sleep_ms(POLL_MS);
			continue;
		}
		admit(&srv, c);
	}
	/* Cut whoever is still served, and wait for their threads. */
	for (;;) {
		sweep(&srv, true);
		pthread_mutex_lock(&srv.lock);
		unsigned left = srv.used;
		pthread_mutex_unlock(&srv.lock);
		if (!left)
			break;
		sleep_ms(10);
	}
	pthread_mutex_destroy(&srv.lock);
	witness_table_free(srv.tab);
	free(srv.slots);
	return 0;
}
