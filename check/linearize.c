#include "linearize.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xxhash.h"

#define T_INF UINT64_MAX

/* --- interned states: id 0 is "missing" ------------------------------ */

struct strtab {
	char **s;
	size_t *len;
	size_t n, cap;
	size_t *slot; /* open addressing over ids; 0 empty */
	size_t nslot;
};

static bool tab_grow(struct strtab *t)
{
	if (t->n + 1 < t->cap && (t->n + 1) * 2 < t->nslot)
		return true;
	size_t cap = t->cap ? t->cap * 2 : 64;
	char **s = realloc(t->s, cap * sizeof(*s));
	if (!s)
		return false;
	t->s = s;
	size_t *len = realloc(t->len, cap * sizeof(*len));
	if (!len)
		return false;
	t->len = len;
	t->cap = cap;
	size_t nslot = cap * 2;
	size_t *slot = calloc(nslot, sizeof(*slot));
	if (!slot)
		return false;
	for (size_t id = 1; id < t->n; id++) {
		size_t i = (size_t)XXH3_64bits(t->s[id], t->len[id]) & (nslot - 1);
		while (slot[i])
			i = (i + 1) & (nslot - 1);
		slot[i] = id;
	}
	free(t->slot);
	t->slot = slot;
	t->nslot = nslot;
	return true;
}

/* Returns the id of str (interning a copy), 0 on allocation failure
 * (which the caller treats as an undecided search). */
static size_t intern(struct strtab *t, const char *str, size_t len)
{
	if (t->n == 0)
		t->n = 1; /* id 0: missing */
	if (!tab_grow(t))
		return 0;
	size_t i = (size_t)XXH3_64bits(str, len) & (t->nslot - 1);
	while (t->slot[i]) {
		size_t id = t->slot[i];
		if (t->len[id] == len && !memcmp(t->s[id], str, len))
			return id;
		i = (i + 1) & (t->nslot - 1);
	}
	char *copy = malloc(len + 1);
	if (!copy)
		return 0;
	memcpy(copy, str, len);
	copy[len] = 0;
	t->s[t->n] = copy;
	t->len[t->n] = len;
	t->slot[i] = t->n;
	return t->n++;
}

static void tab_free(struct strtab *t)
{
	for (size_t id = 1; id < t->n; id++)
		free(t->s[id]);
	free(t->s);
	free(t->len);
	free(t->slot);
}

/* --- the model ------------------------------------------------------- */

enum step { STEP_NO, STEP_OK, STEP_NOMEM };

static bool parse_ll(const char *s, size_t len, long long *v)
{
	char buf[32];
	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = 0;
	char *end;
	errno = 0;
	*v = strtoll(buf, &end, 10);
	return !*end && !errno;
}

static enum step step(struct strtab *t, const struct hist_event *ev,
		      size_t state, size_t *next)
{
	bool known = ev->outcome == HIST_OK;
	switch (ev->op) {
	case HIST_PUT:
		*next = intern(t, ev->arg, strlen(ev->arg));
		return *next ? STEP_OK : STEP_NOMEM;
	case HIST_DEL:
		*next = 0;
		return STEP_OK;
	case HIST_GET:
		*next = state;
		if (!strcmp(ev->result, "-"))
			return state == 0 ? STEP_OK : STEP_NO;
		return state && !strcmp(t->s[state], ev->result) ? STEP_OK
								 : STEP_NO;
	case HIST_APPEND: {
		size_t blen = state ? t->len[state] : 0;
		size_t alen = strlen(ev->arg);
		char *buf = malloc(blen + alen + 1);
		if (!buf)
			return STEP_NOMEM;
		memcpy(buf, state ? t->s[state] : "", blen);
		memcpy(buf + blen, ev->arg, alen);
		*next = intern(t, buf, blen + alen);
		free(buf);
		if (!*next)
			return STEP_NOMEM;
		long long want;
		if (known && (!parse_ll(ev->result, strlen(ev->result), &want) ||
			      want != (long long)(blen + alen)))
			return STEP_NO;
		return STEP_OK;
	}
	case HIST_INCR: {
		long long cur = 0, want;
		if (state && !parse_ll(t->s[state], t->len[state], &cur))
			return STEP_NO; /* the server would refuse */
		char buf[32];
		int n = snprintf(buf, sizeof(buf), "%lld", cur + 1);
		*next = intern(t, buf, (size_t)n);
		if (!*next)
			return STEP_NOMEM;
		if (known && (!parse_ll(ev->result, strlen(ev->result), &want) ||
			      want != cur + 1))
			return STEP_NO;
		return STEP_OK;
	}
	}
	return STEP_NO;
}

/* --- the search ------------------------------------------------------ */

struct entry {
	uint64_t t;
	size_t op; /* index into the key's ops */
	bool call;
	struct entry *match, *prev, *next;
};

static int entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	/* At the same instant, calls first: the operations overlap. */
	if (x->call != y->call)
		return x->call ? -1 : 1;
	return x->op < y->op ? -1 : x->op > y->op;
}

/* The memo: (bitset of linearized ops, state) pairs already explored. */
struct memo {
	size_t words;
	uint64_t *keys; /* per slot: state + 1 (0: empty), then the words */
	size_t nslot, used;
};

static uint64_t *memo_key(struct memo *m, size_t i)
{
	return m->keys + i * (m->words + 1);
}

static bool memo_grow(struct memo *m)
{
	if ((m->used + 1) * 2 < m->nslot)
		return true;
	size_t nslot = m->nslot ? m->nslot * 2 : 1024;
	uint64_t *keys = calloc(nslot, (m->words + 1) * sizeof(uint64_t));
	if (!keys)
		return false;
	struct memo n = { m->words, keys, nslot, 0 };
	for (size_t i = 0; i < m->nslot; i++) {
		uint64_t *k = memo_key(m, i);
		if (!k[0])
			continue;
		size_t j = (size_t)XXH3_64bits(k, (m->words + 1) * 8) &
			   (nslot - 1);
		while (memo_key(&n, j)[0])
			j = (j + 1) & (nslot - 1);
		memcpy(memo_key(&n, j), k, (m->words + 1) * 8);
		n.used++;
	}
	free(m->keys);
	*m = n;
	return true;
}

/* 1 if (bits, state) is new (and now remembered), 0 if seen, -1 no memory. */
static int memo_insert(struct memo *m, const uint64_t *bits, size_t state)
{
	if (!memo_grow(m))
		return -1;
	uint64_t key[1 + 64];
	uint64_t *k = m->words < 64 ? key : malloc((m->words + 1) * 8);
	if (!k)
		return -1;
	k[0] = (uint64_t)state + 1;
	memcpy(k + 1, bits, m->words * 8);
	size_t j = (size_t)XXH3_64bits(k, (m->words + 1) * 8) & (m->nslot - 1);
	int rc = 1;
	for (;; j = (j + 1) & (m->nslot - 1)) {
		uint64_t *s = memo_key(m, j);
		if (!s[0]) {
			memcpy(s, k, (m->words + 1) * 8);
			m->used++;
			break;
		}
		if (!memcmp(s, k, (m->words + 1) * 8)) {
			rc = 0;
			break;
		}
	}
	if (k != key)
		free(k);
	return rc;
}

static void lift(struct entry *e)
{
	e->prev->next = e->next;
	if (e->next)
		e->next->prev = e->prev;
	struct entry *r = e->match;
	r->prev->next = r->next;
	if (r->next)
		r->next->prev = r->prev;
}

static void unlift(struct entry *e)
{
	struct entry *r = e->match;
	r->prev->next = r;
	if (r->next)
		r->next->prev = r;
	e->prev->next = e;
	if (e->next)
		e->next->prev = e;
}

static bool is_write(const struct hist_event *ev)
{
	return ev->op != HIST_GET;
}

static uint64_t done_at(const struct hist_event *ev)
{
	return ev->outcome == HIST_OK ? ev->complete_ns : T_INF;
}

/* A violation on a put/del/get key, explained: a read that returned a
 * value no write could have left there. */
static void explain(const struct hist_event *ev, const size_t *idx, size_t n,
		    char *why, size_t size)
{
	for (size_t i = 0; i < n; i++) {
		const struct hist_event *e = &ev[idx[i]];
		if (e->op == HIST_APPEND || e->op == HIST_INCR)
			goto generic;
	}
	for (size_t i = 0; i < n; i++) {
		const struct hist_event *g = &ev[idx[i]];
		if (g->op != HIST_GET)
			continue;
		bool written = !strcmp(g->result, "-");
		for (size_t j = 0; j < n && !written; j++) {
			const struct hist_event *w = &ev[idx[j]];
			written = w->op == HIST_PUT && !strcmp(w->arg, g->result);
		}
		if (!written) {
			snprintf(why, size, "key %s: get %s returned '%.64s', "
				 "which no operation wrote", g->key, g->id,
				 g->result);
			return;
		}
		/* The write acknowledged last before g began, if it is
		 * surely the last of those. */
		const struct hist_event *last = NULL;
		for (size_t j = 0; j < n; j++) {
			const struct hist_event *w = &ev[idx[j]];
			if (is_write(w) && w->outcome == HIST_OK &&
			    w->complete_ns < g->invoke_ns &&
			    (!last || w->complete_ns > last->complete_ns))
				last = w;
		}
		if (!last)
			continue;
		bool sure = true, allowed = false;
		for (size_t j = 0; j < n; j++) {
			const struct hist_event *w = &ev[idx[j]];
			if (!is_write(w) || w == last)
				continue;
			if (w->outcome == HIST_OK &&
			    w->complete_ns < g->invoke_ns &&
			    w->complete_ns >= last->invoke_ns)
				sure = false;
			/* Writes that may fall between last and g. */
			if (w->invoke_ns < g->complete_ns &&
			    done_at(w) > last->invoke_ns) {
				const char *v = w->op == HIST_DEL ? "-" : w->arg;
				allowed |= !strcmp(v, g->result);
			}
		}
		const char *lv = last->op == HIST_DEL ? "-" : last->arg;
		allowed |= !strcmp(lv, g->result);
		if (sure && !allowed) {
			snprintf(why, size, "key %s: get %s returned '%.64s', "
				 "but %s %s ('%.64s') was acknowledged before "
				 "it began and nothing later wrote that value",
				 g->key, g->id, g->result,
				 hist_op_name(last->op), last->id, lv);
			return;
		}
	}
generic:
	snprintf(why, size, "key %s: no order of its %zu operations explains "
		 "the results", ev[idx[0]].key, n);
}

enum lin_verdict lin_check_key(const struct hist_event *ev, const size_t *idx,
			       size_t n, unsigned long long step_budget,
			       char *why, size_t why_size)
{
	if (why_size)
		why[0] = 0;
	if (n == 0)
		return LIN_OK;
	enum lin_verdict v = LIN_UNDECIDED;
	struct strtab tab = { 0 };
	struct memo memo = { .words = (n + 63) / 64 };
	struct entry *ent = calloc(2 * n + 1, sizeof(*ent));
	uint64_t *bits = calloc(memo.words, 8);
	struct { struct entry *e; size_t state; } *stack =
		calloc(n, sizeof(*stack));
	if (!ent || !bits || !stack)
		goto out;
	struct entry *sorted = ent + 1;
	for (size_t i = 0; i < n; i++) {
		const struct hist_event *e = &ev[idx[i]];
		sorted[2 * i] = (struct entry){ .t = e->invoke_ns, .op = i,
						.call = true };
		sorted[2 * i + 1] = (struct entry){ .t = done_at(e), .op = i };
	}
	qsort(sorted, 2 * n, sizeof(*sorted), entry_cmp);
	struct entry **call_of = calloc(n, sizeof(*call_of));
	if (!call_of)
		goto out;
	for (size_t i = 0; i < 2 * n; i++)
		if (sorted[i].call)
			call_of[sorted[i].op] = &sorted[i];
	for (size_t i = 0; i < 2 * n; i++) {
		struct entry *e = &sorted[i];
		if (!e->call) {
			e->match = call_of[e->op];
			call_of[e->op]->match = e;
		}
	}
	free(call_of);
	struct entry *head = &ent[0];
	for (size_t i = 0; i <= 2 * n; i++) {
		ent[i].prev = i ? &ent[i - 1] : NULL;
		ent[i].next = i < 2 * n ? &ent[i + 1] : NULL;
	}
	size_t state = 0, depth = 0;
	unsigned long long steps = 0;
	struct entry *e = head->next;
	while (head->next) {
		if (++steps > step_budget)
			goto out;
		if (!e) /* cannot happen: every call has a later return */
			goto out;
		if (e->call) {
			size_t next;
			enum step s = step(&tab, &ev[idx[e->op]], state, &next);
			if (s == STEP_NOMEM)
				goto out;
			if (s == STEP_OK) {
				bits[e->op / 64] |= 1ull << (e->op % 64);
				int fresh = memo_insert(&memo, bits, next);
				if (fresh < 0)
					goto out;
				if (fresh) {
					stack[depth].e = e;
					stack[depth++].state = state;
					state = next;
					lift(e);
					e = head->next;
					continue;
				}
				bits[e->op / 64] &= ~(1ull << (e->op % 64));
			}
			e = e->next;
			continue;
		}
		/* A completion: some operation before it must take effect
		 * first, and none can: undo the latest choice. */
		if (depth == 0) {
			v = LIN_VIOLATION;
			explain(ev, idx, n, why, why_size);
			goto out;
		}
		depth--;
		e = stack[depth].e;
		state = stack[depth].state;
		bits[e->op / 64] &= ~(1ull << (e->op % 64));
		unlift(e);
		e = e->next;
	}
	v = LIN_OK;
out:
	if (v == LIN_UNDECIDED && why_size)
		snprintf(why, why_size, "key %s: undecided after %llu search "
			 "steps (or out of memory)", ev[idx[0]].key, step_budget);
	free(stack);
	free(bits);
	free(ent);
	free(memo.keys);
	tab_free(&tab);
	return v;
}
