/* The journal: its lines, and the table read from them (kv_journal.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_journal.h"

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static struct jkey *jtable_get(struct jtable *t, const char *key)
{
	if (t->n >= t->nb) {
		size_t nb = t->nb ? t->nb * 2 : 1024;
		struct jkey **b = calloc(nb, sizeof(*b));
		if (!b)
			return NULL;
		for (size_t i = 0; i < t->n; i++) {
			struct jkey *k = t->list[i];
			size_t h = fnv1a(k->key) & (nb - 1);
			k->next = b[h];
			b[h] = k;
		}
		free(t->b);
		t->b = b;
		t->nb = nb;
	}
	size_t h = fnv1a(key) & (t->nb - 1);
	for (struct jkey *k = t->b[h]; k; k = k->next)
		if (!strcmp(k->key, key))
			return k;
	if (t->n == t->caplist) {
		size_t cap = t->caplist ? t->caplist * 2 : 1024;
		struct jkey **l = realloc(t->list, cap * sizeof(*l));
		if (!l)
			return NULL;
		t->list = l;
		t->caplist = cap;
	}
	struct jkey *k = calloc(1, sizeof(*k));
	if (!k || !(k->key = strdup(key))) {
		free(k);
		return NULL;
	}
	k->next = t->b[h];
	t->b[h] = k;
	t->list[t->n++] = k;
	return k;
}

void kv_jtable_free(struct jtable *t)
{
	for (size_t i = 0; i < t->n; i++) {
		struct jkey *k = t->list[i];
		for (size_t j = 0; j < k->natt; j++)
			free(k->att[j].val);
		free(k->att);
		free(k->acked_val);
		free(k->key);
		free(k);
	}
	free(t->list);
	free(t->b);
}

static int jkey_attempt(struct jkey *k, uint64_t client, uint64_t req,
			bool del, const char *val)
{
	if (k->natt == k->capatt) {
		size_t cap = k->capatt ? k->capatt * 2 : 4;
		struct jatt *a = realloc(k->att, cap * sizeof(*a));
		if (!a)
			return -1;
		k->att = a;
		k->capatt = cap;
	}
	char *v = strdup(val);
	if (!v)
		return -1;
	k->att[k->natt++] = (struct jatt){ client, req, del, v };
	return 0;
}

/* An acknowledged write: it and every attempt before it are settled. */
static int jkey_ack(struct jkey *k, uint64_t client, uint64_t req, bool del,
		    const char *val)
{
	size_t upto = k->natt; /* attempts [0, upto) are dropped */
	for (size_t j = 0; j < k->natt; j++) {
		if (k->att[j].client == client && k->att[j].req == req) {
			upto = j + 1;
			break;
		}
	}
	char *v = strdup(val);
	if (!v)
		return -1;
	for (size_t j = 0; j < upto; j++)
		free(k->att[j].val);
	memmove(k->att, k->att + upto, (k->natt - upto) * sizeof(*k->att));
	k->natt -= upto;
	free(k->acked_val);
	k->acked_val = v;
	k->has_acked = true;
	k->acked_del = del;
	return 0;
}

int kv_journal_write(int fd, const char *path, char type, uint64_t client,
		     uint64_t req, const struct kv_req *r, struct kg_err *e)
{
	char line[KV_KEY_MAX + KV_VAL_MAX + 96];
	int n = snprintf(line, sizeof(line), "%c %016" PRIx64 " %" PRIu64
			 " put %.*s %.*s\n", type, client, req,
			 (int)r->klen, r->key, (int)r->vlen, r->val);
	return kv_write_all(fd, line, (size_t)n, path, e);
}

int kv_journal_read(const char *path, struct jtable *t, kv_note_fn note,
		    void *note_arg, struct kg_err *e)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return kg_errno(e, "journal %s", path);
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	unsigned long lineno = 0;
	int rc = 0;
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (len == 0 || line[len - 1] != '\n') {
			/* A line cut by the client's death: never acked. */
			if (note) {
				char msg[4200];
				snprintf(msg, sizeof(msg), "journal %s:%lu: "
					 "ignoring an incomplete last line",
					 path, lineno);
				note(note_arg, msg);
			}
			break;
		}
		line[--len] = 0;
		if (!len || line[0] == '#')
			continue;
		char type[4], op[4], clientx[17], key[KV_KEY_MAX + 1];
		char *val = malloc((size_t)len + 1);
		uint64_t req;
		int used = 0;
		if (!val) {
			rc = kg_errf(e, "out of memory");
			break;
		}
		int n = sscanf(line, "%3s %16s %" SCNu64 " %3s %128s %s%n",
			       type, clientx, &req, op, key, val, &used);
		char *end;
		uint64_t client = strtoull(clientx, &end, 16);
		bool del = !strcmp(op, "del");
		if (n != 6 || used != len || strlen(clientx) != 16 || *end ||
		    (strcmp(type, "a") && strcmp(type, "k")) ||
		    (!del && strcmp(op, "put"))) {
			free(val);
			rc = kg_errf(e, "journal %s:%lu: malformed line",
				     path, lineno);
			break;
		}
		struct jkey *k = jtable_get(t, key);
		if (!k || (type[0] == 'a'
			   ? jkey_attempt(k, client, req, del, val)
			   : jkey_ack(k, client, req, del, val)) < 0) {
			free(val);
			rc = kg_errf(e, "out of memory");
			break;
		}
		free(val);
	}
	if (!rc && ferror(f))
		rc = kg_errno(e, "read %s", path);
	free(line);
	fclose(f);
	return rc;
}
