/*
 * What a failure means for the replication pipeline: every decision that
 * depends on why something failed is one table here, a pure function of
 * the error's kind (base/err.h) and of where it happened — never of the
 * message, so that rewording an error cannot change what kagami does.
 * Each switch lists every kind without a default: a new kind does not
 * compile until each table has placed it. tests/unit/test_verdict.c
 * checks every row.
 */
#ifndef KG_VERDICT_H
#define KG_VERDICT_H

#include <stdbool.h>

#include "base/err.h"

/* --- the secondary's follow loop (incoming_follow) --- */

/* Where the error met the secondary. */
enum incoming_phase {
	/* waiting for what comes next: a message, or an epoch's start */
	INCOMING_AT_MESSAGE,
	/* receiving and staging an epoch: nothing of it is applied */
	INCOMING_IN_EPOCH,
	/* applying verified data (a live round, a committed epoch): the
	 * replica may be partly changed */
	INCOMING_APPLYING,
};

enum incoming_verdict {
	/* The primary is gone (silent, or the connection lost): take over
	 * if an epoch is committed. incoming_follow's 1. */
	INCOMING_FAIL_OVER,
	/* The primary is alive (it sent bytes) but what arrived cannot be
	 * trusted: keep the replica, nothing of the bad epoch applied, and
	 * wait for the primary to reconnect. incoming_follow's 2. */
	INCOMING_KEEP,
	/* This side failed, or its replica is no longer whole: drop it.
	 * incoming_follow's -1. */
	INCOMING_DROP,
};

/*
 *                      at message    in epoch      applying
 *   corrupt, auth      keep          keep          drop
 *   timeout, peer gone fail over     fail over     drop
 *   refused            fail over     fail over     drop
 *   anything else      fail over     drop          drop
 *
 * At a message every error is the link's (a malformed message is corrupt):
 * only damage keeps the replica. In an epoch, errors other than the
 * link's and the stream's are this side's own (memory, a version it does
 * not read, disk blocks without a disk). While applying, the replica may
 * be half updated: it is never kept.
 */
enum incoming_verdict incoming_error_verdict(enum kg_err_kind kind,
					     enum incoming_phase phase);

/* With a heartbeat link (beatlink.h): the data link failed as a dead
 * primary's would (v is FAIL_OVER: silent, cut, closed), but heard — a
 * BEAT arrived after the failure, or the primary said AGAIN — shows the
 * primary alive: keep the replica, it reconnects. Every other verdict
 * stands, and so does FAIL_OVER when nothing was heard (or the link's
 * watch suspected the primary: it judged both links silent).
 *
 *                  heard    not heard
 *   fail over      keep     fail over
 *   keep           keep     keep
 *   drop           drop     drop
 */
enum incoming_verdict incoming_beats_verdict(enum incoming_verdict v,
					     bool heard);

/* --- waiting for a primary (incoming_begin at the secondary) --- */

enum standby_verdict {
	STANDBY_WAIT,      /* log it and wait for a primary again */
	STANDBY_FAIL_OVER, /* take over with the replica held */
};

/* holding: the secondary holds a replica after a corrupted link, and
 * waits only a window for the primary to come back. Then a TIMEOUT — no
 * primary came (accept), or one came and went silent before its session
 * began — means it is not coming: fail over. Anything else (a refused or
 * broken connection) is waited out. */
enum standby_verdict standby_begin_verdict(enum kg_err_kind kind,
					   bool holding);

/* --- kagami receive waiting for a source (incoming_begin) --- */

enum receive_verdict {
	RECEIVE_LISTEN_AGAIN, /* a peer failed authentication: next one */
	RECEIVE_GIVE_UP,      /* the migration fails */
};

/* Only a peer refused in the transport's handshake (AUTH) is waited out:
 * anyone may knock on a listening port. A source that authenticated and
 * then failed is this migration failing. */
enum receive_verdict receive_begin_verdict(enum kg_err_kind kind);

/* --- the primary, after its connect to the secondary failed --- */

enum protect_verdict {
	/* the secondary may hold a replica: hold outputs for the reconnect
	 * window */
	PROTECT_MAY_HOLD_REPLICA,
	/* nothing listens there: no replica to respect */
	PROTECT_SECONDARY_GONE,
};

/* REFUSED (no process listens): gone. Anything else — a timeout, a
 * failed handshake, an unreachable host — may be a blip. */
enum protect_verdict protect_connect_verdict(enum kg_err_kind kind);

/* --- migration in doubt: the QUERY connect to the destination --- */

enum doubt_verdict {
	DOUBT_RETRY,       /* try again until the deadline */
	DOUBT_NOT_RUNNING, /* nothing listens: the guest cannot run there */
};

/* REFUSED: the destination's listener is gone, and with it the
 * destination (which answers QUERY while it runs the guest). */
enum doubt_verdict migrate_doubt_verdict(enum kg_err_kind kind);

#endif
