/*
 * Snapshots: the whole VM in one stream file, and restore from it.
 *
 * Save runs while the guest runs: each RAM region is one section whose
 * payload sits in place in the file (page aligned); it is written whole
 * with KVM's dirty log on, then, still running, the pages dirtied meanwhile
 * are rewritten in place, pass after pass while that set shrinks. Only then
 * are the vCPUs paused and the devices quiesced, for the last dirty pages
 * (the guest's and the devices') and the state that must be consistent
 * (vCPUs, in-kernel irqchip/PIT/clock, device tables). After the guest
 * resumes, the RAM sections' checksums are computed from the file. The
 * file appears under its name only once complete (written to a temporary
 * name, fsync'd, renamed).
 *
 * With the guest resumed, the RAM sections' checksums are computed from
 * the file, and from the same bytes a hash of every page (ram-hashes
 * sections: snapshot_ram.h).
 *
 * Restore builds a VM from the snapshot's config section and loads RAM
 * into the VM's own memfd after the guest has started: a page comes from
 * the file when first touched (or from a background load, which reads
 * the rest), and only once it matches its hash — so the time to the first
 * guest instruction does not grow with RAM, and a file changed or cut
 * meanwhile stops the VM as a damaged snapshot, never reaches the guest.
 * Once every page is in, the file is no longer read. A snapshot without
 * page hashes (older kagami) is copied in and checked before the guest
 * starts. Every other section is verified before it is applied, and every
 * guest-derived value is validated by the state tables.
 */
#ifndef KG_SNAPSHOT_H
#define KG_SNAPSHOT_H

#include <stdint.h>

#include "base/err.h"

struct vm;
struct vm_config;

struct snapshot_stats {
	uint64_t total_us;      /* whole save */
	uint64_t pause_us;      /* vCPUs stopped */
	uint64_t bytes;         /* file size */
	uint64_t second_pass_pages; /* written while paused */
};

int snapshot_save(struct vm *vm, const char *path, struct snapshot_stats *st,
		  struct kg_err *e);

struct snapshot_reader;
/* Opens a snapshot and reads its config into cfg's mem_size, ncpus and
 * deterministic; checks that cfg's disks and networks match the
 * snapshot's devices. */
struct snapshot_reader *snapshot_open(const char *path, struct vm_config *cfg,
				      struct kg_err *e);
/* Applies the rest to a VM created from cfg without an image; RAM goes
 * on loading while the VM runs (a failure then stops it). */
int snapshot_load(struct snapshot_reader *sr, struct vm *vm, struct kg_err *e);
/* tests: the background load of RAM starts ms late (before load). */
void snapshot_test_prefetch_delay(struct snapshot_reader *sr, unsigned ms);
/* Closes the file; a RAM load still running belongs to the VM (it ends
 * with vm_destroy). */
void snapshot_close(struct snapshot_reader *sr);

#endif
