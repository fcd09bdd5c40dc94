/*
 * libFuzzer target over the virtqueue parser (`make fuzz`): the input is a
 * guest's RAM image plus queue parameters; every chain it yields is read
 * and written back the way the devices do. ASan checks that nothing
 * outside the RAM buffer is touched.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/gate.h"
#include "vmm/virtq.h"

#define RAM (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct {
		uint16_t qsize, last_avail;
		uint32_t desc, avail, used;
	} hdr;
	if (size < sizeof(hdr))
		return 0;
	memcpy(&hdr, data, sizeof(hdr));
	data += sizeof(hdr);
	size -= sizeof(hdr);

	static uint8_t *ram; /* reused across runs: allocation is slow */
	if (!ram)
		ram = malloc(RAM);
	memset(ram, 0, RAM);
	memcpy(ram, data, size < RAM ? size : RAM);

	struct guest_mem m;
	guest_mem_layout(RAM, &m);
	m.regions[0].hva = ram;
	m.vmm_dirty = NULL;
	struct gate g;
	gate_init_passthrough(&g, &m, -1);

	struct virtq q = { .size = hdr.qsize, .ready = 1, .desc_gpa = hdr.desc,
			   .avail_gpa = hdr.avail, .used_gpa = hdr.used,
			   .last_avail = hdr.last_avail };
	static struct virtq_chain c;
	struct kg_err e;
	uint8_t scratch[4096];
	for (int i = 0; i < 64; i++) {
		int r = virtq_pop(&q, &m, &c, &e);
		if (r <= 0)
			break;
		virtq_chain_read(&c, &m, 0, scratch, sizeof(scratch));
		virtq_chain_write(&c, &g, 1, scratch, sizeof(scratch), &e);
		virtq_push(&q, &g, c.head, 1, &e);
	}
	return 0;
}
