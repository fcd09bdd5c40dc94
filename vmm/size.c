#include "size.h"

#include <ctype.h>
#include <string.h>

int size_parse(const char *s, uint64_t *out, struct kg_err *e)
{
	const char *p = s;
	uint64_t v = 0;
	if (!s || !isdigit((unsigned char)*p))
		goto bad;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return kg_errf(e, "bad size '%s': too large", s);
		v = v * 10 + d;
	}
	unsigned shift;
	switch (toupper((unsigned char)*p)) {
	case '\0': shift = 20; break;
	case 'B': shift = 0; break;
	case 'K': shift = 10; break;
	case 'M': shift = 20; break;
	case 'G': shift = 30; break;
	case 'T': shift = 40; break;
	default: goto bad;
	}
	if (*p) {
		p++;
		/* accept K, KB, KiB (all binary) */
		if (shift && (*p == 'i' || *p == 'I'))
			p++;
		if (shift && (*p == 'b' || *p == 'B'))
			p++;
		if (*p)
			goto bad;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return kg_errf(e, "bad size '%s': too large", s);
	*out = v << shift;
	return 0;
bad:
	return kg_errf(e, "bad size '%s': expected a number with an optional "
		       "B, K, M, G or T suffix (default M)", s ? s : "");
}
