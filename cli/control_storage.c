/* The control socket's storage-migrate command (a job: it reports
 * progress events while the guest runs, then the result); the copy is
 * ft/storage/storage_migrate.c's. */
#include "control.h"
#include "ft/storage/storage_migrate.h"
#include "vmm/vm.h"

/* x rounded to 1/scale, for readable JSON (no libm for this). */
static double rnd(double x, double scale)
{
	return (double)(long long)(x * scale + 0.5) / scale;
}

static void progress(void *arg, const struct storage_migrate_progress *p)
{
	cJSON *ev = cJSON_CreateObject();
	cJSON_AddStringToObject(ev, "phase", "storage");
	cJSON_AddNumberToObject(ev, "round", p->round);
	cJSON_AddNumberToObject(ev, "percent", (double)(long long)(p->percent * 10) / 10);
	cJSON_AddNumberToObject(ev, "mbps", rnd(p->mbps, 1));
	cJSON_AddNumberToObject(ev, "dirty_pages", (double)p->dirty_blocks);
	cJSON_AddNumberToObject(ev, "expected_downtime_ms",
				rnd(p->expected_downtime_ms, 10));
	cJSON_AddNumberToObject(ev, "bytes", (double)p->bytes);
	control_event(arg, "progress", ev);
}

int ctl_storage_migrate(struct control_call *call, struct kg_err *e)
{
	const cJSON *disk = cJSON_GetObjectItemCaseSensitive(call->req, "disk");
	const char *path = control_str(call, "path");
	if (!path)
		path = control_pos(call, 0);
	if (!path || !*path || control_npos(call) > 1)
		return kg_errf(e, "storage-migrate needs one target: "
			       "storage-migrate NEWPATH [--disk N]");
	double d = 0;
	if (disk) {
		d = cJSON_IsNumber(disk) ? disk->valuedouble : -1;
		if (d < 0 || d != (double)(long long)d || d > VM_MAX_DISKS)
			return kg_errf(e, "storage-migrate: --disk wants a disk "
				       "number (0 is the first --disk)");
	}
	struct storage_migrate_opts o = { .progress = progress, .arg = call };
	struct storage_migrate_stats st;
	if (storage_migrate(call->vm, (unsigned)d, path, &o, &st, e) < 0)
		return -1;
	cJSON *reply = call->reply;
	cJSON_AddStringToObject(reply, "path", path);
	cJSON_AddNumberToObject(reply, "disk", d);
	cJSON_AddNumberToObject(reply, "total_ms",
				rnd((double)st.total_us / 1e3, 10));
	cJSON_AddNumberToObject(reply, "pause_ms",
				rnd((double)st.pause_us / 1e3, 100));
	cJSON_AddNumberToObject(reply, "bytes", (double)st.bytes);
	cJSON_AddNumberToObject(reply, "rounds", st.rounds);
	cJSON_AddNumberToObject(reply, "final_blocks", (double)st.final_blocks);
	cJSON_AddBoolToObject(reply, "vcpus_paused", 0);
	return 0;
}
