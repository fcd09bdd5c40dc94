#include "parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

/* strto* skip leading blanks and take a sign; neither is part of a
 * number here, except a real number's '-' (it cannot wrap around). */
static bool starts_bare(const char *s, bool minus)
{
	return s && *s && !isspace((unsigned char)*s) && *s != '+' &&
	       (minus || *s != '-');
}

int kg_parse_u64(const char *s, int base, uint64_t min, uint64_t max,
		 uint64_t *out)
{
	if (!starts_bare(s, false) || (base != 10 && base != 16))
		return -1;
	int saved = errno;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, base);
	bool bad = errno || end == s || *end || v < min || v > max;
	errno = saved;
	if (bad)
		return -1;
	*out = v;
	return 0;
}

int kg_parse_double(const char *s, double min, double max, bool min_open,
		    double *out)
{
	if (!starts_bare(s, true))
		return -1;
	int saved = errno;
	char *end;
	double v = strtod(s, &end);
	errno = saved;
	/* NaN fails both comparisons; ERANGE's results are ranged here. */
	if (end == s || *end || !(v >= min) || !(v <= max) ||
	    (min_open && v == min))
		return -1;
	*out = v;
	return 0;
}
