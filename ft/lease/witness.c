/* The lease witness server (witness.h). */
#include <stdio.h>
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

/* One connection: a request, an answer. Errors are the client's. Tokens
 * pass through buf, req and rep: they are wiped before return. */
static int serve_one(struct kg_transport *t, struct witness_table *tab,
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
	} else if (lease_mono_ms(&now, e) < 0 ||
		   (req.op == WITNESS_ACQUIRE &&
		    witness_token_new(fresh, e) < 0)) {
		goto out;
	} else {
		witness_table_apply(tab, &req, now, fresh, &rep, log,
				    sizeof(log));
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

int witness_serve(struct kg_tp_listener *l, const struct witness_opts *o,
		  atomic_bool *stop, struct kg_err *e)
{
	long long now;
	if (lease_mono_ms(&now, e) < 0)
		return -1;
	struct witness_table *tab = witness_table_new(o->max_ttl_ms,
						      o->max_names, now,
						      o->grace_ms, e);
	if (!tab)
		return -1;
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
		struct kg_transport *t;
		struct kg_err ce;
		if (kg_tp_accept(l, &t, &ce) < 0) {
			/* The poll timeout is the loop's tick; a peer refused
			 * in the handshake was logged by kg_tp_accept; an
			 * error of the socket itself ("accept ADDR: ...", out
			 * of descriptors?) is said here and retried. */
			if (strncmp(ce.msg, "accept ", 7) ||
			    strstr(ce.msg, "no peer within"))
				continue;
			kg_log(KG_LOG_INFO, "%s (retrying)", ce.msg);
			sleep_ms(POLL_MS);
			continue;
		}
		if (serve_one(t, tab, &ce) < 0)
			kg_log(KG_LOG_INFO, "client %s: %s",
				kg_tp_peer(t), ce.msg);
		kg_tp_close(t);
	}
	witness_table_free(tab);
	return 0;
}
