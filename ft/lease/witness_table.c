/* The witness's lease table (witness_table.h). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "witness_table.h"

struct entry {
	char name[LEASE_NAME_MAX + 1];
	char holder[LEASE_HOLDER_MAX + 1]; /* last holder; "" never held */
	char token[WITNESS_TOKEN_HEX + 1]; /* the grant's; "" none (released) */
	long long expiry_ms;               /* free from then on */
	uint64_t gen;                      /* the last grant's */
	/* The last refusal logged, so a secondary polling every second
	 * does not fill the log with the same line. */
	char refused[LEASE_HOLDER_MAX + 1];
	uint64_t refused_gen;
};

struct witness_table {
	struct entry *v;
	size_t n, max;
	unsigned max_ttl_ms;
	long long grace_end_ms;
};

struct witness_table *witness_table_new(unsigned max_ttl_ms, size_t max_names,
					long long now_ms, long long grace_ms,
					struct kg_err *e)
{
	struct witness_table *t = calloc(1, sizeof(*t));
	if (!t || !(t->v = calloc(max_names ? max_names : 1, sizeof(*t->v)))) {
		free(t);
		kg_errf(e, "witness: out of memory for %zu leases", max_names);
		return NULL;
	}
	t->max = max_names ? max_names : 1;
	t->max_ttl_ms = max_ttl_ms;
	t->grace_end_ms = now_ms + (grace_ms > 0 ? grace_ms : 0);
	return t;
}

void witness_table_free(struct witness_table *t)
{
	if (t) {
		/* Tokens are secrets: not left behind in freed memory. */
		memset(t->v, 0, t->max * sizeof(*t->v));
		free(t->v);
	}
	free(t);
}

static struct entry *find(struct witness_table *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].name, name))
			return &t->v[i];
	return NULL;
}

/* A new entry, or an expired one reused when the table is full. */
static struct entry *add(struct witness_table *t, const char *name,
			 long long now)
{
	struct entry *x = NULL;
	if (t->n < t->max)
		x = &t->v[t->n++];
	for (size_t i = 0; !x && i < t->n; i++)
		if (t->v[i].expiry_ms <= now)
			x = &t->v[i];
	if (x) {
		memset(x, 0, sizeof(*x));
		snprintf(x->name, sizeof(x->name), "%s", name);
	}
	return x;
}

/* Fills the refusal; only the log's de-duplication is remembered. */
static void refuse(struct entry *x, const struct witness_req *r,
		   const char *holder, long long remaining,
		   struct witness_reply *rep, char *log, size_t logcap)
{
	rep->status = WITNESS_HELD;
	rep->gen = x ? x->gen : 0;
	snprintf(rep->holder, sizeof(rep->holder), "%s", holder);
	rep->remaining_ms = remaining;
	if (x && !strcmp(x->refused, r->holder) && x->refused_gen == x->gen)
		return;
	if (x) {
		snprintf(x->refused, sizeof(x->refused), "%s", r->holder);
		x->refused_gen = x->gen;
	}
	snprintf(log, logcap, "lease '%s': refused %s: held by %s for %lld ms "
		 "(generation %llu)", r->name, r->holder, holder, remaining,
		 (unsigned long long)rep->gen);
}

static void grant(struct witness_table *t, struct entry *x,
		  const struct witness_req *r, long long now,
		  struct witness_reply *rep)
{
	unsigned ttl = r->ttl_ms < t->max_ttl_ms ? r->ttl_ms : t->max_ttl_ms;
	x->expiry_ms = now + ttl;
	x->refused[0] = 0;
	rep->status = WITNESS_GRANTED;
	rep->gen = x->gen;
	rep->ttl_ms = ttl;
	memcpy(rep->token, x->token, sizeof(rep->token));
}

static void acquire(struct witness_table *t, const struct witness_req *r,
		    long long now, const char *fresh,
		    struct witness_reply *rep, char *log, size_t logcap)
{
	struct entry *x = find(t, r->name);
	if (!x && now < t->grace_end_ms) {
		/* We restarted: only the holder renewing may have it. */
		if (!r->holding || !witness_token_ok(r->token)) {
			/* A holder name as the protocol has them (no
			 * spaces): the client checks every name it gets. */
			refuse(NULL, r, "(unknown:the-witness-restarted)",
			       t->grace_end_ms - now, rep, log, logcap);
			return;
		}
	}
	bool claim = !x && r->holding && witness_token_ok(r->token) &&
		     now < t->grace_end_ms;
	if (!x && !(x = add(t, r->name, now))) {
		rep->status = WITNESS_BAD;
		snprintf(rep->error, sizeof(rep->error),
			 "witness: table full (%zu leases held)", t->max);
		return;
	}
	if (claim) {
		/* A holder renewing across our restart keeps its grant. */
		snprintf(x->holder, sizeof(x->holder), "%s", r->holder);
		memcpy(x->token, r->token, sizeof(x->token));
		x->gen = r->gen;
		grant(t, x, r, now, rep);
		snprintf(log, logcap, "lease '%s': renewed by %s across a "
			 "witness restart (generation %llu, %u ms)", r->name,
			 r->holder, (unsigned long long)x->gen, rep->ttl_ms);
		return;
	}
	if (witness_token_eq(x->token, r->token)) {
		/* A renewal: routine, not logged. */
		bool lapsed = now >= x->expiry_ms;
		grant(t, x, r, now, rep);
		if (lapsed)
			snprintf(log, logcap, "lease '%s': renewed by %s after "
				 "it ran out (nobody took it; generation "
				 "%llu, %u ms)", r->name, x->holder,
				 (unsigned long long)x->gen, rep->ttl_ms);
		return;
	}
	if (x->token[0] && now < x->expiry_ms) {
		refuse(x, r, x->holder, x->expiry_ms - now, rep, log, logcap);
		return;
	}
	if (!witness_token_ok(fresh)) {
		rep->status = WITNESS_BAD;
		snprintf(rep->error, sizeof(rep->error),
			 "witness: no token to grant with");
		return;
	}
	char prev[sizeof(x->holder)];
	memcpy(prev, x->holder, sizeof(prev));
	x->gen++;
	snprintf(x->holder, sizeof(x->holder), "%s", r->holder);
	memcpy(x->token, fresh, sizeof(x->token));
	grant(t, x, r, now, rep);
	if (prev[0] && strcmp(prev, r->holder))
		snprintf(log, logcap, "lease '%s': handed over from %s to %s "
			 "(generation %llu, %u ms)", r->name, prev, r->holder,
			 (unsigned long long)x->gen, rep->ttl_ms);
	else
		snprintf(log, logcap, "lease '%s': granted to %s (generation "
			 "%llu, %u ms)", r->name, r->holder,
			 (unsigned long long)x->gen, rep->ttl_ms);
}

static void release(struct witness_table *t, const struct witness_req *r,
		    long long now, struct witness_reply *rep, char *log,
		    size_t logcap)
{
	struct entry *x = find(t, r->name);
	rep->status = WITNESS_RELEASED;
	if (!x)
		return;
	rep->gen = x->gen;
	if (!witness_token_eq(x->token, r->token))
		return;
	if (now < x->expiry_ms)
		snprintf(log, logcap, "lease '%s': released by %s (generation "
			 "%llu)", r->name, x->holder, (unsigned long long)x->gen);
	memset(x->token, 0, sizeof(x->token));
	x->expiry_ms = now;
}

void witness_table_apply(struct witness_table *t, const struct witness_req *r,
			 long long now_ms, const char *fresh,
			 struct witness_reply *rep, char *log, size_t logcap)
{
	memset(rep, 0, sizeof(*rep));
	if (logcap)
		log[0] = 0;
	if (r->op == WITNESS_ACQUIRE)
		acquire(t, r, now_ms, fresh, rep, log, logcap);
	else
		release(t, r, now_ms, rep, log, logcap);
}
