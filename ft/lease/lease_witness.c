/* The witness backend of lease.h: each call is one authenticated
 * connection to a `kagami witness` (witness.h, witness_proto.h). */
#include <string.h>

#include "lease_impl.h"
#include "witness_proto.h"

/* Bounds connect, handshake and answer: a renewal that takes longer is
 * better reported (-1) while the current lease still runs. */
#define WITNESS_CLIENT_TIMEOUT_MS 2000

/* Sends req and reads the answer. */
static int ask(struct lease *l, const struct witness_req *req,
	       struct witness_reply *rep, struct kg_err *e)
{
	struct kg_tp_opts o;
	kg_tp_opts_default(&o);
	o.connect_timeout_ms = WITNESS_CLIENT_TIMEOUT_MS;
	o.io_timeout_ms = WITNESS_CLIENT_TIMEOUT_MS;
	o.max_frame = WITNESS_MAX_FRAME;
	o.key = l->has_key ? &l->key : NULL;
	char buf[WITNESS_MAX_FRAME];
	if (witness_req_encode(req, buf, sizeof(buf), e) < 0)
		return kg_err_prefix(e, "lease witness %s", l->addr);
	struct kg_transport *t;
	if (kg_tp_connect(l->addr, &o, &t, e) < 0)
		return kg_err_prefix(e, "lease witness %s", l->addr);
	struct iovec iov = { buf, strlen(buf) };
	struct kg_tp_frame f = { &iov, 1, 0 };
	struct kg_tp_rx rx;
	int r = kg_tp_send(t, &f, 1, e);
	if (r == 0) {
		r = kg_tp_recv(t, buf, sizeof(buf), &rx, e);
		if (r == 0)
			r = kg_errk(e, KG_ERR_PEER_GONE, "closed without an answer");
		else if (r > 0)
			r = witness_reply_decode(buf, rx.len, rep, e);
	}
	memset(buf, 0, sizeof(buf)); /* the token */
	kg_tp_close(t);
	if (r < 0)
		return kg_err_prefix(e, "lease witness %s", l->addr);
	if (rep->status == WITNESS_BAD)
		return kg_errk(e, KG_ERR_REFUSED,
			       "lease witness %s: refused the request: %s",
			       l->addr, rep->error);
	return 0;
}

static int witness_acquire(struct lease *l, unsigned ttl_ms,
			   long long *until_ms, struct kg_err *e)
{
	long long t0;
	if (lease_boot_ms(&t0, e) < 0)
		return -1;
	/* With our grant's token this renews it; without, a fresh claim. */
	struct witness_req req = {
		.op = WITNESS_ACQUIRE, .ttl_ms = ttl_ms, .gen = l->gen,
		.holding = l->until_ms && t0 < l->until_ms,
	};
	memcpy(req.name, l->name, sizeof(req.name));
	memcpy(req.holder, l->holder, sizeof(req.holder));
	memcpy(req.token, l->token, sizeof(req.token));
	struct witness_reply rep;
	int r = ask(l, &req, &rep, e);
	memset(&req, 0, sizeof(req));
	if (r < 0)
		return -1;
	switch (rep.status) {
	case WITNESS_GRANTED: {
		unsigned got = rep.ttl_ms;
		uint64_t gen = rep.gen;
		bool renewed = witness_token_eq(rep.token, l->token);
		/* Kept even if the grant is refused below: so that it can
		 * be renewed or released. */
		memcpy(l->token, rep.token, sizeof(l->token));
		memset(&rep, 0, sizeof(rep));
		if (got == 0 || got > ttl_ms)
			return kg_errf(e, "lease witness %s: granted %u ms "
				       "for %u asked", l->addr, got, ttl_ms);
		l->renewed = renewed;
		l->gen = gen;
		/* From before we sent: the witness counts from later. */
		*until_ms = t0 + got;
		return 1;
	}
	case WITNESS_HELD:
		kg_errf(e, "lease '%s' on %s: held by %s for %lld ms "
			"(generation %llu)", l->name, l->addr, rep.holder,
			rep.remaining_ms, (unsigned long long)rep.gen);
		return 0;
	default:
		return kg_errf(e, "lease witness %s: unexpected answer to "
			       "acquire", l->addr);
	}
}

static int witness_release(struct lease *l, struct kg_err *e)
{
	if (!l->token[0])
		return 0; /* never granted: nothing to free */
	struct witness_req req = { .op = WITNESS_RELEASE };
	memcpy(req.name, l->name, sizeof(req.name));
	memcpy(req.holder, l->holder, sizeof(req.holder));
	memcpy(req.token, l->token, sizeof(req.token));
	/* Whatever the answer, the grant is over for us. */
	memset(l->token, 0, sizeof(l->token));
	struct witness_reply rep;
	int r = ask(l, &req, &rep, e);
	memset(&req, 0, sizeof(req));
	if (r < 0)
		return -1;
	if (rep.status != WITNESS_RELEASED)
		return kg_errf(e, "lease witness %s: unexpected answer to "
			       "release", l->addr);
	return 0;
}

const struct lease_ops lease_witness_ops = {
	.acquire = witness_acquire,
	.release = witness_release,
};
