/*
 * Transport addresses: "tcp:HOST:PORT", "unix:PATH", "rdma:HOST:PORT".
 * The scheme is mandatory so that an address means one thing everywhere
 * (a bare "host:port" in a config file would silently pick a backend).
 */
#include "transport.h"

#include <stdlib.h>
#include <string.h>

/* HOST:PORT, HOST may be [IPv6]; "what" is the whole address for errors. */
static int parse_host_port(const char *s, const char *what,
			   struct kg_tp_addr *a, struct kg_err *e)
{
	const char *colon;
	size_t hlen;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close)
			return kg_errk(e, KG_ERR_INVALID, "%s: missing ']' after the IPv6 address", what);
		if (close[1] != ':')
			return kg_errk(e, KG_ERR_INVALID, "%s: missing :PORT", what);
		hlen = (size_t)(close - s - 1);
		s++;
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return kg_errk(e, KG_ERR_INVALID, "%s: missing :PORT", what);
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen))
			return kg_errk(e, KG_ERR_INVALID, "%s: write an IPv6 address as [ADDR]:PORT", what);
	}
	if (hlen == 0)
		return kg_errk(e, KG_ERR_INVALID, "%s: missing HOST", what);
	if (hlen >= sizeof(a->host))
		return kg_errk(e, KG_ERR_INVALID, "%s: host name longer than %zu bytes", what,
			       sizeof(a->host) - 1);
	const char *port = colon + 1;
	size_t plen = strlen(port);
	if (plen == 0 || plen > 5 || strspn(port, "0123456789") != plen ||
	    strtoul(port, NULL, 10) > 65535)
		return kg_errk(e, KG_ERR_INVALID, "%s: port '%s' is not a number 0..65535", what, port);
	memcpy(a->host, s, hlen);
	a->host[hlen] = '\0';
	memcpy(a->port, port, plen + 1);
	return 0;
}

int kg_tp_addr_parse(const char *s, struct kg_tp_addr *a, struct kg_err *e)
{
	memset(a, 0, sizeof(*a));
	if (!s || !*s)
		return kg_errk(e, KG_ERR_INVALID, "empty transport address (want tcp:HOST:PORT, unix:PATH or rdma:HOST:PORT)");
	if (!strncmp(s, "tcp:", 4)) {
		a->kind = KG_TP_TCP;
		return parse_host_port(s + 4, s, a, e);
	}
	if (!strncmp(s, "rdma:", 5)) {
		a->kind = KG_TP_RDMA;
		return parse_host_port(s + 5, s, a, e);
	}
	if (!strncmp(s, "unix:", 5)) {
		a->kind = KG_TP_UNIX;
		size_t n = strlen(s + 5);
		if (n == 0)
			return kg_errk(e, KG_ERR_INVALID, "%s: missing PATH", s);
		if (n >= sizeof(a->path))
			return kg_errk(e, KG_ERR_INVALID, "%s: path longer than %zu bytes (the sun_path limit)",
				       s, sizeof(a->path) - 1);
		memcpy(a->path, s + 5, n + 1);
		return 0;
	}
	const char *colon = strchr(s, ':');
	if (colon && colon != s && (size_t)(colon - s) < 16)
		return kg_errk(e, KG_ERR_INVALID, "%s: unknown transport '%.*s' (want tcp, unix or rdma)",
			       s, (int)(colon - s), s);
	return kg_errk(e, KG_ERR_INVALID, "%s: missing transport (want tcp:HOST:PORT, unix:PATH or rdma:HOST:PORT)", s);
}
