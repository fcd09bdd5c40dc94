/*
 * The handshake: mutual HMAC-SHA256 challenge-response over fresh nonces,
 * then per-direction session keys. Messages (little-endian):
 *
 *   hello (both ways, 48 bytes): magic "KGTH" u32 0x4854474b, version u16
 *       (1), mode u16 (0 no key, 1 key), reserved u32 x2, nonce[32]
 *   client -> server  hello(Nc)
 *   server -> client  hello(Ns), proof_s = HMAC(K, "kagami-transport server" Nc Ns)
 *   client -> server  proof_c = HMAC(K, "kagami-transport client" Nc Ns)
 *   server -> client  accept  = HMAC(K, "kagami-transport accept" Nc Ns)
 *   session keys: HMAC(K, "kagami-transport c2s" Nc Ns) and "... s2c"
 *
 * Each side checks the other's proof over a nonce it chose itself, so a
 * recorded handshake cannot be replayed; the labels differ per role, so a
 * proof cannot be reflected. Without a key (mode 0) only the hellos are
 * exchanged. A side with a key refuses a side without one, and vice versa.
 *
 * Every failure of the exchange itself — a bad hello, a proof that does not
 * match, and also a peer that hangs up or goes silent before it is done —
 * is KG_ERR_AUTH: the peer was not authenticated. Only this side's own
 * failures (getrandom, libcrypto) keep their kinds.
 */
#include "auth.h"
#include "base/le.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#define HELLO_MAGIC 0x4854474bu
#define HELLO_SIZE 48
#define HELLO_VERSION 1
#define PROOF_SIZE 32

struct hello {
	uint16_t version, mode;
	uint8_t nonce[KG_TP_NONCE_SIZE];
};

static void hello_encode(const struct hello *h, uint8_t out[HELLO_SIZE])
{
	memset(out, 0, HELLO_SIZE);
	le32_put(out, HELLO_MAGIC);
	out[4] = (uint8_t)h->version;
	out[5] = (uint8_t)(h->version >> 8);
	out[6] = (uint8_t)h->mode;
	out[7] = (uint8_t)(h->mode >> 8);
	memcpy(out + 16, h->nonce, KG_TP_NONCE_SIZE);
}

static int send_all(struct kg_link *l, const void *p, size_t n, int timeout_ms,
		    struct kg_err *e)
{
	struct iovec v = { (void *)p, n };
	if (l->ops->send(l, &v, 1, &n, 1, timeout_ms, e) < 0) {
		kg_err_prefix(e, "authentication with %s", l->peer);
		return kg_err_as(e, KG_ERR_AUTH);
	}
	return 0;
}

/* what_eof: what an end of stream here means. */
static int recv_all(struct kg_link *l, void *p, size_t n, int timeout_ms,
		    const char *what_eof, struct kg_err *e)
{
	size_t got;
	int r = l->ops->recv(l, p, n, timeout_ms, &got, e);
	if (r < 0) {
		kg_err_prefix(e, "authentication with %s", l->peer);
		return kg_err_as(e, KG_ERR_AUTH);
	}
	if (r == 0)
		return kg_errk(e, KG_ERR_AUTH, "authentication with %s: %s",
			       l->peer, what_eof);
	return 0;
}

static int hello_decode(struct kg_link *l, const uint8_t in[HELLO_SIZE],
			struct hello *h, struct kg_err *e)
{
	if (le32_get(in) != HELLO_MAGIC)
		return kg_errk(e, KG_ERR_AUTH, "authentication with %s: not a kagami transport peer (handshake magic 0x%08x)",
			       l->peer, le32_get(in));
	h->version = (uint16_t)(in[4] | in[5] << 8);
	h->mode = (uint16_t)(in[6] | in[7] << 8);
	if (h->version != HELLO_VERSION)
		return kg_errk(e, KG_ERR_AUTH, "authentication with %s: handshake version %u, this kagami speaks %u",
			       l->peer, h->version, HELLO_VERSION);
	if (h->mode > 1)
		return kg_errk(e, KG_ERR_AUTH, "authentication with %s: unknown mode %u",
			       l->peer, h->mode);
	memcpy(h->nonce, in + 16, KG_TP_NONCE_SIZE);
	return 0;
}

static int modes_agree(struct kg_link *l, bool have_key, const struct hello *peer,
		       struct kg_err *e)
{
	if (have_key && !peer->mode)
		return kg_errk(e, KG_ERR_AUTH, "authentication with %s: peer has no key and this side requires one (--key)",
			       l->peer);
	if (!have_key && peer->mode)
		return kg_errk(e, KG_ERR_AUTH, "authentication with %s: peer requires a key and this side has none (--key)",
			       l->peer);
	return 0;
}

static int fill_nonce(uint8_t *n, struct kg_err *e)
{
	size_t got = 0;
	while (got < KG_TP_NONCE_SIZE) {
		ssize_t r = getrandom(n + got, KG_TP_NONCE_SIZE - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return kg_errno(e, "getrandom");
		got += (size_t)r;
	}
	return 0;
}

static int derive(const struct kg_tp_key *k, const char *label,
		  const uint8_t *nc, const uint8_t *ns, uint8_t out[32],
		  struct kg_err *e)
{
	if (kg_hmac_label(k->bytes, k->len, label, nc, ns, out) < 0)
		return kg_errf(e, "HMAC-SHA256 failed in libcrypto");
	return 0;
}

static int server_side(struct kg_link *l, const struct kg_tp_key *key, int tmo,
		       uint8_t *tx, uint8_t *rx, struct kg_err *e)
{
	uint8_t buf[HELLO_SIZE + PROOF_SIZE], want[PROOF_SIZE];
	struct hello peer, me = { HELLO_VERSION, key != NULL, { 0 } };
	if (recv_all(l, buf, HELLO_SIZE, tmo, "closed before its hello", e) < 0 ||
	    hello_decode(l, buf, &peer, e) < 0 || fill_nonce(me.nonce, e) < 0)
		return -1;
	hello_encode(&me, buf);
	if (!key || !peer.mode) {
		/* Answer even on a mismatch, so the peer can say why. */
		if (send_all(l, buf, HELLO_SIZE, tmo, e) < 0)
			return -1;
		return modes_agree(l, key != NULL, &peer, e);
	}
	const uint8_t *nc = peer.nonce, *ns = me.nonce;
	if (derive(key, "kagami-transport server", nc, ns, buf + HELLO_SIZE, e) < 0 ||
	    send_all(l, buf, sizeof(buf), tmo, e) < 0 ||
	    recv_all(l, buf, PROOF_SIZE, tmo,
		     "peer hung up during authentication (it does not accept this side's key: wrong --key?)",
		     e) < 0 ||
	    derive(key, "kagami-transport client", nc, ns, want, e) < 0)
		return -1;
	if (kg_mac_cmp(buf, want, PROOF_SIZE))
		return kg_errk(e, KG_ERR_AUTH, "authentication with %s: wrong key (its proof does not match --key)",
			       l->peer);
	if (derive(key, "kagami-transport accept", nc, ns, buf, e) < 0 ||
	    send_all(l, buf, PROOF_SIZE, tmo, e) < 0 ||
	    derive(key, "kagami-transport s2c", nc, ns, tx, e) < 0 ||
	    derive(key, "kagami-transport c2s", nc, ns, rx, e) < 0)
		return -1;
	return 0;
}

static int client_side(struct kg_link *l, const struct kg_tp_key *key, int tmo,
		       uint8_t *tx, uint8_t *rx, struct kg_err *e)
{
	uint8_t buf[HELLO_SIZE + PROOF_SIZE], want[PROOF_SIZE];
	struct hello peer, me = { HELLO_VERSION, key != NULL, { 0 } };
	if (fill_nonce(me.nonce, e) < 0)
		return -1;
	hello_encode(&me, buf);
	if (send_all(l, buf, HELLO_SIZE, tmo, e) < 0 ||
	    recv_all(l, buf, HELLO_SIZE, tmo,
		     "peer closed the connection before its hello (not a kagami transport?)",
		     e) < 0 ||
	    hello_decode(l, buf, &peer, e) < 0 ||
	    modes_agree(l, key != NULL, &peer, e) < 0)
		return -1;
	if (!key)
		return 0;
	const uint8_t *nc = me.nonce, *ns = peer.nonce;
	if (recv_all(l, buf, PROOF_SIZE, tmo, "peer closed during authentication", e) < 0 ||
	    derive(key, "kagami-transport server", nc, ns, want, e) < 0)
		return -1;
	if (kg_mac_cmp(buf, want, PROOF_SIZE))
		return kg_errk(e, KG_ERR_AUTH, "authentication with %s: wrong key (the peer's proof does not match --key)",
			       l->peer);
	if (derive(key, "kagami-transport client", nc, ns, buf, e) < 0 ||
	    send_all(l, buf, PROOF_SIZE, tmo, e) < 0 ||
	    recv_all(l, buf, PROOF_SIZE, tmo,
		     "peer refused this side's key (wrong --key?)", e) < 0 ||
	    derive(key, "kagami-transport accept", nc, ns, want, e) < 0)
		return -1;
	if (kg_mac_cmp(buf, want, PROOF_SIZE))
		return kg_errk(e, KG_ERR_AUTH, "authentication with %s: bad acceptance from peer (wrong key?)",
			       l->peer);
	if (derive(key, "kagami-transport c2s", nc, ns, tx, e) < 0 ||
	    derive(key, "kagami-transport s2c", nc, ns, rx, e) < 0)
		return -1;
	return 0;
}

int kg_tp_handshake(struct kg_link *l, bool server, const struct kg_tp_key *key,
		    int timeout_ms, uint8_t tx_key[KG_TP_SESSION_KEY_SIZE],
		    uint8_t rx_key[KG_TP_SESSION_KEY_SIZE], struct kg_err *e)
{
	memset(tx_key, 0, KG_TP_SESSION_KEY_SIZE);
	memset(rx_key, 0, KG_TP_SESSION_KEY_SIZE);
	return server ? server_side(l, key, timeout_ms, tx_key, rx_key, e)
		      : client_side(l, key, timeout_ms, tx_key, rx_key, e);
}
