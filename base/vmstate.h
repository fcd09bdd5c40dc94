/*
 * Device and VM state declared as field tables and walked by one generic
 * encoder/decoder (in the spirit of QEMU's VMState): no per-device
 * serialisation code. A table lists each guest-visible field of a struct
 * with its offset, type, element count and the table version that added
 * it. Host resources (fds, threads, pointers) are never in a table.
 *
 * Encoding of one struct: u32 field count, then per field: u32 id (FNV-1a
 * of the name), u32 byte length, the bytes (little-endian scalars). The
 * decoder matches fields by id, so a field unknown to this reader is
 * skipped and a field missing from the stream keeps its default; a known
 * field with the wrong length is an error. Every value can be range-checked
 * by the table (max) and the struct by its `check` hook after loading.
 */
#ifndef KG_VMSTATE_H
#define KG_VMSTATE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum vs_type { VS_U8, VS_U16, VS_U32, VS_U64, VS_BYTES };

struct vs_field {
	const char *name;
	size_t offset;
	enum vs_type type;
	uint32_t count;   /* array elements (VS_BYTES: bytes); 0 means 1 */
	uint64_t max;     /* largest valid value of each element; 0: any */
	size_t stride;    /* for arrays of structs: bytes between elements */
};

struct vs_desc {
	const char *name;
	uint32_t version;
	const struct vs_field *fields;
	size_t nfields;
	/* Optional: validates the loaded struct (guest-derived values). */
	int (*check)(const void *obj, const void *ctx, struct kg_err *e);
};

#define VS_FIELD(st, f, t) { #f, offsetof(st, f), t, 0, 0, 0 }
#define VS_FIELD_MAX(st, f, t, m) { #f, offsetof(st, f), t, 0, m, 0 }
#define VS_ARRAY(st, f, t, n) { #f, offsetof(st, f), t, n, 0, 0 }
#define VS_BYTES_FIELD(st, f) \
	{ #f, offsetof(st, f), VS_BYTES, sizeof(((st *)0)->f), 0, 0 }
/* Field `f` of element type `et` inside an array `arr` of `n` structs. */
#define VS_STRUCT_ARRAY(st, arr, n, et, f, t, nm) \
	{ nm, offsetof(st, arr) + offsetof(et, f), t, n, 0, sizeof(et) }
#define VS_TABLE(x) x, sizeof(x) / sizeof((x)[0])

/* A growable output buffer. */
struct vs_buf {
	uint8_t *data;
	size_t len, cap;
};
void vs_buf_free(struct vs_buf *b);

/* Upper bound of vs_encode's output for d. */
size_t vs_encoded_size(const struct vs_desc *d);
/* Appends obj's encoding to b. */
int vs_encode(const struct vs_desc *d, const void *obj, struct vs_buf *b,
	      struct kg_err *e);
/* Decodes data (from a stream section of table version `version`) into
 * obj, which holds defaults; then runs d->check(obj, ctx). Returns the
 * bytes consumed or -1. */
long vs_decode(const struct vs_desc *d, uint32_t version, void *obj,
	       const void *ctx, const uint8_t *data, size_t len,
	       struct kg_err *e);

/* Copies the table's fields (only) from src to dst: applies a staged,
 * validated struct to a live one without touching its host fields. */
void vs_copy(const struct vs_desc *d, void *dst, const void *src);

#endif
