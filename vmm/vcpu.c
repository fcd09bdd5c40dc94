#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cpuid.h"
#include "kvm.h"
#include "vm.h"

/* The host's supported CPUID through kagami's policy (cpuid.h), with this
 * vCPU's place in the VM. */
static int set_cpuid(struct vcpu *v, struct kg_err *e)
{
	struct kvm_cpuid2 *c = cpuid_for_vcpu(v->vm->cpuid, v->id,
					      v->vm->ncpus, v->vm->cpuid_flags,
					      e);
	if (!c)
		return -1;
	int r = kvm_ioctl(v->fd, KVM_SET_CPUID2, c, e);
	free(c);
	return r < 0 ? -1 : 0;
}

int vcpu_create(struct vm *vm, unsigned id, struct kg_err *e)
{
	struct vcpu *v = &vm->vcpus[id];
	v->vm = vm;
	v->id = id;
	v->fd = kvm_ioctl(vm->vm_fd, KVM_CREATE_VCPU, (void *)(uintptr_t)id, e);
	if (v->fd < 0)
		return -1;
	void *run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 v->fd, 0);
	if (run == MAP_FAILED) {
		v->run = NULL;
		return kg_errno(e, "mmap kvm_run");
	}
	v->run = run;
	return set_cpuid(v, e);
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, v->vm->run_size);
	if (v->fd >= 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}

/* PVH entry state: 32-bit flat protected mode, paging off, %ebx =
 * start_info (the PVH ABI, as Xen, QEMU and Firecracker set it). */
int vcpu_set_boot_regs(struct vcpu *v, uint64_t entry, uint64_t start_info,
		       struct kg_err *e)
{
	struct kvm_sregs s;
	if (kvm_ioctl(v->fd, KVM_GET_SREGS, &s, e) < 0)
		return -1;
	struct kvm_segment code = {
		.base = 0, .limit = 0xffffffff, .selector = 0x10,
		.type = 0xb, .present = 1, .dpl = 0, .db = 1, .s = 1, .g = 1,
	};
	struct kvm_segment data = code;
	data.selector = 0x18;
	data.type = 0x3;
	s.cs = code;
	s.ds = s.es = s.fs = s.gs = s.ss = data;
	s.tr = (struct kvm_segment){ .limit = 0x67, .type = 0xb, .present = 1 };
	s.cr0 = 0x11; /* PE | ET */
	s.cr3 = s.cr4 = s.efer = 0;
	if (kvm_ioctl(v->fd, KVM_SET_SREGS, &s, e) < 0)
		return -1;
	struct kvm_regs r = { .rip = entry, .rbx = start_info, .rflags = 0x2 };
	return kvm_ioctl(v->fd, KVM_SET_REGS, &r, e) < 0 ? -1 : 0;
}

/* The Linux 64-bit boot protocol's entry state: long mode with the boot
 * loader's identity page tables, __BOOT_CS/__BOOT_DS, interrupts off,
 * %rsi = the zero page. */
int vcpu_set_boot_regs64(struct vcpu *v, uint64_t entry, uint64_t zero_page,
			 uint64_t cr3, uint64_t gdt, struct kg_err *e)
{
	struct kvm_sregs s;
	if (kvm_ioctl(v->fd, KVM_GET_SREGS, &s, e) < 0)
		return -1;
	struct kvm_segment code = {
		.base = 0, .limit = 0xffffffff, .selector = 0x10,
		.type = 0xb, .present = 1, .dpl = 0, .db = 0, .s = 1, .l = 1,
		.g = 1,
	};
	struct kvm_segment data = {
		.base = 0, .limit = 0xffffffff, .selector = 0x18,
		.type = 0x3, .present = 1, .dpl = 0, .db = 1, .s = 1, .g = 1,
	};
	s.cs = code;
	s.ds = s.es = s.fs = s.gs = s.ss = data;
	s.tr = (struct kvm_segment){ .limit = 0x67, .type = 0xb, .present = 1 };
	s.gdt = (struct kvm_dtable){ .base = gdt, .limit = 4 * 8 - 1 };
	s.idt = (struct kvm_dtable){ 0 };
	s.cr0 = 0x80000031; /* PG | NE | ET | PE */
	s.cr3 = cr3;
	s.cr4 = 0x20;        /* PAE */
	s.efer = 0x500;      /* LME | LMA */
	if (kvm_ioctl(v->fd, KVM_SET_SREGS, &s, e) < 0)
		return -1;
	struct kvm_regs r = { .rip = entry, .rsi = zero_page, .rflags = 0x2 };
	return kvm_ioctl(v->fd, KVM_SET_REGS, &r, e) < 0 ? -1 : 0;
}

void vcpu_kick(struct vcpu *v)
{
	if (!v->run)
		return;
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (v->thread_started)
		pthread_kill(v->thread, SIGUSR1);
}

/* Lets KVM finish a PIO/MMIO instruction without running the guest
 * further, so that a paused vCPU's registers are complete (a saved state
 * must not depend on a half-done instruction). A string instruction or a
 * split MMIO access may produce another exit while completing: it is
 * served, and completion goes on. Called with vm->lock held. */
static void complete_io(struct vcpu *v)
{
	struct vm *vm = v->vm;
	for (int round = 0; round < 4096 && v->io_pending; round++) {
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno != EINTR)
				vm_request_stop_locked(vm, VM_STOP_ERROR,
						       "vCPU %u: KVM_RUN (completing "
						       "I/O): %s", v->id,
						       strerror(errno));
			break; /* EINTR: the instruction is complete */
		}
		/* The dispatcher takes locks of its own (stop requests). */
		pthread_mutex_unlock(&vm->lock);
		vcpu_dispatch_exit(v);
		pthread_mutex_lock(&vm->lock);
		v->io_pending = v->run->exit_reason == KVM_EXIT_IO ||
				v->run->exit_reason == KVM_EXIT_MMIO;
	}
	v->io_pending = false;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	pthread_mutex_lock(&vm->lock);
	for (;;) {
		if (vm->req == VM_REQ_PAUSE && v->io_pending)
			complete_io(v);
		while (vm->req == VM_REQ_PAUSE) {
			vm->npaused++;
			pthread_cond_broadcast(&vm->cond);
			pthread_cond_wait(&vm->cond, &vm->lock);
			vm->npaused--;
		}
		if (vm->req == VM_REQ_STOP)
			break;
		__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
		pthread_mutex_unlock(&vm->lock);

		int r = ioctl(v->fd, KVM_RUN, 0);
		v->io_pending = false;
		if (r < 0) {
			if (errno != EINTR && errno != EAGAIN)
				vm_request_stop(vm, VM_STOP_ERROR, 0,
						"vCPU %u: KVM_RUN: %s", v->id,
						strerror(errno));
		} else {
			vcpu_dispatch_exit(v);
			v->io_pending = v->run->exit_reason == KVM_EXIT_IO ||
					v->run->exit_reason == KVM_EXIT_MMIO;
		}
		pthread_mutex_lock(&vm->lock);
	}
	vm->nthreads--;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

int vcpu_start(struct vcpu *v, struct kg_err *e)
{
	struct vm *vm = v->vm;
	/* Other signals stay with the controlling thread. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_mutex_lock(&vm->lock);
	vm->nthreads++;
	int r = pthread_create(&v->thread, NULL, vcpu_thread, v);
	if (r)
		vm->nthreads--;
	else
		v->thread_started = true;
	pthread_mutex_unlock(&vm->lock);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		errno = r;
		return kg_errno(e, "vCPU %u: pthread_create", v->id);
	}
	return 0;
}

void vcpu_format_regs(struct vcpu *v, char *buf, size_t size)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 ||
	    ioctl(v->fd, KVM_GET_SREGS, &s) < 0) {
		snprintf(buf, size, "  (registers unavailable: %s)",
			 strerror(errno));
		return;
	}
	snprintf(buf, size,
		 "  rip=%016llx rsp=%016llx rflags=%016llx cs=%04x ss=%04x\n"
		 "  rax=%016llx rbx=%016llx rcx=%016llx rdx=%016llx\n"
		 "  rsi=%016llx rdi=%016llx rbp=%016llx r8 =%016llx\n"
		 "  r9 =%016llx r10=%016llx r11=%016llx r12=%016llx\n"
		 "  r13=%016llx r14=%016llx r15=%016llx\n"
		 "  cr0=%016llx cr2=%016llx cr3=%016llx cr4=%016llx "
		 "efer=%016llx",
		 r.rip, r.rsp, r.rflags, s.cs.selector, s.ss.selector, r.rax,
		 r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.r8, r.r9, r.r10,
		 r.r11, r.r12, r.r13, r.r14, r.r15, s.cr0, s.cr2, s.cr3, s.cr4,
		 s.efer);
}
