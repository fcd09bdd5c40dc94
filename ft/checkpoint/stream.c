/*
 * The stream format itself: kinds, limits, header images and the rules
 * that reader and writer share, so that a writer never produces a stream
 * its own reader refuses.
 */
#include "stream.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "base/le.h"

struct kind_info {
	uint16_t kind;
	const char *name;
	bool bulk;             /* bounded by max_bulk, else max_state */
	uint16_t max_instance;
};

/* Instance bounds are generous (KVM allows 4096 vCPUs on x86) but finite,
 * so that a corrupted id cannot index far into a consumer's table. */
static const struct kind_info kinds[] = {
	{ KG_SEC_VM_CONFIG, "vm-config", false, 0 },
	{ KG_SEC_VCPU, "vcpu", false, 4095 },
	{ KG_SEC_IRQCHIP, "irqchip", false, 15 },
	{ KG_SEC_PIT, "pit", false, 0 },
	{ KG_SEC_CLOCK, "clock", false, 0 },
	{ KG_SEC_DEVICE, "device", false, 1023 },
	{ KG_SEC_PAD, "pad", false, 0 },
	{ KG_SEC_RAM_FULL, "ram", true, 255 },
	{ KG_SEC_RAM_PAGES, "ram-pages", true, 255 },
	{ KG_SEC_PAGE_HASHES, "page-hashes", true, 0 },
	{ KG_SEC_DISK, "disk", true, 255 },
	{ KG_SEC_DISK_BLOCKS, "disk-blocks", true, 255 },
	{ KG_SEC_EPOCH_BEGIN, "epoch-begin", false, 0 },
	{ KG_SEC_EPOCH_END, "epoch-end", false, 0 },
	{ KG_SEC_EXEC_LOG, "exec-log", true, 0 },
	{ KG_SEC_RAM_HASHES, "ram-hashes", true, 255 },
	{ KG_SEC_CPUID, "cpuid", false, 0 },
	{ KG_SEC_END, "end", false, 0 },
};

static const struct kind_info *kind_find(uint16_t kind)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (kinds[i].kind == kind)
			return &kinds[i];
	return NULL;
}

void kg_stream_opts_default(struct kg_stream_opts *o)
{
	*o = (struct kg_stream_opts){
		.max_state = KG_STREAM_DEFAULT_MAX_STATE,
		.max_bulk = KG_STREAM_DEFAULT_MAX_BULK,
		.max_ram = KG_STREAM_DEFAULT_MAX_RAM,
		.max_sections = KG_STREAM_DEFAULT_MAX_SECTIONS,
	};
}

uint16_t kg_arch_host(void)
{
#if defined(__x86_64__)
	return KG_ARCH_X86_64;
#elif defined(__aarch64__)
	return KG_ARCH_AARCH64;
#elif defined(__riscv)
	return KG_ARCH_RISCV;
#else
#error "kagami streams: unknown host architecture"
#endif
}

const char *kg_arch_name(uint16_t arch)
{
	switch (arch) {
	case KG_ARCH_X86_64: return "x86_64";
	case KG_ARCH_AARCH64: return "aarch64";
	case KG_ARCH_RISCV: return "riscv";
	default: return NULL;
	}
}

void kg_stream_header_host(struct kg_stream_header *h)
{
	long ps = sysconf(_SC_PAGESIZE);
	*h = (struct kg_stream_header){
		.major = KG_STREAM_MAJOR,
		.minor = KG_STREAM_MINOR,
		.arch = kg_arch_host(),
		.header_size = KG_STREAM_HEADER_SIZE,
		.page_size = ps > 0 ? (uint32_t)ps : 4096,
		.flags = 0,
	};
}

const char *kg_sec_name(uint16_t kind)
{
	const struct kind_info *k = kind_find(kind);
	return k ? k->name : NULL;
}

uint64_t kg_sec_max_length(const struct kg_stream_opts *o, uint16_t kind)
{
	const struct kind_info *k = kind_find(kind);
	if (kind == KG_SEC_END)
		return KG_END_PAYLOAD_SIZE;
	if (kind == KG_SEC_RAM_FULL)
		return o->max_ram;
	/* Unknown kinds may be bulk kinds of a newer minor version; readers
	 * skip them without buffering, so the larger bound is safe. */
	return !k || k->bulk ? o->max_bulk : o->max_state;
}

unsigned kg_sec_max_instance(uint16_t kind)
{
	const struct kind_info *k = kind_find(kind);
	return k ? k->max_instance : UINT16_MAX;
}

void kg_sec_describe(char *buf, size_t n, uint16_t kind, uint16_t instance)
{
	const char *name = kg_sec_name(kind);
	if (name)
		snprintf(buf, n, "%s #%u", name, instance);
	else
		snprintf(buf, n, "kind 0x%04x #%u", kind, instance);
}

void kg_section_where(char *buf, size_t n, const struct kg_section *s)
{
	char d[48];
	kg_sec_describe(d, sizeof(d), s->kind, s->instance);
	snprintf(buf, n, "section %" PRIu64 " (%s) at offset %" PRIu64,
		 s->index, d, s->offset);
}

int kg_sec_err(struct kg_err *e, const struct kg_section *s,
		   enum kg_err_kind kind, const char *fmt, ...)
{
	char what[384], where[128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	kg_section_where(where, sizeof(where), s);
	return kg_errk(e, kind, "%s: %s", where, what);
}

int kg_section_check(const struct kg_stream_opts *o,
		     const struct kg_section *s, struct kg_err *e)
{
	if (s->kind == 0)
		return kg_errf(e, "invalid kind 0");
	if (s->instance > kg_sec_max_instance(s->kind))
		return kg_errf(e, "instance %u out of range (at most %u)",
			       s->instance, kg_sec_max_instance(s->kind));
	if (s->kind == KG_SEC_END && s->length != KG_END_PAYLOAD_SIZE)
		return kg_errf(e, "end marker declares %" PRIu64 " bytes, "
			       "expected %d", s->length, KG_END_PAYLOAD_SIZE);
	uint64_t max = kg_sec_max_length(o, s->kind);
	if (s->length > max)
		return kg_errf(e, "declares %" PRIu64 " bytes, more than the "
			       "limit of %" PRIu64, s->length, max);
	return 0;
}

int kg_section_sequence(const struct kg_stream_opts *o, bool *in_epoch,
			uint64_t *count, uint16_t kind, struct kg_err *e)
{
	switch (kind) {
	case KG_SEC_EPOCH_BEGIN:
		if (*in_epoch)
			return kg_errf(e, "epoch begins inside an open epoch");
		*in_epoch = true;
		*count = 0; /* the snapshot before the first epoch is done */
		break;
	case KG_SEC_EPOCH_END:
		if (!*in_epoch)
			return kg_errf(e, "epoch end without a begin");
		break;
	case KG_SEC_END:
		if (*in_epoch)
			return kg_errf(e, "end marker inside an open epoch");
		return 0; /* the marker itself is never counted */
	default:
		break;
	}
	if (++*count > o->max_sections)
		return kg_errf(e, "more than %" PRIu64 " sections in one %s",
			       o->max_sections,
			       *in_epoch ? "epoch" : "snapshot");
	if (kind == KG_SEC_EPOCH_END) {
		*in_epoch = false;
		*count = 0;
	}
	return 0;
}

void kg_stream_header_encode(const struct kg_stream_header *h,
			     uint8_t out[KG_STREAM_HEADER_SIZE])
{
	memcpy(out, KG_STREAM_MAGIC, 8);
	le16_put(out + 8, h->major);
	le16_put(out + 10, h->minor);
	le16_put(out + 12, h->arch);
	le16_put(out + 14, KG_STREAM_HEADER_SIZE);
	le32_put(out + 16, h->page_size);
	le32_put(out + 20, h->flags);
	le32_put(out + 24, 0);
	le32_put(out + 28, kg_crc32c(0, out, KG_STREAM_HEADER_SIZE - 4));
}

void kg_section_header_encode(const struct kg_section *s,
			      uint8_t out[KG_SECTION_HEADER_SIZE])
{
	le16_put(out, s->kind);
	le16_put(out + 2, s->instance);
	le32_put(out + 4, s->version);
	le64_put(out + 8, s->length);
}

void kg_section_header_decode(const uint8_t in[KG_SECTION_HEADER_SIZE],
			      struct kg_section *s)
{
	s->kind = le16_get(in);
	s->instance = le16_get(in + 2);
	s->version = le32_get(in + 4);
	s->length = le64_get(in + 8);
}
