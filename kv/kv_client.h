/*
 * The kvstore client's jobs (guests/kvstore.c is the server, its protocol
 * abi/kvstore_proto.h), the ones every failover drill uses; `kagami kv`
 * (cli/cmd_kv.c) is their command line.
 *
 *   single  put/get/del/stats: one request, retried with the same req_id
 *   load    a put/get mix from several client ids, each with one
 *           outstanding request, journaling every write (kv_load.c)
 *   verify  reads back every key of a journal and checks that no
 *           acknowledged write was lost (kv_verify.c)
 *
 * All three run on one engine (kv_engine.h): a UDP socket connected to the
 * server and a set of slots, each a client id (random 64-bit base XOR slot
 * index) with at most one outstanding request. A request is retried with
 * the same (client_id, req_id) after 200 ms, then 400, 800, 1000, 1000, ...
 * ms, until it is answered, its timeout expires (single requests, verify)
 * or the run ends (load). req_ids of a client increase by one per
 * request, which is what the server's duplicate detection expects.
 *
 * Journal (text, one line per event, each written with one write(2) on an
 * O_APPEND fd, so it survives the client being killed; kv_journal.h):
 *   # comment
 *   a CLIENT REQ put KEY VALUE   attempt, written before the first send
 *   k CLIENT REQ put KEY VALUE   acknowledged (status OK)
 * CLIENT is 16 hex digits; keys and values have no white space; "del"
 * with value "-" is understood by verify (load issues no deletes).
 *
 * What verify accepts for a key: the value of its last acknowledged write,
 * or the value of any attempt journaled after that write's attempt line
 * and never acknowledged (in flight when the server or client died). With
 * no acknowledged write, "not found" is also accepted. Anything else --
 * a missing key with an acknowledged put, an older or unknown value --
 * counts as lost.
 *
 * What load checks on reads: keys are partitioned among the client ids
 * (key k belongs to slot k mod clients), so a key has one writer with one
 * outstanding request, and a read must return the value of that writer's
 * last acknowledged put in this run. Keys not yet written in this run, or
 * whose last put was answered with an error, are read but not checked.
 *
 * Each job is open (set up; its errors are the setup's), run (the
 * engine's error in en.err), then close (always, also after a failed
 * open: it releases everything and reports a failed close of a file that
 * was written). Nothing here writes to stderr or stdout: notes go to the
 * caller's note function, reports are formatted into the caller's buffer.
 */
#ifndef KG_KV_CLIENT_H
#define KG_KV_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv_engine.h"
#include "kv_history.h"
#include "kv_journal.h"

/* ---- single requests (kv_single.c) ---------------------------------- */

/* The request for cmd ("put", "get", "del" or "stats") and its
 * arguments (KEY VALUE, KEY, KEY, none): 0, or -1 with e (kind invalid):
 * "expected KEY VALUE", "key must be 1 to 128 bytes", "value is N
 * bytes, at most 1024", "unknown request 'X'". */
int kv_single_parse(const char *cmd, int nargs, char *const *args,
		    struct kv_req *r, struct kg_err *e);

struct kv_single {
	struct kv_engine en;
	struct kv_req req;
	bool sent;
	int status; /* enum kv_status; RES_TIMEOUT until answered */
	char val[KV_VAL_MAX + 1];
	uint32_t vlen;
};

struct kv_single_opts {
	const char *server;
	const char *name;          /* the request's name ("get"): en.name */
	const uint64_t *client_id; /* NULL: a random one */
	uint64_t req_id;           /* the request's id (1 unless testing) */
	double timeout_s;
};

int kv_single_open(struct kv_single *s, const struct kv_single_opts *o,
		   const struct kv_req *req, struct kg_err *e);
/* Until answered, timed out or interrupted: s->status says which. */
int kv_single_run(struct kv_single *s);
void kv_single_close(struct kv_single *s);

/* ---- load (kv_load.c) ----------------------------------------------- */

struct kv_load_opts {
	const char *server, *journal;
	const char *history;    /* NULL: none */
	const char *key_prefix; /* keys are PREFIX0000000.. */
	uint32_t keys, clients, value_size;
	double write_ratio;
	double rate;            /* requests/s; 0: no pacing */
	double duration_s;
	uint64_t seed;
	bool progress;          /* a note once a second */
	kv_note_fn note;        /* wrong reads (the first 5), progress */
	void *note_arg;
};

struct kv_load {
	struct kv_engine en;
	struct kv_history hist;
	const char *prefix;
	uint32_t nkeys, nclients, value_size;
	double write_ratio;
	uint64_t rng;
	int jfd;
	const char *jpath;
	uint64_t *acked_req; /* per key: the owner's last acked put, 0 none */
	uint8_t *uncertain;  /* per key: a later put got an error */
	uint64_t puts, gets, checked, mismatches;
};

/* Opens (appends to) the journal and the history, writes the journal's
 * header line; nclients is clients, at most keys. */
int kv_load_open(struct kv_load *l, const struct kv_load_opts *o,
		 struct kg_err *e);
int kv_load_run(struct kv_load *l);
/* The report: the engine's counts, then puts, gets, checked, mismatches,
 * unacked, clients, send_errors, stray. */
void kv_load_json(const struct kv_load *l, char *buf, size_t size);
/* Closes the history, then the journal: the first failure in e. */
int kv_load_close(struct kv_load *l, struct kg_err *e);

/* ---- verify (kv_verify.c) ------------------------------------------- */

struct kv_verify_opts {
	const char *server, *journal;
	const char *history; /* NULL: none */
	uint32_t clients;
	double timeout_s;
	bool progress;
	kv_note_fn note; /* a cut journal, failed reads, lost keys (first 10) */
	void *note_arg;
};

struct kv_verify {
	struct kv_engine en;
	struct jtable t;
	struct kv_history hist; /* every read recorded */
	size_t next;
	uint64_t lost, ok;
};

int kv_verify_open(struct kv_verify *v, const struct kv_verify_opts *o,
		   struct kg_err *e);
int kv_verify_run(struct kv_verify *v);
/* The report: the engine's counts (lost among them), then keys, ok. */
void kv_verify_json(const struct kv_verify *v, char *buf, size_t size);
int kv_verify_close(struct kv_verify *v, struct kg_err *e);

/* Whether a read of k that answered res is what the journal allows
 * (res->status KV_OK or KV_NOT_FOUND). Pure. */
bool kv_verify_accepts(const struct jkey *k, const struct kv_result *res);

#endif
