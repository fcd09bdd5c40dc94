/* The execution log's records: encoding and validated decoding (pure). */
#include "rr_log.h"

#include <lz4.h>
#include <stdlib.h>
#include <string.h>

#include "base/le.h"

static const char *const kind_names[] = {
	[RR_EXIT] = "exit", [RR_TIME] = "time", [RR_WRITE] = "write",
	[RR_IRQ] = "irq", [RR_DIGEST] = "digest",
};
static const char *const type_names[RR_EXIT_TYPES] = {
	[RR_PIO_IN] = "port read", [RR_PIO_OUT] = "port write",
	[RR_MMIO_READ] = "MMIO read", [RR_MMIO_WRITE] = "MMIO write",
	[RR_HLT] = "HLT",
};
static const char *const reg_names[RR_NREGS] = {
	"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9",
	"r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags",
};

const char *rr_kind_name(unsigned kind)
{
	return kind < sizeof(kind_names) / sizeof(kind_names[0]) &&
			       kind_names[kind]
		       ? kind_names[kind]
		       : "unknown";
}

const char *rr_exit_type_name(unsigned type)
{
	return type < RR_EXIT_TYPES ? type_names[type] : "unknown";
}

const char *rr_reg_name(unsigned reg)
{
	return reg < RR_NREGS ? reg_names[reg] : "?";
}

/* --- encoding --- */

void rr_buf_free(struct rr_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

static int reserve(struct rr_buf *b, size_t n, struct kg_err *e)
{
	if (b->len + n <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + n)
		cap *= 2;
	uint8_t *p = realloc(b->data, cap);
	if (!p)
		return kg_errf(e, "execution log: out of memory");
	b->data = p;
	b->cap = cap;
	return 0;
}

/* Callers reserve first: at most 10 bytes. */
static void put_varint(struct rr_buf *b, uint64_t v)
{
	while (v >= 0x80) {
		b->data[b->len++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	b->data[b->len++] = (uint8_t)v;
}

static void put_bytes(struct rr_buf *b, const void *p, size_t n)
{
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

int rr_put_exit(struct rr_buf *b, const struct rr_exit *x, struct kg_err *e)
{
	if (x->len > RR_DATA_MAX)
		return kg_errf(e, "execution log: exit data of %u bytes",
			       x->len);
	if (reserve(b, 3 + 10 * 4 + 10 * RR_NREGS + (size_t)x->len, e) < 0)
		return -1;
	b->data[b->len++] = RR_EXIT;
	b->data[b->len++] = (uint8_t)(x->type | (x->hashed ? 0x80 : 0));
	b->data[b->len++] = x->size;
	put_varint(b, x->addr);
	put_varint(b, x->count);
	uint32_t mask = 0;
	for (unsigned i = 0; i < RR_NREGS; i++)
		if (x->regs[i] != b->prev_regs[i])
			mask |= 1u << i;
	put_varint(b, mask);
	for (unsigned i = 0; i < RR_NREGS; i++)
		if (mask & (1u << i)) {
			put_varint(b, x->regs[i] ^ b->prev_regs[i]);
			b->prev_regs[i] = x->regs[i];
		}
	put_varint(b, x->len);
	put_bytes(b, x->data, x->len);
	b->nrecords++;
	return 0;
}

int rr_put_time(struct rr_buf *b, uint64_t delta_ns, struct kg_err *e)
{
	if (reserve(b, 11, e) < 0)
		return -1;
	b->data[b->len++] = RR_TIME;
	put_varint(b, delta_ns);
	b->nrecords++;
	return 0;
}

int rr_put_write(struct rr_buf *b, uint64_t gpa, const void *data,
		 uint32_t len, struct kg_err *e)
{
	if (len > RR_WRITE_MAX)
		return kg_errf(e, "execution log: device write of %u bytes",
			       len);
	if (reserve(b, 21 + (size_t)len, e) < 0)
		return -1;
	b->data[b->len++] = RR_WRITE;
	put_varint(b, gpa);
	put_varint(b, len);
	put_bytes(b, data, len);
	b->nrecords++;
	return 0;
}

int rr_put_irq(struct rr_buf *b, uint8_t vector, struct kg_err *e)
{
	if (reserve(b, 2, e) < 0)
		return -1;
	b->data[b->len++] = RR_IRQ;
	b->data[b->len++] = vector;
	b->nrecords++;
	return 0;
}

int rr_put_digest(struct rr_buf *b, const struct rr_digest *d,
		  struct kg_err *e)
{
	if (reserve(b, 1 + 8 * (1 + RR_NREGS + 4), e) < 0)
		return -1;
	b->data[b->len++] = RR_DIGEST;
	uint64_t v[1 + RR_NREGS + 4];
	v[0] = d->ram_hash;
	memcpy(&v[1], d->regs, sizeof(d->regs));
	v[1 + RR_NREGS] = d->cr0;
	v[2 + RR_NREGS] = d->cr3;
	v[3 + RR_NREGS] = d->cr4;
	v[4 + RR_NREGS] = d->efer;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		le64_put(b->data + b->len, v[i]);
		b->len += 8;
	}
	b->nrecords++;
	return 0;
}

int rr_seal(struct rr_buf *b, uint64_t next_first_exit, uint8_t **out,
	    size_t *out_len, struct kg_err *e)
{
	if (b->len > RR_SEC_MAX_RAW)
		return kg_errf(e, "execution log: batch of %zu bytes", b->len);
	int bound = LZ4_compressBound((int)b->len);
	uint8_t *p = malloc(RR_SEC_HEADER + (size_t)bound + b->len);
	if (!p)
		return kg_errf(e, "execution log: out of memory");
	int c = b->len ? LZ4_compress_default((const char *)b->data,
					      (char *)p + RR_SEC_HEADER,
					      (int)b->len, bound)
		       : 0;
	bool lz4 = c > 0 && (size_t)c < b->len;
	if (!lz4 && b->len)
		memcpy(p + RR_SEC_HEADER, b->data, b->len);
	memset(p, 0, 4);
	p[0] = lz4 ? RR_SEC_LZ4 : 0;
	le32_put(p + 4, (uint32_t)b->len);
	le64_put(p + 8, b->first_exit);
	le64_put(p + 16, b->nrecords);
	*out = p;
	*out_len = RR_SEC_HEADER + (lz4 ? (size_t)c : b->len);
	b->len = 0;
	b->nrecords = 0;
	b->first_exit = next_first_exit;
	return 0;
}

/* --- decoding --- */

void rr_decoder_init(struct rr_decoder *d)
{
	memset(d, 0, sizeof(*d));
}

void rr_decoder_free(struct rr_decoder *d)
{
	free(d->raw);
	d->raw = NULL;
}

int rr_decoder_load(struct rr_decoder *d, const uint8_t *payload, size_t len,
		    struct kg_err *e)
{
	if (d->done < d->nrecords)
		return kg_errf(e, "execution log: %llu records of the previous "
			       "section unread",
			       (unsigned long long)(d->nrecords - d->done));
	if (len < RR_SEC_HEADER)
		return kg_errf(e, "execution log section of %zu bytes: shorter "
			       "than its header", len);
	uint8_t flags = payload[0];
	uint32_t raw_len = le32_get(payload + 4);
	uint64_t first = le64_get(payload + 8), n = le64_get(payload + 16);
	if (flags & ~RR_SEC_LZ4 || payload[1] || payload[2] || payload[3])
		return kg_errf(e, "execution log: unknown section flags 0x%x",
			       flags);
	if (raw_len > RR_SEC_MAX_RAW || n > raw_len)
		return kg_errf(e, "execution log: %llu records in %u bytes",
			       (unsigned long long)n, raw_len);
	if (first != d->exit_index)
		return kg_errf(e, "execution log: section starts at exit %llu, "
			       "expected %llu (a section is missing or "
			       "repeated)", (unsigned long long)first,
			       (unsigned long long)d->exit_index);
	uint8_t *raw = malloc(raw_len ? raw_len : 1);
	if (!raw)
		return kg_errf(e, "execution log: out of memory");
	const char *src = (const char *)payload + RR_SEC_HEADER;
	size_t clen = len - RR_SEC_HEADER;
	if (flags & RR_SEC_LZ4) {
		int got = LZ4_decompress_safe(src, (char *)raw, (int)clen,
					      (int)raw_len);
		if (got < 0 || (uint32_t)got != raw_len) {
			free(raw);
			return kg_errf(e, "execution log: LZ4 data does not "
				       "decompress to %u bytes", raw_len);
		}
	} else if (clen != raw_len) {
		free(raw);
		return kg_errf(e, "execution log: %zu bytes of records, header "
			       "says %u", clen, raw_len);
	} else {
		memcpy(raw, src, raw_len);
	}
	free(d->raw);
	d->raw = raw;
	d->raw_len = raw_len;
	d->pos = 0;
	d->nrecords = n;
	d->done = 0;
	d->first_exit = first;
	return 0;
}

static int get_u8(struct rr_decoder *d, uint8_t *v)
{
	if (d->pos >= d->raw_len)
		return -1;
	*v = d->raw[d->pos++];
	return 0;
}

static int get_varint(struct rr_decoder *d, uint64_t *v)
{
	uint64_t r = 0;
	for (unsigned shift = 0; shift < 70; shift += 7) {
		uint8_t b;
		if (get_u8(d, &b) < 0)
			return -1;
		if (shift == 63 && b > 1)
			return -1;
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -1;
}

static int bad(struct rr_decoder *d, size_t at, struct kg_err *e,
	       const char *what)
{
	return kg_errf(e, "execution log record %llu (at byte %zu of its "
		       "section's records, near exit %llu): %s",
		       (unsigned long long)d->done, at,
		       (unsigned long long)d->exit_index, what);
}

static int get_exit(struct rr_decoder *d, size_t at, struct kg_err *e)
{
	struct rr_exit *x = &d->exit;
	uint8_t type, size;
	uint64_t count, mask, len;
	if (get_u8(d, &type) < 0 || get_u8(d, &size) < 0 ||
	    get_varint(d, &x->addr) < 0 || get_varint(d, &count) < 0 ||
	    get_varint(d, &mask) < 0)
		return bad(d, at, e, "exit record cut short");
	x->hashed = type & 0x80;
	x->type = type & 0x7f;
	x->size = size;
	if (x->type >= RR_EXIT_TYPES)
		return bad(d, at, e, "unknown exit type");
	if (size > 8 || count == 0 || count > RR_DATA_MAX ||
	    mask >> RR_NREGS)
		return bad(d, at, e, "exit size, count or register mask out "
			   "of range");
	x->count = (uint32_t)count;
	for (unsigned i = 0; i < RR_NREGS; i++) {
		uint64_t delta = 0;
		if ((mask & (1u << i)) && get_varint(d, &delta) < 0)
			return bad(d, at, e, "exit registers cut short");
		d->regs[i] ^= delta;
		x->regs[i] = d->regs[i];
	}
	if (get_varint(d, &len) < 0 || len > RR_DATA_MAX ||
	    len > d->raw_len - d->pos)
		return bad(d, at, e, "exit data length out of range");
	x->len = (uint32_t)len;
	memcpy(x->data, d->raw + d->pos, len);
	d->pos += len;
	d->exit_index++;
	return 0;
}

int rr_decoder_next(struct rr_decoder *d, struct rr_record *r,
		    struct kg_err *e)
{
	if (d->done == d->nrecords) {
		if (d->pos != d->raw_len)
			return bad(d, d->pos, e, "bytes after the last record");
		return 0;
	}
	size_t at = d->pos;
	uint8_t kind;
	if (get_u8(d, &kind) < 0)
		return bad(d, at, e, "records end before the count says");
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	uint64_t a, b;
	switch (kind) {
	case RR_EXIT:
		if (get_exit(d, at, e) < 0)
			return -1;
		r->u.exit = &d->exit;
		break;
	case RR_TIME:
		if (get_varint(d, &r->u.time_delta) < 0)
			return bad(d, at, e, "time record cut short");
		break;
	case RR_WRITE:
		if (get_varint(d, &a) < 0 || get_varint(d, &b) < 0)
			return bad(d, at, e, "write record cut short");
		if (b == 0 || b > RR_WRITE_MAX || b > d->raw_len - d->pos)
			return bad(d, at, e, "write length out of range");
		r->u.write.gpa = a;
		r->u.write.len = (uint32_t)b;
		r->u.write.data = d->raw + d->pos;
		d->pos += b;
		break;
	case RR_IRQ:
		if (get_u8(d, &r->u.vector) < 0)
			return bad(d, at, e, "irq record cut short");
		if (r->u.vector < 32)
			return bad(d, at, e, "interrupt vector below 32");
		break;
	case RR_DIGEST: {
		uint64_t v[1 + RR_NREGS + 4];
		if (d->raw_len - d->pos < sizeof(v))
			return bad(d, at, e, "digest record cut short");
		for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
			v[i] = le64_get(d->raw + d->pos + 8 * i);
		d->pos += sizeof(v);
		r->u.digest.ram_hash = v[0];
		memcpy(r->u.digest.regs, &v[1], sizeof(r->u.digest.regs));
		r->u.digest.cr0 = v[1 + RR_NREGS];
		r->u.digest.cr3 = v[2 + RR_NREGS];
		r->u.digest.cr4 = v[3 + RR_NREGS];
		r->u.digest.efer = v[4 + RR_NREGS];
		break;
	}
	default:
		return bad(d, at, e, "unknown record kind");
	}
	d->done++;
	return 1;
}
