/*
 * Inside transport/: the frame trailer (keyed MAC or checksum) and the
 * handshake that authenticates a new connection (auth.c, mac.c).
 */
#ifndef KG_TRANSPORT_AUTH_H
#define KG_TRANSPORT_AUTH_H

#include <stdint.h>

#include "link.h"

#define KG_TP_NONCE_SIZE 32
#define KG_TP_SESSION_KEY_SIZE 32

/* The trailer of one direction: HMAC-SHA256 truncated to 16 bytes under
 * a session key, or XXH3-128 without one. */
struct kg_mac {
	void *ctx; /* EVP_MAC_CTX (keyed) or XXH3_state_t */
	bool keyed;
};

/* key NULL: the unkeyed checksum. */
int kg_mac_init(struct kg_mac *m, const uint8_t *key, size_t len,
		struct kg_err *e);
/* Computes the trailer over the concatenation of the n parts. */
int kg_mac_compute(struct kg_mac *m, const struct iovec *parts, int n,
		   uint8_t out[KG_FRAME_TRAILER_SIZE]);
void kg_mac_free(struct kg_mac *m);
/* Constant-time comparison (CRYPTO_memcmp): 0 when equal. */
int kg_mac_cmp(const void *a, const void *b, size_t n);

/* One-shot HMAC-SHA256(key, label || a || b). */
int kg_hmac_label(const uint8_t *key, size_t keylen, const char *label,
		  const uint8_t a[KG_TP_NONCE_SIZE],
		  const uint8_t b[KG_TP_NONCE_SIZE], uint8_t out[32]);

/* Runs the handshake over a new link as the server (accepting side) or
 * the client, with key (NULL: none, both sides must agree). On success
 * fills the session keys of each direction (meaningless without a key).
 * Errors name the peer. */
int kg_tp_handshake(struct kg_link *l, bool server, const struct kg_tp_key *key,
		    int timeout_ms, uint8_t tx_key[KG_TP_SESSION_KEY_SIZE],
		    uint8_t rx_key[KG_TP_SESSION_KEY_SIZE], struct kg_err *e);

#endif
