/* The witness protocol's JSON (witness_proto.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <cjson/cJSON.h>

#include "witness_proto.h"

#define GEN_MAX 9007199254740992.0 /* 2^53: exact in a double */

bool witness_name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (; *s; s++)
		if (*s <= ' ' || *s > '~' || *s == '/')
			return false;
	return true;
}

bool witness_token_ok(const char *s)
{
	size_t n = strspn(s, "0123456789abcdef");
	return n == WITNESS_TOKEN_HEX && s[n] == 0;
}

int witness_token_new(char tok[WITNESS_TOKEN_HEX + 1], struct kg_err *e)
{
	uint8_t b[WITNESS_TOKEN_HEX / 2];
	size_t got = 0;
	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kg_errno(e, "witness: getrandom");
		got += (size_t)n;
	}
	for (size_t i = 0; i < sizeof(b); i++)
		snprintf(tok + 2 * i, 3, "%02x", b[i]);
	memset(b, 0, sizeof(b));
	return 0;
}

bool witness_token_eq(const char *a, const char *b)
{
	if (!witness_token_ok(a) || !witness_token_ok(b))
		return false;
	unsigned char d = 0;
	for (size_t i = 0; i < WITNESS_TOKEN_HEX; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

static int emit(cJSON *o, char *buf, size_t cap, struct kg_err *e)
{
	if (!o)
		return kg_errf(e, "witness: out of memory");
	bool ok = cJSON_PrintPreallocated(o, buf, (int)cap, false);
	cJSON_Delete(o);
	return ok ? 0 : kg_errf(e, "witness: message exceeds %zu bytes", cap);
}

/* cJSON_Add* return NULL on failure; one check at the end suffices since
 * a NULL object makes the following adds fail too. */
int witness_req_encode(const struct witness_req *r, char *buf, size_t cap,
		       struct kg_err *e)
{
	cJSON *o = cJSON_CreateObject();
	bool ok = o &&
		cJSON_AddNumberToObject(o, "v", WITNESS_PROTO_VERSION) &&
		cJSON_AddStringToObject(o, "op", r->op == WITNESS_ACQUIRE
					? "acquire" : "release") &&
		cJSON_AddStringToObject(o, "name", r->name) &&
		cJSON_AddStringToObject(o, "holder", r->holder);
	if (ok && r->op == WITNESS_ACQUIRE)
		ok = cJSON_AddNumberToObject(o, "ttl_ms", r->ttl_ms) &&
		     cJSON_AddBoolToObject(o, "holding", r->holding);
	if (ok && r->token[0])
		ok = cJSON_AddStringToObject(o, "token", r->token) &&
		     (r->op != WITNESS_ACQUIRE ||
		      cJSON_AddNumberToObject(o, "gen", (double)r->gen));
	if (!ok) {
		cJSON_Delete(o);
		o = NULL;
	}
	return emit(o, buf, cap, e);
}

int witness_reply_encode(const struct witness_reply *r, char *buf, size_t cap,
			 struct kg_err *e)
{
	cJSON *o = cJSON_CreateObject();
	bool ok = o && cJSON_AddNumberToObject(o, "v", WITNESS_PROTO_VERSION);
	switch (r->status) {
	case WITNESS_GRANTED:
		ok = ok && cJSON_AddTrueToObject(o, "granted") &&
		     cJSON_AddNumberToObject(o, "gen", (double)r->gen) &&
		     cJSON_AddNumberToObject(o, "ttl_ms", r->ttl_ms) &&
		     cJSON_AddStringToObject(o, "token", r->token);
		break;
	case WITNESS_HELD:
		ok = ok && cJSON_AddFalseToObject(o, "granted") &&
		     cJSON_AddStringToObject(o, "holder", r->holder) &&
		     cJSON_AddNumberToObject(o, "remaining_ms",
					     (double)r->remaining_ms) &&
		     cJSON_AddNumberToObject(o, "gen", (double)r->gen);
		break;
	case WITNESS_RELEASED:
		ok = ok && cJSON_AddTrueToObject(o, "released") &&
		     cJSON_AddNumberToObject(o, "gen", (double)r->gen);
		break;
	default:
		ok = ok && cJSON_AddStringToObject(o, "error", r->error);
		break;
	}
	if (!ok) {
		cJSON_Delete(o);
		o = NULL;
	}
	return emit(o, buf, cap, e);
}

static cJSON *parse(const char *buf, size_t len, struct kg_err *e)
{
	cJSON *o = cJSON_ParseWithLength(buf, len);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		kg_errf(e, "not a JSON object");
		return NULL;
	}
	return o;
}

static int get_str(const cJSON *o, const char *k, char *out, size_t cap,
		   struct kg_err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!cJSON_IsString(v) || !witness_name_ok(v->valuestring, cap - 1))
		return kg_errf(e, "\"%s\": expected 1..%zu printable bytes "
			       "without spaces or '/'", k, cap - 1);
	memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
	return 0;
}

/* A whole number in [0, max]. */
static int get_num(const cJSON *o, const char *k, double max, double *out,
		   struct kg_err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) ||
	    v->valuedouble > max ||
	    (double)(uint64_t)v->valuedouble != v->valuedouble)
		return kg_errf(e, "\"%s\": expected a whole number 0..%.0f", k,
			       max);
	*out = v->valuedouble;
	return 0;
}

/* The sender's protocol version: -1 (e says it) unless it is ours. who:
 * the other side, for the advice. */
static int check_version(const cJSON *o, const char *who, struct kg_err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "v");
	if (!v)
		return kg_errf(e, "older protocol version 1 (no \"v\"): "
			       "this side speaks version %d; upgrade kagami "
			       "on the %s", WITNESS_PROTO_VERSION, who);
	if (!cJSON_IsNumber(v) || v->valuedouble != WITNESS_PROTO_VERSION)
		return kg_errf(e, "protocol version %.0f: this side speaks "
			       "version %d; run the same kagami on both",
			       cJSON_IsNumber(v) ? v->valuedouble : -1.0,
			       WITNESS_PROTO_VERSION);
	return 0;
}

/* Never quotes the value: it may be a secret. */
static int get_token(const cJSON *o, char *out, struct kg_err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "token");
	if (!cJSON_IsString(v) || !witness_token_ok(v->valuestring))
		return kg_errf(e, "\"token\": expected %d lower-case hex "
			       "digits", WITNESS_TOKEN_HEX);
	memcpy(out, v->valuestring, WITNESS_TOKEN_HEX + 1);
	return 0;
}

int witness_req_decode(const char *buf, size_t len, struct witness_req *r,
		       struct kg_err *e)
{
	memset(r, 0, sizeof(*r));
	cJSON *o = parse(buf, len, e);
	if (!o)
		return -1;
	int ret = -1;
	double gen, ttl;
	char op[16];
	if (check_version(o, "client", e) < 0 ||
	    get_str(o, "op", op, sizeof(op), e) < 0 ||
	    get_str(o, "name", r->name, sizeof(r->name), e) < 0 ||
	    get_str(o, "holder", r->holder, sizeof(r->holder), e) < 0)
		goto out;
	bool has_token = cJSON_GetObjectItemCaseSensitive(o, "token") != NULL;
	if (!strcmp(op, "release")) {
		r->op = WITNESS_RELEASE;
		/* Nothing else proves the holder. */
		if (get_token(o, r->token, e) < 0)
			goto out;
	} else if (!strcmp(op, "acquire")) {
		r->op = WITNESS_ACQUIRE;
		if (get_num(o, "ttl_ms", 2147483647.0, &ttl, e) < 0)
			goto out;
		if (ttl < 1) {
			kg_errf(e, "\"ttl_ms\": must be positive");
			goto out;
		}
		r->ttl_ms = (unsigned)ttl;
		const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "holding");
		if (!cJSON_IsBool(h)) {
			kg_errf(e, "\"holding\": expected true or false");
			goto out;
		}
		r->holding = cJSON_IsTrue(h);
		/* A generation means something only with the grant's token
		 * (a claim across a witness restart); alone it is ignored. */
		if (has_token) {
			if (get_token(o, r->token, e) < 0 ||
			    get_num(o, "gen", GEN_MAX, &gen, e) < 0)
				goto out;
			r->gen = (uint64_t)gen;
		}
	} else {
		kg_errf(e, "unknown op '%s'", op);
		goto out;
	}
	ret = 0;
out:
	cJSON_Delete(o);
	return ret;
}

int witness_reply_decode(const char *buf, size_t len, struct witness_reply *r,
			 struct kg_err *e)
{
	memset(r, 0, sizeof(*r));
	cJSON *o = parse(buf, len, e);
	if (!o)
		return -1;
	int ret = -1;
	double gen, n;
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "error");
	const cJSON *granted = cJSON_GetObjectItemCaseSensitive(o, "granted");
	if (cJSON_IsString(err)) {
		r->status = WITNESS_BAD;
		snprintf(r->error, sizeof(r->error), "%s", err->valuestring);
		ret = 0;
		goto out;
	}
	if (check_version(o, "witness", e) < 0 ||
	    get_num(o, "gen", GEN_MAX, &gen, e) < 0)
		goto out;
	r->gen = (uint64_t)gen;
	if (cJSON_IsTrue(granted)) {
		if (get_num(o, "ttl_ms", 2147483647.0, &n, e) < 0 ||
		    get_token(o, r->token, e) < 0)
			goto out;
		r->status = WITNESS_GRANTED;
		r->ttl_ms = (unsigned)n;
	} else if (cJSON_IsFalse(granted)) {
		if (get_str(o, "holder", r->holder, sizeof(r->holder), e) < 0 ||
		    get_num(o, "remaining_ms", 2147483647.0, &n, e) < 0)
			goto out;
		r->status = WITNESS_HELD;
		r->remaining_ms = (long long)n;
	} else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o,
								 "released"))) {
		r->status = WITNESS_RELEASED;
	} else {
		kg_errf(e, "neither \"granted\", \"released\" nor \"error\"");
		goto out;
	}
	ret = 0;
out:
	cJSON_Delete(o);
	return ret;
}
