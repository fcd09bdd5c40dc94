/* The page codec: see page_codec.h for the payload format and the contract
 * between encoder and decoder. */
#include "page_codec.h"

#include <lz4.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>

#include "base/le.h"

#define PAGE PAGE_CODEC_PAGE
#define CODING_MASK (PAGE - 1)
/* LZ4 and deltas are kept only below 3/4 of a page: a smaller saving is
 * not worth the receiver's decoding work over a plain copy. */
#define KEEP_MAX (PAGE / 4 * 3)
/* A delta this small beats what LZ4 achieves on real pages (about half a
 * page): LZ4, ~6x slower, is tried only on larger deltas. */
#define DELTA_GOOD 1024u
#define HASH_SIZE 8u

static const uint8_t zero_page[PAGE];

const char *page_coding_name(unsigned coding)
{
	switch (coding) {
	case KG_PAGE_ZERO: return "zero";
	case KG_PAGE_RAW: return "raw";
	case KG_PAGE_LZ4: return "lz4";
	case KG_PAGE_DELTA: return "delta";
	default: return NULL;
	}
}

void page_codec_stats_add(struct page_codec_stats *sum,
			  const struct page_codec_stats *s)
{
	for (unsigned c = 0; c < KG_PAGE_NCODINGS; c++) {
		sum->pages[c] += s->pages[c];
		sum->bytes[c] += s->bytes[c];
	}
	sum->same += s->same;
	sum->bytes_in += s->bytes_in;
	sum->bytes_out += s->bytes_out;
}

/* --- small helpers --- */

static uint64_t load64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8); /* any alignment, no aliasing question */
	return v;
}

static bool bit_test(const uint64_t *b, uint64_t i)
{
	return b[i / 64] >> (i % 64) & 1;
}

static void bit_set(uint64_t *b, uint64_t i)
{
	b[i / 64] |= 1ull << (i % 64);
}

static void bit_clear(uint64_t *b, uint64_t i)
{
	b[i / 64] &= ~(1ull << (i % 64));
}

/* "page 3 at gpa 0x5000: ...": every per-record error. */
static int rec_err(struct kg_err *e, uint32_t i, uint64_t gpa,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int rec_err(struct kg_err *e, uint32_t i, uint64_t gpa,
		   const char *fmt, ...)
{
	char what[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return kg_errk(e, KG_ERR_CORRUPT, "page %u at gpa 0x%llx: %s", i,
		       (unsigned long long)gpa, what);
}

/* Word-wise with an early exit: most non-zero pages differ in their first
 * 64 bytes, so the check costs them almost nothing. */
static bool page_is_zero(const uint8_t *p)
{
	for (size_t i = 0; i < PAGE; i += 64) {
		uint64_t acc = 0;
		for (size_t k = 0; k < 64; k += 8)
			acc |= load64(p + i + k);
		if (acc)
			return false;
	}
	return true;
}

/* --- the zero-run stream of a XOR --- */

static size_t varint_len(size_t v)
{
	return v < 0x80 ? 1 : 2; /* v <= 4096 < 2^14 */
}

static size_t varint_put(uint8_t *p, size_t v)
{
	if (v < 0x80) {
		p[0] = (uint8_t)v;
		return 1;
	}
	p[0] = (uint8_t)(v | 0x80);
	p[1] = (uint8_t)(v >> 7);
	return 2;
}

/* Reads a varint of at most 2 bytes at s[*i..n); false if cut short or
 * longer. */
static bool varint_get(const uint8_t *s, size_t n, size_t *i, size_t *v)
{
	if (*i >= n)
		return false;
	uint8_t b = s[(*i)++];
	*v = b & 0x7f;
	if (!(b & 0x80))
		return true;
	if (*i >= n || s[*i] & 0x80)
		return false;
	*v |= (size_t)s[(*i)++] << 7;
	return true;
}

/* Whether any byte of v is zero (exact, not just a hint). */
static bool has_zero_byte(uint64_t v)
{
	return ((v - 0x0101010101010101ull) & ~v & 0x8080808080808080ull) != 0;
}

/* First byte at or after p where a and b differ; PAGE if none. Compares 32
 * bytes per step: the unchanged bulk of a lightly written page is where
 * the time goes. */
static size_t next_diff(const uint8_t *a, const uint8_t *b, size_t p)
{
	while (p + 32 <= PAGE &&
	       ((load64(a + p) ^ load64(b + p)) |
		(load64(a + p + 8) ^ load64(b + p + 8)) |
		(load64(a + p + 16) ^ load64(b + p + 16)) |
		(load64(a + p + 24) ^ load64(b + p + 24))) == 0)
		p += 32;
	while (p + 8 <= PAGE && load64(a + p) == load64(b + p))
		p += 8;
	while (p < PAGE && a[p] == b[p])
		p++;
	return p;
}

/* Encodes a ^ b into out[0..cap): the stream's length, or SIZE_MAX if it
 * does not fit (0 means the pages are identical). A literal runs on across
 * gaps of fewer than 3 equal bytes: splitting it there would cost a skip
 * and a length (2 bytes) to save at most 2. */
static size_t zrle_encode(const uint8_t *a, const uint8_t *b, uint8_t *out,
			  size_t cap)
{
	size_t pos = 0, o = 0;
	for (;;) {
		size_t start = next_diff(a, b, pos);
		if (start == PAGE)
			return o;
		size_t p = start + 1;
		for (;;) {
			/* 8 bytes at a time while none of them is equal: a
			 * rewritten page is one long literal. */
			while (p + 8 <= PAGE &&
			       !has_zero_byte(load64(a + p) ^ load64(b + p))) {
				p += 8;
				if (p - start > cap - o)
					return SIZE_MAX;
			}
			if (p < PAGE && a[p] != b[p])
				p++;
			else if (p + 1 < PAGE && a[p + 1] != b[p + 1])
				p += 2;
			else if (p + 2 < PAGE && a[p + 2] != b[p + 2])
				p += 3;
			else
				break;
			if (p - start > cap - o) /* dense: give up early */
				return SIZE_MAX;
		}
		size_t n = p - start, skip = start - pos;
		if (varint_len(skip) + varint_len(n) + n > cap - o)
			return SIZE_MAX;
		o += varint_put(out + o, skip);
		o += varint_put(out + o, n);
		for (size_t k = 0; k < n; k++)
			out[o + k] = a[start + k] ^ b[start + k];
		o += n;
		pos = p;
	}
}

/* XORs the stream s[0..n) into page; NULL, or why the stream is invalid
 * (page is then partly modified: callers apply to a scratch copy first). */
static const char *zrle_apply(uint8_t *page, const uint8_t *s, size_t n)
{
	size_t pos = 0, i = 0;
	while (i < n) {
		size_t skip, len;
		if (!varint_get(s, n, &i, &skip) || !varint_get(s, n, &i, &len))
			return "zero-run stream: truncated or overlong varint";
		if (len == 0)
			return "zero-run stream: empty literal";
		if (skip > PAGE - pos || len > PAGE - pos - skip)
			return "zero-run stream writes past byte 4096";
		if (len > n - i)
			return "zero-run stream: literal cut short";
		pos += skip;
		for (size_t k = 0; k < len; k++)
			page[pos + k] ^= s[i + k];
		pos += len;
		i += len;
	}
	return NULL;
}

/* --- walking a payload --- */

struct rec {
	uint64_t gpa;
	unsigned coding;
	uint32_t len;
	const uint8_t *data;
};

struct walk {
	const uint8_t *p;
	size_t len, off;
	uint32_t count, i;
	uint64_t prev; /* gpa of record i - 1 */
};

static int walk_begin(struct walk *w, uint32_t version, const void *payload,
		      size_t len, struct kg_err *e)
{
	*w = (struct walk){ .p = payload, .len = len, .off = 8 };
	if (version != PAGE_CODEC_VERSION)
		return kg_errk(e, KG_ERR_INVALID,
			       "ram-pages version %u: this kagami reads "
			       "version %u", version, PAGE_CODEC_VERSION);
	if (len < PAGE_CODEC_BATCH_HEADER)
		return kg_errk(e, KG_ERR_CORRUPT,
			       "ram-pages batch header cut short (%zu of "
			       "8 bytes)", len);
	w->count = le32_get(w->p);
	uint32_t flags = le32_get(w->p + 4);
	if (flags & PAGE_CODEC_FLAGS_REQUIRED & ~PAGE_CODEC_FLAGS_KNOWN)
		return kg_errk(e, KG_ERR_INVALID,
			       "ram-pages batch: unknown required flags "
			       "0x%x", flags & PAGE_CODEC_FLAGS_REQUIRED);
	/* Every record is at least a header: refuse an impossible count
	 * before walking it. */
	if (w->count > (len - 8) / PAGE_CODEC_RECORD_HEADER)
		return kg_errk(e, KG_ERR_CORRUPT,
			       "ram-pages batch: %u pages cannot fit in "
			       "%zu bytes", w->count, len);
	return 0;
}

/* 1 with *r filled and checked (coding, length, order, bounds within the
 * payload), 0 after the last record (which must end the payload), -1 on
 * error. */
static int walk_next(struct walk *w, struct rec *r, struct kg_err *e)
{
	if (w->i == w->count) {
		if (w->off != w->len)
			return kg_errk(e, KG_ERR_CORRUPT,
				       "ram-pages batch: %zu bytes after "
				       "the last of %u pages",
				       w->len - w->off, w->count);
		return 0;
	}
	if (w->len - w->off < PAGE_CODEC_RECORD_HEADER)
		return kg_errk(e, KG_ERR_CORRUPT,
			       "page %u: record header cut short (%zu of "
			       "12 bytes left)", w->i, w->len - w->off);
	uint64_t word = le64_get(w->p + w->off);
	r->gpa = word & ~(uint64_t)CODING_MASK;
	r->coding = (unsigned)(word & CODING_MASK);
	r->len = le32_get(w->p + w->off + 8);
	w->off += PAGE_CODEC_RECORD_HEADER;
	if (w->i > 0 && r->gpa <= w->prev)
		return rec_err(e, w->i, r->gpa, "not above the previous page "
			       "(gpa 0x%llx)", (unsigned long long)w->prev);
	if (r->len > w->len - w->off)
		return rec_err(e, w->i, r->gpa, "length %u exceeds the %zu "
			       "bytes left", r->len, w->len - w->off);
	bool ok;
	switch (r->coding) {
	case KG_PAGE_ZERO: ok = r->len == 0; break;
	case KG_PAGE_RAW: ok = r->len == PAGE; break;
	case KG_PAGE_LZ4: ok = r->len >= 1 && r->len < PAGE; break;
	case KG_PAGE_DELTA: ok = r->len >= HASH_SIZE; break;
	default:
		return rec_err(e, w->i, r->gpa, "unknown coding %u",
			       r->coding);
	}
	if (!ok)
		return rec_err(e, w->i, r->gpa, "bad length %u for a %s page",
			       r->len, page_coding_name(r->coding));
	r->data = w->p + w->off;
	w->off += r->len;
	w->prev = r->gpa;
	w->i++;
	return 1;
}

/* Decodes r over page, which holds the copy the receiver has. NULL, or
 * why r is invalid (page then partly written: validate first). */
static const char *rec_apply(const struct rec *r, uint8_t *page)
{
	switch (r->coding) {
	case KG_PAGE_ZERO:
		memset(page, 0, PAGE);
		return NULL;
	case KG_PAGE_RAW:
		memcpy(page, r->data, PAGE);
		return NULL;
	case KG_PAGE_LZ4:
		if (LZ4_decompress_safe((const char *)r->data, (char *)page,
					(int)r->len, PAGE) != (int)PAGE)
			return "LZ4 data does not decode to 4096 bytes";
		return NULL;
	case KG_PAGE_DELTA:
		return zrle_apply(page, r->data + HASH_SIZE,
				  r->len - HASH_SIZE);
	default:
		return "unknown coding";
	}
}

/* Validates r against the receiver's page without writing it: decodes into
 * scratch and, for a delta, checks the result's hash. */
static const char *rec_check(const struct rec *r, const uint8_t *page,
			     uint8_t *scratch)
{
	if (r->coding != KG_PAGE_LZ4 && r->coding != KG_PAGE_DELTA)
		return NULL; /* walk_next checked all there is */
	if (r->coding == KG_PAGE_DELTA)
		memcpy(scratch, page, PAGE);
	const char *why = rec_apply(r, scratch);
	if (!why && r->coding == KG_PAGE_DELTA &&
	    XXH3_64bits(scratch, PAGE) != le64_get(r->data))
		why = "delta result does not match its hash (the receiver's "
		      "copy differs from the sender's)";
	return why;
}

/* --- receiver --- */

int page_decode(const struct guest_mem *dst, uint32_t version,
		const void *payload, size_t len, struct page_codec_stats *st,
		struct kg_err *e)
{
	_Alignas(64) uint8_t scratch[PAGE];
	struct walk w;
	struct rec r;
	int k;
	/* Pass 1 checks everything and writes nothing: the destination
	 * stays untouched on any error, without staging a batch's pages
	 * (a 1 MiB payload of deltas holds ~40 MiB of pages). */
	if (walk_begin(&w, version, payload, len, e) < 0)
		return -1;
	while ((k = walk_next(&w, &r, e)) > 0) {
		const uint8_t *page = guest_mem_ptr(dst, r.gpa, PAGE);
		if (!page)
			return rec_err(e, w.i - 1, r.gpa, "outside guest RAM");
		const char *why = rec_check(&r, page, scratch);
		if (why)
			return rec_err(e, w.i - 1, r.gpa, "%s", why);
	}
	if (k < 0)
		return -1;

	struct page_codec_stats s = { .bytes_in = len };
	walk_begin(&w, version, payload, len, NULL);
	while (walk_next(&w, &r, NULL) > 0) {
		uint8_t *page = guest_mem_ptr(dst, r.gpa, PAGE);
		const char *why = rec_apply(&r, page);
		if (why) /* only if dst changed under us */
			return rec_err(e, w.i - 1, r.gpa, "applying: %s", why);
		s.pages[r.coding]++;
		s.bytes[r.coding] += PAGE_CODEC_RECORD_HEADER + r.len;
		s.bytes_out += PAGE;
	}
	if (st)
		*st = s;
	return 0;
}

/* --- sender --- */

struct page_encoder {
	/* First, 64-byte aligned (aligned_alloc): what LZ4 reads. */
	uint8_t page[PAGE]; /* stable copy of the live page being encoded */
	uint8_t lz4[PAGE];  /* LZ4 output while a delta candidate sits in dst */
	const struct guest_mem *src;
	uint8_t *shadow; /* indexed like the memfd: by page of RAM offset */
	uint64_t size, words;
	/* One bit per page: the receiver's copy is known (else no delta),
	 * known to be zero (the shadow page is then stale, never read),
	 * and pending (in a batch neither committed nor aborted). */
	uint64_t *known, *zero, *pending;
	/* LZ4 on incompressible data costs more than it saves: after
	 * LZ4_GIVE_UP failures in a row, skip it for
	 * LZ4_SKIP pages, then try again. */
	unsigned lz4_fails, lz4_skip;
	bool no_shadow; /* page_encoder_set_shadowing(false) */
};

#define LZ4_GIVE_UP 32
#define LZ4_SKIP 1024

/* The page at gpa in src: its index (by RAM offset) and live address. */
static bool src_page(const struct guest_mem *m, uint64_t gpa, uint64_t *pg,
		     const uint8_t **hva)
{
	for (unsigned i = 0; i < m->nregions; i++) {
		const struct guest_mem_region *r = &m->regions[i];
		if (gpa < r->gpa || gpa - r->gpa >= r->size ||
		    r->size - (gpa - r->gpa) < PAGE || !r->hva)
			continue;
		*pg = (r->offset + (gpa - r->gpa)) / PAGE;
		if (hva)
			*hva = r->hva + (gpa - r->gpa);
		return true;
	}
	return false;
}

struct page_encoder *page_encoder_new(const struct guest_mem *src,
				      struct kg_err *e)
{
	if (!src->size || src->size % PAGE) {
		kg_errf(e, "page encoder: RAM size %llu is not a multiple of "
			"4 KiB", (unsigned long long)src->size);
		return NULL;
	}
	size_t sz = (sizeof(struct page_encoder) + 63) / 64 * 64;
	struct page_encoder *pe = aligned_alloc(64, sz);
	if (!pe) {
		kg_errk(e, KG_ERR_NOMEM, "page encoder: out of memory");
		return NULL;
	}
	memset(pe, 0, sizeof(*pe));
	pe->src = src;
	pe->size = src->size;
	pe->words = (src->size / PAGE + 63) / 64;
	pe->known = calloc(3 * pe->words, sizeof(uint64_t));
	/* Private anonymous and unreserved: a page costs memory only once a
	 * commit writes it. */
	void *sh = mmap(NULL, src->size, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (!pe->known || sh == MAP_FAILED) {
		if (sh == MAP_FAILED)
			kg_errno(e, "page encoder: mmap shadow (%llu bytes)",
				 (unsigned long long)src->size);
		else
			kg_errk(e, KG_ERR_NOMEM, "page encoder: out of memory");
		if (sh != MAP_FAILED)
			munmap(sh, src->size);
		free(pe->known);
		free(pe);
		return NULL;
	}
	madvise(sh, src->size, MADV_DONTDUMP); /* a copy of guest RAM */
	pe->shadow = sh;
	pe->zero = pe->known + pe->words;
	pe->pending = pe->zero + pe->words;
	return pe;
}

void page_encoder_set_shadowing(struct page_encoder *pe, bool on)
{
	pe->no_shadow = !on;
}

void page_encoder_set_src(struct page_encoder *pe, const struct guest_mem *src)
{
	pe->src = src;
}

void page_encoder_free(struct page_encoder *pe)
{
	if (!pe)
		return;
	munmap(pe->shadow, pe->size);
	free(pe->known);
	free(pe);
}

void page_encoder_reset(struct page_encoder *pe)
{
	memset(pe->known, 0, 3 * pe->words * sizeof(uint64_t));
	madvise(pe->shadow, pe->size, MADV_DONTNEED); /* back to no memory */
}

void page_encoder_assume_zero(struct page_encoder *pe)
{
	page_encoder_reset(pe);
	memset(pe->known, 0xff, 2 * pe->words * sizeof(uint64_t));
}

/* Encodes the live page `pg` into dst[0..room): 1 with *coding and *dlen,
 * 0 if the receiver already holds it, -1 if it does not fit. */
static int encode_page(struct page_encoder *pe, const uint8_t *live,
		       uint64_t pg, uint8_t *dst, size_t room,
		       unsigned *coding, size_t *dlen)
{
	bool known = bit_test(pe->known, pg);
	bool was_zero = known && bit_test(pe->zero, pg);
	if (page_is_zero(live)) {
		if (was_zero)
			return 0;
		*coding = KG_PAGE_ZERO;
		*dlen = 0;
		return 1;
	}
	/* Everything below reads one copy: the guest may be writing the
	 * page, and what commit applies to the shadow must be exactly what
	 * the receiver decodes (the page is dirty again anyway). */
	memcpy(pe->page, live, PAGE);
	size_t cap = room < KEEP_MAX - 1 ? room : KEEP_MAX - 1;
	size_t best = SIZE_MAX; /* a delta's size, if any */
	if (known) {
		const uint8_t *base = was_zero ? zero_page
					       : pe->shadow + pg * PAGE;
		size_t z = zrle_encode(pe->page, base, dst + HASH_SIZE,
				       cap > HASH_SIZE ? cap - HASH_SIZE : 0);
		if (z == 0)
			return 0; /* unchanged since the last commit */
		if (z != SIZE_MAX && cap > HASH_SIZE)
			best = HASH_SIZE + z;
	}
	bool try_lz4 = best > DELTA_GOOD;
	if (try_lz4 && pe->lz4_skip) {
		pe->lz4_skip--;
		try_lz4 = false;
	}
	if (try_lz4) {
		/* Not seen before, or a poor delta: LZ4, if it beats both
		 * the delta and the 3/4-page bar. Into scratch when a delta
		 * sits in dst. */
		size_t lcap = best != SIZE_MAX ? best - 1 : cap;
		uint8_t *to = best != SIZE_MAX ? pe->lz4 : dst;
		int n = LZ4_compress_fast((const char *)pe->page, (char *)to,
					  PAGE, (int)lcap, 1);
		if (n > 0) {
			if (to != dst)
				memcpy(dst, to, (size_t)n);
			*coding = KG_PAGE_LZ4;
			*dlen = (size_t)n;
			pe->lz4_fails = 0;
			return 1;
		}
		if (++pe->lz4_fails >= LZ4_GIVE_UP) {
			pe->lz4_fails = 0;
			pe->lz4_skip = LZ4_SKIP;
		}
	}
	if (best != SIZE_MAX) {
		le64_put(dst, XXH3_64bits(pe->page, PAGE));
		*coding = KG_PAGE_DELTA;
		*dlen = best;
		return 1;
	}
	if (room < PAGE)
		return -1;
	memcpy(dst, pe->page, PAGE);
	*coding = KG_PAGE_RAW;
	*dlen = PAGE;
	return 1;
}

long page_encode(struct page_encoder *pe, const uint64_t *gpas, size_t n,
		 void *out, size_t cap, size_t *len,
		 struct page_codec_stats *st, struct kg_err *e)
{
	if (cap < PAGE_CODEC_MIN_OUT)
		return kg_errf(e, "page encoder: output buffer of %zu bytes is "
			       "below the minimum %u", cap, PAGE_CODEC_MIN_OUT);
	struct page_codec_stats s = { 0 };
	uint8_t *o = out;
	size_t off = PAGE_CODEC_BATCH_HEADER, i;
	uint32_t count = 0;
	for (i = 0; i < n && count < UINT32_MAX; i++) {
		uint64_t gpa = gpas[i], pg;
		const uint8_t *live;
		const char *why = NULL;
		if (gpa & CODING_MASK)
			why = "is not page aligned";
		else if (i > 0 && gpa <= gpas[i - 1])
			why = "is not above the previous page";
		else if (!src_page(pe->src, gpa, &pg, &live))
			why = "is outside guest RAM";
		else if (bit_test(pe->pending, pg))
			why = "is in a batch not yet committed or aborted";
		if (why) {
			kg_errf(e, "page encoder: gpa 0x%llx %s",
				(unsigned long long)gpa, why);
			goto fail;
		}
		if (cap - off < PAGE_CODEC_RECORD_HEADER)
			break;
		unsigned coding;
		size_t dlen;
		int r = encode_page(pe, live, pg,
				    o + off + PAGE_CODEC_RECORD_HEADER,
				    cap - off - PAGE_CODEC_RECORD_HEADER,
				    &coding, &dlen);
		if (r < 0)
			break; /* full: this page starts the next batch */
		if (r == 0) {
			s.same++;
			continue;
		}
		le64_put(o + off, gpa | coding);
		le32_put(o + off + 8, (uint32_t)dlen);
		off += PAGE_CODEC_RECORD_HEADER + dlen;
		count++;
		bit_set(pe->pending, pg);
		s.pages[coding]++;
		s.bytes[coding] += PAGE_CODEC_RECORD_HEADER + dlen;
	}
	le32_put(o, count);
	le32_put(o + 4, 0);
	s.bytes_in = (uint64_t)i * PAGE;
	s.bytes_out = off;
	*len = off;
	if (st)
		*st = s;
	return (long)i;
fail:
	/* Pages before i were checked not pending on entry: any pending bit
	 * they have now is this call's. */
	for (size_t j = 0; j < i; j++) {
		uint64_t pg;
		if (src_page(pe->src, gpas[j], &pg, NULL))
			bit_clear(pe->pending, pg);
	}
	return -1;
}

int page_encoder_commit(struct page_encoder *pe, const void *payload,
			size_t len, struct kg_err *e)
{
	struct walk w;
	struct rec r;
	uint64_t pg;
	int k;
	/* Check first, so that a wrong payload changes nothing. */
	if (walk_begin(&w, PAGE_CODEC_VERSION, payload, len, e) < 0)
		return kg_err_prefix(e, "commit");
	while ((k = walk_next(&w, &r, e)) > 0) {
		if (!src_page(pe->src, r.gpa, &pg, NULL))
			return rec_err(e, w.i - 1, r.gpa, "commit: outside "
				       "guest RAM");
		if (!bit_test(pe->pending, pg))
			return rec_err(e, w.i - 1, r.gpa, "commit: not pending "
				       "(another encoder's batch, or committed "
				       "twice)");
		if (r.coding == KG_PAGE_DELTA && !bit_test(pe->known, pg))
			return rec_err(e, w.i - 1, r.gpa, "commit: a delta "
				       "against an unknown page");
	}
	if (k < 0)
		return kg_err_prefix(e, "commit");

	/* The decoder's own code over the shadow: it becomes what the
	 * receiver computed. Delta hashes are not checked: this is our own
	 * payload, and the receiver checks them. */
	walk_begin(&w, PAGE_CODEC_VERSION, payload, len, NULL);
	while (walk_next(&w, &r, NULL) > 0) {
		src_page(pe->src, r.gpa, &pg, NULL);
		bit_clear(pe->pending, pg);
		bit_set(pe->known, pg);
		if (r.coding == KG_PAGE_ZERO) {
			bit_set(pe->zero, pg); /* the shadow page stays as is */
			continue;
		}
		if (pe->no_shadow) {
			/* Not kept: the next send of this page is whole. */
			bit_clear(pe->known, pg);
			bit_clear(pe->zero, pg);
			continue;
		}
		uint8_t *sh = pe->shadow + pg * PAGE;
		if (r.coding == KG_PAGE_DELTA && bit_test(pe->zero, pg))
			memset(sh, 0, PAGE); /* the base was the zero page */
		bit_clear(pe->zero, pg);
		const char *why = rec_apply(&r, sh);
		if (why) {
			/* The shadow is half updated: start over. */
			page_encoder_reset(pe);
			return rec_err(e, w.i - 1, r.gpa, "commit: %s "
				       "(encoder reset)", why);
		}
	}
	return 0;
}

void page_encoder_abort(struct page_encoder *pe, const void *payload,
			size_t len)
{
	struct walk w;
	struct rec r;
	uint64_t pg;
	if (walk_begin(&w, PAGE_CODEC_VERSION, payload, len, NULL) < 0)
		return;
	while (walk_next(&w, &r, NULL) > 0)
		if (src_page(pe->src, r.gpa, &pg, NULL))
			bit_clear(pe->pending, pg);
}
