/*
 * virtio-net with a TAP backend (--net tap:IFNAME[,mac=MAC]). Transmit runs
 * on the notifying vCPU (one write(2) per frame to a non-blocking TAP: a
 * full TAP drops, as a wire would); receive runs on the device's thread,
 * which stops reading the TAP while the guest has no receive buffers, so
 * the kernel queue provides the backpressure. Received frames enter guest
 * RAM through the input gate.
 */
#ifndef KG_VIRTIO_NET_H
#define KG_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>
#include "base/err.h"

struct vm;
struct virtio_net;
struct virtio_mmio;

struct net_spec {
	char ifname[16]; /* IFNAMSIZ */
	uint8_t mac[6];
	/* Set by code: no TAP (replaying a recording: the device exists for
	 * its registers and never sends or receives). */
	bool detached;
};

/* Parses "tap:IFNAME[,mac=xx:xx:xx:xx:xx:xx]" (pure); without mac=, a
 * locally administered MAC derived from the interface name. */
int net_spec_parse(const char *s, struct net_spec *n, struct kg_err *e);

struct virtio_net *virtio_net_create(struct vm *vm, const struct net_spec *n,
				     uint64_t base, unsigned irq,
				     struct kg_err *e);
void virtio_net_reset(struct virtio_net *n);
/* Its transport (state tables, quiesce). */
struct virtio_mmio *virtio_net_transport(struct virtio_net *n);
void virtio_net_destroy(struct virtio_net *n);
/* Announces the guest's MAC on the TAP with a broadcast RARP frame (what
 * QEMU's announce-self and VMware send after a move), so that switches
 * learn the VM's new port before the guest itself sends anything. */
int virtio_net_announce(struct virtio_net *n, struct kg_err *e);

#endif
