/*
 * The witness's decisions, apart from the network (witness.c) so that
 * they can be tested with a hand-driven clock. Per lease name: holder (a
 * name, for logs and refusals), the grant's token (witness_proto.h),
 * expiry (server ms) and generation.
 *
 * An acquire that presents the current grant's token renews that grant
 * for min(ttl, max_ttl) from now, with the same token and generation;
 * also after it expired, since nobody took it meanwhile. Any other
 * acquire is a fresh claim: granted when the lease is free (never held,
 * released or expired), with a new token (the caller's fresh one) and
 * the next generation; refused while another grant runs, with its holder
 * and remaining time. A release with the token frees the lease at once.
 * Nothing else changes anything: a refused claim, a release or renewal
 * without the token, a generation a client made up leave the lease as it
 * was. Only the table assigns generations, and only a grant to a new
 * claim moves them.
 *
 * A witness that restarts has forgotten who holds what, while a holder
 * may still run its guest for up to max_ttl. So for a grace period after
 * start a name the table does not know is granted only to a client that
 * says it holds the lease (holding, with its token and generation, which
 * the table adopts); fresh claims are refused until the grace period
 * ends. That claim cannot be checked: during the grace period the witness
 * trusts its clients, which the transport key (--lease-key) limits to the
 * kagami hosts. A name nobody claims back counts generations from 1
 * again: clients tell a renewal from a fresh grant by the token, never by
 * the number (lease.h).
 */
#ifndef KG_WITNESS_TABLE_H
#define KG_WITNESS_TABLE_H

#include <stddef.h>

#include "witness_proto.h"

struct witness_table;

/* max_names bounds memory (a full table reuses expired entries); grace_ms
 * counts from now_ms. */
struct witness_table *witness_table_new(unsigned max_ttl_ms, size_t max_names,
					long long now_ms, long long grace_ms,
					struct kg_err *e);
void witness_table_free(struct witness_table *t);
/* Applies r at server time now_ms and fills *rep (WITNESS_BAD with a
 * reason when the table is full). fresh: a new token (witness_token_new)
 * for a fresh grant; unused otherwise. log gets one line worth logging (a
 * grant to a new holder, a hand-over, a release, a refusal not logged
 * just before), or "" for a routine renewal or a repeated refusal; it
 * never holds a token. */
void witness_table_apply(struct witness_table *t, const struct witness_req *r,
			 long long now_ms, const char *fresh,
			 struct witness_reply *rep, char *log, size_t logcap);

#endif
