/* Command-line lookup: space-separated words, "key=value" or "flag". */
#include "sdk.h"

/* Returns the start of the value of `key` ("" for a bare flag), or NULL. */
static const char *arg_find(const char *key, size_t *vlen)
{
	size_t klen = strlen(key);
	const char *p = sdk_cmdline();
	while (*p) {
		while (*p == ' ')
			p++;
		const char *w = p;
		while (*p && *p != ' ')
			p++;
		size_t wlen = (size_t)(p - w);
		if (wlen >= klen && !strncmp(w, key, klen) &&
		    (wlen == klen || w[klen] == '=')) {
			const char *v = wlen == klen ? w + klen : w + klen + 1;
			*vlen = (size_t)(p - v);
			return v;
		}
	}
	return NULL;
}

bool sdk_arg_present(const char *flag)
{
	size_t n;
	return arg_find(flag, &n) != NULL;
}

bool sdk_arg_str(const char *key, char *buf, size_t size)
{
	size_t n;
	const char *v = arg_find(key, &n);
	if (!v || !size)
		return false;
	if (n >= size)
		n = size - 1;
	memcpy(buf, v, n);
	buf[n] = 0;
	return true;
}

static __attribute__((noreturn)) void arg_bad(const char *key, const char *v,
					      size_t n)
{
	char val[64];
	if (n >= sizeof(val))
		n = sizeof(val) - 1;
	memcpy(val, v, n);
	val[n] = 0;
	sdk_printf("bad command-line value %s=%s: expected a number\n", key,
		   val);
	sdk_exit(2);
}

uint64_t sdk_arg_u64(const char *key, uint64_t def)
{
	size_t n;
	const char *v = arg_find(key, &n);
	if (!v)
		return def;
	size_t i = 0;
	unsigned base = 10;
	if (n > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
		base = 16;
		i = 2;
	}
	if (i == n)
		arg_bad(key, v, n);
	uint64_t r = 0;
	for (; i < n; i++) {
		char c = v[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			break;
		if (r > (UINT64_MAX - d) / base)
			arg_bad(key, v, n);
		r = r * base + d;
	}
	if (i < n) {
		unsigned shift = 0;
		switch (v[i]) {
		case 'K': case 'k': shift = 10; break;
		case 'M': case 'm': shift = 20; break;
		case 'G': case 'g': shift = 30; break;
		default: arg_bad(key, v, n);
		}
		if (i + 1 != n || r > (UINT64_MAX >> shift))
			arg_bad(key, v, n);
		r <<= shift;
	}
	return r;
}
