#include "kv_history.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int kv_history_open(struct kv_history *h, const char *path, struct kg_err *e)
{
	h->path = path;
	h->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (h->fd < 0)
		return kg_errno(e, "open %s", path);
	static const char hdr[] = "history 1\n";
	return kv_write_all(h->fd, hdr, sizeof(hdr) - 1, path, e);
}

int kv_history_close(struct kv_history *h, struct kg_err *e)
{
	if (h->fd < 0)
		return 0;
	int rc = close(h->fd);
	h->fd = -1;
	return rc < 0 ? kg_errno(e, "close %s", h->path) : 0;
}

int kv_history_mark(struct kv_history *h, const char *what, struct kg_err *e)
{
	if (h->fd < 0)
		return 0;
	char line[64];
	int n = snprintf(line, sizeof(line), "%s %" PRIu64 "\n", what,
			 kv_now_ns());
	return kv_write_all(h->fd, line, (size_t)n, h->path, e);
}

static const char *op_word(uint8_t op)
{
	switch (op) {
	case KV_PUT: return "put";
	case KV_GET: return "get";
	case KV_DEL: return "del";
	}
	return NULL;
}

int kv_history_invoke(struct kv_history *h, uint64_t client, uint64_t req,
		      const struct kv_req *r, struct kg_err *e)
{
	const char *op = op_word(r->op);
	if (h->fd < 0 || !op)
		return 0;
	char line[KV_KEY_MAX + KV_VAL_MAX + 96];
	int n = snprintf(line, sizeof(line), "invoke %016" PRIx64 "-%" PRIu64
			 " %" PRIu64 " %s %.*s", client, req, kv_now_ns(), op,
			 (int)r->klen, r->key);
	if (r->op == KV_PUT)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " %.*s",
			      (int)r->vlen, r->val);
	line[n++] = '\n';
	return kv_write_all(h->fd, line, (size_t)n, h->path, e);
}

/* What an answer says about the request's effect. The server executes a
 * write only when it answers OK; BAD_REQUEST and NO_SPACE refuse it before
 * anything is logged, but IO_ERROR may follow a partial log write, and a
 * STALE answer means an older duplicate: both leave the outcome open. */
static const char *outcome(const struct kv_req *r, int status)
{
	if (status == KV_OK || (r->op == KV_GET && status == KV_NOT_FOUND))
		return "ok";
	if (r->op == KV_DEL && status == KV_NOT_FOUND)
		return "ok";
	if (status == KV_BAD_REQUEST || status == KV_NO_SPACE)
		return "fail";
	return "info";
}

int kv_history_complete(struct kv_history *h, uint64_t client, uint64_t req,
			const struct kv_req *r, const struct kv_result *res,
			struct kg_err *e)
{
	if (h->fd < 0 || !op_word(r->op))
		return 0;
	const char *out = outcome(r, res->status);
	char line[KV_VAL_MAX + 96];
	int n = snprintf(line, sizeof(line), "%s %016" PRIx64 "-%" PRIu64
			 " %" PRIu64, out, client, req, kv_now_ns());
	if (r->op == KV_GET && !strcmp(out, "ok")) {
		/* A value the history cannot hold (empty, white space,
		 * control bytes) is none the load wrote: say so with a token
		 * no write uses, rather than break the line. */
		bool plain = res->vlen > 0 && res->vlen <= KV_VAL_MAX;
		for (uint32_t i = 0; plain && i < res->vlen; i++)
			plain = res->val[i] > 0x20 && res->val[i] < 0x7f;
		if (res->status == KV_NOT_FOUND)
			n += snprintf(line + n, sizeof(line) - (size_t)n, " -");
		else if (!plain || (res->vlen == 1 && res->val[0] == '-'))
			n += snprintf(line + n, sizeof(line) - (size_t)n,
				      " !unprintable-value");
		else
			n += snprintf(line + n, sizeof(line) - (size_t)n,
				      " %.*s", (int)res->vlen, res->val);
	}
	line[n++] = '\n';
	return kv_write_all(h->fd, line, (size_t)n, h->path, e);
}
