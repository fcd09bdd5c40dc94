/*
 * A recording file (`kagami record --log FILE`): the kagami stream with
 * the VM's configuration, its whole state at exit 0 (one epoch), the
 * execution log (rr_log.h) and the end marker. It is written to FILE.tmp
 * and renamed to FILE once complete; a recording cut short (the recorder
 * killed) stays FILE.tmp, without its end marker.
 */
#ifndef KG_RECORDING_H
#define KG_RECORDING_H

#include <stdint.h>

#include "base/err.h"
#include "recorder.h"

struct vm;
struct recording;

/* Writes the header and the initial state of vm (deterministic, built,
 * not yet run) and installs the recorder. digest_ms 0: no digests. */
struct recording *recording_start(struct vm *vm, const char *path,
				  unsigned digest_ms, struct kg_err *e);
/* After the VM stopped: the last log section, the end marker, fsync,
 * rename. Fills *st (also on failure, as far as recorded). */
int recording_finish(struct recording *rec, struct recorder_stats *st,
		     uint64_t *file_bytes, struct kg_err *e);
/* Frees; removes the temporary file unless recording_finish succeeded. */
void recording_free(struct recording *rec);

#endif
