/*
 * A minimal IPv4 stack over net.h: ARP (answers requests for our address,
 * a small cache, resolution before sending), IPv4 without fragments
 * (fragments are dropped, DF is set on everything we send), ICMP echo
 * reply, and UDP (checksum computed on send, verified on receive when
 * non-zero). Polled: ip_poll() processes what arrived and hands UDP
 * datagrams to a callback; sends are queued and announced with one notify
 * per batch (ip_flush()).
 *
 * Configuration from the command line: `ip=A.B.C.D[/PREFIX]` (default
 * 10.0.0.2/24) and optionally `gw=A.B.C.D` for destinations off the
 * subnet. The MAC is the device's.
 *
 * Addresses and ports are in host byte order in this interface.
 */
#ifndef KAGAMI_SDK_IP_H
#define KAGAMI_SDK_IP_H

#include "net.h"

#define IP_DEFAULT_ADDR "10.0.0.2/24"
/* The most UDP payload one unfragmented datagram carries (MTU 1500). */
#define UDP_PAYLOAD_MAX 1472u

/* Opens the NIC and reads the configuration: 0, or one of these with a
 * one-line reason in `why`. */
#define IP_EDEV (-1)   /* the device failed to set up, or no memory */
#define IP_ENODEV (-2) /* no virtio-net device on the command line */
#define IP_EARG (-3)   /* a bad ip= or gw= argument */
int ip_open(const char **why);
uint32_t ip_addr(void);
unsigned ip_prefix(void);
/* "A.B.C.D" into buf (at least 16 bytes); returns buf. */
char *ip_fmt(uint32_t ip, char *buf);
/* Parses "A.B.C.D" or, when prefix is not NULL, "A.B.C.D[/P]" (P
 * defaults to 24). False when malformed. */
bool ip_parse(const char *s, uint32_t *ip, unsigned *prefix);

struct udp_meta {
	uint32_t src_ip;
	uint16_t src_port, dst_port;
};
typedef void (*udp_handler)(void *ctx, const struct udp_meta *m,
			    const uint8_t *data, uint32_t len);

/* Processes up to `budget` received frames (memory reads only when none
 * arrived), refills the RX ring, and notifies TX for any ARP/ICMP
 * replies (and sends the handler made). Returns the frames processed, or
 * -1 once the device has asked for a reset. It never idles: a caller
 * whose round found nothing to do calls sdk_idle(), or, in deterministic
 * mode, nothing ever arrives. */
int ip_poll(unsigned budget, udp_handler fn, void *ctx);

/* Queues one datagram (at most UDP_PAYLOAD_MAX bytes). When the next
 * hop's MAC is unknown the datagram waits (a few slots) for the ARP reply
 * and an ARP request goes out. 0, or -1: no route, too big, NIC broken. */
int udp_send(uint32_t dst_ip, uint16_t src_port, uint16_t dst_port,
	     const void *data, uint32_t len);
/* Notifies the device once for everything queued since the last flush. */
void ip_flush(void);

#endif
