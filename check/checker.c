#include "checker.h"

#include <stdlib.h>
#include <string.h>

#include "linearize.h"

#define DEFAULT_BUDGET 10000000ull

static int by_key(const void *a, const void *b, void *ctx)
{
	const struct history *h = ctx;
	const struct hist_event *x = &h->ev[*(const size_t *)a];
	const struct hist_event *y = &h->ev[*(const size_t *)b];
	int c = strcmp(x->key, y->key);
	if (c)
		return c;
	return x->invoke_ns < y->invoke_ns ? -1 : x->invoke_ns > y->invoke_ns;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Whether the search must see the event: failed operations did not
 * happen, and a read with no result constrains nothing. */
static bool searched(const struct hist_event *ev)
{
	if (ev->outcome == HIST_FAIL)
		return false;
	return ev->op != HIST_GET || ev->outcome == HIST_OK;
}

static void outage(const struct history *h, uint64_t *oks, size_t nok,
		   struct check_report *r)
{
	uint64_t start = h->start_ns, end = h->end_ns;
	if (!start || !end) {
		/* No markers: the span of the history itself. */
		start = UINT64_MAX, end = 0;
		for (size_t i = 0; i < h->n; i++) {
			const struct hist_event *ev = &h->ev[i];
			if (ev->invoke_ns < start)
				start = ev->invoke_ns;
			uint64_t t = ev->complete_ns ? ev->complete_ns
						     : ev->invoke_ns;
			if (t > end)
				end = t;
		}
		if (!h->n)
			start = end = 0;
	}
	if (end < start)
		end = start;
	r->window_ns = end - start;
	qsort(oks, nok, sizeof(*oks), cmp_u64);
	uint64_t prev = start;
	for (size_t i = 0; i <= nok; i++) {
		bool last = i == nok;
		uint64_t t = last ? end : oks[i];
		if (t < start)
			continue;
		if (t > end) {
			t = end;
			last = true;
		}
		if (t - prev > r->outage_ns) {
			r->outage_ns = t - prev;
			r->outage_from_ns = prev - start;
			r->outage_trailing = last;
		}
		prev = t;
		if (last)
			break;
	}
}

int check_history(const struct history *h, unsigned long long step_budget,
		  struct check_report *r, struct kg_err *e)
{
	memset(r, 0, sizeof(*r));
	if (!step_budget)
		step_budget = DEFAULT_BUDGET;
	size_t *order = malloc((h->n ? h->n : 1) * sizeof(*order));
	uint64_t *oks = malloc((h->n ? h->n : 1) * sizeof(*oks));
	if (!order || !oks) {
		free(order);
		free(oks);
		return kg_errf(e, "out of memory");
	}
	size_t nok = 0, m = 0;
	for (size_t i = 0; i < h->n; i++) {
		const struct hist_event *ev = &h->ev[i];
		r->ops++;
		switch (ev->outcome) {
		case HIST_OK:
			r->ok++;
			oks[nok++] = ev->complete_ns;
			if (ev->op == HIST_GET)
				r->reads++;
			else
				r->acked_writes++;
			break;
		case HIST_FAIL: r->failed++; break;
		default: r->unknown++; break;
		}
		if (searched(ev))
			order[m++] = i;
	}
	qsort_r(order, m, sizeof(*order), by_key, (void *)h);
	for (size_t a = 0; a < m;) {
		size_t b = a + 1;
		while (b < m && !strcmp(h->ev[order[a]].key, h->ev[order[b]].key))
			b++;
		r->keys++;
		char why[512];
		enum lin_verdict v = lin_check_key(h->ev, order + a, b - a,
						   step_budget, why, sizeof(why));
		if (v != LIN_OK) {
			if (v == LIN_VIOLATION)
				r->keys_bad++;
			else
				r->keys_undecided++;
			if (!r->problem[0])
				memcpy(r->problem, why, sizeof(r->problem));
		}
		a = b;
	}
	outage(h, oks, nok, r);
	free(order);
	free(oks);
	if (r->keys_bad) {
		r->verdict = "not linearizable";
	} else if (r->keys_undecided) {
		r->verdict = "undecided (search limit)";
	} else if (!r->acked_writes) {
		r->verdict = "nothing was acknowledged";
	} else {
		r->verdict = "linearizable";
		r->pass = true;
	}
	return 0;
}
