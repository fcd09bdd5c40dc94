/* virtio-mmio modern transport and split virtqueues (see virtio.h). */
#include "virtio.h"

/* Register offsets (virtio 1.x, 4.2.2). */
#define R_MAGIC 0x000u
#define R_VERSION 0x004u
#define R_DEVICE_ID 0x008u
#define R_DEVICE_FEATURES 0x010u
#define R_DEVICE_FEATURES_SEL 0x014u
#define R_DRIVER_FEATURES 0x020u
#define R_DRIVER_FEATURES_SEL 0x024u
#define R_QUEUE_SEL 0x030u
#define R_QUEUE_NUM_MAX 0x034u
#define R_QUEUE_NUM 0x038u
#define R_QUEUE_READY 0x044u
#define R_QUEUE_NOTIFY 0x050u
#define R_STATUS 0x070u
#define R_QUEUE_DESC_LO 0x080u
#define R_QUEUE_DESC_HI 0x084u
#define R_QUEUE_DRIVER_LO 0x090u
#define R_QUEUE_DRIVER_HI 0x094u
#define R_QUEUE_DEVICE_LO 0x0a0u
#define R_QUEUE_DEVICE_HI 0x0a4u
#define R_CONFIG_GENERATION 0x0fcu
#define R_CONFIG 0x100u

/* virtio_wait_step: how long one step may idle (deterministic mode), and
 * after how many steps it reads Status. */
#define WAIT_IDLE_US 1000u
#define WAIT_CHECK_MASK ((1u << 20) - 1)
#define WAIT_CHECK_MASK_DET 63u

#define VIRTIO_MMIO_MAGIC 0x74726976u /* "virt" */
#define VIRTIO_MMIO_VERSION 2u

/* Every access below is one VM exit: keep them out of loops. */
static uint32_t rd32(const struct virtio_dev *d, unsigned off)
{
	return *(volatile uint32_t *)(d->base + off);
}

static void wr32(const struct virtio_dev *d, unsigned off, uint32_t v)
{
	*(volatile uint32_t *)(d->base + off) = v;
}

/* Parses an unsigned number (decimal or 0x hex) with an optional K/M/G
 * suffix, as the kernel's memparse does for these entries. */
static const char *parse_num(const char *p, uint64_t *out, bool suffix)
{
	unsigned base = 10;
	uint64_t v = 0;
	const char *start;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	for (start = p;; p++) {
		unsigned dig;
		if (*p >= '0' && *p <= '9')
			dig = (unsigned)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			dig = (unsigned)(*p - 'a' + 10);
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			dig = (unsigned)(*p - 'A' + 10);
		else
			break;
		v = v * base + dig;
	}
	if (p == start)
		return NULL;
	if (suffix && (*p == 'K' || *p == 'k'))
		v <<= 10, p++;
	else if (suffix && (*p == 'M' || *p == 'm'))
		v <<= 20, p++;
	else if (suffix && (*p == 'G' || *p == 'g'))
		v <<= 30, p++;
	*out = v;
	return p;
}

/* One `virtio_mmio.device=SIZE@BASE:IRQ[:ID]` word; false if malformed. */
static bool parse_entry(const char *w, uint64_t *base, uint32_t *irq)
{
	static const char key[] = "virtio_mmio.device=";
	uint64_t size, b, i;
	if (strncmp(w, key, sizeof(key) - 1))
		return false;
	w += sizeof(key) - 1;
	if (!(w = parse_num(w, &size, true)) || *w++ != '@')
		return false;
	if (!(w = parse_num(w, &b, true)) || *w++ != ':')
		return false;
	if (!(w = parse_num(w, &i, false)) || (*w && *w != ' ' && *w != ':'))
		return false;
	/* The registers must be inside the SDK's 4 GiB identity map. */
	if (size < R_CONFIG || b >= (1ull << 32) - size)
		return false;
	*base = b;
	*irq = (uint32_t)i;
	return true;
}

bool virtio_find(uint32_t device_id, unsigned nth, struct virtio_dev *d)
{
	const char *p = sdk_cmdline();
	while (*p) {
		while (*p == ' ')
			p++;
		const char *w = p;
		while (*p && *p != ' ')
			p++;
		uint64_t base;
		uint32_t irq;
		if (!parse_entry(w, &base, &irq))
			continue;
		struct virtio_dev c = { .base = (uintptr_t)base, .irq = irq };
		if (rd32(&c, R_MAGIC) != VIRTIO_MMIO_MAGIC ||
		    rd32(&c, R_VERSION) != VIRTIO_MMIO_VERSION)
			continue; /* legacy (Version 1) devices are not driven */
		c.device_id = rd32(&c, R_DEVICE_ID);
		if (c.device_id != device_id)
			continue;
		if (nth-- == 0) {
			*d = c;
			return true;
		}
	}
	return false;
}

static void set_status(struct virtio_dev *d, uint32_t st)
{
	d->status = st;
	wr32(d, R_STATUS, st);
}

/* Gives up on the device: FAILED on top of what we had set. */
static int fail(struct virtio_dev *d, const char *reason, const char **why)
{
	set_status(d, d->status | VIRTIO_STATUS_FAILED);
	d->broken = true;
	*why = reason;
	return -1;
}

int virtio_init(struct virtio_dev *d, uint64_t wanted, uint64_t required,
		const char **why)
{
	d->broken = false;
	set_status(d, 0); /* reset */
	if (rd32(d, R_STATUS) != 0)
		return fail(d, "device did not reset", why);
	set_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
	set_status(d, d->status | VIRTIO_STATUS_DRIVER);

	wr32(d, R_DEVICE_FEATURES_SEL, 0);
	uint64_t offered = rd32(d, R_DEVICE_FEATURES);
	wr32(d, R_DEVICE_FEATURES_SEL, 1);
	offered |= (uint64_t)rd32(d, R_DEVICE_FEATURES) << 32;
	required |= VIRTIO_F_VERSION_1;
	if ((offered & required) != required)
		return fail(d,
			    offered & VIRTIO_F_VERSION_1
				    ? "device lacks a required feature"
				    : "device does not offer VIRTIO_F_VERSION_1",
			    why);
	d->features = offered & (wanted | required);
	wr32(d, R_DRIVER_FEATURES_SEL, 0);
	wr32(d, R_DRIVER_FEATURES, (uint32_t)d->features);
	wr32(d, R_DRIVER_FEATURES_SEL, 1);
	wr32(d, R_DRIVER_FEATURES, (uint32_t)(d->features >> 32));
	set_status(d, d->status | VIRTIO_STATUS_FEATURES_OK);
	if (!(rd32(d, R_STATUS) & VIRTIO_STATUS_FEATURES_OK))
		return fail(d, "device refused the features (FEATURES_OK)",
			    why);
	return 0;
}

void virtio_ready(struct virtio_dev *d)
{
	set_status(d, d->status | VIRTIO_STATUS_DRIVER_OK);
}

bool virtio_check_broken(struct virtio_dev *d)
{
	if (!d->broken && (rd32(d, R_STATUS) & VIRTIO_STATUS_NEEDS_RESET))
		d->broken = true;
	return d->broken;
}

uint8_t virtio_cfg8(struct virtio_dev *d, unsigned off)
{
	return *(volatile uint8_t *)(d->base + R_CONFIG + off);
}

uint16_t virtio_cfg16(struct virtio_dev *d, unsigned off)
{
	return *(volatile uint16_t *)(d->base + R_CONFIG + off);
}

uint32_t virtio_cfg32(struct virtio_dev *d, unsigned off)
{
	return rd32(d, R_CONFIG + off);
}

uint64_t virtio_cfg64(struct virtio_dev *d, unsigned off)
{
	uint32_t gen, lo, hi;
	do {
		gen = rd32(d, R_CONFIG_GENERATION);
		lo = rd32(d, R_CONFIG + off);
		hi = rd32(d, R_CONFIG + off + 4);
	} while (gen != rd32(d, R_CONFIG_GENERATION));
	return ((uint64_t)hi << 32) | lo;
}

int virtq_setup(struct virtio_dev *d, struct virtq *q, unsigned index,
		unsigned want, const char **why)
{
	wr32(d, R_QUEUE_SEL, index);
	if (rd32(d, R_QUEUE_READY))
		return fail(d, "virtqueue already in use", why);
	uint32_t max = rd32(d, R_QUEUE_NUM_MAX);
	if (max == 0)
		return fail(d, "virtqueue not available", why);
	unsigned size = 1;
	while (size * 2 <= want && size * 2 <= max && size < 32768)
		size *= 2;

	/* One allocation: descriptors (16-aligned), avail (2), used (4). */
	size_t avail_off = 16u * size;
	size_t used_off = (avail_off + 6 + 2u * size + 3) & ~(size_t)3;
	size_t total = used_off + 6 + 8u * size;
	uint8_t *mem = sdk_alloc(total);
	if (!mem)
		return fail(d, "out of memory for a virtqueue", why);
	memset(mem, 0, total);

	memset(q, 0, sizeof(*q));
	q->dev = d;
	q->index = (uint16_t)index;
	q->size = (uint16_t)size;
	q->desc = (struct vring_desc *)mem;
	q->avail = (volatile struct vring_avail *)(mem + avail_off);
	q->used = (volatile struct vring_used *)(mem + used_off);
	for (unsigned i = 0; i < size; i++)
		q->desc[i].next = (uint16_t)(i + 1);
	q->num_free = (uint16_t)size;
	/* We poll the used ring: interrupts would only cost the host work. */
	q->avail->flags = VRING_AVAIL_F_NO_INTERRUPT;

	uint64_t da = (uintptr_t)q->desc, aa = (uintptr_t)q->avail,
		 ua = (uintptr_t)q->used;
	wr32(d, R_QUEUE_NUM, size);
	wr32(d, R_QUEUE_DESC_LO, (uint32_t)da);
	wr32(d, R_QUEUE_DESC_HI, (uint32_t)(da >> 32));
	wr32(d, R_QUEUE_DRIVER_LO, (uint32_t)aa);
	wr32(d, R_QUEUE_DRIVER_HI, (uint32_t)(aa >> 32));
	wr32(d, R_QUEUE_DEVICE_LO, (uint32_t)ua);
	wr32(d, R_QUEUE_DEVICE_HI, (uint32_t)(ua >> 32));
	wr32(d, R_QUEUE_READY, 1);
	return 0;
}

int virtq_add(struct virtq *q, const struct virtq_buf *bufs, unsigned n)
{
	if (n == 0 || n > q->num_free)
		return -1;
	uint16_t head = q->free_head, i = head, last = head;
	for (unsigned k = 0; k < n; k++) {
		struct vring_desc *dsc = &q->desc[i];
		dsc->addr = (uintptr_t)bufs[k].addr;
		dsc->len = bufs[k].len;
		dsc->flags = (uint16_t)((bufs[k].device_writes ? VRING_DESC_F_WRITE
							       : 0) |
					(k + 1 < n ? VRING_DESC_F_NEXT : 0));
		last = i;
		i = dsc->next;
	}
	q->free_head = q->desc[last].next;
	q->num_free = (uint16_t)(q->num_free - n);
	q->avail->ring[q->avail_idx & (q->size - 1)] = head;
	virtio_barrier(); /* the entry before the index that publishes it */
	q->avail->idx = ++q->avail_idx;
	q->unkicked++;
	return head;
}

void virtq_kick(struct virtq *q)
{
	if (!q->unkicked)
		return;
	q->unkicked = 0;
	virtio_mb(); /* avail->idx store before the used->flags load */
	if (!(q->used->flags & VRING_USED_F_NO_NOTIFY))
		wr32(q->dev, R_QUEUE_NOTIFY, q->index);
}

bool virtq_get(struct virtq *q, uint32_t *id, uint32_t *len)
{
	if (q->used->idx == q->last_used)
		return false;
	virtio_barrier(); /* the index before the element it covers */
	volatile struct vring_used_elem *e =
		&q->used->ring[q->last_used & (q->size - 1)];
	uint32_t head = e->id, n = 1;
	*len = e->len;
	q->last_used++;
	if (head >= q->size) { /* a device bug: stop trusting it */
		q->dev->broken = true;
		return false;
	}
	uint16_t i = (uint16_t)head;
	while (q->desc[i].flags & VRING_DESC_F_NEXT) {
		i = q->desc[i].next;
		n++;
	}
	q->desc[i].next = q->free_head;
	q->free_head = (uint16_t)head;
	q->num_free = (uint16_t)(q->num_free + n);
	*id = head;
	return true;
}

bool virtio_wait_step(struct virtio_dev *d, uint64_t *spins)
{
	/* A deterministic step is already an exit that may block for up to
	 * WAIT_IDLE_US, so Status (one more exit) is read after far fewer
	 * steps than the 2^20 pauses of a free-running wait. */
	uint64_t mask = sdk_deterministic() ? WAIT_CHECK_MASK_DET
					    : WAIT_CHECK_MASK;
	sdk_idle(WAIT_IDLE_US);
	if ((++*spins & mask) == 0)
		return !virtio_check_broken(d);
	return !d->broken;
}
