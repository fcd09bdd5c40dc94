/*
 * The lease witness: a small server that the primary and the secondary
 * both ask for the lease (lease.h, spec witness:ADDR). Put it on a third
 * host: when the link between the two sides breaks, the side that still
 * reaches the witness keeps (or takes) the lease, the other cannot renew
 * and stops its guest when its lease runs out.
 *
 * One request per connection, each connection on a thread of its own
 * (authenticate, read one request, answer, close), so a client that
 * connects and goes silent holds up nobody else. Each is bounded: every
 * wait by io_timeout_ms, the whole connection by conn_deadline_ms (then
 * it is cut), and connections at once by max_conns in all and
 * max_per_source from one address (beyond that a new one is closed
 * before its handshake, and the refusals are logged at most once a
 * second). The table is one, behind a mutex. Grants, hand-overs, releases and
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
	int io_timeout_ms;   /* per client: each wait (handshake, request,
				answer) */
	int conn_deadline_ms;     /* per client: all of it */
	unsigned max_conns;       /* clients served at once */
	unsigned max_per_source;  /* of those, from one address */
};

/* max_ttl 60 s, grace = max_ttl, 1024 names, io timeout 500 ms, deadline
 * 2 s, 64 clients at once, 8 per source. */
void witness_opts_default(struct witness_opts *o);

/* Listens on addr with the timeouts witness_serve counts on (key may be
 * NULL). */
int witness_listen(const char *addr, const struct kg_tp_key *key,
		   const struct witness_opts *o, struct kg_tp_listener **out,
		   struct kg_err *e);

/* Serves until *stop is set (seen within ~100 ms); returns 0 then, once
 * every client's thread has ended (those still running are cut). A
 * refused or broken client, and a failing accept (e.g. out of file
 * descriptors: retried after 100 ms) or thread, are logged and the loop
 * goes on; -1 only when the server cannot start (out of memory). */
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
