/*
 * Unit tests for the page codec (ft/checkpoint/page_codec.h): a round trip
 * per coding, mixed batches, the encoder's shadow agreeing with the
 * receiver over many rounds of random writes, bounded output, the
 * commit/abort contract, and every way a payload is refused, each leaving
 * the receiver's RAM untouched.
 *
 * Sender and receiver RAM are two malloc'd 1 MiB buffers laid out by
 * guest_mem_layout() (no memfd, no KVM), as in test_virtq.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <lz4.h>

#include "base/le.h"
#include "ft/checkpoint/page_codec.h"

#define RAM_SIZE (1ull << 20)
#define PAGE 4096ull
#define NPAGES (RAM_SIZE / PAGE)
#define OUT_CAP (2u << 20)

struct fixture {
	struct guest_mem src, dst;
	uint8_t *sram, *dram;
	struct page_encoder *pe;
	uint8_t *out;
	uint64_t rng;
};

static void mem_fixture(struct guest_mem *m, uint8_t **ram)
{
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	guest_mem_layout(RAM_SIZE, m);
	*ram = calloc(1, RAM_SIZE);
	assert_non_null(*ram);
	m->base = *ram;
	m->regions[0].hva = *ram;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	mem_fixture(&f->src, &f->sram);
	mem_fixture(&f->dst, &f->dram);
	struct kg_err e;
	f->pe = page_encoder_new(&f->src, &e);
	assert_non_null(f->pe);
	f->out = malloc(OUT_CAP);
	assert_non_null(f->out);
	f->rng = 0x9e3779b97f4a7c15ull;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	page_encoder_free(f->pe);
	free(f->sram);
	free(f->dram);
	free(f->out);
	free(f);
	return 0;
}

/* --- page contents --- */

static uint64_t rnd(struct fixture *f)
{
	f->rng ^= f->rng << 13;
	f->rng ^= f->rng >> 7;
	f->rng ^= f->rng << 17;
	return f->rng;
}

static uint8_t *spage(struct fixture *f, uint64_t i)
{
	return f->sram + i * PAGE;
}

static uint8_t *dpage(struct fixture *f, uint64_t i)
{
	return f->dram + i * PAGE;
}

static void fill_random(struct fixture *f, uint8_t *p)
{
	for (size_t i = 0; i < PAGE; i += 8) {
		uint64_t v = rnd(f);
		memcpy(p + i, &v, 8);
	}
}

/* Words and numbers, like a log or a heap of strings: LZ4 halves it. */
static void fill_text(struct fixture *f, uint8_t *p)
{
	static const char *const words[] = {
		"the", "replica", "epoch", "checkpoint", "of", "guest",
		"memory", "page", "dirty", "and", "a", "kvstore", "write",
		"acknowledged", "backup", "primary", "failover", "to",
	};
	size_t n = 0;
	while (n < PAGE) {
		char w[32];
		uint64_t r = rnd(f);
		size_t nw = sizeof(words) / sizeof(words[0]);
		int k = r % 5 == 0
				? snprintf(w, sizeof(w), "%u ",
					   (unsigned)(r >> 8) % 10000)
				: snprintf(w, sizeof(w), "%s ",
					   words[(r >> 8) % nw]);
		for (int i = 0; i < k && n < PAGE; i++)
			p[n++] = (uint8_t)w[i];
	}
}

/* A few scattered 8-byte writes and one short run: a lightly written
 * page. */
static void write_light(struct fixture *f, uint8_t *p)
{
	for (int i = 0; i < 6; i++) {
		uint64_t v = rnd(f);
		memcpy(p + (rnd(f) % (PAGE / 8)) * 8, &v, 8);
	}
	size_t at = rnd(f) % (PAGE - 32);
	for (size_t i = 0; i < 32; i++)
		p[at + i] = (uint8_t)rnd(f);
}

/* --- the codec --- */

static long encode(struct fixture *f, const uint64_t *gpas, size_t n,
		   size_t cap, size_t *len, struct page_codec_stats *st)
{
	struct kg_err e = { 0 };
	long r = page_encode(f->pe, gpas, n, f->out, cap, len, st, &e);
	if (r < 0)
		fail_msg("page_encode: %s", e.msg);
	return r;
}

static void decode_ok(struct fixture *f, size_t len,
		      struct page_codec_stats *st)
{
	struct kg_err e = { 0 };
	if (page_decode(&f->dst, PAGE_CODEC_VERSION, f->out, len, st, &e) < 0)
		fail_msg("page_decode: %s", e.msg);
}

static void commit_ok(struct fixture *f, size_t len)
{
	struct kg_err e = { 0 };
	if (page_encoder_commit(f->pe, f->out, len, &e) < 0)
		fail_msg("commit: %s", e.msg);
}

/* Encodes, decodes and commits gpas in batches of at most cap bytes;
 * returns the summed encoder statistics. */
static struct page_codec_stats send(struct fixture *f, const uint64_t *gpas,
				    size_t n, size_t cap)
{
	struct page_codec_stats sum = { 0 };
	size_t done = 0;
	while (done < n) {
		struct page_codec_stats es, ds;
		size_t len;
		long k = encode(f, gpas + done, n - done, cap, &len, &es);
		assert_true(k > 0);
		assert_true(len <= cap);
		assert_int_equal(es.bytes_out, len);
		decode_ok(f, len, &ds);
		for (unsigned c = 1; c < KG_PAGE_NCODINGS; c++) {
			assert_int_equal(ds.pages[c], es.pages[c]);
			assert_int_equal(ds.bytes[c], es.bytes[c]);
		}
		commit_ok(f, len);
		page_codec_stats_add(&sum, &es);
		done += (size_t)k;
	}
	return sum;
}

static void send_one(struct fixture *f, uint64_t i, unsigned coding,
		     size_t *dlen)
{
	uint64_t gpa = i * PAGE;
	struct page_codec_stats st = send(f, &gpa, 1, OUT_CAP);
	assert_int_equal(st.pages[coding], 1);
	assert_int_equal(st.same, 0);
	/* One record: its coding and length as the payload says. */
	assert_int_equal(le32_get(f->out), 1);
	assert_int_equal(le64_get(f->out + 8), gpa | coding);
	*dlen = le32_get(f->out + 16);
	assert_int_equal(st.bytes_out, 8 + 12 + *dlen);
	assert_memory_equal(spage(f, i), dpage(f, i), PAGE);
}

/* --- a round trip per coding --- */

static void test_zero_page(void **state)
{
	struct fixture *f = *state;
	size_t dlen;
	memset(dpage(f, 3), 0xaa, PAGE); /* the receiver's stale copy */
	send_one(f, 3, KG_PAGE_ZERO, &dlen);
	assert_int_equal(dlen, 0);
}

static void test_raw_page(void **state)
{
	struct fixture *f = *state;
	size_t dlen;
	fill_random(f, spage(f, 5));
	send_one(f, 5, KG_PAGE_RAW, &dlen);
	assert_int_equal(dlen, PAGE);
}

static void test_lz4_page(void **state)
{
	struct fixture *f = *state;
	size_t dlen;
	fill_text(f, spage(f, 7));
	send_one(f, 7, KG_PAGE_LZ4, &dlen);
	assert_true(dlen < PAGE * 3 / 4);
}

static void test_delta_page(void **state)
{
	struct fixture *f = *state;
	size_t dlen;
	fill_random(f, spage(f, 9));
	send_one(f, 9, KG_PAGE_RAW, &dlen);
	write_light(f, spage(f, 9));
	send_one(f, 9, KG_PAGE_DELTA, &dlen);
	/* hash 8 + 6 words and a 32-byte run, with their varints */
	assert_true(dlen <= 8 + 6 * (2 + 2 + 8) + 2 + 2 + 32);
	/* A text page lightly written goes as a delta too, not LZ4. */
	fill_text(f, spage(f, 10));
	send_one(f, 10, KG_PAGE_LZ4, &dlen);
	spage(f, 10)[100] ^= 1;
	send_one(f, 10, KG_PAGE_DELTA, &dlen);
	assert_true(dlen <= 8 + 3);
	/* Every byte of a page changed by a little: a poor delta. */
	for (size_t i = 0; i < PAGE; i++)
		spage(f, 10)[i] ^= 0x20;
	send_one(f, 10, KG_PAGE_LZ4, &dlen);
}

static void test_delta_edges(void **state)
{
	struct fixture *f = *state;
	size_t dlen;
	fill_text(f, spage(f, 1));
	send_one(f, 1, KG_PAGE_LZ4, &dlen);
	/* First and last bytes, gaps of 1, 2 and 3 equal bytes. */
	uint8_t *p = spage(f, 1);
	p[0] ^= 1;
	p[2] ^= 1;
	p[5] ^= 1;
	p[9] ^= 1;
	p[PAGE - 1] ^= 1;
	p[PAGE - 3] ^= 1;
	send_one(f, 1, KG_PAGE_DELTA, &dlen);
	p[200] ^= 0x80;
	p[4000] ^= 0x80; /* a 2-byte skip varint */
	send_one(f, 1, KG_PAGE_DELTA, &dlen);
}

static void test_unchanged_skipped(void **state)
{
	struct fixture *f = *state;
	size_t dlen, len;
	fill_random(f, spage(f, 2));
	send_one(f, 2, KG_PAGE_RAW, &dlen);
	send_one(f, 3, KG_PAGE_ZERO, &dlen);
	uint64_t gpas[] = { 2 * PAGE, 3 * PAGE };
	struct page_codec_stats st;
	assert_int_equal(encode(f, gpas, 2, OUT_CAP, &len, &st), 2);
	assert_int_equal(len, PAGE_CODEC_BATCH_HEADER);
	assert_int_equal(le32_get(f->out), 0);
	assert_int_equal(st.same, 2);
	assert_int_equal(st.bytes_in, 2 * PAGE);
	decode_ok(f, len, NULL); /* an empty batch decodes */
	commit_ok(f, len);
}

static void test_assume_zero(void **state)
{
	struct fixture *f = *state;
	page_encoder_assume_zero(f->pe);
	uint64_t gpas[NPAGES];
	for (uint64_t i = 0; i < NPAGES; i++)
		gpas[i] = i * PAGE;
	spage(f, 4)[17] = 1;      /* sparse: a delta against zero */
	fill_text(f, spage(f, 8)); /* LZ4 */
	struct page_codec_stats st = send(f, gpas, NPAGES, OUT_CAP);
	assert_int_equal(st.same, NPAGES - 2);
	assert_int_equal(st.pages[KG_PAGE_DELTA], 1);
	assert_int_equal(st.pages[KG_PAGE_LZ4], 1);
	assert_memory_equal(f->sram, f->dram, RAM_SIZE);
	/* Known, now zero again: a ZERO record. */
	spage(f, 4)[17] = 0;
	st = send(f, gpas, NPAGES, OUT_CAP);
	assert_int_equal(st.pages[KG_PAGE_ZERO], 1);
	assert_int_equal(st.same, NPAGES - 1);
}

/* --- batches --- */

static void test_mixed_batch(void **state)
{
	struct fixture *f = *state;
	uint64_t gpas[64];
	for (uint64_t i = 0; i < 64; i++) {
		gpas[i] = i * 2 * PAGE; /* with holes between them */
		switch (i % 4) {
		case 0: break; /* zero */
		case 1: fill_random(f, spage(f, i * 2)); break;
		case 2: fill_text(f, spage(f, i * 2)); break;
		case 3: fill_text(f, spage(f, i * 2)); break;
		}
	}
	struct page_codec_stats st = send(f, gpas, 64, OUT_CAP);
	assert_int_equal(st.pages[KG_PAGE_ZERO], 16);
	assert_int_equal(st.pages[KG_PAGE_RAW], 16);
	assert_int_equal(st.pages[KG_PAGE_LZ4], 32);
	assert_int_equal(st.bytes_in, 64 * PAGE);
	assert_true(st.bytes_out < 32 * PAGE);
	assert_memory_equal(f->sram, f->dram, RAM_SIZE);

	/* Now lightly write half of them: deltas, and the rest unchanged. */
	for (uint64_t i = 0; i < 64; i += 2)
		write_light(f, spage(f, i * 2));
	st = send(f, gpas, 64, OUT_CAP);
	assert_int_equal(st.pages[KG_PAGE_DELTA], 32);
	assert_int_equal(st.same, 32);
	assert_true(st.bytes_out < 32 * 200);
	assert_memory_equal(f->sram, f->dram, RAM_SIZE);
}

static void test_shadow_agreement(void **state)
{
	struct fixture *f = *state;
	uint64_t gpas[NPAGES];
	struct page_codec_stats sum = { 0 };
	for (int round = 0; round < 300; round++) {
		size_t n = 0;
		for (uint64_t i = 0; i < NPAGES; i++) {
			uint64_t r = rnd(f) % 64;
			if (r >= 12)
				continue; /* not dirty this round */
			uint8_t *p = spage(f, i);
			switch (r) {
			case 0: memset(p, 0, PAGE); break;
			case 1: fill_random(f, p); break;
			case 2: fill_text(f, p); break;
			case 3: break; /* dirty, but rewritten the same */
			case 4: p[rnd(f) % PAGE] = 0; break;
			default: write_light(f, p); break;
			}
			gpas[n++] = i * PAGE;
		}
		/* Small batches: pages of one round straddle them. */
		struct page_codec_stats st = send(f, gpas, n, 64 << 10);
		page_codec_stats_add(&sum, &st);
		assert_int_equal(st.bytes_in, n * PAGE);
		if (memcmp(f->sram, f->dram, RAM_SIZE))
			fail_msg("sender and receiver differ after round %d",
				 round);
	}
	for (unsigned c = 1; c < KG_PAGE_NCODINGS; c++)
		assert_true(sum.pages[c] > 0);
	assert_true(sum.same > 0);
}

static void test_bounded_output(void **state)
{
	struct fixture *f = *state;
	uint64_t gpas[8];
	for (uint64_t i = 0; i < 8; i++) {
		fill_random(f, spage(f, i));
		gpas[i] = i * PAGE;
	}
	/* Room for two raw records and a little more: two pages a batch. */
	size_t cap = PAGE_CODEC_MIN_OUT + 12 + PAGE + 100, len;
	size_t done = 0, batches = 0;
	while (done < 8) {
		long k = encode(f, gpas + done, 8 - done, cap, &len, NULL);
		assert_int_equal(k, 2);
		assert_true(len <= cap);
		assert_int_equal(le32_get(f->out), 2);
		decode_ok(f, len, NULL);
		commit_ok(f, len);
		done += (size_t)k;
		batches++;
	}
	assert_int_equal(batches, 4);
	assert_memory_equal(f->sram, f->dram, 8 * PAGE);

	/* Zero pages are 12 bytes each: the smallest buffer holds them all. */
	uint64_t zgpas[NPAGES - 8];
	for (uint64_t i = 8; i < NPAGES; i++)
		zgpas[i - 8] = i * PAGE;
	assert_int_equal(encode(f, zgpas, NPAGES - 8, PAGE_CODEC_MIN_OUT, &len,
				NULL), NPAGES - 8);
	assert_int_equal(len, 8 + 12 * (NPAGES - 8));
	commit_ok(f, len);

	/* Below the minimum: refused. */
	struct kg_err e;
	assert_int_equal(page_encode(f->pe, gpas, 1, f->out,
				     PAGE_CODEC_MIN_OUT - 1, &len, NULL, &e),
			 -1);
	assert_non_null(strstr(e.msg, "minimum"));
}

/* --- the encoder's contract --- */

static void expect_encode_error(struct fixture *f, const uint64_t *gpas,
				size_t n, const char *what)
{
	struct kg_err e = { 0 };
	size_t len;
	assert_int_equal(page_encode(f->pe, gpas, n, f->out, OUT_CAP, &len,
				     NULL, &e), -1);
	if (!strstr(e.msg, what))
		fail_msg("error \"%s\" does not say \"%s\"", e.msg, what);
}

static void test_encoder_misuse(void **state)
{
	struct fixture *f = *state;
	fill_random(f, spage(f, 1));
	fill_random(f, spage(f, 2));
	uint64_t bad1[] = { PAGE + 8 };
	expect_encode_error(f, bad1, 1, "not page aligned");
	uint64_t bad2[] = { 2 * PAGE, PAGE };
	expect_encode_error(f, bad2, 2, "not above the previous");
	uint64_t bad3[] = { PAGE, RAM_SIZE };
	expect_encode_error(f, bad3, 2, "outside guest RAM");

	/* A pending page cannot be encoded again until commit or abort;
	 * the failed call leaves none of its own pages pending. */
	uint64_t one[] = { PAGE }, both[] = { PAGE, 2 * PAGE };
	size_t len;
	assert_int_equal(encode(f, one, 1, OUT_CAP, &len, NULL), 1);
	expect_encode_error(f, both, 2, "not yet committed");
	uint64_t two[] = { 2 * PAGE, 3 * PAGE };
	assert_int_equal(encode(f, two, 2, OUT_CAP, &len, NULL), 2);
	page_encoder_abort(f->pe, f->out, len);

	/* Commit twice, or another encoder's payload: refused. */
	assert_int_equal(encode(f, two, 2, OUT_CAP, &len, NULL), 2);
	commit_ok(f, len);
	struct kg_err e;
	assert_int_equal(page_encoder_commit(f->pe, f->out, len, &e), -1);
	assert_non_null(strstr(e.msg, "not pending"));
}

static void test_abort_keeps_shadow(void **state)
{
	struct fixture *f = *state;
	size_t dlen, len;
	fill_random(f, spage(f, 6));
	send_one(f, 6, KG_PAGE_RAW, &dlen);
	/* A delta the receiver never sees. */
	write_light(f, spage(f, 6));
	uint64_t gpa = 6 * PAGE;
	assert_int_equal(encode(f, &gpa, 1, OUT_CAP, &len, NULL), 1);
	page_encoder_abort(f->pe, f->out, len);
	/* The next delta is still against what the receiver holds. */
	write_light(f, spage(f, 6));
	send_one(f, 6, KG_PAGE_DELTA, &dlen);
}

static void test_reset_forgets(void **state)
{
	struct fixture *f = *state;
	size_t dlen;
	fill_random(f, spage(f, 6));
	send_one(f, 6, KG_PAGE_RAW, &dlen);
	page_encoder_reset(f->pe);
	memset(dpage(f, 6), 0x55, PAGE); /* a new receiver */
	write_light(f, spage(f, 6));
	send_one(f, 6, KG_PAGE_RAW, &dlen); /* no delta: unknown again */
}

/* A receiver whose copy is not the sender's shadow refuses the delta. */
static void test_delta_hash_mismatch(void **state)
{
	struct fixture *f = *state;
	size_t dlen, len;
	fill_text(f, spage(f, 11));
	send_one(f, 11, KG_PAGE_LZ4, &dlen);
	dpage(f, 11)[3000] ^= 1; /* the receiver diverged */
	spage(f, 11)[10] ^= 1;
	uint64_t gpa = 11 * PAGE;
	assert_int_equal(encode(f, &gpa, 1, OUT_CAP, &len, NULL), 1);
	uint8_t before[PAGE];
	memcpy(before, dpage(f, 11), PAGE);
	struct kg_err e;
	assert_int_equal(page_decode(&f->dst, 1, f->out, len, NULL, &e), -1);
	assert_non_null(strstr(e.msg, "page 0 at gpa 0xb000: delta result "
				      "does not match its hash"));
	assert_memory_equal(before, dpage(f, 11), PAGE);
}

/* --- the decoder's rejections --- */

/* Builds payloads by hand. */
struct pb {
	uint8_t b[3 * 8192];
	size_t n;
	uint32_t count;
};

static void pb_rec(struct pb *p, uint64_t gpa, unsigned coding,
		   const void *data, uint32_t len)
{
	if (!p->n)
		p->n = 8;
	le64_put(p->b + p->n, gpa | coding);
	le32_put(p->b + p->n + 8, len);
	if (len)
		memcpy(p->b + p->n + 12, data, len);
	p->n += 12 + len;
	le32_put(p->b, ++p->count);
}

/* Decoding must fail with `what` in the message and leave RAM as it was. */
static void expect_reject_kind(struct fixture *f, const struct guest_mem *dst,
			       uint32_t version, const uint8_t *payload,
			       size_t len, const char *what,
			       enum kg_err_kind kind);

/* A payload that breaks the format: corrupt. */
static void expect_reject(struct fixture *f, const struct guest_mem *dst,
			  uint32_t version, const uint8_t *payload, size_t len,
			  const char *what)
{
	expect_reject_kind(f, dst, version, payload, len, what, KG_ERR_CORRUPT);
}

static void expect_reject_kind(struct fixture *f, const struct guest_mem *dst,
			       uint32_t version, const uint8_t *payload,
			       size_t len, const char *what,
			       enum kg_err_kind kind)
{
	size_t size = dst->size;
	uint8_t *before = malloc(size);
	assert_non_null(before);
	memcpy(before, dst->base, size);
	struct kg_err e = { 0 };
	struct page_codec_stats st = { .same = 77 };
	assert_int_equal(page_decode(dst, version, payload, len, &st, &e), -1);
	if (!strstr(e.msg, what))
		fail_msg("error \"%s\" does not say \"%s\"", e.msg, what);
	assert_null(strchr(e.msg, '\n'));
	if (e.kind != kind)
		fail_msg("error \"%s\": kind %s, want %s", e.msg,
			 kg_err_kind_name(e.kind), kg_err_kind_name(kind));
	assert_int_equal(st.same, 77); /* stats untouched on failure */
	assert_memory_equal(before, dst->base, size);
	free(before);
	(void)f;
}

/* Every rejection comes after a valid ZERO and RAW record, so a decoder
 * that applied records as it went would be caught. */
static void prefix(struct fixture *f, struct pb *p)
{
	static uint8_t raw[PAGE];
	memset(raw, 0x5a, PAGE);
	memset(p, 0, sizeof(*p));
	memset(f->dram, 0xc3, RAM_SIZE);
	pb_rec(p, 0, KG_PAGE_ZERO, NULL, 0);
	pb_rec(p, PAGE, KG_PAGE_RAW, raw, PAGE);
}

static void test_reject_batch(void **state)
{
	struct fixture *f = *state;
	struct pb p;
	prefix(f, &p);
	expect_reject_kind(f, &f->dst, 2, p.b, p.n, "version 2",
			   KG_ERR_INVALID);
	expect_reject(f, &f->dst, 1, p.b, 5, "header cut short");
	le32_put(p.b + 4, 0x4);
	expect_reject_kind(f, &f->dst, 1, p.b, p.n,
			   "unknown required flags 0x4", KG_ERR_INVALID);
	le32_put(p.b + 4, 0x10000); /* an optional flag is ignored */
	assert_int_equal(page_decode(&f->dst, 1, p.b, p.n, NULL, NULL), 0);
	le32_put(p.b + 4, 0);
	le32_put(p.b, 1000);
	expect_reject(f, &f->dst, 1, p.b, p.n, "1000 pages cannot fit");
	le32_put(p.b, 3);
	expect_reject(f, &f->dst, 1, p.b, p.n, "page 2: record header cut");
	le32_put(p.b, 2);
	expect_reject(f, &f->dst, 1, p.b, p.n + 1, "1 bytes after the last");
	/* Truncated inside the RAW page's data. */
	expect_reject(f, &f->dst, 1, p.b, p.n - 1,
		      "page 1 at gpa 0x1000: length 4096 exceeds the 4095");
}

static void test_reject_gpa(void **state)
{
	struct fixture *f = *state;
	struct pb p;
	prefix(f, &p);
	pb_rec(&p, RAM_SIZE, KG_PAGE_ZERO, NULL, 0);
	expect_reject(f, &f->dst, 1, p.b, p.n,
		      "page 2 at gpa 0x100000: outside guest RAM");
	prefix(f, &p);
	pb_rec(&p, 0xfffffffffffff000ull, KG_PAGE_ZERO, NULL, 0);
	expect_reject(f, &f->dst, 1, p.b, p.n, "outside guest RAM");
	prefix(f, &p);
	pb_rec(&p, PAGE, KG_PAGE_ZERO, NULL, 0); /* the same page twice */
	expect_reject(f, &f->dst, 1, p.b, p.n,
		      "page 2 at gpa 0x1000: not above the previous page");
	/* A hole between two regions (as below and above the MMIO hole). */
	struct guest_mem holed = f->dst;
	holed.regions[0].size = RAM_SIZE / 2;
	holed.regions[1] = (struct guest_mem_region){
		RAM_SIZE, RAM_SIZE / 2, RAM_SIZE / 2, f->dram + RAM_SIZE / 2
	};
	holed.nregions = 2;
	prefix(f, &p);
	pb_rec(&p, RAM_SIZE / 2 + PAGE, KG_PAGE_ZERO, NULL, 0);
	expect_reject(f, &holed, 1, p.b, p.n, "gpa 0x81000: outside guest RAM");
	prefix(f, &p);
	pb_rec(&p, RAM_SIZE + PAGE, KG_PAGE_ZERO, NULL, 0);
	assert_int_equal(page_decode(&holed, 1, p.b, p.n, NULL, NULL), 0);
	/* The region's last page is in; one past the end is not. */
	prefix(f, &p);
	pb_rec(&p, 2 * RAM_SIZE - RAM_SIZE / 2 - PAGE, KG_PAGE_ZERO, NULL, 0);
	assert_int_equal(page_decode(&holed, 1, p.b, p.n, NULL, NULL), 0);
	prefix(f, &p);
	pb_rec(&p, RAM_SIZE + RAM_SIZE / 2, KG_PAGE_ZERO, NULL, 0);
	expect_reject(f, &holed, 1, p.b, p.n, "outside guest RAM");
}

static void test_reject_length(void **state)
{
	struct fixture *f = *state;
	struct pb p;
	uint8_t junk[16] = { 0 };
	prefix(f, &p);
	pb_rec(&p, 2 * PAGE, KG_PAGE_ZERO, junk, 1);
	expect_reject(f, &f->dst, 1, p.b, p.n, "bad length 1 for a zero page");
	prefix(f, &p);
	pb_rec(&p, 2 * PAGE, KG_PAGE_RAW, junk, 16);
	expect_reject(f, &f->dst, 1, p.b, p.n, "bad length 16 for a raw page");
	prefix(f, &p);
	pb_rec(&p, 2 * PAGE, KG_PAGE_LZ4, junk, 0);
	expect_reject(f, &f->dst, 1, p.b, p.n, "bad length 0 for a lz4 page");
	prefix(f, &p);
	pb_rec(&p, 2 * PAGE, KG_PAGE_DELTA, junk, 7);
	expect_reject(f, &f->dst, 1, p.b, p.n, "bad length 7 for a delta");
	prefix(f, &p);
	pb_rec(&p, 2 * PAGE, KG_PAGE_DELTA, junk, 8);
	le32_put(p.b + p.n - 8 - 4, 0x7fffffff);
	expect_reject(f, &f->dst, 1, p.b, p.n,
		      "page 2 at gpa 0x2000: length 2147483647 exceeds");
}

static void test_reject_coding(void **state)
{
	struct fixture *f = *state;
	struct pb p;
	prefix(f, &p);
	pb_rec(&p, 2 * PAGE, 0, NULL, 0);
	expect_reject(f, &f->dst, 1, p.b, p.n, "gpa 0x2000: unknown coding 0");
	prefix(f, &p);
	pb_rec(&p, 2 * PAGE, 5, NULL, 0);
	expect_reject(f, &f->dst, 1, p.b, p.n, "unknown coding 5");
	prefix(f, &p);
	pb_rec(&p, 2 * PAGE, 0xfff, NULL, 0);
	expect_reject(f, &f->dst, 1, p.b, p.n, "unknown coding 4095");
}

static void test_reject_lz4(void **state)
{
	struct fixture *f = *state;
	struct pb p;
	uint8_t junk[64];
	memset(junk, 0xf7, sizeof(junk));
	prefix(f, &p);
	pb_rec(&p, 2 * PAGE, KG_PAGE_LZ4, junk, sizeof(junk));
	expect_reject(f, &f->dst, 1, p.b, p.n,
		      "page 2 at gpa 0x2000: LZ4 data does not decode to 4096");
	/* Valid LZ4, but of 4095 bytes, then of 4097. */
	uint8_t src[PAGE + 1], lz[PAGE + 64];
	memset(src, 'x', sizeof(src));
	for (int n = PAGE - 1; n <= (int)PAGE + 1; n += 2) {
		int k = LZ4_compress_default((const char *)src, (char *)lz, n,
					     (int)sizeof(lz));
		assert_true(k > 0);
		prefix(f, &p);
		pb_rec(&p, 2 * PAGE, KG_PAGE_LZ4, lz, (uint32_t)k);
		expect_reject(f, &f->dst, 1, p.b, p.n, "does not decode to");
	}
	/* And exactly 4096 is accepted. */
	int k = LZ4_compress_default((const char *)src, (char *)lz, PAGE,
				     (int)sizeof(lz));
	prefix(f, &p);
	pb_rec(&p, 2 * PAGE, KG_PAGE_LZ4, lz, (uint32_t)k);
	assert_int_equal(page_decode(&f->dst, 1, p.b, p.n, NULL, NULL), 0);
	assert_memory_equal(dpage(f, 2), src, PAGE);
}

/* A delta record: the hash of the page the stream makes from the
 * receiver's page 2, then the stream. */
static void delta_rec(struct fixture *f, struct pb *p, const uint8_t *s,
		      uint32_t n)
{
	uint8_t d[64];
	memset(d, 0, 8); /* a wrong hash: structure is checked first */
	memcpy(d + 8, s, n);
	prefix(f, p);
	pb_rec(p, 2 * PAGE, KG_PAGE_DELTA, d, 8 + n);
}

static void test_reject_zero_run(void **state)
{
	struct fixture *f = *state;
	struct pb p;
	/* skip 4000, 200 bytes: past the page */
	uint8_t over[] = { 0xa0, 0x1f, 0xc8, 0x01, 1, 2, 3 };
	delta_rec(f, &p, over, sizeof(over));
	expect_reject(f, &f->dst, 1, p.b, p.n,
		      "page 2 at gpa 0x2000: zero-run stream writes past");
	/* skip 4097 alone */
	uint8_t over2[] = { 0x81, 0x20, 0x01, 9 };
	delta_rec(f, &p, over2, sizeof(over2));
	expect_reject(f, &f->dst, 1, p.b, p.n, "writes past byte 4096");
	/* two tokens that together pass the end */
	uint8_t over3[] = { 0xff, 0x1f, 0x01, 9, 0x00, 0x01, 9 };
	delta_rec(f, &p, over3, sizeof(over3));
	expect_reject(f, &f->dst, 1, p.b, p.n, "writes past byte 4096");
	uint8_t cut[] = { 0x00, 0x05, 1, 2 };
	delta_rec(f, &p, cut, sizeof(cut));
	expect_reject(f, &f->dst, 1, p.b, p.n, "literal cut short");
	uint8_t empty[] = { 0x00, 0x00 };
	delta_rec(f, &p, empty, sizeof(empty));
	expect_reject(f, &f->dst, 1, p.b, p.n, "empty literal");
	uint8_t longv[] = { 0x80, 0x80, 0x01, 0x01, 1 };
	delta_rec(f, &p, longv, sizeof(longv));
	expect_reject(f, &f->dst, 1, p.b, p.n, "overlong varint");
	uint8_t half[] = { 0x00 };
	delta_rec(f, &p, half, sizeof(half));
	expect_reject(f, &f->dst, 1, p.b, p.n, "truncated");
	/* Well formed, reaching exactly byte 4096, but a wrong hash. */
	uint8_t end[] = { 0xff, 0x1f, 0x01, 9 };
	delta_rec(f, &p, end, sizeof(end));
	expect_reject(f, &f->dst, 1, p.b, p.n, "does not match its hash");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_zero_page),
		T(test_raw_page),
		T(test_lz4_page),
		T(test_delta_page),
		T(test_delta_edges),
		T(test_unchanged_skipped),
		T(test_assume_zero),
		T(test_mixed_batch),
		T(test_shadow_agreement),
		T(test_bounded_output),
		T(test_encoder_misuse),
		T(test_abort_keeps_shadow),
		T(test_reset_forgets),
		T(test_delta_hash_mismatch),
		T(test_reject_batch),
		T(test_reject_gpa),
		T(test_reject_length),
		T(test_reject_coding),
		T(test_reject_lz4),
		T(test_reject_zero_run),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
