/*
 * kvstore's in-memory table: key/value blocks from a size-class allocator
 * over one arena, indexed by an open-addressing hash table (linear
 * probing, backward-shift deletion, so no tombstones pile up).
 *
 * A module of the kvstore guest, included once by kvstore.c (the guest
 * build compiles one source per guest, as memstress_core.h is used).
 */
#ifndef KVSTORE_TABLE_H
#define KVSTORE_TABLE_H

#include "guests/sdk/sdk.h"
#include "abi/kvstore_proto.h"

/* A key and its value in one block; blocks are never moved. */
struct kv_block {
	uint16_t key_len, cls;
	uint32_t val_len;
	uint8_t data[]; /* key, then value */
};

#define KV_CLASS_BYTES 64u
#define KV_CLASSES                                                             \
	((sizeof(struct kv_block) + KV_KEY_MAX + KV_VAL_MAX +                  \
	  KV_CLASS_BYTES - 1) / KV_CLASS_BYTES + 1)

struct kv_slot {
	uint32_t hash;
	struct kv_block *b; /* NULL: empty */
};

struct kv_table {
	struct kv_slot *slots;
	uint32_t mask;     /* slots - 1 */
	uint32_t count, max_keys;
	uint8_t *arena, *arena_end;
	void *free_list[KV_CLASSES]; /* freed blocks, linked through data */
};

static uint32_t kv_hash(const uint8_t *k, uint32_t n)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64, then folded */
	for (uint32_t i = 0; i < n; i++)
		h = (h ^ k[i]) * 0x100000001b3ull;
	return (uint32_t)(h ^ (h >> 32));
}

/* Sets up for `max_keys` keys (slots: twice that, a power of two) with
 * the rest of `arena_bytes` for blocks. False when memory is short. */
static bool kv_table_init(struct kv_table *t, uint32_t max_keys,
			  uint64_t arena_bytes)
{
	uint32_t n = 16;
	while (n < 2ull * max_keys && n < (1u << 30))
		n *= 2;
	memset(t, 0, sizeof(*t));
	t->slots = sdk_alloc(sizeof(struct kv_slot) * n);
	t->arena = sdk_alloc(arena_bytes);
	if (!t->slots || !t->arena)
		return false;
	memset(t->slots, 0, sizeof(struct kv_slot) * n);
	t->arena_end = t->arena + arena_bytes;
	t->mask = n - 1;
	t->max_keys = max_keys;
	return true;
}

/* A block for key+value, or NULL when the arena is exhausted. */
static struct kv_block *kv_block_new(struct kv_table *t, const uint8_t *key,
				     uint32_t klen, const uint8_t *val,
				     uint32_t vlen)
{
	uint32_t bytes = (uint32_t)sizeof(struct kv_block) + klen + vlen;
	uint32_t cls = (bytes + KV_CLASS_BYTES - 1) / KV_CLASS_BYTES;
	struct kv_block *b = t->free_list[cls];
	if (b) {
		t->free_list[cls] = *(void **)b->data;
	} else {
		size_t sz = (size_t)cls * KV_CLASS_BYTES;
		if ((size_t)(t->arena_end - t->arena) < sz)
			return NULL;
		b = (struct kv_block *)t->arena;
		t->arena += sz;
	}
	b->key_len = (uint16_t)klen;
	b->cls = (uint16_t)cls;
	b->val_len = vlen;
	memcpy(b->data, key, klen);
	memcpy(b->data + klen, val, vlen);
	return b;
}

static void kv_block_free(struct kv_table *t, struct kv_block *b)
{
	if (!b)
		return;
	*(void **)b->data = t->free_list[b->cls];
	t->free_list[b->cls] = b;
}

/* The slot holding key, or -1. */
static int64_t kv_find(const struct kv_table *t, const uint8_t *key,
		       uint32_t klen, uint32_t h)
{
	for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
		const struct kv_slot *s = &t->slots[i];
		if (!s->b)
			return -1;
		if (s->hash == h && s->b->key_len == klen &&
		    !memcmp(s->b->data, key, klen))
			return i;
	}
}

static struct kv_block *kv_get(const struct kv_table *t, const uint8_t *key,
			       uint32_t klen)
{
	int64_t i = kv_find(t, key, klen, kv_hash(key, klen));
	return i < 0 ? NULL : t->slots[i].b;
}

/* True when the key is present or there is room for one more key. */
static bool kv_room_for(const struct kv_table *t, const uint8_t *key,
			uint32_t klen)
{
	return t->count < t->max_keys || kv_get(t, key, klen);
}

/* Inserts or replaces; returns the replaced block (the caller frees it
 * or keeps it to undo). The caller checked kv_room_for. */
static struct kv_block *kv_put(struct kv_table *t, struct kv_block *b)
{
	uint32_t h = kv_hash(b->data, b->key_len);
	int64_t i = kv_find(t, b->data, b->key_len, h);
	if (i >= 0) {
		struct kv_block *old = t->slots[i].b;
		t->slots[i].b = b;
		return old;
	}
	uint32_t j = h & t->mask;
	while (t->slots[j].b)
		j = (j + 1) & t->mask;
	t->slots[j] = (struct kv_slot){ h, b };
	t->count++;
	return NULL;
}

/* Removes key; returns its block (NULL if absent). Backward-shift keeps
 * every probe sequence unbroken without tombstones. */
static struct kv_block *kv_del(struct kv_table *t, const uint8_t *key,
			       uint32_t klen)
{
	int64_t found = kv_find(t, key, klen, kv_hash(key, klen));
	if (found < 0)
		return NULL;
	uint32_t i = (uint32_t)found;
	struct kv_block *old = t->slots[i].b;
	for (uint32_t j = (i + 1) & t->mask; t->slots[j].b;
	     j = (j + 1) & t->mask) {
		uint32_t home = t->slots[j].hash & t->mask;
		/* j's entry may move to the hole at i unless its home lies
		 * cyclically in (i, j]. */
		bool stays = i <= j ? (home > i && home <= j)
				    : (home > i || home <= j);
		if (!stays) {
			t->slots[i] = t->slots[j];
			i = j;
		}
	}
	t->slots[i] = (struct kv_slot){ 0, NULL };
	t->count--;
	return old;
}

#endif
