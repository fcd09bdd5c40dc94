#include "vm.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "kvm.h"
#include "kvm_probe.h"
#include "abi/kagami_platform.h"
#include "base/clock.h"

/* KVM creates the 8259 pair unmasked with vector base 0, and the BSP's
 * LINT0 as unmasked ExtINT: until a guest masks LINT0 (Linux does early,
 * not every kernel does), an ISA interrupt would arrive as vector 4 for
 * COM1. A guest that programs the 8259 unmasks what it wants. */
static int mask_pics(int vm_fd, struct kg_err *e)
{
	for (uint32_t chip = KVM_IRQCHIP_PIC_MASTER;
	     chip <= KVM_IRQCHIP_PIC_SLAVE; chip++) {
		struct kvm_irqchip c = { .chip_id = chip };
		if (kvm_ioctl(vm_fd, KVM_GET_IRQCHIP, &c, e) < 0)
			return -1;
		c.chip.pic.imr = 0xff;
		if (kvm_ioctl(vm_fd, KVM_SET_IRQCHIP, &c, e) < 0)
			return -1;
	}
	return 0;
}

/* The KVM VM object, its irqchip, PIT, memory slots and vCPUs: everything
 * a reset throws away and rebuilds (RAM contents and devices stay). */
static int kvm_vm_build(struct vm *vm, struct kg_err *e)
{
	vm->vm_fd = kvm_ioctl(vm->kvm_fd, KVM_CREATE_VM, 0, e);
	if (vm->vm_fd < 0)
		return -1;
	if (kvm_ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (void *)0xfffbd000ul, e) < 0)
		return -1;
	/* Deterministic mode keeps interrupts in userspace (dev_irq). */
	if (!vm->cfg.deterministic) {
		if (kvm_ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, NULL, e) < 0 ||
		    mask_pics(vm->vm_fd, e) < 0)
			return -1;
		struct kvm_pit_config pit = { .flags = 0 };
		if (kvm_ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit, e) < 0)
			return -1;
	}
	if (guest_mem_register(&vm->mem, vm->vm_fd, e) < 0)
		return -1;
	vm->gate.vm_fd = vm->vm_fd;
	for (unsigned i = 0; i < vm->ncpus; i++)
		if (vcpu_create(vm, i, e) < 0)
			return kg_err_prefix(e, "vCPU %u", i);
	return 0;
}

static void kvm_vm_teardown(struct vm *vm)
{
	/* Kicks read kvm_run under the lock: it goes away under it too. */
	pthread_mutex_lock(&vm->lock);
	for (unsigned i = 0; i < vm->ncpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	pthread_mutex_unlock(&vm->lock);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	vm->vm_fd = -1;
}

static void kick_handler(int sig)
{
	(void)sig; /* interrupting KVM_RUN is the whole point */
}

int vm_create(struct vm *vm, const struct vm_config *cfg, struct kg_err *e)
{
	memset(vm, 0, sizeof(*vm));
	vm->cfg = *cfg;
	vm->kvm_fd = vm->vm_fd = -1;
	vm->mem.fd = -1;
	vm->ncpus = cfg->ncpus;
	vm->pio.name = "pio";
	vm->mmio.name = "mmio";
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	for (unsigned i = 0; i < VM_MAX_VCPUS; i++)
		vm->vcpus[i].fd = -1;
	if (cfg->ndisks > VM_MAX_DISKS || cfg->nnets > VM_MAX_NETS ||
	    cfg->ndisks + cfg->nnets > KAGAMI_VIRTIO_SLOTS) {
		kg_errf(e, "too many devices: at most %d disks and %d "
			"networks, %u in all", VM_MAX_DISKS, VM_MAX_NETS,
			KAGAMI_VIRTIO_SLOTS);
		goto fail;
	}
	if (cfg->ncpus < 1 || cfg->ncpus > VM_MAX_VCPUS) {
		kg_errf(e, "--cpus %u: must be between 1 and %d", cfg->ncpus,
			VM_MAX_VCPUS);
		goto fail;
	}
	if (cfg->deterministic && cfg->ncpus != 1) {
		kg_errf(e, "--cpus %u: deterministic mode (record, replay, "
			"lockstep) needs exactly 1 vCPU: inputs are placed by "
			"exit index on one instruction stream, and the order "
			"of two vCPUs' memory accesses cannot be recorded",
			cfg->ncpus);
		goto fail;
	}
	if (guest_mem_check_size(cfg->mem_size, e) < 0)
		goto fail;

	struct sigaction sa = { .sa_handler = kick_handler };
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0) {
		kg_errno(e, "sigaction(SIGUSR1)");
		goto fail;
	}
	if (cfg->kernel_path && boot_read_inputs(vm, e) < 0)
		goto fail;
	vm->kvm_fd = kvm_open(e);
	if (vm->kvm_fd < 0)
		goto fail;
	int rs = kvm_ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, NULL, e);
	if (rs < 0)
		goto fail;
	vm->run_size = (size_t)rs;
	vm->cpuid = kvm_supported_cpuid(vm->kvm_fd, e);
	if (!vm->cpuid || kvm_cpuid_flags(vm->kvm_fd, vm->cpuid,
					  !cfg->deterministic,
					  &vm->cpuid_flags, e) < 0)
		goto fail;
	if (guest_mem_init(&vm->mem, cfg->mem_size, e) < 0)
		goto fail;
	gate_init_passthrough(&vm->gate, &vm->mem, -1);
	/* 8 MiB of held output: a 10 ms epoch of a 1 Gbit/s guest. */
	if (!(vm->out = outbuf_new(8u << 20, e)))
		goto fail;
	if (kvm_vm_build(vm, e) < 0)
		goto fail;
	if (vm_devices_create(vm, e) < 0)
		goto fail;
	/* Without an image the caller restores state instead (snapshot). */
	if (cfg->kernel_path && boot_load(vm, e) < 0)
		goto fail;
	return 0;
fail:
	vm_destroy(vm);
	return -1;
}

void vm_destroy(struct vm *vm)
{
	/* Devices first: their threads write guest RAM and raise interrupts
	 * (in list order, so the interrupt controller goes last). */
	vm_devices_destroy(vm);
	vm->uart = NULL;
	free(vm->cmdline);
	vm->cmdline = NULL;
	kvm_vm_teardown(vm);
	/* Output still held here was never acknowledged (replication
	 * released everything it could when it stopped): dropped. */
	if (vm->out)
		outbuf_discard(vm->out);
	guest_mem_destroy(&vm->mem);
	outbuf_free(vm->out);
	vm->out = NULL;
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->kvm_fd = -1;
	free(vm->cpuid);
	free(vm->image);
	free(vm->initrd);
	vm->cpuid = NULL;
	vm->image = vm->initrd = NULL;
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->lock);
}

/* Called with vm->lock held. */
static void kick_all(struct vm *vm)
{
	for (unsigned i = 0; i < vm->ncpus; i++)
		vcpu_kick(&vm->vcpus[i]);
}

static void request_stop_v(struct vm *vm, enum vm_stop_reason reason,
			   int exit_code, const char *fmt, va_list ap)
{
	/* The first reason wins, except that a reset in progress yields to
	 * any other: a stop asked for while the guest reboots must stop it. */
	if (vm->stop.reason == VM_STOP_NONE ||
	    (vm->stop.reason == VM_STOP_RESET && reason != VM_STOP_RESET)) {
		memset(vm->stop.message, 0, sizeof(vm->stop.message));
		vm->stop.reason = reason;
		vm->stop.exit_code = exit_code;
		if (fmt)
			vsnprintf(vm->stop.message, sizeof(vm->stop.message),
				  fmt, ap);
	}
	vm->req = VM_REQ_STOP;
	kick_all(vm);
	pthread_cond_broadcast(&vm->cond);
}

void vm_request_stop(struct vm *vm, enum vm_stop_reason reason, int exit_code,
		     const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pthread_mutex_lock(&vm->lock);
	request_stop_v(vm, reason, exit_code, fmt, ap);
	pthread_mutex_unlock(&vm->lock);
	va_end(ap);
}

void vm_request_stop_locked(struct vm *vm, enum vm_stop_reason reason,
			    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	request_stop_v(vm, reason, 0, fmt, ap);
	va_end(ap);
}

void vm_pause(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->req == VM_REQ_RUN) {
		vm->req = VM_REQ_PAUSE;
		kick_all(vm);
	}
	while (vm->req == VM_REQ_PAUSE && vm->npaused < vm->nthreads)
		pthread_cond_wait(&vm->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
}

void vm_request_pause(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->req == VM_REQ_RUN) {
		vm->req = VM_REQ_PAUSE;
		kick_all(vm);
	}
	pthread_mutex_unlock(&vm->lock);
}

bool vm_pause_checked(struct vm *vm)
{
	vm_pause(vm);
	pthread_mutex_lock(&vm->lock);
	bool paused = vm->req == VM_REQ_PAUSE;
	pthread_mutex_unlock(&vm->lock);
	return paused;
}

void vm_checkpoint_begin(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->checkpoints++;
	pthread_mutex_unlock(&vm->lock);
}

void vm_checkpoint_end(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->checkpoints--;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

void vm_fence(struct vm *vm, bool on)
{
	if (on) {
		pthread_mutex_lock(&vm->lock);
		vm->fenced = true;
		pthread_mutex_unlock(&vm->lock);
		vm_pause(vm);
		return;
	}
	pthread_mutex_lock(&vm->lock);
	while (vm->checkpoints)
		pthread_cond_wait(&vm->cond, &vm->lock);
	vm->fenced = false;
	if (vm->req == VM_REQ_PAUSE) {
		vm->req = VM_REQ_RUN;
		pthread_cond_broadcast(&vm->cond);
	}
	pthread_mutex_unlock(&vm->lock);
}

bool vm_fenced(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	bool f = vm->fenced;
	pthread_mutex_unlock(&vm->lock);
	return f;
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->req == VM_REQ_PAUSE && !vm->fenced) {
		vm->req = VM_REQ_RUN;
		pthread_cond_broadcast(&vm->cond);
	}
	pthread_mutex_unlock(&vm->lock);
}

/* Kicks read thread_started under the lock, so it is cleared there
 * before a thread is joined and its id becomes invalid. */
static void join_vcpus(struct vm *vm)
{
	pthread_t t[VM_MAX_VCPUS];
	bool started[VM_MAX_VCPUS];
	pthread_mutex_lock(&vm->lock);
	for (unsigned i = 0; i < vm->ncpus; i++) {
		t[i] = vm->vcpus[i].thread;
		started[i] = vm->vcpus[i].thread_started;
		vm->vcpus[i].thread_started = false;
	}
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->ncpus; i++)
		if (started[i])
			pthread_join(t[i], NULL);
}

/* A stop requested before the threads start is kept: they exit at once. */
static int start_vcpus(struct vm *vm, struct kg_err *e)
{
	for (unsigned i = 0; i < vm->ncpus; i++) {
		if (vcpu_start(&vm->vcpus[i], e) < 0) {
			vm_request_stop(vm, VM_STOP_ERROR, 0, "%s", e->msg);
			join_vcpus(vm);
			return -1;
		}
	}
	return 0;
}

/* Reboot: a fresh KVM VM and vCPUs over zeroed RAM, devices reset, the
 * image loaded again. The memfd and the host resources are kept. */
static int vm_reset(struct vm *vm, struct kg_err *e)
{
	/* Devices first: once reset they neither touch RAM nor raise
	 * interrupts until the rebooted driver sets them up again. */
	vm_devices_reset(vm);
	kvm_vm_teardown(vm);
	if (guest_mem_clear(&vm->mem, e) < 0)
		return -1;
	if (kvm_vm_build(vm, e) < 0)
		return -1;
	vm_devices_rearm(vm);
	vm->boot_count++;
	vm->stats.resets++;
	if (boot_load(vm, e) < 0)
		return -1;
	/* Run again, unless a stop came while rebooting (vm_run sees it). */
	pthread_mutex_lock(&vm->lock);
	if (vm->stop.reason == VM_STOP_RESET) {
		vm->req = vm->fenced ? VM_REQ_PAUSE : VM_REQ_RUN;
		memset(&vm->stop, 0, sizeof(vm->stop));
	}
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

int vm_run(struct vm *vm, struct vm_stop *stop, struct kg_err *e)
{
	vm->stats.run_start_ns = kg_now_ns();
	for (;;) {
		if (start_vcpus(vm, e) < 0)
			return -1;
		pthread_mutex_lock(&vm->lock);
		while (vm->nthreads > 0)
			pthread_cond_wait(&vm->cond, &vm->lock);
		*stop = vm->stop;
		pthread_mutex_unlock(&vm->lock);
		join_vcpus(vm);
		dev_uart_flush(vm->uart);
		if (stop->reason != VM_STOP_RESET)
			return 0;
		/* A deterministic VM's reset would reload the image outside
		 * the execution log: it ends the run (and the recording). */
		if (vm->cfg.deterministic) {
			snprintf(stop->message, sizeof(stop->message),
				 "the guest reset itself, which ends a "
				 "deterministic run (record, replay, lockstep)");
			stop->reason = VM_STOP_REQUEST;
			return 0;
		}
		pthread_mutex_lock(&vm->lock);
		while (vm->checkpoints)
			pthread_cond_wait(&vm->cond, &vm->lock);
		pthread_mutex_unlock(&vm->lock);
		if (vm_reset(vm, e) < 0)
			return kg_err_prefix(e, "reset");
	}
}
