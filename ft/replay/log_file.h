/*
 * Reading a recording file (ft/record/recording.h) for replay: a check of
 * the whole file before anything runs (every checksum, every record, the
 * end marker — a corrupt or cut recording is refused, naming the section
 * and record with their offsets), the initial state, and the log as an
 * rr_source.
 */
#ifndef KG_LOG_FILE_H
#define KG_LOG_FILE_H

#include <stdint.h>

#include "base/err.h"
#include "ft/checkpoint/vm_state.h"
#include "replayer.h"

struct rr_file_summary {
	uint64_t bytes, sections, records, exits;
	uint64_t digests, writes, write_bytes, irqs, times;
	uint64_t log_bytes, raw_bytes; /* log sections: on disk, decoded */
};

int rr_file_check(const char *path, struct rr_file_summary *s,
		  struct kg_err *e);

struct rr_file;
/* Opens the recording; *c says which VM to build (no image). */
struct rr_file *rr_file_open(const char *path, struct vm_state_config *c,
			     struct kg_err *e);
/* Applies the initial state to vm (built from *c, not run). */
int rr_file_load_state(struct rr_file *f, struct vm *vm, struct kg_err *e);
/* The log that follows, for replayer_opts.src. */
const struct rr_source *rr_file_source(struct rr_file *f);
void rr_file_close(struct rr_file *f);

#endif
