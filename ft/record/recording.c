/* A recording file: initial state, then the log, then the end marker. */
#include "recording.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/vm.h"
#include "ft/checkpoint/epoch.h"
#include "ft/checkpoint/stream.h"
#include "rr_log.h"

struct recording {
	char path[4096], tmp[4200];
	int fd;
	bool done;
	struct epoch_sender *sender;
	struct recorder *rec;
	struct rr_sink sink;
};

static int put_section(void *ctx, const uint8_t *payload, size_t len,
		       uint64_t exits, struct kg_err *e)
{
	struct recording *r = ctx;
	(void)exits;
	return kg_writer_section(epoch_sender_writer(r->sender),
				 KG_SEC_EXEC_LOG, 0, RR_LOG_VERSION, payload,
				 len, e);
}

struct recording *recording_start(struct vm *vm, const char *path,
				  unsigned digest_ms, struct kg_err *e)
{
	struct recording *r = calloc(1, sizeof(*r));
	if (!r) {
		kg_errf(e, "out of memory");
		return NULL;
	}
	r->fd = -1;
	snprintf(r->path, sizeof(r->path), "%s", path);
	snprintf(r->tmp, sizeof(r->tmp), "%s.tmp", path);
	r->fd = open(r->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (r->fd < 0) {
		kg_errno(e, "%s", r->tmp);
		free(r);
		return NULL;
	}
	/* The initial state as a migration sends it: every written page
	 * read in place, then the paused state (the VM has not run). */
	struct epoch_stats st;
	r->sender = epoch_sender_new(vm, r->fd, e);
	if (!r->sender ||
	    epoch_send_live(r->sender, true, NULL, NULL, &st, e) < 0)
		goto fail;
	vm_pause(vm); /* no vCPU runs yet: this only marks it paused */
	int rc = epoch_send_final(r->sender, &st, e);
	vm_resume(vm);
	if (rc < 0)
		goto fail;
	r->sink = (struct rr_sink){ .put = put_section, .ctx = r };
	struct recorder_opts o = {
		.sink = &r->sink,
		.digest_ns = (uint64_t)digest_ms * 1000000ull,
	};
	r->rec = recorder_new(vm, &o, e);
	if (!r->rec)
		goto fail;
	return r;
fail:
	kg_err_prefix(e, "recording %s", path);
	recording_free(r);
	return NULL;
}

int recording_finish(struct recording *r, struct recorder_stats *st,
		     uint64_t *file_bytes, struct kg_err *e)
{
	int rc = recorder_flush(r->rec, e);
	recorder_stats(r->rec, st);
	if (rc == 0 && recorder_error(r->rec))
		rc = kg_errf(e, "%s", recorder_error(r->rec));
	if (rc == 0)
		rc = epoch_sender_finish(r->sender, e);
	if (rc == 0 && fsync(r->fd) < 0)
		rc = kg_errno(e, "fsync %s", r->tmp);
	struct stat sb;
	if (rc == 0 && fstat(r->fd, &sb) == 0)
		*file_bytes = (uint64_t)sb.st_size;
	if (rc == 0 && rename(r->tmp, r->path) < 0)
		rc = kg_errno(e, "rename %s to %s", r->tmp, r->path);
	if (rc == 0)
		r->done = true;
	else
		kg_err_prefix(e, "recording %s", r->path);
	return rc;
}

void recording_free(struct recording *r)
{
	if (!r)
		return;
	recorder_free(r->rec);
	epoch_sender_free(r->sender);
	if (r->fd >= 0)
		close(r->fd);
	if (!r->done)
		unlink(r->tmp);
	free(r);
}
