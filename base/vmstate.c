#include "vmstate.h"

#include <stdlib.h>
#include <string.h>

static uint32_t field_id(const char *name)
{
	uint32_t h = 2166136261u;
	for (; *name; name++)
		h = (h ^ (uint8_t)*name) * 16777619u;
	return h;
}

static size_t elem_size(enum vs_type t)
{
	switch (t) {
	case VS_U8: case VS_BYTES: return 1;
	case VS_U16: return 2;
	case VS_U32: return 4;
	default: return 8;
	}
}

static uint32_t elems(const struct vs_field *f)
{
	return f->count ? f->count : 1;
}

static size_t field_bytes(const struct vs_field *f)
{
	return elem_size(f->type) * elems(f);
}

static void *elem_ptr(const struct vs_field *f, const void *obj, uint32_t i)
{
	size_t stride = f->stride ? f->stride : elem_size(f->type);
	return (uint8_t *)obj + f->offset + (size_t)i * stride;
}

void vs_buf_free(struct vs_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static int buf_reserve(struct vs_buf *b, size_t more, struct kg_err *e)
{
	if (b->len + more <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + more)
		cap *= 2;
	uint8_t *p = realloc(b->data, cap);
	if (!p)
		return kg_errk(e, KG_ERR_NOMEM, "out of memory encoding state");
	b->data = p;
	b->cap = cap;
	return 0;
}

static void put(struct vs_buf *b, const void *p, size_t n)
{
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

size_t vs_encoded_size(const struct vs_desc *d)
{
	size_t n = 4;
	for (size_t i = 0; i < d->nfields; i++)
		n += 8 + field_bytes(&d->fields[i]);
	return n;
}

/* x86 is little-endian, as the format: scalars are copied as they are. */
int vs_encode(const struct vs_desc *d, const void *obj, struct vs_buf *b,
	      struct kg_err *e)
{
	if (buf_reserve(b, vs_encoded_size(d), e) < 0)
		return -1;
	uint32_t n = (uint32_t)d->nfields;
	put(b, &n, 4);
	for (size_t i = 0; i < d->nfields; i++) {
		const struct vs_field *f = &d->fields[i];
		uint32_t id = field_id(f->name), len = (uint32_t)field_bytes(f);
		put(b, &id, 4);
		put(b, &len, 4);
		size_t es = elem_size(f->type);
		for (uint32_t k = 0; k < elems(f); k++)
			put(b, elem_ptr(f, obj, k), es);
	}
	return 0;
}

static uint64_t load_elem(const uint8_t *p, size_t es)
{
	uint64_t v = 0;
	memcpy(&v, p, es);
	return v;
}

static const struct vs_field *find(const struct vs_desc *d, uint32_t id)
{
	for (size_t i = 0; i < d->nfields; i++)
		if (field_id(d->fields[i].name) == id)
			return &d->fields[i];
	return NULL;
}

long vs_decode(const struct vs_desc *d, uint32_t version, void *obj,
	       const void *ctx, const uint8_t *data, size_t len,
	       struct kg_err *e)
{
	if (version > d->version)
		return kg_errk(e, KG_ERR_INVALID,
			       "%s state version %u is newer than this "
			       "kagami reads (%u)", d->name, version,
			       d->version);
	if (len < 4)
		return kg_errk(e, KG_ERR_CORRUPT, "%s state: truncated", d->name);
	uint32_t n;
	memcpy(&n, data, 4);
	size_t off = 4;
	if (n > 4096)
		return kg_errk(e, KG_ERR_CORRUPT, "%s state: %u fields is too many", d->name, n);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t id, flen;
		if (len - off < 8)
			return kg_errk(e, KG_ERR_CORRUPT, "%s state: truncated at field %u",
				       d->name, i);
		memcpy(&id, data + off, 4);
		memcpy(&flen, data + off + 4, 4);
		off += 8;
		if (flen > len - off)
			return kg_errk(e, KG_ERR_CORRUPT, "%s state: field %u length %u past "
				       "the end", d->name, i, flen);
		const struct vs_field *f = find(d, id);
		if (f) {
			if (flen != field_bytes(f))
				return kg_errk(e, KG_ERR_CORRUPT, "%s state: field '%s' has %u "
					       "bytes, expected %zu", d->name,
					       f->name, flen, field_bytes(f));
			size_t es = elem_size(f->type);
			for (uint32_t k = 0; k < elems(f); k++) {
				const uint8_t *src = data + off + k * es;
				if (f->max && load_elem(src, es) > f->max)
					return kg_errk(e, KG_ERR_CORRUPT, "%s state: field '%s'"
						       " value %llu out of range "
						       "(max %llu)", d->name,
						       f->name,
						       (unsigned long long)
						       load_elem(src, es),
						       (unsigned long long)f->max);
				memcpy(elem_ptr(f, obj, k), src, es);
			}
		}
		off += flen;
	}
	/* A value the device refuses is a corrupt state, whatever kind the
	 * check gave it (a ring outside RAM is the guest's fault only when
	 * the guest set it). */
	if (d->check && d->check(obj, ctx, e) < 0) {
		kg_err_prefix(e, "%s state", d->name);
		return kg_err_as(e, KG_ERR_CORRUPT);
	}
	return (long)off;
}

void vs_copy(const struct vs_desc *d, void *dst, const void *src)
{
	for (size_t i = 0; i < d->nfields; i++) {
		const struct vs_field *f = &d->fields[i];
		size_t es = elem_size(f->type);
		for (uint32_t k = 0; k < elems(f); k++)
			memcpy(elem_ptr(f, dst, k), elem_ptr(f, src, k), es);
	}
}
