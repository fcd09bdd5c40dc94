/*
 * kvstore's per-client memory of the last executed request and the
 * response it got (kvstore_proto.h, "Idempotence"): a set-associative
 * table (4 ways per set, least recently used way evicted), so a flood of
 * client ids costs old clients their dedup state, never memory.
 *
 * A module of the kvstore guest, included once by kvstore.c.
 */
#ifndef KVSTORE_DEDUP_H
#define KVSTORE_DEDUP_H

#include "guests/sdk/sdk.h"
#include "abi/kvstore_proto.h"

#define KV_RESP_MAX (sizeof(struct kv_msg) + KV_VAL_MAX)
#define KV_DEDUP_WAYS 4u

struct kv_client {
	uint64_t client_id, req_id, lru;
	uint64_t exec_round; /* poll round that executed req_id */
	uint64_t snap_round; /* round whose undo list holds our old copy */
	uint16_t resp_len;
	bool valid;
	uint8_t resp[KV_RESP_MAX];
};

struct kv_dedup {
	struct kv_client *c;
	uint32_t set_mask;
	uint64_t clock;
};

static bool kv_dedup_init(struct kv_dedup *d, uint32_t clients)
{
	uint32_t sets = 1;
	while (sets * KV_DEDUP_WAYS < clients && sets < (1u << 20))
		sets *= 2;
	d->c = sdk_alloc(sizeof(struct kv_client) * sets * KV_DEDUP_WAYS);
	if (!d->c)
		return false;
	memset(d->c, 0, sizeof(struct kv_client) * sets * KV_DEDUP_WAYS);
	d->set_mask = sets - 1;
	d->clock = 0;
	return true;
}

static struct kv_client *kv_dedup_set(const struct kv_dedup *d, uint64_t id)
{
	uint64_t h = id * 0x9e3779b97f4a7c15ull; /* Fibonacci hashing */
	return &d->c[((h >> 32) & d->set_mask) * KV_DEDUP_WAYS];
}

/* The client's entry, or NULL. */
static struct kv_client *kv_dedup_find(struct kv_dedup *d, uint64_t id)
{
	struct kv_client *s = kv_dedup_set(d, id);
	for (unsigned w = 0; w < KV_DEDUP_WAYS; w++)
		if (s[w].valid && s[w].client_id == id) {
			s[w].lru = ++d->clock;
			return &s[w];
		}
	return NULL;
}

/* The way that will hold `id`: its entry, a free way, or the least
 * recently used one (whose client is forgotten when it is overwritten). */
static struct kv_client *kv_dedup_slot(struct kv_dedup *d, uint64_t id)
{
	struct kv_client *s = kv_dedup_set(d, id), *victim = &s[0];
	for (unsigned w = 0; w < KV_DEDUP_WAYS; w++) {
		if (s[w].valid && s[w].client_id == id)
			return &s[w];
		if (!s[w].valid)
			victim = &s[w];
		else if (victim->valid && s[w].lru < victim->lru)
			victim = &s[w];
	}
	return victim;
}

/* Records that `id` executed `req_id` with response `resp`. */
static void kv_dedup_record(struct kv_dedup *d, struct kv_client *e,
			    uint64_t id, uint64_t req_id, uint64_t round,
			    const void *resp, uint32_t len)
{
	e->valid = true;
	e->client_id = id;
	e->req_id = req_id;
	e->lru = ++d->clock;
	e->exec_round = round;
	e->resp_len = (uint16_t)len;
	memcpy(e->resp, resp, len);
}

#endif
