/*
 * Client histories, as the load generators record them and the checker
 * reads them (check/checker.h). The checker shares no code with any load
 * generator: it trusts nothing but this file.
 *
 * Format: text, one event per line, fields separated by single spaces.
 * Each line is written with one write(2) on an O_APPEND descriptor, so
 * several client processes may append to one file and a client killed
 * mid-run leaves whole lines.
 *
 *   # comment
 *   history 1                         the format version (first line)
 *   start T                           the load began (a client's view)
 *   end T                             the load ended
 *   invoke ID T OP KEY [ARG]          a request was sent for the first time
 *   ok ID T [RESULT]                  it completed and took effect
 *   fail ID T                         it completed and did NOT take effect
 *   info ID T                         its outcome is unknown (timeout,
 *                                     an error that may follow the write)
 *
 * T is CLOCK_MONOTONIC nanoseconds (one clock for every process of the
 * host the clients run on). ID names one operation (for example
 * CLIENT-REQ); it is invoked once and completed at most once. OP and
 * what ARG and RESULT hold:
 *
 *   put KEY VALUE      ok: no result
 *   get KEY            ok RESULT: the value read, or "-" for a missing key
 *   del KEY            ok: no result
 *   append KEY VALUE   ok RESULT: the value's length after the append
 *   incr KEY           ok RESULT: the value after the increment
 *
 * KEY and VALUE are 1..1024 bytes without white space; a VALUE of "-" is
 * not allowed (it means "missing"). An invocation with no completion by
 * the end of the file is treated as "info".
 */
#ifndef KG_CHECK_HISTORY_H
#define KG_CHECK_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define HIST_VERSION 1
#define HIST_STR_MAX 1024

enum hist_op { HIST_PUT, HIST_GET, HIST_DEL, HIST_APPEND, HIST_INCR };
enum hist_outcome { HIST_PENDING, HIST_OK, HIST_FAIL, HIST_INFO };

struct hist_event {
	char *id, *key;
	char *arg;     /* put/append value; NULL otherwise */
	char *result;  /* ok get/append/incr: as written; "-" missing */
	enum hist_op op;
	enum hist_outcome outcome;
	uint64_t invoke_ns, complete_ns; /* complete_ns: 0 while pending */
	unsigned line;                   /* of the invocation */
};

struct history {
	struct hist_event *ev;
	size_t n, cap;
	uint64_t start_ns, end_ns; /* 0: not recorded */
	/* id -> index of ev (open addressing) */
	size_t *idx;
	size_t idx_cap;
};

/* Reads and validates a whole history (events kept in invocation order);
 * errors name the file and line. Several files may be read into one h. */
int history_read(struct history *h, const char *path, struct kg_err *e);
/* The same, from a buffer (name is used in errors). */
int history_parse(struct history *h, const char *name, const char *text,
		  size_t len, struct kg_err *e);
void history_free(struct history *h);

const char *hist_op_name(enum hist_op op);

#endif
