#include "history.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xxhash.h"

#define MAX_FILE (1ull << 31)

static const char *const op_names[] = {
	[HIST_PUT] = "put", [HIST_GET] = "get", [HIST_DEL] = "del",
	[HIST_APPEND] = "append", [HIST_INCR] = "incr",
};

const char *hist_op_name(enum hist_op op)
{
	return op_names[op];
}

void history_free(struct history *h)
{
	for (size_t i = 0; i < h->n; i++) {
		free(h->ev[i].id);
		free(h->ev[i].key);
		free(h->ev[i].arg);
		free(h->ev[i].result);
	}
	free(h->ev);
	free(h->idx);
	memset(h, 0, sizeof(*h));
}

/* --- the id index ---------------------------------------------------- */

static size_t id_slot(const struct history *h, const char *id, bool *found)
{
	size_t mask = h->idx_cap - 1;
	size_t i = (size_t)XXH3_64bits(id, strlen(id)) & mask;
	while (h->idx[i] != SIZE_MAX) {
		if (!strcmp(h->ev[h->idx[i]].id, id)) {
			*found = true;
			return i;
		}
		i = (i + 1) & mask;
	}
	*found = false;
	return i;
}

static int id_grow(struct history *h, struct kg_err *e)
{
	if (h->idx && (h->n + 1) * 2 <= h->idx_cap)
		return 0;
	size_t cap = h->idx_cap ? h->idx_cap * 2 : 1024;
	size_t *idx = malloc(cap * sizeof(*idx));
	if (!idx)
		return kg_errf(e, "out of memory");
	free(h->idx);
	h->idx = idx;
	h->idx_cap = cap;
	memset(idx, 0xff, cap * sizeof(*idx));
	for (size_t k = 0; k < h->n; k++) {
		bool found;
		idx[id_slot(h, h->ev[k].id, &found)] = k;
	}
	return 0;
}

/* --- lines ----------------------------------------------------------- */

struct cursor {
	const char *name;
	unsigned line;
	char *f[8];
	unsigned nf;
};

static int bad(struct kg_err *e, const struct cursor *c, const char *what)
{
	return kg_errf(e, "history %s line %u: %s", c->name, c->line, what);
}

static int parse_ns(const struct cursor *c, const char *s, uint64_t *out,
		    struct kg_err *e)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (!*s || *end || errno || *s == '-' || v == 0)
		return bad(e, c, "the time is not a positive whole number of "
			   "nanoseconds");
	*out = v;
	return 0;
}

static bool valid_str(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && n <= HIST_STR_MAX;
}

static int parse_op(const char *s, enum hist_op *op)
{
	for (size_t i = 0; i < sizeof(op_names) / sizeof(op_names[0]); i++)
		if (!strcmp(s, op_names[i])) {
			*op = (enum hist_op)i;
			return 0;
		}
	return -1;
}

static bool op_has_arg(enum hist_op op)
{
	return op == HIST_PUT || op == HIST_APPEND;
}

static bool op_has_result(enum hist_op op)
{
	return op == HIST_GET || op == HIST_APPEND || op == HIST_INCR;
}

static int add_invoke(struct history *h, const struct cursor *c,
		      struct kg_err *e)
{
	struct hist_event ev = { .line = c->line };
	if (c->nf < 5 || c->nf > 6)
		return bad(e, c, "invoke needs ID T OP KEY [ARG]");
	if (parse_op(c->f[3], &ev.op) < 0)
		return bad(e, c, "unknown operation (put, get, del, append, "
			   "incr)");
	if (op_has_arg(ev.op) != (c->nf == 6))
		return bad(e, c, op_has_arg(ev.op) ? "this operation needs a "
			   "value" : "this operation takes no value");
	if (!valid_str(c->f[1]) || !valid_str(c->f[4]) ||
	    (c->nf == 6 && (!valid_str(c->f[5]) || !strcmp(c->f[5], "-"))))
		return bad(e, c, "an id, key or value is empty, longer than "
			   "1024 bytes, or '-'");
	if (parse_ns(c, c->f[2], &ev.invoke_ns, e) < 0)
		return -1;
	if (id_grow(h, e) < 0)
		return -1;
	bool found;
	size_t slot = id_slot(h, c->f[1], &found);
	if (found)
		return bad(e, c, "the id was invoked before");
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 1024;
		struct hist_event *ev2 = realloc(h->ev, cap * sizeof(*ev2));
		if (!ev2)
			return kg_errf(e, "out of memory");
		h->ev = ev2;
		h->cap = cap;
	}
	ev.id = strdup(c->f[1]);
	ev.key = strdup(c->f[4]);
	ev.arg = c->nf == 6 ? strdup(c->f[5]) : NULL;
	if (!ev.id || !ev.key || (c->nf == 6 && !ev.arg)) {
		free(ev.id), free(ev.key), free(ev.arg);
		return kg_errf(e, "out of memory");
	}
	h->idx[slot] = h->n;
	h->ev[h->n++] = ev;
	return 0;
}

static int add_completion(struct history *h, const struct cursor *c,
			  enum hist_outcome out, struct kg_err *e)
{
	if (c->nf < 3)
		return bad(e, c, "a completion needs ID T");
	bool found = false;
	size_t slot = h->idx ? id_slot(h, c->f[1], &found) : 0;
	if (!found)
		return bad(e, c, "completes an id that was never invoked");
	struct hist_event *ev = &h->ev[h->idx[slot]];
	if (ev->outcome != HIST_PENDING)
		return bad(e, c, "the id was completed before");
	uint64_t t;
	if (parse_ns(c, c->f[2], &t, e) < 0)
		return -1;
	if (t < ev->invoke_ns)
		return bad(e, c, "completes before its invocation");
	bool want = out == HIST_OK && op_has_result(ev->op);
	if ((c->nf == 4) != want)
		return bad(e, c, want ? "this completion needs a result"
				      : "this completion takes no result");
	if (want) {
		if (!valid_str(c->f[3]))
			return bad(e, c, "the result is longer than 1024 bytes");
		if (ev->op != HIST_GET) {
			char *end;
			errno = 0;
			(void)strtoll(c->f[3], &end, 10);
			if (*end || errno)
				return bad(e, c, "the result is not a number");
		}
		if (!(ev->result = strdup(c->f[3])))
			return kg_errf(e, "out of memory");
	}
	ev->outcome = out;
	ev->complete_ns = t;
	return 0;
}

static int parse_line(struct history *h, struct cursor *c, char *line,
		      bool *seen_version, struct kg_err *e)
{
	c->nf = 0;
	for (char *p = line; *p;) {
		if (*p == ' ') {
			return bad(e, c, "two spaces in a row, or a leading "
				   "space");
		}
		if (c->nf == 8)
			return bad(e, c, "too many fields");
		c->f[c->nf++] = p;
		char *sp = strchr(p, ' ');
		if (!sp)
			break;
		*sp = 0;
		p = sp + 1;
		if (!*p)
			return bad(e, c, "a trailing space");
	}
	if (c->nf == 0 || c->f[0][0] == '#')
		return 0;
	if (!*seen_version) {
		if (c->nf != 2 || strcmp(c->f[0], "history"))
			return bad(e, c, "not a history file (the first line "
				   "must be 'history 1')");
		if (strcmp(c->f[1], "1"))
			return bad(e, c, "unsupported history version (this "
				   "checker reads version 1)");
		*seen_version = true;
		return 0;
	}
	const char *k = c->f[0];
	if (!strcmp(k, "history"))
		return 0; /* another client's header in a shared file */
	if (!strcmp(k, "start") || !strcmp(k, "end")) {
		uint64_t t;
		if (c->nf != 2)
			return bad(e, c, "start and end need one time");
		if (parse_ns(c, c->f[1], &t, e) < 0)
			return -1;
		uint64_t *slot = k[0] == 's' ? &h->start_ns : &h->end_ns;
		/* Several clients: the earliest start, the latest end. */
		if (!*slot || (k[0] == 's' ? t < *slot : t > *slot))
			*slot = t;
		return 0;
	}
	if (!strcmp(k, "invoke"))
		return add_invoke(h, c, e);
	if (!strcmp(k, "ok"))
		return add_completion(h, c, HIST_OK, e);
	if (!strcmp(k, "fail"))
		return add_completion(h, c, HIST_FAIL, e);
	if (!strcmp(k, "info"))
		return add_completion(h, c, HIST_INFO, e);
	return bad(e, c, "unknown event (invoke, ok, fail, info, start, end)");
}

int history_parse(struct history *h, const char *name, const char *text,
		  size_t len, struct kg_err *e)
{
	struct cursor c = { .name = name };
	bool seen_version = false;
	char *buf = malloc(HIST_STR_MAX * 3 + 128);
	if (!buf)
		return kg_errf(e, "out of memory");
	size_t pos = 0;
	int rc = 0;
	while (pos < len && rc == 0) {
		c.line++;
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		if (!nl) {
			/* A client killed mid-write leaves no torn line
			 * (one write per line), so this is damage. */
			rc = bad(e, &c, "the last line has no newline");
			break;
		}
		if (n > HIST_STR_MAX * 3 + 100) {
			rc = bad(e, &c, "line too long");
			break;
		}
		if (memchr(text + pos, 0, n)) {
			rc = bad(e, &c, "a NUL byte");
			break;
		}
		memcpy(buf, text + pos, n);
		buf[n] = 0;
		if (n && buf[n - 1] == '\r')
			rc = bad(e, &c, "a carriage return");
		else
			rc = parse_line(h, &c, buf, &seen_version, e);
		pos += n + 1;
	}
	free(buf);
	if (rc == 0 && !seen_version)
		rc = kg_errf(e, "history %s: empty (no 'history 1' line)", name);
	return rc;
}

int history_read(struct history *h, const char *path, struct kg_err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kg_errno(e, "history %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return kg_errno(e, "history %s: fstat", path);
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_FILE) {
		close(fd);
		return kg_errf(e, "history %s: not a regular file of at most "
			       "2 GiB", path);
	}
	size_t len = (size_t)st.st_size;
	char *text = malloc(len ? len : 1);
	if (!text) {
		close(fd);
		return kg_errf(e, "history %s: out of memory", path);
	}
	size_t got = 0;
	while (got < len) {
		ssize_t r = read(fd, text + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int rc = r < 0 ? kg_errno(e, "history %s: read", path)
				       : kg_errf(e, "history %s: shrank while "
						 "read", path);
			free(text);
			close(fd);
			return rc;
		}
		got += (size_t)r;
	}
	close(fd);
	int rc = history_parse(h, path, text, len, e);
	free(text);
	return rc;
}
