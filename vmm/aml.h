/*
 * A minimal AML (ACPI Machine Language) encoder: just what kagami's DSDT
 * needs — names, integers, strings, packages, buffers, scopes, devices and
 * resource templates (ACPI 6.x, section 20 and 6.4). Pure: no I/O.
 *
 * Terms are appended to a struct aml buffer. Containers (scope, device,
 * package, buffer) carry a PkgLength that depends on their contents, so
 * they are built in a buffer of their own and wrapped when complete:
 *
 *   struct aml dev = { 0 };
 *   aml_name_string(&dev, "_HID", "LNRO0005");
 *   aml_device(&scope, "V000", &dev);     // appends, then frees dev
 *
 * Allocation failures are sticky: the buffer is marked failed, later
 * calls do nothing, and aml_ok() tells the caller once at the end.
 */
#ifndef KG_AML_H
#define KG_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct aml {
	uint8_t *data;
	size_t len, cap;
	bool failed;
};

bool aml_ok(const struct aml *a);
void aml_free(struct aml *a);
void aml_bytes(struct aml *a, const void *p, size_t n);

/* An integer in its shortest encoding (Zero, One, Byte..QWord). */
void aml_integer(struct aml *a, uint64_t v);
/* A NameString: "_SB_", "\\_S5_" or "COM1" (segments of 1..4 characters
 * are padded with '_'; a leading '\\' is the root). */
void aml_namestring(struct aml *a, const char *name);
/* Name(NAME, <integer>) / Name(NAME, "<string>") / Name(NAME, EisaId(id)). */
void aml_name_int(struct aml *a, const char *name, uint64_t v);
void aml_name_string(struct aml *a, const char *name, const char *s);
void aml_name_eisaid(struct aml *a, const char *name, const char *id);
/* Name(NAME, <the term in body>) — body is consumed. */
void aml_name(struct aml *a, const char *name, struct aml *body);

/* Containers: append the wrapped contents, then free them. */
void aml_scope(struct aml *a, const char *name, struct aml *body);
void aml_device(struct aml *a, const char *name, struct aml *body);
/* Package(){elements}: body holds nelems encoded terms. */
void aml_package(struct aml *a, unsigned nelems, struct aml *body);
/* Buffer(){bytes}. */
void aml_buffer(struct aml *a, struct aml *body);

/* The compressed 32-bit EISA id of "PNP0501"-style names. */
uint32_t aml_eisaid(const char *id);

/* Resource template items (appended to a buffer that becomes a
 * Buffer() with aml_resource_end). */
void aml_res_io(struct aml *r, uint16_t base, uint8_t align, uint8_t len);
void aml_res_irq_noflags(struct aml *r, unsigned irq);
void aml_res_mem32_fixed(struct aml *r, uint32_t base, uint32_t len,
			 bool writable);
/* Extended Interrupt: consumer, level or edge, active high or low. */
void aml_res_interrupt(struct aml *r, uint32_t gsi, bool level,
		       bool active_low);
/* The end tag; then the template is the buffer's contents. */
void aml_res_end(struct aml *r);

#endif
