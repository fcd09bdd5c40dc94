/* virtio-net driver (virtio 1.x, 5.1): see net.h. */
#include "net.h"

#define VIRTIO_NET_F_MAC (1ull << 5)
#define CFG_MAC 0

#define RXQ 0u
#define TXQ 1u
#define QUEUE_WANT 256u
#define BUF_SIZE 2048u
/* struct virtio_net_hdr_v1: flags, gso_type, hdr_len, gso_size,
 * csum_start, csum_offset, num_buffers. All zero on TX: no offloads. */
#define HDR_LEN 12u
/* net_rx_next reads Status once per IDLE_CHECK_MASK + 1 empty polls. In
 * deterministic mode the caller idles between polls (an exit, up to
 * milliseconds each), so far fewer polls span a comparable time. */
#define IDLE_CHECK_MASK ((1u << 20) - 1)
#define IDLE_CHECK_MASK_DET 1023u

/* Each chain is one descriptor. A TX buffer belongs to its descriptor
 * (tx_mem + id * BUF_SIZE); RX buffers may be released in any order, so
 * rx_buf[id] says which buffer descriptor id carries. */
static struct {
	struct virtio_dev dev;
	struct virtq rx, tx;
	uint8_t *rx_mem, *tx_mem;
	uint16_t *rx_buf;
	uint8_t mac[6];
	uint32_t idle;
} nic;

static void rx_post(uint32_t buf)
{
	struct virtq_buf b = { nic.rx_mem + (size_t)buf * BUF_SIZE, BUF_SIZE,
			       true };
	nic.rx_buf[nic.rx.free_head] = (uint16_t)buf;
	virtq_add(&nic.rx, &b, 1);
}

int net_open(const char **why)
{
	memset(&nic, 0, sizeof(nic));
	if (!virtio_find(VIRTIO_ID_NET, 0, &nic.dev)) {
		*why = "no virtio-net device";
		return -2;
	}
	if (virtio_init(&nic.dev, VIRTIO_NET_F_MAC, 0, why) < 0)
		return -1;
	if (nic.dev.features & VIRTIO_NET_F_MAC) {
		for (unsigned i = 0; i < 6; i++)
			nic.mac[i] = virtio_cfg8(&nic.dev, CFG_MAC + i);
	} else { /* locally administered, unicast */
		static const uint8_t def[6] = { 0x02, 0x6b, 0x67, 0, 0, 1 };
		memcpy(nic.mac, def, 6);
	}
	if (virtq_setup(&nic.dev, &nic.rx, RXQ, QUEUE_WANT, why) < 0 ||
	    virtq_setup(&nic.dev, &nic.tx, TXQ, QUEUE_WANT, why) < 0)
		return -1;
	nic.rx_mem = sdk_alloc((size_t)nic.rx.size * BUF_SIZE);
	nic.tx_mem = sdk_alloc((size_t)nic.tx.size * BUF_SIZE);
	nic.rx_buf = sdk_alloc(sizeof(uint16_t) * nic.rx.size);
	if (!nic.rx_mem || !nic.tx_mem || !nic.rx_buf) {
		*why = "out of memory for network buffers";
		return -1;
	}
	memset(nic.tx_mem, 0, (size_t)nic.tx.size * BUF_SIZE);
	/* The RX ring is full before DRIVER_OK (virtio 3.1.1), so no frame
	 * arriving after it finds the device without a buffer. */
	for (uint32_t i = 0; i < nic.rx.size; i++)
		rx_post(i);
	virtio_ready(&nic.dev);
	virtq_kick(&nic.rx);
	return 0;
}

void net_mac(uint8_t mac[6])
{
	memcpy(mac, nic.mac, 6);
}

bool net_broken(void)
{
	return nic.dev.broken;
}

bool net_rx_next(struct net_frame *f)
{
	uint32_t id, len;
	while (virtq_get(&nic.rx, &id, &len)) {
		nic.idle = 0;
		f->id = nic.rx_buf[id];
		if (len < HDR_LEN + 14 || len > BUF_SIZE) {
			net_rx_release(f); /* runt or nonsense: recycle */
			continue;
		}
		f->data = nic.rx_mem + (size_t)f->id * BUF_SIZE + HDR_LEN;
		f->len = len - HDR_LEN;
		return true;
	}
	/* Nothing arrived: now and then, see whether the device broke. */
	uint32_t mask = sdk_deterministic() ? IDLE_CHECK_MASK_DET
					    : IDLE_CHECK_MASK;
	if ((++nic.idle & mask) == 0)
		virtio_check_broken(&nic.dev);
	return false;
}

void net_rx_release(const struct net_frame *f)
{
	rx_post(f->id);
}

void net_rx_kick(void)
{
	virtq_kick(&nic.rx);
}

static void tx_reclaim(void)
{
	uint32_t id, len;
	while (virtq_get(&nic.tx, &id, &len))
		;
}

uint8_t *net_tx_buf(void)
{
	uint64_t spins = 0;
	tx_reclaim();
	if (!nic.tx.num_free)
		virtq_kick(&nic.tx); /* the device must see what is queued */
	while (!nic.tx.num_free) {
		if (!virtio_wait_step(&nic.dev, &spins))
			return NULL;
		tx_reclaim();
	}
	return nic.tx_mem + (size_t)nic.tx.free_head * BUF_SIZE + HDR_LEN;
}

void net_tx_send(uint8_t *frame, uint32_t len)
{
	uint8_t *hdr = frame - HDR_LEN;
	if (len < NET_ETH_MIN) {
		memset(frame + len, 0, NET_ETH_MIN - len);
		len = NET_ETH_MIN;
	}
	memset(hdr, 0, HDR_LEN);
	struct virtq_buf b = { hdr, HDR_LEN + len, false };
	virtq_add(&nic.tx, &b, 1);
}

void net_tx_kick(void)
{
	virtq_kick(&nic.tx);
}
