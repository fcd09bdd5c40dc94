/* The control socket's migrate job: kagami ctl SOCK migrate ADDR. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "serve.h"
#include "ft/pipeline/disk_sync.h"
#include "ft/pipeline/migrate.h"
#include "vmm/vm.h"

static void on_progress(void *ctx, const struct migrate_progress *p)
{
	cJSON *ev = cJSON_CreateObject();
	cJSON_AddStringToObject(ev, "phase", p->phase);
	cJSON_AddNumberToObject(ev, "round", p->round);
	cJSON_AddNumberToObject(ev, "percent", p->percent);
	cJSON_AddNumberToObject(ev, "mbps", p->mbps);
	cJSON_AddNumberToObject(ev, "dirty_pages", (double)p->dirty_pages);
	cJSON_AddNumberToObject(ev, "expected_downtime_ms",
				p->expected_downtime_ms < 1e8
					? p->expected_downtime_ms : -1);
	cJSON_AddNumberToObject(ev, "throttle_pct", p->throttle_pct);
	control_event(ctx, "progress", ev);
}

static const char *str_arg(const cJSON *req, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int num_arg(const cJSON *req, const char *name, double max,
		   double *out, struct kg_err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, name);
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > max)
		return kg_errf(e, "migrate: --%s: expected a number from 0 to "
			       "%g", name, max);
	*out = v->valuedouble;
	return 0;
}

int ctl_migrate(struct control_call *call, struct kg_err *e)
{
	struct vm *vm = call->vm;
	const cJSON *req = call->req;
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(req, "args");
	const cJSON *a0 = cJSON_GetArrayItem(args, 0);
	const char *addr = cJSON_IsString(a0) ? a0->valuestring
					      : str_arg(req, "to");
	if (!addr)
		return kg_errf(e, "migrate needs a destination: migrate "
			       "tcp:HOST:PORT (where 'kagami receive "
			       "--listen' waits)");
	struct kg_tp_addr pa;
	if (kg_tp_addr_parse(addr, &pa, e) < 0)
		return kg_err_prefix(e, "migrate");
	struct migrate_opts o = { .addr = addr };
	double limit = 50, mbps = 0;
	if (num_arg(req, "downtime_limit", 60000, &limit, e) < 0 ||
	    num_arg(req, "bandwidth", 1e6, &mbps, e) < 0)
		return -1;
	if (limit < 1)
		return kg_errf(e, "migrate: --downtime-limit must be at least "
			       "1 ms");
	o.downtime_limit_ms = (unsigned)limit;
	o.bandwidth = (uint64_t)(mbps * 1e6);
	struct kg_tp_key key;
	const char *keyfile = str_arg(req, "key");
	if (keyfile) {
		if (kg_tp_key_load(keyfile, &key, e) < 0)
			return kg_err_prefix(e, "migrate");
		o.key = &key;
	}
	/* Tests only: transport faults and phase cuts (not in --help). */
	struct kg_tp_fault fault;
	const char *fs = str_arg(req, "fault");
	if (fs) {
		if (kg_tp_fault_parse(fs, &fault, e) < 0)
			return kg_err_prefix(e, "migrate: --fault");
		o.fault = &fault;
	}
	/* "inject": PHASE arms the migrate.PHASE fault point. */
	struct kg_faults faults = { 0 };
	const char *inject = str_arg(req, "inject");
	if (inject) {
		char spec[64];
		snprintf(spec, sizeof(spec), "migrate.%.40s=fail", inject);
		if (kg_faults_parse(spec, &faults, e) < 0)
			return kg_err_prefix(e, "migrate: --inject");
		o.faults = &faults;
	}
	const cJSON *ws = cJSON_GetObjectItemCaseSensitive(req, "with_storage");
	struct disk_sync ds;
	bool storage = ws && !cJSON_IsFalse(ws);
	if (storage) {
		if (!vm->cfg.ndisks)
			return kg_errf(e, "migrate --with-storage: this VM has "
				       "no disk");
		if (disk_sync_init(&ds, vm, e) < 0)
			return kg_err_prefix(e, "migrate --with-storage");
		o.disk = &disk_sync_ops;
		o.disk_ctx = &ds;
	}
	struct migrate_result res;
	int r = migrate_run(vm, &o, on_progress, call, &res, e);
	if (storage)
		disk_sync_fini(&ds);
	if (r < 0)
		return kg_err_prefix(e, "migrate to %s failed (the guest %s)",
				     addr, res.in_doubt
					     ? "is PAUSED here" : "keeps "
					     "running here");
	cJSON *rep = call->reply;
	cJSON_AddStringToObject(rep, "destination", res.dest);
	cJSON_AddNumberToObject(rep, "total_ms", res.total_ms);
	cJSON_AddNumberToObject(rep, "downtime_ms", res.downtime_ms);
	cJSON *parts = cJSON_AddObjectToObject(rep, "downtime_parts_ms");
	cJSON_AddNumberToObject(parts, "pause", res.pause_ms);
	cJSON_AddNumberToObject(parts, "last_epoch", res.copy_ms);
	cJSON_AddNumberToObject(parts, "commit", res.commit_ms);
	cJSON_AddNumberToObject(parts, "resume", res.resume_ms);
	cJSON_AddNumberToObject(rep, "bytes", (double)res.bytes);
	cJSON_AddNumberToObject(rep, "rounds", res.rounds);
	cJSON_AddNumberToObject(rep, "final_pages", (double)res.final_pages);
	cJSON_AddNumberToObject(rep, "throttle_pct", res.throttle_pct);
	cJSON_AddBoolToObject(rep, "confirmed_by_query", res.by_query);
	cJSON_AddBoolToObject(rep, "with_storage", storage);
	vm_request_stop(vm, VM_STOP_REQUEST, 0,
			"migrated to %s in %.0f ms (downtime %.2f ms): the "
			"guest runs there now", addr, res.total_ms,
			res.downtime_ms);
	return 0;
}
