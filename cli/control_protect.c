/* The control socket's replication commands: protection (the state of
 * ft/pipeline/protect.c's replication) and protect (start it). */
#include <stdio.h>
#include <stddef.h>
#include <string.h>

#include "control.h"
#include "serve.h"
#include "vmm/vm.h"

int ctl_protection(struct control_call *call, struct kg_err *e)
{
	(void)e;
	struct serve_ctx *sc = call->ctx;
	cJSON *r = call->reply;
	pthread_mutex_lock(&sc->lock);
	if (!sc->prot) {
		cJSON_AddStringToObject(r, "state", "unprotected");
		cJSON_AddStringToObject(r, "why", "no replication configured "
					"(run --replicate, or ctl protect)");
		pthread_mutex_unlock(&sc->lock);
		return 0;
	}
	struct protect_status st;
	protect_get_status(sc->prot, &st);
	cJSON_AddStringToObject(r, "mode", protect_mode_name(sc->popts.mode));
	cJSON_AddStringToObject(r, "peer", sc->popts.peer);
	pthread_mutex_unlock(&sc->lock);
	cJSON_AddStringToObject(r, "state", st.state);
	cJSON_AddBoolToObject(r, "protected", st.protected_ && st.running);
	if (st.why[0])
		cJSON_AddStringToObject(r, "why", st.why);
	cJSON_AddNumberToObject(r, "epochs", (double)st.epochs);
	cJSON_AddNumberToObject(r, "acked", (double)st.acked);
	cJSON_AddNumberToObject(r, "pause_p50_us", st.pause_p50_us);
	cJSON_AddNumberToObject(r, "pause_p99_us", st.pause_p99_us);
	cJSON_AddNumberToObject(r, "ack_p50_us", st.ack_p50_us);
	cJSON_AddNumberToObject(r, "ack_p99_us", st.ack_p99_us);
	cJSON_AddNumberToObject(r, "bytes_per_epoch", st.bytes_per_epoch);
	cJSON_AddNumberToObject(r, "full_copy_ram_bytes",
				(double)st.full_copy_ram_bytes);
	cJSON_AddNumberToObject(r, "assisted_copy_ram_bytes",
				(double)st.assisted_copy_ram_bytes);
	cJSON_AddNumberToObject(r, "hash_resyncs", (double)st.hash_resyncs);
	cJSON_AddNumberToObject(r, "resync_hash_bytes",
				(double)st.resync_hash_bytes);
	cJSON_AddNumberToObject(r, "resync_pages_needed",
				(double)st.resync_pages_needed);
	cJSON_AddNumberToObject(r, "resync_data_pages",
				(double)st.resync_data_pages);
	cJSON_AddNumberToObject(r, "output_hold_p50_us", st.hold_p50_us);
	cJSON_AddNumberToObject(r, "output_hold_p99_us", st.hold_p99_us);
	cJSON_AddNumberToObject(r, "links_lost", (double)st.links_lost);
	return 0;
}

/* --mode: 0, or -1 with e set. */
static int parse_mode(const char *mode, enum protect_mode *out,
		      struct kg_err *e)
{
	if (!strcmp(mode, "ft"))
		*out = PROTECT_FT;
	else if (!strcmp(mode, "ha"))
		*out = PROTECT_HA;
	else if (!strcmp(mode, "lockstep"))
		*out = PROTECT_LOCKSTEP;
	else
		return kg_errf(e, "protect --mode '%s': ft, ha or lockstep",
			       mode);
	return 0;
}

/* Replaces sc's protection (stopped, or none) by one to o->peer. Under
 * sc->lock. */
static int protect_restart(struct serve_ctx *sc, struct control_call *call,
			   const struct protect_opts *o, struct kg_err *e)
{
	protect_stop(sc->prot);
	sc->prot = protect_start(call->vm, o, e);
	if (!sc->prot)
		return -1;
	sc->popts = *o;
	sc->have_popts = true;
	cJSON_AddStringToObject(call->reply, "peer", o->peer);
	cJSON_AddStringToObject(call->reply, "mode", protect_mode_name(o->mode));
	return 0;
}

/* --failover-timeout, --epoch-ms, --interval (MS) into o, when given:
 * a primary made by a takeover has the defaults (100, 10, 1000), which
 * a slow link may need to lengthen. 0, or -1 with e set. */
static int protect_timing(struct control_call *call, struct protect_opts *o,
			  struct kg_err *e)
{
	static const struct {
		const char *name;
		size_t off;
	} t[] = {
		{ "failover_timeout", offsetof(struct protect_opts, failover_ms) },
		{ "epoch_ms", offsetof(struct protect_opts, epoch_ms) },
		{ "interval", offsetof(struct protect_opts, interval_ms) },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		double v = -1;
		if (control_num(call, t[i].name, 1, 600000, &v, e) < 0)
			return -1;
		if (v >= 0)
			*(unsigned *)((char *)o + t[i].off) = (unsigned)v;
	}
	return 0;
}

int ctl_protect(struct control_call *call, struct kg_err *e)
{
	struct serve_ctx *sc = call->ctx;
	const char *peer = control_str(call, "peer");
	const char *mode = control_str(call, "mode");
	const char *key = control_str(call, "key");
	if (!peer)
		return kg_errf(e, "protect needs --peer tcp:HOST:PORT (where "
			       "'kagami secondary --listen' waits)");
	struct kg_tp_addr a;
	if (kg_tp_addr_parse(peer, &a, e) < 0)
		return kg_err_prefix(e, "protect --peer");
	pthread_mutex_lock(&sc->lock);
	struct protect_opts o = sc->popts;
	if (!sc->have_popts)
		o = (struct protect_opts){ .mode = PROTECT_FT };
	int rc = -1;
	if (sc->prot) {
		/* A protection still trying to reach its secondary (dead,
		 * or never there) gives way: its log line sends the user
		 * here for another secondary. One that protects stays. */
		struct protect_status st;
		protect_get_status(sc->prot, &st);
		if (st.running && st.protected_) {
			kg_errf(e, "protect: already replicating to %s (%s)",
				sc->popts.peer, st.state);
			goto out;
		}
	}
	if (mode && parse_mode(mode, &o.mode, e) < 0)
		goto out;
	if (protect_timing(call, &o, e) < 0)
		goto out;
	if (!key && !o.have_key && !control_flag(call, "insecure")) {
		kg_errf(e, "protect: the link is unauthenticated without "
			"--key FILE; pass --insecure to protect anyway");
		goto out;
	}
	if (key) {
		if (kg_tp_key_load(key, &o.key, e) < 0) {
			kg_err_prefix(e, "protect --key");
			goto out;
		}
		o.have_key = true;
	}
	snprintf(o.peer, sizeof(o.peer), "%s", peer);
	rc = protect_restart(sc, call, &o, e);
out:
	pthread_mutex_unlock(&sc->lock);
	return rc;
}
