/*
 * A checksum of a whole disk, computed the same way by a guest (blktest
 * mode=churn, over what it reads back) and by the host (tests/tools/
 * disksum, over an image file), so a test can say "the image holds what
 * the guest sees". FNV-1a over 64-bit little-endian words: not
 * cryptographic, only a fingerprint. Freestanding: no libc.
 */
#ifndef KAGAMI_DISKSUM_H
#define KAGAMI_DISKSUM_H

#include <stddef.h>
#include <stdint.h>

#define DISKSUM_INIT 0xcbf29ce484222325ull

/* Folds n bytes (n a multiple of 8, p 8-byte aligned) into h. */
static inline uint64_t disksum(uint64_t h, const void *p, size_t n)
{
	const uint64_t *w = p;
	for (size_t i = 0; i < n / 8; i++)
		h = (h ^ w[i]) * 0x100000001b3ull;
	return h;
}

#endif
