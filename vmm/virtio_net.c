#include "virtio_net.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "virtio_mmio.h"
#include "vm.h"
#include "base/log.h"

#define VIRTIO_ID_NET 1
#define VIRTIO_NET_F_MAC (1ull << 5)
#define VIRTIO_NET_F_STATUS (1ull << 16)
#define NET_HDR_LEN 12 /* struct virtio_net_hdr_v1 */
#define FRAME_MAX 65550
enum { RXQ = 0, TXQ = 1 };

struct virtio_net {
	struct virtio_mmio t;
	struct vm *vm;
	struct net_spec spec;
	int tap_fd, kick_fd, tx_fd; /* kick: new RX buffers; tx: frames */
	pthread_t rx_thread;
	bool rx_started;
	atomic_bool stop;
	struct virtq_chain rx_chain, tx_chain;
	uint8_t rx_frame[NET_HDR_LEN + FRAME_MAX];
	uint8_t tx_frame[NET_HDR_LEN + FRAME_MAX];
	uint64_t tx_dropped, rx_dropped;
};

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Exactly six colon-separated pairs of hex digits (sscanf would take
 * signs and spaces). */
static int parse_mac(const char *s, uint8_t mac[6])
{
	for (int i = 0; i < 6; i++, s += 3) {
		int hi = hex_digit(s[0]), lo = hi < 0 ? -1 : hex_digit(s[1]);
		if (lo < 0 || s[2] != (i == 5 ? '\0' : ':'))
			return -1;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int net_spec_parse(const char *s, struct net_spec *n, struct kg_err *e)
{
	memset(n, 0, sizeof(*n));
	if (strncmp(s, "tap:", 4))
		return kg_errf(e, "bad network '%.64s': expected tap:IFNAME"
			       "[,mac=MAC]", s);
	const char *name = s + 4, *comma = strchr(name, ',');
	size_t len = comma ? (size_t)(comma - name) : strlen(name);
	if (len == 0 || len >= sizeof(n->ifname))
		return kg_errf(e, "bad network '%.64s': interface name must be "
			       "1 to %zu characters", s, sizeof(n->ifname) - 1);
	memcpy(n->ifname, name, len);
	/* Default: 52:54:00 (QEMU's prefix) + a hash of the name. */
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)name[i]) * 16777619u;
	const uint8_t def[6] = { 0x52, 0x54, 0x00, (uint8_t)(h >> 16),
				 (uint8_t)(h >> 8), (uint8_t)h };
	memcpy(n->mac, def, 6);
	if (!comma)
		return 0;
	uint8_t m[6];
	if (strncmp(comma + 1, "mac=", 4) || parse_mac(comma + 5, m) < 0)
		return kg_errf(e, "bad network option '%.64s' (expected "
			       "mac=xx:xx:xx:xx:xx:xx)", comma + 1);
	if (m[0] & 1)
		return kg_errf(e, "bad MAC in '%.64s': multicast bit set", s);
	memcpy(n->mac, m, 6);
	return 0;
}

static void config_read(void *dev, uint64_t off, void *data, unsigned size)
{
	struct virtio_net *n = dev;
	uint8_t cfg[8] = { 0 };
	memcpy(cfg, n->spec.mac, 6);
	cfg[6] = 1; /* VIRTIO_NET_S_LINK_UP */
	if (off < sizeof(cfg) && size <= sizeof(cfg) - off)
		memcpy(data, cfg + off, size);
}

static void config_write(void *dev, uint64_t off, const void *data,
			 unsigned size)
{
	(void)dev, (void)off, (void)data, (void)size;
}

/* A frame to the wire: now, or when the output rule lets it go. */
static void tap_emit(void *ctx, const void *frame, size_t len)
{
	struct virtio_net *n = ctx;
	if (write(n->tap_fd, frame, len) < 0)
		n->tx_dropped++;
}

/* With the transport lock held, on the notifying vCPU. */
static void transmit(struct virtio_net *n)
{
	struct virtio_mmio *t = &n->t;
	struct virtq *q = &t->queues[TXQ];
	struct kg_err e;
	bool pushed = false;
	while (virtio_mmio_queue_live(t, TXQ)) {
		int r = virtq_pop(q, &n->vm->mem, &n->tx_chain, &e);
		if (r < 0)
			virtio_mmio_set_broken(t, e.msg);
		if (r <= 0)
			break;
		uint64_t len = n->tx_chain.readable_len;
		if (len > NET_HDR_LEN && len <= sizeof(n->tx_frame)) {
			virtq_chain_read(&n->tx_chain, &n->vm->mem, 0,
					 n->tx_frame, len);
			outbuf_put(n->vm->out, tap_emit, n,
				   n->tx_frame + NET_HDR_LEN, len - NET_HDR_LEN);
		} else {
			n->tx_dropped++; /* runt or giant: dropped, as a NIC would */
		}
		if (virtq_push(q, &n->vm->gate, n->tx_chain.head, 0, &e) < 0) {
			virtio_mmio_set_broken(t, e.msg);
			break;
		}
		pushed = true;
	}
	if (pushed)
		virtio_mmio_notify_used(t, TXQ);
}

static void notify(void *dev, unsigned queue)
{
	struct virtio_net *n = dev;
	if (queue == TXQ) {
		transmit(n);
	} else {
		uint64_t one = 1; /* new receive buffers: wake the thread */
		ssize_t r = write(n->kick_fd, &one, sizeof(one));
		(void)r;
	}
}

static void dev_reset(void *dev)
{
	(void)dev;
}

static const struct virtio_dev_ops net_ops = {
	.name = "virtio-net", .device_id = VIRTIO_ID_NET, .nqueues = 2,
	.config_read = config_read, .config_write = config_write,
	.notify = notify, .reset = dev_reset,
};

/* Delivers the pending frame (rx_frame, len bytes with header). Returns 1
 * delivered or dropped, 0 no receive buffer available. */
static int deliver(struct virtio_net *n, size_t len)
{
	struct virtio_mmio *t = &n->t;
	struct kg_err e;
	int done = 1;
	pthread_mutex_lock(&t->lock);
	if (!virtio_mmio_queue_live(t, RXQ)) {
		n->rx_dropped++; /* no driver: the wire drops it */
		goto out;
	}
	struct virtq *q = &t->queues[RXQ];
	int r = virtq_pop(q, &n->vm->mem, &n->rx_chain, &e);
	if (r < 0) {
		virtio_mmio_set_broken(t, e.msg);
		goto out;
	}
	if (r == 0) {
		done = 0;
		goto out;
	}
	uint64_t room = n->rx_chain.writable_len;
	uint64_t put = len <= room ? len : 0; /* too small a buffer: drop */
	if (!put)
		n->rx_dropped++;
	if ((put && virtq_chain_write(&n->rx_chain, &n->vm->gate, 0,
				      n->rx_frame, put, &e) < 0) ||
	    virtq_push(q, &n->vm->gate, n->rx_chain.head, (uint32_t)put,
		       &e) < 0) {
		virtio_mmio_set_broken(t, e.msg);
		goto out;
	}
	virtio_mmio_notify_used(t, RXQ);
out:
	pthread_mutex_unlock(&t->lock);
	return done;
}

static void *rx_loop(void *arg)
{
	struct virtio_net *n = arg;
	size_t pending = 0; /* a frame waiting for a receive buffer */
	while (!atomic_load(&n->stop)) {
		struct pollfd p[3] = { { n->kick_fd, POLLIN, 0 },
				       { pending ? -1 : n->tap_fd, POLLIN, 0 },
				       { n->tx_fd, POLLIN, 0 } };
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			kg_log(KG_LOG_INFO, "virtio-net %s: poll: %s",
				n->spec.ifname, strerror(errno));
			return NULL;
		}
		if (p[0].revents) {
			uint64_t v;
			ssize_t r = read(n->kick_fd, &v, sizeof(v));
			(void)r;
		}
		if (p[2].revents) {
			uint64_t v;
			ssize_t r = read(n->tx_fd, &v, sizeof(v));
			(void)r;
			pthread_mutex_lock(&n->t.lock);
			transmit(n);
			pthread_mutex_unlock(&n->t.lock);
		}
		if (!pending && (p[1].revents & POLLIN)) {
			ssize_t r = read(n->tap_fd, n->rx_frame + NET_HDR_LEN,
					 FRAME_MAX);
			if (r > 0) {
				memset(n->rx_frame, 0, NET_HDR_LEN);
				n->rx_frame[10] = 1; /* num_buffers */
				pending = NET_HDR_LEN + (size_t)r;
			}
		}
		if (pending && deliver(n, pending))
			pending = 0;
	}
	return NULL;
}

int virtio_net_announce(struct virtio_net *n, struct kg_err *e)
{
	uint8_t f[60] = { 0 }; /* the minimum Ethernet frame, padded */
	const uint8_t *mac = n->spec.mac;
	memset(f, 0xff, 6);
	memcpy(f + 6, mac, 6);
	f[12] = 0x80, f[13] = 0x35;      /* RARP */
	f[14] = 0, f[15] = 1;            /* hardware: Ethernet */
	f[16] = 0x08, f[17] = 0x00;      /* protocol: IPv4 */
	f[18] = 6, f[19] = 4;
	f[20] = 0, f[21] = 3;            /* reverse request */
	memcpy(f + 22, mac, 6);          /* sender hardware address */
	memcpy(f + 32, mac, 6);          /* target hardware address */
	if (write(n->tap_fd, f, sizeof(f)) != (ssize_t)sizeof(f))
		return kg_errno(e, "--net tap:%s: announcing the MAC",
				n->spec.ifname);
	return 0;
}

static int open_tap(const struct net_spec *s, struct kg_err *e)
{
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return kg_errno(e, "--net tap:%s: open /dev/net/tun", s->ifname);
	struct ifreq ifr = { 0 };
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	memcpy(ifr.ifr_name, s->ifname, strlen(s->ifname));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		kg_errno(e, "--net tap:%s: TUNSETIFF", s->ifname);
		close(fd);
		return -1;
	}
	return fd;
}

struct virtio_net *virtio_net_create(struct vm *vm, const struct net_spec *s,
				     uint64_t base, unsigned irq,
				     struct kg_err *e)
{
	struct virtio_net *n = calloc(1, sizeof(*n));
	if (!n) {
		kg_errf(e, "out of memory");
		return NULL;
	}
	n->vm = vm;
	n->spec = *s;
	n->kick_fd = n->tx_fd = -1;
	n->tap_fd = s->detached ? -1 : open_tap(s, e);
	if (n->tap_fd < 0 && !s->detached)
		goto fail;
	n->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	n->tx_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (n->kick_fd < 0 || n->tx_fd < 0) {
		kg_errno(e, "--net tap:%s: eventfd", s->ifname);
		goto fail;
	}
	if (virtio_mmio_init(&n->t, vm, base, irq, &net_ops, n,
			     VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS, e) < 0)
		goto fail;
	/* Notifications go to the device thread without an exit; if KVM
	 * refuses, they exit and notify() handles them. */
	struct kg_err ignored;
	virtio_mmio_ioeventfd(&n->t, RXQ, n->kick_fd, &ignored);
	virtio_mmio_ioeventfd(&n->t, TXQ, n->tx_fd, &ignored);
	int r = pthread_create(&n->rx_thread, NULL, rx_loop, n);
	if (r) {
		errno = r;
		kg_errno(e, "--net tap:%s: pthread_create", s->ifname);
		goto fail;
	}
	n->rx_started = true;
	return n;
fail:
	virtio_net_destroy(n);
	return NULL;
}

void virtio_net_reset(struct virtio_net *n)
{
	virtio_mmio_reset(&n->t);
}

void virtio_net_destroy(struct virtio_net *n)
{
	if (!n)
		return;
	if (n->rx_started) {
		uint64_t one = 1;
		atomic_store(&n->stop, true);
		ssize_t r = write(n->kick_fd, &one, sizeof(one));
		(void)r;
		pthread_join(n->rx_thread, NULL);
	}
	virtio_mmio_destroy(&n->t);
	if (n->kick_fd >= 0)
		close(n->kick_fd);
	if (n->tx_fd >= 0)
		close(n->tx_fd);
	if (n->tap_fd >= 0)
		close(n->tap_fd);
	free(n);
}

struct virtio_mmio *virtio_net_transport(struct virtio_net *n)
{
	return &n->t;
}
