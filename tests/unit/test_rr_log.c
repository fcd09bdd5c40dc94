/*
 * Unit tests for the execution log's records (ft/record/rr_log.h): every
 * record kind through rr_buf, rr_seal and rr_decoder, raw and LZ4-sealed;
 * the register delta encoding carried across sections; and malformed
 * sections and records, each refused with -1 and a message naming the
 * record number and byte offset (or the section header field), never a
 * crash (this runs under ASan and UBSan), including random mutations and
 * every truncation of valid sections.
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
#include "ft/record/rr_log.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static void rnd_bytes(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rnd();
}

/* --- building sections by hand --- */

struct raw {
	uint8_t b[8192];
	size_t n;
};

static void raw_u8(struct raw *r, uint8_t v)
{
	assert_true(r->n < sizeof(r->b));
	r->b[r->n++] = v;
}

static void raw_varint(struct raw *r, uint64_t v)
{
	while (v >= 0x80) {
		raw_u8(r, (uint8_t)(v | 0x80));
		v >>= 7;
	}
	raw_u8(r, (uint8_t)v);
}

static void raw_bytes(struct raw *r, const void *p, size_t n)
{
	assert_true(r->n + n <= sizeof(r->b));
	memcpy(r->b + r->n, p, n);
	r->n += n;
}

/* A section payload around r's records: header fields given explicitly. */
static uint8_t *section(uint8_t flags, uint32_t raw_len, uint64_t first,
			uint64_t count, const void *recs, size_t n,
			size_t *len)
{
	uint8_t *p = calloc(1, RR_SEC_HEADER + n + 1);
	assert_non_null(p);
	p[0] = flags;
	le32_put(p + 4, raw_len);
	le64_put(p + 8, first);
	le64_put(p + 16, count);
	if (n)
		memcpy(p + RR_SEC_HEADER, recs, n);
	*len = RR_SEC_HEADER + n;
	return p;
}

/* An uncompressed section holding r's records, count of them. */
static uint8_t *raw_section(const struct raw *r, uint64_t count, size_t *len)
{
	return section(0, (uint32_t)r->n, 0, count, r->b, r->n, len);
}

/* Loads payload into a fresh decoder and reads every record: the result
 * of the first failing call (-1), or 0 when all decoded. e gets the
 * message. */
static int decode_all(const uint8_t *p, size_t len, struct kg_err *e,
		      uint64_t *nrecords)
{
	struct rr_decoder d;
	rr_decoder_init(&d);
	int rc = rr_decoder_load(&d, p, len, e);
	uint64_t n = 0;
	if (rc == 0) {
		struct rr_record r;
		while ((rc = rr_decoder_next(&d, &r, e)) == 1)
			n++;
	}
	rr_decoder_free(&d);
	if (nrecords)
		*nrecords = n;
	return rc;
}

/* Decoding p fails, and the message contains every one of the strings. */
static void expect_refused(const uint8_t *p, size_t len, const char *s1,
			   const char *s2, const char *s3)
{
	struct kg_err e = { 0 };
	int rc = decode_all(p, len, &e, NULL);
	if (rc != -1)
		fail_msg("decoded (rc %d), expected a refusal naming '%s'", rc,
			 s1);
	const char *want[] = { s1, s2, s3 };
	for (int i = 0; i < 3; i++)
		if (want[i] && !strstr(e.msg, want[i]))
			fail_msg("message '%s' lacks '%s'", e.msg, want[i]);
}

/* --- round trips --- */

static struct rr_exit *mk_exit(uint8_t type, uint8_t size, uint64_t addr,
			       uint32_t count, uint32_t len, bool hashed)
{
	static struct rr_exit x;
	memset(&x, 0, sizeof(x));
	x.type = type;
	x.size = size;
	x.addr = addr;
	x.count = count;
	x.len = len;
	x.hashed = hashed;
	rnd_bytes(x.data, len);
	for (unsigned i = 0; i < RR_NREGS; i++)
		x.regs[i] = rnd();
	return &x;
}

struct expect {
	uint8_t kind;
	struct rr_exit exit;
	uint64_t time;
	uint64_t gpa;
	uint32_t wlen;
	uint8_t wdata[512];
	uint8_t vector;
	struct rr_digest digest;
};

static void check_record(const struct rr_record *r, const struct expect *x)
{
	assert_int_equal(r->kind, x->kind);
	switch (x->kind) {
	case RR_EXIT: {
		const struct rr_exit *a = r->u.exit, *b = &x->exit;
		assert_int_equal(a->type, b->type);
		assert_int_equal(a->size, b->size);
		assert_int_equal(a->addr, b->addr);
		assert_int_equal(a->count, b->count);
		assert_int_equal(a->hashed, b->hashed);
		assert_int_equal(a->len, b->len);
		assert_memory_equal(a->regs, b->regs, sizeof(a->regs));
		if (b->len)
			assert_memory_equal(a->data, b->data, b->len);
		break;
	}
	case RR_TIME:
		assert_int_equal(r->u.time_delta, x->time);
		break;
	case RR_WRITE:
		assert_int_equal(r->u.write.gpa, x->gpa);
		assert_int_equal(r->u.write.len, x->wlen);
		assert_memory_equal(r->u.write.data, x->wdata, x->wlen);
		break;
	case RR_IRQ:
		assert_int_equal(r->u.vector, x->vector);
		break;
	case RR_DIGEST:
		assert_memory_equal(&r->u.digest, &x->digest,
				    sizeof(x->digest));
		break;
	default:
		fail_msg("unexpected kind %u", x->kind);
	}
}

/* Puts one record of a random kind (or of `kind` when not 0) into b and
 * describes it in x. compressible: data of zeros and small values. */
static void put_random(struct rr_buf *b, struct expect *x, uint8_t kind,
		       bool compressible)
{
	struct kg_err e;
	memset(x, 0, sizeof(*x));
	x->kind = kind ? kind : (uint8_t)(1 + rnd() % 5);
	switch (x->kind) {
	case RR_EXIT: {
		uint8_t type = (uint8_t)(rnd() % RR_EXIT_TYPES);
		uint32_t count = rnd() % 4 ? 1 : (uint32_t)(1 + rnd() % 64);
		uint8_t size = (uint8_t)(1u << (rnd() % 4));
		uint32_t len = type == RR_HLT ? 0 : size * count;
		bool hashed = false;
		if (rnd() % 8 == 0 && type != RR_HLT) {
			len = 4; /* an XXH32 of a longer write */
			hashed = true;
		}
		struct rr_exit *v = mk_exit(type, size,
					    compressible ? 0x3f8 : rnd(),
					    count, len, hashed);
		if (compressible) {
			memset(v->data, 0, len);
			for (unsigned i = 0; i < RR_NREGS; i++)
				v->regs[i] = i == RR_RIP ? 0x100000 + rnd() % 4
							 : 7;
		} else if (rnd() % 2) {
			/* Some registers as before: a partial mask. */
			for (unsigned i = 0; i < RR_NREGS; i++)
				if (rnd() % 2)
					v->regs[i] = b->prev_regs[i];
		}
		x->exit = *v;
		assert_int_equal(rr_put_exit(b, v, &e), 0);
		break;
	}
	case RR_TIME:
		x->time = compressible ? 1000 : rnd() >> (rnd() % 64);
		assert_int_equal(rr_put_time(b, x->time, &e), 0);
		break;
	case RR_WRITE:
		x->gpa = compressible ? 0x10000 : rnd();
		x->wlen = (uint32_t)(1 + rnd() % sizeof(x->wdata));
		if (!compressible)
			rnd_bytes(x->wdata, x->wlen);
		assert_int_equal(rr_put_write(b, x->gpa, x->wdata, x->wlen, &e),
				 0);
		break;
	case RR_IRQ:
		x->vector = (uint8_t)(32 + rnd() % 224);
		assert_int_equal(rr_put_irq(b, x->vector, &e), 0);
		break;
	case RR_DIGEST:
		x->digest.ram_hash = rnd();
		for (unsigned i = 0; i < RR_NREGS; i++)
			x->digest.regs[i] = compressible ? i : rnd();
		x->digest.cr0 = compressible ? 0x80050033 : rnd();
		x->digest.cr3 = rnd();
		x->digest.cr4 = compressible ? 0x6a0 : rnd();
		x->digest.efer = compressible ? 0xd01 : rnd();
		assert_int_equal(rr_put_digest(b, &x->digest, &e), 0);
		break;
	}
}

/* Decodes a sealed section with d (continuing its context) against xs. */
static void decode_expect(struct rr_decoder *d, const uint8_t *p, size_t len,
			  const struct expect *xs, size_t n)
{
	struct kg_err e = { 0 };
	if (rr_decoder_load(d, p, len, &e) < 0)
		fail_msg("load: %s", e.msg);
	struct rr_record r;
	for (size_t i = 0; i < n; i++) {
		int rc = rr_decoder_next(d, &r, &e);
		if (rc != 1)
			fail_msg("record %zu: rc %d: %s", i, rc, e.msg);
		check_record(&r, &xs[i]);
	}
	assert_int_equal(rr_decoder_next(d, &r, &e), 0);
	assert_int_equal(rr_decoder_next(d, &r, &e), 0); /* and stays 0 */
}

static void test_every_kind_raw(void **state)
{
	(void)state;
	struct rr_buf b = { 0 };
	struct kg_err e;
	static struct expect xs[16];
	size_t n = 0;
	/* Each kind, with edge values; random data so LZ4 cannot win. */
	struct rr_exit *v = mk_exit(RR_PIO_IN, 4, 0xee0, 1, 4, false);
	xs[n].kind = RR_EXIT, xs[n++].exit = *v;
	assert_int_equal(rr_put_exit(&b, v, &e), 0);
	v = mk_exit(RR_PIO_OUT, 1, 0x3f8, RR_DATA_MAX, RR_DATA_MAX, false);
	xs[n].kind = RR_EXIT, xs[n++].exit = *v;
	assert_int_equal(rr_put_exit(&b, v, &e), 0);
	v = mk_exit(RR_MMIO_WRITE, 8, UINT64_MAX, 1, 4, true);
	xs[n].kind = RR_EXIT, xs[n++].exit = *v;
	assert_int_equal(rr_put_exit(&b, v, &e), 0);
	v = mk_exit(RR_MMIO_READ, 2, 0xd0000000, 1, 2, false);
	xs[n].kind = RR_EXIT, xs[n++].exit = *v;
	assert_int_equal(rr_put_exit(&b, v, &e), 0);
	v = mk_exit(RR_HLT, 0, 0, 1, 0, false);
	memcpy(v->regs, xs[n - 1].exit.regs, sizeof(v->regs)); /* mask 0 */
	xs[n].kind = RR_EXIT, xs[n++].exit = *v;
	assert_int_equal(rr_put_exit(&b, v, &e), 0);
	uint64_t times[] = { 0, 1, 127, 128, UINT64_MAX };
	for (size_t i = 0; i < 5; i++) {
		xs[n].kind = RR_TIME, xs[n++].time = times[i];
		assert_int_equal(rr_put_time(&b, times[i], &e), 0);
	}
	xs[n].kind = RR_WRITE, xs[n].gpa = UINT64_MAX, xs[n].wlen = 1;
	xs[n].wdata[0] = 0xa5;
	assert_int_equal(rr_put_write(&b, UINT64_MAX, xs[n].wdata, 1, &e), 0);
	n++;
	xs[n].kind = RR_WRITE, xs[n].gpa = 0x1000, xs[n].wlen = 512;
	rnd_bytes(xs[n].wdata, 512);
	assert_int_equal(rr_put_write(&b, 0x1000, xs[n].wdata, 512, &e), 0);
	n++;
	xs[n].kind = RR_IRQ, xs[n++].vector = 32;
	assert_int_equal(rr_put_irq(&b, 32, &e), 0);
	xs[n].kind = RR_IRQ, xs[n++].vector = 255;
	assert_int_equal(rr_put_irq(&b, 255, &e), 0);
	put_random(&b, &xs[n++], RR_DIGEST, false);
	assert_int_equal(b.nrecords, n);

	uint8_t *p;
	size_t len;
	assert_int_equal(rr_seal(&b, 5, &p, &len, &e), 0);
	assert_int_equal(p[0], 0); /* not compressed */
	assert_int_equal(le64_get(p + 8), 0);
	assert_int_equal(le64_get(p + 16), n);
	assert_int_equal(len, RR_SEC_HEADER + le32_get(p + 4));
	/* Sealing empties the batch and moves its first exit on. */
	assert_int_equal(b.len, 0);
	assert_int_equal(b.nrecords, 0);
	assert_int_equal(b.first_exit, 5);

	struct rr_decoder d;
	rr_decoder_init(&d);
	decode_expect(&d, p, len, xs, n);
	assert_int_equal(d.exit_index, 5);
	rr_decoder_free(&d);
	free(p);
	rr_buf_free(&b);
}

static void test_every_kind_lz4(void **state)
{
	(void)state;
	struct rr_buf b = { 0 };
	struct kg_err e;
	size_t n = 3000, exits = 0;
	struct expect *xs = calloc(n, sizeof(*xs));
	assert_non_null(xs);
	for (size_t i = 0; i < n; i++) {
		put_random(&b, &xs[i], (uint8_t)(1 + i % 5), true);
		exits += xs[i].kind == RR_EXIT;
	}
	size_t raw = b.len;
	uint8_t *p;
	size_t len;
	assert_int_equal(rr_seal(&b, exits, &p, &len, &e), 0);
	assert_int_equal(p[0], RR_SEC_LZ4);
	assert_int_equal(le32_get(p + 4), raw);
	assert_true(len < RR_SEC_HEADER + raw / 2);
	struct rr_decoder d;
	rr_decoder_init(&d);
	decode_expect(&d, p, len, xs, n);
	assert_int_equal(d.exit_index, exits);
	rr_decoder_free(&d);
	free(p);
	rr_buf_free(&b);
	free(xs);
}

/* An empty batch seals to a header-only section that decodes to nothing:
 * one emptied by a previous seal, then one never used (its data NULL). */
static void test_empty_section(void **state)
{
	(void)state;
	struct kg_err e;
	uint8_t *p;
	size_t len;
	uint64_t got = 99;
	struct rr_buf used = { 0 };
	assert_int_equal(rr_put_irq(&used, 40, &e), 0);
	assert_int_equal(rr_seal(&used, 0, &p, &len, &e), 0);
	free(p);
	assert_int_equal(rr_seal(&used, 0, &p, &len, &e), 0);
	assert_int_equal(len, RR_SEC_HEADER);
	assert_int_equal(decode_all(p, len, &e, &got), 0);
	assert_int_equal(got, 0);
	free(p);
	rr_buf_free(&used);

	struct rr_buf b = { 0 };
	assert_int_equal(rr_seal(&b, 0, &p, &len, &e), 0);
	assert_int_equal(len, RR_SEC_HEADER);
	assert_int_equal(p[0], 0);
	got = 99;
	assert_int_equal(decode_all(p, len, &e, &got), 0);
	assert_int_equal(got, 0);
	free(p);
	rr_buf_free(&b);
}

/* Many sections, random records, raw and compressed mixed: one decoder
 * reads them in order with the register context carried across. */
static void test_many_sections(void **state)
{
	(void)state;
	struct rr_buf b = { 0 };
	struct rr_decoder d;
	struct kg_err e;
	rr_decoder_init(&d);
	uint64_t exits = 0;
	bool seen_raw = false, seen_lz4 = false;
	static struct expect xs[400];
	for (int s = 0; s < 40; s++) {
		size_t n = rnd() % 400;
		bool comp = s % 2;
		for (size_t i = 0; i < n; i++) {
			put_random(&b, &xs[i], 0, comp);
			exits += xs[i].kind == RR_EXIT;
		}
		uint8_t *p;
		size_t len;
		assert_int_equal(rr_seal(&b, exits, &p, &len, &e), 0);
		if (n > 20 && p[0])
			seen_lz4 = true;
		else if (n > 20)
			seen_raw = true;
		decode_expect(&d, p, len, xs, n);
		assert_int_equal(d.exit_index, exits);
		free(p);
	}
	assert_true(seen_raw && seen_lz4);
	rr_decoder_free(&d);
	rr_buf_free(&b);
}

/* Registers are XOR deltas against the previous EXIT, also across
 * sections: an exit with the same registers costs a 0 mask, and only a
 * decoder that read the previous section gets them right. */
static void test_register_delta_across_sections(void **state)
{
	(void)state;
	struct rr_buf b = { 0 };
	struct kg_err e;
	struct rr_exit x1 = { .type = RR_PIO_OUT, .size = 1, .addr = 0x3f8,
			      .count = 1, .len = 1, .data = { 'a' } };
	for (unsigned i = 0; i < RR_NREGS; i++)
		x1.regs[i] = 0x1111111111111111ull * (i + 1);
	assert_int_equal(rr_put_exit(&b, &x1, &e), 0);
	/* Every register set, each > 7 bits of delta from 0. */
	size_t full = b.len;
	assert_true(full > 3 + 2 + 1 + 3 + RR_NREGS * 8);
	uint8_t *p1, *p2, *p3;
	size_t l1, l2, l3;
	assert_int_equal(rr_seal(&b, 1, &p1, &l1, &e), 0);

	/* Section 2: the same registers (mask 0), then one changed. */
	struct rr_exit x2 = x1;
	x2.data[0] = 'b';
	assert_int_equal(rr_put_exit(&b, &x2, &e), 0);
	/* kind, type, size, addr (2), count, mask, len, data */
	assert_int_equal(b.len, 1 + 1 + 1 + 2 + 1 + 1 + 1 + 1);
	size_t before = b.len;
	struct rr_exit x3 = x2;
	x3.regs[RR_RIP] ^= 0x5;
	assert_int_equal(rr_put_exit(&b, &x3, &e), 0);
	assert_int_equal(b.len - before, 1 + 1 + 1 + 2 + 1 + 3 + 1 + 1 + 1);
	assert_int_equal(rr_seal(&b, 3, &p2, &l2, &e), 0);
	assert_int_equal(le64_get(p2 + 8), 1);

	/* Section 3: back to x1's rip, one register cleared. */
	struct rr_exit x4 = x1;
	x4.regs[RR_RAX] = 0;
	assert_int_equal(rr_put_exit(&b, &x4, &e), 0);
	assert_int_equal(rr_seal(&b, 4, &p3, &l3, &e), 0);

	struct rr_decoder d;
	rr_decoder_init(&d);
	struct rr_record r;
	assert_int_equal(rr_decoder_load(&d, p1, l1, &e), 0);
	assert_int_equal(rr_decoder_next(&d, &r, &e), 1);
	assert_memory_equal(r.u.exit->regs, x1.regs, sizeof(x1.regs));
	assert_int_equal(rr_decoder_next(&d, &r, &e), 0);
	assert_int_equal(rr_decoder_load(&d, p2, l2, &e), 0);
	assert_int_equal(rr_decoder_next(&d, &r, &e), 1);
	assert_memory_equal(r.u.exit->regs, x2.regs, sizeof(x2.regs));
	assert_int_equal(r.u.exit->data[0], 'b');
	assert_int_equal(rr_decoder_next(&d, &r, &e), 1);
	assert_memory_equal(r.u.exit->regs, x3.regs, sizeof(x3.regs));
	assert_int_equal(rr_decoder_next(&d, &r, &e), 0);
	assert_int_equal(rr_decoder_load(&d, p3, l3, &e), 0);
	assert_int_equal(rr_decoder_next(&d, &r, &e), 1);
	assert_memory_equal(r.u.exit->regs, x4.regs, sizeof(x4.regs));
	assert_int_equal(d.exit_index, 4);
	rr_decoder_free(&d);

	/* Sections skipped or repeated: refused by the first-exit check. */
	rr_decoder_init(&d);
	assert_int_equal(rr_decoder_load(&d, p2, l2, &e), -1);
	assert_non_null(strstr(e.msg, "starts at exit 1, expected 0"));
	assert_int_equal(rr_decoder_load(&d, p1, l1, &e), 0);
	assert_int_equal(rr_decoder_next(&d, &r, &e), 1);
	assert_int_equal(rr_decoder_next(&d, &r, &e), 0);
	assert_int_equal(rr_decoder_load(&d, p3, l3, &e), -1);
	assert_non_null(strstr(e.msg, "starts at exit 3, expected 1"));
	assert_int_equal(rr_decoder_load(&d, p1, l1, &e), -1);
	assert_non_null(strstr(e.msg, "starts at exit 0, expected 1"));
	rr_decoder_free(&d);

	/* The next section loaded before this one's records are read. */
	rr_decoder_init(&d);
	assert_int_equal(rr_decoder_load(&d, p1, l1, &e), 0);
	assert_int_equal(rr_decoder_load(&d, p2, l2, &e), -1);
	assert_non_null(strstr(e.msg, "unread"));
	rr_decoder_free(&d);
	free(p1);
	free(p2);
	free(p3);
	rr_buf_free(&b);
}

static void test_encoder_limits(void **state)
{
	(void)state;
	struct rr_buf b = { 0 };
	struct kg_err e = { 0 };
	struct rr_exit *x = mk_exit(RR_PIO_OUT, 1, 0x3f8, 1, 1, false);
	x->len = RR_DATA_MAX + 1;
	assert_int_equal(rr_put_exit(&b, x, &e), -1);
	assert_non_null(strstr(e.msg, "exit data"));
	assert_int_equal(rr_put_write(&b, 0, "", RR_WRITE_MAX + 1, &e), -1);
	assert_non_null(strstr(e.msg, "device write"));
	assert_int_equal(b.nrecords, 0);
	assert_int_equal(b.len, 0);
	rr_buf_free(&b);
}

/* --- malformed sections --- */

static void test_bad_section_header(void **state)
{
	(void)state;
	struct raw r = { .n = 0 };
	raw_u8(&r, RR_IRQ);
	raw_u8(&r, 40);
	size_t len;
	uint8_t *p;
	struct kg_err e;

	p = section(0, 2, 0, 1, r.b, r.n, &len);
	assert_int_equal(decode_all(p, len, &e, NULL), 0);
	free(p);
	/* Shorter than the header (every length below it). */
	p = section(0, 2, 0, 1, r.b, r.n, &len);
	for (size_t n = 0; n < RR_SEC_HEADER; n++)
		expect_refused(p, n, "shorter than its header", NULL, NULL);
	free(p);
	/* Unknown flags, reserved bytes set. */
	p = section(0x02, 2, 0, 1, r.b, r.n, &len);
	expect_refused(p, len, "flags 0x2", NULL, NULL);
	free(p);
	p = section(0x80 | RR_SEC_LZ4, 2, 0, 1, r.b, r.n, &len);
	expect_refused(p, len, "flags", NULL, NULL);
	free(p);
	for (int i = 1; i < 4; i++) {
		p = section(0, 2, 0, 1, r.b, r.n, &len);
		p[i] = 1;
		expect_refused(p, len, "flags", NULL, NULL);
		free(p);
	}
	/* Raw length over the limit, count over the raw length. */
	p = section(0, RR_SEC_MAX_RAW + 1, 0, 1, r.b, r.n, &len);
	expect_refused(p, len, "records in", NULL, NULL);
	free(p);
	p = section(0, 2, 0, 3, r.b, r.n, &len);
	expect_refused(p, len, "3 records in 2 bytes", NULL, NULL);
	free(p);
	p = section(0, 2, 0, UINT64_MAX, r.b, r.n, &len);
	expect_refused(p, len, "records in 2 bytes", NULL, NULL);
	free(p);
	/* Raw: the header's length is not the bytes present. */
	p = section(0, 3, 0, 1, r.b, r.n, &len);
	expect_refused(p, len, "2 bytes of records, header says 3", NULL,
		       NULL);
	free(p);
	p = section(0, 1, 0, 1, r.b, r.n, &len);
	expect_refused(p, len, "header says 1", NULL, NULL);
	free(p);
	/* The first section must start at exit 0. */
	p = section(0, 2, 7, 1, r.b, r.n, &len);
	expect_refused(p, len, "starts at exit 7, expected 0", NULL, NULL);
	free(p);
}

static void test_lz4_garbage(void **state)
{
	(void)state;
	uint8_t junk[600];
	size_t len;
	uint8_t *p;
	for (int i = 0; i < 200; i++) {
		size_t n = 1 + rnd() % sizeof(junk);
		rnd_bytes(junk, n);
		uint32_t raw_len = (uint32_t)(rnd() % 4096);
		p = section(RR_SEC_LZ4, raw_len, 0, 0, junk, n, &len);
		struct kg_err e = { 0 };
		int rc = decode_all(p, len, &e, NULL);
		/* Junk that happens to decompress to raw_len bytes of records
		 * with count 0 must then be refused as trailing bytes. */
		if (raw_len)
			assert_int_equal(rc, -1);
		if (rc == -1)
			assert_true(e.msg[0]);
		free(p);
	}
	/* Valid LZ4 of other length than the header says. */
	uint8_t recs[300], comp[400];
	memset(recs, 0, sizeof(recs));
	for (size_t i = 0; i < sizeof(recs); i += 2)
		recs[i] = RR_IRQ, recs[i + 1] = 64;
	int c = LZ4_compress_default((const char *)recs, (char *)comp,
				     sizeof(recs), sizeof(comp));
	assert_true(c > 0);
	p = section(RR_SEC_LZ4, sizeof(recs) + 1, 0, 150, comp, (size_t)c,
		    &len);
	expect_refused(p, len, "LZ4", "301 bytes", NULL);
	free(p);
	p = section(RR_SEC_LZ4, sizeof(recs) - 1, 0, 149, comp, (size_t)c,
		    &len);
	expect_refused(p, len, "LZ4", NULL, NULL);
	free(p);
	p = section(RR_SEC_LZ4, sizeof(recs), 0, 150, comp, (size_t)c, &len);
	struct kg_err e;
	uint64_t got;
	assert_int_equal(decode_all(p, len, &e, &got), 0);
	assert_int_equal(got, 150);
	/* Cut compressed data. */
	expect_refused(p, len - 1, "LZ4", NULL, NULL);
	free(p);
}

/* --- malformed records --- */

/* Decodes r (count records) and expects a failure at record `rec`, byte
 * `at`, with `what` in the message. */
static void expect_bad_record(const struct raw *r, uint64_t count,
			      unsigned rec, size_t at, const char *what)
{
	char where[96];
	snprintf(where, sizeof(where), "execution log record %u (at byte %zu "
		 "of its section's records", rec, at);
	size_t len;
	uint8_t *p = raw_section(r, count, &len);
	expect_refused(p, len, where, what, NULL);
	free(p);
}

/* Two good records (IRQ at byte 0, TIME at byte 2, 3 bytes), then the
 * record under test at byte 5. */
static void prefix(struct raw *r)
{
	r->n = 0;
	raw_u8(r, RR_IRQ);
	raw_u8(r, 33);
	raw_u8(r, RR_TIME);
	raw_varint(r, 300);
}

/* A well-formed EXIT header up to the mask. */
static void exit_head(struct raw *r, uint8_t type, uint8_t size,
		      uint64_t count, uint64_t mask)
{
	raw_u8(r, RR_EXIT);
	raw_u8(r, type);
	raw_u8(r, size);
	raw_varint(r, 0x3f8);
	raw_varint(r, count);
	raw_varint(r, mask);
}

static void test_bad_kind(void **state)
{
	(void)state;
	struct raw r;
	uint8_t kinds[] = { 0, 6, 0x7f, 0x80, 0xff };
	for (size_t i = 0; i < sizeof(kinds); i++) {
		prefix(&r);
		raw_u8(&r, kinds[i]);
		raw_u8(&r, 0);
		expect_bad_record(&r, 3, 2, 5, "unknown record kind");
		r.n = 0;
		raw_u8(&r, kinds[i]);
		expect_bad_record(&r, 1, 0, 0, "unknown record kind");
	}
}

static void test_truncated_varint(void **state)
{
	(void)state;
	struct raw r;
	/* TIME whose varint never ends. */
	prefix(&r);
	raw_u8(&r, RR_TIME);
	raw_u8(&r, 0x80);
	raw_u8(&r, 0xff);
	expect_bad_record(&r, 3, 2, 5, "time record cut short");
	/* More than 64 bits. */
	prefix(&r);
	raw_u8(&r, RR_TIME);
	for (int i = 0; i < 9; i++)
		raw_u8(&r, 0xff);
	raw_u8(&r, 0x02); /* bit 64 */
	expect_bad_record(&r, 3, 2, 5, "time record cut short");
	prefix(&r);
	raw_u8(&r, RR_TIME);
	for (int i = 0; i < 12; i++)
		raw_u8(&r, 0x80);
	raw_u8(&r, 0);
	expect_bad_record(&r, 3, 2, 5, "time record cut short");
	/* The largest value is fine: 9 x 0xff then 0x01. */
	prefix(&r);
	raw_u8(&r, RR_TIME);
	for (int i = 0; i < 9; i++)
		raw_u8(&r, 0xff);
	raw_u8(&r, 0x01);
	size_t len;
	uint8_t *p = raw_section(&r, 3, &len);
	struct rr_decoder d;
	struct rr_record rec;
	struct kg_err e;
	rr_decoder_init(&d);
	assert_int_equal(rr_decoder_load(&d, p, len, &e), 0);
	assert_int_equal(rr_decoder_next(&d, &rec, &e), 1);
	assert_int_equal(rr_decoder_next(&d, &rec, &e), 1);
	assert_int_equal(rr_decoder_next(&d, &rec, &e), 1);
	assert_int_equal(rec.u.time_delta, UINT64_MAX);
	assert_int_equal(rr_decoder_next(&d, &rec, &e), 0);
	rr_decoder_free(&d);
	free(p);
	/* WRITE: gpa cut, length cut. */
	prefix(&r);
	raw_u8(&r, RR_WRITE);
	raw_u8(&r, 0x81);
	expect_bad_record(&r, 3, 2, 5, "write record cut short");
	prefix(&r);
	raw_u8(&r, RR_WRITE);
	raw_varint(&r, 0x1000);
	expect_bad_record(&r, 3, 2, 5, "write record cut short");
	/* EXIT cut in each field. */
	for (int cut = 1; cut <= 5; cut++) {
		struct raw full;
		prefix(&full);
		exit_head(&full, RR_PIO_OUT, 1, 1, 0);
		prefix(&r);
		raw_bytes(&r, full.b + 5, (size_t)cut);
		if (cut == 4) /* inside the two-byte addr varint */
			r.b[r.n - 1] |= 0x80;
		expect_bad_record(&r, 3, 2, 5, "exit record cut short");
	}
	/* Registers cut: mask says two, one present. */
	prefix(&r);
	exit_head(&r, RR_PIO_OUT, 1, 1, 0x3);
	raw_varint(&r, 5);
	expect_bad_record(&r, 3, 2, 5, "exit registers cut short");
	/* IRQ without its vector, DIGEST short of its fixed width. */
	prefix(&r);
	raw_u8(&r, RR_IRQ);
	expect_bad_record(&r, 3, 2, 5, "irq record cut short");
	prefix(&r);
	raw_u8(&r, RR_DIGEST);
	uint8_t zeros[8 * (1 + RR_NREGS + 4)] = { 0 };
	raw_bytes(&r, zeros, sizeof(zeros) - 1);
	expect_bad_record(&r, 3, 2, 5, "digest record cut short");
	raw_u8(&r, 0);
	size_t l2;
	uint8_t *p2 = raw_section(&r, 3, &l2);
	assert_int_equal(decode_all(p2, l2, &e, NULL), 0);
	free(p2);
}

static void test_bad_lengths(void **state)
{
	(void)state;
	struct raw r;
	/* WRITE of 0 bytes, of more than present, over the limit. */
	prefix(&r);
	raw_u8(&r, RR_WRITE);
	raw_varint(&r, 0x1000);
	raw_varint(&r, 0);
	expect_bad_record(&r, 3, 2, 5, "write length out of range");
	prefix(&r);
	raw_u8(&r, RR_WRITE);
	raw_varint(&r, 0x1000);
	raw_varint(&r, 10);
	raw_bytes(&r, "123456789", 9);
	expect_bad_record(&r, 3, 2, 5, "write length out of range");
	prefix(&r);
	raw_u8(&r, RR_WRITE);
	raw_varint(&r, 0x1000);
	raw_varint(&r, (uint64_t)RR_WRITE_MAX + 1);
	expect_bad_record(&r, 3, 2, 5, "write length out of range");
	prefix(&r);
	raw_u8(&r, RR_WRITE);
	raw_varint(&r, 0x1000);
	raw_varint(&r, UINT64_MAX);
	expect_bad_record(&r, 3, 2, 5, "write length out of range");
	/* EXIT data longer than present, than RR_DATA_MAX. */
	prefix(&r);
	exit_head(&r, RR_PIO_IN, 4, 1, 0);
	raw_varint(&r, 4);
	raw_bytes(&r, "abc", 3);
	expect_bad_record(&r, 3, 2, 5, "exit data length out of range");
	prefix(&r);
	exit_head(&r, RR_PIO_IN, 4, 1, 0);
	raw_varint(&r, RR_DATA_MAX + 1);
	expect_bad_record(&r, 3, 2, 5, "exit data length out of range");
	prefix(&r);
	exit_head(&r, RR_PIO_IN, 4, 1, 0);
	raw_varint(&r, UINT64_MAX);
	expect_bad_record(&r, 3, 2, 5, "exit data length out of range");
	/* EXIT fields out of range. */
	prefix(&r);
	exit_head(&r, RR_EXIT_TYPES, 1, 1, 0);
	raw_varint(&r, 0);
	expect_bad_record(&r, 3, 2, 5, "unknown exit type");
	prefix(&r);
	exit_head(&r, 0x7f, 1, 1, 0);
	raw_varint(&r, 0);
	expect_bad_record(&r, 3, 2, 5, "unknown exit type");
	prefix(&r);
	exit_head(&r, RR_PIO_OUT, 9, 1, 0);
	raw_varint(&r, 0);
	expect_bad_record(&r, 3, 2, 5, "out of range");
	prefix(&r);
	exit_head(&r, RR_PIO_OUT, 1, 0, 0);
	raw_varint(&r, 0);
	expect_bad_record(&r, 3, 2, 5, "out of range");
	prefix(&r);
	exit_head(&r, RR_PIO_OUT, 1, RR_DATA_MAX + 1, 0);
	raw_varint(&r, 0);
	expect_bad_record(&r, 3, 2, 5, "out of range");
	prefix(&r);
	exit_head(&r, RR_PIO_OUT, 1, 1, 1u << RR_NREGS);
	raw_varint(&r, 0);
	expect_bad_record(&r, 3, 2, 5, "register mask out of range");
	prefix(&r);
	exit_head(&r, RR_PIO_OUT, 1, 1, UINT64_MAX);
	raw_varint(&r, 0);
	expect_bad_record(&r, 3, 2, 5, "register mask out of range");
	/* IRQ vector below 32. */
	prefix(&r);
	raw_u8(&r, RR_IRQ);
	raw_u8(&r, 31);
	expect_bad_record(&r, 3, 2, 5, "vector below 32");
	/* Fewer records than the count; bytes after the last one. */
	prefix(&r);
	expect_bad_record(&r, 3, 2, 5, "records end before the count says");
	prefix(&r);
	raw_u8(&r, RR_IRQ);
	raw_u8(&r, 40);
	expect_bad_record(&r, 2, 2, 5, "bytes after the last record");
}

/* The message names the exit the decoder was near: after two EXITs, a bad
 * record reports exit 2 (of section-local numbering plus first_exit). */
static void test_message_names_exit(void **state)
{
	(void)state;
	struct raw r = { .n = 0 };
	for (int i = 0; i < 2; i++) {
		exit_head(&r, RR_PIO_OUT, 1, 1, 0);
		raw_varint(&r, 1);
		raw_u8(&r, 'x');
	}
	size_t at = r.n;
	raw_u8(&r, 0x42);
	size_t len;
	uint8_t *p = raw_section(&r, 3, &len);
	char where[128];
	snprintf(where, sizeof(where), "execution log record 2 (at byte %zu of "
		 "its section's records, near exit 2)", at);
	expect_refused(p, len, where, "unknown record kind", NULL);
	free(p);
}

/* --- robustness --- */

static uint8_t *valid_section(bool compressible, size_t *len, size_t *n)
{
	struct rr_buf b = { 0 };
	struct kg_err e;
	static struct expect x;
	*n = 50 + rnd() % 200;
	uint64_t exits = 0;
	for (size_t i = 0; i < *n; i++) {
		put_random(&b, &x, 0, compressible);
		exits += x.kind == RR_EXIT;
	}
	uint8_t *p;
	assert_int_equal(rr_seal(&b, exits, &p, len, &e), 0);
	rr_buf_free(&b);
	return p;
}

/* A valid section sealed raw (lz4 false) or compressed (true). */
static uint8_t *valid_section_as(bool lz4, size_t *len, size_t *n)
{
	for (int tries = 0; tries < 50; tries++) {
		uint8_t *p = valid_section(lz4, len, n);
		if ((p[0] == RR_SEC_LZ4) == lz4)
			return p;
		free(p);
	}
	fail_msg("no %s section in 50 tries", lz4 ? "compressed" : "raw");
	return NULL;
}

/* Every truncation of a valid section is refused (raw: the header's
 * length; LZ4: the block), with a message. */
static void test_every_truncation(void **state)
{
	(void)state;
	for (int comp = 0; comp < 2; comp++) {
		size_t len, n;
		uint8_t *p = valid_section_as(comp, &len, &n);
		for (size_t cut = 0; cut < len; cut++) {
			/* A copy of exactly cut bytes: ASan sees overreads. */
			uint8_t *q = malloc(cut ? cut : 1);
			assert_non_null(q);
			memcpy(q, p, cut);
			struct kg_err e = { 0 };
			if (decode_all(q, cut, &e, NULL) != -1)
				fail_msg("a section cut at %zu of %zu bytes "
					 "decoded", cut, len);
			assert_true(e.msg[0]);
			free(q);
		}
		free(p);
	}
}

/* Random byte changes in valid sections (header fields included, raw
 * lengths adjusted so the records get parsed): refused or decoded, never
 * a crash, every refusal with a message. */
static void test_random_mutations(void **state)
{
	(void)state;
	int refused = 0;
	for (int round = 0; round < 3000; round++) {
		bool comp = round % 3 == 0;
		size_t len, n;
		uint8_t *p = valid_section(comp, &len, &n);
		int flips = 1 + (int)(rnd() % 4);
		for (int f = 0; f < flips; f++) {
			size_t at = rnd() % 5 ? RR_SEC_HEADER +
							rnd() % (len - RR_SEC_HEADER)
					      : rnd() % len;
			p[at] ^= (uint8_t)(1u << (rnd() % 8));
		}
		uint8_t *q = malloc(len);
		assert_non_null(q);
		memcpy(q, p, len);
		struct kg_err e = { 0 };
		int rc = decode_all(q, len, &e, NULL);
		if (rc == -1) {
			refused++;
			assert_true(e.msg[0]);
		} else {
			assert_int_equal(rc, 0);
		}
		free(q);
		free(p);
	}
	/* Most single-bit changes in a record stream break it somewhere. */
	assert_true(refused > 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_kind_raw),
		cmocka_unit_test(test_every_kind_lz4),
		cmocka_unit_test(test_many_sections),
		cmocka_unit_test(test_register_delta_across_sections),
		cmocka_unit_test(test_encoder_limits),
		cmocka_unit_test(test_bad_section_header),
		cmocka_unit_test(test_lz4_garbage),
		cmocka_unit_test(test_bad_kind),
		cmocka_unit_test(test_truncated_varint),
		cmocka_unit_test(test_bad_lengths),
		cmocka_unit_test(test_message_names_exit),
		cmocka_unit_test(test_every_truncation),
		cmocka_unit_test(test_random_mutations),
		/* Last: rr_seal of a never-used batch memcpy's from NULL
		 * (UBSan stops the binary there). */
		cmocka_unit_test(test_empty_section),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
