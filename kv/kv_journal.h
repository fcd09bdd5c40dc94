/*
 * The journal of a kvstore load: its lines, written as the load goes, and
 * the table read back from them for verify -- every key's last
 * acknowledged write and the attempts after it. The format and what
 * verify accepts are described in kv_client.h.
 */
#ifndef KG_KV_JOURNAL_H
#define KG_KV_JOURNAL_H

#include "kv_engine.h"

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

/* Appends one line, "TYPE CLIENT REQ put KEY VALUE" (type 'a' an attempt,
 * 'k' its acknowledgement), in one write(2) on fd (O_APPEND): a client
 * killed mid-run leaves whole lines, or a cut last one. */
int kv_journal_write(int fd, const char *path, char type, uint64_t client,
		     uint64_t req, const struct kv_req *r, struct kg_err *e);
/* Reads path into t (zeroed; kv_jtable_free in any case). A cut last
 * line is skipped, told through note (may be NULL); a malformed line is
 * an error naming path:line. */
int kv_journal_read(const char *path, struct jtable *t, kv_note_fn note,
		    void *note_arg, struct kg_err *e);
void kv_jtable_free(struct jtable *t);

#endif
