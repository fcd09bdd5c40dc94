/* The lease interface (lease.h): parses the spec and hands each call to
 * the backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lease_impl.h"
#include "witness_proto.h"

static int open_witness(struct lease *l, const char *rest,
			const struct kg_tp_key *key, struct kg_err *e)
{
	const char *hash = strchr(rest, '#');
	size_t alen = hash ? (size_t)(hash - rest) : strlen(rest);
	const char *name = hash ? hash + 1 : "default";
	if (alen == 0 || alen >= sizeof(l->addr))
		return kg_errf(e, "lease witness:%s: expected witness:ADDR[#NAME]",
			       rest);
	if (!witness_name_ok(name, LEASE_NAME_MAX))
		return kg_errf(e, "lease witness:%s: bad lease name '%s' "
			       "(1..%d printable bytes, no spaces or '/')",
			       rest, name, LEASE_NAME_MAX);
	memcpy(l->addr, rest, alen);
	l->addr[alen] = 0;
	/* The address is checked now so that a typo is a clear error at
	 * start-up rather than a -1 at every renewal. */
	struct kg_tp_addr a;
	if (kg_tp_addr_parse(l->addr, &a, e) < 0)
		return kg_err_prefix(e, "lease witness");
	snprintf(l->name, sizeof(l->name), "%s", name);
	if (key) {
		l->key = *key;
		l->has_key = true;
	}
	l->ops = &lease_witness_ops;
	return 0;
}

static int open_file(struct lease *l, const char *path, struct kg_err *e)
{
	if (!*path)
		return kg_errf(e, "lease file: expected file:PATH");
	int n = snprintf(l->path, sizeof(l->path), "%s", path);
	if (n < 0 || (size_t)n >= sizeof(l->path))
		return kg_errf(e, "lease file %s: path too long", path);
	l->ops = &lease_file_ops;
	return 0;
}

struct lease *lease_open(const char *spec, const char *holder,
			 const struct kg_tp_key *key, struct kg_err *e)
{
	if (!witness_name_ok(holder, LEASE_HOLDER_MAX)) {
		kg_errf(e, "lease holder '%s': expected 1..%d printable bytes "
			"without spaces or '/'", holder, LEASE_HOLDER_MAX);
		return NULL;
	}
	struct lease *l = calloc(1, sizeof(*l));
	if (!l) {
		kg_errf(e, "lease %s: out of memory", spec);
		return NULL;
	}
	snprintf(l->holder, sizeof(l->holder), "%s", holder);
	int r;
	if (!strncmp(spec, "witness:", 8))
		r = open_witness(l, spec + 8, key, e);
	else if (!strncmp(spec, "file:", 5))
		r = open_file(l, spec + 5, e);
	else
		r = kg_errf(e, "lease '%s': expected witness:ADDR[#NAME] or "
			    "file:PATH", spec);
	if (r < 0) {
		lease_close(l);
		return NULL;
	}
	return l;
}

/* True while our own clock says we hold the lease. */
static bool held(const struct lease *l)
{
	long long now;
	return l->until_ms && lease_boot_ms(&now, NULL) == 0 &&
	       now < l->until_ms;
}

void lease_close(struct lease *l)
{
	if (!l)
		return;
	if (l->ops)
		lease_release(l, NULL);
	memset(&l->key, 0, sizeof(l->key));
	memset(l->token, 0, sizeof(l->token));
	free(l);
}

int lease_acquire(struct lease *l, unsigned ttl_ms, long long *until_ms,
		  struct kg_err *e)
{
	if (ttl_ms == 0 || ttl_ms > INT_MAX)
		return kg_errf(e, "lease: ttl of %u ms", ttl_ms);
	long long until = 0;
	int r = l->ops->acquire(l, ttl_ms, &until, e);
	if (r == 1) {
		l->until_ms = until;
		*until_ms = until;
	} else if (r == 0) {
		/* Someone else holds it: whatever we had is over. */
		l->until_ms = 0;
	}
	/* r < 0: we cannot tell, and our current lease (if any) stays
	 * valid until its own end; held() counts on it. */
	return r;
}

int lease_release(struct lease *l, struct kg_err *e)
{
	/* Only a lease we still hold is released: after it ran out,
	 * someone else may hold it and a release would free theirs. */
	bool was = held(l);
	l->until_ms = 0;
	return was ? l->ops->release(l, e) : 0;
}

uint64_t lease_generation(const struct lease *l)
{
	return l->gen;
}

bool lease_renewed(const struct lease *l)
{
	return l->renewed;
}
