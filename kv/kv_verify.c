/* Verify: every key of a journal read back and judged; see kv_client.h. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kv_client.h"

static bool read_is(const struct kv_result *res, bool found, bool del,
		    const char *val)
{
	if (del)
		return !found;
	return found && strlen(val) == res->vlen && !strcmp(res->val, val);
}

bool kv_verify_accepts(const struct jkey *k, const struct kv_result *res)
{
	bool found = res->status == KV_OK;
	bool good = read_is(res, found, !k->has_acked || k->acked_del,
			    k->acked_val);
	for (size_t j = 0; j < k->natt && !good; j++)
		good = read_is(res, found, k->att[j].del, k->att[j].val);
	return good;
}

static int verify_next(void *ctx, struct kv_engine *en, unsigned slot,
		       uint64_t req_id, struct kv_req *r)
{
	struct kv_verify *v = ctx;
	if (v->next >= v->t.n)
		return 0;
	struct jkey *k = v->t.list[v->next];
	r->tag = v->next++;
	r->op = KV_GET;
	r->klen = (uint16_t)strlen(k->key);
	memcpy(r->key, k->key, r->klen);
	return kv_history_invoke(&v->hist, en->slots[slot].client_id, req_id,
				 r, &en->err) < 0 ? -1 : 1;
}

static int verify_done(void *ctx, struct kv_engine *en, unsigned slot,
		       uint64_t req_id, const struct kv_req *r,
		       const struct kv_result *res)
{
	struct kv_verify *v = ctx;
	struct jkey *k = v->t.list[r->tag];
	if (kv_history_complete(&v->hist, en->slots[slot].client_id, req_id, r,
				res, &en->err) < 0)
		return -1;
	if (res->status != KV_OK && res->status != KV_NOT_FOUND) {
		kv_note(en, "get %s: %s", k->key, kv_status_name(res->status));
		return 0;
	}
	if (kv_verify_accepts(k, res)) {
		v->ok++;
		return 0;
	}
	v->lost++;
	bool found = res->status == KV_OK;
	bool acked_val = k->has_acked && !k->acked_del;
	if (v->lost <= 10)
		kv_note(en, "lost: %s is %s%s%s, last acknowledged %s%s%s%s",
			k->key, found ? "'" : "",
			found ? res->val : "not found", found ? "'" : "",
			!k->has_acked ? "nothing" : k->acked_del ? "del" : "'",
			acked_val ? k->acked_val : "", acked_val ? "'" : "",
			k->natt ? " (or a later attempt)" : "");
	return 0;
}

int kv_verify_open(struct kv_verify *v, const struct kv_verify_opts *o,
		   struct kg_err *e)
{
	*v = (struct kv_verify){ .en = { .fd = -1 }, .hist = { .fd = -1 } };
	uint64_t id;
	if (kv_journal_read(o->journal, &v->t, o->note, o->note_arg, e) < 0 ||
	    (o->history && kv_history_open(&v->hist, o->history, e) < 0))
		return -1;
	if (kv_random_u64(&id, e) < 0 ||
	    kv_engine_init(&v->en, o->server, o->clients, id, 1, e) < 0)
		return -1;
	struct kv_engine *en = &v->en;
	en->name = "verify";
	en->req_timeout_ns = (uint64_t)(o->timeout_s * 1e9);
	en->progress = o->progress;
	en->note = o->note;
	en->note_arg = o->note_arg;
	en->next = verify_next;
	en->done = verify_done;
	en->ctx = v;
	return 0;
}

int kv_verify_run(struct kv_verify *v)
{
	return kv_engine_run(&v->en);
}

void kv_verify_json(const struct kv_verify *v, char *buf, size_t size)
{
	char extra[128];
	snprintf(extra, sizeof(extra), ",\"keys\":%zu,\"ok\":%" PRIu64, v->t.n,
		 v->ok);
	kv_engine_json(&v->en, v->lost, extra, buf, size);
}

int kv_verify_close(struct kv_verify *v, struct kg_err *e)
{
	int rc = kv_history_close(&v->hist, e);
	kv_jtable_free(&v->t);
	v->t = (struct jtable){ 0 };
	kv_engine_free(&v->en);
	return rc;
}
