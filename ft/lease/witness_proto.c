/* The witness protocol's JSON (witness_proto.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
		cJSON_AddStringToObject(o, "op", r->op == WITNESS_ACQUIRE
					? "acquire" : "release") &&
		cJSON_AddStringToObject(o, "name", r->name) &&
		cJSON_AddStringToObject(o, "holder", r->holder) &&
		cJSON_AddNumberToObject(o, "gen", (double)r->gen);
	if (ok && r->op == WITNESS_ACQUIRE)
		ok = cJSON_AddNumberToObject(o, "ttl_ms", r->ttl_ms) &&
		     cJSON_AddBoolToObject(o, "holding", r->holding);
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
	bool ok = o != NULL;
	switch (r->status) {
	case WITNESS_GRANTED:
		ok = ok && cJSON_AddTrueToObject(o, "granted") &&
		     cJSON_AddNumberToObject(o, "gen", (double)r->gen) &&
		     cJSON_AddNumberToObject(o, "ttl_ms", r->ttl_ms);
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
	if (get_str(o, "op", op, sizeof(op), e) < 0 ||
	    get_str(o, "name", r->name, sizeof(r->name), e) < 0 ||
	    get_str(o, "holder", r->holder, sizeof(r->holder), e) < 0 ||
	    get_num(o, "gen", GEN_MAX, &gen, e) < 0)
		goto out;
	r->gen = (uint64_t)gen;
	if (!strcmp(op, "release")) {
		r->op = WITNESS_RELEASE;
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
	if (get_num(o, "gen", GEN_MAX, &gen, e) < 0)
		goto out;
	r->gen = (uint64_t)gen;
	if (cJSON_IsTrue(granted)) {
		if (get_num(o, "ttl_ms", 2147483647.0, &n, e) < 0)
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
