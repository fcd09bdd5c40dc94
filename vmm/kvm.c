#include "kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

int kvm_ioctl_named(int fd, unsigned long req, void *arg, const char *name,
		    struct kg_err *e)
{
	int r;
	do {
		r = ioctl(fd, req, arg);
	} while (r < 0 && (errno == EINTR || errno == EAGAIN) &&
		 req != KVM_RUN);
	if (r < 0)
		return kg_errno(e, "%s", name);
	return r;
}

static const struct {
	int cap;
	const char *name;
} required_caps[] = {
	{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
	{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
	{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
	{ KVM_CAP_PIT2, "KVM_CAP_PIT2" },
};

int kvm_open(struct kg_err *e)
{
	const char *path = getenv("KAGAMI_KVM_DEV");
	if (!path || !*path)
		path = "/dev/kvm";
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return kg_errf(e, "%s: not found: KVM is not available "
				       "on this host (load kvm-intel/kvm-amd or "
				       "enable virtualization)", path);
		if (errno == EACCES || errno == EPERM)
			return kg_errf(e, "%s: permission denied: add yourself "
				       "to the 'kvm' group or run as root", path);
		return kg_errno(e, "open %s", path);
	}
	int v = kvm_ioctl(fd, KVM_GET_API_VERSION, NULL, e);
	if (v < 0)
		goto fail;
	if (v != KVM_API_VERSION) {
		kg_errf(e, "%s: KVM API version %d, expected %d", path, v,
			KVM_API_VERSION);
		goto fail;
	}
	for (size_t i = 0; i < sizeof(required_caps) / sizeof(*required_caps);
	     i++) {
		int ok = ioctl(fd, KVM_CHECK_EXTENSION,
			       (unsigned long)required_caps[i].cap);
		if (ok <= 0) {
			kg_errf(e, "%s: missing capability %s", path,
				required_caps[i].name);
			goto fail;
		}
	}
	return fd;
fail:
	close(fd);
	return -1;
}

struct kvm_cpuid2 *kvm_supported_cpuid(int kvm_fd, struct kg_err *e)
{
	for (unsigned n = 64; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c) {
			kg_errf(e, "out of memory");
			return NULL;
		}
		c->nent = n;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		int err = errno;
		free(c);
		if (err != E2BIG) {
			errno = err;
			kg_errno(e, "KVM_GET_SUPPORTED_CPUID");
			return NULL;
		}
	}
	kg_errf(e, "KVM_GET_SUPPORTED_CPUID: too many entries");
	return NULL;
}

bool kvm_emulates_ring0(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0;
}
