/*
 * The witness protocol, version 2: one request frame, one reply frame per
 * connection (kg_tp_send/kg_tp_recv), each a JSON object:
 *
 *   {"v":2,"op":"acquire","name":N,"holder":H,"ttl_ms":T,"holding":B
 *    [,"token":K,"gen":G]}
 *   {"v":2,"op":"release","name":N,"holder":H,"token":K}
 *
 * A grant carries a token K, 128 random bits in 32 lower-case hex digits
 * that only the witness and the holder know: an acquire with the current
 * holder's token renews its grant (same token, same generation), and only
 * a release with it frees the lease. The holder's name H is for logs and
 * refusals, never proof: it is predictable. The token is never logged.
 * G is the generation of the grant K belongs to, and holding says the
 * client holds the lease by its own clock: together they are the claim a
 * witness that just restarted (and forgot K) accepts, see witness_table.h.
 * Replies:
 *
 *   {"v":2,"granted":true,"gen":G,"ttl_ms":T,"token":K}  T may be less
 *   {"v":2,"granted":false,"holder":H,"remaining_ms":R,"gen":G}
 *   {"v":2,"released":true,"gen":G}      also when K was not the holder's
 *   {"error":"..."}                      a bad request
 *
 * Version 1 had no "v" and no token (a release or renewal by name); each
 * side refuses the other with an error that says which one to upgrade.
 * JSON numbers are doubles in cJSON: generations stay below 2^53, which a
 * bump per failover never reaches.
 */
#ifndef KG_WITNESS_PROTO_H
#define KG_WITNESS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lease.h"

#define WITNESS_MAX_FRAME 4096 /* both directions */
#define WITNESS_PROTO_VERSION 2
#define WITNESS_TOKEN_HEX 32   /* a token's hex digits (128 bits) */

enum witness_op { WITNESS_ACQUIRE = 1, WITNESS_RELEASE };

struct witness_req {
	enum witness_op op;
	char name[LEASE_NAME_MAX + 1];
	char holder[LEASE_HOLDER_MAX + 1];
	unsigned ttl_ms; /* acquire */
	uint64_t gen;    /* acquire, with token: the grant's generation */
	bool holding;    /* acquire */
	char token[WITNESS_TOKEN_HEX + 1]; /* "": none (a fresh claim) */
};

enum witness_status {
	WITNESS_GRANTED = 1,
	WITNESS_HELD,     /* refused: holder holds it for remaining_ms */
	WITNESS_RELEASED,
	WITNESS_BAD,      /* error says what */
};

struct witness_reply {
	enum witness_status status;
	uint64_t gen;
	unsigned ttl_ms;            /* granted */
	char token[WITNESS_TOKEN_HEX + 1]; /* granted */
	char holder[LEASE_HOLDER_MAX + 1]; /* held */
	long long remaining_ms;     /* held */
	char error[256];            /* bad */
};

/* Holder and lease names end up in log lines and JSON: 1..max printable
 * bytes, no white space, no '/'. */
bool witness_name_ok(const char *s, size_t max);

/* Each writes NUL-terminated JSON into buf; -1 if it does not fit. */
int witness_req_encode(const struct witness_req *r, char *buf, size_t cap,
		       struct kg_err *e);
int witness_reply_encode(const struct witness_reply *r, char *buf, size_t cap,
			 struct kg_err *e);
/* A token as the protocol writes it: WITNESS_TOKEN_HEX lower-case hex
 * digits. */
bool witness_token_ok(const char *s);
/* Fills tok with a fresh token from getrandom(). */
int witness_token_new(char tok[WITNESS_TOKEN_HEX + 1], struct kg_err *e);
/* Compares two tokens in constant time: true when equal and not "". */
bool witness_token_eq(const char *a, const char *b);

/* Each parses len bytes (no NUL needed); -1 names what is wrong (never
 * quoting a token). Names are checked with witness_name_ok; a message of
 * another protocol version is an error that says so. */
int witness_req_decode(const char *buf, size_t len, struct witness_req *r,
		       struct kg_err *e);
int witness_reply_decode(const char *buf, size_t len, struct witness_reply *r,
			 struct kg_err *e);

#endif
