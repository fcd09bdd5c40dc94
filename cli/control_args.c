/* Reading a control request's arguments: see control.h. */
#include "control.h"

static const char *cmd_name(const struct control_call *call)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(call->req, "cmd");
	return cJSON_IsString(c) ? c->valuestring : "?";
}

const char *control_str(const struct control_call *call, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(call->req, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int control_npos(const struct control_call *call)
{
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(call->req, "args");
	return cJSON_IsArray(args) ? cJSON_GetArraySize(args) : 0;
}

const char *control_pos(const struct control_call *call, int i)
{
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(call->req, "args");
	const cJSON *v = cJSON_IsArray(args) ? cJSON_GetArrayItem(args, i)
					     : NULL;
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool control_flag(const struct control_call *call, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(call->req, name);
	return v && !cJSON_IsFalse(v);
}

int control_num(const struct control_call *call, const char *name,
		double min, double max, double *out, struct kg_err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(call->req, name);
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= min) ||
	    !(v->valuedouble <= max))
		return kg_errf(e, "%s: --%s: expected a number from %g to %g",
			       cmd_name(call), name, min, max);
	*out = v->valuedouble;
	return 0;
}
