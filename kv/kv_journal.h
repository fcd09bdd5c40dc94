/*
 * The journal of a kvstore load (cli/kv_journal.c) and its verification:
 * the table of every key's last acknowledged write and later attempts,
 * and the engine callbacks that read each key back and count what was
 * lost. The journal format and what verify accepts are described at the
 * top of cli/cmd_kv.c.
 */
#ifndef KG_KV_JOURNAL_H
#define KG_KV_JOURNAL_H

#include "kv_engine.h"
#include "kv_history.h"

struct jatt {
	uint64_t client, req;
	bool del;
	char *val;
};

struct jkey {
	struct jkey *next; /* hash chain */
	char *key;
	bool has_acked, acked_del;
	char *acked_val;
	struct jatt *att; /* attempts after the last acked one */
	size_t natt, capatt;
};

struct jtable {
	struct jkey **b;
	size_t nb, n;
	struct jkey **list; /* in first-seen order */
	size_t caplist;
};


struct verify_ctx {
	struct jtable *t;
	struct kv_history *hist; /* every read recorded */
	size_t next;
	uint64_t lost, ok;
};

int kv_journal_read(const char *path, struct jtable *t, struct kg_err *e);
void kv_jtable_free(struct jtable *t);
int kv_verify_next(void *ctx, struct kv_engine *en, unsigned slot,
		       uint64_t req_id, struct kv_req *r);
int kv_verify_done(void *ctx, struct kv_engine *en, unsigned slot,
		       uint64_t req_id, const struct kv_req *r,
		       const struct kv_result *res);

#endif
