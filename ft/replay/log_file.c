/* A recording file: checked whole, then read as state and log. */
#include "log_file.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/vm.h"
#include "ft/checkpoint/epoch.h"
#include "ft/checkpoint/stream.h"
#include "ft/record/rr_log.h"

static int check_log(struct rr_decoder *d, const uint8_t *p, size_t n,
		     struct rr_file_summary *s, struct kg_err *e)
{
	if (rr_decoder_load(d, p, n, e) < 0)
		return -1;
	s->raw_bytes += d->raw_len;
	struct rr_record r;
	int got;
	while ((got = rr_decoder_next(d, &r, e)) == 1) {
		s->records++;
		switch (r.kind) {
		case RR_EXIT: s->exits++; break;
		case RR_DIGEST: s->digests++; break;
		case RR_WRITE:
			s->writes++;
			s->write_bytes += r.u.write.len;
			break;
		case RR_IRQ: s->irqs++; break;
		case RR_TIME: s->times++; break;
		}
	}
	return got;
}

int rr_file_check(const char *path, struct rr_file_summary *s,
		  struct kg_err *e)
{
	*s = (struct rr_file_summary){ 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kg_errno(e, "%s", path);
	struct kg_stream_reader r;
	struct kg_stream_header h;
	struct rr_decoder d;
	rr_decoder_init(&d);
	kg_reader_init(&r, fd, NULL);
	int rc = kg_reader_header(&r, &h, e);
	bool config = false, state = false;
	struct kg_section sec;
	while (rc == 0 && (rc = kg_reader_next(&r, &sec, e)) == 1) {
		char where[128];
		kg_section_where(where, sizeof(where), &sec);
		if (sec.kind == KG_SEC_VM_CONFIG)
			config = true;
		if (sec.kind == KG_SEC_EPOCH_END)
			state = true;
		if (sec.kind != KG_SEC_EXEC_LOG) {
			rc = kg_section_finish(&r, e) < 0 ? -1 : 0;
			continue;
		}
		if (!state) {
			rc = kg_errf(e, "%s: the log starts before the initial "
				     "state is complete", where);
			break;
		}
		if (sec.version != RR_LOG_VERSION) {
			rc = kg_errf(e, "%s: log version %u (this kagami reads "
				     "%u)", where, sec.version, RR_LOG_VERSION);
			break;
		}
		uint8_t *p = kg_section_read_all(&r, &sec, e);
		if (!p) {
			rc = -1;
			break;
		}
		s->sections++;
		s->log_bytes += sec.length;
		rc = check_log(&d, p, sec.length, s, e);
		kg_section_free(&r, p, sec.length);
		if (rc < 0)
			kg_err_prefix(e, "%s", where);
	}
	if (rc == 0 && (!config || !state))
		rc = kg_errf(e, "no %s: not a kagami recording",
			     config ? "initial state" : "configuration");
	if (rc == 0)
		rc = kg_reader_expect_eof(&r, e);
	s->bytes = r.offset;
	rr_decoder_free(&d);
	close(fd);
	if (rc < 0)
		return kg_err_prefix(e, "recording %s", path);
	return 0;
}

struct rr_file {
	int fd;
	struct epoch_receiver *recv;
	struct rr_source src;
};

static int file_next(void *ctx, uint8_t **payload, size_t *len, char *where,
		     size_t where_size, struct kg_err *e)
{
	struct rr_file *f = ctx;
	struct kg_stream_reader *r = epoch_receiver_reader(f->recv);
	struct kg_section s;
	int got = kg_reader_next(r, &s, e);
	if (got <= 0)
		return got;
	kg_section_where(where, where_size, &s);
	if (s.kind != KG_SEC_EXEC_LOG)
		return kg_errf(e, "%s: not an execution log section", where);
	uint8_t *p = kg_section_read_all(r, &s, e);
	if (!p)
		return -1;
	*payload = p;
	*len = s.length;
	return 1;
}

struct rr_file *rr_file_open(const char *path, struct vm_state_config *c,
			     struct kg_err *e)
{
	struct rr_file *f = calloc(1, sizeof(*f));
	if (!f) {
		kg_errf(e, "out of memory");
		return NULL;
	}
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0) {
		kg_errno(e, "%s", path);
		free(f);
		return NULL;
	}
	f->recv = epoch_receiver_new(f->fd, c, e);
	if (!f->recv) {
		kg_err_prefix(e, "recording %s", path);
		rr_file_close(f);
		return NULL;
	}
	f->src = (struct rr_source){ .next = file_next, .ctx = f };
	return f;
}

int rr_file_load_state(struct rr_file *f, struct vm *vm, struct kg_err *e)
{
	epoch_receiver_attach(f->recv, vm);
	struct epoch_stats st;
	while (!epoch_receiver_committed(f->recv)) {
		int r = epoch_receive(f->recv, &st, e);
		if (r < 0)
			return -1;
		if (r == 0)
			return kg_errf(e, "the recording ends before its "
				       "initial state is complete");
	}
	return 0;
}

const struct rr_source *rr_file_source(struct rr_file *f)
{
	return &f->src;
}

void rr_file_close(struct rr_file *f)
{
	if (!f)
		return;
	epoch_receiver_free(f->recv);
	if (f->fd >= 0)
		close(f->fd);
	free(f);
}
