/*
 * memstress's work, shared by the guest program and the host-native peer in
 * bench/ so that both run exactly the same loop. Pure functions of (seed,
 * page index): the output never depends on timing.
 */
#ifndef MEMSTRESS_CORE_H
#define MEMSTRESS_CORE_H

#include <stddef.h>
#include <stdint.h>

#define MEMSTRESS_PAGE 4096u
#define MEMSTRESS_WORDS (MEMSTRESS_PAGE / 8u)

struct memstress_rng {
	uint64_t s;
};

static inline uint64_t memstress_next(struct memstress_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Writes one pseudo-random page; returns nothing, depends only on `tag`. */
static inline void memstress_fill(uint64_t *page, uint64_t tag)
{
	for (unsigned j = 0; j < MEMSTRESS_WORDS; j++)
		page[j] = (tag ^ j) * 0x9e3779b97f4a7c15ull;
}

static inline uint64_t memstress_checksum(const uint64_t *ws, size_t words)
{
	uint64_t h[4] = { 0xcbf29ce484222325ull, 1, 2, 3 };
	for (size_t i = 0; i + 4 <= words; i += 4)
		for (unsigned l = 0; l < 4; l++)
			h[l] = (h[l] ^ ws[i + l]) * 0x100000001b3ull;
	uint64_t r = h[0];
	for (unsigned l = 1; l < 4; l++)
		r = (r ^ h[l]) * 0x100000001b3ull;
	return r ^ (r >> 29);
}

#endif
