#include "virtq.h"

#include <string.h>

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

static uint16_t load16(const void *p)
{
	return __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE);
}

int virtq_check_rings(const struct virtq *q, const struct guest_mem *m,
		      struct kg_err *e)
{
	uint64_t n = q->size;
	if (n == 0 || n > VIRTQ_MAX_SIZE || (n & (n - 1)))
		return kg_errk(e, KG_ERR_GUEST, "queue size %llu is not a power of two in "
			       "1..%d", (unsigned long long)n, VIRTQ_MAX_SIZE);
	if (q->desc_gpa % 16 || q->avail_gpa % 2 || q->used_gpa % 4)
		return kg_errk(e, KG_ERR_GUEST, "misaligned ring address");
	if (!guest_mem_contains(m, q->desc_gpa, 16 * n))
		return kg_errk(e, KG_ERR_GUEST, "descriptor table at 0x%llx is outside "
			       "guest RAM", (unsigned long long)q->desc_gpa);
	if (!guest_mem_contains(m, q->avail_gpa, 6 + 2 * n))
		return kg_errk(e, KG_ERR_GUEST, "available ring at 0x%llx is outside guest "
			       "RAM", (unsigned long long)q->avail_gpa);
	if (!guest_mem_contains(m, q->used_gpa, 6 + 8 * n))
		return kg_errk(e, KG_ERR_GUEST, "used ring at 0x%llx is outside guest RAM",
			       (unsigned long long)q->used_gpa);
	return 0;
}

int virtq_pop(struct virtq *q, const struct guest_mem *m,
	      struct virtq_chain *c, struct kg_err *e)
{
	if (virtq_check_rings(q, m, e) < 0)
		return -1;
	const uint8_t *avail = guest_mem_ptr(m, q->avail_gpa, 6 + 2 * q->size);
	const uint8_t *table = guest_mem_ptr(m, q->desc_gpa, 16 * q->size);
	uint16_t avail_idx = load16(avail + 2);
	uint16_t pending = (uint16_t)(avail_idx - q->last_avail);
	if (pending == 0)
		return 0;
	if (pending > q->size)
		return kg_errk(e, KG_ERR_GUEST, "available index jumped from %u to %u "
			       "(queue size %u)", q->last_avail, avail_idx,
			       q->size);
	uint16_t head = load16(avail + 4 + 2 * (q->last_avail % q->size));
	if (head >= q->size)
		return kg_errk(e, KG_ERR_GUEST, "available ring names descriptor %u of %u",
			       head, q->size);
	memset(c, 0, offsetof(struct virtq_chain, bufs));
	c->head = head;
	uint16_t i = head;
	for (;;) {
		struct vring_desc d;
		memcpy(&d, table + 16 * (size_t)i, sizeof(d));
		if (c->n == q->size)
			return kg_errk(e, KG_ERR_GUEST, "descriptor chain from %u is longer "
				       "than the queue (a loop?)", head);
		if (d.flags & VIRTQ_DESC_F_INDIRECT)
			return kg_errk(e, KG_ERR_GUEST, "indirect descriptor (not offered)");
		if (!guest_mem_contains(m, d.addr, d.len))
			return kg_errk(e, KG_ERR_GUEST, "descriptor %u: buffer 0x%llx+%u is "
				       "outside guest RAM", i,
				       (unsigned long long)d.addr, d.len);
		bool w = d.flags & VIRTQ_DESC_F_WRITE;
		if (!w && c->n > c->nreadable)
			return kg_errk(e, KG_ERR_GUEST, "descriptor %u: readable buffer after "
				       "a writable one", i);
		c->bufs[c->n++] = (struct virtq_buf){ d.addr, d.len, w };
		if (w) {
			c->writable_len += d.len;
		} else {
			c->nreadable++;
			c->readable_len += d.len;
		}
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			break;
		if (d.next >= q->size)
			return kg_errk(e, KG_ERR_GUEST, "descriptor %u: next %u out of range",
				       i, d.next);
		i = d.next;
	}
	q->last_avail++;
	return 1;
}

int virtq_push(struct virtq *q, struct gate *g, uint16_t head,
	       uint32_t written, struct kg_err *e)
{
	struct {
		uint32_t id, len;
	} elem = { head, written };
	if (q->size == 0 || q->size > VIRTQ_MAX_SIZE)
		return kg_errf(e, "push to a queue of size %u", q->size);
	uint64_t slot = q->used_gpa + 4 + 8ull * (q->used_idx % q->size);
	if (gate_guest_write(g, slot, &elem, sizeof(elem), e) < 0)
		return -1;
	/* The element must be visible before the index that publishes it. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	uint16_t idx = (uint16_t)(q->used_idx + 1);
	if (gate_guest_write(g, q->used_gpa + 2, &idx, sizeof(idx), e) < 0)
		return -1;
	q->used_idx = idx;
	return 0;
}

bool virtq_wants_interrupt(const struct virtq *q, const struct guest_mem *m)
{
	const uint8_t *avail = guest_mem_ptr(m, q->avail_gpa, 2);
	return !avail || !(load16(avail) & VIRTQ_AVAIL_F_NO_INTERRUPT);
}

uint64_t virtq_chain_read(const struct virtq_chain *c,
			  const struct guest_mem *m, uint64_t offset,
			  void *dst, uint64_t len)
{
	uint64_t done = 0;
	for (unsigned i = 0; i < c->nreadable && done < len; i++) {
		const struct virtq_buf *b = &c->bufs[i];
		if (offset >= b->len) {
			offset -= b->len;
			continue;
		}
		uint64_t take = b->len - offset;
		if (take > len - done)
			take = len - done;
		const uint8_t *src = guest_mem_ptr(m, b->gpa + offset, take);
		if (!src)
			break; /* validated at pop; RAM cannot shrink */
		memcpy((uint8_t *)dst + done, src, take);
		done += take;
		offset = 0;
	}
	return done;
}

int64_t virtq_chain_write(const struct virtq_chain *c, struct gate *g,
			  uint64_t offset, const void *src, uint64_t len,
			  struct kg_err *e)
{
	uint64_t done = 0;
	for (unsigned i = c->nreadable; i < c->n && done < len; i++) {
		const struct virtq_buf *b = &c->bufs[i];
		if (offset >= b->len) {
			offset -= b->len;
			continue;
		}
		uint64_t take = b->len - offset;
		if (take > len - done)
			take = len - done;
		if (gate_guest_write(g, b->gpa + offset,
				     (const uint8_t *)src + done, take, e) < 0)
			return -1;
		done += take;
		offset = 0;
	}
	return (int64_t)done;
}
