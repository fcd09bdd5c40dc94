/*
 * kvstore [ip=A.B.C.D/P] [gw=A.B.C.D] [port=7000] [keys=65536]
 *         [clients=1024]
 * The UDP key-value service of kvstore_proto.h over virtio-net, made
 * durable by an append-only log on virtio-blk.
 *
 * One poll round: take what arrived (up to KV_BATCH_MAX_RECORDS frames),
 * execute each request against memory and stage a log record for each
 * write, then commit the stage (one batch of writes, ONE flush), then send
 * every response of the round. Nothing, reads included, is answered
 * before the writes it may have observed are durable. If the commit
 * fails, the round is undone in memory (table, dedup, stats) and its
 * responses become KV_IO_ERROR, so a retry executes again.
 *
 * At boot the log is replayed up to its first bad record (a torn tail),
 * rebuilding the table and the dedup state of writes. Nothing is printed
 * per request: every console write costs exits.
 */
#include "guests/sdk/ip.h"
#include "guests/sdk/blk.h"
#include "abi/kvstore_proto.h"
#include "kvstore_table.h"
#include "kvstore_log.h"
#include "kvstore_dedup.h"

#define POLL_BUDGET KV_BATCH_MAX_RECORDS /* one record per request at most */

struct reply {
	uint32_t ip;
	uint16_t port, len;
	bool depends; /* on this round's commit: fails with it */
	uint8_t msg[KV_RESP_MAX];
};

struct undo_kv { /* a table change: `put` replaced `old` (either NULL) */
	struct kv_block *old, *put;
};
struct undo_client {
	struct kv_client *slot, copy;
};

struct kv_stats {
	uint64_t puts, gets, dels, dups;
};

static struct server {
	uint16_t port;
	struct blk_dev blk;
	struct kv_table t;
	struct kv_log log;
	struct kv_dedup dd;
	struct kv_stats stats, stats_saved;
	uint64_t round;
	struct reply *replies;
	struct undo_kv *ukv;
	struct undo_client *ucl;
	uint32_t nreplies, nukv, nucl;
} srv;

static void respond(struct reply *r, const struct kv_msg *q, uint8_t status,
		    const void *val, uint32_t vlen)
{
	struct kv_msg m = {
		.magic = KV_MAGIC, .op = (uint8_t)(q->op | KV_RESPONSE),
		.status = status, .val_len = vlen,
		.client_id = q->client_id, .req_id = q->req_id,
	};
	memcpy(r->msg, &m, sizeof(m));
	if (vlen)
		memcpy(r->msg + sizeof(m), val, vlen);
	r->len = (uint16_t)(sizeof(m) + vlen);
}

static bool request_ok(const struct kv_msg *q, uint32_t len)
{
	if (q->status || q->reserved || q->key_len > KV_KEY_MAX ||
	    q->val_len > KV_VAL_MAX ||
	    len != sizeof(*q) + q->key_len + q->val_len)
		return false;
	switch (q->op) {
	case KV_PUT: return q->key_len > 0;
	case KV_GET:
	case KV_DEL: return q->key_len > 0 && q->val_len == 0;
	case KV_STATS: return q->key_len == 0 && q->val_len == 0;
	default: return false;
	}
}

/* Executes a valid, new request; returns the status, and the value to
 * send back in *val / *vlen. */
static uint8_t execute(struct server *s, const struct kv_msg *q,
		       const uint8_t *key, const uint8_t **val,
		       uint32_t *vlen, char *text, size_t text_size)
{
	struct kv_table *t = &s->t;
	struct kv_block *b;
	const uint8_t *in = *val;
	*vlen = 0;
	switch (q->op) {
	case KV_PUT:
		s->stats.puts++;
		if (!kv_room_for(t, key, q->key_len) ||
		    !(b = kv_block_new(t, key, q->key_len, in, q->val_len)))
			return KV_NO_SPACE;
		if (kvlog_append(&s->log, KV_PUT, key, q->key_len, in,
				 q->val_len, q->client_id, q->req_id) < 0) {
			kv_block_free(t, b);
			return KV_NO_SPACE;
		}
		s->ukv[s->nukv++] = (struct undo_kv){ kv_put(t, b), b };
		return KV_OK;
	case KV_DEL:
		s->stats.dels++;
		if (!kv_get(t, key, q->key_len))
			return KV_NOT_FOUND;
		if (kvlog_append(&s->log, KV_DEL, key, q->key_len, NULL, 0,
				 q->client_id, q->req_id) < 0)
			return KV_NO_SPACE;
		s->ukv[s->nukv++] =
			(struct undo_kv){ kv_del(t, key, q->key_len), NULL };
		return KV_OK;
	case KV_GET:
		s->stats.gets++;
		if (!(b = kv_get(t, key, q->key_len)))
			return KV_NOT_FOUND;
		*val = b->data + b->key_len;
		*vlen = b->val_len;
		return KV_OK;
	default: { /* KV_STATS */
		int n = sdk_snprintf(
			text, text_size,
			"keys=%u puts=%lu gets=%lu dels=%lu dups=%lu log_bytes=%lu",
			t->count, (unsigned long)s->stats.puts,
			(unsigned long)s->stats.gets,
			(unsigned long)s->stats.dels,
			(unsigned long)s->stats.dups,
			(unsigned long)(s->log.tail * KV_SECTOR));
		*vlen = (uint32_t)n < text_size ? (uint32_t)n
						 : (uint32_t)text_size - 1;
		*val = (const uint8_t *)text;
		return KV_OK;
	}
	}
}

static void on_datagram(void *ctx, const struct udp_meta *m,
			const uint8_t *d, uint32_t len)
{
	struct server *s = ctx;
	struct kv_msg q;
	if (m->dst_port != s->port || len < sizeof(q) ||
	    s->nreplies >= POLL_BUDGET)
		return;
	memcpy(&q, d, sizeof(q));
	if (q.magic != KV_MAGIC)
		return; /* not ours: no answer */
	struct reply *r = &s->replies[s->nreplies++];
	r->ip = m->src_ip;
	r->port = m->src_port;
	r->depends = false;
	if (!request_ok(&q, len)) {
		respond(r, &q, KV_BAD_REQUEST, NULL, 0);
		return;
	}
	struct kv_client *c = kv_dedup_find(&s->dd, q.client_id);
	if (c && q.req_id < c->req_id) {
		respond(r, &q, KV_STALE, NULL, 0);
		return;
	}
	if (c && q.req_id == c->req_id) { /* a retry: the same answer */
		s->stats.dups++;
		memcpy(r->msg, c->resp, c->resp_len);
		r->len = c->resp_len;
		r->depends = c->exec_round == s->round;
		return;
	}
	char text[192];
	const uint8_t *val = d + sizeof(q) + q.key_len;
	uint32_t vlen;
	uint8_t status = execute(s, &q, d + sizeof(q), &val, &vlen, text,
				 sizeof(text));
	respond(r, &q, status, val, vlen);
	r->depends = true;
	c = kv_dedup_slot(&s->dd, q.client_id);
	if (c->snap_round != s->round) { /* keep the pre-round copy */
		c->snap_round = s->round;
		s->ucl[s->nucl++] = (struct undo_client){ c, *c };
	}
	kv_dedup_record(&s->dd, c, q.client_id, q.req_id, s->round, r->msg,
			r->len);
}

/* The commit failed: put memory back as it was before the round. */
static void undo_round(struct server *s)
{
	for (uint32_t i = s->nukv; i-- > 0;) {
		struct undo_kv *u = &s->ukv[i];
		if (u->put) {
			kv_del(&s->t, u->put->data, u->put->key_len);
			kv_block_free(&s->t, u->put);
		}
		if (u->old)
			kv_put(&s->t, u->old);
	}
	for (uint32_t i = s->nucl; i-- > 0;)
		*s->ucl[i].slot = s->ucl[i].copy;
	s->stats = s->stats_saved;
	for (uint32_t i = 0; i < s->nreplies; i++) {
		struct reply *r = &s->replies[i];
		struct kv_msg m;
		if (!r->depends)
			continue;
		memcpy(&m, r->msg, sizeof(m));
		m.status = KV_IO_ERROR;
		m.key_len = 0;
		m.val_len = 0;
		memcpy(r->msg, &m, sizeof(m));
		r->len = sizeof(m);
	}
}

static void finish_round(struct server *s)
{
	if (s->log.batch_records && kvlog_commit(&s->log))
		undo_round(s);
	else
		for (uint32_t i = 0; i < s->nukv; i++)
			kv_block_free(&s->t, s->ukv[i].old);
	for (uint32_t i = 0; i < s->nreplies; i++) {
		struct reply *r = &s->replies[i];
		udp_send(r->ip, s->port, r->port, r->msg, r->len);
	}
	ip_flush();
	s->nreplies = s->nukv = s->nucl = 0;
	s->stats_saved = s->stats;
	s->round++;
}

/* Replay: one committed record into the table and the dedup state. */
static bool apply_record(void *ctx, const struct kv_log_rec *r,
			 const uint8_t *key, const uint8_t *val)
{
	struct server *s = ctx;
	if (r->op == KV_PUT) {
		struct kv_block *b;
		if (!kv_room_for(&s->t, key, r->key_len) ||
		    !(b = kv_block_new(&s->t, key, r->key_len, val, r->val_len)))
			return false;
		kv_block_free(&s->t, kv_put(&s->t, b));
	} else {
		kv_block_free(&s->t, kv_del(&s->t, key, r->key_len));
	}
	struct kv_msg q = { .op = r->op, .client_id = r->client_id,
			    .req_id = r->req_id };
	struct reply tmp;
	respond(&tmp, &q, KV_OK, NULL, 0);
	kv_dedup_record(&s->dd, kv_dedup_slot(&s->dd, r->client_id),
			r->client_id, r->req_id, 0, tmp.msg, tmp.len);
	return true;
}

static int setup_memory(struct server *s, uint64_t keys, uint64_t clients)
{
	s->replies = sdk_alloc(sizeof(struct reply) * POLL_BUDGET);
	s->ukv = sdk_alloc(sizeof(struct undo_kv) * POLL_BUDGET);
	s->ucl = sdk_alloc(sizeof(struct undo_client) * POLL_BUDGET);
	if (!s->replies || !s->ukv || !s->ucl ||
	    !kv_dedup_init(&s->dd, (uint32_t)clients) ||
	    !kvlog_init(&s->log, &s->blk))
		return -1;
	/* Whatever is left holds keys and values. */
	uint64_t arena = sdk_mem_free() - sizeof(struct kv_slot) * 4 * keys;
	if (arena > sdk_mem_free() || arena < (1u << 20) ||
	    !kv_table_init(&s->t, (uint32_t)keys, arena & ~4095ull))
		return -1;
	return 0;
}

int main(const char *cmdline)
{
	struct server *s = &srv;
	struct virtio_dev probe;
	const char *why;
	char ipbuf[16];
	(void)cmdline;

	uint64_t port = sdk_arg_u64("port", KV_DEFAULT_PORT);
	uint64_t keys = sdk_arg_u64("keys", 65536);
	uint64_t clients = sdk_arg_u64("clients", 1024);
	if (port == 0 || port > 65535 || keys == 0 || keys > (1u << 26) ||
	    clients == 0 || clients > (1u << 20)) {
		sdk_printf("kvstore: bad arguments: need 0 < port < 65536, "
			   "0 < keys <= 67108864, 0 < clients <= 1048576\n");
		return 2;
	}
	bool disk = virtio_find(VIRTIO_ID_BLK, 0, &probe);
	bool nic = virtio_find(VIRTIO_ID_NET, 0, &probe);
	if (!disk || !nic) {
		sdk_printf("kvstore: refusing to start: no %s\n",
			   !disk && !nic ? "disk (virtio-blk) and no network "
					   "device (virtio-net)"
			   : !disk	  ? "disk (virtio-blk)"
					  : "network device (virtio-net)");
		return 2;
	}
	s->port = (uint16_t)port;
	int r = blk_open(&s->blk, 0, &why);
	if (r < 0) {
		sdk_printf("kvstore: disk: %s\n", why);
		return 1;
	}
	r = ip_open(&why);
	if (r < 0) {
		sdk_printf("kvstore: network: %s\n", why);
		return r == IP_EARG ? 2 : 1;
	}
	if (setup_memory(s, keys, clients) < 0) {
		sdk_printf("kvstore: not enough memory for keys=%lu "
			   "clients=%lu (free %lu MiB)\n",
			   (unsigned long)keys, (unsigned long)clients,
			   (unsigned long)(sdk_mem_free() >> 20));
		return 1;
	}
	r = kvlog_replay(&s->log, apply_record, s);
	if (r) {
		sdk_printf("kvstore: log replay failed: %s\n",
			   r == 1 ? "the log holds more than keys= or memory "
				    "allows"
				  : blk_strerror(r));
		return 1;
	}
	/* Clear what a torn last batch may have left past the tail. */
	r = kvlog_commit(&s->log);
	if (r) {
		sdk_printf("kvstore: cannot write the log: %s\n",
			   blk_strerror(r));
		return 1;
	}
	s->round = 1;
	sdk_printf("kvstore: ready ip=%s port=%u keys=%u log_records=%lu\n",
		   ip_fmt(ip_addr(), ipbuf), (unsigned)s->port, s->t.count,
		   (unsigned long)s->log.records);
	for (;;) {
		int n = ip_poll(POLL_BUDGET, on_datagram, s);
		if (n < 0) {
			sdk_printf("kvstore: network device failed "
				   "(needs reset)\n");
			return 1;
		}
		if (n > 0)
			finish_round(s);
		else /* deterministic mode: frames arrive at this exit */
			sdk_idle(KAGAMI_IDLE_MAX_US);
	}
}
