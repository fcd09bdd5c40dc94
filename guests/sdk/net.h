/*
 * virtio-net driver over virtio.h: one RX and one TX queue, polled. No
 * offloads and no mergeable buffers, so every frame is one 2 KiB buffer
 * holding the 12-byte virtio_net_hdr_v1 and the Ethernet frame. The RX
 * ring is kept full; TX buffers are reclaimed from the used ring lazily.
 * A guest has one NIC, so the driver state is a singleton.
 */
#ifndef KAGAMI_SDK_NET_H
#define KAGAMI_SDK_NET_H

#include "virtio.h"

#define NET_FRAME_MAX 1514u /* Ethernet header + 1500 bytes of payload */
#define NET_ETH_MIN 60u     /* frames are padded to this (without FCS) */

/* Finds and sets up the first virtio-net device (feature bits used:
 * VERSION_1 required; MAC when offered). Returns 0, -1 with `why`, or -2
 * when there is no virtio-net device on the command line. */
int net_open(const char **why);
void net_mac(uint8_t mac[6]);
/* True once the device asked for a reset (checked every ~1M empty polls;
 * every 1024 in deterministic mode). */
bool net_broken(void);

/* The next received frame, if any (memory reads only: it never waits or
 * idles; a caller with nothing else to do calls sdk_idle() between empty
 * polls, without which no frame arrives in deterministic mode). The
 * buffer stays the caller's until net_rx_release(). */
struct net_frame {
	uint8_t *data;
	uint32_t len;
	uint32_t id; /* the buffer, for net_rx_release */
};
bool net_rx_next(struct net_frame *f);
/* Gives the buffer back to the device; the refill is announced by the
 * next net_rx_kick() (one notify per batch). */
void net_rx_release(const struct net_frame *f);
void net_rx_kick(void);

/* A TX buffer for one frame (NET_FRAME_MAX bytes), waiting for the device
 * to return one if all are in flight; NULL if the device broke. Fill it
 * and pass it to net_tx_send() before asking for the next one. */
uint8_t *net_tx_buf(void);
/* Queues the frame (padded to NET_ETH_MIN); net_tx_kick() notifies. */
void net_tx_send(uint8_t *frame, uint32_t len);
void net_tx_kick(void);

#endif
