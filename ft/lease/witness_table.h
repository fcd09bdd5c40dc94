/*
 * The witness's decisions, apart from the network (witness.c) so that
 * they can be tested with a hand-driven clock. Per lease name: holder,
 * expiry (server CLOCK_MONOTONIC ms) and generation.
 *
 * acquire is granted when the lease is free (never held, released or
 * expired) or already held by the same holder (a renewal), for
 * min(ttl, max_ttl) from now; otherwise refused with the holder and its
 * remaining time. The generation bumps when a different holder takes it,
 * from the highest generation anyone has shown (so it never goes back,
 * even across a witness restart). A release by the holder frees it at
 * once; a release by anyone else changes nothing.
 *
 * A witness that restarts has forgotten who holds what, while a holder
 * may still run its guest for up to max_ttl. So for a grace period after
 * start a name the table does not know is granted only to a client that
 * says it holds the lease (a renewal, with its generation kept); fresh
 * claims are refused until the grace period ends. Clients are
 * authenticated and honest (crash faults, not lies): only the real
 * holder makes that claim.
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
 * reason when the table is full). log gets one line worth logging (a
 * grant to a new holder, a hand-over, a release, a refusal not logged
 * just before), or "" for a routine renewal or a repeated refusal. */
void witness_table_apply(struct witness_table *t, const struct witness_req *r,
			 long long now_ms, struct witness_reply *rep,
			 char *log, size_t logcap);

#endif
