/*
 * The lease witness: a small server that the primary and the secondary
 * both ask for the lease (lease.h, spec witness:ADDR). Put it on a third
 * host: when the link between the two sides breaks, the side that still
 * reaches the witness keeps (or takes) the lease, the other cannot renew
 * and stops its guest when its lease runs out.
 *
 * One thread, one request per connection: accept (with the transport's
 * authentication), read one request, answer, close. Every wait is bounded
 * by the listener's timeouts, so a client that connects and goes silent
 * delays the others by at most io_timeout_ms and never blocks the server;
 * witness_listen sets short ones. Grants, hand-overs, releases and
 * refusals are logged (base/log.h), one line each (witness_table.h says
 * which are worth a line). State is in memory only; witness_table.h says
 * how a restart stays safe.
 */
#ifndef KG_WITNESS_H
#define KG_WITNESS_H

#include <stdatomic.h>
#include <stddef.h>

#include "transport/transport.h"

struct witness_opts {
	unsigned max_ttl_ms; /* longest lease granted */
	long long grace_ms;  /* after start, only renewals (witness_table.h);
				normally max_ttl_ms; 0 for tests */
	size_t max_names;    /* leases kept at once */
	int io_timeout_ms;   /* per client: handshake, request, answer */
};

/* max_ttl 60 s, grace = max_ttl, 1024 names, io timeout 500 ms. */
void witness_opts_default(struct witness_opts *o);

/* Listens on addr with the timeouts witness_serve counts on (key may be
 * NULL). */
int witness_listen(const char *addr, const struct kg_tp_key *key,
		   const struct witness_opts *o, struct kg_tp_listener **out,
		   struct kg_err *e);

/* Serves until *stop is set (seen within ~100 ms); returns 0 then. A
 * refused or broken client, and a failing accept (e.g. out of file
 * descriptors: retried after 100 ms), are logged and the loop goes on;
 * -1 only when the server cannot start (out of memory). */
int witness_serve(struct kg_tp_listener *l, const struct witness_opts *o,
		  atomic_bool *stop, struct kg_err *e);

/* witness_serve's table for a failed accept, on the error's kind:
 * AGAIN — the poll timeout (the loop's tick: TIMEOUT), or a peer refused
 * or broken in the handshake (AUTH, CORRUPT, PEER_GONE, REFUSED: the
 * transport logged it) — accept again at once, saying nothing; BACK_OFF
 * — this side's own failure (IO, e.g. out of descriptors, NOMEM,
 * NO_SPACE, INVALID, GUEST, UNSPECIFIED) — log it and retry after 100 ms. */
enum witness_accept_verdict { WITNESS_ACCEPT_AGAIN, WITNESS_ACCEPT_BACK_OFF };
enum witness_accept_verdict witness_accept_verdict(enum kg_err_kind kind);

#endif
