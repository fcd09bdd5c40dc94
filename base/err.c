#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void vset(struct kg_err *e, enum kg_err_kind kind, const char *fmt,
		 va_list ap)
{
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	e->kind = kind;
}

int kg_errf(struct kg_err *e, const char *fmt, ...)
{
	if (e) {
		va_list ap;
		va_start(ap, fmt);
		vset(e, KG_ERR_UNSPECIFIED, fmt, ap);
		va_end(ap);
	}
	return -1;
}

int kg_errk(struct kg_err *e, enum kg_err_kind kind, const char *fmt, ...)
{
	if (e) {
		va_list ap;
		va_start(ap, fmt);
		vset(e, kind, fmt, ap);
		va_end(ap);
	}
	return -1;
}

enum kg_err_kind kg_err_kind_of_errno(int errnum)
{
	switch (errnum) {
	case ECONNREFUSED:
		return KG_ERR_REFUSED;
	case ENOSPC:
	case EDQUOT:
		return KG_ERR_NO_SPACE;
	case ETIMEDOUT:
		return KG_ERR_TIMEOUT;
	case ECONNRESET:
	case ECONNABORTED:
	case EPIPE:
	case ENOTCONN:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case ENETDOWN:
	case EHOSTDOWN:
		return KG_ERR_PEER_GONE;
	case ENOMEM:
	case ENOBUFS:
		return KG_ERR_NOMEM;
	default:
		return KG_ERR_IO;
	}
}

int kg_errno(struct kg_err *e, const char *what, ...)
{
	int saved = errno;
	if (e) {
		char w[256];
		va_list ap;
		va_start(ap, what);
		vsnprintf(w, sizeof(w), what, ap);
		va_end(ap);
		snprintf(e->msg, sizeof(e->msg), "%s: %s", w, strerror(saved));
		e->kind = kg_err_kind_of_errno(saved);
	}
	errno = saved;
	return -1;
}

int kg_err_prefix(struct kg_err *e, const char *fmt, ...)
{
	if (e) {
		char p[256];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p, sizeof(p), fmt, ap);
		va_end(ap);
		size_t plen = strlen(p) + 2, cap = sizeof(e->msg) - 1;
		size_t olen = strnlen(e->msg, cap);
		if (plen > cap)
			plen = cap;
		if (olen > cap - plen)
			olen = cap - plen;
		memmove(e->msg + plen, e->msg, olen);
		memcpy(e->msg, p, plen - 2);
		memcpy(e->msg + plen - 2, ": ", 2);
		e->msg[plen + olen] = '\0';
	}
	return -1;
}

int kg_err_as(struct kg_err *e, enum kg_err_kind kind)
{
	if (e)
		e->kind = kind;
	return -1;
}

const char *kg_err_kind_name(enum kg_err_kind kind)
{
	switch (kind) {
	case KG_ERR_UNSPECIFIED: return "unspecified";
	case KG_ERR_INVALID: return "invalid";
	case KG_ERR_IO: return "io";
	case KG_ERR_NO_SPACE: return "no-space";
	case KG_ERR_NOMEM: return "nomem";
	case KG_ERR_CORRUPT: return "corrupt";
	case KG_ERR_AUTH: return "auth";
	case KG_ERR_TIMEOUT: return "timeout";
	case KG_ERR_PEER_GONE: return "peer-gone";
	case KG_ERR_REFUSED: return "refused";
	case KG_ERR_GUEST: return "guest";
	}
	return "?";
}
