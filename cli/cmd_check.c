/* kagami check: the verdict on client histories (check/checker.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "check/checker.h"
#include "cli.h"
#include "opts.h"

static void check_usage(FILE *f)
{
	fprintf(f,
"usage: kagami check [--json] HISTORY...\n"
"\n"
"Reads the histories that load clients recorded (every request's\n"
"invocation and completion; format in check/history.h) and decides, from\n"
"them alone, whether the service behaved as one copy would: every key's\n"
"operations must be linearizable (no acknowledged write lost, no read of a\n"
"value never written or already replaced), and at least one write must\n"
"have been acknowledged. It also reports the longest outage of the load\n"
"(no request completing), counted even when it lasts to the load's end.\n"
"\n"
"  --json      one JSON object instead of text\n"
"  -h, --help  show this help\n"
"\n"
"exit status: 0 the history passes; 1 it does not; 2 bad arguments or an\n"
"unreadable or malformed history (one line naming the file and line).\n");
}

/* ns as ms to 0.1 ms, as the text report prints them (drills quote them). */
static double ms_tenths(uint64_t ns)
{
	return (double)((ns + 50000) / 100000) / 10.0;
}

/* One JSON object; cJSON escapes the verdict and the problem text. */
static void print_json(const struct check_report *r)
{
	cJSON *o = cJSON_CreateObject();
	if (!o) {
		fprintf(stderr, "kagami check: out of memory\n");
		return;
	}
	cJSON_AddBoolToObject(o, "pass", r->pass);
	cJSON_AddStringToObject(o, "verdict", r->verdict);
	cJSON_AddNumberToObject(o, "ops", (double)r->ops);
	cJSON_AddNumberToObject(o, "ok", (double)r->ok);
	cJSON_AddNumberToObject(o, "failed", (double)r->failed);
	cJSON_AddNumberToObject(o, "unknown", (double)r->unknown);
	cJSON_AddNumberToObject(o, "acked_writes", (double)r->acked_writes);
	cJSON_AddNumberToObject(o, "reads", (double)r->reads);
	cJSON_AddNumberToObject(o, "keys", (double)r->keys);
	cJSON_AddNumberToObject(o, "keys_bad", (double)r->keys_bad);
	cJSON_AddNumberToObject(o, "keys_undecided", (double)r->keys_undecided);
	cJSON_AddNumberToObject(o, "outage_ms", ms_tenths(r->outage_ns));
	cJSON_AddNumberToObject(o, "outage_from_ms",
				ms_tenths(r->outage_from_ns));
	cJSON_AddBoolToObject(o, "outage_trailing", r->outage_trailing);
	cJSON_AddNumberToObject(o, "window_ms", ms_tenths(r->window_ns));
	cJSON_AddStringToObject(o, "problem", r->problem);
	char *text = cJSON_PrintUnformatted(o);
	if (text)
		printf("%s\n", text);
	else
		fprintf(stderr, "kagami check: out of memory\n");
	free(text);
	cJSON_Delete(o);
}

static void print_report(const struct check_report *r, bool json)
{
	double outage_ms = (double)r->outage_ns / 1e6;
	double from_ms = (double)r->outage_from_ns / 1e6;
	if (json) {
		print_json(r);
		return;
	}
	printf("%s: %s\n", r->pass ? "PASS" : "FAIL", r->verdict);
	printf("operations: %zu (%zu ok, %zu failed, %zu unknown); "
	       "%zu acknowledged writes, %zu reads, %zu keys\n", r->ops, r->ok,
	       r->failed, r->unknown, r->acked_writes, r->reads, r->keys);
	printf("longest outage: %.1f ms from %.1f ms into the load%s\n",
	       outage_ms, from_ms,
	       r->outage_trailing ? " (it lasted to the end)" : "");
	if (r->problem[0])
		printf("first problem: %s (%zu keys bad, %zu undecided)\n",
		       r->problem, r->keys_bad, r->keys_undecided);
}

int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false;
	struct opts p;
	opts_init(&p, "kagami check", argc, argv, opts, OPTS_IN_ORDER);
	for (int c; (c = opts_next(&p)) != OPTS_END;) {
		switch (c) {
		case 'j': json = true; break;
		case 'h': check_usage(stdout); return 0;
		default: return KG_EXIT_USAGE;
		}
	}
	if (p.optind == argc) {
		fprintf(stderr, "kagami check: no history given (try 'kagami "
			"check --help')\n");
		return KG_EXIT_USAGE;
	}
	struct history h = { 0 };
	struct kg_err e = { 0 };
	for (int i = p.optind; i < argc; i++) {
		if (history_read(&h, argv[i], &e) < 0) {
			fprintf(stderr, "kagami check: %s\n", e.msg);
			history_free(&h);
			return KG_EXIT_USAGE;
		}
	}
	struct check_report r;
	int rc = check_history(&h, 0, &r, &e);
	history_free(&h);
	if (rc < 0) {
		fprintf(stderr, "kagami check: %s\n", e.msg);
		return KG_EXIT_USAGE;
	}
	print_report(&r, json);
	return r.pass ? 0 : 1;
}
