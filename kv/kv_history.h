/*
 * The history a kvstore client records (format: check/history.h): every
 * request's invocation before it is first sent and its completion when
 * answered, one write(2) per line on an O_APPEND fd, so several clients
 * may share a file and a killed client leaves whole lines. What the lines
 * say is decided here from the server's answer, and judged elsewhere
 * (kagami check), by code that shares nothing with this client.
 */
#ifndef KG_KV_HISTORY_H
#define KG_KV_HISTORY_H

#include "kv_engine.h"

struct kv_history {
	int fd; /* -1: not recording */
	const char *path;
};

/* Opens (creates or appends to) path and writes the format line. */
int kv_history_open(struct kv_history *h, const char *path, struct kg_err *e);
int kv_history_close(struct kv_history *h, struct kg_err *e);
/* "start T" or "end T" (what = "start" | "end"), now. */
int kv_history_mark(struct kv_history *h, const char *what, struct kg_err *e);
int kv_history_invoke(struct kv_history *h, uint64_t client, uint64_t req,
		      const struct kv_req *r, struct kg_err *e);
/* ok (with the value read, "-" for not found), fail (the server refused
 * without doing it) or info (no answer, or an answer that leaves the
 * outcome open). */
int kv_history_complete(struct kv_history *h, uint64_t client, uint64_t req,
			const struct kv_req *r, const struct kv_result *res,
			struct kg_err *e);

#endif
