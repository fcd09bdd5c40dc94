/*
 * The device side of a virtio 1.x split virtqueue (pure logic over guest
 * RAM; no threads, no locks: the caller serialises access to one queue).
 *
 * Everything the guest controls is validated before use: ring addresses,
 * the available index (it may not run more than the queue size ahead),
 * descriptor indexes, chain length (a loop or a chain longer than the queue
 * is malformed), buffer addresses and lengths (inside guest RAM, never the
 * MMIO hole), and the readable-before-writable order. A malformed queue is
 * reported with one line, kind KG_ERR_GUEST (the guest broke it); the
 * device then marks itself broken (DEVICE_NEEDS_RESET). Indirect
 * descriptors are not offered.
 */
#ifndef KG_VIRTQ_H
#define KG_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>
#include "base/err.h"
#include "gate.h"
#include "mem.h"

#define VIRTQ_MAX_SIZE 256
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

struct virtq {
	/* guest-visible state (set through the transport registers) */
	uint16_t size;
	uint8_t ready;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	/* device progress */
	uint16_t last_avail, used_idx;
};

struct virtq_buf {
	uint64_t gpa;
	uint32_t len;
	bool writable;
};

struct virtq_chain {
	uint16_t head;
	unsigned n, nreadable;
	uint64_t readable_len, writable_len;
	struct virtq_buf bufs[VIRTQ_MAX_SIZE];
};

/* Checks that the rings of a queue of `q->size` entries lie in RAM. */
int virtq_check_rings(const struct virtq *q, const struct guest_mem *m,
		      struct kg_err *e);
/* Pops the next available chain: 1 popped, 0 none available, -1 the
 * queue is malformed (e names the problem). */
int virtq_pop(struct virtq *q, const struct guest_mem *m,
	      struct virtq_chain *c, struct kg_err *e);
/* Returns a chain to the guest with `written` bytes written into it; the
 * used ring update passes the input gate. Returns -1 on error. */
int virtq_push(struct virtq *q, struct gate *g, uint16_t head,
	       uint32_t written, struct kg_err *e);
/* True unless the guest set VIRTQ_AVAIL_F_NO_INTERRUPT. */
bool virtq_wants_interrupt(const struct virtq *q, const struct guest_mem *m);

/* Copies bytes out of the chain's readable part, from `offset`; returns
 * the count copied (short at the end of the readable part). */
uint64_t virtq_chain_read(const struct virtq_chain *c,
			  const struct guest_mem *m, uint64_t offset,
			  void *dst, uint64_t len);
/* Writes bytes into the chain's writable part at `offset` through the
 * gate; returns the count written or -1 on error. */
int64_t virtq_chain_write(const struct virtq_chain *c, struct gate *g,
			  uint64_t offset, const void *src, uint64_t len,
			  struct kg_err *e);

#endif
