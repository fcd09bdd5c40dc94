/*
 * The images of a VM received from another host: a migration over shared
 * storage uses the source's own images (same size, lock taken at
 * hand-over); a copy (--with-storage, a secondary's replica) writes new
 * ones, created empty at the announced sizes and removed again if the VM
 * never runs. A secondary keeps a committed replica's images aside
 * (PATH.held) while a new copy is made at PATH.
 */
#ifndef KG_REPLICA_DISKS_H
#define KG_REPLICA_DISKS_H

#include <stdbool.h>

#include "base/err.h"

struct vm_config;
struct incoming;

/* created[i]: whether disk i was created here (to remove on failure). */
int replica_disks_prepare(struct vm_config *cfg, const struct incoming *in,
			  bool created[], struct kg_err *e);
void replica_disks_remove(const struct vm_config *cfg, const bool created[]);
/* Moves the images aside (aside) or back; created[] follows. */
void replica_disks_hold(const struct vm_config *cfg, bool created[],
			bool aside);
/* Removes the images held aside. */
void replica_disks_drop_held(const struct vm_config *cfg);

#endif
