/*
 * Checked KVM ioctls. kvm_ioctl() returns the ioctl's result, or -1 with
 * the error naming the ioctl ("KVM_SET_SREGS: Invalid argument"). EINTR
 * and EAGAIN are retried except for KVM_RUN, whose EINTR is the kick.
 */
#ifndef KG_KVM_H
#define KG_KVM_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include "base/err.h"

int kvm_ioctl_named(int fd, unsigned long req, void *arg, const char *name,
		    struct kg_err *e);
#define kvm_ioctl(fd, req, arg, e) kvm_ioctl_named(fd, req, arg, #req, e)

/* Opens /dev/kvm (or $KAGAMI_KVM_DEV) and checks the API version and the
 * capabilities kagami needs. Errors distinguish "no /dev/kvm" from "no
 * permission". Returns the fd or -1. */
int kvm_open(struct kg_err *e);

/* Whether this host's KVM is the PVM backend, which runs guest ring 3
 * natively but emulates guest ring 0 (about 1000x slower). */
bool kvm_emulates_ring0(void);

/* KVM_GET_SUPPORTED_CPUID into a malloc'd struct; NULL on error. */
struct kvm_cpuid2 *kvm_supported_cpuid(int kvm_fd, struct kg_err *e);

#endif
