/* Parsing and checking histories of redis-history: see history.h. */
#include "history.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* --- a string table: (key, bytes) -> index --- */

struct strtab_slot {
	const char *s;
	size_t len, key, val;
	bool used;
};

struct strtab {
	struct strtab_slot *slots;
	size_t cap, n;
};

static uint64_t strtab_hash(size_t key, const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)key * 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h ^ (h >> 29);
}

static struct strtab_slot *strtab_find(const struct strtab *t, size_t key,
				       const char *s, size_t len)
{
	if (!t->cap)
		return NULL;
	size_t i = strtab_hash(key, s, len) & (t->cap - 1);
	for (;; i = (i + 1) & (t->cap - 1)) {
		struct strtab_slot *sl = &t->slots[i];
		if (!sl->used)
			return sl;
		if (sl->key == key && sl->len == len && !memcmp(sl->s, s, len))
			return sl;
	}
}

static const size_t *strtab_get(const struct strtab *t, size_t key,
				const char *s, size_t len)
{
	struct strtab_slot *sl = strtab_find(t, key, s, len);
	return sl && sl->used ? &sl->val : NULL;
}

/* Adds (key, s) -> val; s must outlive t. Returns 1 if added, 0 if it was
 * there (val untouched), -1 when out of memory. */
static int strtab_put(struct strtab *t, size_t key, const char *s, size_t len,
		      size_t val)
{
	if (2 * (t->n + 1) > t->cap) {
		size_t ncap = t->cap ? 2 * t->cap : 64;
		struct strtab_slot *ns = calloc(ncap, sizeof(*ns));
		if (!ns)
			return -1;
		struct strtab old = *t;
		t->slots = ns;
		t->cap = ncap;
		for (size_t i = 0; i < old.cap; i++)
			if (old.slots[i].used)
				*strtab_find(t, old.slots[i].key, old.slots[i].s,
					     old.slots[i].len) = old.slots[i];
		free(old.slots);
	}
	struct strtab_slot *sl = strtab_find(t, key, s, len);
	if (sl->used)
		return 0;
	*sl = (struct strtab_slot){ .s = s, .len = len, .key = key, .val = val, .used = true };
	t->n++;
	return 1;
}

static void strtab_free(struct strtab *t)
{
	free(t->slots);
	*t = (struct strtab){ 0 };
}

/* --- escaping --- */

char *rh_escape(const char *s, size_t len, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	char *o = out;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < '!' || c > '~' || c == '%') {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		} else {
			*o++ = (char)c;
		}
	}
	*o = 0;
	return out;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes an escaped field into a new buffer; -1 on a bad escape (*out
 * NULL) or no memory (*out NULL, errno ENOMEM). */
static int unescape(const char *s, char **out, size_t *len)
{
	size_t n = strlen(s);
	char *b = malloc(n + 1), *o = b;
	*out = NULL;
	if (!b) {
		errno = ENOMEM;
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			*o++ = s[i];
			continue;
		}
		int hi = i + 2 < n + 1 ? hexval(s[i + 1]) : -1;
		int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
		if (lo < 0) {
			free(b);
			errno = EINVAL;
			return -1;
		}
		*o++ = (char)(hi << 4 | lo);
		i += 2;
	}
	*o = 0;
	*out = b;
	*len = (size_t)(o - b);
	return 0;
}

/* --- parsing --- */

static int parse_signed(const char *s, long long *v)
{
	const char *d = *s == '-' ? s + 1 : s;
	if (*d < '0' || *d > '9')
		return -1;
	errno = 0;
	char *end;
	long long x = strtoll(s, &end, 10);
	if (*end || errno)
		return -1;
	*v = x;
	return 0;
}

/* Times and ids: parse_signed without the sign. */
static int parse_i64(const char *s, int64_t *v)
{
	long long x;
	if (*s == '-' || parse_signed(s, &x))
		return -1;
	*v = x;
	return 0;
}

struct parser {
	struct rh_history *h;
	struct strtab keytab;
	struct strtab writes; /* (key, arg) of set and append */
	struct kg_err *e;
	unsigned line;
};

static int bad(struct parser *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int bad(struct parser *p, const char *fmt, ...)
{
	char m[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	return kg_errk(p->e, KG_ERR_INVALID, "line %u: %s", p->line, m);
}

static int nomem(struct parser *p)
{
	return kg_errk(p->e, KG_ERR_NOMEM, "line %u: out of memory", p->line);
}

static int intern_key(struct parser *p, const char *name, size_t *idx)
{
	const size_t *got = strtab_get(&p->keytab, 0, name, strlen(name));
	if (got) {
		*idx = *got;
		return 0;
	}
	struct rh_history *h = p->h;
	if (h->nkeys == h->keys_cap) {
		size_t nc = h->keys_cap ? 2 * h->keys_cap : 64;
		struct rh_key *nk = realloc(h->keys, nc * sizeof(*nk));
		if (!nk)
			return nomem(p);
		h->keys = nk;
		h->keys_cap = nc;
	}
	char *copy = strdup(name);
	if (!copy)
		return nomem(p);
	h->keys[h->nkeys] = (struct rh_key){ .name = copy };
	/* The table points into the key's own copy, which lives as long. */
	if (strtab_put(&p->keytab, 0, copy, strlen(copy), h->nkeys) < 0) {
		free(copy);
		return nomem(p);
	}
	*idx = h->nkeys++;
	return 0;
}

static const char *const op_names[] = { "set", "get", "incr", "append" };

static int parse_op(struct parser *p, char **f)
{
	struct rh_history *h = p->h;
	struct rh_entry o = { .line = p->line };
	int64_t v;
	if (parse_i64(f[0], &v) || v > INT32_MAX)
		return bad(p, "bad client '%s'", f[0]);
	o.client = (long)v;
	if (parse_i64(f[1], &v) || v > INT32_MAX)
		return bad(p, "bad sequence number '%s'", f[1]);
	o.seq = (long)v;
	int op = -1;
	for (int i = 0; i < 4; i++)
		if (!strcmp(f[2], op_names[i]))
			op = i;
	if (op < 0)
		return bad(p, "unknown operation '%s'", f[2]);
	o.op = (enum rh_op)op;
	{
		char *k;
		size_t kl;
		if (unescape(f[3], &k, &kl))
			return errno == ENOMEM ? nomem(p) : bad(p, "bad escape in key '%s'", f[3]);
		free(k);
		if (!kl)
			return bad(p, "empty key");
	}
	if (intern_key(p, f[3], &o.key))
		return -1;
	if (parse_i64(f[5], &o.inv))
		return bad(p, "bad invocation time '%s'", f[5]);
	if (!strcmp(f[6], "-")) {
		o.ret = RH_NEVER;
	} else if (parse_i64(f[6], &o.ret) || o.ret < o.inv) {
		return bad(p, "bad completion time '%s' (invoked at %s)", f[6], f[5]);
	}
	if (o.inv < h->start)
		return bad(p, "invoked at %" PRId64 ", before the start %" PRId64, o.inv, h->start);

	/* The argument. */
	if (o.op == RH_SET || o.op == RH_APPEND) {
		if (unescape(f[4], &o.arg, &o.arg_len))
			return errno == ENOMEM ? nomem(p) : bad(p, "bad escape in '%s'", f[4]);
		if (o.op == RH_APPEND &&
		    (!o.arg_len || o.arg[o.arg_len - 1] != ';' ||
		     memchr(o.arg, ';', o.arg_len - 1))) {
			free(o.arg);
			return bad(p, "append token '%s' must end with its only ';'", f[4]);
		}
	} else if (o.op == RH_GET && !strcmp(f[4], "final")) {
		o.final = true;
	} else if (strcmp(f[4], "-")) {
		return bad(p, "%s takes '-'%s, not '%s'", f[2],
			   o.op == RH_GET ? " or 'final'" : "", f[4]);
	}

	/* The result; from here on o.arg is freed with the history. */
	const char *r = f[7];
	int rc = 0;
	if (!strncmp(r, "?:", 2)) {
		o.outcome = RH_UNKNOWN;
		if (o.ret != RH_NEVER)
			rc = bad(p, "an unknown outcome ('%s') needs completion time '-'", r);
	} else if (o.ret == RH_NEVER) {
		rc = bad(p, "completion time '-' needs an unknown outcome '?:...', not '%s'", r);
	} else if (!strncmp(r, "err:", 4)) {
		o.outcome = RH_FAILED;
	} else {
		o.outcome = RH_OK;
		if (o.op == RH_SET && !strcmp(r, "ok")) {
			o.rkind = RH_R_NONE;
		} else if (o.op == RH_GET && !strcmp(r, "nil")) {
			o.rkind = RH_R_NIL;
		} else if (o.op == RH_GET && !strncmp(r, "v:", 2)) {
			o.rkind = RH_R_VALUE;
			if (unescape(r + 2, &o.value, &o.value_len))
				rc = errno == ENOMEM ? nomem(p) : bad(p, "bad escape in result");
		} else if ((o.op == RH_INCR || o.op == RH_APPEND) && !strncmp(r, "i:", 2)) {
			o.rkind = RH_R_INT;
			if (parse_signed(r + 2, &o.ival))
				rc = bad(p, "bad integer result '%s'", r);
		} else {
			rc = bad(p, "result '%.40s' does not fit %s", r, f[2]);
		}
	}
	if (!rc && (o.op == RH_SET || o.op == RH_APPEND)) {
		struct rh_key *k = &h->keys[o.key];
		enum rh_kind kind = o.op == RH_SET ? RH_KEY_REGISTER : RH_KEY_LOG;
		if (k->first_write_line && k->kind != kind)
			rc = bad(p, "key %s: %s mixed with the writes of line %u",
				 k->name, f[2], k->first_write_line);
		int put = rc ? 0 : strtab_put(&p->writes, o.key, o.arg, o.arg_len, h->n);
		if (put < 0)
			rc = nomem(p);
		else if (!rc && put == 0)
			rc = bad(p, "key %s: '%s' written twice (line %u)", k->name, f[4],
				 h->ops[*strtab_get(&p->writes, o.key, o.arg, o.arg_len)].line);
	}
	if (!rc && o.op == RH_INCR) {
		struct rh_key *k = &h->keys[o.key];
		if (k->first_write_line && k->kind != RH_KEY_COUNTER)
			rc = bad(p, "key %s: incr mixed with the writes of line %u",
				 k->name, k->first_write_line);
	}
	if (!rc && h->n == h->cap) {
		size_t nc = h->cap ? 2 * h->cap : 1024;
		struct rh_entry *no = realloc(h->ops, nc * sizeof(*no));
		if (!no)
			rc = nomem(p);
		else {
			h->ops = no;
			h->cap = nc;
		}
	}
	if (rc) {
		free(o.arg);
		free(o.value);
		return -1;
	}
	if (o.op != RH_GET) {
		struct rh_key *k = &h->keys[o.key];
		if (!k->first_write_line) {
			k->first_write_line = p->line;
			k->kind = o.op == RH_SET ? RH_KEY_REGISTER :
				  o.op == RH_INCR ? RH_KEY_COUNTER : RH_KEY_LOG;
		}
	}
	h->ops[h->n++] = o;
	return 0;
}

/* Splits s at single spaces into at most max fields; returns the count,
 * or -1 for an empty field (two spaces, or one at an end). */
static int split(char *s, char **f, int max)
{
	int n = 0;
	for (;;) {
		if (n == max)
			return max + 1;
		f[n++] = s;
		char *sp = strchr(s, ' ');
		if (!*s || sp == s)
			return -1;
		if (!sp)
			return n;
		*sp = 0;
		s = sp + 1;
	}
}

int rh_parse(struct rh_history *h, FILE *f, struct kg_err *e)
{
	*h = (struct rh_history){ 0 };
	struct parser p = { .h = h, .e = e };
	char *buf = NULL;
	size_t cap = 0;
	ssize_t len;
	bool have_end = false;
	int rc = 0;
	while (!rc && (len = getline(&buf, &cap, f)) >= 0) {
		p.line++;
		if (!len || buf[len - 1] != '\n') {
			rc = bad(&p, "the last line has no newline (truncated?)");
			break;
		}
		buf[--len] = 0;
		if ((size_t)len != strlen(buf)) {
			rc = bad(&p, "a NUL byte");
			break;
		}
		if (p.line == 1) {
			if (strcmp(buf, "redis-history 1"))
				rc = bad(&p, "not a redis-history 1 file ('%.40s')", buf);
			continue;
		}
		if (buf[0] == '#')
			continue;
		if (have_end) {
			rc = bad(&p, "a record after the 'end' line");
			break;
		}
		char *fl[9];
		int nf = split(buf, fl, 8);
		if (p.line == 2) {
			if (nf != 2 || strcmp(fl[0], "start") || parse_i64(fl[1], &h->start))
				rc = bad(&p, "expected 'start NS'");
			continue;
		}
		if (nf == 2 && !strcmp(fl[0], "end")) {
			if (parse_i64(fl[1], &h->end) || h->end < h->start)
				rc = bad(&p, "bad end time '%s'", fl[1]);
			have_end = true;
			continue;
		}
		if (nf != 8)
			rc = bad(&p, "expected 8 fields separated by one space "
				     "(client seq op key arg invoked completed result)");
		else
			rc = parse_op(&p, fl);
	}
	if (!rc && ferror(f))
		rc = kg_errno(e, "line %u: read", p.line + 1);
	if (!rc && p.line < 2) {
		p.line++;
		rc = bad(&p, p.line == 1 ? "empty file" : "expected 'start NS'");
	}
	if (!rc && !have_end) {
		p.line++;
		rc = bad(&p, "no 'end' line: the history is truncated");
	}
	for (size_t i = 0; !rc && i < h->n; i++) {
		struct rh_entry *o = &h->ops[i];
		if (o->inv > h->end || (o->ret != RH_NEVER && o->ret > h->end)) {
			p.line = o->line;
			rc = bad(&p, "an operation after the end time %" PRId64, h->end);
		}
	}
	free(buf);
	strtab_free(&p.keytab);
	strtab_free(&p.writes);
	return rc;
}

void rh_free(struct rh_history *h)
{
	for (size_t i = 0; i < h->n; i++) {
		free(h->ops[i].arg);
		free(h->ops[i].value);
	}
	for (size_t i = 0; i < h->nkeys; i++)
		free(h->keys[i].name);
	free(h->ops);
	free(h->keys);
	*h = (struct rh_history){ 0 };
}

/* --- checking --- */

struct checker {
	const struct rh_history *h;
	struct rh_report *r;
	struct strtab writes; /* (key, arg) -> op index */
	bool nomem;
};

#define NO_OP SIZE_MAX /* the virtual initial write (nil) */

/* "c2#17 get (line 40)" into b. */
static const char *opname(const struct checker *c, size_t i, char *b, size_t n)
{
	if (i == NO_OP) {
		snprintf(b, n, "the initial state");
		return b;
	}
	const struct rh_entry *o = &c->h->ops[i];
	snprintf(b, n, "c%ld#%ld %s%s (line %u)", o->client, o->seq,
		 o->final ? "final " : "", op_names[o->op], o->line);
	return b;
}

/* A value or token for messages, escaped and cut short. */
static const char *shown(const char *s, size_t len, char *b, size_t n)
{
	char tmp[3 * 60 + 1];
	bool cut = len > 60;
	rh_escape(s, cut ? 60 : len, tmp);
	snprintf(b, n, "'%s%s'", tmp, cut ? "..." : "");
	return b;
}

static void violation(struct checker *c, size_t key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void violation(struct checker *c, size_t key, const char *fmt, ...)
{
	struct rh_report *r = c->r;
	r->violations_total++;
	if (r->nviolations >= RH_MAX_REPORTED || c->nomem)
		return;
	char m[1024];
	int off = snprintf(m, sizeof(m), "key %s: ", c->h->keys[key].name);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m + off, sizeof(m) - (size_t)off, fmt, ap);
	va_end(ap);
	char *s = strdup(m);
	char **nv = realloc(r->violations, (r->nviolations + 1) * sizeof(*nv));
	if (!s || !nv) {
		free(s);
		if (nv)
			r->violations = nv;
		c->nomem = true;
		return;
	}
	r->violations = nv;
	r->violations[r->nviolations++] = s;
}

static bool is_write(const struct rh_entry *o)
{
	return o->op != RH_GET;
}

static bool acked_read(const struct rh_entry *o)
{
	return o->op == RH_GET && o->outcome == RH_OK;
}

/* Registers: R1, R2. */
struct cluster {
	int64_t f, s;
	size_t fop, sop; /* the ops giving f and s */
	size_t write;    /* NO_OP: nil */
	size_t nreads;
	bool used;
};

static int cmp_zone_f(const void *a, const void *b)
{
	const struct cluster *x = *(const struct cluster *const *)a;
	const struct cluster *y = *(const struct cluster *const *)b;
	return x->f < y->f ? -1 : x->f > y->f;
}

static void cluster_add(struct cluster *cl, const struct rh_entry *ops, size_t i)
{
	if (!cl->used) {
		*cl = (struct cluster){ .f = INT64_MAX, .s = INT64_MIN, .write = cl->write, .used = true };
	}
	if (ops[i].ret < cl->f) {
		cl->f = ops[i].ret;
		cl->fop = i;
	}
	if (ops[i].inv > cl->s) {
		cl->s = ops[i].inv;
		cl->sop = i;
	}
}

static const char *zone_value(const struct rh_entry *ops, const struct cluster *k,
			      char *b, size_t n)
{
	if (k->write == NO_OP) {
		snprintf(b, n, "nil");
		return b;
	}
	return shown(ops[k->write].arg, ops[k->write].arg_len, b, n);
}

static void check_register(struct checker *c, size_t key, const size_t *idx, size_t n)
{
	const struct rh_entry *ops = c->h->ops;
	char b1[160], b2[160], b3[160], b4[160], v1[200];
	/* Cluster 0 is nil; cluster 1 + j belongs to the j-th write in idx
	 * order: map op index -> cluster through a local table. */
	struct cluster *cl = calloc(n + 1, sizeof(*cl));
	struct strtab pos = { 0 };
	if (!cl) {
		c->nomem = true;
		goto out;
	}
	cl[0] = (struct cluster){ .f = INT64_MIN, .s = INT64_MIN, .fop = NO_OP,
				  .sop = NO_OP, .write = NO_OP };
	size_t ncl = 1;
	for (size_t j = 0; j < n; j++) {
		const struct rh_entry *o = &ops[idx[j]];
		if (o->op != RH_SET || o->outcome == RH_FAILED)
			continue;
		cl[ncl] = (struct cluster){ .write = idx[j] };
		if (o->outcome == RH_OK)
			cluster_add(&cl[ncl], ops, idx[j]);
		if (strtab_put(&pos, 0, o->arg, o->arg_len, ncl) < 0) {
			c->nomem = true;
			goto out;
		}
		ncl++;
	}
	for (size_t j = 0; j < n; j++) {
		size_t i = idx[j];
		const struct rh_entry *o = &ops[i];
		if (!acked_read(o))
			continue;
		if (o->rkind == RH_R_NIL) {
			if (!cl[0].nreads || o->inv > cl[0].s) {
				cl[0].s = o->inv;
				cl[0].sop = i;
			}
			cl[0].nreads++;
			cl[0].used = true;
			continue;
		}
		const size_t *w = strtab_get(&c->writes, key, o->value, o->value_len);
		if (!w) {
			violation(c, key, "read of a value never written: %s returned %s, which no set on this key wrote",
				  opname(c, i, b1, sizeof(b1)), shown(o->value, o->value_len, v1, sizeof(v1)));
			continue;
		}
		const struct rh_entry *wo = &ops[*w];
		if (wo->outcome == RH_FAILED) {
			violation(c, key, "read of a value never written: %s returned %s, whose %s failed",
				  opname(c, i, b1, sizeof(b1)), shown(o->value, o->value_len, v1, sizeof(v1)),
				  opname(c, *w, b2, sizeof(b2)));
			continue;
		}
		if (o->ret < wo->inv) {
			violation(c, key, "read from the future: %s returned %s before %s, which wrote it, was invoked",
				  opname(c, i, b1, sizeof(b1)), shown(o->value, o->value_len, v1, sizeof(v1)),
				  opname(c, *w, b2, sizeof(b2)));
			continue;
		}
		struct cluster *k = &cl[*strtab_get(&pos, 0, wo->arg, wo->arg_len)];
		/* An unknown write that was read took effect: it joins its
		 * cluster, completing at +infinity. */
		if (!k->used)
			cluster_add(k, ops, k->write);
		cluster_add(k, ops, i);
		k->nreads++;
	}

	/* Zones: forward f < s, sorted by f. */
	struct cluster **fwd = calloc(ncl, sizeof(*fwd));
	if (!fwd) {
		c->nomem = true;
		goto out;
	}
	size_t nf = 0;
	for (size_t j = 0; j < ncl; j++)
		if (cl[j].used && cl[j].f < cl[j].s)
			fwd[nf++] = &cl[j];
	qsort(fwd, nf, sizeof(*fwd), cmp_zone_f);
	const struct cluster *a = NULL;
	char va[200], vz[200];
	for (size_t j = 0; j < nf; j++) {
		const struct cluster *z = fwd[j];
		if (a && z->f < a->s) {
			zone_value(ops, a, va, sizeof(va));
			zone_value(ops, z, vz, sizeof(vz));
			violation(c, key, "stale read: no order of %s and %s fits: %s (%s) completed before %s (%s) was invoked, "
				  "and %s (%s) completed before %s (%s) was invoked",
				  va, vz, opname(c, a->fop, b1, sizeof(b1)), va, opname(c, z->sop, b2, sizeof(b2)), vz,
				  opname(c, z->fop, b3, sizeof(b3)), vz, opname(c, a->sop, b4, sizeof(b4)), va);
		}
		if (!a || z->s > a->s)
			a = z;
	}
	for (size_t j = 0; j < ncl; j++) {
		const struct cluster *z = &cl[j];
		if (!z->used || z->f < z->s)
			continue;
		/* The forward zone with the largest f < z->s: forward zones
		 * that do not overlap are disjoint, so only it can hold z. */
		size_t lo = 0, hi = nf;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (fwd[mid]->f < z->s)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (!lo || !(z->f < fwd[lo - 1]->s))
			continue;
		a = fwd[lo - 1];
		const char *why = ops[a->sop].final ? "lost write" : "stale read";
		zone_value(ops, a, va, sizeof(va));
		zone_value(ops, z, vz, sizeof(vz));
		if (z->nreads == 0)
			violation(c, key, "%s: %s returned %s, but %s wrote %s after %s (%s) completed and before that read was invoked",
				  why, opname(c, a->sop, b1, sizeof(b1)), va, opname(c, z->write, b2, sizeof(b2)), vz,
				  opname(c, a->fop, b3, sizeof(b3)), va);
		else
			violation(c, key, "%s: %s returned %s, but %s (%s) was invoked after %s (%s) completed, "
				  "and %s (%s) completed before that read was invoked",
				  why, opname(c, a->sop, b1, sizeof(b1)), va, opname(c, z->sop, b2, sizeof(b2)), vz,
				  opname(c, a->fop, b3, sizeof(b3)), va, opname(c, z->fop, b4, sizeof(b4)), vz);
	}
	free(fwd);
out:
	free(cl);
	strtab_free(&pos);
}

/* A point of a sweep: an acknowledged op, its time (completion for a
 * source, invocation for a target) and its value. */
struct pt {
	int64_t t;
	long long v;
	size_t op;
};

static int cmp_pt_t(const void *a, const void *b)
{
	const struct pt *x = a, *y = b;
	return x->t < y->t ? -1 : x->t > y->t;
}

static int cmp_pt_v(const void *a, const void *b)
{
	const struct pt *x = a, *y = b;
	return x->v < y->v ? -1 : x->v > y->v;
}

/* For each target (sorted by invocation here), best[i] is the source
 * with the largest value among those that completed before it was
 * invoked (NULL if none). src is sorted by completion here. */
static void sweep_max(struct pt *src, size_t ns, struct pt *tgt, size_t nt,
		      const struct pt **best)
{
	qsort(src, ns, sizeof(*src), cmp_pt_t);
	qsort(tgt, nt, sizeof(*tgt), cmp_pt_t);
	const struct pt *m = NULL;
	size_t k = 0;
	for (size_t i = 0; i < nt; i++) {
		for (; k < ns && src[k].t < tgt[i].t; k++)
			if (!m || src[k].v > m->v)
				m = &src[k];
		best[i] = m;
	}
}

/* A GET's string as a decimal integer. */
static bool counter_value(const struct rh_entry *o, long long *v)
{
	if (o->rkind == RH_R_NIL) {
		*v = 0;
		return true;
	}
	return o->value_len == strlen(o->value) && !parse_signed(o->value, v);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* Counters: C1..C3. */
static void check_counter(struct checker *c, size_t key, const size_t *idx, size_t n)
{
	const struct rh_entry *ops = c->h->ops;
	char b1[160], b2[160];
	struct pt *src = calloc(n, sizeof(*src)), *tgt = calloc(n, sizeof(*tgt));
	struct pt *incr = calloc(n, sizeof(*incr));
	const struct pt **best = calloc(n, sizeof(*best));
	int64_t *invs = calloc(n, sizeof(*invs));
	if (!src || !tgt || !incr || !best || !invs) {
		c->nomem = true;
		goto out;
	}
	size_t na = 0, ni = 0, nv = 0;
	for (size_t j = 0; j < n; j++) {
		size_t i = idx[j];
		const struct rh_entry *o = &ops[i];
		if (o->op == RH_INCR && o->outcome != RH_FAILED)
			invs[nv++] = o->inv;
		if (o->outcome != RH_OK)
			continue;
		long long v = o->ival;
		if (o->op == RH_GET && !counter_value(o, &v)) {
			char vb[200];
			violation(c, key, "read of a value never written: %s returned %s, not a count",
				  opname(c, i, b1, sizeof(b1)), shown(o->value, o->value_len, vb, sizeof(vb)));
			continue;
		}
		if (o->op == RH_INCR) {
			if (v <= 0)
				violation(c, key, "incr returned %lld: %s", v, opname(c, i, b1, sizeof(b1)));
			incr[ni++] = (struct pt){ o->ret, v, i };
		}
		src[na] = (struct pt){ o->ret, v, i };
		tgt[na++] = (struct pt){ o->inv, v, i };
	}
	/* C1: distinct results. */
	qsort(incr, ni, sizeof(*incr), cmp_pt_v);
	for (size_t j = 1; j < ni; j++)
		if (incr[j].v == incr[j - 1].v)
			violation(c, key, "duplicate incr: %s and %s both returned %lld",
				  opname(c, incr[j - 1].op, b1, sizeof(b1)),
				  opname(c, incr[j].op, b2, sizeof(b2)), incr[j].v);
	/* C2: never back in real time. */
	sweep_max(src, na, tgt, na, best);
	for (size_t j = 0; j < na; j++) {
		const struct pt *m = best[j];
		const struct rh_entry *t = &ops[tgt[j].op];
		if (!m || (t->op == RH_INCR ? m->v < tgt[j].v : m->v <= tgt[j].v))
			continue;
		const char *why = t->op == RH_INCR ? "incr went backwards" :
				  ops[m->op].op == RH_INCR ? (t->final ? "lost incr" : "stale read") :
				  "counter went backwards";
		violation(c, key, "%s: %s returned %lld and completed before %s was invoked, which returned %lld",
			  why, opname(c, m->op, b1, sizeof(b1)), m->v, opname(c, t - ops, b2, sizeof(b2)), tgt[j].v);
	}
	/* C3: no more than the incrs invoked before it completed. */
	qsort(invs, nv, sizeof(*invs), cmp_i64);
	for (size_t j = 0; j < na; j++) {
		const struct rh_entry *o = &ops[tgt[j].op];
		size_t lo = 0, hi = nv;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (invs[mid] < o->ret)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (tgt[j].v > (long long)lo)
			violation(c, key, "value never written: %s returned %lld, but only %zu incr (acknowledged or unknown) were invoked before it completed",
				  opname(c, tgt[j].op, b1, sizeof(b1)), tgt[j].v, lo);
	}
out:
	free(src);
	free(tgt);
	free(incr);
	free(best);
	free(invs);
}

/* Logs: L1..L4. stamp has one slot per op of the history. */
static void check_log(struct checker *c, size_t key, const size_t *idx, size_t n,
		      size_t *stamp, size_t *stamp_gen)
{
	const struct rh_entry *ops = c->h->ops;
	char b1[160], b2[160], b3[160], v1[200];
	struct pt *acked = calloc(n, sizeof(*acked));
	struct pt *src = calloc(n, sizeof(*src)), *tgt = calloc(n, sizeof(*tgt));
	const struct pt **best = calloc(n, sizeof(*best));
	size_t *toks = NULL, toks_cap = 0;
	if (!acked || !src || !tgt || !best) {
		c->nomem = true;
		goto out;
	}
	size_t na = 0, nr = 0;
	size_t longest = NO_OP; /* the read with the longest string */
	for (size_t j = 0; j < n; j++) {
		const struct rh_entry *o = &ops[idx[j]];
		if (o->op == RH_APPEND && o->outcome == RH_OK)
			acked[na++] = (struct pt){ o->ret, 0, idx[j] };
	}
	qsort(acked, na, sizeof(*acked), cmp_pt_t);
	for (size_t j = 0; j < n; j++) {
		size_t i = idx[j];
		const struct rh_entry *o = &ops[i];
		if (!acked_read(o))
			continue;
		const char *s = o->rkind == RH_R_VALUE ? o->value : "";
		size_t len = o->rkind == RH_R_VALUE ? o->value_len : 0;
		size_t gen = ++*stamp_gen, nt = 0;
		bool ok = true;
		/* L1 */
		for (size_t p = 0; ok && p < len;) {
			const char *semi = memchr(s + p, ';', len - p);
			size_t tl = semi ? (size_t)(semi - (s + p)) + 1 : len - p;
			const size_t *w = semi ? strtab_get(&c->writes, key, s + p, tl) : NULL;
			ok = false;
			if (!w)
				violation(c, key, "read of a value never written: %s returned a log with %s at byte %zu, which no append on this key wrote",
					  opname(c, i, b1, sizeof(b1)), shown(s + p, tl, v1, sizeof(v1)), p);
			else if (ops[*w].outcome == RH_FAILED)
				violation(c, key, "read of a value never written: %s returned %s, whose %s failed",
					  opname(c, i, b1, sizeof(b1)), shown(s + p, tl, v1, sizeof(v1)),
					  opname(c, *w, b2, sizeof(b2)));
			else if (stamp[*w] == gen)
				violation(c, key, "read of a value never written: %s returned %s twice",
					  opname(c, i, b1, sizeof(b1)), shown(s + p, tl, v1, sizeof(v1)));
			else if (o->ret < ops[*w].inv)
				violation(c, key, "read from the future: %s returned %s before %s was invoked",
					  opname(c, i, b1, sizeof(b1)), shown(s + p, tl, v1, sizeof(v1)),
					  opname(c, *w, b2, sizeof(b2)));
			else
				ok = true;
			if (!ok)
				break;
			stamp[*w] = gen;
			if (nt == toks_cap) {
				size_t nc = toks_cap ? 2 * toks_cap : 64;
				size_t *ntk = realloc(toks, nc * sizeof(*ntk));
				if (!ntk) {
					c->nomem = true;
					goto out;
				}
				toks = ntk;
				toks_cap = nc;
			}
			toks[nt++] = *w;
			p += tl;
		}
		if (!ok)
			continue;
		/* L2: from the end, the earliest completion after each token. */
		size_t minop = NO_OP;
		for (size_t k = nt; k-- > 0;) {
			if (minop != NO_OP && ops[minop].ret < ops[toks[k]].inv) {
				violation(c, key, "append order: %s has %s's token before %s's, but the latter completed before the former was invoked",
					  opname(c, i, b1, sizeof(b1)), opname(c, toks[k], b2, sizeof(b2)),
					  opname(c, minop, b3, sizeof(b3)));
				break;
			}
			if (minop == NO_OP || ops[toks[k]].ret < ops[minop].ret)
				minop = toks[k];
		}
		/* L3 */
		size_t by = i; /* the latest invocation among the read and its tokens */
		for (size_t k = 0; k < nt; k++)
			if (ops[toks[k]].inv > ops[by].inv)
				by = toks[k];
		for (size_t k = 0; k < na && acked[k].t < ops[by].inv; k++) {
			if (stamp[acked[k].op] == gen)
				continue;
			violation(c, key, "%s: %s lacks %s of %s, acknowledged before %s was invoked",
				  o->final ? "lost append" : "missing acked token",
				  opname(c, i, b1, sizeof(b1)),
				  shown(ops[acked[k].op].arg, ops[acked[k].op].arg_len, v1, sizeof(v1)),
				  opname(c, acked[k].op, b2, sizeof(b2)),
				  by == i ? "the read" : opname(c, by, b3, sizeof(b3)));
			break;
		}
		if (longest == NO_OP || len > ops[longest].value_len)
			longest = i;
		src[nr] = (struct pt){ o->ret, (long long)len, i };
		tgt[nr++] = (struct pt){ o->inv, (long long)len, i };
	}
	/* L4 */
	if (longest == NO_OP)
		goto out;
	const struct rh_entry *lo = &ops[longest];
	const char *ls = lo->rkind == RH_R_VALUE ? lo->value : "";
	for (size_t j = 0; j < nr; j++) {
		const struct rh_entry *o = &ops[src[j].op];
		if (o->rkind == RH_R_VALUE && memcmp(o->value, ls, o->value_len)) {
			violation(c, key, "reads disagree: what %s read is not a prefix of what %s read",
				  opname(c, src[j].op, b1, sizeof(b1)), opname(c, longest, b2, sizeof(b2)));
			break;
		}
	}
	sweep_max(src, nr, tgt, nr, best);
	for (size_t j = 0; j < nr; j++)
		if (best[j] && best[j]->v > tgt[j].v) {
			violation(c, key, "log shrank: %s read %lld bytes and completed before %s was invoked, which read %lld",
				  opname(c, best[j]->op, b1, sizeof(b1)), best[j]->v,
				  opname(c, tgt[j].op, b2, sizeof(b2)), tgt[j].v);
			break;
		}
	size_t llen = lo->rkind == RH_R_VALUE ? lo->value_len : 0;
	for (size_t k = 0; k < na; k++) {
		const struct rh_entry *a = &ops[acked[k].op];
		if (a->ival < 0 || (unsigned long long)a->ival > llen)
			continue;
		size_t end = (size_t)a->ival;
		if (end < a->arg_len || memcmp(ls + end - a->arg_len, a->arg, a->arg_len))
			violation(c, key, "%s returned length %lld, but its token does not end there in what %s read",
				  opname(c, acked[k].op, b1, sizeof(b1)), a->ival, opname(c, longest, b2, sizeof(b2)));
	}
out:
	free(acked);
	free(src);
	free(tgt);
	free(best);
	free(toks);
}

static void outage(const struct rh_history *h, struct rh_report *r, int64_t *rets, size_t n)
{
	qsort(rets, n, sizeof(*rets), cmp_i64);
	int64_t prev = h->start;
	r->outage_ns = -1;
	for (size_t i = 0; i <= n; i++) {
		int64_t t = i < n ? rets[i] : h->end;
		if (t - prev > r->outage_ns) {
			r->outage_ns = t - prev;
			r->outage_from_ns = prev - h->start;
			r->outage_trailing = i == n;
		}
		prev = t;
	}
}

int rh_check(const struct rh_history *h, struct rh_report *r, struct kg_err *e)
{
	*r = (struct rh_report){ .ops = h->n, .keys = h->nkeys };
	struct checker c = { .h = h, .r = r };
	size_t *start = calloc(h->nkeys + 1, sizeof(*start));
	size_t *by_key = calloc(h->n ? h->n : 1, sizeof(*by_key));
	size_t *stamp = calloc(h->n ? h->n : 1, sizeof(*stamp));
	int64_t *rets = calloc(h->n ? h->n : 1, sizeof(*rets));
	bool *final_read = calloc(h->nkeys ? h->nkeys : 1, sizeof(*final_read));
	bool *acked_write = calloc(h->nkeys ? h->nkeys : 1, sizeof(*acked_write));
	size_t nrets = 0, gen = 0;
	if (!start || !by_key || !stamp || !rets || !final_read || !acked_write)
		c.nomem = true;
	for (size_t i = 0; !c.nomem && i < h->n; i++) {
		const struct rh_entry *o = &h->ops[i];
		start[o->key + 1]++;
		if (o->outcome == RH_OK) {
			r->acked++;
			rets[nrets++] = o->ret;
			if (is_write(o)) {
				r->acked_writes++;
				acked_write[o->key] = true;
			} else if (o->final) {
				final_read[o->key] = true;
			}
		} else if (o->outcome == RH_FAILED) {
			r->failed++;
		} else {
			r->unknown++;
		}
		if (o->arg && strtab_put(&c.writes, o->key, o->arg, o->arg_len, i) < 0)
			c.nomem = true;
	}
	if (!c.nomem) {
		for (size_t k = 0; k < h->nkeys; k++) {
			start[k + 1] += start[k];
			r->final_unread += acked_write[k] && !final_read[k];
		}
		size_t *fill = calloc(h->nkeys ? h->nkeys : 1, sizeof(*fill));
		if (!fill)
			c.nomem = true;
		for (size_t i = 0; fill && i < h->n; i++) {
			size_t k = h->ops[i].key;
			by_key[start[k] + fill[k]++] = i;
		}
		free(fill);
	}
	for (size_t k = 0; !c.nomem && k < h->nkeys; k++) {
		const size_t *idx = by_key + start[k];
		size_t n = start[k + 1] - start[k];
		switch (h->keys[k].kind) {
		case RH_KEY_REGISTER:
			check_register(&c, k, idx, n);
			break;
		case RH_KEY_COUNTER:
			check_counter(&c, k, idx, n);
			break;
		case RH_KEY_LOG:
			check_log(&c, k, idx, n, stamp, &gen);
			break;
		}
	}
	if (!c.nomem)
		outage(h, r, rets, nrets);
	free(start);
	free(by_key);
	free(stamp);
	free(rets);
	free(final_read);
	free(acked_write);
	strtab_free(&c.writes);
	if (c.nomem)
		return kg_errk(e, KG_ERR_NOMEM, "history check: out of memory");
	return 0;
}

void rh_report_free(struct rh_report *r)
{
	for (size_t i = 0; i < r->nviolations; i++)
		free(r->violations[i]);
	free(r->violations);
	*r = (struct rh_report){ 0 };
}
