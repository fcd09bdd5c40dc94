/*
 * The kvstore client's engine: a UDP socket connected to the server and a
 * set of slots, each a client id with at most one request outstanding,
 * retried with the same (client_id, req_id) until answered or its
 * deadline; callbacks choose each slot's next request and see each
 * result. Single requests, load and verify (kv_client.h) run on it;
 * `kagami kv` (cli/cmd_kv.c) is their command line.
 *
 * Nothing here writes to stderr: what the user should see while work
 * goes on (progress, a wrong read, a lost key) is handed, one line at a
 * time, to the caller's note function.
 */
#ifndef KG_KV_ENGINE_H
#define KG_KV_ENGINE_H

#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "abi/kvstore_proto.h"

#define KV_EXIT_NOT_FOUND 1 /* get/del of a missing key; verify: lost > 0 */
#define KV_EXIT_FAIL 3      /* timeout or error */

#define TRY_FIRST_NS (200ull * 1000 * 1000)
#define TRY_MAX_NS (1000ull * 1000 * 1000)
#define MAX_CLIENTS 1024u
#define MAX_KEYS 10000000u
#define MSG_MAX 1472 /* one Ethernet frame, no fragmentation */

/* Result status beyond enum kv_status. */
#define RES_TIMEOUT (-1)   /* no answer before the request's deadline */

struct kv_req {
	uint8_t op;
	uint16_t klen;
	uint32_t vlen;
	char key[KV_KEY_MAX + 1];
	char val[KV_VAL_MAX + 1];
	size_t tag; /* the caller's (a key index) */
};

struct kv_result {
	int status; /* enum kv_status or RES_TIMEOUT */
	const char *val;
	uint32_t vlen;
	uint64_t latency_ns;
};

struct kv_slot {
	uint64_t client_id;
	uint64_t next_req_id;
	bool busy;
	uint64_t req_id;
	struct kv_req req;
	uint64_t first_ns, next_try_ns, try_ns, deadline_ns;
};

/* Receives one line for the user (no newline); arg is the caller's. */
typedef void (*kv_note_fn)(void *arg, const char *msg);

struct kv_engine;
/* Fills r for slot's next request (req_id given); returns 1, 0 when there
 * is no more work, -1 on a fatal error (en->err set). */
typedef int (*kv_next_fn)(void *ctx, struct kv_engine *en, unsigned slot,
			  uint64_t req_id, struct kv_req *r);
/* Called once per finished request; returns 0, or -1 to stop (err set). */
typedef int (*kv_done_fn)(void *ctx, struct kv_engine *en, unsigned slot,
			  uint64_t req_id, const struct kv_req *r,
			  const struct kv_result *res);

struct kv_engine {
	int fd;
	char server[64];
	struct kv_slot *slots;
	unsigned nslots;
	double rate;              /* requests/s over all slots; 0: no pacing */
	uint64_t req_timeout_ns;  /* per request; 0: until the run ends */
	uint64_t duration_ns;     /* 0: until the work is done */
	bool progress;            /* once a second, as a note */
	const char *name;         /* "load", "verify", "get": what runs */
	kv_note_fn note;          /* NULL: notes are dropped */
	void *note_arg;
	kv_next_fn next;
	kv_done_fn done;
	void *ctx;
	struct kg_err err;

	uint64_t start_ns, stop_ns;
	uint64_t ops, acked, retries, errors, unacked, send_errors;
	uint64_t ignored; /* stray datagrams: late duplicates, garbage */
	uint64_t *lat;
	size_t nlat, caplat;
	/* The longest silence between two answers (a failover's recovery
	 * time under load) and when it began, CLOCK_REALTIME ms. */
	uint64_t last_answer_ns, max_gap_ns, max_gap_start_ms;
};

/* Set by kv_on_stop_signal (the CLI's SIGINT/SIGTERM handler): a run
 * ends early, with its report. */
extern volatile sig_atomic_t kv_interrupted;
void kv_on_stop_signal(int sig);

const char *kv_status_name(int st);
uint64_t kv_now_ns(void);
/* "IP[:PORT]" (port default KV_DEFAULT_PORT); e names --server. */
int kv_parse_server(const char *s, struct sockaddr_in *sa,
			struct kg_err *e);
int kv_random_u64(uint64_t *out, struct kg_err *e);
/* id_base: client ids are id_base ^ slot. kv_engine_free in any case
 * (en starts as { .fd = -1 }). */
int kv_engine_init(struct kv_engine *en, const char *server,
		       unsigned nslots, uint64_t id_base, uint64_t first_req,
		       struct kg_err *e);
void kv_engine_free(struct kv_engine *en);
/* Runs until the work is done, the duration ends, a callback stops it or
 * kv_interrupted: 0, or -1 with en->err. */
int kv_engine_run(struct kv_engine *en);
/* The run's report as one JSON object (no newline) in buf: ops, acked,
 * retries, errors, lost, p50_us, p99_us, duration_s, max_gap_ms,
 * max_gap_start_ms, then extra (",\"name\":value..." or ""). */
void kv_engine_json(const struct kv_engine *en, uint64_t lost,
		    const char *extra, char *buf, size_t size);
/* A note for the user through en->note, formatted. */
void kv_note(const struct kv_engine *en, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int kv_write_all(int fd, const char *buf, size_t n, const char *path,
		     struct kg_err *e);
uint64_t kv_lat_pct_us(const struct kv_engine *en, unsigned pct);

#endif
