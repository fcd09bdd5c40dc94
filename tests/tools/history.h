/*
 * Histories written by build/tests/redis-history (tests/tools/redis_history.c)
 * and their check (build/tests/history-check, tests/tools/rh_check.c).
 * The checker is independent of kagami's own load generator and checker
 * (kv/, check/): it judges what a stock redis client saw.
 *
 * File format, one record a line, fields separated by one space:
 *   redis-history 1                      first line
 *   start NS                             second line (CLOCK_MONOTONIC ns)
 *   CLIENT SEQ OP KEY ARG INV RET RESULT one per operation, any order
 *   end NS                               last line (a file without it is
 *                                        truncated)
 *   # ...                                comments, anywhere after line 1
 * OP is set, get, incr or append. ARG is the value (set) or token (append);
 * "-" for incr and get, "final" for a get of the client's final read
 * phase. INV and RET are CLOCK_MONOTONIC ns; RET is "-" when the outcome
 * is unknown (timeout, connection lost: the operation may or may not have
 * taken effect). RESULT: "ok" (set), "nil" or "v:VALUE" (get), "i:N"
 * (incr: the new value; append: the new length), "err:TEXT" (the server
 * refused: no effect), "?:TEXT" (unknown outcome; exactly when RET is "-").
 * KEY, VALUE and TEXT escape every byte outside '!'..'~' and '%' as %XX.
 * Values of set and tokens of append are unique per key (the client makes
 * them unique across the run); a token ends with ';' and has no other ';',
 * so a log reads back as a sequence of tokens. A key holds one kind of
 * write: set (a register), incr (a counter) or append (a log).
 *
 * Time: op A precedes op B when A completed before B was invoked
 * (A.ret < B.inv); an unknown outcome completes at +infinity. Failed ops
 * (err) took no effect. Unknown writes may or may not have.
 *
 * Rules, per key (each broken rule is one violation naming key, ops, why):
 * Registers (SET of unique values, GET):
 *   R1 a GET returns nil or a value some SET on this key wrote that did
 *      not fail ("never written" otherwise), and not before that SET was
 *      invoked;
 *   R2 linearizability, exactly (Gibbons and Korach's zones, as in Golab,
 *      Li and Shah 2011): the cluster of a value is its SET and the GETs
 *      returning it (nil: a virtual SET before the start); f = the earliest
 *      completion in it, s = the latest invocation. A cluster with f < s
 *      has the forward zone [f, s], else the backward zone [s, f]. The
 *      history is linearizable iff no two forward zones overlap and no
 *      backward zone lies inside a forward one. An unknown SET whose
 *      value nobody read is dropped (it may not have happened, and leaving
 *      out an unread write never breaks a linearization); one that was read
 *      took effect and completes at +infinity. A lost acknowledged write
 *      and a stale read are both a backward zone inside a forward one.
 * Counters (INCR, GET; nil reads as 0):
 *   C1 acknowledged INCR results are > 0 and pairwise distinct;
 *   C2 in real-time order the counter never goes back: if A precedes B
 *      (A and B acknowledged INCRs or GETs), B's value is >= A's, and
 *      > A's when B is an INCR; so a GET is >= every INCR acknowledged
 *      before it was invoked, and a final GET >= the acknowledged INCRs;
 *   C3 no value exceeds the INCRs (acknowledged or unknown) invoked before
 *      it completed: a final GET <= acknowledged + unknown INCRs; a GET
 *      returning something other than a decimal integer is never written.
 * Logs (APPEND of unique tokens, GET; nil reads as ""):
 *   L1 a GET's string is a concatenation of tokens APPENDed to this key by
 *      APPENDs that did not fail, each once, each invoked before the GET
 *      completed;
 *   L2 their order fits real time: no token stands before one whose
 *      APPEND completed before its own was invoked;
 *   L3 it holds every token acknowledged before the GET was invoked, or
 *      before the APPEND of any token it holds was invoked;
 *   L4 all GETs read prefixes of one log (of the longest string read), and
 *      a GET that precedes another reads no longer a string; an
 *      acknowledged APPEND returning length N has its token end at byte N
 *      of that log (when the log read is that long).
 * A key with acknowledged writes and no successful final GET is counted
 * (final_unread): nothing at the end checked it; that is not a violation.
 *
 * The outage is the longest stretch with no acknowledged operation of any
 * client: from the start to the first, between two, and from the last to
 * the end (trailing); with nothing acknowledged, the whole run.
 */
#ifndef KG_TESTS_HISTORY_H
#define KG_TESTS_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"

enum rh_op { RH_SET, RH_GET, RH_INCR, RH_APPEND };
enum rh_outcome { RH_OK, RH_FAILED, RH_UNKNOWN };
/* What an acknowledged op returned. */
enum rh_result { RH_R_NONE, RH_R_NIL, RH_R_VALUE, RH_R_INT };

#define RH_NEVER INT64_MAX /* ret of an op whose outcome is unknown */

struct rh_entry {
	unsigned line; /* in the file, for messages */
	long client, seq;
	enum rh_op op;
	size_t key;  /* index into history.keys */
	char *arg;   /* set value, append token; NULL otherwise */
	size_t arg_len;
	bool final;  /* a get of the final read phase */
	int64_t inv, ret;
	enum rh_outcome outcome;
	enum rh_result rkind;
	char *value; /* RH_R_VALUE, decoded (may hold any byte) */
	size_t value_len;
	long long ival; /* RH_R_INT */
};

enum rh_kind { RH_KEY_REGISTER, RH_KEY_COUNTER, RH_KEY_LOG };

struct rh_key {
	char *name; /* escaped, as in the file */
	enum rh_kind kind;
	unsigned first_write_line; /* 0: no write */
};

struct rh_history {
	struct rh_entry *ops;
	size_t n, cap;
	struct rh_key *keys;
	size_t nkeys, keys_cap;
	int64_t start, end;
};

/* Reads a whole history from f (name is for messages only). On a malformed
 * file returns -1 with "line N: why" in e (kind KG_ERR_INVALID; KG_ERR_IO
 * or KG_ERR_NOMEM for a read error or lack of memory). h is initialised
 * here; free it with rh_free, also after a failure. */
int rh_parse(struct rh_history *h, FILE *f, struct kg_err *e);
void rh_free(struct rh_history *h);

struct rh_report {
	size_t ops, acked, failed, unknown;
	size_t acked_writes;
	size_t keys, final_unread;
	int64_t outage_ns;           /* longest stretch, see above */
	int64_t outage_from_ns;      /* from the start of the run */
	bool outage_trailing;        /* it lasted to the end */
	char **violations;           /* one line each, at most RH_MAX_REPORTED */
	size_t nviolations;          /* listed */
	size_t violations_total;     /* found */
};

#define RH_MAX_REPORTED 100

/* Checks h by the rules above. Returns 0 (violations are in r, not an
 * error), or -1 when out of memory. Free r with rh_report_free. */
int rh_check(const struct rh_history *h, struct rh_report *r,
		  struct kg_err *e);
void rh_report_free(struct rh_report *r);

/* Escapes len bytes of s for a history field into out (3 * len + 1
 * bytes); returns out. Shared with the client. */
char *rh_escape(const char *s, size_t len, char *out);

#endif
