/* The control socket's migrate job: kagami ctl SOCK migrate ADDR. The
 * request's arguments become migrate_opts; ft/pipeline/migrate.c does
 * the migration. */
#include <stdio.h>
#include <string.h>

#include "control.h"
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

/* The reply: what the migration took. */
static void reply_result(cJSON *rep, const struct migrate_result *res,
			 bool storage)
{
	cJSON_AddStringToObject(rep, "destination", res->dest);
	cJSON_AddNumberToObject(rep, "total_ms", res->total_ms);
	cJSON_AddNumberToObject(rep, "downtime_ms", res->downtime_ms);
	cJSON *parts = cJSON_AddObjectToObject(rep, "downtime_parts_ms");
	cJSON_AddNumberToObject(parts, "pause", res->pause_ms);
	cJSON_AddNumberToObject(parts, "last_epoch", res->copy_ms);
	cJSON_AddNumberToObject(parts, "commit", res->commit_ms);
	cJSON_AddNumberToObject(parts, "resume", res->resume_ms);
	cJSON_AddNumberToObject(rep, "bytes", (double)res->bytes);
	cJSON_AddNumberToObject(rep, "rounds", res->rounds);
	cJSON_AddNumberToObject(rep, "final_pages", (double)res->final_pages);
	cJSON_AddNumberToObject(rep, "throttle_pct", res->throttle_pct);
	cJSON_AddBoolToObject(rep, "confirmed_by_query", res->by_query);
	cJSON_AddBoolToObject(rep, "with_storage", storage);
}

/* The request's options other than the destination and the disk. */
struct migrate_args {
	struct migrate_opts o;
	struct kg_tp_key key;
	struct kg_tp_fault fault;
	struct kg_faults faults;
};

static int parse_args(struct control_call *call, struct migrate_args *a,
		      struct kg_err *e)
{
	double limit = 50, mbps = 0;
	if (control_num(call, "downtime_limit", 0, 60000, &limit, e) < 0 ||
	    control_num(call, "bandwidth", 0, 1e6, &mbps, e) < 0)
		return -1;
	if (limit < 1)
		return kg_errf(e, "migrate: --downtime-limit must be at least "
			       "1 ms");
	a->o.downtime_limit_ms = (unsigned)limit;
	a->o.bandwidth = (uint64_t)(mbps * 1e6);
	const char *keyfile = control_str(call, "key");
	/* An unauthenticated link takes anything the network sends as the
	 * VM's state: only when told so (as run's --insecure). */
	if (!keyfile && !control_flag(call, "insecure"))
		return kg_errf(e, "migrate: the link is unauthenticated "
			       "without --key FILE; pass --insecure to "
			       "migrate anyway");
	if (keyfile) {
		if (kg_tp_key_load(keyfile, &a->key, e) < 0)
			return kg_err_prefix(e, "migrate");
		a->o.key = &a->key;
	}
	/* Tests only: transport faults and phase cuts (not in --help). */
	const char *fs = control_str(call, "fault");
	if (fs) {
		if (kg_tp_fault_parse(fs, &a->fault, e) < 0)
			return kg_err_prefix(e, "migrate: --fault");
		a->o.fault = &a->fault;
	}
	/* "inject": PHASE arms the migrate.PHASE fault point. */
	const char *inject = control_str(call, "inject");
	if (inject) {
		char spec[64];
		snprintf(spec, sizeof(spec), "migrate.%.40s=fail", inject);
		if (kg_faults_parse(spec, &a->faults, e) < 0)
			return kg_err_prefix(e, "migrate: --inject");
		a->o.faults = &a->faults;
	}
	return 0;
}

int ctl_migrate(struct control_call *call, struct kg_err *e)
{
	struct vm *vm = call->vm;
	const char *addr = control_pos(call, 0);
	if (!addr)
		addr = control_str(call, "to");
	if (!addr)
		return kg_errf(e, "migrate needs a destination: migrate "
			       "tcp:HOST:PORT (where 'kagami receive "
			       "--listen' waits)");
	struct kg_tp_addr pa;
	if (kg_tp_addr_parse(addr, &pa, e) < 0)
		return kg_err_prefix(e, "migrate");
	struct migrate_args a = { .o = { .addr = addr } };
	if (parse_args(call, &a, e) < 0)
		return -1;
	struct disk_sync ds;
	bool storage = control_flag(call, "with_storage");
	if (storage) {
		if (!vm->cfg.ndisks)
			return kg_errf(e, "migrate --with-storage: this VM has "
				       "no disk");
		if (disk_sync_init(&ds, vm, e) < 0)
			return kg_err_prefix(e, "migrate --with-storage");
		a.o.disk = &disk_sync_ops;
		a.o.disk_ctx = &ds;
	}
	struct migrate_result res;
	int r = migrate_run(vm, &a.o, on_progress, call, &res, e);
	if (storage)
		disk_sync_fini(&ds);
	if (r < 0)
		return kg_err_prefix(e, "migrate to %s failed (the guest %s)",
				     addr, res.in_doubt
					     ? "is PAUSED here" : "keeps "
					     "running here");
	reply_result(call->reply, &res, storage);
	vm_request_stop(vm, VM_STOP_REQUEST, 0,
			"migrated to %s in %.0f ms (downtime %.2f ms): the "
			"guest runs there now", addr, res.total_ms,
			res.downtime_ms);
	return 0;
}
