/*
 * The CPUID a VM's guest sees, carried in its streams (section "cpuid",
 * ancillary: readers before 1.4 skip it), so that a host that receives
 * the VM (restore, migration, a secondary) refuses it before the guest
 * runs there when it lacks a feature the guest may already use:
 *
 *   kagami receive: incoming migration failed: the guest's CPU at the
 *   source does not fit this host: the target lacks CPU feature avx2
 *   (CPUID 0x7 EBX bit 5)
 *
 * What is sent is vCPU 0's CPUID through kagami's policy (vmm/cpuid.h);
 * the receiver compares it with its own, through the same policy, with
 * cpuid_check_target. Streams without the section are not checked.
 */
#ifndef KG_CPUID_STATE_H
#define KG_CPUID_STATE_H

#include "stream.h"
#include "base/err.h"

struct vm;

/* Writes the "cpuid" section of vm (instance 0). */
int cpuid_state_write(struct kg_stream_writer *w, const struct vm *vm,
		      struct kg_err *e);

/* Reads section s ("cpuid") and checks it against this host for vm:
 * 0, or -1 with kind KG_ERR_INVALID naming the first missing feature
 * (KG_ERR_CORRUPT if the section is malformed). */
int cpuid_state_check(struct kg_stream_reader *r, const struct kg_section *s,
		      const struct vm *vm, struct kg_err *e);

#endif
