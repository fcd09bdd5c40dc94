#include "aml.h"

#include <stdlib.h>
#include <string.h>

#define AML_ZERO 0x00
#define AML_ONE 0x01
#define AML_NAME 0x08
#define AML_BYTE 0x0a
#define AML_WORD 0x0b
#define AML_DWORD 0x0c
#define AML_STRING 0x0d
#define AML_QWORD 0x0e
#define AML_SCOPE 0x10
#define AML_BUFFER 0x11
#define AML_PACKAGE 0x12
#define AML_EXT 0x5b
#define AML_EXT_DEVICE 0x82
#define AML_ROOT '\\'
#define AML_DUAL_NAME 0x2e
#define AML_MULTI_NAME 0x2f

bool aml_ok(const struct aml *a)
{
	return !a->failed;
}

void aml_free(struct aml *a)
{
	free(a->data);
	*a = (struct aml){ 0 };
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (a->failed || n == 0)
		return;
	if (a->len + n > a->cap) {
		size_t cap = a->cap ? a->cap : 64;
		while (cap < a->len + n)
			cap *= 2;
		uint8_t *d = realloc(a->data, cap);
		if (!d) {
			a->failed = true;
			return;
		}
		a->data = d;
		a->cap = cap;
	}
	memcpy(a->data + a->len, p, n);
	a->len += n;
}

static void byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

static void le(struct aml *a, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		byte(a, (uint8_t)(v >> (8 * i)));
}

void aml_integer(struct aml *a, uint64_t v)
{
	if (v == 0) {
		byte(a, AML_ZERO);
	} else if (v == 1) {
		byte(a, AML_ONE);
	} else if (v <= 0xff) {
		byte(a, AML_BYTE);
		le(a, v, 1);
	} else if (v <= 0xffff) {
		byte(a, AML_WORD);
		le(a, v, 2);
	} else if (v <= 0xffffffffu) {
		byte(a, AML_DWORD);
		le(a, v, 4);
	} else {
		byte(a, AML_QWORD);
		le(a, v, 8);
	}
}

/* One NameSeg: up to 4 characters, padded with '_'. */
static void nameseg(struct aml *a, const char *s, size_t n)
{
	char seg[4] = { '_', '_', '_', '_' };
	memcpy(seg, s, n > 4 ? 4 : n);
	aml_bytes(a, seg, 4);
}

void aml_namestring(struct aml *a, const char *name)
{
	if (*name == '\\') {
		byte(a, AML_ROOT);
		name++;
	}
	const char *segs[8];
	size_t lens[8], n = 0;
	for (const char *p = name; *p && n < 8;) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		segs[n] = p;
		lens[n++] = l;
		p += l + (dot ? 1 : 0);
	}
	if (n == 0) {
		byte(a, 0); /* NullName */
		return;
	}
	if (n == 2)
		byte(a, AML_DUAL_NAME);
	else if (n > 2) {
		byte(a, AML_MULTI_NAME);
		byte(a, (uint8_t)n);
	}
	for (size_t i = 0; i < n; i++)
		nameseg(a, segs[i], lens[i]);
}

/* PkgLength for contents of n bytes: the encoded length counts itself. */
static void pkglength(struct aml *a, size_t n)
{
	if (n + 1 < 0x40) {
		byte(a, (uint8_t)(n + 1));
		return;
	}
	for (unsigned extra = 1; extra <= 3; extra++) {
		size_t total = n + 1 + extra;
		if (total < (1ull << (4 + 8 * extra))) {
			byte(a, (uint8_t)(extra << 6 | (total & 0x0f)));
			for (unsigned i = 0; i < extra; i++)
				byte(a, (uint8_t)(total >> (4 + 8 * i)));
			return;
		}
	}
	a->failed = true; /* over 256 MiB: cannot be encoded */
}

static void wrap(struct aml *a, const uint8_t *op, size_t oplen,
		 const char *name, struct aml *body)
{
	if (body->failed)
		a->failed = true;
	struct aml head = { 0 };
	if (name)
		aml_namestring(&head, name);
	aml_bytes(a, op, oplen);
	pkglength(a, head.len + body->len);
	if (head.failed)
		a->failed = true;
	aml_bytes(a, head.data, head.len);
	aml_bytes(a, body->data, body->len);
	aml_free(&head);
	aml_free(body);
}

void aml_scope(struct aml *a, const char *name, struct aml *body)
{
	static const uint8_t op[] = { AML_SCOPE };
	wrap(a, op, sizeof(op), name, body);
}

void aml_device(struct aml *a, const char *name, struct aml *body)
{
	static const uint8_t op[] = { AML_EXT, AML_EXT_DEVICE };
	wrap(a, op, sizeof(op), name, body);
}

void aml_package(struct aml *a, unsigned nelems, struct aml *body)
{
	struct aml inner = { 0 };
	byte(&inner, (uint8_t)nelems);
	aml_bytes(&inner, body->data, body->len);
	if (body->failed)
		inner.failed = true;
	aml_free(body);
	static const uint8_t op[] = { AML_PACKAGE };
	wrap(a, op, sizeof(op), NULL, &inner);
}

void aml_buffer(struct aml *a, struct aml *body)
{
	struct aml inner = { 0 };
	aml_integer(&inner, body->len);
	aml_bytes(&inner, body->data, body->len);
	if (body->failed)
		inner.failed = true;
	aml_free(body);
	static const uint8_t op[] = { AML_BUFFER };
	wrap(a, op, sizeof(op), NULL, &inner);
}

void aml_name(struct aml *a, const char *name, struct aml *body)
{
	byte(a, AML_NAME);
	aml_namestring(a, name);
	if (body->failed)
		a->failed = true;
	aml_bytes(a, body->data, body->len);
	aml_free(body);
}

void aml_name_int(struct aml *a, const char *name, uint64_t v)
{
	byte(a, AML_NAME);
	aml_namestring(a, name);
	aml_integer(a, v);
}

void aml_name_string(struct aml *a, const char *name, const char *s)
{
	byte(a, AML_NAME);
	aml_namestring(a, name);
	byte(a, AML_STRING);
	aml_bytes(a, s, strlen(s) + 1);
}

uint32_t aml_eisaid(const char *id)
{
	/* Three letters in 5 bits each, then four hex digits; stored big
	 * endian in a little-endian dword. */
	uint16_t c = (uint16_t)(((id[0] - 0x40) & 0x1f) << 10 |
				((id[1] - 0x40) & 0x1f) << 5 |
				((id[2] - 0x40) & 0x1f));
	uint16_t p = (uint16_t)strtoul(id + 3, NULL, 16);
	return (uint32_t)(c >> 8) | (uint32_t)(c & 0xff) << 8 |
	       (uint32_t)(p >> 8) << 16 | (uint32_t)(p & 0xff) << 24;
}

void aml_name_eisaid(struct aml *a, const char *name, const char *id)
{
	byte(a, AML_NAME);
	aml_namestring(a, name);
	byte(a, AML_DWORD);
	le(a, aml_eisaid(id), 4);
}

void aml_res_io(struct aml *r, uint16_t base, uint8_t align, uint8_t len)
{
	byte(r, 0x47); /* small item 8: I/O port, 7 bytes */
	byte(r, 0x01); /* 16-bit decode */
	le(r, base, 2);
	le(r, base, 2);
	byte(r, align);
	byte(r, len);
}

void aml_res_irq_noflags(struct aml *r, unsigned irq)
{
	byte(r, 0x22); /* small item 4: IRQ, 2 bytes (edge, active high) */
	le(r, 1u << irq, 2);
}

void aml_res_mem32_fixed(struct aml *r, uint32_t base, uint32_t len,
			 bool writable)
{
	byte(r, 0x86); /* large item 6: 32-bit fixed memory */
	le(r, 9, 2);
	byte(r, writable ? 1 : 0);
	le(r, base, 4);
	le(r, len, 4);
}

void aml_res_interrupt(struct aml *r, uint32_t gsi, bool level,
		       bool active_low)
{
	byte(r, 0x89); /* large item 9: extended interrupt */
	le(r, 6, 2);
	/* consumer (bit 0), edge (bit 1), active low (bit 2) */
	byte(r, (uint8_t)(1u | (level ? 0 : 2u) | (active_low ? 4u : 0)));
	byte(r, 1); /* one interrupt */
	le(r, gsi, 4);
}

void aml_res_end(struct aml *r)
{
	byte(r, 0x79); /* end tag */
	byte(r, 0x00); /* checksum 0: "the template checks" */
}
