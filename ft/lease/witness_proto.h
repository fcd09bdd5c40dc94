/*
 * The witness protocol: one request frame, one reply frame per
 * connection (kg_tp_send/kg_tp_recv), each a JSON object:
 *
 *   {"op":"acquire","name":N,"holder":H,"ttl_ms":T,"gen":G,"holding":B}
 *   {"op":"release","name":N,"holder":H,"gen":G}
 *
 * gen is the highest generation the client has seen; holding says the
 * client holds the lease by its own clock (a renewal: the only claim a
 * witness that just restarted accepts, see witness.h). Replies:
 *
 *   {"granted":true,"gen":G,"ttl_ms":T}       T may be less than asked
 *   {"granted":false,"holder":H,"remaining_ms":R,"gen":G}
 *   {"released":true,"gen":G}                 also when not the holder
 *   {"error":"..."}                           a bad request
 *
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

enum witness_op { WITNESS_ACQUIRE = 1, WITNESS_RELEASE };

struct witness_req {
	enum witness_op op;
	char name[LEASE_NAME_MAX + 1];
	char holder[LEASE_HOLDER_MAX + 1];
	unsigned ttl_ms; /* acquire */
	uint64_t gen;
	bool holding;    /* acquire */
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
/* Each parses len bytes (no NUL needed); -1 names what is wrong. Names
 * are checked with witness_name_ok. */
int witness_req_decode(const char *buf, size_t len, struct witness_req *r,
		       struct kg_err *e);
int witness_reply_decode(const char *buf, size_t len, struct witness_reply *r,
			 struct kg_err *e);

#endif
