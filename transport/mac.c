/*
 * Frame trailers. HMAC-SHA256 comes from OpenSSL's libcrypto rather than
 * our own code: it is maintained and audited, uses the CPU's SHA
 * extensions (several GB/s, so MACing every page costs little next to the
 * copy), and gives a constant-time compare; hand-written crypto is where
 * authentication bugs live. Without a key the trailer is XXH3-128
 * (libxxhash, already used for page hashes): a fast checksum against
 * corruption, no defence against a forger.
 */
#include "auth.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <string.h>
#include <xxhash.h>

static EVP_MAC_CTX *hmac_new(const uint8_t *key, size_t len)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (!mac)
		return NULL;
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
	EVP_MAC_free(mac); /* the context holds its own reference */
	if (!ctx)
		return NULL;
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
		OSSL_PARAM_construct_end(),
	};
	if (!EVP_MAC_init(ctx, key, len, params)) {
		EVP_MAC_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int kg_mac_init(struct kg_mac *m, const uint8_t *key, size_t len,
		struct kg_err *e)
{
	m->keyed = key != NULL;
	m->ctx = key ? (void *)hmac_new(key, len) : (void *)XXH3_createState();
	if (!m->ctx)
		return kg_errf(e, key ? "HMAC-SHA256: libcrypto refused to set it up"
				      : "XXH3: out of memory");
	return 0;
}

int kg_mac_compute(struct kg_mac *m, const struct iovec *parts, int n,
		   uint8_t out[KG_FRAME_TRAILER_SIZE])
{
	if (!m->keyed) {
		XXH3_state_t *st = m->ctx;
		XXH3_128bits_reset(st);
		for (int i = 0; i < n; i++)
			XXH3_128bits_update(st, parts[i].iov_base, parts[i].iov_len);
		XXH128_canonical_t c;
		XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
		memcpy(out, c.digest, KG_FRAME_TRAILER_SIZE);
		return 0;
	}
	EVP_MAC_CTX *ctx = m->ctx;
	uint8_t full[32];
	size_t outl = 0;
	/* A NULL key restarts HMAC with the key already set. */
	if (!EVP_MAC_init(ctx, NULL, 0, NULL))
		return -1;
	for (int i = 0; i < n; i++)
		if (parts[i].iov_len &&
		    !EVP_MAC_update(ctx, parts[i].iov_base, parts[i].iov_len))
			return -1;
	if (!EVP_MAC_final(ctx, full, &outl, sizeof(full)) || outl != 32)
		return -1;
	memcpy(out, full, KG_FRAME_TRAILER_SIZE);
	return 0;
}

void kg_mac_free(struct kg_mac *m)
{
	if (!m->ctx)
		return;
	if (m->keyed)
		EVP_MAC_CTX_free(m->ctx);
	else
		XXH3_freeState(m->ctx);
	m->ctx = NULL;
}

int kg_mac_cmp(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n);
}

int kg_hmac_label(const uint8_t *key, size_t keylen, const char *label,
		  const uint8_t a[KG_TP_NONCE_SIZE],
		  const uint8_t b[KG_TP_NONCE_SIZE], uint8_t out[32])
{
	EVP_MAC_CTX *ctx = hmac_new(key, keylen);
	if (!ctx)
		return -1;
	size_t outl = 0;
	int ok = EVP_MAC_update(ctx, (const uint8_t *)label, strlen(label)) &&
		 EVP_MAC_update(ctx, a, KG_TP_NONCE_SIZE) &&
		 EVP_MAC_update(ctx, b, KG_TP_NONCE_SIZE) &&
		 EVP_MAC_final(ctx, out, &outl, 32) && outl == 32;
	EVP_MAC_CTX_free(ctx);
	return ok ? 0 : -1;
}
