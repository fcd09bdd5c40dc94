/* One request, retried until answered: see kv_client.h. */
#include <string.h>

#include "kv_client.h"

int kv_single_parse(const char *cmd, int nargs, char *const *args,
		    struct kv_req *r, struct kg_err *e)
{
	int want;
	memset(r, 0, sizeof(*r));
	if (!strcmp(cmd, "put")) {
		r->op = KV_PUT;
		want = 2;
	} else if (!strcmp(cmd, "get")) {
		r->op = KV_GET;
		want = 1;
	} else if (!strcmp(cmd, "del")) {
		r->op = KV_DEL;
		want = 1;
	} else if (!strcmp(cmd, "stats")) {
		r->op = KV_STATS;
		want = 0;
	} else {
		return kg_errk(e, KG_ERR_INVALID, "unknown request '%s'", cmd);
	}
	if (nargs != want)
		return kg_errk(e, KG_ERR_INVALID, "expected %s",
			       want == 2 ? "KEY VALUE"
			       : want ? "KEY" : "no arguments");
	if (want) {
		size_t kl = strlen(args[0]);
		if (kl == 0 || kl > KV_KEY_MAX)
			return kg_errk(e, KG_ERR_INVALID, "key must be 1 to %d "
				       "bytes", KV_KEY_MAX);
		r->klen = (uint16_t)kl;
		memcpy(r->key, args[0], kl);
	}
	if (want == 2) {
		size_t vl = strlen(args[1]);
		if (vl > KV_VAL_MAX)
			return kg_errk(e, KG_ERR_INVALID, "value is %zu bytes, "
				       "at most %d", vl, KV_VAL_MAX);
		r->vlen = (uint32_t)vl;
		memcpy(r->val, args[1], vl);
	}
	return 0;
}

static int single_next(void *ctx, struct kv_engine *en, unsigned slot,
		       uint64_t req_id, struct kv_req *r)
{
	struct kv_single *s = ctx;
	(void)en; (void)slot; (void)req_id;
	if (s->sent)
		return 0;
	*r = s->req;
	s->sent = true;
	return 1;
}

static int single_done(void *ctx, struct kv_engine *en, unsigned slot,
		       uint64_t req_id, const struct kv_req *r,
		       const struct kv_result *res)
{
	struct kv_single *s = ctx;
	(void)en; (void)slot; (void)req_id; (void)r;
	s->status = res->status;
	memcpy(s->val, res->val ? res->val : "", res->vlen);
	s->val[res->vlen] = 0;
	s->vlen = res->vlen;
	return 0;
}

int kv_single_open(struct kv_single *s, const struct kv_single_opts *o,
		   const struct kv_req *req, struct kg_err *e)
{
	*s = (struct kv_single){ .en = { .fd = -1 }, .req = *req,
				 .status = RES_TIMEOUT };
	uint64_t id;
	if (o->client_id)
		id = *o->client_id;
	else if (kv_random_u64(&id, e) < 0)
		return -1;
	if (kv_engine_init(&s->en, o->server, 1, id, o->req_id, e) < 0)
		return -1;
	s->en.name = o->name;
	s->en.req_timeout_ns = (uint64_t)(o->timeout_s * 1e9);
	s->en.next = single_next;
	s->en.done = single_done;
	s->en.ctx = s;
	return 0;
}

int kv_single_run(struct kv_single *s)
{
	return kv_engine_run(&s->en);
}

void kv_single_close(struct kv_single *s)
{
	kv_engine_free(&s->en);
}
