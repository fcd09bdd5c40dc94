/*
 * history-check FILE [--json]: checks a history written by redis-history
 * (the format and the rules are in history.h). Prints the counts, the
 * longest outage, one line per violation and a verdict (--json: one JSON
 * object instead). Exit 0: linearizable and at least one write
 * acknowledged; 1: violations, or nothing acknowledged; 2: usage, or a
 * missing or malformed history (one line on stderr naming the line).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "history.h"

static void print_text(const char *file, const struct rh_report *r, bool pass,
		       const char *verdict)
{
	printf("history-check: %s: %zu ops, %zu acked (%zu writes), %zu failed, "
	       "%zu indeterminate; %zu keys, %zu written keys without a final read\n",
	       file, r->ops, r->acked, r->acked_writes, r->failed, r->unknown,
	       r->keys, r->final_unread);
	printf("outage: %.3f s with nothing acknowledged, from %.3f s after the start%s\n",
	       r->outage_ns / 1e9, r->outage_from_ns / 1e9,
	       r->outage_trailing ? " (it lasted to the end)" : "");
	for (size_t i = 0; i < r->nviolations; i++)
		printf("violation: %s\n", r->violations[i]);
	if (r->violations_total > r->nviolations)
		printf("(%zu more violations not listed)\n",
		       r->violations_total - r->nviolations);
	printf("%s: %s\n", pass ? "PASS" : "FAIL", verdict);
}

static int print_json(const struct rh_report *r, bool pass, const char *verdict)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *v = cJSON_CreateArray();
	if (!o || !v) {
		cJSON_Delete(o);
		cJSON_Delete(v);
		return -1;
	}
	cJSON_AddBoolToObject(o, "pass", pass);
	cJSON_AddStringToObject(o, "verdict", verdict);
	cJSON_AddNumberToObject(o, "ops", (double)r->ops);
	cJSON_AddNumberToObject(o, "acked", (double)r->acked);
	cJSON_AddNumberToObject(o, "acked_writes", (double)r->acked_writes);
	cJSON_AddNumberToObject(o, "failed", (double)r->failed);
	cJSON_AddNumberToObject(o, "indeterminate", (double)r->unknown);
	cJSON_AddNumberToObject(o, "keys", (double)r->keys);
	cJSON_AddNumberToObject(o, "final_unread", (double)r->final_unread);
	cJSON_AddNumberToObject(o, "outage_ms", (double)(r->outage_ns / 1000) / 1000.0);
	cJSON_AddNumberToObject(o, "outage_from_ms", (double)(r->outage_from_ns / 1000) / 1000.0);
	cJSON_AddBoolToObject(o, "outage_trailing", r->outage_trailing);
	cJSON_AddNumberToObject(o, "violations_total", (double)r->violations_total);
	for (size_t i = 0; i < r->nviolations; i++)
		cJSON_AddItemToArray(v, cJSON_CreateString(r->violations[i]));
	cJSON_AddItemToObject(o, "violations", v);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!s)
		return -1;
	printf("%s\n", s);
	cJSON_free(s);
	return 0;
}

int main(int argc, char **argv)
{
	const char *file = NULL;
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--help")) {
			printf("usage: history-check FILE [--json]\n");
			return 0;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "history-check: unknown option '%s'\n", argv[i]);
			return 2;
		} else if (file) {
			fprintf(stderr, "history-check: one history only ('%s')\n", argv[i]);
			return 2;
		} else {
			file = argv[i];
		}
	}
	if (!file) {
		fprintf(stderr, "usage: history-check FILE [--json]\n");
		return 2;
	}
	FILE *f = fopen(file, "r");
	if (!f) {
		fprintf(stderr, "history-check: %s: %s\n", file, strerror(errno));
		return 2;
	}
	struct rh_history h;
	struct kg_err e = { 0 };
	int rc = rh_parse(&h, f, &e);
	fclose(f);
	if (rc) {
		rh_free(&h);
		fprintf(stderr, "history-check: %s %s\n", file, e.msg);
		return 2;
	}
	struct rh_report r;
	if (rh_check(&h, &r, &e)) {
		rh_free(&h);
		rh_report_free(&r);
		fprintf(stderr, "history-check: %s: %s\n", file, e.msg);
		return 2;
	}
	char verdict[128];
	bool pass = false;
	if (r.violations_total)
		snprintf(verdict, sizeof(verdict), "not linearizable (%zu violations)",
			 r.violations_total);
	else if (!r.acked_writes)
		snprintf(verdict, sizeof(verdict), "nothing acknowledged");
	else {
		snprintf(verdict, sizeof(verdict), "linearizable");
		pass = true;
	}
	if (json) {
		if (print_json(&r, pass, verdict)) {
			fprintf(stderr, "history-check: out of memory\n");
			rc = 2;
		}
	} else {
		print_text(file, &r, pass, verdict);
	}
	rh_free(&h);
	rh_report_free(&r);
	if (rc)
		return rc;
	return pass ? 0 : 1;
}
