/*
 * libFuzzer target over the page codec (`make fuzz`). The first input byte
 * picks a mode:
 *  - even: the rest is a RAM_PAGES payload, decoded into a receiver whose
 *    RAM has a hole between two regions. A refused payload must leave the
 *    RAM exactly as it was (checked byte for byte); ASan checks that
 *    nothing outside it is touched.
 *  - odd: the rest shapes guest pages, which go through the encoder and
 *    the decoder twice (first sends, then deltas of a second version in
 *    small batches); the receiver must end equal to the sender. This
 *    reaches the apply paths that random payloads cannot (a delta needs
 *    its result's hash).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ft/checkpoint/page_codec.h"

#define PAGE 4096u
#define RAM (64 * 1024)
#define NPAGES (RAM / PAGE)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *buf(size_t n)
{
	uint8_t *p = malloc(n);
	if (!p)
		abort();
	return p;
}

static void decode_any(const uint8_t *data, size_t size)
{
	static uint8_t *ram, *copy;
	if (!ram) {
		ram = buf(RAM);
		copy = buf(RAM);
	}
	for (size_t i = 0; i < RAM; i++)
		ram[i] = (uint8_t)(i * 31 + (i >> 12));
	memcpy(copy, ram, RAM);
	/* [0, 32K) and [48K, 80K): a hole, and a region past the first. */
	struct guest_mem m = { .fd = -1, .size = RAM, .base = ram };
	m.nregions = 2;
	m.regions[0] = (struct guest_mem_region){ 0, RAM / 2, 0, ram };
	m.regions[1] = (struct guest_mem_region){ RAM / 2 + 16384, RAM / 2,
						  RAM / 2, ram + RAM / 2 };
	struct kg_err e;
	if (page_decode(&m, PAGE_CODEC_VERSION, data, size, NULL, &e) < 0 &&
	    memcmp(ram, copy, RAM))
		abort(); /* a refused batch wrote to RAM */
}

static void mem_init(struct guest_mem *m, uint8_t *ram)
{
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	guest_mem_layout(RAM, m);
	m->base = ram;
	m->regions[0].hva = ram;
}

/* Sends every page in batches of cap bytes; aborts unless the receiver
 * ends equal to the sender. */
static void send_all(struct page_encoder *pe, const struct guest_mem *dst,
		     uint8_t *out, size_t cap, const uint8_t *sram,
		     const uint8_t *dram)
{
	uint64_t gpas[NPAGES];
	for (unsigned i = 0; i < NPAGES; i++)
		gpas[i] = (uint64_t)i * PAGE;
	size_t done = 0;
	struct kg_err e;
	while (done < NPAGES) {
		size_t len;
		long k = page_encode(pe, gpas + done, NPAGES - done, out, cap,
				     &len, NULL, &e);
		if (k <= 0 || len > cap ||
		    page_decode(dst, 1, out, len, NULL, &e) < 0 ||
		    page_encoder_commit(pe, out, len, &e) < 0)
			abort();
		done += (size_t)k;
	}
	if (memcmp(sram, dram, RAM))
		abort();
}

static void round_trip(const uint8_t *data, size_t size)
{
	static uint8_t *sram, *dram, *out;
	static struct guest_mem src, dst;
	static struct page_encoder *pe;
	if (!pe) {
		sram = buf(RAM);
		dram = buf(RAM);
		out = buf(RAM + 4096);
		mem_init(&src, sram);
		mem_init(&dst, dram);
		pe = page_encoder_new(&src, NULL);
		if (!pe)
			abort();
	}
	if (size < 2)
		return;
	uint8_t opts = data[0];
	data++, size--;
	size_t cap = PAGE_CODEC_MIN_OUT + (size_t)(opts >> 1) * 64;
	memset(sram, 0, RAM);
	memset(dram, 0, RAM);
	if (opts & 1)
		page_encoder_assume_zero(pe);
	else
		page_encoder_reset(pe);
	/* First half: page contents, repeated to fill the pages they cover
	 * (so that LZ4 finds matches); second half: (offset, byte) edits. */
	size_t half = size / 2, edits = size - half;
	if (half)
		for (size_t i = 0; i < RAM && i < half * 8; i++)
			sram[i] = data[i % half];
	send_all(pe, &dst, out, cap, sram, dram);
	for (size_t i = 0; i + 3 <= edits; i += 3) {
		const uint8_t *d = data + half + i;
		sram[(d[0] | d[1] << 8) % RAM] = d[2];
	}
	send_all(pe, &dst, out, cap, sram, dram);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		round_trip(data + 1, size - 1);
	else
		decode_any(data + 1, size - 1);
	return 0;
}
