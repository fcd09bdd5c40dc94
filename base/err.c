#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int kg_errf(struct kg_err *e, const char *fmt, ...)
{
	if (e) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	return -1;
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
