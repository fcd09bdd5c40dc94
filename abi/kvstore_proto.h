/*
 * kvstore wire protocol and disk log format, shared by the kvstore guest
 * (guests/kvstore.c) and the host client (kv/kv_client.h). Self-contained:
 * fixed-width little-endian fields, no includes beyond <stdint.h>.
 *
 * Wire: one request per UDP datagram, one response per request, to the
 * sender's address and port. A request is struct kv_msg followed by
 * key_len key bytes and val_len value bytes; so is a response (GET returns
 * the value; STATS returns a text value "keys=N puts=N gets=N dels=N
 * dups=N log_bytes=N"). Datagrams stay under 1472 bytes: no fragmentation.
 *
 * Idempotence: (client_id, req_id) names a request. The server remembers,
 * per client, the highest req_id it executed and the response it sent; a
 * request with that req_id gets the same response again without being
 * executed twice; a lower req_id is answered KV_STALE. A client uses
 * increasing req_ids and retries with the same one. The memory survives
 * restarts for writes (the log records carry client_id and req_id).
 *
 * Durability: PUT and DEL are acknowledged (status KV_OK) only after their
 * log record is written and flushed to the virtio disk.
 */
#ifndef KVSTORE_PROTO_H
#define KVSTORE_PROTO_H

#include <stdint.h>

#define KV_MAGIC 0x3153564bu /* "KVS1" */
#define KV_DEFAULT_PORT 7000
#define KV_KEY_MAX 128
#define KV_VAL_MAX 1024

enum kv_op {
	KV_PUT = 1,
	KV_GET = 2,
	KV_DEL = 3,
	KV_STATS = 4,
};
#define KV_RESPONSE 0x80 /* op | KV_RESPONSE in a response */

enum kv_status {
	KV_OK = 0,
	KV_NOT_FOUND = 1,
	KV_BAD_REQUEST = 2,
	KV_NO_SPACE = 3, /* table or disk log full */
	KV_IO_ERROR = 4, /* the disk write or flush failed: not durable */
	KV_STALE = 5,    /* req_id below the client's last executed one */
};

struct kv_msg {
	uint32_t magic;
	uint8_t op;
	uint8_t status; /* 0 in requests */
	uint16_t key_len;
	uint32_t val_len;
	uint32_t reserved; /* 0 */
	uint64_t client_id;
	uint64_t req_id;
} __attribute__((packed));

/*
 * Disk log: an append-only sequence of records starting at sector 0, each
 * a struct kv_log_rec followed by key and value, padded with zeros to a
 * multiple of 512 bytes. Replay stops at the first record whose magic,
 * length or checksum is wrong (a torn write at the tail).
 */
#define KV_LOG_MAGIC 0x474f4c4bu /* "KLOG" */
#define KV_SECTOR 512

struct kv_log_rec {
	uint32_t magic;
	uint8_t op; /* KV_PUT or KV_DEL */
	uint8_t pad;
	uint16_t key_len;
	uint32_t val_len;
	uint32_t checksum; /* FNV-1a 32 over the record with this field 0,
			      the key and the value */
	uint64_t seq;      /* 1, 2, 3, ... */
	uint64_t client_id;
	uint64_t req_id;
} __attribute__((packed));

#endif
