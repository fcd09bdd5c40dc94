/* Minimal IPv4 stack: ARP, IPv4, ICMP echo, UDP (see ip.h). */
#include "ip.h"

#define ETH_HLEN 14u
#define ETH_P_IP 0x0800u
#define ETH_P_ARP 0x0806u
#define IP_HLEN 20u
#define UDP_HLEN 8u
#define ARP_LEN 28u
#define PROTO_ICMP 1u
#define PROTO_UDP 17u
#define IP_DF 0x4000u
#define IP_FRAG_MASK 0x3fffu /* MF and the fragment offset */

#define ARP_ENTRIES 16u
#define PENDING_SLOTS 16u

struct arp_entry {
	uint32_t ip;
	uint8_t mac[6];
	bool valid;
};

/* A frame waiting for its next hop's MAC. */
struct pending {
	uint32_t hop, len;
	bool used;
	uint8_t frame[NET_FRAME_MAX];
};

static struct {
	uint32_t addr, mask, gw;
	unsigned prefix;
	uint8_t mac[6];
	uint16_t ip_id;
	uint32_t round; /* ip_poll calls: rate-limits ARP requests */
	struct arp_entry arp[ARP_ENTRIES];
	unsigned arp_next; /* round-robin replacement */
	struct pending *pend;
	unsigned pend_next;
	uint32_t last_req_ip, last_req_round;
} st;

static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

/* Wire fields are big-endian and frames are not aligned: bytes only. */
static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}
static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}
static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Internet checksum (RFC 1071): add 16-bit words, fold, complement. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, uint32_t n)
{
	uint32_t i;
	for (i = 0; i + 1 < n; i += 2)
		sum += get16(p + i);
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	return sum;
}
static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}
static uint32_t pseudo_sum(uint32_t src, uint32_t dst, uint32_t proto,
			   uint32_t len)
{
	return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) +
	       proto + len;
}

char *ip_fmt(uint32_t ip, char *buf)
{
	sdk_snprintf(buf, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xff,
		     (ip >> 8) & 0xff, ip & 0xff);
	return buf;
}

bool ip_parse(const char *s, uint32_t *ip, unsigned *prefix)
{
	uint32_t v = 0;
	for (int part = 0; part < 4; part++) {
		unsigned n = 0, digits = 0;
		while (*s >= '0' && *s <= '9' && digits < 4) {
			n = n * 10 + (unsigned)(*s++ - '0');
			digits++;
		}
		if (!digits || n > 255)
			return false;
		v = v << 8 | n;
		if (part < 3 && *s++ != '.')
			return false;
	}
	unsigned p = 24;
	if (prefix && *s == '/') {
		s++;
		p = 0;
		if (*s < '0' || *s > '9')
			return false;
		while (*s >= '0' && *s <= '9' && p <= 32)
			p = p * 10 + (unsigned)(*s++ - '0');
		if (p > 32)
			return false;
	}
	if (*s)
		return false;
	*ip = v;
	if (prefix)
		*prefix = p;
	return true;
}

int ip_open(const char **why)
{
	char arg[40] = IP_DEFAULT_ADDR;
	memset(&st, 0, sizeof(st));
	sdk_arg_str("ip", arg, sizeof(arg));
	if (!ip_parse(arg, &st.addr, &st.prefix)) {
		*why = "bad ip= argument (expected A.B.C.D[/PREFIX])";
		return IP_EARG;
	}
	st.mask = st.prefix ? ~0u << (32 - st.prefix) : 0;
	if (sdk_arg_str("gw", arg, sizeof(arg)) &&
	    !ip_parse(arg, &st.gw, NULL)) {
		*why = "bad gw= argument (expected A.B.C.D)";
		return IP_EARG;
	}
	st.pend = sdk_alloc(sizeof(struct pending) * PENDING_SLOTS);
	if (!st.pend) {
		*why = "out of memory for the IP stack";
		return IP_EDEV;
	}
	memset(st.pend, 0, sizeof(struct pending) * PENDING_SLOTS);
	int r = net_open(why);
	if (r < 0)
		return r == -2 ? IP_ENODEV : IP_EDEV;
	net_mac(st.mac);
	return 0;
}

uint32_t ip_addr(void)
{
	return st.addr;
}

unsigned ip_prefix(void)
{
	return st.prefix;
}

static bool on_link(uint32_t ip)
{
	return (ip & st.mask) == (st.addr & st.mask);
}

static struct arp_entry *arp_find(uint32_t ip)
{
	for (unsigned i = 0; i < ARP_ENTRIES; i++)
		if (st.arp[i].valid && st.arp[i].ip == ip)
			return &st.arp[i];
	return NULL;
}

static void eth_header(uint8_t *f, const uint8_t *dst, uint32_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, st.mac, 6);
	put16(f + 12, type);
}

static void arp_send(uint32_t op, const uint8_t *tha, uint32_t tpa,
		     const uint8_t *eth_dst)
{
	uint8_t *f = net_tx_buf();
	if (!f)
		return;
	eth_header(f, eth_dst, ETH_P_ARP);
	uint8_t *a = f + ETH_HLEN;
	put16(a, 1);              /* Ethernet */
	put16(a + 2, ETH_P_IP);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, st.mac, 6);
	put32(a + 14, st.addr);
	memcpy(a + 18, tha, 6);
	put32(a + 24, tpa);
	net_tx_send(f, ETH_HLEN + ARP_LEN);
}

/* Sends the frames that waited for `ip`'s MAC. */
static void pending_release(const struct arp_entry *e)
{
	for (unsigned i = 0; i < PENDING_SLOTS; i++) {
		struct pending *p = &st.pend[i];
		if (!p->used || p->hop != e->ip)
			continue;
		uint8_t *f = net_tx_buf();
		if (!f)
			return;
		memcpy(f, p->frame, p->len);
		memcpy(f, e->mac, 6);
		net_tx_send(f, p->len);
		p->used = false;
	}
}

/* Records ip -> mac; `create` false only refreshes a known entry. */
static void arp_learn(uint32_t ip, const uint8_t *mac, bool create)
{
	struct arp_entry *e = arp_find(ip);
	if (!e) {
		if (!create)
			return;
		e = &st.arp[st.arp_next];
		st.arp_next = (st.arp_next + 1) % ARP_ENTRIES;
		e->ip = ip;
		e->valid = true;
	}
	memcpy(e->mac, mac, 6);
	pending_release(e);
}

/* RFC 826: refresh the sender if known; if the request is for us, learn
 * the sender and answer. */
static void arp_input(const uint8_t *a, uint32_t len)
{
	static const uint8_t zero[6];
	if (len < ARP_LEN || get16(a) != 1 || get16(a + 2) != ETH_P_IP ||
	    a[4] != 6 || a[5] != 4)
		return;
	uint32_t op = get16(a + 6), spa = get32(a + 14), tpa = get32(a + 24);
	const uint8_t *sha = a + 8;
	if (!spa || !memcmp(sha, bcast, 6) || !memcmp(sha, zero, 6))
		return;
	bool for_us = tpa == st.addr;
	arp_learn(spa, sha, for_us);
	if (for_us && op == 1)
		arp_send(2, sha, spa, sha);
}

/* Fills the IP header of frame f (payload already at f + 34) and sends it
 * or parks it until the next hop is resolved. */
static int ip_output(uint8_t *f, uint32_t dst, uint32_t proto,
		     uint32_t plen)
{
	uint32_t hop = on_link(dst) ? dst : st.gw;
	if (!hop || hop == st.addr)
		return -1;
	uint8_t *ip = f + ETH_HLEN;
	ip[0] = 0x45;
	ip[1] = 0;
	put16(ip + 2, IP_HLEN + plen);
	put16(ip + 4, st.ip_id++);
	put16(ip + 6, IP_DF);
	ip[8] = 64;
	ip[9] = (uint8_t)proto;
	put16(ip + 10, 0);
	put32(ip + 12, st.addr);
	put32(ip + 16, dst);
	put16(ip + 10, csum_fold(csum_add(0, ip, IP_HLEN)));
	uint32_t len = ETH_HLEN + IP_HLEN + plen;

	struct arp_entry *e = arp_find(hop);
	if (e) {
		eth_header(f, e->mac, ETH_P_IP);
		net_tx_send(f, len);
		return 0;
	}
	/* Park a copy (f is the TX buffer ARP needs next), oldest first out. */
	struct pending *p = NULL;
	for (unsigned i = 0; i < PENDING_SLOTS && !p; i++)
		if (!st.pend[i].used)
			p = &st.pend[i];
	if (!p) {
		p = &st.pend[st.pend_next];
		st.pend_next = (st.pend_next + 1) % PENDING_SLOTS;
	}
	eth_header(f, bcast, ETH_P_IP);
	memcpy(p->frame, f, len);
	p->hop = hop;
	p->len = len;
	p->used = true;
	if (st.last_req_ip != hop || st.last_req_round != st.round) {
		static const uint8_t zero[6];
		arp_send(1, zero, hop, bcast);
		st.last_req_ip = hop;
		st.last_req_round = st.round;
	}
	return 0;
}

static void icmp_input(const uint8_t *ip, uint32_t hlen, uint32_t tot)
{
	const uint8_t *m = ip + hlen;
	uint32_t n = tot - hlen;
	if (n < 8 || m[0] != 8 || m[1] != 0 ||
	    csum_fold(csum_add(0, m, n)) != 0)
		return; /* only well-formed echo requests */
	uint8_t *f = net_tx_buf();
	if (!f)
		return;
	uint8_t *r = f + ETH_HLEN + IP_HLEN;
	memcpy(r, m, n);
	r[0] = 0; /* echo reply */
	put16(r + 2, 0);
	put16(r + 2, csum_fold(csum_add(0, r, n)));
	ip_output(f, get32(ip + 12), PROTO_ICMP, n);
}

static void udp_input(const uint8_t *ip, uint32_t hlen, uint32_t tot,
		      udp_handler fn, void *ctx)
{
	const uint8_t *u = ip + hlen;
	uint32_t ulen = tot - hlen;
	if (ulen < UDP_HLEN || get16(u + 4) < UDP_HLEN || get16(u + 4) > ulen)
		return;
	ulen = get16(u + 4);
	uint32_t src = get32(ip + 12), dst = get32(ip + 16);
	if (get16(u + 6)) { /* zero: the sender did not checksum */
		uint32_t s = pseudo_sum(src, dst, PROTO_UDP, ulen);
		if (csum_fold(csum_add(s, u, ulen)) != 0)
			return;
	}
	struct udp_meta m = { src, get16(u), get16(u + 2) };
	if (fn)
		fn(ctx, &m, u + UDP_HLEN, ulen - UDP_HLEN);
}

static void ip_input(const uint8_t *f, const uint8_t *ip, uint32_t len,
		     udp_handler fn, void *ctx)
{
	if (len < IP_HLEN || ip[0] >> 4 != 4)
		return;
	uint32_t hlen = (ip[0] & 0xfu) * 4u, tot = get16(ip + 2);
	if (hlen < IP_HLEN || tot < hlen || tot > len ||
	    csum_fold(csum_add(0, ip, hlen)) != 0)
		return;
	if (get16(ip + 6) & IP_FRAG_MASK)
		return; /* no reassembly: fragments are dropped */
	uint32_t src = get32(ip + 12);
	if (get32(ip + 16) != st.addr)
		return;
	/* A neighbour that talks to us will want an answer: remember its
	 * MAC now (saves an ARP round trip; refreshes a stale entry). */
	if (on_link(src) && src != st.addr && src != (st.addr | ~st.mask))
		arp_learn(src, f + 6, true);
	if (ip[9] == PROTO_ICMP)
		icmp_input(ip, hlen, tot);
	else if (ip[9] == PROTO_UDP)
		udp_input(ip, hlen, tot, fn, ctx);
}

int ip_poll(unsigned budget, udp_handler fn, void *ctx)
{
	struct net_frame fr;
	int n = 0;
	st.round++;
	while ((unsigned)n < budget && net_rx_next(&fr)) {
		const uint8_t *f = fr.data;
		bool to_us = !memcmp(f, st.mac, 6) || !memcmp(f, bcast, 6);
		uint32_t type = get16(f + 12);
		if (to_us && type == ETH_P_ARP)
			arp_input(f + ETH_HLEN, fr.len - ETH_HLEN);
		else if (to_us && type == ETH_P_IP)
			ip_input(f, f + ETH_HLEN, fr.len - ETH_HLEN, fn, ctx);
		net_rx_release(&fr);
		n++;
	}
	if (n)
		net_rx_kick();
	net_tx_kick();
	return net_broken() ? -1 : n;
}

int udp_send(uint32_t dst_ip, uint16_t src_port, uint16_t dst_port,
	     const void *data, uint32_t len)
{
	if (len > UDP_PAYLOAD_MAX)
		return -1;
	uint8_t *f = net_tx_buf();
	if (!f)
		return -1;
	uint8_t *u = f + ETH_HLEN + IP_HLEN;
	uint32_t ulen = UDP_HLEN + len;
	put16(u, src_port);
	put16(u + 2, dst_port);
	put16(u + 4, ulen);
	put16(u + 6, 0);
	memcpy(u + UDP_HLEN, data, len);
	uint32_t s = pseudo_sum(st.addr, dst_ip, PROTO_UDP, ulen);
	uint16_t c = csum_fold(csum_add(s, u, ulen));
	put16(u + 6, c ? c : 0xffff); /* 0 would mean "no checksum" */
	return ip_output(f, dst_ip, PROTO_UDP, ulen);
}

void ip_flush(void)
{
	net_tx_kick();
}
