/* The load: a put/get mix, journaled and checked; see kv_client.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kv_client.h"

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void load_key(const struct kv_load *l, struct kv_req *r, size_t k)
{
	r->klen = (uint16_t)snprintf(r->key, sizeof(r->key), "%s%07zu",
				     l->prefix, k);
}

/* The value of the put (client, req_id): unique per write. */
static uint32_t load_value(char *buf, uint32_t size, uint64_t client,
			   uint64_t req_id)
{
	int n = snprintf(buf, KV_VAL_MAX + 1, "v-%016" PRIx64 "-%" PRIu64,
			 client, req_id);
	uint32_t len = (uint32_t)n;
	while (len < size)
		buf[len++] = '.';
	buf[len] = 0;
	return len;
}

static int load_next(void *ctx, struct kv_engine *en, unsigned slot,
		     uint64_t req_id, struct kv_req *r)
{
	struct kv_load *l = ctx;
	uint64_t client = en->slots[slot].client_id;
	/* Slot owns keys slot, slot + nslots, ... */
	uint32_t owned = (l->nkeys - slot + en->nslots - 1) / en->nslots;
	size_t k = slot + (size_t)(splitmix64(&l->rng) % owned) * en->nslots;
	double u = (double)(splitmix64(&l->rng) >> 11) / 9007199254740992.0;
	r->tag = k;
	load_key(l, r, k);
	if (u < l->write_ratio) {
		r->op = KV_PUT;
		r->vlen = load_value(r->val, l->value_size, client, req_id);
		l->puts++;
		if (kv_journal_write(l->jfd, l->jpath, 'a', client, req_id, r,
				     &en->err) < 0)
			return -1;
	} else {
		r->op = KV_GET;
		l->gets++;
	}
	return kv_history_invoke(&l->hist, client, req_id, r, &en->err) < 0
		? -1 : 1;
}

/* A read of a key written in this run: its owner's last acked put. */
static void load_check_read(struct kv_load *l, struct kv_engine *en,
			    uint64_t client, const struct kv_req *r,
			    const struct kv_result *res)
{
	size_t k = r->tag;
	char want[KV_VAL_MAX + 1];
	uint32_t wlen = load_value(want, l->value_size, client,
				   l->acked_req[k]);
	l->checked++;
	if (res->status == KV_OK && res->vlen == wlen &&
	    !memcmp(res->val, want, wlen))
		return;
	l->mismatches++;
	en->errors++;
	bool found = res->status == KV_OK;
	if (l->mismatches <= 5)
		kv_note(en, "get %.*s returned %s%.*s%s, expected '%s'",
			(int)r->klen, r->key, found ? "'" : "",
			found ? (int)res->vlen : 0, found ? res->val : "",
			found ? "'" : kv_status_name(res->status), want);
}

static int load_done(void *ctx, struct kv_engine *en, unsigned slot,
		     uint64_t req_id, const struct kv_req *r,
		     const struct kv_result *res)
{
	struct kv_load *l = ctx;
	uint64_t client = en->slots[slot].client_id;
	size_t k = r->tag;
	if (kv_history_complete(&l->hist, client, req_id, r, res, &en->err) < 0)
		return -1;
	if (r->op == KV_PUT) {
		if (res->status != KV_OK) {
			l->uncertain[k] = 1;
			return 0;
		}
		l->acked_req[k] = req_id;
		l->uncertain[k] = 0;
		return kv_journal_write(l->jfd, l->jpath, 'k', client, req_id,
					r, &en->err);
	}
	if (!l->uncertain[k] && l->acked_req[k] && res->status != RES_TIMEOUT)
		load_check_read(l, en, client, r, res);
	return 0;
}

int kv_load_open(struct kv_load *l, const struct kv_load_opts *o,
		 struct kg_err *e)
{
	*l = (struct kv_load){
		.en = { .fd = -1 }, .hist = { .fd = -1 },
		.prefix = o->key_prefix, .nkeys = o->keys,
		.nclients = o->clients < o->keys ? o->clients : o->keys,
		.value_size = o->value_size, .write_ratio = o->write_ratio,
		.rng = o->seed, .jfd = -1, .jpath = o->journal,
	};
	uint64_t id;
	l->acked_req = calloc(l->nkeys, sizeof(*l->acked_req));
	l->uncertain = calloc(l->nkeys, 1);
	if (!l->acked_req || !l->uncertain)
		return kg_errf(e, "out of memory");
	l->jfd = open(o->journal, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
		      0644);
	if (l->jfd < 0)
		return kg_errno(e, "open %s", o->journal);
	if (kv_random_u64(&id, e) < 0 ||
	    kv_engine_init(&l->en, o->server, l->nclients, id, 1, e) < 0)
		return -1;
	char hdr[256];
	int hn = snprintf(hdr, sizeof(hdr), "# kagami kv load server=%s "
			  "clients=%u keys=%u write_ratio=%g seed=%" PRIu64
			  " first_client=%016" PRIx64 "\n", o->server,
			  l->nclients, l->nkeys, l->write_ratio, o->seed,
			  l->en.slots[0].client_id);
	if (kv_write_all(l->jfd, hdr, (size_t)hn, o->journal, e) < 0 ||
	    (o->history && (kv_history_open(&l->hist, o->history, e) < 0 ||
			    kv_history_mark(&l->hist, "start", e) < 0)))
		return -1;
	struct kv_engine *en = &l->en;
	en->name = "load";
	en->rate = o->rate;
	en->duration_ns = (uint64_t)(o->duration_s * 1e9);
	en->progress = o->progress;
	en->note = o->note;
	en->note_arg = o->note_arg;
	en->next = load_next;
	en->done = load_done;
	en->ctx = l;
	return 0;
}

int kv_load_run(struct kv_load *l)
{
	struct kg_err e = { 0 };
	if (kv_engine_run(&l->en) < 0)
		return -1;
	if (kv_history_mark(&l->hist, "end", &e) < 0) {
		l->en.err = e;
		return -1;
	}
	return 0;
}

void kv_load_json(const struct kv_load *l, char *buf, size_t size)
{
	const struct kv_engine *en = &l->en;
	char extra[256];
	snprintf(extra, sizeof(extra), ",\"puts\":%" PRIu64 ",\"gets\":%"
		 PRIu64 ",\"checked\":%" PRIu64 ",\"mismatches\":%" PRIu64
		 ",\"unacked\":%" PRIu64 ",\"clients\":%u,\"send_errors\":%"
		 PRIu64 ",\"stray\":%" PRIu64, l->puts, l->gets, l->checked,
		 l->mismatches, en->unacked, l->nclients, en->send_errors,
		 en->ignored);
	kv_engine_json(en, 0, extra, buf, size);
}

int kv_load_close(struct kv_load *l, struct kg_err *e)
{
	int rc = kv_history_close(&l->hist, e);
	if (l->jfd >= 0 && close(l->jfd) < 0 && rc == 0)
		rc = kg_errno(e, "close %s", l->jpath);
	l->jfd = -1;
	free(l->acked_req);
	free(l->uncertain);
	l->acked_req = NULL;
	l->uncertain = NULL;
	kv_engine_free(&l->en);
	return rc;
}
