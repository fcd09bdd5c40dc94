/*
 * kvstore's append-only disk log (format in kvstore_proto.h), with group
 * commit: the records of one poll round are staged in memory, written
 * with one batch of requests (one notify) and made durable with ONE
 * flush; only then does the caller acknowledge them.
 *
 * Stale records: a torn or failed batch can leave valid-looking records
 * past the committed tail. Replay stops at the first bad record and also
 * demands consecutive seq numbers; in addition every commit overwrites
 * with zeros the area past the tail that may hold such leftovers
 * ([tail, dirty_end)), so that a later, shorter batch can never be
 * followed by an old record that happens to line up. At boot that area
 * is the largest batch any kvstore writes (KV_LOG_FILL_SECTORS).
 *
 * A module of the kvstore guest, included once by kvstore.c.
 */
#ifndef KVSTORE_LOG_H
#define KVSTORE_LOG_H

#include "guests/sdk/blk.h"
#include "abi/kvstore_proto.h"

#define KV_REC_MAX_SECTORS                                                     \
	((sizeof(struct kv_log_rec) + KV_KEY_MAX + KV_VAL_MAX +                \
	  KV_SECTOR - 1) / KV_SECTOR)
#define KV_BATCH_MAX_RECORDS 128u
#define KV_BATCH_SECTORS (KV_BATCH_MAX_RECORDS * KV_REC_MAX_SECTORS)
#define KV_LOG_FILL_SECTORS 2048u /* >= any batch, with room to grow */
#define KV_ZERO_SECTORS 256u
#define KV_REPLAY_SECTORS 512u

struct kv_log {
	struct blk_dev *blk;
	uint64_t tail;      /* end of the committed log (sector) */
	uint64_t dirty_end; /* [tail, dirty_end) may hold stale records */
	uint64_t seq;       /* last committed seq */
	uint64_t records;   /* committed records */
	uint8_t *batch;     /* staged records, zero-padded to sectors */
	uint32_t batch_sectors, batch_records;
	uint8_t *zero, *chunk;
};

static uint32_t kvlog_fnv(uint32_t h, const uint8_t *p, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static uint32_t kvlog_sum(const struct kv_log_rec *r, const uint8_t *key,
			  const uint8_t *val)
{
	struct kv_log_rec c = *r;
	c.checksum = 0;
	uint32_t h = kvlog_fnv(2166136261u, (const uint8_t *)&c, sizeof(c));
	h = kvlog_fnv(h, key, r->key_len);
	return kvlog_fnv(h, val, r->val_len);
}

static uint32_t kvlog_rec_sectors(uint32_t klen, uint32_t vlen)
{
	return ((uint32_t)sizeof(struct kv_log_rec) + klen + vlen +
		KV_SECTOR - 1) / KV_SECTOR;
}

static bool kvlog_init(struct kv_log *l, struct blk_dev *blk)
{
	memset(l, 0, sizeof(*l));
	l->blk = blk;
	l->batch = sdk_alloc((size_t)KV_BATCH_SECTORS * KV_SECTOR);
	l->zero = sdk_alloc((size_t)KV_ZERO_SECTORS * KV_SECTOR);
	l->chunk = sdk_alloc((size_t)KV_REPLAY_SECTORS * KV_SECTOR);
	if (!l->batch || !l->zero || !l->chunk)
		return false;
	memset(l->zero, 0, (size_t)KV_ZERO_SECTORS * KV_SECTOR);
	return true;
}

typedef bool (*kvlog_apply_fn)(void *ctx, const struct kv_log_rec *r,
			       const uint8_t *key, const uint8_t *val);

/* Is the header at p the start of a plausible record? */
static bool kvlog_header_ok(const struct kv_log_rec *r)
{
	if (r->magic != KV_LOG_MAGIC || r->key_len == 0 ||
	    r->key_len > KV_KEY_MAX || r->val_len > KV_VAL_MAX)
		return false;
	return r->op == KV_PUT || (r->op == KV_DEL && r->val_len == 0);
}

struct kvlog_cursor {
	uint64_t base, loaded; /* the chunk holds sectors [base, base+loaded) */
};

/* Makes sectors [pos, pos+need) readable in the chunk: 0, 1 past the
 * end of the disk, or a blk error. */
static int kvlog_load(struct kv_log *l, struct kvlog_cursor *c, uint64_t pos,
		      uint64_t need)
{
	uint64_t cap = l->blk->capacity;
	if (pos + need <= c->base + c->loaded)
		return 0;
	if (pos + need > cap)
		return 1;
	uint64_t n = cap - pos < KV_REPLAY_SECTORS ? cap - pos
						   : KV_REPLAY_SECTORS;
	int err = blk_read(l->blk, pos, l->chunk, (uint32_t)n);
	if (err)
		return err;
	c->base = pos;
	c->loaded = n;
	return 0;
}

/* Reads the log from sector 0 and applies every record up to the first
 * bad one (the torn tail). Returns 0, a blk error, or 1 when `apply`
 * refused a record (out of memory). */
static int kvlog_replay(struct kv_log *l, kvlog_apply_fn apply, void *ctx)
{
	struct kvlog_cursor c = { 0, 0 };
	uint64_t pos = 0, expect = 1, cap = l->blk->capacity;
	for (;;) {
		struct kv_log_rec r;
		int e = kvlog_load(l, &c, pos, 1);
		if (e < 0)
			return e;
		if (e)
			break;
		memcpy(&r, l->chunk + (pos - c.base) * KV_SECTOR, sizeof(r));
		if (!kvlog_header_ok(&r))
			break;
		uint32_t n = kvlog_rec_sectors(r.key_len, r.val_len);
		if ((e = kvlog_load(l, &c, pos, n)) != 0) {
			if (e < 0)
				return e;
			break;
		}
		const uint8_t *key = l->chunk + (pos - c.base) * KV_SECTOR +
				     sizeof(r);
		const uint8_t *val = key + r.key_len;
		if (r.seq != expect || r.checksum != kvlog_sum(&r, key, val))
			break;
		if (!apply(ctx, &r, key, val))
			return 1;
		pos += n;
		expect++;
	}
	l->tail = pos;
	l->seq = expect - 1;
	l->records = expect - 1;
	l->dirty_end = cap - pos > KV_LOG_FILL_SECTORS ? pos + KV_LOG_FILL_SECTORS
						       : cap;
	return 0;
}

/* Stages one record. -1 when the disk (or the batch) has no room. */
static int kvlog_append(struct kv_log *l, uint8_t op, const uint8_t *key,
			uint32_t klen, const uint8_t *val, uint32_t vlen,
			uint64_t client_id, uint64_t req_id)
{
	uint32_t n = kvlog_rec_sectors(klen, vlen);
	if (l->batch_sectors + n > KV_BATCH_SECTORS ||
	    l->tail + l->batch_sectors + n > l->blk->capacity)
		return -1;
	struct kv_log_rec r = {
		.magic = KV_LOG_MAGIC, .op = op, .key_len = (uint16_t)klen,
		.val_len = vlen, .seq = l->seq + l->batch_records + 1,
		.client_id = client_id, .req_id = req_id,
	};
	r.checksum = kvlog_sum(&r, key, val);
	uint8_t *p = l->batch + (size_t)l->batch_sectors * KV_SECTOR;
	memset(p, 0, (size_t)n * KV_SECTOR);
	memcpy(p, &r, sizeof(r));
	memcpy(p + sizeof(r), key, klen);
	memcpy(p + sizeof(r) + klen, val, vlen);
	l->batch_sectors += n;
	l->batch_records++;
	return 0;
}

static bool kvlog_dirty(const struct kv_log *l)
{
	return l->batch_records || l->dirty_end > l->tail;
}

/* Writes the staged records and zeros over [end, dirty_end) in one
 * batch, waits, then flushes once. 0 when all of it is durable; else the
 * blk error, the tail stays put and what may have reached the disk
 * becomes dirty. The stage is empty afterwards either way. */
static int kvlog_commit(struct kv_log *l)
{
	if (!kvlog_dirty(l))
		return 0;
	uint64_t end = l->tail + l->batch_sectors;
	int r = l->batch_sectors ? blk_queue_write(l->blk, l->tail, l->batch,
						   l->batch_sectors)
				 : 0;
	for (uint64_t s = end; !r && s < l->dirty_end;) {
		uint64_t n = l->dirty_end - s < KV_ZERO_SECTORS
				     ? l->dirty_end - s
				     : KV_ZERO_SECTORS;
		r = blk_queue_write(l->blk, s, l->zero, (uint32_t)n);
		s += n;
	}
	int f = blk_flush(l->blk); /* completes the writes, then flushes */
	if (!r)
		r = f;
	if (r) {
		if (end > l->dirty_end)
			l->dirty_end = end;
	} else {
		l->tail = end;
		l->dirty_end = end;
		l->seq += l->batch_records;
		l->records += l->batch_records;
	}
	l->batch_sectors = 0;
	l->batch_records = 0;
	return r;
}

#endif
